//! Following a session cookie that another layer issues (tower-sessions):
//! what its `Set-Cookie` on the way out means for the lifetime records, and
//! the cookie lifetime the browser is told.
//!
//! | the inner layer's response | the lifetime record | the cookie |
//! | --- | --- | --- |
//! | sets a new ID after a login through the handle, or for a first session | a new one, created now; the replaced one ends | its lifetime set to the new record's |
//! | sets a new ID for a live session without a login (`cycle_id`) | moves to the new ID unchanged, only if the session is still live, atomically | its lifetime set to the record's; dropped if the session ended meanwhile |
//! | keeps the pre-login ID (or writes none) on a login through the handle | the data moves to a fresh ID the layer picks; a new lifetime there; the old one ends | the fresh ID, with its lifetime |
//! | sets the ID the request presented | unchanged | dropped, unless its `Max-Age` moved |
//! | removes the cookie (`flush`, logout) | ends | removed |
//! | leaves the cookie alone | as the handle said | as the handle said |
//!
//! "Its lifetime" is our rule, not the inner layer's: a remember-me session
//! gets `Max-Age` up to its nearest deadline, any other a browser-session
//! cookie. An ID the layer refused never gets a lifetime back through the
//! inner layer. A replaced ID is refused at once (the inner layer dropped
//! its data); for the renewal grace period it still points to the new one,
//! so that a logout in flight with it ends the session. When the store
//! fails to start or end a lifetime, the answer is the one a store failure
//! gets, with the cookie cleared; when it fails to move one, the session
//! keeps its old ID and its data.

use crate::observe::{self, EndReason};
use std::future::Future;
use std::ops::Range;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use cookie::Cookie;
use http::header::SET_COOKIE;
use http::{HeaderMap, HeaderValue};

use crate::clock::Clock;
use crate::config::Config;
use crate::handle::{CurrentSession, FollowedState, PendingSession, SessionHandle};
use crate::id::{IdText, SessionId};
use crate::policy::{judge, Policy, PolicyChoice, Verdict, DEFAULT_RENEWAL_GRACE};
use crate::record::SessionRecord;
use crate::session_cookie::forbid_caching;
use crate::store::{RenewOutcome, StoreError, StoreErrorKind};
use crate::time::Timestamp;

/// What the inner layer did to the followed cookie on the way out.
enum Outbound {
    Untouched,
    Removed,
    /// The admitted ID the request came with, set again.
    Repeated,
    /// Any other ID.
    Set(SessionId),
    /// A value that names no session this layer can read (a signature it
    /// cannot check, another ID format).
    Unusable,
}

/// What the response's cookies need.
pub(crate) enum CookieEdit {
    /// The handle's own change: the inner layer wrote no cookie.
    FromHandle,
    /// The inner layer's cookie, with our lifetime: persistent for this
    /// long, or a browser-session cookie.
    Lifetime(Option<Duration>),
    /// The inner layer's cookie dropped: it repeats the ID the browser
    /// sent, and repeating it could overwrite a newer ID that a concurrent
    /// login gave the browser meanwhile; or it names an ID that must not
    /// reach the browser. `lone`: it is known to be the response's only
    /// `Set-Cookie`, so the header goes without reading it again.
    Drop { lone: bool },
    /// The inner layer's removal, as it wrote it.
    Keep,
    /// No cookie for this session: drop the inner layer's, clear the
    /// browser's.
    Clear,
    /// The inner layer's cookie replaced by one for `id`, an ID the layer
    /// moved the session's data to, with our lifetime.
    Reissue {
        id: SessionId,
        max_age: Option<Duration>,
    },
    /// The store failed while starting or ending a session: answer as for a
    /// store failure, and clear the cookie.
    StoreFailed,
    /// The store failed while moving a session to the inner layer's new
    /// ID: answer as for a store failure, drop the new ID, leave the
    /// browser's (the session's still).
    StoreFailedKeptId,
}

/// A cookie edit now, or once the store has been told.
pub(crate) enum Settle {
    Now(CookieEdit),
    Later(Pin<Box<dyn Future<Output = CookieEdit> + Send>>),
}

/// Decides what the inner layer's response means; see the module docs.
/// `presented` is the session the request's cookie named, `admitted`
/// whether the layer admitted it, and `admitted_text` how the cookie
/// spelled an admitted ID.
pub(crate) fn settle(
    config: &Arc<Config>,
    handle: &SessionHandle,
    presented: Option<&SessionId>,
    admitted: bool,
    admitted_text: Option<&IdText>,
    headers: &HeaderMap,
) -> Settle {
    let admitted = presented.filter(|_| admitted);
    let later = |future: Pin<Box<dyn Future<Output = CookieEdit> + Send>>| Settle::Later(future);
    let flags = handle.followed_flags();
    let refused = presented.filter(|_| admitted.is_none());
    let (outbound, lone) = outbound(config, headers, admitted, admitted_text, refused);
    // A login on which the inner layer kept the ID the request came with
    // (or wrote no cookie at all): fixation, unless the layer moves the
    // session to a new ID itself.
    let kept_id = match &outbound {
        Outbound::Untouched => Some(Kept::Unsaved),
        Outbound::Repeated => Some(Kept::Saved),
        _ => None,
    };
    if let Some(kept) = kept_id.filter(|_| flags.login) {
        return later(Box::pin(reissue(
            Arc::clone(config),
            admitted.cloned(),
            handle.followed_state(),
            kept,
        )));
    }
    match outbound {
        Outbound::Untouched => Settle::Now(CookieEdit::FromHandle),
        Outbound::Unusable => {
            tracing::warn!(
                "the session layer set a session cookie that cannot be followed; cleared"
            );
            Settle::Now(CookieEdit::Clear)
        }
        Outbound::Set(id) if admitted.is_none() && presented == Some(&id) => {
            // An ID the layer refused (or could not check) must not come
            // back through the inner layer's store.
            tracing::warn!("the session layer set the ID of a refused session; cleared");
            Settle::Now(CookieEdit::Clear)
        }
        Outbound::Set(id) => later(Box::pin(start(
            Arc::clone(config),
            id,
            handle.followed_state(),
        ))),
        Outbound::Removed => match (flags.active, admitted) {
            (true, Some(id)) => later(Box::pin(end(
                Arc::clone(config),
                id.clone(),
                CookieEdit::Keep,
                EndReason::Logout,
            ))),
            _ => Settle::Now(CookieEdit::Keep),
        },
        // The inner layer set the ID the request came with again.
        Outbound::Repeated => match (flags.active, admitted) {
            (true, _) if flags.refresh => {
                let max_age = handle
                    .followed_state()
                    .current
                    .and_then(|current| current.cookie_max_age);
                Settle::Now(CookieEdit::Lifetime(max_age))
            }
            (true, _) => Settle::Now(CookieEdit::Drop { lone }),
            // Ended through the handle, and the inner layer saved the
            // session after that: its data goes again.
            (false, Some(id)) => {
                let (config, id) = (Arc::clone(config), id.clone());
                later(Box::pin(async move {
                    config.delete_data(&id).await;
                    CookieEdit::Clear
                }))
            }
            (false, None) => Settle::Now(CookieEdit::Clear),
        },
    }
}

/// Starts the lifetime of `id`, a new ID the inner layer set.
///
/// On a live session without a login (tower-sessions' `cycle_id`), the
/// lifetime moves to `id`; otherwise (a login through the handle, a first
/// session) a new lifetime starts and the replaced one ends.
async fn start(config: Arc<Config>, id: SessionId, state: FollowedState) -> CookieEdit {
    match state.current {
        Some(current) if !state.pending.login => {
            move_lifetime(&config, id, current, state.choice).await
        }
        current => {
            let retired = current.map(|current| current.id).or(state.unconfirmed);
            begin(&config, &id, &state.pending, state.choice, retired).await
        }
    }
}

/// Starts a new lifetime for `id` (a login, or a first session), created
/// now, then ends the session `retired` that it replaces.
async fn begin(
    config: &Config,
    id: &SessionId,
    pending: &PendingSession,
    choice: PolicyChoice,
    retired: Option<SessionId>,
) -> CookieEdit {
    let now = config.clock.now();
    let base = &config.policies.base(choice);
    let record = SessionRecord {
        label: pending.label.clone(),
        ..SessionRecord::new(base, now, pending.subject.clone(), pending.remember_me)
    };
    let mut edit = match config.store.create(&id.key(), &record).await {
        Ok(true) => {
            observe::started(config.metrics.as_ref(), &id.key());
            lifetime_of(&record, now)
        }
        Ok(false) => {
            tracing::warn!("the session layer set an ID that already has a lifetime; cleared");
            CookieEdit::Clear
        }
        Err(err) => {
            tracing::warn!(error = %err, "could not start the lifetime of a new session");
            config.delete_data(id).await;
            CookieEdit::StoreFailed
        }
    };
    if let Some(retired) = retired {
        match config.end_session(&retired, &retired.key()).await {
            Ok(true) => {
                observe::ended(config.metrics.as_ref(), &retired.key(), EndReason::Replaced)
            }
            Ok(false) => {}
            Err(err) => {
                tracing::warn!(error = %err, "could not end the session a new ID replaced");
                edit = CookieEdit::StoreFailed;
            }
        }
    }
    edit
}

/// How often a move retries after another request changed the session
/// (a remember-me switch, a re-authentication) since this one loaded it.
const MOVE_ATTEMPTS: usize = 3;

/// Moves the live session `current` to `id`, the ID the inner layer
/// cycled it to, only if it is still live: in one conditional step of the
/// store ([`renew`](crate::store::LifetimeStore::renew)), so that a logout, an
/// expiry or a logout everywhere that ended it meanwhile is never undone.
/// Then the old ID is refused, but points to the new one for the renewal
/// grace period: a logout in flight with it ends both.
///
/// The session keeps its creation time, limits, subject and remember-me,
/// named or not: an ID change never extends a lifetime (an app that
/// signs in through axum-login alone starts the login's lifetime with
/// [`SessionHandle::login`]), and its activity is this request's
/// admission, not its response.
async fn move_lifetime(
    config: &Config,
    id: SessionId,
    current: CurrentSession,
    choice: PolicyChoice,
) -> CookieEdit {
    let policy = &config.policies.policy(choice);
    let base = &config.policies.base(choice);
    let now = config.clock.now();
    let grace = base
        .renewal()
        .map_or(DEFAULT_RENEWAL_GRACE, |renewal| renewal.grace);
    let grace_until = now.saturating_add(grace);
    let new_key = id.key();
    // The session as this request knows it, with its own activity.
    let mut stored = current.record.clone();
    stored.last_activity = stored.last_activity.max(current.admitted_at);
    let mut reloaded = false;
    for _ in 0..MOVE_ATTEMPTS {
        if matches!(judge(policy, &stored, now), Verdict::Expired(_)) {
            // Past its deadline as this request knows it: unless other
            // requests kept it alive meanwhile, it ended.
            if reloaded {
                return ended_meanwhile(config, &id).await;
            }
            match config.store.load(&current.key).await {
                Ok(Some(fresh)) if fresh.renewed_to.is_none() => {
                    stored = SessionRecord {
                        last_activity: fresh.last_activity.max(current.admitted_at),
                        ..fresh
                    };
                    reloaded = true;
                    continue;
                }
                Ok(_) => return ended_meanwhile(config, &id).await,
                Err(err) => return move_failed(config, &id, &current, &err).await,
            }
        }
        let record = moved(base, &stored, now);
        let outcome = config
            .store
            .renew(&current.key, stored.version, &new_key, &record, grace_until)
            .await;
        match outcome {
            Ok(RenewOutcome::Renewed) => {
                observe::renewed(config.metrics.as_ref(), &current.key, &new_key);
                return lifetime_of(&record, now);
            }
            Ok(RenewOutcome::Missing) => return ended_meanwhile(config, &id).await,
            Ok(RenewOutcome::Taken) => {
                tracing::warn!("the session layer set an ID that already has a lifetime; cleared");
                return CookieEdit::Clear;
            }
            // Changed since this request loaded it: moved by another
            // request (then this ID is not the session's), or updated (a
            // remember-me switch, a re-authentication), which the move keeps.
            Ok(RenewOutcome::Conflict) => match config.store.load(&current.key).await {
                Ok(Some(fresh)) if fresh.renewed_to.is_none() => {
                    stored = SessionRecord {
                        last_activity: fresh.last_activity.max(current.admitted_at),
                        ..fresh
                    };
                }
                Ok(_) => return ended_meanwhile(config, &id).await,
                Err(err) => return move_failed(config, &id, &current, &err).await,
            },
            Err(err) if err.kind() == StoreErrorKind::Unsupported => {
                return move_without_renew(config, &id, &current, &record).await
            }
            Err(err) => return move_failed(config, &id, &current, &err).await,
        }
    }
    let err = StoreError::new(
        StoreErrorKind::Backend,
        "a session kept changing while it moved to its new ID",
    );
    move_failed(config, &id, &current, &err).await
}

/// The record a session `stored` has after moving to a new ID at `now`:
/// the same but for when its ID was issued.
fn moved(base: &Policy, stored: &SessionRecord, now: Timestamp) -> SessionRecord {
    let mut record = SessionRecord {
        id_issued_at: now,
        renewed_to: None,
        ..stored.clone()
    };
    record.expires_at = base.expiry(&record, record.last_activity);
    record
}

/// The store failed while moving the session `current` to the new ID `id`:
/// the inner layer already dropped the data under the old ID, so it moves
/// back there, the browser keeps the old ID (still the session's), and the
/// answer is a store failure. Nothing that was stored is lost.
async fn move_failed(
    config: &Config,
    id: &SessionId,
    current: &CurrentSession,
    err: &StoreError,
) -> CookieEdit {
    tracing::warn!(error = %err, "could not move a session to its new ID; it keeps its ID");
    if let Some(data) = &config.session_data {
        if let Err(err) = data.move_data(id, &current.id).await {
            tracing::warn!(error = %err, "could not move a session's data back to its ID");
        }
    }
    CookieEdit::StoreFailedKeptId
}

/// [`move_lifetime`] on a store that cannot renew: the new record first,
/// then the old one deleted; if the old one was gone already (ended
/// meanwhile), the new one goes too.
async fn move_without_renew(
    config: &Config,
    id: &SessionId,
    current: &CurrentSession,
    record: &SessionRecord,
) -> CookieEdit {
    match config.store.create(&id.key(), record).await {
        Ok(true) => {}
        Ok(false) => {
            tracing::warn!("the session layer set an ID that already has a lifetime; cleared");
            return CookieEdit::Clear;
        }
        Err(err) => return move_failed(config, id, current, &err).await,
    }
    match config.store.delete(&current.key).await {
        Ok(true) => lifetime_of(record, config.clock.now()),
        Ok(false) => {
            if let Err(err) = config.store.delete(&id.key()).await {
                tracing::warn!(error = %err, "could not end a session's new ID");
                return CookieEdit::StoreFailed;
            }
            ended_meanwhile(config, id).await
        }
        Err(err) => {
            tracing::warn!(error = %err, "could not move a session to its new ID");
            CookieEdit::StoreFailed
        }
    }
}

/// The followed cookie's lifetime for a session whose record is `record`:
/// persistent up to its nearest deadline with remember-me, a
/// browser-session cookie without.
fn lifetime_of(record: &SessionRecord, now: Timestamp) -> CookieEdit {
    CookieEdit::Lifetime(
        record
            .remember_me
            .then(|| record.expires_at.saturating_duration_since(now)),
    )
}

/// The session ended while the request that gave it the new ID `id` was
/// in flight: the new ID never reaches the browser, and its data goes.
async fn ended_meanwhile(config: &Config, id: &SessionId) -> CookieEdit {
    tracing::info!(
        target: "tower_session_lifetime",
        "a session ended while its ID was being changed; the new ID is not handed out"
    );
    config.delete_data(id).await;
    CookieEdit::Drop { lone: false }
}

/// How the inner layer kept the ID a login came with.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kept {
    /// It saved the session under it (its data is there).
    Saved,
    /// It wrote no cookie (it may hold no data for it).
    Unsaved,
}

/// A login on which the inner layer kept the ID the request came with
/// (`old`; none for a visitor) or started no session: the layer moves the
/// session's data to a fresh ID, starts the login's lifetime there, ends
/// the old one and hands the browser the fresh ID. Without a store of the
/// data to move, the old session ends instead
/// ([`EndReason::LoginKeptId`]); [`SessionHandle::login`] refuses such a
/// login before the handler answers, so this is a last line of defence.
///
/// If the data the inner layer saved is gone when the layer moves it,
/// another request (a second click on "Sign in") moved or ended the
/// session meanwhile: this response hands out no ID, and the browser keeps
/// the one that request gave it.
async fn reissue(
    config: Arc<Config>,
    old: Option<SessionId>,
    state: FollowedState,
    kept: Kept,
) -> CookieEdit {
    let Some(data) = &config.session_data else {
        return match old {
            Some(old) => {
                tracing::warn!("login kept the pre-login session ID; the session is ended instead");
                end(
                    Arc::clone(&config),
                    old,
                    CookieEdit::Clear,
                    EndReason::LoginKeptId,
                )
                .await
            }
            None => {
                tracing::warn!("login, but the session layer started no session");
                CookieEdit::FromHandle
            }
        };
    };
    let base = &config.policies.base(state.choice);
    let expires_at = SessionRecord::new(
        base,
        config.clock.now(),
        state.pending.subject.clone(),
        state.pending.remember_me,
    )
    .expires_at;
    let mut moved = data
        .move_to_new_id(old.as_ref(), expires_at, old.is_some())
        .await;
    if let (Ok(None), Some(old)) = (&moved, &old) {
        // No data under the old ID. Saved just now, it was moved away
        // since; unsaved, it may have expired in the data store alone: then
        // the session, still live here, starts with empty data.
        let live = match config.store.load(&old.key()).await {
            Ok(record) => record.is_some_and(|record| record.renewed_to.is_none()),
            Err(err) => return move_failed_at_sign_in(&config, old.clone(), &err).await,
        };
        if kept == Kept::Unsaved && live {
            moved = data.move_to_new_id(None, expires_at, false).await;
        }
    }
    let id = match moved {
        Ok(Some(id)) => id,
        Ok(None) => {
            tracing::info!(
                target: "tower_session_lifetime",
                "a sign-in's session was moved or ended by another request; no ID handed out"
            );
            return match old {
                Some(old) => {
                    let edit = CookieEdit::Drop { lone: false };
                    end(config, old, edit, EndReason::Replaced).await
                }
                None => CookieEdit::Drop { lone: false },
            };
        }
        Err(err) => {
            return match old {
                Some(old) => move_failed_at_sign_in(&config, old, &err).await,
                None => CookieEdit::StoreFailed,
            }
        }
    };
    let retired = old.or(state.unconfirmed);
    match begin(&config, &id, &state.pending, state.choice, retired).await {
        CookieEdit::Lifetime(max_age) => CookieEdit::Reissue { id, max_age },
        other => other,
    }
}

/// A store failed while a sign-in moved the session `old` to a new ID: the
/// sign-in fails closed. The old ID must not keep the new sign-in (the
/// inner layer saved it there), so its session ends as far as the store
/// lets it, and the cookie is cleared.
async fn move_failed_at_sign_in(
    config: &Arc<Config>,
    old: SessionId,
    err: &StoreError,
) -> CookieEdit {
    tracing::warn!(error = %err, "could not move a signed-in session's data to a new ID");
    let _ = end(
        Arc::clone(config),
        old,
        CookieEdit::Clear,
        EndReason::LoginKeptId,
    )
    .await;
    CookieEdit::StoreFailed
}

/// Ends the session `id` (for `reason`), then edits the cookie as `edit`
/// says; if the store fails, the session may live on, so the answer is a
/// store failure.
async fn end(
    config: Arc<Config>,
    id: SessionId,
    edit: CookieEdit,
    reason: EndReason,
) -> CookieEdit {
    match config.end_session(&id, &id.key()).await {
        Ok(ended) => {
            if ended {
                observe::ended(config.metrics.as_ref(), &id.key(), reason);
            }
            edit
        }
        Err(err) => {
            tracing::warn!(error = %err, "could not end a session the session layer ended");
            CookieEdit::StoreFailed
        }
    }
}

/// The last `Set-Cookie` the inner layer wrote for the followed cookie
/// (the one the browser keeps), or a refused ID if any of them sets it.
/// `admitted` is the admitted session's ID and `admitted_text` its text
/// as the request's unsigned cookie spelled it: a `Set-Cookie` that
/// repeats that text (the common case, tower-sessions' `always_save`) is
/// known without decoding the value again. Also whether the response has
/// exactly one `Set-Cookie`. `refused` is the ID the request presented
/// when the layer did not admit it.
fn outbound(
    config: &Config,
    headers: &HeaderMap,
    admitted: Option<&SessionId>,
    admitted_text: Option<&IdText>,
    refused: Option<&SessionId>,
) -> (Outbound, bool) {
    let mut found = Outbound::Untouched;
    let mut refused_again = None;
    let mut headers_seen = 0;
    for header in headers.get_all(SET_COOKIE) {
        headers_seen += 1;
        let Some(set) = SetCookie::read(config.cookie.name(), header) else {
            continue;
        };
        found = if set.removes(config.clock.as_ref()) {
            Outbound::Removed
        } else {
            match admitted_text {
                // Only an unsigned cookie has a text; a signed one is
                // decoded, its signature checked.
                Some(text) if is_text(set.value, text) => Outbound::Repeated,
                _ => match config.cookie.decode(set.value) {
                    Ok(id) if admitted == Some(&id) => Outbound::Repeated,
                    Ok(id) => {
                        if refused == Some(&id) {
                            refused_again = Some(id.clone());
                        }
                        Outbound::Set(id)
                    }
                    Err(_) => Outbound::Unusable,
                },
            }
        };
    }
    // The browser keeps the last; but a refused ID set anywhere in the
    // response must not reach it at all.
    if let Some(id) = refused_again {
        found = Outbound::Set(id);
    }
    (found, headers_seen == 1)
}

/// Whether `value` is `text`, compared as a fixed-size array (a few word
/// compares, not a call to `memcmp`).
fn is_text(value: &[u8], text: &IdText) -> bool {
    <&IdText>::try_from(value).is_ok_and(|value| value == text)
}

/// One `Set-Cookie` header for the followed cookie, read as far as this
/// layer needs, in one pass over its bytes: it runs on every response that
/// sets the cookie (tower-sessions' `always_save` sets it on all of them).
struct SetCookie<'a> {
    header: &'a HeaderValue,
    value: &'a [u8],
    /// The last `Max-Age`'s value, as written.
    max_age: Option<&'a [u8]>,
    expires: bool,
    /// How many `Max-Age` and `Expires` attributes it has.
    lifetime_attributes: usize,
}

impl<'a> SetCookie<'a> {
    /// `header`, if it sets the cookie called `name`.
    fn read(name: &str, header: &'a HeaderValue) -> Option<Self> {
        let bytes = header.as_bytes();
        let after_name = bytes.trim_ascii_start().strip_prefix(name.as_bytes())?;
        let after_equals = after_name.trim_ascii_start().strip_prefix(b"=")?;
        let value_start = bytes.len() - after_equals.len();
        let value_end = next_semicolon(bytes, value_start);
        let value = bytes[value_start..value_end].trim_ascii();
        let value = value
            .strip_prefix(b"\"")
            .and_then(|quoted| quoted.strip_suffix(b"\""))
            .unwrap_or(value);
        let mut set = SetCookie {
            header,
            value,
            max_age: None,
            expires: false,
            lifetime_attributes: 0,
        };
        for (_, attribute) in attributes(bytes, value_end) {
            // Most attributes are neither; their first letter says so.
            if !matches!(attribute.first(), Some(b'M' | b'm' | b'E' | b'e')) {
                continue;
            }
            if let Some(max_age) = attribute_value(attribute, MAX_AGE) {
                set.max_age = Some(max_age);
                set.lifetime_attributes += 1;
            } else if attribute_value(attribute, EXPIRES).is_some() {
                set.expires = true;
                set.lifetime_attributes += 1;
            }
        }
        Some(set)
    }

    /// Whether it tells the browser to drop the cookie. The clock is read
    /// only for an `Expires`, which few session cookies have.
    fn removes(&self, clock: &dyn Clock) -> bool {
        // Zero or negative, however many digits (browsers read any
        // negative number as "now").
        let max_age_passed = self.max_age.is_some_and(|max_age| {
            let (negative, digits) = match max_age.strip_prefix(b"-") {
                Some(digits) => (true, digits),
                None => (false, max_age),
            };
            !digits.is_empty()
                && digits.iter().all(u8::is_ascii_digit)
                && (negative || digits.iter().all(|&digit| digit == b'0'))
        });
        self.value.is_empty()
            || max_age_passed
            || (self.expires && expired(self.header, clock.now()))
    }

    /// The same header with its lifetime set: `Max-Age` (a persistent
    /// cookie) or neither `Max-Age` nor `Expires` (a browser-session
    /// cookie). `None` when it already says so.
    fn with_lifetime(&self, max_age: Option<Duration>) -> Option<HeaderValue> {
        let max_age = max_age.map(|max_age| max_age.as_secs().to_string());
        let unchanged = match &max_age {
            None => self.lifetime_attributes == 0,
            Some(max_age) => {
                self.lifetime_attributes == 1 && self.max_age == Some(max_age.as_bytes())
            }
        };
        if unchanged {
            return None;
        }
        let bytes = self.header.as_bytes();
        let mut rewritten = Vec::with_capacity(bytes.len() + 24);
        let mut copied = 0;
        for (span, attribute) in attributes(bytes, 0) {
            let lifetime = attribute_value(attribute, MAX_AGE).is_some()
                || attribute_value(attribute, EXPIRES).is_some();
            if lifetime {
                rewritten.extend_from_slice(&bytes[copied..span.start]);
                copied = span.end;
            }
        }
        rewritten.extend_from_slice(&bytes[copied..]);
        if let Some(max_age) = max_age {
            rewritten.extend_from_slice(b"; Max-Age=");
            rewritten.extend_from_slice(max_age.as_bytes());
        }
        HeaderValue::from_bytes(&rewritten).ok()
    }
}

/// The attributes of a `Set-Cookie` header after the `;` at `from` (or
/// after its first `;`, for `0`): each with its span, from its `;` to the
/// next, and its text without leading white space.
fn attributes(bytes: &[u8], from: usize) -> impl Iterator<Item = (Range<usize>, &[u8])> {
    let mut at = if from == 0 {
        next_semicolon(bytes, 0)
    } else {
        from
    };
    std::iter::from_fn(move || {
        if at >= bytes.len() {
            return None;
        }
        let end = next_semicolon(bytes, at + 1);
        let span = at..end;
        at = end;
        Some((
            span.clone(),
            bytes[span.start + 1..span.end].trim_ascii_start(),
        ))
    })
}

/// The index of the next `;` at or after `from`, or the end.
fn next_semicolon(bytes: &[u8], from: usize) -> usize {
    crate::bytes::find_byte(bytes, from, b';').unwrap_or(bytes.len())
}

/// A lifetime attribute's name, as one 64-bit word: both are seven bytes
/// long, so a name is compared in one step, in any case, instead of a byte
/// at a time (this runs on every response that sets the followed cookie).
#[derive(Clone, Copy)]
struct AttributeName {
    /// The name in lower case, in the low seven bytes.
    lower: u64,
    /// `0x20` in the bytes that are letters: setting it folds `A`–`Z` to
    /// `a`–`z` and leaves a lower-case letter as it is.
    letters: u64,
}

impl AttributeName {
    const fn new(name: &[u8; 7]) -> Self {
        let mut lower = [0u8; 8];
        let mut letters = [0u8; 8];
        let mut index = 0;
        while index < 7 {
            lower[index] = name[index];
            if name[index].is_ascii_lowercase() {
                letters[index] = 0x20;
            }
            index += 1;
        }
        AttributeName {
            lower: u64::from_le_bytes(lower),
            letters: u64::from_le_bytes(letters),
        }
    }

    /// Whether `bytes` starts with this name, in any case.
    fn starts(self, bytes: &[u8]) -> bool {
        let Some(found) = bytes.get(..7) else {
            return false;
        };
        let mut word = [0u8; 8];
        word[..7].copy_from_slice(found);
        // Only `A`–`Z` and `a`–`z` become a lower-case letter when bit
        // 0x20 is set, and the other bytes are compared exactly.
        u64::from_le_bytes(word) | self.letters == self.lower
    }
}

const MAX_AGE: AttributeName = AttributeName::new(b"max-age");
const EXPIRES: AttributeName = AttributeName::new(b"expires");

/// The value of `attribute` (`Name=value`, spaces allowed around `=`) if
/// its name is `name`, in any case.
fn attribute_value(attribute: &[u8], name: AttributeName) -> Option<&[u8]> {
    if !name.starts(attribute) {
        return None;
    }
    let value = attribute[7..].trim_ascii_start().strip_prefix(b"=")?;
    Some(value.trim_ascii())
}

/// Whether the `Expires` of the `Set-Cookie` header has passed at `now`.
/// Dates are rare in a session layer's cookies, so the `cookie` crate
/// parses them.
fn expired(header: &HeaderValue, now: Timestamp) -> bool {
    let Ok(text) = header.to_str() else {
        return false;
    };
    let now = i128::from(now.as_unix_millis()) * 1_000_000;
    Cookie::parse(text).is_ok_and(|cookie| {
        cookie
            .expires_datetime()
            .is_some_and(|expires| expires.unix_timestamp_nanos() <= now)
    })
}

/// Applies `edit` to the followed cookie's `Set-Cookie` headers. A response
/// that still sets the session cookie afterwards must not be cached.
pub(crate) fn edit_cookies(config: &Config, edit: CookieEdit, headers: &mut HeaderMap) {
    // Whether the inner layer's own `Set-Cookie` of the session is left,
    // kept or rewritten: known from the edit, except when it is kept as is.
    let inner_cookie_left = match edit {
        CookieEdit::FromHandle | CookieEdit::Keep => headers
            .get_all(SET_COOKIE)
            .iter()
            .any(|header| SetCookie::read(config.cookie.name(), header).is_some()),
        // `settle` saw the followed cookie as the only `Set-Cookie`.
        CookieEdit::Drop { lone: true } => {
            headers.remove(SET_COOKIE);
            false
        }
        // Not known to be there: a login the inner layer wrote no cookie
        // for ends in a `Drop` too, and a lone `Set-Cookie` is then the
        // app's own.
        CookieEdit::Drop { lone: false } => {
            drop_followed(config, headers);
            false
        }
        // The cookies appended here forbid caching themselves.
        CookieEdit::Clear | CookieEdit::StoreFailed => {
            drop_followed(config, headers);
            config.cookie.append_removal(headers);
            false
        }
        CookieEdit::StoreFailedKeptId => {
            drop_followed(config, headers);
            false
        }
        CookieEdit::Reissue { id, max_age } => {
            drop_followed(config, headers);
            config.cookie.append_set(headers, &id, max_age);
            false
        }
        CookieEdit::Lifetime(max_age) => {
            let http::header::Entry::Occupied(mut entry) = headers.entry(SET_COOKIE) else {
                return;
            };
            let mut left = false;
            for header in entry.iter_mut() {
                let Some(set) = SetCookie::read(config.cookie.name(), header) else {
                    continue;
                };
                left = true;
                if let Some(rewritten) = set.with_lifetime(max_age) {
                    *header = rewritten;
                }
            }
            left
        }
    };
    if inner_cookie_left {
        forbid_caching(headers);
    }
}

/// Removes every `Set-Cookie` for the followed cookie, keeping the others.
fn drop_followed(config: &Config, headers: &mut HeaderMap) {
    let name = config.cookie.name();
    let http::header::Entry::Occupied(entry) = headers.entry(SET_COOKIE) else {
        return;
    };
    let mut values = entry.iter();
    let only = match (values.next(), values.next()) {
        (Some(only), None) => Some(SetCookie::read(name, only).is_some()),
        _ => None,
    };
    match only {
        Some(true) => {
            entry.remove();
        }
        Some(false) => {}
        None => {
            let (_, all) = entry.remove_entry_mult();
            let kept: Vec<HeaderValue> = all
                .filter(|header| SetCookie::read(name, header).is_none())
                .collect();
            for header in kept {
                headers.append(SET_COOKIE, header);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    proptest::proptest! {
        #[test]
        fn an_attribute_name_matches_as_eq_ignore_ascii_case_does(
            bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..10),
            spelled in "(?i:max-age|expires)[= ;a-z]{0,3}",
        ) {
            for (name, text) in [(MAX_AGE, &b"max-age"[..]), (EXPIRES, &b"expires"[..])] {
                for candidate in [&bytes[..], spelled.as_bytes()] {
                    let expected = candidate.get(..7).is_some_and(|found| found.eq_ignore_ascii_case(text));
                    proptest::prop_assert_eq!(name.starts(candidate), expected, "{:?}", candidate);
                }
            }
        }
    }

    #[test]
    fn an_attribute_name_folds_letters_only() {
        assert!(MAX_AGE.starts(b"MAX-AGE=1") && MAX_AGE.starts(b"mAx-aGe"));
        assert!(EXPIRES.starts(b"Expires=Thu"));
        // `\r` with bit 0x20 set is `-`, `M` with it cleared is `m`'s
        // partner, and `@` with it set is a backtick: none is the name.
        for near in [
            &b"max\rage"[..],
            b"max-ag",
            b"max_age",
            b"@ax-age",
            b"expire",
            b"expire\x13",
        ] {
            assert!(!MAX_AGE.starts(near) && !EXPIRES.starts(near), "{near:?}");
        }
    }

    fn set_cookie(text: &'static str) -> HeaderValue {
        HeaderValue::from_static(text)
    }

    fn followed_config() -> Config {
        Config {
            store: Arc::new(crate::MemoryStore::new()),
            backend: Arc::new(crate::MemoryStore::new()),
            metrics: None,
            clock: Arc::new(crate::clock::SystemClock),
            policies: crate::policy::LivePolicy::new(crate::Policies::single(
                crate::Policy::default(),
            )),
            cookie: crate::SessionCookie::tower_sessions(),
            on_invalid: Default::default(),
            on_store_error: Default::default(),
            followed: true,
            session_data: None,
            guesses: None,
            logout_redirects: crate::logout_redirect::LogoutRedirects::new("/").unwrap(),
            deadline_headers: None,
            status: None,
        }
    }

    fn set_cookies(headers: &HeaderMap) -> Vec<&str> {
        headers
            .get_all(SET_COOKIE)
            .iter()
            .map(|header| header.to_str().unwrap())
            .collect()
    }

    #[test]
    fn a_repeat_of_the_admitted_text_is_known_and_anything_else_is_decoded() {
        let config = followed_config();
        let id = SessionId::generate().unwrap();
        let other = SessionId::generate().unwrap();
        let text: IdText = id.encode().as_bytes().try_into().unwrap();
        let headers_of = |values: &[String]| {
            let mut headers = HeaderMap::new();
            for value in values {
                headers.append(SET_COOKIE, HeaderValue::from_str(value).unwrap());
            }
            headers
        };
        let read = |values: &[String]| {
            outbound(&config, &headers_of(values), Some(&id), Some(&text), None)
        };
        let repeat = format!("id={}; Path=/", id.encode());
        assert!(matches!(
            read(std::slice::from_ref(&repeat)),
            (Outbound::Repeated, true)
        ));
        assert!(matches!(
            read(&["theme=dark".into(), repeat.clone()]),
            (Outbound::Repeated, false)
        ));
        let moved = format!("id={}", other.encode());
        assert!(matches!(read(&[moved]), (Outbound::Set(set), true) if set == other));
        // One character changed is another ID; a percent-encoded spelling
        // names none.
        let mut changed = id.encode();
        changed.replace_range(..1, if changed.starts_with('A') { "B" } else { "A" });
        assert!(
            matches!(read(&[format!("id={changed}")]), (Outbound::Set(set), true) if set != id)
        );
        assert!(matches!(
            read(&[format!("id={}%41", id.encode())]),
            (Outbound::Unusable, true)
        ));
        assert!(matches!(
            read(&[format!("{repeat}; Max-Age=0")]),
            (Outbound::Removed, true)
        ));
        assert!(matches!(read(&[]), (Outbound::Untouched, false)));
    }

    #[test]
    fn dropping_the_followed_cookie_keeps_every_other_cookie() {
        let config = followed_config();
        let mut headers = HeaderMap::new();
        headers.append(SET_COOKIE, set_cookie("theme=dark; Path=/"));
        headers.append(SET_COOKIE, set_cookie("id=abc; Path=/"));
        headers.append(SET_COOKIE, set_cookie("lang=en"));
        edit_cookies(&config, CookieEdit::Drop { lone: false }, &mut headers);
        assert_eq!(set_cookies(&headers), ["theme=dark; Path=/", "lang=en"]);

        for lone in [false, true] {
            let mut alone = HeaderMap::new();
            alone.append(SET_COOKIE, set_cookie("id=abc; Path=/"));
            edit_cookies(&config, CookieEdit::Drop { lone }, &mut alone);
            assert!(set_cookies(&alone).is_empty(), "lone: {lone}");
        }
        // A login the inner layer wrote no cookie for: the app's lone one stays.
        let mut theirs = HeaderMap::new();
        theirs.append(SET_COOKIE, set_cookie("theme=dark"));
        edit_cookies(&config, CookieEdit::Drop { lone: false }, &mut theirs);
        assert_eq!(set_cookies(&theirs), ["theme=dark"]);

        let mut other = HeaderMap::new();
        other.append(SET_COOKIE, set_cookie("theme=dark"));
        edit_cookies(&config, CookieEdit::Clear, &mut other);
        let kept = set_cookies(&other);
        assert_eq!(kept[0], "theme=dark", "a lone other cookie stays");
        assert!(
            kept[1].starts_with("id=;"),
            "and the followed one is cleared"
        );
    }

    #[test]
    fn a_lifetime_edit_rewrites_the_followed_cookie_only() {
        let config = followed_config();
        let mut headers = HeaderMap::new();
        headers.append(SET_COOKIE, set_cookie("theme=dark; Max-Age=60"));
        headers.append(SET_COOKIE, set_cookie("id=abc; Max-Age=900; Path=/"));
        edit_cookies(
            &config,
            CookieEdit::Lifetime(Some(Duration::from_secs(30))),
            &mut headers,
        );
        assert_eq!(
            set_cookies(&headers),
            ["theme=dark; Max-Age=60", "id=abc; Path=/; Max-Age=30"]
        );
    }

    #[test]
    fn reads_only_the_followed_cookie() {
        let header = set_cookie("id=abc; HttpOnly; Path=/");
        assert_eq!(
            SetCookie::read("id", &header).map(|set| set.value),
            Some(&b"abc"[..])
        );
        assert!(SetCookie::read("i", &header).is_none());
        assert!(SetCookie::read("id", &set_cookie("idx=abc")).is_none());
        assert!(SetCookie::read("id", &set_cookie("garbage")).is_none());
        let quoted = set_cookie("id=\"abc\"; Path=/");
        assert_eq!(
            SetCookie::read("id", &quoted).map(|set| set.value),
            Some(&b"abc"[..])
        );
    }

    #[test]
    fn tells_a_removal() {
        let now = crate::clock::ManualClock::new(Timestamp::from_unix_millis(1_800_000_000_000));
        for removal in [
            "id=; Path=/",
            "id=abc; Max-Age=0",
            "id=abc; max-age=-1",
            "id=abc; Expires=Thu, 01 Jan 1970 00:00:00 GMT",
        ] {
            let header = set_cookie(removal);
            assert!(
                SetCookie::read("id", &header).unwrap().removes(&now),
                "{removal}"
            );
        }
        for kept in [
            "id=abc; Max-Age=60",
            "id=abc; Expires=Fri, 01 Jan 2100 00:00:00 GMT",
            "id=abc; Max-Age=x",
        ] {
            let header = set_cookie(kept);
            assert!(
                !SetCookie::read("id", &header).unwrap().removes(&now),
                "{kept}"
            );
        }
    }

    #[test]
    fn sets_our_lifetime_and_keeps_every_other_attribute() {
        let header = set_cookie("id=abc; HttpOnly; Max-Age=900; SameSite=Strict; Expires=Fri, 01 Jan 2100 00:00:00 GMT; Path=/");
        let set = SetCookie::read("id", &header).unwrap();
        assert_eq!(
            set.with_lifetime(None).unwrap(),
            "id=abc; HttpOnly; SameSite=Strict; Path=/"
        );
        assert_eq!(
            set.with_lifetime(Some(Duration::from_secs(60))).unwrap(),
            "id=abc; HttpOnly; SameSite=Strict; Path=/; Max-Age=60"
        );
        let right = set_cookie("id=abc; Path=/; Max-Age=60");
        let set = SetCookie::read("id", &right).unwrap();
        assert_eq!(
            set.with_lifetime(Some(Duration::from_secs(60))),
            None,
            "nothing to change"
        );
        let session = set_cookie("id=abc; Path=/");
        let set = SetCookie::read("id", &session).unwrap();
        assert_eq!(set.with_lifetime(None), None, "nothing to change");
    }
}
