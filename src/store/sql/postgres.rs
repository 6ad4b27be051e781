//! [`PostgresStore`]: lifetimes in PostgreSQL (feature `postgres`).

use std::time::Duration;

use async_trait::async_trait;
use sqlx::postgres::{PgPool, PgPoolOptions, PgRow};
use sqlx::Row as _;

use sqlx::Postgres;

use super::store::{dialect_statements, Dialect, SqlStore};
use super::{
    bind_columns, clamped, columns_from_row, delete_following_pointers, key_bytes, key_from, limit,
    renew_in_transaction, store_error, time, Columns, COLUMNS, LATEST,
};
use crate::id::SessionKey;
use crate::policy::Policy;
use crate::record::SessionRecord;
use crate::store::{
    LifetimeStore, LoadedRecord, PolicyStore, RenewOutcome, StoreError, StoredPolicies,
    TouchOutcome, UpdateOutcome,
};
use crate::time::{duration_to_millis_ceil, Timestamp};

/// Keeps session lifetimes in a PostgreSQL table.
///
/// ```no_run
/// use std::time::Duration;
/// use tower_session_lifetime::{PostgresStore, SessionLifetimeLayer};
///
/// # async fn run() -> Result<(), tower_session_lifetime::store::StoreError> {
/// let store = PostgresStore::open("postgres://app@127.0.0.1/app")?;
/// store.migrate().await?; // creates the table and its index, if missing
/// let _purge = store.spawn_purge(Duration::from_secs(300));
/// let layer = SessionLifetimeLayer::new(store);
/// # let _ = layer;
/// # Ok(())
/// # }
/// ```
///
/// - **One row per session** in `session_lifetimes` (or the table given to
///   [`with_table`](SqlStore::with_table)), keyed by the
///   [`SessionKey`], with an index on the subject. [`migrate`](SqlStore::migrate)
///   creates both, idempotently, under an advisory lock, so every node may
///   run it at startup.
/// - **One round trip per request.** The layer's load and, when one is due,
///   the touch are one statement
///   ([`load_and_touch`](LifetimeStore::load_and_touch)).
/// - **Conditional writes in SQL.** A touch is an `UPDATE … WHERE
///   last_activity < $now`, an update checks the version, an expired
///   session is deleted only if no touch came in between: each is one
///   statement, atomic in PostgreSQL.
/// - **Purging.** PostgreSQL does not expire rows: call
///   [`purge_expired`](SqlStore::purge_expired) on an interval, or let
///   [`spawn_purge`](SqlStore::spawn_purge) do it. There is no index
///   on `expires_at`, so that touches stay heap-only (HOT) updates: a purge
///   scans the table, which is why it runs every few minutes, not per request.
/// - **Outages.** Operations fail with
///   [`StoreErrorKind::Unavailable`](crate::store::StoreErrorKind::Unavailable)
///   while the database cannot be reached (within two seconds with
///   [`open`](PostgresStore::open); within the pool's acquire timeout with
///   [`new`](PostgresStore::new)), and the layer answers as configured
///   (`503` by default).
///
/// Cloning gives another handle on the same pool. What it shares with
/// [`SqliteStore`](crate::SqliteStore) ([`with_table`](SqlStore::with_table),
/// [`migrate`](SqlStore::migrate), [`spawn_purge`](SqlStore::spawn_purge) …)
/// is documented on [`SqlStore`].
pub type PostgresStore = SqlStore<Postgres>;

/// The statements, written once for the table's name.
pub struct Queries {
    table: String,
    create: String,
    load: String,
    load_and_touch: String,
    touch: String,
    update: String,
    delete: String,
    delete_stale: String,
    exists: String,
    renew_read_old: String,
    renew_point: String,
    renew_catch_up: String,
    purge: String,
    sessions_of: String,
    delete_sessions_of: String,
    /// Held (shared) by a renewal of a subject's session for its
    /// transaction, so that a logout everywhere (exclusive) never runs
    /// while one is half done; see `delete_sessions_of`.
    subject_gate_shared: Option<String>,
    subject_gate_exclusive: String,
}

impl Queries {
    fn new(table: String) -> Self {
        let t = &table;
        Queries {
            create: format!(
                "INSERT INTO {t} (key, {COLUMNS}) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15) \
                 ON CONFLICT (key) DO NOTHING"
            ),
            load: format!("SELECT {COLUMNS} FROM {t} WHERE key = $1"),
            // $2..$5 the policy's limits (idle, absolute, remember-me period,
            // remember-me absolute), $6 the touch granularity, $7 now, $8 the
            // latest expiry. LEAST ignores NULLs: a missing absolute limit.
            // The expiry only moves later: an update (a remember-me switch)
            // committed after `found` was read keeps its longer one.
            load_and_touch: format!(
                "WITH found AS ( \
                   SELECT {COLUMNS}, \
                     CASE WHEN remember_me THEN LEAST(remember_me_period_ms, $4) \
                          ELSE LEAST(idle_timeout_ms, $2) END AS idle, \
                     CASE WHEN remember_me THEN LEAST(remember_me_absolute_timeout_ms, $5) \
                          ELSE LEAST(absolute_timeout_ms, $3) END AS absolute \
                   FROM {t} WHERE key = $1), \
                 touched AS ( \
                   UPDATE {t} SET last_activity = $7, \
                     expires_at = GREATEST({t}.expires_at, \
                       LEAST($7 + found.idle, found.created_at + found.absolute, $8)) \
                   FROM found \
                   WHERE {t}.key = $1 AND {t}.last_activity < $7 AND {t}.renewed_to IS NULL \
                     AND $7 < found.last_activity + found.idle \
                     AND (found.absolute IS NULL OR $7 < found.created_at + found.absolute) \
                     AND ($7 - found.last_activity) * 2 >= LEAST($6 * 2, found.idle) \
                   RETURNING 1) \
                 SELECT {COLUMNS}, EXISTS (SELECT 1 FROM touched) AS touched FROM found"
            ),
            touch: format!(
                "WITH found AS (SELECT 1 FROM {t} WHERE key = $1 AND expires_at > $2), \
                 touched AS (UPDATE {t} SET last_activity = $2, expires_at = GREATEST(expires_at, $3) \
                   WHERE key = $1 AND expires_at > $2 AND last_activity < $2 \
                     AND renewed_to IS NULL RETURNING 1) \
                 SELECT EXISTS (SELECT 1 FROM found) AS found, \
                   EXISTS (SELECT 1 FROM touched) AS written"
            ),
            // A touch that landed since the caller read the record keeps its
            // later activity and moves the new expiry by as much.
            update: format!(
                "WITH found AS (SELECT 1 FROM {t} WHERE key = $1), \
                 updated AS (UPDATE {t} SET created_at = $3, \
                   last_activity = GREATEST(last_activity, $4), \
                   expires_at = $5 + GREATEST(0, last_activity - $4), \
                   remember_me = $6, subject = $7, version = $8, idle_timeout_ms = $9, \
                   absolute_timeout_ms = $10, remember_me_period_ms = $11, \
                   remember_me_absolute_timeout_ms = $12, id_issued_at = $13, renewed_to = $14, \
                   authenticated_at = $15, label = $16 \
                   WHERE key = $1 AND version = $2 RETURNING 1) \
                 SELECT EXISTS (SELECT 1 FROM found) AS found, \
                   EXISTS (SELECT 1 FROM updated) AS written"
            ),
            delete: format!("DELETE FROM {t} WHERE key = $1 RETURNING renewed_to"),
            exists: format!("SELECT EXISTS (SELECT 1 FROM {t} WHERE key = $1)"),
            renew_read_old: format!("SELECT expires_at FROM {t} WHERE key = $1 FOR UPDATE"),
            renew_point: format!(
                "UPDATE {t} SET renewed_to = $2, expires_at = $3, version = version + 1 \
                 WHERE key = $1 AND version = $4 AND renewed_to IS NULL RETURNING last_activity"
            ),
            // Activity written to the old row after the caller read it moves
            // the new row's activity and expiry forward by as much, and the
            // new row expires no earlier than the old one did ($3).
            renew_catch_up: format!(
                "UPDATE {t} SET last_activity = GREATEST(last_activity, $2), \
                   expires_at = GREATEST(expires_at + GREATEST(0, $2 - last_activity), $3) \
                 WHERE key = $1"
            ),
            delete_stale: format!("DELETE FROM {t} WHERE key = $1 AND last_activity <= $2"),
            purge: format!("DELETE FROM {t} WHERE expires_at <= $1"),
            sessions_of: format!(
                "SELECT key, {COLUMNS} FROM {t} WHERE subject = $1 AND renewed_to IS NULL"
            ),
            delete_sessions_of: format!("DELETE FROM {t} WHERE subject = $1 RETURNING renewed_to"),
            // Two-key advisory locks: a space of their own, apart from
            // migrate's one-key lock.
            subject_gate_shared: Some(format!(
                "SELECT pg_advisory_xact_lock_shared(hashtext('tower_session_lifetime:{t}'), hashtext($1))"
            )),
            subject_gate_exclusive: format!(
                "SELECT pg_advisory_xact_lock(hashtext('tower_session_lifetime:{t}'), hashtext($1))"
            ),
            table,
        }
    }

    /// Creates the table and its index if missing. PostgreSQL runs the
    /// statements of one simple query as one transaction, which holds the
    /// advisory lock to its end, so that nodes starting together do not
    /// race.
    fn migration(&self) -> String {
        let t = &self.table;
        format!(
            "SELECT pg_advisory_xact_lock(hashtext('tower_session_lifetime:{t}')); \
             CREATE TABLE IF NOT EXISTS {t} ( \
               key BYTEA PRIMARY KEY, \
               created_at BIGINT NOT NULL, \
               last_activity BIGINT NOT NULL, \
               expires_at BIGINT NOT NULL, \
               remember_me BOOLEAN NOT NULL, \
               subject TEXT, \
               version BIGINT NOT NULL, \
               idle_timeout_ms BIGINT NOT NULL, \
               absolute_timeout_ms BIGINT, \
               remember_me_period_ms BIGINT NOT NULL, \
               remember_me_absolute_timeout_ms BIGINT, \
               id_issued_at BIGINT NOT NULL, \
               renewed_to BYTEA, \
               authenticated_at BIGINT NOT NULL, \
               label TEXT \
             ) WITH (fillfactor = 80); \
             CREATE INDEX IF NOT EXISTS {t}_subject ON {t} (subject) WHERE subject IS NOT NULL; \
             CREATE TABLE IF NOT EXISTS {t}_policies ( \
               id SMALLINT PRIMARY KEY CHECK (id = 1), \
               version BIGINT NOT NULL, \
               policies TEXT NOT NULL \
             );"
        )
    }
}

impl Dialect for Postgres {}

dialect_statements!(Postgres);

impl SqlStore<Postgres> {
    /// A store on the database at `url` (`postgres://user:password@host:port/db`),
    /// with a pool of up to 10 connections that gives up on an unreachable
    /// database after two seconds. It connects at the first use; only a
    /// malformed URL fails here.
    ///
    /// The pool does not ping a connection before each use (sqlx's
    /// `test_before_acquire`), which would cost a second round trip per
    /// request; a connection the server dropped fails one operation
    /// ([`Unavailable`](crate::store::StoreErrorKind::Unavailable)) and is replaced.
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime, as sqlx's pool does.
    pub fn open(url: &str) -> Result<Self, StoreError> {
        let pool = PgPoolOptions::new()
            .max_connections(10)
            .acquire_timeout(Duration::from_secs(2))
            .test_before_acquire(false)
            .connect_lazy(url)
            .map_err(store_error)?;
        Ok(PostgresStore::new(pool))
    }

    /// A store on an existing pool (the app's own). Its acquire timeout is
    /// how long an operation waits for an unreachable database; unless it
    /// was built with `test_before_acquire(false)`, each operation costs a
    /// ping round trip as well.
    pub fn new(pool: PgPool) -> Self {
        SqlStore::on_pool(pool)
    }

    /// Reads whether a conditional statement found the row and wrote it.
    async fn found_and_written(
        &self,
        query: sqlx::query::Query<'_, sqlx::Postgres, sqlx::postgres::PgArguments>,
    ) -> Result<(bool, bool), StoreError> {
        let row = query.fetch_one(&self.pool).await.map_err(store_error)?;
        let found = row.try_get("found").map_err(store_error)?;
        let written = row.try_get("written").map_err(store_error)?;
        Ok((found, written))
    }
}

fn record_from(row: &PgRow) -> Result<SessionRecord, StoreError> {
    columns_from_row!(row)
}

/// The policies that nodes share, in the one row of `<table>_policies`
/// (which [`migrate`](SqlStore::migrate) creates); each change is
/// notified on the channel of the same name (`LISTEN`/`NOTIFY`).
#[async_trait]
impl PolicyStore for PostgresStore {
    async fn load_policies(&self) -> Result<Option<StoredPolicies>, StoreError> {
        let t = &self.queries.table;
        let row: Option<(i64, String)> = sqlx::query_as(&format!(
            "SELECT version, policies FROM {t}_policies WHERE id = 1"
        ))
        .fetch_optional(&self.pool)
        .await
        .map_err(store_error)?;
        row.map(|(version, text)| {
            let version = u64::try_from(version)
                .ok()
                .filter(|version| *version >= 1)
                .ok_or_else(|| StoreError::corrupt(format!("a policy version of {version}")))?;
            Ok(StoredPolicies { version, text })
        })
        .transpose()
    }

    async fn store_policies(&self, expected: u64, text: &str) -> Result<bool, StoreError> {
        let t = &self.queries.table;
        let expected =
            i64::try_from(expected).map_err(|_| StoreError::corrupt("a version past i64"))?;
        let mut transaction = self.pool.begin().await.map_err(store_error)?;
        let statement = if expected == 0 {
            format!(
                "INSERT INTO {t}_policies (id, version, policies) \
                 SELECT 1, 1, $1 WHERE $2 = 0 ON CONFLICT (id) DO NOTHING"
            )
        } else {
            format!(
                "UPDATE {t}_policies SET version = version + 1, policies = $1 \
                 WHERE id = 1 AND version = $2"
            )
        };
        let written = sqlx::query(&statement)
            .bind(text)
            .bind(expected)
            .execute(&mut *transaction)
            .await
            .map_err(store_error)?;
        if written.rows_affected() != 1 {
            return Ok(false);
        }
        // Delivered when the transaction commits, with the change.
        sqlx::query("SELECT pg_notify($1, $2)")
            .bind(format!("{t}_policies"))
            .bind((expected + 1).to_string())
            .execute(&mut *transaction)
            .await
            .map_err(store_error)?;
        transaction.commit().await.map_err(store_error)?;
        Ok(true)
    }

    async fn watch_policies(&self, changed: &(dyn Fn() + Send + Sync)) -> Result<(), StoreError> {
        let mut listener = sqlx::postgres::PgListener::connect_with(&self.pool)
            .await
            .map_err(store_error)?;
        listener
            .listen(&format!("{}_policies", self.queries.table))
            .await
            .map_err(store_error)?;
        // Listening now: what changed before is read once.
        changed();
        loop {
            // `None`: the connection broke (a notification may be lost);
            // the next call connects again.
            let _notification = listener.try_recv().await.map_err(store_error)?;
            changed();
        }
    }
}

#[async_trait]
impl LifetimeStore for PostgresStore {
    async fn create(&self, key: &SessionKey, record: &SessionRecord) -> Result<bool, StoreError> {
        let query = sqlx::query(&self.queries.create).bind(key_bytes(key));
        let result = bind_columns!(query, Columns::of(record)?)
            .execute(&self.pool)
            .await
            .map_err(store_error)?;
        Ok(result.rows_affected() == 1)
    }

    async fn load(&self, key: &SessionKey) -> Result<Option<SessionRecord>, StoreError> {
        let row = sqlx::query(&self.queries.load)
            .bind(key_bytes(key))
            .fetch_optional(&self.pool)
            .await
            .map_err(store_error)?;
        row.as_ref().map(record_from).transpose()
    }

    async fn load_and_touch(
        &self,
        key: &SessionKey,
        policy: &Policy,
        now: Timestamp,
    ) -> Result<Option<LoadedRecord>, StoreError> {
        let limits = policy.limits();
        let row = sqlx::query(&self.queries.load_and_touch)
            .bind(key_bytes(key))
            .bind(limit(limits.idle_timeout))
            .bind(limits.absolute_timeout.map(limit))
            .bind(limit(limits.remember_me_period))
            .bind(limits.remember_me_absolute_timeout.map(limit))
            // Rounded up, as `judge` compares whole milliseconds of activity.
            .bind(clamped(duration_to_millis_ceil(policy.touch_granularity())))
            .bind(time(now))
            .bind(clamped(LATEST))
            .fetch_optional(&self.pool)
            .await
            .map_err(store_error)?;
        let Some(row) = row else {
            return Ok(None);
        };
        let touched: bool = row.try_get("touched").map_err(store_error)?;
        Ok(Some(LoadedRecord {
            record: record_from(&row)?,
            touch: touched.then_some(TouchOutcome::Touched),
        }))
    }

    async fn touch(
        &self,
        key: &SessionKey,
        activity: Timestamp,
        expires_at: Timestamp,
    ) -> Result<TouchOutcome, StoreError> {
        let query = sqlx::query(&self.queries.touch)
            .bind(key_bytes(key))
            .bind(time(activity))
            .bind(time(expires_at));
        Ok(match self.found_and_written(query).await? {
            (_, true) => TouchOutcome::Touched,
            (true, false) => TouchOutcome::AlreadyRecent,
            (false, false) => TouchOutcome::Missing,
        })
    }

    async fn update(
        &self,
        key: &SessionKey,
        expected_version: u64,
        record: &SessionRecord,
    ) -> Result<UpdateOutcome, StoreError> {
        let columns = Columns::of(record)?;
        // A version past i64 cannot be stored, so cannot match.
        let expected = i64::try_from(expected_version).unwrap_or(-1);
        let query = sqlx::query(&self.queries.update)
            .bind(key_bytes(key))
            .bind(expected);
        Ok(
            match self
                .found_and_written(bind_columns!(query, columns))
                .await?
            {
                (_, true) => UpdateOutcome::Updated,
                (true, false) => UpdateOutcome::Conflict,
                (false, false) => UpdateOutcome::Missing,
            },
        )
    }

    async fn delete(&self, key: &SessionKey) -> Result<bool, StoreError> {
        delete_following_pointers!(self, key)
    }

    /// One transaction of three statements (insert, point, catch up); it
    /// runs once per renewal interval, not per request.
    async fn renew(
        &self,
        old: &SessionKey,
        expected_version: u64,
        new: &SessionKey,
        record: &SessionRecord,
        grace_until: Timestamp,
    ) -> Result<RenewOutcome, StoreError> {
        renew_in_transaction!(self, old, expected_version, new, record, grace_until)
    }

    async fn delete_stale(
        &self,
        key: &SessionKey,
        last_activity: Timestamp,
    ) -> Result<bool, StoreError> {
        let result = sqlx::query(&self.queries.delete_stale)
            .bind(key_bytes(key))
            .bind(time(last_activity))
            .execute(&self.pool)
            .await
            .map_err(store_error)?;
        Ok(result.rows_affected() == 1)
    }

    async fn reclaim_expired(&self) -> Result<u64, StoreError> {
        self.purge_expired().await
    }

    async fn sessions_of(
        &self,
        subject: &str,
    ) -> Result<Vec<(SessionKey, SessionRecord)>, StoreError> {
        let rows = sqlx::query(&self.queries.sessions_of)
            .bind(subject)
            .fetch_all(&self.pool)
            .await
            .map_err(store_error)?;
        rows.iter()
            .map(|row| {
                let key: Vec<u8> = row.try_get("key").map_err(store_error)?;
                Ok((key_from(&key)?, record_from(row)?))
            })
            .collect()
    }

    /// Counts the sessions, not the pointers of renewed IDs it deletes too.
    ///
    /// Under the subject's advisory lock: a renewal holds it (shared) from
    /// inserting the new row to committing, so the delete never starts
    /// while a renewal's new row is still invisible to it (the delete would
    /// wait on the old row, then find only the pointer).
    async fn delete_sessions_of(&self, subject: &str) -> Result<u64, StoreError> {
        let mut tx = self.pool.begin().await.map_err(store_error)?;
        sqlx::query(&self.queries.subject_gate_exclusive)
            .bind(subject)
            .execute(&mut *tx)
            .await
            .map_err(store_error)?;
        let deleted: Vec<Option<Vec<u8>>> = sqlx::query_scalar(&self.queries.delete_sessions_of)
            .bind(subject)
            .fetch_all(&mut *tx)
            .await
            .map_err(store_error)?;
        tx.commit().await.map_err(store_error)?;
        Ok(deleted
            .iter()
            .filter(|renewed_to| renewed_to.is_none())
            .count() as u64)
    }
}
