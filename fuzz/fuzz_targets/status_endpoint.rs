//! The status endpoint through the whole layer, on requests made of the
//! fuzzer's bytes: method, request target and headers (a `Cookie` with the
//! live session's ID where the input says `$ID`, `Origin`, `Sec-Fetch-*`,
//! anything), up to four requests per input with the clock advanced before
//! each.
//!
//! The input: one byte of flags (bits 0-1: no session, a session, a
//! remember-me session, a session ended before the first request; bit 2:
//! the layer with a guessing limit by `X-Real-IP` and deadline headers),
//! then requests separated by a blank line, each one byte (the clock moves
//! by 8 s times its value before the request), `METHOD TARGET`, and header
//! lines `name: value`.
//!
//! It must never panic, answer only what the status module documents
//! (`200` with JSON for a live session, `401`, `403` for a `POST` from
//! another site, `405` for another method, `429` over the guessing limit;
//! `OPTIONS` and other paths go to the inner service), and a status `GET`
//! or `HEAD` must not count as activity: the stored record is the same
//! after it, and the idle deadline it reports counts from the stored
//! activity, not from the request. A status `POST` that is answered `200`
//! counts: the stored activity is then the request's time.
#![no_main]

use std::convert::Infallible;
use std::future::{ready, Ready};
use std::net::IpAddr;
use std::sync::OnceLock;
use std::task::{Context, Poll};
use std::time::Duration;

use http::header::ALLOW;
use http::{header, HeaderName, HeaderValue, Method, Request, Response, StatusCode, Uri};
use libfuzzer_sys::fuzz_target;
use tower_layer::Layer as _;
use tower_service::Service;
use tower_session_lifetime::{MemoryStore, Policy, SessionLifetimeLayer, clock::ManualClock, deadline_headers::DeadlineHeaders, guessing::GuessLimit, id::SessionId, record::SessionRecord, rejection::{DefaultRejection, StatusJson}, session_lifetime::SessionLifetime, status::StatusEndpoint, store::LifetimeStore, time::Timestamp};

const STATUS: &str = "/session/status";
/// The one session ID the store ever holds (deleted after each input).
const ID: &str = "8vO5vkkXPH-NWjW4-zae_g";
const IDLE: Duration = Duration::from_secs(15 * 60);
const REMEMBER_ME: Duration = Duration::from_secs(24 * 3600);
const ABSOLUTE: Duration = Duration::from_secs(8 * 3600);
/// Marks the inner service's responses.
const INNER: &str = "x-inner";

/// The inner service: `200` with [`INNER`] to whatever reaches it.
#[derive(Clone)]
struct Inner;

impl Service<Request<()>> for Inner {
    type Response = Response<String>;
    type Error = Infallible;
    type Future = Ready<Result<Response<String>, Infallible>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _: Request<()>) -> Self::Future {
        let mut response = Response::new(String::new());
        response
            .headers_mut()
            .insert(INNER, HeaderValue::from_static("1"));
        ready(Ok(response))
    }
}

type Guarded = SessionLifetime<Inner, StatusJson<DefaultRejection>>;

struct Fixture {
    clock: ManualClock,
    store: MemoryStore,
    policy: Policy,
    /// Plain, and with a guessing limit and deadline headers.
    services: [Guarded; 2],
    runtime: tokio::runtime::Runtime,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let clock = ManualClock::new(Timestamp::from_unix_millis(1_700_000_000_000));
        let store = MemoryStore::with_clock(clock.clone());
        let policy = Policy::builder()
            .idle_timeout(IDLE)
            .remember_me_period(REMEMBER_ME)
            .absolute_timeout(ABSOLUTE)
            .build()
            .unwrap();
        let layer = || {
            SessionLifetimeLayer::new(store.clone())
                .with_clock(clock.clone())
                .with_policy(policy.clone())
        };
        let limit = GuessLimit::new(3, Duration::from_secs(60))
            .unwrap()
            .client(|headers, _| {
                headers
                    .get("x-real-ip")?
                    .to_str()
                    .ok()?
                    .parse::<IpAddr>()
                    .ok()
            });
        let services = [
            layer()
                .with_status_endpoint(StatusEndpoint::at(STATUS).unwrap())
                .layer(Inner),
            layer()
                .with_guess_limit(limit)
                .with_deadline_headers(DeadlineHeaders::new())
                .with_status_endpoint(StatusEndpoint::at(STATUS).unwrap())
                .layer(Inner),
        ];
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        Fixture {
            clock,
            store,
            policy,
            services,
            runtime,
        }
    })
}

/// `text` with `$ID` replaced by the session's ID.
fn with_id(text: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len() + ID.len());
    let mut rest = text;
    while !rest.is_empty() {
        if rest.starts_with(b"$ID") {
            out.extend_from_slice(ID.as_bytes());
            rest = &rest[3..];
        } else {
            out.push(rest[0]);
            rest = &rest[1..];
        }
    }
    out
}

/// The request of one block (`METHOD TARGET` and header lines), or `None`
/// when its bytes make no request.
fn request_of(block: &[u8]) -> Option<Request<()>> {
    let block = with_id(block);
    let mut lines = block.split(|&byte| byte == b'\n');
    let line = lines.next()?;
    let space = line.iter().position(|&byte| byte == b' ')?;
    let method = Method::from_bytes(&line[..space]).ok()?;
    let uri = Uri::try_from(&line[space + 1..]).ok()?;
    let mut request = Request::new(());
    *request.method_mut() = method;
    *request.uri_mut() = uri;
    for line in lines {
        let Some(colon) = line.iter().position(|&byte| byte == b':') else {
            continue;
        };
        let value = line[colon + 1..]
            .strip_prefix(b" ")
            .unwrap_or(&line[colon + 1..]);
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(&line[..colon]),
            HeaderValue::from_bytes(value),
        ) {
            request.headers_mut().append(name, value);
        }
    }
    Some(request)
}

/// The number after `"name":` in the JSON `body`.
fn json_number(body: &str, name: &str) -> Option<u64> {
    let at = body.find(&format!("\"{name}\":"))? + name.len() + 3;
    let digits: String = body[at..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().ok()
}

/// Whether the browser says another site sent `request`: exactly one
/// `Sec-Fetch-Site`, `cross-site` or `same-site`.
fn from_another_site(request: &Request<()>) -> bool {
    let mut sites = request.headers().get_all("sec-fetch-site").iter();
    match (sites.next(), sites.next()) {
        (Some(site), None) => site == "cross-site" || site == "same-site",
        _ => false,
    }
}

/// Whether the request may be a `POST` of the page itself: no
/// `Sec-Fetch-Site`, or one saying `same-origin` or `none` (the crate
/// refuses any other value, which is stricter than its docs' promise).
fn same_origin_or_unmarked(request: &Request<()>) -> bool {
    let mut sites = request.headers().get_all("sec-fetch-site").iter();
    match (sites.next(), sites.next()) {
        (None, _) => true,
        (Some(site), None) => site == "same-origin" || site == "none",
        _ => false,
    }
}

/// Whether the request's only cookie is exactly the session's.
fn presents_only_the_id(request: &Request<()>) -> bool {
    let mut cookies = request.headers().get_all(header::COOKIE).iter();
    match (cookies.next(), cookies.next()) {
        (Some(cookie), None) => cookie.as_bytes() == format!("session={ID}").as_bytes(),
        _ => false,
    }
}

/// Runs `future` to its end on the fixture's runtime.
fn block_on<F: std::future::Future>(future: F) -> F::Output {
    fixture().runtime.block_on(future)
}

fuzz_target!(|data: &[u8]| {
    let Some((&flags, rest)) = data.split_first() else {
        return;
    };
    let fixture = fixture();
    let store = &fixture.store;
    let key = SessionId::parse(ID).unwrap().key();
    let guarded = usize::from(flags >> 2 & 1);
    let mut service = fixture.services[guarded].clone();
    // Whatever an earlier input left (guesses counted) has ended.
    fixture.clock.advance(Duration::from_secs(3600));
    let remember_me = flags & 3 == 2;
    if flags & 3 != 0 {
        let record = SessionRecord::new(
            &fixture.policy,
            fixture.clock_now(),
            Some("alice".into()),
            remember_me,
        );
        assert!(block_on(store.create(&key, &record)).unwrap());
        if flags & 3 == 3 {
            assert!(block_on(store.delete(&key)).unwrap());
        }
    }
    let mut blocks = Vec::new();
    let mut rest = rest;
    while blocks.len() < 4 && !rest.is_empty() {
        match rest.windows(2).position(|pair| pair == b"\n\n") {
            Some(at) => {
                blocks.push(&rest[..at]);
                rest = &rest[at + 2..];
            }
            None => {
                blocks.push(rest);
                rest = &[];
            }
        }
    }
    for block in blocks {
        let Some((&advance, block)) = block.split_first() else {
            continue;
        };
        fixture
            .clock
            .advance(Duration::from_secs(8 * u64::from(advance)));
        let Some(request) = request_of(block) else {
            continue;
        };
        let now = fixture.clock_now();
        let before = block_on(store.load(&key)).unwrap();
        // Live by the policy's rules, worked out here.
        let live = before.as_ref().is_some_and(|record| {
            let idle = if record.remember_me {
                REMEMBER_ME
            } else {
                IDLE
            };
            now < record.last_activity.saturating_add(idle)
                && now < record.created_at.saturating_add(ABSOLUTE)
        });
        let method = request.method().clone();
        let is_status = request.uri().path() == STATUS;
        let exact_cookie = presents_only_the_id(&request);
        let limited = guarded == 1 && request.headers().contains_key("x-real-ip");
        let another_site = from_another_site(&request);
        let unmarked = same_origin_or_unmarked(&request);
        let response = block_on(service.call(request)).unwrap();
        let after = block_on(store.load(&key)).unwrap();
        let status = response.status();
        let inner = response.headers().contains_key(INNER);
        assert!(
            [
                StatusCode::OK,
                StatusCode::UNAUTHORIZED,
                StatusCode::FORBIDDEN,
                StatusCode::METHOD_NOT_ALLOWED,
                StatusCode::TOO_MANY_REQUESTS,
            ]
            .contains(&status),
            "{status}"
        );
        if status == StatusCode::TOO_MANY_REQUESTS {
            assert!(limited, "429 without a guessing limit");
        }
        let counted = if is_status {
            match method {
                Method::GET | Method::HEAD | Method::POST => {
                    assert!(!inner, "a status request reached the inner service");
                    if method == Method::POST && another_site {
                        assert_eq!(status, StatusCode::FORBIDDEN, "a cross-site POST");
                    } else if method != Method::POST {
                        assert!(
                            [
                                StatusCode::OK,
                                StatusCode::UNAUTHORIZED,
                                StatusCode::TOO_MANY_REQUESTS
                            ]
                            .contains(&status),
                            "{method} {status}"
                        );
                    }
                    if status == StatusCode::OK {
                        assert!(live, "a status 200 for a session that is not live");
                        assert_eq!(response.headers()[header::CACHE_CONTROL], "no-store");
                        assert_eq!(response.headers()[header::CONTENT_TYPE], "application/json");
                        let before = before.as_ref().unwrap();
                        // The activity the deadline counts from: the stored
                        // one for a `GET`, the request's for a `POST`.
                        let activity = if method == Method::POST {
                            now
                        } else {
                            before.last_activity
                        };
                        let idle = if before.remember_me {
                            REMEMBER_ME
                        } else {
                            IDLE
                        };
                        let idle_deadline = activity.saturating_add(idle);
                        let absolute_deadline = before.created_at.saturating_add(ABSOLUTE);
                        if method != Method::HEAD {
                            let body = response.body();
                            assert_eq!(
                                json_number(body, "idle_expires_at"),
                                Some(idle_deadline.as_unix_secs()),
                                "{body}"
                            );
                            assert_eq!(
                                json_number(body, "expires_at"),
                                Some(absolute_deadline.as_unix_secs()),
                                "{body}"
                            );
                            assert_eq!(json_number(body, "now"), Some(now.as_unix_secs()));
                        }
                        if method != Method::POST {
                            assert!(
                                response.headers().get(header::SET_COOKIE).is_none(),
                                "a status GET set a cookie"
                            );
                        }
                    }
                    if live && exact_cookie && !limited && (method != Method::POST || unmarked) {
                        assert_eq!(status, StatusCode::OK, "{method} of a live session");
                    }
                    method == Method::POST && status == StatusCode::OK
                }
                // A CORS preflight: the inner service's, as any request.
                Method::OPTIONS => inner,
                _ => {
                    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED, "{method}");
                    assert_eq!(response.headers()[ALLOW], "GET, HEAD, POST");
                    false
                }
            }
        } else {
            assert!(
                inner
                    || status == StatusCode::UNAUTHORIZED
                    || status == StatusCode::TOO_MANY_REQUESTS,
                "{status}"
            );
            inner
        };
        if !counted && live {
            // Nothing that is not activity may write to a live session.
            assert_eq!(
                before, after,
                "{method} {is_status} {status} wrote the record"
            );
        }
        if is_status && method == Method::POST && status == StatusCode::OK {
            assert_eq!(
                after.unwrap().last_activity,
                now,
                "a status POST is activity"
            );
        }
        if status != StatusCode::OK && !inner && !live {
            // A refusal leaves no session behind and keeps no cookie.
            for cookie in response.headers().get_all(header::SET_COOKIE) {
                assert!(cookie.to_str().unwrap().contains("Max-Age=0"), "{cookie:?}");
            }
        }
    }
    block_on(store.delete(&key)).unwrap();
});

impl Fixture {
    fn clock_now(&self) -> Timestamp {
        use tower_session_lifetime::clock::Clock as _;
        self.clock.now()
    }
}
