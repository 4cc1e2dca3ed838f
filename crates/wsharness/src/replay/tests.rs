use super::*;

const TS0: &str = "2026-11-30T13:00:00.000000Z";

fn line(ts: &str, conn: u64, body: &str) -> String {
    format!(r#"{{"ts":"{ts}","conn":{conn},"event":{body}}}"#)
}

/// A frame event; `bits` are FIN, RSV1 and whether the preview was cut.
fn frame(ts: &str, from: &str, opcode: &str, bits: (bool, bool, bool), preview: &str, enc: &str) -> String {
    let (fin, rsv1, cut) = bits;
    line(
        ts,
        1,
        &format!(
            r#""frame","from":"{from}","fin":{fin},"rsv1":{rsv1},"rsv2":false,"rsv3":false,"opcode":"{opcode}","masked":true,"mask":"01020304","len":3,"header_len":6,"offset":0,"preview":"{preview}","preview_encoding":"{enc}","preview_truncated":{cut}"#
        ),
    )
}

fn message(ts: &str, from: &str, kind: &str, compressed: bool, preview: &str, enc: &str) -> String {
    let inflated = if compressed { r#","decompressed_len":5"# } else { "" };
    line(
        ts,
        1,
        &format!(
            r#""message","from":"{from}","kind":"{kind}","len":3,"fragments":1,"compressed":{compressed}{inflated},"preview":"{preview}","preview_encoding":"{enc}","preview_truncated":false"#
        ),
    )
}

fn handshake() -> Vec<String> {
    vec![
        line(TS0, 1, r#""open","client":"127.0.0.1:5","upstream":"127.0.0.1:9""#),
        line(
            TS0,
            1,
            r#""handshake_request","method":"GET","target":"/chat?x=1","version":"HTTP/1.1","headers":[{"name":"Sec-WebSocket-Protocol","value":"a, b"},{"name":"Sec-WebSocket-Extensions","value":"permessage-deflate"}]"#,
        ),
        line(
            "2026-11-30T13:00:00.001000Z",
            1,
            r#""handshake_response","status":101,"reason":"Switching Protocols","version":"HTTP/1.1","headers":[],"protocol":"a","extensions":[],"upgraded":true"#,
        ),
    ]
}

#[test]
fn a_recording_becomes_frames_to_send_and_answers_to_expect() {
    let mut log = handshake();
    log.push(frame("2026-11-30T13:00:00.011000Z", "client", "text", (false, false, false), "he", "text"));
    log.push(frame("2026-11-30T13:00:00.012000Z", "client", "continuation", (true, false, false), "y", "text"));
    log.push(message("2026-11-30T13:00:00.012000Z", "client", "text", false, "hey", "text"));
    log.push(message("2026-11-30T13:00:00.013000Z", "upstream", "binary", false, "00ff", "hex"));
    log.push(frame("2026-11-30T13:00:00.021000Z", "client", "binary", (true, true, false), "abcdef", "hex"));
    log.push(message("2026-11-30T13:00:00.021000Z", "client", "binary", true, "0102030405", "hex"));
    log.push(line(
        "2026-11-30T13:00:00.031000Z",
        1,
        r#""close","from":"upstream","code":1000,"code_name":"normal closure","reason":"bye","initiated":true,"handshake_complete":false,"offset":9"#,
    ));
    let rec = Recording::load(&log.join("\n"), None).expect("loads");
    assert_eq!(rec.target, "/chat?x=1");
    assert_eq!(rec.protocols, ["a", "b"]);
    assert_eq!(rec.extensions.as_deref(), Some("permessage-deflate"));
    let shape: Vec<(u64, u8, bool, Vec<u8>, bool)> = rec
        .frames
        .iter()
        .map(|f| (f.at.as_millis() as u64, f.opcode, f.fin, f.payload.clone(), f.compressed_message))
        .collect();
    assert_eq!(
        shape,
        [
            (10, 1, false, b"he".to_vec(), false),
            (11, 0, true, b"y".to_vec(), false),
            // The compressed message, from its inflated preview, at its first frame's time.
            (20, 2, true, vec![1, 2, 3, 4, 5], true),
        ]
    );
    let waits: Vec<usize> = rec.frames.iter().map(|f| f.after_answers).collect();
    assert_eq!(waits, [0, 0, 1], "the third frame was sent after the first answer");
    assert_eq!(rec.answers, [Answer { kind: "binary".into(), data: vec![0, 0xff] }]);
    assert_eq!(rec.close, Some(Close { code: Some(1000), reason: "bye".into() }));
    assert!(rec.has_compressed());
}

#[test]
fn what_cannot_be_replayed_is_named() {
    let mut capped = handshake();
    capped.push(frame(TS0, "client", "text", (true, false, false), "hel", "text"));
    capped.push(frame(TS0, "client", "text", (true, false, true), "hel", "text"));
    let e = Recording::load(&capped.join("\n"), None).expect_err("capped");
    assert!(format!("{e:#}").contains("client frame 2 (message 2) cannot be replayed"), "{e:#}");
    assert!(format!("{e:#}").contains("--max-preview all"), "{e:#}");
    let no_ws = line(TS0, 1, r#""open","client":"127.0.0.1:5","upstream":"127.0.0.1:9""#);
    let e = Recording::load(&no_ws, None).expect_err("no websocket");
    assert!(format!("{e:#}").contains("no WebSocket connection"), "{e:#}");
    let e = Recording::load(&handshake().join("\n"), Some(7)).expect_err("no conn 7");
    assert!(format!("{e:#}").contains("connection 7"), "{e:#}");
    let e = Recording::load("not json", None).expect_err("not json");
    assert!(format!("{e:#}").contains("line 1"), "{e:#}");
}

#[test]
fn comparison_names_each_difference() {
    let a = |kind: &str, d: &str| Answer { kind: kind.into(), data: d.as_bytes().to_vec() };
    let expected = [a("text", "one"), a("text", "t=123 two"), a("text", "three")];
    let got = [a("text", "one"), a("text", "t=456 tw0")];
    let close = Close { code: Some(1000), reason: String::new() };
    let diffs = compare(&expected, &got, Some(&close), None, &[]);
    assert_eq!(diffs.len(), 3, "{diffs:#?}");
    assert!(matches!(&diffs[0], Difference::Message { index: 2, first_difference: 2, .. }), "{diffs:#?}");
    assert!(matches!(&diffs[1], Difference::Missing { index: 3, .. }));
    assert!(matches!(&diffs[2], Difference::Close { got: None, .. }));
    // Masked: the timestamp no longer counts, the typo still does.
    let ignore = [regex::Regex::new(r"t=\d+").expect("regex")];
    let diffs = compare(&expected[..2], &got, None, None, &ignore);
    assert!(matches!(&diffs[..], [Difference::Message { index: 2, first_difference: 4, .. }]), "{diffs:#?}");
    let same = compare(&expected, &expected, Some(&close), Some(&close), &[]);
    assert!(same.is_empty());
    let extra = compare(&expected[..1], &expected[..2], None, None, &[]);
    assert!(matches!(&extra[..], [Difference::Extra { index: 2, .. }]));
}

#[test]
fn timing_quantiles() {
    let t = Timing::from_lateness((1..=100).map(Duration::from_micros).collect());
    assert_eq!((t.frames, t.late_us_p50, t.late_us_p99, t.late_us_max), (100, 51, 99, 100));
    assert_eq!(Timing::from_lateness(Vec::new()).frames, 0);
}

#[test]
fn a_capture_that_missed_bytes_is_not_replayed() {
    let mut log = handshake();
    log.push(frame("2026-11-30T13:00:00.011000Z", "client", "text", (true, false, false), "hey", "text"));
    log.push(line("2026-11-30T13:00:00.012000Z", 1, r#""gap","from":"upstream","offset":140,"len":1448"#));
    let e = Recording::load(&log.join("\n"), None).expect_err("a gap");
    assert_eq!(
        format!("{e:#}"),
        "connection 1 cannot be replayed: the capture misses 1448 bytes the server sent (from byte 140 of its stream)"
    );
    // The same connection without the gap loads.
    log.pop();
    assert_eq!(Recording::load(&log.join("\n"), None).expect("loads").frames.len(), 1);
}

#[test]
fn a_recording_is_a_capture_or_a_log_by_its_first_bytes() {
    for magic in
        [[0x0a, 0x0d, 0x0d, 0x0a], [0xd4, 0xc3, 0xb2, 0xa1], [0xa1, 0xb2, 0xc3, 0xd4], [0x4d, 0x3c, 0xb2, 0xa1]]
    {
        assert!(is_capture(&magic), "{magic:02x?}");
    }
    assert!(!is_capture(b"{\"ts\""));
    assert!(!is_capture(&[0x0a, 0x0d]));
    // A log loads as a log.
    assert_eq!(Recording::from_reader(handshake().join("\n").as_bytes(), None).expect("a log").target, "/chat?x=1");
    // Neither: said so, with where the bytes stop being text.
    let e = Recording::from_reader(&b"{\"ts\xff"[..], None).expect_err("binary junk");
    assert!(
        format!("{e:#}").contains("neither a pcap/pcapng capture") && format!("{e:#}").contains("at byte 4"),
        "{e:#}"
    );
    // A pcapng cut inside its first block: the reader's reason.
    let e = Recording::from_reader(&[0x0a, 0x0d, 0x0d, 0x0a, 0x1c, 0, 0][..], None).expect_err("cut capture");
    assert!(format!("{e:#}").starts_with("decoding the capture: the capture is cut short or malformed"), "{e:#}");
}

#[test]
fn a_capture_log_keeps_only_the_connection_replayed() {
    let open = |conn: u64| line(TS0, conn, r#""open","client":"127.0.0.1:5","upstream":"127.0.0.1:9""#);
    let upgrade = |conn: u64| {
        line(
            TS0,
            conn,
            r#""handshake_response","status":101,"reason":"Switching Protocols","version":"HTTP/1.1","headers":[],"extensions":[],"upgraded":true"#,
        )
    };
    assert_eq!(conn_of_line(open(12).as_bytes()), Some(12));
    assert_eq!(conn_of_line(b"{\"ts\":\"x\"}"), None);
    assert!(is_upgrade_line(upgrade(3).as_bytes()));
    assert!(!is_upgrade_line(open(3).as_bytes()));
    assert!(!is_upgrade_line(upgrade(3).replace("true", "false").as_bytes()));
}
