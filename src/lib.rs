//! Session lifetime rules, enforced before your handler runs.
//!
//! `SessionLifetimeLayer` is a Tower middleware for axum and hyper that gives
//! sessions the limits identity providers (WSO2 Identity Server, Auth0,
//! Keycloak, Okta) offer: an **idle timeout**, an **absolute** (maximum)
//! lifetime that activity never extends, a **remember-me** period, and a
//! **logout that sticks** — over a pluggable async [`LifetimeStore`](crate::store::LifetimeStore).
//!
//! | setting | meaning |
//! | --- | --- |
//! | idle timeout | a session not used for this long ends; every admitted request resets it |
//! | absolute timeout | counted from login; activity and remember-me never extend it; on by default |
//! | remember-me period | replaces the idle timeout for remember-me sessions, whose cookie is persistent; still capped by the absolute timeout |
//! | caps | upper bounds on the values above, checked when the policy is built |
//!
//! Whichever deadline comes first ends the session; a request at or after
//! either is refused. Each session keeps the limits it was created under and
//! is judged by the tighter of those and the current [`Policy`]: a shorter
//! limit bites at the next request, a longer one only for new sessions.
//!
#![cfg_attr(feature = "axum", doc = "```")]
// Needs the axum extractor: not compiled without the `axum` feature.
#![cfg_attr(not(feature = "axum"), doc = "```ignore")]
//! use std::time::Duration;
//! use axum::{routing::{get, post}, Router};
//! use tower_session_lifetime::{MemoryStore, OnInvalidSession, Policy, SessionHandle, SessionLifetimeLayer};
//!
//! async fn login(session: SessionHandle) -> &'static str {
//!     match session.login("alice", /* remember_me */ false).await {
//!         Ok(()) => "welcome",
//!         Err(_) => "please try again",
//!     }
//! }
//!
//! async fn me(session: SessionHandle) -> String {
//!     session.subject().unwrap_or_else(|| "a visitor".into())
//! }
//!
//! let policy = Policy::builder()
//!     .idle_timeout(Duration::from_secs(15 * 60))
//!     .absolute_timeout(Duration::from_secs(8 * 3600))
//!     .build()?;
//! let app: Router = Router::new()
//!     .route("/login", post(login))
//!     .route("/me", get(me))
//!     .layer(
//!         SessionLifetimeLayer::new(MemoryStore::new())
//!             .with_policy(policy)
//!             .on_invalid_session(OnInvalidSession::PassThrough),
//!     );
//! # let _ = app;
//! # Ok::<(), tower_session_lifetime::policy::PolicyError>(())
//! ```
//!
//! The parts, each in its own module: a pure [`policy`] ([`judge`](crate::policy::judge) decides
//! every request), a [`Clock`](crate::clock::Clock), the [`store`], the [`SessionCookie`], the
//! [`SessionHandle`] handlers use, and the Tower glue in
//! [`SessionLifetimeLayer`].
//!
//! Apps that already run tower-sessions (and axum-login) keep it: the layer
//! can [follow its cookie](SessionLifetimeLayer::follow_tower_sessions), and
//! with the `tower-sessions` feature delete a session's data when its
//! lifetime ends (`SessionLifetimeLayer::delete_data_from`) or keep the
//! lifetimes in a tower-sessions store (`TowerSessionsStore`); see the
//! `tower_sessions` module.
//!
//! Features: `axum` (default) for the [`SessionHandle`] extractor and
//! `client_script::serve`; `tower-sessions` for the `tower_sessions`
//! module; `redis`, `postgres`, `sqlite` for those stores; `metrics` to
//! report [`SessionMetrics`](crate::observe::SessionMetrics) to the `metrics` facade;
//! `conformance` for the checks every store must pass (`store::conformance`),
//! in a store author's dev-dependencies.
//!
//! Also: [`Policies`] per tenant and route group, the [`RecentLoginLayer`](crate::recent_login::RecentLoginLayer)
//! for sensitive routes, a user's own [sessions](SessionHandle::sessions),
//! the [browser side](client_script) (deadline headers, a [status]
//! endpoint, a timeout dialog), and [events and counters](observe).

#![forbid(unsafe_code)]
#![warn(missing_docs, unreachable_pub)]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod bytes;
pub mod client_script;
pub mod clock;
mod config;
pub mod deadline_headers;
#[cfg(feature = "axum")]
mod extract;
pub mod guessing;
pub mod handle;
pub mod id;
mod limits;
pub mod logout_redirect;
pub mod observe;
mod own_sessions;
pub mod policy;
pub mod recent_login;
pub mod record;
pub mod rejection;
pub mod session_cookie;
pub mod session_lifetime;
#[cfg(any(feature = "redis", feature = "postgres"))]
pub mod shared_policy;
pub mod status;
pub mod store;
pub mod time;
#[cfg(feature = "tower-sessions")]
#[cfg_attr(docsrs, doc(cfg(feature = "tower-sessions")))]
pub mod tower_sessions;

// What a typical app names; everything else is reached through its module.
pub use handle::{SessionError, SessionHandle};
pub use policy::{Policies, Policy};
pub use rejection::OnInvalidSession;
pub use session_cookie::SessionCookie;
pub use session_lifetime::SessionLifetimeLayer;
pub use store::MemoryStore;
#[cfg(feature = "postgres")]
pub use store::PostgresStore;
#[cfg(feature = "redis")]
pub use store::RedisStore;
#[cfg(feature = "sqlite")]
pub use store::SqliteStore;
#[cfg(feature = "tower-sessions")]
pub use tower_sessions::TowerSessionsStore;

/// The `cookie` crate this one is built on, for [`cookie::Key`] and
/// [`cookie::SameSite`].
pub use cookie;

/// The README's examples, compiled and run as doc tests.
// The README's example uses axum (a default feature).
#[cfg(all(doctest, feature = "axum"))]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
