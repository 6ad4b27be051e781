//! The offline history checker: reads what the driver recorded and says
//! whether any answer broke a rule of the layer.
//!
//! # Lineages
//!
//! A session keeps its identity across ID renewals. The checker rebuilds
//! that from the cookies alone, in the order answers arrived: an ID set by a
//! login's answer starts a *lineage*; an ID set by any other answer (a
//! renewal) joins the lineage of the ID the request carried, and that
//! answer *acknowledges* the renewal of the old ID.
//!
//! # What is admitted
//!
//! A request carrying a session ID on a route that needs a session
//! (`GET /me`, `POST /logout`, `POST /logout_everywhere`, and `POST /login`
//! over a live session) was admitted iff it got a `2xx`: the layer answers
//! `401` (reject) for a session it does not admit and `503` when the store
//! cannot say.
//!
//! # The rules, checked conservatively
//!
//! The server reads its clock for a request somewhere between the
//! request's `send_us` and `recv_us`. Every check is written so that no
//! placement of the server's reading within those bounds could make a legal
//! answer look illegal, yet an answer that is illegal for every placement is
//! caught. `tol` is the crate's documented resolution (one millisecond:
//! "Milliseconds are the resolution of every rule in this crate", `src/time.rs`)
//! plus how far the wall clock the layer reads drifted from the driver's
//! monotonic clock during the run (measured from the clock samples).
//!
//! - **Logout sticks**: no request admitted that was sent at or after the
//!   acknowledgement (`recv_us` of a `2xx`) of a logout of its lineage, of a
//!   login over it (replacement), or of a logout everywhere of its subject
//!   (for lineages whose login was acknowledged no later than that logout
//!   everywhere was sent).
//! - **Absolute deadline**: none admitted with `send_us >= login recv_us +
//!   absolute (remember-me absolute) + tol`: the session's creation time is
//!   at most the login's `recv_us`.
//! - **Idle deadline**: none admitted with `send_us >= last + idle
//!   (remember-me period) + tol`, where `last` bounds from above the last
//!   activity the store could hold when it was admitted: the latest of the
//!   login's `recv_us` and the `recv_us` of every other request of the
//!   lineage that was sent before this one's answer arrived and may have
//!   counted as activity (anything but a `401`: a `503` may follow a touch
//!   that was written; a request without an answer makes the bound
//!   unknown, and the request is not judged).
//! - **Renewal grace**: an ID whose renewal was acknowledged is admitted
//!   only for requests sent before that acknowledgement's `recv_us` plus the
//!   renewal grace plus `tol` (the grace counts from the renewing request's
//!   admission).
//! - **Right session**: a `2xx` of `GET /me` names the lineage's subject.
//! - **Answers**: every request got an answer; no `5xx` but the documented
//!   `503` (store unavailable); no status the app does not give.
//! - **Recovery**: in the quiet phase after the faults, every node served a
//!   fresh login and a `GET /me` on it.

use std::collections::{BTreeMap, HashMap};
use std::fmt;

use crate::history::{Event, FaultKind, Op, Phase, Request};

/// The layer's documented resolution: timestamps are whole milliseconds.
pub const RESOLUTION_US: u64 = 1_000;

/// A kind of rule broken.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    AfterLogout,
    AfterLogoutEverywhere,
    AfterReplacement,
    IdleDeadline,
    AbsoluteDeadline,
    RenewalGrace,
    WrongSubject,
    ServerError,
    NoAnswer,
    UnexpectedStatus,
    Recovery,
    BadHistory,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::AfterLogout => "admitted_after_logout",
            Kind::AfterLogoutEverywhere => "admitted_after_logout_everywhere",
            Kind::AfterReplacement => "admitted_after_login_over_it",
            Kind::IdleDeadline => "admitted_past_idle_deadline",
            Kind::AbsoluteDeadline => "admitted_past_absolute_deadline",
            Kind::RenewalGrace => "old_id_admitted_past_grace",
            Kind::WrongSubject => "wrong_subject",
            Kind::ServerError => "5xx_not_503",
            Kind::NoAnswer => "no_answer",
            Kind::UnexpectedStatus => "unexpected_status",
            Kind::Recovery => "node_not_recovered",
            Kind::BadHistory => "bad_history",
        }
    }
}

/// One broken rule.
#[derive(Clone, Debug)]
pub struct Violation {
    pub kind: Kind,
    /// The request that broke it (`None` for a node's recovery).
    pub request: Option<u64>,
    pub message: String,
}

/// What the checker found.
#[derive(Debug, Default)]
pub struct Report {
    pub requests: usize,
    pub faults: BTreeMap<FaultKind, usize>,
    pub violations: Vec<Violation>,
    pub tolerance_us: u64,
    pub statuses: BTreeMap<String, usize>,
    pub lineages: usize,
    pub renewals: usize,
    /// Admitted requests judged by every deadline rule.
    pub judged: usize,
    /// Admitted requests whose idle bound was unknown (a request of the
    /// lineage got no answer).
    pub unjudged_idle: usize,
    /// The smallest margin (µs) by which an admitted request stayed before
    /// each bound: how sharp the checks were in this run.
    pub closest_idle_us: Option<i64>,
    pub closest_absolute_us: Option<i64>,
    pub closest_grace_us: Option<i64>,
    /// Requests sent with an ID whose renewal was acknowledged: admitted
    /// within the grace, refused.
    pub replays_admitted: usize,
    pub replays_refused: usize,
    /// `401`s to requests sent past a bound, by the rule they would have
    /// broken if admitted.
    pub refused_past: BTreeMap<Kind, usize>,
}

impl Report {
    pub fn kinds(&self) -> BTreeMap<Kind, usize> {
        let mut kinds = BTreeMap::new();
        for violation in &self.violations {
            *kinds.entry(violation.kind).or_insert(0) += 1;
        }
        kinds
    }
}

impl fmt::Display for Report {
    /// The summary line, then the breakdown, then the first violations.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let faults: usize = self.faults.values().sum();
        writeln!(
            f,
            "{} requests, {} faults, {} violations",
            self.requests,
            faults,
            self.violations.len()
        )?;
        let list = |map: Vec<(String, usize)>| {
            if map.is_empty() {
                "none".to_owned()
            } else {
                map.iter()
                    .map(|(name, n)| format!("{name} {n}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            }
        };
        writeln!(
            f,
            "  faults: {}",
            list(
                self.faults
                    .iter()
                    .map(|(k, n)| (k.name().to_owned(), *n))
                    .collect()
            )
        )?;
        writeln!(
            f,
            "  answers: {}",
            list(self.statuses.iter().map(|(k, n)| (k.clone(), *n)).collect())
        )?;
        writeln!(
            f,
            "  sessions: {} logins, {} renewals; {} admissions judged ({} without an idle bound); replayed old IDs: {} admitted in grace, {} refused",
            self.lineages,
            self.renewals,
            self.judged,
            self.unjudged_idle,
            self.replays_admitted,
            self.replays_refused
        )?;
        writeln!(
            f,
            "  refused past a bound, as they must be: {}",
            list(
                self.refused_past
                    .iter()
                    .map(|(k, n)| (k.name().to_owned(), *n))
                    .collect()
            )
        )?;
        let ms = |margin: Option<i64>| match margin {
            Some(us) => format!("{:.1} ms", us as f64 / 1000.0),
            None => "-".to_owned(),
        };
        writeln!(
            f,
            "  closest admitted to a bound: idle {}, absolute {}, grace {} (tolerance {} µs)",
            ms(self.closest_idle_us),
            ms(self.closest_absolute_us),
            ms(self.closest_grace_us),
            self.tolerance_us
        )?;
        write!(
            f,
            "  violations: {}",
            list(
                self.kinds()
                    .iter()
                    .map(|(k, n)| (k.name().to_owned(), *n))
                    .collect()
            )
        )?;
        for violation in self.violations.iter().take(20) {
            write!(f, "\n  - {}", violation.kind.name())?;
            if let Some(id) = violation.request {
                write!(f, " (request {id})")?;
            }
            write!(f, ": {}", violation.message)?;
        }
        if self.violations.len() > 20 {
            write!(f, "\n  ... and {} more", self.violations.len() - 20)?;
        }
        Ok(())
    }
}

/// A session from its login on, under every ID it had.
struct Lineage {
    /// The request whose answer started it.
    login: usize,
    subject: String,
    remember_me: bool,
    login_recv: u64,
    /// Its requests (indexes into the request list), any ID.
    requests: Vec<usize>,
    /// When it was ended by an acknowledged operation: (time, kind, by).
    ends: Vec<(u64, Kind, u64)>,
}

fn is_2xx(request: &Request) -> bool {
    matches!(request.status, Some(200..=299))
}

/// Checks a history.
pub fn check(events: &[Event]) -> Report {
    let mut report = Report::default();
    let mut violations = Vec::new();
    let bad = |request: Option<u64>, message: String| Violation {
        kind: Kind::BadHistory,
        request,
        message,
    };
    let config = events.iter().find_map(|event| match event {
        Event::Config(config) => Some(config.clone()),
        _ => None,
    });
    let Some(config) = config else {
        report
            .violations
            .push(bad(None, "no config line in the history".into()));
        return report;
    };
    let requests: Vec<&Request> = events
        .iter()
        .filter_map(|event| match event {
            Event::Request(request) => Some(request),
            _ => None,
        })
        .collect();
    report.requests = requests.len();
    for event in events {
        if let Event::Fault(fault) = event {
            *report.faults.entry(fault.kind).or_insert(0) += 1;
        }
    }
    report.tolerance_us = RESOLUTION_US + drift_us(events);
    let tol = report.tolerance_us;
    let ms = |ms: u64| ms * 1_000;

    // Lineages and renewals, in the order the answers arrived.
    let mut order: Vec<usize> = (0..requests.len()).collect();
    order.sort_by_key(|&i| (requests[i].recv_us.unwrap_or(u64::MAX), requests[i].id));
    let mut lineages: Vec<Lineage> = Vec::new();
    let mut lineage_of: HashMap<&str, usize> = HashMap::new();
    // Old ID -> when its renewal was first acknowledged.
    let mut renewed_at: HashMap<&str, u64> = HashMap::new();
    for &i in &order {
        let request = requests[i];
        let (Some(set), Some(recv)) = (request.set_sid.as_deref(), request.recv_us) else {
            continue;
        };
        match request.op {
            Some(Op::Login | Op::LoginOver) => {
                let Some(subject) = request.subject.clone() else {
                    violations.push(bad(Some(request.id), "a login without a subject".into()));
                    continue;
                };
                if lineage_of.contains_key(set) {
                    violations.push(bad(Some(request.id), format!("ID {set} issued twice")));
                    continue;
                }
                lineage_of.insert(set, lineages.len());
                lineages.push(Lineage {
                    login: i,
                    subject,
                    remember_me: request.remember_me,
                    login_recv: recv,
                    requests: Vec::new(),
                    ends: Vec::new(),
                });
            }
            _ => {
                let Some(old) = request.sid.as_deref() else {
                    violations.push(bad(
                        Some(request.id),
                        "a cookie set without a session".into(),
                    ));
                    continue;
                };
                if old == set {
                    continue;
                }
                let Some(&lineage) = lineage_of.get(old) else {
                    violations.push(bad(
                        Some(request.id),
                        format!("renewal of unknown ID {old}"),
                    ));
                    continue;
                };
                match lineage_of.get(set) {
                    Some(&other) if other != lineage => {
                        violations.push(bad(Some(request.id), format!("ID {set} issued twice")));
                        continue;
                    }
                    Some(_) => {}
                    None => {
                        report.renewals += 1;
                        lineage_of.insert(set, lineage);
                    }
                }
                let at = renewed_at.entry(old).or_insert(recv);
                *at = (*at).min(recv);
            }
        }
    }
    report.lineages = lineages.len();

    // Each request to its lineage; the acknowledged ends.
    let mut request_lineage: Vec<Option<usize>> = vec![None; requests.len()];
    for (i, request) in requests.iter().enumerate() {
        let Some(sid) = request.sid.as_deref() else {
            continue;
        };
        let Some(&lineage) = lineage_of.get(sid) else {
            violations.push(bad(
                Some(request.id),
                format!("a cookie {sid} that no answer set"),
            ));
            continue;
        };
        request_lineage[i] = Some(lineage);
        lineages[lineage].requests.push(i);
    }
    let mut ends: Vec<(usize, u64, Kind, u64)> = Vec::new();
    for (i, request) in requests.iter().enumerate() {
        let (Some(lineage), true, Some(recv)) =
            (request_lineage[i], is_2xx(request), request.recv_us)
        else {
            continue;
        };
        match request.op {
            Some(Op::Logout) => ends.push((lineage, recv, Kind::AfterLogout, request.id)),
            Some(Op::LoginOver) => ends.push((lineage, recv, Kind::AfterReplacement, request.id)),
            Some(Op::LogoutEverywhere) => {
                let subject = &lineages[lineage].subject;
                for (other, candidate) in lineages.iter().enumerate() {
                    if &candidate.subject == subject && candidate.login_recv <= request.send_us {
                        ends.push((other, recv, Kind::AfterLogoutEverywhere, request.id));
                    }
                }
            }
            _ => {}
        }
    }
    for (lineage, at, kind, by) in ends {
        lineages[lineage].ends.push((at, kind, by));
    }

    let mut refused_past: BTreeMap<Kind, usize> = BTreeMap::new();
    // Every request's answer.
    for (i, request) in requests.iter().enumerate() {
        let status = match request.status {
            Some(status) => status,
            None => {
                violations.push(Violation {
                    kind: Kind::NoAnswer,
                    request: Some(request.id),
                    message: format!(
                        "node {} gave no answer to {:?}: {}",
                        request.node,
                        request.op,
                        request.error.as_deref().unwrap_or("?")
                    ),
                });
                *report.statuses.entry("none".into()).or_insert(0) += 1;
                continue;
            }
        };
        *report.statuses.entry(status.to_string()).or_insert(0) += 1;
        if status >= 500 && status != 503 {
            violations.push(Violation {
                kind: Kind::ServerError,
                request: Some(request.id),
                message: format!("{status} from node {} to {:?}", request.node, request.op),
            });
            continue;
        }
        let expected = match (request.op, request.sid.is_some()) {
            (Some(Op::Login), false) => matches!(status, 200 | 503),
            (Some(Op::LoginOver | Op::Me | Op::Logout | Op::LogoutEverywhere), true) => {
                matches!(status, 200 | 401 | 503)
            }
            _ => false,
        };
        if !expected {
            violations.push(Violation {
                kind: Kind::UnexpectedStatus,
                request: Some(request.id),
                message: format!(
                    "{status} to {:?} (with a cookie: {})",
                    request.op,
                    request.sid.is_some()
                ),
            });
            continue;
        }
        let Some(lineage_index) = request_lineage[i] else {
            continue;
        };
        let lineage = &lineages[lineage_index];
        let renewal = request
            .sid
            .as_deref()
            .and_then(|sid| renewed_at.get(sid).copied());
        if request.replay {
            if let Some(renewed) = renewal {
                if request.send_us >= renewed {
                    if is_2xx(request) {
                        report.replays_admitted += 1;
                    } else if status == 401 {
                        report.replays_refused += 1;
                    }
                }
            }
        }
        // Every answered request is judged against the bounds: a `2xx`
        // past one is a violation, a `401` past one is counted as the
        // refusal it must be (evidence that the rule was exercised).
        let admitted = is_2xx(request);
        if !admitted && status != 401 {
            continue;
        }
        let send = request.send_us;
        let recv = request.recv_us.unwrap_or(u64::MAX);
        let mut flag = |kind: Kind, message: String| {
            if admitted {
                violations.push(Violation {
                    kind,
                    request: Some(request.id),
                    message,
                });
            } else {
                *refused_past.entry(kind).or_insert(0) += 1;
            }
        };
        // Logout sticks.
        if let Some((at, kind, by)) = lineage
            .ends
            .iter()
            .filter(|(at, _, by)| *by != request.id && send >= *at)
            .min_by_key(|(at, _, _)| *at)
        {
            flag(
                *kind,
                format!(
                    "{:?} on node {} sent {} µs after request {by} ended the session (acknowledged at {at} µs)",
                    request.op,
                    request.node,
                    send - at
                ),
            );
        }
        // Absolute deadline.
        let absolute = ms(if lineage.remember_me {
            config.remember_me_absolute_ms
        } else {
            config.absolute_ms
        });
        let absolute_bound = lineage.login_recv + absolute + tol;
        if admitted {
            margin(&mut report.closest_absolute_us, absolute_bound, send);
        }
        if send >= absolute_bound {
            flag(
                Kind::AbsoluteDeadline,
                format!(
                    "sent {} µs after the login was acknowledged (absolute {} ms, request {} started it)",
                    send - lineage.login_recv,
                    absolute / 1000,
                    requests[lineage.login].id
                ),
            );
        }
        // Idle deadline.
        let idle = ms(if lineage.remember_me {
            config.remember_me_period_ms
        } else {
            config.idle_ms
        });
        let mut last = lineage.login_recv;
        let mut last_by = requests[lineage.login].id;
        for &other in &lineage.requests {
            let other = requests[other];
            if other.id == request.id || other.status == Some(401) || other.send_us >= recv {
                continue;
            }
            let bound = other.recv_us.unwrap_or(u64::MAX);
            if bound > last {
                last = bound;
                last_by = other.id;
            }
        }
        if admitted {
            report.judged += 1;
        }
        if last == u64::MAX {
            report.unjudged_idle += usize::from(admitted);
        } else {
            let idle_bound = last + idle + tol;
            if admitted {
                margin(&mut report.closest_idle_us, idle_bound, send);
            }
            if send >= idle_bound {
                flag(
                    Kind::IdleDeadline,
                    format!(
                        "sent {} µs after the latest possible activity (request {last_by}; idle {} ms)",
                        send - last,
                        idle / 1000
                    ),
                );
            }
        }
        // Renewal grace.
        if let Some(renewed) = renewal {
            let grace_bound = renewed + ms(config.renewal_grace_ms) + tol;
            if admitted && send >= renewed {
                margin(&mut report.closest_grace_us, grace_bound, send);
            }
            if send >= grace_bound {
                flag(
                    Kind::RenewalGrace,
                    format!(
                        "an ID renewed (acknowledged at {renewed} µs) admitted {} µs later (grace {} ms)",
                        send - renewed,
                        config.renewal_grace_ms
                    ),
                );
            }
        }
        // The right session.
        if admitted
            && request.op == Some(Op::Me)
            && request.body.as_deref() != Some(lineage.subject.as_str())
        {
            flag(
                Kind::WrongSubject,
                format!(
                    "answered as {:?}, the session is {:?}'s",
                    request.body, lineage.subject
                ),
            );
        }
    }

    report.refused_past = refused_past;
    // Recovery: a fresh login and a request on it, on every node.
    for node in 0..config.nodes {
        let recovered = requests.iter().enumerate().any(|(i, request)| {
            request.phase == Phase::Recovery
                && request.node == node
                && request.op == Some(Op::Me)
                && is_2xx(request)
                && request_lineage[i].is_some_and(|lineage| {
                    let login = requests[lineages[lineage].login];
                    login.phase == Phase::Recovery && login.node == node
                })
        });
        if !recovered {
            violations.push(Violation {
                kind: Kind::Recovery,
                request: None,
                message: format!("node {node} served no fresh login and request after the faults"),
            });
        }
    }
    violations.sort_by_key(|violation| (violation.kind, violation.request));
    report.violations = violations;
    report
}

/// Records how far `send` stayed before `bound`, keeping the smallest.
fn margin(closest: &mut Option<i64>, bound: u64, send: u64) {
    let margin = bound as i64 - send as i64;
    if closest.is_none_or(|closest| margin < closest) {
        *closest = Some(margin);
    }
}

/// How far the wall clock (which the layer reads) moved against the
/// monotonic clock (which the history is in) over the run, in µs: the
/// spread of `wall - mono` over the samples, each widened by its reading
/// window.
fn drift_us(events: &[Event]) -> u64 {
    let mut highest = i128::MIN;
    let mut lowest = i128::MAX;
    for event in events {
        if let Event::Clock(sample) = event {
            let offset = i128::from(sample.wall_us) - i128::from(sample.mono_us);
            highest = highest.max(offset);
            lowest = lowest.min(offset - i128::from(sample.width_us));
        }
    }
    if highest < lowest {
        return 0;
    }
    u64::try_from(highest - lowest).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    //! The checker on hand-made histories: a clean one passes, and each kind
    //! of violation is caught (so a run that reports none has been checked
    //! by something that can fail).

    use super::*;
    use crate::history::{ClockSample, Config, Fault};

    const MS: u64 = 1_000;

    fn config() -> Event {
        Event::Config(Config {
            store: "test".into(),
            nodes: 2,
            clients: 1,
            idle_ms: 2_000,
            absolute_ms: 8_000,
            remember_me_period_ms: 5_000,
            remember_me_absolute_ms: 12_000,
            renewal_interval_ms: 1_000,
            renewal_grace_ms: 400,
            ..Config::default()
        })
    }

    /// A history under construction.
    struct H {
        events: Vec<Event>,
        next: u64,
    }

    impl H {
        fn new() -> Self {
            let mut h = H {
                events: vec![config()],
                next: 0,
            };
            // Both nodes recover at the end unless a test says otherwise.
            h.recovery(0);
            h.recovery(1);
            h
        }

        fn push(&mut self, mut request: Request) -> u64 {
            request.id = self.next;
            self.next += 1;
            self.events.push(Event::Request(request));
            self.next - 1
        }

        fn recovery(&mut self, node: u8) {
            let sid = format!("recovered{node}");
            self.push(Request {
                node,
                op: Some(Op::Login),
                phase: Phase::Recovery,
                subject: Some("r".into()),
                send_us: 1_000_000 * MS,
                recv_us: Some(1_000_000 * MS + 1),
                status: Some(200),
                set_sid: Some(sid.clone()),
                ..Request::default()
            });
            self.push(Request {
                node,
                op: Some(Op::Me),
                phase: Phase::Recovery,
                sid: Some(sid),
                send_us: 1_000_000 * MS + 2,
                recv_us: Some(1_000_000 * MS + 3),
                status: Some(200),
                body: Some("r".into()),
                ..Request::default()
            });
        }

        fn login(&mut self, sid: &str, subject: &str, remember_me: bool, send: u64, recv: u64) {
            self.push(Request {
                op: Some(Op::Login),
                subject: Some(subject.into()),
                remember_me,
                send_us: send,
                recv_us: Some(recv),
                status: Some(200),
                set_sid: Some(sid.into()),
                ..Request::default()
            });
        }

        fn op(&mut self, op: Op, sid: &str, send: u64, recv: u64, status: u16) -> u64 {
            self.push(Request {
                op: Some(op),
                sid: Some(sid.into()),
                send_us: send,
                recv_us: Some(recv),
                status: Some(status),
                ..Request::default()
            })
        }

        fn me(&mut self, sid: &str, subject: &str, send: u64, recv: u64, status: u16) -> u64 {
            self.push(Request {
                op: Some(Op::Me),
                sid: Some(sid.into()),
                send_us: send,
                recv_us: Some(recv),
                status: Some(status),
                body: (status == 200).then(|| subject.to_owned()),
                ..Request::default()
            })
        }

        fn renewal(&mut self, old: &str, new: &str, subject: &str, send: u64, recv: u64) {
            self.push(Request {
                op: Some(Op::Me),
                sid: Some(old.into()),
                send_us: send,
                recv_us: Some(recv),
                status: Some(200),
                set_sid: Some(new.into()),
                body: Some(subject.into()),
                ..Request::default()
            });
        }

        fn check(&self) -> Report {
            check(&self.events)
        }
    }

    fn kinds(report: &Report) -> Vec<Kind> {
        report.violations.iter().map(|v| v.kind).collect()
    }

    #[test]
    fn a_clean_history_passes() {
        let mut h = H::new();
        h.events.push(Event::Fault(Fault {
            kind: FaultKind::Pause,
            start_us: 0,
            end_us: 5,
            detail: String::new(),
        }));
        h.login("a", "alice", false, 0, 10 * MS);
        // Activity every 1.9 s keeps it alive past several idle periods.
        h.me("a", "alice", 1_900 * MS, 1_910 * MS, 200);
        h.me("a", "alice", 3_800 * MS, 3_810 * MS, 200);
        h.renewal("a", "b", "alice", 5_000 * MS, 5_010 * MS);
        // The old ID within its grace.
        h.me("a", "alice", 5_300 * MS, 5_310 * MS, 200);
        h.me("a", "alice", 5_500 * MS, 5_510 * MS, 401);
        h.me("b", "alice", 6_000 * MS, 6_010 * MS, 200);
        // Latency: sent before the idle deadline counted from the login's
        // receive time, admitted by a server whose clock was later.
        h.login("c", "carol", false, 0, 100 * MS);
        h.me("c", "carol", 2_099 * MS, 2_200 * MS, 200);
        // A 503 may have touched: activity up to its receive time.
        h.login("d", "dave", false, 0, 10 * MS);
        h.me("d", "dave", 1_000 * MS, 1_500 * MS, 503);
        h.me("d", "dave", 3_400 * MS, 3_410 * MS, 200);
        // A logout, then a refusal.
        h.op(Op::Logout, "b", 7_000 * MS, 7_010 * MS, 200);
        h.me("b", "alice", 7_020 * MS, 7_030 * MS, 401);
        // A request in flight when the logout was acknowledged.
        h.login("e", "erin", false, 0, 10 * MS);
        h.op(Op::Logout, "e", 1_000 * MS, 1_010 * MS, 200);
        h.me("e", "erin", 1_005 * MS, 1_020 * MS, 200);
        // A remember-me session lives past the idle timeout.
        h.login("f", "frank", true, 0, 10 * MS);
        h.me("f", "frank", 4_500 * MS, 4_510 * MS, 200);
        h.events.push(Event::Clock(ClockSample {
            mono_us: 0,
            wall_us: 1_700_000_000_000_000,
            width_us: 3,
        }));
        let report = h.check();
        assert!(report.violations.is_empty(), "{report}");
        assert_eq!(report.faults.get(&FaultKind::Pause), Some(&1));
        assert_eq!(report.renewals, 1);
        assert_eq!(report.replays_admitted, 0, "no replay flagged");
        // The refusals past a bound are counted as such.
        assert_eq!(report.refused_past.get(&Kind::AfterLogout), Some(&1));
        assert_eq!(report.refused_past.get(&Kind::RenewalGrace), Some(&1));
        assert!(report.to_string().starts_with(&format!(
            "{} requests, 1 faults, 0 violations",
            report.requests
        )));
    }

    #[test]
    fn an_admission_after_a_logout_is_caught() {
        let mut h = H::new();
        h.login("a", "alice", false, 0, 10 * MS);
        h.op(Op::Logout, "a", 100 * MS, 110 * MS, 200);
        let bad = h.me("a", "alice", 120 * MS, 130 * MS, 200);
        let report = h.check();
        assert_eq!(kinds(&report), [Kind::AfterLogout]);
        assert_eq!(report.violations[0].request, Some(bad));
    }

    #[test]
    fn a_logout_with_one_id_ends_the_renewed_one_too() {
        let mut h = H::new();
        h.login("a", "alice", false, 0, 10 * MS);
        h.renewal("a", "b", "alice", 100 * MS, 110 * MS);
        // Logout with the old ID, in its grace; then the new ID admitted.
        h.op(Op::Logout, "a", 120 * MS, 130 * MS, 200);
        h.me("b", "alice", 140 * MS, 150 * MS, 200);
        assert_eq!(kinds(&h.check()), [Kind::AfterLogout]);
    }

    #[test]
    fn an_admission_after_a_logout_everywhere_is_caught() {
        let mut h = H::new();
        h.login("a", "alice", false, 0, 10 * MS);
        h.login("b", "alice", false, 0, 20 * MS);
        // A login acknowledged after the logout everywhere was sent may survive it.
        h.login("c", "alice", false, 0, 40 * MS);
        h.op(Op::LogoutEverywhere, "b", 30 * MS, 50 * MS, 200);
        h.me("c", "alice", 60 * MS, 70 * MS, 200);
        let bad = h.me("a", "alice", 60 * MS, 70 * MS, 200);
        let report = h.check();
        assert_eq!(kinds(&report), [Kind::AfterLogoutEverywhere]);
        assert_eq!(report.violations[0].request, Some(bad));
    }

    #[test]
    fn an_admission_after_a_login_over_the_session_is_caught() {
        let mut h = H::new();
        h.login("a", "alice", false, 0, 10 * MS);
        h.push(Request {
            op: Some(Op::LoginOver),
            sid: Some("a".into()),
            subject: Some("bob".into()),
            send_us: 100 * MS,
            recv_us: Some(110 * MS),
            status: Some(200),
            set_sid: Some("b".into()),
            ..Request::default()
        });
        h.me("b", "bob", 120 * MS, 130 * MS, 200);
        h.me("a", "alice", 120 * MS, 130 * MS, 200);
        assert_eq!(kinds(&h.check()), [Kind::AfterReplacement]);
    }

    #[test]
    fn an_admission_past_the_idle_deadline_is_caught() {
        let mut h = H::new();
        h.login("a", "alice", false, 0, 10 * MS);
        h.me("a", "alice", 1_000 * MS, 1_010 * MS, 200);
        // A refusal is not activity.
        h.me("a", "alice", 1_500 * MS, 1_510 * MS, 401);
        // 2 s + 2 ms after the latest possible activity.
        h.me("a", "alice", 3_012 * MS, 3_020 * MS, 200);
        let report = h.check();
        assert_eq!(kinds(&report), [Kind::IdleDeadline], "{report}");
        // Within the tolerance it passes.
        let mut h = H::new();
        h.login("a", "alice", false, 0, 10 * MS);
        h.me("a", "alice", 2_010 * MS + 999, 2_020 * MS, 200);
        assert!(h.check().violations.is_empty());
    }

    #[test]
    fn a_remember_me_session_is_judged_by_its_period() {
        let mut h = H::new();
        h.login("a", "alice", true, 0, 10 * MS);
        h.me("a", "alice", 5_012 * MS, 5_020 * MS, 200);
        assert_eq!(kinds(&h.check()), [Kind::IdleDeadline]);
    }

    #[test]
    fn an_admission_past_the_absolute_deadline_is_caught() {
        let mut h = H::new();
        h.login("a", "alice", false, 0, 10 * MS);
        let mut at = 10 * MS;
        for _ in 0..6 {
            at += 1_500 * MS;
            h.me("a", "alice", at, at + 5 * MS, 200);
        }
        // 9.01 s after the login: past 8 s.
        let report = h.check();
        assert_eq!(kinds(&report), [Kind::AbsoluteDeadline], "{report}");
        // Remember-me: its own absolute limit (12 s) applies, not 8 s.
        let mut h = H::new();
        h.login("a", "alice", true, 0, 10 * MS);
        let mut at = 10 * MS;
        for _ in 0..8 {
            at += 1_500 * MS;
            h.me("a", "alice", at, at + 5 * MS, 200);
        }
        assert!(h.check().violations.is_empty());
        h.me("a", "alice", 12_020 * MS, 12_030 * MS, 200);
        assert_eq!(kinds(&h.check()), [Kind::AbsoluteDeadline]);
    }

    #[test]
    fn an_old_id_admitted_past_the_grace_is_caught() {
        let mut h = H::new();
        h.login("a", "alice", false, 0, 10 * MS);
        h.renewal("a", "b", "alice", 1_000 * MS, 1_010 * MS);
        h.me("b", "alice", 1_100 * MS, 1_110 * MS, 200);
        h.me("a", "alice", 1_405 * MS, 1_415 * MS, 200);
        let bad = h.me("a", "alice", 1_412 * MS, 1_420 * MS, 200);
        let report = h.check();
        assert_eq!(kinds(&report), [Kind::RenewalGrace], "{report}");
        assert_eq!(report.violations[0].request, Some(bad));
    }

    #[test]
    fn another_subject_in_the_answer_is_caught() {
        let mut h = H::new();
        h.login("a", "alice", false, 0, 10 * MS);
        h.me("a", "mallory", 100 * MS, 110 * MS, 200);
        assert_eq!(kinds(&h.check()), [Kind::WrongSubject]);
    }

    #[test]
    fn a_5xx_other_than_503_no_answer_and_odd_statuses_are_caught() {
        let mut h = H::new();
        h.login("a", "alice", false, 0, 10 * MS);
        h.me("a", "alice", 100 * MS, 110 * MS, 500);
        h.me("a", "alice", 200 * MS, 210 * MS, 503);
        h.me("a", "alice", 300 * MS, 310 * MS, 404);
        h.push(Request {
            op: Some(Op::Me),
            sid: Some("a".into()),
            send_us: 400 * MS,
            error: Some("timed out".into()),
            ..Request::default()
        });
        assert_eq!(
            kinds(&h.check()),
            [Kind::ServerError, Kind::NoAnswer, Kind::UnexpectedStatus]
        );
    }

    #[test]
    fn a_node_that_does_not_recover_is_caught() {
        let mut h = H::new();
        h.events
            .retain(|event| !matches!(event, Event::Request(request) if request.node == 1));
        // A failed attempt does not count.
        h.push(Request {
            node: 1,
            op: Some(Op::Login),
            phase: Phase::Recovery,
            subject: Some("r".into()),
            send_us: 1,
            recv_us: Some(2),
            status: Some(503),
            ..Request::default()
        });
        let report = h.check();
        assert_eq!(kinds(&report), [Kind::Recovery]);
        assert!(report.violations[0].message.contains("node 1"));
    }

    #[test]
    fn a_cookie_from_nowhere_is_a_bad_history() {
        let mut h = H::new();
        h.me("zzz", "alice", 100 * MS, 110 * MS, 200);
        assert_eq!(kinds(&h.check()), [Kind::BadHistory]);
    }

    #[test]
    fn clock_drift_widens_the_tolerance() {
        let mut h = H::new();
        for (mono, wall) in [(0, 1_000_000), (1_000_000, 2_000_500)] {
            h.events.push(Event::Clock(ClockSample {
                mono_us: mono,
                wall_us: wall,
                width_us: 10,
            }));
        }
        assert_eq!(h.check().tolerance_us, RESOLUTION_US + 510);
    }
}
