//! The demo's app: the routes of the demo contract over any lifetime
//! layer (the `demo` example on `MemoryStore`, the `redis` one on
//! `RedisStore`).

use std::fmt::Write as _;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::{
    extract::{rejection::FormRejection, Form, Query, State},
    http::{
        header::{COOKIE, SET_COOKIE, USER_AGENT},
        HeaderMap, StatusCode,
    },
    response::Html,
    response::{IntoResponse, Redirect, Response},
    routing::{get, post},
    Router,
};
use percent_encoding::{percent_decode_str, utf8_percent_encode, NON_ALPHANUMERIC};
use serde::Deserialize;
use serde_json::{Map, Value};
use tower_session_lifetime::{
    client_script, deadline_headers::DeadlineHeaders, logout_redirect::LogoutRedirects,
    policy::LivePolicy, status::StatusEndpoint, OnInvalidSession, Policy, SessionError,
    SessionHandle, SessionLifetimeLayer,
};

use super::admin::{PolicyControl, ADMIN_COOKIE};
use super::{document, env_seconds, escape, page_with, utc, Extras, SignIn};

/// Where the layer answers the page's script: `GET` reports the deadlines
/// without counting as activity, `POST` (the dialog's Continue) counts.
pub const STATUS_PATH: &str = "/session/status";

/// The demo app, for `policy`, behind `layer` (whose store it keeps), its
/// policy changed in this process alone. Its page warns `SESSION_WARNING`
/// seconds before a deadline (default: a minute, or half the idle timeout
/// when that is shorter).
pub async fn app(policy: Policy, layer: SessionLifetimeLayer) -> Result<Router, String> {
    app_sharing(policy, layer, |live| {
        std::future::ready(Ok(PolicyControl::Local(live)))
    })
    .await
}

/// The demo app, its policy changed through what `control` makes of the
/// layer's live policy (shared with other copies of the app, in the
/// `redis` and `postgres` examples).
pub async fn app_sharing<F>(
    policy: Policy,
    layer: SessionLifetimeLayer,
    control: impl FnOnce(LivePolicy) -> F,
) -> Result<Router, String>
where
    F: Future<Output = Result<PolicyControl, String>>,
{
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
    let control = control(layer.live_policy()).await?;
    let admin_token = super::env_var("ADMIN_TOKEN")?;
    let admin = super::admin::routes(admin_token.clone(), control.clone());
    let form = match admin_token {
        Some(_) => Router::new().route(ADMIN_FORM_PATH, post(change_policy)),
        None => Router::new(),
    };
    let state = Arc::new(Demo {
        script: format!(
            r#"<script src="/session-lifetime.js" data-status-url="{STATUS_PATH}" data-logout-url="/logout" data-login-url="/" data-warn-seconds="{}"></script>"#,
            warning.as_secs_f64()
        ),
        control,
        admin_token,
    });
    Ok(Router::new()
        .merge(admin)
        .merge(form)
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

/// The policy, for the page to explain how the idle deadline moves (and an
/// admin to change it), and the page's tag for the session-lifetime script.
struct Demo {
    control: PolicyControl,
    script: String,
    /// `ADMIN_TOKEN`, if set.
    admin_token: Option<String>,
}

/// Where the page's admin form posts.
const ADMIN_FORM_PATH: &str = "/admin/policy/form";

type AppState = State<Arc<Demo>>;

/// The page's link to `/sessions`, beside Sign out (for a signed-in user).
const SESSIONS_LINK: &str =
    r#"<a class="button-link" href="/sessions">Where you are signed in</a>"#;

fn page(
    status: StatusCode,
    demo: &Demo,
    session: &SessionHandle,
    headers: &HeaderMap,
    notice: Option<&str>,
) -> Response {
    let policy = *demo.control.current().policies().default_policy();
    let admin = if is_admin(demo, headers) {
        admin_form(&policy)
    } else {
        String::new()
    };
    let extras = Extras {
        signed_in: SESSIONS_LINK,
        admin: &admin,
        script: &demo.script,
    };
    page_with(status, &policy, session, notice, SignIn::Username, extras)
}

/// `?admin_token=` on the page: the token, kept in the browser's
/// `demo_admin` cookie from then on (out of the address bar).
#[derive(Deserialize)]
struct AdminQuery {
    admin_token: Option<String>,
}

async fn home(
    State(demo): AppState,
    session: SessionHandle,
    headers: HeaderMap,
    Query(query): Query<AdminQuery>,
) -> Response {
    let (Some(given), Some(token)) = (query.admin_token, &demo.admin_token) else {
        return page(StatusCode::OK, &demo, &session, &headers, None);
    };
    if !super::admin::is_token(token, &given) {
        let notice = "That admin token is not the one this demo was started with.";
        return page(
            StatusCode::UNAUTHORIZED,
            &demo,
            &session,
            &headers,
            Some(notice),
        );
    }
    // The token's characters are the admin's choice: percent-encoded in
    // the cookie, so that any of them survives.
    let value = utf8_percent_encode(&given, NON_ALPHANUMERIC);
    let cookie = format!("{ADMIN_COOKIE}={value}; Path=/; HttpOnly; SameSite=Strict");
    ([(SET_COOKIE, cookie)], Redirect::to("/")).into_response()
}

/// Whether the request's `demo_admin` cookie holds the admin token.
fn is_admin(demo: &Demo, headers: &HeaderMap) -> bool {
    let Some(token) = &demo.admin_token else {
        return false;
    };
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .filter(|(name, _)| *name == ADMIN_COOKIE)
        .filter_map(|(_, value)| percent_decode_str(value).decode_utf8().ok())
        .any(|given| super::admin::is_token(token, &given))
}

/// The admin form: the default policy's limits, in whole seconds.
fn admin_form(policy: &Policy) -> String {
    let absolute = policy
        .absolute_timeout()
        .map_or_else(String::new, |limit| limit.as_secs().to_string());
    format!(
        r#"<form class="admin" method="post" action="{ADMIN_FORM_PATH}">
  <h2>Session policy (admin)</h2>
  <label for="idle_timeout">Idle timeout (seconds, at most 3 days)</label>
  <input id="idle_timeout" name="idle_timeout" inputmode="numeric" value="{idle}">
  <label for="absolute_timeout">Absolute timeout (seconds, at most 30 days)</label>
  <input id="absolute_timeout" name="absolute_timeout" inputmode="numeric" value="{absolute}">
  <label for="remember_me_period">Remember-me period (seconds)</label>
  <input id="remember_me_period" name="remember_me_period" inputmode="numeric" value="{remember}">
  <p class="hint">A shorter limit bites at each session's next request; a longer one applies to sessions started after the change.</p>
  <button type="submit">Change the policy</button>
</form>"#,
        idle = policy.idle_timeout().as_secs(),
        remember = policy.remember_me_period().as_secs(),
    )
}

/// The admin form's fields, as typed.
#[derive(Deserialize)]
struct PolicyForm {
    idle_timeout: String,
    absolute_timeout: String,
    remember_me_period: String,
}

/// `POST /admin/policy/form`: the admin form, for a browser whose
/// `demo_admin` cookie holds the token (else `401`); `303` back to the page,
/// or the page with the refusal (`422` for a value zero, above its cap or
/// not a whole number), nothing changed.
async fn change_policy(
    State(demo): AppState,
    session: SessionHandle,
    headers: HeaderMap,
    Form(form): Form<PolicyForm>,
) -> Response {
    if !is_admin(&demo, &headers) {
        return (StatusCode::UNAUTHORIZED, "An admin token is needed.").into_response();
    }
    // As the JSON API spells them: a number of seconds, `null` for an empty
    // absolute timeout (off, which the caps refuse), anything else as text
    // (refused naming the setting).
    let value = |text: &str| match text.trim() {
        "" => Value::Null,
        text => text
            .parse::<u64>()
            .map_or_else(|_| Value::String(text.to_owned()), Value::from),
    };
    let fields = Map::from_iter([
        ("idle_timeout".to_owned(), value(&form.idle_timeout)),
        ("absolute_timeout".to_owned(), value(&form.absolute_timeout)),
        (
            "remember_me_period".to_owned(),
            value(&form.remember_me_period),
        ),
    ]);
    match super::admin::change(&demo.control, &fields, "demo admin (page form)").await {
        Ok(_) => Redirect::to("/").into_response(),
        Err(refusal) => page(
            refusal.status,
            &demo,
            &session,
            &headers,
            Some(&refusal.error),
        ),
    }
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
            &headers,
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
            &headers,
            Some(&format!("That username is too long (at most {max} bytes).")),
        ),
        Err(err) => session_failure(&demo, &session, &headers, "sign-in", err),
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
    headers: HeaderMap,
    Query(query): Query<ReturnTo>,
    form: Result<Form<ReturnTo>, FormRejection>,
) -> Response {
    let from_form = form.ok().and_then(|Form(form)| form.return_to);
    let return_to = from_form.or(query.return_to);
    match session.logout_and_redirect(return_to.as_deref()).await {
        Ok(redirect) => redirect.into_response(),
        Err(err) => session_failure(&demo, &session, &headers, "sign-out", err),
    }
}

/// A store failure is `503` (try again later); anything else is a bug.
fn session_failure(
    demo: &Demo,
    session: &SessionHandle,
    headers: &HeaderMap,
    what: &str,
    err: SessionError,
) -> Response {
    tracing::error!(error = %err, source = ?std::error::Error::source(&err), "{what} failed");
    let status = match err {
        SessionError::Store(_) => StatusCode::SERVICE_UNAVAILABLE,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    };
    let message = format!("The {what} could not be completed. Please try again in a moment.");
    page(status, demo, session, headers, Some(&message))
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
