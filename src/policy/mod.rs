//! The session lifetime rules: plain data, validated once at startup.
//!
//! ```
//! use std::time::Duration;
//! use tower_session_lifetime::Policy;
//!
//! let policy = Policy::builder()
//!     .idle_timeout(Duration::from_secs(30 * 60))
//!     .absolute_timeout(Duration::from_secs(12 * 60 * 60))
//!     .remember_me_period(Duration::from_secs(7 * 24 * 60 * 60))
//!     .build()?;
//! assert_eq!(policy.idle_timeout(), Duration::from_secs(1800));
//! // Unless set, activity is written at most once a minute (here: 1/20 of 30 min).
//! assert_eq!(policy.touch_granularity(), Duration::from_secs(60));
//! # Ok::<(), tower_session_lifetime::policy::PolicyError>(())
//! ```

mod error;
mod judge;
mod live;
mod set;

use std::time::Duration;

pub use crate::limits::Limits;
pub use error::{PolicyError, Setting};
#[cfg(feature = "redis")]
pub(crate) use judge::TouchBasis;
pub use judge::{judge, Admission, Deadlines, ExpiryReason, Verdict};
#[cfg(any(feature = "redis", feature = "postgres"))]
pub(crate) use live::Sharer;
pub(crate) use live::{ChangeCounter, InForce};
pub use live::{LivePolicy, PolicyChange, PolicyChangeError, PolicySnapshot};
pub(crate) use set::PolicyChoice;
pub use set::{Policies, PoliciesBuilder, TenantFrom, TenantResolver, Tightening};

const MINUTE: Duration = Duration::from_secs(60);

/// Default idle timeout: 15 minutes.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(15 * 60);
/// Default remember-me period: 14 days.
pub const DEFAULT_REMEMBER_ME_PERIOD: Duration = Duration::from_secs(14 * 24 * 60 * 60);
/// Default absolute timeout: 30 days, on.
pub const DEFAULT_ABSOLUTE_TIMEOUT: Duration = Duration::from_secs(30 * 24 * 60 * 60);
/// The longest default touch granularity: one minute.
pub const MAX_DEFAULT_TOUCH_GRANULARITY: Duration = MINUTE;
/// The default touch granularity is this fraction (1/20) of the idle timeout,
/// capped at [`MAX_DEFAULT_TOUCH_GRANULARITY`].
pub const DEFAULT_TOUCH_GRANULARITY_DIVISOR: u32 = 20;

/// Default renewal grace period: 10 seconds.
pub const DEFAULT_RENEWAL_GRACE: Duration = Duration::from_secs(10);

/// How often a session's ID is replaced, and how long the old one keeps
/// working; see [`PolicyBuilder::renewal_interval`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Renewal {
    /// The ID is replaced once it is this old.
    pub interval: Duration,
    /// How long the replaced ID is still accepted (requests in flight).
    pub grace: Duration,
}

/// What a login does when its subject already has the
/// [maximum number of sessions](PolicyBuilder::max_sessions_per_subject)
/// (Spring Security's `maximumSessions` / `maxSessionsPreventsLogin`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum AtSessionLimit {
    /// The subject's sessions that were created first end, so that the new
    /// one fits.
    EndOldest,
    /// The new login is refused with
    /// [`SessionError::SessionLimit`](crate::SessionError::SessionLimit);
    /// the existing sessions go on.
    RefuseLogin,
}

/// At most `max` live sessions per subject; see
/// [`PolicyBuilder::max_sessions_per_subject`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SessionLimit {
    /// The most live sessions one subject may have.
    pub max: u32,
    /// What a login beyond it does.
    pub at_limit: AtSessionLimit,
}

/// A validated set of lifetime rules. Build one with [`Policy::builder`].
///
/// [`Policy::default()`] is: idle timeout 15 minutes, absolute timeout 30 days
/// (on), remember-me period 14 days, remember-me sessions under the same
/// absolute timeout, touch granularity 45 seconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Policy {
    limits: Limits,
    touch_granularity: Duration,
    renewal: Option<Renewal>,
    session_limit: Option<SessionLimit>,
}

impl Policy {
    /// A builder starting from the defaults.
    pub fn builder() -> PolicyBuilder {
        PolicyBuilder::default()
    }

    /// The limits a session created now is snapshotted with.
    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// This policy with other `limits` and `touch_granularity`, its renewal
    /// and session limit kept, checked as [`PolicyBuilder::build`] checks
    /// them (no caps): what a node makes of limits another node stored.
    #[cfg_attr(not(any(feature = "redis", feature = "postgres")), allow(dead_code))]
    pub(crate) fn with_limits(
        &self,
        limits: Limits,
        touch_granularity: Duration,
    ) -> Result<Policy, PolicyError> {
        PolicyBuilder {
            idle_timeout: limits.idle_timeout,
            absolute_timeout: limits.absolute_timeout,
            remember_me_period: limits.remember_me_period,
            remember_me_absolute_timeout: limits.remember_me_absolute_timeout,
            touch_granularity: Some(touch_granularity),
            renewal_interval: self.renewal.map(|renewal| renewal.interval),
            renewal_grace: self
                .renewal
                .map_or(DEFAULT_RENEWAL_GRACE, |renewal| renewal.grace),
            session_limit: self.session_limit,
            caps: Caps::default(),
        }
        .build()
    }

    /// Inactivity that ends an ordinary session.
    pub fn idle_timeout(&self) -> Duration {
        self.limits.idle_timeout
    }

    /// Maximum lifetime from login of an ordinary session; `None` when off.
    pub fn absolute_timeout(&self) -> Option<Duration> {
        self.limits.absolute_timeout
    }

    /// Inactivity that ends a remember-me session.
    pub fn remember_me_period(&self) -> Duration {
        self.limits.remember_me_period
    }

    /// Maximum lifetime from login of a remember-me session; `None` when off.
    pub fn remember_me_absolute_timeout(&self) -> Option<Duration> {
        self.limits.remember_me_absolute_timeout
    }

    /// How recent stored activity may be before a request skips writing it.
    ///
    /// A request writes its activity to the store only when the stored
    /// activity is at least this old (and never more than half the session's
    /// idle limit old). Because the idle deadline is counted from the *stored*
    /// activity, throttling can end a session early by less than this
    /// duration, and never late: a session whose latest admitted request was
    /// at `t` ends no later than `t + idle` and no earlier than
    /// `t + idle - granularity`.
    pub fn touch_granularity(&self) -> Duration {
        self.touch_granularity
    }

    /// How often session IDs are renewed, and the grace of a replaced ID;
    /// `None` (the default) when they are not.
    pub fn renewal(&self) -> Option<Renewal> {
        self.renewal
    }

    /// The most live sessions one subject may have; `None` (the default)
    /// for no limit.
    pub fn session_limit(&self) -> Option<SessionLimit> {
        self.session_limit
    }

    /// The deadlines `record` has under this policy (the tighter of its
    /// snapshot and this policy's limits, as [`judge`] enforces them) if its
    /// last activity is `activity`.
    pub(crate) fn deadlines(
        &self,
        record: &crate::record::SessionRecord,
        activity: crate::time::Timestamp,
    ) -> Deadlines {
        let limits = record.limits.tightest(self.limits);
        Deadlines::from_activity(&limits, record, activity)
    }

    /// When a store may forget `record` if its last activity is `activity`:
    /// its nearest [deadline](Policy::deadlines). Stores get the expiry
    /// under the *tenant's* policy, never a route group's, which only
    /// judges the requests of its routes.
    pub(crate) fn expiry(
        &self,
        record: &crate::record::SessionRecord,
        activity: crate::time::Timestamp,
    ) -> crate::time::Timestamp {
        self.deadlines(record, activity).nearest()
    }
}

impl Default for Policy {
    fn default() -> Self {
        let limits = Limits {
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
            absolute_timeout: Some(DEFAULT_ABSOLUTE_TIMEOUT),
            remember_me_period: DEFAULT_REMEMBER_ME_PERIOD,
            remember_me_absolute_timeout: Some(DEFAULT_ABSOLUTE_TIMEOUT),
        };
        Policy {
            touch_granularity: default_touch_granularity(limits.idle_timeout),
            limits,
            renewal: None,
            session_limit: None,
        }
    }
}

fn default_touch_granularity(idle_timeout: Duration) -> Duration {
    (idle_timeout / DEFAULT_TOUCH_GRANULARITY_DIVISOR).min(MAX_DEFAULT_TOUCH_GRANULARITY)
}

/// Upper bounds that configured values may not exceed, like a hosted identity
/// provider's plan limits. Each is optional.
///
/// ```
/// use std::time::Duration;
/// use tower_session_lifetime::{Policy, policy::Caps};
///
/// let caps = Caps::new()
///     .idle_timeout(Duration::from_secs(3600))
///     .absolute_timeout(Duration::from_secs(24 * 3600));
/// // The defaults (30 days absolute) are above these caps:
/// assert!(Policy::builder().caps(caps).build().is_err());
/// let policy = Policy::builder()
///     .absolute_timeout(Duration::from_secs(8 * 3600))
///     .caps(caps)
///     .build();
/// assert!(policy.is_ok());
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Caps {
    idle_timeout: Option<Duration>,
    absolute_timeout: Option<Duration>,
    remember_me_period: Option<Duration>,
    remember_me_absolute_timeout: Option<Duration>,
}

impl Caps {
    /// No caps.
    pub fn new() -> Self {
        Caps::default()
    }

    /// Caps the idle timeout.
    pub fn idle_timeout(mut self, cap: Duration) -> Self {
        self.idle_timeout = Some(cap);
        self
    }

    /// Caps the absolute timeout; it may then not be switched off.
    pub fn absolute_timeout(mut self, cap: Duration) -> Self {
        self.absolute_timeout = Some(cap);
        self
    }

    /// Caps the remember-me period.
    pub fn remember_me_period(mut self, cap: Duration) -> Self {
        self.remember_me_period = Some(cap);
        self
    }

    /// Caps the absolute timeout of remember-me sessions.
    pub fn remember_me_absolute_timeout(mut self, cap: Duration) -> Self {
        self.remember_me_absolute_timeout = Some(cap);
        self
    }
}

/// Builds a [`Policy`]; [`build`](PolicyBuilder::build) checks it.
#[derive(Clone, Debug)]
pub struct PolicyBuilder {
    idle_timeout: Duration,
    absolute_timeout: Option<Duration>,
    remember_me_period: Duration,
    remember_me_absolute_timeout: Option<Duration>,
    touch_granularity: Option<Duration>,
    renewal_interval: Option<Duration>,
    renewal_grace: Duration,
    session_limit: Option<SessionLimit>,
    caps: Caps,
}

impl Default for PolicyBuilder {
    fn default() -> Self {
        PolicyBuilder {
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
            absolute_timeout: Some(DEFAULT_ABSOLUTE_TIMEOUT),
            remember_me_period: DEFAULT_REMEMBER_ME_PERIOD,
            remember_me_absolute_timeout: None,
            touch_granularity: None,
            renewal_interval: None,
            renewal_grace: DEFAULT_RENEWAL_GRACE,
            session_limit: None,
            caps: Caps::default(),
        }
    }
}

impl PolicyBuilder {
    /// A session not used for this long ends. Default: 15 minutes.
    pub fn idle_timeout(mut self, timeout: Duration) -> Self {
        self.idle_timeout = timeout;
        self
    }

    /// The maximum lifetime of a session, counted from its login; activity
    /// never extends it. Default: 30 days.
    pub fn absolute_timeout(mut self, timeout: Duration) -> Self {
        self.absolute_timeout = Some(timeout);
        self
    }

    /// Switches the absolute timeout off: sessions live as long as they are
    /// used. Refused by [`build`](PolicyBuilder::build) when it is capped.
    pub fn no_absolute_timeout(mut self) -> Self {
        self.absolute_timeout = None;
        self
    }

    /// Replaces the idle timeout for sessions started with remember-me.
    /// Default: 14 days.
    pub fn remember_me_period(mut self, period: Duration) -> Self {
        self.remember_me_period = period;
        self
    }

    /// A separate absolute timeout for remember-me sessions (Keycloak's
    /// "SSO Session Max Remember Me"). Unset, the ordinary one applies.
    pub fn remember_me_absolute_timeout(mut self, timeout: Duration) -> Self {
        self.remember_me_absolute_timeout = Some(timeout);
        self
    }

    /// How often activity is written to the store at most; see
    /// [`Policy::touch_granularity`]. Zero writes on every request. Default:
    /// 1/20 of the idle timeout, at most one minute.
    pub fn touch_granularity(mut self, granularity: Duration) -> Self {
        self.touch_granularity = Some(granularity);
        self
    }

    /// Replaces a session's ID with a fresh one once the ID is this old
    /// (OWASP's "renewal timeout"): the admitted request that finds it due
    /// gets a new cookie, and the session moves to the new ID at once in the
    /// store. Renewal changes only the ID: the session keeps its creation
    /// time, so its absolute deadline never moves. Off by default.
    ///
    /// Applies to the layer's own cookie; a [followed
    /// cookie](crate::SessionLifetimeLayer::follow_tower_sessions) belongs to
    /// the other layer, which renews it (axum-login cycles it at login).
    pub fn renewal_interval(mut self, interval: Duration) -> Self {
        self.renewal_interval = Some(interval);
        self
    }

    /// How long a renewed (replaced) ID keeps working, for requests that
    /// were already in flight with it; after that it is refused. Must be
    /// shorter than the [renewal interval](PolicyBuilder::renewal_interval);
    /// zero refuses the old ID at once. Default: 10 seconds.
    pub fn renewal_grace(mut self, grace: Duration) -> Self {
        self.renewal_grace = grace;
        self
    }

    /// At most `max` live sessions per subject (user). A login beyond it
    /// ends the subject's oldest sessions, or is refused, as `at_limit`
    /// says. Needs a store that lists a subject's sessions (every store of
    /// this crate but `TowerSessionsStore`); with
    /// others, the login fails with a store error of kind
    /// [`Unsupported`](crate::store::StoreErrorKind::Unsupported). Zero is refused
    /// by [`build`](PolicyBuilder::build). No limit by default.
    ///
    /// The count is taken at login, so logins of one subject racing each
    /// other on several nodes may overshoot the limit by the number of
    /// racing logins; the next login brings it back.
    pub fn max_sessions_per_subject(mut self, max: u32, at_limit: AtSessionLimit) -> Self {
        self.session_limit = Some(SessionLimit { max, at_limit });
        self
    }

    /// Upper bounds the values above may not exceed.
    pub fn caps(mut self, caps: Caps) -> Self {
        self.caps = caps;
        self
    }

    /// Checks every value and returns the policy, or the first problem found.
    pub fn build(self) -> Result<Policy, PolicyError> {
        let limits = Limits {
            idle_timeout: self.idle_timeout,
            absolute_timeout: self.absolute_timeout,
            remember_me_period: self.remember_me_period,
            remember_me_absolute_timeout: self
                .remember_me_absolute_timeout
                .or(self.absolute_timeout),
        };
        let caps = self.caps;
        check_lifetime(
            Setting::IdleTimeout,
            Some(limits.idle_timeout),
            caps.idle_timeout,
        )?;
        check_lifetime(
            Setting::AbsoluteTimeout,
            limits.absolute_timeout,
            caps.absolute_timeout,
        )?;
        check_lifetime(
            Setting::RememberMePeriod,
            Some(limits.remember_me_period),
            caps.remember_me_period,
        )?;
        check_lifetime(
            Setting::RememberMeAbsoluteTimeout,
            limits.remember_me_absolute_timeout,
            caps.remember_me_absolute_timeout,
        )?;
        let touch_granularity = match self.touch_granularity {
            None => default_touch_granularity(limits.idle_timeout),
            Some(granularity) => {
                for (limit, limit_value) in [
                    (Setting::IdleTimeout, limits.idle_timeout),
                    (Setting::RememberMePeriod, limits.remember_me_period),
                ] {
                    if granularity >= limit_value {
                        return Err(PolicyError::GranularityTooCoarse {
                            granularity,
                            limit,
                            limit_value,
                        });
                    }
                }
                granularity
            }
        };
        let renewal = match self.renewal_interval {
            None => None,
            Some(interval) => {
                check_lifetime(Setting::RenewalInterval, Some(interval), None)?;
                if self.renewal_grace >= interval {
                    return Err(PolicyError::GraceTooLong {
                        grace: self.renewal_grace,
                        interval,
                    });
                }
                Some(Renewal {
                    interval,
                    grace: self.renewal_grace,
                })
            }
        };
        if let Some(SessionLimit { max: 0, .. }) = self.session_limit {
            return Err(PolicyError::NoSessionsAllowed);
        }
        Ok(Policy {
            limits,
            touch_granularity,
            renewal,
            session_limit: self.session_limit,
        })
    }
}

fn check_lifetime(
    setting: Setting,
    value: Option<Duration>,
    cap: Option<Duration>,
) -> Result<(), PolicyError> {
    match (value, cap) {
        (Some(value), _) if value < Duration::from_millis(1) => {
            Err(PolicyError::TooShort { setting, value })
        }
        (Some(value), Some(cap)) if value > cap => Err(PolicyError::AboveCap {
            setting,
            value,
            cap,
        }),
        (None, Some(cap)) => Err(PolicyError::Unbounded { setting, cap }),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: Duration = Duration::from_secs(24 * 60 * 60);

    #[test]
    fn defaults_match_the_documented_values() {
        let policy = Policy::default();
        assert_eq!(policy, Policy::builder().build().unwrap());
        assert_eq!(policy.idle_timeout(), 15 * MINUTE);
        assert_eq!(policy.absolute_timeout(), Some(30 * DAY));
        assert_eq!(policy.remember_me_period(), 14 * DAY);
        assert_eq!(policy.remember_me_absolute_timeout(), Some(30 * DAY));
        assert_eq!(policy.touch_granularity(), Duration::from_secs(45));
    }

    #[test]
    fn default_granularity_is_capped_at_a_minute() {
        let policy = Policy::builder()
            .idle_timeout(8 * 60 * MINUTE)
            .build()
            .unwrap();
        assert_eq!(policy.touch_granularity(), MINUTE);
    }

    #[test]
    fn zero_and_sub_millisecond_lifetimes_are_refused() {
        let err = Policy::builder()
            .idle_timeout(Duration::ZERO)
            .build()
            .unwrap_err();
        assert_eq!(
            err,
            PolicyError::TooShort {
                setting: Setting::IdleTimeout,
                value: Duration::ZERO
            }
        );
        let err = Policy::builder()
            .remember_me_absolute_timeout(Duration::from_micros(999))
            .build()
            .unwrap_err();
        assert!(matches!(
            err,
            PolicyError::TooShort {
                setting: Setting::RememberMeAbsoluteTimeout,
                ..
            }
        ));
    }

    #[test]
    fn a_capped_absolute_timeout_cannot_be_switched_off() {
        let err = Policy::builder()
            .no_absolute_timeout()
            .caps(Caps::new().absolute_timeout(DAY))
            .build()
            .unwrap_err();
        assert_eq!(
            err,
            PolicyError::Unbounded {
                setting: Setting::AbsoluteTimeout,
                cap: DAY
            }
        );
        assert_eq!(
            err.to_string(),
            "absolute timeout is switched off but capped at 86400s"
        );
    }

    #[test]
    fn remember_me_absolute_inherits_the_ordinary_one_and_its_cap_applies() {
        let err = Policy::builder()
            .caps(Caps::new().remember_me_absolute_timeout(7 * DAY))
            .build()
            .unwrap_err();
        assert_eq!(
            err,
            PolicyError::AboveCap {
                setting: Setting::RememberMeAbsoluteTimeout,
                value: 30 * DAY,
                cap: 7 * DAY
            }
        );
    }

    #[test]
    fn granularity_must_be_shorter_than_each_idle_limit() {
        let err = Policy::builder()
            .idle_timeout(MINUTE)
            .touch_granularity(MINUTE)
            .build()
            .unwrap_err();
        assert!(matches!(
            err,
            PolicyError::GranularityTooCoarse {
                limit: Setting::IdleTimeout,
                ..
            }
        ));
        let err = Policy::builder()
            .remember_me_period(Duration::from_secs(10))
            .touch_granularity(Duration::from_secs(20))
            .build()
            .unwrap_err();
        assert!(matches!(
            err,
            PolicyError::GranularityTooCoarse {
                limit: Setting::RememberMePeriod,
                ..
            }
        ));
        assert!(Policy::builder()
            .touch_granularity(Duration::ZERO)
            .build()
            .is_ok());
    }
}
