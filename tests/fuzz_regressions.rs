//! Inputs the fuzz targets (fuzz/) found, each kept as a test of the
//! promise it broke.

use std::time::Duration;

use http::Request;
use tower_session_lifetime::{policy::Tightening, Policies, Policy};

/// `route_path`: a path whose empty segments a router drops without
/// decoding it (`//admin/%2e%2e` read as `/admin/%2e%2e`, which axum's
/// `/admin/{*rest}` routes to the admin pages) escaped the `/admin` group.
#[test]
fn empty_segments_before_an_encoded_dot_segment_stay_in_the_route_group() {
    let admin = Duration::from_secs(5 * 60);
    let policies = Policies::builder(Policy::default())
        .route("/admin", Tightening::new().idle_timeout(admin))
        .build()
        .unwrap();
    for path in [
        // The fuzzer's input: `\` read as `/`, then empty segments dropped.
        "/\\/admin/%2e%2e",
        "//admin/%2e%2e",
        "/x/..//admin/%2E%2e",
        "/admin/%2e%2e",
    ] {
        let request = Request::get(path).body(()).unwrap();
        assert_eq!(
            policies.for_request(&request).idle_timeout(),
            admin,
            "{path}"
        );
    }
    let outside = Request::get("//administrators/%2e%2e").body(()).unwrap();
    assert_eq!(policies.for_request(&outside), &Policy::default());
}
