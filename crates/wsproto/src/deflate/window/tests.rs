use proptest::prelude::*;

use super::*;
use crate::deflate::{Deflater, Inflater, TAIL};

/// Writes DEFLATE bits, least significant first (RFC 1951 §3.1.1).
#[derive(Default)]
struct Bits {
    out: Vec<u8>,
    acc: u64,
    n: u32,
}

impl Bits {
    fn put(&mut self, value: u32, n: u32) {
        self.acc |= u64::from(value) << self.n;
        self.n += n;
        while self.n >= 8 {
            self.out.push(self.acc as u8);
            self.acc >>= 8;
            self.n -= 8;
        }
    }

    /// A Huffman code goes most significant bit first.
    fn code(&mut self, code: u32, n: u32) {
        self.put(code.reverse_bits() >> (32 - n), n);
    }

    fn finish(mut self) -> Vec<u8> {
        if self.n > 0 {
            self.out.push(self.acc as u8);
        }
        self.out
    }
}

/// One symbol of a hand-made stream.
#[derive(Debug, Clone, Copy)]
enum Op {
    Literal(u8),
    /// Copy `length` bytes from `distance` back (clamped to what exists).
    Copy(u16, u16),
}

/// The fixed literal/length code of `symbol` (RFC 1951 §3.2.6).
fn fixed_lit(bits: &mut Bits, symbol: u32) {
    match symbol {
        0..=143 => bits.code(0x30 + symbol, 8),
        144..=255 => bits.code(0x190 + symbol - 144, 9),
        256..=279 => bits.code(symbol - 256, 7),
        _ => bits.code(0xc0 + symbol - 280, 8),
    }
}

/// `ops` as one fixed-Huffman block (BFINAL as asked) written to `bits`;
/// returns what it inflates to and the longest distance used.
fn fixed_block(bits: &mut Bits, ops: &[Op], last: bool) -> (Vec<u8>, u32) {
    bits.put(u32::from(last), 1);
    bits.put(1, 2);
    let (mut plain, mut farthest) = (Vec::new(), 0u32);
    for op in ops {
        match *op {
            Op::Literal(b) => {
                fixed_lit(bits, u32::from(b));
                plain.push(b);
            }
            Op::Copy(_, _) if plain.is_empty() => {}
            Op::Copy(length, distance) => {
                let length = length.clamp(3, 258);
                let distance = distance.clamp(1, plain.len().min(32768) as u16);
                let l = LEN_BASE.iter().rposition(|&b| b <= length).expect("lengths start at 3");
                let l = if length == 258 { 28 } else { l.min(27) };
                fixed_lit(bits, 257 + l as u32);
                bits.put(u32::from(length - LEN_BASE[l]), u32::from(LEN_EXTRA[l]));
                let d = DIST_BASE.iter().rposition(|&b| b <= distance).expect("distances start at 1");
                bits.code(d as u32, 5);
                bits.put(u32::from(distance - DIST_BASE[d]), u32::from(DIST_EXTRA[d]));
                for _ in 0..length {
                    plain.push(plain[plain.len() - usize::from(distance)]);
                }
                farthest = farthest.max(u32::from(distance));
            }
        }
    }
    fixed_lit(bits, 256);
    (plain, farthest)
}

/// `ops` as a complete DEFLATE stream: one fixed block with BFINAL set.
fn final_stream(ops: &[Op]) -> (Vec<u8>, Vec<u8>, u32) {
    let mut bits = Bits::default();
    let (plain, farthest) = fixed_block(&mut bits, ops, true);
    (bits.finish(), plain, farthest)
}

fn feed_in_pieces(audit: &mut WindowAudit, wire: &[u8], split: usize) -> Result<(), Error> {
    wire.chunks(split.max(1)).try_for_each(|piece| audit.feed(piece))
}

fn inflate(inflater: &mut Inflater, wire: &[u8], split: usize) -> Result<Option<Vec<u8>>, Error> {
    let mut out = Vec::new();
    inflater.begin_message();
    for piece in wire.chunks(split.max(1)) {
        inflater.inflate(piece, &mut |b| out.extend_from_slice(b))?;
    }
    Ok(inflater.end_message(&mut |b| out.extend_from_slice(b))?.map(|_| out))
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => any::<u8>().prop_map(Op::Literal),
        1 => (3u16..=258, 1u16..=32768).prop_map(|(l, d)| Op::Copy(l, d)),
        1 => (3u16..=20, 1u16..=600).prop_map(|(l, d)| Op::Copy(l, d)),
    ]
}

proptest! {
    /// Hand-made fixed blocks with known distances: zlib-rs reads them to
    /// the data we expanded ourselves, the audit counts the same output and
    /// the same longest distance, and an inflater with an agreed window
    /// fails exactly when that distance is beyond it.
    #[test]
    fn distances_beyond_the_window_and_only_those_fail(
        ops in proptest::collection::vec(op(), 1..400),
        split in 1usize..40,
    ) {
        let mut bits = Bits::default();
        let (plain, farthest) = fixed_block(&mut bits, &ops, false);
        // A sync flush, as a permessage-deflate sender ends a message: an
        // empty stored block, whose `00 00 ff ff` the sender removes and
        // the receiver appends (RFC 7692 §7.2.1).
        bits.put(0, 3);
        let wire = bits.finish();
        let mut audit = WindowAudit::new(15);
        feed_in_pieces(&mut audit, &wire, split).expect("the full window");
        audit.feed(&TAIL).expect("the full window");
        prop_assert_eq!(audit.produced(), plain.len() as u64);
        prop_assert_eq!(audit.farthest(), farthest);
        for bits in 8..=15u8 {
            let mut inflater = Inflater::with_window_bits(true, bits, 1 << 24);
            let got = inflate(&mut inflater, &wire, split);
            if farthest > 1 << bits {
                prop_assert_eq!(got, Err(Error::BeyondAgreedWindow), "{} bits, farthest {}", bits, farthest);
            } else {
                prop_assert!(got == Ok(Some(plain.clone())), "{} bits, farthest {}", bits, farthest);
            }
        }
    }

    /// Whatever zlib-rs makes (stored, fixed and dynamic blocks, levels
    /// 0–9, windows 9–15, several messages with and without context
    /// takeover), cut anywhere: the audit counts every byte the data
    /// inflates to and sees no distance beyond 2^w − 262, zlib's own limit.
    #[test]
    fn the_audit_reads_what_zlib_writes(
        level in 0u32..=9,
        window_bits in 9u8..=15,
        no_takeover in any::<bool>(),
        messages in proptest::collection::vec(
            (proptest::collection::vec(0u8..8, 0..3000), 0u16..2000, 0u16..40000), 1..4),
        split in 1usize..5000,
    ) {
        let mut deflater = Deflater::with_window_bits(level, no_takeover, window_bits);
        let mut audit = WindowAudit::new(15);
        let mut total = 0u64;
        for (seed, repeat, distance) in messages {
            // Some bytes, then a repeat of part of them from `distance`
            // back, so that long references are there to find.
            let mut plain = seed;
            let from = plain.len().saturating_sub(usize::from(distance));
            let take = usize::from(repeat).min(plain.len() - from);
            plain.extend_from_within(from..from + take);
            let mut wire = Vec::new();
            deflater.compress_message(&plain, &mut wire);
            wire.extend_from_slice(&TAIL);
            feed_in_pieces(&mut audit, &wire, split).expect("the full window");
            total += plain.len() as u64;
            prop_assert_eq!(audit.produced(), total);
            prop_assert!(audit.farthest() <= (1 << window_bits) - 262, "{}", audit.farthest());
            if no_takeover {
                audit.reset();
                total = 0;
            }
        }
    }

    /// Arbitrary bytes: the audit never panics, and agrees with zlib-rs on
    /// how much every stream zlib-rs reads without error inflates to.
    #[test]
    fn arbitrary_bytes(data in proptest::collection::vec(any::<u8>(), 0..600), split in 1usize..30) {
        let mut audit = WindowAudit::new(15);
        feed_in_pieces(&mut audit, &data, split).expect("the full window");
        let mut zlib = flate2::Decompress::new(false);
        let mut out = vec![0; 1 << 20];
        if let Ok(status) = zlib.decompress(&data, &mut out, flate2::FlushDecompress::Sync)
            && status == flate2::Status::StreamEnd
            && zlib.total_in() == data.len() as u64
        {
            prop_assert_eq!(audit.produced(), zlib.total_out());
        }
    }
}

/// The window is 2^w bytes: a distance of exactly 2^w is allowed, one more
/// is not; 8 bits are 256 bytes even though zlib inflates them with 9.
#[test]
fn the_window_edge() {
    for bits in [8u8, 9, 12, 14] {
        let window = 1u16 << bits;
        let mut ops: Vec<Op> = (0..window + 10).map(|i| Op::Literal(i as u8)).collect();
        for (distance, fails) in [(window, false), (window + 1, true)] {
            ops.push(Op::Copy(3, distance));
            let (wire, _, farthest) = final_stream(&ops);
            assert_eq!(farthest, u32::from(distance));
            let mut audit = WindowAudit::new(bits);
            let got = audit.feed(&wire);
            assert_eq!(got.is_err(), fails, "{bits} bits, distance {distance}");
            ops.pop();
        }
    }
}

/// After a final block the next stream starts at a byte boundary, and the
/// audit goes on reading it (RFC 7692 §7.2.3.4).
#[test]
fn a_final_block_ends_one_stream_and_the_next_is_read() {
    let (first, plain, _) = final_stream(&[Op::Literal(b'a'), Op::Copy(10, 1)]);
    let ops: Vec<Op> = (0..300).map(|i| Op::Literal(i as u8)).chain([Op::Copy(5, 290)]).collect();
    let (second, plain2, _) = final_stream(&ops);
    let wire = [first, second].concat();
    for split in [1, 2, 1000] {
        let mut audit = WindowAudit::new(8);
        assert_eq!(feed_in_pieces(&mut audit, &wire, split), Err(Error::BeyondAgreedWindow), "{split}");
        let mut audit = WindowAudit::new(9);
        assert_eq!(feed_in_pieces(&mut audit, &wire, split), Ok(()), "{split}");
        assert_eq!(audit.produced(), (plain.len() + plain2.len()) as u64);
    }
}

/// A stored block is skipped by its length, not read as symbols.
#[test]
fn stored_blocks_are_skipped() {
    let data: Vec<u8> = (0..=255).cycle().take(70_000).collect();
    for level in [0, 1] {
        let mut deflater = Deflater::with_window_bits(level, true, 15);
        let mut wire = Vec::new();
        deflater.compress_message(&data, &mut wire);
        wire.extend_from_slice(&TAIL);
        for split in [1, 3, 65536] {
            let mut audit = WindowAudit::new(15);
            feed_in_pieces(&mut audit, &wire, split).expect("the full window");
            assert_eq!(audit.produced(), data.len() as u64, "level {level}, split {split}");
        }
    }
}

/// Data that is not DEFLATE stops the audit without an error: reporting
/// it is the inflater's job.
#[test]
fn not_deflate_stops_quietly() {
    for wire in [&[0xff, 0xff, 0xff][..], &[0x00, 0x05, 0x00, 0x00, 0x00], &[0x07]] {
        let mut audit = WindowAudit::new(8);
        assert_eq!(audit.feed(wire), Ok(()));
        assert_eq!(audit.feed(&[0x4b; 100]), Ok(()));
    }
}

/// A dynamic block whose literal/length code is valid and whose distance
/// code is over-subscribed (three codes of one bit; RFC 1951 §3.2.7): the
/// literal table gets built, the distance table does not.
fn dynamic_block_with_a_broken_distance_code() -> Vec<u8> {
    let mut bits = Bits::default();
    bits.put(0, 1); // BFINAL
    bits.put(2, 2); // dynamic Huffman codes
    bits.put(0, 5); // HLIT: 257 literal/length codes
    bits.put(2, 5); // HDIST: 3 distance codes
    bits.put(14, 4); // HCLEN: 18 code length codes, up to symbol 1
    // The code length code: symbols 1 and 9, one bit each (1 → 0, 9 → 1).
    for symbol in &CLEN_ORDER[..18] {
        bits.put(u32::from(matches!(symbol, 1 | 9)), 3);
    }
    // Literals 0–255 nine bits each, end of block one bit: complete.
    for _ in 0..256 {
        bits.code(1, 1);
    }
    bits.code(0, 1);
    // Three distance codes of one bit each.
    for _ in 0..3 {
        bits.code(0, 1);
    }
    bits.finish()
}

/// A dynamic block whose tables fail to build leaves no trace: the fixed
/// codes are loaded again for the next stream's fixed block, not taken from
/// a literal table the broken block overwrote. (Found by the
/// `deflate_inspect` fuzz target: a corrupt message without context
/// takeover made the next, intact one fail as beyond the agreed window.)
#[test]
fn a_broken_dynamic_block_does_not_leave_its_tables_behind() {
    let (before, _, _) = final_stream(&[Op::Literal(b'x')]);
    let broken = dynamic_block_with_a_broken_distance_code();
    let ops = [Op::Literal(b'a'), Op::Literal(b'b'), Op::Copy(30, 2), Op::Literal(0xe2)];
    let (after, plain, farthest) = final_stream(&ops);

    let mut audit = WindowAudit::new(8);
    assert_eq!(audit.feed(&before), Ok(()));
    audit.reset();
    assert_eq!(audit.feed(&broken), Ok(()), "not DEFLATE stops quietly");
    audit.reset();
    assert_eq!(audit.feed(&after), Ok(()));
    assert_eq!((audit.produced(), audit.farthest()), (plain.len() as u64, farthest));

    // The same through the inflater, as wsproxy's inspector reads a
    // connection without context takeover (RFC 7692 §7.1.1). (This half
    // passes with the stale table too: the broken block's literal code has
    // no lengths, so no copy is misread as beyond the window. The fuzz
    // regression `fixed-block-after-a-broken-dynamic-table` is the case
    // where one was.)
    for split in [1, 3, 1000] {
        let mut inflater = Inflater::with_window_bits(true, 8, 1 << 20);
        assert_eq!(inflate(&mut inflater, &before, split), Ok(Some(b"x".to_vec())), "{split}");
        assert_eq!(inflate(&mut inflater, &broken, split), Err(Error::InflateFailed), "{split}");
        inflater.end_message(&mut |_| {}).expect("the failed message ends");
        assert_eq!(inflate(&mut inflater, &after, split), Ok(Some(plain.clone())), "{split}");
    }
}
