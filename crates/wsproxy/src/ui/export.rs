//! The view's downloads as HAR and pcapng, built from the events the page
//! shows (it sends them back as JSON Lines) with the writers of `--har`
//! ([`har::from_json_lines`]) and `--pcap` ([`PcapngWriter`]).
//!
//! The view keeps events, not the bytes that passed, so a capture is
//! rebuilt from them: each connection a TCP conversation between the
//! addresses of its `open` event, the handshake request and response
//! written from their events (header values as the events show them, so
//! redacted secrets stay redacted), then each frame event encoded again
//! from its header fields (FIN, RSV bits, opcode, mask key, length) and
//! its payload preview. A payload cut by `--max-preview` is filled up to
//! its length with zero bytes, so frames still follow one another where
//! they should; the capture's interface comment says so. Frames the page
//! does not show (filtered out, or dropped to stay within the view's
//! bounds) are not in it: each direction is the shown frames back to back.

use std::collections::HashSet;
use std::io::Write;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::UNIX_EPOCH;

use wsproto::{FrameHeader, OpCode, encode_frame};

use crate::capture::har;
use crate::capture::pcapng::PcapngWriter;
use crate::event::Side;
use crate::record::{Record, TlsLegs};
use crate::schema::{self, Event, Header};

/// The largest capture the view rebuilds (frames with their zero-filled
/// payloads, in all): past it the download is refused.
pub const MAX_CAPTURE_BYTES: u64 = 256 << 20;

/// The capture's interface comment.
pub const CAPTURE_NOTE: &str = "rebuilt by wsproxy's live view from the events it showed: handshake headers as \
                                shown (secrets redacted), payloads cut by --max-preview filled with zero bytes, \
                                frames not shown left out";

/// Why a download cannot be made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportError {
    /// The rebuilt capture would be larger than [`MAX_CAPTURE_BYTES`].
    TooLarge,
}

impl std::fmt::Display for ExportError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ExportError::TooLarge => write!(
                f,
                "the capture would be larger than {} MiB: choose a connection or filter the events",
                MAX_CAPTURE_BYTES >> 20
            ),
        }
    }
}

impl std::error::Error for ExportError {}

/// The events (JSON Lines) as a HAR file.
pub fn har(lines: &str) -> Vec<u8> {
    har::from_json_lines(lines)
}

/// The events (JSON Lines) as a pcapng capture, rebuilt as the module
/// says. Lines that are not events are skipped.
pub fn pcapng(lines: &str) -> Result<Vec<u8>, ExportError> {
    let records = records_of(lines)?;
    // Writing into memory cannot fail.
    let capture = PcapngWriter::with_comment(Vec::new(), Some(CAPTURE_NOTE.to_owned())).and_then(|mut w| {
        w.write_all(&records)?;
        w.into_inner()
    });
    Ok(capture.unwrap_or_default())
}

/// The capture records of the events.
fn records_of(lines: &str) -> Result<Vec<u8>, ExportError> {
    let unknown = SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0));
    let mut out = Vec::new();
    let mut opened = HashSet::new();
    let mut data_bytes = 0u64;
    for line in lines.lines() {
        let Ok(record) = serde_json::from_str::<schema::Record>(line) else { continue };
        let (conn, us) = (record.conn, unix_us(&record.ts));
        if opened.insert(conn) {
            // The addresses of its `open` event, if that is the first shown.
            let (client, upstream) = match &record.event {
                Event::Open { client, upstream } => {
                    (client.parse().unwrap_or(unknown), upstream.parse().unwrap_or(unknown))
                }
                _ => (unknown, unknown),
            };
            Record::Open { client, proxy: upstream, tls: TlsLegs::default() }.encode(conn, us, &mut out);
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
                let Some(number) = opcode.number() else { continue };
                if len > MAX_CAPTURE_BYTES.saturating_sub(data_bytes) {
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
                continue;
            }
            _ => continue,
        };
        data_bytes += bytes.len() as u64;
        if data_bytes > MAX_CAPTURE_BYTES {
            return Err(ExportError::TooLarge);
        }
        Record::Data { from, bytes: &bytes }.encode(conn, us, &mut out);
    }
    Ok(out)
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
        let har: serde_json::Value = serde_json::from_slice(&har(EVENTS)).expect("HAR is JSON");
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
        let capture = pcapng(EVENTS).expect("small");
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
        assert_eq!(pcapng(&huge), Err(ExportError::TooLarge));
        assert!(pcapng(EVENTS).expect("small").starts_with(&[0x0a, 0x0d, 0x0d, 0x0a]), "a pcapng section header");
    }
}
