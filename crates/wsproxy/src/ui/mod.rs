//! `--ui`: a live view of every connection and frame in the browser.
//!
//! The view is one more output of the event writer ([`crate::log`]): it
//! gets the same JSON Lines as a log file ([`View::output`]), keeps a
//! bounded copy ([`Hub`]: at most `per_conn` events per connection and
//! `total` in all) and passes every batch on to the open pages over a
//! WebSocket that wsproxy serves itself with `wsproto` ([`server`]). The
//! page's downloads as HAR and pcapng are written there too, from the
//! events the page shows, by the capture's writers ([`export`]).
//!
//! Unlike the log, the view may drop, and never waits: the writer thread
//! copies each batch into a bounded queue and returns at once; a thread of
//! the view's own stores it and passes it on (when that thread is behind,
//! batches are dropped and counted). A page that reads too slowly (or
//! not at all) has a bounded queue (`client_queue_bytes`); what does not
//! fit is dropped, counted, and the page is told how much it missed as
//! soon as it reads again. So a stuck browser never slows the relay.

use std::collections::{BTreeMap, VecDeque};
use std::io::Write;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::mpsc;

use crate::event::Format;
use crate::log::Output;

pub mod export;
pub mod server;

/// The view's bounds and access settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UiOptions {
    /// Events kept per connection (`--ui-per-conn`); older ones are dropped
    /// first, except the connection's first few (open, handshake).
    pub per_conn: usize,
    /// Events kept in all (`--ui-max-events`); the oldest connection's
    /// events are dropped first.
    pub total: usize,
    /// Bytes of events kept in all, whatever their number.
    pub total_bytes: usize,
    /// Bytes queued for one page before its events are dropped.
    pub client_queue_bytes: usize,
    /// A token the page's URL must carry (`?token=…`), if any.
    pub token: Option<String>,
}

impl Default for UiOptions {
    fn default() -> Self {
        UiOptions { per_conn: 5_000, total: 50_000, total_bytes: 64 << 20, client_queue_bytes: 16 << 20, token: None }
    }
}

/// Events at the start of a connection kept however many come after them,
/// when they are of the kinds in [`is_pinned`]: the handshake stays visible
/// on a busy connection.
const PINNED: usize = 8;

/// What a page is told when `events` events were dropped for it (its queue
/// was full): one JSON line of its own, `{"ui":"dropped","events":N}`.
fn dropped_notice(events: u64) -> Arc<str> {
    Arc::from(format!("{{\"ui\":\"dropped\",\"events\":{events}}}"))
}

/// Pages that may watch at once (each may hold `client_queue_bytes` and a
/// snapshot of the store).
pub const MAX_CLIENTS: usize = 16;

/// Bytes of stored events per snapshot batch sent to a new page.
const SNAPSHOT_BATCH: usize = 256 << 10;

/// Whether an event kind is one of a connection's opening events.
fn is_pinned(event: &str) -> bool {
    matches!(event, "open" | "handshake_request" | "handshake_response" | "interim_response" | "http" | "uninspected")
}

/// What the view has seen, kept and dropped.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Events received from the writer.
    pub events_in: u64,
    /// Events kept now.
    pub stored: usize,
    /// Their bytes.
    pub stored_bytes: usize,
    /// Events dropped from the store to stay within its bounds.
    pub evicted: u64,
    /// Events the view never got because its thread was behind the
    /// event writer (neither stored nor sent to any page).
    pub skipped: u64,
    /// Pages watching now.
    pub clients: usize,
    /// Events not sent to a page because it read too slowly (all pages,
    /// including those gone).
    pub client_dropped: u64,
    /// Bytes queued for pages now (all pages).
    pub client_queued_bytes: usize,
}

#[derive(Default)]
struct ConnStore {
    pinned: Vec<Arc<str>>,
    events: VecDeque<Arc<str>>,
    /// Events of this connection dropped from the store.
    evicted: u64,
}

struct Client {
    id: u64,
    tx: mpsc::UnboundedSender<Arc<str>>,
    queued: Arc<AtomicUsize>,
    /// Events dropped since the page was last told.
    untold: u64,
}

#[derive(Default)]
struct State {
    conns: BTreeMap<u64, ConnStore>,
    stored: usize,
    stored_bytes: usize,
    events_in: u64,
    evicted: u64,
    /// Events the view's thread never got (see [`Hub::skipped`]).
    skipped: u64,
    client_dropped: u64,
    clients: Vec<Client>,
    next_client: u64,
    /// The end of a line cut between two writes.
    partial: Vec<u8>,
}

/// The view's store of events and the pages watching it; cheap to clone.
#[derive(Clone)]
pub struct Hub {
    state: Arc<Mutex<State>>,
    options: Arc<UiOptions>,
    /// Events the writer could not hand to the view's thread (it was
    /// behind), not yet told to the pages.
    skipped: Arc<AtomicU64>,
}

/// A page's end of the hub: batches of JSON lines (`\n`-separated) to send,
/// in order: first the snapshot, then what comes through `rx`.
pub struct Subscription {
    /// The page's id (for [`Hub::unsubscribe`]).
    pub id: u64,
    /// What the hub held when the page came, in batches (the first line
    /// is the `hello`).
    pub snapshot: Vec<String>,
    /// The batches.
    pub rx: mpsc::UnboundedReceiver<Arc<str>>,
    /// Bytes queued in `rx`; the receiver subtracts what it takes.
    pub queued: Arc<AtomicUsize>,
}

/// The `conn` and `event` of a JSON line written by [`crate::event`]:
/// `{"ts":"…","conn":N,"event":"NAME"…`.
fn envelope(line: &str) -> Option<(u64, &str)> {
    let rest = &line[line.find("\"conn\":")? + 7..];
    let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
    let conn = rest[..digits].parse().ok()?;
    let rest = &rest[rest.find("\"event\":\"")? + 9..];
    Some((conn, &rest[..rest.find('"')?]))
}

impl Hub {
    /// An empty hub with these bounds.
    pub fn new(options: UiOptions) -> Hub {
        Hub { state: Arc::default(), options: Arc::new(options), skipped: Arc::default() }
    }

    /// The bounds.
    pub fn options(&self) -> &UiOptions {
        &self.options
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves counters, not broken
        // invariants that matter: go on.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Takes JSON Lines (whole or cut anywhere): stores each event and
    /// queues the batch for every page, dropping (and counting) what a
    /// page has no room for. Never waits.
    pub fn ingest(&self, bytes: &[u8]) {
        let mut state = self.lock();
        let skipped = self.skipped.swap(0, Ordering::Relaxed);
        if skipped > 0 {
            // Lost for every page: each is told, as for its own drops.
            state.skipped += skipped;
            for c in &mut state.clients {
                c.untold += skipped;
            }
        }
        // The writer hands over whole lines: copy only to join a cut one.
        let joined;
        let data: &[u8] = if state.partial.is_empty() {
            bytes
        } else {
            let mut partial = std::mem::take(&mut state.partial);
            partial.extend_from_slice(bytes);
            joined = partial;
            &joined
        };
        let complete = data.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
        state.partial.extend_from_slice(&data[complete..]);
        if complete == 0 {
            return;
        }
        let text = String::from_utf8_lossy(&data[..complete]);
        let mut lines = 0u64;
        for line in text.lines().filter(|l| !l.is_empty()) {
            lines += 1;
            self.store(&mut state, line);
        }
        if state.clients.is_empty() {
            return;
        }
        let batch: Arc<str> = Arc::from(text.trim_end_matches('\n'));
        let cap = self.options.client_queue_bytes;
        let State { clients, client_dropped, .. } = &mut *state;
        clients.retain_mut(|c| {
            let queued = c.queued.load(Ordering::Acquire);
            // The notice of earlier losses goes out with the batch, and
            // counts against the page's bound as the batch does.
            let notice = (c.untold > 0).then(|| dropped_notice(c.untold));
            if queued + batch.len() + notice.as_ref().map_or(0, |n| n.len()) > cap {
                c.untold += lines;
                *client_dropped += lines;
                // A page that has read everything is told of the loss now,
                // when the notice fits alone: batches that never fit with
                // it must not keep it from the page.
                if queued == 0 {
                    let notice = dropped_notice(c.untold);
                    if notice.len() <= cap {
                        c.queued.fetch_add(notice.len(), Ordering::AcqRel);
                        c.untold = 0;
                        return c.tx.send(notice).is_ok();
                    }
                }
                return !c.tx.is_closed();
            }
            if let Some(notice) = notice {
                c.queued.fetch_add(notice.len(), Ordering::AcqRel);
                if c.tx.send(notice).is_err() {
                    return false;
                }
                c.untold = 0;
            }
            c.queued.fetch_add(batch.len(), Ordering::AcqRel);
            c.tx.send(batch.clone()).is_ok()
        });
    }

    fn store(&self, state: &mut State, line: &str) {
        state.events_in += 1;
        let Some((conn, event)) = envelope(line) else { return };
        let per_conn = self.options.per_conn.max(1);
        let store = state.conns.entry(conn).or_default();
        let line: Arc<str> = Arc::from(line);
        state.stored += 1;
        state.stored_bytes += line.len();
        if is_pinned(event) && store.pinned.len() < PINNED.min(per_conn) && store.events.is_empty() {
            store.pinned.push(line);
        } else {
            store.events.push_back(line);
        }
        while store.pinned.len() + store.events.len() > per_conn {
            let Some(old) = store.events.pop_front() else { break };
            store.evicted += 1;
            state.evicted += 1;
            state.stored -= 1;
            state.stored_bytes -= old.len();
        }
        // In all: the oldest connection's events go first, then the
        // connection itself.
        while state.stored > self.options.total.max(1) || state.stored_bytes > self.options.total_bytes {
            let Some(mut oldest) = state.conns.first_entry() else { break };
            let store = oldest.get_mut();
            let old = match store.events.pop_front() {
                Some(old) => old,
                None if !store.pinned.is_empty() => store.pinned.remove(0),
                None => {
                    oldest.remove();
                    continue;
                }
            };
            store.evicted += 1;
            state.evicted += 1;
            state.stored -= 1;
            state.stored_bytes -= old.len();
            if store.pinned.is_empty() && store.events.is_empty() {
                oldest.remove();
            }
        }
    }

    /// A new page: a `hello` line with the bounds, everything stored (in
    /// connection order, each connection's events in order, with a note
    /// where some were dropped) in [`Subscription::snapshot`], then every
    /// new batch in [`Subscription::rx`]. `None` when [`MAX_CLIENTS`]
    /// pages already watch.
    ///
    /// Under the lock only the stored lines' handles are copied (the
    /// writer thread waits for that, not for the copy of their bytes).
    pub fn subscribe(&self) -> Option<Subscription> {
        let mut state = self.lock();
        state.clients.retain(|c| !c.tx.is_closed());
        if state.clients.len() >= MAX_CLIENTS {
            return None;
        }
        let hello = format!(
            "{{\"ui\":\"hello\",\"per_conn\":{},\"total\":{},\"evicted\":{},\"skipped\":{}}}",
            self.options.per_conn, self.options.total, state.evicted, state.skipped
        );
        let mut lines: Vec<Arc<str>> = Vec::with_capacity(state.stored + state.conns.len() + 1);
        lines.push(Arc::from(hello));
        for (conn, store) in &state.conns {
            lines.extend(store.pinned.iter().cloned());
            if store.evicted > 0 {
                lines.push(Arc::from(format!("{{\"ui\":\"evicted\",\"conn\":{conn},\"events\":{}}}", store.evicted)));
            }
            lines.extend(store.events.iter().cloned());
        }
        let (tx, rx) = mpsc::unbounded_channel();
        let queued = Arc::new(AtomicUsize::new(0));
        let id = state.next_client;
        state.next_client += 1;
        state.clients.push(Client { id, tx, queued: queued.clone(), untold: 0 });
        drop(state);
        let mut snapshot = Vec::new();
        let mut batch = String::new();
        for line in &lines {
            if batch.len() + line.len() > SNAPSHOT_BATCH && !batch.is_empty() {
                snapshot.push(std::mem::take(&mut batch));
            }
            if !batch.is_empty() {
                batch.push('\n');
            }
            batch.push_str(line);
        }
        snapshot.push(batch);
        Some(Subscription { id, snapshot, rx, queued })
    }

    /// Forgets a page that left.
    pub fn unsubscribe(&self, id: u64) {
        self.lock().clients.retain(|c| c.id != id);
    }

    /// What the view has seen, kept and dropped.
    pub fn stats(&self) -> Stats {
        let state = self.lock();
        Stats {
            events_in: state.events_in,
            stored: state.stored,
            stored_bytes: state.stored_bytes,
            evicted: state.evicted,
            skipped: state.skipped + self.skipped.load(Ordering::Relaxed),
            clients: state.clients.iter().filter(|c| !c.tx.is_closed()).count(),
            client_dropped: state.client_dropped,
            client_queued_bytes: state.clients.iter().map(|c| c.queued.load(Ordering::Acquire)).sum(),
        }
    }
}

/// Batches waiting for the view's thread; past this the view drops them
/// (and counts their events) rather than hold up the event writer.
const FEED_BATCHES: usize = 512;

/// The writer's end of the hub: an [`Output`] whose writes never block.
/// The event writer thread only copies each batch into a bounded queue;
/// a thread of the view's own stores it and passes it on to the pages, so
/// the view's work never delays the log (which the relay waits for).
struct HubWriter {
    tx: Option<std::sync::mpsc::SyncSender<Vec<u8>>>,
    hub: Hub,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl HubWriter {
    fn start(hub: Hub) -> HubWriter {
        let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<u8>>(FEED_BATCHES);
        let feed = hub.clone();
        let thread = std::thread::Builder::new()
            .name("wsproxy-ui".into())
            .spawn(move || {
                while let Ok(batch) = rx.recv() {
                    feed.ingest(&batch);
                }
            })
            .ok();
        HubWriter { tx: Some(tx), hub, thread }
    }
}

impl Write for HubWriter {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        let sent = match (&self.tx, &self.thread) {
            (Some(tx), Some(_)) => tx.try_send(b.to_vec()).is_ok(),
            // No thread (it could not start): the view goes without.
            _ => false,
        };
        if !sent {
            // The batch holds whole lines (the writer hands over whole
            // batches): count them.
            let lines = b.iter().filter(|&&c| c == b'\n').count() as u64;
            self.hub.skipped.fetch_add(lines, Ordering::Relaxed);
        }
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for HubWriter {
    /// Lets the view's thread store what was queued, then ends it.
    fn drop(&mut self) {
        drop(self.tx.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The live view: its hub and the address its page is served on.
pub struct View {
    hub: Hub,
    addr: SocketAddr,
    token: Option<String>,
}

impl View {
    /// Binds `addr` and serves the page and its event stream there (on
    /// the current tokio runtime) until the process ends.
    pub async fn bind(addr: SocketAddr, options: UiOptions) -> anyhow::Result<View> {
        let listener = tokio::net::TcpListener::bind(addr).await.map_err(|e| wscli::bind_error("--ui", addr, e))?;
        let addr = listener.local_addr()?;
        let token = options.token.clone();
        let hub = Hub::new(options);
        tokio::spawn(server::serve(listener, hub.clone()));
        Ok(View { hub, addr, token })
    }

    /// The output to add to the event writer: JSON Lines into the hub,
    /// through a thread of the view's own (call it once: each output
    /// feeds the hub).
    pub fn output(&self) -> Output {
        Output { format: Format::Json, writer: Box::new(HubWriter::start(self.hub.clone())) }
    }

    /// The hub (for its counters).
    pub fn hub(&self) -> &Hub {
        &self.hub
    }

    /// The address the view is served on.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The page's URL, with the token if one is required.
    pub fn url(&self) -> String {
        match &self.token {
            Some(t) => format!("http://{}/?token={t}", self.addr),
            None => format!("http://{}/", self.addr),
        }
    }
}

/// Checks a `--ui-token` value: characters that need no escaping in a URL.
pub fn parse_token(s: &str) -> Result<String, String> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b)) {
        return Err("a token is one or more of A-Z a-z 0-9 - . _ ~".into());
    }
    Ok(s.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(conn: u64, event: &str, n: usize) -> String {
        format!("{{\"ts\":\"t\",\"conn\":{conn},\"event\":\"{event}\",\"n\":{n}}}\n")
    }

    fn hub(per_conn: usize, total: usize) -> Hub {
        Hub::new(UiOptions { per_conn, total, client_queue_bytes: 1 << 20, ..UiOptions::default() })
    }

    /// Every line the page would get, in order (stops when nothing is queued).
    fn drain(sub: &mut Subscription) -> Vec<String> {
        let mut out: Vec<String> =
            sub.snapshot.drain(..).flat_map(|b| b.lines().map(str::to_owned).collect::<Vec<_>>()).collect();
        while let Ok(batch) = sub.rx.try_recv() {
            sub.queued.fetch_sub(batch.len(), Ordering::AcqRel);
            out.extend(batch.lines().map(str::to_owned));
        }
        out
    }

    #[test]
    fn envelopes() {
        assert_eq!(envelope(&line(42, "frame", 1)), Some((42, "frame")));
        assert_eq!(envelope("{\"ui\":\"x\"}"), None);
    }

    #[test]
    fn per_connection_bound_keeps_the_handshake_and_the_newest() {
        let hub = hub(5, 100);
        hub.ingest(line(1, "open", 0).as_bytes());
        hub.ingest(line(1, "handshake_request", 0).as_bytes());
        for n in 0..10 {
            hub.ingest(line(1, "frame", n).as_bytes());
        }
        let stats = hub.stats();
        assert_eq!((stats.events_in, stats.stored, stats.evicted), (12, 5, 7));
        let mut sub = hub.subscribe().expect("room");
        let lines = drain(&mut sub);
        assert!(lines[0].contains("\"hello\""));
        assert!(lines[1].contains("\"open\"") && lines[2].contains("handshake_request"));
        assert_eq!(lines[3], "{\"ui\":\"evicted\",\"conn\":1,\"events\":7}");
        let kept: Vec<&str> = lines[4..].iter().map(|l| &l[l.len() - 2..l.len() - 1]).collect();
        assert_eq!(kept, ["7", "8", "9"]);
    }

    #[test]
    fn total_bound_drops_the_oldest_connection_first() {
        let hub = hub(100, 6);
        for conn in 1..=3 {
            for n in 0..3 {
                hub.ingest(line(conn, "frame", n).as_bytes());
            }
        }
        let stats = hub.stats();
        assert_eq!((stats.stored, stats.evicted), (6, 3));
        let mut sub = hub.subscribe().expect("room");
        let lines = drain(&mut sub);
        assert!(lines.iter().all(|l| !l.contains("\"conn\":1,")), "{lines:?}");
        assert_eq!(lines.iter().filter(|l| l.contains("\"event\"")).count(), 6);
    }

    #[test]
    fn byte_bound_holds() {
        let hub = Hub::new(UiOptions { total_bytes: 1000, ..UiOptions::default() });
        for n in 0..100 {
            hub.ingest(line(n, "frame", n as usize).as_bytes());
        }
        let stats = hub.stats();
        assert!(stats.stored_bytes <= 1000, "{stats:?}");
        assert_eq!(stats.stored as u64 + stats.evicted, 100);
    }

    #[test]
    fn lines_cut_between_writes_are_joined() {
        let hub = hub(100, 100);
        let l = line(3, "message", 1);
        let (a, b) = l.split_at(10);
        hub.ingest(a.as_bytes());
        assert_eq!(hub.stats().events_in, 0);
        hub.ingest(b.as_bytes());
        assert_eq!(hub.stats().events_in, 1);
        assert_eq!(hub.stats().stored, 1);
    }

    #[test]
    fn a_page_that_does_not_read_loses_events_counted_and_is_told() {
        let hub = Hub::new(UiOptions { client_queue_bytes: 1000, ..UiOptions::default() });
        let mut sub = hub.subscribe().expect("room");
        let hello = drain(&mut sub);
        assert_eq!(hello.len(), 1);
        // 100 events of ~41 bytes into a 1000-byte queue: most are dropped.
        for n in 0..100 {
            hub.ingest(line(1, "frame", n).as_bytes());
        }
        let stats = hub.stats();
        assert!(stats.client_queued_bytes <= 1000, "{stats:?}");
        assert!(stats.client_dropped >= 70, "{stats:?}");
        let got = drain(&mut sub);
        assert_eq!(got.len() as u64 + stats.client_dropped, 100);
        // Reading makes room: the next batch comes after a notice of the loss.
        hub.ingest(line(1, "frame", 100).as_bytes());
        let next = drain(&mut sub);
        assert_eq!(next[0], format!("{{\"ui\":\"dropped\",\"events\":{}}}", stats.client_dropped));
        assert!(next[1].ends_with("\"n\":100}"));
        // The store is unaffected by the page.
        assert_eq!(hub.stats().stored, 101);
    }

    /// The notice of a loss counts against the bound too: a batch that
    /// fits alone but not with the notice waits (dropped and counted).
    #[test]
    fn the_notice_of_a_loss_stays_within_the_bound() {
        let event = line(1, "frame", 0);
        let notice_len = "{\"ui\":\"dropped\",\"events\":1}".len();
        // Room for two events; the third is dropped; after one is read,
        // there is room for the next event but not for it and the notice.
        let cap = 2 * event.trim_end().len() + notice_len - 1;
        let hub = Hub::new(UiOptions { client_queue_bytes: cap, ..UiOptions::default() });
        let mut sub = hub.subscribe().expect("room");
        drain(&mut sub);
        for n in 0..3 {
            hub.ingest(line(1, "frame", n).as_bytes());
        }
        assert_eq!(hub.stats().client_dropped, 1);
        let first = sub.rx.try_recv().expect("a batch");
        sub.queued.fetch_sub(first.len(), Ordering::AcqRel);
        hub.ingest(line(1, "frame", 3).as_bytes());
        let stats = hub.stats();
        assert!(stats.client_queued_bytes <= cap, "{stats:?}");
        assert_eq!(stats.client_dropped, 2, "{stats:?}");
        // Once the page reads everything, the notice and the next event fit.
        drain(&mut sub);
        hub.ingest(line(1, "frame", 4).as_bytes());
        let next = drain(&mut sub);
        assert_eq!(next[0], "{\"ui\":\"dropped\",\"events\":2}");
        assert!(next[1].ends_with("\"n\":4}"), "{next:?}");
    }

    /// Batches that fit the bound alone but never with the notice do not
    /// keep the loss from a page that has read everything: it is told at
    /// once, on its own.
    #[test]
    fn a_page_that_caught_up_is_told_of_its_loss() {
        let event_len = line(1, "frame", 0).trim_end().len();
        let cap = event_len + dropped_notice(1).len() - 1;
        let hub = Hub::new(UiOptions { client_queue_bytes: cap, ..UiOptions::default() });
        let mut sub = hub.subscribe().expect("room");
        drain(&mut sub);
        hub.ingest(line(1, "frame", 0).as_bytes());
        hub.ingest(line(1, "frame", 1).as_bytes());
        assert_eq!(drain(&mut sub).len(), 1, "the second did not fit");
        hub.ingest(line(1, "frame", 2).as_bytes());
        assert_eq!(drain(&mut sub), [&*dropped_notice(2)]);
        hub.ingest(line(1, "frame", 3).as_bytes());
        let next = drain(&mut sub);
        assert!(next.len() == 1 && next[0].ends_with("\"n\":3}"), "{next:?}");
        assert_eq!(hub.stats().client_dropped, 2);
    }

    #[test]
    fn pages_are_bounded_and_leave() {
        let hub = hub(10, 10);
        let subs: Vec<Subscription> = (0..MAX_CLIENTS).map(|_| hub.subscribe().expect("room")).collect();
        assert!(hub.subscribe().is_none());
        hub.unsubscribe(subs[0].id);
        let kept = hub.subscribe().expect("room after one left");
        drop(subs);
        hub.ingest(line(1, "frame", 0).as_bytes());
        assert_eq!(hub.stats().clients, 1);
        drop(kept);
    }

    #[test]
    fn the_output_feeds_the_hub_and_counts_what_it_could_not() {
        let hub = hub(100, 100);
        let mut writer = HubWriter::start(hub.clone());
        writer.write_all(line(1, "frame", 0).as_bytes()).expect("write");
        drop(writer);
        assert_eq!(hub.stats().events_in, 1, "the view's thread stored it before it ended");
        // Without its thread the view counts what it missed and tells the page.
        let mut sub = hub.subscribe().expect("room");
        drain(&mut sub);
        let mut orphan = HubWriter { tx: None, hub: hub.clone(), thread: None };
        orphan.write_all(format!("{}{}", line(1, "frame", 1), line(1, "frame", 2)).as_bytes()).expect("write");
        assert_eq!(hub.stats().skipped, 2);
        hub.ingest(line(1, "frame", 3).as_bytes());
        let got = drain(&mut sub);
        assert_eq!(got[0], "{\"ui\":\"dropped\",\"events\":2}");
        assert_eq!(hub.stats(), Stats { skipped: 2, ..hub.stats() });
        assert_eq!(hub.stats().events_in, 2);
    }

    #[test]
    fn tokens() {
        assert_eq!(parse_token("abc-123_~."), Ok("abc-123_~.".into()));
        assert!(parse_token("").is_err());
        assert!(parse_token("a b").is_err());
        assert!(parse_token("a&b").is_err());
    }
}
