//! What a store keeps for one session.

use std::sync::Arc;

use crate::id::SessionKey;
use crate::limits::Limits;
use crate::time::Timestamp;

/// The longest subject, in bytes, a session may carry. Keeps the memory of
/// one session bounded.
pub const MAX_SUBJECT_LEN: usize = 256;

/// The longest [label](SessionRecord::label), in bytes.
pub const MAX_LABEL_LEN: usize = 256;

/// One session as the store keeps it, keyed by a [`SessionKey`].
///
/// ```
/// use tower_session_lifetime::record::SessionRecord;
/// use tower_session_lifetime::time::Timestamp;
/// use tower_session_lifetime::Policy;
///
/// let login = Timestamp::from_unix_millis(1_700_000_000_000);
/// let record = SessionRecord::new(&Policy::default(), login, Some("alice".into()), false);
/// assert_eq!(record.last_activity, login);
/// assert_eq!(record.limits, Policy::default().limits());
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
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
    /// Counts replacements of the record ([`LifetimeStore::update`](crate::store::LifetimeStore::update));
    /// activity writes do not change it.
    pub version: u64,
    /// When the session's current ID was issued: its creation, or its latest
    /// [renewal](crate::policy::PolicyBuilder::renewal_interval).
    pub id_issued_at: Timestamp,
    /// Set when the session's ID was renewed: this record then only points
    /// to the session's new key, for requests still in flight with the old
    /// ID, until its `expires_at` (the end of the grace period).
    pub renewed_to: Option<SessionKey>,
    /// When the subject last proved who they are: the login, or a later
    /// [re-authentication](crate::SessionHandle::reauthenticate). The
    /// [recent-login guard](crate::recent_login::RecentLoginLayer) counts from here; the
    /// absolute deadline does not.
    pub authenticated_at: Timestamp,
    /// A label the app chose to show the user in their list of sessions
    /// (a device, a browser): not secret, at most [`MAX_LABEL_LEN`] bytes.
    pub label: Option<Arc<str>>,
}

impl SessionRecord {
    /// A record as a store reads it back, to be filled in from what it
    /// kept: every time at `created_at`, expiring then, with `limits`, no
    /// subject, no label, version 0, not renewed. A store sets the other
    /// fields from storage; fields added later start from these values.
    /// A fresh session is made with [`SessionRecord::new`], which needs a
    /// [`Policy`](crate::policy::Policy) and lives beside the rule in
    /// [`policy`](crate::policy).
    ///
    /// ```
    /// use std::time::Duration;
    /// use tower_session_lifetime::policy::Limits;
    /// use tower_session_lifetime::record::SessionRecord;
    /// use tower_session_lifetime::time::Timestamp;
    ///
    /// let created = Timestamp::from_unix_millis(1_700_000_000_000);
    /// let limits = Limits::new(Duration::from_secs(900), None, Duration::from_secs(86_400), None);
    /// let mut record = SessionRecord::stored(created, limits);
    /// record.last_activity = Timestamp::from_unix_millis(1_700_000_060_000);
    /// record.subject = Some("alice".into());
    /// assert_eq!(record.version, 0);
    /// ```
    pub fn stored(created_at: Timestamp, limits: Limits) -> Self {
        SessionRecord {
            created_at,
            last_activity: created_at,
            expires_at: created_at,
            remember_me: false,
            subject: None,
            limits,
            version: 0,
            id_issued_at: created_at,
            renewed_to: None,
            authenticated_at: created_at,
            label: None,
        }
    }
}
