//! The whole layer, unsigned and signed, on `Cookie` headers made of the
//! fuzzer's bytes (split into headers at `\n`): it must answer `200` (a
//! visitor) or `401`, never panic.
#![no_main]

use std::convert::Infallible;
use std::future::{ready, Ready};
use std::sync::OnceLock;
use std::task::{Context, Poll};

use http::{header, HeaderValue, Request, Response, StatusCode};
use libfuzzer_sys::fuzz_target;
use tower_layer::Layer as _;
use tower_service::Service;
use tower_session_lifetime::cookie::Key;
use tower_session_lifetime::{MemoryStore, SessionCookie, SessionLifetimeLayer, rejection::DefaultRejection, session_lifetime::SessionLifetime};

/// The inner service: `200` to whatever reaches it.
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

type Guarded = SessionLifetime<Ok200, DefaultRejection>;

/// The layer without and with a signing key, built once.
fn services() -> &'static [Guarded; 2] {
    static SERVICES: OnceLock<[Guarded; 2]> = OnceLock::new();
    SERVICES.get_or_init(|| {
        let signed = SessionCookie::builder()
            .signing_key(Key::from(&[7u8; 64]))
            .build()
            .unwrap();
        [
            SessionLifetimeLayer::new(MemoryStore::new()).layer(Ok200),
            SessionLifetimeLayer::new(MemoryStore::new())
                .with_cookie(signed)
                .layer(Ok200),
        ]
    })
}

fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
    })
}

fuzz_target!(|data: &[u8]| {
    for service in services() {
        let mut service = service.clone();
        let mut request = Request::new(());
        for raw in data.split(|&byte| byte == b'\n') {
            if let Ok(value) = HeaderValue::from_bytes(raw) {
                request.headers_mut().append(header::COOKIE, value);
            }
        }
        let response = runtime().block_on(service.call(request)).unwrap();
        let status = response.status();
        assert!(
            status == StatusCode::OK || status == StatusCode::UNAUTHORIZED,
            "{status}"
        );
    }
});
