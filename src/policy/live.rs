//! [`LivePolicy`]: the policies of a running layer, which every request
//! reads without a lock and the app replaces while it runs.

use std::borrow::Cow;
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use arc_swap::ArcSwap;

use super::{Policies, Policy, PolicyError};

/// The policies in force, and how many changes made them.
///
/// ```
/// use tower_session_lifetime::{MemoryStore, Policy, SessionLifetimeLayer};
///
/// let layer = SessionLifetimeLayer::new(MemoryStore::new());
/// let now = layer.live_policy().current();
/// assert_eq!(now.version(), 0);
/// assert_eq!(now.policies().default_policy(), &Policy::default());
/// ```
#[derive(Clone, Debug)]
pub struct PolicySnapshot {
    version: u64,
    policies: Arc<Policies>,
}

impl PolicySnapshot {
    /// How many changes were made since the layer was built: the version a
    /// [`PolicyChange`] expects.
    pub fn version(&self) -> u64 {
        self.version
    }

    /// The policies themselves.
    pub fn policies(&self) -> &Policies {
        &self.policies
    }
}

/// One change to the policies of a running layer: the default policy or a
/// listed tenant's replaced by another, made by `actor` (for the audit
/// trail), on the version the admin saw.
///
/// ```
/// use std::time::Duration;
/// use tower_session_lifetime::policy::PolicyChange;
/// use tower_session_lifetime::Policy;
///
/// let shorter = Policy::builder().idle_timeout(Duration::from_secs(600)).build()?;
/// let change = PolicyChange::default_policy(shorter).expecting(3).by("alice@example.com");
/// # let _ = change;
/// # Ok::<(), tower_session_lifetime::policy::PolicyError>(())
/// ```
#[derive(Clone, Debug)]
pub struct PolicyChange {
    tenant: Option<String>,
    policy: Policy,
    expected_version: Option<u64>,
    actor: String,
}

impl PolicyChange {
    /// Replaces the default policy (requests of no listed tenant).
    pub fn default_policy(policy: Policy) -> Self {
        PolicyChange {
            tenant: None,
            policy,
            expected_version: None,
            actor: String::new(),
        }
    }

    /// Replaces the policy of the listed tenant `name` (as the layer's
    /// [`Policies`] name it: a host in lower case).
    pub fn tenant(name: impl Into<String>, policy: Policy) -> Self {
        PolicyChange {
            tenant: Some(name.into()),
            ..PolicyChange::default_policy(policy)
        }
    }

    /// Made only if the policies are still at `version` (what
    /// [`PolicySnapshot::version`] said when the admin read them): two
    /// admins who change the policy at once cannot undo each other's
    /// change unseen; the second gets [`PolicyChangeError::Conflict`].
    /// Without it, the change applies to whatever is in force.
    pub fn expecting(mut self, version: u64) -> Self {
        self.expected_version = Some(version);
        self
    }

    /// Who makes the change, as the app names them (the audit trail's
    /// `actor`).
    pub fn by(mut self, actor: impl Into<String>) -> Self {
        self.actor = actor.into();
        self
    }
}

/// Why a [`PolicyChange`] was refused; the policies in force stay as they
/// were.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum PolicyChangeError {
    /// The new policy would make a route group longer than its tenant's
    /// limits (or is otherwise refused as [`PoliciesBuilder::build`](super::PoliciesBuilder::build)
    /// refuses it).
    Invalid(PolicyError),
    /// No tenant of this name is listed.
    UnknownTenant(String),
    /// This layer's policies are shared with other nodes through a store:
    /// change them through
    /// [`SharedPolicy::apply`](crate::shared_policy::SharedPolicy::apply),
    /// which changes them on every node.
    Shared,
    /// Another change came first: the policies are at `current`, not at
    /// the version the change expected. With shared policies `current`
    /// can equal `expected`: the stored policies vanished and were stored
    /// again under the same version, with other values; the node now has
    /// those in force, and a retry goes through.
    Conflict {
        /// The version the change expected.
        expected: u64,
        /// The version in force.
        current: u64,
    },
    /// The policies are at the last version there is (`u64::MAX`, or the
    /// largest a store counts): only a forged or corrupt stored version
    /// gets there. Reset the stored policies.
    VersionsExhausted,
}

impl fmt::Display for PolicyChangeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PolicyChangeError::Invalid(err) => err.fmt(f),
            PolicyChangeError::UnknownTenant(name) => write!(f, "no tenant {name:?} is listed"),
            PolicyChangeError::Shared => f.write_str(
                "the policies are shared through a store: change them through SharedPolicy",
            ),
            PolicyChangeError::Conflict { expected, current } => write!(
                f,
                "the policies changed meanwhile: version {current}, not {expected}"
            ),
            PolicyChangeError::VersionsExhausted => {
                f.write_str("the policies are at the last version there is")
            }
        }
    }
}

impl std::error::Error for PolicyChangeError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            PolicyChangeError::Invalid(err) => Some(err),
            _ => None,
        }
    }
}

/// The policies of a running layer: read by every request without a lock
/// it could wait on, replaced by the app while it runs (an admin handler).
/// Get one with [`SessionLifetimeLayer::live_policy`](crate::SessionLifetimeLayer::live_policy);
/// clones share the same policies.
///
/// The rule is Auth0's: a change applies from each request on. A session
/// keeps the limits it was created with, and each request is judged by
/// the tighter of those and the policy in force when it arrived (a change
/// made while the store answers applies from the next request); so a
/// shorter limit bites
/// at each existing session's next request, a longer one applies only to
/// sessions created after the change, the absolute deadline never moves
/// later, and a route group stays a tightening of its tenant's policy
/// (a change that would make it longer is refused).
///
/// Each change is logged (`policy changed`, target
/// `tower_session_lifetime`, with the actor, the tenant and the old and
/// new limits) and counted
/// ([`MetricsSnapshot::policy_changes`](crate::observe::MetricsSnapshot::policy_changes)).
///
/// ```
/// use std::time::Duration;
/// use tower_session_lifetime::policy::PolicyChange;
/// use tower_session_lifetime::{MemoryStore, Policy, SessionLifetimeLayer};
///
/// let layer = SessionLifetimeLayer::new(MemoryStore::new());
/// let live = layer.live_policy();
/// let seen = live.current();
/// let shorter = Policy::builder().idle_timeout(Duration::from_secs(300)).build()?;
/// let now = live
///     .apply(PolicyChange::default_policy(shorter).expecting(seen.version()).by("alice"))
///     .unwrap();
/// assert_eq!(now.version(), 1);
/// assert_eq!(now.policies().default_policy().idle_timeout(), Duration::from_secs(300));
/// // A change made on the version before is refused.
/// assert!(live.apply(PolicyChange::default_policy(shorter).expecting(0)).is_err());
/// # Ok::<(), tower_session_lifetime::policy::PolicyError>(())
/// ```
#[derive(Clone)]
pub struct LivePolicy {
    shared: Arc<Shared>,
}

/// The policies in force when a request arrived
/// ([`LivePolicy::at_arrival`]): none kept while the layer's initial
/// policies are in force, else the snapshot then in force.
pub(crate) struct InForce(Option<Arc<PolicySnapshot>>);

/// What counts a change (the layer's metrics), kept apart from them.
pub(crate) type ChangeCounter = Box<dyn Fn() + Send + Sync>;

struct Shared {
    /// The policies the layer was built with: their tenants and route
    /// groups (which no change alters) choose each request's policy, and
    /// their values are in force until the first change.
    initial: Arc<Policies>,
    /// Whether a change was made: until one is, a request reads `initial`
    /// and never `current`.
    changed: AtomicBool,
    /// Who shares the policies through a store, and alone then changes
    /// them: a [`Sharer`] number, or 0 while no one does.
    sharer: AtomicU64,
    /// The last [`Sharer`] number given.
    sharers: AtomicU64,
    current: ArcSwap<PolicySnapshot>,
    /// One change at a time: each checks the version and replaces the set.
    changing: Mutex<()>,
    /// Called at each change made here (the layer counts it).
    on_change: Mutex<Option<ChangeCounter>>,
}

impl LivePolicy {
    /// The policies `policies`, at version 0.
    pub(crate) fn new(policies: Policies) -> Self {
        let initial = Arc::new(policies);
        LivePolicy {
            shared: Arc::new(Shared {
                current: ArcSwap::from_pointee(PolicySnapshot {
                    version: 0,
                    policies: Arc::clone(&initial),
                }),
                initial,
                changed: AtomicBool::new(false),
                sharer: AtomicU64::new(0),
                sharers: AtomicU64::new(0),
                changing: Mutex::new(()),
                on_change: Mutex::new(None),
            }),
        }
    }

    /// Calls `counter` at each change made here.
    pub(crate) fn count_in(&self, counter: Option<ChangeCounter>) {
        *self
            .shared
            .on_change
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = counter;
    }

    /// The policies in force now.
    pub fn current(&self) -> PolicySnapshot {
        PolicySnapshot::clone(&self.shared.current.load())
    }

    /// The choice of policy for `request`: the set's structure (tenants,
    /// route groups) never changes, so it holds for any later version.
    pub(crate) fn choose<B>(&self, request: &http::Request<B>) -> super::PolicyChoice {
        self.shared.initial.choose(request)
    }

    /// The policy a request of `choice` is judged by, as in force now.
    pub(crate) fn policy(&self, choice: super::PolicyChoice) -> Cow<'_, Policy> {
        self.read(|policies| policies.policy(choice))
    }

    /// The policy a session started by a request of `choice` is
    /// snapshotted with, as in force now.
    pub(crate) fn base(&self, choice: super::PolicyChoice) -> Cow<'_, Policy> {
        self.read(|policies| policies.base(choice))
    }

    /// The policies in force now, kept by a request from its arrival to
    /// the end of its check, so that a change made while the store answers
    /// does not alter how it is judged: nothing to copy until a change is
    /// made (one relaxed load), then one reference count.
    pub(crate) fn at_arrival(&self) -> InForce {
        if !self.shared.changed.load(Ordering::Relaxed) {
            return InForce(None);
        }
        InForce(Some(self.shared.current.load_full()))
    }

    /// The policies `in_force` holds.
    fn policies_in<'a>(&'a self, in_force: &'a InForce) -> &'a Policies {
        match &in_force.0 {
            None => &self.shared.initial,
            Some(snapshot) => &snapshot.policies,
        }
    }

    /// The policy a request of `choice` is judged by, as in force at
    /// `in_force`.
    pub(crate) fn policy_in<'a>(
        &'a self,
        in_force: &'a InForce,
        choice: super::PolicyChoice,
    ) -> &'a Policy {
        self.policies_in(in_force).policy(choice)
    }

    /// The policy a session of `choice` is snapshotted with, and its store
    /// expiry follows, as in force at `in_force`.
    pub(crate) fn base_in<'a>(
        &'a self,
        in_force: &'a InForce,
        choice: super::PolicyChoice,
    ) -> &'a Policy {
        self.policies_in(in_force).base(choice)
    }

    /// The policy `pick` finds in the policies in force, without a lock:
    /// borrowed from the initial ones until a change is made (one relaxed
    /// load), then copied from the latest.
    fn read(&self, pick: impl Fn(&Policies) -> &Policy) -> Cow<'_, Policy> {
        if !self.shared.changed.load(Ordering::Relaxed) {
            return Cow::Borrowed(pick(&self.shared.initial));
        }
        Cow::Owned(*pick(&self.shared.current.load().policies))
    }

    /// Makes `change`, or refuses it with the policies left as they were.
    /// Refused with [`PolicyChangeError::Shared`] while a
    /// [`SharedPolicy`](crate::shared_policy::SharedPolicy) shares the
    /// policies with other nodes.
    pub fn apply(&self, change: PolicyChange) -> Result<PolicySnapshot, PolicyChangeError> {
        let _one_at_a_time = self
            .shared
            .changing
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        // Under the lock: a change never lands after a store's policies
        // were adopted.
        if self.shared.sharer.load(Ordering::Acquire) != 0 {
            return Err(PolicyChangeError::Shared);
        }
        let (after, old) = self.prepare(&change)?;
        self.install_unlocked(after.clone());
        self.audit(&change, &old, &after);
        Ok(after)
    }

    /// What `change` makes of the policies in force: the next version,
    /// and the policy it replaces; or why it is refused.
    pub(crate) fn prepare(
        &self,
        change: &PolicyChange,
    ) -> Result<(PolicySnapshot, Policy), PolicyChangeError> {
        let before = self.current();
        if let Some(expected) = change.expected_version {
            if expected != before.version {
                return Err(PolicyChangeError::Conflict {
                    expected,
                    current: before.version,
                });
            }
        }
        let tenant = change.tenant.as_deref();
        let old = match tenant {
            None => *before.policies.default_policy(),
            Some(name) => *before
                .policies
                .tenant_policy(name)
                .ok_or_else(|| PolicyChangeError::UnknownTenant(name.to_owned()))?,
        };
        let policies = before
            .policies
            .replacing(tenant, change.policy)
            .map_err(PolicyChangeError::Invalid)?
            .ok_or_else(|| PolicyChangeError::UnknownTenant(tenant.unwrap_or("").to_owned()))?;
        let after = PolicySnapshot {
            version: (before.version.checked_add(1)).ok_or(PolicyChangeError::VersionsExhausted)?,
            policies: Arc::new(policies),
        };
        Ok((after, old))
    }

    /// The audit trail of `change`, made: the `policy changed` event and
    /// the count.
    pub(crate) fn audit(&self, change: &PolicyChange, old: &Policy, after: &PolicySnapshot) {
        tracing::info!(
            target: "tower_session_lifetime",
            actor = %change.actor,
            tenant = change.tenant.as_deref().unwrap_or("(default)"),
            version = after.version,
            old = ?old.limits(),
            new = ?change.policy.limits(),
            "policy changed"
        );
        if let Some(count) = &*self
            .shared
            .on_change
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
        {
            count();
        }
    }
}

/// Who shares a [`LivePolicy`] through a store
/// ([`LivePolicy::start_sharing`]): only they change it, and only until
/// they stop.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(not(any(feature = "redis", feature = "postgres")), allow(dead_code))]
pub(crate) struct Sharer(u64);

impl LivePolicy {
    /// Marks the policies shared through a store, which alone changes
    /// them from now on (through [`replace`](Self::replace)); `None`, and
    /// nothing marked, if someone else shares them already.
    #[cfg_attr(not(any(feature = "redis", feature = "postgres")), allow(dead_code))]
    pub(crate) fn start_sharing(&self) -> Option<Sharer> {
        let number = self.shared.sharers.fetch_add(1, Ordering::Relaxed) + 1;
        self.shared
            .sharer
            .compare_exchange(0, number, Ordering::AcqRel, Ordering::Acquire)
            .ok()
            .map(|_| Sharer(number))
    }

    /// Ends what [`start_sharing`](Self::start_sharing) began for
    /// `sharer`: its [`replace`](Self::replace)s do nothing from now on,
    /// and [`apply`](Self::apply) changes the policies again.
    #[cfg_attr(not(any(feature = "redis", feature = "postgres")), allow(dead_code))]
    pub(crate) fn stop_sharing(&self, sharer: Sharer) {
        let _one_at_a_time = self
            .shared
            .changing
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let _ =
            self.shared
                .sharer
                .compare_exchange(sharer.0, 0, Ordering::AcqRel, Ordering::Acquire);
    }

    /// Puts `snapshot` in force whatever the version in force (the
    /// policies a store holds, or a change stored there), if `sharer`
    /// still shares the policies; whether it did.
    #[cfg_attr(not(any(feature = "redis", feature = "postgres")), allow(dead_code))]
    pub(crate) fn replace(&self, sharer: Sharer, snapshot: PolicySnapshot) -> bool {
        let _one_at_a_time = self
            .shared
            .changing
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if self.shared.sharer.load(Ordering::Acquire) != sharer.0 {
            return false;
        }
        self.install_unlocked(snapshot);
        true
    }

    fn install_unlocked(&self, snapshot: PolicySnapshot) {
        self.shared.current.store(Arc::new(snapshot));
        self.shared.changed.store(true, Ordering::Release);
    }

    /// The policies in force, with `version`: what a snapshot from a store
    /// is made of.
    #[cfg_attr(not(any(feature = "redis", feature = "postgres")), allow(dead_code))]
    pub(crate) fn snapshot_of(version: u64, policies: Policies) -> PolicySnapshot {
        PolicySnapshot {
            version,
            policies: Arc::new(policies),
        }
    }
}

impl fmt::Debug for LivePolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LivePolicy")
            .field("current", &self.current())
            .finish()
    }
}
