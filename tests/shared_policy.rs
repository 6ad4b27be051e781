//! `SharedPolicy` on Redis and on PostgreSQL, with two (and three) layer
//! instances, each with store clients of its own, as nodes of one app: a
//! change on A bites on B within the stated bound, a node started after the
//! change loads it, two admins changing at once give one winner and one
//! typed conflict, and a node cut off from the store keeps the policies it
//! knows and catches up when it is back.
//!
//! `scripts/test` starts the servers and sets `TSL_REDIS_URL` and
//! `TSL_POSTGRES_URL`; without them these tests fail saying what to do.
#![cfg(all(feature = "redis", feature = "postgres", feature = "conformance"))]

mod common;

use std::time::{Duration, Instant};

use common::policy_backend::{reached, Backend, BOUND};
use common::proxy::Proxy;
use tower_session_lifetime::policy::{PolicyChange, PolicyChangeError};
use tower_session_lifetime::shared_policy::{SharedPolicy, SharedPolicyError, POLL_INTERVAL};
use tower_session_lifetime::store::{PolicyStore, StoreError, StoredPolicies};
use tower_session_lifetime::{MemoryStore, Policy, RedisStore, SessionLifetimeLayer};

fn idle(minutes: u64) -> Policy {
    Policy::builder()
        .idle_timeout(Duration::from_secs(minutes * 60))
        .build()
        .unwrap()
}

/// A policy store client of `backend`'s, through `through` (the server's
/// address and a proxy's, the second replacing the first) when given.
fn store_through(backend: &Backend, through: Option<(&str, &str)>) -> Box<dyn PolicyStore> {
    match through {
        Some((server, proxy)) => backend.store_at(&backend.url().replace(server, proxy)),
        None => backend.store(),
    }
}

/// The server's address as `backend`'s URL spells it.
fn server(backend: &Backend) -> String {
    let rest = backend.url().split("://").nth(1).unwrap();
    let rest = rest.rsplit('@').next().unwrap();
    rest.split('/').next().unwrap().to_owned()
}

/// A node's policy store; without `notifications`, one that never tells
/// of a change (as if every notification were lost).
struct Boxed(Box<dyn PolicyStore>, bool);

#[async_trait::async_trait]
impl PolicyStore for Boxed {
    async fn load_policies(&self) -> Result<Option<StoredPolicies>, StoreError> {
        self.0.load_policies().await
    }

    async fn store_policies(&self, expected: u64, text: &str) -> Result<bool, StoreError> {
        self.0.store_policies(expected, text).await
    }

    async fn watch_policies(&self, changed: &(dyn Fn() + Send + Sync)) -> Result<(), StoreError> {
        if !self.1 {
            return Err(StoreError::unsupported("notifications, in this test"));
        }
        self.0.watch_policies(changed).await
    }
}

/// A node: a layer with `startup` as its policy, sharing it through
/// `backend`.
async fn node(backend: &Backend, startup: Policy, through: Option<(&str, &str)>) -> SharedPolicy {
    node_told(backend, startup, through, true).await
}

async fn node_told(
    backend: &Backend,
    startup: Policy,
    through: Option<(&str, &str)>,
    notifications: bool,
) -> SharedPolicy {
    // The sessions' store does not matter here: the policies are shared
    // through a store client of their own.
    let layer = SessionLifetimeLayer::new(MemoryStore::new()).with_policy(startup);
    SharedPolicy::start(
        layer.live_policy(),
        Boxed(store_through(backend, through), notifications),
    )
    .await
    .unwrap()
}

async fn a_change_on_one_node_reaches_the_others(backend: Backend) {
    let a = node(&backend, idle(30), None).await;
    let b = node(&backend, idle(45), None).await;
    assert_eq!(a.current().version(), 1, "the first node stored its own");
    assert_eq!(
        b.current().policies().default_policy(),
        &idle(30),
        "the second took the stored policies over its own"
    );
    let mut slowest = Duration::ZERO;
    for minutes in [10, 20, 5] {
        let seen = a.current().version();
        let changed = a
            .apply(
                PolicyChange::default_policy(idle(minutes))
                    .expecting(seen)
                    .by("admin on A"),
            )
            .await
            .unwrap();
        let took = reached(b.live(), changed.version()).await;
        slowest = slowest.max(took);
        assert_eq!(b.current().policies().default_policy(), &idle(minutes));
    }
    println!("a change reached the other node within {slowest:?} (bound {BOUND:?})");
    assert!(slowest < BOUND, "{slowest:?}");

    // A node started after the changes loads the latest.
    let c = node(&backend, idle(60), None).await;
    assert_eq!(c.current().version(), 4);
    assert_eq!(c.current().policies().default_policy(), &idle(5));

    // Shared, the policies change only through SharedPolicy.
    assert_eq!(
        c.live()
            .apply(PolicyChange::default_policy(idle(1)))
            .unwrap_err(),
        PolicyChangeError::Shared
    );
}

/// Every notification lost: the poll still brings a change within the
/// bound.
async fn without_notifications_the_poll_brings_the_change(backend: Backend) {
    let a = node(&backend, idle(30), None).await;
    let deaf = node_told(&backend, idle(30), None, false).await;
    let mut slowest = Duration::ZERO;
    for minutes in [12, 24] {
        let changed = a
            .apply(PolicyChange::default_policy(idle(minutes)).by("admin"))
            .await
            .unwrap();
        slowest = slowest.max(reached(deaf.live(), changed.version()).await);
    }
    println!("without notifications, a change arrived within {slowest:?} (poll {POLL_INTERVAL:?})");
    // The poll's interval and a round trip: under a second when idle; the
    // margin is for a loaded machine.
    assert!(slowest < POLL_INTERVAL + BOUND, "{slowest:?}");
    assert_eq!(deaf.current().policies().default_policy(), &idle(24));
}

async fn two_admins_at_once_give_one_winner_and_one_conflict(backend: Backend) {
    let a = node(&backend, idle(30), None).await;
    let b = node(&backend, idle(30), None).await;
    for round in 0..10 {
        let seen = a.current().version();
        reached(b.live(), seen).await;
        let (on_a, on_b) = tokio::join!(
            a.apply(
                PolicyChange::default_policy(idle(10 + round))
                    .expecting(seen)
                    .by("alice")
            ),
            b.apply(
                PolicyChange::default_policy(idle(40 + round))
                    .expecting(seen)
                    .by("bob")
            ),
        );
        let (winner, loser) = match (on_a, on_b) {
            (Ok(won), Err(lost)) | (Err(lost), Ok(won)) => (won, lost),
            other => panic!("round {round}: not one winner and one loser: {other:?}"),
        };
        assert!(
            matches!(
                loser,
                SharedPolicyError::Refused(PolicyChangeError::Conflict { .. })
            ),
            "{loser}"
        );
        reached(a.live(), winner.version()).await;
        reached(b.live(), winner.version()).await;
        assert_eq!(
            a.current().policies().default_policy(),
            b.current().policies().default_policy()
        );
        assert_eq!(
            a.current().policies().default_policy(),
            winner.policies().default_policy(),
            "the winner's change is the one in force"
        );
    }
}

async fn a_node_cut_off_keeps_its_policies_and_catches_up(backend: Backend) {
    let server = server(&backend);
    let mut proxy = Proxy::start(server.parse().unwrap()).await;
    let proxy_address = proxy.address().to_string();
    let a = node(&backend, idle(30), None).await;
    let cut = node(&backend, idle(30), Some((&server, &proxy_address))).await;
    proxy.cut().await;
    let changed = a
        .apply(PolicyChange::default_policy(idle(7)).by("admin"))
        .await
        .unwrap();
    tokio::time::sleep(3 * POLL_INTERVAL).await;
    assert_eq!(
        cut.current().policies().default_policy(),
        &idle(30),
        "cut off, it keeps what it knew"
    );
    let err = cut
        .apply(PolicyChange::default_policy(idle(9)).by("admin on the cut node"))
        .await
        .unwrap_err();
    assert!(matches!(err, SharedPolicyError::Store(_)), "{err}");
    proxy.restore();
    reached(cut.live(), changed.version()).await;
    assert_eq!(cut.current().policies().default_policy(), &idle(7));
}

crate::on_both_stores!(
    a_change_on_one_node_reaches_the_others =>
    redis_a_change_on_one_node_reaches_the_others,
    postgres_a_change_on_one_node_reaches_the_others
);

crate::on_both_stores!(
    two_admins_at_once_give_one_winner_and_one_conflict =>
    redis_two_admins_at_once_give_one_winner_and_one_conflict,
    postgres_two_admins_at_once_give_one_winner_and_one_conflict
);

crate::on_both_stores!(
    a_node_cut_off_keeps_its_policies_and_catches_up =>
    redis_a_node_cut_off_keeps_its_policies_and_catches_up,
    postgres_a_node_cut_off_keeps_its_policies_and_catches_up
);

crate::on_both_stores!(
    without_notifications_the_poll_brings_the_change =>
    redis_without_notifications_the_poll_brings_the_change,
    postgres_without_notifications_the_poll_brings_the_change
);

/// A node that changed its policies on its own before it started sharing
/// them takes the stored ones, whatever its own version, and then every
/// later change.
async fn a_node_changed_alone_takes_the_stored_policies_at_start(backend: Backend) {
    let a = node(&backend, idle(30), None).await;
    let stored = a
        .apply(PolicyChange::default_policy(idle(10)).by("admin on A"))
        .await
        .unwrap();
    assert_eq!(stored.version(), 2);

    let layer = SessionLifetimeLayer::new(MemoryStore::new()).with_policy(idle(45));
    let alone = layer.live_policy();
    for minutes in [40, 35, 25] {
        alone
            .apply(PolicyChange::default_policy(idle(minutes)).by("admin on B, alone"))
            .unwrap();
    }
    assert_eq!(alone.current().version(), 3, "ahead of the store's version");
    let b = SharedPolicy::start(alone, Boxed(backend.store(), true))
        .await
        .unwrap();
    assert_eq!(b.current().version(), 2);
    assert_eq!(b.current().policies().default_policy(), &idle(10));

    let next = a
        .apply(PolicyChange::default_policy(idle(20)).by("admin on A"))
        .await
        .unwrap();
    reached(b.live(), next.version()).await;
    assert_eq!(b.current().policies().default_policy(), &idle(20));
}

/// Limits finer than a millisecond reach the other nodes exactly.
async fn limits_finer_than_a_millisecond_arrive_exactly(backend: Backend) {
    let a = node(&backend, idle(30), None).await;
    let b = node(&backend, idle(30), None).await;
    let fine = Policy::builder()
        .idle_timeout(Duration::new(1_799, 999_999_999))
        .absolute_timeout(Duration::from_nanos(7_200_000_000_001))
        .remember_me_period(Duration::from_micros(86_400_000_001))
        .touch_granularity(Duration::from_nanos(1_500_001))
        .build()
        .unwrap();
    let changed = a
        .apply(PolicyChange::default_policy(fine).by("admin"))
        .await
        .unwrap();
    reached(b.live(), changed.version()).await;
    assert_eq!(b.current().policies().default_policy(), &fine);
    let c = node(&backend, idle(60), None).await;
    assert_eq!(
        c.current().policies().default_policy(),
        &fine,
        "a node started later"
    );
}

/// A start that fails leaves the node's policies its own to change.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_start_that_fails_leaves_the_policies_changeable_here() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = closed.local_addr().unwrap();
    drop(closed);
    let layer = SessionLifetimeLayer::new(MemoryStore::new()).with_policy(idle(30));
    let live = layer.live_policy();
    let unreachable = RedisStore::open(&format!("redis://{address}")).unwrap();
    SharedPolicy::start(live.clone(), unreachable)
        .await
        .expect_err("no server there");
    let changed = live
        .apply(PolicyChange::default_policy(idle(10)).by("admin"))
        .expect("not shared: the start failed");
    assert_eq!(changed.policies().default_policy(), &idle(10));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_versions_past_two_to_the_53_count_exactly_and_the_last_is_refused() {
    let backend = Backend::redis();
    let a = node(&backend, idle(30), None).await;
    // Past 2^53, where a double no longer counts by one.
    backend.forge_version("9007199254740993").await;
    a.refresh().await.unwrap();
    assert_eq!(a.current().version(), 9_007_199_254_740_993);
    for expected in [9_007_199_254_740_994, 9_007_199_254_740_995] {
        let changed = a
            .apply(PolicyChange::default_policy(idle(20)).by("admin"))
            .await
            .unwrap();
        assert_eq!(changed.version(), expected);
        let stored = backend.store().load_policies().await.unwrap().unwrap();
        assert_eq!(stored.version, expected, "stored as counted");
    }

    // The last version there is: refused, typed, nothing written.
    let b = node(&backend, idle(30), None).await;
    backend.forge_version(&u64::MAX.to_string()).await;
    b.refresh().await.unwrap();
    let err = b
        .apply(PolicyChange::default_policy(idle(5)).by("admin"))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            SharedPolicyError::Refused(PolicyChangeError::VersionsExhausted)
        ),
        "{err}"
    );
    let stored = backend.store().load_policies().await.unwrap().unwrap();
    assert_eq!(stored.version, u64::MAX);
    assert_eq!(b.current().policies().default_policy(), &idle(20));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_the_largest_version_is_refused_and_a_negative_one_is_corrupt() {
    let backend = Backend::postgres().await;
    let a = node(&backend, idle(30), None).await;
    backend.forge_version(&i64::MAX.to_string()).await;
    a.refresh().await.unwrap();
    let err = a
        .apply(PolicyChange::default_policy(idle(5)).by("admin"))
        .await
        .unwrap_err();
    assert!(matches!(err, SharedPolicyError::Store(_)), "{err}");
    let stored = backend.store().load_policies().await.unwrap().unwrap();
    assert_eq!(stored.version, i64::MAX as u64, "nothing written");

    backend.forge_version("-3").await;
    let err = backend.store().load_policies().await.unwrap_err();
    assert_eq!(
        err.kind(),
        tower_session_lifetime::store::StoreErrorKind::Corrupt,
        "{err}"
    );
    let layer = SessionLifetimeLayer::new(MemoryStore::new()).with_policy(idle(30));
    SharedPolicy::start(layer.live_policy(), Boxed(backend.store(), true))
        .await
        .expect_err("a corrupt version is not taken");
    layer
        .live_policy()
        .apply(PolicyChange::default_policy(idle(10)).by("admin"))
        .expect("not shared: the start failed");
}

crate::on_both_stores!(
    a_node_changed_alone_takes_the_stored_policies_at_start =>
    redis_a_node_changed_alone_takes_the_stored_policies_at_start,
    postgres_a_node_changed_alone_takes_the_stored_policies_at_start
);

crate::on_both_stores!(
    limits_finer_than_a_millisecond_arrive_exactly =>
    redis_limits_finer_than_a_millisecond_arrive_exactly,
    postgres_limits_finer_than_a_millisecond_arrive_exactly
);

/// When the stored policies vanish, the running nodes store the policies
/// in force again (one of them first, at version 1) and go on changing
/// them, instead of meeting a conflict on every change.
async fn stored_policies_that_vanish_are_stored_again(backend: Backend) {
    let a = node(&backend, idle(30), None).await;
    let b = node(&backend, idle(30), None).await;
    let changed = a
        .apply(PolicyChange::default_policy(idle(12)).by("admin"))
        .await
        .unwrap();
    reached(b.live(), changed.version()).await;
    backend.remove().await;
    let start = Instant::now();
    let stored = loop {
        if let Some(stored) = backend.store().load_policies().await.unwrap() {
            break stored;
        }
        assert!(
            start.elapsed() < 10 * BOUND,
            "no node stored its policies again"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    assert_eq!(stored.version, 1);
    // Both nodes at version 1, with the policies they had in force.
    for node in [&a, &b] {
        while node.current().version() != 1 {
            assert!(
                start.elapsed() < 10 * BOUND,
                "at {}",
                node.current().version()
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert_eq!(node.current().policies().default_policy(), &idle(12));
    }
    let next = b
        .apply(
            PolicyChange::default_policy(idle(8))
                .expecting(1)
                .by("admin"),
        )
        .await
        .unwrap();
    assert_eq!(next.version(), 2);
    reached(a.live(), 2).await;
    assert_eq!(a.current().policies().default_policy(), &idle(8));
}

crate::on_both_stores!(
    stored_policies_that_vanish_are_stored_again =>
    redis_stored_policies_that_vanish_are_stored_again,
    postgres_stored_policies_that_vanish_are_stored_again
);
