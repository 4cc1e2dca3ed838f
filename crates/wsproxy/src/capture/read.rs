//! `wsproxy read FILE`: a packet capture decoded into the events the live
//! proxy writes, with the capture's timestamps.
//!
//! Reads pcap (microsecond or nanosecond) and pcapng files, with the link
//! types tcpdump and tshark write for the interfaces people capture on:
//! Ethernet (with VLAN tags), Linux cooked (`SLL` and `SLL2`, `tcpdump -i
//! any`), BSD loopback (`NULL`, `LOOP`) and raw IP (`RAW`, `IPV4`, `IPV6`,
//! which wsproxy's own `--pcap` writes). Every TCP conversation is
//! reassembled per direction by sequence number: retransmitted and
//! overlapping bytes are taken once (the first copy), segments that come
//! early wait for the ones before them. Bytes the capture does not have
//! are never guessed: a `gap` event says where and how many, and that
//! direction is not decoded from there on. Each reassembled stream is fed,
//! with the time of the packet that completed it, into the same sans-IO
//! session the proxy runs (`session::Session`), so the events are the
//! proxy's own.
//!
//! Which side is the client: the one that sent the SYN; without a
//! handshake in the capture, the side a `--port`/`--server` hint names as
//! the server's other end, else the one whose first bytes are an HTTP
//! request (or whose peer's are an HTTP response). A conversation where
//! none of this tells is skipped, and the summary says so.
//!
//! A capture that begins inside a connection (no SYN, and the first bytes
//! are not an HTTP request or response), read with `--port`/`--server`, is
//! taken as WebSocket traffic whose handshake the capture missed: in each
//! direction, the bytes before the first frame boundary are skipped and
//! said in a `resync` event, and frames are decoded from there on. A
//! boundary is where a chain of plausible frame headers starts: client
//! frames masked, server frames unmasked, known opcodes, no RSV2/RSV3,
//! control frames final and short, lengths in their minimal form (the
//! rules are in `capture/resync.rs`). The extensions the handshake agreed
//! are unknown then: reserved bits are not judged and compressed payloads
//! are shown as sent.
//!
//! A capture written by wsproxy names its upstream in the interface's
//! comment; the session then rewrites `Host` (and the target) as the proxy
//! did, so the events are the live log's, `forwarded_host` included. For
//! other captures nothing is rewritten.

use std::collections::HashMap;
use std::io::{self, BufReader, Read};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant, UNIX_EPOCH};

use etherparse::{EtherType, NetSlice, SlicedPacket, TransportSlice};
use pcap_file::DataLink;
use pcap_file::pcap::PcapReader;
use pcap_file::pcapng::blocks::interface_description::{InterfaceDescriptionBlock, InterfaceDescriptionOption};
use pcap_file::pcapng::{Block, PcapNgReader};

use crate::Config;
use crate::capture::resync::Resync;
use crate::event::{self, Format, Gap, Side, Stamp, Time};
use crate::log::Events;
use crate::record::{Record, TlsLegs};
use crate::session::{Ending, Session};
use crate::upstream::Upstream;

/// Bytes a direction may hold, waiting for an earlier missing segment,
/// before the missing bytes are reported as a gap.
const MAX_HELD: usize = 8 << 20;
/// Bytes of a conversation kept while it is not known which side is the
/// client.
const MAX_WAITING: usize = 256 << 10;
/// Events are handed to the outputs when this many bytes are waiting.
const BATCH: usize = 64 << 10;
/// The prefix of the interface comment in which wsproxy's `--pcap` names
/// its upstream (`wsproxy upstream: ws://…; host: rewritten`).
pub const UPSTREAM_NOTE: &str = "wsproxy upstream: ";

/// Which side is the server, for conversations whose capture has no TCP
/// handshake.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServerHint {
    /// The server listens on this port.
    Port(u16),
    /// The server is at this address.
    Addr(SocketAddr),
}

impl ServerHint {
    fn is_server(self, a: SocketAddr) -> bool {
        match self {
            ServerHint::Port(p) => a.port() == p,
            ServerHint::Addr(s) => a == s,
        }
    }
}

/// How to decode.
#[derive(Debug, Clone)]
pub struct ReadOptions {
    /// Preview size, `--messages-only`, `--max-inflate`, `--show-secrets`
    /// are taken from here, as the proxy takes them; the upstream and the
    /// Host rule come from the capture.
    pub config: Config,
    /// Which side is the server where the capture does not say; with a
    /// hint, only the conversations it matches are decoded.
    pub server: Option<ServerHint>,
}

/// What a read went through.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReadSummary {
    /// Packets in the capture.
    pub packets: u64,
    /// Packets that are not TCP over IPv4 or IPv6 (or whose link type is not
    /// read), skipped.
    pub not_tcp: u64,
    /// TCP conversations decoded (each a connection in the events).
    pub connections: u64,
    /// TCP conversations skipped: no telling which side is the client, or
    /// not matched by the server hint.
    pub skipped_conversations: u64,
    /// Gaps reported.
    pub gaps: u64,
    /// Directions decoded from a frame boundary found after the start of
    /// the capture (a connection the capture begins inside of).
    pub resyncs: u64,
}

/// Why a capture could not be read (to the end).
#[derive(Debug)]
pub enum ReadError {
    /// Reading the input failed.
    Io(io::Error),
    /// The input is not a pcap or pcapng file (by its first four bytes).
    NotACapture,
    /// The capture is malformed or cut short after `packets` packets; the
    /// events of what came before were written.
    Malformed {
        /// Packets read before.
        packets: u64,
        /// What the capture reader said.
        reason: String,
    },
}

impl std::fmt::Display for ReadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReadError::Io(e) => write!(f, "{e}"),
            ReadError::NotACapture => f.write_str("not a pcap or pcapng capture (its first bytes are neither magic)"),
            ReadError::Malformed { packets, reason } => {
                write!(
                    f,
                    "the capture is cut short or malformed after {packets} packets ({reason}); the events up to there were written"
                )
            }
        }
    }
}

impl std::error::Error for ReadError {}

impl From<io::Error> for ReadError {
    fn from(e: io::Error) -> Self {
        ReadError::Io(e)
    }
}

/// Decodes the capture in `input`, handing the events, rendered in
/// `formats`, to `sink` in batches (one buffer per format, in order). On an
/// error, the events of what was read before are handed over first.
pub fn read(
    input: impl Read,
    options: &ReadOptions,
    formats: &[Format],
    sink: &mut dyn FnMut(&Events) -> io::Result<()>,
) -> Result<ReadSummary, ReadError> {
    let mut input = BufReader::with_capacity(1 << 16, input);
    // The first four bytes, however the input hands them over.
    let mut magic = [0u8; 4];
    let mut got = 0;
    while got < 4 {
        match input.read(&mut magic[got..]) {
            Ok(0) => return Err(ReadError::NotACapture),
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e.into()),
        }
    }
    let input = io::Cursor::new(magic).chain(input);
    let mut decoder = Decoder::new(options, formats);
    let result = match magic {
        [0x0a, 0x0d, 0x0d, 0x0a] => read_pcapng(input, &mut decoder, sink),
        [0xa1, 0xb2, 0xc3, 0xd4] | [0xd4, 0xc3, 0xb2, 0xa1] | [0xa1, 0xb2, 0x3c, 0x4d] | [0x4d, 0x3c, 0xb2, 0xa1] => {
            read_pcap(input, &mut decoder, sink)
        }
        _ => Err(ReadError::NotACapture),
    };
    // What is left (connections still open at the end) ends here, on error
    // too: the events up to the error are written.
    decoder.finish_all();
    sink(&decoder.events)?;
    result.map(|()| decoder.summary)
}

fn malformed(d: &Decoder, e: impl std::fmt::Display) -> ReadError {
    ReadError::Malformed { packets: d.summary.packets, reason: e.to_string() }
}

fn read_pcap(
    input: impl Read,
    d: &mut Decoder,
    sink: &mut dyn FnMut(&Events) -> io::Result<()>,
) -> Result<(), ReadError> {
    let mut reader = PcapReader::new(input).map_err(|e| malformed(d, e))?;
    let linktype = reader.header().datalink;
    while let Some(packet) = reader.next_packet() {
        let packet = packet.map_err(|e| malformed(d, e))?;
        d.packet(linktype, packet.timestamp, &packet.data);
        d.flush_if_full(sink)?;
    }
    Ok(())
}

fn read_pcapng(
    input: impl Read,
    d: &mut Decoder,
    sink: &mut dyn FnMut(&Events) -> io::Result<()>,
) -> Result<(), ReadError> {
    let mut reader = PcapNgReader::new(input).map_err(|e| malformed(d, e))?;
    // Per interface of the current section: link type and ticks per second.
    let mut interfaces: Vec<(DataLink, u128)> = Vec::new();
    while let Some(block) = reader.next_block() {
        let block = block.map_err(|e| malformed(d, e))?;
        match block {
            Block::SectionHeader(_) => interfaces.clear(),
            Block::InterfaceDescription(idb) => {
                d.note_interface(&idb);
                interfaces.push((idb.linktype, ticks_per_second(&idb)));
            }
            Block::EnhancedPacket(epb) => {
                let Some(&(linktype, ticks)) = interfaces.get(epb.interface_id as usize) else {
                    return Err(malformed(
                        d,
                        format!("a packet of interface {} that was never described", epb.interface_id),
                    ));
                };
                // pcap-file hands the raw timestamp over as nanoseconds,
                // whatever the interface's resolution.
                let raw = epb.timestamp.as_nanos();
                let nanos = raw.saturating_mul(1_000_000_000) / ticks.max(1);
                let ts = Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX));
                d.packet(linktype, ts, &epb.data);
                d.flush_if_full(sink)?;
            }
            Block::SimplePacket(spb) => {
                // No timestamp, and always interface 0.
                if let Some(&(linktype, _)) = interfaces.first() {
                    d.packet(linktype, d.last_ts, &spb.data);
                    d.flush_if_full(sink)?;
                }
            }
            _ => {}
        }
    }
    Ok(())
}

/// The interface's timestamp ticks per second (`if_tsresol`; microseconds
/// when absent, pcapng §4.2).
fn ticks_per_second(idb: &InterfaceDescriptionBlock<'_>) -> u128 {
    let resol = idb.options.iter().find_map(|o| match o {
        InterfaceDescriptionOption::IfTsResol(r) => Some(*r),
        _ => None,
    });
    match resol.unwrap_or(6) {
        r if r & 0x80 == 0 => 10u128.checked_pow(u32::from(r)).unwrap_or(u128::MAX),
        r => 1u128.checked_shl(u32::from(r & 0x7f)).unwrap_or(u128::MAX),
    }
}

/// The TCP part of a packet.
struct Segment<'a> {
    src: SocketAddr,
    dst: SocketAddr,
    seq: u32,
    syn: bool,
    ack: bool,
    fin: bool,
    rst: bool,
    payload: &'a [u8],
}

/// The TCP segment in a packet of `linktype`, if it holds one.
fn tcp_segment(linktype: DataLink, data: &[u8]) -> Option<Segment<'_>> {
    let sliced = match linktype {
        DataLink::ETHERNET => SlicedPacket::from_ethernet(data).ok()?,
        DataLink::LINUX_SLL => SlicedPacket::from_linux_sll(data).ok()?,
        // SLL2: the protocol type first, a 20-byte header.
        DataLink::LINUX_SLL2 => {
            let proto = u16::from_be_bytes([*data.first()?, *data.get(1)?]);
            SlicedPacket::from_ether_type(EtherType(proto), data.get(20..)?).ok()?
        }
        // A 4-byte address family before the IP header; the IP version
        // says the rest.
        DataLink::NULL | DataLink::LOOP => SlicedPacket::from_ip(data.get(4..)?).ok()?,
        DataLink::RAW | DataLink::IPV4 | DataLink::IPV6 => SlicedPacket::from_ip(data).ok()?,
        _ => return None,
    };
    let (src, dst): (IpAddr, IpAddr) = match sliced.net? {
        NetSlice::Ipv4(v4) => {
            // A fragment's payload is not a whole segment.
            if v4.header().is_fragmenting_payload() {
                return None;
            }
            (v4.header().source_addr().into(), v4.header().destination_addr().into())
        }
        NetSlice::Ipv6(v6) => (v6.header().source_addr().into(), v6.header().destination_addr().into()),
        _ => return None,
    };
    let TransportSlice::Tcp(tcp) = sliced.transport? else { return None };
    Some(Segment {
        src: SocketAddr::new(src, tcp.source_port()),
        dst: SocketAddr::new(dst, tcp.destination_port()),
        seq: tcp.sequence_number(),
        syn: tcp.syn(),
        ack: tcp.ack(),
        fin: tcp.fin(),
        rst: tcp.rst(),
        payload: tcp.payload(),
    })
}

/// One direction of a conversation, reassembled.
#[derive(Debug, Default)]
struct Direction {
    /// The sequence number of the next byte to deliver.
    next: Option<u32>,
    /// Segments that came before the bytes ahead of them.
    held: Vec<(u32, Vec<u8>)>,
    held_bytes: usize,
    /// The sequence number of the FIN, once seen.
    fin_at: Option<u32>,
    /// The FIN was delivered (or the stream is over anyway).
    ended: bool,
    /// A gap was reported: nothing more is decoded.
    broken: bool,
    /// Bytes delivered (the stream offset).
    offset: u64,
}

/// `a - b` in sequence space (RFC 9293 §3.4: modulo 2^32).
fn seq_diff(a: u32, b: u32) -> i64 {
    i64::from(a.wrapping_sub(b) as i32)
}

impl Direction {
    /// Takes the segment at `seq` and returns the bytes now in order.
    fn accept(&mut self, seq: u32, payload: &[u8], out: &mut Vec<Vec<u8>>) {
        let next = *self.next.get_or_insert(seq);
        let d = seq_diff(seq, next);
        if d > 0 {
            if !payload.is_empty() {
                self.held_bytes += payload.len();
                self.held.push((seq, payload.to_vec()));
            }
            return;
        }
        // Bytes already delivered (a retransmission) are taken once.
        let skip = usize::try_from(-d).unwrap_or(usize::MAX);
        if skip < payload.len() {
            self.deliver(&payload[skip..], out);
        }
        self.drain_held(out);
    }

    fn deliver(&mut self, bytes: &[u8], out: &mut Vec<Vec<u8>>) {
        if let Some(next) = &mut self.next {
            *next = next.wrapping_add(bytes.len() as u32);
        }
        self.offset += bytes.len() as u64;
        out.push(bytes.to_vec());
    }

    fn drain_held(&mut self, out: &mut Vec<Vec<u8>>) {
        while let Some(next) = self.next {
            let Some(i) = self.held.iter().position(|(s, _)| seq_diff(*s, next) <= 0) else { break };
            let (seq, bytes) = self.held.swap_remove(i);
            self.held_bytes -= bytes.len();
            let skip = usize::try_from(seq_diff(next, seq)).unwrap_or(usize::MAX);
            if skip < bytes.len() {
                self.deliver(&bytes[skip..], out);
            }
        }
    }

    /// Whether the FIN is next in order.
    fn fin_due(&self) -> bool {
        !self.ended && self.fin_at.is_some() && self.fin_at == self.next
    }

    /// The missing bytes ahead of what is held (or of the FIN): where they
    /// start and how many; `None` when nothing is missing.
    fn missing(&self) -> Option<u64> {
        let next = self.next?;
        let ahead = self.held.iter().map(|(s, _)| *s).chain(self.fin_at).map(|s| seq_diff(s, next)).filter(|d| *d > 0);
        ahead.min().map(|d| d as u64)
    }
}

/// One TCP conversation.
struct Conversation {
    /// Client and server, once known.
    roles: Option<(SocketAddr, SocketAddr)>,
    /// Segments kept while the roles are not known.
    waiting: Vec<(Time, Vec<u8>, SocketAddr, u32, bool, bool, bool)>,
    waiting_bytes: usize,
    /// Client, upstream ([`Side::index`]).
    dirs: [Direction; 2],
    session: Option<Session>,
    conn: u64,
    skipped: bool,
    done: bool,
    /// The capture has no TCP handshake of this conversation, and the
    /// first bytes have not yet told whether it begins with HTTP.
    undecided: bool,
    /// Per side ([`Side::index`]): the search for the first frame
    /// boundary, in a conversation the capture begins inside of.
    resync: [Option<Resync<Time>>; 2],
}

struct Decoder {
    options: ReadOptions,
    /// The upstream and Host rule wsproxy recorded, if the capture is its own.
    recorded: Option<(Upstream, bool)>,
    conversations: HashMap<(SocketAddr, SocketAddr), Conversation>,
    /// Conversations in the order they began (for the final `end`s).
    order: Vec<(SocketAddr, SocketAddr)>,
    events: Events,
    next_conn: u64,
    summary: ReadSummary,
    first: Option<Duration>,
    base: Instant,
    last_ts: Duration,
}

impl Decoder {
    fn new(options: &ReadOptions, formats: &[Format]) -> Decoder {
        Decoder {
            options: options.clone(),
            recorded: None,
            conversations: HashMap::new(),
            order: Vec::new(),
            events: Events::new(formats),
            next_conn: 1,
            summary: ReadSummary::default(),
            first: None,
            base: Instant::now(),
            last_ts: Duration::ZERO,
        }
    }

    fn flush_if_full(&mut self, sink: &mut dyn FnMut(&Events) -> io::Result<()>) -> io::Result<()> {
        if self.events.len() >= BATCH {
            sink(&self.events)?;
            self.events.clear();
        }
        Ok(())
    }

    /// Reads wsproxy's note of its upstream from an interface's comment.
    fn note_interface(&mut self, idb: &InterfaceDescriptionBlock<'_>) {
        for o in &idb.options {
            if let InterfaceDescriptionOption::Comment(c) = o
                && let Some(rest) = c.strip_prefix(UPSTREAM_NOTE)
            {
                let (url, host) = rest.split_once("; host: ").unwrap_or((rest, "rewritten"));
                if let Ok(u) = Upstream::parse(url) {
                    self.recorded = Some((u, host.trim() == "preserved"));
                }
            }
        }
    }

    /// The time of a packet at `ts` since the Unix epoch.
    fn time(&mut self, ts: Duration) -> Time {
        let first = *self.first.get_or_insert(ts);
        self.last_ts = ts;
        Time { instant: self.base + ts.saturating_sub(first), stamp: Stamp::at(UNIX_EPOCH + ts) }
    }

    fn packet(&mut self, linktype: DataLink, ts: Duration, data: &[u8]) {
        self.summary.packets += 1;
        let t = self.time(ts);
        let Some(seg) = tcp_segment(linktype, data) else {
            self.summary.not_tcp += 1;
            return;
        };
        let key = if seg.src <= seg.dst { (seg.src, seg.dst) } else { (seg.dst, seg.src) };
        if !self.conversations.contains_key(&key) {
            // A new conversation (or a new one on the same addresses after
            // the last one ended).
            self.order.push(key);
            self.conversations.insert(key, new_conversation());
        }
        let Some(mut c) = self.conversations.remove(&key) else { return };
        if c.done {
            if seg.syn && !seg.ack {
                // The addresses are reused by a new connection.
                c = new_conversation();
                self.order.push(key);
            } else {
                // Stragglers after the end (a last ACK, a retransmitted FIN).
                self.conversations.insert(key, c);
                return;
            }
        }
        if !c.skipped {
            if c.roles.is_none() {
                c.roles = self.roles_of(&seg);
                match c.roles {
                    None if self.options.server.is_some() => {
                        // The hint does not match this conversation.
                        c.skipped = true;
                        self.summary.skipped_conversations += 1;
                    }
                    None => {
                        c.waiting_bytes += seg.payload.len();
                        if c.waiting_bytes > MAX_WAITING {
                            c.skipped = true;
                            c.waiting.clear();
                            self.summary.skipped_conversations += 1;
                        } else {
                            c.waiting.push((t, seg.payload.to_vec(), seg.src, seg.seq, seg.syn, seg.fin, seg.rst));
                        }
                    }
                    Some((client, _)) => {
                        self.begin(&mut c, client, &t);
                        // With a hint, the roles come from this first
                        // segment: without a SYN the connection began
                        // before the capture did.
                        c.undecided = self.options.server.is_some() && !seg.syn;
                        for (t, payload, src, seq, syn, fin, rst) in std::mem::take(&mut c.waiting) {
                            let side = if src == client { Side::Client } else { Side::Upstream };
                            self.segment(&mut c, side, &t, seq, syn, fin, rst, &payload);
                        }
                    }
                }
            }
            if let Some((client, _)) = c.roles {
                let side = if seg.src == client { Side::Client } else { Side::Upstream };
                self.segment(&mut c, side, &t, seg.seq, seg.syn, seg.fin, seg.rst, seg.payload);
            }
        }
        self.conversations.insert(key, c);
    }

    /// Client and server of the conversation `seg` belongs to, if this
    /// segment tells (see the module docs).
    fn roles_of(&self, seg: &Segment<'_>) -> Option<(SocketAddr, SocketAddr)> {
        let (a, b) = (seg.src, seg.dst);
        if let Some(hint) = self.options.server {
            return match (hint.is_server(a), hint.is_server(b)) {
                (false, true) => Some((a, b)),
                (true, false) => Some((b, a)),
                _ => None,
            };
        }
        if seg.syn {
            return Some(if seg.ack { (b, a) } else { (a, b) });
        }
        if seg.payload.starts_with(b"HTTP/") {
            return Some((b, a));
        }
        if looks_like_request(seg.payload) {
            return Some((a, b));
        }
        None
    }

    fn begin(&mut self, c: &mut Conversation, client: SocketAddr, t: &Time) {
        let Some((_, server)) = c.roles else { return };
        let mut config = self.options.config.clone();
        match &self.recorded {
            Some((upstream, preserve_host)) => {
                config.upstream = upstream.clone();
                config.preserve_host = *preserve_host;
            }
            None => {
                config.upstream =
                    Upstream { secure: false, host: server.ip().to_string(), port: server.port(), path: String::new() };
                // Nothing was forwarded: nothing to rewrite.
                config.preserve_host = true;
            }
        }
        config.enforce = false;
        c.conn = self.next_conn;
        self.next_conn += 1;
        self.summary.connections += 1;
        // For the outputs that take records (`--har`).
        let open = Record::Open { client, proxy: server, tls: TlsLegs::default() };
        self.events.record(&t.stamp, c.conn, &open);
        self.events.record(&t.stamp, c.conn, &Record::Connected { upstream: server });
        let mut session = Session::new(c.conn, Arc::new(config), client, t, &mut self.events);
        session.set_connected();
        c.session = Some(session);
    }

    #[allow(clippy::too_many_arguments)]
    fn segment(
        &mut self,
        c: &mut Conversation,
        side: Side,
        t: &Time,
        seq: u32,
        syn: bool,
        fin: bool,
        rst: bool,
        payload: &[u8],
    ) {
        let dir = &mut c.dirs[side.index()];
        let mut ready = Vec::new();
        if dir.broken {
            // After a gap nothing more of this side is decoded, or held.
        } else if syn {
            // The SYN takes one sequence number; data starts after it.
            if dir.next.is_none() {
                dir.next = Some(seq.wrapping_add(1));
            }
            dir.accept(seq.wrapping_add(1), payload, &mut ready);
        } else {
            dir.accept(seq, payload, &mut ready);
        }
        if fin {
            let at = seq.wrapping_add(u32::from(syn)).wrapping_add(payload.len() as u32);
            dir.fin_at.get_or_insert(at);
        }
        if dir.held_bytes > MAX_HELD {
            self.gap(c, side, t);
        }
        self.feed(c, side, t, ready);
        if rst {
            for side in [Side::Client, Side::Upstream] {
                if c.dirs[side.index()].missing().is_some() {
                    self.gap(c, side, t);
                }
            }
            self.end(c, Ending::Reset, t);
            return;
        }
        let dir = &mut c.dirs[side.index()];
        if dir.fin_at.is_some() && !dir.fin_due() && !dir.ended && dir.held.is_empty() && dir.missing().is_some() {
            // A FIN ahead of bytes the capture does not have.
            self.gap(c, side, t);
        }
        let dir = &mut c.dirs[side.index()];
        if dir.fin_due() || (dir.broken && dir.fin_at.is_some() && !dir.ended) {
            dir.ended = true;
            self.settle(c, side, t);
            if let Some(s) = &mut c.session {
                s.eof(side, t, &mut self.events);
                let _ = s.take_queued(Side::Client);
                let _ = s.take_queued(Side::Upstream);
            }
        }
        if c.dirs.iter().all(|d| d.ended) {
            self.end(c, Ending::Eof, t);
        }
    }

    /// Feeds in-order bytes of `side` to the session.
    fn feed(&mut self, c: &mut Conversation, side: Side, t: &Time, ready: Vec<Vec<u8>>) {
        if c.dirs[side.index()].broken || c.session.is_none() {
            return;
        }
        if c.undecided
            && let Some(first) = ready.iter().find(|b| !b.is_empty())
        {
            c.undecided = false;
            let http = match side {
                Side::Client => looks_like_request(first),
                Side::Upstream => first.starts_with(b"HTTP/"),
            };
            if !http {
                c.resync = [Some(Resync::new(Side::Client)), Some(Resync::new(Side::Upstream))];
            }
        }
        let mut timed: Vec<(Time, Vec<u8>)> = ready.into_iter().map(|b| (*t, b)).collect();
        if let Some(r) = &mut c.resync[side.index()] {
            for (t, b) in &timed {
                r.push(b, *t);
            }
            if r.boundary(false).is_none() {
                return;
            }
            timed = self.resume(c, side, t);
        }
        self.feed_timed(c, side, timed);
    }

    /// Feeds in-order bytes of `side`, each piece with its time, to the
    /// session.
    fn feed_timed(&mut self, c: &mut Conversation, side: Side, timed: Vec<(Time, Vec<u8>)>) {
        if c.dirs[side.index()].broken {
            return;
        }
        let Some(s) = &mut c.session else { return };
        for (t, bytes) in &timed {
            let _ = s.feed(side, bytes, t, &mut self.events);
            let _ = s.take_queued(Side::Client);
            let _ = s.take_queued(Side::Upstream);
        }
        let _ = s.take_errors();
    }

    /// The first frame boundary of `side` is found: says what was skipped,
    /// starts the session's decoding there and returns the bytes from it.
    fn resume(&mut self, c: &mut Conversation, side: Side, t: &Time) -> Vec<(Time, Vec<u8>)> {
        let Some(r) = c.resync[side.index()].take() else { return Vec::new() };
        let skipped = r.skipped();
        let rest = r.rest();
        // Said at the time of the first frame's first bytes.
        let at = rest.first().map_or(*t, |(t, _)| *t);
        self.events.emit(&at.stamp, c.conn, &event::Resync { from: side, skipped, resumed: true });
        self.summary.resyncs += 1;
        if let Some(s) = &mut c.session {
            s.resume_websocket(side, skipped);
        }
        rest
    }

    /// No more bytes of `side` will come (its end, a gap, the end of the
    /// capture) while its first frame boundary is looked for: what is held
    /// is decoded from a boundary if the end tells one, else said skipped.
    fn settle(&mut self, c: &mut Conversation, side: Side, t: &Time) {
        let Some(r) = &mut c.resync[side.index()] else { return };
        if r.boundary(true).is_some() {
            let timed = self.resume(c, side, t);
            self.feed_timed(c, side, timed);
        } else {
            let skipped = r.skipped() + r.held() as u64;
            c.resync[side.index()] = None;
            self.events.emit(&t.stamp, c.conn, &event::Resync { from: side, skipped, resumed: false });
            // Nothing of this side is decoded.
            c.dirs[side.index()].broken = true;
        }
    }

    /// Reports the bytes `side`'s stream is missing; nothing more of it is
    /// decoded.
    fn gap(&mut self, c: &mut Conversation, side: Side, t: &Time) {
        if c.dirs[side.index()].broken {
            return;
        }
        self.settle(c, side, t);
        let dir = &mut c.dirs[side.index()];
        let len = dir.missing().unwrap_or(0);
        dir.broken = true;
        dir.held.clear();
        dir.held_bytes = 0;
        self.summary.gaps += 1;
        self.events.emit(&t.stamp, c.conn, &Gap { from: side, offset: dir.offset, len });
    }

    fn end(&mut self, c: &mut Conversation, ending: Ending, t: &Time) {
        if c.done {
            return;
        }
        for side in [Side::Client, Side::Upstream] {
            self.settle(c, side, t);
        }
        c.done = true;
        if let Some(mut s) = c.session.take() {
            let _ = s.finish(ending, t, &mut self.events);
            self.events.record(&t.stamp, c.conn, &Record::End { reset: ending == Ending::Reset });
        }
    }

    /// Ends every conversation still open, at the time of the last packet.
    fn finish_all(&mut self) {
        let t = self.time(self.last_ts);
        for key in std::mem::take(&mut self.order) {
            let Some(mut c) = self.conversations.remove(&key) else { continue };
            for side in [Side::Client, Side::Upstream] {
                if c.session.is_some() && c.dirs[side.index()].missing().is_some() {
                    self.gap(&mut c, side, &t);
                }
            }
            if !c.done && c.session.is_none() && !c.skipped && !c.waiting.is_empty() {
                self.summary.skipped_conversations += 1;
            }
            if !c.done
                && let Some(s) = &mut c.session
                && let Some(side) = s.partial_head()
            {
                let reason =
                    format!("the capture ends inside the {}'s HTTP head: not HTTP/1.x, or cut short", side.name());
                s.stop_inspecting(side, &reason, &t, &mut self.events);
            }
            self.end(&mut c, Ending::Eof, &t);
        }
    }
}

fn new_conversation() -> Conversation {
    Conversation {
        roles: None,
        waiting: Vec::new(),
        waiting_bytes: 0,
        dirs: [Direction::default(), Direction::default()],
        session: None,
        conn: 0,
        skipped: false,
        done: false,
        undecided: false,
        resync: [None, None],
    }
}

/// Whether `b` starts like an HTTP/1.x request line (`METHOD SP target SP
/// HTTP/1.`), as far as it goes.
fn looks_like_request(b: &[u8]) -> bool {
    let line = b.split(|&c| c == b'\n').next().unwrap_or(b);
    let mut parts = line.splitn(3, |&c| c == b' ');
    let (Some(method), Some(_), Some(version)) = (parts.next(), parts.next(), parts.next()) else { return false };
    !method.is_empty() && method.iter().all(u8::is_ascii_uppercase) && version.starts_with(b"HTTP/1.")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequence_numbers_wrap() {
        assert_eq!(seq_diff(5, u32::MAX - 4), 10);
        assert_eq!(seq_diff(u32::MAX - 4, 5), -10);
    }

    #[test]
    fn reassembly_takes_retransmissions_once_and_waits_for_what_is_missing() {
        let mut d = Direction::default();
        let mut out = Vec::new();
        let base = u32::MAX - 2;
        d.accept(base, b"abc", &mut out);
        d.accept(base.wrapping_add(6), b"ghi", &mut out); // early
        d.accept(base, b"abc", &mut out); // retransmitted
        assert_eq!(d.missing(), Some(3));
        d.accept(base.wrapping_add(2), b"cdef", &mut out); // overlapping, fills the hole
        assert_eq!(out.concat(), b"abcdefghi");
        assert_eq!((d.offset, d.missing(), d.held_bytes), (9, None, 0));
    }

    #[test]
    fn a_direction_after_a_gap_holds_nothing() {
        let options = ReadOptions {
            config: Config::new(Upstream::parse("ws://127.0.0.1:1").expect("url")),
            server: Some(ServerHint::Port(80)),
        };
        let mut d = Decoder::new(&options, &[Format::Json]);
        let (client, server): (SocketAddr, SocketAddr) =
            ("10.0.0.1:5000".parse().expect("addr"), "10.0.0.2:80".parse().expect("addr"));
        let t = d.time(Duration::from_secs(1));
        let mut c = new_conversation();
        c.roles = Some((client, server));
        d.begin(&mut c, client, &t);
        d.segment(&mut c, Side::Client, &t, 1000, false, false, false, b"GET / HTTP/1.1\r\n");
        // Far ahead of what came: held until the cap, then a gap.
        let chunk = vec![b'x'; 64 << 10];
        for i in 0..400u32 {
            d.segment(&mut c, Side::Client, &t, 1_000_000 + i * (64 << 10), false, false, false, &chunk);
        }
        let dir = &c.dirs[Side::Client.index()];
        assert!(dir.broken && dir.held.is_empty() && dir.held_bytes == 0);
        assert_eq!(d.summary.gaps, 1);
    }

    #[test]
    fn requests_are_told_by_their_first_line() {
        assert!(looks_like_request(b"GET / HTTP/1.1\r\nHost: x\r\n"));
        assert!(!looks_like_request(b"HTTP/1.1 200 OK\r\n"));
        assert!(!looks_like_request(b"\x16\x03\x01"));
        assert!(!looks_like_request(b"get / HTTP/1.1"));
    }
}
