//! How many heap allocations the layer makes per request, counted by a
//! counting allocator: the layer around an inner service that allocates
//! nothing, the request built before counting starts, the response future
//! polled by hand on this thread.
//!
//! An admitted request that needs no store write makes one allocation of
//! the layer's own: the box `http::Extensions` keeps the `SessionHandle`
//! in. The handle's shared state is reused from the previous request on
//! the thread (none of it is kept by the handler). On a request whose
//! extension map is still empty, `http` allocates the map too (its box and
//! its table): three in all. An axum router has made the map before a
//! layer given to `Router::layer` runs, so there the layer adds one. A
//! request without a session cookie makes the same. A test, not a
//! benchmark: a new allocation on this path fails it.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use http::{header, Request, Response};
use tower::{Layer, Service, ServiceExt};
use tower_session_lifetime::{MemoryStore, SessionHandle, SessionLifetimeLayer};

/// Counts the allocations of this thread.
struct Counting;

thread_local! {
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

// SAFETY: every call is passed on to the system allocator unchanged; the
// count is a thread-local `Cell` that needs no allocation.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.with(|count| count.set(count.get() + 1));
        // SAFETY: the caller's contract, passed on.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: the caller's contract, passed on.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.with(|count| count.set(count.get() + 1));
        // SAFETY: the caller's contract, passed on.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

fn allocations() -> u64 {
    ALLOCATIONS.with(Cell::get)
}

/// Polls `future` on this thread until it is ready; the layer over
/// `MemoryStore` never waits on an admitted request that writes nothing.
fn ready<F: Future>(future: F) -> F::Output {
    let mut future = pin!(future);
    let mut context = Context::from_waker(Waker::noop());
    for _ in 0..1000 {
        if let Poll::Ready(output) = future.as_mut().poll(&mut context) {
            return output;
        }
    }
    panic!("the future did not finish without waiting");
}

/// The inner service: answers at once, allocating nothing, and says
/// whether the layer admitted the request.
fn inner(
    request: Request<()>,
) -> std::future::Ready<Result<Response<()>, std::convert::Infallible>> {
    let admitted = request
        .extensions()
        .get::<SessionHandle>()
        .is_some_and(SessionHandle::is_active);
    let status = if admitted { 200 } else { 204 };
    let mut response = Response::new(());
    *response.status_mut() = http::StatusCode::from_u16(status).expect("a status");
    std::future::ready(Ok(response))
}

/// One request through `service`, and how many allocations it made
/// (building the request is not counted; dropping the response is).
fn send<S>(service: &mut S, request: Request<()>) -> (Response<()>, u64)
where
    S: Service<Request<()>, Response = Response<()>, Error = std::convert::Infallible>,
{
    let before = allocations();
    let response = ready(async {
        ServiceExt::<Request<()>>::ready(&mut *service)
            .await
            .expect("ready");
        service.call(request).await.expect("infallible")
    });
    (response, allocations() - before)
}

/// The layer over an inner service that allocates nothing and logs in on
/// `/login`, and the `Cookie` header of a session it started.
fn layer_with_session() -> (impl LayerService, String) {
    let layer = SessionLifetimeLayer::new(MemoryStore::new());
    let mut service = layer.layer(tower::service_fn(|request: Request<()>| {
        let login = request.uri().path() == "/login";
        let handle = request.extensions().get::<SessionHandle>().cloned();
        async move {
            if login {
                let handle = handle.expect("the layer's handle");
                handle.login("alice", false).await.expect("login");
            }
            inner(request).await
        }
    }));
    let (response, _) = send(&mut service, Request::get("/login").body(()).unwrap());
    let cookie = response.headers()[header::SET_COOKIE]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    (service, cookie)
}

trait LayerService:
    Service<Request<()>, Response = Response<()>, Error = std::convert::Infallible>
{
}

impl<S> LayerService for S where
    S: Service<Request<()>, Response = Response<()>, Error = std::convert::Infallible>
{
}

/// An extension a router puts into every request before the layer runs.
#[derive(Clone)]
struct FromTheRouter;

/// A request for `/`, with `cookie` if given, and with its extension map
/// already made (as a router leaves it) if `routed`.
fn request(cookie: Option<&str>, routed: bool) -> Request<()> {
    let mut request = Request::get("/");
    if let Some(cookie) = cookie {
        request = request.header(header::COOKIE, cookie);
    }
    let mut request = request.body(()).unwrap();
    if routed {
        request.extensions_mut().insert(FromTheRouter);
    }
    request
}

#[test]
fn an_admitted_request_and_a_visitor_make_three_allocations() {
    let (mut service, cookie) = layer_with_session();
    for _ in 0..3 {
        let (response, made) = send(&mut service, request(Some(&cookie), false));
        assert_eq!(response.status(), 200, "not admitted");
        assert_eq!(made, 3, "allocations of an admitted request");
        drop(response);

        let (response, made) = send(&mut service, request(None, false));
        assert_eq!(response.status(), 204, "a visitor was admitted");
        assert_eq!(made, 3, "allocations of a request without a cookie");
    }
}

#[test]
fn behind_a_router_the_layer_makes_one_allocation() {
    let (mut service, cookie) = layer_with_session();
    for _ in 0..3 {
        let (response, made) = send(&mut service, request(Some(&cookie), true));
        assert_eq!(response.status(), 200, "not admitted");
        assert_eq!(made, 1, "allocations of an admitted request");
        drop(response);

        let (response, made) = send(&mut service, request(None, true));
        assert_eq!(response.status(), 204, "a visitor was admitted");
        assert_eq!(made, 1, "allocations of a request without a cookie");
    }
}

#[test]
fn a_handle_the_handler_keeps_is_not_reused() {
    let layer = SessionLifetimeLayer::new(MemoryStore::new());
    let kept = std::sync::Arc::new(std::sync::Mutex::new(Vec::with_capacity(16)));
    let store = std::sync::Arc::clone(&kept);
    let mut service = layer.layer(tower::service_fn(move |request: Request<()>| {
        let login = request.uri().path() == "/login";
        let handle: SessionHandle = request.extensions().get().cloned().expect("a handle");
        store.lock().unwrap().push(handle.clone());
        async move {
            if login {
                handle.login("alice", false).await.expect("login");
            }
            inner(request).await
        }
    }));
    let (response, _) = send(&mut service, Request::get("/login").body(()).unwrap());
    let cookie = response.headers()[header::SET_COOKIE].to_str().unwrap();
    let cookie = cookie.split(';').next().unwrap().to_owned();

    // Each request's handle stays with the handler, so each needs its own
    // state (one more allocation: its `Arc`), and none changes another's.
    for _ in 0..3 {
        let (response, made) = send(&mut service, request(None, true));
        assert_eq!((response.status().as_u16(), made), (204, 2), "a visitor");
        let (response, made) = send(&mut service, request(Some(&cookie), true));
        assert_eq!((response.status().as_u16(), made), (200, 2), "admitted");
    }
    let kept = kept.lock().unwrap();
    let active: Vec<bool> = kept.iter().map(SessionHandle::is_active).collect();
    assert_eq!(active, [true, false, true, false, true, false, true]);
}
