//! `TowerSessionsStore` keeps lifetime records in a tower-sessions store: it
//! passes the conformance suite every store runs and the hardening checks
//! that need no subject index, and tells a record it cannot read from a
//! missing one.
#![cfg(all(feature = "conformance", feature = "tower-sessions", feature = "axum"))]

mod common;

use std::collections::HashMap;

use common::hardening;

use tower_session_lifetime::store::conformance::{fresh_key, insert_live};
use tower_session_lifetime::{
    store::{LifetimeStore, StoreErrorKind},
    TowerSessionsStore,
};
use tower_sessions::session::{Id, Record};
use tower_sessions::{MemoryStore, SessionStore};

// A tower-sessions store cannot be searched by subject.
tower_session_lifetime::lifetime_store_conformance!(
    async { TowerSessionsStore::new(MemoryStore::default()) },
    subjects = unsupported
);

#[tokio::test]
async fn a_record_it_cannot_read_is_a_corrupt_error_not_a_missing_session() {
    let store = TowerSessionsStore::new(MemoryStore::default());
    let key = fresh_key();
    let foreign = Record {
        id: Id(i128::from_le_bytes(*key.as_bytes())),
        data: HashMap::from([(
            "tower_session_lifetime".to_owned(),
            serde_json::json!({"created_at": "yesterday"}),
        )]),
        expiry_date: cookie::time::OffsetDateTime::now_utc() + cookie::time::Duration::hours(1),
    };
    store.get_ref().save(&foreign).await.unwrap();
    let err = store.load(&key).await.unwrap_err();
    assert_eq!(err.kind(), StoreErrorKind::Corrupt);
    assert!(
        !store
            .create(
                &key,
                &tower_session_lifetime::store::conformance::live_record()
            )
            .await
            .is_ok_and(|created| created),
        "a record it cannot read is never overwritten by create"
    );
    assert!(store.delete(&key).await.unwrap(), "but it can be deleted");
    assert_eq!(store.load(&key).await.unwrap(), None);
}

#[tokio::test]
async fn a_deadline_beyond_the_calendar_is_stored_as_the_last_date() {
    let store = TowerSessionsStore::new(MemoryStore::default());
    let key = fresh_key();
    let record = {
        let mut edited = tower_session_lifetime::store::conformance::live_record();
        edited.expires_at = tower_session_lifetime::time::Timestamp::from_unix_millis(u64::MAX);
        edited
    };
    assert!(store.create(&key, &record).await.unwrap());
    assert_eq!(store.load(&key).await.unwrap(), Some(record));
}

#[tokio::test]
async fn lifetime_records_and_session_data_can_share_one_store() {
    let data = MemoryStore::default();
    let store = TowerSessionsStore::new(data.clone());
    let (key, record) = insert_live(&store).await;
    // The lifetime record sits under the key, not under any session's ID.
    let under_key = data
        .load(&Id(i128::from_le_bytes(*key.as_bytes())))
        .await
        .unwrap()
        .expect("stored under its key");
    assert_eq!(under_key.data.len(), 1);
    assert_eq!(store.load(&key).await.unwrap(), Some(record));
}

#[tokio::test]
async fn renewal_replaces_the_id_and_keeps_the_deadline_on_tower_sessions() {
    hardening::renewal_replaces_the_id_and_keeps_the_deadline(TowerSessionsStore::new(
        MemoryStore::default(),
    ))
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logout_racing_touches_sticks_on_tower_sessions() {
    hardening::logout_racing_touches_sticks(TowerSessionsStore::new(MemoryStore::default()), 1000)
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn renewal_racing_requests_renews_once_on_tower_sessions() {
    hardening::renewal_racing_requests_renews_once(
        TowerSessionsStore::new(MemoryStore::default()),
        300,
    )
    .await;
}

#[tokio::test]
async fn listing_own_sessions_is_a_typed_unsupported_error_on_tower_sessions() {
    use common::shared_store::{clock_now, log_in, send};
    use tower_session_lifetime::SessionLifetimeLayer;
    let clock = clock_now();
    let app = common::routes().layer(
        SessionLifetimeLayer::new(TowerSessionsStore::new(MemoryStore::default()))
            .with_clock(clock.clone()),
    );
    let cookie = log_in(&app, "alice").await;
    // The test app answers `501` for a store error of kind `Unsupported`.
    let listed = send(&app, "GET", "/sessions", Some(&cookie)).await;
    assert_eq!(listed.status(), http::StatusCode::NOT_IMPLEMENTED);
    // Still signed in: nothing was changed.
    let me = send(&app, "GET", "/me", Some(&cookie)).await;
    assert_eq!(me.status(), http::StatusCode::OK);
}

/// A backend that stops returning records at their expiry date (as
/// tower-sessions' `MemoryStore` and sqlx store do) still gives the layer
/// an idle-expired record within the margin, so the request is refused as
/// `IdleTimeout` with its `session ended` reason, not as `Unknown`; with no
/// margin it is `Unknown`.
#[tokio::test]
async fn an_idle_expired_session_is_refused_with_its_reason_on_a_forgetting_backend() {
    use std::time::Duration;
    use tower_session_lifetime::{
        clock::{Clock, ManualClock, SystemClock},
        rejection::RejectReason,
        Policy, SessionLifetimeLayer,
    };
    let minute = Duration::from_secs(60);
    for (margin, expected) in [
        (None, RejectReason::IdleTimeout),
        (Some(Duration::ZERO), RejectReason::Unknown),
    ] {
        // The backend judges expiry by the system clock: start the manual
        // one half an hour ago, so the idle deadline has passed for both.
        let start = SystemClock.now().as_unix_millis() - 30 * 60 * 1000;
        let clock = ManualClock::new(tower_session_lifetime::time::Timestamp::from_unix_millis(
            start,
        ));
        let mut store = TowerSessionsStore::new(MemoryStore::default());
        if let Some(margin) = margin {
            store = store.keep_past_expiry(margin);
        }
        let app = common::routes().layer(
            SessionLifetimeLayer::new(store)
                .with_clock(clock.clone())
                .with_policy(Policy::builder().idle_timeout(10 * minute).build().unwrap()),
        );
        let login = common::shared_store::send(&app, "POST", "/login?user=ada", None).await;
        let set = common::set_cookie(&login).expect("a session cookie");
        let cookie = format!("{}={}", set.name(), set.value());
        clock.advance(10 * minute);
        let response = common::shared_store::send(&app, "GET", "/me", Some(&cookie)).await;
        assert_eq!(
            response.extensions().get::<RejectReason>().copied(),
            Some(expected),
            "margin {margin:?}"
        );
    }
}
