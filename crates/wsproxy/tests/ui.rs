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

/// One HTTP/1.1 POST of `body` to `addr` (the view closes after its answer).
fn post(addr: &str, target: &str, body: &[u8]) -> Vec<u8> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).expect("connect to the view");
    s.set_read_timeout(Some(std::time::Duration::from_secs(30))).expect("timeout");
    write!(s, "POST {target} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: {}\r\n\r\n", body.len()).expect("head");
    s.write_all(body).expect("body");
    let mut answer = Vec::new();
    s.read_to_end(&mut answer).expect("answer");
    answer
}

#[test]
fn the_view_writes_the_posted_events_as_a_capture_that_reads_back() {
    let (_proxy, lines) = start(&["--ui-token", "t0k3n"], "wsproxy: then watch");
    let url = lines.iter().find_map(|l| l.strip_prefix("wsproxy: live view at ")).expect("the view's URL");
    let addr = url.strip_prefix("http://").and_then(|u| u.strip_suffix("/?token=t0k3n")).expect("addr");

    // A connection with 1000 masked text frames: far more than one read
    // of the request body.
    let ts = |us: u32| format!("2026-01-01T00:00:00.{us:06}Z");
    let mut events = format!(
        "{{\"ts\":\"{}\",\"conn\":3,\"event\":\"open\",\"client\":\"127.0.0.1:5000\",\"upstream\":\"127.0.0.1:9001\"}}\n\
         {{\"ts\":\"{}\",\"conn\":3,\"event\":\"handshake_request\",\"method\":\"GET\",\"target\":\"/\",\"version\":\"HTTP/1.1\",\
         \"headers\":[{{\"name\":\"Host\",\"value\":\"x\"}},{{\"name\":\"Upgrade\",\"value\":\"websocket\"}},\
         {{\"name\":\"Connection\",\"value\":\"Upgrade\"}},{{\"name\":\"Sec-WebSocket-Key\",\"value\":\"dGhlIHNhbXBsZSBub25jZQ==\"}},\
         {{\"name\":\"Sec-WebSocket-Version\",\"value\":\"13\"}}]}}\n\
         {{\"ts\":\"{}\",\"conn\":3,\"event\":\"handshake_response\",\"status\":101,\"reason\":\"Switching Protocols\",\
         \"version\":\"HTTP/1.1\",\"headers\":[{{\"name\":\"Upgrade\",\"value\":\"websocket\"}},{{\"name\":\"Connection\",\
         \"value\":\"Upgrade\"}},{{\"name\":\"Sec-WebSocket-Accept\",\"value\":\"s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\"}}],\
         \"protocol\":null,\"extensions\":[],\"upgraded\":true}}\n",
        ts(1),
        ts(2),
        ts(3)
    );
    for n in 0..1000u32 {
        let text = format!("message number {n}");
        events.push_str(&format!(
            "{{\"ts\":\"{}\",\"conn\":3,\"event\":\"frame\",\"from\":\"client\",\"fin\":true,\"rsv1\":false,\"rsv2\":false,\
             \"rsv3\":false,\"opcode\":\"text\",\"masked\":true,\"mask\":\"01020304\",\"len\":{},\"header_len\":6,\
             \"offset\":0,\"preview\":\"{text}\",\"preview_encoding\":\"text\",\"preview_truncated\":false}}\n",
            ts(10 + n),
            text.len()
        ));
    }
    assert!(events.len() > 256 << 10, "the body is several reads");
    assert!(String::from_utf8_lossy(&post(addr, "/download.pcapng", events.as_bytes())).starts_with("HTTP/1.1 403 "));
    let answer = post(addr, "/download.pcapng?token=t0k3n", events.as_bytes());
    let head_end = answer.windows(4).position(|w| w == b"\r\n\r\n").expect("a head") + 4;
    let head = String::from_utf8_lossy(&answer[..head_end]);
    assert!(head.starts_with("HTTP/1.1 200 ") && head.contains("Content-Type: application/x-pcapng"), "{head}");
    let capture = &answer[head_end..];
    assert!(head.contains(&format!("Content-Length: {}\r\n", capture.len())), "{head}");

    let file = std::env::temp_dir().join(format!("wsproxy-ui-download-{}.pcapng", std::process::id()));
    std::fs::write(&file, capture).expect("write the capture");
    let read = std::process::Command::new(env!("CARGO_BIN_EXE_wsproxy"))
        .args(["read", file.to_str().expect("utf-8"), "--format", "json"])
        .output()
        .expect("wsproxy read");
    let _ = std::fs::remove_file(&file);
    assert!(read.status.success(), "{}", String::from_utf8_lossy(&read.stderr));
    let frames: Vec<wsproxy::schema::Record> = String::from_utf8_lossy(&read.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("an event"))
        .filter(|r: &wsproxy::schema::Record| matches!(r.event, wsproxy::schema::Event::Frame { .. }))
        .collect();
    assert_eq!(frames.len(), 1000);
    let wsproxy::schema::Event::Frame { preview, mask, .. } = &frames[999].event else { unreachable!() };
    assert_eq!((preview.as_str(), mask.as_deref()), ("message number 999", Some("01020304")));
}

/// The address of the view of a binary started with `args`.
fn view(args: &[&str]) -> (KillOnDrop, String) {
    let (proxy, lines) = start(args, "wsproxy: then watch");
    let url = lines.iter().find_map(|l| l.strip_prefix("wsproxy: live view at ")).expect("the view's URL");
    let addr = url.strip_prefix("http://").and_then(|u| u.split_once('/')).expect("an address").0;
    (proxy, addr.to_owned())
}

/// The head of a download request for `length` bytes of events.
fn download_head(addr: &str, target: &str, length: usize) -> String {
    format!("POST {target} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: {length}\r\n\r\n")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_download_keeps_its_place_until_its_answer_is_read() {
    let (_proxy, addr) = view(&[]);
    // 16 MiB of capture from one event (its payload zero-filled): far more
    // than the sockets between hold, so its answer is stuck while it is not read.
    let events = format!(
        "{{\"ts\":\"2026-01-01T00:00:00Z\",\"conn\":1,\"event\":\"frame\",\"from\":\"upstream\",\"fin\":true,\
         \"rsv1\":false,\"rsv2\":false,\"rsv3\":false,\"opcode\":\"binary\",\"masked\":false,\"mask\":null,\
         \"len\":{},\"header_len\":10,\"offset\":0,\"preview\":\"\",\"preview_encoding\":\"hex\",\"preview_truncated\":true}}\n",
        16 << 20
    );
    let mut stuck = Vec::new();
    for _ in 0..2 {
        let socket = tokio::net::TcpSocket::new_v4().expect("socket");
        socket.set_recv_buffer_size(4096).expect("rcvbuf");
        let mut s = socket.connect(addr.parse().expect("addr")).await.expect("connect to the view");
        let request = download_head(&addr, "/download.pcapng", events.len()) + &events;
        s.write_all(request.as_bytes()).await.expect("request");
        stuck.push(s);
    }
    // Both rendered and being answered (the answers have begun), never read:
    // no place for a third download while they are.
    for s in &stuck {
        s.readable().await.expect("the answer begins");
    }
    let small = addr.clone();
    let answer = tokio::task::spawn_blocking(move || post(&small, "/download.har", b"")).await.expect("post");
    assert!(answer.starts_with(b"HTTP/1.1 503 "), "{}", String::from_utf8_lossy(&answer));
    // Their readers gone, the answers fail and give their places back.
    drop(stuck);
    let mut freed = false;
    for _ in 0..100 {
        let small = addr.clone();
        let answer = tokio::task::spawn_blocking(move || post(&small, "/download.har", b"")).await.expect("post");
        if answer.starts_with(b"HTTP/1.1 200 ") {
            freed = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(freed, "the places were not given back");
}

#[test]
fn a_download_that_sends_no_events_holds_no_place() {
    use std::io::Write;
    let (_proxy, addr) = view(&[]);
    // More than the downloads at once: heads that promise events and never send them.
    let idle: Vec<std::net::TcpStream> = (0..3)
        .map(|_| {
            let mut s = std::net::TcpStream::connect(&addr).expect("connect to the view");
            s.write_all(download_head(&addr, "/download.har", 1000).as_bytes()).expect("head");
            s
        })
        .collect();
    // A round trip after them: their heads have been read.
    assert!(http(&addr, "/nope", "").starts_with("HTTP/1.1 404 "));
    let answer = post(&addr, "/download.har", b"");
    assert!(answer.starts_with(b"HTTP/1.1 200 "), "{}", String::from_utf8_lossy(&answer));
    drop(idle);
}

#[test]
fn a_refused_download_is_answered_not_reset() {
    use std::io::{Read, Write};
    let (_proxy, addr) = view(&["--ui-token", "t0k3n"]);
    let body = vec![b'\n'; 4 << 20];
    let mut s = std::net::TcpStream::connect(&addr).expect("connect to the view");
    s.set_read_timeout(Some(std::time::Duration::from_secs(30))).expect("timeout");
    // No token: refused at the head, while the page is still sending its events.
    s.write_all(download_head(&addr, "/download.har", body.len()).as_bytes()).expect("head");
    let mut writer = s.try_clone().expect("clone");
    let sender = std::thread::spawn(move || writer.write_all(&body));
    let mut answer = Vec::new();
    s.read_to_end(&mut answer).expect("the answer");
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 403 ") && answer.contains("needs its token"), "{answer}");
    // The view read what the page sent: no reset, so a browser shows the reason.
    sender.join().expect("sender").expect("the events were all taken");
}
