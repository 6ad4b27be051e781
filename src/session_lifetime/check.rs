//! The store half of a request: load, judge, then delete or touch.

use std::sync::Arc;

use http::{header::LOCATION, Request, Response, StatusCode};

use super::Config;
use crate::handle::{ActiveSession, SessionHandle};
use crate::id::{SessionId, SessionKey};
use crate::policy::{judge, Verdict};
use crate::record::SessionRecord;
use crate::rejection::{OnInvalidSession, OnStoreError, RejectReason, RejectionResponse};
use crate::store::{StoreError, TouchOutcome};

/// What the store said about a session cookie.
pub(crate) enum Checked {
    Admitted {
        session: ActiveSession,
        touched: bool,
    },
    Refused(RejectReason),
    /// The store could not say; `key` is the session the cookie named.
    StoreFailed {
        error: StoreError,
        key: SessionKey,
    },
}

/// How often a request judged expired reloads a session that concurrent
/// requests keep touching before it gives up and refuses.
const STALE_RELOADS: usize = 2;

/// Judges a record the store gave at once. `Err` gives the record back
/// when a touch or a delete is due, so the request needs [`check`].
pub(crate) fn check_without_writes(
    config: &Config,
    id: &SessionId,
    key: SessionKey,
    loaded: Result<Option<SessionRecord>, StoreError>,
) -> Result<Checked, SessionRecord> {
    let record = match loaded {
        Ok(Some(record)) => record,
        Ok(None) => return Ok(Checked::Refused(RejectReason::Unknown)),
        Err(error) => return Ok(Checked::StoreFailed { error, key }),
    };
    match judge(&config.policy, &record, config.clock.now()) {
        Verdict::Admitted(admission) if !admission.touch => Ok(Checked::Admitted {
            session: ActiveSession {
                id: id.clone(),
                key,
                record,
                deadlines: admission.deadlines,
            },
            touched: false,
        }),
        _ => Err(record),
    }
}

/// Loads (unless `loaded` is given) and judges the session `id`; deletes it
/// if it has expired, writes its activity if the throttle says so.
pub(crate) async fn check(
    config: Arc<Config>,
    id: SessionId,
    key: SessionKey,
    mut loaded: Option<SessionRecord>,
) -> Checked {
    let mut reloads = 0;
    let (mut record, now, admission) = loop {
        let record = match loaded.take() {
            Some(record) => record,
            None => match config.store.load(&key).await {
                Ok(Some(record)) => record,
                Ok(None) => return Checked::Refused(RejectReason::Unknown),
                Err(error) => return Checked::StoreFailed { error, key },
            },
        };
        let now = config.clock.now();
        match judge(&config.policy, &record, now) {
            Verdict::Admitted(admission) => break (record, now, admission),
            Verdict::Expired(reason) => {
                // Delete only what was judged: a request that touched the
                // session since it was loaded may have kept it alive.
                match config.store.delete_stale(&key, record.last_activity).await {
                    Ok(false) if reloads < STALE_RELOADS => reloads += 1,
                    Ok(_) => return Checked::Refused(reason.into()),
                    Err(err) => {
                        tracing::warn!(error = %err, "could not delete an expired session");
                        return Checked::Refused(reason.into());
                    }
                }
            }
        }
    };
    if admission.touch {
        match config
            .store
            .touch(&key, now, admission.deadlines.nearest())
            .await
        {
            Ok(TouchOutcome::Missing) => return Checked::Refused(RejectReason::Unknown),
            Ok(TouchOutcome::Touched | TouchOutcome::AlreadyRecent) => {
                record.last_activity = record.last_activity.max(now);
            }
            Err(error) => return Checked::StoreFailed { error, key },
        }
    }
    Checked::Admitted {
        session: ActiveSession {
            id,
            key,
            record,
            deadlines: admission.deadlines,
        },
        touched: admission.touch,
    }
}

/// What happens next to a request: the inner service, or an answer now.
pub(crate) enum Next<ReqBody, ResBody> {
    Call(Request<ReqBody>, Finish),
    Respond(Response<ResBody>),
}

/// What the response needs once the inner service has answered.
pub(crate) struct Finish {
    handle: SessionHandle,
    rejected: Option<RejectReason>,
}

impl Finish {
    pub(crate) fn apply<B>(self, response: &mut Response<B>) {
        self.handle.write_cookie(response.headers_mut());
        if let Some(reason) = self.rejected {
            response.extensions_mut().insert(reason);
        }
    }
}

/// Lets the request in with `handle` in its extensions.
pub(crate) fn call_with<ReqBody, ResBody>(
    mut request: Request<ReqBody>,
    handle: SessionHandle,
    rejected: Option<RejectReason>,
) -> Next<ReqBody, ResBody> {
    request.extensions_mut().insert(handle.clone());
    if let Some(reason) = rejected {
        request.extensions_mut().insert(reason);
    }
    Next::Call(request, Finish { handle, rejected })
}

/// Decides what a request gets after its session was checked.
pub(crate) fn after_check<ReqBody, ResBody, R>(
    config: &Arc<Config>,
    responder: &R,
    request: Request<ReqBody>,
    checked: Checked,
) -> Next<ReqBody, ResBody>
where
    ResBody: Default,
    R: RejectionResponse<ResBody>,
{
    match checked {
        Checked::Admitted { session, touched } => {
            let handle = SessionHandle::admitted(Arc::clone(config), session, touched);
            call_with(request, handle, None)
        }
        Checked::Refused(reason) => refuse(config, responder, request, reason),
        Checked::StoreFailed { error, key } => {
            tracing::warn!(error = %error, "session store failed; session not confirmed");
            match config.on_store_error {
                OnStoreError::PassThroughAsVisitor => {
                    let mut request = request;
                    config.cookie.strip(request.headers_mut());
                    let reason = Some(RejectReason::StoreUnavailable);
                    // A login or logout on this request still ends the
                    // session the cookie named, once the store is back.
                    let handle =
                        SessionHandle::visitor(Arc::clone(config), reason, false, Some(key));
                    call_with(request, handle, reason)
                }
                _ => {
                    let mut response = responder.respond(RejectReason::StoreUnavailable);
                    response
                        .extensions_mut()
                        .insert(RejectReason::StoreUnavailable);
                    Next::Respond(response)
                }
            }
        }
    }
}

/// A session cookie that must not be admitted: clear it, then reject,
/// redirect or pass through as configured.
pub(crate) fn refuse<ReqBody, ResBody, R>(
    config: &Arc<Config>,
    responder: &R,
    mut request: Request<ReqBody>,
    reason: RejectReason,
) -> Next<ReqBody, ResBody>
where
    ResBody: Default,
    R: RejectionResponse<ResBody>,
{
    tracing::info!(reason = reason.as_str(), "session not admitted");
    let mut response = match &config.on_invalid {
        OnInvalidSession::PassThrough => {
            config.cookie.strip(request.headers_mut());
            let handle = SessionHandle::visitor(Arc::clone(config), Some(reason), true, None);
            return call_with(request, handle, Some(reason));
        }
        OnInvalidSession::Redirect(location) => {
            let mut response = Response::new(ResBody::default());
            *response.status_mut() = StatusCode::SEE_OTHER;
            response.headers_mut().insert(LOCATION, location.clone());
            response
        }
        OnInvalidSession::Reject => responder.respond(reason),
    };
    config.cookie.append_removal(response.headers_mut());
    response.extensions_mut().insert(reason);
    Next::Respond(response)
}
