//! The store's connections to one Redis server.

use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::Client;

use super::shared::Shared;
use crate::store::{StoreError, StoreErrorKind};

/// How long a connection may take to open, and a reply to come.
pub(super) const TIMEOUT: Duration = Duration::from_secs(2);

/// The connections to a primary: one for every operation, made at its
/// first use and re-made after a failure; and the client that opens a
/// connection of its own for each write that waits for replicas (`WAIT`
/// blocks the connection it is sent on, so two logouts sharing one would
/// wait one after the other).
#[derive(Clone)]
pub(super) struct Connections {
    pub(super) shared: Shared,
    pub(super) acknowledged: Client,
}

impl Connections {
    /// Connections to `client`'s server.
    pub(super) fn to(client: &Client) -> Result<Self, StoreError> {
        Ok(Connections {
            shared: Shared::Server(connect(client, TIMEOUT)?),
            acknowledged: client.clone(),
        })
    }
}

/// A connection of its own to `client`'s server, whose replies may take
/// `wait` longer than others'.
pub(super) async fn connect_alone(
    client: &Client,
    wait: Duration,
) -> redis::RedisResult<redis::aio::MultiplexedConnection> {
    let config = redis::AsyncConnectionConfig::new()
        .set_connection_timeout(Some(TIMEOUT))
        .set_response_timeout(Some(TIMEOUT.saturating_add(wait)));
    client
        .get_multiplexed_async_connection_with_config(&config)
        .await
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

/// A connection to the cluster that the nodes at `nodes` belong to,
/// made now (a cluster's connection learns its slots when it connects),
/// and the first node's settings (credentials, TLS), for a connection of
/// its own to any node.
#[cfg(feature = "redis-cluster")]
pub(super) async fn cluster(
    nodes: &[&str],
) -> Result<
    (
        redis::cluster_async::ClusterConnection,
        redis::ConnectionInfo,
    ),
    StoreError,
> {
    use redis::IntoConnectionInfo;
    let Some(first) = nodes.first() else {
        return Err(StoreError::new(
            StoreErrorKind::Backend,
            "a cluster store needs at least one node",
        ));
    };
    let seed = first
        .into_connection_info()
        .map_err(|err| StoreError::new(StoreErrorKind::Backend, err))?;
    let client = redis::cluster::ClusterClient::builder(nodes.iter().copied())
        .connection_timeout(TIMEOUT)
        .response_timeout(TIMEOUT)
        .retries(1)
        .build()
        .map_err(|err| StoreError::new(StoreErrorKind::Backend, err))?;
    let connection = client
        .get_async_connection()
        .await
        .map_err(super::error::store_error)?;
    Ok((connection, seed))
}
