//! Security hardening through the layer on `MemoryStore`: renewal, logout
//! racing touches and renewals, the session limit, logout everywhere, an
//! outage mid-traffic; and what does not depend on the store: the guessing
//! limit, `Cache-Control` on cookie responses, logout redirects on an
//! allow-list. (The same store checks run on Redis, PostgreSQL and SQLite
//! in their own test files.)
#![cfg(feature = "axum")]

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use async_trait::async_trait;
use axum::body::Body;
use axum::extract::Query;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use common::hardening::{
    a_listed_session_is_ended_after_its_id_renewed, an_outage_mid_traffic_fails_closed,
    logout_racing_touches_sticks, own_sessions_are_listed_and_ended,
    renewal_racing_requests_renews_once, renewal_replaces_the_id_and_keeps_the_deadline,
    session_limit_and_logout_everywhere,
};
use common::shared_store::{clock_now, log_in, send, Outage};
use common::{set_cookie, CountingStore, TestApp, HOUR, MINUTE, SECOND};
use http::{header, Request, StatusCode};
use tower_session_lifetime::{
    guessing::GuessLimit, logout_redirect::LogoutRedirects, rejection::RejectReason, MemoryStore,
    Policy, SessionHandle, SessionLifetimeLayer,
};

#[tokio::test]
async fn renewal_replaces_the_id_and_keeps_the_deadline_in_memory() {
    renewal_replaces_the_id_and_keeps_the_deadline(MemoryStore::new()).await;
}

#[tokio::test]
async fn own_sessions_are_listed_and_ended_in_memory() {
    own_sessions_are_listed_and_ended(MemoryStore::new()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logout_racing_touches_sticks_in_memory() {
    logout_racing_touches_sticks(MemoryStore::new(), 2000).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn renewal_racing_requests_renews_once_in_memory() {
    renewal_racing_requests_renews_once(MemoryStore::new(), 1000).await;
}

#[tokio::test]
async fn session_limit_and_logout_everywhere_in_memory() {
    session_limit_and_logout_everywhere(MemoryStore::new()).await;
}

/// `CountingStore` made to fail on every call, as a backend that went away.
struct StoreDown(CountingStore);

#[async_trait]
impl Outage for StoreDown {
    async fn begin(&mut self) {
        self.0.set_down(true);
    }
    async fn end(&mut self) {
        self.0.set_down(false);
    }
    fn keeps_data(&self) -> bool {
        true
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outage_mid_traffic_fails_closed_in_memory() {
    let store = CountingStore::new(&clock_now());
    // As a networked store: every request goes through `load_and_touch`.
    store
        .sync_reads
        .store(false, std::sync::atomic::Ordering::SeqCst);
    let mut outage = StoreDown(store.clone());
    an_outage_mid_traffic_fails_closed(store, &mut outage).await;
}

// ---------------------------------------------------------------------------
// Guessing

fn from(client: &str, cookie: &str) -> Request<Body> {
    let mut request = Request::get("/me")
        .header(header::COOKIE, cookie)
        .body(Body::empty())
        .unwrap();
    let address: SocketAddr = format!("{client}:40000").parse().unwrap();
    request.extensions_mut().insert(address);
    request
}

#[tokio::test]
async fn a_client_guessing_ids_gets_429_without_a_store_lookup_until_its_window_ends() {
    let app =
        TestApp::configured(|layer| layer.with_guess_limit(GuessLimit::new(5, MINUTE).unwrap()));
    let session = app.login("alice", false).await;
    let unknown = "session=AAAAAAAAAAAAAAAAAAAAAA";
    let forged = "session=not-an-id";
    for attempt in 0..5 {
        let cookie = if attempt % 2 == 0 { unknown } else { forged };
        let response = app.send(from("192.0.2.1", cookie)).await;
        assert_eq!(
            response.status(),
            StatusCode::UNAUTHORIZED,
            "attempt {attempt}"
        );
    }
    let loads = app.store.loads();
    let writes = app.store.writes();
    for cookie in [unknown, forged, session.as_str()] {
        let response = app.send(from("192.0.2.1", cookie)).await;
        assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(
            response.extensions().get::<RejectReason>(),
            Some(&RejectReason::TooManyGuesses)
        );
        assert_eq!(response.headers()[header::RETRY_AFTER], "60");
        assert_eq!(set_cookie(&response), None, "the cookie is left alone");
    }
    assert_eq!(app.store.loads(), loads, "no store lookup while limited");
    assert_eq!(app.store.writes(), writes);
    // Another client, and a request without a cookie, are not limited.
    let calls = app.inner_calls();
    let other = app.send(from("192.0.2.2", &session)).await;
    assert_eq!(other.status(), StatusCode::OK);
    let mut visitor = Request::get("/me").body(Body::empty()).unwrap();
    visitor
        .extensions_mut()
        .insert("192.0.2.1:40000".parse::<SocketAddr>().unwrap());
    assert_eq!(app.send(visitor).await.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(app.inner_calls(), calls + 2, "both reached the handler");
    // The window ends a minute after the first failure.
    app.advance(MINUTE - SECOND);
    let limited = app.send(from("192.0.2.1", &session)).await;
    assert_eq!(limited.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(limited.headers()[header::RETRY_AFTER], "1");
    app.advance(SECOND);
    assert_eq!(
        app.send(from("192.0.2.1", &session)).await.status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn expired_sessions_do_not_count_as_guesses() {
    let app = TestApp::configured(|layer| {
        layer
            .with_policy(common::policy(MINUTE, HOUR))
            .with_guess_limit(GuessLimit::new(1, HOUR).unwrap())
    });
    for _ in 0..3 {
        let cookie = app.login("alice", false).await;
        app.advance(MINUTE);
        let expired = app.send(from("192.0.2.1", &cookie)).await;
        assert_eq!(
            expired.extensions().get::<RejectReason>(),
            Some(&RejectReason::IdleTimeout)
        );
    }
}

// ---------------------------------------------------------------------------
// Cache-Control

#[tokio::test]
async fn responses_that_set_or_clear_the_cookie_are_not_stored_by_caches() {
    let app = TestApp::new(
        Policy::builder()
            .idle_timeout(HOUR)
            .touch_granularity(Duration::ZERO)
            .build()
            .unwrap(),
    );
    let login = app.request("POST", "/login?user=alice", None).await;
    assert!(set_cookie(&login).is_some());
    assert_eq!(login.headers()[header::CACHE_CONTROL], "no-store");
    let cookie = {
        let set = set_cookie(&login).unwrap();
        format!("{}={}", set.name(), set.value())
    };
    // An admitted request that changes no cookie leaves caching to the app.
    let plain = app.me(&cookie).await;
    assert_eq!(set_cookie(&plain), None);
    assert_eq!(plain.headers().get(header::CACHE_CONTROL), None);
    let logout = app.request("POST", "/logout", Some(&cookie)).await;
    assert!(set_cookie(&logout).is_some());
    assert_eq!(logout.headers()[header::CACHE_CONTROL], "no-store");
    // A refused cookie is cleared, and not cached either.
    let refused = app.me(&cookie).await;
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(refused.headers()[header::CACHE_CONTROL], "no-store");
}

#[tokio::test]
async fn a_renewed_cookie_is_not_stored_by_caches_even_if_the_app_says_public() {
    let clock = clock_now();
    let policy = Policy::builder().renewal_interval(MINUTE).build().unwrap();
    let router = common::routes()
        .route(
            "/public",
            get(|| async { ([(header::CACHE_CONTROL, "public, max-age=3600")], "hello") }),
        )
        .layer(
            SessionLifetimeLayer::new(MemoryStore::new())
                .with_clock(clock.clone())
                .with_policy(policy),
        );
    let cookie = log_in(&router, "alice").await;
    let unchanged = send(&router, "GET", "/public", Some(&cookie)).await;
    assert_eq!(set_cookie(&unchanged), None);
    assert_eq!(
        unchanged.headers()[header::CACHE_CONTROL],
        "public, max-age=3600",
        "the app's choice where no cookie is set"
    );
    clock.advance(MINUTE);
    let renewed = send(&router, "GET", "/public", Some(&cookie)).await;
    assert!(set_cookie(&renewed).is_some(), "renewed");
    assert_eq!(renewed.headers()[header::CACHE_CONTROL], "no-store");
}

// ---------------------------------------------------------------------------
// Logout redirects

#[derive(serde::Deserialize)]
struct ReturnTo {
    return_to: Option<String>,
}

async fn logout_to(session: SessionHandle, Query(params): Query<ReturnTo>) -> impl IntoResponse {
    session
        .logout_and_redirect(params.return_to.as_deref())
        .await
}

#[tokio::test]
async fn a_logout_redirects_only_to_allowed_targets() {
    let redirects = LogoutRedirects::new("/")
        .unwrap()
        .allow("/goodbye")
        .unwrap()
        .allow("https://app.example/signed-out")
        .unwrap();
    let router = common::routes()
        .route("/bye", post(logout_to))
        .layer(SessionLifetimeLayer::new(MemoryStore::new()).with_logout_redirects(redirects));
    let cases = [
        (Some("/goodbye"), "/goodbye"),
        (
            Some("https://app.example/signed-out"),
            "https://app.example/signed-out",
        ),
        (Some("//evil.example/goodbye"), "/"),
        (Some("/\\evil.example"), "/"),
        (Some("https://evil.example/"), "/"),
        (Some("https://app.example.evil.example/signed-out"), "/"),
        (Some("https://app.example@evil.example/signed-out"), "/"),
        (Some("javascript:alert(1)"), "/"),
        (Some("/goodbye/../admin"), "/"),
        (Some("/goodbyes"), "/"),
        (Some(""), "/"),
        (None, "/"),
    ];
    for (return_to, location) in cases {
        let cookie = log_in(&router, "alice").await;
        let uri = match return_to {
            Some(target) => format!("/bye?return_to={}", percent_encoded(target)),
            None => "/bye".to_owned(),
        };
        let response = send(&router, "POST", &uri, Some(&cookie)).await;
        assert_eq!(response.status(), StatusCode::SEE_OTHER, "{return_to:?}");
        assert_eq!(
            response.headers()[header::LOCATION],
            location,
            "{return_to:?}"
        );
        assert!(common::clears_cookie(&response), "logged out");
        let replay = send(&router, "GET", "/me", Some(&cookie)).await;
        assert_eq!(replay.status(), StatusCode::UNAUTHORIZED);
    }
}

/// Percent-encodes everything but unreserved characters.
fn percent_encoded(value: &str) -> String {
    value
        .bytes()
        .map(|byte| match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (byte as char).to_string()
            }
            _ => format!("%{byte:02X}"),
        })
        .collect()
}

#[tokio::test]
async fn a_listed_session_is_ended_after_its_id_renewed_in_memory() {
    a_listed_session_is_ended_after_its_id_renewed(MemoryStore::new()).await;
}
