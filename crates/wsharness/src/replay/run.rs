//! The replay's I/O: one connection to the server, opened as `bench`
//! opens its own ([`crate::bench::Connector`]: TLS for `wss://`, the 101
//! checked against the offers), the recorded client
//! frames sent at their recorded pace (fresh masking keys and
//! `Sec-WebSocket-Key`, as RFC 6455 §5.3 and §4.1 require), the server's
//! frames read into messages at the same time. Every wait is bounded.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::bail;
use tokio::io::{AsyncReadExt, AsyncWriteExt, ReadHalf};
use tokio::sync::Notify;
use wsproto::deflate::{DeflateParams, Deflater, Inflater};
use wsproto::{FrameHeader, OpCode, Role, Status};

use crate::bench::{BoxStream, Connector, TlsOptions, XorShift};

use super::{Answer, Close, Difference, Recording, Report, Timing, compare};

/// How to replay.
#[derive(Debug, Clone)]
pub struct Options {
    /// The server: `ws://HOST:PORT[/PATH]` (a path other than `/` replaces
    /// the recorded request target).
    pub url: String,
    /// Playback speed: 2 plays twice as fast.
    pub speed: f64,
    /// Send every frame as soon as the last is written.
    pub no_wait: bool,
    /// Parts of messages to ignore when comparing.
    pub ignore: Vec<regex::Regex>,
    /// The longest any single wait may take: connecting, the 101, and the
    /// server's answers after the last frame sent.
    pub timeout: Duration,
    /// For `wss://`: a PEM file of CA certificates (or the server's own)
    /// to trust besides the platform's and webpki's roots.
    pub ca_file: Option<std::path::PathBuf>,
    /// For `wss://`: do not verify the server's certificate.
    pub insecure: bool,
}

/// Largest server message read (bytes, inflated).
const MAX_MESSAGE: u64 = 64 << 20;

/// Replays `rec` against the server in `opts`: the report, or an error
/// when the replay could not happen (no connection, refused upgrade).
pub async fn run(rec: &Recording, opts: &Options) -> anyhow::Result<Report> {
    let mut url = wsproto::WsUrl::parse(&opts.url).map_err(|e| anyhow::anyhow!("--url {}: {e}", opts.url))?;
    // The opening handshake as bench opens its connections (TCP, TLS, the
    // 101 checked, each bounded), with the recorded target, subprotocols
    // and extension offer, and a fresh key.
    if matches!(url.resource(), "/") && !rec.target.is_empty() {
        url.path = rec.target.clone();
    }
    let protocols: Vec<&str> = rec.protocols.iter().map(String::as_str).collect();
    let key = wsproto::handshake::encode_key([0; 16]);
    wsproto::handshake::build_request(&url.authority(), url.resource(), &key, &protocols, rec.extensions.as_deref())
        .map_err(|e| anyhow::anyhow!("the recorded request cannot be sent again: {e}"))?;
    let tls = TlsOptions { ca_file: opts.ca_file.clone(), insecure: opts.insecure };
    let connector = Connector::new(url, &tls, &[], None, &rec.protocols)?.with_extensions(rec.extensions.as_deref())?;
    let mut rng = XorShift::new();
    let opened = connector.open_within(rng.nonce(), opts.timeout).await.map_err(|e| e.error)?;
    let deflate = opened.deflate;
    let mut buf = opened.rest;
    let (mut reader, mut writer) = tokio::io::split(opened.stream);
    let compression = rec.has_compressed().then(|| {
        if deflate.is_some() {
            "recompressed with the parameters the server agreed to".to_owned()
        } else {
            "sent uncompressed (the server declined permessage-deflate)".to_owned()
        }
    });

    // Read the server's frames while sending.
    let expected = rec.answers.len();
    let read_timeout = opts.timeout;
    let progress = Arc::new(Progress::default());
    let read_progress = progress.clone();
    let mut reading = tokio::spawn(async move {
        let state = ReadState { expected, progress: &read_progress };
        read_answers(&mut reader, &mut buf, deflate, state, read_timeout).await
    });

    let mut deflater = deflate
        .map(|p| Deflater::with_window_bits(6, p.no_context_takeover(Role::Client), p.max_window_bits(Role::Client)));
    let start = Instant::now();
    let mut late = Vec::with_capacity(rec.frames.len());
    let mut sent = 0;
    let mut sent_close = false;
    let mut out = Vec::new();
    // Once an answer does not come in time, the later frames stop waiting
    // for theirs (so a different server costs one timeout, not many).
    let mut causal = true;
    for f in &rec.frames {
        let mut due = start + f.at.div_f64(opts.speed.max(1e-6));
        if causal && !progress.wait_for(f.after_answers, opts.timeout).await {
            causal = false;
        }
        if !opts.no_wait {
            // Late because an answer came late is the server's pace, not
            // the replay's.
            due = due.max(Instant::now());
            tokio::select! {
                () = tokio::time::sleep_until(due.into()) => {}
                () = progress.ended() => {}
            }
        }
        // The server closed (or the connection ended): the rest of the
        // recording is not played into a closed connection.
        if progress.has_ended() {
            break;
        }
        out.clear();
        let mask = Some(rng.mask());
        let mut header = FrameHeader {
            fin: f.fin,
            rsv1: f.rsv[0],
            rsv2: f.rsv[1],
            rsv3: f.rsv[2],
            mask,
            ..FrameHeader::new(OpCode::from_u4(f.opcode), 0)
        };
        match (&mut deflater, f.compressed_message) {
            (Some(d), true) => {
                let mut compressed = Vec::new();
                d.compress_message(&f.payload, &mut compressed);
                header.rsv1 = true;
                wsproto::encode_frame(&header, &compressed, &mut out);
            }
            _ => wsproto::encode_frame(&header, &f.payload, &mut out),
        }
        if !opts.no_wait {
            late.push(Instant::now().saturating_duration_since(due));
        }
        // A server that stops reading cannot hold the replay longer than
        // the timeout.
        if !matches!(tokio::time::timeout(opts.timeout, writer.write_all(&out)).await, Ok(Ok(()))) {
            // The server closed: what it answered is compared below.
            break;
        }
        sent += 1;
        sent_close |= header.opcode == OpCode::Close;
    }
    progress.sending_done();
    let timing = Timing::from_lateness(late);
    // The reader's own deadline ends it within the timeout of the last
    // frame sent; this one only guards against a reader that hangs.
    let ended = match tokio::time::timeout(opts.timeout + Duration::from_secs(1), &mut reading).await {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => bail!("reading the server's answers: {e}"),
        Err(_) => {
            reading.abort();
            bail!("reading the server's answers did not end");
        }
    };
    // RFC 6455 §5.5.1: an endpoint that receives a Close frame sends one
    // in response, unless it already sent one; and echoes the code.
    if let Some(c) = &ended.close
        && !sent_close
    {
        out.clear();
        let payload = c
            .code
            .map(wsproto::CloseCode)
            .filter(|code| code.is_sendable())
            .map(|code| wsproto::encode_close_payload(code, ""))
            .unwrap_or_default();
        let header = FrameHeader { mask: Some(rng.mask()), ..FrameHeader::new(OpCode::Close, 0) };
        wsproto::encode_frame(&header, &payload, &mut out);
        if let Ok(Ok(())) = tokio::time::timeout(opts.timeout, writer.write_all(&out)).await {
            sent += 1;
        }
    }
    let _ = tokio::time::timeout(opts.timeout, writer.shutdown()).await;
    let ReadEnd { answers, close, unreadable } = ended;
    let mut differences = compare(&rec.answers, &answers, rec.close.as_ref(), close.as_ref(), &opts.ignore);
    if let Some(why) = unreadable {
        differences.push(Difference::Unreadable { why });
    }
    Ok(Report {
        conn: rec.conn,
        url: opts.url.clone(),
        frames_sent: sent,
        compression,
        expected_messages: rec.answers.len(),
        got_messages: answers.len(),
        close,
        matched: differences.is_empty(),
        differences,
        timing,
    })
}

/// What the sender and the reader tell each other: how many answers have
/// come, that no more will, that the last frame was sent.
#[derive(Debug, Default)]
struct Progress {
    answers: AtomicUsize,
    ended: AtomicBool,
    sending_done: AtomicBool,
    changed: Notify,
}

impl Progress {
    fn set(&self, answers: usize) {
        self.answers.store(answers, Ordering::Release);
        self.changed.notify_waiters();
    }

    fn end(&self) {
        self.ended.store(true, Ordering::Release);
        self.changed.notify_waiters();
    }

    fn has_ended(&self) -> bool {
        self.ended.load(Ordering::Acquire)
    }

    /// Waits until the reading ended.
    async fn ended(&self) {
        loop {
            let changed = self.changed.notified();
            if self.has_ended() {
                return;
            }
            changed.await;
        }
    }

    fn sending_done(&self) {
        self.sending_done.store(true, Ordering::Release);
        self.changed.notify_waiters();
    }

    /// Waits until the last frame was sent.
    async fn sent_all(&self) {
        loop {
            let changed = self.changed.notified();
            if self.sending_done.load(Ordering::Acquire) {
                return;
            }
            changed.await;
        }
    }

    /// Waits until `n` answers have come or the reading ended; false when
    /// `timeout` passed first.
    async fn wait_for(&self, n: usize, timeout: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let changed = self.changed.notified();
            if self.answers.load(Ordering::Acquire) >= n || self.has_ended() {
                return true;
            }
            if tokio::time::timeout_at(deadline, changed).await.is_err() {
                return false;
            }
        }
    }
}

/// What the reader shares with the sender.
struct ReadState<'a> {
    /// Server messages recorded.
    expected: usize,
    progress: &'a Progress,
}

/// How the reading ended.
struct ReadEnd {
    answers: Vec<Answer>,
    close: Option<Close>,
    /// Why the reading stopped before the server closed or ended the
    /// connection: a frame or message the replay would not read.
    unreadable: Option<String>,
}

/// Reads the server's frames (see [`read_frames`]) and tells the sender
/// when it is over.
async fn read_answers(
    reader: &mut ReadHalf<BoxStream>,
    buf: &mut Vec<u8>,
    deflate: Option<DeflateParams>,
    state: ReadState<'_>,
    timeout: Duration,
) -> ReadEnd {
    let progress = state.progress;
    let r = read_frames(reader, buf, deflate, state, timeout).await;
    progress.end();
    r
}

/// Reads the server's frames into messages until it closes, the
/// connection ends, or the deadline passes: `timeout` after the sender is
/// done (a quarter of it, from then or from the last recorded message,
/// once the recorded number of messages is in). Reads do not move the
/// deadline: a server that never stops talking is stopped too.
async fn read_frames(
    reader: &mut ReadHalf<BoxStream>,
    buf: &mut Vec<u8>,
    deflate: Option<DeflateParams>,
    ReadState { expected, progress }: ReadState<'_>,
    timeout: Duration,
) -> ReadEnd {
    let mut inflater = deflate.map(|p| {
        Inflater::with_window_bits(p.no_context_takeover(Role::Server), p.max_window_bits(Role::Server), MAX_MESSAGE)
    });
    let mut end = ReadEnd { answers: Vec::new(), close: None, unreadable: None };
    // The message being assembled: kind, compressed, payload.
    let mut current: Option<(String, bool, Vec<u8>)> = None;
    let mut chunk = vec![0u8; 64 << 10];
    // Set once the sender is done.
    let mut deadline: Option<tokio::time::Instant> = None;
    let sent_all = progress.sent_all();
    tokio::pin!(sent_all);
    let mut sending = true;
    loop {
        // Whole frames in `buf`.
        while let Status::Complete(ph) = wsproto::parse_header(buf) {
            let h = ph.header;
            // A crafted 64-bit length may not even be countable.
            let total = match (ph.header_len as u64).checked_add(h.payload_len) {
                Some(total) if total <= MAX_MESSAGE => total,
                _ => {
                    end.unreadable = Some(format!(
                        "a {:?} frame of {} bytes, over the {} MiB the replay reads",
                        h.opcode,
                        h.payload_len,
                        MAX_MESSAGE >> 20
                    ));
                    return end;
                }
            };
            if (buf.len() as u64) < total {
                break;
            }
            // `total` ≤ MAX_MESSAGE ≤ buf.len(): it fits in usize.
            let total = total as usize;
            let mut payload = buf[ph.header_len..total].to_vec();
            buf.drain(..total);
            if let Some(k) = h.mask {
                wsproto::apply_mask(&mut payload, k, 0);
            }
            match h.opcode {
                OpCode::Text | OpCode::Binary => {
                    let kind = if h.opcode == OpCode::Text { "text" } else { "binary" };
                    current = Some((kind.to_owned(), h.rsv1, payload));
                }
                OpCode::Continuation => {
                    if let Some(c) = current.as_mut() {
                        if c.2.len() as u64 + payload.len() as u64 > MAX_MESSAGE {
                            end.unreadable = Some(format!(
                                "message {}: over the {} MiB the replay reads",
                                end.answers.len() + 1,
                                MAX_MESSAGE >> 20
                            ));
                            return end;
                        }
                        c.2.extend_from_slice(&payload);
                    }
                }
                OpCode::Close => {
                    let code = (payload.len() >= 2).then(|| u16::from_be_bytes([payload[0], payload[1]]));
                    let reason = String::from_utf8_lossy(payload.get(2..).unwrap_or_default()).into_owned();
                    end.close = Some(Close { code, reason });
                    return end;
                }
                _ => {}
            }
            if h.fin
                && h.opcode.is_data()
                && let Some((kind, compressed, data)) = current.take()
            {
                let data = match (&mut inflater, compressed) {
                    (Some(inf), true) => {
                        let mut out = Vec::new();
                        let mut sink = |b: &[u8]| out.extend_from_slice(b);
                        inf.begin_message();
                        let ok = inf.inflate(&data, &mut sink).is_ok() && inf.end_message(&mut sink).is_ok();
                        if ok { out } else { data }
                    }
                    _ => data,
                };
                end.answers.push(Answer { kind, data });
                progress.set(end.answers.len());
                if end.answers.len() == expected
                    && let Some(d) = deadline.as_mut()
                {
                    *d = (*d).min(tokio::time::Instant::now() + timeout / 4);
                }
            }
        }
        let read = reader.read(&mut chunk);
        let n = match deadline {
            // While frames are still being sent, quiet is no reason to stop.
            None => tokio::select! {
                r = read => r,
                () = &mut sent_all, if sending => {
                    sending = false;
                    let wait = if end.answers.len() >= expected { timeout / 4 } else { timeout };
                    deadline = Some(tokio::time::Instant::now() + wait);
                    continue;
                }
            },
            Some(d) => match tokio::time::timeout_at(d, read).await {
                Ok(r) => r,
                Err(_) => return end,
            },
        };
        match n {
            Ok(n) if n > 0 => buf.extend_from_slice(&chunk[..n]),
            _ => return end,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs the reader over `server` (the server's bytes, then EOF), with
    /// the sending already done.
    async fn read(server: Vec<u8>, expected: usize) -> ReadEnd {
        let (ours, mut theirs) = tokio::io::duplex(1 << 20);
        let writing = tokio::spawn(async move {
            let _ = theirs.write_all(&server).await;
        });
        let stream: BoxStream = Box::new(ours);
        let (mut reader, _writer) = tokio::io::split(stream);
        let progress = Progress::default();
        progress.sending_done();
        let state = ReadState { expected, progress: &progress };
        let end = read_frames(&mut reader, &mut Vec::new(), None, state, Duration::from_secs(5)).await;
        writing.abort();
        end
    }

    fn frame(opcode: OpCode, fin: bool, payload: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        wsproto::encode_frame(&FrameHeader { fin, ..FrameHeader::new(opcode, 0) }, payload, &mut out);
        out
    }

    /// A message of two 33 MiB frames (66 MiB, over the 64 MiB the replay
    /// reads): each frame is under the limit, the assembled message is
    /// not. Reading stops there and says why; before, only frames were
    /// capped, so continuations grew the message without bound.
    #[tokio::test]
    async fn an_assembled_message_over_the_cap_is_reported() {
        let piece = vec![b'x'; 33 << 20];
        let server = [frame(OpCode::Text, false, &piece), frame(OpCode::Continuation, true, &piece)].concat();
        let end = read(server, 1).await;
        assert!(end.answers.is_empty());
        let why = end.unreadable.expect("reported");
        assert!(why.contains("message 1") && why.contains("64 MiB"), "{why}");
    }

    /// A server that never stops talking (a message every 50 ms): the
    /// reader ends at its deadline, `timeout` (300 ms) after the sending
    /// ended, however many reads come in between. Before, each read
    /// restarted the wait, so this reader never ended (here: the 10 s
    /// guard would fail the test).
    #[tokio::test]
    async fn a_server_that_keeps_talking_is_read_until_the_deadline() {
        let (ours, mut theirs) = tokio::io::duplex(1 << 16);
        let talking = tokio::spawn(async move {
            loop {
                if theirs.write_all(&frame(OpCode::Text, true, b"tick")).await.is_err() {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        });
        let stream: BoxStream = Box::new(ours);
        let (mut reader, _writer) = tokio::io::split(stream);
        let progress = Progress::default();
        progress.sending_done();
        let state = ReadState { expected: usize::MAX, progress: &progress };
        let started = Instant::now();
        let mut buf = Vec::new();
        let reading = read_frames(&mut reader, &mut buf, None, state, Duration::from_millis(300));
        let end = tokio::time::timeout(Duration::from_secs(10), reading).await.expect("the reader ends");
        talking.abort();
        assert!(started.elapsed() >= Duration::from_millis(300), "not before the deadline");
        assert!(!end.answers.is_empty() && end.close.is_none() && end.unreadable.is_none());
    }

    /// A message that fits, then a close: read as usual, nothing reported.
    #[tokio::test]
    async fn messages_under_the_cap_are_read() {
        let close = frame(OpCode::Close, true, &wsproto::encode_close_payload(wsproto::CloseCode(1000), ""));
        let server = [frame(OpCode::Text, false, b"hel"), frame(OpCode::Continuation, true, b"lo"), close].concat();
        let end = read(server, 1).await;
        assert_eq!(end.answers.len(), 1);
        assert_eq!(end.answers[0].data, b"hello");
        assert!(end.unreadable.is_none());
        assert_eq!(end.close.and_then(|c| c.code), Some(1000));
    }
}
