//! `MemoryStore` at one million live sessions: bytes per session, and
//! per-operation latency with and without a concurrent sweep.
//!
//! ```text
//! cargo bench --bench memory_store
//! ```
//!
//! 1. **Bytes per session.** A counting global allocator tracks the bytes
//!    currently allocated. The delta between an empty store and the same
//!    store holding 1,000,000 live records, divided by 1,000,000, is the
//!    heap a session costs (map slot, key, subject). Also shown: the same
//!    delta with each allocation rounded up as glibc's malloc does
//!    (`max(32, (size + 8 + 15) & !15)`), an estimate of what the process
//!    really pays, and the resident-set growth.
//! 2. **Latency while sweeping.** The store holds 1,000,000 live and
//!    1,000,000 expired records (on a `ManualClock`, so "expired" is exact).
//!    One thread times 200,000 operations individually (`load` then `touch`
//!    of a random live key): (a) alone, (b) while a second OS thread sweeps
//!    continuously (`sweep_expired`, one shard lock at a time), re-inserting
//!    a batch of expired records between passes so every pass has work.
//!
//! Everything is printed as Markdown tables for the README. Without the
//! `--bench` argument that `cargo bench` passes (`cargo test --benches`) it
//! runs scaled down to 10,000 sessions, as a smoke test. The numbers
//! include the cost of reading the clock twice (`Instant::now`), shown as
//! "timer overhead".

use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Barrier;
use std::time::{Duration, Instant};

use tower_session_lifetime::{
    clock::ManualClock,
    id::{SessionId, SessionKey},
    record::SessionRecord,
    store::LifetimeStore,
    time::Timestamp,
    MemoryStore, Policy,
};

// ---------------------------------------------------------------------------
// Counting allocator.

/// Bytes currently allocated, as requested.
static ALLOCATED: AtomicUsize = AtomicUsize::new(0);
/// Bytes currently allocated, rounded up to glibc malloc's chunk sizes.
static ALLOCATED_CHUNKS: AtomicUsize = AtomicUsize::new(0);

/// The size of the glibc malloc chunk (header included) serving `size` bytes
/// on a 64-bit target. An estimate: it ignores alignment above 16 and the
/// page rounding of mmap-served blocks.
const fn glibc_chunk(size: usize) -> usize {
    let chunk = (size + 8 + 15) & !15;
    if chunk < 32 {
        32
    } else {
        chunk
    }
}

struct CountingAlloc;

fn count_alloc(size: usize) {
    ALLOCATED.fetch_add(size, Ordering::Relaxed);
    ALLOCATED_CHUNKS.fetch_add(glibc_chunk(size), Ordering::Relaxed);
}

fn count_dealloc(size: usize) {
    ALLOCATED.fetch_sub(size, Ordering::Relaxed);
    ALLOCATED_CHUNKS.fetch_sub(glibc_chunk(size), Ordering::Relaxed);
}

// SAFETY: every call is forwarded unchanged to `System`; the counters are
// plain atomics and never allocate.
unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller upholds `GlobalAlloc::alloc`'s contract.
        let ptr = unsafe { System.alloc(layout) };
        if !ptr.is_null() {
            count_alloc(layout.size());
        }
        ptr
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller upholds `GlobalAlloc::alloc_zeroed`'s contract.
        let ptr = unsafe { System.alloc_zeroed(layout) };
        if !ptr.is_null() {
            count_alloc(layout.size());
        }
        ptr
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: the caller upholds `GlobalAlloc::dealloc`'s contract.
        unsafe { System.dealloc(ptr, layout) };
        count_dealloc(layout.size());
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: the caller upholds `GlobalAlloc::realloc`'s contract.
        let new = unsafe { System.realloc(ptr, layout, new_size) };
        if !new.is_null() {
            count_dealloc(layout.size());
            count_alloc(new_size);
        }
        new
    }
}

#[global_allocator]
static GLOBAL: CountingAlloc = CountingAlloc;

#[derive(Clone, Copy)]
struct Heap {
    requested: usize,
    chunks: usize,
    rss: Option<usize>,
}

fn heap() -> Heap {
    Heap {
        requested: ALLOCATED.load(Ordering::SeqCst),
        chunks: ALLOCATED_CHUNKS.load(Ordering::SeqCst),
        rss: rss_bytes(),
    }
}

/// The resident set size, from `/proc/self/statm` (Linux only).
fn rss_bytes() -> Option<usize> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: usize = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}

// ---------------------------------------------------------------------------
// Setup.

/// How big a run is.
#[derive(Clone, Copy)]
struct Scale {
    /// Live sessions (and as many expired ones).
    sessions: usize,
    /// Timed operations per phase.
    ops: usize,
    /// Untimed operations before each phase.
    warm_up_ops: usize,
    /// Expired records re-inserted between two sweep passes in phase (b).
    reinsert_batch: usize,
}

/// `cargo bench`: a million sessions.
const FULL: Scale = Scale {
    sessions: 1_000_000,
    ops: 200_000,
    warm_up_ops: 20_000,
    reinsert_batch: 2_000,
};

/// `cargo test --benches` (no `--bench` argument): a quick, unoptimized
/// smoke run; its numbers mean nothing.
const SMOKE: Scale = Scale {
    sessions: 10_000,
    ops: 2_000,
    warm_up_ops: 200,
    reinsert_batch: 100,
};

/// 2023-11-14T22:13:20Z: when the live sessions log in.
const T0: u64 = 1_700_000_000_000;
const MINUTE_MS: u64 = 60_000;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a tokio runtime")
}

fn keys(n: usize) -> Vec<SessionKey> {
    (0..n)
        .map(|_| SessionId::generate().expect("OS randomness").key())
        .collect()
}

/// Inserts one record per key; returns the mean time per `create`.
fn fill(
    rt: &tokio::runtime::Runtime,
    store: &MemoryStore,
    keys: &[SessionKey],
    record: impl Fn(usize) -> SessionRecord,
) -> Duration {
    let mut elapsed = Duration::ZERO;
    for (i, key) in keys.iter().enumerate() {
        let record = record(i);
        let started = Instant::now();
        let created = rt.block_on(store.create(key, &record)).expect("create");
        elapsed += started.elapsed();
        assert!(created, "key collision");
    }
    elapsed / u32::try_from(keys.len().max(1)).expect("few keys")
}

/// A live session of `subject`, logged in at `T0`: expires at `T0 + 15 min`.
fn live_record(subject: String) -> SessionRecord {
    SessionRecord::new(
        &Policy::default(),
        Timestamp::from_unix_millis(T0),
        Some(subject.into()),
        false,
    )
}

/// A session that logged in at `T0 - 20 min` and was never used again: it
/// expired at `T0 - 5 min`.
fn doomed_record(i: usize) -> SessionRecord {
    SessionRecord::new(
        &Policy::default(),
        Timestamp::from_unix_millis(T0 - 20 * MINUTE_MS),
        Some(format!("gone-{i}").into()),
        false,
    )
}

/// A subject the length of a UUID (36 bytes).
fn uuid_subject(i: usize) -> String {
    format!("{:08x}-0000-4000-8000-{:012x}", i as u32, i as u64 * 7919)
}

// ---------------------------------------------------------------------------
// Bytes per session.

struct MemoryRow {
    label: &'static str,
    empty: usize,
    delta: Heap,
    mean_create: Duration,
}

fn measure_memory(
    rt: &tokio::runtime::Runtime,
    label: &'static str,
    keys: &[SessionKey],
    subject: impl Fn(usize) -> String,
    clock: ManualClock,
) -> (MemoryStore, MemoryRow) {
    let before_store = heap();
    let store = MemoryStore::with_clock(clock);
    let empty = heap();
    let mean_create = fill(rt, &store, keys, |i| live_record(subject(i)));
    let full = heap();
    assert_eq!(store.len(), keys.len());
    let row = MemoryRow {
        label,
        empty: empty.requested - before_store.requested,
        delta: Heap {
            requested: full.requested - empty.requested,
            chunks: full.chunks - empty.chunks,
            rss: full.rss.zip(empty.rss).map(|(f, e)| f.saturating_sub(e)),
        },
        mean_create,
    };
    (store, row)
}

// ---------------------------------------------------------------------------
// Latency.

/// A small xorshift generator: no dependency, reproducible.
struct XorShift(u64);

impl XorShift {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n as u64) as usize
    }
}

/// Times `ops` load-then-touch operations on random live keys, one by one,
/// in nanoseconds. `activity` moves forward by a millisecond per operation,
/// so every touch really writes.
fn timed_ops(
    rt: &tokio::runtime::Runtime,
    store: &MemoryStore,
    live: &[SessionKey],
    rng: &mut XorShift,
    activity: &mut u64,
    ops: usize,
) -> Vec<u64> {
    let idle = Policy::default().idle_timeout();
    let mut latencies = Vec::with_capacity(ops);
    rt.block_on(async {
        for _ in 0..ops {
            let key = live[rng.below(live.len())];
            *activity += 1;
            let now = Timestamp::from_unix_millis(*activity);
            let expires_at = now.saturating_add(idle);
            let started = Instant::now();
            let record = store.load(&key).await.expect("load");
            let touched = store.touch(&key, now, expires_at).await.expect("touch");
            let elapsed = started.elapsed();
            black_box((record, touched));
            latencies.push(u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX));
        }
    });
    latencies
}

struct Percentiles {
    p50: u64,
    p99: u64,
    p999: u64,
    max: u64,
}

fn percentiles(mut latencies: Vec<u64>) -> Percentiles {
    latencies.sort_unstable();
    let at =
        |per_mille: usize| latencies[(latencies.len() * per_mille / 1000).min(latencies.len() - 1)];
    Percentiles {
        p50: at(500),
        p99: at(990),
        p999: at(999),
        max: *latencies.last().expect("some operations"),
    }
}

/// Median cost of the timing itself (two `Instant::now` calls).
fn timer_overhead() -> u64 {
    let mut samples: Vec<u64> = (0..100_000)
        .map(|_| {
            let started = Instant::now();
            let elapsed = black_box(started).elapsed();
            u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX)
        })
        .collect();
    samples.sort_unstable();
    samples[samples.len() / 2]
}

#[derive(Default)]
struct SweepStats {
    passes: usize,
    swept_by_sweep_expired: usize,
    swept_by_create: usize,
    reinserted: usize,
    /// When each `sweep_expired` pass started and ended.
    pass_spans: Vec<(Instant, Instant)>,
    longest_pass: Duration,
    total: Duration,
}

impl SweepStats {
    /// How long `sweep_expired` ran inside `[from, to]`.
    fn sweeping_within(&self, from: Instant, to: Instant) -> Duration {
        self.pass_spans
            .iter()
            .map(|&(start, end)| end.min(to).saturating_duration_since(start.max(from)))
            .sum()
    }
}

/// The sweeper of phase (b): sweeps, re-inserts a batch of expired records,
/// sweeps again, until `stop`. The first pass removes the million expired
/// records the phase starts with.
fn sweeper(
    store: &MemoryStore,
    doomed: &[SessionKey],
    batch: usize,
    barrier: &Barrier,
    stop: &AtomicBool,
) -> SweepStats {
    let rt = runtime();
    let mut stats = SweepStats::default();
    let mut cursor = 0;
    barrier.wait();
    let started = Instant::now();
    // Every pass and batch starts before the measuring thread signals stop.
    while !stop.load(Ordering::Acquire) {
        let pass_started = Instant::now();
        stats.swept_by_sweep_expired += store.sweep_expired();
        let pass_ended = Instant::now();
        stats.pass_spans.push((pass_started, pass_ended));
        stats.longest_pass = stats.longest_pass.max(pass_ended - pass_started);
        stats.passes += 1;
        if stop.load(Ordering::Acquire) {
            break;
        }
        // Each `create` also sweeps one shard: count what those removed.
        let before = store.len();
        let mut created = 0;
        for i in 0..batch {
            let index = (cursor + i) % doomed.len();
            let inserted = rt
                .block_on(store.create(&doomed[index], &doomed_record(index)))
                .expect("create");
            created += usize::from(inserted);
        }
        cursor = (cursor + batch) % doomed.len();
        stats.reinserted += created;
        stats.swept_by_create += (before + created).saturating_sub(store.len());
    }
    stats.total = started.elapsed();
    stats
}

/// `1000000` as `1,000,000`.
fn thousands(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, digit) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(digit);
    }
    out
}

fn micros(nanos: u64) -> String {
    format!("{:.2} µs", nanos as f64 / 1000.0)
}

fn main() {
    if std::env::args().any(|arg| arg == "--list") {
        return;
    }
    let scale = if std::env::args().any(|arg| arg == "--bench") {
        FULL
    } else {
        println!("memory_store: test mode (no --bench): a scaled-down smoke run");
        SMOKE
    };
    let sessions = scale.sessions;
    let ops = scale.ops;
    let count = thousands(sessions);
    let rt = runtime();
    println!("memory_store: generating keys …");
    let live = keys(sessions);
    let doomed = keys(sessions);
    let uuid_keys = keys(sessions);

    // Everything is inserted with the clock before any deadline, so the
    // sweep that every `create` runs on one shard removes nothing yet.
    let clock = ManualClock::new(Timestamp::from_unix_millis(T0 - 30 * MINUTE_MS));

    println!("memory_store: {count} sessions, subject \"user-{{i}}\" …");
    let (store, short_row) = measure_memory(
        &rt,
        "`user-{i}` (6–11 bytes)",
        &live,
        |i| format!("user-{i}"),
        clock.clone(),
    );

    println!("memory_store: {count} sessions, 36-byte subjects …");
    let (uuid_store, uuid_row) = measure_memory(
        &rt,
        "36 bytes (UUID-sized)",
        &uuid_keys,
        uuid_subject,
        ManualClock::new(Timestamp::from_unix_millis(T0 - 30 * MINUTE_MS)),
    );
    drop(uuid_store);
    drop(uuid_keys);

    println!("memory_store: adding {count} expired sessions …");
    let mean_create_to_2m = fill(&rt, &store, &doomed, doomed_record);
    assert_eq!(store.len(), 2 * sessions);
    // Now the doomed records are past their deadline, the live ones are not.
    clock.set(Timestamp::from_unix_millis(T0));

    let timer = timer_overhead();
    let mut rng = XorShift(0x9E37_79B9_7F4A_7C15);
    let mut activity = T0;

    // (a) No sweeping.
    println!("memory_store: phase (a), no sweep …");
    timed_ops(
        &rt,
        &store,
        &live,
        &mut rng,
        &mut activity,
        scale.warm_up_ops,
    );
    let window = Instant::now();
    let quiet = percentiles(timed_ops(&rt, &store, &live, &mut rng, &mut activity, ops));
    let quiet_window = window.elapsed();
    assert_eq!(store.len(), 2 * sessions, "nothing is swept in phase (a)");

    // A subject's sessions are found by a scan of every shard.
    println!("memory_store: sessions_of, a scan …");
    let mut scans: Vec<Duration> = (0..5)
        .map(|i| {
            let subject = format!("user-{}", i * 7919 % sessions);
            let started = Instant::now();
            let found = rt
                .block_on(store.sessions_of(&subject))
                .expect("sessions_of");
            let took = started.elapsed();
            assert_eq!(found.len(), 1, "one session per subject");
            took
        })
        .collect();
    scans.sort();
    let scan_median = scans[scans.len() / 2];

    // (b) A second thread sweeps all the while.
    println!("memory_store: phase (b), sweeping concurrently …");
    timed_ops(
        &rt,
        &store,
        &live,
        &mut rng,
        &mut activity,
        scale.warm_up_ops,
    );
    let barrier = Barrier::new(2);
    let stop = AtomicBool::new(false);
    let (sweeping, stats) = std::thread::scope(|scope| {
        let sweep = scope.spawn(|| sweeper(&store, &doomed, scale.reinsert_batch, &barrier, &stop));
        barrier.wait();
        let window_start = Instant::now();
        let latencies = timed_ops(&rt, &store, &live, &mut rng, &mut activity, ops);
        let window_end = Instant::now();
        stop.store(true, Ordering::Release);
        let stats = sweep.join().expect("the sweeper thread");
        let overlap = stats.sweeping_within(window_start, window_end);
        (
            percentiles(latencies),
            (stats, window_end - window_start, overlap),
        )
    });
    let (stats, sweeping_window, overlap) = stats;
    // The live sessions survived every sweep.
    assert!(store.len() >= sessions);
    for key in live.iter().step_by(997) {
        assert!(rt.block_on(store.load(key)).expect("load").is_some());
    }

    println!();
    println!("### MemoryStore: memory per session ({count} live sessions)");
    println!();
    println!(
        "| subject | heap per session (requested) | with glibc malloc rounding (est.) | RSS growth per session | mean `create` |"
    );
    println!("| --- | --- | --- | --- | --- |");
    for row in [&short_row, &uuid_row] {
        let per = |bytes: usize| bytes as f64 / sessions as f64;
        println!(
            "| {} | {:.1} B | {:.1} B | {} | {} |",
            row.label,
            per(row.delta.requested),
            per(row.delta.chunks),
            row.delta
                .rss
                .map_or_else(|| "n/a".to_owned(), |rss| format!("{:.1} B", per(rss))),
            micros(u64::try_from(row.mean_create.as_nanos()).unwrap_or(u64::MAX)),
        );
    }
    println!();
    println!(
        "Empty store: {} B. Budget: under 256 B per session (requested heap). \
         The RSS growth of the second row reuses memory freed before it and is a lower bound. \
         Mean `create` (each also sweeps one shard) while the store grew from {count} to \
         {} records: {}.",
        short_row.empty,
        thousands(2 * sessions),
        micros(u64::try_from(mean_create_to_2m.as_nanos()).unwrap_or(u64::MAX)),
    );
    println!();
    println!(
        "`sessions_of` (a scan of every shard) over {} records: median of 5, {:.1} ms.",
        thousands(2 * sessions),
        scan_median.as_secs_f64() * 1e3
    );
    println!();
    println!("### MemoryStore: `load` + `touch` latency, {count} live + {count} expired sessions");
    println!();
    println!("| phase | ops | wall time | p50 | p99 | p99.9 | max |");
    println!("| --- | --- | --- | --- | --- | --- | --- |");
    for (label, p, window) in [
        ("(a) no sweep", &quiet, quiet_window),
        ("(b) concurrent `sweep_expired`", &sweeping, sweeping_window),
    ] {
        println!(
            "| {label} | {} | {:.0} ms | {} | {} | {} | {} |",
            thousands(ops),
            window.as_secs_f64() * 1e3,
            micros(p.p50),
            micros(p.p99),
            micros(p.p999),
            micros(p.max),
        );
    }
    println!();
    let total = stats.total.as_secs_f64();
    println!(
        "During (b) the sweeper thread ran for {:.1} ms; `sweep_expired` was running for \
         {:.1} ms ({:.0}%) of the {:.0} ms measuring window (passes: {}, longest {:.1} ms), \
         which removed {} expired records; the one-shard sweeps of {} re-inserted records' \
         `create` removed {} more; {} records swept in all. \
         Timer overhead (two `Instant::now`): {} ns, included above.",
        total * 1e3,
        overlap.as_secs_f64() * 1e3,
        100.0 * overlap.as_secs_f64() / sweeping_window.as_secs_f64().max(1e-9),
        sweeping_window.as_secs_f64() * 1e3,
        stats.passes,
        stats.longest_pass.as_secs_f64() * 1e3,
        stats.swept_by_sweep_expired,
        stats.reinserted,
        stats.swept_by_create,
        stats.swept_by_sweep_expired + stats.swept_by_create,
        timer,
    );
}
