//! The axum extractor for [`SessionHandle`] (feature `axum`).

use axum_core::extract::FromRequestParts;
use axum_core::response::{IntoResponse, Response};
use http::request::Parts;
use http::StatusCode;

use crate::handle::{MissingSessionLayer, SessionHandle};

/// Extracts the request's [`SessionHandle`]; without the layer installed the
/// handler is not run and the client gets `500` with a message that says so.
///
/// ```
/// use axum::{routing::get, Router};
/// use tower_session_lifetime::{MemoryStore, SessionHandle, SessionLifetimeLayer};
///
/// async fn me(session: SessionHandle) -> String {
///     session.subject().unwrap_or_else(|| "nobody".into())
/// }
///
/// let app: Router = Router::new()
///     .route("/me", get(me))
///     .layer(SessionLifetimeLayer::new(MemoryStore::new()));
/// # let _ = app;
/// ```
impl<S: Send + Sync> FromRequestParts<S> for SessionHandle {
    type Rejection = MissingSessionLayer;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        SessionHandle::from_extensions(&parts.extensions)
    }
}

impl IntoResponse for MissingSessionLayer {
    fn into_response(self) -> Response {
        (StatusCode::INTERNAL_SERVER_ERROR, self.to_string()).into_response()
    }
}
