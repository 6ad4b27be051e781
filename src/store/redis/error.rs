//! Redis errors as [`StoreError`]s.

use redis::{ErrorKind, RedisError, ServerErrorKind};

use crate::store::{StoreError, StoreErrorKind};

/// A Redis error, kept as the source of ours: one that says the server
/// cannot be reached, is no longer a primary (`READONLY`: a demoted
/// primary that came back as a replica), or no longer serves the key's
/// slot, or that the cluster is down (`MOVED`, `ASK`, `TRYAGAIN`,
/// `CLUSTERDOWN`, `MASTERDOWN`, while a cluster fails over or moves
/// slots), is [`StoreErrorKind::Unavailable`].
pub(super) fn store_error(err: RedisError) -> StoreError {
    let kind = if err.is_io_error()
        || err.is_connection_refusal()
        || err.is_timeout()
        || err.is_connection_dropped()
        || err.is_cluster_error()
        || matches!(
            err.kind(),
            ErrorKind::Server(ServerErrorKind::ReadOnly | ServerErrorKind::MasterDown)
        ) {
        StoreErrorKind::Unavailable
    } else {
        StoreErrorKind::Backend
    };
    StoreError::new(kind, err)
}
