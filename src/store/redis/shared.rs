//! [`Shared`]: the connection every operation of a store shares, to one
//! server or (feature `redis-cluster`) to a cluster, which sends each
//! command to the primary that owns its key's slot.

use redis::aio::{ConnectionLike, ConnectionManager};
#[cfg(feature = "redis-cluster")]
use redis::cluster_async::ClusterConnection;
use redis::{Cmd, Pipeline, RedisFuture, Value};

/// A connection to one server, or to a cluster.
#[derive(Clone)]
pub(super) enum Shared {
    /// One server: made at its first use, re-made after a failure.
    Server(ConnectionManager),
    /// A cluster: a connection to each primary, found again after a
    /// failover or a slot's move.
    #[cfg(feature = "redis-cluster")]
    Cluster(ClusterConnection),
}

impl ConnectionLike for Shared {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Shared::Server(connection) => connection.req_packed_command(cmd),
            #[cfg(feature = "redis-cluster")]
            Shared::Cluster(connection) => connection.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Shared::Server(connection) => connection.req_packed_commands(pipeline, offset, count),
            #[cfg(feature = "redis-cluster")]
            Shared::Cluster(connection) => connection.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Shared::Server(connection) => connection.get_db(),
            #[cfg(feature = "redis-cluster")]
            Shared::Cluster(connection) => connection.get_db(),
        }
    }
}
