//! What can be wrong with a policy, found when it is built.

use std::fmt;
use std::time::Duration;

/// One setting of a [`Policy`](crate::Policy), named in errors.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Setting {
    /// [`PolicyBuilder::idle_timeout`](crate::policy::PolicyBuilder::idle_timeout).
    IdleTimeout,
    /// [`PolicyBuilder::absolute_timeout`](crate::policy::PolicyBuilder::absolute_timeout).
    AbsoluteTimeout,
    /// [`PolicyBuilder::remember_me_period`](crate::policy::PolicyBuilder::remember_me_period).
    RememberMePeriod,
    /// [`PolicyBuilder::remember_me_absolute_timeout`](crate::policy::PolicyBuilder::remember_me_absolute_timeout).
    RememberMeAbsoluteTimeout,
    /// [`PolicyBuilder::touch_granularity`](crate::policy::PolicyBuilder::touch_granularity).
    TouchGranularity,
    /// [`PolicyBuilder::renewal_interval`](crate::policy::PolicyBuilder::renewal_interval).
    RenewalInterval,
}

impl fmt::Display for Setting {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Setting::IdleTimeout => "idle timeout",
            Setting::AbsoluteTimeout => "absolute timeout",
            Setting::RememberMePeriod => "remember-me period",
            Setting::RememberMeAbsoluteTimeout => "remember-me absolute timeout",
            Setting::TouchGranularity => "touch granularity",
            Setting::RenewalInterval => "renewal interval",
        })
    }
}

/// Why [`PolicyBuilder::build`](crate::policy::PolicyBuilder::build) refused a policy.
///
/// ```
/// use std::time::Duration;
/// use tower_session_lifetime::{Policy, policy::{Caps, PolicyError, Setting}};
///
/// let err = Policy::builder()
///     .idle_timeout(Duration::from_secs(3600))
///     .caps(Caps::new().idle_timeout(Duration::from_secs(1800)))
///     .build()
///     .unwrap_err();
/// assert_eq!(
///     err,
///     PolicyError::AboveCap {
///         setting: Setting::IdleTimeout,
///         value: Duration::from_secs(3600),
///         cap: Duration::from_secs(1800),
///     }
/// );
/// assert_eq!(err.to_string(), "idle timeout of 3600s is above its cap of 1800s");
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum PolicyError {
    /// A lifetime is shorter than one millisecond, the resolution of every rule.
    TooShort {
        /// The setting.
        setting: Setting,
        /// The value it was given.
        value: Duration,
    },
    /// A value is above the cap configured for it.
    AboveCap {
        /// The setting.
        setting: Setting,
        /// The value it was given.
        value: Duration,
        /// The cap it may not exceed.
        cap: Duration,
    },
    /// An absolute timeout was switched off while a cap bounds it.
    Unbounded {
        /// The setting that was switched off.
        setting: Setting,
        /// The cap it may not exceed.
        cap: Duration,
    },
    /// The touch granularity is not shorter than a lifetime it throttles.
    GranularityTooCoarse {
        /// The touch granularity it was given.
        granularity: Duration,
        /// The lifetime it must stay below.
        limit: Setting,
        /// That lifetime's value.
        limit_value: Duration,
    },
    /// The renewal grace period is not shorter than the renewal interval, so
    /// a replaced ID would outlive its replacement's turn.
    GraceTooLong {
        /// The grace period it was given.
        grace: Duration,
        /// The renewal interval.
        interval: Duration,
    },
    /// A session limit of zero: no one could sign in.
    NoSessionsAllowed,
    /// A route group of [`Policies`](crate::Policies) would lengthen a
    /// limit of a tenant's policy (or of the default one): route groups
    /// may only shorten them.
    LongerThanEnclosing {
        /// The setting.
        setting: Setting,
        /// The route group's value.
        value: Duration,
        /// The enclosing policy's value.
        enclosing: Duration,
        /// The route group's prefix.
        route: String,
        /// The tenant, or `None` for the default policy.
        tenant: Option<String>,
    },
    /// A route group's prefix is not an absolute path without a query.
    InvalidRoute {
        /// The prefix as given.
        route: String,
    },
}

impl fmt::Display for PolicyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PolicyError::TooShort { setting, value } => {
                write!(f, "{setting} of {value:?} is shorter than one millisecond")
            }
            PolicyError::AboveCap {
                setting,
                value,
                cap,
            } => write!(f, "{setting} of {value:?} is above its cap of {cap:?}"),
            PolicyError::Unbounded { setting, cap } => {
                write!(f, "{setting} is switched off but capped at {cap:?}")
            }
            PolicyError::GranularityTooCoarse {
                granularity,
                limit,
                limit_value,
            } => write!(
                f,
                "touch granularity of {granularity:?} is not shorter than the {limit} of {limit_value:?}"
            ),
            PolicyError::GraceTooLong { grace, interval } => write!(
                f,
                "renewal grace of {grace:?} is not shorter than the renewal interval of {interval:?}"
            ),
            PolicyError::NoSessionsAllowed => {
                f.write_str("a limit of zero sessions per subject lets no one sign in")
            }
            PolicyError::LongerThanEnclosing {
                setting,
                value,
                enclosing,
                route,
                tenant,
            } => {
                write!(
                    f,
                    "{setting} of {value:?} for {route:?} is longer than the {enclosing:?} of "
                )?;
                match tenant {
                    Some(tenant) => write!(f, "tenant {tenant:?}"),
                    None => f.write_str("the default policy"),
                }
            }
            PolicyError::InvalidRoute { route } => {
                write!(f, "route group {route:?} is not an absolute path")
            }
        }
    }
}

impl std::error::Error for PolicyError {}
