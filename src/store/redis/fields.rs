//! A [`SessionRecord`] as the fields of a Redis hash: `a` (activity), `e`
//! (expiry), `c` (creation), `v` (version), `r` (remember-me), `l` (the
//! limits in ms as `idle,absolute,remember-me,remember-me absolute`, `-` for
//! none), `i` (when the ID was issued), `t` (when the subject last
//! authenticated), `s` (the subject, when there is one), `n` (the label,
//! when there is one) and `m` (the key in hex a renewed session moved to,
//! when it did). Times are Unix ms.

use std::collections::HashMap;
use std::time::Duration;

use crate::id::SessionKey;
use crate::policy::{Limits, Policy};
use crate::record::{SessionRecord, MAX_LABEL_LEN, MAX_SUBJECT_LEN};
use crate::store::StoreError;
use crate::time::{duration_to_millis_ceil, Timestamp};

/// The latest expiry written to Redis: 2^53 ms (some 285,000 years), where
/// Lua's numbers stop being exact. Later deadlines (a policy of centuries)
/// expire there.
pub(super) const LATEST_EXPIRY: u64 = 1 << 53;

pub(super) fn expiry_millis(at: Timestamp) -> u64 {
    at.as_unix_millis().min(LATEST_EXPIRY)
}

/// The latest `record` can end, in Unix ms: its absolute deadline (the
/// remember-me one when it is remembered), never before its expiry; the
/// latest expiry when it has no absolute deadline. No touch moves it.
pub(super) fn latest_end_millis(record: &SessionRecord) -> u64 {
    let absolute = if record.remember_me {
        record.limits.remember_me_absolute_timeout
    } else {
        record.limits.absolute_timeout
    };
    absolute.map_or(LATEST_EXPIRY, |absolute| {
        expiry_millis(record.created_at.saturating_add(absolute))
            .max(expiry_millis(record.expires_at))
    })
}

/// The policy's limits as the load-and-touch script takes them: idle,
/// absolute, remember-me period, remember-me absolute, then the touch
/// granularity, in ms (`-` for none).
pub(super) fn policy_args(policy: &Policy) -> [String; 5] {
    let limits = policy.limits();
    [
        millis(limits.idle_timeout).to_string(),
        optional_millis(limits.absolute_timeout),
        millis(limits.remember_me_period).to_string(),
        optional_millis(limits.remember_me_absolute_timeout),
        // Rounded up: activity is in whole milliseconds, so a touch is due
        // (as `judge` says) once it is this many old.
        duration_to_millis_ceil(policy.touch_granularity()).to_string(),
    ]
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

fn optional_millis(limit: Option<Duration>) -> String {
    limit.map_or_else(|| "-".to_owned(), |limit| millis(limit).to_string())
}

/// The hash fields of `record`, as name and value in turn: `a` (activity)
/// and `e` (expiry) first, then `c`, `v`, `r`, `l` (limits), `i`, `t`, and
/// `s`, `n` and `m` when there are.
pub(super) fn fields(record: &SessionRecord) -> Vec<String> {
    let limits = &record.limits;
    let mut fields = vec![
        "a".to_owned(),
        record.last_activity.as_unix_millis().to_string(),
        "e".to_owned(),
        expiry_millis(record.expires_at).to_string(),
        "c".to_owned(),
        record.created_at.as_unix_millis().to_string(),
        "v".to_owned(),
        record.version.to_string(),
        "r".to_owned(),
        u8::from(record.remember_me).to_string(),
        "l".to_owned(),
        format!(
            "{},{},{},{}",
            millis(limits.idle_timeout),
            optional_millis(limits.absolute_timeout),
            millis(limits.remember_me_period),
            optional_millis(limits.remember_me_absolute_timeout),
        ),
        "i".to_owned(),
        record.id_issued_at.as_unix_millis().to_string(),
        "t".to_owned(),
        record.authenticated_at.as_unix_millis().to_string(),
    ];
    if let Some(subject) = &record.subject {
        fields.push("s".to_owned());
        fields.push(subject.to_string());
    }
    if let Some(label) = &record.label {
        fields.push("n".to_owned());
        fields.push(label.to_string());
    }
    if let Some(moved_to) = &record.renewed_to {
        fields.push("m".to_owned());
        fields.push(moved_to.to_hex());
    }
    fields
}

/// A stored hash's fields, by name.
pub(super) trait StoredFields {
    fn field(&self, name: &str) -> Option<&str>;
}

impl StoredFields for HashMap<String, String> {
    fn field(&self, name: &str) -> Option<&str> {
        self.get(name).map(String::as_str)
    }
}

/// The name-value pairs of an `HGETALL` reply, borrowed from it: no map
/// and no copy of each field on the hot path. A field that is not UTF-8 is
/// left out (and reported missing, hence corrupt, if the record needs it).
pub(super) struct FieldPairs<'a>(Vec<(&'a str, &'a str)>);

impl<'a> FieldPairs<'a> {
    /// The pairs of `reply`, an array of names and values (RESP2) or a map
    /// (RESP3); `None` for any other reply.
    pub(super) fn of(reply: &'a redis::Value) -> Option<Self> {
        let text = |value: &'a redis::Value| match value {
            redis::Value::BulkString(bytes) => std::str::from_utf8(bytes).ok(),
            redis::Value::SimpleString(text) => Some(text.as_str()),
            _ => None,
        };
        let pairs = match reply {
            redis::Value::Array(items) => items
                .chunks_exact(2)
                .filter_map(|pair| Some((text(&pair[0])?, text(&pair[1])?)))
                .collect(),
            redis::Value::Map(pairs) => pairs
                .iter()
                .filter_map(|(name, value)| Some((text(name)?, text(value)?)))
                .collect(),
            _ => return None,
        };
        Some(FieldPairs(pairs))
    }

    pub(super) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl StoredFields for FieldPairs<'_> {
    fn field(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(field, _)| *field == name)
            .map(|(_, value)| *value)
    }
}

pub(super) fn record_from(stored: &impl StoredFields) -> Result<SessionRecord, StoreError> {
    let corrupt = |field: &str| StoreError::corrupt(format!("bad or missing field `{field}`"));
    let number = |field: &str| -> Result<u64, StoreError> {
        stored
            .field(field)
            .and_then(|value| value.parse().ok())
            .ok_or_else(|| corrupt(field))
    };
    let limits: Vec<&str> = stored
        .field("l")
        .ok_or_else(|| corrupt("l"))?
        .split(',')
        .collect();
    let [idle, absolute, remember_me, remember_me_absolute] = limits[..] else {
        return Err(corrupt("l"));
    };
    let duration = |value: &str| -> Result<Duration, StoreError> {
        value
            .parse()
            .map(Duration::from_millis)
            .map_err(|_| corrupt("l"))
    };
    let optional = |value: &str| -> Result<Option<Duration>, StoreError> {
        match value {
            "-" => Ok(None),
            value => duration(value).map(Some),
        }
    };
    let subject = match stored.field("s") {
        Some(subject) if subject.len() > MAX_SUBJECT_LEN => return Err(corrupt("s")),
        Some(subject) => Some(subject.into()),
        None => None,
    };
    let label = match stored.field("n") {
        Some(label) if label.len() > MAX_LABEL_LEN => return Err(corrupt("n")),
        Some(label) => Some(label.into()),
        None => None,
    };
    let created_at = Timestamp::from_unix_millis(number("c")?);
    Ok(SessionRecord {
        created_at,
        last_activity: Timestamp::from_unix_millis(number("a")?),
        expires_at: Timestamp::from_unix_millis(number("e")?),
        remember_me: match stored.field("r") {
            Some("1") => true,
            Some("0") => false,
            _ => return Err(corrupt("r")),
        },
        subject,
        version: number("v")?,
        id_issued_at: Timestamp::from_unix_millis(number("i")?),
        authenticated_at: Timestamp::from_unix_millis(number("t")?),
        label,
        renewed_to: match stored.field("m") {
            Some(hex) => Some(SessionKey::from_hex(hex).ok_or_else(|| corrupt("m"))?),
            None => None,
        },
        limits: Limits {
            idle_timeout: duration(idle)?,
            absolute_timeout: optional(absolute)?,
            remember_me_period: duration(remember_me)?,
            remember_me_absolute_timeout: optional(remember_me_absolute)?,
        },
    })
}
