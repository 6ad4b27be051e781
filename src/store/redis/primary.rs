//! Where the store's connections go: one server, (feature
//! `redis-sentinel`) the primary that a set of Redis Sentinels names, or
//! (feature `redis-cluster`) the primaries of a cluster.

use redis::Client;

use super::connections::{client, Connections};
#[cfg(feature = "redis-sentinel")]
use super::sentinel::Followed;
use super::shared::Shared;
use crate::store::StoreError;

/// The store's way to its primary.
pub(super) enum Primary {
    /// One server, for good.
    Fixed(Connections),
    /// The primary the Sentinels name, found again after a failure.
    #[cfg(feature = "redis-sentinel")]
    Sentinel(Box<Followed>),
    /// The primaries of a cluster, each key's slot's found by the
    /// connection.
    #[cfg(feature = "redis-cluster")]
    Cluster(redis::cluster_async::ClusterConnection),
}

impl Primary {
    /// The server at `url`.
    pub(super) fn fixed(url: &str) -> Result<Self, StoreError> {
        Ok(Primary::Fixed(Connections::to(&client(url)?)?))
    }

    /// The connection every operation shares.
    pub(super) fn shared(&self) -> Shared {
        match self {
            Primary::Fixed(connections) => connections.shared.clone(),
            #[cfg(feature = "redis-sentinel")]
            Primary::Sentinel(followed) => followed.connections().shared,
            #[cfg(feature = "redis-cluster")]
            Primary::Cluster(connection) => Shared::Cluster(connection.clone()),
        }
    }

    /// The client that opens a connection of its own for a write that
    /// waits for replicas: none on a cluster.
    pub(super) fn acknowledging(&self) -> Option<Client> {
        match self {
            Primary::Fixed(connections) => Some(connections.acknowledged.clone()),
            #[cfg(feature = "redis-sentinel")]
            Primary::Sentinel(followed) => Some(followed.connections().acknowledged),
            #[cfg(feature = "redis-cluster")]
            Primary::Cluster(_) => None,
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
