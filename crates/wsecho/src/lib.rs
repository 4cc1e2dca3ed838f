//! `wsecho`: a WebSocket echo server on hyper (HTTP/1.1 with upgrades) and
//! this workspace's own `wsproto` endpoint with permessage-deflate (RFC
//! 7692), or, with [`Engine::Tungstenite`], tokio-tungstenite; built to be
//! tested against: the Autobahn|Testsuite's fuzzingclient runs against it,
//! and `wsproxy` embeds it as its default upstream.
//!
//! * Any path upgrades to WebSocket; every text and binary message is echoed
//!   back unchanged, pings are answered, closes are answered.
//! * `GET /` (not an upgrade) serves a small demo page, `GET /healthz` 200.
//! * A request that tries to upgrade but breaks RFC 6455 §4 gets a real HTTP
//!   answer from `wsproto`'s rules: 400 with the reason, or 426 with
//!   `Sec-WebSocket-Version: 13`.
//! * [`serve`] runs until a shutdown future resolves, then stops accepting,
//!   closes open WebSocket connections with 1001 (going away) and waits for
//!   them for at most [`Config::drain`].
//! * A client that does not finish its request head within
//!   [`Config::handshake_timeout`] is dropped; [`Config::idle_timeout`]
//!   closes silent WebSocket connections with 1001.
//!
//! ```no_run
//! # async fn run() -> std::io::Result<()> {
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! let server = wsecho::spawn(listener, wsecho::Config::default())?;
//! println!("echoing on ws://{}", server.local_addr());
//! server.shutdown().await;
//! # Ok(()) }
//! ```

mod echo;
mod endpoint;
mod http;

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tracing::{debug, info, warn};
pub use wsproto::deflate::DeflateServerConfig;

/// The WebSocket implementation behind the echo.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Engine {
    /// This workspace's sans-IO `wsproto::endpoint::Endpoint`, with
    /// permessage-deflate (RFC 7692) negotiated when [`Config::deflate`] is
    /// set. The default: ahead of the tokio-tungstenite engine in echo
    /// throughput and CPU per message at every size measured, in peak and
    /// idle memory, and in the Autobahn|Testsuite (517 of 517 cases OK or
    /// INFORMATIONAL, the compression cases included).
    #[default]
    #[value(help = "this workspace's sans-IO endpoint, with permessage-deflate (RFC 7692)")]
    Wsproto,
    /// tokio-tungstenite's `WebSocketStream` (no permessage-deflate: the
    /// Autobahn compression cases are UNIMPLEMENTED).
    #[value(name = "tokio-tungstenite", help = "tokio-tungstenite's WebSocketStream, without compression")]
    Tungstenite,
}

/// Limits and timings of the server.
#[derive(Debug, Clone)]
pub struct Config {
    /// Largest message accepted (default 16 MiB, enough for Autobahn 9.x).
    pub max_message_size: usize,
    /// Largest frame accepted (default 16 MiB). Fragments per message are
    /// not limited.
    pub max_frame_size: usize,
    /// Receive buffer per connection, allocated when data flows.
    pub read_buffer_size: usize,
    /// How long shutdown waits for open connections to close.
    pub drain: Duration,
    /// Which WebSocket implementation echoes.
    pub engine: Engine,
    /// What the `wsproto` engine accepts of a client's permessage-deflate
    /// offers (RFC 7692 §7.1); `None`: decline them all. The
    /// tokio-tungstenite engine always declines.
    pub deflate: Option<DeflateServerConfig>,
    /// How long a client has to send a complete request head, on a new
    /// connection and between requests of a kept-alive one; past it the
    /// connection is dropped without an answer (hyper's header read timeout).
    pub handshake_timeout: Duration,
    /// End a WebSocket connection that received nothing for this long, with
    /// close 1001 (going away, RFC 6455 §7.4.1). `None`: never.
    pub idle_timeout: Option<Duration>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            max_message_size: 16 << 20,
            max_frame_size: 16 << 20,
            read_buffer_size: 16 << 10,
            drain: Duration::from_secs(4),
            engine: Engine::default(),
            deflate: Some(DeflateServerConfig::default()),
            handshake_timeout: Duration::from_secs(10),
            idle_timeout: None,
        }
    }
}

/// Tells every task to stop, and lets the server wait until they have.
#[derive(Clone)]
pub(crate) struct Lifecycle {
    shutdown: watch::Receiver<bool>,
    /// Dropped by each task when it ends: when the last clone is gone, the
    /// receiver in [`serve`] wakes up.
    _alive: mpsc::Sender<()>,
}

impl Lifecycle {
    /// Resolves once shutdown has begun.
    pub(crate) async fn shutting_down(&mut self) {
        // An error means the server is gone, which is shutdown too.
        let _ = self.shutdown.wait_for(|stop| *stop).await;
    }
}

/// Serves WebSocket echo and the demo page on `listener` until `shutdown`
/// resolves, then drains: stops accepting, sends close 1001 to every open
/// WebSocket connection and waits at most [`Config::drain`] for them.
pub async fn serve(listener: TcpListener, config: Config, shutdown: impl Future<Output = ()>) -> io::Result<()> {
    let (stop_tx, stop_rx) = watch::channel(false);
    let (alive_tx, mut alive_rx) = mpsc::channel::<()>(1);
    let life = Lifecycle { shutdown: stop_rx, _alive: alive_tx };
    let config = std::sync::Arc::new(config);
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    debug!(%peer, "accepted");
                    // Echo traffic is many small writes: do not delay them.
                    let _ = stream.set_nodelay(true);
                    tokio::spawn(http::serve_connection(stream, peer, config.clone(), life.clone()));
                }
                // Out of file descriptors and the like: keep serving the
                // connections we have, try again shortly.
                Err(e) => {
                    warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
        }
    }
    drop(listener);
    info!("shutting down: closing open connections with 1001");
    let _ = stop_tx.send(true);
    drop(life);
    if tokio::time::timeout(config.drain, alive_rx.recv()).await.is_err() {
        warn!("connections still open after {:?}; leaving them", config.drain);
    }
    Ok(())
}

/// A server running in a task: what tests and `wsproxy` use.
pub struct Server {
    local_addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: JoinHandle<io::Result<()>>,
}

impl Server {
    /// The address the server listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Stops the server (as on SIGTERM) and waits for it to drain.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let _ = (&mut self.task).await;
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if self.stop.is_some() {
            self.task.abort();
        }
    }
}

/// Spawns [`serve`] on the current tokio runtime.
pub fn spawn(listener: TcpListener, config: Config) -> io::Result<Server> {
    let local_addr = listener.local_addr()?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(serve(listener, config, async move {
        let _ = stopped.await;
    }));
    Ok(Server { local_addr, stop: Some(stop), task })
}

/// Resolves on Ctrl-C or SIGTERM: the shutdown future for [`serve`] in a
/// binary (wsecho's and wsproxy's).
pub async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}
