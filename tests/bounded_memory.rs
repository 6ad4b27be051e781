//! Memory under hostile load, counted in bytes by a counting allocator:
//!
//! - the guessing limiter stays under its stated cap
//!   ([`GUESS_COUNT_BYTES_PER_CLIENT`] per counted client) while a million
//!   distinct client addresses present forged session IDs;
//! - the memory store gives back what a million sessions took once they
//!   have expired and been swept.
//!
//! Each test prints its figures (`cargo test --test bounded_memory --
//! --nocapture`).

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use axum::body::Body;
use axum::routing::get;
use axum::Router;
use http::{header, Request, StatusCode};
use tower::{Service, ServiceExt};
use tower_session_lifetime::{
    clock::ManualClock,
    guessing::{GuessLimit, DEFAULT_MAX_CLIENTS, GUESS_COUNT_BYTES_PER_CLIENT},
    id::{SessionId, SessionKey},
    record::SessionRecord,
    store::LifetimeStore,
    time::Timestamp,
    MemoryStore, Policy, SessionLifetimeLayer,
};

/// The global allocator, counting per thread the bytes allocated and not
/// yet freed, and the most since the last [`reset_peak`]: each test runs on
/// a thread of its own (a current-thread runtime), so what the test harness
/// or another test does on other threads is not counted.
struct Counting;

thread_local! {
    static LIVE: Cell<isize> = const { Cell::new(0) };
    static PEAK: Cell<isize> = const { Cell::new(0) };
}

fn grew(by: usize) {
    let _ = LIVE.try_with(|live| {
        live.set(live.get() + by as isize);
        let _ = PEAK.try_with(|peak| peak.set(peak.get().max(live.get())));
    });
}

fn shrank(by: usize) {
    let _ = LIVE.try_with(|live| live.set(live.get() - by as isize));
}

// SAFETY: every call is passed on to the system allocator unchanged; the
// counters are only read.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let memory = unsafe { System.alloc(layout) };
        if !memory.is_null() {
            grew(layout.size());
        }
        memory
    }

    unsafe fn dealloc(&self, memory: *mut u8, layout: Layout) {
        unsafe { System.dealloc(memory, layout) };
        shrank(layout.size());
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let memory = unsafe { System.alloc_zeroed(layout) };
        if !memory.is_null() {
            grew(layout.size());
        }
        memory
    }

    unsafe fn realloc(&self, memory: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let moved = unsafe { System.realloc(memory, layout, new_size) };
        if !moved.is_null() {
            shrank(layout.size());
            grew(new_size);
        }
        moved
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

fn live() -> isize {
    LIVE.with(Cell::get)
}

fn peak() -> isize {
    PEAK.with(Cell::get)
}

/// Starts a new peak from what is live now.
fn reset_peak() {
    PEAK.with(|peak| peak.set(live()));
}

const MILLION: u32 = 1_000_000;

async fn send(app: &mut Router, request: Request<Body>) -> StatusCode {
    let ready = ServiceExt::<Request<Body>>::ready(app).await.unwrap();
    ready.call(request).await.unwrap().status()
}

#[tokio::test(flavor = "current_thread")]
async fn the_guess_counts_stay_under_their_cap_with_a_million_clients() {
    let limit = GuessLimit::new(3, Duration::from_secs(60))
        .unwrap()
        .client(|headers, _| headers.get("x-client")?.to_str().ok()?.parse().ok());
    // A manual clock: no window ends during the run, however slow.
    let clock = ManualClock::new(Timestamp::from_unix_millis(1_800_000_000_000));
    let mut app = Router::new().route("/", get(|| async { "ok" })).layer(
        SessionLifetimeLayer::new(MemoryStore::with_clock(clock.clone()))
            .with_clock(clock)
            .with_guess_limit(limit),
    );
    let forged = format!("session={}", SessionId::generate().unwrap().encode());
    let request = |client: IpAddr| {
        Request::get("/")
            .header(header::COOKIE, &forged)
            .header("x-client", client.to_string())
            .body(Body::empty())
            .unwrap()
    };
    // One request first, so that what the app allocates once is in the
    // baseline.
    let first = Ipv4Addr::new(10, 0, 0, 0);
    let answer = send(&mut app, request(first.into())).await;
    assert_eq!(answer, StatusCode::UNAUTHORIZED, "a forged ID");
    let baseline = live();
    reset_peak();
    for n in 1..MILLION {
        let client = Ipv4Addr::from(u32::from(first) + n);
        let answer = send(&mut app, request(client.into())).await;
        assert_eq!(answer, StatusCode::UNAUTHORIZED, "a forged ID");
    }
    let grown = peak() - baseline;
    let cap = (DEFAULT_MAX_CLIENTS * GUESS_COUNT_BYTES_PER_CLIENT) as isize;
    println!(
        "guess counts: {MILLION} distinct clients, peak {grown} bytes above the baseline \
         ({:.1} per counted client); the cap is {cap} bytes \
         ({DEFAULT_MAX_CLIENTS} clients x {GUESS_COUNT_BYTES_PER_CLIENT} bytes)",
        grown as f64 / DEFAULT_MAX_CLIENTS as f64
    );
    assert!(
        grown <= cap,
        "{grown} bytes above the baseline, over the cap of {cap}"
    );
    // The counts were in use: a client at its limit is refused.
    let repeat: IpAddr = Ipv4Addr::new(10, 0, 0, 7).into();
    let mut statuses = Vec::new();
    for _ in 0..3 {
        statuses.push(send(&mut app, request(repeat)).await);
    }
    assert_eq!(
        statuses.last(),
        Some(&StatusCode::TOO_MANY_REQUESTS),
        "{statuses:?}"
    );
}

#[tokio::test(flavor = "current_thread")]
async fn the_memory_store_gives_back_a_million_expired_sessions() {
    let start = Timestamp::from_unix_millis(1_800_000_000_000);
    let clock = ManualClock::new(start);
    let policy = Policy::builder()
        .idle_timeout(Duration::from_secs(60))
        .build()
        .unwrap();
    let subjects: Vec<_> = (0..1000)
        .map(|n| Some(format!("user-{n}").into()))
        .collect();
    let store = MemoryStore::with_clock(clock.clone());
    let baseline = live();
    reset_peak();
    for n in 0..MILLION {
        // Distinct keys spread over the shards, as hashed IDs are.
        let bytes = (u128::from(n) + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15_f39c_c060_5ced_c835);
        let key = SessionKey::from_bytes(bytes.to_le_bytes());
        let subject = subjects[n as usize % subjects.len()].clone();
        let record = SessionRecord::new(&policy, start, subject, false);
        assert!(store.create(&key, &record).await.unwrap());
    }
    assert_eq!(store.len(), MILLION as usize);
    let full = live() - baseline;
    let peak = peak() - baseline;
    clock.advance(Duration::from_secs(61));
    assert_eq!(store.sweep_expired(), MILLION as usize);
    assert!(store.is_empty());
    let after = live();
    println!(
        "memory store: {MILLION} sessions held {full} bytes ({} per session; peak {peak}); \
         after they expired and were swept: {} bytes above the baseline",
        full / MILLION as isize,
        after - baseline
    );
    assert!(
        after <= baseline,
        "{} bytes not given back after the sweep",
        after - baseline
    );
}
