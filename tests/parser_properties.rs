//! Properties of the `Cookie` header parser, through the whole layer, for
//! unsigned and signed session cookies: any bytes get a clean answer; the
//! session cookie is found among any others; twice is refused; a signed
//! value with one byte changed is refused as forged without asking the store.
//!
//! (The logout redirect allow-list has its own properties, in
//! `redirect_allow_list.rs`.)
#![cfg(feature = "axum")]

mod common;

use axum::body::Body;
use common::{body_text, set_cookie, TestApp};
use http::{header, HeaderValue, Request, StatusCode};
use proptest::prelude::*;
use tower_session_lifetime::cookie::Key;
use tower_session_lifetime::{Policy, RejectReason, SessionCookie};

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
}

/// The test app, its session cookie signed or not.
fn app(signed: bool) -> TestApp {
    if !signed {
        return TestApp::new(Policy::default());
    }
    let cookie = SessionCookie::builder()
        .signing_key(Key::from(&[7u8; 64]))
        .build()
        .unwrap();
    TestApp::configured(move |layer| layer.with_cookie(cookie))
}

/// `GET /me` with each of `headers` that is a valid header value as a
/// `Cookie` header.
async fn me_with(app: &TestApp, headers: &[Vec<u8>]) -> http::Response<Body> {
    let mut request = Request::get("/me").body(Body::empty()).unwrap();
    for raw in headers {
        if let Ok(value) = HeaderValue::from_bytes(raw) {
            request.headers_mut().append(header::COOKIE, value);
        }
    }
    app.send(request).await
}

/// A piece of a `Cookie` header: bytes, or (`None`) the value of the live
/// session, known only once the case has logged in.
type Piece = Option<Vec<u8>>;

/// Header pieces: random bytes mixed with what cookie headers are made of
/// (the session cookie's name, plain and percent-encoded, separators,
/// quotes, ID- and signature-shaped values, a live session's value), so
/// that every branch of the parser comes up.
fn header_pieces() -> impl Strategy<Value = Vec<Piece>> {
    let piece = prop_oneof![
        1 => proptest::collection::vec(any::<u8>(), 0..24).prop_map(Some),
        2 => "[ -~]{0,12}".prop_map(|text| Some(text.into_bytes())),
        4 => Just(None),
        4 => Just(Some(b"session=".to_vec())),
        1 => Just(Some(b"session".to_vec())),
        1 => Just(Some(b"%73ession=".to_vec())),
        1 => Just(Some(b"Session=".to_vec())),
        1 => Just(Some(b"=".to_vec())),
        4 => Just(Some(b"; ".to_vec())),
        1 => Just(Some(b";".to_vec())),
        1 => Just(Some(b" ".to_vec())),
        1 => Just(Some(b"\t".to_vec())),
        1 => Just(Some(b"\"".to_vec())),
        1 => Just(Some(b"%".to_vec())),
        1 => Just(Some(b"AAAAAAAAAAAAAAAAAAAAAA".to_vec())),
        1 => Just(Some(b"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=".to_vec())),
        1 => Just(Some(b"\xff\xfe".to_vec())),
    ];
    proptest::collection::vec(piece, 0..12)
}

/// The header the pieces make, with `live` for the live session's value.
fn assembled(pieces: &[Piece], live: &str) -> Vec<u8> {
    pieces
        .iter()
        .flat_map(|piece| piece.as_deref().unwrap_or(live.as_bytes()))
        .copied()
        .collect()
}

/// A cookie name other than the session cookie's (and not one that
/// percent-decodes to it).
fn other_name() -> impl Strategy<Value = String> {
    "[A-Za-z0-9!#$&'*+.^_`|~-]{1,12}"
        .prop_filter("not the session cookie", |name| name != "session")
}

/// A well-formed cookie value (RFC 6265 `cookie-octet`s, perhaps quoted).
fn other_value() -> impl Strategy<Value = String> {
    (r"[!#-+\--:<-\[\]-~]{0,30}", any::<bool>()).prop_map(|(value, quoted)| {
        if quoted {
            format!("\"{value}\"")
        } else {
            value
        }
    })
}

/// Other cookies, well formed, spread over zero to three headers.
fn other_cookies() -> impl Strategy<Value = Vec<Vec<(String, String)>>> {
    proptest::collection::vec(
        proptest::collection::vec((other_name(), other_value()), 0..8),
        0..3,
    )
}

fn joined(pairs: &[(String, String)]) -> String {
    pairs
        .iter()
        .map(|(name, value)| format!("{name}={value}"))
        .collect::<Vec<_>>()
        .join("; ")
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Any bytes, in one to four headers, signed or not: no panic; either
    /// the handler runs (as the session's user, or as a visitor) or the
    /// layer answers `401` with a reason, without running the handler or
    /// writing to the store.
    #[test]
    fn any_cookie_headers_get_a_clean_answer(
        signed in any::<bool>(),
        headers in proptest::collection::vec(header_pieces(), 1..5),
    ) {
        runtime().block_on(async {
            let app = app(signed);
            let live = app.login("alice", false).await;
            let live = live.split_once('=').unwrap().1;
            let headers: Vec<Vec<u8>> = headers.iter().map(|pieces| assembled(pieces, live)).collect();

            let (writes, calls) = (app.store.writes(), app.inner_calls());
            let response = me_with(&app, &headers).await;
            let status = response.status();
            match response.extensions().get::<RejectReason>().copied() {
                Some(reason) => {
                    prop_assert_eq!(status, StatusCode::UNAUTHORIZED);
                    prop_assert!(
                        matches!(
                            reason,
                            RejectReason::Malformed
                                | RejectReason::Forged
                                | RejectReason::Duplicated
                                | RejectReason::Unknown
                        ),
                        "{:?}", reason
                    );
                    prop_assert_eq!(app.inner_calls(), calls, "the handler did not run");
                    prop_assert_eq!(app.store.writes(), writes, "nothing written");
                }
                None => {
                    prop_assert_eq!(app.inner_calls(), calls + 1, "the handler ran");
                    match status {
                        StatusCode::OK => prop_assert_eq!(body_text(response).await, "alice"),
                        // `/me` without a session: a visitor.
                        StatusCode::UNAUTHORIZED => {}
                        other => prop_assert!(false, "status {}", other),
                    }
                }
            }
            Ok(())
        })?;
    }

    /// Pure noise, with no session at all: a visitor or a `401`, and the
    /// store is never written.
    #[test]
    fn any_bytes_without_a_session_write_nothing(
        signed in any::<bool>(),
        headers in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..200), 1..4),
    ) {
        runtime().block_on(async {
            let app = app(signed);
            let response = me_with(&app, &headers).await;
            prop_assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
            prop_assert_eq!(app.store.writes(), 0);
            Ok(())
        })?;
    }

    /// A live session's cookie among any other well-formed cookies, in the
    /// same header or others, is admitted.
    #[test]
    fn the_session_cookie_is_found_among_others(
        signed in any::<bool>(),
        before in other_cookies(),
        same_header in other_cookies(),
        after in other_cookies(),
    ) {
        runtime().block_on(async {
            let app = app(signed);
            let session = app.login("alice", false).await;
            let mut headers: Vec<String> = before.iter().map(|pairs| joined(pairs)).collect();
            let middle = same_header.concat();
            let (first, second) = middle.split_at(middle.len() / 2);
            headers.push(
                [joined(first), session, joined(second)]
                    .into_iter()
                    .filter(|part| !part.is_empty())
                    .collect::<Vec<_>>()
                    .join("; "),
            );
            headers.extend(after.iter().map(|pairs| joined(pairs)));
            let headers: Vec<Vec<u8>> = headers.into_iter().map(String::into_bytes).collect();

            let response = me_with(&app, &headers).await;
            prop_assert_eq!(response.extensions().get::<RejectReason>(), None);
            prop_assert_eq!(response.status(), StatusCode::OK);
            prop_assert_eq!(body_text(response).await, "alice");
            Ok(())
        })?;
    }

    /// The session cookie twice (the same value or another, under its name
    /// or percent-encoded, in one header or two, among other cookies) is
    /// refused as duplicated, and the store is not asked.
    #[test]
    fn the_session_cookie_twice_is_refused(
        signed in any::<bool>(),
        others in other_cookies(),
        second_value in prop_oneof![Just(None), other_value().prop_map(Some)],
        encoded_name in any::<bool>(),
        separate_header in any::<bool>(),
    ) {
        runtime().block_on(async {
            let app = app(signed);
            let session = app.login("alice", false).await;
            let (name, value) = session.split_once('=').unwrap();
            let second = format!(
                "{}={}",
                if encoded_name { "%73ession" } else { name },
                second_value.as_deref().unwrap_or(value),
            );
            let mut headers: Vec<String> = others.iter().map(|pairs| joined(pairs)).collect();
            if separate_header {
                headers.push(session.clone());
                headers.push(second);
            } else {
                headers.push(format!("{session}; {second}"));
            }
            let headers: Vec<Vec<u8>> = headers.into_iter().map(String::into_bytes).collect();

            let (loads, writes, calls) = (app.store.loads(), app.store.writes(), app.inner_calls());
            let response = me_with(&app, &headers).await;
            prop_assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
            prop_assert_eq!(
                response.extensions().get::<RejectReason>(),
                Some(&RejectReason::Duplicated)
            );
            prop_assert_eq!(app.store.loads(), loads);
            prop_assert_eq!(app.store.writes(), writes);
            prop_assert_eq!(app.inner_calls(), calls);
            Ok(())
        })?;
    }

    /// A signed cookie with any one byte changed (any position, any other
    /// value that still makes a valid header) is refused as forged, without
    /// a store lookup or write, and its cookie is cleared; the session
    /// itself lives on.
    #[test]
    fn a_signed_value_with_one_byte_changed_is_forged(
        position in any::<prop::sample::Index>(),
        flip in 1u8..=255,
    ) {
        runtime().block_on(async {
            let app = app(true);
            let session = app.login("alice", false).await;
            let (name, value) = session.split_once('=').unwrap();
            let mut bytes = value.as_bytes().to_vec();
            let position = position.index(bytes.len());
            bytes[position] ^= flip;
            let mut tampered = format!("{name}=").into_bytes();
            tampered.extend_from_slice(&bytes);
            prop_assume!(HeaderValue::from_bytes(&tampered).is_ok());

            let (loads, writes, calls) = (app.store.loads(), app.store.writes(), app.inner_calls());
            let response = me_with(&app, &[tampered]).await;
            prop_assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
            prop_assert_eq!(
                response.extensions().get::<RejectReason>(),
                Some(&RejectReason::Forged)
            );
            prop_assert_eq!(app.store.loads(), loads, "no lookup");
            prop_assert_eq!(app.store.writes(), writes, "no write");
            prop_assert_eq!(app.inner_calls(), calls);
            prop_assert!(set_cookie(&response).is_some_and(|cookie| cookie.value().is_empty()));

            let untouched = app.me(&session).await;
            prop_assert_eq!(untouched.status(), StatusCode::OK);
            Ok(())
        })?;
    }
}
