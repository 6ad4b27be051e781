//! What a [`RedisStore`](super::RedisStore) on a cluster does apart: the
//! writes a script on one primary makes together with a session, but
//! which a cluster keeps in other slots than the session's (feature
//! `redis-cluster`).
//!
//! Each session keeps its key, `<prefix><key in hex>`, so sessions spread
//! evenly over the slots, and its scripts run on the primary that owns
//! it: the hot path stays one round trip. A subject's index
//! (`<prefix>s:<subject>`) lives in a slot of its own, and two IDs of one
//! session in two slots; so:
//!
//! - **The index is written first.** Before a session is written with a
//!   subject (a login, a renewal, a new subject), its member is in the
//!   subject's index, scored by the latest the session can end (its
//!   absolute deadline, or the store's latest expiry when it has none).
//!   The index thus never misses a live session; what a crash between
//!   the two writes leaves is a member without a record (or with another
//!   subject), which every reader skips, and which leaves the index once
//!   its score has passed. The index expires with its latest score, and a
//!   touch, which cannot move an absolute deadline, never writes it.
//! - **A member leaves only with its record.** A logout, and a logout
//!   everywhere, drop a member from the index after they deleted its
//!   record, never because they found none: that record may be a login's
//!   that wrote its member and not yet its record.
//! - **A renewal commits on the old ID.** The new record is written first
//!   (its ID reaches no one before the renewal returns), then the old one
//!   becomes a pointer to it, if its version still matches; if not, or if
//!   it is gone (a logout won), the new record is deleted again. A logout
//!   that finds a pointer follows it, so a logout racing a renewal ends
//!   the session under both IDs. A crash between the two writes leaves a
//!   record whose ID no one holds, until its idle timeout.
//! - **A logout everywhere** reads the index, then deletes each member's
//!   record that still has the subject, following pointers, and reads the
//!   index again until a pass finds no member it had not seen (at least
//!   twice). It ends every session whose record existed when it began
//!   (that record's member was written before it), including one renewed
//!   meanwhile whose old ID's pointer was already gone (no grace period);
//!   a login racing it either is ended too, or wrote its record after the
//!   logout everywhere read the index.
//! - **A listing** shows each session once, although it reads one record
//!   at a time: a pointer stands for the record it leads to, a renewal's
//!   new record (which names the ID it comes from, `o`) counts once that
//!   ID points to it, and the records found are read again until none has
//!   moved.
//!
//! The module builds without the feature too (a store on one server never
//! has an `Apart`), so that the store's operations need no `cfg` of their
//! own.
#![cfg_attr(not(feature = "redis-cluster"), allow(dead_code))]

use redis::{Client, ConnectionInfo, FromRedisValue, ScriptInvocation};

use super::error::store_error;
use super::fields::{
    expiry_millis, fields, latest_end_millis, record_from, FieldPairs, StoredFields,
};
use super::replicas::Wait;
use super::shared::Shared;
use crate::id::SessionKey;
use crate::record::SessionRecord;
use crate::store::{RenewOutcome, StoreError};
use crate::time::Timestamp;

/// Adds `ARGV[1]` to the index `KEYS[1]` with score `ARGV[2]` (the latest
/// the session can end), first dropping the members whose score is before
/// `ARGV[3]`; the index expires with its latest score.
const INDEX: &str = r"
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', '(' .. ARGV[3])
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1])
redis.call('PEXPIREAT', KEYS[1], ARGV[2], 'NX')
redis.call('PEXPIREAT', KEYS[1], ARGV[2], 'GT')
return 1
";

/// Deletes the session `KEYS[1]`, if `ARGV[1]` is `0`, or if it is `1`
/// and the session's subject is `ARGV[2]`:
/// `{1, subject, pointer}` (false where there is none) when it did, `{0}`
/// (and two falses) when there was no such record.
const DELETE: &str = r"
local stored = redis.call('HMGET', KEYS[1], 's', 'm')
if ARGV[1] == '1' and stored[1] ~= ARGV[2] then return {0, false, false} end
if redis.call('DEL', KEYS[1]) == 0 then return {0, false, false} end
return {1, stored[1], stored[2]}
";

/// Writes the renewed record under `KEYS[1]` if the key is free, with the
/// member of the ID it comes from as `o` (a reader lists it only once that
/// ID points to it, or is gone). `ARGV`: 1 activity, 2 expiry, 3 the old
/// member, 4.. the other fields. 1: written, 0: taken.
const RENEWED: &str = r"
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], 'a', ARGV[1], 'e', ARGV[2], 'o', ARGV[3], unpack(ARGV, 4))
redis.call('PEXPIREAT', KEYS[1], ARGV[2])
return 1
";

/// Turns the record `KEYS[1]` into a pointer to `ARGV[2]` expiring at
/// `ARGV[3]`, if its version is `ARGV[1]` and it is no pointer yet.
/// `{0}`: missing, `{1}`: conflict (each with two falses), `{2, activity,
/// expiry}` (as they were): renewed.
const POINT: &str = r"
local stored = redis.call('HMGET', KEYS[1], 'v', 'a', 'e', 'm')
if not stored[1] then return {0, false, false} end
if stored[4] or stored[1] ~= ARGV[1] then return {1, false, false} end
local version = string.format('%.0f', tonumber(stored[1]) + 1)
redis.call('HSET', KEYS[1], 'm', ARGV[2], 'e', ARGV[3], 'v', version)
redis.call('PEXPIREAT', KEYS[1], ARGV[3])
return {2, stored[2], stored[3]}
";

/// Moves activity and expiry forward to `ARGV` 1 and 2, on a record that
/// exists: the touches that reached the old ID while it was renewed.
const CATCH_UP: &str = r"
local stored = redis.call('HMGET', KEYS[1], 'a', 'e')
if not stored[1] then return 0 end
local activity = math.max(tonumber(stored[1]), tonumber(ARGV[1]))
local expiry = math.max(tonumber(stored[2]), tonumber(ARGV[2]))
redis.call('HSET', KEYS[1], 'a', string.format('%.0f', activity), 'e', string.format('%.0f', expiry))
redis.call('PEXPIREAT', KEYS[1], string.format('%.0f', expiry))
return 1
";

/// The longest chain of renewals a logout follows.
const MAX_POINTERS: usize = 8;

/// The longest chain of renewals a listing follows: as many as a session
/// can make within its renewals' grace period while the listing runs.
const MAX_LISTED_POINTERS: usize = 256;

/// The most times a listing reads its sessions again while renewals keep
/// moving them.
const MAX_LISTING_PASSES: usize = 64;

/// The most passes a logout everywhere makes over the subject's index
/// while logins and renewals keep adding to it.
const MAX_PASSES: usize = 8;

/// The scripts a cluster store runs apart, and the keys they go to.
pub(super) struct Apart {
    prefix: String,
    /// The first node's settings (credentials, TLS), for a connection of
    /// its own to a primary.
    seed: ConnectionInfo,
    /// Set by `RedisStore::with_replica_acknowledgement`: then a deletion
    /// and an index entry are written to a primary on a connection of
    /// their own, and wait for its replicas.
    acknowledgement: Option<Wait>,
    index: redis::Script,
    delete: redis::Script,
    renewed: redis::Script,
    point: redis::Script,
    catch_up: redis::Script,
}

impl Apart {
    pub(super) fn new(prefix: &str, seed: ConnectionInfo) -> Self {
        Apart {
            prefix: prefix.to_owned(),
            seed,
            acknowledgement: None,
            index: redis::Script::new(INDEX),
            delete: redis::Script::new(DELETE),
            renewed: redis::Script::new(RENEWED),
            point: redis::Script::new(POINT),
            catch_up: redis::Script::new(CATCH_UP),
        }
    }

    pub(super) fn set_prefix(&mut self, prefix: &str) {
        prefix.clone_into(&mut self.prefix);
    }

    /// Waits for `wait`'s replicas after each deletion and index entry.
    pub(super) fn acknowledge(&mut self, wait: Wait) {
        self.acknowledgement = Some(wait);
    }

    /// Runs `invocation` of `script` on `redis_key`; with a replica
    /// acknowledgement, on a connection of its own to the key's primary,
    /// then waits for its replicas (a primary that no longer owns the key
    /// answers `MOVED`: unavailable, to be asked again).
    async fn run_acknowledged<T: FromRedisValue>(
        &self,
        connection: &mut Shared,
        script: &redis::Script,
        invocation: &ScriptInvocation<'_>,
        redis_key: &str,
    ) -> Result<T, StoreError> {
        let Some(wait) = self.acknowledgement else {
            return run(connection, script, invocation).await;
        };
        let client = self.client_of_primary(connection, redis_key).await?;
        wait.run(&client, invocation).await
    }

    /// A client for the primary that owns `redis_key`'s slot now.
    async fn client_of_primary(
        &self,
        connection: &mut Shared,
        redis_key: &str,
    ) -> Result<Client, StoreError> {
        #[cfg(feature = "redis-cluster")]
        if let Shared::Cluster(cluster) = connection {
            use redis::ConnectionAddr;
            let (host, port) = super::shared::primary_of(cluster, redis_key)
                .await
                .map_err(store_error)?;
            let address = match self.seed.addr() {
                ConnectionAddr::TcpTls {
                    insecure,
                    tls_params,
                    ..
                } => ConnectionAddr::TcpTls {
                    host,
                    port,
                    insecure: *insecure,
                    tls_params: tls_params.clone(),
                },
                _ => ConnectionAddr::Tcp(host, port),
            };
            return Client::open(self.seed.clone().set_addr(address))
                .map_err(|err| StoreError::new(crate::store::StoreErrorKind::Backend, err));
        }
        let _ = (connection, redis_key);
        Err(StoreError::new(
            crate::store::StoreErrorKind::Backend,
            "a replica acknowledgement apart needs a cluster",
        ))
    }

    fn session_key(&self, member: &str) -> String {
        format!("{}{member}", self.prefix)
    }

    fn index_key(&self, subject: &str) -> String {
        format!("{}s:{subject}", self.prefix)
    }

    /// Lists `key` under `record`'s subject, if it has one: before the
    /// record is written.
    pub(super) async fn index(
        &self,
        connection: &mut Shared,
        key: &SessionKey,
        record: &SessionRecord,
    ) -> Result<(), StoreError> {
        let Some(subject) = &record.subject else {
            return Ok(());
        };
        let index_key = self.index_key(subject);
        let mut invocation = self.index.key(&index_key);
        invocation
            .arg(key.to_hex())
            .arg(latest_end_millis(record))
            .arg(record.created_at.as_unix_millis());
        self.run_acknowledged::<i64>(connection, &self.index, &invocation, &index_key)
            .await
            .map(drop)
    }

    /// Deletes the session `key` and the sessions its pointers lead to;
    /// with `subject`, only records of that subject. Returns how many
    /// sessions (not pointers) it deleted, and whether it deleted any
    /// record at all.
    async fn delete_chain(
        &self,
        connection: &mut Shared,
        key: &SessionKey,
        subject: Option<&str>,
    ) -> Result<(u64, bool), StoreError> {
        let (mut member, mut sessions, mut found) = (key.to_hex(), 0, false);
        for _ in 0..MAX_POINTERS {
            let session_key = self.session_key(&member);
            let mut invocation = self.delete.key(&session_key);
            invocation
                .arg(if subject.is_some() { "1" } else { "0" })
                .arg(subject.unwrap_or(""));
            let deleted: (i64, Option<String>, Option<String>) = self
                .run_acknowledged(connection, &self.delete, &invocation, &session_key)
                .await?;
            let (1, stored_subject, pointer) = deleted else {
                break;
            };
            found = true;
            if let Some(stored_subject) = stored_subject {
                self.unindex(connection, &stored_subject, &member).await;
            }
            match pointer {
                Some(next) => member = next,
                None => {
                    sessions += 1;
                    break;
                }
            }
        }
        Ok((sessions, found))
    }

    /// Drops `member`, whose record was deleted, from `subject`'s index. A
    /// failure leaves a member without a record, which readers skip.
    async fn unindex(&self, connection: &mut Shared, subject: &str, member: &str) {
        let removed: redis::RedisResult<i64> = redis::cmd("ZREM")
            .arg(self.index_key(subject))
            .arg(member)
            .query_async(connection)
            .await;
        if let Err(err) = removed {
            tracing::debug!(error = %err, "session store: a deleted session stays in its subject's index until its deadline");
        }
    }

    /// [`LifetimeStore::delete`](crate::store::LifetimeStore::delete).
    pub(super) async fn delete(
        &self,
        connection: &mut Shared,
        key: &SessionKey,
    ) -> Result<bool, StoreError> {
        Ok(self.delete_chain(connection, key, None).await?.1)
    }

    /// [`LifetimeStore::renew`](crate::store::LifetimeStore::renew), in the
    /// order the module docs give.
    pub(super) async fn renew(
        &self,
        connection: &mut Shared,
        old: &SessionKey,
        expected_version: u64,
        new: &SessionKey,
        record: &SessionRecord,
        grace_until: Timestamp,
    ) -> Result<RenewOutcome, StoreError> {
        self.index(connection, new, record).await?;
        let new_member = new.to_hex();
        let (activity, expiry) = (
            record.last_activity.as_unix_millis(),
            expiry_millis(record.expires_at),
        );
        let mut invocation = self.renewed.key(self.session_key(&new_member));
        invocation
            .arg(activity)
            .arg(expiry)
            .arg(old.to_hex())
            .arg(&fields(record)[4..]);
        if run::<i64>(connection, &self.renewed, &invocation).await? == 0 {
            return Ok(RenewOutcome::Taken);
        }
        let mut invocation = self.point.key(self.session_key(&old.to_hex()));
        invocation
            .arg(expected_version.to_string())
            .arg(&new_member)
            .arg(expiry_millis(grace_until));
        // On an error, whether the old ID points here is unknown: the new
        // record stays, for a logout to find through the pointer if there
        // is one; with none, no one holds its ID.
        let pointed: (i64, Option<u64>, Option<u64>) =
            run(connection, &self.point, &invocation).await?;
        match pointed {
            (2, Some(old_activity), Some(old_expiry)) => {
                if old_activity > activity || old_expiry > expiry {
                    let mut invocation = self.catch_up.key(self.session_key(&new_member));
                    invocation.arg(old_activity).arg(old_expiry);
                    run::<i64>(connection, &self.catch_up, &invocation).await?;
                }
                Ok(RenewOutcome::Renewed)
            }
            (outcome, ..) => {
                self.delete_chain(connection, new, None).await?;
                Ok(if outcome == 0 {
                    RenewOutcome::Missing
                } else {
                    RenewOutcome::Conflict
                })
            }
        }
    }

    /// The members of `subject`'s index.
    async fn members(
        &self,
        connection: &mut Shared,
        subject: &str,
    ) -> Result<Vec<SessionKey>, StoreError> {
        let members: Vec<String> = redis::cmd("ZRANGE")
            .arg(self.index_key(subject))
            .arg(0)
            .arg(-1)
            .query_async(connection)
            .await
            .map_err(store_error)?;
        members
            .iter()
            .map(|member| {
                SessionKey::from_hex(member).ok_or_else(|| {
                    StoreError::corrupt(format!("subject index member `{member}` is not a key"))
                })
            })
            .collect()
    }

    /// The record under `key` and, for a renewal's new record, the key of
    /// the ID it comes from.
    async fn read(
        &self,
        connection: &mut Shared,
        key: &SessionKey,
    ) -> Result<Option<(SessionRecord, Option<SessionKey>)>, StoreError> {
        let reply: redis::Value = redis::cmd("HGETALL")
            .arg(self.session_key(&key.to_hex()))
            .query_async(connection)
            .await
            .map_err(store_error)?;
        let stored = FieldPairs::of(&reply)
            .ok_or_else(|| StoreError::corrupt("a record that is not a hash"))?;
        if stored.is_empty() {
            return Ok(None);
        }
        let origin = match stored.field("o") {
            Some(hex) => Some(
                SessionKey::from_hex(hex).ok_or_else(|| StoreError::corrupt("bad field `o`"))?,
            ),
            None => None,
        };
        Ok(Some((record_from(&stored)?, origin)))
    }

    /// Where the session under `key` lives now: the record its renewals
    /// lead to (a pointer stands for the record it points to), with the
    /// ID that record was renewed from, if it was; `None` if the chain
    /// ends in nothing or runs longer than [`MAX_LISTED_POINTERS`].
    async fn head(
        &self,
        connection: &mut Shared,
        key: SessionKey,
    ) -> Result<Option<(SessionKey, SessionRecord, Option<SessionKey>)>, StoreError> {
        let mut key = key;
        for _ in 0..=MAX_LISTED_POINTERS {
            let Some((record, origin)) = self.read(connection, &key).await? else {
                return Ok(None);
            };
            match record.renewed_to {
                Some(next) => key = next,
                None => return Ok(Some((key, record, origin))),
            }
        }
        Ok(None)
    }

    /// [`LifetimeStore::sessions_of`](crate::store::LifetimeStore::sessions_of):
    /// each session of the subject once, although a cluster takes no
    /// snapshot. Each member of the index stands for where its renewals
    /// lead; a renewal's new record counts only once its old ID points to
    /// it (or is gone): before, the old record is the session. Then each
    /// record found is read again until none has moved meanwhile (a
    /// renewal that committed while the listing ran), so that one session
    /// is not listed under two IDs.
    pub(super) async fn sessions_of(
        &self,
        connection: &mut Shared,
        subject: &str,
    ) -> Result<Vec<(SessionKey, SessionRecord)>, StoreError> {
        let mut found: Vec<(SessionKey, SessionRecord)> = Vec::new();
        for member in self.members(connection, subject).await? {
            let Some((key, record, origin)) = self.head(connection, member).await? else {
                continue;
            };
            if let Some(origin) = origin {
                let committed = match self.read(connection, &origin).await? {
                    Some((old, _)) => old.renewed_to == Some(key),
                    None => true,
                };
                if !committed {
                    continue;
                }
            }
            if !found.iter().any(|(listed, _)| *listed == key) {
                found.push((key, record));
            }
        }
        for _ in 0..MAX_LISTING_PASSES {
            let mut settled = Vec::with_capacity(found.len());
            let mut moved = false;
            for (key, _) in &found {
                let Some((now, record, _)) = self.head(connection, *key).await? else {
                    moved = true;
                    continue;
                };
                moved |= now != *key;
                if !settled.iter().any(|(listed, _)| *listed == now) {
                    settled.push((now, record));
                }
            }
            found = settled;
            if !moved {
                break;
            }
        }
        found.retain(|(_, record)| record.subject.as_deref() == Some(subject));
        Ok(found)
    }

    /// [`LifetimeStore::delete_sessions_of`](crate::store::LifetimeStore::delete_sessions_of):
    /// passes over the index, at least two, until one finds no member the
    /// others had not: a session renewed while a pass ran (its new ID
    /// indexed after the pass read the index, its old ID's pointer gone by
    /// the time the pass came to it, as with no grace period) is ended by
    /// the next.
    pub(super) async fn delete_sessions_of(
        &self,
        connection: &mut Shared,
        subject: &str,
    ) -> Result<u64, StoreError> {
        let (mut deleted, mut seen) = (0, Vec::new());
        for pass in 0..MAX_PASSES {
            let members = self.members(connection, subject).await?;
            if pass >= 2 && members.iter().all(|member| seen.contains(member)) {
                break;
            }
            for member in members {
                deleted += self
                    .delete_chain(connection, &member, Some(subject))
                    .await?
                    .0;
                if !seen.contains(&member) {
                    seen.push(member);
                }
            }
        }
        Ok(deleted)
    }
}

async fn run<T: FromRedisValue>(
    connection: &mut Shared,
    script: &redis::Script,
    invocation: &ScriptInvocation<'_>,
) -> Result<T, StoreError> {
    connection
        .run(script, invocation)
        .await
        .map_err(store_error)
}
