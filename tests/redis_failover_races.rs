#![cfg(all(feature = "redis-sentinel", feature = "axum", feature = "conformance"))]
//! Hostile tests of `RedisStore::with_replica_acknowledgement` and
//! `RedisStore::open_sentinel`: stopped replicas under concurrent logouts,
//! logouts retried on another node, logouts everywhere racing logins,
//! requests and logouts racing Sentinel failovers, a second failover back
//! to the restarted old primary, and configuration values that make no
//! sense.

mod common;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use http::StatusCode;

use common::redis_server::{primary_and_replica, OwnServer, SentinelSetup, PATIENCE};
use common::shared_store::{app, clock_now, log_in, send};
use tower_session_lifetime::id::SessionKey;
use tower_session_lifetime::store::conformance::{fresh_key, live_record};
use tower_session_lifetime::store::{LifetimeStore, StoreErrorKind, MAX_REPLICA_WAIT};
use tower_session_lifetime::RedisStore;

async fn exists_on(server: &OwnServer, key: &SessionKey) -> bool {
    let found: u32 = redis::cmd("EXISTS")
        .arg(format!("tsl:{}", key.to_hex()))
        .query_async(&mut server.connection().await)
        .await
        .unwrap();
    found == 1
}

fn acknowledged(server: &OwnServer, timeout: Duration) -> RedisStore {
    RedisStore::open(&server.url())
        .unwrap()
        .with_replica_acknowledgement(1, timeout)
        .unwrap()
}

async fn create(store: &RedisStore, subject: Option<&str>) -> SessionKey {
    let key = fresh_key();
    let mut record = live_record();
    if let Some(subject) = subject {
        record.subject = Some(subject.into());
    }
    assert!(store.create(&key, &record).await.unwrap());
    key
}

// ---------------------------------------------------------------------------
// Configuration.

#[tokio::test]
async fn replica_acknowledgements_that_make_no_sense_are_refused_and_the_edges_accepted() {
    let store = || RedisStore::open("redis://127.0.0.1:1").unwrap();
    for (replicas, timeout) in [
        (0, Duration::from_secs(1)),
        (0, Duration::ZERO),
        (1, Duration::ZERO),
        (1, Duration::from_nanos(1)),
        (1, Duration::from_nanos(999_999)),
        (u32::MAX, Duration::from_nanos(999_999)),
        (1, MAX_REPLICA_WAIT + Duration::from_nanos(1)),
        (1, Duration::MAX),
        (1, Duration::from_secs(u64::MAX / 1000)),
    ] {
        let refused = store().with_replica_acknowledgement(replicas, timeout);
        let err = refused.expect_err(&format!("{replicas} replicas, {timeout:?} accepted"));
        assert!(!err.to_string().is_empty());
    }
    for (replicas, timeout) in [
        (1, Duration::from_millis(1)),
        (1, Duration::from_nanos(1_999_999)),
        (u32::MAX, MAX_REPLICA_WAIT),
        (3, Duration::from_millis(500)),
    ] {
        assert!(
            store()
                .with_replica_acknowledgement(replicas, timeout)
                .is_ok(),
            "{replicas} replicas, {timeout:?} refused"
        );
    }
    // Configuring twice: the second must be checked too.
    let twice = store()
        .with_replica_acknowledgement(1, Duration::from_millis(10))
        .unwrap()
        .with_replica_acknowledgement(0, Duration::from_millis(10));
    assert!(twice.is_err(), "a second, invalid acknowledgement accepted");
}

/// More replicas asked for than exist: every logout fails as not
/// replicated (within the wait), never succeeds, and the session is gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn more_replicas_than_exist_never_acknowledge_a_logout() {
    let (primary, _replica) = primary_and_replica().await;
    let store = RedisStore::open(&primary.url())
        .unwrap()
        .with_replica_acknowledgement(2, Duration::from_millis(200))
        .unwrap();
    let key = create(&store, Some("dave")).await;
    let started = Instant::now();
    let err = store.delete(&key).await.unwrap_err();
    assert_eq!(err.kind(), StoreErrorKind::NotReplicated, "{err:?}");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    assert!(store.load(&key).await.unwrap().is_none());
    let err = store.delete_sessions_of("dave").await.unwrap_err();
    assert_eq!(err.kind(), StoreErrorKind::NotReplicated, "{err:?}");
}

// ---------------------------------------------------------------------------
// A stopped replica.

/// Eight logouts at once while the replica is stopped: each must fail as
/// `NotReplicated` within about its own wait (not queue behind the others'
/// `WAIT`s), while loads keep flowing fast; once the replica is back, a
/// logout is acknowledged again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_logouts_with_a_stopped_replica_each_wait_at_most_the_timeout() {
    const WAIT: Duration = Duration::from_millis(500);
    const LOGOUTS: usize = 8;
    let (primary, replica) = primary_and_replica().await;
    let store = Arc::new(acknowledged(&primary, WAIT));
    let mut keys = Vec::new();
    for _ in 0..LOGOUTS + 1 {
        keys.push(create(&store, None).await);
    }
    let reader = create(&store, None).await;
    primary.replicated(1).await;

    replica.signal("STOP");
    let done = Arc::new(AtomicBool::new(false));
    let loads = Arc::new(AtomicUsize::new(0));
    let slow_loads = Arc::new(AtomicUsize::new(0));
    let load_task = {
        let (store, done, loads, slow_loads) = (
            Arc::clone(&store),
            Arc::clone(&done),
            Arc::clone(&loads),
            Arc::clone(&slow_loads),
        );
        tokio::spawn(async move {
            while !done.load(Ordering::SeqCst) {
                let started = Instant::now();
                let loaded = store.load(&reader).await;
                assert!(matches!(loaded, Ok(Some(_))), "a load failed: {loaded:?}");
                if started.elapsed() > Duration::from_millis(250) {
                    slow_loads.fetch_add(1, Ordering::SeqCst);
                }
                loads.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
    };
    let logouts: Vec<_> = keys[..LOGOUTS]
        .iter()
        .cloned()
        .map(|key| {
            let store = Arc::clone(&store);
            tokio::spawn(async move {
                let started = Instant::now();
                let result = store.delete(&key).await;
                (result.map_err(|err| err.kind()), started.elapsed())
            })
        })
        .collect();
    let mut outcomes = Vec::new();
    for logout in logouts {
        outcomes.push(logout.await.unwrap());
    }
    done.store(true, Ordering::SeqCst);
    load_task.await.unwrap();
    let loads = loads.load(Ordering::SeqCst);
    let slow_loads = slow_loads.load(Ordering::SeqCst);
    replica.signal("CONT");
    // The replica is back: a logout is acknowledged, and is on the replica.
    let last = &keys[LOGOUTS];
    let mut result = store.delete(last).await;
    for _ in 0..20 {
        if result.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        result = store.delete(last).await;
    }
    let after_cont = result.map_err(|err| err.kind());
    let on_replica = exists_on(&replica, last).await;

    eprintln!("logouts (kind, elapsed): {outcomes:?}; loads {loads}, slow {slow_loads}");
    for (outcome, _) in &outcomes {
        assert_eq!(
            *outcome,
            Err(StoreErrorKind::NotReplicated),
            "every logout the stopped replica cannot acknowledge fails as NotReplicated: {outcomes:?}"
        );
    }
    let slowest = outcomes.iter().map(|(_, took)| *took).max().unwrap();
    assert!(
        slowest < WAIT + Duration::from_millis(1500),
        "a logout waited {slowest:?} with a {WAIT:?} wait: {outcomes:?}"
    );
    assert!(loads >= 20, "loads stalled: only {loads}");
    assert_eq!(slow_loads, 0, "loads were held up by the logouts");
    assert!(after_cont.is_ok(), "after CONT: {after_cont:?}");
    assert!(!on_replica, "an acknowledged logout is not on the replica");
    for key in &keys[..LOGOUTS] {
        assert!(
            store.load(key).await.unwrap().is_none(),
            "gone from the primary"
        );
    }
}

/// Through the layer: four users log out at once while the replica is
/// stopped; each logout answers 503 within about its wait (the
/// acknowledgement holds up only that logout, for at most the wait), and
/// requests that only load a session keep getting 200 quickly meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_logouts_through_the_layer_with_a_stopped_replica() {
    const WAIT: Duration = Duration::from_secs(1);
    let (primary, replica) = primary_and_replica().await;
    let clock = clock_now();
    let app = app(acknowledged(&primary, WAIT), &clock);
    let reader = log_in(&app, "reader").await;
    let mut leaving = Vec::new();
    for n in 0..4 {
        leaving.push(log_in(&app, &format!("leaving{n}")).await);
    }
    primary.replicated(1).await;

    replica.signal("STOP");
    let done = Arc::new(AtomicBool::new(false));
    let reads = {
        let (app, done, reader) = (app.clone(), Arc::clone(&done), reader.clone());
        tokio::spawn(async move {
            let (mut ok, mut slow, mut other) = (0usize, 0usize, Vec::new());
            while !done.load(Ordering::SeqCst) {
                let started = Instant::now();
                let status = send(&app, "GET", "/me", Some(&reader)).await.status();
                if status == StatusCode::OK {
                    ok += 1;
                } else {
                    other.push(status);
                }
                slow += usize::from(started.elapsed() > Duration::from_millis(500));
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            (ok, slow, other)
        })
    };
    let logouts: Vec<_> = leaving
        .iter()
        .cloned()
        .map(|cookie| {
            let app = app.clone();
            tokio::spawn(async move {
                let started = Instant::now();
                let status = send(&app, "POST", "/logout", Some(&cookie)).await.status();
                (status, started.elapsed())
            })
        })
        .collect();
    let mut outcomes = Vec::new();
    for logout in logouts {
        outcomes.push(logout.await.unwrap());
    }
    done.store(true, Ordering::SeqCst);
    let (ok, slow, other) = reads.await.unwrap();
    let mut after = Vec::new();
    for cookie in &leaving {
        after.push(
            send(&app, "GET", "/me", Some(cookie))
                .await
                .status()
                .as_u16(),
        );
    }
    replica.signal("CONT");
    eprintln!("logouts (status, elapsed): {outcomes:?}; reads ok {ok}, slow {slow}, other {other:?}; /me of the leavers after: {after:?}");

    assert!(
        other.is_empty(),
        "a load-only request was refused: {other:?}"
    );
    assert!(ok >= 10, "load-only requests stalled: {ok}");
    assert_eq!(slow, 0, "load-only requests were held up");
    for (status, took) in &outcomes {
        assert_eq!(*status, StatusCode::SERVICE_UNAVAILABLE, "{outcomes:?}");
        assert!(
            *took < WAIT + Duration::from_millis(1500),
            "a logout was held {took:?} with a {WAIT:?} wait: {outcomes:?}"
        );
    }
    // Whatever it answered, the sessions are gone from the primary.
    for cookie in &leaving {
        assert_eq!(
            send(&app, "GET", "/me", Some(cookie)).await.status(),
            StatusCode::UNAUTHORIZED
        );
    }
}

/// A logout fails as not replicated on node A (replica cut off); the user's
/// retry lands on node B (its own store on the same primary, with the same
/// acknowledgement). B must not report the logout done while the replica
/// still lacks it: if it does, the primary dying now brings the session back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_logout_retried_on_another_node_is_not_done_before_the_replica_has_it() {
    const WAIT: Duration = Duration::from_millis(300);
    let (mut primary, replica) = primary_and_replica().await;
    let node_a = acknowledged(&primary, WAIT);
    let node_b = acknowledged(&primary, WAIT);
    let key = create(&node_a, Some("erin")).await;
    let others = [
        create(&node_a, Some("erin")).await,
        create(&node_a, Some("erin")).await,
    ];
    // B has written before (its connection is warm, as a busy node's is).
    let warm = create(&node_b, None).await;
    assert!(node_b.delete(&warm).await.unwrap());
    primary.replicated(1).await;

    // The replica is cut off (as by a partition): it gets nothing more.
    let () = redis::cmd("REPLICAOF")
        .arg("NO")
        .arg("ONE")
        .query_async(&mut replica.connection().await)
        .await
        .unwrap();
    let err = node_a.delete(&key).await.unwrap_err();
    assert_eq!(err.kind(), StoreErrorKind::NotReplicated);
    let err = node_a.delete_sessions_of("erin").await.unwrap_err();
    assert_eq!(err.kind(), StoreErrorKind::NotReplicated);
    let retried = node_b.delete(&key).await;
    let retried_everywhere = node_b.delete_sessions_of("erin").await;

    // The primary dies; the cut-off replica is the primary now.
    primary.stop();
    let promoted = RedisStore::open(&replica.url()).unwrap();
    let back = promoted.load(&key).await.unwrap().is_some();
    let others_back = [
        promoted.load(&others[0]).await.unwrap().is_some(),
        promoted.load(&others[1]).await.unwrap().is_some(),
    ];
    eprintln!(
        "retry on B: delete {:?}, delete_sessions_of {:?}; after failover: session back {back}, others back {others_back:?}",
        retried.as_ref().map_err(|e| e.kind()),
        retried_everywhere.as_ref().map_err(|e| e.kind())
    );
    match &retried {
        Ok(_) => assert!(
            !back,
            "node B reported the retried logout done ({retried:?}), but the failover brought the session back"
        ),
        Err(err) => assert_eq!(err.kind(), StoreErrorKind::NotReplicated),
    }
    match &retried_everywhere {
        Ok(_) => assert_eq!(
            others_back,
            [false, false],
            "node B reported the retried logout everywhere done ({retried_everywhere:?}), but the failover brought sessions back"
        ),
        Err(err) => assert_eq!(err.kind(), StoreErrorKind::NotReplicated),
    }
}

/// Logouts everywhere while the same subject logs in, concurrently: every
/// session created is either counted as ended or still live (none lost,
/// none counted twice), and once a logout everywhere succeeds after the
/// logins ended, none is left, on the primary or on the replica.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logout_everywhere_racing_logins_loses_and_double_counts_nothing() {
    let (primary, replica) = primary_and_replica().await;
    let store = Arc::new(acknowledged(&primary, Duration::from_secs(5)));
    let creators: Vec<_> = (0..4)
        .map(|_| {
            let store = Arc::clone(&store);
            tokio::spawn(async move {
                let mut keys = Vec::new();
                for _ in 0..60 {
                    keys.push(create(&store, Some("frank")).await);
                }
                keys
            })
        })
        .collect();
    let deleter = {
        let store = Arc::clone(&store);
        tokio::spawn(async move {
            let mut ended = 0;
            for _ in 0..10 {
                ended += store.delete_sessions_of("frank").await.unwrap();
                tokio::time::sleep(Duration::from_millis(3)).await;
            }
            ended
        })
    };
    let mut created = Vec::new();
    for creator in creators {
        created.extend(creator.await.unwrap());
    }
    let ended_during = deleter.await.unwrap();
    let mut live = 0;
    for key in &created {
        live += u64::from(store.load(key).await.unwrap().is_some());
    }
    let listed = store.sessions_of("frank").await.unwrap().len() as u64;
    assert_eq!(listed, live, "the index lists exactly the live sessions");
    assert_eq!(
        ended_during + live,
        created.len() as u64,
        "ended {ended_during} + live {live} != created {}",
        created.len()
    );

    let ended_after = store.delete_sessions_of("frank").await.unwrap();
    assert_eq!(ended_after, live);
    for key in &created {
        assert!(store.load(key).await.unwrap().is_none());
        assert!(
            !exists_on(&replica, key).await,
            "an acknowledged logout everywhere is not on the replica yet"
        );
    }
}

// ---------------------------------------------------------------------------
// Sentinel.

const SERVICE: &str = "tsl-attack";

/// A store on `cluster`'s Sentinels, waiting for one replica on logouts.
async fn store(cluster: &SentinelSetup) -> RedisStore {
    let urls = cluster.urls();
    let urls: Vec<&str> = urls.iter().map(String::as_str).collect();
    RedisStore::open_sentinel(&urls, SERVICE)
        .await
        .unwrap()
        .with_replica_acknowledgement(1, Duration::from_secs(2))
        .unwrap()
}

/// Checks one request's answer: a live session 200 or 503, a logged-out
/// one 401 or 503.
fn check(user: &str, live: bool, status: StatusCode) {
    if live {
        assert!(
            status == StatusCode::OK || status == StatusCode::SERVICE_UNAVAILABLE,
            "live session of {user} answered {status}"
        );
    } else {
        assert!(
            status == StatusCode::UNAUTHORIZED || status == StatusCode::SERVICE_UNAVAILABLE,
            "logged-out session of {user} answered {status}"
        );
    }
}

/// Hammers `app` with requests for `sessions` from `workers` tasks until
/// every live session gets 200 and every logged-out one 401 in one sweep;
/// every answer is checked. Returns how many answers were 503.
async fn hammer_until_recovered(
    app: &axum::Router,
    sessions: &[(String, String, bool)],
    workers: usize,
) -> usize {
    let recovered = Arc::new(AtomicBool::new(false));
    let unavailable = Arc::new(AtomicUsize::new(0));
    let sessions = Arc::new(sessions.to_vec());
    let tasks: Vec<_> = (0..workers)
        .map(|worker| {
            let (app, recovered, unavailable, sessions) = (
                app.clone(),
                Arc::clone(&recovered),
                Arc::clone(&unavailable),
                Arc::clone(&sessions),
            );
            tokio::spawn(async move {
                let mut turn = worker;
                while !recovered.load(Ordering::SeqCst) {
                    let (user, cookie, live) = &sessions[turn % sessions.len()];
                    turn += workers;
                    let status = tokio::time::timeout(
                        Duration::from_secs(10),
                        send(&app, "GET", "/me", Some(cookie)),
                    )
                    .await
                    .expect("a request hung for 10 s")
                    .status();
                    check(user, *live, status);
                    if status == StatusCode::SERVICE_UNAVAILABLE {
                        unavailable.fetch_add(1, Ordering::SeqCst);
                    }
                }
            })
        })
        .collect();
    let start = Instant::now();
    loop {
        let mut all = true;
        for (user, cookie, live) in sessions.iter() {
            let status = send(app, "GET", "/me", Some(cookie)).await.status();
            check(user, *live, status);
            let wanted = if *live {
                StatusCode::OK
            } else {
                StatusCode::UNAUTHORIZED
            };
            all &= status == wanted;
        }
        if all {
            break;
        }
        assert!(start.elapsed() < PATIENCE, "the store did not recover");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    recovered.store(true, Ordering::SeqCst);
    for task in tasks {
        task.await.unwrap();
    }
    unavailable.load(Ordering::SeqCst)
}

/// Many concurrent requests, and logouts, while the primary dies: every
/// answer for a live session is 200 or 503, for a logged-out one 401 or
/// 503; a logout answered 200 holds after the promotion; the store follows
/// the promoted replica by itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_and_logouts_racing_a_sentinel_failover_never_misadmit() {
    let mut cluster = SentinelSetup::start(SERVICE).await;
    let clock = clock_now();
    let app = app(store(&cluster).await, &clock);
    let mut sessions = Vec::new();
    for n in 0..6 {
        let user = format!("live{n}");
        sessions.push((user.clone(), log_in(&app, &user).await, true));
    }
    for n in 0..6 {
        let user = format!("out{n}");
        let cookie = log_in(&app, &user).await;
        assert_eq!(
            send(&app, "POST", "/logout", Some(&cookie)).await.status(),
            StatusCode::OK
        );
        sessions.push((user, cookie, false));
    }
    let mut racing = Vec::new();
    for n in 0..8 {
        let user = format!("racing{n}");
        racing.push((user.clone(), log_in(&app, &user).await));
    }
    cluster.primary.replicated(1).await;

    // Logouts in flight as the primary is killed.
    let logouts: Vec<_> = racing
        .iter()
        .cloned()
        .enumerate()
        .map(|(n, (user, cookie))| {
            let app = app.clone();
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(5 * n as u64)).await;
                let status = send(&app, "POST", "/logout", Some(&cookie)).await.status();
                (user, cookie, status)
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(15)).await;
    cluster.primary.stop();
    let mut raced = Vec::new();
    for logout in logouts {
        raced.push(logout.await.unwrap());
    }
    eprintln!(
        "racing logouts: {:?}",
        raced
            .iter()
            .map(|(u, _, s)| (u, s.as_u16()))
            .collect::<Vec<_>>()
    );
    for (user, _, status) in &raced {
        assert!(
            *status == StatusCode::OK || *status == StatusCode::SERVICE_UNAVAILABLE,
            "logout of {user}: {status}"
        );
    }

    let unavailable = hammer_until_recovered(&app, &sessions, 6).await;
    assert!(unavailable > 0, "no request saw the failover");
    cluster.named(cluster.replica.port()).await;

    // A logout the app answered 200 holds after the promotion.
    for (user, cookie, status) in &raced {
        let now = send(&app, "GET", "/me", Some(cookie)).await.status();
        if *status == StatusCode::OK {
            assert_eq!(now, StatusCode::UNAUTHORIZED, "{user}'s logout was undone");
        } else {
            assert!(
                now == StatusCode::OK || now == StatusCode::UNAUTHORIZED,
                "{user} after a failed logout: {now}"
            );
        }
    }
    // New sessions go to the promoted replica.
    let carol = log_in(&app, "carol").await;
    assert_eq!(
        send(&app, "GET", "/me", Some(&carol)).await.status(),
        StatusCode::OK
    );
}

/// Two failovers: the primary dies and its replica is promoted; the old
/// primary comes back (Sentinel makes it a replica); then the new primary
/// dies and the old one is promoted back. Through both, no wrong
/// admission, and the store follows without a restart; sessions started and
/// ended between the failovers hold.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_failover_back_to_the_restarted_old_primary_is_followed() {
    let mut cluster = SentinelSetup::start(SERVICE).await;
    let clock = clock_now();
    let app = app(store(&cluster).await, &clock);
    let alice = log_in(&app, "alice").await;
    let bob = log_in(&app, "bob").await;
    assert_eq!(
        send(&app, "POST", "/logout", Some(&bob)).await.status(),
        StatusCode::OK
    );
    cluster.primary.replicated(1).await;
    let mut sessions = vec![
        ("alice".to_owned(), alice.clone(), true),
        ("bob".to_owned(), bob.clone(), false),
    ];

    // First failover.
    cluster.primary.stop();
    let unavailable = hammer_until_recovered(&app, &sessions, 4).await;
    assert!(unavailable > 0);
    cluster.named(cluster.replica.port()).await;

    // The old primary comes back, empty (no persistence). Requests keep
    // flowing while the Sentinels turn it into a replica: logins made now
    // must not land on it (it would lose them on resync).
    cluster.primary.restart();
    let mut logged_in_meanwhile = Vec::new();
    let start = Instant::now();
    loop {
        let response = send(&app, "POST", "/login?user=carol", None).await;
        check(
            "alice",
            true,
            send(&app, "GET", "/me", Some(&alice)).await.status(),
        );
        check(
            "bob",
            false,
            send(&app, "GET", "/me", Some(&bob)).await.status(),
        );
        if response.status() == StatusCode::OK {
            let set = common::set_cookie(&response).unwrap();
            logged_in_meanwhile.push(format!("{}={}", set.name(), set.value()));
        }
        let info = cluster.primary.replication_info().await.unwrap_or_default();
        if info.contains("role:slave") && info.contains("master_link_status:up") {
            break;
        }
        assert!(
            start.elapsed() < PATIENCE,
            "the old primary did not become a replica"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(!logged_in_meanwhile.is_empty());
    // Between the failovers: dave logs in, erin logs in and out.
    let dave = log_in(&app, "dave").await;
    let erin = log_in(&app, "erin").await;
    assert_eq!(
        send(&app, "POST", "/logout", Some(&erin)).await.status(),
        StatusCode::OK
    );
    cluster.replica.replicated(1).await;
    for (n, cookie) in logged_in_meanwhile.iter().enumerate() {
        sessions.push((format!("carol{n}"), cookie.clone(), true));
    }
    sessions.push(("dave".into(), dave, true));
    sessions.push(("erin".into(), erin, false));
    // The restart did not lose what was logged in while it happened.
    for (user, cookie, live) in &sessions {
        let status = send(&app, "GET", "/me", Some(cookie)).await.status();
        let wanted = if *live {
            StatusCode::OK
        } else {
            StatusCode::UNAUTHORIZED
        };
        assert_eq!(status, wanted, "{user} before the second failover");
    }

    // Second failover, back to the old primary.
    cluster.replica.stop();
    let unavailable = hammer_until_recovered(&app, &sessions, 4).await;
    assert!(unavailable > 0);
    cluster.named(cluster.primary.port()).await;
    let frank = log_in(&app, "frank").await;
    assert_eq!(
        send(&app, "GET", "/me", Some(&frank)).await.status(),
        StatusCode::OK
    );
    // And it is on the old primary, the primary again.
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg("tsl:s:frank")
        .query_async(&mut cluster.primary.connection().await)
        .await
        .unwrap();
    assert_eq!(
        keys.len(),
        1,
        "frank's session is on the promoted old primary"
    );
}

/// One of the Sentinels is stopped (a paused process accepts connections
/// and never answers) when the primary dies: the other two fail over, and
/// the store must still follow by itself, no request hanging.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_sentinel_does_not_keep_the_store_from_following() {
    let mut cluster = SentinelSetup::start(SERVICE).await;
    let clock = clock_now();
    let app = app(store(&cluster).await, &clock);
    let alice = log_in(&app, "alice").await;
    let bob = log_in(&app, "bob").await;
    assert_eq!(
        send(&app, "POST", "/logout", Some(&bob)).await.status(),
        StatusCode::OK
    );
    cluster.primary.replicated(1).await;

    cluster.sentinels[0].signal("STOP");
    cluster.primary.stop();
    let sessions = vec![
        ("alice".to_owned(), alice, true),
        ("bob".to_owned(), bob, false),
    ];
    let unavailable = hammer_until_recovered(&app, &sessions, 4).await;
    cluster.sentinels[0].signal("CONT");
    assert!(unavailable > 0);
}
