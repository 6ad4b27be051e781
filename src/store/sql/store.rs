//! [`SqlStore`]: the API that [`PostgresStore`](crate::PostgresStore) and
//! [`SqliteStore`](crate::SqliteStore) share, written once over the
//! [`Dialect`] that tells them apart.

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use sqlx::Pool;

use super::{checked_table, time, DEFAULT_TABLE};
use crate::clock::{Clock, SystemClock};
use crate::id::SessionKey;
use crate::store::StoreError;

/// Keeps session lifetimes in one table of an SQL database, through an
/// sqlx pool: [`PostgresStore`](crate::PostgresStore) (`SqlStore<Postgres>`,
/// feature `postgres`) or [`SqliteStore`](crate::SqliteStore)
/// (`SqlStore<Sqlite>`, feature `sqlite`). Name the store by those aliases;
/// this page lists what both offer, theirs what each adds (`open`, `new`).
///
/// ```no_run
/// use std::time::Duration;
/// use tower_session_lifetime::{SessionLifetimeLayer, SqliteStore};
///
/// # async fn run() -> Result<(), tower_session_lifetime::store::StoreError> {
/// let store = SqliteStore::open("sqlite://sessions.db")?.with_table("app_sessions")?;
/// store.migrate().await?;
/// let _purge = store.spawn_purge(Duration::from_secs(300));
/// let layer = SessionLifetimeLayer::new(store);
/// # let _ = layer;
/// # Ok(())
/// # }
/// ```
///
/// [`LifetimeStore`](crate::store::LifetimeStore) is implemented for each
/// dialect's store; code generic over the dialect that hands the store to
/// the layer says so with `where SqlStore<D>: LifetimeStore`. The dialects
/// are named as sqlx names them (`sqlx::Postgres`, `sqlx::Sqlite`), which
/// needs sqlx 0.8 among your dependencies; the aliases do not.
///
/// Cloning gives another handle on the same pool.
pub struct SqlStore<DB: Dialect> {
    pub(super) pool: Pool<DB>,
    pub(super) queries: Arc<DB::Queries>,
    clock: Arc<dyn Clock>,
}

/// The SQL databases a [`SqlStore`] runs on: `sqlx::Postgres` and
/// `sqlx::Sqlite`. Sealed: the crate writes each dialect's statements
/// itself.
pub trait Dialect: dialect::Statements {}

/// What a dialect provides, out of the public API's reach.
pub(super) mod dialect {
    use std::future::Future;

    use sqlx::Pool;

    use crate::id::SessionKey;
    use crate::store::StoreError;

    /// A dialect's statements and the few operations that run them
    /// outside the [`LifetimeStore`](crate::store::LifetimeStore) impls.
    pub trait Statements: sqlx::Database {
        /// Every statement, written once for a table's name.
        type Queries: Send + Sync + 'static;

        /// The statements on the table `table` (a checked name).
        fn queries(table: String) -> Self::Queries;

        /// The table's name.
        fn table(queries: &Self::Queries) -> &str;

        /// Creates the table and its index unless they exist.
        fn migrate(
            pool: &Pool<Self>,
            queries: &Self::Queries,
        ) -> impl Future<Output = Result<(), StoreError>> + Send;

        /// Deletes the rows whose expiry is at or before `now` (Unix ms).
        fn purge(
            pool: &Pool<Self>,
            queries: &Self::Queries,
            now: i64,
        ) -> impl Future<Output = Result<u64, StoreError>> + Send;

        /// Whether a row for `key` exists.
        fn exists(
            pool: &Pool<Self>,
            queries: &Self::Queries,
            key: &SessionKey,
        ) -> impl Future<Output = Result<bool, StoreError>> + Send;
    }
}

/// Implements [`dialect::Statements`] for `$db`, whose `Queries` (in the
/// dialect's module) has `table`, `migration()`, `purge` and `exists`:
/// the same calls on every dialect, which sqlx's traits would only let
/// generic code make under a page of bounds.
macro_rules! dialect_statements {
    ($db:ty) => {
        impl $crate::store::sql::store::dialect::Statements for $db {
            type Queries = Queries;

            fn queries(table: String) -> Queries {
                Queries::new(table)
            }

            fn table(queries: &Queries) -> &str {
                &queries.table
            }

            async fn migrate(
                pool: &::sqlx::Pool<$db>,
                queries: &Queries,
            ) -> Result<(), StoreError> {
                ::sqlx::raw_sql(&queries.migration())
                    .execute(pool)
                    .await
                    .map_err($crate::store::sql::store_error)?;
                Ok(())
            }

            async fn purge(
                pool: &::sqlx::Pool<$db>,
                queries: &Queries,
                now: i64,
            ) -> Result<u64, StoreError> {
                let result = ::sqlx::query(&queries.purge)
                    .bind(now)
                    .execute(pool)
                    .await
                    .map_err($crate::store::sql::store_error)?;
                Ok(result.rows_affected())
            }

            async fn exists(
                pool: &::sqlx::Pool<$db>,
                queries: &Queries,
                key: &SessionKey,
            ) -> Result<bool, StoreError> {
                ::sqlx::query_scalar(&queries.exists)
                    .bind($crate::store::sql::key_bytes(key))
                    .fetch_one(pool)
                    .await
                    .map_err($crate::store::sql::store_error)
            }
        }
    };
}
pub(super) use dialect_statements;

impl<DB: Dialect> SqlStore<DB> {
    /// A store on `pool`, in the table `session_lifetimes`, by the system
    /// clock.
    pub(super) fn on_pool(pool: Pool<DB>) -> Self {
        SqlStore {
            pool,
            queries: Arc::new(DB::queries(DEFAULT_TABLE.to_owned())),
            clock: Arc::new(SystemClock),
        }
    }

    /// Keeps the sessions in the table `name` instead of
    /// `session_lifetimes`. Fails unless `name` is letters, digits and `_`
    /// (not starting with a digit, at most 48 bytes).
    pub fn with_table(mut self, name: &str) -> Result<Self, StoreError> {
        self.queries = Arc::new(DB::queries(checked_table(name)?));
        Ok(self)
    }

    /// Decides what has expired (for the purge) by `clock` instead of the
    /// system clock.
    pub fn with_clock(mut self, clock: impl Clock) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// Creates the table and its subject index unless they exist. Safe to
    /// run on every start of every node: it changes nothing when they
    /// exist, and on PostgreSQL concurrent runs wait for each other (an
    /// advisory lock).
    pub async fn migrate(&self) -> Result<(), StoreError> {
        DB::migrate(&self.pool, &self.queries).await
    }

    /// Deletes every session whose `expires_at` has passed; returns how many.
    /// The same as [`reclaim_expired`](crate::store::LifetimeStore::reclaim_expired).
    pub async fn purge_expired(&self) -> Result<u64, StoreError> {
        DB::purge(&self.pool, &self.queries, time(self.clock.now())).await
    }

    /// Runs [`purge_expired`](SqlStore::purge_expired) every `every` on the
    /// current tokio runtime until the handle is aborted (or the runtime
    /// ends); a failed run is logged and retried at the next tick.
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime.
    pub fn spawn_purge(&self, every: Duration) -> tokio::task::JoinHandle<()> {
        let store = self.clone();
        tokio::spawn(async move {
            let mut interval = tokio::time::interval(every.max(Duration::from_millis(1)));
            interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                interval.tick().await;
                match store.purge_expired().await {
                    Ok(purged) => tracing::debug!(purged, "purged expired sessions"),
                    Err(err) => tracing::warn!(error = %err, "could not purge expired sessions"),
                }
            }
        })
    }

    /// The pool the store runs on.
    pub fn pool(&self) -> &Pool<DB> {
        &self.pool
    }

    /// Whether a row for `key` exists: what a conditional write that wrote
    /// nothing found.
    pub(super) fn exists<'a>(
        &'a self,
        key: &'a SessionKey,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send + 'a {
        DB::exists(&self.pool, &self.queries, key)
    }
}

impl<DB: Dialect> Clone for SqlStore<DB> {
    fn clone(&self) -> Self {
        SqlStore {
            pool: self.pool.clone(),
            queries: Arc::clone(&self.queries),
            clock: Arc::clone(&self.clock),
        }
    }
}

impl<DB: Dialect> fmt::Debug for SqlStore<DB> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqlStore")
            .field("dialect", &DB::NAME)
            .field("table", &DB::table(&self.queries))
            .finish_non_exhaustive()
    }
}
