//! An independent reviewer's attack on the live-policy promises
//! (`LivePolicy`, `SharedPolicy`, `PolicyStore`): races of changes with
//! requests, renewals, tenants and route groups; changes on two nodes while
//! a third starts; nodes whose tenant lists differ; and forged stored
//! policies in Redis and PostgreSQL.
//!
//! Needs `TSL_REDIS_URL` and `TSL_POSTGRES_URL` (as `tests/shared_policy.rs`).
#![cfg(all(
    feature = "redis",
    feature = "postgres",
    feature = "conformance",
    feature = "axum"
))]

mod common;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use axum::body::Body;
use common::captured::Captured;
use common::policy_backend::{reached, Backend, BOUND};
use common::{set_cookie, TestApp, HOUR, MINUTE};
use http::{header, Request, StatusCode};
use tower_session_lifetime::observe::SessionMetrics;
use tower_session_lifetime::policy::{
    LivePolicy, PolicyChange, PolicyChangeError, PolicyError, TenantFrom, Tightening,
};
use tower_session_lifetime::rejection::RejectReason;
use tower_session_lifetime::shared_policy::{SharedPolicy, SharedPolicyError, POLL_INTERVAL};
use tower_session_lifetime::store::{PolicyStore, StoreError, StoredPolicies};
use tower_session_lifetime::{MemoryStore, Policies, Policy, RedisStore, SessionLifetimeLayer};

const DAY: Duration = Duration::from_secs(24 * 3600);

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

fn idle(idle: Duration) -> Policy {
    Policy::builder()
        .idle_timeout(idle)
        .absolute_timeout(8 * HOUR)
        .build()
        .unwrap()
}

fn minutes(m: u64) -> Policy {
    idle(Duration::from_secs(m * 60))
}

fn app_with(
    configure: impl FnOnce(SessionLifetimeLayer) -> SessionLifetimeLayer,
) -> (TestApp, LivePolicy) {
    let live = Arc::new(OnceLock::new());
    let slot = Arc::clone(&live);
    let app = TestApp::configured(move |layer| {
        let layer = configure(layer);
        slot.set(layer.live_policy()).unwrap();
        layer
    });
    let live = live.get().unwrap().clone();
    (app, live)
}

fn set(live: &LivePolicy, change: PolicyChange) {
    live.apply(change.by("attacker test")).unwrap();
}

/// `GET path` with `cookie`, on host `host` when given; the rejection
/// reason, `None` when admitted.
async fn reason_at(
    app: &TestApp,
    path: &str,
    host: Option<&str>,
    cookie: &str,
) -> Option<RejectReason> {
    let mut builder = Request::get(path).header(header::COOKIE, cookie);
    if let Some(host) = host {
        builder = builder.header(header::HOST, host);
    }
    let response = app.send(builder.body(Body::empty()).unwrap()).await;
    response.extensions().get::<RejectReason>().copied()
}

async fn reason(app: &TestApp, cookie: &str) -> Option<RejectReason> {
    reason_at(app, "/me", None, cookie).await
}

fn while_the_store_answers(app: &TestApp, change: impl FnOnce() + Send + 'static) {
    app.store.sync_reads.store(false, Ordering::SeqCst);
    *app.store.while_next_load.lock().unwrap() = Some(Box::new(change));
}

fn sync_reads(app: &TestApp) {
    app.store.sync_reads.store(true, Ordering::SeqCst);
}

// ---------------------------------------------------------------------------
// Shared-store plumbing (as tests/shared_policy.rs)
// ---------------------------------------------------------------------------

/// A policy store that delays its acknowledgement of a stored change by
/// `ack_delay` (a slow link, a descheduled node): the change is stored and
/// notified, and only then does the caller hear of it.
struct Wrapped {
    inner: Box<dyn PolicyStore>,
    ack_delay: Duration,
}

#[async_trait::async_trait]
impl PolicyStore for Wrapped {
    async fn load_policies(&self) -> Result<Option<StoredPolicies>, StoreError> {
        self.inner.load_policies().await
    }

    async fn store_policies(&self, expected: u64, text: &str) -> Result<bool, StoreError> {
        let stored = self.inner.store_policies(expected, text).await;
        if matches!(stored, Ok(true)) && !self.ack_delay.is_zero() {
            tokio::time::sleep(self.ack_delay).await;
        }
        stored
    }

    async fn watch_policies(&self, changed: &(dyn Fn() + Send + Sync)) -> Result<(), StoreError> {
        self.inner.watch_policies(changed).await
    }
}

async fn start_node(backend: &Backend, policies: Policies) -> SharedPolicy {
    let layer = SessionLifetimeLayer::new(MemoryStore::new()).with_policies(policies);
    SharedPolicy::start(layer.live_policy(), backend.client())
        .await
        .unwrap()
}

const FORMAT: &str = "tower-session-lifetime policies 1";

fn lossy(fields: &[(String, Vec<u8>)]) -> Vec<(String, String)> {
    fields
        .iter()
        .map(|(name, value)| (name.clone(), String::from_utf8_lossy(value).into_owned()))
        .collect()
}

fn text_of(lines: &[&str]) -> Vec<u8> {
    let mut text = format!("{FORMAT}\n");
    for line in lines {
        text.push_str(line);
        text.push('\n');
    }
    text.into_bytes()
}

// ---------------------------------------------------------------------------
// Local (one layer) races and rules
// ---------------------------------------------------------------------------

/// Eight threads hammer `apply` with `expecting(current)`: each version is
/// made once, every success is counted in the metrics, and the version in
/// force equals the number of successes.
#[test]
fn concurrent_applies_make_each_version_once_and_each_is_counted() {
    let metrics = SessionMetrics::new();
    let counted = metrics.clone();
    let (_app, live) = app_with(move |layer| layer.with_policy(minutes(30)).with_metrics(counted));
    let successes = AtomicU64::new(0);
    let conflicts = AtomicU64::new(0);
    std::thread::scope(|scope| {
        for admin in 0..8u64 {
            let (live, successes, conflicts) = (live.clone(), &successes, &conflicts);
            scope.spawn(move || {
                for round in 0..200u64 {
                    let seen = live.current().version();
                    let change = PolicyChange::default_policy(minutes(5 + (admin + round) % 50))
                        .expecting(seen)
                        .by(format!("admin {admin}"));
                    match live.apply(change) {
                        Ok(now) => {
                            assert_eq!(now.version(), seen + 1);
                            successes.fetch_add(1, Ordering::SeqCst);
                        }
                        Err(PolicyChangeError::Conflict { expected, current }) => {
                            assert_eq!(expected, seen);
                            assert!(current > seen, "{current} > {seen}");
                            conflicts.fetch_add(1, Ordering::SeqCst);
                        }
                        Err(other) => panic!("{other}"),
                    }
                }
            });
        }
    });
    let successes = successes.load(Ordering::SeqCst);
    assert_eq!(successes + conflicts.load(Ordering::SeqCst), 1600);
    assert_eq!(live.current().version(), successes);
    assert_eq!(metrics.snapshot().policy_changes, successes);
}

/// Requests race a thread that flips a tenant's idle timeout between 10
/// and 60 minutes; sessions are snapshotted with 60 (the default tenant's,
/// never changed) and each request comes 30 minutes after login. When no
/// change landed during a request, it must be judged by the policy in
/// force: refused under 10, admitted under 60.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_racing_tenant_changes_are_judged_by_the_policy_in_force() {
    let policies = Policies::builder(minutes(60))
        .tenants_from(TenantFrom::Host)
        .tenant("flip.example", minutes(60))
        .build()
        .unwrap();
    let (app, live) = app_with(move |layer| layer.with_policies(policies));
    let stop = Arc::new(AtomicBool::new(false));
    let flipper = {
        let (live, stop) = (live.clone(), Arc::clone(&stop));
        std::thread::spawn(move || {
            let mut short = true;
            while !stop.load(Ordering::SeqCst) {
                let policy = if short { minutes(10) } else { minutes(60) };
                live.apply(PolicyChange::tenant("flip.example", policy).by("flipper"))
                    .unwrap();
                short = !short;
                std::thread::sleep(Duration::from_micros(300));
            }
        })
    };
    let (mut judged, mut refused, mut admitted) = (0, 0, 0);
    for round in 0..300 {
        let cookie = app.login(&format!("user{round}"), false).await;
        app.advance(30 * MINUTE);
        if round % 2 == 0 {
            // The networked path: the layer waits for the store.
            app.store.sync_reads.store(false, Ordering::SeqCst);
        } else {
            sync_reads(&app);
        }
        let before = live.current();
        let got = reason_at(&app, "/me", Some("flip.example"), &cookie).await;
        let after = live.current();
        if before.version() != after.version() {
            continue;
        }
        judged += 1;
        let in_force = before
            .policies()
            .tenant_policy("flip.example")
            .unwrap()
            .idle_timeout();
        if in_force == 10 * MINUTE {
            refused += 1;
            assert_eq!(got, Some(RejectReason::IdleTimeout), "round {round}");
        } else {
            admitted += 1;
            assert_eq!(got, None, "round {round}");
        }
    }
    stop.store(true, Ordering::SeqCst);
    flipper.join().unwrap();
    println!("judged {judged}: {refused} refused, {admitted} admitted");
}

/// A tenant tightened while one of its requests waits for the store: that
/// request keeps the limits it arrived under, the next one bites; another
/// tenant's and the default's sessions are not touched by it; a later
/// loosening does not lengthen the tenant's existing sessions.
#[tokio::test]
async fn a_tenant_changed_while_the_store_answers_bites_from_its_next_request_only() {
    let policies = Policies::builder(minutes(30))
        .tenants_from(TenantFrom::Host)
        .tenant("a.example", minutes(30))
        .tenant("b.example", minutes(30))
        .build()
        .unwrap();
    let (app, live) = app_with(move |layer| layer.with_policies(policies));
    let cookie = app.login("alice", false).await;
    app.advance(20 * MINUTE);
    let tighten = live.clone();
    while_the_store_answers(&app, move || {
        set(&tighten, PolicyChange::tenant("a.example", minutes(10)))
    });
    assert_eq!(
        reason_at(&app, "/me", Some("a.example"), &cookie).await,
        None,
        "arrived under 30 minutes"
    );
    assert!(app.store.while_next_load.lock().unwrap().is_none());
    sync_reads(&app);
    app.advance(15 * MINUTE);
    assert_eq!(
        reason_at(&app, "/me", Some("b.example"), &cookie).await,
        None,
        "b.example still has 30 minutes"
    );
    app.advance(15 * MINUTE);
    assert_eq!(
        reason_at(&app, "/me", Some("A.Example:8443"), &cookie).await,
        Some(RejectReason::IdleTimeout),
        "a.example's 10 minutes bite (host in any case, with a port)"
    );

    // A loosening of a.example applies only to sessions created after it.
    let old = app.login("bob", false).await;
    set(&live, PolicyChange::tenant("a.example", minutes(90)));
    let new = app
        .send(
            Request::post("/login?user=carol")
                .header(header::HOST, "a.example")
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    let new = set_cookie(&new).unwrap();
    let new = format!("{}={}", new.name(), new.value());
    app.advance(45 * MINUTE);
    assert_eq!(
        reason_at(&app, "/me", Some("a.example"), &old).await,
        Some(RejectReason::IdleTimeout),
        "created under 30 minutes"
    );
    assert_eq!(
        reason_at(&app, "/me", Some("a.example"), &new).await,
        None,
        "created under 90"
    );
}

/// A route group stays a tightening through tenant changes, for ordinary
/// and remember-me sessions, even when the change lands while a request
/// in the group waits for the store; and a change that would lengthen it
/// is refused with nothing changed.
#[tokio::test]
async fn a_route_group_stays_a_tightening_through_changes_and_races() {
    let remembered = |idle_minutes: u64, period: Duration| {
        Policy::builder()
            .idle_timeout(Duration::from_secs(idle_minutes * 60))
            .remember_me_period(period)
            .absolute_timeout(30 * DAY)
            .build()
            .unwrap()
    };
    let policies = Policies::builder(remembered(30, DAY))
        .route("/admin", Tightening::new().idle_timeout(20 * MINUTE))
        .build()
        .unwrap();
    let (app, live) = app_with(move |layer| layer.with_policies(policies));

    // Loosened: the group keeps its 20 minutes, for remember-me too.
    set(
        &live,
        PolicyChange::default_policy(remembered(120, 7 * DAY)),
    );
    let plain = app.login("alice", false).await;
    let remember = app.login("bob", true).await;
    app.advance(21 * MINUTE);
    assert_eq!(
        reason_at(&app, "/admin/users", None, &plain).await,
        Some(RejectReason::IdleTimeout)
    );
    assert_eq!(
        reason_at(&app, "/admin/users", None, &remember).await,
        Some(RejectReason::IdleTimeout),
        "a route group's idle timeout caps remember-me sessions"
    );

    // Tightened below the group while an admin request waits: refused,
    // typed, nothing changed.
    let cookie = app.login("carol", false).await;
    app.advance(15 * MINUTE);
    let tighten = live.clone();
    let refused = Arc::new(Mutex::new(None));
    let seen = Arc::clone(&refused);
    while_the_store_answers(&app, move || {
        *seen.lock().unwrap() = Some(
            tighten
                .apply(PolicyChange::default_policy(remembered(10, DAY)).by("admin"))
                .unwrap_err(),
        );
    });
    assert_eq!(reason_at(&app, "/admin/x", None, &cookie).await, None);
    assert!(matches!(
        refused.lock().unwrap().take(),
        Some(PolicyChangeError::Invalid(
            PolicyError::LongerThanEnclosing { .. }
        ))
    ));
    assert_eq!(
        live.current().version(),
        1,
        "the refused change changed nothing"
    );
    sync_reads(&app);

    // Tightened to exactly the group's limit, during an admin request:
    // that one passes, the next admin request after 20 minutes fails and
    // so does an ordinary one.
    let tighten = live.clone();
    app.advance(5 * MINUTE);
    while_the_store_answers(&app, move || {
        set(&tighten, PolicyChange::default_policy(remembered(20, DAY)))
    });
    assert_eq!(reason_at(&app, "/admin/x", None, &cookie).await, None);
    sync_reads(&app);
    app.advance(20 * MINUTE);
    assert_eq!(
        reason_at(&app, "/me", None, &cookie).await,
        Some(RejectReason::IdleTimeout)
    );
}

/// A renewal (new ID) made after a loosening does not refresh the
/// session's snapshot, and a renewal racing a tightening is judged by the
/// policy in force when the request arrived; the tightening bites next.
#[tokio::test]
async fn renewal_keeps_the_snapshot_through_loosening_and_races_a_tightening() {
    let renewing = |idle_minutes: u64, absolute: Duration| {
        Policy::builder()
            .idle_timeout(Duration::from_secs(idle_minutes * 60))
            .absolute_timeout(absolute)
            .renewal_interval(10 * MINUTE)
            .build()
            .unwrap()
    };
    let (app, live) = app_with(move |layer| layer.with_policy(renewing(30, 2 * HOUR)));
    let cookie = app.login("alice", false).await;
    set(&live, PolicyChange::default_policy(renewing(60, DAY)));
    app.advance(11 * MINUTE);
    let response = app.me(&cookie).await;
    assert_eq!(response.status(), StatusCode::OK);
    let renewed = set_cookie(&response).expect("renewed: a new ID");
    let renewed = format!("{}={}", renewed.name(), renewed.value());
    assert_ne!(renewed, cookie);
    app.advance(45 * MINUTE);
    assert_eq!(
        reason(&app, &renewed).await,
        Some(RejectReason::IdleTimeout),
        "the renewed session keeps its 30 minutes"
    );

    // The absolute deadline (2 h from login) survives renewals and a
    // longer absolute timeout set after the login.
    let (app2, live2) = app_with(move |layer| layer.with_policy(renewing(30, 2 * HOUR)));
    let cookie = app2.login("bob", false).await;
    set(&live2, PolicyChange::default_policy(renewing(60, DAY)));
    let app_main = app;
    let app = app2;
    let mut current = cookie;
    for _ in 0..10 {
        app.advance(11 * MINUTE);
        let response = app.me(&current).await;
        assert_eq!(response.status(), StatusCode::OK);
        if let Some(set) = set_cookie(&response) {
            current = format!("{}={}", set.name(), set.value());
        }
    }
    app.advance(11 * MINUTE); // 121 minutes since login
    assert_eq!(
        reason(&app, &current).await,
        Some(RejectReason::AbsoluteTimeout)
    );
    let app = app_main;

    // A renewal due while a tightening lands during the store's answer.
    set(&live, PolicyChange::default_policy(renewing(30, 8 * HOUR)));
    let cookie = app.login("carol", false).await;
    app.advance(20 * MINUTE);
    let tighten = live.clone();
    while_the_store_answers(&app, move || {
        set(
            &tighten,
            PolicyChange::default_policy(renewing(15, 8 * HOUR)),
        )
    });
    let response = app.me(&cookie).await;
    assert_eq!(
        response.status(),
        StatusCode::OK,
        "arrived under 30 minutes"
    );
    let next = set_cookie(&response)
        .map(|set| format!("{}={}", set.name(), set.value()))
        .unwrap_or(cookie);
    sync_reads(&app);
    app.advance(16 * MINUTE);
    assert_eq!(
        reason(&app, &next).await,
        Some(RejectReason::IdleTimeout),
        "15 minutes bite at the next request"
    );
}

/// Switching remember-me on after a loosening keeps the session's
/// snapshot: the longer remember-me period and absolute timeout apply only
/// to sessions created after the change.
#[tokio::test]
async fn remember_me_switched_on_after_a_loosening_keeps_the_snapshot() {
    let policy = |period: Duration, absolute: Duration| {
        Policy::builder()
            .idle_timeout(30 * MINUTE)
            .remember_me_period(period)
            .absolute_timeout(absolute)
            .build()
            .unwrap()
    };
    let (app, live) = app_with(move |layer| layer.with_policy(policy(DAY, 3 * DAY)));
    let cookie = app.login("alice", false).await;
    set(
        &live,
        PolicyChange::default_policy(policy(7 * DAY, 30 * DAY)),
    );
    let response = app
        .request("POST", "/remember?on=true", Some(&cookie))
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let cookie = set_cookie(&response)
        .filter(|set| !set.value().is_empty())
        .map(|set| format!("{}={}", set.name(), set.value()))
        .unwrap_or(cookie);
    app.advance(DAY + HOUR);
    assert_eq!(
        reason(&app, &cookie).await,
        Some(RejectReason::IdleTimeout),
        "the remember-me period of the snapshot (1 day), not 7"
    );

    let cookie = app.login("bob", true).await;
    for _ in 0..3 {
        app.advance(20 * HOUR);
        assert_eq!(reason(&app, &cookie).await, None);
    }
    app.advance(20 * HOUR); // 80 h since login, past the 72 h snapshot
    assert!(
        reason(&app, &cookie).await.is_none(),
        "bob logged in after the change: 30 days"
    );
}

/// Every change made here emits `policy changed` with its actor and is
/// counted; a refused change does neither. Also through `SharedPolicy`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_change_is_logged_and_counted_locally_and_shared() {
    let captured = Captured::global();
    let metrics = SessionMetrics::new();
    let layer = SessionLifetimeLayer::new(MemoryStore::new())
        .with_policy(minutes(30))
        .with_metrics(metrics.clone());
    let live = layer.live_policy();
    live.apply(PolicyChange::default_policy(minutes(20)).by("actor-local-7f3a"))
        .unwrap();
    live.apply(
        PolicyChange::default_policy(minutes(25))
            .expecting(0)
            .by("actor-refused-7f3a"),
    )
    .unwrap_err();
    assert_eq!(metrics.snapshot().policy_changes, 1);
    assert_eq!(
        captured
            .lines_with(&["policy changed", "actor-local-7f3a"])
            .len(),
        1
    );
    assert!(captured.lines_with(&["actor-refused-7f3a"]).is_empty());

    let backend = Backend::redis();
    let shared = SharedPolicy::start(live.clone(), backend.client())
        .await
        .unwrap();
    let other = start_node(&backend, Policies::single(minutes(30))).await;
    let seen = shared.current().version();
    shared
        .apply(
            PolicyChange::default_policy(minutes(15))
                .expecting(seen)
                .by("actor-shared-7f3a"),
        )
        .await
        .unwrap();
    other
        .apply(
            PolicyChange::default_policy(minutes(16))
                .expecting(seen)
                .by("actor-conflict-7f3a"),
        )
        .await
        .unwrap_err();
    assert_eq!(metrics.snapshot().policy_changes, 2);
    assert_eq!(
        captured
            .lines_with(&["policy changed", "actor-shared-7f3a"])
            .len(),
        1
    );
    assert!(captured
        .lines_with(&["policy changed", "actor-conflict-7f3a"])
        .is_empty());
}

// ---------------------------------------------------------------------------
// Shared policies: nodes, races, exactness
// ---------------------------------------------------------------------------

/// Node A lists tenants `x.example` and `y.example`; node B (an older
/// deploy) lists only `x.example`. A change to `y.example` made on A must
/// stay stored when B changes the default, so that a node C started later
/// (listing both) loads it.
async fn a_tenant_one_node_does_not_list_survives_its_changes(backend: Backend) {
    let both = || {
        Policies::builder(minutes(30))
            .tenants_from(TenantFrom::Host)
            .tenant("x.example", minutes(30))
            .tenant("y.example", minutes(30))
            .build()
            .unwrap()
    };
    let only_x = Policies::builder(minutes(30))
        .tenants_from(TenantFrom::Host)
        .tenant("x.example", minutes(30))
        .build()
        .unwrap();
    let a = start_node(&backend, both()).await;
    let b = start_node(&backend, only_x).await;
    let changed = a
        .apply(PolicyChange::tenant("y.example", minutes(7)).by("admin on A"))
        .await
        .unwrap();
    reached(b.live(), changed.version()).await;
    let changed = b
        .apply(PolicyChange::default_policy(minutes(20)).by("admin on B"))
        .await
        .unwrap();
    reached(a.live(), changed.version()).await;
    assert_eq!(
        a.current().policies().tenant_policy("y.example"),
        Some(&minutes(7)),
        "A keeps its y.example change"
    );
    let c = start_node(&backend, both()).await;
    assert_eq!(c.current().version(), changed.version());
    assert_eq!(
        c.current().policies().default_policy(),
        &minutes(20),
        "C took the stored default"
    );
    assert_eq!(
        c.current().policies().tenant_policy("y.example"),
        Some(&minutes(7)),
        "the y.example change A made is stored and loaded by a node started later \
         (stored text now: {:?})",
        backend.stored().await.map(|stored| stored.text)
    );
}

crate::on_both_stores!(
    a_tenant_one_node_does_not_list_survives_its_changes =>
    redis_a_tenant_one_node_does_not_list_survives_its_changes,
    postgres_a_tenant_one_node_does_not_list_survives_its_changes
);

/// Tenant names that need escaping (header tenants keep their case,
/// spaces, tabs, `%`, newlines, non-ASCII) reach another node exactly.
async fn odd_tenant_names_arrive_exactly(backend: Backend) {
    let names = [
        "Mixed Case",
        "tab\there",
        "per%cent",
        "new\nline",
        "tenant default",
        "",
        "élan",
    ];
    let build = || {
        let mut builder = Policies::builder(minutes(30)).tenants_from(TenantFrom::Header(
            http::HeaderName::from_static("x-tenant"),
        ));
        for name in names {
            builder = builder.tenant(name, minutes(30));
        }
        builder.build().unwrap()
    };
    let a = start_node(&backend, build()).await;
    let b = start_node(&backend, build()).await;
    let mut version = a.current().version();
    for (i, name) in names.iter().enumerate() {
        let policy = minutes(3 + i as u64);
        let changed = a
            .apply(
                PolicyChange::tenant(*name, policy)
                    .expecting(version)
                    .by("admin"),
            )
            .await
            .unwrap();
        version = changed.version();
    }
    reached(b.live(), version).await;
    for (i, name) in names.iter().enumerate() {
        assert_eq!(
            b.current().policies().tenant_policy(name),
            Some(&minutes(3 + i as u64)),
            "{name:?}"
        );
    }
    assert_eq!(b.current().policies().default_policy(), &minutes(30));
    let c = start_node(&backend, build()).await;
    for (i, name) in names.iter().enumerate() {
        assert_eq!(
            c.current().policies().tenant_policy(name),
            Some(&minutes(3 + i as u64)),
            "a node started later: {name:?}"
        );
    }
}

crate::on_both_stores!(
    odd_tenant_names_arrive_exactly =>
    redis_odd_tenant_names_arrive_exactly,
    postgres_odd_tenant_names_arrive_exactly
);

/// Two nodes change the same version at once while a third starts: one
/// winner, one typed conflict, and the third ends at the winner's version
/// and policies within the bound.
async fn two_nodes_change_while_a_third_starts(backend: Backend) {
    let a = start_node(&backend, Policies::single(minutes(30))).await;
    let b = start_node(&backend, Policies::single(minutes(30))).await;
    for round in 0..6u64 {
        let seen = a.current().version();
        reached(b.live(), seen).await;
        let third = async {
            let layer =
                SessionLifetimeLayer::new(MemoryStore::new()).with_policy(minutes(90 + round));
            let live = layer.live_policy();
            // Changed alone before it starts sharing: counts for nothing.
            live.apply(PolicyChange::default_policy(minutes(91 + round)).by("alone"))
                .unwrap();
            SharedPolicy::start(live, backend.client()).await.unwrap()
        };
        let (on_a, on_b, c) = tokio::join!(
            a.apply(
                PolicyChange::default_policy(minutes(10 + round))
                    .expecting(seen)
                    .by("alice")
            ),
            b.apply(
                PolicyChange::default_policy(minutes(40 + round))
                    .expecting(seen)
                    .by("bob")
            ),
            third,
        );
        let winner = match (on_a, on_b) {
            (Ok(won), Err(SharedPolicyError::Refused(PolicyChangeError::Conflict { .. })))
            | (Err(SharedPolicyError::Refused(PolicyChangeError::Conflict { .. })), Ok(won)) => won,
            other => panic!("round {round}: not one winner and one conflict: {other:?}"),
        };
        assert_eq!(winner.version(), seen + 1);
        let took = reached(c.live(), winner.version()).await;
        assert!(took < BOUND, "round {round}: {took:?}");
        for node in [&a, &b, &c] {
            reached(node.live(), winner.version()).await;
            assert_eq!(node.current().version(), winner.version());
            assert_eq!(
                node.current().policies().default_policy(),
                winner.policies().default_policy(),
                "round {round}"
            );
        }
        let stored = backend.stored().await.unwrap();
        assert_eq!(stored.version, winner.version(), "versions count exactly");
    }
}

crate::on_both_stores!(
    two_nodes_change_while_a_third_starts =>
    redis_two_nodes_change_while_a_third_starts,
    postgres_two_nodes_change_while_a_third_starts
);

/// The node that makes a change must have in force what `apply` returned
/// ("then in force here at once"), even when the store's notification of
/// the change reaches its own follower before the store's acknowledgement
/// reaches `apply`. The change here turns renewal on, which the stored
/// text does not carry.
async fn the_applying_node_keeps_the_change_it_returned(
    backend: Backend,
    ack_delay: Duration,
    rounds: u64,
) {
    let layer = SessionLifetimeLayer::new(MemoryStore::new()).with_policy(minutes(30));
    let a = SharedPolicy::start(
        layer.live_policy(),
        Wrapped {
            inner: backend.store(),
            ack_delay,
        },
    )
    .await
    .unwrap();
    for round in 0..rounds {
        // Alternately turns renewal on and off (the stored text carries
        // only the limits), with a new idle timeout each time.
        let mut builder = Policy::builder()
            .idle_timeout(Duration::from_secs(20 * 60 + round))
            .absolute_timeout(8 * HOUR);
        if round % 2 == 0 {
            builder = builder.renewal_interval(5 * MINUTE);
        }
        let wanted = builder.build().unwrap();
        let returned = a
            .apply(PolicyChange::default_policy(wanted).by("admin"))
            .await
            .unwrap();
        assert_eq!(returned.policies().default_policy(), &wanted);
        assert_eq!(
            (
                a.current().version(),
                a.current().policies().default_policy()
            ),
            (returned.version(), returned.policies().default_policy()),
            "round {round}: what apply returned is in force on the node that applied it"
        );
        assert_eq!(
            layer
                .live_policy()
                .current()
                .policies()
                .default_policy()
                .renewal(),
            wanted.renewal(),
            "round {round}: the layer renews as the admin asked"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_the_applying_node_keeps_the_change_it_returned() {
    the_applying_node_keeps_the_change_it_returned(Backend::redis(), Duration::from_millis(50), 1)
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_the_applying_node_keeps_the_change_it_returned() {
    the_applying_node_keeps_the_change_it_returned(
        Backend::postgres().await,
        Duration::from_millis(50),
        1,
    )
    .await;
}

/// The same without any delay: the node's own notification races the
/// store's acknowledgement.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_the_applying_node_keeps_the_change_it_returned_without_delay() {
    the_applying_node_keeps_the_change_it_returned(Backend::redis(), Duration::ZERO, 500).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_the_applying_node_keeps_the_change_it_returned_without_delay() {
    the_applying_node_keeps_the_change_it_returned(Backend::postgres().await, Duration::ZERO, 500)
        .await;
}

/// A second `SharedPolicy::start` on a layer already sharing, that fails
/// (the store unreachable), must not turn `LivePolicy::apply` back on: the
/// first `SharedPolicy` still shares the policies.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_second_start_does_not_unshare_a_sharing_layer() {
    let backend = Backend::redis();
    let layer = SessionLifetimeLayer::new(MemoryStore::new()).with_policy(minutes(30));
    let live = layer.live_policy();
    let shared = SharedPolicy::start(live.clone(), backend.client())
        .await
        .unwrap();
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = closed.local_addr().unwrap();
    drop(closed);
    SharedPolicy::start(
        live.clone(),
        RedisStore::open(&format!("redis://{address}")).unwrap(),
    )
    .await
    .expect_err("no server there");
    let local = live.apply(PolicyChange::default_policy(minutes(5)).by("local admin"));
    // Whatever happened locally, the node must follow the store.
    let other = start_node(&backend, Policies::single(minutes(30))).await;
    let changed = other
        .apply(PolicyChange::default_policy(minutes(12)).by("admin elsewhere"))
        .await
        .unwrap();
    tokio::time::sleep(BOUND).await;
    let now = shared.current();
    assert!(
        matches!(local, Err(PolicyChangeError::Shared))
            && now.policies().default_policy() == &minutes(12),
        "the layer is still shared: a local change must be refused and the store \
         followed; local apply gave {:?}, in force now v{} idle {:?}, stored v{} idle 12 min",
        local.as_ref().map(|s| s.version()),
        now.version(),
        now.policies().default_policy().idle_timeout(),
        changed.version(),
    );
}

// ---------------------------------------------------------------------------
// Hostile stored input
// ---------------------------------------------------------------------------

/// Forged Redis fields: the node never panics, starts or fails with a
/// typed error, and writes nothing over what is stored; a running node
/// that meets them keeps its policies.
/// What a forged Redis hash holds: what it shows, its `v`, its `p`.
type ForgedCase = (&'static str, Option<&'static str>, Option<Vec<u8>>);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_forged_fields_never_panic_and_lose_nothing() {
    let good = text_of(&["default\t1800.000000000,-,1209600.000000000,-,45.000000000"]);
    let cases: Vec<ForgedCase> = vec![
        ("version not a number", Some("abc"), Some(good.clone())),
        ("negative version", Some("-1"), Some(good.clone())),
        ("fractional version", Some("1.5"), Some(good.clone())),
        ("empty version", Some(""), Some(good.clone())),
        (
            "version past u64",
            Some("18446744073709551616"),
            Some(good.clone()),
        ),
        ("text missing", Some("4"), None),
        ("text not UTF-8", Some("4"), Some(vec![0xff, 0xfe, b'\n'])),
        ("text of another format", Some("4"), Some(b"hello".to_vec())),
        (
            "unknown line",
            Some("4"),
            Some(text_of(&["admin\t1.000000000,-,1.000000000,-,0.000000000"])),
        ),
        (
            "short limits",
            Some("4"),
            Some(text_of(&["default\t1.000000000,-,1.000000000"])),
        ),
        (
            "zero idle",
            Some("4"),
            Some(text_of(&[
                "default\t0.000000000,-,1.000000000,-,0.000000000",
            ])),
        ),
        (
            "granularity above idle",
            Some("4"),
            Some(text_of(&[
                "default\t10.000000000,-,100.000000000,-,50.000000000",
            ])),
        ),
        (
            "tenant not UTF-8",
            Some("4"),
            Some(text_of(&[
                "tenant %FF\t10.000000000,-,100.000000000,-,1.000000000",
            ])),
        ),
        (
            "nanos out of range",
            Some("4"),
            Some(text_of(&[
                "default\t10.9999999999,-,100.000000000,-,1.000000000",
            ])),
        ),
        ("empty text", Some("4"), Some(Vec::new())),
    ];
    for (what, version, text) in cases {
        let backend = Backend::redis();
        backend.forge(version, text.as_deref()).await;
        let before = backend.raw().await;
        let layer = SessionLifetimeLayer::new(MemoryStore::new()).with_policy(minutes(30));
        let live = layer.live_policy();
        let started = SharedPolicy::start(live.clone(), backend.client()).await;
        match &started {
            Ok(node) => {
                assert_eq!(
                    node.current().policies().default_policy(),
                    &minutes(30),
                    "{what}: a node that takes nothing keeps its own policies"
                );
                tokio::time::sleep(2 * POLL_INTERVAL).await;
            }
            Err(_) => {
                live.apply(PolicyChange::default_policy(minutes(29)))
                    .unwrap_or_else(|err| panic!("{what}: a failed start leaves apply: {err}"));
            }
        }
        assert_eq!(
            backend.raw().await,
            before,
            "{what}: nothing stored is lost"
        );
        drop(started);
    }
}

/// A running node that meets forged text at a higher version keeps its
/// policies; a forged version with leading zeros reads as its number.
/// Neither may leave the node's admins with a conflict that no retry
/// resolves.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_a_version_with_leading_zeros_does_not_block_every_change() {
    let backend = Backend::redis();
    backend
        .forge(
            Some("007"),
            Some(&text_of(&[
                "default\t600.000000000,-,1209600.000000000,-,30.000000000",
            ])),
        )
        .await;
    let a = start_node(&backend, Policies::single(minutes(30))).await;
    assert_eq!(a.current().version(), 7);
    assert_eq!(
        a.current().policies().default_policy().idle_timeout(),
        10 * MINUTE
    );
    let mut outcomes = Vec::new();
    for _ in 0..3 {
        let seen = a.current().version();
        outcomes.push(
            a.apply(
                PolicyChange::default_policy(minutes(5))
                    .expecting(seen)
                    .by("admin"),
            )
            .await,
        );
    }
    for outcome in &outcomes {
        if let Err(SharedPolicyError::Refused(PolicyChangeError::Conflict { expected, current })) =
            outcome
        {
            assert_ne!(
                expected, current,
                "a conflict that names the same version expected and in force: \
                 no retry can ever succeed ({outcomes:?})"
            );
        }
    }
}

/// A PostgreSQL row at version 0 (forged, or written by hand) must not
/// leave every change a conflict whose expected and current versions are
/// equal.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_a_row_at_version_zero_does_not_block_every_change() {
    let backend = Backend::postgres().await;
    backend
        .forge(
            Some("0"),
            Some(&text_of(&[
                "default\t600.000000000,-,1209600.000000000,-,30.000000000",
            ])),
        )
        .await;
    let started = {
        let layer = SessionLifetimeLayer::new(MemoryStore::new()).with_policy(minutes(30));
        SharedPolicy::start(layer.live_policy(), backend.client()).await
    };
    let Ok(a) = started else {
        // Refused as corrupt at start: a typed error, acceptable.
        return;
    };
    let mut outcomes = Vec::new();
    for _ in 0..3 {
        let seen = a.current().version();
        outcomes.push(
            a.apply(
                PolicyChange::default_policy(minutes(5))
                    .expecting(seen)
                    .by("admin"),
            )
            .await,
        );
    }
    for outcome in &outcomes {
        if let Err(SharedPolicyError::Refused(PolicyChangeError::Conflict { expected, current })) =
            outcome
        {
            assert_ne!(
                expected, current,
                "every change a conflict on the version in force: {outcomes:?}"
            );
        }
    }
}

/// Forged PostgreSQL text: the node starts keeping its own policies, with
/// nothing written over the row; a running node keeps its policies when it
/// meets forged text at a higher version, under that version, so that its
/// admin's next change replaces the forged text.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_forged_text_never_panics_and_loses_nothing() {
    for (what, text) in [
        ("another format", b"garbage".to_vec()),
        ("empty", Vec::new()),
        ("bad limits", text_of(&["default\tx,y,z,w,v"])),
        (
            "zero idle",
            text_of(&["default\t0.000000000,-,1.000000000,-,0.000000000"]),
        ),
    ] {
        let backend = Backend::postgres().await;
        backend.forge(Some("5"), Some(&text)).await;
        let before = backend.raw().await;
        let node = start_node(&backend, Policies::single(minutes(30))).await;
        assert_eq!(
            node.current().policies().default_policy(),
            &minutes(30),
            "{what}"
        );
        tokio::time::sleep(2 * POLL_INTERVAL).await;
        assert_eq!(backend.raw().await, before, "{what}: nothing lost");
    }

    // A running node meets forged text at a higher version.
    let backend = Backend::postgres().await;
    let a = start_node(&backend, Policies::single(minutes(30))).await;
    let changed = a
        .apply(PolicyChange::default_policy(minutes(20)).by("admin"))
        .await
        .unwrap();
    backend
        .forge(
            Some("9"),
            Some(b"tower-session-lifetime policies 1\ndefault\tbad"),
        )
        .await;
    assert!(a.refresh().await.is_ok());
    tokio::time::sleep(2 * POLL_INTERVAL).await;
    assert!(changed.version() < 9);
    assert_eq!(a.current().version(), 9, "at the stored version");
    assert_eq!(
        a.current().policies().default_policy(),
        &minutes(20),
        "not taken"
    );
    let next = a
        .apply(
            PolicyChange::default_policy(minutes(15))
                .expecting(9)
                .by("admin"),
        )
        .await
        .unwrap();
    assert_eq!(next.version(), 10);
    let other = start_node(&backend, Policies::single(minutes(30))).await;
    assert_eq!(other.current().policies().default_policy(), &minutes(15));
}

/// Stored limits at the edge of what a `Duration` holds are taken without
/// a panic anywhere a request goes: login (remember-me or not), a request,
/// a status of deadlines.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn huge_stored_limits_never_panic_through_requests() {
    let backend = Backend::redis();
    let max = "18446744073709551615.999999999";
    backend
        .forge(
            Some("3"),
            Some(&text_of(&[&format!(
                "default\t{max},-,{max},-,0.000000000"
            )])),
        )
        .await;
    let (app, live) = app_with(|layer| layer.with_policy(minutes(30)));
    let node = SharedPolicy::start(live.clone(), backend.client())
        .await
        .unwrap();
    assert_eq!(node.current().version(), 3);
    assert_eq!(
        node.current().policies().default_policy().idle_timeout(),
        Duration::MAX,
        "limits are taken exactly"
    );
    for remember in [false, true] {
        let cookie = app.login("alice", remember).await;
        app.advance(400 * DAY);
        assert_eq!(reason(&app, &cookie).await, None);
        let response = app
            .request(
                "POST",
                &format!("/remember?on={}", !remember),
                Some(&cookie),
            )
            .await;
        assert_eq!(response.status(), StatusCode::OK);
    }
    // And back to ordinary limits: existing sessions keep the huge
    // snapshot only as far as the new policy allows.
    let cookie = app.login("bob", false).await;
    node.apply(PolicyChange::default_policy(minutes(10)).by("admin"))
        .await
        .unwrap();
    app.advance(11 * MINUTE);
    assert_eq!(reason(&app, &cookie).await, Some(RejectReason::IdleTimeout));
}

/// A Redis hash with text but no version: "nothing stored" to the store,
/// but a starting node must not silently overwrite the text that is there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_text_without_a_version_is_not_overwritten_silently() {
    let backend = Backend::redis();
    let text = text_of(&["default\t600.000000000,-,1209600.000000000,-,30.000000000"]);
    backend.forge(None, Some(&text)).await;
    let before = backend.raw().await;
    let layer = SessionLifetimeLayer::new(MemoryStore::new()).with_policy(minutes(30));
    let started = SharedPolicy::start(layer.live_policy(), backend.client()).await;
    let after = backend.raw().await;
    match started {
        Err(_) => assert_eq!(after, before),
        Ok(node) => {
            let idle = node.current().policies().default_policy().idle_timeout();
            assert!(
                after == before || idle == 10 * MINUTE,
                "the stored text was replaced by the node's own, without a warning: \
                 before {:?}, after {:?}",
                lossy(&before),
                lossy(&after)
            );
        }
    }
}
