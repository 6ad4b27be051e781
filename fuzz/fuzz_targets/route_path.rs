//! Route groups through the whole layer, on request targets made of the
//! fuzzer's bytes: a path that any reading places in a group must be
//! judged by that group's tighter idle timeout.
//!
//! The input: one byte choosing how long the session was idle (3, 7, 15 or
//! 30 minutes), then the request target (bytes a URI does not take are
//! percent-encoded first). Default idle timeout 60 minutes; groups `/admin`
//! (20), `/admin/audit` (5) and `/pay` (10).
//!
//! The oracle reads the path on its own, as the crate's docs promise it is
//! read: as sent and percent-decoded once and twice (the
//! `percent-encoding` crate), each with `\` as `/` or not, each as it is,
//! with dot segments removed (RFC 3986 §5.2.4) and with empty segments
//! dropped first. A session idle for at least the limit of a group that
//! some reading is in is refused (`401`); one idle for less than every
//! limit is admitted; a path with one reading only (no `%`, `.`, `\`,
//! `//`, trailing `/`) in no group is judged by the default.
#![no_main]

use std::convert::Infallible;
use std::future::{ready, Ready};
use std::sync::OnceLock;
use std::task::{Context, Poll};
use std::time::Duration;

use http::{header, HeaderValue, Request, Response, StatusCode, Uri};
use libfuzzer_sys::fuzz_target;
use percent_encoding::{percent_decode, percent_encode, AsciiSet, CONTROLS};
use tower_layer::Layer as _;
use tower_service::Service;
use tower_session_lifetime::{MemoryStore, Policies, Policy, SessionLifetimeLayer, clock::{Clock as _, ManualClock}, id::SessionId, policy::Tightening, record::SessionRecord, rejection::DefaultRejection, session_lifetime::SessionLifetime, store::LifetimeStore, time::Timestamp};

const ID: &str = "8vO5vkkXPH-NWjW4-zae_g";
const DEFAULT_IDLE: Duration = Duration::from_secs(60 * 60);
/// The groups and their idle timeouts.
const GROUPS: [(&str, u64); 3] = [("/admin", 20), ("/admin/audit", 5), ("/pay", 10)];
/// How long the session was idle, in minutes, by the input's first byte.
const IDLE_FOR: [u64; 4] = [3, 7, 15, 30];
/// Bytes escaped when the target does not parse as it is.
const ESCAPED: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'<')
    .add(b'>')
    .add(b'`')
    .add(b'{')
    .add(b'}')
    .add(b'|')
    .add(b'^')
    .add(b'[')
    .add(b']')
    .add(b'\\');

#[derive(Clone)]
struct Ok200;

impl Service<Request<()>> for Ok200 {
    type Response = Response<()>;
    type Error = Infallible;
    type Future = Ready<Result<Response<()>, Infallible>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _: Request<()>) -> Self::Future {
        ready(Ok(Response::new(())))
    }
}

struct Fixture {
    clock: ManualClock,
    store: MemoryStore,
    policy: Policy,
    service: SessionLifetime<Ok200, DefaultRejection>,
    runtime: tokio::runtime::Runtime,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let clock = ManualClock::new(Timestamp::from_unix_millis(1_700_000_000_000));
        let store = MemoryStore::with_clock(clock.clone());
        let policy = Policy::builder()
            .idle_timeout(DEFAULT_IDLE)
            .absolute_timeout(Duration::from_secs(24 * 3600))
            .build()
            .unwrap();
        let mut policies = Policies::builder(policy.clone());
        for (prefix, minutes) in GROUPS {
            policies = policies.route(
                prefix,
                Tightening::new().idle_timeout(Duration::from_secs(60 * minutes)),
            );
        }
        let service = SessionLifetimeLayer::new(store.clone())
            .with_clock(clock.clone())
            .with_policies(policies.build().unwrap())
            .layer(Ok200);
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        Fixture {
            clock,
            store,
            policy,
            service,
            runtime,
        }
    })
}

/// RFC 3986 §5.2.4, on an absolute path.
fn remove_dot_segments(path: &str) -> String {
    let mut input = path;
    let mut output = String::with_capacity(path.len());
    while !input.is_empty() {
        if let Some(rest) = input.strip_prefix("../") {
            input = rest;
        } else if let Some(rest) = input.strip_prefix("./") {
            input = rest;
        } else if input.starts_with("/./") {
            input = &input[2..];
        } else if input == "/." {
            input = "/";
        } else if input.starts_with("/../") || input == "/.." {
            input = if input == "/.." { "/" } else { &input[3..] };
            let cut = output.rfind('/').unwrap_or(0);
            output.truncate(cut);
        } else if input == "." || input == ".." {
            input = "";
        } else {
            let start = usize::from(input.starts_with('/'));
            let end = input[start..]
                .find('/')
                .map_or(input.len(), |at| at + start);
            output.push_str(&input[..end]);
            input = &input[end..];
        }
    }
    output
}

/// `path` with every run of `/` made one.
fn without_empty_segments(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    for char in path.chars() {
        if !(char == '/' && out.ends_with('/')) {
            out.push(char);
        }
    }
    out
}

fn decode(path: &str) -> String {
    String::from_utf8_lossy(&percent_decode(path.as_bytes()).collect::<Vec<u8>>()).into_owned()
}

/// Every reading of `path` the docs promise to judge.
fn readings(path: &str) -> Vec<String> {
    let once = decode(path);
    let twice = decode(&once);
    let mut spellings = vec![path.to_owned(), once, twice];
    let slashed: Vec<String> = spellings.iter().map(|s| s.replace('\\', "/")).collect();
    spellings.extend(slashed);
    let mut readings = Vec::new();
    for spelling in spellings {
        readings.push(remove_dot_segments(&spelling));
        readings.push(remove_dot_segments(&without_empty_segments(&spelling)));
        readings.push(spelling);
    }
    readings
}

/// The idle timeout (minutes) of the group that judges `reading` (the
/// longest prefix it is at or below), or `None`.
fn group_limit(reading: &str) -> Option<u64> {
    GROUPS
        .iter()
        .filter(|(prefix, _)| {
            reading == *prefix
                || reading
                    .strip_prefix(prefix)
                    .is_some_and(|rest| rest.starts_with('/'))
        })
        .max_by_key(|(prefix, _)| prefix.len())
        .map(|(_, minutes)| *minutes)
}

/// Runs `future` to its end on the fixture's runtime.
fn block_on<F: std::future::Future>(future: F) -> F::Output {
    fixture().runtime.block_on(future)
}

fuzz_target!(|data: &[u8]| {
    let Some((&choice, target)) = data.split_first() else {
        return;
    };
    let uri = match Uri::try_from(target) {
        Ok(uri) => uri,
        Err(_) => {
            let escaped = percent_encode(target, ESCAPED).to_string();
            match Uri::try_from(escaped) {
                Ok(uri) => uri,
                Err(_) => return,
            }
        }
    };
    let path = uri.path().to_owned();
    let idle_for = IDLE_FOR[usize::from(choice & 3)];
    let fixture = fixture();
    let key = SessionId::parse(ID).unwrap().key();
    fixture.clock.advance(Duration::from_secs(24 * 3600));
    let record = SessionRecord::new(&fixture.policy, fixture.clock.now(), None, false);
    assert!(block_on(fixture.store.create(&key, &record)).unwrap());
    fixture.clock.advance(Duration::from_secs(60 * idle_for));

    let mut request = Request::new(());
    *request.uri_mut() = uri;
    request.headers_mut().insert(
        header::COOKIE,
        HeaderValue::from_str(&format!("session={ID}")).unwrap(),
    );
    let mut service = fixture.service.clone();
    let status = block_on(service.call(request)).unwrap().status();
    block_on(fixture.store.delete(&key)).unwrap();

    let readings = readings(&path);
    let tightest = readings
        .iter()
        .filter_map(|reading| group_limit(reading))
        .min();
    let admitted = status == StatusCode::OK;
    assert!(admitted || status == StatusCode::UNAUTHORIZED, "{status}");
    if let Some(limit) = tightest {
        if idle_for >= limit {
            assert!(
                !admitted,
                "{path:?} is in a group of {limit} min, yet admitted after {idle_for} min; readings {readings:?}"
            );
        }
    }
    if idle_for < GROUPS.iter().map(|(_, minutes)| *minutes).min().unwrap() {
        assert!(admitted, "{path:?} refused after {idle_for} min");
    }
    let one_reading = !path.contains(['%', '.', '\\'])
        && !path.contains("//")
        && (path == "/" || !path.ends_with('/'));
    if one_reading {
        let limit = tightest.unwrap_or(DEFAULT_IDLE.as_secs() / 60);
        assert_eq!(admitted, idle_for < limit, "{path:?} after {idle_for} min");
    }
});
