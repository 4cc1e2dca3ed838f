//! The opening handshake (RFC 6455 §4) over HTTP/1.1 message syntax
//! (RFC 9112).
//!
//! `httparse` parses the HTTP syntax; the WebSocket rules on top are ours.
//! Parsing is incremental: [`parse_request`] and [`parse_response`] return
//! [`Status::Partial`] until the header block (ending with an empty line)
//! is complete, then the head, with every string borrowed from the caller's
//! buffer, and the number of bytes it took. Bytes after it belong to the
//! WebSocket stream (or the response body) and are left to the caller.
//!
//! # Policy on what RFC 9112 leaves to the recipient
//!
//! | input | what happens | why |
//! |---|---|---|
//! | a line ending in LF without CR | [`Error::BareLf`] | §2.2 allows either; a recipient that disagrees with another about line ends can be desynchronised (request smuggling), and every WebSocket client sends CRLF |
//! | a header line starting with SP or HTAB (obs-fold) | [`Error::ObsFold`] | §5.2: a server MUST reject or replace it; rejecting is the safe half |
//! | control characters in a field value (other than HTAB) | [`Error::InvalidHeaderValue`] | RFC 9110 §5.5: CR, LF and NUL MUST be rejected or replaced; the other controls are not field-vchar either |
//! | whitespace after the colon or at the end of a value | removed | RFC 9112 §5.1: OWS around a field value is not part of it |
//! | two `Host` lines | [`Error::DuplicateHost`] | RFC 9112 §3.2 says 400 |
//! | two `Sec-WebSocket-Key` or `Sec-WebSocket-Version` lines in a request | [`Error::DuplicateKey`], [`Error::DuplicateVersion`] | RFC 6455 §11.3.1, §11.3.5: MUST NOT appear more than once |
//! | two `Sec-WebSocket-Accept`, `-Protocol` or `-Extensions` lines in a response | [`Error::DuplicateAccept`], [`Error::DuplicateResponseHeader`] | RFC 6455 §11.3 |
//! | several `Upgrade`, `Connection`, `Sec-WebSocket-Protocol` or `Sec-WebSocket-Extensions` lines in a request | joined as one comma list | RFC 9110 §5.3 |
//! | a header block over [`Limits::max_head_len`] (64 KiB) or with more than [`Limits::max_headers`] lines | [`Error::HeaderBlockTooLarge`], [`Error::TooManyHeaders`], detected before the block ends | bounded memory for a peer that never ends its head |

mod deflate_params;
mod request;
mod response;
mod tokens;

use data_encoding::BASE64;
use sha1::{Digest, Sha1};

use crate::Status;
use crate::error::Error;

pub use deflate_params::{
    DeflateOffer, DeflateParams, DeflateServerConfig, EXTENSION_NAME as PERMESSAGE_DEFLATE, Negotiation,
};
pub use request::{ClientHandshake, Request};
pub use response::{Response, ServerHandshake};
pub use tokens::{Extension, ExtensionParam, parse_extensions, parse_token_list};

/// The GUID of §1.3 appended to the key before hashing.
pub const WEBSOCKET_GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// The only version this crate speaks (§4.1, §4.4).
pub const WEBSOCKET_VERSION: &str = "13";

/// Bounds on the header block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Longest header block, request or status line included (default 64 KiB).
    pub max_head_len: usize,
    /// Most header lines (default 100).
    pub max_headers: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits { max_head_len: 64 * 1024, max_headers: 100 }
    }
}

/// One header line, borrowed from the input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header<'b> {
    /// The name as sent.
    pub name: &'b str,
    /// The value, without surrounding whitespace. Not necessarily UTF-8
    /// (RFC 9110 allows obs-text).
    pub value: &'b [u8],
}

/// Looks up headers by name, case-insensitively.
pub(crate) fn headers_named<'h, 'b>(headers: &'h [Header<'b>], name: &'h str) -> impl Iterator<Item = &'b [u8]> + 'h {
    headers.iter().filter(move |h| h.name.eq_ignore_ascii_case(name)).map(|h| h.value)
}

/// The value of a header that must appear at most once: `Ok(None)` when it is
/// missing, `Err(dup)` when it appears twice.
pub(crate) fn single_header<'b>(headers: &[Header<'b>], name: &str, dup: Error) -> Result<Option<&'b [u8]>, Error> {
    let mut values = headers_named(headers, name);
    let first = values.next();
    if values.next().is_some() {
        return Err(dup);
    }
    Ok(first)
}

/// An incremental scanner for the end of a header block, enforcing the
/// line-ending and size policy of this module. It resumes where it left off,
/// so feeding a growing buffer costs time linear in its length.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HeadScanner {
    pos: usize,
    lines: usize,
    /// Where the start line begins, once past any empty lines before it.
    start: Option<usize>,
}

impl HeadScanner {
    /// A scanner at the start of a message.
    pub fn new() -> Self {
        Self::default()
    }

    /// Scans `buf` (the same buffer as before, possibly longer) and returns
    /// the length of the header block, empty line included, once complete.
    pub fn scan(&mut self, buf: &[u8], limits: &Limits) -> Result<Status<usize>, Error> {
        let end = buf.len().min(limits.max_head_len);
        while self.pos < end {
            let i = self.pos;
            // Rules below look one byte ahead. At the last byte the limit
            // allows, a block that does not end here cannot end within the
            // limit, whatever follows (so the verdict does not depend on
            // whether the next byte has arrived); before it, wait for the
            // next byte.
            if matches!(buf[i], b'\r' | b'\n') && !buf[..=i].ends_with(b"\r\n\r\n") {
                if i + 1 >= limits.max_head_len {
                    return Err(Error::HeaderBlockTooLarge);
                }
                if i + 1 == buf.len() {
                    return Ok(Status::Partial);
                }
            }
            let Some(start) = self.start else {
                // RFC 9112 §2.2: "a server that is expecting to receive and
                // parse a request-line SHOULD ignore at least one empty line
                // (CRLF) received prior to the request-line". We ignore any
                // number, as httparse does; they count toward the head.
                match buf[i] {
                    b'\r' if buf[i + 1] == b'\n' => self.pos += 2,
                    b'\r' => return Err(Error::InvalidNewLine),
                    b'\n' => return Err(Error::BareLf),
                    _ => self.start = Some(i),
                }
                continue;
            };
            if buf[i] == b'\n' {
                // RFC 9112 §2.2: we accept CRLF only.
                if i == 0 || buf[i - 1] != b'\r' {
                    return Err(Error::BareLf);
                }
                // An empty line after the start line ends the block.
                if i >= start + 3 && buf[i - 3..=i] == *b"\r\n\r\n" {
                    return Ok(Status::Complete(i + 1));
                }
                self.lines += 1;
                // One start line, then at most `max_headers` field lines.
                if self.lines > limits.max_headers + 1 {
                    return Err(Error::TooManyHeaders);
                }
                // RFC 9112 §5.2: obs-fold is a field line starting with SP/HTAB.
                if let Some(b' ' | b'\t') = buf.get(i + 1) {
                    return Err(Error::ObsFold);
                }
            } else if buf[i] == b'\r' && buf[i + 1] != b'\n' {
                // A CR must start a CRLF.
                return Err(Error::InvalidNewLine);
            }
            self.pos += 1;
        }
        if buf.len() >= limits.max_head_len {
            return Err(Error::HeaderBlockTooLarge);
        }
        Ok(Status::Partial)
    }
}

/// Copies httparse's headers into ours.
fn convert_headers<'b>(parsed: &[httparse::Header<'b>]) -> Vec<Header<'b>> {
    parsed.iter().map(|h| Header { name: h.name, value: h.value }).collect()
}

/// Parses a client's opening request from the start of `buf`.
///
/// Returns the request and the number of bytes of its head once the head is
/// complete. Only the HTTP syntax is checked here; [`Request::validate`]
/// checks the WebSocket rules.
pub fn parse_request<'b>(buf: &'b [u8], limits: &Limits) -> Result<Status<(Request<'b>, usize)>, Error> {
    let Status::Complete(head_len) = HeadScanner::new().scan(buf, limits)? else {
        return Ok(Status::Partial);
    };
    let mut storage = vec![httparse::EMPTY_HEADER; limits.max_headers];
    let mut req = httparse::Request::new(&mut storage);
    match req.parse(&buf[..head_len]).map_err(Error::from_httparse)? {
        httparse::Status::Complete(n) if n == head_len => {}
        // The scanner found the end of the block; httparse must agree.
        _ => return Err(Error::InvalidNewLine),
    }
    let (Some(method), Some(target), Some(minor)) = (req.method, req.path, req.version) else {
        return Err(Error::InvalidToken);
    };
    Ok(Status::Complete((
        Request { method, target, version_minor: minor, headers: convert_headers(req.headers) },
        head_len,
    )))
}

/// Parses a server's response head from the start of `buf`, whatever its
/// status (a proxy shows a 403 as well as a 101).
pub fn parse_response<'b>(buf: &'b [u8], limits: &Limits) -> Result<Status<(Response<'b>, usize)>, Error> {
    let Status::Complete(head_len) = HeadScanner::new().scan(buf, limits)? else {
        return Ok(Status::Partial);
    };
    let mut storage = vec![httparse::EMPTY_HEADER; limits.max_headers];
    let mut res = httparse::Response::new(&mut storage);
    match res.parse(&buf[..head_len]).map_err(Error::from_httparse)? {
        httparse::Status::Complete(n) if n == head_len => {}
        _ => return Err(Error::InvalidNewLine),
    }
    let (Some(minor), Some(status)) = (res.version, res.code) else {
        return Err(Error::InvalidStatus);
    };
    Ok(Status::Complete((
        Response {
            version_minor: minor,
            status,
            reason: res.reason.unwrap_or(""),
            headers: convert_headers(res.headers),
        },
        head_len,
    )))
}

/// A `Sec-WebSocket-Accept` value: 28 base64 characters.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct AcceptKey([u8; 28]);

impl AcceptKey {
    /// The value as text.
    pub fn as_str(&self) -> &str {
        // Base64 output is ASCII.
        core::str::from_utf8(&self.0).unwrap_or_default()
    }
}

impl core::fmt::Debug for AcceptKey {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// §4.2.2: base64 of the SHA-1 of the key (as sent, base64 text) followed
/// by the GUID.
pub fn accept_key(key: &[u8]) -> AcceptKey {
    let mut sha = Sha1::new();
    sha.update(key);
    sha.update(WEBSOCKET_GUID.as_bytes());
    let digest = sha.finalize();
    let mut out = [0u8; 28];
    BASE64.encode_mut(&digest, &mut out);
    AcceptKey(out)
}

/// §4.1: the key is "a base64-encoded value that, when decoded, is 16 bytes
/// in length". Callers supply the 16 random bytes (this crate has no source
/// of randomness).
pub fn encode_key(nonce: [u8; 16]) -> String {
    BASE64.encode(&nonce)
}

/// Whether `key` is the base64 encoding of 16 bytes.
pub fn is_valid_key(key: &[u8]) -> bool {
    key.len() == 24 && BASE64.decode(key).is_ok_and(|k| k.len() == 16)
}

/// Whether `target` may be the request target of an opening handshake.
///
/// RFC 6455 §4.1: the request target is the "/resource name/" of the
/// WebSocket URI (origin-form, RFC 9112 §3.2.1), "or an absolute HTTP/HTTPS
/// URI" (absolute-form, §3.2.2); we accept `ws`/`wss` absolute URIs too, as
/// some clients send them through proxies. The syntax is `http::Uri`'s
/// (RFC 3986); a fragment is never part of a request target.
pub fn is_valid_request_target(target: &str) -> bool {
    if target.contains('#') {
        return false;
    }
    if target.starts_with('/') {
        return target.parse::<http::uri::PathAndQuery>().is_ok();
    }
    let Ok(uri) = target.parse::<http::Uri>() else { return false };
    let scheme_ok =
        uri.scheme_str().is_some_and(|s| ["http", "https", "ws", "wss"].iter().any(|w| w.eq_ignore_ascii_case(s)));
    scheme_ok && uri.authority().is_some_and(|a| !a.host().is_empty() && !a.as_str().contains('@'))
}

/// Whether `host` may be the value of a `Host` header: an authority
/// (RFC 3986 §3.2: host, optional port; no user information), which also
/// rules out CR, LF and every other byte that could end the header line.
fn is_valid_host(host: &str) -> bool {
    !host.contains('@')
        && host.parse::<http::uri::Authority>().is_ok_and(|a| !a.host().is_empty() && a.as_str() == host)
}

/// A header value a builder writes: a non-empty list of extensions in the
/// grammar of §9.1 (which holds no CR or LF).
fn is_valid_extension_list(value: &str) -> bool {
    let mut out = Vec::new();
    parse_extensions(value.as_bytes(), &mut out).is_ok() && !out.is_empty()
}

/// Subprotocol names: tokens (§4.1 item 10), each once.
fn check_protocols(protocols: &[&str]) -> Result<(), Error> {
    let mut seen = std::collections::BTreeSet::new();
    for p in protocols {
        if parse_token_list(p.as_bytes()).is_none_or(|l| l != [*p]) {
            return Err(Error::InvalidProtocolHeader);
        }
        if !seen.insert(*p) {
            return Err(Error::DuplicateProtocol);
        }
    }
    Ok(())
}

/// Builds an opening request (§4.1).
///
/// Every argument is checked before it is written, so that none can end
/// its line and add a header: `host` must be an authority
/// ([`Error::UrlHost`]), `target` a request target
/// in RFC 3986 characters ([`Error::InvalidRequestTarget`], see
/// [`is_valid_request_target`]), `key`
/// the base64 of 16 bytes ([`Error::InvalidKey`]), each protocol a token and
/// listed once ([`Error::InvalidProtocolHeader`], [`Error::DuplicateProtocol`]),
/// `extensions` a non-empty §9.1 list ([`Error::InvalidExtensionHeader`]).
pub fn build_request(
    host: &str,
    target: &str,
    key: &str,
    protocols: &[&str],
    extensions: Option<&str>,
) -> Result<Vec<u8>, Error> {
    if !is_valid_host(host) {
        return Err(Error::UrlHost);
    }
    // What we write holds only RFC 3986 characters (brackets for an IPv6
    // host), stricter than what we accept from a peer.
    let rfc_3986 = |b: u8| crate::url::is_path_or_query_byte(b) || b == b'[' || b == b']';
    if !is_valid_request_target(target) || !target.bytes().all(rfc_3986) {
        return Err(Error::InvalidRequestTarget);
    }
    if !is_valid_key(key.as_bytes()) {
        return Err(Error::InvalidKey);
    }
    check_protocols(protocols)?;
    if extensions.is_some_and(|e| !is_valid_extension_list(e)) {
        return Err(Error::InvalidExtensionHeader);
    }
    let mut out = format!(
        "GET {target} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
    );
    if !protocols.is_empty() {
        out.push_str(&format!("Sec-WebSocket-Protocol: {}\r\n", protocols.join(", ")));
    }
    if let Some(ext) = extensions {
        out.push_str(&format!("Sec-WebSocket-Extensions: {ext}\r\n"));
    }
    out.push_str("\r\n");
    Ok(out.into_bytes())
}

/// Builds the 101 answer to a validated request (§4.2.2).
///
/// `protocol` must be a token ([`Error::InvalidProtocolHeader`]) and
/// `extensions` a non-empty §9.1 list ([`Error::InvalidExtensionHeader`]),
/// so that neither can add a header.
pub fn build_response(accept: &AcceptKey, protocol: Option<&str>, extensions: Option<&str>) -> Result<Vec<u8>, Error> {
    if let Some(p) = protocol {
        check_protocols(&[p])?;
    }
    if extensions.is_some_and(|e| !is_valid_extension_list(e)) {
        return Err(Error::InvalidExtensionHeader);
    }
    let mut out = format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {}\r\n",
        accept.as_str()
    );
    if let Some(p) = protocol {
        out.push_str(&format!("Sec-WebSocket-Protocol: {p}\r\n"));
    }
    if let Some(ext) = extensions {
        out.push_str(&format!("Sec-WebSocket-Extensions: {ext}\r\n"));
    }
    out.push_str("\r\n");
    Ok(out.into_bytes())
}

/// Builds the answer a server gives a request that breaks `error`: 400 with
/// the reason as a plain-text body, 426 with `Sec-WebSocket-Version: 13` for
/// a wrong version (§4.4), 431 for an oversized head. The connection closes
/// after it.
pub fn build_rejection(error: Error) -> Vec<u8> {
    // The statuses of rules that are not the request's are 400 too (a
    // caller that rejects for those gets a 400).
    let status = error.http_status().unwrap_or(400);
    // The reason phrase from `http`'s table, so a new status cannot fall
    // into another's phrase.
    let reason = http::StatusCode::from_u16(status).ok().and_then(|s| s.canonical_reason()).unwrap_or("Bad Request");
    let body = format!("{error}\n");
    let mut out = format!("HTTP/1.1 {status} {reason}\r\n");
    if status == 426 {
        out.push_str("Sec-WebSocket-Version: 13\r\n");
    }
    out.push_str(&format!(
        "Content-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    ));
    out.into_bytes()
}

#[cfg(test)]
mod tests;
