//! A user's own sessions: the "where you're signed in" page, listed and
//! ended through the [`SessionHandle`].
//!
#![cfg_attr(feature = "axum", doc = "```")]
// Needs the axum extractor: not compiled without the `axum` feature.
#![cfg_attr(not(feature = "axum"), doc = "```ignore")]
//! use axum::{extract::Path, http::StatusCode, routing::{get, post}, Json, Router};
//! use tower_session_lifetime::{MemoryStore, SessionError, SessionHandle, SessionLifetimeLayer, id::SessionKey};
//!
//! async fn list(session: SessionHandle) -> Result<Json<Vec<String>>, SessionError> {
//!     let sessions = session.sessions().await?;
//!     Ok(Json(
//!         sessions
//!             .iter()
//!             .map(|s| format!("{} {}", s.key.to_hex(), s.label.as_deref().unwrap_or("unnamed")))
//!             .collect(),
//!     ))
//! }
//!
//! async fn end(session: SessionHandle, Path(hex): Path<String>) -> Result<StatusCode, SessionError> {
//!     let Some(key) = SessionKey::from_hex(&hex) else { return Ok(StatusCode::NOT_FOUND) };
//!     Ok(if session.end_session(&key).await? { StatusCode::NO_CONTENT } else { StatusCode::NOT_FOUND })
//! }
//!
//! let app: Router = Router::new()
//!     .route("/sessions", get(list))
//!     .route("/sessions/{key}/end", post(end))
//!     .layer(SessionLifetimeLayer::new(MemoryStore::new()));
//! # let _ = app;
//! ```
//!
//! A session is named by its [`SessionKey`]: the hash the store keys it by,
//! which is not the session ID and cannot be used as a cookie, so a page
//! may show it. Listing needs a store with a subject index (every store of
//! this crate but `TowerSessionsStore`); others answer with a store error
//! of kind [`Unsupported`](crate::store::StoreErrorKind::Unsupported).

use crate::handle::{SessionError, SessionHandle};
use crate::id::SessionKey;
use crate::observe::{self, EndReason};
use crate::policy::{judge, Deadlines, Verdict};
use crate::time::Timestamp;

/// One live session of the subject, as [`SessionHandle::sessions`] lists it.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct SessionInfo {
    /// Names the session for [`SessionHandle::end_session`]; not its ID.
    pub key: SessionKey,
    /// When it was created (its login).
    pub created_at: Timestamp,
    /// Its latest activity written to the store.
    pub last_activity: Timestamp,
    /// When its subject last authenticated in it.
    pub authenticated_at: Timestamp,
    /// Whether it is a remember-me session.
    pub remember_me: bool,
    /// The label the app gave it at login, if any.
    pub label: Option<String>,
    /// Its deadlines, as enforced now.
    pub deadlines: Deadlines,
    /// Whether it is the session of this request.
    pub current: bool,
}

impl SessionHandle {
    /// The live sessions of this session's subject, on every device, this
    /// one included ([`current`](SessionInfo::current)), the most recently
    /// active first (then the newest). [`SessionError::NoSession`] without a session; a
    /// session without a subject lists only itself.
    pub async fn sessions(&self) -> Result<Vec<SessionInfo>, SessionError> {
        let (current_key, current) = self.current_record().ok_or(SessionError::NoSession)?;
        let config = self.config();
        let Some(subject) = current.subject.clone() else {
            let deadlines = self.deadlines().ok_or(SessionError::NoSession)?;
            return Ok(vec![SessionInfo::of(
                current_key,
                &current,
                deadlines,
                true,
            )]);
        };
        let now = config.clock.now();
        let mut sessions: Vec<SessionInfo> = config
            .store
            .sessions_of(&subject)
            .await?
            .into_iter()
            .filter_map(
                |(key, record)| match judge(&self.base_policy(), &record, now) {
                    Verdict::Admitted(_) => {
                        let deadlines = self.base_policy().deadlines(&record, record.last_activity);
                        Some(SessionInfo::of(key, &record, deadlines, key == current_key))
                    }
                    Verdict::Expired(_) => None,
                },
            )
            .collect();
        sessions.sort_by_key(|info| std::cmp::Reverse((info.last_activity, info.created_at)));
        Ok(sessions)
    }

    /// Ends the session `key` names if it belongs to this session's
    /// subject (a "sign out that device" button): `true` if it ended,
    /// `false` if there is no such live session of the subject. Ending the
    /// current session is a [`logout`](SessionHandle::logout).
    ///
    /// A listed key whose ID was [renewed](crate::policy::PolicyBuilder::renewal_interval)
    /// since the list was made still names its session while the old ID's
    /// grace period lasts: the renewal is followed. After that, the key
    /// names nothing and the answer is `false`: list the sessions again
    /// ([`sessions`](SessionHandle::sessions)) to show the user their
    /// current keys.
    pub async fn end_session(&self, key: &SessionKey) -> Result<bool, SessionError> {
        let (current_key, current) = self.current_record().ok_or(SessionError::NoSession)?;
        if *key == current_key {
            self.logout().await?;
            return Ok(true);
        }
        let Some(subject) = current.subject else {
            return Ok(false);
        };
        let store = &self.config().store;
        let now = self.config().clock.now();
        // Where the session is now: a renewal leaves a pointer to its new key.
        let mut at = *key;
        let mut record = store.load(&at).await?;
        for _ in 0..MAX_POINTERS {
            match record.as_ref().and_then(|record| record.renewed_to) {
                Some(moved_to) if record.as_ref().is_some_and(|r| now < r.expires_at) => {
                    at = moved_to;
                    record = store.load(&at).await?;
                }
                _ => break,
            }
        }
        if at == current_key {
            self.logout().await?;
            return Ok(true);
        }
        let theirs = record.is_some_and(|record| {
            record.renewed_to.is_none()
                && record.subject.as_deref() == Some(&*subject)
                && matches!(
                    judge(&self.base_policy(), &record, now),
                    Verdict::Admitted(_)
                )
        });
        if !theirs {
            return Ok(false);
        }
        // From the listed key: a renewal racing this follows the pointer.
        let ended = store.delete(key).await? | (at != *key && store.delete(&at).await?);
        if ended {
            observe::ended(self.config().metrics.as_ref(), &at, EndReason::Revoked);
        }
        Ok(ended)
    }
}

/// How many renewals of a listed session [`SessionHandle::end_session`]
/// follows: the layer's own renewals leave chains of one (the grace period
/// is shorter than the interval), but another layer may change a followed
/// session's ID many times within one grace period. The stores' `delete`
/// follows as many.
const MAX_POINTERS: usize = 8;

impl SessionInfo {
    fn of(
        key: SessionKey,
        record: &crate::record::SessionRecord,
        deadlines: Deadlines,
        current: bool,
    ) -> Self {
        SessionInfo {
            key,
            created_at: record.created_at,
            last_activity: record.last_activity,
            authenticated_at: record.authenticated_at,
            remember_me: record.remember_me,
            label: record.label.as_deref().map(String::from),
            deadlines,
            current,
        }
    }
}
