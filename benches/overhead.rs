//! What the layer adds to one admitted request, next to the bare router and
//! to tower-sessions, measured in one criterion group (one run).
//!
//! ```text
//! cargo bench --bench overhead
//! ```
//!
//! Every variant builds the same request (GET `/`, one `cookie` header) and
//! sends it through `router.clone().oneshot(request)`:
//!
//! - `bare`: the router, no layer (the cookie header is sent but ignored);
//! - `session_lifetime`: `SessionLifetimeLayer::new(MemoryStore::new())`,
//!   default policy, a live session; the handler returns the subject;
//! - `session_lifetime_browser`: the same, with the browser side on
//!   (`with_deadline_headers` and `with_status_endpoint`): the headers' cost;
//! - `session_lifetime_layer_only`: the same, with the bare handler, which
//!   never looks at the session: the middleware alone, without the cost of
//!   an axum extractor;
//! - `session_lifetime_around_router`: the same layer and handlers, the
//!   layer around the router (`layer.layer(router)`) instead of given to
//!   `Router::layer`, which wraps and boxes the route anew per request;
//! - `pass_through`: the bare handler behind a layer that does nothing,
//!   given to `Router::layer`: what axum's per-route wrapping costs any
//!   layer;
//! - `floor`: the least an admitted request needs (one `Cookie` scan, one
//!   SHA-256, one map lookup, the clock, one extension insert; see
//!   `benches/support`), given to `Router::layer`;
//! - `tower_sessions`: tower-sessions 0.14 over its `MemoryStore`, expiry on
//!   inactivity, `always_save`; the handler reads one value;
//! - `tower_sessions_with_lifetime`: the same tower-sessions router, with
//!   `SessionLifetimeLayer` following its cookie (`follow_tower_sessions`)
//!   over our `MemoryStore`: what the layer adds to an app that already has
//!   tower-sessions. `always_save` makes tower-sessions set its cookie on
//!   every response, which the layer then drops: the dearest case;
//! - `tower_sessions_lean_with_lifetime`: the same, but tower-sessions
//!   without `always_save` and without an expiry of its own: with the layer
//!   in front, the sliding idle expiry that needed them is the layer's.
//!
//! After criterion's own report, a summary table with the overheads and
//! their ratio is printed from criterion's estimates of this run.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use axum::http::{Method, StatusCode};
use axum::routing::{get, post};
use axum::Router;
use criterion::{criterion_group, Criterion};
use tower::ServiceExt;
use tower_session_lifetime::{
    deadline_headers::DeadlineHeaders, status::StatusEndpoint, MemoryStore, SessionLifetimeLayer,
};
use tower_sessions::SessionManagerLayer;

#[path = "support/mod.rs"]
mod support;

use support::{
    bare_router, cookie_from_login, current_thread_runtime, floor_router, layer_around_router,
    layer_only_router, lifetime_login, lifetime_me, pass_through_router, probe, request,
    tower_sessions_router, ts_login, ts_me, SUBJECT,
};

const GROUP: &str = "overhead";
fn overhead(c: &mut Criterion) {
    let rt = current_thread_runtime();

    // Every router is finished with `.with_state(())`, as `axum::serve` does
    // (see `benches/support`).

    // session_lifetime: log in once, then every measured request is admitted.
    let lifetime: Router = Router::new()
        .route("/", get(lifetime_me))
        .route("/login", post(lifetime_login))
        .layer(SessionLifetimeLayer::new(MemoryStore::new()))
        .with_state(());
    let lifetime_cookie = rt.block_on(cookie_from_login(&lifetime, Method::POST, "/login"));
    let (status, body) = rt.block_on(probe(&lifetime, &lifetime_cookie));
    assert_eq!(status, StatusCode::OK, "session_lifetime: not admitted");
    assert_eq!(body, SUBJECT, "session_lifetime: no active session seen");

    // session_lifetime_browser: the same, with the browser side on: the
    // deadline headers on every response and a status endpoint (whose path
    // each request is compared with).
    let browser: Router = Router::new()
        .route("/", get(lifetime_me))
        .route("/login", post(lifetime_login))
        .layer(
            SessionLifetimeLayer::new(MemoryStore::new())
                .with_deadline_headers(DeadlineHeaders::new())
                .with_status_endpoint(StatusEndpoint::at("/session/status").expect("a valid path")),
        )
        .with_state(());
    let browser_cookie = rt.block_on(cookie_from_login(&browser, Method::POST, "/login"));
    let (status, body) = rt.block_on(probe(&browser, &browser_cookie));
    assert_eq!(
        status,
        StatusCode::OK,
        "session_lifetime_browser: not admitted"
    );
    assert_eq!(
        body, SUBJECT,
        "session_lifetime_browser: no active session seen"
    );

    // session_lifetime_layer_only: the same layer, but the handler is the
    // bare one and never looks at the session: the middleware alone,
    // without the cost of an axum extractor in the handler. The default
    // `OnInvalidSession::Reject` answers 401 to a cookie it does not admit,
    // so a 200 here is the admitted path.
    let layer_only = layer_only_router();
    let layer_only_cookie = rt.block_on(cookie_from_login(&layer_only, Method::POST, "/login"));
    let (status, body) = rt.block_on(probe(&layer_only, &layer_only_cookie));
    assert_eq!(
        status,
        StatusCode::OK,
        "session_lifetime_layer_only: not admitted"
    );
    assert_eq!(body, "hello");

    // tower-sessions: insert a value once, then every measured request reads it.
    let ts = tower_sessions_router(false);
    let ts_cookie = rt.block_on(cookie_from_login(&ts, Method::POST, "/login"));
    let (status, body) = rt.block_on(probe(&ts, &ts_cookie));
    assert_eq!(status, StatusCode::OK, "tower_sessions: request failed");
    assert_eq!(body, "1", "tower_sessions: value not read back");

    // tower_sessions_with_lifetime: the same tower-sessions stack, with the
    // lifetime layer following its cookie.
    let followed = tower_sessions_router(true);
    let followed_cookie = rt.block_on(cookie_from_login(&followed, Method::POST, "/login"));
    let (status, body) = rt.block_on(probe(&followed, &followed_cookie));
    assert_eq!(
        status,
        StatusCode::OK,
        "tower_sessions_with_lifetime: request failed"
    );
    assert_eq!(body, "1", "tower_sessions_with_lifetime: not admitted");

    // tower_sessions_lean_with_lifetime: tower-sessions as an app configures
    // it when the layer owns the lifetimes.
    let lean: Router = Router::new()
        .route("/", get(ts_me))
        .route("/login", post(ts_login))
        .layer(SessionManagerLayer::new(tower_sessions::MemoryStore::default()).with_secure(false))
        .layer(SessionLifetimeLayer::new(MemoryStore::new()).follow_tower_sessions())
        .with_state(());
    let lean_cookie = rt.block_on(cookie_from_login(&lean, Method::POST, "/login"));
    let (status, body) = rt.block_on(probe(&lean, &lean_cookie));
    assert_eq!(
        status,
        StatusCode::OK,
        "tower_sessions_lean_with_lifetime: request failed"
    );
    assert_eq!(body, "1", "tower_sessions_lean_with_lifetime: not admitted");

    // bare: same request shape (a cookie header of the same kind, ignored).
    let bare = bare_router();
    let (status, body) = rt.block_on(probe(&bare, &lifetime_cookie));
    assert_eq!(status, StatusCode::OK, "bare: request failed");
    assert_eq!(body, "hello");

    // pass_through and floor: the references for the layer given to
    // `Router::layer` (see `benches/support`).
    let pass_through = pass_through_router();
    let (status, _) = rt.block_on(probe(&pass_through, &lifetime_cookie));
    assert_eq!(status, StatusCode::OK, "pass_through: request failed");
    let floor = floor_router();
    let floor_cookie = rt.block_on(cookie_from_login(&floor, Method::POST, "/login"));
    let (status, _) = rt.block_on(probe(&floor, &floor_cookie));
    assert_eq!(status, StatusCode::OK, "floor: not admitted");

    let mut group = c.benchmark_group(GROUP);
    let variants = [
        ("pass_through", &pass_through, &lifetime_cookie),
        ("floor", &floor, &floor_cookie),
        ("bare", &bare, &lifetime_cookie),
        ("session_lifetime", &lifetime, &lifetime_cookie),
        ("session_lifetime_browser", &browser, &browser_cookie),
        (
            "session_lifetime_layer_only",
            &layer_only,
            &layer_only_cookie,
        ),
        ("tower_sessions", &ts, &ts_cookie),
        ("tower_sessions_with_lifetime", &followed, &followed_cookie),
        ("tower_sessions_lean_with_lifetime", &lean, &lean_cookie),
    ];
    for (name, router, cookie) in variants {
        group.bench_function(name, |b| {
            b.to_async(&rt).iter(|| async move {
                let response = router
                    .clone()
                    .oneshot(request(cookie))
                    .await
                    .expect("infallible router");
                std::hint::black_box(response)
            })
        });
    }
    // session_lifetime_around_router: the layer-only handlers, the layer
    // around the router (`layer.layer(router)`) rather than given to
    // `Router::layer`, which wraps and boxes each route anew per request.
    let around = layer_around_router();
    let around_cookie = rt.block_on(cookie_from_login(&around, Method::POST, "/login"));
    let (status, body) = rt.block_on(probe(&around, &around_cookie));
    assert_eq!(
        status,
        StatusCode::OK,
        "session_lifetime_around_router: not admitted"
    );
    assert_eq!(body, "hello");
    group.bench_function("session_lifetime_around_router", |b| {
        b.to_async(&rt).iter(|| async {
            let response = around
                .clone()
                .oneshot(request(&around_cookie))
                .await
                .expect("infallible service");
            std::hint::black_box(response)
        })
    });
    group.finish();
    let (status, _) = rt.block_on(probe(&around, &around_cookie));
    assert_eq!(
        status,
        StatusCode::OK,
        "session_lifetime_around_router: not admitted"
    );

    // The session must still be admitted after the run: the numbers above
    // are the admitted path, not a rejection.
    let (status, body) = rt.block_on(probe(&lifetime, &lifetime_cookie));
    assert_eq!(status, StatusCode::OK, "session_lifetime: not admitted");
    assert_eq!(body, SUBJECT, "session_lifetime: no active session seen");
    let (status, _) = rt.block_on(probe(&layer_only, &layer_only_cookie));
    assert_eq!(
        status,
        StatusCode::OK,
        "session_lifetime_layer_only: not admitted"
    );
    let (status, body) = rt.block_on(probe(&followed, &followed_cookie));
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, "1", "tower_sessions_with_lifetime: not admitted");
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(2))
        .measurement_time(Duration::from_secs(5))
        .sample_size(50);
    targets = overhead
}

/// Where criterion writes its estimates: `$CRITERION_HOME`, else
/// `$CARGO_TARGET_DIR/criterion`, else `target/criterion`.
fn criterion_dir() -> PathBuf {
    if let Some(home) = std::env::var_os("CRITERION_HOME") {
        return PathBuf::from(home);
    }
    let target =
        std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| "target".into(), PathBuf::from);
    target.join("criterion")
}

/// Criterion's estimate of one bench of this run, in nanoseconds: the
/// statistic it prints (the slope of its linear sampling, else the mean),
/// with its 95% confidence interval. `None` when the file is missing,
/// unreadable or older than this run (a bench left out by a filter).
fn estimate_ns(dir: &Path, bench: &str, run_started: SystemTime) -> Option<Estimate> {
    let path = dir
        .join(GROUP)
        .join(bench)
        .join("new")
        .join("estimates.json");
    let modified = std::fs::metadata(&path).ok()?.modified().ok()?;
    if modified < run_started {
        return None;
    }
    let text = std::fs::read_to_string(&path).ok()?;
    let json: serde_json::Value = serde_json::from_str(&text).ok()?;
    let (statistic, value) = match &json["slope"] {
        serde_json::Value::Null => ("mean", &json["mean"]),
        slope => ("slope", slope),
    };
    Some(Estimate {
        statistic,
        point: value["point_estimate"].as_f64()?,
        lower: value["confidence_interval"]["lower_bound"].as_f64()?,
        upper: value["confidence_interval"]["upper_bound"].as_f64()?,
    })
}

struct Estimate {
    statistic: &'static str,
    point: f64,
    lower: f64,
    upper: f64,
}

impl Estimate {
    fn cell(&self) -> String {
        format!("{:.0} ns ({:.0}–{:.0})", self.point, self.lower, self.upper)
    }
}

fn print_summary(run_started: SystemTime) {
    let dir = criterion_dir();
    let (Some(bare), Some(layer), Some(ts)) = (
        estimate_ns(&dir, "bare", run_started),
        estimate_ns(&dir, "session_lifetime", run_started),
        estimate_ns(&dir, "tower_sessions", run_started),
    ) else {
        return;
    };
    let layer_overhead = layer.point - bare.point;
    let ts_overhead = ts.point - bare.point;
    let statistic = if [&bare, &layer, &ts].iter().all(|e| e.statistic == "slope") {
        "slope"
    } else {
        "mean"
    };
    println!();
    println!(
        "Summary: criterion's estimate per request ({statistic}, 95% CI); overhead = variant - bare"
    );
    println!();
    println!("| variant | time per request | overhead vs bare |");
    println!("| --- | --- | --- |");
    println!("| bare axum router | {} | — |", bare.cell());
    println!(
        "| + `SessionLifetimeLayer` (`MemoryStore`, default policy) | {} | {:.0} ns |",
        layer.cell(),
        layer_overhead
    );
    if let Some(browser) = estimate_ns(&dir, "session_lifetime_browser", run_started) {
        println!(
            "| + `SessionLifetimeLayer` with deadline headers and a status endpoint | {} | {:.0} ns |",
            browser.cell(),
            browser.point - bare.point
        );
    }
    if let Some(layer_only) = estimate_ns(&dir, "session_lifetime_layer_only", run_started) {
        println!(
            "| + `SessionLifetimeLayer`, handler as bare (no extractor) | {} | {:.0} ns |",
            layer_only.cell(),
            layer_only.point - bare.point
        );
    }
    if let Some(around) = estimate_ns(&dir, "session_lifetime_around_router", run_started) {
        println!(
            "| `SessionLifetimeLayer` around the router, handler as bare | {} | {:.0} ns |",
            around.cell(),
            around.point - bare.point
        );
    }
    for (bench, label) in [
        (
            "pass_through",
            "+ a layer that does nothing, by `Router::layer`",
        ),
        (
            "floor",
            "+ the floor of an admitted request, by `Router::layer`",
        ),
    ] {
        if let Some(reference) = estimate_ns(&dir, bench, run_started) {
            println!(
                "| {label} | {} | {:.0} ns |",
                reference.cell(),
                reference.point - bare.point
            );
        }
    }
    println!(
        "| + tower-sessions 0.14 (`MemoryStore`, on inactivity, always save) | {} | {:.0} ns |",
        ts.cell(),
        ts_overhead
    );
    let followed = estimate_ns(&dir, "tower_sessions_with_lifetime", run_started);
    if let Some(followed) = &followed {
        println!(
            "| tower-sessions + `SessionLifetimeLayer` following its cookie | {} | {:.0} ns |",
            followed.cell(),
            followed.point - bare.point
        );
    }
    if let Some(lean) = estimate_ns(&dir, "tower_sessions_lean_with_lifetime", run_started) {
        println!(
            "| tower-sessions without `always_save` or expiry + `SessionLifetimeLayer` | {} | {:.0} ns |",
            lean.cell(),
            lean.point - bare.point
        );
    }
    println!();
    if let Some(followed) = &followed {
        println!(
            "layer on top of tower-sessions = {:.0} ns (budget: < 500 ns)",
            followed.point - ts.point
        );
    }
    if let (Some(layer_only), true) = (
        estimate_ns(&dir, "session_lifetime_layer_only", run_started),
        bare.point > 0.0,
    ) {
        println!(
            "layer alone (handler as bare) / bare router = {:.2} (issue 18's goal: <= 0.4)",
            (layer_only.point - bare.point) / bare.point
        );
    }
    if ts_overhead > 0.0 {
        println!(
            "layer overhead / tower-sessions overhead = {:.2} (budget: < 0.25); \
             layer overhead = {:.0} ns (budget: < 500 ns)",
            layer_overhead / ts_overhead,
            layer_overhead
        );
    }
}

fn main() {
    let run_started = SystemTime::now();
    benches();
    Criterion::default().configure_from_args().final_summary();
    print_summary(run_started);
}
