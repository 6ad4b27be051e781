//! Where the middleware learns the current time.
//!
//! The layer reads the time through a [`Clock`] exactly once per request, so
//! tests drive every lifetime rule with a [`ManualClock`] instead of sleeping.
//!
//! ```
//! use std::time::Duration;
//! use tower_session_lifetime::{clock::{Clock, ManualClock}, time::Timestamp};
//!
//! let clock = ManualClock::new(Timestamp::from_unix_millis(1_000));
//! let seen_by_the_layer = clock.clone();
//! clock.advance(Duration::from_secs(60));
//! assert_eq!(seen_by_the_layer.now(), Timestamp::from_unix_millis(61_000));
//! ```

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use crate::time::{duration_to_millis, Timestamp};

/// A source of the current time.
pub trait Clock: Send + Sync + 'static {
    /// The current time.
    fn now(&self) -> Timestamp;
}

/// The operating system's wall clock. The default.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        Timestamp::from_system_time(SystemTime::now())
    }
}

/// A clock that moves only when told to: for tests of time-dependent rules.
///
/// Clones share one time, so the copy given to the layer sees every
/// [`advance`](ManualClock::advance) made through the test's copy.
#[derive(Clone, Debug)]
pub struct ManualClock {
    millis: Arc<AtomicU64>,
}

impl ManualClock {
    /// A clock standing still at `start`.
    pub fn new(start: Timestamp) -> Self {
        ManualClock {
            millis: Arc::new(AtomicU64::new(start.as_unix_millis())),
        }
    }

    /// Moves the clock forward by `by` (rounded down to the millisecond).
    pub fn advance(&self, by: Duration) {
        let step = duration_to_millis(by);
        let _ = self
            .millis
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |now| {
                Some(now.saturating_add(step))
            });
    }

    /// Puts the clock at `to`, forwards or backwards.
    pub fn set(&self, to: Timestamp) {
        self.millis.store(to.as_unix_millis(), Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        Timestamp::from_unix_millis(self.millis.load(Ordering::SeqCst))
    }
}
