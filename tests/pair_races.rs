//! Pairs of concurrent operations on one session, through the public API and
//! the real layer, on every store (DESIGN.md §1, "Where features meet").
//!
//! Each test races one operation that *ends* a session against one that
//! runs on it at the same moment, round after round, each round on a freshly
//! signed-in session of a subject of its own:
//!
//! | ending | how |
//! | --- | --- |
//! | logout | `SessionHandle::logout`, from the session's own browser |
//! | logout everywhere | `SessionHandle::logout_everywhere`, from another device of the same subject |
//! | end session | `SessionHandle::end_session` on the key `SessionHandle::sessions` listed, from another device |
//! | expiry | a request at the idle deadline, which deletes the record |
//!
//! | concurrent operation | how |
//! | --- | --- |
//! | touch | an ordinary admitted request (`GET /me`) |
//! | renewal | the same once the renewal interval has passed: the request renews the ID |
//! | remember-me | `SessionHandle::set_remember_me(true)` |
//! | re-authentication | `SessionHandle::reauthenticate` |
//! | `cycle_id` | a handler calling tower-sessions' `Session::cycle_id`, the layer following tower-sessions (`follow_tower_sessions().delete_data_from(..)` outside a `SessionManagerLayer`) |
//! | `flush` | a handler calling `Session::flush`, in the same follow mode |
//!
//! An expiry races as two app nodes on one store would: the concurrent
//! operation runs on a node whose clock stands 1 ms before the idle
//! deadline, the expiry request on one whose clock stands at it.
//!
//! Both operations are spawned on a two-worker runtime. Every store call
//! goes through `YieldingStore`, which first yields to the scheduler 0 to 3
//! times (and answers the synchronous `try_load_now` only every other
//! time). In three rounds of four one of the two operations, picked at
//! random, starts only once the other has finished 1 to 3 store calls (or
//! returned); each then yields 0 to 7 times before it starts. All of it is
//! drawn from a seeded RNG, so the rounds interleave differently and both
//! orders happen on every store, networked or not: the concurrent operation
//! first in some rounds, the ending first in others, one inside the other
//! in the rest. The layers read `ManualClock`s, each round set to no
//! earlier than the wall clock (by which Redis and tower-sessions expire
//! records); nothing sleeps.
//!
//! Once both have returned, the promise is checked: no ID of the session
//! (the one it started with, one the concurrent response set after a
//! renewal or `cycle_id`, and for logout everywhere the other device's) is
//! admitted on a later request, and the store holds no live record of it
//! (under those keys, behind a renewal pointer, or among the subject's
//! sessions, on stores that list them). For touch, remember-me and
//! re-authentication the ending must win whatever the order; for renewal
//! and `cycle_id` whichever ID the browser ends up with must be refused (a
//! breach is also reported against the ID the browser holds once both
//! answers have arrived in the order they were produced, when that one is
//! admitted). An expiry is checked in the rounds in which the expiry request was refused
//! as idle; in the others the concurrent request's activity came first and
//! rightly kept the session alive. A logout is checked unless it was refused
//! as sent with a retired ID (`RejectReason::Renewed`): one that reaches the
//! layer after a `cycle_id` moved the session ends nothing, a known gap that
//! SECURITY.md states (even when the `cycle_id`'s answer, with the new ID,
//! leaves after the logout's), while one in flight across the move ends the
//! session under both IDs.
//!
//! Every test runs all its rounds, prints one line (the rounds run; in how
//! many the ending applied, the concurrent operation was admitted, and its
//! response moved the session to a new ID; how many broke the promise),
//! then each kind of breach with its count and the answers both operations
//! got, and fails if any round broke the promise. With `TSL_RACE_TRACE=1`
//! it also prints the store calls of the first round that did.
//!
//! Stores: `MemoryStore` always; `SqliteStore` (a temporary file),
//! `RedisStore`, `PostgresStore` and `TowerSessionsStore` with their
//! features. `TowerSessionsStore` cannot list a subject's sessions, so it
//! races logout and expiry only. The `cycle_id` and `flush` pairs need the
//! `tower-sessions` feature. Redis and PostgreSQL are reached at
//! `TSL_REDIS_URL` and `TSL_POSTGRES_URL` (`scripts/test` sets both);
//! without them those tests fail, they never skip.
//!
//! ```text
//! TSL_REDIS_URL=redis://127.0.0.1:6379 \
//! TSL_POSTGRES_URL=postgres://postgres@127.0.0.1:5432/test \
//!     cargo test --all-features --test pair_races -- --nocapture
//! ```
//!
//! `TSL_RACE_ROUNDS` sets the rounds per pair: 200 by default, so that CI
//! stays fast; the long run is `TSL_RACE_ROUNDS=10000` (with
//! `--test-threads=2` on a two-core machine). `TSL_RACE_SEED` (decimal or
//! `0x` hex) fixes the seed every test derives its own from; each test
//! prints both. A seed repeats the yields, not the threads' timing.
#![cfg(feature = "axum")]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::future::Future;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use axum::body::Body;
use axum::Router;
use http::{header, Response, StatusCode};
use tokio::sync::Notify;
use tower_session_lifetime::{
    clock::{Clock, ManualClock, SystemClock},
    id::{SessionId, SessionKey},
    record::SessionRecord,
    rejection::RejectReason,
    session_cookie::DEFAULT_COOKIE_NAME,
    store::{
        LifetimeStore, LoadedRecord, RenewOutcome, StoreError, StoreErrorKind, TouchOutcome,
        UpdateOutcome,
    },
    time::Timestamp,
    MemoryStore, Policy, SessionLifetimeLayer,
};

use common::shared_store::{clock_now, send};
use common::{body_text, routes, HOUR, TICK};

const IDLE: Duration = HOUR;
const ABSOLUTE: Duration = Duration::from_secs(8 * 3600);
const REMEMBER_ME: Duration = Duration::from_secs(4 * 3600);
const RENEWAL: Duration = Duration::from_secs(10 * 60);
const GRACE: Duration = Duration::from_secs(5);

/// Rounds per pair unless `TSL_RACE_ROUNDS` says otherwise.
const DEFAULT_ROUNDS: usize = 200;
/// A store call is preceded by `0..STORE_YIELDS` yields.
const STORE_YIELDS: u64 = 4;
/// A round staggers its operations by `0..STAGGER` store calls.
const STAGGER: u64 = 4;
/// An operation starts after `0..START_YIELDS` yields.
const START_YIELDS: u64 = 8;
/// Below this many rounds a test does not insist that both orders happened.
const ROUNDS_TO_SEE_BOTH_ORDERS: usize = 50;

// ---------------------------------------------------------------------------
// The pairs

/// An operation that ends the session.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Ending {
    Logout,
    LogoutEverywhere,
    EndSession,
    Expiry,
}

/// An operation on the session while it ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Op {
    Touch,
    Renewal,
    RememberMe,
    Reauthenticate,
    #[cfg(feature = "tower-sessions")]
    CycleId,
    #[cfg(feature = "tower-sessions")]
    Flush,
}

impl Ending {
    fn name(self) -> &'static str {
        match self {
            Ending::Logout => "logout",
            Ending::LogoutEverywhere => "logout everywhere",
            Ending::EndSession => "end session",
            Ending::Expiry => "expiry",
        }
    }
}

impl Op {
    fn name(self) -> &'static str {
        match self {
            Op::Touch => "touch",
            Op::Renewal => "renewal",
            Op::RememberMe => "remember-me",
            Op::Reauthenticate => "reauthenticate",
            #[cfg(feature = "tower-sessions")]
            Op::CycleId => "cycle_id",
            #[cfg(feature = "tower-sessions")]
            Op::Flush => "flush",
        }
    }

    /// The request that performs it.
    fn request(self) -> (&'static str, &'static str) {
        match self {
            Op::Touch | Op::Renewal => ("GET", "/me"),
            Op::RememberMe => ("POST", "/remember?on=true"),
            Op::Reauthenticate => ("POST", "/reauthenticate"),
            #[cfg(feature = "tower-sessions")]
            Op::CycleId => ("POST", "/cycle"),
            #[cfg(feature = "tower-sessions")]
            Op::Flush => ("POST", "/flush"),
        }
    }

    /// Whether it needs the layer to follow tower-sessions' cookie.
    fn followed(self) -> bool {
        match self {
            Op::Touch | Op::Renewal | Op::RememberMe | Op::Reauthenticate => false,
            #[cfg(feature = "tower-sessions")]
            Op::CycleId | Op::Flush => true,
        }
    }
}

impl fmt::Display for Ending {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Idle 1 h, absolute 8 h, remember-me 4 h, every request's activity
/// written; with `renewing`, IDs renewed every 10 minutes with 5 s of grace.
fn policy(renewing: bool) -> Policy {
    let builder = Policy::builder()
        .idle_timeout(IDLE)
        .absolute_timeout(ABSOLUTE)
        .remember_me_period(REMEMBER_ME)
        .touch_granularity(Duration::ZERO);
    let builder = if renewing {
        builder.renewal_interval(RENEWAL).renewal_grace(GRACE)
    } else {
        builder
    };
    builder.build().expect("a valid policy")
}

// ---------------------------------------------------------------------------
// Randomness and the yielding store

/// SplitMix64 over an atomic counter, shared by every task of a test.
#[derive(Clone)]
struct Rng(Arc<AtomicU64>);

const GOLDEN_GAMMA: u64 = 0x9E37_79B9_7F4A_7C15;

fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

impl Rng {
    fn new(seed: u64) -> Self {
        Rng(Arc::new(AtomicU64::new(seed)))
    }

    fn below(&self, bound: u64) -> u64 {
        let state = self
            .0
            .fetch_add(GOLDEN_GAMMA, Ordering::Relaxed)
            .wrapping_add(GOLDEN_GAMMA);
        mix(state) % bound
    }

    /// Yields to the scheduler `0..bound` times.
    async fn yields(&self, bound: u64) {
        for _ in 0..self.below(bound) {
            tokio::task::yield_now().await;
        }
    }
}

tokio::task_local! {
    /// Which request of a round a store call comes from.
    static CALLER: Caller;
}

/// The request a store call comes from: its name, for the trace, and the
/// gate it opens as it goes, if it leads the round.
#[derive(Clone)]
struct Caller {
    name: &'static str,
    gate: Option<Arc<Gate>>,
}

impl Caller {
    fn named(name: &'static str) -> Self {
        Caller { name, gate: None }
    }
}

/// Staggers a round: the trailing operation starts once the leading one
/// has finished `after` store calls, or has returned.
struct Gate {
    calls: AtomicUsize,
    after: usize,
    notify: Notify,
}

impl Gate {
    fn new(after: usize) -> Arc<Self> {
        Arc::new(Gate {
            calls: AtomicUsize::new(0),
            after,
            notify: Notify::new(),
        })
    }

    /// The leader finished a store call.
    fn passed(&self) {
        self.calls.fetch_add(1, Ordering::SeqCst);
        self.notify.notify_waiters();
    }

    /// The leader returned.
    fn open(&self) {
        self.calls.fetch_add(self.after, Ordering::SeqCst);
        self.notify.notify_waiters();
    }

    async fn wait(&self) {
        loop {
            let notified = self.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.calls.load(Ordering::SeqCst) >= self.after {
                return;
            }
            notified.await;
        }
    }
}

/// Opens the gate when the leader is done, however it ends: a trailer
/// never waits for a leader that panicked.
struct OpensOnDrop(Arc<Gate>);

impl Drop for OpensOnDrop {
    fn drop(&mut self) {
        self.0.open();
    }
}

/// A store that yields a random number of times before every call to the
/// real one, and answers `try_load_now` (the in-memory fast path) only
/// every other time, so that the layer's calls of concurrent requests
/// interleave differently from round to round. After each call it opens
/// the caller's gate a step further. With `TSL_RACE_TRACE` set it also
/// writes down every call and its answer, for the report of a round that
/// broke the promise.
struct YieldingStore {
    inner: Arc<dyn LifetimeStore>,
    rng: Rng,
    trace: Option<Arc<Mutex<Vec<String>>>>,
}

impl YieldingStore {
    async fn jitter(&self) {
        self.rng.yields(STORE_YIELDS).await;
    }

    /// A call returned: writes it down, when tracing, and passes the
    /// caller's gate.
    fn done(&self, call: impl FnOnce() -> String) {
        let caller = CALLER.try_with(Caller::clone).ok();
        if let Some(trace) = &self.trace {
            let name = caller.as_ref().map_or("test", |caller| caller.name);
            trace
                .lock()
                .expect("the trace")
                .push(format!("{name:>17}: {}", call()));
        }
        if let Some(gate) = caller.and_then(|caller| caller.gate) {
            gate.passed();
        }
    }
}

/// A record as the trace shows it.
fn shown(record: &Option<SessionRecord>) -> String {
    match record {
        None => "none".to_owned(),
        Some(record) => match record.renewed_to {
            Some(to) => format!("pointer to {} v{}", to.short(), record.version),
            None => format!(
                "live, activity {} v{}",
                record.last_activity.as_unix_millis() % 100_000_000,
                record.version
            ),
        },
    }
}

#[async_trait]
impl LifetimeStore for YieldingStore {
    async fn create(&self, key: &SessionKey, record: &SessionRecord) -> Result<bool, StoreError> {
        self.jitter().await;
        let result = self.inner.create(key, record).await;
        self.done(|| format!("create {} -> {result:?}", key.short()));
        result
    }

    async fn load(&self, key: &SessionKey) -> Result<Option<SessionRecord>, StoreError> {
        self.jitter().await;
        let result = self.inner.load(key).await;
        self.done(|| match &result {
            Ok(found) => format!("load {} -> {}", key.short(), shown(found)),
            Err(err) => format!("load {} -> {err:?}", key.short()),
        });
        result
    }

    async fn load_and_touch(
        &self,
        key: &SessionKey,
        policy: &Policy,
        now: Timestamp,
    ) -> Result<Option<LoadedRecord>, StoreError> {
        self.jitter().await;
        let result = self.inner.load_and_touch(key, policy, now).await;
        self.done(|| match &result {
            Ok(found) => format!(
                "load_and_touch {} -> {}, touch {:?}",
                key.short(),
                shown(&found.as_ref().map(|found| found.record.clone())),
                found.as_ref().and_then(|found| found.touch)
            ),
            Err(err) => format!("load_and_touch {} -> {err:?}", key.short()),
        });
        result
    }

    fn try_load_now(&self, key: &SessionKey) -> Option<Result<Option<SessionRecord>, StoreError>> {
        if self.rng.below(2) != 0 {
            return None;
        }
        let result = self.inner.try_load_now(key);
        match &result {
            Some(Ok(found)) => {
                self.done(|| format!("try_load_now {} -> {}", key.short(), shown(found)));
            }
            Some(Err(err)) => self.done(|| format!("try_load_now {} -> {err:?}", key.short())),
            None => {}
        }
        result
    }

    async fn touch(
        &self,
        key: &SessionKey,
        activity: Timestamp,
        expires_at: Timestamp,
    ) -> Result<TouchOutcome, StoreError> {
        self.jitter().await;
        let result = self.inner.touch(key, activity, expires_at).await;
        self.done(|| format!("touch {} -> {result:?}", key.short()));
        result
    }

    async fn update(
        &self,
        key: &SessionKey,
        expected_version: u64,
        record: &SessionRecord,
    ) -> Result<UpdateOutcome, StoreError> {
        self.jitter().await;
        let result = self.inner.update(key, expected_version, record).await;
        self.done(|| format!("update {} v{expected_version} -> {result:?}", key.short()));
        result
    }

    async fn delete(&self, key: &SessionKey) -> Result<bool, StoreError> {
        self.jitter().await;
        let result = self.inner.delete(key).await;
        self.done(|| format!("delete {} -> {result:?}", key.short()));
        result
    }

    async fn delete_stale(
        &self,
        key: &SessionKey,
        last_activity: Timestamp,
    ) -> Result<bool, StoreError> {
        self.jitter().await;
        let result = self.inner.delete_stale(key, last_activity).await;
        self.done(|| format!("delete_stale {} -> {result:?}", key.short()));
        result
    }

    async fn reclaim_expired(&self) -> Result<u64, StoreError> {
        self.jitter().await;
        let result = self.inner.reclaim_expired().await;
        self.done(|| format!("reclaim_expired -> {result:?}"));
        result
    }

    async fn renew(
        &self,
        old: &SessionKey,
        expected_version: u64,
        new: &SessionKey,
        record: &SessionRecord,
        grace_until: Timestamp,
    ) -> Result<RenewOutcome, StoreError> {
        self.jitter().await;
        let result = self
            .inner
            .renew(old, expected_version, new, record, grace_until)
            .await;
        self.done(|| {
            format!(
                "renew {} v{expected_version} to {} -> {result:?}",
                old.short(),
                new.short()
            )
        });
        result
    }

    async fn sessions_of(
        &self,
        subject: &str,
    ) -> Result<Vec<(SessionKey, SessionRecord)>, StoreError> {
        self.jitter().await;
        let result = self.inner.sessions_of(subject).await;
        self.done(|| match &result {
            Ok(listed) => {
                let keys: Vec<String> = listed
                    .iter()
                    .map(|(key, _)| key.short().to_string())
                    .collect();
                format!("sessions_of -> {keys:?}")
            }
            Err(err) => format!("sessions_of -> {err:?}"),
        });
        result
    }

    async fn delete_sessions_of(&self, subject: &str) -> Result<u64, StoreError> {
        self.jitter().await;
        let result = self.inner.delete_sessions_of(subject).await;
        self.done(|| format!("delete_sessions_of -> {result:?}"));
        result
    }
}

// ---------------------------------------------------------------------------
// The stores

/// A store under test, and the files to remove when the test is done.
struct Backend {
    store: Arc<dyn LifetimeStore>,
    files: Vec<PathBuf>,
}

impl Backend {
    fn of(store: impl LifetimeStore) -> Self {
        Backend {
            store: Arc::new(store),
            files: Vec::new(),
        }
    }
}

impl Drop for Backend {
    fn drop(&mut self) {
        for file in &self.files {
            let _ = std::fs::remove_file(file);
        }
    }
}

/// Eight hex digits no other run picks: subjects and files stay apart on
/// stores that outlive a test.
fn unique() -> String {
    SessionId::generate().expect("randomness").key().to_hex()[..8].to_owned()
}

async fn memory() -> Backend {
    Backend::of(MemoryStore::new())
}

#[cfg(feature = "sqlite")]
async fn sqlite() -> Backend {
    use tower_session_lifetime::SqliteStore;
    let path = std::env::temp_dir().join(format!(
        "tsl-pair-races-{}-{}.db",
        std::process::id(),
        unique()
    ));
    let store = SqliteStore::open(&format!("sqlite://{}", path.display())).expect("a SQLite URL");
    store.migrate().await.expect("migration");
    let beside = |suffix: &str| PathBuf::from(format!("{}{suffix}", path.display()));
    Backend {
        store: Arc::new(store),
        files: vec![beside("-wal"), beside("-shm"), path],
    }
}

/// The server URL in `variable`, which `scripts/test` sets.
#[cfg(any(feature = "redis", feature = "postgres"))]
fn server_url(variable: &str, example: &str) -> String {
    std::env::var(variable).unwrap_or_else(|_| {
        panic!(
            "{variable} is not set: run the tests with scripts/test, which starts the \
             server, or set it yourself ({variable}={example})"
        )
    })
}

#[cfg(feature = "redis")]
async fn redis() -> Backend {
    let url = server_url("TSL_REDIS_URL", "redis://127.0.0.1:6379");
    Backend::of(tower_session_lifetime::RedisStore::open(&url).expect("a Redis URL"))
}

#[cfg(feature = "postgres")]
async fn postgres() -> Backend {
    let url = server_url(
        "TSL_POSTGRES_URL",
        "postgres://postgres@127.0.0.1:5432/test",
    );
    let store = tower_session_lifetime::PostgresStore::open(&url).expect("a PostgreSQL URL");
    store.migrate().await.expect("migration");
    Backend::of(store)
}

#[cfg(feature = "tower-sessions")]
async fn tower_sessions_store() -> Backend {
    Backend::of(tower_session_lifetime::TowerSessionsStore::new(
        tower_sessions::MemoryStore::default(),
    ))
}

// ---------------------------------------------------------------------------
// The apps

/// The app's session data, when the layer follows tower-sessions.
#[cfg(feature = "tower-sessions")]
type Data = tower_sessions::MemoryStore;
#[cfg(not(feature = "tower-sessions"))]
type Data = ();

/// The test app's routes behind `layer`: as `common::routes` says, or, for
/// an operation that needs it, over tower-sessions, whose cookie the layer
/// follows.
#[cfg_attr(not(feature = "tower-sessions"), allow(unused_variables))]
fn app(layer: SessionLifetimeLayer, op: Op, data: &Data) -> Router {
    #[cfg(feature = "tower-sessions")]
    if op.followed() {
        return followed::app(layer, data);
    }
    routes().layer(layer)
}

/// The layer following tower-sessions' cookie.
#[cfg(feature = "tower-sessions")]
mod followed {
    use axum::extract::Query;
    use axum::routing::post;
    use axum::Router;
    use http::StatusCode;
    use serde::Deserialize;
    use tower_session_lifetime::{SessionHandle, SessionLifetimeLayer};
    use tower_sessions::{MemoryStore, Session, SessionManagerLayer};

    use crate::common::routes;

    /// `common::routes` and `POST /ts-login?user=..` (a login: the handle
    /// names the session, tower-sessions gives it its ID), `POST /cycle`
    /// (`Session::cycle_id`), `POST /flush` (`Session::flush`), inside
    /// tower-sessions' layer over `data`, inside `layer`.
    pub(super) fn app(layer: SessionLifetimeLayer, data: &MemoryStore) -> Router {
        routes()
            .route("/ts-login", post(login))
            .route("/cycle", post(cycle))
            .route("/flush", post(flush))
            .layer(SessionManagerLayer::new(data.clone()))
            .layer(layer.follow_tower_sessions().delete_data_from(data.clone()))
    }

    #[derive(Deserialize)]
    struct LoginParams {
        user: String,
    }

    async fn login(
        lifetime: SessionHandle,
        session: Session,
        Query(params): Query<LoginParams>,
    ) -> StatusCode {
        if lifetime.login(params.user.clone(), false).await.is_err() {
            return StatusCode::SERVICE_UNAVAILABLE;
        }
        match session.insert("user", params.user).await {
            Ok(()) => StatusCode::OK,
            Err(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    async fn cycle(session: Session) -> StatusCode {
        match session.cycle_id().await {
            Ok(()) => StatusCode::OK,
            Err(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    async fn flush(session: Session) -> StatusCode {
        match session.flush().await {
            Ok(()) => StatusCode::OK,
            Err(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

/// What a response did to the session cookie.
#[derive(Clone, Debug, PartialEq, Eq)]
enum SetCookie {
    Untouched,
    Removed,
    Set(String),
}

/// What a test needs of a response.
#[derive(Debug)]
struct Answer {
    status: StatusCode,
    reason: Option<RejectReason>,
    cookie: SetCookie,
}

impl Answer {
    fn of(response: &Response<Body>, cookie_name: &str) -> Self {
        let mut cookie = SetCookie::Untouched;
        for value in response.headers().get_all(header::SET_COOKIE) {
            let Some(set) = value
                .to_str()
                .ok()
                .and_then(|value| cookie::Cookie::parse(value).ok())
            else {
                continue;
            };
            if set.name() != cookie_name {
                continue;
            }
            let removed = set.value().is_empty()
                || set
                    .max_age()
                    .is_some_and(|age| age <= cookie::time::Duration::ZERO);
            cookie = if removed {
                SetCookie::Removed
            } else {
                SetCookie::Set(set.value().to_owned())
            };
        }
        Answer {
            status: response.status(),
            reason: response.extensions().get::<RejectReason>().copied(),
            cookie,
        }
    }

    fn admitted(&self) -> bool {
        self.status == StatusCode::OK
    }
}

impl fmt::Display for Answer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.status.as_u16())?;
        if let Some(reason) = self.reason {
            write!(f, " {}", reason.as_str())?;
        }
        match self.cookie {
            SetCookie::Untouched => Ok(()),
            SetCookie::Removed => f.write_str(", cookie removed"),
            SetCookie::Set(_) => f.write_str(", cookie set"),
        }
    }
}

/// One app node: the app behind its own layer and clock, over the shared
/// store.
#[derive(Clone)]
struct Node {
    router: Router,
    clock: ManualClock,
    cookie_name: &'static str,
}

impl Node {
    async fn request(&self, method: &str, path: &str, id: Option<&str>) -> Response<Body> {
        let cookie = id.map(|id| format!("{}={id}", self.cookie_name));
        send(&self.router, method, path, cookie.as_deref()).await
    }

    async fn send(&self, method: &str, path: &str, id: Option<&str>) -> Answer {
        Answer::of(&self.request(method, path, id).await, self.cookie_name)
    }
}

// ---------------------------------------------------------------------------
// A round

/// The key the store keeps the session of the cookie value `id` under.
fn key_of(id: &str) -> SessionKey {
    SessionId::parse(id).expect("a session ID").key()
}

/// What one round showed.
struct Outcome {
    /// Whether the ending happened (an expiry may rightly lose to activity).
    applied: bool,
    /// Whether the concurrent operation was admitted.
    op_admitted: bool,
    /// Whether its response moved the session to a new ID.
    moved: bool,
    /// How the promise was broken, if it was.
    broken: BTreeSet<String>,
    /// The round's store calls, if it broke the promise and tracing is on.
    trace: Option<String>,
}

/// One store, two nodes over it, one pair of operations.
struct Bench {
    backend: Backend,
    rng: Rng,
    /// The store calls of the current round, with `TSL_RACE_TRACE`.
    trace: Option<Arc<Mutex<Vec<String>>>>,
    followed: bool,
    /// Where the session is used, and where every ending but an expiry is
    /// sent from.
    early: Node,
    /// Where the expiry request is sent: at the idle deadline, while
    /// `early` stands 1 ms before it.
    late: Node,
}

impl Bench {
    fn new(backend: Backend, op: Op, seed: u64) -> Self {
        let rng = Rng::new(seed);
        let trace = std::env::var_os("TSL_RACE_TRACE").map(|_| Arc::default());
        let shared: Arc<dyn LifetimeStore> = Arc::new(YieldingStore {
            inner: Arc::clone(&backend.store),
            rng: rng.clone(),
            trace: trace.clone(),
        });
        let policy = policy(op == Op::Renewal);
        #[cfg(feature = "tower-sessions")]
        let data = tower_sessions::MemoryStore::default();
        #[cfg(not(feature = "tower-sessions"))]
        let data = ();
        let cookie_name = if op.followed() {
            "id"
        } else {
            DEFAULT_COOKIE_NAME
        };
        let node = |clock: ManualClock| {
            let layer = SessionLifetimeLayer::from_shared_store(Arc::clone(&shared))
                .with_clock(clock.clone())
                .with_policy(policy);
            Node {
                router: app(layer, op, &data),
                clock,
                cookie_name,
            }
        };
        Bench {
            backend,
            rng,
            trace,
            followed: op.followed(),
            early: node(clock_now()),
            late: node(clock_now()),
        }
    }

    /// Signs `subject` in on the early node; the new session's ID.
    async fn log_in(&self, subject: &str) -> String {
        let path = if self.followed {
            format!("/ts-login?user={subject}")
        } else {
            format!("/login?user={subject}")
        };
        let answer = self.early.send("POST", &path, None).await;
        assert_eq!(answer.status, StatusCode::OK, "login: {answer}");
        match answer.cookie {
            SetCookie::Set(id) => id,
            other => panic!("the login set no session cookie: {other:?}"),
        }
    }

    /// The key of the one other session that `other`'s session list shows.
    async fn listed_other_key(&self, other: &str) -> SessionKey {
        let response = self.early.request("GET", "/sessions", Some(other)).await;
        assert_eq!(response.status(), StatusCode::OK, "listing the sessions");
        let listed: serde_json::Value =
            serde_json::from_str(&body_text(response).await).expect("JSON");
        let others: Vec<&str> = listed
            .as_array()
            .expect("a list")
            .iter()
            .filter(|session| session["current"] == false)
            .filter_map(|session| session["key"].as_str())
            .collect();
        assert_eq!(others.len(), 1, "one other session: {listed}");
        SessionKey::from_hex(others[0]).expect("a key")
    }

    /// Whether the store holds a live record under `key`, directly or
    /// behind a renewal pointer.
    async fn live(&self, mut key: SessionKey) -> bool {
        for _ in 0..3 {
            let loaded = self
                .backend
                .store
                .load(&key)
                .await
                .expect("the store answers");
            match loaded {
                None => return false,
                Some(record) => match record.renewed_to {
                    None => return true,
                    Some(next) => key = next,
                },
            }
        }
        true
    }

    /// Runs one round of `ending` racing `op` on a new session of a
    /// subject of its own.
    async fn round(&self, ending: Ending, op: Op, round: usize) -> Outcome {
        if let Some(trace) = &self.trace {
            trace.lock().expect("the trace").clear();
        }
        let setup = CALLER
            .scope(Caller::named("setup"), self.set_up(ending, op, round))
            .await;
        // Which operation leads, and by how many store calls (none: both
        // start at once).
        let after = self.rng.below(STAGGER) as usize;
        let gate = Gate::new(after);
        let (op_role, ending_role) = match (after, self.rng.below(2)) {
            (0, _) => (Role::Free, Role::Free),
            (_, 0) => (Role::Leads(Arc::clone(&gate)), Role::Trails(gate)),
            _ => (Role::Trails(Arc::clone(&gate)), Role::Leads(gate)),
        };
        let (op_method, op_path) = op.request();
        let op_request = (op_method, op_path.to_owned(), setup.id.clone());
        let finished = Arc::default();
        let concurrent = self.spawn(&self.early, op.name(), op_request, op_role, &finished);
        let ending_task = self.spawn(
            &setup.ending_node,
            ending.name(),
            setup.ending_request.clone(),
            ending_role,
            &finished,
        );
        let (concurrent, ended) = tokio::join!(concurrent, ending_task);
        let (concurrent, op_order) = concurrent.expect("the concurrent request did not panic");
        let (ended, ending_order) = ended.expect("the ending request did not panic");
        let raced = Raced {
            concurrent,
            ended,
            ended_last: ending_order > op_order,
        };

        let applied = match ending {
            Ending::Expiry => raced.ended.reason == Some(RejectReason::IdleTimeout),
            // A logout that reaches the layer with an ID a `cycle_id` has
            // already retired is refused before the handler runs and ends
            // nothing: a known gap (SECURITY.md, "What it does not do").
            Ending::Logout => raced.ended.reason != Some(RejectReason::Renewed),
            _ => true,
        };
        let ids = setup.ids(&raced);
        let broken = if applied {
            let context = format!("[{ending}: {}; {op}: {}]", raced.ended, raced.concurrent);
            CALLER
                .scope(
                    Caller::named("replay"),
                    self.check(&setup, &ids, setup.browser_id(&raced).as_ref(), &context),
                )
                .await
        } else {
            BTreeSet::new()
        };
        let trace = self
            .trace
            .as_ref()
            .filter(|_| !broken.is_empty())
            .map(|trace| {
                let mut shown = String::new();
                for (what, id) in &ids {
                    let key = key_of(id).short();
                    shown.push_str(&format!("pair_races:       {what}: key {key}\n"));
                }
                for call in trace.lock().expect("the trace").iter() {
                    shown.push_str(&format!("pair_races:       {call}\n"));
                }
                shown
            });
        self.clean_up(&setup, &ids).await;
        Outcome {
            applied,
            op_admitted: raced.concurrent.admitted(),
            moved: ids.iter().any(|(what, _)| *what == CONCURRENT_ID),
            broken,
            trace,
        }
    }

    /// Sends `request` (method, path, ID) from `node` as `name` in a task
    /// of its own: when it trails, once the leader lets it; then after a
    /// few yields. The answer comes with the order in which it finished,
    /// counted in `finished`.
    fn spawn(
        &self,
        node: &Node,
        name: &'static str,
        request: (&'static str, String, String),
        role: Role,
        finished: &Arc<AtomicUsize>,
    ) -> tokio::task::JoinHandle<(Answer, usize)> {
        let (node, rng, finished) = (node.clone(), self.rng.clone(), Arc::clone(finished));
        let gate = match &role {
            Role::Leads(gate) => Some(Arc::clone(gate)),
            Role::Free | Role::Trails(_) => None,
        };
        let task = async move {
            let _opens = match &role {
                Role::Trails(gate) => {
                    gate.wait().await;
                    None
                }
                Role::Leads(gate) => Some(OpensOnDrop(Arc::clone(gate))),
                Role::Free => None,
            };
            rng.yields(START_YIELDS).await;
            let (method, path, id) = request;
            let answer = node.send(method, &path, Some(&id)).await;
            (answer, finished.fetch_add(1, Ordering::SeqCst))
        };
        tokio::spawn(CALLER.scope(Caller { name, gate }, task))
    }

    /// Signs the round's subject in (twice, for an ending from another
    /// device), sets the clocks for the pair, and says what the ending
    /// will send.
    async fn set_up(&self, ending: Ending, op: Op, round: usize) -> Setup {
        // Never behind the wall clock: Redis and tower-sessions' stores
        // expire records by theirs, and a renewal pointer lives for a few
        // seconds only.
        let start = self
            .early
            .clock
            .now()
            .max(self.late.clock.now())
            .max(SystemClock.now())
            .saturating_add(TICK);
        self.early.clock.set(start);
        self.late.clock.set(start);
        let subject = format!("race-{round}-{}", unique());
        let id = self.log_in(&subject).await;
        if op == Op::Renewal && ending != Ending::Expiry {
            // The next request with `id` renews it.
            self.early.clock.advance(RENEWAL);
        }
        let (other, ending_request) = match ending {
            Ending::Logout => (None, ("POST", "/logout".to_owned(), id.clone())),
            Ending::Expiry => (None, ("GET", "/me".to_owned(), id.clone())),
            Ending::LogoutEverywhere => {
                let other = self.log_in(&subject).await;
                let request = ("POST", "/logout-everywhere".to_owned(), other.clone());
                (Some(other), request)
            }
            Ending::EndSession => {
                let other = self.log_in(&subject).await;
                let listed = self.listed_other_key(&other).await;
                assert_eq!(listed, key_of(&id), "the list names the session");
                let path = format!("/sessions/end?key={}", listed.to_hex());
                (Some(other.clone()), ("POST", path, other))
            }
        };
        let ending_node = if ending == Ending::Expiry {
            // Idle since the login (so due for renewal): 1 ms before the
            // deadline on one node, at it on the other.
            self.early.clock.set(start.saturating_add(IDLE - TICK));
            self.late.clock.set(start.saturating_add(IDLE));
            self.late.clone()
        } else {
            // A new millisecond: every request writes its activity.
            self.early.clock.advance(TICK);
            self.early.clone()
        };
        Setup {
            ending,
            subject,
            id,
            other,
            ending_request,
            ending_node,
        }
    }

    /// How the session outlived its end, if it did: a live record under
    /// one of its `ids` (or behind its pointer), one left among the
    /// subject's sessions, or one of `ids` admitted on a later request
    /// (saying so again if it is `browser_id`, the one the browser holds).
    async fn check(
        &self,
        setup: &Setup,
        ids: &[(&str, String)],
        browser_id: Option<&String>,
        context: &str,
    ) -> BTreeSet<String> {
        let mut broken = BTreeSet::new();
        for (what, id) in ids {
            if self.live(key_of(id)).await {
                broken.insert(format!(
                    "a live record under {what} or behind its pointer {context}"
                ));
            }
        }
        // Ending one session from another device leaves that device's.
        let survivor = setup
            .other
            .as_ref()
            .filter(|_| setup.ending == Ending::EndSession)
            .map(|other| key_of(other));
        match self.backend.store.sessions_of(&setup.subject).await {
            Ok(listed) => {
                let left = listed
                    .iter()
                    .any(|(key, record)| record.renewed_to.is_none() && Some(*key) != survivor);
                if left {
                    broken.insert(format!("the subject still has a live session {context}"));
                }
            }
            Err(err) if err.kind() == StoreErrorKind::Unsupported => {}
            Err(err) => panic!("listing the subject's sessions failed: {err:?}"),
        }
        for (what, id) in ids {
            let replay = setup.ending_node.send("GET", "/me", Some(id)).await;
            if replay.admitted() {
                broken.insert(format!("{what} admitted afterwards {context}"));
                if browser_id == Some(id) {
                    broken.insert(format!(
                        "the ID the browser ends up with ({what}) admitted afterwards {context}"
                    ));
                }
            }
        }
        broken
    }

    /// Leaves nothing of the round behind on a store that outlives the test.
    async fn clean_up(&self, setup: &Setup, ids: &[(&str, String)]) {
        let store = &self.backend.store;
        if store.delete_sessions_of(&setup.subject).await.is_err() {
            for (_, id) in ids {
                let _ = store.delete(&key_of(id)).await;
            }
        }
    }
}

/// What the ID the concurrent response set is called in reports.
const CONCURRENT_ID: &str = "the ID the concurrent response set";

/// A round before the race.
struct Setup {
    ending: Ending,
    subject: String,
    /// The session's ID.
    id: String,
    /// The ID of the subject's other device, for an ending sent from there.
    other: Option<String>,
    /// The ending's method, path and the ID it is sent with.
    ending_request: (&'static str, String, String),
    /// Where the ending is sent, and the session replayed afterwards.
    ending_node: Node,
}

/// An operation's place in a round.
enum Role {
    /// It starts at once, as the other does.
    Free,
    /// It starts at once and lets the other start as it goes.
    Leads(Arc<Gate>),
    /// It waits for the other to let it start.
    Trails(Arc<Gate>),
}

/// What the two requests got.
struct Raced {
    concurrent: Answer,
    ended: Answer,
    /// Whether the ending's answer came after the concurrent one.
    ended_last: bool,
}

impl Setup {
    /// Every ID of the session that has to be refused once it has ended:
    /// the one it started with, one a response handed the browser, and
    /// for logout everywhere the other device's.
    fn ids(&self, raced: &Raced) -> Vec<(&'static str, String)> {
        let mut ids = vec![("the original ID", self.id.clone())];
        let mut handed_out = |what, answer: &Answer| {
            if let SetCookie::Set(new) = &answer.cookie {
                if *new != self.id {
                    ids.push((what, new.clone()));
                }
            }
        };
        handed_out(CONCURRENT_ID, &raced.concurrent);
        if matches!(self.ending, Ending::Logout | Ending::Expiry) {
            handed_out("the ID the ending response set", &raced.ended);
        }
        if let (Ending::LogoutEverywhere, Some(other)) = (self.ending, &self.other) {
            ids.push(("the other device's ID", other.clone()));
        }
        ids
    }

    /// The session ID the browser holds once both answers have arrived,
    /// in the order they were sent (an ending from another device is not
    /// sent to it), if it holds one.
    fn browser_id(&self, raced: &Raced) -> Option<String> {
        let same_browser = matches!(self.ending, Ending::Logout | Ending::Expiry);
        let answers = match (same_browser, raced.ended_last) {
            (false, _) => vec![&raced.concurrent],
            (true, true) => vec![&raced.concurrent, &raced.ended],
            (true, false) => vec![&raced.ended, &raced.concurrent],
        };
        let mut held = Some(self.id.clone());
        for answer in answers {
            match &answer.cookie {
                SetCookie::Untouched => {}
                SetCookie::Removed => held = None,
                SetCookie::Set(id) => held = Some(id.clone()),
            }
        }
        held
    }
}

// ---------------------------------------------------------------------------
// Running a pair

/// Rounds per pair: `TSL_RACE_ROUNDS`, or [`DEFAULT_ROUNDS`].
fn rounds() -> usize {
    match std::env::var("TSL_RACE_ROUNDS") {
        Ok(rounds) => rounds.trim().parse().expect("TSL_RACE_ROUNDS is a number"),
        Err(_) => DEFAULT_ROUNDS,
    }
}

/// The seed of the whole run: `TSL_RACE_SEED`, or one from the time.
fn base_seed() -> u64 {
    static SEED: OnceLock<u64> = OnceLock::new();
    *SEED.get_or_init(|| match std::env::var("TSL_RACE_SEED") {
        Ok(seed) => {
            let seed = seed.trim();
            match seed.strip_prefix("0x") {
                Some(hex) => u64::from_str_radix(hex, 16),
                None => seed.parse(),
            }
            .expect("TSL_RACE_SEED is a number")
        }
        Err(_) => {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .expect("after 1970");
            mix(now.as_nanos() as u64 ^ u64::from(std::process::id()))
        }
    })
}

/// A test's own seed, from the run's and its name.
fn seed_for(name: &str) -> u64 {
    // FNV-1a.
    let hash = name.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
    });
    mix(base_seed() ^ hash)
}

/// What the rounds of one pair showed.
#[derive(Default)]
struct Tally {
    rounds: usize,
    applied: usize,
    op_admitted: usize,
    moved: usize,
    violating: usize,
    kinds: BTreeMap<String, usize>,
    /// The store calls of the first round that broke the promise.
    first_trace: Option<String>,
}

/// Races `ending` against `op` on the store `backend` opens, for
/// [`rounds`] rounds; prints what it saw and fails if any round broke the
/// promise.
async fn race(store: &str, backend: impl Future<Output = Backend>, ending: Ending, op: Op) {
    let name = format!("{store}: {ending} x {op}");
    let seed = seed_for(&name);
    let bench = Bench::new(backend.await, op, seed);
    let started = Instant::now();
    let mut tally = Tally::default();
    for round in 0..rounds() {
        let outcome = bench.round(ending, op, round).await;
        tally.rounds += 1;
        tally.applied += usize::from(outcome.applied);
        tally.op_admitted += usize::from(outcome.op_admitted);
        tally.moved += usize::from(outcome.moved);
        tally.violating += usize::from(!outcome.broken.is_empty());
        for kind in outcome.broken {
            *tally.kinds.entry(kind).or_default() += 1;
        }
        if tally.first_trace.is_none() {
            tally.first_trace = outcome.trace;
        }
    }
    // One write, so that the lines of tests running in parallel do not mix.
    let mut report = format!(
        "pair_races: {store:<20} {ending:<17} x {op:<14} {rounds:>6} rounds: ending applied \
         {applied:>6}, op admitted {admitted:>6}, op moved the ID {moved:>6}, violations \
         {violating:>6} ({elapsed:.2?}; seed {seed:#018x}, TSL_RACE_SEED={base:#x})\n",
        ending = ending.to_string(),
        op = op.to_string(),
        rounds = tally.rounds,
        applied = tally.applied,
        admitted = tally.op_admitted,
        moved = tally.moved,
        violating = tally.violating,
        elapsed = started.elapsed(),
        base = base_seed(),
    );
    for (kind, count) in &tally.kinds {
        report.push_str(&format!("pair_races:     {count:>6} x {kind}\n"));
    }
    if let Some(trace) = &tally.first_trace {
        report.push_str("pair_races:     the store calls of the first such round:\n");
        report.push_str(trace);
    }
    eprint!("{report}");
    assert!(
        tally.violating == 0,
        "{name}: the promise broke in {} of {} rounds: {:#?}",
        tally.violating,
        tally.rounds,
        tally.kinds
    );
    if tally.rounds >= ROUNDS_TO_SEE_BOTH_ORDERS {
        assert!(tally.applied > 0, "{name}: the ending never applied");
        assert!(
            tally.op_admitted > 0,
            "{name}: the concurrent operation never came first"
        );
    }
}

// ---------------------------------------------------------------------------
// The tests: one module per store, one test per pair

/// One test per listed pair, in a module named after the store.
macro_rules! pair_tests {
    ($store:ident, $open:expr, [$($(#[$attr:meta])* $name:ident: $ending:ident x $op:ident),* $(,)?]) => {
        mod $store {
            use super::*;

            $(
                $(#[$attr])*
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    race(stringify!($store), $open, Ending::$ending, Op::$op).await;
                }
            )*
        }
    };
}

/// Every pair, for a store that lists a subject's sessions.
macro_rules! every_pair {
    ($store:ident, $open:expr) => {
        pair_tests!($store, $open, [
            logout_vs_touch: Logout x Touch,
            logout_vs_renewal: Logout x Renewal,
            logout_vs_remember_me: Logout x RememberMe,
            logout_vs_reauthenticate: Logout x Reauthenticate,
            #[cfg(feature = "tower-sessions")]
            logout_vs_cycle_id: Logout x CycleId,
            #[cfg(feature = "tower-sessions")]
            logout_vs_flush: Logout x Flush,
            logout_everywhere_vs_touch: LogoutEverywhere x Touch,
            logout_everywhere_vs_renewal: LogoutEverywhere x Renewal,
            logout_everywhere_vs_remember_me: LogoutEverywhere x RememberMe,
            logout_everywhere_vs_reauthenticate: LogoutEverywhere x Reauthenticate,
            #[cfg(feature = "tower-sessions")]
            logout_everywhere_vs_cycle_id: LogoutEverywhere x CycleId,
            #[cfg(feature = "tower-sessions")]
            logout_everywhere_vs_flush: LogoutEverywhere x Flush,
            end_session_vs_touch: EndSession x Touch,
            end_session_vs_renewal: EndSession x Renewal,
            end_session_vs_remember_me: EndSession x RememberMe,
            end_session_vs_reauthenticate: EndSession x Reauthenticate,
            #[cfg(feature = "tower-sessions")]
            end_session_vs_cycle_id: EndSession x CycleId,
            #[cfg(feature = "tower-sessions")]
            end_session_vs_flush: EndSession x Flush,
            expiry_vs_touch: Expiry x Touch,
            expiry_vs_renewal: Expiry x Renewal,
            expiry_vs_remember_me: Expiry x RememberMe,
            expiry_vs_reauthenticate: Expiry x Reauthenticate,
            #[cfg(feature = "tower-sessions")]
            expiry_vs_cycle_id: Expiry x CycleId,
            #[cfg(feature = "tower-sessions")]
            expiry_vs_flush: Expiry x Flush,
        ]);
    };
}

every_pair!(memory, memory());

#[cfg(feature = "sqlite")]
every_pair!(sqlite, sqlite());

#[cfg(feature = "redis")]
every_pair!(redis, redis());

#[cfg(feature = "postgres")]
every_pair!(postgres, postgres());

// A tower-sessions store cannot list a subject's sessions: no logout
// everywhere, no session list to end one from.
#[cfg(feature = "tower-sessions")]
pair_tests!(tower_sessions_store, tower_sessions_store(), [
    logout_vs_touch: Logout x Touch,
    logout_vs_renewal: Logout x Renewal,
    logout_vs_remember_me: Logout x RememberMe,
    logout_vs_reauthenticate: Logout x Reauthenticate,
    logout_vs_cycle_id: Logout x CycleId,
    logout_vs_flush: Logout x Flush,
    expiry_vs_touch: Expiry x Touch,
    expiry_vs_renewal: Expiry x Renewal,
    expiry_vs_remember_me: Expiry x RememberMe,
    expiry_vs_reauthenticate: Expiry x Reauthenticate,
    expiry_vs_cycle_id: Expiry x CycleId,
    expiry_vs_flush: Expiry x Flush,
]);
