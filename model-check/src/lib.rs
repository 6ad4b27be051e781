//! Loom model checks of tower-session-lifetime's `MemoryStore` and of the
//! layer over it: the scenarios are in `tests/`, run by
//! `scripts/model-check`; this is what they share.
#![cfg(tsl_loom)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// Runs `scenario` under every schedule loom finds (no preemption bound
/// unless `LOOM_MAX_PREEMPTIONS` sets one), prints how many it explored,
/// and returns that number.
pub fn explore(name: &str, scenario: impl Fn() + Send + Sync + 'static) -> usize {
    let schedules = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&schedules);
    let builder = loom::model::Builder::new();
    let bound = builder.preemption_bound;
    builder.check(move || {
        counted.fetch_add(1, Ordering::Relaxed);
        scenario();
    });
    let explored = schedules.load(Ordering::Relaxed);
    match bound {
        None => println!("model check: {name}: {explored} schedules, exhaustive"),
        Some(bound) => {
            println!("model check: {name}: {explored} schedules, at most {bound} preemptions each")
        }
    }
    assert!(explored > 1, "{name}: loom explored no interleaving");
    explored
}
