//! The checks every [`LifetimeStore`] must pass, shared by all backends.
//!
//! Behind the `conformance` feature, which a store's crate enables in its
//! dev-dependencies only:
//!
//! ```toml
//! [dev-dependencies]
//! tower-session-lifetime = { version = "0.1", features = ["conformance"] }
//! tokio = { version = "1", features = ["macros", "rt-multi-thread"] }
//! ```
//!
//! Run them all with [`lifetime_store_conformance!`](crate::lifetime_store_conformance)
//! from a test file of that crate:
//!
//! ```no_run
//! // tests/memory_store.rs
//! use tower_session_lifetime::MemoryStore;
//!
//! tower_session_lifetime::lifetime_store_conformance!(async { MemoryStore::new() });
//! # fn main() {}
//! ```
//!
//! Each check takes a store that may already hold other sessions, and panics
//! with a message when the store breaks the contract. Records are dated by
//! the system clock, since stores such as Redis expire by the server's clock.

use std::time::Duration;

use super::{LifetimeStore, RenewOutcome, StoreErrorKind, TouchOutcome, UpdateOutcome};
use crate::clock::{Clock, SystemClock};
use crate::id::{SessionId, SessionKey};
use crate::policy::{judge, Limits, Policy, Verdict};
use crate::record::SessionRecord;
use crate::time::Timestamp;

const HOUR: Duration = Duration::from_secs(3600);

/// A fresh random key.
pub fn fresh_key() -> SessionKey {
    SessionId::generate()
        .expect("the OS random number generator works")
        .key()
}

/// A record created now, live for an hour, with a subject.
pub fn live_record() -> SessionRecord {
    let policy = Policy::builder()
        .idle_timeout(HOUR)
        .absolute_timeout(8 * HOUR)
        .build()
        .expect("valid policy");
    SessionRecord::new(
        &policy,
        SystemClock.now(),
        Some("conformance-user".into()),
        false,
    )
}

/// Inserts a live record under a fresh key and returns both.
pub async fn insert_live(store: &dyn LifetimeStore) -> (SessionKey, SessionRecord) {
    let key = fresh_key();
    let record = live_record();
    assert!(
        store.create(&key, &record).await.expect("create"),
        "create on a free key"
    );
    (key, record)
}

/// `create`, then `load` returns every field as written, then `delete`
/// removes it and a second `delete` finds nothing.
pub async fn create_load_delete(store: &dyn LifetimeStore) {
    let (key, record) = insert_live(store).await;
    assert_eq!(store.load(&key).await.expect("load"), Some(record));

    let odd = SessionRecord {
        remember_me: true,
        subject: None,
        limits: Limits {
            idle_timeout: Duration::from_millis(1),
            absolute_timeout: None,
            remember_me_period: Duration::from_millis(123_456_789),
            remember_me_absolute_timeout: None,
        },
        version: 7,
        label: Some("Firefox on Linux · Zürich".into()),
        ..live_record()
    };
    let odd = SessionRecord {
        authenticated_at: odd.created_at.saturating_add(Duration::from_millis(1234)),
        ..odd
    };
    let odd_key = fresh_key();
    assert!(store.create(&odd_key, &odd).await.expect("create"));
    assert_eq!(
        store.load(&odd_key).await.expect("load"),
        Some(odd),
        "fields round-trip"
    );

    assert!(store.delete(&key).await.expect("delete"));
    assert_eq!(store.load(&key).await.expect("load"), None);
    assert!(
        !store.delete(&key).await.expect("delete"),
        "second delete finds nothing"
    );
    assert!(store.delete(&odd_key).await.expect("delete"));
}

/// `create` on a taken key writes nothing and says so.
pub async fn create_never_overwrites(store: &dyn LifetimeStore) {
    let (key, record) = insert_live(store).await;
    let other = SessionRecord {
        subject: Some("intruder".into()),
        ..live_record()
    };
    assert!(
        !store.create(&key, &other).await.expect("create"),
        "key is taken"
    );
    assert_eq!(store.load(&key).await.expect("load"), Some(record));
}

/// `touch` moves activity and expiry forward, never backwards.
pub async fn touch_moves_forward_only(store: &dyn LifetimeStore) {
    let (key, record) = insert_live(store).await;
    let later = record.last_activity.saturating_add(Duration::from_secs(5));
    let expires = later.saturating_add(HOUR);
    assert_eq!(
        store.touch(&key, later, expires).await.expect("touch"),
        TouchOutcome::Touched
    );
    let earlier = record.last_activity.saturating_add(Duration::from_secs(1));
    assert_eq!(
        store
            .touch(&key, earlier, earlier.saturating_add(HOUR))
            .await
            .expect("touch"),
        TouchOutcome::AlreadyRecent
    );
    assert_eq!(
        store.touch(&key, later, expires).await.expect("touch"),
        TouchOutcome::AlreadyRecent,
        "the same time again is not a move"
    );
    let stored = store.load(&key).await.expect("load").expect("record");
    assert_eq!(stored.last_activity, later);
    assert_eq!(stored.expires_at, expires);
    assert_eq!(
        stored.version, record.version,
        "a touch is not a replacement"
    );
}

/// `touch` moves the expiry later, never earlier: a touch computed from a
/// copy read before an update that lengthened the session keeps the longer
/// expiry.
pub async fn touch_never_shortens_the_expiry(store: &dyn LifetimeStore) {
    let (key, record) = insert_live(store).await;
    let later = record.last_activity.saturating_add(Duration::from_secs(5));
    let shorter = later.saturating_add(Duration::from_secs(60));
    assert!(shorter < record.expires_at, "the record lives an hour");
    assert_eq!(
        store.touch(&key, later, shorter).await.expect("touch"),
        TouchOutcome::Touched
    );
    let stored = store.load(&key).await.expect("load").expect("record");
    assert_eq!(stored.last_activity, later);
    assert_eq!(
        stored.expires_at, record.expires_at,
        "a touch cut the expiry short"
    );
    store.delete(&key).await.expect("delete");
}

/// `touch` never gives an expired record new life: at or after its
/// `expires_at` it answers `Missing` and writes nothing, swept or not.
pub async fn touch_leaves_an_expired_record_alone(store: &dyn LifetimeStore) {
    let (key, record) = insert_live(store).await;
    for activity in [
        record.expires_at,
        record.expires_at.saturating_add(Duration::from_millis(1)),
    ] {
        assert_eq!(
            store
                .touch(&key, activity, activity.saturating_add(HOUR))
                .await
                .expect("touch"),
            TouchOutcome::Missing,
            "a touch at or after the record's expiry"
        );
    }
    let stored = store.load(&key).await.expect("load").expect("record");
    assert_eq!(stored.expires_at, record.expires_at, "the expiry moved");
    assert_eq!(
        stored.last_activity, record.last_activity,
        "the activity moved"
    );
    store.delete(&key).await.expect("delete");
}

/// A `touch` or `update` after `delete` finds nothing and creates nothing.
pub async fn writes_after_delete_do_not_resurrect(store: &dyn LifetimeStore) {
    let (key, record) = insert_live(store).await;
    assert!(store.delete(&key).await.expect("delete"));
    let later = record.last_activity.saturating_add(Duration::from_secs(1));
    assert_eq!(
        store
            .touch(&key, later, later.saturating_add(HOUR))
            .await
            .expect("touch"),
        TouchOutcome::Missing
    );
    let replacement = SessionRecord {
        version: record.version + 1,
        ..record.clone()
    };
    assert_eq!(
        store
            .update(&key, record.version, &replacement)
            .await
            .expect("update"),
        UpdateOutcome::Missing
    );
    assert_eq!(
        store.load(&key).await.expect("load"),
        None,
        "no resurrection"
    );
}

/// `update` replaces only the expected version and keeps the later activity.
pub async fn update_is_conditional(store: &dyn LifetimeStore) {
    let (key, record) = insert_live(store).await;
    let touched_at = record.last_activity.saturating_add(Duration::from_secs(30));
    store
        .touch(&key, touched_at, touched_at.saturating_add(HOUR))
        .await
        .expect("touch");
    let replacement = SessionRecord {
        remember_me: true,
        version: record.version + 1,
        // A re-authentication, and a label the app set later.
        authenticated_at: touched_at,
        label: Some("a later label".into()),
        ..record.clone()
    };
    assert_eq!(
        store
            .update(&key, record.version + 5, &replacement)
            .await
            .expect("update"),
        UpdateOutcome::Conflict
    );
    assert_eq!(
        store
            .update(&key, record.version, &replacement)
            .await
            .expect("update"),
        UpdateOutcome::Updated
    );
    let stored = store.load(&key).await.expect("load").expect("record");
    assert!(stored.remember_me);
    assert_eq!(stored.version, record.version + 1);
    assert_eq!(stored.authenticated_at, touched_at, "the re-authentication");
    assert_eq!(stored.label.as_deref(), Some("a later label"));
    assert_eq!(
        stored.last_activity, touched_at,
        "activity did not move back"
    );
    assert_eq!(
        stored.expires_at,
        replacement
            .expires_at
            .saturating_add(touched_at.saturating_duration_since(record.last_activity)),
        "the expiry moved with the kept activity"
    );
    assert_eq!(
        store
            .update(&key, record.version, &replacement)
            .await
            .expect("update"),
        UpdateOutcome::Conflict,
        "the old version is stale now"
    );
}

/// `delete_stale` removes a record only if no later activity was written.
pub async fn delete_stale_spares_touched_records(store: &dyn LifetimeStore) {
    let (key, record) = insert_live(store).await;
    let touched_at = record.last_activity.saturating_add(Duration::from_secs(1));
    store
        .touch(&key, touched_at, touched_at.saturating_add(HOUR))
        .await
        .expect("touch");
    assert!(
        !store
            .delete_stale(&key, record.last_activity)
            .await
            .expect("delete_stale"),
        "activity moved on: not stale"
    );
    assert!(store.load(&key).await.expect("load").is_some());
    assert!(store
        .delete_stale(&key, touched_at)
        .await
        .expect("delete_stale"));
    assert_eq!(store.load(&key).await.expect("load"), None);
    assert!(
        !store
            .delete_stale(&key, touched_at)
            .await
            .expect("delete_stale"),
        "nothing left to delete"
    );
}

/// `reclaim_expired` removes records past `expires_at` and keeps live ones.
pub async fn reclaim_removes_only_expired(store: &dyn LifetimeStore) {
    let (live_key, live) = insert_live(store).await;
    let now = SystemClock.now();
    let long_ago = Timestamp::from_unix_millis(now.as_unix_millis().saturating_sub(2 * 3_600_000));
    let expired = SessionRecord {
        created_at: long_ago,
        last_activity: long_ago,
        expires_at: long_ago.saturating_add(HOUR),
        ..live_record()
    };
    let expired_key = fresh_key();
    assert!(store.create(&expired_key, &expired).await.expect("create"));
    store.reclaim_expired().await.expect("reclaim");
    assert_eq!(
        store.load(&expired_key).await.expect("load"),
        None,
        "expired is gone"
    );
    assert_eq!(
        store.load(&live_key).await.expect("load"),
        Some(live),
        "live stays"
    );
}

/// One session loaded again and again, as its requests come, while the
/// policy it is judged by changes between a loose and a tighter touch
/// granularity: every [`load_and_touch`](LifetimeStore::load_and_touch)
/// returns the record as stored and touches exactly when [`judge`] says a
/// touch is due. A store that remembers anything between loads (the Redis
/// store remembers when a touch can next be due) must stay right when the
/// policy tightens. Then a granularity with a part below the millisecond.
pub async fn repeated_loads_agree_with_judge(store: &dyn LifetimeStore) {
    const MIN: Duration = Duration::from_secs(60);
    let loose = Policy::builder()
        .idle_timeout(30 * MIN)
        .touch_granularity(5 * MIN)
        .build()
        .expect("valid policy");
    let tight = Policy::builder()
        .idle_timeout(30 * MIN)
        .touch_granularity(MIN)
        .build()
        .expect("valid policy");
    let created = SystemClock.now();
    let key = fresh_key();
    let record = SessionRecord::new(&loose, created, None, false);
    assert!(store.create(&key, &record).await.expect("create"));
    let steps = [
        (2 * MIN, &loose),
        (MIN, &tight),
        (MIN / 2, &tight),
        (MIN, &loose),
        (MIN * 9 / 2, &loose),
        (MIN / 2, &loose),
        (MIN / 2, &tight),
        (MIN, &tight),
    ];
    let mut now = created;
    for (step, (elapsed, policy)) in steps.into_iter().enumerate() {
        now = now.saturating_add(elapsed);
        let stored = store.load(&key).await.expect("load").expect("live");
        let due =
            matches!(judge(policy, &stored, now), Verdict::Admitted(admission) if admission.touch);
        let loaded = store
            .load_and_touch(&key, policy, now)
            .await
            .expect("load_and_touch")
            .expect("live");
        assert_eq!(loaded.record, stored, "step {step}: the record as stored");
        assert_eq!(
            loaded.touch == Some(TouchOutcome::Touched),
            due,
            "step {step}: touched when judge says a touch is due"
        );
        let after = store.load(&key).await.expect("load").expect("live");
        let activity = if due { now } else { stored.last_activity };
        assert_eq!(
            after.last_activity, activity,
            "step {step}: stored activity"
        );
    }

    // A granularity with a part below the millisecond: activity is kept in
    // whole milliseconds, and a touch is due once it is at least that old.
    let fine = Policy::builder()
        .idle_timeout(Duration::from_secs(10))
        .touch_granularity(Duration::from_micros(1_500))
        .build()
        .expect("valid policy");
    let key = fresh_key();
    let record = SessionRecord::new(&fine, created, None, false);
    assert!(store.create(&key, &record).await.expect("create"));
    let mut now = created;
    for step in 0..4 {
        now = now.saturating_add(Duration::from_millis(1));
        let stored = store.load(&key).await.expect("load").expect("live");
        let due =
            matches!(judge(&fine, &stored, now), Verdict::Admitted(admission) if admission.touch);
        let loaded = store
            .load_and_touch(&key, &fine, now)
            .await
            .expect("load_and_touch")
            .expect("live");
        assert_eq!(
            loaded.touch == Some(TouchOutcome::Touched),
            due,
            "fine granularity, step {step}: touched when judge says a touch is due"
        );
    }
}

/// `load_and_touch` returns the record as loaded and touches exactly when
/// [`judge`] says a touch is due, to the deadline it computes; it never
/// touches an expired or missing session. Checked over ordinary and
/// remember-me sessions, policies tighter than the record's snapshot, and
/// times before, at and after each threshold.
pub async fn load_and_touch_agrees_with_judge(store: &dyn LifetimeStore) {
    let missing = fresh_key();
    let policy = Policy::default();
    assert_eq!(
        store
            .load_and_touch(&missing, &policy, SystemClock.now())
            .await
            .expect("load_and_touch"),
        None
    );
    assert_eq!(store.load(&missing).await.expect("load"), None);

    const MIN: Duration = Duration::from_secs(60);
    let snapshot = Policy::builder()
        .idle_timeout(30 * MIN)
        .absolute_timeout(120 * MIN)
        .remember_me_period(90 * MIN)
        .remember_me_absolute_timeout(100 * MIN)
        .touch_granularity(MIN)
        .build()
        .expect("valid policy");
    let tighter = Policy::builder()
        .idle_timeout(10 * MIN)
        .no_absolute_timeout()
        .remember_me_period(20 * MIN)
        .touch_granularity(3 * MIN)
        .build()
        .expect("valid policy");
    // Judged by the tighter policy, a session of this one is due for a touch
    // after half its idle limit (2 min), before the granularity (3 min).
    let short = Policy::builder()
        .idle_timeout(4 * MIN)
        .remember_me_period(4 * MIN)
        .touch_granularity(MIN / 2)
        .build()
        .expect("valid policy");
    let offsets = [
        0, 1, 29, 30, 59, 60, 61, 119, 120, 121, 179, 180, 181, 239, 240, 299, 300, 599, 600, 1199,
        1200, 1799, 1800, 5399, 5400, 5999, 6000, 7200, 9000,
    ];
    let cases = [
        (&snapshot, &snapshot),
        (&snapshot, &tighter),
        (&short, &short),
        (&short, &tighter),
    ];
    for remember_me in [false, true] {
        for (snapshot, judged_by) in cases {
            for activity_offset in [0, 50 * 60] {
                for offset in offsets {
                    let created = SystemClock.now();
                    let mut record = SessionRecord::new(snapshot, created, None, remember_me);
                    record.last_activity =
                        created.saturating_add(Duration::from_secs(activity_offset));
                    record.expires_at = crate::policy::Deadlines::of(&record.limits, &record)
                        .nearest()
                        .max(record.last_activity);
                    let key = fresh_key();
                    assert!(store.create(&key, &record).await.expect("create"));
                    let now = record
                        .last_activity
                        .saturating_add(Duration::from_secs(offset));
                    let context = format!(
                        "remember_me {remember_me}, activity +{activity_offset}s, now +{offset}s"
                    );
                    let loaded = store
                        .load_and_touch(&key, judged_by, now)
                        .await
                        .expect("load_and_touch")
                        .expect("the record exists");
                    assert_eq!(loaded.record, record, "the record as loaded: {context}");
                    let stored = store.load(&key).await.expect("load").expect("record");
                    match judge(judged_by, &record, now) {
                        Verdict::Admitted(admission) if admission.touch => {
                            assert_eq!(
                                loaded.touch,
                                Some(TouchOutcome::Touched),
                                "touch due: {context}"
                            );
                            assert_eq!(stored.last_activity, now, "{context}");
                            // The new deadline, or the stored expiry if that
                            // is later (`touch` never shortens it): a tighter
                            // policy bites through `judge`, not the expiry.
                            let nearest = admission.deadlines.nearest();
                            assert!(
                                stored.expires_at == nearest
                                    || stored.expires_at == record.expires_at
                                        && record.expires_at > nearest,
                                "expiry {:?}, deadline {nearest:?}: {context}",
                                stored.expires_at
                            );
                        }
                        _ => {
                            assert_eq!(loaded.touch, None, "no touch due: {context}");
                            assert_eq!(stored, record, "nothing written: {context}");
                        }
                    }
                    store.delete(&key).await.expect("delete");
                }
            }
        }
    }
}

/// A subject's sessions are listed and deleted together, and only they:
/// the listing follows creates, subject changes, touches and deletes.
pub async fn subjects_are_listed_and_deleted(store: &dyn LifetimeStore) {
    let subject = format!("subject-{}", fresh_key().to_hex());
    let other = format!("other-{}", fresh_key().to_hex());
    let of = |subject: &str| SessionRecord {
        subject: Some(subject.into()),
        ..live_record()
    };
    let mut keys = Vec::new();
    for _ in 0..3 {
        let key = fresh_key();
        assert!(store.create(&key, &of(&subject)).await.expect("create"));
        keys.push(key);
    }
    let other_key = fresh_key();
    assert!(store.create(&other_key, &of(&other)).await.expect("create"));
    let anonymous = fresh_key();
    assert!(store
        .create(
            &anonymous,
            &SessionRecord {
                subject: None,
                ..live_record()
            }
        )
        .await
        .expect("create"));

    let listed = |found: Vec<(crate::id::SessionKey, SessionRecord)>| {
        let mut keys: Vec<_> = found
            .into_iter()
            .map(|(key, record)| {
                assert_eq!(record.subject.as_deref(), Some(subject.as_str()));
                key
            })
            .collect();
        keys.sort();
        keys
    };
    let mut expected = keys.clone();
    expected.sort();
    assert_eq!(
        listed(store.sessions_of(&subject).await.expect("sessions_of")),
        expected
    );

    // A touched session is still listed, with its new activity.
    let record = store.load(&keys[0]).await.expect("load").expect("record");
    let later = record.last_activity.saturating_add(Duration::from_secs(5));
    store
        .touch(&keys[0], later, later.saturating_add(HOUR))
        .await
        .expect("touch");
    let found = store.sessions_of(&subject).await.expect("sessions_of");
    let touched = found
        .iter()
        .find(|(key, _)| *key == keys[0])
        .expect("the touched session is listed");
    assert_eq!(touched.1.last_activity, later);

    // One moves to the other subject, one is deleted.
    let moved = SessionRecord {
        subject: Some(other.as_str().into()),
        version: record.version + 1,
        ..record.clone()
    };
    assert_eq!(
        store
            .update(&keys[1], record.version, &moved)
            .await
            .expect("update"),
        UpdateOutcome::Updated
    );
    assert!(store.delete(&keys[2]).await.expect("delete"));
    assert_eq!(
        listed(store.sessions_of(&subject).await.expect("sessions_of")),
        vec![keys[0]]
    );
    assert_eq!(
        store.sessions_of(&other).await.expect("sessions_of").len(),
        2,
        "the other subject has its own and the moved one"
    );

    assert_eq!(
        store
            .delete_sessions_of(&other)
            .await
            .expect("delete_sessions_of"),
        2
    );
    assert_eq!(store.load(&other_key).await.expect("load"), None);
    assert_eq!(store.load(&keys[1]).await.expect("load"), None);
    assert!(store
        .sessions_of(&other)
        .await
        .expect("sessions_of")
        .is_empty());
    assert!(
        store.load(&keys[0]).await.expect("load").is_some(),
        "other subjects' sessions stay"
    );
    assert!(store.load(&anonymous).await.expect("load").is_some());
    assert_eq!(
        store
            .delete_sessions_of(&other)
            .await
            .expect("delete_sessions_of"),
        0,
        "nothing left"
    );
    assert_eq!(
        store
            .delete_sessions_of(&subject)
            .await
            .expect("delete_sessions_of"),
        1
    );
    assert!(store.delete(&anonymous).await.expect("delete"));
}

/// A store without a subject index says so with
/// [`StoreErrorKind::Unsupported`] and deletes nothing.
pub async fn subject_index_is_unsupported(store: &dyn LifetimeStore) {
    let (key, record) = insert_live(store).await;
    let subject = record.subject.as_deref().expect("live records have one");
    let listing = store.sessions_of(subject).await.expect_err("no index");
    assert_eq!(listing.kind(), StoreErrorKind::Unsupported);
    let deletion = store
        .delete_sessions_of(subject)
        .await
        .expect_err("no index");
    assert_eq!(deletion.kind(), StoreErrorKind::Unsupported);
    assert_eq!(store.load(&key).await.expect("load"), Some(record));
}

/// [`renew`](LifetimeStore::renew) moves a session to a new key in one
/// step, leaves a pointer that expires at the end of the grace period and
/// that no touch or update revives, keeps a touch that landed on the old
/// key, refuses a stale version, a second renewal, a missing record and a
/// taken key, and a delete of the old key ends the session under both.
/// A store that does not renew (the default) must say so with
/// [`StoreErrorKind::Unsupported`].
pub async fn renew_moves_the_session(store: &dyn LifetimeStore) {
    let (old, record) = insert_live(store).await;
    let later = record
        .last_activity
        .saturating_add(Duration::from_millis(5));
    // A touch lands on the old key after the renewing request read it.
    assert_eq!(
        store
            .touch(&old, later, later.saturating_add(HOUR))
            .await
            .expect("touch"),
        TouchOutcome::Touched
    );
    let new = fresh_key();
    let issued = record
        .last_activity
        .saturating_add(Duration::from_millis(3));
    let moved = SessionRecord {
        id_issued_at: issued,
        ..record.clone()
    };
    let grace_until = issued.saturating_add(Duration::from_secs(10));
    match store
        .renew(&old, record.version, &new, &moved, grace_until)
        .await
    {
        Err(err) if err.kind() == StoreErrorKind::Unsupported => {
            assert_eq!(store.load(&new).await.expect("load"), None);
            assert!(store.delete(&old).await.expect("delete"));
            return;
        }
        outcome => assert_eq!(outcome.expect("renew"), RenewOutcome::Renewed),
    }
    let live = store.load(&new).await.expect("load").expect("moved record");
    assert_eq!(
        live.last_activity, later,
        "the touch on the old key is kept"
    );
    assert_eq!(live.id_issued_at, issued);
    assert_eq!(live.created_at, record.created_at, "renewal keeps creation");
    assert_eq!(live.renewed_to, None);
    assert!(live.expires_at >= later.saturating_add(HOUR));
    let pointer = store.load(&old).await.expect("load").expect("pointer");
    assert_eq!(pointer.renewed_to, Some(new));
    assert_eq!(pointer.expires_at, grace_until);
    assert_eq!(pointer.version, record.version + 1);

    // The pointer takes no activity and no update, and moves only once;
    // past its grace period it is expired.
    let in_grace = issued.saturating_add(Duration::from_secs(1));
    assert_eq!(
        store
            .touch(&old, in_grace, in_grace.saturating_add(HOUR))
            .await
            .expect("touch"),
        TouchOutcome::AlreadyRecent
    );
    let much_later = later.saturating_add(HOUR);
    assert_eq!(
        store
            .touch(&old, much_later, much_later.saturating_add(HOUR))
            .await
            .expect("touch"),
        TouchOutcome::Missing
    );
    assert_eq!(store.load(&old).await.expect("load"), Some(pointer.clone()));
    assert_eq!(
        store
            .update(&old, record.version, &record)
            .await
            .expect("update"),
        UpdateOutcome::Conflict
    );
    let elsewhere = fresh_key();
    assert_eq!(
        store
            .renew(&old, pointer.version, &elsewhere, &moved, grace_until)
            .await
            .expect("renew"),
        RenewOutcome::Conflict
    );
    assert_eq!(store.load(&elsewhere).await.expect("load"), None);
    if let Ok(listed) = store
        .sessions_of(record.subject.as_deref().expect("subject"))
        .await
    {
        let keys: Vec<_> = listed.iter().map(|(key, _)| *key).collect();
        assert!(keys.contains(&new), "the new key is listed");
        assert!(!keys.contains(&old), "the pointer is not listed");
    }

    // Stale version, missing record, taken key: nothing written.
    let (other, other_record) = insert_live(store).await;
    assert_eq!(
        store
            .renew(
                &other,
                other_record.version + 1,
                &elsewhere,
                &moved,
                grace_until
            )
            .await
            .expect("renew"),
        RenewOutcome::Conflict
    );
    assert_eq!(
        store
            .renew(&other, other_record.version, &new, &moved, grace_until)
            .await
            .expect("renew"),
        RenewOutcome::Taken
    );
    assert_eq!(store.load(&new).await.expect("load"), Some(live));
    assert_eq!(store.load(&other).await.expect("load"), Some(other_record));
    assert_eq!(
        store
            .renew(&fresh_key(), 0, &elsewhere, &moved, grace_until)
            .await
            .expect("renew"),
        RenewOutcome::Missing
    );
    assert_eq!(store.load(&elsewhere).await.expect("load"), None);

    // A logout with the old ID ends the session under both keys.
    assert!(store.delete(&old).await.expect("delete"));
    assert_eq!(store.load(&old).await.expect("load"), None);
    assert_eq!(store.load(&new).await.expect("load"), None);
    assert!(store.delete(&other).await.expect("delete"));
}

/// Runs every check above that needs no concurrency, in turn.
pub async fn run_sequential_checks(store: &dyn LifetimeStore) {
    create_load_delete(store).await;
    create_never_overwrites(store).await;
    touch_moves_forward_only(store).await;
    touch_leaves_an_expired_record_alone(store).await;
    touch_never_shortens_the_expiry(store).await;
    writes_after_delete_do_not_resurrect(store).await;
    update_is_conditional(store).await;
    delete_stale_spares_touched_records(store).await;
    reclaim_removes_only_expired(store).await;
    load_and_touch_agrees_with_judge(store).await;
    repeated_loads_agree_with_judge(store).await;
    renew_moves_the_session(store).await;
}

/// Runs the conformance suite against a store as `#[tokio::test]`s.
///
/// Takes an expression that evaluates to a future of the store (so stores
/// can connect asynchronously). Invoke it at module level of a test file,
/// once per module: it defines a module named `lifetime_store_conformance`.
/// To check several stores in one file, give each call a module of its
/// own (`mod on_disk { use super::*; lifetime_store_conformance!(…); }`).
///
/// ```no_run
/// tower_session_lifetime::lifetime_store_conformance!(async {
///     tower_session_lifetime::MemoryStore::new()
/// });
/// # fn main() {}
/// ```
///
/// A store without a subject index (one whose
/// [`sessions_of`](LifetimeStore::sessions_of) answers
/// [`StoreErrorKind::Unsupported`]) says so with a second argument,
/// `subjects = unsupported`; the suite then checks that it does.
///
/// Besides the sequential checks of this module it runs three concurrent
/// ones on a multi-threaded runtime: 64 tasks touching one session end with
/// the latest activity stored; touches racing a delete never resurrect it;
/// a renewal racing a delete leaves the session under neither key.
#[macro_export]
macro_rules! lifetime_store_conformance {
    ($make_store:expr) => {
        $crate::lifetime_store_conformance!(@suite $make_store, subjects_are_listed_and_deleted);
    };
    ($make_store:expr, subjects = unsupported) => {
        $crate::lifetime_store_conformance!(@suite $make_store, subject_index_is_unsupported);
    };
    (@suite $make_store:expr, $subject_check:ident) => {
        mod lifetime_store_conformance {
            #[allow(unused_imports)]
            use super::*;
            use ::std::sync::Arc;
            use ::std::time::Duration;
            use $crate::store::conformance as checks;
            use $crate::store::{LifetimeStore, RenewOutcome, StoreErrorKind, TouchOutcome};

            async fn store() -> Arc<dyn LifetimeStore> {
                Arc::new($make_store.await)
            }

            #[::tokio::test]
            async fn create_load_delete() {
                checks::create_load_delete(&*store().await).await;
            }

            #[::tokio::test]
            async fn create_never_overwrites() {
                checks::create_never_overwrites(&*store().await).await;
            }

            #[::tokio::test]
            async fn touch_moves_forward_only() {
                checks::touch_moves_forward_only(&*store().await).await;
            }

            #[::tokio::test]
            async fn touch_never_shortens_the_expiry() {
                checks::touch_never_shortens_the_expiry(&*store().await).await;
            }

            #[::tokio::test]
            async fn touch_leaves_an_expired_record_alone() {
                checks::touch_leaves_an_expired_record_alone(&*store().await).await;
            }

            #[::tokio::test]
            async fn writes_after_delete_do_not_resurrect() {
                checks::writes_after_delete_do_not_resurrect(&*store().await).await;
            }

            #[::tokio::test]
            async fn update_is_conditional() {
                checks::update_is_conditional(&*store().await).await;
            }

            #[::tokio::test]
            async fn delete_stale_spares_touched_records() {
                checks::delete_stale_spares_touched_records(&*store().await).await;
            }

            #[::tokio::test]
            async fn reclaim_removes_only_expired() {
                checks::reclaim_removes_only_expired(&*store().await).await;
            }

            #[::tokio::test]
            async fn load_and_touch_agrees_with_judge() {
                checks::load_and_touch_agrees_with_judge(&*store().await).await;
            }

            #[::tokio::test]
            async fn repeated_loads_agree_with_judge() {
                checks::repeated_loads_agree_with_judge(&*store().await).await;
            }

            #[::tokio::test]
            async fn renew_moves_the_session() {
                checks::renew_moves_the_session(&*store().await).await;
            }

            #[::tokio::test]
            async fn $subject_check() {
                checks::$subject_check(&*store().await).await;
            }

            #[::tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn concurrent_touches_keep_the_latest_activity() {
                let store = store().await;
                let (key, record) = checks::insert_live(&*store).await;
                let tasks: Vec<_> = (1..=64u64)
                    .map(|i| {
                        let store = Arc::clone(&store);
                        // Interleave early and late activity times.
                        let offset = if i % 2 == 0 { i } else { 65 - i };
                        let at = record
                            .last_activity
                            .saturating_add(Duration::from_millis(offset));
                        ::tokio::spawn(async move {
                            store
                                .touch(&key, at, at.saturating_add(Duration::from_secs(3600)))
                                .await
                                .expect("touch")
                        })
                    })
                    .collect();
                for task in tasks {
                    let outcome = task.await.expect("task");
                    assert_ne!(outcome, TouchOutcome::Missing);
                }
                let stored = store.load(&key).await.expect("load").expect("record");
                assert_eq!(
                    stored.last_activity,
                    record
                        .last_activity
                        .saturating_add(Duration::from_millis(64))
                );
            }

            #[::tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn touches_racing_a_delete_never_resurrect() {
                let store = store().await;
                for _round in 0..50 {
                    let (key, record) = checks::insert_live(&*store).await;
                    let touches: Vec<_> = (1..=16u64)
                        .map(|i| {
                            let store = Arc::clone(&store);
                            let at = record
                                .last_activity
                                .saturating_add(Duration::from_millis(i));
                            ::tokio::spawn(async move {
                                store
                                    .touch(&key, at, at.saturating_add(Duration::from_secs(3600)))
                                    .await
                                    .expect("touch")
                            })
                        })
                        .collect();
                    assert!(store.delete(&key).await.expect("delete"));
                    for task in touches {
                        task.await.expect("task");
                    }
                    assert_eq!(store.load(&key).await.expect("load"), None);
                }
            }

            #[::tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn a_renewal_racing_a_delete_leaves_nothing() {
                let store = store().await;
                for round in 0..50u32 {
                    let (old, record) = checks::insert_live(&*store).await;
                    let new = checks::fresh_key();
                    let renewing = {
                        let store = Arc::clone(&store);
                        let record = record.clone();
                        let grace = record.last_activity.saturating_add(Duration::from_secs(10));
                        ::tokio::spawn(async move {
                            store.renew(&old, record.version, &new, &record, grace).await
                        })
                    };
                    if round % 2 == 0 {
                        ::tokio::task::yield_now().await;
                    }
                    assert!(store.delete(&old).await.expect("delete"));
                    match renewing.await.expect("task") {
                        Err(err) if err.kind() == StoreErrorKind::Unsupported => return,
                        outcome => assert!(matches!(
                            outcome.expect("renew"),
                            RenewOutcome::Renewed | RenewOutcome::Missing
                        )),
                    }
                    assert_eq!(store.load(&old).await.expect("load"), None);
                    assert_eq!(store.load(&new).await.expect("load"), None, "round {round}");
                }
            }
        }
    };
}
