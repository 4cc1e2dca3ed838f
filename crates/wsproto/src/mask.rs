//! Masking (RFC 6455 §5.3).
//!
//! "The masked data is obtained by XOR-ing octet i of the original data with
//! octet at index i modulo 4 of the masking key." Unmasking is the same
//! operation.

/// XORs `buf` with the masking key, where `buf[0]` is payload octet number
/// `phase` (so a payload can be (un)masked in chunks: pass the number of
/// payload octets before the chunk).
///
/// Works on 32-byte blocks, then 8-byte words, then bytes, over the key
/// repeated to fit: shapes the compiler turns into vector instructions
/// without `unsafe`.
#[inline]
pub fn apply_mask(buf: &mut [u8], key: [u8; 4], phase: usize) {
    mask_words::<false>(buf, key, phase);
}

/// [`apply_mask`], also telling whether every unmasked byte is ASCII: the
/// decoder's one pass over a text payload for both unmasking and the common
/// case of UTF-8 validation.
#[inline]
pub(crate) fn apply_mask_is_ascii(buf: &mut [u8], key: [u8; 4], phase: usize) -> bool {
    mask_words::<true>(buf, key, phase)
}

#[inline(always)]
fn mask_words<const ASCII: bool>(buf: &mut [u8], key: [u8; 4], phase: usize) -> bool {
    // The key rotated so that its first byte applies to `buf[0]`.
    let shift = 8 * (phase % 4) as u32;
    let word = u32::from_ne_bytes(key);
    let word = if cfg!(target_endian = "little") { word.rotate_right(shift) } else { word.rotate_left(shift) };
    let key = word.to_ne_bytes();
    let word = u64::from(word) | (u64::from(word) << 32);
    let mut high_bits = 0u64;
    let mut xor_lane = |lane: &mut [u8]| {
        let mut b = [0u8; 8];
        b.copy_from_slice(lane);
        let plain = u64::from_ne_bytes(b) ^ word;
        if ASCII {
            high_bits |= plain;
        }
        lane.copy_from_slice(&plain.to_ne_bytes());
    };
    let mut blocks = buf.chunks_exact_mut(32);
    for block in &mut blocks {
        block.chunks_exact_mut(8).for_each(&mut xor_lane);
    }
    // Every block and word is a multiple of 4 octets long: the phase stays.
    let mut words = blocks.into_remainder().chunks_exact_mut(8);
    (&mut words).for_each(&mut xor_lane);
    let mut tail_bits = 0u8;
    for (i, b) in words.into_remainder().iter_mut().enumerate() {
        *b ^= key[i % 4];
        if ASCII {
            tail_bits |= *b;
        }
    }
    high_bits & 0x8080_8080_8080_8080 == 0 && tail_bits & 0x80 == 0
}

/// The plain byte loop of §5.3, the reference [`apply_mask`] is tested
/// against.
pub fn apply_mask_bytewise(buf: &mut [u8], key: [u8; 4], phase: usize) {
    for (i, b) in buf.iter_mut().enumerate() {
        *b ^= key[(i + phase) % 4];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fast_equals_bytewise_at_every_length_alignment_and_phase() {
        let key = [0x37, 0xfa, 0x21, 0x3d];
        let data: Vec<u8> = (0..300u32).map(|i| (i * 7 + 3) as u8).collect();
        for align in 0..8 {
            for len in 0..(data.len() - align) {
                for phase in 0..4 {
                    let mut a = data[align..align + len].to_vec();
                    let mut b = a.clone();
                    apply_mask(&mut a, key, phase);
                    apply_mask_bytewise(&mut b, key, phase);
                    assert_eq!(a, b, "align {align} len {len} phase {phase}");
                }
            }
        }
    }

    #[test]
    fn ascii_check_is_exact() {
        let key = [0x37, 0xfa, 0x21, 0x3d];
        for len in 0..80 {
            for bad in 0..=len {
                let mut plain = vec![b'a'; len];
                if bad < len {
                    plain[bad] = 0xC3;
                }
                let mut masked = plain.clone();
                apply_mask_bytewise(&mut masked, key, 1);
                let ascii = apply_mask_is_ascii(&mut masked, key, 1);
                assert_eq!(masked, plain);
                assert_eq!(ascii, bad == len, "len {len} bad {bad}");
            }
        }
    }

    #[test]
    fn chunked_masking_equals_whole() {
        let key = [1, 2, 3, 4];
        let data: Vec<u8> = (0..100u8).collect();
        let mut whole = data.clone();
        apply_mask(&mut whole, key, 0);
        for cut in 0..data.len() {
            let mut parts = data.clone();
            let (a, b) = parts.split_at_mut(cut);
            apply_mask(a, key, 0);
            apply_mask(b, key, cut);
            assert_eq!(parts, whole, "cut {cut}");
        }
    }

    #[test]
    fn rfc_example_hello() {
        // §5.7: "Hello" masked with 37 fa 21 3d.
        let mut masked = [0x7f, 0x9f, 0x4d, 0x51, 0x58];
        apply_mask(&mut masked, [0x37, 0xfa, 0x21, 0x3d], 0);
        assert_eq!(&masked, b"Hello");
    }
}
