//! [`RecentLoginFuture`]: the inner service's response, or the refusal.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use http::Response;
use pin_project_lite::pin_project;

pin_project! {
    /// The response future of [`RecentLogin`](super::RecentLogin).
    pub struct RecentLoginFuture<F, B> {
        #[pin]
        state: State<F, B>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<F, B> {
        Called {
            #[pin]
            future: F,
        },
        Answered {
            response: Option<Response<B>>,
        },
    }
}

impl<F, B> RecentLoginFuture<F, B> {
    pub(super) fn called(future: F) -> Self {
        RecentLoginFuture {
            state: State::Called { future },
        }
    }

    pub(super) fn answered(response: Response<B>) -> Self {
        RecentLoginFuture {
            state: State::Answered {
                response: Some(response),
            },
        }
    }
}

impl<F, B, E> Future for RecentLoginFuture<F, B>
where
    F: Future<Output = Result<Response<B>, E>>,
{
    type Output = Result<Response<B>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().state.project() {
            StateProj::Called { future } => future.poll(cx),
            StateProj::Answered { response } => Poll::Ready(Ok(response
                .take()
                .expect("RecentLoginFuture polled after completion"))),
        }
    }
}
