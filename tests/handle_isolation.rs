//! Each request gets its own `SessionHandle` and its own cookies, checked
//! as an attacker would: what one request's handler does (or sees) through
//! its handle never reaches another request's handle, under concurrency on
//! a multi-threaded runtime, with handles kept past the response, after
//! panics and cancelled futures, with nested layers and nested requests,
//! and across a dropped and rebuilt layer; and the response cookies the
//! layer writes are right, in its own mode and following tower-sessions.
//! (The layer reuses a handle's shared state for the next request on the
//! thread when no clone of it is left: these are the cases where one is.)
#![cfg(feature = "axum")]

use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Query, State};
use axum::routing::{get, post};
use axum::Router;
use http::{header, Request, Response, StatusCode};
use http_body_util::BodyExt;
use serde::Deserialize;
use tower::ServiceExt;
use tower_session_lifetime::{
    MemoryStore, OnInvalidSession, SessionCookie, SessionHandle, SessionLifetimeLayer,
};

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

/// What a handler sees through its handle, in one line:
/// `subject|active|rejected|has_deadlines`.
fn describe(handle: &SessionHandle) -> String {
    format!(
        "{}|{}|{}|{}",
        handle.subject().unwrap_or_else(|| "-".into()),
        handle.is_active(),
        handle.rejection().is_some(),
        handle.deadlines().is_some()
    )
}

fn visitor_view() -> &'static str {
    "-|false|false|false"
}

fn rejected_view() -> &'static str {
    "-|false|true|false"
}

fn live_view(user: &str) -> String {
    format!("{user}|true|false|true")
}

async fn body_text(response: Response<Body>) -> String {
    let bytes = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    String::from_utf8(bytes.to_vec()).expect("utf-8")
}

fn set_cookies(response: &Response<Body>) -> Vec<String> {
    response
        .headers()
        .get_all(header::SET_COOKIE)
        .iter()
        .map(|value| value.to_str().expect("ascii").to_owned())
        .collect()
}

/// The `Set-Cookie` headers for `name`.
fn set_cookies_named(response: &Response<Body>, name: &str) -> Vec<cookie::Cookie<'static>> {
    set_cookies(response)
        .into_iter()
        .filter_map(|value| cookie::Cookie::parse(value).ok())
        .filter(|cookie| cookie.name() == name)
        .collect()
}

fn is_removal(cookie: &cookie::Cookie<'_>) -> bool {
    cookie.value().is_empty()
        || cookie
            .max_age()
            .is_some_and(|max_age| max_age <= cookie::time::Duration::ZERO)
}

/// The `Cookie` request header for the session `name` set on `response`.
fn new_cookie(response: &Response<Body>, name: &str) -> Option<String> {
    let cookies = set_cookies_named(response, name);
    assert!(
        cookies.len() <= 1,
        "at most one Set-Cookie for {name}: {cookies:?}"
    );
    cookies
        .into_iter()
        .find(|cookie| !is_removal(cookie))
        .map(|cookie| format!("{}={}", cookie.name(), cookie.value()))
}

fn removes(response: &Response<Body>, name: &str) -> bool {
    let cookies = set_cookies_named(response, name);
    !cookies.is_empty() && cookies.iter().all(is_removal)
}

fn no_store(response: &Response<Body>) -> bool {
    response
        .headers()
        .get_all(header::CACHE_CONTROL)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .any(|value| {
            let value = value.to_ascii_lowercase();
            value.contains("no-store") || value.contains("private") || value.contains("no-cache")
        })
}

async fn call(app: &Router, method: &str, uri: &str, cookie: Option<&str>) -> Response<Body> {
    let mut builder = Request::builder().method(method).uri(uri);
    if let Some(cookie) = cookie {
        builder = builder.header(header::COOKIE, cookie);
    }
    app.clone()
        .oneshot(builder.body(Body::empty()).unwrap())
        .await
        .expect("infallible")
}

// ---------------------------------------------------------------------------
// The app: the layer's own cookie
// ---------------------------------------------------------------------------

#[derive(Clone)]
struct Shared {
    /// Handles kept past their responses, with the subject each had.
    kept: Arc<Mutex<Vec<(String, SessionHandle)>>>,
    /// The app itself, for requests served inside a handler.
    app: Arc<OnceLock<Router>>,
    /// Spawned tasks wait for a permit before they use their kept handle.
    release: Arc<tokio::sync::Semaphore>,
    /// What spawned tasks saw: (subject at spawn, subject at release, logout ok).
    reports: Arc<Mutex<Vec<(String, String, bool)>>>,
}

#[derive(Deserialize)]
struct UserQuery {
    user: String,
}

#[derive(Deserialize)]
struct CookieQuery {
    cookie: Option<String>,
    #[serde(default)]
    logout: bool,
}

async fn login(handle: SessionHandle, Query(query): Query<UserQuery>) -> String {
    handle.login(query.user, false).await.expect("login");
    tokio::task::yield_now().await;
    describe(&handle)
}

/// Reads the handle twice around a yield: it must not change under the
/// handler's feet while other requests run.
async fn me(handle: SessionHandle) -> String {
    let before = describe(&handle);
    for _ in 0..3 {
        tokio::task::yield_now().await;
    }
    let after = describe(&handle);
    if before == after {
        before
    } else {
        format!("INCONSISTENT before={before} after={after}")
    }
}

async fn logout(handle: SessionHandle) -> String {
    handle.logout().await.expect("logout");
    describe(&handle)
}

async fn remember(handle: SessionHandle) -> String {
    let result = handle.set_remember_me(true).await;
    format!(
        "{}|{}|{:?}",
        describe(&handle),
        handle.remember_me(),
        result.is_ok()
    )
}

/// Keeps a clone of the handle past the response.
async fn keep(State(shared): State<Shared>, handle: SessionHandle) -> String {
    let subject = handle.subject().unwrap_or_else(|| "-".into());
    shared.kept.lock().unwrap().push((subject, handle.clone()));
    describe(&handle)
}

/// Moves a clone of the handle into a task that, once released, reads it
/// and logs it out.
async fn spawn_logout(State(shared): State<Shared>, handle: SessionHandle) -> String {
    let kept = handle.clone();
    let at_spawn = kept.subject().unwrap_or_else(|| "-".into());
    let release = Arc::clone(&shared.release);
    let reports = Arc::clone(&shared.reports);
    tokio::spawn(async move {
        let _permit = release.acquire().await.expect("open");
        let at_release = kept.subject().unwrap_or_else(|| "-".into());
        let ok = kept.logout().await.is_ok();
        reports.lock().unwrap().push((at_spawn, at_release, ok));
    });
    describe(&handle)
}

async fn panic_plain(handle: SessionHandle) -> String {
    let _ = describe(&handle);
    panic!("handler panics");
}

async fn panic_after_login(handle: SessionHandle, Query(query): Query<UserQuery>) -> String {
    handle.login(query.user, false).await.expect("login");
    panic!("handler panics after a login");
}

/// Logs in, keeps a clone, then never answers.
async fn hang_after_login(
    State(shared): State<Shared>,
    handle: SessionHandle,
    Query(query): Query<UserQuery>,
) -> String {
    handle
        .login(query.user.clone(), false)
        .await
        .expect("login");
    shared
        .kept
        .lock()
        .unwrap()
        .push((query.user, handle.clone()));
    std::future::pending::<()>().await;
    unreachable!()
}

/// Logs in, then never answers (no clone kept).
async fn hang_after_login_unkept(handle: SessionHandle, Query(query): Query<UserQuery>) -> String {
    handle.login(query.user, false).await.expect("login");
    std::future::pending::<()>().await;
    unreachable!()
}

/// Serves a request for `/me` (with `cookie`) inside this handler, then
/// (optionally) logs this request's session out.
async fn nested(
    State(shared): State<Shared>,
    handle: SessionHandle,
    Query(query): Query<CookieQuery>,
) -> String {
    let before = describe(&handle);
    let app = shared.app.get().expect("app set").clone();
    let inner = call(&app, "GET", "/me", query.cookie.as_deref()).await;
    let inner_cookies = set_cookies(&inner).len();
    let inner_body = body_text(inner).await;
    let after = describe(&handle);
    if query.logout {
        handle.logout().await.expect("logout");
    }
    format!("{before}#{inner_body}#{inner_cookies}#{after}")
}

/// Serves a login for `user` inside this handler; answers with the inner
/// response's cookie and what this handle saw before and after.
async fn nested_login(
    State(shared): State<Shared>,
    handle: SessionHandle,
    Query(query): Query<UserQuery>,
) -> String {
    let before = describe(&handle);
    let app = shared.app.get().expect("app set").clone();
    let inner = call(&app, "POST", &format!("/login?user={}", query.user), None).await;
    let cookie = new_cookie(&inner, "session").unwrap_or_default();
    let inner_body = body_text(inner).await;
    let after = describe(&handle);
    format!("{before}#{inner_body}#{after}#{cookie}")
}

fn routes() -> Router<Shared> {
    Router::new()
        .route("/login", post(login))
        .route("/me", get(me))
        .route("/logout", post(logout))
        .route("/remember", post(remember))
        .route("/keep", get(keep))
        .route("/spawn-logout", get(spawn_logout))
        .route("/panic", get(panic_plain))
        .route("/panic-after-login", post(panic_after_login))
        .route("/hang-after-login", post(hang_after_login))
        .route("/hang-after-login-unkept", post(hang_after_login_unkept))
        .route("/nested", get(nested))
        .route("/nested-login", post(nested_login))
}

fn app_with(store: MemoryStore) -> (Router, Shared) {
    let shared = Shared {
        kept: Arc::default(),
        app: Arc::default(),
        release: Arc::new(tokio::sync::Semaphore::new(0)),
        reports: Arc::default(),
    };
    let app = routes()
        .with_state(shared.clone())
        .layer(SessionLifetimeLayer::new(store).on_invalid_session(OnInvalidSession::PassThrough));
    assert!(shared.app.set(app.clone()).is_ok(), "set once");
    (app, shared)
}

fn app() -> (Router, Shared, MemoryStore) {
    let store = MemoryStore::new();
    let (app, shared) = app_with(store.clone());
    (app, shared, store)
}

async fn sign_in(app: &Router, user: &str) -> String {
    let response = call(app, "POST", &format!("/login?user={user}"), None).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert!(no_store(&response), "a login response is not cacheable");
    let cookie = new_cookie(&response, "session").expect("a login sets the cookie");
    assert_eq!(body_text(response).await, live_view(user));
    cookie
}

/// `GET /me` with `cookie`: the view, and the response's `Set-Cookie`s.
async fn view(app: &Router, cookie: Option<&str>) -> (String, Vec<String>) {
    let response = call(app, "GET", "/me", cookie).await;
    assert_eq!(response.status(), StatusCode::OK);
    let cookies = set_cookies(&response);
    (body_text(response).await, cookies)
}

// ---------------------------------------------------------------------------
// Races: the layer's own cookie
// ---------------------------------------------------------------------------

/// 400 concurrent requests from 60 signed-in users, 20 signed-out users and
/// visitors, on a 4-worker runtime: each sees only its own session, and an
/// admitted request with nothing to change sets no cookie.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn race_many_users_each_see_only_their_own_session() {
    let (app, _shared, _store) = app();
    let mut users = Vec::new();
    for i in 0..80 {
        let user = format!("user{i}");
        let cookie = sign_in(&app, &user).await;
        users.push((user, cookie));
    }
    // Every fourth signs out.
    for (i, (_, cookie)) in users.iter().enumerate() {
        if i % 4 == 0 {
            let response = call(&app, "POST", "/logout", Some(cookie)).await;
            assert!(removes(&response, "session"), "a logout clears the cookie");
            assert_eq!(body_text(response).await, visitor_view());
        }
    }
    let users = Arc::new(users);
    let mut tasks = Vec::new();
    for n in 0..400usize {
        let app = app.clone();
        let users = Arc::clone(&users);
        tasks.push(tokio::spawn(async move {
            if n % 5 == 4 {
                let (seen, cookies) = view(&app, None).await;
                assert_eq!(
                    seen,
                    visitor_view(),
                    "request {n}: a visitor sees no session"
                );
                assert!(
                    cookies.is_empty(),
                    "request {n}: a visitor gets no cookie: {cookies:?}"
                );
                return;
            }
            let i = (n * 7) % users.len();
            let (user, cookie) = &users[i];
            let (seen, cookies) = view(&app, Some(cookie)).await;
            if i % 4 == 0 {
                assert_eq!(
                    seen,
                    rejected_view(),
                    "request {n}: {user} signed out stays out"
                );
                assert!(
                    cookies.iter().all(|c| c.starts_with("session=;")),
                    "request {n}: only a removal: {cookies:?}"
                );
                assert_eq!(cookies.len(), 1, "request {n}: the stale cookie is cleared");
            } else {
                assert_eq!(
                    seen,
                    live_view(user),
                    "request {n}: {user} sees their own session"
                );
                assert!(
                    cookies.is_empty(),
                    "request {n}: {user}'s admitted request changes no cookie: {cookies:?}"
                );
            }
        }));
    }
    for task in tasks {
        task.await.expect("no assertion failed");
    }
}

/// 240 concurrent users each sign in, look, set remember-me, sign out and
/// look again, interleaved with visitors, on a 4-worker runtime.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn race_concurrent_login_remember_logout_cycles_stay_separate() {
    let (app, _shared, store) = app();
    let mut tasks = Vec::new();
    for n in 0..240usize {
        let app = app.clone();
        tasks.push(tokio::spawn(async move {
            if n % 6 == 5 {
                for _ in 0..3 {
                    let (seen, cookies) = view(&app, None).await;
                    assert_eq!(seen, visitor_view(), "visitor {n}");
                    assert!(cookies.is_empty(), "visitor {n}: {cookies:?}");
                }
                return;
            }
            let user = format!("racer{n}");
            let cookie = sign_in(&app, &user).await;
            let (seen, cookies) = view(&app, Some(&cookie)).await;
            assert_eq!(seen, live_view(&user));
            assert!(cookies.is_empty(), "{user}: {cookies:?}");

            let response = call(&app, "POST", "/remember", Some(&cookie)).await;
            assert!(
                no_store(&response),
                "{user}: a remember-me cookie is not cacheable"
            );
            let remembered = set_cookies_named(&response, "session");
            assert_eq!(
                remembered.len(),
                1,
                "{user}: remember-me rewrites the cookie"
            );
            assert!(
                remembered[0].max_age().is_some(),
                "{user}: persistent: {remembered:?}"
            );
            assert_eq!(
                body_text(response).await,
                format!("{}|true|true", live_view(&user))
            );

            let response = call(&app, "POST", "/logout", Some(&cookie)).await;
            assert!(
                removes(&response, "session"),
                "{user}: logout clears the cookie"
            );
            assert!(no_store(&response), "{user}: a logout is not cacheable");
            assert_eq!(body_text(response).await, visitor_view());

            let (seen, _) = view(&app, Some(&cookie)).await;
            assert_eq!(seen, rejected_view(), "{user}: logged out stays logged out");
        }));
    }
    for task in tasks {
        task.await.expect("no assertion failed");
    }
    assert_eq!(store.len(), 0, "every session ended: {}", store.len());
}

// ---------------------------------------------------------------------------
// Kept handles
// ---------------------------------------------------------------------------

/// A handle kept past its response (current-thread runtime, so the next
/// requests run on the same thread) keeps its own session through many
/// other requests; its later logout ends its session only.
#[tokio::test]
async fn a_kept_handle_keeps_its_session_and_its_logout_ends_only_its_own() {
    let (app, shared, _store) = app();
    let alice = sign_in(&app, "alice").await;
    let bob = sign_in(&app, "bob").await;
    let response = call(&app, "GET", "/keep", Some(&alice)).await;
    assert_eq!(body_text(response).await, live_view("alice"));
    // A visitor's handle kept as well.
    let response = call(&app, "GET", "/keep", None).await;
    assert_eq!(body_text(response).await, visitor_view());

    // Many requests on the same thread, which would reuse a handle's state.
    for i in 0..50 {
        let (seen, _) = view(&app, Some(&bob)).await;
        assert_eq!(seen, live_view("bob"));
        let (seen, _) = view(&app, None).await;
        assert_eq!(seen, visitor_view());
        let _ = sign_in(&app, &format!("other{i}")).await;
    }
    let kept = shared.kept.lock().unwrap().clone();
    assert_eq!(kept.len(), 2);
    let (alice_subject, alice_handle) = &kept[0];
    let (_, visitor_handle) = &kept[1];
    assert_eq!(alice_subject, "alice");
    assert_eq!(
        describe(alice_handle),
        live_view("alice"),
        "the kept handle is alice's"
    );
    assert_eq!(
        describe(visitor_handle),
        visitor_view(),
        "the kept visitor handle is a visitor's"
    );

    alice_handle.logout().await.expect("logout");
    assert_eq!(describe(alice_handle), visitor_view());
    let (seen, _) = view(&app, Some(&alice)).await;
    assert_eq!(seen, rejected_view(), "alice's session ended");
    let (seen, cookies) = view(&app, Some(&bob)).await;
    assert_eq!(seen, live_view("bob"), "bob's session lives on");
    assert!(cookies.is_empty());
}

/// A kept visitor handle logging in later starts a session of its own; it
/// does not become any request's session.
#[tokio::test]
async fn a_kept_visitor_handle_that_logs_in_later_touches_no_other_request() {
    let (app, shared, store) = app();
    let _ = call(&app, "GET", "/keep", None).await;
    let bob = sign_in(&app, "bob").await;
    let kept = shared.kept.lock().unwrap()[0].1.clone();
    let before = store.len();
    kept.login("mallory", false).await.expect("login");
    assert_eq!(describe(&kept), live_view("mallory"));
    assert_eq!(store.len(), before + 1, "a session of its own");
    for _ in 0..10 {
        let (seen, cookies) = view(&app, None).await;
        assert_eq!(seen, visitor_view(), "visitors do not become mallory");
        assert!(cookies.is_empty(), "{cookies:?}");
        let (seen, _) = view(&app, Some(&bob)).await;
        assert_eq!(seen, live_view("bob"));
    }
}

/// 200 concurrent requests move clones of their handles into spawned tasks;
/// while 200 more requests run, then all tasks log out. Each task saw its
/// own subject throughout, and exactly the kept sessions ended.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn spawned_tasks_with_kept_handles_log_out_their_own_sessions_only() {
    let (app, shared, _store) = app();
    let mut keepers = Vec::new();
    let mut bystanders = Vec::new();
    for i in 0..200 {
        keepers.push((
            format!("keeper{i}"),
            sign_in(&app, &format!("keeper{i}")).await,
        ));
    }
    for i in 0..50 {
        bystanders.push((
            format!("bystander{i}"),
            sign_in(&app, &format!("bystander{i}")).await,
        ));
    }
    let mut tasks = Vec::new();
    for (user, cookie) in keepers.clone() {
        let app = app.clone();
        tasks.push(tokio::spawn(async move {
            let response = call(&app, "GET", "/spawn-logout", Some(&cookie)).await;
            assert!(set_cookies(&response).is_empty());
            assert_eq!(body_text(response).await, live_view(&user));
        }));
    }
    for (n, (user, cookie)) in bystanders.iter().cycle().take(200).enumerate() {
        let app = app.clone();
        let (user, cookie) = (user.clone(), cookie.clone());
        tasks.push(tokio::spawn(async move {
            let (seen, _) = view(&app, Some(&cookie)).await;
            assert_eq!(seen, live_view(&user));
            let (seen, _) = view(&app, None).await;
            assert_eq!(seen, visitor_view(), "visitor {n}");
        }));
    }
    for task in tasks {
        task.await.expect("no assertion failed");
    }
    // Release the kept handles and wait for their reports.
    shared.release.add_permits(1000);
    for _ in 0..500 {
        if shared.reports.lock().unwrap().len() == 200 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let reports = shared.reports.lock().unwrap().clone();
    assert_eq!(reports.len(), 200, "every task reported");
    for (at_spawn, at_release, ok) in &reports {
        assert!(at_spawn.starts_with("keeper"), "{at_spawn}");
        assert_eq!(at_spawn, at_release, "the kept handle kept its subject");
        assert!(ok, "{at_spawn}: logout failed");
    }
    for (user, cookie) in &keepers {
        let (seen, _) = view(&app, Some(cookie)).await;
        assert_eq!(
            &seen,
            rejected_view(),
            "{user}'s kept handle ended {user}'s session"
        );
    }
    for (user, cookie) in &bystanders {
        let (seen, _) = view(&app, Some(cookie)).await;
        assert_eq!(
            seen,
            live_view(user),
            "{user} was not logged out by someone else's handle"
        );
    }
}

// ---------------------------------------------------------------------------
// Panics and cancellation
// ---------------------------------------------------------------------------

/// A handler that panics (after a login, or not) leaves nothing behind for
/// the next requests on the same thread.
#[tokio::test]
async fn a_panicking_handler_leaks_nothing_into_later_requests() {
    let (app, _shared, store) = app();
    let bob = sign_in(&app, "bob").await;
    for round in 0..20 {
        let app2 = app.clone();
        let bob2 = bob.clone();
        // Spawned on this (current-thread) runtime: same thread.
        let panicked = tokio::spawn(async move {
            if round % 2 == 0 {
                call(
                    &app2,
                    "POST",
                    &format!("/panic-after-login?user=mallory{round}"),
                    None,
                )
                .await
            } else {
                call(&app2, "GET", "/panic", Some(&bob2)).await
            }
        })
        .await;
        assert!(panicked.expect_err("the handler panicked").is_panic());

        let (seen, cookies) = view(&app, None).await;
        assert_eq!(
            seen,
            visitor_view(),
            "round {round}: a visitor after a panic"
        );
        assert!(cookies.is_empty(), "round {round}: {cookies:?}");
        let (seen, cookies) = view(&app, Some(&bob)).await;
        assert_eq!(seen, live_view("bob"), "round {round}: bob after a panic");
        assert!(cookies.is_empty(), "round {round}: {cookies:?}");
        let response = call(&app, "POST", "/logout", None).await;
        assert_eq!(body_text(response).await, visitor_view());
        let (seen, _) = view(&app, Some(&bob)).await;
        assert_eq!(
            seen,
            live_view("bob"),
            "round {round}: a visitor's logout ended no one"
        );
    }
    // Bob and the ten sessions the panicking logins started (their cookies
    // never left); nothing more.
    assert_eq!(store.len(), 11);
}

/// Response futures dropped mid-handler, after a login, leave nothing for
/// the next requests on the same thread; a clone the handler kept still
/// holds its own session and can end it (only it).
#[tokio::test]
async fn cancelled_requests_leak_nothing_and_their_kept_handles_stay_theirs() {
    let (app, shared, _store) = app();
    let bob = sign_in(&app, "bob").await;
    for round in 0..20 {
        let uri = if round % 2 == 0 {
            format!("/hang-after-login?user=mallory{round}")
        } else {
            format!("/hang-after-login-unkept?user=eve{round}")
        };
        // Half the rounds log in over a live session of a victim of their own.
        let victim = if round % 4 < 2 {
            None
        } else {
            Some(sign_in(&app, &format!("victim{round}")).await)
        };
        let cancelled = tokio::time::timeout(
            Duration::from_millis(20),
            call(&app, "POST", &uri, victim.as_deref()),
        )
        .await;
        assert!(cancelled.is_err(), "the handler never answers");

        let (seen, cookies) = view(&app, None).await;
        assert_eq!(
            seen,
            visitor_view(),
            "round {round}: a visitor after a cancel"
        );
        assert!(cookies.is_empty(), "round {round}: {cookies:?}");
        let (seen, cookies) = view(&app, Some(&bob)).await;
        assert_eq!(seen, live_view("bob"), "round {round}: bob after a cancel");
        assert!(cookies.is_empty(), "round {round}: {cookies:?}");
        if let Some(victim) = victim {
            // The login in the cancelled request replaced the victim's session.
            let (seen, _) = view(&app, Some(&victim)).await;
            assert_eq!(
                seen,
                rejected_view(),
                "round {round}: the replaced session ended"
            );
        }
    }
    let kept = shared.kept.lock().unwrap().clone();
    assert_eq!(kept.len(), 10);
    for (user, handle) in &kept {
        assert_eq!(
            describe(handle),
            live_view(user),
            "the kept handle is {user}'s"
        );
    }
    let (_, first) = &kept[0];
    first.logout().await.expect("logout");
    assert_eq!(describe(first), visitor_view());
    let (seen, _) = view(&app, Some(&bob)).await;
    assert_eq!(
        seen,
        live_view("bob"),
        "a kept handle's logout ended no one else"
    );
    for (user, handle) in &kept[1..] {
        assert_eq!(describe(handle), live_view(user));
    }
}

// ---------------------------------------------------------------------------
// Nesting
// ---------------------------------------------------------------------------

/// A request served inside another request's handler, on the same thread,
/// neither sees nor changes the outer request's handle; the outer logout
/// ends the outer session only.
#[tokio::test]
async fn a_request_served_inside_a_handler_keeps_both_handles_apart() {
    let (app, _shared, _store) = app();
    let alice = sign_in(&app, "alice").await;
    let bob = sign_in(&app, "bob").await;

    let uri = format!("/nested?cookie={}", urlencode(&bob));
    let response = call(&app, "GET", &uri, Some(&alice)).await;
    assert!(set_cookies(&response).is_empty());
    assert_eq!(
        body_text(response).await,
        format!(
            "{}#{}#0#{}",
            live_view("alice"),
            live_view("bob"),
            live_view("alice")
        )
    );

    // The inner one a visitor, the outer one alice.
    let response = call(&app, "GET", "/nested", Some(&alice)).await;
    assert_eq!(
        body_text(response).await,
        format!(
            "{}#{}#0#{}",
            live_view("alice"),
            visitor_view(),
            live_view("alice")
        )
    );

    // The outer one a visitor, the inner one bob.
    let response = call(&app, "GET", &uri, None).await;
    assert_eq!(
        body_text(response).await,
        format!(
            "{}#{}#0#{}",
            visitor_view(),
            live_view("bob"),
            visitor_view()
        )
    );

    // Alice logs out after serving bob's request inside hers.
    let response = call(&app, "GET", &format!("{uri}&logout=true"), Some(&alice)).await;
    assert!(removes(&response, "session"));
    let (seen, _) = view(&app, Some(&alice)).await;
    assert_eq!(seen, rejected_view(), "alice's session ended");
    let (seen, _) = view(&app, Some(&bob)).await;
    assert_eq!(seen, live_view("bob"), "bob's did not");

    // A login served inside a visitor's request.
    let response = call(&app, "POST", "/nested-login?user=carol", None).await;
    assert!(
        set_cookies(&response).is_empty(),
        "the outer response sets no cookie: {:?}",
        set_cookies(&response)
    );
    let text = body_text(response).await;
    let parts: Vec<&str> = text.split('#').collect();
    assert_eq!(
        parts[..3],
        [visitor_view(), &live_view("carol"), visitor_view()]
    );
    let (seen, _) = view(&app, Some(parts[3])).await;
    assert_eq!(seen, live_view("carol"));
}

fn urlencode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Two lifetime layers, each with its own cookie: the handler sees the
/// inner layer's handle; a login through it sets only the inner cookie, a
/// logout clears only it; the outer session is left alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nested_layers_keep_their_handles_and_cookies_apart() {
    let outer_store = MemoryStore::new();
    let inner_store = MemoryStore::new();
    let cookie_named = |name: &'static str| SessionCookie::builder().name(name).build().unwrap();
    let app: Router = Router::new()
        .route("/login", post(login))
        .route("/me", get(me))
        .route("/logout", post(logout))
        .layer(
            SessionLifetimeLayer::new(inner_store.clone())
                .with_cookie(cookie_named("inner"))
                .on_invalid_session(OnInvalidSession::PassThrough),
        )
        .layer(
            SessionLifetimeLayer::new(outer_store.clone())
                .with_cookie(cookie_named("outer"))
                .on_invalid_session(OnInvalidSession::PassThrough),
        );
    let mut tasks = Vec::new();
    for n in 0..200usize {
        let app = app.clone();
        let (outer_store, inner_store) = (outer_store.clone(), inner_store.clone());
        tasks.push(tokio::spawn(async move {
            let user = format!("nest{n}");
            let response = call(&app, "POST", &format!("/login?user={user}"), None).await;
            assert!(
                set_cookies_named(&response, "outer").is_empty(),
                "{user}: the outer layer sets no cookie"
            );
            let inner = new_cookie(&response, "inner").expect("the inner cookie");
            assert_eq!(body_text(response).await, live_view(&user));
            let (seen, cookies) = view(&app, Some(&inner)).await;
            assert_eq!(seen, live_view(&user));
            assert!(cookies.is_empty(), "{user}: {cookies:?}");
            let response = call(&app, "POST", "/logout", Some(&inner)).await;
            assert!(removes(&response, "inner"), "{user}");
            assert!(set_cookies_named(&response, "outer").is_empty(), "{user}");
            let (seen, _) = view(&app, Some(&inner)).await;
            assert_eq!(seen, rejected_view(), "{user}: logged out stays out");
            let _ = (outer_store, inner_store);
        }));
    }
    for task in tasks {
        task.await.expect("no assertion failed");
    }
    assert_eq!(outer_store.len(), 0, "the outer layer started no session");
    assert_eq!(inner_store.len(), 0, "every inner session ended");
}

// ---------------------------------------------------------------------------
// A dropped and rebuilt layer
// ---------------------------------------------------------------------------

/// After a layer is dropped and another built on a new store (same thread),
/// the new layer's requests see nothing of the old one's; a handle kept
/// from the old layer still ends its own session, in its own store.
#[tokio::test]
async fn a_rebuilt_layer_shares_nothing_with_the_dropped_one() {
    let first_store = MemoryStore::new();
    let (first, shared) = app_with(first_store.clone());
    let alice = sign_in(&first, "alice").await;
    let _ = call(&first, "GET", "/keep", Some(&alice)).await;
    let kept = shared.kept.lock().unwrap()[0].1.clone();
    drop(shared);
    drop(first);

    let second_store = MemoryStore::new();
    let (second, _shared) = app_with(second_store.clone());
    let (seen, _) = view(&second, Some(&alice)).await;
    assert_eq!(
        seen,
        rejected_view(),
        "the old layer's session is unknown here"
    );
    let (seen, cookies) = view(&second, None).await;
    assert_eq!(seen, visitor_view());
    assert!(cookies.is_empty());
    let bob = sign_in(&second, "bob").await;

    assert_eq!(describe(&kept), live_view("alice"));
    assert_eq!(first_store.len(), 1);
    kept.logout().await.expect("logout");
    assert_eq!(
        first_store.len(),
        0,
        "alice's session ended in the first store"
    );
    assert_eq!(second_store.len(), 1, "bob's lives on");
    let (seen, _) = view(&second, Some(&bob)).await;
    assert_eq!(seen, live_view("bob"));
}

// ---------------------------------------------------------------------------
// Following tower-sessions
// ---------------------------------------------------------------------------

#[cfg(feature = "tower-sessions")]
mod follow {
    use super::*;
    use tower_sessions::{MemoryStore as DataStore, Session, SessionManagerLayer};

    #[derive(Clone, Default)]
    struct FollowShared {
        kept: Arc<Mutex<Vec<(String, SessionHandle)>>>,
    }

    /// `subject|active|rejected|has_deadlines|data user`.
    async fn follow_view(handle: &SessionHandle, session: &Session) -> String {
        let data = session
            .get::<String>("user")
            .await
            .expect("data store")
            .unwrap_or_else(|| "-".into());
        format!("{}|{data}", describe(handle))
    }

    async fn ts_login(
        handle: SessionHandle,
        session: Session,
        Query(query): Query<UserQuery>,
    ) -> String {
        session.cycle_id().await.expect("cycle");
        session.insert("user", &query.user).await.expect("insert");
        handle.login(query.user, false).await.expect("login");
        tokio::task::yield_now().await;
        describe(&handle)
    }

    async fn ts_me(handle: SessionHandle, session: Session) -> String {
        let before = follow_view(&handle, &session).await;
        tokio::task::yield_now().await;
        let after = follow_view(&handle, &session).await;
        if before == after {
            before
        } else {
            format!("INCONSISTENT before={before} after={after}")
        }
    }

    async fn ts_flush(session: Session) -> &'static str {
        session.flush().await.expect("flush");
        "flushed"
    }

    async fn ts_handle_logout(handle: SessionHandle) -> String {
        handle.logout().await.expect("logout");
        describe(&handle)
    }

    async fn ts_keep(State(shared): State<FollowShared>, handle: SessionHandle) -> String {
        let subject = handle.subject().unwrap_or_else(|| "-".into());
        shared.kept.lock().unwrap().push((subject, handle.clone()));
        describe(&handle)
    }

    struct Follow {
        app: Router,
        data: DataStore,
        lifetimes: MemoryStore,
        shared: FollowShared,
    }

    fn follow_app() -> Follow {
        let data = DataStore::default();
        let lifetimes = MemoryStore::new();
        let shared = FollowShared::default();
        let app = Router::new()
            .route("/login", post(ts_login))
            .route("/me", get(ts_me))
            .route("/flush", post(ts_flush))
            .route("/handle-logout", post(ts_handle_logout))
            .route("/keep", get(ts_keep))
            .route("/remember", post(remember))
            .with_state(shared.clone())
            .layer(
                SessionManagerLayer::new(data.clone())
                    .with_secure(false)
                    .with_always_save(true),
            )
            .layer(
                SessionLifetimeLayer::new(lifetimes.clone())
                    .follow_tower_sessions()
                    .delete_data_from(data.clone())
                    .on_invalid_session(OnInvalidSession::PassThrough),
            );
        Follow {
            app,
            data,
            lifetimes,
            shared,
        }
    }

    fn ts_live(user: &str) -> String {
        format!("{}|{user}", live_view(user))
    }

    fn ts_visitor() -> String {
        format!("{}|-", visitor_view())
    }

    fn ts_rejected() -> String {
        format!("{}|-", rejected_view())
    }

    async fn ts_sign_in(app: &Router, user: &str) -> String {
        let response = call(app, "POST", &format!("/login?user={user}"), None).await;
        assert_eq!(response.status(), StatusCode::OK, "{user}");
        assert!(
            no_store(&response),
            "{user}: a response that sets the session cookie is not cacheable: {:?}",
            response.headers()
        );
        let cookie = new_cookie(&response, "id").expect("the login sets the id cookie");
        // The handle reports the session only from the next request on.
        let _ = body_text(response).await;
        cookie
    }

    async fn ts_get(app: &Router, cookie: Option<&str>) -> (String, Vec<String>, bool) {
        let response = call(app, "GET", "/me", cookie).await;
        assert_eq!(response.status(), StatusCode::OK);
        let cookies = set_cookies(&response);
        let cacheable = !no_store(&response);
        (body_text(response).await, cookies, cacheable)
    }

    /// An admitted request whose response only repeats the request's ID
    /// (`always_save`) carries no `Set-Cookie` back; a flush ends the session
    /// and its removal is not cacheable; the ID is refused afterwards.
    #[tokio::test]
    async fn follow_mode_cookies_login_repeat_and_flush() {
        let Follow {
            app,
            lifetimes,
            data,
            ..
        } = follow_app();
        let alice = ts_sign_in(&app, "alice").await;
        assert_eq!(lifetimes.len(), 1);

        let (seen, cookies, _) = ts_get(&app, Some(&alice)).await;
        assert_eq!(seen, ts_live("alice"));
        assert!(
            cookies.is_empty(),
            "a response repeating the request's ID sets no cookie: {cookies:?}"
        );

        let response = call(&app, "POST", "/flush", Some(&alice)).await;
        assert!(
            removes(&response, "id"),
            "a flush clears the cookie: {:?}",
            set_cookies(&response)
        );
        assert!(no_store(&response), "a removal is not cacheable");
        assert_eq!(lifetimes.len(), 0, "the flush ended the lifetime");

        let (seen, cookies, _) = ts_get(&app, Some(&alice)).await;
        assert_eq!(seen, ts_rejected(), "a flushed session stays ended");
        assert!(cookies.iter().all(|c| c.starts_with("id=;")), "{cookies:?}");
        let id = alice.trim_start_matches("id=");
        let id: tower_sessions::session::Id = id.parse().expect("an ID");
        use tower_sessions::SessionStore;
        assert!(
            data.load(&id).await.expect("load").is_none(),
            "its data is gone"
        );
    }

    /// A logout through the handle in follow mode ends the session and its
    /// data. Under `always_save`, tower-sessions then saves a fresh, empty
    /// session on the same response, as it does for any visitor: the
    /// browser gets that new anonymous ID (never alice's), and it has a
    /// lifetime like any first session, with no subject.
    #[tokio::test]
    async fn follow_mode_handle_logout_under_always_save_ends_the_session() {
        let Follow { app, lifetimes, .. } = follow_app();
        let alice = ts_sign_in(&app, "alice").await;
        let bob = ts_sign_in(&app, "bob").await;
        let response = call(&app, "POST", "/handle-logout", Some(&alice)).await;
        let handed = new_cookie(&response, "id");
        assert!(no_store(&response));
        assert_eq!(body_text(response).await, visitor_view());
        let (seen, _, _) = ts_get(&app, Some(&alice)).await;
        assert_eq!(seen, ts_rejected(), "the ended ID stays refused");
        let handed = handed.expect("tower-sessions saved a new, anonymous session");
        assert_ne!(handed, alice);
        let (seen, _, _) = ts_get(&app, Some(&handed)).await;
        assert!(
            !seen.contains("alice"),
            "the new session is anonymous: {seen}"
        );
        let (seen, cookies, _) = ts_get(&app, Some(&bob)).await;
        assert_eq!(seen, ts_live("bob"));
        assert!(cookies.is_empty(), "{cookies:?}");
        assert_eq!(lifetimes.len(), 2, "bob's and the new anonymous one");
    }

    /// Whatever the handle logout's response hands the browser under
    /// `always_save`, it is never alice's session or data again.
    #[tokio::test]
    async fn follow_mode_handle_logout_never_hands_the_session_back() {
        let Follow { app, .. } = follow_app();
        let alice = ts_sign_in(&app, "alice").await;
        let response = call(&app, "POST", "/handle-logout", Some(&alice)).await;
        let handed = new_cookie(&response, "id");
        assert_ne!(handed.as_deref(), Some(alice.as_str()), "not the ended ID");
        let (seen, _, _) = ts_get(&app, Some(&alice)).await;
        assert_eq!(seen, ts_rejected(), "the ended ID stays refused");
        if let Some(handed) = handed {
            let (seen, _, _) = ts_get(&app, Some(&handed)).await;
            assert!(
                !seen.contains("alice"),
                "the new cookie is not alice's session: {seen}"
            );
        }
    }

    /// Remember-me in follow mode: tower-sessions repeats the ID, the layer
    /// keeps it with a persistent `Max-Age`, and the response is not cacheable.
    #[tokio::test]
    async fn follow_mode_remember_me_rewrites_the_cookie_and_forbids_caching() {
        let Follow { app, .. } = follow_app();
        let alice = ts_sign_in(&app, "alice").await;
        let response = call(&app, "POST", "/remember", Some(&alice)).await;
        let set = set_cookies_named(&response, "id");
        assert_eq!(set.len(), 1, "{set:?}");
        assert_eq!(format!("id={}", set[0].value()), alice, "the same ID");
        assert!(set[0].max_age().is_some(), "persistent: {set:?}");
        assert!(
            no_store(&response),
            "a response setting the session cookie is not cacheable"
        );
        assert_eq!(
            body_text(response).await,
            format!("{}|true|true", live_view("alice"))
        );
        let (seen, cookies, _) = ts_get(&app, Some(&alice)).await;
        assert_eq!(seen, ts_live("alice"));
        // A remember-me session's activity may refresh the Max-Age; any
        // cookie it sets is alice's ID and is not cacheable.
        assert!(
            cookies.iter().all(|c| c.starts_with(&format!("{alice};"))),
            "{cookies:?}"
        );
    }

    /// 300 concurrent requests in follow mode on a 4-worker runtime: signed-in
    /// users see their own subject and data, flushed ones stay out, visitors
    /// see nothing; repeated IDs never come back as `Set-Cookie`.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn follow_mode_race_each_request_sees_its_own_session() {
        let Follow { app, .. } = follow_app();
        let mut users = Vec::new();
        for i in 0..60 {
            let user = format!("ts{i}");
            let cookie = ts_sign_in(&app, &user).await;
            users.push((user, cookie));
        }
        for (i, (_, cookie)) in users.iter().enumerate() {
            if i % 3 == 0 {
                let response = call(&app, "POST", "/flush", Some(cookie)).await;
                assert!(removes(&response, "id"));
            }
        }
        let users = Arc::new(users);
        let mut tasks = Vec::new();
        for n in 0..300usize {
            let app = app.clone();
            let users = Arc::clone(&users);
            tasks.push(tokio::spawn(async move {
                if n % 5 == 0 {
                    let (seen, cookies, _) = ts_get(&app, None).await;
                    assert_eq!(seen, ts_visitor(), "visitor {n}");
                    assert!(cookies.is_empty(), "visitor {n}: {cookies:?}");
                    return;
                }
                if n % 7 == 0 {
                    // Concurrent fresh logins too.
                    let user = format!("fresh{n}");
                    let cookie = ts_sign_in(&app, &user).await;
                    let (seen, cookies, _) = ts_get(&app, Some(&cookie)).await;
                    assert_eq!(seen, ts_live(&user), "{user}");
                    assert!(cookies.is_empty(), "{user}: {cookies:?}");
                    return;
                }
                let i = (n * 11) % users.len();
                let (user, cookie) = &users[i];
                let (seen, cookies, _) = ts_get(&app, Some(cookie)).await;
                if i % 3 == 0 {
                    assert_eq!(seen, ts_rejected(), "request {n}: {user} stays out");
                    assert!(cookies.iter().all(|c| c.starts_with("id=;")), "{cookies:?}");
                } else {
                    assert_eq!(seen, ts_live(user), "request {n}: {user}");
                    assert!(cookies.is_empty(), "request {n}: {user}: {cookies:?}");
                }
            }));
        }
        for task in tasks {
            task.await.expect("no assertion failed");
        }
    }

    /// A handle kept in follow mode still names its own session after other
    /// requests, and its later logout ends that session (and its data), not
    /// another.
    #[tokio::test]
    async fn follow_mode_kept_handle_logout_ends_its_own_session() {
        let Follow {
            app,
            lifetimes,
            shared,
            ..
        } = follow_app();
        let alice = ts_sign_in(&app, "alice").await;
        let bob = ts_sign_in(&app, "bob").await;
        let response = call(&app, "GET", "/keep", Some(&alice)).await;
        assert!(
            set_cookies(&response).is_empty(),
            "{:?}",
            set_cookies(&response)
        );
        assert_eq!(body_text(response).await, live_view("alice"));
        for _ in 0..20 {
            let (seen, _, _) = ts_get(&app, Some(&bob)).await;
            assert_eq!(seen, ts_live("bob"));
            let (seen, _, _) = ts_get(&app, None).await;
            assert_eq!(seen, ts_visitor());
        }
        let kept = shared.kept.lock().unwrap()[0].1.clone();
        assert_eq!(describe(&kept), live_view("alice"));
        kept.logout().await.expect("logout");
        assert_eq!(lifetimes.len(), 1, "only alice's lifetime ended");
        let (seen, _, _) = ts_get(&app, Some(&alice)).await;
        assert_eq!(seen, ts_rejected());
        let (seen, _, _) = ts_get(&app, Some(&bob)).await;
        assert_eq!(seen, ts_live("bob"));
    }
}
