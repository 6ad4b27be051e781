//! Run with `cargo run --example redis --features redis`, then open
//! <http://127.0.0.1:3000>.
//!
//! The demo (the same routes, environment variables, status codes and JSON;
//! see `examples/demo.rs`) with its session lifetimes in Redis: the Redis at
//! `REDIS_URL` (default `redis://127.0.0.1:6379`), or, with the
//! `redis-cluster` feature, the Redis Cluster that the nodes in
//! `REDIS_CLUSTER_NODES` (comma-separated `redis://` URLs) belong to. Two
//! copies on two ports against one Redis behave as one app: sign in on one,
//! and the other knows the session; sign out on either, and both refuse it.
//! The policy is shared the same way (`SharedPolicy`): with `ADMIN_TOKEN`
//! set, a change through either copy's `/admin/policy` reaches both. Once
//! stored, the shared policy wins over `IDLE_TIMEOUT` and the others at
//! startup. `REDIS_PREFIX` puts the keys (sessions and policy) under a
//! prefix of their own (default `tsl:`).
//!
//! ```text
//! PORT=3000 cargo run --example redis --features redis &
//! PORT=3001 cargo run --example redis --features redis &
//! curl -c jar -b jar -d username=alice http://127.0.0.1:3000/login
//! curl -b jar http://127.0.0.1:3001/api/me     # 200: the session is in Redis
//!
//! REDIS_CLUSTER_NODES=redis://127.0.0.1:7000,redis://127.0.0.1:7001 \
//!     cargo run --example redis --features redis-cluster
//! ```

mod shared;

use std::process::ExitCode;

use shared::admin::PolicyControl;
use tower_session_lifetime::{RedisStore, SessionLifetimeLayer};

/// Where Redis is unless `REDIS_URL` says otherwise.
const DEFAULT_REDIS_URL: &str = "redis://127.0.0.1:6379";

#[tokio::main]
async fn main() -> ExitCode {
    let store = match store_from_env().await {
        Ok(store) => store,
        Err(message) => {
            eprintln!("redis: {message}");
            return ExitCode::from(2);
        }
    };
    shared::serve("redis", |policy| async move {
        // The policy lives in Redis too, through a client of its own: a
        // change made on one copy of the app reaches every copy.
        let policy_store = store_from_env().await?;
        shared::demo::app_sharing(policy, SessionLifetimeLayer::new(store), |live| {
            PolicyControl::shared(live, policy_store)
        })
        .await
    })
    .await
}

/// The cluster `REDIS_CLUSTER_NODES` names, if set, else the Redis at
/// `REDIS_URL`; its keys under `REDIS_PREFIX` when set.
async fn store_from_env() -> Result<RedisStore, String> {
    let store = store_at_env_address().await?;
    Ok(match shared::env_var("REDIS_PREFIX")? {
        Some(prefix) => store.with_prefix(prefix),
        None => store,
    })
}

async fn store_at_env_address() -> Result<RedisStore, String> {
    if let Ok(nodes) = std::env::var("REDIS_CLUSTER_NODES") {
        return cluster(&nodes).await;
    }
    let url = std::env::var("REDIS_URL").unwrap_or_else(|_| DEFAULT_REDIS_URL.to_owned());
    RedisStore::open(&url).map_err(|err| {
        let cause = std::error::Error::source(&err).map(ToString::to_string);
        format!(
            "REDIS_URL={url:?} is not a usable Redis URL: {}",
            cause.unwrap_or_else(|| err.to_string())
        )
    })
}

#[cfg(feature = "redis-cluster")]
async fn cluster(nodes: &str) -> Result<RedisStore, String> {
    let urls: Vec<&str> = nodes
        .split(',')
        .map(str::trim)
        .filter(|url| !url.is_empty())
        .collect();
    RedisStore::open_cluster(&urls).await.map_err(|err| {
        let cause = std::error::Error::source(&err).map(ToString::to_string);
        format!(
            "REDIS_CLUSTER_NODES={nodes:?} names no cluster that answers: {}",
            cause.unwrap_or_else(|| err.to_string())
        )
    })
}

#[cfg(not(feature = "redis-cluster"))]
async fn cluster(_nodes: &str) -> Result<RedisStore, String> {
    Err("REDIS_CLUSTER_NODES needs the redis-cluster feature: \
         cargo run --example redis --features redis-cluster"
        .to_owned())
}
