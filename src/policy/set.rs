//! [`Policies`]: a policy per tenant, tightened per route group, chosen for
//! each request.

use std::collections::HashMap;
use std::time::Duration;

use std::fmt;
use std::sync::Arc;

use http::header::HOST;
use http::{HeaderMap, HeaderName, Request, Uri};

use super::{default_touch_granularity, Limits, Policy, PolicyError, Setting};
use crate::limits::shorter_limit;

/// How a request names its tenant.
#[derive(Clone)]
#[non_exhaustive]
pub enum TenantFrom {
    /// The request's host (the request line's, else the `Host` header's),
    /// without a port or a trailing dot, in lower case: `a.example.com`.
    Host,
    /// The value of this header, as it is: `X-Tenant: acme`. Only behind a
    /// proxy that sets it; a browser could send any value.
    Header(HeaderName),
    /// What a function of the app's finds in the request's headers and URI
    /// (a subdomain, a path segment…); see [`TenantFrom::custom`].
    Custom(Arc<TenantResolver>),
}

/// The function of [`TenantFrom::Custom`].
pub type TenantResolver = dyn Fn(&HeaderMap, &Uri) -> Option<String> + Send + Sync;

impl TenantFrom {
    /// The tenant `resolve` names, or the default policy's for `None`.
    ///
    /// ```
    /// use tower_session_lifetime::policy::TenantFrom;
    ///
    /// // `acme.app.example` → `acme`.
    /// let subdomain = TenantFrom::custom(|headers, _uri| {
    ///     let host = headers.get("host")?.to_str().ok()?;
    ///     Some(host.split('.').next()?.to_ascii_lowercase())
    /// });
    /// # let _ = subdomain;
    /// ```
    pub fn custom(
        resolve: impl Fn(&HeaderMap, &Uri) -> Option<String> + Send + Sync + 'static,
    ) -> Self {
        TenantFrom::Custom(Arc::new(resolve))
    }
}

impl fmt::Debug for TenantFrom {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TenantFrom::Host => f.write_str("Host"),
            TenantFrom::Header(name) => f.debug_tuple("Header").field(name).finish(),
            TenantFrom::Custom(_) => f.write_str("Custom(..)"),
        }
    }
}

/// The limits a route group shortens, for every tenant; see
/// [`PoliciesBuilder::route`]. A limit left unset is the tenant's. A
/// shorter idle (absolute) timeout also caps the remember-me period
/// (remember-me absolute timeout) unless that one is given too.
///
/// ```
/// use std::time::Duration;
/// use tower_session_lifetime::policy::Tightening;
///
/// let admin = Tightening::new().idle_timeout(Duration::from_secs(5 * 60));
/// # let _ = admin;
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Tightening {
    idle_timeout: Option<Duration>,
    absolute_timeout: Option<Duration>,
    remember_me_period: Option<Duration>,
    remember_me_absolute_timeout: Option<Duration>,
}

impl Tightening {
    /// Shortens nothing.
    pub fn new() -> Self {
        Tightening::default()
    }

    /// The idle timeout within the route group.
    pub fn idle_timeout(mut self, timeout: Duration) -> Self {
        self.idle_timeout = Some(timeout);
        self
    }

    /// The absolute timeout within the route group.
    pub fn absolute_timeout(mut self, timeout: Duration) -> Self {
        self.absolute_timeout = Some(timeout);
        self
    }

    /// The remember-me period within the route group.
    pub fn remember_me_period(mut self, period: Duration) -> Self {
        self.remember_me_period = Some(period);
        self
    }

    /// The absolute timeout of remember-me sessions within the route group.
    pub fn remember_me_absolute_timeout(mut self, timeout: Duration) -> Self {
        self.remember_me_absolute_timeout = Some(timeout);
        self
    }

    /// `policy` with these limits, or the error of the first one that is
    /// longer than `policy`'s. `tenant` names the policy in the error.
    fn apply(
        &self,
        policy: &Policy,
        route: &str,
        tenant: Option<&str>,
    ) -> Result<Policy, PolicyError> {
        let base = policy.limits;
        let shorter = |setting, value: Option<Duration>, enclosing: Option<Duration>| {
            let Some(value) = value else {
                return Ok(enclosing);
            };
            if value < Duration::from_millis(1) {
                return Err(PolicyError::TooShort { setting, value });
            }
            match enclosing {
                Some(enclosing) if value > enclosing => Err(PolicyError::LongerThanEnclosing {
                    setting,
                    value,
                    enclosing,
                    route: route.to_owned(),
                    tenant: tenant.map(str::to_owned),
                }),
                _ => Ok(Some(value)),
            }
        };
        let limits = Limits {
            idle_timeout: shorter(
                Setting::IdleTimeout,
                self.idle_timeout,
                Some(base.idle_timeout),
            )?
            .unwrap_or(base.idle_timeout),
            absolute_timeout: shorter(
                Setting::AbsoluteTimeout,
                self.absolute_timeout,
                base.absolute_timeout,
            )?,
            // A tightened idle (absolute) timeout caps remember-me sessions
            // too, unless their own is given: "idles out sooner" means for
            // everyone.
            remember_me_period: shorter(
                Setting::RememberMePeriod,
                self.remember_me_period,
                Some(base.remember_me_period),
            )?
            .unwrap_or(base.remember_me_period)
            .min(
                self.remember_me_period
                    .or(self.idle_timeout)
                    .unwrap_or(Duration::MAX),
            ),
            remember_me_absolute_timeout: shorter_limit(
                shorter(
                    Setting::RememberMeAbsoluteTimeout,
                    self.remember_me_absolute_timeout,
                    base.remember_me_absolute_timeout,
                )?,
                self.remember_me_absolute_timeout.or(self.absolute_timeout),
            ),
        };
        let touch_granularity = policy
            .touch_granularity
            .min(default_touch_granularity(limits.idle_timeout))
            .min(default_touch_granularity(limits.remember_me_period));
        Ok(Policy {
            limits,
            touch_granularity,
            ..*policy
        })
    }
}

/// Which policy a request is judged by, and which one a session it starts
/// is snapshotted with: indexes into [`Policies`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct PolicyChoice {
    /// The tenant's policy, tightened for the request's route group.
    effective: usize,
    /// The tenant's policy.
    base: usize,
}

impl PolicyChoice {
    /// Whether the request is in a route group: judged by a tighter policy
    /// than the one its session's expiry in the store follows.
    pub(crate) fn is_tightened(&self) -> bool {
        self.effective != self.base
    }
}

/// The policies of an app: one, or one per tenant (by host or header), each
/// tightened in route groups (by path prefix). Give it to
/// [`SessionLifetimeLayer::with_policies`](crate::SessionLifetimeLayer::with_policies).
///
/// - A request is judged by its tenant's policy (the default one for a
///   request of no listed tenant), tightened for the route group its path
///   is in (`/admin` covers `/admin` and `/admin/…`, not `/administrators`;
///   the longest prefix wins). The layer cannot know how the router inside
///   it reads a path, so a path is in a group when any reading of it is:
///   as sent, percent-decoded (once or twice), with dot segments resolved,
///   with `\` as `/`. `//admin`, `/x/../admin` and `/%61dmin` are in
///   `/admin`, and so are `/admin/..` and `/admin/%2e%2e`, which axum's
///   `/admin/{*rest}` routes to the admin pages. A path whose readings fall
///   in two different groups is judged by the limits of all groups at
///   once. Case counts (`/Admin` is not in `/admin`). Prefixes must be
///   plain (`/admin`, not `/admin/`).
/// - The tenant is the request's host (the request line's, else `Host`'s,
///   without port and trailing dot, in lower case) or a header's value. A
///   client chooses both: the tenant only picks limits. Sessions are not
///   bound to a tenant and subjects are one namespace, so make subjects
///   unique across tenants (`acme:alice`) if tenants share a store.
/// - A session started by a request is snapshotted with its tenant's policy,
///   untightened, so that signing in on an admin page does not shorten the
///   whole session; each later request takes the tighter of the snapshot and
///   its own policy. So, per tenant, a shortened limit bites at the next
///   request, a lengthened one applies only to new sessions, and a session
///   that went idle for longer than a route group allows ends there.
/// - A route group may only shorten limits: one that would lengthen a
///   tenant's (or the default's) is refused when the set is built, with an
///   error naming the setting, both values, the route and the tenant.
///
/// ```
/// use std::time::Duration;
/// use tower_session_lifetime::{Policies, Policy, policy::{PolicyError, TenantFrom, Tightening}};
///
/// let minutes = |m: u64| Duration::from_secs(m * 60);
/// let policies = Policies::builder(Policy::builder().idle_timeout(minutes(30)).build()?)
///     .tenants_from(TenantFrom::Host)
///     .tenant("strict.example", Policy::builder().idle_timeout(minutes(10)).build()?)
///     .route("/admin", Tightening::new().idle_timeout(minutes(5)))
///     .build()?;
/// # let _ = policies;
///
/// // A route group may not lengthen a tenant's limit:
/// let err = Policies::builder(Policy::builder().idle_timeout(minutes(30)).build()?)
///     .tenant("strict.example", Policy::builder().idle_timeout(minutes(10)).build()?)
///     .route("/reports", Tightening::new().idle_timeout(minutes(20)))
///     .build()
///     .unwrap_err();
/// assert!(matches!(err, PolicyError::LongerThanEnclosing { .. }));
/// assert_eq!(
///     err.to_string(),
///     r#"idle timeout of 1200s for "/reports" is longer than the 600s of tenant "strict.example""#
/// );
/// # Ok::<(), PolicyError>(())
/// ```
#[derive(Clone, Debug)]
pub struct Policies {
    /// Per tenant (the default first), the tenant's policy and then one per
    /// route group, in the order of `routes`.
    all: Vec<Policy>,
    tenant_from: TenantFrom,
    /// Tenant name to its index (1-based: 0 is the default).
    tenants: HashMap<String, usize>,
    /// Route prefixes, longest first, with their index among a tenant's
    /// policies (1-based: 0 is the tenant's own).
    routes: Vec<(String, usize)>,
    /// What the set was built from, to build it again with one tenant's
    /// policy replaced (`None` for [`Policies::single`]).
    source: Option<Arc<PoliciesBuilder>>,
}

impl Policies {
    /// A builder with `default` for requests of no listed tenant.
    pub fn builder(default: Policy) -> PoliciesBuilder {
        PoliciesBuilder {
            default,
            tenant_from: TenantFrom::Host,
            tenants: Vec::new(),
            routes: Vec::new(),
        }
    }

    /// One policy for every request.
    pub fn single(policy: Policy) -> Self {
        Policies {
            all: vec![policy],
            tenant_from: TenantFrom::Host,
            tenants: HashMap::new(),
            routes: Vec::new(),
            source: None,
        }
    }

    /// The policy of tenant `name` (as [`PoliciesBuilder::tenant`] named
    /// it; a host in lower case), untightened; `None` for a tenant that is
    /// not listed.
    pub fn tenant_policy(&self, name: &str) -> Option<&Policy> {
        let index = *self.tenants.get(name)?;
        Some(&self.all[index * self.per_tenant()])
    }

    /// The names of the listed tenants, in no particular order.
    pub fn tenant_names(&self) -> impl Iterator<Item = &str> {
        self.tenants.keys().map(String::as_str)
    }

    /// The same set with the default policy (`tenant` `None`) or a listed
    /// tenant's replaced by `policy`, checked as
    /// [`PoliciesBuilder::build`] checks it: a route group that would now
    /// lengthen one of its limits is refused. `Ok(None)` for a tenant that
    /// is not listed.
    pub(crate) fn replacing(
        &self,
        tenant: Option<&str>,
        policy: Policy,
    ) -> Result<Option<Policies>, PolicyError> {
        let mut source = match &self.source {
            Some(source) => PoliciesBuilder::clone(source),
            None => Policies::builder(self.all[0]),
        };
        match tenant {
            None => source.default = policy,
            Some(name) => {
                let Some(entry) = source.tenants.iter_mut().find(|(listed, _)| listed == name)
                else {
                    return Ok(None);
                };
                entry.1 = policy;
            }
        }
        source.build().map(Some)
    }

    /// The policy requests of no listed tenant and route group get.
    pub fn default_policy(&self) -> &Policy {
        &self.all[0]
    }

    /// The policy `request` is judged by.
    ///
    /// ```
    /// use std::time::Duration;
    /// use http::Request;
    /// use tower_session_lifetime::{Policies, Policy, policy::Tightening};
    ///
    /// let policies = Policies::builder(Policy::default())
    ///     .route("/admin", Tightening::new().idle_timeout(Duration::from_secs(60)))
    ///     .build()?;
    /// let admin = Request::get("/admin/users").body(()).unwrap();
    /// assert_eq!(policies.for_request(&admin).idle_timeout(), Duration::from_secs(60));
    /// let home = Request::get("/administrators").body(()).unwrap();
    /// assert_eq!(policies.for_request(&home), &Policy::default());
    /// # Ok::<(), tower_session_lifetime::policy::PolicyError>(())
    /// ```
    pub fn for_request<B>(&self, request: &Request<B>) -> &Policy {
        self.policy(self.choose(request))
    }

    pub(crate) fn choose<B>(&self, request: &Request<B>) -> PolicyChoice {
        if self.all.len() == 1 {
            return PolicyChoice::default();
        }
        let tenant = self.tenant_of(request);
        let base = tenant * self.per_tenant();
        let route = self.route_of(request.uri().path());
        PolicyChoice {
            effective: base + route,
            base,
        }
    }

    /// How many policies each tenant has: its own, one per route group,
    /// and, with two groups or more, all of them at once.
    fn per_tenant(&self) -> usize {
        match self.routes.len() {
            0 => 1,
            1 => 2,
            groups => groups + 2,
        }
    }

    /// The index, among a tenant's policies, of the route group that
    /// judges `path`: the tightest group any reading of the path is in.
    ///
    /// The layer cannot know how the router inside it reads a path, so it
    /// reads it every way a router, a proxy or a file server may: as sent,
    /// percent-decoded (once or twice), with dot segments resolved (keeping
    /// or dropping empty segments), with `\` as `/`. When the readings
    /// fall in one group (or in one group and none), that group judges;
    /// when they fall in different groups, all groups judge at once (their
    /// tightest limits), so no spelling of a path escapes a group.
    fn route_of(&self, path: &str) -> usize {
        let group_of = |reading: &str| {
            self.routes
                .iter()
                .find(|(prefix, _)| in_group(reading, prefix))
                .map_or(0, |(_, index)| *index)
        };
        if is_plain(path) {
            return group_of(path);
        }
        let mut found = 0;
        for reading in readings(path) {
            match group_of(&reading) {
                0 => {}
                group if found == 0 || found == group => found = group,
                // Readings in two different groups: all of them judge.
                _ => return self.routes.len() + 1,
            }
        }
        found
    }

    fn tenant_of<B>(&self, request: &Request<B>) -> usize {
        if self.tenants.is_empty() {
            return 0;
        }
        let name: Option<std::borrow::Cow<'_, str>> = match &self.tenant_from {
            // The request line's authority wins over `Host` (RFC 9112).
            TenantFrom::Host => request
                .uri()
                .host()
                .or_else(|| {
                    let host = request.headers().get(HOST)?.to_str().ok()?;
                    Some(host_without_port(host))
                })
                .map(|host| {
                    let host = host.strip_suffix('.').unwrap_or(host);
                    if host.bytes().any(|byte| byte.is_ascii_uppercase()) {
                        std::borrow::Cow::Owned(host.to_ascii_lowercase())
                    } else {
                        std::borrow::Cow::Borrowed(host)
                    }
                }),
            TenantFrom::Header(header) => request
                .headers()
                .get(header)
                .and_then(|value| value.to_str().ok())
                .map(std::borrow::Cow::Borrowed),
            TenantFrom::Custom(resolve) => {
                resolve(request.headers(), request.uri()).map(std::borrow::Cow::Owned)
            }
        };
        name.and_then(|name| self.tenants.get(name.as_ref()).copied())
            .unwrap_or(0)
    }

    /// The policy a request is judged by.
    pub(crate) fn policy(&self, choice: PolicyChoice) -> &Policy {
        &self.all[choice.effective]
    }

    /// The policy a session started by the request is snapshotted with.
    pub(crate) fn base(&self, choice: PolicyChoice) -> &Policy {
        &self.all[choice.base]
    }
}

/// Whether `path` is in the route group `prefix` (both normalized): the
/// prefix itself, or below it at a segment boundary.
fn in_group(path: &str, prefix: &str) -> bool {
    match path.strip_prefix(prefix) {
        Some(rest) => rest.is_empty() || rest.starts_with('/'),
        None => false,
    }
}

/// Whether `path` has one reading only: no percent-escape, no dot, no
/// backslash, no empty segment, no trailing `/` (but the root).
fn is_plain(path: &str) -> bool {
    !path.contains(['%', '.', '\\'])
        && !path.contains("//")
        && (path.len() == 1 || !path.ends_with('/'))
}

/// Every way a router, a proxy or a file server may read `path`: as sent;
/// percent-decoded once and twice; each of those with dot segments
/// resolved as RFC 3986 does (empty segments kept) and as most routers
/// and file servers do (empty segments dropped, so `//admin` is
/// `/admin`); and all of that again with `\` read as `/`.
fn readings(path: &str) -> Vec<String> {
    let once = decoded(path);
    let twice = decoded(&once);
    let mut spellings = vec![path.to_owned(), once, twice];
    if spellings.iter().any(|spelling| spelling.contains('\\')) {
        let slashed: Vec<String> = spellings
            .iter()
            .map(|spelling| spelling.replace('\\', "/"))
            .collect();
        spellings.extend(slashed);
    }
    let mut readings = Vec::with_capacity(spellings.len() * 4);
    for spelling in spellings {
        readings.push(dot_segments_removed(&spelling));
        readings.push(normalized(&spelling).into_owned());
        // Empty and dot segments dropped without decoding again:
        // `//admin/%2e%2e` is `/admin/%2e%2e`, which `/admin/{*rest}` routes.
        readings.push(segments_resolved(&spelling));
        readings.push(spelling);
    }
    readings
}

/// `path` with its percent-escapes decoded once (invalid UTF-8 replaced).
fn decoded(path: &str) -> String {
    String::from_utf8_lossy(&crate::bytes::percent_decoded(path.as_bytes())).into_owned()
}

/// `path` with `.` and `..` segments resolved as RFC 3986 (§5.2.4) does:
/// empty segments are kept, so `/admin//..` is `/admin/`.
fn dot_segments_removed(path: &str) -> String {
    let mut segments: Vec<&str> = Vec::new();
    let mut parts = path.split('/').skip(1).peekable();
    while let Some(segment) = parts.next() {
        let last = parts.peek().is_none();
        match segment {
            "." | ".." => {
                if segment == ".." {
                    segments.pop();
                }
                // A trailing dot segment leaves a directory: `/a/b/..` is `/a/`.
                if last {
                    segments.push("");
                }
            }
            segment => segments.push(segment),
        }
    }
    format!("/{}", segments.join("/"))
}

/// `path` as most routers and file servers end up reading it:
/// percent-escapes decoded, empty and `.` segments dropped, `..` segments
/// applied, without a trailing `/`. So `//admin`, `/x/../admin`,
/// `/./admin` and `/%61dmin` are all `/admin`. Case is kept: `/Admin` is
/// another path.
fn normalized(path: &str) -> std::borrow::Cow<'_, str> {
    if is_plain(path) {
        return std::borrow::Cow::Borrowed(path);
    }
    let decoded = crate::bytes::percent_decoded(path.as_bytes());
    std::borrow::Cow::Owned(segments_resolved(&String::from_utf8_lossy(&decoded)))
}

/// `path` with empty and `.` segments dropped and `..` segments applied,
/// without a trailing `/`, as it is (no decoding).
fn segments_resolved(path: &str) -> String {
    let mut segments: Vec<&str> = Vec::new();
    for segment in path.split('/') {
        match segment {
            "" | "." => {}
            ".." => {
                segments.pop();
            }
            segment => segments.push(segment),
        }
    }
    format!("/{}", segments.join("/"))
}

/// `host` (a `Host` header) without its port. Not `http::uri::Authority`:
/// parsing one copies the header (an allocation; 880 instructions a call
/// under callgrind against 185), reads `user@a.example` as `a.example`,
/// and refuses what it does not parse (`a b`, `%zz`, `[::1`, `a:b:c`),
/// where this reads every header the same way as before.
fn host_without_port(host: &str) -> &str {
    if host.starts_with('[') {
        // An IPv6 literal: `[::1]:3000`.
        return host.split_inclusive(']').next().unwrap_or(host);
    }
    host.split(':').next().unwrap_or(host)
}

/// Builds [`Policies`]; [`build`](PoliciesBuilder::build) checks that no
/// route group lengthens a limit.
#[derive(Clone, Debug)]
pub struct PoliciesBuilder {
    default: Policy,
    tenant_from: TenantFrom,
    tenants: Vec<(String, Policy)>,
    routes: Vec<(String, Tightening)>,
}

impl PoliciesBuilder {
    /// How requests name their tenant. Default: [`TenantFrom::Host`].
    pub fn tenants_from(mut self, from: TenantFrom) -> Self {
        self.tenant_from = from;
        self
    }

    /// Requests of tenant `name` (a host, or a header value, as
    /// [`tenants_from`](PoliciesBuilder::tenants_from) says) get `policy`.
    /// A later one for the same name replaces it.
    pub fn tenant(mut self, name: impl Into<String>, policy: Policy) -> Self {
        self.tenants.push((name.into(), policy));
        self
    }

    /// Requests whose path is `prefix` or below it (`/admin`: also
    /// `/admin/users`) get their tenant's policy with `tightening`.
    pub fn route(mut self, prefix: impl Into<String>, tightening: Tightening) -> Self {
        self.routes.push((prefix.into(), tightening));
        self
    }

    /// The policies, or the first error: a route prefix that is not an
    /// absolute path ([`PolicyError::InvalidRoute`]), or a route group that
    /// lengthens a limit of a tenant or of the default
    /// ([`PolicyError::LongerThanEnclosing`]).
    pub fn build(mut self) -> Result<Policies, PolicyError> {
        if matches!(self.tenant_from, TenantFrom::Host) {
            for (name, _) in &mut self.tenants {
                name.make_ascii_lowercase();
            }
        }
        // A later entry for a name replaces an earlier one.
        let mut seen = std::collections::HashSet::new();
        self.tenants.reverse();
        self.tenants.retain(|(name, _)| seen.insert(name.clone()));
        self.tenants.reverse();
        // Names as the set keeps them, for building it again.
        let source = Arc::new(self.clone());
        for (prefix, _) in &self.routes {
            let plain = prefix.starts_with('/')
                && !prefix.contains(['?', '#'])
                && normalized(prefix) == prefix.as_str();
            if !plain {
                return Err(PolicyError::InvalidRoute {
                    route: prefix.clone(),
                });
            }
        }
        let tenants = std::iter::once((None, &self.default)).chain(
            self.tenants
                .iter()
                .map(|(name, policy)| (Some(name), policy)),
        );
        let mut all = Vec::new();
        for (name, policy) in tenants {
            all.push(*policy);
            let mut every_group = *policy;
            for (prefix, tightening) in &self.routes {
                let tightened = tightening.apply(policy, prefix, name.map(String::as_str))?;
                every_group = Policy {
                    limits: every_group.limits.tightest(tightened.limits),
                    touch_granularity: every_group
                        .touch_granularity
                        .min(tightened.touch_granularity),
                    ..every_group
                };
                all.push(tightened);
            }
            // For a path whose readings fall in different groups.
            if self.routes.len() > 1 {
                all.push(every_group);
            }
        }
        let mut routes: Vec<(String, usize)> = self
            .routes
            .into_iter()
            .enumerate()
            .map(|(i, (prefix, _))| (prefix, i + 1))
            .collect();
        // The longest prefix first: `/admin/audit` before `/admin`.
        routes.sort_by_key(|(prefix, _)| std::cmp::Reverse(prefix.len()));
        Ok(Policies {
            all,
            tenant_from: self.tenant_from,
            tenants: self
                .tenants
                .into_iter()
                .enumerate()
                .map(|(i, (name, _))| (name, i + 1))
                .collect(),
            routes,
            source: Some(source),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get(uri: &str, host: &str) -> Request<()> {
        Request::get(uri).header(HOST, host).body(()).unwrap()
    }

    #[test]
    fn route_groups_match_whole_segments_and_the_longest_prefix_wins() {
        assert!(in_group("/admin", "/admin"));
        assert!(in_group("/admin/users", "/admin"));
        assert!(!in_group("/administrators", "/admin"));
        assert!(!in_group("/", "/admin"));
        for tricky in [
            "//admin",
            "/x/../admin",
            "/./admin",
            "/%61dmin/",
            "/admin//users",
        ] {
            assert!(in_group(&normalized(tricky), "/admin"), "{tricky}");
        }
        assert!(!in_group(&normalized("/Admin"), "/admin"), "case is kept");
        assert_eq!(dot_segments_removed("/admin//.."), "/admin/");
        assert_eq!(dot_segments_removed("/admin/.."), "/");
        assert_eq!(dot_segments_removed("/a/./b/../c"), "/a/c");
        assert_eq!(dot_segments_removed("/a/b/."), "/a/b/");
        let spelled = readings("/admin/%252e%252e");
        assert!(spelled.iter().any(|reading| reading == "/"), "{spelled:?}");
        assert!(spelled.iter().any(|reading| reading == "/admin/%2e%2e"));
        assert_eq!(normalized("/"), "/");
        assert_eq!(normalized("/.."), "/");
        for prefix in ["/admin/", "/a//b", "/a/./b", "/%61"] {
            let built = Policies::builder(Policy::default())
                .route(prefix, Tightening::new())
                .build();
            assert!(
                matches!(built, Err(PolicyError::InvalidRoute { .. })),
                "{prefix}"
            );
        }
        let policies = Policies::builder(Policy::default())
            .route(
                "/admin",
                Tightening::new().idle_timeout(Duration::from_secs(300)),
            )
            .route(
                "/admin/audit",
                Tightening::new().idle_timeout(Duration::from_secs(60)),
            )
            .build()
            .unwrap();
        let idle = |uri| {
            policies
                .for_request(&get(uri, "app.example"))
                .idle_timeout()
        };
        assert_eq!(idle("/admin/audit/log"), Duration::from_secs(60));
        assert_eq!(idle("/admin/users"), Duration::from_secs(300));
        assert_eq!(idle("/"), Policy::default().idle_timeout());
    }

    #[test]
    fn tenants_by_host_ignore_case_and_port() {
        let strict = Policy::builder()
            .idle_timeout(Duration::from_secs(60))
            .build()
            .unwrap();
        let policies = Policies::builder(Policy::default())
            .tenant("Strict.Example", strict)
            .build()
            .unwrap();
        assert_eq!(
            policies.for_request(&get("/", "STRICT.example:8443")),
            &strict
        );
        assert_eq!(
            policies.for_request(&get("/", "other.example")),
            &Policy::default()
        );
        assert_eq!(host_without_port("[::1]:3000"), "[::1]");
    }

    #[test]
    fn a_tightened_policy_keeps_its_granularity_below_the_new_limits() {
        let policies = Policies::builder(Policy::default())
            .route(
                "/pay",
                Tightening::new()
                    .idle_timeout(Duration::from_secs(20))
                    .remember_me_period(Duration::from_secs(40)),
            )
            .build()
            .unwrap();
        let pay = policies.for_request(&get("/pay", "a"));
        assert_eq!(pay.touch_granularity(), Duration::from_secs(1));
        assert_eq!(pay.absolute_timeout(), Policy::default().absolute_timeout());
    }
}
