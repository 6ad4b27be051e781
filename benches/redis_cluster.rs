//! Requests per second on a Redis Cluster of three primaries against one
//! Redis server, in the same run: the layer's hot path
//! (`RedisStore::load_and_touch`, one round trip) for 256 sessions at once,
//! over 3,000 sessions, against servers this bench starts on free loopback
//! ports (`TSL_REDIS_SERVER`, else `redis-server` on `PATH`; `redis-cli`
//! beside it creates the cluster).
//!
//! ```text
//! cargo bench --bench redis_cluster --features redis-cluster,conformance
//! ```
//!
//! On a machine with few cores the three primaries, the one server and the
//! bench share them: what this shows is that a cluster spreads the same
//! load and costs no more per request, not what three machines would give.

#[path = "../tests/common/redis_cluster.rs"]
#[allow(dead_code)]
mod redis_cluster;
#[path = "../tests/common/redis_server.rs"]
#[allow(dead_code)]
mod redis_server;

use std::sync::Arc;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use redis_cluster::OwnCluster;
use redis_server::OwnServer;
use tower_session_lifetime::clock::{Clock, SystemClock};
use tower_session_lifetime::id::SessionKey;
use tower_session_lifetime::policy::Policy;
use tower_session_lifetime::store::conformance::{fresh_key, live_record};
use tower_session_lifetime::store::LifetimeStore;
use tower_session_lifetime::RedisStore;

const SESSIONS: usize = 3000;
const AT_ONCE: usize = 256;

/// `SESSIONS` sessions in `store`.
async fn sessions(store: &RedisStore) -> Vec<SessionKey> {
    let mut keys = Vec::with_capacity(SESSIONS);
    for _ in 0..SESSIONS {
        let key = fresh_key();
        let mut record = live_record();
        record.subject = None;
        assert!(store.create(&key, &record).await.expect("create"));
        keys.push(key);
    }
    keys
}

/// `AT_ONCE` loads of the sessions after `start`, side by side.
async fn loads(
    store: &Arc<RedisStore>,
    keys: &Arc<Vec<SessionKey>>,
    start: usize,
    policy: &Arc<Policy>,
) {
    let tasks: Vec<_> = (0..AT_ONCE)
        .map(|offset| {
            let (store, keys, policy) = (Arc::clone(store), Arc::clone(keys), Arc::clone(policy));
            tokio::spawn(async move {
                let key = keys[(start + offset) % keys.len()];
                let loaded = store
                    .load_and_touch(&key, &policy, SystemClock.now())
                    .await
                    .expect("load");
                assert!(loaded.is_some());
            })
        })
        .collect();
    for task in tasks {
        task.await.expect("a load");
    }
}

fn cluster_against_one_server(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let (server, cluster, stores) = rt.block_on(async {
        let server = OwnServer::start();
        let cluster = OwnCluster::start(3, 0).await;
        let one = RedisStore::open(&server.url()).expect("a store");
        let urls = cluster.urls();
        let urls: Vec<&str> = urls.iter().map(String::as_str).collect();
        let three = RedisStore::open_cluster(&urls)
            .await
            .expect("a cluster store");
        let one_keys = sessions(&one).await;
        let three_keys = sessions(&three).await;
        let stores = [
            ("one_server", Arc::new(one), Arc::new(one_keys)),
            (
                "cluster_of_three_primaries",
                Arc::new(three),
                Arc::new(three_keys),
            ),
        ];
        (server, cluster, stores)
    });
    let policy = Arc::new(
        Policy::builder()
            .idle_timeout(Duration::from_secs(3600))
            .absolute_timeout(Duration::from_secs(8 * 3600))
            .build()
            .expect("a policy"),
    );

    let mut group = c.benchmark_group("redis_cluster_load_and_touch");
    group.throughput(Throughput::Elements(AT_ONCE as u64));
    for (name, store, keys) in &stores {
        let mut start = 0;
        group.bench_function(*name, |b| {
            b.to_async(&rt).iter(|| {
                start = (start + AT_ONCE) % SESSIONS;
                loads(store, keys, start, &policy)
            })
        });
    }
    group.finish();
    drop(stores);
    drop(cluster);
    drop(server);
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(5))
        .sample_size(30);
    targets = cluster_against_one_server
}
criterion_main!(benches);
