//! `SqliteStore` on a database file: the conformance suite every store
//! runs, the rules through the layer, and two stores on one file.
#![cfg(all(feature = "conformance", feature = "sqlite", feature = "axum"))]

mod common;

use common::hardening;
use common::shared_store::{the_rules_hold_through_the_layer, two_nodes_act_as_one};
use tower_session_lifetime::store::conformance::{fresh_key, insert_live};
use tower_session_lifetime::{
    store::{LifetimeStore, StoreErrorKind},
    SqliteStore,
};

/// A database file of this test run's own, removed when the process ends
/// would be nicer; the OS's temporary directory cleans it up instead.
fn database_url(name: &str) -> String {
    let path = std::env::temp_dir().join(format!(
        "tsl-sqlite-{}-{name}-{}.db",
        std::process::id(),
        &fresh_key().to_hex()[..8]
    ));
    format!("sqlite://{}", path.display())
}

async fn store_at(url: &str) -> SqliteStore {
    let store = SqliteStore::open(url).expect("a valid SQLite URL");
    store.migrate().await.expect("migration");
    store
}

tower_session_lifetime::lifetime_store_conformance!(store_at(&database_url("conformance")));

#[tokio::test]
async fn the_rules_hold_through_the_layer_on_sqlite() {
    the_rules_hold_through_the_layer(store_at(&database_url("rules")).await).await;
}

#[tokio::test]
async fn two_stores_on_one_file_act_as_one() {
    let url = database_url("nodes");
    two_nodes_act_as_one(store_at(&url).await, store_at(&url).await).await;
}

#[tokio::test]
async fn migrating_again_keeps_the_rows() {
    let url = database_url("migrate");
    let store = store_at(&url).await;
    let (key, record) = insert_live(&store).await;
    store.migrate().await.expect("a second migration");
    assert_eq!(store.load(&key).await.unwrap(), Some(record));
}

#[tokio::test]
async fn a_database_that_cannot_be_opened_is_a_typed_error() {
    let store = SqliteStore::open("sqlite:///nonexistent-directory/for/sure/sessions.db").unwrap();
    let err = store.load(&fresh_key()).await.unwrap_err();
    assert_ne!(err.kind(), StoreErrorKind::Corrupt, "{err:?}");
}

// ---------------------------------------------------------------------------
// Security hardening on SQLite (the same checks as on every store)

#[tokio::test]
async fn renewal_replaces_the_id_and_keeps_the_deadline_on_sqlite() {
    let store = store_at(&database_url("renewal")).await;
    hardening::renewal_replaces_the_id_and_keeps_the_deadline(store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logout_racing_touches_sticks_on_sqlite() {
    let store = store_at(&database_url("logout-race")).await;
    hardening::logout_racing_touches_sticks(store, 1000).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn renewal_racing_requests_renews_once_on_sqlite() {
    let store = store_at(&database_url("renewal-race")).await;
    hardening::renewal_racing_requests_renews_once(store, 300).await;
}

#[tokio::test]
async fn session_limit_and_logout_everywhere_on_sqlite() {
    let store = store_at(&database_url("limit")).await;
    hardening::session_limit_and_logout_everywhere(store).await;
}

#[tokio::test]
async fn own_sessions_are_listed_and_ended_on_sqlite() {
    let store = store_at(&database_url("own-sessions")).await;
    hardening::own_sessions_are_listed_and_ended(store).await;
}

#[tokio::test]
async fn a_listed_session_is_ended_after_its_id_renewed_on_sqlite() {
    let store = store_at(&database_url("listed-renewed")).await;
    hardening::a_listed_session_is_ended_after_its_id_renewed(store).await;
}

#[tokio::test]
async fn the_api_shared_with_postgres_works_on_sqlite() {
    common::sql_store::the_shared_sql_api_works(
        store_at(&database_url("shared")).await,
        "tsl_shared_api",
    )
    .await;
}
