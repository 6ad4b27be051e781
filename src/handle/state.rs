//! The state a request's [`SessionHandle`](super::SessionHandle) shares
//! between the handler and the layer: the session as the request knows it,
//! and what the response's cookie needs.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::id::{SessionId, SessionKey};
use crate::policy::{Deadlines, Policy, PolicyChoice};
use crate::record::SessionRecord;
use crate::rejection::RejectReason;
use crate::time::Timestamp;

/// What a request's handle shares between the handler and the layer.
pub(super) struct HandleInner {
    /// The policies of the request's tenant and route group.
    pub(super) choice: PolicyChoice,
    pub(super) state: Mutex<HandleState>,
}

/// What the request did to its session so far.
pub(super) struct HandleState {
    pub(super) session: Option<ActiveSession>,
    pub(super) cookie: CookieChange,
    pub(super) rejected: Option<RejectReason>,
    /// The session a cookie named that the store could not confirm (it was
    /// down): login and logout end it too.
    pub(super) unconfirmed: Option<SessionId>,
    /// With a followed cookie: the session the inner layer is to start in
    /// this request.
    pub(super) pending: Option<PendingSession>,
    /// Whether the request came with a live session that has a subject (a
    /// login through the handle named it).
    pub(super) signed_in: bool,
}

/// What a handler asked for the session that another layer starts (a
/// followed cookie): its subject and remember-me, and whether the request
/// is a login (so the inner layer must give it a new ID).
#[derive(Clone, Debug, Default)]
pub(crate) struct PendingSession {
    pub(crate) subject: Option<Arc<str>>,
    pub(crate) remember_me: bool,
    pub(crate) login: bool,
    pub(crate) label: Option<Arc<str>>,
}

/// An admitted (or just started) session.
pub(crate) struct ActiveSession {
    pub(crate) id: SessionId,
    pub(crate) key: SessionKey,
    pub(crate) record: SessionRecord,
    pub(crate) deadlines: Deadlines,
    /// Admitted on an ID that a renewal replaced, within its grace period:
    /// the browser holds the new ID already, so this request's cookie is
    /// left alone.
    pub(crate) in_grace: bool,
    /// When the layer admitted the request (or the login started the
    /// session): the request's activity, whenever its response leaves.
    pub(crate) admitted_at: Timestamp,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
/// What the response's cookie needs.
pub(super) enum CookieChange {
    Keep,
    Write,
    Clear,
}

impl HandleState {
    /// The state of no request: what a reused handle is emptied to.
    #[cfg(test)]
    pub(super) const EMPTY: HandleState = HandleState {
        session: None,
        cookie: CookieChange::Keep,
        rejected: None,
        unconfirmed: None,
        pending: None,
        signed_in: false,
    };

    /// Empties this state, a field at a time: each field writes only its
    /// own empty value, where assigning a whole empty state copies all of
    /// its bytes (a spare is emptied on every request). Naming every field
    /// makes a new one a compile error here until it is emptied too.
    pub(super) fn empty(&mut self) {
        let HandleState {
            session,
            cookie,
            rejected,
            unconfirmed,
            pending,
            signed_in,
        } = self;
        *session = None;
        *cookie = CookieChange::Keep;
        *rejected = None;
        *unconfirmed = None;
        *pending = None;
        *signed_in = false;
    }
}

impl ActiveSession {
    /// The `Max-Age` of the session's cookie at `now`: up to its nearest
    /// deadline under the tenant's policy `base` for a remember-me session
    /// (a route group's tighter deadline must not drop the cookie for the
    /// rest of the app), none (a browser-session cookie) otherwise.
    pub(crate) fn cookie_max_age(&self, now: Timestamp, base: &Policy) -> Option<Duration> {
        self.record.remember_me.then(|| {
            base.expiry(&self.record, self.record.last_activity)
                .saturating_duration_since(now)
        })
    }
}
