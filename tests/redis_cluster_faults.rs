//! `RedisStore::open_cluster` on Redis Clusters of the tests' own, whose
//! nodes the tests stop: sessions and requests spread over three primaries
//! at one round trip per request; a write cut off between a subject's
//! index and its record; a primary killed while requests flow, its
//! replica promoted, and the store following without a restart; the whole
//! cluster gone and back.
//!
//! Run through `scripts/test`, which sets `TSL_REDIS_SERVER`.
#![cfg(all(feature = "conformance", feature = "redis-cluster", feature = "axum"))]

mod common;

use std::time::Duration;

use common::redis_cluster::{cluster_info, command_calls, OwnCluster};
use common::redis_server::until;
use common::shared_store::{
    an_outage_gives_503_and_the_store_recovers, app, clock_now, log_in, send, Outage,
};
use http::StatusCode;
use tower_session_lifetime::id::SessionId;
use tower_session_lifetime::rejection::RejectReason;
use tower_session_lifetime::store::conformance::{fresh_key, live_record};
use tower_session_lifetime::store::{LifetimeStore, StoreErrorKind, DEFAULT_REDIS_PREFIX};
use tower_session_lifetime::RedisStore;

async fn open(cluster: &OwnCluster) -> RedisStore {
    let urls = cluster.urls();
    let urls: Vec<&str> = urls.iter().map(String::as_str).collect();
    RedisStore::open_cluster(&urls).await.unwrap()
}

fn session_key(key: &tower_session_lifetime::id::SessionKey) -> String {
    format!("{DEFAULT_REDIS_PREFIX}{}", key.to_hex())
}

fn index_key(subject: &str) -> String {
    format!("{DEFAULT_REDIS_PREFIX}s:{subject}")
}

/// Within 15 % of the mean of `counts`.
fn even(counts: &[u64]) -> bool {
    let mean = counts.iter().sum::<u64>() as f64 / counts.len() as f64;
    counts
        .iter()
        .all(|&count| (count as f64 - mean).abs() <= 0.15 * mean)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_and_requests_spread_over_three_primaries_at_one_round_trip_each() {
    const SESSIONS: usize = 3000;
    let cluster = OwnCluster::start(3, 0).await;
    let store = open(&cluster).await;
    let mut ids = Vec::new();
    for _ in 0..SESSIONS {
        let id = SessionId::generate().unwrap();
        let mut record = live_record();
        record.subject = None;
        assert!(store.create(&id.key(), &record).await.unwrap());
        ids.push(id);
    }
    let mut keys = Vec::new();
    for primary in cluster.primaries() {
        let size: u64 = redis::cmd("DBSIZE")
            .query_async(&mut primary.connection().await)
            .await
            .unwrap();
        keys.push(size);
    }
    println!("sessions per primary: {keys:?}");
    assert_eq!(keys.iter().sum::<u64>(), SESSIONS as u64);
    assert!(even(&keys), "sessions spread evenly: {keys:?}");

    let clock = clock_now();
    let app = app(open(&cluster).await, &clock);
    let cookie_name = log_in(&app, "probe")
        .await
        .split_once('=')
        .unwrap()
        .0
        .to_owned();
    // Every primary loads the scripts before the count starts.
    let (warm_up, counted) = ids.split_at(300);
    for id in warm_up {
        send(
            &app,
            "GET",
            "/me",
            Some(&format!("{cookie_name}={}", id.encode())),
        )
        .await;
    }
    // Twice over: the first request of each session runs the script (this
    // process has no hint for it yet), the second a plain `HGETALL`.
    for pass in ["first", "second"] {
        let calls = round_trips_during(&cluster, async || {
            for id in counted {
                let cookie = format!("{cookie_name}={}", id.encode());
                let response = send(&app, "GET", "/me", Some(&cookie)).await;
                assert!(
                    response.extensions().get::<RejectReason>().is_none(),
                    "admitted"
                );
            }
        })
        .await;
        let total: u64 = calls.iter().sum();
        println!(
            "{pass} requests: round trips per primary for {} admitted requests: {calls:?}, \
             {:.3} round trips a request",
            counted.len(),
            total as f64 / counted.len() as f64
        );
        assert_eq!(total, counted.len() as u64, "one round trip a request");
        assert!(even(&calls), "requests spread evenly: {calls:?}");
    }
}

/// The round trips the store made to each primary while `work` ran,
/// from `INFO commandstats` (which counts the commands a script runs as
/// well as the script): the scripts (`EVALSHA`) and the plain loads, which
/// are the `HGETALL`s less the one each load-and-touch script runs. Fails
/// on any other command.
async fn round_trips_during(cluster: &OwnCluster, work: impl AsyncFnOnce()) -> Vec<u64> {
    for primary in cluster.primaries() {
        let () = redis::cmd("CONFIG")
            .arg("RESETSTAT")
            .query_async(&mut primary.connection().await)
            .await
            .unwrap();
    }
    work().await;
    let mut trips = Vec::new();
    for primary in cluster.primaries() {
        let stats = command_calls(primary).await;
        let calls = |name: &str| {
            stats
                .iter()
                .find(|(command, _)| command == name)
                .map_or(0, |(_, calls)| *calls)
        };
        let others: Vec<_> = stats
            .iter()
            .filter(|(name, _)| {
                !matches!(name.as_str(), "hgetall" | "evalsha" | "config|resetstat")
            })
            .collect();
        assert!(
            others.is_empty(),
            "only loads reach the primaries: {others:?}"
        );
        let (scripts, plain) = (calls("evalsha"), calls("hgetall") - calls("evalsha"));
        trips.push(scripts + plain);
    }
    trips
}

/// A key of a session whose primary is not the one of `subject`'s index.
async fn key_apart_from(
    cluster: &OwnCluster,
    subject: &str,
) -> (tower_session_lifetime::id::SessionKey, usize, usize) {
    let index_owner = cluster.owner_of(&index_key(subject)).await;
    loop {
        let key = fresh_key();
        let owner = cluster.owner_of(&session_key(&key)).await;
        if owner != index_owner {
            return (key, owner, index_owner);
        }
    }
}

/// The record's primary stops answering between the two writes of a login
/// (`SIGSTOP`): the login fails as unavailable, the index keeps an entry
/// without a record, which no reader lists, and the login's retry once the
/// primary answers again is listed. A change of subject whose index cannot
/// be written leaves the record as it was: the index never misses it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_cut_off_between_index_and_record_leaves_no_live_session_unlisted() {
    let cluster = OwnCluster::start(3, 0).await;
    let store = open(&cluster).await;
    let subject = format!("cut-{}", fresh_key().to_hex());
    let (key, record_owner, index_owner) = key_apart_from(&cluster, &subject).await;
    let mut record = live_record();
    record.subject = Some(subject.as_str().into());

    cluster.nodes[record_owner].signal("STOP");
    let err = store.create(&key, &record).await.unwrap_err();
    assert_eq!(err.kind(), StoreErrorKind::Unavailable, "{err:?}");
    let score: Option<u64> = redis::cmd("ZSCORE")
        .arg(index_key(&subject))
        .arg(key.to_hex())
        .query_async(&mut cluster.nodes[index_owner].connection().await)
        .await
        .unwrap();
    assert!(score.is_some(), "the index was written first: {err:?}");
    cluster.nodes[record_owner].signal("CONT");
    cluster.whole_again().await;

    assert_eq!(store.load(&key).await.unwrap(), None);
    assert!(store.sessions_of(&subject).await.unwrap().is_empty());
    assert!(store.create(&key, &record).await.unwrap(), "the retry");
    let listed = store.sessions_of(&subject).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].0, key);

    // A new subject whose index's primary does not answer: the update
    // fails before the record changes.
    let other = format!("other-{}", fresh_key().to_hex());
    let other_owner = cluster.owner_of(&index_key(&other)).await;
    let other = if other_owner == record_owner {
        // Any subject whose index lives on another primary than the record.
        loop {
            let candidate = format!("other-{}", fresh_key().to_hex());
            if cluster.owner_of(&index_key(&candidate)).await != record_owner {
                break candidate;
            }
        }
    } else {
        other
    };
    let other_owner = cluster.owner_of(&index_key(&other)).await;
    let stored = store.load(&key).await.unwrap().unwrap();
    let mut moved = stored.clone();
    moved.subject = Some(other.as_str().into());
    cluster.nodes[other_owner].signal("STOP");
    let err = store
        .update(&key, stored.version, &moved)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), StoreErrorKind::Unavailable, "{err:?}");
    cluster.nodes[other_owner].signal("CONT");
    cluster.whole_again().await;
    let kept = store.load(&key).await.unwrap().unwrap();
    assert_eq!(kept.subject.as_deref(), Some(subject.as_str()), "unchanged");
    assert_eq!(store.sessions_of(&subject).await.unwrap().len(), 1);
    assert_eq!(store.delete_sessions_of(&subject).await.unwrap(), 1);
}

/// The replica (an index into `nodes`) of the primary `primary`.
async fn replica_of(cluster: &OwnCluster, primary: usize) -> usize {
    let port = cluster.nodes[primary].port();
    for (index, node) in cluster.nodes.iter().enumerate() {
        let info = node.replication_info().await.unwrap_or_default();
        if info.contains("role:slave") && info.contains(&format!("master_port:{port}\r")) {
            return index;
        }
    }
    panic!("primary {primary} has no replica");
}

/// With a replica acknowledgement, a logout, and a login's index entry,
/// succeed once the primary's replica has them; with that replica paused,
/// they fail as not replicated (the change made on the primary), and
/// succeed again once it answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_writes_wait_for_the_replica_of_their_own_primary() {
    let cluster = OwnCluster::start(3, 1).await;
    let store = open(&cluster)
        .await
        .with_replica_acknowledgement(1, Duration::from_millis(300))
        .unwrap();
    let subject = format!("acknowledged-{}", fresh_key().to_hex());
    let (key, record_owner, index_owner) = key_apart_from(&cluster, &subject).await;
    let mut record = live_record();
    record.subject = Some(subject.as_str().into());
    for node in &cluster.nodes {
        eprintln!(
            "DEBUG {} {:?}",
            node.port(),
            node.replication_info()
                .await
                .unwrap()
                .lines()
                .filter(|l| l.starts_with("role")
                    || l.starts_with("slave0")
                    || l.starts_with("master_port"))
                .collect::<Vec<_>>()
        );
    }
    eprintln!("DEBUG owners record {record_owner} index {index_owner}");
    assert!(store.create(&key, &record).await.unwrap());

    let replica = replica_of(&cluster, record_owner).await;
    cluster.nodes[replica].signal("STOP");
    let err = store.delete(&key).await.unwrap_err();
    cluster.nodes[replica].signal("CONT");
    assert_eq!(err.kind(), StoreErrorKind::NotReplicated, "{err:?}");
    assert_eq!(
        store.load(&key).await.unwrap(),
        None,
        "gone from the primary"
    );
    until("the replica catches up", async || {
        store.delete(&key).await.is_ok()
    })
    .await;

    // A login whose index entry's replica does not answer fails before its
    // record is written.
    let replica = replica_of(&cluster, index_owner).await;
    let login = fresh_key();
    cluster.nodes[replica].signal("STOP");
    let err = store.create(&login, &record).await.unwrap_err();
    cluster.nodes[replica].signal("CONT");
    assert_eq!(err.kind(), StoreErrorKind::NotReplicated, "{err:?}");
    assert_eq!(
        store.load(&login).await.unwrap(),
        None,
        "no record without its entry"
    );
    cluster.whole_again().await;
    until("the replica catches up", async || {
        store
            .create(&login, &record)
            .await
            .is_ok_and(|created| created)
    })
    .await;
    assert_eq!(store.delete_sessions_of(&subject).await.unwrap(), 1);
}

/// A primary is killed (`SIGKILL`, by its PID) while requests flow:
/// requests for its sessions get `503` and never a wrong admission, the
/// cluster promotes its replica, and the same store serves them again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_primary_gives_503_until_its_replica_is_promoted_then_the_store_follows() {
    let mut cluster = OwnCluster::start(3, 1).await;
    let clock = clock_now();
    let store = open(&cluster)
        .await
        .with_replica_acknowledgement(1, Duration::from_secs(2))
        .unwrap();
    let app = app(store, &clock);
    // Sessions until one lives on primary 0, the victim, and a second there
    // that logs out before the kill.
    let mut on_victim = Vec::new();
    while on_victim.len() < 2 {
        let cookie = log_in(&app, "alice").await;
        let id = SessionId::parse(cookie.split_once('=').unwrap().1).unwrap();
        if cluster.owner_of(&session_key(&id.key())).await == 0 {
            on_victim.push(cookie);
        }
    }
    let (alice, gone) = (on_victim[0].clone(), on_victim[1].clone());
    assert_eq!(
        send(&app, "POST", "/logout", Some(&gone)).await.status(),
        StatusCode::OK
    );
    // The store acknowledged the logout once the replica had it, so the
    // replica that takes over has it too.

    cluster.nodes[0].stop();
    let mut statuses = std::collections::BTreeMap::new();
    let start = std::time::Instant::now();
    loop {
        let status = send(&app, "GET", "/me", Some(&alice)).await.status();
        *statuses.entry(status.as_u16()).or_insert(0u32) += 1;
        assert!(
            status == StatusCode::OK || status == StatusCode::SERVICE_UNAVAILABLE,
            "only 200 or 503 for a session on a failing primary: {status}"
        );
        let replay = send(&app, "GET", "/me", Some(&gone)).await.status();
        assert_ne!(
            replay,
            StatusCode::OK,
            "a logged-out session is never admitted"
        );
        if status == StatusCode::OK && statuses.contains_key(&503) {
            break;
        }
        assert!(
            start.elapsed() < common::redis_server::PATIENCE,
            "the store did not recover: {statuses:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    println!("statuses while the primary failed over: {statuses:?}");
    // The cluster settles on every node that is left (on a loaded machine
    // a node may still answer `CLUSTERDOWN`, hence 503, for a moment).
    for node in &cluster.nodes[1..] {
        until("the nodes left see the cluster up", async || {
            cluster_info(node).await.contains("cluster_state:ok")
        })
        .await;
    }
    until(
        "the store serves both sessions from the promoted replica",
        async || {
            send(&app, "GET", "/me", Some(&alice)).await.status() == StatusCode::OK
                && send(&app, "GET", "/me", Some(&gone)).await.status() == StatusCode::UNAUTHORIZED
        },
    )
    .await;
    // After the failover, alice stays in and the logged-out session out. A
    // node of a loaded machine may still send the client elsewhere for a
    // moment (`MOVED` while it settles: a 503, the store unavailable), but
    // never lets the logged-out session in nor logs alice out.
    let mut served = 0;
    for _ in 0..20 {
        let status = send(&app, "GET", "/me", Some(&alice)).await.status();
        assert!(
            status == StatusCode::OK || status == StatusCode::SERVICE_UNAVAILABLE,
            "alice stays in: {status}"
        );
        served += usize::from(status == StatusCode::OK);
        let status = send(&app, "GET", "/me", Some(&gone)).await.status();
        assert!(
            status == StatusCode::UNAUTHORIZED || status == StatusCode::SERVICE_UNAVAILABLE,
            "the logged-out session stays out: {status}"
        );
    }
    assert!(
        served >= 10,
        "alice served {served} times of 20 after the failover"
    );
}

/// Every node of a cluster gone (`SIGKILL`), then started again from its
/// `nodes.conf`: the cluster forms again, empty (the nodes keep nothing on
/// disk).
struct WholeCluster(OwnCluster);

#[async_trait::async_trait]
impl Outage for WholeCluster {
    async fn begin(&mut self) {
        for node in &mut self.0.nodes {
            node.stop();
        }
    }

    async fn end(&mut self) {
        for node in &mut self.0.nodes {
            node.restart();
        }
        // As `whole_again`, whose closures `async_trait` cannot send.
        let start = std::time::Instant::now();
        for node in &self.0.nodes {
            while !cluster_info(node).await.contains("cluster_state:ok") {
                assert!(
                    start.elapsed() < common::redis_server::PATIENCE,
                    "the cluster did not form again"
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }

    fn keeps_data(&self) -> bool {
        false
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_that_goes_away_gives_503_and_the_store_recovers_when_it_is_back() {
    let cluster = OwnCluster::start(3, 0).await;
    let store = open(&cluster).await;
    an_outage_gives_503_and_the_store_recovers(store, &mut WholeCluster(cluster)).await;
}
