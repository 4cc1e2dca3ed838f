//! Frame opcodes (RFC 6455 §5.2, §11.8).

use core::fmt;

/// The 4-bit opcode of a frame.
///
/// Every 4-bit value maps to a variant ([`OpCode::from_u4`] never panics):
/// the reserved ones are kept as [`OpCode::Reserved`] so that a decoder can
/// report them and a proxy can still show them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OpCode {
    /// 0x0: continues a fragmented message.
    Continuation,
    /// 0x1: first frame of a text message.
    Text,
    /// 0x2: first frame of a binary message.
    Binary,
    /// 0x8: connection close.
    Close,
    /// 0x9: ping.
    Ping,
    /// 0xA: pong.
    Pong,
    /// 0x3–0x7 (reserved for further non-control frames) and 0xB–0xF
    /// (reserved for further control frames). The value is below 16.
    Reserved(u8),
}

impl OpCode {
    /// The opcode for the low four bits of `bits` (higher bits are ignored).
    pub fn from_u4(bits: u8) -> OpCode {
        match bits & 0x0F {
            0x0 => OpCode::Continuation,
            0x1 => OpCode::Text,
            0x2 => OpCode::Binary,
            0x8 => OpCode::Close,
            0x9 => OpCode::Ping,
            0xA => OpCode::Pong,
            other => OpCode::Reserved(other),
        }
    }

    /// The 4-bit wire value.
    pub fn as_u4(self) -> u8 {
        match self {
            OpCode::Continuation => 0x0,
            OpCode::Text => 0x1,
            OpCode::Binary => 0x2,
            OpCode::Close => 0x8,
            OpCode::Ping => 0x9,
            OpCode::Pong => 0xA,
            OpCode::Reserved(b) => b & 0x0F,
        }
    }

    /// §5.5: control frames are identified by opcodes where the most
    /// significant bit of the opcode is 1 (reserved control opcodes included).
    pub fn is_control(self) -> bool {
        self.as_u4() & 0x8 != 0
    }

    /// Text, binary or continuation.
    pub fn is_data(self) -> bool {
        matches!(self, OpCode::Continuation | OpCode::Text | OpCode::Binary)
    }

    /// Whether the opcode is reserved for future use.
    pub fn is_reserved(self) -> bool {
        matches!(self, OpCode::Reserved(_))
    }

    /// The lowercase name (`text`, `ping`, …), or `None` for reserved opcodes.
    pub fn name(self) -> Option<&'static str> {
        Some(match self {
            OpCode::Continuation => "continuation",
            OpCode::Text => "text",
            OpCode::Binary => "binary",
            OpCode::Close => "close",
            OpCode::Ping => "ping",
            OpCode::Pong => "pong",
            OpCode::Reserved(_) => return None,
        })
    }
}

impl fmt::Display for OpCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(name) => f.write_str(name),
            None => write!(f, "reserved(0x{:X})", self.as_u4()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_nibble_round_trips() {
        for b in 0u8..=255 {
            let op = OpCode::from_u4(b);
            assert_eq!(op.as_u4(), b & 0x0F);
            assert_eq!(OpCode::from_u4(op.as_u4()), op);
        }
    }

    #[test]
    fn classes() {
        let table = [
            (0x0, false, false),
            (0x1, false, false),
            (0x2, false, false),
            (0x3, false, true),
            (0x7, false, true),
            (0x8, true, false),
            (0x9, true, false),
            (0xA, true, false),
            (0xB, true, true),
            (0xF, true, true),
        ];
        for (bits, control, reserved) in table {
            let op = OpCode::from_u4(bits);
            assert_eq!(op.is_control(), control, "{bits:#x}");
            assert_eq!(op.is_reserved(), reserved, "{bits:#x}");
            assert_eq!(op.name().is_none(), reserved, "{bits:#x}");
        }
        assert_eq!(OpCode::from_u4(0xB).to_string(), "reserved(0xB)");
    }
}
