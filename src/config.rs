//! What the layer was configured with at startup ([`Config`]), shared by
//! every request and every [`SessionHandle`](crate::handle::SessionHandle).

use std::sync::Arc;

use async_trait::async_trait;

use crate::clock::Clock;
use crate::deadline_headers::DeadlineHeaders;
use crate::guessing::GuessCounter;
use crate::id::{SessionId, SessionKey};
use crate::logout_redirect::LogoutRedirects;
use crate::observe::SessionMetrics;
use crate::policy::LivePolicy;
use crate::rejection::{OnInvalidSession, OnStoreError};
use crate::session_cookie::SessionCookie;
use crate::status::StatusEndpoint;
use crate::store::{LifetimeStore, StoreError};

/// Everything the layer was configured with at startup, shared by every
/// request and handle.
#[derive(Clone)]
pub(crate) struct Config {
    /// The store the layer calls: the app's, instrumented when the layer
    /// has metrics.
    pub(crate) store: Arc<dyn LifetimeStore>,
    /// The app's store as given.
    pub(crate) backend: Arc<dyn LifetimeStore>,
    /// The counters, when the app asked for them.
    pub(crate) metrics: Option<SessionMetrics>,
    pub(crate) clock: Arc<dyn Clock>,
    /// The policies requests are judged by, as the app may change them.
    pub(crate) policies: LivePolicy,
    pub(crate) cookie: SessionCookie,
    pub(crate) on_invalid: OnInvalidSession,
    pub(crate) on_store_error: OnStoreError,
    /// Whether another layer issues the cookie and the layer follows it.
    pub(crate) followed: bool,
    /// Where the app keeps the data of its sessions, deleted when their
    /// lifetime ends.
    pub(crate) session_data: Option<Arc<dyn SessionData>>,
    /// Counts unknown and forged IDs per client, when limited.
    pub(crate) guesses: Option<Arc<GuessCounter>>,
    /// Where a logout may redirect.
    pub(crate) logout_redirects: LogoutRedirects,
    /// The headers that carry an admitted session's deadlines, when on.
    pub(crate) deadline_headers: Option<DeadlineHeaders>,
    /// Where the layer answers status requests itself, when on.
    pub(crate) status: Option<StatusEndpoint>,
}

impl Config {
    /// Ends the session `id`: its lifetime record, then its data where the
    /// app keeps it. Only the record decides: data that cannot be deleted
    /// is logged and left to its own expiry. `true` if a record was
    /// deleted.
    pub(crate) async fn end_session(
        &self,
        id: &SessionId,
        key: &SessionKey,
    ) -> Result<bool, StoreError> {
        let deleted = self.store.delete(key).await?;
        self.delete_data(id).await;
        Ok(deleted)
    }

    /// Deletes the app's data of the session `id`, if the layer knows where
    /// it is.
    pub(crate) async fn delete_data(&self, id: &SessionId) {
        if let Some(data) = &self.session_data {
            if let Err(err) = data.delete(id).await {
                tracing::warn!(error = %err, "could not delete the data of an ended session");
            }
        }
    }
}

/// Where an app keeps the data of its sessions (tower-sessions' store).
#[async_trait]
pub(crate) trait SessionData: Send + Sync + 'static {
    /// Deletes the data of the session `id`.
    async fn delete(&self, id: &SessionId) -> Result<(), StoreError>;

    /// Moves the data of the session `old` to a fresh ID, which it returns:
    /// what a login needs when the other layer kept the pre-login ID. The
    /// data under `old` is gone afterwards (a failure to delete it is
    /// logged). When `old` has no data (or is none), the fresh ID gets
    /// empty data kept until `expires_at`, unless `must_exist`: then the
    /// answer is `None` and nothing is written.
    async fn move_to_new_id(
        &self,
        old: Option<&SessionId>,
        expires_at: crate::time::Timestamp,
        must_exist: bool,
    ) -> Result<Option<SessionId>, StoreError>;

    /// Moves the data of the session `from` to the ID `to` (overwriting),
    /// then deletes it under `from`; `false` if `from` has none.
    async fn move_data(&self, from: &SessionId, to: &SessionId) -> Result<bool, StoreError>;
}
