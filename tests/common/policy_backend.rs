//! Where a test's nodes keep their policies (and, if it likes, their
//! sessions): a Redis prefix or a PostgreSQL table of its own, on the
//! servers `TSL_REDIS_URL` and `TSL_POSTGRES_URL` name; and what is stored
//! there, read and written raw, as an operator or a forger would.

use std::time::{Duration, Instant};

use tower_session_lifetime::policy::LivePolicy;
use tower_session_lifetime::store::conformance::fresh_key;
use tower_session_lifetime::store::{PolicyStore, StoreError, StoredPolicies};
use tower_session_lifetime::{PostgresStore, RedisStore};

/// Two tests of one scenario, `async fn scenario(backend: Backend)`: one
/// on Redis, one on PostgreSQL, each on a multi-threaded runtime.
///
/// `crate::on_both_stores!(scenario => redis_test, postgres_test);`
#[macro_export]
macro_rules! on_both_stores {
    ($scenario:ident => $redis:ident, $postgres:ident) => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $redis() {
            $scenario($crate::common::policy_backend::Backend::redis()).await;
        }

        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $postgres() {
            $scenario($crate::common::policy_backend::Backend::postgres().await).await;
        }
    };
}

/// How long a change may take to reach another node: the bound
/// `SharedPolicy` states (a notification, else a poll).
pub const BOUND: Duration = Duration::from_secs(1);

/// Waits until `live` has version `version` in force, failing after ten
/// times [`BOUND`] (room for a loaded machine); how long it took.
pub async fn reached(live: &LivePolicy, version: u64) -> Duration {
    let start = Instant::now();
    while live.current().version() < version {
        assert!(
            start.elapsed() < 10 * BOUND,
            "version {version} did not arrive (at {})",
            live.current().version()
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    start.elapsed()
}

/// A policy store client of a backend's, as `SharedPolicy::start` takes
/// one.
pub struct PolicyClient(Box<dyn PolicyStore>);

#[async_trait::async_trait]
impl PolicyStore for PolicyClient {
    async fn load_policies(&self) -> Result<Option<StoredPolicies>, StoreError> {
        self.0.load_policies().await
    }

    async fn store_policies(&self, expected: u64, text: &str) -> Result<bool, StoreError> {
        self.0.store_policies(expected, text).await
    }

    async fn watch_policies(&self, changed: &(dyn Fn() + Send + Sync)) -> Result<(), StoreError> {
        self.0.watch_policies(changed).await
    }
}

/// The value of the environment variable `name`, which the test needs.
pub fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!("{name} is not set: run the tests with scripts/test, which starts the servers")
    })
}

/// One test's place in Redis or PostgreSQL.
#[derive(Clone, Debug)]
pub enum Backend {
    Redis { url: String, prefix: String },
    Postgres { url: String, table: String },
}

impl Backend {
    /// A fresh prefix on the Redis at `TSL_REDIS_URL`.
    pub fn redis() -> Self {
        Backend::Redis {
            url: env("TSL_REDIS_URL"),
            prefix: format!("tsl-policy-{}:", &fresh_key().to_hex()[..12]),
        }
    }

    /// A fresh table (and its policies table) on the PostgreSQL at
    /// `TSL_POSTGRES_URL`, migrated.
    pub async fn postgres() -> Self {
        let backend = Backend::Postgres {
            url: env("TSL_POSTGRES_URL"),
            table: format!("tsl_policy_{}", &fresh_key().to_hex()[..12]),
        };
        backend.postgres_store().migrate().await.unwrap();
        backend
    }

    /// The server's URL.
    pub fn url(&self) -> &str {
        match self {
            Backend::Redis { url, .. } | Backend::Postgres { url, .. } => url,
        }
    }

    /// A Redis store client of its own on this prefix, through `url`.
    pub fn redis_store_at(&self, url: &str) -> RedisStore {
        let Backend::Redis { prefix, .. } = self else {
            panic!("not a Redis backend")
        };
        RedisStore::open(url).unwrap().with_prefix(prefix.clone())
    }

    /// A PostgreSQL store client of its own on this table, through `url`.
    pub fn postgres_store_at(&self, url: &str) -> PostgresStore {
        let Backend::Postgres { table, .. } = self else {
            panic!("not a PostgreSQL backend")
        };
        PostgresStore::open(url).unwrap().with_table(table).unwrap()
    }

    pub fn redis_store(&self) -> RedisStore {
        self.redis_store_at(self.url())
    }

    pub fn postgres_store(&self) -> PostgresStore {
        self.postgres_store_at(self.url())
    }

    /// A policy store client of its own, through `url`.
    pub fn store_at(&self, url: &str) -> Box<dyn PolicyStore> {
        match self {
            Backend::Redis { .. } => Box::new(self.redis_store_at(url)),
            Backend::Postgres { .. } => Box::new(self.postgres_store_at(url)),
        }
    }

    /// A policy store client of its own.
    pub fn store(&self) -> Box<dyn PolicyStore> {
        self.store_at(self.url())
    }

    /// A policy store client of its own, as `SharedPolicy::start` takes
    /// one.
    pub fn client(&self) -> PolicyClient {
        PolicyClient(self.store())
    }

    /// The stored policies, as the store reads them.
    pub async fn stored(&self) -> Option<StoredPolicies> {
        self.store().load_policies().await.unwrap()
    }

    /// The Redis key or the PostgreSQL table of the policies.
    pub fn key(&self) -> String {
        match self {
            Backend::Redis { prefix, .. } => format!("{prefix}policies"),
            Backend::Postgres { table, .. } => format!("{table}_policies"),
        }
    }

    /// A Redis connection of its own.
    pub async fn redis_connection(&self) -> redis::aio::MultiplexedConnection {
        redis::Client::open(self.url())
            .unwrap()
            .get_multiplexed_async_connection()
            .await
            .unwrap()
    }

    /// A PostgreSQL pool of its own.
    pub async fn postgres_pool(&self) -> sqlx::PgPool {
        sqlx::PgPool::connect(self.url()).await.unwrap()
    }

    /// The stored policies' fields, raw and sorted: Redis's `HGETALL`
    /// (`v`, `p`), or PostgreSQL's row as the same two fields.
    pub async fn raw(&self) -> Vec<(String, Vec<u8>)> {
        match self {
            Backend::Redis { .. } => {
                let mut all: Vec<(String, Vec<u8>)> = redis::cmd("HGETALL")
                    .arg(self.key())
                    .query_async(&mut self.redis_connection().await)
                    .await
                    .unwrap();
                all.sort();
                all
            }
            Backend::Postgres { .. } => {
                let rows: Vec<(i64, String)> =
                    sqlx::query_as(&format!("SELECT version, policies FROM {}", self.key()))
                        .fetch_all(&self.postgres_pool().await)
                        .await
                        .unwrap();
                rows.into_iter()
                    .flat_map(|(v, p)| {
                        [
                            ("v".to_owned(), v.to_string().into_bytes()),
                            ("p".to_owned(), p.into_bytes()),
                        ]
                    })
                    .collect()
            }
        }
    }

    /// Everything stored under the policies' key, whatever its type:
    /// Redis's `DUMP`, or PostgreSQL's rows.
    pub async fn dump(&self) -> Vec<u8> {
        match self {
            Backend::Redis { .. } => {
                let dump: Option<Vec<u8>> = redis::cmd("DUMP")
                    .arg(self.key())
                    .query_async(&mut self.redis_connection().await)
                    .await
                    .unwrap();
                dump.unwrap_or_default()
            }
            Backend::Postgres { .. } => {
                let rows: Vec<(i16, i64, String)> = sqlx::query_as(&format!(
                    "SELECT id, version, policies FROM {} ORDER BY id",
                    self.key()
                ))
                .fetch_all(&self.postgres_pool().await)
                .await
                .unwrap();
                format!("{rows:?}").into_bytes()
            }
        }
    }

    /// Removes the stored policies, as a Redis restarted without
    /// persistence or an operator's `DELETE` would.
    pub async fn remove(&self) {
        match self {
            Backend::Redis { .. } => {
                let _: i64 = redis::cmd("DEL")
                    .arg(self.key())
                    .query_async(&mut self.redis_connection().await)
                    .await
                    .unwrap();
            }
            Backend::Postgres { .. } => {
                sqlx::query(&format!("DELETE FROM {}", self.key()))
                    .execute(&self.postgres_pool().await)
                    .await
                    .unwrap();
            }
        }
    }

    /// Writes the stored policies as a forger would, in place of what is
    /// there: `version` and `text` (`None` leaves a Redis field out; on
    /// PostgreSQL both are needed, the version a decimal `i64`).
    pub async fn forge(&self, version: Option<&str>, text: Option<&[u8]>) {
        self.remove().await;
        match self {
            Backend::Redis { .. } => {
                let mut hset = redis::cmd("HSET");
                hset.arg(self.key());
                if let Some(version) = version {
                    hset.arg("v").arg(version);
                }
                if let Some(text) = text {
                    hset.arg("p").arg(text);
                }
                if version.is_some() || text.is_some() {
                    let _: i64 = hset
                        .query_async(&mut self.redis_connection().await)
                        .await
                        .unwrap();
                }
            }
            Backend::Postgres { .. } => {
                let version: i64 = version.unwrap().parse().unwrap();
                let text = String::from_utf8(text.unwrap().to_vec()).unwrap();
                sqlx::query(&format!(
                    "INSERT INTO {} (id, version, policies) VALUES (1, $1, $2)",
                    self.key()
                ))
                .bind(version)
                .bind(text)
                .execute(&self.postgres_pool().await)
                .await
                .unwrap();
            }
        }
    }

    /// Sets the stored version alone to `version` (a decimal), keeping the
    /// text.
    pub async fn forge_version(&self, version: &str) {
        match self {
            Backend::Redis { .. } => {
                let _: i64 = redis::cmd("HSET")
                    .arg(self.key())
                    .arg("v")
                    .arg(version)
                    .query_async(&mut self.redis_connection().await)
                    .await
                    .unwrap();
            }
            Backend::Postgres { .. } => {
                sqlx::query(&format!("UPDATE {} SET version = $1", self.key()))
                    .bind(version.parse::<i64>().unwrap())
                    .execute(&self.postgres_pool().await)
                    .await
                    .unwrap();
            }
        }
    }
}
