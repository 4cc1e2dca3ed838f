//! Broken WebSocket clients, each a complete Autobahn fuzzingserver driver:
//! `/getCaseCount`, then `/runCase?case=N&agent=A` for every case (echoing
//! each data message back, as client libraries' drivers do), then
//! `/updateReports?agent=A` (the URL interface of autobahntestsuite's
//! `fuzzing.py`, `FuzzingServerProtocol.onConnect`).
//!
//! Blocking, one connection at a time, std only, like the broken servers.

use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::time::Duration;

use super::{Conn, Next, close_frame, take_frame};

/// How a client is wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientFlaw {
    /// Checks what it must, but never masks its frames (RFC 6455 §5.3: "The
    /// client MUST mask all frames that it sends to the server").
    Unmasked,
    /// Masks, but checks nothing and echoes everything.
    Unchecked,
}

impl ClientFlaw {
    /// Every flaw.
    pub const ALL: [ClientFlaw; 2] = [ClientFlaw::Unmasked, ClientFlaw::Unchecked];

    /// The flaw's name (`unmasked`, `unchecked`).
    pub fn name(self) -> &'static str {
        match self {
            ClientFlaw::Unmasked => "unmasked",
            ClientFlaw::Unchecked => "unchecked",
        }
    }

    /// The flaw with this name.
    pub fn from_name(name: &str) -> Option<ClientFlaw> {
        ClientFlaw::ALL.into_iter().find(|f| f.name() == name)
    }
}

/// How long a client waits for the server to close TCP after the closing
/// handshake (§7.1.1: the server closes first) before closing it itself.
const SERVER_CLOSE_WAIT: Duration = Duration::from_secs(2);
/// How long any one read may block: a case that hangs ends the driver.
const READ_TIMEOUT: Duration = Duration::from_secs(60);

/// Runs every case of the fuzzingserver at `base` (`ws://HOST:PORT`) as
/// `agent`, with `flaw`, and updates its reports. Returns the number of
/// cases run. Errors: the server cannot be reached, refuses an upgrade or
/// sends no case count.
pub fn run_client(base: &str, flaw: ClientFlaw, agent: &str) -> io::Result<u32> {
    let base = base.trim_end_matches('/');
    let url = wsproto::WsUrl::parse(base).map_err(|e| io::Error::other(format!("{base}: {e}")))?;
    let mut driver = Driver { url, flaw, keys: seed() };
    let count = driver.case_count()?;
    for case in 1..=count {
        let (stream, rest) = driver.open(&format!("/runCase?case={case}&agent={agent}"))?;
        // A case's own outcome is the server's to judge: a reset or a
        // timeout here is part of what it observes.
        let _ = driver.echo(stream, rest);
    }
    let (stream, rest) = driver.open(&format!("/updateReports?agent={agent}"))?;
    let _ = driver.echo(stream, rest);
    Ok(count)
}

struct Driver {
    url: wsproto::WsUrl,
    flaw: ClientFlaw,
    /// xorshift64 state for masking keys and handshake nonces (a test
    /// fixture: predictability does not matter here).
    keys: u64,
}

fn seed() -> u64 {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(1, |d| d.as_nanos());
    (nanos as u64 ^ u64::from(std::process::id())) | 1
}

impl Driver {
    fn next(&mut self) -> u64 {
        self.keys ^= self.keys << 13;
        self.keys ^= self.keys >> 7;
        self.keys ^= self.keys << 17;
        self.keys
    }

    /// Connects and completes the opening handshake for `resource`;
    /// returns the stream and the bytes that followed the 101.
    fn open(&mut self, resource: &str) -> io::Result<(TcpStream, Vec<u8>)> {
        let mut stream = TcpStream::connect(self.url.connect_addr())?;
        let _ = stream.set_nodelay(true);
        stream.set_read_timeout(Some(READ_TIMEOUT))?;
        let mut nonce = [0u8; 16];
        nonce[..8].copy_from_slice(&self.next().to_le_bytes());
        nonce[8..].copy_from_slice(&self.next().to_le_bytes());
        let key = wsproto::handshake::encode_key(nonce);
        let request = wsproto::handshake::build_request(&self.url.authority(), resource, &key, &[], None)
            .map_err(|e| io::Error::other(e.to_string()))?;
        stream.write_all(&request)?;
        let mut buf = Vec::new();
        let mut chunk = [0u8; 4096];
        loop {
            let n = stream.read(&mut chunk)?;
            if n == 0 {
                return Err(io::Error::other(format!("{resource}: the server closed during the handshake")));
            }
            buf.extend_from_slice(&chunk[..n]);
            let limits = wsproto::handshake::Limits::default();
            match wsproto::handshake::parse_response(&buf, &limits) {
                Ok(wsproto::Status::Partial) => {}
                Ok(wsproto::Status::Complete((response, used))) => {
                    if response.status != 101 {
                        return Err(io::Error::other(format!("{resource}: answered {}", response.status)));
                    }
                    return Ok((stream, buf.split_off(used)));
                }
                Err(e) => return Err(io::Error::other(format!("{resource}: {e}"))),
            }
        }
    }

    /// `/getCaseCount`: the count comes as a text message, then the
    /// server's close.
    fn case_count(&mut self) -> io::Result<u32> {
        let (mut stream, mut buf) = self.open("/getCaseCount")?;
        let mut chunk = [0u8; 4096];
        loop {
            if let Some((_, payload)) = take_frame(&mut buf) {
                let text = String::from_utf8_lossy(&payload).into_owned();
                let count = text.trim().parse().map_err(|_| io::Error::other(format!("case count {text:?}")))?;
                let _ = self.echo(stream, buf);
                return Ok(count);
            }
            let n = stream.read(&mut chunk)?;
            if n == 0 {
                return Err(io::Error::other("/getCaseCount: closed before the count"));
            }
            buf.extend_from_slice(&chunk[..n]);
        }
    }

    /// The echo loop of one connection: every data message back, pings
    /// answered, the close answered; then the wait for the server to close
    /// TCP.
    fn echo(&mut self, mut stream: TcpStream, mut buf: Vec<u8>) -> io::Result<()> {
        let mut conn = Conn::new(self.flaw != ClientFlaw::Unchecked, false, None);
        let mut chunk = vec![0u8; 64 * 1024];
        let mut out = Vec::new();
        loop {
            let mut end = None;
            while end.is_none() {
                let Some((header, payload)) = take_frame(&mut buf) else { break };
                if header.mask.is_some() && conn.checked {
                    // §5.1: "A client MUST close a connection if it detects
                    // a masked frame."
                    end = Some(Some(1002));
                    break;
                }
                match conn.frame(&header, &payload, &mut out) {
                    Next::Go => {}
                    Next::Fail(code) => end = Some(Some(code)),
                    Next::Closed => end = Some(None),
                }
            }
            if let Some(Some(code)) = end {
                close_frame(code, &mut out);
            }
            if !out.is_empty() {
                let wire = match self.flaw {
                    ClientFlaw::Unmasked => std::mem::take(&mut out),
                    ClientFlaw::Unchecked => self.mask_all(&std::mem::take(&mut out)),
                };
                stream.write_all(&wire)?;
            }
            if end.is_some() {
                stream.set_read_timeout(Some(SERVER_CLOSE_WAIT))?;
                while matches!(stream.read(&mut chunk), Ok(n) if n > 0) {}
                let _ = stream.shutdown(Shutdown::Both);
                return Ok(());
            }
            let n = stream.read(&mut chunk)?;
            if n == 0 {
                return Ok(());
            }
            buf.extend_from_slice(&chunk[..n]);
        }
    }

    /// `frames` (this client's own, unmasked) with each frame masked by a
    /// fresh key.
    fn mask_all(&mut self, mut frames: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(frames.len() + 16);
        while let wsproto::Status::Complete(parsed) = wsproto::parse_header(frames) {
            let total = parsed.header_len + parsed.header.payload_len as usize;
            let mut header = parsed.header;
            header.mask = Some((self.next() as u32).to_be_bytes());
            wsproto::encode_frame(&header, &frames[parsed.header_len..total], &mut out);
            frames = &frames[total..];
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for f in ClientFlaw::ALL {
            assert_eq!(ClientFlaw::from_name(f.name()), Some(f));
        }
        assert_eq!(ClientFlaw::from_name("nope"), None);
    }

    /// A one-connection fuzzingserver stand-in: answers the upgrade, sends
    /// `frames`, and returns what the client sent after its request.
    fn server_sends(flaw: ClientFlaw, frames: Vec<u8>) -> Vec<u8> {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("binds");
        let addr = listener.local_addr().expect("addr");
        let server = std::thread::spawn(move || {
            let (mut s, _) = listener.accept().expect("accepts");
            s.set_read_timeout(Some(Duration::from_secs(5))).expect("timeout");
            let mut got = Vec::new();
            let mut chunk = [0u8; 4096];
            while !got.windows(4).any(|w| w == b"\r\n\r\n") {
                let n = s.read(&mut chunk).expect("reads");
                assert!(n > 0);
                got.extend_from_slice(&chunk[..n]);
            }
            let end = got.windows(4).position(|w| w == b"\r\n\r\n").expect("head") + 4;
            let (request, _) = match wsproto::handshake::parse_request(&got[..end], &Default::default()) {
                Ok(wsproto::Status::Complete(r)) => r,
                other => panic!("{other:?}"),
            };
            let key = request.validate().expect("valid").accept_key();
            s.write_all(&wsproto::handshake::build_response(&key, None, None).expect("ok")).expect("writes");
            s.write_all(&frames).expect("writes");
            let mut after = got.split_off(end);
            while let Ok(n) = s.read(&mut chunk) {
                if n == 0 {
                    break;
                }
                after.extend_from_slice(&chunk[..n]);
                if after.windows(2).any(|w| w[0] == 0x88) {
                    break;
                }
            }
            after
        });
        let mut driver =
            Driver { url: wsproto::WsUrl::parse(&format!("ws://{addr}")).expect("url"), flaw, keys: 0x1234_5678 };
        let (stream, rest) = driver.open("/runCase?case=1&agent=t").expect("opens");
        let _ = driver.echo(stream, rest);
        server.join().expect("server")
    }

    /// (mask, first byte, unmasked payload) of each frame.
    fn frames(mut wire: &[u8]) -> Vec<(bool, u8, Vec<u8>)> {
        let mut out = Vec::new();
        while let wsproto::Status::Complete(parsed) = wsproto::parse_header(wire) {
            let total = parsed.header_len + parsed.header.payload_len as usize;
            let mut payload = wire[parsed.header_len..total.min(wire.len())].to_vec();
            if let Some(key) = parsed.header.mask {
                wsproto::apply_mask(&mut payload, key, 0);
            }
            out.push((parsed.header.mask.is_some(), wire[0], payload));
            wire = &wire[total.min(wire.len())..];
        }
        out
    }

    #[test]
    fn unmasked_echoes_unmasked_and_unchecked_echoes_invalid_utf8_masked() {
        // "Hi", then a text message that is not UTF-8, then a close.
        let sent = vec![0x81, 0x02, b'H', b'i', 0x81, 0x02, 0xc3, 0x28, 0x88, 0x02, 0x03, 0xe8];
        let got = frames(&server_sends(ClientFlaw::Unmasked, sent.clone()));
        assert_eq!(got, [(false, 0x81, b"Hi".to_vec()), (false, 0x88, vec![0x03, 0xef])], "checked: 1007");
        let got = frames(&server_sends(ClientFlaw::Unchecked, sent));
        assert_eq!(
            got,
            [(true, 0x81, b"Hi".to_vec()), (true, 0x81, vec![0xc3, 0x28]), (true, 0x88, vec![0x03, 0xe8])],
            "unchecked: the bad text echoed, the close answered with 1000"
        );
    }
}
