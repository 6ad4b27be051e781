//! The demo's app: the routes of the demo contract over any lifetime
//! layer (the `demo` example on `MemoryStore`, the `redis` one on
//! `RedisStore`).

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Duration;

use axum::{
    extract::{rejection::FormRejection, Form, Query, State},
    http::{header::USER_AGENT, HeaderMap, StatusCode},
    response::Html,
    response::{IntoResponse, Redirect, Response},
    routing::{get, post},
    Router,
};
use serde::Deserialize;
use tower_session_lifetime::{
    client_script, deadline_headers::DeadlineHeaders, logout_redirect::LogoutRedirects,
    policy::LivePolicy, status::StatusEndpoint, OnInvalidSession, Policy, SessionError,
    SessionHandle, SessionLifetimeLayer,
};

use super::{document, env_seconds, escape, page_with, utc, Extras, SignIn};

/// Where the layer answers the page's script: `GET` reports the deadlines
/// without counting as activity, `POST` (the dialog's Continue) counts.
pub const STATUS_PATH: &str = "/session/status";

/// The demo app, for `policy`, behind `layer` (whose store it keeps). Its
/// page warns `SESSION_WARNING` seconds before a deadline (default: a
/// minute, or half the idle timeout when that is shorter).
pub fn app(policy: Policy, layer: SessionLifetimeLayer) -> Result<Router, String> {
    let default_warning = Duration::from_secs(60).min(policy.idle_timeout() / 2);
    let warning = env_seconds("SESSION_WARNING")?.unwrap_or(default_warning);
    if warning >= policy.idle_timeout() {
        return Err(format!(
            "SESSION_WARNING={} is not shorter than the idle timeout ({} s): the dialog would never leave",
            warning.as_secs(),
            policy.idle_timeout().as_secs()
        ));
    }
    // `Secure` stays on (the default): browsers and curl accept and resend
    // Secure cookies over plain http to 127.0.0.1 and localhost.
    // A logout may return only to the demo's own page: `/`.
    let redirects = LogoutRedirects::new("/").expect("`/` is a valid logout target");
    let status = StatusEndpoint::at(STATUS_PATH).expect("a valid status path");
    let layer = layer
        .with_policy(policy)
        .on_invalid_session(OnInvalidSession::PassThrough)
        .with_logout_redirects(redirects)
        .with_deadline_headers(DeadlineHeaders::new())
        .with_status_endpoint(status);
    let live = layer.live_policy();
    let admin = super::admin::routes(super::env_var("ADMIN_TOKEN")?, live.clone());
    let state = Arc::new(Demo {
        script: format!(
            r#"<script src="/session-lifetime.js" data-status-url="{STATUS_PATH}" data-logout-url="/logout" data-login-url="/" data-warn-seconds="{}"></script>"#,
            warning.as_secs_f64()
        ),
        live,
    });
    Ok(Router::new()
        .merge(admin)
        .route("/", get(home))
        .route("/login", post(login))
        .route("/logout", post(logout))
        .route("/api/me", get(me))
        .route("/sessions", get(sessions))
        .route("/sessions/end", post(end_session))
        .route("/session-lifetime.js", get(client_script::serve))
        .layer(layer)
        .with_state(state))
}

// ---------------------------------------------------------------------------
// Handlers

/// The policy, for the page to explain how the idle deadline moves, and the
/// page's tag for the session-lifetime script.
struct Demo {
    live: LivePolicy,
    script: String,
}

type AppState = State<Arc<Demo>>;

/// The page's link to `/sessions`, beside Sign out (for a signed-in user).
const SESSIONS_LINK: &str =
    r#"<a class="button-link" href="/sessions">Where you are signed in</a>"#;

fn page(
    status: StatusCode,
    demo: &Demo,
    session: &SessionHandle,
    notice: Option<&str>,
) -> Response {
    let extras = Extras {
        signed_in: SESSIONS_LINK,
        script: &demo.script,
    };
    page_with(
        status,
        demo.live.current().policies().default_policy(),
        session,
        notice,
        SignIn::Username,
        extras,
    )
}

async fn home(State(demo): AppState, session: SessionHandle) -> Response {
    page(StatusCode::OK, &demo, &session, None)
}

#[derive(Deserialize)]
struct LoginForm {
    #[serde(default)]
    username: String,
    /// An HTML checkbox sends `remember_me=on` when ticked, nothing otherwise.
    remember_me: Option<String>,
}

async fn login(
    State(demo): AppState,
    session: SessionHandle,
    headers: HeaderMap,
    Form(form): Form<LoginForm>,
) -> Response {
    let username = form.username.trim();
    if username.is_empty() {
        return page(
            StatusCode::BAD_REQUEST,
            &demo,
            &session,
            Some("Please enter a username."),
        );
    }
    let remember_me = form.remember_me.as_deref() == Some("on");
    // A label for the user's list of sessions: the browser, as it says.
    let label = headers
        .get(USER_AGENT)
        .and_then(|agent| agent.to_str().ok())
        .map_or_else(|| "a browser".to_owned(), browser_name);
    match session.login_labelled(username, remember_me, label).await {
        Ok(()) => Redirect::to("/").into_response(),
        Err(SessionError::SubjectTooLong { max, .. }) => page(
            StatusCode::BAD_REQUEST,
            &demo,
            &session,
            Some(&format!("That username is too long (at most {max} bytes).")),
        ),
        Err(err) => session_failure(&demo, &session, "sign-in", err),
    }
}

/// `return_to`, from the form or the query string; the form wins.
#[derive(Deserialize)]
struct ReturnTo {
    return_to: Option<String>,
}

async fn logout(
    State(demo): AppState,
    session: SessionHandle,
    Query(query): Query<ReturnTo>,
    form: Result<Form<ReturnTo>, FormRejection>,
) -> Response {
    let from_form = form.ok().and_then(|Form(form)| form.return_to);
    let return_to = from_form.or(query.return_to);
    match session.logout_and_redirect(return_to.as_deref()).await {
        Ok(redirect) => redirect.into_response(),
        Err(err) => session_failure(&demo, &session, "sign-out", err),
    }
}

/// A store failure is `503` (try again later); anything else is a bug.
fn session_failure(
    demo: &Demo,
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
    page(status, demo, session, Some(&message))
}

async fn me(session: SessionHandle) -> Response {
    super::me(&session)
}

/// A short name for a browser from its `User-Agent`: its product and
/// platform, at most 80 characters.
fn browser_name(agent: &str) -> String {
    let browser = ["Firefox", "Edg", "Chrome", "Safari", "curl"]
        .into_iter()
        .find(|name| agent.contains(name))
        .map(|name| if name == "Edg" { "Edge" } else { name });
    let platform = ["Windows", "Android", "iPhone", "Mac OS", "Linux"]
        .into_iter()
        .find(|name| agent.contains(name));
    let name = match (browser, platform) {
        (Some(browser), Some(platform)) => format!("{browser} on {platform}"),
        (Some(browser), None) => browser.to_owned(),
        _ => agent.to_owned(),
    };
    name.chars().take(80).collect()
}

/// `GET /sessions`: the user's sessions, with a button to end each.
async fn sessions(session: SessionHandle) -> Response {
    if !session.is_active() {
        return Redirect::to("/").into_response();
    }
    let listed = match session.sessions().await {
        Ok(listed) => listed,
        Err(err) => {
            tracing::error!(error = %err, "could not list the sessions");
            return (
                StatusCode::SERVICE_UNAVAILABLE,
                "Please try again in a moment.",
            )
                .into_response();
        }
    };
    // This browser's session first, then the others as listed.
    let (current, others): (Vec<_>, Vec<_>) = listed.iter().partition(|info| info.current);
    let mut items = String::new();
    for info in current.into_iter().chain(others) {
        let action = if info.current {
            r#"<span class="badge">this browser</span>"#.to_owned()
        } else {
            format!(
                r#"<form method="post" action="/sessions/end"><input type="hidden" name="key" value="{}"><button type="submit">Sign out</button></form>"#,
                info.key.to_hex()
            )
        };
        let _ = write!(
            items,
            r#"
  <li><div><strong>{label}</strong><small>Signed in {created} &middot; remember me: {remember}</small><small>Last active {active}</small></div>{action}</li>"#,
            label = escape(info.label.as_deref().unwrap_or("unnamed")),
            created = utc(info.created_at),
            active = utc(info.last_activity),
            remember = if info.remember_me { "yes" } else { "no" },
        );
    }
    let body = format!(
        r#"<h1>Where you are signed in</h1>
<ul class="sessions">{items}
</ul>
<div class="actions"><a class="button-link" href="/">Back</a></div>"#
    );
    Html(document("Your sessions", &body, "")).into_response()
}

#[derive(Deserialize)]
struct EndForm {
    key: String,
}

/// `POST /sessions/end`: ends one of the user's sessions (`key` from the
/// list); `303` back to the list.
async fn end_session(session: SessionHandle, Form(form): Form<EndForm>) -> Response {
    let Some(key) = tower_session_lifetime::id::SessionKey::from_hex(&form.key) else {
        return (StatusCode::BAD_REQUEST, "No such session.").into_response();
    };
    match session.end_session(&key).await {
        Ok(_) => Redirect::to("/sessions").into_response(),
        Err(err) => {
            tracing::error!(error = %err, "could not end a session");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                "Please try again in a moment.",
            )
                .into_response()
        }
    }
}
