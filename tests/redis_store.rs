//! `RedisStore` against a real `redis-server`: the conformance suite every
//! store runs, the rules through the layer, and a server that goes away and
//! comes back.
//!
//! `scripts/test` starts a server on a free loopback port and sets
//! `TSL_REDIS_URL`; run through it. Without a server these tests fail, with
//! a message saying what to do: they never skip.
#![cfg(feature = "redis")]

mod common;

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use axum::body::Body;
use axum::Router;
use common::{body_text, routes, set_cookie, HOUR, MINUTE};
use http::{header, Request, Response, StatusCode};
use tower::ServiceExt;
use tower_session_lifetime::store::conformance::{insert_live, live_record};
use tower_session_lifetime::{
    Clock, LifetimeStore, ManualClock, Policy, RedisStore, RejectReason, SessionLifetimeLayer,
    StoreErrorKind, SystemClock,
};

/// The URL of the server `scripts/test` started.
fn redis_url() -> String {
    std::env::var("TSL_REDIS_URL").unwrap_or_else(|_| {
        panic!(
            "TSL_REDIS_URL is not set: run the tests with scripts/test, which starts \
             redis-server on a free loopback port (and installs it from Debian's \
             redis-server package when missing)"
        )
    })
}

tower_session_lifetime::lifetime_store_conformance!(async {
    RedisStore::open(&redis_url()).expect("a valid Redis URL")
});

/// The test app's routes behind the layer over `store`.
fn app(store: RedisStore, clock: &ManualClock) -> Router {
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

async fn send(app: &Router, method: &str, path: &str, cookie: Option<&str>) -> Response<Body> {
    let mut request = Request::builder().method(method).uri(path);
    if let Some(cookie) = cookie {
        request = request.header(header::COOKIE, cookie);
    }
    app.clone()
        .oneshot(request.body(Body::empty()).unwrap())
        .await
        .unwrap()
}

async fn log_in(app: &Router, user: &str) -> String {
    let response = send(app, "POST", &format!("/login?user={user}"), None).await;
    assert_eq!(response.status(), StatusCode::OK, "login");
    let set = set_cookie(&response).expect("a session cookie");
    format!("{}={}", set.name(), set.value())
}

/// A clock at the real time: Redis expires keys by its own clock.
fn clock_now() -> ManualClock {
    ManualClock::new(SystemClock.now())
}

#[tokio::test]
async fn the_rules_hold_through_the_layer_on_redis() {
    let clock = clock_now();
    let app = app(RedisStore::open(&redis_url()).unwrap(), &clock);
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

#[tokio::test]
async fn two_stores_on_one_redis_see_the_same_sessions() {
    let clock = clock_now();
    let node_a = app(RedisStore::open(&redis_url()).unwrap(), &clock);
    let node_b = app(RedisStore::open(&redis_url()).unwrap(), &clock);
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

#[tokio::test]
async fn a_record_expires_in_redis_at_its_deadline() {
    let store = RedisStore::open(&redis_url()).unwrap();
    let (key, record) = insert_live(&store).await;
    let redis_key = format!(
        "{}{}",
        tower_session_lifetime::store::DEFAULT_REDIS_PREFIX,
        key.to_hex()
    );
    let mut redis = redis::Client::open(redis_url().as_str())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    // The key's expiry in Redis is the record's `expires_at`, to the
    // millisecond: Redis reclaims it then by itself.
    let expires_at: i64 = redis::cmd("PEXPIRETIME")
        .arg(&redis_key)
        .query_async(&mut redis)
        .await
        .unwrap();
    assert_eq!(expires_at as u64, record.expires_at.as_unix_millis());
    let later = record.expires_at.saturating_add(HOUR);
    let touched_at = record.last_activity.saturating_add(MINUTE);
    store.touch(&key, touched_at, later).await.unwrap();
    let expires_at: i64 = redis::cmd("PEXPIRETIME")
        .arg(&redis_key)
        .query_async(&mut redis)
        .await
        .unwrap();
    assert_eq!(
        expires_at as u64,
        later.as_unix_millis(),
        "a touch moves it"
    );
    // A deadline that has passed: Redis drops the record at once.
    let past = SystemClock.now().saturating_add(Duration::ZERO);
    store
        .touch(&key, touched_at.saturating_add(MINUTE), past)
        .await
        .unwrap();
    assert_eq!(store.load(&key).await.unwrap(), None);
}

/// A `redis-server` of this test's own, on a free loopback port.
struct OwnServer {
    port: u16,
    dir: std::path::PathBuf,
    process: Option<Child>,
}

impl OwnServer {
    fn start() -> Self {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let dir = std::env::temp_dir().join(format!("tsl-redis-{port}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut server = OwnServer {
            port,
            dir,
            process: None,
        };
        server.restart();
        server
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    fn restart(&mut self) {
        let binary = std::env::var("TSL_REDIS_SERVER").unwrap_or_else(|_| "redis-server".into());
        let process = Command::new(binary)
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(&self.dir)
            .stdout(Stdio::null())
            .spawn()
            .expect("redis-server runs (scripts/test installs it)");
        self.process = Some(process);
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("redis-server did not start on port {}", self.port);
    }

    fn stop(&mut self) {
        if let Some(mut process) = self.process.take() {
            let _ = process.kill();
            let _ = process.wait();
        }
    }
}

impl Drop for OwnServer {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[tokio::test]
async fn a_server_that_goes_away_gives_503_and_the_store_recovers_when_it_is_back() {
    let mut server = OwnServer::start();
    let clock = clock_now();
    let store = RedisStore::open(&server.url()).unwrap();
    let app = app(store, &clock);
    let cookie = log_in(&app, "alice").await;

    server.stop();
    let response = send(&app, "GET", "/me", Some(&cookie)).await;
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        response.extensions().get::<RejectReason>(),
        Some(&RejectReason::StoreUnavailable)
    );
    let response = send(&app, "POST", "/login?user=bob", None).await;
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);

    // The server comes back (empty: it keeps nothing on disk).
    server.restart();
    let mut recovered = false;
    for _ in 0..50 {
        let response = send(&app, "POST", "/login?user=carol", None).await;
        if response.status() == StatusCode::OK {
            recovered = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(recovered, "the store reconnected");
}

#[tokio::test]
async fn connection_refused_is_a_typed_unavailable_error() {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    // Nothing listens there now.
    let store = RedisStore::open(&format!("redis://127.0.0.1:{port}")).unwrap();
    let err = store.load(&live_key()).await.unwrap_err();
    assert_eq!(err.kind(), StoreErrorKind::Unavailable, "{err:?}");
    assert!(
        std::error::Error::source(&err).is_some(),
        "keeps its source"
    );
    let err = store.create(&live_key(), &live_record()).await.unwrap_err();
    assert_eq!(err.kind(), StoreErrorKind::Unavailable);
}

fn live_key() -> tower_session_lifetime::SessionKey {
    tower_session_lifetime::store::conformance::fresh_key()
}

#[test]
fn a_malformed_url_is_refused_at_once() {
    assert!(RedisStore::open("not a url").is_err());
}
