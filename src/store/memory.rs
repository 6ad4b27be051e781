//! The in-memory store: sharded, compact, swept a shard at a time.

use std::collections::HashMap;
use std::fmt;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use async_trait::async_trait;

use super::{LifetimeStore, StoreError, StoreErrorKind, TouchOutcome, UpdateOutcome};
use crate::clock::{Clock, SystemClock};
use crate::id::SessionKey;
use crate::policy::Limits;
use crate::record::{SessionRecord, MAX_SUBJECT_LEN};
use crate::time::{duration_to_millis, Timestamp};

/// Number of shards; a power of two. At a million sessions each holds about
/// a thousand, so a sweep or a resize holds one small lock for microseconds.
const SHARDS: usize = 1024;

/// Sessions kept in this process's memory. The default store.
///
/// - **Concurrent**: the map is split into 1024 shards, each behind its own
///   read-write lock; a request locks one shard, never the whole store.
/// - **Compact**: a session costs well under 256 bytes (see the README's
///   benchmark), and its subject is bounded by [`MAX_SUBJECT_LEN`].
/// - **Reclaims without pauses**: every [`create`](LifetimeStore::create)
///   also sweeps expired records from the next shard in turn, so the whole
///   store is swept once every 1024 logins, one small lock at a time.
///   [`reclaim_expired`](LifetimeStore::reclaim_expired) sweeps every shard,
///   also one at a time, for apps that want to run it on a timer.
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
    sweep_cursor: AtomicUsize,
    clock: Arc<dyn Clock>,
}

#[repr(align(64))]
#[derive(Default)]
struct Shard {
    map: RwLock<HashMap<[u8; SessionKey::LEN], Entry, BuildHasherDefault<KeyHasher>>>,
}

/// A record as kept in memory: times and limits in milliseconds.
struct Entry {
    created_at: u64,
    last_activity: u64,
    expires_at: u64,
    /// Idle, absolute, remember-me, remember-me absolute; `NO_LIMIT` = none.
    limits: [u64; 4],
    version: u64,
    subject: Option<Box<str>>,
    remember_me: bool,
}

const NO_LIMIT: u64 = u64::MAX;

impl MemoryStore {
    /// An empty store on the system clock.
    pub fn new() -> Self {
        MemoryStore::with_clock(SystemClock)
    }

    /// An empty store that decides what has expired by `clock`: give it the
    /// layer's [`ManualClock`](crate::ManualClock) in tests.
    pub fn with_clock(clock: impl Clock) -> Self {
        MemoryStore {
            inner: Arc::new(Inner {
                shards: (0..SHARDS).map(|_| Shard::default()).collect(),
                sweep_cursor: AtomicUsize::new(0),
                clock: Arc::new(clock),
            }),
        }
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

    fn shard(&self, key: &SessionKey) -> &Shard {
        let bytes = key.as_bytes();
        let index = usize::from(u16::from_le_bytes([bytes[14], bytes[15]])) % SHARDS;
        &self.inner.shards[index]
    }

    fn sweep_next_shard(&self) {
        let index = self.inner.sweep_cursor.fetch_add(1, Ordering::Relaxed) % SHARDS;
        let now = self.inner.clock.now().as_unix_millis();
        self.inner.shards[index].sweep(now);
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

type Map = HashMap<[u8; SessionKey::LEN], Entry, BuildHasherDefault<KeyHasher>>;

impl Shard {
    fn read(&self) -> std::sync::RwLockReadGuard<'_, Map> {
        self.map.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Map> {
        self.map.write().unwrap_or_else(PoisonError::into_inner)
    }

    fn sweep(&self, now: u64) -> usize {
        let mut map = self.write();
        let before = map.len();
        map.retain(|_, entry| entry.expires_at > now);
        before - map.len()
    }
}

#[async_trait]
impl LifetimeStore for MemoryStore {
    async fn create(&self, key: &SessionKey, record: &SessionRecord) -> Result<bool, StoreError> {
        let entry = Entry::from_record(record)?;
        let created = {
            let mut map = self.shard(key).write();
            match map.entry(*key.as_bytes()) {
                std::collections::hash_map::Entry::Occupied(_) => false,
                std::collections::hash_map::Entry::Vacant(slot) => {
                    slot.insert(entry);
                    true
                }
            }
        };
        self.sweep_next_shard();
        Ok(created)
    }

    async fn load(&self, key: &SessionKey) -> Result<Option<SessionRecord>, StoreError> {
        Ok(self
            .shard(key)
            .read()
            .get(key.as_bytes())
            .map(Entry::to_record))
    }

    async fn touch(
        &self,
        key: &SessionKey,
        activity: Timestamp,
        expires_at: Timestamp,
    ) -> Result<TouchOutcome, StoreError> {
        let mut map = self.shard(key).write();
        Ok(match map.get_mut(key.as_bytes()) {
            None => TouchOutcome::Missing,
            Some(entry) if entry.last_activity >= activity.as_unix_millis() => {
                TouchOutcome::AlreadyRecent
            }
            Some(entry) => {
                entry.last_activity = activity.as_unix_millis();
                entry.expires_at = expires_at.as_unix_millis();
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
        let mut replacement = Entry::from_record(record)?;
        let mut map = self.shard(key).write();
        Ok(match map.get_mut(key.as_bytes()) {
            None => UpdateOutcome::Missing,
            Some(entry) if entry.version != expected_version => UpdateOutcome::Conflict,
            Some(entry) => {
                replacement.last_activity = replacement.last_activity.max(entry.last_activity);
                *entry = replacement;
                UpdateOutcome::Updated
            }
        })
    }

    async fn delete(&self, key: &SessionKey) -> Result<bool, StoreError> {
        Ok(self.shard(key).write().remove(key.as_bytes()).is_some())
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
}

impl Entry {
    fn from_record(record: &SessionRecord) -> Result<Self, StoreError> {
        if let Some(subject) = &record.subject {
            if subject.len() > MAX_SUBJECT_LEN {
                return Err(StoreError::new(
                    StoreErrorKind::InvalidRecord,
                    format!(
                        "subject of {} bytes exceeds the {MAX_SUBJECT_LEN}-byte bound",
                        subject.len()
                    ),
                ));
            }
        }
        let limits = &record.limits;
        Ok(Entry {
            created_at: record.created_at.as_unix_millis(),
            last_activity: record.last_activity.as_unix_millis(),
            expires_at: record.expires_at.as_unix_millis(),
            limits: [
                duration_to_millis(limits.idle_timeout),
                limits.absolute_timeout.map_or(NO_LIMIT, duration_to_millis),
                duration_to_millis(limits.remember_me_period),
                limits
                    .remember_me_absolute_timeout
                    .map_or(NO_LIMIT, duration_to_millis),
            ],
            version: record.version,
            subject: record.subject.as_deref().map(Box::from),
            remember_me: record.remember_me,
        })
    }

    fn to_record(&self) -> SessionRecord {
        let limit = |millis: u64| (millis != NO_LIMIT).then(|| Duration::from_millis(millis));
        SessionRecord {
            created_at: Timestamp::from_unix_millis(self.created_at),
            last_activity: Timestamp::from_unix_millis(self.last_activity),
            expires_at: Timestamp::from_unix_millis(self.expires_at),
            remember_me: self.remember_me,
            subject: self.subject.as_deref().map(String::from),
            limits: Limits {
                idle_timeout: Duration::from_millis(self.limits[0]),
                absolute_timeout: limit(self.limits[1]),
                remember_me_period: Duration::from_millis(self.limits[2]),
                remember_me_absolute_timeout: limit(self.limits[3]),
            },
            version: self.version,
        }
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
