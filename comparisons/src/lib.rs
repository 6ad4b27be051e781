//! The apps the comparisons run, and what they count.
//!
//! Every variant serves the same two routes: `POST /login` starts a session
//! for `alice`, `GET /api/me` answers `{"subject":"alice"}` for a live
//! session and `401` otherwise.
//!
//! - `bare`: the routes with no session layer (`/api/me` always answers);
//! - `lifetime-memory`, `tower-sessions-memory`: the same two layers as
//!   below, each on its own in-process `MemoryStore`: what each costs the
//!   process, without a server;
//! - `lifetime-redis`, `lifetime-postgres`: behind `SessionLifetimeLayer`
//!   on `RedisStore` / `PostgresStore`, with the default policy;
//! - `tower-sessions-redis`, `tower-sessions-postgres`: behind
//!   tower-sessions' `SessionManagerLayer` on tower-sessions-redis-store /
//!   tower-sessions-sqlx-store, with `Expiry::OnInactivity` (15 minutes,
//!   the default policy's idle timeout) and `with_always_save(true)`, so
//!   that activity extends the session as ours does.

pub mod round_trips;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use axum::routing::{get, post};
use axum::{Json, Router};
use tower::ServiceExt;
use tower_session_lifetime::{
    clock::Clock,
    id::SessionKey,
    record::SessionRecord,
    store::{LifetimeStore, LoadedRecord, StoreError, TouchOutcome, UpdateOutcome},
    time::Timestamp,
    MemoryStore, Policy, PostgresStore, RedisStore, SessionHandle, SessionLifetimeLayer,
};

/// One app under measurement.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Variant {
    Bare,
    LifetimeMemory,
    TowerSessionsMemory,
    LifetimeRedis,
    LifetimePostgres,
    TowerSessionsRedis,
    TowerSessionsPostgres,
}

impl Variant {
    pub const ALL: [Variant; 7] = [
        Variant::Bare,
        Variant::LifetimeMemory,
        Variant::TowerSessionsMemory,
        Variant::LifetimeRedis,
        Variant::TowerSessionsRedis,
        Variant::LifetimePostgres,
        Variant::TowerSessionsPostgres,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Variant::Bare => "bare",
            Variant::LifetimeMemory => "lifetime-memory",
            Variant::TowerSessionsMemory => "tower-sessions-memory",
            Variant::LifetimeRedis => "lifetime-redis",
            Variant::LifetimePostgres => "lifetime-postgres",
            Variant::TowerSessionsRedis => "tower-sessions-redis",
            Variant::TowerSessionsPostgres => "tower-sessions-postgres",
        }
    }

    pub fn parse(name: &str) -> Option<Variant> {
        Variant::ALL
            .into_iter()
            .find(|variant| variant.name() == name)
    }

    /// Whether its store is in the process (no server, no round trips).
    pub fn is_in_process(self) -> bool {
        matches!(
            self,
            Variant::Bare | Variant::LifetimeMemory | Variant::TowerSessionsMemory
        )
    }

    pub fn is_redis(self) -> bool {
        matches!(self, Variant::LifetimeRedis | Variant::TowerSessionsRedis)
    }
}

/// Where the servers are.
#[derive(Clone, Debug)]
pub struct Servers {
    pub redis_url: String,
    pub postgres_url: String,
}

impl Servers {
    /// From `TSL_REDIS_URL` and `TSL_POSTGRES_URL`, as scripts/servers.sh
    /// sets them.
    pub fn from_env() -> Servers {
        let var = |name: &str| {
            std::env::var(name).unwrap_or_else(|_| {
                panic!(
                    "{name} is not set: run through scripts/bench-stores, which starts the servers"
                )
            })
        };
        Servers {
            redis_url: var("TSL_REDIS_URL"),
            postgres_url: var("TSL_POSTGRES_URL"),
        }
    }
}

/// Store writes made by the lifetime layer, counted by [`CountingStore`].
#[derive(Clone, Debug, Default)]
pub struct Writes(Arc<AtomicU64>);

impl Writes {
    pub fn take(&self) -> u64 {
        self.0.swap(0, Ordering::Relaxed)
    }

    fn add(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
}

/// A lifetime store that counts its writes (a touch made inside
/// `load_and_touch` included) and otherwise does what the store it wraps
/// does, in as many round trips.
pub struct CountingStore<S> {
    inner: S,
    writes: Writes,
}

#[async_trait]
impl<S: LifetimeStore> LifetimeStore for CountingStore<S> {
    async fn create(&self, key: &SessionKey, record: &SessionRecord) -> Result<bool, StoreError> {
        self.writes.add();
        self.inner.create(key, record).await
    }
    async fn load(&self, key: &SessionKey) -> Result<Option<SessionRecord>, StoreError> {
        self.inner.load(key).await
    }
    // A read, so nothing to count; forwarded, so that the memory store keeps
    // its synchronous fast path (a request that writes nothing allocates no
    // future), as an app using it directly has.
    fn try_load_now(&self, key: &SessionKey) -> Option<Result<Option<SessionRecord>, StoreError>> {
        self.inner.try_load_now(key)
    }
    async fn load_and_touch(
        &self,
        key: &SessionKey,
        policy: &Policy,
        now: Timestamp,
    ) -> Result<Option<LoadedRecord>, StoreError> {
        let loaded = self.inner.load_and_touch(key, policy, now).await?;
        if loaded.as_ref().is_some_and(|loaded| loaded.touch.is_some()) {
            self.writes.add();
        }
        Ok(loaded)
    }
    async fn touch(
        &self,
        key: &SessionKey,
        activity: Timestamp,
        expires_at: Timestamp,
    ) -> Result<TouchOutcome, StoreError> {
        self.writes.add();
        self.inner.touch(key, activity, expires_at).await
    }
    async fn update(
        &self,
        key: &SessionKey,
        expected_version: u64,
        record: &SessionRecord,
    ) -> Result<UpdateOutcome, StoreError> {
        self.writes.add();
        self.inner.update(key, expected_version, record).await
    }
    async fn delete(&self, key: &SessionKey) -> Result<bool, StoreError> {
        self.writes.add();
        self.inner.delete(key).await
    }
    async fn delete_stale(
        &self,
        key: &SessionKey,
        last_activity: Timestamp,
    ) -> Result<bool, StoreError> {
        self.writes.add();
        self.inner.delete_stale(key, last_activity).await
    }
    async fn reclaim_expired(&self) -> Result<u64, StoreError> {
        self.inner.reclaim_expired().await
    }
}

/// The app of `variant` on `servers`, with the lifetime layer on `clock`,
/// and the counter of the lifetime store's writes.
pub async fn app(variant: Variant, servers: &Servers, clock: impl Clock) -> (Router, Writes) {
    let writes = Writes::default();
    let router = match variant {
        Variant::Bare => Router::new()
            .route("/login", post(|| async { StatusCode::OK }))
            .route(
                "/api/me",
                get(|| async { Json(serde_json::json!({"subject": "alice"})) }),
            ),
        Variant::LifetimeMemory => lifetime_routes(MemoryStore::new(), writes.clone(), clock),
        Variant::TowerSessionsMemory => {
            tower_sessions_routes(tower_sessions::MemoryStore::default())
        }
        Variant::LifetimeRedis => {
            let store = RedisStore::open(&servers.redis_url).expect("a Redis URL");
            lifetime_routes(store, writes.clone(), clock)
        }
        Variant::LifetimePostgres => {
            let store = PostgresStore::open(&servers.postgres_url).expect("a PostgreSQL URL");
            store.migrate().await.expect("migration");
            lifetime_routes(store, writes.clone(), clock)
        }
        Variant::TowerSessionsRedis => {
            let config = fred::prelude::Config::from_url(&servers.redis_url).expect("a Redis URL");
            let pool = fred::prelude::Pool::new(config, None, None, None, 2).expect("a pool");
            fred::prelude::ClientLike::init(&pool)
                .await
                .expect("Redis is up");
            tower_sessions_routes(tower_sessions_redis_store::RedisStore::new(pool))
        }
        Variant::TowerSessionsPostgres => {
            // The same pool settings as PostgresStore::open: no ping before
            // each use.
            let pool = sqlx::postgres::PgPoolOptions::new()
                .max_connections(10)
                .test_before_acquire(false)
                .connect(&servers.postgres_url)
                .await
                .expect("PostgreSQL is up");
            let store = tower_sessions_sqlx_store::PostgresStore::new(pool);
            store.migrate().await.expect("migration");
            tower_sessions_routes(store)
        }
    };
    (router, writes)
}

fn lifetime_routes(store: impl LifetimeStore, writes: Writes, clock: impl Clock) -> Router {
    async fn login(session: SessionHandle) -> StatusCode {
        match session.login("alice", false).await {
            Ok(()) => StatusCode::OK,
            Err(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }
    async fn me(session: SessionHandle) -> Result<Json<serde_json::Value>, StatusCode> {
        let subject = session.subject().ok_or(StatusCode::UNAUTHORIZED)?;
        Ok(Json(serde_json::json!({ "subject": subject })))
    }
    let store = CountingStore {
        inner: store,
        writes,
    };
    Router::new()
        .route("/login", post(login))
        .route("/api/me", get(me))
        .layer(SessionLifetimeLayer::new(store).with_clock(clock))
}

fn tower_sessions_routes(store: impl tower_sessions::SessionStore + Clone) -> Router {
    use tower_sessions::{Expiry, Session, SessionManagerLayer};

    async fn login(session: Session) -> StatusCode {
        match session.insert("subject", "alice").await {
            Ok(()) => StatusCode::OK,
            Err(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }
    async fn me(session: Session) -> Result<Json<serde_json::Value>, StatusCode> {
        let subject: String = session
            .get("subject")
            .await
            .map_err(|_| StatusCode::SERVICE_UNAVAILABLE)?
            .ok_or(StatusCode::UNAUTHORIZED)?;
        Ok(Json(serde_json::json!({ "subject": subject })))
    }
    let layer = SessionManagerLayer::new(store)
        .with_secure(false)
        .with_expiry(Expiry::OnInactivity(time::Duration::minutes(15)))
        .with_always_save(true);
    Router::new()
        .route("/login", post(login))
        .route("/api/me", get(me))
        .layer(layer)
}

/// Logs in and returns the `Cookie` header value of the new session.
pub async fn log_in(app: &Router) -> String {
    let response = app
        .clone()
        .oneshot(
            Request::post("/login")
                .body(Body::empty())
                .expect("a request"),
        )
        .await
        .expect("infallible");
    assert_eq!(response.status(), StatusCode::OK, "login");
    response
        .headers()
        .get(header::SET_COOKIE)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.split(';').next())
        .map(str::to_owned)
        .unwrap_or_default()
}

/// `GET /api/me` with `cookie`; panics unless it answers 200.
pub async fn me(app: &Router, cookie: &str) {
    let mut request = Request::get("/api/me");
    if !cookie.is_empty() {
        request = request.header(header::COOKIE, cookie);
    }
    let response = app
        .clone()
        .oneshot(request.body(Body::empty()).expect("a request"))
        .await
        .expect("infallible");
    assert_eq!(response.status(), StatusCode::OK, "an admitted request");
}
