//! A sans-IO WebSocket protocol core: the RFC 6455 opening handshake (§4)
//! and the frame codec (§5), with the rules of RFC 6455 and RFC 7692 that
//! can be decided from the bytes checked: see [What is checked](#what-is-checked)
//! below for each MUST, the variant that checks it and its test.
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
//! * `deflate` (feature `deflate`): permessage-deflate (RFC 7692) parameters,
//!   a server's choice among a client's offers, a capped inflater for reading
//!   compressed messages and a deflater for sending them.
//! * `endpoint` (feature `deflate`): a server or client endpoint that turns
//!   the peer's bytes into messages and queues its answers (pongs, closes,
//!   compressed messages; a client's masked), failing the connection with
//!   the right close code.
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

#![doc = include_str!("rules.md")]
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
#[cfg(feature = "deflate")]
pub mod endpoint;
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

#[cfg(test)]
mod rules_table {
    use std::collections::BTreeSet;

    /// The table of `rules.md`, and the sources its tests live in.
    const TABLE: &str = include_str!("rules.md");
    const SOURCES: [(&str, &str); 10] = [
        ("handshake::tests", include_str!("handshake/tests.rs")),
        ("handshake::deflate_params::tests", include_str!("handshake/deflate_params.rs")),
        ("decoder::tests", include_str!("decoder/tests.rs")),
        ("deflate::tests", include_str!("deflate.rs")),
        ("url::tests", include_str!("url.rs")),
        ("error::tests", include_str!("error.rs")),
        ("close::tests", include_str!("close.rs")),
        ("assembler::tests", include_str!("assembler.rs")),
        ("header::tests", include_str!("header.rs")),
        ("utf8::tests", include_str!("utf8.rs")),
    ];

    /// The variants of `Error`, read from its definition.
    fn variants() -> BTreeSet<String> {
        let source = include_str!("error.rs");
        let start = source.find("pub enum Error {").expect("the enum");
        let body = &source[start..];
        let body = &body[..body.find("\n}").expect("its end")];
        body.lines()
            .map(str::trim)
            .filter(|l| !l.starts_with("//") && !l.starts_with('#') && l.ends_with(','))
            .map(|l| l.trim_end_matches(',').to_owned())
            .collect()
    }

    /// Every `Error::Name` the table's rows mention.
    fn named_variants() -> BTreeSet<String> {
        let mut out = BTreeSet::new();
        for row in TABLE.lines().filter(|l| l.starts_with('|')) {
            for (i, _) in row.match_indices("Error::") {
                let name: String = row[i + 7..].chars().take_while(|c| c.is_ascii_alphanumeric()).collect();
                // Methods of Error (close_code, http_status) are lowercase.
                if name.starts_with(|c: char| c.is_ascii_uppercase()) {
                    out.insert(name);
                }
            }
        }
        out
    }

    #[test]
    fn rules_table_names_every_variant() {
        let variants = variants();
        assert!(variants.len() > 50, "read the enum: {variants:?}");
        let named = named_variants();
        let missing: Vec<_> = variants.difference(&named).collect();
        let unknown: Vec<_> = named.difference(&variants).collect();
        assert!(missing.is_empty(), "variants not in the rules table (src/rules.md): {missing:?}");
        assert!(unknown.is_empty(), "the rules table names variants that do not exist: {unknown:?}");
        // Every test the table names exists where its path says.
        for row in TABLE.lines().filter(|l| l.starts_with('|')) {
            let Some(test) = row.trim_end_matches(['|', ' ']).rsplit('|').next().map(str::trim) else { continue };
            let Some(path) = test.strip_prefix('`').and_then(|t| t.strip_suffix('`')) else { continue };
            let (module, name) = path.rsplit_once("::").expect("module::test");
            let (_, source) =
                SOURCES.iter().find(|(m, _)| *m == module).unwrap_or_else(|| panic!("{path}: unknown module"));
            assert!(source.contains(&format!("fn {name}(")), "the rules table names a missing test: {path}");
        }
    }
}
