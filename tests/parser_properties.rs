//! Properties of what parses untrusted input: the `Cookie` header (through
//! the layer, signed and unsigned) and the logout redirect allow-list.

mod common;

use axum::body::Body;
use common::{set_cookie, TestApp};
use http::{header, HeaderValue, Request, StatusCode};
use proptest::prelude::*;
use tower_session_lifetime::cookie::Key;
use tower_session_lifetime::{LogoutRedirects, Policy, RejectReason, SessionCookie};

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
}

fn signed_app() -> TestApp {
    let cookie = SessionCookie::builder()
        .signing_key(Key::from(&[7u8; 64]))
        .build()
        .unwrap();
    TestApp::configured(move |layer| layer.with_cookie(cookie))
}

/// `/me` with each of `headers` as a `Cookie` header (those that are valid
/// header values).
async fn me_with(app: &TestApp, headers: &[Vec<u8>]) -> http::Response<Body> {
    let mut request = Request::get("/me").body(Body::empty()).unwrap();
    for raw in headers {
        if let Ok(value) = HeaderValue::from_bytes(raw) {
            request.headers_mut().append(header::COOKIE, value);
        }
    }
    app.send(request).await
}

/// Cookie pairs of other names, well formed.
fn other_cookies() -> impl Strategy<Value = Vec<(String, String)>> {
    proptest::collection::vec(("[a-rt-z][a-z0-9_]{0,8}", "[A-Za-z0-9_-]{0,30}"), 0..20)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Any bytes, in one to four headers, signed or not: the layer answers
    /// `401` (or lets a visitor through) and never writes to the store.
    #[test]
    fn any_cookie_header_gets_a_clean_answer(
        headers in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..200), 1..4),
        signed in any::<bool>(),
    ) {
        runtime().block_on(async {
            let app = if signed { signed_app() } else { TestApp::new(Policy::default()) };
            let response = me_with(&app, &headers).await;
            prop_assert!(
                response.status() == StatusCode::UNAUTHORIZED,
                "status {}", response.status()
            );
            prop_assert_eq!(app.store.writes(), 0);
            Ok(())
        })?;
    }

    /// A live session's cookie among any other well-formed cookies is
    /// admitted; the same cookie twice is refused as duplicated.
    #[test]
    fn the_session_cookie_is_found_among_others(
        before in other_cookies(),
        after in other_cookies(),
        twice in any::<bool>(),
    ) {
        runtime().block_on(async {
            let app = TestApp::new(Policy::default());
            let session = app.login("alice", false).await;
            let mut pairs: Vec<String> = before.iter().map(|(n, v)| format!("{n}={v}")).collect();
            pairs.push(session.clone());
            if twice {
                pairs.push(session.clone());
            }
            pairs.extend(after.iter().map(|(n, v)| format!("{n}={v}")));
            let response = me_with(&app, &[pairs.join("; ").into_bytes()]).await;
            if twice {
                prop_assert_eq!(
                    response.extensions().get::<RejectReason>(),
                    Some(&RejectReason::Duplicated)
                );
            } else {
                prop_assert_eq!(response.status(), StatusCode::OK);
            }
            Ok(())
        })?;
    }

    /// A signed cookie with any one character changed is refused as forged
    /// (or malformed) without asking the store.
    #[test]
    fn a_tampered_signed_cookie_never_reaches_the_store(position in 0usize..66, replacement in "[A-Za-z0-9+/=_-]") {
        runtime().block_on(async {
            let app = signed_app();
            let session = app.login("alice", false).await;
            let (name, value) = session.split_once('=').unwrap();
            let mut bytes = value.as_bytes().to_vec();
            let position = position % bytes.len();
            let replacement = replacement.as_bytes()[0];
            prop_assume!(bytes[position] != replacement);
            bytes[position] = replacement;
            let tampered = format!("{name}={}", String::from_utf8(bytes).unwrap());
            let loads = app.store.loads();
            let response = me_with(&app, &[tampered.into_bytes()]).await;
            prop_assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
            let reason = response.extensions().get::<RejectReason>().copied();
            prop_assert!(matches!(reason, Some(RejectReason::Forged | RejectReason::Malformed)), "{:?}", reason);
            prop_assert_eq!(app.store.loads(), loads);
            prop_assert!(set_cookie(&response).is_some_and(|c| c.value().is_empty()));
            Ok(())
        })?;
    }

    /// The allow-list: only the listed targets are allowed, whatever is
    /// appended or prepended to them, and the target is always a listed one.
    #[test]
    fn only_listed_targets_are_allowed(prefix in ".{0,8}", suffix in ".{0,8}", any_target in ".{0,40}") {
        let listed = ["/goodbye", "https://app.example/signed-out"];
        let redirects = LogoutRedirects::new("/").unwrap()
            .allow(listed[0]).unwrap()
            .allow(listed[1]).unwrap();
        for target in listed {
            prop_assert!(redirects.is_allowed(target));
            let dressed = format!("{prefix}{target}{suffix}");
            let allowed = redirects.is_allowed(&dressed);
            prop_assert!(!allowed || listed.contains(&redirects.target(Some(&dressed)).to_str().unwrap()));
            if !prefix.is_empty() && target.starts_with('/') {
                prop_assert!(!allowed, "{} allowed", dressed);
            }
        }
        let location = redirects.target(Some(&any_target)).to_str().unwrap().to_owned();
        prop_assert!(location == "/" || listed.contains(&location.as_str()));
        for bad in ["\\", "//", "\u{0}", " ", "?", "#", "@", "javascript:"] {
            let tainted = format!("{any_target}{bad}{suffix}");
            if tainted.contains(['\\', '\u{0}', ' ', '?', '#', '@']) {
                prop_assert!(!redirects.is_allowed(&tainted), "{:?} allowed", tainted);
            }
        }
    }
}
