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

pub use crate::handshake::{
    DeflateOffer, DeflateParams, DeflateServerConfig, Negotiation, PERMESSAGE_DEFLATE as EXTENSION_NAME,
};
pub use window::WindowAudit;

mod window;

/// The four bytes a sender removes from the end of each compressed message
/// and a receiver appends before inflating (RFC 7692 §7.2.1, §7.2.2).
pub const TAIL: [u8; 4] = [0x00, 0x00, 0xff, 0xff];

/// Inflated bytes are produced in pieces of this size.
const SCRATCH: usize = 16 << 10;

/// The smallest window zlib (and so `flate2`) takes for raw DEFLATE. RFC
/// 7692 allows 8 (§7.1.2.1); zlib's deflate never refers further back than
/// 2^w − 262 bytes, so a zlib sender "with 8 bits" (which zlib makes 9)
/// stays within 250 bytes, inside an 8-bit window. A receiver of an agreed
/// 8-bit window inflates with 9 bits; its [`WindowAudit`] holds the sender
/// to 256 bytes.
pub const MIN_ZLIB_WINDOW_BITS: u8 = 9;

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
    /// The window inflated with (9–15).
    window_bits: u8,
    /// The last call ended exactly where a block with BFINAL set ended
    /// (§7.2.3.4): the message's DEFLATE stream is complete, and the
    /// `00 00 ff ff` tail must not be read as the start of another block.
    stream_ended: bool,
    /// The sender starts each message with an empty window.
    no_context_takeover: bool,
    max_message_len: u64,
    scratch: Vec<u8>,
    state: MessageState,
    message_len: u64,
    context_lost: bool,
    /// The distance check for a window under 15 bits (RFC 7692 §7.1.2).
    audit: Option<Box<WindowAudit>>,
    /// What the audit had counted as produced when the current message
    /// began: its count minus this is an offset in the message's data.
    audit_base: u64,
    /// The appended tail completed a final block: the inflater dropped the
    /// rest of the tail, and the audit must not read it either.
    tail_ended: bool,
}

impl std::fmt::Debug for Inflater {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Inflater")
            .field("no_context_takeover", &self.no_context_takeover)
            .field("window_bits", &self.window_bits)
            .field("max_message_len", &self.max_message_len)
            .field("message_len", &self.message_len)
            .field("context_lost", &self.context_lost)
            .finish_non_exhaustive()
    }
}

impl Inflater {
    /// An inflater for a sender that does (`no_context_takeover == false`)
    /// or does not keep its window between messages, allowing each message
    /// to inflate to at most `max_message_len` bytes, with the largest
    /// window (15 bits).
    pub fn new(no_context_takeover: bool, max_message_len: u64) -> Inflater {
        Inflater::with_window_bits(no_context_takeover, 15, max_message_len)
    }

    /// As [`Inflater::new`], with the window the sender agreed to
    /// ([`DeflateParams::max_window_bits`], RFC 7692 §7.1.2). 8 bits inflate
    /// with 9 (see [`MIN_ZLIB_WINDOW_BITS`]); values above 15 with 15.
    ///
    /// A window under 15 bits is also audited ([`WindowAudit`]): a
    /// message that refers back further than 2^`window_bits` bytes fails
    /// with [`Error::BeyondAgreedWindow`] (RFC 7692 §7.1.2), as it would in
    /// a receiver that keeps only that window. zlib-rs, our backend, keeps
    /// a 32 KiB window whatever it is asked for, and the C zlib fails such
    /// a reference only when it also reaches past the current call's
    /// output, so neither can be relied on for it.
    pub fn with_window_bits(no_context_takeover: bool, window_bits: u8, max_message_len: u64) -> Inflater {
        let agreed = window_bits.clamp(8, 15);
        let window_bits = window_bits.clamp(MIN_ZLIB_WINDOW_BITS, 15);
        Inflater {
            audit: (agreed < 15).then(|| Box::new(WindowAudit::new(agreed))),
            audit_base: 0,
            decompress: Decompress::new_with_window_bits(false, window_bits),
            window_bits,
            stream_ended: false,
            no_context_takeover,
            max_message_len,
            scratch: Vec::new(),
            state: MessageState::Idle,
            message_len: 0,
            context_lost: false,
            tail_ended: false,
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
        self.audit_base = self.audit.as_ref().map_or(0, |a| a.produced());
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
        // Faults are reported in the order of the data: the audit reads
        // ahead first, and when it finds a reference beyond the agreed
        // window, only the data before that reference is inflated and
        // handed on; a corrupt spot or the size limit before it is reported
        // instead. So what the sink sees before an error, and which error
        // it is, do not depend on how the message was cut.
        let beyond = match self.audit(compressed) {
            Ok(()) => None,
            Err(_) => self.audit.as_ref().map(|a| a.produced().saturating_sub(self.audit_base)),
        };
        let r = self.run(compressed, false, beyond, sink);
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
        // §7.2.3.4: a message whose data ends with a final block (BFINAL,
        // as `Z_FINISH` senders make) is a complete DEFLATE stream; the tail
        // a receiver appends would start a stored block that never ends and
        // swallow the next message. The stream is over: nothing to flush.
        let r = if std::mem::take(&mut self.stream_ended) {
            Ok(())
        } else {
            self.run(&TAIL, true, None, sink).and_then(|()| match std::mem::take(&mut self.tail_ended) {
                false => self.audit(&TAIL),
                true => {
                    if let Some(audit) = &mut self.audit {
                        audit.reset();
                    }
                    Ok(())
                }
            })
        };
        self.state = MessageState::Idle;
        match r {
            Ok(()) => {
                // §7.1.1: without context takeover the next message starts
                // with an empty window.
                if self.no_context_takeover {
                    self.decompress.reset(false);
                    if let Some(audit) = &mut self.audit {
                        audit.reset();
                    }
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
        self.stream_ended = false;
        // The window is lost; a sender without context takeover does not
        // need it for the next message.
        self.decompress.reset(false);
        if let Some(audit) = &mut self.audit {
            audit.reset();
        }
        if !self.no_context_takeover {
            self.context_lost = true;
        }
    }

    /// Runs the window audit, when there is one, over bytes the inflater
    /// has read without error.
    fn audit(&mut self, compressed: &[u8]) -> Result<(), Error> {
        match &mut self.audit {
            Some(audit) => audit.feed(compressed),
            None => Ok(()),
        }
    }

    /// Inflates `input` into the sink. `beyond`: the offset in the
    /// message's data of a reference beyond the agreed window; the data
    /// stops there with [`Error::BeyondAgreedWindow`] (unless an earlier
    /// fault stops it first).
    fn run(
        &mut self,
        mut input: &[u8],
        tail: bool,
        beyond: Option<u64>,
        sink: &mut dyn FnMut(&[u8]),
    ) -> Result<(), Error> {
        if self.scratch.is_empty() {
            self.scratch = vec![0; SCRATCH];
        }
        if !input.is_empty() && !tail {
            self.stream_ended = false;
        }
        loop {
            let (in_before, out_before) = (self.decompress.total_in(), self.decompress.total_out());
            let flush = if tail { FlushDecompress::Sync } else { FlushDecompress::None };
            let status = self.decompress.decompress(input, &mut self.scratch, flush);
            let used = (self.decompress.total_in() - in_before) as usize;
            let made = (self.decompress.total_out() - out_before) as usize;
            input = &input[used..];
            // The nearer of the two bounds decides. The data may reach the
            // size limit exactly, but not the start of the reference beyond
            // the window.
            let (bound, error, reached) = match beyond {
                Some(at) if at <= self.max_message_len => (at, Error::BeyondAgreedWindow, true),
                _ => (self.max_message_len, Error::InflatedTooLarge, false),
            };
            let room = bound.saturating_sub(self.message_len);
            if made as u64 > room || (reached && made as u64 == room) {
                sink(&self.scratch[..room as usize]);
                self.message_len = bound;
                return Err(error);
            }
            if made > 0 {
                self.message_len += made as u64;
                sink(&self.scratch[..made]);
            }
            // What inflated before a corrupt spot went to the sink first, so
            // that the data before the error is the same however the
            // message was cut into frames and reads (a reader checking
            // UTF-8 sees the same bytes either way).
            let status = status.map_err(|_| Error::InflateFailed)?;
            if status == Status::StreamEnd {
                // §7.2.3.4: a block with BFINAL set ends the DEFLATE stream;
                // anything after it in the message starts a new one (RFC
                // 7692's example sends one 0x00 octet, which the tail turns
                // into an empty stored block), and the tail right after it
                // is not read. A sender that finished its stream starts the
                // next one with an empty window (zlib's `deflateReset`), so
                // the window is not kept.
                self.decompress.reset(false);
                self.tail_ended = tail;
                if tail || input.is_empty() {
                    self.stream_ended = !tail;
                    return match beyond {
                        Some(_) => Err(Error::BeyondAgreedWindow),
                        None => Ok(()),
                    };
                }
                continue;
            }
            if (input.is_empty() && made < self.scratch.len()) || (used == 0 && made == 0) {
                // All of it inflated: a reference beyond the window lies at
                // the very end of what was produced.
                return match beyond {
                    Some(_) => Err(Error::BeyondAgreedWindow),
                    None => Ok(()),
                };
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

    /// Appends `message` compressed as one complete DEFLATE stream, its last
    /// block with BFINAL set (`Z_FINISH`, as `deflateRaw` senders do;
    /// RFC 7692 §7.2.3.4), then starts a new stream with an empty window.
    /// With `rfc_padding`, one 0x00 octet follows, as §7.2.3.4's example
    /// sends it.
    pub fn compress_message_final(&mut self, message: &[u8], rfc_padding: bool, out: &mut Vec<u8>) {
        let mut input = message;
        loop {
            out.reserve(input.len() / 2 + 64);
            let before = self.compress.total_in();
            let status = self.compress.compress_vec(input, out, FlushCompress::Finish);
            input = &input[(self.compress.total_in() - before) as usize..];
            if matches!(status, Ok(flate2::Status::StreamEnd)) || status.is_err() {
                break;
            }
        }
        if rfc_padding {
            out.push(0x00);
        }
        self.compress.reset();
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

    /// Inflates `wire` as one message in pieces of `split`, keeping what
    /// the sink was handed even when it fails.
    fn inflate_keeping(inflater: &mut Inflater, wire: &[u8], split: usize) -> (Vec<u8>, Result<(), Error>) {
        let mut out = Vec::new();
        inflater.begin_message();
        for piece in wire.chunks(split.max(1)) {
            if let Err(e) = inflater.inflate(piece, &mut |b| out.extend_from_slice(b)) {
                return (out, Err(e));
            }
        }
        let r = inflater.end_message(&mut |b| out.extend_from_slice(b)).map(|_| ());
        (out, r)
    }

    /// Faults in the order of the data (RFC 7692 §7.1.2): a reference
    /// beyond the agreed window stops the data where that reference
    /// starts, whatever follows it (corrupt data here), however the
    /// message is cut; the sink gets exactly the bytes before it. In a
    /// second message with context takeover too (where the offset is
    /// counted from the message's own start).
    #[test]
    fn the_data_stops_at_the_reference_beyond_the_window_however_it_is_cut() {
        // 600 bytes that do not repeat within themselves, then their first
        // 100 again: a reference 600 back, beyond 9 bits (512).
        let head: Vec<u8> = (0..600u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
        let message = [head.clone(), head[..100].to_vec()].concat();
        let mut wide = Deflater::with_window_bits(6, true, 15);
        let mut wire = Vec::new();
        wide.compress_message(&message, &mut wire);
        // Then a block of the reserved type 11: corrupt.
        let corrupt = [wire.clone(), vec![0x07, 0xff, 0xff]].concat();
        let mut stops = Vec::new();
        for data in [&wire, &corrupt] {
            for split in [usize::MAX, 7, 1] {
                let mut inflater = Inflater::with_window_bits(true, 9, 1 << 20);
                let (out, r) = inflate_keeping(&mut inflater, data, split);
                assert_eq!(r, Err(Error::BeyondAgreedWindow), "pieces of {split}");
                // zlib may write a literal or two of the repeat before the
                // copy: the data stops where the copy starts.
                assert!(message.starts_with(&out) && out.len() >= head.len(), "pieces of {split}: {}", out.len());
                assert!(out.len() < head.len() + 3, "the copy's bytes were handed on: {}", out.len());
                stops.push(out.len());
            }
        }
        assert!(stops.windows(2).all(|w| w[0] == w[1]), "the same stop however cut: {stops:?}");
        // The second message of a stream with context takeover refers back
        // into the first: it stops at its own start.
        let mut keeping = Deflater::with_window_bits(6, false, 15);
        let (mut first, mut second) = (Vec::new(), Vec::new());
        keeping.compress_message(&head, &mut first);
        keeping.compress_message(&head[..100], &mut second);
        for split in [usize::MAX, 5, 1] {
            let mut inflater = Inflater::with_window_bits(false, 9, 1 << 20);
            assert_eq!(inflate_keeping(&mut inflater, &first, split), (head.clone(), Ok(())));
            let (out, r) = inflate_keeping(&mut inflater, &second, split);
            assert_eq!(r, Err(Error::BeyondAgreedWindow), "pieces of {split}");
            assert!(head.starts_with(&out) && out.len() < 3, "pieces of {split}: {} bytes handed on", out.len());
        }
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

    /// The input (RFC 7692 §7.2.3.4): from the server, with context
    /// takeover, "first" as a complete raw DEFLATE stream (BFINAL set, no
    /// trailing 0x00 octet), then "second". The first must not spoil the
    /// second.
    #[test]
    fn a_final_block_does_not_spoil_the_next_message() {
        let first = [0x4b, 0xcb, 0x2c, 0x2a, 0x2e, 0x01, 0x00];
        let second = [0x2a, 0x4e, 0x4d, 0xce, 0xcf, 0x4b, 0x01, 0x00];
        for split in [1, 3, 100] {
            let mut inflater = Inflater::new(false, 1 << 20);
            assert_eq!(inflate_all(&mut inflater, &first, split), Ok(Some(b"first".to_vec())), "{split}");
            assert_eq!(inflate_all(&mut inflater, &second, split), Ok(Some(b"second".to_vec())), "{split}");
            assert_eq!(inflate_all(&mut inflater, &first, split), Ok(Some(b"first".to_vec())), "{split}");
        }
    }

    /// How a sender ends a message: sync flush (§7.2.1), a final block
    /// (§7.2.3.4), or a final block and the RFC's 0x00 octet.
    #[derive(Debug, Clone, Copy)]
    enum Ending {
        Sync,
        Final,
        FinalPadded,
    }

    fn compress(deflater: &mut Deflater, ending: Ending, message: &[u8]) -> Vec<u8> {
        let mut wire = Vec::new();
        match ending {
            Ending::Sync => deflater.compress_message(message, &mut wire),
            Ending::Final => deflater.compress_message_final(message, false, &mut wire),
            Ending::FinalPadded => deflater.compress_message_final(message, true, &mut wire),
        }
        wire
    }

    proptest::proptest! {
        /// Any mix of message endings, with and without context takeover,
        /// at every window size, cut anywhere: every message comes back.
        #[test]
        fn every_ending_reads_back(
            no_takeover in proptest::prelude::any::<bool>(),
            window_bits in 8u8..=15,
            messages in proptest::collection::vec(
                (0u8..3, proptest::collection::vec(0u8..4, 0..600)), 1..6),
            split in 1usize..50,
        ) {
            let mut deflater = Deflater::with_window_bits(6, no_takeover, window_bits);
            let mut inflater = Inflater::with_window_bits(no_takeover, window_bits, 1 << 20);
            for (ending, message) in messages {
                let ending = [Ending::Sync, Ending::Final, Ending::FinalPadded][usize::from(ending)];
                let wire = compress(&mut deflater, ending, &message);
                proptest::prop_assert_eq!(inflate_all(&mut inflater, &wire, split), Ok(Some(message)), "{:?}", ending);
            }
        }
    }

    /// RFC 7692 §7.1.2: a stream within a 10-bit window reads with 10
    /// bits; one that refers 3000 bytes back fails with
    /// [`Error::BeyondAgreedWindow`] (zlib-rs alone would read it: it keeps
    /// 32 KiB whatever it is asked for), and reads with 15 bits.
    #[test]
    fn the_agreed_window_is_the_one_inflated_with() {
        let words: Vec<u8> = (0..3000u32).map(|i| b'a' + ((i.wrapping_mul(2_654_435_761) >> 16) % 26) as u8).collect();
        let message = [words.clone(), words].concat();
        let mut narrow = Deflater::with_window_bits(9, true, 10);
        let mut wire = Vec::new();
        narrow.compress_message(&message, &mut wire);
        let mut inflater = Inflater::with_window_bits(true, 10, 1 << 20);
        assert!(inflate_all(&mut inflater, &wire, 700) == Ok(Some(message.clone())), "10 bits with 10 bits");
        let mut wide = Deflater::with_window_bits(9, true, 15);
        let mut wire = Vec::new();
        wide.compress_message(&message, &mut wire);
        assert!(wire.len() < 2500, "the repeat is a back reference: {}", wire.len());
        for (bits, split) in [(10, 700), (11, 1), (10, usize::MAX)] {
            let mut inflater = Inflater::with_window_bits(true, bits, 1 << 20);
            let got = inflate_all(&mut inflater, &wire, split).map(|o| o.map(|v| v.len()));
            assert_eq!(got, Err(Error::BeyondAgreedWindow), "{bits} bits, pieces of {split}");
            // Without context takeover the next message is read afresh.
            assert!(
                inflate_all(&mut inflater, &[0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00], 3)
                    == Ok(Some(b"Hello".to_vec()))
            );
        }
        // With context takeover the window is gone with the message.
        let mut keeping = Inflater::with_window_bits(false, 11, 1 << 20);
        assert_eq!(inflate_all(&mut keeping, &wire, 64), Err(Error::BeyondAgreedWindow));
        assert!(keeping.context_lost());
        // 3000 bytes back is within 12 bits (4096 bytes) and 15.
        for bits in [12, 15] {
            let mut inflater = Inflater::with_window_bits(true, bits, 1 << 20);
            assert!(inflate_all(&mut inflater, &wire, 64) == Ok(Some(message.clone())), "{bits} bits");
        }
        // Data that refers back before its own start is corrupt, whatever
        // the window: a back reference as the first symbol.
        for bits in [10, 15] {
            let mut inflater = Inflater::with_window_bits(true, bits, 1 << 20);
            let far = [0x02, 0x02, 0x00];
            assert_eq!(inflate_all(&mut inflater, &far, 10), Err(Error::InflateFailed), "{bits} bits");
        }
    }

    /// RFC 7692 §7.1.1.1, §7.1.1.2: a sender that agreed not to keep its
    /// window, but refers back into its last message, cannot be read.
    #[test]
    fn a_sender_that_keeps_its_window_against_the_agreement_fails() {
        let words: Vec<u8> = (0..3000u32).map(|i| b'a' + ((i.wrapping_mul(2_654_435_761) >> 16) % 26) as u8).collect();
        let mut deflater = Deflater::new(6, false);
        let mut inflater = Inflater::new(true, 1 << 20);
        let mut first = Vec::new();
        deflater.compress_message(&words, &mut first);
        assert!(inflate_all(&mut inflater, &first, 100) == Ok(Some(words.clone())));
        let mut second = Vec::new();
        deflater.compress_message(&words, &mut second);
        assert_eq!(inflate_all(&mut inflater, &second, 100), Err(Error::InflateFailed));
    }
}
