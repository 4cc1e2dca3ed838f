//! The properties the fuzz targets in `fuzz/` check, as plain functions of
//! bytes, so that `cargo test` on stable replays every checked-in seed and
//! saved crash through exactly the same code, and runs a short
//! time-budgeted property run of its own (see `tests/`).
//!
//! Every `check_*` function panics when a property fails. Inputs that use
//! split points share one layout: `[flags][n][n × u16 cut points][bytes…]`,
//! so seeds are protocol bytes behind a small header (see [`Split`]).

#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;

use arbitrary::{Arbitrary, Unstructured};
use wsproto::handshake::{self, HeadScanner, Limits};
use wsproto::{
    Assembler, Decoder, DecoderConfig, Error, Event, FrameHeader, Message, MessageKind, OpCode, Role, Status,
    Utf8Validator, apply_mask, apply_mask_bytewise, encode_frame, parse_close_payload,
};

/// The fuzz targets, by name: what `fuzz/fuzz_targets/` and the seed
/// directories are called.
pub const TARGETS: [(&str, fn(&[u8])); 9] = [
    ("frame_split", check_frame_split),
    ("frame_roundtrip", check_frame_roundtrip),
    ("frame_differential", check_frame_differential),
    ("handshake_request", check_handshake_request),
    ("handshake_response", check_handshake_response),
    ("handshake_differential", check_handshake_differential),
    ("unmask", check_unmask),
    ("utf8_close", check_utf8_close),
    ("deflate_inspect", check_deflate_inspect),
];

/// The common input layout: flag bits, cut points, then the bytes.
#[derive(Debug, Clone)]
pub struct Split<'a> {
    /// Bit flags, meaning per target.
    pub flags: u8,
    /// Sorted cut points within `bytes`.
    pub cuts: Vec<usize>,
    /// The protocol bytes.
    pub bytes: &'a [u8],
}

impl<'a> Split<'a> {
    /// Parses `[flags][n][n × u16 cut points][bytes…]` (missing parts are empty).
    pub fn parse(data: &'a [u8]) -> Split<'a> {
        let flags = data.first().copied().unwrap_or(0);
        let n = usize::from(data.get(1).copied().unwrap_or(0) % 16);
        let cuts_end = (2 + 2 * n).min(data.len());
        let raw_cuts = data.get(2..cuts_end).unwrap_or_default();
        let bytes = data.get(cuts_end..).unwrap_or_default();
        let mut cuts: Vec<usize> = raw_cuts
            .chunks_exact(2)
            .map(|c| usize::from(u16::from_le_bytes([c[0], c[1]])) % (bytes.len() + 1))
            .collect();
        cuts.sort_unstable();
        cuts.dedup();
        Split { flags, cuts, bytes }
    }

    /// The bytes cut into pieces at the cut points.
    pub fn pieces(&self) -> Vec<&'a [u8]> {
        let mut out = Vec::new();
        let mut start = 0;
        for &c in self.cuts.iter().chain(std::iter::once(&self.bytes.len())) {
            out.push(&self.bytes[start..c]);
            start = c;
        }
        out
    }
}

/// A split-independent record of the decoder's output.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Ev {
    Header(wsproto::HeaderEvent),
    Payload(Vec<u8>),
    Violation(Error, u64),
    End(wsproto::FrameEnd),
}

fn decode_pieces(role: Role, config: DecoderConfig, pieces: &[&[u8]], in_place: bool) -> Vec<Ev> {
    let mut d = Decoder::new(role, config);
    let mut out: Vec<Ev> = Vec::new();
    let mut total = 0u64;
    for piece in pieces {
        let mut owned = piece.to_vec();
        let mut pos = 0;
        loop {
            let decoded = if in_place { d.decode_mut(&mut owned[pos..]) } else { d.decode(&piece[pos..]) };
            assert!(decoded.consumed <= piece.len() - pos, "consumed more than given");
            pos += decoded.consumed;
            let Some(ev) = decoded.event else { break };
            match ev {
                Event::Header(h) => out.push(Ev::Header(h)),
                Event::Payload(p) => {
                    assert!(!p.is_empty(), "empty payload event");
                    let mut v = Vec::new();
                    p.extend_unmasked(&mut v);
                    if let Some(Ev::Payload(prev)) = out.last_mut() {
                        prev.extend_from_slice(&v);
                    } else {
                        out.push(Ev::Payload(v));
                    }
                }
                Event::Violation(v) => {
                    assert!(v.error.close_code().is_some(), "a frame violation maps to a close code: {v:?}");
                    out.push(Ev::Violation(v.error, v.offset));
                }
                Event::FrameEnd(e) => out.push(Ev::End(e)),
            }
        }
        assert_eq!(pos, piece.len(), "a call without an event consumes everything");
        total += piece.len() as u64;
    }
    assert_eq!(d.offset(), total, "the decoder's offset counts every byte");
    out
}

/// 1. Arbitrary bytes, both roles, cut anywhere: the same events as in one
///    piece (headers, unmasked payload, violations and their offsets), in
///    both the reading and the in-place mode.
pub fn check_frame_split(data: &[u8]) {
    let split = Split::parse(data);
    let role = if split.flags & 1 == 0 { Role::Client } else { Role::Server };
    let config = DecoderConfig {
        allow_rsv1: split.flags & 2 != 0,
        max_frame_len: if split.flags & 4 != 0 { 64 } else { u64::MAX },
        ..DecoderConfig::default()
    };
    let whole = decode_pieces(role, config, &[split.bytes], false);
    let pieces = split.pieces();
    assert_eq!(decode_pieces(role, config, &pieces, false), whole, "split changes the events");
    assert_eq!(decode_pieces(role, config, &pieces, true), whole, "in-place decoding changes the events");
}

/// A frame valid by construction.
#[derive(Debug, Clone, Arbitrary)]
struct ValidFrame {
    opcode: u8,
    fin: bool,
    mask: Option<[u8; 4]>,
    payload: Vec<u8>,
}

/// A message and how to fragment it.
#[derive(Debug, Clone, Arbitrary)]
struct FragmentedMessage {
    text: bool,
    data: Vec<u8>,
    cuts: Vec<u16>,
    mask: Option<[u8; 4]>,
}

/// 2. Frames valid by construction → encode → decode gives them back; a
///    message fragmented anywhere → the assembler gives it back.
pub fn check_frame_roundtrip(data: &[u8]) {
    let mut u = Unstructured::new(data);
    let Ok(frames) = Vec::<ValidFrame>::arbitrary(&mut u) else { return };
    let mut wire = Vec::new();
    let mut expected = Vec::new();
    for f in frames.iter().take(16) {
        let opcode =
            [OpCode::Text, OpCode::Binary, OpCode::Ping, OpCode::Pong, OpCode::Close][usize::from(f.opcode % 5)];
        let mut payload = f.payload.clone();
        if opcode.is_control() {
            payload.truncate(125);
        }
        let header = FrameHeader { fin: f.fin || opcode.is_control(), mask: f.mask, ..FrameHeader::new(opcode, 0) };
        encode_frame(&header, &payload, &mut wire);
        expected.push((FrameHeader { payload_len: payload.len() as u64, ..header }, payload));
    }
    let role_events = decode_pieces(
        Role::Client,
        DecoderConfig { validate_utf8: false, ..DecoderConfig::default() },
        &[&wire],
        false,
    );
    let mut got = Vec::new();
    let mut current: Option<(FrameHeader, Vec<u8>)> = None;
    for ev in role_events {
        match ev {
            Ev::Header(h) => current = Some((h.header, Vec::new())),
            Ev::Payload(p) => current.as_mut().unwrap().1.extend_from_slice(&p),
            Ev::End(_) => got.push(current.take().unwrap()),
            Ev::Violation(..) => {}
        }
    }
    assert_eq!(got, expected, "frames do not round-trip");

    let Ok(msg) = FragmentedMessage::arbitrary(&mut u) else { return };
    let data = if msg.text { String::from_utf8_lossy(&msg.data).into_owned().into_bytes() } else { msg.data.clone() };
    let mut points: Vec<usize> = msg.cuts.iter().map(|c| usize::from(*c) % (data.len() + 1)).collect();
    points.sort_unstable();
    points.dedup();
    points.retain(|p| *p != 0 && *p != data.len());
    points.push(data.len());
    let mut wire = Vec::new();
    let mut start = 0;
    for (i, end) in points.iter().enumerate() {
        let opcode = match (i, msg.text) {
            (0, true) => OpCode::Text,
            (0, false) => OpCode::Binary,
            _ => OpCode::Continuation,
        };
        let header = FrameHeader { fin: i + 1 == points.len(), mask: msg.mask, ..FrameHeader::new(opcode, 0) };
        encode_frame(&header, &data[start..*end], &mut wire);
        start = *end;
    }
    let role = if msg.mask.is_some() { Role::Client } else { Role::Server };
    let mut d = Decoder::new(role, DecoderConfig::default());
    let mut a = Assembler::new(1 << 24);
    let mut input = &wire[..];
    let mut messages = Vec::new();
    loop {
        let decoded = d.decode(input);
        input = &input[decoded.consumed..];
        let Some(ev) = decoded.event else { break };
        if let Event::Violation(v) = ev {
            panic!("a valid fragmented message breaks {v}");
        }
        if let Some(m) = a.handle(&ev).unwrap() {
            messages.push(m);
        }
    }
    let kind = if msg.text { MessageKind::Text } else { MessageKind::Binary };
    assert_eq!(messages, vec![Message { kind, data, fragments: points.len() as u32, compressed: false }]);
}

/// 3. Our decoder and tungstenite's frame parser on the same bytes: for
///    every frame both parse, the same header fields and payload. Where we
///    report a violation it names a rule with its RFC section.
pub fn check_frame_differential(data: &[u8]) {
    use std::io::Cursor;
    use tungstenite::protocol::frame::FrameHeader as THeader;

    let ours =
        decode_pieces(Role::Client, DecoderConfig { validate_utf8: false, ..DecoderConfig::default() }, &[data], false);
    let mut our_frames = Vec::new();
    let mut current: Option<(FrameHeader, Vec<u8>)> = None;
    for ev in &ours {
        match ev {
            Ev::Header(h) => current = Some((h.header, Vec::new())),
            Ev::Payload(p) => current.as_mut().unwrap().1.extend_from_slice(p),
            Ev::End(_) => our_frames.push(current.take().unwrap()),
            Ev::Violation(e, _) => assert!(e.rfc().starts_with("RFC 6455 §") && !e.rule().is_empty()),
        }
    }
    let mut theirs = Vec::new();
    let mut cursor = Cursor::new(data);
    // Until the input is incomplete or tungstenite reports an error (we may
    // be laxer in parsing and stricter in rules: compare what both framed).
    while let Ok(Some((h, len))) = THeader::parse(&mut cursor) {
        let at = cursor.position() as usize;
        let Some(end) = usize::try_from(len).ok().and_then(|l| at.checked_add(l)).filter(|e| *e <= data.len()) else {
            break;
        };
        let mut payload = data[at..end].to_vec();
        if let Some(key) = h.mask {
            apply_mask_bytewise(&mut payload, key, 0);
        }
        theirs.push((h, payload));
        cursor.set_position(end as u64);
    }
    for ((ours, our_payload), (theirs, their_payload)) in our_frames.iter().zip(theirs.iter()) {
        assert_eq!(ours.fin, theirs.is_final, "fin");
        assert_eq!((ours.rsv1, ours.rsv2, ours.rsv3), (theirs.rsv1, theirs.rsv2, theirs.rsv3), "rsv");
        assert_eq!(ours.opcode.as_u4(), u8::from(theirs.opcode), "opcode");
        assert_eq!(ours.mask, theirs.mask, "mask");
        assert_eq!(our_payload, their_payload, "payload");
    }
    assert!(
        our_frames.len() >= theirs.len(),
        "tungstenite framed {} frames where we framed {}",
        theirs.len(),
        our_frames.len()
    );
}

/// Splits header values into lowercase, trimmed comma-list tokens.
fn tokens(value: &[u8]) -> BTreeSet<String> {
    String::from_utf8_lossy(value).split(',').map(|t| t.trim().to_ascii_lowercase()).collect()
}

/// 4a. A request the parser accepts, re-checked by a second, naive reading
///     of the same bytes; consumed length within the input; every split of
///     the input scans to the same result.
pub fn check_handshake_request(data: &[u8]) {
    let split = Split::parse(data);
    let limits = Limits { max_head_len: 4096, max_headers: 32 };
    let whole = handshake::parse_request(split.bytes, &limits);
    check_scan_split(&split, &limits);
    let Ok(Status::Complete((req, consumed))) = whole else { return };
    assert!(consumed <= split.bytes.len());
    assert!(split.bytes[..consumed].ends_with(b"\r\n\r\n"), "the head ends with an empty line");
    let Ok(hs) = req.validate() else { return };
    // The naive reading: split the head into lines and headers ourselves.
    let head = String::from_utf8_lossy(&split.bytes[..consumed]);
    // Empty lines before the request line are ignored (RFC 9112 §2.2).
    let mut lines = head.trim_start_matches("\r\n").split("\r\n");
    let request_line = lines.next().unwrap_or_default();
    assert!(request_line.starts_with("GET "), "validated a non-GET: {request_line:?}");
    assert!(request_line.ends_with(" HTTP/1.1"), "validated a version below 1.1: {request_line:?}");
    let mut upgrade = BTreeSet::new();
    let mut connection = BTreeSet::new();
    let mut keys = Vec::new();
    let mut versions = Vec::new();
    let mut hosts = 0;
    for line in lines.filter(|l| !l.is_empty()) {
        let (name, value) = line.split_once(':').unwrap();
        let value = value.trim_matches([' ', '\t']);
        match name.to_ascii_lowercase().as_str() {
            "upgrade" => upgrade.extend(tokens(value.as_bytes())),
            "connection" => connection.extend(tokens(value.as_bytes())),
            "sec-websocket-key" => keys.push(value.to_owned()),
            "sec-websocket-version" => versions.push(value.to_owned()),
            "host" => hosts += 1,
            _ => {}
        }
    }
    assert!(upgrade.contains("websocket") && connection.contains("upgrade"), "upgrade headers");
    assert_eq!(hosts, 1, "exactly one Host");
    assert_eq!(versions, ["13"], "version 13, once");
    assert_eq!(keys.len(), 1, "one key");
    assert_eq!(keys[0], hs.key);
    let decoded = data_encoding::BASE64.decode(keys[0].as_bytes()).expect("a validated key is base64");
    assert_eq!(decoded.len(), 16, "a validated key is 16 bytes");
    // §1.3: the accept value, computed independently.
    use sha1::Digest;
    let digest = sha1::Sha1::new().chain_update(keys[0].as_bytes()).chain_update(handshake::WEBSOCKET_GUID).finalize();
    assert_eq!(hs.accept_key().as_str(), data_encoding::BASE64.encode(&digest));
}

fn check_scan_split(split: &Split<'_>, limits: &Limits) {
    let whole = HeadScanner::new().scan(split.bytes, limits);
    let mut scanner = HeadScanner::new();
    let mut result = Ok(Status::Partial);
    for &c in split.cuts.iter().chain(std::iter::once(&split.bytes.len())) {
        result = scanner.scan(&split.bytes[..c], limits);
        if !matches!(result, Ok(Status::Partial)) {
            break;
        }
    }
    // A scanner fed a growing buffer stops at the first verdict; the whole
    // buffer must reach the same one.
    assert_eq!(result, whole, "split scanning differs");
}

/// 4b. Responses: no panic, consumed within the input, a validated 101
///     carries the right accept value, split scanning agrees.
pub fn check_handshake_response(data: &[u8]) {
    let split = Split::parse(data);
    let limits = Limits { max_head_len: 4096, max_headers: 32 };
    check_scan_split(&split, &limits);
    let Ok(Status::Complete((res, consumed))) = handshake::parse_response(split.bytes, &limits) else { return };
    assert!(consumed <= split.bytes.len());
    let key = b"dGhlIHNhbXBsZSBub25jZQ==";
    if res.validate(key, &["chat"], &["permessage-deflate"]).is_ok() {
        assert_eq!(res.status, 101);
        let accept: Vec<&[u8]> = res.headers_named("sec-websocket-accept").collect();
        assert_eq!(accept, [&b"s3pPLMBiTxaQ9kYGzzhZRbK+xOo="[..]]);
    }
}

/// 5. Against httparse directly: where both accept, the same method,
///    target, version and headers; where only httparse accepts, our
///    rejection is one of the documented policy choices.
pub fn check_handshake_differential(data: &[u8]) {
    let limits = Limits { max_head_len: 1 << 20, max_headers: 64 };
    let ours = handshake::parse_request(data, &limits);
    let mut storage = [httparse::EMPTY_HEADER; 64];
    let mut req = httparse::Request::new(&mut storage);
    let theirs = req.parse(data);
    match (&ours, &theirs) {
        (Ok(Status::Complete((r, n))), Ok(httparse::Status::Complete(m))) => {
            assert_eq!(n, m, "head length");
            assert_eq!(Some(r.method), req.method);
            assert_eq!(Some(r.target), req.path);
            assert_eq!(Some(r.version_minor), req.version);
            let theirs: Vec<(&str, &[u8])> = req.headers.iter().map(|h| (h.name, h.value)).collect();
            let ours: Vec<(&str, &[u8])> = r.headers.iter().map(|h| (h.name, h.value)).collect();
            assert_eq!(ours, theirs, "headers");
        }
        (Err(e), Ok(httparse::Status::Complete(_))) => assert!(
            matches!(e, Error::BareLf | Error::ObsFold | Error::InvalidNewLine),
            "httparse accepts what we reject for an undocumented reason: {e:?}"
        ),
        (Ok(Status::Complete(_)), Ok(httparse::Status::Partial) | Err(_)) => {
            panic!("we accept what httparse does not: {theirs:?}")
        }
        _ => {}
    }
}

/// 6. The fast mask equals the byte loop at every length, alignment, phase
///    and key.
pub fn check_unmask(data: &[u8]) {
    if data.len() < 6 {
        return;
    }
    let key = [data[0], data[1], data[2], data[3]];
    let phase = usize::from(data[4]);
    let align = usize::from(data[5] % 8).min(data.len() - 6);
    let payload = &data[6 + align..];
    let mut fast = payload.to_vec();
    let mut slow = payload.to_vec();
    apply_mask(&mut fast, key, phase);
    apply_mask_bytewise(&mut slow, key, phase);
    assert_eq!(fast, slow);
}

/// 7. Incremental UTF-8 validation across arbitrary splits equals
///    `std::str::from_utf8`, failure position included; close payloads are
///    judged as §5.5.1 and §7.4 say.
pub fn check_utf8_close(data: &[u8]) {
    let split = Split::parse(data);
    let reference = std::str::from_utf8(split.bytes);
    let mut v = Utf8Validator::new();
    let mut start = 0;
    let mut failed_at = None;
    for piece in split.pieces() {
        if let Err(e) = v.feed(piece) {
            failed_at = Some(start + e.index);
            break;
        }
        start += piece.len();
    }
    match reference {
        Ok(_) => assert!(failed_at.is_none() && v.is_complete(), "valid text rejected"),
        Err(e) => match e.error_len() {
            None => assert!(failed_at.is_none() && !v.is_complete(), "a cut-off sequence is incomplete, not invalid"),
            Some(_) => {
                let at = failed_at.expect("invalid text accepted");
                // The reported byte lies within std's invalid sequence or right after it.
                assert!(at >= e.valid_up_to() && at <= e.valid_up_to() + 4, "{at} vs {e}");
            }
        },
    }
    match parse_close_payload(split.bytes) {
        Ok(None) => assert!(split.bytes.is_empty()),
        Ok(Some(c)) => {
            assert!(matches!(c.code.0, 1000..=1003 | 1007..=1014 | 3000..=4999), "code {}", c.code.0);
            assert_eq!(c.reason.as_bytes(), &split.bytes[2..]);
        }
        Err(Error::CloseLengthOne) => assert_eq!(split.bytes.len(), 1),
        Err(Error::InvalidCloseCode) => {
            let code = u16::from_be_bytes([split.bytes[0], split.bytes[1]]);
            assert!(!matches!(code, 1000..=1003 | 1007..=1014 | 3000..=4999));
        }
        Err(Error::InvalidUtf8CloseReason) => assert!(std::str::from_utf8(&split.bytes[2..]).is_err()),
        Err(e) => panic!("unexpected close payload error {e:?}"),
    }
}

/// One message of a permessage-deflate stream, as the fuzzer builds it.
#[derive(Debug, Arbitrary)]
struct DeflateMessage {
    /// Text when the data is UTF-8 (else binary).
    text: bool,
    /// Sent compressed (RSV1); otherwise as it is.
    compressed: bool,
    data: Vec<u8>,
    /// A run of one byte appended, up to 64 KiB (a bomb, when it exceeds
    /// the cap); at most 256 KiB of runs per input, to keep executions fast.
    run: Option<(u8, u16)>,
    /// Where the (compressed) payload is cut into frames.
    cuts: Vec<u16>,
}

#[derive(Debug, Arbitrary)]
struct DeflateStream {
    client: bool,
    mask: [u8; 4],
    no_context_takeover: bool,
    window_bits: u8,
    level: u8,
    /// The inflate cap, in units of 256 bytes (256 B – 64 KiB).
    cap_units: u8,
    messages: Vec<DeflateMessage>,
    /// How the wire bytes are fed to the decoder.
    chunks: Vec<u16>,
}

/// What came out of one message on the reading side.
#[derive(Debug, PartialEq)]
enum Read {
    /// The message, inflated if it was compressed.
    Message(Vec<u8>),
    /// Inflating stopped at the cap (a bomb): the bytes up to the cap.
    Capped(Vec<u8>),
    /// Not inflated: the window was lost with an earlier capped message.
    Skipped,
}

/// `deflate_inspect`: messages compressed as a permessage-deflate peer does
/// (RFC 7692 §7.2.1; with or without context takeover, windows of 9–15
/// bits, levels 0–9), fragmented and masked arbitrarily and fed to the
/// decoder in arbitrary chunks, then inflated the way wsproxy's inspector
/// does (`wsproto::Decoder` + `wsproto::deflate::Inflater`): every message
/// comes back byte for byte, with no violation; one that inflates past the
/// cap stops exactly at the cap (nothing past it is produced, and the
/// allocator cap of the fuzz crate catches a buffer sized by the output),
/// and with context takeover the messages after it are skipped, not misread.
pub fn check_deflate_inspect(data: &[u8]) {
    use wsproto::deflate::{Deflater, Inflater};
    let mut u = Unstructured::new(data);
    let Ok(stream) = DeflateStream::arbitrary(&mut u) else { return };
    let cap = 256 * (u64::from(stream.cap_units) + 1);
    let window_bits = 9 + stream.window_bits % 7;
    let mut deflater =
        Deflater::with_window_bits(u32::from(stream.level % 10), stream.no_context_takeover, window_bits);
    let mask = stream.client.then_some(stream.mask);
    let mut wire = Vec::new();
    let mut expected = Vec::new();
    let mut lost = false;
    let mut run_budget = 256usize << 10;
    for m in stream.messages.iter().take(8) {
        let mut plain = m.data.clone();
        if let Some((byte, len)) = m.run {
            let run = (usize::from(len % 1024) * 64).min(run_budget);
            run_budget -= run;
            plain.resize(plain.len() + run, byte);
        }
        let text = m.text && std::str::from_utf8(&plain).is_ok();
        let payload = if m.compressed {
            let mut out = Vec::new();
            deflater.compress_message(&plain, &mut out);
            out
        } else {
            plain.clone()
        };
        let mut points: Vec<usize> = m.cuts.iter().take(8).map(|c| usize::from(*c) % (payload.len() + 1)).collect();
        points.sort_unstable();
        points.dedup();
        points.retain(|p| *p != 0 && *p != payload.len());
        points.push(payload.len());
        let mut start = 0;
        for (i, end) in points.iter().enumerate() {
            let opcode = match (i, text) {
                (0, true) => OpCode::Text,
                (0, false) => OpCode::Binary,
                _ => OpCode::Continuation,
            };
            let header = FrameHeader {
                fin: i + 1 == points.len(),
                rsv1: i == 0 && m.compressed,
                mask,
                ..FrameHeader::new(opcode, 0)
            };
            encode_frame(&header, &payload[start..*end], &mut wire);
            start = *end;
        }
        expected.push(match (m.compressed, lost) {
            (false, _) => Read::Message(plain),
            (true, true) => Read::Skipped,
            (true, false) if plain.len() as u64 > cap => {
                // Without context takeover the next message is readable.
                lost = !stream.no_context_takeover;
                plain.truncate(cap as usize);
                Read::Capped(plain)
            }
            (true, false) => Read::Message(plain),
        });
    }

    let role = if stream.client { Role::Client } else { Role::Server };
    let config = DecoderConfig { allow_rsv1: true, validate_utf8: false, ..DecoderConfig::default() };
    let mut decoder = Decoder::new(role, config);
    let mut inflater = Inflater::new(stream.no_context_takeover, cap);
    struct Current {
        compressed: bool,
        skipped: bool,
        out: Vec<u8>,
        error: Option<Error>,
    }
    let mut current: Option<Current> = None;
    let mut reads = Vec::new();
    let mut unmasked = Vec::new();
    let mut fed = 0;
    let mut sizes = stream.chunks.iter().map(|c| usize::from(*c).max(1)).cycle();
    while fed < wire.len() {
        let end = (fed + sizes.next().unwrap_or(wire.len())).min(wire.len());
        let mut input = &wire[fed..end];
        fed = end;
        loop {
            let decoded = decoder.decode(input);
            input = &input[decoded.consumed..];
            let Some(event) = decoded.event else { break };
            match event {
                Event::Header(h) if h.header.opcode != OpCode::Continuation => {
                    assert!(current.is_none(), "a message started inside another");
                    let compressed = h.header.rsv1;
                    let skipped = compressed && !inflater.begin_message();
                    current = Some(Current { compressed, skipped, out: Vec::new(), error: None });
                }
                Event::Header(_) => {}
                Event::Payload(p) => {
                    let c = current.as_mut().unwrap();
                    if !c.compressed {
                        p.extend_unmasked(&mut c.out);
                    } else if !c.skipped {
                        unmasked.clear();
                        p.extend_unmasked(&mut unmasked);
                        let out = &mut c.out;
                        if let Err(e) = inflater.inflate(&unmasked, &mut |b| out.extend_from_slice(b)) {
                            assert!(c.error.is_none(), "an inflate error is returned once");
                            c.error = Some(e);
                        }
                    }
                }
                Event::Violation(v) => panic!("violation in a valid stream: {v}"),
                Event::FrameEnd(end) if end.message_end => {
                    let mut c = current.take().unwrap();
                    if c.compressed && !c.skipped {
                        let out = &mut c.out;
                        match inflater.end_message(&mut |b| out.extend_from_slice(b)) {
                            Ok(Some(n)) => assert_eq!(n, c.out.len() as u64, "inflated length"),
                            Ok(None) => assert!(c.error.is_some(), "a message skipped without a reason"),
                            Err(e) => c.error = Some(e),
                        }
                    }
                    reads.push(match (c.skipped, c.error) {
                        (true, _) => Read::Skipped,
                        (false, Some(Error::InflatedTooLarge)) => Read::Capped(c.out),
                        (false, Some(e)) => panic!("inflating valid message {} failed: {e}", reads.len()),
                        (false, None) => Read::Message(c.out),
                    });
                }
                Event::FrameEnd(_) => {}
            }
        }
    }
    assert_eq!(reads, expected, "the inspector's view differs from what was sent");
}
