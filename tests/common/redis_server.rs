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
    process: Option<Child>,
}

impl OwnServer {
    /// A plain server: no persistence.
    pub fn start() -> Self {
        OwnServer::start_with(&[])
    }

    /// A server with `extra` arguments (for example `--replicaof`).
    pub fn start_with(extra: &[&str]) -> Self {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let dir = std::env::temp_dir().join(format!("tsl-redis-{port}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut server = OwnServer {
            port,
            dir,
            extra: extra.iter().map(|arg| (*arg).to_owned()).collect(),
            process: None,
        };
        server.restart();
        server
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    pub fn restart(&mut self) {
        let binary = std::env::var("TSL_REDIS_SERVER").unwrap_or_else(|_| "redis-server".into());
        let process = Command::new(binary)
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
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
