//! A sans-IO WebSocket endpoint (RFC 6455 §5–§7), server or client, with
//! permessage-deflate (RFC 7692): bytes from the peer go in, complete
//! messages come out, and the bytes to send (messages, pongs, closes)
//! gather in an output buffer that the caller writes to its socket.
//!
//! It is the protocol half of a server or a client, after the opening
//! handshake; an I/O shell around it reads, calls
//! [`Endpoint::handle_input`], writes [`Endpoint::output`], and ends the
//! TCP connection once [`Endpoint::is_closed`]: a server closes it at once,
//! a client waits (a bounded time) for the server to close first (§7.1.1).
//! The two roles differ only where RFC 6455 says they do: a client masks
//! every frame it sends with a fresh masking key (§5.3) and requires the
//! server's frames unmasked (§5.1), and each side compresses and inflates
//! with its own side's permessage-deflate parameters (RFC 7692 §7.1). No
//! clock and no randomness: timeouts are the shell's, and a client's masking
//! keys come from a source the caller passes in (§10.3 asks for a strong one).
//!
//! ```
//! use wsproto::endpoint::{Endpoint, EndpointConfig, Received};
//! use wsproto::MessageKind;
//!
//! let mut server = Endpoint::server(EndpointConfig::default());
//! // RFC 6455 §5.7: a single-frame masked text message, "Hello".
//! let mut wire = [0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58];
//! let mut received = Vec::new();
//! let used = server.handle_input(&mut wire, &mut received);
//! assert_eq!(used, wire.len());
//! assert_eq!(received, [Received::Message { kind: MessageKind::Text, data: b"Hello".to_vec() }]);
//! server.send(MessageKind::Text, b"Hello");
//! assert_eq!(server.output(), &[0x81, 0x05, b'H', b'e', b'l', b'l', b'o']);
//! ```

use crate::assembler::MessageKind;
use crate::close::{CloseCode, parse_close_payload};
use crate::decoder::{Decoder, DecoderConfig, Event, Role};
use crate::deflate::{DeflateParams, Deflater, Inflater};
use crate::encode::{encode_close_payload, encode_frame};
use crate::error::Error;
use crate::header::FrameHeader;
use crate::opcode::OpCode;
use crate::utf8::Utf8Validator;

/// The largest message buffer kept for reuse ([`Endpoint::recycle`]).
const MAX_SPARE: usize = 1 << 20;

/// The most [`Endpoint::payload_buffer`] lets the caller append at once.
const MAX_DIRECT: usize = 1 << 20;

/// The least [`Endpoint::payload_buffer`] reserves: beyond it, at most what
/// the message already holds, so that a peer that announces a large frame
/// and sends little of it does not make the buffer grow at the header.
const MIN_DIRECT_RESERVE: usize = 64 << 10;

/// The limits and the agreed extension of one connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EndpointConfig {
    /// Largest message accepted, after inflating (RFC 6455 §10.4); a longer
    /// one fails the connection with 1009.
    pub max_message_len: u64,
    /// Largest frame accepted on the wire; a longer one fails with 1009.
    pub max_frame_len: u64,
    /// The permessage-deflate parameters agreed in the handshake
    /// ([`crate::deflate::DeflateOffer::negotiate`]), if any.
    pub deflate: Option<DeflateParams>,
    /// zlib level (0–9) for the messages this endpoint sends compressed.
    /// The default, 1, is the fastest that still compresses.
    pub compression_level: u32,
}

impl Default for EndpointConfig {
    fn default() -> Self {
        EndpointConfig { max_message_len: 16 << 20, max_frame_len: 16 << 20, deflate: None, compression_level: 1 }
    }
}

/// What the peer's bytes completed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Received {
    /// A data message, inflated if it was compressed, text checked as UTF-8
    /// (RFC 6455 §8.1).
    Message {
        /// Text or binary.
        kind: MessageKind,
        /// Its data.
        data: Vec<u8>,
    },
    /// A ping (§5.5.2); its pong is already in the output.
    Ping(Vec<u8>),
    /// A pong (§5.5.3).
    Pong(Vec<u8>),
    /// The peer's close frame (§5.5.1): its code and reason, if it had
    /// any. If this endpoint had not closed yet, the answering close is in
    /// the output, and the closing handshake is over once it is written.
    Close(Option<(CloseCode, String)>),
    /// The peer broke a rule: the close frame with the rule's code
    /// ([`Error::close_code`]: 1002, 1007 or 1009) is in the output (RFC
    /// 6455 §7.1.7, _Fail the WebSocket Connection_). Everything after it
    /// but the peer's close is ignored.
    Failed(Error),
}

/// Where the closing handshake is (RFC 6455 §7.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Open,
    /// This endpoint sent its close and waits for the peer's (§7.1.2).
    CloseSent,
    /// Both closes were exchanged, or the peer's came and was answered:
    /// nothing more is sent or read.
    Closed,
}

/// The message being received.
#[derive(Debug)]
struct Incoming {
    kind: MessageKind,
    compressed: bool,
    data: Vec<u8>,
    /// The frame being read is the message's last (FIN set, §5.2).
    last_frame: bool,
}

/// One side's compressor and the other side's inflater, per the agreed
/// parameters (RFC 7692 §7.1).
struct Compression {
    deflater: Deflater,
    inflater: Inflater,
}

/// Where a client's masking keys come from (RFC 6455 §5.3, §10.3): called
/// once per frame sent.
pub type MaskKeys = Box<dyn FnMut() -> [u8; 4] + Send>;

/// One side of one WebSocket connection after the handshake. See the
/// [module documentation](self).
pub struct Endpoint {
    /// This endpoint's role; the decoder checks frames from the other one.
    role: Role,
    /// A client's masking keys (§5.3); `None` for a server.
    mask_keys: Option<MaskKeys>,
    decoder: Decoder,
    compression: Option<Compression>,
    max_message_len: u64,
    message: Option<Incoming>,
    /// Frames of the current data message are payload to collect (not a
    /// control frame between fragments).
    collecting: bool,
    /// UTF-8 of an inflated text message (the decoder checks uncompressed
    /// ones on the wire).
    utf8: Utf8Validator,
    state: State,
    failed: bool,
    out: Vec<u8>,
    scratch: Vec<u8>,
    /// A message buffer handed back with [`Endpoint::recycle`], reused
    /// for the next message instead of a fresh allocation.
    spare: Vec<u8>,
    /// Set by [`Endpoint::payload_buffer`]: the message's length then, and
    /// how many bytes the caller may append.
    direct: Option<(usize, usize)>,
}

impl std::fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Endpoint")
            .field("role", &self.role)
            .field("compression", &self.compression.is_some())
            .field("state", &self.state)
            .field("failed", &self.failed)
            .field("output", &self.out.len())
            .finish_non_exhaustive()
    }
}

impl Endpoint {
    /// The server side of a connection whose handshake agreed to `config`:
    /// it sends unmasked frames and requires masked ones (§5.1).
    pub fn server(config: EndpointConfig) -> Endpoint {
        Endpoint::with_role(Role::Server, None, config)
    }

    /// The client side of a connection whose handshake agreed to `config`:
    /// every frame it sends is masked with the next key from `mask_keys`
    /// (§5.3: "a fresh masking key [...] from the set of allowed 32-bit
    /// values", unpredictable per §10.3), and it requires the server's
    /// frames unmasked (§5.1).
    pub fn client(config: EndpointConfig, mask_keys: MaskKeys) -> Endpoint {
        Endpoint::with_role(Role::Client, Some(mask_keys), config)
    }

    fn with_role(role: Role, mask_keys: Option<MaskKeys>, config: EndpointConfig) -> Endpoint {
        let peer = role.peer();
        let mut decoder =
            Decoder::new(peer, DecoderConfig { max_frame_len: config.max_frame_len, ..DecoderConfig::default() });
        let compression = config.deflate.map(|p| {
            // §6.1: RSV1 marks a compressed message once the extension is agreed.
            decoder.set_allowed_rsv(true, false, false);
            // §7.1.1, §7.1.2: each side's parameters govern what that side
            // compresses, so this side deflates with its own and inflates
            // with the peer's.
            Compression {
                deflater: Deflater::with_window_bits(
                    config.compression_level,
                    p.no_context_takeover(role),
                    p.max_window_bits(role),
                ),
                inflater: Inflater::with_window_bits(
                    p.no_context_takeover(peer),
                    p.max_window_bits(peer),
                    config.max_message_len,
                ),
            }
        });
        Endpoint {
            role,
            mask_keys,
            decoder,
            compression,
            max_message_len: config.max_message_len,
            message: None,
            collecting: false,
            utf8: Utf8Validator::new(),
            state: State::Open,
            failed: false,
            out: Vec::new(),
            scratch: Vec::new(),
            spare: Vec::new(),
            direct: None,
        }
    }

    /// This endpoint's role.
    pub fn role(&self) -> Role {
        self.role
    }

    /// Handles bytes received from the peer (a client's are unmasked in
    /// place), appends what they completed to `received`, and returns how
    /// many bytes were used. Answers go to [`Endpoint::output`].
    ///
    /// It stops after each completed message, so that the caller can answer
    /// it before what follows is read (a violation later in the same input
    /// then closes after the answer, as RFC 6455 §5.4's order requires):
    /// call again with the rest, and once more with empty input, until it
    /// uses nothing and adds nothing.
    pub fn handle_input(&mut self, input: &mut [u8], received: &mut Vec<Received>) -> usize {
        // Bytes appended after a `payload_buffer` without `payload_read`
        // come first, in their order.
        if self.direct.is_some() {
            let before = received.len();
            self.payload_read(received);
            if received[before..].iter().any(|r| matches!(r, Received::Message { .. })) {
                return 0;
            }
        }
        let mut used = 0;
        loop {
            if self.state == State::Closed {
                // §5.5.1: nothing is read after the close handshake.
                return input.len();
            }
            let decoded = self.decoder.decode_mut(&mut input[used..]);
            used += decoded.consumed;
            let Some(event) = decoded.event else { return used };
            let before = received.len();
            self.handle_event(event, received);
            if received[before..].iter().any(|r| matches!(r, Received::Message { .. })) {
                return used;
            }
        }
    }

    /// Room for the peer's next bytes in the message being received, when
    /// they can only be payload of an uncompressed data frame: the message
    /// buffer, and how many bytes (at least 1, at most 1 MiB and the rest of
    /// the frame) the caller may append to it. The caller reads that many
    /// at most straight from its socket into the buffer's spare capacity
    /// (tokio's `read_buf` with `bytes::BufMut::limit`, say), appends
    /// nothing else, and calls [`Endpoint::payload_read`]. A large message
    /// then reaches its buffer with no copy out of a read buffer: the
    /// bytes are unmasked and checked there (§5.3, and §8.1 for text).
    /// Capacity is reserved for the allowed count, up to 64 KiB or what the
    /// message already holds, whichever is more, and in the message's last
    /// frame never past its end (a buffer handed back with
    /// [`Endpoint::recycle`] usually has room for all of it already).
    ///
    /// Called again before `payload_read`, it offers what is left of the
    /// same room. `None` when the next bytes are anything else (a header, a
    /// control frame's payload, compressed data), or after a failure or the
    /// close: use [`Endpoint::handle_input`] then (which takes in bytes
    /// appended here first).
    pub fn payload_buffer(&mut self) -> Option<(&mut Vec<u8>, usize)> {
        if let Some((from, limit)) = self.direct {
            let message = self.message.as_mut()?;
            let room = limit.saturating_sub(message.data.len().saturating_sub(from));
            return (room > 0).then_some((&mut message.data, room));
        }
        if self.failed || self.state == State::Closed || !self.collecting {
            return None;
        }
        let remaining = self.decoder.payload_remaining();
        let message = self.message.as_mut().filter(|m| !m.compressed && remaining > 0)?;
        let remaining = usize::try_from(remaining).unwrap_or(usize::MAX);
        let limit = remaining.min(MAX_DIRECT);
        let additional = limit.min(message.data.len().max(MIN_DIRECT_RESERVE));
        let data = &mut message.data;
        if data.capacity() - data.len() < additional {
            // Geometric growth, as `Vec::reserve` does (reads that take less
            // than the room do not make it grow again), but in the
            // message's last frame not past its end: doubling past it
            // would, for a 1 MiB message, leave a buffer too large to
            // recycle, and a fresh one to fault in for the next.
            let mut want = (2 * data.capacity()).max(data.len() + additional);
            if message.last_frame {
                want = want.min(data.len().saturating_add(remaining));
            }
            data.reserve_exact(want - data.len());
        }
        self.direct = Some((message.data.len(), limit));
        Some((&mut message.data, limit))
    }

    /// Takes in the bytes the caller appended to [`Endpoint::payload_buffer`]'s
    /// buffer, as [`Endpoint::handle_input`] would have, and appends what
    /// they completed to `received`: at most one message. Appending more
    /// than allowed breaks that contract; the bytes past the allowed count
    /// are not lost, but they are handled as by [`Endpoint::handle_all`], so
    /// a message among them may come after a close that a later violation
    /// among them caused.
    pub fn payload_read(&mut self, received: &mut Vec<Received>) {
        let Some((from, limit)) = self.direct.take() else { return };
        let Some(mut message) = self.message.take() else { return };
        // Nothing else touches the buffer between the two calls, but a
        // caller may have truncated or overfilled it.
        let from = from.min(message.data.len());
        let mut rest =
            if message.data.len() > from + limit { message.data.split_off(from + limit) } else { Vec::new() };
        let mut at = from;
        // Payload only: unmasked (and text checked) in place, nothing to copy.
        while at < message.data.len() && self.decoder.payload_remaining() > 0 {
            let decoded = self.decoder.decode_mut(&mut message.data[at..]);
            at += decoded.consumed;
            if decoded.consumed == 0 {
                break;
            }
        }
        // What the payload was not (bytes after invalid UTF-8, or beyond
        // the allowed count) goes the ordinary way, after the events the
        // payload left pending (its violation, the frame's end).
        if at < message.data.len() {
            let mut tail = message.data.split_off(at);
            tail.append(&mut rest);
            rest = tail;
        }
        self.message = Some(message);
        self.handle_all(&mut rest, received);
    }

    /// [`Endpoint::handle_input`] over all of `input`, for callers
    /// that answer messages only afterwards (tests, tools).
    pub fn handle_all(&mut self, input: &mut [u8], received: &mut Vec<Received>) {
        let mut used = 0;
        loop {
            let before = received.len();
            let n = self.handle_input(&mut input[used..], received);
            used += n;
            if n == 0 && received.len() == before {
                return;
            }
        }
    }

    fn handle_event(&mut self, event: Event<'_>, received: &mut Vec<Received>) {
        if self.failed {
            // After failing, only the peer's close matters (§7.1.7).
            if let Event::FrameEnd(end) = event
                && end.header.opcode == OpCode::Close
            {
                self.state = State::Closed;
            }
            return;
        }
        match event {
            Event::Violation(v) => self.fail(v.error, received),
            Event::Header(h) => {
                let header = h.header;
                match header.opcode {
                    OpCode::Text | OpCode::Binary => {
                        let kind = if header.opcode == OpCode::Text { MessageKind::Text } else { MessageKind::Binary };
                        if header.rsv1 {
                            if let Some(c) = &mut self.compression {
                                c.inflater.begin_message();
                            }
                            self.utf8.reset();
                        }
                        let mut data = std::mem::take(&mut self.spare);
                        data.clear();
                        self.message = Some(Incoming { kind, compressed: header.rsv1, data, last_frame: header.fin });
                        self.collecting = true;
                    }
                    OpCode::Continuation => {
                        self.collecting = self.message.is_some();
                        if let Some(m) = &mut self.message {
                            m.last_frame = header.fin;
                        }
                    }
                    _ => {
                        self.collecting = false;
                        return;
                    }
                }
                if let Some(m) = &self.message
                    && !m.compressed
                    && (m.data.len() as u64).checked_add(header.payload_len).is_none_or(|n| n > self.max_message_len)
                {
                    self.fail(Error::MessageTooLarge, received);
                }
            }
            Event::Payload(p) if self.collecting => {
                let Some(message) = &mut self.message else { return };
                if !message.compressed {
                    message.data.extend_from_slice(p.data());
                    return;
                }
                let Some(c) = &mut self.compression else { return };
                let (data, utf8, text) = (&mut message.data, &mut self.utf8, message.kind == MessageKind::Text);
                let mut bad_utf8 = false;
                let r = c.inflater.inflate(p.data(), &mut |bytes| {
                    bad_utf8 |= text && utf8.feed(bytes).is_err();
                    data.extend_from_slice(bytes);
                });
                match r {
                    // §8.1: fail fast, as soon as the text cannot be UTF-8;
                    // and by the first fault in the data: text that is not
                    // UTF-8 before a corrupt spot in the DEFLATE data fails
                    // as invalid UTF-8, however the data was cut.
                    _ if bad_utf8 => self.fail(Error::InvalidUtf8, received),
                    Err(e) => self.fail(e, received),
                    Ok(()) => {}
                }
            }
            Event::Payload(_) => {}
            Event::FrameEnd(end) => match end.header.opcode {
                OpCode::Ping => {
                    let payload = self.decoder.control_payload().to_vec();
                    if self.state == State::Open {
                        // §5.5.2: "Upon receipt of a Ping frame, an endpoint
                        // MUST send a Pong frame in response".
                        self.write_frame(FrameHeader::new(OpCode::Pong, 0), &payload);
                    }
                    received.push(Received::Ping(payload));
                }
                OpCode::Pong => received.push(Received::Pong(self.decoder.control_payload().to_vec())),
                OpCode::Close => self.handle_close(received),
                _ if end.message_end => self.end_message(received),
                _ => {}
            },
        }
    }

    fn end_message(&mut self, received: &mut Vec<Received>) {
        self.collecting = false;
        let Some(mut message) = self.message.take() else { return };
        if message.compressed
            && let Some(c) = &mut self.compression
        {
            let (data, utf8) = (&mut message.data, &mut self.utf8);
            let mut bad_utf8 = false;
            let text = message.kind == MessageKind::Text;
            let r = c.inflater.end_message(&mut |bytes| {
                bad_utf8 |= text && utf8.feed(bytes).is_err();
                data.extend_from_slice(bytes);
            });
            // The first fault in the data, as above.
            if bad_utf8 {
                return self.fail(Error::InvalidUtf8, received);
            }
            if let Err(e) = r {
                return self.fail(e, received);
            }
            if text && !self.utf8.is_complete() {
                return self.fail(Error::InvalidUtf8, received);
            }
        }
        received.push(Received::Message { kind: message.kind, data: message.data });
    }

    fn handle_close(&mut self, received: &mut Vec<Received>) {
        // The decoder has checked the payload (§5.5.1, §7.4): a bad one was
        // a violation before this frame end.
        let close = parse_close_payload(self.decoder.control_payload())
            .ok()
            .flatten()
            .map(|c| (c.code, String::from_utf8_lossy(c.reason.as_bytes()).into_owned()));
        if self.state == State::Open {
            // §5.5.1: "If an endpoint receives a Close frame and did not
            // previously send a Close frame, the endpoint MUST send a Close
            // frame in response. [...] It SHOULD typically echo the status
            // code it received."
            let payload = close.as_ref().map(|(code, _)| encode_close_payload(*code, "")).unwrap_or_default();
            self.write_frame(FrameHeader::new(OpCode::Close, 0), &payload);
        }
        self.state = State::Closed;
        received.push(Received::Close(close));
    }

    /// Fails the connection (§7.1.7): the close frame with the rule's code.
    fn fail(&mut self, error: Error, received: &mut Vec<Received>) {
        self.failed = true;
        self.message = None;
        self.collecting = false;
        let code = error.close_code().unwrap_or(CloseCode::PROTOCOL_ERROR);
        self.close(code, &error.to_string());
        received.push(Received::Failed(error));
    }

    /// Sends a data message: compressed (RSV1, RFC 7692 §6) when
    /// permessage-deflate was agreed, in one frame. Ignored once this
    /// endpoint has sent its close (§5.5.1: "After sending a Close frame,
    /// the endpoint MUST NOT send any further data frames").
    pub fn send(&mut self, kind: MessageKind, data: &[u8]) {
        if self.state != State::Open {
            return;
        }
        let opcode = match kind {
            MessageKind::Text => OpCode::Text,
            MessageKind::Binary => OpCode::Binary,
        };
        match &mut self.compression {
            Some(c) => {
                let mut compressed = std::mem::take(&mut self.scratch);
                compressed.clear();
                c.deflater.compress_message(data, &mut compressed);
                let header = FrameHeader { rsv1: true, ..FrameHeader::new(opcode, 0) };
                self.write_frame(header, &compressed);
                self.scratch = compressed;
            }
            None => self.write_frame(FrameHeader::new(opcode, 0), data),
        }
    }

    /// Queues only the frame header of a data message of `len` bytes whose
    /// payload the caller writes itself, unchanged, right after the output
    /// (`write_vectored` of the output and the payload): a large echo is
    /// then not copied into the output first. Returns false, queuing
    /// nothing, where the payload would have to change on its way (a
    /// client masks it, §5.3; permessage-deflate compresses it, RFC 7692
    /// §6) or where no data may be sent (§5.5.1): send it with
    /// [`Endpoint::send`] then.
    ///
    /// After a `true`, the caller must write the output and then exactly
    /// `len` bytes before it asks this endpoint for anything else.
    pub fn send_header(&mut self, kind: MessageKind, len: usize) -> bool {
        if self.state != State::Open || self.compression.is_some() || self.mask_keys.is_some() {
            return false;
        }
        let opcode = match kind {
            MessageKind::Text => OpCode::Text,
            MessageKind::Binary => OpCode::Binary,
        };
        let mut buf = [0u8; crate::header::MAX_HEADER_LEN];
        let n = FrameHeader::new(opcode, len as u64).encode(&mut buf);
        self.out.extend_from_slice(&buf[..n]);
        true
    }

    /// Hands back the data of a [`Received::Message`] once the caller is
    /// done with it: the next message is collected into it, which saves an
    /// allocation (and, for large messages, fresh pages) per message.
    /// Buffers over 1 MiB are dropped, so that an idle connection does not
    /// hold the memory of the largest message it ever received.
    pub fn recycle(&mut self, data: Vec<u8>) {
        if data.capacity() > self.spare.capacity() && data.capacity() <= MAX_SPARE {
            self.spare = data;
        }
    }

    /// Starts the closing handshake (§7.1.2) with `code` and `reason` (cut
    /// to fit a control frame), if this endpoint has not closed yet.
    pub fn close(&mut self, code: CloseCode, reason: &str) {
        if self.state != State::Open {
            return;
        }
        self.write_frame(FrameHeader::new(OpCode::Close, 0), &encode_close_payload(code, reason));
        self.state = State::CloseSent;
    }

    fn write_frame(&mut self, mut header: FrameHeader, payload: &[u8]) {
        // §5.3: a client masks every frame, each with a fresh key.
        header.mask = self.mask_keys.as_mut().map(|next| next());
        encode_frame(&header, payload, &mut self.out);
    }

    /// The bytes to send, in order. The caller writes them and clears the
    /// buffer (or drains what it wrote).
    #[must_use]
    pub fn output(&mut self) -> &mut Vec<u8> {
        &mut self.out
    }

    /// Whether the closing handshake is over (both closes exchanged, or the
    /// peer's answered): once the output is written, a server closes the TCP
    /// connection, and a client waits for the server to close it (§7.1.1:
    /// "the server [...] SHOULD close the underlying TCP connection first")
    /// before closing its own, after a timeout of its choosing.
    pub fn is_closed(&self) -> bool {
        self.state == State::Closed
    }

    /// Whether this endpoint has sent its close (and so sends no more data).
    pub fn close_sent(&self) -> bool {
        self.state != State::Open
    }
}

#[cfg(test)]
mod tests;
