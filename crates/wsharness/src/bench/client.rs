//! One bench connection: the handshake, then W messages in flight, every
//! echo checked byte for byte and by kind, round trips recorded. Written on
//! `wsproto` and a raw socket so the load generator costs little next to
//! the server it measures.

use std::collections::VecDeque;
use std::hash::{BuildHasher, Hasher};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use hdrhistogram::Histogram;
use serde::Serialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use wsproto::handshake::{self, Limits};
use wsproto::{Decoder, DecoderConfig, Event, FrameHeader, MAX_HEADER_LEN, OpCode, Role, Status, apply_mask};

use super::payload::Shape;
use wsproto::WsUrl as Target;

/// What went wrong with echoes.
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
    /// Protocol violations in the server's frames, or a close from it.
    pub protocol: u64,
}

impl Errors {
    /// All errors.
    pub fn total(&self) -> u64 {
        self.mismatched + self.wrong_kind + self.lost + self.duplicated_or_reordered + self.protocol
    }

    pub(crate) fn add(&mut self, o: &Errors) {
        self.mismatched += o.mismatched;
        self.wrong_kind += o.wrong_kind;
        self.lost += o.lost;
        self.duplicated_or_reordered += o.duplicated_or_reordered;
        self.protocol += o.protocol;
    }
}

/// When to send and when to stop.
#[derive(Debug, Clone, Copy)]
pub struct Plan {
    /// Payloads.
    pub shape: Shape,
    /// Messages in flight per connection.
    pub window: usize,
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
    /// Errors.
    pub errors: Errors,
    /// Round trips in µs, measured window only.
    pub rtt_us: Histogram<u64>,
    /// When the last measured echo arrived.
    pub last_echo: Option<Instant>,
}

/// How long to wait for an echo before counting what is in flight as lost.
const GRACE: Duration = Duration::from_secs(3);

/// A small fast random source for masking keys.
struct XorShift(u64);

impl XorShift {
    fn new() -> Self {
        XorShift(std::collections::hash_map::RandomState::new().build_hasher().finish() | 1)
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// Opens a connection and completes the opening handshake; returns the
/// stream and any bytes that came after the 101.
pub async fn connect(target: &Target) -> anyhow::Result<(TcpStream, Vec<u8>)> {
    let addr = target.connect_addr();
    let mut stream = TcpStream::connect(&addr).await.with_context(|| format!("connecting to {addr}"))?;
    stream.set_nodelay(true)?;
    let mut rng = XorShift::new();
    let mut nonce = [0u8; 16];
    nonce[..8].copy_from_slice(&rng.next().to_le_bytes());
    nonce[8..].copy_from_slice(&rng.next().to_le_bytes());
    let key = handshake::encode_key(nonce);
    let request = handshake::build_request(&target.authority(), target.resource(), &key, &[], None)
        .with_context(|| format!("{addr}: cannot build the opening request"))?;
    stream.write_all(&request).await?;
    let mut buf = Vec::with_capacity(1024);
    let limits = Limits::default();
    loop {
        if stream.read_buf(&mut buf).await? == 0 {
            bail!("{addr} closed the connection during the handshake");
        }
        match handshake::parse_response(&buf, &limits) {
            Ok(Status::Partial) => continue,
            Err(e) => bail!("{addr} sent a malformed handshake response: {e}"),
            Ok(Status::Complete((res, n))) => {
                if res.status != 101 {
                    // The body's first line often says why (a proxy's 502 does).
                    let body = buf.get(n..).unwrap_or_default();
                    let why = String::from_utf8_lossy(body).lines().next().unwrap_or_default().trim().to_owned();
                    let why = if why.is_empty() { String::new() } else { format!(": {why}") };
                    bail!("{addr} refused the upgrade: {} {}{why}", res.status, res.reason);
                }
                res.validate(key.as_bytes(), &[], &[]).with_context(|| format!("{addr}: invalid 101 response"))?;
                let rest = buf.split_off(n);
                return Ok((stream, rest));
            }
        }
    }
}

/// The sender's side: builds masked frames into one buffer per write.
struct Sender {
    shape: Shape,
    pattern: Vec<u8>,
    rng: XorShift,
    out: Vec<u8>,
    next_seq: u64,
}

impl Sender {
    fn queue(&mut self) {
        let opcode = if self.shape.text { OpCode::Text } else { OpCode::Binary };
        let key = (self.rng.next() as u32).to_ne_bytes();
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

/// Runs one connection to the end of the plan.
pub async fn run(target: &Target, plan: Plan, progress: Arc<AtomicU64>) -> anyhow::Result<ConnResult> {
    let (mut stream, mut pending) = connect(target).await?;
    let shape = plan.shape;
    let mut sender = Sender { shape, pattern: shape.pattern(), rng: XorShift::new(), out: Vec::new(), next_seq: 0 };
    let seq_len = shape.seq_len();
    let mut result = ConnResult {
        measured: 0,
        received: 0,
        errors: Errors::default(),
        rtt_us: Histogram::new_with_bounds(1, 60_000_000, 3).context("histogram")?,
        last_echo: None,
    };
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
    stream.write_all(&sender.out).await?;
    sender.out.clear();
    let mut decoder = Decoder::new(Role::Server, DecoderConfig::default());
    let mut incoming = Incoming { in_message: false, pos: 0, seq_field: [0; 16], mismatched: false };
    let mut next_expected = 0u64;
    let mut buf = vec![0u8; 256 << 10];
    let mut filled = pending.len().min(buf.len());
    buf[..filled].copy_from_slice(&pending[..filled]);
    pending.clear();
    let mut closed = false;
    while !sent_at.is_empty() && !closed {
        if filled == 0 {
            // A server that stops answering ends the run: what is in flight is lost.
            match tokio::time::timeout(GRACE, stream.read(&mut buf)).await {
                Err(_) => break,
                Ok(Ok(0)) => {
                    result.errors.protocol += 1;
                    break;
                }
                Ok(Ok(n)) => filled = n,
                Ok(Err(e)) => return Err(e).context("reading echoes"),
            }
        }
        let mut pos = 0;
        // Until the decoder has nothing more: a frame's end comes one call
        // after its last payload byte, with no input left.
        loop {
            let decoded = decoder.decode_mut(&mut buf[pos..filled]);
            pos += decoded.consumed;
            let Some(event) = decoded.event else { break };
            match event {
                Event::Header(h) => match h.header.opcode {
                    OpCode::Text | OpCode::Binary => {
                        if (h.header.opcode == OpCode::Text) != shape.text {
                            result.errors.wrong_kind += 1;
                        }
                        incoming = Incoming { in_message: true, pos: 0, seq_field: [0; 16], mismatched: false };
                    }
                    OpCode::Close => {
                        result.errors.protocol += 1;
                        closed = true;
                    }
                    _ => {}
                },
                Event::Payload(p) if incoming.in_message => {
                    let data = p.data();
                    let mut at = 0;
                    while at < data.len() {
                        let offset = incoming.pos + at;
                        if offset < seq_len {
                            let take = (seq_len - offset).min(data.len() - at);
                            incoming.seq_field[offset..offset + take].copy_from_slice(&data[at..at + take]);
                            at += take;
                        } else {
                            let from = offset - seq_len;
                            let take = (sender.pattern.len().saturating_sub(from)).min(data.len() - at);
                            if take == 0 || data[at..at + take] != sender.pattern[from..from + take] {
                                incoming.mismatched = true;
                                break;
                            }
                            at += take;
                        }
                    }
                    incoming.pos += data.len();
                }
                Event::Payload(_) => {}
                Event::Violation(_) => result.errors.protocol += 1,
                Event::FrameEnd(end) if end.message_end && incoming.in_message => {
                    incoming.in_message = false;
                    let now = Instant::now();
                    result.received += 1;
                    if incoming.pos != shape.size {
                        incoming.mismatched = true;
                    }
                    let seq = shape.read_seq(&incoming.seq_field[..seq_len]).unwrap_or(next_expected);
                    if seq >= sender.next_seq {
                        // Not a number this client sent (say, a message the
                        // server split or joined): a corrupt echo, not a
                        // sign that everything up to it was lost.
                        result.errors.mismatched += 1;
                        continue;
                    }
                    if seq < next_expected {
                        result.errors.duplicated_or_reordered += 1;
                        continue;
                    }
                    if seq > next_expected {
                        result.errors.lost += seq - next_expected;
                    }
                    // Everything before `seq` is lost; `seq` itself is answered.
                    while sent_at.front().is_some_and(|(s, _)| *s < seq) {
                        sent_at.pop_front();
                    }
                    let sent = match sent_at.front() {
                        Some((s, t)) if *s == seq => {
                            let t = *t;
                            sent_at.pop_front();
                            Some(t)
                        }
                        _ => {
                            // An echo of something never sent.
                            result.errors.mismatched += 1;
                            None
                        }
                    };
                    next_expected = seq + 1;
                    if incoming.mismatched {
                        result.errors.mismatched += 1;
                    }
                    if let Some(t) = sent
                        && t >= plan.measure_from
                        && now <= plan.send_until
                    {
                        result.measured += 1;
                        result.last_echo = Some(now);
                        let us = now.duration_since(t).as_micros().max(1) as u64;
                        let _ = result.rtt_us.record(us.min(60_000_000));
                    }
                    progress.fetch_add(1, Ordering::Relaxed);
                    // Refill the window (lost messages free their slots too).
                    while sent_at.len() < plan.window && may_send(&sender) {
                        sent_at.push_back((sender.next_seq, now));
                        sender.queue();
                    }
                }
                Event::FrameEnd(_) => {}
            }
        }
        // Bytes of an unfinished frame stay in the decoder; all were consumed.
        filled = 0;
        if !sender.out.is_empty() {
            stream.write_all(&sender.out).await?;
            sender.out.clear();
        }
    }
    result.errors.lost += sent_at.len() as u64;
    // Close politely; do not wait long for the answer.
    if !closed {
        let header = FrameHeader { mask: Some([1, 2, 3, 4]), ..FrameHeader::new(OpCode::Close, 0) };
        let mut close = Vec::new();
        wsproto::encode_frame(&header, &wsproto::encode_close_payload(wsproto::CloseCode::NORMAL, ""), &mut close);
        let _ = stream.write_all(&close).await;
        let _ = tokio::time::timeout(Duration::from_secs(1), async {
            let mut sink = [0u8; 4096];
            while matches!(stream.read(&mut sink).await, Ok(n) if n > 0) {}
        })
        .await;
    }
    Ok(result)
}
