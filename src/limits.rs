//! [`Limits`]: the durations a session lives under, kept in its record.

use std::time::Duration;

/// The limits a session lives under.
///
/// Every session keeps a snapshot of the policy's limits from its creation;
/// each request is judged by the [tighter](Limits::tightest) of that snapshot
/// and the current policy, so a shorter limit bites at a session's next request
/// and a longer one applies only to sessions created after it.
///
/// `None` for an absolute timeout means "no absolute limit".
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct Limits {
    /// Inactivity that ends an ordinary session.
    pub idle_timeout: Duration,
    /// Maximum lifetime of an ordinary session, counted from its creation.
    pub absolute_timeout: Option<Duration>,
    /// Inactivity that ends a remember-me session.
    pub remember_me_period: Duration,
    /// Maximum lifetime of a remember-me session, counted from its creation.
    pub remember_me_absolute_timeout: Option<Duration>,
}

impl Limits {
    /// Limits from their four durations, as a store reads them back (a
    /// policy gives them with [`Policy::limits`](crate::policy::Policy::limits)).
    ///
    /// ```
    /// use std::time::Duration;
    /// use tower_session_lifetime::policy::Limits;
    ///
    /// let limits = Limits::new(Duration::from_secs(900), Some(Duration::from_secs(8 * 3600)), Duration::from_secs(86_400), None);
    /// assert_eq!(limits.idle_for(false), Duration::from_secs(900));
    /// assert_eq!(limits.absolute_for(true), None);
    /// ```
    pub fn new(
        idle_timeout: Duration,
        absolute_timeout: Option<Duration>,
        remember_me_period: Duration,
        remember_me_absolute_timeout: Option<Duration>,
    ) -> Self {
        Limits {
            idle_timeout,
            absolute_timeout,
            remember_me_period,
            remember_me_absolute_timeout,
        }
    }

    /// Each limit the shorter of `self`'s and `other`'s.
    ///
    /// ```
    /// use std::time::Duration;
    /// use tower_session_lifetime::Policy;
    ///
    /// let at_login = Policy::default().limits();
    /// let now = Policy::builder()
    ///     .idle_timeout(Duration::from_secs(60))
    ///     .no_absolute_timeout()
    ///     .build()?
    ///     .limits();
    /// let effective = at_login.tightest(now);
    /// assert_eq!(effective.idle_timeout, Duration::from_secs(60));
    /// assert_eq!(effective.absolute_timeout, at_login.absolute_timeout);
    /// # Ok::<(), tower_session_lifetime::policy::PolicyError>(())
    /// ```
    pub fn tightest(self, other: Limits) -> Limits {
        Limits {
            idle_timeout: self.idle_timeout.min(other.idle_timeout),
            absolute_timeout: shorter_limit(self.absolute_timeout, other.absolute_timeout),
            remember_me_period: self.remember_me_period.min(other.remember_me_period),
            remember_me_absolute_timeout: shorter_limit(
                self.remember_me_absolute_timeout,
                other.remember_me_absolute_timeout,
            ),
        }
    }

    /// These limits for a session that switches remember-me from `from` to
    /// `to`: both absolute limits become the shorter of the two that apply
    /// before and after the switch, so the switch never moves the absolute
    /// deadline later.
    pub(crate) fn switching_remember_me(mut self, from: bool, to: bool) -> Limits {
        let kept = shorter_limit(self.absolute_for(from), self.absolute_for(to));
        self.absolute_timeout = kept;
        self.remember_me_absolute_timeout = kept;
        self
    }

    /// The inactivity limit for a session with or without remember-me.
    pub fn idle_for(&self, remember_me: bool) -> Duration {
        if remember_me {
            self.remember_me_period
        } else {
            self.idle_timeout
        }
    }

    /// The absolute limit for a session with or without remember-me.
    pub fn absolute_for(&self, remember_me: bool) -> Option<Duration> {
        if remember_me {
            self.remember_me_absolute_timeout
        } else {
            self.absolute_timeout
        }
    }
}

pub(crate) fn shorter_limit(a: Option<Duration>, b: Option<Duration>) -> Option<Duration> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (one, None) | (None, one) => one,
    }
}
