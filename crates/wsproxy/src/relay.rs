//! One proxied connection: read the client's head, forward it (with the
//! `Host` rewritten), read the upstream's answer, forward it as it came,
//! then relay both directions byte for byte while the inspectors decode a
//! copy.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::watch;
use wsproto::deflate::DeflateParams;
use wsproto::handshake::{self, HeadScanner, Limits};
use wsproto::{CloseCode, FrameHeader, OpCode, Status};

use crate::event::{
    DisplayStr, EndOut, ErrorOut, EventBody, HandshakeRequest, HandshakeResponse, HeaderOut, HttpOut, Open, PerSide,
    Side, Stamp, ViolationOut, write_event,
};
use crate::head;
use crate::inspect::{DirectionInspector, Enforced, Shared};
use crate::log::LogSink;
use crate::pool::BufferPool;
use crate::stream::{Stream, StreamRead, StreamWrite};
use crate::{Config, Totals, tls};

/// Read buffer per direction, lent from a pool while data flows: large
/// enough that 64 KiB and 1 MiB messages move in few syscalls.
pub(crate) const RELAY_BUF: usize = 256 << 10;

/// How long to wait for the upstream's TCP connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

pub(crate) struct Ctx {
    pub config: Arc<Config>,
    pub log: LogSink,
    /// Relay buffers, lent while data flows.
    pub buffers: BufferPool,
    pub totals: Arc<Totals>,
    pub conn: u64,
}

impl Ctx {
    fn emit<B: EventBody>(&self, out: &mut Vec<u8>, body: &B) {
        write_event(out, self.config.format, &Stamp::now(), self.conn, body);
    }

    async fn flush(&self, out: &mut Vec<u8>) {
        let buf = std::mem::replace(out, self.log.buffer());
        self.log.send(buf).await;
    }
}

/// How a direction (or the connection) ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ending {
    Eof,
    Reset,
    Error,
    Timeout,
    Stopped,
    /// A violation under `--enforce`; whether the forwarded stream was cut
    /// at a frame boundary (so a close frame can follow it).
    Enforced(Enforced, bool),
}

enum HeadRead {
    Complete(usize),
    Eof,
    /// The head breaks a rule of the scanner (size, line ends).
    Broken(wsproto::Error),
}

/// Reads until `buf` holds a complete HTTP head (or the peer stops).
async fn read_head(stream: &mut Stream, buf: &mut Vec<u8>, limits: &Limits) -> io::Result<HeadRead> {
    let mut scanner = HeadScanner::new();
    loop {
        match scanner.scan(buf, limits) {
            Ok(Status::Complete(n)) => return Ok(HeadRead::Complete(n)),
            Ok(Status::Partial) => {}
            Err(e) => return Ok(HeadRead::Broken(e)),
        }
        buf.reserve(4096);
        match stream.read_buf(buf).await {
            Ok(0) => return Ok(HeadRead::Eof),
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(HeadRead::Eof),
            Err(e) => return Err(e),
        }
    }
}

/// Writes all of `bytes` and flushes (a TLS stream may otherwise keep the
/// last record).
async fn send(stream: &mut Stream, bytes: &[u8]) -> io::Result<()> {
    stream.write_all(bytes).await?;
    stream.flush().await
}

fn version_str(minor: u8) -> &'static str {
    if minor == 0 { "HTTP/1.0" } else { "HTTP/1.1" }
}

/// Headers whose values are credentials: logged as their length only,
/// unless `--show-secrets`.
const SECRET_HEADERS: [&str; 4] = ["authorization", "proxy-authorization", "cookie", "set-cookie"];

fn headers_out<'a>(headers: &'a [handshake::Header<'a>], show_secrets: bool) -> Vec<HeaderOut<'a>> {
    headers
        .iter()
        .map(|h| {
            let secret = !show_secrets && SECRET_HEADERS.iter().any(|s| h.name.eq_ignore_ascii_case(s));
            let value = if secret {
                std::borrow::Cow::Owned(format!("<redacted, {} bytes>", h.value.len()))
            } else {
                String::from_utf8_lossy(h.value)
            };
            HeaderOut { name: h.name, value }
        })
        .collect()
}

fn bad_gateway(reason: &str) -> Vec<u8> {
    let body = format!("wsproxy: {reason}\n");
    format!(
        "HTTP/1.1 502 Bad Gateway\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// What the client asked for, kept past the borrow of its head.
struct ClientAsk {
    method: String,
    target: String,
    websocket: bool,
    key: Option<String>,
    protocols: Vec<String>,
    extensions: Vec<String>,
    /// The `Sec-WebSocket-Extensions` values as offered upstream, for
    /// checking the answer's parameters against them (RFC 7692 §7.1).
    extension_offers: Vec<Vec<u8>>,
    valid: bool,
}

/// The TLS handshake of a client of a `--tls-cert` listener.
async fn accept_tls(tcp: TcpStream, ctx: &Ctx) -> Result<Stream, String> {
    let Some(config) = ctx.config.listen_tls.clone() else { return Ok(Stream::Tcp(tcp)) };
    let acceptor = tokio_rustls::TlsAcceptor::from(config);
    match tokio::time::timeout(ctx.config.handshake_timeout, acceptor.accept(tcp)).await {
        Ok(Ok(tls)) => Ok(Stream::TlsFromClient(Box::new(tls))),
        Ok(Err(e)) => Err(format!("TLS handshake with the client failed: {}", tls::describe_error(&e))),
        Err(_) => Err(format!("the client did not finish its TLS handshake within {:?}", ctx.config.handshake_timeout)),
    }
}

/// Serves one client connection to the end.
pub(crate) async fn handle(tcp: TcpStream, peer: SocketAddr, ctx: Ctx) {
    let started = Instant::now();
    let mut out = ctx.log.buffer();
    let upstream_addr = ctx.config.upstream.connect_addr();
    ctx.emit(&mut out, &Open { client: peer, upstream: &upstream_addr });
    let limits = Limits::default();
    let mut stats = Stats::default();
    let ending = match accept_tls(tcp, &ctx).await {
        Err(message) => {
            ctx.emit(&mut out, &ErrorOut { message: &message });
            Ending::Error
        }
        Ok(mut client) => match serve(&mut client, &ctx, &limits, &mut out, &mut stats).await {
            Ok(ending) => ending,
            Err(e) => {
                let message = format!("{e:#}");
                ctx.emit(&mut out, &ErrorOut { message: &message });
                Ending::Error
            }
        },
    };
    let complete = stats.shared.lock().map(|s| s.close_handshake_complete()).unwrap_or(false);
    let unanswered = stats.shared.lock().map(|s| s.unanswered_pings()).unwrap_or_default();
    let reason = match ending {
        Ending::Enforced(..) => "enforced",
        _ if complete => "close_handshake",
        Ending::Eof | Ending::Stopped => "eof",
        Ending::Reset => "reset",
        Ending::Timeout => "timeout",
        Ending::Error => "error",
    };
    let end = EndOut {
        bytes: stats.bytes,
        frames: stats.frames,
        unanswered_pings: PerSide { client: unanswered[0], upstream: unanswered[1] },
        duration_us: started.elapsed().as_micros() as u64,
        reason,
    };
    ctx.emit(&mut out, &end);
    ctx.totals.bytes.fetch_add(stats.bytes.client + stats.bytes.upstream, Ordering::Relaxed);
    ctx.totals.frames.fetch_add(stats.frames.client + stats.frames.upstream, Ordering::Relaxed);
    ctx.totals.violations.fetch_add(stats.violations, Ordering::Relaxed);
    ctx.log.send(out).await;
}

#[derive(Default)]
struct Stats {
    bytes: PerSide,
    frames: PerSide,
    violations: u64,
    shared: Arc<Mutex<Shared>>,
}

async fn serve(
    client: &mut Stream,
    ctx: &Ctx,
    limits: &Limits,
    out: &mut Vec<u8>,
    stats: &mut Stats,
) -> anyhow::Result<Ending> {
    let config = &ctx.config;
    // 1. The client's head, within the handshake timeout.
    let mut cbuf = Vec::with_capacity(4096);
    let (head_len, head_error) =
        match tokio::time::timeout(config.handshake_timeout, read_head(client, &mut cbuf, limits)).await {
            Err(_) => {
                let message = format!(
                    "the client did not finish its request head within {:?}; dropped",
                    config.handshake_timeout
                );
                ctx.emit(out, &ErrorOut { message: &message });
                stats.bytes.client = cbuf.len() as u64;
                return Ok(Ending::Timeout);
            }
            Ok(Err(e)) => return Err(anyhow::Error::new(e).context("reading the client's request")),
            Ok(Ok(HeadRead::Eof)) => {
                stats.bytes.client = cbuf.len() as u64;
                return Ok(Ending::Eof);
            }
            // The scanner's rules (size, line ends): relayed as it is unless
            // enforcing; the upstream decides.
            Ok(Ok(HeadRead::Broken(e))) => (cbuf.len(), Some(e)),
            Ok(Ok(HeadRead::Complete(n))) => (n, None),
        };
    stats.bytes.client = cbuf.len() as u64;

    // 2. Parse, check and rewrite it.
    let parsed = match head_error {
        Some(e) => Err(e),
        None => handshake::parse_request(&cbuf[..head_len], limits),
    };
    let (ask, forward) = match parsed {
        Ok(Status::Complete((req, _))) => {
            let websocket = req.is_websocket_upgrade();
            let mut ask = ClientAsk {
                method: req.method.to_owned(),
                target: req.target.to_owned(),
                websocket,
                key: None,
                protocols: Vec::new(),
                extensions: Vec::new(),
                extension_offers: Vec::new(),
                valid: false,
            };
            let forwarded_target = head::forwarded_target(req.target, &config.upstream.path);
            let authority = config.upstream.authority();
            let forwarded_host = (!config.preserve_host).then_some(authority.as_str());
            let layout = head::layout(&cbuf[..head_len]);
            let drop_extensions = websocket && config.no_compression;
            let rewrite = head::Rewrite { target: forwarded_target.as_deref(), host: forwarded_host, drop_extensions };
            let forward = match &layout {
                Some(l) => head::rewrite(&cbuf[..head_len], l, rewrite),
                None => cbuf[..head_len].to_vec(),
            };
            let removed_headers = if drop_extensions && layout.as_ref().is_some_and(|l| !l.extension_lines.is_empty()) {
                vec!["Sec-WebSocket-Extensions"]
            } else {
                Vec::new()
            };
            let changed_host = forwarded_host.filter(|h| req.header("host") != Some(h.as_bytes()));
            if websocket {
                ctx.emit(
                    out,
                    &HandshakeRequest {
                        method: req.method,
                        target: req.target,
                        version: version_str(req.version_minor),
                        headers: headers_out(&req.headers, config.show_secrets),
                        forwarded_target: forwarded_target.as_deref(),
                        forwarded_host: changed_host,
                        removed_headers,
                    },
                );
                match req.validate() {
                    Ok(hs) => {
                        ask.valid = true;
                        ask.key = Some(hs.key.to_owned());
                        ask.protocols = hs.protocols.iter().map(|p| (*p).to_owned()).collect();
                        // With --no-compression the upstream was offered none.
                        if !drop_extensions {
                            ask.extensions = hs.extensions.iter().map(|e| e.name.to_owned()).collect();
                            ask.extension_offers =
                                req.headers_named("sec-websocket-extensions").map(<[u8]>::to_vec).collect();
                        }
                    }
                    Err(e) => {
                        if let Some(ending) = refuse_request(client, ctx, out, e, stats).await {
                            return Ok(ending);
                        }
                    }
                }
            }
            (ask, forward)
        }
        Ok(Status::Partial) | Err(_) => {
            // The HTTP syntax is broken: report it and relay the bytes
            // unchanged (or refuse, when enforcing).
            let e = parsed.err().unwrap_or(wsproto::Error::InvalidNewLine);
            if let Some(ending) = refuse_request(client, ctx, out, e, stats).await {
                return Ok(ending);
            }
            let ask = ClientAsk {
                method: String::new(),
                target: String::new(),
                websocket: false,
                key: None,
                protocols: Vec::new(),
                extensions: Vec::new(),
                extension_offers: Vec::new(),
                valid: false,
            };
            (ask, cbuf[..head_len].to_vec())
        }
    };
    ctx.flush(out).await;

    // 3. The upstream.
    let mut upstream = match connect_upstream(config).await {
        Ok(s) => s,
        Err(reason) => return bad_gateway_to(client, ctx, out, &reason).await,
    };
    upstream.write_all(&forward).await?;
    let client_leftover = cbuf.split_off(head_len);
    send(&mut upstream, &client_leftover).await?;

    // 4. The upstream's answer, forwarded as it came.
    let mut ubuf = Vec::with_capacity(4096);
    let upstream_head =
        match tokio::time::timeout(config.handshake_timeout, read_head(&mut upstream, &mut ubuf, limits)).await {
            Ok(Ok(HeadRead::Complete(n))) => Some(n),
            Ok(Ok(_)) | Ok(Err(_)) | Err(_) => None,
        };
    send(client, &ubuf).await?;
    stats.bytes.upstream = ubuf.len() as u64;
    let Some(uhead_len) = upstream_head else {
        if !ask.method.is_empty() && !ask.websocket {
            ctx.emit(out, &HttpOut { method: &ask.method, target: &ask.target, status: None });
        }
        ctx.flush(out).await;
        // No usable answer: relay whatever else comes, unchanged.
        return Ok(relay_plain(client, &mut upstream, stats, ctx).await);
    };
    let mut websocket = false;
    let mut deflate = None;
    // A negotiated extension the proxy cannot decode.
    let mut opaque = false;
    match handshake::parse_response(&ubuf[..uhead_len], limits) {
        Ok(Status::Complete((res, _))) => {
            if ask.websocket {
                let mut deflate_error = None;
                let mut protocol = None;
                let mut undecoded: Vec<String> = Vec::new();
                let mut extensions = Vec::new();
                if res.status == 101 {
                    websocket = true;
                    if let Some(v) = res.header("sec-websocket-protocol") {
                        protocol = std::str::from_utf8(v).ok();
                    }
                    for v in res.headers_named("sec-websocket-extensions") {
                        extensions.push(String::from_utf8_lossy(v).into_owned());
                    }
                    let mut parsed = Vec::new();
                    for v in res.headers_named("sec-websocket-extensions") {
                        let _ = handshake::parse_extensions(v, &mut parsed);
                    }
                    // Parameters §7.1 does not allow are reported below (as
                    // a violation of the 101); the stream is still read as
                    // compressed, which is what both ends will do.
                    deflate = match DeflateParams::from_response(&parsed) {
                        Ok(params) => params,
                        Err(e) => {
                            deflate_error = Some(e);
                            Some(DeflateParams::default())
                        }
                    };
                    // RFC 6455 §5.2: an extension other than permessage-deflate
                    // may define the reserved bits; the proxy cannot decode
                    // it, so its frames are shown raw and not judged by them.
                    for e in parsed.iter().filter(|e| !e.name.eq_ignore_ascii_case(handshake::PERMESSAGE_DEFLATE)) {
                        undecoded.push(e.name.to_owned());
                    }
                    if !undecoded.is_empty() {
                        deflate = None;
                    }
                }
                ctx.emit(
                    out,
                    &HandshakeResponse {
                        status: res.status,
                        reason: res.reason,
                        version: version_str(res.version_minor),
                        headers: headers_out(&res.headers, config.show_secrets),
                        protocol,
                        extensions,
                        upgraded: websocket,
                        undecoded_extensions: undecoded.iter().map(String::as_str).collect(),
                    },
                );
                opaque = !undecoded.is_empty();
                if websocket && ask.valid {
                    let offered: Vec<&str> = ask.protocols.iter().map(String::as_str).collect();
                    let mut offers = Vec::new();
                    for v in &ask.extension_offers {
                        // Validated with the request: the syntax is right.
                        let _ = handshake::parse_extensions(v, &mut offers);
                    }
                    let key = ask.key.as_deref().unwrap_or_default();
                    // RFC 6455 §4.1 and RFC 7692 §7.1: the answer against the
                    // offers, parameters included.
                    let checked = res.validate_offers(key.as_bytes(), &offered, &offers).map(|_| ());
                    if let Err(e) = checked.and(deflate_error.map_or(Ok(()), Err)) {
                        stats.violations += 1;
                        ctx.emit(
                            out,
                            &ViolationOut {
                                from: Side::Upstream,
                                rule: e.rule(),
                                rfc: e.rfc(),
                                offset: 0,
                                message: DisplayStr(e),
                                enforced: false,
                            },
                        );
                    }
                }
            } else if !ask.method.is_empty() {
                ctx.emit(out, &HttpOut { method: &ask.method, target: &ask.target, status: Some(res.status) });
            }
        }
        Ok(Status::Partial) | Err(_) => {
            if !ask.method.is_empty() && !ask.websocket {
                ctx.emit(out, &HttpOut { method: &ask.method, target: &ask.target, status: None });
            }
        }
    }
    ctx.flush(out).await;
    if !websocket {
        return Ok(relay_plain(client, &mut upstream, stats, ctx).await);
    }

    // 5. WebSocket: relay both ways, decoding a copy.
    let opts = config.inspect_options();
    let mut insp_c = DirectionInspector::new(ctx.conn, Side::Client, head_len as u64, deflate, opts);
    let mut insp_u = DirectionInspector::new(ctx.conn, Side::Upstream, uhead_len as u64, deflate, opts);
    if opaque {
        insp_c.set_opaque_extension();
        insp_u.set_opaque_extension();
    }
    let shared = stats.shared.clone();
    // The side that broke a rule, the violation, and whether what was
    // forwarded of its stream ends at a frame boundary.
    let mut enforced: Option<(Side, Enforced, bool)> = None;
    // Bytes that came with the heads: already forwarded, decode them now.
    let mut out_c = ctx.log.buffer();
    if let Some(e) = insp_c.feed(&client_leftover, &shared, &mut out_c) {
        enforced = Some((Side::Client, e, false));
    }
    ctx.log.send(out_c).await;
    let mut out_u = ctx.log.buffer();
    if enforced.is_none()
        && let Some(e) = insp_u.feed(&ubuf[uhead_len..], &shared, &mut out_u)
    {
        enforced = Some((Side::Upstream, e, false));
    }
    ctx.log.send(out_u).await;
    let (fed_c, fed_u) = (client_leftover.len() as u64, (ubuf.len() - uhead_len) as u64);
    let (ending_c, ending_u) = if enforced.is_some() {
        (Ending::Stopped, Ending::Stopped)
    } else {
        let (ending_c, ending_u) =
            relay_both(client, &mut upstream, Some((&mut insp_c, fed_c)), Some((&mut insp_u, fed_u)), stats, ctx).await;
        if let Ending::Enforced(e, clean) = ending_c {
            enforced = Some((Side::Client, e, clean));
        } else if let Ending::Enforced(e, clean) = ending_u {
            enforced = Some((Side::Upstream, e, clean));
        }
        (ending_c, ending_u)
    };
    stats.frames = PerSide { client: insp_c.frames(), upstream: insp_u.frames() };
    stats.violations += insp_c.violations() + insp_u.violations();
    if let Some((offender, e, clean_cut)) = enforced {
        // The offender gets the mapped close code, the other side 1001;
        // a close frame is only injected where the stream is between frames:
        // towards the offender, where the other side's stream stands;
        // towards the other side, where the offender's stream was cut.
        let code = e.violation.error.close_code().unwrap_or(CloseCode::PROTOCOL_ERROR);
        let reason = format!("wsproxy: {}", e.violation.error.rule());
        let offender_ok = match offender {
            Side::Client => insp_u.at_frame_boundary(),
            Side::Upstream => insp_c.at_frame_boundary(),
        };
        let other_ok = clean_cut;
        let (offender_stream, other_stream): (&mut Stream, &mut Stream) = match offender {
            Side::Client => (client, &mut upstream),
            Side::Upstream => (&mut upstream, client),
        };
        if offender_ok {
            let _ = send(offender_stream, &close_frame(offender, code, &reason)).await;
        }
        if other_ok {
            let other_reason = "wsproxy: the other side broke the protocol";
            let _ = send(other_stream, &close_frame(offender.other(), CloseCode::GOING_AWAY, other_reason)).await;
        }
        let _ = offender_stream.shutdown().await;
        let _ = other_stream.shutdown().await;
        return Ok(Ending::Enforced(e, clean_cut));
    }
    Ok(combine(ending_c, ending_u))
}

/// Connects to the upstream (TCP, then TLS for `wss://`); the error is the
/// one-line reason the client's 502 carries.
async fn connect_upstream(config: &Config) -> Result<Stream, String> {
    let upstream = &config.upstream;
    let addr = upstream.connect_addr();
    let tcp = match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(&addr)).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => return Err(format!("cannot connect to upstream {addr}: {e}")),
        Err(_) => return Err(format!("upstream {addr} did not accept within {CONNECT_TIMEOUT:?}")),
    };
    let _ = tcp.set_nodelay(true);
    if !upstream.secure {
        return Ok(Stream::Tcp(tcp));
    }
    let Some(tls_config) = config.upstream_tls.clone() else {
        return Err(format!("upstream {upstream} needs TLS, and no TLS configuration was given"));
    };
    let name = tls::server_name(&upstream.host).map_err(|e| format!("upstream {upstream}: {e}"))?;
    let connector = tokio_rustls::TlsConnector::from(tls_config);
    match tokio::time::timeout(CONNECT_TIMEOUT, connector.connect(name, tcp)).await {
        Ok(Ok(tls)) => Ok(Stream::TlsToUpstream(Box::new(tls))),
        Ok(Err(e)) => Err(format!("TLS handshake with upstream {addr} failed: {}", tls::describe_error(&e))),
        Err(_) => Err(format!("upstream {addr} did not finish its TLS handshake within {CONNECT_TIMEOUT:?}")),
    }
}

/// A close frame to send to `to`: masked towards the upstream (the proxy
/// speaks as a client there), unmasked towards the client.
fn close_frame(to: Side, code: CloseCode, reason: &str) -> Vec<u8> {
    let mask = match to {
        Side::Upstream => {
            use std::hash::{BuildHasher, Hasher};
            let random = std::collections::hash_map::RandomState::new().build_hasher().finish();
            Some((random as u32).to_be_bytes())
        }
        Side::Client => None,
    };
    let header = FrameHeader { mask, ..FrameHeader::new(OpCode::Close, 0) };
    let mut out = Vec::new();
    wsproto::encode_frame(&header, &wsproto::encode_close_payload(code, reason), &mut out);
    out
}

fn combine(a: Ending, b: Ending) -> Ending {
    for wanted in [Ending::Reset, Ending::Error, Ending::Timeout] {
        if a == wanted || b == wanted {
            return wanted;
        }
    }
    Ending::Eof
}

/// Reports a request that breaks `e`; with `--enforce`, also answers it
/// (400/426/431 with the reason) and returns how the connection ended.
async fn refuse_request(
    client: &mut Stream,
    ctx: &Ctx,
    out: &mut Vec<u8>,
    e: wsproto::Error,
    stats: &mut Stats,
) -> Option<Ending> {
    client_violation(ctx, out, e, 0, stats);
    if !ctx.config.enforce {
        return None;
    }
    ctx.flush(out).await;
    let _ = send(client, &handshake::build_rejection(e)).await;
    let _ = client.shutdown().await;
    let violation = wsproto::Violation { error: e, offset: 0 };
    Some(Ending::Enforced(Enforced { violation, frame_start: 0 }, false))
}

fn client_violation(ctx: &Ctx, out: &mut Vec<u8>, e: wsproto::Error, offset: u64, stats: &mut Stats) {
    stats.violations += 1;
    ctx.emit(
        out,
        &ViolationOut {
            from: Side::Client,
            rule: e.rule(),
            rfc: e.rfc(),
            offset,
            message: DisplayStr(e),
            enforced: ctx.config.enforce,
        },
    );
}

async fn bad_gateway_to(client: &mut Stream, ctx: &Ctx, out: &mut Vec<u8>, reason: &str) -> anyhow::Result<Ending> {
    ctx.emit(out, &ErrorOut { message: reason });
    let _ = send(client, &bad_gateway(reason)).await;
    let _ = client.shutdown().await;
    Ok(Ending::Error)
}

async fn relay_plain(client: &mut Stream, upstream: &mut Stream, stats: &mut Stats, ctx: &Ctx) -> Ending {
    let (a, b) = relay_both(client, upstream, None, None, stats, ctx).await;
    combine(a, b)
}

/// Relays both directions at once until both end; when one ends other than
/// by EOF, the other is told to stop. Adds the bytes relayed to `stats`.
async fn relay_both(
    client: &mut Stream,
    upstream: &mut Stream,
    insp_c: Option<(&mut DirectionInspector, u64)>,
    insp_u: Option<(&mut DirectionInspector, u64)>,
    stats: &mut Stats,
    ctx: &Ctx,
) -> (Ending, Ending) {
    let (stop_tx, stop_rx) = watch::channel(false);
    let (mut cr, mut cw) = client.split();
    let (mut ur, mut uw) = upstream.split();
    let last = AtomicU64::new(0);
    let idle = Idle { timeout: ctx.config.idle_timeout, start: Instant::now(), last: &last };
    let shared = stats.shared.clone();
    let stop_other = |ending: &Ending| {
        if !matches!(ending, Ending::Eof) {
            let _ = stop_tx.send(true);
        }
    };
    let c2u = async {
        let r = pump(&mut cr, &mut uw, insp_c, &shared, ctx, &stop_rx, &idle).await;
        stop_other(&r.0);
        r
    };
    let u2c = async {
        let r = pump(&mut ur, &mut cw, insp_u, &shared, ctx, &stop_rx, &idle).await;
        stop_other(&r.0);
        r
    };
    let ((a, bytes_c), (b, bytes_u)) = tokio::join!(c2u, u2c);
    stats.bytes.client += bytes_c;
    stats.bytes.upstream += bytes_u;
    (a, b)
}

/// The connection's idle clock, shared by both directions.
struct Idle<'a> {
    timeout: Option<Duration>,
    start: Instant,
    last: &'a AtomicU64,
}

impl Idle<'_> {
    fn touch(&self) {
        if self.timeout.is_some() {
            self.last.store(self.start.elapsed().as_millis() as u64, Ordering::Relaxed);
        }
    }

    /// How long until the connection counts as idle, from now.
    fn remaining(&self) -> Option<Duration> {
        let timeout = self.timeout?;
        let idle_for = self.start.elapsed().saturating_sub(Duration::from_millis(self.last.load(Ordering::Relaxed)));
        Some(timeout.saturating_sub(idle_for))
    }
}

/// Events are handed to the writer in batches of about this size, or as
/// soon as the direction goes quiet: one hand-over per burst, not per read.
const LOG_BATCH: usize = 48 << 10;

/// Relays one direction until EOF (then half-closes the other side), an
/// error, a stop signal, or an enforced violation. Returns how it ended and
/// the bytes relayed.
async fn pump(
    src: &mut StreamRead<'_>,
    dst: &mut StreamWrite<'_>,
    mut inspector: Option<(&mut DirectionInspector, u64)>,
    shared: &Mutex<Shared>,
    ctx: &Ctx,
    stop: &watch::Receiver<bool>,
    idle: &Idle<'_>,
) -> (Ending, u64) {
    let mut events = Vec::new();
    let mut buf = Vec::new();
    let result = relay_direction(src, dst, &mut inspector, shared, ctx, stop, idle, &mut events, &mut buf).await;
    ctx.buffers.give(buf);
    if !events.is_empty() {
        ctx.log.send(events).await;
    }
    result
}

#[allow(clippy::too_many_arguments)]
async fn relay_direction(
    src: &mut StreamRead<'_>,
    dst: &mut StreamWrite<'_>,
    inspector: &mut Option<(&mut DirectionInspector, u64)>,
    shared: &Mutex<Shared>,
    ctx: &Ctx,
    stop: &watch::Receiver<bool>,
    idle: &Idle<'_>,
    events: &mut Vec<u8>,
    buf: &mut Vec<u8>,
) -> (Ending, u64) {
    let enforce = ctx.config.enforce;
    let mut stop = stop.clone();
    let mut relayed = 0u64;
    // `buf` is lent from the pool when data flows and given back when the
    // direction goes quiet, so an idle connection holds no relay buffer.
    loop {
        // What is readable now, without waiting.
        let polled = poll_read_pooled(src, &mut Context::from_waker(Waker::noop()), &ctx.buffers, buf);
        let read = match polled {
            Poll::Ready(r) => r,
            Poll::Pending => {
                // About to wait: hand over what was logged so far.
                ctx.log.hand_over(events).await;
                let ready = async {
                    let read = std::future::poll_fn(|cx| poll_read_pooled(src, cx, &ctx.buffers, buf));
                    match idle.remaining() {
                        Some(left) => tokio::time::timeout(left, read).await.ok(),
                        None => Some(read.await),
                    }
                };
                // Bytes already readable are relayed before a stop takes
                // effect: when the other direction ends (say, a write to a
                // peer that has just closed), what that peer sent before
                // closing still reaches the other side.
                tokio::select! {
                    biased;
                    r = ready => match r {
                        None => {
                            if idle.remaining().is_some_and(|left| left.is_zero()) {
                                return (Ending::Timeout, relayed);
                            }
                            continue;
                        }
                        Some(r) => r,
                    },
                    _ = stop.wait_for(|s| *s) => return (Ending::Stopped, relayed),
                }
            }
        };
        let n = match read {
            // A TLS peer that closes without close_notify ends like a TCP EOF.
            _ if is_eof(&read) => {
                // Half-close: pass the EOF on, keep the other direction.
                let _ = dst.shutdown().await;
                return (Ending::Eof, relayed);
            }
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::ConnectionReset => return (Ending::Reset, relayed),
            Err(_) => return (Ending::Error, relayed),
        };
        idle.touch();
        let data = &buf[..n];
        if enforce && let Some((insp, fed_before)) = inspector.as_mut() {
            // Decode first: the offending frame must not pass.
            if let Some(e) = insp.feed(data, shared, events) {
                let done = *fed_before + relayed;
                let keep = e.frame_start.saturating_sub(done).min(n as u64) as usize;
                let _ = dst.write_all(&data[..keep]).await;
                return (Ending::Enforced(e, e.frame_start >= done), relayed + keep as u64);
            }
        }
        let written = match dst.write_all(data).await {
            Ok(()) => dst.flush().await,
            Err(e) => Err(e),
        };
        if let Err(e) = written {
            let ending = if e.kind() == io::ErrorKind::ConnectionReset || e.kind() == io::ErrorKind::BrokenPipe {
                Ending::Reset
            } else {
                Ending::Error
            };
            return (ending, relayed);
        }
        relayed += n as u64;
        if !enforce && let Some((insp, _)) = inspector.as_mut() {
            // Relayed first, decoded after: logging never delays the bytes.
            insp.feed(data, shared, events);
        }
        if events.len() >= LOG_BATCH {
            ctx.log.hand_over(events).await;
        }
    }
}

fn is_eof(read: &io::Result<usize>) -> bool {
    match read {
        Ok(n) => *n == 0,
        Err(e) => e.kind() == io::ErrorKind::UnexpectedEof,
    }
}

/// Reads what `src` has into `buf`, taking a buffer from the pool first if
/// `buf` has none and giving it back if nothing is there to read, so a
/// direction that waits holds no buffer.
fn poll_read_pooled(
    src: &mut StreamRead<'_>,
    cx: &mut Context<'_>,
    pool: &BufferPool,
    buf: &mut Vec<u8>,
) -> Poll<io::Result<usize>> {
    if buf.is_empty() {
        *buf = pool.take();
    }
    let mut into = ReadBuf::new(buf);
    let polled = Pin::new(src).poll_read(cx, &mut into);
    let n = into.filled().len();
    match polled {
        Poll::Pending => {
            pool.give(std::mem::take(buf));
            Poll::Pending
        }
        Poll::Ready(r) => Poll::Ready(r.map(|()| n)),
    }
}
