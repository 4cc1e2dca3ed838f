//! Test support: WebSocket echo servers that are wrong on purpose.
//!
//! The native Autobahn engine must give wstest's verdicts where it matters,
//! on servers that fail cases, not only on all-green runs. Each [`Flaw`] is a
//! small, blocking, thread-per-connection echo server that gets one thing
//! wrong in a way Autobahn catches:
//!
//! * [`Flaw::Unchecked`]: checks nothing: echoes reserved bits and opcodes,
//!   invalid UTF-8, fragmented control frames, and answers every close with
//!   1000 (FAILED and WRONG CODE verdicts).
//! * [`Flaw::Lazy`]: checks everything, but UTF-8 only once a message is
//!   complete, and holds its answers until the client has been quiet for
//!   50 ms, so a violation swallows the echoes before it (NON-STRICT
//!   verdicts, whatever the pace of the client's writes).
//! * [`Flaw::Linger`]: right in every frame, but after answering the
//!   client's close it never closes the TCP connection (UNCLEAN verdicts).
//!   (It does close after failing a connection itself: a server that never
//!   does makes wstest wait forever in 6.4.*, whose only timer is gone by
//!   then.)
//! * [`Flaw::Takeover`]: right in every frame, and accepts permessage-deflate
//!   (RFC 7692), but mishandles context takeover: it announces
//!   `server_no_context_takeover` and still keeps its compression window
//!   from one message to the next, so a client that starts each message
//!   with an empty window cannot inflate what refers back (the compression
//!   cases 12.* and 13.* fail, or pass where no message refers back).
//!
//! And clients, for the fuzzingserver's parity gate (wsharness `autobahn
//! serve` against wstest's `-m fuzzingserver`), each a driver that runs
//! every case as client libraries' Autobahn drivers do ([`client`]):
//!
//! * [`ClientFlaw::Unmasked`]: checks what a client must, but sends its
//!   frames unmasked (RFC 6455 §5.3), which a server must refuse (FAILED).
//! * [`ClientFlaw::Unchecked`]: masks, but checks nothing: echoes reserved
//!   bits and opcodes and invalid UTF-8, and answers every close with 1000.
//!
//! This crate is not part of the product: it is a fixture for tests.
//!
//! ```no_run
//! let server = wsbroken::spawn("127.0.0.1:0", wsbroken::Flaw::Lazy)?;
//! println!("listening on ws://{}", server.local_addr());
//! # Ok::<(), std::io::Error>(())
//! ```

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

pub mod client;
pub use client::{ClientFlaw, run_client};

/// How a server is wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flaw {
    /// Checks nothing and echoes everything.
    Unchecked,
    /// Checks UTF-8 late and holds its answers until the client is quiet.
    Lazy,
    /// Never closes the TCP connection after the client's closing handshake.
    Linger,
    /// Says it compresses each message on its own, and does not.
    Takeover,
}

impl Flaw {
    /// Every flaw.
    pub const ALL: [Flaw; 4] = [Flaw::Unchecked, Flaw::Lazy, Flaw::Linger, Flaw::Takeover];

    /// The flaw's name (`unchecked`, `lazy`, `linger`, `takeover`).
    pub fn name(self) -> &'static str {
        match self {
            Flaw::Unchecked => "unchecked",
            Flaw::Lazy => "lazy",
            Flaw::Linger => "linger",
            Flaw::Takeover => "takeover",
        }
    }

    /// The flaw with this name.
    pub fn from_name(name: &str) -> Option<Flaw> {
        Flaw::ALL.into_iter().find(|f| f.name() == name)
    }
}

/// A running server; dropping it stops accepting (open connections end
/// when their peer closes them).
#[derive(Debug)]
pub struct Server {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
}

impl Server {
    /// The address it listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop.
        let _ = TcpStream::connect(self.addr);
    }
}

/// Starts a server with `flaw` on `addr` (port 0 picks a free port).
pub fn spawn(addr: &str, flaw: Flaw) -> io::Result<Server> {
    let listener = TcpListener::bind(addr)?;
    let addr = listener.local_addr()?;
    let stop = Arc::new(AtomicBool::new(false));
    let stopped = Arc::clone(&stop);
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            if stopped.load(Ordering::SeqCst) {
                return;
            }
            if let Ok(stream) = stream {
                std::thread::spawn(move || {
                    let _ = serve(stream, flaw);
                });
            }
        }
    });
    Ok(Server { addr, stop })
}

/// permessage-deflate as [`Flaw::Takeover`] runs it: the client's messages
/// inflated as agreed, its own compressed with the window kept.
struct Pmd {
    inflater: wsproto::deflate::Inflater,
    deflater: wsproto::deflate::Deflater,
}

/// The most a compressed message may inflate to.
const MAX_MESSAGE: u64 = 64 << 20;

/// The answer to the client's first valid permessage-deflate offer, with
/// the lie: `server_no_context_takeover`, whatever was asked.
fn accept_deflate(offers: &[wsproto::handshake::Extension<'_>]) -> Option<(String, Pmd)> {
    use wsproto::{Role, deflate};
    let offer = deflate::DeflateOffer::first_valid(offers)?;
    let mut params = offer.accept();
    params.server_no_context_takeover = true;
    let pmd = Pmd {
        inflater: deflate::Inflater::with_window_bits(
            params.no_context_takeover(Role::Client),
            params.max_window_bits(Role::Client),
            MAX_MESSAGE,
        ),
        // The flaw: the window is kept (no_context_takeover = false).
        deflater: deflate::Deflater::with_window_bits(6, false, params.max_window_bits(Role::Server)),
    };
    Some((params.to_string(), pmd))
}

/// Reads the upgrade request and answers it; returns the bytes after it,
/// and permessage-deflate when this flaw accepts it.
fn handshake(stream: &mut TcpStream, flaw: Flaw) -> io::Result<(Vec<u8>, Option<Pmd>)> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let n = stream.read(&mut chunk)?;
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        buf.extend_from_slice(&chunk[..n]);
        let limits = wsproto::handshake::Limits::default();
        match wsproto::handshake::parse_request(&buf, &limits) {
            Ok(wsproto::Status::Partial) => continue,
            Ok(wsproto::Status::Complete((request, consumed))) => {
                let upgrade = request.validate().map_err(|e| io::Error::other(e.to_string()))?;
                let deflate = if flaw == Flaw::Takeover { accept_deflate(&upgrade.extensions) } else { None };
                let (extensions, pmd) = match deflate {
                    Some((answer, pmd)) => (Some(answer), Some(pmd)),
                    None => (None, None),
                };
                let response = wsproto::handshake::build_response(&upgrade.accept_key(), None, extensions.as_deref())
                    .map_err(|e| io::Error::other(e.to_string()))?;
                stream.write_all(&response)?;
                return Ok((buf[consumed..].to_vec(), pmd));
            }
            Err(e) => return Err(io::Error::other(e.to_string())),
        }
    }
}

/// Takes the next complete frame off the front of `buf`: its header and
/// its payload, unmasked. `None` until a whole frame is there.
fn take_frame(buf: &mut Vec<u8>) -> Option<(wsproto::FrameHeader, Vec<u8>)> {
    let wsproto::Status::Complete(parsed) = wsproto::parse_header(buf) else { return None };
    let total = (parsed.header_len as u64).checked_add(parsed.header.payload_len)?;
    let total = usize::try_from(total).ok().filter(|t| *t <= buf.len())?;
    let mut payload = buf[parsed.header_len..total].to_vec();
    if let Some(key) = parsed.header.mask {
        wsproto::apply_mask(&mut payload, key, 0);
    }
    buf.drain(..total);
    Some((parsed.header, payload))
}

fn frame(opcode: u8, payload: &[u8], out: &mut Vec<u8>) {
    let header = wsproto::FrameHeader::new(wsproto::OpCode::from_u4(opcode), payload.len() as u64);
    wsproto::encode_frame(&header, payload, out);
}

fn close_frame(code: u16, out: &mut Vec<u8>) {
    frame(8, &code.to_be_bytes(), out);
}

/// A close code a peer may send (RFC 6455 §7.4).
fn valid_close_code(code: u16) -> bool {
    matches!(code, 1000..=1003 | 1007..=1011 | 3000..=4999)
}

/// One connection's state (a broken server's or a broken client's: the
/// frame rules do not depend on the role, only the masking of what is
/// sent does, and the caller does that).
struct Conn {
    /// Whether the peer's frames are checked at all.
    checked: bool,
    /// Whether UTF-8 is checked only once a message is complete.
    late_utf8: bool,
    /// The opcode of the message being received, if one is.
    message: Option<u8>,
    data: Vec<u8>,
    utf8: wsproto::Utf8Validator,
    /// permessage-deflate, when negotiated.
    pmd: Option<Pmd>,
    /// The message being received is compressed.
    compressed: bool,
}

/// What to do after a frame.
enum Next {
    Go,
    /// Send a close with this code and stop reading frames.
    Fail(u16),
    /// The peer closed; our answer is queued.
    Closed,
}

impl Conn {
    fn new(checked: bool, late_utf8: bool, pmd: Option<Pmd>) -> Conn {
        Conn {
            checked,
            late_utf8,
            message: None,
            data: Vec::new(),
            utf8: wsproto::Utf8Validator::new(),
            pmd,
            compressed: false,
        }
    }

    fn frame(&mut self, h: &wsproto::FrameHeader, payload: &[u8], out: &mut Vec<u8>) -> Next {
        let opcode = h.opcode.as_u4();
        let checked = self.checked;
        // RFC 7692 §6: RSV1 marks the first frame of a compressed message.
        let compressed_start = self.pmd.is_some() && h.rsv1 && !h.opcode.is_control() && opcode != 0;
        if checked {
            if (h.rsv1 && !compressed_start) || h.rsv2 || h.rsv3 || h.opcode.is_reserved() {
                return Next::Fail(1002);
            }
            if h.opcode.is_control() && (!h.fin || payload.len() > 125) {
                return Next::Fail(1002);
            }
        }
        match opcode {
            8 => {
                let reply = match payload {
                    [] => 1000,
                    [_] => 1002,
                    [a, b, reason @ ..] => {
                        let code = u16::from_be_bytes([*a, *b]);
                        if !valid_close_code(code) {
                            1002
                        } else if std::str::from_utf8(reason).is_err() {
                            1007
                        } else {
                            code
                        }
                    }
                };
                close_frame(if checked { reply } else { 1000 }, out);
                Next::Closed
            }
            9 => {
                frame(10, payload, out);
                Next::Go
            }
            10 => Next::Go,
            _ if h.opcode.is_control() => {
                // Unchecked: a reserved control opcode is echoed as is.
                frame(opcode, payload, out);
                Next::Go
            }
            _ => {
                let start = opcode != 0;
                if checked && start == self.message.is_some() {
                    return Next::Fail(1002);
                }
                if start || self.message.is_none() {
                    self.message = Some(opcode);
                    self.data.clear();
                    self.utf8.reset();
                    self.compressed = compressed_start;
                    if let Some(pmd) = &mut self.pmd
                        && compressed_start
                    {
                        pmd.inflater.begin_message();
                    }
                }
                let text = self.message == Some(1);
                let start_len = self.data.len();
                match &mut self.pmd {
                    Some(pmd) if self.compressed => {
                        let data = &mut self.data;
                        if pmd.inflater.inflate(payload, &mut |b| data.extend_from_slice(b)).is_err() {
                            return Next::Fail(1007);
                        }
                        if h.fin && pmd.inflater.end_message(&mut |b| data.extend_from_slice(b)).is_err() {
                            return Next::Fail(1007);
                        }
                    }
                    _ => self.data.extend_from_slice(payload),
                }
                if checked && text && !self.late_utf8 && self.utf8.feed(&self.data[start_len..]).is_err() {
                    return Next::Fail(1007);
                }
                if h.fin {
                    let opcode = self.message.take().unwrap_or(2);
                    if checked && text && std::str::from_utf8(&self.data).is_err() {
                        return Next::Fail(1007);
                    }
                    // Unchecked: the reserved bits of the last frame go back too.
                    let mut echo = wsproto::FrameHeader::new(wsproto::OpCode::from_u4(opcode), 0);
                    (echo.rsv1, echo.rsv2, echo.rsv3) =
                        if checked { (false, false, false) } else { (h.rsv1, h.rsv2, h.rsv3) };
                    match &mut self.pmd {
                        // Every echo compressed, with the window kept.
                        Some(pmd) => {
                            let mut compressed = Vec::with_capacity(self.data.len() / 2 + 64);
                            pmd.deflater.compress_message(&self.data, &mut compressed);
                            echo.rsv1 = true;
                            wsproto::encode_frame(&echo, &compressed, out);
                        }
                        None => wsproto::encode_frame(&echo, &self.data, out),
                    }
                }
                Next::Go
            }
        }
    }
}

/// How long the connection must be quiet before a lazy server sends what
/// it holds.
const LAZY_IDLE: Duration = Duration::from_millis(50);

fn serve(mut stream: TcpStream, flaw: Flaw) -> io::Result<()> {
    let _ = stream.set_nodelay(true);
    let (mut buf, pmd) = handshake(&mut stream, flaw)?;
    let mut conn = Conn::new(flaw != Flaw::Unchecked, flaw == Flaw::Lazy, pmd);
    let mut chunk = vec![0u8; 64 * 1024];
    let mut done = false;
    // Whether the closing handshake was the client's (which a lingering
    // server then never ends).
    let mut answered_close = false;
    // A lazy server holds its answers until the client has been quiet for
    // LAZY_IDLE, and a violation before then swallows them.
    let mut held = Vec::new();
    loop {
        let mut end = None;
        // Once closing, nothing more is read as frames.
        while !done && end.is_none() {
            let Some((header, payload)) = take_frame(&mut buf) else { break };
            match conn.frame(&header, &payload, &mut held) {
                Next::Go => {}
                Next::Fail(code) => end = Some(Some(code)),
                Next::Closed => end = Some(None),
            }
            if flaw != Flaw::Lazy {
                stream.write_all(&std::mem::take(&mut held))?;
            }
        }
        match end {
            Some(Some(code)) => {
                held.clear();
                close_frame(code, &mut held);
                stream.write_all(&std::mem::take(&mut held))?;
                done = true;
            }
            Some(None) => {
                stream.write_all(&std::mem::take(&mut held))?;
                done = true;
                answered_close = true;
            }
            None => {}
        }
        if done && !(flaw == Flaw::Linger && answered_close) {
            // Give the peer's close a moment to arrive, then close TCP.
            let _ = stream.set_read_timeout(Some(Duration::from_millis(200)));
            let _ = stream.read(&mut chunk);
            let _ = stream.shutdown(Shutdown::Both);
            return Ok(());
        }
        let _ = stream.set_read_timeout(if held.is_empty() { None } else { Some(LAZY_IDLE) });
        let n = match stream.read(&mut chunk) {
            Ok(n) => n,
            Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => {
                stream.write_all(&std::mem::take(&mut held))?;
                continue;
            }
            Err(e) => return Err(e),
        };
        if n == 0 {
            return Ok(());
        }
        if !done {
            buf.extend_from_slice(&chunk[..n]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for f in Flaw::ALL {
            assert_eq!(Flaw::from_name(f.name()), Some(f));
        }
        assert_eq!(Flaw::from_name("nope"), None);
    }

    fn exchange(flaw: Flaw, frames: &[u8]) -> Vec<u8> {
        let server = spawn("127.0.0.1:0", flaw).expect("binds");
        let mut s = TcpStream::connect(server.local_addr()).expect("connects");
        let request = wsproto::handshake::build_request("x", "/", "dGhlIHNhbXBsZSBub25jZQ==", &[], None).expect("ok");
        s.write_all(&request).expect("writes");
        s.write_all(frames).expect("writes");
        s.set_read_timeout(Some(Duration::from_secs(2))).expect("timeout");
        let mut got = Vec::new();
        let mut chunk = [0u8; 4096];
        while let Ok(n) = s.read(&mut chunk) {
            if n == 0 {
                break;
            }
            got.extend_from_slice(&chunk[..n]);
            if got.windows(2).any(|w| w[0] == 0x88 && w[1] == 0x02) {
                break;
            }
        }
        let end = got.windows(4).position(|w| w == b"\r\n\r\n").expect("101") + 4;
        got[end..].to_vec()
    }

    #[test]
    fn unchecked_echoes_reserved_bits_and_lazy_swallows_the_echo_before_a_violation() {
        // "Hi" (text), then "Hi" with RSV2, masked with a zero key.
        let frames = [0x81, 0x82, 0, 0, 0, 0, b'H', b'i', 0xA1, 0x82, 0, 0, 0, 0, b'H', b'i'];
        let got = exchange(Flaw::Unchecked, &frames);
        assert!(got.starts_with(&[0x81, 0x02, b'H', b'i', 0xA1, 0x02, b'H', b'i']), "{got:02x?}");
        let got = exchange(Flaw::Lazy, &frames);
        assert_eq!(got[..4], [0x88, 0x02, 0x03, 0xea], "a close 1002 and nothing before it: {got:02x?}");
        let got = exchange(Flaw::Linger, &frames);
        assert!(got.starts_with(&[0x81, 0x02, b'H', b'i', 0x88, 0x02, 0x03, 0xea]), "{got:02x?}");
    }

    #[test]
    fn takeover_announces_no_context_takeover_and_keeps_its_window() {
        use wsproto::deflate::{Deflater, Inflater};
        let server = spawn("127.0.0.1:0", Flaw::Takeover).expect("binds");
        let mut s = TcpStream::connect(server.local_addr()).expect("connects");
        let key = "dGhlIHNhbXBsZSBub25jZQ==";
        let request = wsproto::handshake::build_request("x", "/", key, &[], Some("permessage-deflate")).expect("ok");
        s.write_all(&request).expect("writes");
        // The same message twice, compressed on its own each time, masked
        // with a zero key.
        let message = b"a message that the second echo can refer back to";
        let mut deflater = Deflater::new(6, true);
        for _ in 0..2 {
            let mut payload = Vec::new();
            deflater.compress_message(message, &mut payload);
            let mut header = wsproto::FrameHeader::new(wsproto::OpCode::Text, payload.len() as u64);
            header.rsv1 = true;
            header.mask = Some([0; 4]);
            let mut frame = Vec::new();
            wsproto::encode_frame(&header, &payload, &mut frame);
            s.write_all(&frame).expect("writes");
        }
        s.set_read_timeout(Some(Duration::from_secs(2))).expect("timeout");
        let mut got = Vec::new();
        let mut chunk = [0u8; 4096];
        let mut echoes = Vec::new();
        while echoes.len() < 2 {
            let n = s.read(&mut chunk).expect("reads");
            assert!(n > 0, "closed early: {got:02x?}");
            got.extend_from_slice(&chunk[..n]);
            let Some(end) = got.windows(4).position(|w| w == b"\r\n\r\n") else { continue };
            let head = String::from_utf8_lossy(&got[..end]).into_owned();
            assert!(
                head.contains("Sec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover"),
                "{head}"
            );
            let mut rest = &got[end + 4..];
            echoes.clear();
            while let wsproto::Status::Complete(parsed) = wsproto::parse_header(rest) {
                let total = parsed.header_len + parsed.header.payload_len as usize;
                if rest.len() < total {
                    break;
                }
                assert!(parsed.header.rsv1, "every echo compressed");
                echoes.push(rest[parsed.header_len..total].to_vec());
                rest = &rest[total..];
            }
        }
        // Inflated as announced, each on its own: the second refers back to
        // the first and cannot be read.
        let inflate = |payload: &[u8]| {
            let mut inflater = Inflater::new(true, 1 << 20);
            let mut out = Vec::new();
            inflater.begin_message();
            inflater.inflate(payload, &mut |b| out.extend_from_slice(b))?;
            inflater.end_message(&mut |b| out.extend_from_slice(b)).map(|_| out)
        };
        assert_eq!(inflate(&echoes[0]).expect("the first echo inflates"), message);
        assert!(inflate(&echoes[1]).is_err(), "the second echo needs the first one's window");
    }
}
