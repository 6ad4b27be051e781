//! Attacks on the crate's promises, written by a reviewer told only the
//! promises: route groups under hostile path spellings (and bounded work on
//! huge ones), logout everywhere racing renewals (with many other sessions
//! in the store, and on Redis and PostgreSQL), follow mode
//! (tower-sessions / axum-login) races around `cycle_id`, ending a listed
//! session after several ID changes, racing sign-ins over a sign-in, a
//! lifetime store that fails in the middle of a move, and odd `Cookie` and
//! `Set-Cookie` headers. Each test pins one promise; the ones this review
//! first broke are regression tests now.
#![cfg(all(feature = "tower-sessions", feature = "axum"))]
#![allow(clippy::too_many_lines)]

mod common;
mod compose;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use axum::body::Body;
use axum::extract::Query;
use axum::routing::{get, post};
use axum::Router;
use axum_login::{AuthManagerLayerBuilder, AuthSession};
use common::*;
use compose::{cookie_header, removes_cookie, Backend, Stack, COOKIE};
use http::{header, Request, Response, StatusCode};
use serde::Deserialize;
use tokio::sync::Notify;
use tower::ServiceExt;
use tower_session_lifetime::{
    clock::{Clock, ManualClock, SystemClock},
    id::SessionKey,
    policy::Tightening,
    rejection::RejectReason,
    store::LifetimeStore,
    MemoryStore, OnInvalidSession, Policies, Policy, SessionHandle, SessionLifetimeLayer,
};
use tower_sessions::cookie::time;
use tower_sessions::session::{Id, Record};
use tower_sessions::session_store;
use tower_sessions::{
    Expiry, MemoryStore as DataStore, Session, SessionManagerLayer, SessionStore,
};

fn reason(response: &Response<Body>) -> Option<RejectReason> {
    response.extensions().get::<RejectReason>().copied()
}

// ---------------------------------------------------------------------------
// 1. Route groups
// ---------------------------------------------------------------------------

/// The app of `tests/policies.rs`'s wildcard test, plus a doubly nested
/// router: `/admin`, `/admin/{*rest}`, `/console` (nested, `/{*rest}`),
/// `/deep/inner/{*rest}` (nested twice). Admin handlers answer `admin <subject>`.
fn route_group_app() -> TestApp {
    async fn admin_page(session: SessionHandle) -> Result<String, StatusCode> {
        session
            .subject()
            .map(|subject| format!("admin {subject}"))
            .ok_or(StatusCode::UNAUTHORIZED)
    }
    let policies = Policies::builder(
        Policy::builder()
            .idle_timeout(HOUR)
            .absolute_timeout(DAY)
            .build()
            .unwrap(),
    )
    .route("/admin", Tightening::new().idle_timeout(MINUTE))
    .route("/console", Tightening::new().idle_timeout(MINUTE))
    .route("/deep", Tightening::new().idle_timeout(MINUTE))
    .build()
    .unwrap();
    let console = Router::new()
        .route("/", get(admin_page))
        .route("/{*rest}", get(admin_page));
    let inner = Router::new().route("/{*rest}", get(admin_page));
    let deep = Router::new().nest("/inner", inner);
    TestApp::routed(|routes, layer| {
        routes
            .route("/admin", get(admin_page))
            .route("/admin/", get(admin_page))
            .route("/admin/{*rest}", get(admin_page))
            .nest("/console", console)
            .nest("/deep", deep)
            .layer(layer.with_policies(policies))
    })
}

async fn route_login(app: &TestApp) -> String {
    app.login("pat", false).await
}

async fn get_with(app: &TestApp, uri: &str, cookie: &str) -> Response<Body> {
    let request = Request::get(uri)
        .header(header::HOST, "h.example")
        .header(header::COOKIE, cookie)
        .body(Body::empty())
        .unwrap();
    app.send(request).await
}

/// Hostile spellings of paths that axum routes into the admin handlers
/// (or that a proxy/file server could read as such) are judged by the
/// group's 1-minute idle timeout, not the app's hour.
#[tokio::test]
async fn route_group_hostile_spellings_are_judged_by_the_group() {
    let app = route_group_app();
    let long_dots = format!("/admin{}", "/..".repeat(2000));
    let long_pct = format!("/admin/{}", "%25".repeat(5000));
    let long_segments = format!("/admin/{}x", "a/".repeat(5000));
    let spellings: Vec<String> = [
        "/admin/",
        "/admin//",
        "//admin//x",
        "/admin/..;/",
        "/admin/;/..",
        "/admin;x/../admin/x",
        "/admin/%2E%2e",
        "/admin/%2e%2E/%2E%2E",
        "/admin/%25%32%65%25%32%65",
        "/admin/%25252e%25252e",
        "/admin/%c0%ae%c0%ae",
        "/admin/%C3%A9",
        "/admin/%00",
        "/admin/%",
        "/admin/%zz/..",
        "/admin/%5C..%5C",
        "/admin/.../",
        "/console/",
        "/console/a/b/../../..",
        "/console/%2e%2e%2f%2e%2e",
        "/deep/inner/x",
        "/deep/inner/..",
        "/deep/inner/%2e%2e/%2e%2e",
        "/deep//inner/x",
        "/admin?x=/../",
        "http://h.example/admin/x",
        "http://h.example//admin/..",
    ]
    .iter()
    .map(|s| s.to_string())
    .chain([long_dots, long_pct, long_segments])
    .collect();
    let mut failures = Vec::new();
    for path in &spellings {
        let cookie = route_login(&app).await;
        app.advance(2 * MINUTE);
        let response = get_with(&app, path, &cookie).await;
        let status = response.status();
        let refused = reason(&response);
        let body = body_text(response).await;
        // The promise: the admin handlers never run with a session the
        // group's limits ended (a 404 from the router is no escape).
        if body.starts_with("admin ")
            || (status != StatusCode::NOT_FOUND && refused != Some(RejectReason::IdleTimeout))
        {
            failures.push(format!("{path:.80}: {status} {refused:?} {body:.40}"));
        }
    }
    assert!(failures.is_empty(), "escaped the group: {failures:#?}");
}

/// Very long hostile paths never panic and get a defined answer. (Their
/// cost is linear in the path: a bounded number of readings, each one
/// pass; no test times it, since timers here wander.)
#[tokio::test]
async fn route_group_hostile_long_paths_are_cheap() {
    let app = route_group_app();
    let cookie = route_login(&app).await;
    let patterns = [
        "/..".repeat(20_000),
        "%25".repeat(20_000),
        "%2e%2e/".repeat(8_000),
        "/%252e%252e".repeat(5_000),
        "//".repeat(30_000),
        "\\..".replace('\\', "%5c").repeat(15_000),
        "a/".repeat(30_000),
    ];
    for pattern in patterns {
        let uri = format!("/admin/{pattern}");
        let Ok(uri) = uri.parse::<http::Uri>() else {
            continue;
        };
        let response = app
            .send(
                Request::get(uri.clone())
                    .header(header::COOKIE, &cookie)
                    .body(Body::empty())
                    .unwrap(),
            )
            .await;
        assert!(
            !response.status().is_server_error(),
            "{:.40}: {}",
            uri.path(),
            response.status()
        );
    }
}

// ---------------------------------------------------------------------------
// 2. Logout everywhere racing renewals
// ---------------------------------------------------------------------------

fn renewing_policy() -> Policy {
    Policy::builder()
        .idle_timeout(HOUR)
        .absolute_timeout(DAY)
        .renewal_interval(MINUTE)
        .renewal_grace(10 * SECOND)
        .build()
        .unwrap()
}

/// `routes()` behind a renewing layer over `store`.
fn renewing_app(store: Arc<dyn LifetimeStore>, clock: &ManualClock) -> Router {
    routes().layer(
        SessionLifetimeLayer::from_shared_store(store)
            .with_clock(clock.clone())
            .with_policy(renewing_policy()),
    )
}

async fn send_router(
    app: &Router,
    method: &str,
    path: &str,
    cookie: Option<&str>,
) -> Response<Body> {
    let mut request = Request::builder().method(method).uri(path);
    if let Some(cookie) = cookie {
        request = request.header(header::COOKIE, cookie);
    }
    app.clone()
        .oneshot(request.body(Body::empty()).unwrap())
        .await
        .unwrap()
}

async fn router_login(app: &Router, user: &str) -> String {
    let response = send_router(app, "POST", &format!("/login?user={user}"), None).await;
    assert_eq!(response.status(), StatusCode::OK, "login");
    let set = set_cookie(&response).expect("cookie");
    format!("{}={}", set.name(), set.value())
}

/// Many sessions of `alice` whose renewal is due are used at the same time
/// as one of them logs out everywhere: afterwards, no ID any of them held
/// or was given is admitted.
async fn logout_everywhere_races_renewals(
    store: Arc<dyn LifetimeStore>,
    clock: ManualClock,
    others: usize,
    rounds: usize,
) {
    let app = renewing_app(store, &clock);
    for i in 0..others {
        router_login(&app, &format!("other-{i}-{}", std::process::id())).await;
    }
    for round in 0..rounds {
        let alice = format!("alice-{}-{round}-{}", std::process::id(), rand_suffix());
        let mut cookies = Vec::new();
        for _ in 0..24 {
            cookies.push(router_login(&app, &alice).await);
        }
        let trigger = router_login(&app, &alice).await;
        clock.advance(2 * MINUTE); // every ID is due for renewal
        let mut tasks = Vec::new();
        for cookie in cookies.clone() {
            let app = app.clone();
            tasks.push(tokio::spawn(async move {
                let response = send_router(&app, "GET", "/me", Some(&cookie)).await;
                let renewed = set_cookie(&response)
                    .filter(|c| !c.value().is_empty())
                    .map(|c| format!("{}={}", c.name(), c.value()));
                (response.status(), renewed)
            }));
        }
        let everywhere = {
            let app = app.clone();
            let trigger = trigger.clone();
            tokio::spawn(async move {
                tokio::task::yield_now().await;
                send_router(&app, "POST", "/logout-everywhere", Some(&trigger))
                    .await
                    .status()
            })
        };
        let mut held = cookies.clone();
        for task in tasks {
            let (_, renewed) = task.await.unwrap();
            held.extend(renewed);
        }
        assert_eq!(everywhere.await.unwrap(), StatusCode::OK);
        let mut alive = Vec::new();
        for cookie in &held {
            let response = send_router(&app, "GET", "/me", Some(cookie)).await;
            if response.status() == StatusCode::OK {
                alive.push(cookie.clone());
            }
        }
        assert!(
            alive.is_empty(),
            "round {round}: {} of {} IDs survived a logout everywhere",
            alive.len(),
            held.len()
        );
    }
}

fn rand_suffix() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u64(SystemClock.now().as_unix_millis());
    hasher.finish()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn logout_everywhere_racing_renewals_on_memory_store_with_many_sessions() {
    let clock = ManualClock::new(START);
    let store = MemoryStore::with_clock(clock.clone());
    logout_everywhere_races_renewals(Arc::new(store), clock, 5_000, 20).await;
}

#[cfg(feature = "redis")]
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn logout_everywhere_racing_renewals_on_redis() {
    let url = std::env::var("TSL_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    let store = tower_session_lifetime::RedisStore::open(&url)
        .unwrap()
        .with_prefix(format!("attack{}:", rand_suffix()));
    let clock = ManualClock::new(SystemClock.now());
    logout_everywhere_races_renewals(Arc::new(store), clock, 50, 8).await;
}

#[cfg(feature = "postgres")]
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn logout_everywhere_racing_renewals_on_postgres() {
    let url = std::env::var("TSL_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
    let store = tower_session_lifetime::PostgresStore::open(&url)
        .unwrap()
        .with_table("attack_review_lifetimes")
        .unwrap();
    store.migrate().await.unwrap();
    let clock = ManualClock::new(SystemClock.now());
    logout_everywhere_races_renewals(Arc::new(store), clock, 50, 8).await;
}

// ---------------------------------------------------------------------------
// A follow-mode stack of our own: tower-sessions + axum-login under the
// lifetime layer, with a data store the test can pause, and routes to list
// and end sessions.
// ---------------------------------------------------------------------------

/// tower-sessions' memory store, which can pause once right after a `save`.
#[derive(Clone, Debug, Default)]
struct PausingStore {
    inner: DataStore,
    pause_after_save: Arc<AtomicBool>,
    /// Pauses before the n-th load from now (0: off).
    pause_before_load: Arc<std::sync::atomic::AtomicUsize>,
    entered: Arc<Notify>,
    release: Arc<Notify>,
}

#[async_trait]
impl SessionStore for PausingStore {
    async fn create(&self, record: &mut Record) -> session_store::Result<()> {
        if std::env::var_os("TSL_ADVERSARIAL_TRACE").is_some() {
            eprintln!("data create");
        }
        self.inner.create(record).await
    }
    async fn save(&self, record: &Record) -> session_store::Result<()> {
        if std::env::var_os("TSL_ADVERSARIAL_TRACE").is_some() {
            eprintln!("data save {}", record.id);
        }
        self.inner.save(record).await?;
        if self.pause_after_save.swap(false, Ordering::SeqCst) {
            self.entered.notify_one();
            self.release.notified().await;
        }
        Ok(())
    }
    async fn load(&self, id: &Id) -> session_store::Result<Option<Record>> {
        if std::env::var_os("TSL_ADVERSARIAL_TRACE").is_some() {
            eprintln!("data load {id}");
        }
        let armed = self.pause_before_load.load(Ordering::SeqCst);
        if armed > 0 && self.pause_before_load.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.entered.notify_one();
            self.release.notified().await;
        }
        self.inner.load(id).await
    }
    async fn delete(&self, id: &Id) -> session_store::Result<()> {
        if std::env::var_os("TSL_ADVERSARIAL_TRACE").is_some() {
            eprintln!("data delete {id}");
        }
        self.inner.delete(id).await
    }
}

#[derive(Clone, Debug, Deserialize)]
struct Creds {
    user: String,
    password: String,
    #[serde(default)]
    remember: bool,
}

#[derive(Deserialize)]
struct KeyParam {
    key: String,
}

#[allow(dead_code)]
struct Follow {
    router: Router,
    clock: ManualClock,
    lifetimes: MemoryStore,
    data: PausingStore,
}

async fn follow_login_again(
    mut auth: AuthSession<Backend>,
    lifetime: SessionHandle,
    Query(creds): Query<Creds>,
) -> StatusCode {
    let remember = creds.remember;
    let user = creds.user.clone();
    let Ok(Some(found)) = auth
        .authenticate(
            serde_json::from_value(serde_json::json!({
                "user": creds.user, "password": creds.password, "remember": remember
            }))
            .unwrap(),
        )
        .await
    else {
        return StatusCode::UNAUTHORIZED;
    };
    if lifetime.login(user, remember).await.is_err() {
        return StatusCode::CONFLICT;
    }
    match auth.login(&found).await {
        Ok(()) => StatusCode::OK,
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

async fn follow_protected(auth: AuthSession<Backend>) -> Result<String, StatusCode> {
    use axum_login::AuthUser;
    auth.user
        .map(|user| user.id())
        .ok_or(StatusCode::UNAUTHORIZED)
}

async fn follow_cycle(session: Session) -> StatusCode {
    match session.cycle_id().await {
        Ok(()) => StatusCode::OK,
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

async fn follow_sessions(session: SessionHandle) -> Result<String, StatusCode> {
    let listed = session
        .sessions()
        .await
        .map_err(|_| StatusCode::SERVICE_UNAVAILABLE)?;
    Ok(listed
        .iter()
        .map(|info| {
            format!(
                "{}{}",
                info.key.to_hex(),
                if info.current { "*" } else { "" }
            )
        })
        .collect::<Vec<_>>()
        .join(","))
}

async fn follow_end(
    session: SessionHandle,
    Query(params): Query<KeyParam>,
) -> Result<String, StatusCode> {
    let key = SessionKey::from_hex(&params.key).ok_or(StatusCode::BAD_REQUEST)?;
    session
        .end_session(&key)
        .await
        .map(|ended| ended.to_string())
        .map_err(|_| StatusCode::SERVICE_UNAVAILABLE)
}

impl Follow {
    fn new(policy: Policy) -> Self {
        let clock = ManualClock::new(SystemClock.now());
        let lifetimes = MemoryStore::with_clock(clock.clone());
        let data = PausingStore::default();
        let sessions = SessionManagerLayer::new(data.clone())
            .with_expiry(Expiry::OnInactivity(time::Duration::days(1)));
        let auth = AuthManagerLayerBuilder::new(Backend, sessions).build();
        let layer = SessionLifetimeLayer::new(lifetimes.clone())
            .with_clock(clock.clone())
            .with_policy(policy)
            .follow_tower_sessions()
            .delete_data_from(data.clone())
            .on_invalid_session(OnInvalidSession::PassThrough);
        let router = Router::new()
            .route("/login", post(follow_login_again))
            .route("/protected", get(follow_protected))
            .route("/cycle", post(follow_cycle))
            .route("/count", get(compose::count))
            .route("/sessions", get(follow_sessions))
            .route("/sessions/end", post(follow_end))
            .layer(auth)
            .layer(layer);
        Follow {
            router,
            clock,
            lifetimes,
            data,
        }
    }

    async fn request(&self, method: &str, path: &str, cookie: Option<&str>) -> Response<Body> {
        self.router
            .clone()
            .oneshot(cookie_request(method, path, cookie))
            .await
            .unwrap()
    }

    async fn login(&self, user: &str, cookie: Option<&str>) -> String {
        let response = self
            .request(
                "POST",
                &format!("/login?user={user}&password={user}"),
                cookie,
            )
            .await;
        assert_eq!(response.status(), StatusCode::OK, "login");
        cookie_header(&response).expect("login sets the cookie")
    }

    async fn cycle(&self, cookie: &str) -> String {
        let response = self.request("POST", "/cycle", Some(cookie)).await;
        assert_eq!(response.status(), StatusCode::OK, "cycle");
        cookie_header(&response).expect("cycle sets the cookie")
    }
}

// ---------------------------------------------------------------------------
// 3. Follow mode: cycle_id vs logout, and the deadlines a cycle carries
// ---------------------------------------------------------------------------

/// An app that signs in through axum-login alone (no `SessionHandle::login`)
/// and rotates the ID with `cycle_id` in a slow request: the new ID's idle
/// deadline must count from the request's admission (promise 3), and the
/// absolute deadline from the sign-in.
#[tokio::test]
async fn unnamed_session_slow_cycle_gets_its_idle_deadline_from_the_response_time() {
    let stack = Stack::new(policy(HOUR, 8 * HOUR));
    let response = stack
        .request("POST", "/login-axum-only?user=ann&password=ann", None)
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let cookie = cookie_header(&response).unwrap();
    stack.clock.advance(50 * MINUTE);
    // Admitted at 50 min; answers at 109 min.
    let slow = stack.start_slow("POST", "/slow-cycle", &cookie).await;
    stack.clock.advance(59 * MINUTE);
    stack.slow.release.notify_one();
    let response = slow.await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let renewed = cookie_header(&response).expect("a new ID");
    // 111 min: past admission (50) + idle (60).
    stack.clock.advance(2 * MINUTE);
    let after = stack.protected(&renewed).await;
    assert_ne!(
        after.status(),
        StatusCode::OK,
        "the new ID lives past the idle deadline of its request's admission"
    );
}

#[tokio::test]
async fn unnamed_session_cycle_id_resets_the_absolute_deadline() {
    let stack = Stack::new(policy(HOUR, 2 * HOUR));
    let response = stack
        .request("POST", "/login-axum-only?user=ann&password=ann", None)
        .await;
    let mut cookie = cookie_header(&response).unwrap();
    for _ in 0..6 {
        stack.clock.advance(50 * MINUTE);
        let response = stack.request("POST", "/cycle", Some(&cookie)).await;
        match cookie_header(&response) {
            Some(next) if response.status() == StatusCode::OK => cookie = next,
            // Refused at the absolute deadline: the visitor's cycle_id
            // hands out no ID.
            _ => {
                assert_eq!(reason(&response), Some(RejectReason::AbsoluteTimeout));
                return;
            }
        }
    }
    // 5 hours after the sign-in, with an absolute timeout of 2 hours.
    let response = stack.protected(&cookie).await;
    assert_ne!(
        response.status(),
        StatusCode::OK,
        "cycle_id renewed an axum-login session past its absolute deadline"
    );
}

/// A logout through the handle (no flush) while a `cycle_id` request is in
/// flight: the new ID must never be live.
#[tokio::test]
async fn handle_logout_racing_a_slow_cycle_is_not_undone() {
    let stack = Stack::new(policy(HOUR, DAY));
    let cookie = stack.login("alice", false, None).await;
    let slow = stack.start_slow("POST", "/slow-cycle", &cookie).await;
    let logout = stack
        .request("POST", "/end-then-write", Some(&cookie))
        .await;
    assert_eq!(logout.status(), StatusCode::OK);
    stack.slow.release.notify_one();
    let response = slow.await.unwrap();
    if let Some(renewed) = cookie_header(&response) {
        assert_ne!(stack.protected(&renewed).await.status(), StatusCode::OK);
        assert!(!stack.has_data(&renewed).await);
    }
    assert_ne!(stack.protected(&cookie).await.status(), StatusCode::OK);
}

/// A cycle_id request slower than the idle timeout on a session that other
/// requests kept alive meanwhile: the session is live, so the user must
/// stay signed in (on one ID or the other) and keep their data.
#[tokio::test]
async fn slow_cycle_on_a_session_kept_alive_by_other_requests_signs_the_user_out() {
    let stack = Stack::new(policy(HOUR, DAY));
    let cookie = stack.login("alice", false, None).await;
    assert_eq!(
        stack.request("GET", "/count", Some(&cookie)).await.status(),
        StatusCode::OK
    );
    let slow = stack.start_slow("POST", "/slow-cycle", &cookie).await;
    for _ in 0..3 {
        stack.clock.advance(40 * MINUTE);
        assert_eq!(
            stack.protected(&cookie).await.status(),
            StatusCode::OK,
            "kept alive"
        );
    }
    stack.slow.release.notify_one();
    let response = slow.await.unwrap();
    let held = cookie_header(&response).unwrap_or_else(|| cookie.clone());
    let after = stack.protected(&held).await;
    let status = after.status();
    let body = body_text(after).await;
    assert_eq!(
        (status, body.as_str()),
        (StatusCode::OK, "alice"),
        "a live session was signed out by a slow cycle_id (cycle answered {}, data of old ID: {})",
        response.status(),
        stack.has_data(&cookie).await
    );
}

// ---------------------------------------------------------------------------
// 4. end_session on a listed key
// ---------------------------------------------------------------------------

fn listed_key_of_other(listing: &str) -> String {
    listing
        .split(',')
        .find(|entry| !entry.ends_with('*'))
        .expect("another session")
        .to_owned()
}

/// Follow mode: a session renewed (cycle_id) three times within the grace
/// period after it was listed is still ended by its listed key.
#[tokio::test]
async fn end_session_follows_several_cycles_within_the_grace() {
    let app = Follow::new(policy(HOUR, DAY));
    let laptop = app.login("alice", None).await;
    let phone = app.login("alice", None).await;
    let listing = body_text(app.request("GET", "/sessions", Some(&phone)).await).await;
    let key = listed_key_of_other(&listing);
    let mut current = laptop.clone();
    for _ in 0..3 {
        app.clock.advance(SECOND);
        current = app.cycle(&current).await;
    }
    let response = app
        .request("POST", &format!("/sessions/end?key={key}"), Some(&phone))
        .await;
    let ended = body_text(response).await;
    let laptop_now = app
        .request("GET", "/protected", Some(&current))
        .await
        .status();
    assert_eq!(
        (ended.as_str(), laptop_now),
        ("true", StatusCode::UNAUTHORIZED),
        "the listed session survived end_session after 3 cycles within the grace"
    );
}

/// Follow mode: one cycle within the grace is followed; another subject's
/// key is refused and that session lives on.
#[tokio::test]
async fn end_session_follows_one_cycle_and_refuses_another_subject() {
    let app = Follow::new(policy(HOUR, DAY));
    let laptop = app.login("alice", None).await;
    let phone = app.login("alice", None).await;
    let bob = app.login("bob", None).await;
    let bob_listing = body_text(app.request("GET", "/sessions", Some(&bob)).await).await;
    let bob_key = bob_listing.trim_end_matches('*').to_owned();
    let listing = body_text(app.request("GET", "/sessions", Some(&phone)).await).await;
    let key = listed_key_of_other(&listing);
    let laptop = app.cycle(&laptop).await;
    let response = app
        .request(
            "POST",
            &format!("/sessions/end?key={bob_key}"),
            Some(&phone),
        )
        .await;
    assert_eq!(body_text(response).await, "false", "not alice's");
    assert_eq!(
        app.request("GET", "/protected", Some(&bob)).await.status(),
        StatusCode::OK
    );
    let response = app
        .request("POST", &format!("/sessions/end?key={key}"), Some(&phone))
        .await;
    assert_eq!(body_text(response).await, "true");
    assert_eq!(
        app.request("GET", "/protected", Some(&laptop))
            .await
            .status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        app.request("GET", "/protected", Some(&phone))
            .await
            .status(),
        StatusCode::OK
    );
}

/// Layer's own renewal (renewal_interval): a listed key whose ID was
/// renewed since is still ended within the grace.
#[tokio::test]
async fn end_session_follows_a_layer_renewal() {
    let app = TestApp::new(renewing_policy());
    let laptop = app.login("alice", false).await;
    let phone = app.login("alice", false).await;
    let listing = body_text(app.request("GET", "/sessions", Some(&phone)).await).await;
    let listed: serde_json::Value = serde_json::from_str(&listing).unwrap();
    let key = listed
        .as_array()
        .unwrap()
        .iter()
        .find(|entry| entry["current"] == false)
        .unwrap()["key"]
        .as_str()
        .unwrap()
        .to_owned();
    app.advance(2 * MINUTE);
    let response = app.me(&laptop).await;
    let renewed = set_cookie(&response).expect("renewed");
    let renewed = format!("{}={}", renewed.name(), renewed.value());
    app.advance(SECOND);
    // The phone's own ID is due too; use it anyway.
    let response = app
        .request("POST", &format!("/sessions/end?key={key}"), Some(&phone))
        .await;
    let phone = set_cookie(&response)
        .filter(|c| !c.value().is_empty())
        .map(|c| format!("{}={}", c.name(), c.value()))
        .unwrap_or(phone);
    assert_eq!(body_text(response).await, "true");
    assert_eq!(app.me(&renewed).await.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(app.me(&laptop).await.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(app.me(&phone).await.status(), StatusCode::OK);
}

// ---------------------------------------------------------------------------
// 5. Signing in over a sign-in
// ---------------------------------------------------------------------------

/// Two sign-ins over the same signed-in cookie at once (a double-clicked
/// sign-in button, or two tabs): request 2 (`second_user`) is paused by the
/// data store at `pause`, request 1 (`first_user`) runs to its end, then
/// request 2 finishes. Whatever request 2 answers, a 200 must leave the
/// browser signed in on the ID it hands out.
async fn racing_sign_ins(first_user: &str, second_user: &str, pause: &str) {
    let app = Follow::new(policy(HOUR, DAY));
    let first = app.login("alice", None).await;
    match pause {
        "after-save" => app.data.pause_after_save.store(true, Ordering::SeqCst),
        // Its first load is tower-sessions' (before the handler), its
        // second the layer's move of the data to a fresh ID.
        _ => app.data.pause_before_load.store(2, Ordering::SeqCst),
    }
    let second = {
        let router = app.router.clone();
        let cookie = first.clone();
        let entered = app.data.entered.clone();
        let uri = format!("/login?user={second_user}&password={second_user}");
        let task = tokio::spawn(async move {
            router
                .oneshot(
                    Request::post(uri)
                        .header(header::COOKIE, cookie)
                        .body(Body::empty())
                        .unwrap(),
                )
                .await
                .unwrap()
        });
        if tokio::time::timeout(Duration::from_secs(60), entered.notified())
            .await
            .is_err()
        {
            panic!(
                "request 2 never paused: {:?}",
                task.await.map(|r| r.status())
            );
        }
        task
    };
    // Request 1 runs to its end meanwhile.
    let one = app.login(first_user, Some(&first)).await;
    app.data.release.notify_one();
    let response = second.await.unwrap();
    if response.status() != StatusCode::OK {
        return; // no success claimed
    }
    // Request 1 moved the session first: request 2 hands out no ID, and the
    // browser keeps request 1's, which must be signed in.
    let two = cookie_header(&response).unwrap_or_else(|| one.clone());
    let signed_in = app.request("GET", "/protected", Some(&two)).await;
    let status = signed_in.status();
    assert_eq!(
        status,
        StatusCode::OK,
        "a 200 sign-in left the browser signed out (request 1's ID answers {})",
        app.request("GET", "/protected", Some(&one)).await.status()
    );
}

#[tokio::test]
async fn double_clicked_sign_in_over_a_sign_in_same_user() {
    racing_sign_ins("alice", "alice", "before-load").await;
}

#[tokio::test]
async fn two_sign_ins_over_a_sign_in_another_user_racing_the_data_move() {
    racing_sign_ins("alice", "bob", "after-save").await;
}

/// Remember-me on the first sign-in, not on the second (and another user):
/// the new ID is a browser-session cookie, the old ID dead, its data gone,
/// the absolute deadline counted from the second sign-in.
#[tokio::test]
async fn sign_in_over_a_remembered_sign_in_as_another_user() {
    let stack = Stack::new(policy(HOUR, 8 * HOUR));
    let response = stack
        .request(
            "POST",
            "/login?user=alice&password=alice&remember=true",
            None,
        )
        .await;
    let first = cookie_header(&response).unwrap();
    stack.clock.advance(7 * HOUR);
    assert_eq!(stack.protected(&first).await.status(), StatusCode::OK);
    let response = stack
        .request(
            "POST",
            "/login-again?user=bob&password=bob&remember=false",
            Some(&first),
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let set = set_cookie_named(&response, COOKIE).unwrap();
    assert!(
        set.max_age().is_none() && set.expires().is_none(),
        "browser-session cookie: {set}"
    );
    let second = cookie_header(&response).unwrap();
    assert_ne!(second, first);
    assert!(!stack.has_data(&first).await, "old data deleted");
    assert_eq!(
        stack.protected(&first).await.status(),
        StatusCode::UNAUTHORIZED
    );
    let who = stack.protected(&second).await;
    assert_eq!(body_text(who).await, "bob");
    // 7h30 after the first sign-in and 30 min after the second: alive
    // past the first's 8h absolute deadline.
    for _ in 0..3 {
        stack.clock.advance(30 * MINUTE);
        assert_eq!(stack.protected(&second).await.status(), StatusCode::OK);
    }
}

#[tokio::test]
async fn sign_in_over_a_sign_in_without_the_data_store_is_refused_and_changes_nothing() {
    let stack = Stack::without_data_store(policy(HOUR, DAY));
    let first = stack.login("alice", false, None).await;
    let response = stack
        .request("POST", "/login-again?user=bob&password=bob", Some(&first))
        .await;
    assert_eq!(response.status(), StatusCode::CONFLICT);
    let who = stack.protected(&first).await;
    assert_eq!(body_text(who).await, "alice");
}

// ---------------------------------------------------------------------------
// 6. Bad input, odd Set-Cookie, a store that is down
// ---------------------------------------------------------------------------

/// The lifetime store cannot write while a `cycle_id` moves a session: the
/// session's data must not be lost.
#[tokio::test]
async fn store_down_during_a_cycle_id_move_loses_no_data() {
    let (stack, store) = Stack::failing(policy(HOUR, DAY));
    let cookie = stack.login("alice", false, None).await;
    for _ in 0..3 {
        stack.request("GET", "/count", Some(&cookie)).await;
    }
    store.set_writes_down(true);
    let response = stack.request("POST", "/cycle", Some(&cookie)).await;
    let status = response.status();
    let handed = cookie_header(&response);
    store.set_writes_down(false);
    let browser = handed.unwrap_or_else(|| cookie.clone());
    let count = stack.request("GET", "/count", Some(&browser)).await;
    let old = stack.request("GET", "/count", Some(&cookie)).await;
    let (count_status, count_body) = (count.status(), body_text(count).await);
    let old_body = body_text(old).await;
    assert!(
        count_body == "4" || old_body == "4" || old_body == "5",
        "the session's data is gone after a store failure during cycle_id \
         (cycle answered {status}; next /count: {count_status} {count_body}; old ID: {old_body})"
    );
}

/// The lifetime store cannot write during a sign-in over a sign-in: the
/// sign-in fails closed. tower-sessions has already saved the new login
/// into the old ID's data, so that data must not stay behind the old ID:
/// the answer is a store failure, the cookie is cleared, and the old ID is
/// nobody's sign-in afterwards.
#[tokio::test]
async fn store_down_during_a_sign_in_over_a_sign_in_fails_closed() {
    let (stack, store) = Stack::failing(policy(HOUR, DAY));
    let cookie = stack.login("alice", false, None).await;
    store.set_writes_down(true);
    let response = stack
        .request("POST", "/login-again?user=bob&password=bob", Some(&cookie))
        .await;
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(removes_cookie(&response), "the cookie is cleared");
    store.set_writes_down(false);
    let replay = stack.protected(&cookie).await;
    assert_eq!(
        replay.status(),
        StatusCode::UNAUTHORIZED,
        "the old ID does not carry bob's sign-in"
    );
}

/// An inner layer (not tower-sessions) that writes whatever `Set-Cookie`
/// the test asks for, under a followed layer.
fn odd_inner_app() -> (Router, ManualClock, MemoryStore) {
    #[derive(Deserialize)]
    struct SetParams {
        set: String,
    }
    async fn set(Query(params): Query<SetParams>) -> Response<Body> {
        let mut response = Response::new(Body::empty());
        for value in params.set.split('|') {
            response
                .headers_mut()
                .append(header::SET_COOKIE, value.parse().unwrap());
        }
        response
    }
    async fn who(session: SessionHandle) -> String {
        format!("{}", session.is_active())
    }
    let clock = ManualClock::new(SystemClock.now());
    let lifetimes = MemoryStore::with_clock(clock.clone());
    let router = Router::new()
        .route("/set", post(set))
        .route("/who", get(who))
        .layer(
            SessionLifetimeLayer::new(lifetimes.clone())
                .with_clock(clock.clone())
                .with_policy(policy(HOUR, DAY))
                .follow_tower_sessions()
                .on_invalid_session(OnInvalidSession::PassThrough),
        );
    (router, clock, lifetimes)
}

fn fresh_id() -> String {
    Id::default().to_string()
}

async fn odd(router: &Router, set: &str, cookie: Option<&str>) -> Response<Body> {
    let query = format!("set={}", urlencode(set));
    let mut builder = Request::post(format!("/set?{query}"));
    if let Some(cookie) = cookie {
        builder = builder.header(header::COOKIE, cookie);
    }
    router
        .clone()
        .oneshot(builder.body(Body::empty()).unwrap())
        .await
        .unwrap()
}

fn urlencode(text: &str) -> String {
    text.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

async fn is_live(router: &Router, cookie: &str) -> bool {
    let response = router
        .clone()
        .oneshot(
            Request::get("/who")
                .header(header::COOKIE, cookie)
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    body_text(response).await == "true"
}

/// Removals spelled the ways browsers honour end the lifetime; sets spelled
/// oddly start one that the browser's next request finds.
#[tokio::test]
async fn odd_set_cookie_headers_from_the_inner_layer() {
    let (router, _clock, _lifetimes) = odd_inner_app();
    let mut failures = Vec::new();
    // Removals a browser honours: the lifetime must end.
    let removals = [
        "id=VALUE; Max-Age=0",
        "id=VALUE; max-age=0; path=/",
        "id=VALUE; MAX-AGE=-1",
        "id=VALUE; Max-Age=-0",
        "id=VALUE; Max-Age = 0",
        "id=VALUE; expires=Thu, 01 Jan 1970 00:00:00 GMT",
        "id=VALUE; Expires=Thursday, 01-Jan-70 00:00:01 GMT",
        "id=VALUE; Expires=Thu Jan  1 00:00:01 1970",
        "id=VALUE; Max-Age=-99999999999999999999999",
        "id=VALUE; Max-Age=60|id=; Max-Age=0",
        "id=",
        "id=\"\"; Max-Age=0",
    ];
    for removal in removals {
        let first = fresh_id();
        let response = odd(&router, &format!("id={first}; Path=/"), None).await;
        assert_eq!(response.status(), StatusCode::OK);
        let cookie = format!("id={first}");
        assert!(is_live(&router, &cookie).await, "started");
        let spelled = removal.replace("VALUE", &first);
        let response = odd(&router, &spelled, Some(&cookie)).await;
        let _ = response.status();
        if is_live(&router, &cookie).await {
            failures.push(format!("removal not honoured: {spelled}"));
        }
    }
    // Sets: quoted, several for the same name (the last wins in browsers).
    let first = fresh_id();
    odd(&router, &format!("id={first}"), None).await;
    let (a, b) = (fresh_id(), fresh_id());
    let response = odd(
        &router,
        &format!("id=\"{a}\"; Path=/|id={b}; Path=/"),
        Some(&format!("id={first}")),
    )
    .await;
    let last = response
        .headers()
        .get_all(header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .rfind(|v| v.starts_with("id="))
        .map(str::to_owned);
    match last {
        Some(last) => {
            let value = last
                .trim_start_matches("id=")
                .split(';')
                .next()
                .unwrap()
                .to_owned();
            if !is_live(&router, &format!("id={value}")).await {
                failures.push(format!(
                    "the ID the browser keeps ({value}) has no lifetime"
                ));
            }
        }
        None => failures.push("no Set-Cookie left for the browser".into()),
    }
    if is_live(&router, &format!("id={first}")).await {
        failures.push("the replaced ID is still live".into());
    }
    assert!(failures.is_empty(), "{failures:#?}");
}

/// Hostile `Cookie` headers never panic, never end or lose the session
/// they name, and leave it usable for its real cookie afterwards.
#[tokio::test]
async fn hostile_cookie_headers_neither_panic_nor_lose_the_session() {
    let stack = Stack::new(policy(HOUR, DAY));
    let cookie = stack.login("alice", false, None).await;
    stack.request("GET", "/count", Some(&cookie)).await;
    let value = cookie.trim_start_matches("id=").to_owned();
    let huge = "A".repeat(60_000);
    let many = (0..2000)
        .map(|i| format!("c{i}=v"))
        .collect::<Vec<_>>()
        .join("; ");
    let hostile: Vec<Vec<u8>> = vec![
        format!("id={value}; id={value}").into_bytes(),
        format!("id={value};id={huge}").into_bytes(),
        format!("id={huge}").into_bytes(),
        format!("{many}; id={value}").into_bytes(),
        format!("id=\"{value}").into_bytes(),
        format!("id={value}\"").into_bytes(),
        format!("id=%{value}").into_bytes(),
        format!("%69%64={value}; id={value}").into_bytes(),
        format!("id={}", &value[..21]).into_bytes(),
        format!("id={}B", &value[..21]).into_bytes(),
        b"id=\xff\xfe\xfd".to_vec(),
        format!("id={value}\t").into_bytes(),
        b"id".to_vec(),
        b";;;;=;=;id;=id".to_vec(),
        format!("id={}", "%25".repeat(20_000)).into_bytes(),
        format!("id=%{}", "A".repeat(21)).into_bytes(),
    ];
    for header_value in hostile {
        let Ok(value) = http::HeaderValue::from_bytes(&header_value) else {
            continue;
        };
        // Only requests that end nothing: some spellings legitimately name
        // the session (a trailing tab, other cookies around it).
        for path in ["/count", "/protected", "/whoami"] {
            let method = "GET";
            let request = Request::builder()
                .method(method)
                .uri(path)
                .header(header::COOKIE, value.clone())
                .body(Body::empty())
                .unwrap();
            let response = stack.router.clone().oneshot(request).await.unwrap();
            assert_ne!(
                response.status(),
                StatusCode::INTERNAL_SERVER_ERROR,
                "{path}"
            );
        }
    }
    assert!(
        stack.has_data(&cookie).await,
        "the session's data is intact"
    );
    let count = body_text(stack.request("GET", "/count", Some(&cookie)).await).await;
    assert!(
        count.parse::<u64>().unwrap() >= 2,
        "the counter went on: {count}"
    );
    let who = stack.protected(&cookie).await;
    assert_eq!(body_text(who).await, "alice", "the session is intact");
}

/// The guard against a removal's `Set-Cookie` for the followed cookie
/// reading as a set: tower-sessions' own logout removes the cookie.
#[tokio::test]
async fn axum_login_logout_removes_and_the_old_cookie_is_refused() {
    let stack = Stack::new(policy(HOUR, DAY));
    let cookie = stack.login("alice", false, None).await;
    let response = stack.request("POST", "/logout", Some(&cookie)).await;
    assert!(removes_cookie(&response));
    assert_eq!(
        stack.protected(&cookie).await.status(),
        StatusCode::UNAUTHORIZED
    );
}
