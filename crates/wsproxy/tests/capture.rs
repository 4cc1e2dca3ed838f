//! `--pcap`: the capture holds exactly the bytes each side sent, as a TCP
//! conversation whose sequence numbers add up; Wireshark's dissector (when
//! `tshark` is on the PATH, as in `ci/test.sh`) reads the same frames as
//! the proxy's log.

mod common;

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use common::{Proxy, RawUpstream, connect, frame};
use wsproto::OpCode;
use wsproxy::schema::{Event, Opcode, Record, Side};

/// "Hello" compressed (RFC 7692 §7.2.3.1).
const HELLO_DEFLATED: [u8; 7] = [0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00];

/// A frame with RSV1 set (a compressed message's first frame).
fn compressed(mask: Option<[u8; 4]>, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let header = wsproto::FrameHeader { fin: true, rsv1: true, mask, ..wsproto::FrameHeader::new(OpCode::Text, 0) };
    wsproto::encode_frame(&header, payload, &mut out);
    out
}

/// What each side sent in [`session`].
struct Sent {
    client: Vec<u8>,
    upstream: Vec<u8>,
}

/// A connection the test writes and reads: plain TCP or TLS over it.
trait Conn: Read + Write + Send {
    /// Ends what this side sends (TLS: close_notify, then the TCP FIN).
    fn finish(&mut self);
}

impl Conn for TcpStream {
    fn finish(&mut self) {
        self.shutdown(Shutdown::Write).expect("shutdown");
    }
}

impl<C, D> Conn for rustls::StreamOwned<C, TcpStream>
where
    C: std::ops::DerefMut<Target = rustls::ConnectionCommon<D>> + Send,
    D: rustls::SideData,
{
    fn finish(&mut self) {
        self.conn.send_close_notify();
        let _ = self.flush();
        let _ = self.sock.shutdown(Shutdown::Write);
    }
}

/// Reads until `buf` holds at least `len` bytes.
fn read_at_least(s: &mut dyn Conn, buf: &mut Vec<u8>, len: usize) {
    let mut chunk = vec![0u8; 65536];
    while buf.len() < len {
        let n = s.read(&mut chunk).expect("read");
        assert!(n > 0, "peer closed after {} of {len} bytes", buf.len());
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// Reads until `buf` ends a head; returns its length.
fn read_head(s: &mut dyn Conn, buf: &mut Vec<u8>) -> usize {
    loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            return i + 4;
        }
        let len = buf.len() + 1;
        read_at_least(s, buf, len);
    }
}

/// Reads until the end of the stream (a TLS peer's TCP FIN counts).
fn read_to_end(s: &mut dyn Conn) {
    let mut chunk = vec![0u8; 65536];
    loop {
        match s.read(&mut chunk) {
            Ok(0) => return,
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return,
            Err(e) => panic!("read: {e}"),
        }
    }
}

/// Certificates for `localhost` and 127.0.0.1, signed by a test CA: the
/// CA file, the certificate and the key (PEM), in `dir`.
fn pki(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = CertifiedIssuer::self_signed(params, KeyPair::generate().expect("key")).expect("CA");
    let key = KeyPair::generate().expect("key");
    let leaf = CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()]).expect("params");
    let cert = leaf.signed_by(&key, &ca).expect("sign");
    let paths = (dir.join("ca.pem"), dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&paths.0, ca.pem()).expect("write");
    std::fs::write(&paths.1, cert.pem()).expect("write");
    std::fs::write(&paths.2, key.serialize_pem()).expect("write");
    paths
}

/// The upstream of the scripted session: answers the upgrade with
/// permessage-deflate, waits for the client's frames, sends its own, reads
/// to the end; returns what it sent.
fn scripted_upstream(server_tls: Option<Arc<rustls::ServerConfig>>) -> RawUpstream<Vec<u8>> {
    let mut upstream_sent = upstream_frames();
    let expected_from_client = client_frames().len();
    RawUpstream::start(move |tcp| {
        let mut s: Box<dyn Conn> = match server_tls {
            Some(config) => {
                Box::new(rustls::StreamOwned::new(rustls::ServerConnection::new(config).expect("TLS server"), tcp))
            }
            None => Box::new(tcp),
        };
        let mut got = Vec::new();
        let head = read_head(&mut *s, &mut got);
        let mut sent = wsproto::handshake::build_response(
            &wsproto::handshake::accept_key(b"dGhlIHNhbXBsZSBub25jZQ=="),
            None,
            Some("permessage-deflate"),
        )
        .expect("response");
        s.write_all(&sent).expect("write");
        read_at_least(&mut *s, &mut got, head + expected_from_client);
        s.write_all(&upstream_sent).expect("write");
        sent.append(&mut upstream_sent);
        read_to_end(&mut *s);
        s.finish();
        sent
    })
}

/// The client of the scripted session on `c`: the upgrade, its frames one
/// write each, then, once the upstream's frames are in, its own end;
/// returns what it sent.
fn scripted_client(c: &mut dyn Conn) -> Vec<u8> {
    let mut client_sent =
        wsproto::handshake::build_request("x", "/", "dGhlIHNhbXBsZSBub25jZQ==", &[], Some("permessage-deflate"))
            .expect("request");
    c.write_all(&client_sent).expect("write");
    let mut got = Vec::new();
    let head = read_head(c, &mut got);
    let frames = client_frames();
    // Frame by frame: separate reads, separate packets.
    for f in split_frames(&frames) {
        c.write_all(f).expect("write");
        c.flush().expect("flush");
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    client_sent.extend_from_slice(&frames);
    // The upstream's frames, its close last; then the client closes too.
    read_at_least(c, &mut got, head + upstream_frames().len());
    c.finish();
    read_to_end(c);
    client_sent
}

/// A scripted WebSocket session through a proxy started with `args` (and
/// `--max-preview all`), over TLS on both legs when `tls`:
/// permessage-deflate negotiated; from the client text, binary, a
/// fragmented text, a compressed text, a ping, a binary message larger
/// than a segment, a close; from the upstream text, a compressed text, the
/// pong, a fragmented binary, the close. Returns the log and what each
/// side sent; the proxy has exited, so the capture is complete.
fn session(args: &[&str], tls: bool) -> (Vec<Record>, Sent) {
    static SESSIONS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let dir = temp(&format!("pki-{}", SESSIONS.fetch_add(1, std::sync::atomic::Ordering::Relaxed)));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let (ca, cert, key) = pki(&dir);
    let server_tls = tls.then(|| wsproxy::tls::server_config(&cert, &key).expect("server config"));
    let upstream = scripted_upstream(server_tls);
    let scheme = if tls { "wss" } else { "ws" };
    let mut all = vec!["--upstream".to_string(), format!("{scheme}://{}", upstream.addr)];
    all.extend(["--max-preview", "all"].map(String::from));
    if tls {
        for (flag, path) in [("--upstream-ca", &ca), ("--tls-cert", &cert), ("--tls-key", &key)] {
            all.extend([flag.to_string(), path.to_str().expect("utf-8").to_string()]);
        }
    }
    all.extend(args.iter().map(|a| a.to_string()));
    let all: Vec<&str> = all.iter().map(String::as_str).collect();
    let mut proxy = Proxy::start(&all);
    let tcp = connect(proxy.addr);
    let mut c: Box<dyn Conn> = if tls {
        let mut roots = rustls::RootCertStore::empty();
        use rustls::pki_types::pem::PemObject;
        roots.add(rustls::pki_types::CertificateDer::from_pem_file(&ca).expect("CA")).expect("add CA");
        let config = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_root_certificates(roots)
            .with_no_client_auth();
        let name = rustls::pki_types::ServerName::try_from("localhost").expect("name");
        let conn = rustls::ClientConnection::new(Arc::new(config), name).expect("TLS client");
        Box::new(rustls::StreamOwned::new(conn, tcp))
    } else {
        Box::new(tcp)
    };
    let client_sent = scripted_client(&mut *c);
    drop(c);
    let upstream_sent = upstream.join();
    proxy.connection(1);
    let seen = proxy.seen.clone();
    let (status, _) = proxy.terminate();
    assert!(status.success());
    (seen, Sent { client: client_sent, upstream: upstream_sent })
}

fn client_frames() -> Vec<u8> {
    let m = Some([1, 2, 3, 4]);
    let big: Vec<u8> = (0..5000u32).map(|i| (i % 251) as u8).collect();
    [
        frame(OpCode::Text, true, m, "héllo".as_bytes()),
        frame(OpCode::Binary, true, m, &[0, 1, 2, 255]),
        frame(OpCode::Text, false, m, b"frag"),
        frame(OpCode::Continuation, true, m, b"mented"),
        compressed(m, &HELLO_DEFLATED),
        frame(OpCode::Ping, true, m, b"p1"),
        frame(OpCode::Binary, true, m, &big),
        frame(OpCode::Close, true, m, &[0x03, 0xe8, b'b', b'y', b'e']),
    ]
    .concat()
}

fn upstream_frames() -> Vec<u8> {
    [
        frame(OpCode::Text, true, None, b"hi"),
        compressed(None, &HELLO_DEFLATED),
        frame(OpCode::Pong, true, None, b"p1"),
        frame(OpCode::Binary, false, None, &[9, 8]),
        frame(OpCode::Continuation, true, None, &[7]),
        frame(OpCode::Close, true, None, &[0x03, 0xe8]),
    ]
    .concat()
}

/// `bytes` cut at frame boundaries.
fn split_frames(mut bytes: &[u8]) -> Vec<&[u8]> {
    let mut out = Vec::new();
    while !bytes.is_empty() {
        let wsproto::Status::Complete(p) = wsproto::parse_header(bytes) else { panic!("a partial frame") };
        let len = p.header_len + p.header.payload_len as usize;
        out.push(&bytes[..len]);
        bytes = &bytes[len..];
    }
    out
}

fn temp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("wsproxy-capture-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir.join(name)
}

/// One TCP packet of a capture.
#[derive(Debug)]
struct Packet {
    src: SocketAddr,
    dst: SocketAddr,
    seq: u32,
    ack: Option<u32>,
    syn: bool,
    fin: bool,
    rst: bool,
    payload: Vec<u8>,
    comment: Option<String>,
}

/// The TCP packets of a pcapng file of link type RAW.
fn packets(path: &Path) -> Vec<Packet> {
    use pcap_file::pcapng::{Block, PcapNgReader};
    let file = std::fs::File::open(path).expect("open capture");
    let mut reader = PcapNgReader::new(file).expect("a pcapng file");
    let mut out = Vec::new();
    while let Some(block) = reader.next_block() {
        let Block::EnhancedPacket(epb) = block.expect("a valid block") else { continue };
        let sliced = etherparse::SlicedPacket::from_ip(&epb.data).expect("an IP packet");
        let (src_ip, dst_ip): (std::net::IpAddr, std::net::IpAddr) = match sliced.net.expect("IP") {
            etherparse::NetSlice::Ipv4(v4) => (v4.header().source_addr().into(), v4.header().destination_addr().into()),
            etherparse::NetSlice::Ipv6(v6) => (v6.header().source_addr().into(), v6.header().destination_addr().into()),
            _ => panic!("not IP"),
        };
        let Some(etherparse::TransportSlice::Tcp(tcp)) = sliced.transport else { panic!("not TCP") };
        let comment = epb.options.iter().find_map(|o| match o {
            pcap_file::pcapng::blocks::enhanced_packet::EnhancedPacketOption::Comment(c) => Some(c.to_string()),
            _ => None,
        });
        out.push(Packet {
            src: SocketAddr::new(src_ip, tcp.source_port()),
            dst: SocketAddr::new(dst_ip, tcp.destination_port()),
            seq: tcp.sequence_number(),
            ack: tcp.ack().then(|| tcp.acknowledgment_number()),
            syn: tcp.syn(),
            fin: tcp.fin(),
            rst: tcp.rst(),
            payload: tcp.payload().to_vec(),
            comment,
        });
    }
    out
}

#[test]
fn the_capture_holds_each_sides_bytes_as_a_consistent_tcp_conversation() {
    consistent_tcp_conversation(false);
}

#[test]
fn over_tls_on_both_legs_the_capture_holds_the_plaintext() {
    consistent_tcp_conversation(true);
}

fn consistent_tcp_conversation(tls: bool) {
    let pcap = temp(if tls { "session-tls.pcapng" } else { "session.pcapng" });
    let (log, sent) = session(&["--pcap", pcap.to_str().expect("utf-8")], tls);
    let Some(Event::Open { client, upstream }) = log.iter().map(|r| &r.event).find(|e| matches!(e, Event::Open { .. }))
    else {
        panic!("no open event")
    };
    let client: SocketAddr = client.parse().expect("client address");
    let upstream: SocketAddr = upstream.parse().expect("upstream address");
    let packets = packets(&pcap);
    // The handshake, with the connection's comment on the SYN.
    assert!(packets[0].syn && packets[0].ack.is_none() && packets[0].src == client && packets[0].dst == upstream);
    let comment = packets[0].comment.as_deref().expect("a comment on the SYN");
    assert!(comment.starts_with("wsproxy connection 1: client"), "{comment}");
    assert_eq!(comment.contains("both legs were TLS: these are the decrypted bytes"), tls, "{comment}");
    assert!(packets[1].syn && packets[1].ack == Some(packets[0].seq.wrapping_add(1)));
    // Every packet continues its side's sequence and acknowledges no more
    // than the other side sent; the payloads are what each side sent.
    let mut next: HashMap<SocketAddr, u32> = HashMap::new();
    let mut streams: HashMap<SocketAddr, Vec<u8>> = HashMap::new();
    let mut fins = Vec::new();
    for p in &packets {
        assert!(!p.rst, "no reset in a connection that closed cleanly");
        assert!(p.payload.len() <= 1460, "a segment larger than the MSS");
        if let Some(&n) = next.get(&p.src) {
            assert_eq!(p.seq, n, "a gap or overlap in {:?}'s sequence", p.src);
        }
        if let (Some(ack), Some(&other)) = (p.ack, next.get(&p.dst)) {
            assert_eq!(ack, other, "{:?} acknowledges what the other side sent so far", p.src);
        }
        let len = p.payload.len() as u32 + u32::from(p.syn) + u32::from(p.fin);
        next.insert(p.src, p.seq.wrapping_add(len));
        streams.entry(p.src).or_default().extend_from_slice(&p.payload);
        if p.fin {
            fins.push(p.src);
        }
    }
    assert_eq!(streams[&client], sent.client, "the client's bytes as it sent them");
    assert_eq!(streams[&upstream], sent.upstream, "the upstream's bytes as it sent them");
    fins.sort();
    let mut both = vec![client, upstream];
    both.sort();
    assert_eq!(fins, both, "a FIN from each side");
}

/// Hex bytes as tshark writes them (`aa:bb`) or as the log does (`aabb`).
fn unhex(s: &str) -> Vec<u8> {
    let s: String = s.chars().filter(|c| c.is_ascii_hexdigit()).collect();
    (0..s.len() / 2).map(|i| u8::from_str_radix(&s[2 * i..2 * i + 2], 16).expect("hex")).collect()
}

fn opcode_number(op: &Opcode) -> u8 {
    op.number().unwrap_or_else(|| panic!("opcode {op:?}"))
}

/// What a reader of the traffic saw, per side ([`Side::index`] order:
/// client, upstream): each frame's header, each whole message's payload
/// (inflated, reassembled), each control frame's payload, the closes.
#[derive(Debug, Default, PartialEq)]
struct Seen {
    /// (opcode, fin, rsv1, masking key in hex or empty, payload length).
    frames: [Vec<(u8, bool, bool, String, u64)>; 2],
    /// Text messages, binary messages (hex).
    texts: [Vec<String>; 2],
    binaries: [Vec<String>; 2],
    /// Ping and pong payloads (hex).
    controls: [Vec<String>; 2],
    /// Close code and reason.
    closes: [Vec<(Option<u16>, String)>; 2],
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|b| format!("{b:02x}")).collect()
}

fn seen_in_log(log: &[Record]) -> Seen {
    use wsproxy::schema::Side;
    let mut seen = Seen::default();
    let payload = |preview: &str, encoding: &str| {
        if encoding == "hex" { unhex(preview) } else { preview.as_bytes().to_vec() }
    };
    for r in log {
        match &r.event {
            Event::Frame { from, fin, rsv1, opcode, mask, len, preview, preview_encoding, .. } => {
                let i = usize::from(*from == Side::Upstream);
                let op = opcode_number(opcode);
                seen.frames[i].push((op, *fin, *rsv1, mask.clone().unwrap_or_default(), *len));
                if op == 9 || op == 10 {
                    seen.controls[i].push(hex(&payload(preview, preview_encoding)));
                }
            }
            Event::Message { from, kind, preview, preview_encoding, preview_truncated, .. } => {
                assert!(!preview_truncated, "--max-preview all");
                let i = usize::from(*from == Side::Upstream);
                let bytes = payload(preview, preview_encoding);
                match kind.as_str() {
                    "text" => seen.texts[i].push(String::from_utf8(bytes).expect("text")),
                    _ => seen.binaries[i].push(hex(&bytes)),
                }
            }
            Event::Close { from, code, reason, .. } => {
                let i = usize::from(*from == Side::Upstream);
                seen.closes[i].push((*code, reason.clone()));
            }
            _ => {}
        }
    }
    seen
}

/// What `tshark -T json` (Wireshark's dissectors) saw in `pcap`, whose
/// server listens on `server_port`.
fn seen_by_tshark(pcap: &Path, server_port: &str) -> Seen {
    let out = Command::new("tshark")
        .args(["-r", pcap.to_str().expect("utf-8"), "-d", &format!("tcp.port=={server_port},http")])
        .args(["-Y", "websocket", "-T", "json", "--no-duplicate-keys", "-J", "tcp websocket data"])
        .output()
        .expect("run tshark");
    assert!(out.status.success(), "tshark failed: {}", String::from_utf8_lossy(&out.stderr));
    let packets: serde_json::Value = serde_json::from_slice(&out.stdout).expect("tshark's JSON");
    let list = |v: Option<&serde_json::Value>| -> Vec<serde_json::Value> {
        match v {
            Some(serde_json::Value::Array(a)) => a.clone(),
            Some(v) => vec![v.clone()],
            None => vec![],
        }
    };
    let field = |v: &serde_json::Value, k: &str| v.get(k).and_then(|f| f.as_str()).unwrap_or("").to_owned();
    let mut seen = Seen::default();
    for p in packets.as_array().expect("a list of packets") {
        let layers = &p["_source"]["layers"];
        let i = usize::from(field(&layers["tcp"], "tcp.srcport") == server_port);
        for ws in list(layers.get("websocket")) {
            let op: u8 = field(&ws, "websocket.opcode").parse().expect("opcode");
            let rsv = u8::from_str_radix(field(&ws, "websocket.rsv").trim_start_matches("0x"), 16).expect("rsv");
            let len = match field(&ws, "websocket.payload_length").parse().expect("length") {
                126 => field(&ws, "websocket.payload_length_ext_16").parse().expect("16-bit length"),
                127 => field(&ws, "websocket.payload_length_ext_64").parse().expect("64-bit length"),
                n => n,
            };
            let mask = field(&ws, "websocket.masking_key").replace(':', "");
            seen.frames[i].push((op, field(&ws, "websocket.fin") == "1", rsv & 4 != 0, mask, len));
            let payload = &ws["websocket.payload"];
            if let Some(text) = payload.get("websocket.payload.text").and_then(|t| t.as_str()) {
                seen.texts[i].push(text.to_owned());
            }
            for key in ["websocket.payload.ping", "websocket.payload.pong"] {
                if let Some(p) = payload.get(key).and_then(|t| t.as_str()) {
                    seen.controls[i].push(hex(&unhex(p)));
                }
            }
            if (op == 9 || op == 10) && !payload.is_object() {
                // An empty payload.
                seen.controls[i].push(String::new());
            }
            if let Some(close) = payload.get("websocket.payload.close") {
                let code = close.get("websocket.payload.close.status_code").and_then(|c| c.as_str());
                let reason = close.get("websocket.payload.close.reason").and_then(|c| c.as_str());
                seen.closes[i].push((code.map(|c| c.parse().expect("code")), reason.unwrap_or("").to_owned()));
            }
        }
        for data in list(layers.get("data")) {
            seen.binaries[i].push(hex(&unhex(&field(&data, "data.data"))));
        }
    }
    seen
}

/// Whether `tshark` can run; without it the test is skipped, unless
/// `WSTOOLKIT_REQUIRE_TSHARK` is set (as `ci/test.sh` does).
fn tshark_installed() -> bool {
    if Command::new("tshark").arg("--version").output().is_ok() {
        return true;
    }
    assert!(std::env::var_os("WSTOOLKIT_REQUIRE_TSHARK").is_none(), "tshark is required but not installed");
    eprintln!("tshark is not installed: skipped (ci/test.sh installs it)");
    false
}

/// Wireshark reads the capture as the proxy read the traffic: the same
/// frames (opcode, FIN, RSV1, masking key, length), the same messages
/// (reassembled, inflated), ping and pong payloads and closes, each side's
/// in the order it sent them; and its TCP analysis flags no packet.
/// Skipped when `tshark` is not installed (`ci/test.sh` installs it).
#[test]
fn tshark_reads_the_same_frames_as_the_log() {
    tshark_agrees(false);
}

/// The same over TLS on both legs: the capture holds the plaintext.
#[test]
fn tshark_reads_the_same_frames_as_the_log_over_tls() {
    tshark_agrees(true);
}

fn tshark_agrees(tls: bool) {
    if !tshark_installed() {
        return;
    }
    let pcap = temp(if tls { "tshark-tls.pcapng" } else { "tshark.pcapng" });
    let (log, _) = session(&["--pcap", pcap.to_str().expect("utf-8")], tls);
    let upstream_port = log
        .iter()
        .find_map(|r| match &r.event {
            Event::Open { upstream, .. } => upstream.rsplit_once(':').map(|(_, p)| p.to_owned()),
            _ => None,
        })
        .expect("open");
    let logged = seen_in_log(&log);
    let dissected = seen_by_tshark(&pcap, &upstream_port);
    println!(
        "tshark saw {} + {} frames, texts {:?}, {} + {} binary messages, pings/pongs {:?}, closes {:?}",
        dissected.frames[0].len(),
        dissected.frames[1].len(),
        dissected.texts,
        dissected.binaries[0].len(),
        dissected.binaries[1].len(),
        dissected.controls,
        dissected.closes
    );
    assert_eq!(dissected.frames[0].len() + dissected.frames[1].len(), 14);
    assert_eq!(dissected, logged, "tshark (left) and the log (right) disagree");
    let flagged = Command::new("tshark")
        .args(["-r", pcap.to_str().expect("utf-8"), "-Y", "tcp.analysis.flags", "-T", "fields", "-e", "frame.number"])
        .output()
        .expect("run tshark");
    assert_eq!(String::from_utf8_lossy(&flagged.stdout).trim(), "", "tshark's TCP analysis flags packets");
}

/// Runs `wsproxy read` with `args`; returns its exit status, its events
/// (parsed strictly) and its stderr.
fn read_capture(args: &[&str]) -> (std::process::ExitStatus, Vec<Record>, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_wsproxy"))
        .arg("read")
        .args(args)
        .args(["--format", "json", "--max-preview", "all"])
        .output()
        .expect("run wsproxy read");
    let stdout = String::from_utf8(out.stdout).expect("utf-8");
    let records = stdout.lines().map(|l| wsproxy::schema::parse_strict(l).unwrap_or_else(|e| panic!("{e}"))).collect();
    (out.status, records, String::from_utf8_lossy(&out.stderr).into_owned())
}

/// An event as JSON without what depends on the clock it was read by:
/// `ts`, `duration_us`, `rtt_us`.
fn timeless(r: &Record) -> String {
    let mut v = serde_json::to_value(r).expect("json");
    if let Some(o) = v.as_object_mut() {
        for k in ["ts", "duration_us", "rtt_us"] {
            o.remove(k);
        }
    }
    v.to_string()
}

/// Each side's events in order, and the connection's own (open, end).
fn by_side(records: &[Record]) -> [Vec<String>; 3] {
    let mut out: [Vec<String>; 3] = Default::default();
    for r in records {
        let v = serde_json::to_value(r).expect("json");
        let i = match v.get("from").and_then(|f| f.as_str()) {
            Some("client") => 0,
            Some("upstream") => 1,
            _ => 2,
        };
        out[i].push(timeless(r));
    }
    out
}

/// Round trip: `wsproxy read` of the proxy's own capture gives the live
/// log's events, the capture's timestamps aside (each side's in the order
/// it sent them; the live log interleaves the two directions by batch).
#[test]
fn reading_the_capture_gives_the_live_events() {
    for tls in [false, true] {
        let pcap = temp(if tls { "round-trip-tls.pcapng" } else { "round-trip.pcapng" });
        let (live, _) = session(&["--pcap", pcap.to_str().expect("utf-8")], tls);
        let (status, read, stderr) = read_capture(&[pcap.to_str().expect("utf-8")]);
        assert!(status.success(), "{stderr}");
        assert!(stderr.contains("1 connection"), "{stderr}");
        assert_eq!(by_side(&read), by_side(&live), "tls: {tls}");
        // The capture's timestamps are the live ones.
        let stamps = |rs: &[Record]| {
            let mut s: Vec<(String, String)> = rs
                .iter()
                .filter(|r| !matches!(r.event, Event::End { .. } | Event::Open { .. }))
                .map(|r| (r.ts.clone(), timeless(r)))
                .collect();
            s.sort();
            s
        };
        assert_eq!(stamps(&read), stamps(&live));
    }
}

/// The packets of a pcapng file written by wsproxy (RAW link type), as
/// (timestamp, IP packet).
fn raw_packets(path: &Path) -> Vec<(std::time::Duration, Vec<u8>)> {
    use pcap_file::pcapng::{Block, PcapNgReader};
    let mut reader = PcapNgReader::new(std::fs::File::open(path).expect("open")).expect("pcapng");
    let mut out = Vec::new();
    while let Some(block) = reader.next_block() {
        if let Block::EnhancedPacket(epb) = block.expect("block") {
            // wsproxy writes nanosecond ticks, which pcap-file reads as such.
            out.push((epb.timestamp, epb.data.to_vec()));
        }
    }
    out
}

/// Writes `packets` (IP packets) as a classic pcap file with Ethernet
/// headers, as tcpdump writes them.
fn write_ethernet_pcap(path: &Path, packets: &[(std::time::Duration, Vec<u8>)]) {
    use pcap_file::pcap::{PcapHeader, PcapPacket, PcapWriter};
    let header = PcapHeader { datalink: pcap_file::DataLink::ETHERNET, ..PcapHeader::default() };
    let mut w = PcapWriter::with_header(std::fs::File::create(path).expect("create"), header).expect("pcap");
    for (ts, ip) in packets {
        let ethertype: [u8; 2] = if ip[0] >> 4 == 6 { [0x86, 0xdd] } else { [0x08, 0x00] };
        let frame = [&[2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2][..], &ethertype, ip].concat();
        w.write_packet(&PcapPacket::new(*ts, frame.len() as u32, &frame)).expect("write");
    }
}

fn tcp_payload_len(ip: &[u8]) -> usize {
    let sliced = etherparse::SlicedPacket::from_ip(ip).expect("IP");
    match sliced.transport {
        Some(etherparse::TransportSlice::Tcp(t)) => t.payload().len(),
        _ => 0,
    }
}

/// A tcpdump-like capture of the same traffic (Ethernet, classic pcap)
/// where segments come twice and out of order reads the same; one where a
/// segment is missing says so with a `gap` event and guesses nothing.
#[test]
fn retransmitted_and_reordered_segments_read_the_same_and_missing_ones_are_a_gap() {
    let pcap = temp("reorder.pcapng");
    session(&["--pcap", pcap.to_str().expect("utf-8")], false);
    let packets = raw_packets(&pcap);
    let (status, expected, stderr) = read_capture(&[pcap.to_str().expect("utf-8")]);
    assert!(status.success(), "{stderr}");
    let data: Vec<usize> = (0..packets.len()).filter(|&i| tcp_payload_len(&packets[i].1) > 0).collect();
    assert!(data.len() >= 6, "enough data segments to shuffle");

    // Every data segment twice, and the 2nd and 3rd data segments swapped
    // (the 5000-byte message spans several).
    let mut messy = Vec::new();
    for (i, p) in packets.iter().enumerate() {
        messy.push(p.clone());
        if data.contains(&i) {
            messy.push(p.clone());
        }
    }
    let (a, b) = (messy.iter().position(|p| *p == packets[data[2]]), messy.iter().position(|p| *p == packets[data[3]]));
    messy.swap(a.expect("a"), b.expect("b"));
    let messy_path = temp("messy.pcap");
    write_ethernet_pcap(&messy_path, &messy);
    let (status, read, stderr) = read_capture(&["--port", "1", messy_path.to_str().expect("utf-8")]);
    // --port names no side here: every conversation is skipped.
    assert!(status.success(), "{stderr}");
    assert!(read.is_empty() && stderr.contains("1 TCP conversation skipped"), "{stderr}");
    let (status, read, stderr) = read_capture(&[messy_path.to_str().expect("utf-8")]);
    assert!(status.success(), "{stderr}");
    // Without wsproxy's note the Host is not rewritten: compare the rest.
    let strip = |rs: &[Record]| -> Vec<String> {
        rs.iter()
            .map(|r| {
                let mut v: serde_json::Value = serde_json::from_str(&timeless(r)).expect("json");
                if let Some(o) = v.as_object_mut() {
                    o.remove("forwarded_host");
                }
                v.to_string()
            })
            .collect()
    };
    assert_eq!(strip(&read), strip(&expected));

    // Without the 3rd data segment: the side it belongs to stops at a gap.
    let gappy: Vec<_> = packets.iter().enumerate().filter(|(i, _)| *i != data[2]).map(|(_, p)| p.clone()).collect();
    let gappy_path = temp("gappy.pcap");
    write_ethernet_pcap(&gappy_path, &gappy);
    let (status, read, stderr) = read_capture(&[gappy_path.to_str().expect("utf-8")]);
    assert!(status.success(), "{stderr}");
    assert!(stderr.contains("1 gap"), "{stderr}");
    let missing = tcp_payload_len(&packets[data[2]].1) as u64;
    let gaps: Vec<_> = read
        .iter()
        .filter_map(|r| match &r.event {
            Event::Gap { len, .. } => Some(*len),
            _ => None,
        })
        .collect();
    assert_eq!(gaps, [missing]);
    assert!(matches!(read.last().map(|r| &r.event), Some(Event::End { .. })));
}

/// What is not a capture, is cut short, holds no TCP, or TCP that is not
/// HTTP: a clear error or an event, never a panic.
#[test]
fn bad_input_gets_a_clear_error_or_an_event() {
    let not_capture = temp("not-a-capture.txt");
    std::fs::write(&not_capture, "GET / HTTP/1.1\r\n\r\n").expect("write");
    let (status, read, stderr) = read_capture(&[not_capture.to_str().expect("utf-8")]);
    assert!(!status.success() && read.is_empty());
    assert!(stderr.contains("not a pcap or pcapng capture"), "{stderr}");

    let pcap = temp("truncated.pcapng");
    session(&["--pcap", pcap.to_str().expect("utf-8")], false);
    let bytes = std::fs::read(&pcap).expect("read");
    let cut = temp("cut.pcapng");
    std::fs::write(&cut, &bytes[..bytes.len() * 2 / 3]).expect("write");
    let (status, read, stderr) = read_capture(&[cut.to_str().expect("utf-8")]);
    assert!(!status.success(), "{stderr}");
    assert!(stderr.contains("cut short or malformed after"), "{stderr}");
    // What came before is decoded, and the connection ends.
    assert!(read.iter().any(|r| matches!(r.event, Event::HandshakeResponse { .. })));
    assert!(matches!(read.last().map(|r| &r.event), Some(Event::End { .. })));

    // UDP only, and a TCP conversation that is not HTTP.
    let udp = etherparse::PacketBuilder::ipv4([127, 0, 0, 1], [127, 0, 0, 1], 64).udp(5353, 5353);
    let mut udp_packet = Vec::new();
    udp.write(&mut udp_packet, b"not tcp").expect("udp");
    let tcp = |from_server: bool, seq: u32, ack: u32, syn: bool, payload: &[u8]| {
        let (src, dst, sp, dp) = if from_server {
            ([127, 0, 0, 2], [127, 0, 0, 1], 22, 40000)
        } else {
            ([127, 0, 0, 1], [127, 0, 0, 2], 40000, 22)
        };
        let mut b = etherparse::PacketBuilder::ipv4(src, dst, 64).tcp(sp, dp, seq, 65535);
        if syn {
            b = b.syn();
        }
        if ack != 0 {
            b = b.ack(ack);
        }
        let mut out = Vec::new();
        b.write(&mut out, payload).expect("tcp");
        out
    };
    let banner = b"SSH-2.0-OpenSSH_9.2\r\n";
    let ms = std::time::Duration::from_millis;
    let packets = vec![
        (ms(1), udp_packet.clone()),
        (ms(2), tcp(false, 100, 0, true, b"")),
        (ms(3), tcp(true, 500, 101, true, b"")),
        (ms(4), tcp(false, 101, 501, false, b"")),
        (ms(5), tcp(true, 501, 101, false, banner)),
        (ms(6), tcp(false, 101, 501 + banner.len() as u32, false, b"SSH-2.0-client\r\n")),
    ];
    let path = temp("no-http.pcap");
    write_ethernet_pcap(&path, &packets);
    let (status, read, stderr) = read_capture(&[path.to_str().expect("utf-8")]);
    assert!(status.success(), "{stderr}");
    assert!(stderr.contains("1 packet not TCP (skipped)"), "{stderr}");
    let kinds: Vec<&str> = read
        .iter()
        .map(|r| match &r.event {
            Event::Open { .. } => "open",
            Event::Uninspected { .. } => "uninspected",
            Event::End { .. } => "end",
            _ => "other",
        })
        .collect();
    assert_eq!(kinds, ["open", "uninspected", "end"], "{read:#?}");
    let only_udp = temp("udp.pcap");
    write_ethernet_pcap(&only_udp, &packets[..1]);
    let (status, read, stderr) = read_capture(&[only_udp.to_str().expect("utf-8")]);
    assert!(status.success() && read.is_empty(), "{stderr}");
    assert!(stderr.contains("0 connections, 1 packet not TCP"), "{stderr}");
}

/// The `capture_read` fuzz target's seeds are the captures
/// `wsproxy::fuzzing::capture_seeds` makes (`WSPROXY_BLESS=1` rewrites
/// them), and every link type reads into the same events.
#[test]
fn fuzz_seeds_are_current_and_every_link_type_reads_the_same() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/seeds/capture_read");
    let bless = std::env::var_os("WSPROXY_BLESS").is_some();
    let read = |data: &[u8]| {
        let options = wsproxy::capture::read::ReadOptions {
            config: wsproxy::Config::new(wsproxy::upstream::parse("ws://127.0.0.1:1").expect("url")),
            server: None,
        };
        let mut out = Vec::new();
        let mut sink = |e: &wsproxy::log::Events| {
            out.extend_from_slice(e.output(0));
            Ok(())
        };
        wsproxy::capture::read::read(data, &options, &[wsproxy::Format::Json], &mut sink).expect("a valid capture");
        String::from_utf8(out).expect("utf-8")
    };
    let mut reference = None;
    for (name, bytes) in wsproxy::fuzzing::capture_seeds() {
        let path = dir.join(&name);
        if bless {
            std::fs::create_dir_all(&dir).expect("seed dir");
            std::fs::write(&path, &bytes).expect("write seed");
        } else {
            let on_disk =
                std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e} (WSPROXY_BLESS=1 writes it)", path.display()));
            assert!(on_disk == bytes, "{name} is not what capture_seeds makes (WSPROXY_BLESS=1 rewrites it)");
        }
        assert!(bytes.len() < 8 << 10, "{name}: a seed of {} bytes", bytes.len());
        let events = read(&bytes);
        for line in events.lines() {
            wsproxy::schema::parse_strict(line).unwrap_or_else(|e| panic!("{name}: {e}"));
        }
        assert!(events.lines().count() > 20, "{name}: {events}");
        if name.contains("_v6") {
            assert!(events.contains("\"client\":\"[::1]:40000\""), "{events}");
            continue;
        }
        match &reference {
            None => reference = Some(events),
            Some(r) => assert_eq!(&events, r, "{name} reads differently from session_v4.pcapng"),
        }
    }
    let events = reference.expect("the IPv4 seed");
    // The second connection ends in a reset in the middle of a head.
    assert!(events.contains("\"reason\":\"reset\""), "{events}");
    assert!(events.contains("\"event\":\"http\",\"method\":\"GET\",\"target\":\"/healthz\""), "{events}");
}

/// The fuzz property over the seeds, saved crashes, and the seeds cut and
/// with bytes changed: what a short fuzzing run would try first.
#[test]
fn capture_inputs_hold_the_fuzz_property() {
    let fuzz = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz");
    let mut inputs: Vec<Vec<u8>> = wsproxy::fuzzing::capture_seeds().into_iter().map(|(_, b)| b).collect();
    if let Ok(entries) = std::fs::read_dir(fuzz.join("regressions/capture_read")) {
        inputs.extend(entries.filter_map(Result::ok).map(|e| std::fs::read(e.path()).expect("readable")));
    }
    let seeds = inputs.clone();
    for seed in &seeds {
        for cut in (0..seed.len()).step_by(97) {
            inputs.push(seed[..cut].to_vec());
        }
    }
    for input in &inputs {
        wsproxy::fuzzing::check_capture(input);
    }
    arbtest::arbtest(|u| {
        let seed = u.choose(&seeds)?;
        let mut data = seed.clone();
        for _ in 0..u.int_in_range(1..=8)? {
            let at = u.choose_index(data.len())?;
            data[at] = u.arbitrary()?;
        }
        wsproxy::fuzzing::check_capture(&data);
        Ok(())
    })
    .budget_ms(1_500);
}

/// The `_webSocketMessages` of a HAR entry as (type, opcode, data).
fn har_messages(entry: &serde_json::Value) -> Vec<(String, u64, String)> {
    entry["_webSocketMessages"]
        .as_array()
        .expect("messages")
        .iter()
        .map(|m| {
            (
                m["type"].as_str().expect("type").to_owned(),
                m["opcode"].as_u64().expect("opcode"),
                m["data"].as_str().expect("data").to_owned(),
            )
        })
        .collect()
}

fn b64(bytes: &[u8]) -> String {
    data_encoding::BASE64.encode(bytes)
}

/// `--har`: one entry for the upgrade with the whole messages each peer
/// sent (reassembled, inflated, binary in base64) as Chrome writes
/// `_webSocketMessages`, and the closes; `wsproxy read --har` of the
/// capture gives the same; `--har-max-message` cuts long messages.
#[test]
fn har_holds_the_messages_the_peers_sent() {
    let (har, pcap) = (temp("session.har"), temp("har.pcapng"));
    let args = ["--har", har.to_str().expect("utf-8"), "--pcap", pcap.to_str().expect("utf-8")];
    session(&args, false);
    let doc: serde_json::Value = serde_json::from_slice(&std::fs::read(&har).expect("har")).expect("valid JSON");
    assert_eq!(doc["log"]["version"], "1.2");
    let entries = doc["log"]["entries"].as_array().expect("entries");
    assert_eq!(entries.len(), 1, "{doc:#}");
    let entry = &entries[0];
    assert_eq!(entry["_resourceType"], "websocket");
    assert_eq!(entry["request"]["url"], "ws://x/");
    assert_eq!(entry["response"]["status"], 101);
    let big: Vec<u8> = (0..5000u32).map(|i| (i % 251) as u8).collect();
    let s = |t: &str, op: u64, d: &str| (t.to_owned(), op, d.to_owned());
    let want_sent = vec![
        s("send", 1, "héllo"),
        s("send", 2, &b64(&[0, 1, 2, 255])),
        s("send", 1, "fragmented"),
        s("send", 1, "Hello"),
        s("send", 2, &b64(&big)),
    ];
    let want_received = vec![s("receive", 1, "hi"), s("receive", 1, "Hello"), s("receive", 2, &b64(&[9, 8, 7]))];
    let got = har_messages(entry);
    assert_eq!(got.iter().filter(|m| m.0 == "send").cloned().collect::<Vec<_>>(), want_sent);
    assert_eq!(got.iter().filter(|m| m.0 == "receive").cloned().collect::<Vec<_>>(), want_received);
    let closes: Vec<(String, u64, String)> = entry["_webSocketClose"]
        .as_array()
        .expect("closes")
        .iter()
        .map(|c| {
            (
                c["from"].as_str().expect("from").into(),
                c["code"].as_u64().expect("code"),
                c["reason"].as_str().expect("r").into(),
            )
        })
        .collect();
    assert_eq!(closes, [s("client", 1000, "bye"), s("upstream", 1000, "")]);

    // The capture read back gives the same HAR messages, at the same times.
    let doc2 = har_of_capture(&pcap, "read.har", &[]);
    assert_eq!(doc2["log"]["entries"][0]["_webSocketMessages"], entry["_webSocketMessages"]);

    // Cut at 100 bytes.
    let doc3 = har_of_capture(&pcap, "read-cut.har", &["--har-max-message", "100"]);
    let cut = &doc3["log"]["entries"][0]["_webSocketMessages"][4];
    assert_eq!((cut["data"].as_str(), cut["_truncated"].as_bool()), (Some(b64(&big[..100]).as_str()), Some(true)));
}

/// The HAR file is valid JSON from the start, before any entry.
#[test]
fn har_is_valid_json_while_the_proxy_runs() {
    let har = temp("empty.har");
    let proxy = Proxy::start(&["--har", har.to_str().expect("utf-8")]);
    let doc: serde_json::Value = serde_json::from_slice(&std::fs::read(&har).expect("har")).expect("valid JSON");
    assert_eq!(doc["log"]["entries"], serde_json::json!([]));
    drop(proxy);
}

/// A capture taken with `tcpdump -i lo` of the same traffic without the
/// proxy reads into the same frames, messages, pings, pongs and closes as
/// the proxy's live log. Runs where tcpdump is installed and may capture
/// (root); `ci/test.sh` installs it.
#[test]
fn a_tcpdump_capture_of_direct_traffic_reads_as_the_proxy_saw_it() {
    let can = Command::new("tcpdump").arg("--version").output().is_ok_and(|o| o.status.success())
        && Command::new("id").arg("-u").output().is_ok_and(|o| o.stdout.starts_with(b"0"));
    if !can {
        assert!(std::env::var_os("WSTOOLKIT_REQUIRE_TSHARK").is_none(), "tcpdump (as root) is required");
        eprintln!("tcpdump is not installed or not root: skipped");
        return;
    }
    let (live, _) = session(&[], false);
    let upstream = scripted_upstream(None);
    let path = temp("tcpdump.pcap");
    let mut tcpdump = Command::new("tcpdump")
        // Immediate mode: packets reach the file as they come, not when a
        // kernel buffer block fills. -Z root: write the file as root, into
        // the test's own directory.
        .args(["-i", "lo", "--immediate-mode", "-U", "-n", "-Z", "root", "-w", path.to_str().expect("utf-8")])
        .args(["tcp", "port", &upstream.addr.port().to_string()])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start tcpdump");
    let stderr = tcpdump.stderr.take().expect("stderr");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    // tcpdump says "listening on lo" once it captures.
    loop {
        let line = rx.recv_timeout(common::WAIT).expect("tcpdump's listening line");
        if line.contains("listening on") {
            break;
        }
    }
    let mut c: Box<dyn Conn> = Box::new(connect(upstream.addr));
    scripted_client(&mut *c);
    drop(c);
    upstream.join();
    // Its last packets (written as they come: -U): wait until the file
    // holds what the live log saw (bounded; on a loaded machine the last
    // FIN can take a while to reach tcpdump), then SIGINT: it writes what
    // it has and exits.
    let deadline = std::time::Instant::now() + common::WAIT;
    while std::time::Instant::now() < deadline {
        let (_, read, _) = read_capture(&[path.to_str().expect("utf-8")]);
        if seen_in_log(&read) == seen_in_log(&live) {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let _ = Command::new("kill").args(["-INT", &tcpdump.id().to_string()]).status();
    let _ = tcpdump.wait();
    let (status, read, stderr) = read_capture(&[path.to_str().expect("utf-8")]);
    assert!(status.success(), "{stderr}");
    assert!(stderr.contains("1 connection"), "{stderr}");
    assert_eq!(seen_in_log(&read), seen_in_log(&live), "read from tcpdump's capture (left), the live log (right)");
}

/// A connection that carries megabytes is recorded whole: the capture
/// learns the upstream's address before the bytes (it once held them
/// until the end, and dropped what did not fit).
#[test]
fn megabytes_through_a_connection_are_all_in_the_capture() {
    let pcap = temp("megabytes.pcapng");
    let mut proxy = Proxy::start(&["--pcap", pcap.to_str().expect("utf-8"), "--messages-only"]);
    let mut c: Box<dyn Conn> = Box::new(connect(proxy.addr));
    let mut sent = wsproto::handshake::build_request("x", "/", "dGhlIHNhbXBsZSBub25jZQ==", &[], None).expect("request");
    c.write_all(&sent).expect("write");
    let mut got = Vec::new();
    let head = read_head(&mut *c, &mut got);
    let payload: Vec<u8> = (0..64 << 10).map(|i: u32| (i % 253) as u8).collect();
    let message = frame(OpCode::Binary, true, Some([9, 9, 9, 9]), &payload);
    let echo_len = frame(OpCode::Binary, true, None, &payload).len();
    for i in 0..48 {
        c.write_all(&message).expect("write");
        sent.extend_from_slice(&message);
        read_at_least(&mut *c, &mut got, head + (i + 1) * echo_len);
    }
    let close = frame(OpCode::Close, true, Some([1, 2, 3, 4]), &[0x03, 0xe8]);
    c.write_all(&close).expect("write");
    sent.extend_from_slice(&close);
    read_at_least(&mut *c, &mut got, head + 48 * echo_len + 4);
    c.finish();
    read_to_end(&mut *c);
    drop(c);
    proxy.connection(1);
    let (status, _) = proxy.terminate();
    assert!(status.success());
    let packets = packets(&pcap);
    let client = packets[0].src;
    let stream: Vec<u8> = packets.iter().filter(|p| p.src == client).flat_map(|p| p.payload.clone()).collect();
    assert_eq!(stream.len(), sent.len(), "the client's bytes in the capture");
    assert!(stream == sent);
    // Megabytes: not left behind (the other tests' files are a few KB,
    // kept in the temporary directory for a look after a failure).
    let _ = std::fs::remove_file(&pcap);
}

/// A refused upgrade is an entry of its own, with the answer's status and
/// no WebSocket messages.
#[test]
fn har_has_a_refused_upgrade_as_its_own_entry() {
    let har = temp("refused.har");
    let upstream = RawUpstream::start(|mut s| {
        let mut got = Vec::new();
        let mut s2 = s.try_clone().expect("clone");
        read_head(&mut s2, &mut got);
        s.write_all(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n").expect("write");
    });
    let url = upstream.url();
    let mut proxy = Proxy::start(&["--upstream", &url, "--har", har.to_str().expect("utf-8")]);
    let mut c: Box<dyn Conn> = Box::new(connect(proxy.addr));
    c.write_all(&common::upgrade_request("x", "/chat?room=1")).expect("write");
    read_to_end(&mut *c);
    drop(c);
    upstream.join();
    proxy.connection(1);
    let (status, _) = proxy.terminate();
    assert!(status.success());
    let doc: serde_json::Value = serde_json::from_slice(&std::fs::read(&har).expect("har")).expect("valid JSON");
    let entries = doc["log"]["entries"].as_array().expect("entries");
    assert_eq!(entries.len(), 1, "{doc:#}");
    assert_eq!(entries[0]["response"]["status"], 403);
    assert_eq!(entries[0]["request"]["url"], "ws://x/chat?room=1");
    assert_eq!(entries[0]["request"]["queryString"], serde_json::json!([{"name": "room", "value": "1"}]));
    assert!(entries[0].get("_webSocketMessages").is_none());
}

/// (source port, TCP payload, SYN) of an IP packet.
fn tcp_of(ip: &[u8]) -> (u16, Vec<u8>, bool) {
    let sliced = etherparse::SlicedPacket::from_ip(ip).expect("IP");
    match sliced.transport {
        Some(etherparse::TransportSlice::Tcp(t)) => (t.source_port(), t.payload().to_vec(), t.syn()),
        _ => panic!("not TCP"),
    }
}

/// The frames a side sent, as (opcode, fin, masked, len), in a log.
fn frames_of(records: &[Record], side: Side) -> Vec<(Option<u8>, bool, bool, u64)> {
    records
        .iter()
        .filter_map(|r| match &r.event {
            Event::Frame { from, opcode, fin, masked, len, .. } if *from == side => {
                Some((opcode.number(), *fin, *masked, *len))
            }
            _ => None,
        })
        .collect()
}

/// The `resync` events of a log, as (side, skipped, resumed).
fn resyncs_of(records: &[Record]) -> Vec<(Side, u64, bool)> {
    records
        .iter()
        .filter_map(|r| match &r.event {
            Event::Resync { from, skipped, resumed } => Some((*from, *skipped, *resumed)),
            _ => None,
        })
        .collect()
}

/// A capture begun after the upgrade (no SYN, no HTTP), as tcpdump started
/// late writes it: with `--port` naming the server, each side is decoded
/// from its first frame boundary, and what was skipped is a `resync`
/// event; cut inside a frame, the frame's tail is skipped, not guessed.
/// Without `--port` the conversation is skipped and the summary says why.
#[test]
fn a_capture_begun_inside_the_websocket_connection_is_decoded_from_the_first_frame() {
    let pcap = temp("midstream.pcapng");
    let (live, _) = session(&["--pcap", pcap.to_str().expect("utf-8")], false);
    let packets = raw_packets(&pcap);
    let tcp: Vec<_> = packets.iter().map(|(_, ip)| tcp_of(ip)).collect();
    let syn = tcp.iter().find(|t| t.2).expect("a SYN");
    let client_port = syn.0;
    let server_port = tcp.iter().find(|t| t.0 != client_port).expect("the server's packets").0;
    let port = server_port.to_string();
    let write_from = |first: usize, name: &str| {
        let path = temp(name);
        write_ethernet_pcap(&path, &packets[first..]);
        path
    };

    // Cut right after the 101: both sides from their first frame.
    let after_101 = tcp.iter().position(|t| t.1.starts_with(b"HTTP/1.1 101")).expect("the 101") + 1;
    let path = write_from(after_101, "after-101.pcap");
    let (status, read, stderr) = read_capture(&[path.to_str().expect("utf-8")]);
    assert!(status.success(), "{stderr}");
    assert!(stderr.contains("1 TCP conversation skipped") && stderr.contains("give --port"), "{stderr}");
    assert!(read.is_empty(), "{read:#?}");
    let (status, read, stderr) = read_capture(&["--port", &port, path.to_str().expect("utf-8")]);
    assert!(status.success(), "{stderr}");
    assert!(stderr.contains("2 directions decoded from the first frame boundary"), "{stderr}");
    assert_eq!(resyncs_of(&read), [(Side::Client, 0, true), (Side::Upstream, 0, true)]);
    for side in [Side::Client, Side::Upstream] {
        assert_eq!(frames_of(&read, side), frames_of(&live, side), "{side:?}");
        // Frames held while the boundary was confirmed keep their times.
        let stamps = |rs: &[Record]| -> Vec<String> {
            rs.iter()
                .filter(|r| matches!(&r.event, Event::Frame { from, .. } if *from == side))
                .map(|r| r.ts.clone())
                .collect()
        };
        assert_eq!(stamps(&read), stamps(&live), "{side:?}");
    }
    assert!(matches!(read.last().map(|r| &r.event), Some(Event::End { .. })));

    // Cut inside the client's 5000-byte frame (it spans several segments):
    // its tail is skipped; the close after it is the first frame found.
    let big = tcp.iter().position(|t| t.0 == client_port && t.1.len() >= 1000).expect("the big frame's first segment");
    let path = write_from(big + 1, "inside-a-frame.pcap");
    let client_bytes: u64 = tcp[big + 1..].iter().filter(|t| t.0 == client_port).map(|t| t.1.len() as u64).sum();
    let close_len = 2 + 4 + 5;
    let (status, read, stderr) = read_capture(&["--port", &port, path.to_str().expect("utf-8")]);
    assert!(status.success(), "{stderr}");
    let resyncs = resyncs_of(&read);
    assert!(resyncs.contains(&(Side::Client, client_bytes - close_len, true)), "{resyncs:?}");
    assert_eq!(frames_of(&read, Side::Client), [(Some(8), true, true, 5)]);
    assert_eq!(frames_of(&read, Side::Upstream), frames_of(&live, Side::Upstream));
    // Nothing is a violation: the skipped bytes were not decoded.
    assert!(!read.iter().any(|r| matches!(r.event, Event::Violation { .. })), "{read:#?}");

    // Without the client's last segment (the frame's end and the close),
    // its side holds no frame boundary: said, nothing of it decoded, and
    // the missing segment is a gap.
    let last = (big + 1..tcp.len()).rev().find(|&i| tcp[i].0 == client_port && !tcp[i].1.is_empty()).expect("last");
    let kept: u64 = tcp[big + 1..last].iter().filter(|t| t.0 == client_port).map(|t| t.1.len() as u64).sum();
    let no_end: Vec<_> = (big + 1..packets.len()).filter(|&i| i != last).map(|i| packets[i].clone()).collect();
    let path = temp("no-boundary.pcap");
    write_ethernet_pcap(&path, &no_end);
    let (status, read, stderr) = read_capture(&["--port", &port, path.to_str().expect("utf-8")]);
    assert!(status.success(), "{stderr}");
    let resyncs = resyncs_of(&read);
    assert!(resyncs.contains(&(Side::Client, kept, false)), "{resyncs:?}");
    assert!(frames_of(&read, Side::Client).is_empty());
    assert!(read.iter().any(|r| matches!(r.event, Event::Gap { from: Side::Client, .. })), "{read:#?}");
    assert_eq!(frames_of(&read, Side::Upstream), frames_of(&live, Side::Upstream));
}

/// A `/healthz` GET before the upgrade on the same connection: `--har`
/// has it as an entry of its own with the method, URL, version, status,
/// reason, both header lists as sent and the body sizes (HAR 1.2
/// `request`/`response`), before the WebSocket's entry; a cookie is
/// redacted as in the log. `wsproxy read --har` of the capture gives the
/// same entries.
#[test]
fn har_has_a_plain_exchange_with_its_headers() {
    let (har, pcap) = (temp("plain.har"), temp("plain.pcapng"));
    let upstream = RawUpstream::start(|mut s| {
        let c: &mut dyn Conn = &mut s;
        let mut got = Vec::new();
        let head = read_head(c, &mut got);
        c.write_all(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nok").expect("write");
        got.drain(..head);
        read_head(c, &mut got);
        let response = wsproto::handshake::build_response(
            &wsproto::handshake::accept_key(b"dGhlIHNhbXBsZSBub25jZQ=="),
            None,
            None,
        )
        .expect("response");
        c.write_all(&response).expect("write");
        c.write_all(&frame(OpCode::Close, true, None, &[0x03, 0xe8])).expect("write");
        read_to_end(c);
        c.finish();
    });
    let url = upstream.url();
    let args = ["--upstream", &url, "--har", har.to_str().expect("utf-8"), "--pcap", pcap.to_str().expect("utf-8")];
    let mut proxy = Proxy::start(&args);
    let mut tcp = connect(proxy.addr);
    let c: &mut dyn Conn = &mut tcp;
    c.write_all(b"GET /healthz?deep=1 HTTP/1.1\r\nHost: x\r\nCookie: secret=1\r\n\r\n").expect("write");
    let mut got = Vec::new();
    let head = read_head(c, &mut got);
    read_at_least(c, &mut got, head + 2);
    c.write_all(&common::upgrade_request("x", "/chat")).expect("write");
    let mut rest = got.split_off(head + 2);
    let head = read_head(c, &mut rest);
    read_at_least(c, &mut rest, head + 4);
    c.write_all(&frame(OpCode::Close, true, Some([1, 2, 3, 4]), &[0x03, 0xe8])).expect("write");
    c.finish();
    read_to_end(c);
    upstream.join();
    let live = proxy.connection(1);
    let (status, _) = proxy.terminate();
    assert!(status.success());
    // The live log keeps no headers of plain exchanges.
    let http: Vec<_> = live.iter().filter(|e| matches!(e, Event::Http { .. })).collect();
    assert!(
        matches!(http[..], [Event::Http { request_headers: None, response_headers: None, status: Some(200), .. }]),
        "{http:?}"
    );

    let doc: serde_json::Value = serde_json::from_slice(&std::fs::read(&har).expect("har")).expect("valid JSON");
    let entries = doc["log"]["entries"].as_array().expect("entries");
    assert_eq!(entries.len(), 2, "{doc:#}");
    let plain = &entries[0];
    let names = |headers: &serde_json::Value| -> Vec<(String, String)> {
        headers
            .as_array()
            .expect("headers")
            .iter()
            .map(|h| (h["name"].as_str().expect("name").to_owned(), h["value"].as_str().expect("value").to_owned()))
            .collect()
    };
    let pair = |n: &str, v: &str| (n.to_owned(), v.to_owned());
    let request = &plain["request"];
    assert_eq!(
        (request["method"].as_str(), request["url"].as_str(), request["httpVersion"].as_str()),
        (Some("GET"), Some("http://x/healthz?deep=1"), Some("HTTP/1.1"))
    );
    assert_eq!(names(&request["headers"]), [pair("Host", "x"), pair("Cookie", "<redacted, 8 bytes>")]);
    assert_eq!(request["queryString"], serde_json::json!([{"name": "deep", "value": "1"}]));
    assert_eq!(request["bodySize"], 0);
    let response = &plain["response"];
    assert_eq!(
        (response["status"].as_u64(), response["statusText"].as_str(), response["httpVersion"].as_str()),
        (Some(200), Some("OK"), Some("HTTP/1.1"))
    );
    assert_eq!(names(&response["headers"]), [pair("Content-Type", "text/plain"), pair("Content-Length", "2")]);
    assert_eq!(response["content"], serde_json::json!({"size": 2, "mimeType": "text/plain"}));
    assert_eq!(response["bodySize"], 2);
    assert_eq!(entries[1]["_resourceType"], "websocket");
    assert_eq!(entries[1]["request"]["url"], "ws://x/chat");

    let doc2 = har_of_capture(&pcap, "plain-read.har", &[]);
    assert_eq!(doc2["log"]["entries"][0]["request"], entries[0]["request"]);
    assert_eq!(doc2["log"]["entries"][0]["response"], entries[0]["response"]);
}

/// `wsproxy read CAPTURE --har FILE EXTRA…` (FILE a temporary named
/// `name`): the HAR it wrote, parsed.
fn har_of_capture(pcap: &std::path::Path, name: &str, extra: &[&str]) -> serde_json::Value {
    let har = temp(name);
    let out = Command::new(env!("CARGO_BIN_EXE_wsproxy"))
        .args(["read", pcap.to_str().expect("utf-8"), "--har", har.to_str().expect("utf-8"), "--log", "/dev/null"])
        .args(extra)
        .output()
        .expect("wsproxy read");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&std::fs::read(&har).expect("har")).expect("valid JSON")
}
