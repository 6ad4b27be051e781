//! What the layer tells the outside: `tracing` events when a session
//! starts, is renewed or ends (with why), and counters an app can read or
//! export ([`SessionMetrics`]).
//!
//! Every event names the session by [`SessionKey::short`](crate::id::SessionKey::short)
//! (`session=3fa1…`, 12 hex digits of a hash of the ID), never by its ID,
//! under the target `tower_session_lifetime`:
//!
//! | event | level | fields |
//! | --- | --- | --- |
//! | `session started` | info | `session` |
//! | `session renewed` | info | `session` (the old), `renewed_to` |
//! | `session ended` | info | `session`, `reason` ([`EndReason::as_str`]): `idle`, `absolute`, `logout`, `logout_everywhere`, `limit`, `revoked`, `replaced` |
//!
//! A request whose session is not admitted gets a `session not admitted`
//! event with its [`RejectReason`](crate::rejection::RejectReason) (no session name:
//! the cookie may be a guess); store failures are `warn` events.
//!
//! ```
//! use tower_session_lifetime::{MemoryStore, SessionLifetimeLayer, observe::SessionMetrics};
//!
//! let metrics = SessionMetrics::new();
//! let layer = SessionLifetimeLayer::new(MemoryStore::new()).with_metrics(metrics.clone());
//! // …serve; then, from a health or metrics endpoint:
//! let now = metrics.snapshot();
//! assert_eq!(now.admitted, 0);
//! # let _ = layer;
//! ```

mod instrumented;
mod metrics;

use std::fmt;

pub(crate) use instrumented::InstrumentedStore;
pub use metrics::{MetricsSnapshot, SessionMetrics};

use crate::id::SessionKey;

/// Why a session ended, in events and [metrics](SessionMetrics).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum EndReason {
    /// Its idle deadline passed.
    Idle,
    /// Its absolute deadline passed.
    Absolute,
    /// Its user logged out.
    Logout,
    /// Its user logged out everywhere (every session of the subject).
    LogoutEverywhere,
    /// A login of the same subject went over the
    /// [session limit](crate::policy::PolicyBuilder::max_sessions_per_subject) and
    /// ended it, the oldest.
    Limit,
    /// Its user ended it from another session
    /// ([`SessionHandle::end_session`](crate::SessionHandle::end_session)).
    Revoked,
    /// A new login in the same browser replaced it.
    Replaced,
    /// With a followed cookie: a login on which the other layer kept the
    /// pre-login ID, and the layer could not give the session a new one
    /// (it has no [data store](crate::SessionLifetimeLayer::follow_tower_sessions)
    /// to move the session's data with), so the session ended rather than
    /// keep an ID from before the login.
    LoginKeptId,
}

impl EndReason {
    /// Every reason, in the order of [`MetricsSnapshot::ended`].
    pub const ALL: [EndReason; 8] = [
        EndReason::Idle,
        EndReason::Absolute,
        EndReason::Logout,
        EndReason::LogoutEverywhere,
        EndReason::Limit,
        EndReason::Revoked,
        EndReason::Replaced,
        EndReason::LoginKeptId,
    ];

    /// A short stable name: `idle`, `absolute`, `logout`,
    /// `logout_everywhere`, `limit`, `revoked`, `replaced`,
    /// `login_kept_id`.
    pub fn as_str(&self) -> &'static str {
        match self {
            EndReason::Idle => "idle",
            EndReason::Absolute => "absolute",
            EndReason::Logout => "logout",
            EndReason::LogoutEverywhere => "logout_everywhere",
            EndReason::Limit => "limit",
            EndReason::Revoked => "revoked",
            EndReason::Replaced => "replaced",
            EndReason::LoginKeptId => "login_kept_id",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for EndReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl From<crate::policy::ExpiryReason> for EndReason {
    fn from(reason: crate::policy::ExpiryReason) -> Self {
        match reason {
            crate::policy::ExpiryReason::Idle => EndReason::Idle,
            crate::policy::ExpiryReason::Absolute => EndReason::Absolute,
        }
    }
}

const TARGET: &str = "tower_session_lifetime";

/// A session started under `key`.
pub(crate) fn started(metrics: Option<&SessionMetrics>, key: &SessionKey) {
    tracing::info!(target: TARGET, session = %key.short(), "session started");
    if let Some(metrics) = metrics {
        metrics.started();
    }
}

/// The session under `old` moved to `new`.
pub(crate) fn renewed(metrics: Option<&SessionMetrics>, old: &SessionKey, new: &SessionKey) {
    tracing::info!(
        target: TARGET,
        session = %old.short(),
        renewed_to = %new.short(),
        "session renewed"
    );
    if let Some(metrics) = metrics {
        metrics.renewed();
    }
}

/// The session under `key` ended.
pub(crate) fn ended(metrics: Option<&SessionMetrics>, key: &SessionKey, reason: EndReason) {
    tracing::info!(
        target: TARGET,
        session = %key.short(),
        reason = reason.as_str(),
        "session ended"
    );
    if let Some(metrics) = metrics {
        metrics.ended(reason, 1);
    }
}

/// `count` sessions of one subject ended at once: an event for each of
/// `keys` (the sessions listed just before), counted as `count` (what the
/// store ended).
pub(crate) fn ended_many(
    metrics: Option<&SessionMetrics>,
    keys: &[SessionKey],
    count: u64,
    reason: EndReason,
) {
    for key in keys {
        tracing::info!(
            target: TARGET,
            session = %key.short(),
            reason = reason.as_str(),
            "session ended"
        );
    }
    if let Some(metrics) = metrics {
        metrics.ended(reason, count);
    }
}

/// A request's session was admitted.
pub(crate) fn admitted(metrics: Option<&SessionMetrics>) {
    if let Some(metrics) = metrics {
        metrics.admitted();
    }
}
