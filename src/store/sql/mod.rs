//! What [`PostgresStore`](super::PostgresStore) and
//! [`SqliteStore`](super::SqliteStore) share: one table of one row per
//! session, the row's columns, error kinds, and the purge task.
//!
//! The table (its name configurable, `session_lifetimes` by default):
//!
//! | column | type | |
//! |---|---|---|
//! | `key` | bytes, primary key | the [`SessionKey`] |
//! | `created_at`, `last_activity`, `expires_at` | 64-bit integer | Unix ms |
//! | `remember_me` | boolean | |
//! | `subject` | text, nullable, indexed | |
//! | `version` | 64-bit integer | |
//! | `idle_timeout_ms`, `absolute_timeout_ms`, `remember_me_period_ms`, `remember_me_absolute_timeout_ms` | 64-bit integer (the absolute ones nullable: no limit) | the limits snapshot |
//! | `id_issued_at` | 64-bit integer | Unix ms |
//! | `renewed_to` | bytes, nullable | the key a renewed session moved to |
//! | `authenticated_at` | 64-bit integer | Unix ms |
//! | `label` | text, nullable | |
//!
//! with an index on `subject`.

#[cfg(feature = "postgres")]
pub(super) mod postgres;
#[cfg(feature = "sqlite")]
pub(super) mod sqlite;
pub(super) mod store;

use std::sync::Arc;
use std::time::Duration;

use crate::id::SessionKey;
use crate::policy::Limits;
use crate::record::{SessionRecord, MAX_LABEL_LEN, MAX_SUBJECT_LEN};
use crate::store::{StoreError, StoreErrorKind};
use crate::time::Timestamp;

/// The default name of the table.
pub const DEFAULT_TABLE: &str = "session_lifetimes";

/// The latest time or longest limit written: 2^53 ms (some 285,000 years),
/// so that sums of a time and a limit never overflow in SQL.
const LATEST: u64 = 1 << 53;

/// Every column but `key`, in the order [`Columns`] binds them.
const COLUMNS: &str = "created_at, last_activity, expires_at, remember_me, subject, version, \
     idle_timeout_ms, absolute_timeout_ms, remember_me_period_ms, remember_me_absolute_timeout_ms, \
     id_issued_at, renewed_to, authenticated_at, label";

/// How many renewal pointers a delete follows at most: a live chain is one
/// long (a pointer lives for the grace period, shorter than the renewal
/// interval); the bound only stops a corrupt table from looping.
const MAX_POINTERS: usize = 8;

/// A table name as SQL may use it: letters, digits and `_`, not starting
/// with a digit, at most 48 bytes (so its index names stay within
/// PostgreSQL's 63).
fn checked_table(name: &str) -> Result<String, StoreError> {
    let valid = !name.is_empty()
        && name.len() <= 48
        && !name.starts_with(|c: char| c.is_ascii_digit())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if valid {
        Ok(name.to_owned())
    } else {
        Err(StoreError::new(
            StoreErrorKind::InvalidRecord,
            format!(
                "table name `{name}`: use letters, digits and `_`, not starting with a digit, \
                 at most 48 bytes"
            ),
        ))
    }
}

/// A record as the table's columns.
struct Columns {
    created_at: i64,
    last_activity: i64,
    expires_at: i64,
    remember_me: bool,
    subject: Option<String>,
    version: i64,
    idle_timeout: i64,
    absolute_timeout: Option<i64>,
    remember_me_period: i64,
    remember_me_absolute_timeout: Option<i64>,
    id_issued_at: i64,
    renewed_to: Option<Vec<u8>>,
    authenticated_at: i64,
    label: Option<String>,
}

fn clamped(millis: u64) -> i64 {
    millis.min(LATEST) as i64
}

fn time(at: Timestamp) -> i64 {
    clamped(at.as_unix_millis())
}

fn limit(duration: Duration) -> i64 {
    clamped(u64::try_from(duration.as_millis()).unwrap_or(u64::MAX))
}

impl Columns {
    fn of(record: &SessionRecord) -> Result<Self, StoreError> {
        record.check_bounds()?;
        let version = i64::try_from(record.version)
            .map_err(|_| StoreError::new(StoreErrorKind::InvalidRecord, "version beyond 2^63"))?;
        let limits = &record.limits;
        Ok(Columns {
            created_at: time(record.created_at),
            last_activity: time(record.last_activity),
            expires_at: time(record.expires_at),
            remember_me: record.remember_me,
            subject: record.subject.as_deref().map(str::to_owned),
            version,
            idle_timeout: limit(limits.idle_timeout),
            absolute_timeout: limits.absolute_timeout.map(limit),
            remember_me_period: limit(limits.remember_me_period),
            remember_me_absolute_timeout: limits.remember_me_absolute_timeout.map(limit),
            id_issued_at: time(record.id_issued_at),
            renewed_to: record.renewed_to.as_ref().map(key_bytes),
            authenticated_at: time(record.authenticated_at),
            label: record.label.as_deref().map(str::to_owned),
        })
    }

    fn record(self) -> Result<SessionRecord, StoreError> {
        let millis = |value: i64, column: &str| {
            u64::try_from(value)
                .map_err(|_| StoreError::corrupt(format!("negative `{column}`: {value}")))
        };
        let duration = |value: i64, column: &str| millis(value, column).map(Duration::from_millis);
        let optional =
            |value: Option<i64>, column: &str| value.map(|v| duration(v, column)).transpose();
        if self
            .subject
            .as_ref()
            .is_some_and(|s| s.len() > MAX_SUBJECT_LEN)
        {
            return Err(StoreError::corrupt("subject over the bound"));
        }
        if self.label.as_ref().is_some_and(|l| l.len() > MAX_LABEL_LEN) {
            return Err(StoreError::corrupt("label over the bound"));
        }
        Ok(SessionRecord {
            created_at: Timestamp::from_unix_millis(millis(self.created_at, "created_at")?),
            last_activity: Timestamp::from_unix_millis(millis(
                self.last_activity,
                "last_activity",
            )?),
            expires_at: Timestamp::from_unix_millis(millis(self.expires_at, "expires_at")?),
            remember_me: self.remember_me,
            subject: self.subject.map(Arc::from),
            version: millis(self.version, "version")?,
            limits: Limits {
                idle_timeout: duration(self.idle_timeout, "idle_timeout_ms")?,
                absolute_timeout: optional(self.absolute_timeout, "absolute_timeout_ms")?,
                remember_me_period: duration(self.remember_me_period, "remember_me_period_ms")?,
                remember_me_absolute_timeout: optional(
                    self.remember_me_absolute_timeout,
                    "remember_me_absolute_timeout_ms",
                )?,
            },
            id_issued_at: Timestamp::from_unix_millis(millis(self.id_issued_at, "id_issued_at")?),
            renewed_to: self.renewed_to.as_deref().map(key_from).transpose()?,
            authenticated_at: Timestamp::from_unix_millis(millis(
                self.authenticated_at,
                "authenticated_at",
            )?),
            label: self.label.map(Arc::from),
        })
    }
}

/// Reads a row's columns, named as in [`COLUMNS`]; `Err` if one is missing
/// or of the wrong type.
macro_rules! columns_from_row {
    ($row:expr) => {{
        use ::sqlx::Row as _;
        let row = $row;
        (|| -> Result<$crate::store::sql::Columns, ::sqlx::Error> {
            Ok($crate::store::sql::Columns {
                created_at: row.try_get("created_at")?,
                last_activity: row.try_get("last_activity")?,
                expires_at: row.try_get("expires_at")?,
                remember_me: row.try_get("remember_me")?,
                subject: row.try_get("subject")?,
                version: row.try_get("version")?,
                idle_timeout: row.try_get("idle_timeout_ms")?,
                absolute_timeout: row.try_get("absolute_timeout_ms")?,
                remember_me_period: row.try_get("remember_me_period_ms")?,
                remember_me_absolute_timeout: row.try_get("remember_me_absolute_timeout_ms")?,
                id_issued_at: row.try_get("id_issued_at")?,
                renewed_to: row.try_get("renewed_to")?,
                authenticated_at: row.try_get("authenticated_at")?,
                label: row.try_get("label")?,
            })
        })()
        .map_err($crate::store::sql::store_error)
        .and_then($crate::store::sql::Columns::record)
    }};
}
use columns_from_row;

/// Binds the columns of `record` to `query`, in the order of [`COLUMNS`].
macro_rules! bind_columns {
    ($query:expr, $columns:expr) => {{
        let columns = $columns;
        $query
            .bind(columns.created_at)
            .bind(columns.last_activity)
            .bind(columns.expires_at)
            .bind(columns.remember_me)
            .bind(columns.subject)
            .bind(columns.version)
            .bind(columns.idle_timeout)
            .bind(columns.absolute_timeout)
            .bind(columns.remember_me_period)
            .bind(columns.remember_me_absolute_timeout)
            .bind(columns.id_issued_at)
            .bind(columns.renewed_to)
            .bind(columns.authenticated_at)
            .bind(columns.label)
    }};
}
use bind_columns;

/// [`delete`](crate::store::LifetimeStore::delete) on `$store` (its `pool` and its
/// `queries.delete`, a `DELETE … RETURNING renewed_to`): deletes the row
/// and follows its renewal pointer, one statement per row. A renewal that
/// committed before a row's deletion left a pointer this follows (the
/// `DELETE` waits for the renewal's row lock and returns the row as it
/// committed); one that comes after finds its old row gone and writes
/// nothing.
macro_rules! delete_following_pointers {
    ($store:expr, $key:expr) => {{
        let store = $store;
        let mut next = $crate::store::sql::key_bytes($key);
        let mut found = false;
        for _ in 0..$crate::store::sql::MAX_POINTERS {
            let deleted: Option<Option<Vec<u8>>> = ::sqlx::query_scalar(&store.queries.delete)
                .bind(next)
                .fetch_optional(&store.pool)
                .await
                .map_err($crate::store::sql::store_error)?;
            match deleted {
                None => break,
                Some(None) => {
                    found = true;
                    break;
                }
                Some(Some(moved_to)) => {
                    found = true;
                    next = moved_to;
                }
            }
        }
        Ok(found)
    }};
}
use delete_following_pointers;

/// [`renew`](crate::store::LifetimeStore::renew) on `$store` in one transaction: insert
/// the new row (`queries.create`), lock and read the old one's expiry
/// (`queries.renew_read_old`), turn it into a pointer if it is as expected
/// (`queries.renew_point`, returning its activity), carry a later activity
/// and expiry over to the new row (`queries.renew_catch_up`). Anything
/// short of that rolls back.
macro_rules! renew_in_transaction {
    ($store:expr, $old:expr, $expected_version:expr, $new:expr, $record:expr, $grace_until:expr) => {{
        use $crate::store::sql::{key_bytes, store_error, time};
        use $crate::store::RenewOutcome;
        let store = $store;
        let columns = $crate::store::sql::Columns::of($record)?;
        // A version past i64 cannot be stored, so cannot match.
        let expected = i64::try_from($expected_version).unwrap_or(-1);
        let mut tx = store.pool.begin().await.map_err(store_error)?;
        // A logout everywhere of the subject waits for this transaction.
        if let (Some(gate), Some(subject)) = (&store.queries.subject_gate_shared, &$record.subject)
        {
            ::sqlx::query(gate)
                .bind(&**subject)
                .execute(&mut *tx)
                .await
                .map_err(store_error)?;
        }
        let insert = ::sqlx::query(&store.queries.create).bind(key_bytes($new));
        let inserted = $crate::store::sql::bind_columns!(insert, columns)
            .execute(&mut *tx)
            .await
            .map_err(store_error)?
            .rows_affected();
        if inserted == 0 {
            tx.rollback().await.map_err(store_error)?;
            return Ok(RenewOutcome::Taken);
        }
        // The old row's expiry, read under its lock: a touch that extended
        // it after the caller read the record must not be lost.
        let old_expiry: Option<i64> = ::sqlx::query_scalar(&store.queries.renew_read_old)
            .bind(key_bytes($old))
            .fetch_optional(&mut *tx)
            .await
            .map_err(store_error)?;
        let stored_activity: Option<i64> = ::sqlx::query_scalar(&store.queries.renew_point)
            .bind(key_bytes($old))
            .bind(key_bytes($new))
            .bind(time($grace_until))
            .bind(expected)
            .fetch_optional(&mut *tx)
            .await
            .map_err(store_error)?;
        let Some(stored_activity) = stored_activity else {
            tx.rollback().await.map_err(store_error)?;
            return Ok(if store.exists($old).await? {
                RenewOutcome::Conflict
            } else {
                RenewOutcome::Missing
            });
        };
        ::sqlx::query(&store.queries.renew_catch_up)
            .bind(key_bytes($new))
            .bind(stored_activity)
            .bind(old_expiry.unwrap_or(0))
            .execute(&mut *tx)
            .await
            .map_err(store_error)?;
        tx.commit().await.map_err(store_error)?;
        Ok(RenewOutcome::Renewed)
    }};
}
use renew_in_transaction;

/// A key as the `key` column holds it.
fn key_bytes(key: &SessionKey) -> Vec<u8> {
    key.as_bytes().to_vec()
}

/// A key read back from the `key` column.
fn key_from(bytes: &[u8]) -> Result<SessionKey, StoreError> {
    <[u8; SessionKey::LEN]>::try_from(bytes)
        .map(SessionKey::from_bytes)
        .map_err(|_| StoreError::corrupt(format!("a key of {} bytes", bytes.len())))
}

/// An sqlx error, kept as the source of ours: one that says the database
/// cannot be reached is [`StoreErrorKind::Unavailable`], one reading a row
/// [`StoreErrorKind::Corrupt`].
fn store_error(err: sqlx::Error) -> StoreError {
    let kind = match &err {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => StoreErrorKind::Unavailable,
        sqlx::Error::ColumnDecode { .. }
        | sqlx::Error::ColumnNotFound(_)
        | sqlx::Error::Decode(_)
        | sqlx::Error::TypeNotFound { .. } => StoreErrorKind::Corrupt,
        _ => StoreErrorKind::Backend,
    };
    StoreError::new(kind, err)
}
