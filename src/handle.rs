//! What a handler sees: the session's deadlines, and login / logout.

use std::fmt;
use std::sync::{Arc, MutexGuard, PoisonError};
use std::time::Duration;

mod spare;
mod state;

pub(crate) use self::state::{ActiveSession, PendingSession};
use self::state::{CookieChange, HandleInner, HandleState};

use http::{Extensions, HeaderMap, HeaderValue, Response};

pub use crate::own_sessions::SessionInfo;

use crate::config::Config;
use crate::id::{RandomnessError, SessionId, SessionKey};
use crate::observe::{self, EndReason};
use crate::policy::{judge, AtSessionLimit, Deadlines, Policy, PolicyChoice, Verdict};
use crate::record::{SessionRecord, MAX_LABEL_LEN, MAX_SUBJECT_LEN};
use crate::rejection::{see_other, RejectReason};
use crate::store::{StoreError, UpdateOutcome};
use crate::time::Timestamp;

/// How many fresh IDs `login` tries before it gives up. A collision of two
/// 128-bit random IDs is not expected in the lifetime of the universe; the
/// bound only keeps a broken store from looping forever.
const LOGIN_ATTEMPTS: usize = 3;

/// The session of the current request, in its extensions.
///
/// Every request that passes the layer carries one: for an admitted session
/// it reports the subject and deadlines; for a visitor it reports none, and
/// [`login`](SessionHandle::login) starts a session. Cookie changes are
/// written on the response when the handler returns.
///
/// ```
/// use axum::{routing::post, Extension, Router};
/// use tower_session_lifetime::{MemoryStore, SessionHandle, SessionLifetimeLayer};
///
/// async fn login(session: Extension<SessionHandle>) -> &'static str {
///     match session.login("alice", false).await {
///         Ok(()) => "signed in",
///         Err(_) => "try again later",
///     }
/// }
///
/// let app: Router = Router::new()
///     .route("/login", post(login))
///     .layer(SessionLifetimeLayer::new(MemoryStore::new()));
/// # let _ = app;
/// ```
#[derive(Clone)]
pub struct SessionHandle {
    config: Arc<Config>,
    /// What the handler and the layer share for this request. Kept apart
    /// from the configuration so that the layer can reuse it for the next
    /// request on the thread (see [`spare`]).
    inner: Arc<HandleInner>,
}

impl SessionHandle {
    /// The handle the layer put into `extensions`, or an error saying that
    /// the layer is not installed.
    pub fn from_extensions(extensions: &Extensions) -> Result<Self, MissingSessionLayer> {
        extensions
            .get::<SessionHandle>()
            .cloned()
            .ok_or(MissingSessionLayer)
    }

    #[inline]
    pub(crate) fn admitted(
        config: Arc<Config>,
        choice: PolicyChoice,
        session: ActiveSession,
        refresh_cookie: bool,
        renewed: bool,
    ) -> Self {
        let cookie = if renewed || (refresh_cookie && session.record.remember_me) {
            CookieChange::Write
        } else {
            CookieChange::Keep
        };
        let signed_in = session.record.subject.is_some();
        SessionHandle::with_state(
            config,
            choice,
            HandleState {
                session: Some(session),
                cookie,
                rejected: None,
                unconfirmed: None,
                pending: None,
                signed_in,
            },
        )
    }

    /// A request without a live session. `clear_cookie` removes a stale
    /// cookie from the browser; `unconfirmed` is the session a cookie named
    /// that the store could not check.
    pub(crate) fn visitor(
        config: Arc<Config>,
        choice: PolicyChoice,
        rejected: Option<RejectReason>,
        clear_cookie: bool,
        unconfirmed: Option<SessionId>,
    ) -> Self {
        let cookie = if clear_cookie {
            CookieChange::Clear
        } else {
            CookieChange::Keep
        };
        SessionHandle::with_state(
            config,
            choice,
            HandleState {
                session: None,
                cookie,
                rejected,
                unconfirmed,
                pending: None,
                signed_in: false,
            },
        )
    }

    #[inline]
    fn with_state(config: Arc<Config>, choice: PolicyChoice, state: HandleState) -> Self {
        SessionHandle {
            config,
            inner: spare::fill(choice, state),
        }
    }

    /// Ends the layer's part in the request: the handle's shared state goes
    /// back to this thread's spare when no clone of it is left (the handler
    /// kept none), so that the next request needs no allocation for it.
    pub(crate) fn finished(self) {
        spare::keep(self.inner);
    }

    /// The policy the request is judged by: its tenant's, tightened for its
    /// route group.
    pub(crate) fn policy(&self) -> std::borrow::Cow<'_, Policy> {
        self.config.policies.policy(self.inner.choice)
    }

    /// The policy a session started in this request is snapshotted with:
    /// its tenant's.
    pub(crate) fn base_policy(&self) -> std::borrow::Cow<'_, Policy> {
        self.config.policies.base(self.inner.choice)
    }

    fn state(&self) -> MutexGuard<'_, HandleState> {
        self.inner
            .state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Whether the request has a live session.
    pub fn is_active(&self) -> bool {
        self.state().session.is_some()
    }

    /// Who the session belongs to.
    pub fn subject(&self) -> Option<String> {
        self.state()
            .session
            .as_ref()
            .and_then(|session| session.record.subject.as_deref().map(String::from))
    }

    /// When the session was created (its login).
    pub fn created_at(&self) -> Option<Timestamp> {
        self.state()
            .session
            .as_ref()
            .map(|session| session.record.created_at)
    }

    /// The session's idle and absolute deadlines as the layer enforces them:
    /// counting this request if it wrote its activity, and otherwise from
    /// the activity stored less than a touch granularity ago (see
    /// [`Policy::touch_granularity`](crate::Policy::touch_granularity)).
    pub fn deadlines(&self) -> Option<Deadlines> {
        self.state()
            .session
            .as_ref()
            .map(|session| session.deadlines)
    }

    /// When the subject last proved who they are: the login, or the latest
    /// [re-authentication](SessionHandle::reauthenticate).
    pub fn authenticated_at(&self) -> Option<Timestamp> {
        self.state()
            .session
            .as_ref()
            .map(|session| session.record.authenticated_at)
    }

    /// Whether the session's subject authenticated (signed in, or
    /// [re-authenticated](SessionHandle::reauthenticate)) less than
    /// `max_age` ago; `false` without a session. What
    /// [`RecentLoginLayer`](crate::recent_login::RecentLoginLayer) checks, for a handler
    /// that decides by itself.
    pub fn authenticated_within(&self, max_age: Duration) -> bool {
        let Some(at) = self.authenticated_at() else {
            return false;
        };
        self.config.clock.now() < at.saturating_add(max_age)
    }

    /// The session's [label](SessionHandle::login_labelled), if it has one.
    pub fn label(&self) -> Option<String> {
        self.state()
            .session
            .as_ref()
            .and_then(|session| session.record.label.as_deref().map(String::from))
    }

    /// Whether the session is a remember-me session.
    pub fn remember_me(&self) -> bool {
        self.state()
            .session
            .as_ref()
            .is_some_and(|session| session.record.remember_me)
    }

    /// Why the request's session cookie was not admitted, when the layer
    /// passed it through as a visitor.
    pub fn rejection(&self) -> Option<RejectReason> {
        self.state().rejected
    }

    /// Starts a new session for `subject`: a new ID, a new creation time.
    /// Any session the request had ends first, so its ID is dead at once
    /// (no session fixation). With `remember_me` the session lives by the
    /// remember-me period and its cookie is persistent.
    ///
    /// When the layer [follows a cookie another layer
    /// issues](crate::SessionLifetimeLayer::follow_tower_sessions), that
    /// layer gives the new ID (axum-login's `login` cycles it): `login` then
    /// only says whose session it is and whether to remember it, and the
    /// session starts when the response carries the new ID. If the response
    /// keeps the old ID instead, the old session is ended and its cookie
    /// cleared rather than let a login keep a pre-login ID.
    pub async fn login(
        &self,
        subject: impl Into<String>,
        remember_me: bool,
    ) -> Result<(), SessionError> {
        self.start(subject.into(), remember_me, None).await
    }

    /// [`login`](SessionHandle::login), with a `label` the user will see in
    /// their [list of sessions](SessionHandle::sessions) (a device, a
    /// browser: "Firefox on Linux"). Not secret, at most
    /// [`MAX_LABEL_LEN`] bytes.
    ///
    /// ```
    /// use axum::http::{header::USER_AGENT, HeaderMap};
    /// use tower_session_lifetime::SessionHandle;
    ///
    /// async fn login(session: SessionHandle, headers: HeaderMap) -> &'static str {
    ///     let agent = headers.get(USER_AGENT).and_then(|v| v.to_str().ok()).unwrap_or("a browser");
    ///     let label: String = agent.chars().take(100).collect();
    ///     match session.login_labelled("alice", false, label).await {
    ///         Ok(()) => "welcome",
    ///         Err(_) => "please try again",
    ///     }
    /// }
    /// # let _ = login;
    /// ```
    pub async fn login_labelled(
        &self,
        subject: impl Into<String>,
        remember_me: bool,
        label: impl Into<String>,
    ) -> Result<(), SessionError> {
        self.start(subject.into(), remember_me, Some(label.into()))
            .await
    }

    async fn start(
        &self,
        subject: String,
        remember_me: bool,
        label: Option<String>,
    ) -> Result<(), SessionError> {
        if subject.len() > MAX_SUBJECT_LEN {
            return Err(SessionError::SubjectTooLong {
                len: subject.len(),
                max: MAX_SUBJECT_LEN,
            });
        }
        if let Some(len) = label
            .as_ref()
            .map(String::len)
            .filter(|&len| len > MAX_LABEL_LEN)
        {
            return Err(SessionError::LabelTooLong {
                len,
                max: MAX_LABEL_LEN,
            });
        }
        let label: Option<Arc<str>> = label.map(Into::into);
        let config = &self.config;
        if config.followed && config.session_data.is_none() && self.state().signed_in {
            // The other layer may keep the signed-in ID (axum-login does),
            // and without its store the layer cannot give the session
            // another: say so now, not with a response that signs out.
            return Err(SessionError::NewIdNeedsDataStore);
        }
        if !config.followed {
            self.end_current_session(Some(EndReason::Replaced)).await?;
        }
        self.make_room_for(&subject).await?;
        if config.followed {
            self.state().pending = Some(PendingSession {
                subject: Some(subject.into()),
                remember_me,
                login: true,
                label,
            });
            return Ok(());
        }
        let record = SessionRecord {
            label,
            ..SessionRecord::new(
                &self.base_policy(),
                config.clock.now(),
                Some(subject.into()),
                remember_me,
            )
        };
        for _ in 0..LOGIN_ATTEMPTS {
            let id = SessionId::generate().map_err(SessionError::Randomness)?;
            let key = id.key();
            if config.store.create(&key, &record).await? {
                observe::started(config.metrics.as_ref(), &key);
                let deadlines = Deadlines::of(&record.limits, &record);
                let admitted_at = record.created_at;
                let mut state = self.state();
                state.session = Some(ActiveSession {
                    id,
                    key,
                    record,
                    deadlines,
                    in_grace: false,
                    admitted_at,
                });
                state.cookie = CookieChange::Write;
                return Ok(());
            }
        }
        Err(SessionError::IdCollision)
    }

    /// Applies the policy's [session limit](crate::policy::PolicyBuilder::max_sessions_per_subject)
    /// before `subject` logs in: ends its oldest live sessions, or refuses.
    async fn make_room_for(&self, subject: &str) -> Result<(), SessionError> {
        let config = &self.config;
        let policy = self.base_policy();
        let Some(limit) = policy.session_limit() else {
            return Ok(());
        };
        let now = config.clock.now();
        let mut live: Vec<(SessionKey, SessionRecord)> = config
            .store
            .sessions_of(subject)
            .await?
            .into_iter()
            .filter(|(_, record)| matches!(judge(&policy, record, now), Verdict::Admitted(_)))
            .collect();
        let max = usize::try_from(limit.max).unwrap_or(usize::MAX);
        if live.len() < max {
            return Ok(());
        }
        if limit.at_limit == AtSessionLimit::RefuseLogin {
            return Err(SessionError::SessionLimit { max: limit.max });
        }
        live.sort_by_key(|(_, record)| record.created_at);
        for (key, _) in &live[..=live.len() - max] {
            if config.store.delete(key).await? {
                observe::ended(config.metrics.as_ref(), key, EndReason::Limit);
            }
        }
        Ok(())
    }

    /// Ends every session of this session's subject, on every device and
    /// node, this one included, and clears the cookie: a "log out
    /// everywhere" button, or what to do after a password change. Returns
    /// how many sessions ended. A session without a subject only ends
    /// itself. Needs a store that lists a subject's sessions; otherwise a
    /// store error of kind [`Unsupported`](crate::store::StoreErrorKind::Unsupported),
    /// and nothing ends.
    ///
    /// The same is available without a request, for an admin action, as
    /// [`LifetimeStore::delete_sessions_of`](crate::store::LifetimeStore::delete_sessions_of).
    pub async fn logout_everywhere(&self) -> Result<u64, SessionError> {
        let subject = self
            .state()
            .session
            .as_ref()
            .and_then(|session| session.record.subject.clone());
        let Some(subject) = subject else {
            let had_session = self.is_active();
            self.logout().await?;
            return Ok(u64::from(had_session));
        };
        let config = &self.config;
        // Listed first, for an event naming each; a store that cannot list
        // cannot delete them all either, and says so below.
        let listed: Vec<SessionKey> = match config.store.sessions_of(&subject).await {
            Ok(listed) => listed.into_iter().map(|(key, _)| key).collect(),
            Err(_) => Vec::new(),
        };
        let ended = config.store.delete_sessions_of(&subject).await?;
        observe::ended_many(
            config.metrics.as_ref(),
            &listed,
            ended,
            EndReason::LogoutEverywhere,
        );
        // This session too, under its ID's own key (a renewed ID's pointer);
        // counted above.
        self.end_current_session(None).await?;
        self.state().cookie = CookieChange::Clear;
        Ok(ended)
    }

    /// [`logout`](SessionHandle::logout), then a `303 See Other` to
    /// `return_to` if it is on the layer's [allow-list](crate::logout_redirect::LogoutRedirects)
    /// (set with
    /// [`with_logout_redirects`](crate::SessionLifetimeLayer::with_logout_redirects)),
    /// and to the list's default otherwise. Never to a URL an attacker put
    /// in a link: that would be an open redirect, a phishing aid.
    ///
    #[cfg_attr(feature = "axum", doc = "```")]
    // Needs the axum extractor: not compiled without the `axum` feature.
    #[cfg_attr(not(feature = "axum"), doc = "```ignore")]
    /// use axum::{extract::Query, response::IntoResponse, routing::post, Router};
    /// use tower_session_lifetime::{MemoryStore, SessionHandle, SessionLifetimeLayer, logout_redirect::LogoutRedirects};
    ///
    /// #[derive(serde::Deserialize)]
    /// struct Params { return_to: Option<String> }
    ///
    /// async fn logout(session: SessionHandle, Query(params): Query<Params>) -> impl IntoResponse {
    ///     session.logout_and_redirect(params.return_to.as_deref()).await
    /// }
    ///
    /// let redirects = LogoutRedirects::new("/")?.allow("/goodbye")?;
    /// let app: Router = Router::new()
    ///     .route("/logout", post(logout))
    ///     .layer(SessionLifetimeLayer::new(MemoryStore::new()).with_logout_redirects(redirects));
    /// # let _ = app;
    /// # Ok::<(), tower_session_lifetime::logout_redirect::RedirectConfigError>(())
    /// ```
    pub async fn logout_and_redirect(
        &self,
        return_to: Option<&str>,
    ) -> Result<LogoutRedirect, SessionError> {
        self.logout().await?;
        let location = self.config.logout_redirects.target(return_to).clone();
        Ok(LogoutRedirect { location })
    }

    /// Ends the session in the store and clears the cookie. A request still
    /// in flight on the same session cannot bring it back. Without a session
    /// it only clears the cookie. With a followed cookie and
    /// `delete_data_from` (feature `tower-sessions`),
    /// the session's data is deleted too.
    pub async fn logout(&self) -> Result<(), SessionError> {
        self.end_current_session(Some(EndReason::Logout)).await?;
        self.state().cookie = CookieChange::Clear;
        Ok(())
    }

    /// Deletes the request's session, if it has one (or the one its cookie
    /// named when the store could not confirm it), and clears its cookie;
    /// an event says it ended for `reason`, if given.
    async fn end_current_session(&self, reason: Option<EndReason>) -> Result<(), SessionError> {
        let ending = {
            let state = self.state();
            match (&state.session, &state.unconfirmed) {
                // The ID's own key: for a renewed ID in its grace period,
                // the pointer, whose deletion ends the session it points to.
                (Some(session), _) => Some((session.id.clone(), session.id.key())),
                (None, Some(id)) => Some((id.clone(), id.key())),
                (None, None) => None,
            }
        };
        if let Some((id, key)) = ending {
            let ended = self.config.end_session(&id, &key).await?;
            if let (true, Some(reason)) = (ended, reason) {
                observe::ended(self.config.metrics.as_ref(), &key, reason);
            }
            let mut state = self.state();
            state.session = None;
            state.unconfirmed = None;
            state.cookie = CookieChange::Clear;
        }
        Ok(())
    }

    /// Turns remember-me on or off for the current session: its idle limit
    /// becomes the remember-me period (or back), its cookie persistent (or a
    /// browser-session cookie). The absolute deadline never moves later: if
    /// the limit for the new kind of session is shorter (a separate
    /// [remember-me absolute timeout](crate::policy::PolicyBuilder::remember_me_absolute_timeout)),
    /// it applies from the session's creation; otherwise the deadline stays
    /// where it was.
    ///
    /// With a followed cookie, the choice also applies to a session the
    /// inner layer starts in this request (a login through axum-login), so a
    /// sign-in handler may call it before that session exists.
    pub async fn set_remember_me(&self, remember_me: bool) -> Result<(), SessionError> {
        let current = {
            let mut state = self.state();
            if self.config.followed {
                state
                    .pending
                    .get_or_insert_with(Default::default)
                    .remember_me = remember_me;
            }
            state
                .session
                .as_ref()
                .map(|session| (session.key, session.record.clone()))
        };
        let (key, mut record) = match current {
            Some(current) => current,
            None if self.config.followed => return Ok(()),
            None => return Err(SessionError::NoSession),
        };
        if record.remember_me == remember_me {
            return Ok(());
        }
        let limits = record
            .limits
            .tightest(self.base_policy().limits())
            .switching_remember_me(record.remember_me, remember_me);
        record.limits = limits;
        record.remember_me = remember_me;
        self.replace_record(key, record).await?;
        self.state().cookie = CookieChange::Write;
        Ok(())
    }

    /// Records that the subject proved who they are again (a password
    /// asked for before a sensitive action): the
    /// [recent-login guard](crate::recent_login::RecentLoginLayer) counts from now. The
    /// session, its ID and its absolute deadline stay as they are; for a
    /// fresh session (a new ID, a new absolute period), call
    /// [`login`](SessionHandle::login) instead.
    ///
    /// ```
    /// use tower_session_lifetime::{SessionError, SessionHandle};
    ///
    /// async fn confirm_password(session: SessionHandle, password_ok: bool) -> Result<&'static str, SessionError> {
    ///     if !password_ok {
    ///         return Ok("wrong password");
    ///     }
    ///     session.reauthenticate().await?;
    ///     Ok("confirmed")
    /// }
    /// # let _ = confirm_password;
    /// ```
    pub async fn reauthenticate(&self) -> Result<(), SessionError> {
        let Some((key, mut record)) = self.current_record() else {
            return Err(SessionError::NoSession);
        };
        record.authenticated_at = self.config.clock.now();
        self.replace_record(key, record).await
    }

    /// Writes `record` (changed from the session's) over the session's
    /// record, if no other request replaced it meanwhile, with a new
    /// version and expiry; the handle then holds it.
    async fn replace_record(
        &self,
        key: SessionKey,
        mut record: SessionRecord,
    ) -> Result<(), SessionError> {
        let expected_version = record.version;
        record.version = record.version.wrapping_add(1);
        let deadlines = self.policy().deadlines(&record, record.last_activity);
        record.expires_at = self.base_policy().expiry(&record, record.last_activity);
        let outcome = self
            .config
            .store
            .update(&key, expected_version, &record)
            .await?;
        match outcome {
            UpdateOutcome::Updated => {
                if let Some(session) = self.state().session.as_mut() {
                    session.record = record;
                    session.deadlines = deadlines;
                }
                Ok(())
            }
            UpdateOutcome::Missing => {
                let mut state = self.state();
                state.session = None;
                state.cookie = CookieChange::Clear;
                Err(SessionError::NoSession)
            }
            UpdateOutcome::Conflict => Err(SessionError::Conflict),
        }
    }

    /// The layer's configuration.
    pub(crate) fn config(&self) -> &Config {
        &self.config
    }

    /// The session's key and record, as this request knows them.
    pub(crate) fn current_record(&self) -> Option<(SessionKey, SessionRecord)> {
        self.state()
            .session
            .as_ref()
            .map(|session| (session.key, session.record.clone()))
    }

    /// Writes the cookie change this request made onto the response headers.
    pub(crate) fn write_cookie(&self, headers: &mut HeaderMap) {
        let config = &self.config;
        let state = self.state();
        match (state.cookie, &state.session) {
            (CookieChange::Keep, _) => {}
            (CookieChange::Clear, _) | (CookieChange::Write, None) => {
                config.cookie.append_removal(headers)
            }
            (CookieChange::Write, Some(session)) if session.in_grace => {}
            (CookieChange::Write, Some(session)) => {
                let max_age = session.cookie_max_age(config.clock.now(), &self.base_policy());
                config.cookie.append_set(headers, &session.id, max_age);
            }
        }
    }

    /// Writes the session's deadlines into the response headers, when the
    /// layer is configured to and the session is still live.
    pub(crate) fn write_deadline_headers(&self, headers: &mut HeaderMap) {
        let Some(names) = &self.config.deadline_headers else {
            return;
        };
        if let Some(session) = &self.state().session {
            names.write(&session.deadlines, headers);
        }
    }

    /// For a followed cookie: the little the response needs to know of
    /// this request's session on every response.
    pub(crate) fn followed_flags(&self) -> FollowedFlags {
        let state = self.state();
        FollowedFlags {
            active: state.session.is_some(),
            login: state.pending.as_ref().is_some_and(|pending| pending.login),
            refresh: state.cookie == CookieChange::Write,
        }
    }

    /// For a followed cookie: what the response needs to know of this
    /// request's session.
    pub(crate) fn followed_state(&self) -> FollowedState {
        let now = self.config.clock.now();
        let state = self.state();
        FollowedState {
            current: state.session.as_ref().map(|session| CurrentSession {
                id: session.id.clone(),
                key: session.key,
                record: session.record.clone(),
                cookie_max_age: session.cookie_max_age(now, &self.base_policy()),
                admitted_at: session.admitted_at,
            }),
            pending: state.pending.clone().unwrap_or_default(),
            unconfirmed: state.unconfirmed.clone(),
            choice: self.inner.choice,
        }
    }
}

/// [`SessionHandle::followed_flags`].
#[derive(Clone, Copy, Debug)]
pub(crate) struct FollowedFlags {
    /// Whether the session is live (not ended through the handle).
    pub(crate) active: bool,
    /// Whether the handler called `login`.
    pub(crate) login: bool,
    /// Whether the session's cookie needs a new `Max-Age` (activity of a
    /// remember-me session was written, or remember-me changed).
    pub(crate) refresh: bool,
}

/// A followed cookie's request as its handle left it.
pub(crate) struct FollowedState {
    /// The live session, unless it was ended.
    pub(crate) current: Option<CurrentSession>,
    /// What the handler asked of a session the inner layer starts.
    pub(crate) pending: PendingSession,
    /// The session a cookie named that the store could not confirm.
    pub(crate) unconfirmed: Option<SessionId>,
    /// The request's policies.
    pub(crate) choice: PolicyChoice,
}

/// The live session of a followed cookie's request.
pub(crate) struct CurrentSession {
    /// The ID the request presented.
    pub(crate) id: SessionId,
    /// Where the session's record is: the ID's key.
    pub(crate) key: SessionKey,
    pub(crate) record: SessionRecord,
    pub(crate) cookie_max_age: Option<Duration>,
    /// When the layer admitted the request.
    pub(crate) admitted_at: Timestamp,
}

impl fmt::Debug for SessionHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.state();
        f.debug_struct("SessionHandle")
            .field("active", &state.session.is_some())
            .field("deadlines", &state.session.as_ref().map(|s| s.deadlines))
            .field("rejected", &state.rejected)
            .finish()
    }
}

/// Where a logout sends the browser: `303 See Other` to an allowed
/// location. See [`SessionHandle::logout_and_redirect`]; with the `axum`
/// feature it is a response.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogoutRedirect {
    location: HeaderValue,
}

impl LogoutRedirect {
    /// The allowed location.
    pub fn location(&self) -> &HeaderValue {
        &self.location
    }

    /// The `303 See Other` response.
    pub fn into_response<B: Default>(self) -> Response<B> {
        see_other(self.location)
    }
}

/// A session operation failed.
#[derive(Debug)]
#[non_exhaustive]
pub enum SessionError {
    /// The store failed; nothing was changed that the store did not confirm.
    Store(StoreError),
    /// The request has no live session (or it ended meanwhile).
    NoSession,
    /// Another request changed the session at the same time; try again.
    Conflict,
    /// The subject is longer than [`MAX_SUBJECT_LEN`] bytes.
    SubjectTooLong {
        /// Its length in bytes.
        len: usize,
        /// The bound.
        max: usize,
    },
    /// The label is longer than [`MAX_LABEL_LEN`] bytes.
    LabelTooLong {
        /// Its length in bytes.
        len: usize,
        /// The bound.
        max: usize,
    },
    /// The operating system's random number generator failed.
    Randomness(RandomnessError),
    /// The store refused every fresh ID as taken: the store is broken.
    IdCollision,
    /// The subject has the most sessions the policy allows and the policy
    /// says to refuse a new login
    /// ([`AtSessionLimit::RefuseLogin`]).
    SessionLimit {
        /// The limit.
        max: u32,
    },
    /// With a followed cookie: a sign-in over a signed-in session, where the
    /// other layer may keep the session's ID (axum-login does) and the
    /// layer has no store of the session data to move the session to a
    /// new ID with. Give the layer that store
    /// ([`delete_data_from`](crate::SessionLifetimeLayer::follow_tower_sessions),
    /// feature `tower-sessions`), or sign out first and sign in with a new
    /// request.
    NewIdNeedsDataStore,
}

impl fmt::Display for SessionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SessionError::Store(_) => f.write_str("session store failed"),
            SessionError::NoSession => f.write_str("the request has no live session"),
            SessionError::Conflict => f.write_str("the session was changed concurrently"),
            SessionError::SubjectTooLong { len, max } => {
                write!(f, "subject of {len} bytes is longer than {max} bytes")
            }
            SessionError::LabelTooLong { len, max } => {
                write!(f, "label of {len} bytes is longer than {max} bytes")
            }
            SessionError::Randomness(_) => f.write_str("the OS random number generator failed"),
            SessionError::IdCollision => f.write_str("the store refused every fresh session ID"),
            SessionError::SessionLimit { max } => {
                write!(
                    f,
                    "the subject already has the most sessions allowed ({max})"
                )
            }
            SessionError::NewIdNeedsDataStore => f.write_str(
                "a sign-in over a signed-in session of another layer needs that layer's \
                 session store (delete_data_from) to give the session a new ID",
            ),
        }
    }
}

impl std::error::Error for SessionError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            SessionError::Store(err) => Some(err),
            SessionError::Randomness(err) => Some(err),
            _ => None,
        }
    }
}

impl From<StoreError> for SessionError {
    fn from(err: StoreError) -> Self {
        SessionError::Store(err)
    }
}

/// The request has no [`SessionHandle`]: `SessionLifetimeLayer` is not
/// installed on its route. With the `axum` feature it answers
/// `500 Internal Server Error` with this message.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MissingSessionLayer;

impl fmt::Display for MissingSessionLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("no session handle: SessionLifetimeLayer is not installed on this route")
    }
}

impl std::error::Error for MissingSessionLayer {}
