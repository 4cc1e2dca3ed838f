//! The JSON Lines output, as owned types to read it back (`--format json`).
//!
//! Every line is one object: `ts` (RFC 3339, UTC, microseconds), `conn`
//! (connection id, from 1), `event` (its kind), and the kind's fields. The
//! field names are a public interface: fields may be added, none renamed.
//! The README documents each with an example.

use serde::Deserialize;

/// One line of output.
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct Record {
    /// When the proxy saw it.
    pub ts: String,
    /// Connection id.
    pub conn: u64,
    /// The event.
    #[serde(flatten)]
    pub event: Event,
}

/// Which endpoint sent something.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Side {
    /// The client.
    Client,
    /// The upstream server.
    Upstream,
}

/// A header line.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct Header {
    /// Name, as sent.
    pub name: String,
    /// Value (lossy UTF-8).
    pub value: String,
}

/// An opcode: a name, or a number for reserved opcodes.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(untagged)]
pub enum Opcode {
    /// `continuation`, `text`, `binary`, `close`, `ping`, `pong`.
    Name(String),
    /// A reserved opcode.
    Number(u8),
}

/// Bytes, frames or pings per side.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
pub struct PerSide {
    /// Sent by the client.
    pub client: u64,
    /// Sent by the upstream.
    pub upstream: u64,
}

/// The event kinds and their fields.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    /// A client connected.
    Open {
        /// Client address.
        client: String,
        /// Upstream address.
        upstream: String,
    },
    /// The client's opening request.
    HandshakeRequest {
        /// Method.
        method: String,
        /// Request target.
        target: String,
        /// `HTTP/1.1` or `HTTP/1.0`.
        version: String,
        /// Header lines in order.
        headers: Vec<Header>,
        /// The target sent upstream, if the proxy changed it.
        #[serde(default)]
        forwarded_target: Option<String>,
        /// The Host sent upstream, if the proxy changed it.
        #[serde(default)]
        forwarded_host: Option<String>,
        /// Header lines not forwarded (`--no-compression`).
        #[serde(default)]
        removed_headers: Vec<String>,
    },
    /// The upstream's answer.
    HandshakeResponse {
        /// Status code.
        status: u16,
        /// Reason phrase.
        reason: String,
        /// HTTP version.
        version: String,
        /// Header lines in order.
        headers: Vec<Header>,
        /// Negotiated subprotocol.
        protocol: Option<String>,
        /// Negotiated extensions.
        extensions: Vec<String>,
        /// Whether the connection switched to WebSocket.
        upgraded: bool,
        /// Negotiated extensions the proxy cannot decode (other than
        /// permessage-deflate): their frames are shown raw, and the
        /// reserved bits and UTF-8 of text frames are not checked.
        #[serde(default)]
        undecoded_extensions: Vec<String>,
    },
    /// One frame.
    Frame {
        /// Sender.
        from: Side,
        /// FIN bit.
        fin: bool,
        /// RSV1.
        rsv1: bool,
        /// RSV2.
        rsv2: bool,
        /// RSV3.
        rsv3: bool,
        /// Opcode.
        opcode: Opcode,
        /// MASK bit.
        masked: bool,
        /// Masking key, 8 hex digits.
        mask: Option<String>,
        /// Payload length.
        len: u64,
        /// Header length.
        header_len: u8,
        /// Offset of the frame's first byte in the sender's stream.
        offset: u64,
        /// Payload preview.
        preview: String,
        /// `text` or `hex`.
        preview_encoding: String,
        /// Whether the preview is cut.
        preview_truncated: bool,
        /// Round trip of a pong that answers a ping, in µs.
        #[serde(default)]
        rtt_us: Option<u64>,
    },
    /// A complete data message.
    Message {
        /// Sender.
        from: Side,
        /// `text` or `binary`.
        kind: String,
        /// Payload length (sum of its frames).
        len: u64,
        /// Number of frames.
        fragments: u32,
        /// RSV1 on its first frame.
        compressed: bool,
        /// Length after inflating a compressed message (absent when not
        /// compressed or when it could not be inflated).
        #[serde(default)]
        decompressed_len: Option<u64>,
        /// Payload preview (of the inflated data for a compressed message).
        preview: String,
        /// `text` or `hex`.
        preview_encoding: String,
        /// Whether the preview is cut.
        preview_truncated: bool,
    },
    /// A close frame.
    Close {
        /// Sender.
        from: Side,
        /// Close code, if the frame had one.
        code: Option<u16>,
        /// The code's name.
        code_name: Option<String>,
        /// Reason.
        reason: String,
        /// This side closed first.
        initiated: bool,
        /// Both sides have sent a close.
        handshake_complete: bool,
        /// Offset of the close frame in the sender's stream.
        offset: u64,
    },
    /// A broken rule.
    Violation {
        /// Who broke it.
        from: Side,
        /// Stable rule name (`reserved_opcode`, `invalid_utf8`, …).
        rule: String,
        /// RFC section.
        rfc: String,
        /// Byte offset in the sender's stream.
        offset: u64,
        /// Human-readable description.
        message: String,
        /// Whether `--enforce` ended the connection for it.
        enforced: bool,
    },
    /// The connection ended.
    End {
        /// Bytes per sender.
        bytes: PerSide,
        /// Frames per sender.
        frames: PerSide,
        /// Unanswered pings per sender.
        unanswered_pings: PerSide,
        /// Duration in µs.
        duration_us: u64,
        /// `close_handshake`, `eof`, `reset`, `timeout`, `error`, `enforced`.
        reason: String,
    },
    /// A plain HTTP request, tunnelled.
    Http {
        /// Method.
        method: String,
        /// Target.
        target: String,
        /// Response status, if one came.
        status: Option<u16>,
    },
    /// An error that is not a protocol violation.
    Error {
        /// What went wrong.
        message: String,
    },
}
