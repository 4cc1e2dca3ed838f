//! The event writer: relay tasks hand over buffers of formatted events
//! through a bounded channel; one task writes them out. When the output
//! cannot keep up, the relay waits (never drops an event) and the wait is
//! counted as a stall. Emptied buffers go back to a pool, so a busy
//! connection formats its events without allocating.

use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::mpsc;

use crate::pool::BufferPool;

/// Buffers queued for the writer before relays wait.
const QUEUE: usize = 1024;
/// Buffers kept for reuse.
const POOL: usize = 256;
/// The size of event buffers (a batch is handed over near this size).
const LOG_BUF: usize = 64 << 10;

/// Where relays send their events.
#[derive(Clone)]
pub struct LogSink {
    tx: mpsc::Sender<Vec<u8>>,
    pool: BufferPool,
    stalls: Arc<AtomicU64>,
}

impl LogSink {
    /// An empty buffer to format events into.
    pub fn buffer(&self) -> Vec<u8> {
        self.pool.take()
    }

    /// Queues the events in `buf`; waits (and counts a stall) when the
    /// writer is behind.
    pub async fn send(&self, buf: Vec<u8>) {
        if buf.is_empty() {
            self.pool.give(buf);
            return;
        }
        match self.tx.try_send(buf) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(buf)) => {
                self.stalls.fetch_add(1, Ordering::Relaxed);
                let _ = self.tx.send(buf).await;
            }
            // The writer is gone (its output closed): nothing to log to.
            Err(mpsc::error::TrySendError::Closed(_)) => {}
        }
    }

    /// Queues what `events` holds (if anything) and leaves it an empty
    /// buffer from the pool to go on formatting into.
    pub async fn hand_over(&self, events: &mut Vec<u8>) {
        if !events.is_empty() {
            let batch = std::mem::replace(events, self.buffer());
            self.send(batch).await;
        }
    }

    /// How often a relay had to wait for the writer.
    pub fn stalls(&self) -> u64 {
        self.stalls.load(Ordering::Relaxed)
    }
}

/// How often the writer wakes to write what was queued. Polling at a fixed
/// pace keeps relays from waking the writer thread on every hand-over (a
/// futex round trip per burst costs more than formatting the events).
const WRITE_INTERVAL: std::time::Duration = std::time::Duration::from_millis(5);

/// Starts the writer on a thread of its own (output is blocking I/O) and
/// returns the sink and a handle that finishes once every sink is dropped
/// and all events are written.
pub fn start(mut output: Box<dyn Write + Send>) -> (LogSink, std::thread::JoinHandle<()>) {
    let (tx, mut rx) = mpsc::channel::<Vec<u8>>(QUEUE);
    let pool = BufferPool::new(LOG_BUF, POOL);
    let sink = LogSink { tx, pool: pool.clone(), stalls: Arc::new(AtomicU64::new(0)) };
    let handle = std::thread::spawn(move || {
        let mut broken = false;
        loop {
            let mut wrote = false;
            let done = loop {
                match rx.try_recv() {
                    Ok(buf) => {
                        // A closed pipe (`wsproxy | head`) ends the output, not the proxy.
                        if !broken && output.write_all(&buf).is_err() {
                            broken = true;
                        }
                        wrote = true;
                        pool.give(buf);
                    }
                    Err(mpsc::error::TryRecvError::Empty) => break false,
                    Err(mpsc::error::TryRecvError::Disconnected) => break true,
                }
            };
            if wrote && !broken && output.flush().is_err() {
                broken = true;
            }
            if done {
                break;
            }
            std::thread::sleep(WRITE_INTERVAL);
        }
        let _ = output.flush();
    });
    (sink, handle)
}
