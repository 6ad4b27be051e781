//! The session cookie: its attributes, reading it, signing it, writing it.
//!
//! ```
//! use cookie::{Key, SameSite};
//! use tower_session_lifetime::SessionCookie;
//!
//! let cookie = SessionCookie::builder()
//!     .name("__Host-session")
//!     .same_site(SameSite::Strict)
//!     .signing_key(Key::generate())
//!     .build()?;
//! assert_eq!(cookie.name(), "__Host-session");
//! # Ok::<(), tower_session_lifetime::session_cookie::CookieConfigError>(())
//! ```

use std::borrow::Cow;
use std::fmt;
use std::time::Duration;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use cookie::time::OffsetDateTime;
use cookie::{Cookie, Key, SameSite};
use hmac::{Hmac, Mac};
use http::header::{CACHE_CONTROL, COOKIE, SET_COOKIE};
use http::{HeaderMap, HeaderValue};
use sha2::Sha256;

use crate::bytes::{find_byte, percent_decoded};
use crate::id::{IdText, SessionId, SESSION_ID_LEN};
use crate::rejection::RejectReason;

/// Default cookie name.
pub const DEFAULT_COOKIE_NAME: &str = "session";

/// Length of the base64 HMAC-SHA256 that prefixes a signed value; the format
/// is the `cookie` crate's `SignedJar` format.
const SIGNATURE_LEN: usize = 44;

/// How the session cookie is named and marked.
///
/// Defaults: named `session`, `HttpOnly`, `Secure`, `SameSite=Lax`, `Path=/`,
/// no `Domain`, not signed. A session without remember-me gets a
/// browser-session cookie (no `Max-Age`); a remember-me session a persistent
/// one whose `Max-Age` runs to its nearest deadline.
#[derive(Clone)]
pub struct SessionCookie {
    name: Cow<'static, str>,
    path: Cow<'static, str>,
    domain: Option<Cow<'static, str>>,
    secure: bool,
    http_only: bool,
    same_site: SameSite,
    signing_key: Option<[u8; 32]>,
    removal: HeaderValue,
}

impl SessionCookie {
    /// The cookie tower-sessions' `SessionManagerLayer` issues by default:
    /// named `id`, `HttpOnly`, `Secure`, `SameSite=Strict`, `Path=/`, not
    /// signed. For [`SessionLifetimeLayer::follow_tower_sessions`](crate::SessionLifetimeLayer::follow_tower_sessions);
    /// if you changed the session layer's cookie, describe it with
    /// [`builder`](SessionCookie::builder) instead.
    ///
    /// ```
    /// use tower_session_lifetime::SessionCookie;
    ///
    /// assert_eq!(SessionCookie::tower_sessions().name(), "id");
    /// ```
    pub fn tower_sessions() -> Self {
        SessionCookie::builder()
            .name("id")
            .same_site(SameSite::Strict)
            .build()
            .expect("tower-sessions' default cookie is a valid configuration")
    }

    /// A builder starting from the defaults.
    pub fn builder() -> SessionCookieBuilder {
        SessionCookieBuilder::default()
    }

    /// The cookie's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whether values are signed.
    pub fn is_signed(&self) -> bool {
        self.signing_key.is_some()
    }

    /// Finds this cookie among the request's `Cookie` headers.
    pub(crate) fn read(&self, headers: &HeaderMap) -> CookieLookup {
        let name = self.name.as_bytes();
        let mut found = None;
        for header in headers.get_all(COOKIE) {
            for pair in pairs(header.as_bytes()) {
                let Some(value) = value_named(pair, name) else {
                    continue;
                };
                if found.is_some() {
                    return CookieLookup::Rejected(RejectReason::Duplicated);
                }
                found = Some(value);
            }
        }
        match found {
            None => CookieLookup::Absent,
            Some(value) => match self.decode(&value) {
                Ok(id) => {
                    // Unsigned, `decode` took the value as it is.
                    let text = match self.signing_key {
                        None => <IdText>::try_from(&value[..]).ok(),
                        Some(_) => None,
                    };
                    CookieLookup::Found(id, text)
                }
                Err(reason) => CookieLookup::Rejected(reason),
            },
        }
    }

    /// The session ID a cookie value carries, checking its signature.
    pub(crate) fn decode(&self, value: &[u8]) -> Result<SessionId, RejectReason> {
        let (signature, id) = match &self.signing_key {
            None => (None, value),
            Some(_) if value.len() != SIGNATURE_LEN + SESSION_ID_LEN => {
                return Err(RejectReason::Forged)
            }
            Some(_) => {
                let (signature, id) = value.split_at(SIGNATURE_LEN);
                (Some(signature), id)
            }
        };
        if let (Some(signature), Some(key)) = (signature, &self.signing_key) {
            let mut expected = [0u8; 32];
            let decoded = STANDARD.decode_slice(signature, &mut expected);
            let mut mac = hmac_for(key);
            mac.update(id);
            if decoded != Ok(32) || mac.verify_slice(&expected).is_err() {
                return Err(RejectReason::Forged);
            }
        }
        SessionId::parse_bytes(id).ok_or(RejectReason::Malformed)
    }

    /// Removes this cookie from the request's `Cookie` headers, keeping the
    /// others.
    pub(crate) fn strip(&self, headers: &mut HeaderMap) {
        let mut kept: Vec<&[u8]> = Vec::new();
        let mut stripped = false;
        for pair in cookie_pairs(headers) {
            if is_named(pair.name, self.name.as_bytes()) {
                stripped = true;
            } else {
                kept.push(pair.whole);
            }
        }
        if !stripped {
            return;
        }
        let rebuilt = kept.join(&b"; "[..]);
        if rebuilt.is_empty() {
            headers.remove(COOKIE);
        } else if let Ok(value) = HeaderValue::from_bytes(&rebuilt) {
            headers.insert(COOKIE, value);
        } else {
            headers.remove(COOKIE);
        }
    }

    /// Appends a `Set-Cookie` carrying `id`; persistent when `max_age` is set.
    pub(crate) fn append_set(
        &self,
        headers: &mut HeaderMap,
        id: &SessionId,
        max_age: Option<Duration>,
    ) {
        let mut value = id.encode();
        if let Some(key) = &self.signing_key {
            let mut mac = hmac_for(key);
            mac.update(value.as_bytes());
            let mut signed = STANDARD.encode(mac.finalize().into_bytes());
            signed.push_str(&value);
            value = signed;
        }
        let mut cookie = self.base(value);
        if let Some(max_age) = max_age {
            let seconds = i64::try_from(max_age.as_secs()).unwrap_or(i64::MAX);
            cookie.set_max_age(cookie::time::Duration::seconds(seconds));
        }
        if let Ok(header) = HeaderValue::try_from(cookie.to_string()) {
            headers.append(SET_COOKIE, header);
            forbid_caching(headers);
        }
    }

    /// Appends a `Set-Cookie` that makes the browser drop the cookie.
    pub(crate) fn append_removal(&self, headers: &mut HeaderMap) {
        headers.append(SET_COOKIE, self.removal.clone());
        forbid_caching(headers);
    }

    fn base(&self, value: String) -> Cookie<'static> {
        let mut cookie = Cookie::new(self.name.clone(), value);
        cookie.set_path(self.path.clone());
        if let Some(domain) = &self.domain {
            cookie.set_domain(domain.clone());
        }
        cookie.set_secure(self.secure);
        cookie.set_http_only(self.http_only);
        cookie.set_same_site(self.same_site);
        cookie
    }
}

impl Default for SessionCookie {
    fn default() -> Self {
        SessionCookieBuilder::default()
            .build()
            .expect("the default cookie configuration is valid")
    }
}

impl fmt::Debug for SessionCookie {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionCookie")
            .field("name", &self.name)
            .field("path", &self.path)
            .field("domain", &self.domain)
            .field("secure", &self.secure)
            .field("http_only", &self.http_only)
            .field("same_site", &self.same_site)
            .field("signed", &self.signing_key.is_some())
            .finish()
    }
}

/// Marks a response that sets or clears the session cookie `Cache-Control:
/// no-store`, replacing what the app set: a shared cache must never hand one
/// user's session cookie to another.
pub(crate) fn forbid_caching(headers: &mut HeaderMap) {
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
}

fn hmac_for(key: &[u8; 32]) -> Hmac<Sha256> {
    <Hmac<Sha256> as Mac>::new_from_slice(key).expect("HMAC takes a key of any length")
}

/// What the request says about the session cookie.
pub(crate) enum CookieLookup {
    /// No session cookie: a visitor.
    Absent,
    /// A well-formed (and, if signing is on, authentic) ID; for an unsigned
    /// cookie, also its value, the ID as spelled (its only spelling). A
    /// signed value has none: its ID alone is not the value.
    Found(SessionId, Option<IdText>),
    /// A session cookie that cannot be used.
    Rejected(RejectReason),
}

struct CookiePair<'a> {
    name: &'a [u8],
    whole: &'a [u8],
}

/// The value of `pair` (one `name=value` of a `Cookie` header) if its name
/// is `name`, read as the `cookie` crate reads it (and so tower-cookies,
/// which tower-sessions reads its cookie with): white space around name and
/// value ignored (Unicode's too, as [`trimmed`] says), surrounding quotes
/// removed from the value, then both percent-decoded. Reading the same way
/// matters: a name this layer did not recognise (`%69d` or `id\u{a0}` for
/// `id`) would reach an inner layer unchecked.
fn value_named<'a>(pair: &'a [u8], name: &[u8]) -> Option<Cow<'a, [u8]>> {
    // As browsers send it: `name=` right after the ASCII spaces that
    // separate pairs. A name is a token (ASCII, no `=`, no white space),
    // so this is the name, trimmed, and the first `=`.
    let after_name = pair
        .trim_ascii_start()
        .strip_prefix(name)
        .and_then(|rest| rest.strip_prefix(b"="));
    let value = match after_name {
        Some(value) => value,
        None => {
            let split = pair.iter().position(|&byte| byte == b'=')?;
            if !is_named(trimmed(&pair[..split]), name) {
                return None;
            }
            &pair[split + 1..]
        }
    };
    let value = trimmed(value);
    let value = value
        .strip_prefix(b"\"")
        .and_then(|quoted| quoted.strip_suffix(b"\""))
        .unwrap_or(value);
    Some(percent_decoded(value))
}

/// `bytes` without the white space around it that `str::trim` removes,
/// which the `cookie` crate trims names and values with: ASCII white space
/// and, in UTF-8, the rest of Unicode's (U+0085, U+00A0, U+1680, U+2000 to
/// U+200A, U+2028, U+2029, U+202F, U+205F, U+3000). Trimming only ASCII
/// white space let `id\u{a0}=...` through unread, which tower-cookies reads
/// as `id`: a way around the lifetime checks for a followed cookie.
#[inline]
fn trimmed(bytes: &[u8]) -> &[u8] {
    // Most names and values end in ASCII other than white space: done
    // once ASCII white space is off (U+000B, which `trim_ascii` keeps and
    // `str::trim` does not, takes the slow way).
    let bytes = bytes.trim_ascii();
    let plain = |byte: Option<&u8>| byte.is_none_or(|&byte| byte.is_ascii() && byte != 0x0b);
    if plain(bytes.first()) && plain(bytes.last()) {
        return bytes;
    }
    unicode_trimmed(bytes)
}

/// [`trimmed`] the slow way, a character at a time from either end.
#[cold]
#[inline(never)]
fn unicode_trimmed(mut bytes: &[u8]) -> &[u8] {
    while let Some(first) = bytes.first() {
        let width = match first {
            0x00..=0x7f => 1,
            0xc0..=0xdf => 2,
            _ => 3,
        };
        match bytes.get(..width) {
            Some(char) if is_space(char) => bytes = &bytes[width..],
            _ => break,
        }
    }
    while let Some(&last) = bytes.last() {
        let width = if last.is_ascii() {
            1
        } else {
            // Back over the continuation bytes to the character's start
            // (white space takes at most 3 bytes).
            let tail = &bytes[bytes.len().saturating_sub(3)..];
            match tail.iter().rposition(|&byte| byte & 0xc0 != 0x80) {
                Some(at) => tail.len() - at,
                None => break,
            }
        };
        let (rest, char) = bytes.split_at(bytes.len().saturating_sub(width));
        if !is_space(char) {
            break;
        }
        bytes = rest;
    }
    bytes
}

/// Whether `char` is one white space character in UTF-8.
fn is_space(char: &[u8]) -> bool {
    match char {
        [byte] => matches!(byte, b'\t' | b'\n' | b'\x0b' | b'\x0c' | b'\r' | b' '),
        _ => std::str::from_utf8(char).is_ok_and(|text| {
            let mut chars = text.chars();
            chars.next().is_some_and(char::is_whitespace) && chars.next().is_none()
        }),
    }
}

/// Whether a cookie's raw (perhaps percent-encoded) name is `name`. An
/// encoded name is longer than the name it decodes to, so only a longer one
/// is worth decoding.
fn is_named(raw_name: &[u8], name: &[u8]) -> bool {
    raw_name == name || (raw_name.len() > name.len() && *percent_decoded(raw_name) == *name)
}

/// The `;`-separated pairs of one `Cookie` header.
fn pairs(header: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut rest = Some(header);
    std::iter::from_fn(move || {
        let current = rest?;
        match find_byte(current, 0, b';') {
            Some(at) => {
                rest = Some(&current[at + 1..]);
                Some(&current[..at])
            }
            None => {
                rest = None;
                Some(current)
            }
        }
    })
}

/// Every `name=value` pair of every `Cookie` header, as bytes (a header
/// that is not UTF-8 is still read, never a reason to fail).
fn cookie_pairs(headers: &HeaderMap) -> impl Iterator<Item = CookiePair<'_>> {
    headers
        .get_all(COOKIE)
        .iter()
        .flat_map(|header| pairs(header.as_bytes()))
        .filter_map(|pair| {
            let whole = trimmed(pair);
            let split = whole.iter().position(|&byte| byte == b'=')?;
            Some(CookiePair {
                name: trimmed(&whole[..split]),
                whole,
            })
        })
}

/// Why a [`SessionCookieBuilder`] refused its settings.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum CookieConfigError {
    /// The name is empty or has characters a cookie name may not have.
    InvalidName(String),
    /// A `__Host-` cookie must be `Secure`, have `Path=/` and no `Domain`.
    HostPrefix,
    /// A `__Secure-` cookie must be `Secure`.
    SecurePrefix,
    /// The path must start with `/` and hold no `;` or control characters.
    InvalidPath(String),
    /// The domain holds characters a domain may not have.
    InvalidDomain(String),
    /// `SameSite=None` without `Secure`: browsers drop such a cookie.
    SameSiteNoneWithoutSecure,
}

impl fmt::Display for CookieConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CookieConfigError::InvalidName(name) => write!(f, "invalid cookie name {name:?}"),
            CookieConfigError::HostPrefix => {
                f.write_str("a __Host- cookie must be Secure, with Path=/ and no Domain")
            }
            CookieConfigError::SecurePrefix => f.write_str("a __Secure- cookie must be Secure"),
            CookieConfigError::InvalidPath(path) => write!(f, "invalid cookie path {path:?}"),
            CookieConfigError::InvalidDomain(domain) => {
                write!(f, "invalid cookie domain {domain:?}")
            }
            CookieConfigError::SameSiteNoneWithoutSecure => {
                f.write_str("a SameSite=None cookie must be Secure")
            }
        }
    }
}

impl std::error::Error for CookieConfigError {}

/// Builds a [`SessionCookie`]; [`build`](SessionCookieBuilder::build) checks it.
#[derive(Clone)]
pub struct SessionCookieBuilder {
    name: Cow<'static, str>,
    path: Cow<'static, str>,
    domain: Option<Cow<'static, str>>,
    secure: bool,
    http_only: bool,
    same_site: SameSite,
    signing_key: Option<[u8; 32]>,
}

impl Default for SessionCookieBuilder {
    fn default() -> Self {
        SessionCookieBuilder {
            name: Cow::Borrowed(DEFAULT_COOKIE_NAME),
            path: Cow::Borrowed("/"),
            domain: None,
            secure: true,
            http_only: true,
            same_site: SameSite::Lax,
            signing_key: None,
        }
    }
}

impl fmt::Debug for SessionCookieBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionCookieBuilder")
            .field("name", &self.name)
            .field("signed", &self.signing_key.is_some())
            .finish_non_exhaustive()
    }
}

impl SessionCookieBuilder {
    /// The cookie's name. `__Host-` and `__Secure-` prefixes are checked.
    pub fn name(mut self, name: impl Into<Cow<'static, str>>) -> Self {
        self.name = name.into();
        self
    }

    /// The `Path` attribute. Default: `/`.
    pub fn path(mut self, path: impl Into<Cow<'static, str>>) -> Self {
        self.path = path.into();
        self
    }

    /// The `Domain` attribute. Default: none (host-only).
    pub fn domain(mut self, domain: impl Into<Cow<'static, str>>) -> Self {
        self.domain = Some(domain.into());
        self
    }

    /// The `Secure` attribute. Default: on. Browsers accept `Secure` cookies
    /// from `http://localhost` and `http://127.0.0.1`.
    pub fn secure(mut self, secure: bool) -> Self {
        self.secure = secure;
        self
    }

    /// The `HttpOnly` attribute. Default: on.
    pub fn http_only(mut self, http_only: bool) -> Self {
        self.http_only = http_only;
        self
    }

    /// The `SameSite` attribute. Default: `Lax`.
    pub fn same_site(mut self, same_site: SameSite) -> Self {
        self.same_site = same_site;
        self
    }

    /// Signs the cookie value with HMAC-SHA256 under `key` (the `cookie`
    /// crate's signed format); a value whose signature does not verify is
    /// refused before the store is asked.
    pub fn signing_key(mut self, key: Key) -> Self {
        let mut signing = [0u8; 32];
        signing.copy_from_slice(key.signing());
        self.signing_key = Some(signing);
        self
    }

    /// Checks the settings.
    pub fn build(self) -> Result<SessionCookie, CookieConfigError> {
        let name_ok = !self.name.is_empty()
            && self
                .name
                .bytes()
                .all(|b| b.is_ascii_graphic() && !b"()<>@,;:\\\"/[]?={}".contains(&b));
        if !name_ok {
            return Err(CookieConfigError::InvalidName(self.name.into_owned()));
        }
        let attribute_ok = |value: &str| !value.bytes().any(|b| b == b';' || b.is_ascii_control());
        if !self.path.starts_with('/') || !attribute_ok(&self.path) {
            return Err(CookieConfigError::InvalidPath(self.path.into_owned()));
        }
        if let Some(domain) = &self.domain {
            if domain.is_empty() || !attribute_ok(domain) || domain.contains(' ') {
                return Err(CookieConfigError::InvalidDomain(domain.to_string()));
            }
        }
        if self.name.starts_with("__Host-")
            && (!self.secure || self.path != "/" || self.domain.is_some())
        {
            return Err(CookieConfigError::HostPrefix);
        }
        if self.name.starts_with("__Secure-") && !self.secure {
            return Err(CookieConfigError::SecurePrefix);
        }
        if self.same_site == SameSite::None && !self.secure {
            return Err(CookieConfigError::SameSiteNoneWithoutSecure);
        }
        let mut cookie = SessionCookie {
            name: self.name,
            path: self.path,
            domain: self.domain,
            secure: self.secure,
            http_only: self.http_only,
            same_site: self.same_site,
            signing_key: self.signing_key,
            removal: HeaderValue::from_static(""),
        };
        let mut removal = cookie.base(String::new());
        removal.set_max_age(cookie::time::Duration::ZERO);
        removal.set_expires(OffsetDateTime::UNIX_EPOCH);
        cookie.removal = HeaderValue::try_from(removal.to_string())
            .map_err(|_| CookieConfigError::InvalidPath(cookie.path.to_string()))?;
        Ok(cookie)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    proptest::proptest! {
        #[test]
        fn find_byte_agrees_with_a_plain_search(
            bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..64),
            from in 0usize..70,
            needle in proptest::prelude::any::<u8>(),
        ) {
            let expected = bytes
                .get(from..)
                .and_then(|rest| rest.iter().position(|&b| b == needle))
                .map(|offset| from + offset);
            proptest::prop_assert_eq!(find_byte(&bytes, from, needle), expected);
        }

        #[test]
        fn find_byte_agrees_with_a_plain_search_among_near_misses(
            // The needle and the bytes a word-at-a-time search could take
            // for it (one bit off, one above, one below, zero).
            picks in proptest::collection::vec(0usize..6, 0..40),
            from in 0usize..44,
            needle in proptest::prelude::any::<u8>(),
        ) {
            let near = [needle, needle ^ 1, needle.wrapping_add(1), needle.wrapping_sub(1), 0, 0xff];
            let bytes: Vec<u8> = picks.iter().map(|&pick| near[pick]).collect();
            let expected = bytes
                .get(from..)
                .and_then(|rest| rest.iter().position(|&b| b == needle))
                .map(|offset| from + offset);
            proptest::prop_assert_eq!(find_byte(&bytes, from, needle), expected);
        }
    }

    #[test]
    fn strip_removes_the_cookie_under_any_encoding_of_its_name() {
        let cookie = SessionCookie::default();
        let mut headers = HeaderMap::new();
        headers.append(
            COOKIE,
            HeaderValue::from_static("a=1; session=x; %73ession=y; sessionx=2"),
        );
        headers.append(COOKIE, HeaderValue::from_static("%73%65ssion=z"));
        // White space `str::trim` removes, as tower-cookies does; U+FEFF
        // it keeps, so `\u{feff}session` is another cookie.
        headers.append(
            COOKIE,
            HeaderValue::from_bytes("\u{a0}session\u{3000}=w; \u{feff}session=v".as_bytes())
                .unwrap(),
        );
        cookie.strip(&mut headers);
        let kept: Vec<_> = headers.get_all(COOKIE).iter().collect();
        assert_eq!(
            kept,
            [HeaderValue::from_bytes("a=1; sessionx=2; \u{feff}session=v".as_bytes()).unwrap()]
        );
    }

    proptest::proptest! {
        /// `trimmed` trims what `str::trim` trims, on text made of white
        /// space of every kind and other characters; and bytes that are not
        /// UTF-8 never panic it.
        #[test]
        fn trimmed_trims_as_str_trim_does(
            text in "[ \t\n\x0b\x0c\r\u{85}\u{a0}\u{1680}\u{2000}-\u{200a}\u{2028}\u{2029}\u{202f}\u{205f}\u{3000}\u{feff}\u{1c}a=\"é€😀]{0,8}",
            bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..12),
        ) {
            proptest::prop_assert_eq!(trimmed(text.as_bytes()), text.trim().as_bytes());
            let _ = trimmed(&bytes);
        }
    }

    #[test]
    fn percent_decoded_decodes_escapes_and_keeps_the_rest() {
        for (raw, decoded) in [
            (&b"session"[..], &b"session"[..]),
            (b"%73ession", b"session"),
            (b"%73%65%73%73%69%6F%6e", b"session"),
            (b"a%2Fb%2fc", b"a/b/c"),
            (b"%2573", b"%73"),
            (b"%", b"%"),
            (b"%4", b"%4"),
            (b"%zz%4g%", b"%zz%4g%"),
            (b"%%41", b"%A"),
            (b"%ff%00", b"\xff\x00"),
            (b"", b""),
        ] {
            assert_eq!(*percent_decoded(raw), *decoded, "{raw:?}");
        }
        assert!(matches!(percent_decoded(b"no-escape"), Cow::Borrowed(_)));
        assert!(matches!(percent_decoded(b"100%"), Cow::Borrowed(_)));
    }

    #[test]
    fn find_byte_finds_the_first_needle_anywhere() {
        let text = b"abcdefgh;jklmnopq;rs;";
        for from in 0..=text.len() {
            let expected = text[from..]
                .iter()
                .position(|&b| b == b';')
                .map(|o| from + o);
            assert_eq!(find_byte(text, from, b';'), expected, "from {from}");
        }
        // Bytes next to the needle's value are no false matches.
        assert_eq!(find_byte(b"<<<<<<<<:::::::::", 0, b';'), None);
        assert_eq!(find_byte(b"\x3c\x3a;", 0, b';'), Some(2));
        assert_eq!(find_byte(b"", 0, b';'), None);
        assert_eq!(find_byte(b"ab", 5, b';'), None);
    }
}
