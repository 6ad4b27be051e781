//! A tiny HTTP/1.1 client over a kept-alive tokio `TcpStream`: enough to
//! send a request with one cookie and read the status, the session
//! `Set-Cookie` and the body of an axum answer.

use std::io;
use std::net::SocketAddr;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

/// The session cookie's name (the layer's default).
pub const COOKIE: &str = "session";

/// What the answer did to the session cookie.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CookieChange {
    Set(String),
    Cleared,
}

/// An answer.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub cookie: Option<CookieChange>,
    pub body: String,
}

/// One connection to a node, opened on first use and again after an error.
pub struct Conn {
    address: SocketAddr,
    stream: Option<BufReader<TcpStream>>,
}

impl Conn {
    pub fn new(address: SocketAddr) -> Self {
        Conn {
            address,
            stream: None,
        }
    }

    /// Sends one request. `on_send` is called just before its first byte
    /// is written (again, if a kept-alive connection the server had closed
    /// must be replaced: the request was not read then).
    pub async fn send(
        &mut self,
        method: &str,
        path: &str,
        session: Option<&str>,
        on_send: &mut (dyn FnMut() + Send),
    ) -> io::Result<Reply> {
        let mut head =
            format!("{method} {path} HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-length: 0\r\n");
        if let Some(session) = session {
            head.push_str(&format!("cookie: {COOKIE}={session}\r\n"));
        }
        head.push_str("\r\n");
        let reused = self.stream.is_some();
        match self.exchange(&head, on_send).await {
            Err(err) if reused && err.kind() == io::ErrorKind::ConnectionAborted => {
                // A kept-alive connection closed before any answer: the
                // server never read the request.
                self.exchange(&head, on_send).await
            }
            other => other,
        }
    }

    async fn exchange(
        &mut self,
        head: &str,
        on_send: &mut (dyn FnMut() + Send),
    ) -> io::Result<Reply> {
        if self.stream.is_none() {
            let stream = TcpStream::connect(self.address).await?;
            stream.set_nodelay(true)?;
            self.stream = Some(BufReader::new(stream));
        }
        let result = self.exchange_on_stream(head, on_send).await;
        match &result {
            Ok(reply) if !reply.keep_alive => self.stream = None,
            Ok(_) => {}
            Err(_) => self.stream = None,
        }
        result.map(|reply| reply.reply)
    }

    async fn exchange_on_stream(
        &mut self,
        head: &str,
        on_send: &mut (dyn FnMut() + Send),
    ) -> io::Result<Answer> {
        let stream = self.stream.as_mut().expect("connected");
        on_send();
        stream.get_mut().write_all(head.as_bytes()).await?;
        let mut line = String::new();
        if stream.read_line(&mut line).await? == 0 {
            return Err(io::Error::new(
                io::ErrorKind::ConnectionAborted,
                "connection closed before an answer",
            ));
        }
        let status: u16 = line
            .split_whitespace()
            .nth(1)
            .and_then(|code| code.parse().ok())
            .ok_or_else(|| bad(format!("bad status line {line:?}")))?;
        let mut length = 0usize;
        let mut chunked = false;
        let mut keep_alive = true;
        let mut cookie = None;
        loop {
            line.clear();
            if stream.read_line(&mut line).await? == 0 {
                return Err(bad("connection closed in the headers".into()));
            }
            let header = line.trim_end();
            if header.is_empty() {
                break;
            }
            let Some((name, value)) = header.split_once(':') else {
                return Err(bad(format!("bad header {header:?}")));
            };
            let value = value.trim();
            match name.to_ascii_lowercase().as_str() {
                "content-length" => {
                    length = value
                        .parse()
                        .map_err(|_| bad(format!("bad length {value:?}")))?
                }
                "transfer-encoding" => chunked = value.eq_ignore_ascii_case("chunked"),
                "connection" => keep_alive = !value.eq_ignore_ascii_case("close"),
                "set-cookie" => {
                    if let Some(change) = session_cookie(value) {
                        cookie = Some(change);
                    }
                }
                _ => {}
            }
        }
        let mut body = Vec::new();
        if chunked {
            loop {
                line.clear();
                stream.read_line(&mut line).await?;
                let size = usize::from_str_radix(line.trim().split(';').next().unwrap_or(""), 16)
                    .map_err(|_| bad(format!("bad chunk size {line:?}")))?;
                let mut chunk = vec![0; size + 2];
                stream.read_exact(&mut chunk).await?;
                if size == 0 {
                    break;
                }
                body.extend_from_slice(&chunk[..size]);
            }
        } else {
            body.resize(length, 0);
            stream.read_exact(&mut body).await?;
        }
        Ok(Answer {
            reply: Reply {
                status,
                cookie,
                body: String::from_utf8_lossy(&body).into_owned(),
            },
            keep_alive,
        })
    }
}

struct Answer {
    reply: Reply,
    keep_alive: bool,
}

fn bad(message: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message)
}

/// The session cookie a `Set-Cookie` value sets or clears, if it is ours.
fn session_cookie(value: &str) -> Option<CookieChange> {
    let mut parts = value.split(';').map(str::trim);
    let (name, id) = parts.next()?.split_once('=')?;
    if name != COOKIE {
        return None;
    }
    let cleared = id.is_empty()
        || parts.any(|attribute| {
            attribute
                .split_once('=')
                .is_some_and(|(key, value)| key.eq_ignore_ascii_case("max-age") && value == "0")
        });
    Some(if cleared {
        CookieChange::Cleared
    } else {
        CookieChange::Set(id.to_owned())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_cookie_values_are_read() {
        assert_eq!(
            session_cookie("session=abc; HttpOnly; Secure; Path=/"),
            Some(CookieChange::Set("abc".into()))
        );
        assert_eq!(
            session_cookie("session=; Max-Age=0; Path=/"),
            Some(CookieChange::Cleared)
        );
        assert_eq!(session_cookie("other=abc"), None);
    }
}
