//! The demo's admin API, served when `ADMIN_TOKEN` is set: the running
//! policy, read and changed live (`LivePolicy`), for a caller that sends
//! `Authorization: Bearer <ADMIN_TOKEN>`.
//!
//! - `GET /admin/policy` → `200` `{"idle_timeout": s, "absolute_timeout":
//!   s or null, "remember_me_period": s}` (whole seconds);
//! - `PUT /admin/policy` with a JSON object holding any of those fields →
//!   `200` and the new policy; `422` `{"error": …, "setting": …}` when a
//!   value is zero, not a whole number of seconds, or above its cap (idle
//!   timeout 3 days, absolute timeout 30 days: Auth0's self-service
//!   limits; the absolute timeout cannot be switched off), the running
//!   policy unchanged; `400` for a body that is not such an object;
//! - both `401` without the token.

use std::time::Duration;

use axum::{
    body::Bytes,
    extract::State,
    http::{header::AUTHORIZATION, HeaderMap, StatusCode},
    response::{IntoResponse, Response},
    routing::get,
    Json, Router,
};
use serde_json::{json, Map, Value};
use subtle::ConstantTimeEq;
use tower_session_lifetime::policy::{Caps, LivePolicy, PolicyChange, PolicyError, Setting};
use tower_session_lifetime::Policy;

/// The longest idle timeout the API accepts: 3 days.
pub const IDLE_CAP: Duration = Duration::from_secs(3 * 24 * 3600);
/// The longest absolute timeout the API accepts: 30 days.
pub const ABSOLUTE_CAP: Duration = Duration::from_secs(30 * 24 * 3600);

/// What the admin routes need.
#[derive(Clone)]
pub struct Admin {
    token: String,
    live: LivePolicy,
}

/// The admin routes, if `token` is set (else none at all).
pub fn routes<S: Clone + Send + Sync + 'static>(
    token: Option<String>,
    live: LivePolicy,
) -> Router<S> {
    let Some(token) = token else {
        return Router::new();
    };
    Router::new()
        .route("/admin/policy", get(read).put(change))
        .with_state(Admin { token, live })
}

fn authorized(admin: &Admin, headers: &HeaderMap) -> bool {
    let given = headers
        .get(AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "))
        .unwrap_or("");
    given.as_bytes().ct_eq(admin.token.as_bytes()).into()
}

fn unauthorized() -> Response {
    (
        StatusCode::UNAUTHORIZED,
        [("www-authenticate", "Bearer")],
        Json(json!({"error": "an admin token is needed"})),
    )
        .into_response()
}

/// The policy as the API shows it.
fn shown(policy: &Policy) -> Value {
    json!({
        "idle_timeout": policy.idle_timeout().as_secs(),
        "absolute_timeout": policy.absolute_timeout().map(|limit| limit.as_secs()),
        "remember_me_period": policy.remember_me_period().as_secs(),
    })
}

async fn read(State(admin): State<Admin>, headers: HeaderMap) -> Response {
    if !authorized(&admin, &headers) {
        return unauthorized();
    }
    Json(shown(admin.live.current().policies().default_policy())).into_response()
}

async fn change(State(admin): State<Admin>, headers: HeaderMap, body: Bytes) -> Response {
    if !authorized(&admin, &headers) {
        return unauthorized();
    }
    let fields: Map<String, Value> = match serde_json::from_slice(&body) {
        Ok(Value::Object(fields)) => fields,
        _ => {
            return refused(
                StatusCode::BAD_REQUEST,
                "the body is not a JSON object",
                None,
            )
        }
    };
    let seen = admin.live.current();
    let policy = match updated(seen.policies().default_policy(), &fields) {
        Ok(policy) => policy,
        Err(refusal) => return refused(refusal.status, &refusal.error, refusal.setting),
    };
    let change = PolicyChange::default_policy(policy)
        .expecting(seen.version())
        .by("demo admin (ADMIN_TOKEN)");
    match admin.live.apply(change) {
        Ok(now) => Json(shown(now.policies().default_policy())).into_response(),
        Err(err) => refused(StatusCode::CONFLICT, &err.to_string(), None),
    }
}

/// Why a change was refused: the status, the message and the setting.
struct Refusal {
    status: StatusCode,
    error: String,
    setting: Option<&'static str>,
}

/// `current` with the fields given, checked as at startup and against the
/// caps.
fn updated(current: &Policy, fields: &Map<String, Value>) -> Result<Policy, Refusal> {
    let mut builder = Policy::builder()
        .idle_timeout(current.idle_timeout())
        .remember_me_period(current.remember_me_period())
        .caps(
            Caps::new()
                .idle_timeout(IDLE_CAP)
                .absolute_timeout(ABSOLUTE_CAP),
        );
    builder = match current.absolute_timeout() {
        Some(limit) => builder.absolute_timeout(limit),
        None => builder.no_absolute_timeout(),
    };
    for (name, value) in fields {
        let seconds = |value: &Value| {
            value
                .as_u64()
                .map(Duration::from_secs)
                .ok_or_else(|| Refusal {
                    status: StatusCode::UNPROCESSABLE_ENTITY,
                    error: format!("{name} is not a whole number of seconds"),
                    setting: field_named(name),
                })
        };
        builder = match name.as_str() {
            "idle_timeout" => builder.idle_timeout(seconds(value)?),
            "remember_me_period" => builder.remember_me_period(seconds(value)?),
            "absolute_timeout" if value.is_null() => builder.no_absolute_timeout(),
            "absolute_timeout" => builder.absolute_timeout(seconds(value)?),
            _ => {
                return Err(Refusal {
                    status: StatusCode::BAD_REQUEST,
                    error: format!("{name} is not a setting of the policy"),
                    setting: None,
                })
            }
        };
    }
    builder.build().map_err(|err| Refusal {
        status: StatusCode::UNPROCESSABLE_ENTITY,
        error: err.to_string(),
        setting: field_of(&err),
    })
}

/// `name` as one of the API's settings.
fn field_named(name: &str) -> Option<&'static str> {
    ["idle_timeout", "absolute_timeout", "remember_me_period"]
        .into_iter()
        .find(|field| *field == name)
}

/// The API's name for the setting `err` is about.
fn field_of(err: &PolicyError) -> Option<&'static str> {
    match super::setting_of(err)? {
        Setting::IdleTimeout => Some("idle_timeout"),
        Setting::AbsoluteTimeout | Setting::RememberMeAbsoluteTimeout => Some("absolute_timeout"),
        Setting::RememberMePeriod => Some("remember_me_period"),
        _ => None,
    }
}

fn refused(status: StatusCode, error: &str, setting: Option<&str>) -> Response {
    (status, Json(json!({"error": error, "setting": setting}))).into_response()
}
