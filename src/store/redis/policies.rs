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
/// refuses to go past `i64::MAX`. A version written by hand with leading
/// zeros reads as its number, as [`load`] reads it.
const STORE: &str = r"
local stored = redis.call('HGET', KEYS[1], 'v')
local version = stored and (string.gsub(stored, '^0+(%d)', '%1')) or '0'
if version ~= ARGV[1] then return 0 end
if version ~= stored then redis.call('HSET', KEYS[1], 'v', version) end
redis.call('HINCRBY', KEYS[1], 'v', 1)
redis.call('HSET', KEYS[1], 'p', ARGV[2])
redis.call('PUBLISH', ARGV[3], redis.call('HGET', KEYS[1], 'v'))
return 1
";

/// The policies stored under `key`, if any; a version that is not a
/// decimal number from 1 to `u64::MAX`, or a version without text (or
/// text without a version), is [`Corrupt`](StoreErrorKind::Corrupt).
pub(super) async fn load(
    connection: &mut Shared,
    key: &str,
) -> Result<Option<StoredPolicies>, StoreError> {
    let (version, text): (Option<String>, Option<String>) = redis::cmd("HMGET")
        .arg(key)
        .arg("v")
        .arg("p")
        .query_async(connection)
        .await
        .map_err(store_error)?;
    match (version, text) {
        (None, None) => Ok(None),
        (Some(version), Some(text)) => Ok(Some(StoredPolicies {
            version: version_of(&version)?,
            text,
        })),
        (Some(_), None) => Err(StoreError::corrupt("a policy version without policies")),
        (None, Some(_)) => Err(StoreError::corrupt("policies without a version")),
    }
}

/// The version `text` stores: decimal digits only (leading zeros allowed,
/// as the store script reads them), from 1 up.
fn version_of(text: &str) -> Result<u64, StoreError> {
    let corrupt = || StoreError::corrupt(format!("a policy version that does not read: {text:?}"));
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(corrupt());
    }
    match text.parse::<u64>() {
        Ok(0) => Err(StoreError::corrupt("a policy version of 0")),
        Ok(version) => Ok(version),
        Err(_) => Err(corrupt()),
    }
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
