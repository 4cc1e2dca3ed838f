//! Test helpers: the proxy binary on 127.0.0.1 port 0 with its JSON events
//! parsed back into typed records, and raw-socket peers that record bytes.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use wsproxy::schema::{Event, Record};

/// How long any wait in these tests may take.
pub const WAIT: Duration = Duration::from_secs(10);

/// A running wsproxy; killed on drop, even when the test fails.
pub struct Proxy {
    child: Child,
    pub addr: SocketAddr,
    events: mpsc::Receiver<Record>,
    pub stderr: mpsc::Receiver<String>,
    pub seen: Vec<Record>,
}

impl Proxy {
    /// Starts `wsproxy --listen 127.0.0.1:0 --format json` with `args`.
    pub fn start(args: &[&str]) -> Proxy {
        let mut child = Command::new(env!("CARGO_BIN_EXE_wsproxy"))
            .args(["--listen", "127.0.0.1:0", "--format", "json"])
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start wsproxy");
        let stdout = child.stdout.take().expect("stdout");
        let stderr = child.stderr.take().expect("stderr");
        let (tx, events) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                // Every line must be a typed event: this is the public format.
                // Strictly: no unknown field, none missing, every type right.
                let record: Record = wsproxy::schema::parse_strict(&line).unwrap_or_else(|e| panic!("{e}"));
                if tx.send(record).is_err() {
                    break;
                }
            }
        });
        let (url, stderr_lines) = announced_url(stderr, "wsproxy");
        let addr = url.split_once("://").map_or(url.as_str(), |(_, a)| a).parse().expect("an address");
        Proxy { child, addr, events, stderr: stderr_lines, seen: Vec::new() }
    }

    /// Waits for the first event (not seen before) that `pred` accepts;
    /// every event on the way is kept in `seen`.
    pub fn wait_for(&mut self, what: &str, pred: impl Fn(&Record) -> bool) -> Record {
        if let Some(r) = self.seen.iter().find(|r| pred(r)) {
            return r.clone();
        }
        let deadline = Instant::now() + WAIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let record = self
                .events
                .recv_timeout(left)
                .unwrap_or_else(|_| panic!("no {what} event within {WAIT:?}; saw: {:#?}", self.seen));
            self.seen.push(record.clone());
            if pred(&record) {
                return record;
            }
        }
    }

    /// Waits for the `end` of connection `conn` and returns all its events.
    pub fn connection(&mut self, conn: u64) -> Vec<Event> {
        self.wait_for("end", |r| r.conn == conn && matches!(r.event, Event::End { .. }));
        self.seen.iter().filter(|r| r.conn == conn).map(|r| r.event.clone()).collect()
    }

    /// Sends SIGTERM and waits for the exit, returning stderr's remaining lines.
    pub fn terminate(mut self) -> (std::process::ExitStatus, Vec<String>) {
        let _ = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status();
        let deadline = Instant::now() + WAIT;
        let status = loop {
            if let Some(s) = self.child.try_wait().expect("wait") {
                break s;
            }
            assert!(Instant::now() < deadline, "wsproxy did not exit after SIGTERM");
            std::thread::sleep(Duration::from_millis(10));
        };
        let lines = self.stderr.try_iter().collect();
        (status, lines)
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Reads a server's stderr on a thread and waits (up to [`WAIT`]) for its
/// `listening on URL` line; returns the URL and the lines that follow.
pub fn announced_url(stderr: std::process::ChildStderr, who: &str) -> (String, mpsc::Receiver<String>) {
    let (tx, lines) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let deadline = Instant::now() + WAIT;
    loop {
        let line = lines
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .unwrap_or_else(|_| panic!("{who} did not announce its address within {WAIT:?}"));
        if let Some(url) = line.strip_prefix("listening on ") {
            return (url.to_owned(), lines);
        }
    }
}

/// Reads from `s` until `buf` ends a complete HTTP head; returns its length.
pub fn read_head(s: &mut TcpStream, buf: &mut Vec<u8>) -> usize {
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            return i + 4;
        }
        let n = s.read(&mut chunk).expect("read head");
        assert!(n > 0, "peer closed before the end of the head: {:?}", String::from_utf8_lossy(buf));
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// Reads until `buf` holds at least `len` bytes.
pub fn read_at_least(s: &mut TcpStream, buf: &mut Vec<u8>, len: usize) {
    let mut chunk = vec![0u8; 65536];
    while buf.len() < len {
        let n = s.read(&mut chunk).expect("read");
        assert!(n > 0, "peer closed after {} of {len} bytes", buf.len());
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// Reads until EOF.
pub fn read_to_end(s: &mut TcpStream, buf: &mut Vec<u8>) {
    let mut chunk = vec![0u8; 65536];
    loop {
        match s.read(&mut chunk) {
            Ok(0) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) => panic!("read: {e}"),
        }
    }
}

/// A raw upstream: accepts one connection (skipping any that closes before
/// sending a byte, such as wsproxy's start-up probe) and runs `script` on it
/// in a thread; `join` returns what the script returns.
pub struct RawUpstream<T> {
    pub addr: SocketAddr,
    pub listener: TcpListener,
    handle: Option<JoinHandle<T>>,
}

impl<T: Send + 'static> RawUpstream<T> {
    pub fn start(script: impl FnOnce(TcpStream) -> T + Send + 'static) -> RawUpstream<T> {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        let accept = listener.try_clone().expect("clone");
        let handle = std::thread::spawn(move || {
            loop {
                let (stream, _) = accept.accept().expect("accept");
                stream.set_read_timeout(Some(WAIT)).expect("timeout");
                // wsproxy's start-up probe connects and closes without a
                // byte: not the connection the script is for.
                if matches!(stream.peek(&mut [0u8; 1]), Ok(0)) {
                    continue;
                }
                return script(stream);
            }
        });
        RawUpstream { addr, listener, handle: Some(handle) }
    }

    pub fn url(&self) -> String {
        format!("ws://{}", self.addr)
    }

    pub fn join(mut self) -> T {
        self.handle.take().expect("once").join().expect("upstream script")
    }
}

/// A client connection to the proxy.
pub fn connect(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect(addr).expect("connect to proxy");
    s.set_read_timeout(Some(WAIT)).expect("timeout");
    s
}

/// A minimal valid upgrade request for `host`.
pub fn upgrade_request(host: &str, path: &str) -> Vec<u8> {
    wsproto::handshake::build_request(host, path, "dGhlIHNhbXBsZSBub25jZQ==", &[], None)
        .expect("valid request arguments")
}

/// The 101 answer to [`upgrade_request`].
pub fn upgrade_response() -> Vec<u8> {
    wsproto::handshake::build_response(&wsproto::handshake::accept_key(b"dGhlIHNhbXBsZSBub25jZQ=="), None, None)
        .expect("valid response arguments")
}

/// One frame.
pub fn frame(opcode: wsproto::OpCode, fin: bool, mask: Option<[u8; 4]>, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let header = wsproto::FrameHeader { fin, mask, ..wsproto::FrameHeader::new(opcode, 0) };
    wsproto::encode_frame(&header, payload, &mut out);
    out
}

pub fn write(s: &mut TcpStream, bytes: &[u8]) {
    s.write_all(bytes).expect("write");
}

/// An upgrade request whose upstream answers `answer` and hangs up: what
/// the client received, and the connection's events.
pub fn answered_with(answer: Vec<u8>) -> (Vec<u8>, Vec<Event>) {
    let upstream = RawUpstream::start(move |mut s| {
        let mut got = Vec::new();
        read_head(&mut s, &mut got);
        write(&mut s, &answer);
    });
    let mut proxy = Proxy::start(&["--upstream", &upstream.url()]);
    let mut c = connect(proxy.addr);
    write(&mut c, &upgrade_request("x", "/"));
    let mut got = Vec::new();
    read_to_end(&mut c, &mut got);
    drop(c);
    upstream.join();
    (got, proxy.connection(1))
}

/// Where the interop peers live (tests/interop: scripts, `.venv`,
/// `node_modules`).
pub fn interop_dir() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/interop")
}

/// Whether a missing interop peer fails the test instead of skipping it
/// (`WSTOOLKIT_REQUIRE_INTEROP=1`, as ci/test.sh sets).
pub fn interop_required() -> bool {
    std::env::var("WSTOOLKIT_REQUIRE_INTEROP").is_ok_and(|v| v == "1")
}

/// `python SCRIPT` (a script in tests/interop) with a Python that has
/// `websockets`: `WSTOOLKIT_PYTHON`, default tests/interop/.venv/bin/python.
/// `None` when there is none.
pub fn python_peer(script: &str) -> Option<Command> {
    let python = std::env::var_os("WSTOOLKIT_PYTHON")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| interop_dir().join(".venv/bin/python"));
    let ok = Command::new(&python)
        .args(["-c", "import websockets"])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    ok.then(|| {
        let mut c = Command::new(python);
        c.arg(interop_dir().join(script));
        c
    })
}

/// `node SCRIPT` (a script in tests/interop) with Node's `ws` from
/// `WSTOOLKIT_NODE_MODULES`, default tests/interop/node_modules (passed on
/// to the script in that variable). `None` when either is missing.
pub fn node_peer(script: &str) -> Option<Command> {
    let modules = std::env::var_os("WSTOOLKIT_NODE_MODULES")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| interop_dir().join("node_modules"));
    let node = Command::new("node").arg("--version").stdout(Stdio::null()).status().is_ok_and(|s| s.success());
    (modules.join("ws").is_dir() && node).then(|| {
        let mut c = Command::new("node");
        c.env("WSTOOLKIT_NODE_MODULES", &modules).arg(interop_dir().join(script));
        c
    })
}
