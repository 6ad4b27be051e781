//! `PostgresStore` against a real PostgreSQL: the conformance suite every
//! store runs, the rules through the layer, two app nodes on one database,
//! a connection cut and restored, the migration and the purge.
//!
//! `scripts/test` starts a cluster on a free loopback port and sets
//! `TSL_POSTGRES_URL`; run through it. Without a server these tests fail,
//! with a message saying what to do: they never skip.
#![cfg(all(feature = "conformance", feature = "postgres", feature = "axum"))]

mod common;

use std::time::Duration;

use common::hardening;
use common::proxy::Proxy;
use common::shared_store::{
    an_outage_gives_503_and_the_store_recovers, the_rules_hold_through_the_layer,
    two_nodes_act_as_one,
};
use common::HOUR;
use tower_session_lifetime::store::conformance::{fresh_key, insert_live, live_record};
use tower_session_lifetime::{
    clock::{Clock, ManualClock, SystemClock},
    store::{LifetimeStore, StoreErrorKind},
    PostgresStore,
};

/// The URL of the cluster `scripts/test` started.
fn postgres_url() -> String {
    std::env::var("TSL_POSTGRES_URL").unwrap_or_else(|_| {
        panic!(
            "TSL_POSTGRES_URL is not set: run the tests with scripts/test, which starts \
             a PostgreSQL cluster on a free loopback port (and installs Debian's postgresql \
             package when missing)"
        )
    })
}

/// A store on the test cluster, its table created.
async fn migrated_store() -> PostgresStore {
    let store = PostgresStore::open(&postgres_url()).expect("a valid PostgreSQL URL");
    store.migrate().await.expect("migration");
    store
}

tower_session_lifetime::lifetime_store_conformance!(migrated_store());

#[tokio::test]
async fn the_rules_hold_through_the_layer_on_postgres() {
    the_rules_hold_through_the_layer(migrated_store().await).await;
}

#[tokio::test]
async fn two_nodes_on_one_database_act_as_one() {
    two_nodes_act_as_one(migrated_store().await, migrated_store().await).await;
}

#[tokio::test]
async fn a_connection_cut_gives_503_and_nothing_stored_is_lost() {
    let url = postgres_url();
    let address = url
        .split('@')
        .nth(1)
        .and_then(|rest| rest.split('/').next())
        .expect("TSL_POSTGRES_URL is postgres://<user>@<ip>:<port>/<db>");
    let mut proxy = Proxy::start(address.parse().unwrap()).await;
    let through_proxy = url.replace(address, &proxy.address().to_string());
    migrated_store().await; // the table exists
    let store = PostgresStore::open(&through_proxy).unwrap();
    an_outage_gives_503_and_the_store_recovers(store, &mut proxy).await;
}

#[tokio::test]
async fn connection_refused_is_a_typed_unavailable_error() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    // Nothing listens there now.
    let store = PostgresStore::open(&format!("postgres://tsl@127.0.0.1:{port}/postgres")).unwrap();
    let err = store.load(&fresh_key()).await.unwrap_err();
    assert_eq!(err.kind(), StoreErrorKind::Unavailable, "{err:?}");
    assert!(std::error::Error::source(&err).is_some());
    let err = store.migrate().await.unwrap_err();
    assert_eq!(err.kind(), StoreErrorKind::Unavailable);
}

#[tokio::test]
async fn migrating_again_and_concurrently_changes_nothing() {
    let table = format!("tsl_migrate_{}", &fresh_key().to_hex()[..12]);
    let store = PostgresStore::open(&postgres_url())
        .unwrap()
        .with_table(&table)
        .unwrap();
    let runs: Vec<_> = (0..4)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move { store.migrate().await })
        })
        .collect();
    for run in runs {
        run.await
            .unwrap()
            .expect("concurrent migrations all succeed");
    }
    let (key, record) = insert_live(&store).await;
    store.migrate().await.expect("a later migration");
    assert_eq!(
        store.load(&key).await.unwrap(),
        Some(record),
        "kept the rows"
    );
    sqlx::query(&format!("DROP TABLE {table}"))
        .execute(store.pool())
        .await
        .unwrap();
}

#[tokio::test]
async fn a_table_name_that_is_not_an_identifier_is_refused() {
    let store = || PostgresStore::open("postgres://tsl@127.0.0.1:1/postgres").unwrap();
    for name in [
        "",
        "1st",
        "sessions; DROP TABLE users",
        "a-b",
        "s\u{e9}ssions",
    ] {
        let err = store().with_table(name).unwrap_err();
        assert_eq!(err.kind(), StoreErrorKind::InvalidRecord, "{name:?}");
    }
    assert!(store().with_table("app_sessions_2").is_ok());
}

#[test]
fn a_malformed_url_is_refused_at_once() {
    assert!(PostgresStore::open("not a url").is_err());
}

#[tokio::test]
async fn the_purge_deletes_expired_rows_only() {
    let table = format!("tsl_purge_{}", &fresh_key().to_hex()[..12]);
    let clock = ManualClock::new(SystemClock.now());
    let store = PostgresStore::open(&postgres_url())
        .unwrap()
        .with_table(&table)
        .unwrap()
        .with_clock(clock.clone());
    store.migrate().await.unwrap();
    let (live, _) = insert_live(&store).await;
    let expiring = fresh_key();
    let record = {
        let mut edited = live_record();
        edited.expires_at = clock.now().saturating_add(Duration::from_secs(60));
        edited
    };
    assert!(store.create(&expiring, &record).await.unwrap());
    assert_eq!(
        store.purge_expired().await.unwrap(),
        0,
        "nothing expired yet"
    );

    clock.advance(Duration::from_secs(60));
    let purge = store.spawn_purge(Duration::from_millis(10));
    let mut purged = false;
    for _ in 0..200 {
        if store.load(&expiring).await.unwrap().is_none() {
            purged = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    purge.abort();
    assert!(purged, "the spawned purge deleted the expired row");
    assert!(store.load(&live).await.unwrap().is_some(), "live rows stay");
    clock.advance(2 * HOUR);
    assert_eq!(store.purge_expired().await.unwrap(), 1);
    sqlx::query(&format!("DROP TABLE {table}"))
        .execute(store.pool())
        .await
        .unwrap();
}

// ---------------------------------------------------------------------------
// Security hardening on PostgreSQL (the same checks as on every store)

#[tokio::test]
async fn renewal_replaces_the_id_and_keeps_the_deadline_on_postgres() {
    hardening::renewal_replaces_the_id_and_keeps_the_deadline(migrated_store().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logout_racing_touches_sticks_on_postgres() {
    hardening::logout_racing_touches_sticks(migrated_store().await, 1000).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn renewal_racing_requests_renews_once_on_postgres() {
    hardening::renewal_racing_requests_renews_once(migrated_store().await, 300).await;
}

#[tokio::test]
async fn session_limit_and_logout_everywhere_on_postgres() {
    hardening::session_limit_and_logout_everywhere(migrated_store().await).await;
}

#[tokio::test]
async fn own_sessions_are_listed_and_ended_on_postgres() {
    hardening::own_sessions_are_listed_and_ended(migrated_store().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outage_mid_traffic_fails_closed_on_postgres() {
    let url = postgres_url();
    let address = url
        .split('@')
        .nth(1)
        .and_then(|rest| rest.split('/').next())
        .expect("TSL_POSTGRES_URL is postgres://<user>@<ip>:<port>/<db>");
    let mut proxy = Proxy::start(address.parse().unwrap()).await;
    let through_proxy = url.replace(address, &proxy.address().to_string());
    migrated_store().await; // the table exists
    let store = PostgresStore::open(&through_proxy).unwrap();
    hardening::an_outage_mid_traffic_fails_closed(store, &mut proxy).await;
}

/// Waits until `waiting` backends of this database wait on a lock (a row
/// or an advisory lock), polling `pg_stat_activity`; panics after 10 s.
async fn until_waiting_on_locks(pool: &sqlx::PgPool, waiting: i64) {
    for _ in 0..1000 {
        let now: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pg_stat_activity \
             WHERE datname = current_database() AND wait_event_type = 'Lock'",
        )
        .fetch_one(pool)
        .await
        .unwrap();
        if now >= waiting {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    panic!("{waiting} backends never waited on a lock");
}

/// The interleaving that once let a renewed session outlive a logout
/// everywhere, made deterministic: a renewal has inserted the new row but
/// not committed (another transaction holds the old row), and the logout
/// everywhere starts then. It must end the session under its new key too.
#[tokio::test]
async fn a_logout_everywhere_ends_a_session_whose_renewal_is_half_done() {
    let table = format!("tsl_gate_{}", &fresh_key().to_hex()[..12]);
    let store = PostgresStore::open(&postgres_url())
        .unwrap()
        .with_table(&table)
        .unwrap();
    store.migrate().await.unwrap();
    let subject = format!("racer-{}", &fresh_key().to_hex()[..8]);
    let record = {
        let mut edited = live_record();
        edited.subject = Some(subject.as_str().into());
        edited
    };
    let old = fresh_key();
    assert!(store.create(&old, &record).await.unwrap());

    // Another transaction holds the old row: the renewal will insert the
    // new row, then wait to turn the old one into a pointer.
    let mut blocker = store.pool().begin().await.unwrap();
    sqlx::query(&format!("SELECT 1 FROM {table} WHERE key = $1 FOR UPDATE"))
        .bind(old.as_bytes().to_vec())
        .execute(&mut *blocker)
        .await
        .unwrap();
    let new = fresh_key();
    let renewal = tokio::spawn({
        let (store, record) = (store.clone(), record.clone());
        async move {
            let grace = SystemClock.now().saturating_add(HOUR);
            store
                .renew(&old, record.version, &new, &record, grace)
                .await
        }
    });
    until_waiting_on_locks(store.pool(), 1).await;
    let logout = tokio::spawn({
        let (store, subject) = (store.clone(), subject.clone());
        async move { store.delete_sessions_of(&subject).await }
    });
    until_waiting_on_locks(store.pool(), 2).await;
    blocker.rollback().await.unwrap();

    let renewed = renewal.await.unwrap().unwrap();
    let ended = logout.await.unwrap().unwrap();
    assert_eq!(
        renewed,
        tower_session_lifetime::store::RenewOutcome::Renewed
    );
    assert_eq!(ended, 1, "the session, under its new key");
    assert_eq!(store.load(&new).await.unwrap(), None, "no live new key");
    assert_eq!(store.load(&old).await.unwrap(), None, "no pointer left");
    sqlx::query(&format!("DROP TABLE {table}"))
        .execute(store.pool())
        .await
        .unwrap();
}

#[tokio::test]
async fn a_listed_session_is_ended_after_its_id_renewed_on_postgres() {
    hardening::a_listed_session_is_ended_after_its_id_renewed(migrated_store().await).await;
}

#[tokio::test]
async fn the_api_shared_with_sqlite_works_on_postgres() {
    common::sql_store::the_shared_sql_api_works(migrated_store().await, "tsl_shared_api").await;
}
