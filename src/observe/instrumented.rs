//! [`InstrumentedStore`]: a store whose every call is timed and counted.

use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;

use super::SessionMetrics;
use crate::id::SessionKey;
use crate::policy::Policy;
use crate::record::SessionRecord;
use crate::store::{
    LifetimeStore, LoadedRecord, RenewOutcome, StoreError, StoreErrorKind, TouchOutcome,
    UpdateOutcome,
};
use crate::time::Timestamp;

/// The app's store, with each call's time and failure counted in
/// [`SessionMetrics`]; what the layer uses when it has metrics.
pub(crate) struct InstrumentedStore {
    pub(crate) inner: Arc<dyn LifetimeStore>,
    pub(crate) metrics: SessionMetrics,
}

impl InstrumentedStore {
    fn count<T>(&self, started: Instant, result: &Result<T, StoreError>) {
        let failed = result
            .as_ref()
            .is_err_and(|err| err.kind() != StoreErrorKind::Unsupported);
        self.metrics.store_call(started.elapsed(), failed);
    }

    async fn timed<T>(
        &self,
        call: impl Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        let started = Instant::now();
        let result = call.await;
        self.count(started, &result);
        result
    }
}

#[async_trait]
impl LifetimeStore for InstrumentedStore {
    async fn create(&self, key: &SessionKey, record: &SessionRecord) -> Result<bool, StoreError> {
        self.timed(self.inner.create(key, record)).await
    }

    async fn load(&self, key: &SessionKey) -> Result<Option<SessionRecord>, StoreError> {
        self.timed(self.inner.load(key)).await
    }

    async fn load_and_touch(
        &self,
        key: &SessionKey,
        policy: &Policy,
        now: Timestamp,
    ) -> Result<Option<LoadedRecord>, StoreError> {
        self.timed(self.inner.load_and_touch(key, policy, now))
            .await
    }

    fn try_load_now(&self, key: &SessionKey) -> Option<Result<Option<SessionRecord>, StoreError>> {
        let started = Instant::now();
        let result = self.inner.try_load_now(key)?;
        self.count(started, &result);
        Some(result)
    }

    async fn touch(
        &self,
        key: &SessionKey,
        activity: Timestamp,
        expires_at: Timestamp,
    ) -> Result<TouchOutcome, StoreError> {
        self.timed(self.inner.touch(key, activity, expires_at))
            .await
    }

    async fn update(
        &self,
        key: &SessionKey,
        expected_version: u64,
        record: &SessionRecord,
    ) -> Result<UpdateOutcome, StoreError> {
        self.timed(self.inner.update(key, expected_version, record))
            .await
    }

    async fn delete(&self, key: &SessionKey) -> Result<bool, StoreError> {
        self.timed(self.inner.delete(key)).await
    }

    async fn delete_stale(
        &self,
        key: &SessionKey,
        last_activity: Timestamp,
    ) -> Result<bool, StoreError> {
        self.timed(self.inner.delete_stale(key, last_activity))
            .await
    }

    async fn reclaim_expired(&self) -> Result<u64, StoreError> {
        self.timed(self.inner.reclaim_expired()).await
    }

    async fn renew(
        &self,
        old: &SessionKey,
        expected_version: u64,
        new: &SessionKey,
        record: &SessionRecord,
        grace_until: Timestamp,
    ) -> Result<RenewOutcome, StoreError> {
        self.timed(
            self.inner
                .renew(old, expected_version, new, record, grace_until),
        )
        .await
    }

    async fn sessions_of(
        &self,
        subject: &str,
    ) -> Result<Vec<(SessionKey, SessionRecord)>, StoreError> {
        self.timed(self.inner.sessions_of(subject)).await
    }

    async fn delete_sessions_of(&self, subject: &str) -> Result<u64, StoreError> {
        self.timed(self.inner.delete_sessions_of(subject)).await
    }
}
