//! `--har FILE`: the HTTP exchanges and WebSocket messages that passed, as
//! HAR 1.2 (the format of browsers' DevTools "Save all as HAR").
//!
//! One entry per HTTP exchange. A WebSocket connection's entry is its
//! upgrade (request and `101` answer, headers as sent), with
//! `_resourceType: "websocket"` and `_webSocketMessages` as Chrome DevTools
//! writes them: one object per message, `type` `send` (from the client) or
//! `receive`, `time` in seconds since the Unix epoch, `opcode` 1 (text, the
//! data as text) or 2 (binary, the data in base64). Messages are whole
//! (reassembled and, when compressed, inflated) up to `--har-max-message`
//! bytes (cut there, with `_truncated: true`). Each side's close frame, which
//! Chrome leaves out, is in `_webSocketClose` (`from`, `code`, `reason`).
//! A plain exchange's entry (a `/healthz` before the upgrade, a refused
//! upgrade's retry) has the method, URL, version, status, reason, both
//! header lists as sent (credentials redacted unless `--show-secrets`) and
//! the body sizes; the HAR's own sessions keep these heads
//! ([`crate::Config::http_headers`]), the log's do not.
//!
//! It is fed the same records as the pcapng output and decodes them with
//! its own sessions (messages only, previews as large as the cap), so the
//! rest of the proxy is not slowed by whole messages: the cost is paid only
//! with `--har`.
//!
//! The file is written incrementally and is valid JSON after every write:
//! each entry is appended when it is complete (a WebSocket connection's
//! when it ends), then the closing brackets are written again after it. At
//! exit, connections still open are written as they are.
//!
//! Memory stays bounded however many messages a connection carries: a
//! message's JSON goes to a spool file (an unlinked temporary file) as it
//! comes, and the connection keeps only where its first and last message
//! of each direction are there (each spooled record names the next
//! one). When the connection ends, its entry is written with the two
//! directions merged in the order they were sent, one message at a time.
//! The spool is emptied whenever no open connection has messages in it;
//! while some are open it holds at most what their entries will hold.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::sync::Arc;
use std::time::{Duration, Instant, UNIX_EPOCH};

use serde_json::{Value, json};

use crate::Config;
use crate::event::{Format, Side, Stamp, Time};
use crate::inspect::PreviewLimit;
use crate::log::Events;
use crate::record::{Record, decode};
use crate::schema::{self, Event, Header};
use crate::session::{Ending, Session};

/// The closing brackets after the last entry.
const FOOTER: &[u8] = b"\n]}}\n";

/// One connection being followed.
struct Conn {
    session: Session,
    events: Events,
    /// Whether the client leg was TLS (the URL's scheme).
    secure: bool,
    /// What the HAR entries are built from.
    state: ConnState,
}

/// A connection's HAR state: the upgrade and where its messages are.
#[derive(Default)]
struct ConnState {
    upstream: String,
    request: Option<(String, Vec<Header>, String, String, String)>,
    response: Option<(String, u16, String, String, Vec<Header>)>,
    /// The messages in the spool, per direction ([`Side::index`]).
    messages: [Chain; 2],
    /// The messages held in memory instead, when there is no spool (the
    /// live view's download, [`from_json_lines`], bounded by its events).
    held: Vec<Value>,
    closes: Vec<Value>,
}

impl ConnState {
    /// Bytes it holds in memory (heads and closes; messages are spooled).
    fn size(&self) -> usize {
        let headers = |h: &[Header]| h.iter().map(|h| h.name.len() + h.value.len()).sum::<usize>();
        self.upstream.len()
            + self.request.as_ref().map_or(0, |r| headers(&r.1) + r.0.len() + r.2.len() + r.3.len() + r.4.len())
            + self.response.as_ref().map_or(0, |r| headers(&r.4) + r.0.len() + r.2.len() + r.3.len())
            + self.closes.iter().map(|c| c.to_string().len()).sum::<usize>()
    }
}

/// No record (the end of a chain).
const NONE: u64 = u64::MAX;
/// A spool record's header: the next record's offset, the message's time
/// (`f64` bits), the length of its JSON.
const RECORD_HEADER: usize = 8 + 8 + 4;

/// The messages of one direction of a connection, in the spool: a chain
/// of records in the order they came.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Chain {
    first: u64,
    last: u64,
    count: u64,
}

impl Default for Chain {
    fn default() -> Chain {
        Chain { first: NONE, last: NONE, count: 0 }
    }
}

/// Where the messages of open connections wait: records appended to an
/// unlinked temporary file, each naming the next of its chain.
struct Spool {
    file: File,
    end: u64,
    /// Records not yet written to the HAR file (or dropped).
    waiting: u64,
}

impl Spool {
    fn new() -> io::Result<Spool> {
        Ok(Spool { file: tempfile::tempfile()?, end: 0, waiting: 0 })
    }

    /// Appends a message (its JSON, sent at `time`) to `chain`.
    fn append(&mut self, chain: &mut Chain, time: f64, json: &[u8]) -> io::Result<()> {
        let at = self.end;
        let len = u32::try_from(json.len()).map_err(|_| io::Error::other("a HAR message over 4 GiB"))?;
        let mut record = Vec::with_capacity(RECORD_HEADER + json.len());
        record.extend_from_slice(&NONE.to_le_bytes());
        record.extend_from_slice(&time.to_bits().to_le_bytes());
        record.extend_from_slice(&len.to_le_bytes());
        record.extend_from_slice(json);
        write_at(&self.file, &record, at)?;
        if chain.last == NONE {
            chain.first = at;
        } else {
            write_at(&self.file, &at.to_le_bytes(), chain.last)?;
        }
        chain.last = at;
        chain.count += 1;
        self.end += record.len() as u64;
        self.waiting += 1;
        Ok(())
    }

    /// The record at `at`: the next one's offset, the time, the JSON.
    fn read(&self, at: u64) -> io::Result<(u64, f64, Vec<u8>)> {
        let mut header = [0u8; RECORD_HEADER];
        read_at(&self.file, &mut header, at)?;
        let field = |r: std::ops::Range<usize>| header[r].iter().rev().fold(0u64, |n, b| n << 8 | u64::from(*b));
        let (next, time, len) = (field(0..8), f64::from_bits(field(8..16)), field(16..20));
        let mut json = vec![0u8; len as usize];
        read_at(&self.file, &mut json, at + RECORD_HEADER as u64)?;
        Ok((next, time, json))
    }

    /// The chains' records are written or dropped: once no record waits,
    /// the file is emptied.
    fn release(&mut self, chains: &[Chain; 2]) -> io::Result<()> {
        self.waiting -= chains.iter().map(|c| c.count).sum::<u64>();
        if self.waiting == 0 && self.end > 0 {
            self.file.set_len(0)?;
            self.end = 0;
        }
        Ok(())
    }
}

fn write_at(mut file: &File, bytes: &[u8], at: u64) -> io::Result<()> {
    file.seek(SeekFrom::Start(at))?;
    file.write_all(bytes)
}

fn read_at(mut file: &File, buf: &mut [u8], at: u64) -> io::Result<()> {
    file.seek(SeekFrom::Start(at))?;
    file.read_exact(buf)
}

/// What `_webSocketMessages` is written as before the messages are put in.
const MESSAGES_SLOT: &str = "\"_webSocketMessages\":[]";

/// Writes the records of [`crate::Format::Capture`] as a HAR file.
pub struct HarWriter<W: Write + Seek> {
    out: W,
    config: Arc<Config>,
    max_message: usize,
    conns: HashMap<u64, Conn>,
    /// The messages of open connections, once there are any.
    spool: Option<Spool>,
    pending: Vec<u8>,
    entries: u64,
    base: Instant,
    /// Name each connection's server by the address it was reached at
    /// (captures read back), not by the proxy's upstream.
    addresses: bool,
}

impl<W: Write + Seek> HarWriter<W> {
    /// Starts a HAR file on `out`: `config` as the proxy's (its upstream,
    /// `--max-inflate`, `--show-secrets`), messages cut at `max_message`
    /// bytes.
    pub fn new(mut out: W, config: &Config, max_message: usize) -> io::Result<HarWriter<W>> {
        let creator = json!({"name": "wsproxy", "version": env!("CARGO_PKG_VERSION")});
        let head = format!("{{\"log\":{{\"version\":\"1.2\",\"creator\":{creator},\"pages\":[],\"entries\":[");
        out.write_all(head.as_bytes())?;
        out.write_all(FOOTER)?;
        out.flush()?;
        let mut config = config.clone();
        config.max_preview = PreviewLimit::Bytes(max_message);
        config.messages_only = true;
        config.enforce = false;
        config.http_headers = true;
        // The requests as the clients sent them.
        config.preserve_host = true;
        Ok(HarWriter {
            out,
            config: Arc::new(config),
            max_message,
            conns: HashMap::new(),
            spool: None,
            pending: Vec::new(),
            entries: 0,
            base: Instant::now(),
            addresses: false,
        })
    }

    /// Names each connection's server by its address in the records (for
    /// `wsproxy read`, where there is no upstream URL).
    pub fn upstream_from_records(mut self) -> Self {
        self.addresses = true;
        self
    }

    /// Bytes the writer holds in memory: records not yet decoded, and per
    /// open connection its session's buffers, its events not yet read and
    /// its heads. Messages are not among them (they are spooled).
    pub fn held(&self) -> usize {
        self.pending.len()
            + self.conns.values().map(|c| c.session.held() + c.events.len() + c.state.size()).sum::<usize>()
    }

    /// Bytes in the spool file.
    pub fn spooled(&self) -> u64 {
        self.spool.as_ref().map_or(0, |s| s.end)
    }

    /// Appends `entry` and the footer after it; `messages` (spooled) go in
    /// its `_webSocketMessages`, the two directions merged in the order
    /// they were sent (by time, then as they came), one at a time.
    fn append(&mut self, entry: &Value, messages: [Chain; 2]) -> io::Result<()> {
        self.out.seek(SeekFrom::End(-(FOOTER.len() as i64)))?;
        let mut bytes = Vec::new();
        if self.entries > 0 {
            bytes.push(b',');
        }
        bytes.push(b'\n');
        serde_json::to_writer(&mut bytes, entry)?;
        let slot = std::str::from_utf8(&bytes).ok().and_then(|t| t.find(MESSAGES_SLOT));
        match (slot, &self.spool) {
            (Some(at), Some(spool)) => {
                // Keys are strings, so the slot's quotes are the key's own.
                let open = at + MESSAGES_SLOT.len() - 1;
                self.out.write_all(&bytes[..open])?;
                let mut heads = [None, None];
                for (i, chain) in messages.iter().enumerate() {
                    if chain.first != NONE {
                        heads[i] = Some((chain.first, spool.read(chain.first)?));
                    }
                }
                let mut first = true;
                loop {
                    // The earlier by time; on a tie, the one that came first.
                    let pick = match (&heads[0], &heads[1]) {
                        (Some(a), Some(b)) => usize::from((b.1.1, b.0) < (a.1.1, a.0)),
                        (Some(_), None) => 0,
                        (None, Some(_)) => 1,
                        (None, None) => break,
                    };
                    let Some((_, (next, _, json))) = heads[pick].take() else { break };
                    if !first {
                        self.out.write_all(b",")?;
                    }
                    first = false;
                    self.out.write_all(&json)?;
                    if next != NONE {
                        heads[pick] = Some((next, spool.read(next)?));
                    }
                }
                self.out.write_all(&bytes[open..])?;
                self.out.write_all(FOOTER)?;
            }
            _ => {
                bytes.extend_from_slice(FOOTER);
                self.out.write_all(&bytes)?;
            }
        }
        if let Some(spool) = &mut self.spool {
            spool.release(&messages)?;
        }
        self.entries += 1;
        Ok(())
    }

    fn apply(&mut self, conn: u64, us: u64, record: Record<'_>) -> io::Result<()> {
        let t = Time {
            instant: self.base + Duration::from_micros(us),
            stamp: Stamp::at(UNIX_EPOCH + Duration::from_micros(us)),
        };
        let mut done = Vec::new();
        match record {
            Record::Open { client, tls, .. } => {
                let mut events = Events::new(&[Format::Json]);
                let mut session = Session::new(conn, self.config.clone(), client, &t, &mut events);
                session.set_connected();
                let state = ConnState { upstream: self.config.upstream.authority(), ..ConnState::default() };
                self.conns.insert(conn, Conn { session, events, secure: tls.client, state });
            }
            Record::Connected { upstream } => {
                if self.addresses
                    && let Some(c) = self.conns.get_mut(&conn)
                {
                    c.state.upstream = upstream.to_string();
                }
            }
            Record::Data { from, bytes } => {
                if let Some(c) = self.conns.get_mut(&conn) {
                    let _ = c.session.feed(from, bytes, &t, &mut c.events);
                    let _ = c.session.take_queued(Side::Client);
                    let _ = c.session.take_queued(Side::Upstream);
                    let _ = c.session.take_errors();
                }
            }
            Record::Eof { from } => {
                if let Some(c) = self.conns.get_mut(&conn) {
                    c.session.eof(from, &t, &mut c.events);
                }
            }
            Record::End { reset } => {
                if let Some(c) = self.conns.get_mut(&conn) {
                    let ending = if reset { Ending::Reset } else { Ending::Eof };
                    let _ = c.session.finish(ending, &t, &mut c.events);
                }
            }
        }
        if let Some(c) = self.conns.get_mut(&conn) {
            let ended = take_events(c, self.max_message, &mut self.spool, &mut done)?;
            if ended {
                self.conns.remove(&conn);
            }
        }
        for (entry, messages) in done {
            self.append(&entry, messages)?;
        }
        Ok(())
    }

    /// Writes the entries of the connections still open (at exit).
    pub fn finish(&mut self) -> io::Result<()> {
        self.drain()?;
        let mut ids: Vec<u64> = self.conns.keys().copied().collect();
        ids.sort_unstable();
        for id in ids {
            if let Some(mut c) = self.conns.remove(&id) {
                let messages = c.state.messages;
                match websocket_entry(&mut c.state, c.secure) {
                    Some(entry) => self.append(&entry, messages)?,
                    None => {
                        if let Some(spool) = &mut self.spool {
                            spool.release(&messages)?;
                        }
                    }
                }
            }
        }
        self.out.flush()
    }

    fn drain(&mut self) -> io::Result<()> {
        let pending = std::mem::take(&mut self.pending);
        let mut at = 0;
        while let Some(((conn, us, record), used)) =
            decode(&pending[at..]).map_err(|()| io::Error::other("a capture record that cannot be decoded"))?
        {
            self.apply(conn, us, record)?;
            at += used;
        }
        self.pending = pending[at..].to_vec();
        Ok(())
    }
}

/// An entry and the spooled messages that go in it.
type Done = (Value, [Chain; 2]);

/// Reads the events the connection's session wrote into its HAR state
/// (messages into the spool); appends finished entries to `done`; returns
/// whether the connection ended.
fn take_events(c: &mut Conn, max_message: usize, spool: &mut Option<Spool>, done: &mut Vec<Done>) -> io::Result<bool> {
    let mut ended = false;
    let text = String::from_utf8_lossy(c.events.output(0)).into_owned();
    c.events.clear();
    for line in text.lines() {
        let Ok(record) = serde_json::from_str::<schema::Record>(line) else { continue };
        ended |= apply_event(&mut c.state, c.secure, record, Some(max_message), Some(&mut *spool), done)?;
    }
    Ok(ended)
}

/// Adds one event of a connection to its HAR state; appends finished
/// entries to `done`; returns whether it was the connection's end.
/// `max_message` is the cap the messages were cut at, if known. Messages
/// go to the spool when one is given (created on the first), else they
/// are held in the state.
fn apply_event(
    s: &mut ConnState,
    secure: bool,
    record: schema::Record,
    max_message: Option<usize>,
    mut spool: Option<&mut Option<Spool>>,
    done: &mut Vec<Done>,
) -> io::Result<bool> {
    let secs = seconds(&record.ts);
    match record.event {
        // The proxy's writer names the upstream itself; the view's events name it here.
        Event::Open { upstream, .. } if s.upstream.is_empty() => s.upstream = upstream,
        Event::HandshakeRequest { method, target, version, headers, .. } => {
            s.request = Some((record.ts, headers, method, target, version));
        }
        Event::HandshakeResponse { status, reason, version, headers, upgraded, .. } => {
            s.response = Some((record.ts, status, reason, version, headers));
            if !upgraded {
                // A refused upgrade is an exchange of its own; the
                // connection may go on to another.
                let messages = std::mem::take(&mut s.messages);
                if let Some(entry) = websocket_entry(s, secure) {
                    done.push((entry, messages));
                }
                s.request = None;
                s.response = None;
            }
        }
        Event::Http {
            method,
            target,
            status,
            request_body_len,
            response_body_len,
            version,
            request_headers,
            reason,
            response_version,
            response_headers,
            ..
        } => {
            let exchange = PlainExchange {
                method,
                target,
                version: version.unwrap_or_else(|| "HTTP/1.1".to_owned()),
                request_headers: request_headers.unwrap_or_default(),
                request_body_len,
                response: status.map(|status| {
                    let version = response_version.unwrap_or_else(|| "HTTP/1.1".to_owned());
                    (status, reason.unwrap_or_default(), version, response_headers.unwrap_or_default())
                }),
                response_body_len,
            };
            done.push((http_entry(&record.ts, &s.upstream, secure, &exchange), [Chain::default(); 2]));
        }
        Event::Message { from, kind, len: _, preview, preview_encoding, preview_truncated, .. } => {
            let bytes = if preview_encoding == "hex" { unhex(&preview) } else { preview.into_bytes() };
            let (opcode, data) = match (kind.as_str(), String::from_utf8(bytes)) {
                ("text", Ok(text)) => (1, text),
                (_, Ok(text)) => (2, data_encoding::BASE64.encode(text.as_bytes())),
                (_, Err(e)) => (if kind == "text" { 1 } else { 2 }, data_encoding::BASE64.encode(e.as_bytes())),
            };
            let mut m = json!({
                "type": if from == schema::Side::Client { "send" } else { "receive" },
                "time": secs,
                "opcode": opcode,
                "data": data,
            });
            if preview_truncated {
                m["_truncated"] = json!(true);
                if let Some(max_message) = max_message {
                    m["_maxMessage"] = json!(max_message);
                }
            }
            match spool.as_deref_mut() {
                Some(slot) => {
                    let spool = match slot {
                        Some(spool) => spool,
                        None => slot.insert(Spool::new()?),
                    };
                    let side = if from == schema::Side::Client { Side::Client } else { Side::Upstream };
                    spool.append(&mut s.messages[side.index()], secs, m.to_string().as_bytes())?;
                }
                None => s.held.push(m),
            }
        }
        Event::Close { from, code, reason, .. } => {
            s.closes.push(json!({"from": from, "time": secs, "code": code, "reason": reason}));
        }
        Event::End { .. } => {
            let messages = std::mem::take(&mut s.messages);
            match websocket_entry(s, secure) {
                Some(entry) => done.push((entry, messages)),
                None => {
                    if let Some(Some(spool)) = spool {
                        spool.release(&messages)?;
                    }
                }
            }
            return Ok(true);
        }
        _ => {}
    }
    Ok(false)
}

/// HAR 1.2 of events already rendered as JSON Lines (the live view's
/// download, [`crate::ui`]): the same entries as `--har` writes, built
/// from the events alone. Messages are what the events' previews hold
/// (cut at `--max-preview`, then `_truncated: true`); a connection whose
/// `end` is not among the events is written as it is; the URL's scheme is
/// `ws`/`http` (the events do not say whether the client leg was TLS).
/// Lines that are not events are skipped.
///
/// The work and the file are bounded by the lines: each entry is written
/// out as soon as it is complete, its messages moved into it, not copied;
/// `None` when they hold more than `max_events` events.
pub fn from_json_lines(lines: &str, max_events: usize) -> Option<Vec<u8>> {
    let mut states: std::collections::BTreeMap<u64, ConnState> = std::collections::BTreeMap::new();
    let mut events = 0usize;
    let mut done = Vec::new();
    let creator = json!({"name": "wsproxy", "version": env!("CARGO_PKG_VERSION")});
    let mut out =
        format!("{{\"log\":{{\"version\":\"1.2\",\"creator\":{creator},\"pages\":[],\"entries\":[").into_bytes();
    let mut entries = 0usize;
    let mut write = |out: &mut Vec<u8>, entry: &Value| {
        if entries > 0 {
            out.push(b',');
        }
        out.push(b'\n');
        // A `Value` always serializes.
        let _ = serde_json::to_writer(&mut *out, entry);
        entries += 1;
    };
    for line in lines.lines() {
        let Ok(record) = serde_json::from_str::<schema::Record>(line) else { continue };
        let conn = record.conn;
        events += 1;
        if events > max_events {
            return None;
        }
        let state = states.entry(conn).or_default();
        // Held in memory (no spool): an `io::Error` can only come from a spool.
        if apply_event(state, false, record, None, None, &mut done).unwrap_or(false) {
            states.remove(&conn);
        }
        for (entry, _) in done.drain(..) {
            write(&mut out, &entry);
        }
    }
    for state in states.values_mut() {
        if let Some(entry) = websocket_entry(state, false) {
            write(&mut out, &entry);
        }
    }
    out.extend_from_slice(FOOTER);
    Some(out)
}

/// RFC 3339 to seconds since the Unix epoch (0 if it does not parse).
fn seconds(ts: &str) -> f64 {
    humantime::parse_rfc3339(ts).ok().and_then(|t| t.duration_since(UNIX_EPOCH).ok()).map_or(0.0, |d| d.as_secs_f64())
}

fn unhex(s: &str) -> Vec<u8> {
    let b = s.as_bytes();
    (0..b.len() / 2)
        .filter_map(|i| std::str::from_utf8(&b[2 * i..2 * i + 2]).ok().and_then(|h| u8::from_str_radix(h, 16).ok()))
        .collect()
}

fn headers_json(headers: &[Header]) -> Value {
    Value::Array(headers.iter().map(|h| json!({"name": h.name, "value": h.value})).collect())
}

/// Query parameters listed in an entry's `queryString`, at most.
///
/// A target such as `/?a&a&a&…` would otherwise make an object of a few
/// hundred bytes in memory of every two bytes of it. The entry's `url`
/// keeps the whole query; `queryString` is a convenience parse of it, and
/// HAR 1.2 does not ask for it to be complete (an empty list is valid).
const MAX_QUERY_PARAMS: usize = 100;

/// The first [`MAX_QUERY_PARAMS`] parameters of `target`'s query.
fn query_string(target: &str) -> Value {
    let query = target.split_once('?').map_or("", |(_, q)| q);
    Value::Array(
        query
            .split('&')
            .filter(|p| !p.is_empty())
            .take(MAX_QUERY_PARAMS)
            .map(|p| {
                let (name, value) = p.split_once('=').unwrap_or((p, ""));
                json!({"name": name, "value": value})
            })
            .collect(),
    )
}

/// `target` as a URL with `scheme`: as it is when absolute, else on the
/// `Host` the client sent (or the upstream).
fn url(scheme: &str, host: Option<&str>, upstream: &str, target: &str) -> String {
    if target.contains("://") {
        return target.to_owned();
    }
    format!("{scheme}://{}{target}", host.unwrap_or(upstream))
}

/// A plain HTTP exchange, as its `http` event tells it.
struct PlainExchange {
    method: String,
    target: String,
    version: String,
    request_headers: Vec<Header>,
    request_body_len: u64,
    /// Status, reason, version and headers, when a response came.
    response: Option<(u16, String, String, Vec<Header>)>,
    response_body_len: Option<u64>,
}

fn header<'a>(headers: &'a [Header], name: &str) -> Option<&'a str> {
    headers.iter().find(|h| h.name.eq_ignore_ascii_case(name)).map(|h| h.value.as_str())
}

/// A plain exchange's entry (HAR 1.2 §4.2.16 `entries`): without a
/// response, status 0 and `bodySize` -1, as HAR says for what is unknown.
fn http_entry(ts: &str, upstream: &str, secure: bool, x: &PlainExchange) -> Value {
    let scheme = if secure { "https" } else { "http" };
    let (status, reason, version, response_headers) = match &x.response {
        Some((status, reason, version, headers)) => (*status, reason.as_str(), version.as_str(), headers.as_slice()),
        None => (0, "", "", &[][..]),
    };
    let mime = header(response_headers, "content-type").unwrap_or("x-unknown");
    json!({
        "startedDateTime": ts,
        "time": 0,
        "request": {
            "method": x.method,
            "url": url(scheme, header(&x.request_headers, "host"), upstream, &x.target),
            "httpVersion": x.version,
            "cookies": [],
            "headers": headers_json(&x.request_headers),
            "queryString": query_string(&x.target),
            "headersSize": -1,
            "bodySize": x.request_body_len,
        },
        "response": {
            "status": status,
            "statusText": reason,
            "httpVersion": version,
            "cookies": [],
            "headers": headers_json(response_headers),
            "content": {"size": x.response_body_len.unwrap_or(0), "mimeType": mime},
            "redirectURL": header(response_headers, "location").unwrap_or(""),
            "headersSize": -1,
            "bodySize": x.response_body_len.map_or(-1, |n| n as i64),
        },
        "cache": {},
        "timings": {"send": 0, "wait": 0, "receive": 0},
    })
}

/// The entry of a connection's upgrade request: with its messages when it
/// was answered with 101; `None` when no upgrade request was seen.
fn websocket_entry(s: &mut ConnState, secure: bool) -> Option<Value> {
    let (ts, req_headers, method, target, version) = s.request.as_ref()?;
    // Messages held in memory (the view's download), in the order they
    // were sent: the two directions arrive in batches of their own.
    let mut held = std::mem::take(&mut s.held);
    held.sort_by(|a, b| a["time"].as_f64().unwrap_or(0.0).total_cmp(&b["time"].as_f64().unwrap_or(0.0)));
    let host = req_headers.iter().find(|h| h.name.eq_ignore_ascii_case("host")).map(|h| h.value.as_str());
    let scheme = if secure { "wss" } else { "ws" };
    let wait_ms = s.response.as_ref().map_or(0.0, |(rts, ..)| ((seconds(rts) - seconds(ts)) * 1000.0).max(0.0));
    let response = match &s.response {
        Some((_, status, reason, version, headers)) => json!({
            "status": status,
            "statusText": reason,
            "httpVersion": version,
            "cookies": [],
            "headers": headers_json(headers),
            "content": {"size": 0, "mimeType": "x-unknown"},
            "redirectURL": "",
            "headersSize": -1,
            "bodySize": 0,
        }),
        None => json!({
            "status": 0, "statusText": "", "httpVersion": "", "cookies": [], "headers": [],
            "content": {"size": 0, "mimeType": "x-unknown"}, "redirectURL": "", "headersSize": -1, "bodySize": -1,
        }),
    };
    let mut entry = json!({
        "startedDateTime": ts,
        "time": wait_ms,
        "request": {
            "method": method,
            "url": url(scheme, host, &s.upstream, target),
            "httpVersion": version,
            "cookies": [],
            "headers": headers_json(req_headers),
            "queryString": query_string(target),
            "headersSize": -1,
            "bodySize": 0,
        },
        "response": response,
        "cache": {},
        "timings": {"send": 0, "wait": wait_ms, "receive": 0},
    });
    if s.response.as_ref().is_some_and(|(_, status, ..)| *status == 101) {
        entry["_resourceType"] = json!("websocket");
        // Spooled messages are put in when the entry is written
        // (`HarWriter::append`); held ones are here already.
        entry["_webSocketMessages"] = Value::Array(held);
        entry["_webSocketClose"] = json!(s.closes);
    }
    Some(entry)
}

impl<W: Write + Seek> Write for HarWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.pending.extend_from_slice(buf);
        self.drain()?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.drain()?;
        self.out.flush()
    }
}

impl<W: Write + Seek> Drop for HarWriter<W> {
    fn drop(&mut self) {
        // Connections still open at exit are written as they are.
        let _ = self.finish();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::TlsLegs;
    use crate::upstream::Upstream;
    use wsproto::{FrameHeader, OpCode};

    fn frame(mask: Option<[u8; 4]>, payload: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        let header = FrameHeader { mask, ..FrameHeader::new(OpCode::Text, payload.len() as u64) };
        wsproto::encode_frame(&header, payload, &mut out);
        out
    }

    /// Many messages on one connection: what the writer holds in memory
    /// stays small while they pass (they wait in the spool), the entry has
    /// every one of them in the order they were sent, and the spool is
    /// emptied once the entry is written.
    #[test]
    fn many_messages_are_spooled_not_held() {
        let config = Config::new(Upstream::parse("ws://127.0.0.1:9").expect("url"));
        let mut har = HarWriter::new(io::Cursor::new(Vec::new()), &config, 1 << 20).expect("har");
        let (client, proxy) = ("127.0.0.1:5000".parse().expect("addr"), "127.0.0.1:9".parse().expect("addr"));
        let key = "dGhlIHNhbXBsZSBub25jZQ==";
        let mut us = 1_000_000u64;
        let mut write = |har: &mut HarWriter<io::Cursor<Vec<u8>>>, record: Record<'_>| {
            let mut buf = Vec::new();
            us += 10;
            record.encode(1, us, &mut buf);
            har.write_all(&buf).expect("write");
        };
        write(&mut har, Record::Open { client, proxy, tls: TlsLegs::default() });
        write(&mut har, Record::Connected { upstream: proxy });
        let request = wsproto::handshake::build_request("x", "/", key, &[], None).expect("request");
        write(&mut har, Record::Data { from: Side::Client, bytes: &request });
        let response = wsproto::handshake::build_response(&wsproto::handshake::accept_key(key.as_bytes()), None, None)
            .expect("response");
        write(&mut har, Record::Data { from: Side::Upstream, bytes: &response });
        const MESSAGES: usize = 3000;
        let filler = "x".repeat(1000);
        let mut most_held = 0;
        for i in 0..MESSAGES {
            let sent = frame(Some([1, 2, 3, 4]), format!("{i} {filler}").as_bytes());
            write(&mut har, Record::Data { from: Side::Client, bytes: &sent });
            let echoed = frame(None, format!("{i} {filler}").as_bytes());
            write(&mut har, Record::Data { from: Side::Upstream, bytes: &echoed });
            most_held = most_held.max(har.held());
        }
        let spooled = har.spooled();
        assert!(spooled > (2 * MESSAGES * filler.len()) as u64, "{spooled}");
        assert!(most_held < 16 << 10, "{most_held} B held while 6 MB of messages passed");
        write(&mut har, Record::End { reset: false });
        assert_eq!((har.spooled(), har.conns.len()), (0, 0));
        let out = std::mem::replace(&mut har.out, io::Cursor::new(Vec::new())).into_inner();
        let doc: Value = serde_json::from_slice(&out).expect("valid JSON");
        let messages = doc["log"]["entries"][0]["_webSocketMessages"].as_array().expect("messages").clone();
        assert_eq!(messages.len(), 2 * MESSAGES);
        for (i, pair) in messages.chunks(2).enumerate() {
            let want = format!("{i} {filler}");
            assert_eq!((pair[0]["type"].as_str(), pair[0]["data"].as_str()), (Some("send"), Some(want.as_str())));
            assert_eq!((pair[1]["type"].as_str(), pair[1]["data"].as_str()), (Some("receive"), Some(want.as_str())));
        }
    }

    const REQUEST: &str = r#"{"ts":"2026-01-01T00:00:00Z","conn":CONN,"event":"handshake_request","method":"GET","target":"TARGET","version":"HTTP/1.1","headers":[{"name":"Host","value":"h"}]}"#;

    #[test]
    fn a_long_query_is_listed_in_part_and_kept_whole_in_the_url() {
        let target = format!("/?{}", "a&".repeat(50_000));
        let lines = REQUEST.replace("CONN", "1").replace("TARGET", &target);
        let har = from_json_lines(&lines, 10).expect("one connection");
        // Bounded by the input, not by the number of parameters in it.
        assert!(har.len() < 2 * lines.len() + 1024, "{} bytes of HAR for {} of events", har.len(), lines.len());
        let har: Value = serde_json::from_slice(&har).expect("JSON");
        let request = &har["log"]["entries"][0]["request"];
        assert_eq!(request["queryString"].as_array().map(Vec::len), Some(MAX_QUERY_PARAMS));
        assert_eq!(request["url"], format!("ws://h{target}"));
    }

    #[test]
    fn more_events_than_the_bound_are_refused() {
        let lines: String =
            (0..3).map(|c| REQUEST.replace("CONN", &c.to_string()).replace("TARGET", "/") + "\n").collect();
        assert_eq!(from_json_lines(&lines, 2), None);
        let har: Value = serde_json::from_slice(&from_json_lines(&lines, 3).expect("three")).expect("JSON");
        assert_eq!(har["log"]["entries"].as_array().map(Vec::len), Some(3));
    }
}
