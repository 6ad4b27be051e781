//! The Redis keys `RedisStore` writes: a session under its prefix, then
//! the hex of its key (`SessionKey::to_hex`), byte for byte, whatever the
//! prefix (empty, Unicode, hash tags, spaces, glob characters, 10 kB), through
//! every operation of the store and of the layer; stores whose prefixes nest
//! keep apart; and an admitted request is one command on Redis, touch due or
//! not. Written against the public API by a review told only these promises.
//!
//! Each test starts its own `redis-server` on a free loopback port
//! (`common::redis_server::OwnServer`), so `KEYS *` sees only its keys.
#![cfg(all(feature = "redis", feature = "axum"))]

mod common;

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use base64::Engine as _;
use http::StatusCode;
use redis::aio::MultiplexedConnection;
use sha2::{Digest, Sha256};
use tower_session_lifetime::{
    clock::{Clock, ManualClock, SystemClock},
    id::{SessionId, SessionKey},
    record::SessionRecord,
    store::{LifetimeStore, RenewOutcome, TouchOutcome, UpdateOutcome, DEFAULT_REDIS_PREFIX},
    time::Timestamp,
    Policy, RedisStore, SessionLifetimeLayer,
};

use common::redis_monitor::Monitors;
use common::redis_server::OwnServer;
use common::shared_store::{log_in, send};
use common::{routes, HOUR, MINUTE, SECOND};

/// The reference spelling: `{:02x}` of every byte, in order.
fn ref_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

fn fresh() -> SessionKey {
    SessionId::generate().unwrap().key()
}

/// The Redis key the store must use, byte for byte.
fn expected_key(prefix: &str, key: &SessionKey) -> Vec<u8> {
    let mut bytes = prefix.as_bytes().to_vec();
    bytes.extend_from_slice(ref_hex(key.as_bytes()).as_bytes());
    bytes
}

fn index_key(prefix: &str, subject: &str) -> Vec<u8> {
    format!("{prefix}s:{subject}").into_bytes()
}

fn policy() -> Policy {
    Policy::builder()
        .idle_timeout(HOUR)
        .absolute_timeout(8 * HOUR)
        .touch_granularity(MINUTE)
        .build()
        .unwrap()
}

fn record(subject: Option<&str>, now: Timestamp) -> SessionRecord {
    SessionRecord::new(&policy(), now, subject.map(Into::into), false)
}

async fn all_keys(conn: &mut MultiplexedConnection) -> BTreeSet<Vec<u8>> {
    let keys: Vec<Vec<u8>> = redis::cmd("KEYS").arg("*").query_async(conn).await.unwrap();
    keys.into_iter().collect()
}

async fn hash(conn: &mut MultiplexedConnection, key: &[u8]) -> HashMap<String, String> {
    redis::cmd("HGETALL")
        .arg(key)
        .query_async(conn)
        .await
        .unwrap()
}

async fn members(conn: &mut MultiplexedConnection, key: &[u8]) -> BTreeSet<String> {
    let members: Vec<String> = redis::cmd("ZRANGE")
        .arg(key)
        .arg(0)
        .arg(-1)
        .query_async(conn)
        .await
        .unwrap();
    members.into_iter().collect()
}

async fn pexpiretime(conn: &mut MultiplexedConnection, key: &[u8]) -> i64 {
    redis::cmd("PEXPIRETIME")
        .arg(key)
        .query_async(conn)
        .await
        .unwrap()
}

async fn flushall(conn: &mut MultiplexedConnection) {
    let () = redis::cmd("FLUSHALL").query_async(conn).await.unwrap();
}

fn set(items: &[&[u8]]) -> BTreeSet<Vec<u8>> {
    items.iter().map(|item| item.to_vec()).collect()
}

/// Prefixes a caller may pass to `with_prefix`.
fn hostile_prefixes() -> Vec<String> {
    vec![
        DEFAULT_REDIS_PREFIX.to_owned(),
        String::new(),
        "app:".to_owned(),
        "ünïcødé:🔑:".to_owned(),
        "é".to_owned(),
        "{tenant}:".to_owned(),
        "{}".to_owned(),
        "a b:c d ".to_owned(),
        "sess:s:".to_owned(),
        "*?[]\\^-".to_owned(),
        "\t\r\n".to_owned(),
        "\0nul\0".to_owned(),
        "%s%n{}'\"".to_owned(),
        "deadbeef".to_owned(),
        "0123456789abcdef0123456789abcdef".to_owned(),
        "x".repeat(10_000),
        format!("{}:", "日本".repeat(3_000)),
    ]
}

fn short(prefix: &str) -> String {
    let shown: String = prefix.chars().take(24).collect();
    format!("{shown:?} ({} bytes)", prefix.len())
}

/// Renews the session `old` to `new`, its ID issued 5 ms after `now`, the
/// old ID a pointer until `grace`; the record it moved.
async fn renew(
    store: &RedisStore,
    old: &SessionKey,
    new: &SessionKey,
    grace: Timestamp,
    what: &str,
) -> SessionRecord {
    let current = store.load(old).await.unwrap().unwrap();
    let mut moved = current.clone();
    moved.id_issued_at = current.created_at.saturating_add(Duration::from_millis(5));
    assert_eq!(
        store
            .renew(old, current.version, new, &moved, grace)
            .await
            .unwrap(),
        RenewOutcome::Renewed,
        "{what}"
    );
    moved
}

/// A session's key, its subject's index and the members, pointer and
/// expiry times that name it, checked after each operation of the store,
/// for each prefix.
#[tokio::test]
async fn redis_keys_are_prefix_then_hex_for_hostile_prefixes_through_every_operation() {
    let server = OwnServer::start();
    let mut conn = server.connection().await;
    let subject = "ünï cødé:{sub}*ject";
    for prefix in hostile_prefixes() {
        let what = short(&prefix);
        flushall(&mut conn).await;
        let store = RedisStore::open(&server.url())
            .unwrap()
            .with_prefix(prefix.clone());
        let now = SystemClock.now();
        let idx = index_key(&prefix, subject);

        // create
        let (k1, k2, k3) = (fresh(), fresh(), fresh());
        let rec = record(Some(subject), now);
        assert!(store.create(&k1, &rec).await.unwrap(), "{what}");
        let key1 = expected_key(&prefix, &k1);
        assert_eq!(
            all_keys(&mut conn).await,
            set(&[&key1, &idx]),
            "{what}: after create"
        );
        assert_eq!(
            hash(&mut conn, &key1).await.get("s").map(String::as_str),
            Some(subject)
        );
        assert_eq!(
            members(&mut conn, &idx).await,
            BTreeSet::from([ref_hex(k1.as_bytes())])
        );
        assert_eq!(
            pexpiretime(&mut conn, &key1).await as u64,
            rec.expires_at.as_unix_millis(),
            "{what}"
        );

        // load, load-and-touch (script, then plain load before a touch is due,
        // then a touch that is due)
        assert_eq!(store.load(&k1).await.unwrap(), Some(rec.clone()), "{what}");
        let p = policy();
        for millis in [1, 2] {
            let at = now.saturating_add(Duration::from_millis(millis));
            let loaded = store
                .load_and_touch(&k1, &p, at)
                .await
                .unwrap()
                .expect("live");
            assert_eq!(loaded.touch, None, "{what}: {millis} ms on");
        }
        let at = now.saturating_add(2 * MINUTE);
        let loaded = store
            .load_and_touch(&k1, &p, at)
            .await
            .unwrap()
            .expect("live");
        assert_eq!(loaded.touch, Some(TouchOutcome::Touched), "{what}");
        let stored = hash(&mut conn, &key1).await;
        assert_eq!(stored["a"], at.as_unix_millis().to_string(), "{what}");
        assert_eq!(
            all_keys(&mut conn).await,
            set(&[&key1, &idx]),
            "{what}: after l&t"
        );

        // touch
        let at = now.saturating_add(3 * MINUTE);
        assert_eq!(
            store.touch(&k1, at, at.saturating_add(HOUR)).await.unwrap(),
            TouchOutcome::Touched,
            "{what}"
        );
        assert_eq!(
            hash(&mut conn, &key1).await["a"],
            at.as_unix_millis().to_string()
        );
        assert_eq!(
            pexpiretime(&mut conn, &idx).await as u64,
            at.saturating_add(HOUR).as_unix_millis(),
            "{what}: index follows the touch"
        );

        // update
        let current = store.load(&k1).await.unwrap().unwrap();
        let mut edited = current.clone();
        edited.label = Some("läbel {x}".into());
        edited.version += 1;
        assert_eq!(
            store.update(&k1, current.version, &edited).await.unwrap(),
            UpdateOutcome::Updated,
            "{what}"
        );
        assert_eq!(hash(&mut conn, &key1).await["n"], "läbel {x}");
        assert_eq!(
            all_keys(&mut conn).await,
            set(&[&key1, &idx]),
            "{what}: after update"
        );

        // renew k1 -> k2
        let grace = now.saturating_add(10 * SECOND);
        let moved = renew(&store, &k1, &k2, grace, &what).await;
        let key2 = expected_key(&prefix, &k2);
        assert_eq!(
            all_keys(&mut conn).await,
            set(&[&key1, &key2, &idx]),
            "{what}: after renew"
        );
        assert_eq!(
            hash(&mut conn, &key1).await["m"],
            ref_hex(k2.as_bytes()),
            "{what}"
        );
        assert!(!hash(&mut conn, &key2).await.contains_key("m"), "{what}");
        assert_eq!(
            pexpiretime(&mut conn, &key1).await as u64,
            grace.as_unix_millis()
        );
        assert_eq!(
            members(&mut conn, &idx).await,
            BTreeSet::from([ref_hex(k1.as_bytes()), ref_hex(k2.as_bytes())]),
            "{what}"
        );
        assert_eq!(store.load(&k1).await.unwrap().unwrap().renewed_to, Some(k2));
        let listed: Vec<SessionKey> = store
            .sessions_of(subject)
            .await
            .unwrap()
            .into_iter()
            .map(|(key, _)| key)
            .collect();
        assert_eq!(listed, vec![k2], "{what}: listing");
        // A touch of the pointer writes nothing.
        let at = now.saturating_add(SECOND);
        assert_eq!(
            store.touch(&k1, at, at.saturating_add(HOUR)).await.unwrap(),
            TouchOutcome::AlreadyRecent,
            "{what}: touch of the pointer in its grace"
        );
        assert_eq!(
            pexpiretime(&mut conn, &key1).await as u64,
            grace.as_unix_millis()
        );

        // renew k2 -> k3: a chain; a logout with the first ID follows it.
        renew(&store, &k2, &k3, grace, &what).await;
        let key3 = expected_key(&prefix, &k3);
        assert_eq!(
            all_keys(&mut conn).await,
            set(&[&key1, &key2, &key3, &idx]),
            "{what}"
        );
        assert!(store.delete(&k1).await.unwrap(), "{what}: logout");
        assert_eq!(
            all_keys(&mut conn).await,
            BTreeSet::new(),
            "{what}: after logout"
        );
        for key in [&k1, &k2, &k3] {
            assert_eq!(store.load(key).await.unwrap(), None, "{what}");
        }

        // logout everywhere: two sessions, one renewed.
        let (k4, k5, k6) = (fresh(), fresh(), fresh());
        assert!(store.create(&k4, &rec).await.unwrap());
        assert!(store.create(&k5, &rec).await.unwrap());
        assert_eq!(
            store
                .renew(&k4, rec.version, &k6, &moved, grace)
                .await
                .unwrap(),
            RenewOutcome::Renewed
        );
        assert_eq!(
            all_keys(&mut conn).await,
            set(&[
                &expected_key(&prefix, &k4),
                &expected_key(&prefix, &k5),
                &expected_key(&prefix, &k6),
                &idx
            ]),
            "{what}"
        );
        assert_eq!(
            store.delete_sessions_of(subject).await.unwrap(),
            2,
            "{what}"
        );
        assert_eq!(
            all_keys(&mut conn).await,
            BTreeSet::new(),
            "{what}: after everywhere"
        );

        // delete_stale, no subject
        let k7 = fresh();
        let bare = record(None, now);
        assert!(store.create(&k7, &bare).await.unwrap());
        assert_eq!(
            all_keys(&mut conn).await,
            set(&[&expected_key(&prefix, &k7)]),
            "{what}"
        );
        assert!(
            store.delete_stale(&k7, bare.last_activity).await.unwrap(),
            "{what}"
        );
        assert_eq!(all_keys(&mut conn).await, BTreeSet::new(), "{what}");
    }
}

/// The key of a session started through the layer is the prefix then the hex
/// of the first 16 bytes of SHA-256 of the cookie's decoded ID, computed here
/// independently; logout and logout everywhere remove exactly those keys.
#[tokio::test]
async fn the_layer_s_sessions_live_under_prefix_and_sha256_hex_of_the_cookie() {
    let server = OwnServer::start();
    let mut conn = server.connection().await;
    for prefix in ["ünïcødé:🔑:".to_owned(), String::new(), "{t}:".repeat(500)] {
        flushall(&mut conn).await;
        let store = RedisStore::open(&server.url())
            .unwrap()
            .with_prefix(prefix.clone());
        let clock = ManualClock::new(SystemClock.now());
        let app = routes().layer(
            SessionLifetimeLayer::new(store)
                .with_clock(clock.clone())
                .with_policy(policy()),
        );
        let mut expected = BTreeSet::new();
        let mut cookies = Vec::new();
        for _ in 0..3 {
            let cookie = log_in(&app, "bob").await;
            let value = cookie.split_once('=').unwrap().1;
            let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(value)
                .unwrap();
            let digest = Sha256::digest(&raw);
            let mut key = prefix.as_bytes().to_vec();
            key.extend_from_slice(ref_hex(&digest[..16]).as_bytes());
            expected.insert(key);
            cookies.push(cookie);
        }
        let idx = index_key(&prefix, "bob");
        let mut with_index = expected.clone();
        with_index.insert(idx.clone());
        assert_eq!(all_keys(&mut conn).await, with_index, "{}", short(&prefix));
        clock.advance(2 * MINUTE);
        for cookie in &cookies {
            let response = send(&app, "GET", "/me", Some(cookie)).await;
            assert_eq!(response.status(), StatusCode::OK);
        }
        assert_eq!(all_keys(&mut conn).await, with_index);
        assert_eq!(
            send(&app, "POST", "/logout", Some(&cookies[0]))
                .await
                .status(),
            StatusCode::OK
        );
        assert_eq!(all_keys(&mut conn).await.len(), 3);
        assert_eq!(
            send(&app, "POST", "/logout-everywhere", Some(&cookies[1]))
                .await
                .status(),
            StatusCode::OK
        );
        assert_eq!(
            all_keys(&mut conn).await,
            BTreeSet::new(),
            "{}",
            short(&prefix)
        );
        for cookie in &cookies {
            let response = send(&app, "GET", "/me", Some(cookie)).await;
            assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        }
    }
}

/// Two stores on one Redis, with prefixes where one starts with the other,
/// never see each other's sessions.
#[tokio::test]
async fn prefixes_that_nest_keep_sessions_apart() {
    let server = OwnServer::start();
    let outer = RedisStore::open(&server.url()).unwrap().with_prefix("a:");
    let inner = RedisStore::open(&server.url()).unwrap().with_prefix("a:b:");
    let bare = RedisStore::open(&server.url()).unwrap().with_prefix("");
    let now = SystemClock.now();
    let key = fresh();
    assert!(outer.create(&key, &record(Some("u"), now)).await.unwrap());
    assert_eq!(inner.load(&key).await.unwrap(), None);
    assert_eq!(bare.load(&key).await.unwrap(), None);
    assert!(inner.create(&key, &record(Some("u"), now)).await.unwrap());
    assert!(bare.create(&key, &record(Some("u"), now)).await.unwrap());
    assert_eq!(inner.delete_sessions_of("u").await.unwrap(), 1);
    assert!(outer.load(&key).await.unwrap().is_some());
    assert!(bare.load(&key).await.unwrap().is_some());
    assert_eq!(outer.sessions_of("u").await.unwrap().len(), 1);
    assert_eq!(bare.sessions_of("u").await.unwrap().len(), 1);
}

/// Each admitted request sends Redis exactly one command (one round trip),
/// whether a touch is due or not, and that command names the session's key
/// as the prefix, then the hex.
#[tokio::test]
async fn an_admitted_request_is_one_command_on_redis() {
    let server = OwnServer::start();
    let prefix = "tsl-one-trip:";
    let store = RedisStore::open(&server.url()).unwrap().with_prefix(prefix);
    let clock = ManualClock::new(SystemClock.now());
    let app = routes().layer(
        SessionLifetimeLayer::new(store)
            .with_clock(clock.clone())
            .with_policy(policy()),
    );
    // A touch falls due after a minute (the policy's granularity).
    let steps = [
        SECOND,
        SECOND,
        2 * MINUTE,
        SECOND,
        2 * MINUTE,
        2 * MINUTE,
        SECOND,
    ];
    // Warm: each script's first call is an `EVALSHA` that Redis refuses
    // (`NOSCRIPT`), then the script loaded and called again, once per
    // store.
    let warm = log_in(&app, "carol").await;
    for advance in steps {
        clock.advance(advance);
        let response = send(&app, "GET", "/me", Some(&warm)).await;
        assert_eq!(response.status(), StatusCode::OK);
    }
    let cookie = log_in(&app, "carol").await;
    let key = SessionId::parse(cookie.split_once('=').unwrap().1)
        .unwrap()
        .key();
    let whole_key = format!("\"{prefix}{}\"", key.to_hex());
    let monitors = Monitors::start(&[server.url()], key.to_hex()).await;
    let _ = monitors.take().await;
    for (step, advance) in steps.into_iter().enumerate() {
        clock.advance(advance);
        let response = send(&app, "GET", "/me", Some(&cookie)).await;
        assert_eq!(response.status(), StatusCode::OK, "step {step}");
        let sent = monitors.take().await;
        assert_eq!(sent.len(), 1, "step {step}: {sent:#?}");
        assert!(
            sent[0].contains(&whole_key),
            "step {step}: {whole_key} not in {sent:#?}"
        );
    }
}
