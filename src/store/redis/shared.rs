//! [`Shared`]: the connection every operation of a store shares, to one
//! server or (feature `redis-cluster`) to a cluster, which sends each
//! command to the primary that owns its key's slot.

use redis::aio::{ConnectionLike, ConnectionManager};
#[cfg(feature = "redis-cluster")]
use redis::cluster_async::ClusterConnection;
use redis::{
    Cmd, FromRedisValue, Pipeline, RedisFuture, RedisResult, Script, ScriptInvocation, Value,
};

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

impl Shared {
    /// Runs `invocation` of `script`. A server that does not have the
    /// script yet answers `NOSCRIPT`, and it is loaded there: on a cluster,
    /// on the primary that runs it only (the `redis` crate would send
    /// `SCRIPT LOAD` to every node, and fail while any one is down).
    pub(super) async fn run<T: FromRedisValue>(
        &mut self,
        script: &Script,
        invocation: &ScriptInvocation<'_>,
    ) -> RedisResult<T> {
        match self {
            Shared::Server(connection) => {
                // One server: the `redis` crate loads `script` there itself.
                let _ = script;
                invocation.invoke_async(connection).await
            }
            #[cfg(feature = "redis-cluster")]
            Shared::Cluster(connection) => {
                // In a pipeline, `SCRIPT LOAD` goes where the script's key
                // sends it.
                let ran = redis::pipe()
                    .invoke_script(invocation)
                    .query_async::<(T,)>(connection)
                    .await;
                match ran {
                    Err(err)
                        if err.kind()
                            == redis::ErrorKind::Server(redis::ServerErrorKind::NoScript) =>
                    {
                        let (value,) = redis::pipe()
                            .load_script(script)
                            .ignore()
                            .invoke_script(invocation)
                            .query_async::<(T,)>(connection)
                            .await?;
                        Ok(value)
                    }
                    ran => ran.map(|(value,)| value),
                }
            }
        }
    }
}

/// Where the primary that owns `redis_key`'s slot listens, as it
/// announces itself (`CLUSTER NODES`, asked of that primary).
#[cfg(feature = "redis-cluster")]
pub(super) async fn primary_of(
    connection: &mut ClusterConnection,
    redis_key: &str,
) -> RedisResult<(String, u16)> {
    use redis::cluster_routing::{Route, RoutingInfo, SingleNodeRoutingInfo, SlotAddr};
    let route = Route::with_key(redis_key, SlotAddr::Master);
    let nodes = connection
        .route_command(
            redis::cmd("CLUSTER").arg("NODES").take(),
            RoutingInfo::SingleNode(SingleNodeRoutingInfo::SpecificNode(route)),
        )
        .await?;
    let nodes: String = redis::from_redis_value(nodes)?;
    // `<id> <ip>:<port>@<bus port>[,<hostname>] myself,master ...`
    nodes
        .lines()
        .find(|line| {
            line.split(' ')
                .nth(2)
                .is_some_and(|flags| flags.contains("myself"))
        })
        .and_then(|line| line.split(' ').nth(1))
        .and_then(|address| address.split(['@', ',']).next())
        .and_then(|address| address.rsplit_once(':'))
        .and_then(|(host, port)| Some((host.to_owned(), port.parse().ok()?)))
        .ok_or_else(|| {
            (
                redis::ErrorKind::Parse,
                "CLUSTER NODES names no address for the node itself",
            )
                .into()
        })
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
