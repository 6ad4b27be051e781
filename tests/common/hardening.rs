//! The security checks every store runs through the layer: renewal and its
//! grace period, logout racing touches and renewals (stress), logout
//! everywhere and the per-subject session limit, and an outage in the
//! middle of traffic.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use http::StatusCode;
use tower_session_lifetime::{
    clock::ManualClock, id::SessionId, policy::AtSessionLimit, rejection::RejectReason,
    store::LifetimeStore, Policy, SessionLifetimeLayer,
};

use super::shared_store::{clock_now, log_in, send, Outage};
use super::{body_text, routes, set_cookie, HOUR, MINUTE, SECOND};

const RENEWAL: Duration = Duration::from_secs(10 * 60);
const GRACE: Duration = Duration::from_secs(5);

/// Idle 1 h, absolute 8 h, IDs renewed every 10 min with 5 s of grace,
/// every request's activity written.
fn renewing_policy() -> Policy {
    Policy::builder()
        .idle_timeout(HOUR)
        .absolute_timeout(8 * HOUR)
        .renewal_interval(RENEWAL)
        .renewal_grace(GRACE)
        .touch_granularity(Duration::ZERO)
        .build()
        .unwrap()
}

fn app_with(store: Arc<dyn LifetimeStore>, clock: &ManualClock, policy: Policy) -> Router {
    routes().layer(
        SessionLifetimeLayer::from_shared_store(store)
            .with_clock(clock.clone())
            .with_policy(policy),
    )
}

/// The `Cookie` header value of the session a response sets, if it sets one.
fn new_cookie(response: &http::Response<axum::body::Body>) -> Option<String> {
    set_cookie(response)
        .filter(|set| !set.value().is_empty())
        .map(|set| format!("{}={}", set.name(), set.value()))
}

fn reason(response: &http::Response<axum::body::Body>) -> Option<RejectReason> {
    response.extensions().get::<RejectReason>().copied()
}

/// Renewal through the layer: when due, a request gets a new cookie; the
/// old ID works within the grace period (without a new cookie) and is
/// refused after it; renewals go on every interval and never move the
/// absolute deadline; a logout with the old ID in its grace ends the
/// session under both IDs.
pub async fn renewal_replaces_the_id_and_keeps_the_deadline(store: impl LifetimeStore) {
    let store: Arc<dyn LifetimeStore> = Arc::new(store);
    let clock = clock_now();
    let app = app_with(Arc::clone(&store), &clock, renewing_policy());
    let mut cookie = log_in(&app, "alice").await;
    let mut elapsed = Duration::ZERO;
    let mut renewals = 0;
    // Every 9 minutes a request; the ID is renewed every other one.
    while elapsed + 9 * MINUTE < 8 * HOUR {
        clock.advance(9 * MINUTE);
        elapsed += 9 * MINUTE;
        let response = send(&app, "GET", "/me", Some(&cookie)).await;
        assert_eq!(response.status(), StatusCode::OK, "at {elapsed:?}");
        if let Some(renewed) = new_cookie(&response) {
            assert_ne!(renewed, cookie);
            renewals += 1;
            let old = std::mem::replace(&mut cookie, renewed);
            // In flight with the old ID: admitted within the grace, without
            // a cookie that would undo the renewal.
            clock.advance(GRACE - SECOND);
            elapsed += GRACE - SECOND;
            let late = send(&app, "GET", "/me", Some(&old)).await;
            assert_eq!(late.status(), StatusCode::OK);
            assert_eq!(set_cookie(&late), None);
            clock.advance(SECOND);
            elapsed += SECOND;
            let replay = send(&app, "GET", "/me", Some(&old)).await;
            assert_eq!(replay.status(), StatusCode::UNAUTHORIZED);
            assert_eq!(reason(&replay), Some(RejectReason::Renewed));
        }
    }
    assert!(renewals >= 20, "renewed {renewals} times in 8 hours");
    // Renewals never extended the absolute deadline (8 h after login).
    clock.advance(8 * HOUR - elapsed - Duration::from_millis(1));
    assert_eq!(
        send(&app, "GET", "/me", Some(&cookie)).await.status(),
        StatusCode::OK
    );
    clock.advance(Duration::from_millis(1));
    let ended = send(&app, "GET", "/me", Some(&cookie)).await;
    assert_eq!(reason(&ended), Some(RejectReason::AbsoluteTimeout));

    // A logout with an ID in its grace period ends the renewed session too.
    let old = log_in(&app, "bob").await;
    clock.advance(RENEWAL);
    let response = send(&app, "GET", "/me", Some(&old)).await;
    let new = new_cookie(&response).expect("renewed");
    assert_eq!(
        send(&app, "POST", "/logout", Some(&old)).await.status(),
        StatusCode::OK
    );
    let after = send(&app, "GET", "/me", Some(&new)).await;
    assert_eq!(after.status(), StatusCode::UNAUTHORIZED);
    let key = SessionId::parse(new.split_once('=').unwrap().1)
        .unwrap()
        .key();
    assert_eq!(store.load(&key).await.unwrap(), None);
}

/// Stress: in each of `rounds` rounds, four tasks keep using one session
/// (each request writes its activity) while a fifth logs it out after a
/// varying number of yields. No request sent after the logout completed is
/// admitted, and the record never comes back.
pub async fn logout_racing_touches_sticks(store: impl LifetimeStore, rounds: usize) {
    let store: Arc<dyn LifetimeStore> = Arc::new(store);
    let clock = clock_now();
    let policy = Policy::builder()
        .idle_timeout(HOUR)
        .touch_granularity(Duration::ZERO)
        .build()
        .unwrap();
    let app = app_with(Arc::clone(&store), &clock, policy);
    let admitted_after_logout = Arc::new(AtomicUsize::new(0));
    let admitted = Arc::new(AtomicUsize::new(0));
    for round in 0..rounds {
        let cookie = Arc::new(log_in(&app, "alice").await);
        let logged_out = Arc::new(AtomicBool::new(false));
        let admitted_before_round = admitted.load(Ordering::SeqCst);
        let users: Vec<_> = (0..4)
            .map(|_| {
                let (app, clock, cookie) = (app.clone(), clock.clone(), Arc::clone(&cookie));
                let (logged_out, late, admitted) = (
                    Arc::clone(&logged_out),
                    Arc::clone(&admitted_after_logout),
                    Arc::clone(&admitted),
                );
                tokio::spawn(async move {
                    for _ in 0..4 {
                        clock.advance(Duration::from_millis(1));
                        let after_logout = logged_out.load(Ordering::SeqCst);
                        let response = send(&app, "GET", "/me", Some(&cookie)).await;
                        if response.status() == StatusCode::OK {
                            admitted.fetch_add(1, Ordering::Relaxed);
                            if after_logout {
                                late.fetch_add(1, Ordering::SeqCst);
                            }
                        }
                    }
                })
            })
            .collect();
        for _ in 0..round % 7 {
            tokio::task::yield_now().await;
        }
        // Every other round the logout waits for a first admission, so that
        // the race is real even where the scheduler starts the requests late
        // (a loaded machine); in the others it may come before any.
        if round % 2 == 1 {
            while admitted.load(Ordering::SeqCst) == admitted_before_round {
                tokio::task::yield_now().await;
            }
        }
        let response = send(&app, "POST", "/logout", Some(&cookie)).await;
        assert_eq!(response.status(), StatusCode::OK);
        logged_out.store(true, Ordering::SeqCst);
        for user in users {
            user.await.expect("no panic");
        }
        let key = SessionId::parse(cookie.split_once('=').unwrap().1)
            .unwrap()
            .key();
        assert_eq!(store.load(&key).await.unwrap(), None, "round {round}");
        let replay = send(&app, "GET", "/me", Some(&cookie)).await;
        assert_eq!(replay.status(), StatusCode::UNAUTHORIZED);
    }
    assert_eq!(admitted_after_logout.load(Ordering::SeqCst), 0);
    // The race was real: many requests were admitted before the logouts.
    assert!(admitted.load(Ordering::Relaxed) > 0);
}

/// Stress: in each of `rounds` rounds, four tasks send eight requests with
/// a session whose ID is due for renewal. Exactly one of them renews it;
/// the others are admitted (before the renewal, or in its grace); once the
/// grace period is over, every request with the old ID is refused, and the
/// new ID is admitted.
pub async fn renewal_racing_requests_renews_once(store: impl LifetimeStore, rounds: usize) {
    let store: Arc<dyn LifetimeStore> = Arc::new(store);
    let clock = clock_now();
    let app = app_with(Arc::clone(&store), &clock, renewing_policy());
    for round in 0..rounds {
        let old = Arc::new(log_in(&app, "alice").await);
        clock.advance(RENEWAL);
        let tasks: Vec<_> = (0..4)
            .map(|_| {
                let (app, old) = (app.clone(), Arc::clone(&old));
                tokio::spawn(async move {
                    let mut issued = Vec::new();
                    for _ in 0..2 {
                        let response = send(&app, "GET", "/me", Some(&old)).await;
                        assert_eq!(response.status(), StatusCode::OK, "in flight");
                        issued.extend(new_cookie(&response));
                    }
                    issued
                })
            })
            .collect();
        let mut issued = Vec::new();
        for task in tasks {
            issued.extend(task.await.expect("no panic"));
        }
        assert_eq!(
            issued.len(),
            1,
            "round {round}: one renewal, got {issued:?}"
        );
        clock.advance(GRACE);
        for _ in 0..4 {
            let replay = send(&app, "GET", "/me", Some(&old)).await;
            assert_eq!(replay.status(), StatusCode::UNAUTHORIZED, "round {round}");
            assert_eq!(reason(&replay), Some(RejectReason::Renewed));
        }
        let renewed = send(&app, "GET", "/me", Some(&issued[0])).await;
        assert_eq!(renewed.status(), StatusCode::OK);
        assert_eq!(
            send(&app, "POST", "/logout", Some(&issued[0]))
                .await
                .status(),
            StatusCode::OK
        );
    }
}

/// A limit of two sessions per subject: the oldest ends at a third login
/// (or the third login is refused, as configured); logout everywhere ends
/// every session of the subject and no other subject's.
pub async fn session_limit_and_logout_everywhere(store: impl LifetimeStore) {
    let store: Arc<dyn LifetimeStore> = Arc::new(store);
    let clock = clock_now();
    let limited = |at_limit| {
        Policy::builder()
            .idle_timeout(HOUR)
            .max_sessions_per_subject(2, at_limit)
            .build()
            .unwrap()
    };
    // Unique subjects: the store may hold other tests' sessions.
    let user = |name: &str| format!("{name}-{}", SessionId::generate().unwrap().encode());
    let ending = app_with(
        Arc::clone(&store),
        &clock,
        limited(AtSessionLimit::EndOldest),
    );
    let alice = user("alice");
    let first = log_in(&ending, &alice).await;
    clock.advance(SECOND);
    let second = log_in(&ending, &alice).await;
    clock.advance(SECOND);
    let third = log_in(&ending, &alice).await;
    let oldest = send(&ending, "GET", "/me", Some(&first)).await;
    assert_eq!(
        oldest.status(),
        StatusCode::UNAUTHORIZED,
        "the oldest ended"
    );
    for cookie in [&second, &third] {
        assert_eq!(
            send(&ending, "GET", "/me", Some(cookie)).await.status(),
            StatusCode::OK
        );
    }

    let refusing = app_with(
        Arc::clone(&store),
        &clock,
        limited(AtSessionLimit::RefuseLogin),
    );
    let bob = user("bob");
    let bobs: Vec<String> = [log_in(&refusing, &bob).await, log_in(&refusing, &bob).await].into();
    let refused = send(&refusing, "POST", &format!("/login?user={bob}"), None).await;
    assert_eq!(
        refused.status(),
        StatusCode::CONFLICT,
        "third login refused"
    );
    assert_eq!(set_cookie(&refused), None);

    let everywhere = send(&ending, "POST", "/logout-everywhere", Some(&third)).await;
    assert_eq!(everywhere.status(), StatusCode::OK);
    assert_eq!(body_text(everywhere).await, "2");
    for cookie in [&second, &third] {
        assert_eq!(
            send(&ending, "GET", "/me", Some(cookie)).await.status(),
            StatusCode::UNAUTHORIZED
        );
    }
    for cookie in &bobs {
        assert_eq!(
            send(&refusing, "GET", "/me", Some(cookie)).await.status(),
            StatusCode::OK,
            "another subject's sessions go on"
        );
    }
    // With a session from a renewal: logout everywhere ends it too.
    let renewing = app_with(Arc::clone(&store), &clock, renewing_policy());
    let carol = user("carol");
    let old = log_in(&renewing, &carol).await;
    let other = log_in(&renewing, &carol).await;
    clock.advance(RENEWAL);
    let renewed = new_cookie(&send(&renewing, "GET", "/me", Some(&old)).await).expect("renewed");
    let everywhere = send(&renewing, "POST", "/logout-everywhere", Some(&other)).await;
    assert_eq!(everywhere.status(), StatusCode::OK);
    assert_eq!(body_text(everywhere).await, "2", "sessions, not pointers");
    for cookie in [&old, &renewed, &other] {
        assert_eq!(
            send(&renewing, "GET", "/me", Some(cookie)).await.status(),
            StatusCode::UNAUTHORIZED
        );
    }
}

/// Four tasks keep sending requests, with a live session and with one
/// logged out before, while the backend goes away and comes back. No
/// panic; the logged-out session is never admitted (fail closed: the store
/// never confirmed it); the live one gets `200` or `503`, nothing else; and
/// once the backend is back, the live session is admitted again.
pub async fn an_outage_mid_traffic_fails_closed(
    store: impl LifetimeStore,
    outage: &mut impl Outage,
) {
    assert!(outage.keeps_data(), "an outage that keeps the data");
    let clock = clock_now();
    let app = app_with(
        Arc::new(store),
        &clock,
        Policy::builder()
            .idle_timeout(HOUR)
            .touch_granularity(Duration::ZERO)
            .build()
            .unwrap(),
    );
    let live = Arc::new(log_in(&app, "alice").await);
    let dead = Arc::new(log_in(&app, "bob").await);
    assert_eq!(
        send(&app, "POST", "/logout", Some(&dead)).await.status(),
        StatusCode::OK
    );
    let stop = Arc::new(AtomicBool::new(false));
    let unavailable = Arc::new(AtomicUsize::new(0));
    let traffic: Vec<_> = (0..4)
        .map(|_| {
            let (app, clock, live, dead) = (
                app.clone(),
                clock.clone(),
                Arc::clone(&live),
                Arc::clone(&dead),
            );
            let (stop, unavailable) = (Arc::clone(&stop), Arc::clone(&unavailable));
            tokio::spawn(async move {
                while !stop.load(Ordering::SeqCst) {
                    clock.advance(Duration::from_millis(1));
                    let response = send(&app, "GET", "/me", Some(&live)).await;
                    match response.status() {
                        StatusCode::OK => {}
                        StatusCode::SERVICE_UNAVAILABLE => {
                            unavailable.fetch_add(1, Ordering::SeqCst);
                        }
                        other => panic!("the live session got {other}"),
                    }
                    let response = send(&app, "GET", "/me", Some(&dead)).await;
                    assert_ne!(response.status(), StatusCode::OK, "logged out, admitted");
                    // An in-memory store never makes a task wait: let the
                    // runtime's timers run.
                    tokio::task::yield_now().await;
                }
            })
        })
        .collect();
    let wait_for = |what: &'static str, done: Box<dyn Fn() -> bool + Send>| async move {
        // PostgreSQL's pool waits up to its 2 s acquire timeout per request.
        for _ in 0..400 {
            if done() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("{what}");
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    outage.begin().await;
    let seen = Arc::clone(&unavailable);
    wait_for(
        "requests met the outage",
        Box::new(move || seen.load(Ordering::SeqCst) >= 4),
    )
    .await;
    outage.end().await;
    let mut recovered = false;
    for _ in 0..400 {
        if send(&app, "GET", "/me", Some(&live)).await.status() == StatusCode::OK {
            recovered = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stop.store(true, Ordering::SeqCst);
    for task in traffic {
        task.await.expect("no panic, no admitted logout");
    }
    assert!(
        recovered,
        "the live session is admitted once the store is back"
    );
    let response = send(&app, "GET", "/me", Some(&live)).await;
    assert_eq!(
        body_text(response).await,
        "alice",
        "nothing stored was lost"
    );
}

/// The sessions `GET /sessions` lists for `cookie`'s session.
async fn listed_sessions(app: &Router, cookie: &str) -> Vec<serde_json::Value> {
    let response = send(app, "GET", "/sessions", Some(cookie)).await;
    assert_eq!(response.status(), StatusCode::OK);
    let listed: serde_json::Value = serde_json::from_str(&body_text(response).await).unwrap();
    listed.as_array().unwrap().clone()
}

/// A subject's own sessions through the layer: listed with their labels,
/// the current one marked, the most recently active first; one ended from
/// another (its cookie then refused); another subject's session cannot be
/// ended; ending the current one logs out.
pub async fn own_sessions_are_listed_and_ended(store: impl LifetimeStore) {
    let store: Arc<dyn LifetimeStore> = Arc::new(store);
    let clock = clock_now();
    let app = app_with(
        Arc::clone(&store),
        &clock,
        Policy::builder().idle_timeout(HOUR).build().unwrap(),
    );
    // Unique subjects: the store may hold other tests' sessions.
    let alice = format!("alice-{}", SessionId::generate().unwrap().encode());
    let bob = format!("bob-{}", SessionId::generate().unwrap().encode());
    let login = |user: String, label: &'static str| {
        let app = app.clone();
        async move {
            let response = send(
                &app,
                "POST",
                &format!("/login?user={user}&label={label}"),
                None,
            )
            .await;
            new_cookie(&response).expect("a session cookie")
        }
    };
    let phone = login(alice.clone(), "phone").await;
    clock.advance(MINUTE);
    let laptop = login(alice.clone(), "laptop").await;
    clock.advance(MINUTE);
    let bobs = login(bob.clone(), "bob's").await;
    clock.advance(MINUTE);
    // The phone was used last.
    assert_eq!(
        send(&app, "GET", "/me", Some(&phone)).await.status(),
        StatusCode::OK
    );

    let list = |cookie: String| {
        let app = app.clone();
        async move { listed_sessions(&app, &cookie).await }
    };
    clock.advance(SECOND);
    // Listing from the laptop is activity there: it comes first.
    let listed = list(laptop.clone()).await;
    let labels: Vec<&str> = listed
        .iter()
        .map(|s| s["label"].as_str().unwrap())
        .collect();
    assert_eq!(
        labels,
        ["laptop", "phone"],
        "alice's only, last active first"
    );
    let current: Vec<bool> = listed
        .iter()
        .map(|s| s["current"].as_bool().unwrap())
        .collect();
    assert_eq!(current, [true, false]);
    assert!(
        listed[1]["last_activity"].as_u64() > listed[1]["created_at"].as_u64(),
        "the phone's activity was written: {listed:?}"
    );
    let phone_key = listed[1]["key"].as_str().unwrap().to_owned();

    // Bob cannot end alice's phone session; alice can.
    let bob_tries = send(
        &app,
        "POST",
        &format!("/sessions/end?key={phone_key}"),
        Some(&bobs),
    )
    .await;
    assert_eq!(body_text(bob_tries).await, "false");
    assert_eq!(
        send(&app, "GET", "/me", Some(&phone)).await.status(),
        StatusCode::OK
    );
    let ended = send(
        &app,
        "POST",
        &format!("/sessions/end?key={phone_key}"),
        Some(&laptop),
    )
    .await;
    assert_eq!(body_text(ended).await, "true");
    assert_eq!(
        send(&app, "GET", "/me", Some(&phone)).await.status(),
        StatusCode::UNAUTHORIZED,
        "the ended session's cookie is refused"
    );
    let labels: Vec<String> = list(laptop.clone())
        .await
        .iter()
        .map(|s| s["label"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(labels, ["laptop"]);
    let again = send(
        &app,
        "POST",
        &format!("/sessions/end?key={phone_key}"),
        Some(&laptop),
    )
    .await;
    assert_eq!(body_text(again).await, "false", "already ended");

    // Ending the current session is a logout.
    let laptop_key = list(laptop.clone()).await[0]["key"]
        .as_str()
        .unwrap()
        .to_owned();
    let own = send(
        &app,
        "POST",
        &format!("/sessions/end?key={laptop_key}"),
        Some(&laptop),
    )
    .await;
    assert!(super::clears_cookie(&own));
    assert_eq!(body_text(own).await, "true");
    assert_eq!(
        send(&app, "GET", "/me", Some(&laptop)).await.status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        send(&app, "GET", "/me", Some(&bobs)).await.status(),
        StatusCode::OK,
        "bob's session untouched"
    );
}

/// A key listed before its session's ID renewed still ends that session
/// during the old ID's grace period (the renewal is followed); after it,
/// the key names nothing (`false`) and a new list shows the current key.
pub async fn a_listed_session_is_ended_after_its_id_renewed(store: impl LifetimeStore) {
    let store: Arc<dyn LifetimeStore> = Arc::new(store);
    let clock = clock_now();
    let app = app_with(Arc::clone(&store), &clock, renewing_policy());
    let alice = format!("alice-{}", SessionId::generate().unwrap().encode());
    let mut phone = log_in(&app, &alice).await;
    // The keys of the subject's other sessions.
    let list = |cookie: String| {
        let app = app.clone();
        async move {
            listed_sessions(&app, &cookie)
                .await
                .iter()
                .filter(|session| !session["current"].as_bool().unwrap())
                .map(|session| session["key"].as_str().unwrap().to_owned())
                .collect::<Vec<String>>()
        }
    };
    let end = |cookie: String, key: String| {
        let app = app.clone();
        async move {
            let response = send(
                &app,
                "POST",
                &format!("/sessions/end?key={key}"),
                Some(&cookie),
            )
            .await;
            let renewed = new_cookie(&response);
            (body_text(response).await, renewed)
        }
    };
    for after_the_grace in [false, true] {
        let laptop = log_in(&app, &alice).await;
        let listed = list(phone.clone()).await;
        assert_eq!(listed.len(), 1, "the laptop: {listed:?}");
        let key = listed[0].clone();
        // The laptop's next request renews its ID.
        clock.advance(RENEWAL);
        let response = send(&app, "GET", "/me", Some(&laptop)).await;
        assert_eq!(response.status(), StatusCode::OK);
        let laptop = new_cookie(&response).expect("a renewed laptop ID");
        clock.advance(if after_the_grace {
            GRACE
        } else {
            GRACE - SECOND
        });
        let (ended, renewed) = end(phone.clone(), key).await;
        if let Some(renewed) = renewed {
            phone = renewed;
        }
        if after_the_grace {
            assert_eq!(ended, "false", "a key past its grace names nothing");
            let listed = list(phone.clone()).await;
            assert_eq!(listed.len(), 1, "the laptop, under its current key");
            let (ended, _) = end(phone.clone(), listed[0].clone()).await;
            assert_eq!(ended, "true");
        } else {
            assert_eq!(ended, "true", "the renewal is followed");
        }
        assert_eq!(
            send(&app, "GET", "/me", Some(&laptop)).await.status(),
            StatusCode::UNAUTHORIZED,
            "the laptop is signed out under its new ID"
        );
        assert_eq!(
            send(&app, "GET", "/me", Some(&phone)).await.status(),
            StatusCode::OK,
            "the phone is not"
        );
    }
}
