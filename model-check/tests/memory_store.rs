//! Every interleaving of two concurrent operations on one session in
//! [`MemoryStore`], explored exhaustively by loom.
//!
//! The store's locks and atomics are loom's under `--cfg tsl_loom` (see
//! `src/store/memory.rs`), so loom runs each scenario once per distinct
//! schedule of their acquisitions and atomic accesses (with its C11 memory
//! model for the atomics), with no preemption bound: every schedule, not a
//! sample. After each schedule the scenario checks what the store promises:
//!
//! - a deleted session never comes back;
//! - exactly one of two renewals of one session wins;
//! - a delete of a session being renewed ends it under both IDs, and so
//!   does a logout everywhere of its subject;
//! - stored activity never moves backwards;
//! - no expired record is touched.
//!
//! Run with `scripts/model-check` (which sets `RUSTFLAGS="--cfg tsl_loom"`);
//! each test prints how many schedules it explored.
#![cfg(tsl_loom)]

use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use loom::thread;
use tower_session_lifetime::{MemoryStore, Policy, clock::ManualClock, id::SessionKey, record::SessionRecord, store::{LifetimeStore, RenewOutcome, TouchOutcome, UpdateOutcome}, time::Timestamp};
use tower_session_lifetime_model_check::explore;

/// The start of every scenario, in milliseconds since the epoch.
const T0: u64 = 1_700_000_000_000;
const IDLE: Duration = Duration::from_secs(10);
/// When a renewed ID stops working.
const GRACE_UNTIL: u64 = 30_000;

/// Runs a memory-store call: it never waits on anything but the store's own
/// locks, which loom schedules, so one poll completes it.
fn block_on<T>(call: impl Future<Output = T>) -> T {
    match pin!(call).poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(output) => output,
        Poll::Pending => panic!("a memory store call waited on something else"),
    }
}

/// `millis` after the start.
fn at(millis: u64) -> Timestamp {
    Timestamp::from_unix_millis(T0 + millis)
}

/// A key that the model-checked store (4 shards) puts in shard `shard`.
fn key(tag: u8, shard: u16) -> SessionKey {
    let mut bytes = [tag; SessionKey::LEN];
    bytes[14..].copy_from_slice(&shard.to_le_bytes());
    SessionKey::from_bytes(bytes)
}

/// A store on a manual clock set to `now` (milliseconds after the start),
/// and its clock.
fn store_at(now: u64) -> MemoryStore {
    store_with_clock(now).0
}

fn store_with_clock(now: u64) -> (MemoryStore, ManualClock) {
    let clock = ManualClock::new(at(now));
    (MemoryStore::with_clock(clock.clone()), clock)
}

/// A session of `subject` created at the start, idle for [`IDLE`].
fn record(subject: &str) -> SessionRecord {
    let policy = Policy::builder()
        .idle_timeout(IDLE)
        .absolute_timeout(Duration::from_secs(3600))
        .build()
        .expect("a valid policy");
    SessionRecord::new(&policy, at(0), Some(subject.into()), false)
}

fn load(store: &MemoryStore, key: &SessionKey) -> Option<SessionRecord> {
    block_on(store.load(key)).expect("the memory store does not fail")
}

/// The live record that `key` names, following renewal pointers as the
/// layer does: `None` if the session has ended under that ID.
fn live(store: &MemoryStore, key: &SessionKey) -> Option<SessionRecord> {
    let mut next = *key;
    for _ in 0..8 {
        let record = load(store, &next)?;
        match record.renewed_to {
            Some(to) => next = to,
            None => return Some(record),
        }
    }
    None
}

fn create(store: &MemoryStore, key: &SessionKey, record: &SessionRecord) {
    assert!(block_on(store.create(key, record)).expect("create"));
}

/// The record a renewal of `old` writes under the new key.
fn renewed(old: &SessionRecord) -> SessionRecord {
    let mut renewed = old.clone();
    renewed.version = 0;
    renewed.id_issued_at = at(2_000);
    renewed.last_activity = at(2_000);
    renewed.expires_at = at(2_000).saturating_add(IDLE);
    renewed
}

#[test]
fn touch_vs_delete() {
    explore("touch vs delete", || {
        let store = store_at(1_000);
        let session = key(1, 0);
        create(&store, &session, &record("alice"));
        let toucher = store.clone();
        let touch = thread::spawn(move || {
            block_on(toucher.touch(&session, at(1_000), at(1_000).saturating_add(IDLE)))
                .expect("touch")
        });
        let deleted = block_on(store.delete(&session)).expect("delete");
        let touched = touch.join().expect("the touch thread");
        assert!(deleted, "the delete found the session");
        assert!(
            matches!(touched, TouchOutcome::Touched | TouchOutcome::Missing),
            "{touched:?}"
        );
        assert_eq!(
            load(&store, &session),
            None,
            "a deleted session came back (touch: {touched:?})"
        );
    });
}

#[test]
fn touch_vs_delete_stale() {
    explore("touch vs delete_stale", || {
        let store = store_at(1_000);
        let session = key(1, 0);
        let stale = record("alice");
        create(&store, &session, &stale);
        let toucher = store.clone();
        let touch = thread::spawn(move || {
            block_on(toucher.touch(&session, at(1_000), at(1_000).saturating_add(IDLE)))
                .expect("touch")
        });
        let deleted = block_on(store.delete_stale(&session, stale.last_activity)).expect("delete");
        let touched = touch.join().expect("the touch thread");
        match load(&store, &session) {
            // The stale delete went first: the touch found nothing.
            None => {
                assert!(deleted);
                assert_eq!(
                    touched,
                    TouchOutcome::Missing,
                    "a deleted session came back"
                );
            }
            // The touch went first: the session is no longer stale.
            Some(stored) => {
                assert!(!deleted, "a deleted session came back");
                assert_eq!(touched, TouchOutcome::Touched);
                assert_eq!(stored.last_activity, at(1_000));
            }
        }
    });
}

#[test]
fn touch_vs_sweep() {
    explore("touch vs sweep of an expired session", || {
        // Expires at IDLE; then the clock passes it.
        let (store, clock) = store_with_clock(1_000);
        let session = key(1, 0);
        create(&store, &session, &record("alice"));
        clock.advance(IDLE);
        let toucher = store.clone();
        let expiry = at(IDLE.as_millis() as u64);
        let touch = thread::spawn(move || {
            block_on(toucher.touch(&session, expiry, expiry.saturating_add(IDLE))).expect("touch")
        });
        let swept = store.sweep_expired();
        let touched = touch.join().expect("the touch thread");
        assert_eq!(
            touched,
            TouchOutcome::Missing,
            "an expired record was touched"
        );
        assert_eq!(swept, 1, "the sweep missed the expired session");
        assert_eq!(load(&store, &session), None);
    });
}

#[test]
fn touch_vs_sweep_of_a_live_session() {
    explore("touch vs sweep of a session touched in time", || {
        // The clock passes the expiry; the touch is dated before it.
        let (store, clock) = store_with_clock(1_000);
        let session = key(1, 0);
        create(&store, &session, &record("alice"));
        clock.advance(IDLE);
        let toucher = store.clone();
        let touch = thread::spawn(move || {
            block_on(toucher.touch(&session, at(5_000), at(60_000))).expect("touch")
        });
        let swept = store.sweep_expired();
        let touched = touch.join().expect("the touch thread");
        match load(&store, &session) {
            None => {
                assert_eq!(swept, 1);
                assert_eq!(touched, TouchOutcome::Missing, "a swept session came back");
            }
            Some(stored) => {
                assert_eq!(swept, 0);
                assert_eq!(touched, TouchOutcome::Touched);
                assert_eq!(
                    (stored.last_activity, stored.expires_at),
                    (at(5_000), at(60_000))
                );
            }
        }
    });
}

#[test]
fn update_vs_touch() {
    explore("update vs touch", || {
        let store = store_at(1_000);
        let session = key(1, 0);
        let loaded = record("alice");
        create(&store, &session, &loaded);
        let toucher = store.clone();
        let touch = thread::spawn(move || {
            block_on(toucher.touch(&session, at(1_000), at(1_000).saturating_add(IDLE)))
                .expect("touch")
        });
        // An update from a copy read before the touch (a remember-me switch).
        let switched = {
            let mut edited = loaded.clone();
            edited.remember_me = true;
            edited.version = loaded.version + 1;
            edited.expires_at = at(0).saturating_add(IDLE * 2);
            edited
        };
        let updated = block_on(store.update(&session, loaded.version, &switched)).expect("update");
        let touched = touch.join().expect("the touch thread");
        assert_eq!(updated, UpdateOutcome::Updated);
        assert_eq!(touched, TouchOutcome::Touched);
        let stored = load(&store, &session).expect("the session");
        assert!(stored.remember_me, "the update was lost");
        assert_eq!(stored.last_activity, at(1_000), "activity moved backwards");
        // The touch went first (the update moved the expiry by its lag), or
        // after (and kept the update's later expiry).
        assert!(
            stored.expires_at >= at(0).saturating_add(IDLE * 2),
            "a stale touch cut the remember-me session short: {:?}",
            stored.expires_at
        );
        assert!(stored.expires_at <= at(1_000).saturating_add(IDLE * 2));
    });
}

#[test]
fn renew_vs_renew() {
    explore("renew vs renew", || {
        let store = store_at(2_000);
        let (old, first, second) = (key(1, 0), key(2, 1), key(3, 2));
        let loaded = record("alice");
        create(&store, &old, &loaded);
        let renewer = store.clone();
        let (version, moved) = (loaded.version, renewed(&loaded));
        let other = thread::spawn(move || {
            block_on(renewer.renew(&old, version, &first, &moved, at(GRACE_UNTIL))).expect("renew")
        });
        let mine = block_on(store.renew(
            &old,
            loaded.version,
            &second,
            &renewed(&loaded),
            at(GRACE_UNTIL),
        ))
        .expect("renew");
        let theirs = other.join().expect("the other renewal");
        let (winner, loser) = match (theirs, mine) {
            (RenewOutcome::Renewed, RenewOutcome::Conflict) => (first, second),
            (RenewOutcome::Conflict, RenewOutcome::Renewed) => (second, first),
            outcomes => panic!("not exactly one renewal won: {outcomes:?}"),
        };
        assert_eq!(load(&store, &old).and_then(|r| r.renewed_to), Some(winner));
        assert!(live(&store, &winner).is_some());
        assert_eq!(load(&store, &loser), None, "the losing renewal left an ID");
    });
}

/// Renewal against a delete of the old ID, with the new ID in another
/// shard and in the same one.
fn renew_vs_delete(new_shard: u16) {
    let store = store_at(2_000);
    let (old, new) = (key(1, 0), key(2, new_shard));
    let loaded = record("alice");
    create(&store, &old, &loaded);
    let renewer = store.clone();
    let (version, moved) = (loaded.version, renewed(&loaded));
    let renewal = thread::spawn(move || {
        block_on(renewer.renew(&old, version, &new, &moved, at(GRACE_UNTIL))).expect("renew")
    });
    let deleted = block_on(store.delete(&old)).expect("delete");
    let renewed = renewal.join().expect("the renewal");
    assert!(deleted);
    assert!(
        matches!(renewed, RenewOutcome::Renewed | RenewOutcome::Missing),
        "{renewed:?}"
    );
    assert_eq!(live(&store, &old), None, "the old ID outlived the delete");
    assert_eq!(
        load(&store, &new),
        None,
        "the new ID outlived the delete ({renewed:?})"
    );
}

#[test]
fn renew_vs_delete_across_shards() {
    explore("renew vs delete (IDs in two shards)", || renew_vs_delete(1));
}

#[test]
fn renew_vs_delete_in_one_shard() {
    explore("renew vs delete (IDs in one shard)", || renew_vs_delete(0));
}

#[test]
fn renew_vs_touch() {
    explore("renew vs touch", || {
        let store = store_at(3_000);
        let (old, new) = (key(1, 0), key(2, 1));
        let loaded = record("alice");
        create(&store, &old, &loaded);
        let toucher = store.clone();
        let touch = thread::spawn(move || {
            block_on(toucher.touch(&old, at(3_000), at(3_000).saturating_add(IDLE))).expect("touch")
        });
        let renewed_outcome = block_on(store.renew(
            &old,
            loaded.version,
            &new,
            &renewed(&loaded),
            at(GRACE_UNTIL),
        ))
        .expect("renew");
        let touched = touch.join().expect("the touch thread");
        assert_eq!(renewed_outcome, RenewOutcome::Renewed);
        let session = live(&store, &old).expect("the session, through the pointer");
        assert_eq!(Some(&session), live(&store, &new).as_ref());
        assert!(
            session.last_activity >= at(2_000),
            "the renewal's activity was lost"
        );
        if touched == TouchOutcome::Touched {
            assert_eq!(session.last_activity, at(3_000), "a touch was lost");
            assert!(session.expires_at >= at(3_000).saturating_add(IDLE));
        } else {
            assert_eq!(touched, TouchOutcome::AlreadyRecent, "touch of a pointer");
        }
    });
}

#[test]
fn create_vs_delete_sessions_of() {
    explore("create vs delete_sessions_of", || {
        let store = store_at(1_000);
        let (existing, fresh, bystander) = (key(1, 2), key(2, 0), key(3, 1));
        create(&store, &existing, &record("alice"));
        create(&store, &bystander, &record("bob"));
        let creator = store.clone();
        let login = thread::spawn(move || {
            block_on(creator.create(&fresh, &record("alice"))).expect("create")
        });
        let deleted = block_on(store.delete_sessions_of("alice")).expect("delete_sessions_of");
        assert!(login.join().expect("the login"));
        assert_eq!(
            load(&store, &existing),
            None,
            "a session survived a logout everywhere"
        );
        // The login either came after (and lives) or was ended with the rest.
        match load(&store, &fresh) {
            Some(_) => assert_eq!(deleted, 1),
            None => assert_eq!(deleted, 2),
        }
        assert!(
            load(&store, &bystander).is_some(),
            "another subject's session ended"
        );
    });
}

#[test]
fn renew_vs_delete_sessions_of() {
    explore("renew vs delete_sessions_of", || {
        let store = store_at(2_000);
        // The new ID sits in a shard the logout's scan visits before the
        // old one's.
        let (old, new) = (key(1, 2), key(2, 0));
        let loaded = record("alice");
        create(&store, &old, &loaded);
        let renewer = store.clone();
        let (version, moved) = (loaded.version, renewed(&loaded));
        let renewal = thread::spawn(move || {
            block_on(renewer.renew(&old, version, &new, &moved, at(GRACE_UNTIL))).expect("renew")
        });
        let deleted = block_on(store.delete_sessions_of("alice")).expect("delete_sessions_of");
        let renewed = renewal.join().expect("the renewal");
        assert_eq!(
            deleted, 1,
            "the logout everywhere counts one session ({renewed:?})"
        );
        assert_eq!(
            live(&store, &old),
            None,
            "the old ID outlived a logout everywhere"
        );
        assert_eq!(
            live(&store, &new),
            None,
            "the new ID outlived a logout everywhere"
        );
    });
}
