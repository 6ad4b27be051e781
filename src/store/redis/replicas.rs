//! Ending sessions that a failover cannot bring back: the deletion and a
//! `WAIT` for replicas, on a connection of their own.
//!
//! Redis replicates asynchronously: a primary acknowledges a write before
//! any replica has it, so a replica promoted after the primary dies may
//! lack the last writes. For a logout, that is a session coming back to
//! life. With [`RedisStore::with_replica_acknowledgement`](super::RedisStore::with_replica_acknowledgement),
//! a logout's deletion is sent together with `WAIT <replicas> <timeout>`,
//! and the logout succeeds only once that many replicas have it.
//!
//! `WAIT` counts the writes of the connection it is sent on, and blocks
//! that connection until it answers: so each such write opens a connection
//! of its own (never the one every request's load shares, nor one another
//! logout waits on), and the script and its `WAIT` go out as one pipeline
//! on it.

use std::fmt;
use std::time::Duration;

use redis::{Client, ErrorKind, FromRedisValue, ScriptInvocation, ServerErrorKind};

use super::connections::connect_alone;
use super::error::store_error;
use crate::store::{StoreError, StoreErrorKind};

/// The longest a logout may wait for replicas.
pub const MAX_REPLICA_WAIT: Duration = Duration::from_secs(60);

/// [`RedisStore::with_replica_acknowledgement`](super::RedisStore::with_replica_acknowledgement)
/// was given no replica to wait for, or a wait under a millisecond (`WAIT`
/// counts whole milliseconds, and zero would block forever) or over
/// [`MAX_REPLICA_WAIT`].
///
/// ```
/// use std::time::Duration;
/// use tower_session_lifetime::RedisStore;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// // A store connects at its first use, in a Tokio runtime.
/// let store = RedisStore::open("redis://127.0.0.1:6379").unwrap();
/// let err = store.with_replica_acknowledgement(0, Duration::from_millis(500)).unwrap_err();
/// assert_eq!(err.to_string(), "a replica acknowledgement needs at least one replica");
/// # }
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InvalidReplicaAcknowledgement {
    reason: &'static str,
}

impl fmt::Display for InvalidReplicaAcknowledgement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.reason)
    }
}

impl std::error::Error for InvalidReplicaAcknowledgement {}

/// How many replicas must have a session's end before the store says it
/// ended, and how long it waits for them.
#[derive(Clone, Copy)]
pub(super) struct Wait {
    replicas: u32,
    timeout_millis: u64,
}

impl Wait {
    /// Refuses zero replicas, and a timeout under 1 ms or over
    /// [`MAX_REPLICA_WAIT`].
    pub(super) fn new(
        replicas: u32,
        timeout: Duration,
    ) -> Result<Self, InvalidReplicaAcknowledgement> {
        let invalid = |reason| Err(InvalidReplicaAcknowledgement { reason });
        if replicas == 0 {
            return invalid("a replica acknowledgement needs at least one replica");
        }
        if timeout < Duration::from_millis(1) {
            return invalid("a replica acknowledgement needs a wait of at least 1 ms");
        }
        if timeout > MAX_REPLICA_WAIT {
            return invalid("a replica acknowledgement waits at most 60 s");
        }
        Ok(Wait {
            replicas,
            // Whole milliseconds, at least one: under 1 ms was refused.
            timeout_millis: timeout.as_millis().try_into().unwrap_or(u64::MAX),
        })
    }

    /// Runs `invocation`, then waits until the replicas have it: its
    /// result once they do, a [`StoreErrorKind::NotReplicated`] error if
    /// fewer acknowledge it in time (the change stays made on the
    /// primary).
    pub(super) async fn run<T: FromRedisValue>(
        self,
        client: &Client,
        invocation: &ScriptInvocation<'_>,
    ) -> Result<T, StoreError> {
        let wait = Duration::from_millis(self.timeout_millis);
        let mut connection = connect_alone(client, wait).await.map_err(store_error)?;
        // A server that does not have the script yet answers `NOSCRIPT`
        // (and runs nothing): it is loaded, and the pipeline sent again.
        let mut loaded = false;
        loop {
            let mut pipeline = redis::pipe();
            pipeline
                .invoke_script(invocation)
                .cmd("WAIT")
                .arg(self.replicas)
                .arg(self.timeout_millis);
            match pipeline.query_async::<(T, u32)>(&mut connection).await {
                Ok((value, acknowledged)) if acknowledged >= self.replicas => return Ok(value),
                Ok((_, acknowledged)) => {
                    return Err(StoreError::new(
                        StoreErrorKind::NotReplicated,
                        format!(
                        "{acknowledged} of the {} replicas asked for acknowledged it within {} ms",
                        self.replicas, self.timeout_millis
                    ),
                    ))
                }
                Err(err)
                    if !loaded && err.kind() == ErrorKind::Server(ServerErrorKind::NoScript) =>
                {
                    invocation
                        .load_async(&mut connection)
                        .await
                        .map_err(store_error)?;
                    loaded = true;
                }
                Err(err) => return Err(store_error(err)),
            }
        }
    }
}
