//! The live view never slows the relay: a page that connects to the event
//! stream and then never reads gets its events dropped (and counted) while
//! 100 MB pass through the proxy at full speed, and the view's memory stays
//! within its bounds. Asserts on counts and bytes, never on wall time.

use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::tungstenite::Message;
use wsproxy::ui::{UiOptions, View};
use wsproxy::{Config, Upstream};

/// Bytes sent through the proxy (and echoed back).
const TOTAL: usize = 100 << 20;
/// The size of each message: small enough for many events (about 26 000).
const MESSAGE: usize = 16 << 10;
/// What one page may have queued in the view before it loses events.
const PAGE_QUEUE: usize = 256 << 10;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stuck_page_loses_events_not_throughput() {
    // The echo server, the view, the writer with the view as its one output, the proxy.
    let echo = wsecho::spawn(
        tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind echo"),
        wsecho::Config::default(),
    )
    .expect("echo server");
    let options = UiOptions { client_queue_bytes: PAGE_QUEUE, ..UiOptions::default() };
    let view = View::bind("127.0.0.1:0".parse().expect("addr"), options.clone()).await.expect("view");
    let (sink, writer) = wsproxy::log::start(vec![view.output()]);
    let upstream =
        Upstream { secure: false, host: "127.0.0.1".into(), port: echo.local_addr().port(), path: String::new() };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
    let proxy = listener.local_addr().expect("proxy addr");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(wsproxy::serve(listener, Config::new(upstream), sink, async {
        let _ = stopped.await;
    }));

    // The stuck page: a small receive buffer, the upgrade, the 101, then it never reads.
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket.set_recv_buffer_size(4096).expect("rcvbuf");
    let mut page = socket.connect(view.local_addr()).await.expect("connect to the view");
    let host = view.local_addr();
    page.write_all(
        format!(
            "GET /events HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        )
        .as_bytes(),
    )
    .await
    .expect("upgrade request");
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut byte = [0u8; 1];
        assert_eq!(page.read(&mut byte).await.expect("101"), 1, "the view closed: {head:?}");
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head);
    assert!(head.starts_with("HTTP/1.1 101 ") && head.contains("s3pPLMBiTxaQ9kYGzzhZRbK+xOo="), "{head}");
    assert_eq!(view.hub().stats().clients, 1);

    // 100 MB through the proxy, every echo checked.
    let (ws, _) = tokio_tungstenite::connect_async(format!("ws://{proxy}/")).await.expect("connect through the proxy");
    let (mut tx, mut rx) = ws.split();
    let count = TOTAL / MESSAGE;
    let sender = tokio::spawn(async move {
        for i in 0..count {
            tx.send(Message::binary(vec![i as u8; MESSAGE])).await.expect("send");
        }
        tx
    });
    let mut echoed = 0usize;
    while echoed < count {
        match rx.next().await.expect("an echo").expect("read") {
            Message::Binary(data) => {
                assert_eq!(data.len(), MESSAGE);
                assert!(data.iter().all(|&b| b == echoed as u8), "echo {echoed} differs");
                echoed += 1;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    let mut tx = sender.await.expect("sender");
    tx.send(Message::Close(None)).await.expect("close");
    while let Some(Ok(_)) = rx.next().await {}
    // Closing the socket ends the relay (and adds its bytes to the totals).
    drop((tx, rx));

    // The relay never waited for the events (the view's write never blocks)…
    let _ = stop.send(());
    let summary = server.await.expect("serve task").expect("serve");
    tokio::task::spawn_blocking(move || writer.join().expect("writer")).await.expect("join");
    assert_eq!(summary.log_stalls, 0, "the relay waited for the event writer");
    assert!(summary.bytes >= 2 * TOTAL as u64, "{summary:?}");

    // …the view saw every event, the stuck page lost most of them (counted),
    // and nothing grew past its bounds.
    let stats = view.hub().stats();
    eprintln!("the view after {} MiB each way: {stats:?}", TOTAL >> 20);
    let events = (4 * count) as u64; // a frame and a message each way per echo
    // (The view may skip batches when its own thread is behind: counted too.)
    assert!(stats.events_in + stats.skipped >= events, "{stats:?}");
    assert_eq!(stats.clients, 1, "the stuck page is still connected: {stats:?}");
    assert!(stats.client_dropped > stats.events_in / 2, "the drop counter does not say so: {stats:?}");
    assert!(stats.client_queued_bytes <= PAGE_QUEUE, "{stats:?}");
    assert!(stats.stored <= options.total && stats.stored_bytes <= options.total_bytes, "{stats:?}");
    assert_eq!(stats.stored as u64 + stats.evicted, stats.events_in, "{stats:?}");
    drop(page);
    echo.shutdown().await;
}

/// Starts the binary with `args` (events to nowhere) and returns it with
/// its stderr lines up to and including the first that starts with `until`.
fn start(args: &[&str], until: &str) -> (KillOnDrop, Vec<String>) {
    use std::io::BufRead;
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_wsproxy"))
        .args(["--listen", "127.0.0.1:0", "--format", "json"])
        .args(args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start wsproxy");
    let stderr = child.stderr.take().expect("stderr");
    let child = KillOnDrop(child);
    let mut lines = Vec::new();
    for line in std::io::BufReader::new(stderr).lines() {
        let line = line.expect("stderr");
        let last = line.starts_with(until);
        lines.push(line);
        if last {
            break;
        }
    }
    (child, lines)
}

/// Kills the child when the test ends, even when it fails.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// One HTTP/1.1 request to `addr` (the view closes after its answer).
fn http(addr: &str, target: &str, extra: &str) -> String {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).expect("connect to the view");
    s.set_read_timeout(Some(std::time::Duration::from_secs(10))).expect("timeout");
    write!(s, "GET {target} HTTP/1.1\r\nHost: {addr}\r\n{extra}\r\n").expect("request");
    let mut answer = Vec::new();
    s.read_to_end(&mut answer).expect("answer");
    String::from_utf8_lossy(&answer).into_owned()
}

#[test]
fn the_demo_has_a_view_that_asks_for_its_token() {
    let (_proxy, lines) = start(&["--ui-token", "t0k3n"], "wsproxy: then watch");
    let listening = lines.iter().position(|l| l.starts_with("listening on ")).expect("listening line");
    let url = lines[..listening]
        .iter()
        .find_map(|l| l.strip_prefix("wsproxy: live view at "))
        .unwrap_or_else(|| panic!("no view URL before the listening line: {lines:#?}"));
    assert!(
        lines.iter().any(|l| l.contains("watch its handshake and frames live at") && l.ends_with(url)),
        "{lines:#?}"
    );
    let addr =
        url.strip_prefix("http://").and_then(|u| u.strip_suffix("/?token=t0k3n")).expect("the URL has the token");
    assert!(addr.starts_with("127.0.0.1:"), "loopback by default: {addr}");

    assert!(http(addr, "/", "").starts_with("HTTP/1.1 403 "));
    assert!(http(addr, "/?token=wrong", "").starts_with("HTTP/1.1 403 "));
    let page = http(addr, "/?token=t0k3n", "");
    assert!(page.starts_with("HTTP/1.1 200 ") && page.contains("<title>wsproxy: live view</title>"), "{page}");
    assert!(http(addr, "/app.js", "").contains("new WebSocket(url)"));
    let upgrade = "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
                   Sec-WebSocket-Version: 13\r\n";
    // Another site's page in the same browser may not read the events.
    let foreign = http(addr, "/events?token=t0k3n", &format!("{upgrade}Origin: http://evil.example\r\n"));
    assert!(foreign.starts_with("HTTP/1.1 403 "), "{foreign}");
}

#[test]
fn no_view_with_no_ui_or_an_upstream() {
    // The last start-up line of each.
    for (args, until) in
        [(&["--no-ui"][..], "wsproxy: open http"), (&["--upstream", "ws://127.0.0.1:1"][..], "wsproxy: upstream:")]
    {
        let (_proxy, lines) = start(args, until);
        assert!(lines.iter().any(|l| l.starts_with("listening on ")), "{lines:#?}");
        assert!(!lines.iter().any(|l| l.contains("live")), "{args:?}: {lines:#?}");
    }
}
