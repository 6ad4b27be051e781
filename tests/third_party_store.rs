//! A store written outside the crate, as a store author would write one:
//! against the public API alone, keeping each record as a row of plain
//! values (as a database would) and building it back with the public
//! constructors (`SessionRecord::stored`, `Limits::new`,
//! `LoadedRecord::new`), then passing the conformance suite and serving the
//! layer. If a record type gains a field, this still compiles.
#![cfg(all(feature = "conformance", feature = "axum"))]

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use axum::body::Body;
use axum::routing::post;
use axum::Router;
use http::{header, Request, StatusCode};
use tower::ServiceExt;
use tower_session_lifetime::id::SessionKey;
use tower_session_lifetime::policy::{judge, Limits, Policy, Verdict};
use tower_session_lifetime::record::SessionRecord;
use tower_session_lifetime::store::{
    LifetimeStore, LoadedRecord, RenewOutcome, StoreError, TouchOutcome, UpdateOutcome,
};
use tower_session_lifetime::time::Timestamp;
use tower_session_lifetime::{SessionHandle, SessionLifetimeLayer};

/// A record as a row: integers, flags and strings only.
#[derive(Clone, Debug)]
struct Row {
    created_at: u64,
    last_activity: u64,
    expires_at: u64,
    remember_me: bool,
    subject: Option<String>,
    version: u64,
    idle_timeout_ms: u64,
    absolute_timeout_ms: Option<u64>,
    remember_me_period_ms: u64,
    remember_me_absolute_timeout_ms: Option<u64>,
    id_issued_at: u64,
    renewed_to: Option<[u8; SessionKey::LEN]>,
    authenticated_at: u64,
    label: Option<String>,
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

impl Row {
    fn of(record: &SessionRecord) -> Row {
        let limits = &record.limits;
        Row {
            created_at: record.created_at.as_unix_millis(),
            last_activity: record.last_activity.as_unix_millis(),
            expires_at: record.expires_at.as_unix_millis(),
            remember_me: record.remember_me,
            subject: record.subject.as_deref().map(str::to_owned),
            version: record.version,
            idle_timeout_ms: millis(limits.idle_timeout),
            absolute_timeout_ms: limits.absolute_timeout.map(millis),
            remember_me_period_ms: millis(limits.remember_me_period),
            remember_me_absolute_timeout_ms: limits.remember_me_absolute_timeout.map(millis),
            id_issued_at: record.id_issued_at.as_unix_millis(),
            renewed_to: record.renewed_to.map(|key| *key.as_bytes()),
            authenticated_at: record.authenticated_at.as_unix_millis(),
            label: record.label.as_deref().map(str::to_owned),
        }
    }

    /// The record back, through the public constructors only.
    fn record(&self) -> SessionRecord {
        let limits = Limits::new(
            Duration::from_millis(self.idle_timeout_ms),
            self.absolute_timeout_ms.map(Duration::from_millis),
            Duration::from_millis(self.remember_me_period_ms),
            self.remember_me_absolute_timeout_ms
                .map(Duration::from_millis),
        );
        let mut record =
            SessionRecord::stored(Timestamp::from_unix_millis(self.created_at), limits);
        record.last_activity = Timestamp::from_unix_millis(self.last_activity);
        record.expires_at = Timestamp::from_unix_millis(self.expires_at);
        record.remember_me = self.remember_me;
        record.subject = self.subject.as_deref().map(Into::into);
        record.version = self.version;
        record.id_issued_at = Timestamp::from_unix_millis(self.id_issued_at);
        record.renewed_to = self.renewed_to.map(SessionKey::from_bytes);
        record.authenticated_at = Timestamp::from_unix_millis(self.authenticated_at);
        record.label = self.label.as_deref().map(Into::into);
        record
    }
}

/// Rows in a map under one lock, keyed by the key's bytes.
#[derive(Debug, Default)]
struct RowStore {
    rows: Mutex<HashMap<[u8; SessionKey::LEN], Row>>,
}

impl RowStore {
    fn rows(&self) -> std::sync::MutexGuard<'_, HashMap<[u8; SessionKey::LEN], Row>> {
        self.rows
            .lock()
            .expect("no test panicked while holding the lock")
    }
}

#[async_trait]
impl LifetimeStore for RowStore {
    async fn create(&self, key: &SessionKey, record: &SessionRecord) -> Result<bool, StoreError> {
        let mut rows = self.rows();
        if rows.contains_key(key.as_bytes()) {
            return Ok(false);
        }
        rows.insert(*key.as_bytes(), Row::of(record));
        Ok(true)
    }

    async fn load(&self, key: &SessionKey) -> Result<Option<SessionRecord>, StoreError> {
        Ok(self.rows().get(key.as_bytes()).map(Row::record))
    }

    async fn load_and_touch(
        &self,
        key: &SessionKey,
        policy: &Policy,
        now: Timestamp,
    ) -> Result<Option<LoadedRecord>, StoreError> {
        let Some(record) = self.load(key).await? else {
            return Ok(None);
        };
        let touch = match judge(policy, &record, now) {
            Verdict::Admitted(admission) if admission.touch && record.renewed_to.is_none() => {
                Some(self.touch(key, now, admission.deadlines.nearest()).await?)
            }
            _ => None,
        };
        Ok(Some(LoadedRecord::new(record, touch)))
    }

    async fn touch(
        &self,
        key: &SessionKey,
        activity: Timestamp,
        expires_at: Timestamp,
    ) -> Result<TouchOutcome, StoreError> {
        let mut rows = self.rows();
        let Some(row) = rows.get_mut(key.as_bytes()) else {
            return Ok(TouchOutcome::Missing);
        };
        let (activity, expires_at) = (activity.as_unix_millis(), expires_at.as_unix_millis());
        if row.expires_at <= activity {
            return Ok(TouchOutcome::Missing);
        }
        if row.renewed_to.is_some() || row.last_activity >= activity {
            return Ok(TouchOutcome::AlreadyRecent);
        }
        row.last_activity = activity;
        row.expires_at = row.expires_at.max(expires_at);
        Ok(TouchOutcome::Touched)
    }

    async fn update(
        &self,
        key: &SessionKey,
        expected_version: u64,
        record: &SessionRecord,
    ) -> Result<UpdateOutcome, StoreError> {
        let mut rows = self.rows();
        let Some(row) = rows.get_mut(key.as_bytes()) else {
            return Ok(UpdateOutcome::Missing);
        };
        if row.version != expected_version || row.renewed_to.is_some() {
            return Ok(UpdateOutcome::Conflict);
        }
        let mut updated = Row::of(record);
        // A touch that landed since the caller read the record keeps its
        // later activity and moves the new expiry by as much.
        if row.last_activity > updated.last_activity {
            updated.expires_at += row.last_activity - updated.last_activity;
            updated.last_activity = row.last_activity;
        }
        *row = updated;
        Ok(UpdateOutcome::Updated)
    }

    async fn delete(&self, key: &SessionKey) -> Result<bool, StoreError> {
        let mut rows = self.rows();
        let Some(mut row) = rows.remove(key.as_bytes()) else {
            return Ok(false);
        };
        // A renewed session's pointer leads to where it lives now.
        while let Some(next) = row.renewed_to {
            match rows.remove(&next) {
                Some(moved) => row = moved,
                None => break,
            }
        }
        Ok(true)
    }

    async fn delete_stale(
        &self,
        key: &SessionKey,
        last_activity: Timestamp,
    ) -> Result<bool, StoreError> {
        let mut rows = self.rows();
        let stale = rows
            .get(key.as_bytes())
            .is_some_and(|row| row.last_activity <= last_activity.as_unix_millis());
        if stale {
            rows.remove(key.as_bytes());
        }
        Ok(stale)
    }

    async fn reclaim_expired(&self) -> Result<u64, StoreError> {
        let now = Timestamp::from_system_time(std::time::SystemTime::now()).as_unix_millis();
        let mut rows = self.rows();
        let before = rows.len();
        rows.retain(|_, row| row.expires_at > now);
        Ok((before - rows.len()) as u64)
    }

    async fn renew(
        &self,
        old: &SessionKey,
        expected_version: u64,
        new: &SessionKey,
        record: &SessionRecord,
        grace_until: Timestamp,
    ) -> Result<RenewOutcome, StoreError> {
        let mut rows = self.rows();
        let Some(old_row) = rows.get(old.as_bytes()) else {
            return Ok(RenewOutcome::Missing);
        };
        if old_row.version != expected_version || old_row.renewed_to.is_some() {
            return Ok(RenewOutcome::Conflict);
        }
        if rows.contains_key(new.as_bytes()) {
            return Ok(RenewOutcome::Taken);
        }
        let old_row = rows.get_mut(old.as_bytes()).expect("checked above");
        let mut moved = Row::of(record);
        moved.last_activity = moved.last_activity.max(old_row.last_activity);
        moved.expires_at = moved.expires_at.max(old_row.expires_at);
        moved.renewed_to = None;
        old_row.renewed_to = Some(*new.as_bytes());
        old_row.expires_at = grace_until.as_unix_millis();
        old_row.version += 1;
        rows.insert(*new.as_bytes(), moved);
        Ok(RenewOutcome::Renewed)
    }

    async fn sessions_of(
        &self,
        subject: &str,
    ) -> Result<Vec<(SessionKey, SessionRecord)>, StoreError> {
        Ok(self
            .rows()
            .iter()
            .filter(|(_, row)| row.renewed_to.is_none() && row.subject.as_deref() == Some(subject))
            .map(|(key, row)| (SessionKey::from_bytes(*key), row.record()))
            .collect())
    }

    async fn delete_sessions_of(&self, subject: &str) -> Result<u64, StoreError> {
        let mut rows = self.rows();
        let live: Vec<[u8; SessionKey::LEN]> = rows
            .iter()
            .filter(|(_, row)| row.renewed_to.is_none() && row.subject.as_deref() == Some(subject))
            .map(|(key, _)| *key)
            .collect();
        for key in &live {
            rows.remove(key);
        }
        rows.retain(|_, row| row.renewed_to.is_none_or(|to| !live.contains(&to)));
        Ok(live.len() as u64)
    }
}

tower_session_lifetime::lifetime_store_conformance!(async { RowStore::default() });

#[tokio::test]
async fn the_layer_runs_on_a_store_written_outside_the_crate() {
    async fn login(session: SessionHandle) -> StatusCode {
        match session.login("alice", false).await {
            Ok(()) => StatusCode::NO_CONTENT,
            Err(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }
    async fn logout(session: SessionHandle) -> StatusCode {
        match session.logout().await {
            Ok(()) => StatusCode::NO_CONTENT,
            Err(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }
    let app = Router::new()
        .route("/login", post(login))
        .route("/logout", post(logout))
        .layer(SessionLifetimeLayer::new(RowStore::default()));
    let send = |path: &str, cookie: Option<&str>| {
        let mut request = Request::post(path);
        if let Some(cookie) = cookie {
            request = request.header(header::COOKIE, cookie);
        }
        app.clone().oneshot(request.body(Body::empty()).unwrap())
    };

    let response = send("/login", None).await.unwrap();
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    let set_cookie = response.headers()[header::SET_COOKIE].to_str().unwrap();
    let cookie = set_cookie.split(';').next().unwrap().to_owned();

    let response = send("/logout", Some(&cookie)).await.unwrap();
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    // The logout sticks: the same cookie is refused.
    let response = send("/logout", Some(&cookie)).await.unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
}
