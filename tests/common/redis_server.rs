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
