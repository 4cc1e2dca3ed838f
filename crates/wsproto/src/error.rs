//! The one error type of the crate: every rule this crate enforces is one
//! variant, with its RFC section, its stable name, and what an endpoint must
//! answer (an HTTP status for the handshake, a close code for frames).

use core::fmt;

use crate::close::CloseCode;

/// A rule of RFC 6455 (or of the HTTP/1.1 message syntax it rides on,
/// RFC 9112) that the input breaks.
///
/// Incomplete input is never an error: see [`crate::Status::Partial`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Error {
    // ---- HTTP/1.1 message syntax (RFC 9112) ----
    /// The header block is longer than [`crate::handshake::Limits::max_head_len`].
    HeaderBlockTooLarge,
    /// More header lines than [`crate::handshake::Limits::max_headers`].
    TooManyHeaders,
    /// A line ends with LF alone. RFC 9112 §2.2 lets a recipient accept it;
    /// we reject it, since a peer that disagrees about line ends can be
    /// desynchronised (request smuggling), and every WebSocket client sends CRLF.
    BareLf,
    /// A header line starts with whitespace (obsolete line folding). RFC 9112
    /// §5.2: a server MUST reject it or replace it; we reject it.
    ObsFold,
    /// An invalid byte in the method or request target.
    InvalidToken,
    /// An invalid byte in a header name.
    InvalidHeaderName,
    /// An invalid byte in a header value: control characters other than
    /// HTAB, CR and LF are never allowed (RFC 9110 §5.5).
    InvalidHeaderValue,
    /// An invalid byte where a line ending was expected.
    InvalidNewLine,
    /// An invalid HTTP version (only HTTP/1.x can be parsed).
    InvalidVersion,
    /// An invalid response status code.
    InvalidStatus,

    // ---- Opening handshake, client side (RFC 6455 §4.1, §4.2.1) ----
    /// The opening handshake must be a GET request.
    MethodNotGet,
    /// The upgrade needs HTTP/1.1: HTTP/1.0 has no `Upgrade` mechanism and
    /// closes the connection after one response.
    HttpVersionTooOld,
    /// RFC 6455 §4.1: the request target is neither origin-form (`/chat`)
    /// nor an absolute `http`, `https`, `ws` or `wss` URI (§3: the
    /// "/resource name/" of the WebSocket URI; RFC 9112 §3.2).
    InvalidRequestTarget,
    /// No `Host` header.
    MissingHost,
    /// More than one `Host` header line (RFC 9112 §3.2: answer 400).
    DuplicateHost,
    /// The `Upgrade` header does not list `websocket`.
    MissingUpgradeWebsocket,
    /// The `Connection` header does not list `upgrade`.
    MissingConnectionUpgrade,
    /// No `Sec-WebSocket-Key` header.
    MissingKey,
    /// `Sec-WebSocket-Key` appears more than once.
    DuplicateKey,
    /// `Sec-WebSocket-Key` is not the base64 encoding of 16 bytes.
    InvalidKey,
    /// No `Sec-WebSocket-Version` header.
    MissingVersion,
    /// `Sec-WebSocket-Version` is not 13: the server answers 426 with
    /// `Sec-WebSocket-Version: 13`.
    UnsupportedVersion,
    /// `Sec-WebSocket-Version` appears more than once in a request.
    DuplicateVersion,
    /// `Sec-WebSocket-Extensions` does not follow the grammar of §9.1.
    InvalidExtensionHeader,
    /// `Sec-WebSocket-Protocol` is not a list of tokens.
    InvalidProtocolHeader,
    /// RFC 6455 §4.1 item 10: the subprotocols of a request "MUST all be
    /// unique strings"; one is listed twice.
    DuplicateProtocol,

    // ---- Opening handshake, server side (RFC 6455 §4.1, §4.2.2) ----
    /// The response status is not 101 Switching Protocols.
    NotSwitchingProtocols,
    /// RFC 6455 §4.1 (client's checks, item 2): the response's `Upgrade`
    /// "contains a value that is not an ASCII case-insensitive match for
    /// the value \"websocket\"" (a list such as `websocket, h2c`).
    UpgradeNotWebsocket,
    /// No `Sec-WebSocket-Accept` header in a 101 response.
    MissingAccept,
    /// `Sec-WebSocket-Accept` appears more than once.
    DuplicateAccept,
    /// `Sec-WebSocket-Accept` is not base64(SHA-1(key + GUID)).
    WrongAccept,
    /// The server selected a subprotocol the client did not offer.
    UnofferedProtocol,
    /// The server selected an extension the client did not offer.
    UnofferedExtension,
    /// `Sec-WebSocket-Protocol` or `Sec-WebSocket-Extensions` appears more
    /// than once in a response.
    DuplicateResponseHeader,

    // ---- Framing (RFC 6455 §5, §7, §8) ----
    /// An opcode reserved for future use (3–7, 11–15).
    ReservedOpcode,
    /// RSV1, RSV2 or RSV3 set without a negotiated extension that defines it.
    ReservedBitSet,
    /// A control frame with a payload longer than 125 bytes.
    ControlFrameTooLong,
    /// A control frame without FIN.
    ControlFrameFragmented,
    /// A payload length not encoded in the minimal number of bytes.
    NonMinimalLength,
    /// The most significant bit of a 64-bit payload length is set.
    LengthMsbSet,
    /// A frame from a client that is not masked.
    UnmaskedClientFrame,
    /// A frame from a server that is masked.
    MaskedServerFrame,
    /// A continuation frame with no fragmented message started.
    UnexpectedContinuation,
    /// A text or binary frame while a fragmented message is unfinished.
    ExpectedContinuation,
    /// A close frame with a one-byte payload.
    CloseLengthOne,
    /// RFC 7692 §6.1: "An endpoint MUST NOT set the \"Per-Message
    /// Compressed\" bit of control frames and non-first fragments of a data
    /// message": RSV1 on a control or continuation frame under
    /// permessage-deflate.
    MisplacedCompressedBit,
    /// A close code that may not be sent on the wire (§7.4).
    InvalidCloseCode,
    /// A close reason that is not valid UTF-8.
    InvalidUtf8CloseReason,
    /// A text message that is not valid UTF-8.
    InvalidUtf8,
    /// A data frame after the sender's close frame.
    FrameAfterClose,
    /// A frame longer than the configured maximum.
    FrameTooLarge,
    /// A message longer than the configured maximum.
    MessageTooLarge,

    // ---- permessage-deflate (RFC 7692) ----
    /// The server accepted permessage-deflate with parameters §7.1 does not
    /// allow (an unknown or repeated parameter, window bits outside 8–15).
    InvalidDeflateParams,
    /// A client's permessage-deflate offer breaks §7.1: a parameter not
    /// defined for an offer, an invalid value, or a parameter given twice.
    /// "A server MUST decline an extension negotiation offer" like this
    /// (§7.1); it answers without that offer, so this maps to no HTTP status.
    InvalidDeflateOffer,
    /// RFC 7692 §7.1.2.2: "If a received extension negotiation offer
    /// doesn't have the \"client_max_window_bits\" extension parameter, the
    /// corresponding extension negotiation response to the offer MUST NOT
    /// include the \"client_max_window_bits\" extension parameter."
    UnofferedClientMaxWindowBits,
    /// RFC 7692 §7.1.2.1, §7.1.2.2: the response's `server_max_window_bits`
    /// or `client_max_window_bits` is larger than the value offered (the
    /// server answers "with the same or smaller value as the offer").
    WindowBitsAboveOffer,
    /// RFC 7692 §7.1.1.1, §7.1.2.1: the offer asked for
    /// `server_no_context_takeover` or `server_max_window_bits`, and the
    /// response does not include it: a server accepts such an offer only
    /// "by including" the parameter, so the response accepts no offer.
    OfferedParamMissing,
    /// A compressed message is not a valid DEFLATE stream.
    InflateFailed,
    /// A compressed message inflates past the configured cap (a
    /// decompression bomb).
    InflatedTooLarge,
    /// RFC 7692 §7.1.2.1, §7.1.2.2: a compressed message refers back
    /// further than the window its sender agreed to (`server_max_window_bits`
    /// or `client_max_window_bits`), so a receiver that keeps only that
    /// window cannot inflate it.
    BeyondAgreedWindow,

    // ---- WebSocket URIs (RFC 6455 §3) ----
    /// The URI does not start with `ws://` or `wss://`.
    UrlScheme,
    /// The URI's host is missing or malformed (user information included).
    UrlHost,
    /// The URI's port is not a number from 1 to 65535.
    UrlPort,
    /// The URI has a fragment, which §3 forbids.
    UrlFragment,
    /// The URI's path or query holds a character RFC 3986 §3.3/§3.4 does
    /// not allow (a space, CR, LF, a control character, non-ASCII): it
    /// would reach the request line as it is.
    UrlPath,
}

impl Error {
    /// A stable snake_case name for the rule, for logs and JSON output.
    pub fn rule(&self) -> &'static str {
        use Error::*;
        match self {
            HeaderBlockTooLarge => "header_block_too_large",
            TooManyHeaders => "too_many_headers",
            BareLf => "bare_lf",
            ObsFold => "obs_fold",
            InvalidToken => "invalid_token",
            InvalidHeaderName => "invalid_header_name",
            InvalidHeaderValue => "invalid_header_value",
            InvalidNewLine => "invalid_new_line",
            InvalidVersion => "invalid_version",
            InvalidStatus => "invalid_status",
            MethodNotGet => "method_not_get",
            HttpVersionTooOld => "http_version_too_old",
            InvalidRequestTarget => "invalid_request_target",
            MissingHost => "missing_host",
            DuplicateHost => "duplicate_host",
            MissingUpgradeWebsocket => "missing_upgrade_websocket",
            MissingConnectionUpgrade => "missing_connection_upgrade",
            MissingKey => "missing_key",
            DuplicateKey => "duplicate_key",
            InvalidKey => "invalid_key",
            MissingVersion => "missing_version",
            UnsupportedVersion => "unsupported_version",
            DuplicateVersion => "duplicate_version",
            InvalidExtensionHeader => "invalid_extension_header",
            InvalidProtocolHeader => "invalid_protocol_header",
            DuplicateProtocol => "duplicate_protocol",
            NotSwitchingProtocols => "not_switching_protocols",
            UpgradeNotWebsocket => "upgrade_not_websocket",
            MissingAccept => "missing_accept",
            DuplicateAccept => "duplicate_accept",
            WrongAccept => "wrong_accept",
            UnofferedProtocol => "unoffered_protocol",
            UnofferedExtension => "unoffered_extension",
            DuplicateResponseHeader => "duplicate_response_header",
            ReservedOpcode => "reserved_opcode",
            ReservedBitSet => "reserved_bit_set",
            ControlFrameTooLong => "control_frame_too_long",
            ControlFrameFragmented => "control_frame_fragmented",
            NonMinimalLength => "non_minimal_length",
            LengthMsbSet => "length_msb_set",
            UnmaskedClientFrame => "unmasked_client_frame",
            MaskedServerFrame => "masked_server_frame",
            UnexpectedContinuation => "unexpected_continuation",
            ExpectedContinuation => "expected_continuation",
            CloseLengthOne => "close_length_one",
            MisplacedCompressedBit => "misplaced_compressed_bit",
            InvalidCloseCode => "invalid_close_code",
            InvalidUtf8CloseReason => "invalid_utf8_close_reason",
            InvalidUtf8 => "invalid_utf8",
            FrameAfterClose => "frame_after_close",
            FrameTooLarge => "frame_too_large",
            MessageTooLarge => "message_too_large",
            InvalidDeflateParams => "invalid_deflate_params",
            InvalidDeflateOffer => "invalid_deflate_offer",
            UnofferedClientMaxWindowBits => "unoffered_client_max_window_bits",
            WindowBitsAboveOffer => "window_bits_above_offer",
            OfferedParamMissing => "offered_param_missing",
            InflateFailed => "inflate_failed",
            InflatedTooLarge => "inflated_too_large",
            BeyondAgreedWindow => "beyond_agreed_window",
            UrlScheme => "url_scheme",
            UrlHost => "url_host",
            UrlPort => "url_port",
            UrlFragment => "url_fragment",
            UrlPath => "url_path",
        }
    }

    /// The section of the RFC that states the rule.
    pub fn rfc(&self) -> &'static str {
        use Error::*;
        match self {
            HeaderBlockTooLarge | TooManyHeaders => "RFC 6585 §5",
            BareLf => "RFC 9112 §2.2",
            ObsFold => "RFC 9112 §5.2",
            InvalidToken | InvalidVersion => "RFC 9112 §3",
            InvalidHeaderName | InvalidHeaderValue => "RFC 9112 §5",
            InvalidNewLine => "RFC 9112 §2.1",
            InvalidStatus => "RFC 9112 §4",
            MethodNotGet | HttpVersionTooOld | InvalidRequestTarget | DuplicateProtocol => "RFC 6455 §4.1",
            MissingHost | DuplicateHost => "RFC 9112 §3.2",
            MissingUpgradeWebsocket | MissingConnectionUpgrade => "RFC 6455 §4.2.1",
            MissingKey | DuplicateKey | InvalidKey => "RFC 6455 §4.2.1",
            MissingVersion | DuplicateVersion => "RFC 6455 §4.2.1",
            UnsupportedVersion => "RFC 6455 §4.4",
            InvalidExtensionHeader => "RFC 6455 §9.1",
            InvalidProtocolHeader => "RFC 6455 §4.1",
            NotSwitchingProtocols | UpgradeNotWebsocket | MissingAccept | WrongAccept => "RFC 6455 §4.1",
            UnofferedProtocol | UnofferedExtension => "RFC 6455 §4.1",
            DuplicateAccept | DuplicateResponseHeader => "RFC 6455 §11.3",
            ReservedOpcode | ReservedBitSet | NonMinimalLength | LengthMsbSet => "RFC 6455 §5.2",
            UnmaskedClientFrame | MaskedServerFrame => "RFC 6455 §5.1",
            ControlFrameTooLong | ControlFrameFragmented => "RFC 6455 §5.5",
            UnexpectedContinuation | ExpectedContinuation => "RFC 6455 §5.4",
            CloseLengthOne | FrameAfterClose => "RFC 6455 §5.5.1",
            InvalidCloseCode => "RFC 6455 §7.4",
            InvalidUtf8CloseReason | InvalidUtf8 => "RFC 6455 §8.1",
            FrameTooLarge | MessageTooLarge => "RFC 6455 §7.4.1",
            MisplacedCompressedBit => "RFC 7692 §6.1",
            InvalidDeflateParams | InvalidDeflateOffer => "RFC 7692 §7.1",
            UnofferedClientMaxWindowBits => "RFC 7692 §7.1.2.2",
            WindowBitsAboveOffer => "RFC 7692 §7.1.2",
            OfferedParamMissing => "RFC 7692 §7.1.1.1",
            InflateFailed => "RFC 7692 §7.2.2",
            InflatedTooLarge => "RFC 6455 §10.4",
            BeyondAgreedWindow => "RFC 7692 §7.1.2",
            UrlScheme | UrlHost | UrlPort | UrlFragment | UrlPath => "RFC 6455 §3",
        }
    }

    /// What kind of rule this is, and what an endpoint answers it with.
    ///
    /// One exhaustive match: a new variant does not compile until it is
    /// classified here, so it can never fall silently into a default.
    fn class(&self) -> Class {
        use Error::*;
        match self {
            UnsupportedVersion => Class::Request(426),
            HeaderBlockTooLarge | TooManyHeaders => Class::Request(431),
            BareLf
            | ObsFold
            | InvalidToken
            | InvalidHeaderName
            | InvalidHeaderValue
            | InvalidNewLine
            | InvalidVersion
            | MethodNotGet
            | HttpVersionTooOld
            | InvalidRequestTarget
            | MissingHost
            | DuplicateHost
            | MissingUpgradeWebsocket
            | MissingConnectionUpgrade
            | MissingKey
            | DuplicateKey
            | InvalidKey
            | MissingVersion
            | DuplicateVersion
            | InvalidExtensionHeader
            | InvalidProtocolHeader
            | DuplicateProtocol => Class::Request(400),
            InvalidStatus
            | NotSwitchingProtocols
            | UpgradeNotWebsocket
            | MissingAccept
            | DuplicateAccept
            | WrongAccept
            | UnofferedProtocol
            | UnofferedExtension
            | DuplicateResponseHeader
            | InvalidDeflateParams
            | UnofferedClientMaxWindowBits
            | WindowBitsAboveOffer
            | OfferedParamMissing => Class::Response,
            InvalidDeflateOffer => Class::Offer,
            InvalidUtf8 | InvalidUtf8CloseReason => Class::Frame(CloseCode::INVALID_PAYLOAD),
            FrameTooLarge | MessageTooLarge | InflatedTooLarge => Class::Frame(CloseCode::MESSAGE_TOO_BIG),
            InflateFailed
            | BeyondAgreedWindow
            | ReservedOpcode
            | ReservedBitSet
            | MisplacedCompressedBit
            | ControlFrameTooLong
            | ControlFrameFragmented
            | NonMinimalLength
            | LengthMsbSet
            | UnmaskedClientFrame
            | MaskedServerFrame
            | UnexpectedContinuation
            | ExpectedContinuation
            | CloseLengthOne
            | InvalidCloseCode
            | FrameAfterClose => Class::Frame(CloseCode::PROTOCOL_ERROR),
            UrlScheme | UrlHost | UrlPort | UrlFragment | UrlPath => Class::Url,
        }
    }

    /// Whether this is a rule of the opening handshake (as opposed to
    /// framing or URIs).
    pub fn is_handshake(&self) -> bool {
        matches!(self.class(), Class::Request(_) | Class::Response | Class::Offer)
    }

    /// The HTTP status a server answers a request that breaks this rule
    /// with: 426 for a wrong version (RFC 6455 §4.4), 431 for an oversized
    /// header block (RFC 6585 §5), 400 for the rest. `None` for rules of the
    /// response, of an extension offer (a server declines the offer and
    /// goes on, RFC 7692 §7.1), of framing and of URIs.
    pub fn http_status(&self) -> Option<u16> {
        match self.class() {
            Class::Request(status) => Some(status),
            Class::Response | Class::Offer | Class::Frame(_) | Class::Url => None,
        }
    }

    /// The close code an endpoint sends when its peer breaks this rule:
    /// 1007 for invalid UTF-8 in a text message or close reason, 1009 for a
    /// frame or message over the configured size, 1002 for every other
    /// framing rule (§7.4.1). `None` for handshake and URI rules.
    pub fn close_code(&self) -> Option<CloseCode> {
        match self.class() {
            Class::Frame(code) => Some(code),
            Class::Request(_) | Class::Response | Class::Offer | Class::Url => None,
        }
    }

    pub(crate) fn from_httparse(e: httparse::Error) -> Error {
        match e {
            httparse::Error::HeaderName => Error::InvalidHeaderName,
            httparse::Error::HeaderValue => Error::InvalidHeaderValue,
            httparse::Error::NewLine => Error::InvalidNewLine,
            httparse::Error::Status => Error::InvalidStatus,
            httparse::Error::Token => Error::InvalidToken,
            httparse::Error::TooManyHeaders => Error::TooManyHeaders,
            httparse::Error::Version => Error::InvalidVersion,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use Error::*;
        let msg = match self {
            HeaderBlockTooLarge => "header block too large",
            TooManyHeaders => "too many header lines",
            BareLf => "line ends with a bare LF instead of CRLF",
            ObsFold => "header line starts with whitespace (obsolete line folding)",
            InvalidToken => "invalid byte in method or request target",
            InvalidHeaderName => "invalid byte in header name",
            InvalidHeaderValue => "invalid byte in header value",
            InvalidNewLine => "invalid byte where a line end was expected",
            InvalidVersion => "invalid HTTP version",
            InvalidStatus => "invalid response status",
            MethodNotGet => "the opening handshake must be a GET request",
            HttpVersionTooOld => "the websocket upgrade needs HTTP/1.1 or later (HTTP/1.0 has no Upgrade mechanism)",
            InvalidRequestTarget => "request target is neither a path nor an absolute http, https, ws or wss URI",
            MissingHost => "missing Host header",
            DuplicateHost => "more than one Host header",
            MissingUpgradeWebsocket => "Upgrade header does not list websocket",
            MissingConnectionUpgrade => "Connection header does not list upgrade",
            MissingKey => "missing Sec-WebSocket-Key header",
            DuplicateKey => "more than one Sec-WebSocket-Key header",
            InvalidKey => "Sec-WebSocket-Key is not base64 of 16 bytes",
            MissingVersion => "missing Sec-WebSocket-Version header",
            UnsupportedVersion => "unsupported Sec-WebSocket-Version (this server speaks 13)",
            DuplicateVersion => "more than one Sec-WebSocket-Version header",
            InvalidExtensionHeader => "malformed Sec-WebSocket-Extensions header",
            InvalidProtocolHeader => "malformed Sec-WebSocket-Protocol header",
            DuplicateProtocol => "a subprotocol is offered twice",
            NotSwitchingProtocols => "response status is not 101 Switching Protocols",
            UpgradeNotWebsocket => "the response's Upgrade header is not websocket alone",
            MissingAccept => "missing Sec-WebSocket-Accept header",
            DuplicateAccept => "more than one Sec-WebSocket-Accept header",
            WrongAccept => "Sec-WebSocket-Accept does not match the key",
            UnofferedProtocol => "server selected a subprotocol the client did not offer",
            UnofferedExtension => "server selected an extension the client did not offer",
            DuplicateResponseHeader => "Sec-WebSocket-Protocol or Sec-WebSocket-Extensions repeated in the response",
            ReservedOpcode => "reserved opcode",
            ReservedBitSet => "reserved bit set without a negotiated extension",
            ControlFrameTooLong => "control frame payload longer than 125 bytes",
            ControlFrameFragmented => "control frame without FIN",
            NonMinimalLength => "payload length not minimally encoded",
            LengthMsbSet => "most significant bit of the 64-bit payload length set",
            UnmaskedClientFrame => "client frame not masked",
            MaskedServerFrame => "server frame masked",
            UnexpectedContinuation => "continuation frame with no message started",
            ExpectedContinuation => "new data frame inside a fragmented message",
            CloseLengthOne => "close frame with a one-byte payload",
            MisplacedCompressedBit => "RSV1 (per-message compressed) on a control or continuation frame",
            InvalidCloseCode => "close code that may not be sent",
            InvalidUtf8CloseReason => "close reason is not valid UTF-8",
            InvalidUtf8 => "text message is not valid UTF-8",
            FrameAfterClose => "data frame sent after a close frame",
            FrameTooLarge => "frame larger than the configured maximum",
            MessageTooLarge => "message larger than the configured maximum",
            InvalidDeflateParams => "permessage-deflate accepted with invalid parameters",
            InvalidDeflateOffer => "permessage-deflate offered with invalid parameters",
            UnofferedClientMaxWindowBits => "client_max_window_bits in a response to an offer without it",
            WindowBitsAboveOffer => "window bits in the response larger than offered",
            OfferedParamMissing => "the response leaves out a server parameter the offer asked for",
            InflateFailed => "compressed message is not a valid DEFLATE stream",
            InflatedTooLarge => "compressed message inflates past the configured cap",
            BeyondAgreedWindow => "compressed message refers back further than the agreed window",
            UrlScheme => "not a WebSocket URI: expected ws:// or wss://",
            UrlHost => "WebSocket URI without a valid host",
            UrlPort => "WebSocket URI with an invalid port",
            UrlFragment => "WebSocket URIs must not have a fragment",
            UrlPath => "WebSocket URI path or query with a character a URI may not hold",
        };
        write!(f, "{msg} ({})", self.rfc())
    }
}

impl std::error::Error for Error {}

/// How a rule is answered (see [`Error::http_status`], [`Error::close_code`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Class {
    /// A rule of the client's request: the server refuses with this status.
    Request(u16),
    /// A rule of the server's response: the client fails the connection.
    Response,
    /// A rule of an extension offer: the server declines the offer.
    Offer,
    /// A framing rule: the endpoint closes with this code.
    Frame(CloseCode),
    /// A rule of WebSocket URIs (before any connection).
    Url,
}

/// A rule broken at a given place in a stream of frames.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Violation {
    /// The rule.
    pub error: Error,
    /// Offset, in bytes from the start of the stream given to the decoder,
    /// of the byte that breaks the rule: the first byte of the frame for
    /// header rules, the offending byte for invalid UTF-8.
    pub offset: u64,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} at byte {}", self.error, self.offset)
    }
}

impl std::error::Error for Violation {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_frame_rule_maps_to_a_close_code_and_every_request_rule_to_a_status() {
        use Error::*;
        let frame_rules = [
            ReservedOpcode,
            ReservedBitSet,
            ControlFrameTooLong,
            ControlFrameFragmented,
            NonMinimalLength,
            LengthMsbSet,
            UnmaskedClientFrame,
            MaskedServerFrame,
            UnexpectedContinuation,
            ExpectedContinuation,
            CloseLengthOne,
            InvalidCloseCode,
            InvalidUtf8CloseReason,
            InvalidUtf8,
            FrameAfterClose,
            FrameTooLarge,
            MessageTooLarge,
        ];
        for r in frame_rules {
            assert!(r.close_code().is_some(), "{r:?}");
            assert!(r.http_status().is_none(), "{r:?}");
            assert!(!r.is_handshake(), "{r:?}");
            assert!(r.rfc().starts_with("RFC 6455 §"), "{r:?}");
        }
        for r in [InflateFailed, InflatedTooLarge, BeyondAgreedWindow] {
            assert!(r.close_code().is_some() && !r.is_handshake(), "{r:?}");
        }
        assert_eq!(BeyondAgreedWindow.close_code(), Some(CloseCode(1002)));
        assert!(InvalidDeflateParams.is_handshake() && InvalidDeflateParams.close_code().is_none());
        assert_eq!(InflatedTooLarge.close_code(), Some(CloseCode(1009)));
        assert_eq!(InvalidUtf8.close_code(), Some(CloseCode(1007)));
        assert_eq!(MessageTooLarge.close_code(), Some(CloseCode(1009)));
        assert_eq!(ReservedOpcode.close_code(), Some(CloseCode(1002)));
        assert_eq!(UnsupportedVersion.http_status(), Some(426));
        assert_eq!(HttpVersionTooOld.http_status(), Some(400));
        assert!(WrongAccept.is_handshake());
        assert!(HttpVersionTooOld.to_string().contains("HTTP/1.1"));
    }
}
