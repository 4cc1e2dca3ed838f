//! Incremental UTF-8 validation (RFC 6455 §8.1, §5.6).
//!
//! "When an endpoint is to interpret a byte stream as UTF-8 but finds that
//! the byte stream is not, in fact, a valid UTF-8 stream, that endpoint MUST
//! _Fail the WebSocket Connection_." A text message may be split anywhere,
//! inside a code point included, across chunks and fragments; the validator
//! keeps the (at most three) bytes of an unfinished code point between calls
//! and reports the first byte that cannot begin or continue a valid sequence
//! as soon as it arrives (fail fast), not at the end of the message.

use core::fmt;

/// An invalid byte found by [`Utf8Validator::feed`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Utf8Error {
    /// Index, in the slice given to `feed`, of the first byte that cannot
    /// begin or continue a valid sequence.
    pub index: usize,
}

impl fmt::Display for Utf8Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid UTF-8 at index {}", self.index)
    }
}

/// Validates UTF-8 fed in pieces.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Utf8Validator {
    pending: [u8; 4],
    pending_len: u8,
}

/// The sequence length a valid UTF-8 lead byte announces.
fn sequence_len(lead: u8) -> usize {
    match lead {
        0xC2..=0xDF => 2,
        0xE0..=0xEF => 3,
        _ => 4,
    }
}

/// Index of the first byte that cannot begin or continue a sequence, given
/// a definite error from `std::str::from_utf8`.
fn bad_index(input: &[u8], e: core::str::Utf8Error, error_len: usize) -> usize {
    let start = e.valid_up_to();
    // If the sequence starts with a possible lead byte, the lead and the
    // `error_len - 1` bytes after it were a valid prefix and the byte that
    // ends the prefix is the culprit; otherwise the first byte is.
    match input.get(start) {
        Some(0xC2..=0xF4) => start + error_len,
        _ => start,
    }
}

impl Utf8Validator {
    /// A validator at the start of a message.
    pub fn new() -> Self {
        Self::default()
    }

    /// Validates the next piece of the text.
    pub fn feed(&mut self, bytes: &[u8]) -> Result<(), Utf8Error> {
        // Most text is ASCII, which `is_ascii` checks a word at a time.
        if self.pending_len == 0 && bytes.is_ascii() {
            return Ok(());
        }
        let mut input = bytes;
        let mut base = 0;
        if self.pending_len > 0 {
            let have = usize::from(self.pending_len);
            let need = sequence_len(self.pending[0]) - have;
            let take = need.min(input.len());
            let mut tmp = self.pending;
            tmp[have..have + take].copy_from_slice(&input[..take]);
            match core::str::from_utf8(&tmp[..have + take]) {
                Ok(_) => {
                    self.pending_len = 0;
                    input = &input[take..];
                    base = take;
                }
                Err(e) => match e.error_len() {
                    None => {
                        // Still a valid prefix: `take == input.len()`.
                        self.pending = tmp;
                        self.pending_len = (have + take) as u8;
                        return Ok(());
                    }
                    Some(len) => {
                        let i = bad_index(&tmp[..have + take], e, len);
                        return Err(Utf8Error { index: i.saturating_sub(have) });
                    }
                },
            }
        }
        match core::str::from_utf8(input) {
            Ok(_) => Ok(()),
            Err(e) => match e.error_len() {
                None => {
                    let tail = &input[e.valid_up_to()..];
                    self.pending[..tail.len()].copy_from_slice(tail);
                    self.pending_len = tail.len() as u8;
                    Ok(())
                }
                Some(len) => Err(Utf8Error { index: base + bad_index(input, e, len) }),
            },
        }
    }

    /// Whether the text so far ends on a code point boundary (the message
    /// may end here).
    pub fn is_complete(&self) -> bool {
        self.pending_len == 0
    }

    /// Number of bytes of an unfinished code point held from earlier calls.
    pub fn pending_len(&self) -> usize {
        usize::from(self.pending_len)
    }

    /// Starts over for a new message.
    pub fn reset(&mut self) {
        self.pending_len = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Validates `bytes` split at `cuts`, returning the absolute index of the
    /// first bad byte, or `Err(None)` when only the end is missing.
    fn validate_split(bytes: &[u8], cuts: &[usize]) -> Result<(), Option<usize>> {
        let mut v = Utf8Validator::new();
        let mut start = 0;
        let mut points: Vec<usize> = cuts.iter().map(|c| c % (bytes.len() + 1)).collect();
        points.sort_unstable();
        points.push(bytes.len());
        for p in points {
            if p < start {
                continue;
            }
            v.feed(&bytes[start..p]).map_err(|e| Some(start + e.index))?;
            start = p;
        }
        if v.is_complete() { Ok(()) } else { Err(None) }
    }

    /// The reference: std's validator, with the same fail-fast index.
    fn reference(bytes: &[u8]) -> Result<(), Option<usize>> {
        match core::str::from_utf8(bytes) {
            Ok(_) => Ok(()),
            Err(e) => match e.error_len() {
                None => Err(None),
                Some(len) => Err(Some(bad_index(bytes, e, len))),
            },
        }
    }

    #[test]
    fn table() {
        // (input, first bad index or None for "incomplete at end", Ok)
        let cases: &[(&[u8], Result<(), Option<usize>>)] = &[
            (b"", Ok(())),
            (b"Hello", Ok(())),
            ("κόσμε".as_bytes(), Ok(())),
            (b"\xf0\x9f\x98\x80", Ok(())),
            (b"\xff", Err(Some(0))),
            (b"ab\x80", Err(Some(2))),
            (b"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80edited", Err(Some(12))),
            (b"\xe2\x82", Err(None)),
            (b"\xe2\x82\x41", Err(Some(2))),
            (b"\xe0\x80\x80", Err(Some(1))),
            (b"\xf4\x90\x80\x80", Err(Some(1))),
            (b"\xc0\xaf", Err(Some(0))),
            (b"\xf5", Err(Some(0))),
        ];
        for (input, expected) in cases {
            assert_eq!(reference(input), *expected, "{input:x?}");
            for cut in 0..=input.len() {
                assert_eq!(validate_split(input, &[cut]), *expected, "{input:x?} cut {cut}");
            }
            let every: Vec<usize> = (0..input.len()).collect();
            assert_eq!(validate_split(input, &every), *expected, "{input:x?} bytewise");
        }
    }

    proptest! {
        #[test]
        fn split_validation_equals_std(
            bytes in prop::collection::vec(prop_oneof![Just(0x41u8), Just(0x80), Just(0xBF), Just(0xC3), Just(0xE0), Just(0xED), Just(0xF0), Just(0xF4), any::<u8>()], 0..40),
            cuts in prop::collection::vec(any::<usize>(), 0..6),
        ) {
            prop_assert_eq!(validate_split(&bytes, &cuts), reference(&bytes));
        }

        #[test]
        fn valid_text_split_anywhere_is_valid(s in "\\PC{0,40}", cuts in prop::collection::vec(any::<usize>(), 0..6)) {
            prop_assert_eq!(validate_split(s.as_bytes(), &cuts), Ok(()));
        }
    }
}
