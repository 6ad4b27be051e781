//! A guard for sensitive routes: only sessions whose subject signed in (or
//! [re-authenticated](crate::SessionHandle::reauthenticate)) recently get
//! through, as OIDC's `max_age` asks of an identity provider.
//!
//! Put [`RecentLoginLayer`] on the routes that change a password, pay, or
//! show secrets, *inside* the [`SessionLifetimeLayer`](crate::SessionLifetimeLayer)
//! (which must run first, to admit the session). With axum, add it with
//! `route_layer` on the sensitive routes: `layer` would also guard the
//! router's fallback, so a mistyped URL would answer `401`. A session whose last
//! authentication is `max_age` old or older, or a visitor, is refused:
//! `401` by default, or a `303` to a page that asks for the password again
//! and calls [`SessionHandle::reauthenticate`](crate::SessionHandle::reauthenticate).
//! The reason, [`RejectReason::LoginTooOld`](crate::rejection::RejectReason::LoginTooOld)
//! (or [`Missing`](crate::rejection::RejectReason::Missing) for a visitor), is in the
//! response's extensions.
//!
//! ```
//! use std::time::Duration;
//! use axum::{routing::{get, post}, Router};
//! use tower_session_lifetime::{MemoryStore, SessionLifetimeLayer, recent_login::RecentLoginLayer};
//!
//! let sensitive: Router = Router::new()
//!     .route("/account/password", post(|| async { "changed" }))
//!     // `route_layer`: the guard applies to these routes, not to the
//!     // fallback that the merged router shares.
//!     .route_layer(RecentLoginLayer::within(Duration::from_secs(5 * 60)).redirect_to("/confirm-password".parse().unwrap()));
//! let app: Router = Router::new()
//!     .route("/", get(|| async { "home" }))
//!     .merge(sensitive)
//!     .layer(SessionLifetimeLayer::new(MemoryStore::new()));
//! # let _ = app;
//! ```

mod future;
mod layer;
mod service;

pub use future::ResponseFuture;
pub use layer::{OnStaleLogin, RecentLoginLayer};
pub use service::RecentLogin;
