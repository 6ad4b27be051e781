//! The verdict on one request: a pure function of policy, record and time.

use std::sync::Arc;
use std::time::Duration;

use super::Policy;
use crate::limits::{shorter_limit, Limits};
use crate::record::SessionRecord;
use crate::time::Timestamp;

/// The two deadlines of a session. Whichever comes first ends it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Deadlines {
    /// Last activity plus the idle timeout (or remember-me period).
    pub idle: Timestamp,
    /// Creation plus the absolute timeout; `None` when there is none.
    pub absolute: Option<Timestamp>,
}

impl Deadlines {
    /// Deadlines from their two times: the idle one, and the absolute one
    /// if there is one.
    pub fn new(idle: Timestamp, absolute: Option<Timestamp>) -> Self {
        Deadlines { idle, absolute }
    }

    /// The deadlines of `record` under `limits`, counting from its stored
    /// activity.
    pub fn of(limits: &Limits, record: &SessionRecord) -> Self {
        Deadlines::from_activity(limits, record, record.last_activity)
    }

    /// The deadlines of `record` under `limits` if its last activity were
    /// `activity`.
    pub(crate) fn from_activity(
        limits: &Limits,
        record: &SessionRecord,
        activity: Timestamp,
    ) -> Self {
        Deadlines {
            idle: activity.saturating_add(limits.idle_for(record.remember_me)),
            absolute: limits
                .absolute_for(record.remember_me)
                .map(|timeout| record.created_at.saturating_add(timeout)),
        }
    }

    /// The earlier of the two.
    pub fn nearest(&self) -> Timestamp {
        match self.absolute {
            Some(absolute) => absolute.min(self.idle),
            None => self.idle,
        }
    }
}

impl SessionRecord {
    /// A fresh session created at `now` under `policy`: its limits are the
    /// policy's, and it expires at its nearest deadline. Defined here,
    /// beside the rule, because it needs the [`Policy`]; a store reading a
    /// record back uses [`SessionRecord::stored`].
    pub fn new(
        policy: &Policy,
        now: Timestamp,
        subject: Option<Arc<str>>,
        remember_me: bool,
    ) -> Self {
        let mut record = SessionRecord::stored(now, policy.limits());
        record.remember_me = remember_me;
        record.subject = subject;
        record.expires_at = Deadlines::of(&record.limits, &record).nearest();
        record
    }
}

/// Why a session is no longer admitted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ExpiryReason {
    /// The idle deadline passed.
    Idle,
    /// The absolute deadline passed.
    Absolute,
}

/// A request that may go on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Admission {
    /// The deadlines as they stand after this request.
    pub deadlines: Deadlines,
    /// Whether this request's activity must be written to the store: the
    /// stored activity is at least the touch granularity old.
    pub touch: bool,
    /// Whether the session's ID is due for [renewal](crate::policy::Renewal): it
    /// was issued at least one renewal interval ago.
    pub renew: bool,
}

/// What [`judge`] decides: a session is live or it has ended, nothing else,
/// so the enum is exhaustive and a `match` on it needs no wildcard.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// The session is live.
    Admitted(Admission),
    /// The session has ended.
    Expired(ExpiryReason),
}

/// Judges a request made at `now` on the session `record`.
///
/// The limits are the tighter of the record's snapshot and `policy`. A request
/// at or after either deadline is refused; when both have passed, the reason
/// is the one that passed first (the absolute one on a tie).
///
/// ```
/// use std::time::Duration;
/// use tower_session_lifetime::{Policy, policy::{ExpiryReason, Verdict, judge}, record::SessionRecord, time::Timestamp};
///
/// let policy = Policy::default(); // idle timeout: 15 minutes
/// let login = Timestamp::from_unix_millis(0);
/// let record = SessionRecord::new(&policy, login, None, false);
///
/// let just_before = login.saturating_add(Duration::from_secs(15 * 60) - Duration::from_millis(1));
/// assert!(matches!(judge(&policy, &record, just_before), Verdict::Admitted(_)));
///
/// let at_deadline = login.saturating_add(Duration::from_secs(15 * 60));
/// assert_eq!(judge(&policy, &record, at_deadline), Verdict::Expired(ExpiryReason::Idle));
/// ```
///
/// # The rule's one home, and where it is mirrored
///
/// This function is the lifetime rule. The layer judges every record it
/// loads with it, whatever the store. Two stores also decide in the store
/// itself, so that a request costs one round trip, and must decide as this
/// function does whether a touch is due:
///
/// - **Redis**: the `LOAD_AND_TOUCH` Lua script (`src/store/redis/scripts.rs`),
///   run by [`RedisStore`](crate::store::RedisStore)'s `load_and_touch`
///   when a touch may be due (when it may is this module's `TouchBasis`,
///   never later than this function);
/// - **PostgreSQL**: the `load_and_touch` statement of
///   [`PostgresStore`](crate::store::PostgresStore) (`src/store/sql/`).
///
/// The default [`LifetimeStore::load_and_touch`](crate::store::LifetimeStore::load_and_touch)
/// (used by `MemoryStore`, `SqliteStore`, `TowerSessionsStore` and any store
/// that does not override it) calls this function, so it cannot drift.
/// The conformance check
/// [`load_and_touch_agrees_with_judge`](crate::store::conformance::load_and_touch_agrees_with_judge)
/// (feature `conformance`), run on every store by the crate's tests, keeps
/// the mirrors equal to this function at and around each deadline, and
/// [`repeated_loads_agree_with_judge`](crate::store::conformance::repeated_loads_agree_with_judge)
/// over one session's many requests. A change here changes the script and
/// the statement in the same commit.
pub fn judge(policy: &Policy, record: &SessionRecord, now: Timestamp) -> Verdict {
    // The tighter of the two limits that apply to this session (its
    // remember-me picks them), as `Limits::tightest` would give them: only
    // these two are computed, on every request.
    let remember_me = record.remember_me;
    let idle = record
        .limits
        .idle_for(remember_me)
        .min(policy.limits.idle_for(remember_me));
    let absolute = shorter_limit(
        record.limits.absolute_for(remember_me),
        policy.limits.absolute_for(remember_me),
    );
    let stored = Deadlines {
        idle: record.last_activity.saturating_add(idle),
        absolute: absolute.map(|timeout| record.created_at.saturating_add(timeout)),
    };
    if let Some(absolute) = stored.absolute {
        if now >= absolute && absolute <= stored.idle {
            return Verdict::Expired(ExpiryReason::Absolute);
        }
    }
    if now >= stored.idle {
        return Verdict::Expired(ExpiryReason::Idle);
    }
    if let Some(absolute) = stored.absolute {
        if now >= absolute {
            return Verdict::Expired(ExpiryReason::Absolute);
        }
    }
    let granularity = touch_granularity(policy, idle);
    let since_stored = now.saturating_duration_since(record.last_activity);
    let touch = since_stored > Duration::ZERO && since_stored >= granularity;
    let deadlines = if touch {
        Deadlines {
            idle: now.saturating_add(idle),
            ..stored
        }
    } else {
        stored
    };
    let renew = policy.renewal.is_some_and(|renewal| {
        now.saturating_duration_since(record.id_issued_at) >= renewal.interval
    });
    Verdict::Admitted(Admission {
        deadlines,
        touch,
        renew,
    })
}

/// How stale the stored activity may get before a request writes it, for
/// a session judged by the idle limit `idle`: the policy's touch
/// granularity, never more than half that limit.
fn touch_granularity(policy: &Policy, idle: Duration) -> Duration {
    policy.touch_granularity.min(idle / 2)
}

/// What decides when a touch of a record can fall due, kept by a store that
/// remembers it between loads: the stored activity and the shorter of the
/// record's two idle limits (plain and remember-me), so that a remember-me
/// switch made since cannot make it late.
#[cfg_attr(not(feature = "redis"), allow(dead_code))]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct TouchBasis {
    activity: Timestamp,
    shortest_idle: Duration,
}

#[cfg_attr(not(feature = "redis"), allow(dead_code))]
impl TouchBasis {
    pub(crate) fn of(record: &SessionRecord) -> Self {
        let limits = &record.limits;
        TouchBasis {
            activity: record.last_activity,
            shortest_idle: limits.idle_timeout.min(limits.remember_me_period),
        }
    }

    /// The same, with the activity a touch just wrote.
    pub(crate) fn touched_at(self, activity: Timestamp) -> Self {
        TouchBasis { activity, ..self }
    }

    /// A time no later than the first at which [`judge`] finds a touch due
    /// under `policy` for a record with this basis, whichever its
    /// remember-me: before it, a request admitted on the record, or on any
    /// later state of it (stored activity only moves forward), writes
    /// nothing. It is that first time exactly when the shorter idle limit
    /// is the one the record is judged by.
    pub(crate) fn no_touch_before(&self, policy: &Policy) -> Timestamp {
        let policy_idle = policy
            .limits
            .idle_timeout
            .min(policy.limits.remember_me_period);
        let granularity = touch_granularity(policy, self.shortest_idle.min(policy_idle));
        // `judge` compares whole milliseconds with the granularity: round up.
        let millis = crate::time::duration_to_millis_ceil(granularity).max(1);
        self.activity.saturating_add(Duration::from_millis(millis))
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn renewal_is_due_once_the_id_is_an_interval_old_and_never_moves_deadlines() {
        let policy = Policy::builder()
            .idle_timeout(10 * MIN)
            .absolute_timeout(60 * MIN)
            .renewal_interval(5 * MIN)
            .build()
            .unwrap();
        let mut record = SessionRecord::new(&policy, at(0), None, false);
        let admitted = |record: &SessionRecord, now| match judge(&policy, record, now) {
            Verdict::Admitted(admission) => admission,
            Verdict::Expired(reason) => panic!("expired: {reason:?}"),
        };
        assert!(!admitted(&record, at(0).saturating_add(5 * MIN - MS)).renew);
        assert!(admitted(&record, at(0).saturating_add(5 * MIN)).renew);
        // Renewed at 5 min: due again at 10 min, the absolute deadline unmoved.
        record.id_issued_at = at(0).saturating_add(5 * MIN);
        record.last_activity = record.id_issued_at;
        let after = admitted(&record, at(0).saturating_add(10 * MIN - MS));
        assert!(!after.renew);
        assert_eq!(
            after.deadlines.absolute,
            Some(at(0).saturating_add(60 * MIN))
        );
        assert!(admitted(&record, at(0).saturating_add(10 * MIN)).renew);
        // Without a renewal interval, never.
        assert!(matches!(
            judge(&Policy::default(), &record, at(0).saturating_add(14 * MIN)),
            Verdict::Admitted(Admission { renew: false, .. })
        ));
    }

    use super::*;

    /// The rule as the tightest of all four limits states it, before
    /// `judge` learnt to compute only the two a session's remember-me
    /// picks.
    fn judged_with_all_limits(policy: &Policy, record: &SessionRecord, now: Timestamp) -> Verdict {
        let limits = record.limits.tightest(policy.limits);
        let stored = Deadlines::of(&limits, record);
        if let Some(absolute) = stored.absolute {
            if now >= absolute && absolute <= stored.idle {
                return Verdict::Expired(ExpiryReason::Absolute);
            }
        }
        if now >= stored.idle {
            return Verdict::Expired(ExpiryReason::Idle);
        }
        if stored.absolute.is_some_and(|absolute| now >= absolute) {
            return Verdict::Expired(ExpiryReason::Absolute);
        }
        let granularity = touch_granularity(policy, limits.idle_for(record.remember_me));
        let since_stored = now.saturating_duration_since(record.last_activity);
        let touch = since_stored > Duration::ZERO && since_stored >= granularity;
        let deadlines = if touch {
            Deadlines::from_activity(&limits, record, now)
        } else {
            stored
        };
        let renew = policy.renewal.is_some_and(|renewal| {
            now.saturating_duration_since(record.id_issued_at) >= renewal.interval
        });
        Verdict::Admitted(Admission {
            deadlines,
            touch,
            renew,
        })
    }

    fn limits() -> impl proptest::strategy::Strategy<Value = Limits> {
        use proptest::prelude::*;
        let limit = || (1u64..5_000).prop_map(Duration::from_millis);
        (
            limit(),
            proptest::option::of(limit()),
            limit(),
            proptest::option::of(limit()),
        )
            .prop_map(|(idle, absolute, remember, remember_absolute)| {
                Limits::new(idle, absolute, remember, remember_absolute)
            })
    }

    proptest::proptest! {
        #[test]
        fn judge_decides_as_the_tightest_of_all_four_limits_does(
            policy_limits in limits(),
            record_limits in limits(),
            remember_me: bool,
            granularity in 0u64..3_000,
            renewal_interval in proptest::option::of(1u64..6_000),
            created in 0u64..2_000,
            active_after in 0u64..4_000,
            now_after in 0u64..12_000,
        ) {
            // Any limits, even those the builder refuses: the rule must
            // agree on whatever a store hands back.
            let policy = Policy {
                limits: policy_limits,
                touch_granularity: Duration::from_millis(granularity),
                renewal: renewal_interval.map(|interval| crate::policy::Renewal {
                    interval: Duration::from_millis(interval),
                    grace: Duration::ZERO,
                }),
                session_limit: None,
            };
            let mut record = SessionRecord::new(&policy, at(created), None, remember_me);
            record.limits = record_limits;
            record.last_activity = at(created + active_after);
            let now = at(created + now_after);
            proptest::prop_assert_eq!(
                judge(&policy, &record, now),
                judged_with_all_limits(&policy, &record, now)
            );
        }
    }

    const MS: Duration = Duration::from_millis(1);
    const MIN: Duration = Duration::from_secs(60);

    fn at(millis: u64) -> Timestamp {
        Timestamp::from_unix_millis(millis)
    }

    fn policy(idle: Duration, absolute: Duration) -> Policy {
        Policy::builder()
            .idle_timeout(idle)
            .absolute_timeout(absolute)
            .build()
            .unwrap()
    }

    #[test]
    fn the_earlier_deadline_names_the_reason() {
        let policy = policy(10 * MIN, 60 * MIN);
        let mut record = SessionRecord::new(&policy, at(0), None, false);
        record.last_activity = at(0).saturating_add(55 * MIN);
        // idle deadline 65 min, absolute 60 min: absolute passed first.
        let later = at(0).saturating_add(70 * MIN);
        assert_eq!(
            judge(&policy, &record, later),
            Verdict::Expired(ExpiryReason::Absolute)
        );
        record.last_activity = at(0);
        assert_eq!(
            judge(&policy, &record, later),
            Verdict::Expired(ExpiryReason::Idle)
        );
    }

    #[test]
    fn touch_is_due_only_once_granularity_has_passed() {
        let policy = Policy::builder()
            .idle_timeout(10 * MIN)
            .touch_granularity(MIN)
            .build()
            .unwrap();
        let record = SessionRecord::new(&policy, at(0), None, false);
        let Verdict::Admitted(early) = judge(&policy, &record, at(0).saturating_add(MIN - MS))
        else {
            panic!("admitted")
        };
        assert!(!early.touch);
        assert_eq!(early.deadlines.idle, at(0).saturating_add(10 * MIN));
        let Verdict::Admitted(due) = judge(&policy, &record, at(0).saturating_add(MIN)) else {
            panic!("admitted")
        };
        assert!(due.touch);
        assert_eq!(due.deadlines.idle, at(0).saturating_add(11 * MIN));
    }

    #[test]
    fn no_touch_is_due_before_a_touch_basis_says() {
        let touches = |policy: &Policy, record: &SessionRecord, now: Timestamp| matches!(judge(policy, record, now), Verdict::Admitted(admission) if admission.touch);
        // Granularities in whole and in odd milliseconds (half of an odd
        // idle limit); records made under one policy and judged by each,
        // with and without remember-me, switched or not since the basis
        // was taken.
        let policies: Vec<Policy> = [(600_000, 60_000), (45_001, 30_000), (3, 1), (10_001, 1)]
            .into_iter()
            .map(|(idle_ms, granularity_ms)| {
                Policy::builder()
                    .idle_timeout(Duration::from_millis(idle_ms))
                    .remember_me_period(Duration::from_millis(idle_ms * 3 + 1))
                    .touch_granularity(Duration::from_millis(granularity_ms))
                    .build()
                    .unwrap()
            })
            .collect();
        for (made, snapshot) in policies.iter().enumerate() {
            for (judged, policy) in policies.iter().enumerate() {
                for (remember_me, switched) in [(false, false), (true, false), (true, true)] {
                    let mut record = SessionRecord::new(snapshot, at(0), None, remember_me);
                    record.last_activity = at(7);
                    let first = TouchBasis::of(&record).no_touch_before(policy);
                    record.remember_me ^= switched;
                    let case = format!("made {made}, judged {judged}, remember-me {remember_me}");
                    assert!(first > record.last_activity, "{case}");
                    let before = Timestamp::from_unix_millis(first.as_unix_millis() - 1);
                    assert!(
                        !touches(policy, &record, before),
                        "{case}: a touch due before"
                    );
                    if !record.remember_me {
                        // Judged by the shorter limit: exactly the first.
                        assert!(touches(policy, &record, first), "{case}: none due at");
                    }
                }
            }
        }
    }

    #[test]
    fn granularity_never_exceeds_half_a_shortened_idle_limit() {
        let old = Policy::builder()
            .idle_timeout(Duration::from_secs(30))
            .build()
            .unwrap();
        let record = SessionRecord::new(&old, at(0), None, false);
        // The current policy throttles by a minute, but this session's idle
        // limit is 30 s: touches must still come every 15 s.
        let current = Policy::builder()
            .idle_timeout(60 * MIN)
            .touch_granularity(MIN)
            .build()
            .unwrap();
        let Verdict::Admitted(admission) = judge(
            &current,
            &record,
            at(0).saturating_add(Duration::from_secs(15)),
        ) else {
            panic!("admitted")
        };
        assert!(admission.touch);
    }
}
