//! Hostile tests for follow mode: what the layer does with the inner
//! layer's `Set-Cookie` for the followed cookie when it repeats the ID the
//! request presented, changes it, removes it, or spells it oddly; with a
//! tampering middleware between the lifetime layer and tower-sessions that
//! appends or replaces `Set-Cookie` headers as the test says.
#![cfg(all(feature = "tower-sessions", feature = "axum"))]

mod common;
mod compose;

use axum::body::Body;
use axum::extract::{Request as AxumRequest, State};
use axum::middleware::{from_fn, Next};
use axum::response::Response as AxumResponse;
use axum::routing::{get, post};
use axum::Router;
use common::{body_text, policy, DAY, HOUR, MINUTE};
use compose::{count, cycle, slow_write, SlowRequest};
use http::header::{COOKIE, SET_COOKIE};
use http::{HeaderValue, Request, Response, StatusCode};
use tower::ServiceExt;
use tower_session_lifetime::{
    clock::{Clock, ManualClock, SystemClock},
    id::SessionId,
    record::SessionRecord,
    rejection::RejectReason,
    store::LifetimeStore,
    MemoryStore, OnInvalidSession, SessionCookie, SessionHandle, SessionLifetimeLayer,
};
use tower_sessions::cookie::time;
use tower_sessions::{Expiry, MemoryStore as DataStore, Session, SessionManagerLayer};

const NAME: &str = "id";

/// Header names the tampering middleware reads from the request.
const X_SET: &str = "x-set-cookie";
const X_MODE: &str = "x-tamper";

struct Rig {
    app: Router,
    clock: ManualClock,
    lifetimes: MemoryStore,
    gate: SlowRequest,
    key: Option<cookie::Key>,
}

/// After the inner layer answers: `append` (default) adds the request's
/// `x-set-cookie` values after the inner layer's `Set-Cookie` headers,
/// `prepend` before them, `replace` instead of them.
async fn tamper(request: AxumRequest, next: Next) -> AxumResponse {
    let sets: Vec<HeaderValue> = request.headers().get_all(X_SET).iter().cloned().collect();
    let mode = request
        .headers()
        .get(X_MODE)
        .map(|mode| mode.to_str().unwrap().to_owned())
        .unwrap_or_else(|| "append".into());
    let mut response = next.run(request).await;
    let inner: Vec<HeaderValue> = response
        .headers()
        .get_all(SET_COOKIE)
        .iter()
        .cloned()
        .collect();
    response.headers_mut().remove(SET_COOKIE);
    let ordered: Vec<HeaderValue> = match mode.as_str() {
        "append" => inner.into_iter().chain(sets).collect(),
        "prepend" => sets.into_iter().chain(inner).collect(),
        "replace" => sets,
        other => panic!("unknown tamper mode {other}"),
    };
    for value in ordered {
        response.headers_mut().append(SET_COOKIE, value);
    }
    response
}

/// Touches neither layer's session: says whether the lifetime layer
/// admitted a session.
async fn noop(handle: SessionHandle) -> &'static str {
    if handle.is_active() {
        "active"
    } else {
        "visitor"
    }
}

async fn logout(session: Session) -> StatusCode {
    match session.flush().await {
        Ok(()) => StatusCode::OK,
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// Waits for the test, then signs in through the handle alone, touching
/// no tower-sessions data.
async fn slow_login(State(gate): State<SlowRequest>, handle: SessionHandle) -> StatusCode {
    gate.entered.notify_one();
    gate.release.notified().await;
    match handle.login("alice", false).await {
        Ok(()) => StatusCode::OK,
        Err(_) => StatusCode::CONFLICT,
    }
}

impl Rig {
    /// Sends `slow` (a request its handler holds at the gate) and, once
    /// its handler is in, `method path` with `cookie`; lets the handler go
    /// on once that one has answered. Both responses, the slow one first.
    async fn race(
        &self,
        slow: Request<Body>,
        method: &str,
        path: &str,
        cookie: &str,
    ) -> (Response<Body>, Response<Body>) {
        let slow = self.app.clone().oneshot(slow);
        let other = async {
            self.gate.entered.notified().await;
            let response = self.send(method, path, &[cookie], &[], "append").await;
            self.gate.release.notify_one();
            response
        };
        let (slow, other) = tokio::join!(slow, other);
        (slow.unwrap(), other)
    }

    fn new() -> Self {
        Rig::build(None)
    }

    /// An unsigned rig with a session: the rig, the session's ID, and the
    /// `Cookie` header that presents it.
    async fn signed_in() -> (Self, String, String) {
        let rig = Rig::new();
        let id = rig.session().await;
        let cookie = format!("{NAME}={id}");
        (rig, id, cookie)
    }

    fn signed() -> Self {
        Rig::build(Some(cookie::Key::generate()))
    }

    fn build(key: Option<cookie::Key>) -> Self {
        let clock = ManualClock::new(SystemClock.now());
        let lifetimes = MemoryStore::with_clock(clock.clone());
        let data = DataStore::default();
        let gate = SlowRequest::default();
        let routes = Router::new()
            .route("/count", get(count))
            .route("/noop", get(noop))
            .route("/cycle", post(cycle))
            .route("/logout", post(logout))
            .route("/slow-write", get(slow_write))
            .route("/slow-login", post(slow_login))
            .with_state(gate.clone());
        let sessions = SessionManagerLayer::new(data.clone())
            .with_expiry(Expiry::OnInactivity(time::Duration::days(1)));
        let (routes, followed) = match &key {
            Some(key) => (
                routes.layer(sessions.with_signed(key.clone())),
                SessionCookie::builder()
                    .name(NAME)
                    .same_site(cookie::SameSite::Strict)
                    .signing_key(key.clone())
                    .build()
                    .unwrap(),
            ),
            None => (routes.layer(sessions), SessionCookie::tower_sessions()),
        };
        let lifetime = SessionLifetimeLayer::new(lifetimes.clone())
            .with_clock(clock.clone())
            .with_policy(policy(HOUR, DAY))
            .follow_cookie(followed)
            .on_invalid_session(OnInvalidSession::PassThrough)
            .delete_data_from(data.clone());
        let app = routes.layer(from_fn(tamper)).layer(lifetime);
        Rig {
            app,
            clock,
            lifetimes,
            gate,
            key,
        }
    }

    fn request(
        method: &str,
        path: &str,
        cookies: &[&str],
        sets: &[&str],
        mode: &str,
    ) -> Request<Body> {
        let mut builder = Request::builder().method(method).uri(path);
        for cookie in cookies {
            builder = builder.header(COOKIE, *cookie);
        }
        for set in sets {
            builder = builder.header(X_SET, *set);
        }
        builder.header(X_MODE, mode).body(Body::empty()).unwrap()
    }

    async fn send(
        &self,
        method: &str,
        path: &str,
        cookies: &[&str],
        sets: &[&str],
        mode: &str,
    ) -> Response<Body> {
        self.app
            .clone()
            .oneshot(Rig::request(method, path, cookies, sets, mode))
            .await
            .unwrap()
    }

    /// A session tower-sessions started (a counter), with its lifetime:
    /// the cookie's value (the ID, or the signed value).
    async fn session(&self) -> String {
        let response = self.send("GET", "/count", &[], &[], "append").await;
        assert_eq!(response.status(), StatusCode::OK);
        let values = id_values(&response);
        assert_eq!(values.len(), 1, "one session cookie: {values:?}");
        assert_eq!(self.lifetimes.len(), 1);
        values[0].clone()
    }

    /// Whether the lifetime layer admits the session this cookie value
    /// names, and why not if it does not.
    async fn admits(&self, value: &str) -> (bool, Option<RejectReason>) {
        let cookie = format!("{NAME}={value}");
        let response = self.send("GET", "/noop", &[&cookie], &[], "append").await;
        let why = reason(&response);
        let active = body_text(response).await == "active";
        (active, why)
    }

    async fn record_of(&self, id: &str) -> Option<SessionRecord> {
        let id = SessionId::parse(id).expect("a canonical ID");
        self.lifetimes.load(&id.key()).await.unwrap()
    }

    /// After a move away from `id`: its record is gone or only points to
    /// the new ID for the renewal grace period.
    async fn assert_only_a_pointer_left(&self, id: &str) {
        if let Some(old) = self.record_of(id).await {
            assert!(
                old.renewed_to.is_some(),
                "the old record is still live: {old:?}"
            );
        }
    }

    /// The bare ID inside a (perhaps signed) cookie value.
    fn bare<'a>(&self, value: &'a str) -> &'a str {
        &value[value.len() - 22..]
    }
}

fn reason(response: &Response<Body>) -> Option<RejectReason> {
    response.extensions().get::<RejectReason>().copied()
}

/// Every `Set-Cookie` header, as written.
fn set_cookies(response: &Response<Body>) -> Vec<String> {
    response
        .headers()
        .get_all(SET_COOKIE)
        .iter()
        .map(|value| String::from_utf8_lossy(value.as_bytes()).into_owned())
        .collect()
}

/// The `Set-Cookie` headers for the followed cookie, as written.
fn followed(response: &Response<Body>) -> Vec<String> {
    set_cookies(response)
        .into_iter()
        .filter(|header| {
            header
                .split_once('=')
                .is_some_and(|(name, _)| name.trim() == NAME)
        })
        .collect()
}

/// The raw values (between `=` and the first `;`, untrimmed) of the
/// followed cookie's `Set-Cookie` headers.
fn id_values(response: &Response<Body>) -> Vec<String> {
    followed(response)
        .into_iter()
        .map(|header| {
            let (_, rest) = header.split_once('=').unwrap();
            rest.split(';').next().unwrap().to_owned()
        })
        .collect()
}

/// Whether the response clears the followed cookie (its last `Set-Cookie`
/// has an empty value).
fn clears(response: &Response<Body>) -> bool {
    id_values(response)
        .last()
        .is_some_and(|value| value.trim().is_empty())
}

/// Another valid ID: the same text with one letter's case flipped (not
/// the last character, so it stays canonical).
fn case_flipped(id: &str) -> String {
    let at = id[..21]
        .char_indices()
        .find(|(_, c)| c.is_ascii_alphabetic())
        .map(|(at, _)| at)
        .expect("a letter among 21 base64 characters");
    let mut bytes = id.as_bytes().to_vec();
    bytes[at] ^= 0x20;
    String::from_utf8(bytes).unwrap()
}

// ---------------------------------------------------------------------
// Promise 1: a repeat of the presented, admitted ID is dropped; every
// other Set-Cookie stays, in order.
// ---------------------------------------------------------------------

#[tokio::test]
async fn a_plain_repeat_is_dropped_and_the_session_stays() {
    let (rig, id, _) = Rig::signed_in().await;
    let before = rig.record_of(&id).await.unwrap();
    let cookie = format!("{NAME}={id}");
    let response = rig.send("GET", "/count", &[&cookie], &[], "append").await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        set_cookies(&response),
        Vec::<String>::new(),
        "lone repeat dropped"
    );
    assert_eq!(body_text(response).await, "2");
    let after = rig.record_of(&id).await.expect("still there");
    assert_eq!(after.created_at, before.created_at);
    assert_eq!(after.id_issued_at, before.id_issued_at);
    assert_eq!(after.renewed_to, None);
    assert_eq!(rig.lifetimes.len(), 1);
    assert_eq!(rig.admits(&id).await, (true, None));
}

#[tokio::test]
async fn a_repeat_among_other_cookies_keeps_them_all_in_order() {
    let (rig, id, cookie) = Rig::signed_in().await;
    // tower-sessions' own repeat, with others before and after it.
    for mode in ["append", "prepend"] {
        let others = ["lang=en; Path=/", "theme=dark"];
        let response = rig.send("GET", "/count", &[&cookie], &others, mode).await;
        assert_eq!(set_cookies(&response), others, "{mode}");
    }
    // Hand-made: several repeats of the session cookie between others.
    let sets = [
        "a=1".to_owned(),
        format!("{NAME}={id}; Path=/; HttpOnly"),
        "b=2; Max-Age=0".to_owned(),
        format!("{NAME}={id}"),
        "idx=3".to_owned(),
        format!(" {NAME} ={id}; Max-Age=60"),
        "c=4".to_owned(),
    ];
    let sets: Vec<&str> = sets.iter().map(String::as_str).collect();
    let response = rig.send("GET", "/noop", &[&cookie], &sets, "replace").await;
    assert_eq!(
        set_cookies(&response),
        ["a=1", "b=2; Max-Age=0", "idx=3", "c=4"]
    );
    assert_eq!(rig.lifetimes.len(), 1);
    assert_eq!(rig.admits(&id).await, (true, None));
}

#[tokio::test]
async fn the_same_id_twice_is_dropped_twice() {
    let (rig, id, cookie) = Rig::signed_in().await;
    let twice = format!("{NAME}={id}; Path=/");
    let response = rig
        .send("GET", "/count", &[&cookie], &[&twice], "append")
        .await;
    assert_eq!(set_cookies(&response), Vec::<String>::new());
    assert_eq!(rig.admits(&id).await, (true, None));
}

#[tokio::test]
async fn same_id_then_another_id_moves_the_session_to_the_other() {
    let (rig, id, _) = Rig::signed_in().await;
    let other = SessionId::generate().unwrap().encode();
    let cookie = format!("{NAME}={id}");
    let sets = [
        format!("{NAME}={id}; Path=/"),
        format!("{NAME}={other}; Path=/"),
    ];
    let sets: Vec<&str> = sets.iter().map(String::as_str).collect();
    let response = rig.send("GET", "/noop", &[&cookie], &sets, "replace").await;
    assert_eq!(
        id_values(&response).last().map(String::as_str),
        Some(other.as_str()),
        "the browser ends with the new ID: {:?}",
        set_cookies(&response)
    );
    rig.assert_only_a_pointer_left(&id).await;
    assert!(rig.record_of(&other).await.is_some(), "the lifetime moved");
    assert_eq!(rig.admits(&other).await, (true, None));
    assert!(!rig.admits(&id).await.0, "the old ID is refused");
}

#[tokio::test]
async fn another_id_then_the_same_id_keeps_the_session_and_hands_out_nothing() {
    let (rig, id, _) = Rig::signed_in().await;
    let other = SessionId::generate().unwrap().encode();
    let cookie = format!("{NAME}={id}");
    let sets = [
        "theme=dark".to_owned(),
        format!("{NAME}={other}; Path=/"),
        format!("{NAME}={id}; Path=/"),
    ];
    let sets: Vec<&str> = sets.iter().map(String::as_str).collect();
    let response = rig.send("GET", "/noop", &[&cookie], &sets, "replace").await;
    // The browser would end with the presented ID either way; the other
    // ID has no lifetime, so it must not be handed out alone.
    assert_eq!(set_cookies(&response), ["theme=dark"]);
    assert_eq!(rig.lifetimes.len(), 1);
    assert!(rig.record_of(&other).await.is_none());
    assert_eq!(rig.admits(&id).await, (true, None));
    assert!(!rig.admits(&other).await.0);
}

// ---------------------------------------------------------------------
// Promise 2: a different ID for a live session moves the lifetime.
// ---------------------------------------------------------------------

#[tokio::test]
async fn cycle_id_moves_the_lifetime_and_refuses_the_old_id() {
    let (rig, id, cookie) = Rig::signed_in().await;
    let response = rig
        .send("POST", "/cycle", &[&cookie], &["theme=dark"], "append")
        .await;
    let values = id_values(&response);
    assert_eq!(values.len(), 1, "{:?}", set_cookies(&response));
    let new = values[0].clone();
    assert_ne!(new, id);
    assert!(set_cookies(&response).contains(&"theme=dark".to_owned()));
    rig.assert_only_a_pointer_left(&id).await;
    assert!(rig.record_of(&new).await.is_some());
    assert_eq!(rig.admits(&new).await, (true, None));
    assert_eq!(rig.admits(&id).await, (false, Some(RejectReason::Renewed)));
}

#[tokio::test]
async fn a_case_flipped_id_is_another_id_not_a_repeat() {
    let (rig, id, _) = Rig::signed_in().await;
    let flipped = case_flipped(&id);
    let cookie = format!("{NAME}={id}");
    let set = format!("{NAME}={flipped}; Path=/");
    let response = rig
        .send("GET", "/noop", &[&cookie], &[&set], "replace")
        .await;
    assert_eq!(
        id_values(&response),
        std::slice::from_ref(&flipped),
        "handed out as a new ID"
    );
    assert!(
        rig.record_of(&flipped).await.is_some(),
        "the lifetime moved"
    );
    assert_eq!(rig.admits(&flipped).await, (true, None));
    assert!(!rig.admits(&id).await.0);
}

// ---------------------------------------------------------------------
// Promise 3: a removal ends the session, however it is spelled.
// ---------------------------------------------------------------------

#[tokio::test]
async fn every_spelling_of_a_removal_ends_the_session_for_good() {
    let removals = [
        "{NAME}={ID}; Max-Age=0",
        "{NAME}={ID}; max-age=0",
        "{NAME}={ID}; MAX-AGE=0; Path=/",
        "{NAME}={ID}; mAx-AgE = 0",
        "{NAME}={ID}; Max-Age=-1",
        "{NAME}={ID}; Max-Age=-99999999999999999999",
        "{NAME}={ID}; Max-Age=000",
        "{NAME}={ID}; Path=/; Max-Age=60; Max-Age=0",
        "{NAME}={ID}; EXPIRES=Thu, 01 Jan 1970 00:00:00 GMT",
        "{NAME}={ID}; expires=Thu, 01 Jan 1970 00:00:00 GMT",
        "{NAME}={ID}; Expires=Thursday, 01-Jan-70 00:00:00 GMT",
        "{NAME}={ID}; Expires=Thu Jan  1 00:00:00 1970",
        "{NAME}=; Path=/",
        "{NAME}=\"\"; Path=/",
        "{NAME}=",
    ];
    for template in removals {
        let (rig, id, _) = Rig::signed_in().await;
        let set = template.replace("{NAME}", NAME).replace("{ID}", &id);
        let cookie = format!("{NAME}={id}");
        let response = rig
            .send("GET", "/noop", &[&cookie], &[&set, "theme=dark"], "append")
            .await;
        assert_eq!(
            set_cookies(&response),
            [set.clone(), "theme=dark".to_owned()],
            "{set}: the removal and the other cookie kept"
        );
        assert!(rig.lifetimes.is_empty(), "{set}: the session ended");
        assert!(!rig.admits(&id).await.0, "{set}");
        // And stays ended, even when tower-sessions writes again.
        let again = rig.send("GET", "/count", &[&cookie], &[], "append").await;
        assert!(
            !id_values(&again).contains(&id),
            "{set}: {:?}",
            set_cookies(&again)
        );
        assert!(rig.record_of(&id).await.is_none(), "{set}");
    }
}

#[tokio::test]
async fn tower_sessions_flush_ends_the_session() {
    let (rig, id, cookie) = Rig::signed_in().await;
    let response = rig
        .send("POST", "/logout", &[&cookie], &["theme=dark"], "append")
        .await;
    assert!(clears(&response) || followed(&response)[0].contains("Max-Age=0"));
    assert!(set_cookies(&response).contains(&"theme=dark".to_owned()));
    assert!(rig.lifetimes.is_empty());
    assert!(!rig.admits(&id).await.0);
}

// ---------------------------------------------------------------------
// Promise 4: another spelling is never "the same ID as presented".
// ---------------------------------------------------------------------

/// Sends `set` as the only `Set-Cookie` of a response to a request that
/// presented `id`, and checks that it was neither kept nor dropped as a
/// repeat: the response clears the cookie, or hands out a new valid ID.
async fn assert_not_taken_for_a_repeat(rig: &Rig, value: &str, set: &str) {
    let cookie = format!("{NAME}={value}");
    let response = rig
        .send("GET", "/noop", &[&cookie], &[set], "replace")
        .await;
    let values = id_values(&response);
    assert!(
        !values.is_empty(),
        "{set:?}: dropped silently as a repeat of the presented ID"
    );
    let last = values.last().unwrap();
    let kept_as_is = followed(&response).iter().any(|header| header == set);
    assert!(
        clears(&response) || (!kept_as_is && SessionId::parse(last).is_some()),
        "{set:?}: neither cleared nor a new valid ID: {:?}",
        set_cookies(&response)
    );
    // Never a lifetime for something that is not a valid ID.
    assert!(rig.lifetimes.len() <= 1, "{set:?}");
}

/// Sends `set` as the only `Set-Cookie` of a response to a request that
/// presented `value`, and checks that it was dropped as a repeat: the
/// browser keeps the cookie it has, and the session is unchanged.
async fn assert_dropped_as_a_repeat(rig: &Rig, value: &str, set: &str) {
    let cookie = format!("{NAME}={value}");
    let response = rig
        .send("GET", "/noop", &[&cookie], &[set], "replace")
        .await;
    assert!(
        id_values(&response).is_empty(),
        "{set:?}: {:?}",
        set_cookies(&response)
    );
    assert_eq!(rig.admits(value).await, (true, None), "{set:?}");
    assert_eq!(rig.lifetimes.len(), 1, "{set:?}");
}

// The layer reads a `Set-Cookie` value as the `cookie` crate reads it
// (quotes and white space around it removed), so these spell the presented
// ID again. Dropping them is the safe answer: passed on, the quoted one
// would give the browser a cookie tower-sessions cannot read back.
#[tokio::test]
async fn a_repeat_spelled_with_quotes_or_white_space_is_dropped_as_a_repeat() {
    for template in [
        "{NAME}=\"{ID}\"; Path=/",
        "{NAME}={ID} ; Path=/",
        "{NAME}= {ID}; Path=/",
        "{NAME}={ID}\t",
    ] {
        let (rig, id, _) = Rig::signed_in().await;
        let set = template.replace("{NAME}", NAME).replace("{ID}", &id);
        assert_dropped_as_a_repeat(&rig, &id, &set).await;
    }
}

#[tokio::test]
async fn a_percent_encoded_repeat_is_cleared() {
    let (rig, id, _) = Rig::signed_in().await;
    let encoded = format!("{}%{:02X}{}", &id[..3], id.as_bytes()[3], &id[4..]);
    let set = format!("{NAME}={encoded}; Path=/");
    assert_not_taken_for_a_repeat(&rig, &id, &set).await;
    assert!(
        rig.record_of(&id).await.is_some(),
        "the session itself lives"
    );
}

#[tokio::test]
async fn wrong_lengths_and_a_non_canonical_last_character_are_cleared() {
    let (rig, id, _) = Rig::signed_in().await;
    let last = *id.as_bytes().last().unwrap();
    // Same bytes to a lenient decoder: the last character's low bits set.
    let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let value = alphabet.iter().position(|&c| c == last).unwrap();
    let non_canonical = format!("{}{}", &id[..21], alphabet[value | 1] as char);
    assert!(SessionId::parse(&non_canonical).is_none());
    for bad in [
        format!("{id}A"),
        id[..21].to_owned(),
        format!("{id}=="),
        non_canonical,
        id.to_lowercase(),
    ] {
        if SessionId::parse(&bad).is_some() {
            continue; // a lower-cased ID may happen to be canonical
        }
        let set = format!("{NAME}={bad}; Path=/");
        assert_not_taken_for_a_repeat(&rig, &id, &set).await;
        assert_eq!(rig.lifetimes.len(), 1, "{bad}: no lifetime for it");
    }
}

#[tokio::test]
async fn a_repeat_with_max_age_zero_appended_ends_the_session() {
    let (rig, id, cookie) = Rig::signed_in().await;
    let set = format!("{NAME}={id}; Path=/; Max-Age=0");
    let response = rig
        .send("GET", "/count", &[&cookie], &[&set], "append")
        .await;
    // tower-sessions' repeat, then the removal: the removal is last.
    assert_eq!(
        id_values(&response).last().map(String::as_str),
        Some(id.as_str())
    );
    assert!(followed(&response).last().unwrap().ends_with("Max-Age=0"));
    assert!(rig.lifetimes.is_empty(), "the session ended");
    assert!(!rig.admits(&id).await.0);
}

// ---------------------------------------------------------------------
// Promise 5: a refused request never gets its ID back.
// ---------------------------------------------------------------------

async fn refused_request_sets(rig: &Rig, id: &str, sets: &[&str], path: &str) -> Response<Body> {
    let cookie = format!("{NAME}={id}");
    let response = rig.send("GET", path, &[&cookie], sets, "append").await;
    assert!(reason(&response).is_some(), "the request was refused");
    response
}

#[tokio::test]
async fn an_expired_id_set_again_by_hand_is_cleared() {
    let (rig, id, _) = Rig::signed_in().await;
    rig.clock.advance(HOUR);
    for set in [
        format!("{NAME}={id}"),
        format!("{NAME}=\"{id}\"; Path=/"),
        format!("{NAME}={id} ; Path=/"),
    ] {
        for path in ["/noop", "/count"] {
            let response = refused_request_sets(&rig, &id, &[&set, "theme=dark"], path).await;
            assert!(
                !id_values(&response).iter().any(|value| value.contains(&id)),
                "{set} on {path}: {:?}",
                set_cookies(&response)
            );
            assert!(clears(&response), "{set} on {path}");
            assert!(set_cookies(&response).contains(&"theme=dark".to_owned()));
            assert!(rig.record_of(&id).await.is_none(), "{set} on {path}");
        }
    }
}

#[tokio::test]
async fn a_logged_out_or_unknown_id_set_again_by_hand_is_cleared() {
    let (rig, id, cookie) = Rig::signed_in().await;
    rig.send("POST", "/logout", &[&cookie], &[], "append").await;
    assert!(rig.lifetimes.is_empty());
    let unknown = SessionId::generate().unwrap().encode();
    for dead in [&id, &unknown] {
        let set = format!("{NAME}={dead}; Path=/");
        let response = refused_request_sets(&rig, dead, &[&set], "/noop").await;
        assert!(
            !id_values(&response).contains(dead),
            "{:?}",
            set_cookies(&response)
        );
        assert!(clears(&response));
        assert!(rig.record_of(dead).await.is_none());
    }
}

#[tokio::test]
async fn a_refused_id_is_not_handed_back_next_to_a_new_id() {
    let (rig, id, _) = Rig::signed_in().await;
    rig.clock.advance(HOUR);
    // tower-sessions starts a new session (the refused cookie was stripped)
    // and a hand-made header sets the refused ID before it.
    let set = format!("{NAME}={id}; Path=/");
    let response = refused_request_sets(&rig, &id, &[&set], "/count").await;
    let before_new = set_cookies(&response);
    let response = {
        let cookie = format!("{NAME}={id}");
        rig.send("GET", "/count", &[&cookie], &[&set], "prepend")
            .await
    };
    assert!(
        !id_values(&response).contains(&id),
        "the refused ID is handed back: {:?} (appended: {before_new:?})",
        set_cookies(&response)
    );
    assert!(rig.record_of(&id).await.is_none());
}

// ---------------------------------------------------------------------
// Promise 6: signed cookies.
// ---------------------------------------------------------------------

#[tokio::test]
async fn signed_a_repeat_of_the_signed_value_is_dropped() {
    let rig = Rig::signed();
    let value = rig.session().await;
    assert!(value.len() > 22, "signed");
    let cookie = format!("{NAME}={value}");
    let response = rig
        .send("GET", "/count", &[&cookie], &["theme=dark"], "append")
        .await;
    assert_eq!(set_cookies(&response), ["theme=dark"]);
    assert_eq!(body_text(response).await, "2");
    assert_eq!(rig.admits(&value).await, (true, None));
}

#[tokio::test]
async fn signed_a_forged_signature_in_the_request_is_refused() {
    let rig = Rig::signed();
    let value = rig.session().await;
    let first = if value.starts_with('A') { 'B' } else { 'A' };
    let forged = format!("{first}{}", &value[1..]);
    assert_eq!(
        rig.admits(&forged).await,
        (false, Some(RejectReason::Forged))
    );
    // The bare ID alone, without its signature.
    let bare = rig.bare(&value).to_owned();
    assert!(!rig.admits(&bare).await.0);
    assert_eq!(rig.admits(&value).await, (true, None));
}

#[tokio::test]
async fn signed_a_forged_signature_on_the_way_out_is_not_a_repeat() {
    let rig = Rig::signed();
    let value = rig.session().await;
    let first = if value.starts_with('A') { 'B' } else { 'A' };
    let forged = format!("{first}{}", &value[1..]);
    assert_not_taken_for_a_repeat(&rig, &value, &format!("{NAME}={forged}; Path=/")).await;
    assert_eq!(rig.admits(&value).await, (true, None));
}

#[tokio::test]
async fn signed_the_bare_unsigned_id_on_the_way_out_is_not_a_repeat() {
    let rig = Rig::signed();
    let value = rig.session().await;
    let bare = rig.bare(&value).to_owned();
    assert_not_taken_for_a_repeat(&rig, &value, &format!("{NAME}={bare}; Path=/")).await;
}

#[tokio::test]
async fn signed_a_quoted_signed_repeat_is_dropped_as_a_repeat() {
    let rig = Rig::signed();
    let value = rig.session().await;
    assert_dropped_as_a_repeat(&rig, &value, &format!("{NAME}=\"{value}\"; Path=/")).await;
}

#[tokio::test]
async fn signed_a_signature_of_another_key_is_cleared() {
    let rig = Rig::signed();
    let value = rig.session().await;
    // The same ID signed with another key, as tower-sessions would with a
    // rotated key.
    let other = cookie::Key::generate();
    let mut jar = cookie::CookieJar::new();
    jar.signed_mut(&other)
        .add(cookie::Cookie::new(NAME, rig.bare(&value).to_owned()));
    let resigned = jar.get(NAME).unwrap().value().to_owned();
    assert_ne!(resigned, value);
    assert!(rig.key.is_some());
    assert_not_taken_for_a_repeat(&rig, &value, &format!("{NAME}={resigned}; Path=/")).await;
}

// ---------------------------------------------------------------------
// Promise 7: the request's Cookie header, as browsers and proxies spell it.
// ---------------------------------------------------------------------

#[tokio::test]
async fn cookie_header_spellings_are_read_and_the_repeat_dropped() {
    let (rig, id, _) = Rig::signed_in().await;
    let spellings: Vec<Vec<String>> = vec![
        vec![format!("{NAME}={id}")],
        vec!["a=1".into(), format!("{NAME}={id}")],
        vec![format!("{NAME}={id}"), "a=1; b=2".into()],
        vec![format!("a=1;{NAME}={id};b=2")],
        vec![format!("a=1; {NAME}={id}; b=2")],
        vec![format!("a=1 ;  {NAME} = {id} ; b=2")],
        vec![format!("a=1;b=2;{NAME}={id}")],
        vec!["a=1".into(), "b=2".into(), format!("c=3; {NAME}={id}")],
    ];
    for (round, headers) in spellings.iter().enumerate() {
        let headers: Vec<&str> = headers.iter().map(String::as_str).collect();
        let response = rig.send("GET", "/count", &headers, &[], "append").await;
        assert_eq!(reason(&response), None, "{headers:?}");
        assert_eq!(set_cookies(&response), Vec::<String>::new(), "{headers:?}");
        assert_eq!(
            body_text(response).await,
            (round + 2).to_string(),
            "{headers:?}"
        );
    }
    assert_eq!(rig.lifetimes.len(), 1);
}

#[tokio::test]
async fn the_session_cookie_twice_is_refused_as_duplicated() {
    let (rig, id, _) = Rig::signed_in().await;
    let other = SessionId::generate().unwrap().encode();
    let cases: Vec<Vec<String>> = vec![
        vec![format!("{NAME}={id}; {NAME}={id}")],
        vec![format!("{NAME}={id}"), format!("{NAME}={id}")],
        vec![format!("{NAME}={id};{NAME}={other}")],
        vec![
            format!("a=1; {NAME}={other}"),
            format!("b=2; {NAME} = {id}"),
        ],
    ];
    for headers in cases {
        let headers: Vec<&str> = headers.iter().map(String::as_str).collect();
        let response = rig.send("GET", "/count", &headers, &[], "append").await;
        assert_eq!(
            reason(&response),
            Some(RejectReason::Duplicated),
            "{headers:?}"
        );
        assert!(!id_values(&response).contains(&id), "{headers:?}");
        assert_eq!(body_text(response).await, "1", "{headers:?}: a visitor");
    }
    assert!(
        rig.record_of(&id).await.is_some(),
        "the session itself lives"
    );
}

// ---------------------------------------------------------------------
// Concurrency on one session.
// ---------------------------------------------------------------------

#[tokio::test]
async fn logout_while_a_repeat_is_in_flight_stays_logged_out() {
    let (rig, id, cookie) = Rig::signed_in().await;
    let quoted = format!("{NAME}=\"{id}\"");
    let (slow, logout) = rig
        .race(
            Rig::request(
                "GET",
                "/slow-write",
                &[&cookie],
                &["theme=dark", &quoted],
                "append",
            ),
            "POST",
            "/logout",
            &cookie,
        )
        .await;
    assert_eq!(logout.status(), StatusCode::OK);
    assert!(
        !id_values(&slow).iter().any(|value| value.contains(&id)),
        "{:?}",
        set_cookies(&slow)
    );
    assert!(set_cookies(&slow).contains(&"theme=dark".to_owned()));
    assert!(rig.lifetimes.is_empty());
    assert!(!rig.admits(&id).await.0);
}

#[tokio::test]
async fn cycle_while_a_repeat_is_in_flight_keeps_the_new_id() {
    let (rig, id, cookie) = Rig::signed_in().await;
    let (slow, cycled) = rig
        .race(
            Rig::request("GET", "/slow-write", &[&cookie], &["theme=dark"], "append"),
            "POST",
            "/cycle",
            &cookie,
        )
        .await;
    let new = id_values(&cycled).pop().expect("the new ID");
    assert_ne!(new, id);
    assert_eq!(
        set_cookies(&slow),
        ["theme=dark"],
        "the late repeat is dropped"
    );
    rig.assert_only_a_pointer_left(&id).await;
    assert_eq!(rig.admits(&new).await, (true, None));
    assert_eq!(rig.admits(&id).await, (false, Some(RejectReason::Renewed)));
}

#[tokio::test]
async fn repeat_and_removal_in_one_response_in_flight_with_a_cycle() {
    let (rig, id, cookie) = Rig::signed_in().await;
    let removal = format!("{NAME}={id}; Max-Age=0");
    // The slow request repeats the ID and then removes it: a logout.
    let (_, cycled) = rig
        .race(
            Rig::request("GET", "/slow-write", &[&cookie], &[&removal], "append"),
            "POST",
            "/cycle",
            &cookie,
        )
        .await;
    let new = id_values(&cycled).pop().expect("the new ID");
    // A logout in flight with the retired ID ends the session it moved to.
    assert!(!rig.admits(&new).await.0, "the logout sticks");
    assert!(rig.lifetimes.is_empty() || rig.record_of(&new).await.is_none());
}

/// A handler that signs in through the handle once a logout ended the
/// session meanwhile; tower-sessions writes no cookie, the app sets `others`.
/// Returns the slow response's `Set-Cookie` headers.
async fn login_after_a_concurrent_logout(others: &[&str]) -> Vec<String> {
    let (rig, id, cookie) = Rig::signed_in().await;
    let (slow, logout) = rig
        .race(
            Rig::request("POST", "/slow-login", &[&cookie], others, "append"),
            "POST",
            "/logout",
            &cookie,
        )
        .await;
    assert_eq!(logout.status(), StatusCode::OK);
    assert!(!id_values(&slow).contains(&id));
    assert!(!rig.admits(&id).await.0);
    set_cookies(&slow)
}

#[tokio::test]
async fn a_login_whose_session_was_logged_out_meanwhile_keeps_other_cookies() {
    // Two other cookies: both stay.
    assert_eq!(
        login_after_a_concurrent_logout(&["theme=dark", "lang=en"]).await,
        ["theme=dark", "lang=en"]
    );
    // One other cookie, the response's only Set-Cookie: it must stay too.
    assert_eq!(
        login_after_a_concurrent_logout(&["theme=dark"]).await,
        ["theme=dark"],
        "the response's only other cookie was dropped"
    );
}

#[tokio::test]
async fn many_concurrent_repeats_and_one_cycle_leave_one_live_id() {
    let (rig, id, cookie) = Rig::signed_in().await;
    rig.clock.advance(MINUTE);
    let repeats = (0..8).map(|_| {
        rig.app.clone().oneshot(Rig::request(
            "GET",
            "/count",
            &[&cookie],
            &["t=1"],
            "append",
        ))
    });
    let cycle = rig
        .app
        .clone()
        .oneshot(Rig::request("POST", "/cycle", &[&cookie], &[], "append"));
    let (repeats, cycled) = tokio::join!(futures_join_all(repeats), cycle);
    let cycled = cycled.unwrap();
    for response in repeats {
        let response = response.unwrap();
        // Admitted before or after the move: never the old ID handed out.
        assert!(
            !id_values(&response).contains(&id),
            "{:?}",
            set_cookies(&response)
        );
        assert!(set_cookies(&response).contains(&"t=1".to_owned()));
    }
    let new = id_values(&cycled).pop().expect("the new ID");
    // Refused repeats (after the move) start visitor sessions of their own,
    // so the store may hold more than one record: only the old ID matters.
    rig.assert_only_a_pointer_left(&id).await;
    assert_eq!(rig.admits(&new).await, (true, None));
    assert!(!rig.admits(&id).await.0);
}

/// `join_all` without the futures crate: each on a task of its own.
async fn futures_join_all<F>(futures: impl Iterator<Item = F>) -> Vec<F::Output>
where
    F: std::future::Future + Send + 'static,
    F::Output: Send + 'static,
{
    let tasks: Vec<_> = futures.map(tokio::spawn).collect();
    let mut outputs = Vec::new();
    for task in tasks {
        outputs.push(task.await.unwrap());
    }
    outputs
}
