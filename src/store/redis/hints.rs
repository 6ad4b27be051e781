//! [`TouchHints`]: when, at the earliest, each session this process has
//! seen can need a touch, so that loading it before then needs no script.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

use crate::id::SessionKey;
use crate::time::Timestamp;

/// Shards of the map; a key's first byte (it is a hash) picks one.
const SHARDS: usize = 64;
/// Sessions remembered per shard; a full shard starts over, so the map
/// never holds more than `SHARDS * PER_SHARD` (65,536) sessions, about 3 MB.
const PER_SHARD: usize = 1024;

/// For each session this process loaded lately, the first time a touch of
/// it can be due (`policy::first_touch_due` of what it loaded). Stored
/// activity only moves forward, so before that time no request can need a
/// touch, whatever another node wrote meanwhile; a hint that is missing,
/// forgotten or made stale by a tighter policy only costs the script (or,
/// if a touch turns out due after all, a second round trip), never a wrong
/// answer.
pub(super) struct TouchHints {
    shards: Vec<Mutex<HashMap<SessionKey, Timestamp>>>,
}

impl TouchHints {
    pub(super) fn new() -> Self {
        TouchHints {
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
        }
    }

    fn shard(&self, key: &SessionKey) -> std::sync::MutexGuard<'_, HashMap<SessionKey, Timestamp>> {
        self.shards[usize::from(key.as_bytes()[0]) % SHARDS]
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Whether no touch of `key` can be due at `now`.
    pub(super) fn no_touch_due(&self, key: &SessionKey, now: Timestamp) -> bool {
        self.shard(key)
            .get(key)
            .is_some_and(|&first_due| now < first_due)
    }

    /// Remembers that no touch of `key` can be due before `first_due`.
    pub(super) fn remember(&self, key: &SessionKey, first_due: Timestamp) {
        let mut shard = self.shard(key);
        if shard.len() >= PER_SHARD && !shard.contains_key(key) {
            shard.clear();
        }
        shard.insert(*key, first_due);
    }

    /// Forgets `key` (it is gone, or a pointer).
    pub(super) fn forget(&self, key: &SessionKey) {
        self.shard(key).remove(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(first: u8, rest: u8) -> SessionKey {
        let mut bytes = [rest; SessionKey::LEN];
        bytes[0] = first;
        SessionKey::from_bytes(bytes)
    }

    #[test]
    fn a_hint_holds_until_its_time_and_is_forgotten() {
        let hints = TouchHints::new();
        let (k, at) = (key(1, 1), Timestamp::from_unix_millis(1_000));
        assert!(!hints.no_touch_due(&k, Timestamp::from_unix_millis(0)));
        hints.remember(&k, at);
        assert!(hints.no_touch_due(&k, Timestamp::from_unix_millis(999)));
        assert!(!hints.no_touch_due(&k, at));
        hints.forget(&k);
        assert!(!hints.no_touch_due(&k, Timestamp::from_unix_millis(0)));
    }

    #[test]
    fn a_full_shard_starts_over_so_the_map_stays_bounded() {
        let hints = TouchHints::new();
        let at = Timestamp::from_unix_millis(1_000);
        for i in 0..=PER_SHARD {
            let mut bytes = [0u8; SessionKey::LEN];
            bytes[1..9].copy_from_slice(&(i as u64).to_le_bytes());
            hints.remember(&SessionKey::from_bytes(bytes), at);
        }
        let total: usize = hints.shards.iter().map(|s| s.lock().unwrap().len()).sum();
        assert!(total <= PER_SHARD, "{total} hints in one shard");
    }
}
