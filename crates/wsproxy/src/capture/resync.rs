//! Finding the first WebSocket frame in a stream whose start the capture
//! does not have (`wsproxy read` of a capture begun after the upgrade).
//!
//! Sans-IO: the caller appends the bytes of one direction as they come and
//! asks [`Resync::boundary`]. A position is a frame boundary when a chain
//! of *plausible* frame headers starts there (RFC 6455 §5.2), each header
//! where the previous frame's payload ends:
//!
//! - RSV2 and RSV3 are clear, and the opcode is one §5.2 defines (0–2,
//!   8–10); RSV1 is set on a data frame only (RFC 7692 §6);
//! - the MASK bit is set on every client frame and clear on every server
//!   frame (§5.1: "a client MUST mask all frames that it sends to the
//!   server"; "a server MUST NOT mask any frames");
//! - control frames are final and carry at most 125 bytes (§5.5);
//! - the length uses the minimal form, and a 64-bit length has its most
//!   significant bit clear (§5.2);
//! - the first frame is not a continuation (a message cut in the middle is
//!   skipped whole), and no frame is an empty fragment that is not final
//!   (legal, but what runs of zero bytes in a binary payload look like).
//!
//! A position is taken once its chain holds [`CONFIRMING_HEADERS`]
//! complete headers, or, at the end of the stream, when its chain ends
//! exactly where the stream does. (Two headers are not enough: in a
//! masked binary payload, a chain of two plausible headers by chance is a
//! matter of a few kilobytes; each further header is plausible by chance
//! about once in forty.) Positions are tried from the first byte on, so
//! the boundary found is the earliest one the bytes allow; everything
//! before it is reported as skipped, never decoded by guess. A header
//! whose frame is longer than [`MAX_RESYNC`] cannot be checked within the
//! bound and does not start a chain.

use std::collections::VecDeque;

use wsproto::{LengthForm, MAX_CONTROL_PAYLOAD, parse_header};
use wsproto::{OpCode, Status};

use crate::event::Side;

/// Bytes of a direction kept while its first frame boundary is looked for.
pub const MAX_RESYNC: usize = 8 << 20;

/// Plausible headers in a chain that make its start a boundary.
pub const CONFIRMING_HEADERS: usize = 4;

/// What the bytes from a position say about it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Chain {
    /// A header there (or where its chain leads) breaks a rule above.
    Implausible,
    /// Plausible so far; more bytes are needed to tell.
    Undecided {
        /// The one frame ends exactly where the bytes do.
        exact: bool,
    },
    /// [`CONFIRMING_HEADERS`] complete plausible headers in a chain.
    Confirmed,
}

/// The search for one direction's first frame boundary; each piece of
/// the stream carries a mark `T` (the time it came), handed back with it.
#[derive(Debug)]
pub struct Resync<T> {
    side: Side,
    buf: Vec<u8>,
    /// Where each piece pushed ends in the stream, and its mark; pieces
    /// wholly before the first position not ruled out are let go.
    marks: VecDeque<(u64, T)>,
    /// Bytes dropped from the front of `buf` (none of them a boundary).
    dropped: u64,
    /// Positions in `buf` before this are known not to be boundaries.
    tried: usize,
}

impl<T> Resync<T> {
    /// A search in what `side` sends.
    pub fn new(side: Side) -> Resync<T> {
        Resync { side, buf: Vec::new(), marks: VecDeque::new(), dropped: 0, tried: 0 }
    }

    /// Bytes held.
    pub fn held(&self) -> usize {
        self.buf.len()
    }

    /// Appends the next bytes of the stream, marked `mark`.
    pub fn push(&mut self, bytes: &[u8], mark: T) {
        if bytes.is_empty() {
            return;
        }
        self.buf.extend_from_slice(bytes);
        self.marks.push_back((self.dropped + self.buf.len() as u64, mark));
    }

    /// The offset in the stream of the first frame boundary, if the bytes
    /// so far tell; with `at_end` (no more bytes will come) a single frame
    /// that ends exactly with the stream is taken too. Positions given up
    /// (longer than [`MAX_RESYNC`] to check) are passed over. Bytes known
    /// not to start a boundary are let go, so what is held stays bounded.
    pub fn boundary(&mut self, at_end: bool) -> Option<u64> {
        let found = loop {
            if self.tried >= self.buf.len() {
                break None;
            }
            match chain(&self.buf[self.tried..], self.side) {
                Chain::Implausible => self.tried += 1,
                Chain::Confirmed => break Some(self.skipped()),
                Chain::Undecided { exact: true } if at_end => break Some(self.skipped()),
                Chain::Undecided { .. } if at_end || self.buf.len() - self.tried > MAX_RESYNC => self.tried += 1,
                Chain::Undecided { .. } => break None,
            }
        };
        if found.is_none() && self.tried > self.buf.len() / 2 {
            self.buf.drain(..self.tried);
            self.dropped += self.tried as u64;
            self.tried = 0;
        }
        while self.marks.front().is_some_and(|(end, _)| *end <= self.skipped()) {
            self.marks.pop_front();
        }
        found
    }

    /// Bytes of the stream before the first position not yet ruled out
    /// (the boundary, once found).
    pub fn skipped(&self) -> u64 {
        self.dropped + self.tried as u64
    }

    /// The bytes from the first position not yet ruled out (the boundary,
    /// once found) on, in the pieces they came in, with their marks.
    pub fn rest(self) -> Vec<(T, Vec<u8>)> {
        let mut at = self.skipped();
        let mut out = Vec::with_capacity(self.marks.len());
        for (end, mark) in self.marks {
            if end > at {
                let from = (at - self.dropped) as usize;
                let to = (end - self.dropped) as usize;
                out.push((mark, self.buf[from..to].to_vec()));
                at = end;
            }
        }
        out
    }
}

/// Whether a header, as parsed, could be one `side` sent.
fn plausible(h: &wsproto::ParsedHeader, side: Side, first: bool) -> bool {
    let header = &h.header;
    let data = matches!(header.opcode, OpCode::Text | OpCode::Binary);
    let control = matches!(header.opcode, OpCode::Close | OpCode::Ping | OpCode::Pong);
    let known = data || control || header.opcode == OpCode::Continuation;
    known
        && !header.rsv2
        && !header.rsv3
        && (!header.rsv1 || data)
        && header.mask.is_some() == (side == Side::Client)
        && (!control || (header.fin && header.payload_len <= MAX_CONTROL_PAYLOAD))
        && h.length_form == LengthForm::for_len(header.payload_len)
        && header.payload_len >> 63 == 0
        && !(first && header.opcode == OpCode::Continuation)
        && (header.fin || header.payload_len > 0)
}

/// Follows the chain of frames from the start of `buf`.
fn chain(buf: &[u8], side: Side) -> Chain {
    let mut pos = 0usize;
    let mut headers = 0;
    loop {
        if pos == buf.len() && headers > 0 {
            return Chain::Undecided { exact: true };
        }
        let Status::Complete(h) = parse_header(&buf[pos..]) else {
            return Chain::Undecided { exact: false };
        };
        if !plausible(&h, side, headers == 0) || (headers == 0 && h.header.payload_len > MAX_RESYNC as u64) {
            return Chain::Implausible;
        }
        headers += 1;
        if headers == CONFIRMING_HEADERS {
            return Chain::Confirmed;
        }
        let end = u64::try_from(pos + h.header_len).ok().and_then(|p| p.checked_add(h.header.payload_len));
        match end {
            Some(end) if end <= buf.len() as u64 => pos = end as usize,
            _ => return Chain::Undecided { exact: false },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wsproto::FrameHeader;

    fn frame(opcode: OpCode, mask: Option<[u8; 4]>, payload: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        wsproto::encode_frame(
            &FrameHeader { mask, ..FrameHeader::new(opcode, payload.len() as u64) },
            payload,
            &mut out,
        );
        out
    }

    const KEY: Option<[u8; 4]> = Some([1, 2, 3, 4]);

    /// [`CONFIRMING_HEADERS`] small frames `side` could send.
    fn confirming(mask: Option<[u8; 4]>) -> Vec<u8> {
        let mut out = frame(OpCode::Binary, mask, &[0, 1, 2, 0x82, 0x7e]);
        for _ in 1..CONFIRMING_HEADERS {
            out.extend(frame(OpCode::Ping, mask, b"p"));
        }
        out
    }

    fn joined(pieces: Vec<(usize, Vec<u8>)>) -> Vec<u8> {
        pieces.into_iter().flat_map(|(_, b)| b).collect()
    }

    /// The tail of a frame, then whole frames: the boundary is where the
    /// first whole frame starts, for the client (masked) and the server
    /// (unmasked), whether the bytes come at once or one at a time; the
    /// pieces from it come back with their marks.
    #[test]
    fn the_first_whole_frame_is_found_after_a_cut_one() {
        for (side, mask) in [(Side::Client, KEY), (Side::Upstream, None)] {
            let cut = frame(OpCode::Text, mask, &[b'x'; 300]);
            let tail = &cut[37..];
            let rest = confirming(mask);
            let stream = [tail, &rest].concat();
            let mut at_once = Resync::new(side);
            at_once.push(&stream, 0);
            assert_eq!(at_once.boundary(false), Some(tail.len() as u64), "{side:?}");
            assert_eq!(at_once.rest(), [(0, rest.clone())], "{side:?}");
            let mut bytewise = Resync::new(side);
            let mut found = None;
            for (i, b) in stream.iter().enumerate() {
                bytewise.push(&[*b], i);
                found = bytewise.boundary(false);
                if found.is_some() {
                    break;
                }
            }
            assert_eq!(found, Some(tail.len() as u64), "{side:?}");
            assert!(bytewise.held() <= 2 * rest.len() + 2, "the bytes ruled out are let go");
            let pieces = bytewise.rest();
            assert_eq!(pieces.first().map(|p| p.0), Some(tail.len()), "each byte keeps its mark");
            // Confirmed by the last header, before its payload.
            assert_eq!(joined(pieces), rest[..rest.len() - 1]);
        }
    }

    /// Frames of the other side's masking never match; fewer frames than
    /// confirm are taken only at the end, and only if they end with the
    /// stream.
    #[test]
    fn masking_decides_and_a_short_chain_waits_for_the_end() {
        let server = frame(OpCode::Text, None, b"hello");
        let mut r = Resync::new(Side::Client);
        r.push(&server.repeat(CONFIRMING_HEADERS), 0);
        assert_eq!(r.boundary(true), None);

        let mut r = Resync::new(Side::Upstream);
        r.push(&server, 0);
        assert_eq!(r.boundary(false), None);
        assert_eq!(r.boundary(true), Some(0));

        let mut r = Resync::new(Side::Upstream);
        r.push(&server[..server.len() - 1], 0);
        assert_eq!(r.boundary(true), None);
    }

    /// In a masked binary payload of bytes counting up, chains of two and
    /// three plausible headers occur by chance (a first version took two):
    /// the boundary is still the frame after it.
    #[test]
    fn chance_chains_in_a_payload_are_not_taken() {
        let big: Vec<u8> = (0..5000u32).map(|i| (i % 251) as u8).collect();
        let cut = frame(OpCode::Binary, KEY, &big);
        let close = frame(OpCode::Close, KEY, &[0x03, 0xe8, b'b', b'y', b'e']);
        for at in [1460, 2920, 37, 4000] {
            let mut r = Resync::new(Side::Client);
            r.push(&cut[at..], 0);
            r.push(&close, 1);
            assert_eq!(r.boundary(false), None, "cut at {at}");
            assert_eq!(r.boundary(true), Some((cut.len() - at) as u64), "cut at {at}");
            assert_eq!(r.rest(), [(1, close.clone())]);
        }
    }

    /// A continuation, a long ping, an unminimal length, RSV1 on a control
    /// frame: none starts the chain.
    #[test]
    fn implausible_headers_are_passed_over() {
        let good = [frame(OpCode::Text, None, b"a"), frame(OpCode::Text, None, b"b")].concat();
        let unminimal = [0x81, 126, 0, 5, b'h', b'e', b'l', b'l', b'o'];
        let rsv1_ping = [0xc9, 0];
        let long_ping = [0x89, 126, 0, 200];
        for bad in [&frame(OpCode::Continuation, None, b"c")[..], &unminimal, &rsv1_ping, &long_ping] {
            let mut r = Resync::new(Side::Upstream);
            r.push(&[bad, &good].concat(), 0);
            // At the end: a byte inside `bad` may claim a payload longer
            // than what follows, which only the end rules out.
            assert_eq!(r.boundary(true), Some(bad.len() as u64), "{bad:?}");
        }
    }

    /// A header that claims more than the bound can hold does not start a
    /// chain, so the bytes held stay bounded.
    #[test]
    fn a_frame_longer_than_the_bound_starts_no_chain() {
        let mut r = Resync::new(Side::Upstream);
        r.push(&[0x82, 127, 0, 0, 0, 0, 1, 0, 0, 0], 0);
        r.push(&[0x20; 100], 1);
        let good = confirming(None);
        r.push(&good, 2);
        assert_eq!(r.boundary(false), Some(110));
        assert_eq!(r.rest(), [(2, good)]);
    }
}
