//! The property the `proxy_session` fuzz target checks, public so that the
//! fuzz crate and `cargo test` run the same code. Not an API.
//!
//! Arbitrary bytes from both sides, cut anywhere, go through the sans-IO
//! session exactly as the relay feeds it (the client's first head
//! before the upstream is connected, then both directions interleaved):
//! - it never panics;
//! - what it holds stays bounded (heads, bytes after an upgrade request);
//! - without `--enforce`, what it forwards to the client is the upstream's
//!   input byte for byte, and what it forwards to the upstream is the
//!   client's input byte for byte whenever no head needed rewriting (the
//!   property runs with `--preserve-host` and no upstream path, so only an
//!   absolute-form target is rewritten; inputs with `://` skip this half);
//! - with flag 64, `--fault` rules that match nothing are configured for
//!   both sides: the WebSocket bytes go through the fault engines, and the
//!   same byte-for-byte property holds;
//! - with flag 128, rules that act (every action) are configured: no panic,
//!   and what the session holds stays bounded.

use std::sync::Arc;
use std::time::{Duration, Instant, UNIX_EPOCH};

use crate::event::Time;
use crate::event::{Format, Side, Stamp};
use crate::fault::{FaultRule, MAX_FAULT_FRAME};
use crate::log::Events;
use crate::session::{Chunk, Ending, Flow, Session};
use crate::{Config, Upstream};

/// `--fault` rules that act (flag 128): every action, on both sides; only
/// "no panic, memory bounded" is checked.
const ACTING: [&str; 10] = [
    "upstream,text:fragment=2",
    "client,binary:duplicate",
    "upstream,pong:swallow",
    "client,ping:delay=1ms",
    "upstream,msg=3:corrupt=utf8",
    "client,msg=4:corrupt=mask",
    "p=0.2:drop",
    "data,p=0.1:throttle=1MiB/s",
    "msg=9:truncate",
    "msg=11-12:close=1012,x",
];

/// `--fault` rules for both sides that match nothing (flag 64): frames go
/// through the fault engines, and must come out as they went in.
const NEVER_MATCHING: [&str; 4] =
    ["client,data,p=0:drop", "upstream,msg=4000000000:reset", "match=^never-ever$:corrupt=rsv2", "p=0:truncate"];

/// Most bytes the session may hold at once: a head at its limit, the
/// bytes held after an upgrade request, a chunk-size line, with slack.
const MAX_HELD_TOTAL: usize = (1 << 20) + (64 << 10) + (8 << 10);

/// A valid upgrade request and its answer, to start from when the input
/// asks for it (so that the inspectors are reached quickly).
const REQUEST: &[u8] = b"GET /chat HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Extensions: permessage-deflate\r\n\r\n";
const RESPONSE: &[u8] = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n";
const DEFLATE: &[u8] = b"Sec-WebSocket-Extensions: permessage-deflate\r\n";

/// What a session made of one input: the events it wrote (in the format
/// the input's flags chose), and the bytes it forwarded to each side.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Driven {
    /// The events, as the proxy would write them.
    pub events: Vec<u8>,
    /// Bytes fed from each side (client, upstream).
    pub fed: [Vec<u8>; 2],
    /// Bytes forwarded to each side (client, upstream).
    pub forwarded: [Vec<u8>; 2],
    /// Whether the upstream was connected (a first head completed).
    pub connected: bool,
    /// Whether `--enforce` was on.
    pub enforce: bool,
}

/// Drives a session with `data` as described in the module docs. Time is
/// injected: the read number `i` happens at the Unix epoch plus `7 i` µs,
/// so the output is the same on every run.
pub fn drive(data: &[u8]) -> Option<Driven> {
    let (&flags, rest) = data.split_first()?;
    let enforce = flags & 1 != 0;
    let mut config = Config::new(Upstream::parse("ws://127.0.0.1:9").expect("a valid upstream"));
    let format = if flags & 2 != 0 { Format::Json } else { Format::Pretty { color: flags & 4 != 0 } };
    config.enforce = enforce;
    config.preserve_host = true;
    config.messages_only = flags & 8 != 0;
    config.max_inflate = 1 << 16;
    if flags & 64 != 0 {
        config.faults = NEVER_MATCHING.iter().map(|r| FaultRule::parse(r).expect("a valid rule")).collect();
    }
    if flags & 128 != 0 {
        config.faults = ACTING.iter().map(|r| FaultRule::parse(r).expect("a valid rule")).collect();
        config.fault_seed = Some(u64::from(flags));
    }
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
    let time = |i: u64| Time {
        instant: t0 + Duration::from_micros(7 * i),
        stamp: Stamp::at(UNIX_EPOCH + Duration::from_micros(7 * i)),
    };
    let mut events = Events::new(&[format]);
    let client: std::net::SocketAddr = "127.0.0.1:1".parse().expect("an address");
    let mut session = Session::new(1, config, client, &time(0), &mut events);
    let mut fed = [Vec::new(), Vec::new()];
    let mut out = [Vec::new(), Vec::new()];
    let collect = |chunks: Vec<Chunk>, input: &[u8], into: &mut Vec<u8>| {
        for c in chunks {
            match c {
                Chunk::Input(r) => into.extend_from_slice(&input[r]),
                Chunk::Owned(v) | Chunk::Throttled(v, _) => into.extend_from_slice(&v),
                Chunk::HoldUntil(_) => {}
            }
        }
    };
    let mut connected = false;
    let mut i = 0;
    for (side, bytes) in ops {
        // The relay reads nothing from the upstream before connecting.
        if side == Side::Upstream && !connected {
            continue;
        }
        i += 1;
        let stopped = session.feed(side, bytes, &time(i), &mut events) == Flow::Stop;
        fed[side.index()].extend_from_slice(bytes);
        let to = side.other();
        collect(session.take_queued(to), bytes, &mut out[to.index()]);
        collect(session.take_queued(side), &[], &mut out[side.index()]);
        let bound = MAX_HELD_TOTAL + if flags & (64 | 128) != 0 { 2 * MAX_FAULT_FRAME as usize } else { 0 };
        assert!(session.held() <= bound, "the session holds {} bytes", session.held());
        if !connected && session.head_complete() && !session.is_stopped() {
            session.set_connected();
            connected = true;
            collect(session.take_queued(Side::Upstream), &[], &mut out[Side::Upstream.index()]);
        }
        if stopped {
            break;
        }
    }
    let t = time(i + 1);
    for side in [Side::Client, Side::Upstream] {
        session.eof(side, &t, &mut events);
    }
    for side in [Side::Client, Side::Upstream] {
        collect(session.take_queued(side), &[], &mut out[side.index()]);
    }
    let _ = session.finish(Ending::Eof, &t, &mut events);
    Some(Driven { events: events.output(0).to_vec(), fed, forwarded: out, connected, enforce })
}

/// Runs the property on `data`; panics when it does not hold.
pub fn check_session(data: &[u8]) {
    let Some(d) = drive(data) else { return };
    // Under --enforce the session may cut; rules that act change the bytes.
    if d.enforce || data[0] & 128 != 0 {
        return;
    }
    let (client, upstream) = (Side::Client.index(), Side::Upstream.index());
    assert!(d.forwarded[client] == d.fed[upstream], "the client gets exactly what the upstream sent");
    if d.connected && !d.fed[client].windows(3).any(|w| w == b"://") {
        assert!(d.forwarded[upstream] == d.fed[client], "the upstream gets exactly what the client sent");
    }
}
