//! A store that fails: fail closed with 503 by default, never a panic,
//! nothing lost, and back to normal when the store is.
#![cfg(feature = "axum")]

mod common;

use common::*;
use http::StatusCode;
use tower_session_lifetime::{
    rejection::{OnStoreError, RejectReason},
    Policy,
};

#[tokio::test]
async fn a_failing_store_gives_503_and_the_handler_is_not_called() {
    let app = TestApp::new(Policy::default());
    let cookie = app.login("alice", false).await;
    app.store.set_down(true);
    let calls = app.inner_calls();
    let response = app.me(&cookie).await;
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        app.inner_calls(),
        calls,
        "fail closed: the handler did not run"
    );
    assert_eq!(
        response.extensions().get::<RejectReason>(),
        Some(&RejectReason::StoreUnavailable)
    );
    assert!(
        set_cookie(&response).is_none(),
        "the cookie is kept: the session may be live"
    );

    app.store.set_down(false);
    let response = app.me(&cookie).await;
    assert_eq!(response.status(), StatusCode::OK, "back once the store is");
    assert_eq!(body_text(response).await, "alice");
}

#[tokio::test]
async fn a_failing_touch_fails_closed_too() {
    let app = TestApp::new(Policy::default());
    let cookie = app.login("alice", false).await;
    app.advance(MINUTE); // a touch is due
                         // Loads work, writes fail: the admitted path must not go on unconfirmed.
    app.store.set_writes_down(true);
    let loads = app.store.loads();
    let calls = app.inner_calls();
    let response = app.me(&cookie).await;
    assert_eq!(app.store.loads(), loads + 1, "the load worked");
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(app.inner_calls(), calls);
    app.store.set_writes_down(false);
    assert_eq!(app.me(&cookie).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn login_and_logout_report_store_failures_without_losing_the_session() {
    let app = TestApp::new(Policy::default());
    let cookie = app.login("alice", false).await;
    app.store.set_down(true);
    let response = app.request("POST", "/logout", Some(&cookie)).await;
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    let response = app.request("POST", "/login?user=bob", None).await;
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(set_cookie(&response).is_none());
    app.store.set_down(false);
    assert_eq!(
        app.store.memory.len(),
        1,
        "nothing lost, nothing half-written"
    );
    assert_eq!(app.me(&cookie).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn pass_through_as_visitor_keeps_public_pages_up() {
    let app = TestApp::configured(|layer| layer.on_store_error(OnStoreError::PassThroughAsVisitor));
    let cookie = app.login("alice", false).await;
    app.store.set_down(true);
    let response = app.me(&cookie).await;
    // The handler ran as for a visitor, and answered its own 401.
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(app.inner_calls(), 2);
    assert!(set_cookie(&response).is_none(), "the cookie is kept");
    app.store.set_down(false);
    assert_eq!(app.me(&cookie).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn a_visitor_let_through_on_a_store_error_still_ends_its_old_session_at_login() {
    let app = TestApp::configured(|layer| layer.on_store_error(OnStoreError::PassThroughAsVisitor));
    let old = app.login("alice", false).await;
    // The load of the old session fails; the handler logs in as a visitor.
    app.store.set_reads_down(true);
    let response = app.request("POST", "/login?user=alice", Some(&old)).await;
    assert_eq!(response.status(), StatusCode::OK);
    let new = set_cookie(&response).expect("a new session");
    app.store.set_reads_down(false);
    assert_eq!(app.store.memory.len(), 1, "the old session ended");
    let replay = app.me(&old).await;
    assert_eq!(replay.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        replay.extensions().get::<RejectReason>(),
        Some(&RejectReason::Unknown)
    );
    let new = format!("{}={}", new.name(), new.value());
    assert_eq!(app.me(&new).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn a_visitor_let_through_on_a_store_error_can_still_log_out() {
    let app = TestApp::configured(|layer| layer.on_store_error(OnStoreError::PassThroughAsVisitor));
    let cookie = app.login("alice", false).await;
    app.store.set_reads_down(true);
    let response = app.request("POST", "/logout", Some(&cookie)).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert!(clears_cookie(&response));
    app.store.set_reads_down(false);
    assert!(app.store.memory.is_empty(), "the session ended");
    assert_eq!(app.me(&cookie).await.status(), StatusCode::UNAUTHORIZED);
}
