//! What a store keeps for one session.

use std::sync::Arc;

use crate::id::SessionKey;
use crate::policy::Limits;
use crate::time::Timestamp;

/// The longest subject, in bytes, a session may carry. Keeps the memory of
/// one session bounded.
pub const MAX_SUBJECT_LEN: usize = 256;

/// The longest [label](SessionRecord::label), in bytes.
pub const MAX_LABEL_LEN: usize = 256;

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
    /// When the subject last proved who they are: the login, or a later
    /// [re-authentication](crate::SessionHandle::reauthenticate). The
    /// [recent-login guard](crate::RecentLoginLayer) counts from here; the
    /// absolute deadline does not.
    pub authenticated_at: Timestamp,
    /// A label the app chose to show the user in their list of sessions
    /// (a device, a browser): not secret, at most [`MAX_LABEL_LEN`] bytes.
    pub label: Option<Arc<str>>,
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
            authenticated_at: now,
            label: None,
        };
        record.expires_at = crate::policy::Deadlines::of(&limits, &record).nearest();
        record
    }

    /// `Err` when the subject or the label is longer than its bound: what
    /// every store refuses to write.
    pub(crate) fn check_bounds(&self) -> Result<(), crate::store::StoreError> {
        let too_long = |what: &str, len: usize, max: usize| {
            Err(crate::store::StoreError::new(
                crate::store::StoreErrorKind::InvalidRecord,
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
