//! Decode and mask throughput, ours against tungstenite's in the same run.
//!
//! `cargo bench -p wsproto --bench decode`
//!
//! * `small_frames`: 10 000 masked text frames of 2–125 bytes, as a client
//!   sends them. Ours: copy the input into a receive buffer, decode in place
//!   (unmask + UTF-8 validation). tungstenite: its server-side `WebSocket`
//!   reading the same bytes from memory (parse, copy, unmask, UTF-8, one
//!   `Message` per frame). Both copy the bytes once.
//! * `large_frame`: one masked text or binary frame of 64 KiB or 1 MiB, same
//!   two paths.
//! * `mask_64k`: masking 64 KiB: ours, the byte loop of §5.3, and
//!   tungstenite's `Frame::format` of a masked frame (its mask function
//!   behind one copy, as ours is behind `encode_frame`).

use std::io::Cursor;

use divan::{Bencher, black_box, counter::BytesCount};
use wsproto::{
    Decoder, DecoderConfig, Event, FrameHeader, OpCode, Role, apply_mask, apply_mask_bytewise, encode_frame,
};

fn main() {
    divan::main();
}

const KEY: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

/// A deterministic stream of masked text frames with 2–125 byte payloads.
fn small_frames() -> Vec<u8> {
    let mut out = Vec::new();
    let mut seed = 0x2545_f491_4f6c_dd1d_u64;
    for _ in 0..10_000 {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let len = 2 + (seed % 124) as usize;
        let payload: Vec<u8> = (0..len).map(|i| b'a' + (i % 26) as u8).collect();
        let header = FrameHeader { mask: Some(KEY), ..FrameHeader::new(OpCode::Text, 0) };
        encode_frame(&header, &payload, &mut out);
    }
    out
}

fn one_frame(opcode: OpCode, len: usize) -> Vec<u8> {
    let payload: Vec<u8> = (0..len).map(|i| b' ' + (i % 90) as u8).collect();
    let mut out = Vec::new();
    encode_frame(&FrameHeader { mask: Some(KEY), ..FrameHeader::new(opcode, 0) }, &payload, &mut out);
    out
}

/// Ours: copy into the receive buffer, then decode in place.
fn ours(input: &[u8], buf: &mut Vec<u8>) -> usize {
    buf.clear();
    buf.extend_from_slice(input);
    let mut decoder = Decoder::new(Role::Client, DecoderConfig::default());
    let mut pos = 0;
    let mut payload_bytes = 0;
    loop {
        let decoded = decoder.decode_mut(&mut buf[pos..]);
        pos += decoded.consumed;
        match decoded.event {
            Some(Event::Payload(p)) => payload_bytes += black_box(p.data()).len(),
            Some(Event::Violation(v)) => panic!("{v}"),
            Some(_) => {}
            None => break,
        }
    }
    payload_bytes
}

/// An in-memory peer: reads come from the input, writes are dropped.
struct Memory<'a>(Cursor<&'a [u8]>);

impl std::io::Read for Memory<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.0.read(buf)
    }
}

impl std::io::Write for Memory<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// tungstenite: a server-side WebSocket reading from memory.
fn tungstenite_read(input: &[u8]) -> usize {
    use tungstenite::protocol::{Role as TRole, WebSocket, WebSocketConfig};
    let config = WebSocketConfig::default().max_message_size(None).max_frame_size(None);
    let mut ws = WebSocket::from_raw_socket(Memory(Cursor::new(input)), TRole::Server, Some(config));
    let mut payload_bytes = 0;
    while let Ok(msg) = ws.read() {
        payload_bytes += black_box(msg).len();
    }
    payload_bytes
}

#[divan::bench_group]
mod small_frames {
    use super::*;

    #[divan::bench]
    fn ours(bencher: Bencher) {
        let input = small_frames();
        let mut buf = Vec::with_capacity(input.len());
        bencher.counter(BytesCount::of_slice(&input)).bench_local(|| super::ours(&input, &mut buf));
    }

    #[divan::bench]
    fn tungstenite(bencher: Bencher) {
        let input = small_frames();
        bencher.counter(BytesCount::of_slice(&input)).bench_local(|| super::tungstenite_read(&input));
    }
}

#[divan::bench_group]
mod large_frame {
    use super::*;

    const CASES: [&str; 4] = ["text_64k", "binary_64k", "text_1m", "binary_1m"];

    fn input(case: &str) -> Vec<u8> {
        let op = if case.starts_with("text") { OpCode::Text } else { OpCode::Binary };
        let len = if case.ends_with("64k") { 64 << 10 } else { 1 << 20 };
        one_frame(op, len)
    }

    #[divan::bench(args = CASES)]
    fn ours(bencher: Bencher, case: &str) {
        let input = input(case);
        let mut buf = Vec::with_capacity(input.len());
        bencher.counter(BytesCount::of_slice(&input)).bench_local(|| super::ours(&input, &mut buf));
    }

    #[divan::bench(args = CASES)]
    fn tungstenite(bencher: Bencher, case: &str) {
        let input = input(case);
        bencher.counter(BytesCount::of_slice(&input)).bench_local(|| super::tungstenite_read(&input));
    }
}

#[divan::bench_group]
mod mask_64k {
    use super::*;

    const LEN: usize = 64 << 10;

    #[divan::bench]
    fn ours(bencher: Bencher) {
        let mut buf = vec![0x5au8; LEN];
        bencher.counter(BytesCount::new(LEN)).bench_local(|| apply_mask(black_box(&mut buf), KEY, 0));
    }

    #[divan::bench]
    fn bytewise(bencher: Bencher) {
        let mut buf = vec![0x5au8; LEN];
        bencher.counter(BytesCount::new(LEN)).bench_local(|| apply_mask_bytewise(black_box(&mut buf), KEY, 0));
    }

    #[divan::bench]
    fn ours_encode_frame(bencher: Bencher) {
        let payload = vec![0x5au8; LEN];
        let mut out = Vec::with_capacity(LEN + 14);
        let header = FrameHeader { mask: Some(KEY), ..FrameHeader::new(OpCode::Binary, 0) };
        bencher.counter(BytesCount::new(LEN)).bench_local(|| {
            out.clear();
            encode_frame(&header, black_box(&payload), &mut out);
        });
    }

    #[divan::bench]
    fn tungstenite_format_frame(bencher: Bencher) {
        use tungstenite::protocol::frame::{Frame, coding::Data, coding::OpCode as TOp};
        let payload = tungstenite::Bytes::from(vec![0x5au8; LEN]);
        let mut out = Vec::with_capacity(LEN + 14);
        bencher.counter(BytesCount::new(LEN)).bench_local(|| {
            out.clear();
            let mut frame = Frame::message(payload.clone(), TOp::Data(Data::Binary), true);
            frame.header_mut().mask = Some(KEY);
            frame.format(&mut out).ok();
        });
    }
}
