//! [`ResponseFuture`]: the store check, then the inner service, then the
//! cookie.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use http::{Request, Response};
use pin_project_lite::pin_project;
use tower_service::Service;

use super::check::CheckFuture;
use super::context::OwnedContext;
use super::decide::after_check;
use super::finish::{Finish, Next};
use super::follow::{CookieEdit, Settle};
use super::status_request as status;
use crate::rejection::RejectionResponse;

type SettleFuture = Pin<Box<dyn Future<Output = CookieEdit> + Send>>;

pin_project! {
    /// The response future of [`SessionLifetime`](crate::session_lifetime::SessionLifetime).
    pub struct ResponseFuture<S, ReqBody, R>
    where
        S: Service<Request<ReqBody>>,
    {
        #[pin]
        state: State<S, ReqBody, R>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<S, ReqBody, R>
    where
        S: Service<Request<ReqBody>>,
    {
        Checking {
            check: CheckFuture,
            // Boxed: only requests that wait for the store carry it, and
            // the future stays small for the rest.
            pending: Option<Box<Pending<S, ReqBody, R>>>,
        },
        // A status request waiting for the store; the layer answers it.
        CheckingStatus {
            check: CheckFuture,
            pending: Option<Box<PendingStatus<ReqBody, R>>>,
        },
        Calling {
            #[pin]
            future: S::Future,
            finish: Option<Finish<R>>,
        },
        // A followed cookie's new or ended session being written to the
        // store before the response goes out.
        Settling {
            settle: SettleFuture,
            response: Option<S::Response>,
            finish: Option<Finish<R>>,
        },
        Answered {
            response: Option<S::Response>,
        },
    }
}

struct Pending<S, ReqBody, R> {
    inner: S,
    request: Request<ReqBody>,
    context: OwnedContext<R>,
}

struct PendingStatus<ReqBody, R> {
    request: Request<ReqBody>,
    context: OwnedContext<R>,
}

impl<S, ReqBody, R> ResponseFuture<S, ReqBody, R>
where
    S: Service<Request<ReqBody>>,
{
    /// A response the layer gives without calling the inner service.
    pub(crate) fn answered(response: S::Response) -> Self {
        ResponseFuture {
            state: State::Answered {
                response: Some(response),
            },
        }
    }

    /// A status request, answered once its session is checked.
    pub(crate) fn checking_status(
        check: CheckFuture,
        request: Request<ReqBody>,
        context: OwnedContext<R>,
    ) -> Self {
        let pending = PendingStatus { request, context };
        ResponseFuture {
            state: State::CheckingStatus {
                check,
                pending: Some(Box::new(pending)),
            },
        }
    }

    /// A request whose session is being checked, then called with `inner`.
    pub(crate) fn checking(
        check: CheckFuture,
        inner: S,
        request: Request<ReqBody>,
        context: OwnedContext<R>,
    ) -> Self {
        let pending = Pending {
            inner,
            request,
            context,
        };
        ResponseFuture {
            state: State::Checking {
                check,
                pending: Some(Box::new(pending)),
            },
        }
    }

    /// The inner service called with `request`, or the layer's answer, as
    /// `next` says.
    pub(crate) fn from_next<ResBody>(
        next: Next<ResBody, R>,
        inner: &mut S,
        request: Request<ReqBody>,
    ) -> Self
    where
        S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    {
        let state = match next {
            Next::Call(finish) => State::Calling {
                future: inner.call(request),
                finish: Some(finish),
            },
            Next::Respond(response) => State::Answered {
                response: Some(response),
            },
        };
        ResponseFuture { state }
    }
}

impl<S, ReqBody, R> fmt::Debug for ResponseFuture<S, ReqBody, R>
where
    S: Service<Request<ReqBody>>,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match &self.state {
            State::Checking { .. } => "checking the session",
            State::CheckingStatus { .. } => "checking the session for a status request",
            State::Calling { .. } => "calling the inner service",
            State::Settling { .. } => "writing a followed session to the store",
            State::Answered { .. } => "answered",
        };
        f.debug_struct("ResponseFuture")
            .field("state", &state)
            .finish()
    }
}

impl<S, ReqBody, ResBody, R> Future for ResponseFuture<S, ReqBody, R>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    ResBody: Default,
    R: RejectionResponse<ResBody>,
{
    type Output = Result<Response<ResBody>, S::Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        loop {
            match this.state.as_mut().project() {
                StateProj::Checking { check, pending } => {
                    let checked = ready!(check.as_mut().poll(cx));
                    let Pending {
                        mut inner,
                        mut request,
                        context,
                    } = *pending
                        .take()
                        .expect("ResponseFuture polled after completion");
                    let next = after_check(context.borrow(), &mut request, checked);
                    let next = ResponseFuture::from_next(next, &mut inner, request);
                    this.state.set(next.state);
                }
                StateProj::CheckingStatus { check, pending } => {
                    let checked = ready!(check.as_mut().poll(cx));
                    let PendingStatus { request, context } = *pending
                        .take()
                        .expect("ResponseFuture polled after completion");
                    let response = status::answer(context.borrow(), &request, checked);
                    return Poll::Ready(Ok(response));
                }
                StateProj::Calling { future, finish } => {
                    let mut response = ready!(future.poll(cx))?;
                    let finish = finish
                        .take()
                        .expect("ResponseFuture polled after completion");
                    match finish.settle(&response) {
                        Settle::Now(edit) => {
                            finish.apply(edit, &mut response);
                            return Poll::Ready(Ok(response));
                        }
                        Settle::Later(settle) => this.state.set(State::Settling {
                            settle,
                            response: Some(response),
                            finish: Some(finish),
                        }),
                    }
                }
                StateProj::Settling {
                    settle,
                    response,
                    finish,
                } => {
                    let edit = ready!(settle.as_mut().poll(cx));
                    let (mut response, finish) = response
                        .take()
                        .zip(finish.take())
                        .expect("ResponseFuture polled after completion");
                    finish.apply(edit, &mut response);
                    return Poll::Ready(Ok(response));
                }
                StateProj::Answered { response } => {
                    let response = response
                        .take()
                        .expect("ResponseFuture polled after completion");
                    return Poll::Ready(Ok(response));
                }
            }
        }
    }
}
