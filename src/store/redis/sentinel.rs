//! Following the primary that a set of Redis Sentinels names (feature
//! `redis-sentinel`).
//!
//! An operation that fails because its server is gone (the connection
//! refused, dropped or timed out) or no longer a primary (`READONLY`: a
//! demoted primary that came back as a replica) asks the Sentinels for the
//! current primary before it returns its error; if it moved, the next
//! operations go there. Until the Sentinels have promoted a replica,
//! operations keep failing as unavailable (the layer answers `503`); the
//! store recovers by itself once they have. One failing operation asks at
//! a time; the others fail at once.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{PoisonError, RwLock};

use redis::sentinel::{SentinelClient, SentinelServerType};
use redis::Client;

use super::connections::Connections;
use super::error::store_error;
use crate::store::{StoreError, StoreErrorKind};

/// The primary the Sentinels name for a service, and the connections to it.
pub(super) struct Followed {
    sentinels: Vec<String>,
    service: String,
    current: RwLock<(Client, Connections)>,
    asking: AtomicBool,
}

impl Followed {
    /// Asks the Sentinels at `sentinels` for the primary of `service` now:
    /// the store needs one to connect to.
    pub(super) async fn new(sentinels: &[&str], service: &str) -> Result<Self, StoreError> {
        if sentinels.is_empty() {
            return Err(StoreError::new(
                StoreErrorKind::Backend,
                "a Sentinel-managed store needs at least one Sentinel",
            ));
        }
        let sentinels: Vec<String> = sentinels.iter().map(|url| (*url).to_owned()).collect();
        let primary = ask(&sentinels, service).await?;
        let connections = Connections::to(&primary)?;
        Ok(Followed {
            sentinels,
            service: service.to_owned(),
            current: RwLock::new((primary, connections)),
            asking: AtomicBool::new(false),
        })
    }

    /// The connections to the primary as far as the store knows.
    pub(super) fn connections(&self) -> Connections {
        self.current
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .1
            .clone()
    }

    /// After an operation failed with `error`: if the server is gone or no
    /// longer the primary, asks the Sentinels where the primary is now
    /// (unless another operation is asking).
    pub(super) async fn after(&self, error: &StoreError) {
        if error.kind() != StoreErrorKind::Unavailable {
            return;
        }
        if self.asking.swap(true, Ordering::AcqRel) {
            return;
        }
        self.follow().await;
        self.asking.store(false, Ordering::Release);
    }

    /// Asks the Sentinels for the primary and, if it moved, connects there.
    /// A failure to ask leaves the connections as they were: the next
    /// failing operation asks again.
    async fn follow(&self) {
        let primary = match ask(&self.sentinels, &self.service).await {
            Ok(primary) => primary,
            Err(err) => {
                tracing::warn!(error = %err, "session store: the Sentinels named no primary yet");
                return;
            }
        };
        let moved = {
            let current = self.current.read().unwrap_or_else(PoisonError::into_inner);
            current.0.get_connection_info().addr() != primary.get_connection_info().addr()
        };
        if !moved {
            return;
        }
        match Connections::to(&primary) {
            Ok(connections) => {
                tracing::warn!(
                    primary = %primary.get_connection_info().addr(),
                    "session store: following the new Redis primary"
                );
                *self.current.write().unwrap_or_else(PoisonError::into_inner) =
                    (primary, connections);
            }
            Err(err) => {
                tracing::warn!(error = %err, "session store: cannot connect to the new primary");
            }
        }
    }
}

/// The primary the Sentinels name for `service`, checked to be one.
async fn ask(sentinels: &[String], service: &str) -> Result<Client, StoreError> {
    let mut sentinel = SentinelClient::build(
        sentinels.to_vec(),
        service.to_owned(),
        None,
        SentinelServerType::Master,
    )
    .map_err(|err| StoreError::new(StoreErrorKind::Backend, err))?;
    sentinel.async_get_client().await.map_err(store_error)
}
