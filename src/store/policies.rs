//! [`PolicyStore`]: where the nodes of an app keep the policies they share
//! ([`SharedPolicy`](crate::shared_policy::SharedPolicy)), beside their
//! sessions.

use async_trait::async_trait;

use super::StoreError;

/// The policies as a store keeps them: their text (which
/// [`SharedPolicy`](crate::shared_policy::SharedPolicy) writes and reads)
/// and their version, which each change increments.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredPolicies {
    /// How many changes made them: 1 for the first policies stored.
    pub version: u64,
    /// The policies, as text.
    pub text: String,
}

/// A store that keeps the policies of several nodes and tells them when
/// the policies change: [`RedisStore`](crate::RedisStore) (a hash and a
/// pub/sub channel beside the sessions) and
/// [`PostgresStore`](crate::PostgresStore) (a row, and `LISTEN`/`NOTIFY`).
///
/// ```
/// use tower_session_lifetime::store::{PolicyStore, StoredPolicies};
///
/// fn shares(_: &dyn PolicyStore) {}
/// ```
#[async_trait]
pub trait PolicyStore: Send + Sync + 'static {
    /// The stored policies, or `None` while no node has stored any; a
    /// [`Corrupt`](super::StoreErrorKind::Corrupt) error when what is
    /// stored has a version below 1 or lacks its version or its text.
    async fn load_policies(&self) -> Result<Option<StoredPolicies>, StoreError>;

    /// Stores `text` as version `expected + 1` if the stored version is
    /// `expected` (`0`: none stored yet), and tells the other nodes;
    /// `false`, and nothing written, if another change came first.
    async fn store_policies(&self, expected: u64, text: &str) -> Result<bool, StoreError>;

    /// Calls `changed` once it listens, then each time the stored policies
    /// may have changed (a notification), until the notifications stop (the
    /// connection broke):
    /// then it returns the error, and the caller, which also polls, calls
    /// it again later. A store without notifications returns an
    /// [`Unsupported`](super::StoreErrorKind::Unsupported) error at once.
    async fn watch_policies(&self, changed: &(dyn Fn() + Send + Sync)) -> Result<(), StoreError>;
}
