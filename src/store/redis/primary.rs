//! Where the store's connections go: one server, or (feature
//! `redis-sentinel`) the primary that a set of Redis Sentinels names.

use std::time::Duration;

use redis::Client;

use super::connections::{client, Connections};
#[cfg(feature = "redis-sentinel")]
use super::sentinel::Followed;
use crate::store::StoreError;

/// The store's way to its primary.
pub(super) enum Primary {
    /// One server, for good.
    Fixed {
        client: Client,
        connections: Connections,
    },
    /// The primary the Sentinels name, found again after a failure.
    #[cfg(feature = "redis-sentinel")]
    Sentinel(Followed),
}

impl Primary {
    /// The server at `url`.
    pub(super) fn fixed(url: &str) -> Result<Self, StoreError> {
        let client = client(url)?;
        let connections = Connections::to(&client, Duration::ZERO)?;
        Ok(Primary::Fixed {
            client,
            connections,
        })
    }

    /// The connections to the primary as far as the store knows.
    pub(super) fn connections(&self) -> Connections {
        match self {
            Primary::Fixed { connections, .. } => connections.clone(),
            #[cfg(feature = "redis-sentinel")]
            Primary::Sentinel(followed) => followed.connections(),
        }
    }

    /// Lets the acknowledged connection's replies take `wait` longer.
    pub(super) fn allow_wait(&mut self, wait: Duration) -> Result<(), StoreError> {
        match self {
            Primary::Fixed {
                client,
                connections,
            } => {
                *connections = Connections::to(client, wait)?;
                Ok(())
            }
            #[cfg(feature = "redis-sentinel")]
            Primary::Sentinel(followed) => followed.allow_wait(wait),
        }
    }

    /// What the store reports for an operation that failed with `error`;
    /// with Sentinel, first finds the primary again if it is gone.
    pub(super) async fn failed(&self, error: StoreError) -> StoreError {
        #[cfg(feature = "redis-sentinel")]
        if let Primary::Sentinel(followed) = self {
            followed.after(&error).await;
        }
        error
    }
}
