//! permessage-deflate (RFC 7692), for readers of a stream: the parameters a
//! server agreed to, and an [`Inflater`] per direction that turns compressed
//! messages back into their data, with a cap on how much one message may
//! inflate to. A [`Deflater`] does the sender's half (tests, fuzzing, load
//! tools).
//!
//! The DEFLATE codec itself is `flate2` (zlib-rs backend); this module holds
//! the rules of RFC 7692 around it: which parameters are valid (§7.1), the
//! `00 00 ff ff` tail a sender strips and a receiver appends (§7.2.1,
//! §7.2.2), when the sliding window is kept between messages (§7.1.1) and a
//! final block inside a message (§7.2.3.4).
//!
//! Nothing is sized by the wire: the inflater writes through one fixed
//! scratch buffer and hands the output to a callback in pieces.

use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};

use crate::error::Error;
use crate::handshake::Extension;

/// The extension token (RFC 7692 §7).
pub const EXTENSION_NAME: &str = "permessage-deflate";

/// The four bytes a sender removes from the end of each compressed message
/// and a receiver appends before inflating (RFC 7692 §7.2.1, §7.2.2).
pub const TAIL: [u8; 4] = [0x00, 0x00, 0xff, 0xff];

/// Inflated bytes are produced in pieces of this size.
const SCRATCH: usize = 16 << 10;

/// The parameters a server agreed to in its `Sec-WebSocket-Extensions`
/// answer (RFC 7692 §7.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DeflateParams {
    /// The server starts each message with an empty window (§7.1.1.1).
    pub server_no_context_takeover: bool,
    /// The client starts each message with an empty window (§7.1.1.2).
    pub client_no_context_takeover: bool,
    /// The largest LZ77 window the server compresses with, 8–15 (§7.1.2.1).
    pub server_max_window_bits: Option<u8>,
    /// The largest LZ77 window the client compresses with, 8–15 (§7.1.2.2).
    pub client_max_window_bits: Option<u8>,
}

impl DeflateParams {
    /// The agreed parameters from the extensions a server's answer lists:
    /// `Ok(None)` when permessage-deflate is not among them.
    ///
    /// RFC 7692 §7.1: the server accepts at most one element; each
    /// parameter appears at most once; the two `*_no_context_takeover`
    /// parameters have no value; `*_max_window_bits` in a response carry a
    /// value from 8 to 15; any other parameter makes the answer invalid.
    pub fn from_response(extensions: &[Extension<'_>]) -> Result<Option<DeflateParams>, Error> {
        let mut found = None;
        for ext in extensions.iter().filter(|e| e.name.eq_ignore_ascii_case(EXTENSION_NAME)) {
            if found.is_some() {
                return Err(Error::InvalidDeflateParams);
            }
            found = Some(Self::from_element(ext)?);
        }
        Ok(found)
    }

    fn from_element(ext: &Extension<'_>) -> Result<DeflateParams, Error> {
        let mut params = DeflateParams::default();
        let mut seen = [false; 4];
        for p in &ext.params {
            let name = p.name.to_ascii_lowercase();
            let (slot, index) = match name.as_str() {
                "server_no_context_takeover" => (None, 0),
                "client_no_context_takeover" => (None, 1),
                "server_max_window_bits" => (Some(&mut params.server_max_window_bits), 2),
                "client_max_window_bits" => (Some(&mut params.client_max_window_bits), 3),
                _ => return Err(Error::InvalidDeflateParams),
            };
            if std::mem::replace(&mut seen[index], true) {
                return Err(Error::InvalidDeflateParams);
            }
            match slot {
                None if p.value.is_some() => return Err(Error::InvalidDeflateParams),
                None => {}
                Some(bits) => *bits = Some(window_bits(p.value.as_deref())?),
            }
        }
        params.server_no_context_takeover = seen[0];
        params.client_no_context_takeover = seen[1];
        Ok(params)
    }

    /// Whether the sender in `role` starts each message with an empty window.
    pub fn no_context_takeover(&self, sender: crate::Role) -> bool {
        match sender {
            crate::Role::Client => self.client_no_context_takeover,
            crate::Role::Server => self.server_no_context_takeover,
        }
    }

    /// The window the sender in `role` compresses with (15 when not limited).
    pub fn max_window_bits(&self, sender: crate::Role) -> u8 {
        match sender {
            crate::Role::Client => self.client_max_window_bits,
            crate::Role::Server => self.server_max_window_bits,
        }
        .unwrap_or(15)
    }
}

/// §7.1.2: "a decimal integer value without leading zeroes between 8 to 15
/// inclusive".
fn window_bits(value: Option<&str>) -> Result<u8, Error> {
    match value {
        Some(v) if (1..=2).contains(&v.len()) && !v.starts_with('0') && v.bytes().all(|b| b.is_ascii_digit()) => {
            match v.parse::<u8>() {
                Ok(n @ 8..=15) => Ok(n),
                _ => Err(Error::InvalidDeflateParams),
            }
        }
        _ => Err(Error::InvalidDeflateParams),
    }
}

/// What became of one compressed message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum MessageState {
    /// Between messages.
    Idle,
    /// Inflating.
    Inflating,
    /// Given up on (an error was returned once); the rest is skipped.
    Abandoned,
}

/// Inflates the compressed messages of one direction of a connection
/// (RFC 7692 §7.2.2).
///
/// Feed each message's payload, unmasked and in order, with
/// [`Inflater::inflate`] between [`Inflater::begin_message`] and
/// [`Inflater::end_message`]. The inflated data goes to a callback in
/// pieces of at most 16 KiB. A message that fails (corrupt data, or more
/// than the cap) returns its error once; the rest of it is skipped. When
/// the sender keeps its window between messages, a failed message leaves
/// the inflater without the window the next message refers to:
/// [`Inflater::context_lost`] then says so and later messages are skipped
/// rather than misread.
pub struct Inflater {
    decompress: Decompress,
    /// The sender starts each message with an empty window.
    no_context_takeover: bool,
    max_message_len: u64,
    scratch: Vec<u8>,
    state: MessageState,
    message_len: u64,
    context_lost: bool,
}

impl std::fmt::Debug for Inflater {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Inflater")
            .field("no_context_takeover", &self.no_context_takeover)
            .field("max_message_len", &self.max_message_len)
            .field("message_len", &self.message_len)
            .field("context_lost", &self.context_lost)
            .finish_non_exhaustive()
    }
}

impl Inflater {
    /// An inflater for a sender that does (`no_context_takeover == false`)
    /// or does not keep its window between messages, allowing each message
    /// to inflate to at most `max_message_len` bytes.
    ///
    /// It always inflates with the largest window (15 bits): a stream
    /// compressed with a smaller window reads the same.
    pub fn new(no_context_takeover: bool, max_message_len: u64) -> Inflater {
        Inflater {
            decompress: Decompress::new(false),
            no_context_takeover,
            max_message_len,
            scratch: Vec::new(),
            state: MessageState::Idle,
            message_len: 0,
            context_lost: false,
        }
    }

    /// Whether a failed message took the shared window with it, so that no
    /// later message of this direction can be read.
    pub fn context_lost(&self) -> bool {
        self.context_lost
    }

    /// Bytes inflated so far for the current message.
    pub fn message_len(&self) -> u64 {
        self.message_len
    }

    /// Starts a compressed message. Returns `false` (and the message is
    /// skipped) when the context was lost earlier.
    pub fn begin_message(&mut self) -> bool {
        self.message_len = 0;
        if self.context_lost {
            self.state = MessageState::Abandoned;
            return false;
        }
        self.state = MessageState::Inflating;
        true
    }

    /// Inflates the next piece of the current message's payload.
    pub fn inflate(&mut self, compressed: &[u8], sink: &mut dyn FnMut(&[u8])) -> Result<(), Error> {
        if self.state != MessageState::Inflating {
            return Ok(());
        }
        let r = self.run(compressed, false, sink);
        if r.is_err() {
            self.abandon();
        }
        r
    }

    /// Ends the current message: appends the `00 00 ff ff` tail and flushes
    /// what is left. Returns the inflated length, or `None` when the
    /// message was skipped.
    pub fn end_message(&mut self, sink: &mut dyn FnMut(&[u8])) -> Result<Option<u64>, Error> {
        let state = std::mem::replace(&mut self.state, MessageState::Idle);
        if state != MessageState::Inflating {
            return Ok(None);
        }
        self.state = MessageState::Inflating;
        let r = self.run(&TAIL, true, sink);
        self.state = MessageState::Idle;
        match r {
            Ok(()) => {
                // §7.1.1: without context takeover the next message starts
                // with an empty window.
                if self.no_context_takeover {
                    self.decompress.reset(false);
                }
                Ok(Some(self.message_len))
            }
            Err(e) => {
                self.abandon();
                self.state = MessageState::Idle;
                Err(e)
            }
        }
    }

    fn abandon(&mut self) {
        self.state = MessageState::Abandoned;
        // The window is lost; a sender without context takeover does not
        // need it for the next message.
        self.decompress.reset(false);
        if !self.no_context_takeover {
            self.context_lost = true;
        }
    }

    fn run(&mut self, mut input: &[u8], tail: bool, sink: &mut dyn FnMut(&[u8])) -> Result<(), Error> {
        if self.scratch.is_empty() {
            self.scratch = vec![0; SCRATCH];
        }
        loop {
            let (in_before, out_before) = (self.decompress.total_in(), self.decompress.total_out());
            let flush = if tail { FlushDecompress::Sync } else { FlushDecompress::None };
            let status =
                self.decompress.decompress(input, &mut self.scratch, flush).map_err(|_| Error::InflateFailed)?;
            let used = (self.decompress.total_in() - in_before) as usize;
            let made = (self.decompress.total_out() - out_before) as usize;
            input = &input[used..];
            if made > 0 {
                let room = self.max_message_len.saturating_sub(self.message_len);
                if made as u64 > room {
                    sink(&self.scratch[..room as usize]);
                    self.message_len = self.max_message_len;
                    return Err(Error::InflatedTooLarge);
                }
                self.message_len += made as u64;
                sink(&self.scratch[..made]);
            }
            if status == Status::StreamEnd {
                // §7.2.3.4: a block with BFINAL set ends the DEFLATE stream;
                // anything after it in the message starts a new one, and
                // the tail after it is padding.
                self.decompress.reset(false);
                if tail || input.is_empty() {
                    return Ok(());
                }
                continue;
            }
            if (input.is_empty() && made < self.scratch.len()) || (used == 0 && made == 0) {
                return Ok(());
            }
        }
    }
}

/// Compresses messages the way a permessage-deflate sender does (RFC 7692
/// §7.2.1): each message ends with a sync flush whose `00 00 ff ff` tail is
/// removed.
pub struct Deflater {
    compress: Compress,
    no_context_takeover: bool,
}

impl std::fmt::Debug for Deflater {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Deflater").field("no_context_takeover", &self.no_context_takeover).finish_non_exhaustive()
    }
}

impl Deflater {
    /// A compressor at `level` (0–9) that does or does not keep its window
    /// between messages. It uses a 15-bit window.
    pub fn new(level: u32, no_context_takeover: bool) -> Deflater {
        Deflater::with_window_bits(level, no_context_takeover, 15)
    }

    /// As [`Deflater::new`], with a `window_bits` window (9–15; zlib cannot
    /// make raw DEFLATE with 8 bits, so 8 compresses with 9, which only a
    /// peer that agreed to 8 would notice).
    pub fn with_window_bits(level: u32, no_context_takeover: bool, window_bits: u8) -> Deflater {
        let compress = Compress::new_with_window_bits(Compression::new(level.min(9)), false, window_bits.clamp(9, 15));
        Deflater { compress, no_context_takeover }
    }

    /// Appends the compressed form of `message` to `out`.
    pub fn compress_message(&mut self, message: &[u8], out: &mut Vec<u8>) {
        let start = out.len();
        let mut input = message;
        loop {
            out.reserve(input.len() / 2 + 64);
            let before = self.compress.total_in();
            // Compressing into a Vec's spare capacity cannot fail.
            let _ = self.compress.compress_vec(input, out, FlushCompress::Sync);
            input = &input[(self.compress.total_in() - before) as usize..];
            // Done when everything went in and the flush fit in the room.
            if input.is_empty() && out.len() < out.capacity() {
                break;
            }
        }
        if out.len() >= start + 4 && out[out.len() - 4..] == TAIL {
            out.truncate(out.len() - 4);
        }
        // §7.2.3.6: an empty message is sent as the single byte 0x00 (an
        // empty stored block, less the tail). zlib emits nothing at all for
        // a flush with no new input, and an empty payload would make the
        // receiver's appended tail the start of a block that never ends,
        // spoiling every later message of the connection.
        if out.len() == start {
            out.push(0x00);
        }
        if self.no_context_takeover {
            self.compress.reset();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::handshake::parse_extensions;

    fn params(header: &str) -> Result<Option<DeflateParams>, Error> {
        let mut exts = Vec::new();
        parse_extensions(header.as_bytes(), &mut exts)?;
        DeflateParams::from_response(&exts)
    }

    #[test]
    fn response_parameters_follow_section_7_1() {
        assert_eq!(params("x-other"), Ok(None));
        assert_eq!(params("permessage-deflate"), Ok(Some(DeflateParams::default())));
        let p = params("permessage-deflate; server_no_context_takeover; client_max_window_bits=9")
            .ok()
            .flatten()
            .unwrap_or_default();
        assert!(p.server_no_context_takeover && !p.client_no_context_takeover);
        assert_eq!((p.client_max_window_bits, p.max_window_bits(crate::Role::Server)), (Some(9), 15));
        assert!(p.no_context_takeover(crate::Role::Server));
        let p = params("permessage-deflate; server_max_window_bits=\"10\"").ok().flatten().unwrap_or_default();
        assert_eq!(p.server_max_window_bits, Some(10));
        for bad in [
            "permessage-deflate; server_max_window_bits=7",
            "permessage-deflate; server_max_window_bits=16",
            "permessage-deflate; server_max_window_bits=08",
            "permessage-deflate; client_max_window_bits",
            "permessage-deflate; server_no_context_takeover=1",
            "permessage-deflate; server_no_context_takeover; server_no_context_takeover",
            "permessage-deflate; x=1",
            "permessage-deflate, permessage-deflate",
        ] {
            assert_eq!(params(bad), Err(Error::InvalidDeflateParams), "{bad}");
        }
    }

    fn inflate_all(inflater: &mut Inflater, wire: &[u8], split: usize) -> Result<Option<Vec<u8>>, Error> {
        let mut out = Vec::new();
        inflater.begin_message();
        for piece in wire.chunks(split.max(1)) {
            inflater.inflate(piece, &mut |b| out.extend_from_slice(b))?;
        }
        Ok(inflater.end_message(&mut |b| out.extend_from_slice(b))?.map(|n| {
            assert_eq!(n, out.len() as u64);
            out
        }))
    }

    #[test]
    fn rfc_7692_examples() {
        // §7.2.3.1: "Hello" compressed, twice with context takeover: the
        // second message refers back to the first.
        let mut inflater = Inflater::new(false, 1 << 20);
        let first = [0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00];
        assert_eq!(inflate_all(&mut inflater, &first, 3), Ok(Some(b"Hello".to_vec())));
        let second = [0xf2, 0x00, 0x11, 0x00, 0x00];
        assert_eq!(inflate_all(&mut inflater, &second, 1), Ok(Some(b"Hello".to_vec())));
        // §7.2.3.3: a stored (uncompressed) block.
        let mut fresh = Inflater::new(true, 1 << 20);
        let stored = [0x00, 0x05, 0x00, 0xfa, 0xff, 0x48, 0x65, 0x6c, 0x6c, 0x6f, 0x00];
        assert_eq!(inflate_all(&mut fresh, &stored, 2), Ok(Some(b"Hello".to_vec())));
        // §7.2.3.4: a block with BFINAL set.
        let bfinal = [0xf3, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00, 0x00];
        assert_eq!(inflate_all(&mut fresh, &bfinal, 100), Ok(Some(b"Hello".to_vec())));
    }

    #[test]
    fn deflater_and_inflater_agree_with_and_without_context_takeover() {
        for no_takeover in [false, true] {
            let mut deflater = Deflater::new(6, no_takeover);
            let mut inflater = Inflater::new(no_takeover, 1 << 24);
            // Text that compresses little on its own but is all in the window
            // the second time.
            let words: Vec<u8> =
                (0..3000u32).map(|i| b'a' + ((i.wrapping_mul(2_654_435_761) >> 16) % 26) as u8).collect();
            let messages: Vec<Vec<u8>> = vec![
                Vec::new(),
                b"a".to_vec(),
                words.clone(),
                words,
                (0..200_000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect(),
            ];
            let mut lens = Vec::new();
            for m in &messages {
                let mut wire = Vec::new();
                deflater.compress_message(m, &mut wire);
                lens.push(wire.len());
                for split in [1, 7, 4096, usize::MAX] {
                    if split == 1 && wire.len() > 5000 {
                        continue;
                    }
                    let mut probe = Inflater::new(true, 1 << 24);
                    if no_takeover {
                        assert_eq!(inflate_all(&mut probe, &wire, split), Ok(Some(m.clone())));
                    }
                }
                assert_eq!(inflate_all(&mut inflater, &wire, 1000), Ok(Some(m.clone())));
            }
            // With context takeover, the repeated message costs almost nothing.
            assert_eq!(lens[3] * 4 < lens[2], !no_takeover, "{lens:?}");
        }
    }

    /// Found by the `deflate_inspect` fuzz target: with context takeover, an
    /// empty message after another one compressed to nothing.
    #[test]
    fn an_empty_message_is_one_zero_byte_even_after_another_message() {
        for no_takeover in [false, true] {
            let mut deflater = Deflater::with_window_bits(9, no_takeover, 9);
            let mut inflater = Inflater::new(no_takeover, 1 << 20);
            for m in [&b"ab"[..], b"", b"", b"c"] {
                let mut wire = Vec::new();
                deflater.compress_message(m, &mut wire);
                if m.is_empty() {
                    assert_eq!(wire, [0x00]);
                }
                assert_eq!(inflate_all(&mut inflater, &wire, 1), Ok(Some(m.to_vec())));
            }
        }
    }

    #[test]
    fn a_bomb_stops_at_the_cap_and_a_corrupt_message_is_an_error() {
        let mut deflater = Deflater::new(9, false);
        let mut wire = Vec::new();
        deflater.compress_message(&vec![0u8; 10 << 20], &mut wire);
        assert!(wire.len() < 20_000, "{}", wire.len());
        let mut inflater = Inflater::new(false, 1 << 20);
        let mut seen = 0usize;
        inflater.begin_message();
        let mut result = Ok(());
        for piece in wire.chunks(1000) {
            result = result.and(inflater.inflate(piece, &mut |b| seen += b.len()));
        }
        assert_eq!(result, Err(Error::InflatedTooLarge));
        assert_eq!(seen, 1 << 20);
        assert_eq!(inflater.end_message(&mut |_| {}), Ok(None));
        // The window went with it: later messages are skipped, not misread.
        assert!(inflater.context_lost());
        assert_eq!(inflate_all(&mut inflater, &[0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00], 10), Ok(None));

        let mut fresh = Inflater::new(true, 1 << 20);
        assert_eq!(inflate_all(&mut fresh, &[0xff, 0xff, 0xff, 0xff], 10), Err(Error::InflateFailed));
        // Without context takeover the next message is readable again.
        assert!(!fresh.context_lost());
        assert_eq!(
            inflate_all(&mut fresh, &[0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00], 10),
            Ok(Some(b"Hello".to_vec()))
        );
    }
}
