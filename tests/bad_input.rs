//! Malformed, forged, oversized and duplicated cookies: each gets a clean
//! answer, and none of them writes to the store.
#![cfg(feature = "axum")]

mod common;

use axum::body::Body;
use common::*;
use http::{header, HeaderValue, Request, StatusCode};
use tower_session_lifetime::cookie::{Cookie, CookieJar, Key};
use tower_session_lifetime::{
    id::SessionId, rejection::RejectReason, session_cookie::CookieConfigError, Policy,
    SessionCookie,
};

/// Sends `cookie_headers` (each a raw `Cookie` header) to `/me`.
async fn me_with_raw(app: &TestApp, cookie_headers: &[&[u8]]) -> http::Response<Body> {
    let mut request = Request::builder().uri("/me").body(Body::empty()).unwrap();
    for raw in cookie_headers {
        request
            .headers_mut()
            .append(header::COOKIE, HeaderValue::from_bytes(raw).unwrap());
    }
    app.send(request).await
}

struct Case {
    name: &'static str,
    headers: Vec<Vec<u8>>,
    reason: RejectReason,
    /// Whether the store may be asked (a well-formed but unknown ID).
    may_load: bool,
}

#[tokio::test]
async fn bad_cookies_are_refused_cleanly_without_store_writes() {
    let app = TestApp::new(Policy::default());
    let live = app.login("alice", false).await;
    let live_id = live.strip_prefix("session=").unwrap().to_owned();
    let unknown = SessionId::generate().unwrap().encode();
    let cases = vec![
        Case {
            name: "empty value",
            headers: vec![b"session=".to_vec()],
            reason: RejectReason::Malformed,
            may_load: false,
        },
        Case {
            name: "non-UTF-8 value",
            headers: vec![b"session=\xff\xfe\xfd\xfc\xfb\xfa\xf9\xf8\xf7\xf6\xf5\xf4\xf3\xf2\xf1\xf0\xef\xee\xed\xec\xeb\xea".to_vec()],
            reason: RejectReason::Malformed,
            may_load: false,
        },
        Case {
            name: "8 KiB value",
            headers: vec![format!("session={}", "A".repeat(8 * 1024)).into_bytes()],
            reason: RejectReason::Malformed,
            may_load: false,
        },
        Case {
            name: "64 KiB header",
            headers: vec![format!("pad={}; session={}", "x".repeat(64 * 1024), "B".repeat(30)).into_bytes()],
            reason: RejectReason::Malformed,
            may_load: false,
        },
        Case {
            name: "wrong length",
            headers: vec![format!("session={}", &live_id[..21]).into_bytes()],
            reason: RejectReason::Malformed,
            may_load: false,
        },
        Case {
            name: "wrong alphabet",
            headers: vec![format!("session={}+", &live_id[..21]).into_bytes()],
            reason: RejectReason::Malformed,
            may_load: false,
        },
        Case {
            name: "unbalanced quote",
            headers: vec![format!("session=\"{live_id}").into_bytes()],
            reason: RejectReason::Malformed,
            may_load: false,
        },
        Case {
            name: "duplicated under a percent-encoded name",
            headers: vec![format!("session={live_id}; %73ession={unknown}").into_bytes()],
            reason: RejectReason::Duplicated,
            may_load: false,
        },
        Case {
            name: "duplicated in one header",
            headers: vec![format!("session={live_id}; session={live_id}").into_bytes()],
            reason: RejectReason::Duplicated,
            may_load: false,
        },
        Case {
            name: "duplicated across headers",
            headers: vec![
                format!("session={live_id}").into_bytes(),
                format!("session={unknown}").into_bytes(),
            ],
            reason: RejectReason::Duplicated,
            may_load: false,
        },
        Case {
            name: "well-formed but unknown",
            headers: vec![format!("session={unknown}").into_bytes()],
            reason: RejectReason::Unknown,
            may_load: true,
        },
    ];
    for case in cases {
        let (loads, writes, calls) = (app.store.loads(), app.store.writes(), app.inner_calls());
        let raw: Vec<&[u8]> = case.headers.iter().map(Vec::as_slice).collect();
        let response = me_with_raw(&app, &raw).await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{}", case.name);
        assert_eq!(
            response.extensions().get::<RejectReason>(),
            Some(&case.reason),
            "{}",
            case.name
        );
        assert!(clears_cookie(&response), "{}: cookie cleared", case.name);
        assert_eq!(app.store.writes(), writes, "{}: no store write", case.name);
        assert_eq!(app.inner_calls(), calls, "{}: handler not run", case.name);
        if !case.may_load {
            assert_eq!(app.store.loads(), loads, "{}: store not asked", case.name);
        }
    }
    // The live session was not harmed by any of it.
    assert_eq!(app.me(&live).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn the_cookie_is_read_as_the_cookie_crate_reads_it() {
    // Quoted, percent-encoded name or value: what tower-cookies would read
    // as this cookie, the layer reads as it too, so nothing reaches an inner
    // layer unchecked.
    let app = TestApp::new(Policy::default());
    let live = app.login("alice", false).await;
    let id = live.strip_prefix("session=").unwrap();
    for header in [
        format!("session=\"{id}\""),
        format!("%73ession={id}"),
        format!("session={}%{:02X}", &id[..21], id.as_bytes()[21]),
    ] {
        let response = app.me(&header).await;
        assert_eq!(response.status(), StatusCode::OK, "{header}");
    }
    app.request("POST", "/logout", Some(&live)).await;
    let response = app.me(&format!("%73ession={id}")).await;
    assert_eq!(
        response.extensions().get::<RejectReason>(),
        Some(&RejectReason::Unknown),
        "an encoded name is no way around a logout"
    );
}

#[tokio::test]
async fn the_session_cookie_is_found_among_hundreds_of_others_and_odd_bytes() {
    let app = TestApp::new(Policy::default());
    let live = app.login("alice", false).await;
    let mut header = String::new();
    for i in 0..300 {
        header.push_str(&format!("other{i}=value{i}; "));
    }
    header.push_str(&live);
    let response = me_with_raw(&app, &[header.as_bytes()]).await;
    assert_eq!(response.status(), StatusCode::OK);

    let mut odd = b"junk=\xff\xfe; ".to_vec();
    odd.extend_from_slice(live.as_bytes());
    assert_eq!(me_with_raw(&app, &[&odd]).await.status(), StatusCode::OK);

    let spaced = format!("  {live}  ;;; =; novalue");
    assert_eq!(
        me_with_raw(&app, &[spaced.as_bytes()]).await.status(),
        StatusCode::OK
    );
}

fn signed_app(key: &Key) -> TestApp {
    let cookie = SessionCookie::builder()
        .signing_key(key.clone())
        .build()
        .unwrap();
    TestApp::configured(move |layer| layer.with_cookie(cookie))
}

#[tokio::test]
async fn signed_cookies_verify_and_forgeries_never_reach_the_store() {
    let key = Key::generate();
    let app = signed_app(&key);
    let live = app.login("alice", false).await;
    assert_eq!(app.me(&live).await.status(), StatusCode::OK);

    let value = live.strip_prefix("session=").unwrap();
    assert_eq!(value.len(), 44 + 22);
    // The value is in the `cookie` crate's signed format.
    let verified = CookieJar::new()
        .signed(&key)
        .verify(Cookie::new("session", value.to_owned()))
        .expect("verifies with the cookie crate");
    assert!(SessionId::parse(verified.value()).is_some());

    let mut tampered_signature = value.to_owned().into_bytes();
    tampered_signature[3] = if tampered_signature[3] == b'A' {
        b'B'
    } else {
        b'A'
    };
    let mut tampered_id = value.to_owned().into_bytes();
    let last = tampered_id.len() - 2;
    tampered_id[last] = if tampered_id[last] == b'A' {
        b'B'
    } else {
        b'A'
    };
    let other_key = signed_app(&Key::generate());
    let foreign = other_key.login("mallory", false).await;
    let forgeries = [
        format!("session={}", String::from_utf8(tampered_signature).unwrap()),
        format!("session={}", String::from_utf8(tampered_id).unwrap()),
        format!("session={}", verified.value()),
        foreign,
    ];
    for forged in forgeries {
        let (loads, writes) = (app.store.loads(), app.store.writes());
        let response = app.me(&forged).await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{forged}");
        assert_eq!(
            response.extensions().get::<RejectReason>(),
            Some(&RejectReason::Forged)
        );
        assert_eq!(app.store.loads(), loads, "forgery never reaches the store");
        assert_eq!(app.store.writes(), writes);
    }
    assert_eq!(app.me(&live).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn host_prefixed_names_work_and_are_checked() {
    let cookie = SessionCookie::builder().name("__Host-sid").build().unwrap();
    let app = TestApp::configured(move |layer| layer.with_cookie(cookie));
    let response = app.request("POST", "/login?user=alice", None).await;
    let raw = response.headers()[header::SET_COOKIE].to_str().unwrap();
    assert!(raw.starts_with("__Host-sid="), "{raw}");
    assert!(raw.contains("Secure") && raw.contains("Path=/") && !raw.contains("Domain"));
    let sent = raw.split(';').next().unwrap().to_owned();
    assert_eq!(app.me(&sent).await.status(), StatusCode::OK);

    let refused = [
        SessionCookie::builder()
            .name("__Host-sid")
            .secure(false)
            .build(),
        SessionCookie::builder()
            .name("__Host-sid")
            .path("/app")
            .build(),
        SessionCookie::builder()
            .name("__Host-sid")
            .domain("example.com")
            .build(),
    ];
    for result in refused {
        assert_eq!(result.unwrap_err(), CookieConfigError::HostPrefix);
    }
    assert_eq!(
        SessionCookie::builder()
            .name("__Secure-sid")
            .secure(false)
            .build()
            .unwrap_err(),
        CookieConfigError::SecurePrefix
    );
    assert_eq!(
        SessionCookie::builder()
            .same_site(cookie::SameSite::None)
            .secure(false)
            .build()
            .unwrap_err(),
        CookieConfigError::SameSiteNoneWithoutSecure
    );
    for name in ["", "a b", "a;b", "a=b", "é"] {
        assert!(matches!(
            SessionCookie::builder().name(name).build(),
            Err(CookieConfigError::InvalidName(_))
        ));
    }
    assert!(matches!(
        SessionCookie::builder().path("app").build(),
        Err(CookieConfigError::InvalidPath(_))
    ));
}

#[tokio::test]
async fn a_subject_longer_than_the_bound_is_refused_at_login() {
    let app = TestApp::new(Policy::default());
    let long = "a".repeat(tower_session_lifetime::record::MAX_SUBJECT_LEN + 1);
    let response = app
        .request("POST", &format!("/login?user={long}"), None)
        .await;
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(app.store.memory.is_empty());
}

/// Replays: an ID after its logout, after its renewal's grace period, after
/// its expiry. Each is refused with its reason, the handler is not run, and
/// nothing is written, but for the one deletion of the expired record the
/// design asks for (a second replay writes nothing).
///
/// The renewed ID is replayed once its grace period is over and before any
/// other session is created: a creation sweeps a shard of the memory store,
/// and the shard that holds the old ID's expired pointer (which gives the
/// reason `Renewed`) is the one swept only by chance.
#[tokio::test]
async fn replayed_ids_are_refused_without_store_writes() {
    let app = TestApp::new(
        Policy::builder()
            .idle_timeout(HOUR)
            .renewal_interval(10 * MINUTE)
            .renewal_grace(5 * SECOND)
            .build()
            .unwrap(),
    );
    let logged_out = app.login("alice", false).await;
    assert_eq!(
        app.request("POST", "/logout", Some(&logged_out))
            .await
            .status(),
        StatusCode::OK
    );
    let renewed = app.login("bob", false).await;
    app.advance(10 * MINUTE);
    let response = app.me(&renewed).await;
    assert!(set_cookie(&response).is_some(), "renewed");
    app.advance(5 * SECOND);
    replays_are_refused(&app, "after renewal grace", &renewed, RejectReason::Renewed).await;
    let expired = app.login("carol", false).await;
    app.advance(HOUR);
    // The expired record is deleted by the first replay.
    let first = app.me(&expired).await;
    assert_eq!(
        first.extensions().get::<RejectReason>(),
        Some(&RejectReason::IdleTimeout)
    );
    replays_are_refused(&app, "after logout", &logged_out, RejectReason::Unknown).await;
    replays_are_refused(
        &app,
        "after expiry (again)",
        &expired,
        RejectReason::Unknown,
    )
    .await;
}

/// Three replays of `cookie`: each refused for `reason`, its cookie
/// cleared, the handler not run and nothing written to the store.
async fn replays_are_refused(app: &TestApp, name: &str, cookie: &str, reason: RejectReason) {
    for _ in 0..3 {
        let (writes, calls) = (app.store.writes(), app.inner_calls());
        let response = app.me(cookie).await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{name}");
        assert_eq!(
            response.extensions().get::<RejectReason>(),
            Some(&reason),
            "{name}"
        );
        assert!(clears_cookie(&response), "{name}: cookie cleared");
        assert_eq!(app.store.writes(), writes, "{name}: no store write");
        assert_eq!(app.inner_calls(), calls, "{name}: handler not run");
    }
}
