//! Events and counters: each way a session starts, renews and ends emits
//! its event with the right reason and a short hash of the ID, never the
//! ID; `SessionMetrics` counts the same; with the `metrics` feature the
//! counts reach the `metrics` facade.
#![cfg(feature = "axum")]

mod common;

use std::time::Duration;

use common::captured::Captured;
use common::{set_cookie, TestApp, HOUR, MINUTE, SECOND};
use http::StatusCode;
use tower_session_lifetime::{
    id::SessionId,
    observe::{EndReason, SessionMetrics},
    policy::AtSessionLimit,
    Policy,
};

/// The lines of `event` that name `session`.
fn events(captured: &Captured, event: &str, session: &str) -> Vec<String> {
    captured.lines_with(&[event, &format!("session={session}")])
}

/// The short name events give the session of a `Cookie` header value.
fn short(cookie: &str) -> String {
    let (_, value) = cookie.split_once('=').unwrap();
    SessionId::parse(value).unwrap().key().short().to_string()
}

fn id_of(cookie: &str) -> &str {
    cookie.split_once('=').unwrap().1
}

fn limited_policy() -> Policy {
    Policy::builder()
        .idle_timeout(HOUR)
        .absolute_timeout(8 * HOUR)
        .renewal_interval(30 * MINUTE)
        .max_sessions_per_subject(2, AtSessionLimit::EndOldest)
        .build()
        .unwrap()
}

#[tokio::test]
async fn every_end_has_its_reason_and_no_event_carries_an_id() {
    let captured = Captured::global();
    let metrics = SessionMetrics::new();
    let app = TestApp::configured(|layer| {
        layer
            .with_policy(limited_policy())
            .with_metrics(metrics.clone())
    });
    let mut ids = Vec::new();

    // idle
    let idle = app.login("ida", false).await;
    ids.push(idle.clone());
    app.advance(HOUR);
    assert_eq!(app.me(&idle).await.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(events(&captured, "session started", &short(&idle)).len(), 1);
    let ended = events(&captured, "session ended", &short(&idle));
    assert_eq!(ended.len(), 1, "{ended:?}");
    assert!(ended[0].contains("reason=\"idle\""), "{ended:?}");

    // absolute: kept active, ended at 8 h (the renewal every 30 min moves
    // its ID; the renewed event names the old and the new)
    let mut absolute = app.login("abe", false).await;
    ids.push(absolute.clone());
    for _ in 0..16 {
        app.advance(30 * MINUTE);
        let response = app.me(&absolute).await;
        if let Some(renewed) = set_cookie(&response).filter(|c| !c.value().is_empty()) {
            let next = format!("{}={}", renewed.name(), renewed.value());
            let lines = events(&captured, "session renewed", &short(&absolute));
            assert_eq!(lines.len(), 1, "renewed from {absolute}: {lines:?}");
            assert!(lines[0].contains(&format!("renewed_to={}", short(&next))));
            absolute = next;
            ids.push(absolute.clone());
        }
    }
    assert_eq!(app.me(&absolute).await.status(), StatusCode::UNAUTHORIZED);
    let ended = events(&captured, "session ended", &short(&absolute));
    assert!(
        ended
            .iter()
            .any(|line| line.contains("reason=\"absolute\"")),
        "{ended:?}"
    );

    // logout, and a login that replaces a session in the same browser
    let logout = app.login("lou", false).await;
    ids.push(logout.clone());
    app.request("POST", "/logout", Some(&logout)).await;
    assert!(events(&captured, "session ended", &short(&logout))[0].contains("reason=\"logout\""));
    let replaced = app.login("rey", false).await;
    ids.push(replaced.clone());
    let again = app
        .request("POST", "/login?user=rey", Some(&replaced))
        .await;
    let again = set_cookie(&again).unwrap();
    ids.push(format!("{}={}", again.name(), again.value()));
    assert!(
        events(&captured, "session ended", &short(&replaced))[0].contains("reason=\"replaced\"")
    );

    // limit: a third login of one subject ends its oldest session
    let first = app.login("lim", false).await;
    app.advance(SECOND);
    let second = app.login("lim", false).await;
    app.advance(SECOND);
    let third = app.login("lim", false).await;
    ids.extend([first.clone(), second.clone(), third.clone()]);
    assert!(events(&captured, "session ended", &short(&first))[0].contains("reason=\"limit\""));

    // revoked: ended from another session of the subject
    let listed = app.request("GET", "/sessions", Some(&third)).await;
    let listed: serde_json::Value = serde_json::from_str(&common::body_text(listed).await).unwrap();
    let other = listed
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["current"] == false)
        .unwrap()["key"]
        .as_str()
        .unwrap()
        .to_owned();
    app.request("POST", &format!("/sessions/end?key={other}"), Some(&third))
        .await;
    assert!(events(&captured, "session ended", &short(&second))[0].contains("reason=\"revoked\""));

    // logout everywhere
    let fourth = app.login("lim", false).await;
    ids.push(fourth.clone());
    app.request("POST", "/logout-everywhere", Some(&fourth))
        .await;
    for cookie in [&third, &fourth] {
        let ended = events(&captured, "session ended", &short(cookie));
        assert_eq!(ended.len(), 1, "{ended:?}");
        assert!(
            ended[0].contains("reason=\"logout_everywhere\""),
            "{ended:?}"
        );
    }

    // The store checks' spans name sessions too (debug level, captured).
    let log = captured.text();
    assert!(log.contains("session_check{session="), "spans captured");
    for cookie in &ids {
        assert!(!log.contains(id_of(cookie)), "an ID in the log: {cookie}");
    }

    let counted = metrics.snapshot();
    assert_eq!(counted.ended(EndReason::Idle), 1);
    assert_eq!(counted.ended(EndReason::Absolute), 1);
    assert_eq!(counted.ended(EndReason::Logout), 1);
    assert_eq!(counted.ended(EndReason::Replaced), 1);
    assert_eq!(counted.ended(EndReason::Limit), 1);
    assert_eq!(counted.ended(EndReason::Revoked), 1);
    assert_eq!(
        counted.ended(EndReason::LogoutEverywhere),
        2,
        "third and fourth"
    );
    assert_eq!(counted.started, 9);
    assert!(counted.renewed >= 15, "{counted:?}");
    assert!(counted.admitted >= 16);
    assert!(counted.store_calls > counted.admitted / 2);
    assert_eq!(counted.store_errors, 0);
}

#[tokio::test]
async fn store_failures_are_counted_and_timed() {
    let metrics = SessionMetrics::new();
    let app = TestApp::configured(|layer| layer.with_metrics(metrics.clone()));
    let cookie = app.login("alice", false).await;
    app.store.set_down(true);
    assert_eq!(
        app.me(&cookie).await.status(),
        StatusCode::SERVICE_UNAVAILABLE
    );
    app.store.set_down(false);
    assert_eq!(app.me(&cookie).await.status(), StatusCode::OK);
    let counted = metrics.snapshot();
    assert_eq!(counted.store_errors, 1);
    assert_eq!(counted.admitted, 1);
    assert!(counted.store_calls >= 3);
    assert!(counted.store_max <= counted.store_time);
    assert!(counted.store_time > Duration::ZERO);
}

#[cfg(feature = "metrics")]
mod facade {
    //! The counts reach the `metrics` facade: a recorder of the test's own.

    use std::collections::HashMap;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::{Arc, Mutex};

    use metrics::{
        Counter, CounterFn, Gauge, Histogram, Key, KeyName, Metadata, Recorder, SharedString, Unit,
    };

    use super::*;

    #[derive(Default)]
    struct Count(AtomicU64);

    impl CounterFn for Count {
        fn increment(&self, value: u64) {
            self.0.fetch_add(value, Ordering::Relaxed);
        }

        fn absolute(&self, value: u64) {
            self.0.store(value, Ordering::Relaxed);
        }
    }

    /// Counters by name and labels; histograms by name, counted.
    #[derive(Clone, Default)]
    struct Counting {
        counters: Arc<Mutex<HashMap<String, Arc<Count>>>>,
        histograms: Arc<Mutex<HashMap<String, Arc<Count>>>>,
    }

    struct Samples(Arc<Count>);

    impl metrics::HistogramFn for Samples {
        fn record(&self, _value: f64) {
            self.0.increment(1);
        }
    }

    fn name(key: &Key) -> String {
        let labels: Vec<String> = key
            .labels()
            .map(|label| format!("{}={}", label.key(), label.value()))
            .collect();
        format!("{}{{{}}}", key.name(), labels.join(","))
    }

    impl Recorder for Counting {
        fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
        fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
        fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}

        fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
            let mut counters = self.counters.lock().unwrap();
            Counter::from_arc(Arc::clone(counters.entry(name(key)).or_default()))
        }

        fn register_gauge(&self, _: &Key, _: &Metadata<'_>) -> Gauge {
            Gauge::noop()
        }

        fn register_histogram(&self, key: &Key, _: &Metadata<'_>) -> Histogram {
            let mut histograms = self.histograms.lock().unwrap();
            let count = Arc::clone(histograms.entry(name(key)).or_default());
            Histogram::from_arc(Arc::new(Samples(count)))
        }
    }

    impl Counting {
        fn counter(&self, name: &str) -> u64 {
            self.counters
                .lock()
                .unwrap()
                .get(name)
                .map_or(0, |count| count.0.load(Ordering::Relaxed))
        }
    }

    #[tokio::test]
    async fn counts_reach_the_metrics_facade() {
        let recorder = Counting::default();
        let _guard = metrics::set_default_local_recorder(&recorder);
        let app = TestApp::configured(|layer| layer.with_metrics(SessionMetrics::new()));
        let cookie = app.login("alice", false).await;
        assert_eq!(app.me(&cookie).await.status(), StatusCode::OK);
        app.request("POST", "/logout", Some(&cookie)).await;
        assert_eq!(recorder.counter("session_lifetime_started_total{}"), 1);
        assert_eq!(recorder.counter("session_lifetime_admitted_total{}"), 2);
        assert_eq!(
            recorder.counter("session_lifetime_ended_total{reason=logout}"),
            1
        );
        let timed = recorder.histograms.lock().unwrap()["session_lifetime_store_seconds{}"]
            .0
            .load(Ordering::Relaxed);
        assert!(timed >= 3, "store calls timed: {timed}");
    }
}
