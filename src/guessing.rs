//! Slowing down session ID guessing: a per-client count of unknown or forged
//! session IDs, and a `429` once a client presents too many.
//!
//! ```
//! use std::time::Duration;
//! use tower_session_lifetime::{MemoryStore, SessionLifetimeLayer, guessing::GuessLimit};
//!
//! // At most 20 unknown or forged session IDs per client per minute; the
//! // client is the peer address the server put in the request extensions.
//! let layer = SessionLifetimeLayer::new(MemoryStore::new())
//!     .with_guess_limit(GuessLimit::new(20, Duration::from_secs(60))?);
//! # let _ = layer;
//! # Ok::<(), tower_session_lifetime::guessing::GuessLimitError>(())
//! ```
//!
//! A session ID has 128 random bits, so guessing one is hopeless; what an
//! attacker can do is make the app look IDs up in its store as fast as it
//! can send them. Past the limit, the layer answers the client's requests
//! that carry a session cookie with `429 Too Many Requests` and a
//! `Retry-After` header, without asking the store, until the window ends.
//! Requests without a session cookie (a sign-in page) are not limited.

use std::collections::HashMap;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use http::{Extensions, HeaderMap};

use crate::time::Timestamp;

/// How many shards the per-client counts are spread over.
const SHARDS: usize = 64;

/// Default bound on the clients tracked at once.
pub const DEFAULT_MAX_CLIENTS: usize = 65_536;

/// The most memory the guess counts take per client they can count, in
/// bytes: the counts of one layer never take more than
/// [`max_clients`](GuessLimit::max_clients) (at least 192) times this,
/// however many distinct clients send forged IDs (at the default, under
/// 8 MiB; measured, about 5.4 MB).
/// `tests/bounded_memory.rs` counts the bytes with a million clients.
///
/// ```
/// use tower_session_lifetime::guessing::{DEFAULT_MAX_CLIENTS, GUESS_COUNT_BYTES_PER_CLIENT};
///
/// assert!(DEFAULT_MAX_CLIENTS * GUESS_COUNT_BYTES_PER_CLIENT < 8 << 20);
/// ```
pub const GUESS_COUNT_BYTES_PER_CLIENT: usize = 120;

/// The fewest clients the counts make room for, whatever
/// [`max_clients`](GuessLimit::max_clients) says: three per shard, the
/// smallest table a shard has, so that memory per client stays under
/// [`GUESS_COUNT_BYTES_PER_CLIENT`] for small limits too.
const MIN_MAX_CLIENTS: usize = 3 * SHARDS;

type ClientOf = dyn Fn(&HeaderMap, &Extensions) -> Option<IpAddr> + Send + Sync;

/// How many unknown or forged session IDs one client may present in a
/// window of time; see
/// [`SessionLifetimeLayer::with_guess_limit`](crate::SessionLifetimeLayer::with_guess_limit).
///
/// Counted: cookies naming a session the store does not have (unknown,
/// logged out, reclaimed), cookies whose signature does not verify, and
/// cookies that are not a session ID at all. Not counted: sessions that
/// expired by their idle or absolute deadline, or a renewed ID past its
/// grace period, which honest browsers present.
///
/// ```
/// use std::net::IpAddr;
/// use std::time::Duration;
/// use tower_session_lifetime::guessing::GuessLimit;
///
/// // Behind a reverse proxy that sets `X-Real-IP` (and strips a client's own):
/// let limit = GuessLimit::new(20, Duration::from_secs(60))?.client(|headers, _| {
///     headers.get("x-real-ip")?.to_str().ok()?.parse::<IpAddr>().ok()
/// });
/// # let _ = limit;
/// # Ok::<(), tower_session_lifetime::guessing::GuessLimitError>(())
/// ```
#[derive(Clone)]
pub struct GuessLimit {
    max_failures: u32,
    window: Duration,
    max_clients: usize,
    client: Arc<ClientOf>,
}

impl GuessLimit {
    /// At most `max_failures` unknown or forged session IDs per client in
    /// each `window`. The client is the IP address of the [`SocketAddr`] in
    /// the request extensions (what a hyper server can insert per
    /// connection); with axum's `ConnectInfo`, or behind a proxy, say how to
    /// find it with [`client`](GuessLimit::client). A request whose client
    /// is unknown is not limited.
    pub fn new(max_failures: u32, window: Duration) -> Result<Self, GuessLimitError> {
        if max_failures == 0 {
            return Err(GuessLimitError::NoFailuresAllowed);
        }
        if window < Duration::from_millis(1) {
            return Err(GuessLimitError::WindowTooShort(window));
        }
        Ok(GuessLimit {
            max_failures,
            window,
            max_clients: DEFAULT_MAX_CLIENTS,
            client: Arc::new(|_, extensions| extensions.get::<SocketAddr>().map(SocketAddr::ip)),
        })
    }

    /// How to tell a request's client: from its headers (a trusted proxy's)
    /// or its extensions (axum's `ConnectInfo<SocketAddr>`). `None` leaves
    /// the request unlimited. An IPv6 client controls a whole /64; map it to
    /// its prefix here if that matters to you.
    pub fn client(
        mut self,
        client: impl Fn(&HeaderMap, &Extensions) -> Option<IpAddr> + Send + Sync + 'static,
    ) -> Self {
        self.client = Arc::new(client);
        self
    }

    /// At most this many clients are counted at once (default
    /// [`DEFAULT_MAX_CLIENTS`]), so that the counts take bounded memory: at
    /// most [`GUESS_COUNT_BYTES_PER_CLIENT`] bytes each.
    /// When that many are counted, clients whose window has ended make room;
    /// if none has, a new client is not counted until one does. Values
    /// below 192 count as 192 (the counts are kept in 64 shards).
    pub fn max_clients(mut self, max_clients: usize) -> Self {
        self.max_clients = max_clients.max(MIN_MAX_CLIENTS);
        self
    }
}

impl fmt::Debug for GuessLimit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GuessLimit")
            .field("max_failures", &self.max_failures)
            .field("window", &self.window)
            .field("max_clients", &self.max_clients)
            .finish_non_exhaustive()
    }
}

/// Why [`GuessLimit::new`] refused its values.
///
/// ```
/// use std::time::Duration;
/// use tower_session_lifetime::guessing::{GuessLimit, GuessLimitError};
///
/// let err = GuessLimit::new(0, Duration::from_secs(60)).unwrap_err();
/// assert_eq!(err, GuessLimitError::NoFailuresAllowed);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum GuessLimitError {
    /// Zero failures allowed: a single mistyped or stale cookie would lock
    /// a client out.
    NoFailuresAllowed,
    /// The window is shorter than a millisecond, the resolution of the
    /// clock.
    WindowTooShort(Duration),
}

impl fmt::Display for GuessLimitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GuessLimitError::NoFailuresAllowed => {
                f.write_str("a guess limit of zero failures locks out every stale cookie")
            }
            GuessLimitError::WindowTooShort(window) => {
                write!(
                    f,
                    "a guess window of {window:?} is shorter than one millisecond"
                )
            }
        }
    }
}

impl std::error::Error for GuessLimitError {}

/// The counts of one layer.
pub(crate) struct GuessCounter {
    limit: GuessLimit,
    shards: Box<[Mutex<HashMap<IpAddr, Window>>]>,
}

/// One client's failures in its current window.
#[derive(Clone, Copy)]
struct Window {
    ends: Timestamp,
    failures: u32,
}

impl GuessCounter {
    pub(crate) fn new(limit: GuessLimit) -> Self {
        GuessCounter {
            limit,
            shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
        }
    }

    /// The request's client, as the limit's `client` tells it.
    pub(crate) fn client(&self, headers: &HeaderMap, extensions: &Extensions) -> Option<IpAddr> {
        (self.limit.client)(headers, extensions)
    }

    fn shard(&self, client: &IpAddr) -> &Mutex<HashMap<IpAddr, Window>> {
        let index = match client {
            IpAddr::V4(v4) => usize::from(v4.octets()[3]),
            IpAddr::V6(v6) => usize::from(v6.octets()[15]),
        };
        &self.shards[index % SHARDS]
    }

    /// How long `client` is still refused at `now`, if it is.
    pub(crate) fn blocked_for(&self, client: &IpAddr, now: Timestamp) -> Option<Duration> {
        let shard = self
            .shard(client)
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let window = shard.get(client)?;
        (now < window.ends && window.failures >= self.limit.max_failures)
            .then(|| window.ends.saturating_duration_since(now))
    }

    /// Counts one unknown or forged ID from `client` at `now`.
    pub(crate) fn record_failure(&self, client: IpAddr, now: Timestamp) {
        let per_shard = self.limit.max_clients.div_ceil(SHARDS);
        let mut shard = self
            .shard(&client)
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if !shard.contains_key(&client) && shard.len() >= per_shard {
            shard.retain(|_, window| now < window.ends);
            if shard.len() >= per_shard {
                tracing::debug!(%client, "guess counts full; client not counted");
                return;
            }
        }
        let fresh = Window {
            ends: now.saturating_add(self.limit.window),
            failures: 0,
        };
        let window = shard.entry(client).or_insert(fresh);
        if now >= window.ends {
            *window = fresh;
        }
        window.failures = window.failures.saturating_add(1);
        if window.failures == self.limit.max_failures {
            tracing::warn!(
                %client,
                failures = window.failures,
                window_ms = self.limit.window.as_millis() as u64,
                "too many unknown or forged session IDs from one client: answering 429 until \
                 its window ends"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(millis: u64) -> Timestamp {
        Timestamp::from_unix_millis(millis)
    }

    #[test]
    fn a_client_is_refused_from_its_limit_to_the_end_of_its_window() {
        let counter = GuessCounter::new(GuessLimit::new(3, Duration::from_secs(60)).unwrap());
        let client: IpAddr = "192.0.2.7".parse().unwrap();
        let other: IpAddr = "192.0.2.8".parse().unwrap();
        for second in 0..2 {
            counter.record_failure(client, at(second * 1000));
            assert_eq!(counter.blocked_for(&client, at(second * 1000)), None);
        }
        counter.record_failure(client, at(2000));
        assert_eq!(
            counter.blocked_for(&client, at(2000)),
            Some(Duration::from_secs(58))
        );
        assert_eq!(counter.blocked_for(&other, at(2000)), None);
        assert_eq!(
            counter.blocked_for(&client, at(59_999)),
            Some(Duration::from_millis(1))
        );
        assert_eq!(counter.blocked_for(&client, at(60_000)), None);
        // A new window starts from zero.
        counter.record_failure(client, at(60_000));
        assert_eq!(counter.blocked_for(&client, at(60_000)), None);
    }

    #[test]
    fn the_counts_stay_bounded() {
        let counter = GuessCounter::new(
            GuessLimit::new(1, Duration::from_secs(60))
                .unwrap()
                // Less than the floor: three per shard.
                .max_clients(1),
        );
        // Three clients of one shard fit; a fourth one is not counted until
        // the first ones' window ends.
        let first: [IpAddr; 3] = ["198.51.100.1", "198.51.100.65", "198.51.100.129"]
            .map(|address| address.parse().unwrap());
        let fourth: IpAddr = "203.0.113.1".parse().unwrap();
        for client in first {
            counter.record_failure(client, at(0));
            assert!(counter.blocked_for(&client, at(0)).is_some());
        }
        counter.record_failure(fourth, at(0));
        assert_eq!(counter.blocked_for(&fourth, at(0)), None);
        counter.record_failure(fourth, at(60_000));
        assert!(counter.blocked_for(&fourth, at(60_000)).is_some());
    }

    #[test]
    fn nonsense_limits_are_typed_errors() {
        assert_eq!(
            GuessLimit::new(0, Duration::from_secs(1)).unwrap_err(),
            GuessLimitError::NoFailuresAllowed
        );
        assert_eq!(
            GuessLimit::new(5, Duration::ZERO).unwrap_err(),
            GuessLimitError::WindowTooShort(Duration::ZERO)
        );
    }
}
