//! A small axum app behind the layer, a manual clock, and a store that
//! counts what the layer asks of it.
#![allow(dead_code, unreachable_pub)]

use std::future::Future as _;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use axum::body::Body;
use axum::extract::Query;
use axum::routing::{get, post};
use axum::Router;
use http::{header, Request, Response, StatusCode};
use serde::Deserialize;
use tower::ServiceExt;
use tower_session_lifetime::{
    clock::ManualClock,
    id::SessionKey,
    recent_login::RecentLoginLayer,
    record::SessionRecord,
    store::{LifetimeStore, RenewOutcome, StoreError, StoreErrorKind, TouchOutcome, UpdateOutcome},
    time::Timestamp,
    MemoryStore, Policy, SessionError, SessionHandle, SessionLifetimeLayer,
};

pub mod captured;
pub mod example_process;
pub mod hardening;
#[cfg(all(feature = "redis", feature = "postgres", feature = "conformance"))]
pub mod policy_backend;
pub mod proxy;
#[cfg(feature = "redis-cluster")]
pub mod redis_cluster;
#[cfg(feature = "redis")]
pub mod redis_monitor;
#[cfg(feature = "redis")]
pub mod redis_server;
pub mod shared_store;
#[cfg(all(feature = "conformance", any(feature = "postgres", feature = "sqlite")))]
pub mod sql_store;

pub const SECOND: Duration = Duration::from_secs(1);
pub const MINUTE: Duration = Duration::from_secs(60);
pub const HOUR: Duration = Duration::from_secs(3600);
pub const DAY: Duration = Duration::from_secs(24 * 3600);
pub const TICK: Duration = Duration::from_millis(1);

/// The time every test starts at.
pub const START: Timestamp = Timestamp::from_unix_millis(1_800_000_000_000);

/// A real `MemoryStore` that counts the calls made to it and can be made to
/// fail, as a backend that went away would.
#[derive(Clone)]
pub struct CountingStore {
    pub memory: MemoryStore,
    pub loads: Arc<AtomicUsize>,
    pub writes: Arc<AtomicUsize>,
    pub down: Arc<AtomicBool>,
    pub writes_down: Arc<AtomicBool>,
    pub reads_down: Arc<AtomicBool>,
    /// A touch to apply right after the next load: another request's write
    /// landing between this request's load and its decision.
    pub touch_after_next_load: Arc<std::sync::Mutex<Option<Timestamp>>>,
    /// Whether it answers `try_load_now`, as `MemoryStore` does (default),
    /// or only `load`, as a networked store does.
    pub sync_reads: Arc<AtomicBool>,
    /// Run during the next load, before the store answers: something that
    /// happens while a request waits for the store.
    pub while_next_load: WhileLoading,
}

/// What [`CountingStore::while_next_load`] runs.
pub type WhileLoading = Arc<std::sync::Mutex<Option<Box<dyn FnOnce() + Send>>>>;

impl CountingStore {
    pub fn new(clock: &ManualClock) -> Self {
        CountingStore::over(MemoryStore::with_clock(clock.clone()))
    }

    /// Counts the calls made to `memory`.
    pub fn over(memory: MemoryStore) -> Self {
        CountingStore {
            memory,
            loads: Arc::default(),
            writes: Arc::default(),
            down: Arc::default(),
            writes_down: Arc::default(),
            reads_down: Arc::default(),
            touch_after_next_load: Arc::default(),
            sync_reads: Arc::new(AtomicBool::new(true)),
            while_next_load: Arc::default(),
        }
    }

    pub fn loads(&self) -> usize {
        self.loads.load(Ordering::SeqCst)
    }

    pub fn writes(&self) -> usize {
        self.writes.load(Ordering::SeqCst)
    }

    pub fn set_down(&self, down: bool) {
        self.down.store(down, Ordering::SeqCst);
    }

    /// Makes writes fail while loads still work.
    pub fn set_writes_down(&self, down: bool) {
        self.writes_down.store(down, Ordering::SeqCst);
    }

    fn check_up(&self) -> Result<(), StoreError> {
        self.check(&self.down)
    }

    fn check(&self, flag: &AtomicBool) -> Result<(), StoreError> {
        if flag.load(Ordering::SeqCst) {
            Err(StoreError::unavailable(std::io::Error::from(
                std::io::ErrorKind::ConnectionRefused,
            )))
        } else {
            Ok(())
        }
    }

    pub fn set_reads_down(&self, down: bool) {
        self.reads_down.store(down, Ordering::SeqCst);
    }

    fn load_counted(&self, key: &SessionKey) -> Result<Option<SessionRecord>, StoreError> {
        self.check_up()?;
        self.check(&self.reads_down)?;
        self.loads.fetch_add(1, Ordering::SeqCst);
        let meanwhile = self.while_next_load.lock().unwrap().take();
        if let Some(meanwhile) = meanwhile {
            meanwhile();
        }
        let loaded = self
            .memory
            .try_load_now(key)
            .expect("MemoryStore reads at once");
        let racing = self.touch_after_next_load.lock().unwrap().take();
        if let Some(at) = racing {
            // MemoryStore's futures never wait: one poll completes them.
            let mut touch = std::pin::pin!(self.memory.touch(key, at, at.saturating_add(HOUR)));
            let waker = std::task::Waker::noop();
            let outcome = touch
                .as_mut()
                .poll(&mut std::task::Context::from_waker(waker));
            assert!(
                matches!(outcome, std::task::Poll::Ready(Ok(TouchOutcome::Touched))),
                "the racing touch found the session"
            );
        }
        loaded
    }

    fn wrote(&self) -> Result<(), StoreError> {
        self.check_up()?;
        self.check(&self.writes_down)?;
        self.writes.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }
}

#[async_trait]
impl LifetimeStore for CountingStore {
    async fn create(&self, key: &SessionKey, record: &SessionRecord) -> Result<bool, StoreError> {
        self.wrote()?;
        self.memory.create(key, record).await
    }

    async fn load(&self, key: &SessionKey) -> Result<Option<SessionRecord>, StoreError> {
        self.load_counted(key)
    }

    fn try_load_now(&self, key: &SessionKey) -> Option<Result<Option<SessionRecord>, StoreError>> {
        self.sync_reads
            .load(Ordering::SeqCst)
            .then(|| self.load_counted(key))
    }

    async fn touch(
        &self,
        key: &SessionKey,
        activity: Timestamp,
        expires_at: Timestamp,
    ) -> Result<TouchOutcome, StoreError> {
        self.wrote()?;
        self.memory.touch(key, activity, expires_at).await
    }

    async fn update(
        &self,
        key: &SessionKey,
        expected_version: u64,
        record: &SessionRecord,
    ) -> Result<UpdateOutcome, StoreError> {
        self.wrote()?;
        self.memory.update(key, expected_version, record).await
    }

    async fn delete(&self, key: &SessionKey) -> Result<bool, StoreError> {
        self.wrote()?;
        self.memory.delete(key).await
    }

    async fn delete_stale(
        &self,
        key: &SessionKey,
        last_activity: Timestamp,
    ) -> Result<bool, StoreError> {
        self.wrote()?;
        self.memory.delete_stale(key, last_activity).await
    }

    async fn reclaim_expired(&self) -> Result<u64, StoreError> {
        self.check_up()?;
        self.memory.reclaim_expired().await
    }

    async fn renew(
        &self,
        old: &SessionKey,
        expected_version: u64,
        new: &SessionKey,
        record: &SessionRecord,
        grace_until: Timestamp,
    ) -> Result<RenewOutcome, StoreError> {
        self.wrote()?;
        self.memory
            .renew(old, expected_version, new, record, grace_until)
            .await
    }

    async fn sessions_of(
        &self,
        subject: &str,
    ) -> Result<Vec<(SessionKey, SessionRecord)>, StoreError> {
        self.check_up()?;
        self.memory.sessions_of(subject).await
    }

    async fn delete_sessions_of(&self, subject: &str) -> Result<u64, StoreError> {
        self.wrote()?;
        self.memory.delete_sessions_of(subject).await
    }
}

/// An app behind the layer: `POST /login?user=..&remember=..` (`409` at a
/// session limit), `GET /me`, `POST /logout`, `POST /logout-everywhere`
/// (the number ended), `POST /remember?on=..`; `/me` answers 200 with the
/// subject, or 401 without a session.
#[derive(Clone)]
pub struct TestApp {
    pub router: Router,
    pub clock: ManualClock,
    pub store: CountingStore,
    pub inner_calls: Arc<AtomicUsize>,
}

#[derive(Deserialize)]
struct LoginParams {
    user: String,
    #[serde(default)]
    remember: bool,
    label: Option<String>,
}

#[derive(Deserialize)]
struct EndParams {
    key: String,
}

#[derive(Deserialize)]
struct RememberParams {
    on: bool,
}

impl TestApp {
    /// The app with `policy`, rejecting invalid sessions (the default).
    pub fn new(policy: Policy) -> Self {
        TestApp::configured(move |layer| layer.with_policy(policy))
    }

    /// The app with the layer configured by `configure` (clock and store are
    /// already set).
    pub fn configured(
        configure: impl FnOnce(SessionLifetimeLayer) -> SessionLifetimeLayer,
    ) -> Self {
        let clock = ManualClock::new(START);
        let store = CountingStore::new(&clock);
        TestApp::sharing(clock, store, configure)
    }

    /// Another app (another layer) over this one's clock and store.
    pub fn sibling(
        &self,
        configure: impl FnOnce(SessionLifetimeLayer) -> SessionLifetimeLayer,
    ) -> Self {
        TestApp::sharing(self.clock.clone(), self.store.clone(), configure)
    }

    fn sharing(
        clock: ManualClock,
        store: CountingStore,
        configure: impl FnOnce(SessionLifetimeLayer) -> SessionLifetimeLayer,
    ) -> Self {
        TestApp::routed_sharing(clock, store, |routes, layer| routes.layer(configure(layer)))
    }

    /// The app with a lifetime layer that `apply` configures and applies to
    /// the routes itself, for a layer whose type configuration changed
    /// (clock and store are already set).
    pub fn routed(apply: impl FnOnce(Router, SessionLifetimeLayer) -> Router) -> Self {
        let clock = ManualClock::new(START);
        let store = CountingStore::new(&clock);
        TestApp::routed_sharing(clock, store, apply)
    }

    fn routed_sharing(
        clock: ManualClock,
        store: CountingStore,
        apply: impl FnOnce(Router, SessionLifetimeLayer) -> Router,
    ) -> Self {
        let layer = SessionLifetimeLayer::from_shared_store(Arc::new(store.clone()))
            .with_clock(clock.clone());
        let inner_calls = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&inner_calls);
        let routes = routes().layer(axum::middleware::from_fn(
            move |request: Request<Body>, next: axum::middleware::Next| {
                counter.fetch_add(1, Ordering::SeqCst);
                next.run(request)
            },
        ));
        let router = apply(routes, layer);
        TestApp {
            router,
            clock,
            store,
            inner_calls,
        }
    }

    pub fn inner_calls(&self) -> usize {
        self.inner_calls.load(Ordering::SeqCst)
    }

    pub fn advance(&self, by: Duration) {
        self.clock.advance(by);
    }

    pub async fn send(&self, request: Request<Body>) -> Response<Body> {
        self.router
            .clone()
            .oneshot(request)
            .await
            .expect("the router is infallible")
    }

    /// `method path` with `cookie` (a whole `Cookie` header value) if given.
    pub async fn request(&self, method: &str, path: &str, cookie: Option<&str>) -> Response<Body> {
        self.send(cookie_request(method, path, cookie)).await
    }

    pub async fn me(&self, cookie: &str) -> Response<Body> {
        self.request("GET", "/me", Some(cookie)).await
    }

    /// Logs `user` in and returns the `Cookie` header value to send next.
    pub async fn login(&self, user: &str, remember: bool) -> String {
        let response = self
            .request(
                "POST",
                &format!("/login?user={user}&remember={remember}"),
                None,
            )
            .await;
        assert_eq!(response.status(), StatusCode::OK, "login succeeds");
        let set = set_cookie(&response).expect("login sets the cookie");
        format!("{}={}", set.name(), set.value())
    }
}

/// How recent a login `GET /sensitive` wants.
pub const RECENT_LOGIN: Duration = Duration::from_secs(5 * 60);

/// The test app's routes, without a layer: `POST /login?user=..&remember=..&label=..`,
/// `GET /me`, `POST /logout`, `POST /remember?on=..`, `GET /sessions` (the
/// subject's sessions as JSON), `POST /sessions/end?key=..` (`true` or
/// `false`), `POST /reauthenticate`, and `GET /sensitive` behind a
/// [`RecentLoginLayer`] of [`RECENT_LOGIN`].
pub fn routes() -> Router {
    let sensitive = Router::new()
        .route("/sensitive", get(me))
        .route_layer(RecentLoginLayer::within(RECENT_LOGIN));
    Router::new()
        .merge(sensitive)
        .route("/sessions", get(sessions))
        .route("/sessions/end", post(end_session))
        .route("/reauthenticate", post(reauthenticate))
        .route("/login", post(login))
        .route("/me", get(me))
        .route("/logout", post(logout))
        .route("/logout-everywhere", post(logout_everywhere))
        .route("/remember", post(remember))
}

async fn logout_everywhere(session: SessionHandle) -> Result<String, StatusCode> {
    match session.logout_everywhere().await {
        Ok(ended) => Ok(ended.to_string()),
        Err(_) => Err(StatusCode::SERVICE_UNAVAILABLE),
    }
}

async fn login(session: SessionHandle, Query(params): Query<LoginParams>) -> StatusCode {
    let started = match params.label {
        Some(label) => {
            session
                .login_labelled(params.user, params.remember, label)
                .await
        }
        None => session.login(params.user, params.remember).await,
    };
    match started {
        Ok(()) => StatusCode::OK,
        Err(SessionError::SessionLimit { .. }) => StatusCode::CONFLICT,
        Err(_) => StatusCode::SERVICE_UNAVAILABLE,
    }
}

/// A store error's status: `501` for a store that cannot list sessions.
fn store_status(err: SessionError) -> StatusCode {
    match err {
        SessionError::Store(err) if err.kind() == StoreErrorKind::Unsupported => {
            StatusCode::NOT_IMPLEMENTED
        }
        SessionError::NoSession => StatusCode::UNAUTHORIZED,
        _ => StatusCode::SERVICE_UNAVAILABLE,
    }
}

async fn sessions(session: SessionHandle) -> Result<axum::Json<serde_json::Value>, StatusCode> {
    let sessions = session.sessions().await.map_err(store_status)?;
    let listed: Vec<serde_json::Value> = sessions
        .iter()
        .map(|info| {
            serde_json::json!({
                "key": info.key.to_hex(),
                "label": info.label,
                "current": info.current,
                "remember_me": info.remember_me,
                "created_at": info.created_at.as_unix_millis(),
                "last_activity": info.last_activity.as_unix_millis(),
                "authenticated_at": info.authenticated_at.as_unix_millis(),
            })
        })
        .collect();
    Ok(axum::Json(serde_json::Value::Array(listed)))
}

async fn end_session(
    session: SessionHandle,
    Query(params): Query<EndParams>,
) -> Result<String, StatusCode> {
    let key = SessionKey::from_hex(&params.key).ok_or(StatusCode::BAD_REQUEST)?;
    let ended = session.end_session(&key).await.map_err(store_status)?;
    Ok(ended.to_string())
}

async fn reauthenticate(session: SessionHandle) -> StatusCode {
    match session.reauthenticate().await {
        Ok(()) => StatusCode::OK,
        Err(err) => store_status(err),
    }
}

async fn me(session: SessionHandle) -> Result<String, StatusCode> {
    session.subject().ok_or(StatusCode::UNAUTHORIZED)
}

async fn logout(session: SessionHandle) -> StatusCode {
    match session.logout().await {
        Ok(()) => StatusCode::OK,
        Err(_) => StatusCode::SERVICE_UNAVAILABLE,
    }
}

async fn remember(session: SessionHandle, Query(params): Query<RememberParams>) -> StatusCode {
    match session.set_remember_me(params.on).await {
        Ok(()) => StatusCode::OK,
        Err(_) => StatusCode::CONFLICT,
    }
}

/// The session cookie the response sets or clears, if any.
/// `method path` with an empty body and `cookie` (a whole `Cookie` header
/// value) if given.
pub fn cookie_request(method: &str, path: &str, cookie: Option<&str>) -> Request<Body> {
    let mut builder = Request::builder().method(method).uri(path);
    if let Some(cookie) = cookie {
        builder = builder.header(header::COOKIE, cookie);
    }
    builder.body(Body::empty()).unwrap()
}

pub fn set_cookie(response: &Response<Body>) -> Option<cookie::Cookie<'static>> {
    set_cookie_named(
        response,
        tower_session_lifetime::session_cookie::DEFAULT_COOKIE_NAME,
    )
}

/// The cookie called `name` that the response sets or clears, if any; at
/// most one.
pub fn set_cookie_named(response: &Response<Body>, name: &str) -> Option<cookie::Cookie<'static>> {
    let mut found = response
        .headers()
        .get_all(header::SET_COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .filter_map(|value| cookie::Cookie::parse(value.to_owned()).ok())
        .filter(|cookie| cookie.name() == name);
    let first = found.next();
    assert!(
        found.next().is_none(),
        "at most one Set-Cookie for the session"
    );
    first
}

/// Whether the response tells the browser to drop the session cookie.
pub fn clears_cookie(response: &Response<Body>) -> bool {
    set_cookie(response).is_some_and(|cookie| {
        cookie.value().is_empty() && cookie.max_age() == Some(cookie::time::Duration::ZERO)
    })
}

pub async fn body_text(response: Response<Body>) -> String {
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .expect("body");
    String::from_utf8(bytes.to_vec()).expect("utf-8 body")
}

pub fn policy(idle: Duration, absolute: Duration) -> Policy {
    Policy::builder()
        .idle_timeout(idle)
        .absolute_timeout(absolute)
        .build()
        .expect("valid policy")
}
