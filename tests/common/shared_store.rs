//! The checks every shared store runs through the layer: the rules on a real
//! backend, two app nodes on one backend, and an outage.

use std::time::Duration;

use async_trait::async_trait;
use axum::body::Body;
use axum::Router;
use http::{header, Request, Response, StatusCode};
use tower::ServiceExt;
use tower_session_lifetime::{
    clock::{Clock, ManualClock, SystemClock},
    rejection::RejectReason,
    store::LifetimeStore,
    Policy, SessionLifetimeLayer,
};

use super::{body_text, routes, set_cookie, HOUR, MINUTE};

/// A clock at the real time: Redis expires keys by its own clock.
pub fn clock_now() -> ManualClock {
    ManualClock::new(SystemClock.now())
}

/// The test app's routes behind the layer over `store`: idle 1 h,
/// absolute 8 h.
pub fn app(store: impl LifetimeStore, clock: &ManualClock) -> Router {
    let policy = Policy::builder()
        .idle_timeout(HOUR)
        .absolute_timeout(8 * HOUR)
        .build()
        .unwrap();
    routes().layer(
        SessionLifetimeLayer::new(store)
            .with_clock(clock.clone())
            .with_policy(policy),
    )
}

pub async fn send(app: &Router, method: &str, path: &str, cookie: Option<&str>) -> Response<Body> {
    let mut request = Request::builder().method(method).uri(path);
    if let Some(cookie) = cookie {
        request = request.header(header::COOKIE, cookie);
    }
    app.clone()
        .oneshot(request.body(Body::empty()).unwrap())
        .await
        .unwrap()
}

/// Logs `user` in and returns the `Cookie` header value of the session.
pub async fn log_in(app: &Router, user: &str) -> String {
    let response = send(app, "POST", &format!("/login?user={user}"), None).await;
    assert_eq!(response.status(), StatusCode::OK, "login");
    let set = set_cookie(&response).expect("a session cookie");
    format!("{}={}", set.name(), set.value())
}

/// Activity keeps a session alive past several idle periods; inactivity
/// ends it; a logged-out session is refused when replayed.
pub async fn the_rules_hold_through_the_layer(store: impl LifetimeStore) {
    let clock = clock_now();
    let app = app(store, &clock);
    let cookie = log_in(&app, "alice").await;
    for _ in 0..3 {
        clock.advance(HOUR - MINUTE);
        let response = send(&app, "GET", "/me", Some(&cookie)).await;
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(body_text(response).await, "alice");
    }
    clock.advance(HOUR);
    let response = send(&app, "GET", "/me", Some(&cookie)).await;
    assert_eq!(
        response.extensions().get::<RejectReason>(),
        Some(&RejectReason::IdleTimeout)
    );

    let cookie = log_in(&app, "bob").await;
    assert_eq!(
        send(&app, "POST", "/logout", Some(&cookie)).await.status(),
        StatusCode::OK
    );
    let replay = send(&app, "GET", "/me", Some(&cookie)).await;
    assert_eq!(
        replay.extensions().get::<RejectReason>(),
        Some(&RejectReason::Unknown)
    );
}

/// Two app nodes, each with its own store client on one backend: a session
/// started on A is admitted on B, activity on B keeps it alive for A, and a
/// logout on A is refused on B at the next request.
pub async fn two_nodes_act_as_one(node_a: impl LifetimeStore, node_b: impl LifetimeStore) {
    let clock = clock_now();
    let node_a = app(node_a, &clock);
    let node_b = app(node_b, &clock);
    let cookie = log_in(&node_a, "alice").await;
    clock.advance(HOUR - MINUTE);
    assert_eq!(
        send(&node_b, "GET", "/me", Some(&cookie)).await.status(),
        StatusCode::OK
    );
    clock.advance(HOUR - MINUTE);
    // Activity on B kept the session alive for A.
    assert_eq!(
        send(&node_a, "GET", "/me", Some(&cookie)).await.status(),
        StatusCode::OK
    );
    assert_eq!(
        send(&node_a, "POST", "/logout", Some(&cookie))
            .await
            .status(),
        StatusCode::OK
    );
    let replay = send(&node_b, "GET", "/me", Some(&cookie)).await;
    assert_eq!(
        replay.status(),
        StatusCode::UNAUTHORIZED,
        "logged out on A, refused on B"
    );
}

/// A backend a test can take away and bring back.
#[async_trait]
pub trait Outage: Send {
    /// Connecting to the backend is refused from now on.
    async fn begin(&mut self);
    /// The backend is reachable again.
    async fn end(&mut self);
    /// Whether the backend still holds what it held before the outage.
    fn keeps_data(&self) -> bool;
}

/// While the backend is away the layer answers `503` (never admits, never
/// panics); once it is back, new logins work and, if the backend kept its
/// data, the session started before the outage is admitted again.
pub async fn an_outage_gives_503_and_the_store_recovers(
    store: impl LifetimeStore,
    outage: &mut impl Outage,
) {
    let clock = clock_now();
    let app = app(store, &clock);
    let cookie = log_in(&app, "alice").await;

    outage.begin().await;
    let response = send(&app, "GET", "/me", Some(&cookie)).await;
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        response.extensions().get::<RejectReason>(),
        Some(&RejectReason::StoreUnavailable)
    );
    let response = send(&app, "POST", "/login?user=bob", None).await;
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);

    outage.end().await;
    let mut recovered = None;
    for _ in 0..50 {
        let response = send(&app, "POST", "/login?user=carol", None).await;
        if response.status() == StatusCode::OK {
            recovered = Some(response);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(recovered.is_some(), "the store reconnected");
    if outage.keeps_data() {
        // A pool may still hand out a connection the cut broke: that
        // request fails closed (503) and the pool replaces it.
        let mut response = send(&app, "GET", "/me", Some(&cookie)).await;
        for _ in 0..50 {
            if response.status() != StatusCode::SERVICE_UNAVAILABLE {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
            response = send(&app, "GET", "/me", Some(&cookie)).await;
        }
        assert_eq!(response.status(), StatusCode::OK, "nothing stored was lost");
        assert_eq!(body_text(response).await, "alice");
    }
}
