//! A third independent attack on the shared-policy promises
//! (`SharedPolicy`, `LivePolicy`, `PolicyStore`), on Redis and PostgreSQL:
//! stored policies that vanish while a node is cut off, a node started
//! first on an emptied store, many nodes changing, refreshing and starting
//! at once, concurrent starts on one layer, two `SharedPolicy`s on one
//! layer, tenants each node lists differently under races, and hostile
//! stored fields met by running nodes.
//!
//! Needs `TSL_REDIS_URL` and `TSL_POSTGRES_URL` (as `tests/shared_policy.rs`).
#![cfg(all(
    feature = "redis",
    feature = "postgres",
    feature = "conformance",
    feature = "axum"
))]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::policy_backend::Backend;
use tokio::sync::Notify;
use tower_session_lifetime::policy::{PolicyChange, PolicyChangeError, TenantFrom};
use tower_session_lifetime::shared_policy::{SharedPolicy, SharedPolicyError, POLL_INTERVAL};
use tower_session_lifetime::store::{PolicyStore, StoreError, StoreErrorKind, StoredPolicies};
use tower_session_lifetime::{MemoryStore, Policies, Policy, SessionLifetimeLayer};

/// The propagation bound the crate states.
const BOUND: Duration = Duration::from_secs(1);
const MINUTE: Duration = Duration::from_secs(60);

fn minutes(m: u64) -> Policy {
    Policy::builder()
        .idle_timeout(Duration::from_secs(60 * m))
        .build()
        .unwrap()
}

/// Idle `idle`, renewal every `renewal` (none if zero).
fn with_renewal(idle: Duration, renewal: Duration) -> Policy {
    let mut builder = Policy::builder().idle_timeout(idle);
    if !renewal.is_zero() {
        builder = builder.renewal_interval(renewal);
    }
    builder.build().unwrap()
}

/// A node's policy store that can be cut off (every call fails as an
/// unreachable store does), can acknowledge a stored change late, and can
/// be deaf to notifications.
struct Gate {
    inner: Box<dyn PolicyStore>,
    cut: Arc<AtomicBool>,
    ack_delay: Duration,
    notifications: bool,
}

impl Gate {
    fn open(backend: &Backend) -> Self {
        Gate {
            inner: backend.store(),
            cut: Arc::new(AtomicBool::new(false)),
            ack_delay: Duration::ZERO,
            notifications: true,
        }
    }

    fn cuttable(backend: &Backend, cut: &Arc<AtomicBool>) -> Self {
        Gate {
            cut: Arc::clone(cut),
            ..Gate::open(backend)
        }
    }

    fn check(&self) -> Result<(), StoreError> {
        if self.cut.load(Ordering::SeqCst) {
            return Err(StoreError::unavailable("cut off, in this test"));
        }
        Ok(())
    }
}

#[async_trait::async_trait]
impl PolicyStore for Gate {
    async fn load_policies(&self) -> Result<Option<StoredPolicies>, StoreError> {
        self.check()?;
        self.inner.load_policies().await
    }

    async fn store_policies(&self, expected: u64, text: &str) -> Result<bool, StoreError> {
        self.check()?;
        let stored = self.inner.store_policies(expected, text).await;
        if matches!(stored, Ok(true)) && !self.ack_delay.is_zero() {
            tokio::time::sleep(self.ack_delay).await;
        }
        stored
    }

    async fn watch_policies(&self, changed: &(dyn Fn() + Send + Sync)) -> Result<(), StoreError> {
        if !self.notifications {
            return Err(StoreError::unsupported("notifications, in this test"));
        }
        self.inner.watch_policies(changed).await
    }
}

async fn start(backend: &Backend, policies: Policies) -> SharedPolicy {
    let layer = SessionLifetimeLayer::new(MemoryStore::new()).with_policies(policies);
    SharedPolicy::start(layer.live_policy(), Gate::open(backend))
        .await
        .unwrap()
}

async fn start_cuttable(backend: &Backend, policy: Policy, cut: &Arc<AtomicBool>) -> SharedPolicy {
    let layer = SessionLifetimeLayer::new(MemoryStore::new()).with_policy(policy);
    SharedPolicy::start(layer.live_policy(), Gate::cuttable(backend, cut))
        .await
        .unwrap()
}

/// Waits (within `limit`) until `check` holds.
async fn eventually(limit: Duration, mut check: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    loop {
        if check() {
            return true;
        }
        if start.elapsed() > limit {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

fn idle_of(node: &SharedPolicy) -> Duration {
    node.current().policies().default_policy().idle_timeout()
}

// ---------------------------------------------------------------------------
// Stored policies that vanish
// ---------------------------------------------------------------------------

/// B is cut off while the stored policies vanish, A stores them again (at
/// version 1) and changes them (version 2). B comes back at version 2 with
/// the policies of before: "catches up when it can", "every node follows".
async fn a_node_back_after_the_store_was_emptied_follows(backend: Backend) {
    let cut_b = Arc::new(AtomicBool::new(false));
    let a = start_cuttable(&backend, minutes(30), &Arc::new(AtomicBool::new(false))).await;
    let b = start_cuttable(&backend, minutes(30), &cut_b).await;
    let changed = a
        .apply(PolicyChange::default_policy(minutes(20)).by("admin"))
        .await
        .unwrap();
    assert!(
        eventually(BOUND, || b.current().version() == changed.version()).await,
        "setup: B did not reach v{} within the bound (at v{})",
        changed.version(),
        b.current().version()
    );

    cut_b.store(true, Ordering::SeqCst);
    backend.remove().await;
    assert!(
        !a.refresh().await.unwrap(),
        "refresh says none were stored (they were removed)"
    );
    let stored = backend.stored().await.unwrap();
    assert_eq!(stored.version, 1, "stored again at version 1");
    let latest = a
        .apply(
            PolicyChange::default_policy(minutes(7))
                .expecting(1)
                .by("admin"),
        )
        .await
        .unwrap();
    assert_eq!(latest.version(), 2);

    cut_b.store(false, Ordering::SeqCst);
    let followed = eventually(POLL_INTERVAL + BOUND, || idle_of(&b) == 7 * MINUTE).await;
    assert!(
        followed,
        "B, back, must follow the stored policies: B is at v{} idle {:?}, the store \
         holds v{} idle 7 min (A at v{} idle {:?})",
        b.current().version(),
        idle_of(&b),
        backend.stored().await.unwrap().version,
        a.current().version(),
        idle_of(&a),
    );
}

crate::on_both_stores!(
    a_node_back_after_the_store_was_emptied_follows =>
    redis_a_node_back_after_the_store_was_emptied_follows,
    postgres_a_node_back_after_the_store_was_emptied_follows
);

/// Nodes A and B run at version 1; the store is emptied while they cannot
/// reach it; node C starts first and stores its own (other) policies at
/// version 1. Once stored they win over every node's: A and B must follow.
async fn a_node_started_first_on_an_emptied_store_is_followed(backend: Backend) {
    let cut = Arc::new(AtomicBool::new(false));
    let a = start_cuttable(&backend, minutes(30), &cut).await;
    let b = start_cuttable(&backend, minutes(30), &cut).await;
    assert_eq!((a.current().version(), b.current().version()), (1, 1));
    cut.store(true, Ordering::SeqCst);
    backend.remove().await;
    let c = start_cuttable(&backend, minutes(45), &Arc::new(AtomicBool::new(false))).await;
    assert_eq!(c.current().version(), 1);
    assert_eq!(idle_of(&c), 45 * MINUTE, "C stored its own");
    cut.store(false, Ordering::SeqCst);
    let followed = eventually(POLL_INTERVAL + BOUND, || {
        idle_of(&a) == 45 * MINUTE && idle_of(&b) == 45 * MINUTE
    })
    .await;
    assert!(
        followed,
        "every node must follow the policies stored again: A v{} idle {:?}, B v{} idle \
         {:?}, store v{} idle 45 min",
        a.current().version(),
        idle_of(&a),
        b.current().version(),
        idle_of(&b),
        backend.stored().await.unwrap().version,
    );
}

crate::on_both_stores!(
    a_node_started_first_on_an_emptied_store_is_followed =>
    redis_a_node_started_first_on_an_emptied_store_is_followed,
    postgres_a_node_started_first_on_an_emptied_store_is_followed
);

/// A change made right after the stored policies vanished: at most one
/// conflict (naming two different versions), then the node's next try,
/// on the version it then has, is stored as version 2.
async fn a_change_on_an_emptied_store_conflicts_at_most_once(backend: Backend) {
    let a = start(&backend, Policies::single(minutes(30))).await;
    a.apply(PolicyChange::default_policy(minutes(25)).by("admin"))
        .await
        .unwrap();
    a.apply(PolicyChange::default_policy(minutes(20)).by("admin"))
        .await
        .unwrap();
    backend.remove().await;
    let mut outcomes = Vec::new();
    for _ in 0..2 {
        let seen = a.current().version();
        let outcome = a
            .apply(
                PolicyChange::default_policy(minutes(9))
                    .expecting(seen)
                    .by("admin"),
            )
            .await;
        let done = outcome.is_ok();
        outcomes.push(outcome);
        if done {
            break;
        }
    }
    for outcome in &outcomes {
        match outcome {
            Ok(_) => {}
            Err(SharedPolicyError::Refused(PolicyChangeError::Conflict { expected, current })) => {
                assert_ne!(expected, current, "{outcomes:?}")
            }
            Err(other) => panic!("not a conflict: {other} ({outcomes:?})"),
        }
    }
    let Some(Ok(last)) = outcomes.last() else {
        panic!("a second try on the version in force must succeed: {outcomes:?}");
    };
    assert_eq!(last.version(), 2, "{outcomes:?}");
    let stored = backend.stored().await.unwrap();
    assert_eq!(stored.version, 2);
    let other = start(&backend, Policies::single(minutes(60))).await;
    assert_eq!(idle_of(&other), 9 * MINUTE);
}

crate::on_both_stores!(
    a_change_on_an_emptied_store_conflicts_at_most_once =>
    redis_a_change_on_an_emptied_store_conflicts_at_most_once,
    postgres_a_change_on_an_emptied_store_conflicts_at_most_once
);

// ---------------------------------------------------------------------------
// Many nodes at once
// ---------------------------------------------------------------------------

/// Three nodes change the default policy at once (four changes each, on
/// the version each saw, retrying on conflicts), while a task refreshes
/// every node and three more nodes start. Each node renews at its own
/// interval (not shared). Versions count exactly, one winner each; a
/// conflict names two different versions; the node that applied has what
/// apply returned in force, and its own renewal throughout; every node
/// converges on the last winner within the bound.
async fn many_nodes_change_refresh_and_start_at_once(backend: Backend) {
    const CHANGES: u64 = 4;
    let renewal = |n: u64| Duration::from_secs(60 * (n + 1));
    let node = |n: u64| {
        let backend = backend.clone();
        async move {
            let layer = SessionLifetimeLayer::new(MemoryStore::new())
                .with_policy(with_renewal(30 * MINUTE, renewal(n)));
            SharedPolicy::start(layer.live_policy(), Gate::open(&backend))
                .await
                .unwrap()
        }
    };
    let nodes: Vec<SharedPolicy> = vec![node(0).await, node(1).await, node(2).await];
    let first_version = nodes[0].current().version();
    for n in &nodes {
        assert!(
            eventually(BOUND, || n.current().version() == first_version).await,
            "setup: a node did not reach v{first_version}"
        );
    }
    let all = Arc::new(Mutex::new(
        nodes
            .iter()
            .enumerate()
            .map(|(i, n)| (i as u64, n.clone()))
            .collect::<Vec<_>>(),
    ));
    let done = Arc::new(AtomicBool::new(false));
    let failures = Arc::new(Mutex::new(Vec::<String>::new()));
    let wins = Arc::new(Mutex::new(BTreeMap::<u64, Vec<(u64, Duration)>>::new()));
    let conflicts = Arc::new(AtomicUsize::new(0));

    let mut appliers = Vec::new();
    for (n, shared) in nodes.iter().enumerate() {
        let n = n as u64;
        let shared = shared.clone();
        let failures = Arc::clone(&failures);
        let wins = Arc::clone(&wins);
        let conflicts = Arc::clone(&conflicts);
        appliers.push(tokio::spawn(async move {
            for k in 0..CHANGES {
                let idle = 10 * MINUTE + Duration::from_secs(n * 100 + k);
                let wanted = with_renewal(idle, renewal(n));
                loop {
                    let seen = shared.current().version();
                    match shared
                        .apply(
                            PolicyChange::default_policy(wanted)
                                .expecting(seen)
                                .by(format!("admin {n}")),
                        )
                        .await
                    {
                        Ok(after) => {
                            let now = shared.current();
                            if after.version() != seen + 1 {
                                failures.lock().unwrap().push(format!(
                                    "node {n}: expected v{seen}, apply returned v{}",
                                    after.version()
                                ));
                            }
                            if now.version() < after.version()
                                || (now.version() == after.version()
                                    && now.policies().default_policy()
                                        != after.policies().default_policy())
                            {
                                failures.lock().unwrap().push(format!(
                                    "node {n}: apply returned v{} {:?}, in force v{} {:?}",
                                    after.version(),
                                    after.policies().default_policy(),
                                    now.version(),
                                    now.policies().default_policy()
                                ));
                            }
                            wins.lock()
                                .unwrap()
                                .entry(after.version())
                                .or_default()
                                .push((n, idle));
                            break;
                        }
                        Err(SharedPolicyError::Refused(PolicyChangeError::Conflict {
                            expected,
                            current,
                        })) => {
                            conflicts.fetch_add(1, Ordering::Relaxed);
                            if expected == current {
                                failures.lock().unwrap().push(format!(
                                    "node {n}: a conflict on v{expected} against v{current}"
                                ));
                                return;
                            }
                            tokio::time::sleep(Duration::from_millis(1 + (n + k) % 3)).await;
                        }
                        Err(other) => {
                            failures
                                .lock()
                                .unwrap()
                                .push(format!("node {n}: apply failed: {other}"));
                            return;
                        }
                    }
                }
            }
        }));
    }
    // Refreshes every node meanwhile; each keeps its own renewal.
    let refresher = {
        let all = Arc::clone(&all);
        let done = Arc::clone(&done);
        let failures = Arc::clone(&failures);
        tokio::spawn(async move {
            while !done.load(Ordering::SeqCst) {
                let nodes = all.lock().unwrap().clone();
                for (n, shared) in nodes {
                    if let Err(err) = shared.refresh().await {
                        failures
                            .lock()
                            .unwrap()
                            .push(format!("node {n}: refresh failed: {err}"));
                    }
                    let renews = shared.current().policies().default_policy().renewal();
                    if renews.map(|r| r.interval) != Some(renewal(n)) {
                        failures
                            .lock()
                            .unwrap()
                            .push(format!("node {n} renews as {renews:?}, not its own"));
                    }
                }
                tokio::task::yield_now().await;
            }
        })
    };
    // Three more nodes start meanwhile.
    for n in 3..6u64 {
        tokio::time::sleep(Duration::from_millis(15)).await;
        let started = node(n).await;
        all.lock().unwrap().push((n, started));
    }
    for applier in appliers {
        applier.await.unwrap();
    }
    let finished = Instant::now();
    done.store(true, Ordering::SeqCst);
    refresher.await.unwrap();
    let failures = failures.lock().unwrap().clone();
    assert!(failures.is_empty(), "{failures:#?}");

    let wins = wins.lock().unwrap().clone();
    let versions: BTreeSet<u64> = wins.keys().copied().collect();
    let expected: BTreeSet<u64> =
        (first_version + 1..=first_version + 3 * CHANGES).collect::<BTreeSet<_>>();
    assert_eq!(versions, expected, "every version made once: {wins:?}");
    for (version, winners) in &wins {
        assert_eq!(winners.len(), 1, "v{version} won by {winners:?}");
    }
    let last = *versions.iter().next_back().unwrap();
    let last_idle = wins[&last][0].1;
    let stored = backend.stored().await.unwrap();
    assert_eq!(stored.version, last, "the store counted exactly");

    let all = all.lock().unwrap().clone();
    let converged = eventually(BOUND, || {
        all.iter()
            .all(|(_, shared)| shared.current().version() == last && idle_of(shared) == last_idle)
    })
    .await;
    let states: Vec<_> = all
        .iter()
        .map(|(n, shared)| (*n, shared.current().version(), idle_of(shared)))
        .collect();
    assert!(
        converged,
        "all nodes at v{last} idle {last_idle:?} within {BOUND:?} of the last change \
         ({:?} later): {states:?}",
        finished.elapsed()
    );
    for (n, shared) in &all {
        assert_eq!(
            shared
                .current()
                .policies()
                .default_policy()
                .renewal()
                .map(|r| r.interval),
            Some(renewal(*n)),
            "node {n} renews as it was configured"
        );
    }
    println!(
        "{} changes, {} conflicts",
        3 * CHANGES,
        conflicts.load(Ordering::Relaxed)
    );
}

crate::on_both_stores!(
    many_nodes_change_refresh_and_start_at_once =>
    redis_many_nodes_change_refresh_and_start_at_once,
    postgres_many_nodes_change_refresh_and_start_at_once
);

/// Node A lists x and y, B lists x, C lists x and z; each changes its own
/// tenants at once, retrying on conflicts. No change to a tenant some node
/// does not list is lost: a node started later (listing all three) loads
/// the last change of each, and so do the running nodes that list them.
async fn tenants_not_listed_everywhere_survive_racing_changes(backend: Backend) {
    let policies = |tenants: &[&str]| {
        let mut builder = Policies::builder(minutes(30)).tenants_from(TenantFrom::Host);
        for tenant in tenants {
            builder = builder.tenant(*tenant, minutes(30));
        }
        builder.build().unwrap()
    };
    let a = start(&backend, policies(&["x.example", "y.example"])).await;
    let b = start(&backend, policies(&["x.example"])).await;
    let c = start(&backend, policies(&["x.example", "z.example"])).await;
    let change = |node: SharedPolicy, tenant: Option<&'static str>, base: u64| async move {
        let mut last = 0;
        for k in 0..4u64 {
            let m = base + k;
            loop {
                let seen = node.current().version();
                let change = match tenant {
                    Some(name) => PolicyChange::tenant(name, minutes(m)),
                    None => PolicyChange::default_policy(minutes(m)),
                };
                match node.apply(change.expecting(seen).by("admin")).await {
                    Ok(_) => break,
                    Err(SharedPolicyError::Refused(PolicyChangeError::Conflict {
                        expected,
                        current,
                    })) => {
                        assert_ne!(expected, current);
                        tokio::time::sleep(Duration::from_millis(1)).await;
                    }
                    Err(other) => panic!("{other}"),
                }
            }
            last = m;
        }
        last
    };
    let (y, x, z, default) = tokio::join!(
        change(a.clone(), Some("y.example"), 2),
        change(b.clone(), Some("x.example"), 10),
        change(c.clone(), Some("z.example"), 20),
        change(b.clone(), None, 40),
    );
    let d = start(&backend, policies(&["x.example", "y.example", "z.example"])).await;
    let stored = backend.stored().await.unwrap();
    let found = |node: &SharedPolicy, tenant: &str| {
        node.current()
            .policies()
            .tenant_policy(tenant)
            .map(Policy::idle_timeout)
    };
    assert_eq!(
        (
            found(&d, "x.example"),
            found(&d, "y.example"),
            found(&d, "z.example"),
            idle_of(&d)
        ),
        (
            Some(Duration::from_secs(60 * x)),
            Some(Duration::from_secs(60 * y)),
            Some(Duration::from_secs(60 * z)),
            Duration::from_secs(60 * default)
        ),
        "a node started later loads every last change (stored v{}: {:?})",
        stored.version,
        stored.text
    );
    let converged = eventually(BOUND, || {
        found(&a, "y.example") == Some(Duration::from_secs(60 * y))
            && found(&a, "x.example") == Some(Duration::from_secs(60 * x))
            && found(&c, "z.example") == Some(Duration::from_secs(60 * z))
            && found(&c, "x.example") == Some(Duration::from_secs(60 * x))
            && [&a, &b, &c]
                .iter()
                .all(|n| idle_of(n) == Duration::from_secs(60 * default))
    })
    .await;
    assert!(converged, "running nodes converge");
}

crate::on_both_stores!(
    tenants_not_listed_everywhere_survive_racing_changes =>
    redis_tenants_not_listed_everywhere_survive_racing_changes,
    postgres_tenants_not_listed_everywhere_survive_racing_changes
);

// ---------------------------------------------------------------------------
// Starts on one layer
// ---------------------------------------------------------------------------

/// A store whose first load waits until released, then fails.
struct Stalled {
    entered: Arc<Notify>,
    release: Arc<Notify>,
}

#[async_trait::async_trait]
impl PolicyStore for Stalled {
    async fn load_policies(&self) -> Result<Option<StoredPolicies>, StoreError> {
        self.entered.notify_one();
        self.release.notified().await;
        Err(StoreError::unavailable("stalled, then failed"))
    }

    async fn store_policies(&self, _: u64, _: &str) -> Result<bool, StoreError> {
        Err(StoreError::unavailable("stalled"))
    }

    async fn watch_policies(&self, _: &(dyn Fn() + Send + Sync)) -> Result<(), StoreError> {
        Err(StoreError::unsupported("notifications, in this test"))
    }
}

/// Two starts on one layer at once: while the first stalls in the store,
/// the second is refused (`Shared`: one `SharedPolicy` per layer) and the
/// layer stays shared; once the first fails, the layer is this node's
/// again: `LivePolicy::apply` works, and a new start shares it and follows
/// the store.
async fn interleaved_starts_one_failing_leave_the_layer_shared(backend: Backend) {
    let layer = SessionLifetimeLayer::new(MemoryStore::new()).with_policy(minutes(30));
    let live = layer.live_policy();
    let entered = Arc::new(Notify::new());
    let release = Arc::new(Notify::new());
    let first = tokio::spawn(SharedPolicy::start(
        live.clone(),
        Stalled {
            entered: Arc::clone(&entered),
            release: Arc::clone(&release),
        },
    ));
    entered.notified().await;
    let second = SharedPolicy::start(live.clone(), Gate::open(&backend)).await;
    assert!(
        matches!(
            second,
            Err(SharedPolicyError::Refused(PolicyChangeError::Shared))
        ),
        "a second start while one is under way: {second:?}"
    );
    let local = live.apply(PolicyChange::default_policy(minutes(5)).by("local admin"));
    assert!(
        matches!(local, Err(PolicyChangeError::Shared)),
        "while the first start is under way the layer is shared: {:?}",
        local.map(|s| s.version())
    );
    release.notify_one();
    first.await.unwrap().expect_err("the first start failed");
    live.apply(PolicyChange::default_policy(minutes(5)).by("local admin"))
        .expect("no start succeeded: the layer is this node's again");
    let second = SharedPolicy::start(live.clone(), Gate::open(&backend))
        .await
        .expect("a start after the failed one");
    let other = start(&backend, Policies::single(minutes(30))).await;
    let changed = other
        .apply(PolicyChange::default_policy(minutes(12)).by("admin elsewhere"))
        .await
        .unwrap();
    assert!(
        eventually(BOUND, || second.current().version() == changed.version()).await,
        "the new start follows the store: at v{}, stored v{}",
        second.current().version(),
        changed.version()
    );
    assert_eq!(idle_of(&second), 12 * MINUTE);
}

crate::on_both_stores!(
    interleaved_starts_one_failing_leave_the_layer_shared =>
    redis_interleaved_starts_one_failing_leave_the_layer_shared,
    postgres_interleaved_starts_one_failing_leave_the_layer_shared
);

/// A layer already shared is not shared twice: a second start is refused
/// (which would let two followers race to put the same version in force,
/// one without the settings nodes do not share), and the first goes on:
/// what its `apply` returned is what is in force, renewal included, while
/// its store's acknowledgement is slow. Once the first is dropped, a new
/// start may share the layer.
async fn two_shared_policies_on_one_layer_keep_what_apply_returned(backend: Backend) {
    let layer = SessionLifetimeLayer::new(MemoryStore::new()).with_policy(minutes(30));
    let live = layer.live_policy();
    let first = SharedPolicy::start(
        live.clone(),
        Gate {
            ack_delay: Duration::from_millis(50),
            ..Gate::open(&backend)
        },
    )
    .await
    .unwrap();
    let second = SharedPolicy::start(live.clone(), Gate::open(&backend)).await;
    assert!(
        matches!(
            second,
            Err(SharedPolicyError::Refused(PolicyChangeError::Shared))
        ),
        "a second start on a shared layer: {second:?}"
    );
    let _other_node = start(&backend, Policies::single(minutes(30))).await;
    for round in 0..4u64 {
        let renewal = if round % 2 == 0 {
            5 * MINUTE
        } else {
            Duration::ZERO
        };
        let wanted = with_renewal(20 * MINUTE + Duration::from_secs(round), renewal);
        let returned = first
            .apply(PolicyChange::default_policy(wanted).by("admin"))
            .await
            .unwrap();
        let now = live.current();
        assert_eq!(
            (now.version(), now.policies().default_policy()),
            (returned.version(), &wanted),
            "round {round}: what apply returned is in force on the layer that applied it"
        );
    }
    drop(first);
    SharedPolicy::start(live.clone(), Gate::open(&backend))
        .await
        .expect("the first dropped, the layer may be shared again");
}

crate::on_both_stores!(
    two_shared_policies_on_one_layer_keep_what_apply_returned =>
    redis_two_shared_policies_on_one_layer_keep_what_apply_returned,
    postgres_two_shared_policies_on_one_layer_keep_what_apply_returned
);

// ---------------------------------------------------------------------------
// Hostile stored fields met by running nodes
// ---------------------------------------------------------------------------

/// What a running node must do when the stored policies turn hostile: no
/// panic, a typed error from `refresh` (`Corrupt` when `corrupt`), a change
/// refused without a conflict naming one version twice, the policies in
/// force kept, nothing written over the hostile fields; and once an
/// operator removes them, changes go through again.
async fn a_running_node_meets(backend: &Backend, what: &str, forge: impl std::future::Future) {
    let corrupt = !what.starts_with("wrong type");
    let a = start(backend, Policies::single(minutes(30))).await;
    let b = start(backend, Policies::single(minutes(30))).await;
    let changed = a
        .apply(PolicyChange::default_policy(minutes(20)).by("admin"))
        .await
        .unwrap();
    assert!(
        eventually(BOUND, || b.current().version() == changed.version()).await,
        "setup: B did not reach v{} within the bound (at v{})",
        changed.version(),
        b.current().version()
    );
    forge.await;
    let before = backend.dump().await;
    let err = a
        .refresh()
        .await
        .expect_err(&format!("{what}: refresh must fail"));
    if corrupt {
        assert_eq!(err.kind(), StoreErrorKind::Corrupt, "{what}: {err}");
    }
    for node in [&a, &b] {
        let seen = node.current().version();
        let outcome = node
            .apply(
                PolicyChange::default_policy(minutes(5))
                    .expecting(seen)
                    .by("admin"),
            )
            .await;
        match &outcome {
            Err(SharedPolicyError::Store(err))
                if !corrupt || err.kind() == StoreErrorKind::Corrupt => {}
            Err(SharedPolicyError::Refused(PolicyChangeError::Conflict { expected, current })) => {
                assert_ne!(expected, current, "{what}: an eternal conflict")
            }
            other => panic!("{what}: a change on hostile fields gave {other:?}"),
        }
    }
    tokio::time::sleep(2 * POLL_INTERVAL).await;
    for node in [&a, &b] {
        assert_eq!(
            (node.current().version(), idle_of(node)),
            (changed.version(), 20 * MINUTE),
            "{what}: the policies in force are kept"
        );
    }
    assert_eq!(backend.dump().await, before, "{what}: nothing written over");
    // A failed start leaves the layer its own.
    let layer = SessionLifetimeLayer::new(MemoryStore::new()).with_policy(minutes(30));
    SharedPolicy::start(layer.live_policy(), Gate::open(backend))
        .await
        .expect_err(&format!("{what}: a node does not start on it"));
    layer
        .live_policy()
        .apply(PolicyChange::default_policy(minutes(3)).by("admin"))
        .unwrap_or_else(|err| panic!("{what}: {err}"));
    assert_eq!(backend.dump().await, before, "{what}: nothing written over");

    // The operator removes them: a node stores its policies again, and
    // changes go through.
    backend.remove().await;
    let mut last = None;
    for _ in 0..3 {
        let seen = b.current().version();
        match b
            .apply(
                PolicyChange::default_policy(minutes(8))
                    .expecting(seen)
                    .by("admin"),
            )
            .await
        {
            Ok(after) => {
                last = Some(after);
                break;
            }
            Err(SharedPolicyError::Refused(PolicyChangeError::Conflict { expected, current })) => {
                assert_ne!(expected, current, "{what}")
            }
            Err(other) => panic!("{what}: {other}"),
        }
    }
    let last = last.unwrap_or_else(|| panic!("{what}: no change goes through after removal"));
    assert!(
        eventually(2 * BOUND + POLL_INTERVAL, || a.current().version()
            == last.version()
            && idle_of(&a) == 8 * MINUTE)
        .await,
        "{what}: A at v{} idle {:?}, B changed to v{} idle 8 min",
        a.current().version(),
        idle_of(&a),
        last.version()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_running_nodes_meet_hostile_fields() {
    let cases: &[(&str, &[&str])] = &[
        ("version removed", &["HDEL", "{key}", "v"]),
        ("text removed", &["HDEL", "{key}", "p"]),
        ("version 0", &["HSET", "{key}", "v", "0"]),
        ("version 00", &["HSET", "{key}", "v", "00"]),
        ("version negative", &["HSET", "{key}", "v", "-2"]),
        ("version not a number", &["HSET", "{key}", "v", "2x"]),
        ("version with a space", &["HSET", "{key}", "v", " 2"]),
        ("version with a plus", &["HSET", "{key}", "v", "+2"]),
        ("version empty", &["HSET", "{key}", "v", ""]),
        ("wrong type: a string", &["SET", "{key}", "junk"]),
        ("wrong type: a list", &["RPUSH", "{key}", "junk"]),
    ];
    for (what, command) in cases {
        let backend = Backend::redis();
        let forge = async {
            if what.starts_with("wrong type") {
                let _: i64 = redis::cmd("DEL")
                    .arg(backend.key())
                    .query_async(&mut backend.redis_connection().await)
                    .await
                    .unwrap();
            }
            let mut cmd = redis::cmd(command[0]);
            for arg in &command[1..] {
                cmd.arg(arg.replace("{key}", &backend.key()));
            }
            let _: redis::Value = cmd
                .query_async(&mut backend.redis_connection().await)
                .await
                .unwrap();
        };
        a_running_node_meets(&backend, what, forge).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_running_nodes_meet_hostile_versions() {
    for version in [0, -1, i64::MIN] {
        let backend = Backend::postgres().await;
        let forge = async {
            sqlx::query(&format!("UPDATE {} SET version = $1", backend.key()))
                .bind(version)
                .execute(&backend.postgres_pool().await)
                .await
                .unwrap();
        };
        a_running_node_meets(&backend, &format!("version {version}"), forge).await;
    }
}

/// Redis versions at and past `i64::MAX` (which `HINCRBY` refuses to go
/// past), plain or with leading zeros: a change fails with an error, never
/// a conflict naming one version twice, and nothing stored is changed; the
/// version before `i64::MAX` still counts to it exactly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_versions_at_the_end_of_i64_fail_cleanly() {
    for version in [
        "9223372036854775807",
        "09223372036854775807",
        "9223372036854775808",
        "18446744073709551614",
    ] {
        let backend = Backend::redis();
        let a = start(&backend, Policies::single(minutes(30))).await;
        let _: i64 = redis::cmd("HSET")
            .arg(backend.key())
            .arg("v")
            .arg(version)
            .query_async(&mut backend.redis_connection().await)
            .await
            .unwrap();
        a.refresh().await.unwrap();
        let number: u64 = version.parse().unwrap();
        assert_eq!(a.current().version(), number, "{version}");
        let text_before = backend.stored().await.unwrap().text;
        let outcome = a
            .apply(
                PolicyChange::default_policy(minutes(5))
                    .expecting(number)
                    .by("admin"),
            )
            .await;
        match &outcome {
            Err(SharedPolicyError::Store(_))
            | Err(SharedPolicyError::Refused(PolicyChangeError::VersionsExhausted)) => {}
            other => panic!("{version}: {other:?}"),
        }
        let stored = backend.stored().await.unwrap();
        assert_eq!(
            (stored.version, &stored.text),
            (number, &text_before),
            "{version}: nothing changed"
        );
        assert_eq!(
            (a.current().version(), idle_of(&a)),
            (number, 30 * MINUTE),
            "{version}: the policies in force kept"
        );
    }
    // One short of i64::MAX counts up to it exactly, then stops.
    let backend = Backend::redis();
    let a = start(&backend, Policies::single(minutes(30))).await;
    let _: i64 = redis::cmd("HSET")
        .arg(backend.key())
        .arg("v")
        .arg("9223372036854775806")
        .query_async(&mut backend.redis_connection().await)
        .await
        .unwrap();
    a.refresh().await.unwrap();
    let last = a
        .apply(PolicyChange::default_policy(minutes(6)).by("admin"))
        .await
        .unwrap();
    assert_eq!(last.version(), i64::MAX as u64);
    assert_eq!(backend.stored().await.unwrap().version, i64::MAX as u64);
    assert!(a
        .apply(PolicyChange::default_policy(minutes(4)).by("admin"))
        .await
        .is_err());
    assert_eq!(idle_of(&a), 6 * MINUTE);
}
