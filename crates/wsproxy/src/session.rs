//! The sans-IO session of one proxied connection: everything between
//! "these bytes arrived from this side" and "forward these, write these
//! events, end the connection". No sockets and no clock: the relay reads,
//! calls [`Session::feed`] with the time of the read, writes what the
//! session queued, and nothing else.
//!
//! The session follows every HTTP/1.1 exchange on the connection (RFC
//! 9112): request heads are parsed, rewritten ([`crate::head`]) and
//! logged; bodies are followed by their framing ([`crate::http1`]) so the
//! next head is found on a kept-alive connection; 1xx answers other than
//! 101 are interim (RFC 9110 §15.2); an upgrade request holds the client's
//! later bytes until the answer says what they are. After a 101 to a
//! WebSocket upgrade both directions are decoded by a
//! [`DirectionInspector`]. Whatever cannot be followed is relayed unchanged
//! from there on, and an `uninspected` event says why.
//!
//! Bytes are never re-encoded: what the session queues is the input itself
//! (as ranges of it, [`Chunk::Input`]), except request heads, whose `Host`
//! (and target, by the rule in [`crate::head`]) are rewritten, and what the
//! proxy says itself (a 502, a refusal or close frames under `--enforce`).

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::ops::Range;
use std::sync::Arc;
use std::time::Instant;

use wsproto::deflate::DeflateParams;
use wsproto::handshake::{self, HeadScanner, Limits};
use wsproto::{CloseCode, FrameHeader, OpCode, Status};

use crate::event::{
    DisplayStr, EndOut, ErrorOut, EventBody, FaultOut, HandshakeRequest, HandshakeResponse, HeaderOut, HttpOut,
    InterimResponse, OpcodeOut, Open, PerSide, Side, Time, Uninspected, ViolationOut,
};
use crate::fault::{self, FaultEngine, Out};
use crate::head;
use crate::http1::{BodyLength, BodyReader, request_body, response_body};
use crate::inspect::{DirectionInspector, Enforced, Shared};
use crate::log::Events;
use crate::record::Record;
use crate::{Config, tls};

/// A piece of what to write to a side, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Chunk {
    /// These bytes of the data just fed.
    Input(Range<usize>),
    /// Bytes of the session's own: a rewritten head, held bytes, a reply.
    Owned(Vec<u8>),
    /// A `--fault` delay: what follows goes out at this time (the time of
    /// the read plus the delay), after what came before ([`crate::hold`]).
    HoldUntil(Instant),
    /// Bytes a `--fault` rule rate-limits to this many bytes per second.
    Throttled(Vec<u8>, u64),
}

/// Whether the connection goes on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use]
pub(crate) enum Flow {
    Continue,
    /// End the connection once what is queued for both sides is written.
    Stop,
}

/// How the relay saw the connection end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ending {
    Eof,
    Reset,
    Error,
    Timeout,
}

/// Bytes the client may send after an upgrade request before the answer
/// comes; past this the connection is relayed without being decoded.
const MAX_HELD: usize = 1 << 20;

/// Requests that may wait for their answers at once (pipelining); past
/// this the connection is relayed without being decoded, so what the
/// session remembers stays bounded.
const MAX_PENDING: usize = 256;

/// Bytes of method and target that pending requests may hold at once.
const MAX_PENDING_BYTES: usize = 1 << 20;

/// A head being collected.
#[derive(Debug, Default)]
struct HeadBuf {
    buf: Vec<u8>,
    scanner: HeadScanner,
}

/// What the client asked for, kept until its answer comes.
#[derive(Debug, Default)]
struct Exchange {
    method: String,
    target: String,
    forwarded_target: Option<String>,
    forwarded_host: Option<String>,
    /// A WebSocket upgrade: the handshake to check the 101 against.
    websocket: Option<Ask>,
    /// Any upgrade (`Upgrade` header) or CONNECT: the client's next bytes
    /// wait for the answer.
    upgrade: bool,
    request_body_len: u64,
    /// Where the bytes after this request start in the client's stream.
    end_offset: u64,
    /// With [`Config::http_headers`], for a plain exchange: the request's
    /// version and headers, then the response's reason and headers.
    heads: Option<Box<Heads>>,
}

/// The heads of a plain exchange, kept for `--har`.
#[derive(Debug, Default)]
struct Heads {
    version: String,
    request: Vec<(String, String)>,
    reason: String,
    response_version: &'static str,
    response: Option<Vec<(String, String)>>,
}

impl Heads {
    fn size(&self) -> usize {
        let lines = |h: &[(String, String)]| h.iter().map(|(n, v)| n.len() + v.len()).sum::<usize>();
        self.version.len() + lines(&self.request) + self.reason.len() + self.response.as_deref().map_or(0, lines)
    }
}

/// Header lines as kept (secrets redacted as in the log).
fn owned_headers(headers: &[handshake::Header<'_>], show_secrets: bool) -> Vec<(String, String)> {
    headers_out(headers, show_secrets).into_iter().map(|h| (h.name.to_owned(), h.value.into_owned())).collect()
}

impl Exchange {
    /// Bytes it holds (for the bound on pending exchanges).
    fn size(&self) -> usize {
        self.method.len()
            + self.target.len()
            + self.forwarded_target.as_ref().map_or(0, String::len)
            + self.forwarded_host.as_ref().map_or(0, String::len)
            + self.heads.as_ref().map_or(0, |h| h.size())
    }
}

#[derive(Debug, Default)]
struct Ask {
    valid: bool,
    key: String,
    protocols: Vec<String>,
    /// The `Sec-WebSocket-Extensions` values as offered upstream, for
    /// checking the answer's parameters against them (RFC 7692 §7.1).
    extension_offers: Vec<Vec<u8>>,
}

#[derive(Debug)]
enum ClientState {
    Head(HeadBuf),
    /// A request body; then, for an upgrade, the wait for its answer.
    Body {
        reader: BodyReader,
        then_wait: bool,
    },
    /// After an upgrade request: bytes held until the answer says what
    /// they are.
    WaitUpgrade(Vec<u8>),
    WebSocket(Box<DirectionInspector>),
    Tunnel,
    /// A request refused under `--enforce`: nothing more goes upstream.
    Refused,
}

#[derive(Debug)]
enum UpstreamState {
    Head(HeadBuf),
    Body { reader: BodyReader, exchange: Box<Exchange>, status: u16 },
    WebSocket(Box<DirectionInspector>),
    Tunnel,
}

/// The state of one proxied connection.
#[derive(Debug)]
pub(crate) struct Session {
    conn: u64,
    config: Arc<Config>,
    limits: Limits,
    started: Instant,
    client: ClientState,
    upstream: UpstreamState,
    /// Requests forwarded and not yet answered, oldest first.
    exchanges: VecDeque<Exchange>,
    /// What the two inspectors share (closes, pings).
    shared: Shared,
    /// What to write to each side, in order ([`Side::index`]).
    queued: [Vec<Chunk>; 2],
    /// Bytes each side sent so far (its stream offset).
    bytes: [u64; 2],
    /// Offset in each side's stream where its WebSocket frames start.
    ws_base: [u64; 2],
    /// Frames and violations of inspectors no longer in use, and
    /// violations found outside them.
    violations: u64,
    wants_upstream: bool,
    connected: bool,
    /// Set once the connection must end; with the violation when enforced.
    stopped: Option<Option<Enforced>>,
    uninspected: bool,
    /// Errors written as events since the relay last took them (it counts
    /// them and puts them on stderr).
    errors: Vec<String>,
    /// Whether a response head has come from the upstream yet.
    answered: bool,
    /// A refusal (`--enforce`) waiting for the answers to earlier requests.
    refusal: Option<wsproto::Error>,
    /// Bytes of the pending exchanges' method and targets.
    pending_bytes: usize,
    /// `--fault` engines per sender, once the WebSocket starts (only for a
    /// side some rule can act on).
    faults: [Option<Box<FaultEngine>>; 2],
    /// Bytes each side's inspector decoded since the 101, whether through
    /// a fault engine or not: where bytes injected on a side's behalf
    /// start in what its receiver gets.
    decoded: [u64; 2],
    /// A fault rule ended the connection (`reset`: with a TCP reset).
    fault_end: Option<FaultEnd>,
}

/// How a fault rule ended the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FaultEnd {
    /// Closes sent, or a frame cut: both connections end normally.
    End,
    /// Both TCP connections are reset.
    Reset,
}

impl Session {
    /// A session for a client that connected from `client` at `t`; writes
    /// the `open` event.
    pub(crate) fn new(conn: u64, config: Arc<Config>, client: SocketAddr, t: &Time, events: &mut Events) -> Session {
        let upstream_addr = config.upstream.connect_addr();
        let s = Session {
            conn,
            config,
            limits: Limits::default(),
            started: t.instant,
            client: ClientState::Head(HeadBuf::default()),
            upstream: UpstreamState::Head(HeadBuf::default()),
            exchanges: VecDeque::new(),
            shared: Shared::default(),
            queued: [Vec::new(), Vec::new()],
            bytes: [0, 0],
            ws_base: [0, 0],
            violations: 0,
            wants_upstream: false,
            connected: false,
            stopped: None,
            uninspected: false,
            errors: Vec::new(),
            answered: false,
            refusal: None,
            pending_bytes: 0,
            faults: [None, None],
            decoded: [0, 0],
            fault_end: None,
        };
        s.emit(events, t, &Open { client, upstream: &upstream_addr });
        s
    }

    fn emit<B: EventBody>(&self, events: &mut Events, t: &Time, body: &B) {
        events.emit(&t.stamp, self.conn, body);
    }

    /// Whether the client's first request head is complete (or broken):
    /// the relay then connects to the upstream.
    pub(crate) fn head_complete(&self) -> bool {
        self.wants_upstream
    }

    /// The upstream is connected: from now on forwarded input is queued as
    /// ranges of the data fed, not copied.
    pub(crate) fn set_connected(&mut self) {
        self.connected = true;
    }

    /// Whether the connection must end.
    pub(crate) fn is_stopped(&self) -> bool {
        self.stopped.is_some()
    }

    /// Bytes the session holds of its own: partial heads, bytes after an
    /// upgrade request, copies queued and not yet taken. Bounded by the head
    /// limit and [`MAX_HELD`].
    pub(crate) fn held(&self) -> usize {
        let client = match &self.client {
            ClientState::Head(hb) => hb.buf.len(),
            ClientState::WaitUpgrade(held) => held.len(),
            _ => 0,
        };
        let upstream = match &self.upstream {
            UpstreamState::Head(hb) => hb.buf.len(),
            _ => 0,
        };
        let queued: usize = self
            .queued
            .iter()
            .flatten()
            .map(|c| match c {
                Chunk::Owned(v) | Chunk::Throttled(v, _) => v.len(),
                _ => 0,
            })
            .sum();
        let faults: usize = self.faults.iter().flatten().map(|e| e.held()).sum();
        client + upstream + queued + faults
    }

    /// The side whose HTTP head has begun and is not complete (the client's
    /// first), if any.
    pub(crate) fn partial_head(&self) -> Option<Side> {
        match (&self.client, &self.upstream) {
            (ClientState::Head(hb), _) if !hb.buf.is_empty() => Some(Side::Client),
            (_, UpstreamState::Head(hb)) if !hb.buf.is_empty() => Some(Side::Upstream),
            _ => None,
        }
    }

    /// Whether bytes from `from` are forwarded whatever they hold, so that
    /// the relay may write them first and call [`Session::observe`] after
    /// (logging never delays the bytes).
    pub(crate) fn passthrough(&self, from: Side) -> bool {
        if self.stopped.is_some() {
            return false;
        }
        let enforce = self.config.enforce;
        match from {
            Side::Client => match self.client {
                ClientState::Tunnel => true,
                ClientState::WebSocket(_) => !enforce && self.faults[0].is_none(),
                _ => false,
            },
            Side::Upstream => match self.upstream {
                UpstreamState::Tunnel => true,
                UpstreamState::WebSocket(_) => !enforce && self.faults[1].is_none(),
                _ => false,
            },
        }
    }

    /// Takes what is queued for `to`. [`Chunk::Input`] ranges refer to the
    /// data of the last [`Session::feed`] from the other side.
    pub(crate) fn take_queued(&mut self, to: Side) -> Vec<Chunk> {
        std::mem::take(&mut self.queued[to.index()])
    }

    /// Moves what is queued for `to` to the end of `out`, the ranges of
    /// the data just fed shifted by `offset` (where that data starts in the
    /// caller's read). The queue keeps its memory, so that the relay's hot
    /// path allocates nothing per read.
    pub(crate) fn append_queued(&mut self, to: Side, out: &mut Vec<Chunk>, offset: usize) {
        out.extend(self.queued[to.index()].drain(..).map(|c| match c {
            Chunk::Input(r) => Chunk::Input(r.start + offset..r.end + offset),
            other => other,
        }));
    }

    /// Whether anything is queued for `to`.
    pub(crate) fn has_queued(&self, to: Side) -> bool {
        !self.queued[to.index()].is_empty()
    }

    /// Bytes `from` sent; what to forward is queued for the other side
    /// (take it with [`Session::take_queued`] before the next feed).
    pub(crate) fn feed(&mut self, from: Side, data: &[u8], t: &Time, events: &mut Events) -> Flow {
        self.feed_inner(from, data, t, events, Forwarding::Queue)
    }

    /// Bytes `from` sent that the relay already forwarded (see
    /// [`Session::passthrough`]): decoded and logged only.
    pub(crate) fn observe(&mut self, from: Side, data: &[u8], t: &Time, events: &mut Events) {
        let _ = self.feed_inner(from, data, t, events, Forwarding::Done);
    }

    fn feed_inner(&mut self, from: Side, data: &[u8], t: &Time, events: &mut Events, fwd: Forwarding) -> Flow {
        if self.stopped.is_some() {
            return Flow::Stop;
        }
        events.record(&t.stamp, self.conn, &Record::Data { from, bytes: data });
        // Before the upstream is connected there is nothing to write input
        // to yet: what is forwarded is copied.
        let fwd = if fwd == Forwarding::Queue && !self.connected { Forwarding::Copy } else { fwd };
        let src = Src { data, fwd };
        match from {
            Side::Client => self.client_bytes(src, self.bytes[0], t, events),
            Side::Upstream => self.upstream_bytes(src, self.bytes[1], t, events),
        }
        self.bytes[from.index()] += data.len() as u64;
        if self.stopped.is_some() { Flow::Stop } else { Flow::Continue }
    }

    /// `from` ended its stream (EOF). Bytes the session was holding for the
    /// other side are queued, and a head cut short is said.
    pub(crate) fn eof(&mut self, from: Side, t: &Time, events: &mut Events) {
        events.record(&t.stamp, self.conn, &Record::Eof { from });
        if self.stopped.is_some() {
            return;
        }
        self.fault_flush(from, t, events);
        match from {
            Side::Client => match &self.client {
                ClientState::Head(hb) if !hb.buf.is_empty() => self.stop_inspecting(
                    Side::Client,
                    "the client ended the connection before its request head was complete",
                    t,
                    events,
                ),
                ClientState::WaitUpgrade(held) if !held.is_empty() => self.stop_inspecting(
                    Side::Client,
                    "the client ended the connection before its upgrade was answered",
                    t,
                    events,
                ),
                _ => {}
            },
            Side::Upstream => match &self.upstream {
                UpstreamState::Head(hb) if !hb.buf.is_empty() || !self.exchanges.is_empty() => self.stop_inspecting(
                    Side::Upstream,
                    "the upstream ended the connection before its response head was complete",
                    t,
                    events,
                ),
                _ => {}
            },
        }
    }

    /// Queues `src.data[range]` for `to`, as the input or as a copy.
    fn forward(&mut self, to: Side, src: Src<'_>, range: Range<usize>) {
        if range.is_empty() {
            return;
        }
        let q = &mut self.queued[to.index()];
        match src.fwd {
            Forwarding::Done => {}
            Forwarding::Copy => match q.last_mut() {
                Some(Chunk::Owned(v)) => v.extend_from_slice(&src.data[range]),
                _ => q.push(Chunk::Owned(src.data[range].to_vec())),
            },
            Forwarding::Queue => match q.last_mut() {
                Some(Chunk::Input(r)) if r.end == range.start => r.end = range.end,
                _ => q.push(Chunk::Input(range)),
            },
        }
    }

    fn queue_owned(&mut self, to: Side, bytes: Vec<u8>) {
        if !bytes.is_empty() {
            self.queued[to.index()].push(Chunk::Owned(bytes));
        }
    }

    /// The client's stream: `src` starts at `start_offset` in it.
    fn client_bytes(&mut self, src: Src<'_>, start_offset: u64, t: &Time, events: &mut Events) {
        let data = src.data;
        let mut pos = 0;
        while pos < data.len() && self.stopped.is_none() {
            match &mut self.client {
                ClientState::Head(hb) => {
                    let before = hb.buf.len();
                    hb.buf.extend_from_slice(&data[pos..]);
                    // No HTTP head starts like a TLS record: say so rather
                    // than wait for a head that never comes.
                    if !self.wants_upstream && tls::looks_like_tls(&hb.buf) {
                        let message = if self.config.listen_tls.is_some() {
                            "the client sent TLS records inside TLS; dropped"
                        } else {
                            "the client speaks TLS to a plain listener: connect with ws://, \
                             or give the proxy --tls-cert and --tls-key; dropped"
                        };
                        self.error(message, t, events);
                        self.stopped = Some(None);
                        return;
                    }
                    match hb.scanner.scan(&hb.buf, &self.limits) {
                        Ok(Status::Partial) => pos = data.len(),
                        Ok(Status::Complete(n)) => {
                            let mut head = std::mem::take(&mut hb.buf);
                            head.truncate(n);
                            pos += n - before;
                            let end_offset = start_offset + pos as u64;
                            self.client = ClientState::Tunnel;
                            self.request_head(&head, end_offset, t, events);
                        }
                        Err(e) => {
                            let held = std::mem::take(&mut hb.buf);
                            let head_offset = (start_offset + pos as u64).saturating_sub(before as u64);
                            self.client = ClientState::Tunnel;
                            pos = data.len();
                            self.bad_request(e, held, head_offset, t, events);
                        }
                    }
                }
                ClientState::Body { reader, then_wait } => match reader.feed(&data[pos..]) {
                    Ok(n) => {
                        let (done, len, then_wait) = (reader.is_done(), reader.content_len(), *then_wait);
                        self.forward(Side::Upstream, src, pos..pos + n);
                        pos += n;
                        if done {
                            if let Some(x) = self.exchanges.back_mut() {
                                x.request_body_len = len;
                                x.end_offset = start_offset + pos as u64;
                            }
                            self.client = if then_wait {
                                ClientState::WaitUpgrade(Vec::new())
                            } else {
                                ClientState::Head(HeadBuf::default())
                            };
                        }
                    }
                    Err(e) => self.stop_inspecting(Side::Client, e.describe(), t, events),
                },
                ClientState::WaitUpgrade(held) => {
                    held.extend_from_slice(&data[pos..]);
                    pos = data.len();
                    if held.len() > MAX_HELD {
                        self.stop_inspecting(
                            Side::Client,
                            "the client sent more than 1 MiB after an upgrade request before the answer came",
                            t,
                            events,
                        );
                    }
                }
                ClientState::WebSocket(_) if self.faults[0].is_some() => {
                    self.fault_bytes(Side::Client, &data[pos..], t, events);
                    pos = data.len();
                }
                ClientState::WebSocket(insp) => {
                    let fed = start_offset + pos as u64 - self.ws_base[0];
                    let (keep, found) = decode_frames(insp, &mut self.shared, &data[pos..], fed, t, events);
                    self.decoded[0] += (data.len() - pos) as u64;
                    self.forward(Side::Upstream, src, pos..pos + keep);
                    pos = data.len();
                    if let Some((e, clean)) = found {
                        self.enforce(Side::Client, e, clean);
                    }
                }
                ClientState::Tunnel => {
                    self.forward(Side::Upstream, src, pos..data.len());
                    pos = data.len();
                }
                ClientState::Refused => pos = data.len(),
            }
        }
    }

    /// The upstream's stream: `src` starts at `start_offset` in it.
    fn upstream_bytes(&mut self, src: Src<'_>, start_offset: u64, t: &Time, events: &mut Events) {
        let data = src.data;
        let mut pos = 0;
        while pos < data.len() && self.stopped.is_none() {
            match &mut self.upstream {
                UpstreamState::Head(hb) => {
                    let before = hb.buf.len();
                    hb.buf.extend_from_slice(&data[pos..]);
                    if !self.answered && tls::looks_like_tls(&hb.buf) {
                        let reason =
                            format!("upstream {} answered in TLS to a plain request: use wss://", self.config.upstream);
                        return self.upstream_failed(&reason, t, events);
                    }
                    match hb.scanner.scan(&hb.buf, &self.limits) {
                        Ok(Status::Partial) => pos = data.len(),
                        Ok(Status::Complete(n)) => {
                            let mut head = std::mem::take(&mut hb.buf);
                            head.truncate(n);
                            pos += n - before;
                            self.upstream = UpstreamState::Tunnel;
                            self.response_head(head, start_offset + pos as u64, t, events);
                        }
                        Err(e) => {
                            let held = std::mem::take(&mut hb.buf);
                            pos = data.len();
                            self.queue_owned(Side::Client, held);
                            self.stop_inspecting(Side::Upstream, head_broken_reason(e), t, events);
                        }
                    }
                }
                UpstreamState::Body { reader, .. } => match reader.feed(&data[pos..]) {
                    Ok(n) => {
                        let done = reader.is_done();
                        self.forward(Side::Client, src, pos..pos + n);
                        pos += n;
                        if done {
                            let state = std::mem::replace(&mut self.upstream, UpstreamState::Head(HeadBuf::default()));
                            if let UpstreamState::Body { reader, exchange, status } = state {
                                self.exchange_done(&exchange, Some((status, reader.content_len())), t, events);
                            }
                            self.response_complete();
                        }
                    }
                    Err(e) => self.stop_inspecting(Side::Upstream, e.describe(), t, events),
                },
                UpstreamState::WebSocket(_) if self.faults[1].is_some() => {
                    self.fault_bytes(Side::Upstream, &data[pos..], t, events);
                    pos = data.len();
                }
                UpstreamState::WebSocket(insp) => {
                    let fed = start_offset + pos as u64 - self.ws_base[1];
                    let (keep, found) = decode_frames(insp, &mut self.shared, &data[pos..], fed, t, events);
                    self.decoded[1] += (data.len() - pos) as u64;
                    self.forward(Side::Client, src, pos..pos + keep);
                    pos = data.len();
                    if let Some((e, clean)) = found {
                        self.enforce(Side::Upstream, e, clean);
                    }
                }
                UpstreamState::Tunnel => {
                    self.forward(Side::Client, src, pos..data.len());
                    pos = data.len();
                }
            }
        }
    }

    /// A complete request head: parse, check, rewrite, log, forward, and
    /// decide what the client's next bytes are.
    fn request_head(&mut self, raw: &[u8], end_offset: u64, t: &Time, events: &mut Events) {
        let config = self.config.clone();
        let head_offset = end_offset - raw.len() as u64;
        let req = match handshake::parse_request(raw, &self.limits) {
            Ok(Status::Complete((req, _))) => req,
            Ok(Status::Partial) => {
                return self.bad_request(wsproto::Error::InvalidNewLine, raw.to_vec(), head_offset, t, events);
            }
            Err(e) => return self.bad_request(e, raw.to_vec(), head_offset, t, events),
        };
        self.wants_upstream = true;
        let websocket = req.is_websocket_upgrade();
        let forwarded_target = head::forwarded_target(req.target, &config.upstream.path);
        let authority = config.upstream.authority();
        let forwarded_host = (!config.preserve_host).then_some(authority.as_str());
        let layout = head::layout(raw);
        let drop_extensions = websocket && config.no_compression;
        let rewrite = head::Rewrite { target: forwarded_target.as_deref(), host: forwarded_host, drop_extensions };
        let forward = match &layout {
            Some(l) => head::rewrite(raw, l, rewrite),
            None => raw.to_vec(),
        };
        let changed_host = forwarded_host.filter(|h| req.header("host") != Some(h.as_bytes()));
        let mut exchange = Exchange {
            method: req.method.to_owned(),
            target: req.target.to_owned(),
            forwarded_target: forwarded_target.clone(),
            forwarded_host: changed_host.map(str::to_owned),
            websocket: None,
            upgrade: req.header("upgrade").is_some() || req.method == "CONNECT",
            request_body_len: 0,
            end_offset,
            heads: (config.http_headers && !websocket).then(|| {
                Box::new(Heads {
                    version: version_str(req.version_minor).to_owned(),
                    request: owned_headers(&req.headers, config.show_secrets),
                    ..Heads::default()
                })
            }),
        };
        if websocket {
            let removed_headers = if drop_extensions && layout.as_ref().is_some_and(|l| !l.extension_lines.is_empty()) {
                vec!["Sec-WebSocket-Extensions"]
            } else {
                Vec::new()
            };
            self.emit(
                events,
                t,
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
            let mut ask = Ask::default();
            match req.validate() {
                Ok(hs) => {
                    ask.valid = true;
                    ask.key = hs.key.to_owned();
                    ask.protocols = hs.protocols.iter().map(|p| (*p).to_owned()).collect();
                    // With --no-compression the upstream was offered none.
                    if !drop_extensions {
                        ask.extension_offers =
                            req.headers_named("sec-websocket-extensions").map(<[u8]>::to_vec).collect();
                    }
                }
                Err(e) => {
                    self.violation(Side::Client, e, (head_offset, config.enforce), t, events);
                    if config.enforce {
                        return self.refuse(e);
                    }
                }
            }
            exchange.websocket = Some(ask);
        }
        let body = match request_body(&req.headers) {
            Ok(b) => b,
            Err(e) => {
                self.queue_owned(Side::Upstream, forward);
                self.exchanges.push_back(exchange);
                return self.stop_inspecting(Side::Client, e.describe(), t, events);
            }
        };
        let wait = exchange.upgrade;
        self.queue_owned(Side::Upstream, forward);
        self.pending_bytes += exchange.size();
        self.exchanges.push_back(exchange);
        if self.exchanges.len() > MAX_PENDING || self.pending_bytes > MAX_PENDING_BYTES {
            return self.stop_inspecting(
                Side::Client,
                "too many requests are waiting for their answers (pipelining: over 256, or over 1 MiB of targets)",
                t,
                events,
            );
        }
        self.client = match body {
            BodyLength::None => {
                if wait {
                    ClientState::WaitUpgrade(Vec::new())
                } else {
                    ClientState::Head(HeadBuf::default())
                }
            }
            other => ClientState::Body { reader: BodyReader::new(other), then_wait: wait },
        };
    }

    /// A request head that breaks the syntax: reported; relayed as it came
    /// (then nothing more is followed), or refused under `--enforce`.
    fn bad_request(&mut self, e: wsproto::Error, raw: Vec<u8>, head_offset: u64, t: &Time, events: &mut Events) {
        self.wants_upstream = true;
        self.violation(Side::Client, e, (head_offset, self.config.enforce), t, events);
        if self.config.enforce {
            return self.refuse(e);
        }
        self.queue_owned(Side::Upstream, raw);
        self.stop_inspecting(Side::Client, "the client's request head breaks the HTTP/1.1 syntax", t, events);
    }

    /// Under `--enforce`: answers the request with the error's status and
    /// ends the connection (nothing goes upstream).
    ///
    /// The refused request is never forwarded, nor anything the client sends
    /// after it. If answers to earlier requests are still coming, the
    /// refusal waits for them (it must not land inside another response).
    fn refuse(&mut self, e: wsproto::Error) {
        self.client = ClientState::Refused;
        self.refusal = Some(e);
        self.response_complete();
    }

    /// The upstream is between responses: a refusal waiting for the earlier
    /// answers is sent now, if none is pending any more.
    fn response_complete(&mut self) {
        let idle = matches!(&self.upstream, UpstreamState::Head(hb) if hb.buf.is_empty());
        if idle
            && self.exchanges.is_empty()
            && let Some(e) = self.refusal.take()
        {
            self.queue_owned(Side::Client, handshake::build_rejection(e));
            let violation = wsproto::Violation { error: e, offset: 0 };
            self.stopped = Some(Some(Enforced { violation, frame_start: 0 }));
        }
    }

    /// A complete response head.
    fn response_head(&mut self, raw: Vec<u8>, end_offset: u64, t: &Time, events: &mut Events) {
        self.answered = true;
        let raw_len = raw.len() as u64;
        let config = self.config.clone();
        let res = match handshake::parse_response(&raw, &self.limits) {
            Ok(Status::Complete((res, _))) => res,
            Ok(Status::Partial) | Err(_) => {
                self.queue_owned(Side::Client, raw);
                return self.stop_inspecting(
                    Side::Upstream,
                    "the upstream's answer is not an HTTP/1.x response",
                    t,
                    events,
                );
            }
        };
        // RFC 9110 §15.2: a 1xx other than 101 is interim; the final answer
        // follows.
        if (100..200).contains(&res.status) && res.status != 101 {
            self.emit(
                events,
                t,
                &InterimResponse {
                    status: res.status,
                    reason: res.reason,
                    version: version_str(res.version_minor),
                    headers: headers_out(&res.headers, config.show_secrets),
                },
            );
            self.upstream = UpstreamState::Head(HeadBuf::default());
            return self.queue_owned(Side::Client, raw);
        }
        let Some(mut exchange) = self.pop_exchange() else {
            self.queue_owned(Side::Client, raw);
            return self.stop_inspecting(
                Side::Upstream,
                "the upstream sent a response with no request pending",
                t,
                events,
            );
        };
        let body = response_body(&exchange.method, res.status, &res.headers);
        if let Some(heads) = &mut exchange.heads {
            heads.reason = res.reason.to_owned();
            heads.response_version = version_str(res.version_minor);
            heads.response = Some(owned_headers(&res.headers, config.show_secrets));
        }
        let mut upgraded = false;
        let mut deflate = None;
        // Negotiated extensions the proxy cannot decode.
        let mut undecoded: Vec<String> = Vec::new();
        if let Some(ask) = &exchange.websocket {
            let mut deflate_error = None;
            let mut protocol = None;
            let mut extensions = Vec::new();
            if res.status == 101 {
                upgraded = true;
                protocol = res.header("sec-websocket-protocol").and_then(|v| std::str::from_utf8(v).ok());
                let mut parsed = Vec::new();
                for v in res.headers_named("sec-websocket-extensions") {
                    extensions.push(String::from_utf8_lossy(v).into_owned());
                    let _ = handshake::parse_extensions(v, &mut parsed);
                }
                // Parameters §7.1 does not allow are reported below (as a
                // violation of the 101); the stream is still read as
                // compressed, which is what both ends will do.
                deflate = match DeflateParams::from_response(&parsed) {
                    Ok(params) => params,
                    Err(e) => {
                        deflate_error = Some(e);
                        Some(DeflateParams::default())
                    }
                };
                // RFC 6455 §5.2: an extension other than permessage-deflate
                // may define the reserved bits; the proxy cannot decode it,
                // so its frames are shown raw and not judged by them.
                for e in parsed.iter().filter(|e| !e.name.eq_ignore_ascii_case(handshake::PERMESSAGE_DEFLATE)) {
                    undecoded.push(e.name.to_owned());
                }
                if !undecoded.is_empty() {
                    deflate = None;
                }
            }
            self.emit(
                events,
                t,
                &HandshakeResponse {
                    status: res.status,
                    reason: res.reason,
                    version: version_str(res.version_minor),
                    headers: headers_out(&res.headers, config.show_secrets),
                    protocol,
                    extensions,
                    upgraded,
                    undecoded_extensions: undecoded.iter().map(String::as_str).collect(),
                },
            );
            if upgraded && ask.valid {
                let offered: Vec<&str> = ask.protocols.iter().map(String::as_str).collect();
                let mut offers = Vec::new();
                for v in &ask.extension_offers {
                    // Validated with the request: the syntax is right.
                    let _ = handshake::parse_extensions(v, &mut offers);
                }
                // RFC 6455 §4.1 and RFC 7692 §7.1: the answer against the
                // offers, parameters included.
                let checked = res.validate_offers(ask.key.as_bytes(), &offered, &offers).map(|_| ());
                if let Err(e) = checked.and(deflate_error.map_or(Ok(()), Err)) {
                    self.violation(Side::Upstream, e, (end_offset - raw_len, false), t, events);
                }
            }
        }
        let status = res.status;
        drop(res);
        self.queue_owned(Side::Client, raw);
        if upgraded {
            return self.start_websocket(&exchange, end_offset, deflate, !undecoded.is_empty(), t, events);
        }
        let connect = exchange.method == "CONNECT" && (200..300).contains(&status);
        if status == 101 || connect {
            self.exchange_done(&exchange, Some((status, 0)), t, events);
            let why = if connect {
                "the CONNECT request opened a tunnel"
            } else {
                "the connection switched to a protocol other than WebSocket"
            };
            return self.stop_inspecting(Side::Upstream, why, t, events);
        }
        let (resume, held_offset) = (exchange.upgrade, exchange.end_offset);
        match body {
            Ok(length) => {
                let reader = BodyReader::new(length);
                if reader.is_done() {
                    self.exchange_done(&exchange, Some((status, 0)), t, events);
                    self.upstream = UpstreamState::Head(HeadBuf::default());
                    self.response_complete();
                } else {
                    self.upstream = UpstreamState::Body { reader, exchange: Box::new(exchange), status };
                }
            }
            Err(e) => {
                self.exchange_done(&exchange, Some((status, 0)), t, events);
                self.stop_inspecting(Side::Upstream, e.describe(), t, events);
            }
        }
        // Not upgraded: what the client sent meanwhile is HTTP again (read
        // once the response's own state is set, which it may change).
        if resume {
            self.resume_client(held_offset, t, events);
        }
    }

    fn pop_exchange(&mut self) -> Option<Exchange> {
        let exchange = self.exchanges.pop_front()?;
        self.pending_bytes -= exchange.size();
        Some(exchange)
    }

    /// After a refused upgrade: the client's held bytes, which start at
    /// `held_offset` in its stream, are requests again.
    fn resume_client(&mut self, held_offset: u64, t: &Time, events: &mut Events) {
        match &mut self.client {
            ClientState::WaitUpgrade(held) => {
                let held = std::mem::take(held);
                self.client = ClientState::Head(HeadBuf::default());
                // Queued as copies: this runs in the upstream's feed.
                self.client_bytes(Src { data: &held, fwd: Forwarding::Copy }, held_offset, t, events);
            }
            ClientState::Body { then_wait, .. } => *then_wait = false,
            _ => {}
        }
    }

    /// A 101 to a WebSocket upgrade: both directions are decoded from here
    /// on, starting with what the client sent before the answer.
    fn start_websocket(
        &mut self,
        exchange: &Exchange,
        upstream_offset: u64,
        deflate: Option<DeflateParams>,
        opaque: bool,
        t: &Time,
        events: &mut Events,
    ) {
        let opts = self.config.inspect_options();
        let inspector = |from, base| {
            let mut insp = DirectionInspector::new(self.conn, from, base, deflate, opts);
            if opaque {
                insp.set_opaque_extension();
            }
            Box::new(insp)
        };
        self.ws_base[1] = upstream_offset;
        self.upstream = UpstreamState::WebSocket(inspector(Side::Upstream, upstream_offset));
        match std::mem::replace(&mut self.client, ClientState::Tunnel) {
            ClientState::WaitUpgrade(held) => {
                self.ws_base[0] = exchange.end_offset;
                self.client = ClientState::WebSocket(inspector(Side::Client, exchange.end_offset));
                self.start_faults();
                self.client_bytes(Src { data: &held, fwd: Forwarding::Copy }, exchange.end_offset, t, events);
            }
            other => {
                self.client = other;
                self.start_faults();
                self.stop_inspecting(Side::Client, "the upgrade was answered before the request body ended", t, events);
            }
        }
    }

    /// `wsproxy read` of a capture that begins inside a WebSocket
    /// connection: `from`'s stream is WebSocket frames from offset
    /// `skipped` on (the bytes before were not fed, and are counted in its
    /// byte total). No handshake was seen, so the extensions are unknown:
    /// reserved bits are not judged and payloads are shown as sent.
    pub(crate) fn resume_websocket(&mut self, from: Side, skipped: u64) {
        let mut insp = Box::new(DirectionInspector::new(self.conn, from, skipped, None, self.config.inspect_options()));
        insp.set_opaque_extension();
        self.bytes[from.index()] = skipped;
        self.ws_base[from.index()] = skipped;
        match from {
            Side::Client => self.client = ClientState::WebSocket(insp),
            Side::Upstream => self.upstream = UpstreamState::WebSocket(insp),
        }
    }

    /// An exchange is over: logged as `http` unless it was a WebSocket
    /// handshake (logged as `handshake_response`).
    fn exchange_done(&self, exchange: &Exchange, response: Option<(u16, u64)>, t: &Time, events: &mut Events) {
        if exchange.websocket.is_some() {
            return;
        }
        self.emit(
            events,
            t,
            &HttpOut {
                method: &exchange.method,
                target: &exchange.target,
                status: response.map(|r| r.0),
                request_body_len: exchange.request_body_len,
                response_body_len: response.map(|r| r.1),
                forwarded_target: exchange.forwarded_target.as_deref(),
                forwarded_host: exchange.forwarded_host.as_deref(),
                version: exchange.heads.as_ref().map(|h| h.version.as_str()),
                request_headers: exchange.heads.as_ref().map(|h| headers_ref(&h.request)),
                reason: exchange.heads.as_ref().filter(|h| h.response.is_some()).map(|h| h.reason.as_str()),
                response_version: exchange.heads.as_ref().filter(|h| h.response.is_some()).map(|h| h.response_version),
                response_headers: exchange.heads.as_ref().and_then(|h| h.response.as_deref()).map(headers_ref),
            },
        );
    }

    /// From here on both directions are relayed unchanged without being
    /// decoded; the first time, an `uninspected` event says why. Bytes the
    /// session was holding (a partial head, bytes after an upgrade request)
    /// are queued first.
    pub(crate) fn stop_inspecting(&mut self, from: Side, reason: &str, t: &Time, events: &mut Events) {
        if !self.uninspected {
            self.uninspected = true;
            self.emit(events, t, &Uninspected { from, reason });
        }
        match std::mem::replace(&mut self.client, ClientState::Tunnel) {
            ClientState::Head(hb) => self.queue_owned(Side::Upstream, hb.buf),
            ClientState::WaitUpgrade(held) => self.queue_owned(Side::Upstream, held),
            ClientState::WebSocket(insp) => self.client = ClientState::WebSocket(insp),
            ClientState::Refused => self.client = ClientState::Refused,
            ClientState::Body { .. } | ClientState::Tunnel => {}
        }
        match std::mem::replace(&mut self.upstream, UpstreamState::Tunnel) {
            UpstreamState::Head(hb) => self.queue_owned(Side::Client, hb.buf),
            UpstreamState::WebSocket(insp) => self.upstream = UpstreamState::WebSocket(insp),
            UpstreamState::Body { .. } | UpstreamState::Tunnel => {}
        }
    }

    /// Reports a violation of a head; `enforced` when the proxy acts on it
    /// (a request refused under `--enforce`; a 101's faults are reported
    /// only, as before: the frames after it are what `--enforce` judges).
    /// `offset` is where the head starts in the sender's stream.
    fn violation(&mut self, from: Side, e: wsproto::Error, at: (u64, bool), t: &Time, events: &mut Events) {
        let (offset, enforced) = at;
        self.violations += 1;
        self.emit(
            events,
            t,
            &ViolationOut {
                from,
                rule: e.rule(),
                rfc: e.rfc(),
                offset,
                message: DisplayStr(e),
                enforced,
                injected: false,
            },
        );
    }

    /// `--enforce` after a violation by `offender`: the offender gets the
    /// mapped close code, the other side 1001. A close frame is only queued
    /// where the stream is between frames: towards the offender, where the
    /// other side's stream stands; towards the other side, if the offender's
    /// stream was cut at the start of the offending frame (`clean`).
    fn enforce(&mut self, offender: Side, e: Enforced, clean: bool) {
        let code = e.violation.error.close_code().unwrap_or(CloseCode::PROTOCOL_ERROR);
        let other_at_boundary = match offender {
            Side::Client => match &self.upstream {
                UpstreamState::WebSocket(insp) => insp.at_frame_boundary(),
                _ => true,
            },
            Side::Upstream => match &self.client {
                ClientState::WebSocket(insp) => insp.at_frame_boundary(),
                _ => true,
            },
        };
        if other_at_boundary {
            let reason = format!("wsproxy: {}", e.violation.error.rule());
            self.queue_owned(offender, close_frame(offender, code, &reason));
        }
        if clean {
            let other = offender.other();
            self.queue_owned(
                other,
                close_frame(other, CloseCode::GOING_AWAY, "wsproxy: the other side broke the protocol"),
            );
        }
        self.stopped = Some(Some(e));
    }

    /// The upstream could not be reached, its TLS handshake failed, or it
    /// answered in TLS: the client gets a 502 naming `reason`, and the
    /// connection ends.
    pub(crate) fn upstream_failed(&mut self, reason: &str, t: &Time, events: &mut Events) {
        self.error(reason, t, events);
        self.queued = [Vec::new(), Vec::new()];
        self.queue_owned(Side::Client, bad_gateway(reason));
        self.stopped = Some(None);
    }

    /// Writes an `error` event (something that is not the protocol's fault)
    /// and keeps it for [`Session::take_errors`].
    pub(crate) fn error(&mut self, message: &str, t: &Time, events: &mut Events) {
        self.emit(events, t, &ErrorOut { message });
        self.errors.push(message.to_owned());
    }

    /// The errors written since the last call.
    pub(crate) fn take_errors(&mut self) -> Vec<String> {
        std::mem::take(&mut self.errors)
    }

    /// The connection is over: logs what is left (exchanges without an
    /// answer, a body that ran to the close) and the `end` event; returns
    /// the counters for the proxy's totals.
    pub(crate) fn finish(&mut self, ending: Ending, t: &Time, events: &mut Events) -> Counters {
        if matches!(self.upstream, UpstreamState::Body { .. })
            && let UpstreamState::Body { reader, exchange, status } =
                std::mem::replace(&mut self.upstream, UpstreamState::Tunnel)
        {
            // A body that runs to the close (or was cut short) ends here.
            self.exchange_done(&exchange, Some((status, reader.content_len())), t, events);
        }
        for exchange in std::mem::take(&mut self.exchanges) {
            self.exchange_done(&exchange, None, t, events);
        }
        let (mut frames, mut violations) = ([0u64; 2], self.violations);
        if let ClientState::WebSocket(insp) = &self.client {
            frames[0] = insp.frames();
            violations += insp.violations();
        }
        if let UpstreamState::WebSocket(insp) = &self.upstream {
            frames[1] = insp.frames();
            violations += insp.violations();
        }
        let unanswered = self.shared.unanswered_pings();
        let reason = match self.stopped {
            _ if self.fault_end.is_some() => "fault",
            Some(Some(_)) => "enforced",
            Some(None) => "error",
            None if self.shared.close_handshake_complete() => "close_handshake",
            None => match ending {
                Ending::Eof => "eof",
                Ending::Reset => "reset",
                Ending::Timeout => "timeout",
                Ending::Error => "error",
            },
        };
        let end = EndOut {
            bytes: PerSide { client: self.bytes[0], upstream: self.bytes[1] },
            frames: PerSide { client: frames[0], upstream: frames[1] },
            unanswered_pings: PerSide { client: unanswered[0], upstream: unanswered[1] },
            duration_us: t.instant.saturating_duration_since(self.started).as_micros() as u64,
            reason,
        };
        self.emit(events, t, &end);
        Counters { bytes: self.bytes[0] + self.bytes[1], frames: frames[0] + frames[1], violations }
    }
}

/// Decodes `data`, the next bytes of a WebSocket stream of which `fed`
/// were decoded before, and says how many of them to forward: all, or under
/// `--enforce` those before the frame that broke a rule, with that
/// violation and whether the cut falls at the frame's start (so a close
/// frame can follow what was forwarded).
fn decode_frames(
    insp: &mut DirectionInspector,
    shared: &mut Shared,
    data: &[u8],
    fed: u64,
    t: &Time,
    events: &mut Events,
) -> (usize, Option<(Enforced, bool)>) {
    let found = insp.feed(data, t, shared, events);
    let keep = found.map_or(data.len(), |e| e.frame_start.saturating_sub(fed).min(data.len() as u64) as usize);
    (keep, found.map(|e| (e, e.frame_start >= fed)))
}

/// What a finished connection adds to the proxy's totals.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Counters {
    pub bytes: u64,
    pub frames: u64,
    pub violations: u64,
}

/// Why a head the scanner stopped at cannot be followed.
fn head_broken_reason(e: wsproto::Error) -> &'static str {
    match e {
        wsproto::Error::HeaderBlockTooLarge | wsproto::Error::TooManyHeaders => {
            "the upstream's response head is larger than the head limit (64 KiB, 100 header lines)"
        }
        _ => "the upstream's response head is not valid HTTP/1.x (line ends)",
    }
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

fn headers_ref(headers: &[(String, String)]) -> Vec<HeaderOut<'_>> {
    headers.iter().map(|(name, value)| HeaderOut { name, value: std::borrow::Cow::Borrowed(value) }).collect()
}

fn bad_gateway(reason: &str) -> Vec<u8> {
    let body = format!("wsproxy: {reason}\n");
    format!(
        "HTTP/1.1 502 Bad Gateway\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
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

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Forwarding {
    /// Queue ranges of the input.
    Queue,
    /// Queue a copy (the input will be gone when the queue is written).
    Copy,
    /// The relay forwarded the input already.
    Done,
}

#[derive(Clone, Copy)]
struct Src<'a> {
    data: &'a [u8],
    fwd: Forwarding,
}

fn version_str(minor: u8) -> &'static str {
    if minor == 0 { "HTTP/1.0" } else { "HTTP/1.1" }
}

// `--fault`: the session's side of fault injection. The rules and what
// they do are in `crate::fault`; here their output is decoded (so the log
// shows what the receiver got, with injected violations said to be
// injected), queued, and turned into the end of the connection.
impl Session {
    /// Starts an engine for each side some rule can act on (at the 101).
    fn start_faults(&mut self) {
        let rules = self.config.faults.clone();
        if rules.is_empty() {
            return;
        }
        for from in [Side::Client, Side::Upstream] {
            if rules.iter().any(|r| r.applies_to(from)) {
                let seed = match self.config.fault_seed {
                    // Repeatable: the seed, the connection and the side.
                    Some(seed) => fault::Rng::new(seed ^ self.conn.wrapping_mul(0x9E37_79B9_7F4A_7C15))
                        .next_u64()
                        .wrapping_add(from.index() as u64),
                    None => random_u64(),
                };
                self.faults[from.index()] = Some(Box::new(FaultEngine::new(from, rules.clone(), seed)));
            }
        }
    }

    /// Whether a fault rule asked for both TCP connections to be reset.
    pub(crate) fn reset_requested(&self) -> bool {
        self.fault_end == Some(FaultEnd::Reset)
    }

    /// WebSocket bytes from `from`, through its fault engine.
    fn fault_bytes(&mut self, from: Side, data: &[u8], t: &Time, events: &mut Events) {
        let Some(engine) = self.faults[from.index()].as_mut() else { return };
        let (mut outs, mut records) = (Vec::new(), Vec::new());
        engine.feed(data, &mut outs, &mut records);
        for r in &records {
            let rule = &self.config.faults[r.rule];
            let body = FaultOut {
                from,
                rule: rule.text(),
                action: rule.action().name(),
                opcode: OpcodeOut::from(r.opcode),
                msg: r.msg,
                len: r.len,
                offset: self.ws_base[from.index()] + r.offset,
                detail: &r.detail,
            };
            self.emit(events, t, &body);
        }
        self.apply_faults(from, outs, t, events);
    }

    /// `from` ended its stream: a frame its engine was holding goes on as
    /// it came.
    fn fault_flush(&mut self, from: Side, t: &Time, events: &mut Events) {
        if let Some(engine) = self.faults[from.index()].as_mut() {
            let held = engine.flush();
            if !held.is_empty() {
                self.apply_faults(from, vec![Out::Bytes(held)], t, events);
            }
        }
    }

    /// Carries out what an engine said, in order.
    fn apply_faults(&mut self, from: Side, outs: Vec<Out>, t: &Time, events: &mut Events) {
        let to = from.other();
        for o in outs {
            if self.stopped.is_some() {
                break;
            }
            match o {
                Out::Bytes(b) => self.fault_forward(from, b, None, false, t, events),
                Out::Injected(b) => self.fault_forward(from, b, None, true, t, events),
                Out::Throttled(b, rate) => self.fault_forward(from, b, Some(rate), false, t, events),
                Out::Delay(d) => self.queued[to.index()].push(Chunk::HoldUntil(t.instant + d)),
                Out::Close(code, reason) => {
                    // As the sender would close towards the receiver, and as
                    // the receiver would towards the sender, where its
                    // stream is between frames.
                    // A side that already sent its close sends no other
                    // (RFC 6455 §5.5.1: nothing after a Close frame).
                    let mut rng = fault::Rng::new(random_u64());
                    if !self.shared.closed[from.index()] {
                        let to_receiver = fault::close_frame_to(to, code, &reason, &mut rng);
                        self.fault_forward(from, to_receiver, None, true, t, events);
                    }
                    if !self.shared.closed[to.index()] && self.inspector_at_boundary(to) && self.stopped.is_none() {
                        let to_sender = fault::close_frame_to(from, code, &reason, &mut rng);
                        self.fault_forward(to, to_sender, None, true, t, events);
                    }
                    self.fault_stop(FaultEnd::End);
                }
                Out::Reset => self.fault_stop(FaultEnd::Reset),
                Out::End => self.fault_stop(FaultEnd::End),
            }
        }
    }

    fn fault_stop(&mut self, end: FaultEnd) {
        self.fault_end = Some(end);
        if self.stopped.is_none() {
            self.stopped = Some(None);
        }
    }

    /// Whether what `from` sent so far ends between frames.
    fn inspector_at_boundary(&self, from: Side) -> bool {
        match from {
            Side::Client => match &self.client {
                ClientState::WebSocket(insp) => insp.at_frame_boundary(),
                _ => true,
            },
            Side::Upstream => match &self.upstream {
                UpstreamState::WebSocket(insp) => insp.at_frame_boundary(),
                _ => true,
            },
        }
    }

    /// Bytes forwarded on `from`'s behalf: decoded by its inspector (as the
    /// receiver gets them) and queued; under `--enforce` only those before
    /// a violation.
    fn fault_forward(
        &mut self,
        from: Side,
        bytes: Vec<u8>,
        rate: Option<u64>,
        injected: bool,
        t: &Time,
        events: &mut Events,
    ) {
        let i = from.index();
        let fed = self.decoded[i];
        let insp = match from {
            Side::Client => match &mut self.client {
                ClientState::WebSocket(insp) => Some(insp),
                _ => None,
            },
            Side::Upstream => match &mut self.upstream {
                UpstreamState::WebSocket(insp) => Some(insp),
                _ => None,
            },
        };
        let (keep, found) = match insp {
            Some(insp) => {
                if injected {
                    insp.mark_injected(fed..fed + bytes.len() as u64);
                }
                decode_frames(insp, &mut self.shared, &bytes, fed, t, events)
            }
            None => (bytes.len(), None),
        };
        self.decoded[i] += bytes.len() as u64;
        let mut bytes = bytes;
        bytes.truncate(keep);
        if !bytes.is_empty() {
            let q = &mut self.queued[from.other().index()];
            match rate {
                Some(rate) => q.push(Chunk::Throttled(bytes, rate)),
                None => match q.last_mut() {
                    Some(Chunk::Owned(v)) => v.extend_from_slice(&bytes),
                    _ => q.push(Chunk::Owned(bytes)),
                },
            }
        }
        if let Some((e, clean)) = found {
            self.enforce(from, e, clean);
        }
    }
}

/// 64 random bits from the standard library's per-process hash keys.
fn random_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    std::collections::hash_map::RandomState::new().build_hasher().finish()
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::event::Stamp;
    use crate::schema::Event as Ev;
    use crate::{Format, Upstream};

    const REQUEST: &[u8] = b"GET /chat HTTP/1.1\r\nHost: client.example\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";
    const RESPONSE: &[u8] = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n";

    fn config(enforce: bool) -> Arc<Config> {
        let mut c = Config::new(Upstream::parse("ws://127.0.0.1:9").expect("upstream"));
        c.enforce = enforce;
        Arc::new(c)
    }

    fn at(t0: Instant, us: u64) -> Time {
        Time { instant: t0 + Duration::from_micros(us), stamp: Stamp::UNSET }
    }

    fn frame(opcode: OpCode, mask: Option<[u8; 4]>, payload: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        wsproto::encode_frame(&FrameHeader { mask, ..FrameHeader::new(opcode, 0) }, payload, &mut out);
        out
    }

    fn parse(events: &[u8]) -> Vec<Ev> {
        String::from_utf8(events.to_vec())
            .expect("utf-8")
            .lines()
            .map(|l| crate::schema::parse_strict(l).expect("strict").event)
            .collect()
    }

    fn bytes_of(chunks: Vec<Chunk>, input: &[u8]) -> Vec<u8> {
        chunks
            .into_iter()
            .flat_map(|c| match c {
                Chunk::Input(r) => input[r].to_vec(),
                Chunk::Owned(v) | Chunk::Throttled(v, _) => v,
                Chunk::HoldUntil(_) => Vec::new(),
            })
            .collect()
    }

    /// A session driven as the relay drives it; returns everything
    /// forwarded to (client, upstream) and the events.
    struct Driver {
        s: Session,
        to: [Vec<u8>; 2],
        events: Events,
    }

    impl Driver {
        fn new(enforce: bool, t: &Time) -> Driver {
            let mut events = Events::new(&[Format::Json]);
            let s = Session::new(1, config(enforce), "127.0.0.1:5".parse().expect("addr"), t, &mut events);
            Driver { s, to: [Vec::new(), Vec::new()], events }
        }

        fn feed(&mut self, from: Side, data: &[u8], t: &Time) -> Flow {
            let flow = self.s.feed(from, data, t, &mut self.events);
            let to = from.other();
            self.to[to.index()].extend(bytes_of(self.s.take_queued(to), data));
            self.to[from.index()].extend(bytes_of(self.s.take_queued(from), &[]));
            if self.s.head_complete() && !self.s.connected && !self.s.is_stopped() {
                self.s.set_connected();
                self.to[1].extend(bytes_of(self.s.take_queued(Side::Upstream), &[]));
            }
            flow
        }
    }

    #[test]
    fn a_ping_round_trip_is_measured_exactly() {
        let t0 = Instant::now();
        let mut d = Driver::new(false, &at(t0, 0));
        let _ = d.feed(Side::Client, REQUEST, &at(t0, 0));
        let _ = d.feed(Side::Upstream, RESPONSE, &at(t0, 50));
        let _ = d.feed(Side::Client, &frame(OpCode::Ping, Some([1, 2, 3, 4]), b"p"), &at(t0, 100));
        let _ = d.feed(Side::Upstream, &frame(OpCode::Pong, None, b"p"), &at(t0, 1_334));
        let rtts: Vec<Option<u64>> = parse(d.events.output(0))
            .into_iter()
            .filter_map(|e| match e {
                Ev::Frame { rtt_us, .. } => Some(rtt_us),
                _ => None,
            })
            .collect();
        assert_eq!(rtts, vec![None, Some(1_234)]);
        let counters = d.s.finish(Ending::Eof, &at(t0, 2_000), &mut d.events);
        assert_eq!(counters.frames, 2);
        match parse(d.events.output(0)).last() {
            Some(Ev::End { duration_us, unanswered_pings, .. }) => {
                assert_eq!(*duration_us, 2_000);
                assert_eq!((unanswered_pings.client, unanswered_pings.upstream), (0, 0));
            }
            other => panic!("{other:?}"),
        }
    }

    /// A keep-alive exchange, an upgrade, frames both ways: the same bytes
    /// forwarded and the same events however the reads cut the streams.
    #[test]
    fn forwarding_and_events_do_not_depend_on_how_the_bytes_arrive() {
        let client = [
            &b"POST /a HTTP/1.1\r\nHost: client.example\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"[..],
            REQUEST,
            &frame(OpCode::Text, Some([9, 9, 9, 9]), b"after the upgrade"),
        ]
        .concat();
        let upstream = [
            &b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nyes"[..],
            RESPONSE,
            &frame(OpCode::Binary, None, &[0, 1, 2]),
        ]
        .concat();
        let run = |chunk: usize| {
            let t = at(Instant::now(), 0);
            let mut d = Driver::new(false, &t);
            // The client's request first, its answer, then the rest of both.
            let first_len = client.windows(9).position(|w| w == b"0\r\n\r\nGET ").expect("split") + 5;
            let answer_len = upstream.windows(3).position(|w| w == b"yes").expect("yes") + 3;
            for piece in client[..first_len].chunks(chunk) {
                let _ = d.feed(Side::Client, piece, &t);
            }
            for piece in upstream[..answer_len].chunks(chunk) {
                let _ = d.feed(Side::Upstream, piece, &t);
            }
            for piece in client[first_len..].chunks(chunk) {
                let _ = d.feed(Side::Client, piece, &t);
            }
            for piece in upstream[answer_len..].chunks(chunk) {
                let _ = d.feed(Side::Upstream, piece, &t);
            }
            (d.to, parse(d.events.output(0)))
        };
        let (whole_to, whole_events) = run(usize::MAX);
        let rewritten = String::from_utf8_lossy(&client).replace("client.example", "127.0.0.1:9");
        assert_eq!(String::from_utf8_lossy(&whole_to[1]), rewritten);
        assert_eq!(whole_to[0], upstream);
        let kinds: Vec<&str> = whole_events
            .iter()
            .map(|e| match e {
                Ev::Open { .. } => "open",
                Ev::InterimResponse { .. } => "interim",
                Ev::Http { .. } => "http",
                Ev::HandshakeRequest { .. } => "request",
                Ev::HandshakeResponse { .. } => "response",
                Ev::Frame { .. } => "frame",
                Ev::Message { .. } => "message",
                _ => "other",
            })
            .collect();
        assert_eq!(
            kinds,
            ["open", "interim", "http", "request", "response", "frame", "message", "frame", "message"],
            "{whole_events:#?}"
        );
        for chunk in [1, 2, 3, 7, 64] {
            assert_eq!(run(chunk), (whole_to.clone(), whole_events.clone()), "pieces of {chunk}");
        }
    }

    /// A violation in the second request on a connection is reported at
    /// that head's offset, and is not `enforced` without `--enforce`.
    #[test]
    fn a_bad_second_request_is_reported_where_it_starts() {
        let t = at(Instant::now(), 0);
        let mut d = Driver::new(false, &t);
        let first = b"GET /healthz HTTP/1.1\r\nHost: h\r\n\r\n";
        let _ = d.feed(Side::Client, first, &t);
        let _ = d.feed(Side::Upstream, b"HTTP/1.1 204 No Content\r\n\r\n", &t);
        let bad = String::from_utf8_lossy(REQUEST).replace("Sec-WebSocket-Version: 13", "Sec-WebSocket-Version: 8");
        let _ = d.feed(Side::Client, bad.as_bytes(), &t);
        let found: Vec<(String, u64, bool)> = parse(d.events.output(0))
            .into_iter()
            .filter_map(|e| match e {
                Ev::Violation { rule, offset, enforced, .. } => Some((rule, offset, enforced)),
                _ => None,
            })
            .collect();
        assert_eq!(found, vec![("unsupported_version".to_owned(), first.len() as u64, false)]);
    }

    /// Pipelined requests past [`MAX_PENDING`] are relayed, not followed.
    #[test]
    fn pipelining_past_the_limit_is_relayed_uninspected() {
        let t = at(Instant::now(), 0);
        let mut d = Driver::new(false, &t);
        let one = b"GET / HTTP/1.1\r\nHost: h\r\n\r\n";
        let many: Vec<u8> = one.repeat(MAX_PENDING + 10);
        let _ = d.feed(Side::Client, &many, &t);
        assert_eq!(d.s.exchanges.len(), MAX_PENDING + 1);
        // Everything reaches the upstream, rewritten while it was followed.
        let rewritten = String::from_utf8_lossy(one).replace("Host: h", "Host: 127.0.0.1:9");
        let expected = [rewritten.repeat(MAX_PENDING + 1).into_bytes(), one.repeat(9)].concat();
        assert!(d.to[1] == expected);
        assert!(parse(d.events.output(0)).iter().any(|e| matches!(e, Ev::Uninspected { .. })));
    }

    /// `--enforce`: a bad upgrade pipelined behind `GET /ok` in one read:
    /// `GET /ok` goes up and its answer comes back whole; only then the
    /// refusal; nothing of the bad request reaches the upstream.
    #[test]
    fn a_refusal_waits_for_the_answers_to_earlier_requests() {
        let t = at(Instant::now(), 0);
        let mut d = Driver::new(true, &t);
        let ok = b"GET /ok HTTP/1.1\r\nHost: client.example\r\n\r\n";
        let bad = String::from_utf8_lossy(REQUEST).replace("Sec-WebSocket-Version: 13", "Sec-WebSocket-Version: 8");
        assert_eq!(d.feed(Side::Client, &[&ok[..], bad.as_bytes()].concat(), &t), Flow::Continue);
        assert_eq!(String::from_utf8_lossy(&d.to[1]), "GET /ok HTTP/1.1\r\nHost: 127.0.0.1:9\r\n\r\n");
        assert!(d.to[0].is_empty(), "no refusal before the answer to GET /ok");
        let answer = b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n0123456789";
        assert_eq!(d.feed(Side::Upstream, &answer[..40], &t), Flow::Continue);
        assert_eq!(d.feed(Side::Upstream, &answer[40..], &t), Flow::Stop);
        assert!(d.to[0].starts_with(answer), "{:?}", String::from_utf8_lossy(&d.to[0]));
        assert!(d.to[0][answer.len()..].starts_with(b"HTTP/1.1 426 "), "{:?}", String::from_utf8_lossy(&d.to[0]));
        assert_eq!(d.to[1].len(), ok.len() + "127.0.0.1:9".len() - "client.example".len());
    }

    /// A refused upgrade with requests held behind it: the refusal's body
    /// is relayed whole before the held requests are read, whatever they
    /// turn out to be (here one whose framing cannot be followed).
    #[test]
    fn held_requests_are_read_after_the_refusal_is_set_up() {
        let t = at(Instant::now(), 0);
        let mut d = Driver::new(false, &t);
        let held = b"POST /x HTTP/1.1\r\nHost: client.example\r\nTransfer-Encoding: gzip\r\n\r\nraw body";
        let _ = d.feed(Side::Client, &[REQUEST, &held[..]].concat(), &t);
        let refusal = b"HTTP/1.1 401 Unauthorized\r\nContent-Length: 5\r\n\r\nnope!";
        let later = b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n";
        let _ = d.feed(Side::Upstream, refusal, &t);
        let _ = d.feed(Side::Upstream, later, &t);
        assert_eq!(d.to[0], [&refusal[..], &later[..]].concat(), "relayed whole and in order");
        let up = String::from_utf8_lossy(&d.to[1]).into_owned();
        assert!(up.ends_with("Transfer-Encoding: gzip\r\n\r\nraw body"), "{up}");
        let events = parse(d.events.output(0));
        assert!(events.iter().any(|e| matches!(e, Ev::HandshakeResponse { status: 401, .. })), "{events:#?}");
        assert!(events.iter().any(|e| matches!(e, Ev::Uninspected { .. })), "{events:#?}");
    }

    /// Pipelined requests with long targets: what the pending exchanges hold
    /// is bounded; past the bound the connection is relayed uninspected.
    #[test]
    fn pending_targets_are_bounded_in_bytes() {
        let t = at(Instant::now(), 0);
        let mut d = Driver::new(false, &t);
        let long = format!("GET /{} HTTP/1.1\r\nHost: h\r\n\r\n", "a".repeat(60 << 10));
        for _ in 0..20 {
            let _ = d.feed(Side::Client, long.as_bytes(), &t);
        }
        assert!(d.s.pending_bytes <= MAX_PENDING_BYTES + long.len(), "{}", d.s.pending_bytes);
        assert!(parse(d.events.output(0)).iter().any(|e| matches!(e, Ev::Uninspected { .. })));
        // Everything forwarded: the first ones rewritten, the rest as sent.
        let up = String::from_utf8_lossy(&d.to[1]).into_owned();
        let rewritten = up.matches("Host: 127.0.0.1:9\r\n").count();
        assert!((1..20).contains(&rewritten), "{rewritten}");
        assert_eq!(up.matches("Host: h\r\n").count(), 20 - rewritten);
        assert_eq!(d.to[1].len(), 20 * long.len() + rewritten * ("127.0.0.1:9".len() - 1));
    }

    #[test]
    fn an_unreachable_upstream_gets_the_client_a_502() {
        let t = at(Instant::now(), 0);
        let mut d = Driver::new(false, &t);
        let _ = d.feed(Side::Client, REQUEST, &t);
        d.s.upstream_failed("cannot connect to upstream 127.0.0.1:9: refused", &t, &mut d.events);
        let answer = bytes_of(d.s.take_queued(Side::Client), &[]);
        assert!(answer.starts_with(b"HTTP/1.1 502 Bad Gateway\r\n"), "{:?}", String::from_utf8_lossy(&answer));
        assert!(answer.ends_with(b"wsproxy: cannot connect to upstream 127.0.0.1:9: refused\n"));
        assert!(d.s.is_stopped());
        let _ = d.s.finish(Ending::Eof, &t, &mut d.events);
        assert!(matches!(parse(d.events.output(0)).last(), Some(Ev::End { reason, .. }) if reason == "error"));
    }

    fn with_faults(rules: &[&str], t: &Time) -> Driver {
        let mut c = Config::new(Upstream::parse("ws://127.0.0.1:9").expect("upstream"));
        c.faults = rules.iter().map(|r| crate::FaultRule::parse(r).expect("rule")).collect();
        c.fault_seed = Some(1);
        let mut events = Events::new(&[Format::Json]);
        let s = Session::new(1, Arc::new(c), "127.0.0.1:5".parse().expect("addr"), t, &mut events);
        Driver { s, to: [Vec::new(), Vec::new()], events }
    }

    /// `corrupt=rsv2` on the second server message: the client gets the
    /// frame with RSV2 set, the log has the `fault` and a violation marked
    /// injected; the first message is untouched and nothing is marked.
    #[test]
    fn an_injected_violation_is_reported_as_injected() {
        let t = at(Instant::now(), 0);
        let mut d = with_faults(&["upstream,text,msg=2:corrupt=rsv2"], &t);
        let _ = d.feed(Side::Client, REQUEST, &t);
        let _ = d.feed(Side::Upstream, RESPONSE, &t);
        let (one, two) = (frame(OpCode::Text, None, b"one"), frame(OpCode::Text, None, b"two"));
        let _ = d.feed(Side::Upstream, &[one.clone(), two.clone()].concat(), &t);
        let mut corrupted = two.clone();
        corrupted[0] |= 0x20;
        assert_eq!(d.to[0], [RESPONSE, &one, &corrupted].concat());
        let events = parse(d.events.output(0));
        let faults: Vec<(String, Option<u64>, u64)> = events
            .iter()
            .filter_map(|e| match e {
                Ev::Fault { action, msg, offset, .. } => Some((action.clone(), *msg, *offset)),
                _ => None,
            })
            .collect();
        let at_two = (RESPONSE.len() + one.len()) as u64;
        assert_eq!(faults, vec![("corrupt".to_owned(), Some(2), at_two)]);
        let violations: Vec<(String, bool)> = events
            .iter()
            .filter_map(|e| match e {
                Ev::Violation { rule, injected, .. } => Some((rule.clone(), *injected)),
                _ => None,
            })
            .collect();
        assert_eq!(violations.len(), 1, "{events:#?}");
        assert!(violations[0].1, "injected: {violations:?}");
    }

    /// `close=1012`: the matched frame is relayed, then both sides get a
    /// close 1012 (masked towards the upstream) and the session stops.
    #[test]
    fn a_close_rule_closes_both_sides_and_ends_as_fault() {
        let t = at(Instant::now(), 0);
        let mut d = with_faults(&["upstream,msg=1:close=1012,restarting"], &t);
        let _ = d.feed(Side::Client, REQUEST, &t);
        let _ = d.feed(Side::Upstream, RESPONSE, &t);
        let one = frame(OpCode::Text, None, b"one");
        assert_eq!(d.feed(Side::Upstream, &[one.clone(), one.clone()].concat(), &t), Flow::Stop);
        let close =
            [&one[..], &frame(OpCode::Close, None, &wsproto::encode_close_payload(CloseCode(1012), "restarting"))]
                .concat();
        assert_eq!(d.to[0], [RESPONSE, &close].concat(), "the frame, the close, nothing after");
        let head_end = d.to[1].windows(4).position(|w| w == b"\r\n\r\n").expect("the head") + 4;
        let to_upstream = &d.to[1][head_end..];
        let Status::Complete(ph) = wsproto::parse_header(to_upstream) else { panic!("a frame") };
        assert_eq!((ph.header.opcode, ph.header.mask.is_some()), (OpCode::Close, true));
        let _ = d.s.finish(Ending::Eof, &t, &mut d.events);
        let events = parse(d.events.output(0));
        let closes = events.iter().filter(|e| matches!(e, Ev::Close { code: Some(1012), .. })).count();
        assert_eq!(closes, 2, "{events:#?}");
        assert!(matches!(events.last(), Some(Ev::End { reason, .. }) if reason == "fault"));
    }

    /// `close=` from a rule on the upstream only, after the client sent
    /// data: the close sent on the client's behalf is marked injected
    /// where it is in the client's stream (after that data), not at 0,
    /// which is the client's own frame.
    #[test]
    fn a_close_rule_marks_the_close_it_sends_for_the_other_side_where_it_is() {
        let t = at(Instant::now(), 0);
        let mut d = with_faults(&["upstream,msg=1:close=1012"], &t);
        let _ = d.feed(Side::Client, REQUEST, &t);
        let _ = d.feed(Side::Upstream, RESPONSE, &t);
        let data = frame(OpCode::Text, Some([1, 2, 3, 4]), b"the client's own message");
        let _ = d.feed(Side::Client, &data, &t);
        assert_eq!(d.feed(Side::Upstream, &frame(OpCode::Text, None, b"one"), &t), Flow::Stop);
        let head_end = d.to[1].windows(4).position(|w| w == b"\r\n\r\n").expect("the head") + 4;
        let close_len = (d.to[1].len() - head_end - data.len()) as u64;
        assert_eq!(close_len, 2 + 4 + 2, "one masked close 1012 after the client's data");
        let ClientState::WebSocket(insp) = &d.s.client else { panic!("inspecting the client") };
        let at = data.len() as u64;
        assert_eq!(insp.injected_ranges(), vec![at..at + close_len]);
    }

    /// `close=` when the client has already closed: no second close on its
    /// behalf (the upstream gets the client's own close only), and the
    /// client's stream shows no frame after its close.
    #[test]
    fn a_close_rule_sends_no_second_close_for_a_side_that_closed() {
        let t = at(Instant::now(), 0);
        let mut d = with_faults(&["upstream,msg=1:close=1012"], &t);
        let _ = d.feed(Side::Client, REQUEST, &t);
        let _ = d.feed(Side::Upstream, RESPONSE, &t);
        let own = frame(OpCode::Close, Some([1, 2, 3, 4]), &wsproto::encode_close_payload(CloseCode(1000), ""));
        let _ = d.feed(Side::Client, &own, &t);
        assert_eq!(d.feed(Side::Upstream, &frame(OpCode::Text, None, b"one"), &t), Flow::Stop);
        let head_end = d.to[1].windows(4).position(|w| w == b"\r\n\r\n").expect("the head") + 4;
        assert_eq!(&d.to[1][head_end..], &own[..], "only the client's own close");
        let _ = d.s.finish(Ending::Eof, &t, &mut d.events);
        let events = parse(d.events.output(0));
        assert!(!events.iter().any(|e| matches!(e, Ev::Violation { .. })), "{events:#?}");
        let closes = events.iter().filter(|e| matches!(e, Ev::Close { .. })).count();
        assert_eq!(closes, 2, "the client's and the one sent to it for the upstream: {events:#?}");
    }

    /// A swallowed pong never reaches the client, and the ping it answered
    /// counts as unanswered.
    #[test]
    fn swallowed_pongs_are_logged_and_leave_pings_unanswered() {
        let t = at(Instant::now(), 0);
        let mut d = with_faults(&["upstream,pong:swallow"], &t);
        let _ = d.feed(Side::Client, REQUEST, &t);
        let _ = d.feed(Side::Upstream, RESPONSE, &t);
        let _ = d.feed(Side::Client, &frame(OpCode::Ping, Some([1, 2, 3, 4]), b"k"), &t);
        let _ = d.feed(Side::Upstream, &frame(OpCode::Pong, None, b"k"), &t);
        assert_eq!(d.to[0], RESPONSE);
        let _ = d.s.finish(Ending::Eof, &t, &mut d.events);
        let events = parse(d.events.output(0));
        assert!(events.iter().any(|e| matches!(e, Ev::Fault { action, .. } if action == "swallow")));
        assert!(matches!(events.last(), Some(Ev::End { unanswered_pings, .. }) if unanswered_pings.client == 1));
    }

    #[test]
    fn enforce_refuses_a_bad_upgrade_request_and_sends_nothing_upstream() {
        let t = at(Instant::now(), 0);
        let mut d = Driver::new(true, &t);
        let bad = String::from_utf8_lossy(REQUEST).replace("Sec-WebSocket-Version: 13", "Sec-WebSocket-Version: 8");
        assert_eq!(d.feed(Side::Client, bad.as_bytes(), &t), Flow::Stop);
        assert!(d.to[1].is_empty(), "nothing reaches the upstream");
        assert!(d.to[0].starts_with(b"HTTP/1.1 426 "), "{:?}", String::from_utf8_lossy(&d.to[0]));
        let _ = d.s.finish(Ending::Eof, &t, &mut d.events);
        assert!(matches!(parse(d.events.output(0)).last(), Some(Ev::End { reason, .. }) if reason == "enforced"));
    }
}
