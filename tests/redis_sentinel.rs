//! `RedisStore::open_sentinel` against a real Sentinel setup of this
//! test's own (loopback, free ports, `TSL_REDIS_SERVER`): a primary, its
//! replica and three Sentinels. The primary is killed (by its PID) while
//! requests flow: requests for its sessions get `503`, never a wrong
//! admission; the Sentinels promote the replica; the store follows it
//! without a restart; and a session logged out with a replica
//! acknowledgement before the kill stays logged out after it.
#![cfg(all(feature = "redis-sentinel", feature = "axum"))]

mod common;

use std::time::Duration;

use http::StatusCode;

use common::redis_server::{field, until, OwnServer, SentinelSetup};
use common::shared_store::{app, clock_now, log_in, send};
use tower_session_lifetime::RedisStore;

const SERVICE: &str = "tsl-sessions";
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failover_gives_503_then_the_store_follows_the_new_primary() {
    let SentinelSetup {
        mut primary,
        replica,
        sentinels,
        ..
    } = SentinelSetup::start(SERVICE).await;
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
    let mut on_replica = replica.connection().await;
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
    let fields = sentinels[0].master_fields(SERVICE).await;
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
