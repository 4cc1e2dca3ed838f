//! The event writer: relay tasks hand over buffers of formatted events
//! through a bounded channel; one thread writes them out, to any number of
//! outputs, each with its own format ([`Output`]): every output gets the
//! same events in the same order. When the output
//! cannot keep up, the relay waits (never drops an event) and the wait is
//! counted as a stall. Emptied buffers go back to a pool, so a busy
//! connection formats its events without allocating.

use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use tokio::sync::{Notify, mpsc};

use crate::event::{EventBody, Format, Stamp, write_event};
use crate::pool::BufferPool;

/// Buffers queued for the writer before relays wait.
const QUEUE: usize = 1024;
/// Buffers kept for reuse.
const POOL: usize = 256;
/// The size of event buffers (a batch is handed over near this size).
const LOG_BUF: usize = 64 << 10;
/// Bytes of memory queued for the writer before relays wait: the queue is
/// bounded in bytes as well as in batches. A capture output is handed
/// every byte that passes, so when it is behind the queue is full and is
/// most of the proxy's memory. What counts is the buffers' capacity (the
/// memory), and a batch's mostly empty buffers are traded for right-sized
/// copies when it is queued (see [`LogSink::send`]): counted by length,
/// a `--pcap` proxy at 64 KiB messages peaked at 130 MiB with a 16 MiB
/// bound (each hand-over of a short read queues a 64 KiB buffer per
/// output) and at 240 MiB with 64 MiB. 16 MiB is a hundred and more
/// batches, several writer wake-ups' worth at 1 GB/s.
const MAX_QUEUED_BYTES: usize = 16 << 20;

/// One destination of the events and the format it gets them in.
pub struct Output {
    /// How the events are written.
    pub format: Format,
    /// Where.
    pub writer: Box<dyn Write + Send>,
}

/// A connection's events, formatted once per output, waiting to be handed
/// to the writer. Producers call `Events::emit` with typed, borrowed
/// event bodies; each output's renderer (JSON or pretty) writes them into
/// its buffer. Nothing is allocated per event once the buffers are warm.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Events {
    formats: Arc<[Format]>,
    bufs: Vec<Vec<u8>>,
}

impl Events {
    /// Empty buffers for `formats`, one per output.
    pub fn new(formats: &[Format]) -> Events {
        Events { formats: formats.into(), bufs: formats.iter().map(|_| Vec::new()).collect() }
    }

    /// Renders one event into every output's buffer.
    pub(crate) fn emit<B: EventBody>(&mut self, stamp: &Stamp, conn: u64, body: &B) {
        for (buf, format) in self.bufs.iter_mut().zip(self.formats.iter()) {
            write_event(buf, *format, stamp, conn, body);
        }
    }

    /// Appends a capture record of connection `conn` at `stamp` to every
    /// output whose format is [`Format::Capture`] (none: nothing to do).
    pub(crate) fn record(&mut self, stamp: &Stamp, conn: u64, record: &crate::record::Record<'_>) {
        for (buf, format) in self.bufs.iter_mut().zip(self.formats.iter()) {
            if *format == Format::Capture {
                record.encode(conn, stamp.unix_us(), buf);
            }
        }
    }

    /// Bytes waiting in the fullest buffer.
    pub fn len(&self) -> usize {
        self.bufs.iter().map(Vec::len).max().unwrap_or(0)
    }

    /// Whether nothing is waiting.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// What was written for output `i`.
    pub fn output(&self, i: usize) -> &[u8] {
        self.bufs.get(i).map_or(&[], Vec::as_slice)
    }

    /// Drops what was written (keeping the buffers).
    pub fn clear(&mut self) {
        self.bufs.iter_mut().for_each(Vec::clear);
    }
}

/// The memory a batch holds (what counts against [`MAX_QUEUED_BYTES`]).
fn memory(bufs: &[Vec<u8>]) -> usize {
    bufs.iter().map(Vec::capacity).sum()
}

/// Where relays send their events.
#[derive(Clone)]
pub struct LogSink {
    tx: mpsc::Sender<Vec<Vec<u8>>>,
    formats: Arc<[Format]>,
    pool: BufferPool,
    stalls: Arc<AtomicU64>,
    /// Bytes queued and not yet written, and the writer's signal that it
    /// wrote some.
    queued_bytes: Arc<AtomicUsize>,
    drained: Arc<Notify>,
}

impl LogSink {
    /// Empty buffers (from the pool) to format events into.
    pub fn events(&self) -> Events {
        Events { formats: self.formats.clone(), bufs: self.formats.iter().map(|_| self.pool.take()).collect() }
    }

    /// Buffers that take no memory until something is written to them.
    pub fn empty_events(&self) -> Events {
        Events { formats: self.formats.clone(), bufs: self.formats.iter().map(|_| Vec::new()).collect() }
    }

    /// Queues `events`; waits (and counts a stall) when the writer is behind.
    pub async fn send(&self, events: Events) {
        if events.is_empty() {
            events.bufs.into_iter().for_each(|b| self.pool.give(b));
            return;
        }
        let mut events = events;
        for buf in &mut events.bufs {
            // A buffer mostly empty is copied into one of its size; the
            // large one goes back to the pool for the next batch.
            if buf.len() < buf.capacity() / 4 {
                let small = buf.as_slice().to_vec();
                self.pool.give(std::mem::replace(buf, small));
            }
        }
        let bytes = memory(&events.bufs);
        let mut stalled = false;
        loop {
            let drained = self.drained.notified();
            tokio::pin!(drained);
            drained.as_mut().enable();
            let queued = self.queued_bytes.load(Ordering::Acquire);
            // One batch always goes, however large: a queue that is empty
            // has room.
            if queued == 0 || queued + bytes <= MAX_QUEUED_BYTES || self.tx.is_closed() {
                break;
            }
            if !stalled {
                stalled = true;
                self.stalls.fetch_add(1, Ordering::Relaxed);
            }
            drained.await;
        }
        self.queued_bytes.fetch_add(bytes, Ordering::AcqRel);
        match self.tx.try_send(events.bufs) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(bufs)) => {
                if !stalled {
                    self.stalls.fetch_add(1, Ordering::Relaxed);
                }
                let _ = self.tx.send(bufs).await;
            }
            // The writer is gone (its outputs closed): nothing to log to.
            Err(mpsc::error::TrySendError::Closed(_)) => {}
        }
    }

    /// Queues what `events` holds (if anything) and leaves it empty buffers
    /// from the pool to go on formatting into.
    pub async fn hand_over(&self, events: &mut Events) {
        if !events.is_empty() {
            let batch = std::mem::replace(events, self.events());
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

/// Bytes of a capture output's buffers kept before they are handed over
/// (see [`start`]).
const ROUND: usize = 4 << 20;

/// Writes all of `bufs` to `w`, in as few `write_vectored` calls as it takes.
fn write_all_vectored(w: &mut (impl Write + ?Sized), bufs: &[Vec<u8>]) -> std::io::Result<()> {
    let mut slices: Vec<std::io::IoSlice<'_>> =
        bufs.iter().filter(|b| !b.is_empty()).map(|b| std::io::IoSlice::new(b)).collect();
    let mut rest = &mut slices[..];
    while !rest.is_empty() {
        match w.write_vectored(rest) {
            Ok(0) => return Err(std::io::ErrorKind::WriteZero.into()),
            Ok(n) => std::io::IoSlice::advance_slices(&mut rest, n),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Starts the writer on a thread of its own (output is blocking I/O) and
/// returns the sink and a handle that finishes once every sink is dropped
/// and all events are written. Each of `outputs` gets every event, in its
/// own format; one whose writes fail (a closed pipe) is dropped, the others
/// go on.
pub fn start(outputs: Vec<Output>) -> (LogSink, std::thread::JoinHandle<()>) {
    let (tx, mut rx) = mpsc::channel::<Vec<Vec<u8>>>(QUEUE);
    let pool = BufferPool::new(LOG_BUF, POOL);
    // Each format is rendered once, however many outputs want it (a JSON
    // log and the live view): `slots[i]` is output i's buffer.
    let mut unique: Vec<Format> = Vec::new();
    let slots: Vec<usize> = outputs
        .iter()
        .map(|o| {
            unique.iter().position(|f| *f == o.format).unwrap_or_else(|| {
                unique.push(o.format);
                unique.len() - 1
            })
        })
        .collect();
    let formats: Arc<[Format]> = unique.into();
    let queued_bytes = Arc::new(AtomicUsize::new(0));
    let drained = Arc::new(Notify::new());
    let sink = LogSink {
        tx,
        formats,
        pool: pool.clone(),
        stalls: Arc::new(AtomicU64::new(0)),
        queued_bytes: queued_bytes.clone(),
        drained: drained.clone(),
    };
    let capture: Vec<bool> = outputs.iter().map(|o| o.format == Format::Capture).collect();
    // The last output that reads each format's buffer.
    let mut last_of_slot = vec![0; slots.iter().max().map_or(0, |m| m + 1)];
    for (i, &slot) in slots.iter().enumerate() {
        last_of_slot[slot] = i;
    }
    let mut writers: Vec<Option<Box<dyn Write + Send>>> = outputs.into_iter().map(|o| Some(o.writer)).collect();
    let handle = std::thread::spawn(move || {
        // A capture output's buffers are kept until the end of the round
        // (or until `ROUND` bytes are kept) and handed to it together in
        // one `write_vectored`: it sorts their records by time and writes
        // the payloads from where they are, with no copy of its own.
        let mut kept: Vec<Vec<Vec<u8>>> = capture.iter().map(|_| Vec::new()).collect();
        let mut kept_bytes = 0;
        let stop = |writer: &mut Option<Box<dyn Write + Send>>, i: usize, e: std::io::Error| {
            // A closed pipe (`wsproxy | head`) ends that output, not the proxy.
            if e.kind() != std::io::ErrorKind::BrokenPipe {
                eprintln!("wsproxy: error: output {} stopped: {e}", i + 1);
            }
            *writer = None;
        };
        let hand_kept = |writers: &mut Vec<Option<Box<dyn Write + Send>>>, kept: &mut Vec<Vec<Vec<u8>>>| {
            for (i, (writer, bufs)) in writers.iter_mut().zip(kept.iter_mut()).enumerate() {
                if let Some(w) = writer
                    && let Err(e) = write_all_vectored(w, bufs)
                {
                    stop(writer, i, e);
                }
                let bytes = memory(bufs);
                bufs.drain(..).for_each(|b| pool.give(b));
                queued_bytes.fetch_sub(bytes, Ordering::AcqRel);
            }
            drained.notify_waiters();
        };
        loop {
            let mut wrote = false;
            let done = loop {
                match rx.try_recv() {
                    Ok(bufs) => {
                        let mut bytes = 0;
                        // One buffer per format (`slots`). A capture output
                        // keeps its buffer for the round: the last output of
                        // that format takes it, earlier ones (`--pcap` and
                        // `--har` both read the records) keep a copy.
                        let mut bufs: Vec<Option<Vec<u8>>> = bufs.into_iter().map(Some).collect();
                        for (i, (writer, &slot)) in writers.iter_mut().zip(&slots).enumerate() {
                            if capture[i] && writer.is_some() {
                                let buf = if last_of_slot[slot] == i {
                                    bufs.get_mut(slot).and_then(Option::take)
                                } else {
                                    // The copy is memory the queue holds
                                    // too, given back with the round.
                                    let copy = bufs.get(slot).and_then(Option::clone);
                                    queued_bytes.fetch_add(copy.as_ref().map_or(0, Vec::capacity), Ordering::AcqRel);
                                    copy
                                };
                                if let Some(buf) = buf {
                                    kept_bytes += buf.len();
                                    kept[i].push(buf);
                                }
                                continue;
                            }
                            if let Some(w) = writer
                                && let Err(e) = w.write_all(bufs.get(slot).and_then(Option::as_deref).unwrap_or(&[]))
                            {
                                stop(writer, i, e);
                            }
                        }
                        for buf in bufs.into_iter().flatten() {
                            bytes += buf.capacity();
                            pool.give(buf);
                        }
                        queued_bytes.fetch_sub(bytes, Ordering::AcqRel);
                        drained.notify_waiters();
                        wrote = true;
                        if kept_bytes >= ROUND {
                            hand_kept(&mut writers, &mut kept);
                            kept_bytes = 0;
                        }
                    }
                    Err(mpsc::error::TryRecvError::Empty) => break false,
                    Err(mpsc::error::TryRecvError::Disconnected) => break true,
                }
            };
            if wrote {
                hand_kept(&mut writers, &mut kept);
                kept_bytes = 0;
                for (i, writer) in writers.iter_mut().enumerate() {
                    if let Some(w) = writer
                        && let Err(e) = w.flush()
                    {
                        stop(writer, i, e);
                    }
                }
            }
            if done {
                break;
            }
            std::thread::sleep(WRITE_INTERVAL);
        }
        for w in writers.iter_mut().flatten() {
            let _ = w.flush();
        }
    });
    (sink, handle)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{ErrorOut, Open};

    /// A writer the test can read back.
    #[derive(Clone, Default)]
    struct Shared(Arc<std::sync::Mutex<Vec<u8>>>);

    impl Write for Shared {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().map_err(|_| std::io::ErrorKind::Other)?.extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// A writer that fails, like a closed pipe.
    struct Broken;

    impl Write for Broken {
        fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
            Err(std::io::ErrorKind::BrokenPipe.into())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// A writer that takes nothing until the test lets it.
    struct Gate(std::sync::mpsc::Receiver<()>);

    impl Write for Gate {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            let _ = self.0.recv();
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// The queue is bounded in bytes: with one large batch waiting for a
    /// stuck output, the next waits too (and counts a stall) until the
    /// writer has written.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_queue_is_bounded_in_bytes() {
        let (open, gate) = std::sync::mpsc::channel();
        let (sink, writer) = start(vec![Output { format: Format::Json, writer: Box::new(Gate(gate)) }]);
        let big = |sink: &LogSink| {
            let mut events = sink.events();
            events.bufs[0] = vec![b'x'; MAX_QUEUED_BYTES / 2 + 1];
            events
        };
        // The first goes (an empty queue has room); the writer takes it and
        // waits at the gate, so its bytes still count.
        sink.send(big(&sink)).await;
        let second = tokio::time::timeout(std::time::Duration::from_millis(300), sink.send(big(&sink))).await;
        assert!(second.is_err(), "a second batch went past the byte bound");
        assert_eq!(sink.stalls(), 1);
        // Once the writer has written the first, the next one goes.
        open.send(()).expect("gate");
        tokio::time::timeout(std::time::Duration::from_secs(10), sink.send(big(&sink)))
            .await
            .expect("room once the first batch is written");
        drop(open);
        drop(sink);
        writer.join().expect("writer");
    }

    /// Two outputs in one format share one rendering, and both get it.
    #[tokio::test]
    async fn outputs_in_the_same_format_are_rendered_once() {
        let (a, b) = (Shared::default(), Shared::default());
        let outputs = vec![
            Output { format: Format::Json, writer: Box::new(a.clone()) },
            Output { format: Format::Pretty { color: false }, writer: Box::new(Broken) },
            Output { format: Format::Json, writer: Box::new(b.clone()) },
        ];
        let (sink, writer) = start(outputs);
        let mut events = sink.events();
        assert_eq!(events.bufs.len(), 2, "one buffer per format");
        let client = "127.0.0.1:1000".parse().expect("addr");
        events.emit(&Stamp::at(std::time::UNIX_EPOCH), 1, &Open { client, upstream: "u:1" });
        sink.send(events).await;
        drop(sink);
        writer.join().expect("writer");
        let a = a.0.lock().expect("lock").clone();
        assert!(a.starts_with(b"{\"ts\"") && a.ends_with(b"}\n"), "{}", String::from_utf8_lossy(&a));
        assert_eq!(a, *b.0.lock().expect("lock"));
    }

    #[tokio::test]
    async fn every_output_gets_every_event_in_its_format_and_order() {
        let (json, pretty) = (Shared::default(), Shared::default());
        let outputs = vec![
            Output { format: Format::Json, writer: Box::new(json.clone()) },
            Output { format: Format::Pretty { color: false }, writer: Box::new(pretty.clone()) },
            Output { format: Format::Json, writer: Box::new(Broken) },
        ];
        let (sink, writer) = start(outputs);
        let stamp = Stamp::at(std::time::UNIX_EPOCH);
        for conn in 1..=3u64 {
            let mut events = sink.events();
            let client = format!("127.0.0.{conn}:1000").parse().expect("addr");
            events.emit(&stamp, conn, &Open { client, upstream: "u:1" });
            events.emit(&stamp, conn, &ErrorOut { message: "m" });
            sink.send(events).await;
        }
        drop(sink);
        writer.join().expect("writer");
        let json = String::from_utf8(json.0.lock().expect("lock").clone()).expect("utf-8");
        let pretty = String::from_utf8(pretty.0.lock().expect("lock").clone()).expect("utf-8");
        let conns: Vec<u64> = json.lines().map(|l| crate::schema::parse_strict(l).expect("strict").conn).collect();
        assert_eq!(conns, [1, 1, 2, 2, 3, 3]);
        let pretty_conns: Vec<&str> = pretty.lines().map(|l| l.split_whitespace().nth(1).unwrap_or("")).collect();
        assert_eq!(pretty_conns, ["#1", "#1", "#2", "#2", "#3", "#3"]);
    }
}
