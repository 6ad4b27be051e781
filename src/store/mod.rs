//! Where session lifetimes are kept: the [`LifetimeStore`] trait and
//! [`MemoryStore`].
//!
//! # Choosing a store
//!
//! | store | feature | for | survives a restart | several app nodes | a subject's sessions (`sessions_of`, `delete_sessions_of`) |
//! | --- | --- | --- | --- | --- | --- |
//! | [`MemoryStore`] | — | one process, tests | no | no | a scan of every shard |
//! | `RedisStore` | `redis` | several nodes, the fastest shared store | as your Redis persists | yes | a sorted set per subject |
//! | `PostgresStore` | `postgres` | several nodes, on the database you already run | yes | yes | an SQL index |
//! | `SqliteStore` | `sqlite` | one node, sessions that survive restarts, no server | yes | no (one file) | an SQL index |
//! | `TowerSessionsStore<S>` | `tower-sessions` | reusing a tower-sessions store you already have | as `S` does | no: its locks are per process | no ([`Unsupported`](StoreErrorKind::Unsupported)) |
//!
//! Every store keys its records by a hash of the session ID (a
//! [`SessionKey`]), never by the ID itself, and every
//! store passes the same
//! [`lifetime_store_conformance!`](crate::lifetime_store_conformance) suite:
//! create, load, touch, conditional update, delete, a touch never moving
//! activity backwards or bringing back a deleted record, 64 concurrent
//! touches, touches racing a delete, `load_and_touch` agreeing with the
//! policy's [`judge`] over ordinary and remember-me
//! sessions and tightened policies, listing and deleting a subject's
//! sessions, and expiry. The shared stores are also tested through the
//! layer against a real server: the lifetime rules, two app nodes on one
//! server, and a server that goes away (`503`, never a panic) and comes
//! back.
//!
//! # How each store keeps its records
//!
//! ## `MemoryStore`
//!
//! - The map is split into 1024 shards, each behind its own read-write
//!   lock: a request locks one shard, never the whole store.
//! - Records are compact: times in milliseconds, the limits snapshot as an
//!   index into a shared table of at most [`MAX_DISTINCT_LIMITS`] entries,
//!   and the label, the renewal pointer and the re-authentication time in
//!   one boxed part that only sessions that have one of them allocate.
//! - Every [`create`](LifetimeStore::create) also sweeps the next shard in
//!   turn, so the whole store is swept once every 1024 logins, one small
//!   lock at a time; a shard whose earliest expiry is still ahead is skipped
//!   without locking it, and the records a sweep removes are freed after
//!   its lock is released. [`reclaim_expired`](LifetimeStore::reclaim_expired)
//!   sweeps every shard, one at a time, for an app that wants a timer.
//! - It answers [`try_load_now`](LifetimeStore::try_load_now), so the layer
//!   admits a request without allocating a future.
//! - It keeps no subject index, to keep each session small:
//!   [`sessions_of`](LifetimeStore::sessions_of) scans every shard, one read
//!   lock at a time, and [`delete_sessions_of`](LifetimeStore::delete_sessions_of)
//!   one write lock at a time while renewals of that subject's sessions
//!   wait (subjects are gated in 64 stripes). That is fine for a page that
//!   lists a user's sessions or a logout everywhere, not for a hot path.
//!
//! ## `RedisStore` (feature `redis`)
//!
//! Redis 7 or Valkey, on the `redis` crate, chosen over fred for its
//! connection manager (it connects at the first use and reconnects by
//! itself) and its scripts (`EVALSHA`, loading the script again when Redis
//! has forgotten it).
//!
//! - Each session is one hash under `<prefix><key in hex>` (the prefix is
//!   `tsl:` unless `with_prefix` changes it), with the fields `a` (last
//!   activity), `e` (expiry), `c` (creation), `v` (version), `r`
//!   (remember-me), `l` (the limits snapshot in ms, `-` for none), `i` (when
//!   the ID was issued), `t` (when the subject last authenticated), and `s`
//!   (subject), `n` (label) and `m` (the key a renewed session moved to)
//!   when there are. Times are Unix ms. The hash expires at the record's
//!   `expires_at` (`PEXPIREAT`), so Redis reclaims it and `reclaim_expired`
//!   returns `0`.
//! - Every write is one Lua script, atomic on the server: create (only if
//!   the key is free), touch (only forward, only on a live record that was
//!   not renewed), update (only at the expected version), delete (following
//!   a renewal pointer), delete of an expired session (only if no touch came
//!   in between), and renew.
//! - The layer's hot path, [`load_and_touch`](LifetimeStore::load_and_touch),
//!   is one round trip per request. When its activity may be due to be
//!   written, it is one script that loads the session and writes the
//!   activity if due, judging exactly as [`judge`] does. Otherwise it is a
//!   plain `HGETALL`: the store remembers, per session it loaded lately
//!   (at most 65,536), what decides when a touch can fall due (activity,
//!   the shorter idle limit) and judges it by each request's policy;
//!   stored activity, moving only forward, can only postpone it. The script carries
//!   every field into Lua and back and costs Redis about nine times an
//!   `HGETALL`; it now runs about once per touch granularity per session.
//! - A subject's sessions are a sorted set under `<prefix>s:<subject>`,
//!   scored by each session's expiry. The set expires with its latest
//!   session and drops members that expired whenever the subject logs in or
//!   is listed, so it never grows past the subject's live sessions.
//! - On one primary, a script writes both a session and its subject's set.
//!   With the `redis-sentinel` feature, `RedisStore::open_sentinel` follows
//!   the primary Sentinel names through a failover;
//!   `RedisStore::with_replica_acknowledgement` makes logouts wait for
//!   replicas so that a failover cannot undo them.
//! - On a Redis Cluster (feature `redis-cluster`,
//!   `RedisStore::open_cluster`), each session keeps its key, which hashes
//!   to a slot of its own, so sessions spread over the primaries and every
//!   script on a session runs on the one primary that owns it (the hot
//!   path stays one round trip). A subject's set and a renewed ID live in
//!   other slots, so the store writes them apart, in this order:
//!   - *The index first.* A session's member is added to its subject's set
//!     before the record is written with that subject (a login, a renewal,
//!     a new subject), scored by the latest the session can end (its
//!     absolute deadline, or the latest expiry when it has none; no touch
//!     moves it, so touches never write the set). The set never misses a
//!     live session; a crash between the two writes leaves a member
//!     without a record, which readers skip and which leaves at its score.
//!   - *A member leaves only with its record*: a logout drops it after
//!     deleting the record, never because it found none (that may be a
//!     login between its two writes).
//!   - *A renewal commits on the old ID*: the new record (carrying the old
//!     ID's key) is written, then the old record becomes a pointer if its
//!     version still matches; if not, or if it is gone, the new record is
//!     deleted. A logout follows pointers from primary to primary, so a
//!     logout racing a renewal ends both IDs. A crash between the writes
//!     leaves a record whose ID no one was given.
//!   - *A logout everywhere* deletes each member's record that has the
//!     subject, following pointers, and passes over the set again until a
//!     pass finds no member it had not seen (at least twice): it ends every
//!     session whose record existed when it began, including one renewed
//!     meanwhile with no grace; a login racing it is ended or wrote its
//!     record after it read the set.
//!   - *A listing* shows each session once while it is renewed: a pointer
//!     stands for the record it leads to, a renewal's new record counts
//!     once its old ID points to it, and the list is read again until
//!     nothing moved. It costs a round trip per session of the subject.
//!
//!   With a replica acknowledgement, each deletion and each index entry go
//!   to their primary on a connection of their own and wait for its
//!   replicas. A script a primary lacks is loaded on that primary only.
//! - While Redis cannot be reached, operations fail with
//!   [`StoreErrorKind::Unavailable`] within two seconds and the layer
//!   answers as configured (`503` by default); the connection is made again
//!   after a failure, and the layer recovers when Redis is back.
//!
//! ## `PostgresStore` and `SqliteStore` (features `postgres`, `sqlite`)
//!
//! On sqlx 0.8, the version tower-sessions' sqlx stores use, so an app can
//! share one pool. Both are one type, [`SqlStore`], over the [`Dialect`]
//! (`sqlx::Postgres`, `sqlx::Sqlite`): what they share (`with_table`,
//! `with_clock`, `migrate`, `purge_expired`, `spawn_purge`, `pool`) is
//! written once, and each dialect adds its own `open` and `new` and its
//! statements. One row per session in the table `session_lifetimes`
//! (or the one given to `with_table`: letters, digits and `_`, at most 48
//! bytes):
//!
//! | column | type | |
//! | --- | --- | --- |
//! | `key` | bytes, primary key | the `SessionKey` |
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
//! - `migrate()` creates the table and a partial index on `subject` if they
//!   are missing, and changes nothing otherwise. On PostgreSQL it runs under
//!   an advisory lock, so nodes starting together do not race, and the
//!   table has `fillfactor = 80`; on SQLite it is a `WITHOUT ROWID` table.
//! - Every conditional write is one statement: `UPDATE … WHERE
//!   last_activity < $now` (and the record live and not renewed) for a
//!   touch, `WHERE version = $expected` for an update, `DELETE … WHERE
//!   last_activity <= $judged` for an expired session. On PostgreSQL the
//!   load and a due touch are one statement too; on SQLite, which runs in
//!   the process, they are two statements on a local file.
//! - A renewal is one transaction (insert the new row, turn the old one
//!   into a pointer, carry over activity written meanwhile). On PostgreSQL
//!   it holds a per-subject advisory lock (shared) that a logout everywhere
//!   takes exclusively, so the two never interleave; SQLite has one writer
//!   at a time.
//! - Databases do not expire rows: `purge_expired()` deletes the rows past
//!   their deadline, and `spawn_purge(every)` runs it on a tokio interval
//!   (a failed run is logged and retried at the next tick). There is
//!   deliberately no index on `expires_at`: touches then stay heap-only
//!   (HOT) updates on PostgreSQL, and the purge, a scan, runs every few
//!   minutes, not per request.
//! - `PostgresStore::open(url)` makes a pool of up to 10 connections that
//!   gives up on an unreachable database after two seconds and does not
//!   ping a connection before each use (sqlx's default would add a round
//!   trip per request). `SqliteStore::open(url)` creates the file if
//!   missing, in WAL mode, with a pool of 4 and a busy timeout of five
//!   seconds. `new(pool)` uses your pool.
//!
//! ## `TowerSessionsStore` (feature `tower-sessions`)
//!
//! Keeps each lifetime record as one record of any tower-sessions
//! `SessionStore` (memory, Redis via fred, sqlx, MongoDB, …), under an ID
//! made of the `SessionKey`. Such a store has no conditional write, so the
//! adapter runs the operations on a key under a lock (striped over 256),
//! which gives the full contract within one process. Across processes, a
//! touch that races a logout on another node can bring the record back
//! within one round trip: use `MemoryStore` on one node, or the Redis or
//! SQL stores, when that matters. It cannot list a subject's sessions
//! ([`Unsupported`](StoreErrorKind::Unsupported)). Most
//! tower-sessions backends stop returning a record at its expiry date, so
//! the adapter has them keep lifetime records an hour past their deadline
//! (`keep_past_expiry` changes it): a request that late is still refused
//! with its reason (`idle`, `absolute`) rather than as unknown.
//!
//! # Several app nodes
//!
//! Point every node at the same Redis or PostgreSQL and give them the same
//! policy and cookie settings (and the same signing key, if cookies are
//! signed). Nothing else is shared: a session's record holds its own limits
//! and deadlines, and every write is conditional on the server. The tests
//! show, with two layers each on its own client, that a session started on
//! node A is admitted on node B; activity on B keeps it alive for A; a
//! logout on A is refused on B at the next request (there is no cache to
//! expire); and while the store is unreachable every node answers `503`
//! for sessions it cannot confirm, then admits them again, data intact,
//! when it is back.
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
//!
//! Only `create`, `load`, `touch`, `update`, `delete`, `delete_stale` and
//! `reclaim_expired` are required.
//! [`load_and_touch`](LifetimeStore::load_and_touch) has a default (load,
//! judge, then touch) that a networked store should replace with one round
//! trip; [`renew`](LifetimeStore::renew),
//! [`sessions_of`](LifetimeStore::sessions_of) and
//! [`delete_sessions_of`](LifetimeStore::delete_sessions_of) default to
//! [`Unsupported`](StoreErrorKind::Unsupported).
//!
//! Run the [`lifetime_store_conformance!`](crate::lifetime_store_conformance)
//! suite against your store in its tests:
//!
//! ```
//! use async_trait::async_trait;
//! use tower_session_lifetime::{MemoryStore, id::SessionKey, record::SessionRecord, store::{LifetimeStore, StoreError, TouchOutcome, UpdateOutcome}, time::Timestamp};
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
//!
//! // In the store's tests, with the `conformance` feature in its
//! // dev-dependencies. It keeps no subject index (no `sessions_of`):
//! # #[cfg(feature = "conformance")]
//! tower_session_lifetime::lifetime_store_conformance!(
//!     async { AuditedStore::default() },
//!     subjects = unsupported
//! );
//! # fn main() {}
//! ```

#[cfg(feature = "conformance")]
#[cfg_attr(docsrs, doc(cfg(feature = "conformance")))]
pub mod conformance;
mod error;
mod memory;
mod policies;
#[cfg(feature = "redis")]
mod redis;
#[cfg(any(feature = "postgres", feature = "sqlite"))]
mod sql;

use async_trait::async_trait;

#[cfg(feature = "redis")]
pub use self::redis::{
    InvalidReplicaAcknowledgement, RedisStore, DEFAULT_REDIS_PREFIX, MAX_REPLICA_WAIT,
};
#[cfg(feature = "postgres")]
pub use self::sql::postgres::PostgresStore;
#[cfg(feature = "sqlite")]
pub use self::sql::sqlite::SqliteStore;
#[cfg(any(feature = "postgres", feature = "sqlite"))]
pub use self::sql::store::{Dialect, SqlStore};
#[cfg(any(feature = "postgres", feature = "sqlite"))]
pub use self::sql::DEFAULT_TABLE;
pub use error::{StoreError, StoreErrorKind};
pub use memory::{MemoryStore, MAX_DISTINCT_LIMITS};
pub use policies::{PolicyStore, StoredPolicies};

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
    /// runs one script, or a plain load when it knows no touch can be due).
    /// The default loads, judges, then touches.
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
#[non_exhaustive]
pub struct LoadedRecord {
    /// The record as loaded, before any touch.
    pub record: SessionRecord,
    /// What the touch did, if the store made one.
    pub touch: Option<TouchOutcome>,
}

impl LoadedRecord {
    /// What a store's [`load_and_touch`](LifetimeStore::load_and_touch)
    /// returns: `record` as loaded, and what its touch did (`None` when it
    /// made none).
    pub fn new(record: SessionRecord, touch: Option<TouchOutcome>) -> Self {
        LoadedRecord { record, touch }
    }
}
