//! The shared policies in Redis: the hash `<prefix>policies` (`v` the
//! version, `p` the text), each change published on the channel of the
//! same name. What [`RedisStore`](super::RedisStore)'s
//! [`PolicyStore`](crate::store::PolicyStore) does.

use std::pin::pin;

use futures_core::Stream;
use redis::Client;

use super::error::store_error;
use super::shared::Shared;
use crate::store::{StoreError, StoreErrorKind, StoredPolicies};

/// Stores `ARGV[2]` as version `ARGV[1] + 1` if the version is `ARGV[1]`,
/// and publishes the new version on `ARGV[3]`. 1: stored, 0: not. The
/// version stays a string (Lua's numbers are doubles, exact only to 2^53):
/// compared as the decimal Rust wrote, counted up by `HINCRBY`, which
/// refuses to go past `i64::MAX`.
const STORE: &str = r"
local version = redis.call('HGET', KEYS[1], 'v') or '0'
if version ~= ARGV[1] then return 0 end
redis.call('HINCRBY', KEYS[1], 'v', 1)
redis.call('HSET', KEYS[1], 'p', ARGV[2])
redis.call('PUBLISH', ARGV[3], redis.call('HGET', KEYS[1], 'v'))
return 1
";

/// The policies stored under `key`, if any.
pub(super) async fn load(
    connection: &mut Shared,
    key: &str,
) -> Result<Option<StoredPolicies>, StoreError> {
    let (version, text): (Option<u64>, Option<String>) = redis::cmd("HMGET")
        .arg(key)
        .arg("v")
        .arg("p")
        .query_async(connection)
        .await
        .map_err(store_error)?;
    Ok(version
        .zip(text)
        .map(|(version, text)| StoredPolicies { version, text }))
}

/// Stores `text` under `key` as version `expected + 1` if it is at
/// `expected`, and publishes it.
pub(super) async fn store(
    connection: &mut Shared,
    key: &str,
    expected: u64,
    text: &str,
) -> Result<bool, StoreError> {
    let script = redis::Script::new(STORE);
    let mut invocation = script.key(key);
    invocation.arg(expected).arg(text).arg(key);
    let stored: i64 = connection
        .run(&script, &invocation)
        .await
        .map_err(store_error)?;
    Ok(stored == 1)
}

/// Calls `changed` for each message on the channel `key`, until the
/// subscription ends.
pub(super) async fn watch(
    client: &Client,
    key: &str,
    changed: &(dyn Fn() + Send + Sync),
) -> Result<(), StoreError> {
    let mut pubsub = client.get_async_pubsub().await.map_err(store_error)?;
    pubsub.subscribe(key).await.map_err(store_error)?;
    // Listening now: what changed before is read once.
    changed();
    let mut messages = pin!(pubsub.on_message());
    while std::future::poll_fn(|cx| messages.as_mut().poll_next(cx))
        .await
        .is_some()
    {
        changed();
    }
    Err(StoreError::new(
        StoreErrorKind::Unavailable,
        "the subscription to policy changes ended",
    ))
}
