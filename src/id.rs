//! Session IDs (what the browser holds) and store keys (what the store sees).

use std::fmt;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use sha2::{Digest, Sha256};

/// Random bytes in a session ID: 128 bits.
pub const SESSION_ID_BYTES: usize = 16;
/// Length of an encoded session ID: unpadded URL-safe base64 of 16 bytes.
pub const SESSION_ID_LEN: usize = 22;

/// A session ID: 128 bits from the operating system's CSPRNG.
///
/// It travels in the cookie as 22 characters of unpadded URL-safe base64 and
/// never reaches the store, which sees only its [`SessionKey`]. `Debug` does
/// not print it.
///
/// ```
/// use tower_session_lifetime::SessionId;
///
/// let id = SessionId::generate()?;
/// let encoded = id.encode();
/// assert_eq!(encoded.len(), 22);
/// assert_eq!(SessionId::parse(&encoded), Some(id.clone()));
/// assert_eq!(format!("{id:?}"), "SessionId(..)");
/// assert_eq!(SessionId::parse("not an id"), None);
/// # Ok::<(), getrandom::Error>(())
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct SessionId([u8; SESSION_ID_BYTES]);

impl SessionId {
    /// A new random ID.
    pub fn generate() -> Result<Self, getrandom::Error> {
        let mut bytes = [0u8; SESSION_ID_BYTES];
        getrandom::getrandom(&mut bytes)?;
        Ok(SessionId(bytes))
    }

    /// Reads an encoded ID: exactly 22 characters of the URL-safe alphabet
    /// in canonical form, or `None`.
    pub fn parse(encoded: &str) -> Option<Self> {
        if encoded.len() != SESSION_ID_LEN {
            return None;
        }
        let mut bytes = [0u8; SESSION_ID_BYTES];
        match URL_SAFE_NO_PAD.decode_slice(encoded, &mut bytes) {
            Ok(SESSION_ID_BYTES) => Some(SessionId(bytes)),
            _ => None,
        }
    }

    /// The form the cookie carries.
    pub fn encode(&self) -> String {
        URL_SAFE_NO_PAD.encode(self.0)
    }

    /// The key the store keeps this session under.
    pub fn key(&self) -> SessionKey {
        let digest = Sha256::digest(self.0);
        let mut key = [0u8; SessionKey::LEN];
        key.copy_from_slice(&digest[..SessionKey::LEN]);
        SessionKey(key)
    }
}

impl fmt::Debug for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SessionId(..)")
    }
}

/// The key a store keeps a session under: the first 128 bits of the SHA-256
/// of its ID.
///
/// A copy of the store (a backup, a leaked dump, a log of keys) therefore
/// holds nothing a client could present as a cookie.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SessionKey([u8; SessionKey::LEN]);

impl SessionKey {
    /// Length in bytes.
    pub const LEN: usize = 16;

    /// A key from its bytes, as a store reads it back.
    pub const fn from_bytes(bytes: [u8; SessionKey::LEN]) -> Self {
        SessionKey(bytes)
    }

    /// The key's bytes.
    pub const fn as_bytes(&self) -> &[u8; SessionKey::LEN] {
        &self.0
    }

    /// Lower-case hex, 32 characters: for stores with text keys.
    pub fn to_hex(&self) -> String {
        use fmt::Write as _;
        let mut hex = String::with_capacity(2 * SessionKey::LEN);
        for byte in self.0 {
            let _ = write!(hex, "{byte:02x}");
        }
        hex
    }
}

impl fmt::Debug for SessionKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SessionKey({})", self.to_hex())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_distinct_and_keys_differ_from_ids() {
        let a = SessionId::generate().unwrap();
        let b = SessionId::generate().unwrap();
        assert_ne!(a, b);
        assert_ne!(a.key(), b.key());
        assert_ne!(&a.key().as_bytes()[..], &a.0[..]);
        assert_eq!(a.key(), SessionId::parse(&a.encode()).unwrap().key());
    }

    #[test]
    fn parse_refuses_wrong_length_alphabet_and_non_canonical_forms() {
        let id = SessionId::generate().unwrap().encode();
        assert!(SessionId::parse(&id[..21]).is_none());
        assert!(SessionId::parse(&format!("{id}A")).is_none());
        assert!(SessionId::parse(&id.replace(|_: char| true, "+")).is_none());
        assert!(SessionId::parse("AAAAAAAAAAAAAAAAAAAAA=").is_none());
        // 22 characters carry 132 bits; the last 4 must be zero.
        assert!(SessionId::parse("AAAAAAAAAAAAAAAAAAAAAB").is_none());
        assert!(SessionId::parse("AAAAAAAAAAAAAAAAAAAAAA").is_some());
        assert!(SessionId::parse("ééééééééééé").is_none());
    }
}
