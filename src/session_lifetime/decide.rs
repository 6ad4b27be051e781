//! What a request gets once its session cookie is read and checked: the
//! inner service (with a handle), or an answer from the layer.

use std::sync::Arc;

use http::header::RETRY_AFTER;
use http::{HeaderValue, Request, Response};

use super::check::Checked;
use super::context::RequestContext;
use super::finish::{call_with, Entry, Next};
use crate::config::Config;
use crate::handle::SessionHandle;
use crate::id::SessionId;
use crate::observe;
use crate::rejection::{
    see_other, OnInvalidSession, OnStoreError, RejectReason, RejectionResponse,
};

/// Decides what a request gets after its session was checked.
pub(crate) fn after_check<ReqBody, ResBody, R>(
    context: RequestContext<'_, R>,
    request: &mut Request<ReqBody>,
    checked: Checked,
) -> Next<ResBody, R>
where
    ResBody: Default,
    R: RejectionResponse<ResBody>,
{
    let config = context.config;
    match checked {
        Checked::Admitted {
            session,
            touched,
            renewed,
        } => {
            observe::admitted(config.metrics.as_ref());
            let followed_id = config.followed.then(|| session.id.clone());
            let handle = SessionHandle::admitted(
                Arc::clone(config),
                context.choice,
                session,
                touched,
                renewed,
            );
            call_with(context, request, handle, Entry::Admitted { followed_id })
        }
        Checked::Refused { reason, id } => refuse(context, request, reason, Some(id)),
        Checked::StoreFailed { error, id } => {
            tracing::warn!(error = %error, "session store failed; session not confirmed");
            if config.on_store_error != OnStoreError::PassThroughAsVisitor {
                let reason = RejectReason::StoreUnavailable;
                let mut response = context.responder.respond(reason);
                response.extensions_mut().insert(reason);
                return Next::Respond(response);
            }
            config.cookie.strip(request.headers_mut());
            let reason = RejectReason::StoreUnavailable;
            // A login or logout on this request still ends the session the
            // cookie named, once the store is back.
            let handle = SessionHandle::visitor(
                Arc::clone(config),
                context.choice,
                Some(reason),
                false,
                Some(id.clone()),
            );
            let entry = Entry::NotAdmitted {
                reason,
                presented: Some(id),
            };
            call_with(context, request, handle, entry)
        }
    }
}

/// `429 Too Many Requests` if the request's client presented too many
/// unknown or forged session IDs lately; `None` to go on.
pub(crate) fn too_many_guesses<ReqBody, ResBody, R>(
    context: RequestContext<'_, R>,
    request: &Request<ReqBody>,
) -> Option<Response<ResBody>>
where
    R: RejectionResponse<ResBody>,
{
    let config = context.config;
    let guesses = config.guesses.as_ref()?;
    let client = guesses.client(request.headers(), request.extensions())?;
    let wait = guesses.blocked_for(&client, config.clock.now())?;
    tracing::debug!(%client, "session cookie refused: too many guesses");
    let reason = RejectReason::TooManyGuesses;
    let mut response = context.responder.respond(reason);
    let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    response
        .headers_mut()
        .insert(RETRY_AFTER, HeaderValue::from(seconds));
    response.extensions_mut().insert(reason);
    Some(response)
}

/// Counts a refused cookie against its client when it looks like a guess:
/// an ID the store does not have, a forged or malformed one.
pub(crate) fn count_guess<ReqBody>(
    config: &Config,
    request: &Request<ReqBody>,
    reason: RejectReason,
) {
    let guess = matches!(
        reason,
        RejectReason::Unknown | RejectReason::Forged | RejectReason::Malformed
    );
    if let (true, Some(guesses)) = (guess, &config.guesses) {
        if let Some(client) = guesses.client(request.headers(), request.extensions()) {
            guesses.record_failure(client, config.clock.now());
        }
    }
}

/// A session cookie that must not be admitted: clear it, then reject,
/// redirect or pass through as configured. `presented` is the session it
/// named, if it named one.
pub(crate) fn refuse<ReqBody, ResBody, R>(
    context: RequestContext<'_, R>,
    request: &mut Request<ReqBody>,
    reason: RejectReason,
    presented: Option<SessionId>,
) -> Next<ResBody, R>
where
    ResBody: Default,
    R: RejectionResponse<ResBody>,
{
    let config = context.config;
    tracing::info!(reason = reason.as_str(), "session not admitted");
    count_guess(config, request, reason);
    let mut response = match &config.on_invalid {
        OnInvalidSession::PassThrough => {
            config.cookie.strip(request.headers_mut());
            let handle = SessionHandle::visitor(
                Arc::clone(config),
                context.choice,
                Some(reason),
                true,
                None,
            );
            let entry = Entry::NotAdmitted { reason, presented };
            return call_with(context, request, handle, entry);
        }
        OnInvalidSession::Redirect(location) => see_other(location.clone()),
        OnInvalidSession::Reject => context.responder.respond(reason),
    };
    config.cookie.append_removal(response.headers_mut());
    response.extensions_mut().insert(reason);
    Next::Respond(response)
}
