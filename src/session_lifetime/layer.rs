//! [`SessionLifetimeLayer`]: the configuration, applied to a service.

use std::sync::Arc;

use tower_layer::Layer;

use super::service::SessionLifetime;
use crate::clock::{Clock, SystemClock};
use crate::config::Config;
use crate::deadline_headers::DeadlineHeaders;
use crate::guessing::{GuessCounter, GuessLimit};
use crate::logout_redirect::LogoutRedirects;
use crate::observe::{InstrumentedStore, SessionMetrics};
use crate::policy::{LivePolicy, Policies, Policy};
use crate::rejection::StatusJson;
use crate::rejection::{DefaultRejection, OnInvalidSession, OnStoreError};
use crate::session_cookie::SessionCookie;
use crate::status::StatusEndpoint;
use crate::store::LifetimeStore;

/// Enforces session lifetimes before the inner service runs.
///
/// For each request: read the session cookie, load the session from the
/// store, [`judge`](crate::policy::judge) it. A live session is touched (throttled)
/// and a [`SessionHandle`](crate::SessionHandle) goes into the request
/// extensions. An expired, unknown or unusable one is deleted, its cookie
/// cleared, and the request handled as [`OnInvalidSession`] says. A request
/// without a session cookie is a visitor: it gets a handle without a
/// session, through which it can log in.
///
/// ```
/// use std::time::Duration;
/// use tower_session_lifetime::{MemoryStore, OnInvalidSession, Policy, SessionCookie, SessionLifetimeLayer, rejection::OnStoreError};
///
/// let layer = SessionLifetimeLayer::new(MemoryStore::new())
///     .with_policy(Policy::builder().idle_timeout(Duration::from_secs(600)).build()?)
///     .with_cookie(SessionCookie::builder().name("__Host-sid").build()?)
///     .on_invalid_session(OnInvalidSession::PassThrough)
///     .on_store_error(OnStoreError::FailClosed);
/// # let _ = layer;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct SessionLifetimeLayer<R = DefaultRejection> {
    config: Arc<Config>,
    responder: R,
}

impl SessionLifetimeLayer {
    /// A layer over `store` with the default policy, cookie and behaviour.
    pub fn new(store: impl LifetimeStore) -> Self {
        SessionLifetimeLayer::from_shared_store(Arc::new(store))
    }

    /// A layer over a store that is shared with other code (an admin task,
    /// another layer).
    pub fn from_shared_store(store: Arc<dyn LifetimeStore>) -> Self {
        SessionLifetimeLayer {
            config: Arc::new(Config {
                backend: Arc::clone(&store),
                store,
                metrics: None,
                clock: Arc::new(SystemClock),
                policies: LivePolicy::new(Policies::single(Policy::default())),
                cookie: SessionCookie::default(),
                on_invalid: OnInvalidSession::default(),
                on_store_error: OnStoreError::default(),
                followed: false,
                session_data: None,
                guesses: None,
                logout_redirects: LogoutRedirects::new("/").expect("`/` is a valid target"),
                deadline_headers: None,
                status: None,
            }),
            responder: DefaultRejection,
        }
    }
}

impl<R> SessionLifetimeLayer<R> {
    pub(crate) fn config_mut(&mut self) -> &mut Config {
        Arc::make_mut(&mut self.config)
    }

    /// Answers `429 Too Many Requests` to a client that presented too many
    /// unknown or forged session IDs, without a store lookup, until its
    /// window ends; see [`GuessLimit`]. Off by default.
    pub fn with_guess_limit(mut self, limit: GuessLimit) -> Self {
        self.config_mut().guesses = Some(Arc::new(GuessCounter::new(limit)));
        self
    }

    /// Where [`SessionHandle::logout_and_redirect`](crate::SessionHandle::logout_and_redirect)
    /// may send the browser. Default: nowhere but `/`.
    pub fn with_logout_redirects(mut self, redirects: LogoutRedirects) -> Self {
        self.config_mut().logout_redirects = redirects;
        self
    }

    /// Puts the session's deadlines into the headers of every response to
    /// a request whose session is live when the response leaves (see
    /// [`DeadlineHeaders`]: `Session-Idle-Expires`, `Session-Expires`, Unix
    /// seconds), so that a page's script can warn before the idle deadline.
    /// Off by default.
    ///
    /// ```
    /// use tower_session_lifetime::{MemoryStore, SessionLifetimeLayer, deadline_headers::DeadlineHeaders};
    ///
    /// let layer = SessionLifetimeLayer::new(MemoryStore::new()).with_deadline_headers(DeadlineHeaders::new());
    /// # let _ = layer;
    /// ```
    pub fn with_deadline_headers(mut self, headers: DeadlineHeaders) -> Self {
        self.config_mut().deadline_headers = Some(headers);
        self
    }

    /// Answers status requests at `endpoint` itself, before the inner
    /// service: `GET` reports the deadlines as JSON **without** counting as
    /// activity, `POST` counts as activity (even within the touch
    /// granularity) and reports them; see the [`status`](crate::status)
    /// module. Off by default.
    ///
    /// The responder is wrapped in [`StatusJson`], which needs a response
    /// body buildable from a `String` (axum's `Body`, `Full<Bytes>`);
    /// [`reject_with`](SessionLifetimeLayer::reject_with) may come before or
    /// after. A `POST` from another site (`Sec-Fetch-Site: cross-site` or
    /// `same-site`) is refused with `403`, so that no other page can keep
    /// your users' sessions alive.
    ///
    /// ```
    /// use axum::{routing::get, Router};
    /// use tower_session_lifetime::{MemoryStore, SessionLifetimeLayer, status::StatusEndpoint};
    ///
    /// let app: Router = Router::new()
    ///     .route("/", get(|| async { "hello" }))
    ///     .layer(
    ///         SessionLifetimeLayer::new(MemoryStore::new())
    ///             .with_status_endpoint(StatusEndpoint::at("/session/status")?),
    ///     );
    /// # let _ = app;
    /// # Ok::<(), tower_session_lifetime::status::StatusEndpointError>(())
    /// ```
    pub fn with_status_endpoint(
        mut self,
        endpoint: StatusEndpoint,
    ) -> SessionLifetimeLayer<StatusJson<R>> {
        self.config_mut().status = Some(endpoint);
        SessionLifetimeLayer {
            config: self.config,
            responder: StatusJson(self.responder),
        }
    }

    /// Counts what the layer does in `metrics` (sessions admitted, started,
    /// renewed, ended by reason; store calls, failures and time), and with
    /// the `metrics` feature reports it to the `metrics` facade; see
    /// [`SessionMetrics`]. Off by default: without it nothing is counted or
    /// timed.
    ///
    /// ```
    /// use tower_session_lifetime::{MemoryStore, SessionLifetimeLayer, observe::SessionMetrics};
    ///
    /// let metrics = SessionMetrics::new();
    /// let layer = SessionLifetimeLayer::new(MemoryStore::new()).with_metrics(metrics.clone());
    /// assert_eq!(metrics.snapshot().started, 0);
    /// # let _ = layer;
    /// ```
    pub fn with_metrics(mut self, metrics: SessionMetrics) -> Self {
        let config = self.config_mut();
        config.store = Arc::new(InstrumentedStore {
            inner: Arc::clone(&config.backend),
            metrics: metrics.clone(),
        });
        config
            .policies
            .count_in(Some(change_counter(metrics.clone())));
        config.metrics = Some(metrics);
        self
    }

    /// The lifetime rules. Default: [`Policy::default()`].
    pub fn with_policy(mut self, policy: Policy) -> Self {
        self.set_policies(Policies::single(policy));
        self
    }

    fn set_policies(&mut self, policies: Policies) {
        let config = self.config_mut();
        config.policies = LivePolicy::new(policies);
        config
            .policies
            .count_in(config.metrics.clone().map(change_counter));
    }

    /// The handle to this layer's policies while it runs: read them, and
    /// replace the default policy or a tenant's without a restart (an admin
    /// handler); see [`LivePolicy`]. Take it after
    /// [`with_policy`](Self::with_policy) or
    /// [`with_policies`](Self::with_policies), which start new policies.
    ///
    /// ```
    /// use std::time::Duration;
    /// use tower_session_lifetime::policy::PolicyChange;
    /// use tower_session_lifetime::{MemoryStore, Policy, SessionLifetimeLayer};
    ///
    /// let layer = SessionLifetimeLayer::new(MemoryStore::new()).with_policy(Policy::default());
    /// let live = layer.live_policy();
    /// // Later, in an admin handler:
    /// let longer = Policy::builder().idle_timeout(Duration::from_secs(3600)).build()?;
    /// live.apply(PolicyChange::default_policy(longer).by("admin")).unwrap();
    /// # Ok::<(), tower_session_lifetime::policy::PolicyError>(())
    /// ```
    pub fn live_policy(&self) -> LivePolicy {
        self.config.policies.clone()
    }

    /// A policy per tenant, tightened per route group; see [`Policies`].
    /// Replaces [`with_policy`](SessionLifetimeLayer::with_policy).
    ///
    /// ```
    /// use std::time::Duration;
    /// use tower_session_lifetime::{MemoryStore, Policies, Policy, SessionLifetimeLayer, policy::Tightening};
    ///
    /// let policies = Policies::builder(Policy::default())
    ///     .tenant("strict.example", Policy::builder().idle_timeout(Duration::from_secs(300)).build()?)
    ///     .route("/admin", Tightening::new().idle_timeout(Duration::from_secs(120)))
    ///     .build()?;
    /// let layer = SessionLifetimeLayer::new(MemoryStore::new()).with_policies(policies);
    /// # let _ = layer;
    /// # Ok::<(), tower_session_lifetime::policy::PolicyError>(())
    /// ```
    pub fn with_policies(mut self, policies: Policies) -> Self {
        self.set_policies(policies);
        self
    }

    /// The clock. Default: [`SystemClock`]; tests give a
    /// [`ManualClock`](crate::clock::ManualClock).
    pub fn with_clock(mut self, clock: impl Clock) -> Self {
        self.config_mut().clock = Arc::new(clock);
        self
    }

    /// The session cookie's name and attributes. Default: [`SessionCookie::default()`].
    /// This layer issues it; to follow a cookie another layer issues, see
    /// [`follow_cookie`](SessionLifetimeLayer::follow_cookie).
    pub fn with_cookie(mut self, cookie: SessionCookie) -> Self {
        let config = self.config_mut();
        config.cookie = cookie;
        config.followed = false;
        self
    }

    /// Follows the cookie that tower-sessions' `SessionManagerLayer` issues
    /// with its defaults ([`SessionCookie::tower_sessions`]: `id`,
    /// `SameSite=Strict`) instead of issuing one. Install this layer
    /// *outside* the session layer (and axum-login's `AuthManagerLayer`),
    /// so it runs first on the way in and last on the way out:
    ///
    /// - on the way in it enforces the lifetime of the session that cookie
    ///   names, exactly as for its own cookie; an expired session is cleared
    ///   before the session layer sees it;
    /// - on the way out a new ID from the session layer (its first session,
    ///   or `cycle_id` at login) starts a lifetime with a fresh creation
    ///   time and ends the one it replaces; a removal (`flush`, logout)
    ///   ends the lifetime; the cookie's `Max-Age` follows the lifetime.
    ///
    /// Once a lifetime has ended, its ID is refused whatever the session
    /// layer's store does later, so a request in flight during a logout
    /// cannot bring the session back.
    ///
    /// ```
    /// use std::time::Duration;
    /// use axum::{routing::get, Router};
    /// use tower_session_lifetime::{MemoryStore, OnInvalidSession, Policy, SessionLifetimeLayer};
    /// use tower_sessions::{MemoryStore as SessionStore, SessionManagerLayer};
    ///
    /// let policy = Policy::builder()
    ///     .idle_timeout(Duration::from_secs(30 * 60))
    ///     .absolute_timeout(Duration::from_secs(12 * 60 * 60))
    ///     .build()?;
    /// let app: Router = Router::new()
    ///     .route("/", get(|| async { "hello" }))
    ///     .layer(SessionManagerLayer::new(SessionStore::default()))
    ///     .layer(
    ///         SessionLifetimeLayer::new(MemoryStore::new())
    ///             .with_policy(policy)
    ///             .follow_tower_sessions()
    ///             .on_invalid_session(OnInvalidSession::PassThrough),
    ///     );
    /// # let _ = app;
    /// # Ok::<(), tower_session_lifetime::policy::PolicyError>(())
    /// ```
    pub fn follow_tower_sessions(self) -> Self {
        self.follow_cookie(SessionCookie::tower_sessions())
    }

    /// Follows `cookie`, issued by another layer, as
    /// [`follow_tower_sessions`](SessionLifetimeLayer::follow_tower_sessions)
    /// does; for a session layer whose cookie is not tower-sessions'
    /// default (another name, `SameSite`, path, or signed: give this cookie
    /// the same signing key). Its value must be a 128-bit ID in URL-safe
    /// base64, as tower-sessions' IDs are. [`with_cookie`](SessionLifetimeLayer::with_cookie)
    /// afterwards switches back to a cookie this layer issues.
    pub fn follow_cookie(mut self, cookie: SessionCookie) -> Self {
        let config = self.config_mut();
        config.cookie = cookie;
        config.followed = true;
        self
    }

    /// What an expired, unknown or unusable session gets. Default: reject.
    pub fn on_invalid_session(mut self, action: OnInvalidSession) -> Self {
        self.config_mut().on_invalid = action;
        self
    }

    /// What a request gets when the store fails. Default: fail closed (`503`).
    pub fn on_store_error(mut self, action: OnStoreError) -> Self {
        self.config_mut().on_store_error = action;
        self
    }
}

impl SessionLifetimeLayer {
    /// Builds rejections with `responder` instead of an empty `401`/`503`.
    ///
    /// ```
    /// use axum::{body::Body, response::Response};
    /// use http::StatusCode;
    /// use tower_session_lifetime::{MemoryStore, SessionLifetimeLayer, rejection::RejectReason};
    ///
    /// let layer = SessionLifetimeLayer::new(MemoryStore::new()).reject_with(|reason: RejectReason| {
    ///     Response::builder()
    ///         .status(reason.default_status())
    ///         .header("content-type", "application/json")
    ///         .body(Body::from(r#"{"error":"session required"}"#))
    ///         .unwrap()
    /// });
    /// # let _ = layer;
    /// ```
    pub fn reject_with<R2>(self, responder: R2) -> SessionLifetimeLayer<R2> {
        SessionLifetimeLayer {
            config: self.config,
            responder,
        }
    }
}

impl<R> SessionLifetimeLayer<StatusJson<R>> {
    /// Builds rejections with `responder`, as
    /// [`reject_with`](SessionLifetimeLayer::reject_with) does before
    /// [`status_endpoint`](SessionLifetimeLayer::with_status_endpoint): status
    /// requests are still answered with JSON.
    pub fn reject_with<R2>(self, responder: R2) -> SessionLifetimeLayer<StatusJson<R2>> {
        SessionLifetimeLayer {
            config: self.config,
            responder: StatusJson(responder),
        }
    }
}

impl<S, R: Clone> Layer<S> for SessionLifetimeLayer<R> {
    type Service = SessionLifetime<S, R>;

    fn layer(&self, inner: S) -> Self::Service {
        SessionLifetime::new(inner, Arc::clone(&self.config), self.responder.clone())
    }
}

impl<R> std::fmt::Debug for SessionLifetimeLayer<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionLifetimeLayer")
            .field("policies", &self.config.policies)
            .field("cookie", &self.config.cookie)
            .field("on_invalid_session", &self.config.on_invalid)
            .field("on_store_error", &self.config.on_store_error)
            .field("followed", &self.config.followed)
            .field("deletes_data", &self.config.session_data.is_some())
            .field("metrics", &self.config.metrics.is_some())
            .field("deadline_headers", &self.config.deadline_headers)
            .field("status", &self.config.status)
            .finish_non_exhaustive()
    }
}

/// Counts each policy change in `metrics`.
fn change_counter(metrics: SessionMetrics) -> crate::policy::ChangeCounter {
    Box::new(move || metrics.policy_changed())
}
