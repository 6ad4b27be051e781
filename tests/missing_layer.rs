//! A handler that asks for the session where the layer is not installed gets
//! a clear error, never a panic.
#![cfg(feature = "axum")]

use axum::body::Body;
use axum::routing::get;
use axum::Router;
use http::{Request, StatusCode};
use tower::ServiceExt;
use tower_session_lifetime::{handle::MissingSessionLayer, SessionHandle};

#[tokio::test]
async fn the_axum_extractor_answers_500_with_a_message() {
    let app = Router::new().route("/", get(|_session: SessionHandle| async { "unreachable" }));
    let response = app
        .oneshot(Request::get("/").body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
    let body = axum::body::to_bytes(response.into_body(), 1024)
        .await
        .unwrap();
    assert_eq!(
        std::str::from_utf8(&body).unwrap(),
        "no session handle: SessionLifetimeLayer is not installed on this route"
    );
}

#[test]
fn from_extensions_returns_a_typed_error() {
    let request = Request::new(());
    let err = SessionHandle::from_extensions(request.extensions()).unwrap_err();
    assert_eq!(err, MissingSessionLayer);
}
