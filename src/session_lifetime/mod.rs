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
//! # Ok::<(), tower_session_lifetime::PolicyError>(())
//! ```

mod check;
mod future;
mod layer;
mod service;

use std::sync::Arc;

pub use future::ResponseFuture;
pub use layer::SessionLifetimeLayer;
pub use service::SessionLifetime;

use crate::clock::Clock;
use crate::policy::Policy;
use crate::rejection::{OnInvalidSession, OnStoreError};
use crate::session_cookie::SessionCookie;
use crate::store::LifetimeStore;

/// Everything the layer was configured with at startup, shared by every
/// request and handle.
#[derive(Clone)]
pub(crate) struct Config {
    pub(crate) store: Arc<dyn LifetimeStore>,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) policy: Policy,
    pub(crate) cookie: SessionCookie,
    pub(crate) on_invalid: OnInvalidSession,
    pub(crate) on_store_error: OnStoreError,
}
