//! The view's downloads as HAR and pcapng, built from the events the page
//! shows (it sends them back as JSON Lines) with the writers of `--har`
//! ([`har::from_json_lines`]) and `--pcap` ([`PcapngWriter`]).
//!
//! The view keeps events, not the bytes that passed, so a capture is
//! rebuilt from them: each connection a TCP conversation between the
//! addresses of its `open` event (made up where they are not addresses,
//! distinct for each connection and side), the handshake request and response
//! written from their events (header values as the events show them, so
//! redacted secrets stay redacted), then each frame event encoded again
//! from its header fields (FIN, RSV bits, opcode, mask key, length) and
//! its payload preview. A payload cut by `--max-preview` is filled up to
//! its length with zero bytes, so frames still follow one another where
//! they should; the capture's interface comment says so. Frames the page
//! does not show (filtered out, or dropped to stay within the view's
//! bounds) are not in it: each direction is the shown frames back to back.
//!
//! What a download may cost is bounded by what the view keeps, not by
//! what is posted: at most as many events as the view keeps (so at most
//! as many connections), and a capture of at most [`MAX_CAPTURE_BYTES`],
//! everything counted.

use std::collections::HashSet;
use std::io::{IoSlice, Write};
use std::net::{Ipv4Addr, SocketAddr};
use std::time::UNIX_EPOCH;

use wsproto::{FrameHeader, MAX_HEADER_LEN, OpCode, encode_frame};

use crate::capture::har;
use crate::capture::pcapng::{MSS_V6, PcapngWriter};
use crate::event::Side;
use crate::record::{Record, TlsLegs};
use crate::schema::{self, Event, Header};

/// The largest capture the view rebuilds, everything counted: the frames
/// with their zero-filled payloads, the handshakes, and the packets and
/// blocks synthesized around them. Past it the download is refused.
pub const MAX_CAPTURE_BYTES: u64 = 256 << 20;

/// At most the pcapng bytes around one packet: its enhanced packet block
/// (32 bytes and up to 3 of padding), an IPv6 header (40) and a TCP header
/// with the SYN's options (32).
const PACKET_BYTES: u64 = 128;

/// At most the pcapng bytes of a connection's own packets: the three-way
/// handshake with the SYN's comment, and a FIN and its ACK each way.
const CONNECTION_BYTES: u64 = 7 * PACKET_BYTES + 512;

/// At most the pcapng bytes of the section header and the interface
/// description, with its comment.
const SECTION_BYTES: u64 = 1024;

/// The capture's interface comment.
pub const CAPTURE_NOTE: &str = "rebuilt by wsproxy's live view from the events it showed: handshake headers as \
                                shown (secrets redacted), payloads cut by --max-preview filled with zero bytes, \
                                frames not shown left out";

/// Why a download cannot be made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportError {
    /// The rebuilt capture would be larger than [`MAX_CAPTURE_BYTES`].
    TooLarge,
    /// More events than this, more than the view keeps (so the events name
    /// at most this many connections too).
    TooManyEvents(usize),
}

impl std::fmt::Display for ExportError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ExportError::TooLarge => write!(
                f,
                "the capture would be larger than {} MiB: choose a connection or filter the events",
                MAX_CAPTURE_BYTES >> 20
            ),
            ExportError::TooManyEvents(max) => {
                write!(f, "more than {max} events, more than the view keeps: choose a connection or filter the events")
            }
        }
    }
}

impl std::error::Error for ExportError {}

/// The events (JSON Lines) as a HAR file; refused when they are more than
/// `max_events`.
pub fn har(lines: &str, max_events: usize) -> Result<Vec<u8>, ExportError> {
    har::from_json_lines(lines, max_events).ok_or(ExportError::TooManyEvents(max_events))
}

/// The events (JSON Lines) as a pcapng capture, rebuilt as the module
/// says; refused when they are more than `max_events` or the
/// capture would be larger than [`MAX_CAPTURE_BYTES`]. Lines that are not
/// events are skipped.
pub fn pcapng(lines: &str, max_events: usize) -> Result<Vec<u8>, ExportError> {
    // Writing into memory cannot fail. The records go to the writer as
    // they are made (it keeps at most a few MiB of them), not all at once.
    let Ok(mut writer) = PcapngWriter::with_comment(Vec::new(), Some(CAPTURE_NOTE.to_owned())) else {
        return Ok(Vec::new());
    };
    rebuild(lines, max_events, &mut |records| {
        // Whole records: written from where they are, not copied in first.
        let _ = writer.write_vectored(&[IoSlice::new(records)]);
    })?;
    Ok(writer.into_inner().unwrap_or_default())
}

/// The addresses of connection `conn`'s client and server: those of its
/// `open` event when they are addresses; else made up, stable and distinct
/// for each connection and never the same for both sides: the client
/// `127.0.0.1:(40000 + conn % 20000)`, the server `127.0.0.2` on the
/// upstream's port (80 when it names none, as a host name's `localhost:9001`
/// does not parse as an address but has one).
fn addresses(conn: u64, open: Option<(&str, &str)>) -> (SocketAddr, SocketAddr) {
    let parsed = |a: &str| a.parse::<SocketAddr>().ok().filter(|a| !a.ip().is_unspecified() && a.port() != 0);
    let (client, upstream) = open.unwrap_or(("", ""));
    // `conn % 20000` fits in a port above 40000.
    let client = parsed(client).unwrap_or(SocketAddr::from((Ipv4Addr::LOCALHOST, 40000 + (conn % 20000) as u16)));
    let mut server = parsed(upstream).unwrap_or_else(|| {
        let port = upstream.rsplit_once(':').and_then(|(_, p)| p.parse::<u16>().ok()).filter(|&p| p != 0);
        SocketAddr::from((Ipv4Addr::new(127, 0, 0, 2), port.unwrap_or(80)))
    });
    if server == client {
        server.set_ip(Ipv4Addr::new(127, 0, 0, 3).into());
    }
    (client, server)
}

/// Makes the capture records of the events and hands each to `sink`;
/// returns the most bytes of pcapng they make (what is held to
/// [`MAX_CAPTURE_BYTES`]).
fn rebuild(lines: &str, max_events: usize, sink: &mut dyn FnMut(&[u8])) -> Result<u64, ExportError> {
    // The proxy's own address is not in the events. The server side is
    // always an address of the upstream (never unspecified), so no
    // connection reads as one whose upstream was not reached.
    let proxy = SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0));
    let mut out = Vec::new();
    let mut opened = HashSet::new();
    let mut events = 0usize;
    let mut capture_bytes = SECTION_BYTES;
    for line in lines.lines() {
        let Ok(record) = serde_json::from_str::<schema::Record>(line) else { continue };
        events += 1;
        if events > max_events {
            return Err(ExportError::TooManyEvents(max_events));
        }
        let (conn, us) = (record.conn, unix_us(&record.ts));
        out.clear();
        if opened.insert(conn) {
            capture_bytes += CONNECTION_BYTES;
            if capture_bytes > MAX_CAPTURE_BYTES {
                return Err(ExportError::TooLarge);
            }
            // The addresses of its `open` event, if that is the first shown.
            let open = match &record.event {
                Event::Open { client, upstream } => Some((client.as_str(), upstream.as_str())),
                _ => None,
            };
            let (client, upstream) = addresses(conn, open);
            Record::Open { client, proxy, tls: TlsLegs::default() }.encode(conn, us, &mut out);
            Record::Connected { upstream }.encode(conn, us, &mut out);
        }
        let (from, bytes) = match record.event {
            Event::HandshakeRequest { method, target, version, headers, .. } => {
                (Side::Client, head(&format!("{method} {target} {version}"), &headers))
            }
            Event::HandshakeResponse { status, reason, version, headers, .. } => {
                (Side::Upstream, head(&format!("{version} {status} {reason}"), &headers))
            }
            Event::Frame { from, fin, rsv1, rsv2, rsv3, opcode, mask, len, preview, preview_encoding, .. } => {
                let Some(number) = opcode.number() else {
                    sink(&out);
                    continue;
                };
                // Before the zero fill is made: the frame, its header and
                // its packets.
                let most = capture_bytes.saturating_add(capture_bytes_of(len.saturating_add(MAX_HEADER_LEN as u64)));
                if most > MAX_CAPTURE_BYTES {
                    return Err(ExportError::TooLarge);
                }
                let mut payload = if preview_encoding == "hex" { unhex(&preview) } else { preview.into_bytes() };
                // `len` fits: it is below MAX_CAPTURE_BYTES.
                payload.resize(len as usize, 0);
                let header = FrameHeader {
                    fin,
                    rsv1,
                    rsv2,
                    rsv3,
                    opcode: OpCode::from_u4(number),
                    mask: mask.as_deref().and_then(mask_key),
                    payload_len: len,
                };
                let mut frame = Vec::with_capacity(payload.len() + 14);
                encode_frame(&header, &payload, &mut frame);
                (side(from), frame)
            }
            Event::End { reason, .. } => {
                Record::End { reset: matches!(reason.as_str(), "reset" | "error") }.encode(conn, us, &mut out);
                sink(&out);
                continue;
            }
            _ => {
                sink(&out);
                continue;
            }
        };
        capture_bytes += capture_bytes_of(bytes.len() as u64);
        if capture_bytes > MAX_CAPTURE_BYTES {
            return Err(ExportError::TooLarge);
        }
        Record::Data { from, bytes: &bytes }.encode(conn, us, &mut out);
        drop(bytes);
        sink(&out);
        if out.capacity() > 1 << 20 {
            // A large frame's: not kept for the small ones after it.
            out = Vec::new();
        }
    }
    Ok(capture_bytes)
}

/// At most the pcapng bytes of `n` bytes one side sent: in segments of at
/// most an MSS, each a packet, and the other side's ACK.
fn capture_bytes_of(n: u64) -> u64 {
    let packets = n.div_ceil(MSS_V6 as u64) + 1;
    n.saturating_add(packets.saturating_mul(PACKET_BYTES))
}

fn side(s: schema::Side) -> Side {
    match s {
        schema::Side::Client => Side::Client,
        schema::Side::Upstream => Side::Upstream,
    }
}

/// An HTTP/1.1 head: its first line and headers.
fn head(first: &str, headers: &[Header]) -> Vec<u8> {
    let mut out = format!("{first}\r\n");
    for h in headers {
        out.push_str(&format!("{}: {}\r\n", h.name, h.value));
    }
    out.push_str("\r\n");
    out.into_bytes()
}

/// A masking key written as 8 hex digits.
fn mask_key(hex: &str) -> Option<[u8; 4]> {
    unhex(hex).try_into().ok()
}

fn unhex(s: &str) -> Vec<u8> {
    let b = s.as_bytes();
    (0..b.len() / 2)
        .filter_map(|i| std::str::from_utf8(&b[2 * i..2 * i + 2]).ok().and_then(|h| u8::from_str_radix(h, 16).ok()))
        .collect()
}

/// RFC 3339 to microseconds since the Unix epoch (0 if it does not parse).
fn unix_us(ts: &str) -> u64 {
    humantime::parse_rfc3339(ts)
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_micros() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Events in a download, at most, in these tests.
    const MAX_EVENTS: usize = 100;

    /// The capture records of the events, all at once.
    fn records_of(lines: &str) -> Result<Vec<u8>, ExportError> {
        let mut records = Vec::new();
        rebuild(lines, MAX_EVENTS, &mut |r| records.extend_from_slice(r))?;
        Ok(records)
    }

    const EVENTS: &str = r#"{"ts":"2026-01-01T00:00:00.000001Z","conn":7,"event":"open","client":"127.0.0.1:5000","upstream":"127.0.0.1:9001"}
{"ts":"2026-01-01T00:00:00.000002Z","conn":7,"event":"handshake_request","method":"GET","target":"/echo","version":"HTTP/1.1","headers":[{"name":"Host","value":"127.0.0.1:8080"},{"name":"Upgrade","value":"websocket"},{"name":"Connection","value":"Upgrade"},{"name":"Sec-WebSocket-Key","value":"dGhlIHNhbXBsZSBub25jZQ=="},{"name":"Sec-WebSocket-Version","value":"13"}]}
{"ts":"2026-01-01T00:00:00.000003Z","conn":7,"event":"handshake_response","status":101,"reason":"Switching Protocols","version":"HTTP/1.1","headers":[{"name":"Upgrade","value":"websocket"},{"name":"Connection","value":"Upgrade"},{"name":"Sec-WebSocket-Accept","value":"s3pPLMBiTxaQ9kYGzzhZRbK+xOo="}],"protocol":null,"extensions":[],"upgraded":true}
{"ts":"2026-01-01T00:00:00.000004Z","conn":7,"event":"frame","from":"client","fin":true,"rsv1":false,"rsv2":false,"rsv3":false,"opcode":"text","masked":true,"mask":"0a0b0c0d","len":5,"header_len":6,"offset":0,"preview":"hello","preview_encoding":"text","preview_truncated":false}
{"ts":"2026-01-01T00:00:00.000005Z","conn":7,"event":"message","from":"client","kind":"text","len":5,"fragments":1,"compressed":false,"preview":"hello","preview_encoding":"text","preview_truncated":false}
{"ts":"2026-01-01T00:00:00.000006Z","conn":7,"event":"frame","from":"upstream","fin":true,"rsv1":false,"rsv2":false,"rsv3":false,"opcode":"binary","masked":false,"mask":null,"len":300,"header_len":4,"offset":0,"preview":"0001ff","preview_encoding":"hex","preview_truncated":true}
{"ts":"2026-01-01T00:00:00.000007Z","conn":7,"event":"message","from":"upstream","kind":"binary","len":300,"fragments":1,"compressed":false,"preview":"0001ff","preview_encoding":"hex","preview_truncated":true}
{"ui":"evicted","conn":7,"events":3}
"#;

    #[test]
    fn har_of_the_events_has_the_upgrade_and_its_messages() {
        let har: serde_json::Value =
            serde_json::from_slice(&har(EVENTS, MAX_EVENTS).expect("one connection")).expect("HAR is JSON");
        let entries = har["log"]["entries"].as_array().expect("entries");
        assert_eq!(entries.len(), 1);
        let e = &entries[0];
        assert_eq!(e["request"]["url"], "ws://127.0.0.1:8080/echo");
        assert_eq!(e["response"]["status"], 101);
        let messages = e["_webSocketMessages"].as_array().expect("messages");
        assert_eq!(messages.len(), 2, "{messages:?}");
        assert_eq!(
            (&messages[0]["type"], &messages[0]["opcode"], &messages[0]["data"]),
            (&"send".into(), &1.into(), &"hello".into())
        );
        assert_eq!(messages[1]["data"], "AAH/");
        assert_eq!(messages[1]["_truncated"], true);
    }

    #[test]
    fn frames_are_encoded_again_from_their_fields() {
        let records = records_of(EVENTS).expect("small");
        let mut frames = Vec::new();
        let mut at = 0;
        while let Ok(Some(((conn, _, r), used))) = crate::record::decode(&records[at..]) {
            assert_eq!(conn, 7);
            if let Record::Data { from, bytes } = r {
                frames.push((from, bytes.to_vec()));
            }
            at += used;
        }
        assert_eq!(at, records.len());
        assert_eq!(frames.len(), 4);
        assert!(frames[0].1.starts_with(b"GET /echo HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n"));
        assert!(frames[1].1.ends_with(b"Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n"));
        // FIN text, masked with its key, "hello" masked.
        let masked: Vec<u8> =
            b"hello".iter().zip([0x0a, 0x0b, 0x0c, 0x0d].iter().cycle()).map(|(a, b)| a ^ b).collect();
        assert_eq!(frames[2], (Side::Client, [&[0x81, 0x85, 0x0a, 0x0b, 0x0c, 0x0d][..], &masked].concat()));
        // The cut payload filled to its length: 300 bytes in the 16-bit form.
        let (from, bin) = &frames[3];
        assert_eq!(*from, Side::Upstream);
        assert_eq!(bin.len(), 4 + 300);
        assert_eq!(&bin[..7], &[0x82, 126, 1, 44, 0x00, 0x01, 0xff]);
        assert!(bin[7..].iter().all(|&b| b == 0));
    }

    #[test]
    fn the_capture_reads_back_into_the_same_frames() {
        use crate::capture::read::{ReadOptions, read};
        let options = ReadOptions {
            config: crate::Config::new(crate::upstream::Upstream::parse("ws://127.0.0.1:1").expect("url")),
            server: None,
        };
        let capture = pcapng(EVENTS, MAX_EVENTS).expect("small");
        let mut events = String::new();
        let summary = read(&capture[..], &options, &[crate::event::Format::Json], &mut |e| {
            events.push_str(&String::from_utf8_lossy(e.output(0)));
            Ok(())
        })
        .expect("wsproxy read takes it");
        assert_eq!(summary.connections, 1, "{summary:?}");
        let frames: Vec<schema::Record> = events
            .lines()
            .filter_map(|l| serde_json::from_str::<schema::Record>(l).ok())
            .filter(|r| matches!(r.event, Event::Frame { .. }))
            .collect();
        let Event::Frame { mask, preview, .. } = &frames[0].event else { unreachable!() };
        assert_eq!((mask.as_deref(), preview.as_str()), (Some("0a0b0c0d"), "hello"), "{events}");
        let Event::Frame { len, opcode, .. } = &frames[1].event else { unreachable!() };
        assert_eq!((*len, opcode.number()), (300, Some(2)), "{events}");
        assert_eq!(frames.len(), 2, "{events}");
    }

    #[test]
    fn a_capture_larger_than_the_cap_is_refused() {
        let huge = EVENTS.replace("\"len\":300", &format!("\"len\":{}", MAX_CAPTURE_BYTES + 1));
        assert_eq!(pcapng(&huge, MAX_EVENTS), Err(ExportError::TooLarge));
        assert!(
            pcapng(EVENTS, MAX_EVENTS).expect("small").starts_with(&[0x0a, 0x0d, 0x0d, 0x0a]),
            "a pcapng section header"
        );
    }

    /// The connection comments of a capture (on each SYN, in UTF-8).
    fn comments(capture: &[u8]) -> Vec<String> {
        let text = String::from_utf8_lossy(capture);
        text.match_indices("wsproxy connection ")
            .map(|(at, _)| text[at..].chars().take_while(|c| !c.is_control()).collect())
            .collect()
    }

    #[test]
    fn connections_are_between_the_addresses_they_had_or_made_up_distinct_ones() {
        let open = |conn: u64, client: &str, upstream: &str| {
            format!(
                "{{\"ts\":\"2026-01-01T00:00:00Z\",\"conn\":{conn},\"event\":\"open\",\"client\":\"{client}\",\
                 \"upstream\":\"{upstream}\"}}\n"
            )
        };
        // Its open evicted: the first event shown is a frame.
        let frame = EVENTS.lines().nth(3).expect("a frame").replace("\"conn\":7", "\"conn\":9");
        let events = [
            EVENTS.to_owned(),
            open(8, "127.0.0.1:5000", "localhost:9001"),
            frame,
            open(10, "127.0.0.2:9001", "localhost:9001"),
            open(11, "[::1]:6000", "[::1]:9001"),
        ]
        .join("\n");
        let capture = pcapng(&events, MAX_EVENTS).expect("small");
        let mut comments = comments(&capture);
        // Written in time order: 7's open is the latest.
        comments.sort_by_key(|c| c.split([' ', ':']).nth(2).and_then(|n| n.parse::<u64>().ok()));
        assert_eq!(
            comments,
            [
                "wsproxy connection 7: client 127.0.0.1:5000 → upstream 127.0.0.1:9001",
                "wsproxy connection 8: client 127.0.0.1:5000 → upstream 127.0.0.2:9001",
                "wsproxy connection 9: client 127.0.0.1:40009 → upstream 127.0.0.2:80",
                "wsproxy connection 10: client 127.0.0.2:9001 → upstream 127.0.0.3:9001",
                "wsproxy connection 11: client [::1]:6000 → upstream [::1]:9001",
            ]
        );
    }

    #[test]
    fn a_download_is_bounded_by_its_events_and_all_its_bytes() {
        let opens: String = (0..=MAX_EVENTS)
            .map(|c| format!("{{\"ts\":\"2026-01-01T00:00:00Z\",\"conn\":{c},\"event\":\"open\",\"client\":\"\",\"upstream\":\"\"}}\n"))
            .collect();
        assert_eq!(pcapng(&opens, MAX_EVENTS), Err(ExportError::TooManyEvents(MAX_EVENTS)));
        assert_eq!(har(&opens, MAX_EVENTS), Err(ExportError::TooManyEvents(MAX_EVENTS)));
        assert!(pcapng(&opens, MAX_EVENTS + 1).is_ok());
        // Its payload below the cap, its packets above it: 300 bytes of
        // events for a capture of 256 MiB.
        let frame = EVENTS.lines().nth(5).expect("a frame").replace("\"len\":300", "\"len\":268000000");
        assert_eq!(pcapng(&frame, MAX_EVENTS), Err(ExportError::TooLarge));
        // What is counted is at least what is written.
        for events in [EVENTS.to_owned(), opens, EVENTS.replace("\"len\":300", "\"len\":100000")] {
            let counted = rebuild(&events, MAX_EVENTS + 1, &mut |_| {}).expect("small");
            let written = pcapng(&events, MAX_EVENTS + 1).expect("small").len() as u64;
            assert!(written <= counted, "{written} bytes written, {counted} counted");
        }
    }
}
