//! wsecho against a real client (tokio-tungstenite) and raw sockets, on
//! 127.0.0.1 port 0.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use wsproto::{Decoder, DecoderConfig, Event, FrameHeader, OpCode, Role, encode_frame, handshake};

async fn start() -> wsecho::Server {
    start_with(wsecho::Config::default()).await
}

async fn start_with(config: wsecho::Config) -> wsecho::Server {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    wsecho::spawn(listener, config).expect("spawn")
}

const ENGINES: [wsecho::Engine; 2] = [wsecho::Engine::Tungstenite, wsecho::Engine::Wsproto];

#[tokio::test]
async fn echoes_text_binary_and_answers_ping_and_close() {
    for engine in ENGINES {
        echo_text_binary_ping_and_close(engine).await;
    }
}

async fn echo_text_binary_ping_and_close(engine: wsecho::Engine) {
    let server = start_with(wsecho::Config { engine, ..wsecho::Config::default() }).await;
    let url = format!("ws://{}/any/path", server.local_addr());
    let (mut ws, response) = tokio_tungstenite::connect_async(&url).await.expect("connect");
    assert_eq!(response.status(), 101);

    let big: Vec<u8> = (0..1 << 20).map(|i: u32| (i * 31 % 251) as u8).collect();
    let messages =
        [Message::text(""), Message::text("Hello, κόσμε"), Message::binary(vec![0u8, 1, 2, 255]), Message::binary(big)];
    for m in messages {
        ws.send(m.clone()).await.expect("send");
        assert_eq!(ws.next().await.expect("reply").expect("ok"), m);
    }
    ws.send(Message::Ping(b"are you there".to_vec().into())).await.expect("ping");
    assert_eq!(ws.next().await.expect("reply").expect("ok"), Message::Pong(b"are you there".to_vec().into()));

    let close = CloseFrame { code: CloseCode::Library(4001), reason: "done here".into() };
    ws.send(Message::Close(Some(close.clone()))).await.expect("close");
    match ws.next().await {
        Some(Ok(Message::Close(Some(echoed)))) => assert_eq!(echoed.code, CloseCode::Library(4001), "{engine:?}"),
        other => panic!("{engine:?}: expected the close echoed, got {other:?}"),
    }
    server.shutdown().await;
}

/// Sends a valid handshake then `frames`, and returns the close code the
/// server sends back.
fn close_code_for(addr: std::net::SocketAddr, frames: &[u8]) -> Option<u16> {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(5))).expect("timeout");
    let key = handshake::encode_key([9; 16]);
    let request = handshake::build_request(&addr.to_string(), "/", &key, &[], None).expect("valid arguments");
    s.write_all(&request).expect("write");
    s.write_all(frames).expect("write");
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_len = loop {
        let n = s.read(&mut chunk).expect("read");
        assert!(n > 0, "connection closed during the handshake");
        buf.extend_from_slice(&chunk[..n]);
        if let wsproto::Status::Complete((res, len)) =
            handshake::parse_response(&buf, &handshake::Limits::default()).expect("valid response")
        {
            assert_eq!(res.status, 101);
            break len;
        }
    };
    let mut rest = buf.split_off(head_len);
    let mut decoder = Decoder::new(Role::Server, DecoderConfig::default());
    loop {
        let mut input = &rest[..];
        while let Some(ev) = {
            let d = decoder.decode(input);
            input = &input[d.consumed..];
            d.event
        } {
            if let Event::FrameEnd(end) = ev
                && end.header.opcode == OpCode::Close
            {
                return wsproto::parse_close_payload(decoder.control_payload()).ok().flatten().map(|c| c.code.0);
            }
        }
        rest.clear();
        match s.read(&mut chunk) {
            Ok(0) | Err(_) => return None,
            Ok(n) => rest.extend_from_slice(&chunk[..n]),
        }
    }
}

fn masked_rsv1(opcode: OpCode, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let header = FrameHeader { rsv1: true, mask: Some([1, 2, 3, 4]), ..FrameHeader::new(opcode, 0) };
    encode_frame(&header, payload, &mut out);
    out
}

fn masked(opcode: OpCode, fin: bool, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let header = FrameHeader { fin, mask: Some([1, 2, 3, 4]), ..FrameHeader::new(opcode, 0) };
    encode_frame(&header, payload, &mut out);
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn protocol_errors_close_with_the_right_code() {
    for engine in ENGINES {
        protocol_errors_close_with_the_right_code_by(engine).await;
    }
}

async fn protocol_errors_close_with_the_right_code_by(engine: wsecho::Engine) {
    let config = wsecho::Config { engine, max_message_size: 1000, ..wsecho::Config::default() };
    let server = start_with(config).await;
    let addr = server.local_addr();
    let cases: Vec<(&str, Vec<u8>, u16)> = vec![
        ("reserved opcode", masked(OpCode::Reserved(3), true, b""), 1002),
        (
            "unmasked frame",
            {
                let mut v = Vec::new();
                encode_frame(&FrameHeader::new(OpCode::Text, 0), b"x", &mut v);
                v
            },
            1002,
        ),
        ("invalid utf-8", masked(OpCode::Text, true, b"\xce\xba\xff"), 1007),
        ("fragmented ping", masked(OpCode::Ping, false, b""), 1002),
        ("continuation first", masked(OpCode::Continuation, true, b"x"), 1002),
        ("rsv1 without permessage-deflate", masked_rsv1(OpCode::Text, b"x"), 1002),
        (
            "message over the limit",
            [masked(OpCode::Binary, false, &[0; 600]), masked(OpCode::Continuation, true, &[0; 600])].concat(),
            1009,
        ),
    ];
    for (name, frames, code) in cases {
        let got = tokio::task::spawn_blocking(move || close_code_for(addr, &frames)).await.expect("join");
        assert_eq!(got, Some(code), "{engine:?}: {name}");
    }
    server.shutdown().await;
}

/// A client that sends half a request head and stops is dropped after
/// `--handshake-timeout`, with no answer; one that completes its head in
/// time is served on the same settings.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_half_sent_request_head_is_dropped_after_the_handshake_timeout() {
    let config = wsecho::Config { handshake_timeout: Duration::from_millis(300), ..wsecho::Config::default() };
    let server = start_with(config).await;
    let addr = server.local_addr();
    let dropped = tokio::task::spawn_blocking(move || {
        let mut s = TcpStream::connect(addr).expect("connect");
        // Far longer than the handshake timeout: a read that times out
        // means the server kept the connection.
        s.set_read_timeout(Some(Duration::from_secs(20))).expect("timeout");
        s.write_all(b"GET /chat HTTP/1.1\r\nHost: x\r\nUpgrade: websock").expect("write");
        let mut answer = Vec::new();
        let ended = s.read_to_end(&mut answer);
        (ended.map_err(|e| e.kind()), answer)
    })
    .await
    .expect("join");
    match dropped {
        (Ok(0), _) | (Err(std::io::ErrorKind::ConnectionReset), _) => {}
        other => panic!("expected the server to drop the connection, got {other:?}"),
    }
    let page = tokio::task::spawn_blocking(move || http_exchange(addr, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"))
        .await
        .expect("join");
    assert!(page.starts_with("HTTP/1.1 200"), "{page}");
    server.shutdown().await;
}

/// With `--idle-timeout`, a WebSocket connection that goes silent is closed
/// with 1001; traffic before that is echoed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_websocket_is_closed_with_1001_after_the_idle_timeout() {
    for engine in ENGINES {
        a_silent_websocket_is_closed_by(engine).await;
    }
}

async fn a_silent_websocket_is_closed_by(engine: wsecho::Engine) {
    let config = wsecho::Config { engine, idle_timeout: Some(Duration::from_millis(300)), ..wsecho::Config::default() };
    let server = start_with(config).await;
    let url = format!("ws://{}/", server.local_addr());
    let (mut ws, _) = tokio_tungstenite::connect_async(&url).await.expect("connect");
    ws.send(Message::text("still here")).await.expect("send");
    assert_eq!(ws.next().await.expect("reply").expect("ok"), Message::text("still here"));
    match tokio::time::timeout(Duration::from_secs(20), ws.next()).await {
        Ok(Some(Ok(Message::Close(Some(close))))) => {
            assert_eq!(close.code, CloseCode::Away, "{engine:?}");
            assert_eq!(close.reason.as_str(), "idle timeout", "{engine:?}");
        }
        other => panic!("{engine:?}: expected close 1001, got {other:?}"),
    }
    // tungstenite answers the close; the server then ends the connection.
    assert!(matches!(tokio::time::timeout(Duration::from_secs(20), ws.next()).await, Ok(None | Some(Err(_)))));
    server.shutdown().await;
}

/// The wsproto engine accepts a permessage-deflate offer (here the second,
/// after an invalid one it declines, RFC 7692 §7.1), reads a compressed
/// message fragmented in three, and echoes it compressed, within the window
/// the offer allowed; the tokio-tungstenite engine declines.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_wsproto_engine_negotiates_permessage_deflate() {
    use wsproto::deflate::{Deflater, Inflater};
    for engine in ENGINES {
        let server = start_with(wsecho::Config { engine, ..wsecho::Config::default() }).await;
        let addr = server.local_addr();
        let result = tokio::task::spawn_blocking(move || {
            let mut s = TcpStream::connect(addr).expect("connect");
            s.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
            let key = handshake::encode_key([7; 16]);
            let offer = "permessage-deflate; x-bogus, permessage-deflate; server_max_window_bits=10; \
                         client_max_window_bits";
            let request = handshake::build_request(&addr.to_string(), "/", &key, &[], Some(offer)).expect("request");
            s.write_all(&request).expect("write");
            let data: Vec<u8> = "compress me, ".repeat(300).into_bytes();
            let mut compressed = Vec::new();
            Deflater::new(6, false).compress_message(&data, &mut compressed);
            let third = compressed.len() / 3;
            let mut frames = Vec::new();
            let parts = [&compressed[..third], &compressed[third..2 * third], &compressed[2 * third..]];
            for (i, part) in parts.iter().enumerate() {
                let opcode = if i == 0 { OpCode::Text } else { OpCode::Continuation };
                let header =
                    FrameHeader { fin: i == 2, rsv1: i == 0, mask: Some([5, 6, 7, 8]), ..FrameHeader::new(opcode, 0) };
                encode_frame(&header, part, &mut frames);
            }
            let mut buf = Vec::new();
            let mut chunk = [0u8; 4096];
            let (extensions, head_len) = loop {
                let n = s.read(&mut chunk).expect("read");
                assert!(n > 0, "closed during the handshake");
                buf.extend_from_slice(&chunk[..n]);
                if let wsproto::Status::Complete((res, len)) =
                    handshake::parse_response(&buf, &handshake::Limits::default()).expect("valid response")
                {
                    let ext = res
                        .headers
                        .iter()
                        .find(|h| h.name.eq_ignore_ascii_case("sec-websocket-extensions"))
                        .map(|h| String::from_utf8_lossy(h.value).into_owned());
                    break (ext, len);
                }
            };
            let extensions = extensions?;
            s.write_all(&frames).expect("write");
            let mut rest = buf.split_off(head_len);
            let mut decoder =
                Decoder::new(Role::Server, DecoderConfig { allow_rsv1: true, ..DecoderConfig::default() });
            let mut inflater = Inflater::with_window_bits(false, 10, 1 << 20);
            let mut echo = Vec::new();
            let mut rsv1 = false;
            loop {
                let mut input = &rest[..];
                while let Some(ev) = {
                    let d = decoder.decode(input);
                    input = &input[d.consumed..];
                    d.event
                } {
                    match ev {
                        Event::Header(h) => {
                            rsv1 |= h.header.rsv1;
                            inflater.begin_message();
                        }
                        Event::Payload(p) => {
                            let mut bytes = Vec::new();
                            p.extend_unmasked(&mut bytes);
                            inflater.inflate(&bytes, &mut |b| echo.extend_from_slice(b)).expect("inflates");
                        }
                        Event::FrameEnd(_) => {
                            inflater.end_message(&mut |b| echo.extend_from_slice(b)).expect("within 2^10");
                            return Some((extensions, rsv1, echo == data));
                        }
                        Event::Violation(v) => panic!("{v}"),
                    }
                }
                rest.clear();
                let n = s.read(&mut chunk).expect("read");
                assert!(n > 0, "closed before the echo");
                rest.extend_from_slice(&chunk[..n]);
            }
        })
        .await
        .expect("join");
        match engine {
            wsecho::Engine::Tungstenite => assert_eq!(result, None),
            wsecho::Engine::Wsproto => assert_eq!(
                result,
                Some(("permessage-deflate; server_max_window_bits=10".to_owned(), true, true)),
                "agreed, compressed, echoed unchanged"
            ),
        }
        server.shutdown().await;
    }
}

/// Sends raw bytes, returns the whole answer (the server closes or times out).
fn http_exchange(addr: std::net::SocketAddr, request: &str) -> String {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(5))).expect("timeout");
    s.write_all(request.as_bytes()).expect("write");
    let mut out = Vec::new();
    let mut chunk = [0u8; 8192];
    while let Ok(n) = s.read(&mut chunk) {
        if n == 0 {
            break;
        }
        out.extend_from_slice(&chunk[..n]);
        // One response is enough: stop at the end of its body.
        let text = String::from_utf8_lossy(&out);
        if let Some((head, body)) = text.split_once("\r\n\r\n")
            && let Some(len) = head.lines().find_map(|l| {
                l.to_ascii_lowercase().strip_prefix("content-length: ").map(|v| v.trim().parse::<usize>().unwrap_or(0))
            })
            && body.len() >= len
        {
            break;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_upgrades_get_http_answers_and_pages_are_served() {
    let server = start().await;
    let addr = server.local_addr();
    let upgrade = |version: &str, extra: &str| {
        format!("GET /chat {version}\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n{extra}\r\n")
    };
    let key = "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n";
    let cases = vec![
        ("HTTP/1.0", upgrade("HTTP/1.0", &format!("{key}Sec-WebSocket-Version: 13\r\n")), "HTTP/1.0 400", "HTTP/1.1"),
        (
            "version 8",
            upgrade("HTTP/1.1", &format!("{key}Sec-WebSocket-Version: 8\r\n")),
            "HTTP/1.1 426",
            "sec-websocket-version: 13",
        ),
        ("no key", upgrade("HTTP/1.1", "Sec-WebSocket-Version: 13\r\n"), "HTTP/1.1 400", "Sec-WebSocket-Key"),
        (
            "bad key",
            upgrade("HTTP/1.1", "Sec-WebSocket-Key: short\r\nSec-WebSocket-Version: 13\r\n"),
            "HTTP/1.1 400",
            "base64 of 16 bytes",
        ),
        ("page", format!("GET / HTTP/1.1\r\nHost: {addr}\r\n\r\n"), "HTTP/1.1 200", "<title>wsecho</title>"),
        ("health", format!("GET /healthz HTTP/1.1\r\nHost: {addr}\r\n\r\n"), "HTTP/1.1 200", "ok"),
        ("elsewhere", format!("GET /nope HTTP/1.1\r\nHost: {addr}\r\n\r\n"), "HTTP/1.1 404", "not found"),
    ];
    for (name, request, status, needle) in cases {
        let answer = tokio::task::spawn_blocking(move || http_exchange(addr, &request)).await.expect("join");
        assert!(answer.starts_with(status), "{name}: {answer}");
        assert!(answer.to_ascii_lowercase().contains(&needle.to_ascii_lowercase()), "{name}: {answer}");
    }
    server.shutdown().await;
}

/// Kills the child if the test fails before it exits.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn binary_announces_its_address_and_sigterm_closes_with_1001() {
    let child = Command::new(env!("CARGO_BIN_EXE_wsecho"))
        .args(["--listen", "127.0.0.1:0", "--quiet"])
        .stderr(Stdio::piped())
        .spawn()
        .expect("start wsecho");
    let mut child = Running(child);
    let mut stderr = BufReader::new(child.0.stderr.take().expect("stderr"));
    let mut line = String::new();
    stderr.read_line(&mut line).expect("read");
    let url = line.trim().strip_prefix("listening on ").expect("the first line announces the address").to_owned();
    assert!(url.starts_with("ws://127.0.0.1:") && !url.ends_with(":0"), "{url}");

    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async {
        let (mut ws, _) = tokio_tungstenite::connect_async(&url).await.expect("connect");
        ws.send(Message::text("hi")).await.expect("send");
        assert_eq!(ws.next().await.expect("echo").expect("ok"), Message::text("hi"));
        let pid = child.0.id().to_string();
        let started = Instant::now();
        assert!(Command::new("kill").args(["-TERM", &pid]).status().expect("kill").success());
        match ws.next().await {
            Some(Ok(Message::Close(Some(frame)))) => assert_eq!(frame.code, CloseCode::Away),
            other => panic!("expected close 1001, got {other:?}"),
        }
        drop(ws);
        let status = loop {
            if let Some(status) = child.0.try_wait().expect("wait") {
                break status;
            }
            assert!(started.elapsed() < Duration::from_secs(5), "wsecho did not exit within 5 s");
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        assert!(status.success(), "{status}");
    });
}

/// Starts the wsecho binary with `args`, waits for its `listening on` line
/// and returns it with the URL it announced.
fn start_binary(args: &[&str]) -> (Running, BufReader<std::process::ChildStderr>, String) {
    let child = Command::new(env!("CARGO_BIN_EXE_wsecho")).args(args).stderr(Stdio::piped()).spawn().expect("start");
    let mut child = Running(child);
    let mut stderr = BufReader::new(child.0.stderr.take().expect("stderr"));
    let mut line = String::new();
    stderr.read_line(&mut line).expect("read");
    let url = line.trim().strip_prefix("listening on ").unwrap_or_else(|| panic!("not announced: {line}")).to_owned();
    (child, stderr, url)
}

#[test]
fn sizes_take_units_listen_takes_localhost_and_a_piped_stderr_gets_no_colour() {
    let (child, mut stderr, url) = start_binary(&["--listen", "localhost:0", "--max-message-size", "64KiB"]);
    assert!(url.starts_with("ws://127.0.0.1:") && !url.ends_with(":0"), "{url}");
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async {
        let (mut ws, _) = tokio_tungstenite::connect_async(&url).await.expect("connect");
        ws.send(Message::binary(vec![7u8; 64 << 10])).await.expect("send at the limit");
        assert_eq!(ws.next().await.expect("echo").expect("echo").len(), 64 << 10);
        ws.send(Message::binary(vec![7u8; (64 << 10) + 1])).await.expect("send past the limit");
        match ws.next().await {
            Some(Ok(Message::Close(Some(frame)))) => assert_eq!(frame.code, CloseCode::Size),
            other => panic!("expected close 1009, got {other:?}"),
        }
    });
    let pid = child.0.id().to_string();
    assert!(Command::new("kill").args(["-TERM", &pid]).status().expect("kill").success());
    let mut rest = String::new();
    stderr.read_to_string(&mut rest).expect("read stderr");
    assert!(rest.contains("shutting down"), "the info line is there: {rest}");
    assert!(!rest.contains('\x1b'), "no escape codes when stderr is a pipe: {rest:?}");
}

#[test]
fn cli_errors_have_one_prefix_and_name_the_flag() {
    let run = |args: &[&str]| Command::new(env!("CARGO_BIN_EXE_wsecho")).args(args).output().expect("runs");
    let out = run(&["--max-message-size", "lots"]);
    let text = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2));
    assert!(text.starts_with("wsecho: error: invalid value 'lots' for '--max-message-size <SIZE>'"), "{text}");
    assert!(text.contains("16MiB"), "the message shows the form: {text}");
    let out = run(&["--listen", "localhost:65536"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("is not a port"));
    // A port someone else holds: the error says what to do.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = taken.local_addr().expect("addr").port().to_string();
    let out = run(&["--listen", &port]);
    let text = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1));
    assert!(text.starts_with(&format!("wsecho: error: --listen 127.0.0.1:{port}: cannot listen")), "{text}");
    assert!(text.contains("another port") && text.contains("--listen 127.0.0.1:0"), "{text}");
    let help = run(&["--help"]);
    let help = String::from_utf8_lossy(&help.stdout);
    let examples = help.split_once("Examples:").map(|(_, e)| e).unwrap_or_default();
    assert!(examples.lines().any(|l| l.trim_start().starts_with("wsecho --listen")), "{help}");
}
