//! The recent-login guard (`RecentLoginLayer`) at its boundary, and
//! re-authentication through the handle, with a manual clock.
#![cfg(feature = "axum")]

mod common;

use axum::body::Body;
use axum::routing::get;
use axum::Router;
use common::{TestApp, HOUR, MINUTE, RECENT_LOGIN, TICK};
use http::{header, Request, StatusCode};
use tower::ServiceExt;
use tower_session_lifetime::{
    deadline_headers::IDLE_DEADLINE_HEADER, recent_login::RecentLoginLayer,
    rejection::RejectReason, Policy,
};

fn reason(response: &http::Response<Body>) -> Option<RejectReason> {
    response.extensions().get::<RejectReason>().copied()
}

fn app() -> TestApp {
    TestApp::configured(|layer| {
        layer
            .with_policy(common::policy(3 * HOUR, 8 * HOUR))
            .with_deadline_headers(Default::default())
    })
}

#[tokio::test]
async fn a_login_is_recent_until_one_tick_before_max_age_and_not_at_it() {
    let app = app();
    let cookie = app.login("alice", false).await;
    app.advance(RECENT_LOGIN - TICK);
    let admitted = app.request("GET", "/sensitive", Some(&cookie)).await;
    assert_eq!(admitted.status(), StatusCode::OK, "one tick before");

    app.advance(TICK);
    let refused = app.request("GET", "/sensitive", Some(&cookie)).await;
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED, "at max_age");
    assert_eq!(reason(&refused), Some(RejectReason::LoginTooOld));
    // The session itself lives on: only the sensitive route wants more.
    assert_eq!(app.me(&cookie).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn reauthentication_refreshes_the_login_time_but_not_the_absolute_deadline() {
    let app = app();
    let cookie = app.login("alice", false).await;
    app.advance(2 * HOUR);
    let before = app.me(&cookie).await;
    let absolute = before.headers()["session-expires"].clone();
    assert_eq!(
        app.request("GET", "/sensitive", Some(&cookie))
            .await
            .status(),
        StatusCode::UNAUTHORIZED
    );

    let reauthenticated = app.request("POST", "/reauthenticate", Some(&cookie)).await;
    assert_eq!(reauthenticated.status(), StatusCode::OK);
    assert!(
        common::set_cookie(&reauthenticated).is_none(),
        "the same session, the same ID"
    );
    let sensitive = app.request("GET", "/sensitive", Some(&cookie)).await;
    assert_eq!(sensitive.status(), StatusCode::OK);
    assert_eq!(
        sensitive.headers()["session-expires"],
        absolute,
        "the absolute deadline still counts from the first login"
    );
    assert!(sensitive.headers().get(IDLE_DEADLINE_HEADER).is_some());

    // It counts from the re-authentication: refused again at max_age.
    app.advance(RECENT_LOGIN);
    let refused = app.request("GET", "/sensitive", Some(&cookie)).await;
    assert_eq!(reason(&refused), Some(RejectReason::LoginTooOld));

    // And the session still ends at its absolute deadline.
    app.advance(6 * HOUR);
    assert_eq!(app.me(&cookie).await.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn a_new_login_starts_a_new_session_and_a_new_absolute_period() {
    let app = app();
    let cookie = app.login("alice", false).await;
    app.advance(2 * HOUR);
    let absolute = app.me(&cookie).await.headers()["session-expires"].clone();
    let again = app
        .request("POST", "/login?user=alice", Some(&cookie))
        .await;
    let new = common::set_cookie(&again).expect("a new ID");
    let new = format!("{}={}", new.name(), new.value());
    assert_ne!(new, cookie);
    let sensitive = app.request("GET", "/sensitive", Some(&new)).await;
    assert_eq!(sensitive.status(), StatusCode::OK);
    assert_ne!(sensitive.headers()["session-expires"], absolute);
    assert_eq!(app.me(&cookie).await.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn a_visitor_is_refused_and_a_redirect_can_be_configured() {
    let app = app();
    let visitor = app.request("GET", "/sensitive", None).await;
    assert_eq!(visitor.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(reason(&visitor), Some(RejectReason::Missing));

    let redirecting = TestApp::routed(|routes, layer| {
        let confirm = Router::new()
            .route("/pay", get(|| async { "paid" }))
            .route_layer(
                RecentLoginLayer::within(MINUTE).redirect_to("/confirm-password".parse().unwrap()),
            );
        routes
            .merge(confirm)
            .layer(layer.with_policy(Policy::default()))
    });
    let cookie = redirecting.login("alice", false).await;
    assert_eq!(
        redirecting
            .request("GET", "/pay", Some(&cookie))
            .await
            .status(),
        StatusCode::OK
    );
    redirecting.advance(MINUTE);
    let refused = redirecting.request("GET", "/pay", Some(&cookie)).await;
    assert_eq!(refused.status(), StatusCode::SEE_OTHER);
    assert_eq!(refused.headers()[header::LOCATION], "/confirm-password");
    assert_eq!(reason(&refused), Some(RejectReason::LoginTooOld));
}

#[tokio::test]
async fn without_the_lifetime_layer_the_guard_is_a_500_not_an_open_door() {
    let app = Router::new()
        .route("/pay", get(|| async { "paid" }))
        .layer(RecentLoginLayer::within(MINUTE));
    let response = app
        .oneshot(Request::get("/pay").body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
}
