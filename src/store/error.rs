//! The one error type every store returns.

use std::error::Error;
use std::fmt;

type BoxError = Box<dyn Error + Send + Sync>;

/// What kind of failure a [`StoreError`] is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum StoreErrorKind {
    /// The backend could not be reached (connection refused, timed out).
    Unavailable,
    /// The backend answered with an error.
    Backend,
    /// A stored record could not be decoded.
    Corrupt,
    /// The record given to the store breaks a documented bound (for example
    /// a subject over [`MAX_SUBJECT_LEN`](crate::record::MAX_SUBJECT_LEN) bytes).
    InvalidRecord,
    /// The store cannot do this operation at all (for example listing the
    /// sessions of a subject in a store without a subject index).
    Unsupported,
    /// The change was made on the primary, but fewer replicas than the store
    /// was told to wait for acknowledged it in time: a failover now could
    /// undo it (see `RedisStore::with_replica_acknowledgement`).
    NotReplicated,
}

/// A store operation failed. Keeps the backend's error as its
/// [`source`](Error::source).
///
/// ```
/// use std::error::Error as _;
/// use tower_session_lifetime::store::{StoreError, StoreErrorKind};
///
/// let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
/// let err = StoreError::unavailable(refused);
/// assert_eq!(err.kind(), StoreErrorKind::Unavailable);
/// assert!(err.source().is_some());
/// assert_eq!(err.to_string(), "session store unavailable");
/// ```
#[derive(Debug)]
pub struct StoreError {
    kind: StoreErrorKind,
    source: BoxError,
}

impl StoreError {
    /// An error of `kind` caused by `source`.
    pub fn new(kind: StoreErrorKind, source: impl Into<BoxError>) -> Self {
        StoreError {
            kind,
            source: source.into(),
        }
    }

    /// The backend could not be reached.
    pub fn unavailable(source: impl Into<BoxError>) -> Self {
        StoreError::new(StoreErrorKind::Unavailable, source)
    }

    /// The backend answered with an error.
    pub fn backend(source: impl Into<BoxError>) -> Self {
        StoreError::new(StoreErrorKind::Backend, source)
    }

    /// A stored record could not be decoded.
    pub fn corrupt(source: impl Into<BoxError>) -> Self {
        StoreError::new(StoreErrorKind::Corrupt, source)
    }

    /// The store cannot do this operation; `what` names it.
    pub fn unsupported(what: &'static str) -> Self {
        StoreError::new(StoreErrorKind::Unsupported, what)
    }

    /// The kind of failure.
    pub fn kind(&self) -> StoreErrorKind {
        self.kind
    }
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self.kind {
            StoreErrorKind::Unavailable => "session store unavailable",
            StoreErrorKind::Backend => "session store backend error",
            StoreErrorKind::Corrupt => "session store returned a corrupt record",
            StoreErrorKind::InvalidRecord => "session record refused by the store",
            StoreErrorKind::Unsupported => "operation not supported by this session store",
            StoreErrorKind::NotReplicated => {
                "session store change not acknowledged by enough replicas"
            }
        })
    }
}

impl Error for StoreError {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        Some(&*self.source)
    }
}

impl crate::record::SessionRecord {
    /// `Err` when the subject or the label is longer than its bound: what
    /// every store refuses to write.
    pub(crate) fn check_bounds(&self) -> Result<(), StoreError> {
        use crate::record::{MAX_LABEL_LEN, MAX_SUBJECT_LEN};
        let too_long = |what: &str, len: usize, max: usize| {
            Err(StoreError::new(
                StoreErrorKind::InvalidRecord,
                format!("{what} of {len} bytes exceeds the {max}-byte bound"),
            ))
        };
        let subject_len = self.subject.as_deref().map_or(0, str::len);
        if subject_len > MAX_SUBJECT_LEN {
            return too_long("subject", subject_len, MAX_SUBJECT_LEN);
        }
        let label_len = self.label.as_deref().map_or(0, str::len);
        if label_len > MAX_LABEL_LEN {
            return too_long("label", label_len, MAX_LABEL_LEN);
        }
        Ok(())
    }
}
