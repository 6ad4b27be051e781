//! A loopback TCP proxy in front of the store that the fault injector can
//! cut: every open connection closed at once, and, for a partition, new
//! ones refused (accepted and closed at once) for a while. The store behind
//! it keeps running; only this node's client loses it.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub struct Proxy {
    address: SocketAddr,
    /// Bumped to cut every connection open at that moment.
    generation: watch::Sender<u64>,
    refusing: Arc<AtomicBool>,
    task: JoinHandle<()>,
}

impl Proxy {
    /// A proxy on a free loopback port, forwarding to `target`.
    pub async fn start(target: SocketAddr) -> std::io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let address = listener.local_addr()?;
        let (generation, _) = watch::channel(0u64);
        let refusing = Arc::new(AtomicBool::new(false));
        let task = {
            let generation = generation.clone();
            let refusing = Arc::clone(&refusing);
            tokio::spawn(async move {
                loop {
                    let Ok((mut client, _)) = listener.accept().await else {
                        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                        continue;
                    };
                    if refusing.load(Ordering::SeqCst) {
                        drop(client);
                        continue;
                    }
                    let mut cut = generation.subscribe();
                    tokio::spawn(async move {
                        let Ok(mut server) = TcpStream::connect(target).await else {
                            return;
                        };
                        let _ = client.set_nodelay(true);
                        let _ = server.set_nodelay(true);
                        tokio::select! {
                            _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                            _ = cut.changed() => {}
                        }
                        // Both streams dropped here: each side sees its
                        // connection closed.
                    });
                }
            })
        };
        Ok(Proxy {
            address,
            generation,
            refusing,
            task,
        })
    }

    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// Closes every connection open now.
    pub fn cut(&self) {
        self.generation.send_modify(|generation| *generation += 1);
    }

    /// Refuses new connections (`true`) or forwards them again (`false`).
    pub fn refuse(&self, on: bool) {
        self.refusing.store(on, Ordering::SeqCst);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
        self.cut();
    }
}
