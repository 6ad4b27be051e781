//! The layer's hand-over to the store, model-checked: two requests on one
//! session through the real `SessionLifetimeLayer` over `MemoryStore`, every
//! interleaving of the store's locks explored by loom (see
//! `tests/memory_store.rs` for how, and `scripts/model-check`).
//!
//! Session IDs are random, so the store keeps every key in one shard here
//! (loom needs each run to take the same path); `tests/memory_store.rs`
//! covers keys in different shards.
//!
//! After each schedule, a request with each ID the session had is refused:
//! a logout sticks whatever ran beside it (an admitted request's touch, a
//! renewal, a remember-me switch), and a logout everywhere ends a session
//! being renewed under both of its IDs.
#![cfg(tsl_loom)]

use std::convert::Infallible;
use std::future::Future;
use std::pin::{pin, Pin};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use http::{header, Request, Response, StatusCode};
use loom::thread;
use tower_layer::Layer;
use tower_service::Service;
use tower_session_lifetime::{MemoryStore, Policy, SessionHandle, SessionLifetimeLayer, clock::ManualClock, rejection::DefaultRejection, session_lifetime::SessionLifetime, time::Timestamp};
use tower_session_lifetime_model_check::explore;

const IDLE: Duration = Duration::from_secs(600);
const RENEWAL: Duration = Duration::from_secs(60);

/// Runs a request to the end: nothing in it waits on anything but the
/// store's locks, which loom schedules, so polling never needs a wake-up.
fn block_on<T>(call: impl Future<Output = T>) -> T {
    let mut call = pin!(call);
    loop {
        if let Poll::Ready(output) = call.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
            return output;
        }
        thread::yield_now();
    }
}

/// The app: `/login`, `/logout`, `/logout-everywhere`, `/remember-me`, and
/// any other path a plain page.
#[derive(Clone)]
struct App;

impl Service<Request<String>> for App {
    type Response = Response<String>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response<String>, Infallible>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<String>) -> Self::Future {
        let handle = SessionHandle::from_extensions(request.extensions()).expect("the layer");
        let path = request.uri().path().to_owned();
        Box::pin(async move {
            let done = match path.as_str() {
                "/login" => handle.login("alice", false).await.is_ok(),
                "/logout" => handle.logout().await.is_ok(),
                "/logout-everywhere" => handle.logout_everywhere().await.is_ok(),
                "/remember-me" => handle.set_remember_me(true).await.is_ok(),
                _ => handle.is_active(),
            };
            Ok(Response::new(
                if done { "done" } else { "not done" }.to_owned(),
            ))
        })
    }
}

type Service_ = SessionLifetime<App, DefaultRejection>;

/// The layer over a fresh store on a manual clock.
fn app(clock: &ManualClock) -> Service_ {
    let policy = Policy::builder()
        .idle_timeout(IDLE)
        .renewal_interval(RENEWAL)
        .renewal_grace(Duration::from_secs(5))
        .build()
        .expect("a valid policy");
    SessionLifetimeLayer::new(MemoryStore::with_clock_in_one_shard(clock.clone()))
        .with_clock(clock.clone())
        .with_policy(policy)
        .layer(App)
}

/// Sends `path` with the session cookie `cookie` (a `name=value` pair).
fn send(app: &Service_, path: &str, cookie: Option<&str>) -> Response<String> {
    let mut request = Request::post(path);
    if let Some(cookie) = cookie {
        request = request.header(header::COOKIE, cookie);
    }
    let mut app = app.clone();
    block_on(app.call(request.body(String::new()).expect("a request"))).expect("infallible")
}

/// The `name=value` of the session cookie the response sets, if it sets one
/// that is not a removal.
fn new_cookie(response: &Response<String>) -> Option<String> {
    response
        .headers()
        .get_all(header::SET_COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .find(|value| !value.contains("Max-Age=0") && !value.contains("Max-Age=-"))
        .and_then(|value| value.split(';').next())
        .map(str::to_owned)
}

/// Signs in and returns the cookie.
fn login(app: &Service_) -> String {
    let response = send(app, "/login", None);
    assert_eq!(response.status(), StatusCode::OK);
    new_cookie(&response).expect("a session cookie")
}

fn assert_refused(app: &Service_, cookie: &str, what: &str) {
    let status = send(app, "/page", Some(cookie)).status();
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{what} still admitted");
}

/// Schedules in which the other request was given a new ID: the renewal
/// scenarios check that some did (they are not vacuous).
static RENEWED: AtomicUsize = AtomicUsize::new(0);
static RENEWED_BESIDE_EVERYWHERE: AtomicUsize = AtomicUsize::new(0);

/// A logout racing another request on the same session, which `before`
/// prepares (moving the clock so that its request touches or renews).
fn logout_vs(path: &'static str, before: fn(&ManualClock)) {
    let clock = ManualClock::new(Timestamp::from_unix_millis(1_800_000_000_000));
    let app = app(&clock);
    let cookie = login(&app);
    before(&clock);
    let (other_app, other_cookie) = (app.clone(), cookie.clone());
    let other = thread::spawn(move || send(&other_app, path, Some(&other_cookie)));
    let logout = send(&app, "/logout", Some(&cookie));
    let other = other.join().expect("the other request");
    assert_eq!(logout.status(), StatusCode::OK);
    assert_refused(&app, &cookie, "the logged-out ID");
    if let Some(renewed) = new_cookie(&other) {
        RENEWED.fetch_add(1, Ordering::Relaxed);
        assert_refused(
            &app,
            &renewed,
            "the ID a renewal gave out beside the logout",
        );
    }
}

#[test]
fn logout_vs_an_admitted_request_that_touches() {
    explore("layer: logout vs a request that touches", || {
        logout_vs("/page", |clock| clock.advance(Duration::from_secs(30)))
    });
}

#[test]
fn logout_vs_a_request_that_renews_the_id() {
    explore("layer: logout vs a request that renews the ID", || {
        logout_vs("/page", |clock| clock.advance(RENEWAL))
    });
    assert!(
        RENEWED.load(Ordering::Relaxed) > 0,
        "no schedule renewed the ID"
    );
}

#[test]
fn logout_vs_a_remember_me_switch() {
    explore("layer: logout vs a remember-me switch", || {
        logout_vs("/remember-me", |clock| {
            clock.advance(Duration::from_secs(1))
        })
    });
}

#[test]
fn logout_everywhere_vs_a_request_that_renews_the_id() {
    explore(
        "layer: logout everywhere vs a request that renews the ID",
        || {
            let clock = ManualClock::new(Timestamp::from_unix_millis(1_800_000_000_000));
            let app = app(&clock);
            let renewing = login(&app);
            let other_session = login(&app);
            clock.advance(RENEWAL);
            let (other_app, cookie) = (app.clone(), renewing.clone());
            let renewal = thread::spawn(move || send(&other_app, "/page", Some(&cookie)));
            let everywhere = send(&app, "/logout-everywhere", Some(&other_session));
            let renewal = renewal.join().expect("the renewing request");
            assert_eq!(everywhere.status(), StatusCode::OK);
            assert_refused(
                &app,
                &other_session,
                "the session that logged out everywhere",
            );
            assert_refused(&app, &renewing, "the renewed ID");
            if let Some(renewed) = new_cookie(&renewal) {
                RENEWED_BESIDE_EVERYWHERE.fetch_add(1, Ordering::Relaxed);
                assert_refused(
                    &app,
                    &renewed,
                    "the new ID of a renewal beside a logout everywhere",
                );
            }
        },
    );
    assert!(
        RENEWED_BESIDE_EVERYWHERE.load(Ordering::Relaxed) > 0,
        "no schedule renewed the ID"
    );
}
