//! `RedisStore::with_replica_acknowledgement` against a real primary and
//! replica of this test's own (loopback, free ports, `TSL_REDIS_SERVER`):
//! a logout it acknowledges is on the replica, so a failover cannot bring
//! the session back; one the replica cannot acknowledge fails with
//! `StoreErrorKind::NotReplicated`; and, without it, a failover does bring
//! a logged-out session back, which is why it exists.
#![cfg(all(feature = "conformance", feature = "redis"))]

mod common;

use std::time::Duration;

use common::redis_server::{primary_and_replica, OwnServer};
use tower_session_lifetime::id::SessionKey;
use tower_session_lifetime::store::conformance::{fresh_key, live_record};
use tower_session_lifetime::store::{LifetimeStore, StoreErrorKind, MAX_REPLICA_WAIT};
use tower_session_lifetime::RedisStore;

/// How long an acknowledged logout waits for the replica. Long enough for
/// a loaded machine; a paused replica makes a logout take this long.
const WAIT: Duration = Duration::from_secs(2);

/// A primary and its replica, the replica in sync.
struct Pair {
    primary: OwnServer,
    replica: OwnServer,
}

impl Pair {
    async fn start() -> Pair {
        let (primary, replica) = primary_and_replica().await;
        Pair { primary, replica }
    }

    /// Waits until the replica has every write the primary made so far.
    async fn replicated(&self) {
        self.primary.replicated(1).await;
    }

    /// Cuts the replica off its primary, as a partition would.
    async fn detach_replica(&self) {
        self.replica.detach().await;
    }

    /// The primary dies (`SIGKILL`) and its replica is promoted, as
    /// Sentinel would: a store on the new primary sees what it has.
    async fn fail_over(&mut self) -> RedisStore {
        self.primary.stop();
        self.detach_replica().await;
        RedisStore::open(&self.replica.url()).unwrap()
    }
}

/// `n` live sessions of `subject` in `store`.
async fn sessions_of(store: &RedisStore, subject: &str, n: usize) -> Vec<SessionKey> {
    let mut keys = Vec::new();
    for _ in 0..n {
        let key = fresh_key();
        let mut record = live_record();
        record.subject = Some(subject.into());
        assert!(store.create(&key, &record).await.unwrap());
        keys.push(key);
    }
    keys
}

#[tokio::test]
async fn an_acknowledged_logout_survives_a_failover() {
    let mut pair = Pair::start().await;
    let store = RedisStore::open(&pair.primary.url())
        .unwrap()
        .with_replica_acknowledgement(1, WAIT)
        .unwrap();
    let [ended, kept] = [fresh_key(), fresh_key()];
    for key in [&ended, &kept] {
        assert!(store.create(key, &live_record()).await.unwrap());
    }
    let everywhere = sessions_of(&store, "alice", 3).await;
    pair.replicated().await;

    // Both end only once the replica has the deletion.
    assert!(store.delete(&ended).await.unwrap());
    assert_eq!(store.delete_sessions_of("alice").await.unwrap(), 3);

    let promoted = pair.fail_over().await;
    assert!(
        promoted.load(&ended).await.unwrap().is_none(),
        "the logout held"
    );
    for key in &everywhere {
        assert!(
            promoted.load(key).await.unwrap().is_none(),
            "logout everywhere held"
        );
    }
    assert!(
        promoted.load(&kept).await.unwrap().is_some(),
        "the rest is there"
    );
}

#[tokio::test]
async fn a_logout_no_replica_acknowledges_fails_as_not_replicated() {
    let pair = Pair::start().await;
    let store = RedisStore::open(&pair.primary.url())
        .unwrap()
        .with_replica_acknowledgement(1, WAIT)
        .unwrap();
    let key = fresh_key();
    assert!(store.create(&key, &live_record()).await.unwrap());
    let everywhere = sessions_of(&store, "bob", 2).await;
    pair.replicated().await;

    pair.replica.signal("STOP");
    let err = store.delete(&key).await.unwrap_err();
    assert_eq!(err.kind(), StoreErrorKind::NotReplicated, "{err:?}");
    let err = store.delete_sessions_of("bob").await.unwrap_err();
    assert_eq!(err.kind(), StoreErrorKind::NotReplicated, "{err:?}");
    // Gone from the primary all the same: no request is admitted with it.
    assert!(store.load(&key).await.unwrap().is_none());
    assert!(store.load(&everywhere[0]).await.unwrap().is_none());

    // Once the replica is back, asking again is acknowledged.
    pair.replica.signal("CONT");
    assert!(!store.delete(&key).await.unwrap(), "already gone");
    assert_eq!(store.delete_sessions_of("bob").await.unwrap(), 0);
}

#[tokio::test]
async fn without_acknowledgement_a_failover_brings_a_logged_out_session_back() {
    let mut pair = Pair::start().await;
    let store = RedisStore::open(&pair.primary.url()).unwrap();
    let key = fresh_key();
    assert!(store.create(&key, &live_record()).await.unwrap());
    pair.replicated().await;

    // The replica is cut off (as by a partition) when the primary
    // acknowledges the logout: it never gets the deletion.
    pair.detach_replica().await;
    assert!(store.delete(&key).await.unwrap());
    assert!(store.load(&key).await.unwrap().is_none());
    let promoted = pair.fail_over().await;
    assert!(
        promoted.load(&key).await.unwrap().is_some(),
        "the promoted replica still has the session: the hazard the option closes"
    );
}

#[tokio::test]
async fn a_replica_acknowledgement_that_makes_no_sense_is_refused() {
    let store = || RedisStore::open("redis://127.0.0.1:1").unwrap();
    for (replicas, timeout) in [
        (0, WAIT),
        (1, Duration::ZERO),
        (1, Duration::from_micros(999)),
        (1, MAX_REPLICA_WAIT + Duration::from_millis(1)),
    ] {
        let refused = store().with_replica_acknowledgement(replicas, timeout);
        assert!(refused.is_err(), "{replicas} replicas, {timeout:?}");
    }
    assert!(store()
        .with_replica_acknowledgement(2, MAX_REPLICA_WAIT)
        .is_ok());
}
