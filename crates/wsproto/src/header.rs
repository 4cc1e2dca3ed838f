//! The frame header (RFC 6455 §5.2): parsing and encoding.
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-------+-+-------------+-------------------------------+
//! |F|R|R|R| opcode|M| Payload len |    Extended payload length    |
//! |I|S|S|S|  (4)  |A|     (7)     |             (16/64)           |
//! |N|V|V|V|       |S|             |   (if payload len==126/127)   |
//! | |1|2|3|       |K|             |                               |
//! +-+-+-+-+-------+-+-------------+ - - - - - - - - - - - - - - - +
//! |     Extended payload length continued, if payload len == 127  |
//! + - - - - - - - - - - - - - - - +-------------------------------+
//! |                               |Masking-key, if MASK set to 1  |
//! +-------------------------------+-------------------------------+
//! ```

use crate::Status;
use crate::opcode::OpCode;

/// The longest possible header: 2 bytes, an 8-byte length, a 4-byte mask key.
pub const MAX_HEADER_LEN: usize = 14;

/// §5.5: "All control frames MUST have a payload length of 125 bytes or less".
pub const MAX_CONTROL_PAYLOAD: u64 = 125;

/// A frame header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FrameHeader {
    /// This is the final fragment of a message.
    pub fin: bool,
    /// Reserved bit 1 (permessage-deflate's "compressed" bit, RFC 7692).
    pub rsv1: bool,
    /// Reserved bit 2.
    pub rsv2: bool,
    /// Reserved bit 3.
    pub rsv3: bool,
    /// The opcode.
    pub opcode: OpCode,
    /// The masking key, if the MASK bit is set.
    pub mask: Option<[u8; 4]>,
    /// The payload length.
    pub payload_len: u64,
}

/// The three ways §5.2 encodes a payload length, used both to parse and to
/// write one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LengthForm {
    /// 0–125, in the 7-bit field.
    Short,
    /// 126 in the 7-bit field, then a 16-bit length.
    Medium,
    /// 127 in the 7-bit field, then a 64-bit length.
    Long,
}

impl LengthForm {
    /// The minimal form for a length: §5.2 "the minimal number of bytes
    /// MUST be used to encode the length".
    pub fn for_len(len: u64) -> LengthForm {
        match len {
            0..=125 => LengthForm::Short,
            126..=0xFFFF => LengthForm::Medium,
            _ => LengthForm::Long,
        }
    }

    /// The form announced by the 7-bit length field.
    fn from_len7(len7: u8) -> LengthForm {
        match len7 {
            126 => LengthForm::Medium,
            127 => LengthForm::Long,
            _ => LengthForm::Short,
        }
    }

    /// Bytes of extended length after the first two header bytes.
    pub fn extra_bytes(self) -> usize {
        match self {
            LengthForm::Short => 0,
            LengthForm::Medium => 2,
            LengthForm::Long => 8,
        }
    }
}

impl FrameHeader {
    /// A header for a final, unmasked frame with no reserved bits.
    pub fn new(opcode: OpCode, payload_len: u64) -> Self {
        FrameHeader { fin: true, rsv1: false, rsv2: false, rsv3: false, opcode, mask: None, payload_len }
    }

    /// The length of this header when encoded minimally.
    pub fn encoded_len(&self) -> usize {
        2 + LengthForm::for_len(self.payload_len).extra_bytes() + if self.mask.is_some() { 4 } else { 0 }
    }

    /// Writes the header (with the minimal length form) into `out` and
    /// returns how many bytes it took.
    pub fn encode(&self, out: &mut [u8; MAX_HEADER_LEN]) -> usize {
        let mut b0 = self.opcode.as_u4();
        for (bit, set) in [(0x80, self.fin), (0x40, self.rsv1), (0x20, self.rsv2), (0x10, self.rsv3)] {
            if set {
                b0 |= bit;
            }
        }
        out[0] = b0;
        let mask_bit = if self.mask.is_some() { 0x80 } else { 0 };
        let mut n = 2;
        match LengthForm::for_len(self.payload_len) {
            LengthForm::Short => out[1] = mask_bit | self.payload_len as u8,
            LengthForm::Medium => {
                out[1] = mask_bit | 126;
                out[2..4].copy_from_slice(&(self.payload_len as u16).to_be_bytes());
                n = 4;
            }
            LengthForm::Long => {
                out[1] = mask_bit | 127;
                out[2..10].copy_from_slice(&self.payload_len.to_be_bytes());
                n = 10;
            }
        }
        if let Some(key) = self.mask {
            out[n..n + 4].copy_from_slice(&key);
            n += 4;
        }
        n
    }
}

/// A header as it was on the wire: the header, its length, and how its
/// payload length was encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ParsedHeader {
    /// The header.
    pub header: FrameHeader,
    /// Its encoded length in bytes (2 to 14).
    pub header_len: usize,
    /// The length form used on the wire.
    pub length_form: LengthForm,
}

/// How many bytes the header starting with `buf` needs in all, if at least
/// the first two bytes are there.
pub(crate) fn header_len_hint(b1: u8) -> usize {
    2 + LengthForm::from_len7(b1 & 0x7F).extra_bytes() + if b1 & 0x80 != 0 { 4 } else { 0 }
}

/// Parses a frame header from the start of `buf`.
///
/// Consumes nothing and returns [`Status::Partial`] until the whole header
/// is there. Syntactically every header is valid; the rules about what a
/// header may say are checked by the [`crate::Decoder`].
pub fn parse_header(buf: &[u8]) -> Status<ParsedHeader> {
    let [b0, b1, ..] = *buf else {
        return Status::Partial;
    };
    let header_len = header_len_hint(b1);
    if buf.len() < header_len {
        return Status::Partial;
    }
    let length_form = LengthForm::from_len7(b1 & 0x7F);
    let payload_len = match length_form {
        LengthForm::Short => u64::from(b1 & 0x7F),
        LengthForm::Medium => u64::from(u16::from_be_bytes([buf[2], buf[3]])),
        LengthForm::Long => {
            let mut be = [0u8; 8];
            be.copy_from_slice(&buf[2..10]);
            u64::from_be_bytes(be)
        }
    };
    let mask = if b1 & 0x80 != 0 {
        let at = 2 + length_form.extra_bytes();
        Some([buf[at], buf[at + 1], buf[at + 2], buf[at + 3]])
    } else {
        None
    };
    Status::Complete(ParsedHeader {
        header: FrameHeader {
            fin: b0 & 0x80 != 0,
            rsv1: b0 & 0x40 != 0,
            rsv2: b0 & 0x20 != 0,
            rsv3: b0 & 0x10 != 0,
            opcode: OpCode::from_u4(b0),
            mask,
            payload_len,
        },
        header_len,
        length_form,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn rfc_5_7_examples() {
        // (bytes, fin, opcode, mask, payload_len)
        let cases: &[(&[u8], bool, OpCode, Option<[u8; 4]>, u64)] = &[
            (&[0x81, 0x05], true, OpCode::Text, None, 5),
            (&[0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d], true, OpCode::Text, Some([0x37, 0xfa, 0x21, 0x3d]), 5),
            (&[0x01, 0x03], false, OpCode::Text, None, 3),
            (&[0x80, 0x02], true, OpCode::Continuation, None, 2),
            (&[0x89, 0x05], true, OpCode::Ping, None, 5),
            (&[0x8a, 0x85, 0x37, 0xfa, 0x21, 0x3d], true, OpCode::Pong, Some([0x37, 0xfa, 0x21, 0x3d]), 5),
            (&[0x82, 0x7E, 0x01, 0x00], true, OpCode::Binary, None, 256),
            (&[0x82, 0x7F, 0, 0, 0, 0, 0, 1, 0, 0], true, OpCode::Binary, None, 65536),
        ];
        for (bytes, fin, opcode, mask, len) in cases {
            let parsed = parse_header(bytes).complete().expect("complete");
            assert_eq!(parsed.header_len, bytes.len());
            assert_eq!(parsed.header.fin, *fin);
            assert_eq!(parsed.header.opcode, *opcode);
            assert_eq!(parsed.header.mask, *mask);
            assert_eq!(parsed.header.payload_len, *len);
            let mut out = [0u8; MAX_HEADER_LEN];
            let n = parsed.header.encode(&mut out);
            assert_eq!(&out[..n], *bytes, "re-encoding is byte for byte");
            for cut in 0..bytes.len() {
                assert!(parse_header(&bytes[..cut]).is_partial(), "prefix {cut} of {bytes:x?}");
            }
        }
    }

    #[test]
    fn largest_length_parses_without_allocating() {
        let bytes = [0x82, 0x7F, 0x7F, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF];
        let parsed = parse_header(&bytes).complete().expect("complete");
        assert_eq!(parsed.header.payload_len, (1 << 63) - 1);
        assert_eq!(parsed.length_form, LengthForm::Long);
    }

    fn any_header() -> impl Strategy<Value = FrameHeader> {
        (any::<[bool; 4]>(), 0u8..16, any::<Option<[u8; 4]>>(), prop_oneof![0u64..200, 0u64..70_000, any::<u64>()])
            .prop_map(|(bits, op, mask, payload_len)| FrameHeader {
                fin: bits[0],
                rsv1: bits[1],
                rsv2: bits[2],
                rsv3: bits[3],
                opcode: OpCode::from_u4(op),
                mask,
                payload_len,
            })
    }

    proptest! {
        #[test]
        fn encode_then_parse_round_trips(h in any_header()) {
            let mut out = [0u8; MAX_HEADER_LEN];
            let n = h.encode(&mut out);
            prop_assert_eq!(n, h.encoded_len());
            let parsed = parse_header(&out[..n]).complete().expect("complete");
            prop_assert_eq!(parsed.header, h);
            prop_assert_eq!(parsed.header_len, n);
            prop_assert_eq!(parsed.length_form, LengthForm::for_len(h.payload_len));
        }
    }
}
