//! A real stack for composition tests: `SessionLifetimeLayer` following
//! tower-sessions' cookie, over `SessionManagerLayer` and axum-login's
//! `AuthManagerLayer`, with a manual clock.
//!
//! Routes: `POST /login?user=..&password=..&remember=..` (axum-login; the
//! password must equal the user name), `POST /login-again` (the same
//! without logging out a signed-in user first, so axum-login keeps the ID),
//! `POST /login-remember-later` (signs in, then turns remember-me on),
//! `POST /login-axum-only` (axum-login's login alone, never the handle's),
//! `POST /login-handle-only?user=..` (the handle's login alone: tower-sessions
//! is never written),
//! `POST /logout`, `POST /cycle` (tower-sessions' `cycle_id`), `POST
//! /end-then-write` (the handle's logout, then a session write), `GET
//! /protected` (`login_required!`, answers the user name), `GET /whoami`
//! (the lifetime's subject), `GET /count` (a tower-sessions counter, no
//! login needed), `GET /slow` (waits for the test, then writes to the
//! session), `POST /slow-cycle` (waits for the test, then `cycle_id`),
//! `GET /slow-logout` (waits for the test, then axum-login's logout).

#![allow(dead_code, unreachable_pub)]

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Query, State};
use axum::routing::{get, post};
use axum::Router;
use axum_login::{login_required, AuthManagerLayerBuilder, AuthSession, AuthUser, AuthnBackend};
use http::{header, Request, Response, StatusCode};
use serde::Deserialize;
use tokio::sync::Notify;
use tower::ServiceExt;
use tower_session_lifetime::{
    clock::{Clock, ManualClock, SystemClock},
    store::LifetimeStore,
    MemoryStore, OnInvalidSession, Policy, SessionError, SessionHandle, SessionLifetimeLayer,
    TowerSessionsStore,
};
use tower_sessions::cookie::time;
use tower_sessions::session::Id;
use tower_sessions::{
    Expiry, MemoryStore as DataStore, Session, SessionManagerLayer, SessionStore,
};

use crate::common::{cookie_request, set_cookie_named, CountingStore};

/// tower-sessions' cookie name.
pub const COOKIE: &str = "id";

#[derive(Clone, Debug)]
pub struct User {
    name: String,
}

impl AuthUser for User {
    type Id = String;

    fn id(&self) -> String {
        self.name.clone()
    }

    fn session_auth_hash(&self) -> &[u8] {
        self.name.as_bytes()
    }
}

/// Accepts any user whose password is the user name.
#[derive(Clone, Debug, Default)]
pub struct Backend;

#[derive(Clone, Debug, Deserialize)]
pub struct Credentials {
    user: String,
    password: String,
    #[serde(default)]
    remember: bool,
}

impl AuthnBackend for Backend {
    type User = User;
    type Credentials = Credentials;
    type Error = std::convert::Infallible;

    async fn authenticate(&self, creds: Credentials) -> Result<Option<User>, Self::Error> {
        Ok((creds.user == creds.password).then_some(User { name: creds.user }))
    }

    async fn get_user(&self, name: &String) -> Result<Option<User>, Self::Error> {
        Ok(Some(User { name: name.clone() }))
    }
}

/// Two steps of the slow request, each a signal the other side waits for.
#[derive(Clone, Default)]
pub struct SlowRequest {
    pub entered: Arc<Notify>,
    pub release: Arc<Notify>,
}

pub struct Stack {
    pub router: Router,
    pub clock: ManualClock,
    /// The lifetime records (unless the stack keeps them in the data store).
    pub lifetimes: MemoryStore,
    pub data: DataStore,
    pub slow: SlowRequest,
}

impl Stack {
    pub fn new(policy: Policy) -> Self {
        Stack::configured(policy, |layer| layer)
    }

    /// The stack without `delete_data_from`: the lifetime layer cannot
    /// reach tower-sessions' data.
    pub fn without_data_store(policy: Policy) -> Self {
        Stack::build_with(
            policy,
            |layer| layer,
            |lifetimes, _| Arc::new(lifetimes.clone()),
            false,
        )
    }

    pub fn configured(
        policy: Policy,
        configure: impl FnOnce(SessionLifetimeLayer) -> SessionLifetimeLayer,
    ) -> Self {
        Stack::build(policy, configure, |lifetimes, _| {
            Arc::new(lifetimes.clone())
        })
    }

    /// The stack with its lifetime records kept by `TowerSessionsStore` in
    /// the tower-sessions store that holds the session data.
    pub fn sharing_the_data_store(policy: Policy) -> Self {
        Stack::build(
            policy,
            |layer| layer,
            |_, data| Arc::new(TowerSessionsStore::new(data.clone())),
        )
    }

    /// The stack with its lifetime records in a `CountingStore` (over
    /// `lifetimes`) that the test can take down.
    pub fn failing(policy: Policy) -> (Self, CountingStore) {
        let mut failing = None;
        let stack = Stack::build(
            policy,
            |layer| layer,
            |lifetimes, _| {
                let store = CountingStore::over(lifetimes.clone());
                failing = Some(store.clone());
                Arc::new(store)
            },
        );
        (stack, failing.expect("built"))
    }

    fn build(
        policy: Policy,
        configure: impl FnOnce(SessionLifetimeLayer) -> SessionLifetimeLayer,
        lifetime_store: impl FnOnce(&MemoryStore, &DataStore) -> Arc<dyn LifetimeStore>,
    ) -> Self {
        Stack::build_with(policy, configure, lifetime_store, true)
    }

    fn build_with(
        policy: Policy,
        configure: impl FnOnce(SessionLifetimeLayer) -> SessionLifetimeLayer,
        lifetime_store: impl FnOnce(&MemoryStore, &DataStore) -> Arc<dyn LifetimeStore>,
        data_store_given: bool,
    ) -> Self {
        // tower-sessions' stores judge expiry by the system clock: start
        // the manual one there, so records this stack writes are live to them.
        let clock = ManualClock::new(SystemClock.now());
        let lifetimes = MemoryStore::with_clock(clock.clone());
        let data = DataStore::default();
        let lifetime_store = lifetime_store(&lifetimes, &data);
        let slow = SlowRequest::default();
        // An expiry of its own, which the lifetime layer overrides.
        let sessions = SessionManagerLayer::new(data.clone())
            .with_expiry(Expiry::OnInactivity(time::Duration::days(1)));
        let auth = AuthManagerLayerBuilder::new(Backend, sessions).build();
        let layer = SessionLifetimeLayer::from_shared_store(lifetime_store)
            .with_clock(clock.clone())
            .with_policy(policy)
            .follow_tower_sessions()
            .on_invalid_session(OnInvalidSession::PassThrough);
        let lifetime = configure(if data_store_given {
            layer.delete_data_from(data.clone())
        } else {
            layer
        });
        let router = Router::new()
            .route("/protected", get(protected))
            .route_layer(login_required!(Backend))
            .route("/login", post(login))
            .route("/login-again", post(login_again))
            .route("/login-remember-later", post(login_remember_later))
            .route("/login-axum-only", post(login_axum_only))
            .route("/login-handle-only", post(login_handle_only))
            .route("/cycle", post(cycle))
            .route("/end-then-write", post(end_then_write))
            .route("/whoami", get(whoami))
            .route("/logout", post(logout))
            .route("/count", get(count))
            .route("/slow", get(slow_write))
            .route("/slow-cycle", post(slow_cycle))
            .route("/slow-logout", get(slow_logout))
            .with_state(slow.clone())
            .layer(auth)
            .layer(lifetime);
        Stack {
            router,
            clock,
            lifetimes,
            data,
            slow,
        }
    }

    pub async fn request(&self, method: &str, path: &str, cookie: Option<&str>) -> Response<Body> {
        self.router
            .clone()
            .oneshot(cookie_request(method, path, cookie))
            .await
            .expect("the router is infallible")
    }

    /// Signs `user` in (optionally with remember-me) from `cookie`'s session,
    /// and returns the new `Cookie` header value.
    pub async fn login(&self, user: &str, remember: bool, cookie: Option<&str>) -> String {
        let response = self
            .request(
                "POST",
                &format!("/login?user={user}&password={user}&remember={remember}"),
                cookie,
            )
            .await;
        assert_eq!(response.status(), StatusCode::OK, "login succeeds");
        cookie_header(&response).expect("login sets the session cookie")
    }

    /// Starts `method path` with `cookie` on a task of its own; it waits in
    /// the handler (`/slow`, `/slow-cycle`) until `self.slow.release`.
    pub async fn start_slow(
        &self,
        method: &str,
        path: &str,
        cookie: &str,
    ) -> tokio::task::JoinHandle<Response<Body>> {
        let request = Request::builder()
            .method(method)
            .uri(path)
            .header(header::COOKIE, cookie)
            .body(Body::empty())
            .unwrap();
        let router = self.router.clone();
        let slow = tokio::spawn(async move { router.oneshot(request).await.unwrap() });
        self.slow.entered.notified().await;
        slow
    }

    pub async fn protected(&self, cookie: &str) -> Response<Body> {
        self.request("GET", "/protected", Some(cookie)).await
    }

    /// Whether tower-sessions still holds data for the session `cookie` names.
    pub async fn has_data(&self, cookie: &str) -> bool {
        let id: Id = cookie
            .strip_prefix("id=")
            .expect("an `id=` cookie")
            .parse()
            .expect("a tower-sessions ID");
        self.data.load(&id).await.expect("load").is_some()
    }
}

/// The `Cookie` header value that sends back the session cookie the
/// response sets, if it sets one (not a removal).
pub fn cookie_header(response: &Response<Body>) -> Option<String> {
    set_cookie_named(response, COOKIE)
        .filter(|cookie| !cookie.value().is_empty())
        .map(|cookie| format!("{COOKIE}={}", cookie.value()))
}

/// Whether the response removes the session cookie.
pub fn removes_cookie(response: &Response<Body>) -> bool {
    set_cookie_named(response, COOKIE).is_some_and(|cookie| cookie.value().is_empty())
}

async fn login(
    auth: AuthSession<Backend>,
    lifetime: SessionHandle,
    Query(creds): Query<Credentials>,
) -> StatusCode {
    sign_in(auth, lifetime, creds, true).await
}

async fn login_again(
    auth: AuthSession<Backend>,
    lifetime: SessionHandle,
    Query(creds): Query<Credentials>,
) -> StatusCode {
    sign_in(auth, lifetime, creds, false).await
}

async fn sign_in(
    mut auth: AuthSession<Backend>,
    lifetime: SessionHandle,
    creds: Credentials,
    log_out_first: bool,
) -> StatusCode {
    let remember = creds.remember;
    let Ok(Some(user)) = auth.authenticate(creds).await else {
        return StatusCode::UNAUTHORIZED;
    };
    match lifetime.login(user.name.clone(), remember).await {
        Ok(()) => {}
        Err(SessionError::NewIdNeedsDataStore) => return StatusCode::CONFLICT,
        Err(_) => return StatusCode::BAD_REQUEST,
    }
    // Signing in again: start from a fresh session, so the ID changes.
    if log_out_first && auth.user.is_some() && auth.logout().await.is_err() {
        return StatusCode::INTERNAL_SERVER_ERROR;
    }
    match auth.login(&user).await {
        Ok(()) => StatusCode::OK,
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

#[derive(Deserialize)]
struct HandleLogin {
    user: String,
}

/// Names the session through the handle alone; tower-sessions is untouched.
async fn login_handle_only(
    lifetime: SessionHandle,
    Query(login): Query<HandleLogin>,
) -> StatusCode {
    match lifetime.login(login.user, false).await {
        Ok(()) => StatusCode::OK,
        Err(_) => StatusCode::BAD_REQUEST,
    }
}

/// Signs in through axum-login alone: the lifetime layer is never told.
async fn login_axum_only(
    mut auth: AuthSession<Backend>,
    Query(creds): Query<Credentials>,
) -> StatusCode {
    let Ok(Some(user)) = auth.authenticate(creds).await else {
        return StatusCode::UNAUTHORIZED;
    };
    match auth.login(&user).await {
        Ok(()) => StatusCode::OK,
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// Signs in without remember-me, then turns it on before the response:
/// the choice applies to the session tower-sessions starts.
async fn login_remember_later(
    mut auth: AuthSession<Backend>,
    lifetime: SessionHandle,
    Query(creds): Query<Credentials>,
) -> StatusCode {
    let Ok(Some(user)) = auth.authenticate(creds).await else {
        return StatusCode::UNAUTHORIZED;
    };
    let named = lifetime.login(user.name.clone(), false).await;
    let logged_in = auth.login(&user).await;
    let remembered = lifetime.set_remember_me(true).await;
    match (named, logged_in, remembered) {
        (Ok(()), Ok(()), Ok(())) => StatusCode::OK,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// Ends the session through the lifetime handle, then writes to the
/// tower-sessions session anyway (which saves it again).
async fn end_then_write(lifetime: SessionHandle, session: Session) -> StatusCode {
    if lifetime.logout().await.is_err() {
        return StatusCode::SERVICE_UNAVAILABLE;
    }
    match session.insert("after", true).await {
        Ok(()) => StatusCode::OK,
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

pub async fn cycle(session: Session) -> StatusCode {
    match session.cycle_id().await {
        Ok(()) => StatusCode::OK,
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

async fn whoami(lifetime: SessionHandle) -> String {
    lifetime.subject().unwrap_or_default()
}

async fn logout(mut auth: AuthSession<Backend>) -> StatusCode {
    match auth.logout().await {
        Ok(_) => StatusCode::OK,
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

async fn protected(auth: AuthSession<Backend>) -> String {
    auth.user.map(|user| user.name).unwrap_or_default()
}

/// A tower-sessions counter: answers how many times the session counted.
pub async fn count(session: Session) -> Result<String, StatusCode> {
    let count: u64 = session
        .get("count")
        .await
        .map_err(|_| StatusCode::INTERNAL_SERVER_ERROR)?
        .unwrap_or(0)
        + 1;
    session
        .insert("count", count)
        .await
        .map_err(|_| StatusCode::INTERNAL_SERVER_ERROR)?;
    Ok(count.to_string())
}

/// Loads the session, tells the test it has, waits to be released, then
/// writes to the session: a request in flight across a logout.
/// Loads the session, waits for the test, then logs out (axum-login).
async fn slow_logout(
    State(slow): State<SlowRequest>,
    mut auth: AuthSession<Backend>,
) -> StatusCode {
    slow.entered.notify_one();
    slow.release.notified().await;
    match auth.logout().await {
        Ok(_) => StatusCode::OK,
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// Loads the session, waits for the test, then gives it a new ID.
async fn slow_cycle(State(slow): State<SlowRequest>, session: Session) -> StatusCode {
    let _ = session.get::<u64>("count").await;
    slow.entered.notify_one();
    slow.release.notified().await;
    match session.cycle_id().await {
        Ok(()) => StatusCode::OK,
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

pub async fn slow_write(State(slow): State<SlowRequest>, session: Session) -> StatusCode {
    let _ = session.get::<u64>("count").await;
    slow.entered.notify_one();
    slow.release.notified().await;
    match session.insert("late", true).await {
        Ok(()) => StatusCode::OK,
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR,
    }
}
