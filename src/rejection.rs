//! What a request without a live session gets, and why.

use std::fmt;

use http::header::CONTENT_TYPE;
use http::{HeaderValue, Response, StatusCode, Uri};

use crate::policy::ExpiryReason;
use crate::status::SessionStatus;

/// Why the layer did not admit a request's session.
///
/// Put into the response's extensions (and, for
/// [`OnInvalidSession::PassThrough`], the request's) and into a `tracing`
/// event; never into a response body.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RejectReason {
    /// The idle deadline passed.
    IdleTimeout,
    /// The absolute deadline passed.
    AbsoluteTimeout,
    /// The store has no such session: logged out, reclaimed, or never issued.
    Unknown,
    /// The cookie value is not a session ID (wrong length or alphabet,
    /// oversized, not UTF-8).
    Malformed,
    /// Signing is on and the cookie's signature does not verify.
    Forged,
    /// The request carries the session cookie more than once.
    Duplicated,
    /// The store failed, so the session could not be confirmed.
    StoreUnavailable,
    /// The ID was replaced by a [renewal](crate::policy::PolicyBuilder::renewal_interval)
    /// and its grace period is over.
    Renewed,
    /// The request carries no session cookie where a session is required
    /// (a [status request](crate::status)), or no session where the
    /// [recent-login guard](crate::recent_login::RecentLoginLayer) wants one.
    Missing,
    /// The session's subject authenticated too long ago for the route
    /// (the [recent-login guard](crate::recent_login::RecentLoginLayer)).
    LoginTooOld,
    /// The client presented too many unknown or forged session IDs lately
    /// (`429 Too Many Requests`, without a store lookup); see
    /// [`SessionLifetimeLayer::with_guess_limit`](crate::SessionLifetimeLayer::with_guess_limit).
    TooManyGuesses,
}

impl RejectReason {
    /// A short stable name: `idle`, `absolute`, `unknown`, `malformed`,
    /// `forged`, `duplicated`, `store_unavailable`, `renewed`,
    /// `too_many_guesses`, `missing`, `login_too_old`.
    pub fn as_str(&self) -> &'static str {
        match self {
            RejectReason::IdleTimeout => "idle",
            RejectReason::AbsoluteTimeout => "absolute",
            RejectReason::Unknown => "unknown",
            RejectReason::Malformed => "malformed",
            RejectReason::Forged => "forged",
            RejectReason::Duplicated => "duplicated",
            RejectReason::StoreUnavailable => "store_unavailable",
            RejectReason::Renewed => "renewed",
            RejectReason::TooManyGuesses => "too_many_guesses",
            RejectReason::Missing => "missing",
            RejectReason::LoginTooOld => "login_too_old",
        }
    }

    /// The status the default rejection uses: `503 Service Unavailable` for
    /// a store failure, `429 Too Many Requests` for guessing, `401
    /// Unauthorized` otherwise.
    pub fn default_status(&self) -> StatusCode {
        match self {
            RejectReason::StoreUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            RejectReason::TooManyGuesses => StatusCode::TOO_MANY_REQUESTS,
            _ => StatusCode::UNAUTHORIZED,
        }
    }
}

impl From<ExpiryReason> for RejectReason {
    fn from(reason: ExpiryReason) -> Self {
        match reason {
            ExpiryReason::Idle => RejectReason::IdleTimeout,
            ExpiryReason::Absolute => RejectReason::AbsoluteTimeout,
        }
    }
}

impl fmt::Display for RejectReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a request whose session cookie is expired, unknown or unusable gets.
/// In every case the response clears the cookie, and an expired session is
/// deleted from the store; a forged, malformed or duplicated cookie is refused
/// without asking the store. A request without any session cookie is a
/// visitor and always reaches the inner service.
#[derive(Clone, Debug, Default)]
#[non_exhaustive]
pub enum OnInvalidSession {
    /// Answer without calling the inner service: `401` by default, or what
    /// [`SessionLifetimeLayer::reject_with`](crate::SessionLifetimeLayer::reject_with) builds.
    #[default]
    Reject,
    /// Answer `303 See Other` to a login page.
    Redirect(HeaderValue),
    /// Call the inner service as for a visitor with no session, the stale
    /// cookie removed from the request; for public pages.
    PassThrough,
}

impl OnInvalidSession {
    /// Redirect (`303`) to `location`, such as `/login`.
    ///
    /// ```
    /// use tower_session_lifetime::OnInvalidSession;
    ///
    /// let on_invalid = OnInvalidSession::redirect_to("/login".parse().unwrap());
    /// # let _ = on_invalid;
    /// ```
    pub fn redirect_to(location: Uri) -> Self {
        let location = HeaderValue::try_from(location.to_string())
            .expect("a parsed URI is a valid header value");
        OnInvalidSession::Redirect(location)
    }
}

/// What a request gets when the store fails while confirming its session.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum OnStoreError {
    /// Fail closed: reject with [`RejectReason::StoreUnavailable`] (`503` by
    /// default). The cookie is kept, since the session may still be live.
    #[default]
    FailClosed,
    /// Treat the request as a visitor without a session (its session cookie
    /// removed from the request, kept in the browser), so public pages stay up.
    PassThroughAsVisitor,
}

/// `303 See Other` to `location`, with an empty body: the layer's redirects
/// (to a login page, to re-authenticate, after a logout).
pub(crate) fn see_other<B: Default>(location: HeaderValue) -> Response<B> {
    let mut response = Response::new(B::default());
    *response.status_mut() = StatusCode::SEE_OTHER;
    response
        .headers_mut()
        .insert(http::header::LOCATION, location);
    response
}

/// Builds the response for a rejected request.
///
/// Implemented by [`DefaultRejection`] and by any
/// `Fn(RejectReason) -> Response<B> + Clone + Send + Sync + 'static`. The
/// layer adds the cookie removal and the reason extension to what it returns.
pub trait RejectionResponse<B>: Clone + Send + Sync + 'static {
    /// The response for `reason`.
    fn respond(&self, reason: RejectReason) -> Response<B>;

    /// The answer to a [status request](crate::status) for a live session,
    /// for a responder that builds its own (another body than the JSON),
    /// without the headers the layer adds (`Cache-Control: no-store`, the
    /// deadline headers, a refreshed cookie). `None`, the default, leaves
    /// it to [`StatusJson`], which
    /// [`status_endpoint`](crate::SessionLifetimeLayer::with_status_endpoint)
    /// wraps around the responder and which answers with
    /// [`SessionStatus::to_json`].
    fn status(&self, status: &SessionStatus) -> Option<Response<B>> {
        let _ = status;
        None
    }
}

/// An empty body with [`RejectReason::default_status`].
#[derive(Clone, Copy, Debug, Default)]
pub struct DefaultRejection;

impl<B: Default> RejectionResponse<B> for DefaultRejection {
    fn respond(&self, reason: RejectReason) -> Response<B> {
        let mut response = Response::new(B::default());
        *response.status_mut() = reason.default_status();
        response
    }
}

impl<B, F> RejectionResponse<B> for F
where
    F: Fn(RejectReason) -> Response<B> + Clone + Send + Sync + 'static,
{
    fn respond(&self, reason: RejectReason) -> Response<B> {
        self(reason)
    }
}

/// A responder that answers status requests with JSON bodies, around the
/// responder `R` that builds rejections. What
/// [`SessionLifetimeLayer::with_status_endpoint`](crate::SessionLifetimeLayer::with_status_endpoint)
/// wraps the layer's responder in; its body type must be buildable from a
/// `String` (axum's `Body`, http-body-util's `Full<Bytes>`…).
#[derive(Clone, Copy, Debug, Default)]
pub struct StatusJson<R>(pub R);

impl<B, R> RejectionResponse<B> for StatusJson<R>
where
    B: From<String>,
    R: RejectionResponse<B>,
{
    fn respond(&self, reason: RejectReason) -> Response<B> {
        self.0.respond(reason)
    }

    /// The wrapped responder's status answer if it builds one, else the
    /// JSON of [`SessionStatus::to_json`].
    fn status(&self, status: &SessionStatus) -> Option<Response<B>> {
        if let Some(response) = self.0.status(status) {
            return Some(response);
        }
        let mut response = Response::new(B::from(status.to_json()));
        *response.status_mut() = StatusCode::OK;
        response
            .headers_mut()
            .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        Some(response)
    }
}
