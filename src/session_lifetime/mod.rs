//! The middleware: [`SessionLifetimeLayer`], its service and its future.
//!
//! ```
//! use std::time::Duration;
//! use axum::{routing::get, Router};
//! use tower_session_lifetime::{MemoryStore, OnInvalidSession, Policy, SessionLifetimeLayer};
//!
//! let policy = Policy::builder()
//!     .idle_timeout(Duration::from_secs(15 * 60))
//!     .absolute_timeout(Duration::from_secs(8 * 60 * 60))
//!     .build()?;
//! let app: Router = Router::new()
//!     .route("/", get(|| async { "hello" }))
//!     .layer(
//!         SessionLifetimeLayer::new(MemoryStore::new())
//!             .with_policy(policy)
//!             .on_invalid_session(OnInvalidSession::redirect_to("/login".parse().unwrap())),
//!     );
//! # let _ = app;
//! # Ok::<(), tower_session_lifetime::policy::PolicyError>(())
//! ```

mod check;
mod context;
mod decide;
mod finish;
mod follow;
mod future;
mod layer;
mod service;
mod status_request;

pub use future::ResponseFuture;
pub use layer::SessionLifetimeLayer;
pub use service::SessionLifetime;
