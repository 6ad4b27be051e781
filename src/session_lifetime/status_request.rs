//! Status requests: the layer's own answer at the
//! [status endpoint](crate::status), after the same check as any request.

use std::sync::Arc;

use http::header::ALLOW;
use http::{HeaderValue, Method, Request, Response, StatusCode};

use super::check::{Activity, Checked};
use super::context::RequestContext;
use super::decide::count_guess;
use crate::config::Config;
use crate::deadline_headers::DeadlineHeaders;
use crate::handle::SessionHandle;
use crate::observe;
use crate::rejection::{RejectReason, RejectionResponse};
use crate::session_cookie::forbid_caching;
use crate::status::SessionStatus;

/// What a request to the layer is, as far as status goes.
pub(crate) enum StatusRequest {
    /// Not for the status endpoint: the inner service's.
    No,
    /// A status request: `Activity::Ignored` for a `GET`, `Forced` for a
    /// `POST`.
    Report(Activity),
    /// For the status endpoint, with a method it does not answer.
    MethodNotAllowed,
    /// A `POST` a browser says another site sent.
    CrossSite,
}

/// Whether `request` is for the status endpoint, and how.
pub(crate) fn status_request<B>(config: &Config, request: &Request<B>) -> StatusRequest {
    let Some(endpoint) = &config.status else {
        return StatusRequest::No;
    };
    if request.uri().path() != endpoint.path() {
        return StatusRequest::No;
    }
    match *request.method() {
        Method::GET | Method::HEAD => StatusRequest::Report(Activity::Ignored),
        Method::POST if sent_from_another_site(request) => StatusRequest::CrossSite,
        Method::POST => StatusRequest::Report(Activity::Forced),
        // A CORS preflight, for a CORS layer inside this one.
        Method::OPTIONS => StatusRequest::No,
        _ => StatusRequest::MethodNotAllowed,
    }
}

/// Whether the browser says the request comes from a page of another site
/// (`Sec-Fetch-Site`, sent by every current browser; absent from other
/// clients, which are let through).
fn sent_from_another_site<B>(request: &Request<B>) -> bool {
    request
        .headers()
        .get("sec-fetch-site")
        .is_some_and(|site| site != "same-origin" && site != "none")
}

/// `403 Forbidden`: a status `POST` from another site.
pub(crate) fn forbidden<B: Default>() -> Response<B> {
    let mut response = Response::new(B::default());
    *response.status_mut() = StatusCode::FORBIDDEN;
    forbid_caching(response.headers_mut());
    response
}

/// `405 Method Not Allowed`, naming the methods the endpoint answers.
pub(crate) fn method_not_allowed<B: Default>() -> Response<B> {
    let mut response = Response::new(B::default());
    *response.status_mut() = StatusCode::METHOD_NOT_ALLOWED;
    response
        .headers_mut()
        .insert(ALLOW, HeaderValue::from_static("GET, HEAD, POST"));
    forbid_caching(response.headers_mut());
    response
}

/// The answer to a status request whose session was checked: the status
/// of a live session, or the refusal.
pub(crate) fn answer<ReqBody, ResBody, R>(
    context: RequestContext<'_, R>,
    request: &Request<ReqBody>,
    checked: Checked,
) -> Response<ResBody>
where
    ResBody: Default,
    R: RejectionResponse<ResBody>,
{
    let (config, responder) = (context.config, context.responder);
    let (session, touched, renewed) = match checked {
        Checked::Admitted {
            session,
            touched,
            renewed,
        } => (session, touched, renewed),
        Checked::Refused { reason, .. } => return refused_cookie(context, request, reason),
        Checked::StoreFailed { error, .. } => {
            tracing::warn!(error = %error, "session store failed; status not known");
            return refused(responder, RejectReason::StoreUnavailable);
        }
    };
    observe::admitted(config.metrics.as_ref());
    let status = SessionStatus::new(
        session.deadlines,
        session.record.remember_me,
        config.clock.now(),
    );
    let built = responder.status(&status);
    let headers_only = built.is_none();
    let mut response = built.unwrap_or_else(|| Response::new(ResBody::default()));
    let headers = response.headers_mut();
    match (&config.deadline_headers, headers_only) {
        (Some(names), _) => names.write(&status.deadlines, headers),
        // The headers are then the only answer, under their default names.
        (None, true) => DeadlineHeaders::new().write(&status.deadlines, headers),
        (None, false) => {}
    }
    // A `POST` may have renewed the ID or refreshed a remember-me cookie.
    SessionHandle::admitted(
        Arc::clone(config),
        context.choice,
        session,
        touched,
        renewed,
    )
    .write_cookie(headers);
    forbid_caching(headers);
    response
}

/// A status request whose session cookie was not admitted: the cookie is
/// cleared, and counted as a guess where it looks like one.
pub(crate) fn refused_cookie<ReqBody, ResBody, R: RejectionResponse<ResBody>>(
    context: RequestContext<'_, R>,
    request: &Request<ReqBody>,
    reason: RejectReason,
) -> Response<ResBody> {
    let config = context.config;
    tracing::info!(
        reason = reason.as_str(),
        "status request: session not admitted"
    );
    count_guess(config, request, reason);
    let mut response = refused(context.responder, reason);
    config.cookie.append_removal(response.headers_mut());
    response
}

/// A status request without a session to report: no cookie, one that was
/// not admitted, or a store that failed.
pub(crate) fn refused<ResBody, R: RejectionResponse<ResBody>>(
    responder: &R,
    reason: RejectReason,
) -> Response<ResBody> {
    let mut response = responder.respond(reason);
    forbid_caching(response.headers_mut());
    response.extensions_mut().insert(reason);
    response
}
