//! Following a session cookie that another layer issues (tower-sessions):
//! what its `Set-Cookie` on the way out means for the lifetime records, and
//! the cookie lifetime the browser is told.
//!
//! | the inner layer's response                | the lifetime record                        | the cookie                          |
//! | ----------------------------------------- | ------------------------------------------ | ----------------------------------- |
//! | sets a new ID (first session, `cycle_id`) | a new one, created now; the old one ends   | its lifetime set to the new record's |
//! | sets the admitted ID again                | unchanged                                  | its lifetime set to the record's     |
//! | removes the cookie (`flush`, logout)      | ends                                       | removed                              |
//! | leaves the cookie alone                   | as the handle said                         | as the handle said                   |
//!
//! "Its lifetime" is our rule, not the inner layer's: a remember-me session
//! gets `Max-Age` up to its nearest deadline, any other a browser-session
//! cookie. A login (through the handle) on which the inner layer keeps the
//! old ID ends that session instead of letting a login keep a pre-login ID.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use cookie::Cookie;
use http::header::SET_COOKIE;
use http::{HeaderMap, HeaderValue};

use super::Config;
use crate::handle::{PendingSession, SessionHandle};
use crate::id::SessionId;
use crate::policy::Deadlines;
use crate::record::SessionRecord;
use crate::time::Timestamp;

/// What the inner layer did to the followed cookie on the way out.
enum Outbound {
    Untouched,
    Removed,
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
    /// The inner layer's removal, as it wrote it.
    Keep,
    /// No cookie for this session: drop the inner layer's, clear the
    /// browser's.
    Clear,
    /// The store failed while starting the session: answer as for a store
    /// failure, and clear the cookie.
    StoreFailed,
}

/// A cookie edit now, or once the store has been told.
pub(crate) enum Settle {
    Now(CookieEdit),
    Later(Pin<Box<dyn Future<Output = CookieEdit> + Send>>),
}

/// Decides what the inner layer's response means; see the module docs.
pub(crate) fn settle(
    config: &Arc<Config>,
    handle: &SessionHandle,
    admitted: Option<&SessionId>,
    headers: &HeaderMap,
) -> Settle {
    let (current, pending) = handle.followed_state();
    let login = pending.as_ref().is_some_and(|pending| pending.login);
    match outbound(config, headers) {
        Outbound::Unusable => {
            tracing::warn!(
                "the session layer set a session cookie that cannot be followed; cleared"
            );
            Settle::Now(CookieEdit::Clear)
        }
        Outbound::Set(id) if Some(&id) != admitted => Settle::Later(Box::pin(start(
            Arc::clone(config),
            id,
            admitted.cloned(),
            pending.unwrap_or_default(),
        ))),
        Outbound::Removed => match current {
            Some((id, _)) => Settle::Later(Box::pin(end(Arc::clone(config), id, CookieEdit::Keep))),
            None => Settle::Now(CookieEdit::Keep),
        },
        outbound => {
            let set_again = matches!(outbound, Outbound::Set(_));
            match current {
                Some((id, _)) if login => {
                    tracing::warn!(
                        "login kept the pre-login session ID; the session is ended instead"
                    );
                    Settle::Later(Box::pin(end(Arc::clone(config), id, CookieEdit::Clear)))
                }
                Some((_, max_age)) if set_again => Settle::Now(CookieEdit::Lifetime(max_age)),
                // Ended through the handle; the inner layer saved it anyway.
                None if set_again => Settle::Now(CookieEdit::Clear),
                _ => Settle::Now(CookieEdit::FromHandle),
            }
        }
    }
}

/// Starts the lifetime of `id`, a session the inner layer just started, and
/// ends `retired`, the one it replaces.
async fn start(
    config: Arc<Config>,
    id: SessionId,
    retired: Option<SessionId>,
    pending: PendingSession,
) -> CookieEdit {
    let now = config.clock.now();
    let record = SessionRecord::new(&config.policy, now, pending.subject, pending.remember_me);
    let edit = match config.store.create(&id.key(), &record).await {
        Ok(true) => CookieEdit::Lifetime(record.remember_me.then(|| {
            Deadlines::of(&record.limits, &record)
                .nearest()
                .saturating_duration_since(now)
        })),
        Ok(false) => {
            tracing::warn!("the session layer set an ID that already has a lifetime; cleared");
            CookieEdit::Clear
        }
        Err(err) => {
            tracing::warn!(error = %err, "could not start the lifetime of a new session");
            config.delete_data(&id).await;
            CookieEdit::StoreFailed
        }
    };
    if let Some(retired) = retired {
        ended(&config, &retired).await;
    }
    edit
}

/// Ends the session `id`, then edits the cookie as `edit` says.
async fn end(config: Arc<Config>, id: SessionId, edit: CookieEdit) -> CookieEdit {
    ended(&config, &id).await;
    edit
}

async fn ended(config: &Config, id: &SessionId) {
    if let Err(err) = config.end_session(id, &id.key()).await {
        tracing::warn!(error = %err, "could not end a session the session layer ended");
    }
}

/// The last `Set-Cookie` the inner layer wrote for the followed cookie.
fn outbound(config: &Config, headers: &HeaderMap) -> Outbound {
    let mut found = Outbound::Untouched;
    for header in headers.get_all(SET_COOKIE) {
        let Some(cookie) = parse_named(config.cookie.name(), header) else {
            continue;
        };
        found = if is_removal(&cookie, config.clock.now()) {
            Outbound::Removed
        } else {
            match config.cookie.decode(cookie.value().as_bytes()) {
                Ok(id) => Outbound::Set(id),
                Err(_) => Outbound::Unusable,
            }
        };
    }
    found
}

/// `header` parsed, if it sets the cookie called `name`.
fn parse_named<'a>(name: &str, header: &'a HeaderValue) -> Option<Cookie<'a>> {
    let text = header.to_str().ok()?;
    let after_name = text.trim_start().strip_prefix(name)?;
    if !after_name.trim_start().starts_with('=') {
        return None;
    }
    Cookie::parse(text).ok()
}

fn is_removal(cookie: &Cookie<'_>, now: Timestamp) -> bool {
    let now = i128::from(now.as_unix_millis()) * 1_000_000;
    cookie.value().is_empty()
        || cookie
            .max_age()
            .is_some_and(|max_age| max_age <= cookie::time::Duration::ZERO)
        || cookie
            .expires_datetime()
            .is_some_and(|expires| expires.unix_timestamp_nanos() <= now)
}

/// Applies `edit` to the followed cookie's `Set-Cookie` headers.
pub(crate) fn edit_cookies(config: &Config, edit: CookieEdit, headers: &mut HeaderMap) {
    match edit {
        CookieEdit::FromHandle | CookieEdit::Keep => {}
        CookieEdit::Clear | CookieEdit::StoreFailed => {
            take_followed(config, headers);
            config.cookie.append_removal(headers);
        }
        CookieEdit::Lifetime(max_age) => {
            let Some(mut cookie) = take_followed(config, headers) else {
                return;
            };
            cookie.unset_expires();
            cookie.set_max_age(max_age.map(|max_age| {
                cookie::time::Duration::seconds(
                    i64::try_from(max_age.as_secs()).unwrap_or(i64::MAX),
                )
            }));
            if let Ok(header) = HeaderValue::try_from(cookie.to_string()) {
                headers.append(SET_COOKIE, header);
            }
        }
    }
}

/// Removes every `Set-Cookie` for the followed cookie, keeping the others,
/// and returns the last one removed.
fn take_followed(config: &Config, headers: &mut HeaderMap) -> Option<Cookie<'static>> {
    let name = config.cookie.name();
    if !headers
        .get_all(SET_COOKIE)
        .iter()
        .any(|header| parse_named(name, header).is_some())
    {
        return None;
    }
    let mut last = None;
    let all: Vec<HeaderValue> = headers.get_all(SET_COOKIE).iter().cloned().collect();
    headers.remove(SET_COOKIE);
    for header in all {
        match parse_named(name, &header) {
            Some(cookie) => last = Some(cookie.into_owned()),
            None => {
                headers.append(SET_COOKIE, header);
            }
        }
    }
    last
}
