//! The browser side through the layer: deadline headers on admitted
//! responses, and the status endpoint, whose `GET` reports the deadlines
//! without counting as activity and whose `POST` counts.
#![cfg(feature = "axum")]

mod common;

use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::body::Body;
use axum::response::Response;
use common::{
    body_text, clears_cookie, policy, set_cookie, TestApp, HOUR, MINUTE, SECOND, START, TICK,
};
use http::{header, StatusCode};
use serde_json::Value;
use tower_session_lifetime::{
    deadline_headers::{DeadlineHeaders, ABSOLUTE_DEADLINE_HEADER, IDLE_DEADLINE_HEADER},
    rejection::{RejectReason, RejectionResponse},
    session_cookie::DEFAULT_COOKIE_NAME,
    status::{SessionStatus, StatusEndpoint},
    time::Timestamp,
    OnInvalidSession, Policy,
};

const STATUS: &str = "/session/status";
const IDLE: Duration = Duration::from_secs(15 * 60);
const ABSOLUTE: Duration = Duration::from_secs(8 * 3600);

/// The test app with the status endpoint (and deadline headers), its
/// store answering at once (`MemoryStore`'s fast path) or only
/// asynchronously (as a networked store).
fn status_app(policy: Policy, sync_reads: bool) -> TestApp {
    status_app_with(policy, sync_reads, |layer| layer)
}

fn status_app_with(
    policy: Policy,
    sync_reads: bool,
    configure: impl FnOnce(
        tower_session_lifetime::SessionLifetimeLayer,
    ) -> tower_session_lifetime::SessionLifetimeLayer,
) -> TestApp {
    let app = TestApp::routed(|routes, layer| {
        routes.layer(
            configure(layer.with_policy(policy))
                .with_deadline_headers(DeadlineHeaders::new())
                .with_status_endpoint(StatusEndpoint::at(STATUS).unwrap()),
        )
    });
    app.store.sync_reads.store(sync_reads, Ordering::SeqCst);
    app
}

fn both_paths() -> [bool; 2] {
    [true, false]
}

fn unix_secs(at: Timestamp) -> u64 {
    at.as_unix_secs()
}

fn header_secs(response: &Response<Body>, name: &str) -> Option<u64> {
    response
        .headers()
        .get(name)
        .map(|value| value.to_str().unwrap().parse().unwrap())
}

async fn status_json(response: Response<Body>) -> Value {
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()[header::CONTENT_TYPE], "application/json");
    assert_eq!(response.headers()[header::CACHE_CONTROL], "no-store");
    serde_json::from_str(&body_text(response).await).unwrap()
}

#[tokio::test]
async fn admitted_responses_carry_both_deadlines_as_unix_seconds() {
    let app = TestApp::configured(|layer| {
        layer
            .with_policy(policy(IDLE, ABSOLUTE))
            .with_deadline_headers(DeadlineHeaders::new())
    });
    let login = app
        .request("POST", "/login?user=alice&remember=false", None)
        .await;
    // A login's response carries the new session's deadlines.
    assert_eq!(
        header_secs(&login, IDLE_DEADLINE_HEADER),
        Some(unix_secs(START.saturating_add(IDLE)))
    );
    let cookie = common::set_cookie(&login).unwrap();
    let cookie = format!("{}={}", cookie.name(), cookie.value());

    app.advance(10 * MINUTE);
    let response = app.me(&cookie).await;
    assert_eq!(response.status(), StatusCode::OK);
    let now = START.saturating_add(10 * MINUTE);
    assert_eq!(
        header_secs(&response, IDLE_DEADLINE_HEADER),
        Some(unix_secs(now.saturating_add(IDLE))),
        "activity moved the idle deadline"
    );
    assert_eq!(
        header_secs(&response, ABSOLUTE_DEADLINE_HEADER),
        Some(unix_secs(START.saturating_add(ABSOLUTE))),
        "the absolute deadline counts from the login"
    );

    // A logout's response carries none: there is no session any more.
    let logout = app.request("POST", "/logout", Some(&cookie)).await;
    assert_eq!(logout.status(), StatusCode::OK);
    assert!(logout.headers().get(IDLE_DEADLINE_HEADER).is_none());
    // Nor does a visitor's.
    let visitor = app.request("GET", "/me", None).await;
    assert!(visitor.headers().get(IDLE_DEADLINE_HEADER).is_none());
}

#[tokio::test]
async fn without_an_absolute_timeout_only_the_idle_header_is_sent_and_headers_are_off_by_default() {
    let unbounded = Policy::builder()
        .idle_timeout(IDLE)
        .no_absolute_timeout()
        .build()
        .unwrap();
    let app = TestApp::configured(|layer| {
        layer
            .with_policy(unbounded)
            .with_deadline_headers(DeadlineHeaders::new())
    });
    let cookie = app.login("alice", false).await;
    let response = app.me(&cookie).await;
    assert!(response.headers().get(IDLE_DEADLINE_HEADER).is_some());
    assert!(response.headers().get(ABSOLUTE_DEADLINE_HEADER).is_none());

    let plain = TestApp::new(policy(IDLE, ABSOLUTE));
    let cookie = plain.login("alice", false).await;
    let response = plain.me(&cookie).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert!(response.headers().get(IDLE_DEADLINE_HEADER).is_none());
}

#[tokio::test]
async fn a_status_get_reports_the_deadlines_without_moving_them() {
    for sync_reads in both_paths() {
        let app = status_app(policy(IDLE, ABSOLUTE), sync_reads);
        let cookie = app.login("alice", false).await;
        let writes = app.store.writes();

        // Status requests every minute, up to one tick before the idle
        // deadline: each reports the login's deadline, none writes.
        for minute in 1..15 {
            app.advance(MINUTE);
            let response = app.request("GET", STATUS, Some(&cookie)).await;
            assert!(set_cookie(&response).is_none(), "no cookie change");
            assert_eq!(
                header_secs(&response, IDLE_DEADLINE_HEADER),
                Some(unix_secs(START.saturating_add(IDLE)))
            );
            let json = status_json(response).await;
            assert_eq!(
                json["idle_expires_at"],
                unix_secs(START.saturating_add(IDLE))
            );
            assert_eq!(
                json["expires_at"],
                unix_secs(START.saturating_add(ABSOLUTE))
            );
            assert_eq!(json["remember_me"], false);
            assert_eq!(
                json["now"],
                unix_secs(START.saturating_add(minute * MINUTE))
            );
        }
        assert_eq!(app.store.writes(), writes, "status requests write nothing");
        assert_eq!(app.inner_calls(), 1, "only the login reached the app");

        app.advance(MINUTE - TICK);
        let response = app.request("GET", STATUS, Some(&cookie)).await;
        assert_eq!(response.status(), StatusCode::OK, "one tick before");
        // The session ends at the deadline the login set: the status
        // requests did not extend it.
        app.advance(TICK);
        let response = app.request("GET", STATUS, Some(&cookie)).await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(
            response.extensions().get::<RejectReason>(),
            Some(&RejectReason::IdleTimeout)
        );
        assert!(clears_cookie(&response));
        assert_eq!(app.store.memory.len(), 0, "the expired session is deleted");
        assert_eq!(app.me(&cookie).await.status(), StatusCode::UNAUTHORIZED);
    }
}

#[tokio::test]
async fn a_status_post_is_activity() {
    for sync_reads in both_paths() {
        let app = status_app(policy(IDLE, ABSOLUTE), sync_reads);
        let cookie = app.login("alice", false).await;
        app.advance(14 * MINUTE);
        let writes = app.store.writes();
        let json = status_json(app.request("POST", STATUS, Some(&cookie)).await).await;
        let now = START.saturating_add(14 * MINUTE);
        assert_eq!(json["idle_expires_at"], unix_secs(now.saturating_add(IDLE)));
        assert_eq!(app.store.writes(), writes + 1, "the activity was written");
        assert_eq!(app.inner_calls(), 1, "the layer answered itself");

        // The session now lives past the login's deadline.
        app.advance(14 * MINUTE);
        let json = status_json(app.request("GET", STATUS, Some(&cookie)).await).await;
        assert_eq!(json["idle_expires_at"], unix_secs(now.saturating_add(IDLE)));
    }
}

#[tokio::test]
async fn a_status_get_reports_the_stored_activity_even_when_a_touch_would_be_due() {
    // After a touch granularity, an ordinary request would write activity
    // and report a deadline from now; a status GET reports the stored one.
    let app = status_app(policy(IDLE, ABSOLUTE), true);
    let cookie = app.login("alice", false).await;
    app.advance(5 * MINUTE);
    let me = app.me(&cookie).await;
    let after_activity = START.saturating_add(5 * MINUTE).saturating_add(IDLE);
    assert_eq!(
        header_secs(&me, IDLE_DEADLINE_HEADER),
        Some(unix_secs(after_activity))
    );
    app.advance(5 * MINUTE);
    let json = status_json(app.request("GET", STATUS, Some(&cookie)).await).await;
    assert_eq!(json["idle_expires_at"], unix_secs(after_activity));
}

#[tokio::test]
async fn a_status_request_without_a_live_session_is_401_whatever_other_paths_get() {
    for on_invalid in [
        OnInvalidSession::Reject,
        OnInvalidSession::PassThrough,
        OnInvalidSession::redirect_to("/login".parse().unwrap()),
    ] {
        for sync_reads in both_paths() {
            let app = status_app_with(policy(IDLE, ABSOLUTE), sync_reads, |layer| {
                layer.on_invalid_session(on_invalid.clone())
            });
            let no_cookie = app.request("GET", STATUS, None).await;
            assert_eq!(no_cookie.status(), StatusCode::UNAUTHORIZED);
            assert_eq!(
                no_cookie.extensions().get::<RejectReason>(),
                Some(&RejectReason::Missing)
            );
            assert_eq!(no_cookie.headers()[header::CACHE_CONTROL], "no-store");

            let malformed = app
                .request(
                    "GET",
                    STATUS,
                    Some(&format!("{DEFAULT_COOKIE_NAME}=not-an-id")),
                )
                .await;
            assert_eq!(malformed.status(), StatusCode::UNAUTHORIZED);
            assert!(clears_cookie(&malformed));

            let cookie = app.login("alice", false).await;
            let logout = app.request("POST", "/logout", Some(&cookie)).await;
            assert_eq!(logout.status(), StatusCode::OK);
            let unknown = app.request("POST", STATUS, Some(&cookie)).await;
            assert_eq!(unknown.status(), StatusCode::UNAUTHORIZED);
            assert_eq!(
                unknown.extensions().get::<RejectReason>(),
                Some(&RejectReason::Unknown)
            );
            assert!(clears_cookie(&unknown));
            assert_eq!(app.store.memory.len(), 0, "a POST brings nothing back");
            assert_eq!(app.inner_calls(), 2, "login and logout only");
        }
    }
}

#[tokio::test]
async fn a_status_request_reports_a_store_failure_as_503_and_keeps_the_cookie() {
    for sync_reads in both_paths() {
        let app = status_app(policy(IDLE, ABSOLUTE), sync_reads);
        let cookie = app.login("alice", false).await;
        app.store.set_down(true);
        let response = app.request("GET", STATUS, Some(&cookie)).await;
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert!(set_cookie(&response).is_none());
        app.store.set_down(false);
        status_json(app.request("GET", STATUS, Some(&cookie)).await).await;
    }
}

#[tokio::test]
async fn other_methods_are_405_and_other_paths_reach_the_app() {
    let app = status_app(policy(IDLE, ABSOLUTE), true);
    let cookie = app.login("alice", false).await;
    let response = app.request("DELETE", STATUS, Some(&cookie)).await;
    assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(response.headers()[header::ALLOW], "GET, HEAD, POST");
    app.advance(5 * MINUTE);
    let writes = app.store.writes();
    let head = app.request("HEAD", STATUS, Some(&cookie)).await;
    assert_eq!(head.status(), StatusCode::OK);
    assert_eq!(app.store.writes(), writes, "a HEAD is not activity either");
    assert_eq!(app.inner_calls(), 1);
    // A CORS preflight is the app's (here: no such route), and so is a
    // neighbour of the path.
    let preflight = app.request("OPTIONS", STATUS, None).await;
    assert_eq!(preflight.status(), StatusCode::NOT_FOUND);
    let neighbour = app.request("GET", "/session/status/", Some(&cookie)).await;
    assert_eq!(neighbour.status(), StatusCode::NOT_FOUND);
    assert_eq!(app.inner_calls(), 3);
}

#[tokio::test]
async fn only_a_status_post_renews_a_due_id() {
    let renewing = Policy::builder()
        .idle_timeout(IDLE)
        .absolute_timeout(ABSOLUTE)
        .renewal_interval(5 * MINUTE)
        .build()
        .unwrap();
    for sync_reads in both_paths() {
        let app = status_app(renewing, sync_reads);
        let cookie = app.login("alice", false).await;
        app.advance(6 * MINUTE);
        let get = app.request("GET", STATUS, Some(&cookie)).await;
        assert!(set_cookie(&get).is_none(), "a GET renews nothing");
        status_json(get).await;

        let post = app.request("POST", STATUS, Some(&cookie)).await;
        let renewed = set_cookie(&post).expect("a POST renews the due ID");
        assert_ne!(format!("{}={}", renewed.name(), renewed.value()), cookie);
        let new_cookie = format!("{}={}", renewed.name(), renewed.value());
        status_json(post).await;
        assert_eq!(app.me(&new_cookie).await.status(), StatusCode::OK);
    }
}

#[tokio::test]
async fn a_remember_me_session_reports_it_and_a_post_refreshes_its_cookie() {
    for sync_reads in both_paths() {
        let app = status_app(policy(IDLE, ABSOLUTE), sync_reads);
        let cookie = app.login("alice", true).await;
        app.advance(HOUR);
        let get = app.request("GET", STATUS, Some(&cookie)).await;
        assert!(set_cookie(&get).is_none());
        assert_eq!(status_json(get).await["remember_me"], true);
        let post = app.request("POST", STATUS, Some(&cookie)).await;
        let refreshed = set_cookie(&post).expect("a persistent cookie follows the activity");
        assert!(refreshed.max_age().is_some());
    }
}

fn custom_rejection(reason: RejectReason) -> Response<Body> {
    let mut response = Response::new(Body::from("custom"));
    *response.status_mut() = reason.default_status();
    response
}

#[tokio::test]
async fn a_responder_given_before_or_after_the_endpoint_keeps_the_json() {
    for after in [false, true] {
        let app = TestApp::routed(|routes, layer| {
            let layer = layer.with_policy(policy(IDLE, ABSOLUTE));
            let endpoint = StatusEndpoint::at(STATUS).unwrap();
            routes.layer(if after {
                layer
                    .with_status_endpoint(endpoint)
                    .reject_with(custom_rejection)
            } else {
                layer
                    .reject_with(custom_rejection)
                    .with_status_endpoint(endpoint)
            })
        });
        let cookie = app.login("alice", false).await;
        let json = status_json(app.request("GET", STATUS, Some(&cookie)).await).await;
        assert_eq!(
            json["idle_expires_at"],
            unix_secs(START.saturating_add(IDLE))
        );
        let refused = app.request("GET", STATUS, None).await;
        assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(body_text(refused).await, "custom");
    }
}

/// A responder that builds its own status answer.
#[derive(Clone)]
struct OwnStatus;

impl RejectionResponse<Body> for OwnStatus {
    fn respond(&self, reason: RejectReason) -> Response<Body> {
        custom_rejection(reason)
    }

    fn status(&self, status: &SessionStatus) -> Option<Response<Body>> {
        Some(Response::new(Body::from(format!(
            "idle until {}",
            status.deadlines.idle.as_unix_secs()
        ))))
    }
}

#[tokio::test]
async fn a_responder_may_build_its_own_status_answer() {
    let app = TestApp::routed(|routes, layer| {
        routes.layer(
            layer
                .with_policy(policy(IDLE, ABSOLUTE))
                .reject_with(OwnStatus)
                .with_status_endpoint(StatusEndpoint::at(STATUS).unwrap()),
        )
    });
    let cookie = app.login("alice", false).await;
    let response = app.request("GET", STATUS, Some(&cookie)).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()[header::CACHE_CONTROL], "no-store");
    assert_eq!(
        body_text(response).await,
        format!("idle until {}", unix_secs(START.saturating_add(IDLE)))
    );
}

#[tokio::test]
async fn a_status_post_moves_the_deadline_even_within_the_touch_granularity() {
    for sync_reads in both_paths() {
        // One minute of granularity: an ordinary request 30 s after the
        // login writes nothing; Continue must still move the deadline.
        let app = status_app(policy(IDLE, ABSOLUTE), sync_reads);
        let cookie = app.login("alice", false).await;
        app.advance(30 * SECOND);
        let me = app.me(&cookie).await;
        assert_eq!(
            header_secs(&me, IDLE_DEADLINE_HEADER),
            Some(unix_secs(START.saturating_add(IDLE))),
            "throttled"
        );
        app.advance(SECOND);
        let writes = app.store.writes();
        let post = app.request("POST", STATUS, Some(&cookie)).await;
        let moved = START.saturating_add(31 * SECOND).saturating_add(IDLE);
        assert_eq!(
            header_secs(&post, IDLE_DEADLINE_HEADER),
            Some(unix_secs(moved))
        );
        assert_eq!(status_json(post).await["idle_expires_at"], unix_secs(moved));
        assert_eq!(app.store.writes(), writes + 1);
        // And the store agrees: a GET reports the moved deadline.
        let json = status_json(app.request("GET", STATUS, Some(&cookie)).await).await;
        assert_eq!(json["idle_expires_at"], unix_secs(moved));
    }
}

#[tokio::test]
async fn a_status_post_from_another_site_is_refused_and_moves_nothing() {
    let app = status_app(policy(IDLE, ABSOLUTE), true);
    let cookie = app.login("alice", false).await;
    app.advance(5 * MINUTE);
    let writes = app.store.writes();
    for site in ["cross-site", "same-site"] {
        let request = http::Request::post(STATUS)
            .header(header::COOKIE, &cookie)
            .header("sec-fetch-site", site)
            .body(Body::empty())
            .unwrap();
        let response = app.send(request).await;
        assert_eq!(response.status(), StatusCode::FORBIDDEN, "{site}");
    }
    assert_eq!(app.store.writes(), writes, "no activity written");
    let request = http::Request::post(STATUS)
        .header(header::COOKIE, &cookie)
        .header("sec-fetch-site", "same-origin")
        .body(Body::empty())
        .unwrap();
    let json = status_json(app.send(request).await).await;
    assert_eq!(
        json["idle_expires_at"],
        unix_secs(START.saturating_add(5 * MINUTE).saturating_add(IDLE))
    );
}

#[test]
fn a_status_path_no_request_could_have_is_a_typed_error() {
    for (path, why) in [
        ("session/status", "does not start with `/`"),
        ("/session status", "contains whitespace"),
        ("/status?x=1", "has a query"),
        ("/status#top", "has a query or a fragment"),
        ("/stätus", "non-ASCII"),
    ] {
        let err = StatusEndpoint::at(path).unwrap_err();
        assert!(err.to_string().contains(why), "{path}: {err}");
        assert!(err.to_string().contains(&format!("{path:?}")), "{err}");
    }
}
