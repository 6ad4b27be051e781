//! Counting round trips: a loopback TCP proxy that counts how often the
//! client speaks after the server did (each such turn is one round trip,
//! whatever the protocol), and Redis' own command statistics.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// A proxy in front of `target` that counts round trips.
pub struct CountingProxy {
    address: SocketAddr,
    round_trips: Arc<AtomicU64>,
}

impl CountingProxy {
    pub async fn start(target: SocketAddr) -> CountingProxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("a port");
        let address = listener.local_addr().expect("an address");
        let round_trips = Arc::new(AtomicU64::new(0));
        let counter = Arc::clone(&round_trips);
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let server = TcpStream::connect(target).await.expect("the server is up");
                tokio::spawn(relay(client, server, Arc::clone(&counter)));
            }
        });
        CountingProxy {
            address,
            round_trips,
        }
    }

    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// The round trips since the last call.
    pub fn take(&self) -> u64 {
        self.round_trips.swap(0, Ordering::Relaxed)
    }
}

async fn relay(client: TcpStream, server: TcpStream, round_trips: Arc<AtomicU64>) {
    let (mut client_read, mut client_write) = client.into_split();
    let (mut server_read, mut server_write) = server.into_split();
    // Whether the server spoke last: the client's next bytes start a round
    // trip. A connection starts with the client's turn.
    let server_spoke = Arc::new(AtomicBool::new(true));
    let spoke = Arc::clone(&server_spoke);
    let upstream = async move {
        let mut buffer = vec![0; 64 * 1024];
        loop {
            let read = match client_read.read(&mut buffer).await {
                Ok(0) | Err(_) => break,
                Ok(read) => read,
            };
            if spoke.swap(false, Ordering::AcqRel) {
                round_trips.fetch_add(1, Ordering::Relaxed);
            }
            if server_write.write_all(&buffer[..read]).await.is_err() {
                break;
            }
        }
    };
    let downstream = async move {
        let mut buffer = vec![0; 64 * 1024];
        loop {
            let read = match server_read.read(&mut buffer).await {
                Ok(0) | Err(_) => break,
                Ok(read) => read,
            };
            server_spoke.store(true, Ordering::Release);
            if client_write.write_all(&buffer[..read]).await.is_err() {
                break;
            }
        }
    };
    tokio::join!(upstream, downstream);
}

/// `host:port` of a `redis://` or `postgres://user@host:port/db` URL.
pub fn address_of(url: &str) -> SocketAddr {
    let rest = url.split("://").nth(1).expect("a URL with a scheme");
    let rest = rest.rsplit('@').next().expect("an authority");
    let authority = rest.split('/').next().expect("an authority");
    authority.parse().expect("an IP address and a port")
}

/// `url` with its `host:port` replaced by `address`.
pub fn through(url: &str, address: SocketAddr) -> String {
    url.replace(&address_of(url).to_string(), &address.to_string())
}

/// Redis' command statistics: calls per command, after `CONFIG RESETSTAT`
/// was last sent, without the `INFO` and `CONFIG` commands of the count.
pub struct RedisCommands {
    connection: redis::aio::MultiplexedConnection,
}

impl RedisCommands {
    pub async fn connect(url: &str) -> RedisCommands {
        let client = redis::Client::open(url).expect("a Redis URL");
        RedisCommands {
            connection: client
                .get_multiplexed_async_connection()
                .await
                .expect("Redis is up"),
        }
    }

    pub async fn reset(&mut self) {
        let _: () = redis::cmd("CONFIG")
            .arg("RESETSTAT")
            .query_async(&mut self.connection)
            .await
            .expect("CONFIG RESETSTAT");
    }

    /// Calls per command since the last reset.
    pub async fn calls(&mut self) -> BTreeMap<String, u64> {
        let info: String = redis::cmd("INFO")
            .arg("commandstats")
            .query_async(&mut self.connection)
            .await
            .expect("INFO commandstats");
        info.lines()
            .filter_map(|line| {
                let (name, stats) = line.strip_prefix("cmdstat_")?.split_once(':')?;
                let calls = stats.split(',').find_map(|s| s.strip_prefix("calls="))?;
                Some((name.to_owned(), calls.parse().ok()?))
            })
            .filter(|(name, _)| name != "info" && !name.starts_with("config"))
            .collect()
    }
}

/// PostgreSQL's own count of one database's statements (each autocommit
/// statement is a transaction) and row writes, from `pg_stat_database`.
pub struct PostgresStatements {
    pool: sqlx::PgPool,
}

/// Statements and row writes (inserted, updated, deleted).
#[derive(Clone, Copy, Debug, Default)]
pub struct StatementCount {
    pub statements: i64,
    pub row_writes: i64,
}

impl PostgresStatements {
    pub async fn connect(url: &str) -> PostgresStatements {
        PostgresStatements {
            pool: sqlx::postgres::PgPoolOptions::new()
                .max_connections(1)
                .connect(url)
                .await
                .expect("PostgreSQL is up"),
        }
    }

    /// The counters now. Backends report their statistics when idle for
    /// ten seconds at the latest, so this waits eleven first.
    pub async fn now(&self) -> StatementCount {
        tokio::time::sleep(std::time::Duration::from_secs(11)).await;
        let (statements, row_writes): (i64, i64) = sqlx::query_as(
            "SELECT xact_commit + xact_rollback, tup_inserted + tup_updated + tup_deleted \
             FROM pg_stat_database WHERE datname = current_database()",
        )
        .fetch_one(&self.pool)
        .await
        .expect("pg_stat_database");
        // This query and the snapshot's own transaction are counted too.
        StatementCount {
            statements,
            row_writes,
        }
    }
}
