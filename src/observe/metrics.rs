//! [`SessionMetrics`]: counters the layer keeps when asked to.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use super::EndReason;

/// Counters of what the layer did, shared by every clone; hand one to
/// [`SessionLifetimeLayer::with_metrics`](crate::SessionLifetimeLayer::with_metrics)
/// and read it with [`snapshot`](SessionMetrics::snapshot). Off unless
/// given: without it the layer counts nothing and times no store call.
///
/// With the `metrics` feature, every count also goes to the
/// [`metrics`](https://docs.rs/metrics) facade, for whatever exporter the
/// app installed (Prometheus, StatsD…):
///
/// | name | kind | labels |
/// | --- | --- | --- |
/// | `session_lifetime_admitted_total` | counter | |
/// | `session_lifetime_started_total` | counter | |
/// | `session_lifetime_renewed_total` | counter | |
/// | `session_lifetime_ended_total` | counter | `reason` |
/// | `session_lifetime_store_errors_total` | counter | |
/// | `session_lifetime_store_seconds` | histogram | |
/// | `session_lifetime_policy_changes_total` | counter | |
#[derive(Clone, Debug, Default)]
pub struct SessionMetrics {
    counts: Arc<Counts>,
}

#[derive(Debug, Default)]
struct Counts {
    admitted: AtomicU64,
    started: AtomicU64,
    renewed: AtomicU64,
    ended: [AtomicU64; EndReason::ALL.len()],
    store_calls: AtomicU64,
    store_errors: AtomicU64,
    store_nanos: AtomicU64,
    store_max_nanos: AtomicU64,
    policy_changes: AtomicU64,
}

/// The counts at one moment; see [`SessionMetrics::snapshot`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct MetricsSnapshot {
    /// Requests whose session was admitted.
    pub admitted: u64,
    /// Sessions started (logins).
    pub started: u64,
    /// Session IDs renewed.
    pub renewed: u64,
    /// Sessions ended, by [`EndReason`], in the order of [`EndReason::ALL`].
    pub ended: [u64; EndReason::ALL.len()],
    /// Calls to the store.
    pub store_calls: u64,
    /// Calls to the store that failed (not counting a store saying it
    /// cannot do something, such as listing sessions).
    pub store_errors: u64,
    /// Time spent in store calls, all together.
    pub store_time: Duration,
    /// The longest store call.
    pub store_max: Duration,
    /// Changes made to the policies of a running layer
    /// ([`LivePolicy`](crate::policy::LivePolicy)).
    pub policy_changes: u64,
}

impl MetricsSnapshot {
    /// Sessions ended for `reason`.
    pub fn ended(&self, reason: EndReason) -> u64 {
        self.ended[reason.index()]
    }
}

impl SessionMetrics {
    /// Counters at zero.
    pub fn new() -> Self {
        SessionMetrics::default()
    }

    /// The counts now.
    pub fn snapshot(&self) -> MetricsSnapshot {
        let counts = &self.counts;
        let load = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        MetricsSnapshot {
            admitted: load(&counts.admitted),
            started: load(&counts.started),
            renewed: load(&counts.renewed),
            ended: std::array::from_fn(|i| load(&counts.ended[i])),
            store_calls: load(&counts.store_calls),
            store_errors: load(&counts.store_errors),
            store_time: Duration::from_nanos(load(&counts.store_nanos)),
            store_max: Duration::from_nanos(load(&counts.store_max_nanos)),
            policy_changes: load(&counts.policy_changes),
        }
    }

    pub(crate) fn policy_changed(&self) {
        self.counts.policy_changes.fetch_add(1, Ordering::Relaxed);
        #[cfg(feature = "metrics")]
        ::metrics::counter!("session_lifetime_policy_changes_total").increment(1);
    }

    pub(crate) fn admitted(&self) {
        self.counts.admitted.fetch_add(1, Ordering::Relaxed);
        #[cfg(feature = "metrics")]
        ::metrics::counter!("session_lifetime_admitted_total").increment(1);
    }

    pub(crate) fn started(&self) {
        self.counts.started.fetch_add(1, Ordering::Relaxed);
        #[cfg(feature = "metrics")]
        ::metrics::counter!("session_lifetime_started_total").increment(1);
    }

    pub(crate) fn renewed(&self) {
        self.counts.renewed.fetch_add(1, Ordering::Relaxed);
        #[cfg(feature = "metrics")]
        ::metrics::counter!("session_lifetime_renewed_total").increment(1);
    }

    pub(crate) fn ended(&self, reason: EndReason, count: u64) {
        self.counts.ended[reason.index()].fetch_add(count, Ordering::Relaxed);
        #[cfg(feature = "metrics")]
        ::metrics::counter!("session_lifetime_ended_total", "reason" => reason.as_str())
            .increment(count);
    }

    /// One store call that took `took`, and whether it failed.
    pub(crate) fn store_call(&self, took: Duration, failed: bool) {
        let counts = &self.counts;
        let nanos = u64::try_from(took.as_nanos()).unwrap_or(u64::MAX);
        counts.store_calls.fetch_add(1, Ordering::Relaxed);
        counts.store_nanos.fetch_add(nanos, Ordering::Relaxed);
        counts.store_max_nanos.fetch_max(nanos, Ordering::Relaxed);
        if failed {
            counts.store_errors.fetch_add(1, Ordering::Relaxed);
        }
        #[cfg(feature = "metrics")]
        {
            ::metrics::histogram!("session_lifetime_store_seconds").record(took.as_secs_f64());
            if failed {
                ::metrics::counter!("session_lifetime_store_errors_total").increment(1);
            }
        }
    }
}
