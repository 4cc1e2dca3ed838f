//! The property the `proxy_session` fuzz target checks, public so that the
//! fuzz crate and `cargo test` run the same code. Not an API.
//!
//! Arbitrary bytes from both sides, cut anywhere, go through the sans-IO
//! [`Session`] exactly as the relay feeds it (the client's first head
//! before the upstream is connected, then both directions interleaved):
//! - it never panics;
//! - what it holds stays bounded (heads, bytes after an upgrade request);
//! - without `--enforce`, what it forwards to the client is the upstream's
//!   input byte for byte, and what it forwards to the upstream is the
//!   client's input byte for byte whenever no head needed rewriting (the
//!   property runs with `--preserve-host` and no upstream path, so only an
//!   absolute-form target is rewritten; inputs with `://` skip this half).

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::event::{Format, Side, Stamp};
use crate::session::{Chunk, Session, Time};
use crate::{Config, Upstream};

/// Most bytes the session may hold at once: a head at its limit, the
/// bytes held after an upgrade request, a chunk-size line, with slack.
const MAX_HELD_TOTAL: usize = (1 << 20) + (64 << 10) + (8 << 10);

/// A valid upgrade request and its answer, to start from when the input
/// asks for it (so that the inspectors are reached quickly).
const REQUEST: &[u8] = b"GET /chat HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Extensions: permessage-deflate\r\n\r\n";
const RESPONSE: &[u8] = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n";
const DEFLATE: &[u8] = b"Sec-WebSocket-Extensions: permessage-deflate\r\n";

/// Runs the property on `data`; panics when it does not hold.
pub fn check_session(data: &[u8]) {
    let Some((&flags, rest)) = data.split_first() else { return };
    let enforce = flags & 1 != 0;
    let mut config = Config::new(Upstream::parse("ws://127.0.0.1:9").expect("a valid upstream"));
    config.format = if flags & 2 != 0 { Format::Json } else { Format::Pretty { color: flags & 4 != 0 } };
    config.enforce = enforce;
    config.preserve_host = true;
    config.messages_only = flags & 8 != 0;
    config.max_inflate = 1 << 16;
    let config = Arc::new(config);

    // Ops: a byte (side in bit 0, length in the rest), then that many bytes.
    let mut ops: Vec<(Side, &[u8])> = Vec::new();
    if flags & 16 != 0 {
        ops.push((Side::Client, REQUEST));
        ops.push((Side::Upstream, RESPONSE));
        if flags & 32 != 0 {
            ops.push((Side::Upstream, DEFLATE));
        }
        ops.push((Side::Upstream, b"\r\n"));
    }
    let mut input = rest;
    while let Some((&op, tail)) = input.split_first() {
        let side = if op & 1 == 0 { Side::Client } else { Side::Upstream };
        let len = usize::from(op >> 1).min(tail.len());
        ops.push((side, &tail[..len]));
        input = &tail[len..];
    }

    let t0 = Instant::now();
    let stamp = Stamp::UNSET;
    let mut events = Vec::new();
    let mut session =
        Session::new(1, config, "127.0.0.1:1".parse().expect("an address"), &Time { instant: t0, stamp }, &mut events);
    let mut fed = [Vec::new(), Vec::new()];
    let mut out = [Vec::new(), Vec::new()];
    let collect = |chunks: Vec<Chunk>, input: &[u8], into: &mut Vec<u8>| {
        for c in chunks {
            match c {
                Chunk::Input(r) => into.extend_from_slice(&input[r]),
                Chunk::Owned(v) => into.extend_from_slice(&v),
            }
        }
    };
    let mut connected = false;
    for (i, (side, bytes)) in ops.into_iter().enumerate() {
        // The relay reads nothing from the upstream before connecting.
        if side == Side::Upstream && !connected {
            continue;
        }
        let t = Time { instant: t0 + Duration::from_micros(i as u64 * 7), stamp };
        let stopped = session.feed(side, bytes, &t, &mut events) == crate::session::Flow::Stop;
        fed[side.index()].extend_from_slice(bytes);
        let to = side.other();
        collect(session.take_queued(to), bytes, &mut out[to.index()]);
        collect(session.take_queued(side), &[], &mut out[side.index()]);
        assert!(session.held() <= MAX_HELD_TOTAL, "the session holds {} bytes", session.held());
        if !connected && session.head_complete() && !session.is_stopped() {
            session.set_connected();
            connected = true;
            collect(session.take_queued(Side::Upstream), &[], &mut out[Side::Upstream.index()]);
        }
        if stopped {
            break;
        }
        events.clear();
    }
    let t = Time { instant: t0 + Duration::from_secs(1), stamp };
    for side in [Side::Client, Side::Upstream] {
        session.eof(side, &t, &mut events);
    }
    for side in [Side::Client, Side::Upstream] {
        collect(session.take_queued(side), &[], &mut out[side.index()]);
    }
    let _ = session.finish(crate::session::Ending::Eof, &t, &mut events);
    if enforce {
        return;
    }
    assert!(out[Side::Client.index()] == fed[Side::Upstream.index()], "the client gets exactly what the upstream sent");
    let client_sent = &fed[Side::Client.index()];
    if connected && !client_sent.windows(3).any(|w| w == b"://") {
        assert!(out[Side::Upstream.index()] == *client_sent, "the upstream gets exactly what the client sent");
    }
}
