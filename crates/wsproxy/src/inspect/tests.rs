use super::*;
use crate::schema::{Event as Ev, Record};
use wsproto::{FrameHeader, encode_frame};

fn opts(max_preview: PreviewLimit, messages_only: bool) -> InspectOptions {
    InspectOptions { format: Format::Json, max_preview, messages_only, enforce: false }
}

fn frame(opcode: OpCode, fin: bool, mask: Option<[u8; 4]>, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    encode_frame(&FrameHeader { fin, mask, ..FrameHeader::new(opcode, 0) }, payload, &mut out);
    out
}

/// Feeds `bytes` in pieces of `chunk` bytes and parses the events back.
fn run(from: Side, o: InspectOptions, bytes: &[u8], chunk: usize) -> Vec<Ev> {
    let shared = Mutex::new(Shared::default());
    let mut insp = DirectionInspector::new(1, from, 100, false, o);
    let mut out = Vec::new();
    for piece in bytes.chunks(chunk.max(1)) {
        insp.feed(piece, &shared, &mut out);
    }
    String::from_utf8(out)
        .expect("utf-8")
        .lines()
        .map(|l| serde_json::from_str::<Record>(l).expect("typed").event)
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
    let shared = Mutex::new(Shared::default());
    let o = opts(PreviewLimit::Bytes(16), false);
    let mut client = DirectionInspector::new(1, Side::Client, 0, false, o);
    let mut upstream = DirectionInspector::new(1, Side::Upstream, 0, false, o);
    let mut out = Vec::new();
    client.feed(
        &[frame(OpCode::Ping, true, KEY, b"a"), frame(OpCode::Ping, true, KEY, b"b")].concat(),
        &shared,
        &mut out,
    );
    upstream.feed(&frame(OpCode::Pong, true, None, b"b"), &shared, &mut out);
    let text = String::from_utf8(out).expect("utf-8");
    let last: Record = serde_json::from_str(text.lines().last().expect("a line")).expect("typed");
    assert!(matches!(last.event, Ev::Frame { from: crate::schema::Side::Upstream, rtt_us: Some(_), .. }));
    assert_eq!(shared.lock().expect("lock").unanswered_pings(), [1, 0]);
}
