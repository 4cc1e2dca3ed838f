//! Close frames: status codes (RFC 6455 §7.4) and the close payload (§5.5.1).

use core::fmt;

use crate::error::Error;

/// A close status code (§7.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CloseCode(pub u16);

impl CloseCode {
    /// 1000: the purpose for which the connection was established is fulfilled.
    pub const NORMAL: CloseCode = CloseCode(1000);
    /// 1001: an endpoint is going away (server shutdown, page navigated away).
    pub const GOING_AWAY: CloseCode = CloseCode(1001);
    /// 1002: the peer broke the protocol.
    pub const PROTOCOL_ERROR: CloseCode = CloseCode(1002);
    /// 1003: a type of data the endpoint cannot accept.
    pub const UNSUPPORTED_DATA: CloseCode = CloseCode(1003);
    /// 1005: no status code was present (never sent on the wire).
    pub const NO_STATUS: CloseCode = CloseCode(1005);
    /// 1006: the connection closed without a close frame (never sent).
    pub const ABNORMAL: CloseCode = CloseCode(1006);
    /// 1007: data inconsistent with the message type (invalid UTF-8 text).
    pub const INVALID_PAYLOAD: CloseCode = CloseCode(1007);
    /// 1008: a message that violates the endpoint's policy.
    pub const POLICY_VIOLATION: CloseCode = CloseCode(1008);
    /// 1009: a message too big to process.
    pub const MESSAGE_TOO_BIG: CloseCode = CloseCode(1009);
    /// 1010: the client expected the server to negotiate an extension.
    pub const MANDATORY_EXTENSION: CloseCode = CloseCode(1010);
    /// 1011: the server met an unexpected condition.
    pub const INTERNAL_ERROR: CloseCode = CloseCode(1011);
    /// 1015: the TLS handshake failed (never sent).
    pub const TLS_HANDSHAKE: CloseCode = CloseCode(1015);

    /// Whether an endpoint may put this code in a close frame.
    ///
    /// §7.4.1 defines 1000–1003 and 1007–1011; 1012–1014 are registered with
    /// IANA (§11.7) and sent by common servers; 3000–4999 are for libraries,
    /// frameworks and applications (§7.4.2). 1004 is reserved, and 1005,
    /// 1006 and 1015 "MUST NOT be set as a status code in a Close control
    /// frame by an endpoint". Everything else below 3000 is unassigned.
    pub fn is_sendable(self) -> bool {
        matches!(self.0, 1000..=1003 | 1007..=1014 | 3000..=4999)
    }

    /// The name of a code defined by RFC 6455 or registered with IANA.
    pub fn name(self) -> Option<&'static str> {
        Some(match self.0 {
            1000 => "normal closure",
            1001 => "going away",
            1002 => "protocol error",
            1003 => "unsupported data",
            1004 => "reserved",
            1005 => "no status received",
            1006 => "abnormal closure",
            1007 => "invalid frame payload data",
            1008 => "policy violation",
            1009 => "message too big",
            1010 => "mandatory extension",
            1011 => "internal error",
            1012 => "service restart",
            1013 => "try again later",
            1014 => "bad gateway",
            1015 => "TLS handshake",
            3000..=3999 => "registered (library or framework)",
            4000..=4999 => "private use",
            _ => return None,
        })
    }
}

impl fmt::Display for CloseCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(name) => write!(f, "{} ({name})", self.0),
            None => write!(f, "{}", self.0),
        }
    }
}

/// A parsed close payload: a status code and a UTF-8 reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CloseFrame<'a> {
    /// The status code.
    pub code: CloseCode,
    /// The reason, possibly empty.
    pub reason: &'a str,
}

/// Parses and checks a close frame's (unmasked) payload.
///
/// §5.5.1: "If there is a body, the first two bytes of the body MUST be a
/// 2-byte unsigned integer (in network byte order) representing a status
/// code", followed by a reason that is UTF-8. An empty payload is allowed
/// and gives `Ok(None)`.
pub fn parse_close_payload(payload: &[u8]) -> Result<Option<CloseFrame<'_>>, Error> {
    match payload {
        [] => Ok(None),
        [_] => Err(Error::CloseLengthOne),
        [hi, lo, reason @ ..] => {
            let code = CloseCode(u16::from_be_bytes([*hi, *lo]));
            if !code.is_sendable() {
                return Err(Error::InvalidCloseCode);
            }
            let reason = core::str::from_utf8(reason).map_err(|_| Error::InvalidUtf8CloseReason)?;
            Ok(Some(CloseFrame { code, reason }))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sendable_codes_match_autobahn_7_7_and_7_9() {
        // Autobahn 7.7.x: codes an endpoint must accept.
        for code in [1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 3000, 3999, 4000, 4999] {
            assert!(CloseCode(code).is_sendable(), "{code}");
        }
        // Autobahn 7.9.x: codes an endpoint must reject.
        for code in [0, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535] {
            assert!(!CloseCode(code).is_sendable(), "{code}");
        }
    }

    #[test]
    fn payloads() {
        assert_eq!(parse_close_payload(b""), Ok(None));
        assert_eq!(parse_close_payload(b"\x03"), Err(Error::CloseLengthOne));
        assert_eq!(
            parse_close_payload(b"\x03\xe8bye"),
            Ok(Some(CloseFrame { code: CloseCode::NORMAL, reason: "bye" }))
        );
        assert_eq!(parse_close_payload(b"\x03\xed"), Err(Error::InvalidCloseCode));
        assert_eq!(parse_close_payload(b"\x03\xe8\xff"), Err(Error::InvalidUtf8CloseReason));
        assert_eq!(CloseCode(1001).to_string(), "1001 (going away)");
    }
}
