//! `examples/axum_login.rs` as a user meets it: the example runs as its own
//! process on a loopback port the system picks, and this test drives it
//! over HTTP with the cookies a browser would keep. Signing in over a
//! sign-in (the same user twice, or a second person) must end signed in,
//! as the user who signed in last, on a new session ID, with the old one
//! dead.
//!
//! `scripts/test` builds the example (`cargo build --all-features
//! --example axum_login`) and sets `TSL_AXUM_LOGIN_BIN`; without it the
//! test looks for that build under `target/`, and fails saying what to do.
#![cfg(all(feature = "tower-sessions", feature = "axum"))]

mod common;

use common::example_process::{example_binary, Answer, ExampleProcess};

/// The example, running until dropped.
struct Example(ExampleProcess);

impl Example {
    /// Starts the example with the given lifetimes (whole seconds).
    fn start(idle: u64, absolute: u64) -> Self {
        let binary = example_binary("axum_login", "TSL_AXUM_LOGIN_BIN");
        let (idle, absolute) = (idle.to_string(), absolute.to_string());
        Example(ExampleProcess::start(
            binary,
            &[("IDLE_TIMEOUT", &idle), ("ABSOLUTE_TIMEOUT", &absolute)],
        ))
    }

    fn send(&self, method: &str, path: &str, cookie: Option<&str>, form: Option<&str>) -> Answer {
        let mut headers = Vec::new();
        if let Some(cookie) = cookie {
            headers.push(("Cookie", cookie));
        }
        if form.is_some() {
            headers.push(("Content-Type", "application/x-www-form-urlencoded"));
        }
        self.0.send(method, path, &headers, form.unwrap_or(""))
    }

    fn sign_in(&self, user: &str, remember: bool, cookie: Option<&str>) -> Answer {
        let mut form = format!("username={user}&password={user}");
        if remember {
            form.push_str("&remember_me=on");
        }
        self.send("POST", "/login", cookie, Some(&form))
    }

    fn me(&self, cookie: &str) -> Answer {
        self.send("GET", "/api/me", Some(cookie), None)
    }
}

/// What these tests read of an answer.
trait SessionAnswer {
    fn session_cookie(&self) -> Option<String>;
    fn session_cookie_is_persistent(&self) -> bool;
    fn clears_the_session_cookie(&self) -> bool;
    fn subject(&self) -> Option<String>;
}

impl SessionAnswer for Answer {
    /// The `id` cookie it sets (not a removal), as a `Cookie` header value.
    fn session_cookie(&self) -> Option<String> {
        self.set_cookies.iter().find_map(|set| {
            let pair = set.split(';').next()?.trim();
            let value = pair.strip_prefix("id=")?;
            (!value.is_empty()).then(|| pair.to_owned())
        })
    }

    /// Whether it sets the `id` cookie with a `Max-Age` (a persistent one).
    fn session_cookie_is_persistent(&self) -> bool {
        self.set_cookies
            .iter()
            .any(|set| set.starts_with("id=") && set.to_ascii_lowercase().contains("max-age="))
    }

    fn clears_the_session_cookie(&self) -> bool {
        self.set_cookies
            .iter()
            .any(|set| set.starts_with("id=;") || set == "id=")
    }

    fn subject(&self) -> Option<String> {
        self.json()["subject"].as_str().map(str::to_owned)
    }
}

#[test]
fn signing_in_over_a_sign_in_ends_signed_in_as_the_last_user_on_a_new_id() {
    let example = Example::start(600, 3600);
    let first = example.sign_in("frank", false, None);
    assert_eq!(first.status, 303);
    let frank = first.session_cookie().expect("a session cookie");
    let me = example.me(&frank);
    assert_eq!(me.status, 200);
    assert_eq!(me.subject().as_deref(), Some("frank"));

    // The same user again (a double click on "Sign in"), then another user
    // (a shared computer), each with the previous cookie still sent.
    let mut current = frank;
    for (user, remember) in [("frank", false), ("gina", true)] {
        let again = example.sign_in(user, remember, Some(&current));
        assert_eq!(again.status, 303, "{user}");
        assert!(
            !again.clears_the_session_cookie(),
            "{user}: a success must not sign out: {:?}",
            again.set_cookies
        );
        let next = again
            .session_cookie()
            .unwrap_or_else(|| panic!("{user}: a new session cookie: {:?}", again.set_cookies));
        assert_ne!(next, current, "{user}: a new session ID");
        assert_eq!(
            again.session_cookie_is_persistent(),
            remember,
            "{user}: remember-me as chosen on this form"
        );
        let me = example.me(&next);
        assert_eq!(me.status, 200, "{user}");
        assert_eq!(me.subject().as_deref(), Some(user));
        let replayed = example.me(&current);
        assert_eq!(replayed.status, 401, "{user}: the previous ID is dead");
        current = next;
    }
    // The last session is the one that logs out.
    let logout = example.send("POST", "/logout", Some(&current), None);
    assert_eq!(logout.status, 303);
    assert_eq!(example.me(&current).status, 401);
}
