//! The way out: what a request's response needs once the inner service has
//! answered.

use std::sync::Arc;

use http::{Request, Response};

use super::context::RequestContext;
use super::follow::{self, CookieEdit, Settle};
use crate::config::Config;
use crate::handle::SessionHandle;
use crate::id::{IdText, SessionId};
use crate::rejection::{OnStoreError, RejectReason, RejectionResponse};

/// What happens next to a request: the inner service, or an answer now.
/// The request itself stays with the caller, which moves it once, into the
/// inner service (a request is a few hundred bytes: every move is a copy).
pub(crate) enum Next<ResBody, R> {
    Call(Finish<R>),
    Respond(Response<ResBody>),
}

/// What the response needs once the inner service has answered.
pub(crate) struct Finish<R> {
    handle: SessionHandle,
    rejected: Option<RejectReason>,
    /// Set when another layer issues the cookie.
    followed: Option<Followed<R>>,
}

/// A followed cookie's request: the session its cookie named (and whether
/// it was admitted, and then how the cookie spelled it), and how to answer
/// if the store fails on the way out.
struct Followed<R> {
    config: Arc<Config>,
    presented: Option<SessionId>,
    admitted: bool,
    admitted_text: Option<IdText>,
    responder: R,
}

impl<R> Finish<R> {
    /// What the response's cookies need: at once, or after the store has
    /// started or ended a session that the inner layer started or ended.
    pub(crate) fn settle<B>(&self, response: &Response<B>) -> Settle {
        match &self.followed {
            None => Settle::Now(CookieEdit::FromHandle),
            Some(followed) => follow::settle(
                &followed.config,
                &self.handle,
                followed.presented.as_ref(),
                followed.admitted,
                followed.admitted_text.as_ref(),
                response.headers(),
            ),
        }
    }

    /// Writes the cookie change onto `response`.
    pub(crate) fn apply<B>(self, edit: CookieEdit, response: &mut Response<B>)
    where
        R: RejectionResponse<B>,
    {
        // With a followed cookie, a response on which the inner layer starts,
        // renews or ends a session has no deadlines to report yet: the
        // handle knows only the session the request came with.
        let same_session = matches!(edit, CookieEdit::FromHandle | CookieEdit::Drop { .. });
        match (edit, &self.followed) {
            (CookieEdit::FromHandle, _) => self.handle.write_cookie(response.headers_mut()),
            (edit, Some(followed)) => {
                if let CookieEdit::StoreFailed | CookieEdit::StoreFailedKeptId = edit {
                    // The handler has run and what it did stays done; the
                    // browser loses the cookie of a session whose lifetime
                    // could not be written, and the answer is the one a
                    // store failure gets.
                    if followed.config.on_store_error != OnStoreError::PassThroughAsVisitor {
                        *response = followed.responder.respond(RejectReason::StoreUnavailable);
                    }
                    response
                        .extensions_mut()
                        .insert(RejectReason::StoreUnavailable);
                }
                follow::edit_cookies(&followed.config, edit, response.headers_mut());
            }
            // Only a followed cookie gives other edits.
            (_, None) => self.handle.write_cookie(response.headers_mut()),
        }
        if same_session {
            self.handle.write_deadline_headers(response.headers_mut());
        }
        if let Some(reason) = self.rejected {
            response.extensions_mut().insert(reason);
        }
        self.handle.finished();
    }
}

/// How a request goes on to the inner service.
pub(crate) enum Entry {
    /// Without a session cookie.
    Visitor,
    /// With the session its cookie named, admitted. `followed_id` is that
    /// session's ID when another layer issues the cookie, else `None`.
    Admitted { followed_id: Option<SessionId> },
    /// As a visitor, with a cookie the layer did not admit for `reason`;
    /// `presented` is the session the cookie named, if it named one.
    NotAdmitted {
        reason: RejectReason,
        presented: Option<SessionId>,
    },
}

/// Lets the request in with `handle` in its extensions, as `entry` says.
pub(crate) fn call_with<ReqBody, ResBody, R: Clone>(
    context: RequestContext<'_, R>,
    request: &mut Request<ReqBody>,
    handle: SessionHandle,
    entry: Entry,
) -> Next<ResBody, R> {
    request.extensions_mut().insert(handle.clone());
    let (rejected, presented, admitted) = match entry {
        Entry::Visitor => (None, None, false),
        Entry::Admitted { followed_id } => (None, followed_id, true),
        Entry::NotAdmitted { reason, presented } => (Some(reason), presented, false),
    };
    if let Some(reason) = rejected {
        request.extensions_mut().insert(reason);
    }
    let config = context.config;
    let followed = config.followed.then(|| Followed {
        config: Arc::clone(config),
        presented,
        admitted,
        admitted_text: context.presented_text.copied().filter(|_| admitted),
        responder: context.responder.clone(),
    });
    Next::Call(Finish {
        handle,
        rejected,
        followed,
    })
}
