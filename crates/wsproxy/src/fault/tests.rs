use std::sync::Arc;

use super::*;

fn rules(specs: &[&str]) -> Arc<[FaultRule]> {
    specs.iter().map(|s| FaultRule::parse(s).expect(s)).collect::<Vec<_>>().into()
}

fn frame(opcode: OpCode, fin: bool, mask: Option<[u8; 4]>, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    wsproto::encode_frame(&FrameHeader { fin, mask, ..FrameHeader::new(opcode, 0) }, payload, &mut out);
    out
}

/// Feeds `input` in pieces of `step`; returns what came out and the records.
fn run(from: Side, specs: &[&str], input: &[u8], step: usize) -> (Vec<Out>, Vec<Record>) {
    let mut e = FaultEngine::new(from, rules(specs), 1);
    let (mut out, mut records) = (Vec::new(), Vec::new());
    for piece in input.chunks(step.max(1)) {
        e.feed(piece, &mut out, &mut records);
    }
    let rest = e.flush();
    push_bytes(&mut out, &rest);
    (out, records)
}

/// The bytes of `outs`, joined.
fn bytes(outs: &[Out]) -> Vec<u8> {
    outs.iter()
        .flat_map(|o| match o {
            Out::Bytes(b) | Out::Injected(b) | Out::Throttled(b, _) => b.clone(),
            _ => Vec::new(),
        })
        .collect()
}

/// Decodes `bytes` into (opcode, fin, rsv bits, unmasked payload).
fn frames(bytes: &[u8]) -> Vec<(OpCode, bool, [bool; 3], Option<[u8; 4]>, Vec<u8>)> {
    let mut at = 0;
    let mut out = Vec::new();
    while at < bytes.len() {
        let Status::Complete(ph) = parse_header(&bytes[at..]) else { panic!("cut header at {at}") };
        let h = ph.header;
        let start = at + ph.header_len;
        let end = start + h.payload_len as usize;
        let mut payload = bytes[start..end].to_vec();
        if let Some(k) = h.mask {
            wsproto::apply_mask(&mut payload, k, 0);
        }
        out.push((h.opcode, h.fin, [h.rsv1, h.rsv2, h.rsv3], h.mask, payload));
        at = end;
    }
    out
}

#[test]
fn rules_parse_and_bad_ones_say_why() {
    for (spec, action) in [
        ("upstream,pong:swallow", Action::Swallow),
        ("upstream,text:fragment=3", Action::Fragment(3)),
        ("client,data:delay=200ms", Action::Delay(Duration::from_millis(200))),
        ("upstream,msg=5:reset", Action::Reset),
        ("upstream,text,msg=2:corrupt=rsv2", Action::Corrupt(Corruption::Rsv2)),
        ("upstream,msg=3:close=1012,restarting", Action::Close { code: 1012, reason: "restarting".into() }),
        ("upstream,msg=3:close=1000,a: b", Action::Close { code: 1000, reason: "a: b".into() }),
        ("client,match=\"type\":\"x\",y:drop", Action::Drop),
        ("p=0.25:duplicate", Action::Duplicate),
        ("data:throttle=64KiB/s", Action::Throttle(65536)),
        ("text:truncate", Action::Truncate),
    ] {
        let rule = FaultRule::parse(spec).unwrap_or_else(|e| panic!("{spec}: {e}"));
        assert_eq!(rule.action(), &action, "{spec}");
        assert_eq!(rule.text(), spec);
    }
    let m = FaultRule::parse("client,match=\"type\":\"x\",y:drop").expect("parses");
    assert_eq!(m.pattern.as_ref().map(regex::Regex::as_str), Some("\"type\":\"x\",y"));
    assert_eq!(FaultRule::parse("msg=2-4:drop").expect("range").msg, Some((2, 4)));
    for (spec, why) in [
        ("upstream,pong", "WHERE:ACTION"),
        ("upstream:explode", "unknown action `explode`"),
        ("upstream,pongs:drop", "unknown selector `pongs`"),
        ("client,upstream:drop", "both client and upstream"),
        ("msg=0:drop", "msg=0"),
        ("msg=3-2:drop", "msg=3-2"),
        ("p=1.5:drop", "p=1.5"),
        ("text:fragment=1", "2 or more"),
        ("ping:fragment=2", "control frames cannot be fragmented"),
        ("ping,msg=2:drop", "never matches a control frame"),
        ("text:close=1005", "not a code an endpoint may send"),
        ("text:delay", "needs a value"),
        ("text:drop=3", "takes no value"),
        ("match=(:drop", "match=("),
        ("text,,binary:drop", "empty selector"),
        ("text:throttle=0/s", "more than 0"),
        ("text:throttle=9/s", "at least 10 bytes/s"),
    ] {
        let e = FaultRule::parse(spec).expect_err(spec);
        assert!(e.contains(why), "{spec}: {e}");
    }
}

#[test]
fn selectors_must_all_match() {
    let text = frame(OpCode::Text, true, None, b"hello");
    let bin = frame(OpCode::Binary, true, None, &[0xab, 0xcd]);
    let ping = frame(OpCode::Ping, true, None, b"p");
    let input = [text.clone(), bin.clone(), ping.clone(), text.clone()].concat();
    for (spec, dropped) in [
        ("upstream,text:drop", vec![0, 3]),
        ("client,text:drop", vec![]),
        ("binary:drop", vec![1]),
        ("control:drop", vec![2]),
        ("data:drop", vec![0, 1, 3]),
        ("msg=2:drop", vec![1]),
        ("msg=2-3:drop", vec![1, 3]),
        ("text,msg=3:drop", vec![3]),
        ("match=^hel:drop", vec![0, 3]),
        ("binary,match=abcd:drop", vec![1]),
        ("p=0:drop", vec![]),
        ("p=1:drop", vec![0, 1, 2, 3]),
    ] {
        let (out, records) = run(Side::Upstream, &[spec], &input, usize::MAX);
        let all = [&text, &bin, &ping, &text];
        let expected: Vec<u8> =
            all.iter().enumerate().filter(|(i, _)| !dropped.contains(i)).flat_map(|(_, f)| f.to_vec()).collect();
        assert_eq!(bytes(&out), expected, "{spec}");
        assert_eq!(records.len(), dropped.len(), "{spec}");
    }
}

#[test]
fn fragment_splits_a_message_and_keeps_its_payload() {
    for mask in [None, Some([1, 2, 3, 4])] {
        let input = frame(OpCode::Text, true, mask, b"hello world");
        let (out, records) = run(Side::Client, &["text:fragment=3"], &input, 1);
        let got = frames(&bytes(&out));
        let shape: Vec<(OpCode, bool, usize)> = got.iter().map(|f| (f.0, f.1, f.4.len())).collect();
        assert_eq!(
            shape,
            [(OpCode::Text, false, 4), (OpCode::Continuation, false, 4), (OpCode::Continuation, true, 3)]
        );
        assert!(got.iter().all(|f| f.3.is_some() == mask.is_some()), "masked as before");
        assert_eq!(got.iter().flat_map(|f| f.4.clone()).collect::<Vec<u8>>(), b"hello world");
        assert_eq!(records.len(), 1);
        assert_eq!(records[0].msg, Some(1));
        assert!(matches!(out[..], [Out::Injected(_)]));
    }
}

#[test]
fn corruptions_do_what_they_say() {
    let input = frame(OpCode::Text, true, None, b"ok");
    for (c, check) in [
        (
            "rsv1",
            (|f: &(OpCode, bool, [bool; 3], Option<[u8; 4]>, Vec<u8>)| f.2 == [true, false, false]) as fn(&_) -> bool,
        ),
        ("rsv2", |f| f.2 == [false, true, false]),
        ("rsv3", |f| f.2 == [false, false, true]),
        ("mask", |f| f.3.is_some() && f.4 == b"ok"),
        ("bit", |f| f.4 == b"nk"),
        ("utf8", |f| f.4 == [0xFF, b'k']),
    ] {
        let (out, records) = run(Side::Upstream, &[&format!("text:corrupt={c}")], &input, usize::MAX);
        let got = frames(&bytes(&out));
        assert_eq!(got.len(), 1, "{c}");
        assert!(check(&got[0]), "{c}: {got:?}");
        assert_eq!(records.len(), 1);
    }
}

#[test]
fn duplicate_repeats_a_fragmented_message_after_its_last_frame() {
    let a = frame(OpCode::Text, false, None, b"ab");
    let ping = frame(OpCode::Ping, true, None, b"");
    let b = frame(OpCode::Continuation, true, None, b"cd");
    let input = [a.clone(), ping.clone(), b.clone()].concat();
    let (out, records) = run(Side::Upstream, &["text:duplicate"], &input, 3);
    assert_eq!(bytes(&out), [a.clone(), ping, b.clone(), a, b].concat());
    assert_eq!(records.len(), 1);
}

#[test]
fn ending_actions_relay_the_frame_first_and_nothing_after() {
    let one = frame(OpCode::Text, true, None, b"1");
    let two = frame(OpCode::Text, true, None, b"2");
    let input = [one.clone(), two.clone()].concat();
    let (out, _) = run(Side::Upstream, &["msg=1:reset"], &input, usize::MAX);
    assert_eq!(out, [Out::Bytes(one.clone()), Out::Reset]);
    let (out, _) = run(Side::Upstream, &["msg=1:close=1012,restarting"], &input, usize::MAX);
    assert_eq!(out, [Out::Bytes(one.clone()), Out::Close(1012, "restarting".into())]);
    let long = frame(OpCode::Binary, true, None, &[7; 100]);
    let (out, _) = run(Side::Upstream, &["binary:truncate"], &long, usize::MAX);
    assert_eq!(out, [Out::Injected(long[..2 + 50].to_vec()), Out::End]);
}

#[test]
fn delay_and_throttle_wrap_the_frame() {
    let one = frame(OpCode::Text, true, None, b"1");
    let (out, _) = run(Side::Client, &["client,data:delay=200ms"], &one, usize::MAX);
    assert_eq!(out, [Out::Delay(Duration::from_millis(200)), Out::Bytes(one.clone())]);
    let (out, _) = run(Side::Client, &["data:throttle=10/s"], &one, usize::MAX);
    assert_eq!(out, [Out::Throttled(one, 10)]);
}

#[test]
fn probabilities_repeat_with_the_seed() {
    let input: Vec<u8> = (0..200).flat_map(|i: u8| frame(OpCode::Binary, true, None, &[i])).collect();
    let draw = |seed| {
        let mut e = FaultEngine::new(Side::Upstream, rules(&["p=0.25:drop"]), seed);
        let (mut out, mut records) = (Vec::new(), Vec::new());
        e.feed(&input, &mut out, &mut records);
        records.iter().map(|r| r.msg.unwrap_or(0)).collect::<Vec<u64>>()
    };
    let (a, b, c) = (draw(7), draw(7), draw(8));
    assert_eq!(a, b);
    assert_ne!(a, c);
    assert!((25..=75).contains(&a.len()), "{} of 200 at p=0.25", a.len());
}

/// An arbitrary stream: frames of every opcode, mask and RSV bits, and
/// arbitrary bytes between them (broken headers, huge lengths, cut frames).
fn arbitrary_stream(u: &mut arbtest::arbitrary::Unstructured<'_>) -> arbtest::arbitrary::Result<Vec<u8>> {
    let mut input = Vec::new();
    for _ in 0..u.int_in_range(0..=20)? {
        if u.ratio(1, 8)? {
            let len = u.int_in_range(0..=40)?;
            for _ in 0..len {
                input.push(u.arbitrary::<u8>()?);
            }
            continue;
        }
        let opcode = OpCode::from_u4(u.int_in_range(0..=15)?);
        let mask = if u.arbitrary()? { Some(u.arbitrary()?) } else { None };
        let len = u.int_in_range(0..=300)?;
        let payload: Vec<u8> = (0..len).map(|_| u.arbitrary::<u8>()).collect::<Result<_, _>>()?;
        let h = FrameHeader {
            fin: u.arbitrary()?,
            rsv1: u.arbitrary()?,
            rsv2: u.arbitrary()?,
            rsv3: u.arbitrary()?,
            ..FrameHeader { mask, ..FrameHeader::new(opcode, 0) }
        };
        wsproto::encode_frame(&h, &payload, &mut input);
    }
    Ok(input)
}

/// With no rule matching, whatever the stream and however it is cut, what
/// comes out is what went in, byte for byte.
#[test]
fn no_match_relays_arbitrary_streams_byte_for_byte() {
    arbtest::arbtest(|u| {
        let input = arbitrary_stream(u)?;
        let step = u.int_in_range(1..=64)?;
        let never =
            ["client:drop", "upstream,pong,p=0:drop", "msg=1000000:reset", "match=^never-ever$:drop", "p=0:truncate"];
        let (out, records) = run(Side::Upstream, &never, &input, step);
        assert!(records.is_empty());
        assert!(out.iter().all(|o| matches!(o, Out::Bytes(_))));
        assert!(bytes(&out) == input, "relayed as it came");
        Ok(())
    })
    .budget_ms(1_500);
}

/// Every action on arbitrary streams: no panic, however the stream is cut;
/// `delay` and `throttle` change when bytes go, never which.
#[test]
fn every_action_on_arbitrary_streams() {
    let all = [
        "text:fragment=3",
        "binary:duplicate",
        "data,p=0.5:drop",
        "control:swallow",
        "msg=2:corrupt=rsv1",
        "msg=3:corrupt=mask",
        "msg=4:corrupt=bit",
        "msg=5:corrupt=utf8",
        "msg=6:truncate",
        "msg=7:close=1012,x",
        "msg=8:reset",
        "ping:duplicate",
    ];
    arbtest::arbtest(|u| {
        let input = arbitrary_stream(u)?;
        let step = u.int_in_range(1..=64)?;
        let _ = run(Side::Upstream, &all, &input, step);
        let _ = run(Side::Client, &all, &input, step);
        let (out, _) = run(Side::Client, &["data:delay=1ms", "control:throttle=1KiB/s"], &input, step);
        assert!(bytes(&out) == input, "delay and throttle keep the bytes");
        Ok(())
    })
    .budget_ms(1_500);
}

#[test]
fn an_oversized_frame_passes_unheld() {
    let mut input = Vec::new();
    let h = FrameHeader::new(OpCode::Binary, MAX_FAULT_FRAME + 1);
    let mut hb = [0u8; wsproto::MAX_HEADER_LEN];
    let n = h.encode(&mut hb);
    input.extend_from_slice(&hb[..n]);
    input.extend_from_slice(&[0; 1000]);
    let mut e = FaultEngine::new(Side::Upstream, rules(&["binary:drop"]), 1);
    let (mut out, mut records) = (Vec::new(), Vec::new());
    e.feed(&input, &mut out, &mut records);
    assert_eq!(bytes(&out), input);
    assert_eq!(e.held(), 0);
    assert!(records.is_empty());
}

/// A 64-bit length crafted so that header plus payload passes u64::MAX
/// (`82 7F FF FF FF FF FF FF FF F6`: 10 header bytes + 2^64 - 10): the
/// engine cannot follow the stream, so it stops acting and relays
/// everything from there on unchanged, whole or split, holding nothing.
#[test]
fn an_unfollowable_length_passes_the_rest_unchanged() {
    let crafted = [0x82, 0x7F, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xF6];
    let text = frame(OpCode::Text, true, None, b"hello");
    for input in [crafted.to_vec(), [&text[..], &crafted, b"tail", &text].concat()] {
        for step in [usize::MAX, 1, 3, 9] {
            let mut e = FaultEngine::new(Side::Upstream, rules(&["binary:drop", "text:duplicate"]), 1);
            let (mut out, mut records) = (Vec::new(), Vec::new());
            for piece in input.chunks(step) {
                e.feed(piece, &mut out, &mut records);
                assert!(e.held() < crafted.len(), "step {step}: never more than a header held");
            }
            assert_eq!(e.held(), 0, "step {step}");
            let relayed = bytes(&out);
            let expected = if input.len() > crafted.len() { [&text[..], &input].concat() } else { input.clone() };
            assert_eq!(relayed, expected, "step {step}: bytes never lost, nothing acted on after the crafted header");
            assert_eq!(records.len(), usize::from(input.len() > crafted.len()), "step {step}");
        }
    }
}

/// `fragment=2` naming no kind: data messages are split, control frames
/// pass as they came (RFC 6455 §5.5: control frames MUST NOT be fragmented).
#[test]
fn fragment_without_a_kind_leaves_control_frames_whole() {
    let ping = frame(OpCode::Ping, true, None, b"ping");
    let close = frame(OpCode::Close, true, None, &[0x03, 0xe8, b'o', b'k']);
    let text = frame(OpCode::Text, true, None, b"hello");
    for spec in ["upstream:fragment=2", "p=1:fragment=2"] {
        let (out, records) =
            run(Side::Upstream, &[spec], &[ping.clone(), text.clone(), close.clone()].concat(), usize::MAX);
        let got = frames(&bytes(&out));
        let kinds: Vec<(OpCode, bool)> = got.iter().map(|f| (f.0, f.1)).collect();
        assert_eq!(
            kinds,
            [(OpCode::Ping, true), (OpCode::Text, false), (OpCode::Continuation, true), (OpCode::Close, true)],
            "{spec}"
        );
        assert_eq!(records.len(), 1, "{spec}: only the text message was acted on");
    }
}

#[test]
fn kinds_that_never_meet_are_refused() {
    for spec in ["client,text,binary:drop", "ping,pong:swallow", "data,control:drop", "text,close:delay=1s"] {
        let e = FaultRule::parse(spec).expect_err(spec);
        assert!(e.contains("kinds are ANDed; use data/control"), "{spec}: {e}");
    }
    for spec in ["text,data:drop", "control,ping:swallow", "binary,binary:drop"] {
        FaultRule::parse(spec).unwrap_or_else(|e| panic!("{spec}: {e}"));
    }
}

/// A frame whose last byte ends its header (an empty ping, `89 00`, in two
/// reads) is acted on when that byte comes, not at the next read.
#[test]
fn a_frame_completed_by_the_last_byte_of_a_read_is_acted_on_at_once() {
    let mut e = FaultEngine::new(Side::Upstream, rules(&["ping:drop"]), 1);
    let (mut out, mut records) = (Vec::new(), Vec::new());
    e.feed(&[0x89], &mut out, &mut records);
    e.feed(&[0x00], &mut out, &mut records);
    assert_eq!((e.held(), records.len()), (0, 1));
}
