//! One proxied connection's I/O: accept (TLS if configured), read the
//! client's first request head within the handshake timeout, connect to
//! the upstream, then relay both directions, each read handed to the
//! sans-IO [`Session`] and what it queues written out. The session decides
//! everything else.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::{Notify, watch};

use crate::config::Config;
use crate::event::Side;
use crate::event::Time;
use crate::hold::Hold;
use crate::log::{Events, LogSink};
use crate::pool::BufferPool;
use crate::record::{Record, TlsLegs};
use crate::session::{Chunk, Ending, Flow, Session};
use crate::stream::{Stream, StreamRead, StreamWrite};
use crate::tls;
use crate::totals::Totals;

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

/// Serves one client connection to the end.
pub(crate) async fn handle(tcp: TcpStream, peer: SocketAddr, ctx: Ctx) {
    let mut events = ctx.log.events();
    let open = Record::Open {
        client: peer,
        proxy: tcp.local_addr().unwrap_or(peer),
        tls: TlsLegs { client: ctx.config.listen_tls.is_some(), upstream: ctx.config.upstream.secure },
    };
    events.record(&Time::now().stamp, ctx.conn, &open);
    let session = Mutex::new(Session::new(ctx.conn, ctx.config.clone(), peer, &Time::now(), &mut events));
    // `open` is written now, not when the connection ends.
    ctx.log.hand_over(&mut events).await;
    let ending = run(tcp, &ctx, &session, &mut events).await;
    let counters = {
        let mut s = lock(&session);
        report_errors(&ctx, &mut s);
        let t = Time::now();
        let counters = s.finish(ending, &t, &mut events);
        events.record(&t.stamp, ctx.conn, &Record::End { reset: matches!(ending, Ending::Reset | Ending::Error) });
        counters
    };
    ctx.totals.bytes.fetch_add(counters.bytes, Ordering::Relaxed);
    ctx.totals.frames.fetch_add(counters.frames, Ordering::Relaxed);
    ctx.totals.violations.fetch_add(counters.violations, Ordering::Relaxed);
    ctx.log.send(events).await;
}

/// Counts the errors the session wrote as events and, where the events are
/// not on the terminal, puts them on stderr (rate-limited).
fn report_errors(ctx: &Ctx, s: &mut Session) {
    for message in s.take_errors() {
        ctx.totals.error(ctx.conn, &message, ctx.config.errors_to_stderr);
    }
}

fn lock(session: &Mutex<Session>) -> std::sync::MutexGuard<'_, Session> {
    // A panic while holding the lock would be a bug; the state is still
    // the best there is.
    session.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Writes what the session queued for `to`; `input` is the data of the
/// feed the chunks' ranges refer to. A `--fault` wait in them (a delay, a
/// throttled write) cannot be cut short: for writes outside the pumps.
async fn write_chunks(
    dst: &mut (impl tokio::io::AsyncWrite + Unpin),
    chunks: &[Chunk],
    input: &[u8],
) -> io::Result<()> {
    write_chunks_cut(dst, chunks, input, Cut::NEVER).await
}

/// [`write_chunks`], with the `--fault` waits cut short by `cut`.
async fn write_chunks_cut(
    dst: &mut (impl tokio::io::AsyncWrite + Unpin),
    chunks: &[Chunk],
    input: &[u8],
    cut: Cut<'_>,
) -> io::Result<()> {
    for chunk in chunks {
        match chunk {
            Chunk::Input(r) => dst.write_all(&input[r.clone()]).await?,
            Chunk::Owned(v) => dst.write_all(v).await?,
            Chunk::Throttled(v, rate) => write_throttled(dst, v, *rate, cut).await?,
            // Taken out by the direction's `Hold` before writing; here (the
            // end of a connection) it only waits.
            Chunk::HoldUntil(t) => cut.sleep_until((*t).into()).await?,
        }
    }
    dst.flush().await
}

/// Writes `bytes` at about `rate` bytes per second: a tenth of a second's
/// worth at a time (at least one byte), each piece flushed.
async fn write_throttled(
    dst: &mut (impl tokio::io::AsyncWrite + Unpin),
    bytes: &[u8],
    rate: u64,
    cut: Cut<'_>,
) -> io::Result<()> {
    let piece = usize::try_from(rate / 10).unwrap_or(usize::MAX).max(1);
    let start = tokio::time::Instant::now();
    let mut sent = 0u64;
    for chunk in bytes.chunks(piece) {
        dst.write_all(chunk).await?;
        dst.flush().await?;
        sent += chunk.len() as u64;
        let due = Duration::from_secs_f64(sent as f64 / rate as f64);
        cut.sleep_until(start + due).await?;
    }
    Ok(())
}

/// What cuts a `--fault` wait (a delay, a throttled write) short: the
/// other direction stopping, the connection going idle. Either fails the
/// write: [`io::ErrorKind::Interrupted`] for a stop,
/// [`io::ErrorKind::TimedOut`] for the idle timeout.
#[derive(Clone, Copy)]
struct Cut<'a> {
    stop: Option<&'a watch::Receiver<bool>>,
    idle: Option<&'a Idle<'a>>,
}

impl Cut<'_> {
    /// Waits run to their end.
    const NEVER: Cut<'static> = Cut { stop: None, idle: None };

    async fn sleep_until(self, until: tokio::time::Instant) -> io::Result<()> {
        let stopped = async {
            match self.stop {
                Some(rx) => {
                    let mut rx = rx.clone();
                    if rx.wait_for(|s| *s).await.is_err() {
                        // The sender is gone: no stop can come.
                        std::future::pending::<()>().await;
                    }
                }
                None => std::future::pending().await,
            }
        };
        let idle = async {
            // The other direction's reads move the idle clock: look again.
            while let Some(left) = self.idle.and_then(Idle::remaining) {
                if left.is_zero() {
                    return;
                }
                tokio::time::sleep(left).await;
            }
            std::future::pending::<()>().await;
        };
        tokio::select! {
            () = tokio::time::sleep_until(until) => Ok(()),
            () = stopped => Err(io::Error::new(io::ErrorKind::Interrupted, "stopped during a --fault wait")),
            () = idle => Err(io::Error::new(io::ErrorKind::TimedOut, "idle during a --fault wait")),
        }
    }
}

fn ending_of(e: &io::Error) -> Ending {
    match e.kind() {
        io::ErrorKind::ConnectionReset | io::ErrorKind::BrokenPipe => Ending::Reset,
        io::ErrorKind::TimedOut => Ending::Timeout,
        _ => Ending::Error,
    }
}

async fn run(tcp: TcpStream, ctx: &Ctx, session: &Mutex<Session>, events: &mut Events) -> Ending {
    let config = &ctx.config;
    let mut client = match accept_tls(tcp, ctx).await {
        Ok(c) => c,
        Err(message) => {
            lock(session).error(&message, &Time::now(), events);
            return Ending::Error;
        }
    };
    // 1. The client's first request head, within the handshake timeout.
    let deadline = tokio::time::Instant::now() + config.handshake_timeout;
    let mut buf = vec![0u8; 16 << 10];
    while {
        let s = lock(session);
        !s.head_complete() && !s.is_stopped()
    } {
        let n = match tokio::time::timeout_at(deadline, client.read(&mut buf)).await {
            Err(_) => {
                let message = format!(
                    "the client did not finish its request head within {:?}; dropped",
                    config.handshake_timeout
                );
                lock(session).error(&message, &Time::now(), events);
                return Ending::Timeout;
            }
            Ok(Ok(0)) => return Ending::Eof,
            Ok(Err(e)) if e.kind() == io::ErrorKind::UnexpectedEof => return Ending::Eof,
            Ok(Err(e)) => return ending_of(&e),
            Ok(Ok(n)) => n,
        };
        let _ = lock(session).feed(Side::Client, &buf[..n], &Time::now(), events);
    }
    drop(buf);
    ctx.log.hand_over(events).await;
    if lock(session).is_stopped() {
        // Refused under --enforce (the answer, then the end), or a client
        // that speaks TLS to a plain listener (nothing to answer).
        let answer = lock(session).take_queued(Side::Client);
        if !answer.is_empty() {
            let _ = write_chunks(&mut client, &answer, &[]).await;
            linger(&mut client).await;
        }
        let _ = client.shutdown().await;
        return Ending::Eof;
    }

    // 2. The upstream.
    let mut upstream = match connect_upstream(config).await {
        Ok(s) => s,
        Err(reason) => {
            let answer = {
                let mut s = lock(session);
                s.upstream_failed(&reason, &Time::now(), events);
                s.take_queued(Side::Client)
            };
            ctx.log.hand_over(events).await;
            let _ = write_chunks(&mut client, &answer, &[]).await;
            linger(&mut client).await;
            return Ending::Error;
        }
    };
    let first = {
        let mut s = lock(session);
        if let Some(addr) = upstream.peer_addr() {
            events.record(&Time::now().stamp, ctx.conn, &Record::Connected { upstream: addr });
        }
        s.set_connected();
        s.take_queued(Side::Upstream)
    };
    if let Err(e) = write_chunks(&mut upstream, &first, &[]).await {
        lock(session).error(&format!("writing to the upstream: {e}"), &Time::now(), events);
        return ending_of(&e);
    }
    // The upstream's address reaches the capture outputs before any of the
    // bytes the two directions record from here on.
    ctx.log.hand_over(events).await;

    // 3. Both directions until both end.
    let (a, b) = relay_both(&mut client, &mut upstream, session, ctx).await;
    if lock(session).reset_requested() {
        // A `--fault ...:reset`: both connections end with a TCP reset.
        reset(&client);
        reset(&upstream);
        return Ending::Reset;
    }
    // What the session still holds for either side (close frames under
    // --enforce), then the end.
    let (to_client, to_upstream, stopped) = {
        let mut s = lock(session);
        (s.take_queued(Side::Client), s.take_queued(Side::Upstream), s.is_stopped())
    };
    let _ = write_chunks(&mut client, &to_client, &[]).await;
    let _ = write_chunks(&mut upstream, &to_upstream, &[]).await;
    if stopped {
        let _ = client.shutdown().await;
        let _ = upstream.shutdown().await;
    }
    combine(a, b)
}

/// Makes dropping `stream` reset its TCP connection (SO_LINGER 0): RST
/// instead of FIN.
fn reset(stream: &Stream) {
    let tcp = match stream {
        Stream::Tcp(tcp) => tcp,
        Stream::TlsFromClient(tls) => tls.get_ref().0,
        Stream::TlsToUpstream(tls) => tls.get_ref().0,
    };
    let _ = tcp.set_zero_linger();
}

/// After the proxy's own answer (a refusal, a 502): half-close, then read
/// and drop what the client still sends for a moment, so that closing with
/// unread bytes does not reset the connection before the client has read
/// the answer (RFC 9112 §9.6).
async fn linger(client: &mut Stream) {
    const LINGER: Duration = Duration::from_secs(1);
    const MAX_DISCARD: usize = 1 << 20;
    let _ = client.shutdown().await;
    let mut sink = [0u8; 4096];
    let mut discarded = 0;
    let _ = tokio::time::timeout(LINGER, async {
        while discarded < MAX_DISCARD {
            match client.read(&mut sink).await {
                Ok(0) | Err(_) => break,
                Ok(n) => discarded += n,
            }
        }
    })
    .await;
}

fn combine(a: Ending, b: Ending) -> Ending {
    for wanted in [Ending::Reset, Ending::Error, Ending::Timeout] {
        if a == wanted || b == wanted {
            return wanted;
        }
    }
    Ending::Eof
}

/// The TLS handshake of a client of a `--tls-cert` listener.
async fn accept_tls(tcp: TcpStream, ctx: &Ctx) -> Result<Stream, String> {
    let Some(config) = ctx.config.listen_tls.clone() else { return Ok(Stream::Tcp(tcp)) };
    let acceptor = tokio_rustls::TlsAcceptor::from(config);
    match tokio::time::timeout(ctx.config.handshake_timeout, acceptor.accept(tcp)).await {
        Ok(Ok(tls)) => Ok(Stream::TlsFromClient(Box::new(tls))),
        Ok(Err(e)) => Err(format!("TLS handshake with the client failed: {}", tls::describe_client_error(&e))),
        Err(_) => Err(format!("the client did not finish its TLS handshake within {:?}", ctx.config.handshake_timeout)),
    }
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

/// Relays both directions at once until both end; when one ends other
/// than by EOF, the other is told to stop.
async fn relay_both(
    client: &mut Stream,
    upstream: &mut Stream,
    session: &Mutex<Session>,
    ctx: &Ctx,
) -> (Ending, Ending) {
    let (stop_tx, stop_rx) = watch::channel(false);
    let (mut cr, mut cw) = client.split();
    let (mut ur, mut uw) = upstream.split();
    let last = AtomicU64::new(0);
    let idle = Idle { timeout: ctx.config.idle_timeout, start: Instant::now(), last: &last };
    // Wakes a direction when the other one queued bytes for its
    // destination (held bytes released by an answer, close frames).
    let kicks = [Notify::new(), Notify::new()];
    let stop_other = |ending: &Pumped| {
        if !matches!(ending, Pumped::Ended(Ending::Eof)) {
            let _ = stop_tx.send(true);
        }
    };
    let c2u = async {
        let p = Pump { from: Side::Client, session, ctx, stop: &stop_rx, idle: &idle, kicks: &kicks };
        let r = p.run(&mut cr, &mut uw).await;
        stop_other(&r);
        r
    };
    let u2c = async {
        let p = Pump { from: Side::Upstream, session, ctx, stop: &stop_rx, idle: &idle, kicks: &kicks };
        let r = p.run(&mut ur, &mut cw).await;
        stop_other(&r);
        r
    };
    let (a, b) = tokio::join!(c2u, u2c);
    (a.ending(), b.ending())
}

/// How a direction ended.
enum Pumped {
    Ended(Ending),
    /// Told to stop, or the session ended the connection.
    Stopped,
}

impl Pumped {
    fn ending(&self) -> Ending {
        match self {
            Pumped::Ended(e) => *e,
            Pumped::Stopped => Ending::Eof,
        }
    }
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

/// How much of one read is decoded at a time (see the pump).
const DECODE_SLICE: usize = 64 << 10;

/// Events are handed to the writer in batches of about this size, or as
/// soon as the direction goes quiet: one hand-over per burst, not per read.
const LOG_BATCH: usize = 48 << 10;

/// One direction: reads from `from`, feeds the session, writes to the
/// other side what the session queued for it.
struct Pump<'a> {
    from: Side,
    session: &'a Mutex<Session>,
    ctx: &'a Ctx,
    stop: &'a watch::Receiver<bool>,
    idle: &'a Idle<'a>,
    kicks: &'a [Notify; 2],
}

impl Pump<'_> {
    async fn run(&self, src: &mut StreamRead<'_>, dst: &mut StreamWrite<'_>) -> Pumped {
        // No buffer until something is logged: an idle direction holds none.
        let mut events = self.ctx.log.empty_events();
        let mut buf = Vec::new();
        let result = self.relay(src, dst, &mut events, &mut buf).await;
        self.ctx.buffers.give(buf);
        if !events.is_empty() {
            self.ctx.log.send(events).await;
        }
        result
    }

    /// What cuts this direction's `--fault` waits short: a stop, the idle
    /// timeout.
    fn cut(&self) -> Cut<'_> {
        Cut { stop: Some(self.stop), idle: Some(self.idle) }
    }

    /// Once stopping (held frames still go out at their time): the idle
    /// timeout only.
    fn idle_cut(&self) -> Cut<'_> {
        Cut { stop: None, idle: Some(self.idle) }
    }

    /// After a feed: wakes the other direction if the session queued bytes
    /// for the side it writes to.
    fn kick_other(&self, s: &Session) {
        if s.has_queued(self.from) {
            self.kicks[self.from.index()].notify_one();
        }
    }

    async fn relay(
        &self,
        src: &mut StreamRead<'_>,
        dst: &mut StreamWrite<'_>,
        events: &mut Events,
        buf: &mut Vec<u8>,
    ) -> Pumped {
        let ctx = self.ctx;
        let to = self.from.other();
        let mut stop = self.stop.clone();
        // Once the session says this direction's bytes pass whatever they
        // hold, they are written first and decoded after: logging never
        // delays them. That never changes back.
        let mut passthrough = false;
        // Frames a `--fault` delay holds back (with what follows them).
        let mut hold = Hold::default();
        // The list of what to write for a read, kept between reads.
        let mut spare: Vec<Chunk> = Vec::new();
        // `buf` is lent from the pool when data flows and given back when
        // the direction goes quiet, so an idle connection holds no buffer.
        loop {
            // Held frames that are due go first; a full hold stops reading.
            if let Some(due) = hold.next_due() {
                if hold.is_full()
                    && let Err(e) = self.cut().sleep_until(due.into()).await
                {
                    return pumped_of(&e);
                }
                let ready = hold.take_due(Instant::now());
                if let Err(e) = write_chunks_cut(dst, &ready, &[], self.cut()).await {
                    return pumped_of(&e);
                }
                if hold.is_full() {
                    continue;
                }
            }
            // What is readable now, without waiting.
            let polled = poll_read_pooled(src, &mut Context::from_waker(Waker::noop()), &ctx.buffers, buf);
            let read = match polled {
                Poll::Ready(r) => r,
                Poll::Pending => {
                    // About to wait: hand over what was logged so far.
                    ctx.log.hand_over(events).await;
                    let ready = async {
                        let read = std::future::poll_fn(|cx| poll_read_pooled(src, cx, &ctx.buffers, buf));
                        match self.idle.remaining() {
                            Some(left) => tokio::time::timeout(left, read).await.ok(),
                            None => Some(read.await),
                        }
                    };
                    // Bytes already readable are relayed before a stop takes
                    // effect: when the other direction ends (say, a write to
                    // a peer that has just closed), what that peer sent
                    // before closing still reaches the other side.
                    let next_due = hold.next_due();
                    let held_due = async {
                        match next_due {
                            Some(t) => tokio::time::sleep_until(t.into()).await,
                            None => std::future::pending().await,
                        }
                    };
                    let mut stopping = false;
                    let woke = tokio::select! {
                        biased;
                        () = held_due => continue,
                        r = ready => match r {
                            None => {
                                if self.idle.remaining().is_some_and(|left| left.is_zero()) {
                                    return Pumped::Ended(Ending::Timeout);
                                }
                                continue;
                            }
                            Some(r) => Some(r),
                        },
                        _ = self.kicks[to.index()].notified() => None,
                        _ = stop.wait_for(|s| *s) => {
                            stopping = true;
                            None
                        }
                    };
                    if stopping {
                        let _ = drain(&mut hold, dst, self.idle_cut()).await;
                        return Pumped::Stopped;
                    }
                    match woke {
                        Some(r) => r,
                        None => {
                            let queued = hold.schedule(lock(self.session).take_queued(to), &[]);
                            if let Err(e) = write_chunks_cut(dst, &queued, &[], self.cut()).await {
                                return pumped_of(&e);
                            }
                            continue;
                        }
                    }
                }
            };
            let n = match read {
                // A TLS peer that closes without close_notify ends like a TCP EOF.
                _ if is_eof(&read) => {
                    // Half-close: pass the EOF on (after what the session
                    // still holds for that side), keep the other direction.
                    let queued = {
                        let mut s = lock(self.session);
                        s.eof(self.from, &Time::now(), events);
                        // Bytes it held for this side's own peer go out
                        // through the other direction.
                        self.kick_other(&s);
                        s.take_queued(to)
                    };
                    let _ = drain(&mut hold, dst, self.cut()).await;
                    let _ = write_chunks_cut(dst, &queued, &[], self.cut()).await;
                    let _ = dst.shutdown().await;
                    return Pumped::Ended(Ending::Eof);
                }
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::ConnectionReset => return Pumped::Ended(Ending::Reset),
                Err(_) => return Pumped::Ended(Ending::Error),
            };
            self.idle.touch();
            let data = &buf[..n];
            let t = Time::now();
            // Decoded in slices, handing the events over between them: one
            // read full of tiny frames must not become one huge batch.
            let written = if passthrough {
                let written = write_chunks_cut(dst, &[Chunk::Input(0..n)], data, self.cut()).await;
                for slice in data.chunks(DECODE_SLICE) {
                    {
                        let mut s = lock(self.session);
                        s.observe(self.from, slice, &t, events);
                        self.kick_other(&s);
                    }
                    if events.len() >= LOG_BATCH {
                        ctx.log.hand_over(events).await;
                    }
                }
                written.map(|()| Flow::Continue)
            } else {
                let mut flow = Flow::Continue;
                let mut queued = std::mem::take(&mut spare);
                for (i, slice) in data.chunks(DECODE_SLICE).enumerate() {
                    {
                        let mut s = lock(self.session);
                        flow = s.feed(self.from, slice, &t, events);
                        // Ranges of the slice, as ranges of the read.
                        s.append_queued(to, &mut queued, i * DECODE_SLICE);
                        passthrough = s.passthrough(self.from);
                        self.kick_other(&s);
                    }
                    if flow == Flow::Stop {
                        break;
                    }
                    if events.len() >= LOG_BATCH {
                        ctx.log.hand_over(events).await;
                    }
                }
                let now = hold.schedule(queued, data);
                let written = write_chunks_cut(dst, &now, data, self.cut()).await.map(|()| flow);
                // The list's memory is kept for the next read.
                spare = now;
                spare.clear();
                written
            };
            match written {
                Ok(Flow::Continue) => {}
                Ok(Flow::Stop) => {
                    let _ = drain(&mut hold, dst, self.idle_cut()).await;
                    return Pumped::Stopped;
                }
                Err(e) => return pumped_of(&e),
            }
            if events.len() >= LOG_BATCH {
                ctx.log.hand_over(events).await;
            }
        }
    }
}

/// Writes everything held, each part at its time (the direction is
/// ending), unless `cut` cuts the waits short.
async fn drain(hold: &mut Hold, dst: &mut StreamWrite<'_>, cut: Cut<'_>) -> io::Result<()> {
    while let Some(due) = hold.next_due() {
        cut.sleep_until(due.into()).await?;
        write_chunks_cut(dst, &hold.take_due(due), &[], cut).await?;
    }
    Ok(())
}

/// How a direction ends when a write failed or a `--fault` wait was cut
/// short (see [`Cut`]).
fn pumped_of(e: &io::Error) -> Pumped {
    match e.kind() {
        io::ErrorKind::Interrupted => Pumped::Stopped,
        _ => Pumped::Ended(ending_of(e)),
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
