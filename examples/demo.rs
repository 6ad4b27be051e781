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
//! - `GET /sessions` — where the user is signed in (labelled by browser),
//!   with a button to sign out each; `POST /sessions/end` (form `key`)
//! - `GET /session/status` — the deadlines as JSON, not counted as activity;
//!   `POST /session/status` counts (the dialog's Continue); both answered by
//!   the layer
//! - `GET /session-lifetime.js` — the script that shows the "Your session is
//!   about to expire" dialog, which `/` includes
//!
//! With `ADMIN_TOKEN` set, an admin (`Authorization: Bearer <ADMIN_TOKEN>`,
//! else `401`) reads and changes the running policy, without a restart:
//!
//! - `GET /admin/policy` — `{"idle_timeout": s, "absolute_timeout": s or
//!   null, "remember_me_period": s}`
//! - `PUT /admin/policy` — a JSON object with any of those fields; `200` and
//!   the new policy, or `422` `{"error", "setting"}` for a value that is
//!   zero or above its cap (idle timeout 3 days, absolute timeout 30 days:
//!   Auth0's self-service limits), nothing changed. A shorter limit bites
//!   at each session's next request; a longer one applies to sessions
//!   started after it.
//!
//! In a browser, open `/?admin_token=<ADMIN_TOKEN>` once: the token moves
//! into an `HttpOnly`, `SameSite=Strict` cookie and the page shows a
//! signed-in user a form to change the policy
//! (`POST /admin/policy/form`, the same checks; `303` back to the page, or
//! the page with the refusal).
//!
//! Unset, those routes do not exist (`404`). The `redis` and `postgres`
//! examples serve them too, and share each change with every copy.
//!
//! ```text
//! ADMIN_TOKEN=secret cargo run --example demo
//! curl -X PUT -H 'Authorization: Bearer secret' -d '{"idle_timeout": 300}' \
//!     http://127.0.0.1:3000/admin/policy
//! ```
//!
//! Environment: `PORT` (default 3000) and, in whole seconds, `IDLE_TIMEOUT`,
//! `ABSOLUTE_TIMEOUT` (or `off`), `REMEMBER_ME_PERIOD` and `SESSION_WARNING`
//! (how long before a deadline the dialog shows; default a minute, or half
//! the idle timeout when that is shorter). For example:
//!
//! ```text
//! IDLE_TIMEOUT=20 cargo run --example demo
//! curl -i -c jar -b jar -d username=alice http://127.0.0.1:3000/login
//! curl -i -c jar -b jar http://127.0.0.1:3000/api/me     # 200 within 20 s of the last request
//! sleep 21; curl -i -c jar -b jar http://127.0.0.1:3000/api/me   # 401, cookie cleared
//! ```
//!
//! `DEMO_CLOCK=manual` (for the browser tests) puts the layer and the store
//! on a clock that stands still at the whole second the demo started, and
//! adds `GET /demo-clock` (the clock's time, Unix milliseconds) and
//! `POST /demo-clock?advance_ms=N` (moves it forward; answers the new
//! time). Those two are outside the lifetime layer: not activity. Unset,
//! the demo runs on the system clock and has no such route.
//!
//! The demo trusts the username it is given: a real app checks a password (and
//! protects its forms against CSRF) before it calls `SessionHandle::login`.

mod shared;

use std::process::ExitCode;
use std::time::{Duration, SystemTime};

use axum::{extract::Query, routing::get, Router};
use serde::Deserialize;
use tower_session_lifetime::{
    clock::{Clock, ManualClock, SystemClock},
    time::Timestamp,
    MemoryStore, SessionLifetimeLayer,
};

#[tokio::main]
async fn main() -> ExitCode {
    shared::serve("demo", |policy| async move {
        let manual = match std::env::var("DEMO_CLOCK").as_deref() {
            Err(_) | Ok("") | Ok("system") => None,
            Ok("manual") => {
                let millis = Timestamp::from_system_time(SystemTime::now()).as_unix_millis();
                Some(ManualClock::new(Timestamp::from_unix_millis(
                    millis - millis % 1000,
                )))
            }
            Ok(other) => return Err(format!("DEMO_CLOCK={other:?} is not `manual` or `system`")),
        };
        let Some(clock) = manual else {
            let layer = SessionLifetimeLayer::new(MemoryStore::with_clock(SystemClock));
            return shared::demo::app(policy, layer).await;
        };
        let layer = SessionLifetimeLayer::new(MemoryStore::with_clock(clock.clone()))
            .with_clock(clock.clone());
        let app = shared::demo::app(policy, layer).await?;
        Ok(clock_routes(clock).fallback_service(app))
    })
    .await
}

#[derive(Deserialize)]
struct Advance {
    advance_ms: u64,
}

/// `GET /demo-clock` reads the manual clock, `POST /demo-clock?advance_ms=N`
/// moves it; both answer its time in Unix milliseconds. Any other request
/// goes to the app.
fn clock_routes(clock: ManualClock) -> Router {
    let read = clock.clone();
    Router::new().route(
        "/demo-clock",
        get(move || async move { read.now().as_unix_millis().to_string() }).post(
            move |Query(advance): Query<Advance>| async move {
                clock.advance(Duration::from_millis(advance.advance_ms));
                clock.now().as_unix_millis().to_string()
            },
        ),
    )
}
