//! `--pcap FILE`: the bytes each side sent, written as pcapng while they
//! pass.
//!
//! One section, one interface (link type `RAW`: IPv4 and IPv6 packets with
//! no link header), nanosecond timestamp resolution (`if_tsresol` 9; the
//! values are the proxy's microseconds). Each proxied connection becomes a
//! synthesized TCP conversation from the client's real address and port to
//! the upstream's real address and port (IPv4, or IPv6 when either is
//! IPv6, an IPv4 address then written IPv4-mapped, `::ffff:a.b.c.d`):
//!
//! - a three-way handshake (SYN, SYN-ACK, ACK) at the time the client
//!   connected, each SYN with MSS and window scale options (window 65535,
//!   scale 8: a 16 MiB window, larger than any read the proxy makes, so no
//!   analysis sees a full window). The SYN carries a pcapng comment: the
//!   connection id and, where a leg was TLS, that the bytes are the
//!   decrypted plaintext;
//! - each read as data segments of at most [`MSS_V4`] (IPv4) or
//!   [`MSS_V6`] (IPv6) bytes, PSH on the last, acknowledging all the other
//!   side sent so far, then a pure ACK from the other side: sequence and
//!   acknowledgment numbers are exact, so no analysis flags a lost,
//!   unseen or retransmitted segment;
//! - a FIN (and its ACK) where a side ended its stream; at the end a FIN
//!   for each side that had not sent one, or a RST when the connection
//!   ended by a reset or an error.
//!
//! The bytes are those each side sent, as the proxy read them: the client's
//! request head as the client wrote it (the log's `forwarded_host` says
//! what the upstream got), and none of the proxy's own answers (a 502, a
//! refusal or close frames under `--enforce`). A client whose upstream was
//! never reached is shown talking to the proxy's own address.
//!
//! Packets are written in batches: every time the log writer flushes, the
//! records it was handed are sorted by time (the two directions of a
//! connection reach the writer in separate batches) and written as whole
//! pcapng blocks, then flushed, so the file is a valid capture after every
//! batch and after Ctrl-C. Each payload is copied once on the way, by the
//! kernel: the blocks' and packets' headers are built in a buffer of their
//! own (checksums computed over the payloads where they lie) and written
//! with the payloads straight from the records, a megabyte at a time with
//! `writev`. Memory stays bounded: per open connection a few counters (and,
//! until its upstream is connected, the bytes of its first request head),
//! the records of one flush (at most 4 MiB and a batch) and a
//! megabyte of headers.

use std::borrow::Cow;
use std::collections::HashMap;
use std::io::{self, IoSlice, Write};
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use etherparse::{Ipv4Header, Ipv6Header, PacketBuilder, TcpHeader, TcpOptionElement, ip_number};
use pcap_file::DataLink;
use pcap_file::pcapng::PcapNgWriter;
use pcap_file::pcapng::blocks::enhanced_packet::{EnhancedPacketBlock, EnhancedPacketOption};
use pcap_file::pcapng::blocks::interface_description::{InterfaceDescriptionBlock, InterfaceDescriptionOption};
use pcap_file::pcapng::blocks::section_header::{SectionHeaderBlock, SectionHeaderOption};

use super::read::UPSTREAM_NOTE;
use crate::event::Side;
use crate::record::{Record, TlsLegs, decode};
use crate::upstream::Upstream;

/// Largest TCP payload per IPv4 packet: a 1500-byte Ethernet MTU less 20
/// bytes of IPv4 header and 20 of TCP header.
pub const MSS_V4: usize = 1460;
/// Largest TCP payload per IPv6 packet: 1500 less 40 bytes of IPv6 header
/// and 20 of TCP header.
pub const MSS_V6: usize = 1440;
/// The advertised window (with [`WINDOW_SCALE`]: 16 MiB).
const WINDOW: u16 = 65535;
/// The window scale shift both SYNs offer (RFC 7323 §2).
const WINDOW_SCALE: u8 = 8;
/// IPv4 TTL and IPv6 hop limit of the synthesized packets.
const TTL: u8 = 64;
/// Records kept before they are written even without a flush.
const MAX_PENDING: usize = 4 << 20;
/// Encoded blocks kept before they are written out (each write is whole
/// blocks).
const MAX_BLOCKS: usize = 1 << 20;
/// Payloads shorter than this are copied into the block buffer rather
/// than written from the records: a slice per 16-byte message would make
/// `writev` slower than the copy.
const MIN_SOURCE_PIECE: usize = 512;
/// Slices per `writev` (Linux's `IOV_MAX`).
const MAX_SLICES: usize = 1024;
/// Bytes of a connection's records kept while its upstream is not
/// connected yet (its first request head, at most 64 KiB and a read).
const MAX_HELD: usize = 1 << 20;

/// One connection's synthesized TCP conversation.
#[derive(Debug)]
struct Conv {
    client: SocketAddr,
    proxy: SocketAddr,
    tls: TlsLegs,
    opened_us: u64,
    /// The server's address once the conversation has begun.
    server: Option<SocketAddr>,
    /// Records (encoded) that came before the server's address was known.
    held: Vec<u8>,
    /// The next sequence number of each side ([`Side::index`]).
    next: [u32; 2],
    fin: [bool; 2],
    ended: bool,
}

/// Writes the records of [`crate::Format::Capture`] as pcapng to `W`.
///
/// It is the writer of an [`crate::log::Output`]: `write` takes records
/// (whole or cut anywhere), `flush` writes the packets of those it has.
pub struct PcapngWriter<W: Write> {
    out: W,
    /// pcapng blocks, encoded here and written to `out` in one piece.
    blocks: PcapNgWriter<Vec<u8>>,
    pending: Vec<u8>,
    convs: HashMap<u64, Conv>,
    /// One packet being built (reused: no allocation per packet).
    scratch: Vec<u8>,
    /// What the next write is made of, in order: ranges of `blocks` (the
    /// blocks' headers, the packets' headers) and of the records being
    /// drained (the packets' payloads, never copied: see [`Piece`]).
    pieces: Vec<Piece>,
    /// Where the part of `blocks` not yet in `pieces` starts.
    blocks_mark: usize,
    /// Where the record being drained is: which buffer of them, its
    /// address and length (to find a payload's place in it).
    source: (usize, usize, usize),
    /// Payload bytes in `pieces`.
    payload_bytes: usize,
}

/// A part of the next write.
#[derive(Debug, Clone)]
enum Piece {
    Blocks(std::ops::Range<usize>),
    /// A payload, in the records being drained (which buffer of them,
    /// where in it).
    Source(usize, std::ops::Range<usize>),
}

impl<W: Write> PcapngWriter<W> {
    /// Starts a capture on `out`: writes the section header and the
    /// interface description at once. `upstream`, the proxy's upstream and
    /// whether it keeps the client's `Host` (`--preserve-host`), is noted
    /// in the interface's comment, so that `wsproxy read` rewrites requests
    /// as the proxy did.
    pub fn new(out: W, upstream: Option<(&Upstream, bool)>) -> io::Result<PcapngWriter<W>> {
        let comment = upstream.map(|(upstream, preserve_host)| {
            let host = if preserve_host { "preserved" } else { "rewritten" };
            format!("{UPSTREAM_NOTE}{upstream}; host: {host}")
        });
        PcapngWriter::with_comment(out, comment)
    }

    /// Starts a capture on `out` whose interface carries `comment` (if
    /// any) instead of the upstream note of [`PcapngWriter::new`].
    pub fn with_comment(mut out: W, comment: Option<String>) -> io::Result<PcapngWriter<W>> {
        let section = SectionHeaderBlock {
            options: vec![SectionHeaderOption::UserApplication(Cow::Borrowed(concat!(
                "wsproxy ",
                env!("CARGO_PKG_VERSION")
            )))],
            ..SectionHeaderBlock::default()
        };
        let mut blocks = PcapNgWriter::with_section_header(Vec::new(), section).map_err(io::Error::other)?;
        let options = comment.map(|c| InterfaceDescriptionOption::Comment(Cow::Owned(c)));
        let interface = InterfaceDescriptionBlock {
            linktype: DataLink::RAW,
            snaplen: 0,
            options: vec![
                InterfaceDescriptionOption::IfName(Cow::Borrowed("wsproxy")),
                InterfaceDescriptionOption::IfDescription(Cow::Borrowed(
                    "TCP conversations synthesized from the bytes wsproxy relayed (TLS legs as plaintext)",
                )),
                // pcap-file writes timestamps in nanoseconds.
                InterfaceDescriptionOption::IfTsResol(9),
            ]
            .into_iter()
            .chain(options)
            .collect(),
        };
        blocks.write_pcapng_block(interface).map_err(io::Error::other)?;
        out.write_all(blocks.get_ref())?;
        out.flush()?;
        blocks.get_mut().clear();
        Ok(PcapngWriter {
            out,
            blocks,
            pending: Vec::new(),
            convs: HashMap::new(),
            scratch: Vec::new(),
            pieces: Vec::new(),
            blocks_mark: 0,
            source: (0, 0, 0),
            payload_bytes: 0,
        })
    }

    /// Writes out what is pending and returns the underlying writer.
    pub fn into_inner(mut self) -> io::Result<W> {
        self.flush()?;
        Ok(self.out)
    }

    /// Writes the packets of the whole records pending, sorted by time.
    fn drain(&mut self) -> io::Result<()> {
        let pending = std::mem::take(&mut self.pending);
        let result = self.write_sorted(&[&pending]);
        // What is left is part of a record: kept, in the same buffer.
        self.pending = pending;
        let at = result?;
        self.pending.drain(..at);
        Ok(())
    }

    /// Writes the packets of the whole records in `sources`, sorted by
    /// time; returns the length of the whole records at the start of the
    /// last source (what follows is part of a record).
    fn write_sorted(&mut self, sources: &[&[u8]]) -> io::Result<usize> {
        let mut records = Vec::new();
        let mut at = 0;
        for (i, source) in sources.iter().enumerate() {
            at = 0;
            while let Some((decoded, used)) =
                decode(&source[at..]).map_err(|()| io::Error::other("a capture record that cannot be decoded"))?
            {
                records.push((decoded, i, at..at + used));
                at += used;
            }
        }
        // Stable: records of the same time keep their order.
        records.sort_by_key(|((_, us, _), _, _)| *us);
        for ((conn, us, record), i, range) in records {
            self.source = (i, sources[i].as_ptr() as usize, sources[i].len());
            self.apply(conn, us, record, &sources[i][range]);
            if self.blocks.get_ref().len() + self.payload_bytes >= MAX_BLOCKS {
                self.write_blocks(sources)?;
            }
        }
        let written = self.write_blocks(sources);
        self.source = (0, 0, 0);
        written.map(|()| at)
    }

    /// Writes the encoded blocks out, whole: the headers from `blocks`,
    /// the payloads from `source` (the records being drained), in as few
    /// `writev` calls as the system allows.
    fn write_blocks(&mut self, sources: &[&[u8]]) -> io::Result<()> {
        self.close_blocks_piece();
        let blocks = self.blocks.get_ref();
        let mut slices: Vec<IoSlice<'_>> = self
            .pieces
            .iter()
            .map(|p| match p {
                Piece::Blocks(r) => IoSlice::new(&blocks[r.clone()]),
                Piece::Source(i, r) => IoSlice::new(&sources[*i][r.clone()]),
            })
            .collect();
        let mut rest = &mut slices[..];
        while !rest.is_empty() {
            let n = rest.len().min(MAX_SLICES);
            match self.out.write_vectored(&rest[..n]) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(written) => IoSlice::advance_slices(&mut rest, written),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        self.pieces.clear();
        self.blocks.get_mut().clear();
        self.blocks_mark = 0;
        self.payload_bytes = 0;
        Ok(())
    }

    /// Puts what `blocks` holds past `blocks_mark` into `pieces`.
    fn close_blocks_piece(&mut self) {
        let end = self.blocks.get_ref().len();
        if end > self.blocks_mark {
            self.pieces.push(Piece::Blocks(self.blocks_mark..end));
            self.blocks_mark = end;
        }
    }

    fn apply(&mut self, conn: u64, us: u64, record: Record<'_>, encoded: &[u8]) {
        if let Record::Open { client, proxy, tls } = record {
            let conv = Conv {
                client,
                proxy,
                tls,
                opened_us: us,
                server: None,
                held: Vec::new(),
                next: [isn(conn, Side::Client), isn(conn, Side::Upstream)],
                fin: [false; 2],
                ended: false,
            };
            self.convs.insert(conn, conv);
            return;
        }
        let Some(mut conv) = self.convs.remove(&conn) else { return };
        if conv.server.is_none() {
            match record {
                Record::Connected { upstream } => {
                    self.begin(conn, &mut conv, upstream);
                    let held = std::mem::take(&mut conv.held);
                    let mut at = 0;
                    while let Ok(Some(((_, us, r), used))) = decode(&held[at..]) {
                        self.packets(&mut conv, us, r);
                        at += used;
                    }
                }
                Record::End { .. } => {
                    // Never connected: the client talked to the proxy.
                    let proxy = conv.proxy;
                    self.begin(conn, &mut conv, proxy);
                    let held = std::mem::take(&mut conv.held);
                    let mut at = 0;
                    while let Ok(Some(((_, us, r), used))) = decode(&held[at..]) {
                        self.packets(&mut conv, us, r);
                        at += used;
                    }
                    self.packets(&mut conv, us, record);
                }
                _ if conv.held.len() + encoded.len() <= MAX_HELD => conv.held.extend_from_slice(encoded),
                // More than a first head before the upstream: not shown.
                _ => {}
            }
        } else {
            self.packets(&mut conv, us, record);
        }
        if !conv.ended {
            self.convs.insert(conn, conv);
        }
    }

    /// The three-way handshake, at the time the client connected.
    fn begin(&mut self, conn: u64, conv: &mut Conv, server: SocketAddr) {
        conv.server = Some(server);
        let mut comment = format!("wsproxy connection {conn}: client {} → upstream {server}", conv.client);
        if server == conv.proxy {
            comment += " (the upstream was not reached: the server side is the proxy itself)";
        }
        match (conv.tls.client, conv.tls.upstream) {
            (false, false) => {}
            (true, false) => comment += "; the client leg was TLS: these are its decrypted bytes",
            (false, true) => comment += "; the upstream leg was TLS: these are its decrypted bytes",
            (true, true) => comment += "; both legs were TLS: these are the decrypted bytes",
        }
        let us = conv.opened_us;
        let syn = Flags { syn: true, ..Flags::default() };
        self.packet(conv, us, Side::Client, syn, &[], Some(comment));
        conv.next[0] = conv.next[0].wrapping_add(1);
        self.packet(conv, us, Side::Upstream, Flags { ack: true, ..syn }, &[], None);
        conv.next[1] = conv.next[1].wrapping_add(1);
        self.packet(conv, us, Side::Client, Flags { ack: true, ..Flags::default() }, &[], None);
    }

    /// The packets of one record of a begun conversation.
    fn packets(&mut self, conv: &mut Conv, us: u64, record: Record<'_>) {
        let ack = Flags { ack: true, ..Flags::default() };
        match record {
            Record::Data { from, bytes } if !bytes.is_empty() && !conv.fin[from.index()] => {
                let mss = if is_v6(conv) { MSS_V6 } else { MSS_V4 };
                let mut segments = bytes.chunks(mss).peekable();
                while let Some(segment) = segments.next() {
                    let flags = Flags { psh: segments.peek().is_none(), ..ack };
                    self.packet(conv, us, from, flags, segment, None);
                    conv.next[from.index()] = conv.next[from.index()].wrapping_add(segment.len() as u32);
                }
                self.packet(conv, us, from.other(), ack, &[], None);
            }
            Record::Eof { from } => self.fin(conv, us, from),
            Record::End { reset } => {
                for side in [Side::Client, Side::Upstream] {
                    if conv.fin[side.index()] {
                        continue;
                    }
                    if reset {
                        self.packet(conv, us, side, Flags { rst: true, ..ack }, &[], None);
                        break;
                    }
                    self.fin(conv, us, side);
                }
                conv.ended = true;
            }
            Record::Data { .. } | Record::Open { .. } | Record::Connected { .. } => {}
        }
    }

    fn fin(&mut self, conv: &mut Conv, us: u64, from: Side) {
        if conv.fin[from.index()] {
            return;
        }
        self.packet(conv, us, from, Flags { fin: true, ack: true, ..Flags::default() }, &[], None);
        conv.next[from.index()] = conv.next[from.index()].wrapping_add(1);
        conv.fin[from.index()] = true;
        self.packet(conv, us, from.other(), Flags { ack: true, ..Flags::default() }, &[], None);
    }

    /// A SYN (with its options, and the connection's comment): built by
    /// etherparse's `PacketBuilder` and written by pcap-file, two per
    /// connection.
    fn handshake_packet(
        &mut self,
        conv: &Conv,
        us: u64,
        from: Side,
        flags: Flags,
        payload: &[u8],
        comment: Option<String>,
    ) {
        let Some(server) = conv.server else { return };
        let (src, dst) = match from {
            Side::Client => (conv.client, server),
            Side::Upstream => (server, conv.client),
        };
        let seq = conv.next[from.index()];
        let ack = conv.next[from.other().index()];
        let builder = if is_v6(conv) {
            PacketBuilder::ipv6(v6(src.ip()), v6(dst.ip()), TTL)
        } else {
            PacketBuilder::ipv4(v4(src.ip()), v4(dst.ip()), TTL)
        };
        let mut tcp = builder.tcp(src.port(), dst.port(), seq, WINDOW);
        if flags.ack {
            tcp = tcp.ack(ack);
        }
        if flags.syn {
            let mss = if is_v6(conv) { MSS_V6 } else { MSS_V4 } as u16;
            tcp = tcp.syn();
            tcp = match tcp.options(&[
                TcpOptionElement::MaximumSegmentSize(mss),
                TcpOptionElement::Noop,
                TcpOptionElement::WindowScale(WINDOW_SCALE),
            ]) {
                Ok(t) => t,
                Err(_) => return,
            };
        }
        if flags.fin {
            tcp = tcp.fin();
        }
        if flags.rst {
            tcp = tcp.rst();
        }
        if flags.psh {
            tcp = tcp.psh();
        }
        self.scratch.clear();
        // The payload is at most an MSS: the packet is always valid.
        if tcp.write(&mut self.scratch, payload).is_err() {
            return;
        }
        let options = comment.map(|c| vec![EnhancedPacketOption::Comment(Cow::Owned(c))]).unwrap_or_default();
        let block = EnhancedPacketBlock {
            interface_id: 0,
            timestamp: Duration::from_micros(us),
            original_len: self.scratch.len() as u32,
            data: Cow::Borrowed(&self.scratch),
            options,
        };
        // Into a Vec: cannot fail.
        let _ = self.blocks.write_pcapng_block(block);
    }

    /// One packet from `from`, with the current sequence and
    /// acknowledgment numbers.
    fn packet(&mut self, conv: &Conv, us: u64, from: Side, flags: Flags, payload: &[u8], comment: Option<String>) {
        let seq = conv.next[from.index()];
        let ack = conv.next[from.other().index()];
        if flags.syn || comment.is_some() {
            self.handshake_packet(conv, us, from, flags, payload, comment);
            return;
        }
        // Every other packet: its block's header and the packet's IP and
        // TCP headers go into the block buffer; the payload is written from
        // where the record has it (copied only when it is not there: bytes
        // held until the upstream connected, and short ones).
        let (source, base, len) = self.source;
        let at = (payload.as_ptr() as usize).wrapping_sub(base);
        let in_source = payload.len() >= MIN_SOURCE_PIECE && at <= len && payload.len() <= len - at;
        let blocks = self.blocks.get_mut();
        let start = blocks.len();
        blocks.extend_from_slice(&[0; EPB_HEAD]);
        let headers = match headers(conv, from, flags, seq, ack, payload) {
            Some(h) => h,
            None => {
                blocks.truncate(start);
                return;
            }
        };
        blocks.extend_from_slice(&headers);
        if in_source {
            self.close_blocks_piece();
            self.pieces.push(Piece::Source(source, at..at + payload.len()));
            self.payload_bytes += payload.len();
        } else {
            self.blocks.get_mut().extend_from_slice(payload);
        }
        let blocks = self.blocks.get_mut();
        let captured = headers.len() + payload.len();
        blocks.resize(blocks.len() + (4 - captured % 4) % 4, 0);
        let block_len = (EPB_HEAD + captured + (4 - captured % 4) % 4 + 4) as u32;
        blocks.extend_from_slice(&block_len.to_be_bytes());
        let nanos = us.saturating_mul(1000);
        let head = [
            ENHANCED_PACKET_BLOCK,
            block_len,
            0, // interface 0
            (nanos >> 32) as u32,
            nanos as u32,
            captured as u32,
            captured as u32,
        ];
        // Big-endian, as the section header pcap-file wrote says.
        for (field, value) in blocks[start..start + EPB_HEAD].chunks_exact_mut(4).zip(head) {
            field.copy_from_slice(&value.to_be_bytes());
        }
    }
}

/// The IP and TCP headers of a packet of `conv` from `from` carrying
/// `payload` (its checksum included), as etherparse's `PacketBuilder`
/// writes them (a test checks they are the same).
fn headers(conv: &Conv, from: Side, flags: Flags, seq: u32, ack: u32, payload: &[u8]) -> Option<Vec<u8>> {
    let server = conv.server?;
    let (src, dst) = match from {
        Side::Client => (conv.client, server),
        Side::Upstream => (server, conv.client),
    };
    let mut tcp = TcpHeader::new(src.port(), dst.port(), seq, WINDOW);
    tcp.ack = flags.ack;
    if flags.ack {
        tcp.acknowledgment_number = ack;
    }
    tcp.syn = flags.syn;
    tcp.fin = flags.fin;
    tcp.rst = flags.rst;
    tcp.psh = flags.psh;
    let mut out = Vec::with_capacity(Ipv6Header::LEN + TcpHeader::MIN_LEN);
    let tcp_len = u16::try_from(tcp.header_len() + payload.len()).ok()?;
    if is_v6(conv) {
        let ip = Ipv6Header {
            payload_length: tcp_len,
            next_header: ip_number::TCP,
            hop_limit: TTL,
            source: v6(src.ip()),
            destination: v6(dst.ip()),
            ..Ipv6Header::default()
        };
        tcp.checksum = tcp.calc_checksum_ipv6(&ip, payload).ok()?;
        out.extend_from_slice(&ip.to_bytes());
    } else {
        let mut ip =
            Ipv4Header { source: v4(src.ip()), destination: v4(dst.ip()), time_to_live: TTL, ..Ipv4Header::default() };
        ip.protocol = ip_number::TCP;
        ip.set_payload_len(usize::from(tcp_len)).ok()?;
        ip.header_checksum = ip.calc_header_checksum();
        tcp.checksum = tcp.calc_checksum_ipv4(&ip, payload).ok()?;
        out.extend_from_slice(&ip.to_bytes());
    }
    out.extend_from_slice(&tcp.to_bytes());
    Some(out)
}

/// The type of an Enhanced Packet Block (pcapng §4.3).
const ENHANCED_PACKET_BLOCK: u32 = 6;
/// Bytes of an Enhanced Packet Block before the packet: type, length,
/// interface, timestamp (high, low), captured and original lengths.
const EPB_HEAD: usize = 28;

#[derive(Debug, Clone, Copy, Default)]
struct Flags {
    syn: bool,
    ack: bool,
    fin: bool,
    rst: bool,
    psh: bool,
}

/// A fixed initial sequence number per connection and side: captures of
/// the same traffic are the same.
fn isn(conn: u64, side: Side) -> u32 {
    (conn as u32).wrapping_mul(0x9e37_79b9).wrapping_add(side.index() as u32 * 0x4000_0000)
}

fn is_v6(conv: &Conv) -> bool {
    conv.client.is_ipv6() || conv.server.is_some_and(|s| s.is_ipv6())
}

fn v6(ip: IpAddr) -> [u8; 16] {
    match ip {
        IpAddr::V4(v4) => v4.to_ipv6_mapped().octets(),
        IpAddr::V6(v6) => v6.octets(),
    }
}

fn v4(ip: IpAddr) -> [u8; 4] {
    match ip {
        IpAddr::V4(v4) => v4.octets(),
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or([0; 4], |v4| v4.octets()),
    }
}

impl<W: Write> Write for PcapngWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.pending.extend_from_slice(buf);
        if self.pending.len() > MAX_PENDING {
            self.drain()?;
        }
        Ok(buf.len())
    }

    /// Several buffers of whole records (a round of the log writer's
    /// batches): their packets are written at once, sorted by time, the
    /// payloads straight from the buffers, nothing copied. Records cut
    /// short go through `write`.
    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        let total = bufs.iter().map(|b| b.len()).sum();
        let sources: Vec<&[u8]> = bufs.iter().map(|b| &**b).collect();
        if self.pending.is_empty() && sources.iter().all(|s| holds_whole_records(s)) {
            self.write_sorted(&sources)?;
        } else {
            for source in sources {
                self.write_all(source)?;
            }
        }
        Ok(total)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.drain()?;
        self.out.flush()
    }
}

/// Whether `b` is whole records, none cut short.
fn holds_whole_records(mut b: &[u8]) -> bool {
    while let Ok(Some((_, used))) = decode(b) {
        b = &b[used..];
    }
    b.is_empty()
}

#[cfg(test)]
mod tests {
    use pcap_file::pcapng::{Block, PcapNgReader};

    use super::*;

    /// The records of one connection whose reads have `sizes` bytes, each
    /// in a buffer of its own.
    fn records_of_reads(client: &str, upstream: &str, sizes: &[usize]) -> Vec<Vec<u8>> {
        let (client, upstream) = (client.parse().expect("addr"), upstream.parse().expect("addr"));
        let mut records = vec![Vec::new(), Vec::new()];
        Record::Open { client, proxy: upstream, tls: TlsLegs::default() }.encode(1, 10, &mut records[0]);
        Record::Connected { upstream }.encode(1, 11, &mut records[1]);
        for (i, &n) in sizes.iter().enumerate() {
            let from = if i % 2 == 0 { Side::Client } else { Side::Upstream };
            let bytes: Vec<u8> = (0..n).map(|b| (b * 7 + i) as u8).collect();
            let mut record = Vec::new();
            // Out of time order, as the two directions' batches come.
            let us = if i % 2 == 0 { 12 + i as u64 + 1 } else { 12 + i as u64 - 1 };
            Record::Data { from, bytes: &bytes }.encode(1, us, &mut record);
            records.push(record);
        }
        let mut end = Vec::new();
        Record::End { reset: false }.encode(1, 99, &mut end);
        records.push(end);
        records
    }

    /// Records handed over as separate buffers in one `write_vectored`
    /// (as the log writer does), whole or cut anywhere, make the same
    /// capture as all of them in one `write`.
    #[test]
    fn records_in_several_buffers_make_the_same_capture() {
        let records = records_of_reads("127.0.0.1:4000", "127.0.0.1:9001", &[3, 3000, 70_000, 600, 1]);
        let all = records.concat();
        let mut w = PcapngWriter::new(Vec::new(), None).expect("into memory");
        w.write_all(&all).expect("into memory");
        let expected = w.into_inner().expect("into memory");
        let cut_at = all.len() / 2;
        let cut = [all[..cut_at].to_vec(), all[cut_at..].to_vec()];
        for buffers in [&records[..], &cut[..]] {
            let mut w = PcapngWriter::new(Vec::new(), None).expect("into memory");
            let slices: Vec<IoSlice<'_>> = buffers.iter().map(|b| IoSlice::new(b)).collect();
            assert_eq!(w.write_vectored(&slices).expect("into memory"), all.len());
            assert!(w.into_inner().expect("into memory") == expected, "{} buffers", buffers.len());
        }
    }

    /// A capture of one connection whose reads have `sizes` bytes.
    fn capture_of_reads(client: &str, upstream: &str, sizes: &[usize]) -> Vec<u8> {
        let (client, upstream) = (client.parse().expect("addr"), upstream.parse().expect("addr"));
        let mut records = Vec::new();
        Record::Open { client, proxy: upstream, tls: TlsLegs::default() }.encode(1, 10, &mut records);
        Record::Connected { upstream }.encode(1, 11, &mut records);
        for (i, &n) in sizes.iter().enumerate() {
            let from = if i % 2 == 0 { Side::Client } else { Side::Upstream };
            let bytes: Vec<u8> = (0..n).map(|b| (b * 7 + i) as u8).collect();
            Record::Data { from, bytes: &bytes }.encode(1, 12 + i as u64, &mut records);
        }
        Record::End { reset: false }.encode(1, 99, &mut records);
        let mut w = PcapngWriter::new(Vec::new(), None).expect("into memory");
        w.write_all(&records).expect("into memory");
        w.into_inner().expect("into memory")
    }

    /// The headers built for each packet are those etherparse's
    /// `PacketBuilder` writes, checksums included.
    #[test]
    fn headers_are_packet_builders() {
        for (client, server) in [("127.0.0.1:4000", "10.0.0.1:9001"), ("[::1]:4000", "[2001:db8::1]:443")] {
            let conv = Conv {
                client: client.parse().expect("addr"),
                proxy: server.parse().expect("addr"),
                tls: TlsLegs::default(),
                opened_us: 0,
                server: Some(server.parse().expect("addr")),
                held: Vec::new(),
                next: [7, 0xffff_fff0],
                fin: [false; 2],
                ended: false,
            };
            let ack = Flags { ack: true, ..Flags::default() };
            let all = [ack, Flags { psh: true, ..ack }, Flags { fin: true, ..ack }, Flags { rst: true, ..ack }];
            for flags in all {
                for len in [0, 1, 2, 3, 1439, 1440] {
                    for from in [Side::Client, Side::Upstream] {
                        let payload: Vec<u8> = (0..len).map(|i| (i * 31 + len) as u8).collect();
                        let (src, dst) = match from {
                            Side::Client => (conv.client, server.parse().expect("addr")),
                            Side::Upstream => (server.parse().expect("addr"), conv.client),
                        };
                        let (seq, ack_no) = (conv.next[from.index()], conv.next[from.other().index()]);
                        let builder = if is_v6(&conv) {
                            PacketBuilder::ipv6(v6(src.ip()), v6(dst.ip()), TTL)
                        } else {
                            PacketBuilder::ipv4(v4(src.ip()), v4(dst.ip()), TTL)
                        };
                        let mut tcp = builder.tcp(src.port(), dst.port(), seq, WINDOW).ack(ack_no);
                        if flags.psh {
                            tcp = tcp.psh();
                        }
                        if flags.fin {
                            tcp = tcp.fin();
                        }
                        if flags.rst {
                            tcp = tcp.rst();
                        }
                        let mut expected = Vec::new();
                        tcp.write(&mut expected, &payload).expect("valid");
                        let mut got = headers(&conv, from, flags, seq, ack_no, &payload).expect("valid");
                        got.extend_from_slice(&payload);
                        assert_eq!(got, expected, "{client} {flags:?} {len} {from:?}");
                    }
                }
            }
        }
    }

    /// The packet blocks built in place are exactly what pcap-file writes
    /// for the same packets.
    #[test]
    fn blocks_built_in_place_are_pcap_files_encoding() {
        let sizes = [1, 2, 3, 4, 5, 6, 7, 3000, 65_536 + 3];
        let mut captures: Vec<Vec<u8>> = crate::fuzzing::capture_seeds()
            .into_iter()
            .filter(|(name, _)| name.ends_with(".pcapng"))
            .map(|(_, c)| c)
            .collect();
        captures.push(capture_of_reads("127.0.0.1:4000", "127.0.0.1:9001", &sizes));
        captures.push(capture_of_reads("[::1]:4000", "[::1]:9001", &sizes));
        for capture in &captures {
            let mut reader = PcapNgReader::new(&capture[..]).expect("a pcapng file");
            let mut again = PcapNgWriter::with_section_header(Vec::new(), reader.section().clone()).expect("vec");
            // Blocks are big-endian, as pcap-file writes its default
            // section; the section header was read by `new`.
            let block_len = |b: &[u8]| u32::from_be_bytes(b[4..8].try_into().expect("4 bytes")) as usize;
            let mut rest = &capture[block_len(capture)..];
            let mut packets = 0;
            while let Some(block) = reader.next_block() {
                let block = block.expect("a valid block");
                let (raw, next) = rest.split_at(block_len(rest));
                rest = next;
                let before = again.get_ref().len();
                if let Block::EnhancedPacket(epb) = &block {
                    packets += 1;
                    assert!(epb.data.len() <= 40 + MSS_V6 + 20);
                }
                again.write_block(&block).expect("vec");
                assert_eq!(&again.get_ref()[before..], raw, "block {packets} of {block:?}");
            }
            assert!(rest.is_empty());
            assert!(packets > 20, "{packets} packets");
        }
    }
}
