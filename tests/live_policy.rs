//! The policies of a running layer, changed through `LivePolicy` (with the
//! manual clock): a shorter limit bites at each existing session's next
//! request, a longer one applies only to sessions created after it,
//! remember-me and the absolute deadline keep their rules, a change that
//! would make a route group longer than its tenant is refused with nothing
//! changed, two admins' changes on one version give one winner and one
//! typed conflict, and every change is counted.
#![cfg(feature = "axum")]

mod common;

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use common::{body_text, TestApp, HOUR, MINUTE};
use http::StatusCode;
use proptest::prelude::*;
use tower_session_lifetime::observe::SessionMetrics;
use tower_session_lifetime::policy::{
    LivePolicy, PolicyChange, PolicyChangeError, PolicyError, Tightening,
};
use tower_session_lifetime::rejection::RejectReason;
use tower_session_lifetime::{Policies, Policy, SessionLifetimeLayer};

const DAY: Duration = Duration::from_secs(24 * 3600);

fn idle(idle: Duration) -> Policy {
    Policy::builder()
        .idle_timeout(idle)
        .absolute_timeout(8 * HOUR)
        .build()
        .unwrap()
}

/// An app whose layer `configure` sets up, and the layer's live policy.
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

fn app(policy: Policy) -> (TestApp, LivePolicy) {
    app_with(move |layer| layer.with_policy(policy))
}

fn set(live: &LivePolicy, policy: Policy) {
    live.apply(PolicyChange::default_policy(policy).by("test admin"))
        .unwrap();
}

async fn reason(app: &TestApp, cookie: &str) -> Option<RejectReason> {
    app.me(cookie)
        .await
        .extensions()
        .get::<RejectReason>()
        .copied()
}

#[tokio::test]
async fn a_shorter_idle_timeout_bites_at_an_existing_sessions_next_request() {
    let (app, live) = app(idle(30 * MINUTE));
    let cookie = app.login("alice", false).await;
    app.advance(15 * MINUTE);
    assert_eq!(reason(&app, &cookie).await, None, "within the old limit");
    set(&live, idle(10 * MINUTE));
    app.advance(11 * MINUTE);
    assert_eq!(reason(&app, &cookie).await, Some(RejectReason::IdleTimeout));
}

/// Runs `change` while the next request waits for the store: the layer
/// then asks the store as a networked store is asked, not at once.
fn while_the_store_answers(app: &TestApp, change: impl FnOnce() + Send + 'static) {
    app.store
        .sync_reads
        .store(false, std::sync::atomic::Ordering::SeqCst);
    *app.store.while_next_load.lock().unwrap() = Some(Box::new(change));
}

#[tokio::test]
async fn a_request_is_judged_by_the_policy_in_force_when_it_arrived() {
    let (app, live) = app(idle(30 * MINUTE));
    let cookie = app.login("alice", false).await;
    set(&live, idle(10 * MINUTE));
    app.advance(15 * MINUTE);
    // Loosened again while the request waits for the store: it arrived
    // under 10 minutes, and is judged by them.
    let loosen = live.clone();
    while_the_store_answers(&app, move || set(&loosen, idle(30 * MINUTE)));
    assert_eq!(reason(&app, &cookie).await, Some(RejectReason::IdleTimeout));
    assert!(
        app.store.while_next_load.lock().unwrap().is_none(),
        "the change was made meanwhile"
    );
    assert_eq!(
        live.current().policies().default_policy().idle_timeout(),
        30 * MINUTE
    );

    // Tightened while the request waits: it arrived under 30 minutes.
    let other = app.login("bob", false).await;
    app.advance(15 * MINUTE);
    let tighten = live.clone();
    while_the_store_answers(&app, move || set(&tighten, idle(10 * MINUTE)));
    assert_eq!(
        reason(&app, &other).await,
        None,
        "within the limit it arrived under"
    );
    app.advance(MINUTE);
    assert_eq!(
        reason(&app, &other).await,
        None,
        "a minute after its last request, within the new 10 minutes"
    );
    app.advance(11 * MINUTE);
    assert_eq!(reason(&app, &other).await, Some(RejectReason::IdleTimeout));
}

#[tokio::test]
async fn a_longer_idle_timeout_applies_only_to_sessions_created_after_it() {
    let (app, live) = app(idle(30 * MINUTE));
    let before = app.login("alice", false).await;
    set(&live, idle(60 * MINUTE));
    let after = app.login("bob", false).await;
    app.advance(45 * MINUTE);
    assert_eq!(
        reason(&app, &before).await,
        Some(RejectReason::IdleTimeout),
        "the old session keeps its 30 minutes"
    );
    let response = app.me(&after).await;
    assert_eq!(response.status(), StatusCode::OK, "the new one has 60");
    assert_eq!(body_text(response).await, "bob");
}

#[tokio::test]
async fn shortened_then_lengthened_a_session_keeps_the_limit_it_started_with() {
    let (app, live) = app(idle(30 * MINUTE));
    let cookie = app.login("alice", false).await;
    set(&live, idle(10 * MINUTE));
    set(&live, idle(60 * MINUTE));
    app.advance(20 * MINUTE);
    assert_eq!(
        reason(&app, &cookie).await,
        None,
        "10 minutes no longer apply"
    );
    app.advance(31 * MINUTE);
    assert_eq!(
        reason(&app, &cookie).await,
        Some(RejectReason::IdleTimeout),
        "60 minutes never applied to it"
    );
}

#[tokio::test]
async fn a_shorter_absolute_timeout_ends_existing_sessions_at_the_new_deadline() {
    let (app, live) = app(idle(HOUR));
    let cookie = app.login("alice", false).await;
    set(
        &live,
        Policy::builder()
            .idle_timeout(HOUR)
            .absolute_timeout(2 * HOUR)
            .build()
            .unwrap(),
    );
    for _ in 0..2 {
        app.advance(50 * MINUTE);
        assert_eq!(reason(&app, &cookie).await, None, "activity keeps it");
    }
    app.advance(25 * MINUTE);
    assert_eq!(
        reason(&app, &cookie).await,
        Some(RejectReason::AbsoluteTimeout),
        "2 hours since login, activity or not"
    );
}

#[tokio::test]
async fn a_shorter_remember_me_period_bites_and_a_longer_one_waits_for_new_sessions() {
    let remembered = |period: Duration| {
        Policy::builder()
            .idle_timeout(30 * MINUTE)
            .remember_me_period(period)
            .absolute_timeout(30 * DAY)
            .build()
            .unwrap()
    };
    let (app, live) = app(remembered(7 * DAY));
    let old = app.login("alice", true).await;
    set(&live, remembered(DAY));
    app.advance(DAY + HOUR);
    assert_eq!(reason(&app, &old).await, Some(RejectReason::IdleTimeout));

    let shortened = app.login("bob", true).await;
    set(&live, remembered(7 * DAY));
    let lengthened = app.login("carol", true).await;
    app.advance(2 * DAY);
    assert_eq!(
        reason(&app, &shortened).await,
        Some(RejectReason::IdleTimeout),
        "created under one day, kept to it"
    );
    assert_eq!(
        reason(&app, &lengthened).await,
        None,
        "created under seven days"
    );
}

#[tokio::test]
async fn a_change_that_would_lengthen_a_route_group_is_refused_and_changes_nothing() {
    let policies = Policies::builder(idle(30 * MINUTE))
        .tenant("strict.example", idle(20 * MINUTE))
        .route("/admin", Tightening::new().idle_timeout(5 * MINUTE))
        .build()
        .unwrap();
    let (app, live) = app_with(move |layer| layer.with_policies(policies));
    let cookie = app.login("alice", false).await;

    let err = live
        .apply(PolicyChange::default_policy(idle(3 * MINUTE)).by("admin"))
        .unwrap_err();
    assert!(
        matches!(
            err,
            PolicyChangeError::Invalid(PolicyError::LongerThanEnclosing { .. })
        ),
        "{err}"
    );
    let err = live
        .apply(PolicyChange::tenant("unknown.example", idle(MINUTE)))
        .unwrap_err();
    assert_eq!(
        err,
        PolicyChangeError::UnknownTenant("unknown.example".to_owned())
    );
    let now = live.current();
    assert_eq!(now.version(), 0, "nothing changed");
    assert_eq!(now.policies().default_policy(), &idle(30 * MINUTE));
    app.advance(25 * MINUTE);
    assert_eq!(
        reason(&app, &cookie).await,
        None,
        "the running policy holds"
    );

    // A tenant's change that keeps its route group a tightening applies.
    let changed = live
        .apply(PolicyChange::tenant("strict.example", idle(10 * MINUTE)).by("admin"))
        .unwrap();
    assert_eq!(changed.version(), 1);
    assert_eq!(
        changed.policies().tenant_policy("strict.example"),
        Some(&idle(10 * MINUTE))
    );
}

#[test]
fn two_admins_changing_one_version_give_one_winner_and_one_conflict() {
    let (_app, live) = app(idle(30 * MINUTE));
    let seen = live.current().version();
    let first = live.apply(
        PolicyChange::default_policy(idle(20 * MINUTE))
            .expecting(seen)
            .by("alice"),
    );
    let second = live.apply(
        PolicyChange::default_policy(idle(40 * MINUTE))
            .expecting(seen)
            .by("bob"),
    );
    assert_eq!(first.unwrap().version(), 1);
    assert_eq!(
        second.unwrap_err(),
        PolicyChangeError::Conflict {
            expected: 0,
            current: 1
        }
    );
    assert_eq!(
        live.current().policies().default_policy(),
        &idle(20 * MINUTE),
        "the winner's change stands"
    );
}

#[test]
fn concurrent_admins_on_threads_make_each_version_once() {
    let (_app, live) = app(idle(30 * MINUTE));
    let winners: usize = std::thread::scope(|scope| {
        let tries: Vec<_> = (0..8)
            .map(|admin| {
                let live = live.clone();
                scope.spawn(move || {
                    let policy = idle((10 + admin) * MINUTE);
                    let change = PolicyChange::default_policy(policy).expecting(0);
                    usize::from(live.apply(change.by(format!("admin {admin}"))).is_ok())
                })
            })
            .collect();
        tries.into_iter().map(|t| t.join().unwrap()).sum()
    });
    assert_eq!(winners, 1);
    assert_eq!(live.current().version(), 1);
}

#[test]
fn every_change_is_counted() {
    let metrics = SessionMetrics::new();
    let counted = metrics.clone();
    let (_app, live) =
        app_with(move |layer| layer.with_policy(idle(30 * MINUTE)).with_metrics(counted));
    set(&live, idle(20 * MINUTE));
    set(&live, idle(10 * MINUTE));
    assert!(live
        .apply(PolicyChange::default_policy(idle(MINUTE)).expecting(0))
        .is_err());
    assert_eq!(
        metrics.snapshot().policy_changes,
        2,
        "refused changes do not count"
    );
}

#[derive(Clone, Debug)]
enum Step {
    Advance(u64),
    SetIdle(u64),
    SetAbsolute(u64),
    Request(usize),
    /// A request during whose store round trip the idle timeout changes.
    RequestWhileChanging(usize, u64),
    Login,
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        3 => (1u64..90).prop_map(Step::Advance),
        1 => (2u64..120).prop_map(Step::SetIdle),
        1 => (30u64..600).prop_map(Step::SetAbsolute),
        4 => (0usize..4).prop_map(Step::Request),
        2 => (0usize..4, 2u64..120).prop_map(|(index, idle)| Step::RequestWhileChanging(index, idle)),
        1 => Just(Step::Login),
    ]
}

/// What the model knows of a session: when it was created, its last
/// admitted request, and its snapshot's limits.
struct Modelled {
    cookie: String,
    created: u64,
    last_admitted: u64,
    idle: u64,
    absolute: u64,
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// Over random interleavings of policy changes and requests, no request
    /// is admitted past the tighter of its session's snapshot and the
    /// policy in force when it arrived (minutes on the manual clock); a
    /// request right after a login always is.
    #[test]
    fn no_request_is_admitted_past_the_tighter_of_its_snapshot_and_the_policy_in_force(
        steps in proptest::collection::vec(step(), 1..40)
    ) {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime.block_on(async {
            let limits = |idle: u64, absolute: u64| {
                Policy::builder()
                    .idle_timeout(Duration::from_secs(idle * 60))
                    .absolute_timeout(Duration::from_secs(absolute * 60))
                    .build()
                    .unwrap()
            };
            let (mut idle_now, mut absolute_now) = (30, 240);
            let (app, live) = app(limits(idle_now, absolute_now));
            let mut now = 0u64;
            let mut sessions: Vec<Modelled> = Vec::new();
            for step in steps {
                match step {
                    Step::Advance(minutes) => {
                        app.advance(Duration::from_secs(minutes * 60));
                        now += minutes;
                    }
                    Step::SetIdle(minutes) => {
                        idle_now = minutes;
                        set(&live, limits(idle_now, absolute_now));
                    }
                    Step::SetAbsolute(minutes) => {
                        absolute_now = minutes;
                        set(&live, limits(idle_now, absolute_now));
                    }
                    Step::Login => {
                        let cookie = app.login("alice", false).await;
                        prop_assert_eq!(reason(&app, &cookie).await, None, "right after login");
                        sessions.push(Modelled {
                            cookie,
                            created: now,
                            last_admitted: now,
                            idle: idle_now,
                            absolute: absolute_now,
                        });
                    }
                    Step::Request(index) | Step::RequestWhileChanging(index, _) => {
                        let Some(session) = sessions.get_mut(index) else { continue };
                        // In force when the request arrives; a change made
                        // while it waits is in force from the next one on.
                        let (idle_then, absolute_then) = (idle_now, absolute_now);
                        if let Step::RequestWhileChanging(_, minutes) = step {
                            idle_now = minutes;
                            let (live, policy) = (live.clone(), limits(idle_now, absolute_now));
                            while_the_store_answers(&app, move || set(&live, policy));
                        }
                        let admitted = reason(&app, &session.cookie).await.is_none();
                        app.store.sync_reads.store(true, std::sync::atomic::Ordering::SeqCst);
                        if admitted {
                            let idle = session.idle.min(idle_then);
                            let absolute = session.absolute.min(absolute_then);
                            prop_assert!(
                                now - session.last_admitted < idle,
                                "admitted {} min after its last request, idle limit {}",
                                now - session.last_admitted,
                                idle
                            );
                            prop_assert!(
                                now - session.created < absolute,
                                "admitted {} min after login, absolute limit {}",
                                now - session.created,
                                absolute
                            );
                            session.last_admitted = now;
                        }
                    }
                }
            }
            Ok(())
        })?;
    }
}
