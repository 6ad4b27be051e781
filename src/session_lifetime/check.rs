//! The store half of a request: load, judge, then delete or touch.

use std::future::Future;
use std::sync::Arc;

use http::header::RETRY_AFTER;
use http::{HeaderValue, Request, Response};
use tracing::Instrument as _;

use super::finish::{call_with, Next};
use super::future::CheckFuture;
use super::Config;
use crate::handle::{ActiveSession, SessionHandle};
use crate::id::{SessionId, SessionKey};
use crate::observe;
use crate::policy::{judge, Admission, Policy, PolicyChoice, Verdict};
use crate::record::SessionRecord;
use crate::rejection::{
    see_other, OnInvalidSession, OnStoreError, RejectReason, RejectionResponse,
};
use crate::store::{RenewOutcome, StoreError, StoreErrorKind, TouchOutcome};
use crate::time::Timestamp;

/// What the store said about a session cookie.
// Returned and matched at once on the fast path: boxing `Admitted` would
// allocate on every admitted request.
#[allow(clippy::large_enum_variant)]
pub(crate) enum Checked {
    Admitted {
        session: ActiveSession,
        touched: bool,
        /// The session moved to a new ID in this request: its cookie must
        /// be set.
        renewed: bool,
    },
    /// Not admitted; `id` is the session the cookie named.
    Refused { reason: RejectReason, id: SessionId },
    /// The store could not say; `id` is the session the cookie named.
    StoreFailed { error: StoreError, id: SessionId },
}

/// How often a request judged expired reloads a session that concurrent
/// requests keep touching before it gives up and refuses.
const STALE_RELOADS: usize = 2;

/// Whether a request counts as activity. Every request does but a status
/// `GET`, which must report the deadlines without moving them; a status
/// `POST` (the dialog's Continue) must move them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Activity {
    /// Touch the session when the throttle says so, renew its ID when due.
    Counts,
    /// Touch the session even within the touch granularity: the user asked
    /// for the deadline to move. Renew its ID when due.
    Forced,
    /// Write nothing to a live session.
    Ignored,
}

/// What [`check`] starts from: a load still to do, or what the store
/// already said.
pub(crate) enum Loaded {
    NotYet,
    /// Boxed: the slow path's record, kept off the fast path's stack.
    Record(Box<SessionRecord>),
    Missing,
}

/// Judges a record the store gave at once. `Err` means the request needs
/// [`check`], from what the store said: a touch or a delete is due, or an
/// unknown session's data is to be deleted.
fn check_without_writes(
    config: &Config,
    id: &SessionId,
    key: SessionKey,
    loaded: Result<Option<SessionRecord>, StoreError>,
    activity: Activity,
    choice: PolicyChoice,
) -> Result<Checked, Loaded> {
    let policy = config.policies.policy(choice);
    let record = match loaded {
        Ok(Some(record)) => record,
        Ok(None) if config.session_data.is_some() => return Err(Loaded::Missing),
        Ok(None) => {
            return Ok(Checked::Refused {
                reason: RejectReason::Unknown,
                id: id.clone(),
            })
        }
        Err(error) => {
            return Ok(Checked::StoreFailed {
                error,
                id: id.clone(),
            })
        }
    };
    if record.renewed_to.is_some() {
        return Err(Loaded::Record(Box::new(record)));
    }
    let now = config.clock.now();
    let deadlines = match judge(policy, &record, now) {
        Verdict::Admitted(_) if activity == Activity::Ignored => {
            policy.deadlines(&record, record.last_activity)
        }
        Verdict::Admitted(admission)
            if activity == Activity::Counts
                && !admission.touch
                && !renewal_due(config, &admission) =>
        {
            admission.deadlines
        }
        _ => return Err(Loaded::Record(Box::new(record))),
    };
    Ok(Checked::Admitted {
        session: ActiveSession {
            id: id.clone(),
            key,
            record,
            deadlines,
            in_grace: false,
            admitted_at: now,
        },
        touched: false,
        renewed: false,
    })
}

/// A session check as it starts: decided at once from what the store gave
/// synchronously, or to be finished by a future that loads and writes.
// Returned and matched at once; boxing `Done` would allocate on the fast
// path, which is the point of it.
#[allow(clippy::large_enum_variant)]
pub(crate) enum Started {
    Done(Checked),
    Pending(CheckFuture),
}

/// Starts checking the session `id`: at once when the store answers
/// synchronously and the request writes nothing, else in a future.
pub(crate) fn start_check(
    config: &Arc<Config>,
    id: SessionId,
    activity: Activity,
    choice: PolicyChoice,
) -> Started {
    let key = id.key();
    let mut loaded = Loaded::NotYet;
    if let Some(now) = config.store.try_load_now(&key) {
        match check_without_writes(config, &id, key, now, activity, choice) {
            Ok(checked) => return Started::Done(checked),
            Err(store_said) => loaded = store_said,
        }
    }
    Started::Pending(Box::pin(check(
        Arc::clone(config),
        id,
        key,
        loaded,
        activity,
        choice,
    )))
}

/// How many renewal pointers a request follows at most: a pointer lives for
/// the grace period, shorter than the renewal interval, so a live chain is
/// one long; the bound only stops a corrupt store from looping.
const MAX_POINTERS: usize = 2;

/// Whether the layer renews the ID of the session `admission` admits.
fn renewal_due(config: &Config, admission: &Admission) -> bool {
    admission.renew && !config.followed
}

/// Loads (unless it is `loaded` already) and judges the session `id`;
/// deletes it if it has expired; when the request is activity, writes its
/// activity if the throttle says so and renews its ID when due. An ID
/// replaced by a renewal is admitted as the session it moved to during the
/// grace period, and refused after.
///
/// Runs in a `session_check` span (target `tower_session_lifetime`, level
/// debug) that names the session by its short key, so that store calls and
/// the events of this request can be told apart.
fn check(
    config: Arc<Config>,
    id: SessionId,
    key: SessionKey,
    loaded: Loaded,
    activity: Activity,
    choice: PolicyChoice,
) -> impl Future<Output = Checked> + Send {
    let span = tracing::debug_span!(
        target: "tower_session_lifetime",
        "session_check",
        session = %key.short()
    );
    check_in_span(config, id, key, loaded, activity, choice).instrument(span)
}

async fn check_in_span(
    config: Arc<Config>,
    id: SessionId,
    mut key: SessionKey,
    mut loaded: Loaded,
    activity: Activity,
    choice: PolicyChoice,
) -> Checked {
    let policy = config.policies.policy(choice);
    // The tenant's policy: what the store's expiry follows.
    let base = config.policies.base(choice);
    let mut reloads = 0;
    let mut pointers = 0;
    let mut in_grace = false;
    let (mut record, now, admission, mut touched) = loop {
        let now = config.clock.now();
        let (found, touched) = match std::mem::replace(&mut loaded, Loaded::NotYet) {
            Loaded::Record(record) => (Some(*record), None),
            Loaded::Missing => (None, None),
            // A status GET writes nothing; a request in a route group is
            // judged here by its tighter policy before anything is written.
            Loaded::NotYet if activity == Activity::Ignored || choice.is_tightened() => {
                match config.store.load(&key).await {
                    Ok(found) => (found, None),
                    Err(error) => return Checked::StoreFailed { error, id },
                }
            }
            // One round trip: the store touches the session itself when a
            // touch is due.
            Loaded::NotYet => match config.store.load_and_touch(&key, policy, now).await {
                Ok(Some(found)) => (Some(found.record), found.touch),
                Ok(None) => (None, None),
                Err(error) => return Checked::StoreFailed { error, id },
            },
        };
        let Some(record) = found else {
            // No lifetime, no data: whatever the data store still holds
            // under this ID (a late write after a logout) goes.
            config.delete_data(&id).await;
            return Checked::Refused {
                reason: RejectReason::Unknown,
                id,
            };
        };
        if let Some(moved_to) = record.renewed_to {
            // A renewed ID: the pointer's expiry is the end of its grace.
            // Never deleted here: that would end the session it points to.
            // A followed cookie's old ID is refused at once: the other
            // layer dropped its data when it changed the ID; its pointer
            // only lets a logout in flight with it end the session.
            if now >= record.expires_at || pointers == MAX_POINTERS || config.followed {
                return Checked::Refused {
                    reason: RejectReason::Renewed,
                    id,
                };
            }
            pointers += 1;
            in_grace = true;
            key = moved_to;
            continue;
        }
        match judge(policy, &record, now) {
            Verdict::Admitted(admission) => break (record, now, admission, touched),
            Verdict::Expired(reason) => {
                // Delete only what was judged: a request that touched the
                // session since it was loaded may have kept it alive.
                match config.store.delete_stale(&key, record.last_activity).await {
                    Ok(false) if reloads < STALE_RELOADS => reloads += 1,
                    Ok(deleted) => {
                        if deleted {
                            observe::ended(&config, &key, reason.into());
                            config.delete_data(&id).await;
                        }
                        return Checked::Refused {
                            reason: reason.into(),
                            id,
                        };
                    }
                    Err(err) => {
                        tracing::warn!(error = %err, "could not delete an expired session");
                        return Checked::Refused {
                            reason: reason.into(),
                            id,
                        };
                    }
                }
            }
        }
    };
    if activity == Activity::Ignored {
        return Checked::Admitted {
            session: ActiveSession {
                id,
                key,
                deadlines: policy.deadlines(&record, record.last_activity),
                record,
                in_grace,
                admitted_at: now,
            },
            touched: false,
            renewed: false,
        };
    }
    let mut admission = admission;
    if activity == Activity::Forced && !admission.touch && now > record.last_activity {
        admission.touch = true;
        admission.deadlines = policy.deadlines(&record, now);
    }
    if admission.touch && touched.is_none() {
        // Due, and the store did not write it (the record came from a
        // synchronous load, or the store rounds its limits).
        match config
            .store
            .touch(&key, now, base.expiry(&record, now))
            .await
        {
            Ok(outcome) => touched = Some(outcome),
            Err(error) => return Checked::StoreFailed { error, id },
        }
    }
    match touched {
        Some(TouchOutcome::Missing) => {
            config.delete_data(&id).await;
            return Checked::Refused {
                reason: RejectReason::Unknown,
                id,
            };
        }
        Some(TouchOutcome::Touched | TouchOutcome::AlreadyRecent) => {
            record.last_activity = record.last_activity.max(now);
        }
        None => {}
    }
    let session = ActiveSession {
        id,
        key,
        record,
        deadlines: admission.deadlines,
        in_grace,
        admitted_at: now,
    };
    if in_grace || !renewal_due(&config, &admission) {
        return Checked::Admitted {
            session,
            touched: admission.touch,
            renewed: false,
        };
    }
    renew(&config, policy, base, session, now, admission.touch).await
}

/// Moves an admitted session to a fresh ID. A concurrent request that
/// renewed it first, or a store that cannot renew, leaves it on its ID; a
/// logout that ended it meanwhile refuses the request.
async fn renew(
    config: &Config,
    policy: &Policy,
    base: &Policy,
    session: ActiveSession,
    now: Timestamp,
    touched: bool,
) -> Checked {
    let keep = |session| Checked::Admitted {
        session,
        touched,
        renewed: false,
    };
    let Some(renewal) = policy.renewal() else {
        return keep(session);
    };
    let new_id = match SessionId::generate() {
        Ok(new_id) => new_id,
        Err(err) => {
            tracing::warn!(error = %err, "no randomness for a renewed session ID; ID kept");
            return keep(session);
        }
    };
    let new_key = new_id.key();
    let mut record = session.record.clone();
    record.id_issued_at = now;
    record.expires_at = base.expiry(&record, record.last_activity);
    let grace_until = now.saturating_add(renewal.grace);
    let outcome = config
        .store
        .renew(
            &session.key,
            session.record.version,
            &new_key,
            &record,
            grace_until,
        )
        .await;
    match outcome {
        Ok(RenewOutcome::Renewed) => {
            observe::renewed(config, &session.key, &new_key);
            Checked::Admitted {
                session: ActiveSession {
                    id: new_id,
                    key: new_key,
                    record,
                    deadlines: session.deadlines,
                    in_grace: false,
                    admitted_at: now,
                },
                touched,
                renewed: true,
            }
        }
        Ok(RenewOutcome::Missing) => Checked::Refused {
            reason: RejectReason::Unknown,
            id: session.id,
        },
        Ok(RenewOutcome::Conflict | RenewOutcome::Taken) => keep(session),
        Err(error) if error.kind() == StoreErrorKind::Unsupported => {
            tracing::warn!(error = %error, "the session store cannot renew IDs; ID kept");
            keep(session)
        }
        Err(error) => Checked::StoreFailed {
            error,
            id: session.id,
        },
    }
}

/// Decides what a request gets after its session was checked.
pub(crate) fn after_check<ReqBody, ResBody, R>(
    config: &Arc<Config>,
    responder: &R,
    request: Request<ReqBody>,
    checked: Checked,
    choice: PolicyChoice,
) -> Next<ReqBody, ResBody, R>
where
    ResBody: Default,
    R: RejectionResponse<ResBody>,
{
    match checked {
        Checked::Admitted {
            session,
            touched,
            renewed,
        } => {
            observe::admitted(config);
            let presented = config.followed.then(|| session.id.clone());
            let handle =
                SessionHandle::admitted(Arc::clone(config), choice, session, touched, renewed);
            call_with(config, responder, request, handle, None, presented, true)
        }
        Checked::Refused { reason, id } => {
            refuse(config, responder, request, reason, Some(id), choice)
        }
        Checked::StoreFailed { error, id } => {
            tracing::warn!(error = %error, "session store failed; session not confirmed");
            match config.on_store_error {
                OnStoreError::PassThroughAsVisitor => {
                    let mut request = request;
                    config.cookie.strip(request.headers_mut());
                    let reason = Some(RejectReason::StoreUnavailable);
                    // A login or logout on this request still ends the
                    // session the cookie named, once the store is back.
                    let handle = SessionHandle::visitor(
                        Arc::clone(config),
                        choice,
                        reason,
                        false,
                        Some(id.clone()),
                    );
                    call_with(config, responder, request, handle, reason, Some(id), false)
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

/// `429 Too Many Requests` if the request's client presented too many
/// unknown or forged session IDs lately; `None` to go on.
pub(crate) fn too_many_guesses<ReqBody, ResBody, R>(
    config: &Config,
    responder: &R,
    request: &Request<ReqBody>,
) -> Option<Response<ResBody>>
where
    R: RejectionResponse<ResBody>,
{
    let guesses = config.guesses.as_ref()?;
    let client = guesses.client(request.headers(), request.extensions())?;
    let wait = guesses.blocked_for(&client, config.clock.now())?;
    tracing::debug!(%client, "session cookie refused: too many guesses");
    let reason = RejectReason::TooManyGuesses;
    let mut response = responder.respond(reason);
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
    config: &Arc<Config>,
    responder: &R,
    mut request: Request<ReqBody>,
    reason: RejectReason,
    presented: Option<SessionId>,
    choice: PolicyChoice,
) -> Next<ReqBody, ResBody, R>
where
    ResBody: Default,
    R: RejectionResponse<ResBody>,
{
    tracing::info!(reason = reason.as_str(), "session not admitted");
    count_guess(config, &request, reason);
    let mut response = match &config.on_invalid {
        OnInvalidSession::PassThrough => {
            config.cookie.strip(request.headers_mut());
            let handle =
                SessionHandle::visitor(Arc::clone(config), choice, Some(reason), true, None);
            return call_with(
                config,
                responder,
                request,
                handle,
                Some(reason),
                presented,
                false,
            );
        }
        OnInvalidSession::Redirect(location) => see_other(location.clone()),
        OnInvalidSession::Reject => responder.respond(reason),
    };
    config.cookie.append_removal(response.headers_mut());
    response.extensions_mut().insert(reason);
    Next::Respond(response)
}
