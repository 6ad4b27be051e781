//! The logout allow-list on any string: the target is always a listed one
//! or the default, and an allowed `return_to` leads to a target that is
//! itself allowed.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tower_session_lifetime::logout_redirect::LogoutRedirects;

const LISTED: [&str; 3] = [
    "/goodbye",
    "https://app.example/signed-out",
    "http://127.0.0.1:3000/",
];

fuzz_target!(|data: &[u8]| {
    let Ok(return_to) = std::str::from_utf8(data) else {
        return;
    };
    let mut redirects = LogoutRedirects::new("/").unwrap();
    for target in LISTED {
        redirects = redirects.allow(target).unwrap();
    }
    let location = redirects.target(Some(return_to)).to_str().unwrap();
    assert!(location == "/" || LISTED.contains(&location));
    if redirects.is_allowed(return_to) {
        assert!(redirects.is_allowed(location));
        assert!(!return_to.contains(['\\', '?', '#', '@', ' ']));
        assert!(!return_to.starts_with("//"));
    }
});
