//! `wsproxy`: a byte-transparent WebSocket proxy that shows every
//! handshake, frame, message, close and protocol violation as it passes.
//!
//! Clients connect to the proxy as if it were the server. For each client
//! the proxy opens a TCP connection to the upstream, forwards the request
//! (with only the `Host` header rewritten, see [`head`]), forwards the answer
//! as it came, then relays every byte both ways while decoding a copy with
//! `wsproto` ([`inspect`]). What it relays is never re-encoded: a malformed
//! frame passes as it came and is reported, unless `--enforce` is given.
//!
//! Compressed messages (permessage-deflate, RFC 7692) are shown inflated,
//! per the parameters the 101 agreed on. Either side may speak TLS
//! ([`tls`]): a `wss://` upstream, and a listener with `--tls-cert`.
//!
//! Events are written by a separate writer ([`log`]) through a bounded
//! channel; the relay slows down rather than drop events.

pub mod event;
#[doc(hidden)]
pub mod fuzzing;
pub mod head;
mod http1;
pub mod inspect;
mod json;
pub mod log;
pub mod logfile;
pub mod pool;
mod relay;
pub mod schema;
mod session;
mod stream;
pub mod tls;
pub mod upstream;

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::net::TcpListener;

pub use event::{Format, Side};
pub use inspect::{InspectOptions, PreviewLimit};
pub use upstream::Upstream;

/// The proxy's settings, validated.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where to connect.
    pub upstream: Upstream,
    /// Payload preview size.
    pub max_preview: PreviewLimit,
    /// Log messages and control frames, not each data frame.
    pub messages_only: bool,
    /// End connections that break a rule (and answer bad upgrades itself).
    pub enforce: bool,
    /// Forward the client's `Host` header unchanged.
    pub preserve_host: bool,
    /// How long a client has to send its request head.
    pub handshake_timeout: Duration,
    /// End connections with no traffic either way for this long.
    pub idle_timeout: Option<Duration>,
    /// How long shutdown waits for open connections.
    pub drain: Duration,
    /// Most bytes one compressed message may inflate to (RFC 7692); past it
    /// the message is reported as a decompression bomb.
    pub max_inflate: u64,
    /// Remove `Sec-WebSocket-Extensions` from the client's request so that
    /// nothing is compressed on the wire.
    pub no_compression: bool,
    /// Show `Authorization`, `Proxy-Authorization`, `Cookie` and
    /// `Set-Cookie` values in the log instead of their length.
    pub show_secrets: bool,
    /// TLS towards a `wss://` upstream (see [`tls::client_config`]).
    pub upstream_tls: Option<Arc<rustls::ClientConfig>>,
    /// TLS for the listener (clients connect with `wss://`).
    pub listen_tls: Option<Arc<rustls::ServerConfig>>,
    /// Also print per-connection errors on stderr (rate-limited): when the
    /// events go to a file or a pipe, stderr is where people look.
    pub errors_to_stderr: bool,
}

impl Config {
    /// A configuration with the defaults for `upstream`.
    pub fn new(upstream: Upstream) -> Config {
        Config {
            upstream,
            max_preview: PreviewLimit::Bytes(256),
            messages_only: false,
            enforce: false,
            preserve_host: false,
            handshake_timeout: Duration::from_secs(10),
            idle_timeout: None,
            drain: Duration::from_secs(5),
            max_inflate: 64 << 20,
            no_compression: false,
            show_secrets: false,
            upstream_tls: None,
            listen_tls: None,
            errors_to_stderr: false,
        }
    }

    pub(crate) fn inspect_options(&self) -> InspectOptions {
        InspectOptions {
            max_preview: self.max_preview,
            messages_only: self.messages_only,
            enforce: self.enforce,
            max_inflate: self.max_inflate,
        }
    }
}

/// Counters over the proxy's life, printed at exit.
#[derive(Debug, Default)]
pub struct Totals {
    /// Connections accepted.
    pub connections: AtomicU64,
    /// Bytes relayed, both ways.
    pub bytes: AtomicU64,
    /// Frames seen, both ways.
    pub frames: AtomicU64,
    /// Violations reported.
    pub violations: AtomicU64,
    /// Per-connection errors (upstream connect, TLS, handshake timeout…).
    pub errors: AtomicU64,
    stderr: Mutex<StderrLimit>,
}

/// At most this many error lines per [`STDERR_WINDOW`] on stderr; the rest
/// are counted and summed up in the next line shown (all are in the log).
const STDERR_BURST: u32 = 5;
const STDERR_WINDOW: Duration = Duration::from_secs(1);

#[derive(Debug, Default)]
struct StderrLimit {
    window_start: Option<Instant>,
    shown: u32,
    suppressed: u64,
}

impl Totals {
    /// Counts an error of connection `conn` and, if `to_stderr`, prints it
    /// there unless more than [`STDERR_BURST`] came within a second.
    pub(crate) fn error(&self, conn: u64, message: &str, to_stderr: bool) {
        self.errors.fetch_add(1, Ordering::Relaxed);
        if !to_stderr {
            return;
        }
        let Ok(mut limit) = self.stderr.lock() else { return };
        let now = Instant::now();
        if limit.window_start.is_none_or(|start| now.duration_since(start) >= STDERR_WINDOW) {
            limit.window_start = Some(now);
            limit.shown = 0;
        }
        if limit.shown >= STDERR_BURST {
            limit.suppressed += 1;
            return;
        }
        limit.shown += 1;
        let skipped = std::mem::take(&mut limit.suppressed);
        if skipped > 0 {
            eprintln!("wsproxy: ({} not shown here; every error is in the log)", wscli::count(skipped, "more error"));
        }
        eprintln!("wsproxy: connection {conn}: {message}");
    }
}

/// What [`serve`] reports when it returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Summary {
    /// Connections accepted.
    pub connections: u64,
    /// Bytes relayed.
    pub bytes: u64,
    /// Frames seen.
    pub frames: u64,
    /// Violations reported.
    pub violations: u64,
    /// Per-connection errors (each also an `error` event).
    pub errors: u64,
    /// Times a relay waited for the event writer.
    pub log_stalls: u64,
    /// Connections still open when the drain time ran out.
    pub abandoned: u64,
}

/// Accepts clients on `listener` until `shutdown` resolves, then lets open
/// connections finish for up to [`Config::drain`].
pub async fn serve(
    listener: TcpListener,
    config: Config,
    log: log::LogSink,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<Summary> {
    let config = Arc::new(config);
    let totals = Arc::new(Totals::default());
    let mut tasks = tokio::task::JoinSet::new();
    let mut next_conn = 0u64;
    // Enough relay buffers for a few dozen busy directions at once.
    let buffers = pool::BufferPool::filled(relay::RELAY_BUF, 64);
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let _ = stream.set_nodelay(true);
                    next_conn += 1;
                    totals.connections.fetch_add(1, Ordering::Relaxed);
                    let ctx = relay::Ctx {
                        config: config.clone(),
                        log: log.clone(),
                        buffers: buffers.clone(),
                        totals: totals.clone(),
                        conn: next_conn,
                    };
                    tasks.spawn(relay::handle(stream, peer, ctx));
                }
                Err(e) => {
                    eprintln!("wsproxy: accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
        }
    }
    drop(listener);
    let drained = tokio::time::timeout(config.drain, async { while tasks.join_next().await.is_some() {} }).await;
    let abandoned = if drained.is_err() { tasks.len() as u64 } else { 0 };
    tasks.abort_all();
    Ok(Summary {
        connections: totals.connections.load(Ordering::Relaxed),
        bytes: totals.bytes.load(Ordering::Relaxed),
        frames: totals.frames.load(Ordering::Relaxed),
        violations: totals.violations.load(Ordering::Relaxed),
        errors: totals.errors.load(Ordering::Relaxed),
        log_stalls: log.stalls(),
        abandoned,
    })
}
