//! What the proxy follows on a connection besides one clean upgrade:
//! interim responses, bytes that arrive with a head, ping bursts, close
//! frames that break the rules, and answers that are not HTTP/1.x at all.
//! Raw sockets on 127.0.0.1; the proxy's JSON events parsed back strictly.

mod common;

use common::*;
use wsproto::OpCode;
use wsproxy::schema::{Event, Opcode, Side};

const KEY: Option<[u8; 4]> = Some([1, 2, 3, 4]);

/// RFC 9110 §15.2: after a 1xx other than 101 the client reads on; the 101
/// that follows is the answer and every frame after it is decoded.
#[test]
fn an_interim_response_before_the_101_is_logged_as_interim() {
    let interim = b"HTTP/1.1 100 Continue\r\n\r\n".to_vec();
    let answer = [upgrade_response(), frame(OpCode::Text, true, None, b"after 100")].concat();
    let (i2, a2) = (interim.clone(), answer.clone());
    let upstream = RawUpstream::start(move |mut s| {
        let mut got = Vec::new();
        read_head(&mut s, &mut got);
        write(&mut s, &i2);
        // The shape of the input: the final answer comes later, on its own.
        std::thread::sleep(std::time::Duration::from_millis(200));
        write(&mut s, &a2);
        read_to_end(&mut s, &mut got);
    });
    let mut proxy = Proxy::start(&["--upstream", &upstream.url()]);
    let mut c = connect(proxy.addr);
    let request = String::from_utf8(upgrade_request("x", "/")).expect("ascii");
    let request = request.replacen("\r\n\r\n", "\r\nExpect: 100-continue\r\n\r\n", 1);
    write(&mut c, request.as_bytes());
    let mut got = Vec::new();
    read_at_least(&mut c, &mut got, interim.len() + answer.len());
    assert_eq!(got, [interim, answer].concat(), "relayed as it came");
    write(&mut c, &frame(OpCode::Close, true, KEY, &[0x03, 0xe8]));
    drop(c);
    upstream.join();
    let events = proxy.connection(1);
    let interim_at = events.iter().position(|e| matches!(e, Event::InterimResponse { status: 100, .. }));
    let answer_at =
        events.iter().position(|e| matches!(e, Event::HandshakeResponse { status: 101, upgraded: true, .. }));
    assert!(interim_at.is_some() && answer_at.is_some() && interim_at < answer_at, "{events:#?}");
    assert!(
        events
            .iter()
            .any(|e| matches!(e, Event::Message { from: Side::Upstream, preview, .. } if preview == "after 100")),
        "the frame after the 101 is decoded: {events:#?}"
    );
    assert!(events.iter().any(|e| matches!(e, Event::Close { from: Side::Client, code: Some(1000), .. })));
    assert!(!events.iter().any(|e| matches!(e, Event::Violation { .. })), "{events:#?}");
}

/// Under --enforce, a bad frame that arrives in the same write as the 101
/// is decoded before it is forwarded, and stopped like a later one: the
/// client gets the 101 and a 1001, the upstream a 1002.
#[test]
fn enforce_stops_a_bad_frame_that_came_with_the_101() {
    let bad = frame(OpCode::Text, true, KEY, b"masked by a server");
    let to_send = [upgrade_response(), bad].concat();
    let upstream = RawUpstream::start(move |mut s| {
        let mut got = Vec::new();
        let head = read_head(&mut s, &mut got);
        write(&mut s, &to_send);
        read_to_end(&mut s, &mut got);
        got.split_off(head)
    });
    let mut proxy = Proxy::start(&["--upstream", &upstream.url(), "--enforce"]);
    let mut c = connect(proxy.addr);
    write(&mut c, &upgrade_request("x", "/"));
    let mut got = Vec::new();
    let head = read_head(&mut c, &mut got);
    read_to_end(&mut c, &mut got);
    assert_eq!(&got[..head], &upgrade_response()[..]);
    let to_client = &got[head..];
    assert_eq!(to_client.len(), 2 + to_client[1] as usize, "one frame, nothing of the bad one: {to_client:x?}");
    assert_eq!(&to_client[..4], &[0x88, to_client[1], 0x03, 0xe9], "1001 to the client: {to_client:x?}");
    let to_upstream = upstream.join();
    assert_eq!(to_upstream[0], 0x88, "a close frame to the upstream: {to_upstream:x?}");
    assert!(to_upstream[1] & 0x80 != 0, "masked, as a client's");
    let key = [to_upstream[2], to_upstream[3], to_upstream[4], to_upstream[5]];
    let code = [to_upstream[6] ^ key[0], to_upstream[7] ^ key[1]];
    assert_eq!(code, [0x03, 0xea], "1002 to the offender");
    let events = proxy.connection(1);
    assert!(events.iter().any(
        |e| matches!(e, Event::Violation { from: Side::Upstream, rule, enforced: true, .. } if rule == "masked_server_frame")
    ), "{events:#?}");
}

/// The same for a client that sends its request and a bad frame in one
/// write: the frame never reaches the upstream.
#[test]
fn enforce_stops_a_bad_frame_that_came_with_the_request() {
    let upstream = RawUpstream::start(move |mut s| {
        let mut got = Vec::new();
        let head = read_head(&mut s, &mut got);
        write(&mut s, &upgrade_response());
        read_to_end(&mut s, &mut got);
        got.split_off(head)
    });
    let mut proxy = Proxy::start(&["--upstream", &upstream.url(), "--enforce"]);
    let mut c = connect(proxy.addr);
    let good = frame(OpCode::Text, true, KEY, b"fine");
    let unmasked = frame(OpCode::Text, true, None, b"unmasked by a client");
    write(&mut c, &[upgrade_request("x", "/"), good.clone(), unmasked].concat());
    let mut got = Vec::new();
    let head = read_head(&mut c, &mut got);
    read_to_end(&mut c, &mut got);
    let to_client = &got[head..];
    assert_eq!(&to_client[..4], &[0x88, to_client[1], 0x03, 0xea], "1002 to the client: {to_client:x?}");
    let to_upstream = upstream.join();
    assert_eq!(&to_upstream[..good.len()], &good[..], "the good frame passes");
    let rest = &to_upstream[good.len()..];
    assert_eq!(rest[0], 0x88, "then a close frame, not the bad one: {rest:x?}");
    let key = [rest[2], rest[3], rest[4], rest[5]];
    assert_eq!([rest[6] ^ key[0], rest[7] ^ key[1]], [0x03, 0xe9], "1001 to the other side");
    let events = proxy.connection(1);
    assert!(events.iter().any(
        |e| matches!(e, Event::Violation { from: Side::Client, rule, enforced: true, .. } if rule == "unmasked_client_frame")
    ), "{events:#?}");
    assert!(matches!(events.last(), Some(Event::End { reason, .. }) if reason == "enforced"));
}

/// 300 pings in one write to the embedded echo server, which may answer
/// only the most recent of those it has not answered yet (RFC 6455
/// §5.5.2): none is left unanswered.
#[test]
fn a_burst_of_pings_leaves_none_unanswered() {
    let mut proxy = Proxy::start(&[]);
    let mut c = connect(proxy.addr);
    write(&mut c, &upgrade_request("x", "/"));
    let mut got = Vec::new();
    read_head(&mut c, &mut got);
    let mut burst: Vec<u8> =
        (0..300u32).flat_map(|i| frame(OpCode::Ping, true, KEY, format!("ping {i}").as_bytes())).collect();
    burst.extend(frame(OpCode::Close, true, KEY, &[0x03, 0xe8]));
    write(&mut c, &burst);
    read_to_end(&mut c, &mut got);
    drop(c);
    let events = proxy.connection(1);
    let pings =
        events.iter().filter(|e| matches!(e, Event::Frame { opcode: Opcode::Name(n), .. } if n == "ping")).count();
    let pongs =
        events.iter().filter(|e| matches!(e, Event::Frame { opcode: Opcode::Name(n), .. } if n == "pong")).count();
    assert_eq!(pings, 300);
    assert!(pongs >= 1, "{events:#?}");
    match events.last() {
        Some(Event::End { unanswered_pings, .. }) => {
            assert_eq!((unanswered_pings.client, unanswered_pings.upstream), (0, 0))
        }
        other => panic!("no end: {other:?}"),
    }
}

/// A close frame whose code may not be sent, or whose reason is not UTF-8,
/// is reported as a violation and shown as it was on the wire.
#[test]
fn a_close_frame_that_breaks_the_rules_is_shown_as_sent() {
    for (payload, code, reason, invalid) in [
        (&b"\x03\xed"[..], 1005, "", false),
        (b"\x13\x88gone", 5000, "gone", false),
        (b"\x03\xe8bad \xff", 1000, "bad \u{fffd}", true),
    ] {
        let close = frame(OpCode::Close, true, None, payload);
        let upstream = RawUpstream::start(move |mut s| {
            let mut got = Vec::new();
            read_head(&mut s, &mut got);
            write(&mut s, &[upgrade_response(), close].concat());
            // The client's close (2 + 4 + 2 bytes), then this side hangs up.
            let head = got.len();
            read_at_least(&mut s, &mut got, head + 8);
        });
        let mut proxy = Proxy::start(&["--upstream", &upstream.url()]);
        let mut c = connect(proxy.addr);
        write(&mut c, &upgrade_request("x", "/"));
        let mut got = Vec::new();
        read_head(&mut c, &mut got);
        write(&mut c, &frame(OpCode::Close, true, KEY, &[0x03, 0xea]));
        read_to_end(&mut c, &mut got);
        drop(c);
        upstream.join();
        let events = proxy.connection(1);
        let shown = events.iter().find_map(|e| match e {
            Event::Close { from: Side::Upstream, code, reason, reason_invalid_utf8, .. } => {
                Some((*code, reason.clone(), *reason_invalid_utf8))
            }
            _ => None,
        });
        assert_eq!(shown, Some((Some(code), reason.to_owned(), invalid)), "{payload:x?}");
        assert!(events.iter().any(|e| matches!(e, Event::Violation { from: Side::Upstream, .. })), "{payload:x?}");
    }
}

/// An upstream whose answer is not an HTTP/1.x response head, is cut short,
/// or is over the head limit: the bytes reach the client unchanged and an
/// event says why nothing is decoded.
#[test]
fn an_answer_that_cannot_be_followed_is_relayed_and_said_so() {
    let mut over_long = b"HTTP/1.1 101 Switching Protocols\r\n".to_vec();
    while over_long.len() < 128 << 10 {
        over_long.extend_from_slice(format!("X-Filler: {}\r\n", "a".repeat(70)).as_bytes());
    }
    over_long.extend_from_slice(b"\r\n");
    let cases: [(&[u8], &str); 5] = [
        (b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", "not an HTTP/1.x response"),
        (b"SSH-2.0-OpenSSH_9.6\r\n", "before its response head was complete"),
        (b"", "before its response head was complete"),
        (b"HTTP/1.1 101 Switching Protocols\r\nX: y\r\n", "before its response head was complete"),
        (&over_long, "head limit"),
    ];
    for (answer, why) in cases {
        let (got, events) = answered_with(answer.to_vec());
        assert_eq!(got.len(), answer.len());
        assert!(got == answer, "relayed unchanged");
        assert!(
            events
                .iter()
                .any(|e| matches!(e, Event::Uninspected { from: Side::Upstream, reason } if reason.contains(why))),
            "{why}: {events:#?}"
        );
    }
}

/// A raw upstream that answers `answers.len()` requests on one kept-alive
/// connection: for each, reads a head (and a `Content-Length` body), then
/// writes the answer. Returns what it received.
fn keep_alive_upstream(answers: Vec<Vec<u8>>, then: Option<Vec<u8>>) -> RawUpstream<Vec<u8>> {
    RawUpstream::start(move |mut s| {
        let mut got = Vec::new();
        let mut at = 0;
        for answer in &answers {
            let mut rest = got.split_off(at);
            let head = read_head(&mut s, &mut rest);
            let head_text = String::from_utf8_lossy(&rest[..head]).to_ascii_lowercase();
            let body: usize = head_text
                .lines()
                .find_map(|l| l.strip_prefix("content-length:").map(|v| v.trim().parse().expect("length")))
                .unwrap_or(0);
            read_at_least(&mut s, &mut rest, head + body);
            got.extend_from_slice(&rest);
            at = got.len() - (rest.len() - head - body);
            write(&mut s, answer);
        }
        if let Some(last) = then {
            write(&mut s, &last);
        }
        read_to_end(&mut s, &mut got);
        got
    })
}

fn http_events(events: &[Event]) -> Vec<(String, String, Option<u16>, u64, Option<u64>)> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Http { method, target, status, request_body_len, response_body_len, .. } => {
                Some((method.clone(), target.clone(), *status, *request_body_len, *response_body_len))
            }
            _ => None,
        })
        .collect()
}

/// `GET /healthz` (200), then an upgrade on the same connection: both
/// exchanges are logged, the second request gets the upstream's Host too,
/// and the WebSocket is inspected as if it had come first.
#[test]
fn an_upgrade_on_a_kept_alive_connection_is_inspected() {
    for (first_answer, first_status, body_len) in [
        (&b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"[..], 200, 2),
        (b"HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Basic\r\nContent-Length: 0\r\n\r\n", 401, 0),
        (
            b"HTTP/1.1 407 Proxy Authentication Required\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nauth\r\n0\r\n\r\n",
            407,
            4,
        ),
    ] {
        let answers =
            vec![first_answer.to_vec(), [upgrade_response(), frame(OpCode::Text, true, None, b"hi")].concat()];
        let upstream = keep_alive_upstream(answers.clone(), None);
        let mut proxy = Proxy::start(&["--upstream", &upstream.url()]);
        let mut c = connect(proxy.addr);
        let first = b"GET /healthz HTTP/1.1\r\nHost: client.example\r\n\r\n".to_vec();
        write(&mut c, &first);
        let mut got = Vec::new();
        read_at_least(&mut c, &mut got, answers[0].len());
        assert_eq!(got, answers[0]);
        let upgrade = upgrade_request("client.example", "/chat");
        write(&mut c, &upgrade);
        read_at_least(&mut c, &mut got, answers[0].len() + answers[1].len());
        assert_eq!(got, answers.concat(), "answers relayed as they came");
        write(&mut c, &frame(OpCode::Text, true, KEY, b"hello"));
        drop(c);
        let upstream_addr = upstream.addr;
        let received = upstream.join();
        let expected = [first, upgrade, frame(OpCode::Text, true, KEY, b"hello")].concat();
        let expected =
            String::from_utf8_lossy(&expected).replace("Host: client.example", &format!("Host: {upstream_addr}"));
        assert_eq!(String::from_utf8_lossy(&received), expected, "every request rewritten");
        let events = proxy.connection(1);
        assert_eq!(
            http_events(&events),
            vec![("GET".into(), "/healthz".into(), Some(first_status), 0, Some(body_len))]
        );
        assert!(events.iter().any(|e| matches!(e, Event::HandshakeResponse { status: 101, upgraded: true, .. })));
        for (from, text) in [(Side::Upstream, "hi"), (Side::Client, "hello")] {
            assert!(
                events
                    .iter()
                    .any(|e| matches!(e, Event::Message { from: f, preview, .. } if *f == from && preview == text)),
                "{text}: {events:#?}"
            );
        }
        assert!(
            !events.iter().any(|e| matches!(e, Event::Violation { .. } | Event::Uninspected { .. })),
            "{events:#?}"
        );
    }
}

/// Keep-alive with bodies both ways, Content-Length and chunked, pipelined
/// in one write; then an upgrade that is refused, then one that succeeds.
#[test]
fn bodies_pipelining_and_a_second_upgrade_after_a_refused_one() {
    let answers = vec![
        b"HTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2;x=y\r\nde\r\n0\r\nTrailer: 1\r\n\r\n"
            .to_vec(),
        b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n0123456789".to_vec(),
        b"HTTP/1.1 403 Forbidden\r\nContent-Length: 4\r\n\r\nnope".to_vec(),
        b"HTTP/1.1 204 No Content\r\n\r\n".to_vec(),
        [upgrade_response(), frame(OpCode::Close, true, None, &[0x03, 0xe8])].concat(),
    ];
    let upstream = keep_alive_upstream(answers.clone(), None);
    let mut proxy = Proxy::start(&["--upstream", &upstream.url()]);
    let mut c = connect(proxy.addr);
    let pipelined = [
        &b"POST /a HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nhello"[..],
        b"PUT /b HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\nxyz",
    ]
    .concat();
    write(&mut c, &pipelined);
    let mut got = Vec::new();
    read_at_least(&mut c, &mut got, answers[0].len() + answers[1].len());
    write(&mut c, &upgrade_request("h", "/refused"));
    read_at_least(&mut c, &mut got, answers[..3].iter().map(Vec::len).sum());
    write(&mut c, b"DELETE /c HTTP/1.1\r\nHost: h\r\n\r\n");
    read_at_least(&mut c, &mut got, answers[..4].iter().map(Vec::len).sum());
    write(&mut c, &upgrade_request("h", "/ok"));
    read_at_least(&mut c, &mut got, answers.iter().map(Vec::len).sum());
    assert_eq!(got, answers.concat());
    write(&mut c, &frame(OpCode::Close, true, KEY, &[0x03, 0xe8]));
    drop(c);
    upstream.join();
    let events = proxy.connection(1);
    assert_eq!(
        http_events(&events),
        vec![
            ("POST".into(), "/a".into(), Some(201), 5, Some(5)),
            ("PUT".into(), "/b".into(), Some(200), 3, Some(10)),
            ("DELETE".into(), "/c".into(), Some(204), 0, Some(0)),
        ]
    );
    let answers_logged: Vec<(u16, bool)> = events
        .iter()
        .filter_map(|e| match e {
            Event::HandshakeResponse { status, upgraded, .. } => Some((*status, *upgraded)),
            _ => None,
        })
        .collect();
    assert_eq!(answers_logged, vec![(403, false), (101, true)]);
    let closes = events.iter().filter(|e| matches!(e, Event::Close { .. })).count();
    assert_eq!(closes, 2, "{events:#?}");
    assert!(matches!(events.last(), Some(Event::End { reason, .. }) if reason == "close_handshake"));
}

/// The client's bytes held after its upgrade request reach the upstream as
/// soon as the upstream ends its side without answering, not when the
/// client happens to send more.
#[test]
fn held_bytes_go_on_when_the_upstream_ends_without_answering() {
    let early = frame(OpCode::Text, true, KEY, b"sent before any answer");
    let request = upgrade_request("x", "/");
    let expected = request.len() + early.len();
    let upstream = RawUpstream::start(move |mut s| {
        let mut got = Vec::new();
        read_head(&mut s, &mut got);
        // No answer: end this side, keep reading.
        s.shutdown(std::net::Shutdown::Write).expect("shutdown");
        read_at_least(&mut s, &mut got, expected);
        got
    });
    let mut proxy = Proxy::start(&["--upstream", &upstream.url()]);
    let mut c = connect(proxy.addr);
    write(&mut c, &[request.clone(), early.clone()].concat());
    // The client sends nothing more and keeps its side open until the
    // upstream has what it was sent.
    let got = upstream.join();
    assert!(got.ends_with(&early), "the held frame arrived");
    drop(c);
    let events = proxy.connection(1);
    assert!(events.iter().any(|e| matches!(e, Event::Uninspected { .. })), "{events:#?}");
}

/// Under --enforce a refused upgrade that came with more bytes than the
/// proxy read still reaches the client whole (no reset before it is read).
#[test]
fn a_refusal_is_read_whole_even_with_unread_bytes_behind_the_request() {
    let mut proxy = Proxy::start(&["--enforce"]);
    let mut c = connect(proxy.addr);
    let bad = String::from_utf8(upgrade_request("x", "/")).expect("ascii").replace("Version: 13", "Version: 8");
    let junk = frame(OpCode::Binary, true, KEY, &[7u8; 60_000]);
    write(&mut c, &[bad.as_bytes(), &junk].concat());
    let mut got = Vec::new();
    read_to_end(&mut c, &mut got);
    let text = String::from_utf8_lossy(&got);
    assert!(text.starts_with("HTTP/1.1 426 "), "{text}");
    drop(c);
    let events = proxy.connection(1);
    assert!(matches!(events.last(), Some(Event::End { reason, .. }) if reason == "enforced"));
}
