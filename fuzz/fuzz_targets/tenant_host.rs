//! Tenants by host, on hosts made of the fuzzer's bytes: spellings of one
//! host pick one tenant, the request line's authority wins over `Host`, and
//! a host that is not a listed tenant gets the default policy.
//!
//! The input: one byte of flags, then a host (a listed tenant's when the
//! flags' low 3 bits are 0-4 and the rest is empty, else the rest). The
//! host is spelled several ways, each as a `Host` header and as the
//! authority of an absolute-form URI: as it is, in other ASCII cases (as
//! the flags say), with a trailing dot, with a port (`TenantFrom::Host`
//! promises "without port and trailing dot, in lower case"), and in the
//! URI with user info. Every spelling that makes a request must pick the
//! policy of the host as the oracle reads it (lower-cased, one trailing
//! dot dropped, looked up in its own list). With a URI and a `Host` of two
//! different hosts, the URI's wins (RFC 9112 §3.2.2). A `Host` header of
//! any other bytes must not panic, and picks the default or a listed
//! tenant whose name it starts with.
//!
//! One spelling goes through the whole layer too, with a session idle for
//! 12 minutes: admitted only where the chosen tenant allows that.
#![no_main]

use std::convert::Infallible;
use std::future::{ready, Ready};
use std::sync::OnceLock;
use std::task::{Context, Poll};
use std::time::Duration;

use http::{header, HeaderValue, Request, Response, StatusCode, Uri};
use libfuzzer_sys::fuzz_target;
use tower_layer::Layer as _;
use tower_service::Service;
use tower_session_lifetime::{MemoryStore, Policies, Policy, SessionLifetimeLayer, clock::{Clock as _, ManualClock}, id::SessionId, policy::TenantFrom, record::SessionRecord, rejection::DefaultRejection, session_lifetime::SessionLifetime, store::LifetimeStore, time::Timestamp};

const ID: &str = "8vO5vkkXPH-NWjW4-zae_g";
/// The default's idle timeout, in minutes.
const DEFAULT_IDLE: u64 = 30;
/// The tenants (as listed, in mixed case) and their idle timeouts.
const TENANTS: [(&str, u64); 5] = [
    ("Strict.Example", 10),
    ("loose.example", 20),
    ("127.0.0.1", 5),
    ("[::1]", 8),
    ("xn--bcher-kva.example", 25),
];
/// How long the session of the request through the layer was idle.
const IDLE_FOR: u64 = 12;

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
    policies: Policies,
    default: Policy,
    service: SessionLifetime<Ok200, DefaultRejection>,
    runtime: tokio::runtime::Runtime,
}

fn idle(minutes: u64) -> Policy {
    Policy::builder()
        .idle_timeout(Duration::from_secs(60 * minutes))
        .build()
        .unwrap()
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let clock = ManualClock::new(Timestamp::from_unix_millis(1_700_000_000_000));
        let store = MemoryStore::with_clock(clock.clone());
        let default = idle(DEFAULT_IDLE);
        let mut policies = Policies::builder(default.clone()).tenants_from(TenantFrom::Host);
        for (name, minutes) in TENANTS {
            policies = policies.tenant(name, idle(minutes));
        }
        let policies = policies.build().unwrap();
        let service = SessionLifetimeLayer::new(store.clone())
            .with_clock(clock.clone())
            .with_policies(policies.clone())
            .layer(Ok200);
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        Fixture {
            clock,
            store,
            policies,
            default,
            service,
            runtime,
        }
    })
}

/// The idle timeout (minutes) the oracle expects for `host`, read here:
/// lower case, one trailing dot dropped, looked up in [`TENANTS`].
fn expected(host: &str) -> u64 {
    let host = host.to_ascii_lowercase();
    let host = host.strip_suffix('.').unwrap_or(&host);
    TENANTS
        .iter()
        .find(|(name, _)| name.to_ascii_lowercase() == host)
        .map_or(DEFAULT_IDLE, |(_, minutes)| *minutes)
}

/// The idle timeout (minutes) of the policy `request` is judged by.
fn chosen(request: &Request<()>) -> u64 {
    let policy = fixture().policies.for_request(request);
    policy.idle_timeout().as_secs() / 60
}

/// A request for `/` with `uri` (absolute-form) and/or `host`.
fn request(uri: Option<&str>, host: Option<&str>) -> Option<Request<()>> {
    let mut request = Request::new(());
    if let Some(uri) = uri {
        *request.uri_mut() = Uri::try_from(uri).ok()?;
    }
    if let Some(host) = host {
        let value = HeaderValue::from_str(host).ok()?;
        request.headers_mut().insert(header::HOST, value);
    }
    Some(request)
}

/// Whether `host` is a host as RFC 3986 spells one: a reg-name of
/// letters, digits, `-` and `.`, or an IPv6 literal.
fn is_host(host: &str) -> bool {
    if let Some(inner) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        return !inner.is_empty() && inner.bytes().all(|b| b.is_ascii_hexdigit() || b == b':');
    }
    !host.is_empty()
        && !host.starts_with('.')
        && !host.contains("..")
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
}

/// `host` with the case of its ASCII letters flipped where `mask` says.
fn recased(host: &str, mask: u8) -> String {
    host.chars()
        .enumerate()
        .map(|(i, c)| {
            if mask >> (i % 8) & 1 == 1 {
                if c.is_ascii_lowercase() {
                    c.to_ascii_uppercase()
                } else {
                    c.to_ascii_lowercase()
                }
            } else {
                c
            }
        })
        .collect()
}

/// Runs `future` to its end on the fixture's runtime.
fn block_on<F: std::future::Future>(future: F) -> F::Output {
    fixture().runtime.block_on(future)
}

fuzz_target!(|data: &[u8]| {
    let Some((&flags, rest)) = data.split_first() else {
        return;
    };
    let Ok(rest) = std::str::from_utf8(rest) else {
        // Other bytes as a `Host` header: no panic, and a known tenant or
        // the default.
        if let Ok(value) = HeaderValue::from_bytes(&data[1..]) {
            let mut request = Request::new(());
            request.headers_mut().insert(header::HOST, value);
            let minutes = chosen(&request);
            assert!(
                minutes == DEFAULT_IDLE || TENANTS.iter().any(|(_, m)| *m == minutes),
                "{minutes}"
            );
        }
        return;
    };
    let host = match (flags & 7, rest.is_empty()) {
        (listed @ 0..=4, true) => TENANTS[usize::from(listed)].0,
        _ => rest,
    };
    let fixture = fixture();

    if !is_host(host.strip_suffix('.').unwrap_or(host)) {
        // Not a host: any `Host` header of it must not panic, and picks
        // the default or a tenant whose name it starts with.
        for spelling in [Some(host), None] {
            let Some(request) = request(None, spelling) else {
                continue;
            };
            let minutes = chosen(&request);
            if minutes != DEFAULT_IDLE {
                let lower = host.to_ascii_lowercase();
                assert!(
                    TENANTS
                        .iter()
                        .any(|(name, m)| *m == minutes
                            && lower.starts_with(&name.to_ascii_lowercase())),
                    "{host:?} picked a tenant of {minutes} min"
                );
            }
        }
        if let Some(request) = request(Some(&format!("http://{host}/")), None) {
            let _ = chosen(&request);
        }
        return;
    }

    let want = expected(host);
    let mask = flags >> 3;
    let port = u16::from(flags) * 257;
    let mut spellings = vec![host.to_owned(), recased(host, mask), recased(host, !mask)];
    if !host.ends_with('.') {
        spellings.push(format!("{}.", recased(host, mask)));
    }
    let with_ports: Vec<String> = spellings
        .iter()
        .flat_map(|s| [format!("{s}:{port}"), format!("{s}:")])
        .collect();
    spellings.extend(with_ports);

    let mut through_layer = None;
    for spelling in &spellings {
        let forms = [
            request(None, Some(spelling)),
            request(Some(&format!("http://{spelling}/")), None),
            request(Some(&format!("https://user:pw@{spelling}/x?y")), None),
            // The request line's authority wins over `Host`.
            request(Some(&format!("http://{spelling}/")), Some("other.example")),
            request(Some("http://other.example/"), Some(spelling)),
        ];
        for (form, request) in forms.into_iter().enumerate() {
            let Some(request) = request else {
                continue;
            };
            let minutes = chosen(&request);
            let want = if form == 4 { DEFAULT_IDLE } else { want };
            assert_eq!(minutes, want, "{spelling:?} as form {form}");
            if through_layer.is_none() && form < 4 {
                through_layer = Some(request);
            }
        }
    }

    // One spelling through the layer, with a session idle for 12 minutes.
    let Some(mut request) = through_layer else {
        return;
    };
    let key = SessionId::parse(ID).unwrap().key();
    fixture.clock.advance(Duration::from_secs(24 * 3600));
    let record = SessionRecord::new(&fixture.default, fixture.clock.now(), None, false);
    assert!(block_on(fixture.store.create(&key, &record)).unwrap());
    fixture.clock.advance(Duration::from_secs(60 * IDLE_FOR));
    request.headers_mut().insert(
        header::COOKIE,
        HeaderValue::from_str(&format!("session={ID}")).unwrap(),
    );
    let mut service = fixture.service.clone();
    let status = block_on(service.call(request)).unwrap().status();
    block_on(fixture.store.delete(&key)).unwrap();
    let admitted = status == StatusCode::OK;
    assert!(admitted || status == StatusCode::UNAUTHORIZED, "{status}");
    assert_eq!(admitted, IDLE_FOR < want, "{host:?}: {status}");
});
