//! A policy per tenant and per route group in one app (`Policies`), with a
//! manual clock: each tenant's limits, route groups that only shorten
//! them (a lengthening one is refused at startup), and the snapshot rule
//! per tenant.
#![cfg(feature = "axum")]

mod common;

use std::time::Duration;

use axum::body::Body;
use axum::routing::{get, post};
use common::{set_cookie, TestApp, MINUTE, TICK};
use http::{header, Request, StatusCode};
use tower_session_lifetime::{
    policy::{PoliciesBuilder, PolicyError, Setting, TenantFrom, Tightening},
    rejection::RejectReason,
    Policies, Policy, SessionHandle,
};

fn idle(minutes: u32) -> Policy {
    Policy::builder()
        .idle_timeout(minutes * MINUTE)
        .build()
        .unwrap()
}

/// Tenants `a.example` (idle 10 min) and `b.example` (idle 30 min), the
/// default (idle 20 min), and `/admin` at most 5 min idle for all.
fn two_tenants() -> PoliciesBuilder {
    Policies::builder(idle(20))
        .tenant("a.example", idle(10))
        .tenant("B.Example", idle(30))
        .route("/admin", Tightening::new().idle_timeout(5 * MINUTE))
}

async fn admin_me(session: SessionHandle) -> Result<String, StatusCode> {
    session.subject().ok_or(StatusCode::UNAUTHORIZED)
}

async fn admin_login(session: SessionHandle) -> StatusCode {
    match session.login("admin", false).await {
        Ok(()) => StatusCode::OK,
        Err(_) => StatusCode::SERVICE_UNAVAILABLE,
    }
}

fn app(policies: Policies) -> TestApp {
    TestApp::routed(|routes, layer| {
        routes
            .route("/admin/me", get(admin_me))
            .route("/administrators", get(admin_me))
            .route("/admin/login", post(admin_login))
            .layer(layer.with_policies(policies))
    })
}

async fn send(
    app: &TestApp,
    method: &str,
    host: &str,
    path: &str,
    cookie: Option<&str>,
) -> http::Response<Body> {
    let mut request = Request::builder()
        .method(method)
        .uri(path)
        .header(header::HOST, host);
    if let Some(cookie) = cookie {
        request = request.header(header::COOKIE, cookie);
    }
    app.send(request.body(Body::empty()).unwrap()).await
}

async fn login_at(app: &TestApp, host: &str, path: &str) -> String {
    let response = send(app, "POST", host, path, None).await;
    assert_eq!(response.status(), StatusCode::OK, "login at {host}{path}");
    let set = set_cookie(&response).unwrap();
    format!("{}={}", set.name(), set.value())
}

fn reason(response: &http::Response<Body>) -> Option<RejectReason> {
    response.extensions().get::<RejectReason>().copied()
}

#[tokio::test]
async fn two_tenants_in_one_app_live_by_their_own_limits() {
    let app = app(two_tenants().build().unwrap());
    let a = login_at(&app, "a.example", "/login?user=ann").await;
    let b = login_at(&app, "b.example:8080", "/login?user=bea").await;
    let other = login_at(&app, "other.example", "/login?user=oli").await;

    // Twenty minutes idle: past a.example's 10, at the default's 20 (at a
    // deadline is too late), within b.example's 30.
    app.advance(20 * MINUTE);
    let a_late = send(&app, "GET", "a.example", "/me", Some(&a)).await;
    assert_eq!(
        a_late.status(),
        StatusCode::UNAUTHORIZED,
        "a.example: idle 10 min"
    );
    assert_eq!(reason(&a_late), Some(RejectReason::IdleTimeout));
    assert_eq!(
        send(&app, "GET", "other.example", "/me", Some(&other))
            .await
            .status(),
        StatusCode::UNAUTHORIZED,
        "an unlisted tenant has the default's 20 min"
    );
    assert_eq!(
        send(&app, "GET", "b.example", "/me", Some(&b))
            .await
            .status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn a_route_group_tightens_the_limits_of_every_tenant() {
    let app = app(two_tenants().build().unwrap());
    let b = login_at(&app, "b.example", "/login?user=bea").await;
    let b2 = login_at(&app, "b.example", "/login?user=ben").await;
    app.advance(5 * MINUTE - TICK);
    assert_eq!(
        send(&app, "GET", "b.example", "/admin/me", Some(&b))
            .await
            .status(),
        StatusCode::OK
    );

    app.advance(5 * MINUTE);
    // Five minutes idle: too long for /admin, not for the rest of b.example.
    let admin = send(&app, "GET", "b.example", "/admin/me", Some(&b)).await;
    assert_eq!(admin.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(reason(&admin), Some(RejectReason::IdleTimeout));
    assert_eq!(
        send(&app, "GET", "b.example", "/me", Some(&b2))
            .await
            .status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn every_tenant_and_the_default_get_the_tightening_and_neighbours_do_not() {
    let app = app(two_tenants().build().unwrap());
    for host in ["a.example", "b.example", "other.example"] {
        let admin = login_at(&app, host, "/login?user=adele").await;
        let neighbour = login_at(&app, host, "/login?user=nick").await;
        app.advance(6 * MINUTE);
        let refused = send(&app, "GET", host, "/admin/me", Some(&admin)).await;
        assert_eq!(reason(&refused), Some(RejectReason::IdleTimeout), "{host}");
        // `/administrators` is not in `/admin`: the tenant's limit (at
        // least 10 min) applies.
        let outside = send(&app, "GET", host, "/administrators", Some(&neighbour)).await;
        assert_eq!(outside.status(), StatusCode::OK, "{host}");
    }
}

#[tokio::test]
async fn paths_that_reach_the_group_by_another_spelling_are_in_it() {
    let app = app(two_tenants().build().unwrap());
    for path in ["//admin/me", "/x/../admin/me", "/./admin/me", "/%61dmin/me"] {
        let cookie = login_at(&app, "b.example", "/login?user=pat").await;
        app.advance(6 * MINUTE);
        let response = send(&app, "GET", "b.example", path, Some(&cookie)).await;
        assert_eq!(reason(&response), Some(RejectReason::IdleTimeout), "{path}");
    }
}

/// An app whose admin pages are reached through axum's wildcard
/// (`/admin/{*rest}`) and a nested router (`/console` nesting `/{*rest}`):
/// each answers `admin` and the subject, so a test can see the handler ran.
fn app_with_wildcards(policies: Policies) -> TestApp {
    async fn admin_page(session: SessionHandle) -> Result<String, StatusCode> {
        session
            .subject()
            .map(|subject| format!("admin {subject}"))
            .ok_or(StatusCode::UNAUTHORIZED)
    }
    let console = axum::Router::new()
        .route("/", get(admin_page))
        .route("/{*rest}", get(admin_page));
    TestApp::routed(|routes, layer| {
        routes
            .route("/admin", get(admin_page))
            .route("/admin/{*rest}", get(admin_page))
            .nest("/console", console)
            .layer(layer.with_policies(policies))
    })
}

/// Every spelling of a path that the inner router may route into a route
/// group is judged by the group: dot segments (raw and escaped), empty
/// segments, escaped slashes, double escapes and backslashes, through
/// axum's wildcard and a nested router. Each spelling is sent after the
/// group's idle timeout (1 min) and within the default one (1 h).
#[tokio::test]
async fn no_spelling_of_a_path_sidesteps_a_route_group() {
    let policies = Policies::builder(idle(60))
        .route("/admin", Tightening::new().idle_timeout(MINUTE))
        .route("/console", Tightening::new().idle_timeout(MINUTE))
        .build()
        .unwrap();
    let app = app_with_wildcards(policies);
    let spellings = [
        "/admin/..",
        "/admin/../",
        "/admin/%2e%2e",
        "/admin/%2E%2E",
        "/admin/.%2e",
        "/admin/%2e.",
        "/admin/x/../..",
        "/admin/./..",
        "/admin/..%2f",
        "/admin//..",
        "/admin/%252e%252e",
        "/admin/..%5c",
        "/admin/x/%2e%2e/%2e%2e",
        "/admin/users/../../me",
        "/console/..",
        "/console/%2e%2e/",
        "/console//..",
        "/admin/../console/x",
        "/console/../admin/x",
        "/%61dmin/..",
        "/admin/%2f..",
    ];
    for path in spellings {
        let cookie = login_at(&app, "h.example", "/login?user=pat").await;
        app.advance(2 * MINUTE);
        let response = send(&app, "GET", "h.example", path, Some(&cookie)).await;
        let status = response.status();
        let refused = reason(&response);
        let body = common::body_text(response).await;
        assert!(
            !body.starts_with("admin "),
            "{path}: the admin handler ran with the session ({status}, {body})"
        );
        assert_eq!(refused, Some(RejectReason::IdleTimeout), "{path}");
    }
    // A session within the group's limits reaches the same handlers.
    for path in ["/admin", "/admin/users", "/console", "/console/logs"] {
        let cookie = login_at(&app, "h.example", "/login?user=pat").await;
        app.advance(MINUTE - TICK);
        let response = send(&app, "GET", "h.example", path, Some(&cookie)).await;
        assert_eq!(response.status(), StatusCode::OK, "{path}");
        assert_eq!(common::body_text(response).await, "admin pat", "{path}");
    }
    // And the rest of the app keeps the default policy.
    let cookie = login_at(&app, "h.example", "/login?user=pat").await;
    app.advance(30 * MINUTE);
    let response = send(&app, "GET", "h.example", "/me", Some(&cookie)).await;
    assert_eq!(response.status(), StatusCode::OK);
}

#[tokio::test]
async fn activity_in_a_route_group_does_not_shorten_the_session_elsewhere() {
    let app = app(two_tenants().build().unwrap());
    let cookie = login_at(&app, "b.example", "/login?user=bea").await;
    app.advance(MINUTE);
    // Activity in /admin: the store's expiry must still follow b.example's
    // 30 minutes, not /admin's 5.
    let admin = send(&app, "GET", "b.example", "/admin/me", Some(&cookie)).await;
    assert_eq!(admin.status(), StatusCode::OK);
    app.advance(10 * MINUTE);
    app.store.memory.sweep_expired();
    assert_eq!(
        send(&app, "GET", "b.example", "/me", Some(&cookie))
            .await
            .status(),
        StatusCode::OK,
        "10 minutes idle is fine outside /admin"
    );
}

#[tokio::test]
async fn a_tightened_idle_timeout_caps_remember_me_sessions_but_not_their_cookie() {
    let app = app(two_tenants().build().unwrap());
    let cookie = login_at(&app, "b.example", "/login?user=rem&remember=true").await;
    app.advance(MINUTE);
    let admin = send(&app, "GET", "b.example", "/admin/me", Some(&cookie)).await;
    assert_eq!(admin.status(), StatusCode::OK);
    // The persistent cookie's Max-Age follows the tenant's remember-me
    // period (14 days), not /admin's five minutes.
    let refreshed = set_cookie(&admin).expect("a refreshed remember-me cookie");
    let max_age = refreshed.max_age().unwrap().whole_seconds();
    assert!(max_age > 13 * 24 * 3600, "Max-Age {max_age}");
    app.advance(6 * MINUTE);
    let refused = send(&app, "GET", "b.example", "/admin/me", Some(&cookie)).await;
    assert_eq!(
        reason(&refused),
        Some(RejectReason::IdleTimeout),
        "remember-me too"
    );
}

#[tokio::test]
async fn a_session_started_in_a_route_group_keeps_the_tenants_limits_elsewhere() {
    let app = app(two_tenants().build().unwrap());
    let admin = login_at(&app, "b.example", "/admin/login").await;
    app.advance(20 * MINUTE);
    // Signed in on an admin page, idle 20 minutes: fine for b.example's 30.
    assert_eq!(
        send(&app, "GET", "b.example", "/me", Some(&admin))
            .await
            .status(),
        StatusCode::OK
    );
}

#[test]
fn a_route_group_that_lengthens_a_limit_is_refused_at_startup() {
    let err = two_tenants()
        .route("/reports", Tightening::new().idle_timeout(15 * MINUTE))
        .build()
        .unwrap_err();
    assert_eq!(
        err,
        PolicyError::LongerThanEnclosing {
            setting: Setting::IdleTimeout,
            value: 15 * MINUTE,
            enclosing: 10 * MINUTE,
            route: "/reports".into(),
            tenant: Some("a.example".into()),
        }
    );
    assert_eq!(
        err.to_string(),
        r#"idle timeout of 900s for "/reports" is longer than the 600s of tenant "a.example""#
    );

    let err = Policies::builder(idle(20))
        .route("/x", Tightening::new().idle_timeout(21 * MINUTE))
        .build()
        .unwrap_err();
    assert!(err.to_string().ends_with("of the default policy"), "{err}");
    let bounded = Policy::builder()
        .absolute_timeout(Duration::from_secs(3600))
        .build()
        .unwrap();
    let err = Policies::builder(bounded)
        .route(
            "/x",
            Tightening::new().absolute_timeout(Duration::from_secs(7200)),
        )
        .build()
        .unwrap_err();
    assert!(matches!(
        err,
        PolicyError::LongerThanEnclosing {
            setting: Setting::AbsoluteTimeout,
            ..
        }
    ));
    for route in ["admin", "/a?b", ""] {
        let err = Policies::builder(idle(20))
            .route(route, Tightening::new())
            .build()
            .unwrap_err();
        assert_eq!(
            err,
            PolicyError::InvalidRoute {
                route: route.into()
            }
        );
    }
    let err = Policies::builder(idle(20))
        .route("/x", Tightening::new().idle_timeout(Duration::ZERO))
        .build()
        .unwrap_err();
    assert!(matches!(err, PolicyError::TooShort { .. }));
}

#[tokio::test]
async fn per_tenant_a_shorter_limit_bites_at_the_next_request_and_a_longer_one_only_for_new_sessions(
) {
    let app = app(two_tenants().build().unwrap());
    let old_b = login_at(&app, "b.example", "/login?user=bea").await;
    let old_a = login_at(&app, "a.example", "/login?user=ann").await;

    // The app restarts with b.example at 15 minutes, a.example at 60.
    let changed = Policies::builder(idle(20))
        .tenant("a.example", idle(60))
        .tenant("b.example", idle(15))
        .build()
        .unwrap();
    let restarted = app.sibling(|layer| layer.with_policies(changed.clone()));
    app.advance(15 * MINUTE);
    assert_eq!(
        send(&restarted, "GET", "b.example", "/me", Some(&old_b))
            .await
            .status(),
        StatusCode::UNAUTHORIZED,
        "b.example's shorter limit bites at once"
    );
    assert_eq!(
        send(&restarted, "GET", "a.example", "/me", Some(&old_a))
            .await
            .status(),
        StatusCode::UNAUTHORIZED,
        "a.example's old session keeps its 10 minutes"
    );
    let new_a = login_at(&restarted, "a.example", "/login?user=ann").await;
    app.advance(45 * MINUTE);
    assert_eq!(
        send(&restarted, "GET", "a.example", "/me", Some(&new_a))
            .await
            .status(),
        StatusCode::OK,
        "a new a.example session gets the longer limit"
    );
}

#[tokio::test]
async fn tenants_may_come_from_a_header() {
    let policies = Policies::builder(idle(20))
        .tenants_from(TenantFrom::Header(header::HeaderName::from_static(
            "x-tenant",
        )))
        .tenant("acme", idle(1))
        .build()
        .unwrap();
    let app = app(policies);
    let login = app
        .send(
            Request::post("/login?user=ann")
                .header("x-tenant", "acme")
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    let set = set_cookie(&login).unwrap();
    let cookie = format!("{}={}", set.name(), set.value());
    app.advance(MINUTE);
    let me = app
        .send(
            Request::get("/me")
                .header("x-tenant", "acme")
                .header(header::COOKIE, &cookie)
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(me.status(), StatusCode::UNAUTHORIZED, "acme: idle 1 min");
}

#[tokio::test]
async fn a_resolver_of_the_apps_own_may_name_the_tenant() {
    // The tenant is the first label of the host: `acme.app.example`.
    let policies = Policies::builder(idle(20))
        .tenants_from(TenantFrom::custom(|headers, _uri| {
            let host = headers.get(header::HOST)?.to_str().ok()?;
            Some(host.split('.').next()?.to_owned())
        }))
        .tenant("acme", idle(1))
        .build()
        .unwrap();
    let app = app(policies);
    let acme = login_at(&app, "acme.app.example", "/login?user=ann").await;
    let other = login_at(&app, "zeta.app.example", "/login?user=zed").await;
    app.advance(MINUTE);
    assert_eq!(
        send(&app, "GET", "acme.app.example", "/me", Some(&acme))
            .await
            .status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        send(&app, "GET", "zeta.app.example", "/me", Some(&other))
            .await
            .status(),
        StatusCode::OK
    );
}
