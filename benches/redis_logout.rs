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
use redis_server::primary_and_replica;
use tower_session_lifetime::store::conformance::{fresh_key, live_record};
use tower_session_lifetime::store::LifetimeStore;
use tower_session_lifetime::RedisStore;

fn logout(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let (plain, acknowledged, primary, replica) = rt.block_on(async {
        let (primary, replica) = primary_and_replica().await;
        let plain = RedisStore::open(&primary.url()).expect("a store");
        let acknowledged = RedisStore::open(&primary.url())
            .expect("a store")
            .with_replica_acknowledgement(1, Duration::from_secs(2))
            .expect("a valid acknowledgement");
        (plain, acknowledged, primary, replica)
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

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4))
        .sample_size(30);
    targets = logout
}
criterion_main!(benches);
