//! A `redis-server` of a test's own, on a free loopback port, in a
//! temporary directory: started from `TSL_REDIS_SERVER` (which
//! `scripts/test` sets), stopped, paused and resumed by its PID.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

pub struct OwnServer {
    port: u16,
    dir: std::path::PathBuf,
    extra: Vec<String>,
    /// A Sentinel's configuration file (Sentinel rewrites it as it learns).
    sentinel_config: Option<std::path::PathBuf>,
    process: Option<Child>,
}

impl OwnServer {
    /// A plain server: no persistence.
    pub fn start() -> Self {
        OwnServer::start_with(&[])
    }

    /// A server with `extra` arguments (for example `--replicaof`).
    pub fn start_with(extra: &[&str]) -> Self {
        let mut server = OwnServer::new(extra);
        server.restart();
        server
    }

    /// A Sentinel watching the primary on `primary_port` as `service`,
    /// with a quorum of `quorum`, quick to call it down (500 ms).
    pub fn start_sentinel(service: &str, primary_port: u16, quorum: u32) -> Self {
        let mut server = OwnServer::new(&[]);
        let config = server.dir.join("sentinel.conf");
        std::fs::write(
            &config,
            format!(
                "sentinel monitor {service} 127.0.0.1 {primary_port} {quorum}\n\
                 sentinel down-after-milliseconds {service} 500\n\
                 sentinel failover-timeout {service} 5000\n"
            ),
        )
        .unwrap();
        server.sentinel_config = Some(config);
        server.restart();
        server
    }

    fn new(extra: &[&str]) -> Self {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let dir = std::env::temp_dir().join(format!("tsl-redis-{port}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        OwnServer {
            port,
            dir,
            extra: extra.iter().map(|arg| (*arg).to_owned()).collect(),
            sentinel_config: None,
            process: None,
        }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    pub fn restart(&mut self) {
        let binary = std::env::var("TSL_REDIS_SERVER").unwrap_or_else(|_| "redis-server".into());
        let mut command = Command::new(binary);
        match &self.sentinel_config {
            // The configuration file comes first; Sentinel keeps no data.
            Some(config) => command.arg(config).arg("--sentinel"),
            None => command.args(["--save", "", "--appendonly", "no"]),
        };
        let process = command
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .arg("--dir")
            .arg(&self.dir)
            .args(&self.extra)
            .stdout(Stdio::null())
            .spawn()
            .expect("redis-server runs (scripts/test installs it)");
        self.process = Some(process);
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("redis-server did not start on port {}", self.port);
    }

    /// Kills the server (`SIGKILL`): what it had not written anywhere is lost.
    pub fn stop(&mut self) {
        if let Some(mut process) = self.process.take() {
            let _ = process.kill();
            let _ = process.wait();
        }
    }

    /// Sends `signal` (`STOP`, `CONT`) to the server's process.
    pub fn signal(&self, signal: &str) {
        let process = self.process.as_ref().expect("the server runs");
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(process.id().to_string())
            .status()
            .expect("kill runs");
        assert!(status.success(), "kill -{signal} failed");
    }
}

impl Drop for OwnServer {
    fn drop(&mut self) {
        // SIGKILL ends a paused (`STOP`ped) server too.
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A bound for what must happen while servers start, sync and fail over,
/// only reached when it does not (a loaded machine included).
pub const PATIENCE: Duration = Duration::from_secs(60);

/// Waits until `done` holds, checking every 100 ms, for at most
/// [`PATIENCE`].
pub async fn until(what: &str, mut done: impl AsyncFnMut() -> bool) {
    let start = std::time::Instant::now();
    while !done().await {
        assert!(start.elapsed() < PATIENCE, "gave up waiting: {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

impl OwnServer {
    /// A connection to this server.
    pub async fn connection(&self) -> redis::aio::MultiplexedConnection {
        redis::Client::open(self.url().as_str())
            .unwrap()
            .get_multiplexed_async_connection()
            .await
            .unwrap()
    }

    /// `INFO replication`, or `None` while the server does not answer.
    pub async fn replication_info(&self) -> Option<String> {
        let mut connection = redis::Client::open(self.url().as_str())
            .ok()?
            .get_multiplexed_async_connection()
            .await
            .ok()?;
        redis::cmd("INFO")
            .arg("replication")
            .query_async(&mut connection)
            .await
            .ok()
    }

    /// Waits until `replicas` replicas have every write made here so far.
    pub async fn replicated(&self, replicas: u32) {
        let acknowledged: u32 = redis::cmd("WAIT")
            .arg(replicas)
            .arg(10_000)
            .query_async(&mut self.connection().await)
            .await
            .unwrap();
        assert_eq!(acknowledged, replicas, "the replicas are in sync");
    }

    /// Cuts this replica off its primary (`REPLICAOF NO ONE`): as a
    /// partition would, or as a promotion does.
    pub async fn detach(&self) {
        let () = redis::cmd("REPLICAOF")
            .arg("NO")
            .arg("ONE")
            .query_async(&mut self.connection().await)
            .await
            .unwrap();
    }

    /// What this Sentinel knows of `service`: `SENTINEL MASTER`'s fields,
    /// none while it does not answer.
    pub async fn master_fields(&self, service: &str) -> Vec<(String, String)> {
        let Ok(fields) = redis::cmd("SENTINEL")
            .arg("MASTER")
            .arg(service)
            .query_async::<Vec<String>>(&mut self.connection().await)
            .await
        else {
            return Vec::new();
        };
        fields
            .chunks(2)
            .map(|pair| (pair[0].clone(), pair.get(1).cloned().unwrap_or_default()))
            .collect()
    }
}

/// The value of `name` among `fields` (`SENTINEL MASTER`'s), or "".
pub fn field<'a>(fields: &'a [(String, String)], name: &str) -> &'a str {
    fields
        .iter()
        .find(|(key, _)| key == name)
        .map_or("", |(_, value)| value.as_str())
}

/// A primary and its replica, the replica linked to it.
pub async fn primary_and_replica() -> (OwnServer, OwnServer) {
    let primary = OwnServer::start();
    let port = primary.port().to_string();
    let replica = OwnServer::start_with(&["--replicaof", "127.0.0.1", &port]);
    until("the replica syncs with its primary", async || {
        replica
            .replication_info()
            .await
            .is_some_and(|info| info.contains("master_link_status:up"))
    })
    .await;
    (primary, replica)
}

/// A primary, its replica and three Sentinels watching it as `service`
/// (quorum 2), each Sentinel seeing the replica and the other two: a
/// failover needs a majority of them to agree.
pub struct SentinelSetup {
    pub service: &'static str,
    pub primary: OwnServer,
    pub replica: OwnServer,
    pub sentinels: Vec<OwnServer>,
}

impl SentinelSetup {
    pub async fn start(service: &'static str) -> Self {
        let (primary, replica) = primary_and_replica().await;
        let sentinels: Vec<OwnServer> = (0..3)
            .map(|_| OwnServer::start_sentinel(service, primary.port(), 2))
            .collect();
        for sentinel in &sentinels {
            until(
                "the Sentinels know each other and the replica",
                async || {
                    let fields = sentinel.master_fields(service).await;
                    field(&fields, "num-slaves") == "1"
                        && field(&fields, "num-other-sentinels") == "2"
                },
            )
            .await;
        }
        SentinelSetup {
            service,
            primary,
            replica,
            sentinels,
        }
    }

    /// The Sentinels' URLs, for `RedisStore::open_sentinel`.
    pub fn urls(&self) -> Vec<String> {
        self.sentinels.iter().map(OwnServer::url).collect()
    }

    /// Waits until every Sentinel names the server on `port` the primary.
    pub async fn named(&self, port: u16) {
        for sentinel in &self.sentinels {
            until("the Sentinels name the new primary", async || {
                field(&sentinel.master_fields(self.service).await, "port") == port.to_string()
            })
            .await;
        }
    }
}
