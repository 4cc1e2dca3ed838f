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
//! pcapng blocks in one write, then flushed, so the file is a valid capture
//! after every batch and after Ctrl-C. Memory stays bounded: per open
//! connection a few counters (and, until its upstream is connected, the
//! bytes of its first request head).

use std::borrow::Cow;
use std::collections::HashMap;
use std::io::{self, Write};
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use etherparse::{PacketBuilder, TcpOptionElement};
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
}

impl<W: Write> PcapngWriter<W> {
    /// Starts a capture on `out`: writes the section header and the
    /// interface description at once. `upstream`, the proxy's upstream and
    /// whether it keeps the client's `Host` (`--preserve-host`), is noted
    /// in the interface's comment, so that `wsproxy read` rewrites requests
    /// as the proxy did.
    pub fn new(mut out: W, upstream: Option<(&Upstream, bool)>) -> io::Result<PcapngWriter<W>> {
        let section = SectionHeaderBlock {
            options: vec![SectionHeaderOption::UserApplication(Cow::Borrowed(concat!(
                "wsproxy ",
                env!("CARGO_PKG_VERSION")
            )))],
            ..SectionHeaderBlock::default()
        };
        let mut blocks = PcapNgWriter::with_section_header(Vec::new(), section).map_err(io::Error::other)?;
        let mut options = Vec::new();
        if let Some((upstream, preserve_host)) = upstream {
            let host = if preserve_host { "preserved" } else { "rewritten" };
            options.push(InterfaceDescriptionOption::Comment(Cow::Owned(format!(
                "{UPSTREAM_NOTE}{upstream}; host: {host}"
            ))));
        }
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
        Ok(PcapngWriter { out, blocks, pending: Vec::new(), convs: HashMap::new(), scratch: Vec::new() })
    }

    /// Writes out what is pending and returns the underlying writer.
    pub fn into_inner(mut self) -> io::Result<W> {
        self.flush()?;
        Ok(self.out)
    }

    /// Writes the packets of the whole records pending, sorted by time.
    fn drain(&mut self) -> io::Result<()> {
        let pending = std::mem::take(&mut self.pending);
        let mut records = Vec::new();
        let mut at = 0;
        while let Some((decoded, used)) =
            decode(&pending[at..]).map_err(|()| io::Error::other("a capture record that cannot be decoded"))?
        {
            records.push((decoded, at..at + used));
            at += used;
        }
        // Stable: records of the same time keep their order.
        records.sort_by_key(|((_, us, _), _)| *us);
        for ((conn, us, record), range) in records {
            self.apply(conn, us, record, &pending[range]);
            if self.blocks.get_ref().len() >= MAX_BLOCKS {
                self.write_blocks()?;
            }
        }
        // What is left is part of a record: kept, in the same buffer.
        self.pending = pending;
        self.pending.drain(..at);
        self.write_blocks()
    }

    /// Writes the encoded blocks out, whole, in one write.
    fn write_blocks(&mut self) -> io::Result<()> {
        let blocks = self.blocks.get_mut();
        if !blocks.is_empty() {
            self.out.write_all(blocks)?;
            blocks.clear();
        }
        Ok(())
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

    /// One packet from `from`, with the current sequence and
    /// acknowledgment numbers.
    fn packet(&mut self, conv: &Conv, us: u64, from: Side, flags: Flags, payload: &[u8], comment: Option<String>) {
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
        if let Some(comment) = comment {
            // Rare (one per connection): through pcap-file, which writes
            // the option.
            self.scratch.clear();
            // The payload is at most an MSS: the packet is always valid.
            if tcp.write(&mut self.scratch, payload).is_err() {
                return;
            }
            let block = EnhancedPacketBlock {
                interface_id: 0,
                timestamp: Duration::from_micros(us),
                original_len: self.scratch.len() as u32,
                data: Cow::Borrowed(&self.scratch),
                options: vec![EnhancedPacketOption::Comment(Cow::Owned(comment))],
            };
            // Into a Vec: cannot fail.
            let _ = self.blocks.write_pcapng_block(block);
            return;
        }
        // Every other packet is built in place, in the block buffer: the
        // payload is copied once, from the record to the block.
        let blocks = self.blocks.get_mut();
        let start = blocks.len();
        blocks.extend_from_slice(&[0; EPB_HEAD]);
        if tcp.write(blocks, payload).is_err() {
            blocks.truncate(start);
            return;
        }
        let captured = blocks.len() - start - EPB_HEAD;
        blocks.resize(blocks.len() + (4 - captured % 4) % 4, 0);
        let block_len = (blocks.len() - start + 4) as u32;
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
        for (field, value) in blocks[start..start + EPB_HEAD].chunks_exact_mut(4).zip(head) {
            field.copy_from_slice(&value.to_be_bytes());
        }
    }
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

    fn flush(&mut self) -> io::Result<()> {
        self.drain()?;
        self.out.flush()
    }
}

#[cfg(test)]
mod tests {
    use pcap_file::pcapng::{Block, PcapNgReader};

    use super::*;

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
