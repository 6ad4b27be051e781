//! The session's deadlines in response headers, for a page's script.
//!
//! ```
//! use axum::{routing::get, Router};
//! use tower_session_lifetime::{MemoryStore, SessionLifetimeLayer, deadline_headers::DeadlineHeaders};
//!
//! let app: Router = Router::new()
//!     .route("/", get(|| async { "hello" }))
//!     .layer(SessionLifetimeLayer::new(MemoryStore::new()).with_deadline_headers(DeadlineHeaders::new()));
//! // Every response to a request with a live session now carries
//! // `Session-Idle-Expires: <unix seconds>` and, unless the absolute timeout
//! // is off, `Session-Expires: <unix seconds>`.
//! # let _ = app;
//! ```

use std::fmt;

use http::header::ACCESS_CONTROL_EXPOSE_HEADERS;
use http::{HeaderMap, HeaderName, HeaderValue};

use crate::policy::Deadlines;

/// The default name of the idle deadline header.
pub const IDLE_DEADLINE_HEADER: &str = "session-idle-expires";
/// The default name of the absolute deadline header.
pub const ABSOLUTE_DEADLINE_HEADER: &str = "session-expires";

/// Which headers carry a session's deadlines on the responses of admitted
/// requests; see
/// [`SessionLifetimeLayer::with_deadline_headers`](crate::SessionLifetimeLayer::with_deadline_headers).
///
/// - `Session-Idle-Expires`: the idle deadline as enforced (the stored
///   activity plus the idle timeout or remember-me period);
/// - `Session-Expires`: the absolute deadline, left out when there is none.
///
/// Both are Unix seconds, rounded down: a script that acts at that second
/// is never late. A response whose request ended its session (a logout)
/// carries neither; a login's response carries the new session's. With a
/// [followed cookie](crate::SessionLifetimeLayer::follow_tower_sessions), a
/// response on which the other layer starts, renews or ends the session
/// carries neither; the next request's response does.
///
/// A same-origin script reads them from any `fetch` response. For a
/// script on another origin (behind CORS), either list them in your CORS
/// layer's exposed headers or call
/// [`expose_to_cross_origin_scripts`](DeadlineHeaders::expose_to_cross_origin_scripts).
///
/// ```
/// use http::HeaderName;
/// use tower_session_lifetime::deadline_headers::DeadlineHeaders;
///
/// let headers = DeadlineHeaders::new()
///     .names(HeaderName::from_static("x-idle-deadline"), HeaderName::from_static("x-deadline"))?
///     .expose_to_cross_origin_scripts();
/// assert_eq!(headers.idle_name(), "x-idle-deadline");
/// # Ok::<(), tower_session_lifetime::deadline_headers::SameHeaderNameError>(())
/// ```
#[derive(Clone, Debug)]
pub struct DeadlineHeaders {
    idle: HeaderName,
    absolute: HeaderName,
    /// `Access-Control-Expose-Headers` naming both, when asked for.
    expose: Option<HeaderValue>,
}

impl Default for DeadlineHeaders {
    fn default() -> Self {
        DeadlineHeaders::new()
    }
}

impl DeadlineHeaders {
    /// `Session-Idle-Expires` and `Session-Expires`, not exposed to
    /// cross-origin scripts.
    pub fn new() -> Self {
        DeadlineHeaders {
            idle: HeaderName::from_static(IDLE_DEADLINE_HEADER),
            absolute: HeaderName::from_static(ABSOLUTE_DEADLINE_HEADER),
            expose: None,
        }
    }

    /// Other names for the idle and the absolute deadline headers; one name
    /// for both is an error.
    ///
    /// ```
    /// use http::HeaderName;
    /// use tower_session_lifetime::deadline_headers::DeadlineHeaders;
    ///
    /// let name = HeaderName::from_static("x-deadline");
    /// assert!(DeadlineHeaders::new().names(name.clone(), name).is_err());
    /// ```
    pub fn names(
        mut self,
        idle: HeaderName,
        absolute: HeaderName,
    ) -> Result<Self, SameHeaderNameError> {
        if idle == absolute {
            return Err(SameHeaderNameError { name: idle });
        }
        let expose = self.expose.is_some();
        self.idle = idle;
        self.absolute = absolute;
        self.expose = None;
        Ok(if expose {
            self.expose_to_cross_origin_scripts()
        } else {
            self
        })
    }

    /// Also appends `Access-Control-Expose-Headers` naming both headers, so
    /// that a script on another origin allowed by CORS can read them.
    pub fn expose_to_cross_origin_scripts(mut self) -> Self {
        let names = format!("{}, {}", self.idle, self.absolute);
        self.expose =
            Some(HeaderValue::try_from(names).expect("header names are valid header values"));
        self
    }

    /// The idle deadline header's name.
    pub fn idle_name(&self) -> &HeaderName {
        &self.idle
    }

    /// The absolute deadline header's name.
    pub fn absolute_name(&self) -> &HeaderName {
        &self.absolute
    }

    /// Writes `deadlines` into `headers`, replacing what was there under
    /// these names.
    pub(crate) fn write(&self, deadlines: &Deadlines, headers: &mut HeaderMap) {
        headers.insert(
            self.idle.clone(),
            HeaderValue::from(deadlines.idle.as_unix_secs()),
        );
        match deadlines.absolute {
            Some(absolute) => {
                headers.insert(
                    self.absolute.clone(),
                    HeaderValue::from(absolute.as_unix_secs()),
                );
            }
            None => {
                headers.remove(&self.absolute);
            }
        }
        if let Some(expose) = &self.expose {
            headers.append(ACCESS_CONTROL_EXPOSE_HEADERS, expose.clone());
        }
    }
}

/// [`DeadlineHeaders::names`] was given one name for both deadlines.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SameHeaderNameError {
    name: HeaderName,
}

impl fmt::Display for SameHeaderNameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "the idle and the absolute deadline headers are both named {:?}",
            self.name.as_str()
        )
    }
}

impl std::error::Error for SameHeaderNameError {}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::Timestamp;

    #[test]
    fn writes_unix_seconds_rounded_down_and_leaves_out_a_missing_absolute_deadline() {
        let mut headers = HeaderMap::new();
        headers.insert(ABSOLUTE_DEADLINE_HEADER, HeaderValue::from_static("stale"));
        let deadlines = Deadlines {
            idle: Timestamp::from_unix_millis(1_700_000_000_999),
            absolute: None,
        };
        DeadlineHeaders::new().write(&deadlines, &mut headers);
        assert_eq!(headers[IDLE_DEADLINE_HEADER], "1700000000");
        assert!(headers.get(ABSOLUTE_DEADLINE_HEADER).is_none());
        assert!(headers.get(ACCESS_CONTROL_EXPOSE_HEADERS).is_none());

        let deadlines = Deadlines {
            absolute: Some(Timestamp::from_unix_millis(1_700_003_600_000)),
            ..deadlines
        };
        DeadlineHeaders::new()
            .expose_to_cross_origin_scripts()
            .names(
                HeaderName::from_static("x-idle"),
                HeaderName::from_static("x-max"),
            )
            .unwrap()
            .write(&deadlines, &mut headers);
        assert_eq!(headers["x-idle"], "1700000000");
        assert_eq!(headers["x-max"], "1700003600");
        assert_eq!(headers[ACCESS_CONTROL_EXPOSE_HEADERS], "x-idle, x-max");
    }
}
