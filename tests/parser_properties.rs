//! Properties of the `Cookie` header parser, through the whole layer, for
//! unsigned and signed session cookies: any bytes get a clean answer; the
//! session cookie is found among any others; twice is refused; a signed
//! value with one byte changed is refused as forged without asking the store;
//! headers spelled as browsers, proxies and routers spell them are read as
//! the `cookie` crate reads them (which is how tower-cookies, and so
//! tower-sessions, read them).
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
use tower_session_lifetime::{id::SessionId, rejection::RejectReason, Policy, SessionCookie};

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

/// What the layer made of a request's session cookie, as the response to
/// `GET /me` shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Reading {
    /// No session cookie: the handler ran as a visitor.
    Absent,
    /// Admitted as the session of this subject.
    Admitted(String),
    /// Refused before the handler ran.
    Refused(RejectReason),
}

async fn reading(response: http::Response<Body>) -> Reading {
    match response.extensions().get::<RejectReason>().copied() {
        Some(reason) => Reading::Refused(reason),
        None if response.status() == StatusCode::OK => Reading::Admitted(body_text(response).await),
        None => Reading::Absent,
    }
}

/// The reading the `cookie` crate gives `headers` (each a `Cookie` header),
/// for a layer whose live sessions have the values `live` (value, subject).
///
/// Every `name=value` pair is parsed twice, with `Cookie::split_parse_encoded`
/// (names and values percent-decoded, as tower-cookies reads them) and
/// `Cookie::split_parse` (as sent). The session cookie is every pair whose
/// decoded name is `session`. Two decisions are the layer's own, for a
/// security layer, and are spelled out here rather than left out of the
/// generated cases:
///
/// - quotes are the value's syntax only when they were sent as quotes:
///   `"ID"` is `ID` (the `cookie` crate's `value_trimmed`), but `%22ID%22` is
///   `"ID"`, not an ID, and is refused as malformed. (tower-sessions reads
///   `value()`, quotes kept, so it makes no session of either.)
/// - a pair named `session` whose value does not decode to UTF-8 (`%FF`)
///   is an error the `cookie` crate skips; the layer counts it as a session
///   cookie and refuses it (malformed, or duplicated beside another), rather
///   than ignore a session cookie it cannot read.
fn cookie_crate_reading(headers: &[String], live: &[(String, String)], signed: bool) -> Reading {
    let mut values: Vec<Option<String>> = Vec::new();
    for header in headers {
        let raw = cookie::Cookie::split_parse(header.as_str());
        let decoded = cookie::Cookie::split_parse_encoded(header.as_str());
        for (raw, decoded) in raw.zip(decoded) {
            match (raw, decoded) {
                (Ok(raw), Ok(decoded)) if decoded.name() == "session" => {
                    let sent = raw.value();
                    let quoted = sent.len() >= 2 && sent.starts_with('"') && sent.ends_with('"');
                    let value = if quoted {
                        decoded.value_trimmed()
                    } else {
                        decoded.value()
                    };
                    values.push(Some(value.to_owned()));
                }
                (Ok(raw), Err(cookie::ParseError::Utf8Error(_))) => {
                    let name = cookie::Cookie::parse_encoded(format!("{}=", raw.name()));
                    if name.is_ok_and(|name| name.name() == "session") {
                        values.push(None);
                    }
                }
                _ => {}
            }
        }
    }
    match values.as_slice() {
        [] => Reading::Absent,
        [Some(value)] => match live.iter().find(|(live, _)| live == value) {
            Some((_, subject)) => Reading::Admitted(subject.clone()),
            None if signed => Reading::Refused(RejectReason::Forged),
            None if SessionId::parse(value).is_some() => Reading::Refused(RejectReason::Unknown),
            None => Reading::Refused(RejectReason::Malformed),
        },
        [None] if signed => Reading::Refused(RejectReason::Forged),
        [None] => Reading::Refused(RejectReason::Malformed),
        _ => Reading::Refused(RejectReason::Duplicated),
    }
}

/// `text` with each byte percent-encoded where `mask` says (cycling), in
/// upper- or lower-case hex.
fn percent_encoded(text: &str, mask: u32, lower: bool) -> String {
    text.bytes()
        .enumerate()
        .map(|(index, byte)| {
            if mask >> (index % 32) & 1 == 1 {
                if lower {
                    format!("%{byte:02x}")
                } else {
                    format!("%{byte:02X}")
                }
            } else {
                char::from(byte).to_string()
            }
        })
        .collect()
}

/// White space as senders put it around names and values: none, mostly;
/// spaces and tabs; and, from a client that wants to slip a cookie past the
/// layer, the Unicode white space `str::trim` also removes (and U+FEFF,
/// which it does not).
fn padding() -> impl Strategy<Value = &'static str> {
    prop_oneof![
        12 => Just(""),
        2 => Just(" "),
        1 => Just("  "),
        1 => Just("\t"),
        1 => Just("\u{a0}"),
        1 => Just("\u{3000}"),
        1 => Just("\u{2003}"),
        1 => Just("\u{85}"),
        1 => Just("\u{feff}"),
    ]
}

/// How the session cookie's name is spelled: as is, percent-encoded in
/// part, or names close to it that are not it.
fn session_name() -> impl Strategy<Value = String> {
    prop_oneof![
        8 => Just("session".to_owned()),
        3 => (1u32..128, any::<bool>()).prop_map(|(mask, lower)| percent_encoded("session", mask, lower)),
        1 => Just("Session".to_owned()),
        1 => Just("%53ession".to_owned()),
        1 => Just("%2573ession".to_owned()),
        1 => Just("sessionx".to_owned()),
        1 => Just("session_".to_owned()),
        1 => Just("xsession".to_owned()),
        1 => Just("ses sion".to_owned()),
    ]
}

/// How a value is spelled, from `value` (a live session's, or another).
#[derive(Clone, Debug)]
enum Spelling {
    AsIs,
    Quoted,
    /// Percent-encoded where the mask says, perhaps quoted too.
    Encoded {
        mask: u32,
        lower: bool,
        quoted: bool,
    },
    /// Quotes sent percent-encoded: `%22value%22`.
    EncodedQuotes,
    /// `=` and what follows: `value=`, `value==`.
    WithEquals(&'static str),
    /// Quoted with white space inside the quotes.
    SpaceInQuotes,
    /// An escape that does not decode to UTF-8.
    NotUtf8,
    Empty,
}

fn spelling() -> impl Strategy<Value = Spelling> {
    prop_oneof![
        10 => Just(Spelling::AsIs),
        2 => Just(Spelling::Quoted),
        3 => (any::<u32>(), any::<bool>(), any::<bool>())
            .prop_map(|(mask, lower, quoted)| Spelling::Encoded { mask, lower, quoted }),
        1 => Just(Spelling::EncodedQuotes),
        1 => prop_oneof![Just("="), Just("=="), Just("=x")].prop_map(Spelling::WithEquals),
        1 => Just(Spelling::SpaceInQuotes),
        1 => Just(Spelling::NotUtf8),
        1 => Just(Spelling::Empty),
    ]
}

fn spelled(value: &str, spelling: &Spelling) -> String {
    match spelling {
        Spelling::AsIs => value.to_owned(),
        Spelling::Quoted => format!("\"{value}\""),
        Spelling::Encoded {
            mask,
            lower,
            quoted,
        } => {
            let encoded = percent_encoded(value, *mask, *lower);
            if *quoted {
                format!("\"{encoded}\"")
            } else {
                encoded
            }
        }
        Spelling::EncodedQuotes => format!("%22{value}%22"),
        Spelling::WithEquals(tail) => format!("{value}{tail}"),
        Spelling::SpaceInQuotes => format!("\" {value}\""),
        Spelling::NotUtf8 => format!("{value}%FF"),
        Spelling::Empty => String::new(),
    }
}

/// One `name=value` (or not quite) of a header.
#[derive(Clone, Debug)]
enum Pair {
    /// The session cookie (or a near miss by name): its name, which live
    /// session's value (or, past the live ones, an ID no session has, then
    /// a value that is no ID) and how it is spelled, and white space
    /// around name and value.
    Session {
        name: String,
        value: usize,
        spelling: Spelling,
        pad: [&'static str; 4],
    },
    /// Another cookie, well formed or percent-encoded, perhaps quoted,
    /// empty, or with `=` in its value.
    Other { name: String, value: String },
    /// A value without a name (a browser sends a nameless cookie so), or
    /// `=value` with an empty name.
    Nameless { value: String, equals: bool },
}

fn pair() -> impl Strategy<Value = Pair> {
    prop_oneof![
        4 => (session_name(), 0usize..4, spelling(), [padding(), padding(), padding(), padding()])
            .prop_map(|(name, value, spelling, pad)| Pair::Session { name, value, spelling, pad }),
        6 => (
            other_name(),
            prop_oneof![
                4 => other_value(),
                1 => Just(String::new()),
                1 => "[a-z0-9]{1,8}=[a-z0-9=]{0,8}",
                1 => "([a-z]{0,4}%[0-9A-Fa-f]{2}){1,3}",
                1 => Just("%zz%".to_owned()),
            ],
        )
            .prop_map(|(name, value)| Pair::Other { name, value }),
        1 => ("[a-z]{1,8}", any::<bool>()).prop_map(|(value, equals)| Pair::Nameless { value, equals }),
    ]
}

/// The separator between two pairs: `; ` as browsers send it, `;` as some
/// proxies join HTTP/2 cookie crumbs, or other white space; an empty pair
/// (`;;`) now and then.
fn separator() -> impl Strategy<Value = &'static str> {
    prop_oneof![
        8 => Just("; "),
        3 => Just(";"),
        1 => Just(" ; "),
        1 => Just(";\t"),
        1 => Just(";;"),
        1 => Just("; ; "),
    ]
}

/// A header: pairs with separators, and perhaps a trailing `;`.
fn header() -> impl Strategy<Value = (Vec<(Pair, &'static str)>, &'static str)> {
    (
        proptest::collection::vec((pair(), separator()), 1..7),
        prop_oneof![4 => Just(""), 1 => Just(";"), 1 => Just("; ")],
    )
}

/// The header's text, with `values` for the session pairs' values.
fn header_text(pairs: &[(Pair, &'static str)], trailer: &str, values: &[String]) -> String {
    let mut text = String::new();
    for (index, (pair, separator)) in pairs.iter().enumerate() {
        if index > 0 {
            text.push_str(separator);
        }
        match pair {
            Pair::Session {
                name,
                value,
                spelling,
                pad,
            } => {
                let value = spelled(&values[*value], spelling);
                text.push_str(&format!(
                    "{}{name}{}={}{value}{}",
                    pad[0], pad[1], pad[2], pad[3]
                ));
            }
            Pair::Other { name, value } => text.push_str(&format!("{name}={value}")),
            Pair::Nameless {
                value,
                equals: true,
            } => text.push_str(&format!("={value}")),
            Pair::Nameless {
                value,
                equals: false,
            } => text.push_str(value),
        }
    }
    text.push_str(trailer);
    text
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

    /// Cookie headers as browsers, proxies and routers spell them (one to
    /// three headers; several cookies; `; `, `;` or other white space
    /// between them; empty pairs and a trailing `;`; empty, quoted,
    /// percent-encoded values and names; `=` in values; nameless cookies;
    /// the session cookie absent, once or more, under its name or encoded,
    /// with a live session's value or another), signed or not: the layer
    /// finds the session cookie that the `cookie` crate finds, with the
    /// same value (so the same session, or the same refusal), finds it
    /// twice where the `cookie` crate does, and finds none where it finds
    /// none.
    #[test]
    fn the_session_cookie_is_read_as_the_cookie_crate_reads_it(
        signed in any::<bool>(),
        headers in proptest::collection::vec(header(), 1..4),
    ) {
        runtime().block_on(async {
            let app = app(signed);
            let mut live = Vec::new();
            for subject in ["alice", "bob"] {
                let cookie = app.login(subject, false).await;
                let value = cookie.split_once('=').unwrap().1.to_owned();
                live.push((value, subject.to_owned()));
            }
            // The values session pairs pick from: the two live sessions',
            // an ID no session has, and a value that is no ID.
            let mut values: Vec<String> = live.iter().map(|(value, _)| value.clone()).collect();
            values.push(if signed {
                format!("{}{}", &live[0].0[..44], SessionId::generate().unwrap().encode())
            } else {
                SessionId::generate().unwrap().encode()
            });
            values.push("not-an-id".to_owned());

            let texts: Vec<String> = headers
                .iter()
                .map(|(pairs, trailer)| header_text(pairs, trailer, &values))
                .collect();
            let expected = cookie_crate_reading(&texts, &live, signed);
            let raw: Vec<Vec<u8>> = texts.iter().map(|text| text.clone().into_bytes()).collect();
            for text in &raw {
                prop_assert!(HeaderValue::from_bytes(text).is_ok(), "{:?}", text);
            }
            let response = me_with(&app, &raw).await;
            prop_assert_eq!(reading(response).await, expected, "headers {:?}", texts);
            Ok(())
        })?;
    }
}
