//! The store half of a request: load, judge, then delete, touch or renew.
//!
//! A check is a `SessionCheck` taken through named steps: `load`,
//! `follow_pointer` for an ID replaced by a renewal, `judge`,
//! `delete_expired` (reloading when a concurrent request kept the session
//! alive), `touch` and `renew`. A request that writes nothing and a store
//! that answers at once skip the future (`check_without_writes`). What the
//! request then gets is decided in `decide`.

use std::future::Future;
use std::ops::Deref;
use std::pin::Pin;
use std::sync::Arc;

use tracing::Instrument as _;

use crate::config::Config;
use crate::handle::ActiveSession;
use crate::id::{SessionId, SessionKey};
use crate::observe;
use crate::policy::{judge, Admission, ExpiryReason, InForce, Policy, PolicyChoice, Verdict};
use crate::record::SessionRecord;
use crate::rejection::RejectReason;
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

/// A session check under way: loads, judges and writes.
pub(crate) type CheckFuture = Pin<Box<dyn Future<Output = Checked> + Send>>;

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

/// What [`SessionCheck::run`] starts from: a load still to do, or what the
/// store already said.
pub(crate) enum Loaded {
    NotYet,
    /// Boxed: the slow path's record, kept off the fast path's stack.
    Record(Box<SessionRecord>),
    Missing,
}

/// Judges a record the store gave at once. `Err` means the request needs
/// the full [`SessionCheck`], from what the store said: a touch or a delete
/// is due, or an unknown session's data is to be deleted.
fn check_without_writes(
    check: &SessionCheck<&Config>,
    loaded: Result<Option<SessionRecord>, StoreError>,
) -> Result<Checked, Loaded> {
    let config = check.config;
    let record = match loaded {
        Ok(Some(record)) => record,
        Ok(None) if config.session_data.is_some() => return Err(Loaded::Missing),
        Ok(None) => return Ok(check.refused(RejectReason::Unknown)),
        Err(error) => return Ok(check.store_failed(error)),
    };
    if record.renewed_to.is_some() {
        return Err(Loaded::Record(Box::new(record)));
    }
    let policy = check.policy();
    let now = config.clock.now();
    let deadlines = match judge(policy, &record, now) {
        Verdict::Admitted(_) if check.activity == Activity::Ignored => {
            policy.deadlines(&record, record.last_activity)
        }
        Verdict::Admitted(admission)
            if check.activity == Activity::Counts
                && !admission.touch
                && !renewal_due(config, &admission) =>
        {
            admission.deadlines
        }
        _ => return Err(Loaded::Record(Box::new(record))),
    };
    Ok(Checked::Admitted {
        session: ActiveSession {
            id: check.id.clone(),
            key: check.key,
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
    // Borrowing the configuration: the fast path never touches the `Arc`.
    let check = SessionCheck {
        config: &**config,
        id,
        key,
        activity,
        choice,
        in_force: config.policies.at_arrival(),
        in_grace: false,
    };
    let mut loaded = Loaded::NotYet;
    if let Some(now) = config.store.try_load_now(&key) {
        match check_without_writes(&check, now) {
            Ok(checked) => return Started::Done(checked),
            Err(store_said) => loaded = store_said,
        }
    }
    let check = SessionCheck {
        config: Arc::clone(config),
        id: check.id,
        key,
        activity,
        choice,
        in_force: check.in_force,
        in_grace: false,
    };
    Started::Pending(Box::pin(check.run(loaded)))
}

/// How many renewal pointers a request follows at most: a pointer lives for
/// the grace period, shorter than the renewal interval, so a live chain is
/// one long; the bound only stops a corrupt store from looping.
const MAX_POINTERS: usize = 2;

/// Whether the layer renews the ID of the session `admission` admits.
fn renewal_due(config: &Config, admission: &Admission) -> bool {
    admission.renew && !config.followed
}

/// One request's check of the session its cookie names. Each step either
/// goes on or ends the check with its [`Checked`] (the `Err` of a step).
/// `C` is how it holds the configuration: borrowed on the synchronous fast
/// path, shared by a check that waits for the store.
struct SessionCheck<C = Arc<Config>> {
    config: C,
    /// The ID the cookie named.
    id: SessionId,
    /// The key the check is at: the ID's, or after a renewal pointer the
    /// key of the session it moved to.
    key: SessionKey,
    activity: Activity,
    choice: PolicyChoice,
    /// The policies in force when the request arrived: a change made while
    /// the store answers does not alter how it is judged.
    in_force: InForce,
    /// Whether the cookie's ID was replaced and the check followed it.
    in_grace: bool,
}

/// A record the rule admitted, with what the store's own touch did to it.
struct Judged {
    record: SessionRecord,
    now: Timestamp,
    admission: Admission,
    touched: Option<TouchOutcome>,
}

/// What one load gave: the record, if any, and the touch the store made
/// while loading, if it made one.
type LoadResult = (Option<SessionRecord>, Option<TouchOutcome>);

// A step's `Err` is the check's answer, moved out once; boxing it would
// allocate on every refusal for nothing.
#[allow(clippy::result_large_err)]
impl SessionCheck {
    /// Loads (unless it is `loaded` already) and judges the session;
    /// deletes it if it has expired; when the request is activity, writes
    /// its activity if the throttle says so and renews its ID when due. An
    /// ID replaced by a renewal is admitted as the session it moved to
    /// during the grace period, and refused after.
    ///
    /// Runs in a `session_check` span (target `tower_session_lifetime`,
    /// level debug) that names the session by its short key, so that store
    /// calls and the events of this request can be told apart.
    fn run(self, loaded: Loaded) -> impl Future<Output = Checked> + Send {
        let span = tracing::debug_span!(
            target: "tower_session_lifetime",
            "session_check",
            session = %self.key.short()
        );
        self.steps(loaded).instrument(span)
    }

    async fn steps(mut self, loaded: Loaded) -> Checked {
        let judged = match self.load_and_judge(loaded).await {
            Ok(judged) => judged,
            Err(checked) => return checked,
        };
        if self.activity == Activity::Ignored {
            return self.admitted_as_is(judged);
        }
        let Judged {
            mut record,
            now,
            mut admission,
            touched,
        } = judged;
        if self.activity == Activity::Forced && !admission.touch && now > record.last_activity {
            admission.touch = true;
            admission.deadlines = self.policy().deadlines(&record, now);
        }
        if let Err(checked) = self.touch(&mut record, now, &admission, touched).await {
            return checked;
        }
        let SessionCheck {
            config,
            id,
            key,
            choice,
            in_force,
            in_grace,
            ..
        } = self;
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
        renew(&config, &in_force, choice, session, admission.touch).await
    }

    /// Loads and judges until the rule admits a record: follows a renewal
    /// pointer, and reloads when an expired record could not be deleted
    /// because a concurrent request touched it.
    async fn load_and_judge(&mut self, mut loaded: Loaded) -> Result<Judged, Checked> {
        let mut reloads = 0;
        let mut pointers = 0;
        loop {
            let now = self.config.clock.now();
            let loaded = std::mem::replace(&mut loaded, Loaded::NotYet);
            let (found, touched) = self.load(loaded, now).await?;
            let Some(record) = found else {
                // No lifetime, no data: whatever the data store still holds
                // under this ID (a late write after a logout) goes.
                self.config.delete_data(&self.id).await;
                return Err(self.refused(RejectReason::Unknown));
            };
            if let Some(moved_to) = record.renewed_to {
                self.follow_pointer(&record, moved_to, now, &mut pointers)?;
                continue;
            }
            match judge(self.policy(), &record, now) {
                Verdict::Admitted(admission) => {
                    return Ok(Judged {
                        record,
                        now,
                        admission,
                        touched,
                    })
                }
                Verdict::Expired(reason) => {
                    self.delete_expired(&record, reason, &mut reloads).await?
                }
            }
        }
    }

    /// The record at the check's key, from `loaded` when the store already
    /// said, else from the store: touching it in the same round trip when
    /// the request may write.
    async fn load(&self, loaded: Loaded, now: Timestamp) -> Result<LoadResult, Checked> {
        let store = &self.config.store;
        match loaded {
            Loaded::Record(record) => Ok((Some(*record), None)),
            Loaded::Missing => Ok((None, None)),
            // A status GET writes nothing; a request in a route group is
            // judged here by its tighter policy before anything is written.
            Loaded::NotYet if self.activity == Activity::Ignored || self.choice.is_tightened() => {
                match store.load(&self.key).await {
                    Ok(found) => Ok((found, None)),
                    Err(error) => Err(self.store_failed(error)),
                }
            }
            // One round trip: the store touches the session itself when a
            // touch is due.
            Loaded::NotYet => match store.load_and_touch(&self.key, self.policy(), now).await {
                Ok(Some(found)) => Ok((Some(found.record), found.touch)),
                Ok(None) => Ok((None, None)),
                Err(error) => Err(self.store_failed(error)),
            },
        }
    }

    /// Moves the check to the session a renewed ID points to, during its
    /// grace. The pointer's expiry is the end of its grace. It is never
    /// deleted here: that would end the session it points to. A followed
    /// cookie's old ID is refused at once: the other layer dropped its data
    /// when it changed the ID; its pointer only lets a logout in flight
    /// with it end the session.
    fn follow_pointer(
        &mut self,
        pointer: &SessionRecord,
        moved_to: SessionKey,
        now: Timestamp,
        pointers: &mut usize,
    ) -> Result<(), Checked> {
        if now >= pointer.expires_at || *pointers == MAX_POINTERS || self.config.followed {
            return Err(self.refused(RejectReason::Renewed));
        }
        *pointers += 1;
        self.in_grace = true;
        self.key = moved_to;
        Ok(())
    }

    /// Deletes an expired record, only as it was judged: a request that
    /// touched the session since it was loaded may have kept it alive, and
    /// then `Ok` asks for a reload (at most [`STALE_RELOADS`] times).
    async fn delete_expired(
        &self,
        record: &SessionRecord,
        reason: ExpiryReason,
        reloads: &mut usize,
    ) -> Result<(), Checked> {
        let config = &self.config;
        match config
            .store
            .delete_stale(&self.key, record.last_activity)
            .await
        {
            Ok(false) if *reloads < STALE_RELOADS => {
                *reloads += 1;
                Ok(())
            }
            Ok(deleted) => {
                if deleted {
                    observe::ended(config.metrics.as_ref(), &self.key, reason.into());
                    config.delete_data(&self.id).await;
                }
                Err(self.refused(reason.into()))
            }
            Err(err) => {
                tracing::warn!(error = %err, "could not delete an expired session");
                Err(self.refused(reason.into()))
            }
        }
    }

    /// Writes the request's activity when a touch is due and the store did
    /// not write it while loading (the record came from a synchronous
    /// load, or the store rounds its limits). A session gone meanwhile is
    /// refused.
    async fn touch(
        &self,
        record: &mut SessionRecord,
        now: Timestamp,
        admission: &Admission,
        mut touched: Option<TouchOutcome>,
    ) -> Result<(), Checked> {
        if admission.touch && touched.is_none() {
            let expiry = self.base().expiry(record, now);
            match self.config.store.touch(&self.key, now, expiry).await {
                Ok(outcome) => touched = Some(outcome),
                Err(error) => return Err(self.store_failed(error)),
            }
        }
        match touched {
            Some(TouchOutcome::Missing) => {
                self.config.delete_data(&self.id).await;
                Err(self.refused(RejectReason::Unknown))
            }
            Some(TouchOutcome::Touched | TouchOutcome::AlreadyRecent) => {
                record.last_activity = record.last_activity.max(now);
                Ok(())
            }
            None => Ok(()),
        }
    }

    /// Admits the judged record without writing anything: a status `GET`.
    fn admitted_as_is(self, judged: Judged) -> Checked {
        let record = judged.record;
        Checked::Admitted {
            session: ActiveSession {
                deadlines: self.policy().deadlines(&record, record.last_activity),
                id: self.id,
                key: self.key,
                record,
                in_grace: self.in_grace,
                admitted_at: judged.now,
            },
            touched: false,
            renewed: false,
        }
    }
}

#[allow(clippy::result_large_err)]
impl<C: Deref<Target = Config>> SessionCheck<C> {
    /// The policy the request is judged by, as in force when it arrived.
    fn policy(&self) -> &Policy {
        self.config.policies.policy_in(&self.in_force, self.choice)
    }

    /// The tenant's policy, as in force when the request arrived: what the
    /// store's expiry follows.
    fn base(&self) -> &Policy {
        self.config.policies.base_in(&self.in_force, self.choice)
    }

    fn refused(&self, reason: RejectReason) -> Checked {
        Checked::Refused {
            reason,
            id: self.id.clone(),
        }
    }

    fn store_failed(&self, error: StoreError) -> Checked {
        Checked::StoreFailed {
            error,
            id: self.id.clone(),
        }
    }
}

/// Moves an admitted session to a fresh ID. A concurrent request that
/// renewed it first, or a store that cannot renew, leaves it on its ID; a
/// logout that ended it meanwhile refuses the request.
async fn renew(
    config: &Config,
    in_force: &InForce,
    choice: PolicyChoice,
    session: ActiveSession,
    touched: bool,
) -> Checked {
    let (policy, base) = (
        config.policies.policy_in(in_force, choice),
        config.policies.base_in(in_force, choice),
    );
    let now = session.admitted_at;
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
            observe::renewed(config.metrics.as_ref(), &session.key, &new_key);
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
