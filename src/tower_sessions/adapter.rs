//! [`TowerSessionsStore`]: lifetime records in any tower-sessions store.

use std::collections::HashMap;
use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use cookie::time::{OffsetDateTime, PrimitiveDateTime};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::sync::{Mutex, MutexGuard};
use tower_sessions_core::session::{Id, Record};
use tower_sessions_core::SessionStore;

use super::store_error;
use crate::id::SessionKey;
use crate::policy::Limits;
use crate::record::{SessionRecord, MAX_LABEL_LEN, MAX_SUBJECT_LEN};
use crate::store::{
    LifetimeStore, RenewOutcome, StoreError, StoreErrorKind, TouchOutcome, UpdateOutcome,
};
use crate::time::Timestamp;

/// The entry of a tower-sessions record's data that holds a lifetime record.
const ENTRY: &str = "tower_session_lifetime";

/// How many renewal pointers a delete follows at most (a live chain is one
/// long); the bound only stops a corrupt store from looping.
const MAX_POINTERS: usize = 8;

/// How many locks the keys are spread over.
const LOCK_STRIPES: usize = 256;

/// Keeps lifetime records in any tower-sessions [`SessionStore`]: its
/// `MemoryStore`, Redis (`tower-sessions-redis-store`), sqlx
/// (`tower-sessions-sqlx-store`), MongoDB, or your own.
///
/// ```
/// use tower_session_lifetime::{SessionLifetimeLayer, TowerSessionsStore};
/// use tower_sessions::MemoryStore;
///
/// let layer = SessionLifetimeLayer::new(TowerSessionsStore::new(MemoryStore::default()))
///     .follow_tower_sessions();
/// # let _ = layer;
/// ```
///
/// Each lifetime record is one tower-sessions record, under the ID made of
/// the [`SessionKey`] (never the session's own ID, so it cannot be confused
/// with the session's data), expiring a margin after the record's
/// [`expires_at`](SessionRecord::expires_at) so that the backend forgets it
/// by itself.
///
/// # What it cannot guarantee
///
/// A tower-sessions store has no conditional write: `save` overwrites
/// whatever is there, `load` then `save` is two round trips, and another
/// process can write in between. So:
///
/// - **within one process**, every operation on a key runs under a lock
///   (striped over 256 locks), so its load-check-save is atomic against the
///   others: a touch never moves activity backwards and never re-creates a
///   deleted record, and the conformance suite passes;
/// - **across processes** sharing the backend, a touch in one process that
///   loaded a record just before another process deleted it can save it
///   back: a logout on one node can be undone by a request in flight on
///   another, within that one round trip. Activity can also move backwards
///   by as much, which only ends a session early. Use a store with
///   conditional writes ([`MemoryStore`](crate::MemoryStore), or the
///   crate's Redis and SQL stores) when several nodes share sessions and
///   that window matters.
///
/// [`reclaim_expired`](LifetimeStore::reclaim_expired) returns `0`: the
/// backend drops records past their expiry (tower-sessions' own
/// `MemoryStore` stops returning them but keeps their memory until deleted;
/// run its backend's expired-deletion task where it has one).
///
/// Most tower-sessions backends stop returning a record at its expiry date
/// (its own `MemoryStore`, `tower-sessions-sqlx-store`). A lifetime record
/// that the backend no longer returns is an unknown session to the layer,
/// so a request just past the idle deadline would be refused as
/// [`Unknown`](crate::rejection::RejectReason::Unknown), not
/// [`IdleTimeout`](crate::rejection::RejectReason::IdleTimeout), and no `session
/// ended` event would say why. So the backend is told to keep each record
/// for [`DEFAULT_KEPT_PAST_EXPIRY`] past its deadline
/// ([`keep_past_expiry`](TowerSessionsStore::keep_past_expiry) changes it):
/// the layer judges it, refuses it with its reason and deletes it. Past
/// that margin a request gets `Unknown`.
pub struct TowerSessionsStore<S> {
    store: S,
    locks: Box<[Mutex<()>]>,
    kept_past_expiry: Duration,
}

/// How long [`TowerSessionsStore`] has the backend keep a lifetime record
/// past its deadline, by default: one hour.
pub const DEFAULT_KEPT_PAST_EXPIRY: Duration = Duration::from_secs(60 * 60);

impl<S: SessionStore> TowerSessionsStore<S> {
    /// Lifetime records kept in `store`.
    pub fn new(store: S) -> Self {
        TowerSessionsStore {
            store,
            locks: (0..LOCK_STRIPES).map(|_| Mutex::new(())).collect(),
            kept_past_expiry: DEFAULT_KEPT_PAST_EXPIRY,
        }
    }

    /// How long the backend keeps a lifetime record past its deadline, so
    /// that a request that comes that much late is still told why its
    /// session ended (see above). `Duration::ZERO` lets the backend forget
    /// records at their deadline.
    ///
    /// ```
    /// use std::time::Duration;
    /// use tower_session_lifetime::TowerSessionsStore;
    /// use tower_sessions::MemoryStore;
    ///
    /// let store = TowerSessionsStore::new(MemoryStore::default())
    ///     .keep_past_expiry(Duration::from_secs(24 * 60 * 60));
    /// # let _ = store;
    /// ```
    pub fn keep_past_expiry(mut self, margin: Duration) -> Self {
        self.kept_past_expiry = margin;
        self
    }

    /// The tower-sessions store.
    pub fn get_ref(&self) -> &S {
        &self.store
    }

    async fn lock(&self, key: &SessionKey) -> MutexGuard<'_, ()> {
        let stripe = usize::from(key.as_bytes()[0]) % self.locks.len();
        self.locks[stripe].lock().await
    }

    async fn read(&self, key: &SessionKey) -> Result<Option<SessionRecord>, StoreError> {
        let Some(stored) = self.store.load(&id_of(key)).await.map_err(store_error)? else {
            return Ok(None);
        };
        let entry = stored.data.get(ENTRY).ok_or_else(|| {
            StoreError::corrupt("a tower-sessions record without a lifetime entry")
        })?;
        decode(entry).map(Some)
    }

    async fn write(&self, key: &SessionKey, record: &SessionRecord) -> Result<(), StoreError> {
        record.check_bounds()?;
        // A deadline past what the date type holds (a policy of centuries)
        // expires at the last date it holds.
        let forget_at = record.expires_at.saturating_add(self.kept_past_expiry);
        let expiry_date = OffsetDateTime::from_unix_timestamp_nanos(
            i128::from(forget_at.as_unix_millis()) * 1_000_000,
        )
        .unwrap_or(PrimitiveDateTime::MAX.assume_utc());
        let stored = Record {
            id: id_of(key),
            data: HashMap::from([(ENTRY.to_owned(), encode(record)?)]),
            expiry_date,
        };
        self.store.save(&stored).await.map_err(store_error)
    }
}

#[async_trait]
impl<S: SessionStore> LifetimeStore for TowerSessionsStore<S> {
    async fn create(&self, key: &SessionKey, record: &SessionRecord) -> Result<bool, StoreError> {
        let _guard = self.lock(key).await;
        if self.read(key).await?.is_some() {
            return Ok(false);
        }
        self.write(key, record).await?;
        Ok(true)
    }

    async fn load(&self, key: &SessionKey) -> Result<Option<SessionRecord>, StoreError> {
        self.read(key).await
    }

    async fn touch(
        &self,
        key: &SessionKey,
        activity: Timestamp,
        expires_at: Timestamp,
    ) -> Result<TouchOutcome, StoreError> {
        let _guard = self.lock(key).await;
        let Some(mut record) = self.read(key).await? else {
            return Ok(TouchOutcome::Missing);
        };
        if record.expires_at <= activity {
            return Ok(TouchOutcome::Missing);
        }
        if record.renewed_to.is_some() || record.last_activity >= activity {
            return Ok(TouchOutcome::AlreadyRecent);
        }
        record.last_activity = activity;
        record.expires_at = record.expires_at.max(expires_at);
        self.write(key, &record).await?;
        Ok(TouchOutcome::Touched)
    }

    async fn update(
        &self,
        key: &SessionKey,
        expected_version: u64,
        record: &SessionRecord,
    ) -> Result<UpdateOutcome, StoreError> {
        let _guard = self.lock(key).await;
        let Some(stored) = self.read(key).await? else {
            return Ok(UpdateOutcome::Missing);
        };
        if stored.version != expected_version {
            return Ok(UpdateOutcome::Conflict);
        }
        let mut replacement = record.clone();
        let lag = stored
            .last_activity
            .saturating_duration_since(record.last_activity);
        replacement.last_activity = record.last_activity.saturating_add(lag);
        replacement.expires_at = record.expires_at.saturating_add(lag);
        self.write(key, &replacement).await?;
        Ok(UpdateOutcome::Updated)
    }

    /// Follows a renewed record's pointer to the session's live record,
    /// deleting each under its own lock.
    async fn delete(&self, key: &SessionKey) -> Result<bool, StoreError> {
        let mut next = *key;
        let mut found = false;
        for _ in 0..MAX_POINTERS {
            let _guard = self.lock(&next).await;
            // A record it cannot read is still there, and still deleted.
            let (existed, moved_to) = match self.read(&next).await {
                Ok(record) => (
                    record.is_some(),
                    record.and_then(|record| record.renewed_to),
                ),
                Err(err) if err.kind() == StoreErrorKind::Corrupt => (true, None),
                Err(err) => return Err(err),
            };
            self.store
                .delete(&id_of(&next))
                .await
                .map_err(store_error)?;
            found |= existed;
            match moved_to {
                Some(moved_to) => next = moved_to,
                None => break,
            }
        }
        Ok(found)
    }

    /// Atomic within the process, as the other writes: the new record is
    /// written first, then the old one becomes a pointer under its lock, or
    /// the new one is deleted again.
    async fn renew(
        &self,
        old: &SessionKey,
        expected_version: u64,
        new: &SessionKey,
        record: &SessionRecord,
        grace_until: Timestamp,
    ) -> Result<RenewOutcome, StoreError> {
        if !self.create(new, record).await? {
            return Ok(RenewOutcome::Taken);
        }
        let outcome = {
            let _guard = self.lock(old).await;
            match self.read(old).await? {
                None => RenewOutcome::Missing,
                Some(stored)
                    if stored.renewed_to.is_some() || stored.version != expected_version =>
                {
                    RenewOutcome::Conflict
                }
                Some(mut stored) => {
                    let lag = stored
                        .last_activity
                        .saturating_duration_since(record.last_activity);
                    let old_expiry = stored.expires_at;
                    stored.renewed_to = Some(*new);
                    stored.expires_at = grace_until;
                    stored.version = stored.version.wrapping_add(1);
                    self.write(old, &stored).await?;
                    drop(_guard);
                    // Keep a touch that landed on the old record meanwhile:
                    // its activity, and an expiry no earlier than the old one.
                    if lag > Duration::ZERO || old_expiry > record.expires_at {
                        let _guard = self.lock(new).await;
                        if let Some(mut moved) = self.read(new).await? {
                            moved.last_activity = moved.last_activity.saturating_add(lag);
                            moved.expires_at = moved.expires_at.saturating_add(lag).max(old_expiry);
                            self.write(new, &moved).await?;
                        }
                    }
                    return Ok(RenewOutcome::Renewed);
                }
            }
        };
        let _guard = self.lock(new).await;
        self.store.delete(&id_of(new)).await.map_err(store_error)?;
        Ok(outcome)
    }

    async fn delete_stale(
        &self,
        key: &SessionKey,
        last_activity: Timestamp,
    ) -> Result<bool, StoreError> {
        let _guard = self.lock(key).await;
        // A record it cannot read cannot be live either.
        let stale = match self.read(key).await {
            Ok(record) => record.is_some_and(|record| record.last_activity <= last_activity),
            Err(err) if err.kind() == StoreErrorKind::Corrupt => true,
            Err(err) => return Err(err),
        };
        if stale {
            self.store.delete(&id_of(key)).await.map_err(store_error)?;
        }
        Ok(stale)
    }

    async fn reclaim_expired(&self) -> Result<u64, StoreError> {
        Ok(0)
    }
}

impl<S: fmt::Debug> fmt::Debug for TowerSessionsStore<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TowerSessionsStore")
            .field("store", &self.store)
            .finish_non_exhaustive()
    }
}

/// The tower-sessions ID a lifetime record is kept under.
fn id_of(key: &SessionKey) -> Id {
    Id(i128::from_le_bytes(*key.as_bytes()))
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

/// A lifetime record as it sits in a tower-sessions record's data: times
/// and limits in milliseconds.
#[derive(Serialize, Deserialize)]
struct Stored {
    created_at: u64,
    last_activity: u64,
    expires_at: u64,
    remember_me: bool,
    subject: Option<String>,
    version: u64,
    idle_timeout: u64,
    absolute_timeout: Option<u64>,
    remember_me_period: u64,
    remember_me_absolute_timeout: Option<u64>,
    id_issued_at: u64,
    /// The key in hex a renewed session moved to.
    renewed_to: Option<String>,
    authenticated_at: u64,
    label: Option<String>,
}

fn encode(record: &SessionRecord) -> Result<Value, StoreError> {
    let limits = &record.limits;
    serde_json::to_value(Stored {
        created_at: record.created_at.as_unix_millis(),
        last_activity: record.last_activity.as_unix_millis(),
        expires_at: record.expires_at.as_unix_millis(),
        remember_me: record.remember_me,
        subject: record.subject.as_deref().map(str::to_owned),
        version: record.version,
        idle_timeout: millis(limits.idle_timeout),
        absolute_timeout: limits.absolute_timeout.map(millis),
        remember_me_period: millis(limits.remember_me_period),
        remember_me_absolute_timeout: limits.remember_me_absolute_timeout.map(millis),
        id_issued_at: record.id_issued_at.as_unix_millis(),
        renewed_to: record.renewed_to.as_ref().map(SessionKey::to_hex),
        authenticated_at: record.authenticated_at.as_unix_millis(),
        label: record.label.as_deref().map(str::to_owned),
    })
    .map_err(|err| StoreError::new(StoreErrorKind::InvalidRecord, err))
}

fn decode(value: &Value) -> Result<SessionRecord, StoreError> {
    let stored = Stored::deserialize(value).map_err(StoreError::corrupt)?;
    if stored
        .subject
        .as_ref()
        .is_some_and(|subject| subject.len() > MAX_SUBJECT_LEN)
    {
        return Err(StoreError::corrupt(format!(
            "a stored subject longer than {MAX_SUBJECT_LEN} bytes"
        )));
    }
    if stored
        .label
        .as_ref()
        .is_some_and(|label| label.len() > MAX_LABEL_LEN)
    {
        return Err(StoreError::corrupt(format!(
            "a stored label longer than {MAX_LABEL_LEN} bytes"
        )));
    }
    let renewed_to = match &stored.renewed_to {
        Some(hex) => Some(
            SessionKey::from_hex(hex)
                .ok_or_else(|| StoreError::corrupt("a renewal pointer that is not a key"))?,
        ),
        None => None,
    };
    Ok(SessionRecord {
        id_issued_at: Timestamp::from_unix_millis(stored.id_issued_at),
        renewed_to,
        authenticated_at: Timestamp::from_unix_millis(stored.authenticated_at),
        label: stored.label.map(Into::into),
        created_at: Timestamp::from_unix_millis(stored.created_at),
        last_activity: Timestamp::from_unix_millis(stored.last_activity),
        expires_at: Timestamp::from_unix_millis(stored.expires_at),
        remember_me: stored.remember_me,
        subject: stored.subject.map(Into::into),
        version: stored.version,
        limits: Limits {
            idle_timeout: Duration::from_millis(stored.idle_timeout),
            absolute_timeout: stored.absolute_timeout.map(Duration::from_millis),
            remember_me_period: Duration::from_millis(stored.remember_me_period),
            remember_me_absolute_timeout: stored
                .remember_me_absolute_timeout
                .map(Duration::from_millis),
        },
    })
}
