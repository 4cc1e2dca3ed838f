//! The sans-IO inspector: decodes a copy of one direction's bytes with
//! `wsproto` and writes what it sees (frames, messages, closes, ping/pong
//! round trips, violations) as events. It never changes the bytes; the
//! relay writes them on unchanged.

use std::time::Instant;

use wsproto::deflate::{DeflateParams, Inflater};
use wsproto::{CloseCode, Decoder, DecoderConfig, Error, Event, MessageKind, OpCode, Role, Utf8Validator, Violation};

use crate::event::Time;
use crate::event::{
    CloseOut, DisplayStr, EventBody, FrameOut, MessageOut, OpcodeOut, Preview, Side, Stamp, ViolationOut,
};
use crate::log::Events;

/// How much of a payload to show.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PreviewLimit {
    /// At most this many bytes (0: no preview).
    Bytes(usize),
    /// The whole payload.
    All,
}

impl PreviewLimit {
    fn cap(self) -> usize {
        match self {
            PreviewLimit::Bytes(n) => n,
            PreviewLimit::All => usize::MAX,
        }
    }
}

/// What to log and how.
#[derive(Debug, Clone, Copy)]
pub struct InspectOptions {
    /// Preview size.
    pub max_preview: PreviewLimit,
    /// Log messages and control frames, not each data frame.
    pub messages_only: bool,
    /// Stop at the first violation (the relay then ends the connection).
    pub enforce: bool,
    /// Most bytes one compressed message may inflate to before it is
    /// reported as a decompression bomb and no longer followed.
    pub max_inflate: u64,
}

mod pings;

use pings::PingTracker;

/// What the two directions of a connection share.
#[derive(Debug, Default)]
pub struct Shared {
    /// Whether each side has sent a close frame.
    pub closed: [bool; 2],
    /// Pings each side sent, waiting for the other side's pong.
    pings: [PingTracker; 2],
}

impl Shared {
    /// Pings each side sent that were never answered.
    pub fn unanswered_pings(&self) -> [u64; 2] {
        [self.pings[0].unanswered(), self.pings[1].unanswered()]
    }

    /// Whether both sides sent a close frame.
    pub fn close_handshake_complete(&self) -> bool {
        self.closed[0] && self.closed[1]
    }
}

#[derive(Debug, Clone, Copy)]
struct MessageState {
    kind: MessageKind,
    len: u64,
    fragments: u32,
    /// RSV1 on its first frame.
    compressed: bool,
    /// Being inflated (compressed, and permessage-deflate negotiated).
    inflating: bool,
    /// Inflating was started (the preview holds inflated bytes, even if
    /// inflating failed since).
    inflate_started: bool,
    /// A text message whose inflated data already broke UTF-8.
    utf8_failed: bool,
}

/// permessage-deflate state of one direction: the inflater, and UTF-8
/// validation of what it produces (RFC 6455 §8.1 applies to the data after
/// decompression, RFC 7692 §6).
#[derive(Debug)]
struct Inflation {
    inflater: Inflater,
    utf8: Utf8Validator,
    /// Unmasked compressed bytes, for a masked payload.
    unmasked: Vec<u8>,
}

/// The inspector of one direction of one connection.
#[derive(Debug)]
pub struct DirectionInspector {
    conn: u64,
    from: Side,
    opts: InspectOptions,
    decoder: Decoder,
    /// Offset of the WebSocket stream in this direction's bytes (the
    /// length of the HTTP head before it).
    base: u64,
    header: Option<wsproto::HeaderEvent>,
    frame_preview: Vec<u8>,
    message: Option<MessageState>,
    message_preview: Vec<u8>,
    text: String,
    frames: u64,
    violations: u64,
    stopped: bool,
    /// When the bytes being decoded arrived.
    stamp: Stamp,
    now: Option<Instant>,
    /// Set when permessage-deflate was negotiated.
    inflation: Option<Box<Inflation>>,
    /// Byte ranges of the decoded stream that a `--fault` rule made or
    /// changed (the latest [`MAX_INJECTED`]): violations there are injected.
    injected: std::collections::VecDeque<std::ops::Range<u64>>,
}

/// Injected ranges an inspector remembers.
const MAX_INJECTED: usize = 64;

/// A violation that `--enforce` acts on: the rule, and where in this
/// direction's stream the frame that broke it starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Enforced {
    /// The violation.
    pub violation: Violation,
    /// Stream offset (in this feed's terms) of the offending frame's first byte.
    pub frame_start: u64,
}

fn copy_capped(preview: &mut Vec<u8>, cap: usize, payload: &wsproto::Payload<'_>) {
    let room = cap.saturating_sub(preview.len());
    if room == 0 {
        return;
    }
    let take = room.min(payload.len());
    let start = preview.len();
    preview.resize(start + take, 0);
    payload.unmask_into(&mut preview[start..]);
}

/// Renders a preview into `text`: as text when it is UTF-8 (a code point
/// cut by the cap is dropped), else as hex.
fn render_preview<'t>(text: &'t mut String, bytes: &[u8], as_text: bool, truncated: bool) -> Preview<'t> {
    text.clear();
    if as_text {
        let valid = match std::str::from_utf8(bytes) {
            Ok(s) => Some(s),
            Err(e) if e.error_len().is_none() && truncated => std::str::from_utf8(&bytes[..e.valid_up_to()]).ok(),
            Err(_) => None,
        };
        if let Some(s) = valid {
            text.push_str(s);
            return Preview { preview: text, preview_encoding: "text", preview_truncated: truncated };
        }
    }
    wscli::push_hex(text, bytes);
    Preview { preview: text, preview_encoding: "hex", preview_truncated: truncated }
}

impl DirectionInspector {
    /// An inspector for the frames `from` sends, starting `base` bytes into
    /// its stream, with the permessage-deflate parameters the handshake
    /// agreed on (if it did).
    pub fn new(conn: u64, from: Side, base: u64, deflate: Option<DeflateParams>, opts: InspectOptions) -> Self {
        let role = match from {
            Side::Client => Role::Client,
            Side::Upstream => Role::Server,
        };
        // RFC 7692 §6: RSV1 is the "Per-Message Compressed" bit once
        // permessage-deflate is negotiated; without it, RSV1 is a violation.
        let config = DecoderConfig {
            allow_rsv1: deflate.is_some(),
            stop_on_violation: opts.enforce,
            ..DecoderConfig::default()
        };
        let inflation = deflate.map(|params| {
            Box::new(Inflation {
                // RFC 7692 §7.1.2: the window this sender agreed to.
                inflater: Inflater::with_window_bits(
                    params.no_context_takeover(role),
                    params.max_window_bits(role),
                    opts.max_inflate,
                ),
                utf8: Utf8Validator::new(),
                unmasked: Vec::new(),
            })
        });
        DirectionInspector {
            conn,
            from,
            opts,
            decoder: Decoder::new(role, config),
            base,
            header: None,
            frame_preview: Vec::new(),
            message: None,
            message_preview: Vec::new(),
            text: String::new(),
            frames: 0,
            violations: 0,
            stopped: false,
            stamp: Stamp::UNSET,
            now: None,
            inflation,
            injected: std::collections::VecDeque::new(),
        }
    }

    /// The handshake negotiated an extension this inspector cannot decode
    /// (other than permessage-deflate): reserved bits are allowed on every
    /// frame and text payloads are not checked for UTF-8
    /// ([`wsproto::DecoderConfig::opaque_extension`]).
    pub fn set_opaque_extension(&mut self) {
        self.decoder.set_opaque_extension(true);
    }

    /// Frames seen so far.
    pub fn frames(&self) -> u64 {
        self.frames
    }

    /// Violations seen so far.
    pub fn violations(&self) -> u64 {
        self.violations
    }

    /// The next bytes fed, at `range` of the decoded stream, were made or
    /// changed by a `--fault` rule.
    pub(crate) fn mark_injected(&mut self, range: std::ops::Range<u64>) {
        if self.injected.len() == MAX_INJECTED {
            self.injected.pop_front();
        }
        self.injected.push_back(range);
    }

    /// The ranges marked injected, oldest first.
    #[cfg(test)]
    pub(crate) fn injected_ranges(&self) -> Vec<std::ops::Range<u64>> {
        self.injected.iter().cloned().collect()
    }

    /// Whether the stream is between frames (a close frame can be injected).
    pub fn at_frame_boundary(&self) -> bool {
        self.decoder.at_frame_boundary()
    }

    fn emit<B: EventBody>(&self, out: &mut Events, body: &B) {
        out.emit(&self.stamp, self.conn, body);
    }

    /// Decodes `bytes` and appends the events to `out`. With
    /// [`InspectOptions::enforce`], returns the first violation (and stops
    /// decoding).
    pub(crate) fn feed(&mut self, bytes: &[u8], t: &Time, shared: &mut Shared, out: &mut Events) -> Option<Enforced> {
        if self.stopped {
            return None;
        }
        self.stamp = t.stamp;
        self.now = Some(t.instant);
        let mut input = bytes;
        loop {
            let decoded = self.decoder.decode(input);
            input = &input[decoded.consumed..];
            let event = decoded.event?;
            match event {
                Event::Header(h) => {
                    self.header = Some(h);
                    self.frame_preview.clear();
                    let op = h.header.opcode;
                    if matches!(op, OpCode::Text | OpCode::Binary) {
                        let kind = if op == OpCode::Text { MessageKind::Text } else { MessageKind::Binary };
                        let compressed = h.header.rsv1;
                        let inflating = compressed
                            && match self.inflation.as_mut() {
                                Some(inf) => {
                                    inf.utf8.reset();
                                    inf.inflater.begin_message()
                                }
                                None => false,
                            };
                        let m = MessageState {
                            kind,
                            len: 0,
                            fragments: 0,
                            compressed,
                            inflating,
                            inflate_started: inflating,
                            utf8_failed: false,
                        };
                        self.message = Some(m);
                        self.message_preview.clear();
                    }
                    if op.is_data()
                        && let Some(m) = self.message.as_mut()
                    {
                        m.fragments = m.fragments.saturating_add(1);
                        m.len = m.len.saturating_add(h.header.payload_len);
                    }
                }
                Event::Payload(p) => {
                    copy_capped(&mut self.frame_preview, self.opts.max_preview.cap(), &p);
                    if self.header.is_some_and(|h| h.header.opcode.is_data())
                        && let Some(m) = self.message
                    {
                        if m.inflating {
                            if let Some(e) = self.inflate(Some(&p), out) {
                                return Some(e);
                            }
                        } else if !m.inflate_started {
                            // Not compressed, or not readable: the bytes as sent.
                            copy_capped(&mut self.message_preview, self.opts.max_preview.cap(), &p);
                        }
                    }
                }
                Event::Violation(v) => {
                    if let Some(e) = self.violation(v, out) {
                        return Some(e);
                    }
                }
                Event::FrameEnd(end) => {
                    if let Some(e) = self.frame_end(end, shared, out) {
                        return Some(e);
                    }
                }
            }
        }
    }

    /// Reports `v`; under `--enforce`, stops and returns it.
    fn violation(&mut self, v: Violation, out: &mut Events) -> Option<Enforced> {
        self.violations += 1;
        let body = ViolationOut {
            from: self.from,
            rule: v.error.rule(),
            rfc: v.error.rfc(),
            offset: self.base + v.offset,
            message: DisplayStr(v.error),
            enforced: self.opts.enforce,
            injected: self.injected.iter().any(|r| r.contains(&v.offset)),
        };
        self.emit(out, &body);
        if self.opts.enforce {
            self.stopped = true;
            let frame_start = self.header.map_or(v.offset, |h| h.offset);
            return Some(Enforced { violation: v, frame_start });
        }
        None
    }

    /// Inflates a piece of the current compressed message (`None`: its
    /// end), keeping a preview of the inflated data and validating it as
    /// UTF-8 for a text message. Problems are reported at the offset of the
    /// frame that carries them.
    fn inflate(&mut self, payload: Option<&wsproto::Payload<'_>>, out: &mut Events) -> Option<Enforced> {
        let (Some(inf), Some(m)) = (self.inflation.as_deref_mut(), self.message.as_mut()) else { return None };
        let cap = self.opts.max_preview.cap();
        let text = m.kind == MessageKind::Text;
        let preview = &mut self.message_preview;
        let utf8 = &mut inf.utf8;
        let mut utf8_failed = m.utf8_failed;
        let mut sink = |bytes: &[u8]| {
            let room = cap.saturating_sub(preview.len());
            preview.extend_from_slice(&bytes[..room.min(bytes.len())]);
            if text && !utf8_failed && utf8.feed(bytes).is_err() {
                utf8_failed = true;
            }
        };
        let result = match payload {
            Some(p) => {
                let compressed = if p.is_masked() {
                    inf.unmasked.resize(p.len(), 0);
                    p.unmask_into(&mut inf.unmasked);
                    &inf.unmasked[..]
                } else {
                    p.data()
                };
                inf.inflater.inflate(compressed, &mut sink).map(|()| None)
            }
            None => inf.inflater.end_message(&mut sink),
        };
        // §8.1: a text message must be UTF-8 once inflated, and may not end
        // inside a code point.
        if text && !utf8_failed && payload.is_none() && matches!(result, Ok(Some(_))) && !utf8.is_complete() {
            utf8_failed = true;
        }
        let newly_failed = utf8_failed && !m.utf8_failed;
        m.utf8_failed = utf8_failed;
        let at = self.header.map_or(self.decoder.offset(), |h| h.offset);
        if let Err(error) = result {
            m.inflating = false;
            if let Some(e) = self.violation(Violation { error, offset: at }, out) {
                return Some(e);
            }
        }
        if newly_failed {
            return self.violation(Violation { error: Error::InvalidUtf8, offset: at }, out);
        }
        None
    }

    fn frame_end(&mut self, end: wsproto::FrameEnd, shared: &mut Shared, out: &mut Events) -> Option<Enforced> {
        self.frames += 1;
        let h = self.header?;
        let op = h.header.opcode;
        let mut rtt_us = None;
        match op {
            OpCode::Ping => {
                // A ping sent after the sender's own close needs no answer:
                // the peer may already have stopped reading.
                if !shared.closed[self.from.index()]
                    && let Some(now) = self.now
                {
                    shared.pings[self.from.index()].ping(self.decoder.control_payload(), now);
                }
            }
            OpCode::Pong => {
                if let Some(now) = self.now {
                    let rtt = shared.pings[self.from.other().index()].pong(self.decoder.control_payload(), now);
                    rtt_us = rtt.map(|d| d.as_micros() as u64);
                }
            }
            _ => {}
        }
        let data = op.is_data();
        if !(data && self.opts.messages_only) {
            let as_text = match op {
                OpCode::Text => !h.header.rsv1,
                OpCode::Continuation => self.message.is_some_and(|m| m.kind == MessageKind::Text && !m.compressed),
                OpCode::Binary | OpCode::Close => false,
                _ => true,
            };
            let mut mask_hex = [0u8; 8];
            let mask = h.header.mask.map(|k| {
                for (i, b) in k.iter().enumerate() {
                    mask_hex[2 * i] = b"0123456789abcdef"[usize::from(b >> 4)];
                    mask_hex[2 * i + 1] = b"0123456789abcdef"[usize::from(b & 15)];
                }
                std::str::from_utf8(&mask_hex).unwrap_or_default()
            });
            let truncated = (self.frame_preview.len() as u64) < h.header.payload_len;
            let preview = render_preview(&mut self.text, &self.frame_preview, as_text, truncated);
            let body = FrameOut {
                from: self.from,
                fin: h.header.fin,
                rsv1: h.header.rsv1,
                rsv2: h.header.rsv2,
                rsv3: h.header.rsv3,
                opcode: OpcodeOut::from(op),
                masked: h.header.mask.is_some(),
                mask,
                len: h.header.payload_len,
                header_len: h.header_len,
                offset: self.base + h.offset,
                preview: preview.preview,
                preview_encoding: preview.preview_encoding,
                preview_truncated: preview.preview_truncated,
                rtt_us,
            };
            out.emit(&self.stamp, self.conn, &body);
        }
        if op == OpCode::Close {
            self.close(h, shared, out);
        }
        let mut enforced = None;
        if end.message_end
            && let Some(mut m) = self.message
        {
            let mut decompressed_len = None;
            if m.inflating {
                enforced = self.inflate(None, out);
                // A message that failed to inflate has no length to show.
                m = self.message.unwrap_or(m);
                if m.inflating {
                    decompressed_len = self.inflation.as_ref().map(|i| i.inflater.message_len());
                }
            }
            self.message = None;
            let shown_len = decompressed_len.unwrap_or(m.len);
            let truncated = (self.message_preview.len() as u64) < shown_len;
            let as_text = m.kind == MessageKind::Text && (!m.compressed || m.inflate_started);
            let preview = render_preview(&mut self.text, &self.message_preview, as_text, truncated);
            let body = MessageOut {
                from: self.from,
                kind: m.kind.name(),
                len: m.len,
                fragments: m.fragments,
                compressed: m.compressed,
                decompressed_len,
                preview: preview.preview,
                preview_encoding: preview.preview_encoding,
                preview_truncated: preview.preview_truncated,
            };
            out.emit(&self.stamp, self.conn, &body);
        }
        self.header = None;
        enforced
    }

    fn close(&mut self, h: wsproto::HeaderEvent, shared: &mut Shared, out: &mut Events) {
        let initiated = !shared.closed[self.from.other().index()] && !shared.closed[self.from.index()];
        shared.closed[self.from.index()] = true;
        let complete = shared.close_handshake_complete();
        // Shown as sent, even where it breaks §5.5.1 or §7.4 (the decoder
        // reports that as a violation): the user sees what was on the wire.
        let (code, reason) = match self.decoder.control_payload() {
            [hi, lo, reason @ ..] => (Some(CloseCode(u16::from_be_bytes([*hi, *lo]))), reason),
            _ => (None, &[][..]),
        };
        let text = String::from_utf8_lossy(reason);
        let body = CloseOut {
            from: self.from,
            code: code.map(|c| c.0),
            code_name: code.and_then(CloseCode::name),
            reason_invalid_utf8: matches!(text, std::borrow::Cow::Owned(_)),
            reason: text,
            initiated,
            handshake_complete: complete,
            offset: self.base + h.offset,
        };
        self.emit(out, &body);
    }
}

#[cfg(test)]
mod tests;
