//! Properties of `judge` over random policies and request schedules.

use std::time::Duration;

use proptest::prelude::*;
use tower_session_lifetime::{
    policy::{judge, Verdict},
    record::SessionRecord,
    time::Timestamp,
    Policy,
};

/// The next request: after a random gap, or one tick before, at or after
/// the stored idle deadline or the absolute deadline.
#[derive(Clone, Debug)]
enum Step {
    Gap(u64),
    IdleEdge(i64),
    AbsoluteEdge(i64),
}

fn steps() -> impl Strategy<Value = Vec<Step>> {
    let step = prop_oneof![
        2 => (0u64..250_000).prop_map(Step::Gap),
        1 => (-1i64..=1).prop_map(Step::IdleEdge),
        1 => (-1i64..=1).prop_map(Step::AbsoluteEdge),
    ];
    proptest::collection::vec(step, 1..40)
}

fn offset(at: Timestamp, ticks: i64) -> Timestamp {
    Timestamp::from_unix_millis(at.as_unix_millis().saturating_add_signed(ticks))
}

fn millis(range: std::ops::RangeInclusive<u64>) -> impl Strategy<Value = Duration> {
    range.prop_map(Duration::from_millis)
}

prop_compose! {
    fn policies()(
        idle in millis(1..=100_000),
        absolute in proptest::option::of(millis(1..=1_000_000)),
        remember_me in millis(1..=400_000),
        remember_me_absolute in proptest::option::of(millis(1..=2_000_000)),
        granularity_fraction in proptest::option::of(0.0f64..1.0),
    ) -> Policy {
        let mut builder = Policy::builder().idle_timeout(idle).remember_me_period(remember_me);
        builder = match absolute {
            Some(absolute) => builder.absolute_timeout(absolute),
            None => builder.no_absolute_timeout(),
        };
        if let Some(limit) = remember_me_absolute {
            builder = builder.remember_me_absolute_timeout(limit);
        }
        if let Some(fraction) = granularity_fraction {
            let shortest = idle.min(remember_me);
            builder = builder.touch_granularity(shortest.mul_f64(fraction).min(shortest - Duration::from_millis(1)));
        }
        builder.build().expect("generated policies are valid")
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    /// Requests at random gaps: never admitted at or past a deadline, and
    /// never refused earlier than one touch granularity before the idle
    /// deadline counted from the latest admitted request.
    #[test]
    fn never_admitted_at_or_past_a_deadline(
        at_login in policies(),
        current in policies(),
        remember_me in any::<bool>(),
        steps in steps(),
    ) {
        let created = Timestamp::from_unix_millis(1_800_000_000_000);
        let mut record = SessionRecord::new(&at_login, created, None, remember_me);
        let limits = at_login.limits().tightest(current.limits());
        let idle = limits.idle_for(remember_me);
        let absolute = limits.absolute_for(remember_me).map(|limit| created.saturating_add(limit));
        let granularity = current.touch_granularity().min(idle / 2);
        let mut latest_admitted = created;
        let mut now = created;
        for step in steps {
            let target = match step {
                Step::Gap(gap) => now.saturating_add(Duration::from_millis(gap)),
                Step::IdleEdge(ticks) => offset(record.last_activity.saturating_add(idle), ticks),
                Step::AbsoluteEdge(ticks) => absolute.map_or(now, |deadline| offset(deadline, ticks)),
            };
            now = now.max(target);
            let past_absolute = absolute.is_some_and(|deadline| now >= deadline);
            let past_idle = now >= latest_admitted.saturating_add(idle);
            let surely_live = !past_absolute
                && now.saturating_add(granularity) < latest_admitted.saturating_add(idle);
            match judge(&current, &record, now) {
                Verdict::Admitted(admission) => {
                    prop_assert!(!past_absolute, "admitted at or past the absolute deadline");
                    prop_assert!(!past_idle, "admitted at or past the idle deadline");
                    prop_assert!(admission.deadlines.nearest() > now);
                    if let Some(deadline) = absolute {
                        prop_assert_eq!(admission.deadlines.absolute, Some(deadline));
                    }
                    if admission.touch {
                        record.last_activity = now;
                    }
                    latest_admitted = now;
                }
                Verdict::Expired(_) => {
                    prop_assert!(!surely_live, "refused more than a granularity early");
                    break;
                }
            }
        }
    }

    /// A shorter current policy bites at once; a longer one changes nothing.
    #[test]
    fn the_tighter_of_snapshot_and_policy_applies(
        at_login in policies(),
        current in policies(),
        remember_me in any::<bool>(),
        idle_for in 0u64..500_000,
    ) {
        let created = Timestamp::from_unix_millis(0);
        let record = SessionRecord::new(&at_login, created, None, remember_me);
        let now = created.saturating_add(Duration::from_millis(idle_for));
        let under_login_policy = judge(&at_login, &record, now);
        let under_current = judge(&current, &record, now);
        if matches!(under_login_policy, Verdict::Expired(_)) {
            prop_assert!(matches!(under_current, Verdict::Expired(_)), "a policy change never revives");
        }
    }
}
