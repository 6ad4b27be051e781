//! Where the store's connections go: one server, or (feature
//! `redis-sentinel`) the primary that a set of Redis Sentinels names.

use super::connections::{client, Connections};
#[cfg(feature = "redis-sentinel")]
use super::sentinel::Followed;
use crate::store::StoreError;

/// The store's way to its primary.
pub(super) enum Primary {
    /// One server, for good.
    Fixed(Connections),
    /// The primary the Sentinels name, found again after a failure.
    #[cfg(feature = "redis-sentinel")]
    Sentinel(Box<Followed>),
}

impl Primary {
    /// The server at `url`.
    pub(super) fn fixed(url: &str) -> Result<Self, StoreError> {
        Ok(Primary::Fixed(Connections::to(&client(url)?)?))
    }

    /// The connections to the primary as far as the store knows.
    pub(super) fn connections(&self) -> Connections {
        match self {
            Primary::Fixed(connections) => connections.clone(),
            #[cfg(feature = "redis-sentinel")]
            Primary::Sentinel(followed) => followed.connections(),
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
