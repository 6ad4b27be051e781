//! The routers and the request that `overhead` (criterion) and
//! `instructions` (callgrind) both measure, built once here so that both
//! measure the same thing.
#![allow(dead_code)]

use axum::body::Body;
use axum::http::header::{COOKIE, SET_COOKIE};
use axum::http::{HeaderValue, Method, Request, StatusCode};
use axum::routing::{get, post};
use axum::Router;
use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::hash::{BuildHasherDefault, Hasher};
use std::pin::Pin;
use std::sync::{Arc, RwLock};
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::response::Response;
use tower::{Layer, Service, ServiceExt};
use tower_session_lifetime::id::{SessionId, SessionKey};
use tower_session_lifetime::rejection::DefaultRejection;
use tower_session_lifetime::session_lifetime::SessionLifetime;
use tower_session_lifetime::{MemoryStore, SessionHandle, SessionLifetimeLayer};
use tower_sessions::cookie::time;
use tower_sessions::{Expiry, Session, SessionManagerLayer};

/// What a measured variant is: a router, or the layer around one.
pub trait Measured:
    Service<Request<Body>, Response = Response, Error = Infallible> + Clone
{
}

impl<S> Measured for S where
    S: Service<Request<Body>, Response = Response, Error = Infallible> + Clone
{
}

pub const SUBJECT: &str = "bench-user";
const BODY_LIMIT: usize = 64 * 1024;

/// The measured request; built the same way in every variant.
pub fn request(cookie: &HeaderValue) -> Request<Body> {
    Request::builder()
        .method(Method::GET)
        .uri("/")
        .header(COOKIE, cookie.clone())
        .body(Body::empty())
        .expect("a valid request")
}

pub fn current_thread_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime")
}

/// Sends one request to `uri` and returns the `name=value` part of its
/// `Set-Cookie` header, as a `Cookie` header value.
pub async fn cookie_from_login<S: Measured>(router: &S, method: Method, uri: &str) -> HeaderValue {
    let login = Request::builder()
        .method(method)
        .uri(uri)
        .body(Body::empty())
        .expect("a valid login request");
    let response = router
        .clone()
        .oneshot(login)
        .await
        .expect("infallible router");
    assert_eq!(response.status(), StatusCode::OK, "login failed");
    let set_cookie = response
        .headers()
        .get(SET_COOKIE)
        .expect("the login response sets a cookie")
        .to_str()
        .expect("an ASCII Set-Cookie header");
    let pair = set_cookie.split(';').next().unwrap_or_default().trim();
    assert!(pair.contains('='), "unexpected Set-Cookie: {set_cookie}");
    HeaderValue::from_str(pair).expect("a valid Cookie header")
}

/// Sends the measured request once and returns its status and body.
pub async fn probe<S: Measured>(router: &S, cookie: &HeaderValue) -> (StatusCode, String) {
    let response = router
        .clone()
        .oneshot(request(cookie))
        .await
        .expect("infallible router");
    let status = response.status();
    let body = axum::body::to_bytes(response.into_body(), BODY_LIMIT)
        .await
        .expect("a readable body");
    (status, String::from_utf8_lossy(&body).into_owned())
}

pub async fn bare_handler() -> &'static str {
    "hello"
}

pub async fn lifetime_login(handle: SessionHandle) -> &'static str {
    handle
        .login(SUBJECT, false)
        .await
        .expect("login through the layer");
    "logged in"
}

pub async fn lifetime_me(handle: SessionHandle) -> String {
    handle.subject().unwrap_or_default()
}

pub async fn ts_login(session: Session) -> &'static str {
    session
        .insert("k", 1usize)
        .await
        .expect("tower-sessions insert");
    "logged in"
}

pub async fn ts_me(session: Session) -> String {
    match session.get::<usize>("k").await {
        Ok(Some(value)) => value.to_string(),
        Ok(None) => "missing".to_owned(),
        Err(err) => format!("error: {err}"),
    }
}

// Every router is finished with `.with_state(())`, as `axum::serve` does
// (through `into_make_service`): without it, axum turns each handler into a
// route and applies the layers anew on every request, which would be
// charged to the layer here but never happens in a server.

/// The router alone: the bare handler, no layer.
pub fn bare_router() -> Router {
    Router::new().route("/", get(bare_handler)).with_state(())
}

/// The layer over `MemoryStore` with the default policy, in front of the
/// bare handler, which never looks at the session: the middleware alone.
pub fn layer_only_router() -> Router {
    Router::new()
        .route("/", get(bare_handler))
        .route("/login", post(lifetime_login))
        .layer(SessionLifetimeLayer::new(MemoryStore::new()))
        .with_state(())
}

/// The layer around the whole router, as `axum::serve(listener,
/// layer.layer(router))` has it, rather than on its routes: the same
/// handlers as [`layer_only_router`], without the per-route wrapping that
/// `Router::layer` adds.
pub fn layer_around_router() -> SessionLifetime<Router, DefaultRejection> {
    let routes = Router::new()
        .route("/", get(bare_handler))
        .route("/login", post(lifetime_login))
        .with_state(());
    SessionLifetimeLayer::new(MemoryStore::new()).layer(routes)
}

/// tower-sessions 0.14 over its `MemoryStore`, expiry on inactivity,
/// `always_save`; the handler reads one value. With `with_lifetime`, the
/// layer follows its cookie over our `MemoryStore`.
pub fn tower_sessions_router(with_lifetime: bool) -> Router {
    let sessions = SessionManagerLayer::new(tower_sessions::MemoryStore::default())
        .with_secure(false)
        .with_expiry(Expiry::OnInactivity(time::Duration::minutes(15)))
        .with_always_save(true);
    let router = Router::new()
        .route("/", get(ts_me))
        .route("/login", post(ts_login))
        .layer(sessions);
    let router = if with_lifetime {
        router.layer(SessionLifetimeLayer::new(MemoryStore::new()).follow_tower_sessions())
    } else {
        router
    };
    router.with_state(())
}

/// The bare handler behind a layer that does nothing (its service passes
/// the request on unchanged), given to `Router::layer`: what axum's
/// per-route wrapping of any layer costs a request, which
/// [`layer_only_router`]'s count includes.
pub fn pass_through_router() -> Router {
    Router::new()
        .route("/", get(bare_handler))
        .layer(tower::util::MapRequestLayer::new(
            |request: Request<Body>| request,
        ))
        .with_state(())
}

/// The floor of an admitted request that issue 18 names, as
/// `Router::layer` applies it: one scan of the `Cookie` header (it must be
/// exactly `session=<ID>`), one SHA-256 of the ID, one map lookup, the
/// clock against the stored expiry, and one extension insert. Nothing
/// else: no policy, no handle, no response path. A request without a
/// `Cookie` header goes on as a visitor; one with a cookie it does not
/// admit gets `401`. `/login` starts a session that expires in an hour.
pub fn floor_router() -> Router {
    let sessions = FloorSessions::default();
    let store = sessions.clone();
    let login = move || {
        let store = store.clone();
        async move {
            let id = SessionId::generate().expect("the OS random number generator works");
            let expires = unix_seconds() + 3_600;
            store
                .0
                .write()
                .expect("an unpoisoned lock")
                .insert(id.key(), expires);
            (
                [(SET_COOKIE, format!("session={}", id.encode()))],
                "logged in",
            )
        }
    };
    Router::new()
        .route("/", get(bare_handler))
        .route("/login", post(login))
        .layer(FloorLayer(sessions))
        .with_state(())
}

/// The floor's sessions: each key's expiry, in seconds since the epoch.
#[derive(Clone, Default)]
struct FloorSessions(Arc<RwLock<HashMap<SessionKey, u64, BuildHasherDefault<FirstWord>>>>);

/// Hashes a key by its first eight bytes: a key is already a SHA-256
/// output, as `MemoryStore`'s own hasher relies on.
#[derive(Default)]
struct FirstWord(u64);

impl Hasher for FirstWord {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        let mut word = [0u8; 8];
        let len = bytes.len().min(8);
        word[..len].copy_from_slice(&bytes[..len]);
        self.0 ^= u64::from_le_bytes(word);
    }
}

/// When a floor request was admitted: the extension it inserts.
#[derive(Clone, Copy)]
struct FloorAdmitted(u64);

#[derive(Clone)]
struct FloorLayer(FloorSessions);

impl<S> Layer<S> for FloorLayer {
    type Service = Floor<S>;

    fn layer(&self, inner: S) -> Floor<S> {
        Floor {
            inner,
            sessions: self.0.clone(),
        }
    }
}

#[derive(Clone)]
struct Floor<S> {
    inner: S,
    sessions: FloorSessions,
}

fn unix_seconds() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_secs()
}

impl<S> Service<Request<Body>> for Floor<S>
where
    S: Service<Request<Body>, Response = Response, Error = Infallible>,
{
    type Response = Response;
    type Error = Infallible;
    type Future = FloorFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<Body>) -> Self::Future {
        let Some(cookie) = request.headers().get(COOKIE) else {
            // A visitor, as the layer lets one in.
            return FloorFuture::Inner {
                future: self.inner.call(request),
            };
        };
        let expires = cookie
            .as_bytes()
            .strip_prefix(b"session=")
            .and_then(|value| SessionId::parse(std::str::from_utf8(value).ok()?))
            .and_then(|id| self.sessions.0.read().ok()?.get(&id.key()).copied())
            .filter(|&expires| unix_seconds() < expires);
        match expires {
            Some(expires) => {
                request.extensions_mut().insert(FloorAdmitted(expires));
                FloorFuture::Inner {
                    future: self.inner.call(request),
                }
            }
            None => {
                let mut refused = Response::new(Body::empty());
                *refused.status_mut() = StatusCode::UNAUTHORIZED;
                FloorFuture::Refused {
                    response: Some(refused),
                }
            }
        }
    }
}

pin_project_lite::pin_project! {
    /// The inner service's answer, or the floor's `401`.
    #[project = FloorFutureProjection]
    enum FloorFuture<F> {
        Inner { #[pin] future: F },
        Refused { response: Option<Response> },
    }
}

impl<F: Future<Output = Result<Response, Infallible>>> Future for FloorFuture<F> {
    type Output = Result<Response, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project() {
            FloorFutureProjection::Inner { future } => future.poll(cx),
            FloorFutureProjection::Refused { response } => {
                Poll::Ready(Ok(response.take().expect("polled after completion")))
            }
        }
    }
}
