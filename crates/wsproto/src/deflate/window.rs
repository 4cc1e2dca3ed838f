//! The agreed window, checked on the wire (RFC 7692 §7.1.2.1, §7.1.2.2): a
//! sender that agreed to `*_max_window_bits = w` must never refer back more
//! than 2^w bytes.
//!
//! [`WindowAudit`] reads the DEFLATE bit stream (RFC 1951 §3.2) only as far
//! as it must to see every back-reference's distance: block headers, stored
//! lengths, the Huffman codes of dynamic blocks, and each literal/length and
//! distance symbol. It produces no output and keeps no window, so its memory
//! is fixed (about 5 KiB) whatever the stream.
//!
//! Written by hand because no decoder we can use reports distances: zlib-rs
//! (flate2's backend) keeps a 32 KiB window whatever it is asked for and
//! reads such a stream without complaint, and the C zlib only fails a
//! reference that also reaches past the current call's output. Validity of
//! the stream is the inflater's business: on data that is not DEFLATE the
//! audit stops quietly and the inflater reports [`Error::InflateFailed`].

use crate::error::Error;

/// Codes up to this many bits are decoded with one table lookup.
const FAST_BITS: u32 = 9;
/// The longest Huffman code (RFC 1951 §3.2.7).
const MAX_BITS: usize = 15;
/// Literal/length symbols (0–287) and distance symbols (0–31).
const MAX_LIT: usize = 288;
const MAX_DIST: usize = 32;

/// The order in which a dynamic block lists the code lengths of the code
/// length alphabet (RFC 1951 §3.2.7).
const CLEN_ORDER: [usize; 19] = [16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15];
/// Length symbols 257–285: base length and extra bits (RFC 1951 §3.2.5).
const LEN_BASE: [u16; 29] =
    [3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 15, 17, 19, 23, 27, 31, 35, 43, 51, 59, 67, 83, 99, 115, 131, 163, 195, 227, 258];
const LEN_EXTRA: [u8; 29] = [0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0];
/// Distance symbols 0–29: base distance and extra bits (RFC 1951 §3.2.5).
const DIST_BASE: [u16; 30] = [
    1, 2, 3, 4, 5, 7, 9, 13, 17, 25, 33, 49, 65, 97, 129, 193, 257, 385, 513, 769, 1025, 1537, 2049, 3073, 4097, 6145,
    8193, 12289, 16385, 24577,
];
const DIST_EXTRA: [u8; 30] =
    [0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13];

/// A canonical Huffman code (RFC 1951 §3.2.2) for decoding: codes of up to
/// [`FAST_BITS`] bits by table, longer ones bit by bit from the counts.
struct Huffman {
    /// How many symbols have a code of each length (index 0 unused).
    count: [u16; MAX_BITS + 1],
    /// Symbols ordered by code length, then by value.
    symbol: [u16; MAX_LIT],
    /// Indexed by the next FAST_BITS bits of the stream (LSB first):
    /// `symbol | length << 9`, or 0 for a code longer than FAST_BITS.
    fast: [u16; 1 << FAST_BITS],
}

/// What decoding one symbol found.
enum Decoded {
    /// The symbol and the length of its code in bits.
    Symbol(u16, u32),
    /// More bits are needed.
    Short,
    /// No symbol has this code: not DEFLATE.
    Invalid,
}

impl Huffman {
    fn new() -> Box<Huffman> {
        Box::new(Huffman { count: [0; MAX_BITS + 1], symbol: [0; MAX_LIT], fast: [0; 1 << FAST_BITS] })
    }

    /// Builds the code from each symbol's code length (0: unused). `false`
    /// when the lengths over-subscribe the code space, which no valid
    /// stream does.
    fn build(&mut self, lengths: &[u8]) -> bool {
        self.count = [0; MAX_BITS + 1];
        for &l in lengths {
            self.count[usize::from(l)] += 1;
        }
        self.count[0] = 0;
        let mut left: i32 = 1;
        for len in 1..=MAX_BITS {
            left = (left << 1) - i32::from(self.count[len]);
            if left < 0 {
                return false;
            }
        }
        let mut offset = [0u16; MAX_BITS + 2];
        for len in 1..=MAX_BITS {
            offset[len + 1] = offset[len] + self.count[len];
        }
        for (symbol, &l) in lengths.iter().enumerate() {
            if l != 0 {
                let at = &mut offset[usize::from(l)];
                self.symbol[usize::from(*at)] = symbol as u16;
                *at += 1;
            }
        }
        // Canonical codes: within a length, consecutive in symbol order;
        // the stream holds them most significant bit first, so the table is
        // indexed by the reversed code.
        self.fast = [0; 1 << FAST_BITS];
        let (mut code, mut index) = (0u32, 0usize);
        for len in 1..=FAST_BITS {
            for _ in 0..self.count[len as usize] {
                let reversed = (code.reverse_bits() >> (32 - len)) as usize;
                let entry = self.symbol[index] | (len as u16) << 9;
                for slot in (reversed..1 << FAST_BITS).step_by(1 << len) {
                    self.fast[slot] = entry;
                }
                code += 1;
                index += 1;
            }
            code <<= 1;
        }
        true
    }

    /// Decodes the symbol at the start of `bits` (`available` of them).
    fn decode(&self, bits: u64, available: u32) -> Decoded {
        let entry = self.fast[(bits & ((1 << FAST_BITS) - 1)) as usize];
        let len = u32::from(entry >> 9);
        if entry != 0 && len <= available {
            return Decoded::Symbol(entry & 0x1ff, len);
        }
        // Bit by bit, as zlib's `puff.c` does.
        let (mut code, mut first, mut index) = (0i32, 0i32, 0i32);
        for len in 1..=MAX_BITS as u32 {
            if len > available {
                return Decoded::Short;
            }
            code |= ((bits >> (len - 1)) & 1) as i32;
            let count = i32::from(self.count[len as usize]);
            if code - first < count {
                return Decoded::Symbol(self.symbol[(index + code - first) as usize], len);
            }
            index += count;
            first = (first + count) << 1;
            code <<= 1;
        }
        Decoded::Invalid
    }
}

/// Where in the DEFLATE stream the audit is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// At a block header (BFINAL, BTYPE).
    Header,
    /// At a stored block's LEN and NLEN.
    StoredLength,
    /// Inside a stored block, this many bytes left.
    Stored(u16),
    /// At a dynamic block's HLIT, HDIST, HCLEN.
    DynamicCounts,
    /// Reading the code length code's lengths (3 bits each).
    CodeLengthLengths,
    /// Reading the literal/length and distance code lengths.
    CodeLengths,
    /// Reading the symbols of a compressed block.
    Symbols,
    /// Not DEFLATE (the inflater reports it), or already reported.
    Stopped,
}

/// The outcome of one step.
enum Step {
    Done,
    Short,
    Invalid,
    TooFar,
}

/// Checks that a DEFLATE stream never refers back further than a window
/// of 2^`window_bits` bytes (RFC 7692 §7.1.2.1, §7.1.2.2).
///
/// Feed it the compressed bytes of one direction, in order and in pieces of
/// any size, exactly as they are inflated (with the `00 00 ff ff` tail a
/// receiver appends, RFC 7692 §7.2.2). A block with BFINAL set ends a
/// DEFLATE stream; what follows starts a new one (§7.2.3.4).
/// [`WindowAudit::reset`] starts over, as a receiver does for each message
/// when the sender does not keep its window (§7.1.1).
pub struct WindowAudit {
    window: u32,
    /// Bits not yet consumed, least significant first, and how many.
    bits: u64,
    available: u32,
    state: State,
    /// The current block has BFINAL set.
    last: bool,
    /// `lit` and `dist` hold the fixed codes (RFC 1951 §3.2.6).
    fixed: bool,
    lit: Box<Huffman>,
    dist: Box<Huffman>,
    code_lengths: Box<Huffman>,
    /// A dynamic block's code lengths as they are read.
    lengths: [u8; MAX_LIT + MAX_DIST],
    hlit: u16,
    hdist: u16,
    hclen: u16,
    read: u16,
    /// Bytes the stream has produced so far (literals, copies and stored
    /// bytes), since the start or the last reset.
    produced: u64,
    /// The longest distance seen since the start or the last reset.
    farthest: u32,
}

impl std::fmt::Debug for WindowAudit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WindowAudit")
            .field("window", &self.window)
            .field("state", &self.state)
            .field("produced", &self.produced)
            .field("farthest", &self.farthest)
            .finish_non_exhaustive()
    }
}

impl WindowAudit {
    /// An audit for a window of 2^`window_bits` bytes (`window_bits` 8–15,
    /// clamped; 15 is DEFLATE's own limit, so nothing can exceed it).
    pub fn new(window_bits: u8) -> WindowAudit {
        WindowAudit {
            window: 1 << window_bits.clamp(8, 15),
            bits: 0,
            available: 0,
            state: State::Header,
            last: false,
            fixed: false,
            lit: Huffman::new(),
            dist: Huffman::new(),
            code_lengths: Huffman::new(),
            lengths: [0; MAX_LIT + MAX_DIST],
            hlit: 0,
            hdist: 0,
            hclen: 0,
            read: 0,
            produced: 0,
            farthest: 0,
        }
    }

    /// Starts over at the beginning of a DEFLATE stream.
    pub fn reset(&mut self) {
        self.bits = 0;
        self.available = 0;
        self.state = State::Header;
        self.produced = 0;
        self.farthest = 0;
    }

    /// Bytes the stream inflates to so far (since the start or the last
    /// [`WindowAudit::reset`]), counted without inflating.
    pub fn produced(&self) -> u64 {
        self.produced
    }

    /// The longest back-reference distance seen (since the start, the
    /// last [`WindowAudit::reset`] or the last
    /// [`WindowAudit::take_farthest`]), in bytes.
    pub fn farthest(&self) -> u32 {
        self.farthest
    }

    /// [`WindowAudit::farthest`], and starts counting it afresh (for the
    /// longest distance of one message within a stream).
    pub fn take_farthest(&mut self) -> u32 {
        std::mem::take(&mut self.farthest)
    }

    /// Reads the next piece of the stream.
    ///
    /// # Errors
    /// [`Error::BeyondAgreedWindow`], once, at the first back-reference
    /// whose distance is larger than the window; the audit then stops until
    /// [`WindowAudit::reset`]. Data that is not DEFLATE also stops it,
    /// without an error (the inflater reports that).
    pub fn feed(&mut self, mut input: &[u8]) -> Result<(), Error> {
        loop {
            if self.state == State::Stopped {
                return Ok(());
            }
            while self.available <= 56
                && let Some((&byte, rest)) = input.split_first()
            {
                self.bits |= u64::from(byte) << self.available;
                self.available += 8;
                input = rest;
            }
            if let State::Stored(left) = self.state {
                // Aligned: the bit buffer holds whole bytes.
                let buffered = (self.available / 8).min(u32::from(left));
                self.consume(buffered * 8);
                let direct = input.len().min(usize::from(left) - buffered as usize);
                input = &input[direct..];
                let left = left - buffered as u16 - direct as u16;
                self.produced += u64::from(buffered) + direct as u64;
                if left == 0 {
                    self.end_block();
                } else {
                    self.state = State::Stored(left);
                    return Ok(());
                }
                continue;
            }
            match self.step() {
                Step::Done => {}
                // Every step takes at most 48 bits; with more than 56 a
                // short step would be a bug here, not in the input.
                Step::Short if input.is_empty() || self.available > 56 => return Ok(()),
                Step::Short => {}
                Step::Invalid => {
                    self.state = State::Stopped;
                    return Ok(());
                }
                Step::TooFar => {
                    self.state = State::Stopped;
                    return Err(Error::BeyondAgreedWindow);
                }
            }
        }
    }

    fn consume(&mut self, n: u32) {
        self.bits = self.bits.checked_shr(n).unwrap_or(0);
        self.available -= n;
    }

    fn peek(&self, n: u32) -> u32 {
        (self.bits & ((1u64 << n) - 1)) as u32
    }

    fn end_block(&mut self) {
        self.state = State::Header;
        if self.last {
            // The stream is over; the next starts at a byte boundary.
            self.consume(self.available % 8);
        }
    }

    /// One atomic step: consumes its bits only when it completes.
    fn step(&mut self) -> Step {
        match self.state {
            State::Header => {
                if self.available < 3 {
                    return Step::Short;
                }
                self.last = self.peek(1) == 1;
                let kind = (self.bits >> 1) & 3;
                self.consume(3);
                match kind {
                    0 => {
                        self.consume(self.available % 8);
                        self.state = State::StoredLength;
                    }
                    1 => {
                        if !self.fixed {
                            self.load_fixed();
                        }
                        self.state = State::Symbols;
                    }
                    2 => self.state = State::DynamicCounts,
                    _ => return Step::Invalid,
                }
                Step::Done
            }
            State::StoredLength => {
                if self.available < 32 {
                    return Step::Short;
                }
                let len = self.peek(16) as u16;
                let nlen = (self.bits >> 16) as u16;
                self.consume(32);
                if len != !nlen {
                    return Step::Invalid;
                }
                if len == 0 {
                    self.end_block();
                } else {
                    self.state = State::Stored(len);
                }
                Step::Done
            }
            State::Stored(_) | State::Stopped => Step::Invalid,
            State::DynamicCounts => {
                if self.available < 14 {
                    return Step::Short;
                }
                self.hlit = self.peek(5) as u16 + 257;
                self.hdist = ((self.bits >> 5) & 0x1f) as u16 + 1;
                self.hclen = ((self.bits >> 10) & 0xf) as u16 + 4;
                self.consume(14);
                if self.hlit > 286 || self.hdist > 30 {
                    return Step::Invalid;
                }
                self.lengths = [0; MAX_LIT + MAX_DIST];
                self.read = 0;
                self.state = State::CodeLengthLengths;
                Step::Done
            }
            State::CodeLengthLengths => {
                if self.available < 3 {
                    return Step::Short;
                }
                self.lengths[CLEN_ORDER[usize::from(self.read)]] = self.peek(3) as u8;
                self.consume(3);
                self.read += 1;
                if self.read == self.hclen {
                    if !self.code_lengths.build(&self.lengths[..19]) {
                        return Step::Invalid;
                    }
                    self.lengths = [0; MAX_LIT + MAX_DIST];
                    self.read = 0;
                    self.state = State::CodeLengths;
                }
                Step::Done
            }
            State::CodeLengths => self.code_length(),
            State::Symbols => self.symbol(),
        }
    }

    /// One code length of a dynamic block (RFC 1951 §3.2.7).
    fn code_length(&mut self) -> Step {
        let (symbol, used) = match self.code_lengths.decode(self.bits, self.available) {
            Decoded::Symbol(s, l) => (s, l),
            Decoded::Short => return Step::Short,
            Decoded::Invalid => return Step::Invalid,
        };
        let total = self.hlit + self.hdist;
        let at = usize::from(self.read);
        let (value, extra, base) = match symbol {
            0..=15 => (symbol as u8, 0, 1),
            16 if at == 0 => return Step::Invalid,
            16 => (self.lengths[at - 1], 2, 3),
            17 => (0, 3, 3),
            _ => (0, 7, 11),
        };
        if used + extra > self.available {
            return Step::Short;
        }
        let repeat = base + ((self.bits >> used) & ((1 << extra) - 1)) as u16;
        self.consume(used + extra);
        if self.read + repeat > total {
            return Step::Invalid;
        }
        self.lengths[at..at + usize::from(repeat)].fill(value);
        self.read += repeat;
        if self.read == total {
            let (hlit, hdist) = (usize::from(self.hlit), usize::from(self.hdist));
            // The tables are rebuilt from here on: if either build fails,
            // they no longer hold the fixed codes, and a later fixed block
            // (after a reset) must load those again.
            self.fixed = false;
            // The end-of-block symbol must have a code.
            if self.lengths[256] == 0
                || !self.lit.build(&self.lengths[..hlit])
                || !self.dist.build(&self.lengths[hlit..hlit + hdist])
            {
                return Step::Invalid;
            }
            self.state = State::Symbols;
        }
        Step::Done
    }

    /// One literal, end of block, or length/distance pair (RFC 1951
    /// §3.2.5).
    fn symbol(&mut self) -> Step {
        let (symbol, used) = match self.lit.decode(self.bits, self.available) {
            Decoded::Symbol(s, l) => (s, l),
            Decoded::Short => return Step::Short,
            Decoded::Invalid => return Step::Invalid,
        };
        if symbol < 256 {
            self.consume(used);
            self.produced += 1;
            return Step::Done;
        }
        if symbol == 256 {
            self.consume(used);
            self.end_block();
            return Step::Done;
        }
        let index = usize::from(symbol - 257);
        if index >= LEN_BASE.len() {
            return Step::Invalid;
        }
        let extra = u32::from(LEN_EXTRA[index]);
        if used + extra > self.available {
            return Step::Short;
        }
        let length = u64::from(LEN_BASE[index]) + ((self.bits >> used) & ((1 << extra) - 1));
        let at = used + extra;
        let (code, code_len) = match self.dist.decode(self.bits >> at, self.available - at) {
            Decoded::Symbol(s, l) => (usize::from(s), l),
            Decoded::Short => return Step::Short,
            Decoded::Invalid => return Step::Invalid,
        };
        if code >= DIST_BASE.len() {
            return Step::Invalid;
        }
        let dist_extra = u32::from(DIST_EXTRA[code]);
        let at = at + code_len;
        if at + dist_extra > self.available {
            return Step::Short;
        }
        let distance = u32::from(DIST_BASE[code]) + ((self.bits >> at) & ((1 << dist_extra) - 1)) as u32;
        self.consume(at + dist_extra);
        self.farthest = self.farthest.max(distance);
        if distance > self.window {
            // `produced` stays at the start of the copy: where the data
            // goes wrong.
            return Step::TooFar;
        }
        self.produced += length;
        Step::Done
    }

    /// The fixed codes (RFC 1951 §3.2.6).
    fn load_fixed(&mut self) {
        let mut lengths = [8u8; MAX_LIT];
        lengths[144..256].fill(9);
        lengths[256..280].fill(7);
        self.lit.build(&lengths);
        self.dist.build(&[5; 30]);
        self.fixed = true;
    }
}

#[cfg(test)]
mod tests;
