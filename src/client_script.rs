//! The browser side: a small script that warns before a session's
//! deadlines, shipped with the crate and served by your app.
//!
//! [`SCRIPT`] is plain JavaScript without a build step or dependencies. On a
//! page it asks the layer's [status endpoint](crate::status) for the
//! deadlines (a `GET`, which is not activity), and a configurable number of
//! seconds (default 60) before the idle deadline shows a dialog, "Your
//! session is about to expire", with **Continue** (a `POST` to the status
//! endpoint, which is activity, so the deadline moves and the dialog
//! closes) and **Log out** (a form `POST` to your logout route). Before the
//! absolute deadline it shows a notice without Continue. At a deadline it
//! asks the server again before acting, and when the session has really
//! ended it shows a sign-in link. Tabs of one origin share what they learn
//! (`BroadcastChannel`, or `storage` events), so activity in one tab keeps
//! the others from warning or ending.
//!
//! Mount it, turn on the status endpoint, and include it on your pages:
//!
#![cfg_attr(feature = "axum", doc = "```")]
// Needs the axum extractor: not compiled without the `axum` feature.
#![cfg_attr(not(feature = "axum"), doc = "```ignore")]
//! use axum::{response::Html, routing::get, Router};
//! use tower_session_lifetime::{client_script, MemoryStore, SessionLifetimeLayer, status::StatusEndpoint};
//!
//! let page = r#"<!doctype html><title>App</title>
//! <script src="/session-lifetime.js" data-status-url="/session/status"
//!         data-logout-url="/logout" data-login-url="/login" data-warn-seconds="60" defer></script>"#;
//! let app: Router = Router::new()
//!     .route("/", get(move || async move { Html(page) }))
//!     .route("/session-lifetime.js", get(client_script::serve))
//!     .layer(
//!         SessionLifetimeLayer::new(MemoryStore::new())
//!             .with_status_endpoint(StatusEndpoint::at("/session/status")?),
//!     );
//! # let _ = app;
//! # Ok::<(), tower_session_lifetime::status::StatusEndpointError>(())
//! ```
//!
//! The script's own header comment lists its settings (`data-*` attributes
//! of its tag) and its small API (`SessionLifetime.observe(response)` feeds
//! it the [deadline headers](crate::deadline_headers::DeadlineHeaders) of a response of your
//! own). The dialog is `#session-lifetime-dialog`, styled by classes that
//! start with `session-lifetime-`.

use http::header::{CACHE_CONTROL, CONTENT_TYPE, X_CONTENT_TYPE_OPTIONS};
use http::{HeaderValue, Response};

/// The script's source.
pub const SCRIPT: &str = include_str!("../assets/session-lifetime.js");

/// The script's content type.
pub const CONTENT_TYPE_JS: &str = "text/javascript; charset=utf-8";

/// The script as a response: `200`, [`CONTENT_TYPE_JS`], `nosniff`, and
/// cacheable for five minutes. For any body that can be built from a
/// `&'static str` (axum's `Body`, http-body-util's `Full<Bytes>`, `String`).
///
/// ```
/// use tower_session_lifetime::client_script;
///
/// let response = client_script::response::<String>();
/// assert_eq!(response.headers()["content-type"], client_script::CONTENT_TYPE_JS);
/// assert!(response.body().contains("BroadcastChannel"));
/// ```
pub fn response<B: From<&'static str>>() -> Response<B> {
    let mut response = Response::new(B::from(SCRIPT));
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE_JS));
    headers.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(
        CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=300"),
    );
    response
}

/// An axum handler answering with the script: mount it with
/// `.route("/session-lifetime.js", get(client_script::serve))`.
#[cfg(feature = "axum")]
#[cfg_attr(docsrs, doc(cfg(feature = "axum")))]
pub async fn serve() -> Response<axum_core::body::Body> {
    response()
}
