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
//!
//! The page's admin form (`demo.rs`) changes the policy through the same
//! [`change`], for a signed-in user whose browser holds the token in the
//! `demo_admin` cookie ([`ADMIN_COOKIE`]).
//!
//! With [`PolicyControl::Shared`] (the `redis` and `postgres` examples), a
//! change is stored beside the sessions and reaches every copy of the app.

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
use tower_session_lifetime::policy::{
    Caps, LivePolicy, PolicyChange, PolicyError, PolicySnapshot, Setting,
};
use tower_session_lifetime::Policy;
#[cfg(any(feature = "redis", feature = "postgres"))]
use tower_session_lifetime::{shared_policy::SharedPolicy, store::PolicyStore};

/// The longest idle timeout the API accepts: 3 days.
pub const IDLE_CAP: Duration = Duration::from_secs(3 * 24 * 3600);
/// The longest absolute timeout the API accepts: 30 days.
pub const ABSOLUTE_CAP: Duration = Duration::from_secs(30 * 24 * 3600);

/// The cookie that holds the admin token in a browser, for the page's
/// admin form.
pub const ADMIN_COOKIE: &str = "demo_admin";

/// Where the policy an admin changes lives: in this process alone, or in
/// the store every copy of the app shares.
#[derive(Clone)]
pub enum PolicyControl {
    Local(LivePolicy),
    #[cfg(any(feature = "redis", feature = "postgres"))]
    Shared(SharedPolicy),
}

impl PolicyControl {
    /// `live`, shared with every copy of the app through `store`.
    #[cfg(any(feature = "redis", feature = "postgres"))]
    pub async fn shared(live: LivePolicy, store: impl PolicyStore) -> Result<Self, String> {
        SharedPolicy::start(live, store)
            .await
            .map(PolicyControl::Shared)
            .map_err(|err| format!("cannot read or store the shared policy: {err}"))
    }

    /// The policies in force.
    pub fn current(&self) -> PolicySnapshot {
        match self {
            PolicyControl::Local(live) => live.current(),
            #[cfg(any(feature = "redis", feature = "postgres"))]
            PolicyControl::Shared(shared) => shared.current(),
        }
    }

    async fn apply(&self, change: PolicyChange) -> Result<PolicySnapshot, Refusal> {
        let conflict = |error: String| Refusal {
            status: StatusCode::CONFLICT,
            error,
            setting: None,
        };
        match self {
            PolicyControl::Local(live) => {
                live.apply(change).map_err(|err| conflict(err.to_string()))
            }
            #[cfg(any(feature = "redis", feature = "postgres"))]
            PolicyControl::Shared(shared) => shared.apply(change).await.map_err(|err| match err {
                tower_session_lifetime::shared_policy::SharedPolicyError::Store(_) => Refusal {
                    status: StatusCode::SERVICE_UNAVAILABLE,
                    error: err.to_string(),
                    setting: None,
                },
                _ => conflict(err.to_string()),
            }),
        }
    }
}

/// What the admin routes need.
#[derive(Clone)]
pub struct Admin {
    token: String,
    control: PolicyControl,
}

/// The admin routes, if `token` is set (else none at all).
pub fn routes<S: Clone + Send + Sync + 'static>(
    token: Option<String>,
    control: PolicyControl,
) -> Router<S> {
    let Some(token) = token else {
        return Router::new();
    };
    Router::new()
        .route("/admin/policy", get(read).put(change_from_json))
        .with_state(Admin { token, control })
}

fn authorized(admin: &Admin, headers: &HeaderMap) -> bool {
    let given = headers
        .get(AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "))
        .unwrap_or("");
    is_token(&admin.token, given)
}

/// Whether `given` is the admin token, compared in constant time.
pub fn is_token(token: &str, given: &str) -> bool {
    given.as_bytes().ct_eq(token.as_bytes()).into()
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
    Json(shown(admin.control.current().policies().default_policy())).into_response()
}

async fn change_from_json(State(admin): State<Admin>, headers: HeaderMap, body: Bytes) -> Response {
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
    match change(&admin.control, &fields, "demo admin (ADMIN_TOKEN)").await {
        Ok(now) => Json(shown(now.policies().default_policy())).into_response(),
        Err(refusal) => refused(refusal.status, &refusal.error, refusal.setting),
    }
}

/// Changes the default policy of `control` to the one in force with the
/// `fields` given (the API's names, values in whole seconds), made by
/// `actor`; or why not, nothing changed.
pub async fn change(
    control: &PolicyControl,
    fields: &Map<String, Value>,
    actor: &str,
) -> Result<PolicySnapshot, Refusal> {
    let seen = control.current();
    let policy = updated(seen.policies().default_policy(), fields)?;
    let change = PolicyChange::default_policy(policy)
        .expecting(seen.version())
        .by(actor);
    control.apply(change).await
}

/// Why a change was refused: the status, the message and the setting.
pub struct Refusal {
    pub status: StatusCode,
    pub error: String,
    pub setting: Option<&'static str>,
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
