//! Run with `cargo run --example axum_login --features tower-sessions`, then
//! open <http://127.0.0.1:3000>.
//!
//! An axum-login app on tower-sessions, with idle, absolute and remember-me
//! lifetimes added by `SessionLifetimeLayer`, which follows tower-sessions'
//! `id` cookie. The same contract as the `demo` example, with a password:
//!
//! - `GET /` — a sign-in form, or who you are and when your session ends
//! - `POST /login` — form `username`, `password`, optional `remember_me=on`;
//!   `303` to `/`. This example's user backend accepts any username whose
//!   password equals the username; anything else gets `401` and the form
//!   again, with no session started (an empty username gets `400`)
//! - `GET /api/me` — behind axum-login's `login_required!`:
//!   `{"subject", "remember_me", "idle_expires_at", "expires_at"}` (Unix
//!   seconds; `expires_at` is the absolute deadline, `null` when off), or `401`
//! - `POST /logout` — axum-login's logout; the lifetime ends with it; `303` to `/`
//!
//! Environment: `PORT` (default 3000) and, in whole seconds, `IDLE_TIMEOUT`,
//! `ABSOLUTE_TIMEOUT` (or `off`) and `REMEMBER_ME_PERIOD`. For example:
//!
//! ```text
//! IDLE_TIMEOUT=20 cargo run --example axum_login --features tower-sessions
//! curl -i -c jar -b jar -d username=alice -d password=alice http://127.0.0.1:3000/login
//! curl -i -c jar -b jar http://127.0.0.1:3000/api/me     # 200 within 20 s of the last request
//! sleep 21; curl -i -c jar -b jar http://127.0.0.1:3000/api/me   # 401, cookie cleared
//! ```

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
use axum_login::{login_required, AuthManagerLayerBuilder, AuthSession, AuthUser, AuthnBackend};
use serde::Deserialize;
use shared::{page, SignIn};
use tower_session_lifetime::{
    MemoryStore, OnInvalidSession, Policy, SessionError, SessionHandle, SessionLifetimeLayer,
};
use tower_sessions::{MemoryStore as SessionStore, SessionManagerLayer};

#[tokio::main]
async fn main() -> ExitCode {
    shared::serve("axum_login", |policy| std::future::ready(Ok(app(policy)))).await
}

/// The app, for `policy`.
fn app(policy: Policy) -> Router {
    // tower-sessions keeps the session data and issues the `id` cookie;
    // axum-login keeps who is signed in in it.
    let sessions = SessionStore::default();
    let auth =
        AuthManagerLayerBuilder::new(Users, SessionManagerLayer::new(sessions.clone())).build();
    // Outermost, so it judges the session before the others see it.
    let lifetime = SessionLifetimeLayer::new(MemoryStore::new())
        .with_policy(policy)
        .follow_tower_sessions()
        .delete_data_from(sessions)
        .on_invalid_session(OnInvalidSession::PassThrough);
    Router::new()
        .route("/api/me", get(me))
        .route_layer(login_required!(Users))
        .route("/", get(home))
        .route("/login", post(login))
        .route("/logout", post(logout))
        .with_state(Arc::new(policy))
        .layer(auth)
        .layer(lifetime)
}

// ---------------------------------------------------------------------------
// The user backend

#[derive(Clone, Debug)]
struct User {
    name: String,
}

impl AuthUser for User {
    type Id = String;

    fn id(&self) -> String {
        self.name.clone()
    }

    /// Changing it would sign the user out everywhere; a real app uses a
    /// hash of the password here.
    fn session_auth_hash(&self) -> &[u8] {
        self.name.as_bytes()
    }
}

/// Accepts any username whose password equals the username.
#[derive(Clone, Debug)]
struct Users;

#[derive(Clone)]
struct Credentials {
    username: String,
    password: String,
}

impl AuthnBackend for Users {
    type User = User;
    type Credentials = Credentials;
    type Error = std::convert::Infallible;

    async fn authenticate(&self, creds: Credentials) -> Result<Option<User>, Self::Error> {
        Ok((creds.password == creds.username).then_some(User {
            name: creds.username,
        }))
    }

    async fn get_user(&self, name: &String) -> Result<Option<User>, Self::Error> {
        Ok(Some(User { name: name.clone() }))
    }
}

// ---------------------------------------------------------------------------
// Handlers

type AppState = State<Arc<Policy>>;

async fn home(State(policy): AppState, session: SessionHandle) -> Response {
    page(
        StatusCode::OK,
        &policy,
        &session,
        None,
        SignIn::UsernameAndPassword,
    )
}

#[derive(Deserialize)]
struct LoginForm {
    #[serde(default)]
    username: String,
    #[serde(default)]
    password: String,
    /// An HTML checkbox sends `remember_me=on` when ticked, nothing otherwise.
    remember_me: Option<String>,
}

async fn login(
    State(policy): AppState,
    mut auth: AuthSession<Users>,
    session: SessionHandle,
    Form(form): Form<LoginForm>,
) -> Response {
    let refuse = |status, notice: &str| {
        page(
            status,
            &policy,
            &session,
            Some(notice),
            SignIn::UsernameAndPassword,
        )
    };
    let username = form.username.trim().to_owned();
    if username.is_empty() {
        return refuse(StatusCode::BAD_REQUEST, "Please enter a username.");
    }
    let credentials = Credentials {
        username,
        password: form.password,
    };
    let user = match auth.authenticate(credentials).await {
        Ok(Some(user)) => user,
        Ok(None) => return refuse(StatusCode::UNAUTHORIZED, "Wrong username or password."),
        Err(_) => return sign_in_failed(&policy, &session),
    };
    // Whose session it is, and whether to remember it: the lifetime layer
    // starts the session's lifetime when the response carries the new ID.
    let remember_me = form.remember_me.as_deref() == Some("on");
    match session.login(user.name.clone(), remember_me).await {
        Ok(()) => {}
        Err(SessionError::SubjectTooLong { max, .. }) => {
            return refuse(
                StatusCode::BAD_REQUEST,
                &format!("That username is too long (at most {max} bytes)."),
            )
        }
        Err(_) => return sign_in_failed(&policy, &session),
    }
    // axum-login cycles the session ID at a first sign-in; at a sign-in
    // over a sign-in it keeps it, and the lifetime layer moves the session
    // to a new ID itself (it has the session store: `delete_data_from`).
    match auth.login(&user).await {
        Ok(()) => Redirect::to("/").into_response(),
        Err(_) => sign_in_failed(&policy, &session),
    }
}

fn sign_in_failed(policy: &Policy, session: &SessionHandle) -> Response {
    tracing::error!("sign-in failed");
    page(
        StatusCode::SERVICE_UNAVAILABLE,
        policy,
        session,
        Some("The sign-in could not be completed. Please try again in a moment."),
        SignIn::UsernameAndPassword,
    )
}

async fn logout(mut auth: AuthSession<Users>) -> Response {
    match auth.logout().await {
        Ok(_) => Redirect::to("/").into_response(),
        Err(err) => {
            tracing::error!(error = %err, "sign-out failed");
            StatusCode::SERVICE_UNAVAILABLE.into_response()
        }
    }
}

async fn me(session: SessionHandle) -> Response {
    shared::me(&session)
}
