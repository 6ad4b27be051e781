//! The demo's app: the routes of the demo contract over any lifetime
//! layer (the `demo` example on `MemoryStore`, the `redis` one on
//! `RedisStore`).

use std::sync::Arc;

use axum::{
    extract::{rejection::FormRejection, Form, Query, State},
    http::StatusCode,
    response::{IntoResponse, Redirect, Response},
    routing::{get, post},
    Router,
};
use serde::Deserialize;
use tower_session_lifetime::{
    LogoutRedirects, OnInvalidSession, Policy, SessionError, SessionHandle, SessionLifetimeLayer,
};

use super::{page, SignIn};

/// The demo app, for `policy`, behind `layer` (whose store it keeps).
pub fn app(policy: Policy, layer: SessionLifetimeLayer) -> Router {
    // `Secure` stays on (the default): browsers and curl accept and resend
    // Secure cookies over plain http to 127.0.0.1 and localhost.
    // A logout may return only to the demo's own page: `/`.
    let redirects = LogoutRedirects::new("/").expect("`/` is a valid logout target");
    let layer = layer
        .with_policy(policy.clone())
        .on_invalid_session(OnInvalidSession::PassThrough)
        .with_logout_redirects(redirects);
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

/// `return_to`, from the form or the query string; the form wins.
#[derive(Deserialize)]
struct ReturnTo {
    return_to: Option<String>,
}

async fn logout(
    State(policy): AppState,
    session: SessionHandle,
    Query(query): Query<ReturnTo>,
    form: Result<Form<ReturnTo>, FormRejection>,
) -> Response {
    let from_form = form.ok().and_then(|Form(form)| form.return_to);
    let return_to = from_form.or(query.return_to);
    match session.logout_and_redirect(return_to.as_deref()).await {
        Ok(redirect) => redirect.into_response(),
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
    super::me(&session)
}
