//! What `SqlStore` offers on every dialect, checked by code generic over
//! the dialect, as an app's would be.

use std::time::Duration;

use tower_session_lifetime::clock::{Clock, ManualClock, SystemClock};
use tower_session_lifetime::store::conformance::insert_live;
use tower_session_lifetime::store::{Dialect, LifetimeStore, SqlStore, StoreErrorKind};

/// `with_table` keeps its sessions apart from the default table's,
/// `with_clock` decides what `purge_expired` purges (in its table alone),
/// a second `migrate` keeps the rows, `Debug` names the table, and a table
/// name that is not an SQL identifier is a typed error.
pub async fn the_shared_sql_api_works<D: Dialect>(store: SqlStore<D>, table: &str)
where
    SqlStore<D>: LifetimeStore,
{
    let clock = ManualClock::new(SystemClock.now());
    let apart = store
        .clone()
        .with_table(table)
        .expect("a valid table name")
        .with_clock(clock.clone());
    apart.migrate().await.expect("migration");
    let (in_default, _) = insert_live(&store).await;
    let (in_apart, record) = insert_live(&apart).await;
    apart.migrate().await.expect("a second migration");
    assert_eq!(apart.load(&in_apart).await.unwrap(), Some(record));
    assert_eq!(store.load(&in_apart).await.unwrap(), None);
    assert_eq!(apart.load(&in_default).await.unwrap(), None);

    apart.purge_expired().await.expect("a purge");
    assert!(
        apart.load(&in_apart).await.unwrap().is_some(),
        "a live row was purged"
    );
    clock.advance(Duration::from_secs(9 * 3600));
    assert!(apart.purge_expired().await.unwrap() >= 1);
    assert_eq!(apart.load(&in_apart).await.unwrap(), None);
    assert!(
        store.load(&in_default).await.unwrap().is_some(),
        "the purge of one table reached another"
    );

    assert!(format!("{apart:?}").contains(table), "{apart:?}");
    let err = store.with_table("sessions; DROP TABLE x").unwrap_err();
    assert_eq!(err.kind(), StoreErrorKind::InvalidRecord);
}
