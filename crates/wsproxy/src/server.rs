//! The accept loop and shutdown: one task per client connection
//! ([`crate::relay`]), the totals over the proxy's life, and the drain when
//! the shutdown signal comes.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::net::TcpListener;

use crate::config::Config;
use crate::totals::Totals;
use crate::{log, pool, relay};

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
