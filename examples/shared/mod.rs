//! What the demo and the axum-login example share: the settings they read
//! from the environment, and the page and JSON they answer with.
//!
//! Not an example of its own: each example includes it with `mod shared;`.

#![allow(dead_code)]

pub mod admin;
pub mod demo;

use std::fmt::Write as _;
use std::time::{Duration, SystemTime};

use axum::{
    http::{header, StatusCode},
    response::{Html, IntoResponse, Response},
    Json,
};
use serde_json::json;
use tower_session_lifetime::{
    policy::{PolicyError, Setting},
    rejection::RejectReason,
    time::Timestamp,
    Policy, SessionHandle,
};

/// The port the examples listen on unless `PORT` says otherwise.
pub const DEFAULT_PORT: u16 = 3000;

/// The port and the policy, from `PORT`, `IDLE_TIMEOUT`, `ABSOLUTE_TIMEOUT`
/// and `REMEMBER_ME_PERIOD`; an error message naming the variable otherwise.
fn settings_from_env() -> Result<(u16, Policy), String> {
    let port = match env_var("PORT")? {
        None => DEFAULT_PORT,
        Some(value) => value
            .parse()
            .map_err(|_| format!("PORT={value:?} is not a port number (0-65535)"))?,
    };

    let mut builder = Policy::builder();
    if let Some(seconds) = env_seconds("IDLE_TIMEOUT")? {
        builder = builder.idle_timeout(seconds);
    }
    match env_var("ABSOLUTE_TIMEOUT")? {
        None => {}
        Some(value) if value.eq_ignore_ascii_case("off") => {
            builder = builder.no_absolute_timeout();
        }
        Some(value) => {
            builder = builder.absolute_timeout(parse_seconds("ABSOLUTE_TIMEOUT", &value)?)
        }
    }
    if let Some(seconds) = env_seconds("REMEMBER_ME_PERIOD")? {
        builder = builder.remember_me_period(seconds);
    }
    let policy = builder.build().map_err(|err| match variable_for(&err) {
        Some(name) => {
            let value = std::env::var(name).unwrap_or_default();
            format!("{name}={value:?} is not a valid session policy: {err}")
        }
        None => format!("invalid session policy: {err}"),
    })?;
    Ok((port, policy))
}

/// A set, non-empty environment variable, trimmed.
pub fn env_var(name: &str) -> Result<Option<String>, String> {
    match std::env::var(name) {
        Ok(value) if value.trim().is_empty() => Ok(None),
        Ok(value) => Ok(Some(value.trim().to_owned())),
        Err(std::env::VarError::NotPresent) => Ok(None),
        Err(std::env::VarError::NotUnicode(value)) => {
            Err(format!("{name}={value:?} is not valid UTF-8"))
        }
    }
}

fn env_seconds(name: &str) -> Result<Option<Duration>, String> {
    env_var(name)?
        .map(|value| parse_seconds(name, &value))
        .transpose()
}

fn parse_seconds(name: &str, value: &str) -> Result<Duration, String> {
    value
        .parse::<u64>()
        .map(Duration::from_secs)
        .map_err(|_| format!("{name}={value:?} is not a whole number of seconds"))
}

/// The setting a policy error names, if it names one.
fn setting_of(err: &PolicyError) -> Option<Setting> {
    match err {
        PolicyError::TooShort { setting, .. }
        | PolicyError::AboveCap { setting, .. }
        | PolicyError::Unbounded { setting, .. } => Some(*setting),
        PolicyError::GranularityTooCoarse { limit, .. } => Some(*limit),
        _ => None,
    }
}

/// The environment variable behind the setting a policy error names.
fn variable_for(err: &PolicyError) -> Option<&'static str> {
    match setting_of(err)? {
        Setting::IdleTimeout => Some("IDLE_TIMEOUT"),
        // Unset, the remember-me absolute timeout is the ordinary one.
        Setting::AbsoluteTimeout | Setting::RememberMeAbsoluteTimeout => Some("ABSOLUTE_TIMEOUT"),
        Setting::RememberMePeriod => Some("REMEMBER_ME_PERIOD"),
        _ => None,
    }
}

/// Runs an example: reads its settings from the environment (a bad value
/// exits with status 2 and a message naming it), builds its app for the
/// policy (an app that cannot be built exits with status 2 too), and serves
/// it on 127.0.0.1.
pub async fn serve<F>(name: &str, app: impl FnOnce(Policy) -> F) -> std::process::ExitCode
where
    F: std::future::Future<Output = Result<axum::Router, String>>,
{
    use std::net::{Ipv4Addr, SocketAddr};
    use std::process::ExitCode;

    tracing_subscriber::fmt().with_target(false).init();
    let (port, policy) = match settings_from_env() {
        Ok(settings) => settings,
        Err(message) => {
            eprintln!("{name}: {message}");
            return ExitCode::from(2);
        }
    };
    let print = policy;
    let app = match app(policy).await {
        Ok(app) => app,
        Err(message) => {
            eprintln!("{name}: {message}");
            return ExitCode::from(2);
        }
    };
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let listener = match tokio::net::TcpListener::bind(addr).await {
        Ok(listener) => listener,
        Err(err) => {
            eprintln!("{name}: cannot listen on {addr}: {err}");
            return ExitCode::FAILURE;
        }
    };
    print_policy(listener.local_addr().unwrap_or(addr), &print);
    if let Err(err) = axum::serve(listener, app).await {
        eprintln!("{name}: server error: {err}");
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}

/// Prints where the app listens and the policy it enforces.
pub fn print_policy(addr: std::net::SocketAddr, policy: &Policy) {
    println!("listening on http://{addr}");
    println!("session policy:");
    println!("  idle timeout           {}", human(policy.idle_timeout()));
    println!(
        "  absolute timeout       {}",
        human_limit(policy.absolute_timeout())
    );
    println!(
        "  remember-me period     {}",
        human(policy.remember_me_period())
    );
    println!(
        "  remember-me absolute   {}",
        human_limit(policy.remember_me_absolute_timeout())
    );
    println!(
        "  touch granularity      {}",
        human(policy.touch_granularity())
    );
}

/// `GET /api/me`: the session's subject and deadlines as JSON, or `401`.
pub fn me(session: &SessionHandle) -> Response {
    let no_store = [(header::CACHE_CONTROL, "no-store")];
    match session.deadlines() {
        Some(deadlines) => (
            no_store,
            Json(json!({
                "subject": session.subject(),
                "remember_me": session.remember_me(),
                "idle_expires_at": deadlines.idle.as_unix_secs(),
                "expires_at": deadlines.absolute.map(Timestamp::as_unix_secs),
            })),
        )
            .into_response(),
        // Missing, expired or unknown: with `PassThrough` the layer has already
        // removed the stale cookie from the request and clears it on this
        // response.
        None => (
            StatusCode::UNAUTHORIZED,
            no_store,
            Json(json!({ "error": "unauthenticated" })),
        )
            .into_response(),
    }
}

// The page

/// Which sign-in form the page shows.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum SignIn {
    /// A username only: the demo trusts it.
    Username,
    /// A username and a password, checked by the app.
    UsernameAndPassword,
}

/// What an app adds to [`page`]: see [`page_with`].
#[derive(Clone, Copy, Default)]
pub struct Extras<'a> {
    /// HTML beside the Sign out button, in the card, for a signed-in user
    /// only (links to more of the app).
    pub signed_in: &'a str,
    /// HTML after the actions, in the card, for a signed-in user only (the
    /// admin form).
    pub admin: &'a str,
    /// HTML at the end of the body, after the card, on every page.
    pub script: &'a str,
}

/// The page: who is signed in and when the session ends, or a sign-in form.
pub fn page(
    status: StatusCode,
    policy: &Policy,
    session: &SessionHandle,
    notice: Option<&str>,
    sign_in: SignIn,
) -> Response {
    page_with(status, policy, session, notice, sign_in, Extras::default())
}

/// [`page`], with `extras`.
pub fn page_with(
    status: StatusCode,
    policy: &Policy,
    session: &SessionHandle,
    notice: Option<&str>,
    sign_in: SignIn,
    extras: Extras<'_>,
) -> Response {
    let mut body = String::new();
    if let Some(notice) = notice {
        let _ = write!(body, r#"<p class="notice">{}</p>"#, escape(notice));
    }
    match (session.subject(), session.deadlines()) {
        (Some(subject), Some(deadlines)) => {
            let now = Timestamp::from_system_time(SystemTime::now());
            let (remember, cookie) = if session.remember_me() {
                ("on", "persistent: it survives a browser restart")
            } else {
                (
                    "off",
                    "a browser-session cookie: it ends when the browser closes",
                )
            };
            let created = session
                .created_at()
                .map(|created| {
                    format!(
                        "{} ({} ago)",
                        utc(created),
                        human(now.saturating_duration_since(created))
                    )
                })
                .unwrap_or_default();
            let absolute = match deadlines.absolute {
                Some(absolute) => deadline(absolute, now),
                None => "none &mdash; the absolute timeout is off".to_owned(),
            };
            let _ = write!(
                body,
                r#"<h1>Signed in as <span class="user">{user}</span></h1>
<dl>
  <dt>Remember me</dt><dd>{remember} &mdash; the cookie is {cookie}</dd>
  <dt>Signed in</dt><dd>{created}</dd>
  <dt>Idle deadline</dt><dd>{idle}<br><small>Activity moves it: a request (this page too) counts once the stored activity is {touch} old.</small></dd>
  <dt>Absolute deadline</dt><dd>{absolute}<br><small>Counted from sign-in; activity never moves it.</small></dd>
</dl>
<p class="hint">The session ends at whichever deadline comes first. See it as JSON at <a href="/api/me">/api/me</a>.</p>
<div class="actions">
  <form method="post" action="/logout"><button type="submit">Sign out</button></form>
  {links}
</div>{admin}"#,
                user = escape(&subject),
                links = extras.signed_in,
                admin = extras.admin,
                idle = deadline(deadlines.idle, now),
                touch = human(policy.touch_granularity()),
            );
        }
        _ => {
            if notice.is_none() {
                if let Some(reason) = session.rejection() {
                    let why = match reason {
                        RejectReason::IdleTimeout => {
                            "You were signed out after a period of inactivity."
                        }
                        RejectReason::AbsoluteTimeout => "Your session reached its maximum length.",
                        _ => "Your session has ended.",
                    };
                    let _ = write!(body, r#"<p class="notice">{why} Please sign in again.</p>"#);
                }
            }
            let password = match sign_in {
                SignIn::Username => "",
                SignIn::UsernameAndPassword => {
                    r#"  <label for="password">Password</label>
  <input id="password" name="password" type="password" autocomplete="current-password" required>
"#
                }
            };
            let _ = write!(
                body,
                r#"<h1>Sign in</h1>
<form method="post" action="/login">
  <label for="username">Username</label>
  <input id="username" name="username" autocomplete="username" required autofocus>
{password}  <label class="check"><input type="checkbox" name="remember_me" value="on"> Remember me</label>
  <button type="submit">Sign in</button>
</form>"#
            );
        }
    }
    let tail = format!("{COUNTDOWN}{}", extras.script);
    let html = document("tower-session-lifetime demo", &body, &tail);
    (status, [(header::CACHE_CONTROL, "no-store")], Html(html)).into_response()
}

/// The stylesheet of every page of the examples: one card (`main`) on a
/// grey background.
const STYLE: &str = r#"<style>
  body { font: 16px/1.5 system-ui, -apple-system, "Segoe UI", sans-serif; background: #f3f4f6; color: #1f2937; margin: 0; }
  main { max-width: 34rem; margin: 4rem auto; background: #fff; padding: 2rem 2.25rem; border-radius: 12px; box-shadow: 0 4px 24px rgb(0 0 0 / .08); }
  h1 { font-size: 1.4rem; margin: 0 0 1.25rem; }
  .user { color: #2563eb; }
  dl { display: grid; grid-template-columns: max-content 1fr; gap: .6rem 1.25rem; margin: 0 0 1.25rem; }
  dt { font-weight: 600; } dd { margin: 0; }
  small, .hint { color: #6b7280; }
  a { color: #2563eb; }
  label { display: block; margin-bottom: .35rem; }
  input[name=username], input[name=password] { width: 100%; box-sizing: border-box; padding: .55rem .7rem; font: inherit; border: 1px solid #d1d5db; border-radius: 8px; margin-bottom: 1rem; }
  .check { margin-bottom: 1.25rem; }
  button { font: inherit; padding: .55rem 1.2rem; border: 0; border-radius: 8px; background: #2563eb; color: #fff; cursor: pointer; }
  button:hover { background: #1d4ed8; }
  .actions { display: flex; flex-wrap: wrap; align-items: center; gap: .75rem 1rem; }
  .button-link { display: inline-block; padding: calc(.55rem - 1px) 1.2rem; border: 1px solid #2563eb; border-radius: 8px; color: #2563eb; text-decoration: none; }
  .button-link:hover { background: #eff6ff; }
  .sessions { list-style: none; padding: 0; margin: 0 0 1.25rem; }
  .sessions li { display: flex; align-items: center; justify-content: space-between; gap: 1rem; padding: .85rem 0; border-top: 1px solid #e5e7eb; }
  .sessions li:last-child { border-bottom: 1px solid #e5e7eb; }
  .sessions strong, .sessions small { display: block; }
  .sessions form { flex: none; }
  .sessions button { white-space: nowrap; }
  .badge { flex: none; white-space: nowrap; font-size: .85rem; padding: .2rem .65rem; border-radius: 999px; background: #dbeafe; color: #1e40af; }
  .notice { background: #fef3c7; border: 1px solid #fcd34d; padding: .6rem .8rem; border-radius: 8px; }
  footer { margin-top: 1.5rem; font-size: .85rem; color: #9ca3af; }
</style>"#;

/// Counts the "in …" next to each deadline down, so an idle timeout can be
/// watched without reloading (reloading is activity and moves it).
const COUNTDOWN: &str = r#"<script>
  const left = s => s <= 0 ? "passed — reload to see the session end"
    : "in " + [[86400, "d"], [3600, "h"], [60, "m"], [1, "s"]]
        .filter(([u]) => s >= u || u === 1)
        .map(([u, n]) => { const v = Math.floor(s / u); s -= v * u; return v + n; })
        .join(" ");
  const tick = () => document.querySelectorAll("[data-deadline]").forEach(el => {
    el.textContent = left(Math.ceil(Number(el.dataset.deadline) - Date.now() / 1000));
  });
  tick(); setInterval(tick, 1000);
</script>
"#;

/// A whole page of the examples: `body` in the card, under [`STYLE`], and
/// `tail` (HTML) after the card.
fn document(title: &str, body: &str, tail: &str) -> String {
    format!(
        r#"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
{STYLE}
</head>
<body>
<main>
{body}
<footer>tower-session-lifetime demo &middot; times in UTC</footer>
</main>
{tail}
</body>
</html>
"#
    )
}

/// A deadline as a UTC time and how far away it is.
fn deadline(at: Timestamp, now: Timestamp) -> String {
    format!(
        r#"{} &middot; <span data-deadline="{}">in {}</span>"#,
        utc(at),
        at.as_unix_millis() as f64 / 1000.0,
        human(at.saturating_duration_since(now)),
    )
}

fn escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => escaped.push_str("&amp;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '"' => escaped.push_str("&quot;"),
            '\'' => escaped.push_str("&#39;"),
            c => escaped.push(c),
        }
    }
    escaped
}

/// `2m 30s`, `14d`, `0s`.
fn human(duration: Duration) -> String {
    let mut secs = duration.as_secs();
    if secs == 0 {
        return format!("{}ms", duration.as_millis());
    }
    let mut parts = Vec::new();
    for (unit, name) in [(86_400, "d"), (3_600, "h"), (60, "m"), (1, "s")] {
        if secs >= unit {
            parts.push(format!("{}{name}", secs / unit));
            secs %= unit;
        }
    }
    parts.join(" ")
}

fn human_limit(limit: Option<Duration>) -> String {
    limit.map_or_else(|| "off".to_owned(), human)
}

/// `2025-01-31 23:59:59 UTC`.
fn utc(at: Timestamp) -> String {
    let secs = at.as_unix_secs();
    let (year, month, day) = civil_from_days((secs / 86_400) as i64);
    let time = secs % 86_400;
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02} UTC",
        time / 3_600,
        time % 3_600 / 60,
        time % 60
    )
}

/// Days since 1970-01-01 to a (year, month, day) of the proleptic Gregorian
/// calendar (Howard Hinnant's `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}
