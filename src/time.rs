//! Points in time, as the session rules and the stores see them.

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A point in time: whole milliseconds since the Unix epoch (UTC).
///
/// Milliseconds are the resolution of every rule in this crate, so one
/// millisecond is the "tick" of a [`ManualClock`](crate::clock::ManualClock). The
/// type is what stores keep (Redis `PEXPIREAT`, an SQL `BIGINT`), and it
/// saturates instead of overflowing.
///
/// ```
/// use std::time::Duration;
/// use tower_session_lifetime::time::Timestamp;
///
/// let login = Timestamp::from_unix_millis(1_700_000_000_000);
/// let deadline = login.saturating_add(Duration::from_secs(900));
/// assert_eq!(deadline.as_unix_secs(), 1_700_000_900);
/// assert_eq!(deadline.saturating_duration_since(login), Duration::from_secs(900));
/// ```
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Timestamp(u64);

impl Timestamp {
    /// The Unix epoch, 1970-01-01T00:00:00Z.
    pub const UNIX_EPOCH: Timestamp = Timestamp(0);

    /// The point `millis` milliseconds after the Unix epoch.
    pub const fn from_unix_millis(millis: u64) -> Self {
        Timestamp(millis)
    }

    /// Milliseconds since the Unix epoch.
    pub const fn as_unix_millis(self) -> u64 {
        self.0
    }

    /// Whole seconds since the Unix epoch, rounded down.
    pub const fn as_unix_secs(self) -> u64 {
        self.0 / 1000
    }

    /// Converts a [`SystemTime`]; times before the epoch become the epoch.
    pub fn from_system_time(time: SystemTime) -> Self {
        let since_epoch = time.duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO);
        Timestamp(duration_to_millis(since_epoch))
    }

    /// This point plus `duration`, rounded down to the millisecond; saturates
    /// at the end of representable time.
    pub fn saturating_add(self, duration: Duration) -> Self {
        Timestamp(self.0.saturating_add(duration_to_millis(duration)))
    }

    /// How long after `earlier` this point is, or zero if it is not after it.
    pub fn saturating_duration_since(self, earlier: Timestamp) -> Duration {
        Duration::from_millis(self.0.saturating_sub(earlier.0))
    }
}

impl From<SystemTime> for Timestamp {
    fn from(time: SystemTime) -> Self {
        Timestamp::from_system_time(time)
    }
}

impl fmt::Debug for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Timestamp({}.{:03}s)", self.0 / 1000, self.0 % 1000)
    }
}

/// `duration` in whole milliseconds, rounded up (saturating): since
/// activity is kept in whole milliseconds, "at least `duration` old" is "at
/// least this many milliseconds old".
#[cfg_attr(not(any(feature = "redis", feature = "postgres")), allow(dead_code))]
pub(crate) fn duration_to_millis_ceil(duration: Duration) -> u64 {
    u64::try_from(duration.as_nanos().div_ceil(1_000_000)).unwrap_or(u64::MAX)
}

/// Whole milliseconds in `duration`, saturating at `u64::MAX`.
pub(crate) fn duration_to_millis(duration: Duration) -> u64 {
    duration
        .as_secs()
        .saturating_mul(1000)
        .saturating_add(u64::from(duration.subsec_millis()))
}
