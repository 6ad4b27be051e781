//! What waiting for a replica costs a logout: `RedisStore::delete` with
//! and without `with_replica_acknowledgement(1, …)`, against a primary and
//! its replica that this bench starts on free loopback ports
//! (`TSL_REDIS_SERVER`, else `redis-server` on `PATH`).
//!
//! ```text
//! cargo bench --bench redis_logout --features redis,conformance
//! ```
//!
//! Each iteration creates a session and ends it (a logout is never of a
//! session that is not there): `create` is the same in both, so the
//! difference between the two is the `WAIT`.

#[path = "../tests/common/redis_server.rs"]
#[allow(dead_code)]
mod redis_server;

use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use redis_server::OwnServer;
use tower_session_lifetime::store::conformance::{fresh_key, live_record};
use tower_session_lifetime::store::LifetimeStore;
use tower_session_lifetime::RedisStore;

fn logout(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let primary = OwnServer::start();
    let port = primary.port().to_string();
    let replica = OwnServer::start_with(&["--replicaof", "127.0.0.1", &port]);
    let (plain, acknowledged) = rt.block_on(async {
        wait_for_sync(&replica).await;
        let plain = RedisStore::open(&primary.url()).expect("a store");
        let acknowledged = RedisStore::open(&primary.url())
            .expect("a store")
            .with_replica_acknowledgement(1, Duration::from_secs(2))
            .expect("a valid acknowledgement");
        (plain, acknowledged)
    });

    let mut group = c.benchmark_group("redis_logout");
    for (name, store) in [
        ("create_and_delete", &plain),
        ("create_and_acknowledged_delete", &acknowledged),
    ] {
        group.bench_function(name, |b| {
            b.to_async(&rt).iter(|| async {
                let key = fresh_key();
                assert!(store.create(&key, &live_record()).await.expect("create"));
                assert!(store.delete(&key).await.expect("delete"));
            })
        });
    }
    group.finish();
    drop(replica);
    drop(primary);
}

async fn wait_for_sync(replica: &OwnServer) {
    let mut connection = redis::Client::open(replica.url().as_str())
        .expect("a client")
        .get_multiplexed_async_connection()
        .await
        .expect("the replica answers");
    for _ in 0..500 {
        let info: String = redis::cmd("INFO")
            .arg("replication")
            .query_async(&mut connection)
            .await
            .expect("INFO");
        if info.contains("master_link_status:up") {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("the replica did not sync");
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4))
        .sample_size(30);
    targets = logout
}
criterion_main!(benches);
