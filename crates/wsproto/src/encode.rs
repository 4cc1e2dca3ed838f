//! The frame encoder (RFC 6455 §5.2) and close payloads (§5.5.1).

use crate::close::CloseCode;
use crate::header::{FrameHeader, MAX_HEADER_LEN};
use crate::mask::apply_mask;

/// Appends one frame to `out`: `header` (its `payload_len` is set to
/// `payload.len()`) and the payload, masked with `header.mask` if set.
///
/// The length is always written in its minimal form. Nothing is checked:
/// an encoder for a test tool must be able to write broken frames too.
pub fn encode_frame(header: &FrameHeader, payload: &[u8], out: &mut Vec<u8>) {
    let mut header = *header;
    header.payload_len = payload.len() as u64;
    let mut buf = [0u8; MAX_HEADER_LEN];
    let n = header.encode(&mut buf);
    out.reserve(n + payload.len());
    out.extend_from_slice(&buf[..n]);
    let start = out.len();
    out.extend_from_slice(payload);
    if let Some(key) = header.mask {
        apply_mask(&mut out[start..], key, 0);
    }
}

/// The payload of a close frame: the code in network byte order, then the
/// reason (§5.5.1). Reasons are cut at a character boundary so that the
/// payload stays within the 125 bytes of a control frame.
pub fn encode_close_payload(code: CloseCode, reason: &str) -> Vec<u8> {
    let mut end = reason.len().min(123);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    let mut out = Vec::with_capacity(2 + end);
    out.extend_from_slice(&code.0.to_be_bytes());
    out.extend_from_slice(&reason.as_bytes()[..end]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::OpCode;

    #[test]
    fn rfc_5_7_masked_hello() {
        let mut header = FrameHeader::new(OpCode::Text, 0);
        header.mask = Some([0x37, 0xfa, 0x21, 0x3d]);
        let mut out = Vec::new();
        encode_frame(&header, b"Hello", &mut out);
        assert_eq!(out, [0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58]);
    }

    #[test]
    fn length_forms() {
        for (len, header_len) in [(0usize, 2usize), (125, 2), (126, 4), (65535, 4), (65536, 10)] {
            let mut out = Vec::new();
            encode_frame(&FrameHeader::new(OpCode::Binary, 0), &vec![7; len], &mut out);
            assert_eq!(out.len(), header_len + len, "{len}");
        }
    }

    #[test]
    fn close_reason_is_cut_at_a_char_boundary() {
        let reason = "é".repeat(100);
        let payload = encode_close_payload(CloseCode::NORMAL, &reason);
        assert!(payload.len() <= 125);
        assert!(std::str::from_utf8(&payload[2..]).is_ok());
    }
}
