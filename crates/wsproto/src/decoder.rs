//! The incremental frame decoder (RFC 6455 §5) and the rules it checks
//! (§5, §7, §8).
//!
//! The decoder is a push parser over a stream of frames from one sender:
//! give it whatever bytes arrived, it consumes what it can and yields one
//! [`Event`] at a time. It keeps at most one partial frame header
//! ([`MAX_HEADER_LEN`] bytes), the payload of the current control frame (at
//! most 125 bytes) and three bytes of an unfinished UTF-8 code point; payload
//! bytes are handed back as slices of the caller's buffer, never copied or
//! collected. A header announcing 2^63−1 bytes allocates nothing.
//!
//! Splitting the input differently changes only where payload chunks are
//! cut: headers, frame ends, violations and their offsets are the same
//! whether the stream arrives at once or one byte at a time.

use crate::Status;
use crate::close::parse_close_payload;
use crate::error::{Error, Violation};
use crate::header::{FrameHeader, LengthForm, MAX_CONTROL_PAYLOAD, MAX_HEADER_LEN, header_len_hint, parse_header};
use crate::mask::{apply_mask, apply_mask_is_ascii};
use crate::opcode::OpCode;
use crate::utf8::Utf8Validator;

/// Which endpoint sent the frames being decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// Frames from a client: §5.1 "a client MUST mask all frames that it
    /// sends to the server".
    Client,
    /// Frames from a server: §5.1 "A server MUST NOT mask any frames that it
    /// sends to the client".
    Server,
}

impl Role {
    /// The other endpoint.
    pub fn peer(self) -> Role {
        match self {
            Role::Client => Role::Server,
            Role::Server => Role::Client,
        }
    }
}

/// What the decoder allows and how it reacts to a violation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecoderConfig {
    /// RSV1 is defined by a negotiated extension (permessage-deflate,
    /// RFC 7692). It may then be set on the first frame of a data message
    /// only: on a control or continuation frame it is
    /// [`Error::MisplacedCompressedBit`] (RFC 7692 §6.1).
    pub allow_rsv1: bool,
    /// RSV2 is defined by a negotiated extension.
    pub allow_rsv2: bool,
    /// RSV3 is defined by a negotiated extension.
    pub allow_rsv3: bool,
    /// Frames with a longer payload are a [`Error::FrameTooLarge`] violation.
    pub max_frame_len: u64,
    /// Check that text messages are UTF-8 (§8.1). Compressed messages are
    /// never checked on the wire: their bytes are deflate output.
    pub validate_utf8: bool,
    /// A negotiated extension this decoder cannot interpret (one other than
    /// permessage-deflate, such as Safari's `x-webkit-deflate-frame`).
    /// RFC 6455 §5.2 leaves the reserved bits to the extensions that define
    /// them, and which bits an unknown extension defines, on which frames,
    /// is not known here: RSV1–3 are allowed on every frame, and text
    /// payloads are not checked for UTF-8 (§8.1 applies to the message's
    /// data, and these bytes are the extension's encoding of it). The other
    /// rules of §5 are checked as usual.
    pub opaque_extension: bool,
    /// After the first violation, stop: the violation is the last event and
    /// later input is consumed without events (a server then closes with
    /// [`Error::close_code`]). Otherwise report every violation and keep
    /// decoding the stream as framed (a proxy shows what follows).
    pub stop_on_violation: bool,
}

impl Default for DecoderConfig {
    fn default() -> Self {
        DecoderConfig {
            allow_rsv1: false,
            allow_rsv2: false,
            allow_rsv3: false,
            max_frame_len: u64::MAX,
            validate_utf8: true,
            opaque_extension: false,
            stop_on_violation: false,
        }
    }
}

/// A complete frame header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeaderEvent {
    /// The header.
    pub header: FrameHeader,
    /// Its length on the wire, 2 to 14 bytes.
    pub header_len: u8,
    /// Offset of the frame's first byte in the stream.
    pub offset: u64,
}

/// A chunk of a frame's payload, borrowed from the caller's input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Payload<'a> {
    data: &'a [u8],
    mask: Option<[u8; 4]>,
    frame_pos: u64,
    offset: u64,
}

impl<'a> Payload<'a> {
    /// The bytes as they are in the caller's buffer: still masked if
    /// [`Payload::is_masked`], else the payload itself.
    pub fn data(&self) -> &'a [u8] {
        self.data
    }

    /// Whether [`Payload::data`] is still masked (the frame was masked and
    /// the caller used [`Decoder::decode`], which does not write).
    pub fn is_masked(&self) -> bool {
        self.mask.is_some()
    }

    /// Number of payload bytes of this frame before this chunk.
    pub fn frame_pos(&self) -> u64 {
        self.frame_pos
    }

    /// Offset of the chunk's first byte in the stream.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// Number of bytes in the chunk.
    pub fn len(&self) -> usize {
        self.data.len()
    }

    /// Whether the chunk is empty (never true for chunks the decoder yields).
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// Appends the unmasked payload bytes to `out`.
    pub fn extend_unmasked(&self, out: &mut Vec<u8>) {
        let start = out.len();
        out.extend_from_slice(self.data);
        if let Some(key) = self.mask {
            apply_mask(&mut out[start..], key, (self.frame_pos % 4) as usize);
        }
    }

    /// Writes the unmasked bytes of the chunk's first `out.len()` bytes
    /// into `out` (which must not be longer than the chunk).
    pub fn unmask_into(&self, out: &mut [u8]) {
        let n = out.len().min(self.data.len());
        out[..n].copy_from_slice(&self.data[..n]);
        if let Some(key) = self.mask {
            apply_mask(&mut out[..n], key, (self.frame_pos % 4) as usize);
        }
    }
}

/// The end of a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameEnd {
    /// The header of the frame that ended.
    pub header: FrameHeader,
    /// Whether this frame ended a data message (FIN on a text, binary or
    /// continuation frame that belonged to a message).
    pub message_end: bool,
    /// Offset of the byte after the frame.
    pub offset: u64,
}

/// One thing the decoder saw.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event<'a> {
    /// A frame header is complete. Its violations, if any, follow it.
    Header(HeaderEvent),
    /// A chunk of payload (never empty).
    Payload(Payload<'a>),
    /// A rule was broken.
    Violation(Violation),
    /// The frame is complete. For control frames, the unmasked payload is
    /// then in [`Decoder::control_payload`].
    FrameEnd(FrameEnd),
}

/// What one call to [`Decoder::decode`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use]
pub struct Decoded<'a> {
    /// Bytes of the input consumed. When `event` is `None`, all of them.
    pub consumed: usize,
    /// The next event, or `None` when the input is used up.
    pub event: Option<Event<'a>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Header,
    Payload,
    Ending,
    Failed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct MessageState {
    text: bool,
    compressed: bool,
    utf8_failed: bool,
}

/// At most this many violations come from one frame header.
const MAX_QUEUED: usize = 8;

/// The incremental frame decoder. See the module documentation.
#[derive(Debug, Clone)]
pub struct Decoder {
    role: Role,
    config: DecoderConfig,
    state: State,
    hdr: [u8; MAX_HEADER_LEN],
    hdr_have: usize,
    current: HeaderEvent,
    remaining: u64,
    frame_pos: u64,
    offset: u64,
    /// The current frame's payload belongs to the open data message.
    in_message: bool,
    message: Option<MessageState>,
    utf8: Utf8Validator,
    control: [u8; MAX_CONTROL_PAYLOAD as usize],
    control_len: usize,
    close_seen: bool,
    queue: [Option<Violation>; MAX_QUEUED],
    queue_head: usize,
    queue_len: usize,
    failure: Option<Violation>,
}

enum Input<'a> {
    Shared(&'a [u8]),
    Exclusive(&'a mut [u8]),
}

impl Input<'_> {
    fn len(&self) -> usize {
        match self {
            Input::Shared(b) => b.len(),
            Input::Exclusive(b) => b.len(),
        }
    }

    fn as_slice(&self) -> &[u8] {
        match self {
            Input::Shared(b) => b,
            Input::Exclusive(b) => b,
        }
    }
}

impl Decoder {
    /// A decoder for frames sent by `sender`.
    pub fn new(sender: Role, config: DecoderConfig) -> Self {
        Decoder {
            role: sender,
            config,
            state: State::Header,
            hdr: [0; MAX_HEADER_LEN],
            hdr_have: 0,
            current: HeaderEvent { header: FrameHeader::new(OpCode::Continuation, 0), header_len: 0, offset: 0 },
            remaining: 0,
            frame_pos: 0,
            offset: 0,
            in_message: false,
            message: None,
            utf8: Utf8Validator::new(),
            control: [0; MAX_CONTROL_PAYLOAD as usize],
            control_len: 0,
            close_seen: false,
            queue: [None; MAX_QUEUED],
            queue_head: 0,
            queue_len: 0,
            failure: None,
        }
    }

    /// The configuration.
    pub fn config(&self) -> &DecoderConfig {
        &self.config
    }

    /// Changes which reserved bits are allowed, e.g. once the handshake has
    /// negotiated permessage-deflate.
    pub fn set_allowed_rsv(&mut self, rsv1: bool, rsv2: bool, rsv3: bool) {
        self.config.allow_rsv1 = rsv1;
        self.config.allow_rsv2 = rsv2;
        self.config.allow_rsv3 = rsv3;
    }

    /// Marks a negotiated extension this decoder cannot interpret (see
    /// [`DecoderConfig::opaque_extension`]).
    pub fn set_opaque_extension(&mut self, opaque: bool) {
        self.config.opaque_extension = opaque;
    }

    /// Bytes consumed so far: the stream offset of the next byte.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// The unmasked payload of the last control frame, complete after its
    /// [`Event::FrameEnd`] (at most 125 bytes; a longer control frame is a
    /// violation and only its first 125 bytes are kept).
    pub fn control_payload(&self) -> &[u8] {
        &self.control[..self.control_len]
    }

    /// The payload bytes left in the current frame when the next input byte
    /// can only be payload: the decoder is inside a frame's payload and has
    /// no violation to report first. Zero otherwise: in or before a header,
    /// at a frame's end, or stopped by a violation
    /// ([`DecoderConfig::stop_on_violation`]). Without that option, a frame
    /// with a violation goes on to its payload once the violation is
    /// reported, and this counts it: a caller that stops at violations
    /// keeps track itself.
    pub fn payload_remaining(&self) -> u64 {
        if self.state == State::Payload && self.queue_len == 0 { self.remaining } else { 0 }
    }

    /// Whether a close frame has been decoded.
    pub fn close_seen(&self) -> bool {
        self.close_seen
    }

    /// Whether the decoder is between frames and messages: the stream may
    /// end here without cutting a frame or a fragmented message.
    pub fn is_idle(&self) -> bool {
        self.state == State::Header && self.hdr_have == 0 && self.message.is_none()
    }

    /// Whether the decoder is between frames (a fragmented message may be open).
    pub fn at_frame_boundary(&self) -> bool {
        self.state == State::Header && self.hdr_have == 0
    }

    /// With [`DecoderConfig::stop_on_violation`], the violation that stopped
    /// the decoder.
    pub fn failure(&self) -> Option<Violation> {
        self.failure
    }

    /// Decodes from `input`, which is not written to: payload chunks of
    /// masked frames come back still masked (see [`Payload`]).
    ///
    /// Call again with `&input[consumed..]` until `event` is `None`.
    pub fn decode<'a>(&mut self, input: &'a [u8]) -> Decoded<'a> {
        self.step(Input::Shared(input))
    }

    /// Decodes from `input`, unmasking payload in place: payload chunks come
    /// back unmasked, with no copy.
    pub fn decode_mut<'a>(&mut self, input: &'a mut [u8]) -> Decoded<'a> {
        self.step(Input::Exclusive(input))
    }

    fn push(&mut self, error: Error, offset: u64) {
        if self.queue_len < MAX_QUEUED {
            let at = (self.queue_head + self.queue_len) % MAX_QUEUED;
            self.queue[at] = Some(Violation { error, offset });
            self.queue_len += 1;
        }
    }

    fn pop(&mut self) -> Option<Violation> {
        if self.queue_len == 0 {
            return None;
        }
        let v = self.queue[self.queue_head].take();
        self.queue_head = (self.queue_head + 1) % MAX_QUEUED;
        self.queue_len -= 1;
        v
    }

    fn step<'a>(&mut self, input: Input<'a>) -> Decoded<'a> {
        if self.state == State::Failed {
            self.offset = self.offset.saturating_add(input.len() as u64);
            return Decoded { consumed: input.len(), event: None };
        }
        if let Some(v) = self.pop() {
            if self.config.stop_on_violation {
                self.state = State::Failed;
                self.failure = Some(v);
                self.queue_len = 0;
            }
            return Decoded { consumed: 0, event: Some(Event::Violation(v)) };
        }
        match self.state {
            State::Header => self.step_header(input.as_slice()),
            State::Payload => self.step_payload(input),
            State::Ending => {
                self.state = State::Header;
                let end = FrameEnd {
                    header: self.current.header,
                    message_end: self.in_message && self.current.header.fin,
                    offset: self.offset,
                };
                Decoded { consumed: 0, event: Some(Event::FrameEnd(end)) }
            }
            State::Failed => Decoded { consumed: 0, event: None },
        }
    }

    fn step_header<'a>(&mut self, input: &[u8]) -> Decoded<'a> {
        let mut consumed = 0;
        let parsed = if self.hdr_have == 0 {
            match parse_header(input) {
                Status::Complete(p) => {
                    consumed = p.header_len;
                    p
                }
                Status::Partial => {
                    let n = input.len().min(MAX_HEADER_LEN);
                    self.hdr[..n].copy_from_slice(&input[..n]);
                    self.hdr_have = n;
                    self.offset += n as u64;
                    return Decoded { consumed: n, event: None };
                }
            }
        } else {
            loop {
                let need = if self.hdr_have < 2 { 2 } else { header_len_hint(self.hdr[1]) };
                if self.hdr_have == need {
                    break;
                }
                let take = (need - self.hdr_have).min(input.len() - consumed);
                if take == 0 {
                    self.offset += consumed as u64;
                    return Decoded { consumed, event: None };
                }
                self.hdr[self.hdr_have..self.hdr_have + take].copy_from_slice(&input[consumed..consumed + take]);
                self.hdr_have += take;
                consumed += take;
            }
            let Status::Complete(p) = parse_header(&self.hdr[..self.hdr_have]) else {
                // Unreachable: `hdr_have` is the full header length.
                self.offset += consumed as u64;
                return Decoded { consumed, event: None };
            };
            // The header started in earlier calls.
            self.offset -= (self.hdr_have - consumed) as u64;
            p
        };
        self.hdr_have = 0;
        let frame_offset = self.offset;
        self.offset += parsed.header_len as u64;
        self.current = HeaderEvent { header: parsed.header, header_len: parsed.header_len as u8, offset: frame_offset };
        self.remaining = parsed.header.payload_len;
        self.frame_pos = 0;
        self.control_len = 0;
        self.check_header(&parsed.header, parsed.length_form, frame_offset);
        self.state = if self.remaining == 0 { self.end_frame() } else { State::Payload };
        Decoded { consumed, event: Some(Event::Header(self.current)) }
    }

    /// The rules a header can break, checked in a fixed order.
    fn check_header(&mut self, h: &FrameHeader, form: LengthForm, at: u64) {
        let control = h.opcode.is_control();
        // §5.2: "If an unknown opcode is received, the receiving endpoint
        // MUST _Fail the WebSocket Connection_."
        if h.opcode.is_reserved() {
            self.push(Error::ReservedOpcode, at);
        }
        // §5.2: "MUST be 0 unless an extension is negotiated that defines
        // meanings for non-zero values."
        let opaque = self.config.opaque_extension;
        let rsv1_ok = opaque || self.config.allow_rsv1;
        let rsv2_ok = opaque || self.config.allow_rsv2;
        let rsv3_ok = opaque || self.config.allow_rsv3;
        if (h.rsv1 && !rsv1_ok) || (h.rsv2 && !rsv2_ok) || (h.rsv3 && !rsv3_ok) {
            self.push(Error::ReservedBitSet, at);
        } else if h.rsv1 && !opaque && (control || h.opcode == OpCode::Continuation) {
            // RFC 7692 §6.1: "An endpoint MUST NOT set the \"Per-Message
            // Compressed\" bit of control frames and non-first fragments of
            // a data message."
            self.push(Error::MisplacedCompressedBit, at);
        }
        if control {
            // §5.5: "All control frames MUST have a payload length of 125
            // bytes or less and MUST NOT be fragmented."
            if h.payload_len > MAX_CONTROL_PAYLOAD {
                self.push(Error::ControlFrameTooLong, at);
            }
            if !h.fin {
                self.push(Error::ControlFrameFragmented, at);
            }
        }
        // §5.2: "the minimal number of bytes MUST be used to encode the
        // length" and "the most significant bit MUST be 0".
        if form != LengthForm::for_len(h.payload_len) && h.payload_len >> 63 == 0 {
            self.push(Error::NonMinimalLength, at);
        }
        if h.payload_len >> 63 != 0 {
            self.push(Error::LengthMsbSet, at);
        }
        match (self.role, h.mask.is_some()) {
            (Role::Client, false) => self.push(Error::UnmaskedClientFrame, at),
            (Role::Server, true) => self.push(Error::MaskedServerFrame, at),
            _ => {}
        }
        if h.payload_len > self.config.max_frame_len {
            self.push(Error::FrameTooLarge, at);
        }
        // §5.5.1: "After sending a Close frame, the endpoint MUST NOT send
        // any more data frames." (Control frames are not forbidden.)
        if self.close_seen && h.opcode.is_data() {
            self.push(Error::FrameAfterClose, at);
        }
        self.in_message = false;
        match h.opcode {
            OpCode::Text | OpCode::Binary => {
                // §5.4: the fragments of one message MUST NOT be interleaved
                // with the fragments of another.
                if self.message.is_some() {
                    self.push(Error::ExpectedContinuation, at);
                }
                self.message = Some(MessageState {
                    text: h.opcode == OpCode::Text,
                    compressed: h.rsv1 && self.config.allow_rsv1 && !opaque,
                    utf8_failed: false,
                });
                self.utf8.reset();
                self.in_message = true;
            }
            OpCode::Continuation => {
                if self.message.is_some() {
                    self.in_message = true;
                } else {
                    self.push(Error::UnexpectedContinuation, at);
                }
            }
            _ => {}
        }
    }

    fn validates_utf8(&self) -> bool {
        self.config.validate_utf8
            && !self.config.opaque_extension
            && self.in_message
            && matches!(self.message, Some(MessageState { text: true, compressed: false, utf8_failed: false }))
    }

    fn step_payload<'a>(&mut self, input: Input<'a>) -> Decoded<'a> {
        let len = input.len();
        if len == 0 {
            return Decoded { consumed: 0, event: None };
        }
        let mut n = usize::try_from(self.remaining).unwrap_or(usize::MAX).min(len);
        let mask = self.current.header.mask;
        let phase = (self.frame_pos % 4) as usize;
        let check_utf8 = self.validates_utf8();
        let keep_control = self.current.header.opcode.is_control();
        let mut bad_utf8: Option<usize> = None;

        let (data, chunk_mask): (&'a [u8], Option<[u8; 4]>) = match input {
            Input::Exclusive(buf) => {
                let chunk = &mut buf[..n];
                let mut ascii = false;
                if let Some(key) = mask {
                    if check_utf8 && self.utf8.is_complete() {
                        ascii = apply_mask_is_ascii(chunk, key, phase);
                    } else {
                        apply_mask(chunk, key, phase);
                    }
                }
                if check_utf8
                    && !ascii
                    && let Err(e) = self.utf8.feed(chunk)
                {
                    bad_utf8 = Some(e.index);
                    if let Some(key) = mask {
                        // Give back, still masked, what we do not consume.
                        apply_mask(&mut chunk[e.index + 1..], key, (phase + e.index + 1) % 4);
                    }
                    n = e.index + 1;
                }
                if keep_control {
                    self.keep_control(&chunk[..n], None);
                }
                let chunk: &'a mut [u8] = buf;
                (&chunk[..n], None)
            }
            Input::Shared(buf) => {
                let chunk = &buf[..n];
                if check_utf8 {
                    let result = match mask {
                        None => self.utf8.feed(chunk).map_err(|e| e.index),
                        Some(key) => self.feed_masked_utf8(chunk, key, phase),
                    };
                    if let Err(index) = result {
                        bad_utf8 = Some(index);
                        n = index + 1;
                    }
                }
                if keep_control {
                    self.keep_control(&chunk[..n], mask.map(|k| (k, phase)));
                }
                (&buf[..n], mask)
            }
        };

        let payload = Payload { data, mask: chunk_mask, frame_pos: self.frame_pos, offset: self.offset };
        if let Some(index) = bad_utf8 {
            if let Some(m) = self.message.as_mut() {
                m.utf8_failed = true;
            }
            self.push(Error::InvalidUtf8, self.offset + index as u64);
        }
        self.offset += n as u64;
        self.frame_pos += n as u64;
        self.remaining -= n as u64;
        if self.remaining == 0 {
            self.state = self.end_frame();
        }
        Decoded { consumed: n, event: Some(Event::Payload(payload)) }
    }

    /// Feeds masked bytes to the UTF-8 validator through a small stack buffer.
    fn feed_masked_utf8(&mut self, chunk: &[u8], key: [u8; 4], phase: usize) -> Result<(), usize> {
        let mut scratch = [0u8; 512];
        let mut done = 0;
        for piece in chunk.chunks(scratch.len()) {
            let out = &mut scratch[..piece.len()];
            out.copy_from_slice(piece);
            apply_mask(out, key, (phase + done) % 4);
            self.utf8.feed(out).map_err(|e| done + e.index)?;
            done += piece.len();
        }
        Ok(())
    }

    fn keep_control(&mut self, chunk: &[u8], mask: Option<([u8; 4], usize)>) {
        let room = self.control.len() - self.control_len;
        let take = room.min(chunk.len());
        let out = &mut self.control[self.control_len..self.control_len + take];
        out.copy_from_slice(&chunk[..take]);
        if let Some((key, phase)) = mask {
            apply_mask(out, key, phase);
        }
        self.control_len += take;
    }

    /// End-of-frame rules; returns the next state.
    fn end_frame(&mut self) -> State {
        let h = self.current.header;
        let payload_start = self.current.offset + u64::from(self.current.header_len);
        if h.opcode == OpCode::Close {
            if h.payload_len <= MAX_CONTROL_PAYLOAD
                && let Err(error) = parse_close_payload(&self.control[..self.control_len])
            {
                let at = match error {
                    Error::InvalidUtf8CloseReason => {
                        let reason = &self.control[2..self.control_len];
                        let valid = core::str::from_utf8(reason).err().map_or(0, |e| e.valid_up_to());
                        payload_start + 2 + valid as u64
                    }
                    _ => payload_start,
                };
                self.push(error, at);
            }
            self.close_seen = true;
        }
        if self.in_message && h.fin {
            if self.validates_utf8() && !self.utf8.is_complete() {
                // The message ends inside a code point: the byte that should
                // have continued it would have been here.
                self.push(Error::InvalidUtf8, self.offset);
            }
            self.message = None;
        }
        State::Ending
    }
}

#[cfg(test)]
mod tests;
