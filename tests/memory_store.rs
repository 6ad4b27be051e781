//! `MemoryStore` passes the conformance suite every store runs, and reclaims
//! expired sessions by itself.

#![cfg(feature = "conformance")]

use std::time::Duration;

use tower_session_lifetime::store::conformance::{fresh_key, live_record};
use tower_session_lifetime::{
    clock::ManualClock, store::LifetimeStore, time::Timestamp, MemoryStore,
};

tower_session_lifetime::lifetime_store_conformance!(async { MemoryStore::new() });

#[tokio::test]
async fn logins_sweep_expired_sessions_a_shard_at_a_time() {
    let clock = ManualClock::new(Timestamp::from_unix_millis(1_000_000));
    let store = MemoryStore::with_clock(clock.clone());
    let short = {
        let mut edited = live_record();
        edited.created_at = clock.now();
        edited.last_activity = clock.now();
        edited.expires_at = clock.now().saturating_add(Duration::from_secs(60));
        edited
    };
    for _ in 0..5000 {
        assert!(store.create(&fresh_key(), &short).await.unwrap());
    }
    assert_eq!(store.len(), 5000);
    clock.advance(Duration::from_secs(60));
    // Every login sweeps one of the 1024 shards; after 1024 logins every
    // shard has been swept once.
    let long = {
        let mut edited = short.clone();
        edited.expires_at = clock.now().saturating_add(Duration::from_secs(3600));
        edited
    };
    for _ in 0..1024 {
        assert!(store.create(&fresh_key(), &long).await.unwrap());
    }
    assert_eq!(store.len(), 1024, "only the live sessions remain");
}

use tower_session_lifetime::clock::Clock as _;

#[tokio::test]
async fn sweep_expired_keeps_sessions_until_their_expiry() {
    let clock = ManualClock::new(Timestamp::from_unix_millis(1_000_000));
    let store = MemoryStore::with_clock(clock.clone());
    let record = {
        let mut edited = live_record();
        edited.expires_at = clock.now().saturating_add(Duration::from_millis(10));
        edited
    };
    let key = fresh_key();
    store.create(&key, &record).await.unwrap();
    clock.advance(Duration::from_millis(9));
    assert_eq!(store.sweep_expired(), 0);
    clock.advance(Duration::from_millis(1));
    assert_eq!(store.sweep_expired(), 1, "gone at its expiry");
    assert_eq!(store.load(&key).await.unwrap(), None);
}

#[tokio::test]
async fn an_oversized_subject_is_refused_with_a_typed_error() {
    let store = MemoryStore::new();
    let record = {
        let mut edited = live_record();
        edited.subject = Some(
            "x".repeat(tower_session_lifetime::record::MAX_SUBJECT_LEN + 1)
                .into(),
        );
        edited
    };
    let err = store.create(&fresh_key(), &record).await.unwrap_err();
    assert_eq!(
        err.kind(),
        tower_session_lifetime::store::StoreErrorKind::InvalidRecord
    );
    assert!(store.is_empty());
}
