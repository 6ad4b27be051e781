//! `MemoryStore` passes the conformance suite every store runs, and reclaims
//! expired sessions by itself.

use std::time::Duration;

use tower_session_lifetime::store::conformance::{fresh_key, live_record};
use tower_session_lifetime::{LifetimeStore, ManualClock, MemoryStore, SessionRecord, Timestamp};

tower_session_lifetime::lifetime_store_conformance!(async { MemoryStore::new() });

#[tokio::test]
async fn logins_sweep_expired_sessions_a_shard_at_a_time() {
    let clock = ManualClock::new(Timestamp::from_unix_millis(1_000_000));
    let store = MemoryStore::with_clock(clock.clone());
    let short = SessionRecord {
        created_at: clock.now(),
        last_activity: clock.now(),
        expires_at: clock.now().saturating_add(Duration::from_secs(60)),
        ..live_record()
    };
    for _ in 0..5000 {
        assert!(store.create(&fresh_key(), &short).await.unwrap());
    }
    assert_eq!(store.len(), 5000);
    clock.advance(Duration::from_secs(60));
    // Every login sweeps one of the 1024 shards; after 1024 logins every
    // shard has been swept once.
    let long = SessionRecord {
        expires_at: clock.now().saturating_add(Duration::from_secs(3600)),
        ..short.clone()
    };
    for _ in 0..1024 {
        assert!(store.create(&fresh_key(), &long).await.unwrap());
    }
    assert_eq!(store.len(), 1024, "only the live sessions remain");
}

use tower_session_lifetime::Clock as _;

#[tokio::test]
async fn sweep_expired_keeps_sessions_until_their_expiry() {
    let clock = ManualClock::new(Timestamp::from_unix_millis(1_000_000));
    let store = MemoryStore::with_clock(clock.clone());
    let record = SessionRecord {
        expires_at: clock.now().saturating_add(Duration::from_millis(10)),
        ..live_record()
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
    let record = SessionRecord {
        subject: Some(
            "x".repeat(tower_session_lifetime::MAX_SUBJECT_LEN + 1)
                .into(),
        ),
        ..live_record()
    };
    let err = store.create(&fresh_key(), &record).await.unwrap_err();
    assert_eq!(
        err.kind(),
        tower_session_lifetime::StoreErrorKind::InvalidRecord
    );
    assert!(store.is_empty());
}
