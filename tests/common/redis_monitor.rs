//! `MONITOR` on Redis nodes: the commands clients send, to count a
//! store's round trips.

use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

/// `MONITOR` on every node; collects the lines that clients (not scripts)
/// sent and that mention `needle`.
pub struct Monitors {
    lines: Arc<std::sync::Mutex<Vec<String>>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Monitors {
    /// Starts watching the nodes at `urls` (`redis://host:port`).
    pub async fn start(urls: &[String], needle: String) -> Self {
        let lines = Arc::new(std::sync::Mutex::new(Vec::new()));
        let mut tasks = Vec::new();
        for url in urls {
            let address = url
                .trim_start_matches("redis://")
                .trim_end_matches('/')
                .to_owned();
            let mut stream = tokio::net::TcpStream::connect(&address).await.unwrap();
            stream.write_all(b"MONITOR\r\n").await.unwrap();
            let mut reader = BufReader::new(stream);
            let mut first = String::new();
            reader.read_line(&mut first).await.unwrap();
            assert_eq!(first.trim(), "+OK");
            let (lines, needle) = (Arc::clone(&lines), needle.clone());
            tasks.push(tokio::spawn(async move {
                let mut line = String::new();
                loop {
                    line.clear();
                    if reader.read_line(&mut line).await.unwrap_or(0) == 0 {
                        return;
                    }
                    if line.contains(&needle) && !line.contains(" lua]") {
                        lines
                            .lock()
                            .unwrap()
                            .push(format!("{address}: {}", line.trim()));
                    }
                }
            }));
        }
        Monitors { lines, tasks }
    }

    /// The lines collected since the last call, once `MONITOR` has had
    /// time to show the latest command.
    pub async fn take(&self) -> Vec<String> {
        tokio::time::sleep(Duration::from_millis(300)).await;
        std::mem::take(&mut *self.lines.lock().unwrap())
    }
}

impl Drop for Monitors {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}
