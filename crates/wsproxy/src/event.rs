//! The events the proxy writes, and their two formats: JSON Lines (one
//! object per line, field names documented in the README and stable) and a
//! pretty one-line-per-event form for terminals.
//!
//! Events are written straight into a caller's byte buffer: fields borrow
//! from the inspector's reusable buffers, so logging a frame allocates
//! nothing. [`crate::schema`] holds the owned types to read the JSON back.

use std::fmt::{self, Display};
use std::io::Write as _;
use std::net::SocketAddr;
use std::time::{Duration, Instant, SystemTime};

use serde::{Serialize, Serializer};

use crate::json;

/// Which endpoint sent something.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Side {
    /// The client that connected to the proxy.
    Client,
    /// The upstream server.
    Upstream,
}

impl Side {
    /// The other side.
    pub fn other(self) -> Side {
        match self {
            Side::Client => Side::Upstream,
            Side::Upstream => Side::Client,
        }
    }

    /// 0 for the client, 1 for the upstream: an index for per-side arrays.
    pub fn index(self) -> usize {
        self as usize
    }

    /// `client` or `upstream`, as in the JSON.
    pub fn name(self) -> &'static str {
        match self {
            Side::Client => "client",
            Side::Upstream => "upstream",
        }
    }

    fn arrow(self) -> &'static str {
        match self {
            Side::Client => "→",
            Side::Upstream => "←",
        }
    }
}

/// An output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// JSON Lines.
    Json,
    /// One aligned line per event, optionally colored.
    Pretty {
        /// Use ANSI colors.
        color: bool,
    },
    /// No events: the bytes each side sent and the connections' lifecycle,
    /// as binary records for a capture writer ([`crate::capture`]).
    Capture,
}

/// Serializes a value through its `Display`, without an intermediate String.
pub(crate) struct DisplayStr<T>(pub T);

impl<T: Display> Serialize for DisplayStr<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&self.0)
    }
}

/// A timestamp formatted once (RFC 3339, UTC, microseconds) and shared by
/// the events of one read: formatting dates per frame would cost more
/// than decoding the frame.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Stamp {
    bytes: [u8; 32],
    len: usize,
    /// The same time in microseconds since the Unix epoch (0 when unset),
    /// for outputs that write times as numbers (pcapng).
    unix_us: u64,
}

impl Stamp {
    /// No time yet (an empty string).
    pub(crate) const UNSET: Stamp = Stamp { bytes: [0; 32], len: 0, unix_us: 0 };

    /// The current time.
    pub(crate) fn now() -> Stamp {
        Stamp::at(SystemTime::now())
    }

    /// The time `t`.
    ///
    /// Every read takes a stamp, so the date and time of day
    /// (`YYYY-MM-DDTHH:MM:SS`, which changes once a second) are formatted
    /// once per second per thread and kept; only `.uuuuuuZ` is written
    /// each time. The result is what `humantime::format_rfc3339_micros`
    /// writes (a test checks that).
    pub(crate) fn at(t: SystemTime) -> Stamp {
        thread_local! {
            /// The last second formatted, and its first 19 bytes.
            static SECOND: std::cell::Cell<(u64, [u8; 19])> = const { std::cell::Cell::new((u64::MAX, [0; 19])) };
        }
        let mut bytes = [0u8; 32];
        // A clock set before 1970 stamps the epoch (humantime would panic).
        let since = t.duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        let (secs, micros) = (since.as_secs(), since.subsec_micros());
        let (cached, mut prefix) = SECOND.get();
        if cached != secs {
            let whole = std::time::UNIX_EPOCH + Duration::from_secs(secs);
            let mut text = String::new();
            let written =
                fmt::Write::write_fmt(&mut text, format_args!("{}", humantime::format_rfc3339_seconds(whole)));
            // "YYYY-MM-DDTHH:MM:SSZ"; past year 9999 humantime writes
            // nothing, and neither does the stamp.
            match text.as_bytes().get(..19).filter(|_| written.is_ok() && text.len() == 20) {
                Some(head) => prefix.copy_from_slice(head),
                None => return Stamp { bytes, len: 0, unix_us: since.as_micros() as u64 },
            }
            SECOND.set((secs, prefix));
        }
        bytes[..19].copy_from_slice(&prefix);
        bytes[19] = b'.';
        let mut m = micros;
        for i in (20..26).rev() {
            bytes[i] = b'0' + (m % 10) as u8;
            m /= 10;
        }
        bytes[26] = b'Z';
        Stamp { bytes, len: 27, unix_us: since.as_micros() as u64 }
    }

    /// Microseconds since the Unix epoch (0 for [`Stamp::UNSET`]).
    pub(crate) fn unix_us(&self) -> u64 {
        self.unix_us
    }

    fn as_str(&self) -> &str {
        std::str::from_utf8(self.as_bytes()).unwrap_or_default()
    }

    /// The formatted time (ASCII, so no check is needed to write it as JSON).
    fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.len]
    }

    /// `HH:MM:SS.uuuuuu` of "YYYY-MM-DDTHH:MM:SS.uuuuuuZ".
    fn time_of_day(&self) -> &str {
        self.as_str().get(11..self.len.saturating_sub(1)).unwrap_or_default()
    }
}

impl Serialize for Stamp {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// The time of a read: the monotonic instant (for round trips and
/// durations) and the wall-clock stamp its events carry.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Time {
    pub instant: Instant,
    pub stamp: Stamp,
}

impl Time {
    /// Now, from the system's clocks (the relay's job, not the session's).
    pub(crate) fn now() -> Time {
        Time { instant: Instant::now(), stamp: Stamp::now() }
    }
}

/// An event body: its name and its pretty form.
pub(crate) trait EventBody: Serialize {
    /// The `event` field.
    const NAME: &'static str;
    /// The pretty line, after the timestamp and connection id.
    fn pretty(&self, out: &mut Vec<u8>, color: bool);
    /// Writes the JSON fields by hand (each after a comma) and returns
    /// true, for the events logged once per frame; the others return false
    /// and are serialized with serde.
    fn json_fields(&self, _out: &mut Vec<u8>) -> bool {
        false
    }
}

/// Appends one event to `out` in `format`.
pub(crate) fn write_event<B: EventBody>(out: &mut Vec<u8>, format: Format, stamp: &Stamp, conn: u64, body: &B) {
    match format {
        Format::Json => write_json(out, stamp, conn, body, true),
        Format::Pretty { color } => {
            out.extend_from_slice(stamp.time_of_day().as_bytes());
            let _ = write!(out, " #{conn:<4} ");
            body.pretty(out, color);
            out.push(b'\n');
        }
        Format::Capture => {}
    }
}

/// One JSON line: `{"ts":…,"conn":…,"event":…` then the body's fields,
/// written by hand when the body can (`by_hand`), else serialized as a
/// struct whose opening brace becomes the comma that joins it to the
/// envelope.
fn write_json<B: EventBody>(out: &mut Vec<u8>, stamp: &Stamp, conn: u64, body: &B, by_hand: bool) {
    let start = out.len();
    out.extend_from_slice(b"{\"ts\":\"");
    out.extend_from_slice(stamp.as_bytes());
    out.extend_from_slice(b"\",\"conn\":");
    json::u64(out, conn);
    out.extend_from_slice(b",\"event\":\"");
    out.extend_from_slice(B::NAME.as_bytes());
    out.push(b'"');
    if by_hand && body.json_fields(out) {
        out.extend_from_slice(b"}\n");
        return;
    }
    let body_at = out.len();
    // Writing into a Vec cannot fail; a serialization error would be a bug
    // in a body type, and leaves the line out.
    if serde_json::to_writer(&mut *out, body).is_err() || out.get(body_at) != Some(&b'{') {
        out.truncate(start);
        return;
    }
    if out.len() == body_at + 2 {
        // An empty body: `{}`.
        out.truncate(body_at);
        out.push(b'}');
    } else {
        out[body_at] = b',';
    }
    out.push(b'\n');
}

fn paint(out: &mut Vec<u8>, color: bool, code: &str, text: impl Display) {
    if color {
        let _ = write!(out, "\x1b[{code}m{text}\x1b[0m");
    } else {
        let _ = write!(out, "{text}");
    }
}

fn side_arrow(out: &mut Vec<u8>, color: bool, from: Side) {
    let code = if from == Side::Client { "36" } else { "35" };
    paint(out, color, code, format_args!("{} {:<8}", from.arrow(), from.name()));
}

/// `open`: a client connected.
#[derive(Serialize)]
pub(crate) struct Open<'a> {
    pub client: SocketAddr,
    pub upstream: &'a str,
}

impl EventBody for Open<'_> {
    const NAME: &'static str = "open";
    fn pretty(&self, out: &mut Vec<u8>, color: bool) {
        paint(out, color, "1", "open");
        let _ = write!(out, "   client {} → upstream {}", self.client, self.upstream);
    }
}

/// A header line as shown (values that are not UTF-8 are shown lossily).
#[derive(Serialize)]
pub(crate) struct HeaderOut<'a> {
    pub name: &'a str,
    pub value: std::borrow::Cow<'a, str>,
}

fn pretty_headers(out: &mut Vec<u8>, headers: &[HeaderOut<'_>]) {
    for h in headers {
        let _ = write!(out, "\n                         {}: {}", h.name, h.value);
    }
}

/// `handshake_request`.
#[derive(Serialize)]
pub(crate) struct HandshakeRequest<'a> {
    pub method: &'a str,
    pub target: &'a str,
    pub version: &'static str,
    pub headers: Vec<HeaderOut<'a>>,
    /// The target sent upstream, when the proxy changed it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub forwarded_target: Option<&'a str>,
    /// The `Host` sent upstream, when the proxy changed it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub forwarded_host: Option<&'a str>,
    /// Header lines the proxy did not forward (`--no-compression`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub removed_headers: Vec<&'static str>,
}

impl EventBody for HandshakeRequest<'_> {
    const NAME: &'static str = "handshake_request";
    fn pretty(&self, out: &mut Vec<u8>, color: bool) {
        side_arrow(out, color, Side::Client);
        let _ = write!(out, " {} {} {}", self.method, self.target, self.version);
        if let Some(t) = self.forwarded_target {
            let _ = write!(out, " (forwarded as {t})");
        }
        if !self.removed_headers.is_empty() {
            let _ = write!(out, " (not forwarded: {})", self.removed_headers.join(", "));
        }
        for h in &self.headers {
            let _ = write!(out, "\n                         {}: {}", h.name, h.value);
            // Where the proxy changed the value, say what the upstream got.
            if let Some(host) = self.forwarded_host
                && h.name.eq_ignore_ascii_case("host")
            {
                let _ = write!(out, " (forwarded as {host})");
            }
        }
    }
}

/// `handshake_response`.
#[derive(Serialize)]
pub(crate) struct HandshakeResponse<'a> {
    pub status: u16,
    pub reason: &'a str,
    pub version: &'static str,
    pub headers: Vec<HeaderOut<'a>>,
    /// The negotiated subprotocol.
    pub protocol: Option<&'a str>,
    /// The negotiated extensions, as sent.
    pub extensions: Vec<String>,
    /// Whether the connection switched to WebSocket.
    pub upgraded: bool,
    /// Negotiated extensions other than permessage-deflate: the proxy
    /// cannot decode them, so their frames are shown raw (said once, here).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub undecoded_extensions: Vec<&'a str>,
}

impl EventBody for HandshakeResponse<'_> {
    const NAME: &'static str = "handshake_response";
    fn pretty(&self, out: &mut Vec<u8>, color: bool) {
        side_arrow(out, color, Side::Upstream);
        let code = if self.upgraded { "32" } else { "33" };
        paint(out, color, code, format_args!(" {} {} {}", self.version, self.status, self.reason));
        pretty_headers(out, &self.headers);
        if !self.undecoded_extensions.is_empty() {
            let names = self.undecoded_extensions.join(", ");
            let _ = write!(out, "\n                         ({names}: not decoded; frames shown raw)");
        }
    }
}

/// `interim_response`: a 1xx answer other than 101 before the final one
/// (RFC 9110 §15.2: the client keeps reading after it). Forwarded as it
/// came.
#[derive(Serialize)]
pub(crate) struct InterimResponse<'a> {
    pub status: u16,
    pub reason: &'a str,
    pub version: &'static str,
    pub headers: Vec<HeaderOut<'a>>,
}

impl EventBody for InterimResponse<'_> {
    const NAME: &'static str = "interim_response";
    fn pretty(&self, out: &mut Vec<u8>, color: bool) {
        side_arrow(out, color, Side::Upstream);
        paint(out, color, "2", format_args!(" {} {} {} (interim)", self.version, self.status, self.reason));
        pretty_headers(out, &self.headers);
    }
}

/// `uninspected`: from here on the connection's bytes are relayed unchanged
/// without being decoded, and why.
#[derive(Serialize)]
pub(crate) struct Uninspected<'a> {
    /// Whose bytes could not be followed.
    pub from: Side,
    /// Why, in words.
    pub reason: &'a str,
}

impl EventBody for Uninspected<'_> {
    const NAME: &'static str = "uninspected";
    fn pretty(&self, out: &mut Vec<u8>, color: bool) {
        side_arrow(out, color, self.from);
        paint(out, color, "33", format_args!(" not inspected from here on: {}", self.reason));
    }
}

/// An opcode: its name, or its number when reserved.
#[derive(Debug, Clone, Copy, Serialize)]
#[serde(untagged)]
pub(crate) enum OpcodeOut {
    Name(&'static str),
    Number(u8),
}

impl From<wsproto::OpCode> for OpcodeOut {
    fn from(op: wsproto::OpCode) -> Self {
        match op.name() {
            Some(name) => OpcodeOut::Name(name),
            None => OpcodeOut::Number(op.as_u4()),
        }
    }
}

impl Display for OpcodeOut {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OpcodeOut::Name(n) => f.pad(n),
            OpcodeOut::Number(n) => f.pad(&format!("op{n}")),
        }
    }
}

/// A payload preview.
pub(crate) struct Preview<'a> {
    pub preview: &'a str,
    /// `text` or `hex`.
    pub preview_encoding: &'static str,
    /// Whether the preview is shorter than the payload.
    pub preview_truncated: bool,
}

fn json_preview(out: &mut Vec<u8>, preview: &str, encoding: &str, truncated: bool) {
    json::key(out, b",\"preview\":");
    if encoding == "hex" {
        json::plain_str(out, preview);
    } else {
        json::str(out, preview);
    }
    json::key(out, b",\"preview_encoding\":");
    json::plain_str(out, encoding);
    json::key(out, b",\"preview_truncated\":");
    json::bool(out, truncated);
}

fn pretty_preview(out: &mut Vec<u8>, preview: &str, encoding: &str, truncated: bool) {
    if preview.is_empty() {
        return;
    }
    if encoding == "text" {
        let _ = write!(out, " {preview:?}");
    } else {
        let _ = write!(out, " 0x{preview}");
    }
    if truncated {
        out.extend_from_slice("…".as_bytes());
    }
}

/// `frame`.
#[derive(Serialize)]
pub(crate) struct FrameOut<'a> {
    pub from: Side,
    pub fin: bool,
    pub rsv1: bool,
    pub rsv2: bool,
    pub rsv3: bool,
    pub opcode: OpcodeOut,
    pub masked: bool,
    pub mask: Option<&'a str>,
    pub len: u64,
    pub header_len: u8,
    pub offset: u64,
    pub preview: &'a str,
    pub preview_encoding: &'static str,
    pub preview_truncated: bool,
    /// For a pong answering a ping: the round trip in microseconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rtt_us: Option<u64>,
}

impl EventBody for FrameOut<'_> {
    const NAME: &'static str = "frame";
    fn json_fields(&self, out: &mut Vec<u8>) -> bool {
        json::key(out, b",\"from\":");
        json::plain_str(out, self.from.name());
        json::key(out, b",\"fin\":");
        json::bool(out, self.fin);
        json::key(out, b",\"rsv1\":");
        json::bool(out, self.rsv1);
        json::key(out, b",\"rsv2\":");
        json::bool(out, self.rsv2);
        json::key(out, b",\"rsv3\":");
        json::bool(out, self.rsv3);
        json::key(out, b",\"opcode\":");
        match self.opcode {
            OpcodeOut::Name(name) => json::plain_str(out, name),
            OpcodeOut::Number(n) => json::u64(out, n.into()),
        }
        json::key(out, b",\"masked\":");
        json::bool(out, self.masked);
        json::key(out, b",\"mask\":");
        match self.mask {
            Some(mask) => json::plain_str(out, mask),
            None => out.extend_from_slice(b"null"),
        }
        json::key(out, b",\"len\":");
        json::u64(out, self.len);
        json::key(out, b",\"header_len\":");
        json::u64(out, self.header_len.into());
        json::key(out, b",\"offset\":");
        json::u64(out, self.offset);
        json_preview(out, self.preview, self.preview_encoding, self.preview_truncated);
        if let Some(rtt) = self.rtt_us {
            json::key(out, b",\"rtt_us\":");
            json::u64(out, rtt);
        }
        true
    }

    fn pretty(&self, out: &mut Vec<u8>, color: bool) {
        side_arrow(out, color, self.from);
        let _ = write!(out, " {:<14}", self.opcode);
        let flags = [(self.fin, "fin"), (self.rsv1, "rsv1"), (self.rsv2, "rsv2"), (self.rsv3, "rsv3")];
        let mut shown = 0;
        for (set, name) in flags {
            if set {
                let _ = write!(out, "{}{name}", if shown > 0 { "," } else { "" });
                shown += 1;
            }
        }
        let _ = write!(out, " len={}", self.len);
        if let Some(mask) = self.mask {
            let _ = write!(out, " mask={mask}");
        }
        if let Some(rtt) = self.rtt_us {
            let _ = write!(out, " rtt={rtt}µs");
        }
        pretty_preview(out, self.preview, self.preview_encoding, self.preview_truncated);
    }
}

/// `message`: a complete data message.
#[derive(Serialize)]
pub(crate) struct MessageOut<'a> {
    pub from: Side,
    pub kind: &'static str,
    pub len: u64,
    pub fragments: u32,
    /// Sent compressed (permessage-deflate, RSV1 on its first frame).
    pub compressed: bool,
    /// Length after inflating, for a compressed message that could be
    /// inflated (`len` stays the length on the wire).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub decompressed_len: Option<u64>,
    pub preview: &'a str,
    pub preview_encoding: &'static str,
    pub preview_truncated: bool,
}

impl EventBody for MessageOut<'_> {
    const NAME: &'static str = "message";
    fn json_fields(&self, out: &mut Vec<u8>) -> bool {
        json::key(out, b",\"from\":");
        json::plain_str(out, self.from.name());
        json::key(out, b",\"kind\":");
        json::plain_str(out, self.kind);
        json::key(out, b",\"len\":");
        json::u64(out, self.len);
        json::key(out, b",\"fragments\":");
        json::u64(out, self.fragments.into());
        json::key(out, b",\"compressed\":");
        json::bool(out, self.compressed);
        if let Some(n) = self.decompressed_len {
            json::key(out, b",\"decompressed_len\":");
            json::u64(out, n);
        }
        json_preview(out, self.preview, self.preview_encoding, self.preview_truncated);
        true
    }

    fn pretty(&self, out: &mut Vec<u8>, color: bool) {
        side_arrow(out, color, self.from);
        paint(out, color, "1", format_args!(" {:<14}", format!("message:{}", self.kind)));
        let _ = write!(out, " len={} fragments={}", self.len, self.fragments);
        match (self.compressed, self.decompressed_len) {
            (true, Some(n)) => {
                let ratio = if self.len == 0 { 0.0 } else { n as f64 / self.len as f64 };
                let _ = write!(out, " compressed inflated={n} ratio={ratio:.1}x");
            }
            (true, None) => out.extend_from_slice(b" compressed (not inflated)"),
            _ => {}
        }
        pretty_preview(out, self.preview, self.preview_encoding, self.preview_truncated);
    }
}

/// `close`.
#[derive(Serialize)]
pub(crate) struct CloseOut<'a> {
    pub from: Side,
    /// The code as it was on the wire, sendable or not (RFC 6455 §7.4).
    pub code: Option<u16>,
    pub code_name: Option<&'static str>,
    /// The reason as it was on the wire; invalid UTF-8 is replaced by U+FFFD
    /// and flagged in `reason_invalid_utf8`.
    pub reason: std::borrow::Cow<'a, str>,
    /// The reason's bytes were not UTF-8 (RFC 6455 §5.5.1); only written
    /// when true.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub reason_invalid_utf8: bool,
    /// This side closed first.
    pub initiated: bool,
    /// Both sides have now sent a close frame.
    pub handshake_complete: bool,
    pub offset: u64,
}

impl EventBody for CloseOut<'_> {
    const NAME: &'static str = "close";
    fn pretty(&self, out: &mut Vec<u8>, color: bool) {
        side_arrow(out, color, self.from);
        paint(out, color, "1", " close:        ");
        match self.code {
            Some(code) => {
                let _ = write!(out, " {code} ({})", self.code_name.unwrap_or("unknown"));
            }
            None => out.extend_from_slice(b" (no code)"),
        }
        if !self.reason.is_empty() {
            let _ = write!(out, " {:?}", self.reason);
        }
        if self.reason_invalid_utf8 {
            out.extend_from_slice(b" (reason not UTF-8)");
        }
        out.extend_from_slice(if self.handshake_complete {
            b" handshake complete" as &[u8]
        } else if self.initiated {
            b" initiates"
        } else {
            b""
        });
    }
}

/// `violation`.
#[derive(Serialize)]
pub(crate) struct ViolationOut {
    pub from: Side,
    pub rule: &'static str,
    pub rfc: &'static str,
    pub offset: u64,
    pub message: DisplayStr<wsproto::Error>,
    /// With `--enforce`: the proxy ended the connection for it.
    pub enforced: bool,
    /// In bytes a `--fault` rule made or changed: the proxy's doing, not
    /// the sender's; only written when true.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub injected: bool,
}

impl EventBody for ViolationOut {
    const NAME: &'static str = "violation";
    fn pretty(&self, out: &mut Vec<u8>, color: bool) {
        side_arrow(out, color, self.from);
        paint(
            out,
            color,
            "31;1",
            format_args!(" VIOLATION    {} at byte {}: {}", self.rule, self.offset, self.message.0),
        );
        if self.injected {
            out.extend_from_slice(b" (injected by --fault)");
        }
        if self.enforced {
            out.extend_from_slice(b" (enforced: connection ended)");
        }
    }
}

/// `fault`: a `--fault` rule acted on a frame.
#[derive(Serialize)]
pub(crate) struct FaultOut<'a> {
    /// The sender of the frame acted on.
    pub from: Side,
    /// The rule, as given.
    pub rule: &'a str,
    /// The action's name (`drop`, `corrupt`, …).
    pub action: &'static str,
    /// The frame's opcode.
    pub opcode: OpcodeOut,
    /// The sender's data message number (from 1), for a data frame.
    pub msg: Option<u64>,
    /// The frame's payload length.
    pub len: u64,
    /// Where the frame starts in the sender's stream.
    pub offset: u64,
    /// What was done, in words.
    pub detail: &'a str,
}

impl EventBody for FaultOut<'_> {
    const NAME: &'static str = "fault";
    fn pretty(&self, out: &mut Vec<u8>, color: bool) {
        side_arrow(out, color, self.from);
        paint(out, color, "33;1", format_args!(" FAULT        {} on {}", self.action, self.opcode));
        if let Some(n) = self.msg {
            let _ = write!(out, " message {n}");
        }
        let _ = write!(out, " at byte {}: {} (rule {})", self.offset, self.detail, self.rule);
    }
}

/// Per-side counters.
#[derive(Serialize, Default, Clone, Copy)]
pub(crate) struct PerSide {
    pub client: u64,
    pub upstream: u64,
}

/// `end`.
#[derive(Serialize)]
pub(crate) struct EndOut {
    /// Bytes sent by each side.
    pub bytes: PerSide,
    /// Frames sent by each side.
    pub frames: PerSide,
    /// Pings each side sent that were never answered.
    pub unanswered_pings: PerSide,
    pub duration_us: u64,
    /// `close_handshake`, `eof`, `reset`, `timeout`, `error` or `enforced`.
    pub reason: &'static str,
}

impl EventBody for EndOut {
    const NAME: &'static str = "end";
    fn pretty(&self, out: &mut Vec<u8>, color: bool) {
        paint(out, color, "1", "end");
        let _ = write!(
            out,
            "    {} after {:.3}s; client sent {} B in {} frames, upstream {} B in {} frames",
            self.reason,
            self.duration_us as f64 / 1e6,
            self.bytes.client,
            self.frames.client,
            self.bytes.upstream,
            self.frames.upstream
        );
    }
}

/// `http`: a plain HTTP exchange, written when its response is complete
/// (or the connection ends without one).
#[derive(Serialize)]
pub(crate) struct HttpOut<'a> {
    pub method: &'a str,
    pub target: &'a str,
    pub status: Option<u16>,
    /// The request body's content length in bytes (chunk framing not counted).
    pub request_body_len: u64,
    /// The response body's content length in bytes, when a response came.
    pub response_body_len: Option<u64>,
    /// The target sent upstream, when the proxy changed it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub forwarded_target: Option<&'a str>,
    /// The `Host` sent upstream, when the proxy changed it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub forwarded_host: Option<&'a str>,
    /// The request's HTTP version (only when the session keeps headers,
    /// [`crate::Config::http_headers`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<&'a str>,
    /// The request's header lines as sent (likewise).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_headers: Option<Vec<HeaderOut<'a>>>,
    /// The response's reason phrase (likewise, when a response came).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<&'a str>,
    /// The response's HTTP version (likewise).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub response_version: Option<&'a str>,
    /// The response's header lines (likewise).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub response_headers: Option<Vec<HeaderOut<'a>>>,
}

impl EventBody for HttpOut<'_> {
    const NAME: &'static str = "http";
    fn pretty(&self, out: &mut Vec<u8>, color: bool) {
        paint(out, color, "2", "http");
        let _ = write!(out, "   {} {} → ", self.method, self.target);
        match self.status {
            Some(s) => {
                let _ = write!(out, "{s}");
            }
            None => out.extend_from_slice(b"(no response)"),
        }
        if self.request_body_len > 0 {
            let _ = write!(out, " request body {} B", self.request_body_len);
        }
        if let Some(n) = self.response_body_len.filter(|n| *n > 0) {
            let _ = write!(out, " response body {n} B");
        }
    }
}

/// `error`: something went wrong that is not the protocol's fault.
#[derive(Serialize)]
pub(crate) struct ErrorOut<'a> {
    pub message: &'a str,
}

impl EventBody for ErrorOut<'_> {
    const NAME: &'static str = "error";
    fn pretty(&self, out: &mut Vec<u8>, color: bool) {
        paint(out, color, "31", format_args!("error  {}", self.message));
    }
}

/// `gap`: bytes of a side's stream that a capture does not have (`wsproxy
/// read`): they are not guessed; that side is not decoded from here on.
#[derive(Serialize)]
pub(crate) struct Gap {
    /// Whose bytes are missing.
    pub from: Side,
    /// Where they start in that side's stream.
    pub offset: u64,
    /// How many are missing (as far as the capture tells).
    pub len: u64,
}

impl EventBody for Gap {
    const NAME: &'static str = "gap";
    fn pretty(&self, out: &mut Vec<u8>, color: bool) {
        side_arrow(out, color, self.from);
        paint(
            out,
            color,
            "31",
            format_args!(
                " gap: {} B missing from the capture at offset {}; not decoded from here on",
                self.len, self.offset
            ),
        );
    }
}

/// `resync`: a capture that begins inside a WebSocket connection (no TCP
/// or HTTP handshake in it; `wsproxy read --port/--server`): the first
/// `skipped` bytes of `from`'s stream are not decoded, and frames are
/// decoded from the first frame boundary found after them (RFC 6455 §5.2;
/// how: [`crate::capture::read`]). `resumed` is false when no boundary was
/// found and nothing of that side was decoded.
#[derive(Serialize)]
pub(crate) struct Resync {
    /// Whose stream.
    pub from: Side,
    /// Bytes at its start (of what the capture has) not decoded.
    pub skipped: u64,
    /// Whether a frame boundary was found (decoding resumed after the
    /// skipped bytes).
    pub resumed: bool,
}

impl EventBody for Resync {
    const NAME: &'static str = "resync";
    fn pretty(&self, out: &mut Vec<u8>, color: bool) {
        side_arrow(out, color, self.from);
        let what = if self.resumed {
            format!(
                " resync: the capture starts inside the WebSocket connection; {} B skipped to the first frame boundary; extensions unknown",
                self.skipped
            )
        } else {
            format!(" resync: no WebSocket frame boundary found in {} B; not decoded", self.skipped)
        };
        paint(out, color, "33", format_args!("{what}"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The cached-second stamp writes what humantime writes, across second
    /// boundaries, leap days, the epoch, year 9999 and before 1970, and in
    /// any order (the cache is per second, not monotonic).
    #[test]
    fn stamps_are_humantimes_rfc3339_micros() {
        let at = |secs: u64, micros: u32| std::time::UNIX_EPOCH + Duration::new(secs, micros * 1000);
        let mut times = vec![
            at(0, 0),
            at(0, 1),
            at(951_782_400, 999_999), // 2000-02-29T00:00:00.999999Z
            at(951_782_399, 999_999),
            at(951_782_400, 0),
            at(1_796_083_200, 123_456),   // 2026-12-01
            at(253_402_300_799, 999_999), // 9999-12-31T23:59:59.999999Z
            SystemTime::now(),
        ];
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for _ in 0..2000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            times.push(at(x % 253_402_300_800, (x >> 40) as u32 % 1_000_000));
            times.push(at(x % 253_402_300_800, 0));
        }
        for t in times {
            assert_eq!(Stamp::at(t).as_str(), humantime::format_rfc3339_micros(t).to_string(), "{t:?}");
        }
        // Before 1970 (a clock set wrong): the epoch, not a panic.
        let before = std::time::UNIX_EPOCH - Duration::from_micros(1_500_001);
        assert_eq!(Stamp::at(before).as_str(), "1970-01-01T00:00:00.000000Z");
        // Past year 9999 humantime writes nothing; so does the stamp.
        assert_eq!(Stamp::at(at(253_402_300_800, 5)).as_str(), "");
    }

    fn both<B: EventBody>(body: &B) -> (String, String) {
        let stamp = Stamp::now();
        let (mut by_hand, mut by_serde) = (Vec::new(), Vec::new());
        write_json(&mut by_hand, &stamp, 7, body, true);
        write_json(&mut by_serde, &stamp, 7, body, false);
        (String::from_utf8(by_hand).expect("utf-8"), String::from_utf8(by_serde).expect("utf-8"))
    }

    /// Pretty output says what the upstream got where the proxy changed it.
    #[test]
    fn pretty_handshake_request_shows_the_rewritten_host_and_target() {
        let headers = vec![
            HeaderOut { name: "Host", value: "client.example".into() },
            HeaderOut { name: "Upgrade", value: "websocket".into() },
        ];
        let request = HandshakeRequest {
            method: "GET",
            target: "/",
            version: "HTTP/1.1",
            headers,
            forwarded_target: Some("/chat"),
            forwarded_host: Some("127.0.0.1:9001"),
            removed_headers: Vec::new(),
        };
        let mut out = Vec::new();
        request.pretty(&mut out, false);
        let text = String::from_utf8(out).expect("utf-8");
        assert!(text.contains("GET / HTTP/1.1 (forwarded as /chat)"), "{text}");
        assert!(text.contains("Host: client.example (forwarded as 127.0.0.1:9001)"), "{text}");
        assert!(text.contains("Upgrade: websocket\n") || text.ends_with("Upgrade: websocket"), "{text}");
    }

    /// The hand-written writer against serde over arbitrary frame and
    /// message events: any preview text (every code point, quotes,
    /// backslashes, control characters), any numbers, any optional field
    /// present or absent. Names, masks and hex previews come from fixed
    /// alphabets, as the inspector produces them.
    #[test]
    fn hand_written_json_equals_serde_for_arbitrary_events() {
        const OPCODES: [&str; 6] = ["continuation", "text", "binary", "close", "ping", "pong"];
        arbtest::arbtest(|u| {
            // Characters that need escaping are likely, any other possible.
            let mut text = String::new();
            for _ in 0..u.int_in_range(0..=40)? {
                text.push(match u.int_in_range(0..=3)? {
                    0 => char::from(u.int_in_range(0..=0x20u8)?),
                    1 => *u.choose(&['"', '\\', '\u{7f}', 'é', '€', '𝄞', '\u{2028}', 'a'])?,
                    _ => u.arbitrary()?,
                });
            }
            let hex = wscli::hex(&u.arbitrary::<Vec<u8>>()?);
            let as_text = u.arbitrary::<bool>()?;
            let (preview, encoding) = if as_text { (text.as_str(), "text") } else { (hex.as_str(), "hex") };
            let mask = format!("{:08x}", u.arbitrary::<u32>()?);
            let opcode = if u.arbitrary::<bool>()? {
                OpcodeOut::Name(OPCODES[u.choose_index(OPCODES.len())?])
            } else {
                OpcodeOut::Number(u.int_in_range(0..=15)?)
            };
            let from = if u.arbitrary::<bool>()? { Side::Client } else { Side::Upstream };
            let masked = u.arbitrary::<bool>()?;
            let frame = FrameOut {
                from,
                fin: u.arbitrary()?,
                rsv1: u.arbitrary()?,
                rsv2: u.arbitrary()?,
                rsv3: u.arbitrary()?,
                opcode,
                masked,
                mask: masked.then_some(mask.as_str()),
                len: u.arbitrary()?,
                header_len: u.arbitrary()?,
                offset: u.arbitrary()?,
                preview,
                preview_encoding: encoding,
                preview_truncated: u.arbitrary()?,
                rtt_us: u.arbitrary()?,
            };
            let (by_hand, by_serde) = both(&frame);
            assert_eq!(by_hand, by_serde);
            let message = MessageOut {
                from,
                kind: if u.arbitrary::<bool>()? { "text" } else { "binary" },
                len: u.arbitrary()?,
                fragments: u.arbitrary()?,
                compressed: u.arbitrary()?,
                decompressed_len: u.arbitrary()?,
                preview,
                preview_encoding: encoding,
                preview_truncated: u.arbitrary()?,
            };
            let (by_hand, by_serde) = both(&message);
            assert_eq!(by_hand, by_serde);
            Ok(())
        })
        .budget_ms(1_000);
    }

    #[test]
    fn frames_and_messages_written_by_hand_are_what_serde_writes() {
        let every_ascii: String = (0u8..128).map(char::from).collect();
        let previews = ["", "000102ff", "κόσμε \"quoted\" \\ \n", every_ascii.as_str()];
        let mut checked = 0;
        for (i, preview) in previews.iter().enumerate() {
            for opcode in [OpcodeOut::Name("binary"), OpcodeOut::Number(11)] {
                for (mask, rtt_us) in [(None, None), (Some("0a0b0c0d"), Some(1234)), (None, Some(0))] {
                    let frame = FrameOut {
                        from: if i % 2 == 0 { Side::Client } else { Side::Upstream },
                        fin: i % 2 == 0,
                        rsv1: i == 1,
                        rsv2: i == 2,
                        rsv3: i == 3,
                        opcode,
                        masked: mask.is_some(),
                        mask,
                        len: [0, 125, 65_536, u64::MAX][i],
                        header_len: [2, 6, 10, 14][i],
                        offset: [0, 1, 1 << 40, u64::MAX][i],
                        preview,
                        preview_encoding: if i == 1 { "hex" } else { "text" },
                        preview_truncated: i == 2,
                        rtt_us,
                    };
                    let (hand, serde) = both(&frame);
                    assert_eq!(hand, serde);
                    checked += 1;
                }
            }
            for decompressed_len in [None, Some(0), Some(u64::MAX)] {
                let message = MessageOut {
                    from: Side::Upstream,
                    kind: "text",
                    len: i as u64 * 1000,
                    fragments: [1, 2, 1000, u32::MAX][i],
                    compressed: decompressed_len.is_some(),
                    decompressed_len,
                    preview,
                    preview_encoding: "text",
                    preview_truncated: i % 2 == 1,
                };
                let (hand, serde) = both(&message);
                assert_eq!(hand, serde);
                checked += 1;
            }
        }
        assert_eq!(checked, 4 * (2 * 3 + 3));
    }
}
