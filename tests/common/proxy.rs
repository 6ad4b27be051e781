//! A loopback TCP proxy in front of a real server, that a test can cut and
//! restore: the server behind it keeps its data, the client sees the
//! connection refused.

use std::net::SocketAddr;

use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

pub struct Proxy {
    address: SocketAddr,
    target: SocketAddr,
    task: Option<JoinHandle<()>>,
}

impl Proxy {
    /// A proxy on a free loopback port, forwarding to `target`.
    pub async fn start(target: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let mut proxy = Proxy {
            address,
            target,
            task: None,
        };
        proxy.serve(listener);
        proxy
    }

    pub fn address(&self) -> SocketAddr {
        self.address
    }

    fn serve(&mut self, listener: TcpListener) {
        let target = self.target;
        self.task = Some(tokio::spawn(async move {
            let mut connections = tokio::task::JoinSet::new();
            loop {
                let Ok((mut client, _)) = listener.accept().await else {
                    continue;
                };
                connections.spawn(async move {
                    if let Ok(mut server) = TcpStream::connect(target).await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                    }
                });
            }
            // Dropping the task drops the JoinSet, which aborts every
            // connection: the client sees them closed.
        }));
    }

    /// Closes every connection and stops listening: connecting is refused.
    pub async fn cut(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
            let _ = task.await;
        }
    }

    /// Listens again on the same port.
    pub fn restore(&mut self) {
        let listener = std::net::TcpListener::bind(self.address).unwrap();
        listener.set_nonblocking(true).unwrap();
        self.serve(TcpListener::from_std(listener).unwrap());
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

#[async_trait::async_trait]
impl super::shared_store::Outage for Proxy {
    async fn begin(&mut self) {
        self.cut().await;
    }

    async fn end(&mut self) {
        self.restore();
    }

    fn keeps_data(&self) -> bool {
        true
    }
}
