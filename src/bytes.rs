//! Byte-level helpers shared by the cookie reader and the route matcher:
//! a fast byte search and percent-decoding.

use std::borrow::Cow;

/// The index of the first `needle` at or after `from`. Eight bytes at a
/// time: headers are scanned on every request, and most of their bytes are
/// not separators. Kept over `memchr`, measured under callgrind: `memchr`
/// saves 59 instructions on an admitted request with one cookie but costs
/// 110 more when following tower-sessions (its dispatch outweighs its
/// speed on the short pieces of a `Set-Cookie` header and on cookie names;
/// 265 more there with an eight-cookie header, where it saves 126 without
/// tower-sessions); a plain `position` costs 111 and 366 more.
pub(crate) fn find_byte(bytes: &[u8], from: usize, needle: u8) -> Option<usize> {
    const ONES: u64 = u64::from_ne_bytes([0x01; 8]);
    const HIGHS: u64 = u64::from_ne_bytes([0x80; 8]);
    let pattern = ONES * u64::from(needle);
    let mut at = from;
    while let Some(chunk) = bytes.get(at..at + 8) {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        // Zero bytes of `x` are the needles; the lowest flagged byte is
        // always a true one (a borrow only flags bytes above it).
        let x = u64::from_le_bytes(word) ^ pattern;
        let flagged = x.wrapping_sub(ONES) & !x & HIGHS;
        if flagged != 0 {
            return Some(at + (flagged.trailing_zeros() / 8) as usize);
        }
        at += 8;
    }
    // Fewer than eight bytes left: the last eight of the slice, when it
    // has that many, as one word, with the bytes before `at` (searched
    // already, or before `from`) set to 0xff so that they neither match
    // nor borrow.
    if at >= bytes.len() {
        return None;
    }
    let Some(start) = bytes.len().checked_sub(8) else {
        return bytes[at..]
            .iter()
            .position(|&byte| byte == needle)
            .map(|offset| at + offset);
    };
    let mut word = [0u8; 8];
    word.copy_from_slice(&bytes[start..]);
    let skipped = (at - start) * 8;
    let x = (u64::from_le_bytes(word) ^ pattern) | ((1u64 << skipped) - 1);
    let flagged = x.wrapping_sub(ONES) & !x & HIGHS;
    (flagged != 0).then(|| start + (flagged.trailing_zeros() / 8) as usize)
}

/// `bytes` with `%XX` sequences decoded; others (`%` not followed by two hex
/// digits) kept as they are. The `percent-encoding` crate's decoder, which
/// the `cookie` crate (and so tower-cookies) decodes cookies with: borrowed
/// when there is nothing to decode.
pub(crate) fn percent_decoded(bytes: &[u8]) -> Cow<'_, [u8]> {
    // The crate looks for an escape byte by byte, through an iterator (about
    // 14 instructions a byte); a header value seldom has one, so a `%` is
    // looked for first.
    if find_byte(bytes, 0, b'%').is_none() {
        return Cow::Borrowed(bytes);
    }
    percent_encoding::percent_decode(bytes).into()
}
