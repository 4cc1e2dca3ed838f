//! Counters over the proxy's life, printed at exit, and the rate-limited
//! echo of per-connection errors on stderr.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

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
