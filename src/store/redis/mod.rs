//! [`RedisStore`]: lifetimes in Redis or Valkey (feature `redis`).

mod cluster;
mod connections;
mod error;
mod fields;
mod hints;
mod policies;
mod primary;
mod replicas;
mod scripts;
#[cfg(feature = "redis-sentinel")]
mod sentinel;
mod shared;

use std::collections::HashMap;
use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use redis::ScriptInvocation;

use self::cluster::Apart;
use self::error::store_error;
use self::fields::{expiry_millis, fields, policy_args, record_from, FieldPairs, LATEST_EXPIRY};
use self::hints::TouchHints;
use self::primary::Primary;
use self::replicas::Wait;
pub use self::replicas::{InvalidReplicaAcknowledgement, MAX_REPLICA_WAIT};
use self::scripts::Scripts;
use super::{
    LifetimeStore, LoadedRecord, PolicyStore, RenewOutcome, StoreError, StoreErrorKind,
    StoredPolicies, TouchOutcome, UpdateOutcome,
};
use crate::id::SessionKey;
use crate::policy::{judge, Policy, TouchBasis, Verdict};
use crate::record::{SessionRecord, MAX_LABEL_LEN, MAX_SUBJECT_LEN};
use crate::time::Timestamp;

/// The fields of a hash as `HGETALL` (or a script passing its reply on)
/// returned them.
fn stored_fields(reply: &redis::Value) -> Result<FieldPairs<'_>, StoreError> {
    FieldPairs::of(reply).ok_or_else(|| StoreError::corrupt("a record that is not a hash"))
}

/// The default prefix of the store's keys.
pub const DEFAULT_REDIS_PREFIX: &str = "tsl:";

/// Keeps session lifetimes in Redis 7 or Valkey.
///
/// ```no_run
/// use tower_session_lifetime::{RedisStore, SessionLifetimeLayer};
///
/// let store = RedisStore::open("redis://127.0.0.1:6379")?;
/// let layer = SessionLifetimeLayer::new(store);
/// # let _ = layer;
/// # Ok::<(), tower_session_lifetime::store::StoreError>(())
/// ```
///
/// - **One round trip per request.** The layer's load, and the touch when
///   one is due, are one Lua script
///   ([`load_and_touch`](LifetimeStore::load_and_touch)). The store
///   remembers, for the sessions this process loaded lately (at most
///   65,536, about 4 MB), what decides when a touch can fall due (the
///   stored activity and the shorter of the record's idle limits), and
///   judges it against each request's policy; while no touch can be due it
///   loads with a plain `HGETALL`, which costs Redis about a ninth of the
///   script (0.9 µs against 8.4 µs a call in `INFO commandstats`), so the
///   script runs about once per touch granularity per session. Stored
///   activity only moves forward, and the shorter idle limit holds whatever
///   remember-me becomes, so what another node wrote can only postpone a
///   touch; should one be due after all, the store runs the script then
///   (a second round trip), so that the load and the touch stay one
///   atomic step.
/// - **Atomic conditional writes.** A touch only moves forward and never
///   re-creates a record, an update checks the version, an expired session
///   is deleted only if no touch came in between: each is one script.
/// - **Reclaimed by Redis.** Each session is one hash under
///   `<prefix><key in hex>` expiring at the record's
///   [`expires_at`](SessionRecord::expires_at).
/// - **A subject index.** The sessions of a subject are a sorted set under
///   `<prefix>s:<subject>`, for [`sessions_of`](LifetimeStore::sessions_of)
///   and [`delete_sessions_of`](LifetimeStore::delete_sessions_of). It
///   expires with the latest of its sessions and drops expired members
///   whenever the subject logs in or is listed, so it holds no more than the
///   subject's live sessions.
/// - **Outages.** The connection is made at the first use and re-made after
///   a failure; while Redis cannot be reached, operations fail with
///   [`StoreErrorKind::Unavailable`] within two seconds, and the layer
///   answers as configured (`503` by default).
///
/// - **Failovers.** With the `redis-sentinel` feature,
///   [`open_sentinel`](Self::open_sentinel) follows the primary that Redis
///   Sentinel names: requests get `503` while it fails over, and the store
///   goes to the promoted replica by itself.
///   [`with_replica_acknowledgement`](Self::with_replica_acknowledgement)
///   makes a logout wait for replicas, so that a failover cannot undo it.
///
/// - **Clusters.** With the `redis-cluster` feature,
///   [`open_cluster`](Self::open_cluster) spreads sessions over the
///   primaries of a Redis Cluster, each request still one round trip.
pub struct RedisStore {
    primary: Primary,
    prefix: String,
    scripts: Scripts,
    hints: TouchHints,
    /// Set by [`with_replica_acknowledgement`](Self::with_replica_acknowledgement).
    acknowledgement: Option<Wait>,
    /// On a cluster, the writes made apart from a session's script.
    apart: Option<Apart>,
}

impl RedisStore {
    /// A store on the Redis at `url` (`redis://host:port/db`), with keys
    /// under [`DEFAULT_REDIS_PREFIX`]. It connects at the first use; only a
    /// malformed URL fails here.
    pub fn open(url: &str) -> Result<Self, StoreError> {
        Ok(RedisStore::on(Primary::fixed(url)?))
    }

    fn on(primary: Primary) -> Self {
        RedisStore {
            primary,
            prefix: DEFAULT_REDIS_PREFIX.to_owned(),
            scripts: Scripts::new(),
            hints: TouchHints::new(),
            acknowledgement: None,
            apart: None,
        }
    }

    /// A store on the primary that the Redis Sentinels at `sentinels`
    /// (`redis://host:port` URLs) name for `service` (feature
    /// `redis-sentinel`). It asks them now, and fails if none names a
    /// primary; afterwards it asks again whenever an operation finds its
    /// primary gone or demoted, and follows a failover by itself:
    /// operations fail as [`StoreErrorKind::Unavailable`] (the layer
    /// answers `503`) until the Sentinels have promoted a replica, then go
    /// to it. What a failover can lose, and how not to lose a logout, is in
    /// [`with_replica_acknowledgement`](Self::with_replica_acknowledgement).
    ///
    /// ```no_run
    /// use tower_session_lifetime::RedisStore;
    ///
    /// # async fn run() -> Result<(), tower_session_lifetime::store::StoreError> {
    /// let sentinels = ["redis://127.0.0.1:26379", "redis://127.0.0.1:26380"];
    /// let store = RedisStore::open_sentinel(&sentinels, "sessions").await?;
    /// # let _ = store;
    /// # Ok(())
    /// # }
    /// ```
    #[cfg(feature = "redis-sentinel")]
    pub async fn open_sentinel(sentinels: &[&str], service: &str) -> Result<Self, StoreError> {
        let followed = sentinel::Followed::new(sentinels, service).await?;
        Ok(RedisStore::on(Primary::Sentinel(Box::new(followed))))
    }

    /// A store on the Redis Cluster (or Valkey cluster) that the nodes at
    /// `nodes` (`redis://host:port` URLs, any of its nodes; feature
    /// `redis-cluster`) belong to. It connects now, and fails if none of
    /// them answers; afterwards the connection finds each key's primary,
    /// and follows a failover or a slot's move by itself.
    ///
    /// Each session's key hashes to its own slot, so sessions spread over
    /// the primaries, and the layer's request still costs one round trip
    /// to the primary that owns it. A subject's index and a renewed ID live
    /// in other slots, so the store writes them apart: a renewal is a write
    /// on the new ID then one on the old, a logout everywhere and a listing
    /// a round trip per session of the subject. The order of those writes,
    /// and what it guarantees under races and crashes, is in the
    /// [`store`](crate::store) module docs.
    ///
    /// ```no_run
    /// use tower_session_lifetime::RedisStore;
    ///
    /// # async fn run() -> Result<(), tower_session_lifetime::store::StoreError> {
    /// let nodes = ["redis://127.0.0.1:7000", "redis://127.0.0.1:7001"];
    /// let store = RedisStore::open_cluster(&nodes).await?;
    /// # let _ = store;
    /// # Ok(())
    /// # }
    /// ```
    #[cfg(feature = "redis-cluster")]
    pub async fn open_cluster(nodes: &[&str]) -> Result<Self, StoreError> {
        let (connection, seed) = connections::cluster(nodes).await?;
        let mut store = RedisStore::on(Primary::Cluster(connection));
        store.scripts = Scripts::apart_from_index();
        store.apart = Some(Apart::new(&store.prefix, seed));
        Ok(store)
    }

    /// Ends sessions so that a failover cannot bring them back: a logout
    /// ([`delete`](LifetimeStore::delete)) and a logout everywhere
    /// ([`delete_sessions_of`](LifetimeStore::delete_sessions_of)) succeed
    /// only once at least `replicas` replicas have the deletion, waiting at
    /// most `timeout` (Redis `WAIT`). If fewer acknowledge it in time, the
    /// operation fails with [`StoreErrorKind::NotReplicated`]: the session
    /// is gone from the primary, but a failover now could bring it back,
    /// so the handler's [`logout`](crate::SessionHandle::logout) reports an
    /// error rather than a logout it cannot promise (asking again is safe).
    ///
    /// Without it (the default), Redis's asynchronous replication applies:
    /// a logout acknowledged by a primary that dies before its replicas have
    /// it is undone by the failover. See `SECURITY.md`.
    ///
    /// Each deletion and its `WAIT` use a connection of their own, so a
    /// replica that is slow or down holds up each logout for at most
    /// `timeout` (concurrent logouts wait side by side), never the requests
    /// that only load. Only use it with
    /// replicas: a primary without them acknowledges nothing, and every
    /// logout would fail after `timeout`.
    ///
    /// On a cluster ([`open_cluster`](Self::open_cluster)), each deletion
    /// goes to the primary that owns the session, and waits for that
    /// primary's replicas; so does each login's entry in its subject's
    /// index, which lives on another primary and is written before the
    /// session, so that a failover cannot leave a live session that a
    /// logout everywhere misses (a login then fails as not replicated
    /// while the index's replicas cannot acknowledge it).
    ///
    /// ```no_run
    /// use std::time::Duration;
    /// use tower_session_lifetime::RedisStore;
    ///
    /// let store = RedisStore::open("redis://127.0.0.1:6379")?
    ///     .with_replica_acknowledgement(1, Duration::from_millis(500))?;
    /// # let _ = store;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// Refused with [`InvalidReplicaAcknowledgement`] for zero replicas, or
    /// a `timeout` under a millisecond or over [`MAX_REPLICA_WAIT`].
    pub fn with_replica_acknowledgement(
        mut self,
        replicas: u32,
        timeout: Duration,
    ) -> Result<Self, InvalidReplicaAcknowledgement> {
        let wait = Wait::new(replicas, timeout)?;
        self.acknowledgement = Some(wait);
        if let Some(apart) = &mut self.apart {
            apart.acknowledge(wait);
        }
        Ok(self)
    }

    /// Keys under `prefix` instead of [`DEFAULT_REDIS_PREFIX`], for apps that
    /// share one Redis database.
    pub fn with_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        if let Some(apart) = &mut self.apart {
            apart.set_prefix(&self.prefix);
        }
        self
    }

    /// Runs `invocation` on the session `key`: its Redis key first, then
    /// the prefix and the key in hex as the first two arguments.
    async fn run<T: redis::FromRedisValue>(
        &self,
        script: &redis::Script,
        invocation: &ScriptInvocation<'_>,
    ) -> Result<T, StoreError> {
        match self.primary.shared().run(script, invocation).await {
            Ok(value) => Ok(value),
            Err(err) => Err(self.primary.failed(store_error(err)).await),
        }
    }

    /// Runs `invocation` as [`run`](Self::run) does, or, with a replica
    /// acknowledgement, on its connection and waiting for the replicas.
    async fn run_acknowledged<T: redis::FromRedisValue>(
        &self,
        script: &redis::Script,
        invocation: &ScriptInvocation<'_>,
    ) -> Result<T, StoreError> {
        let Some(wait) = self.acknowledgement else {
            return self.run(script, invocation).await;
        };
        let Some(client) = self.primary.acknowledging() else {
            return self.run(script, invocation).await;
        };
        match wait.run(&client, invocation).await {
            Ok(value) => Ok(value),
            Err(err) => Err(self.primary.failed(err).await),
        }
    }

    fn on_session<'a>(&self, script: &'a redis::Script, key: &SessionKey) -> ScriptInvocation<'a> {
        let session_key = self.session_key(key);
        let member = &session_key[self.prefix.len()..];
        let mut invocation = script.key(&session_key);
        invocation.arg(&self.prefix).arg(member);
        invocation
    }

    /// The Redis key of the session `key`: the prefix, then the key in hex,
    /// built in one allocation.
    fn session_key(&self, key: &SessionKey) -> String {
        let mut session_key = String::with_capacity(self.prefix.len() + 2 * SessionKey::LEN);
        session_key.push_str(&self.prefix);
        key.push_hex(&mut session_key);
        session_key
    }

    /// [`load`](LifetimeStore::load): one `HGETALL`. Its own method, not
    /// the trait's, so that a load before a touch is due does not box a
    /// second future.
    async fn read(&self, key: &SessionKey) -> Result<Option<SessionRecord>, StoreError> {
        let reply: redis::Value = match redis::cmd("HGETALL")
            .arg(self.session_key(key))
            .query_async(&mut self.primary.shared())
            .await
        {
            Ok(reply) => reply,
            Err(err) => return Err(self.primary.failed(store_error(err)).await),
        };
        let stored = stored_fields(&reply)?;
        if stored.is_empty() {
            return Ok(None);
        }
        record_from(&stored).map(Some)
    }

    /// [`load_and_touch`](LifetimeStore::load_and_touch) when the hints
    /// say no touch can be due: one plain `HGETALL`, cheaper for Redis than
    /// the script, which must carry every field into Lua and back. Should
    /// a touch be due after all, the script runs as if there had been no
    /// hint (a second round trip), so that the load and the touch stay one
    /// atomic step.
    async fn load_before_touch_due(
        &self,
        key: &SessionKey,
        policy: &Policy,
        now: Timestamp,
    ) -> Result<Option<LoadedRecord>, StoreError> {
        let Some(record) = self.read(key).await? else {
            self.hints.forget(key);
            return Ok(None);
        };
        if record.renewed_to.is_none()
            && matches!(judge(policy, &record, now), Verdict::Admitted(admission) if admission.touch)
        {
            return self.load_and_touch_in_script(key, policy, now).await;
        }
        self.remember_hint(key, &record, None);
        Ok(Some(LoadedRecord::new(record, None)))
    }

    /// The `LOAD_AND_TOUCH` script: loads the session and, if a touch is
    /// due, touches it, in one atomic step.
    async fn load_and_touch_in_script(
        &self,
        key: &SessionKey,
        policy: &Policy,
        now: Timestamp,
    ) -> Result<Option<LoadedRecord>, StoreError> {
        let mut invocation = self.on_session(&self.scripts.load_and_touch, key);
        invocation
            .arg(now.as_unix_millis())
            .arg(&policy_args(policy)[..])
            .arg(LATEST_EXPIRY);
        let (touched, reply): (i64, redis::Value) =
            self.run(&self.scripts.load_and_touch, &invocation).await?;
        let stored = stored_fields(&reply)?;
        if stored.is_empty() {
            self.hints.forget(key);
            return Ok(None);
        }
        let record = record_from(&stored)?;
        let touch = (touched == 2).then_some(TouchOutcome::Touched);
        self.remember_hint(key, &record, touch.map(|_| now));
        Ok(Some(LoadedRecord::new(record, touch)))
    }

    /// Remembers what decides when a touch of `record` next falls due: its
    /// stored activity, or `touched_at` if this request touched it.
    fn remember_hint(
        &self,
        key: &SessionKey,
        record: &SessionRecord,
        touched_at: Option<Timestamp>,
    ) {
        if record.renewed_to.is_some() {
            self.hints.forget(key);
            return;
        }
        let basis = TouchBasis::of(record);
        self.hints
            .remember(key, touched_at.map_or(basis, |at| basis.touched_at(at)));
    }

    fn policies_key(&self) -> String {
        format!("{}policies", self.prefix)
    }

    fn index_key(&self, subject: &str) -> String {
        format!("{}s:{subject}", self.prefix)
    }
}

#[async_trait]
impl LifetimeStore for RedisStore {
    async fn create(&self, key: &SessionKey, record: &SessionRecord) -> Result<bool, StoreError> {
        check_lengths(record)?;
        if let Some(apart) = &self.apart {
            apart.index(&mut self.primary.shared(), key, record).await?;
        }
        let mut invocation = self.on_session(&self.scripts.create, key);
        invocation
            .arg(expiry_millis(record.expires_at))
            .arg(fields(record));
        let created: i64 = self.run(&self.scripts.create, &invocation).await?;
        Ok(created == 1)
    }

    async fn load(&self, key: &SessionKey) -> Result<Option<SessionRecord>, StoreError> {
        self.read(key).await
    }

    async fn load_and_touch(
        &self,
        key: &SessionKey,
        policy: &Policy,
        now: Timestamp,
    ) -> Result<Option<LoadedRecord>, StoreError> {
        if self.hints.no_touch_due(key, policy, now) {
            return self.load_before_touch_due(key, policy, now).await;
        }
        self.load_and_touch_in_script(key, policy, now).await
    }

    async fn touch(
        &self,
        key: &SessionKey,
        activity: Timestamp,
        expires_at: Timestamp,
    ) -> Result<TouchOutcome, StoreError> {
        let mut invocation = self.on_session(&self.scripts.touch, key);
        invocation
            .arg(activity.as_unix_millis())
            .arg(expiry_millis(expires_at));
        let outcome: i64 = self.run(&self.scripts.touch, &invocation).await?;
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
        check_lengths(record)?;
        if let Some(apart) = &self.apart {
            apart.index(&mut self.primary.shared(), key, record).await?;
        }
        let mut invocation = self.on_session(&self.scripts.update, key);
        invocation
            .arg(expected_version.to_string())
            .arg(record.last_activity.as_unix_millis())
            .arg(expiry_millis(record.expires_at))
            .arg(&fields(record)[4..]);
        let outcome: i64 = self.run(&self.scripts.update, &invocation).await?;
        Ok(match outcome {
            0 => UpdateOutcome::Missing,
            1 => UpdateOutcome::Conflict,
            _ => UpdateOutcome::Updated,
        })
    }

    async fn delete(&self, key: &SessionKey) -> Result<bool, StoreError> {
        self.hints.forget(key);
        if let Some(apart) = &self.apart {
            return apart.delete(&mut self.primary.shared(), key).await;
        }
        let invocation = self.on_session(&self.scripts.delete, key);
        let deleted: i64 = self
            .run_acknowledged(&self.scripts.delete, &invocation)
            .await?;
        Ok(deleted == 1)
    }

    /// One script: the new record, the old one's pointer and the index
    /// entry's move are one atomic step on the server. On a cluster, where
    /// the two IDs live in different slots, the steps and their order are
    /// in the `cluster` module's docs.
    async fn renew(
        &self,
        old: &SessionKey,
        expected_version: u64,
        new: &SessionKey,
        record: &SessionRecord,
        grace_until: Timestamp,
    ) -> Result<RenewOutcome, StoreError> {
        check_lengths(record)?;
        self.hints.forget(old);
        if let Some(apart) = &self.apart {
            let mut connection = self.primary.shared();
            return apart
                .renew(
                    &mut connection,
                    old,
                    expected_version,
                    new,
                    record,
                    grace_until,
                )
                .await;
        }
        let new_key = self.session_key(new);
        let mut invocation = self.on_session(&self.scripts.renew, old);
        invocation
            .key(&new_key)
            .arg(&new_key[self.prefix.len()..])
            .arg(expected_version.to_string())
            .arg(expiry_millis(grace_until))
            .arg(record.last_activity.as_unix_millis())
            .arg(expiry_millis(record.expires_at))
            .arg(&fields(record)[4..]);
        let outcome: i64 = self.run(&self.scripts.renew, &invocation).await?;
        Ok(match outcome {
            0 => RenewOutcome::Missing,
            1 => RenewOutcome::Conflict,
            2 => RenewOutcome::Renewed,
            _ => RenewOutcome::Taken,
        })
    }

    async fn delete_stale(
        &self,
        key: &SessionKey,
        last_activity: Timestamp,
    ) -> Result<bool, StoreError> {
        let mut invocation = self.on_session(&self.scripts.delete_stale, key);
        invocation.arg(last_activity.as_unix_millis());
        let deleted: i64 = self.run(&self.scripts.delete_stale, &invocation).await?;
        Ok(deleted == 1)
    }

    /// Redis expires every record by itself at its `expires_at`: nothing to do.
    async fn reclaim_expired(&self) -> Result<u64, StoreError> {
        Ok(0)
    }

    async fn sessions_of(
        &self,
        subject: &str,
    ) -> Result<Vec<(SessionKey, SessionRecord)>, StoreError> {
        if let Some(apart) = &self.apart {
            return apart.sessions_of(&mut self.primary.shared(), subject).await;
        }
        let mut invocation = self.scripts.sessions_of.key(self.index_key(subject));
        invocation.arg(&self.prefix);
        let found: Vec<(String, HashMap<String, String>)> =
            self.run(&self.scripts.sessions_of, &invocation).await?;
        found
            .into_iter()
            .map(|(member, stored)| {
                let key = SessionKey::from_hex(&member).ok_or_else(|| {
                    StoreError::corrupt(format!("subject index member `{member}` is not a key"))
                })?;
                Ok((key, record_from(&stored)?))
            })
            .collect()
    }

    async fn delete_sessions_of(&self, subject: &str) -> Result<u64, StoreError> {
        if let Some(apart) = &self.apart {
            return apart
                .delete_sessions_of(&mut self.primary.shared(), subject)
                .await;
        }
        let mut invocation = self.scripts.delete_sessions_of.key(self.index_key(subject));
        invocation.arg(&self.prefix);
        let deleted: u64 = self
            .run_acknowledged(&self.scripts.delete_sessions_of, &invocation)
            .await?;
        Ok(deleted)
    }
}

/// The policies that nodes share, in the hash `<prefix>policies` (`v` the
/// version, `p` the text); each change is published on the channel of the
/// same name. On a cluster, nodes learn of changes by polling only.
#[async_trait]
impl PolicyStore for RedisStore {
    async fn load_policies(&self) -> Result<Option<StoredPolicies>, StoreError> {
        policies::load(&mut self.primary.shared(), &self.policies_key()).await
    }

    async fn store_policies(&self, expected: u64, text: &str) -> Result<bool, StoreError> {
        policies::store(
            &mut self.primary.shared(),
            &self.policies_key(),
            expected,
            text,
        )
        .await
    }

    async fn watch_policies(&self, changed: &(dyn Fn() + Send + Sync)) -> Result<(), StoreError> {
        let Some(client) = self.primary.acknowledging() else {
            return Err(StoreError::unsupported(
                "notifications of policy changes on a cluster",
            ));
        };
        policies::watch(&client, &self.policies_key(), changed).await
    }
}

impl fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisStore")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

/// Refuses a subject or a label longer than the bound a record read back
/// must keep, so that nothing is stored that would then read as corrupt.
fn check_lengths(record: &SessionRecord) -> Result<(), StoreError> {
    let bounded = [
        ("subject", record.subject.as_deref(), MAX_SUBJECT_LEN),
        ("label", record.label.as_deref(), MAX_LABEL_LEN),
    ];
    for (name, text, bound) in bounded {
        let len = text.map_or(0, str::len);
        if len > bound {
            return Err(StoreError::new(
                StoreErrorKind::InvalidRecord,
                format!("{name} of {len} bytes exceeds the {bound}-byte bound"),
            ));
        }
    }
    Ok(())
}
