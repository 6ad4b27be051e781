//! [`SharedPolicy`]: the policies of every node of an app, kept in the
//! store their sessions share (Redis, PostgreSQL), so that a change made on
//! one node reaches the others (features `redis`, `postgres`).
//!
//! - **Stored with a version.** The policies' limits (for the default
//!   policy and each listed tenant) are stored as text with a version that
//!   each change increments; a change is a compare-and-set on the version
//!   the admin saw, so of two admins changing at once one wins and the other
//!   gets [`PolicyChangeError::Conflict`].
//! - **Propagated.** A change is notified (Redis pub/sub, PostgreSQL
//!   `NOTIFY`), and every node also reads the stored version every
//!   [`POLL_INTERVAL`], in case a notification is lost: a change reaches
//!   every node within a round trip of its notification, and at the latest
//!   within `POLL_INTERVAL` and a round trip (under a second on loopback;
//!   `tests/shared_policy.rs` measures it).
//! - **Started later.** A node that starts after a change loads the stored
//!   policies: once stored, they win over each node's startup
//!   configuration and any change it made before it started sharing (the
//!   first node stores its own). A start that fails leaves the node's
//!   policies its own, changed through [`LivePolicy::apply`]. One
//!   `SharedPolicy` shares a layer: a second start on it is refused with
//!   [`PolicyChangeError::Shared`] until the first (every clone of it) is
//!   dropped, which makes the policies the node's own again.
//! - **Audited once.** A change is logged (`policy changed`) and counted
//!   ([`MetricsSnapshot::policy_changes`](crate::observe::MetricsSnapshot::policy_changes))
//!   on the node that made it; the others log `policies updated from the
//!   store` when they take it, and count nothing.
//! - **Exact.** Limits are stored to the nanosecond; versions count by one
//!   up to the largest the store holds (`i64::MAX` in Redis and
//!   PostgreSQL), past which a change fails with an error.
//! - **Cut off.** A node that cannot reach the store keeps the policies it
//!   knows, says so in a `tracing` warning, and catches up when it can.
//!   Stored policies that vanish (a Redis restarted without persistence)
//!   are stored again, from the policies in force, by the first node to
//!   notice (or one that starts), at version 1; every node follows, also
//!   one cut off meanwhile: a node compares the stored text, not only the
//!   version, with what it has in force. A change made on policies that
//!   were stored again under the same version is a
//!   [`Conflict`](PolicyChangeError::Conflict) naming that version twice;
//!   its retry goes through.
//! - **What is shared**: the limits (idle, absolute, remember-me period and
//!   absolute) and the touch granularity, per tenant; renewal and session
//!   limits stay as each node configured them (the node that makes a
//!   change has all of it in force). A tenant a node does not
//!   list is skipped there, and kept as stored when that node makes a
//!   change; stored limits a node cannot accept (a route group they would
//!   lengthen, forged text) leave that node's policies as they were, under
//!   the stored version so that its next change replaces them, with a
//!   warning. A stored version that is not a number from 1 up, or a version
//!   without text, is [`Corrupt`](crate::store::StoreErrorKind::Corrupt):
//!   a node does not start on it and never writes over it unasked.

use std::fmt;
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::Duration;

use percent_encoding::{percent_decode_str, utf8_percent_encode, NON_ALPHANUMERIC};
use tokio::sync::Notify;

use crate::policy::{
    Limits, LivePolicy, Policies, PolicyChange, PolicyChangeError, PolicySnapshot, Sharer,
};
use crate::store::{PolicyStore, StoreError, StoreErrorKind, StoredPolicies};

/// How often a node reads the stored version, besides the notifications.
pub const POLL_INTERVAL: Duration = Duration::from_millis(500);

/// How long [`SharedPolicy::start`] waits for the notifications to flow.
const LISTEN_WAIT: Duration = Duration::from_secs(2);

/// The first line of the stored text: its format.
const FORMAT: &str = "tower-session-lifetime policies 1";

/// The policies of a layer, shared with every node through a
/// [`PolicyStore`]. Cheap to clone; when the last clone is dropped, the
/// task that follows changes stops and the policies are the node's own
/// again ([`LivePolicy::apply`] changes them, another start may share
/// them).
///
/// ```no_run
/// use tower_session_lifetime::policy::PolicyChange;
/// use tower_session_lifetime::shared_policy::SharedPolicy;
/// use tower_session_lifetime::{Policy, RedisStore, SessionLifetimeLayer};
///
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let layer = SessionLifetimeLayer::new(RedisStore::open("redis://127.0.0.1:6379")?);
/// // A client of its own for the policies, beside the layer's.
/// let shared =
///     SharedPolicy::start(layer.live_policy(), RedisStore::open("redis://127.0.0.1:6379")?)
///         .await?;
/// // In an admin handler, on any node:
/// let seen = shared.current();
/// let shorter = Policy::builder().idle_timeout(std::time::Duration::from_secs(600)).build()?;
/// shared
///     .apply(PolicyChange::default_policy(shorter).expecting(seen.version()).by("alice"))
///     .await?;
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct SharedPolicy {
    /// Dropped with the last clone: the node stops sharing the policies.
    sharing: Arc<Sharing>,
}

/// What a [`SharedPolicy`]'s clones share, and its task reads.
struct Inner {
    live: LivePolicy,
    /// This sharer of `live`: what it puts in force counts only while
    /// it shares.
    sharer: Sharer,
    store: Arc<dyn PolicyStore>,
    /// The stored text the version in force stands for: versions start
    /// again at 1 when the stored policies vanish and are stored again, so
    /// a version alone does not say which policies it is.
    known: Mutex<String>,
    /// Held while this node reads the store and puts what it read in
    /// force (a change made here, a refresh): one at a time, so that no
    /// stale read overwrites a newer version.
    syncing: tokio::sync::Mutex<()>,
    /// Woken by each notification.
    changed: Arc<Notify>,
}

/// The sharing itself, ended when the last clone of the [`SharedPolicy`]
/// is dropped (or its start fails): the tasks stop, and the policies are
/// the node's own again, which another start may share. A read the task
/// still makes (it holds `inner` meanwhile) then puts nothing in force.
struct Sharing {
    inner: Arc<Inner>,
    tasks: Mutex<Vec<tokio::task::JoinHandle<()>>>,
}

impl Drop for Sharing {
    fn drop(&mut self) {
        self.inner.live.stop_sharing(self.inner.sharer);
        for task in self
            .tasks
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner)
            .drain(..)
        {
            task.abort();
        }
    }
}

/// Why a [`SharedPolicy::apply`] made no change, or a
/// [`SharedPolicy::start`] did not start.
#[derive(Debug)]
#[non_exhaustive]
pub enum SharedPolicyError {
    /// Refused as [`LivePolicy::apply`] refuses a change (invalid, an
    /// unknown tenant, or a conflict with another change); a start on a
    /// layer that another [`SharedPolicy`] shares (or is starting to) is
    /// refused with [`PolicyChangeError::Shared`].
    Refused(PolicyChangeError),
    /// The store could not be asked; nothing changed on any node.
    Store(StoreError),
}

impl fmt::Display for SharedPolicyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SharedPolicyError::Refused(err) => err.fmt(f),
            SharedPolicyError::Store(err) => write!(f, "the policy store failed: {err}"),
        }
    }
}

impl std::error::Error for SharedPolicyError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            SharedPolicyError::Refused(err) => Some(err),
            SharedPolicyError::Store(err) => Some(err),
        }
    }
}

impl SharedPolicy {
    /// Shares `live`'s policies through `store`: loads the stored ones
    /// (they then replace this node's) or, when none are stored yet,
    /// stores this node's; then follows every change, in a task of its own
    /// (call it in a Tokio runtime). From then on, change the policies
    /// through [`apply`](Self::apply); [`LivePolicy::apply`] refuses to.
    pub async fn start(
        live: LivePolicy,
        store: impl PolicyStore,
    ) -> Result<Self, SharedPolicyError> {
        // Shared from now on, so that no change made here meanwhile is
        // lost; a start that fails (dropping `sharing`) leaves the
        // policies this node's alone.
        let Some(sharer) = live.start_sharing() else {
            return Err(SharedPolicyError::Refused(PolicyChangeError::Shared));
        };
        let store: Arc<dyn PolicyStore> = Arc::new(store);
        let sharing = Arc::new(Sharing {
            inner: Arc::new(Inner {
                live,
                sharer,
                store: Arc::clone(&store),
                known: Mutex::new(String::new()),
                syncing: tokio::sync::Mutex::new(()),
                changed: Arc::new(Notify::new()),
            }),
            tasks: Mutex::new(Vec::new()),
        });
        let inner = &sharing.inner;
        inner
            .adopt_stored()
            .await
            .map_err(SharedPolicyError::Store)?;
        let listening = Arc::new(Notify::new());
        let watcher = tokio::spawn(watch(
            Arc::clone(&store),
            Arc::clone(&inner.changed),
            Arc::clone(&listening),
        ));
        let follower = tokio::spawn(follow(Arc::downgrade(inner)));
        sharing
            .tasks
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .extend([watcher, follower]);
        // Notifications flow before the node serves, unless the store is
        // slow to listen (it is then polled meanwhile).
        let _ = tokio::time::timeout(LISTEN_WAIT, listening.notified()).await;
        Ok(SharedPolicy { sharing })
    }

    /// The policies in force on this node.
    pub fn current(&self) -> PolicySnapshot {
        self.sharing.inner.live.current()
    }

    /// The layer's [`LivePolicy`], which this shares.
    pub fn live(&self) -> &LivePolicy {
        &self.sharing.inner.live
    }

    /// Makes `change` on every node: checked as [`LivePolicy::apply`]
    /// checks it, stored if the stored version is still the one this node
    /// knows (else [`PolicyChangeError::Conflict`]), then in force here at
    /// once and on the other nodes within the bound the module docs give.
    pub async fn apply(&self, change: PolicyChange) -> Result<PolicySnapshot, SharedPolicyError> {
        let outcome = {
            let _syncing = self.sharing.inner.syncing.lock().await;
            self.sharing.inner.store_change(&change).await?
        };
        match outcome {
            Ok(after) => Ok(after),
            Err(conflict) => {
                let _ = self.refresh().await;
                Err(SharedPolicyError::Refused(conflict))
            }
        }
    }

    /// Reads the stored policies now and puts them in force if they are
    /// not the ones in force: a change made on another node, or policies
    /// stored again after they vanished (versions then start again at 1,
    /// so the text is compared too). `false` if none were stored (they
    /// were removed): this node then stores the policies in force, as the
    /// first node does.
    pub async fn refresh(&self) -> Result<bool, StoreError> {
        self.sharing.inner.refresh().await
    }
}

impl Inner {
    /// Stores `change` and puts it in force here, or the conflict that
    /// another node's change made (called with `syncing` held).
    async fn store_change(
        &self,
        change: &PolicyChange,
    ) -> Result<Result<PolicySnapshot, PolicyChangeError>, SharedPolicyError> {
        let live = &self.live;
        let store = &self.store;
        let (after, old) = live.prepare(change).map_err(SharedPolicyError::Refused)?;
        let expected = after.version() - 1;
        let conflict = |current: Option<StoredPolicies>| {
            Ok(Err(PolicyChangeError::Conflict {
                expected,
                current: current.map_or(0, |stored| stored.version),
            }))
        };
        // Read first, to keep the tenants this node does not list as
        // stored (the compare-and-set below makes sure they still are).
        let before = store
            .load_policies()
            .await
            .map_err(SharedPolicyError::Store)?;
        let unlisted = match &before {
            Some(stored) if self.stands_for(stored, expected) => {
                unlisted_lines(after.policies(), &stored.text)
            }
            _ => return conflict(before),
        };
        let text = encode(after.policies(), &unlisted);
        if !store
            .store_policies(expected, &text)
            .await
            .map_err(SharedPolicyError::Store)?
        {
            return conflict(store.load_policies().await.ok().flatten());
        }
        live.replace(self.sharer, after.clone());
        *self.known() = text;
        live.audit(change, &old, &after);
        Ok(Ok(after))
    }

    /// The stored text the version in force stands for.
    fn known(&self) -> std::sync::MutexGuard<'_, String> {
        self.known.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Whether `stored` is what this node has in force at `version`: the
    /// same version, and the same text (versions start again at 1 when
    /// the stored policies vanish and are stored again).
    fn stands_for(&self, stored: &StoredPolicies, version: u64) -> bool {
        stored.version == version && stored.text == *self.known()
    }

    /// Puts the stored policies in force whatever this node's version
    /// (changes made here before the start count for nothing once
    /// policies are stored), or stores this node's when none are.
    async fn adopt_stored(&self) -> Result<(), StoreError> {
        let live = &self.live;
        let store = &self.store;
        let stored = match store.load_policies().await? {
            Some(stored) => stored,
            None => {
                let own = live.current();
                let text = encode(own.policies(), &[]);
                if store.store_policies(0, &text).await? {
                    live.replace(
                        self.sharer,
                        LivePolicy::snapshot_of(1, own.policies().clone()),
                    );
                    *self.known() = text;
                    return Ok(());
                }
                // Another node stored its own first.
                store.load_policies().await?.ok_or_else(|| {
                    StoreError::corrupt("the stored policies vanished while they were read")
                })?
            }
        };
        self.take(&stored);
        Ok(())
    }

    /// Puts `stored` in force whatever the version in force; when its
    /// text is not taken (forged, or limits this node refuses), this
    /// node's values under its version, so that the node's next change
    /// can be stored. Whether the text was taken.
    fn take(&self, stored: &StoredPolicies) -> bool {
        let live = &self.live;
        let in_force = live.current();
        let (policies, taken) = match decode(in_force.policies(), &stored.text) {
            Ok(policies) => (policies, true),
            Err(reason) => {
                tracing::warn!(
                    target: "tower_session_lifetime",
                    version = stored.version,
                    reason = %reason,
                    "stored policies not taken; keeping the policies in force"
                );
                (in_force.policies().clone(), false)
            }
        };
        live.replace(
            self.sharer,
            LivePolicy::snapshot_of(stored.version, policies),
        );
        stored.text.clone_into(&mut self.known());
        taken
    }

    /// [`SharedPolicy::refresh`], for the node and its task.
    async fn refresh(&self) -> Result<bool, StoreError> {
        let _syncing = self.syncing.lock().await;
        let Some(stored) = self.store.load_policies().await? else {
            self.adopt_stored().await?;
            return Ok(false);
        };
        if !self.stands_for(&stored, self.live.current().version()) && self.take(&stored) {
            tracing::info!(
                target: "tower_session_lifetime",
                version = stored.version,
                "policies updated from the store"
            );
        }
        Ok(true)
    }
}

impl fmt::Debug for SharedPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SharedPolicy")
            .field("current", &self.current())
            .finish_non_exhaustive()
    }
}

/// Wakes `changed` at each notification of `store` (and `listening` once
/// it listens), listening again a second after the notifications stop.
async fn watch(store: Arc<dyn PolicyStore>, changed: Arc<Notify>, listening: Arc<Notify>) {
    let wake = || {
        listening.notify_one();
        changed.notify_one();
    };
    loop {
        match store.watch_policies(&wake).await {
            Err(err) if err.kind() == StoreErrorKind::Unsupported => {
                listening.notify_one();
                return;
            }
            Err(err) => {
                tracing::debug!(error = %err, "notifications of policy changes stopped; listening again");
            }
            Ok(()) => {}
        }
        // Something may have been missed while no one listened.
        changed.notify_one();
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// Reads the stored policies at each notification, and every
/// [`POLL_INTERVAL`] at the latest, while the [`SharedPolicy`] lives.
async fn follow(inner: Weak<Inner>) {
    let mut cut_off = false;
    loop {
        let Some(changed) = inner.upgrade().map(|inner| Arc::clone(&inner.changed)) else {
            return;
        };
        let _ = tokio::time::timeout(POLL_INTERVAL, changed.notified()).await;
        let Some(inner) = inner.upgrade() else {
            return;
        };
        match inner.refresh().await {
            Ok(_) if cut_off => {
                cut_off = false;
                tracing::info!(target: "tower_session_lifetime", "the policy store answers again");
            }
            Ok(_) => {}
            Err(err) if !cut_off => {
                cut_off = true;
                tracing::warn!(
                    target: "tower_session_lifetime",
                    error = %err,
                    version = inner.live.current().version(),
                    "the policy store cannot be reached; keeping the policies in force"
                );
            }
            Err(_) => {}
        }
    }
}

/// The shared part of `policies` as text: a line per policy, the default
/// first, each `default` or `tenant <name, percent-encoded>`, then the
/// limits and the touch granularity as exact durations (`-` for none);
/// then the `unlisted` lines, kept as stored.
fn encode(policies: &Policies, unlisted: &[&str]) -> String {
    let line = |who: String, policy: &crate::Policy| {
        let limits = policy.limits();
        let optional =
            |limit: Option<Duration>| limit.map_or_else(|| "-".to_owned(), duration_text);
        format!(
            "{who}\t{},{},{},{},{}\n",
            duration_text(limits.idle_timeout),
            optional(limits.absolute_timeout),
            duration_text(limits.remember_me_period),
            optional(limits.remember_me_absolute_timeout),
            duration_text(policy.touch_granularity()),
        )
    };
    let mut text = format!("{FORMAT}\n");
    text.push_str(&line("default".to_owned(), policies.default_policy()));
    let mut names: Vec<&str> = policies.tenant_names().collect();
    names.sort_unstable();
    for name in names {
        if let Some(policy) = policies.tenant_policy(name) {
            let name = utf8_percent_encode(name, NON_ALPHANUMERIC);
            text.push_str(&line(format!("tenant {name}"), policy));
        }
    }
    for line in unlisted {
        text.push_str(line);
        text.push('\n');
    }
    text
}

/// The lines of the stored `text` for tenants `policies` does not list
/// (another node's, of a deploy that lists more), that read: a change made
/// here stores them again as they were.
fn unlisted_lines<'a>(policies: &Policies, text: &'a str) -> Vec<&'a str> {
    let mut lines = text.lines();
    if lines.next() != Some(FORMAT) {
        return Vec::new();
    }
    lines
        .filter(|line| {
            let Some((who, values)) = line.split_once('\t') else {
                return false;
            };
            let Some(name) = who.strip_prefix("tenant ") else {
                return false;
            };
            percent_decode_str(name)
                .decode_utf8()
                .is_ok_and(|name| policies.tenant_policy(&name).is_none())
                && limits_of(values).is_ok()
        })
        .collect()
}

/// `policies` with the limits `text` stores, checked as a change is.
fn decode(policies: &Policies, text: &str) -> Result<Policies, String> {
    let mut lines = text.lines();
    if lines.next() != Some(FORMAT) {
        return Err("not in a format this version reads".to_owned());
    }
    let mut decoded = policies.clone();
    for line in lines {
        let (who, values) = line
            .split_once('\t')
            .ok_or_else(|| format!("a line without limits: {line:?}"))?;
        let tenant = match who.strip_prefix("tenant ") {
            Some(name) => Some(
                percent_decode_str(name)
                    .decode_utf8()
                    .map_err(|_| format!("a tenant that is not UTF-8: {name:?}"))?
                    .into_owned(),
            ),
            None if who == "default" => None,
            None => return Err(format!("an unknown line: {line:?}")),
        };
        let current = match &tenant {
            None => *decoded.default_policy(),
            Some(name) => match decoded.tenant_policy(name) {
                Some(policy) => *policy,
                // Not a tenant of this node.
                None => continue,
            },
        };
        let (limits, granularity) = limits_of(values)?;
        let policy = current
            .with_limits(limits, granularity)
            .map_err(|err| err.to_string())?;
        decoded = decoded
            .replacing(tenant.as_deref(), policy)
            .map_err(|err| err.to_string())?
            .ok_or_else(|| "a tenant vanished".to_owned())?;
    }
    Ok(decoded)
}

fn limits_of(values: &str) -> Result<(Limits, Duration), String> {
    let bad = || format!("limits that do not read: {values:?}");
    let parts: Vec<&str> = values.split(',').collect();
    let [idle, absolute, remember_me, remember_me_absolute, granularity] = parts[..] else {
        return Err(bad());
    };
    let exact = |value: &str| duration_of(value).ok_or_else(bad);
    let optional = |value: &str| match value {
        "-" => Ok(None),
        value => exact(value).map(Some),
    };
    Ok((
        Limits {
            idle_timeout: exact(idle)?,
            absolute_timeout: optional(absolute)?,
            remember_me_period: exact(remember_me)?,
            remember_me_absolute_timeout: optional(remember_me_absolute)?,
        },
        exact(granularity)?,
    ))
}

/// `duration` exactly, as seconds and nine digits of nanoseconds
/// (`1800.000000000`): a policy reads back on every node as it was set.
fn duration_text(duration: Duration) -> String {
    format!("{}.{:09}", duration.as_secs(), duration.subsec_nanos())
}

/// The duration [`duration_text`] wrote, if `text` is one.
fn duration_of(text: &str) -> Option<Duration> {
    let (secs, nanos) = text.split_once('.')?;
    let all_digits = |part: &str| !part.is_empty() && part.bytes().all(|b| b.is_ascii_digit());
    if !all_digits(secs) || nanos.len() != 9 || !all_digits(nanos) {
        return None;
    }
    Some(Duration::new(secs.parse().ok()?, nanos.parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_back_exactly() {
        for duration in [
            Duration::ZERO,
            Duration::from_nanos(1),
            Duration::new(1_799, 999_999_999),
            Duration::from_secs(30 * 24 * 3600),
            Duration::MAX,
        ] {
            assert_eq!(duration_of(&duration_text(duration)), Some(duration));
        }
        assert_eq!(duration_text(Duration::from_millis(1500)), "1.500000000");
    }

    #[test]
    fn malformed_durations_do_not_read() {
        for text in [
            "",
            "1800000",
            "1.5",
            ".500000000",
            "1.",
            "-1.000000000",
            "1.-00000000",
            "1.1234567890",
            "18446744073709551616.000000000",
            "1 .000000000",
            "1.00000000a",
        ] {
            assert_eq!(duration_of(text), None, "{text:?}");
        }
    }
}
