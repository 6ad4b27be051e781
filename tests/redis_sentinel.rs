//! `RedisStore::open_sentinel` against a real Sentinel setup of this
//! test's own (loopback, free ports, `TSL_REDIS_SERVER`): a primary, its
//! replica and three Sentinels. The primary is killed (by its PID) while
//! requests flow: requests for its sessions get `503`, never a wrong
//! admission; the Sentinels promote the replica; the store follows it
//! without a restart; and a session logged out with a replica
//! acknowledgement before the kill stays logged out after it.
#![cfg(all(feature = "redis-sentinel", feature = "axum"))]

mod common;

use std::time::{Duration, Instant};

use http::StatusCode;

use common::redis_server::OwnServer;
use common::shared_store::{app, clock_now, log_in, send};
use tower_session_lifetime::RedisStore;

const SERVICE: &str = "tsl-sessions";
/// A bound for what must happen, only reached when it does not (a loaded
/// machine included): Sentinel calls a primary down after 500 ms.
const PATIENCE: Duration = Duration::from_secs(60);

async fn connection(server: &OwnServer) -> redis::aio::MultiplexedConnection {
    redis::Client::open(server.url().as_str())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap()
}

/// What `sentinel` knows of the service: `SENTINEL MASTER`'s fields.
async fn master_fields(sentinel: &OwnServer) -> Vec<(String, String)> {
    let fields: Vec<String> = redis::cmd("SENTINEL")
        .arg("MASTER")
        .arg(SERVICE)
        .query_async(&mut connection(sentinel).await)
        .await
        .unwrap();
    fields
        .chunks(2)
        .map(|pair| (pair[0].clone(), pair.get(1).cloned().unwrap_or_default()))
        .collect()
}

fn field<'a>(fields: &'a [(String, String)], name: &str) -> &'a str {
    fields
        .iter()
        .find(|(key, _)| key == name)
        .map_or("", |(_, value)| value.as_str())
}

/// Waits until `done` holds, checking every 100 ms, for at most
/// [`PATIENCE`].
async fn until(what: &str, mut done: impl AsyncFnMut() -> bool) {
    let start = Instant::now();
    while !done().await {
        assert!(start.elapsed() < PATIENCE, "gave up waiting: {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failover_gives_503_then_the_store_follows_the_new_primary() {
    let mut primary = OwnServer::start();
    let port = primary.port().to_string();
    let replica = OwnServer::start_with(&["--replicaof", "127.0.0.1", &port]);
    let sentinels: Vec<OwnServer> = (0..3)
        .map(|_| OwnServer::start_sentinel(SERVICE, primary.port(), 2))
        .collect();
    // Every Sentinel sees the replica and the other two: a failover needs
    // a majority of them to agree.
    for sentinel in &sentinels {
        until(
            "the Sentinels know each other and the replica",
            async || {
                let fields = master_fields(sentinel).await;
                field(&fields, "num-slaves") == "1" && field(&fields, "num-other-sentinels") == "2"
            },
        )
        .await;
    }

    let urls: Vec<String> = sentinels.iter().map(OwnServer::url).collect();
    let urls: Vec<&str> = urls.iter().map(String::as_str).collect();
    let store = RedisStore::open_sentinel(&urls, SERVICE)
        .await
        .unwrap()
        .with_replica_acknowledgement(1, Duration::from_secs(2))
        .unwrap();
    let clock = clock_now();
    let app = app(store, &clock);
    let alice = log_in(&app, "alice").await;
    let bob = log_in(&app, "bob").await;
    // Bob logs out; the replica has it before the store says so.
    assert_eq!(
        send(&app, "POST", "/logout", Some(&bob)).await.status(),
        StatusCode::OK
    );
    assert_eq!(
        send(&app, "GET", "/me", Some(&bob)).await.status(),
        StatusCode::UNAUTHORIZED
    );
    // Alice's session reaches the replica too, before the primary dies.
    let mut on_replica = connection(&replica).await;
    until("alice's session is on the replica", async || {
        let keys: Vec<String> = redis::cmd("KEYS")
            .arg("tsl:*")
            .query_async(&mut on_replica)
            .await
            .unwrap();
        !keys.is_empty()
    })
    .await;

    primary.stop();
    // Requests flow through the failover: alice gets 200 or 503, bob never
    // 200; the store comes back to the promoted replica by itself.
    let mut unavailable = 0;
    until("the store follows the promoted replica", async || {
        let status = send(&app, "GET", "/me", Some(&alice)).await.status();
        assert!(
            status == StatusCode::OK || status == StatusCode::SERVICE_UNAVAILABLE,
            "alice: {status}"
        );
        let bob_status = send(&app, "GET", "/me", Some(&bob)).await.status();
        assert_ne!(
            bob_status,
            StatusCode::OK,
            "a logged-out session was admitted"
        );
        unavailable += usize::from(status == StatusCode::SERVICE_UNAVAILABLE);
        status == StatusCode::OK
    })
    .await;
    assert!(unavailable > 0, "the requests during the failover got 503");

    // The replica is the primary now, as the Sentinels say, and bob stays
    // logged out.
    let fields = master_fields(&sentinels[0]).await;
    assert_eq!(field(&fields, "port"), replica.port().to_string());
    let response = send(&app, "GET", "/me", Some(&alice)).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        send(&app, "GET", "/me", Some(&bob)).await.status(),
        StatusCode::UNAUTHORIZED
    );
    // And it takes new sessions.
    let carol = log_in(&app, "carol").await;
    assert_eq!(
        send(&app, "GET", "/me", Some(&carol)).await.status(),
        StatusCode::OK
    );
}
