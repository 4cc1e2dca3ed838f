use super::*;
use crate::Format;
use crate::log::Events;
use crate::schema::Event as Ev;
use wsproto::deflate::DeflateParams;
use wsproto::{FrameHeader, encode_frame};

fn opts(max_preview: PreviewLimit, messages_only: bool) -> InspectOptions {
    InspectOptions { max_preview, messages_only, enforce: false, max_inflate: 1 << 20 }
}

fn frame(opcode: OpCode, fin: bool, mask: Option<[u8; 4]>, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    encode_frame(&FrameHeader { fin, mask, ..FrameHeader::new(opcode, 0) }, payload, &mut out);
    out
}

/// Feeds `bytes` in pieces of `chunk` bytes and parses the events back.
fn run(from: Side, o: InspectOptions, bytes: &[u8], chunk: usize) -> Vec<Ev> {
    run_deflate(from, o, None, bytes, chunk)
}

fn run_deflate(from: Side, o: InspectOptions, deflate: Option<DeflateParams>, bytes: &[u8], chunk: usize) -> Vec<Ev> {
    let mut shared = Shared::default();
    let mut insp = DirectionInspector::new(1, from, 100, deflate, o);
    let mut out = Events::new(&[Format::Json]);
    for piece in bytes.chunks(chunk.max(1)) {
        insp.feed(piece, &Time::now(), &mut shared, &mut out);
    }
    String::from_utf8(out.output(0).to_vec())
        .expect("utf-8")
        .lines()
        .map(|l| crate::schema::parse_strict(l).expect("strict").event)
        .collect()
}

const KEY: Option<[u8; 4]> = Some([9, 8, 7, 6]);

fn stream() -> Vec<u8> {
    [
        frame(OpCode::Text, false, KEY, "κόσμε ".as_bytes()),
        frame(OpCode::Ping, true, KEY, b"ping"),
        frame(OpCode::Continuation, true, KEY, b"world"),
        frame(OpCode::Binary, true, KEY, &[0, 1, 2, 0xff]),
        frame(OpCode::Reserved(0xB), true, KEY, b""),
        frame(OpCode::Text, true, KEY, b"\xff"),
        frame(OpCode::Close, true, KEY, &[0x03, 0xe8, b'o', b'k']),
    ]
    .concat()
}

#[test]
fn events_do_not_depend_on_how_the_bytes_arrive() {
    let bytes = stream();
    let whole = run(Side::Client, opts(PreviewLimit::Bytes(256), false), &bytes, bytes.len());
    for chunk in [1, 2, 3, 7, 64] {
        assert_eq!(run(Side::Client, opts(PreviewLimit::Bytes(256), false), &bytes, chunk), whole, "chunk {chunk}");
    }
    let messages: Vec<(String, u64, u32, String, String)> = whole
        .iter()
        .filter_map(|e| match e {
            Ev::Message { kind, len, fragments, preview, preview_encoding, .. } => {
                Some((kind.clone(), *len, *fragments, preview.clone(), preview_encoding.clone()))
            }
            _ => None,
        })
        .collect();
    assert_eq!(
        messages,
        vec![
            ("text".into(), 16, 2, "κόσμε world".into(), "text".into()),
            ("binary".into(), 4, 1, "000102ff".into(), "hex".into()),
            ("text".into(), 1, 1, "ff".into(), "hex".into()),
        ]
    );
    let violations: Vec<(String, u64)> = whole
        .iter()
        .filter_map(|e| match e {
            Ev::Violation { rule, offset, .. } => Some((rule.clone(), *offset)),
            _ => None,
        })
        .collect();
    let reserved_at = 100 + (6 + 11) + (6 + 4) + (6 + 5) + (6 + 4);
    assert_eq!(violations, vec![("reserved_opcode".into(), reserved_at), ("invalid_utf8".into(), reserved_at + 6 + 6)]);
    assert!(
        whole
            .iter()
            .any(|e| matches!(e, Ev::Close { code: Some(1000), reason, initiated: true, .. } if reason == "ok"))
    );
    assert!(whole.iter().any(|e| matches!(e, Ev::Frame { mask: Some(m), .. } if m == "09080706")));
}

#[test]
fn previews_are_capped_and_cut_at_character_boundaries() {
    let text = "é".repeat(200); // 400 bytes
    let bytes = frame(OpCode::Text, true, None, text.as_bytes());
    let events = run(Side::Upstream, opts(PreviewLimit::Bytes(255), false), &bytes, 1000);
    let Some(Ev::Frame { preview, preview_truncated, preview_encoding, len, .. }) = events.first() else {
        panic!("{events:?}")
    };
    assert_eq!(
        (preview.chars().count(), *preview_truncated, preview_encoding.as_str(), *len),
        (127, true, "text", 400)
    );
    let events = run(Side::Upstream, opts(PreviewLimit::All, false), &bytes, 1000);
    assert!(matches!(&events[0], Ev::Frame { preview, preview_truncated: false, .. } if *preview == text));
    let events = run(Side::Upstream, opts(PreviewLimit::Bytes(0), false), &bytes, 1000);
    assert!(matches!(&events[0], Ev::Frame { preview, preview_truncated: true, .. } if preview.is_empty()));
}

#[test]
fn messages_only_skips_data_frames_but_not_control_frames() {
    let events = run(Side::Client, opts(PreviewLimit::Bytes(16), true), &stream(), 5);
    for e in &events {
        if let Ev::Frame { opcode: crate::schema::Opcode::Name(n), .. } = e {
            assert!(["ping", "close"].contains(&n.as_str()), "{n}");
        }
    }
    assert_eq!(events.iter().filter(|e| matches!(e, Ev::Message { .. })).count(), 3);
}

#[test]
fn pongs_are_matched_to_pings_and_unanswered_ones_counted() {
    let o = opts(PreviewLimit::Bytes(16), false);
    // (pings the client sends, pongs the upstream sends, rtt_us present per pong, unanswered after)
    let cases: &[(&[&[u8]], &[&[u8]], &[bool], u64)] = &[
        (&[b"a", b"b"], &[b"a"], &[true], 1),
        // A pong answers its ping and every earlier one (RFC 6455 §5.5.2).
        (&[b"a", b"b"], &[b"b"], &[true], 0),
        (&[b"a", b"b"], &[b"a", b"b"], &[true, true], 0),
        // An unsolicited pong answers nothing.
        (&[b"a"], &[b"zz"], &[false], 1),
        (&[], &[b"zz"], &[false], 0),
    ];
    for (pings, pongs, rtts, unanswered) in cases {
        let mut shared = Shared::default();
        let mut client = DirectionInspector::new(1, Side::Client, 0, None, o);
        let mut upstream = DirectionInspector::new(1, Side::Upstream, 0, None, o);
        let mut out = Events::new(&[Format::Json]);
        let sent: Vec<u8> = pings.iter().flat_map(|p| frame(OpCode::Ping, true, KEY, p)).collect();
        client.feed(&sent, &Time::now(), &mut shared, &mut out);
        out.clear();
        for p in *pongs {
            upstream.feed(&frame(OpCode::Pong, true, None, p), &Time::now(), &mut shared, &mut out);
        }
        let text = String::from_utf8(out.output(0).to_vec()).expect("utf-8");
        let got: Vec<bool> = text
            .lines()
            .map(|l| match crate::schema::parse_strict(l).expect("strict").event {
                Ev::Frame { rtt_us, .. } => rtt_us.is_some(),
                e => panic!("unexpected {e:?}"),
            })
            .collect();
        assert_eq!(&got, rtts, "pings {pings:?} pongs {pongs:?}");
        assert_eq!(shared.unanswered_pings(), [*unanswered, 0], "pings {pings:?} pongs {pongs:?}");
    }
}

#[test]
fn a_burst_of_pings_answered_in_one_write_leaves_none_unanswered() {
    let o = opts(PreviewLimit::Bytes(0), false);
    let mut shared = Shared::default();
    let mut client = DirectionInspector::new(1, Side::Client, 0, None, o);
    let mut upstream = DirectionInspector::new(1, Side::Upstream, 0, None, o);
    let mut out = Events::new(&[Format::Json]);
    let payloads: Vec<Vec<u8>> = (0..300u32).map(|i| format!("ping {i}").into_bytes()).collect();
    let pings: Vec<u8> = payloads.iter().flat_map(|p| frame(OpCode::Ping, true, KEY, p)).collect();
    let pongs: Vec<u8> = payloads.iter().flat_map(|p| frame(OpCode::Pong, true, None, p)).collect();
    client.feed(&pings, &Time::now(), &mut shared, &mut out);
    assert_eq!(shared.unanswered_pings(), [300, 0]);
    upstream.feed(&pongs, &Time::now(), &mut shared, &mut out);
    assert_eq!(shared.unanswered_pings(), [0, 0]);
}

#[test]
fn pings_after_the_senders_close_need_no_answer() {
    let o = opts(PreviewLimit::Bytes(0), false);
    let mut shared = Shared::default();
    let mut client = DirectionInspector::new(1, Side::Client, 0, None, o);
    let mut out = Events::new(&[Format::Json]);
    let bytes = [
        frame(OpCode::Ping, true, KEY, b"before"),
        frame(OpCode::Close, true, KEY, &[0x03, 0xe8]),
        frame(OpCode::Ping, true, KEY, b"after"),
    ]
    .concat();
    client.feed(&bytes, &Time::now(), &mut shared, &mut out);
    // The ping before the close still counts; the one after it does not.
    assert_eq!(shared.unanswered_pings(), [1, 0]);
}

/// A compressed message as frames: RSV1 on the first, split in `pieces`.
fn compressed_frames(deflater: &mut wsproto::deflate::Deflater, op: OpCode, data: &[u8], pieces: usize) -> Vec<u8> {
    let mut wire = Vec::new();
    deflater.compress_message(data, &mut wire);
    let size = wire.len().div_ceil(pieces.max(1)).max(1);
    let chunks: Vec<&[u8]> = if wire.is_empty() { vec![&[][..]] } else { wire.chunks(size).collect() };
    let mut out = Vec::new();
    for (i, c) in chunks.iter().enumerate() {
        let opcode = if i == 0 { op } else { OpCode::Continuation };
        let h = FrameHeader { fin: i + 1 == chunks.len(), rsv1: i == 0, mask: KEY, ..FrameHeader::new(opcode, 0) };
        encode_frame(&h, c, &mut out);
    }
    out
}

fn messages(events: &[Ev]) -> Vec<(Option<u64>, String, String)> {
    events
        .iter()
        .filter_map(|e| match e {
            Ev::Message { decompressed_len, preview, preview_encoding, .. } => {
                Some((*decompressed_len, preview.clone(), preview_encoding.clone()))
            }
            _ => None,
        })
        .collect()
}

fn rules(events: &[Ev]) -> Vec<String> {
    events
        .iter()
        .filter_map(|e| match e {
            Ev::Violation { rule, .. } => Some(rule.clone()),
            _ => None,
        })
        .collect()
}

#[test]
fn compressed_messages_are_shown_inflated_whatever_the_framing_and_context() {
    let long = "héllo wörld ".repeat(1000);
    for no_takeover in [false, true] {
        let params = DeflateParams { client_no_context_takeover: no_takeover, ..DeflateParams::default() };
        let mut deflater = wsproto::deflate::Deflater::new(6, no_takeover);
        let bytes = [
            compressed_frames(&mut deflater, OpCode::Text, b"", 1),
            compressed_frames(&mut deflater, OpCode::Text, long.as_bytes(), 5),
            frame(OpCode::Ping, true, KEY, b"p"),
            compressed_frames(&mut deflater, OpCode::Text, long.as_bytes(), 1),
            compressed_frames(&mut deflater, OpCode::Binary, &[0, 1, 2, 255], 1),
            // Not every message need be compressed.
            frame(OpCode::Text, true, KEY, b"plain"),
        ]
        .concat();
        let o = opts(PreviewLimit::All, false);
        let whole = run_deflate(Side::Client, o, Some(params), &bytes, bytes.len());
        for chunk in [1, 3, 100] {
            assert_eq!(run_deflate(Side::Client, o, Some(params), &bytes, chunk), whole, "chunk {chunk}");
        }
        assert_eq!(rules(&whole), Vec::<String>::new());
        let n = long.len() as u64;
        assert_eq!(
            messages(&whole),
            vec![
                (Some(0), String::new(), "text".into()),
                (Some(n), long.clone(), "text".into()),
                (Some(n), long.clone(), "text".into()),
                (Some(4), "000102ff".into(), "hex".into()),
                (None, "plain".into(), "text".into()),
            ]
        );
    }
}

#[test]
fn compression_problems_are_violations_and_the_stream_goes_on() {
    // Without context takeover a failed message does not spoil the next.
    let params = DeflateParams { client_no_context_takeover: true, ..DeflateParams::default() };
    let o = InspectOptions { max_inflate: 1000, ..opts(PreviewLimit::Bytes(8), false) };
    let mut deflater = wsproto::deflate::Deflater::new(9, true);
    let rsv1 = |op, fin| {
        let mut out = Vec::new();
        encode_frame(&FrameHeader { fin, rsv1: true, mask: KEY, ..FrameHeader::new(op, 0) }, b"", &mut out);
        out
    };
    let bytes = [
        // A bomb: 1 MiB of zeros, capped at 1000 bytes.
        compressed_frames(&mut deflater, OpCode::Binary, &vec![0; 1 << 20], 2),
        // Not DEFLATE.
        {
            let mut out = Vec::new();
            let h = FrameHeader { rsv1: true, mask: KEY, ..FrameHeader::new(OpCode::Text, 0) };
            encode_frame(&h, &[0xff; 8], &mut out);
            out
        },
        // Inflates to invalid UTF-8.
        compressed_frames(&mut deflater, OpCode::Text, b"ok \xff", 1),
        rsv1(OpCode::Ping, true),
        rsv1(OpCode::Text, false),
        rsv1(OpCode::Continuation, true),
        compressed_frames(&mut deflater, OpCode::Text, b"still read", 1),
    ]
    .concat();
    let events = run_deflate(Side::Client, o, Some(params), &bytes, 7);
    assert_eq!(
        rules(&events),
        [
            "inflated_too_large",
            "inflate_failed",
            "invalid_utf8",
            "misplaced_compressed_bit",
            "misplaced_compressed_bit"
        ]
    );
    let shown = messages(&events);
    assert_eq!(shown.len(), 5, "{shown:?}");
    // The bomb shows what was inflated before the cap, never the wire bytes.
    assert_eq!((shown[0].0, shown[0].1.as_str()), (None, "0000000000000000"));
    assert_eq!(shown[1], (None, String::new(), "text".into()));
    assert_eq!(shown[4], (Some(10), "still re".into(), "text".into()));

    // RSV1 when nothing was negotiated: the payload is read as it is (and
    // compressed bytes are rarely UTF-8).
    let events = run(Side::Client, o, &compressed_frames(&mut deflater, OpCode::Text, b"x", 1), 100);
    assert_eq!(rules(&events)[0], "reserved_bit_set");
    assert_eq!(messages(&events)[0].0, None);
}

/// RFC 7692 §7.1.2: a client that agreed to `client_max_window_bits=10`
/// but refers 3000 bytes back breaks its agreement, even though the data
/// inflates; a message within the window reads as usual.
#[test]
fn a_sender_beyond_its_agreed_window_is_a_violation() {
    let params = DeflateParams {
        client_no_context_takeover: true,
        client_max_window_bits: Some(10),
        ..DeflateParams::default()
    };
    let o = opts(PreviewLimit::Bytes(8), false);
    let words: Vec<u8> = (0..3000u32).map(|i| b'a' + ((i.wrapping_mul(2_654_435_761) >> 16) % 26) as u8).collect();
    let far = [words.clone(), words].concat();
    let bytes = [
        compressed_frames(&mut wsproto::deflate::Deflater::with_window_bits(9, true, 15), OpCode::Text, &far, 3),
        compressed_frames(&mut wsproto::deflate::Deflater::with_window_bits(9, true, 10), OpCode::Text, &far, 2),
    ]
    .concat();
    for chunk in [5, 700, bytes.len()] {
        let events = run_deflate(Side::Client, o, Some(params), &bytes, chunk);
        assert_eq!(rules(&events), ["beyond_agreed_window"], "chunk {chunk}");
        let shown = messages(&events);
        assert_eq!(shown.len(), 2, "{shown:?}");
        assert_eq!(shown[1].0, Some(far.len() as u64), "chunk {chunk}");
    }
}

/// A close frame is shown as it was on the wire, whatever rule it breaks;
/// the rule is reported as a violation beside it.
#[test]
fn close_code_and_reason_are_shown_as_sent() {
    // (payload, code, reason, reason_invalid_utf8, violation rule)
    let cases: &[(&[u8], Option<u16>, &str, bool, Option<&str>)] = &[
        (b"\x03\xe8ok", Some(1000), "ok", false, None),
        (b"", None, "", false, None),
        (b"\x03", None, "", false, Some("close_length_one")),
        (b"\x03\xed", Some(1005), "", false, Some("invalid_close_code")),
        (b"\x03\xee", Some(1006), "", false, Some("invalid_close_code")),
        (b"\x03\xf7", Some(1015), "", false, Some("invalid_close_code")),
        (b"\x0b\xb7bye", Some(2999), "bye", false, Some("invalid_close_code")),
        (b"\x13\x88", Some(5000), "", false, Some("invalid_close_code")),
        (b"\x03\xe8a\xffb", Some(1000), "a\u{fffd}b", true, Some("invalid_utf8_close_reason")),
    ];
    for (payload, code, reason, invalid, rule) in cases {
        let events =
            run(Side::Upstream, opts(PreviewLimit::Bytes(16), false), &frame(OpCode::Close, true, None, payload), 64);
        let close = events
            .iter()
            .find_map(|e| match e {
                Ev::Close { code, reason, reason_invalid_utf8, .. } => {
                    Some((*code, reason.clone(), *reason_invalid_utf8))
                }
                _ => None,
            })
            .expect("a close event");
        assert_eq!(close, (*code, reason.to_string(), *invalid), "payload {payload:?}");
        let rules: Vec<&str> = events
            .iter()
            .filter_map(|e| match e {
                Ev::Violation { rule, .. } => Some(rule.as_str()),
                _ => None,
            })
            .collect();
        assert_eq!(rules, rule.iter().copied().collect::<Vec<_>>(), "payload {payload:?}");
    }
}

/// wsproto issue 13's input: from the server, with context takeover,
/// "first" as a complete raw DEFLATE stream (BFINAL set, RFC 7692
/// §7.2.3.4), then "second": both read, no violation.
#[test]
fn a_final_deflate_block_does_not_spoil_the_next_message() {
    let bytes = [
        0xc1, 0x07, 0x4b, 0xcb, 0x2c, 0x2a, 0x2e, 0x01, 0x00, 0xc1, 0x08, 0x2a, 0x4e, 0x4d, 0xce, 0xcf, 0x4b, 0x01,
        0x00,
    ];
    for chunk in [1, 5, bytes.len()] {
        let events = run_deflate(
            Side::Upstream,
            opts(PreviewLimit::Bytes(64), true),
            Some(DeflateParams::default()),
            &bytes,
            chunk,
        );
        assert!(rules(&events).is_empty(), "{chunk}: {:?}", rules(&events));
        let shown = messages(&events);
        assert_eq!(
            shown,
            [(Some(5), "first".into(), "text".into()), (Some(6), "second".into(), "text".into())],
            "{chunk}"
        );
    }
}

/// wsproto issue 13: Safari's `x-webkit-deflate-frame` sets RSV1 on every
/// compressed frame; with the extension negotiated that is no violation
/// (RFC 6455 §5.2), and the frames are shown raw.
#[test]
fn an_undecoded_extension_sets_reserved_bits_without_violations() {
    let mut bytes = Vec::new();
    let h = FrameHeader { fin: false, rsv1: true, mask: KEY, ..FrameHeader::new(OpCode::Text, 0) };
    encode_frame(&h, &[0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00], &mut bytes);
    let h = FrameHeader { fin: true, rsv1: true, mask: KEY, ..FrameHeader::new(OpCode::Continuation, 0) };
    encode_frame(&h, &[0xff, 0xfe], &mut bytes);
    let h = FrameHeader { rsv1: true, mask: KEY, ..FrameHeader::new(OpCode::Ping, 0) };
    encode_frame(&h, b"", &mut bytes);
    let mut shared = Shared::default();
    let mut insp = DirectionInspector::new(1, Side::Client, 100, None, opts(PreviewLimit::Bytes(8), false));
    insp.set_opaque_extension();
    let mut out = Events::new(&[Format::Json]);
    assert_eq!(insp.feed(&bytes, &Time::now(), &mut shared, &mut out), None);
    let events: Vec<Ev> = String::from_utf8(out.output(0).to_vec())
        .expect("utf-8")
        .lines()
        .map(|l| crate::schema::parse_strict(l).expect("strict").event)
        .collect();
    assert!(rules(&events).is_empty(), "{:?}", rules(&events));
    assert_eq!(messages(&events), [(None, "f248cdc9c90700ff".into(), "hex".into())]);
    // Without it (what the proxy did before): every frame breaks RFC 6455
    // §5.2, and the compressed text is not UTF-8.
    let events = run(Side::Client, opts(PreviewLimit::Bytes(8), false), &bytes, 3);
    assert_eq!(rules(&events), ["reserved_bit_set", "invalid_utf8", "reserved_bit_set", "reserved_bit_set"]);
}
