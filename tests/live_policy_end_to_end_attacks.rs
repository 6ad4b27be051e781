//! An independent end-to-end attack on the live-policy promises
//! (`LivePolicy`, `SharedPolicy`, `PolicyChange`), with requests going
//! through real `SessionLifetimeLayer`s ("nodes") whose sessions AND
//! policies live in the same Redis prefix / PostgreSQL table: changes made
//! on one node biting (or not) on another, ownership of a `SharedPolicy`
//! (drop, restart, concurrent starts), requests racing changes and
//! refreshes, the audit trail per node, and hostile changes that must store
//! nothing and consume no version.
//!
//! Needs `TSL_REDIS_URL` and `TSL_POSTGRES_URL` (as `tests/shared_policy.rs`).
#![cfg(all(
    feature = "redis",
    feature = "postgres",
    feature = "conformance",
    feature = "axum"
))]

mod common;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::routing::get;
use axum::Router;
use http::{header, Response, StatusCode};
use tower::ServiceExt;
use tower_session_lifetime::clock::ManualClock;
use tower_session_lifetime::observe::SessionMetrics;
use tower_session_lifetime::policy::{
    LivePolicy, PolicyChange, PolicyChangeError, PolicyError, TenantFrom, Tightening,
};
use tower_session_lifetime::rejection::RejectReason;
use tower_session_lifetime::shared_policy::{SharedPolicy, SharedPolicyError, POLL_INTERVAL};
use tower_session_lifetime::store::{LifetimeStore, PolicyStore, StoreError, StoredPolicies};
use tower_session_lifetime::{Policies, Policy, SessionHandle, SessionLifetimeLayer};

use common::captured::Captured;
use common::policy_backend::{reached, Backend, PolicyClient, BOUND};
use common::shared_store::clock_now;
use common::{cookie_request, set_cookie, DAY, HOUR, MINUTE};

// ---------------------------------------------------------------------------
// Backends: sessions and policies in one Redis prefix / PostgreSQL table
// ---------------------------------------------------------------------------

/// What these tests take from a backend besides its raw contents: a
/// client of its own for the sessions and one for the policies, on the
/// same prefix / table.
trait Clients {
    fn sessions(&self) -> Arc<dyn LifetimeStore>;
    fn policies(&self) -> PolicyClient;
}

impl Clients for Backend {
    fn sessions(&self) -> Arc<dyn LifetimeStore> {
        match self {
            Backend::Redis { .. } => Arc::new(self.redis_store()),
            Backend::Postgres { .. } => Arc::new(self.postgres_store()),
        }
    }

    fn policies(&self) -> PolicyClient {
        self.client()
    }
}

/// A client whose loads take `delay` (a start that is under way for a while).
struct Slow(PolicyClient, Duration);

#[async_trait::async_trait]
impl PolicyStore for Slow {
    async fn load_policies(&self) -> Result<Option<StoredPolicies>, StoreError> {
        tokio::time::sleep(self.1).await;
        self.0.load_policies().await
    }
    async fn store_policies(&self, expected: u64, text: &str) -> Result<bool, StoreError> {
        self.0.store_policies(expected, text).await
    }
    async fn watch_policies(&self, changed: &(dyn Fn() + Send + Sync)) -> Result<(), StoreError> {
        self.0.watch_policies(changed).await
    }
}

// ---------------------------------------------------------------------------
// Nodes: a real layer over the backend, a manual clock shared by the nodes
// ---------------------------------------------------------------------------

const STRICT: &str = "strict.example";

fn policy(
    idle: Duration,
    absolute: Duration,
    remember: Duration,
    remember_abs: Duration,
) -> Policy {
    Policy::builder()
        .idle_timeout(idle)
        .absolute_timeout(absolute)
        .remember_me_period(remember)
        .remember_me_absolute_timeout(remember_abs)
        .build()
        .unwrap()
}

/// The default: idle 30 min, absolute 8 h, remember-me 7 d / 30 d.
fn default_policy() -> Policy {
    policy(30 * MINUTE, 8 * HOUR, 7 * DAY, 30 * DAY)
}

/// `strict.example`: idle 10 min, absolute 4 h, remember-me 1 d / 7 d.
fn strict_policy() -> Policy {
    policy(10 * MINUTE, 4 * HOUR, DAY, 7 * DAY)
}

/// Tenants by host, `/admin` tightened to an idle timeout of 5 minutes.
fn policies() -> Policies {
    Policies::builder(default_policy())
        .tenants_from(TenantFrom::Host)
        .tenant(STRICT, strict_policy())
        .route("/admin", Tightening::new().idle_timeout(5 * MINUTE))
        .build()
        .unwrap()
}

async fn admin_me(session: SessionHandle) -> Result<String, StatusCode> {
    session.subject().ok_or(StatusCode::UNAUTHORIZED)
}

struct Node {
    router: Router,
    live: LivePolicy,
    metrics: SessionMetrics,
}

impl Node {
    fn new(backend: &Backend, clock: &ManualClock, policies: Policies) -> Self {
        let metrics = SessionMetrics::new();
        let layer = SessionLifetimeLayer::from_shared_store(backend.sessions())
            .with_clock(clock.clone())
            .with_metrics(metrics.clone())
            .with_policies(policies);
        let live = layer.live_policy();
        let router = common::routes()
            .route("/admin/me", get(admin_me))
            .layer(layer);
        Node {
            router,
            live,
            metrics,
        }
    }

    async fn share(&self, backend: &Backend) -> SharedPolicy {
        SharedPolicy::start(self.live.clone(), backend.policies())
            .await
            .unwrap()
    }

    async fn send(
        &self,
        method: &str,
        path: &str,
        host: Option<&str>,
        cookie: Option<&str>,
    ) -> Response<Body> {
        let mut request = cookie_request(method, path, cookie);
        if let Some(host) = host {
            let host = header::HeaderValue::from_str(host).unwrap();
            request.headers_mut().insert(header::HOST, host);
        }
        self.router.clone().oneshot(request).await.unwrap()
    }

    async fn login_at(&self, host: Option<&str>, user: &str, remember: bool) -> String {
        let response = self
            .send(
                "POST",
                &format!("/login?user={user}&remember={remember}"),
                host,
                None,
            )
            .await;
        assert_eq!(response.status(), StatusCode::OK, "login of {user}");
        let set = set_cookie(&response).expect("login sets the cookie");
        format!("{}={}", set.name(), set.value())
    }

    async fn login(&self, user: &str, remember: bool) -> String {
        self.login_at(None, user, remember).await
    }

    /// `GET path` on `host`: the rejection reason, `None` when admitted.
    async fn reason_at(
        &self,
        path: &str,
        host: Option<&str>,
        cookie: &str,
    ) -> Option<RejectReason> {
        let response = self.send("GET", path, host, Some(cookie)).await;
        let reason = response.extensions().get::<RejectReason>().copied();
        match reason {
            None => assert_eq!(response.status(), StatusCode::OK, "{path} admitted"),
            Some(_) => assert_ne!(response.status(), StatusCode::OK, "{path} refused"),
        }
        reason
    }

    async fn reason(&self, cookie: &str) -> Option<RejectReason> {
        self.reason_at("/me", None, cookie).await
    }

    fn version(&self) -> u64 {
        self.live.current().version()
    }
}

fn change(policy: Policy, actor: &str) -> PolicyChange {
    PolicyChange::default_policy(policy).by(actor)
}

// ---------------------------------------------------------------------------
// 1. A shorter limit set on A bites on B, within the bound
// ---------------------------------------------------------------------------

/// A shortens the absolute and idle limits: on B, a session probed with
/// requests is refused within the bound of the change (absolute: the probe
/// does not move it), and the idle one bites at B's next request once the
/// change is there.
async fn a_tightening_on_a_bites_on_b_within_the_bound(backend: Backend) {
    let clock = clock_now();
    let a = Node::new(&backend, &clock, policies());
    let b = Node::new(&backend, &clock, policies());
    let shared_a = a.share(&backend).await;
    let _shared_b = b.share(&backend).await;

    let probed = a.login("alice", false).await;
    let idle_one = a.login("bob", false).await;
    // Both kept active on B for 2 hours.
    for _ in 0..6 {
        clock.advance(20 * MINUTE);
        assert_eq!(b.reason(&probed).await, None);
        assert_eq!(b.reason(&idle_one).await, None);
    }
    // Absolute 8 h -> 1 h 30: alice (2 h old) must be refused on B within
    // the bound of the change, at a request, not only in `current()`.
    let tighter = policy(30 * MINUTE, 90 * MINUTE, 7 * DAY, 30 * DAY);
    let changed_at = Instant::now();
    let changed = shared_a.apply(change(tighter, "tightener")).await.unwrap();
    let refused = loop {
        if let Some(reason) = b.reason(&probed).await {
            break reason;
        }
        assert!(
            changed_at.elapsed() < BOUND,
            "a shorter absolute limit set on A was not enforced on B within {BOUND:?} \
             (B at v{}, change v{})",
            b.version(),
            changed.version()
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    println!("enforced on B after {:?}", changed_at.elapsed());
    assert_eq!(refused, RejectReason::AbsoluteTimeout);
    assert!(b.version() >= changed.version());

    // Idle 30 min -> 10 min (absolute back to 8 h: only the idle one bites).
    let shorter_idle = policy(10 * MINUTE, 8 * HOUR, 7 * DAY, 30 * DAY);
    let changed = shared_a
        .apply(change(shorter_idle, "tightener"))
        .await
        .unwrap();
    assert!(reached(&b.live, changed.version()).await < BOUND);
    clock.advance(11 * MINUTE);
    assert_eq!(
        b.reason(&idle_one).await,
        Some(RejectReason::IdleTimeout),
        "a shorter idle limit set on A bites at the session's next request on B"
    );
    // And on A as well (the layer that made it).
    let fresh = b.login("carol", false).await;
    clock.advance(11 * MINUTE);
    assert_eq!(a.reason(&fresh).await, Some(RejectReason::IdleTimeout));
}

crate::on_both_stores!(
    a_tightening_on_a_bites_on_b_within_the_bound =>
    redis_a_tightening_on_a_bites_on_b_within_the_bound,
    postgres_a_tightening_on_a_bites_on_b_within_the_bound
);

// ---------------------------------------------------------------------------
// 2. A longer limit set on A lengthens no session created before, on B
// ---------------------------------------------------------------------------

async fn a_loosening_on_a_lengthens_no_existing_session_on_b(backend: Backend) {
    let clock = clock_now();
    let a = Node::new(&backend, &clock, policies());
    let b = Node::new(&backend, &clock, policies());
    let shared_a = a.share(&backend).await;
    let _shared_b = b.share(&backend).await;

    let idler = a.login("idler", false).await;
    let worker = a.login("worker", false).await;
    let remembered = a.login("remembered", true).await;
    let strict = a.login_at(Some(STRICT), "strict-user", false).await;

    // Everything loosened, on A, for the default and the strict tenant.
    let looser = policy(2 * HOUR, 48 * HOUR, 30 * DAY, 90 * DAY);
    let changed = shared_a.apply(change(looser, "loosener")).await.unwrap();
    let changed_strict = shared_a
        .apply(PolicyChange::tenant(STRICT, looser).by("loosener"))
        .await
        .unwrap();
    reached(&b.live, changed_strict.version()).await;
    assert!(changed_strict.version() > changed.version());
    assert_eq!(b.live.current().policies().default_policy(), &looser);

    // A session created on B after the loosening: the longer limits.
    let late = b.login("late", false).await;

    // Every 20 minutes for 8 hours, `worker` is active on B; meanwhile the
    // others, idle, meet their snapshots' limits on B.
    for step in 1..=24u32 {
        clock.advance(20 * MINUTE);
        if step == 1 {
            // Strict tenant's snapshot: 10 minutes idle, on its host.
            assert_eq!(
                b.reason_at("/me", Some(STRICT), &strict).await,
                Some(RejectReason::IdleTimeout),
                "a strict-tenant session created before a loosening was lengthened on B"
            );
        }
        if step == 2 {
            // Idle: the snapshot's 30 minutes still hold on B.
            assert_eq!(
                b.reason(&idler).await,
                Some(RejectReason::IdleTimeout),
                "a session created on A before a loosening was lengthened on B (idle)"
            );
        }
        if step == 5 {
            // The longer idle applies to sessions created after it.
            assert_eq!(
                a.reason(&late).await,
                None,
                "the longer idle applies to new sessions (100 min idle)"
            );
        }
        let reason = b.reason(&worker).await;
        if step < 24 {
            assert_eq!(reason, None, "worker at {} min", step * 20);
        } else {
            assert_eq!(
                reason,
                Some(RejectReason::AbsoluteTimeout),
                "a session's absolute deadline moved later on B after a loosening"
            );
        }
    }
    // Remember-me: the snapshot's 7 days idle.
    clock.advance(7 * DAY);
    assert_eq!(
        b.reason(&remembered).await,
        Some(RejectReason::IdleTimeout),
        "a remember-me session created before a loosening was lengthened on B"
    );
}

crate::on_both_stores!(
    a_loosening_on_a_lengthens_no_existing_session_on_b =>
    redis_a_loosening_on_a_lengthens_no_existing_session_on_b,
    postgres_a_loosening_on_a_lengthens_no_existing_session_on_b
);

// ---------------------------------------------------------------------------
// 3. Remember-me and route groups keep their rules across nodes
// ---------------------------------------------------------------------------

async fn remember_me_and_route_groups_keep_their_rules_across_nodes(backend: Backend) {
    let clock = clock_now();
    let a = Node::new(&backend, &clock, policies());
    let b = Node::new(&backend, &clock, policies());
    let shared_a = a.share(&backend).await;
    let _shared_b = b.share(&backend).await;

    let remembered = a.login("r1", true).await;
    let plain = a.login("p1", false).await;
    let strict_remembered = a.login_at(Some(STRICT), "r2", true).await;
    let admin = a.login("adm", false).await;
    let admin_remembered = a.login("adm-r", true).await;

    // A: default idle loosened to 1 h (the /admin group stays 5 min), the
    // default remember-me period tightened 7 d -> 1 d, the strict tenant's
    // 1 d -> 2 h.
    let default_after = policy(HOUR, 8 * HOUR, DAY, 30 * DAY);
    shared_a
        .apply(change(default_after, "rm-admin"))
        .await
        .unwrap();
    let strict_after = policy(10 * MINUTE, 4 * HOUR, 2 * HOUR, 7 * DAY);
    let last = shared_a
        .apply(PolicyChange::tenant(STRICT, strict_after).by("rm-admin"))
        .await
        .unwrap();
    reached(&b.live, last.version()).await;

    // The route group on B: 6 minutes idle on /admin is refused, for a
    // plain session and a remember-me one (the group's idle caps the
    // remember-me period), though the tenant now allows 1 h.
    clock.advance(6 * MINUTE);
    assert_eq!(
        b.reason_at("/admin/me", None, &admin).await,
        Some(RejectReason::IdleTimeout),
        "the /admin tightening was lost on B after a change made on A"
    );
    assert_eq!(
        b.reason_at("/admin/me", None, &admin_remembered).await,
        Some(RejectReason::IdleTimeout),
        "the /admin tightening no longer caps remember-me sessions on B"
    );
    // A session created on B after the loosening: 40 min idle is fine on
    // /me (1 h), not on /admin (5 min).
    let after = b.login("after", false).await;
    clock.advance(40 * MINUTE);
    assert_eq!(a.reason(&after).await, None);
    clock.advance(6 * MINUTE);
    assert_eq!(
        b.reason_at("/admin/me", None, &after).await,
        Some(RejectReason::IdleTimeout)
    );

    // Plain session, 52 minutes idle: its snapshot said 30 minutes.
    assert_eq!(b.reason(&plain).await, Some(RejectReason::IdleTimeout));

    // Strict remember-me session, 3 h idle on its host: the tightened 2 h.
    clock.advance(3 * HOUR - 52 * MINUTE);
    assert_eq!(
        b.reason_at("/me", Some(STRICT), &strict_remembered).await,
        Some(RejectReason::IdleTimeout),
        "a tenant's shorter remember-me period set on A did not bite on B"
    );
    // Default remember-me session, 2 days idle: the tightened 1 day.
    clock.advance(2 * DAY);
    assert_eq!(
        b.reason(&remembered).await,
        Some(RejectReason::IdleTimeout),
        "a shorter remember-me period set on A did not bite on B"
    );
}

crate::on_both_stores!(
    remember_me_and_route_groups_keep_their_rules_across_nodes =>
    redis_remember_me_and_route_groups_keep_their_rules_across_nodes,
    postgres_remember_me_and_route_groups_keep_their_rules_across_nodes
);

// ---------------------------------------------------------------------------
// 4. Ownership: drop, restart, concurrent starts
// ---------------------------------------------------------------------------

async fn dropping_every_clone_gives_the_layer_back(backend: Backend) {
    let clock = clock_now();
    let a = Node::new(&backend, &clock, policies());
    let b = Node::new(&backend, &clock, policies());
    let shared_a = a.share(&backend).await;
    let shared_b = b.share(&backend).await;
    let clone_b = shared_b.clone();

    // Shared: a second start and a local change are refused.
    let second = SharedPolicy::start(b.live.clone(), backend.policies()).await;
    assert!(
        matches!(
            second,
            Err(SharedPolicyError::Refused(PolicyChangeError::Shared))
        ),
        "{second:?}"
    );
    assert_eq!(
        b.live
            .apply(change(policy(MINUTE, HOUR, DAY, DAY), "local"))
            .unwrap_err(),
        PolicyChangeError::Shared
    );
    // One clone dropped: still shared, still following.
    drop(shared_b);
    assert_eq!(
        b.live
            .apply(change(policy(MINUTE, HOUR, DAY, DAY), "local"))
            .unwrap_err(),
        PolicyChangeError::Shared,
        "dropping one clone of two ended the sharing"
    );
    let followed = shared_a
        .apply(change(
            policy(20 * MINUTE, 8 * HOUR, 7 * DAY, 30 * DAY),
            "a",
        ))
        .await
        .unwrap();
    reached(&b.live, followed.version()).await;

    // Every clone dropped while A keeps changing: B's policies are its own
    // again, nothing from A lands on B any more.
    let hammer = {
        let shared_a = shared_a.clone();
        tokio::spawn(async move {
            for i in 0..20u32 {
                let _ = shared_a
                    .apply(change(
                        policy(MINUTE * (6 + i), 8 * HOUR, 7 * DAY, 30 * DAY),
                        "a-hammer",
                    ))
                    .await;
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
    };
    tokio::time::sleep(Duration::from_millis(30)).await;
    drop(clone_b);
    // Own again: a local change works, and bites through B's layer.
    let own = policy(45 * MINUTE, 8 * HOUR, 7 * DAY, 30 * DAY);
    let local = b
        .live
        .apply(change(own, "local-after-drop"))
        .expect("every clone dropped: LivePolicy::apply works again");
    hammer.await.unwrap();
    let last_a = shared_a
        .apply(change(policy(6 * MINUTE, 8 * HOUR, 7 * DAY, 30 * DAY), "a"))
        .await
        .unwrap();
    tokio::time::sleep(3 * POLL_INTERVAL).await;
    let now = b.live.current();
    assert_eq!(
        (now.version(), now.policies().default_policy()),
        (local.version(), &own),
        "after drop, a change made on another node changed this node"
    );
    // Through requests: B judges by its own 45 minutes, A by 6 minutes.
    let cookie = b.login("own", false).await;
    clock.advance(10 * MINUTE);
    assert_eq!(
        b.reason(&cookie).await,
        None,
        "B judged by a change made on A after its SharedPolicy was dropped"
    );
    clock.advance(7 * MINUTE);
    assert_eq!(a.reason(&cookie).await, Some(RejectReason::IdleTimeout));

    // Restarted: B adopts the stored policies (A's last), not its own.
    let restarted = SharedPolicy::start(b.live.clone(), backend.policies())
        .await
        .expect("every clone dropped: a new start shares the layer");
    let now = restarted.current();
    let stored = backend.stored().await.unwrap();
    assert_eq!(now.version(), stored.version);
    assert_eq!(now.version(), last_a.version());
    assert_eq!(
        now.policies().default_policy().idle_timeout(),
        6 * MINUTE,
        "a restarted node did not adopt the stored policies"
    );
    let cookie = b.login("restarted", false).await;
    clock.advance(7 * MINUTE);
    assert_eq!(b.reason(&cookie).await, Some(RejectReason::IdleTimeout));
    assert_eq!(
        b.live.apply(change(own, "local")).unwrap_err(),
        PolicyChangeError::Shared
    );
}

crate::on_both_stores!(
    dropping_every_clone_gives_the_layer_back =>
    redis_dropping_every_clone_gives_the_layer_back,
    postgres_dropping_every_clone_gives_the_layer_back
);

/// Starts on one layer at once, one of them slow: exactly one shares it,
/// every other is refused with `Shared` (also while the slow one is under
/// way), and the winner follows the store through the layer.
async fn concurrent_starts_on_one_layer_give_one_sharer(backend: Backend) {
    let clock = clock_now();
    let a = Node::new(&backend, &clock, policies());
    let shared_a = a.share(&backend).await;
    let b = Node::new(&backend, &clock, policies());

    let slow = tokio::spawn(SharedPolicy::start(
        b.live.clone(),
        Slow(backend.policies(), Duration::from_millis(300)),
    ));
    tokio::time::sleep(Duration::from_millis(50)).await;
    let mut starts = Vec::new();
    for _ in 0..4 {
        starts.push(tokio::spawn(SharedPolicy::start(
            b.live.clone(),
            backend.policies(),
        )));
    }
    for start in starts {
        let refused = start.await.unwrap();
        assert!(
            matches!(
                refused,
                Err(SharedPolicyError::Refused(PolicyChangeError::Shared))
            ),
            "a start while another is under way: {refused:?}"
        );
    }
    assert_eq!(
        b.live
            .apply(change(policy(MINUTE, HOUR, DAY, DAY), "local"))
            .unwrap_err(),
        PolicyChangeError::Shared,
        "while a start is under way"
    );
    let winner = slow.await.unwrap().expect("the slow start succeeds");
    let changed = shared_a
        .apply(change(policy(7 * MINUTE, 8 * HOUR, 7 * DAY, 30 * DAY), "a"))
        .await
        .unwrap();
    reached(&b.live, changed.version()).await;
    assert_eq!(winner.current().version(), changed.version());
    let cookie = a.login("w", false).await;
    clock.advance(8 * MINUTE);
    assert_eq!(b.reason(&cookie).await, Some(RejectReason::IdleTimeout));
}

crate::on_both_stores!(
    concurrent_starts_on_one_layer_give_one_sharer =>
    redis_concurrent_starts_on_one_layer_give_one_sharer,
    postgres_concurrent_starts_on_one_layer_give_one_sharer
);

// ---------------------------------------------------------------------------
// 5. Requests racing apply and background refreshes
// ---------------------------------------------------------------------------

/// Sessions 2 h old (snapshot idle 3 h, absolute 8 h) hit node B while
/// both nodes alternate between a tight policy (idle 1 h, absolute 1 h:
/// refuses them) and a loose one (idle 6 h, absolute 24 h: the snapshot
/// admits them). A request admitted while every version that could have
/// been in force at its arrival was tight is admitted past the tighter
/// limit; one refused while every such version was loose was judged by a
/// policy that was not in force.
async fn requests_racing_changes_are_judged_by_the_policy_at_arrival(backend: Backend) {
    let startup = Policies::single(policy(3 * HOUR, 8 * HOUR, 7 * DAY, 30 * DAY));
    let clock = clock_now();
    let a = Node::new(&backend, &clock, startup.clone());
    let b = Arc::new(Node::new(&backend, &clock, startup));
    let shared_a = a.share(&backend).await;
    let shared_b = b.share(&backend).await;
    assert_eq!(b.version(), 1);

    const SESSIONS: usize = 160;
    let mut cookies = Vec::new();
    for i in 0..SESSIONS {
        cookies.push(a.login(&format!("racer{i}"), false).await);
    }
    clock.advance(2 * HOUR);

    let tight = policy(HOUR, HOUR, 7 * DAY, 30 * DAY);
    let loose = policy(6 * HOUR, 24 * HOUR, 7 * DAY, 30 * DAY);
    // version -> tight?
    let versions = Arc::new(Mutex::new(BTreeMap::from([(1u64, false)])));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let changer = {
        let versions = Arc::clone(&versions);
        let stop = Arc::clone(&stop);
        tokio::spawn(async move {
            let mut i = 0u64;
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                i += 1;
                let is_tight = (i / 2).is_multiple_of(2);
                let wanted = if is_tight { tight } else { loose };
                let node = if i.is_multiple_of(2) {
                    &shared_a
                } else {
                    &shared_b
                };
                if let Ok(made) = node.apply(change(wanted, "racer")).await {
                    versions.lock().unwrap().insert(made.version(), is_tight);
                }
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        })
    };
    let mut tasks = tokio::task::JoinSet::new();
    let chunks: Vec<Vec<String>> = cookies.chunks(SESSIONS / 4).map(<[_]>::to_vec).collect();
    for chunk in chunks {
        let b = Arc::clone(&b);
        tasks.spawn(async move {
            let mut seen = Vec::new();
            for cookie in chunk {
                let before = b.version();
                let reason = b.reason(&cookie).await;
                let after = b.version();
                seen.push((before, after, reason));
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            seen
        });
    }
    let mut seen = Vec::new();
    while let Some(done) = tasks.join_next().await {
        seen.extend(done.unwrap());
    }
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    changer.await.unwrap();
    let versions = versions.lock().unwrap().clone();
    let (mut tight_only, mut loose_only) = (0, 0);
    for (before, after, reason) in seen {
        let window: Vec<bool> = (before.min(after)..=before.max(after))
            .map(|v| {
                *versions
                    .get(&v)
                    .unwrap_or_else(|| panic!("version {v} in force on B was never made"))
            })
            .collect();
        if let Some(reason) = reason {
            assert!(
                matches!(
                    reason,
                    RejectReason::IdleTimeout | RejectReason::AbsoluteTimeout
                ),
                "refused for {reason:?}"
            );
        }
        if window.iter().all(|&t| t) {
            tight_only += 1;
            assert!(
                reason.is_some(),
                "admitted past the tighter limit: every version in force between v{before} \
                 and v{after} was tight"
            );
        }
        if window.iter().all(|&t| !t) {
            loose_only += 1;
            assert!(
                reason.is_none(),
                "refused ({reason:?}) while every version in force between v{before} and \
                 v{after} admitted it (snapshot 3 h / 8 h, 2 h old)"
            );
        }
    }
    println!("{tight_only} requests under tight versions, {loose_only} under loose ones");
    assert!(
        tight_only > 0 && loose_only > 0,
        "the race exercised both ({tight_only}, {loose_only})"
    );
}

crate::on_both_stores!(
    requests_racing_changes_are_judged_by_the_policy_at_arrival =>
    redis_requests_racing_changes_are_judged_by_the_policy_at_arrival,
    postgres_requests_racing_changes_are_judged_by_the_policy_at_arrival
);

// ---------------------------------------------------------------------------
// 6. Audit trail
// ---------------------------------------------------------------------------

/// A change is logged and counted once, on the node that made it; the
/// node that follows it neither counts nor logs it as its own change (else
/// summing the nodes' counters or events would count each change once per
/// node); refused changes are neither counted nor logged anywhere.
async fn the_audit_trail_is_on_the_node_that_made_the_change(backend: Backend, tag: &str) {
    let captured = Captured::global();
    let clock = clock_now();
    let a = Node::new(&backend, &clock, policies());
    let b = Node::new(&backend, &clock, policies());
    let shared_a = a.share(&backend).await;
    let shared_b = b.share(&backend).await;
    assert_eq!(
        a.metrics.snapshot().policy_changes,
        0,
        "a start is no change"
    );
    assert_eq!(
        b.metrics.snapshot().policy_changes,
        0,
        "a start is no change"
    );

    let actor_a = format!("audit-a-{tag}");
    let made = shared_a
        .apply(change(
            policy(20 * MINUTE, 8 * HOUR, 7 * DAY, 30 * DAY),
            &actor_a,
        ))
        .await
        .unwrap();
    reached(&b.live, made.version()).await;
    let actor_b = format!("audit-b-{tag}");
    let made_b = shared_b
        .apply(PolicyChange::tenant(STRICT, policy(5 * MINUTE, HOUR, DAY, DAY)).by(&actor_b))
        .await
        .unwrap();
    reached(&a.live, made_b.version()).await;
    // Refused: a conflict, an unknown tenant, a lengthened route group.
    let actor_refused = format!("audit-refused-{tag}");
    shared_a
        .apply(
            change(
                policy(25 * MINUTE, 8 * HOUR, 7 * DAY, 30 * DAY),
                &actor_refused,
            )
            .expecting(made.version()),
        )
        .await
        .unwrap_err();
    shared_b
        .apply(PolicyChange::tenant("nobody.example", default_policy()).by(&actor_refused))
        .await
        .unwrap_err();
    shared_b
        .apply(change(
            policy(2 * MINUTE, 8 * HOUR, 7 * DAY, 30 * DAY),
            &actor_refused,
        ))
        .await
        .unwrap_err();
    // Let the follow tasks run.
    tokio::time::sleep(2 * POLL_INTERVAL).await;

    assert_eq!(
        (
            a.metrics.snapshot().policy_changes,
            b.metrics.snapshot().policy_changes
        ),
        (1, 1),
        "policy_changes on (A, B): each counts the change it made, once"
    );
    let lines_a = captured.lines_with(&["policy changed", &actor_a]);
    assert_eq!(
        lines_a.len(),
        1,
        "`policy changed` events for A's change: {lines_a:#?}"
    );
    assert!(
        lines_a[0].contains("(default)")
            && lines_a[0].contains(&format!("version={}", made.version())),
        "{lines_a:?}"
    );
    let lines_b = captured.lines_with(&["policy changed", &actor_b]);
    assert_eq!(
        lines_b.len(),
        1,
        "`policy changed` events for B's change: {lines_b:#?}"
    );
    assert!(lines_b[0].contains(STRICT), "{lines_b:?}");
    assert!(
        captured.lines_with(&[&actor_refused]).is_empty(),
        "a refused change was logged"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_the_audit_trail_is_on_the_node_that_made_the_change() {
    the_audit_trail_is_on_the_node_that_made_the_change(Backend::redis(), "redis").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_the_audit_trail_is_on_the_node_that_made_the_change() {
    the_audit_trail_is_on_the_node_that_made_the_change(Backend::postgres().await, "pg").await;
}

// ---------------------------------------------------------------------------
// 7. Hostile changes: typed refusal, nothing stored, no version consumed
// ---------------------------------------------------------------------------

/// A hostile change: what it tries, the change, and whether an error is
/// the refusal it must get.
type HostileChange = (&'static str, PolicyChange, fn(&SharedPolicyError) -> bool);

async fn hostile_changes_store_nothing_and_consume_no_version(backend: Backend) {
    let clock = clock_now();
    let a = Node::new(&backend, &clock, policies());
    let b = Node::new(&backend, &clock, policies());
    let shared_a = a.share(&backend).await;
    let shared_b = b.share(&backend).await;
    let first = shared_a
        .apply(change(
            policy(20 * MINUTE, 8 * HOUR, 7 * DAY, 30 * DAY),
            "setup",
        ))
        .await
        .unwrap();
    reached(&b.live, first.version()).await;
    let raw_before = backend.raw().await;
    assert!(!raw_before.is_empty());
    let before_a = a.live.current();

    // Zero (and sub-millisecond) values cannot even be put in a change.
    for zero in [
        Policy::builder().idle_timeout(Duration::ZERO).build(),
        Policy::builder().absolute_timeout(Duration::ZERO).build(),
        Policy::builder().remember_me_period(Duration::ZERO).build(),
        Policy::builder()
            .remember_me_absolute_timeout(Duration::from_micros(999))
            .build(),
    ] {
        assert!(
            matches!(zero, Err(PolicyError::TooShort { .. })),
            "{zero:?}"
        );
    }

    let lengthens_group = policy(2 * MINUTE, 8 * HOUR, 7 * DAY, 30 * DAY);
    let hostile: Vec<HostileChange> = vec![
        (
            "unknown tenant",
            PolicyChange::tenant("nobody.example", default_policy()),
            |e| matches!(e, SharedPolicyError::Refused(PolicyChangeError::UnknownTenant(n)) if n == "nobody.example"),
        ),
        (
            "tenant in another case",
            PolicyChange::tenant("STRICT.example", strict_policy()),
            |e| {
                matches!(
                    e,
                    SharedPolicyError::Refused(PolicyChangeError::UnknownTenant(_))
                )
            },
        ),
        (
            "empty tenant name",
            PolicyChange::tenant("", strict_policy()),
            |e| {
                matches!(
                    e,
                    SharedPolicyError::Refused(PolicyChangeError::UnknownTenant(_))
                )
            },
        ),
        (
            "tenant name forging a stored line",
            PolicyChange::tenant(
                "x\tdefault\n1.000000000,-,1.000000000,-,0.000000001",
                strict_policy(),
            ),
            |e| {
                matches!(
                    e,
                    SharedPolicyError::Refused(PolicyChangeError::UnknownTenant(_))
                )
            },
        ),
        (
            "default shorter than the /admin group",
            PolicyChange::default_policy(lengthens_group),
            |e| {
                matches!(
                    e,
                    SharedPolicyError::Refused(PolicyChangeError::Invalid(
                        PolicyError::LongerThanEnclosing { .. }
                    ))
                )
            },
        ),
        (
            "tenant shorter than the /admin group",
            PolicyChange::tenant(STRICT, lengthens_group),
            |e| {
                matches!(
                    e,
                    SharedPolicyError::Refused(PolicyChangeError::Invalid(
                        PolicyError::LongerThanEnclosing { .. }
                    ))
                )
            },
        ),
        (
            "a version not yet made",
            PolicyChange::default_policy(default_policy()).expecting(first.version() + 1),
            |e| {
                matches!(
                    e,
                    SharedPolicyError::Refused(PolicyChangeError::Conflict { .. })
                )
            },
        ),
        (
            "an old version",
            PolicyChange::default_policy(default_policy()).expecting(0),
            |e| {
                matches!(
                    e,
                    SharedPolicyError::Refused(PolicyChangeError::Conflict { .. })
                )
            },
        ),
    ];
    for (what, hostile, expected) in hostile {
        for (name, node) in [("A", &shared_a), ("B", &shared_b)] {
            let err = node
                .apply(hostile.clone().by("hostile"))
                .await
                .map(|made| made.version())
                .unwrap_err();
            assert!(expected(&err), "{what} on {name}: refused as {err:?}");
            assert_eq!(
                backend.raw().await,
                raw_before,
                "{what} on {name}: the store's raw contents changed"
            );
            assert_eq!(
                a.version(),
                first.version(),
                "{what} on {name}: A's version"
            );
            assert_eq!(
                b.version(),
                first.version(),
                "{what} on {name}: B's version"
            );
        }
    }
    assert_eq!(
        a.live.current().policies().default_policy(),
        before_a.policies().default_policy()
    );
    assert_eq!(a.metrics.snapshot().policy_changes, 1);
    assert_eq!(b.metrics.snapshot().policy_changes, 0);
    // Still judged as before: the /admin group's 5 minutes, the default's 20.
    let cookie = b.login("judge", false).await;
    clock.advance(15 * MINUTE);
    assert_eq!(a.reason(&cookie).await, None);
    clock.advance(6 * MINUTE);
    assert_eq!(
        b.reason_at("/admin/me", None, &cookie).await,
        Some(RejectReason::IdleTimeout)
    );

    // No version consumed: the next valid change is the next version.
    let next = shared_b
        .apply(
            change(policy(25 * MINUTE, 8 * HOUR, 7 * DAY, 30 * DAY), "valid")
                .expecting(first.version()),
        )
        .await
        .unwrap();
    assert_eq!(next.version(), first.version() + 1);
    assert_eq!(backend.stored().await.unwrap().version, first.version() + 1);
    reached(&a.live, next.version()).await;
}

crate::on_both_stores!(
    hostile_changes_store_nothing_and_consume_no_version =>
    redis_hostile_changes_store_nothing_and_consume_no_version,
    postgres_hostile_changes_store_nothing_and_consume_no_version
);
