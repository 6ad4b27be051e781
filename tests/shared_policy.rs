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

use common::proxy::Proxy;
use tower_session_lifetime::policy::{PolicyChange, PolicyChangeError};
use tower_session_lifetime::shared_policy::{SharedPolicy, SharedPolicyError, POLL_INTERVAL};
use tower_session_lifetime::store::conformance::fresh_key;
use tower_session_lifetime::store::{PolicyStore, StoreError, StoredPolicies};
use tower_session_lifetime::{
    MemoryStore, Policy, PostgresStore, RedisStore, SessionLifetimeLayer,
};

/// How long a change may take to reach another node: the bound
/// `SharedPolicy` states (a notification, else a poll), with room for a
/// loaded machine.
const BOUND: Duration = Duration::from_secs(1);

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!("{name} is not set: run the tests with scripts/test, which starts the servers")
    })
}

fn idle(minutes: u64) -> Policy {
    Policy::builder()
        .idle_timeout(Duration::from_secs(minutes * 60))
        .build()
        .unwrap()
}

/// Where one test's nodes keep their policies: a Redis prefix or a
/// PostgreSQL table of its own.
#[derive(Clone)]
enum Backend {
    Redis { url: String, prefix: String },
    Postgres { url: String, table: String },
}

impl Backend {
    async fn redis() -> Self {
        Backend::Redis {
            url: env("TSL_REDIS_URL"),
            prefix: format!("tsl-policy-{}:", &fresh_key().to_hex()[..12]),
        }
    }

    async fn postgres() -> Self {
        let backend = Backend::Postgres {
            url: env("TSL_POSTGRES_URL"),
            table: format!("tsl_policy_{}", &fresh_key().to_hex()[..12]),
        };
        backend.postgres_store(None).migrate().await.unwrap();
        backend
    }

    fn postgres_store(&self, through: Option<&str>) -> PostgresStore {
        let Backend::Postgres { url, table } = self else {
            unreachable!()
        };
        let url = through.unwrap_or(url);
        PostgresStore::open(url).unwrap().with_table(table).unwrap()
    }

    /// A policy store client of its own, through `through` (an address
    /// replacing the server's) when given.
    fn store(&self, through: Option<(&str, &str)>) -> Box<dyn PolicyStore> {
        let rewrite = |url: &str| match through {
            Some((server, proxy)) => url.replace(server, proxy),
            None => url.to_owned(),
        };
        match self {
            Backend::Redis { url, prefix } => Box::new(
                RedisStore::open(&rewrite(url))
                    .unwrap()
                    .with_prefix(prefix.clone()),
            ),
            Backend::Postgres { url, .. } => Box::new(self.postgres_store(Some(&rewrite(url)))),
        }
    }

    /// The server's address as its URL spells it.
    fn server(&self) -> String {
        let url = match self {
            Backend::Redis { url, .. } | Backend::Postgres { url, .. } => url,
        };
        let rest = url.split("://").nth(1).unwrap();
        let rest = rest.rsplit('@').next().unwrap();
        rest.split('/').next().unwrap().to_owned()
    }
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
        Boxed(backend.store(through), notifications),
    )
    .await
    .unwrap()
}

/// Waits until `node` has version `version`; how long it took.
async fn reached(node: &SharedPolicy, version: u64) -> Duration {
    let start = Instant::now();
    while node.current().version() < version {
        assert!(
            start.elapsed() < 10 * BOUND,
            "version {version} did not arrive (at {})",
            node.current().version()
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    start.elapsed()
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
        let took = reached(&b, changed.version()).await;
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
        slowest = slowest.max(reached(&deaf, changed.version()).await);
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
        reached(&b, seen).await;
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
        reached(&a, winner.version()).await;
        reached(&b, winner.version()).await;
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
    let server = backend.server();
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
    reached(&cut, changed.version()).await;
    assert_eq!(cut.current().policies().default_policy(), &idle(7));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_a_change_on_one_node_reaches_the_others() {
    a_change_on_one_node_reaches_the_others(Backend::redis().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_a_change_on_one_node_reaches_the_others() {
    a_change_on_one_node_reaches_the_others(Backend::postgres().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_two_admins_at_once_give_one_winner_and_one_conflict() {
    two_admins_at_once_give_one_winner_and_one_conflict(Backend::redis().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_two_admins_at_once_give_one_winner_and_one_conflict() {
    two_admins_at_once_give_one_winner_and_one_conflict(Backend::postgres().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_a_node_cut_off_keeps_its_policies_and_catches_up() {
    a_node_cut_off_keeps_its_policies_and_catches_up(Backend::redis().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_a_node_cut_off_keeps_its_policies_and_catches_up() {
    a_node_cut_off_keeps_its_policies_and_catches_up(Backend::postgres().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_without_notifications_the_poll_brings_the_change() {
    without_notifications_the_poll_brings_the_change(Backend::redis().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_without_notifications_the_poll_brings_the_change() {
    without_notifications_the_poll_brings_the_change(Backend::postgres().await).await;
}
