//! Run with `cargo run --example postgres --features postgres`, then open
//! <http://127.0.0.1:3000>.
//!
//! The demo (the same routes, environment variables, status codes and JSON;
//! see `examples/demo.rs`) with its session lifetimes in PostgreSQL: the
//! database at `DATABASE_URL` (default `postgres://postgres@127.0.0.1:5432/postgres`).
//! It creates its table at startup if missing and purges expired rows every
//! five minutes. Two copies on two ports against one database behave as one
//! app, down to the policy (`SharedPolicy`): with `ADMIN_TOKEN` set, a
//! change through either copy's `/admin/policy` reaches both. Once stored,
//! the shared policy wins over `IDLE_TIMEOUT` and the others at startup.
//!
//! ```text
//! PORT=3000 cargo run --example postgres --features postgres &
//! PORT=3001 cargo run --example postgres --features postgres &
//! curl -c jar -b jar -d username=alice http://127.0.0.1:3000/login
//! curl -b jar http://127.0.0.1:3001/api/me     # 200: the session is in PostgreSQL
//! ```

mod shared;

use std::process::ExitCode;
use std::time::Duration;

use shared::admin::PolicyControl;
use tower_session_lifetime::{PostgresStore, SessionLifetimeLayer};

/// Where PostgreSQL is unless `DATABASE_URL` says otherwise.
const DEFAULT_DATABASE_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

#[tokio::main]
async fn main() -> ExitCode {
    let url = std::env::var("DATABASE_URL").unwrap_or_else(|_| DEFAULT_DATABASE_URL.to_owned());
    let store = match PostgresStore::open(&url) {
        Ok(store) => store,
        Err(err) => {
            let cause = std::error::Error::source(&err).map(ToString::to_string);
            eprintln!(
                "postgres: DATABASE_URL={url:?} is not a usable PostgreSQL URL: {}",
                cause.unwrap_or_else(|| err.to_string())
            );
            return ExitCode::from(2);
        }
    };
    if let Err(err) = store.migrate().await {
        let cause = std::error::Error::source(&err).map(ToString::to_string);
        eprintln!(
            "postgres: cannot create the sessions table at {url:?}: {}",
            cause.unwrap_or_else(|| err.to_string())
        );
        return ExitCode::FAILURE;
    }
    let _purge = store.spawn_purge(Duration::from_secs(300));
    shared::serve("postgres", |policy| async move {
        // The policy lives in PostgreSQL too (`<table>_policies`): a change
        // made on one copy of the app reaches every copy.
        let policy_store = store.clone();
        shared::demo::app_sharing(policy, SessionLifetimeLayer::new(store), |live| {
            PolicyControl::shared(live, policy_store)
        })
        .await
    })
    .await
}
