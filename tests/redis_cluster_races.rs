#![cfg(all(feature = "conformance", feature = "redis-cluster", feature = "axum"))]
//! `RedisStore::open_cluster`'s promises under attack, written against the
//! public API only (by a review told only the promises): races between renewals, logouts, logouts everywhere,
//! updates and listings over a real 3-primary cluster, hostile subjects and
//! labels, hostile node lists, and the hot path's round trips (counted with
//! `MONITOR` on every node).
//!
//! Needs `TSL_REDIS_CLUSTER_NODES` (comma-separated `redis://` URLs), which
//! `scripts/test` sets to the cluster it starts.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use http::StatusCode;
use tower_session_lifetime::clock::{Clock, ManualClock, SystemClock};
use tower_session_lifetime::id::{SessionId, SessionKey};
use tower_session_lifetime::store::conformance::{fresh_key, live_record};
use tower_session_lifetime::store::{
    LifetimeStore, RenewOutcome, StoreErrorKind, TouchOutcome, UpdateOutcome, MAX_REPLICA_WAIT,
};
use tower_session_lifetime::time::Timestamp;
use tower_session_lifetime::{Policy, RedisStore, SessionLifetimeLayer};

use common::redis_cluster::{cluster_nodes, cluster_store, of, spawn_renewal, unique};
use common::redis_monitor::Monitors;
use common::shared_store::{app, clock_now, log_in, send};
use common::{set_cookie, HOUR, MINUTE};

fn now() -> Timestamp {
    SystemClock.now()
}

fn idle_hour_policy() -> Policy {
    Policy::builder()
        .idle_timeout(HOUR)
        .absolute_timeout(8 * HOUR)
        .build()
        .unwrap()
}

/// A tiny xorshift generator seeded from the OS: no extra dependency.
struct Rng(u64);

impl Rng {
    fn new() -> Self {
        let bytes = fresh_key();
        let seed = u64::from_le_bytes(bytes.as_bytes()[..8].try_into().unwrap()) | 1;
        Rng(seed)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

// ---------------------------------------------------------------------------
// Promise 2: conditional writes and renewals under races.
// ---------------------------------------------------------------------------

/// Two renewals of one session race: exactly one wins, the loser's new key
/// holds nothing, the index lists the winner only, and a logout of the old
/// ID follows the pointer to the winner.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_concurrent_renewals_exactly_one_wins_and_the_loser_leaves_nothing() {
    let store = Arc::new(cluster_store().await);
    for round in 0..80 {
        let subject = unique("double-renew");
        let old = fresh_key();
        let record = of(&subject);
        assert!(store.create(&old, &record).await.unwrap());
        let (a, b) = (fresh_key(), fresh_key());
        let (ra, rb) = (
            spawn_renewal(&store, old, a, &record),
            spawn_renewal(&store, old, b, &record),
        );
        let (oa, ob) = (ra.await.unwrap(), rb.await.unwrap());
        let (winner, loser) = match (oa, ob) {
            (RenewOutcome::Renewed, RenewOutcome::Conflict) => (a, b),
            (RenewOutcome::Conflict, RenewOutcome::Renewed) => (b, a),
            other => panic!("round {round}: exactly one renewal wins, got {other:?}"),
        };
        assert_eq!(
            store.load(&loser).await.unwrap(),
            None,
            "round {round}: the loser's new key holds nothing"
        );
        let live = store
            .load(&winner)
            .await
            .unwrap()
            .expect("the winner's record");
        assert_eq!(live.renewed_to, None);
        let pointer = store.load(&old).await.unwrap().expect("the pointer");
        assert_eq!(pointer.renewed_to, Some(winner));
        let listed: Vec<SessionKey> = store
            .sessions_of(&subject)
            .await
            .unwrap()
            .into_iter()
            .map(|(key, _)| key)
            .collect();
        assert_eq!(
            listed,
            vec![winner],
            "round {round}: only the winner is listed"
        );
        assert!(store.delete(&old).await.unwrap());
        assert_eq!(
            store.load(&winner).await.unwrap(),
            None,
            "delete follows the pointer"
        );
        assert!(store.sessions_of(&subject).await.unwrap().is_empty());
    }
}

/// A logout of the old ID races a renewal while touches (plain and on the
/// hot path) keep hitting both IDs: whichever wins, neither ID holds a
/// record afterwards, and no touch brings one back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn touches_racing_a_renewal_and_a_logout_never_revive_either_id() {
    let store = Arc::new(cluster_store().await);
    let policy = idle_hour_policy();
    let mut renewed = 0;
    for round in 0..60u64 {
        let subject = unique("touch-race");
        let (old, new) = (fresh_key(), fresh_key());
        let record = of(&subject);
        assert!(store.create(&old, &record).await.unwrap());
        let renewal = spawn_renewal(&store, old, new, &record);
        let toucher = {
            let (store, policy) = (Arc::clone(&store), policy);
            tokio::spawn(async move {
                for step in 1..=20u64 {
                    let at = now().saturating_add(Duration::from_millis(step * 40_000));
                    for key in [old, new] {
                        let _ = store
                            .touch(&key, at, at.saturating_add(HOUR))
                            .await
                            .unwrap();
                        let _ = store.load_and_touch(&key, &policy, at).await.unwrap();
                    }
                }
            })
        };
        if round % 3 != 0 {
            tokio::task::yield_now().await;
        }
        store.delete(&old).await.unwrap();
        if renewal.await.unwrap() == RenewOutcome::Renewed {
            renewed += 1;
        }
        toucher.await.unwrap();
        assert_eq!(
            store.load(&old).await.unwrap(),
            None,
            "round {round}: old ID lives"
        );
        assert_eq!(
            store.load(&new).await.unwrap(),
            None,
            "round {round}: new ID lives"
        );
        let later = now().saturating_add(Duration::from_secs(5));
        for key in [old, new] {
            assert_eq!(
                store
                    .touch(&key, later, later.saturating_add(HOUR))
                    .await
                    .unwrap(),
                TouchOutcome::Missing
            );
        }
        assert!(store.sessions_of(&subject).await.unwrap().is_empty());
    }
    eprintln!("renewed {renewed} of 60");
}

/// `sessions_of` racing a renewal must see the session exactly once: never
/// under both IDs (half-moved), never under neither.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_of_sees_a_renewing_session_exactly_once() {
    let store = Arc::new(cluster_store().await);
    let subject = unique("half-moved");
    let mut key = fresh_key();
    let record = of(&subject);
    assert!(store.create(&key, &record).await.unwrap());
    let stop = Arc::new(AtomicBool::new(false));
    let lister = {
        let (store, subject, stop) = (Arc::clone(&store), subject.clone(), Arc::clone(&stop));
        tokio::spawn(async move {
            let mut seen: BTreeMap<usize, u32> = BTreeMap::new();
            while !stop.load(Ordering::SeqCst) {
                let listed = store.sessions_of(&subject).await.unwrap();
                *seen.entry(listed.len()).or_default() += 1;
            }
            seen
        })
    };
    for _ in 0..150 {
        let new = fresh_key();
        let grace = now().saturating_add(Duration::from_secs(3));
        assert_eq!(
            store
                .renew(&key, record.version, &new, &record, grace)
                .await
                .unwrap(),
            RenewOutcome::Renewed
        );
        key = new;
    }
    stop.store(true, Ordering::SeqCst);
    let seen = lister.await.unwrap();
    store.delete_sessions_of(&subject).await.unwrap();
    assert_eq!(
        seen.keys().copied().collect::<Vec<_>>(),
        vec![1],
        "listings racing renewals of ONE session returned these lengths (length: times): {seen:?}"
    );
}

// ---------------------------------------------------------------------------
// Promise 3: logout everywhere.
// ---------------------------------------------------------------------------

/// A logout everywhere races a renewal made with a grace of zero (what
/// `renewal_grace(Duration::ZERO)` configures: "zero refuses the old ID at
/// once"). The session existed when the logout everywhere began, so it
/// must be ended under its new ID too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_logout_everywhere_racing_a_zero_grace_renewal_ends_the_session() {
    let store = Arc::new(cluster_store().await);
    let mut survived = Vec::new();
    let mut renewed = 0;
    for round in 0..30usize {
        let subject = unique("zero-grace");
        // Other sessions of the subject, listed before the target (lower
        // score: created earlier), so that the logout everywhere takes a
        // while to reach it.
        for _ in 0..30 {
            assert!(store.create(&fresh_key(), &of(&subject)).await.unwrap());
        }
        tokio::time::sleep(Duration::from_millis(3)).await;
        let target = fresh_key();
        let record = of(&subject);
        assert!(store.create(&target, &record).await.unwrap());
        let logout = {
            let (store, subject) = (Arc::clone(&store), subject.clone());
            tokio::spawn(async move { store.delete_sessions_of(&subject).await.unwrap() })
        };
        for _ in 0..(round % 4) {
            let _ = store.load(&fresh_key()).await.unwrap();
        }
        let new = fresh_key();
        let outcome = store
            .renew(&target, record.version, &new, &record, now())
            .await
            .unwrap();
        logout.await.unwrap();
        if outcome == RenewOutcome::Renewed {
            renewed += 1;
        }
        if store.load(&new).await.unwrap().is_some() {
            survived.push(round);
            store.delete(&new).await.unwrap();
        }
        assert!(store.load(&target).await.unwrap().is_none());
    }
    assert!(
        survived.is_empty(),
        "a session that existed when the logout everywhere began lives on under its new ID \
         in rounds {survived:?} (renewed in {renewed} of 30 rounds)"
    );
}

/// A session whose subject `update` changes is not ended by a logout
/// everywhere of the old subject, is ended by one of the new, and is listed
/// under the new subject only; also when the update races the logout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subject_change_moves_the_session_between_logouts_everywhere() {
    let store = Arc::new(cluster_store().await);
    // In turn.
    let (a, b) = (unique("from"), unique("to"));
    let key = fresh_key();
    let record = of(&a);
    assert!(store.create(&key, &record).await.unwrap());
    let mut moved = record.clone();
    moved.subject = Some(b.as_str().into());
    moved.version = record.version + 1;
    assert_eq!(
        store.update(&key, record.version, &moved).await.unwrap(),
        UpdateOutcome::Updated
    );
    assert!(store.sessions_of(&a).await.unwrap().is_empty());
    assert_eq!(store.sessions_of(&b).await.unwrap().len(), 1);
    assert_eq!(store.delete_sessions_of(&a).await.unwrap(), 0);
    assert!(
        store.load(&key).await.unwrap().is_some(),
        "ended by the old subject"
    );
    assert_eq!(store.delete_sessions_of(&b).await.unwrap(), 1);
    assert!(store.load(&key).await.unwrap().is_none());

    // Racing.
    for round in 0..60 {
        let (a, b) = (unique("from"), unique("to"));
        let key = fresh_key();
        let record = of(&a);
        assert!(store.create(&key, &record).await.unwrap());
        let mut moved = record.clone();
        moved.subject = Some(b.as_str().into());
        moved.version = record.version + 1;
        let update = {
            let (store, record) = (Arc::clone(&store), record.clone());
            tokio::spawn(async move { store.update(&key, record.version, &moved).await.unwrap() })
        };
        store.delete_sessions_of(&a).await.unwrap();
        let updated = update.await.unwrap();
        match store.load(&key).await.unwrap() {
            Some(live) => {
                assert_eq!(updated, UpdateOutcome::Updated);
                assert_eq!(
                    live.subject.as_deref(),
                    Some(b.as_str()),
                    "round {round}: a session of the old subject survived its logout everywhere"
                );
                assert!(store.sessions_of(&a).await.unwrap().is_empty());
                assert_eq!(store.sessions_of(&b).await.unwrap().len(), 1);
                assert_eq!(store.delete_sessions_of(&b).await.unwrap(), 1);
                assert!(store.load(&key).await.unwrap().is_none());
            }
            None => assert_eq!(updated, UpdateOutcome::Missing),
        }
    }
}

/// Subject `""` is a subject like any other: its logout everywhere must not
/// end a session that `update` moved to another subject.
#[tokio::test]
async fn a_logout_everywhere_of_the_empty_subject_spares_other_subjects() {
    let store = cluster_store().await;
    let other = unique("moved-off-empty");
    let key = fresh_key();
    let record = of("");
    assert!(store.create(&key, &record).await.unwrap());
    let mut moved = record.clone();
    moved.subject = Some(other.as_str().into());
    moved.version = record.version + 1;
    assert_eq!(
        store.update(&key, record.version, &moved).await.unwrap(),
        UpdateOutcome::Updated
    );
    assert!(store
        .sessions_of("")
        .await
        .unwrap()
        .iter()
        .all(|(k, _)| *k != key));
    let _ = store.delete_sessions_of("").await.unwrap();
    let survived = store.load(&key).await.unwrap();
    store.delete(&key).await.unwrap();
    assert_eq!(
        survived.and_then(|record| record.subject).as_deref(),
        Some(other.as_str()),
        "delete_sessions_of(\"\") ended a session of subject {other:?}"
    );
}

// ---------------------------------------------------------------------------
// Promise 4: the subject index under random interleavings.
// ---------------------------------------------------------------------------

/// Workers create, update (moving subjects), renew, touch, delete and log
/// out everywhere, at random, over three subjects; a lister checks every
/// listing as it goes. Afterwards every live record with subject S is
/// listed by `sessions_of(S)`, and every listed one is live, of S, and no
/// pointer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_index_never_misses_a_live_session_under_random_interleavings() {
    let store = Arc::new(cluster_store().await);
    let subjects: Arc<Vec<String>> = Arc::new((0..3).map(|i| unique(&format!("mix{i}"))).collect());
    let all_keys = Arc::new(std::sync::Mutex::new(BTreeSet::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let lister = {
        let (store, subjects, stop) =
            (Arc::clone(&store), Arc::clone(&subjects), Arc::clone(&stop));
        tokio::spawn(async move {
            while !stop.load(Ordering::SeqCst) {
                for subject in subjects.iter() {
                    for (_, record) in store.sessions_of(subject).await.unwrap() {
                        assert_eq!(record.subject.as_deref(), Some(subject.as_str()));
                        assert_eq!(record.renewed_to, None, "a pointer was listed");
                    }
                }
            }
        })
    };
    let mut workers = Vec::new();
    for _ in 0..4 {
        let (store, subjects, all_keys) = (
            Arc::clone(&store),
            Arc::clone(&subjects),
            Arc::clone(&all_keys),
        );
        workers.push(tokio::spawn(async move {
            let mut rng = Rng::new();
            let mut mine: Vec<SessionKey> = Vec::new();
            for _ in 0..150 {
                let pick = |rng: &mut Rng| subjects[rng.below(3) as usize].clone();
                match rng.below(7) {
                    0 | 1 => {
                        let key = fresh_key();
                        all_keys.lock().unwrap().insert(key);
                        assert!(store.create(&key, &of(&pick(&mut rng))).await.unwrap());
                        mine.push(key);
                    }
                    2 if !mine.is_empty() => {
                        let key = mine[rng.below(mine.len() as u64) as usize];
                        if let Some(mut record) = store.load(&key).await.unwrap() {
                            if record.renewed_to.is_none() {
                                let version = record.version;
                                record.subject = Some(pick(&mut rng).as_str().into());
                                record.version += 1;
                                store.update(&key, version, &record).await.unwrap();
                            }
                        }
                    }
                    3 if !mine.is_empty() => {
                        let index = rng.below(mine.len() as u64) as usize;
                        let key = mine[index];
                        if let Some(record) = store.load(&key).await.unwrap() {
                            if record.renewed_to.is_none() {
                                let new = fresh_key();
                                all_keys.lock().unwrap().insert(new);
                                let grace = now().saturating_add(Duration::from_secs(20));
                                if store
                                    .renew(&key, record.version, &new, &record, grace)
                                    .await
                                    .unwrap()
                                    == RenewOutcome::Renewed
                                {
                                    mine[index] = new;
                                }
                            }
                        }
                    }
                    4 if !mine.is_empty() => {
                        let key = mine.swap_remove(rng.below(mine.len() as u64) as usize);
                        store.delete(&key).await.unwrap();
                    }
                    5 if !mine.is_empty() => {
                        let key = mine[rng.below(mine.len() as u64) as usize];
                        let at = now().saturating_add(Duration::from_secs(rng.below(600)));
                        store
                            .touch(&key, at, at.saturating_add(HOUR))
                            .await
                            .unwrap();
                    }
                    6 => {
                        store.delete_sessions_of(&pick(&mut rng)).await.unwrap();
                    }
                    _ => {}
                }
            }
        }));
    }
    for worker in workers {
        worker.await.unwrap();
    }
    stop.store(true, Ordering::SeqCst);
    lister.await.unwrap();
    let keys: Vec<SessionKey> = all_keys.lock().unwrap().iter().copied().collect();
    let mut listed: BTreeMap<String, BTreeSet<SessionKey>> = BTreeMap::new();
    for subject in subjects.iter() {
        listed.insert(
            subject.clone(),
            store
                .sessions_of(subject)
                .await
                .unwrap()
                .into_iter()
                .map(|(key, _)| key)
                .collect(),
        );
    }
    let mut missing = Vec::new();
    for key in &keys {
        if let Some(record) = store.load(key).await.unwrap() {
            if record.renewed_to.is_none() {
                let subject = record.subject.as_deref().unwrap().to_owned();
                if !listed[&subject].contains(key) {
                    missing.push((key.to_hex(), subject));
                }
            }
        }
    }
    for (subject, members) in &listed {
        for key in members {
            let record = store
                .load(key)
                .await
                .unwrap()
                .expect("a listed session exists");
            assert_eq!(record.subject.as_deref(), Some(subject.as_str()));
            assert_eq!(record.renewed_to, None);
        }
    }
    for subject in subjects.iter() {
        store.delete_sessions_of(subject).await.unwrap();
    }
    assert!(
        missing.is_empty(),
        "live sessions missing from their index: {missing:?}"
    );
}

// ---------------------------------------------------------------------------
// Promise 5: hostile input.
// ---------------------------------------------------------------------------

fn hostile_subjects() -> Vec<String> {
    let hex = fresh_key().to_hex();
    let mut subjects = vec![
        format!("{{{hex}}}"),
        format!("{hex}{{"),
        format!("}}{hex}"),
        format!("}}{hex}{{"),
        format!("{{}}{hex}"),
        format!("a{{b}}c{hex}"),
        format!("with spaces {hex} and\ttabs"),
        format!("ünïcödé 🎉 {hex}"),
        format!("\0nul\r\n{hex}"),
        format!("s:{hex}"),
        format!("*?[a-z]{hex}"),
        format!("'quote\" -- ]] {hex}"),
    ];
    // Exactly 256 bytes, ASCII.
    let mut ascii = format!("{hex}-");
    while ascii.len() < 256 {
        ascii.push('x');
    }
    subjects.push(ascii);
    // Exactly 256 bytes, 4-byte characters.
    let mut wide = hex.clone(); // 32 bytes
    while wide.len() < 256 {
        wide.push('🎉');
    }
    assert_eq!(wide.len(), 256);
    subjects.push(wide);
    for subject in &subjects {
        assert!(subject.len() <= 256);
    }
    subjects
}

/// Subjects with hash-tag braces, spaces, control characters, unicode and
/// exactly 256 bytes: listed, renewed, moved and logged out everywhere like
/// any other, never touching a neighbour whose subject extends theirs.
#[tokio::test]
async fn hostile_subjects_are_subjects_like_any_other() {
    let store = cluster_store().await;
    for subject in hostile_subjects() {
        let neighbour = format!("{subject}x");
        let neighbour = if neighbour.len() > 256 {
            format!("x{}", &subject[..subject.len() - 4])
        } else {
            neighbour
        };
        let bystander = fresh_key();
        assert!(store.create(&bystander, &of(&neighbour)).await.unwrap());
        let mut keys = Vec::new();
        for _ in 0..6 {
            let key = fresh_key();
            assert!(
                store.create(&key, &of(&subject)).await.unwrap(),
                "{subject:?}"
            );
            keys.push(key);
        }
        let listed = store.sessions_of(&subject).await.unwrap();
        assert_eq!(listed.len(), 6, "{subject:?}");
        assert!(listed
            .iter()
            .all(|(_, record)| record.subject.as_deref() == Some(subject.as_str())));
        // A renewal and a subject change keep the index right.
        let record = store.load(&keys[0]).await.unwrap().unwrap();
        let renewed = fresh_key();
        let grace = now().saturating_add(Duration::from_secs(30));
        assert_eq!(
            store
                .renew(&keys[0], record.version, &renewed, &record, grace)
                .await
                .unwrap(),
            RenewOutcome::Renewed
        );
        let mut moved = store.load(&keys[1]).await.unwrap().unwrap();
        let version = moved.version;
        moved.subject = Some(neighbour.as_str().into());
        moved.version += 1;
        assert_eq!(
            store.update(&keys[1], version, &moved).await.unwrap(),
            UpdateOutcome::Updated
        );
        let listed: BTreeSet<SessionKey> = store
            .sessions_of(&subject)
            .await
            .unwrap()
            .into_iter()
            .map(|(key, _)| key)
            .collect();
        let expected: BTreeSet<SessionKey> = std::iter::once(renewed)
            .chain(keys[2..].iter().copied())
            .collect();
        assert_eq!(listed, expected, "{subject:?}");
        assert_eq!(
            store.delete_sessions_of(&subject).await.unwrap(),
            5,
            "{subject:?}"
        );
        for key in keys.iter().filter(|key| **key != keys[1]).chain([&renewed]) {
            assert_eq!(store.load(key).await.unwrap(), None, "{subject:?}");
        }
        assert!(
            store.load(&keys[1]).await.unwrap().is_some(),
            "moved away: {subject:?}"
        );
        assert!(
            store.load(&bystander).await.unwrap().is_some(),
            "{subject:?}"
        );
        assert_eq!(
            store.delete_sessions_of(&neighbour).await.unwrap(),
            2,
            "{neighbour:?}"
        );
        assert!(store.sessions_of(&subject).await.unwrap().is_empty());
    }
}

/// Subjects over 256 bytes are a typed `InvalidRecord` for create, update
/// and renew, and write nothing (no record, no index entry, the old record
/// intact); listing or logging out such a subject is no panic.
#[tokio::test]
async fn over_long_subjects_are_invalid_records_and_write_nothing() {
    let store = cluster_store().await;
    let hex = fresh_key().to_hex();
    let mut ascii = hex.clone();
    while ascii.len() < 257 {
        ascii.push('x');
    }
    let mut wide = hex.clone();
    while wide.len() <= 256 {
        wide.push('é'); // 2 bytes: 32 + 2 * 113 = 258
    }
    let huge = format!("{hex}{}", "y".repeat(64 * 1024));
    for long in [ascii, wide, huge] {
        assert!(long.len() > 256);
        let key = fresh_key();
        let err = store.create(&key, &of(&long)).await.unwrap_err();
        assert_eq!(err.kind(), StoreErrorKind::InvalidRecord, "create");
        assert_eq!(store.load(&key).await.unwrap(), None);

        let good = unique("good");
        let record = of(&good);
        assert!(store.create(&key, &record).await.unwrap());
        let mut bad = record.clone();
        bad.subject = Some(long.as_str().into());
        bad.version += 1;
        let err = store.update(&key, record.version, &bad).await.unwrap_err();
        assert_eq!(err.kind(), StoreErrorKind::InvalidRecord, "update");
        let new = fresh_key();
        let grace = now().saturating_add(Duration::from_secs(30));
        let err = store
            .renew(&key, record.version, &new, &bad, grace)
            .await
            .unwrap_err();
        assert_eq!(err.kind(), StoreErrorKind::InvalidRecord, "renew");
        assert_eq!(store.load(&new).await.unwrap(), None);
        assert_eq!(
            store.load(&key).await.unwrap(),
            Some(record.clone()),
            "intact"
        );
        match store.sessions_of(&long).await {
            Ok(listed) => assert!(listed.is_empty()),
            Err(err) => assert_ne!(err.kind(), StoreErrorKind::Corrupt),
        }
        match store.delete_sessions_of(&long).await {
            Ok(ended) => assert_eq!(ended, 0),
            Err(err) => assert_ne!(err.kind(), StoreErrorKind::Corrupt),
        }
        assert_eq!(store.sessions_of(&good).await.unwrap().len(), 1);
        assert_eq!(store.delete_sessions_of(&good).await.unwrap(), 1);
    }
}

/// A label over `MAX_LABEL_LEN` is bad input: refused with a typed error,
/// and never stored where it would make the record (and the listing of its
/// subject) unreadable.
#[tokio::test]
async fn an_over_long_label_is_refused_not_stored_unreadable() {
    let store = cluster_store().await;
    let subject = unique("labelled");
    let sibling = fresh_key();
    assert!(store.create(&sibling, &of(&subject)).await.unwrap());
    let key = fresh_key();
    let mut record = of(&subject);
    record.label = Some("L".repeat(300).into());
    let created = store.create(&key, &record).await;
    let loaded = store.load(&key).await;
    let listed = store.sessions_of(&subject).await;
    store.delete_sessions_of(&subject).await.unwrap();
    store.delete(&key).await.unwrap();
    assert_eq!(
        created.as_ref().map_err(|err| err.kind()),
        Err(StoreErrorKind::InvalidRecord),
        "create with a 300-byte label; then load = {:?}, sessions_of(subject) = {:?}",
        loaded
            .map(|found| found.is_some())
            .map_err(|err| err.kind()),
        listed.map(|found| found.len()).map_err(|err| err.kind()),
    );
}

/// What `open_cluster` does with a node list, in a task of its own so that
/// a panic shows as one.
async fn try_open(nodes: Vec<String>) -> Result<Result<RedisStore, StoreErrorKind>, String> {
    let task = tokio::spawn(async move {
        let nodes: Vec<&str> = nodes.iter().map(String::as_str).collect();
        RedisStore::open_cluster(&nodes)
            .await
            .map_err(|err| err.kind())
    });
    match tokio::time::timeout(Duration::from_secs(30), task).await {
        Err(_) => Err("did not return within 30 s".to_owned()),
        Ok(Err(join)) if join.is_panic() => Err(format!("panicked: {join:?}")),
        Ok(Err(join)) => Err(format!("{join:?}")),
        Ok(Ok(opened)) => Ok(opened),
    }
}

/// Empty, malformed, unreachable and mixed node lists: a typed error, never
/// a panic, and the cluster's sessions stay.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_node_lists_get_typed_errors_and_lose_nothing() {
    let store = cluster_store().await;
    let subject = unique("kept");
    let key = fresh_key();
    assert!(store.create(&key, &of(&subject)).await.unwrap());
    let valid = cluster_nodes()[0].clone();
    let must_fail: Vec<Vec<String>> = vec![
        vec![],
        vec![String::new()],
        vec!["not a url".into()],
        vec!["redis://".into()],
        vec!["redis://127.0.0.1:notaport".into()],
        vec!["redis://127.0.0.1:99999".into()],
        vec!["redis://[::1".into()],
        vec!["http://127.0.0.1:6379".into()],
        vec!["redis://127.0.0.1:1".into()],
        vec!["redis://127.0.0.1:1".into(), "redis://127.0.0.1:2".into()],
        vec!["unix:///nonexistent/redis.sock".into()],
        vec!["redis+unix:///nonexistent/redis.sock".into()],
        vec!["rediss://127.0.0.1:1".into()],
        vec![format!("{valid}/\u{1F389}")],
    ];
    let mut problems = Vec::new();
    for nodes in must_fail {
        match try_open(nodes.clone()).await {
            Ok(Err(kind)) => eprintln!("{nodes:?}: {kind:?}"),
            Ok(Ok(_)) => problems.push(format!("{nodes:?}: opened")),
            Err(what) => problems.push(format!("{nodes:?}: {what}")),
        }
    }
    // Lists that may open (one good node among bad ones, a database number,
    // credentials the server does not need): whatever they answer, no
    // panic, and an opened store works.
    let may_open: Vec<Vec<String>> = vec![
        vec!["redis://127.0.0.1:1".into(), valid.clone()],
        vec![valid.clone(), "garbage".into()],
        vec![format!("{valid}/3")],
        vec![valid.replace("redis://", "redis://nobody:secret@")],
        vec![valid.clone(), valid.clone()],
        // WHATWG URL parsing strips trailing C0 controls: this is the
        // valid node.
        vec![format!("{valid}\0")],
    ];
    for nodes in may_open {
        match try_open(nodes.clone()).await {
            Ok(Err(kind)) => eprintln!("{nodes:?}: {kind:?}"),
            Ok(Ok(opened)) => {
                eprintln!("{nodes:?}: opened");
                let task = tokio::spawn(async move {
                    let probe = fresh_key();
                    let outcome = opened.create(&probe, &live_record()).await;
                    if outcome.as_ref().is_ok_and(|created| *created) {
                        opened.delete(&probe).await.unwrap();
                    }
                    outcome.map(drop).map_err(|err| err.kind())
                });
                match task.await {
                    Ok(outcome) => eprintln!("  create: {outcome:?}"),
                    Err(join) => problems.push(format!("{nodes:?}: create panicked: {join:?}")),
                }
            }
            Err(what) => problems.push(format!("{nodes:?}: {what}")),
        }
    }
    // A standalone (non-cluster) Redis.
    let standalone = common::redis_server::OwnServer::start();
    match try_open(vec![standalone.url()]).await {
        Ok(Err(kind)) => eprintln!("standalone: {kind:?}"),
        Ok(Ok(opened)) => {
            let task = tokio::spawn(async move {
                opened
                    .create(&fresh_key(), &live_record())
                    .await
                    .map_err(|err| err.kind())
            });
            match task.await {
                Ok(outcome) => eprintln!("standalone opened; create: {outcome:?}"),
                Err(join) => problems.push(format!("standalone: create panicked: {join:?}")),
            }
        }
        Err(what) => problems.push(format!("standalone: {what}")),
    }
    assert!(
        store.load(&key).await.unwrap().is_some(),
        "a bad open lost a session"
    );
    assert_eq!(store.delete_sessions_of(&subject).await.unwrap(), 1);
    assert!(problems.is_empty(), "{problems:#?}");
}

// ---------------------------------------------------------------------------
// Promise 6: no replica acknowledgement on a cluster.
// ---------------------------------------------------------------------------

/// Invalid acknowledgements are refused on a cluster as on one server; a
/// valid one on this cluster, whose primaries have no replicas, makes a
/// logout fail as not replicated (the record gone from its primary) and a
/// login fail before its record is written: the documented price of
/// asking for replicas that are not there.
#[tokio::test]
async fn replica_acknowledgement_on_a_cluster_without_replicas_fails_typed() {
    for (replicas, timeout) in [
        (0, Duration::from_millis(500)),
        (1, Duration::ZERO),
        (1, MAX_REPLICA_WAIT + Duration::from_secs(1)),
    ] {
        let store = cluster_store().await;
        assert!(store
            .with_replica_acknowledgement(replicas, timeout)
            .is_err());
    }
    let plain = cluster_store().await;
    let store = cluster_store()
        .await
        .with_replica_acknowledgement(1, Duration::from_millis(50))
        .unwrap();
    let subject = unique("ack");
    let key = fresh_key();
    assert!(plain.create(&key, &of(&subject)).await.unwrap());
    let err = store.delete(&key).await.unwrap_err();
    assert_eq!(err.kind(), StoreErrorKind::NotReplicated, "{err:?}");
    assert_eq!(plain.load(&key).await.unwrap(), None);
    let login = fresh_key();
    let err = store.create(&login, &of(&subject)).await.unwrap_err();
    assert_eq!(err.kind(), StoreErrorKind::NotReplicated, "{err:?}");
    assert_eq!(plain.load(&login).await.unwrap(), None);
}

// ---------------------------------------------------------------------------
// Promise 1: the hot path is one round trip to the owning primary.
// ---------------------------------------------------------------------------

/// Through the store: every `load_and_touch`, whether a touch is due (the
/// script) or not (a plain load), is one command, on one node.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn load_and_touch_is_one_command_on_one_node() {
    let store = cluster_store().await;
    let policy = idle_hour_policy();
    let key = fresh_key();
    let record = of(&unique("hot"));
    assert!(store.create(&key, &record).await.unwrap());
    let start = now();
    // Warm: scripts loaded on the node, the hint remembered.
    store
        .load_and_touch(&key, &policy, start)
        .await
        .unwrap()
        .unwrap();
    let monitors = Monitors::start(&cluster_nodes(), key.to_hex()).await;
    let _ = monitors.take().await;
    let mut at = start;
    for step in 0..16u32 {
        if step % 2 == 0 {
            at = at.saturating_add(31 * MINUTE); // a touch is due
        }
        store
            .load_and_touch(&key, &policy, at)
            .await
            .unwrap()
            .unwrap();
        let sent = monitors.take().await;
        assert_eq!(sent.len(), 1, "step {step}: {sent:#?}");
    }
    store.delete(&key).await.unwrap();
}

/// Through the layer: a login, then requests, each one command on the node
/// that owns the session.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_request_through_the_layer_is_one_round_trip() {
    let clock = clock_now();
    let app = app(cluster_store().await, &clock);
    let user = unique("layer-hot");
    let cookie = log_in(&app, &user).await;
    let id = cookie.split_once('=').unwrap().1;
    let key = SessionId::parse(id)
        .expect("an unsigned session cookie")
        .key();
    let monitors = Monitors::start(&cluster_nodes(), key.to_hex()).await;
    let _ = monitors.take().await;
    for step in 0..12u32 {
        if step % 3 == 0 {
            clock.advance(31 * MINUTE);
        }
        let response = send(&app, "GET", "/me", Some(&cookie)).await;
        assert_eq!(response.status(), StatusCode::OK, "step {step}");
        let sent = monitors.take().await;
        assert_eq!(sent.len(), 1, "step {step}: {sent:#?}");
    }
    send(&app, "POST", "/logout", Some(&cookie)).await;
}

// ---------------------------------------------------------------------------
// Through the layer: logout everywhere racing renewals.
// ---------------------------------------------------------------------------

fn renewing_app(store: RedisStore, clock: &ManualClock, grace: Duration) -> Router {
    let policy = Policy::builder()
        .idle_timeout(HOUR)
        .absolute_timeout(8 * HOUR)
        .renewal_interval(MINUTE)
        .renewal_grace(grace)
        .build()
        .unwrap();
    common::routes().layer(
        SessionLifetimeLayer::new(store)
            .with_clock(clock.clone())
            .with_policy(policy),
    )
}

/// A user has many sessions; each renews on its next request while the
/// user logs out everywhere from one of them. Every one of those sessions
/// existed when the logout everywhere began, so afterwards no cookie, old
/// or new, is admitted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_logout_everywhere_through_the_layer_ends_sessions_renewing_meanwhile() {
    let mut admitted_after = Vec::new();
    for grace in [Duration::ZERO, Duration::from_secs(10)] {
        for round in 0..6 {
            let clock = clock_now();
            let app = renewing_app(cluster_store().await, &clock, grace);
            let user = unique("layer-everywhere");
            let mut cookies = Vec::new();
            for _ in 0..16 {
                cookies.push(log_in(&app, &user).await);
            }
            clock.advance(2 * MINUTE); // every session's renewal is due
            let logout = {
                let (app, cookie) = (app.clone(), cookies[0].clone());
                tokio::spawn(async move {
                    send(&app, "POST", "/logout-everywhere", Some(&cookie))
                        .await
                        .status()
                })
            };
            let mut requests = Vec::new();
            for cookie in cookies[1..].iter().cloned() {
                let app = app.clone();
                requests.push(tokio::spawn(async move {
                    let response = send(&app, "GET", "/me", Some(&cookie)).await;
                    let renewed = set_cookie(&response)
                        .filter(|set| !set.value().is_empty())
                        .map(|set| format!("{}={}", set.name(), set.value()));
                    (cookie, renewed)
                }));
            }
            assert_eq!(logout.await.unwrap(), StatusCode::OK);
            let mut all = Vec::new();
            for request in requests {
                let (old, renewed) = request.await.unwrap();
                all.push(old);
                all.extend(renewed);
            }
            for cookie in &all {
                let response = send(&app, "GET", "/me", Some(cookie)).await;
                if response.status() == StatusCode::OK {
                    admitted_after.push(format!("grace {grace:?}, round {round}"));
                    send(&app, "POST", "/logout", Some(cookie)).await;
                }
            }
        }
    }
    assert!(
        admitted_after.is_empty(),
        "sessions admitted after a logout everywhere that began before they renewed: {admitted_after:?}"
    );
}
