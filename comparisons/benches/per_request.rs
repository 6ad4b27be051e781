//! Time per admitted `GET /api/me`, in process, against the local Redis and
//! PostgreSQL that scripts/bench-stores starts: the bare route, the lifetime
//! layer on each store, and tower-sessions on each store (in-process memory
//! stores included).

use criterion::{criterion_group, criterion_main, Criterion};
use tower_session_lifetime::clock::SystemClock;
use tower_session_lifetime_comparisons::{app, log_in, me, Servers, Variant};

fn per_request(c: &mut Criterion) {
    // One thread: the request and the client's connection task run where
    // the benchmark waits, with no wake-up across threads.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let servers = Servers::from_env();
    let mut group = c.benchmark_group("per_request");
    for variant in Variant::ALL {
        let (app, cookie) = runtime.block_on(async {
            let (app, _) = app(variant, &servers, SystemClock).await;
            let cookie = log_in(&app).await;
            (app, cookie)
        });
        group.bench_function(variant.name(), |b| {
            b.to_async(&runtime).iter(|| me(&app, &cookie));
        });
    }
    group.finish();
}

criterion_group!(benches, per_request);
criterion_main!(benches);
