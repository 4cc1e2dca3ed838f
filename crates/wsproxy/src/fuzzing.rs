//! The properties the `proxy_session` and `capture_read` fuzz targets
//! check, public so that the fuzz crate and `cargo test` run the same code,
//! and the captures the latter starts from. Not an API.
//!
//! `proxy_session`:
//! Arbitrary bytes from both sides, cut anywhere, go through the sans-IO
//! session exactly as the relay feeds it (the client's first head
//! before the upstream is connected, then both directions interleaved):
//! - it never panics;
//! - what it holds stays bounded (heads, bytes after an upgrade request);
//! - without `--enforce`, what it forwards to the client is the upstream's
//!   input byte for byte (unless the upstream answers in TLS: then a 502
//!   that says so), and what it forwards to the upstream is the
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
    if crate::tls::looks_like_tls(&d.fed[upstream]) {
        // The one exception: an upstream that answers a plain request in
        // TLS gets the client a 502 that says "use wss://", not records it
        // cannot read (`Session::upstream_failed`).
        assert!(d.forwarded[client].starts_with(b"HTTP/1.1 502 "), "a TLS answer is a 502");
    } else {
        assert!(d.forwarded[client] == d.fed[upstream], "the client gets exactly what the upstream sent");
    }
    if d.connected && !d.fed[client].windows(3).any(|w| w == b"://") {
        assert!(d.forwarded[upstream] == d.fed[client], "the upstream gets exactly what the client sent");
    }
}

/// The `capture_read` property: any bytes given to `wsproxy read`'s reader
/// ([`crate::capture::read::read`]):
/// - never panic, and end in a summary or an error;
/// - give the same events and the same end when the input arrives a few
///   bytes at a time (the count from the input's first byte) as when it
///   arrives whole;
/// - give JSON lines that each read back strictly ([`crate::schema`]).
pub fn check_capture(data: &[u8]) {
    let chunk = usize::from(data.first().copied().unwrap_or(1) % 7) + 1;
    let whole = read_capture(data, usize::MAX);
    let pieces = read_capture(data, chunk);
    assert!(whole == pieces, "read in pieces of {chunk} bytes, the capture gives other events");
    for line in String::from_utf8_lossy(&whole.0).lines() {
        if let Err(e) = crate::schema::parse_strict(line) {
            panic!("{e}");
        }
    }
}

/// A reader that hands over at most `chunk` bytes per read.
struct Trickle<'a> {
    data: &'a [u8],
    chunk: usize,
}

impl std::io::Read for Trickle<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.data.len().min(self.chunk).min(buf.len());
        buf[..n].copy_from_slice(&self.data[..n]);
        self.data = &self.data[n..];
        Ok(n)
    }
}

/// The events (JSON, previews of at most 64 bytes) `wsproxy read` writes
/// for `data` read `chunk` bytes at a time, and how the read ended.
fn read_capture(data: &[u8], chunk: usize) -> (Vec<u8>, String) {
    use crate::capture::read::{ReadOptions, read};
    let config = Config {
        max_preview: crate::PreviewLimit::Bytes(64),
        max_inflate: 1 << 16,
        ..Config::new(Upstream::parse("ws://127.0.0.1:9").expect("a valid upstream"))
    };
    let options = ReadOptions { config, server: None };
    let mut out = Vec::new();
    let mut sink = |events: &Events| {
        out.extend_from_slice(events.output(0));
        Ok(())
    };
    let end = match read(Trickle { data, chunk }, &options, &[Format::Json], &mut sink) {
        Ok(summary) => format!("{summary:?}"),
        Err(e) => e.to_string(),
    };
    (out, end)
}

/// The captures the `capture_read` target starts from, by file name: a
/// WebSocket session with compression, pings and closes, then a keep-alive
/// exchange cut by a reset, as wsproxy's `--pcap` writes them (IPv4 and
/// IPv6), and the IPv4 one as tcpdump writes classic pcap files on
/// Ethernet, on Linux's `any` device (SLL2) and on BSD loopback (NULL).
/// Made here from fixed records and times, so they are the same on every
/// run.
pub fn capture_seeds() -> Vec<(String, Vec<u8>)> {
    let v4 = seed_pcapng(false);
    let mut seeds =
        vec![("session_v4.pcapng".to_owned(), v4.clone()), ("session_v6.pcapng".to_owned(), seed_pcapng(true))];
    for (name, link) in [
        ("session_ethernet.pcap", pcap_file::DataLink::ETHERNET),
        ("session_sll2.pcap", pcap_file::DataLink::LINUX_SLL2),
        ("session_null.pcap", pcap_file::DataLink::NULL),
    ] {
        seeds.push((name.to_owned(), as_classic_pcap(&v4, link)));
    }
    seeds
}

fn seed_pcapng(v6: bool) -> Vec<u8> {
    use crate::record::{Record, TlsLegs};
    use std::io::Write as _;
    let (client, proxy, upstream, client2): (
        std::net::SocketAddr,
        std::net::SocketAddr,
        std::net::SocketAddr,
        std::net::SocketAddr,
    ) = if v6 {
        (
            "[::1]:40000".parse().expect("addr"),
            "[::1]:9002".parse().expect("addr"),
            "[::1]:9001".parse().expect("addr"),
            "[::1]:40002".parse().expect("addr"),
        )
    } else {
        (
            "127.0.0.1:40000".parse().expect("addr"),
            "127.0.0.1:9002".parse().expect("addr"),
            "127.0.0.1:9001".parse().expect("addr"),
            "127.0.0.1:40002".parse().expect("addr"),
        )
    };
    let frame = |op: wsproto::OpCode, fin: bool, rsv1: bool, mask: Option<[u8; 4]>, payload: &[u8]| {
        let mut out = Vec::new();
        let header = wsproto::FrameHeader { fin, rsv1, mask, ..wsproto::FrameHeader::new(op, 0) };
        wsproto::encode_frame(&header, payload, &mut out);
        out
    };
    let m = Some([0x37, 0xfa, 0x21, 0x3d]);
    let hello_deflated = [0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00];
    let client_frames = [
        frame(wsproto::OpCode::Text, true, false, m, "héllo".as_bytes()),
        frame(wsproto::OpCode::Binary, false, false, m, &[0, 1, 2]),
        frame(wsproto::OpCode::Continuation, true, false, m, &[255]),
        frame(wsproto::OpCode::Text, true, true, m, &hello_deflated),
        frame(wsproto::OpCode::Ping, true, false, m, b"p1"),
        frame(wsproto::OpCode::Close, true, false, m, &[0x03, 0xe8, b'b', b'y', b'e']),
    ]
    .concat();
    let upstream_frames = [
        frame(wsproto::OpCode::Text, true, true, None, &hello_deflated),
        frame(wsproto::OpCode::Pong, true, false, None, b"p1"),
        frame(wsproto::OpCode::Close, true, false, None, &[0x03, 0xe8]),
    ]
    .concat();
    let response = [RESPONSE, DEFLATE, b"\r\n"].concat();
    let t = |ms: u64| 1_764_460_800_000_000 + ms * 1000;
    let mut records = Vec::new();
    let mut put = |conn: u64, ms: u64, r: Record<'_>| r.encode(conn, t(ms), &mut records);
    put(1, 0, Record::Open { client, proxy, tls: TlsLegs::default() });
    put(1, 1, Record::Connected { upstream });
    put(1, 2, Record::Data { from: Side::Client, bytes: REQUEST });
    put(1, 3, Record::Data { from: Side::Upstream, bytes: &response });
    put(1, 4, Record::Data { from: Side::Client, bytes: &client_frames });
    put(1, 5, Record::Data { from: Side::Upstream, bytes: &upstream_frames });
    put(1, 6, Record::Eof { from: Side::Upstream });
    put(1, 7, Record::Eof { from: Side::Client });
    put(1, 8, Record::End { reset: false });
    put(2, 10, Record::Open { client: client2, proxy, tls: TlsLegs::default() });
    put(2, 11, Record::Connected { upstream });
    put(2, 12, Record::Data { from: Side::Client, bytes: b"GET /healthz HTTP/1.1\r\nHost: h\r\n\r\n" });
    put(2, 13, Record::Data { from: Side::Upstream, bytes: b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok" });
    put(2, 14, Record::Data { from: Side::Client, bytes: b"GET /next HTTP/1.1\r\nHo" });
    put(2, 15, Record::End { reset: true });
    let mut w = crate::capture::pcapng::PcapngWriter::new(Vec::new(), None).expect("into memory");
    w.write_all(&records).expect("into memory");
    w.into_inner().expect("into memory")
}

/// The packets of a pcapng file of link type RAW, as a classic pcap file
/// of link type `link`.
fn as_classic_pcap(pcapng: &[u8], link: pcap_file::DataLink) -> Vec<u8> {
    use pcap_file::pcap::{PcapHeader, PcapPacket, PcapWriter};
    use pcap_file::pcapng::{Block, PcapNgReader};
    let mut reader = PcapNgReader::new(pcapng).expect("a pcapng file");
    let header = PcapHeader { datalink: link, ..PcapHeader::default() };
    let mut w = PcapWriter::with_header(Vec::new(), header).expect("into memory");
    while let Some(Ok(block)) = reader.next_block() {
        let Block::EnhancedPacket(epb) = block else { continue };
        let ip = &epb.data[..];
        let v6 = ip.first().is_some_and(|b| b >> 4 == 6);
        let ethertype: [u8; 2] = if v6 { [0x86, 0xdd] } else { [0x08, 0x00] };
        let link_header: Vec<u8> = match link {
            pcap_file::DataLink::ETHERNET => [&[2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2][..], &ethertype].concat(),
            // Protocol, reserved, interface index, ARPHRD_LOOPBACK,
            // packet type (host), address length, address.
            pcap_file::DataLink::LINUX_SLL2 => {
                [&ethertype[..], &[0, 0], &[0, 0, 0, 1], &[3, 4], &[0, 6], &[0; 8]].concat()
            }
            // The address family in the capturing host's order (Linux's
            // AF_INET 2, AF_INET6 10, little-endian).
            _ => vec![if v6 { 10 } else { 2 }, 0, 0, 0],
        };
        let frame = [&link_header[..], ip].concat();
        let _ = w.write_packet(&PcapPacket::new(epb.timestamp, frame.len() as u32, &frame));
    }
    w.into_writer()
}
