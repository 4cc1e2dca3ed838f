//! The JSON Lines output, as owned types to read it back (`--format json`).
//!
//! Every line is one object: `ts` (RFC 3339, UTC, microseconds), `conn`
//! (connection id, from 1), `event` (its kind), and the kind's fields. The
//! field names are a public interface: fields may be added, none renamed.
//! The README documents each with an example.

use serde::{Deserialize, Serialize};

/// One line of output.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
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
#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Side {
    /// The client.
    Client,
    /// The upstream server.
    Upstream,
}

/// A header line.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
pub struct Header {
    /// Name, as sent.
    pub name: String,
    /// Value (lossy UTF-8).
    pub value: String,
}

/// An opcode: a name, or a number for reserved opcodes.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(untagged)]
pub enum Opcode {
    /// `continuation`, `text`, `binary`, `close`, `ping`, `pong`.
    Name(String),
    /// A reserved opcode.
    Number(u8),
}

impl Opcode {
    /// The opcode's number (RFC 6455 §5.2), `None` for a name that is none
    /// of the six.
    pub fn number(&self) -> Option<u8> {
        match self {
            Opcode::Number(n) => Some(*n),
            Opcode::Name(n) => match n.as_str() {
                "continuation" => Some(0),
                "text" => Some(1),
                "binary" => Some(2),
                "close" => Some(8),
                "ping" => Some(9),
                "pong" => Some(10),
                _ => None,
            },
        }
    }
}

/// Bytes, frames or pings per side.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq)]
pub struct PerSide {
    /// Sent by the client.
    pub client: u64,
    /// Sent by the upstream.
    pub upstream: u64,
}

/// The event kinds and their fields.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
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
        #[serde(default, skip_serializing_if = "Option::is_none")]
        forwarded_target: Option<String>,
        /// The Host sent upstream, if the proxy changed it.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        forwarded_host: Option<String>,
        /// Header lines not forwarded (`--no-compression`).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
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
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
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
        #[serde(default, skip_serializing_if = "Option::is_none")]
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
        #[serde(default, skip_serializing_if = "Option::is_none")]
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
        /// Reason (invalid UTF-8 replaced by U+FFFD).
        reason: String,
        /// The reason was not UTF-8; absent when it was.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        reason_invalid_utf8: bool,
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
        /// In bytes a `--fault` rule made or changed; absent when not.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        injected: bool,
    },
    /// A `--fault` rule acted on a frame.
    Fault {
        /// The frame's sender.
        from: Side,
        /// The rule, as given.
        rule: String,
        /// The action (`delay`, `drop`, `duplicate`, `fragment`, `corrupt`,
        /// `close`, `reset`, `truncate`, `throttle`, `swallow`).
        action: String,
        /// The frame's opcode.
        opcode: Opcode,
        /// The sender's data message number (from 1), for a data frame.
        msg: Option<u64>,
        /// The frame's payload length.
        len: u64,
        /// Offset of the frame in the sender's stream.
        offset: u64,
        /// What was done.
        detail: String,
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
        /// `close_handshake`, `eof`, `reset`, `timeout`, `error`, `enforced`,
        /// `fault` (a `--fault` rule ended it).
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
        /// Request body length (content bytes).
        #[serde(default)]
        request_body_len: u64,
        /// Response body length (content bytes), if a response came.
        #[serde(default)]
        response_body_len: Option<u64>,
        /// Target sent upstream, when changed.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        forwarded_target: Option<String>,
        /// `Host` sent upstream, when changed.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        forwarded_host: Option<String>,
        /// The request's HTTP version (only in `--har`'s own sessions).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        version: Option<String>,
        /// The request's header lines (likewise).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        request_headers: Option<Vec<Header>>,
        /// The response's reason phrase (likewise).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
        /// The response's HTTP version (likewise).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        response_version: Option<String>,
        /// The response's header lines (likewise).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        response_headers: Option<Vec<Header>>,
    },
    /// A 1xx response other than 101, before the final one.
    InterimResponse {
        /// Status code.
        status: u16,
        /// Reason phrase.
        reason: String,
        /// HTTP version.
        version: String,
        /// Header lines in order.
        headers: Vec<Header>,
    },
    /// The rest of the connection is relayed without being decoded.
    Uninspected {
        /// Whose bytes could not be followed.
        from: Side,
        /// Why.
        reason: String,
    },
    /// Bytes a capture does not have (`wsproxy read`); that side is not
    /// decoded from here on.
    Gap {
        /// Whose bytes are missing.
        from: Side,
        /// Where they start in that side's stream.
        offset: u64,
        /// How many.
        len: u64,
    },
    /// A capture that begins inside a WebSocket connection (`wsproxy read`
    /// with `--port`/`--server`): bytes at the start of a side's stream
    /// skipped to its first frame boundary.
    Resync {
        /// Whose stream.
        from: Side,
        /// Bytes not decoded.
        skipped: u64,
        /// Whether a boundary was found and decoding resumed.
        resumed: bool,
    },
    /// An error that is not a protocol violation.
    Error {
        /// What went wrong.
        message: String,
    },
}

/// Parses one line and checks it strictly: read back into the typed
/// [`Record`] and written out again, it must be the same JSON value, so a
/// line with an unknown field, a missing field or a field of another type
/// fails. Tests read the proxy's output with this; readers of the public
/// format should use plain `serde_json::from_str::<Record>` (which accepts
/// fields added later).
pub fn parse_strict(line: &str) -> Result<Record, String> {
    let record: Record = serde_json::from_str(line).map_err(|e| format!("not a valid event line ({e}): {line}"))?;
    let as_written: serde_json::Value = serde_json::from_str(line).map_err(|e| e.to_string())?;
    let read_back = serde_json::to_value(&record).map_err(|e| e.to_string())?;
    if as_written != read_back {
        return Err(format!("fields differ from the schema:\n  line:   {as_written}\n  schema: {read_back}"));
    }
    Ok(record)
}

#[cfg(test)]
mod tests {
    use super::*;

    const CLOSE: &str = r#"{"ts":"2026-11-30T13:00:00.000001Z","conn":3,"event":"close","from":"upstream","code":1000,"code_name":"normal closure","reason":"bye","initiated":true,"handshake_complete":false,"offset":120}"#;

    #[test]
    fn strict_parsing_rejects_unknown_missing_and_mistyped_fields() {
        assert!(parse_strict(CLOSE).is_ok());
        // An optional field the producer writes only when true.
        assert!(parse_strict(&CLOSE.replace(r#""offset":120"#, r#""offset":120,"reason_invalid_utf8":true"#)).is_ok());
        for (what, line) in [
            ("unknown field", CLOSE.replace(r#""offset":120"#, r#""offset":120,"ofset":1"#)),
            ("missing field", CLOSE.replace(r#","offset":120"#, "")),
            ("wrong type", CLOSE.replace(r#""code":1000"#, r#""code":"1000""#)),
            ("default written out", CLOSE.replace(r#""offset":120"#, r#""offset":120,"reason_invalid_utf8":false"#)),
        ] {
            assert!(parse_strict(&line).is_err(), "{what}: {line}");
        }
        // The lenient reader still takes a field added later.
        let later = CLOSE.replace(r#""offset":120"#, r#""offset":120,"added_later":1"#);
        assert!(serde_json::from_str::<Record>(&later).is_ok());
    }

    const VIOLATION: &str = r#"{"ts":"2026-11-30T13:00:00.000001Z","conn":1,"event":"violation","from":"upstream","rule":"reserved_bit_set","rfc":"RFC 6455 §5.2","offset":177,"message":"reserved bit set","enforced":false}"#;
    const FAULT: &str = r#"{"ts":"2026-11-30T13:00:00.000001Z","conn":1,"event":"fault","from":"upstream","rule":"upstream,text,msg=2:corrupt=rsv2","action":"corrupt","opcode":"text","msg":2,"len":9,"offset":177,"detail":"RSV2 set"}"#;

    /// `fault` and `violation`'s `injected` (added by `--fault`): the
    /// event reads strictly, and `injected` is written only when true, so
    /// the lines of a run without rules are as before.
    #[test]
    fn fault_events_and_injected_violations_read_strictly() {
        assert!(parse_strict(FAULT).is_ok());
        assert!(parse_strict(&FAULT.replace(r#""msg":2"#, r#""msg":null"#)).is_ok(), "a control frame has none");
        assert!(parse_strict(&FAULT.replace(r#","detail":"RSV2 set""#, "")).is_err());
        assert!(parse_strict(VIOLATION).is_ok());
        let injected = VIOLATION.replace(r#""enforced":false"#, r#""enforced":false,"injected":true"#);
        assert!(matches!(parse_strict(&injected).map(|r| r.event), Ok(Event::Violation { injected: true, .. })));
        let written_out = VIOLATION.replace(r#""enforced":false"#, r#""enforced":false,"injected":false"#);
        assert!(parse_strict(&written_out).is_err());
    }
}
