//! The lifetime layer over a real tower-sessions + axum-login stack: the
//! rules hold for sessions another layer issues, logins restart the
//! lifetime, logouts stick, and ended sessions take their data with them.
#![cfg(all(feature = "tower-sessions", feature = "axum"))]

mod common;
mod compose;

use common::*;
use compose::*;
use http::StatusCode;
use tower_session_lifetime::{clock::Clock, rejection::RejectReason, Policy};

fn reason(response: &http::Response<axum::body::Body>) -> Option<RejectReason> {
    response.extensions().get::<RejectReason>().copied()
}

#[tokio::test]
async fn a_protected_route_is_reachable_while_active_and_refused_after_the_idle_deadline() {
    let stack = Stack::new(policy(HOUR, DAY));
    let cookie = stack.login("alice", false, None).await;
    for _ in 0..5 {
        stack.clock.advance(HOUR - TICK);
        let response = stack.protected(&cookie).await;
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(body_text(response).await, "alice");
    }
    stack.clock.advance(HOUR);
    let response = stack.protected(&cookie).await;
    assert_eq!(
        response.status(),
        StatusCode::UNAUTHORIZED,
        "axum-login saw a visitor"
    );
    assert_eq!(reason(&response), Some(RejectReason::IdleTimeout));
    assert!(removes_cookie(&response), "the stale cookie is cleared");
    assert!(stack.lifetimes.is_empty());
}

#[tokio::test]
async fn the_absolute_deadline_ends_a_session_despite_activity() {
    let stack = Stack::new(policy(HOUR, 8 * HOUR));
    let cookie = stack.login("alice", false, None).await;
    for _ in 0..16 {
        stack.clock.advance(30 * MINUTE - TICK);
        assert_eq!(stack.protected(&cookie).await.status(), StatusCode::OK);
    }
    stack.clock.advance(16 * TICK);
    let response = stack.protected(&cookie).await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(reason(&response), Some(RejectReason::AbsoluteTimeout));
}

#[tokio::test]
async fn login_through_axum_login_gives_a_new_id_restarts_the_absolute_clock_and_kills_the_old_id()
{
    let stack = Stack::new(policy(HOUR, 8 * HOUR));
    // A visitor's session (a counter) starts a lifetime of its own.
    let response = stack.request("GET", "/count", None).await;
    let visitor = cookie_header(&response).expect("the first session");
    assert_eq!(stack.lifetimes.len(), 1);
    for _ in 0..14 {
        stack.clock.advance(30 * MINUTE);
        let response = stack.request("GET", "/count", Some(&visitor)).await;
        assert_eq!(response.status(), StatusCode::OK);
    }
    // Seven hours in, the visitor signs in: axum-login cycles the ID.
    let signed_in = stack.login("alice", false, Some(&visitor)).await;
    assert_ne!(signed_in, visitor, "a new ID");
    assert_eq!(stack.lifetimes.len(), 1, "the pre-login lifetime ended");
    let whoami = stack.request("GET", "/whoami", Some(&signed_in)).await;
    assert_eq!(
        body_text(whoami).await,
        "alice",
        "the login named the session"
    );
    let replay = stack.request("GET", "/count", Some(&visitor)).await;
    assert_eq!(
        reason(&replay),
        Some(RejectReason::Unknown),
        "the old ID is dead"
    );
    assert_eq!(
        body_text(replay).await,
        "1",
        "a visitor again, with no data"
    );

    // Active every half hour: past eight hours from the first visit, the
    // session lives on, until eight hours from the login.
    for _ in 0..15 {
        stack.clock.advance(30 * MINUTE);
        assert_eq!(stack.protected(&signed_in).await.status(), StatusCode::OK);
    }
    stack.clock.advance(30 * MINUTE);
    let response = stack.protected(&signed_in).await;
    assert_eq!(reason(&response), Some(RejectReason::AbsoluteTimeout));
}

#[tokio::test]
async fn logout_through_axum_login_ends_the_lifetime_and_the_old_cookie_is_refused() {
    let stack = Stack::new(policy(HOUR, DAY));
    let cookie = stack.login("alice", false, None).await;
    assert_eq!(stack.lifetimes.len(), 1);
    let response = stack.request("POST", "/logout", Some(&cookie)).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert!(removes_cookie(&response));
    assert!(stack.lifetimes.is_empty(), "the lifetime record ended");
    let replay = stack.protected(&cookie).await;
    assert_eq!(replay.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(reason(&replay), Some(RejectReason::Unknown));
    assert!(!stack.has_data(&cookie).await);
}

#[tokio::test]
async fn remember_me_chosen_at_sign_in_survives_inactivity_up_to_the_remember_me_period() {
    let policy = Policy::builder()
        .idle_timeout(HOUR)
        .remember_me_period(2 * DAY)
        .absolute_timeout(30 * DAY)
        .build()
        .unwrap();
    let stack = Stack::new(policy);
    let response = stack
        .request(
            "POST",
            "/login?user=alice&password=alice&remember=true",
            None,
        )
        .await;
    let set = set_cookie_named(&response, COOKIE).expect("the session cookie");
    assert_eq!(
        set.max_age(),
        Some(cookie::time::Duration::days(2)),
        "persistent, up to the remember-me deadline"
    );
    let remembered = cookie_header(&response).unwrap();
    let ordinary = stack.login("bob", false, None).await;

    stack.clock.advance(2 * DAY - TICK);
    assert_eq!(stack.protected(&remembered).await.status(), StatusCode::OK);
    assert_eq!(
        reason(&stack.protected(&ordinary).await),
        Some(RejectReason::IdleTimeout)
    );
    stack.clock.advance(2 * DAY);
    let response = stack.protected(&remembered).await;
    assert_eq!(reason(&response), Some(RejectReason::IdleTimeout));
}

#[tokio::test]
async fn remember_me_chosen_before_the_session_exists_applies_to_it() {
    let policy = Policy::builder()
        .idle_timeout(HOUR)
        .remember_me_period(2 * DAY)
        .build()
        .unwrap();
    let stack = Stack::new(policy);
    let response = stack
        .request(
            "POST",
            "/login-remember-later?user=alice&password=alice",
            None,
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let set = set_cookie_named(&response, COOKIE).expect("the session cookie");
    assert_eq!(set.max_age(), Some(cookie::time::Duration::days(2)));
    let cookie = cookie_header(&response).unwrap();
    stack.clock.advance(DAY);
    assert_eq!(stack.protected(&cookie).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn an_ordinary_session_gets_a_browser_session_cookie_whatever_the_session_layer_says() {
    let stack = Stack::new(policy(HOUR, DAY));
    let response = stack
        .request("POST", "/login?user=alice&password=alice", None)
        .await;
    let set = set_cookie_named(&response, COOKIE).expect("the session cookie");
    assert_eq!(set.max_age(), None);
    assert_eq!(set.expires(), None);
    assert_eq!(
        set.same_site(),
        Some(cookie::SameSite::Strict),
        "its own attributes stay"
    );
}

#[tokio::test]
async fn an_expired_session_loses_its_tower_sessions_data() {
    let stack = Stack::new(policy(HOUR, DAY));
    let cookie = stack.login("alice", false, None).await;
    assert!(stack.has_data(&cookie).await);
    stack.clock.advance(HOUR);
    let response = stack.protected(&cookie).await;
    assert_eq!(reason(&response), Some(RejectReason::IdleTimeout));
    assert!(
        !stack.has_data(&cookie).await,
        "the data went with the lifetime"
    );
}

#[tokio::test]
async fn a_slow_request_that_writes_after_a_logout_cannot_bring_the_session_back() {
    let stack = Stack::new(policy(HOUR, DAY));
    let cookie = stack.login("alice", false, None).await;

    // The slow request loads the session, then waits.
    let slow = tokio::spawn({
        let router = stack.router.clone();
        let cookie = cookie.clone();
        async move {
            use tower::ServiceExt;
            let request = http::Request::get("/slow")
                .header(http::header::COOKIE, cookie)
                .body(axum::body::Body::empty())
                .unwrap();
            router.oneshot(request).await.unwrap()
        }
    });
    stack.slow.entered.notified().await;

    // Meanwhile the user logs out.
    let response = stack.request("POST", "/logout", Some(&cookie)).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert!(!stack.has_data(&cookie).await);

    // The slow request writes after the logout: tower-sessions saves the
    // session again and sends its cookie back.
    stack.slow.release.notify_one();
    let late = slow.await.unwrap();
    assert_eq!(late.status(), StatusCode::OK);
    assert!(
        set_cookie_named(&late, COOKIE).is_none(),
        "the late response does not hand the dead ID out again"
    );
    assert!(
        stack.has_data(&cookie).await,
        "tower-sessions' save re-created the record"
    );
    assert!(stack.lifetimes.is_empty(), "but no lifetime came back");

    let replay = stack.protected(&cookie).await;
    assert_eq!(replay.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(reason(&replay), Some(RejectReason::Unknown));
    assert!(removes_cookie(&replay));
    assert!(!stack.has_data(&cookie).await, "and the late data is gone");
}

#[tokio::test]
async fn a_slow_cycle_id_after_a_logout_cannot_bring_the_session_back() {
    let stack = Stack::new(policy(HOUR, DAY));
    let cookie = stack.login("alice", false, None).await;
    // Admitted on the signed-in ID; it will give the session a new ID later.
    let slow = stack.start_slow("POST", "/slow-cycle", &cookie).await;
    let response = stack.request("POST", "/logout", Some(&cookie)).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert!(stack.lifetimes.is_empty(), "the logout ended the lifetime");

    stack.slow.release.notify_one();
    let late = slow.await.unwrap();
    assert_eq!(late.status(), StatusCode::OK);
    assert!(
        cookie_header(&late).is_none(),
        "the new ID of a session that ended is not handed out"
    );
    assert!(stack.lifetimes.is_empty(), "no lifetime came back");
    // Even if a browser got hold of the new ID, the data is gone with it.
    assert_eq!(
        reason(&stack.protected(&cookie).await),
        Some(RejectReason::Unknown)
    );
}

#[tokio::test]
async fn a_slow_cycle_id_keeps_the_idle_deadline_of_its_admission() {
    use tower_session_lifetime::{id::SessionId, store::LifetimeStore};
    let stack = Stack::new(policy(10 * MINUTE, DAY));
    let cookie = stack.login("alice", false, None).await;
    stack.clock.advance(9 * MINUTE);
    let admitted = stack.clock.now();
    // Admitted at login + 9 min; its response leaves at login + 14 min.
    let slow = stack.start_slow("POST", "/slow-cycle", &cookie).await;
    stack.clock.advance(5 * MINUTE);
    stack.slow.release.notify_one();
    let renewed = cookie_header(&slow.await.unwrap()).expect("the new ID");
    let key = SessionId::parse(renewed.strip_prefix("id=").unwrap())
        .unwrap()
        .key();
    let moved = stack.lifetimes.load(&key).await.unwrap().expect("moved");
    assert_eq!(moved.last_activity, admitted, "the request's admission");
    // login + 19 min: ten minutes after the slow request was admitted.
    stack.clock.advance(5 * MINUTE);
    assert_eq!(
        reason(&stack.protected(&renewed).await),
        Some(RejectReason::IdleTimeout),
        "not login + 24 min, as if the response were activity"
    );
}

#[tokio::test]
async fn a_cycle_id_slower_than_the_idle_deadline_gives_no_new_life() {
    for named in [true, false] {
        let stack = Stack::new(policy(10 * MINUTE, DAY));
        let cookie = if named {
            stack.login("alice", false, None).await
        } else {
            // A session tower-sessions started without a sign-in.
            let response = stack.request("GET", "/count", None).await;
            cookie_header(&response).expect("a session cookie")
        };
        stack.clock.advance(9 * MINUTE);
        let slow = stack.start_slow("POST", "/slow-cycle", &cookie).await;
        // The session's idle deadline (login + 19 min) passes meanwhile.
        stack.clock.advance(11 * MINUTE);
        stack.slow.release.notify_one();
        let late = slow.await.unwrap();
        assert!(
            cookie_header(&late).is_none(),
            "named {named}: an expired session is not moved to a new ID"
        );
        assert_eq!(stack.lifetimes.len(), 1, "named {named}: only the old one");
        assert_eq!(
            reason(&stack.protected(&cookie).await),
            Some(RejectReason::IdleTimeout),
            "named {named}"
        );
    }
}

#[tokio::test]
async fn a_logout_in_flight_on_the_id_a_cycle_retired_ends_the_new_id_too() {
    let stack = Stack::new(policy(HOUR, DAY));
    let cookie = stack.login("alice", false, None).await;
    // A logout admitted on the ID, slowed down; meanwhile the ID changes.
    let slow_logout = stack.start_slow("GET", "/slow-logout", &cookie).await;
    let cycled = stack.request("POST", "/cycle", Some(&cookie)).await;
    let renewed = cookie_header(&cycled).expect("the new ID");
    assert_eq!(stack.protected(&renewed).await.status(), StatusCode::OK);
    stack.slow.release.notify_one();
    assert_eq!(slow_logout.await.unwrap().status(), StatusCode::OK);
    assert_eq!(
        stack.protected(&renewed).await.status(),
        StatusCode::UNAUTHORIZED,
        "a logout with either ID ends both"
    );
}

#[tokio::test]
async fn a_wrong_password_starts_no_session() {
    let stack = Stack::new(policy(HOUR, DAY));
    let response = stack
        .request("POST", "/login?user=alice&password=bob", None)
        .await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert!(set_cookie_named(&response, COOKIE).is_none());
    assert!(stack.lifetimes.is_empty());
}

#[tokio::test]
async fn lifetimes_kept_in_the_tower_sessions_store_give_the_same_rules() {
    let stack = Stack::sharing_the_data_store(policy(HOUR, 2 * HOUR));
    let cookie = stack.login("alice", false, None).await;
    stack.clock.advance(HOUR - TICK);
    assert_eq!(stack.protected(&cookie).await.status(), StatusCode::OK);
    stack.clock.advance(HOUR - TICK);
    assert_eq!(stack.protected(&cookie).await.status(), StatusCode::OK);
    stack.clock.advance(2 * TICK);
    let response = stack.protected(&cookie).await;
    assert_eq!(reason(&response), Some(RejectReason::AbsoluteTimeout));
    assert!(!stack.has_data(&cookie).await);

    let cookie = stack.login("bob", false, None).await;
    let response = stack.request("POST", "/logout", Some(&cookie)).await;
    assert!(removes_cookie(&response));
    assert_eq!(
        reason(&stack.protected(&cookie).await),
        Some(RejectReason::Unknown)
    );
}

#[tokio::test]
async fn a_store_failure_while_starting_a_session_is_a_503_with_no_session_left() {
    let (stack, store) = Stack::failing(policy(HOUR, DAY));
    store.set_writes_down(true);
    let response = stack
        .request("POST", "/login?user=alice&password=alice", None)
        .await;
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(reason(&response), Some(RejectReason::StoreUnavailable));
    assert!(removes_cookie(&response), "the new ID is not handed out");
    assert!(stack.lifetimes.is_empty());
    store.set_writes_down(false);
    let cookie = stack.login("alice", false, None).await;
    assert_eq!(stack.protected(&cookie).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn a_store_that_is_down_fails_closed_for_a_followed_cookie() {
    let (stack, store) = Stack::failing(policy(HOUR, DAY));
    let cookie = stack.login("alice", false, None).await;
    store.set_down(true);
    let response = stack.protected(&cookie).await;
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(
        set_cookie_named(&response, COOKIE).is_none(),
        "the cookie is kept"
    );
    store.set_down(false);
    assert_eq!(stack.protected(&cookie).await.status(), StatusCode::OK);
    assert!(stack.has_data(&cookie).await, "nothing was lost");
}

#[tokio::test]
async fn a_logout_through_the_handle_wins_over_a_later_write_in_the_same_request() {
    let stack = Stack::new(policy(HOUR, DAY));
    let cookie = stack.login("alice", false, None).await;
    let response = stack
        .request("POST", "/end-then-write", Some(&cookie))
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert!(
        removes_cookie(&response),
        "the re-saved session's cookie is not handed out"
    );
    assert!(stack.lifetimes.is_empty());
    assert!(
        !stack.has_data(&cookie).await,
        "the data saved after the logout is gone"
    );
    assert_eq!(
        reason(&stack.protected(&cookie).await),
        Some(RejectReason::Unknown)
    );
}

/// Signs in at `path` (a sign-in route of the stack) over `cookie`'s
/// session and returns the response.
async fn sign_in_over(
    stack: &Stack,
    path: &str,
    user: &str,
    remember: bool,
    cookie: &str,
) -> http::Response<axum::body::Body> {
    stack
        .request(
            "POST",
            &format!("{path}?user={user}&password={user}&remember={remember}"),
            Some(cookie),
        )
        .await
}

/// A sign-in over a sign-in, at `path`, as `second` over `first`: the
/// browser ends up on a new ID, admitted as `second`, with a lifetime
/// created at the second sign-in and remember-me as chosen then; the old
/// ID is refused and its data is gone.
async fn a_sign_in_over_a_sign_in_moves_to_a_new_id(path: &str, first: &str, second: &str) {
    // Idle 5 h: the first session is live at the second sign-in, 4 h on.
    let stack = Stack::new(policy(5 * HOUR, 8 * HOUR));
    let old = stack.login(first, false, None).await;
    stack.clock.advance(4 * HOUR);
    let response = sign_in_over(&stack, path, second, true, &old).await;
    assert_eq!(response.status(), StatusCode::OK, "{path}");
    assert!(!removes_cookie(&response), "{path}: not signed out");
    let new = cookie_header(&response).expect("a new session cookie");
    assert_ne!(new, old, "{path}: a new ID");
    let persistent = set_cookie_named(&response, COOKIE).and_then(|set| set.max_age());
    assert!(persistent.is_some(), "{path}: remember-me as chosen now");
    assert_eq!(stack.lifetimes.len(), 1, "{path}: one lifetime");

    let me = stack.protected(&new).await;
    assert_eq!(me.status(), StatusCode::OK, "{path}");
    assert_eq!(body_text(me).await, second, "{path}: as who signed in last");
    let whoami = stack.request("GET", "/whoami", Some(&new)).await;
    assert_eq!(body_text(whoami).await, second, "{path}");

    assert_eq!(
        reason(&stack.protected(&old).await),
        Some(RejectReason::Unknown),
        "{path}: the old ID is dead"
    );
    assert!(!stack.has_data(&old).await, "{path}: and its data gone");

    // Eight hours from the second sign-in, not the first.
    stack.clock.advance(8 * HOUR - 4 * HOUR - TICK);
    assert_eq!(
        stack.protected(&new).await.status(),
        StatusCode::OK,
        "{path}"
    );
    stack.clock.advance(3 * HOUR + TICK);
    assert_eq!(
        stack.protected(&new).await.status(),
        StatusCode::OK,
        "{path}"
    );
    stack.clock.advance(HOUR);
    assert_eq!(
        reason(&stack.protected(&new).await),
        Some(RejectReason::AbsoluteTimeout),
        "{path}: absolute deadline counted from the second sign-in"
    );
}

#[tokio::test]
async fn the_same_user_signing_in_again_gets_a_new_id() {
    // `/login` logs out first, as the README advises; `/login-again` does not.
    for path in ["/login", "/login-again"] {
        a_sign_in_over_a_sign_in_moves_to_a_new_id(path, "frank", "frank").await;
    }
}

#[tokio::test]
async fn another_user_signing_in_over_a_sign_in_gets_a_new_id() {
    for path in ["/login", "/login-again"] {
        a_sign_in_over_a_sign_in_moves_to_a_new_id(path, "frank", "gina").await;
    }
}

#[tokio::test]
async fn remember_me_chosen_only_on_the_second_sign_in_applies() {
    let stack = Stack::new(policy(HOUR, DAY));
    let first = stack.login("frank", false, None).await;
    let response = sign_in_over(&stack, "/login", "frank", true, &first).await;
    let second = cookie_header(&response).expect("a new ID");
    stack.clock.advance(2 * HOUR);
    assert_eq!(
        stack.protected(&second).await.status(),
        StatusCode::OK,
        "remember-me's period, not the one-hour idle timeout"
    );
    // And the other way round: remember-me on the first only.
    let first = stack.login("gina", true, None).await;
    let response = sign_in_over(&stack, "/login", "gina", false, &first).await;
    let second = cookie_header(&response).expect("a new ID");
    assert!(
        set_cookie_named(&response, COOKIE)
            .and_then(|set| set.max_age())
            .is_none(),
        "a browser-session cookie"
    );
    stack.clock.advance(HOUR);
    assert_eq!(
        reason(&stack.protected(&second).await),
        Some(RejectReason::IdleTimeout)
    );
}

#[tokio::test]
async fn a_login_through_the_handle_alone_gets_a_session_of_its_own() {
    let stack = Stack::new(policy(HOUR, DAY));
    // A visitor, then over that session: tower-sessions writes nothing.
    let response = stack
        .request("POST", "/login-handle-only?user=hana", None)
        .await;
    let first = cookie_header(&response).expect("the layer gives it an ID");
    let whoami = stack.request("GET", "/whoami", Some(&first)).await;
    assert_eq!(body_text(whoami).await, "hana");
    let response = stack
        .request("POST", "/login-handle-only?user=ines", Some(&first))
        .await;
    let second = cookie_header(&response).expect("a new ID");
    assert_ne!(second, first);
    let whoami = stack.request("GET", "/whoami", Some(&second)).await;
    assert_eq!(body_text(whoami).await, "ines");
    assert_eq!(
        reason(&stack.protected(&first).await),
        Some(RejectReason::Unknown)
    );
}

#[tokio::test]
async fn signing_in_twice_through_axum_login_alone_keeps_the_user_signed_in() {
    let stack = Stack::new(policy(HOUR, DAY));
    let response = stack
        .request("POST", "/login-axum-only?user=frank&password=frank", None)
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let first = cookie_header(&response).expect("a session cookie");
    for user in ["frank", "gina"] {
        let response = sign_in_over(&stack, "/login-axum-only", user, false, &first).await;
        assert_eq!(response.status(), StatusCode::OK);
        assert!(!removes_cookie(&response), "{user}: not signed out");
        let cookie = cookie_header(&response).unwrap_or_else(|| first.clone());
        let me = stack.protected(&cookie).await;
        assert_eq!(me.status(), StatusCode::OK, "{user}");
        assert_eq!(body_text(me).await, user);
    }
}

#[tokio::test]
async fn without_the_data_store_a_sign_in_over_a_sign_in_is_refused_before_the_answer() {
    let stack = Stack::without_data_store(policy(HOUR, DAY));
    let first = stack.login("frank", false, None).await;
    let response = sign_in_over(&stack, "/login-again", "gina", false, &first).await;
    assert_eq!(
        response.status(),
        StatusCode::CONFLICT,
        "the handler learned SessionError::NewIdNeedsDataStore"
    );
    let me = stack.protected(&first).await;
    assert_eq!(me.status(), StatusCode::OK, "nothing changed");
    assert_eq!(body_text(me).await, "frank");
}

#[tokio::test]
async fn renewing_the_id_without_a_login_keeps_the_absolute_deadline() {
    let stack = Stack::new(policy(HOUR, 8 * HOUR));
    let mut cookie = stack.login("alice", false, None).await;
    for _ in 0..15 {
        stack.clock.advance(30 * MINUTE);
        let response = stack.request("POST", "/cycle", Some(&cookie)).await;
        assert_eq!(response.status(), StatusCode::OK);
        let renewed = cookie_header(&response).expect("a new ID");
        assert_ne!(renewed, cookie);
        assert_eq!(
            reason(&stack.protected(&cookie).await),
            Some(RejectReason::Renewed),
            "the old ID is dead"
        );
        cookie = renewed;
    }
    let whoami = stack.request("GET", "/whoami", Some(&cookie)).await;
    assert_eq!(body_text(whoami).await, "alice", "the subject moved along");
    stack.clock.advance(30 * MINUTE);
    assert_eq!(
        reason(&stack.protected(&cookie).await),
        Some(RejectReason::AbsoluteTimeout),
        "eight hours from the login, however often the ID changed"
    );
}

#[tokio::test]
async fn a_percent_encoded_cookie_name_is_no_way_around_a_logout() {
    let stack = Stack::new(policy(HOUR, DAY));
    let cookie = stack.login("alice", false, None).await;
    let id = cookie.strip_prefix("id=").unwrap().to_owned();
    // tower-cookies decodes `%69d` to `id`; so does the lifetime layer.
    let encoded = format!("%69d={id}");
    assert_eq!(stack.protected(&encoded).await.status(), StatusCode::OK);
    stack.request("POST", "/logout", Some(&cookie)).await;
    for header in [encoded, format!("id={id}; %69d={id}")] {
        let response = stack.protected(&header).await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{header}");
        assert!(reason(&response).is_some(), "{header}");
    }
    assert!(stack.lifetimes.is_empty());
}

#[tokio::test]
async fn a_repeat_of_the_presented_id_is_dropped_however_the_request_spelled_it() {
    let stack = Stack::new(policy(HOUR, DAY));
    let cookie = stack.login("alice", false, None).await;
    let id = cookie.strip_prefix("id=").unwrap().to_owned();
    let percent_encoded = format!("{}%{:02X}{}", &id[..3], id.as_bytes()[3], &id[4..]);
    // tower-cookies reads each of these as the same ID, so tower-sessions
    // saves the counter under it and sets the cookie again, spelled plainly.
    for (round, header) in [
        cookie.clone(),
        format!("id={percent_encoded}"),
        format!("theme=dark; id = {id} ; lang=en"),
    ]
    .into_iter()
    .enumerate()
    {
        let response = stack.request("GET", "/count", Some(&header)).await;
        assert_eq!(response.status(), StatusCode::OK, "{header}");
        assert_eq!(
            cookie_header(&response),
            None,
            "{header}: the repeated ID is dropped"
        );
        assert!(!removes_cookie(&response), "{header}");
        assert_eq!(
            body_text(response).await,
            (round + 1).to_string(),
            "{header}"
        );
    }
    // A new ID from the inner layer is not taken for a repeat.
    let response = stack.request("POST", "/cycle", Some(&cookie)).await;
    let cycled = cookie_header(&response).expect("the new ID reaches the browser");
    assert_ne!(cycled, cookie);
    assert_eq!(stack.protected(&cycled).await.status(), StatusCode::OK);
    assert_eq!(
        stack.protected(&cookie).await.status(),
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn unicode_white_space_around_the_cookie_is_no_way_around_the_idle_deadline() {
    let stack = Stack::new(policy(HOUR, DAY));
    let cookie = stack.login("alice", false, None).await;
    let id = cookie.strip_prefix("id=").unwrap().to_owned();
    stack.clock.advance(HOUR);
    assert!(stack.has_data(&cookie).await, "not presented since");
    // tower-cookies trims names and values as `str::trim` does, so it reads
    // each of these as `id`; so must the lifetime layer.
    for (round, header) in [
        format!("\u{a0}id={id}"),
        format!("id\u{3000}={id}"),
        format!("id=\u{2003}{id}\u{85}"),
    ]
    .into_iter()
    .enumerate()
    {
        let response = stack.protected(&header).await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{header:?}");
        let expected = if round == 0 {
            RejectReason::IdleTimeout
        } else {
            RejectReason::Unknown
        };
        assert_eq!(reason(&response), Some(expected), "{header:?}");
    }
    assert!(
        !stack.has_data(&cookie).await,
        "the data went with the lifetime"
    );
}

#[tokio::test]
async fn a_logout_the_lifetime_store_cannot_record_is_a_503() {
    let (stack, store) = Stack::failing(policy(HOUR, DAY));
    let cookie = stack.login("alice", false, None).await;
    store.set_writes_down(true);
    let response = stack.request("POST", "/logout", Some(&cookie)).await;
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(reason(&response), Some(RejectReason::StoreUnavailable));
    assert!(removes_cookie(&response));
    store.set_writes_down(false);
}

#[tokio::test]
async fn a_signed_tower_sessions_cookie_is_followed_with_the_same_key() {
    use axum::routing::get;
    use tower::ServiceExt;
    use tower_session_lifetime::{
        clock::ManualClock, MemoryStore, SessionCookie, SessionLifetimeLayer,
    };
    use tower_sessions::{MemoryStore as DataStore, Session, SessionManagerLayer};

    async fn count(session: Session) -> String {
        let count = session.get::<u64>("n").await.unwrap().unwrap_or(0) + 1;
        session.insert("n", count).await.unwrap();
        count.to_string()
    }

    let key = cookie::Key::generate();
    let clock = ManualClock::new(tower_session_lifetime::time::Timestamp::from_system_time(
        std::time::SystemTime::now(),
    ));
    let lifetimes = MemoryStore::with_clock(clock.clone());
    let followed = SessionCookie::builder()
        .name("id")
        .same_site(cookie::SameSite::Strict)
        .signing_key(key.clone())
        .build()
        .unwrap();
    let app = axum::Router::new()
        .route("/", get(count))
        .layer(SessionManagerLayer::new(DataStore::default()).with_signed(key))
        .layer(
            SessionLifetimeLayer::new(lifetimes.clone())
                .with_clock(clock.clone())
                .with_policy(policy(HOUR, DAY))
                .follow_cookie(followed),
        );
    let send = |cookie: Option<String>| {
        let app = app.clone();
        async move {
            let mut request = http::Request::get("/");
            if let Some(cookie) = cookie {
                request = request.header(http::header::COOKIE, cookie);
            }
            app.oneshot(request.body(axum::body::Body::empty()).unwrap())
                .await
                .unwrap()
        }
    };
    let first = send(None).await;
    let cookie = cookie_header(&first).expect("a signed session cookie");
    assert_eq!(lifetimes.len(), 1, "the signed ID got a lifetime");
    let second = send(Some(cookie.clone())).await;
    assert_eq!(
        cookie_header(&second),
        None,
        "the repeated signed ID is dropped"
    );
    assert_eq!(
        body_text(second).await,
        "2",
        "admitted and read by tower-sessions"
    );

    // A forged signature is refused before either layer uses it.
    let first_char = if cookie.as_bytes()["id=".len()] == b'A' {
        'B'
    } else {
        'A'
    };
    let forged = format!("id={first_char}{}", &cookie["id=".len() + 1..]);
    let response = send(Some(forged)).await;
    assert_eq!(reason(&response), Some(RejectReason::Forged));

    clock.advance(HOUR);
    let response = send(Some(cookie)).await;
    assert_eq!(reason(&response), Some(RejectReason::IdleTimeout));
}

#[tokio::test]
async fn deadline_headers_follow_the_followed_session_and_leave_a_start_or_an_end_alone() {
    use tower_session_lifetime::deadline_headers::{DeadlineHeaders, IDLE_DEADLINE_HEADER};
    let stack = Stack::configured(policy(15 * MINUTE, 8 * HOUR), |layer| {
        layer.with_deadline_headers(DeadlineHeaders::new())
    });
    // The login's response starts the session through tower-sessions: the
    // handle knows no session yet, so no deadline is reported.
    let response = stack
        .request("POST", "/login?user=alice&password=alice", None)
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert!(response.headers().get(IDLE_DEADLINE_HEADER).is_none());
    let cookie = cookie_header(&response).expect("a session cookie");

    stack.clock.advance(MINUTE);
    let response = stack.protected(&cookie).await;
    assert_eq!(response.status(), StatusCode::OK);
    let idle: u64 = response.headers()[IDLE_DEADLINE_HEADER]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    let expected = stack.clock.now().saturating_add(15 * MINUTE).as_unix_secs();
    assert_eq!(idle, expected, "the followed session's idle deadline");

    // axum-login's logout ends the session through tower-sessions: the
    // response reports no deadline of the ended session.
    let response = stack.request("POST", "/logout", Some(&cookie)).await;
    assert!(removes_cookie(&response));
    assert!(response.headers().get(IDLE_DEADLINE_HEADER).is_none());
}

#[tokio::test]
async fn a_followed_sessions_start_renewal_and_logout_are_counted_with_their_reasons() {
    use tower_session_lifetime::observe::{EndReason, SessionMetrics};
    let metrics = SessionMetrics::new();
    let stack = Stack::configured(policy(15 * MINUTE, 8 * HOUR), |layer| {
        layer.with_metrics(metrics.clone())
    });
    let cookie = stack.login("alice", false, None).await;
    assert_eq!(metrics.snapshot().started, 1, "the login started a session");

    // tower-sessions' `cycle_id` on a named session: a renewal.
    let cycled = stack.request("POST", "/cycle", Some(&cookie)).await;
    let cookie = cookie_header(&cycled).expect("a new ID");
    let counted = metrics.snapshot();
    assert_eq!(counted.renewed, 1);
    assert_eq!(counted.started, 1, "a renewal is not a new session");
    assert_eq!(counted.ended(EndReason::Replaced), 0);

    let logout = stack.request("POST", "/logout", Some(&cookie)).await;
    assert!(removes_cookie(&logout));
    let counted = metrics.snapshot();
    assert_eq!(counted.ended(EndReason::Logout), 1);
    assert_eq!(counted.admitted, 2, "the cycle and the logout");
}
