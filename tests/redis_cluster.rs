//! `RedisStore::open_cluster` against a real Redis Cluster of three
//! primaries: the conformance suite every store runs, the rules through the
//! layer, two layer instances on one cluster, and what the cluster layout
//! must keep although a subject's index and a renewed ID live in other
//! slots than the session: a logout everywhere across slots, logins and
//! renewals racing it, a logout racing a renewal, and the state a crash
//! between the index write and the record write leaves.
//!
//! `scripts/test` starts the cluster on free loopback ports and sets
//! `TSL_REDIS_CLUSTER_NODES`; run through it. Without a cluster these tests
//! fail, with a message saying what to do: they never skip.
#![cfg(all(feature = "conformance", feature = "redis-cluster", feature = "axum"))]

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::redis_cluster::{cluster_nodes, cluster_store, of, spawn_renewal, unique};
use common::shared_store::{the_rules_hold_through_the_layer, two_nodes_act_as_one};
use tower_session_lifetime::id::SessionKey;
use tower_session_lifetime::store::conformance::fresh_key;
use tower_session_lifetime::store::{LifetimeStore, RenewOutcome, DEFAULT_REDIS_PREFIX};

tower_session_lifetime::lifetime_store_conformance!(cluster_store());

#[tokio::test]
async fn the_rules_hold_through_the_layer_on_a_cluster() {
    the_rules_hold_through_the_layer(cluster_store().await).await;
}

#[tokio::test]
async fn two_nodes_on_one_cluster_act_as_one() {
    two_nodes_act_as_one(cluster_store().await, cluster_store().await).await;
}

/// A plain connection to each node, to see where a key lives: only the
/// node that owns a key's slot answers for it (the others answer `MOVED`).
async fn node_connections() -> Vec<redis::aio::MultiplexedConnection> {
    let mut connections = Vec::new();
    for node in cluster_nodes() {
        let client = redis::Client::open(node.as_str()).unwrap();
        connections.push(client.get_multiplexed_async_connection().await.unwrap());
    }
    connections
}

/// Which node owns `key`'s session.
async fn owner(nodes: &mut [redis::aio::MultiplexedConnection], key: &SessionKey) -> usize {
    let redis_key = format!("{DEFAULT_REDIS_PREFIX}{}", key.to_hex());
    for (index, node) in nodes.iter_mut().enumerate() {
        let answer: redis::RedisResult<i64> =
            redis::cmd("EXISTS").arg(&redis_key).query_async(node).await;
        if answer.is_ok() {
            return index;
        }
    }
    panic!("no node owns {redis_key}");
}

#[tokio::test]
async fn a_logout_everywhere_ends_the_sessions_on_every_primary() {
    let store = cluster_store().await;
    let subject = unique("everywhere");
    let other = unique("other");
    let mut nodes = node_connections().await;
    let mut keys = Vec::new();
    let mut owners = std::collections::BTreeSet::new();
    for _ in 0..24 {
        let key = fresh_key();
        assert!(store.create(&key, &of(&subject)).await.unwrap());
        owners.insert(owner(&mut nodes, &key).await);
        keys.push(key);
    }
    let bystander = fresh_key();
    assert!(store.create(&bystander, &of(&other)).await.unwrap());
    assert_eq!(owners.len(), 3, "24 sessions land on all three primaries");
    assert_eq!(store.sessions_of(&subject).await.unwrap().len(), 24);

    assert_eq!(store.delete_sessions_of(&subject).await.unwrap(), 24);
    for key in &keys {
        assert_eq!(store.load(key).await.unwrap(), None, "ended on its primary");
    }
    assert!(store.sessions_of(&subject).await.unwrap().is_empty());
    assert!(
        store.load(&bystander).await.unwrap().is_some(),
        "another subject's session stays"
    );
    assert_eq!(store.delete_sessions_of(&subject).await.unwrap(), 0);
}

/// Logins keep coming while a logout everywhere runs: every session whose
/// login had returned before the logout everywhere began is ended, and
/// every session still live afterwards is listed in the index.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logins_racing_a_logout_everywhere_are_ended_or_started_after_it() {
    let store = Arc::new(cluster_store().await);
    let subject = unique("racing");
    for round in 0..5 {
        let logins = {
            let (store, subject) = (Arc::clone(&store), subject.clone());
            tokio::spawn(async move {
                let mut created = Vec::new();
                for _ in 0..40 {
                    let key = fresh_key();
                    assert!(store.create(&key, &of(&subject)).await.unwrap());
                    created.push((key, std::time::Instant::now()));
                    tokio::task::yield_now().await;
                }
                created
            })
        };
        tokio::time::sleep(Duration::from_millis(2 * round)).await;
        let began = std::time::Instant::now();
        store.delete_sessions_of(&subject).await.unwrap();
        let created = logins.await.unwrap();
        let listed: Vec<SessionKey> = store
            .sessions_of(&subject)
            .await
            .unwrap()
            .into_iter()
            .map(|(key, _)| key)
            .collect();
        for (key, returned) in &created {
            let live = store.load(key).await.unwrap().is_some();
            if *returned < began {
                assert!(
                    !live,
                    "a session logged in before the logout everywhere survived it"
                );
            }
            if live {
                assert!(
                    listed.contains(key),
                    "a live session is missing from the index"
                );
            }
        }
        store.delete_sessions_of(&subject).await.unwrap();
    }
}

/// A renewal moves the session to a key in another slot, in two writes; a
/// logout everywhere or a logout of the old ID racing it ends the session
/// under both IDs, whichever wins. In two rounds of every four the renewal
/// finishes first, so that a logout that must follow the pointer is always
/// exercised, whatever a loaded machine's scheduling makes of the racing
/// rounds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_renewal_racing_a_logout_or_a_logout_everywhere_ends_both_ids() {
    let store = Arc::new(cluster_store().await);
    for round in 0..60 {
        let subject = unique("renewing");
        let (old, new) = (fresh_key(), fresh_key());
        let record = of(&subject);
        assert!(store.create(&old, &record).await.unwrap());
        let mut renewal = Some(spawn_renewal(&store, old, new, &record));
        if round % 4 >= 2 {
            let finished = renewal.take().unwrap().await.unwrap();
            assert_eq!(finished, RenewOutcome::Renewed, "round {round}");
        }
        if round % 2 == 0 {
            store.delete_sessions_of(&subject).await.unwrap();
        } else {
            store.delete(&old).await.unwrap();
        }
        if let Some(racing) = renewal {
            racing.await.unwrap();
        }
        assert_eq!(
            store.load(&new).await.unwrap(),
            None,
            "round {round}: the new ID lives on"
        );
        assert_eq!(
            store.load(&old).await.unwrap(),
            None,
            "round {round}: the old ID lives on"
        );
        assert!(store.sessions_of(&subject).await.unwrap().is_empty());
    }
}

/// What a crash between the index write and the record write leaves (the
/// index entry alone) is skipped by every reader, ended by nothing live,
/// and gone once its score (the session's latest end) passes.
#[tokio::test]
async fn an_index_entry_without_its_record_is_skipped_and_expires() {
    let store = cluster_store().await;
    let subject = unique("crashed");
    let live = fresh_key();
    assert!(store.create(&live, &of(&subject)).await.unwrap());
    let index = format!("{DEFAULT_REDIS_PREFIX}s:{subject}");
    let client = redis::cluster::ClusterClient::new(cluster_nodes()).unwrap();
    let mut redis = client.get_async_connection().await.unwrap();
    let end: u64 = redis::cmd("ZSCORE")
        .arg(&index)
        .arg(live.to_hex())
        .query_async(&mut redis)
        .await
        .unwrap();
    let record = store.load(&live).await.unwrap().unwrap();
    assert!(
        end >= record.expires_at.as_unix_millis(),
        "scored at its latest end"
    );
    // The crash: a login wrote its index entry, not its record.
    let orphan = fresh_key();
    let _: i64 = redis::cmd("ZADD")
        .arg(&index)
        .arg(end)
        .arg(orphan.to_hex())
        .query_async(&mut redis)
        .await
        .unwrap();
    let listed = store.sessions_of(&subject).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].0, live);
    let expires: i64 = redis::cmd("PEXPIRETIME")
        .arg(&index)
        .query_async(&mut redis)
        .await
        .unwrap();
    assert_eq!(expires as u64, end, "the index expires with its latest end");
    // The login retried: its record comes after its entry, so it is listed.
    assert!(store.create(&orphan, &of(&subject)).await.unwrap());
    assert_eq!(store.sessions_of(&subject).await.unwrap().len(), 2);
    assert_eq!(store.delete_sessions_of(&subject).await.unwrap(), 2);
}
