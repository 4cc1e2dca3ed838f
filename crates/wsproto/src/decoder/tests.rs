use proptest::prelude::*;

use super::*;
use crate::encode::encode_frame;

/// An owned, split-independent view of the decoder's output: consecutive
/// payload chunks are merged and unmasked.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Ev {
    Header(HeaderEvent),
    Payload(Vec<u8>),
    Violation(Error, u64),
    End(FrameEnd),
}

fn push_payload(out: &mut Vec<Ev>, bytes: Vec<u8>) {
    if let Some(Ev::Payload(prev)) = out.last_mut() {
        prev.extend_from_slice(&bytes);
    } else {
        out.push(Ev::Payload(bytes));
    }
}

fn record(out: &mut Vec<Ev>, ev: Event<'_>) {
    match ev {
        Event::Header(h) => out.push(Ev::Header(h)),
        Event::Payload(p) => {
            assert!(!p.is_empty(), "payload chunks are never empty");
            let mut v = Vec::new();
            p.extend_unmasked(&mut v);
            push_payload(out, v);
        }
        Event::Violation(v) => out.push(Ev::Violation(v.error, v.offset)),
        Event::FrameEnd(e) => out.push(Ev::End(e)),
    }
}

/// Decodes `bytes` in chunks of `chunk` bytes (or at the given cut points),
/// through `decode` or `decode_mut`.
fn decode_split(role: Role, config: DecoderConfig, bytes: &[u8], cuts: &[usize], in_place: bool) -> Vec<Ev> {
    let mut d = Decoder::new(role, config);
    let mut out = Vec::new();
    let mut points: Vec<usize> = cuts.iter().map(|c| c % (bytes.len() + 1)).collect();
    points.sort_unstable();
    points.push(bytes.len());
    let mut owned = bytes.to_vec();
    let mut start = 0;
    for p in points {
        if p < start {
            continue;
        }
        let mut pos = start;
        loop {
            let decoded = if in_place { d.decode_mut(&mut owned[pos..p]) } else { d.decode(&bytes[pos..p]) };
            pos += decoded.consumed;
            match decoded.event {
                Some(ev) => record(&mut out, ev),
                None => break,
            }
        }
        assert_eq!(pos, p, "a call without an event consumes all its input");
        start = p;
    }
    assert_eq!(d.offset(), bytes.len() as u64);
    out
}

fn decode_whole(role: Role, config: DecoderConfig, bytes: &[u8]) -> Vec<Ev> {
    let whole = decode_split(role, config, bytes, &[], false);
    let bytewise: Vec<usize> = (0..bytes.len()).collect();
    assert_eq!(decode_split(role, config, bytes, &bytewise, false), whole, "one byte at a time");
    assert_eq!(decode_split(role, config, bytes, &bytewise, true), whole, "one byte at a time, in place");
    assert_eq!(decode_split(role, config, bytes, &[], true), whole, "in place");
    whole
}

fn violations(events: &[Ev]) -> Vec<(Error, u64)> {
    events
        .iter()
        .filter_map(|e| match e {
            Ev::Violation(r, at) => Some((*r, *at)),
            _ => None,
        })
        .collect()
}

fn payloads(events: &[Ev]) -> Vec<Vec<u8>> {
    // Frames with an empty payload give no payload event; count per frame.
    let mut out = Vec::new();
    let mut current: Option<Vec<u8>> = None;
    for e in events {
        match e {
            Ev::Header(_) => current = Some(Vec::new()),
            Ev::Payload(p) => current.get_or_insert_with(Vec::new).extend_from_slice(p),
            Ev::End(_) => out.push(current.take().unwrap_or_default()),
            Ev::Violation(..) => {}
        }
    }
    out
}

fn hdr(opcode: OpCode, fin: bool, mask: Option<[u8; 4]>) -> FrameHeader {
    FrameHeader { fin, mask, ..FrameHeader::new(opcode, 0) }
}

fn frame(h: FrameHeader, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    encode_frame(&h, payload, &mut out);
    out
}

const KEY: Option<[u8; 4]> = Some([0x37, 0xfa, 0x21, 0x3d]);

#[test]
fn rfc_5_7_examples() {
    // A single-frame unmasked text message.
    let ev = decode_whole(Role::Server, DecoderConfig::default(), &[0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f]);
    assert_eq!(payloads(&ev), vec![b"Hello".to_vec()]);
    assert!(violations(&ev).is_empty());
    // A single-frame masked text message.
    let ev = decode_whole(
        Role::Client,
        DecoderConfig::default(),
        &[0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58],
    );
    assert_eq!(payloads(&ev), vec![b"Hello".to_vec()]);
    assert!(violations(&ev).is_empty());
    // A fragmented unmasked text message.
    let ev =
        decode_whole(Role::Server, DecoderConfig::default(), &[0x01, 0x03, 0x48, 0x65, 0x6c, 0x80, 0x02, 0x6c, 0x6f]);
    assert_eq!(payloads(&ev), vec![b"Hel".to_vec(), b"lo".to_vec()]);
    let ends: Vec<bool> =
        ev.iter().filter_map(|e| if let Ev::End(e) = e { Some(e.message_end) } else { None }).collect();
    assert_eq!(ends, [false, true]);
    assert!(violations(&ev).is_empty());
    // Unmasked ping, masked pong.
    let ev = decode_whole(Role::Server, DecoderConfig::default(), &[0x89, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f]);
    assert_eq!(payloads(&ev), vec![b"Hello".to_vec()]);
    let ev = decode_whole(
        Role::Client,
        DecoderConfig::default(),
        &[0x8a, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58],
    );
    assert_eq!(payloads(&ev), vec![b"Hello".to_vec()]);
    // 256 bytes and 64 KiB binary messages in a single unmasked frame.
    for len in [256usize, 65536] {
        let mut bytes =
            if len == 256 { vec![0x82, 0x7E, 0x01, 0x00] } else { vec![0x82, 0x7F, 0, 0, 0, 0, 0, 1, 0, 0] };
        let body: Vec<u8> = (0..len).map(|i| i as u8).collect();
        bytes.extend_from_slice(&body);
        let ev = decode_split(Role::Server, DecoderConfig::default(), &bytes, &[3, 7, 100, 3000], false);
        assert_eq!(payloads(&ev), vec![body]);
        assert!(violations(&ev).is_empty());
    }
}

#[test]
fn control_payload_is_kept_unmasked() {
    let bytes = frame(hdr(OpCode::Close, true, KEY), &[0x03, 0xe8, b'b', b'y', b'e']);
    for in_place in [false, true] {
        let mut d = Decoder::new(Role::Client, DecoderConfig::default());
        let mut owned = bytes.clone();
        let mut pos = 0;
        let mut ended = false;
        while pos < bytes.len() || !ended {
            let decoded = if in_place { d.decode_mut(&mut owned[pos..]) } else { d.decode(&bytes[pos..]) };
            pos += decoded.consumed;
            match decoded.event {
                Some(Event::FrameEnd(_)) => ended = true,
                Some(Event::Violation(v)) => panic!("{v}"),
                Some(_) => {}
                None => break,
            }
        }
        assert!(ended);
        assert_eq!(d.control_payload(), b"\x03\xe8bye");
        assert!(d.close_seen());
    }
}

/// One frame (or stream) per rule, decoded whole and byte by byte.
#[test]
fn every_rule() {
    let cfg = DecoderConfig::default();
    let deflate = DecoderConfig { allow_rsv1: true, ..cfg };
    let opaque = DecoderConfig { opaque_extension: true, ..cfg };
    let small = DecoderConfig { max_frame_len: 10, ..cfg };
    let text = |fin, payload: &[u8]| frame(hdr(OpCode::Text, fin, None), payload);
    let cont = |fin, payload: &[u8]| frame(hdr(OpCode::Continuation, fin, None), payload);
    let close = |payload: &[u8]| frame(hdr(OpCode::Close, true, None), payload);
    let cat = |parts: &[Vec<u8>]| parts.concat();

    let cases: Vec<(&str, Role, DecoderConfig, Vec<u8>, Vec<(Error, u64)>)> = vec![
        ("reserved data opcode", Role::Server, cfg, vec![0x83, 0x00], vec![(Error::ReservedOpcode, 0)]),
        ("reserved control opcode", Role::Server, cfg, vec![0x8B, 0x00], vec![(Error::ReservedOpcode, 0)]),
        ("rsv1 not negotiated", Role::Server, cfg, vec![0xC1, 0x00], vec![(Error::ReservedBitSet, 0)]),
        ("rsv2", Role::Server, deflate, vec![0xA2, 0x00], vec![(Error::ReservedBitSet, 0)]),
        ("rsv3", Role::Server, cfg, vec![0x92, 0x00], vec![(Error::ReservedBitSet, 0)]),
        ("rsv1 negotiated", Role::Server, deflate, vec![0xC1, 0x00], vec![]),
        // RFC 7692 §6.1, not RFC 6455 §5.2: the bit is defined, but not here.
        ("rsv1 on ping", Role::Server, deflate, vec![0xC9, 0x00], vec![(Error::MisplacedCompressedBit, 0)]),
        ("rsv1 on pong", Role::Server, deflate, vec![0xCA, 0x00], vec![(Error::MisplacedCompressedBit, 0)]),
        ("rsv1 on close", Role::Server, deflate, vec![0xC8, 0x00], vec![(Error::MisplacedCompressedBit, 0)]),
        (
            "rsv1 on continuation",
            Role::Server,
            deflate,
            cat(&[text(false, b""), vec![0xC0, 0x00]]),
            vec![(Error::MisplacedCompressedBit, 2)],
        ),
        ("rsv1 on ping, no extension", Role::Server, cfg, vec![0xC9, 0x00], vec![(Error::ReservedBitSet, 0)]),
        // An extension the decoder cannot interpret (x-webkit-deflate-frame):
        // reserved bits on any frame, and its text bytes are not UTF-8.
        (
            "opaque extension: rsv1 on every fragment, compressed text",
            Role::Server,
            opaque,
            cat(&[vec![0x41, 0x02, 0xff, 0xfe], vec![0xC0, 0x01, 0xff], vec![0xF1, 0x00], vec![0xC9, 0x00]]),
            vec![],
        ),
        (
            "control too long",
            Role::Server,
            cfg,
            cat(&[vec![0x89, 0x7E, 0, 126], vec![0; 126]]),
            vec![(Error::ControlFrameTooLong, 0)],
        ),
        ("control fragmented", Role::Server, cfg, vec![0x09, 0x00], vec![(Error::ControlFrameFragmented, 0)]),
        (
            "non-minimal 16-bit",
            Role::Server,
            cfg,
            cat(&[vec![0x82, 0x7E, 0, 5], vec![0; 5]]),
            vec![(Error::NonMinimalLength, 0)],
        ),
        (
            "non-minimal 64-bit",
            Role::Server,
            cfg,
            cat(&[vec![0x82, 0x7F, 0, 0, 0, 0, 0, 0, 1, 0], vec![0; 256]]),
            vec![(Error::NonMinimalLength, 0)],
        ),
        ("length msb", Role::Server, cfg, vec![0x82, 0x7F, 0x80, 0, 0, 0, 0, 0, 0, 0], vec![(Error::LengthMsbSet, 0)]),
        ("unmasked client frame", Role::Client, cfg, text(true, b"hi"), vec![(Error::UnmaskedClientFrame, 0)]),
        (
            "masked server frame",
            Role::Server,
            cfg,
            frame(hdr(OpCode::Text, true, KEY), b"hi"),
            vec![(Error::MaskedServerFrame, 0)],
        ),
        (
            "frame too large",
            Role::Server,
            small,
            frame(hdr(OpCode::Binary, true, None), &[0; 11]),
            vec![(Error::FrameTooLarge, 0)],
        ),
        (
            "continuation without a message",
            Role::Server,
            cfg,
            cont(true, b"x"),
            vec![(Error::UnexpectedContinuation, 0)],
        ),
        (
            "data frame inside a fragmented message",
            Role::Server,
            cfg,
            cat(&[text(false, b"a"), text(true, b"b")]),
            vec![(Error::ExpectedContinuation, 3)],
        ),
        (
            "ping inside a fragmented message is fine",
            Role::Server,
            cfg,
            cat(&[text(false, b"a"), frame(hdr(OpCode::Ping, true, None), b"p"), cont(true, b"b")]),
            vec![],
        ),
        ("close length one", Role::Server, cfg, close(&[0x03]), vec![(Error::CloseLengthOne, 2)]),
        ("close code 1005", Role::Server, cfg, close(&[0x03, 0xED]), vec![(Error::InvalidCloseCode, 2)]),
        ("close code 999", Role::Server, cfg, close(&[0x03, 0xE7]), vec![(Error::InvalidCloseCode, 2)]),
        (
            "close reason not utf-8",
            Role::Server,
            cfg,
            close(&[0x03, 0xE8, b'o', b'k', 0xFF]),
            vec![(Error::InvalidUtf8CloseReason, 6)],
        ),
        ("empty close is fine", Role::Server, cfg, close(&[]), vec![]),
        (
            "frame after close",
            Role::Server,
            cfg,
            cat(&[close(&[0x03, 0xE8]), text(true, b"x")]),
            vec![(Error::FrameAfterClose, 4)],
        ),
        (
            "ping after close is allowed",
            Role::Server,
            cfg,
            cat(&[close(&[]), frame(hdr(OpCode::Ping, true, None), b"")]),
            vec![],
        ),
        ("invalid utf-8 fails fast", Role::Server, cfg, text(false, b"ab\xFFcd"), vec![(Error::InvalidUtf8, 4)]),
        (
            "invalid utf-8 across fragments",
            Role::Server,
            cfg,
            cat(&[text(false, b"\xce"), cont(true, b"\xba\xe1\xbd\xb9\xed\xa0\x80")]),
            vec![(Error::InvalidUtf8, 3 + 2 + 5)],
        ),
        (
            "utf-8 split across fragments is fine",
            Role::Server,
            cfg,
            cat(&[text(false, b"\xce"), cont(true, b"\xba")]),
            vec![],
        ),
        ("text ends inside a code point", Role::Server, cfg, text(true, b"a\xe2\x82"), vec![(Error::InvalidUtf8, 5)]),
        ("binary is not utf-8 checked", Role::Server, cfg, frame(hdr(OpCode::Binary, true, None), b"\xFF"), vec![]),
        ("compressed text is not utf-8 checked", Role::Server, deflate, vec![0xC1, 0x01, 0xFF], vec![]),
        (
            "masked invalid utf-8",
            Role::Client,
            cfg,
            frame(hdr(OpCode::Text, true, KEY), b"hello\xF5world"),
            vec![(Error::InvalidUtf8, 6 + 5)],
        ),
        (
            "several rules in one header",
            Role::Client,
            cfg,
            vec![0x7B, 0x7E, 0, 0],
            vec![
                (Error::ReservedOpcode, 0),
                (Error::ReservedBitSet, 0),
                (Error::ControlFrameFragmented, 0),
                (Error::NonMinimalLength, 0),
                (Error::UnmaskedClientFrame, 0),
            ],
        ),
    ];
    for (name, role, config, bytes, expected) in cases {
        let events = decode_whole(role, config, &bytes);
        assert_eq!(violations(&events), expected, "{name}");
        if name != "length msb" {
            assert!(matches!(events.last(), Some(Ev::End(_))), "{name}: the stream ends on a frame end");
        }
    }
}

#[test]
fn violations_follow_their_header_and_precede_the_frame_end() {
    let bytes = frame(hdr(OpCode::Close, true, None), &[0x03, 0xED]);
    let events = decode_whole(Role::Server, DecoderConfig::default(), &bytes);
    assert!(matches!(
        events[..],
        [Ev::Header(_), Ev::Payload(_), Ev::Violation(Error::InvalidCloseCode, 2), Ev::End(_)]
    ));
}

#[test]
fn stop_on_violation_stops() {
    let config = DecoderConfig { stop_on_violation: true, ..DecoderConfig::default() };
    let bytes = [frame(hdr(OpCode::Text, true, None), b"a\xFFb"), frame(hdr(OpCode::Text, true, None), b"ok")].concat();
    for cuts in [vec![], (0..bytes.len()).collect::<Vec<_>>()] {
        let events = decode_split(Role::Server, config, &bytes, &cuts, false);
        assert_eq!(violations(&events), vec![(Error::InvalidUtf8, 3)]);
        assert!(matches!(events.last(), Some(Ev::Violation(..))), "nothing after the violation");
    }
    let mut d = Decoder::new(Role::Server, config);
    let mut input = &bytes[..];
    while !input.is_empty() {
        let decoded = d.decode(input);
        input = &input[decoded.consumed..];
        if decoded.event.is_none() {
            break;
        }
    }
    assert_eq!(d.failure().map(|v| v.error), Some(Error::InvalidUtf8));
    assert_eq!(d.failure().and_then(|v| v.error.close_code()), Some(crate::CloseCode(1007)));
}

#[test]
fn huge_length_allocates_nothing_and_streams() {
    let mut bytes = vec![0x82, 0x7F, 0x7F, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF];
    bytes.extend_from_slice(&[0xAB; 4096]);
    let events = decode_split(Role::Server, DecoderConfig::default(), &bytes, &[5, 100], false);
    let Ev::Header(h) = &events[0] else { panic!("header first") };
    assert_eq!(h.header.payload_len, (1 << 63) - 1);
    assert!(violations(&events).is_empty());
    assert_eq!(payloads(&events), Vec::<Vec<u8>>::new(), "the frame has not ended");
    let mut d = Decoder::new(Role::Server, DecoderConfig::default());
    let mut input = &bytes[..];
    loop {
        let decoded = d.decode(input);
        input = &input[decoded.consumed..];
        if decoded.event.is_none() {
            break;
        }
    }
    assert!(!d.at_frame_boundary());
    assert_eq!(d.offset(), bytes.len() as u64);
}

#[test]
fn every_strict_prefix_of_a_frame_yields_no_frame_end() {
    let bytes = frame(hdr(OpCode::Binary, true, KEY), &[1; 300]);
    for cut in 0..bytes.len() {
        let events = decode_split(Role::Client, DecoderConfig::default(), &bytes[..cut], &[], false);
        assert!(!events.iter().any(|e| matches!(e, Ev::End(_))), "prefix {cut}");
        assert!(violations(&events).is_empty(), "prefix {cut}");
    }
}

fn any_frame() -> impl Strategy<Value = (FrameHeader, Vec<u8>)> {
    (any::<[bool; 4]>(), 0u8..16, any::<Option<[u8; 4]>>(), prop::collection::vec(any::<u8>(), 0..300)).prop_map(
        |(bits, op, mask, payload)| {
            let h = FrameHeader {
                fin: bits[0],
                rsv1: bits[1],
                rsv2: bits[2],
                rsv3: bits[3],
                opcode: OpCode::from_u4(op),
                mask,
                payload_len: payload.len() as u64,
            };
            (h, payload)
        },
    )
}

proptest! {
    #[test]
    fn encode_then_decode_gives_the_frames_back(
        frames in prop::collection::vec(any_frame(), 0..8),
        cuts in prop::collection::vec(any::<usize>(), 0..10),
        role in prop_oneof![Just(Role::Client), Just(Role::Server)],
    ) {
        let mut bytes = Vec::new();
        for (h, p) in &frames {
            encode_frame(h, p, &mut bytes);
        }
        let whole = decode_split(role, DecoderConfig::default(), &bytes, &[], false);
        prop_assert_eq!(&decode_split(role, DecoderConfig::default(), &bytes, &cuts, false), &whole);
        prop_assert_eq!(&decode_split(role, DecoderConfig::default(), &bytes, &cuts, true), &whole);
        let headers: Vec<FrameHeader> =
            whole.iter().filter_map(|e| if let Ev::Header(h) = e { Some(h.header) } else { None }).collect();
        let expected: Vec<FrameHeader> = frames.iter().map(|(h, _)| *h).collect();
        prop_assert_eq!(headers, expected);
        let expected_payloads: Vec<Vec<u8>> = frames.iter().map(|(_, p)| p.clone()).collect();
        prop_assert_eq!(payloads(&whole), expected_payloads);
    }

    #[test]
    fn arbitrary_bytes_split_anywhere_give_the_same_events(
        bytes in prop::collection::vec(any::<u8>(), 0..200),
        cuts in prop::collection::vec(any::<usize>(), 0..10),
        role in prop_oneof![Just(Role::Client), Just(Role::Server)],
        rsv1 in any::<bool>(),
    ) {
        let config = DecoderConfig { allow_rsv1: rsv1, max_frame_len: 100, ..DecoderConfig::default() };
        let whole = decode_split(role, config, &bytes, &[], false);
        prop_assert_eq!(&decode_split(role, config, &bytes, &cuts, false), &whole);
        prop_assert_eq!(&decode_split(role, config, &bytes, &cuts, true), &whole);
    }
}
