//! What an expired or unknown session gets: reject, redirect, pass through.
#![cfg(feature = "axum")]

mod common;

use axum::body::Body;
use common::*;
use http::{header, Response, StatusCode};
use tower_session_lifetime::{rejection::RejectReason, OnInvalidSession, Policy};

async fn expired_cookie(app: &TestApp) -> String {
    let cookie = app.login("alice", false).await;
    app.advance(HOUR);
    cookie
}

#[tokio::test]
async fn reject_answers_401_without_calling_the_handler_and_deletes_the_session() {
    let app = TestApp::new(policy(10 * MINUTE, DAY));
    let cookie = expired_cookie(&app).await;
    assert_eq!(app.store.memory.len(), 1);
    let calls = app.inner_calls();
    let response = app.me(&cookie).await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert!(clears_cookie(&response));
    assert_eq!(app.inner_calls(), calls);
    assert!(app.store.memory.is_empty(), "expired session deleted");
    assert!(
        body_text(response).await.is_empty(),
        "no internals in the body"
    );
}

#[tokio::test]
async fn reject_with_builds_the_apps_response() {
    let app = TestApp::new(policy(10 * MINUTE, DAY));
    let clock = app.clock.clone();
    let store = std::sync::Arc::new(app.store.clone());
    let layer = tower_session_lifetime::SessionLifetimeLayer::from_shared_store(store)
        .with_clock(clock)
        .with_policy(policy(10 * MINUTE, DAY))
        .reject_with(|reason: RejectReason| {
            Response::builder()
                .status(StatusCode::FORBIDDEN)
                .header("x-reason", reason.as_str())
                .body(Body::from("sign in again"))
                .unwrap()
        });
    let router = axum::Router::new()
        .route("/me", axum::routing::get(|| async { "handler" }))
        .layer(layer);
    let cookie = expired_cookie(&app).await;
    use tower::ServiceExt;
    let response = router
        .oneshot(
            http::Request::builder()
                .uri("/me")
                .header(header::COOKIE, cookie)
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    assert_eq!(response.headers()["x-reason"], "idle");
    assert!(clears_cookie(&response));
    assert_eq!(body_text(response).await, "sign in again");
}

#[tokio::test]
async fn redirect_answers_303_to_the_login_page() {
    let app = TestApp::configured(|layer| {
        layer
            .with_policy(policy(10 * MINUTE, DAY))
            .on_invalid_session(OnInvalidSession::redirect_to(
                "/login?expired=1".parse().unwrap(),
            ))
    });
    let cookie = expired_cookie(&app).await;
    let calls = app.inner_calls();
    let response = app.me(&cookie).await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(response.headers()[header::LOCATION], "/login?expired=1");
    assert!(clears_cookie(&response));
    assert_eq!(
        response.extensions().get::<RejectReason>(),
        Some(&RejectReason::IdleTimeout)
    );
    assert_eq!(app.inner_calls(), calls);
}

#[tokio::test]
async fn pass_through_runs_the_handler_as_a_visitor_without_the_stale_cookie() {
    let clock = tower_session_lifetime::clock::ManualClock::new(START);
    let layer = tower_session_lifetime::SessionLifetimeLayer::new(
        tower_session_lifetime::MemoryStore::with_clock(clock.clone()),
    )
    .with_clock(clock.clone())
    .with_policy(policy(10 * MINUTE, DAY))
    .on_invalid_session(OnInvalidSession::PassThrough);
    let router =
        axum::Router::new()
            .route(
                "/login",
                axum::routing::post(
                    |session: tower_session_lifetime::SessionHandle| async move {
                        session.login("alice", false).await.unwrap();
                    },
                ),
            )
            .route(
                "/page",
                axum::routing::get(
                    |session: tower_session_lifetime::SessionHandle,
                     request: http::Request<Body>| async move {
                        format!(
                            "active={} rejection={:?} cookie={:?}",
                            session.is_active(),
                            session.rejection().map(|r| r.as_str()),
                            request.headers().get(header::COOKIE)
                        )
                    },
                ),
            )
            .layer(layer);
    use tower::ServiceExt;
    let login = router
        .clone()
        .oneshot(http::Request::post("/login").body(Body::empty()).unwrap())
        .await
        .unwrap();
    let cookie = set_cookie(&login).unwrap();
    clock.advance(HOUR);
    let response = router
        .oneshot(
            http::Request::get("/page")
                .header(
                    header::COOKIE,
                    format!("theme=dark; session={}", cookie.value()),
                )
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert!(clears_cookie(&response));
    assert_eq!(
        response.extensions().get::<RejectReason>(),
        Some(&RejectReason::IdleTimeout)
    );
    assert_eq!(
        body_text(response).await,
        r#"active=false rejection=Some("idle") cookie=Some("theme=dark")"#
    );
}

#[tokio::test]
async fn pass_through_lets_the_visitor_log_in_again_in_the_same_request() {
    let app = TestApp::configured(|layer| {
        layer
            .with_policy(policy(10 * MINUTE, DAY))
            .on_invalid_session(OnInvalidSession::PassThrough)
    });
    let cookie = expired_cookie(&app).await;
    let response = app
        .request("POST", "/login?user=alice", Some(&cookie))
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let fresh = set_cookie(&response).expect("a new cookie, not a removal");
    assert!(!fresh.value().is_empty());
    let fresh = format!("session={}", fresh.value());
    assert_eq!(app.me(&fresh).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn a_visitor_without_a_cookie_reaches_the_handler_and_sets_nothing() {
    let app = TestApp::new(Policy::default());
    let response = app.request("GET", "/me", None).await;
    assert_eq!(
        response.status(),
        StatusCode::UNAUTHORIZED,
        "the handler's own 401"
    );
    assert_eq!(app.inner_calls(), 1);
    assert!(set_cookie(&response).is_none());
    assert_eq!(app.store.loads(), 0);
}
