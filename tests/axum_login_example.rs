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

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// The example's binary.
fn example_binary() -> PathBuf {
    if let Ok(path) = std::env::var("TSL_AXUM_LOGIN_BIN") {
        return PathBuf::from(path);
    }
    // target/<profile>/deps/<this test> → target/<profile>/examples/axum_login
    let built = std::env::current_exe()
        .ok()
        .and_then(|test| Some(test.parent()?.parent()?.join("examples/axum_login")))
        .filter(|path| path.exists());
    built.unwrap_or_else(|| {
        panic!(
            "the axum_login example is not built: run the tests with scripts/test, or \
             `cargo build --all-features --example axum_login` first"
        )
    })
}

/// The example, running until dropped.
struct Example {
    child: Child,
    address: SocketAddr,
}

impl Example {
    /// Starts the example with the given lifetimes (whole seconds) on a
    /// port of the system's choosing, and waits until it listens.
    fn start(idle: u64, absolute: u64) -> Self {
        let mut child = Command::new(example_binary())
            .env("PORT", "0")
            .env("IDLE_TIMEOUT", idle.to_string())
            .env("ABSOLUTE_TIMEOUT", absolute.to_string())
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("the example starts");
        // Its first line says where it listens. The rest is drained until it
        // exits: a closed pipe would make its next `println!` panic.
        let stdout = child.stdout.take().expect("piped");
        let (first_line, first) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            if let Some(Ok(line)) = lines.next() {
                let _ = first_line.send(line);
            }
            lines.for_each(drop);
        });
        let first = first
            .recv_timeout(Duration::from_secs(60))
            .expect("the example says where it listens");
        let address = first
            .trim()
            .strip_prefix("listening on http://")
            .unwrap_or_else(|| panic!("unexpected first line {first:?}"))
            .parse()
            .expect("an address");
        Example { child, address }
    }

    /// Sends one request (`Connection: close`) and reads the whole answer.
    fn send(&self, method: &str, path: &str, cookie: Option<&str>, form: Option<&str>) -> Answer {
        let mut stream = TcpStream::connect(self.address).expect("connect to the example");
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        let mut request = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n",
            self.address
        );
        if let Some(cookie) = cookie {
            request.push_str(&format!("Cookie: {cookie}\r\n"));
        }
        let body = form.unwrap_or("");
        if form.is_some() {
            request.push_str("Content-Type: application/x-www-form-urlencoded\r\n");
        }
        request.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
        stream.write_all(request.as_bytes()).unwrap();
        let mut raw = String::new();
        stream.read_to_string(&mut raw).expect("an answer");
        Answer::parse(&raw)
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

impl Drop for Example {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An HTTP answer, as far as these tests read it.
struct Answer {
    status: u16,
    set_cookies: Vec<String>,
    body: String,
}

impl Answer {
    fn parse(raw: &str) -> Self {
        let (head, body) = raw.split_once("\r\n\r\n").unwrap_or((raw, ""));
        let mut lines = head.lines();
        let status = lines
            .next()
            .and_then(|line| line.split(' ').nth(1))
            .and_then(|code| code.parse().ok())
            .expect("a status line");
        let set_cookies = lines
            .filter_map(|line| {
                let (name, value) = line.split_once(':')?;
                name.eq_ignore_ascii_case("set-cookie")
                    .then(|| value.trim().to_owned())
            })
            .collect();
        Answer {
            status,
            set_cookies,
            body: body.to_owned(),
        }
    }

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
        let json: serde_json::Value = serde_json::from_str(&self.body).ok()?;
        json["subject"].as_str().map(str::to_owned)
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
