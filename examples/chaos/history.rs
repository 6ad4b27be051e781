//! The history file: one JSON object per line, written by the driver and
//! read by the checker.
//!
//! Times are microseconds of the driver's monotonic clock since the run
//! started (`send_us` just before the request's first byte is written,
//! `recv_us` just after the whole response is read), so the server's own
//! reading of the time for a request lies between the two.

use serde::{Deserialize, Serialize};

/// One line of the history.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(tag = "t", rename_all = "snake_case")]
pub enum Event {
    /// The first line: what ran, and the policy the nodes enforce.
    Config(Config),
    /// One HTTP request to a node and what came back.
    Request(Request),
    /// One injected fault, from its start to the moment it was undone.
    Fault(Fault),
    /// The wall clock read next to the monotonic one: the checker adds how
    /// far the two drifted apart to its tolerance.
    Clock(ClockSample),
}

/// The run's settings.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Config {
    pub store: String,
    pub seed: u64,
    pub clients: u32,
    pub nodes: u8,
    pub fault_seconds: u64,
    pub idle_ms: u64,
    pub absolute_ms: u64,
    pub remember_me_period_ms: u64,
    pub remember_me_absolute_ms: u64,
    pub renewal_interval_ms: u64,
    pub renewal_grace_ms: u64,
}

/// What a request asked of the app.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Op {
    /// `POST /login` without a session cookie: starts a lineage.
    Login,
    /// `POST /login` with the client's live session cookie: the old session
    /// must end (replacement), a new lineage starts.
    LoginOver,
    /// `GET /me`: a route that needs a session (`200` with the subject).
    Me,
    /// `POST /logout`.
    Logout,
    /// `POST /logout_everywhere`: every session of the subject.
    LogoutEverywhere,
}

/// Whether the request belongs to the fault phase or to the quiet
/// recovery phase after it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    #[default]
    Faults,
    Recovery,
}

/// One request and its answer.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Request {
    /// Unique in the run.
    pub id: u64,
    pub client: u32,
    pub node: u8,
    pub op: Option<Op>,
    #[serde(default)]
    pub phase: Phase,
    /// For a login: the subject and remember-me asked for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    #[serde(default)]
    pub remember_me: bool,
    /// The session cookie sent (the session ID), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sid: Option<String>,
    /// The driver's idea of the ID the session started with (the
    /// checker derives lineages itself, from `sid` and `set_sid`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lineage: Option<String>,
    /// A `GET /me` sent on purpose with an ID that a renewal replaced.
    #[serde(default)]
    pub replay: bool,
    pub send_us: u64,
    /// `None`: no answer (connection error or the driver's timeout).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recv_us: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// A session cookie set by the answer (a login, a renewal).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub set_sid: Option<String>,
    /// The answer cleared the session cookie.
    #[serde(default)]
    pub cleared: bool,
    /// The body of a `2xx` (the subject, for `GET /me`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
    /// Why there was no answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// The kinds of fault the driver injects.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FaultKind {
    /// The store's processes stopped (`SIGSTOP`), then continued.
    Pause,
    /// The store killed (Redis: `SIGKILL`, its data lost; PostgreSQL: an
    /// immediate shutdown, crash recovery at start) and started again.
    RestartCrash,
    /// The store shut down cleanly (Redis: `SHUTDOWN SAVE`; PostgreSQL: a
    /// fast shutdown) and started again, its data kept.
    RestartClean,
    /// Every connection of both nodes' store clients cut at once.
    Cut,
    /// One node's store connections cut and refused for a while.
    Partition,
}

impl FaultKind {
    pub fn name(self) -> &'static str {
        match self {
            FaultKind::Pause => "pause",
            FaultKind::RestartCrash => "restart_crash",
            FaultKind::RestartClean => "restart_clean",
            FaultKind::Cut => "cut",
            FaultKind::Partition => "partition",
        }
    }
}

/// One fault.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Fault {
    pub kind: FaultKind,
    pub start_us: u64,
    pub end_us: u64,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub detail: String,
}

/// The wall clock (Unix microseconds) at the monotonic `mono_us`, read
/// between two monotonic readings at most `width_us` apart.
#[derive(Clone, Copy, Debug, Serialize, Deserialize)]
pub struct ClockSample {
    pub mono_us: u64,
    pub wall_us: u64,
    pub width_us: u64,
}

/// Reads a history file's lines.
pub fn parse(text: &str) -> Result<Vec<Event>, String> {
    text.lines()
        .enumerate()
        .filter(|(_, line)| !line.trim().is_empty())
        .map(|(n, line)| serde_json::from_str(line).map_err(|err| format!("line {}: {err}", n + 1)))
        .collect()
}
