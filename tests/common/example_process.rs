//! An example of this crate run as its own process, as a user meets it: on
//! a loopback port the system picks, driven over plain HTTP/1.1.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// The binary of the example `name`: from the environment variable `var`
/// (which `scripts/test` sets), else the build under `target/`.
pub fn example_binary(name: &str, var: &str) -> PathBuf {
    if let Ok(path) = std::env::var(var) {
        return PathBuf::from(path);
    }
    // target/<profile>/deps/<this test> → target/<profile>/examples/<name>
    let built = std::env::current_exe()
        .ok()
        .and_then(|test| Some(test.parent()?.parent()?.join("examples").join(name)))
        .filter(|path| path.exists());
    built.unwrap_or_else(|| {
        panic!(
            "the {name} example is not built: run the tests with scripts/test, or \
             `cargo build --all-features --example {name}` first"
        )
    })
}

/// An example, running until dropped.
pub struct ExampleProcess {
    child: Child,
    pub address: SocketAddr,
}

impl ExampleProcess {
    /// Starts `binary` with `env` on a port of the system's choosing, and
    /// waits until it listens.
    pub fn start(binary: PathBuf, env: &[(&str, &str)]) -> Self {
        let mut command = Command::new(binary);
        command.env("PORT", "0").env("RUST_LOG", "warn");
        for (name, value) in env {
            command.env(name, value);
        }
        let mut child = command
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
        ExampleProcess { child, address }
    }

    /// Sends one request (`Connection: close`) with `headers` and `body`,
    /// and reads the whole answer.
    pub fn send(&self, method: &str, path: &str, headers: &[(&str, &str)], body: &str) -> Answer {
        let mut stream = TcpStream::connect(self.address).expect("connect to the example");
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        let mut request = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n",
            self.address
        );
        for (name, value) in headers {
            request.push_str(&format!("{name}: {value}\r\n"));
        }
        request.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
        stream.write_all(request.as_bytes()).unwrap();
        let mut raw = String::new();
        stream.read_to_string(&mut raw).expect("an answer");
        Answer::parse(&raw)
    }
}

impl Drop for ExampleProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An HTTP answer, as far as these tests read it.
pub struct Answer {
    pub status: u16,
    pub set_cookies: Vec<String>,
    pub body: String,
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

    /// The body as JSON (`Null` when it is not).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or(serde_json::Value::Null)
    }
}
