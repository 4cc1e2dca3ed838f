//! One bench connection after its handshake: messages sent, every echo
//! checked byte for byte and by kind, round trips recorded, and how the
//! connection ended. Written on `wsproto` and a raw stream so the load
//! generator costs little next to the server it measures.
//!
//! Two ways to send:
//! * closed loop ([`run`] without a rate): W messages in flight, the next
//!   one sent when an echo comes back; the round trip is measured from
//!   the actual send.
//! * open loop (with a rate): message `k` is due at `first + k × interval`
//!   and is sent then whether or not earlier echoes have come back; the
//!   round trip is measured from the *due* time, so a stalled server (or a
//!   generator that falls behind) shows in the latency instead of quietly
//!   lowering the load.

use std::collections::VecDeque;
use std::hash::{BuildHasher, Hasher};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde::Serialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use wsproto::{
    Decoder, DecoderConfig, Event, FrameHeader, MAX_CONTROL_PAYLOAD, MAX_HEADER_LEN, OpCode, Role, apply_mask,
};

use super::conn::{BoxStream, Opened};
use super::pace::Pacer;
use super::payload::Shape;

/// What went wrong, counted by kind. Echo errors count messages;
/// connection errors count connections.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Errors {
    /// Echoes whose bytes differ from what was sent.
    pub mismatched: u64,
    /// Echoes of the wrong kind (text for binary or the reverse).
    pub wrong_kind: u64,
    /// Messages never echoed (skipped in the sequence, or missing at the end).
    pub lost: u64,
    /// Echoes that came again or out of order.
    pub duplicated_or_reordered: u64,
    /// Protocol violations in the server's frames.
    pub protocol: u64,
    /// Connections the server closed with a close frame.
    pub closed: u64,
    /// Connections the server ended without a close frame.
    pub disconnected: u64,
    /// Connections that failed on a read or write (reset, broken pipe).
    pub reset: u64,
    /// Connections that waited too long for an echo ([`GRACE`]) or for
    /// the answer to their opening handshake.
    pub timeout: u64,
    /// Connections that could not be opened (TCP or TLS).
    pub connect: u64,
    /// Connections whose upgrade was refused or whose 101 was invalid.
    pub handshake: u64,
}

impl Errors {
    /// All errors.
    pub fn total(&self) -> u64 {
        self.mismatched
            + self.wrong_kind
            + self.lost
            + self.duplicated_or_reordered
            + self.protocol
            + self.closed
            + self.disconnected
            + self.reset
            + self.timeout
            + self.connect
            + self.handshake
    }

    pub(crate) fn add(&mut self, o: &Errors) {
        self.mismatched += o.mismatched;
        self.wrong_kind += o.wrong_kind;
        self.lost += o.lost;
        self.duplicated_or_reordered += o.duplicated_or_reordered;
        self.protocol += o.protocol;
        self.closed += o.closed;
        self.disconnected += o.disconnected;
        self.reset += o.reset;
        self.timeout += o.timeout;
        self.connect += o.connect;
        self.handshake += o.handshake;
    }
}

/// How a connection ended before its plan did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum End {
    /// The server sent a close frame.
    Closed {
        /// Its status code, if it gave one.
        code: Option<u16>,
        /// Its reason (lossy UTF-8).
        reason: String,
    },
    /// The server ended the TCP connection without a close frame.
    Disconnected,
    /// A read or write failed.
    Reset {
        /// The I/O error.
        error: String,
    },
    /// Messages were in flight and nothing came back for [`GRACE`].
    Timeout,
}

impl End {
    /// A short phrase: `closed 1011 "enough"`, `reset (…)`.
    pub fn describe(&self) -> String {
        match self {
            End::Closed { code: Some(code), reason } => format!("closed by the server: {code} {reason:?}"),
            End::Closed { code: None, .. } => "closed by the server (no status code)".to_owned(),
            End::Disconnected => "disconnected by the server without a close frame".to_owned(),
            End::Reset { error } => format!("reset: {error}"),
            End::Timeout => format!("timed out: no echo for {} s with messages in flight", GRACE.as_secs()),
        }
    }

    /// Counts it in `errors`.
    pub fn count(&self, errors: &mut Errors) {
        match self {
            End::Closed { .. } => errors.closed += 1,
            End::Disconnected => errors.disconnected += 1,
            End::Reset { .. } => errors.reset += 1,
            End::Timeout => errors.timeout += 1,
        }
    }
}

/// When to send and when to stop.
#[derive(Debug, Clone, Copy)]
pub struct Plan {
    /// Payloads.
    pub shape: Shape,
    /// Messages in flight per connection (closed loop).
    pub window: usize,
    /// Messages per second on this connection (open loop), if set.
    pub rate: Option<f64>,
    /// Echoes before this instant are warm-up: checked, not measured.
    pub measure_from: Instant,
    /// No message is sent after this instant.
    pub send_until: Instant,
    /// At most this many messages per connection.
    pub messages: Option<u64>,
}

/// What one connection measured.
pub struct ConnResult {
    /// Echoes received in the measured window.
    pub measured: u64,
    /// All echoes received.
    pub received: u64,
    /// Messages sent.
    pub sent: u64,
    /// Open loop: messages due in the measured window that were sent.
    pub sent_in_window: u64,
    /// Open loop: messages due in the measured window that were never
    /// sent because the generator fell behind or the connection ended.
    pub unsent_in_window: u64,
    /// Errors.
    pub errors: Errors,
    /// Round trips in µs, measured window only.
    pub rtt_us: Histogram<u64>,
    /// Open loop: how late each message was written, µs after it was due.
    pub behind_us: Histogram<u64>,
    /// When the last measured echo arrived.
    pub last_echo: Option<Instant>,
    /// How the connection ended early, and when.
    pub end: Option<(Instant, End)>,
    /// When it stopped (closed politely, or ended).
    pub finished: Instant,
}

/// How long to wait for an echo before counting what is in flight as lost.
pub const GRACE: Duration = Duration::from_secs(3);

/// Open loop: at most this many messages per write, so a sender far
/// behind catches up in bounded steps.
const MAX_BATCH: u64 = 1024;

/// Open loop: messages due before the end of sending are still sent this
/// long after it (a timer that wakes late at the very end).
const LATE_AT_END: Duration = Duration::from_millis(100);

/// Round trips and delays above this are recorded as this.
const MAX_RECORDED_US: u64 = 60_000_000;

/// A histogram of µs from 1 µs to a minute, three significant digits.
pub fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_RECORDED_US, 3).expect("constant bounds that hdrhistogram accepts")
}

fn record(h: &mut Histogram<u64>, d: Duration) {
    let _ = h.record((d.as_micros() as u64).clamp(1, MAX_RECORDED_US));
}

/// A small fast random source for masking keys and handshake nonces.
pub struct XorShift(u64);

impl XorShift {
    /// Seeded from the process's random state.
    pub fn new() -> Self {
        XorShift(std::collections::hash_map::RandomState::new().build_hasher().finish() | 1)
    }

    /// The next number.
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// A masking key (RFC 6455 §5.3: fresh and unpredictable per frame).
    pub fn mask(&mut self) -> [u8; 4] {
        (self.next_u64() as u32).to_ne_bytes()
    }

    /// 16 bytes for a `Sec-WebSocket-Key`.
    pub fn nonce(&mut self) -> [u8; 16] {
        let mut nonce = [0u8; 16];
        nonce[..8].copy_from_slice(&self.next_u64().to_le_bytes());
        nonce[8..].copy_from_slice(&self.next_u64().to_le_bytes());
        nonce
    }
}

impl Default for XorShift {
    fn default() -> Self {
        XorShift::new()
    }
}

/// The sender's side: builds masked frames into one buffer per write.
struct Sender {
    shape: Shape,
    pattern: Arc<[u8]>,
    rng: XorShift,
    out: Vec<u8>,
    next_seq: u64,
}

impl Sender {
    fn new(shape: Shape) -> Sender {
        Sender { shape, pattern: shape.pattern().into(), rng: XorShift::new(), out: Vec::new(), next_seq: 0 }
    }

    fn queue(&mut self) {
        let opcode = if self.shape.text { OpCode::Text } else { OpCode::Binary };
        let key = self.rng.mask();
        let header = FrameHeader { mask: Some(key), ..FrameHeader::new(opcode, self.shape.size as u64) };
        let mut hdr = [0u8; MAX_HEADER_LEN];
        let n = header.encode(&mut hdr);
        self.out.extend_from_slice(&hdr[..n]);
        let start = self.out.len();
        let seq_len = self.shape.seq_len();
        self.out.resize(start + seq_len, 0);
        self.shape.write_seq(self.next_seq, &mut self.out[start..]);
        self.out.extend_from_slice(&self.pattern);
        apply_mask(&mut self.out[start..], key, 0);
        self.next_seq += 1;
    }
}

/// The receiver's view of the message being read.
struct Incoming {
    in_message: bool,
    pos: usize,
    seq_field: [u8; 16],
    mismatched: bool,
}

/// The receiving side: decodes the server's frames and checks each echo.
struct Checker {
    shape: Shape,
    pattern: Arc<[u8]>,
    decoder: Decoder,
    incoming: Incoming,
    /// Inside a close frame: its payload so far.
    close: Option<Vec<u8>>,
    /// Inside a ping: its payload so far.
    ping: Option<Vec<u8>>,
    /// Pongs to send, encoded and masked: every Ping is answered (RFC 6455
    /// §5.5.2: "Upon receipt of a Ping frame, an endpoint MUST send a Pong
    /// frame in response").
    pongs: Vec<u8>,
    rng: XorShift,
    next_expected: u64,
}

impl Checker {
    fn new(shape: Shape, pattern: Arc<[u8]>) -> Checker {
        Checker {
            shape,
            pattern,
            decoder: Decoder::new(Role::Server, DecoderConfig::default()),
            incoming: Incoming { in_message: false, pos: 0, seq_field: [0; 16], mismatched: false },
            close: None,
            ping: None,
            pongs: Vec::new(),
            rng: XorShift::new(),
            next_expected: 0,
        }
    }

    /// Decodes `data` (all of it is consumed: an unfinished frame stays in
    /// the decoder). For each echo of message `seq` answered in order
    /// (`seq < sent`), calls `on_echo(seq)`; messages skipped before it are
    /// counted lost. Returns the server's close, if one came.
    fn feed(
        &mut self,
        data: &mut [u8],
        sent: u64,
        errors: &mut Errors,
        mut on_echo: impl FnMut(u64, Instant),
    ) -> Option<End> {
        let seq_len = self.shape.seq_len();
        let mut pos = 0;
        // Until the decoder has nothing more: a frame's end comes one call
        // after its last payload byte, with no input left.
        loop {
            let decoded = self.decoder.decode_mut(&mut data[pos..]);
            pos += decoded.consumed;
            let event = decoded.event?;
            match event {
                Event::Header(h) => match h.header.opcode {
                    OpCode::Text | OpCode::Binary => {
                        if (h.header.opcode == OpCode::Text) != self.shape.text {
                            errors.wrong_kind += 1;
                        }
                        self.incoming = Incoming { in_message: true, pos: 0, seq_field: [0; 16], mismatched: false };
                    }
                    OpCode::Close => self.close = Some(Vec::new()),
                    OpCode::Ping => self.ping = Some(Vec::new()),
                    _ => {}
                },
                Event::Payload(p) if self.ping.is_some() => {
                    if let Some(ping) = &mut self.ping {
                        // The decoder flags a ping over 125 bytes; keep no more.
                        let room = (MAX_CONTROL_PAYLOAD as usize).saturating_sub(ping.len());
                        ping.extend_from_slice(&p.data()[..p.data().len().min(room)]);
                    }
                }
                Event::Payload(p) if self.close.is_some() => {
                    if let Some(c) = &mut self.close {
                        c.extend_from_slice(p.data());
                    }
                }
                Event::Payload(p) if self.incoming.in_message => {
                    let data = p.data();
                    let incoming = &mut self.incoming;
                    let mut at = 0;
                    while at < data.len() {
                        let offset = incoming.pos + at;
                        if offset < seq_len {
                            let take = (seq_len - offset).min(data.len() - at);
                            incoming.seq_field[offset..offset + take].copy_from_slice(&data[at..at + take]);
                            at += take;
                        } else {
                            let from = offset - seq_len;
                            let take = (self.pattern.len().saturating_sub(from)).min(data.len() - at);
                            if take == 0 || data[at..at + take] != self.pattern[from..from + take] {
                                incoming.mismatched = true;
                                break;
                            }
                            at += take;
                        }
                    }
                    incoming.pos += data.len();
                }
                Event::Payload(_) => {}
                Event::Violation(_) => errors.protocol += 1,
                Event::FrameEnd(_) if self.ping.is_some() => {
                    let payload = self.ping.take().unwrap_or_default();
                    // A client's frames are masked (RFC 6455 §5.3), with a
                    // fresh key each.
                    let header = FrameHeader { mask: Some(self.rng.mask()), ..FrameHeader::new(OpCode::Pong, 0) };
                    wsproto::encode_frame(&header, &payload, &mut self.pongs);
                }
                Event::FrameEnd(_) if self.close.is_some() => {
                    let payload = self.close.take().unwrap_or_default();
                    let (code, reason) = match payload.as_slice() {
                        [hi, lo, reason @ ..] => {
                            (Some(u16::from_be_bytes([*hi, *lo])), String::from_utf8_lossy(reason).into_owned())
                        }
                        _ => (None, String::new()),
                    };
                    return Some(End::Closed { code, reason });
                }
                Event::FrameEnd(end) if end.message_end && self.incoming.in_message => {
                    self.incoming.in_message = false;
                    let now = Instant::now();
                    if self.incoming.pos != self.shape.size {
                        self.incoming.mismatched = true;
                    }
                    let seq = self.shape.read_seq(&self.incoming.seq_field[..seq_len]).unwrap_or(self.next_expected);
                    if seq >= sent {
                        // Not a number this client sent (say, a message the
                        // server split or joined): a corrupt echo, not a
                        // sign that everything up to it was lost.
                        errors.mismatched += 1;
                        continue;
                    }
                    if seq < self.next_expected {
                        errors.duplicated_or_reordered += 1;
                        continue;
                    }
                    // Everything before `seq` is lost; `seq` itself is answered.
                    errors.lost += seq - self.next_expected;
                    self.next_expected = seq + 1;
                    if self.incoming.mismatched {
                        errors.mismatched += 1;
                    }
                    on_echo(seq, now);
                }
                Event::FrameEnd(_) => {}
            }
        }
    }
}

/// A result with nothing in it yet.
pub fn new_result() -> ConnResult {
    ConnResult {
        measured: 0,
        received: 0,
        sent: 0,
        sent_in_window: 0,
        unsent_in_window: 0,
        errors: Errors::default(),
        rtt_us: histogram(),
        behind_us: histogram(),
        last_echo: None,
        end: None,
        finished: Instant::now(),
    }
}

fn io_end(e: &std::io::Error) -> End {
    End::Reset { error: e.to_string() }
}

/// Runs one opened connection to the end of the plan, or until it ends.
pub async fn run(opened: Opened, plan: Plan, progress: Arc<AtomicU64>) -> ConnResult {
    let mut result = new_result();
    let mut stream = opened.stream;
    // Set when a write was cut short: the server has part of a frame, so a
    // close frame now would land inside it.
    let mut cut_short = false;
    let end = match plan.rate {
        Some(rate) => open_loop(&mut stream, opened.rest, plan, rate, &progress, &mut result, &mut cut_short).await,
        None => closed_loop(&mut stream, opened.rest, plan, &progress, &mut result).await,
    };
    if let Some(end) = end {
        end.count(&mut result.errors);
        result.end = Some((Instant::now(), end));
    }
    // Close politely unless the connection is gone (or answer the server's
    // close, echoing its code as RFC 6455 §5.5.1 has it); do not wait long
    // for the end.
    if cut_short {
        // No close frame can be sent any more: end the connection.
        let _ = tokio::time::timeout(Duration::from_secs(1), stream.shutdown()).await;
    } else if !matches!(result.end, Some((_, End::Reset { .. } | End::Disconnected))) {
        let code = match &result.end {
            Some((_, End::Closed { code: Some(code), .. })) if wsproto::CloseCode(*code).is_sendable() => {
                wsproto::CloseCode(*code)
            }
            _ => wsproto::CloseCode::NORMAL,
        };
        // RFC 6455 §5.3: a fresh, unpredictable masking key for every frame.
        let header = FrameHeader { mask: Some(XorShift::new().mask()), ..FrameHeader::new(OpCode::Close, 0) };
        let mut close = Vec::new();
        wsproto::encode_frame(&header, &wsproto::encode_close_payload(code, ""), &mut close);
        let _ = stream.write_all(&close).await;
        let _ = tokio::time::timeout(Duration::from_secs(1), async {
            let mut sink = [0u8; 4096];
            while matches!(stream.read(&mut sink).await, Ok(n) if n > 0) {}
        })
        .await;
    }
    result.finished = Instant::now();
    result
}

/// W messages in flight; each echo sends the next.
async fn closed_loop(
    stream: &mut BoxStream,
    rest: Vec<u8>,
    plan: Plan,
    progress: &AtomicU64,
    result: &mut ConnResult,
) -> Option<End> {
    let mut sender = Sender::new(plan.shape);
    let mut checker = Checker::new(plan.shape, sender.pattern.clone());
    let mut sent_at: VecDeque<(u64, Instant)> = VecDeque::with_capacity(plan.window);
    let may_send =
        |sender: &Sender| Instant::now() < plan.send_until && plan.messages.is_none_or(|limit| sender.next_seq < limit);
    let now = Instant::now();
    for _ in 0..plan.window {
        if may_send(&sender) {
            sent_at.push_back((sender.next_seq, now));
            sender.queue();
        }
    }
    if let Err(e) = stream.write_all(&sender.out).await {
        return Some(io_end(&e));
    }
    sender.out.clear();
    let mut buf = vec![0u8; 256 << 10];
    let mut filled = rest.len().min(buf.len());
    buf[..filled].copy_from_slice(&rest[..filled]);
    let mut end = None;
    while !sent_at.is_empty() {
        if filled == 0 {
            // A server that stops answering ends the run: what is in flight is lost.
            match tokio::time::timeout(GRACE, stream.read(&mut buf)).await {
                Err(_) => {
                    end = Some(End::Timeout);
                    break;
                }
                Ok(Ok(0)) => {
                    end = Some(End::Disconnected);
                    break;
                }
                Ok(Ok(n)) => filled = n,
                Ok(Err(e)) => {
                    end = Some(io_end(&e));
                    break;
                }
            }
        }
        let sent = sender.next_seq;
        let closed = checker.feed(&mut buf[..filled], sent, &mut result.errors, |seq, now| {
            result.received += 1;
            // Everything before `seq` is lost (the checker counted it).
            while sent_at.front().is_some_and(|(s, _)| *s < seq) {
                sent_at.pop_front();
            }
            if let Some((_, t)) = sent_at.pop_front()
                && t >= plan.measure_from
                && now <= plan.send_until
            {
                result.measured += 1;
                result.last_echo = Some(now);
                record(&mut result.rtt_us, now.duration_since(t));
            }
            progress.fetch_add(1, Ordering::Relaxed);
            // Refill the window (lost messages free their slots too).
            while sent_at.len() < plan.window && may_send(&sender) {
                sent_at.push_back((sender.next_seq, now));
                sender.queue();
            }
        });
        filled = 0;
        if closed.is_some() {
            end = closed;
            break;
        }
        sender.out.append(&mut checker.pongs);
        if !sender.out.is_empty() {
            if let Err(e) = stream.write_all(&sender.out).await {
                end = Some(io_end(&e));
                break;
            }
            sender.out.clear();
        }
    }
    result.sent = sender.next_seq;
    result.errors.lost += sent_at.len() as u64;
    end
}

/// Messages sent on a fixed schedule whatever comes back; round trips
/// measured from the time each message was due.
async fn open_loop(
    stream: &mut BoxStream,
    rest: Vec<u8>,
    plan: Plan,
    rate: f64,
    progress: &AtomicU64,
    result: &mut ConnResult,
    cut_short: &mut bool,
) -> Option<End> {
    let interval = 1.0 / rate;
    let first = Instant::now();
    let due = |k: u64| first + Duration::from_secs_f64(k as f64 * interval);
    let limit = plan.messages.unwrap_or(u64::MAX);
    // Messages queued for writing: the receiver checks echoes against it.
    let sent = AtomicU64::new(0);
    let stop = AtomicBool::new(false);
    let sender_done = tokio::sync::Notify::new();
    let receiver_done = tokio::sync::Notify::new();
    // Pongs the receiver wants sent: the sender writes them between its
    // frames, so a write never interleaves with another.
    let pongs = std::sync::Mutex::new(Vec::<u8>::new());
    let pong_ready = tokio::sync::Notify::new();
    // Set while a write is under way, so that a write cut short is known.
    let writing = AtomicBool::new(false);
    let take_pongs = || std::mem::take(&mut *pongs.lock().unwrap_or_else(std::sync::PoisonError::into_inner));
    let (mut rd, mut wr) = tokio::io::split(stream);
    let mut behind = histogram();

    let send = async {
        let mut sender = Sender::new(plan.shape);
        let mut pacer = Pacer::new();
        let outcome = loop {
            let k = sender.next_seq;
            if k >= limit || stop.load(Ordering::Relaxed) {
                break None;
            }
            let at = due(k);
            if at >= plan.send_until {
                break None;
            }
            tokio::select! {
                () = pacer.sleep_until(at) => {}
                () = pong_ready.notified() => {
                    if let Err(e) = write_tracked(&mut wr, &take_pongs(), &writing).await {
                        break Some(io_end(&e));
                    }
                    continue;
                }
            }
            let now = Instant::now();
            // Messages due before the end go out a little late rather than
            // not at all; a sender further behind stops at the end.
            if now >= plan.send_until + LATE_AT_END {
                break None;
            }
            // Everything due by now, in one write: a late sender catches up
            // at once.
            let batch_end = sender.next_seq + MAX_BATCH;
            while sender.next_seq < limit.min(batch_end)
                && due(sender.next_seq) <= now
                && due(sender.next_seq) < plan.send_until
            {
                let at = due(sender.next_seq);
                // As the round trips: only messages due in the measured window.
                if at >= plan.measure_from {
                    record(&mut behind, now.duration_since(at));
                }
                sender.queue();
            }
            sent.store(sender.next_seq, Ordering::Release);
            sender.out.append(&mut take_pongs());
            if let Err(e) = write_tracked(&mut wr, &sender.out, &writing).await {
                break Some(io_end(&e));
            }
            sender.out.clear();
        };
        sender_done.notify_one();
        if outcome.is_some() {
            return outcome;
        }
        // Done sending: keep answering pings while the echoes come in
        // (until the receiver ends, which stops this).
        loop {
            pong_ready.notified().await;
            if let Err(e) = write_tracked(&mut wr, &take_pongs(), &writing).await {
                return Some(io_end(&e));
            }
        }
    };
    let send = async {
        tokio::select! {
            outcome = send => outcome,
            // The receiver saw the connection end: stop even inside a
            // blocked write.
            _ = receiver_done.notified() => None,
        }
    };

    let receive = async {
        let mut checker = Checker::new(plan.shape, plan.shape.pattern().into());
        let mut buf = vec![0u8; 256 << 10];
        let mut pending = rest;
        let mut finished_sending = false;
        let outcome = loop {
            let n = if !pending.is_empty() {
                let n = pending.len().min(buf.len());
                buf[..n].copy_from_slice(&pending[..n]);
                pending.drain(..n);
                n
            } else {
                let answered = checker.next_expected;
                if finished_sending && answered >= sent.load(Ordering::Acquire) {
                    break None;
                }
                tokio::select! {
                    read = tokio::time::timeout(GRACE, rd.read(&mut buf)) => match read {
                        Err(_) if checker.next_expected < sent.load(Ordering::Acquire) => break Some(End::Timeout),
                        Err(_) => continue,
                        Ok(Ok(0)) => break Some(End::Disconnected),
                        Ok(Ok(n)) => n,
                        Ok(Err(e)) => break Some(io_end(&e)),
                    },
                    _ = sender_done.notified(), if !finished_sending => {
                        finished_sending = true;
                        continue;
                    }
                }
            };
            let sent_now = sent.load(Ordering::Acquire);
            let closed = checker.feed(&mut buf[..n], sent_now, &mut result.errors, |seq, now| {
                result.received += 1;
                let at = due(seq);
                if at >= plan.measure_from && at < plan.send_until {
                    result.measured += 1;
                    result.last_echo = Some(now);
                    record(&mut result.rtt_us, now.saturating_duration_since(at));
                }
                progress.fetch_add(1, Ordering::Relaxed);
            });
            if closed.is_some() {
                break closed;
            }
            if !checker.pongs.is_empty() {
                pongs.lock().unwrap_or_else(std::sync::PoisonError::into_inner).append(&mut checker.pongs);
                pong_ready.notify_one();
            }
        };
        // The sender stops now too (it may be answering pings).
        stop.store(true, Ordering::Relaxed);
        receiver_done.notify_one();
        let in_flight = sent.load(Ordering::Acquire).saturating_sub(checker.next_expected);
        (outcome, in_flight)
    };

    let (send_end, (receive_end, in_flight)) = tokio::join!(send, receive);
    *cut_short = writing.load(Ordering::Relaxed);
    result.sent = sent.load(Ordering::Acquire);
    result.errors.lost += in_flight;
    result.behind_us = behind;
    // Messages due in the measured window: k in [from, to).
    let index = |t: Instant| (t.saturating_duration_since(first).as_secs_f64() / interval).ceil() as u64;
    let (from, to) = (index(plan.measure_from), index(plan.send_until).min(limit));
    result.sent_in_window = result.sent.min(to).saturating_sub(from);
    result.unsent_in_window = to.saturating_sub(from) - result.sent_in_window;
    receive_end.or(send_end)
}

/// Writes all of `bytes`, with `writing` set until the write is complete:
/// if the future is dropped before, `writing` stays set.
async fn write_tracked(
    wr: &mut (impl tokio::io::AsyncWrite + Unpin),
    bytes: &[u8],
    writing: &AtomicBool,
) -> std::io::Result<()> {
    writing.store(true, Ordering::Relaxed);
    wr.write_all(bytes).await?;
    writing.store(false, Ordering::Relaxed);
    Ok(())
}
