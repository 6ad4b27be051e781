//! Working with tower-sessions (feature `tower-sessions`): deleting a
//! session's data when its lifetime ends, and keeping lifetime records in a
//! tower-sessions store.
//!
//! ```
//! use axum::{routing::get, Router};
//! use tower_session_lifetime::{MemoryStore, SessionLifetimeLayer};
//! use tower_sessions::{MemoryStore as SessionStore, SessionManagerLayer};
//!
//! let sessions = SessionStore::default();
//! let app: Router = Router::new()
//!     .route("/", get(|| async { "hello" }))
//!     .layer(SessionManagerLayer::new(sessions.clone()))
//!     .layer(
//!         SessionLifetimeLayer::new(MemoryStore::new())
//!             .follow_tower_sessions()
//!             // An expired or ended session's data goes too.
//!             .delete_data_from(sessions),
//!     );
//! # let _ = app;
//! ```

mod adapter;

use async_trait::async_trait;
use tower_sessions_core::session::{Id, Record};
use tower_sessions_core::{session_store, SessionStore};

pub use adapter::{TowerSessionsStore, DEFAULT_KEPT_PAST_EXPIRY};

use crate::config::SessionData;
use crate::id::SessionId;
use crate::store::{StoreError, StoreErrorKind};
use crate::time::Timestamp;
use crate::SessionLifetimeLayer;

impl<R> SessionLifetimeLayer<R> {
    /// Deletes a session's record from the app's tower-sessions `store`
    /// whenever its lifetime ends: it expired, it is unknown (ended before,
    /// perhaps brought back by a late write), it was logged out, or a new ID
    /// replaced it. A write that lands after that (a request in flight
    /// during a logout) is deleted at the next request that presents the
    /// ID, and otherwise left to the store's own expiry. Use it with
    /// [`follow_tower_sessions`](SessionLifetimeLayer::follow_tower_sessions),
    /// giving the store the session layer uses: on a cookie this layer
    /// issues itself, the IDs are not tower-sessions' and nothing is found
    /// to delete.
    ///
    /// The lifetime decides alone: if the data cannot be deleted (the store
    /// is down), that is logged, the session is ended anyway, and the data
    /// is left to the store's own expiry.
    pub fn delete_data_from(mut self, store: impl SessionStore) -> Self {
        self.config_mut().session_data = Some(std::sync::Arc::new(DataOf(store)));
        self
    }
}

/// The tower-sessions ID of the session `id`: the same 128 bits, as
/// tower-sessions reads them from its cookie.
pub(crate) fn tower_sessions_id(id: &SessionId) -> Id {
    Id(i128::from_le_bytes(*id.as_bytes()))
}

/// A tower-sessions store as the place an app keeps session data.
struct DataOf<S>(S);

#[async_trait]
impl<S: SessionStore> SessionData for DataOf<S> {
    async fn delete(&self, id: &SessionId) -> Result<(), StoreError> {
        self.0
            .delete(&tower_sessions_id(id))
            .await
            .map_err(store_error)
    }

    async fn move_to_new_id(
        &self,
        old: Option<&SessionId>,
        expires_at: Timestamp,
        must_exist: bool,
    ) -> Result<Option<SessionId>, StoreError> {
        let loaded = match old {
            Some(old) => self
                .0
                .load(&tower_sessions_id(old))
                .await
                .map_err(store_error)?,
            None => None,
        };
        let mut record = match loaded {
            Some(record) => record,
            None if must_exist => return Ok(None),
            None => Record {
                id: Id(0),
                data: Default::default(),
                expiry_date: expiry_date(expires_at),
            },
        };
        let fresh =
            SessionId::generate().map_err(|err| StoreError::new(StoreErrorKind::Backend, err))?;
        record.id = tower_sessions_id(&fresh);
        // The store picks another ID if this one is taken.
        self.0.create(&mut record).await.map_err(store_error)?;
        if let Some(old) = old {
            self.delete_after_move(old).await;
        }
        Ok(Some(session_id_of(record.id)))
    }

    async fn move_data(&self, from: &SessionId, to: &SessionId) -> Result<bool, StoreError> {
        let Some(mut record) = self
            .0
            .load(&tower_sessions_id(from))
            .await
            .map_err(store_error)?
        else {
            return Ok(false);
        };
        record.id = tower_sessions_id(to);
        self.0.save(&record).await.map_err(store_error)?;
        self.delete_after_move(from).await;
        Ok(true)
    }
}

impl<S: SessionStore> DataOf<S> {
    /// Deletes the data left under `id` after a move; a failure is logged
    /// (the data is then left to the store's own expiry).
    async fn delete_after_move(&self, id: &SessionId) {
        if let Err(err) = self.0.delete(&tower_sessions_id(id)).await {
            tracing::warn!(error = %err, "could not delete the data a session moved away from");
        }
    }
}

/// The session whose tower-sessions ID is `id`.
pub(crate) fn session_id_of(id: Id) -> SessionId {
    SessionId::from_bytes(id.0.to_le_bytes())
}

/// `at` as tower-sessions' expiry date.
fn expiry_date(at: Timestamp) -> cookie::time::OffsetDateTime {
    let nanos = i128::from(at.as_unix_millis()) * 1_000_000;
    cookie::time::OffsetDateTime::from_unix_timestamp_nanos(nanos)
        .unwrap_or(cookie::time::OffsetDateTime::UNIX_EPOCH)
}

/// A tower-sessions store error, kept as the source of ours.
pub(crate) fn store_error(err: session_store::Error) -> StoreError {
    let kind = match err {
        session_store::Error::Decode(_) => StoreErrorKind::Corrupt,
        session_store::Error::Encode(_) => StoreErrorKind::InvalidRecord,
        session_store::Error::Backend(_) => StoreErrorKind::Backend,
    };
    StoreError::new(kind, err)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn our_id_and_the_tower_sessions_id_of_a_session_read_the_same() {
        let id = SessionId::generate().unwrap();
        assert_eq!(tower_sessions_id(&id).to_string(), id.encode());
        assert_eq!(session_id_of(tower_sessions_id(&id)), id);
    }
}
