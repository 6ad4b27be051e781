//! `RedisStore` against a real `redis-server`: the conformance suite every
//! store runs, the rules through the layer, and a server that goes away and
//! comes back.
//!
//! `scripts/test` starts a server on a free loopback port and sets
//! `TSL_REDIS_URL`; run through it. Without a server these tests fail, with
//! a message saying what to do: they never skip.
#![cfg(all(feature = "conformance", feature = "redis", feature = "axum"))]

mod common;

use std::net::TcpListener;
use std::time::Duration;

use common::hardening;
use common::proxy::Proxy;
use common::redis_server::OwnServer;
use common::shared_store::{
    an_outage_gives_503_and_the_store_recovers, the_rules_hold_through_the_layer,
    two_nodes_act_as_one, Outage,
};
use common::{HOUR, MINUTE};
use tower_session_lifetime::store::conformance::{insert_live, live_record};
use tower_session_lifetime::{
    clock::{Clock, SystemClock},
    store::{LifetimeStore, StoreErrorKind},
    RedisStore,
};

/// The URL of the server `scripts/test` started.
fn redis_url() -> String {
    std::env::var("TSL_REDIS_URL").unwrap_or_else(|_| {
        panic!(
            "TSL_REDIS_URL is not set: run the tests with scripts/test, which starts \
             redis-server on a free loopback port (and installs it from Debian's \
             redis-server package when missing)"
        )
    })
}

/// The address in `TSL_REDIS_URL`.
fn redis_address() -> std::net::SocketAddr {
    let url = redis_url();
    let authority = url.trim_start_matches("redis://").trim_end_matches('/');
    authority
        .parse()
        .expect("TSL_REDIS_URL is redis://<ip>:<port>")
}

tower_session_lifetime::lifetime_store_conformance!(async {
    RedisStore::open(&redis_url()).expect("a valid Redis URL")
});

#[tokio::test]
async fn the_rules_hold_through_the_layer_on_redis() {
    the_rules_hold_through_the_layer(RedisStore::open(&redis_url()).unwrap()).await;
}

#[tokio::test]
async fn two_nodes_on_one_redis_act_as_one() {
    two_nodes_act_as_one(
        RedisStore::open(&redis_url()).unwrap(),
        RedisStore::open(&redis_url()).unwrap(),
    )
    .await;
}

#[tokio::test]
async fn a_record_expires_in_redis_at_its_deadline() {
    let store = RedisStore::open(&redis_url()).unwrap();
    let (key, record) = insert_live(&store).await;
    let redis_key = format!(
        "{}{}",
        tower_session_lifetime::store::DEFAULT_REDIS_PREFIX,
        key.to_hex()
    );
    let mut redis = redis::Client::open(redis_url().as_str())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    // The key's expiry in Redis is the record's `expires_at`, to the
    // millisecond: Redis reclaims it then by itself.
    let expires_at: i64 = redis::cmd("PEXPIRETIME")
        .arg(&redis_key)
        .query_async(&mut redis)
        .await
        .unwrap();
    assert_eq!(expires_at as u64, record.expires_at.as_unix_millis());
    let later = record.expires_at.saturating_add(HOUR);
    let touched_at = record.last_activity.saturating_add(MINUTE);
    store.touch(&key, touched_at, later).await.unwrap();
    let expires_at: i64 = redis::cmd("PEXPIRETIME")
        .arg(&redis_key)
        .query_async(&mut redis)
        .await
        .unwrap();
    assert_eq!(
        expires_at as u64,
        later.as_unix_millis(),
        "a touch moves it"
    );
    // A touch computed from a stale copy (an earlier expiry) never moves
    // it earlier.
    let past = SystemClock.now().saturating_add(Duration::ZERO);
    store
        .touch(&key, touched_at.saturating_add(MINUTE), past)
        .await
        .unwrap();
    let expires_at: i64 = redis::cmd("PEXPIRETIME")
        .arg(&redis_key)
        .query_async(&mut redis)
        .await
        .unwrap();
    assert_eq!(expires_at as u64, later.as_unix_millis(), "a touch kept it");
}

#[async_trait::async_trait]
impl Outage for OwnServer {
    async fn begin(&mut self) {
        self.stop();
    }

    async fn end(&mut self) {
        self.restart();
    }

    /// The server keeps nothing on disk: it comes back empty.
    fn keeps_data(&self) -> bool {
        false
    }
}

#[tokio::test]
async fn a_server_that_goes_away_gives_503_and_the_store_recovers_when_it_is_back() {
    let mut server = OwnServer::start();
    let store = RedisStore::open(&server.url()).unwrap();
    an_outage_gives_503_and_the_store_recovers(store, &mut server).await;
}

#[tokio::test]
async fn a_connection_cut_gives_503_and_nothing_stored_is_lost() {
    let mut proxy = Proxy::start(redis_address()).await;
    let store = RedisStore::open(&format!("redis://{}", proxy.address())).unwrap();
    an_outage_gives_503_and_the_store_recovers(store, &mut proxy).await;
}

#[tokio::test]
async fn connection_refused_is_a_typed_unavailable_error() {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    // Nothing listens there now.
    let store = RedisStore::open(&format!("redis://127.0.0.1:{port}")).unwrap();
    let err = store.load(&live_key()).await.unwrap_err();
    assert_eq!(err.kind(), StoreErrorKind::Unavailable, "{err:?}");
    assert!(
        std::error::Error::source(&err).is_some(),
        "keeps its source"
    );
    let err = store.create(&live_key(), &live_record()).await.unwrap_err();
    assert_eq!(err.kind(), StoreErrorKind::Unavailable);
}

fn live_key() -> tower_session_lifetime::id::SessionKey {
    tower_session_lifetime::store::conformance::fresh_key()
}

#[test]
fn a_malformed_url_is_refused_at_once() {
    assert!(RedisStore::open("not a url").is_err());
}

#[tokio::test]
async fn the_subject_index_expires_with_its_sessions_and_drops_expired_members() {
    let store = RedisStore::open(&redis_url()).unwrap();
    let subject = format!("index-{}", live_key().to_hex());
    let index = format!(
        "{}s:{subject}",
        tower_session_lifetime::store::DEFAULT_REDIS_PREFIX
    );
    let mut redis = redis::Client::open(redis_url().as_str())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let now = SystemClock.now();
    let of_subject = |created_at: tower_session_lifetime::time::Timestamp, expires_at| {
        let mut edited = live_record();
        edited.subject = Some(subject.as_str().into());
        edited.created_at = created_at;
        edited.last_activity = created_at;
        edited.expires_at = expires_at;
        edited
    };
    let live = live_key();
    let older = live_key();
    let later = live_key();
    assert!(store
        .create(&live, &of_subject(now, now.saturating_add(3 * HOUR)))
        .await
        .unwrap());
    assert!(store
        .create(&older, &of_subject(now, now.saturating_add(HOUR)))
        .await
        .unwrap());
    let members: u64 = redis::cmd("ZCARD")
        .arg(&index)
        .query_async(&mut redis)
        .await
        .unwrap();
    assert_eq!(members, 2);

    // Two hours on (by the app's clock), the subject logs in again: the
    // member whose deadline passed leaves the index.
    let two_hours_on = now.saturating_add(2 * HOUR);
    let later_expiry = now.saturating_add(4 * HOUR);
    assert!(store
        .create(&later, &of_subject(two_hours_on, later_expiry))
        .await
        .unwrap());
    let mut members: Vec<String> = redis::cmd("ZRANGE")
        .arg(&index)
        .arg(0)
        .arg(-1)
        .query_async(&mut redis)
        .await
        .unwrap();
    members.sort();
    let mut expected = vec![live.to_hex(), later.to_hex()];
    expected.sort();
    assert_eq!(members, expected, "the expired member is gone");
    // The index lives exactly as long as its latest session...
    let index_expiry: i64 = redis::cmd("PEXPIRETIME")
        .arg(&index)
        .query_async(&mut redis)
        .await
        .unwrap();
    assert_eq!(index_expiry as u64, later_expiry.as_unix_millis());
    // ... and follows a touch that moves a session past it.
    let touched_expiry = now.saturating_add(5 * HOUR);
    store
        .touch(&live, two_hours_on, touched_expiry)
        .await
        .unwrap();
    let index_expiry: i64 = redis::cmd("PEXPIRETIME")
        .arg(&index)
        .query_async(&mut redis)
        .await
        .unwrap();
    assert_eq!(index_expiry as u64, touched_expiry.as_unix_millis());
    assert_eq!(store.delete_sessions_of(&subject).await.unwrap(), 2);
    let exists: u64 = redis::cmd("EXISTS")
        .arg(&index)
        .query_async(&mut redis)
        .await
        .unwrap();
    assert_eq!(exists, 0, "a logout everywhere removes the index");
}

// ---------------------------------------------------------------------------
// Security hardening on Redis (the same checks as on every store)

#[tokio::test]
async fn renewal_replaces_the_id_and_keeps_the_deadline_on_redis() {
    hardening::renewal_replaces_the_id_and_keeps_the_deadline(
        RedisStore::open(&redis_url()).unwrap(),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logout_racing_touches_sticks_on_redis() {
    hardening::logout_racing_touches_sticks(RedisStore::open(&redis_url()).unwrap(), 1000).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn renewal_racing_requests_renews_once_on_redis() {
    hardening::renewal_racing_requests_renews_once(RedisStore::open(&redis_url()).unwrap(), 300)
        .await;
}

#[tokio::test]
async fn session_limit_and_logout_everywhere_on_redis() {
    hardening::session_limit_and_logout_everywhere(RedisStore::open(&redis_url()).unwrap()).await;
}

#[tokio::test]
async fn own_sessions_are_listed_and_ended_on_redis() {
    hardening::own_sessions_are_listed_and_ended(RedisStore::open(&redis_url()).unwrap()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outage_mid_traffic_fails_closed_on_redis() {
    let mut proxy = Proxy::start(redis_address()).await;
    let store = RedisStore::open(&format!("redis://{}", proxy.address())).unwrap();
    hardening::an_outage_mid_traffic_fails_closed(store, &mut proxy).await;
}

#[tokio::test]
async fn a_listed_session_is_ended_after_its_id_renewed_on_redis() {
    hardening::a_listed_session_is_ended_after_its_id_renewed(
        RedisStore::open(&redis_url()).unwrap(),
    )
    .await;
}

/// A store that remembers when each session's next touch can be due (and so
/// loads with a plain `HGETALL` until then) writes exactly what a store
/// with nothing remembered writes, step after step: under a loose and a
/// tight policy, after another node switched remember-me off, and with a
/// granularity finer than the millisecond. Two sessions with the same
/// record; the first always through one store, the second through a new
/// store each time.
#[tokio::test]
async fn a_store_that_remembers_writes_what_a_store_that_does_not_writes() {
    use tower_session_lifetime::policy::Policy;
    use tower_session_lifetime::record::SessionRecord;
    use tower_session_lifetime::store::conformance::fresh_key;

    let prefix = format!("tsl-hints-{}:", &fresh_key().to_hex()[..12]);
    let fresh_store = || {
        RedisStore::open(&redis_url())
            .unwrap()
            .with_prefix(prefix.clone())
    };
    let remembering = fresh_store();
    let policy = |idle: Duration, granularity: Duration| {
        Policy::builder()
            .idle_timeout(idle)
            .remember_me_period(24 * HOUR)
            .touch_granularity(granularity)
            .build()
            .unwrap()
    };
    // The sessions start under a short idle limit, then are judged by
    // looser and tighter policies: the tighter of the two limits decides.
    let short = policy(4 * MINUTE, MINUTE);
    let loose = policy(30 * MINUTE, 5 * MINUTE);
    let tight = policy(10 * MINUTE, MINUTE);
    let fine = policy(10 * MINUTE, Duration::from_micros(1_500));

    let created = SystemClock.now();
    let record = SessionRecord::new(&short, created, Some("hints".into()), true);
    let (warm, cold) = (fresh_key(), fresh_key());
    assert!(remembering.create(&warm, &record).await.unwrap());
    assert!(remembering.create(&cold, &record).await.unwrap());

    let ms = Duration::from_millis(1);
    let steps: [(Duration, &Policy, bool); 11] = [
        (MINUTE, &loose, false),
        (2 * MINUTE, &loose, true),
        (MINUTE, &loose, false),
        (MINUTE, &tight, false),
        (MINUTE / 2, &tight, false),
        (MINUTE, &loose, false),
        (MINUTE, &short, false),
        (ms, &fine, false),
        (ms, &fine, false),
        (ms, &fine, false),
        (MINUTE / 2, &tight, false),
    ];
    let mut now = created;
    for (step, (elapsed, policy, remember_me_off)) in steps.into_iter().enumerate() {
        now = now.saturating_add(elapsed);
        if remember_me_off {
            // Another node switches remember-me off on both sessions.
            let other = fresh_store();
            for key in [&warm, &cold] {
                let stored = other.load(key).await.unwrap().unwrap();
                let mut edited = stored.clone();
                edited.remember_me = false;
                edited.version += 1;
                other.update(key, stored.version, &edited).await.unwrap();
            }
        }
        let warm_loaded = remembering
            .load_and_touch(&warm, policy, now)
            .await
            .unwrap();
        let cold_loaded = fresh_store()
            .load_and_touch(&cold, policy, now)
            .await
            .unwrap();
        let (warm_loaded, cold_loaded) = (warm_loaded.unwrap(), cold_loaded.unwrap());
        assert_eq!(warm_loaded.touch, cold_loaded.touch, "step {step}: touch");
        let warm_after = remembering.load(&warm).await.unwrap().unwrap();
        let cold_after = remembering.load(&cold).await.unwrap().unwrap();
        assert_eq!(
            (warm_after.last_activity, warm_after.expires_at),
            (cold_after.last_activity, cold_after.expires_at),
            "step {step}: stored activity and expiry"
        );
    }
    remembering.delete(&warm).await.unwrap();
    remembering.delete(&cold).await.unwrap();
}
