//! [`RecentLogin`]: the guard's service.

use std::task::{Context, Poll};

use http::{Request, Response, StatusCode};
use tower_layer::Layer;
use tower_service::Service;

use super::future::ResponseFuture;
use super::layer::{OnStaleLogin, RecentLoginLayer};
use crate::handle::SessionHandle;
use crate::rejection::{see_other, RejectReason};

/// The service [`RecentLoginLayer`] wraps around an inner service.
#[derive(Clone, Debug)]
pub struct RecentLogin<S> {
    inner: S,
    config: RecentLoginLayer,
}

impl<S> RecentLogin<S> {
    pub(super) fn new(inner: S, config: RecentLoginLayer) -> Self {
        RecentLogin { inner, config }
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

    /// The answer to a request whose login is not recent enough.
    fn refuse<B: Default>(&self, reason: RejectReason) -> Response<B> {
        let mut response = match &self.config.on_stale {
            OnStaleLogin::Redirect(location) => see_other(location.clone()),
            OnStaleLogin::Reject => {
                let mut response = Response::new(B::default());
                *response.status_mut() = StatusCode::UNAUTHORIZED;
                response
            }
        };
        response.extensions_mut().insert(reason);
        response
    }
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for RecentLogin<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    ResBody: Default,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future, ResBody>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<ReqBody>) -> Self::Future {
        let Ok(handle) = SessionHandle::from_extensions(request.extensions()) else {
            // Installed without the lifetime layer outside it: a mistake in
            // the app, not the user's.
            tracing::error!("RecentLoginLayer without a SessionLifetimeLayer around it");
            let mut response = Response::new(ResBody::default());
            *response.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
            return ResponseFuture::answered(response);
        };
        if !handle.is_active() {
            return ResponseFuture::answered(self.refuse(RejectReason::Missing));
        }
        if !handle.authenticated_within(self.config.max_age) {
            tracing::info!(
                reason = RejectReason::LoginTooOld.as_str(),
                "login not recent enough for this route"
            );
            return ResponseFuture::answered(self.refuse(RejectReason::LoginTooOld));
        }
        ResponseFuture::called(self.inner.call(request))
    }
}

// Beside the service it builds, so that the layer's module needs nothing
// from this one.
impl<S> Layer<S> for RecentLoginLayer {
    type Service = RecentLogin<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RecentLogin::new(inner, self.clone())
    }
}
