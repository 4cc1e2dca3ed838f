//! Bench payloads: a sequence number at the start of each message, then a
//! fixed pattern, so every echo can be checked byte for byte and loss,
//! duplication and reordering told apart.

/// What the messages look like.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shape {
    /// Payload size in bytes.
    pub size: usize,
    /// Text messages (the sequence number in hex digits, the pattern ASCII)
    /// instead of binary.
    pub text: bool,
}

impl Shape {
    /// Bytes of the sequence-number field (cut to the payload size).
    pub fn seq_len(&self) -> usize {
        let full = if self.text { 16 } else { 8 };
        full.min(self.size)
    }

    /// Writes the sequence field of message `seq` into `out`
    /// (`out.len() == seq_len()`).
    pub fn write_seq(&self, seq: u64, out: &mut [u8]) {
        let mut full = [0u8; 16];
        let n = if self.text {
            for (i, b) in full.iter_mut().enumerate() {
                *b = b"0123456789abcdef"[((seq >> (60 - 4 * i)) & 15) as usize];
            }
            16
        } else {
            full[..8].copy_from_slice(&seq.to_be_bytes());
            8
        };
        let take = out.len().min(n);
        out[..take].copy_from_slice(&full[..take]);
    }

    /// Reads a sequence number back, if the field is whole and well formed.
    pub fn read_seq(&self, field: &[u8]) -> Option<u64> {
        if self.text {
            if field.len() < 16 {
                return None;
            }
            let s = std::str::from_utf8(&field[..16]).ok()?;
            u64::from_str_radix(s, 16).ok()
        } else {
            let bytes: [u8; 8] = field.get(..8)?.try_into().ok()?;
            Some(u64::from_be_bytes(bytes))
        }
    }

    /// The payload after the sequence field: the same for every message.
    pub fn pattern(&self) -> Vec<u8> {
        let len = self.size - self.seq_len();
        if self.text {
            (0..len).map(|i| b'a' + (i % 26) as u8).collect()
        } else {
            (0..len).map(|i| (i.wrapping_mul(131) % 251) as u8).collect()
        }
    }

    /// A whole payload, for tests.
    pub fn payload(&self, seq: u64) -> Vec<u8> {
        let mut out = vec![0u8; self.seq_len()];
        self.write_seq(seq, &mut out);
        out.extend_from_slice(&self.pattern());
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequence_numbers_round_trip() {
        for text in [false, true] {
            let shape = Shape { size: 64, text };
            for seq in [0, 1, 255, 1 << 40, u64::MAX] {
                let p = shape.payload(seq);
                assert_eq!(p.len(), 64);
                assert_eq!(shape.read_seq(&p), Some(seq));
                if text {
                    assert!(std::str::from_utf8(&p).is_ok());
                }
            }
        }
        let tiny = Shape { size: 4, text: false };
        assert_eq!(tiny.payload(7).len(), 4);
        assert_eq!(tiny.read_seq(&tiny.payload(7)), None);
    }
}
