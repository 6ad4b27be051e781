//! Sends N admitted requests through one variant and exits: the program
//! `scripts/instructions` runs under callgrind, once with N = 0 and once
//! with N = 2,000, so that the difference is the requests alone.
//!
//! ```text
//! cargo bench --bench instructions -- VARIANT N
//! ```
//!
//! Variants (the routers of `benches/support`, as `overhead` measures them):
//! `bare`, `layer` (the layer alone, bare handler, by `Router::layer`),
//! `layer_around_router` (the same, the layer around the router),
//! `tower_sessions`, `pass_through` (a layer that does nothing, by
//! `Router::layer`: what axum's wrapping of any layer costs), `floor` (the
//! least an admitted request needs, by `Router::layer`),
//! `tower_sessions_with_lifetime`, and `sha256`: N SHA-256 digests of a
//! session ID (`SessionId::key`), which the layer computes once per request.

#[path = "support/mod.rs"]
mod support;

use std::hint::black_box;

use axum::http::Method;
use axum::Router;
use tower::ServiceExt;
use tower_session_lifetime::id::SessionId;

use support::{
    bare_router, cookie_from_login, current_thread_runtime, floor_router, layer_around_router,
    layer_only_router, pass_through_router, probe, request, tower_sessions_router, Measured,
};

fn main() {
    // `cargo bench` passes `--bench`; the variant and N follow.
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|arg| !arg.starts_with("--"))
        .collect();
    let [variant, n] = args.as_slice() else {
        eprintln!("usage: instructions VARIANT N");
        std::process::exit(2);
    };
    let n: u32 = n.parse().expect("N is a number of requests");

    if variant == "sha256" {
        let id = SessionId::generate().expect("the OS random number generator works");
        for _ in 0..n {
            black_box(black_box(&id).key());
        }
        return;
    }

    let rt = current_thread_runtime();
    match variant.as_str() {
        "bare" => run(&rt, variant, bare_router(), Some(layer_only_router()), n),
        "layer" => run(&rt, variant, layer_only_router(), None, n),
        "pass_through" => run(
            &rt,
            variant,
            pass_through_router(),
            Some(layer_only_router()),
            n,
        ),
        "floor" => run(&rt, variant, floor_router(), None, n),
        "layer_around_router" => run(&rt, variant, layer_around_router(), None, n),
        "tower_sessions" => run(&rt, variant, tower_sessions_router(false), None, n),
        "tower_sessions_with_lifetime" => run(&rt, variant, tower_sessions_router(true), None, n),
        other => {
            eprintln!("unknown variant `{other}`");
            std::process::exit(2);
        }
    }
}

/// Logs in (through `cookie_source` when `service` cannot), checks that
/// the measured request is admitted, sends it `n` times, and checks again.
fn run<S: Measured>(
    rt: &tokio::runtime::Runtime,
    variant: &str,
    service: S,
    cookie_source: Option<Router>,
    n: u32,
) {
    // The bare router ignores the cookie; it gets one of the same shape.
    let cookie = match &cookie_source {
        Some(source) => rt.block_on(cookie_from_login(source, Method::POST, "/login")),
        None => rt.block_on(cookie_from_login(&service, Method::POST, "/login")),
    };
    let (status, _) = rt.block_on(probe(&service, &cookie));
    assert!(
        status.is_success(),
        "{variant}: the request is not admitted"
    );

    rt.block_on(async {
        for _ in 0..n {
            let response = service
                .clone()
                .oneshot(request(&cookie))
                .await
                .expect("infallible service");
            black_box(response);
        }
    });

    let (status, _) = rt.block_on(probe(&service, &cookie));
    assert!(
        status.is_success(),
        "{variant}: no longer admitted after the run"
    );
}
