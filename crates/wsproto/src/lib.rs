//! A sans-IO WebSocket protocol core: the RFC 6455 opening handshake (§4)
//! and the frame codec (§5), with every rule of §5 and §7 checked.
//!
//! # Contract
//!
//! This crate performs no I/O and keeps no clock. Bytes go in, values come
//! out. Every parser is incremental: input may arrive in chunks of any size,
//! one byte at a time included, and an incomplete input is a success
//! ([`Status::Partial`]), never an error. Nothing here panics on any input,
//! and no allocation is sized by a length read from the wire.
//!
//! * [`handshake`]: parse and validate the client's upgrade request and the
//!   server's answer (HTTP/1.1 syntax by `httparse`, WebSocket rules on top),
//!   compute `Sec-WebSocket-Accept`, build requests and responses.
//! * [`Decoder`]: a push decoder for a stream of frames that yields
//!   [`Event`]s: frame headers, payload chunks, frame ends and
//!   [`Violation`]s, each violation carrying the rule, its RFC section and the
//!   byte offset in the stream.
//! * [`encode_frame`] / [`FrameHeader::encode`]: the encoder.
//! * [`apply_mask`]: fast masking.
//! * [`Assembler`]: optional message reassembly with a size cap.
//! * [`WsUrl`]: `ws://` and `wss://` URIs (§3).
//! * `deflate` (feature `deflate`): permessage-deflate (RFC 7692) parameters
//!   and a capped inflater for reading compressed messages.
//!
//! # Example
//!
//! ```
//! use wsproto::{Decoder, DecoderConfig, Event, OpCode, Role, handshake};
//!
//! // A client's opening handshake, with its first frame right behind it.
//! let mut wire = b"GET /chat HTTP/1.1\r\n\
//!     Host: server.example.com\r\n\
//!     Upgrade: websocket\r\n\
//!     Connection: Upgrade\r\n\
//!     Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
//!     Sec-WebSocket-Version: 13\r\n\r\n".to_vec();
//! // RFC 6455 §5.7: a single-frame masked text message, "Hello".
//! wire.extend_from_slice(&[0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58]);
//!
//! let limits = handshake::Limits::default();
//! let wsproto::Status::Complete((request, consumed)) = handshake::parse_request(&wire, &limits)? else {
//!     panic!("the whole request is here");
//! };
//! let upgrade = request.validate()?;
//! assert_eq!(upgrade.accept_key().as_str(), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
//!
//! // The bytes after the header block are the WebSocket stream.
//! let mut decoder = Decoder::new(Role::Client, DecoderConfig::default());
//! let mut stream = &wire[consumed..];
//! let mut text = Vec::new();
//! while !stream.is_empty() {
//!     let decoded = decoder.decode(stream);
//!     stream = &stream[decoded.consumed..];
//!     match decoded.event {
//!         Some(Event::Header(h)) => assert_eq!(h.header.opcode, OpCode::Text),
//!         Some(Event::Payload(p)) => p.extend_unmasked(&mut text),
//!         Some(Event::Violation(v)) => panic!("{v}"),
//!         Some(Event::FrameEnd(_)) | None => {}
//!     }
//! }
//! assert_eq!(text, b"Hello");
//! # Ok::<(), wsproto::Error>(())
//! ```

#![cfg_attr(docsrs, feature(doc_cfg))]

mod assembler;
mod close;
mod decoder;
mod encode;
mod error;
mod header;
mod mask;
mod opcode;
mod url;
mod utf8;

#[cfg(feature = "deflate")]
pub mod deflate;
pub mod handshake;

pub use assembler::{Assembler, Message, MessageKind};
pub use close::{CloseCode, CloseFrame, parse_close_payload};
pub use decoder::{Decoded, Decoder, DecoderConfig, Event, FrameEnd, HeaderEvent, Payload, Role};
pub use encode::{encode_close_payload, encode_frame};
pub use error::{Error, Violation};
pub use header::{FrameHeader, LengthForm, MAX_CONTROL_PAYLOAD, MAX_HEADER_LEN, ParsedHeader, parse_header};
pub use mask::{apply_mask, apply_mask_bytewise};
pub use opcode::OpCode;
pub use url::WsUrl;
pub use utf8::{Utf8Error, Utf8Validator};

/// The outcome of an incremental parse: either more input is needed, or a
/// value is complete.
///
/// Incomplete input is not an error: a caller that receives
/// [`Status::Partial`] reads more bytes and calls again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Status<T> {
    /// The input ends before the value does; call again with more bytes.
    Partial,
    /// The value is complete.
    Complete(T),
}

impl<T> Status<T> {
    /// The completed value, if any.
    pub fn complete(self) -> Option<T> {
        match self {
            Status::Partial => None,
            Status::Complete(t) => Some(t),
        }
    }

    /// Whether more input is needed.
    pub fn is_partial(&self) -> bool {
        matches!(self, Status::Partial)
    }
}
