//! One test per lifetime rule, through the layer, on a manual clock.
#![cfg(feature = "axum")]

mod common;

use common::*;
use http::StatusCode;
use tower_session_lifetime::{rejection::RejectReason, Policy};

#[tokio::test]
async fn activity_keeps_a_session_alive_past_its_idle_timeout() {
    let app = TestApp::new(policy(10 * MINUTE, DAY));
    let cookie = app.login("alice", false).await;
    for _ in 0..6 {
        app.advance(9 * MINUTE);
        let response = app.me(&cookie).await;
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(body_text(response).await, "alice");
    }
    // 54 minutes in, far past one idle timeout, and still live.
}

#[tokio::test]
async fn inactivity_ends_a_session_at_exactly_the_idle_deadline() {
    let app = TestApp::new(policy(10 * MINUTE, DAY));
    let early = app.login("alice", false).await;
    let late = app.login("bob", false).await;

    app.advance(10 * MINUTE - TICK);
    assert_eq!(
        app.me(&early).await.status(),
        StatusCode::OK,
        "one tick before"
    );

    let app_later = app.clone();
    app_later.clock.set(START.saturating_add(10 * MINUTE));
    let response = app_later.me(&late).await;
    assert_eq!(
        response.status(),
        StatusCode::UNAUTHORIZED,
        "at the deadline"
    );
    assert_eq!(
        response.extensions().get::<RejectReason>(),
        Some(&RejectReason::IdleTimeout)
    );
    assert!(clears_cookie(&response));
}

#[tokio::test]
async fn continuous_activity_still_ends_at_the_absolute_deadline() {
    let app = TestApp::new(policy(10 * MINUTE, HOUR));
    let cookie = app.login("alice", false).await;
    for _ in 0..11 {
        app.advance(5 * MINUTE);
        assert_eq!(app.me(&cookie).await.status(), StatusCode::OK);
    }
    app.advance(5 * MINUTE - TICK);
    assert_eq!(
        app.me(&cookie).await.status(),
        StatusCode::OK,
        "one tick before"
    );
    app.advance(TICK);
    let response = app.me(&cookie).await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        response.extensions().get::<RejectReason>(),
        Some(&RejectReason::AbsoluteTimeout)
    );
}

#[tokio::test]
async fn remember_me_replaces_the_idle_timeout_and_is_capped_by_the_absolute_one() {
    let policy = Policy::builder()
        .idle_timeout(10 * MINUTE)
        .remember_me_period(2 * DAY)
        .absolute_timeout(5 * DAY)
        .build()
        .unwrap();
    let app = TestApp::new(policy);
    let remembered = app.login("alice", true).await;
    let ordinary = app.login("bob", false).await;

    app.advance(DAY);
    assert_eq!(
        app.me(&remembered).await.status(),
        StatusCode::OK,
        "a day idle"
    );
    assert_eq!(app.me(&ordinary).await.status(), StatusCode::UNAUTHORIZED);

    for _ in 0..3 {
        app.advance(DAY);
        assert_eq!(app.me(&remembered).await.status(), StatusCode::OK);
    }
    // Day 4 and active: the idle deadline is day 6, the absolute one day 5.
    app.advance(DAY - TICK);
    assert_eq!(app.me(&remembered).await.status(), StatusCode::OK);
    app.advance(TICK);
    let response = app.me(&remembered).await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        response.extensions().get::<RejectReason>(),
        Some(&RejectReason::AbsoluteTimeout)
    );
}

#[tokio::test]
async fn a_separate_remember_me_absolute_limit_applies_to_remember_me_sessions_only() {
    let policy = Policy::builder()
        .idle_timeout(HOUR)
        .absolute_timeout(10 * HOUR)
        .remember_me_period(DAY)
        .remember_me_absolute_timeout(3 * DAY)
        .build()
        .unwrap();
    let app = TestApp::new(policy);
    let remembered = app.login("alice", true).await;
    let ordinary = app.login("bob", false).await;
    for _ in 0..10 {
        app.advance(HOUR - TICK);
        assert_eq!(app.me(&ordinary).await.status(), StatusCode::OK);
        assert_eq!(app.me(&remembered).await.status(), StatusCode::OK);
    }
    app.advance(10 * TICK);
    assert_eq!(app.me(&ordinary).await.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        app.me(&remembered).await.status(),
        StatusCode::OK,
        "past 10 h"
    );
}

#[tokio::test]
async fn turning_remember_me_on_never_moves_the_absolute_deadline_later() {
    let policy = Policy::builder()
        .idle_timeout(HOUR)
        .absolute_timeout(DAY)
        .remember_me_period(2 * DAY)
        .remember_me_absolute_timeout(10 * DAY)
        .build()
        .unwrap();
    let app = TestApp::new(policy);
    let cookie = app.login("alice", false).await;
    app.advance(MINUTE);
    let response = app
        .request("POST", "/remember?on=true", Some(&cookie))
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    // Now idle for longer than the idle timeout, within the remember-me period.
    app.advance(DAY - MINUTE - TICK);
    assert_eq!(app.me(&cookie).await.status(), StatusCode::OK);
    app.advance(TICK);
    let response = app.me(&cookie).await;
    assert_eq!(
        response.extensions().get::<RejectReason>(),
        Some(&RejectReason::AbsoluteTimeout),
        "still one day from the login, not ten"
    );
}

#[tokio::test]
async fn switching_remember_me_applies_a_shorter_absolute_limit_and_keeps_it() {
    let policy = Policy::builder()
        .idle_timeout(HOUR)
        .absolute_timeout(10 * DAY)
        .remember_me_period(2 * DAY)
        .remember_me_absolute_timeout(DAY)
        .build()
        .unwrap();
    let app = TestApp::new(policy);
    let cookie = app.login("alice", false).await;
    let on = app
        .request("POST", "/remember?on=true", Some(&cookie))
        .await;
    assert_eq!(on.status(), StatusCode::OK);
    let off = app
        .request("POST", "/remember?on=false", Some(&cookie))
        .await;
    assert_eq!(off.status(), StatusCode::OK);
    // Active every half hour: only the absolute limit can end it.
    for _ in 0..47 {
        app.advance(30 * MINUTE);
        assert_eq!(app.me(&cookie).await.status(), StatusCode::OK);
    }
    app.advance(30 * MINUTE);
    let response = app.me(&cookie).await;
    assert_eq!(
        response.extensions().get::<RejectReason>(),
        Some(&RejectReason::AbsoluteTimeout),
        "one day from the login: turning remember-me off did not restore ten"
    );
}

#[tokio::test]
async fn remember_me_cookie_is_persistent_and_an_ordinary_one_is_not() {
    let policy = Policy::builder()
        .remember_me_period(2 * DAY)
        .absolute_timeout(30 * DAY)
        .touch_granularity(MINUTE)
        .build()
        .unwrap();
    let app = TestApp::new(policy);
    let response = app
        .request("POST", "/login?user=alice&remember=true", None)
        .await;
    let cookie = set_cookie(&response).expect("cookie");
    assert_eq!(cookie.max_age(), Some(cookie::time::Duration::days(2)));
    assert_eq!(cookie.http_only(), Some(true));
    assert_eq!(cookie.secure(), Some(true));
    assert_eq!(cookie.same_site(), Some(cookie::SameSite::Lax));
    assert_eq!(cookie.path(), Some("/"));
    let header = format!("{}={}", cookie.name(), cookie.value());

    let response = app
        .request("POST", "/login?user=bob&remember=false", None)
        .await;
    let ordinary = set_cookie(&response).expect("cookie");
    assert_eq!(ordinary.max_age(), None, "browser-session cookie");
    assert_eq!(ordinary.expires(), None, "browser-session cookie");

    // Activity that is written refreshes the persistent cookie's Max-Age.
    app.advance(HOUR);
    let response = app.me(&header).await;
    let refreshed = set_cookie(&response).expect("refreshed cookie");
    assert_eq!(refreshed.value(), cookie.value(), "same session");
    assert_eq!(refreshed.max_age(), Some(cookie::time::Duration::days(2)));
    // Throttled activity writes nothing, so it sets nothing.
    app.advance(SECOND);
    assert!(set_cookie(&app.me(&header).await).is_none());
}

#[tokio::test]
async fn a_persistent_cookie_never_outlives_the_absolute_deadline() {
    let policy = Policy::builder()
        .remember_me_period(14 * DAY)
        .absolute_timeout(20 * DAY)
        .build()
        .unwrap();
    let app = TestApp::new(policy);
    let cookie = app.login("alice", true).await;
    app.advance(10 * DAY);
    let response = app.me(&cookie).await;
    let refreshed = set_cookie(&response).expect("refreshed");
    assert_eq!(refreshed.max_age(), Some(cookie::time::Duration::days(10)));
}

#[tokio::test]
async fn login_issues_a_new_id_and_the_previous_one_is_dead() {
    let app = TestApp::new(Policy::default());
    let first = app.login("alice", false).await;
    let response = app.request("POST", "/login?user=alice", Some(&first)).await;
    let second = set_cookie(&response).expect("new cookie");
    let second = format!("{}={}", second.name(), second.value());
    assert_ne!(first, second, "a new ID");
    assert_eq!(app.me(&second).await.status(), StatusCode::OK);
    let replay = app.me(&first).await;
    assert_eq!(replay.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        replay.extensions().get::<RejectReason>(),
        Some(&RejectReason::Unknown)
    );
}

#[tokio::test]
async fn login_starts_a_new_absolute_period() {
    let app = TestApp::new(policy(HOUR, 2 * HOUR));
    let first = app.login("alice", false).await;
    app.advance(45 * MINUTE);
    assert_eq!(app.me(&first).await.status(), StatusCode::OK);
    app.advance(45 * MINUTE);
    let response = app.request("POST", "/login?user=alice", Some(&first)).await;
    let second = set_cookie(&response).expect("new cookie");
    let second = format!("{}={}", second.name(), second.value());
    app.advance(HOUR - TICK);
    // 2.5 h after the first login, 1 h after the second.
    assert_eq!(app.me(&second).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn logout_then_replay_of_the_old_cookie_is_refused() {
    let app = TestApp::new(Policy::default());
    let cookie = app.login("alice", false).await;
    let response = app.request("POST", "/logout", Some(&cookie)).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert!(clears_cookie(&response));
    let replay = app.me(&cookie).await;
    assert_eq!(replay.status(), StatusCode::UNAUTHORIZED);
    assert!(clears_cookie(&replay));
    assert!(app.store.memory.is_empty());
}

#[tokio::test]
async fn a_request_in_flight_during_logout_cannot_bring_the_session_back() {
    // The store half of an in-flight request: loaded before the logout,
    // writes after it. Its touch must find nothing and create nothing.
    use tower_session_lifetime::{
        id::SessionId,
        record::SessionRecord,
        store::{LifetimeStore, TouchOutcome},
    };
    let app = TestApp::new(Policy::default());
    let id = SessionId::generate().unwrap();
    let record = SessionRecord::new(&Policy::default(), START, Some("alice".into()), false);
    assert!(app.store.create(&id.key(), &record).await.unwrap());
    let loaded = app.store.load(&id.key()).await.unwrap();
    assert!(loaded.is_some());
    assert!(app.store.delete(&id.key()).await.unwrap(), "logout");
    let late = START.saturating_add(MINUTE);
    let outcome = app
        .store
        .touch(&id.key(), late, late.saturating_add(HOUR))
        .await;
    assert_eq!(outcome.unwrap(), TouchOutcome::Missing);
    assert!(app.store.memory.is_empty());
}

#[tokio::test]
async fn a_shorter_policy_applies_to_an_existing_session_at_its_next_request() {
    let app = TestApp::new(policy(HOUR, DAY));
    let cookie = app.login("alice", false).await;
    let stricter = app.sibling(|layer| layer.with_policy(policy(10 * MINUTE, DAY)));
    app.advance(10 * MINUTE);
    let response = stricter.me(&cookie).await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        response.extensions().get::<RejectReason>(),
        Some(&RejectReason::IdleTimeout)
    );
}

#[tokio::test]
async fn a_shorter_absolute_limit_applies_to_an_existing_session() {
    let app = TestApp::new(policy(HOUR, DAY));
    let cookie = app.login("alice", false).await;
    let stricter = app.sibling(|layer| layer.with_policy(policy(HOUR, 2 * HOUR)));
    app.advance(50 * MINUTE);
    assert_eq!(stricter.me(&cookie).await.status(), StatusCode::OK);
    app.advance(50 * MINUTE);
    assert_eq!(stricter.me(&cookie).await.status(), StatusCode::OK);
    app.advance(20 * MINUTE);
    let response = stricter.me(&cookie).await;
    assert_eq!(
        response.extensions().get::<RejectReason>(),
        Some(&RejectReason::AbsoluteTimeout)
    );
}

#[tokio::test]
async fn a_longer_policy_does_not_extend_an_existing_session() {
    let app = TestApp::new(policy(10 * MINUTE, HOUR));
    let old = app.login("alice", false).await;
    let looser = app.sibling(|layer| layer.with_policy(policy(HOUR, DAY)));
    let new = looser.login("bob", false).await;
    app.advance(30 * MINUTE);
    assert_eq!(looser.me(&old).await.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        looser.me(&new).await.status(),
        StatusCode::OK,
        "new sessions get it"
    );
}

#[tokio::test]
async fn throttled_touches_never_admit_after_a_deadline() {
    let policy = Policy::builder()
        .idle_timeout(10 * MINUTE)
        .touch_granularity(MINUTE)
        .build()
        .unwrap();
    let app = TestApp::new(policy);
    let cookie = app.login("alice", false).await;
    // Requests every 59 s write nothing after the first.
    app.advance(MINUTE);
    assert_eq!(app.me(&cookie).await.status(), StatusCode::OK);
    let writes = app.store.writes();
    app.advance(59 * SECOND);
    assert_eq!(app.me(&cookie).await.status(), StatusCode::OK);
    assert_eq!(app.store.writes(), writes, "throttled");
    // The idle deadline is counted from the stored activity (1 min): it is
    // at 11 min, less than a granularity before 11:59, never after.
    app.clock.set(START.saturating_add(11 * MINUTE - TICK));
    assert_eq!(app.me(&cookie).await.status(), StatusCode::OK);
    let at_deadline = app.clone();
    at_deadline
        .clock
        .set(START.saturating_add(21 * MINUTE - TICK));
    assert_eq!(
        at_deadline.me(&cookie).await.status(),
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn set_remember_me_switches_the_idle_limit_and_the_cookie() {
    let policy = Policy::builder()
        .idle_timeout(10 * MINUTE)
        .remember_me_period(DAY)
        .absolute_timeout(7 * DAY)
        .build()
        .unwrap();
    let app = TestApp::new(policy);
    let cookie = app.login("alice", false).await;
    let response = app
        .request("POST", "/remember?on=true", Some(&cookie))
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let persistent = set_cookie(&response).expect("cookie");
    assert_eq!(persistent.max_age(), Some(cookie::time::Duration::days(1)));
    app.advance(HOUR);
    assert_eq!(app.me(&cookie).await.status(), StatusCode::OK);
    let response = app
        .request("POST", "/remember?on=false", Some(&cookie))
        .await;
    assert_eq!(set_cookie(&response).expect("cookie").max_age(), None);
    app.advance(10 * MINUTE);
    assert_eq!(app.me(&cookie).await.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn the_handle_reports_the_deadlines() {
    use tower_session_lifetime::{SessionHandle, SessionLifetimeLayer};
    let clock = tower_session_lifetime::clock::ManualClock::new(START);
    let layer = SessionLifetimeLayer::new(tower_session_lifetime::MemoryStore::new())
        .with_clock(clock.clone())
        .with_policy(policy(10 * MINUTE, HOUR));
    let service = tower::ServiceBuilder::new().layer(layer).service_fn(
        |request: http::Request<axum::body::Body>| async move {
            let handle = SessionHandle::from_extensions(request.extensions()).unwrap();
            handle.login("alice", false).await.unwrap();
            let deadlines = handle.deadlines().unwrap();
            assert_eq!(handle.created_at(), Some(START));
            assert_eq!(deadlines.idle, START.saturating_add(10 * MINUTE));
            assert_eq!(deadlines.absolute, Some(START.saturating_add(HOUR)));
            assert_eq!(deadlines.nearest(), deadlines.idle);
            Ok::<_, std::convert::Infallible>(http::Response::new(axum::body::Body::empty()))
        },
    );
    use tower::ServiceExt;
    let response = service
        .oneshot(http::Request::new(axum::body::Body::empty()))
        .await
        .unwrap();
    assert!(set_cookie(&response).is_some());
}

#[tokio::test]
async fn a_request_judging_a_stale_copy_does_not_end_a_session_another_request_kept_alive() {
    let app = TestApp::new(policy(10 * MINUTE, DAY));
    let cookie = app.login("alice", false).await;
    app.advance(10 * MINUTE);
    // A request admitted one tick before the deadline writes its activity
    // right after this request loaded the session.
    *app.store.touch_after_next_load.lock().unwrap() =
        Some(START.saturating_add(10 * MINUTE - TICK));
    let response = app.me(&cookie).await;
    assert_eq!(
        response.status(),
        StatusCode::OK,
        "judged on the fresh record"
    );
    assert_eq!(app.store.memory.len(), 1, "not deleted");
    app.advance(10 * MINUTE - 2 * TICK);
    assert_eq!(app.me(&cookie).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn a_store_that_only_loads_asynchronously_enforces_the_same_deadlines() {
    let app = TestApp::new(policy(10 * MINUTE, HOUR));
    app.store
        .sync_reads
        .store(false, std::sync::atomic::Ordering::SeqCst);
    let cookie = app.login("alice", false).await;
    app.advance(10 * MINUTE - TICK);
    assert_eq!(app.me(&cookie).await.status(), StatusCode::OK, "touched");
    app.advance(10 * MINUTE - TICK);
    assert_eq!(
        app.me(&cookie).await.status(),
        StatusCode::OK,
        "one tick before"
    );
    app.advance(TICK);
    assert_eq!(
        app.me(&cookie).await.status(),
        StatusCode::OK,
        "idle moved on"
    );
    for _ in 0..4 {
        app.advance(9 * MINUTE);
        assert_eq!(app.me(&cookie).await.status(), StatusCode::OK);
    }
    app.clock.set(START.saturating_add(HOUR));
    let response = app.me(&cookie).await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        response.extensions().get::<RejectReason>(),
        Some(&RejectReason::AbsoluteTimeout)
    );
    let replay = app.me(&cookie).await;
    assert_eq!(
        replay.extensions().get::<RejectReason>(),
        Some(&RejectReason::Unknown),
        "deleted"
    );
}
