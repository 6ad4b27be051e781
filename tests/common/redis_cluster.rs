//! The Redis Cluster `scripts/test` starts, shared by the tests that need
//! no node stopped; and a Redis Cluster of a test's own: `redis-server --cluster-enabled yes`
//! nodes on free loopback ports (each in its own temporary directory,
//! with a cluster bus port of its own), joined by
//! `redis-cli --cluster create`, whose primaries and replicas a test can
//! stop by PID.

use std::net::TcpListener;
use std::process::Command;
use std::time::Duration;

use tower_session_lifetime::clock::{Clock, SystemClock};
use tower_session_lifetime::id::SessionKey;
use tower_session_lifetime::record::SessionRecord;
use tower_session_lifetime::store::conformance::{fresh_key, live_record};
use tower_session_lifetime::store::{LifetimeStore, RenewOutcome};
use tower_session_lifetime::RedisStore;

use super::redis_server::{until, OwnServer};

/// The nodes of the cluster `scripts/test` started.
pub fn cluster_nodes() -> Vec<String> {
    let nodes = std::env::var("TSL_REDIS_CLUSTER_NODES").unwrap_or_else(|_| {
        panic!(
            "TSL_REDIS_CLUSTER_NODES is not set: run the tests with scripts/test, which \
             starts a Redis Cluster of three primaries on free loopback ports (and \
             installs redis-server from Debian's packages when missing)"
        )
    });
    nodes.split(',').map(str::to_owned).collect()
}

/// A store on the cluster `scripts/test` started.
pub async fn cluster_store() -> RedisStore {
    let nodes = cluster_nodes();
    let nodes: Vec<&str> = nodes.iter().map(String::as_str).collect();
    RedisStore::open_cluster(&nodes)
        .await
        .expect("the cluster answers")
}

/// A live record of `subject`.
pub fn of(subject: &str) -> SessionRecord {
    let mut record = live_record();
    record.subject = Some(subject.into());
    record
}

/// Renews `record`, stored under `old`, to `new` with a 30 s grace, in a
/// task of its own, to race whatever the test does meanwhile.
pub fn spawn_renewal(
    store: &std::sync::Arc<RedisStore>,
    old: SessionKey,
    new: SessionKey,
    record: &SessionRecord,
) -> tokio::task::JoinHandle<RenewOutcome> {
    let (store, record) = (std::sync::Arc::clone(store), record.clone());
    tokio::spawn(async move {
        let grace = SystemClock.now().saturating_add(Duration::from_secs(30));
        store
            .renew(&old, record.version, &new, &record, grace)
            .await
            .unwrap()
    })
}

/// `name` made unique, for a subject no other test uses.
pub fn unique(name: &str) -> String {
    format!("{name}-{}", fresh_key().to_hex())
}

pub struct OwnCluster {
    /// Every node, the primaries first as `redis-cli` was given them.
    pub nodes: Vec<OwnServer>,
    pub primaries: usize,
}

fn free_port() -> String {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
        .to_string()
}

/// `redis-cli`, beside the `redis-server` that `scripts/test` found.
fn redis_cli() -> String {
    std::env::var("TSL_REDIS_SERVER")
        .ok()
        .and_then(|server| {
            let cli = std::path::Path::new(&server).with_file_name("redis-cli");
            cli.exists().then(|| cli.to_string_lossy().into_owned())
        })
        .unwrap_or_else(|| "redis-cli".to_owned())
}

impl OwnCluster {
    /// `primaries` primaries with `replicas` replicas each; a node is
    /// called failed after 1 s without an answer, and the others keep
    /// serving their slots meanwhile.
    pub async fn start(primaries: usize, replicas: usize) -> Self {
        let nodes: Vec<OwnServer> = (0..primaries * (1 + replicas))
            .map(|_| {
                OwnServer::start_with(&[
                    "--cluster-enabled",
                    "yes",
                    "--cluster-config-file",
                    "nodes.conf",
                    "--cluster-port",
                    &free_port(),
                    "--cluster-node-timeout",
                    "1000",
                    // The primaries that answer keep serving their slots.
                    "--cluster-require-full-coverage",
                    "no",
                ])
            })
            .collect();
        let status = Command::new(redis_cli())
            .arg("--cluster")
            .arg("create")
            .args(
                nodes
                    .iter()
                    .map(|node| format!("127.0.0.1:{}", node.port())),
            )
            .args(["--cluster-replicas", &replicas.to_string(), "--cluster-yes"])
            .stdout(std::process::Stdio::null())
            .status()
            .expect("redis-cli runs (scripts/test installs it)");
        assert!(status.success(), "redis-cli --cluster create failed");
        let cluster = OwnCluster { nodes, primaries };
        cluster.whole_again().await;
        if replicas > 0 {
            for (index, primary) in cluster.primaries().iter().enumerate() {
                cluster.acknowledges(index, primary, replicas).await;
            }
        }
        cluster
    }

    /// Waits until every node sees the cluster up (after a node that was
    /// called failed answers again).
    pub async fn whole_again(&self) {
        for node in &self.nodes {
            until("every node sees the cluster up", async || {
                cluster_info(node).await.contains("cluster_state:ok")
            })
            .await;
        }
    }

    /// Waits until `primary`'s `replicas` acknowledge its writes (`WAIT`
    /// after a write of a key it owns): a replica may sync twice while the
    /// cluster forms.
    async fn acknowledges(&self, index: usize, primary: &OwnServer, replicas: usize) {
        let mut probe = 0;
        let key = loop {
            let key = format!("probe-{probe}");
            if self.owner_of(&key).await == index {
                break key;
            }
            probe += 1;
        };
        until(
            "the replicas acknowledge their primary's writes",
            async || {
                let mut connection = primary.connection().await;
                let written: redis::RedisResult<()> = redis::cmd("SET")
                    .arg(&key)
                    .arg(1)
                    .query_async(&mut connection)
                    .await;
                let acknowledged: redis::RedisResult<usize> = redis::cmd("WAIT")
                    .arg(replicas)
                    .arg(100)
                    .query_async(&mut connection)
                    .await;
                written.is_ok() && acknowledged.is_ok_and(|count| count == replicas)
            },
        )
        .await;
        let () = redis::cmd("DEL")
            .arg(&key)
            .query_async(&mut primary.connection().await)
            .await
            .unwrap();
    }

    pub fn primaries(&self) -> &[OwnServer] {
        &self.nodes[..self.primaries]
    }

    /// The primaries' URLs, as seeds for `RedisStore::open_cluster`.
    pub fn urls(&self) -> Vec<String> {
        self.primaries().iter().map(OwnServer::url).collect()
    }

    /// The node (an index into `nodes`) that serves `key` now: only the
    /// primary that owns its slot answers (the others redirect).
    pub async fn owner_of(&self, key: &str) -> usize {
        for (index, node) in self.nodes.iter().enumerate() {
            let Ok(client) = redis::Client::open(node.url().as_str()) else {
                continue;
            };
            let Ok(Ok(mut connection)) = tokio::time::timeout(
                Duration::from_secs(1),
                client.get_multiplexed_async_connection(),
            )
            .await
            else {
                continue;
            };
            let answer: redis::RedisResult<i64> = redis::cmd("EXISTS")
                .arg(key)
                .query_async(&mut connection)
                .await;
            if answer.is_ok() {
                return index;
            }
        }
        panic!("no node serves {key}");
    }
}

/// `CLUSTER INFO` of `node`, empty while it does not answer.
pub async fn cluster_info(node: &OwnServer) -> String {
    let Ok(client) = redis::Client::open(node.url().as_str()) else {
        return String::new();
    };
    let Ok(Ok(mut connection)) = tokio::time::timeout(
        Duration::from_secs(1),
        client.get_multiplexed_async_connection(),
    )
    .await
    else {
        return String::new();
    };
    redis::cmd("CLUSTER")
        .arg("INFO")
        .query_async(&mut connection)
        .await
        .unwrap_or_default()
}

/// The calls each command had on `node` since its last `CONFIG RESETSTAT`,
/// from `INFO commandstats`.
pub async fn command_calls(node: &OwnServer) -> Vec<(String, u64)> {
    let info: String = redis::cmd("INFO")
        .arg("commandstats")
        .query_async(&mut node.connection().await)
        .await
        .unwrap();
    info.lines()
        .filter_map(|line| {
            let (name, stats) = line.strip_prefix("cmdstat_")?.split_once(':')?;
            let calls = stats.strip_prefix("calls=")?.split(',').next()?;
            Some((name.to_owned(), calls.parse().ok()?))
        })
        .collect()
}
