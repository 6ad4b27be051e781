//! Fault injection with a history checker: `scripts/chaos SECONDS STORE`
//! builds and runs this (`run`), then checks what it recorded (`check`).
//!
//! ```text
//! chaos run --store redis|postgres --url URL --pid-file FILE --restart CMD \
//!           --seconds N --history FILE [--clients N] [--seed N]
//! chaos check FILE
//! ```
//!
//! **`run`** starts two app nodes (two axum servers on loopback, each its
//! own `SessionLifetimeLayer` and its own store client) on one Redis or
//! PostgreSQL, each client going through its own in-process TCP proxy
//! (`proxy.rs`). The policy is short, so that deadlines are reached within
//! the run: idle 2 s, absolute 8 s, remember-me period 5 s and absolute
//! 12 s, a new ID every second with a 400 ms grace; the layer runs on the
//! real system clock. Tens of clients then act at random against either
//! node for `--seconds` (`client` below): logins (some with remember-me, on
//! eight subjects, so that a logout everywhere ends other clients'
//! sessions), activity, bursts of concurrent requests on one session (two
//! tabs; sometimes one of them logs out), idle gaps just under and just
//! over the idle limit, logouts, logouts everywhere, logins over a live
//! session, replays of an ID a renewal replaced (within and after its
//! grace) and of an ID just logged out. Meanwhile `faults` injects, one at a
//! time at random: the store paused (`SIGSTOP`, then `SIGCONT`, to the PID in
//! `--pid-file` and its children), restarted (`--restart CMD crash|clean`,
//! a command the script provides), every store connection cut (both
//! proxies), or one node partitioned from the store for a while. Every
//! request goes to the history (`history.rs`, JSON lines) with its client,
//! node, the session ID it carried, the ID an answer set, its send and
//! receive times on the monotonic clock and its status. After the fault
//! phase comes a quiet recovery phase: each node must serve a fresh login
//! and a request on it, without a restart (retrying on `503` for up to
//! 30 s).
//!
//! **`check`** runs the offline checker (`check.rs`) on a history, prints
//! one summary line (`N requests, M faults, K violations`) and a short
//! breakdown, and exits non-zero on any violation.

mod check;
mod history;
mod http;
mod proxy;

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::extract::Query;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use serde::Deserialize;
use tokio::task::JoinSet;
use tower_session_lifetime::{
    store::LifetimeStore, Policy, PostgresStore, RedisStore, SessionError, SessionHandle,
    SessionLifetimeLayer,
};

use crate::history::{ClockSample, Config, Event, Fault, FaultKind, Op, Phase, Request};
use crate::http::{Conn, CookieChange, Reply};
use crate::proxy::Proxy;

/// How many subjects the clients log in as.
const SUBJECTS: u64 = 8;
/// How long a request may take before the driver records it as unanswered.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// How long each node has to recover after the faults.
const RECOVERY_TIMEOUT: Duration = Duration::from_secs(30);

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("run") => match Options::parse(&args[1..]) {
            Ok(options) => {
                let runtime = tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .enable_all()
                    .build()
                    .expect("a tokio runtime");
                match runtime.block_on(drive(options)) {
                    Ok(()) => ExitCode::SUCCESS,
                    Err(message) => {
                        eprintln!("chaos: {message}");
                        ExitCode::from(2)
                    }
                }
            }
            Err(message) => {
                eprintln!("chaos: {message}\n{USAGE}");
                ExitCode::from(2)
            }
        },
        Some("check") if args.len() == 2 => {
            let text = match std::fs::read_to_string(&args[1]) {
                Ok(text) => text,
                Err(err) => {
                    eprintln!("chaos: cannot read {}: {err}", args[1]);
                    return ExitCode::from(2);
                }
            };
            let events = match history::parse(&text) {
                Ok(events) => events,
                Err(err) => {
                    eprintln!("chaos: {}: {err}", args[1]);
                    return ExitCode::from(2);
                }
            };
            let report = check::check(&events);
            println!("{report}");
            if report.violations.is_empty() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        _ => {
            eprintln!("{USAGE}");
            ExitCode::from(2)
        }
    }
}

const USAGE: &str = "usage: chaos run --store redis|postgres --url URL --pid-file FILE \
--restart CMD --seconds N --history FILE [--clients N] [--seed N]\n       chaos check FILE";

/// The options of `run`.
struct Options {
    store: String,
    url: String,
    pid_file: String,
    restart: String,
    seconds: u64,
    history: String,
    clients: u32,
    seed: u64,
}

impl Options {
    fn parse(args: &[String]) -> Result<Self, String> {
        let mut options = Options {
            store: String::new(),
            url: String::new(),
            pid_file: String::new(),
            restart: String::new(),
            seconds: 30,
            history: String::new(),
            clients: 24,
            seed: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(1),
        };
        let mut args = args.iter();
        while let Some(flag) = args.next() {
            let value = args
                .next()
                .ok_or_else(|| format!("{flag} needs a value"))?
                .clone();
            let number = |value: &str| {
                value
                    .parse::<u64>()
                    .map_err(|_| format!("{flag} {value:?} is not a number"))
            };
            match flag.as_str() {
                "--store" => options.store = value,
                "--url" => options.url = value,
                "--pid-file" => options.pid_file = value,
                "--restart" => options.restart = value,
                "--seconds" => options.seconds = number(&value)?,
                "--history" => options.history = value,
                "--clients" => options.clients = number(&value)? as u32,
                "--seed" => options.seed = number(&value)?,
                _ => return Err(format!("unknown option {flag}")),
            }
        }
        if !matches!(options.store.as_str(), "redis" | "postgres") {
            return Err("--store must be redis or postgres".into());
        }
        for (name, value) in [
            ("--url", &options.url),
            ("--pid-file", &options.pid_file),
            ("--restart", &options.restart),
            ("--history", &options.history),
        ] {
            if value.is_empty() {
                return Err(format!("{name} is missing"));
            }
        }
        Ok(options)
    }
}

/// The policy of both nodes: short, so that every deadline is reached
/// within the run.
fn policy_config(options: &Options) -> Config {
    Config {
        store: options.store.clone(),
        seed: options.seed,
        clients: options.clients,
        nodes: 2,
        fault_seconds: options.seconds,
        idle_ms: 2_000,
        absolute_ms: 8_000,
        remember_me_period_ms: 5_000,
        remember_me_absolute_ms: 12_000,
        renewal_interval_ms: 1_000,
        renewal_grace_ms: 400,
    }
}

fn policy(config: &Config) -> Policy {
    let ms = Duration::from_millis;
    Policy::builder()
        .idle_timeout(ms(config.idle_ms))
        .absolute_timeout(ms(config.absolute_ms))
        .remember_me_period(ms(config.remember_me_period_ms))
        .remember_me_absolute_timeout(ms(config.remember_me_absolute_ms))
        .renewal_interval(ms(config.renewal_interval_ms))
        .renewal_grace(ms(config.renewal_grace_ms))
        .build()
        .expect("a valid policy")
}

// --- The app each node serves -------------------------------------------

#[derive(Deserialize)]
struct LoginQuery {
    user: String,
    remember: Option<u8>,
}

/// A store failure is the documented `503`; any other error a `500`,
/// which the checker reports.
fn failed(err: SessionError) -> Response {
    match err {
        SessionError::Store(_) => StatusCode::SERVICE_UNAVAILABLE.into_response(),
        other => (StatusCode::INTERNAL_SERVER_ERROR, format!("{other:?}")).into_response(),
    }
}

/// `POST /login?user=U&remember=1`: starts a session (ending the one the
/// request came with, if any).
async fn login(session: SessionHandle, Query(query): Query<LoginQuery>) -> Response {
    match session.login(query.user, query.remember == Some(1)).await {
        Ok(()) => "ok".into_response(),
        Err(err) => failed(err),
    }
}

/// `GET /me`: the subject of the session, or `401` for a visitor.
async fn me(session: SessionHandle) -> Response {
    match session.subject() {
        Some(subject) if session.is_active() => subject.into_response(),
        _ => StatusCode::UNAUTHORIZED.into_response(),
    }
}

async fn logout(session: SessionHandle) -> Response {
    match session.logout().await {
        Ok(()) => "ok".into_response(),
        Err(err) => failed(err),
    }
}

async fn logout_everywhere(session: SessionHandle) -> Response {
    match session.logout_everywhere().await {
        Ok(ended) => ended.to_string().into_response(),
        Err(err) => failed(err),
    }
}

/// One node: the routes behind the layer on `store`, served on a free
/// loopback port.
async fn start_node(store: impl LifetimeStore, policy: Policy) -> Result<SocketAddr, String> {
    let app = Router::new()
        .route("/login", post(login))
        .route("/me", get(me))
        .route("/logout", post(logout))
        .route("/logout_everywhere", post(logout_everywhere))
        .layer(SessionLifetimeLayer::new(store).with_policy(policy));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|err| format!("cannot listen: {err}"))?;
    let address = listener.local_addr().map_err(|err| err.to_string())?;
    tokio::spawn(async move {
        if let Err(err) = axum::serve(listener, app).await {
            eprintln!("chaos: node {address} stopped: {err}");
        }
    });
    Ok(address)
}

// --- The run ---------------------------------------------------------------

/// What every task of the run shares.
struct Run {
    base: Instant,
    /// The end of the fault phase.
    end: Instant,
    nodes: [SocketAddr; 2],
    config: Config,
    history: mpsc::Sender<Event>,
    next_id: AtomicU64,
}

impl Run {
    fn now_us(&self) -> u64 {
        self.base.elapsed().as_micros() as u64
    }

    fn record(&self, event: Event) {
        let _ = self.history.send(event);
    }

    fn over(&self) -> bool {
        Instant::now() >= self.end
    }
}

async fn drive(options: Options) -> Result<(), String> {
    let config = policy_config(&options);
    let policy = policy(&config);
    let target = store_address(&options.url)?;
    let proxies = [
        Proxy::start(target).await.map_err(|err| err.to_string())?,
        Proxy::start(target).await.map_err(|err| err.to_string())?,
    ];
    let urls = proxies.each_ref().map(|proxy| {
        options.url.replace(
            &format!("127.0.0.1:{}", target.port()),
            &format!("127.0.0.1:{}", proxy.address().port()),
        )
    });
    let mut _purge = None;
    let nodes = if options.store == "redis" {
        let open = |url: &str| RedisStore::open(url).map_err(|err| format!("{url}: {err}"));
        [
            start_node(open(&urls[0])?, policy).await?,
            start_node(open(&urls[1])?, policy).await?,
        ]
    } else {
        let open = |url: &str| PostgresStore::open(url).map_err(|err| format!("{url}: {err}"));
        let first = open(&urls[0])?;
        first
            .migrate()
            .await
            .map_err(|err| format!("migrate: {err}"))?;
        let second = open(&urls[1])?;
        // Expired rows purged concurrently with everything else.
        _purge = Some(second.spawn_purge(Duration::from_secs(3)));
        [
            start_node(first, policy).await?,
            start_node(second, policy).await?,
        ]
    };

    let file = std::fs::File::create(&options.history)
        .map_err(|err| format!("cannot create {}: {err}", options.history))?;
    let (history, lines) = mpsc::channel::<Event>();
    let writer = std::thread::spawn(move || -> std::io::Result<()> {
        use std::io::Write as _;
        let mut file = std::io::BufWriter::new(file);
        for event in lines {
            serde_json::to_writer(&mut file, &event)?;
            file.write_all(b"\n")?;
        }
        file.flush()
    });
    history
        .send(Event::Config(config.clone()))
        .expect("the writer runs");
    let base = Instant::now();
    let run = Arc::new(Run {
        base,
        end: base + Duration::from_secs(options.seconds),
        nodes,
        config,
        history,
        next_id: AtomicU64::new(0),
    });
    let proxies = Arc::new(proxies);

    let clock = tokio::spawn(sample_clock(Arc::clone(&run)));
    let faults = tokio::spawn(faults(
        Arc::clone(&run),
        Arc::clone(&proxies),
        options.pid_file.clone(),
        options.restart.clone(),
        Rng::new(options.seed ^ 0xfa17),
    ));
    let mut clients = JoinSet::new();
    for client in 0..options.clients {
        clients.spawn(client_loop(
            Arc::clone(&run),
            client,
            Rng::new(options.seed ^ (u64::from(client) + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15)),
        ));
    }
    while let Some(result) = clients.join_next().await {
        result.map_err(|err| format!("a client failed: {err}"))?;
    }
    let injected = faults
        .await
        .map_err(|err| format!("the fault injector failed: {err}"))?;

    // Quiet: every fault undone; each node must recover by itself.
    tokio::time::sleep(Duration::from_secs(1)).await;
    for node in 0..2u8 {
        recover(&run, node).await;
    }
    clock.abort();
    let requests = run.next_id.load(Ordering::SeqCst);
    drop(run);
    writer
        .join()
        .map_err(|_| "the history writer panicked".to_owned())?
        .map_err(|err| format!("cannot write the history: {err}"))?;
    println!(
        "chaos: {requests} requests, {injected} faults on {} in {} s; history in {}",
        options.store, options.seconds, options.history
    );
    Ok(())
}

/// The store's loopback address in its URL (`…@127.0.0.1:PORT/…`).
fn store_address(url: &str) -> Result<SocketAddr, String> {
    let rest = url
        .split("127.0.0.1:")
        .nth(1)
        .ok_or_else(|| format!("{url} names no 127.0.0.1 port"))?;
    let port: u16 = rest
        .split(|c: char| !c.is_ascii_digit())
        .next()
        .and_then(|port| port.parse().ok())
        .ok_or_else(|| format!("{url} names no port"))?;
    Ok(SocketAddr::from(([127, 0, 0, 1], port)))
}

/// Samples the wall clock against the monotonic one twice a second.
async fn sample_clock(run: Arc<Run>) {
    loop {
        let mut best: Option<ClockSample> = None;
        for _ in 0..3 {
            let before = run.now_us();
            let wall = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_micros() as u64)
                .unwrap_or(0);
            let after = run.now_us();
            let sample = ClockSample {
                mono_us: after,
                wall_us: wall,
                width_us: after - before,
            };
            if best.is_none_or(|best| sample.width_us < best.width_us) {
                best = Some(sample);
            }
        }
        if let Some(sample) = best {
            run.record(Event::Clock(sample));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

// --- Requests --------------------------------------------------------------

/// What a client asks, and with which session.
#[derive(Clone)]
struct Ask {
    client: u32,
    node: u8,
    op: Op,
    phase: Phase,
    sid: Option<String>,
    lineage: Option<String>,
    subject: Option<String>,
    remember_me: bool,
    replay: bool,
}

impl Ask {
    fn new(client: u32, node: u8, op: Op) -> Self {
        Ask {
            client,
            node,
            op,
            phase: Phase::Faults,
            sid: None,
            lineage: None,
            subject: None,
            remember_me: false,
            replay: false,
        }
    }

    fn with_session(mut self, session: &Session) -> Self {
        self.sid = Some(session.sid.clone());
        self.lineage = Some(session.lineage.clone());
        self
    }
}

/// Sends `ask` on `conn` and records it; `None` if there was no answer.
async fn send(run: &Run, conn: &mut Conn, ask: Ask) -> (Request, Option<Reply>) {
    let (method, path) = match ask.op {
        Op::Login | Op::LoginOver => (
            "POST",
            format!(
                "/login?user={}&remember={}",
                ask.subject.as_deref().unwrap_or(""),
                u8::from(ask.remember_me)
            ),
        ),
        Op::Me => ("GET", "/me".to_owned()),
        Op::Logout => ("POST", "/logout".to_owned()),
        Op::LogoutEverywhere => ("POST", "/logout_everywhere".to_owned()),
    };
    let mut send_us = None;
    let mut on_send = || {
        // The first attempt's time: earlier is the conservative side.
        send_us.get_or_insert_with(|| run.now_us());
    };
    let answer = tokio::time::timeout(
        REQUEST_TIMEOUT,
        conn.send(method, &path, ask.sid.as_deref(), &mut on_send),
    )
    .await;
    let recv_us = run.now_us();
    let send_us = send_us.unwrap_or(recv_us);
    let mut request = Request {
        id: run.next_id.fetch_add(1, Ordering::SeqCst),
        client: ask.client,
        node: ask.node,
        op: Some(ask.op),
        phase: ask.phase,
        subject: ask.subject,
        remember_me: ask.remember_me,
        sid: ask.sid,
        lineage: ask.lineage,
        replay: ask.replay,
        send_us,
        ..Request::default()
    };
    let reply = match answer {
        Ok(Ok(reply)) => {
            request.recv_us = Some(recv_us);
            request.status = Some(reply.status);
            match &reply.cookie {
                Some(CookieChange::Set(sid)) => request.set_sid = Some(sid.clone()),
                Some(CookieChange::Cleared) => request.cleared = true,
                None => {}
            }
            if (200..300).contains(&reply.status) && ask.op == Op::Me {
                request.body = Some(reply.body.clone());
            }
            Some(reply)
        }
        Ok(Err(err)) => {
            request.error = Some(err.to_string());
            None
        }
        Err(_) => {
            *conn = Conn::new(run.nodes[usize::from(ask.node)]);
            request.error = Some(format!("no answer in {REQUEST_TIMEOUT:?}"));
            None
        }
    };
    run.record(Event::Request(request.clone()));
    (request, reply)
}

// --- Clients ---------------------------------------------------------------

/// A client's session as its browser holds it.
#[derive(Clone)]
struct Session {
    sid: String,
    lineage: String,
    remember_me: bool,
}

/// An ID a renewal replaced, kept to replay it.
struct Replaced {
    sid: String,
    lineage: String,
    at: Instant,
}

/// What the client does with its session after an answer to a request
/// that carried `sent`.
fn follow(session: &mut Option<Session>, old: &mut Option<Replaced>, sent: &str, reply: &Reply) {
    let Some(current) = session.as_mut() else {
        return;
    };
    if current.sid != sent {
        return;
    }
    match &reply.cookie {
        Some(CookieChange::Cleared) => *session = None,
        Some(CookieChange::Set(new)) if new != sent => {
            *old = Some(Replaced {
                sid: current.sid.clone(),
                lineage: current.lineage.clone(),
                at: Instant::now(),
            });
            current.sid = new.clone();
        }
        _ if reply.status == 401 => *session = None,
        _ => {}
    }
}

/// One client: a browser with one session at a time, acting at random
/// until the fault phase ends.
async fn client_loop(run: Arc<Run>, client: u32, mut rng: Rng) {
    let mut conns = run.nodes.map(Conn::new);
    let mut session: Option<Session> = None;
    let mut old: Option<Replaced> = None;
    let idle = Duration::from_millis(run.config.idle_ms);
    let period = Duration::from_millis(run.config.remember_me_period_ms);
    let grace = run.config.renewal_grace_ms;
    while !run.over() {
        let node = rng.below(2) as u8;
        let conn = &mut conns[usize::from(node)];
        if let Some(replaced) = old.take().filter(|_| rng.chance(40)) {
            // The ID a renewal just replaced, replayed within its grace or
            // after it, at random: admitted only within.
            let target = replaced.at + Duration::from_millis(rng.range(0, 2 * grace));
            tokio::time::sleep_until(target.into()).await;
            let mut ask = Ask::new(client, node, Op::Me);
            ask.sid = Some(replaced.sid);
            ask.lineage = Some(replaced.lineage);
            ask.replay = true;
            send(&run, conn, ask).await;
            continue;
        }
        tokio::time::sleep(Duration::from_millis(rng.range(50, 400))).await;
        let Some(current) = session.clone() else {
            let mut ask = Ask::new(client, node, Op::Login);
            ask.subject = Some(format!("user{}", rng.below(SUBJECTS)));
            ask.remember_me = rng.chance(30);
            let (request, reply) = send(&run, conn, ask.clone()).await;
            match (reply, request.set_sid) {
                (Some(reply), Some(sid)) if reply.status == 200 => {
                    session = Some(Session {
                        lineage: sid.clone(),
                        sid,
                        remember_me: ask.remember_me,
                    });
                }
                _ => tokio::time::sleep(Duration::from_millis(rng.range(100, 300))).await,
            }
            continue;
        };
        let limit = if current.remember_me { period } else { idle };
        let roll = rng.below(1000);
        let op = match roll {
            0..550 => Op::Me,
            550..630 => {
                burst(&run, client, &current, &mut session, &mut old, &mut rng).await;
                continue;
            }
            630..660 => {
                // Past the idle limit: the next request must be refused.
                let over = Duration::from_millis(rng.range(30, 700));
                tokio::time::sleep(limit + over).await;
                Op::Me
            }
            660..720 => {
                // Just under it: admitted (unless another deadline came).
                let under = Duration::from_millis(rng.range(50, 400));
                tokio::time::sleep(limit - under).await;
                Op::Me
            }
            720..735 => Op::Logout,
            735..743 => Op::LogoutEverywhere,
            743..753 => Op::LoginOver,
            _ => Op::Me,
        };
        let mut ask = Ask::new(client, node, op).with_session(&current);
        if op == Op::LoginOver {
            ask.subject = Some(format!("user{}", rng.below(SUBJECTS)));
            ask.remember_me = rng.chance(30);
        }
        let (request, reply) = send(&run, conn, ask.clone()).await;
        let Some(reply) = reply else {
            continue;
        };
        match op {
            Op::LoginOver if reply.status == 200 => {
                if let Some(sid) = request.set_sid {
                    session = Some(Session {
                        lineage: sid.clone(),
                        sid,
                        remember_me: ask.remember_me,
                    });
                    old = None;
                    if rng.chance(30) {
                        // The replaced session must be refused now.
                        let probe =
                            Ask::new(client, rng.below(2) as u8, Op::Me).with_session(&current);
                        let conn = &mut conns[usize::from(probe.node)];
                        send(&run, conn, probe).await;
                    }
                }
            }
            Op::Logout | Op::LogoutEverywhere if reply.status == 200 => {
                session = None;
                old = None;
                if rng.chance(30) {
                    // The logged-out session, replayed on either node.
                    let probe = Ask::new(client, rng.below(2) as u8, Op::Me).with_session(&current);
                    let conn = &mut conns[usize::from(probe.node)];
                    send(&run, conn, probe).await;
                }
            }
            _ => {
                follow(&mut session, &mut old, &current.sid, &reply);
                if reply.status == 503 {
                    tokio::time::sleep(Duration::from_millis(rng.range(50, 200))).await;
                }
            }
        }
    }
}

/// Two or three requests at once on one session, on either node, each on a
/// connection of its own (tabs); sometimes one of them is a logout. If a
/// logout was acknowledged while another request renewed the ID, the new
/// ID is tried once more: it must be refused.
async fn burst(
    run: &Arc<Run>,
    client: u32,
    current: &Session,
    session: &mut Option<Session>,
    old: &mut Option<Replaced>,
    rng: &mut Rng,
) {
    let count = rng.range(2, 4);
    let with_logout = rng.chance(15);
    let mut tasks = JoinSet::new();
    for i in 0..count {
        let op = if with_logout && i == 0 {
            Op::Logout
        } else {
            Op::Me
        };
        let ask = Ask::new(client, rng.below(2) as u8, op).with_session(current);
        let run = Arc::clone(run);
        tasks.spawn(async move {
            let mut conn = Conn::new(run.nodes[usize::from(ask.node)]);
            send(&run, &mut conn, ask).await
        });
    }
    let mut logged_out = false;
    let mut renewed_to = None;
    let mut replies = Vec::new();
    while let Some(Ok((request, reply))) = tasks.join_next().await {
        if let Some(reply) = reply {
            if request.op == Some(Op::Logout) && reply.status == 200 {
                logged_out = true;
            }
            if let Some(sid) = &request.set_sid {
                renewed_to = Some(sid.clone());
            }
            replies.push((request.recv_us, reply));
        }
    }
    replies.sort_by_key(|(recv, _)| *recv);
    for (_, reply) in &replies {
        follow(session, old, &current.sid, reply);
    }
    if logged_out {
        *session = None;
        *old = None;
        if let Some(sid) = renewed_to {
            let mut probe = Ask::new(client, rng.below(2) as u8, Op::Me).with_session(current);
            probe.sid = Some(sid);
            let mut conn = Conn::new(run.nodes[usize::from(probe.node)]);
            send(run, &mut conn, probe).await;
        }
    }
}

/// After the faults: a fresh login and a request on it, on `node`,
/// retried while the node answers `503` (a pool may still hold a
/// connection the faults broke), for up to [`RECOVERY_TIMEOUT`].
async fn recover(run: &Run, node: u8) {
    let client = run.config.clients + u32::from(node);
    let mut conn = Conn::new(run.nodes[usize::from(node)]);
    let give_up = Instant::now() + RECOVERY_TIMEOUT;
    while Instant::now() < give_up {
        let mut ask = Ask::new(client, node, Op::Login);
        ask.phase = Phase::Recovery;
        ask.subject = Some(format!("recovery{node}"));
        let (request, _) = send(run, &mut conn, ask).await;
        if let (Some(200), Some(sid)) = (request.status, request.set_sid) {
            let mut ask = Ask::new(client, node, Op::Me);
            ask.phase = Phase::Recovery;
            ask.lineage = Some(sid.clone());
            ask.sid = Some(sid);
            let (request, _) = send(run, &mut conn, ask).await;
            if request.status == Some(200) {
                println!(
                    "chaos: node {node} recovered ({} µs after the faults ended)",
                    request
                        .recv_us
                        .unwrap_or(0)
                        .saturating_sub(run.end.duration_since(run.base).as_micros() as u64)
                );
                return;
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    eprintln!("chaos: node {node} did not recover in {RECOVERY_TIMEOUT:?}");
}

// --- Faults ------------------------------------------------------------------

/// Injects one fault at a time, at random, until the fault phase ends;
/// returns how many. Each is undone before the next starts, and before this
/// returns.
async fn faults(
    run: Arc<Run>,
    proxies: Arc<[Proxy; 2]>,
    pid_file: String,
    restart: String,
    mut rng: Rng,
) -> u64 {
    let mut count = 0;
    loop {
        let gap = Duration::from_millis(rng.range(1_500, 5_000));
        if Instant::now() + gap >= run.end {
            return count;
        }
        tokio::time::sleep(gap).await;
        let roll = rng.below(100);
        let kind = match roll {
            0..30 => FaultKind::Pause,
            30..45 => FaultKind::RestartCrash,
            45..60 => FaultKind::RestartClean,
            60..80 => FaultKind::Cut,
            _ => FaultKind::Partition,
        };
        let start_us = run.now_us();
        let detail = match kind {
            FaultKind::Pause => {
                let hold = Duration::from_millis(rng.range(500, 4_000));
                match Paused::stop(&pid_file) {
                    Ok(paused) => {
                        tokio::time::sleep(hold).await;
                        let processes = paused.pids.len();
                        drop(paused);
                        format!("{} ms, {processes} processes", hold.as_millis())
                    }
                    Err(err) => format!("failed: {err}"),
                }
            }
            FaultKind::RestartCrash | FaultKind::RestartClean => {
                let mode = if kind == FaultKind::RestartCrash {
                    "crash"
                } else {
                    "clean"
                };
                let command = restart.clone();
                let output = tokio::task::spawn_blocking(move || {
                    std::process::Command::new(command).arg(mode).output()
                })
                .await;
                match output {
                    Ok(Ok(output)) if output.status.success() => String::new(),
                    Ok(Ok(output)) => {
                        let message = format!(
                            "failed ({}): {}",
                            output.status,
                            String::from_utf8_lossy(&output.stderr).trim()
                        );
                        eprintln!("chaos: restart {message}");
                        message
                    }
                    Ok(Err(err)) => format!("failed: {err}"),
                    Err(err) => format!("failed: {err}"),
                }
            }
            FaultKind::Cut => {
                for proxy in proxies.iter() {
                    proxy.cut();
                }
                String::new()
            }
            FaultKind::Partition => {
                let node = rng.below(2) as usize;
                let hold = Duration::from_millis(rng.range(1_000, 3_000));
                proxies[node].refuse(true);
                proxies[node].cut();
                tokio::time::sleep(hold).await;
                proxies[node].refuse(false);
                format!("node {node}, {} ms", hold.as_millis())
            }
        };
        count += 1;
        run.record(Event::Fault(Fault {
            kind,
            start_us,
            end_us: run.now_us(),
            detail,
        }));
    }
}

/// The store's processes, stopped; continued when dropped (also if the
/// driver panics meanwhile).
struct Paused {
    pids: Vec<u32>,
}

impl Paused {
    /// Stops the process in `pid_file` (first line), then its children
    /// (PostgreSQL's backends: stopping the postmaster alone leaves them
    /// serving).
    fn stop(pid_file: &str) -> Result<Self, String> {
        let text = std::fs::read_to_string(pid_file).map_err(|err| format!("{pid_file}: {err}"))?;
        let pid: u32 = text
            .lines()
            .next()
            .and_then(|line| line.trim().parse().ok())
            .ok_or_else(|| format!("{pid_file} holds no PID"))?;
        signal("STOP", &[pid])?;
        let mut paused = Paused { pids: vec![pid] };
        let children = children_of(pid);
        if !children.is_empty() {
            signal("STOP", &children)?;
            paused.pids.extend(children);
        }
        Ok(paused)
    }
}

impl Drop for Paused {
    fn drop(&mut self) {
        if let Err(err) = signal("CONT", &self.pids) {
            eprintln!("chaos: cannot continue the store: {err}");
        }
    }
}

fn signal(name: &str, pids: &[u32]) -> Result<(), String> {
    let status = std::process::Command::new("kill")
        .arg(format!("-{name}"))
        .args(pids.iter().map(u32::to_string))
        .status()
        .map_err(|err| format!("kill: {err}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("kill -{name} {pids:?}: {status}"))
    }
}

/// The processes whose parent is `pid`, from `/proc`.
fn children_of(pid: u32) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|entry| {
            let entry = entry.ok()?;
            let child: u32 = entry.file_name().to_str()?.parse().ok()?;
            let stat = std::fs::read_to_string(entry.path().join("stat")).ok()?;
            // "pid (comm) state ppid ...": comm may hold spaces.
            let after = &stat[stat.rfind(')')? + 1..];
            let parent: u32 = after.split_whitespace().nth(1)?.parse().ok()?;
            (parent == pid).then_some(child)
        })
        .collect()
}

// --- Randomness --------------------------------------------------------------

/// SplitMix64: small, seeded, good enough to pick actions.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        Rng(seed)
    }

    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// In `0..n`.
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    /// In `low..high`.
    fn range(&mut self, low: u64, high: u64) -> u64 {
        low + self.below(high - low)
    }

    /// True with `percent` % probability.
    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}
