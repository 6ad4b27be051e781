//! [`SessionLifetime`]: the middleware service.

use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::{Request, Response};
use tower_service::Service;

use super::check::{start_check, Activity, Started};
use super::context::RequestContext;
use super::decide::{after_check, refuse, too_many_guesses};
use super::finish::{call_with, Entry};
use super::future::ResponseFuture;
use super::status_request::{self as status, method_not_allowed, status_request, StatusRequest};
use crate::config::Config;
use crate::handle::SessionHandle;
use crate::policy::PolicyChoice;
use crate::rejection::{RejectReason, RejectionResponse};
use crate::session_cookie::CookieLookup;

/// The service [`SessionLifetimeLayer`](crate::SessionLifetimeLayer) wraps
/// around an inner service. Its error type is the inner service's: store
/// failures become responses, never errors.
///
/// It is `Debug` when the inner service is, whatever the rejection
/// responder (a closure shows as its type's name), and gives the inner
/// service back with [`get_ref`](Self::get_ref),
/// [`get_mut`](Self::get_mut) and [`into_inner`](Self::into_inner).
///
/// ```
/// use http::{Response, StatusCode};
/// use tower_layer::Layer;
/// use tower_session_lifetime::{rejection::RejectReason, MemoryStore, SessionLifetimeLayer};
///
/// #[derive(Debug)]
/// struct Inner {
///     served: u32,
/// }
///
/// let layer = SessionLifetimeLayer::new(MemoryStore::new()).reject_with(|_reason: RejectReason| {
///     Response::builder()
///         .status(StatusCode::UNAUTHORIZED)
///         .body(String::new())
///         .unwrap()
/// });
/// let mut service = layer.layer(Inner { served: 0 });
/// assert!(format!("{service:?}").contains("served: 0"));
/// service.get_mut().served += 1;
/// assert_eq!(service.get_ref().served, 1);
/// assert_eq!(service.into_inner().served, 1);
/// ```
#[derive(Clone)]
pub struct SessionLifetime<S, R> {
    inner: S,
    config: Arc<Config>,
    responder: R,
}

impl<S, R> SessionLifetime<S, R> {
    pub(crate) fn new(inner: S, config: Arc<Config>, responder: R) -> Self {
        SessionLifetime {
            inner,
            config,
            responder,
        }
    }

    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The inner service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// The inner service, unwrapped.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

/// `Debug` whatever the responder is: a `reject_with` closure has no
/// `Debug` of its own, so the responder shows as its type's name.
impl<S: fmt::Debug, R> fmt::Debug for SessionLifetime<S, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionLifetime")
            .field("inner", &self.inner)
            .field("responder", &std::any::type_name::<R>())
            .field("policies", &self.config.policies)
            .finish_non_exhaustive()
    }
}

impl<S, R> SessionLifetime<S, R> {
    /// What every step of a request needs, judged by `choice`.
    fn context(&self, choice: PolicyChoice) -> RequestContext<'_, R> {
        RequestContext {
            config: &self.config,
            responder: &self.responder,
            choice,
            presented_text: None,
        }
    }

    /// Answers a status request: the same check as any request (no writes
    /// to a live session unless `activity` counts), then the layer's own
    /// answer instead of the inner service's.
    fn status<ReqBody, ResBody>(
        &mut self,
        request: Request<ReqBody>,
        activity: Activity,
    ) -> ResponseFuture<S, ReqBody, R>
    where
        S: Service<Request<ReqBody>, Response = Response<ResBody>>,
        ResBody: Default,
        R: RejectionResponse<ResBody>,
    {
        let lookup = self.config.cookie.read(request.headers());
        let context = self.context(self.config.policies.choose(&request));
        if !matches!(lookup, CookieLookup::Absent) {
            if let Some(response) = too_many_guesses(context, &request) {
                return ResponseFuture::answered(response);
            }
        }
        let id = match lookup {
            CookieLookup::Absent => {
                let response = status::refused(context.responder, RejectReason::Missing);
                return ResponseFuture::answered(response);
            }
            CookieLookup::Rejected(reason) => {
                let response = status::refused_cookie(context, &request, reason);
                return ResponseFuture::answered(response);
            }
            CookieLookup::Found(id, _) => id,
        };
        match start_check(context.config, id, activity, context.choice) {
            Started::Done(checked) => {
                ResponseFuture::answered(status::answer(context, &request, checked))
            }
            Started::Pending(check) => {
                ResponseFuture::checking_status(check, request, context.to_owned())
            }
        }
    }
}

impl<S, R, ReqBody, ResBody> Service<Request<ReqBody>> for SessionLifetime<S, R>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone,
    ResBody: Default,
    R: RejectionResponse<ResBody>,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = ResponseFuture<S, ReqBody, R>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<ReqBody>) -> Self::Future {
        let activity = match status_request(&self.config, &request) {
            StatusRequest::No => Activity::Counts,
            StatusRequest::Report(activity) => return self.status(request, activity),
            StatusRequest::MethodNotAllowed => {
                return ResponseFuture::answered(method_not_allowed());
            }
            StatusRequest::CrossSite => return ResponseFuture::answered(status::forbidden()),
        };
        let lookup = self.config.cookie.read(request.headers());
        let presented_text = match &lookup {
            CookieLookup::Found(_, text) if self.config.followed => *text,
            _ => None,
        };
        let context = RequestContext {
            config: &self.config,
            responder: &self.responder,
            choice: self.config.policies.choose(&request),
            presented_text: presented_text.as_ref(),
        };
        if !matches!(lookup, CookieLookup::Absent) {
            if let Some(response) = too_many_guesses(context, &request) {
                return ResponseFuture::answered(response);
            }
        }
        let next = match lookup {
            CookieLookup::Absent => {
                let config = Arc::clone(context.config);
                let handle = SessionHandle::visitor(config, context.choice, None, false, None);
                call_with(context, &mut request, handle, Entry::Visitor)
            }
            CookieLookup::Rejected(reason) => refuse(context, &mut request, reason, None),
            CookieLookup::Found(id, _) => {
                match start_check(context.config, id, activity, context.choice) {
                    Started::Done(checked) => after_check(context, &mut request, checked),
                    Started::Pending(check) => {
                        let context = context.to_owned();
                        // The store is asked before the inner service is
                        // called, so the service that was driven to
                        // readiness moves into the future and a clone stays
                        // here for the next request.
                        let ready = self.inner.clone();
                        let ready = std::mem::replace(&mut self.inner, ready);
                        return ResponseFuture::checking(check, ready, request, context);
                    }
                }
            }
        };
        ResponseFuture::from_next(next, &mut self.inner, request)
    }
}
