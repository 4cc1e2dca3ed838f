//! Where an HTTP/1.1 message body ends (RFC 9112 §6), so that the session
//! can follow one exchange after another on a kept-alive connection.
//! Sans-IO: bytes in, how many belong to the body out. It never changes
//! the bytes; the session forwards them as they came.
//!
//! Chunk-size lines are parsed with `httparse::parse_chunk_size` (the
//! parser hyper uses); only the states between them are written here.

use wsproto::handshake::Header;

/// How a message's body is delimited (RFC 9112 §6.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BodyLength {
    /// No body: the next message starts right after the head.
    None,
    /// `Content-Length` bytes.
    Length(u64),
    /// `Transfer-Encoding: chunked` (§7.1).
    Chunked,
    /// Everything until the connection closes (a response only, §6.3 item 8).
    UntilClose,
}

/// Why a body's framing cannot be followed; the connection is then relayed
/// without being decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FramingError {
    /// §6.3 item 4: a request whose transfer coding is not chunked last.
    RequestNotChunked,
    /// §6.3 item 5: an invalid or conflicting `Content-Length`.
    BadContentLength,
    /// §7.1: a chunk-size line that does not parse.
    BadChunkSize,
    /// §7.1: chunk data not followed by CRLF.
    BadChunkEnd,
    /// A chunk-size line or the trailer section over the size we follow.
    TooLong,
}

impl FramingError {
    /// The reason, in words, for the `uninspected` event.
    pub(crate) fn describe(self) -> &'static str {
        match self {
            FramingError::RequestNotChunked => {
                "the request's Transfer-Encoding does not end in chunked, so its end cannot be found (RFC 9112 §6.3)"
            }
            FramingError::BadContentLength => "the Content-Length is invalid or conflicting (RFC 9112 §6.3)",
            FramingError::BadChunkSize => "a chunk-size line does not parse (RFC 9112 §7.1)",
            FramingError::BadChunkEnd => "chunk data is not followed by CRLF (RFC 9112 §7.1)",
            FramingError::TooLong => "a chunk-size line or the trailer section is too long to follow",
        }
    }
}

/// The longest chunk-size line (with extensions) and trailer section followed.
const MAX_LINE: usize = 4096;
const MAX_TRAILERS: usize = 64 << 10;

fn has_token(headers: &[Header<'_>], name: &str, token: &str) -> Option<bool> {
    let mut seen = false;
    let mut last_is = false;
    for h in headers.iter().filter(|h| h.name.eq_ignore_ascii_case(name)) {
        seen = true;
        for t in h.value.split(|&b| b == b',') {
            let t = t.trim_ascii();
            if !t.is_empty() {
                last_is = t.eq_ignore_ascii_case(token.as_bytes());
            }
        }
    }
    seen.then_some(last_is)
}

fn content_length(headers: &[Header<'_>]) -> Result<Option<u64>, FramingError> {
    let mut found: Option<u64> = None;
    for h in headers.iter().filter(|h| h.name.eq_ignore_ascii_case("content-length")) {
        // §8.6: a list of identical values may be taken as one.
        for v in h.value.split(|&b| b == b',') {
            let v = v.trim_ascii();
            if v.is_empty() || !v.iter().all(u8::is_ascii_digit) {
                return Err(FramingError::BadContentLength);
            }
            let n = std::str::from_utf8(v)
                .ok()
                .and_then(|s| s.parse::<u64>().ok())
                .ok_or(FramingError::BadContentLength)?;
            if found.is_some_and(|f| f != n) {
                return Err(FramingError::BadContentLength);
            }
            found = Some(n);
        }
    }
    Ok(found)
}

/// The body of a request with these headers (§6.3 items 3–7).
pub(crate) fn request_body(headers: &[Header<'_>]) -> Result<BodyLength, FramingError> {
    match has_token(headers, "transfer-encoding", "chunked") {
        Some(true) => Ok(BodyLength::Chunked),
        Some(false) => Err(FramingError::RequestNotChunked),
        None => Ok(match content_length(headers)? {
            Some(0) | None => BodyLength::None,
            Some(n) => BodyLength::Length(n),
        }),
    }
}

/// The body of a response with `status` to a request with `method` (§6.3
/// items 1–8). A 101 and a 2xx to CONNECT have no body: the connection
/// becomes something else, which the caller decides.
pub(crate) fn response_body(method: &str, status: u16, headers: &[Header<'_>]) -> Result<BodyLength, FramingError> {
    if method == "HEAD" || (100..200).contains(&status) || status == 204 || status == 304 {
        return Ok(BodyLength::None);
    }
    if method == "CONNECT" && (200..300).contains(&status) {
        return Ok(BodyLength::None);
    }
    match has_token(headers, "transfer-encoding", "chunked") {
        Some(true) => Ok(BodyLength::Chunked),
        Some(false) => Ok(BodyLength::UntilClose),
        None => Ok(match content_length(headers)? {
            Some(0) => BodyLength::None,
            Some(n) => BodyLength::Length(n),
            None => BodyLength::UntilClose,
        }),
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum State {
    /// Bytes left of a `Content-Length` body or of a chunk's data.
    Data {
        left: u64,
        chunked: bool,
    },
    /// Collecting a chunk-size line.
    SizeLine,
    /// The CRLF after a chunk's data: bytes of it still expected.
    DataEnd(u8),
    /// The trailer section (§7.1.2): at the start of a line or inside one.
    Trailers {
        line_start: bool,
        cr: bool,
    },
    Done,
    UntilClose,
}

/// Follows one body. Feed it what comes after the head; it says how much
/// belongs to the body and when the body is complete.
#[derive(Debug, Clone)]
pub(crate) struct BodyReader {
    state: State,
    line: Vec<u8>,
    trailers: usize,
    /// Content bytes so far (chunk data without its framing).
    content: u64,
}

impl BodyReader {
    /// A reader for a body delimited by `length`.
    pub(crate) fn new(length: BodyLength) -> BodyReader {
        let state = match length {
            BodyLength::None | BodyLength::Length(0) => State::Done,
            BodyLength::Length(n) => State::Data { left: n, chunked: false },
            BodyLength::Chunked => State::SizeLine,
            BodyLength::UntilClose => State::UntilClose,
        };
        BodyReader { state, line: Vec::new(), trailers: 0, content: 0 }
    }

    /// Whether the body is complete.
    pub(crate) fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Content bytes seen so far (for chunked bodies, without the framing).
    pub(crate) fn content_len(&self) -> u64 {
        self.content
    }

    /// Consumes the part of `data` that belongs to the body and returns its
    /// length; the rest, if any, follows the body.
    pub(crate) fn feed(&mut self, data: &[u8]) -> Result<usize, FramingError> {
        let mut pos = 0;
        while pos < data.len() {
            let rest = &data[pos..];
            match &mut self.state {
                State::Done => break,
                State::UntilClose => {
                    self.content += rest.len() as u64;
                    pos = data.len();
                }
                State::Data { left, chunked } => {
                    let n = (*left).min(rest.len() as u64);
                    *left -= n;
                    self.content += n;
                    pos += n as usize;
                    if *left == 0 {
                        self.state = if *chunked { State::DataEnd(2) } else { State::Done };
                    }
                }
                State::DataEnd(left) => {
                    let expected = if *left == 2 { b'\r' } else { b'\n' };
                    if rest[0] != expected {
                        return Err(FramingError::BadChunkEnd);
                    }
                    pos += 1;
                    *left -= 1;
                    if *left == 0 {
                        self.state = State::SizeLine;
                    }
                }
                State::SizeLine => {
                    let Some(nl) = rest.iter().position(|&b| b == b'\n') else {
                        self.line.extend_from_slice(rest);
                        if self.line.len() > MAX_LINE {
                            return Err(FramingError::TooLong);
                        }
                        pos = data.len();
                        continue;
                    };
                    self.line.extend_from_slice(&rest[..=nl]);
                    pos += nl + 1;
                    if self.line.len() > MAX_LINE {
                        return Err(FramingError::TooLong);
                    }
                    let size = match httparse::parse_chunk_size(&self.line) {
                        Ok(httparse::Status::Complete((_, size))) => size,
                        _ => return Err(FramingError::BadChunkSize),
                    };
                    self.line.clear();
                    self.state = if size == 0 {
                        State::Trailers { line_start: true, cr: false }
                    } else {
                        State::Data { left: size, chunked: true }
                    };
                }
                State::Trailers { line_start, cr } => {
                    let b = rest[0];
                    pos += 1;
                    self.trailers += 1;
                    if self.trailers > MAX_TRAILERS {
                        return Err(FramingError::TooLong);
                    }
                    // A line ends with CRLF, or a bare LF (which the
                    // chunk-size parser accepts too); an empty one ends the
                    // trailer section.
                    match b {
                        b'\n' if *line_start => self.state = State::Done,
                        b'\n' => {
                            *line_start = true;
                            *cr = false;
                        }
                        b'\r' if !*cr => *cr = true,
                        _ => {
                            *line_start = false;
                            *cr = false;
                        }
                    }
                }
            }
        }
        Ok(pos)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h<'a>(name: &'a str, value: &'a str) -> Header<'a> {
        Header { name, value: value.as_bytes() }
    }

    /// Feeds `bytes` in pieces of `chunk`; returns (body bytes, content
    /// bytes) once done, or the error.
    fn run(length: BodyLength, bytes: &[u8], chunk: usize) -> Result<(usize, u64, bool), FramingError> {
        let mut r = BodyReader::new(length);
        let mut used = 0;
        for piece in bytes.chunks(chunk.max(1)) {
            let n = r.feed(piece)?;
            used += n;
            if n < piece.len() {
                assert!(r.is_done(), "stopped early without being done");
                break;
            }
        }
        Ok((used, r.content_len(), r.is_done()))
    }

    #[test]
    fn framing_from_headers() {
        let cases: Vec<(Vec<Header<'_>>, Result<BodyLength, FramingError>)> = vec![
            (vec![], Ok(BodyLength::None)),
            (vec![h("Content-Length", "0")], Ok(BodyLength::None)),
            (vec![h("content-length", " 12 ")], Ok(BodyLength::Length(12))),
            (vec![h("Content-Length", "5, 5")], Ok(BodyLength::Length(5))),
            (vec![h("Content-Length", "5"), h("Content-Length", "6")], Err(FramingError::BadContentLength)),
            (vec![h("Content-Length", "-1")], Err(FramingError::BadContentLength)),
            (vec![h("Content-Length", "99999999999999999999999")], Err(FramingError::BadContentLength)),
            (vec![h("Transfer-Encoding", "chunked")], Ok(BodyLength::Chunked)),
            (vec![h("Transfer-Encoding", "gzip, Chunked"), h("Content-Length", "3")], Ok(BodyLength::Chunked)),
            (vec![h("Transfer-Encoding", "chunked, gzip")], Err(FramingError::RequestNotChunked)),
        ];
        for (headers, want) in cases {
            assert_eq!(request_body(&headers), want, "{headers:?}");
        }
        assert_eq!(response_body("GET", 200, &[]), Ok(BodyLength::UntilClose));
        assert_eq!(response_body("HEAD", 200, &[h("Content-Length", "9")]), Ok(BodyLength::None));
        for status in [100, 101, 103, 204, 304] {
            assert_eq!(response_body("GET", status, &[h("Content-Length", "9")]), Ok(BodyLength::None), "{status}");
        }
        assert_eq!(response_body("GET", 401, &[h("Content-Length", "9")]), Ok(BodyLength::Length(9)));
        assert_eq!(response_body("GET", 200, &[h("Transfer-Encoding", "gzip")]), Ok(BodyLength::UntilClose));
        assert_eq!(response_body("CONNECT", 200, &[]), Ok(BodyLength::None));
    }

    #[test]
    fn bodies_end_where_they_end_however_they_arrive() {
        let chunked = b"4\r\nWiki\r\n5;ext=1\r\npedia\r\n0\r\nExpires: never\r\n\r\n";
        let cases: Vec<(BodyLength, &[u8], usize, u64)> = vec![
            (BodyLength::Length(5), b"hello", 5, 5),
            (BodyLength::Chunked, chunked, chunked.len(), 9),
            (BodyLength::Chunked, b"0\r\n\r\n", 5, 0),
            // Trailer lines ending in a bare LF (the chunk-size parser
            // refuses a bare LF after the size, see below).
            (BodyLength::Chunked, b"0\r\n\n", 4, 0),
            (BodyLength::Chunked, b"1\r\nx\r\n0\r\nX: y\n\n", 15, 1),
            (BodyLength::Chunked, b"A\r\n0123456789\r\n0\r\n\r\n", 20, 10),
        ];
        for (length, body, want_used, want_content) in cases {
            let mut with_next = body.to_vec();
            with_next.extend_from_slice(b"GET /next HTTP/1.1\r\n");
            for chunk in [1, 2, 3, 7, with_next.len()] {
                assert_eq!(
                    run(length, &with_next, chunk),
                    Ok((want_used, want_content, true)),
                    "{length:?} {:?} in pieces of {chunk}",
                    String::from_utf8_lossy(body)
                );
            }
        }
    }

    #[test]
    fn until_close_takes_everything() {
        assert_eq!(run(BodyLength::UntilClose, b"abc", 2), Ok((3, 3, false)));
    }

    #[test]
    fn broken_chunked_framing_is_an_error() {
        assert_eq!(run(BodyLength::Chunked, b"zz\r\n", 1), Err(FramingError::BadChunkSize));
        assert_eq!(run(BodyLength::Chunked, b"0\n\n", 1), Err(FramingError::BadChunkSize));
        assert_eq!(run(BodyLength::Chunked, b"2\r\nabX", 1), Err(FramingError::BadChunkEnd));
        assert_eq!(run(BodyLength::Chunked, &[b'1'; MAX_LINE + 1], 100), Err(FramingError::TooLong));
    }

    #[test]
    fn every_strict_prefix_is_unfinished() {
        let body = b"4\r\nWiki\r\n0\r\n\r\n";
        for end in 0..body.len() {
            let mut r = BodyReader::new(BodyLength::Chunked);
            assert_eq!(r.feed(&body[..end]), Ok(end));
            assert!(!r.is_done(), "done after {end} bytes");
        }
    }
}
