//! The in-memory store: sharded, compact, swept a shard at a time.

use std::collections::{hash_map, HashMap};
use std::fmt;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::atomic::Ordering;
use std::sync::{Arc, OnceLock, PoisonError};

use async_trait::async_trait;

use super::{LifetimeStore, RenewOutcome, StoreError, StoreErrorKind, TouchOutcome, UpdateOutcome};
use crate::clock::{Clock, SystemClock};
use crate::id::SessionKey;
use crate::policy::Limits;
use crate::record::SessionRecord;
use crate::time::Timestamp;
use sync::{AtomicU64, AtomicUsize, RwLock, RwLockReadGuard, RwLockWriteGuard};

/// The locks and atomics the store synchronises with: the standard
/// library's, or loom's when the store is model-checked (`--cfg tsl_loom`,
/// see `model-check/`), so that loom explores every interleaving of them.
mod sync {
    #[cfg(not(tsl_loom))]
    pub(super) use std::sync::{
        atomic::{AtomicU64, AtomicUsize},
        RwLock, RwLockReadGuard, RwLockWriteGuard,
    };

    #[cfg(tsl_loom)]
    pub(super) use loom::sync::{
        atomic::{AtomicU64, AtomicUsize},
        RwLock, RwLockReadGuard, RwLockWriteGuard,
    };
}

/// Number of shards; a power of two. At a million sessions each holds about
/// a thousand, so a sweep or a resize holds one small lock.
#[cfg(not(tsl_loom))]
const SHARDS: usize = 1024;
/// Under the model checker: few shards, so that explored schedules include
/// keys sharing a shard and keys apart, and a scan stays short.
#[cfg(tsl_loom)]
const SHARDS: usize = 4;
/// How many stripes subjects are gated in (see `Inner::subject_gates`).
#[cfg(not(tsl_loom))]
const SUBJECT_GATES: usize = 64;
#[cfg(tsl_loom)]
const SUBJECT_GATES: usize = 2;

/// How many distinct [`Limits`] one store keeps. Sessions share their limits
/// snapshot through this table, so a record stores a 4-byte index instead of
/// 32 bytes; apps have a handful of policies, each one entry (a remember-me
/// switch under a separate remember-me absolute limit adds one more). Entries
/// are never freed: a store asked for more distinct limits than this refuses
/// the write with [`StoreErrorKind::InvalidRecord`].
pub const MAX_DISTINCT_LIMITS: usize = 1024;

/// Sessions kept in this process's memory. The default store.
///
/// - **Concurrent**: the map is split into 1024 shards, each behind its own
///   read-write lock; a request locks one shard, never the whole store, and
///   a shard grows by itself, so there is no stop-the-world resize.
/// - **Compact**: a session costs well under 256 bytes (see the benchmark in
///   BENCHMARKS.md): limits are shared through a table of at most
///   [`MAX_DISTINCT_LIMITS`] entries, subjects are bounded by
///   [`MAX_SUBJECT_LEN`](crate::record::MAX_SUBJECT_LEN), labels by [`MAX_LABEL_LEN`](crate::record::MAX_LABEL_LEN).
/// - **Reclaims without pauses**: every [`create`](LifetimeStore::create)
///   also sweeps the next shard in turn, so the whole store is swept once
///   every 1024 logins, one small lock at a time; a shard whose earliest
///   expiry is still ahead is skipped without locking it.
///   [`reclaim_expired`](LifetimeStore::reclaim_expired) sweeps every shard,
///   also one at a time, for apps that want to run it on a timer. A sweep
///   that leaves a shard mostly empty gives its memory back, so once a
///   burst of sessions has expired and been swept the store is back to the
///   memory it had before (`tests/bounded_memory.rs` counts the bytes).
/// - **Synchronous reads**: it answers
///   [`try_load_now`](LifetimeStore::try_load_now), so the layer admits a
///   request without a future of its own.
///
/// Cloning a `MemoryStore` gives another handle to the same sessions.
///
/// ```
/// use tower_session_lifetime::{MemoryStore, SessionLifetimeLayer};
///
/// let layer = SessionLifetimeLayer::new(MemoryStore::new());
/// # let _ = layer;
/// ```
#[derive(Clone)]
pub struct MemoryStore {
    inner: Arc<Inner>,
}

struct Inner {
    shards: Box<[Shard]>,
    /// Per stripe of subjects: held shared by a renewal of a subject's
    /// session, exclusive by a logout everywhere of one, so that the
    /// logout's scan of the shards never misses a session whose renewal
    /// moved it to a shard already scanned.
    subject_gates: Box<[RwLock<()>]>,
    limits: Box<[OnceLock<Limits>]>,
    sweep_cursor: AtomicUsize,
    clock: Arc<dyn Clock>,
    /// Under the model checker: every key in the first shard, so that a
    /// run with random session IDs is the same run every time.
    #[cfg(tsl_loom)]
    one_shard: bool,
}

type Map = HashMap<[u8; SessionKey::LEN], Entry, BuildHasherDefault<KeyHasher>>;

#[repr(align(64))]
struct Shard {
    map: RwLock<Map>,
    /// No record in the shard expires before this (milliseconds); lowered
    /// under the write lock by every write, recomputed by every sweep.
    earliest_expiry: AtomicU64,
}

/// A record as kept in memory: times in milliseconds, limits by index.
struct Entry {
    created_at: u64,
    last_activity: u64,
    expires_at: u64,
    version: u64,
    id_issued_at: u64,
    subject: Option<Arc<str>>,
    /// The label, the renewal pointer and a re-authentication time: boxed
    /// together, since few records carry any, so that the rest pay one
    /// pointer for all three.
    rare: Option<Box<Rare>>,
    limits: u32,
    remember_me: bool,
}

/// What few records carry.
struct Rare {
    label: Option<Arc<str>>,
    /// Set once the session moved to a new key (renewal).
    renewed_to: Option<[u8; SessionKey::LEN]>,
    /// When the subject last authenticated, if not at the creation.
    authenticated_at: Option<u64>,
}

impl Entry {
    fn renewed_to(&self) -> Option<[u8; SessionKey::LEN]> {
        self.rare.as_ref().and_then(|rare| rare.renewed_to)
    }

    fn label(&self) -> Option<Arc<str>> {
        self.rare.as_ref().and_then(|rare| rare.label.clone())
    }

    fn authenticated_at(&self) -> u64 {
        self.rare
            .as_ref()
            .and_then(|rare| rare.authenticated_at)
            .unwrap_or(self.created_at)
    }

    /// Makes the record a pointer to the key `to`.
    fn point_to(&mut self, to: [u8; SessionKey::LEN]) {
        match &mut self.rare {
            Some(rare) => rare.renewed_to = Some(to),
            None => {
                self.rare = Some(Box::new(Rare {
                    label: None,
                    renewed_to: Some(to),
                    authenticated_at: None,
                }))
            }
        }
    }
}

impl MemoryStore {
    /// An empty store on the system clock.
    pub fn new() -> Self {
        MemoryStore::with_clock(SystemClock)
    }

    /// An empty store that decides what has expired by `clock`: give it the
    /// layer's [`ManualClock`](crate::clock::ManualClock) in tests.
    pub fn with_clock(clock: impl Clock) -> Self {
        MemoryStore {
            inner: Arc::new(Inner {
                shards: (0..SHARDS)
                    .map(|_| Shard {
                        map: RwLock::default(),
                        earliest_expiry: AtomicU64::new(u64::MAX),
                    })
                    .collect(),
                subject_gates: (0..SUBJECT_GATES).map(|_| RwLock::default()).collect(),
                limits: (0..MAX_DISTINCT_LIMITS).map(|_| OnceLock::new()).collect(),
                sweep_cursor: AtomicUsize::new(0),
                clock: Arc::new(clock),
                #[cfg(tsl_loom)]
                one_shard: false,
            }),
        }
    }

    /// Under the model checker only: a store that keeps every key in one
    /// shard, for runs whose session IDs are random (through the layer),
    /// which loom must see take the same path every time.
    #[cfg(tsl_loom)]
    #[doc(hidden)]
    pub fn with_clock_in_one_shard(clock: impl Clock) -> Self {
        let mut store = MemoryStore::with_clock(clock);
        Arc::get_mut(&mut store.inner)
            .expect("a new store")
            .one_shard = true;
        store
    }

    /// How many records the store holds, expired ones not yet reclaimed
    /// included.
    pub fn len(&self) -> usize {
        self.inner
            .shards
            .iter()
            .map(|shard| shard.read().len())
            .sum()
    }

    /// Whether the store holds no record.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Removes expired records from every shard, one shard lock at a time;
    /// returns how many it removed.
    pub fn sweep_expired(&self) -> usize {
        let now = self.inner.clock.now().as_unix_millis();
        self.inner.shards.iter().map(|shard| shard.sweep(now)).sum()
    }

    /// The gate of `subject`'s stripe.
    fn subject_gate(&self, subject: &str) -> &RwLock<()> {
        use std::hash::{Hash, Hasher};
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        subject.hash(&mut hasher);
        let stripe = (hasher.finish() % SUBJECT_GATES as u64) as usize;
        &self.inner.subject_gates[stripe]
    }

    fn shard(&self, key: &SessionKey) -> &Shard {
        #[cfg(tsl_loom)]
        if self.inner.one_shard {
            return &self.inner.shards[0];
        }
        let bytes = key.as_bytes();
        let index = usize::from(u16::from_le_bytes([bytes[14], bytes[15]])) % SHARDS;
        &self.inner.shards[index]
    }

    fn sweep_next_shard(&self) {
        let index = self.inner.sweep_cursor.fetch_add(1, Ordering::Relaxed) % SHARDS;
        let now = self.inner.clock.now().as_unix_millis();
        self.inner.shards[index].sweep(now);
    }

    /// The index of `limits` in the shared table, adding it if it is new.
    fn intern(&self, limits: &Limits) -> Result<u32, StoreError> {
        for (index, slot) in self.inner.limits.iter().enumerate() {
            let stored = match slot.get() {
                Some(stored) => stored,
                // Racing inserts of different limits: the loser sees the
                // winner's value here and moves on to the next slot.
                None => slot.get_or_init(|| *limits),
            };
            if stored == limits {
                return Ok(index as u32);
            }
        }
        Err(StoreError::new(
            StoreErrorKind::InvalidRecord,
            format!("more than {MAX_DISTINCT_LIMITS} distinct session limits"),
        ))
    }

    fn entry(&self, record: &SessionRecord) -> Result<Entry, StoreError> {
        record.check_bounds()?;
        Ok(Entry {
            created_at: record.created_at.as_unix_millis(),
            last_activity: record.last_activity.as_unix_millis(),
            expires_at: record.expires_at.as_unix_millis(),
            version: record.version,
            id_issued_at: record.id_issued_at.as_unix_millis(),
            subject: record.subject.clone(),
            rare: {
                let reauthenticated = (record.authenticated_at != record.created_at)
                    .then(|| record.authenticated_at.as_unix_millis());
                (record.label.is_some() || record.renewed_to.is_some() || reauthenticated.is_some())
                    .then(|| {
                        Box::new(Rare {
                            label: record.label.clone(),
                            renewed_to: record.renewed_to.map(|key| *key.as_bytes()),
                            authenticated_at: reauthenticated,
                        })
                    })
            },
            limits: self.intern(&record.limits)?,
            remember_me: record.remember_me,
        })
    }

    fn record(&self, entry: &Entry) -> SessionRecord {
        SessionRecord {
            created_at: Timestamp::from_unix_millis(entry.created_at),
            last_activity: Timestamp::from_unix_millis(entry.last_activity),
            expires_at: Timestamp::from_unix_millis(entry.expires_at),
            remember_me: entry.remember_me,
            subject: entry.subject.clone(),
            limits: *self.inner.limits[entry.limits as usize]
                .get()
                .expect("an entry only holds the index of a filled slot"),
            version: entry.version,
            id_issued_at: Timestamp::from_unix_millis(entry.id_issued_at),
            authenticated_at: Timestamp::from_unix_millis(entry.authenticated_at()),
            label: entry.label(),
            renewed_to: entry.renewed_to().map(SessionKey::from_bytes),
        }
    }

    fn load_now(&self, key: &SessionKey) -> Option<SessionRecord> {
        let map = self.shard(key).read();
        map.get(key.as_bytes()).map(|entry| self.record(entry))
    }
}

impl Default for MemoryStore {
    fn default() -> Self {
        MemoryStore::new()
    }
}

impl fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryStore")
            .field("shards", &SHARDS)
            .finish_non_exhaustive()
    }
}

impl Shard {
    fn read(&self) -> RwLockReadGuard<'_, Map> {
        self.map.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> RwLockWriteGuard<'_, Map> {
        self.map.write().unwrap_or_else(PoisonError::into_inner)
    }

    /// Notes, under the write lock, that a record expires at `expires_at`.
    fn expires(&self, expires_at: u64) {
        self.earliest_expiry
            .fetch_min(expires_at, Ordering::Relaxed);
    }

    fn sweep(&self, now: u64) -> usize {
        if self.earliest_expiry.load(Ordering::Relaxed) > now {
            return 0;
        }
        let removed: Vec<Entry> = {
            let mut map = self.write();
            let removed = map
                .extract_if(|_, entry| entry.expires_at <= now)
                .map(|(_, entry)| entry)
                .collect();
            let earliest = map.values().map(|entry| entry.expires_at).min();
            self.earliest_expiry
                .store(earliest.unwrap_or(u64::MAX), Ordering::Relaxed);
            // Give back the room of what left, once most of it is empty,
            // so that a burst of sessions does not keep its memory for
            // good; the margin keeps a steady shard from shrinking and
            // growing at every sweep.
            let (len, capacity) = (map.len(), map.capacity());
            if len < capacity / 4 {
                map.shrink_to(len * 2);
            }
            removed
        };
        // The subjects are freed here, after the lock is released.
        removed.len()
    }
}

#[async_trait]
impl LifetimeStore for MemoryStore {
    async fn create(&self, key: &SessionKey, record: &SessionRecord) -> Result<bool, StoreError> {
        let entry = self.entry(record)?;
        let created = {
            let shard = self.shard(key);
            let mut map = shard.write();
            match map.entry(*key.as_bytes()) {
                hash_map::Entry::Occupied(_) => false,
                hash_map::Entry::Vacant(slot) => {
                    shard.expires(entry.expires_at);
                    slot.insert(entry);
                    true
                }
            }
        };
        self.sweep_next_shard();
        Ok(created)
    }

    async fn load(&self, key: &SessionKey) -> Result<Option<SessionRecord>, StoreError> {
        Ok(self.load_now(key))
    }

    fn try_load_now(&self, key: &SessionKey) -> Option<Result<Option<SessionRecord>, StoreError>> {
        Some(Ok(self.load_now(key)))
    }

    async fn touch(
        &self,
        key: &SessionKey,
        activity: Timestamp,
        expires_at: Timestamp,
    ) -> Result<TouchOutcome, StoreError> {
        let shard = self.shard(key);
        let mut map = shard.write();
        Ok(match map.get_mut(key.as_bytes()) {
            // Expired at the given activity: ended, though not yet swept.
            None => TouchOutcome::Missing,
            Some(entry) if entry.expires_at <= activity.as_unix_millis() => TouchOutcome::Missing,
            Some(entry)
                if entry.renewed_to().is_some()
                    || entry.last_activity >= activity.as_unix_millis() =>
            {
                TouchOutcome::AlreadyRecent
            }
            Some(entry) => {
                entry.last_activity = activity.as_unix_millis();
                entry.expires_at = entry.expires_at.max(expires_at.as_unix_millis());
                shard.expires(entry.expires_at);
                TouchOutcome::Touched
            }
        })
    }

    async fn update(
        &self,
        key: &SessionKey,
        expected_version: u64,
        record: &SessionRecord,
    ) -> Result<UpdateOutcome, StoreError> {
        let mut replacement = self.entry(record)?;
        let shard = self.shard(key);
        let mut map = shard.write();
        Ok(match map.get_mut(key.as_bytes()) {
            None => UpdateOutcome::Missing,
            Some(entry) if entry.version != expected_version => UpdateOutcome::Conflict,
            Some(entry) => {
                // Activity written since the caller read the record moves its
                // deadlines (and so its expiry) forward by as much.
                let lag = entry
                    .last_activity
                    .saturating_sub(replacement.last_activity);
                replacement.last_activity += lag;
                replacement.expires_at = replacement.expires_at.saturating_add(lag);
                shard.expires(replacement.expires_at);
                *entry = replacement;
                UpdateOutcome::Updated
            }
        })
    }

    /// Follows a renewed record to the session's live one, removing each
    /// under its own shard lock. A `renew` racing it either finds its old
    /// record gone (and undoes its new one) or has made it a pointer this
    /// loop then follows.
    async fn delete(&self, key: &SessionKey) -> Result<bool, StoreError> {
        let mut next = *key.as_bytes();
        let mut found = false;
        loop {
            let removed = self
                .shard(&SessionKey::from_bytes(next))
                .write()
                .remove(&next);
            let Some(entry) = removed else {
                return Ok(found);
            };
            found = true;
            match entry.renewed_to() {
                Some(to) => next = to,
                None => return Ok(true),
            }
        }
    }

    /// Inserts the new record first, under its own shard lock, then turns
    /// the old one into a pointer under the old shard's lock, or, if the old
    /// one is no longer as expected, removes the new one again (no one else
    /// knows its ID yet).
    async fn renew(
        &self,
        old: &SessionKey,
        expected_version: u64,
        new: &SessionKey,
        record: &SessionRecord,
        grace_until: Timestamp,
    ) -> Result<RenewOutcome, StoreError> {
        let entry = self.entry(record)?;
        let entry_subject = entry.subject.clone();
        // A logout everywhere of the subject waits for the move, or the
        // move for it: its scan sees the session in one shard or the other.
        let gate = entry.subject.as_deref().map(|subject| {
            self.subject_gate(subject)
                .read()
                .unwrap_or_else(PoisonError::into_inner)
        });
        {
            let shard = self.shard(new);
            let mut map = shard.write();
            match map.entry(*new.as_bytes()) {
                hash_map::Entry::Occupied(_) => return Ok(RenewOutcome::Taken),
                hash_map::Entry::Vacant(slot) => {
                    shard.expires(entry.expires_at);
                    slot.insert(entry);
                }
            }
        }
        let outcome = {
            let shard = self.shard(old);
            let mut map = shard.write();
            match map.get_mut(old.as_bytes()) {
                None => RenewOutcome::Missing,
                // Another subject's record (the gate held is the new one's).
                Some(stored)
                    if stored.renewed_to().is_some()
                        || stored.version != expected_version
                        || stored.subject.is_some() && stored.subject != entry_subject =>
                {
                    RenewOutcome::Conflict
                }
                Some(stored) => {
                    let (activity, expires_at) = (stored.last_activity, stored.expires_at);
                    stored.point_to(*new.as_bytes());
                    stored.expires_at = grace_until.as_unix_millis();
                    stored.version = stored.version.wrapping_add(1);
                    shard.expires(stored.expires_at);
                    drop(map);
                    // Keep a touch that landed on the old record meanwhile.
                    let shard = self.shard(new);
                    if let Some(moved) = shard.write().get_mut(new.as_bytes()) {
                        moved.last_activity = moved.last_activity.max(activity);
                        moved.expires_at = moved.expires_at.max(expires_at);
                    }
                    return Ok(RenewOutcome::Renewed);
                }
            }
        };
        self.shard(new).write().remove(new.as_bytes());
        drop(gate);
        Ok(outcome)
    }

    async fn delete_stale(
        &self,
        key: &SessionKey,
        last_activity: Timestamp,
    ) -> Result<bool, StoreError> {
        let mut map = self.shard(key).write();
        let stale = map
            .get(key.as_bytes())
            .is_some_and(|entry| entry.last_activity <= last_activity.as_unix_millis());
        if stale {
            map.remove(key.as_bytes());
        }
        Ok(stale)
    }

    async fn reclaim_expired(&self) -> Result<u64, StoreError> {
        Ok(self.sweep_expired() as u64)
    }

    /// Scans every shard, one read lock at a time: the store keeps no
    /// subject index, so this costs time in proportion to all sessions
    /// (see BENCHMARKS.md), not memory on every session.
    async fn sessions_of(
        &self,
        subject: &str,
    ) -> Result<Vec<(SessionKey, SessionRecord)>, StoreError> {
        let mut found = Vec::new();
        for shard in self.inner.shards.iter() {
            let map = shard.read();
            found.extend(
                map.iter()
                    .filter(|(_, entry)| {
                        entry.renewed_to().is_none() && entry.subject.as_deref() == Some(subject)
                    })
                    .map(|(key, entry)| (SessionKey::from_bytes(*key), self.record(entry))),
            );
        }
        Ok(found)
    }

    /// Scans every shard, one write lock at a time, like
    /// [`sessions_of`](LifetimeStore::sessions_of), while renewals of the
    /// subject's sessions wait.
    async fn delete_sessions_of(&self, subject: &str) -> Result<u64, StoreError> {
        let _gate = self
            .subject_gate(subject)
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        // Counts the sessions, not the pointers of renewed IDs.
        let mut deleted = 0;
        for shard in self.inner.shards.iter() {
            shard.write().retain(|_, entry| {
                let theirs = entry.subject.as_deref() == Some(subject);
                if theirs && entry.renewed_to().is_none() {
                    deleted += 1;
                }
                !theirs
            });
        }
        Ok(deleted)
    }
}

/// Keys are SHA-256 output, already uniform: hashing them again is wasted
/// work. Lookups with attacker-chosen IDs cannot crowd a bucket, because only
/// server-generated IDs are ever inserted.
#[derive(Default)]
struct KeyHasher(u64);

impl Hasher for KeyHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.0 = self.0.rotate_left(29) ^ u64::from_le_bytes(word);
        }
    }
}
