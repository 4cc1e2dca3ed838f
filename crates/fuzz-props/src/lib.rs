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
use wsproto::handshake::{self, DeflateOffer, DeflateParams, HeadScanner, Limits};
use wsproto::{
    Assembler, Decoder, DecoderConfig, Error, Event, FrameHeader, Message, MessageKind, OpCode, Role, Status,
    Utf8Validator, apply_mask, apply_mask_bytewise, encode_frame, parse_close_payload,
};

/// The fuzz targets, by name: what `fuzz/fuzz_targets/` and the seed
/// directories are called.
pub const TARGETS: [(&str, fn(&[u8])); 12] = [
    ("frame_split", check_frame_split),
    ("frame_roundtrip", check_frame_roundtrip),
    ("frame_differential", check_frame_differential),
    ("handshake_request", check_handshake_request),
    ("handshake_response", check_handshake_response),
    ("handshake_differential", check_handshake_differential),
    ("handshake_build", check_handshake_build),
    ("unmask", check_unmask),
    ("utf8_close", check_utf8_close),
    ("deflate_inspect", check_deflate_inspect),
    ("deflate_window", check_deflate_window),
    ("endpoint", check_endpoint),
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
    assert_eq!((*d.config(), role.peer().peer()), (config, role));
    let mut out: Vec<Ev> = Vec::new();
    let mut total = 0u64;
    // The current frame's header and its unmasked payload so far.
    let mut frame: Option<(wsproto::HeaderEvent, Vec<u8>)> = None;
    let mut closes = 0;
    for piece in pieces {
        let mut owned = piece.to_vec();
        let mut pos = 0;
        loop {
            let decoded = if in_place { d.decode_mut(&mut owned[pos..]) } else { d.decode(&piece[pos..]) };
            assert!(decoded.consumed <= piece.len() - pos, "consumed more than given");
            pos += decoded.consumed;
            let Some(ev) = decoded.event else { break };
            match ev {
                Event::Header(h) => {
                    out.push(Ev::Header(h));
                    frame = Some((h, Vec::new()));
                    closes += usize::from(h.header.opcode == OpCode::Close);
                }
                Event::Payload(p) => {
                    assert!(!p.is_empty(), "empty payload event");
                    let mut v = Vec::new();
                    p.extend_unmasked(&mut v);
                    let (h, so_far) = frame.as_mut().expect("payload inside a frame");
                    // The accessors agree with each other and with the frame.
                    assert_eq!(p.len(), p.data().len());
                    assert_eq!(p.is_masked(), !in_place && h.header.mask.is_some(), "masked chunk");
                    assert_eq!(p.frame_pos(), so_far.len() as u64, "frame position");
                    assert_eq!(p.offset(), h.offset + u64::from(h.header_len) + p.frame_pos(), "chunk offset");
                    let mut unmasked = vec![0; p.len()];
                    p.unmask_into(&mut unmasked);
                    assert_eq!(unmasked, v, "unmask_into and extend_unmasked differ");
                    so_far.extend_from_slice(&v);
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
                Event::FrameEnd(e) => {
                    out.push(Ev::End(e));
                    assert!(d.at_frame_boundary(), "a frame end is a frame boundary");
                    if e.message_end {
                        assert!(d.is_idle(), "the end of a message leaves the decoder idle");
                    }
                    let (h, payload) = frame.take().expect("a frame end ends a frame");
                    if h.header.opcode.is_control() {
                        let kept = payload.len().min(125);
                        assert_eq!(d.control_payload(), &payload[..kept], "control payload");
                    }
                    assert_eq!(d.close_seen(), closes > 0, "close_seen");
                }
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
///    both the reading and the in-place mode. In stop-on-violation mode
///    (what `wsproxy --enforce` uses), the same events up to and including
///    the first violation, then none.
pub fn check_frame_split(data: &[u8]) {
    let split = Split::parse(data);
    let role = if split.flags & 1 == 0 { Role::Client } else { Role::Server };
    let config = DecoderConfig {
        allow_rsv1: split.flags & 2 != 0,
        max_frame_len: if split.flags & 4 != 0 { 64 } else { u64::MAX },
        opaque_extension: split.flags & 8 != 0,
        ..DecoderConfig::default()
    };
    let whole = decode_pieces(role, config, &[split.bytes], false);
    let pieces = split.pieces();
    assert_eq!(decode_pieces(role, config, &pieces, false), whole, "split changes the events");
    assert_eq!(decode_pieces(role, config, &pieces, true), whole, "in-place decoding changes the events");

    let stopping = DecoderConfig { stop_on_violation: true, ..config };
    let first = whole.iter().position(|e| matches!(e, Ev::Violation(..)));
    let expected = match first {
        Some(i) => &whole[..=i],
        None => &whole[..],
    };
    let stopped = decode_pieces(role, stopping, &pieces, split.flags & 16 != 0);
    assert_eq!(stopped, expected, "stop-on-violation differs from the normal run before its first violation");
    let mut d = Decoder::new(role, stopping);
    let mut input = split.bytes;
    loop {
        let decoded = d.decode(input);
        input = &input[decoded.consumed..];
        if decoded.event.is_none() {
            break;
        }
    }
    let failure = d.failure().map(|v| Ev::Violation(v.error, v.offset));
    assert_eq!(failure.as_ref(), first.map(|i| &whole[i]), "the failure is the first violation");
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

/// The head limit an input asks for: flag bit 7 set draws a small one from
/// the other bits (32 to 2064 bytes), so that [`Error::HeaderBlockTooLarge`]
/// can fire on inputs of fuzzing size; otherwise 4 KiB.
fn head_limits(flags: u8) -> Limits {
    let max_head_len = if flags & 0x80 != 0 { 32 + 16 * usize::from(flags & 0x7f) } else { 4096 };
    Limits { max_head_len, max_headers: 32 }
}

/// The head limit holds: a complete head fits in it, and a head too large
/// is only reported when the input reached the limit without ending.
fn check_head_limit<T>(result: &Result<Status<(T, usize)>, Error>, bytes: &[u8], limits: &Limits) {
    match result {
        Ok(Status::Complete((_, n))) => assert!(*n <= limits.max_head_len, "a head longer than the limit"),
        Err(Error::HeaderBlockTooLarge) => assert!(bytes.len() >= limits.max_head_len, "too large below the limit"),
        Ok(Status::Partial) => assert!(bytes.len() < limits.max_head_len, "partial past the limit"),
        Err(_) => {}
    }
}

/// The answer a server gives each valid permessage-deflate offer, built,
/// written and read back, passes the client's checks (RFC 7692 §7.1); an
/// invalid offer is one §7.1 makes the server decline.
fn check_offers(extensions: &[handshake::Extension<'_>]) {
    for (i, offer) in DeflateOffer::offers(extensions).enumerate() {
        let Ok(offer) = offer else { continue };
        let accepted = offer.accept();
        let text = accepted.to_string();
        let mut answer = Vec::new();
        handshake::parse_extensions(text.as_bytes(), &mut answer).expect("an answer we write parses");
        assert_eq!(DeflateParams::from_response(&answer), Ok(Some(accepted)), "offer {i}: answer round trip");
        assert_eq!(offer.check_response(&accepted), Ok(()), "offer {i}: its own acceptance fails");
        assert_eq!(accepted.no_context_takeover(Role::Client), offer.client_no_context_takeover);
        assert_eq!(accepted.no_context_takeover(Role::Server), offer.server_no_context_takeover);
        assert_eq!(accepted.max_window_bits(Role::Server), offer.server_max_window_bits.unwrap_or(15));
        assert_eq!(accepted.max_window_bits(Role::Client), offer.client_max_window_bits.flatten().unwrap_or(15));
        let offered = extensions.iter().filter(|e| e.name.eq_ignore_ascii_case("permessage-deflate")).nth(i);
        let offered = offered.expect("the offer's element");
        assert_eq!(DeflateParams::from_response_to(std::slice::from_ref(offered), &answer), Ok(Some(accepted)));
    }
}

/// 4a. A request the parser accepts, re-checked by a second, naive reading
///     of the same bytes; consumed length within the input; every split of
///     the input scans to the same result; the head limit (drawn from the
///     input) holds; each valid deflate offer's own answer passes.
pub fn check_handshake_request(data: &[u8]) {
    let split = Split::parse(data);
    let limits = head_limits(split.flags);
    let whole = handshake::parse_request(split.bytes, &limits);
    check_scan_split(&split, &limits);
    check_head_limit(&whole, split.bytes, &limits);
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
    // RFC 6455 §4.1 items 3 and 10, checked by a second reading.
    let target = request_line.split(' ').nth(1).unwrap_or_default();
    assert!(target.starts_with('/') || target.contains("://"), "validated target {target:?}");
    let mut unique = BTreeSet::new();
    assert!(hs.protocols.iter().all(|p| unique.insert(*p)), "validated a repeated subprotocol");
    // A parameter lookup finds the first parameter of that name.
    for e in &hs.extensions {
        for p in &e.params {
            let first = e.params.iter().find(|q| q.name.eq_ignore_ascii_case(p.name)).expect("itself");
            assert_eq!(e.param(&p.name.to_ascii_uppercase()), Some(first.value.as_deref()));
        }
    }
    check_offers(&hs.extensions);
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

/// The offers a response is checked against: flag bits 0–3 pick among
/// these (none picked: all of them, in order).
const RESPONSE_OFFERS: [&str; 4] = [
    "permessage-deflate; client_max_window_bits",
    "permessage-deflate; server_max_window_bits=10",
    "permessage-deflate; server_no_context_takeover; client_max_window_bits=12",
    "permessage-deflate",
];

/// RFC 7692 §7.1.1, §7.1.2 written out as plainly as possible: whether a
/// response with `p` accepts the offer `o`.
fn accepts(o: &DeflateOffer, p: &DeflateParams) -> bool {
    let snct = !o.server_no_context_takeover || p.server_no_context_takeover;
    let smwb = match (o.server_max_window_bits, p.server_max_window_bits) {
        (Some(offered), Some(answered)) => answered <= offered,
        (Some(_), None) => false,
        (None, _) => true,
    };
    let cmwb = match (o.client_max_window_bits, p.client_max_window_bits) {
        (None, Some(_)) => false,
        (Some(Some(offered)), Some(answered)) => answered <= offered,
        _ => true,
    };
    snct && smwb && cmwb
}

/// 4b. Responses: no panic, consumed within the input, a validated 101
///     carries the right accept value, split scanning agrees, the head
///     limit holds; a response validated against deflate offers (RFC 7692
///     §7.1) accepts one of them by the rules of §7.1.1 and §7.1.2.
pub fn check_handshake_response(data: &[u8]) {
    let split = Split::parse(data);
    let limits = head_limits(split.flags);
    check_scan_split(&split, &limits);
    let parsed = handshake::parse_response(split.bytes, &limits);
    check_head_limit(&parsed, split.bytes, &limits);
    let Ok(Status::Complete((res, consumed))) = parsed else { return };
    assert!(consumed <= split.bytes.len());
    let key = b"dGhlIHNhbXBsZSBub25jZQ==";
    let by_name = res.validate(key, &["chat"], &["permessage-deflate"]);
    if by_name.is_ok() {
        assert_eq!(res.status, 101);
        let accept: Vec<&[u8]> = res.headers_named("sec-websocket-accept").collect();
        assert_eq!(accept, [&b"s3pPLMBiTxaQ9kYGzzhZRbK+xOo="[..]]);
    }
    let picked: Vec<&str> = match split.flags & 15 {
        0 => RESPONSE_OFFERS.to_vec(),
        bits => RESPONSE_OFFERS.iter().enumerate().filter(|(i, _)| bits & (1 << i) != 0).map(|(_, o)| *o).collect(),
    };
    let header = picked.join(", ");
    let mut offered = Vec::new();
    handshake::parse_extensions(header.as_bytes(), &mut offered).expect("our offers parse");
    let with_offers = res.validate_offers(key, &["chat"], &offered);
    if by_name.is_err() {
        assert_eq!(with_offers.as_ref().err(), by_name.as_ref().err(), "offers change a name-level verdict");
        return;
    }
    let Ok(selected) = by_name else { return };
    let params = DeflateParams::from_response(&selected.extensions).expect("validate checked the parameters");
    let offers: Vec<DeflateOffer> = DeflateOffer::offers(&offered).map(|o| o.expect("valid offers")).collect();
    let expected = params.is_none_or(|p| offers.iter().any(|o| accepts(o, &p)));
    assert_eq!(with_offers.is_ok(), expected, "{header} / {params:?}: {with_offers:?}");
}

/// Arguments for the handshake builders, as the fuzzer draws them: each
/// string is spelled from a small alphabet (byte 0 is the commonest valid
/// character), so that most inputs build and the rest probe the checks.
#[derive(Debug, Arbitrary)]
struct BuildInput {
    host: Vec<u8>,
    target: Vec<u8>,
    nonce: [u8; 16],
    /// A key of our own instead of the nonce's.
    key: Option<Vec<u8>>,
    protocols: Vec<Vec<u8>>,
    /// The offer as pieces of text (see [`EXTENSION_PIECES`]); or built
    /// from fields.
    extensions: Option<Vec<u8>>,
    offer: Option<(bool, bool, Option<u8>, Option<Option<u8>>)>,
    /// The server's choice of parameters: its own acceptance, or these.
    answer: Option<(bool, bool, Option<u8>, Option<u8>)>,
    rejection: u8,
}

const HOST_CHARS: &[u8] = b"a0.-:[]@ \r\nz9";
const TARGET_CHARS: &[u8] = b"/a?=&%#:[] \r\n~{";
const KEY_CHARS: &[u8] = b"AQgw+/=\r\n ";
const PROTOCOL_CHARS: &[u8] = b"ab,; \r\n\"{";
const EXTENSION_PIECES: [&str; 18] = [
    "permessage-deflate",
    "; ",
    "client_max_window_bits",
    "server_max_window_bits",
    "client_no_context_takeover",
    "server_no_context_takeover",
    "=",
    "10",
    "15",
    "8",
    "\"9\"",
    ", ",
    "x-webkit-deflate-frame",
    "\r\n",
    " ",
    "x=1",
    ";",
    "16",
];

fn spell(bytes: &[u8], alphabet: &[u8]) -> String {
    bytes.iter().take(64).map(|b| char::from(alphabet[usize::from(*b) % alphabet.len()])).collect()
}

/// 4d. The builders: whatever the arguments, `build_request` either refuses
///     them or writes one head that parses back to exactly them and
///     validates (no argument can add a header line); the server's 101
///     built for it validates against it (RFC 6455 §4.1), with the
///     permessage-deflate answer checked against the offer (RFC 7692 §7.1);
///     `build_rejection` gives the error's status.
pub fn check_handshake_build(data: &[u8]) {
    let _ = handshake_build(data);
}

/// [`check_handshake_build`], saying whether the input got as far as a
/// built request (so that a test can tell the seeds reach the property).
pub fn handshake_build(data: &[u8]) -> bool {
    let mut u = Unstructured::new(data);
    let Ok(input) = BuildInput::arbitrary(&mut u) else { return false };
    let host = spell(&input.host, HOST_CHARS);
    let target = spell(&input.target, TARGET_CHARS);
    let key = match &input.key {
        Some(k) => spell(k, KEY_CHARS),
        None => handshake::encode_key(input.nonce),
    };
    let key = key.as_str();
    let protocol_names: Vec<String> = input.protocols.iter().take(8).map(|p| spell(p, PROTOCOL_CHARS)).collect();
    let protocols: Vec<&str> = protocol_names.iter().map(String::as_str).collect();
    let extension_text: Option<String> = input.extensions.as_ref().map(|pieces| {
        pieces.iter().take(16).map(|p| EXTENSION_PIECES[usize::from(*p) % EXTENSION_PIECES.len()]).collect()
    });
    let bits = |b: u8| 8 + b % 8;
    let built_offer = input.offer.map(|(snct, cnct, smwb, cmwb)| DeflateOffer {
        server_no_context_takeover: snct,
        client_no_context_takeover: cnct,
        server_max_window_bits: smwb.map(bits),
        client_max_window_bits: cmwb.map(|c| c.map(bits)),
    });
    let offer_text = built_offer.map(|o| o.to_string());
    let extensions = extension_text.as_deref().or(offer_text.as_deref());
    let limits = Limits::default();

    let status = handshake::build_rejection(ERRORS[usize::from(input.rejection) % ERRORS.len()]);
    let Ok(Status::Complete((res, _))) = handshake::parse_response(&status, &limits) else {
        panic!("a rejection does not parse")
    };
    let error = ERRORS[usize::from(input.rejection) % ERRORS.len()];
    assert_eq!(res.status, error.http_status().unwrap_or(400));

    let Ok(request) = handshake::build_request(&host, &target, key, &protocols, extensions) else { return false };
    let Ok(Status::Complete((req, n))) = handshake::parse_request(&request, &limits) else {
        panic!("a built request does not parse: {:?}", String::from_utf8_lossy(&request))
    };
    assert_eq!(n, request.len(), "one head, nothing after it");
    let expected_lines = 5 + usize::from(!protocols.is_empty()) + usize::from(extensions.is_some());
    assert_eq!(req.headers.len(), expected_lines, "an argument added a header line");
    let hs = req.validate().expect("a built request validates");
    assert_eq!((hs.host, hs.target, hs.key), (host.as_str(), target.as_str(), key));
    assert_eq!(hs.protocols, protocols);
    if let (Some(offer), None) = (built_offer, &extension_text) {
        assert_eq!(DeflateOffer::first_valid(&hs.extensions), Some(offer), "offer round trip");
    }
    check_offers(&hs.extensions);

    // The server: the first subprotocol, the first valid deflate offer,
    // answered with its own acceptance or with the drawn parameters.
    let chosen = DeflateOffer::first_valid(&hs.extensions);
    let answer = match (chosen, input.answer) {
        (Some(_), Some((snct, cnct, smwb, cmwb))) => Some(DeflateParams {
            server_no_context_takeover: snct,
            client_no_context_takeover: cnct,
            server_max_window_bits: smwb.map(bits),
            client_max_window_bits: cmwb.map(bits),
        }),
        (Some(offer), None) => Some(offer.accept()),
        (None, _) => None,
    };
    let answer_text = answer.map(|a| a.to_string());
    let response = handshake::build_response(&hs.accept_key(), protocols.first().copied(), answer_text.as_deref())
        .expect("a 101 for a valid request builds");
    let Ok(Status::Complete((res, n))) = handshake::parse_response(&response, &limits) else {
        panic!("a built response does not parse")
    };
    assert_eq!(n, response.len());
    let verdict = res.validate_for(&hs);
    // Another offer may accept what the first one does not.
    let offers: Vec<DeflateOffer> = DeflateOffer::offers(&hs.extensions).filter_map(Result::ok).collect();
    let expected = answer.is_none_or(|a| offers.iter().any(|o| accepts(o, &a)));
    assert_eq!(verdict.is_ok(), expected, "{answer_text:?} for {offers:?}: {verdict:?}");
    if let Ok(selected) = verdict {
        assert_eq!(selected.protocol, protocols.first().copied());
        assert_eq!(DeflateParams::from_response_to(&hs.extensions, &selected.extensions), Ok(answer));
    }
    true
}

/// Errors whose rejection `check_handshake_build` builds.
const ERRORS: [Error; 6] = [
    Error::UnsupportedVersion,
    Error::HeaderBlockTooLarge,
    Error::MissingKey,
    Error::InvalidRequestTarget,
    Error::DuplicateProtocol,
    Error::ReservedOpcode,
];

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
            // Every code that may be sent has a name, and shows its number.
            assert!(c.code.is_sendable() && c.code.name().is_some(), "code {}", c.code.0);
            assert!(c.code.to_string().starts_with(&c.code.0.to_string()));
            assert_eq!(c.reason.as_bytes(), &split.bytes[2..]);
        }
        Err(Error::CloseLengthOne) => assert_eq!(split.bytes.len(), 1),
        Err(Error::InvalidCloseCode) => {
            let code = u16::from_be_bytes([split.bytes[0], split.bytes[1]]);
            let close_code = wsproto::CloseCode(code);
            assert!(!close_code.is_sendable());
            assert!(close_code.to_string().starts_with(&code.to_string()));
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
    /// How the sender ends the compressed data: 0 a sync flush with the
    /// tail removed (RFC 7692 §7.2.1), 1 a final block (BFINAL, §7.2.3.4,
    /// as `Z_FINISH` senders do), 2 a final block and one 0x00 octet (the
    /// RFC's example).
    ending: u8,
    /// One compressed byte XORed with a value (0: left alone): corrupt data.
    corrupt: Option<(u16, u8)>,
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
    /// Not inflated: the window was lost with an earlier failed message.
    Skipped,
    /// Inflating failed (corrupt data).
    Failed(Error),
}

/// What one `deflate_inspect` input exercises, for tests that check the
/// seeds reach every mode.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DeflateModes {
    /// The sender keeps its window between messages.
    pub context_takeover: bool,
    /// Compressed messages (of the first 8).
    pub compressed: usize,
    /// Compressed messages that end with a final block, without and with
    /// the RFC's 0x00 octet.
    pub final_blocks: usize,
    /// Of those, with the 0x00 octet.
    pub padded: usize,
    /// Compressed messages with a corrupt byte.
    pub corrupt: usize,
}

/// The modes a `deflate_inspect` input exercises (`None`: it does not
/// decode to a stream).
pub fn deflate_inspect_modes(data: &[u8]) -> Option<DeflateModes> {
    let stream = DeflateStream::arbitrary(&mut Unstructured::new(data)).ok()?;
    let mut modes = DeflateModes { context_takeover: !stream.no_context_takeover, ..DeflateModes::default() };
    for m in stream.messages.iter().take(8).filter(|m| m.compressed) {
        modes.compressed += 1;
        modes.final_blocks += usize::from(m.ending % 3 != 0);
        modes.padded += usize::from(m.ending % 3 == 2);
        modes.corrupt += usize::from(m.corrupt.is_some_and(|(_, x)| x != 0));
    }
    Some(modes)
}

/// `deflate_inspect`: messages compressed as a permessage-deflate peer does
/// (RFC 7692 §7.2.1; with or without context takeover, windows of 8–15
/// bits, levels 0–9, ending with a sync flush or with a final block as
/// §7.2.3.4 describes), fragmented and masked arbitrarily and fed to the
/// decoder in arbitrary chunks, then inflated the way wsproxy's inspector
/// does (`wsproto::Decoder` + `wsproto::deflate::Inflater`, with the agreed
/// window): every message comes back byte for byte, with no violation; one
/// that inflates past the cap stops exactly at the cap (nothing past it is
/// produced, and the allocator cap of the fuzz crate catches a buffer sized
/// by the output), and with context takeover the messages after it are
/// skipped, not misread. Corrupt compressed data fails (not DEFLATE, or
/// referring back beyond the agreed window) or inflates to something within
/// the cap; without context takeover every later intact
/// message still reads back, with it every later one is skipped once one
/// failed.
pub fn check_deflate_inspect(data: &[u8]) {
    use wsproto::deflate::{Deflater, Inflater};
    let mut u = Unstructured::new(data);
    let Ok(stream) = DeflateStream::arbitrary(&mut u) else { return };
    let cap = 256 * (u64::from(stream.cap_units) + 1);
    let window_bits = 8 + stream.window_bits % 8;
    let mut deflater =
        Deflater::with_window_bits(u32::from(stream.level % 10), stream.no_context_takeover, window_bits);
    let mask = stream.client.then_some(stream.mask);
    let mut wire = Vec::new();
    // `None`: not predictable (corrupt, or after corrupt data with context
    // takeover).
    let mut expected: Vec<Option<Read>> = Vec::new();
    let mut lost = false;
    let mut unpredictable = false;
    let mut run_budget = 256usize << 10;
    for m in stream.messages.iter().take(8) {
        let mut plain = m.data.clone();
        if let Some((byte, len)) = m.run {
            let run = (usize::from(len % 1024) * 64).min(run_budget);
            run_budget -= run;
            plain.resize(plain.len() + run, byte);
        }
        let text = m.text && std::str::from_utf8(&plain).is_ok();
        let mut corrupt = false;
        let payload = if m.compressed {
            let mut out = Vec::new();
            match m.ending % 3 {
                0 => deflater.compress_message(&plain, &mut out),
                ending => deflater.compress_message_final(&plain, ending == 2, &mut out),
            }
            if let Some((at, x)) = m.corrupt.filter(|(_, x)| *x != 0 && !out.is_empty()) {
                let at = usize::from(at) % out.len();
                out[at] ^= x;
                corrupt = true;
            }
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
        if corrupt && !stream.no_context_takeover {
            unpredictable = true;
        }
        expected.push(match (m.compressed, lost) {
            (false, _) => Some(Read::Message(plain)),
            _ if corrupt || (unpredictable && m.compressed) => None,
            (true, true) => Some(Read::Skipped),
            (true, false) if plain.len() as u64 > cap => {
                // Without context takeover the next message is readable.
                lost = !stream.no_context_takeover;
                plain.truncate(cap as usize);
                Some(Read::Capped(plain))
            }
            (true, false) => Some(Read::Message(plain)),
        });
    }

    let role = if stream.client { Role::Client } else { Role::Server };
    let config = DecoderConfig { allow_rsv1: true, validate_utf8: false, ..DecoderConfig::default() };
    let mut decoder = Decoder::new(role, config);
    let mut inflater = Inflater::with_window_bits(stream.no_context_takeover, window_bits, cap);
    struct Current {
        compressed: bool,
        skipped: bool,
        out: Vec<u8>,
        error: Option<Error>,
    }
    let mut current: Option<Current> = None;
    let mut reads = Vec::new();
    let mut compressed_reads = Vec::new();
    let mut window_gone = false;
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
                        match inflater.inflate(&unmasked, &mut |b| out.extend_from_slice(b)) {
                            Ok(()) if c.error.is_none() => {
                                assert_eq!(inflater.message_len(), c.out.len() as u64, "message_len")
                            }
                            Ok(()) => {}
                            Err(e) => {
                                assert!(c.error.is_none(), "an inflate error is returned once");
                                c.error = Some(e);
                            }
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
                            Err(e) => {
                                assert!(c.error.is_none(), "an inflate error is returned once");
                                c.error = Some(e);
                            }
                        }
                    }
                    assert!(c.out.len() as u64 <= cap || !c.compressed, "inflated past the cap");
                    let read = match (c.skipped, c.error) {
                        (true, _) => Read::Skipped,
                        (false, Some(Error::InflatedTooLarge)) => Read::Capped(c.out),
                        (false, Some(e)) => Read::Failed(e),
                        (false, None) => Read::Message(c.out),
                    };
                    if c.compressed {
                        compressed_reads.push(reads.len());
                        // With context takeover a failed message loses the window.
                        window_gone |= !stream.no_context_takeover && matches!(read, Read::Failed(_) | Read::Capped(_));
                        assert_eq!(inflater.context_lost(), window_gone, "context_lost");
                    }
                    reads.push(read);
                }
                Event::FrameEnd(_) => {}
            }
        }
    }
    assert_eq!(reads.len(), expected.len(), "one read per message");
    for (i, (read, expected)) in reads.iter().zip(&expected).enumerate() {
        match (read, expected) {
            (_, Some(e)) => assert_eq!(read, e, "message {i}: the inspector's view differs from what was sent"),
            // Corrupt data may still inflate, referring back further than
            // the agreed window (RFC 7692 §7.1.2).
            (Read::Failed(e), None) => {
                assert!(matches!(e, Error::InflateFailed | Error::BeyondAgreedWindow), "message {i}: {e:?}")
            }
            (Read::Capped(out), None) => assert_eq!(out.len() as u64, cap, "message {i}"),
            (Read::Message(_) | Read::Skipped, None) => {}
        }
    }
    // With context takeover, a failed or capped message takes the window
    // with it: every later compressed message is skipped; without it,
    // none is.
    let mut gone = false;
    for &i in &compressed_reads {
        if stream.no_context_takeover {
            assert!(!matches!(reads[i], Read::Skipped), "message {i} skipped without context takeover");
        } else {
            assert_eq!(matches!(reads[i], Read::Skipped), gone, "message {i}");
            gone |= matches!(reads[i], Read::Failed(_) | Read::Capped(_));
        }
    }
}

/// A `deflate_window` input: messages compressed with one window and read
/// by a receiver that agreed to another, or raw bytes.
#[derive(Debug, Arbitrary)]
struct WindowStream {
    /// Arbitrary bytes as DEFLATE data instead of compressed messages.
    raw: bool,
    sender_bits: u8,
    agreed_bits: u8,
    level: u8,
    no_context_takeover: bool,
    /// Each message: some bytes, then `repeat` of them copied from
    /// `distance` back (so that long references are there), and how it
    /// ends (as in `deflate_inspect`).
    messages: Vec<(Vec<u8>, u16, u16, u8)>,
    chunks: Vec<u16>,
}

/// `deflate_window`: RFC 7692 §7.1.2, the agreed window. Messages
/// compressed by zlib-rs with a window of 2^S bytes (9–15 bits, levels 0–9,
/// with and without context takeover, sync-flushed or ending with a final
/// block), read by an inflater that agreed to 2^A (8–15 bits) in arbitrary
/// pieces: a [`wsproto::deflate::WindowAudit`] with the full window counts
/// exactly the bytes each message inflates to and sees no distance beyond
/// zlib's 2^S − 262; and the inflater reads each message back unchanged
/// when that message's longest distance is within 2^A, and fails it with
/// `BeyondAgreedWindow` (skipping the rest with context takeover) when it
/// is not: never a misread, never another error. In raw mode, arbitrary
/// bytes: the audit never panics, and for data zlib-rs reads to the end of
/// one stream it counts the same output.
pub fn check_deflate_window(data: &[u8]) {
    deflate_window_modes(data);
}

/// What one `deflate_window` input reached, for the test that checks the
/// seeds reach every mode.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WindowModes {
    /// Raw bytes that zlib-rs reads to the end of a stream.
    pub raw_stream: bool,
    /// A message failed for a distance beyond the agreed window.
    pub beyond: bool,
    /// A message read back with an agreed window smaller than the sender's.
    pub within_smaller: bool,
}

/// Runs the `deflate_window` property on `data` (panics when it fails) and
/// says which modes it reached.
pub fn deflate_window_modes(data: &[u8]) -> WindowModes {
    use wsproto::deflate::{Deflater, Inflater, TAIL, WindowAudit};
    let mut modes = WindowModes::default();
    let mut u = Unstructured::new(data);
    let Ok(stream) = WindowStream::arbitrary(&mut u) else { return modes };
    let mut sizes = stream.chunks.iter().map(|c| usize::from(*c % 4096).max(1)).cycle();
    if stream.raw {
        let raw: Vec<u8> = stream.messages.iter().flat_map(|m| m.0.iter().copied()).take(4096).collect();
        let mut audit = WindowAudit::new(15);
        let mut rest = &raw[..];
        while !rest.is_empty() {
            let n = sizes.next().unwrap_or(rest.len()).min(rest.len());
            let _ = audit.feed(&rest[..n]);
            rest = &rest[n..];
        }
        let mut zlib = flate2::Decompress::new(false);
        let mut out = vec![0; 2 << 20];
        if let Ok(flate2::Status::StreamEnd) = zlib.decompress(&raw, &mut out, flate2::FlushDecompress::Sync)
            && zlib.total_in() == raw.len() as u64
        {
            assert_eq!(audit.produced(), zlib.total_out(), "the audit counts what zlib-rs inflates");
            modes.raw_stream = true;
        }
        return modes;
    }
    let sender = 9 + stream.sender_bits % 7;
    let agreed = 8 + stream.agreed_bits % 8;
    let nct = stream.no_context_takeover;
    let mut deflater = Deflater::with_window_bits(u32::from(stream.level % 10), nct, sender);
    let mut reference = WindowAudit::new(15);
    let mut inflater = Inflater::with_window_bits(nct, agreed, 1 << 20);
    let mut lost = false;
    for (seed, repeat, distance, ending) in stream.messages.iter().take(6) {
        let mut plain: Vec<u8> = seed.iter().copied().take(16 << 10).collect();
        let from = plain.len().saturating_sub(usize::from(*distance));
        let take = usize::from(*repeat).min(plain.len() - from);
        plain.extend_from_within(from..from + take);
        let mut wire = Vec::new();
        let tail = match ending % 3 {
            0 => {
                deflater.compress_message(&plain, &mut wire);
                true
            }
            e => {
                deflater.compress_message_final(&plain, e == 2, &mut wire);
                e == 2
            }
        };
        // The reference sees what a receiver inflates: the tail appended
        // unless the message ended its stream.
        let before = reference.produced();
        reference.feed(&wire).unwrap();
        if tail {
            reference.feed(&TAIL).unwrap();
        }
        assert_eq!(reference.produced() - before, plain.len() as u64, "the audit counts every byte");
        let farthest = reference.take_farthest();
        assert!(farthest <= (1 << sender) - 262, "zlib-rs refers {farthest} back with {sender} bits");
        if nct {
            reference.reset();
        }

        let mut out = Vec::new();
        let mut result = Ok(());
        let started = inflater.begin_message();
        let mut rest = &wire[..];
        while !rest.is_empty() && result.is_ok() {
            let n = sizes.next().unwrap_or(rest.len()).min(rest.len());
            result = inflater.inflate(&rest[..n], &mut |b| out.extend_from_slice(b));
            rest = &rest[n..];
        }
        let ended = inflater.end_message(&mut |b| out.extend_from_slice(b));
        let got = match result {
            Err(e) => Err(e),
            Ok(()) => ended.map(|n| n.map(|_| out)),
        };
        if lost {
            assert!(!started && got == Ok(None), "after a lost window, messages are skipped");
        } else if farthest > 1 << agreed {
            assert_eq!(got, Err(Error::BeyondAgreedWindow), "{farthest} back, {agreed} bits agreed");
            lost = !nct;
            modes.beyond = true;
        } else {
            assert!(got == Ok(Some(plain)), "{farthest} back, {agreed} bits agreed: read back unchanged");
            modes.within_smaller |= agreed < sender && farthest > 0;
        }
    }
    modes
}

/// The masking keys of the `endpoint` target's clients: a counter, the same
/// sequence in every run, so that two runs' output can be compared.
fn counting_keys() -> wsproto::endpoint::MaskKeys {
    let mut n: u32 = 0;
    Box::new(move || {
        n = n.wrapping_add(0x0101_0101);
        n.to_be_bytes()
    })
}

/// The `endpoint` target's flag (bit 5) for reads straight into the
/// message buffer ([`wsproto::endpoint::Endpoint::payload_buffer`]).
const ENDPOINT_DIRECT: u8 = 32;

/// The `endpoint` target's configuration from the flags: bit 0 the role
/// (set: client), bit 1 permessage-deflate agreed, bits 2 and 3 each side's
/// `no_context_takeover`, bit 4 small window bits (9) instead of none;
/// small limits so that the limits are reached. Bit 5: [`ENDPOINT_DIRECT`].
fn endpoint_config(flags: u8) -> wsproto::endpoint::EndpointConfig {
    let bits = (flags & 16 != 0).then_some(9);
    let deflate = (flags & 2 != 0).then_some(DeflateParams {
        server_no_context_takeover: flags & 4 != 0,
        client_no_context_takeover: flags & 8 != 0,
        server_max_window_bits: bits,
        client_max_window_bits: bits,
    });
    wsproto::endpoint::EndpointConfig {
        max_message_len: 64 << 10,
        max_frame_len: 32 << 10,
        deflate,
        compression_level: 1,
    }
}

/// Feeds `pieces` to a fresh endpoint as a shell does (every message
/// echoed as it completes); returns what it received and what it sent.
fn drive_endpoint(flags: u8, pieces: &[&[u8]]) -> (Vec<wsproto::endpoint::Received>, Vec<u8>, usize) {
    use wsproto::endpoint::Endpoint;
    let config = endpoint_config(flags);
    let mut endpoint =
        if flags & 1 != 0 { Endpoint::client(config, counting_keys()) } else { Endpoint::server(config) };
    let mut all = Vec::new();
    let mut out = Vec::new();
    let mut buf: Vec<u8> = Vec::new();
    let mut direct_reads = 0;
    for piece in pieces {
        let mut piece: &[u8] = piece;
        // Flag 32: where the endpoint offers its message buffer and nothing
        // is buffered, a piece's payload goes straight there (as wsecho's
        // direct reads do), at most what it allows.
        while flags & ENDPOINT_DIRECT != 0 && buf.is_empty() && !piece.is_empty() {
            let Some((message, limit)) = endpoint.payload_buffer() else { break };
            assert!(limit >= 1, "payload_buffer offered no room");
            let n = limit.min(piece.len());
            message.extend_from_slice(&piece[..n]);
            piece = &piece[n..];
            direct_reads += 1;
            let mut received = Vec::new();
            endpoint.payload_read(&mut received);
            echo(&mut endpoint, received, &mut all);
        }
        buf.extend_from_slice(piece);
        let mut used = 0;
        loop {
            let mut received = Vec::new();
            let n = endpoint.handle_input(&mut buf[used..], &mut received);
            used += n;
            let got = !received.is_empty();
            echo(&mut endpoint, received, &mut all);
            if n == 0 && !got {
                break;
            }
        }
        buf.drain(..used);
        out.append(endpoint.output());
    }
    (all, out, direct_reads)
}

/// Echoes each message in `received` as a shell does, and keeps everything
/// in `all`.
fn echo(
    endpoint: &mut wsproto::endpoint::Endpoint,
    received: Vec<wsproto::endpoint::Received>,
    all: &mut Vec<wsproto::endpoint::Received>,
) {
    for r in received {
        if let wsproto::endpoint::Received::Message { kind, data } = &r {
            endpoint.send(*kind, data);
        }
        all.push(r);
    }
}

/// What an `endpoint` input makes the endpoint do: (client role, messages
/// received, failed the connection, saw the peer's close, payload appended
/// straight into the message buffer), for checking that the seeds reach
/// every outcome.
pub fn endpoint_outcomes(data: &[u8]) -> (bool, usize, bool, bool, bool) {
    use wsproto::endpoint::Received;
    let split = Split::parse(data);
    let (received, _, direct_reads) = drive_endpoint(split.flags, &split.pieces());
    let messages = received.iter().filter(|r| matches!(r, Received::Message { .. })).count();
    let failed = received.iter().any(|r| matches!(r, Received::Failed(_)));
    let closed = received.iter().any(|r| matches!(r, Received::Close(_)));
    (split.flags & 1 != 0, messages, failed, closed, direct_reads > 0)
}

/// An endpoint's output as (opcode, rsv1, payload) per frame, unmasked,
/// with close reasons left out (the code kept).
fn sent_frames(out: &[u8], client: bool, deflate: bool) -> Vec<(OpCode, bool, Vec<u8>)> {
    let mut decoder = Decoder::new(
        if client { Role::Client } else { Role::Server },
        DecoderConfig { allow_rsv1: deflate, max_frame_len: u64::MAX, ..DecoderConfig::default() },
    );
    let mut frames = Vec::new();
    let mut payload = Vec::new();
    let mut input = out;
    loop {
        let d = decoder.decode(input);
        input = &input[d.consumed..];
        match d.event {
            Some(Event::Payload(p)) => p.extend_unmasked(&mut payload),
            Some(Event::FrameEnd(end)) => {
                let mut data = std::mem::take(&mut payload);
                if end.header.opcode == OpCode::Close {
                    data.truncate(2);
                }
                frames.push((end.header.opcode, end.header.rsv1, data));
            }
            Some(_) => {}
            None if d.consumed == 0 => return frames,
            None => {}
        }
    }
}

/// `wsproto::endpoint::Endpoint` in either role, with or without
/// permessage-deflate, fed arbitrary bytes from its peer cut anywhere (as
/// wsecho's default engine and the Autobahn client drive it, each message
/// echoed as it completes):
///
/// * it never panics, and what it receives and sends does not depend on
///   where the input was cut, nor on whether payload was read straight
///   into the message buffer (flag 32);
/// * what it sends is valid for its role (RFC 6455 §5.1, §5.3: a client's
///   frames masked, a server's not; RSV1 only when deflate was agreed), has
///   at most one close frame, and nothing after it (§5.5.1);
/// * when the peer broke a rule, its last frame is a close with that
///   rule's code (§7.1.7, §7.4.1);
/// * no message it reports is over its limit (§10.4).
pub fn check_endpoint(data: &[u8]) {
    use wsproto::endpoint::Received;
    let split = Split::parse(data);
    let (received, out, _) = drive_endpoint(split.flags, &split.pieces());
    // The reference: all the input at once, through handle_input only.
    let (whole, whole_out, _) = drive_endpoint(split.flags & !ENDPOINT_DIRECT, &[split.bytes]);
    let client = split.flags & 1 != 0;
    let config = endpoint_config(split.flags);
    if received == whole {
        assert_eq!(out, whole_out, "what is sent depends on the cuts");
    } else {
        // One leeway: which of two DEFLATE faults is reported, corrupt data
        // (zlib-rs) or a reference beyond the agreed window (the audit),
        // may depend on the cuts where both lie in the same stretch of
        // data: each detector needs a different number of bits to decide.
        // Both fail the connection with 1002 (RFC 7692 §7.2.2, §7.1.2);
        // only the reason text differs. The data order where they are
        // apart is pinned by unit tests in wsproto's deflate module.
        let deflate_fault = |r: &[Received]| -> Vec<Received> {
            r.iter()
                .map(|r| match r {
                    Received::Failed(Error::BeyondAgreedWindow) => Received::Failed(Error::InflateFailed),
                    other => other.clone(),
                })
                .collect()
        };
        assert_eq!(deflate_fault(&received), deflate_fault(&whole), "what is received depends on the cuts");
        assert_eq!(
            sent_frames(&out, client, config.deflate.is_some()),
            sent_frames(&whole_out, client, config.deflate.is_some()),
            "what is sent depends on the cuts (close reasons aside)"
        );
    }

    // Our own frames, decoded as the peer decodes them.
    let mut decoder = Decoder::new(
        if client { Role::Client } else { Role::Server },
        DecoderConfig { allow_rsv1: config.deflate.is_some(), max_frame_len: u64::MAX, ..DecoderConfig::default() },
    );
    let mut input = out.as_slice();
    let mut closes = 0;
    let mut last_close_code = None;
    let mut frames_after_close = 0;
    loop {
        let d = decoder.decode(input);
        input = &input[d.consumed..];
        match d.event {
            Some(Event::Violation(v)) => panic!("the endpoint sent an invalid frame: {}", v.error),
            Some(Event::Header(h)) => {
                assert_eq!(h.header.mask.is_some(), client, "§5.1/§5.3: masked if and only if a client");
                if closes > 0 {
                    frames_after_close += 1;
                }
            }
            Some(Event::FrameEnd(end)) if end.header.opcode == OpCode::Close => {
                closes += 1;
                last_close_code = parse_close_payload(decoder.control_payload()).ok().flatten().map(|c| c.code);
            }
            Some(_) => {}
            None if d.consumed == 0 => break,
            None => {}
        }
    }
    assert!(input.is_empty(), "the endpoint sent a partial frame");
    assert!(closes <= 1, "{closes} close frames");
    assert_eq!(frames_after_close, 0, "§5.5.1: frames after the close");
    for r in &received {
        if let Received::Message { data, .. } = r {
            assert!(data.len() as u64 <= config.max_message_len, "a message over the limit");
        }
    }
    if let Some(Received::Failed(error)) = received.iter().find(|r| matches!(r, Received::Failed(_))) {
        let expected = error.close_code().unwrap_or(wsproto::CloseCode::PROTOCOL_ERROR);
        assert_eq!(last_close_code, Some(expected), "failed with {error} but closed with another code");
    }
}
