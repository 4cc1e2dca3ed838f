//! Message reassembly on top of the [`crate::Decoder`] (RFC 6455 §5.4),
//! with a cap on the assembled size.

use crate::decoder::Event;
use crate::error::{Error, Violation};
use crate::opcode::OpCode;

/// The type of a data message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MessageKind {
    /// UTF-8 text (opcode 0x1).
    Text,
    /// Binary data (opcode 0x2).
    Binary,
}

impl MessageKind {
    /// `"text"` or `"binary"`.
    pub fn name(self) -> &'static str {
        match self {
            MessageKind::Text => "text",
            MessageKind::Binary => "binary",
        }
    }
}

/// A complete data message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// Text or binary.
    pub kind: MessageKind,
    /// The unmasked payload of all its frames.
    pub data: Vec<u8>,
    /// How many frames carried it.
    pub fragments: u32,
    /// Whether its first frame had RSV1 set (compressed by permessage-deflate).
    pub compressed: bool,
}

/// Collects the payload of data frames into messages.
///
/// Feed it every event of a [`crate::Decoder`]; it returns a message at the
/// end of the frame that completes one. The decoder has already checked
/// the fragmentation rules; frames that break them (a continuation with no
/// message) are ignored here.
#[derive(Debug, Clone)]
pub struct Assembler {
    max_len: u64,
    current: Option<Message>,
    /// Whether the payload of the frame being decoded belongs to the message.
    collecting: bool,
    too_large: bool,
}

impl Assembler {
    /// An assembler that refuses messages longer than `max_len` bytes.
    pub fn new(max_len: u64) -> Self {
        Assembler { max_len, current: None, collecting: false, too_large: false }
    }

    /// Handles one decoder event. Returns a message when one is complete,
    /// or [`Error::MessageTooLarge`] (once per message) as soon as a frame
    /// header announces more than the cap allows; the oversized message is
    /// then dropped.
    pub fn handle(&mut self, event: &Event<'_>) -> Result<Option<Message>, Violation> {
        match event {
            Event::Header(h) => {
                let header = &h.header;
                self.collecting = false;
                match header.opcode {
                    OpCode::Text | OpCode::Binary => {
                        let kind = if header.opcode == OpCode::Text { MessageKind::Text } else { MessageKind::Binary };
                        self.too_large = false;
                        self.current = Some(Message { kind, data: Vec::new(), fragments: 0, compressed: header.rsv1 });
                    }
                    OpCode::Continuation if self.current.is_some() || self.too_large => {}
                    _ => return Ok(None),
                }
                if self.too_large {
                    return Ok(None);
                }
                let Some(message) = self.current.as_mut() else { return Ok(None) };
                message.fragments = message.fragments.saturating_add(1);
                let total = (message.data.len() as u64).checked_add(header.payload_len);
                if total.is_none_or(|t| t > self.max_len) {
                    self.current = None;
                    self.too_large = true;
                    return Err(Violation { error: Error::MessageTooLarge, offset: h.offset });
                }
                self.collecting = true;
                Ok(None)
            }
            Event::Payload(p) if self.collecting => {
                if let Some(message) = self.current.as_mut() {
                    p.extend_unmasked(&mut message.data);
                }
                Ok(None)
            }
            Event::FrameEnd(end) if end.header.opcode.is_data() => {
                self.collecting = false;
                if end.header.fin {
                    self.too_large = false;
                    return Ok(self.current.take());
                }
                Ok(None)
            }
            _ => Ok(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::{Decoder, DecoderConfig, FrameHeader, Role, encode_frame};

    /// Splits `data` into fragments at `cuts` and encodes them as one
    /// message, with a ping between the first two fragments.
    fn fragmented(kind: OpCode, data: &[u8], cuts: &[usize], mask: Option<[u8; 4]>) -> (Vec<u8>, u32) {
        let mut points: Vec<usize> = cuts.iter().map(|c| c % (data.len() + 1)).collect();
        points.sort_unstable();
        points.dedup();
        points.retain(|p| *p != 0 && *p != data.len());
        points.push(data.len());
        let mut out = Vec::new();
        let mut start = 0;
        for (i, end) in points.iter().enumerate() {
            let opcode = if i == 0 { kind } else { OpCode::Continuation };
            let header = FrameHeader { fin: i + 1 == points.len(), mask, ..FrameHeader::new(opcode, 0) };
            encode_frame(&header, &data[start..*end], &mut out);
            if i == 0 {
                encode_frame(&FrameHeader { mask, ..FrameHeader::new(OpCode::Ping, 0) }, b"p", &mut out);
            }
            start = *end;
        }
        (out, points.len() as u32)
    }

    fn assemble(bytes: &[u8], role: Role, max: u64) -> Vec<Result<Message, Error>> {
        let mut d = Decoder::new(role, DecoderConfig::default());
        let mut a = Assembler::new(max);
        let mut out = Vec::new();
        let mut input = bytes;
        loop {
            let decoded = d.decode(input);
            input = &input[decoded.consumed..];
            let Some(ev) = decoded.event else { break };
            match a.handle(&ev) {
                Ok(Some(m)) => out.push(Ok(m)),
                Ok(None) => {}
                Err(v) => out.push(Err(v.error)),
            }
        }
        out
    }

    #[test]
    fn cap_is_enforced_before_the_payload_arrives() {
        let (bytes, _) = fragmented(OpCode::Binary, &[1; 100], &[60], None);
        assert_eq!(assemble(&bytes, Role::Server, 50), vec![Err(Error::MessageTooLarge)]);
        assert_eq!(assemble(&bytes, Role::Server, 100).len(), 1);
        // A header announcing 2^63 - 1 bytes is refused, not reserved.
        let huge = [0x82, 0x7F, 0x7F, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0];
        assert_eq!(assemble(&huge, Role::Server, 1 << 20), vec![Err(Error::MessageTooLarge)]);
    }

    proptest! {
        #[test]
        fn fragmented_messages_come_back(
            data in prop::collection::vec(any::<u8>(), 0..500),
            cuts in prop::collection::vec(any::<usize>(), 0..6),
            mask in any::<Option<[u8; 4]>>(),
        ) {
            let (bytes, fragments) = fragmented(OpCode::Binary, &data, &cuts, mask);
            let role = if mask.is_some() { Role::Client } else { Role::Server };
            let got = assemble(&bytes, role, 1 << 20);
            prop_assert_eq!(got, vec![Ok(Message { kind: MessageKind::Binary, data, fragments, compressed: false })]);
        }
    }
}
