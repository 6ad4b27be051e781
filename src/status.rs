//! A status request the layer answers itself: the session's deadlines,
//! without counting as activity.
//!
//! A page that warns "your session is about to expire" must learn the real
//! idle deadline without extending it, or the check would keep the session
//! alive forever. So the layer answers a configured path itself, before the
//! inner service:
//!
//! - `GET` (and `HEAD`) report the deadlines **without** touching the
//!   session: no activity, no renewal, no `Set-Cookie`;
//! - `POST` counts as activity (the dialog's **Continue**), even within the
//!   [touch granularity](crate::Policy::touch_granularity), then reports
//!   the moved deadlines; a `POST` that a browser marks as sent from
//!   another site (`Sec-Fetch-Site: cross-site` or `same-site`) is refused
//!   with `403`, so no other page can keep a user's session alive;
//! - `OPTIONS` goes to the inner service (a CORS layer inside answers
//!   preflights); anything else is `405 Method Not Allowed`.
//!
//! A live session answers `200` with JSON, `Cache-Control: no-store`:
//!
//! ```text
//! {"idle_expires_at":1764600900,"expires_at":1764628800,"remember_me":false,"now":1764600000}
//! ```
//!
//! (Unix seconds, rounded down; `expires_at` is `null` without an absolute
//! timeout; `now` is the server's clock, so a script can allow for its own.)
//! A missing, expired, unknown or unusable session is refused with what
//! the layer's responder builds for its [`RejectReason`](crate::rejection::RejectReason) (by default `401`,
//! whatever [`OnInvalidSession`](crate::OnInvalidSession) says for other
//! paths: a script wants a status, not a redirect), with the stale cookie
//! cleared and an expired session deleted; a store failure with `503`, and
//! a client over its [guessing limit](crate::SessionLifetimeLayer::with_guess_limit)
//! with `429`.
//!
//! With a [followed cookie](crate::SessionLifetimeLayer::follow_tower_sessions)
//! the inner session layer never sees a status request: a `POST` moves the
//! lifetime, not an expiry that tower-sessions keeps of its own (leave that
//! off; the layer owns the lifetimes).
//!
//! ```
//! use axum::{routing::get, Router};
//! use tower_session_lifetime::{MemoryStore, SessionLifetimeLayer, status::StatusEndpoint};
//!
//! let app: Router = Router::new()
//!     .route("/", get(|| async { "hello" }))
//!     .layer(SessionLifetimeLayer::new(MemoryStore::new()).with_status_endpoint(StatusEndpoint::at("/session/status")?));
//! # let _ = app;
//! # Ok::<(), tower_session_lifetime::status::StatusEndpointError>(())
//! ```

use std::borrow::Cow;
use std::fmt;

use crate::policy::Deadlines;
use crate::time::Timestamp;

/// Where the layer answers status requests; see the [module](self) docs and
/// [`SessionLifetimeLayer::with_status_endpoint`](crate::SessionLifetimeLayer::with_status_endpoint).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StatusEndpoint {
    path: Cow<'static, str>,
}

impl StatusEndpoint {
    /// The endpoint at `path`, an absolute path (`/session/status`) matched
    /// exactly against the request's path. A path that no request could
    /// have (not starting with `/`, with a query, a fragment, whitespace or
    /// a non-ASCII character) is an error naming it.
    ///
    /// ```
    /// use tower_session_lifetime::status::StatusEndpoint;
    ///
    /// assert_eq!(StatusEndpoint::at("/session/status")?.path(), "/session/status");
    /// assert!(StatusEndpoint::at("session/status").is_err());
    /// assert!(StatusEndpoint::at("/status?x=1").is_err());
    /// # Ok::<(), tower_session_lifetime::status::StatusEndpointError>(())
    /// ```
    pub fn at(path: impl Into<Cow<'static, str>>) -> Result<Self, StatusEndpointError> {
        let path = path.into();
        let why = if !path.starts_with('/') {
            Some("does not start with `/`")
        } else if !path.bytes().all(|byte| byte.is_ascii_graphic()) {
            Some("contains whitespace, a control character or a non-ASCII character")
        } else if path.contains(['?', '#']) {
            Some("has a query or a fragment")
        } else {
            None
        };
        match why {
            Some(why) => Err(StatusEndpointError {
                path: path.into_owned(),
                why,
            }),
            None => Ok(StatusEndpoint { path }),
        }
    }

    /// The path it answers.
    pub fn path(&self) -> &str {
        &self.path
    }
}

/// A status endpoint path that no request could have.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StatusEndpointError {
    path: String,
    why: &'static str,
}

impl fmt::Display for StatusEndpointError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "status endpoint path {:?} {}", self.path, self.why)
    }
}

impl std::error::Error for StatusEndpointError {}

/// What a status request reports of a live session.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct SessionStatus {
    /// The deadlines as enforced. For a `GET`, counted from the stored
    /// activity (the status request itself is not activity).
    pub deadlines: Deadlines,
    /// Whether it is a remember-me session.
    pub remember_me: bool,
    /// The server's clock when the request was judged.
    pub now: Timestamp,
}

impl SessionStatus {
    /// The status of a session with `deadlines` at `now`.
    pub fn new(deadlines: Deadlines, remember_me: bool, now: Timestamp) -> Self {
        SessionStatus {
            deadlines,
            remember_me,
            now,
        }
    }

    /// The JSON the layer answers with (Unix seconds, rounded down).
    ///
    /// ```
    /// use tower_session_lifetime::{policy::Deadlines, status::SessionStatus, time::Timestamp};
    ///
    /// let deadlines = Deadlines::new(Timestamp::from_unix_millis(1_700_000_900_500), None);
    /// let status = SessionStatus::new(deadlines, false, Timestamp::from_unix_millis(1_700_000_000_000));
    /// assert_eq!(
    ///     status.to_json(),
    ///     r#"{"idle_expires_at":1700000900,"expires_at":null,"remember_me":false,"now":1700000000}"#
    /// );
    /// ```
    pub fn to_json(&self) -> String {
        let absolute = match self.deadlines.absolute {
            Some(absolute) => absolute.as_unix_secs().to_string(),
            None => "null".to_owned(),
        };
        format!(
            r#"{{"idle_expires_at":{},"expires_at":{},"remember_me":{},"now":{}}}"#,
            self.deadlines.idle.as_unix_secs(),
            absolute,
            self.remember_me,
            self.now.as_unix_secs(),
        )
    }
}
