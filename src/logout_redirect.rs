//! Where a logout may send the browser: an allow-list set at startup, so
//! that a `return_to` in a link cannot turn the logout into an open redirect.
//!
//! ```
//! use tower_session_lifetime::logout_redirect::LogoutRedirects;
//!
//! let redirects = LogoutRedirects::new("/")?
//!     .allow("/goodbye")?
//!     .allow("https://shop.example/signed-out")?;
//! assert_eq!(redirects.target(Some("/goodbye")), "/goodbye");
//! // A phishing link names the attacker's copy of the sign-in page, however
//! // it is dressed up; it gets the default instead.
//! assert_eq!(redirects.target(Some("https://shop-example.evil/login")), "/");
//! assert_eq!(redirects.target(Some("//evil.example/goodbye")), "/");
//! assert_eq!(redirects.target(Some("/goodbye/../admin")), "/");
//! # Ok::<(), tower_session_lifetime::logout_redirect::RedirectConfigError>(())
//! ```
//!
//! Why: a logout link with a `return_to` parameter is a favourite of
//! phishing. `https://app.example/logout?return_to=https://app-example.evil/login`
//! starts on the real site and ends on a copy of its sign-in page, which the
//! user, just signed out, trusts (OWASP "Unvalidated Redirects and
//! Forwards"). So the target must be one the app listed at startup, matched
//! exactly (scheme, host, port and path, never by prefix), and the
//! `Location` sent is the listed string, never the caller's bytes.
//!
//! Both sides are reduced to one canonical string by the same small parser
//! (`canonical`): scheme and host in lower case, a default port dropped, an
//! empty path made `/`, the path kept byte for byte. Anything the parser does
//! not understand exactly is refused, not repaired.

use std::fmt;

use http::HeaderValue;

/// The targets a logout may redirect to, and where it goes otherwise.
///
/// A target is either an absolute path on the app itself (`/`, `/goodbye`)
/// or an absolute `http` or `https` URL (`https://shop.example/signed-out`).
/// A `return_to` matches an entry only if it names exactly the same place:
/// the same path byte for byte; for a URL also the same scheme, host (case
/// aside) and port (`:443` for `https` and `:80` for `http` may be left out).
/// A prefix never matches (`/goodbye/x`, `/goodbyeX`, `/goodbye/../admin`),
/// and neither does a `return_to` with a query, a fragment, user info, a
/// backslash, whitespace, a control or non-ASCII character, a
/// percent-encoded `/`, `\` or `.`, a `.` or `..` segment, a leading `//`
/// (another host) or a scheme other than `http` and `https`.
///
/// The entries and the default are checked by the same rules when they are
/// added, so a bad entry is an error at startup, not a surprise at logout.
///
/// ```
/// use tower_session_lifetime::logout_redirect::LogoutRedirects;
///
/// let redirects = LogoutRedirects::new("/")?
///     .allow("/goodbye")?
///     .allow("https://shop.example/signed-out")?;
/// assert!(redirects.is_allowed("HTTPS://Shop.Example:443/signed-out"));
/// // The Location sent is the entry, in its canonical form.
/// assert_eq!(
///     redirects.target(Some("HTTPS://Shop.Example:443/signed-out")),
///     "https://shop.example/signed-out"
/// );
/// assert!(!redirects.is_allowed("https://shop.example@evil.example/signed-out"));
/// # Ok::<(), tower_session_lifetime::logout_redirect::RedirectConfigError>(())
/// ```
#[derive(Clone, Debug)]
pub struct LogoutRedirects {
    /// The allowed targets, canonical.
    allowed: Vec<HeaderValue>,
    /// Where everything else goes, canonical.
    default: HeaderValue,
}

impl LogoutRedirects {
    /// An allow-list that sends every logout to `default` until targets are
    /// [allowed](LogoutRedirects::allow). `default` must be a valid target
    /// by the same rules; it is not itself on the list.
    ///
    /// ```
    /// use tower_session_lifetime::logout_redirect::LogoutRedirects;
    ///
    /// let redirects = LogoutRedirects::new("/signed-out")?;
    /// assert_eq!(redirects.target(Some("/anything")), "/signed-out");
    /// assert!(LogoutRedirects::new("signed-out").is_err());
    /// # Ok::<(), tower_session_lifetime::logout_redirect::RedirectConfigError>(())
    /// ```
    pub fn new(default: &str) -> Result<Self, RedirectConfigError> {
        Ok(LogoutRedirects {
            allowed: Vec::new(),
            default: checked(default)?,
        })
    }

    /// Also allows `target`: an absolute path on this app (`/goodbye`) or
    /// an absolute `http`/`https` URL (`https://shop.example/bye`). A target
    /// that is neither, or that a `return_to` could not match (it has a
    /// query, user info, a dot segment…), is an error naming it and saying
    /// what is wrong.
    ///
    /// ```
    /// use tower_session_lifetime::logout_redirect::{LogoutRedirects, RedirectConfigError};
    ///
    /// let redirects = LogoutRedirects::new("/")?.allow("/goodbye")?;
    /// assert!(redirects.is_allowed("/goodbye"));
    ///
    /// let err = LogoutRedirects::new("/")?.allow("/goodbye?x=1").unwrap_err();
    /// assert_eq!(err.to_string(), r#"logout redirect target "/goodbye?x=1" has a query"#);
    /// # Ok::<(), RedirectConfigError>(())
    /// ```
    pub fn allow(mut self, target: &str) -> Result<Self, RedirectConfigError> {
        let target = checked(target)?;
        if !self.allowed.contains(&target) {
            self.allowed.push(target);
        }
        Ok(self)
    }

    /// Whether `return_to` names exactly one of the allowed targets.
    ///
    /// ```
    /// use tower_session_lifetime::logout_redirect::LogoutRedirects;
    ///
    /// let redirects = LogoutRedirects::new("/")?.allow("/goodbye")?;
    /// assert!(redirects.is_allowed("/goodbye"));
    /// assert!(!redirects.is_allowed("/goodbye/"));
    /// assert!(!redirects.is_allowed("/\\evil.example"));
    /// assert!(!redirects.is_allowed("/"), "the default is not on the list");
    /// # Ok::<(), tower_session_lifetime::logout_redirect::RedirectConfigError>(())
    /// ```
    pub fn is_allowed(&self, return_to: &str) -> bool {
        self.find(return_to).is_some()
    }

    /// The `Location` to send: the allowed target `return_to` names (the
    /// entry as configured, in canonical form, never the caller's bytes), or
    /// the [default](LogoutRedirects::default_target) when `return_to` is
    /// missing or not allowed.
    ///
    /// ```
    /// use tower_session_lifetime::logout_redirect::LogoutRedirects;
    ///
    /// let redirects = LogoutRedirects::new("/")?.allow("http://localhost:3000/bye")?;
    /// assert_eq!(redirects.target(Some("HTTP://LOCALHOST:3000/bye")), "http://localhost:3000/bye");
    /// assert_eq!(redirects.target(Some("javascript:alert(1)")), "/");
    /// assert_eq!(redirects.target(None), "/");
    /// # Ok::<(), tower_session_lifetime::logout_redirect::RedirectConfigError>(())
    /// ```
    pub fn target(&self, return_to: Option<&str>) -> &HeaderValue {
        return_to
            .and_then(|return_to| self.find(return_to))
            .unwrap_or(&self.default)
    }

    /// Where a logout goes when `return_to` is missing or not allowed, in
    /// canonical form.
    ///
    /// ```
    /// use tower_session_lifetime::logout_redirect::LogoutRedirects;
    ///
    /// let redirects = LogoutRedirects::new("HTTPS://App.Example:443")?;
    /// assert_eq!(redirects.default_target(), "https://app.example/");
    /// # Ok::<(), tower_session_lifetime::logout_redirect::RedirectConfigError>(())
    /// ```
    pub fn default_target(&self) -> &HeaderValue {
        &self.default
    }

    fn find(&self, return_to: &str) -> Option<&HeaderValue> {
        let wanted = canonical(return_to).ok()?;
        self.allowed
            .iter()
            .find(|allowed| allowed.as_bytes() == wanted.as_bytes())
    }
}

/// `target` in canonical form as a header value, or the error naming it.
fn checked(target: &str) -> Result<HeaderValue, RedirectConfigError> {
    let invalid = |why| RedirectConfigError::Invalid {
        target: target.to_owned(),
        why,
    };
    let canonical = canonical(target).map_err(invalid)?;
    HeaderValue::try_from(canonical).map_err(|_| invalid("is not a valid header value"))
}

/// The canonical form of a target: a plain absolute path as it is, or a
/// plain absolute http(s) URL as `scheme://host[:port]/path` with scheme and
/// host in lower case and a default port left out. Or what is wrong with it.
///
/// Two targets name the same place exactly when their canonical forms are
/// equal, and nothing of the input but its scheme, host, port and path
/// reaches the output.
fn canonical(raw: &str) -> Result<String, &'static str> {
    if raw.is_empty() {
        return Err("is empty");
    }
    if !raw.bytes().all(|byte| byte.is_ascii_graphic()) {
        return Err("contains whitespace, a control character or a non-ASCII character");
    }
    if raw.contains('\\') {
        return Err("contains a backslash");
    }
    if raw.contains('?') {
        return Err("has a query");
    }
    if raw.contains('#') {
        return Err("has a fragment");
    }
    if raw.contains('@') {
        return Err("contains `@` (user info)");
    }
    if raw.starts_with("//") {
        return Err("starts with `//` (a URL on another host)");
    }
    if raw.starts_with('/') {
        check_path(raw)?;
        return Ok(raw.to_owned());
    }
    // A scheme: letters, digits, `+`, `-`, `.` up to the first `:`.
    let scheme_end = raw
        .find(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.')))
        .filter(|&end| end > 0 && raw[end..].starts_with(':'))
        .ok_or("is neither an absolute path (`/…`) nor an absolute http(s) URL")?;
    let (https, default_port) = match raw[..scheme_end].to_ascii_lowercase().as_str() {
        "https" => (true, 443),
        "http" => (false, 80),
        _ => return Err("has a scheme other than http and https"),
    };
    let rest = raw[scheme_end..]
        .strip_prefix("://")
        .ok_or("is not an absolute URL (`scheme://host/…`)")?;
    let (authority, path) = match rest.find('/') {
        Some(slash) => rest.split_at(slash),
        None => (rest, ""),
    };
    let (host, port) = match authority.split_once(':') {
        None => (authority, default_port),
        Some((host, port)) => {
            let digits = (1..=5).contains(&port.len()) && port.bytes().all(|b| b.is_ascii_digit());
            let port = digits
                .then(|| port.parse::<u16>().ok())
                .flatten()
                .filter(|&port| port != 0)
                .ok_or("has an invalid port")?;
            (host, port)
        }
    };
    check_host(host)?;
    let path = if path.is_empty() { "/" } else { path };
    check_path(path)?;
    let scheme = if https { "https" } else { "http" };
    let host = host.to_ascii_lowercase();
    Ok(if port == default_port {
        format!("{scheme}://{host}{path}")
    } else {
        format!("{scheme}://{host}:{port}{path}")
    })
}

/// A DNS name or IPv4 address: dot-separated labels of letters, digits and
/// inner hyphens. (No IPv6 literals, no trailing dot.)
fn check_host(host: &str) -> Result<(), &'static str> {
    let label_ok = |label: &str| {
        (1..=63).contains(&label.len())
            && !label.starts_with('-')
            && !label.ends_with('-')
            && label
                .bytes()
                .all(|byte| byte.is_ascii_alphanumeric() || byte == b'-')
    };
    if host.is_empty() {
        return Err("has no host");
    }
    if host.len() > 253 || !host.split('.').all(label_ok) {
        return Err("has an invalid host");
    }
    Ok(())
}

/// An absolute path of plain URL path characters, without `//` at the
/// start, `.` or `..` segments, or percent-encoded `/`, `\` or `.`.
fn check_path(path: &str) -> Result<(), &'static str> {
    debug_assert!(path.starts_with('/'));
    if path.starts_with("//") {
        return Err("has a path starting with `//`");
    }
    let bytes = path.as_bytes();
    for (at, &byte) in bytes.iter().enumerate() {
        let plain = byte.is_ascii_alphanumeric() || b"/-._~!$&'()*+,;=:%".contains(&byte);
        if !plain {
            return Err("has a character not allowed in a URL path");
        }
        if byte == b'%' {
            let escape = bytes
                .get(at + 1..at + 3)
                .ok_or("has a bad percent-encoding")?;
            if !escape.iter().all(u8::is_ascii_hexdigit) {
                return Err("has a bad percent-encoding");
            }
            if escape.eq_ignore_ascii_case(b"2f")
                || escape.eq_ignore_ascii_case(b"5c")
                || escape.eq_ignore_ascii_case(b"2e")
            {
                return Err("has a percent-encoded `/`, `\\` or `.`");
            }
        }
    }
    if path[1..]
        .split('/')
        .any(|segment| segment == "." || segment == "..")
    {
        return Err("has a `.` or `..` segment");
    }
    Ok(())
}

/// A logout redirect target given to [`LogoutRedirects`] that cannot be one.
///
/// ```
/// use tower_session_lifetime::logout_redirect::{LogoutRedirects, RedirectConfigError};
///
/// let err = LogoutRedirects::new("/")?.allow("javascript:alert(1)").unwrap_err();
/// assert!(matches!(
///     &err,
///     RedirectConfigError::Invalid { target, .. } if target == "javascript:alert(1)"
/// ));
/// assert_eq!(
///     err.to_string(),
///     r#"logout redirect target "javascript:alert(1)" has a scheme other than http and https"#
/// );
/// # Ok::<(), RedirectConfigError>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum RedirectConfigError {
    /// Not an absolute path nor an absolute http(s) URL, or one with a part
    /// a `return_to` may never have (a query, a fragment, user info, a dot
    /// segment, a backslash…).
    Invalid {
        /// The target as given.
        target: String,
        /// What is wrong with it, e.g. `has a query`.
        why: &'static str,
    },
}

impl fmt::Display for RedirectConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RedirectConfigError::Invalid { target, why } => {
                write!(f, "logout redirect target {target:?} {why}")
            }
        }
    }
}

impl std::error::Error for RedirectConfigError {}

#[cfg(test)]
mod tests {
    use super::*;

    fn redirects() -> LogoutRedirects {
        LogoutRedirects::new("/")
            .unwrap()
            .allow("/goodbye")
            .unwrap()
            .allow("https://App.Example/signed-out")
            .unwrap()
            .allow("http://127.0.0.1:3000")
            .unwrap()
            .allow("https://app.example:8443/other-port")
            .unwrap()
    }

    #[test]
    fn exact_targets_are_allowed() {
        let redirects = redirects();
        for (return_to, location) in [
            ("/goodbye", "/goodbye"),
            (
                "https://app.example/signed-out",
                "https://app.example/signed-out",
            ),
            (
                "HTTPS://APP.EXAMPLE:443/signed-out",
                "https://app.example/signed-out",
            ),
            (
                "https://app.example:00443/signed-out",
                "https://app.example/signed-out",
            ),
            ("http://127.0.0.1:3000", "http://127.0.0.1:3000/"),
            ("http://127.0.0.1:3000/", "http://127.0.0.1:3000/"),
            (
                "https://app.example:8443/other-port",
                "https://app.example:8443/other-port",
            ),
        ] {
            assert!(redirects.is_allowed(return_to), "{return_to}");
            assert_eq!(redirects.target(Some(return_to)), location, "{return_to}");
        }
    }

    #[test]
    fn everything_else_goes_to_the_default() {
        let redirects = redirects();
        for return_to in [
            "",
            "/",
            " /goodbye",
            "/goodbye ",
            "\t/goodbye",
            "/good\tbye",
            "/good\nbye",
            "/goodbye\n",
            "/goodbye\r\n",
            "/goodbye\u{0}",
            "/goodbye\u{7f}",
            "/goodbyé",
            "/GOODBYE",
            "/goodbye/",
            "/goodbyeX",
            "/goodbye/x",
            "/goodbye/.",
            "/goodbye/../admin",
            "/goodbye/%2e%2e/admin",
            "/./goodbye",
            "goodbye",
            "./goodbye",
            "/goodbye?next=https://evil.example",
            "/goodbye?",
            "/goodbye#",
            "/goodbye#x",
            "//evil.example/goodbye",
            "///evil.example/goodbye",
            "/\\evil.example",
            "\\\\evil.example",
            "\\/evil.example",
            "/%2fevil.example",
            "/%2Fevil.example",
            "/%5cevil.example",
            "/goodbye%2F..%2Fadmin",
            "/goodbye%",
            "/goodbye%2",
            "/goodbye%zz",
            "/<script>",
            "https:/app.example/signed-out",
            "https:app.example/signed-out",
            "https:///app.example/signed-out",
            "https://app.example/signed-out/",
            "https://app.example/Signed-Out",
            "https://app.example/signed-out/../signed-out",
            "https://app.example//signed-out",
            "https://app.example.evil.example/signed-out",
            "https://evil.example/app.example/signed-out",
            "https://app.example./signed-out",
            "https://app.example@evil.example/signed-out",
            "https://user:pass@app.example/signed-out",
            "https://evil.example\\@app.example/signed-out",
            "https://evil.example/signed-out",
            "http://app.example/signed-out",
            "https://app.example:8443/signed-out",
            "https://app.example:/signed-out",
            "https://app.example:0/signed-out",
            "https://app.example:65536/signed-out",
            "https://app.example:443:443/signed-out",
            "https://app.example:+443/signed-out",
            "https://[::1]/signed-out",
            "https://app.example/signed-out?x",
            "https://app.example/signed-out#x",
            "https://app.example:8443/Other-port",
            "http://127.0.0.1:3001/",
            "https://127.0.0.1:3000/",
            "javascript:alert(1)",
            "JavaScript://app.example/%0aalert(1)",
            "data:text/html,hi",
            "ftp://app.example/signed-out",
            "https://ａｐｐ.example/signed-out",
            "https://xn--pp-qia.example/signed-out",
        ] {
            assert!(!redirects.is_allowed(return_to), "{return_to:?}");
            assert_eq!(redirects.target(Some(return_to)), "/", "{return_to:?}");
        }
        assert_eq!(redirects.target(None), "/");
    }

    #[test]
    fn bad_targets_are_refused_at_startup_saying_why() {
        for (target, why) in [
            ("", "is empty"),
            (
                "goodbye",
                "is neither an absolute path (`/…`) nor an absolute http(s) URL",
            ),
            ("//evil.example", "starts with `//` (a URL on another host)"),
            ("/\\evil.example", "contains a backslash"),
            (
                "javascript:alert(1)",
                "has a scheme other than http and https",
            ),
            (
                "data:text/html,hi",
                "has a scheme other than http and https",
            ),
            (
                "https:/app.example",
                "is not an absolute URL (`scheme://host/…`)",
            ),
            ("/a?b", "has a query"),
            ("/a#b", "has a fragment"),
            ("https://user@app.example/", "contains `@` (user info)"),
            ("/a/../b", "has a `.` or `..` segment"),
            ("/a/%2e%2e/b", "has a percent-encoded `/`, `\\` or `.`"),
            ("/a%2Fb", "has a percent-encoded `/`, `\\` or `.`"),
            ("/a%", "has a bad percent-encoding"),
            (
                "/a b",
                "contains whitespace, a control character or a non-ASCII character",
            ),
            (
                "/é",
                "contains whitespace, a control character or a non-ASCII character",
            ),
            ("/a|b", "has a character not allowed in a URL path"),
            ("https://", "has no host"),
            ("https:///x", "has no host"),
            ("https://-app.example/", "has an invalid host"),
            ("https://app..example/", "has an invalid host"),
            ("https://app.example:99999/", "has an invalid port"),
            ("https://app.example//x", "has a path starting with `//`"),
        ] {
            let error = RedirectConfigError::Invalid {
                target: target.to_owned(),
                why,
            };
            assert_eq!(
                LogoutRedirects::new("/")
                    .unwrap()
                    .allow(target)
                    .unwrap_err(),
                error,
                "{target:?}"
            );
            assert_eq!(LogoutRedirects::new(target).unwrap_err(), error);
        }
    }

    #[test]
    fn the_error_names_the_target_and_the_problem() {
        let error = LogoutRedirects::new("/bye\n").unwrap_err();
        assert_eq!(
            error.to_string(),
            r#"logout redirect target "/bye\n" contains whitespace, a control character or a non-ASCII character"#
        );
    }

    #[test]
    fn the_default_is_canonical_and_not_itself_allowed() {
        let redirects = LogoutRedirects::new("HTTPS://App.Example").unwrap();
        assert_eq!(redirects.default_target(), "https://app.example/");
        assert!(!redirects.is_allowed("https://app.example/"));
        let redirects = redirects.allow("https://app.example/").unwrap();
        assert!(redirects.is_allowed("HTTPS://APP.EXAMPLE"));
    }

    #[test]
    fn listing_a_target_twice_keeps_one_entry() {
        let redirects = LogoutRedirects::new("/")
            .unwrap()
            .allow("https://a.example/x")
            .unwrap()
            .allow("HTTPS://A.EXAMPLE:443/x")
            .unwrap();
        assert_eq!(redirects.allowed.len(), 1);
    }
}
