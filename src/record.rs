//! What a store keeps for one session.

use std::sync::Arc;

use crate::id::SessionKey;
use crate::policy::Limits;
use crate::time::Timestamp;

/// The longest subject, in bytes, a session may carry. Keeps the memory of
/// one session bounded.
pub const MAX_SUBJECT_LEN: usize = 256;

/// One session as the store keeps it, keyed by a [`SessionKey`](crate::SessionKey).
///
/// ```
/// use tower_session_lifetime::{Policy, SessionRecord, Timestamp};
///
/// let login = Timestamp::from_unix_millis(1_700_000_000_000);
/// let record = SessionRecord::new(&Policy::default(), login, Some("alice".into()), false);
/// assert_eq!(record.last_activity, login);
/// assert_eq!(record.limits, Policy::default().limits());
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionRecord {
    /// When the session was created (the login). The absolute deadline counts
    /// from here.
    pub created_at: Timestamp,
    /// The latest activity written to the store. The idle deadline counts
    /// from here.
    pub last_activity: Timestamp,
    /// The nearest deadline as of the last write. It is never earlier than
    /// the session's real deadline, so a store may forget the record from this
    /// moment on (Redis: the key's expiry).
    pub expires_at: Timestamp,
    /// Whether the session was started (or later marked) with remember-me.
    pub remember_me: bool,
    /// Who the session belongs to, if the app said; at most
    /// [`MAX_SUBJECT_LEN`] bytes. Shared, so that loading a record copies no
    /// string.
    pub subject: Option<Arc<str>>,
    /// The policy's limits when the session was created.
    pub limits: Limits,
    /// Counts replacements of the record ([`LifetimeStore::update`](crate::LifetimeStore::update));
    /// activity writes do not change it.
    pub version: u64,
    /// When the session's current ID was issued: its creation, or its latest
    /// [renewal](crate::PolicyBuilder::renewal_interval).
    pub id_issued_at: Timestamp,
    /// Set when the session's ID was renewed: this record then only points
    /// to the session's new key, for requests still in flight with the old
    /// ID, until its `expires_at` (the end of the grace period).
    pub renewed_to: Option<SessionKey>,
}

impl SessionRecord {
    /// A fresh session created at `now` under `policy`.
    pub fn new(
        policy: &crate::Policy,
        now: Timestamp,
        subject: Option<Arc<str>>,
        remember_me: bool,
    ) -> Self {
        let limits = policy.limits();
        let mut record = SessionRecord {
            created_at: now,
            last_activity: now,
            expires_at: now,
            remember_me,
            subject,
            limits,
            version: 0,
            id_issued_at: now,
            renewed_to: None,
        };
        record.expires_at = crate::policy::Deadlines::of(&limits, &record).nearest();
        record
    }
}
