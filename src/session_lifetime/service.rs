//! [`SessionLifetime`]: the middleware service.

use std::sync::Arc;
use std::task::{Context, Poll};

use http::{Request, Response};
use tower_service::Service;

use super::check::{after_check, refuse, start_check, too_many_guesses, Activity, Started};
use super::finish::{call_with, Next};
use super::status::{self, method_not_allowed, status_request, StatusRequest};
use super::{Config, ResponseFuture};
use crate::handle::SessionHandle;
use crate::rejection::{RejectReason, RejectionResponse};
use crate::session_cookie::CookieLookup;

/// The service [`SessionLifetimeLayer`](crate::SessionLifetimeLayer) wraps
/// around an inner service. Its error type is the inner service's: store
/// failures become responses, never errors.
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
}

impl<S, R> SessionLifetime<S, R> {
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
        let config = &self.config;
        let responder = &self.responder;
        let lookup = config.cookie.read(request.headers());
        if !matches!(lookup, CookieLookup::Absent) {
            if let Some(response) = too_many_guesses(config, responder, &request) {
                return ResponseFuture::answered(response);
            }
        }
        let id = match lookup {
            CookieLookup::Absent => {
                return ResponseFuture::answered(status::refused(responder, RejectReason::Missing))
            }
            CookieLookup::Rejected(reason) => {
                let response = status::refused_cookie(config, responder, &request, reason);
                return ResponseFuture::answered(response);
            }
            CookieLookup::Found(id) => id,
        };
        let choice = config.policies.choose(&request);
        match start_check(config, id, activity, choice) {
            Started::Done(checked) => {
                let response = status::answer(config, responder, &request, checked, choice);
                ResponseFuture::answered(response)
            }
            Started::Pending(check) => ResponseFuture::checking_status(
                check,
                request,
                Arc::clone(config),
                responder.clone(),
                choice,
            ),
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

    fn call(&mut self, request: Request<ReqBody>) -> Self::Future {
        let activity = match status_request(&self.config, &request) {
            StatusRequest::No => Activity::Counts,
            StatusRequest::Report(activity) => return self.status(request, activity),
            StatusRequest::MethodNotAllowed => {
                return ResponseFuture::answered(method_not_allowed());
            }
            StatusRequest::CrossSite => return ResponseFuture::answered(status::forbidden()),
        };
        let lookup = self.config.cookie.read(request.headers());
        if !matches!(lookup, CookieLookup::Absent) {
            if let Some(response) = too_many_guesses(&self.config, &self.responder, &request) {
                return ResponseFuture::from_next(Next::Respond(response), &mut self.inner);
            }
        }
        let choice = self.config.policies.choose(&request);
        let next = match lookup {
            CookieLookup::Absent => {
                let handle =
                    SessionHandle::visitor(Arc::clone(&self.config), choice, None, false, None);
                call_with(
                    &self.config,
                    &self.responder,
                    request,
                    handle,
                    None,
                    None,
                    false,
                )
            }
            CookieLookup::Rejected(reason) => {
                refuse(&self.config, &self.responder, request, reason, None, choice)
            }
            CookieLookup::Found(id) => match start_check(&self.config, id, activity, choice) {
                Started::Done(checked) => {
                    after_check(&self.config, &self.responder, request, checked, choice)
                }
                Started::Pending(check) => {
                    // The store is asked before the inner service is called,
                    // so the service that was driven to readiness moves into
                    // the future and a clone stays here for the next request.
                    let ready = self.inner.clone();
                    let ready = std::mem::replace(&mut self.inner, ready);
                    return ResponseFuture::checking(
                        check,
                        ready,
                        request,
                        Arc::clone(&self.config),
                        self.responder.clone(),
                        choice,
                    );
                }
            },
        };
        ResponseFuture::from_next(next, &mut self.inner)
    }
}
