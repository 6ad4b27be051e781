//! Run with `cargo run --example demo`, then open <http://127.0.0.1:3000>.
//!
//! An axum app whose sessions live by the rules of `SessionLifetimeLayer`:
//! sign in (with or without "remember me"), watch the idle deadline move with
//! every request while the absolute deadline stays put, and see an expired or
//! logged-out session cookie cleared and answered as a visitor.
//!
//! - `GET /` — a sign-in form, or who you are and when your session ends
//! - `POST /login` — form `username`, optional `remember_me=on`; `303` to `/`
//!   (an empty username gets `400` and the form again)
//! - `GET /api/me` — `{"subject", "remember_me", "idle_expires_at", "expires_at"}`
//!   (Unix seconds; `expires_at` is the absolute deadline, `null` when off), or `401`
//! - `POST /logout` — ends the session and clears the cookie; `303` to `/`
//!
//! Environment: `PORT` (default 3000) and, in whole seconds, `IDLE_TIMEOUT`,
//! `ABSOLUTE_TIMEOUT` (or `off`) and `REMEMBER_ME_PERIOD`. For example:
//!
//! ```text
//! IDLE_TIMEOUT=20 cargo run --example demo
//! curl -i -c jar -b jar -d username=alice http://127.0.0.1:3000/login
//! curl -i -c jar -b jar http://127.0.0.1:3000/api/me     # 200 within 20 s of the last request
//! sleep 21; curl -i -c jar -b jar http://127.0.0.1:3000/api/me   # 401, cookie cleared
//! ```
//!
//! The demo trusts the username it is given: a real app checks a password (and
//! protects its forms against CSRF) before it calls `SessionHandle::login`.

mod shared;

use std::process::ExitCode;
use std::sync::Arc;

use axum::{
    extract::{Form, State},
    http::StatusCode,
    response::{IntoResponse, Redirect, Response},
    routing::{get, post},
    Router,
};
use serde::Deserialize;
use shared::{page, SignIn};
use tower_session_lifetime::{
    MemoryStore, OnInvalidSession, Policy, SessionError, SessionHandle, SessionLifetimeLayer,
};

#[tokio::main]
async fn main() -> ExitCode {
    shared::serve("demo", app).await
}

/// The demo app, for `policy`.
fn app(policy: Policy) -> Router {
    // `Secure` stays on (the default): browsers and curl accept and resend
    // Secure cookies over plain http to 127.0.0.1 and localhost.
    let layer = SessionLifetimeLayer::new(MemoryStore::new())
        .with_policy(policy.clone())
        .on_invalid_session(OnInvalidSession::PassThrough);
    Router::new()
        .route("/", get(home))
        .route("/login", post(login))
        .route("/logout", post(logout))
        .route("/api/me", get(me))
        .layer(layer)
        .with_state(Arc::new(policy))
}

// ---------------------------------------------------------------------------
// Handlers

/// The policy, for the page to explain how the idle deadline moves.
type AppState = State<Arc<Policy>>;

async fn home(State(policy): AppState, session: SessionHandle) -> Response {
    page(StatusCode::OK, &policy, &session, None, SignIn::Username)
}

#[derive(Deserialize)]
struct LoginForm {
    #[serde(default)]
    username: String,
    /// An HTML checkbox sends `remember_me=on` when ticked, nothing otherwise.
    remember_me: Option<String>,
}

async fn login(
    State(policy): AppState,
    session: SessionHandle,
    Form(form): Form<LoginForm>,
) -> Response {
    let username = form.username.trim();
    if username.is_empty() {
        return page(
            StatusCode::BAD_REQUEST,
            &policy,
            &session,
            Some("Please enter a username."),
            SignIn::Username,
        );
    }
    let remember_me = form.remember_me.as_deref() == Some("on");
    match session.login(username, remember_me).await {
        Ok(()) => Redirect::to("/").into_response(),
        Err(SessionError::SubjectTooLong { max, .. }) => page(
            StatusCode::BAD_REQUEST,
            &policy,
            &session,
            Some(&format!("That username is too long (at most {max} bytes).")),
            SignIn::Username,
        ),
        Err(err) => session_failure(&policy, &session, "sign-in", err),
    }
}

async fn logout(State(policy): AppState, session: SessionHandle) -> Response {
    match session.logout().await {
        Ok(()) => Redirect::to("/").into_response(),
        Err(err) => session_failure(&policy, &session, "sign-out", err),
    }
}

/// A store failure is `503` (try again later); anything else is a bug.
fn session_failure(
    policy: &Policy,
    session: &SessionHandle,
    what: &str,
    err: SessionError,
) -> Response {
    tracing::error!(error = %err, source = ?std::error::Error::source(&err), "{what} failed");
    let status = match err {
        SessionError::Store(_) => StatusCode::SERVICE_UNAVAILABLE,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    };
    let message = format!("The {what} could not be completed. Please try again in a moment.");
    page(status, policy, session, Some(&message), SignIn::Username)
}

async fn me(session: SessionHandle) -> Response {
    shared::me(&session)
}
