//! One case on one connection: the fuzzing client of Autobahn (its
//! `WebSocketClientProtocol` with `failByDrop = false`, and `FuzzingProtocol`)
//! rebuilt on tokio, so that the same server behaviour leads to the same
//! observed events, the same closing flags and so the same verdict.
//!
//! The receive path follows `processDataHybi` check for check and in the
//! same order (a violation fails the connection with a close frame and
//! parsing goes on, as Autobahn does without `failByDrop`); the timers are
//! Autobahn's: the case's own (`killAfter`, `closeAfter`, `continueLater`),
//! the closing handshake timeout (1 s), the wait for the server to drop TCP
//! after the closing handshake (1 s) and the opening handshake timeout (5 s).
//!
//! permessage-deflate (12.*, 13.*) is Autobahn's `PerMessageDeflate` on
//! wsproto's [`Deflater`] and [`Inflater`]: the client offers what the case
//! offers, accepts whatever valid configuration the server answers (as the
//! cases' `accept` does), compresses each message whole and then fragments
//! the compressed payload, and inflates each frame's data as it arrives.
//! The DEFLATE streams are zlib-rs's, not the C zlib's that wstest uses: the
//! same messages, frames and fragments, compressed to a few percent more or
//! fewer octets.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::net::tcp::OwnedWriteHalf;
use tokio::sync::mpsc;

use sha1::{Digest, Sha1};
use wsproto::deflate::{DeflateParams, Deflater, Inflater};

use super::cases::{
    Action, CLOSE_GOING_AWAY, CLOSE_INVALID_PAYLOAD, CLOSE_NORMAL, CLOSE_PROTOCOL_ERROR, Case, Frame, Kind, Observed,
};
use super::judge::{Flags, judge};
use super::offer::{Offer, accept_offers, server_accept};
use super::testdata::TestFile;
use super::traffic::TrafficStats;
use super::wirelog::{ascii_log_data, bin_log_data, seconds};

/// `closeHandshakeTimeout`.
const CLOSE_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(1);
/// `serverConnectionDropTimeout`.
const SERVER_DROP_TIMEOUT: Duration = Duration::from_secs(1);
/// `openHandshakeTimeout`.
const OPEN_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);
/// How long the engine waits when no timer is left and the server neither
/// sends nor closes. wstest waits forever there (6.4.* against a server that
/// fails the connection but never closes TCP hangs the whole run); the
/// native engine drops the connection instead, and says so.
const STALL_LIMIT: Duration = Duration::from_secs(10);
/// The least time between two turns that send a chop or a "sync" write. A
/// turn of Twisted's reactor under wstest on CPython takes about 50-100 µs
/// (9.5.1 sends 16384 chops in 1.5-2.2 s, 2.11 about 160 one-byte chops in
/// 9-17 ms). Without a pace the chops leave about 100 times faster than
/// wstest sends them, and a server that reads slowly sees them joined in
/// fewer reads than under wstest (4.1.5 and 4.2.5 against `wsbroken`'s lazy
/// server). The wait yields (tokio's timers tick in milliseconds), so it
/// costs CPU while chopped cases run.
const TURN_PACE: Duration = Duration::from_micros(50);
/// The fuzzer's user agent, as wstest 25.10.1 sends it.
pub const USER_AGENT: &str = "AutobahnTestSuite/25.10.1-0.10.9";
/// The fuzzingserver's `Server` header, as wstest 25.10.1 sends it
/// (`FuzzingServerFactory`: `AutobahnTestSuite/%s-%s`).
pub const SERVER_NAME: &str = USER_AGENT;
/// The `X-Powered-By` header of `succeedHandshake`.
const POWERED_BY: &str = "AutobahnPython/0.10.9";
/// `PerMessageDeflate.DEFAULT_WINDOW_BITS`: the window when no
/// `*_max_window_bits` limits it.
const DEFAULT_WINDOW_BITS: u8 = 15;
/// The cap on the server's response head.
const MAX_RESPONSE_HEAD: usize = 64 * 1024;
/// `Z_DEFAULT_COMPRESSION`, the level Autobahn's compressor uses.
const DEFLATE_LEVEL: u32 = 6;
/// The most one compressed message may inflate to. Autobahn sets no limit;
/// the largest message a case sends is 128 KiB.
const MAX_INFLATED_MESSAGE: u64 = 1 << 30;
/// The extension the compression cases offer.
const PERMESSAGE_DEFLATE: &str = "permessage-deflate";

/// Where the server under test listens.
#[derive(Debug, Clone)]
pub struct Target {
    /// `host:port` to connect to.
    pub addr: String,
    /// The host part, for the `Host` header.
    pub host: String,
    /// The port, for the `Host` header.
    pub port: u16,
    /// The request target (`/` by default).
    pub resource: String,
}

/// Which side of the connection the fuzzer plays (`factory.isServer`).
///
/// One engine for both: the receive path, the timers, the cases and the
/// judgement are shared; the role decides what protocol.py decides by
/// `isServer`:
/// * masking (RFC 6455 §5.1, §5.3): a client masks every frame and fails
///   the connection on a masked one; a server masks nothing and fails the
///   connection on an unmasked one (`processDataHybi`'s
///   `requireMaskedClientFrames` check, "unmasked client-to-server frame");
/// * the opening handshake: the client sends the request and validates the
///   response (`run_case`); the server reads the request, negotiates and
///   answers (`serve_case`, `WebSocketServerProtocol.processHandshake`
///   and `succeedHandshake`);
/// * the end of the closing handshake (RFC 6455 §7.1.1: the server closes
///   TCP first; `onCloseFrame`): a client waits for the server to drop TCP
///   (`serverConnectionDropTimeout`, 1 s); a server drops it at once, with
///   a reset after a handshake it started (`dropConnection(abort=True)`,
///   Twisted's `abortConnection`) and with a FIN after answering the
///   client's close (`dropConnection(abort=False)`);
/// * permessage-deflate: the client offers what the case offers and accepts
///   the response; the server accepts an offer as the case's
///   `SERVER_ACCEPT` does (`offer::server_accept`);
/// * the judgement: only a client counts its own drop of TCP against the
///   peer (`FAILED BY CLIENT`, `Case.onConnectionLost`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// The fuzzingclient: the peer under test is a server.
    Client,
    /// The fuzzingserver: the peer under test is a client.
    Server,
}

/// The connection's state (Autobahn's `STATE_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Connecting,
    Open,
    Closing,
    Closed,
}

#[derive(Debug, Clone)]
enum Timer {
    Kill,
    Close,
    Continue {
        part: usize,
        tag: Option<String>,
    },
    CloseHandshake,
    ServerDrop,
    OpenHandshake,
    /// `_send`: the next chopped or synchronous write, one reactor turn later.
    Send,
}

/// What the writer task gets: one flush of the transport buffer, or the end.
enum Write {
    Data(Vec<u8>),
    /// Close the sending side (a FIN after what was written).
    Shutdown,
    /// Stop writing and hand the socket back, to be reset.
    Abort,
}

/// The frame being received.
struct RxFrame {
    opcode: u8,
    fin: bool,
    rsv: u8,
    len: u64,
    mask: Option<[u8; 4]>,
    pos: u64,
}

/// The receive side's message state.
#[derive(Default)]
struct Rx {
    buf: Vec<u8>,
    frame: Option<RxFrame>,
    inside_message: bool,
    message_binary: bool,
    message_data: Vec<u8>,
    frame_data: Vec<u8>,
    control_data: Vec<u8>,
    validate_utf8: bool,
    utf8: wsproto::Utf8Validator,
    utf8_rejected: bool,
    utf8_ends_on_code_point: bool,
    /// Bytes of the message validated so far (Autobahn's `totalIndex`).
    utf8_total: usize,
    /// The message being received is compressed (`_isMessageCompressed`).
    compressed: bool,
}

/// The permessage-deflate the server agreed to (Autobahn's
/// `PerMessageDeflate` for the client side).
struct Pmd {
    deflater: Deflater,
    inflater: Inflater,
}

impl Pmd {
    /// A compressor with this side's parameters and a decompressor with the
    /// peer's (`PerMessageDeflate.startCompressMessage`/
    /// `startDecompressMessage`: each side compresses with its own window
    /// and context takeover and inflates with the other's). As in
    /// [`Pmd::from_response`], a window of 8 bits is compressed with 9 where
    /// wstest's C zlib refuses it: a client that offers
    /// `server_max_window_bits=8` gets compressed messages from the native
    /// fuzzingserver and a dropped connection from wstest's.
    fn new(own_no_context_takeover: bool, own_bits: u8, peer_no_context_takeover: bool, peer_bits: u8) -> Pmd {
        Pmd {
            deflater: Deflater::with_window_bits(DEFLATE_LEVEL, own_no_context_takeover, own_bits),
            inflater: Inflater::with_window_bits(peer_no_context_takeover, peer_bits, MAX_INFLATED_MESSAGE),
        }
    }

    /// `createFromResponseAccept`: the client compresses with the window
    /// and context takeover the response sets for it, and inflates with the
    /// server's (15 bits when the response does not limit them). One
    /// answer is not followed: `client_max_window_bits=8`, for which the C
    /// zlib refuses to make a compressor (wstest raises at its first
    /// message and drops the connection), while the native engine
    /// compresses with 9 bits (see [`Deflater::with_window_bits`]); none of
    /// the servers tested asks for 8.
    fn from_response(params: &DeflateParams) -> Pmd {
        let client = wsproto::Role::Client;
        let server = wsproto::Role::Server;
        Pmd {
            deflater: Deflater::with_window_bits(
                DEFLATE_LEVEL,
                params.no_context_takeover(client),
                params.max_window_bits(client),
            ),
            inflater: Inflater::with_window_bits(
                params.no_context_takeover(server),
                params.max_window_bits(server),
                MAX_INFLATED_MESSAGE,
            ),
        }
    }
}

/// The state of a compression case (`Case12_X_X`'s attributes).
struct DeflateRun {
    data: std::sync::Arc<TestFile>,
    /// `payloadRXPtr`: where the next message starts, in units of the file.
    next: usize,
    /// The message last sent. Autobahn compares the SHA-1 digests of the
    /// echo and of the message; equal digests are equal bytes, so the bytes
    /// are compared, and digests computed only for the report of a mismatch.
    expected: Vec<u8>,
}

impl Rx {
    /// Autobahn's incremental validator: `(valid, ends on a code point)`;
    /// once rejected, any further non-empty input is rejected too.
    fn validate(&mut self, bytes: &[u8]) -> (bool, bool) {
        if self.utf8_rejected {
            return (bytes.is_empty(), false);
        }
        match self.utf8.feed(bytes) {
            Ok(()) => {
                self.utf8_total += bytes.len();
                (true, self.utf8.is_complete())
            }
            Err(e) => {
                self.utf8_rejected = true;
                self.utf8_total += e.index;
                (false, false)
            }
        }
    }
}

/// Everything a case's report needs, gathered on its connection.
pub struct CaseRun {
    /// The report's `case`: the case's position among all cases (client
    /// role, `CasesIndices`) or the number the client asked for (server
    /// role, `/runCase?case=N`).
    pub number: usize,
    /// The judged flags and events.
    pub flags: Flags,
    /// The events observed.
    pub received: Vec<Observed>,
    /// The wire log, as wstest writes it.
    pub wirelog: Vec<Value>,
    /// Octets per read, by size.
    pub rx_octet_stats: BTreeMap<usize, u64>,
    /// Frames received, by opcode.
    pub rx_frame_stats: BTreeMap<u8, u64>,
    /// Octets per write, by size.
    pub tx_octet_stats: BTreeMap<usize, u64>,
    /// Frames sent, by opcode.
    pub tx_frame_stats: BTreeMap<u8, u64>,
    /// The upgrade request sent.
    pub http_request: String,
    /// The response head received.
    pub http_response: String,
    /// When the case started (UTC, ISO 8601).
    pub started: String,
    /// Milliseconds from the open handshake to the end.
    pub duration_ms: u64,
    /// Whether the wire log was on at the end.
    pub create_wirelog: bool,
    /// The traffic statistics a compression case took when it passed.
    pub traffic_stats: Option<TrafficStats>,
}

struct Conn<'c> {
    case: &'c Case,
    role: Role,
    /// The server role dropped TCP with a reset (`abortConnection`).
    aborted: bool,
    state: State,
    writer: Option<mpsc::UnboundedSender<Write>>,
    flags: Flags,
    received: Vec<Observed>,
    wirelog: Vec<Value>,
    rx_octets: BTreeMap<usize, u64>,
    rx_frames: BTreeMap<u8, u64>,
    tx_octets: BTreeMap<usize, u64>,
    tx_frames: BTreeMap<u8, u64>,
    timers: Vec<(Instant, Timer)>,
    rx: Rx,
    rng: u64,
    raw_mask: [u8; 4],
    raw_pos: usize,
    http_response: String,
    /// Twisted's transport buffer: what this reactor turn wrote.
    pending: Vec<u8>,
    /// Autobahn's `send_queue`: chopped and synchronous writes, one per turn.
    send_queue: std::collections::VecDeque<Vec<u8>>,
    /// Autobahn's `triggered`: the queue is being drained.
    triggered: bool,
    /// `createWirelog`: the 9.* cases turn the octet and frame log off.
    wirelog_on: bool,
    /// Messages sent so far (9.7.*, 9.8.*).
    count: usize,
    /// Autobahn's client raised while reading (a close reason that is not
    /// UTF-8): the connection is lost at once, nothing queued goes out.
    crashed: bool,
    /// permessage-deflate, when the server accepted it.
    pmd: Option<Pmd>,
    /// The connection's `trafficStats`.
    traffic: TrafficStats,
    /// The copy a compression case takes when it passes.
    traffic_report: Option<TrafficStats>,
    /// A compression case's messages.
    deflate_run: Option<DeflateRun>,
}

/// Runs one case against the target and returns what happened; a
/// compression case cuts its messages from `testdata`.
pub async fn run_case(case: &Case, target: &Target, testdata: Option<std::sync::Arc<TestFile>>) -> CaseRun {
    let started = super::wirelog::utc_now();
    let mut conn = Conn::new(case, Role::Client, testdata);
    let key = wsproto::handshake::encode_key(conn.random_bytes());
    // The offers go between the key and the version, as Autobahn writes them.
    let extensions = match &case.deflate {
        Some(d) => format!("Sec-WebSocket-Extensions: {}\r\n", d.offers),
        None => String::new(),
    };
    let http_request = format!(
        "GET {} HTTP/1.1\r\nUser-Agent: {USER_AGENT}\r\nHost: {}:{}\r\nUpgrade: WebSocket\r\nConnection: Upgrade\r\n\
         Pragma: no-cache\r\nCache-Control: no-cache\r\nSec-WebSocket-Key: {key}\r\n{extensions}\
         Sec-WebSocket-Version: 13\r\n\r\n",
        target.resource, target.host, target.port
    );
    let mut open_at = None;
    match TcpStream::connect(&target.addr).await {
        Ok(stream) => {
            open_at = conn
                .drive(stream, key.as_bytes(), |conn| {
                    conn.send_data(http_request.as_bytes().to_vec(), false, None);
                    conn.schedule(OPEN_HANDSHAKE_TIMEOUT.as_secs_f64(), Timer::OpenHandshake);
                    None
                })
                .await;
        }
        Err(_) => {
            conn.flags.was_not_clean_reason = Some("connection refused".into());
        }
    }
    conn.finish(case.index, http_request, started, open_at)
}

/// What the fuzzingserver read of a client's opening handshake before it
/// knew which case to run (see [`super::serve`]).
pub struct Accepted {
    /// The connection.
    pub stream: TcpStream,
    /// Each read of the request head, for the wire log and the statistics.
    pub reads: Vec<Vec<u8>>,
    /// The request head (through the blank line).
    pub head: Vec<u8>,
    /// What followed the head (frames the client sent at once).
    pub rest: Vec<u8>,
    /// The client's `Sec-WebSocket-Key`.
    pub key: String,
    /// The client's permessage-deflate offers, parsed.
    pub offers: Vec<Offer>,
    /// When the case started (UTC, ISO 8601): `onConnect`'s `utcnow()`.
    pub started: String,
}

/// Runs case `number` (its 1-based position in the served selection, the
/// report's `case`) as the server on a connection whose request head has
/// been read: answers the handshake (`succeedHandshake`), then plays the
/// case exactly as [`run_case`] does from the other side.
pub async fn serve_case(
    case: &Case,
    number: usize,
    accepted: Accepted,
    testdata: Option<std::sync::Arc<TestFile>>,
) -> CaseRun {
    let mut conn = Conn::new(case, Role::Server, testdata);
    let Accepted { stream, reads, head, rest, key, offers, started } = accepted;
    let open_at = conn
        .drive(stream, key.as_bytes(), |conn| {
            for read in &reads {
                conn.log_rx_octets(read);
            }
            conn.http_response = conn.server_handshake(&key, &offers);
            let open_at = Instant::now();
            conn.opened(&rest);
            Some(open_at)
        })
        .await;
    conn.finish(number, String::from_utf8_lossy(&head).into_owned(), started, open_at)
}

/// Writes each flush on its own, in order, then closes the sending side;
/// on [`Write::Abort`] stops and hands the socket back.
async fn write_loop(mut writer: OwnedWriteHalf, mut rx: mpsc::UnboundedReceiver<Write>) -> Option<OwnedWriteHalf> {
    while let Some(item) = rx.recv().await {
        match item {
            Write::Data(bytes) => {
                if writer.write_all(&bytes).await.is_err() {
                    return None;
                }
            }
            Write::Shutdown => {
                let _ = writer.shutdown().await;
                return None;
            }
            Write::Abort => return Some(writer),
        }
    }
    None
}

impl<'c> Conn<'c> {
    fn new(case: &'c Case, role: Role, testdata: Option<std::sync::Arc<TestFile>>) -> Conn<'c> {
        Conn {
            case,
            role,
            aborted: false,
            state: State::Connecting,
            writer: None,
            flags: Flags { is_server: role == Role::Server, ..Flags::default() },
            received: Vec::new(),
            wirelog: Vec::new(),
            rx_octets: BTreeMap::new(),
            rx_frames: BTreeMap::new(),
            tx_octets: BTreeMap::new(),
            tx_frames: BTreeMap::new(),
            timers: Vec::new(),
            rx: Rx::default(),
            rng: seed(),
            raw_mask: [0; 4],
            raw_pos: 0,
            http_response: String::new(),
            pending: Vec::new(),
            send_queue: std::collections::VecDeque::new(),
            triggered: false,
            wirelog_on: true,
            count: 0,
            crashed: false,
            pmd: None,
            traffic: TrafficStats::default(),
            traffic_report: None,
            deflate_run: testdata.map(|data| DeflateRun { data, next: 0, expected: Vec::new() }),
        }
    }

    /// The reactor loop of one connection, for either role: `start` runs
    /// once the writer is ready (the client sends its request, the server
    /// its response) and returns when the connection opened, if it did;
    /// a client's response head is read here (`key` checks it).
    async fn drive(
        &mut self,
        stream: TcpStream,
        key: &[u8],
        start: impl FnOnce(&mut Self) -> Option<Instant>,
    ) -> Option<Instant> {
        let _ = stream.set_nodelay(true);
        let (mut reader, writer) = stream.into_split();
        let (tx, rx) = mpsc::unbounded_channel();
        let writer_task = tokio::spawn(write_loop(writer, rx));
        self.writer = Some(tx);
        let mut open_at = start(self);
        self.flush();
        let mut buf = vec![0u8; 64 * 1024];
        let mut head = Vec::new();
        let mut last_send_turn = Instant::now();
        while self.state != State::Closed {
            let deadline = self.timers.iter().map(|(t, _)| *t).min();
            let stalled = deadline.is_none();
            let read = if deadline.is_some_and(|d| d <= Instant::now()) {
                // A timer is due (a chopped write's next piece): poll the
                // socket without waiting, let the writer run, and go on;
                // tokio's sleep would round this turn up to a millisecond.
                tokio::task::yield_now().await;
                // tokio's timers tick in milliseconds: wait out the pace
                // by yielding (other cases run meanwhile with --jobs).
                while last_send_turn.elapsed() < TURN_PACE {
                    tokio::task::yield_now().await;
                }
                last_send_turn = Instant::now();
                tokio::select! {
                    biased;
                    read = reader.read(&mut buf) => Some(read),
                    () = std::future::ready(()) => None,
                }
            } else {
                let sleep = tokio::time::sleep_until(deadline.unwrap_or_else(|| Instant::now() + STALL_LIMIT).into());
                tokio::select! {
                    read = reader.read(&mut buf) => Some(read),
                    () = sleep => None,
                }
            };
            match read {
                Some(Ok(0) | Err(_)) => break,
                Some(Ok(n)) => {
                    self.log_rx_octets(&buf[..n]);
                    if self.state == State::Connecting {
                        head.extend_from_slice(&buf[..n]);
                        if self.handshake(&head, key) {
                            open_at = Some(Instant::now());
                        }
                    } else {
                        self.rx.buf.extend_from_slice(&buf[..n]);
                        self.consume();
                    }
                }
                None if stalled => {
                    self.flags.was_not_clean_reason = Some(format!(
                        "nothing happened for {} s with no timer left (wstest would wait forever here)",
                        STALL_LIMIT.as_secs()
                    ));
                    self.drop_connection();
                }
                None => {}
            }
            // A reactor turn: the timers that are due run, then what
            // the turn wrote goes out in one write.
            self.fire_timers();
            self.flush();
        }
        self.state = State::Closed;
        // Let what is queued go out before the connection closes, as
        // Twisted's loseConnection does (not after an exception, nor on
        // abortConnection, which discards the buffer).
        if self.crashed || self.aborted {
            self.pending.clear();
        }
        self.flush_anyway();
        if let Some(tx) = self.writer.take() {
            let _ = tx.send(if self.aborted { Write::Abort } else { Write::Shutdown });
        }
        let writer =
            tokio::time::timeout(Duration::from_secs(1), writer_task).await.ok().and_then(Result::ok).flatten();
        if let Some(writer) = writer
            && let Ok(stream) = reader.reunite(writer)
        {
            // `abortConnection`: SO_LINGER 0, so that closing sends a reset
            // (a zero linger does not block the thread, which is what the
            // deprecation warns of).
            #[allow(deprecated)]
            let _ = stream.set_linger(Some(Duration::ZERO));
            drop(stream);
        }
        open_at
    }

    /// `connectionLost` and the report's fields.
    fn finish(mut self, number: usize, http_request: String, started: String, open_at: Option<Instant>) -> CaseRun {
        self.connection_lost();
        let duration_ms = open_at.map_or(0, |t| t.elapsed().as_millis() as u64);
        CaseRun {
            number,
            flags: self.flags,
            received: self.received,
            wirelog: self.wirelog,
            rx_octet_stats: self.rx_octets,
            rx_frame_stats: self.rx_frames,
            tx_octet_stats: self.tx_octets,
            tx_frame_stats: self.tx_frames,
            http_request,
            http_response: self.http_response,
            started,
            duration_ms,
            create_wirelog: self.wirelog_on,
            traffic_stats: self.traffic_report,
        }
    }
}

fn seed() -> u64 {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(1, |d| d.as_nanos() as u64);
    nanos | 1
}

impl Conn<'_> {
    fn next_random(&mut self) -> u64 {
        // xorshift64*: masks only need to be unpredictable to the server's
        // caches, not cryptographically strong.
        self.rng ^= self.rng >> 12;
        self.rng ^= self.rng << 25;
        self.rng ^= self.rng >> 27;
        self.rng.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn random_bytes(&mut self) -> [u8; 16] {
        let mut out = [0u8; 16];
        out[..8].copy_from_slice(&self.next_random().to_be_bytes());
        out[8..].copy_from_slice(&self.next_random().to_be_bytes());
        out
    }

    fn mask_key(&mut self) -> [u8; 4] {
        let r = self.next_random().to_be_bytes();
        [r[0], r[1], r[2], r[3]]
    }

    fn schedule(&mut self, delay: f64, timer: Timer) {
        self.timers.push((Instant::now() + Duration::from_secs_f64(delay), timer));
    }

    fn cancel(&mut self, which: fn(&Timer) -> bool) {
        self.timers.retain(|(_, t)| !which(t));
    }

    fn log_rx_octets(&mut self, data: &[u8]) {
        match self.state {
            State::Open => self.traffic.incoming_octets_wire += data.len() as u64,
            State::Connecting => self.traffic.preopen_incoming_octets_wire += data.len() as u64,
            State::Closing | State::Closed => {}
        }
        *self.rx_octets.entry(data.len()).or_default() += 1;
        if self.wirelog_on {
            self.wirelog.push(json!(["RO", [data.len(), bin_log_data(data)]]));
        }
    }

    /// `transport.write`: into this turn's buffer (nothing once closed).
    fn transport_write(&mut self, data: &[u8], sync: bool) {
        if self.state == State::Closed {
            return;
        }
        match self.state {
            State::Open => self.traffic.outgoing_octets_wire += data.len() as u64,
            State::Connecting => self.traffic.preopen_outgoing_octets_wire += data.len() as u64,
            State::Closing | State::Closed => {}
        }
        *self.tx_octets.entry(data.len()).or_default() += 1;
        if self.wirelog_on {
            self.wirelog.push(json!(["TO", [data.len(), bin_log_data(data)], sync]));
        }
        self.pending.extend_from_slice(data);
    }

    /// `sendData`: chopped and synchronous writes are queued and go out one
    /// per reactor turn; others join this turn's buffer (behind the queue).
    fn send_data(&mut self, data: Vec<u8>, sync: bool, chopsize: Option<usize>) {
        match chopsize {
            Some(n) if n > 0 => {
                for chunk in data.chunks(n) {
                    self.send_queue.push_back(chunk.to_vec());
                }
                if data.is_empty() {
                    self.send_queue.push_back(Vec::new());
                }
                self.trigger();
            }
            _ if sync || !self.send_queue.is_empty() => {
                self.send_queue.push_back(data);
                self.trigger();
            }
            _ => self.transport_write(&data, false),
        }
    }

    fn trigger(&mut self) {
        if !self.triggered {
            self.triggered = true;
            self.send_next();
        }
    }

    /// `_send`.
    fn send_next(&mut self) {
        match self.send_queue.pop_front() {
            Some(data) => {
                self.transport_write(&data, true);
                self.timers.push((Instant::now(), Timer::Send));
            }
            None => self.triggered = false,
        }
    }

    /// The end of a reactor turn: the buffer goes out as one write.
    fn flush(&mut self) {
        if self.state != State::Closed {
            self.flush_anyway();
        }
    }

    /// Hands the buffer to the writer (a closing connection still sends
    /// what it wrote, as Twisted's `loseConnection` does).
    fn flush_anyway(&mut self) {
        if !self.pending.is_empty()
            && let Some(tx) = &self.writer
        {
            let _ = tx.send(Write::Data(std::mem::take(&mut self.pending)));
        }
    }

    /// The masking key of the next frame: a fresh one for a client (RFC 6455
    /// §5.3), none for a server (§5.1: "A server MUST NOT mask any frames
    /// that it sends to the client"; `maskServerFrames = False`).
    fn frame_mask(&mut self) -> Option<[u8; 4]> {
        match self.role {
            Role::Client => Some(self.mask_key()),
            Role::Server => None,
        }
    }

    /// `sendFrame`: any frame, masked with a fresh key by a client, as the
    /// case says.
    fn send_frame(&mut self, f: &Frame) {
        let payload: Vec<u8> = match f.payload_len {
            Some(n) if !f.payload.is_empty() => f.payload.iter().copied().cycle().take(n).collect(),
            _ => f.payload.clone(),
        };
        let mask = self.frame_mask();
        let header = wsproto::FrameHeader {
            fin: f.fin,
            rsv1: f.rsv & 4 != 0,
            rsv2: f.rsv & 2 != 0,
            rsv3: f.rsv & 1 != 0,
            opcode: wsproto::OpCode::from_u4(f.opcode),
            mask,
            payload_len: payload.len() as u64,
        };
        let mut raw = Vec::with_capacity(payload.len() + wsproto::MAX_HEADER_LEN);
        wsproto::encode_frame(&header, &payload, &mut raw);
        *self.tx_frames.entry(f.opcode).or_default() += 1;
        if f.opcode <= 2 {
            self.traffic.outgoing_frames += 1;
        }
        if !self.wirelog_on {
            self.send_data(raw, f.sync, f.chopsize);
            return;
        }
        self.wirelog.push(json!([
            "TF",
            [f.payload.len(), ascii_log_data(&f.payload)],
            f.opcode,
            f.fin,
            f.rsv,
            mask.map(|m| hex(&m)),
            f.payload_len,
            f.chopsize,
            f.sync
        ]));
        self.send_data(raw, f.sync, f.chopsize);
    }

    /// `sendMessageHybi`: compressed whole when permessage-deflate is on
    /// (RSV1 on the first frame), then in frames of `fragment_size` or the
    /// case's auto-fragment size.
    fn send_message(&mut self, payload: &[u8], binary: bool, fragment_size: Option<usize>) {
        let opcode = if binary { 2 } else { 1 };
        self.traffic.outgoing_messages += 1;
        self.traffic.outgoing_octets_app += payload.len() as u64;
        let compressed = self.pmd.as_mut().map(|pmd| {
            let mut out = Vec::with_capacity(payload.len() / 2 + 64);
            pmd.deflater.compress_message(payload, &mut out);
            out
        });
        let rsv = if compressed.is_some() { 4 } else { 0 };
        let payload = compressed.as_deref().unwrap_or(payload);
        self.traffic.outgoing_octets_websocket += payload.len() as u64;
        match fragment_size.or(self.case.auto_fragment_size) {
            Some(size) if size > 0 && payload.len() > size => {
                // Autobahn's loop ends only past the end: a payload that is
                // a multiple of the fragment size gets an empty final frame.
                let mut chunks: Vec<&[u8]> = payload.chunks(size).collect();
                if payload.len().is_multiple_of(size) {
                    chunks.push(&[]);
                }
                let last = chunks.len() - 1;
                for (i, chunk) in chunks.into_iter().enumerate() {
                    let f = if i == 0 { Frame::new(opcode, chunk).rsv(rsv) } else { Frame::new(0, chunk) };
                    self.send_frame(&f.fin(i == last));
                }
            }
            _ => self.send_frame(&Frame::new(opcode, payload).rsv(rsv)),
        }
    }

    /// `sendCloseFrame`: only while open; starts the closing handshake.
    fn send_close_frame(&mut self, code: Option<u16>, reason: Option<Vec<u8>>, is_reply: bool) {
        if self.state != State::Open {
            return;
        }
        let mut payload = Vec::new();
        if let Some(code) = code {
            payload.extend_from_slice(&code.to_be_bytes());
        }
        if let Some(reason) = &reason {
            payload.extend_from_slice(reason);
        }
        self.send_frame(&Frame::new(8, payload));
        self.state = State::Closing;
        self.flags.closed_by_me = !is_reply;
        self.flags.local_close_code = code;
        self.flags.local_close_reason = reason;
        if self.flags.closed_by_me {
            self.schedule(CLOSE_HANDSHAKE_TIMEOUT.as_secs_f64(), Timer::CloseHandshake);
        }
    }

    /// `dropConnection`.
    fn drop_connection(&mut self) {
        if self.state != State::Closed {
            self.flags.dropped_by_me = true;
            self.state = State::Closed;
        }
    }

    /// `dropConnection(abort=True)` by the server: Twisted's
    /// `abortConnection`, which discards what is buffered and resets the
    /// connection. The client role keeps closing with a FIN, as it did
    /// before the roles (its verdicts are unchanged by it).
    fn abort_connection(&mut self) {
        if self.state != State::Closed && self.role == Role::Server {
            self.aborted = true;
        }
        self.drop_connection();
    }

    /// `failConnection` (without `failByDrop`).
    fn fail_connection(&mut self, code: u16, reason: &str) {
        if self.state == State::Closed {
            return;
        }
        self.flags.failed_by_me = true;
        if self.state != State::Closing {
            let reason = reason.as_bytes();
            self.send_close_frame(Some(code), Some(reason[..reason.len().min(123)].to_vec()), false);
        } else {
            self.drop_connection();
        }
    }

    fn protocol_violation(&mut self, reason: &str) {
        self.fail_connection(CLOSE_PROTOCOL_ERROR, reason);
    }

    fn invalid_payload(&mut self, reason: &str) {
        self.fail_connection(CLOSE_INVALID_PAYLOAD, reason);
    }

    /// Reads the server's response head; on a valid 101, opens and runs the
    /// case's first actions. Returns whether the connection opened.
    fn handshake(&mut self, head: &[u8], key: &[u8]) -> bool {
        let limits = wsproto::handshake::Limits::default();
        let end = match head.windows(4).position(|w| w == b"\r\n\r\n") {
            Some(i) => i + 4,
            None => {
                if head.len() > MAX_RESPONSE_HEAD {
                    self.flags.was_not_clean_reason = Some("response head too long".into());
                    self.drop_connection();
                }
                return false;
            }
        };
        self.http_response = String::from_utf8_lossy(&head[..end]).into_owned();
        // Autobahn accepts any valid permessage-deflate configuration the
        // server answers with (the cases' `accept` returns
        // `PerMessageDeflateResponseAccept(response)` whatever it says), so
        // the response is checked on its own, not against the offers.
        let offered: &[&str] = if self.case.deflate.is_some() { &[PERMESSAGE_DEFLATE] } else { &[] };
        let valid = match wsproto::handshake::parse_response(&head[..end], &limits) {
            Ok(wsproto::Status::Complete((response, _))) => response
                .validate(key, &[], offered)
                .and_then(|selected| DeflateParams::from_response(&selected.extensions))
                .map_err(|e| e.to_string()),
            Ok(wsproto::Status::Partial) => Err("incomplete response".to_owned()),
            Err(e) => Err(e.to_string()),
        };
        match valid {
            Ok(params) => self.pmd = params.as_ref().map(Pmd::from_response),
            Err(reason) => {
                self.flags.was_not_clean_reason = Some(reason);
                self.drop_connection();
                return false;
            }
        }
        self.opened(&head[end..]);
        true
    }

    /// `succeedHandshake`: the server's `101` response (the bytes Autobahn
    /// writes, `Server` and `X-Powered-By` included), with the
    /// permessage-deflate the case's `SERVER_ACCEPT` takes from the
    /// client's offers; returns the response head for the report.
    fn server_handshake(&mut self, key: &str, offers: &[Offer]) -> String {
        let accept = wsproto::handshake::accept_key(key.as_bytes());
        let accept = accept.as_str();
        let mut response = format!(
            "HTTP/1.1 101 Switching Protocols\r\nServer: {SERVER_NAME}\r\nX-Powered-By: {POWERED_BY}\r\n\
             Upgrade: WebSocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {accept}\r\n"
        );
        if let Some(mode) = server_accept(self.case)
            && let Some(agreed) = accept_offers(mode, offers)
        {
            response.push_str(&format!("Sec-WebSocket-Extensions: {}\r\n", agreed.response()));
            self.pmd = Some(Pmd::new(
                agreed.server_no_context_takeover,
                agreed.server_max_window_bits.unwrap_or(DEFAULT_WINDOW_BITS),
                agreed.client_no_context_takeover,
                agreed.client_max_window_bits.unwrap_or(DEFAULT_WINDOW_BITS),
            ));
        }
        response.push_str("\r\n");
        self.send_data(response.as_bytes().to_vec(), false, None);
        response
    }

    /// `_onOpen`: the connection is open; the case starts (`onOpen`), then
    /// what came with the handshake is read.
    fn opened(&mut self, rest: &[u8]) {
        self.state = State::Open;
        self.cancel(|t| matches!(t, Timer::OpenHandshake));
        self.flags.connection_was_open = true;
        match self.case.kind {
            Kind::Standard => {}
            Kind::Limits { wait, .. } => {
                self.wirelog_on = false;
                self.flags.result = format!("Did not receive message within {wait} seconds.");
            }
            Kind::RoundTrip { wait, .. } => {
                self.enable_wirelog(false);
                self.flags.result = format!("Case did not finish within {wait} seconds.");
                self.run_actions(&[Action::CloseAfter(f64::from(wait))]);
                self.send_one();
            }
            Kind::Deflate => {
                // `Case12_X_X.onOpen`.
                self.enable_wirelog(false);
                if self.pmd.is_none() {
                    self.flags.behavior = super::judge::UNIMPLEMENTED;
                    self.send_close_frame(Some(CLOSE_NORMAL), None, false);
                } else if self.deflate_run.is_none() {
                    self.flags.result = "Not run: the testsuite's test data files were not found.".into();
                    self.send_close_frame(Some(CLOSE_NORMAL), None, false);
                } else if let Some(spec) = &self.case.deflate {
                    self.flags.result = format!("Case did not finish within {} seconds.", spec.wait);
                    self.run_actions(&[Action::CloseAfter(f64::from(spec.wait))]);
                    self.send_deflate_one();
                }
            }
        }
        let actions = self.case.on_open.clone();
        self.run_actions(&actions);
        self.rx.buf.extend_from_slice(rest);
        if !self.rx.buf.is_empty() {
            self.consume();
        }
    }

    fn run_actions(&mut self, actions: &[Action]) {
        for action in actions {
            match action {
                Action::Frame(f) => self.send_frame(f),
                Action::Message { payload, binary, fragment_size } => {
                    self.send_message(payload, *binary, *fragment_size);
                }
                Action::Close { code, reason } => self.send_close_frame(*code, reason.clone(), false),
                Action::BeginFrame { len } => {
                    if self.state != State::Open {
                        continue;
                    }
                    let mask = self.frame_mask();
                    self.raw_mask = mask.unwrap_or_default();
                    self.raw_pos = 0;
                    let header = wsproto::FrameHeader {
                        fin: false,
                        rsv1: false,
                        rsv2: false,
                        rsv3: false,
                        opcode: wsproto::OpCode::Text,
                        mask,
                        payload_len: *len as u64,
                    };
                    let mut buf = [0u8; wsproto::MAX_HEADER_LEN];
                    // Not counted in the frame statistics, as Autobahn's
                    // beginMessageFrame does not count it.
                    let n = header.encode(&mut buf);
                    self.send_data(buf[..n].to_vec(), false, None);
                }
                Action::FrameData(data) => {
                    if self.state != State::Open {
                        continue;
                    }
                    let mut data = data.clone();
                    if self.role == Role::Client {
                        wsproto::apply_mask(&mut data, self.raw_mask, self.raw_pos % 4);
                    }
                    self.raw_pos += data.len();
                    self.send_data(data, false, None);
                }
                Action::KillAfter(d) => {
                    self.wirelog.push(json!(["KL", seconds(*d)]));
                    self.schedule(*d, Timer::Kill);
                }
                Action::CloseAfter(d) => {
                    self.wirelog.push(json!(["TI", seconds(*d)]));
                    self.schedule(*d, Timer::Close);
                }
                Action::ContinueLater { delay, part, tag } => {
                    self.wirelog.push(json!(["CT", seconds(*delay), tag]));
                    self.schedule(*delay, Timer::Continue { part: *part, tag: tag.clone() });
                }
            }
        }
    }

    fn fire_timers(&mut self) {
        let now = Instant::now();
        let mut due: Vec<(Instant, Timer)> = Vec::new();
        self.timers.retain(|(t, timer)| {
            if *t <= now {
                due.push((*t, timer.clone()));
                false
            } else {
                true
            }
        });
        due.sort_by_key(|(t, _)| *t);
        for (_, timer) in due {
            self.fire(timer);
        }
    }

    fn fire(&mut self, timer: Timer) {
        if let Timer::Send = timer {
            // Runs even once closed (its write is then skipped), to empty the queue.
            self.send_next();
            return;
        }
        if self.state == State::Closed {
            return;
        }
        match timer {
            Timer::Kill => {
                self.wirelog.push(json!(["KLE"]));
                self.fail_connection(CLOSE_GOING_AWAY, "Going Away");
            }
            Timer::Close => {
                self.wirelog.push(json!(["TIE"]));
                self.send_close_frame(None, None, false);
            }
            Timer::Continue { part, tag } => {
                self.wirelog.push(json!(["CTE", tag]));
                let Some(part) = self.case.parts.get(part).cloned() else { return };
                if let Some(tag) = &part.timeout_tag {
                    if self.state != State::Open {
                        return;
                    }
                    self.received.push(Observed::Timeout(tag.clone()));
                }
                self.run_actions(&part.actions);
            }
            Timer::CloseHandshake => {
                self.flags.was_clean = false;
                self.flags.was_not_clean_reason = Some("peer did not respond (in time) in closing handshake".into());
                self.flags.was_close_handshake_timeout = true;
                self.abort_connection();
            }
            Timer::ServerDrop => {
                self.flags.was_clean = false;
                self.flags.was_not_clean_reason = Some("server did not drop TCP connection (in time)".into());
                self.flags.was_server_connection_drop_timeout = true;
                self.drop_connection();
            }
            Timer::Send => {}
            Timer::OpenHandshake => {
                if self.state == State::Connecting {
                    self.flags.was_clean = false;
                    self.flags.was_not_clean_reason =
                        Some("peer did not finish (in time) the opening handshake".into());
                    self.flags.was_open_handshake_timeout = true;
                    self.drop_connection();
                }
            }
        }
    }

    /// `consumeData`: process frames while there is data and the
    /// connection is not closed.
    fn consume(&mut self) {
        while self.state != State::Closed && self.process_data() {}
    }

    /// `processDataHybi`: one step; whether to go on.
    fn process_data(&mut self) -> bool {
        if self.rx.frame.is_none() {
            let buf = &self.rx.buf;
            if buf.len() < 2 {
                return false;
            }
            let (b0, b1) = (buf[0], buf[1]);
            let fin = b0 & 0x80 != 0;
            let rsv = (b0 & 0x70) >> 4;
            let opcode = b0 & 0x0f;
            let masked = b1 & 0x80 != 0;
            let len1 = b1 & 0x7f;
            let pmd = self.pmd.is_some();
            // RFC 6455 §5.2: RSV MUST be 0 unless an extension defines it
            // (RFC 7692 §6: permessage-deflate defines RSV1).
            if rsv != 0 && !(pmd && rsv == 4) {
                self.protocol_violation(&format!("RSV = {rsv} and no extension negotiated"));
            }
            match self.role {
                // §5.1: "The server MUST close the connection upon receiving
                // a frame that is not masked" (`requireMaskedClientFrames`).
                Role::Server if !masked => self.protocol_violation("unmasked client-to-server frame"),
                // §5.1: "A client MUST close a connection if it detects a
                // masked frame" (`acceptMaskedServerFrames = False`).
                Role::Client if masked => self.protocol_violation("masked server-to-client frame"),
                _ => {}
            }
            if opcode > 7 {
                // §5.4/§5.5: control frames MUST NOT be fragmented and carry at most 125 bytes.
                if !fin {
                    self.protocol_violation("fragmented control frame");
                }
                if len1 > 125 {
                    self.protocol_violation("control frame with payload length > 125 octets");
                }
                if ![8, 9, 10].contains(&opcode) {
                    self.protocol_violation(&format!("control frame using reserved opcode {opcode}"));
                }
                if opcode == 8 && len1 == 1 {
                    self.protocol_violation("received close control frame with payload len 1");
                }
                // RFC 7692 §6.1: "An endpoint MUST NOT set the \"Per-Message
                // Compressed\" bit of control frames".
                if pmd && rsv == 4 {
                    self.protocol_violation("received compressed control frame [permessage-deflate]");
                }
            } else {
                if opcode > 2 {
                    self.protocol_violation(&format!("data frame using reserved opcode {opcode}"));
                }
                if !self.rx.inside_message && opcode == 0 {
                    self.protocol_violation("received continuation data frame outside fragmented message");
                }
                if self.rx.inside_message && opcode != 0 {
                    self.protocol_violation("received non-continuation data frame while inside fragmented message");
                }
                // RFC 7692 §6.1: the bit is set on the first frame of a
                // message only.
                if pmd && rsv == 4 && self.rx.inside_message {
                    self.protocol_violation(
                        "received continuation data frame with compress bit set [permessage-deflate]",
                    );
                }
            }
            let mask_len = if masked { 4 } else { 0 };
            let header_len = match len1 {
                126 => 4 + mask_len,
                127 => 10 + mask_len,
                _ => 2 + mask_len,
            };
            if self.rx.buf.len() < header_len {
                return false;
            }
            let buf = &self.rx.buf;
            let mut i = 2;
            let len = match len1 {
                126 => {
                    let l = u64::from(u16::from_be_bytes([buf[2], buf[3]]));
                    i += 2;
                    l
                }
                127 => {
                    let mut b = [0u8; 8];
                    b.copy_from_slice(&buf[2..10]);
                    i += 8;
                    u64::from_be_bytes(b)
                }
                n => u64::from(n),
            };
            let mask = masked.then(|| [buf[i], buf[i + 1], buf[i + 2], buf[i + 3]]);
            i += mask_len;
            if len1 == 126 && len < 126 || len1 == 127 && len < 65536 {
                self.protocol_violation("invalid data frame length (not using minimal length encoding)");
            }
            if len1 == 127 && len > 0x7FFF_FFFF_FFFF_FFFF {
                self.protocol_violation("invalid data frame length (>2^63)");
            }
            self.rx.buf.drain(..i);
            self.rx.frame = Some(RxFrame { opcode, fin, rsv, len, mask, pos: 0 });
            self.frame_begin();
            return len == 0 || !self.rx.buf.is_empty();
        }
        let Some(frame) = &self.rx.frame else { return false };
        let rest = frame.len - frame.pos;
        let take = usize::try_from(rest).unwrap_or(usize::MAX).min(self.rx.buf.len());
        let mut data: Vec<u8> = self.rx.buf.drain(..take).collect();
        if let Some(key) = frame.mask {
            wsproto::apply_mask(&mut data, key, (frame.pos % 4) as usize);
        }
        if let Some(frame) = &mut self.rx.frame {
            frame.pos += take as u64;
        }
        self.frame_data(data);
        if self.crashed {
            // The exception ends the read there: the frame never ends.
            return false;
        }
        if self.rx.frame.as_ref().is_some_and(|f| f.pos == f.len) {
            self.frame_end();
        }
        !self.rx.buf.is_empty()
    }

    fn frame_begin(&mut self) {
        let Some(frame) = &self.rx.frame else { return };
        let opcode = frame.opcode;
        if opcode > 7 {
            self.rx.control_data.clear();
            return;
        }
        if !self.rx.inside_message {
            self.rx.inside_message = true;
            self.rx.compressed = false;
            if let Some(pmd) = &mut self.pmd
                && frame.rsv == 4
            {
                self.rx.compressed = true;
                pmd.inflater.begin_message();
            }
            self.rx.validate_utf8 = opcode == 1;
            if self.rx.validate_utf8 {
                self.rx.utf8.reset();
                self.rx.utf8_rejected = false;
                self.rx.utf8_ends_on_code_point = true;
                self.rx.utf8_total = 0;
            }
            self.rx.message_binary = opcode == 2;
            self.rx.message_data.clear();
        }
        self.rx.frame_data.clear();
    }

    fn frame_data(&mut self, data: Vec<u8>) {
        let Some(frame) = &self.rx.frame else { return };
        if frame.opcode > 7 {
            self.rx.control_data.extend_from_slice(&data);
            return;
        }
        let compressed_len = data.len() as u64;
        let data = match &mut self.pmd {
            Some(pmd) if self.rx.compressed => {
                let mut out = Vec::with_capacity(data.len() * 2);
                if pmd.inflater.inflate(&data, &mut |b| out.extend_from_slice(b)).is_err() {
                    // zlib raises: the connection is lost, as after any
                    // exception in Autobahn's client.
                    self.crashed = true;
                    self.state = State::Closed;
                    return;
                }
                out
            }
            _ => data,
        };
        if self.state == State::Open {
            self.traffic.incoming_octets_websocket += compressed_len;
            self.traffic.incoming_octets_app += data.len() as u64;
        }
        if self.rx.validate_utf8 {
            let (valid, ends) = self.rx.validate(&data);
            self.rx.utf8_ends_on_code_point = ends;
            if !valid {
                let at = self.rx.utf8_total;
                self.invalid_payload(&format!(
                    "encountered invalid UTF-8 while processing text message at payload octet index {at}"
                ));
            }
        }
        if !self.flags.failed_by_me {
            self.rx.frame_data.extend_from_slice(&data);
        }
    }

    fn frame_end(&mut self) {
        let Some(frame) = self.rx.frame.take() else { return };
        let payload = if frame.opcode > 7 {
            std::mem::take(&mut self.rx.control_data)
        } else {
            std::mem::take(&mut self.rx.frame_data)
        };
        *self.rx_frames.entry(frame.opcode).or_default() += 1;
        if self.wirelog_on {
            self.wirelog.push(json!([
                "RF",
                [payload.len(), ascii_log_data(&payload)],
                frame.opcode,
                frame.fin,
                frame.rsv,
                frame.mask.is_some(),
                frame.mask.map(|m| hex(&m))
            ]));
        }
        if frame.opcode > 7 {
            self.control_frame(frame.opcode, payload);
            return;
        }
        if self.state == State::Open {
            self.traffic.incoming_frames += 1;
        }
        if !self.flags.failed_by_me {
            self.rx.message_data.extend_from_slice(&payload);
        }
        if frame.fin {
            // `endDecompressMessage` inflates the `00 00 ff ff` tail and drops
            // what that yields (nothing, for a sync-flushed message).
            if let Some(pmd) = &mut self.pmd
                && self.rx.compressed
                && pmd.inflater.end_message(&mut |_| {}).is_err()
            {
                self.crashed = true;
                self.state = State::Closed;
                return;
            }
            if self.rx.validate_utf8 && !self.rx.utf8_ends_on_code_point {
                let at = self.rx.utf8_total;
                self.invalid_payload(&format!(
                    "UTF-8 text message payload ended within Unicode code point at payload octet index {at}"
                ));
            }
            if self.state == State::Open {
                self.traffic.incoming_messages += 1;
            }
            if !self.flags.failed_by_me {
                let message = std::mem::take(&mut self.rx.message_data);
                let binary = self.rx.message_binary;
                self.observe(Observed::Message(message, binary));
            }
            self.rx.inside_message = false;
        }
    }

    fn control_frame(&mut self, opcode: u8, payload: Vec<u8>) {
        match opcode {
            8 => {
                let code = (payload.len() > 1).then(|| u16::from_be_bytes([payload[0], payload[1]]));
                let reason = (payload.len() > 2).then(|| payload[2..].to_vec());
                self.close_frame(code, reason);
            }
            // Autobahn answers pings only while open.
            9 if self.state == State::Open => self.send_frame(&Frame::new(10, payload)),
            10 => self.observe(Observed::Pong(payload)),
            _ => {}
        }
    }

    /// `onCloseFrame`.
    fn close_frame(&mut self, code: Option<u16>, reason: Option<Vec<u8>>) {
        self.flags.remote_close_code = code;
        if let Some(code) = code {
            // Autobahn's CLOSE_STATUS_CODES_ALLOWED.
            let allowed = [1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011];
            if code < 1000 || (code <= 2999 && !allowed.contains(&code)) || code >= 5000 {
                self.protocol_violation(&format!("invalid close code {code}"));
            }
        }
        match reason {
            None => self.flags.remote_close_reason = None,
            Some(reason) => {
                let mut v = wsproto::Utf8Validator::new();
                if v.feed(&reason).is_err() {
                    self.invalid_payload("invalid close reason (non-UTF-8 payload)");
                }
                let Some(decoded) = python2_utf8(&reason) else {
                    // Autobahn goes on to `reasonRaw.decode('utf8')`, which
                    // raises: Twisted then loses the connection on the spot,
                    // with no close reply and no drop of ours.
                    self.crashed = true;
                    self.state = State::Closed;
                    return;
                };
                self.flags.remote_close_reason = Some(decoded);
            }
        }
        match self.state {
            State::Closing => {
                self.cancel(|t| matches!(t, Timer::CloseHandshake));
                self.flags.was_clean = true;
                match self.role {
                    // The server should drop TCP (RFC 6455 §7.1.1); if it
                    // does not in time, the client does.
                    Role::Client => self.schedule(SERVER_DROP_TIMEOUT.as_secs_f64(), Timer::ServerDrop),
                    // "When we are a server, we immediately drop the TCP":
                    // `dropConnection(abort=True)`, a reset.
                    Role::Server => self.abort_connection(),
                }
            }
            State::Open => {
                self.flags.was_clean = true;
                self.send_close_frame(Some(super::cases::CLOSE_NORMAL), None, true);
                if self.role == Role::Server {
                    // `dropConnection(abort=False)`: the reply goes out, then a FIN.
                    self.drop_connection();
                }
            }
            State::Closed => self.flags.was_clean = false,
            State::Connecting => {}
        }
    }

    /// `enableWirelog`: switching is itself logged.
    fn enable_wirelog(&mut self, on: bool) {
        if on != self.wirelog_on {
            self.wirelog_on = on;
            self.wirelog.push(json!(["WLM", on]));
        }
    }

    /// `sendOne` of 9.7.* and 9.8.*.
    fn send_one(&mut self) {
        if let Kind::RoundTrip { len, binary, .. } = self.case.kind {
            let f = if binary { Frame::new(2, b"\xfe".to_vec()) } else { Frame::new(1, b"*".to_vec()) };
            self.send_frame(&f.repeat(len));
            self.count += 1;
        }
    }

    /// `Case12_X_X.sendOne`: the next message cut from the test data.
    fn send_deflate_one(&mut self) {
        let (Some(spec), Some(run)) = (&self.case.deflate, &mut self.deflate_run) else { return };
        let (message, next) = run.data.cut(run.next, spec.len);
        run.next = next;
        let binary = spec.binary;
        self.send_message(&message, binary, None);
        if let Some(run) = &mut self.deflate_run {
            run.expected = message;
        }
        self.count += 1;
    }

    /// `Case12_X_X.onMessage`: the echo must have the type, the length (in
    /// characters for text) and the SHA-1 of the message sent.
    fn on_deflate_message(&mut self, message: &[u8], got_binary: bool) {
        let (Some(spec), Some(run)) = (&self.case.deflate, &self.deflate_run) else { return };
        let same = message == run.expected.as_slice();
        let expected_hash: [u8; 20] = if same { [0; 20] } else { Sha1::digest(&run.expected).into() };
        let len = if spec.binary {
            message.len()
        } else {
            match std::str::from_utf8(message) {
                Ok(text) => text.chars().count(),
                Err(_) => {
                    // `msg.decode('utf-8')` raises: Twisted drops the
                    // connection on the spot, as after any exception.
                    self.crashed = true;
                    self.state = State::Closed;
                    return;
                }
            }
        };
        let python_bool = |b: bool| if b { "True" } else { "False" };
        let (want_binary, want_len) = (spec.binary, spec.len);
        if got_binary != want_binary || len != want_len || !same {
            self.flags.behavior = super::judge::FAILED;
            self.enable_wirelog(true);
            self.send_close_frame(Some(CLOSE_NORMAL), None, false);
            self.flags.result = if got_binary != want_binary {
                format!(
                    "Echo'ed message type differs from what I sent (got binary {}, expected binary {}).",
                    python_bool(got_binary),
                    python_bool(want_binary)
                )
            } else if len != want_len {
                format!(
                    "Echo'ed message length differs from what I sent (got length {len}, expected length {want_len})."
                )
            } else {
                format!(
                    "Echo'ed message contents differs from what I sent (got SHA1 {}, expected SHA1 {}).",
                    hex(&Sha1::digest(message)),
                    hex(&expected_hash)
                )
            };
        } else if self.count < spec.count {
            self.send_deflate_one();
        } else {
            self.flags.behavior = super::judge::OK;
            self.flags.result = "Ok, received all echo'ed messages in time.".into();
            self.traffic_report = Some(self.traffic.clone());
            self.enable_wirelog(true);
            self.send_close_frame(Some(CLOSE_NORMAL), None, false);
        }
    }

    /// The `onMessage` of the 9.* cases.
    fn on_limits_message(&mut self, message: &[u8], got_binary: bool) {
        let kind_name = |b: bool| if b { "binary" } else { "text" };
        match self.case.kind {
            Kind::Standard => {}
            Kind::Deflate => self.on_deflate_message(message, got_binary),
            Kind::Limits { len, binary, .. } => {
                if got_binary != binary {
                    // 9.4.1's message says "binary" twice, as Autobahn's does.
                    let got = if self.case.id == "9.4.1" { "binary" } else { kind_name(got_binary) };
                    self.flags.result = format!("Expected {} message with payload, but got {got}.", kind_name(binary));
                } else if message.len() != len {
                    self.flags.result = format!(
                        "Expected {} message with payload of length {len}, but got {}.",
                        kind_name(binary),
                        message.len()
                    );
                } else {
                    self.flags.behavior = super::judge::OK;
                    self.flags.result = format!("Received {} message of length {}.", kind_name(binary), message.len());
                }
                self.wirelog_on = true;
                self.send_close_frame(Some(CLOSE_NORMAL), None, false);
            }
            Kind::RoundTrip { len, count, binary, .. } => {
                if got_binary != binary || message.len() != len {
                    self.flags.behavior = super::judge::FAILED;
                    self.flags.result = format!(
                        "Echo'ed message type or length differs from what I sent (got binary = {}, payload length = {}).",
                        if got_binary { "True" } else { "False" },
                        message.len()
                    );
                } else if self.count < count {
                    self.send_one();
                    return;
                } else {
                    self.flags.behavior = super::judge::OK;
                    self.flags.result = "Ok, received all echo'ed messages in time.".into();
                }
                self.enable_wirelog(true);
                self.send_close_frame(Some(CLOSE_NORMAL), None, false);
            }
        }
    }

    /// Records an event and, once it matches the one expected outcome,
    /// starts the closing handshake (`finishWhenDone`).
    fn observe(&mut self, event: Observed) {
        if self.case.kind != Kind::Standard {
            // The 9.* cases record nothing (their `onMessage` replaces Case's).
            if let Observed::Message(message, binary) = &event {
                self.on_limits_message(message, *binary);
            }
            return;
        }
        self.received.push(event);
        let all_match = self.case.expected.values().all(|e| *e == self.received);
        if all_match && self.case.expected_close.closed_by_me && !self.case.suppress_close {
            let code = self.case.expected_close.close_code.first().copied();
            self.send_close_frame(code, None, false);
        }
    }

    /// `connectionLost`.
    fn connection_lost(&mut self) {
        self.state = State::Closed;
        if !self.flags.was_clean && !self.flags.dropped_by_me && self.flags.was_not_clean_reason.is_none() {
            self.flags.was_not_clean_reason =
                Some("peer dropped the TCP connection without previous WebSocket closing handshake".into());
        }
        judge(self.case, &self.received, &self.tx_frames, &mut self.flags);
    }
}

/// Python 2's `str.decode('utf8')`, which wstest runs on a close reason: UTF-8,
/// except that an encoded UTF-16 surrogate (`ED A0 80` to `ED BF BF`, which
/// RFC 3629 §3 forbids and the close-reason check rejects) decodes to a
/// lone surrogate instead of raising. A Rust string cannot hold one: it
/// becomes U+FFFD (wstest's report has `\udXXX` there). None when Python 2
/// raises.
fn python2_utf8(bytes: &[u8]) -> Option<String> {
    let mut fixed = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let surrogate = bytes[i] == 0xED
            && bytes.get(i + 1).is_some_and(|b| (0xA0..=0xBF).contains(b))
            && bytes.get(i + 2).is_some_and(|b| (0x80..=0xBF).contains(b));
        if surrogate {
            fixed.extend_from_slice("\u{FFFD}".as_bytes());
            i += 3;
        } else {
            fixed.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(fixed).ok()
}

/// Lowercase hex.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::super::cases::all_cases;
    use super::*;

    fn case(id: &str) -> Case {
        all_cases().into_iter().find(|c| c.id == id).expect("case exists")
    }

    /// A connection of `role` that has opened, with nothing sent yet.
    fn open(case: &Case, role: Role) -> Conn<'_> {
        let mut conn = Conn::new(case, role, None);
        conn.state = State::Open;
        conn.flags.connection_was_open = true;
        conn
    }

    #[test]
    fn close_reasons_decode_as_python2_decodes_them() {
        assert_eq!(python2_utf8("κόσμε".as_bytes()).as_deref(), Some("κόσμε"));
        // 7.5.1's reason: a surrogate Python 2 lets through.
        assert_eq!(python2_utf8(b"\xce\xba\xed\xa0\x80edited").as_deref(), Some("κ\u{FFFD}edited"));
        for raises in [&b"\xff"[..], b"\xf4\x90\x80\x80", b"\xed\xa0", b"\xc0\xaf"] {
            assert_eq!(python2_utf8(raises), None, "{raises:?}");
        }
    }

    #[test]
    fn a_client_masks_and_a_server_does_not() {
        let c = case("1.1.1");
        for (role, mask_bit) in [(Role::Client, 0x80), (Role::Server, 0)] {
            let mut conn = open(&c, role);
            conn.send_frame(&Frame::new(1, b"hi".to_vec()));
            assert_eq!(conn.pending[..2], [0x81, mask_bit | 2], "{role:?}");
            assert_eq!(conn.pending.len(), if role == Role::Client { 8 } else { 4 });
            // The wire log's mask column: a key, or None.
            let tf = conn.wirelog.iter().find(|e| e[0] == "TF").expect("logged");
            assert_eq!(tf[5].is_null(), role == Role::Server, "{tf}");
        }
    }

    #[test]
    fn each_role_fails_the_connection_on_the_other_roles_masking() {
        let c = case("1.1.1");
        let unmasked = [0x81, 0x00];
        let masked = [0x81, 0x80, 1, 2, 3, 4];
        let table: [(Role, &[u8], Option<&str>); 4] = [
            (Role::Server, &unmasked, Some("unmasked client-to-server frame")),
            (Role::Server, &masked, None),
            (Role::Client, &masked, Some("masked server-to-client frame")),
            (Role::Client, &unmasked, None),
        ];
        for (role, bytes, violation) in table {
            let mut conn = open(&c, role);
            conn.rx.buf.extend_from_slice(bytes);
            conn.consume();
            assert_eq!(conn.flags.failed_by_me, violation.is_some(), "{role:?} {bytes:?}");
            let reason = conn.flags.local_close_reason.as_deref().map(String::from_utf8_lossy);
            assert_eq!(reason.as_deref(), violation, "{role:?}");
        }
    }

    #[test]
    fn the_server_drops_tcp_after_the_closing_handshake_and_the_client_waits() {
        let c = case("1.1.1");
        let close_1000 = |role: Role| {
            // A close frame from the peer: masked when the peer is a client.
            if role == Role::Server { vec![0x88, 0x82, 0, 0, 0, 0, 0x03, 0xe8] } else { vec![0x88, 0x02, 0x03, 0xe8] }
        };
        // The peer closes first: both answer; only the server drops TCP (a FIN).
        for role in [Role::Client, Role::Server] {
            let mut conn = open(&c, role);
            conn.rx.buf = close_1000(role);
            conn.consume();
            assert!(conn.flags.was_clean && !conn.flags.closed_by_me, "{role:?}");
            assert_eq!(conn.pending[0], 0x88, "{role:?}: the close reply");
            let dropped = role == Role::Server;
            assert_eq!(
                (conn.flags.dropped_by_me, conn.state == State::Closed, conn.aborted),
                (dropped, dropped, false)
            );
        }
        // The fuzzer closes first: the client then waits for the server to
        // drop TCP; the server resets the connection at once.
        for role in [Role::Client, Role::Server] {
            let mut conn = open(&c, role);
            conn.send_close_frame(Some(1000), None, false);
            conn.rx.buf = close_1000(role);
            conn.consume();
            assert!(conn.flags.was_clean && conn.flags.closed_by_me, "{role:?}");
            let waits = conn.timers.iter().any(|(_, t)| matches!(t, Timer::ServerDrop));
            assert_eq!(
                (waits, conn.aborted, conn.flags.dropped_by_me),
                (role == Role::Client, role == Role::Server, role == Role::Server)
            );
        }
    }

    #[test]
    fn the_server_answers_the_handshake_with_what_the_case_accepts() {
        let offers = super::super::offer::parse_offers(&["permessage-deflate; client_max_window_bits".into()])
            .expect("valid offer");
        let key = "dGhlIHNhbXBsZSBub25jZQ==";
        for (id, extension) in [
            ("1.1.1", None),
            ("12.1.1", Some("permessage-deflate")),
            ("13.3.1", Some("permessage-deflate; client_max_window_bits=9")),
        ] {
            let c = case(id);
            let mut conn = Conn::new(&c, Role::Server, None);
            let response = conn.server_handshake(key, &offers);
            // RFC 6455 §1.3's example key and accept value.
            assert!(response.contains("Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"), "{response}");
            let got = response.lines().find_map(|l| l.strip_prefix("Sec-WebSocket-Extensions: "));
            assert_eq!(got, extension, "{id}");
            assert_eq!(conn.pmd.is_some(), extension.is_some(), "{id}");
        }
    }
}
