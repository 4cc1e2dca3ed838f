//! The relay, black-box: the wsproxy binary between raw-socket peers that
//! record every byte, on 127.0.0.1.

mod common;

use std::io::Write;
use std::net::Shutdown;

use common::*;
use wsproto::OpCode;
use wsproxy::schema::{Event, Opcode, Side};

const KEY: Option<[u8; 4]> = Some([0x11, 0x22, 0x33, 0x44]);

fn replace_once(haystack: &[u8], needle: &[u8], with: &[u8]) -> Vec<u8> {
    let i = haystack.windows(needle.len()).position(|w| w == needle).expect("needle present");
    [&haystack[..i], with, &haystack[i + needle.len()..]].concat()
}

#[test]
fn relays_every_byte_both_ways_with_pipelined_frames() {
    let big: Vec<u8> = (0..200_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let client_frames = [
        frame(OpCode::Text, true, KEY, b"first, right behind the request"),
        frame(OpCode::Binary, false, KEY, &big[..100_000]),
        frame(OpCode::Ping, true, KEY, b"p1"),
        frame(OpCode::Continuation, true, KEY, &big[100_000..]),
        frame(OpCode::Close, true, KEY, &[0x03, 0xe8, b'b', b'y', b'e']),
    ];
    let upstream_frames = [
        frame(OpCode::Text, true, None, b"hello from upstream, right behind the 101"),
        frame(OpCode::Pong, true, None, b"p1"),
        frame(OpCode::Binary, true, None, &big[..70_000]),
        frame(OpCode::Close, true, None, &[0x03, 0xe8]),
    ];
    let upstream_sends: Vec<u8> = [upgrade_response(), upstream_frames.concat()].concat();
    let to_send = upstream_sends.clone();
    let expected_client_bytes: usize = client_frames.iter().map(Vec::len).sum();
    let through_ping: usize = client_frames[..3].iter().map(Vec::len).sum();
    let upstream = RawUpstream::start(move |mut s| {
        let mut got = Vec::new();
        let head = read_head(&mut s, &mut got);
        // The 101 and the first frame in one write.
        write(&mut s, &to_send[..upgrade_response().len() + 43]);
        // The pong follows the client's ping (the proxy matches them).
        read_at_least(&mut s, &mut got, head + through_ping);
        write(&mut s, &to_send[upgrade_response().len() + 43..]);
        read_at_least(&mut s, &mut got, head + expected_client_bytes);
        got
    });
    let mut proxy = Proxy::start(&["--upstream", &upstream.url()]);
    let mut c = connect(proxy.addr);
    let host = proxy.addr.to_string();
    let request = upgrade_request(&host, "/");
    // The request and the first frame in one write.
    let mut first = request.clone();
    first.extend_from_slice(&client_frames[0]);
    write(&mut c, &first);
    for f in &client_frames[1..] {
        write(&mut c, f);
    }
    let mut got = Vec::new();
    read_to_end(&mut c, &mut got);
    drop(c);
    let upstream_addr = upstream.addr;
    let upstream_got = upstream.join();

    assert_eq!(got, upstream_sends, "the client receives exactly what the upstream sent");
    let sent = [request.clone(), client_frames.concat()].concat();
    let expected = replace_once(&sent, host.as_bytes(), upstream_addr.to_string().as_bytes());
    assert_eq!(upstream_got.len(), expected.len());
    assert!(upstream_got == expected, "the upstream receives what the client sent, Host rewritten");

    let events = proxy.connection(1);
    let frames: Vec<(Side, Opcode, bool, u64, Option<String>, u64)> = events
        .iter()
        .filter_map(|e| match e {
            Event::Frame { from, opcode, fin, len, mask, offset, .. } => {
                Some((*from, opcode.clone(), *fin, *len, mask.clone(), *offset))
            }
            _ => None,
        })
        .collect();
    let name = |s: &str| Opcode::Name(s.into());
    let client_offsets: Vec<u64> = {
        let mut at = request.len() as u64;
        client_frames
            .iter()
            .map(|f| {
                let o = at;
                at += f.len() as u64;
                o
            })
            .collect()
    };
    let expected_frames = vec![
        (Side::Client, name("text"), true, 31, Some("11223344".into()), client_offsets[0]),
        (Side::Client, name("binary"), false, 100_000, Some("11223344".into()), client_offsets[1]),
        (Side::Client, name("ping"), true, 2, Some("11223344".into()), client_offsets[2]),
        (Side::Client, name("continuation"), true, 100_000, Some("11223344".into()), client_offsets[3]),
        (Side::Client, name("close"), true, 5, Some("11223344".into()), client_offsets[4]),
    ];
    let from_client: Vec<_> = frames.iter().filter(|f| f.0 == Side::Client).cloned().collect();
    assert_eq!(from_client, expected_frames);
    let from_upstream: Vec<Opcode> = frames.iter().filter(|f| f.0 == Side::Upstream).map(|f| f.1.clone()).collect();
    assert_eq!(from_upstream, vec![name("text"), name("pong"), name("binary"), name("close")]);

    let messages: Vec<(Side, String, u64, u32, String)> = events
        .iter()
        .filter_map(|e| match e {
            Event::Message { from, kind, len, fragments, preview, .. } => {
                Some((*from, kind.clone(), *len, *fragments, preview.clone()))
            }
            _ => None,
        })
        .collect();
    assert_eq!(messages[0], (Side::Client, "text".into(), 31, 1, "first, right behind the request".into()));
    let behind_101 = messages.iter().find(|m| m.0 == Side::Upstream).expect("the frame behind the 101 is decoded");
    assert_eq!(
        (behind_101.1.as_str(), behind_101.2, behind_101.3, behind_101.4.as_str()),
        ("text", 41, 1, "hello from upstream, right behind the 101")
    );
    let fragmented = messages.iter().find(|m| m.0 == Side::Client && m.1 == "binary").expect("binary message");
    assert_eq!((fragmented.2, fragmented.3), (200_000, 2));
    assert_eq!(fragmented.4.len(), 512, "preview: 256 bytes as hex");

    assert!(
        events
            .iter()
            .any(|e| matches!(e, Event::Frame { opcode: Opcode::Name(n), rtt_us: Some(_), .. } if n == "pong"))
    );
    let closes: Vec<(Side, Option<u16>, bool, bool)> = events
        .iter()
        .filter_map(|e| match e {
            Event::Close { from, code, initiated, handshake_complete, .. } => {
                Some((*from, *code, *initiated, *handshake_complete))
            }
            _ => None,
        })
        .collect();
    // The upstream sends its close only after it has read the client's.
    assert_eq!(closes, vec![(Side::Client, Some(1000), true, false), (Side::Upstream, Some(1000), false, true)]);
    assert!(!events.iter().any(|e| matches!(e, Event::Violation { .. })), "{events:#?}");
    match events.last() {
        Some(Event::End { bytes, frames, reason, .. }) => {
            assert_eq!(reason, "close_handshake");
            assert_eq!(bytes.client, sent.len() as u64);
            assert_eq!(bytes.upstream, upstream_sends.len() as u64);
            assert_eq!((frames.client, frames.upstream), (5, 4));
        }
        other => panic!("last event: {other:?}"),
    }
    assert!(matches!(events.first(), Some(Event::Open { .. })));
}

#[test]
fn malformed_frames_are_relayed_and_reported() {
    let bad = [
        frame(OpCode::Reserved(3), true, KEY, b"x"),
        frame(OpCode::Text, true, None, b"unmasked"),
        frame(OpCode::Text, true, KEY, b"bad \xff utf-8"),
    ];
    let payload = bad.concat();
    let upstream = RawUpstream::start(move |mut s| {
        let mut got = Vec::new();
        let head = read_head(&mut s, &mut got);
        write(&mut s, &upgrade_response());
        read_to_end(&mut s, &mut got);
        got.split_off(head)
    });
    let mut proxy = Proxy::start(&["--upstream", &upstream.url()]);
    let mut c = connect(proxy.addr);
    let request = upgrade_request("x", "/");
    write(&mut c, &request);
    let mut buf = Vec::new();
    read_head(&mut c, &mut buf);
    write(&mut c, &payload);
    c.shutdown(Shutdown::Write).expect("shutdown");
    read_to_end(&mut c, &mut buf);
    assert_eq!(upstream.join(), payload, "malformed frames pass unchanged");
    let events = proxy.connection(1);
    let violations: Vec<(String, String, u64)> = events
        .iter()
        .filter_map(|e| match e {
            Event::Violation { from: Side::Client, rule, rfc, offset, .. } => {
                Some((rule.clone(), rfc.clone(), *offset))
            }
            _ => None,
        })
        .collect();
    let base = request.len() as u64;
    assert_eq!(
        violations,
        vec![
            ("reserved_opcode".into(), "RFC 6455 §5.2".into(), base),
            ("unmasked_client_frame".into(), "RFC 6455 §5.1".into(), base + bad[0].len() as u64),
            ("invalid_utf8".into(), "RFC 6455 §8.1".into(), base + (bad[0].len() + bad[1].len() + 6 + 4) as u64),
        ]
    );
}

#[test]
fn enforce_ends_the_connection_with_the_mapped_code() {
    let upstream = RawUpstream::start(move |mut s| {
        let mut got = Vec::new();
        let head = read_head(&mut s, &mut got);
        write(&mut s, &upgrade_response());
        read_to_end(&mut s, &mut got);
        got.split_off(head)
    });
    let mut proxy = Proxy::start(&["--upstream", &upstream.url(), "--enforce"]);
    let mut c = connect(proxy.addr);
    write(&mut c, &upgrade_request("x", "/"));
    let mut buf = Vec::new();
    let head = read_head(&mut c, &mut buf);
    let good = frame(OpCode::Text, true, KEY, b"fine");
    write(&mut c, &[good.clone(), frame(OpCode::Text, true, KEY, b"\xce\xba\xff")].concat());
    read_to_end(&mut c, &mut buf);
    // The client gets 1007; the upstream the good frame only, then 1001.
    let close = &buf[head..];
    assert_eq!(&close[..4], &[0x88, close[1], 0x03, 0xef], "close 1007 to the client: {close:x?}");
    let upstream_got = upstream.join();
    assert_eq!(&upstream_got[..good.len()], &good[..]);
    let rest = &upstream_got[good.len()..];
    assert_eq!(rest[0], 0x88, "a close frame follows");
    assert!(rest[1] & 0x80 != 0, "masked, as a client's");
    let events = proxy.connection(1);
    assert!(events.iter().any(
        |e| matches!(e, Event::Violation { rule, enforced: true, from: Side::Client, .. } if rule == "invalid_utf8")
    ));
    assert!(matches!(events.last(), Some(Event::End { reason, .. }) if reason == "enforced"));
}

#[test]
fn a_refusal_is_relayed_as_it_came() {
    let answer = b"HTTP/1.1 403 Forbidden\r\nContent-Length: 9\r\nConnection: close\r\n\r\nforbidden".to_vec();
    let (got, events) = answered_with(answer.clone());
    assert_eq!(got, answer);
    assert!(events.iter().any(|e| matches!(e, Event::HandshakeResponse { status: 403, upgraded: false, .. })));
}

#[test]
fn refused_upstream_gives_502() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port();
    let mut proxy = Proxy::start(&["--upstream", &format!("ws://127.0.0.1:{port}")]);
    let mut c = connect(proxy.addr);
    write(&mut c, &upgrade_request("x", "/"));
    let mut got = Vec::new();
    read_to_end(&mut c, &mut got);
    let text = String::from_utf8_lossy(&got);
    assert!(text.starts_with("HTTP/1.1 502 Bad Gateway\r\n"), "{text}");
    assert!(text.contains("cannot connect to upstream"), "{text}");
    let events = proxy.connection(1);
    assert!(events.iter().any(|e| matches!(e, Event::Error { message } if message.contains("cannot connect"))));
}

#[test]
fn a_bad_upgrade_is_reported_and_relayed_or_refused_under_enforce() {
    let bad = b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 8\r\n\r\n".to_vec();
    // Relayed: the upstream sees it and answers.
    let upstream = RawUpstream::start(move |mut s| {
        let mut got = Vec::new();
        read_head(&mut s, &mut got);
        write(&mut s, b"HTTP/1.1 426 Upgrade Required\r\nSec-WebSocket-Version: 13\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
        got
    });
    let mut proxy = Proxy::start(&["--upstream", &upstream.url()]);
    let mut c = connect(proxy.addr);
    write(&mut c, &bad);
    let mut got = Vec::new();
    read_to_end(&mut c, &mut got);
    drop(c);
    assert!(String::from_utf8_lossy(&got).starts_with("HTTP/1.1 426"));
    assert!(!upstream.join().is_empty(), "the upstream saw the request");
    let events = proxy.connection(1);
    assert!(events.iter().any(|e| matches!(e, Event::Violation { rule, from: Side::Client, rfc, .. } if rule == "unsupported_version" && rfc == "RFC 6455 §4.4")));

    // Enforced: the proxy answers itself and never connects.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.set_nonblocking(true).expect("nonblocking");
    let url = format!("ws://{}", listener.local_addr().expect("addr"));
    let mut proxy = Proxy::start(&["--upstream", &url, "--enforce"]);
    let mut c = connect(proxy.addr);
    write(&mut c, &bad);
    let mut got = Vec::new();
    read_to_end(&mut c, &mut got);
    let text = String::from_utf8_lossy(&got);
    assert!(
        text.starts_with("HTTP/1.1 426 Upgrade Required\r\n") && text.contains("Sec-WebSocket-Version: 13"),
        "{text}"
    );
    proxy.connection(1);
    // Only wsproxy's start-up probe, which sends nothing, may have connected.
    while let Ok((mut s, _)) = listener.accept() {
        s.set_nonblocking(false).expect("blocking");
        s.set_read_timeout(Some(WAIT)).expect("timeout");
        let sent = std::io::Read::read(&mut s, &mut [0u8; 1]).unwrap_or(0);
        assert_eq!(sent, 0, "the upstream was never sent a request");
    }

    let mut c = connect(proxy.addr);
    write(&mut c, b"GET / HTTP/1.0\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n");
    let mut got = Vec::new();
    read_to_end(&mut c, &mut got);
    let text = String::from_utf8_lossy(&got);
    assert!(text.starts_with("HTTP/1.1 400 Bad Request\r\n") && text.contains("HTTP/1.1"), "{text}");
}

#[test]
fn plain_http_is_tunnelled_and_the_demo_page_loads() {
    // No --upstream: the embedded echo server.
    let mut proxy = Proxy::start(&[]);
    for (n, path, status, needle) in [(1, "/", 200, "<title>wsecho</title>"), (2, "/healthz", 200, "ok")] {
        let mut c = connect(proxy.addr);
        write(&mut c, format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes());
        let mut got = Vec::new();
        read_to_end(&mut c, &mut got);
        drop(c);
        let text = String::from_utf8_lossy(&got);
        assert!(text.starts_with(&format!("HTTP/1.1 {status}")), "{text}");
        assert!(text.contains(needle), "{text}");
        let events = proxy.connection(n);
        assert!(
            events
                .iter()
                .any(|e| matches!(e, Event::Http { status: Some(s), target, .. } if *s == status && target == path)),
            "{events:?}"
        );
    }
}

#[test]
fn a_client_that_never_finishes_its_head_is_dropped() {
    let upstream = RawUpstream::start(|_s| ());
    let mut proxy = Proxy::start(&["--upstream", &upstream.url(), "--handshake-timeout", "300ms"]);
    let mut c = connect(proxy.addr);
    write(&mut c, b"GET / HTTP/1.1\r\nHost: x\r\n");
    let mut got = Vec::new();
    read_to_end(&mut c, &mut got);
    assert!(got.is_empty());
    let events = proxy.connection(1);
    assert!(events.iter().any(|e| matches!(e, Event::Error { message } if message.contains("did not finish"))));
    assert!(matches!(events.last(), Some(Event::End { reason, .. }) if reason == "timeout"));
    // Unblock the upstream's accept, which never came (with a byte: a
    // connection that sends none is skipped as a probe).
    let _ = std::net::TcpStream::connect(upstream.addr).and_then(|mut s| s.write_all(b"x"));
    upstream.join();
}

#[test]
fn half_close_keeps_the_other_direction() {
    let reply = frame(OpCode::Text, true, None, b"after your EOF");
    let to_send = reply.clone();
    let upstream = RawUpstream::start(move |mut s| {
        let mut got = Vec::new();
        let head = read_head(&mut s, &mut got);
        write(&mut s, &upgrade_response());
        // The client's EOF arrives…
        read_to_end(&mut s, &mut got);
        // …and this direction still works.
        write(&mut s, &to_send);
        s.flush().ok();
        got.split_off(head)
    });
    let mut proxy = Proxy::start(&["--upstream", &upstream.url()]);
    let mut c = connect(proxy.addr);
    write(&mut c, &upgrade_request("x", "/"));
    let mut got = Vec::new();
    let head = read_head(&mut c, &mut got);
    let last = frame(OpCode::Binary, true, KEY, b"last words");
    write(&mut c, &last);
    c.shutdown(Shutdown::Write).expect("half-close");
    read_to_end(&mut c, &mut got);
    assert_eq!(&got[head..], &reply[..]);
    assert_eq!(upstream.join(), last);
    let events = proxy.connection(1);
    assert!(matches!(events.last(), Some(Event::End { reason, .. }) if reason == "eof"));
}

#[test]
fn sigterm_prints_totals() {
    let mut proxy = Proxy::start(&[]);
    let mut c = connect(proxy.addr);
    write(&mut c, b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    let mut got = Vec::new();
    read_to_end(&mut c, &mut got);
    drop(c);
    proxy.connection(1);
    let (status, stderr) = proxy.terminate();
    assert!(status.success(), "{status}");
    assert!(stderr.iter().any(|l| l.starts_with("wsproxy: 1 connection, ")), "{stderr:?}");
}

#[test]
fn a_head_that_breaks_the_syntax_policy_is_reported_once_and_relayed() {
    let request = b"GET / HTTP/1.1\nHost: x\nUpgrade: websocket\n\n".to_vec();
    let upstream = RawUpstream::start(move |mut s| {
        let mut got = Vec::new();
        read_at_least(&mut s, &mut got, 40);
        write(&mut s, b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
        got
    });
    let mut proxy = Proxy::start(&["--upstream", &upstream.url()]);
    let mut c = connect(proxy.addr);
    write(&mut c, &request);
    let mut got = Vec::new();
    read_to_end(&mut c, &mut got);
    drop(c);
    assert!(String::from_utf8_lossy(&got).starts_with("HTTP/1.1 400"));
    assert_eq!(upstream.join(), request, "relayed unchanged");
    let events = proxy.connection(1);
    let rules: Vec<&str> = events
        .iter()
        .filter_map(|e| match e {
            Event::Violation { rule, .. } => Some(rule.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(rules, ["bare_lf"]);
}

/// Sends `request` through a proxy started with `args` to a raw upstream
/// that answers 403 with a cookie; returns the head the upstream got and the
/// connection's events.
fn through_to_403(args: &[&str], request: &[u8]) -> (Vec<u8>, Vec<Event>) {
    let upstream = RawUpstream::start(move |mut s| {
        let mut got = Vec::new();
        let n = read_head(&mut s, &mut got);
        write(
            &mut s,
            b"HTTP/1.1 403 Forbidden\r\nSet-Cookie: session=s3cr3t\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
        );
        got.truncate(n);
        got
    });
    let url = upstream.url();
    let mut all = vec!["--upstream", url.as_str()];
    all.extend_from_slice(args);
    let mut proxy = Proxy::start(&all);
    let mut c = connect(proxy.addr);
    write(&mut c, request);
    let mut answer = Vec::new();
    read_to_end(&mut c, &mut answer);
    drop(c);
    assert!(answer.ends_with(b"Set-Cookie: session=s3cr3t\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"));
    (upstream.join(), proxy.connection(1))
}

fn logged_headers(events: &[Event]) -> Vec<(String, String)> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::HandshakeRequest { headers, .. } | Event::HandshakeResponse { headers, .. } => Some(headers),
            _ => None,
        })
        .flatten()
        .map(|h| (h.name.to_ascii_lowercase(), h.value.clone()))
        .collect()
}

#[test]
fn secrets_are_redacted_in_the_log_but_relayed_untouched() {
    let request = replace_once(
        &upgrade_request("127.0.0.1", "/"),
        b"\r\n\r\n",
        b"\r\nAuthorization: Bearer abc.def\r\nCookie: id=42; theme=dark\r\nProxy-Authorization: Basic eDp5\r\n\r\n",
    );
    let (got, events) = through_to_403(&[], &request);
    assert!(got.windows(22).any(|w| w == b"Bearer abc.def\r\nCookie"), "relayed as it came");
    let headers = logged_headers(&events);
    let value = |name: &str| headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.clone());
    assert_eq!(value("authorization").as_deref(), Some("<redacted, 14 bytes>"));
    assert_eq!(value("cookie").as_deref(), Some("<redacted, 17 bytes>"));
    assert_eq!(value("proxy-authorization").as_deref(), Some("<redacted, 10 bytes>"));
    assert_eq!(value("set-cookie").as_deref(), Some("<redacted, 14 bytes>"));
    assert_eq!(value("upgrade").as_deref(), Some("websocket"));

    let (_, events) = through_to_403(&["--show-secrets"], &request);
    let headers = logged_headers(&events);
    assert!(headers.contains(&("authorization".into(), "Bearer abc.def".into())));
    assert!(headers.contains(&("set-cookie".into(), "session=s3cr3t".into())));
}

#[test]
fn no_compression_removes_the_offer_and_says_so() {
    let offer = b"\r\nSec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n\r\n";
    let request = replace_once(&upgrade_request("127.0.0.1", "/"), b"\r\n\r\n", offer);
    // Without the flag the offer passes (and with --preserve-host the head
    // is forwarded byte for byte).
    let (got, _) = through_to_403(&["--preserve-host"], &request);
    assert_eq!(got, request);
    let (got, events) = through_to_403(&["--preserve-host", "--no-compression"], &request);
    assert_eq!(got, upgrade_request("127.0.0.1", "/"));
    let removed = events.iter().find_map(|e| match e {
        Event::HandshakeRequest { removed_headers, .. } => Some(removed_headers.clone()),
        _ => None,
    });
    assert_eq!(removed, Some(vec!["Sec-WebSocket-Extensions".to_owned()]));
}

/// Runs one connection: the client offers `offer`, the upstream answers
/// with `answer` and then `upstream_frames`; the client sends
/// `client_frames`. Returns the proxy's events for it.
fn negotiate(offer: &str, answer: &str, client_frames: Vec<u8>, upstream_frames: Vec<u8>) -> Vec<Event> {
    let answer = format!("\r\nSec-WebSocket-Extensions: {answer}\r\n\r\n");
    let response = replace_once(&upgrade_response(), b"\r\n\r\n", answer.as_bytes());
    let upstream = RawUpstream::start(move |mut s| {
        let mut got = Vec::new();
        let head = read_head(&mut s, &mut got);
        write(&mut s, &[response, upstream_frames].concat());
        read_to_end(&mut s, &mut got);
        got.split_off(head)
    });
    let mut proxy = Proxy::start(&["--upstream", &upstream.url()]);
    let mut c = connect(proxy.addr);
    let offer = format!("\r\nSec-WebSocket-Extensions: {offer}\r\n\r\n");
    write(&mut c, &replace_once(&upgrade_request("x", "/"), b"\r\n\r\n", offer.as_bytes()));
    let mut buf = Vec::new();
    read_head(&mut c, &mut buf);
    write(&mut c, &client_frames);
    c.shutdown(Shutdown::Write).expect("shutdown");
    read_to_end(&mut c, &mut buf);
    upstream.join();
    proxy.connection(1)
}

fn violations(events: &[Event]) -> Vec<(Side, String, String)> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Violation { from, rule, rfc, .. } => Some((*from, rule.clone(), rfc.clone())),
            _ => None,
        })
        .collect()
}

/// wsproto issue 13: Safari's `x-webkit-deflate-frame` sets RSV1 on each
/// compressed frame, continuations included. Negotiated, it is said once
/// (`undecoded_extensions`) and no frame is a violation.
#[test]
fn an_undecoded_extension_is_said_once_and_its_frames_pass() {
    use wsproto::{FrameHeader, encode_frame};
    let rsv1_frame = |opcode, fin, mask, payload: &[u8]| {
        let mut out = Vec::new();
        encode_frame(&FrameHeader { fin, rsv1: true, mask, ..FrameHeader::new(opcode, 0) }, payload, &mut out);
        out
    };
    let client = [
        rsv1_frame(OpCode::Text, false, Some([1, 2, 3, 4]), &[0xf2, 0x48, 0xcd]),
        rsv1_frame(OpCode::Continuation, true, Some([1, 2, 3, 4]), &[0xc9, 0xc9, 0x07, 0x00]),
    ]
    .concat();
    let upstream = rsv1_frame(OpCode::Text, true, None, &[0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00]);
    let events = negotiate("x-webkit-deflate-frame", "x-webkit-deflate-frame", client, upstream);
    let said: Vec<&Vec<String>> = events
        .iter()
        .filter_map(|e| match e {
            Event::HandshakeResponse { undecoded_extensions, .. } => Some(undecoded_extensions),
            _ => None,
        })
        .collect();
    assert_eq!(said, [&vec!["x-webkit-deflate-frame".to_string()]]);
    assert_eq!(violations(&events), []);
}

/// wsproto issue 13: the answer's permessage-deflate parameters are checked
/// against the offer (RFC 7692 §7.1.2.2, §7.1.2.1).
#[test]
fn deflate_answers_are_checked_against_the_offer() {
    let events = negotiate("permessage-deflate", "permessage-deflate; client_max_window_bits=15", vec![], vec![]);
    let expected = (Side::Upstream, "unoffered_client_max_window_bits".into(), "RFC 7692 §7.1.2.2".into());
    assert_eq!(violations(&events), [expected]);
    let events = negotiate(
        "permessage-deflate; server_max_window_bits=10",
        "permessage-deflate; server_max_window_bits=12",
        vec![],
        vec![],
    );
    assert_eq!(violations(&events), [(Side::Upstream, "window_bits_above_offer".into(), "RFC 7692 §7.1.2".into())]);
    let events = negotiate(
        "permessage-deflate; client_max_window_bits",
        "permessage-deflate; client_max_window_bits=10",
        vec![],
        vec![],
    );
    assert_eq!(violations(&events), []);
}
