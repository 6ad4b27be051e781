//! [`RecentLoginLayer`]: the guard's configuration, applied to a service.

use std::time::Duration;

use http::{HeaderValue, Uri};

/// What a request whose login is too old (or that has no session) gets.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum OnStaleLogin {
    /// `401 Unauthorized`, with the reason in the response's extensions.
    #[default]
    Reject,
    /// `303 See Other` to a page that asks the user to authenticate again.
    Redirect(HeaderValue),
}

/// Admits only requests whose session's subject authenticated less than
/// `max_age` ago; see the [module docs](crate::recent_login).
///
/// ```
/// use std::time::Duration;
/// use tower_session_lifetime::recent_login::RecentLoginLayer;
///
/// let guard = RecentLoginLayer::within(Duration::from_secs(300));
/// assert_eq!(guard.max_age(), Duration::from_secs(300));
/// ```
#[derive(Clone, Debug)]
pub struct RecentLoginLayer {
    pub(super) max_age: Duration,
    pub(super) on_stale: OnStaleLogin,
}

impl RecentLoginLayer {
    /// Admits sessions authenticated less than `max_age` ago; refuses
    /// others with `401`. A zero `max_age` admits nothing.
    pub fn within(max_age: Duration) -> Self {
        RecentLoginLayer {
            max_age,
            on_stale: OnStaleLogin::Reject,
        }
    }

    /// Refuses with a `303 See Other` to `location` instead of `401`.
    pub fn redirect_to(mut self, location: Uri) -> Self {
        let location = HeaderValue::try_from(location.to_string())
            .expect("a parsed URI is a valid header value");
        self.on_stale = OnStaleLogin::Redirect(location);
        self
    }

    /// How recent a login must be.
    pub fn max_age(&self) -> Duration {
        self.max_age
    }

    /// What a refused request gets.
    pub fn on_stale(&self) -> &OnStaleLogin {
        &self.on_stale
    }
}
