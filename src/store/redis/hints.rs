//! [`TouchHints`]: what decides when each session this process has seen
//! next needs a touch, so that loading it before then needs no script.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

use crate::id::SessionKey;
use crate::policy::{Policy, TouchBasis};
use crate::time::Timestamp;

/// Shards of the map; a key's first byte (it is a hash) picks one.
const SHARDS: usize = 64;
/// Sessions remembered per shard; a full shard starts over, so the map
/// never holds more than `SHARDS * PER_SHARD` (65,536) sessions, about 4 MB.
const PER_SHARD: usize = 1024;

/// For each session this process loaded lately, what decides when a touch
/// of it can fall due ([`TouchBasis`]: its stored activity and shorter idle
/// limit), judged against the policy of each request as it comes, so that
/// requests under different policies (tenants, route groups) never take
/// the plain load when [`judge`](crate::policy::judge) would touch. Stored
/// activity only moves forward, so whatever another node wrote meanwhile
/// (a touch, a remember-me switch) can only postpone a touch; a hint that
/// is missing or forgotten only costs the script.
pub(super) struct TouchHints {
    shards: Vec<Mutex<HashMap<SessionKey, TouchBasis>>>,
}

impl TouchHints {
    pub(super) fn new() -> Self {
        TouchHints {
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
        }
    }

    fn shard(
        &self,
        key: &SessionKey,
    ) -> std::sync::MutexGuard<'_, HashMap<SessionKey, TouchBasis>> {
        self.shards[usize::from(key.as_bytes()[0]) % SHARDS]
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Whether no touch of `key` can be due at `now` under `policy`.
    pub(super) fn no_touch_due(&self, key: &SessionKey, policy: &Policy, now: Timestamp) -> bool {
        self.shard(key)
            .get(key)
            .is_some_and(|basis| now < basis.no_touch_before(policy))
    }

    /// Remembers what decides when a touch of `key` falls due.
    pub(super) fn remember(&self, key: &SessionKey, basis: TouchBasis) {
        let mut shard = self.shard(key);
        if shard.len() >= PER_SHARD && !shard.contains_key(key) {
            shard.clear();
        }
        shard.insert(*key, basis);
    }

    /// Forgets `key` (it is gone, or a pointer).
    pub(super) fn forget(&self, key: &SessionKey) {
        self.shard(key).remove(key);
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::record::SessionRecord;

    const MIN: Duration = Duration::from_secs(60);

    fn policy(granularity: Duration) -> Policy {
        Policy::builder()
            .idle_timeout(30 * MIN)
            .touch_granularity(granularity)
            .build()
            .unwrap()
    }

    fn at(millis: u64) -> Timestamp {
        Timestamp::from_unix_millis(millis)
    }

    #[test]
    fn a_hint_is_judged_by_each_request_s_policy_and_is_forgotten() {
        let hints = TouchHints::new();
        let (loose, tight) = (policy(5 * MIN), policy(MIN));
        let key = SessionKey::from_bytes([1; SessionKey::LEN]);
        let record = SessionRecord::new(&loose, at(0), None, false);
        assert!(
            !hints.no_touch_due(&key, &loose, at(0)),
            "nothing remembered"
        );
        hints.remember(&key, TouchBasis::of(&record));
        let (one, five) = (at(60_000), at(300_000));
        assert!(hints.no_touch_due(&key, &loose, at(299_999)));
        assert!(!hints.no_touch_due(&key, &loose, five));
        assert!(hints.no_touch_due(&key, &tight, at(59_999)));
        assert!(!hints.no_touch_due(&key, &tight, one));
        hints.forget(&key);
        assert!(!hints.no_touch_due(&key, &loose, at(1)));
    }

    #[test]
    fn a_full_shard_starts_over_so_the_map_stays_bounded() {
        let hints = TouchHints::new();
        let record = SessionRecord::new(&policy(MIN), at(0), None, false);
        for i in 0..=PER_SHARD {
            let mut bytes = [0u8; SessionKey::LEN];
            bytes[1..9].copy_from_slice(&(i as u64).to_le_bytes());
            hints.remember(&SessionKey::from_bytes(bytes), TouchBasis::of(&record));
        }
        let total: usize = hints.shards.iter().map(|s| s.lock().unwrap().len()).sum();
        assert!(total <= PER_SHARD, "{total} hints in one shard");
    }
}
