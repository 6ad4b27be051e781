//! Run with `cargo run --example tower_sessions --features tower-sessions`,
//! then open <http://127.0.0.1:3000>.
//!
//! A counter app on tower-sessions, with idle and absolute limits added by
//! `SessionLifetimeLayer`: the counter lives in tower-sessions, the lifetime
//! rules come from this crate, and an expired session's counter is deleted.
//!
//! - `GET /` — counts your visits: `{"count", "idle_expires_at", "expires_at"}`
//!   (Unix seconds); the first visit starts a session
//! - `POST /reset` — flushes the session; its lifetime ends with it
//!
//! Environment: `PORT` (default 3000) and, in whole seconds, `IDLE_TIMEOUT`,
//! `ABSOLUTE_TIMEOUT` (or `off`) and `REMEMBER_ME_PERIOD`. For example:
//!
//! ```text
//! IDLE_TIMEOUT=10 ABSOLUTE_TIMEOUT=60 cargo run --example tower_sessions --features tower-sessions
//! curl -c jar -b jar http://127.0.0.1:3000/    # {"count":1,...}
//! curl -c jar -b jar http://127.0.0.1:3000/    # {"count":2,...}
//! sleep 11; curl -c jar -b jar http://127.0.0.1:3000/   # {"count":1,...}: a new session
//! ```

mod shared;

use std::process::ExitCode;

use axum::{
    http::{header, StatusCode},
    response::{IntoResponse, Response},
    routing::{get, post},
    Json, Router,
};
use serde_json::json;
use tower_session_lifetime::{
    time::Timestamp, MemoryStore, OnInvalidSession, Policy, SessionHandle, SessionLifetimeLayer,
};
use tower_sessions::{MemoryStore as SessionStore, Session, SessionManagerLayer};

#[tokio::main]
async fn main() -> ExitCode {
    shared::serve("tower_sessions", |policy| {
        std::future::ready(Ok(app(policy)))
    })
    .await
}

/// The counter app, for `policy`.
fn app(policy: Policy) -> Router {
    let sessions = SessionStore::default();
    Router::new()
        .route("/", get(count))
        .route("/reset", post(reset))
        .layer(SessionManagerLayer::new(sessions.clone()))
        // Outside the session layer: it judges the session first, and sees
        // the cookie the session layer sets on the way out.
        .layer(
            SessionLifetimeLayer::new(MemoryStore::new())
                .with_policy(policy)
                .follow_tower_sessions()
                .delete_data_from(sessions)
                .on_invalid_session(OnInvalidSession::PassThrough),
        )
}

async fn count(session: Session, lifetime: SessionHandle) -> Response {
    let count = match session.get::<u64>("count").await {
        Ok(count) => count.unwrap_or(0) + 1,
        Err(err) => return failed(err),
    };
    if let Err(err) = session.insert("count", count).await {
        return failed(err);
    }
    // On the first visit the session starts on the way out, so its
    // deadlines are known from the next request on.
    let deadlines = lifetime.deadlines();
    (
        [(header::CACHE_CONTROL, "no-store")],
        Json(json!({
            "count": count,
            "idle_expires_at": deadlines.map(|deadlines| deadlines.idle.as_unix_secs()),
            "expires_at": deadlines.and_then(|deadlines| deadlines.absolute.map(Timestamp::as_unix_secs)),
        })),
    )
        .into_response()
}

async fn reset(session: Session) -> Response {
    match session.flush().await {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(err) => failed(err),
    }
}

fn failed(err: tower_sessions::session::Error) -> Response {
    tracing::error!(error = %err, "session store failed");
    StatusCode::SERVICE_UNAVAILABLE.into_response()
}
