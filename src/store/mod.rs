//! Where session lifetimes are kept: the [`LifetimeStore`] trait and
//! [`MemoryStore`].
//!
//! # Implementing your own store
//!
//! A store keeps one [`SessionRecord`] per [`SessionKey`]. It never judges a
//! session (the layer does); it only has to make its writes *conditional*, so
//! that a request racing a logout can never bring a session back:
//!
//! - [`create`](LifetimeStore::create) inserts only when the key is free;
//! - [`touch`](LifetimeStore::touch) moves `last_activity` forward only, and
//!   only on a record that still exists;
//! - [`update`](LifetimeStore::update) replaces a record only when its stored
//!   version is the one the caller read;
//! - [`delete_stale`](LifetimeStore::delete_stale) removes a record only when
//!   no activity was written after the one the caller judged;
//! - [`renew`](LifetimeStore::renew) (optional) moves a record to a new key
//!   in one step, leaving behind a pointer that lives for the grace period;
//!   [`delete`](LifetimeStore::delete) of such a pointer removes the record
//!   it points to as well, and [`touch`](LifetimeStore::touch) of it writes
//!   nothing.
//!
//! A record may be forgotten from its [`expires_at`](SessionRecord::expires_at)
//! on, and must be gone after [`reclaim_expired`](LifetimeStore::reclaim_expired).
//! Run the [`lifetime_store_conformance!`](crate::lifetime_store_conformance)
//! suite against your store in its tests:
//!
//! ```
//! use async_trait::async_trait;
//! use tower_session_lifetime::{
//!     LifetimeStore, MemoryStore, SessionKey, SessionRecord, StoreError, Timestamp,
//!     TouchOutcome, UpdateOutcome,
//! };
//!
//! /// A store that logs every deletion, backed by a `MemoryStore`.
//! #[derive(Debug, Default)]
//! struct AuditedStore(MemoryStore);
//!
//! #[async_trait]
//! impl LifetimeStore for AuditedStore {
//!     async fn create(&self, key: &SessionKey, record: &SessionRecord) -> Result<bool, StoreError> {
//!         self.0.create(key, record).await
//!     }
//!     async fn load(&self, key: &SessionKey) -> Result<Option<SessionRecord>, StoreError> {
//!         self.0.load(key).await
//!     }
//!     async fn touch(
//!         &self,
//!         key: &SessionKey,
//!         activity: Timestamp,
//!         expires_at: Timestamp,
//!     ) -> Result<TouchOutcome, StoreError> {
//!         self.0.touch(key, activity, expires_at).await
//!     }
//!     async fn update(
//!         &self,
//!         key: &SessionKey,
//!         expected_version: u64,
//!         record: &SessionRecord,
//!     ) -> Result<UpdateOutcome, StoreError> {
//!         self.0.update(key, expected_version, record).await
//!     }
//!     async fn delete(&self, key: &SessionKey) -> Result<bool, StoreError> {
//!         println!("deleting {key:?}");
//!         self.0.delete(key).await
//!     }
//!     async fn delete_stale(&self, key: &SessionKey, last_activity: Timestamp) -> Result<bool, StoreError> {
//!         self.0.delete_stale(key, last_activity).await
//!     }
//!     async fn reclaim_expired(&self) -> Result<u64, StoreError> {
//!         self.0.reclaim_expired().await
//!     }
//! }
//! ```

pub mod conformance;
mod error;
mod memory;
#[cfg(feature = "redis")]
mod redis;
#[cfg(any(feature = "postgres", feature = "sqlite"))]
mod sql;

use async_trait::async_trait;

#[cfg(feature = "redis")]
pub use self::redis::{RedisStore, DEFAULT_REDIS_PREFIX};
#[cfg(feature = "postgres")]
pub use self::sql::postgres::PostgresStore;
#[cfg(feature = "sqlite")]
pub use self::sql::sqlite::SqliteStore;
#[cfg(any(feature = "postgres", feature = "sqlite"))]
pub use self::sql::DEFAULT_TABLE;
pub use error::{StoreError, StoreErrorKind};
pub use memory::{MemoryStore, MAX_DISTINCT_LIMITS};

use crate::id::SessionKey;
use crate::policy::{judge, Policy, Verdict};
use crate::record::SessionRecord;
use crate::time::Timestamp;

/// What a [`touch`](LifetimeStore::touch) did.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TouchOutcome {
    /// Activity moved forward to the given time.
    Touched,
    /// The stored activity was already at or after the given time; nothing
    /// changed.
    AlreadyRecent,
    /// There is no such record (ended, or never existed); nothing was written.
    Missing,
}

/// What an [`update`](LifetimeStore::update) did.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum UpdateOutcome {
    /// The record was replaced.
    Updated,
    /// There is no such record; nothing was written.
    Missing,
    /// The stored version was not the expected one; nothing was written.
    Conflict,
}

/// What a [`renew`](LifetimeStore::renew) did.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RenewOutcome {
    /// The record moved to the new key; the old key points to it until the
    /// grace period ends.
    Renewed,
    /// There is no record under the old key; nothing was written.
    Missing,
    /// The old record's version was not the expected one, or it was renewed
    /// already (a concurrent request); nothing was written.
    Conflict,
    /// The new key is taken; nothing was written.
    Taken,
}

/// An async store of session lifetimes. Object-safe: the layer holds it as
/// `Arc<dyn LifetimeStore>`. See the [module docs](self) for the contract.
#[async_trait]
pub trait LifetimeStore: Send + Sync + 'static {
    /// Inserts `record` under `key` if the key is free. Returns `false`, and
    /// writes nothing, if a record is already there.
    async fn create(&self, key: &SessionKey, record: &SessionRecord) -> Result<bool, StoreError>;

    /// The record under `key`, if any. May return a record past its
    /// `expires_at` that has not been reclaimed yet.
    async fn load(&self, key: &SessionKey) -> Result<Option<SessionRecord>, StoreError>;

    /// Loads the record under `key` and, when [`judge`] says at `now` under
    /// `policy` that the session is live and a touch is due, writes that
    /// activity as [`touch`](LifetimeStore::touch) would, with the nearest
    /// deadline counted from `now` as the expiry. This is the layer's hot
    /// path: a networked store should do both in one round trip (RedisStore
    /// runs one script). The default loads, judges, then touches.
    ///
    /// Returns the record as it was *before* the touch. A store may decide
    /// with limits rounded to milliseconds, so it may skip a touch the layer
    /// then finds due (the layer writes it itself), but it must never touch
    /// a session that [`judge`] finds expired.
    async fn load_and_touch(
        &self,
        key: &SessionKey,
        policy: &Policy,
        now: Timestamp,
    ) -> Result<Option<LoadedRecord>, StoreError> {
        let Some(record) = self.load(key).await? else {
            return Ok(None);
        };
        if record.renewed_to.is_some() {
            return Ok(Some(LoadedRecord {
                record,
                touch: None,
            }));
        }
        let touch = match judge(policy, &record, now) {
            Verdict::Admitted(admission) if admission.touch => {
                Some(self.touch(key, now, admission.deadlines.nearest()).await?)
            }
            _ => None,
        };
        Ok(Some(LoadedRecord { record, touch }))
    }

    /// What [`load`](LifetimeStore::load) would return, if the store can
    /// tell without waiting (an in-memory store); `None` otherwise, the
    /// default. The layer then admits a request without allocating a future.
    fn try_load_now(&self, key: &SessionKey) -> Option<Result<Option<SessionRecord>, StoreError>> {
        let _ = key;
        None
    }

    /// Sets `last_activity` to `activity` and moves `expires_at` to
    /// `expires_at` if that is later (a touch computed from a copy read
    /// before a concurrent [`update`](LifetimeStore::update), such as a
    /// remember-me switch, must not cut the updated session short), only if
    /// the record exists, is still live at `activity` (its stored
    /// `expires_at` is later; an expired one, swept or not, answers
    /// [`Missing`](TouchOutcome::Missing)), has not been
    /// [renewed](LifetimeStore::renew) (its `renewed_to` is `None`; a renewed
    /// one answers [`AlreadyRecent`](TouchOutcome::AlreadyRecent)) and its
    /// stored activity is earlier than `activity`. Never creates a record,
    /// and never gives an expired one new life.
    async fn touch(
        &self,
        key: &SessionKey,
        activity: Timestamp,
        expires_at: Timestamp,
    ) -> Result<TouchOutcome, StoreError>;

    /// Replaces the record under `key` with `record`, only if it exists and
    /// its stored version is `expected_version`. `last_activity` never moves
    /// backwards: when the stored one is later than the given one (a touch
    /// landed since the caller read the record), the stored one is kept and
    /// the given `expires_at` moves later by the same amount.
    async fn update(
        &self,
        key: &SessionKey,
        expected_version: u64,
        record: &SessionRecord,
    ) -> Result<UpdateOutcome, StoreError>;

    /// Removes the record under `key` and, if it was
    /// [renewed](LifetimeStore::renew), the record it points to (following
    /// the pointers to the session's live record), in one step as far as any
    /// concurrent `renew` can tell: a logout racing a renewal ends the
    /// session under both IDs. Returns whether there was a record.
    async fn delete(&self, key: &SessionKey) -> Result<bool, StoreError>;

    /// Removes the record under `key` only if its stored `last_activity` is
    /// not later than `last_activity`: the layer ends a session it judged
    /// expired this way, so that a request which touched it meanwhile keeps
    /// it alive. Returns whether it removed the record.
    async fn delete_stale(
        &self,
        key: &SessionKey,
        last_activity: Timestamp,
    ) -> Result<bool, StoreError>;

    /// Removes every record whose `expires_at` has passed and returns how
    /// many it removed. Stores whose backend expires records by itself
    /// (Redis) return `Ok(0)`.
    async fn reclaim_expired(&self) -> Result<u64, StoreError>;

    /// Moves the session under `old` to `new`, atomically: only if the
    /// record under `old` exists, was not renewed already and has version
    /// `expected_version`, and `new` is free, it stores `record` under `new`
    /// (with `last_activity` and `expires_at` the later of the given and the
    /// old record's, so a touch that landed meanwhile is kept) and turns the
    /// old record into a pointer: `renewed_to = Some(new)`, `expires_at =
    /// grace_until`, version incremented. Otherwise it writes nothing. A
    /// subject index lists the session under `new` from then on.
    ///
    /// Stores that cannot do this atomically answer
    /// [`StoreErrorKind::Unsupported`], the default; the layer then keeps
    /// the ID and logs a warning.
    async fn renew(
        &self,
        old: &SessionKey,
        expected_version: u64,
        new: &SessionKey,
        record: &SessionRecord,
        grace_until: Timestamp,
    ) -> Result<RenewOutcome, StoreError> {
        let _ = (old, expected_version, new, record, grace_until);
        Err(StoreError::unsupported("renewing a session's ID"))
    }

    /// Every record of `subject`, with its key: the sessions of one user,
    /// for a list of them or a logout everywhere. Leaves out renewed
    /// records (pointers to a new key). May include records past their
    /// `expires_at` that have not been reclaimed yet. Stores without a
    /// subject index answer [`StoreErrorKind::Unsupported`], the default.
    async fn sessions_of(
        &self,
        subject: &str,
    ) -> Result<Vec<(SessionKey, SessionRecord)>, StoreError> {
        let _ = subject;
        Err(StoreError::unsupported("listing the sessions of a subject"))
    }

    /// Removes every record of `subject` (a logout everywhere, a password
    /// change), renewed IDs' pointers included, and returns how many
    /// sessions it removed (pointers not counted). Stores without a subject
    /// index answer [`StoreErrorKind::Unsupported`], the default.
    async fn delete_sessions_of(&self, subject: &str) -> Result<u64, StoreError> {
        let _ = subject;
        Err(StoreError::unsupported(
            "deleting the sessions of a subject",
        ))
    }
}

/// What [`load_and_touch`](LifetimeStore::load_and_touch) found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoadedRecord {
    /// The record as loaded, before any touch.
    pub record: SessionRecord,
    /// What the touch did, if the store made one.
    pub touch: Option<TouchOutcome>,
}
