//! The axum extractor for [`SessionHandle`] (feature `axum`).

use axum_core::extract::FromRequestParts;
use axum_core::response::{IntoResponse, Response};
use http::request::Parts;
use http::StatusCode;

use crate::handle::{LogoutRedirect, MissingSessionLayer, SessionError, SessionHandle};

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

/// `303 See Other` to the allowed location.
impl IntoResponse for LogoutRedirect {
    fn into_response(self) -> Response {
        LogoutRedirect::into_response(self)
    }
}

/// A short status and message that reveal nothing of the store: `503` for a
/// store failure, `401` without a session, `409` for a conflict or a full
/// session limit, `400` for a subject too long, `500` otherwise.
impl IntoResponse for SessionError {
    fn into_response(self) -> Response {
        let status = match &self {
            SessionError::Store(_) => StatusCode::SERVICE_UNAVAILABLE,
            SessionError::NoSession => StatusCode::UNAUTHORIZED,
            SessionError::Conflict | SessionError::SessionLimit { .. } => StatusCode::CONFLICT,
            SessionError::SubjectTooLong { .. } | SessionError::LabelTooLong { .. } => {
                StatusCode::BAD_REQUEST
            }
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        (status, self.to_string()).into_response()
    }
}

impl IntoResponse for MissingSessionLayer {
    fn into_response(self) -> Response {
        (StatusCode::INTERNAL_SERVER_ERROR, self.to_string()).into_response()
    }
}
