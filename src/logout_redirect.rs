//! Where a logout may send the browser: an allow-list set at startup.
//!
//! ```
//! use tower_session_lifetime::LogoutRedirects;
//!
//! let redirects = LogoutRedirects::new("/")?
//!     .allow("/goodbye")?
//!     .allow("https://shop.example/signed-out")?;
//! assert_eq!(redirects.target(Some("/goodbye")), "/goodbye");
//! // Anything else goes to the default, however it is dressed up:
//! assert_eq!(redirects.target(Some("https://evil.example/")), "/");
//! assert_eq!(redirects.target(Some("//evil.example/goodbye")), "/");
//! assert_eq!(redirects.target(Some("/goodbye/../admin")), "/");
//! # Ok::<(), tower_session_lifetime::RedirectConfigError>(())
//! ```
//!
//! Why: a logout link with a `return_to` parameter is a favourite of
//! phishing. `https://app.example/logout?return_to=https://app-example.evil/login`
//! starts on the real site and ends on the attacker's copy of its sign-in
//! page, which the user, just signed out, trusts (OWASP "Unvalidated
//! Redirects and Forwards"). So the target must be one the app listed at
//! startup, matched exactly — scheme, host, port and path — never by
//! prefix, and the `Location` sent is the listed string, not the caller's.
//!
//! A target is either an absolute path on the app itself (`/`, `/goodbye`)
//! or an absolute `http` or `https` URL. Neither may carry a query, a
//! fragment, user info, a backslash, whitespace, control or non-ASCII
//! characters, percent-encoded slashes or backslashes, or `.` and `..`
//! segments; a `return_to` with any of those is simply not on the list.

use std::fmt;

use http::HeaderValue;

/// The targets a logout may redirect to, and where it goes otherwise.
#[derive(Clone, Debug)]
pub struct LogoutRedirects {
    allowed: Vec<Allowed>,
    default: HeaderValue,
}

/// One allowed target: its normalized form to compare, and the value sent.
#[derive(Clone, Debug)]
struct Allowed {
    target: Target,
    location: HeaderValue,
}

/// A parsed target: on this app (`origin` `None`) or on an absolute origin.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Target {
    origin: Option<Origin>,
    path: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct Origin {
    https: bool,
    host: String,
    port: u16,
}

impl LogoutRedirects {
    /// Redirects go to `default` unless `return_to` is allowed. `default`
    /// is checked as [`allow`](LogoutRedirects::allow) checks a target.
    pub fn new(default: &str) -> Result<Self, RedirectConfigError> {
        let (_, location) = checked(default)?;
        Ok(LogoutRedirects {
            allowed: Vec::new(),
            default: location,
        })
    }

    /// Also allows `target`: an absolute path on this app (`/goodbye`) or
    /// an absolute `http`/`https` URL (`https://shop.example/bye`), matched
    /// exactly. A target that is neither is an error naming it.
    pub fn allow(mut self, target: &str) -> Result<Self, RedirectConfigError> {
        let (target, location) = checked(target)?;
        self.allowed.push(Allowed { target, location });
        Ok(self)
    }

    /// Whether `return_to` is exactly one of the allowed targets.
    pub fn is_allowed(&self, return_to: &str) -> bool {
        self.find(return_to).is_some()
    }

    /// Where to send the browser: the allowed target `return_to` names (as
    /// configured, not as given), or the default.
    pub fn target(&self, return_to: Option<&str>) -> &HeaderValue {
        return_to
            .and_then(|return_to| self.find(return_to))
            .unwrap_or(&self.default)
    }

    /// Where a logout goes when `return_to` is missing or not allowed.
    pub fn default_target(&self) -> &HeaderValue {
        &self.default
    }

    fn find(&self, return_to: &str) -> Option<&HeaderValue> {
        let wanted = parse(return_to)?;
        self.allowed
            .iter()
            .find(|allowed| allowed.target == wanted)
            .map(|allowed| &allowed.location)
    }
}

fn checked(target: &str) -> Result<(Target, HeaderValue), RedirectConfigError> {
    let invalid = || RedirectConfigError::Invalid {
        target: target.to_owned(),
    };
    let parsed = parse(target).ok_or_else(invalid)?;
    let location = HeaderValue::from_str(target).map_err(|_| invalid())?;
    Ok((parsed, location))
}

/// Parses a target, or `None` if it is anything but a plain absolute path
/// or a plain absolute http(s) URL.
fn parse(raw: &str) -> Option<Target> {
    if raw.is_empty() || !raw.bytes().all(|byte| byte.is_ascii_graphic()) {
        return None;
    }
    if raw.contains(['\\', '?', '#', '@']) {
        return None;
    }
    if raw.starts_with('/') {
        return Some(Target {
            origin: None,
            path: checked_path(raw)?,
        });
    }
    let (scheme, rest) = raw.split_once("://")?;
    let https = match scheme.to_ascii_lowercase().as_str() {
        "https" => true,
        "http" => false,
        _ => return None,
    };
    let (authority, path) = match rest.find('/') {
        Some(slash) => rest.split_at(slash),
        None => (rest, "/"),
    };
    let (host, port) = match authority.rsplit_once(':') {
        Some((host, port)) if !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) => {
            (host, port.parse().ok()?)
        }
        Some(_) => return None,
        None => (authority, if https { 443 } else { 80 }),
    };
    let host_valid = !host.is_empty()
        && host.len() <= 253
        && !host.starts_with(['.', '-'])
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-');
    if !host_valid {
        return None;
    }
    Some(Target {
        origin: Some(Origin {
            https,
            host: host.to_ascii_lowercase(),
            port,
        }),
        path: checked_path(path)?,
    })
}

/// An absolute path without `//`, dot segments or encoded separators.
fn checked_path(path: &str) -> Option<String> {
    if !path.starts_with('/') || path.starts_with("//") {
        return None;
    }
    let lower = path.to_ascii_lowercase();
    if lower.contains("%2f") || lower.contains("%5c") || lower.contains("%2e") {
        return None;
    }
    let dot_segment = path[1..]
        .split('/')
        .any(|segment| segment == "." || segment == "..");
    (!dot_segment).then(|| path.to_owned())
}

/// A target given to [`LogoutRedirects`] that cannot be one.
///
/// ```
/// use tower_session_lifetime::{LogoutRedirects, RedirectConfigError};
///
/// let err = LogoutRedirects::new("/")?.allow("javascript:alert(1)").unwrap_err();
/// assert!(matches!(err, RedirectConfigError::Invalid { .. }));
/// # Ok::<(), RedirectConfigError>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum RedirectConfigError {
    /// Not an absolute path nor an absolute http(s) URL without query,
    /// fragment, user info or dot segments.
    Invalid {
        /// The target as given.
        target: String,
    },
}

impl fmt::Display for RedirectConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RedirectConfigError::Invalid { target } => write!(
                f,
                "logout redirect target `{target}` is not an absolute path or an absolute \
                 http(s) URL without query, fragment, user info or dot segments"
            ),
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
            .allow("http://127.0.0.1:3000/")
            .unwrap()
    }

    #[test]
    fn exact_targets_are_allowed() {
        let redirects = redirects();
        for (return_to, location) in [
            ("/goodbye", "/goodbye"),
            (
                "https://app.example/signed-out",
                "https://App.Example/signed-out",
            ),
            (
                "HTTPS://APP.EXAMPLE:443/signed-out",
                "https://App.Example/signed-out",
            ),
            ("http://127.0.0.1:3000", "http://127.0.0.1:3000/"),
            ("http://127.0.0.1:3000/", "http://127.0.0.1:3000/"),
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
            " /goodbye",
            "/goodbye ",
            "/good\tbye",
            "/goodbye\n",
            "/goodbye/",
            "/goodbyeX",
            "/goodbye/x",
            "/goodbye/../admin",
            "/./goodbye",
            "/goodbye?next=https://evil.example",
            "/goodbye#x",
            "//evil.example/goodbye",
            "/\\evil.example",
            "\\\\evil.example",
            "/%2fevil.example",
            "/goodbye%2F..%2Fadmin",
            "https:/app.example/signed-out",
            "https://app.example/signed-out/",
            "https://app.example.evil.example/signed-out",
            "https://app.example@evil.example/signed-out",
            "https://evil.example/signed-out",
            "http://app.example/signed-out",
            "https://app.example:8443/signed-out",
            "https://app.example:/signed-out",
            "javascript:alert(1)",
            "JavaScript://app.example/%0aalert(1)",
            "data:text/html,hi",
            "ftp://app.example/signed-out",
            "https://ａｐｐ.example/signed-out",
            "/goodbye\u{0}",
        ] {
            assert!(!redirects.is_allowed(return_to), "{return_to:?}");
            assert_eq!(redirects.target(Some(return_to)), "/", "{return_to:?}");
        }
        assert_eq!(redirects.target(None), "/");
    }

    #[test]
    fn bad_targets_are_refused_at_startup() {
        for target in [
            "goodbye",
            "//evil.example",
            "javascript:alert(1)",
            "/a?b",
            "https://user@app.example/",
            "/a/../b",
            "",
        ] {
            assert_eq!(
                LogoutRedirects::new("/")
                    .unwrap()
                    .allow(target)
                    .unwrap_err(),
                RedirectConfigError::Invalid {
                    target: target.to_owned()
                },
                "{target}"
            );
        }
        assert!(LogoutRedirects::new("https://").is_err());
    }
}
