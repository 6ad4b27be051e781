//! The store's connections to one Redis server.

use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::Client;

use crate::store::{StoreError, StoreErrorKind};

/// How long a connection may take to open, and a reply to come.
const TIMEOUT: Duration = Duration::from_secs(2);

/// The connections to a primary: one for every operation, and one of its
/// own for the writes that wait for replicas (`WAIT` blocks the connection
/// it is sent on). Each is made at its first use and re-made after a
/// failure.
#[derive(Clone)]
pub(super) struct Connections {
    pub(super) shared: ConnectionManager,
    pub(super) acknowledged: ConnectionManager,
}

impl Connections {
    /// Connections to `client`'s server; a reply on the acknowledged one may
    /// take `wait` longer.
    pub(super) fn to(client: &Client, wait: Duration) -> Result<Self, StoreError> {
        Ok(Connections {
            shared: connect(client, TIMEOUT)?,
            acknowledged: connect(client, TIMEOUT.saturating_add(wait))?,
        })
    }
}

/// A client for the server at `url`; only a malformed URL fails.
pub(super) fn client(url: &str) -> Result<Client, StoreError> {
    Client::open(url).map_err(|err| StoreError::new(StoreErrorKind::Backend, err))
}

fn connect(client: &Client, response_timeout: Duration) -> Result<ConnectionManager, StoreError> {
    let config = ConnectionManagerConfig::new()
        .set_connection_timeout(Some(TIMEOUT))
        .set_response_timeout(Some(response_timeout))
        .set_number_of_retries(1);
    ConnectionManager::new_lazy_with_config(client.clone(), config)
        .map_err(|err| StoreError::new(StoreErrorKind::Backend, err))
}
