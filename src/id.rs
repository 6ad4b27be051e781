//! Session IDs (what the browser holds) and store keys (what the store sees).

use std::fmt;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

const INVALID: u8 = 0xff;

/// The value of each byte in the URL-safe base64 alphabet, or `INVALID`.
const URL_SAFE_VALUES: [u8; 256] = {
    let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut values = [INVALID; 256];
    let mut index = 0;
    while index < alphabet.len() {
        values[alphabet[index] as usize] = index as u8;
        index += 1;
    }
    values
};

/// Random bytes in a session ID: 128 bits.
pub const SESSION_ID_BYTES: usize = 16;
/// Length of an encoded session ID: unpadded URL-safe base64 of 16 bytes.
pub const SESSION_ID_LEN: usize = 22;

/// A session ID as its cookie spells it: the only spelling
/// [`SessionId::parse`] takes, so two IDs are the same exactly when their
/// texts are (in follow mode, the inner layer's `Set-Cookie` is compared
/// with the request's text instead of decoded).
pub(crate) type IdText = [u8; SESSION_ID_LEN];

/// A session ID: 128 bits from the operating system's CSPRNG.
///
/// It travels in the cookie as 22 characters of unpadded URL-safe base64 and
/// never reaches the store, which sees only its [`SessionKey`]. `Debug` does
/// not print it.
///
/// ```
/// use tower_session_lifetime::id::SessionId;
///
/// let id = SessionId::generate()?;
/// let encoded = id.encode();
/// assert_eq!(encoded.len(), 22);
/// assert_eq!(SessionId::parse(&encoded), Some(id.clone()));
/// assert_eq!(format!("{id:?}"), "SessionId(..)");
/// assert_eq!(SessionId::parse("not an id"), None);
/// # Ok::<(), tower_session_lifetime::id::RandomnessError>(())
/// ```
#[derive(Clone)]
pub struct SessionId([u8; SESSION_ID_BYTES]);

/// The operating system's random number generator failed, so no session ID
/// could be made. Its [`Display`](fmt::Display) says what the OS reported.
#[derive(Debug)]
pub struct RandomnessError(getrandom::Error);

impl fmt::Display for RandomnessError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "the OS random number generator failed: {}", self.0)
    }
}

impl std::error::Error for RandomnessError {}

/// Compares in constant time, so that comparing a presented ID with a
/// known one tells an attacker nothing through timing.
impl PartialEq for SessionId {
    fn eq(&self, other: &Self) -> bool {
        // Two 64-bit words, not sixteen bytes: `subtle` compares a slice a
        // byte at a time, each behind an optimisation barrier (some 560
        // instructions against about 20), with the same guarantee.
        let words = |id: &SessionId| {
            let (high, low) = id.0.split_at(8);
            let word = |half: &[u8]| u64::from_ne_bytes(half.try_into().expect("8 bytes"));
            (word(high), word(low))
        };
        let ((a_high, a_low), (b_high, b_low)) = (words(self), words(other));
        (a_high.ct_eq(&b_high) & a_low.ct_eq(&b_low)).into()
    }
}

impl Eq for SessionId {}

impl SessionId {
    /// A new random ID.
    pub fn generate() -> Result<Self, RandomnessError> {
        let mut bytes = [0u8; SESSION_ID_BYTES];
        getrandom::getrandom(&mut bytes).map_err(RandomnessError)?;
        Ok(SessionId(bytes))
    }

    /// Reads an encoded ID: exactly 22 characters of the URL-safe alphabet
    /// in canonical form, or `None`.
    pub fn parse(encoded: &str) -> Option<Self> {
        SessionId::parse_bytes(encoded.as_bytes())
    }

    /// [`parse`](SessionId::parse) on raw bytes, as a cookie header holds
    /// them. Decodes the 22 characters with a table into one 128-bit
    /// number: this runs on every request, and the `base64` crate's
    /// `decode_slice`, as strict, costs 370 instructions a call under
    /// callgrind against about 100.
    pub(crate) fn parse_bytes(encoded: &[u8]) -> Option<Self> {
        let encoded: &[u8; SESSION_ID_LEN] = encoded.try_into().ok()?;
        let (last, leading) = encoded.split_last().expect("22 characters");
        // The first 21 characters carry 126 bits; every valid value is
        // below 64, so one OR of them all tells whether any was not.
        let mut bits = 0u128;
        let mut seen = 0u8;
        for &char in leading {
            let sextet = URL_SAFE_VALUES[usize::from(char)];
            seen |= sextet;
            bits = (bits << 6) | u128::from(sextet);
        }
        let last = URL_SAFE_VALUES[usize::from(*last)];
        // 22 characters carry 132 bits: the last one's low 4 bits must be
        // zero, or the form is not canonical.
        if (seen | last) >= 64 || last & 0x0f != 0 {
            return None;
        }
        let bytes = ((bits << 2) | u128::from(last >> 4)).to_be_bytes();
        Some(SessionId(bytes))
    }

    /// The ID's bytes, for the tower-sessions ID of the same session.
    #[cfg(feature = "tower-sessions")]
    pub(crate) fn as_bytes(&self) -> &[u8; SESSION_ID_BYTES] {
        &self.0
    }

    /// The ID with these bytes: the session of a tower-sessions ID.
    #[cfg(feature = "tower-sessions")]
    pub(crate) fn from_bytes(bytes: [u8; SESSION_ID_BYTES]) -> Self {
        SessionId(bytes)
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
        let mut hex = String::with_capacity(2 * SessionKey::LEN);
        self.push_hex(&mut hex);
        hex
    }

    /// Appends [`to_hex`](SessionKey::to_hex) to `out`, so that a store's
    /// text key (a prefix, then the hex) takes one allocation. From a
    /// table: `write!` of each byte as `{:02x}` went through the formatting
    /// machinery 16 times, about 1 % of a Redis-backed app's CPU.
    pub(crate) fn push_hex(&self, out: &mut String) {
        const DIGITS: &[u8; 16] = b"0123456789abcdef";
        out.extend(self.0.iter().flat_map(|&byte| {
            [byte >> 4, byte & 0x0f].map(|nibble| char::from(DIGITS[usize::from(nibble)]))
        }));
    }

    /// A short name for the session in logs and traces: the key's first 48
    /// bits in hex (12 characters). The key is itself a SHA-256 of the ID,
    /// so this cannot give the ID back; it matches the start of
    /// [`to_hex`](SessionKey::to_hex).
    ///
    /// ```
    /// use tower_session_lifetime::id::SessionKey;
    ///
    /// let key = SessionKey::from_bytes([0xab; SessionKey::LEN]);
    /// assert_eq!(key.short().to_string(), "abababababab");
    /// assert!(key.to_hex().starts_with(&key.short().to_string()));
    /// ```
    pub fn short(&self) -> ShortKey {
        let mut prefix = [0; ShortKey::LEN];
        prefix.copy_from_slice(&self.0[..ShortKey::LEN]);
        ShortKey(prefix)
    }

    /// The key whose [`to_hex`](SessionKey::to_hex) is `hex` (either case);
    /// `None` unless it is 32 hex digits.
    ///
    /// ```
    /// use tower_session_lifetime::id::SessionKey;
    ///
    /// let key = SessionKey::from_bytes([0xab; SessionKey::LEN]);
    /// assert_eq!(SessionKey::from_hex(&key.to_hex()), Some(key));
    /// assert_eq!(SessionKey::from_hex("not hex"), None);
    /// ```
    pub fn from_hex(hex: &str) -> Option<Self> {
        let digits = hex.as_bytes();
        if digits.len() != 2 * SessionKey::LEN {
            return None;
        }
        let mut bytes = [0; SessionKey::LEN];
        for (byte, pair) in bytes.iter_mut().zip(digits.chunks_exact(2)) {
            let high = char::from(pair[0]).to_digit(16)?;
            let low = char::from(pair[1]).to_digit(16)?;
            *byte = (high * 16 + low) as u8;
        }
        Some(SessionKey(bytes))
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
    fn hex_is_every_byte_as_two_lower_case_digits_and_reads_back() {
        for byte in 0..=255u8 {
            let mut bytes = [byte; SessionKey::LEN];
            bytes[SessionKey::LEN - 1] = byte.rotate_left(4) ^ 0x5a;
            let key = SessionKey::from_bytes(bytes);
            let expected: String = bytes.iter().map(|byte| format!("{byte:02x}")).collect();
            assert_eq!(key.to_hex(), expected);
            assert_eq!(SessionKey::from_hex(&expected), Some(key));
            let mut prefixed = String::from("tsl:");
            key.push_hex(&mut prefixed);
            assert_eq!(prefixed, format!("tsl:{expected}"));
        }
    }

    #[test]
    fn ids_that_differ_in_any_bit_are_unequal() {
        let id = SessionId::generate().unwrap();
        assert_eq!(id, id.clone());
        for bit in 0..128 {
            let mut other = id.clone();
            other.0[bit / 8] ^= 1 << (bit % 8);
            assert_ne!(id, other, "bit {bit}");
        }
    }

    #[test]
    fn the_table_decoder_agrees_with_the_base64_crate() {
        for _ in 0..1000 {
            let id = SessionId::generate().unwrap();
            let encoded = id.encode();
            assert_eq!(SessionId::parse(&encoded), Some(id));
        }
        let mut decoded = [0u8; 16];
        for byte in 0..=255u8 {
            let mut bytes = [0u8; 16];
            bytes[0] = byte;
            bytes[15] = byte.rotate_left(3);
            let encoded = URL_SAFE_NO_PAD.encode(bytes);
            URL_SAFE_NO_PAD
                .decode_slice(&encoded, &mut decoded)
                .unwrap();
            assert_eq!(SessionId::parse(&encoded).unwrap().0, decoded);
        }
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

    /// The URL-safe alphabet, in sextet order.
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

    /// What `parse_bytes` must accept, spelled out independently of any
    /// decoder: exactly 22 bytes of the URL-safe alphabet, the last one's
    /// low 4 bits zero (132 bits carry 128).
    fn acceptable(encoded: &[u8]) -> bool {
        let sextet = |byte: &u8| ALPHABET.iter().position(|c| c == byte);
        encoded.len() == SESSION_ID_LEN
            && encoded.iter().all(|byte| sextet(byte).is_some())
            && sextet(&encoded[SESSION_ID_LEN - 1]).is_some_and(|last| last & 0x0f == 0)
    }

    #[test]
    fn parse_rejects_every_malformed_form() {
        let valid = *b"8vO5vkkXPH-NWjW4-zae_g";
        assert!(acceptable(&valid));
        // Every byte value at every position: other characters (`+`, `/`,
        // `=`, white space, controls, non-ASCII), and the 48 last
        // characters with trailing bits set.
        let mut rejected = 0;
        for position in 0..SESSION_ID_LEN {
            for byte in 0..=u8::MAX {
                let mut encoded = valid;
                encoded[position] = byte;
                let parsed = SessionId::parse_bytes(&encoded);
                assert_eq!(parsed.is_some(), acceptable(&encoded), "{encoded:?}");
                if let Some(id) = parsed {
                    assert_eq!(id.encode().as_bytes(), encoded, "canonical");
                } else {
                    rejected += 1;
                }
            }
        }
        assert_eq!(rejected, 21 * (256 - 64) + (256 - 4));
        // Every other length, of valid characters, and padded forms.
        for length in (0..=96).filter(|&length| length != SESSION_ID_LEN) {
            assert!(
                SessionId::parse_bytes(&vec![b'A'; length]).is_none(),
                "{length}"
            );
            assert!(SessionId::parse_bytes(&valid.repeat(5)[..length]).is_none());
        }
        for padded in [
            "8vO5vkkXPH-NWjW4-zae_g==",
            "8vO5vkkXPH-NWjW4-zae_g=",
            "8vO5vkkXPH-NWjW4-zae==",
            "8vO5vkkXPH-NWjW4-zae_==",
            "AAAAAAAAAAAAAAAAAAAA==",
            "AAAAAAAAAAAAAAAAAAAAA=",
        ] {
            assert!(SessionId::parse(padded).is_none(), "{padded}");
        }
        // The standard alphabet's spelling of the same bytes.
        let standard = base64::engine::general_purpose::STANDARD_NO_PAD
            .encode(SessionId::parse_bytes(&valid).unwrap().0);
        assert!(SessionId::parse(&standard).is_none(), "{standard}");
    }

    proptest::proptest! {
        /// Any 22 bytes drawn from the alphabet and its neighbours: accepted
        /// exactly when `acceptable`, and then decoded as the base64 crate
        /// decodes them.
        #[test]
        fn parse_accepts_exactly_the_canonical_forms(
            encoded in proptest::collection::vec(
                proptest::prop_oneof![
                    8 => proptest::sample::select(ALPHABET.to_vec()),
                    1 => proptest::sample::select(b"+/=. %\0\x7f\xff".to_vec()),
                    1 => proptest::prelude::any::<u8>(),
                ],
                20..=24,
            ),
        ) {
            let parsed = SessionId::parse_bytes(&encoded);
            proptest::prop_assert_eq!(parsed.is_some(), acceptable(&encoded));
            if let Some(id) = parsed {
                proptest::prop_assert_eq!(&URL_SAFE_NO_PAD.decode(&encoded).unwrap()[..], &id.0[..]);
            }
        }
    }
}

/// The start of a [`SessionKey`], naming a session in logs; see
/// [`SessionKey::short`].
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct ShortKey([u8; ShortKey::LEN]);

impl ShortKey {
    /// Length in bytes (12 hex digits).
    pub const LEN: usize = 6;
}

impl fmt::Display for ShortKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for byte in self.0 {
            write!(f, "{byte:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for ShortKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ShortKey({self})")
    }
}
