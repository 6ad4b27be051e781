//! [`SqliteStore`]: lifetimes in SQLite (feature `sqlite`).

use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow,
};
use sqlx::Row as _;

use sqlx::Sqlite;

use super::store::{dialect_statements, Dialect, SqlStore};
use super::{
    bind_columns, columns_from_row, delete_following_pointers, key_bytes, key_from,
    renew_in_transaction, store_error, time, Columns, COLUMNS,
};
use crate::id::SessionKey;
use crate::record::SessionRecord;
use crate::store::{LifetimeStore, RenewOutcome, StoreError, TouchOutcome, UpdateOutcome};
use crate::time::Timestamp;

/// Keeps session lifetimes in an SQLite database: one app node, sessions
/// that survive a restart, no server to run.
///
/// ```no_run
/// use std::time::Duration;
/// use tower_session_lifetime::{SessionLifetimeLayer, SqliteStore};
///
/// # async fn run() -> Result<(), tower_session_lifetime::store::StoreError> {
/// let store = SqliteStore::open("sqlite://sessions.db")?; // created if missing
/// store.migrate().await?;
/// let _purge = store.spawn_purge(Duration::from_secs(300));
/// let layer = SessionLifetimeLayer::new(store);
/// # let _ = layer;
/// # Ok(())
/// # }
/// ```
///
/// The same table as [`PostgresStore`](crate::PostgresStore) (one row per
/// session, an index on the subject, created by
/// [`migrate`](SqlStore::migrate)), the same conditional statements, and
/// the same purge. SQLite is in the process, so a load and a touch are two
/// statements on a local file, not two network round trips.
///
/// Cloning gives another handle on the same pool. What it shares with
/// [`PostgresStore`](crate::PostgresStore) is documented on [`SqlStore`].
pub type SqliteStore = SqlStore<Sqlite>;

/// The statements, written once for the table's name.
pub struct Queries {
    table: String,
    create: String,
    load: String,
    touch: String,
    update: String,
    exists: String,
    live: String,
    delete: String,
    delete_stale: String,
    renew_read_old: String,
    renew_point: String,
    renew_catch_up: String,
    purge: String,
    sessions_of: String,
    delete_sessions_of: String,
    /// None: SQLite has one writer at a time, so a renewal's transaction
    /// and a logout everywhere never interleave.
    subject_gate_shared: Option<String>,
}

impl Queries {
    fn new(table: String) -> Self {
        let t = &table;
        Queries {
            create: format!(
                "INSERT INTO {t} (key, {COLUMNS}) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15) \
                 ON CONFLICT (key) DO NOTHING"
            ),
            load: format!("SELECT {COLUMNS} FROM {t} WHERE key = ?1"),
            touch: format!(
                "UPDATE {t} SET last_activity = ?2, expires_at = MAX(expires_at, ?3) \
                 WHERE key = ?1 AND expires_at > ?2 AND last_activity < ?2 \
                   AND renewed_to IS NULL"
            ),
            // A touch that landed since the caller read the record keeps its
            // later activity and moves the new expiry by as much.
            update: format!(
                "UPDATE {t} SET created_at = ?3, last_activity = MAX(last_activity, ?4), \
                   expires_at = ?5 + MAX(0, last_activity - ?4), remember_me = ?6, \
                   subject = ?7, version = ?8, idle_timeout_ms = ?9, absolute_timeout_ms = ?10, \
                   remember_me_period_ms = ?11, remember_me_absolute_timeout_ms = ?12, \
                   id_issued_at = ?13, renewed_to = ?14, authenticated_at = ?15, label = ?16 \
                 WHERE key = ?1 AND version = ?2"
            ),
            exists: format!("SELECT EXISTS (SELECT 1 FROM {t} WHERE key = ?1)"),
            live: format!("SELECT EXISTS (SELECT 1 FROM {t} WHERE key = ?1 AND expires_at > ?2)"),
            delete: format!("DELETE FROM {t} WHERE key = ?1 RETURNING renewed_to"),
            // The transaction holds the write lock already (it inserted).
            renew_read_old: format!("SELECT expires_at FROM {t} WHERE key = ?1"),
            renew_point: format!(
                "UPDATE {t} SET renewed_to = ?2, expires_at = ?3, version = version + 1 \
                 WHERE key = ?1 AND version = ?4 AND renewed_to IS NULL RETURNING last_activity"
            ),
            // Activity written to the old row after the caller read it moves
            // the new row's activity and expiry forward by as much, and the
            // new row expires no earlier than the old one did (?3).
            renew_catch_up: format!(
                "UPDATE {t} SET last_activity = MAX(last_activity, ?2), \
                   expires_at = MAX(expires_at + MAX(0, ?2 - last_activity), ?3) \
                 WHERE key = ?1"
            ),
            delete_stale: format!("DELETE FROM {t} WHERE key = ?1 AND last_activity <= ?2"),
            purge: format!("DELETE FROM {t} WHERE expires_at <= ?1"),
            sessions_of: format!(
                "SELECT key, {COLUMNS} FROM {t} WHERE subject = ?1 AND renewed_to IS NULL"
            ),
            delete_sessions_of: format!("DELETE FROM {t} WHERE subject = ?1 RETURNING renewed_to"),
            subject_gate_shared: None,
            table,
        }
    }

    fn migration(&self) -> String {
        let t = &self.table;
        format!(
            "CREATE TABLE IF NOT EXISTS {t} ( \
               key BLOB PRIMARY KEY NOT NULL, \
               created_at INTEGER NOT NULL, \
               last_activity INTEGER NOT NULL, \
               expires_at INTEGER NOT NULL, \
               remember_me BOOLEAN NOT NULL, \
               subject TEXT, \
               version INTEGER NOT NULL, \
               idle_timeout_ms INTEGER NOT NULL, \
               absolute_timeout_ms INTEGER, \
               remember_me_period_ms INTEGER NOT NULL, \
               remember_me_absolute_timeout_ms INTEGER, \
               id_issued_at INTEGER NOT NULL, \
               renewed_to BLOB, \
               authenticated_at INTEGER NOT NULL, \
               label TEXT \
             ) WITHOUT ROWID; \
             CREATE INDEX IF NOT EXISTS {t}_subject ON {t} (subject) WHERE subject IS NOT NULL;"
        )
    }
}

impl Dialect for Sqlite {}

dialect_statements!(Sqlite);

impl SqlStore<Sqlite> {
    /// A store on the database at `url` (`sqlite://path/to/file.db`),
    /// created if missing, in WAL mode, waiting up to five seconds for a
    /// lock. It opens the file at the first use; only a malformed URL fails
    /// here.
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime, as sqlx's pool does.
    pub fn open(url: &str) -> Result<Self, StoreError> {
        let options = SqliteConnectOptions::from_str(url)
            .map_err(store_error)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .busy_timeout(Duration::from_secs(5));
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .acquire_timeout(Duration::from_secs(5))
            .connect_lazy_with(options);
        Ok(SqliteStore::new(pool))
    }

    /// A store on an existing pool (the app's own).
    ///
    /// `sqlite::memory:` gives each connection of a pool a database of its
    /// own: use a file, or a pool of one connection.
    pub fn new(pool: SqlitePool) -> Self {
        SqlStore::on_pool(pool)
    }

    async fn execute<'q>(
        &self,
        query: sqlx::query::Query<'q, sqlx::Sqlite, sqlx::sqlite::SqliteArguments<'q>>,
    ) -> Result<u64, StoreError> {
        let result = query.execute(&self.pool).await.map_err(store_error)?;
        Ok(result.rows_affected())
    }
}

fn record_from(row: &SqliteRow) -> Result<SessionRecord, StoreError> {
    columns_from_row!(row)
}

#[async_trait]
impl LifetimeStore for SqliteStore {
    async fn create(&self, key: &SessionKey, record: &SessionRecord) -> Result<bool, StoreError> {
        let query = sqlx::query(&self.queries.create).bind(key_bytes(key));
        Ok(self
            .execute(bind_columns!(query, Columns::of(record)?))
            .await?
            == 1)
    }

    async fn load(&self, key: &SessionKey) -> Result<Option<SessionRecord>, StoreError> {
        let row = sqlx::query(&self.queries.load)
            .bind(key_bytes(key))
            .fetch_optional(&self.pool)
            .await
            .map_err(store_error)?;
        row.as_ref().map(record_from).transpose()
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
        if self.execute(query).await? == 1 {
            return Ok(TouchOutcome::Touched);
        }
        let live: bool = sqlx::query_scalar(&self.queries.live)
            .bind(key_bytes(key))
            .bind(time(activity))
            .fetch_one(&self.pool)
            .await
            .map_err(store_error)?;
        Ok(if live {
            TouchOutcome::AlreadyRecent
        } else {
            TouchOutcome::Missing
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
        Ok(if self.execute(bind_columns!(query, columns)).await? == 1 {
            UpdateOutcome::Updated
        } else if self.exists(key).await? {
            UpdateOutcome::Conflict
        } else {
            UpdateOutcome::Missing
        })
    }

    async fn delete(&self, key: &SessionKey) -> Result<bool, StoreError> {
        delete_following_pointers!(self, key)
    }

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
        let query = sqlx::query(&self.queries.delete_stale)
            .bind(key_bytes(key))
            .bind(time(last_activity));
        Ok(self.execute(query).await? == 1)
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
    async fn delete_sessions_of(&self, subject: &str) -> Result<u64, StoreError> {
        let deleted: Vec<Option<Vec<u8>>> = sqlx::query_scalar(&self.queries.delete_sessions_of)
            .bind(subject)
            .fetch_all(&self.pool)
            .await
            .map_err(store_error)?;
        Ok(deleted
            .iter()
            .filter(|renewed_to| renewed_to.is_none())
            .count() as u64)
    }
}
