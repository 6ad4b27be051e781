//! Run with `cargo run --example redis --features redis`, then open
//! <http://127.0.0.1:3000>.
//!
//! The demo (the same routes, environment variables, status codes and JSON;
//! see `examples/demo.rs`) with its session lifetimes in Redis: the Redis at
//! `REDIS_URL` (default `redis://127.0.0.1:6379`). Two copies on two ports
//! against one Redis behave as one app: sign in on one, and the other knows
//! the session; sign out on either, and both refuse it.
//!
//! ```text
//! PORT=3000 cargo run --example redis --features redis &
//! PORT=3001 cargo run --example redis --features redis &
//! curl -c jar -b jar -d username=alice http://127.0.0.1:3000/login
//! curl -b jar http://127.0.0.1:3001/api/me     # 200: the session is in Redis
//! ```

mod shared;

use std::process::ExitCode;

use tower_session_lifetime::{RedisStore, SessionLifetimeLayer};

/// Where Redis is unless `REDIS_URL` says otherwise.
const DEFAULT_REDIS_URL: &str = "redis://127.0.0.1:6379";

#[tokio::main]
async fn main() -> ExitCode {
    shared::serve("redis", |policy| {
        let url = std::env::var("REDIS_URL").unwrap_or_else(|_| DEFAULT_REDIS_URL.to_owned());
        let store = RedisStore::open(&url).map_err(|err| {
            let cause = std::error::Error::source(&err).map(ToString::to_string);
            format!(
                "REDIS_URL={url:?} is not a usable Redis URL: {}",
                cause.unwrap_or_else(|| err.to_string())
            )
        })?;
        shared::demo::app(policy, SessionLifetimeLayer::new(store))
    })
    .await
}
