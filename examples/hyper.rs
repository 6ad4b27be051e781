//! Run with `cargo run --example hyper`, then try:
//!
//! ```text
//! curl -i -c jar -b jar -X POST 'http://127.0.0.1:3001/login?user=alice'  # 303, Set-Cookie
//! curl -i -c jar -b jar http://127.0.0.1:3001/me                          # 200 alice
//! curl -i -c jar -b jar -X POST http://127.0.0.1:3001/logout              # 200, cookie cleared
//! curl -i -c jar -b jar http://127.0.0.1:3001/me                          # 401
//! ```
//!
//! `SessionLifetimeLayer` on a plain hyper 1 server, without axum: a
//! `tower::ServiceBuilder` stack adapted with `TowerToHyperService`. The
//! handler finds the session with `SessionHandle::from_extensions`. The layer
//! keeps its default of rejecting an expired or unknown session cookie with
//! `401` (and clearing it) before the handler runs. `PORT` overrides the port
//! (default 3001).

use std::convert::Infallible;
use std::net::{Ipv4Addr, SocketAddr};
use std::process::ExitCode;
use std::time::Duration;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::header::{ALLOW, CONTENT_TYPE, LOCATION};
use hyper::server::conn::http1;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tower::ServiceBuilder;
use tower_session_lifetime::{MemoryStore, SessionError, SessionHandle, SessionLifetimeLayer};

const DEFAULT_PORT: u16 = 3001;

#[tokio::main]
async fn main() -> ExitCode {
    let port = match std::env::var("PORT") {
        Err(_) => DEFAULT_PORT,
        Ok(value) => match value.trim().parse() {
            Ok(port) => port,
            Err(_) => {
                eprintln!("hyper example: PORT={value:?} is not a port number (0-65535)");
                return ExitCode::from(2);
            }
        },
    };

    let service = ServiceBuilder::new()
        .layer(SessionLifetimeLayer::new(MemoryStore::new()))
        .service_fn(handler);

    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let listener = match TcpListener::bind(addr).await {
        Ok(listener) => listener,
        Err(err) => {
            eprintln!("hyper example: cannot listen on {addr}: {err}");
            return ExitCode::FAILURE;
        }
    };
    println!(
        "listening on http://{}",
        listener.local_addr().unwrap_or(addr)
    );

    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(err) => {
                // Out of file descriptors and the like: wait, then go on.
                eprintln!("hyper example: accept failed: {err}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let service = TowerToHyperService::new(service.clone());
        tokio::spawn(async move {
            if let Err(err) = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await
            {
                eprintln!("hyper example: connection error: {err}");
            }
        });
    }
}

async fn handler(request: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let session = match SessionHandle::from_extensions(request.extensions()) {
        Ok(session) => session,
        Err(missing) => return Ok(text(StatusCode::INTERNAL_SERVER_ERROR, missing.to_string())),
    };
    let response = match (request.method(), request.uri().path()) {
        (&Method::POST, "/login") => {
            let user = request
                .uri()
                .query()
                .and_then(|query| query_param(query, "user"))
                .unwrap_or_default();
            if user.trim().is_empty() {
                return Ok(text(
                    StatusCode::BAD_REQUEST,
                    "usage: POST /login?user=NAME",
                ));
            }
            match session.login(user.trim(), false).await {
                Ok(()) => {
                    let mut response = text(StatusCode::SEE_OTHER, "signed in; see /me");
                    response
                        .headers_mut()
                        .insert(LOCATION, "/me".parse().expect("a valid header value"));
                    response
                }
                Err(err) => failure(err),
            }
        }
        (&Method::GET, "/me") => match (session.subject(), session.deadlines()) {
            (Some(subject), Some(deadlines)) => {
                let absolute = deadlines
                    .absolute
                    .map_or_else(|| "none".to_owned(), |at| at.as_unix_secs().to_string());
                text(
                    StatusCode::OK,
                    format!(
                        "{subject}\nidle deadline: {} (Unix seconds)\nabsolute deadline: {absolute}",
                        deadlines.idle.as_unix_secs(),
                    ),
                )
            }
            _ => text(StatusCode::UNAUTHORIZED, "not signed in"),
        },
        (&Method::POST, "/logout") => match session.logout().await {
            Ok(()) => text(StatusCode::OK, "signed out"),
            Err(err) => failure(err),
        },
        (_, "/login" | "/logout") => not_allowed("POST"),
        (_, "/me") => not_allowed("GET"),
        _ => text(StatusCode::NOT_FOUND, "not found"),
    };
    Ok(response)
}

/// A store failure is `503`; anything else (a subject that is too long, the
/// OS random generator failing) is refused with a matching status.
fn failure(err: SessionError) -> Response<Full<Bytes>> {
    eprintln!("hyper example: session operation failed: {err}");
    let status = match err {
        SessionError::Store(_) => StatusCode::SERVICE_UNAVAILABLE,
        SessionError::SubjectTooLong { .. } => StatusCode::BAD_REQUEST,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    };
    text(status, err.to_string())
}

fn text(status: StatusCode, body: impl Into<String>) -> Response<Full<Bytes>> {
    let mut body = body.into();
    body.push('\n');
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response.headers_mut().insert(
        CONTENT_TYPE,
        "text/plain; charset=utf-8"
            .parse()
            .expect("a valid header value"),
    );
    response
}

fn not_allowed(allow: &'static str) -> Response<Full<Bytes>> {
    let mut response = text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed");
    response
        .headers_mut()
        .insert(ALLOW, hyper::header::HeaderValue::from_static(allow));
    response
}

/// The first value of `name` in a query string, percent- and `+`-decoded.
fn query_param(query: &str, name: &str) -> Option<String> {
    query.split('&').find_map(|pair| {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        (percent_decode(key) == name).then(|| percent_decode(value))
    })
}

fn percent_decode(text: &str) -> String {
    let hex = |byte: u8| (byte as char).to_digit(16);
    let bytes = text.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped = match bytes.get(i..i + 3) {
            Some(&[b'%', high, low]) => hex(high).zip(hex(low)),
            _ => None,
        };
        match (escaped, bytes[i]) {
            (Some((high, low)), _) => {
                decoded.push((high * 16 + low) as u8);
                i += 3;
                continue;
            }
            (None, b'+') => decoded.push(b' '),
            (None, byte) => decoded.push(byte),
        }
        i += 1;
    }
    String::from_utf8_lossy(&decoded).into_owned()
}
