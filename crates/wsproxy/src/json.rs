//! A minimal JSON writer for the events written once per frame (`frame`,
//! `message`): at a few hundred thousand frames a second, serde's generic
//! serializer (and `fmt` for integers) cost more than decoding the frames.
//! Every other event goes through serde. The output is byte for byte what
//! `serde_json` writes for the same struct (tested against it), so the
//! README's field list and readers are unaffected.

/// Appends `,"name":` given as that literal (`b",\"len\":"`): a constant
/// the compiler copies inline (the envelope always comes first, so every
/// field follows a comma).
pub(crate) fn key(out: &mut Vec<u8>, literal: &'static [u8]) {
    debug_assert!(literal.starts_with(b",\"") && literal.ends_with(b"\":"));
    out.extend_from_slice(literal);
}

/// Appends an unsigned integer.
pub(crate) fn u64(out: &mut Vec<u8>, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    loop {
        at -= 1;
        digits[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[at..]);
}

/// Appends `true` or `false`.
pub(crate) fn bool(out: &mut Vec<u8>, b: bool) {
    out.extend_from_slice(if b { b"true" } else { b"false" });
}

/// Appends a string that needs no escaping (names, hex digits) as is.
pub(crate) fn plain_str(out: &mut Vec<u8>, s: &str) {
    debug_assert!(!s.bytes().any(|b| b < 0x20 || b == b'"' || b == b'\\'), "{s:?} needs escaping");
    out.push(b'"');
    out.extend_from_slice(s.as_bytes());
    out.push(b'"');
}

/// Appends a JSON string, escaped as `serde_json` does (RFC 8259 §7: the
/// quote, the backslash and control characters; `\n`-style short forms
/// where they exist, `\u00XX` otherwise; everything else as is).
pub(crate) fn str(out: &mut Vec<u8>, s: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push(b'"');
    let bytes = s.as_bytes();
    // Most strings (hex previews, names, text) need no escape: check in
    // blocks the compiler can vectorize, then copy once.
    let needs_escape = |b: u8| b < 0x20 || b == b'"' || b == b'\\';
    if bytes.chunks(32).all(|block| !block.iter().fold(false, |any, &b| any | needs_escape(b))) {
        out.extend_from_slice(bytes);
        out.push(b'"');
        return;
    }
    let mut plain = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let short: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0x08 => b"\\b",
            0x0c => b"\\f",
            0..=0x1f => b"",
            _ => continue,
        };
        out.extend_from_slice(&bytes[plain..i]);
        plain = i + 1;
        if short.is_empty() {
            out.extend_from_slice(&[b'\\', b'u', b'0', b'0', HEX[usize::from(b >> 4)], HEX[usize::from(b & 15)]]);
        } else {
            out.extend_from_slice(short);
        }
    }
    out.extend_from_slice(&bytes[plain..]);
    out.push(b'"');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_are_escaped_like_serde_json() {
        let every_ascii: String = (0u8..128).map(char::from).collect();
        for s in ["", "plain", "κόσμε \u{1F600}", "a\"b\\c/d", "\u{7f}\u{80}\u{2028}", &every_ascii] {
            let mut out = Vec::new();
            str(&mut out, s);
            assert_eq!(String::from_utf8(out).expect("utf-8"), serde_json::to_string(s).expect("json"), "{s:?}");
        }
    }

    #[test]
    fn integers_are_written_like_serde_json() {
        for n in [0, 1, 9, 10, 99, 100, 12345, u64::from(u32::MAX), u64::MAX - 1, u64::MAX] {
            let mut out = Vec::new();
            u64(&mut out, n);
            assert_eq!(out, n.to_string().into_bytes());
        }
    }
}
