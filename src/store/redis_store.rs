//! [`RedisStore`]: lifetimes in Redis or Valkey (feature `redis`).

use std::collections::HashMap;
use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{AsyncCommands, Client, RedisError, Script};

use super::{LifetimeStore, StoreError, StoreErrorKind, TouchOutcome, UpdateOutcome};
use crate::id::SessionKey;
use crate::policy::Limits;
use crate::record::{SessionRecord, MAX_SUBJECT_LEN};
use crate::time::Timestamp;

/// The default prefix of the store's keys.
pub const DEFAULT_REDIS_PREFIX: &str = "tsl:";

/// Writes the record in `ARGV` (see [`fields`]) if the key is free.
const CREATE: &str = r"
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], unpack(ARGV, 2))
redis.call('PEXPIREAT', KEYS[1], ARGV[1])
return 1
";

/// Moves activity to `ARGV[1]` and the expiry to `ARGV[2]`, only forward,
/// only on a record that exists. 0: missing, 1: already recent, 2: touched.
const TOUCH: &str = r"
local activity = redis.call('HGET', KEYS[1], 'a')
if not activity then return 0 end
if tonumber(activity) >= tonumber(ARGV[1]) then return 1 end
redis.call('HSET', KEYS[1], 'a', ARGV[1], 'e', ARGV[2])
redis.call('PEXPIREAT', KEYS[1], ARGV[2])
return 2
";

/// Replaces the record if its version is `ARGV[1]`, keeping a later stored
/// activity (and moving the expiry by as much). 0: missing, 1: conflict,
/// 2: updated. `ARGV[2]` is the new record's activity, `ARGV[3]` its expiry,
/// the rest its other fields.
const UPDATE: &str = r"
local stored = redis.call('HMGET', KEYS[1], 'v', 'a')
if not stored[1] then return 0 end
if stored[1] ~= ARGV[1] then return 1 end
local activity = tonumber(ARGV[2])
local expires = tonumber(ARGV[3])
local lag = tonumber(stored[2]) - activity
if lag > 0 then
  activity = activity + lag
  expires = expires + lag
end
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 'a', string.format('%.0f', activity), 'e', string.format('%.0f', expires), unpack(ARGV, 4))
redis.call('PEXPIREAT', KEYS[1], string.format('%.0f', expires))
return 2
";

/// Deletes the record if its activity is not later than `ARGV[1]`.
const DELETE_STALE: &str = r"
local activity = redis.call('HGET', KEYS[1], 'a')
if not activity then return 0 end
if tonumber(activity) > tonumber(ARGV[1]) then return 0 end
redis.call('DEL', KEYS[1])
return 1
";

/// Keeps session lifetimes in Redis 7 or Valkey.
///
/// ```no_run
/// use tower_session_lifetime::{RedisStore, SessionLifetimeLayer};
///
/// let store = RedisStore::open("redis://127.0.0.1:6379")?;
/// let layer = SessionLifetimeLayer::new(store);
/// # let _ = layer;
/// # Ok::<(), tower_session_lifetime::StoreError>(())
/// ```
///
/// Each session is one hash under `tsl:<key in hex>`, expiring in Redis at
/// the record's [`expires_at`](SessionRecord::expires_at), so Redis reclaims
/// it by itself. Every conditional write (a touch only moves forward and
/// never re-creates a record, an update checks the version, an expired
/// session is deleted only if no touch came in between) is one Lua script,
/// atomic on the server. The connection is made at the first use and
/// re-made after a failure; while Redis cannot be reached, operations fail
/// with [`StoreErrorKind::Unavailable`] within the timeouts, and the layer
/// answers as configured (`503` by default).
pub struct RedisStore {
    connection: ConnectionManager,
    prefix: String,
    create: Script,
    touch: Script,
    update: Script,
    delete_stale: Script,
}

impl RedisStore {
    /// A store on the Redis at `url` (`redis://host:port/db`), with keys
    /// under [`DEFAULT_REDIS_PREFIX`]. It connects at the first use; only a
    /// malformed URL fails here.
    pub fn open(url: &str) -> Result<Self, StoreError> {
        let client =
            Client::open(url).map_err(|err| StoreError::new(StoreErrorKind::Backend, err))?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(2)))
            .set_response_timeout(Some(Duration::from_secs(2)))
            .set_number_of_retries(1);
        let connection = ConnectionManager::new_lazy_with_config(client, config)
            .map_err(|err| StoreError::new(StoreErrorKind::Backend, err))?;
        Ok(RedisStore {
            connection,
            prefix: DEFAULT_REDIS_PREFIX.to_owned(),
            create: Script::new(CREATE),
            touch: Script::new(TOUCH),
            update: Script::new(UPDATE),
            delete_stale: Script::new(DELETE_STALE),
        })
    }

    /// Keys under `prefix` instead of [`DEFAULT_REDIS_PREFIX`], for apps that
    /// share one Redis database.
    pub fn with_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    fn redis_key(&self, key: &SessionKey) -> String {
        format!("{}{}", self.prefix, key.to_hex())
    }

    fn connection(&self) -> ConnectionManager {
        self.connection.clone()
    }
}

/// The latest expiry written to Redis: 2^53 ms (some 285,000 years), where
/// Lua's numbers stop being exact. Later deadlines (a policy of centuries)
/// expire there.
const LATEST_EXPIRY: u64 = 1 << 53;

fn expiry_millis(at: Timestamp) -> u64 {
    at.as_unix_millis().min(LATEST_EXPIRY)
}

#[async_trait]
impl LifetimeStore for RedisStore {
    async fn create(&self, key: &SessionKey, record: &SessionRecord) -> Result<bool, StoreError> {
        check_subject(record)?;
        let mut invocation = self.create.key(self.redis_key(key));
        invocation.arg(expiry_millis(record.expires_at));
        for field in fields(record) {
            invocation.arg(field);
        }
        let created: i64 = invocation
            .invoke_async(&mut self.connection())
            .await
            .map_err(store_error)?;
        Ok(created == 1)
    }

    async fn load(&self, key: &SessionKey) -> Result<Option<SessionRecord>, StoreError> {
        let stored: HashMap<String, String> = self
            .connection()
            .hgetall(self.redis_key(key))
            .await
            .map_err(store_error)?;
        if stored.is_empty() {
            return Ok(None);
        }
        record_from(&stored).map(Some)
    }

    async fn touch(
        &self,
        key: &SessionKey,
        activity: Timestamp,
        expires_at: Timestamp,
    ) -> Result<TouchOutcome, StoreError> {
        let outcome: i64 = self
            .touch
            .key(self.redis_key(key))
            .arg(activity.as_unix_millis())
            .arg(expiry_millis(expires_at))
            .invoke_async(&mut self.connection())
            .await
            .map_err(store_error)?;
        Ok(match outcome {
            0 => TouchOutcome::Missing,
            1 => TouchOutcome::AlreadyRecent,
            _ => TouchOutcome::Touched,
        })
    }

    async fn update(
        &self,
        key: &SessionKey,
        expected_version: u64,
        record: &SessionRecord,
    ) -> Result<UpdateOutcome, StoreError> {
        check_subject(record)?;
        let mut invocation = self.update.key(self.redis_key(key));
        invocation
            .arg(expected_version.to_string())
            .arg(record.last_activity.as_unix_millis())
            .arg(expiry_millis(record.expires_at));
        for field in fields(record).into_iter().skip(4) {
            invocation.arg(field);
        }
        let outcome: i64 = invocation
            .invoke_async(&mut self.connection())
            .await
            .map_err(store_error)?;
        Ok(match outcome {
            0 => UpdateOutcome::Missing,
            1 => UpdateOutcome::Conflict,
            _ => UpdateOutcome::Updated,
        })
    }

    async fn delete(&self, key: &SessionKey) -> Result<bool, StoreError> {
        let deleted: i64 = self
            .connection()
            .del(self.redis_key(key))
            .await
            .map_err(store_error)?;
        Ok(deleted > 0)
    }

    async fn delete_stale(
        &self,
        key: &SessionKey,
        last_activity: Timestamp,
    ) -> Result<bool, StoreError> {
        let deleted: i64 = self
            .delete_stale
            .key(self.redis_key(key))
            .arg(last_activity.as_unix_millis())
            .invoke_async(&mut self.connection())
            .await
            .map_err(store_error)?;
        Ok(deleted == 1)
    }

    /// Redis expires every record by itself at its `expires_at`: nothing to do.
    async fn reclaim_expired(&self) -> Result<u64, StoreError> {
        Ok(0)
    }
}

impl fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisStore")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

fn check_subject(record: &SessionRecord) -> Result<(), StoreError> {
    let len = record.subject.as_deref().map_or(0, str::len);
    if len > MAX_SUBJECT_LEN {
        return Err(StoreError::new(
            StoreErrorKind::InvalidRecord,
            format!("subject of {len} bytes exceeds the {MAX_SUBJECT_LEN}-byte bound"),
        ));
    }
    Ok(())
}

/// A Redis error, kept as the source of ours: one that says the server
/// cannot be reached is [`StoreErrorKind::Unavailable`].
fn store_error(err: RedisError) -> StoreError {
    let kind = if err.is_io_error()
        || err.is_connection_refusal()
        || err.is_timeout()
        || err.is_connection_dropped()
    {
        StoreErrorKind::Unavailable
    } else {
        StoreErrorKind::Backend
    };
    StoreError::new(kind, err)
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

fn optional_millis(limit: Option<Duration>) -> String {
    limit.map_or_else(|| "-".to_owned(), |limit| millis(limit).to_string())
}

/// The hash fields of `record`, as name and value in turn: `a` (activity)
/// and `e` (expiry) first, then `c`, `v`, `r`, `l` (limits) and `s`
/// (subject, when there is one).
fn fields(record: &SessionRecord) -> Vec<String> {
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
    ];
    if let Some(subject) = &record.subject {
        fields.push("s".to_owned());
        fields.push(subject.to_string());
    }
    fields
}

fn record_from(stored: &HashMap<String, String>) -> Result<SessionRecord, StoreError> {
    let corrupt = |field: &str| StoreError::corrupt(format!("bad or missing field `{field}`"));
    let number = |field: &str| -> Result<u64, StoreError> {
        stored
            .get(field)
            .and_then(|value| value.parse().ok())
            .ok_or_else(|| corrupt(field))
    };
    let limits: Vec<&str> = stored
        .get("l")
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
    let subject = match stored.get("s") {
        Some(subject) if subject.len() > MAX_SUBJECT_LEN => return Err(corrupt("s")),
        Some(subject) => Some(subject.as_str().into()),
        None => None,
    };
    Ok(SessionRecord {
        created_at: Timestamp::from_unix_millis(number("c")?),
        last_activity: Timestamp::from_unix_millis(number("a")?),
        expires_at: Timestamp::from_unix_millis(number("e")?),
        remember_me: match stored.get("r").map(String::as_str) {
            Some("1") => true,
            Some("0") => false,
            _ => return Err(corrupt("r")),
        },
        subject,
        version: number("v")?,
        limits: Limits {
            idle_timeout: duration(idle)?,
            absolute_timeout: optional(absolute)?,
            remember_me_period: duration(remember_me)?,
            remember_me_absolute_timeout: optional(remember_me_absolute)?,
        },
    })
}
