//! `wsharness replay`: plays the client side of a connection recorded by
//! `wsproxy --format json --max-preview all` against a server, and compares
//! what the server answers with what the recorded server answered.
//!
//! Three layers: [`Recording::load`] reads the log into what to send and
//! what to expect (pure; [`Recording::from_reader`] first decodes a pcap or
//! pcapng capture into that log with wsproxy's own capture reader), [`run`] does the I/O (one connection, every wait
//! bounded), [`compare`] judges the answers (pure), and [`Report`] is what
//! is printed, as text or JSON.

use std::fmt::Write as _;
use std::io::Read as _;
use std::time::{Duration, SystemTime};

use anyhow::{Context, bail};
use serde::Serialize;
use wsproxy::schema::{Event, Opcode, Record, Side};

mod run;

pub use run::{Options, run};

/// A frame the recorded client sent, to send again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// When it was sent, after the 101.
    pub at: Duration,
    /// FIN.
    pub fin: bool,
    /// RSV1, RSV2, RSV3 as recorded.
    pub rsv: [bool; 3],
    /// The opcode (4 bits).
    pub opcode: u8,
    /// The payload, unmasked.
    pub payload: Vec<u8>,
    /// A whole message that was compressed (RSV1): sent again compressed
    /// with the parameters the server agrees to now, or uncompressed.
    pub compressed_message: bool,
    /// Server messages the recorded client had received when it sent this
    /// frame: the replay waits for as many (bounded) before sending it, so
    /// a client that waited for answers is replayed as one.
    pub after_answers: usize,
}

/// A message a server answered with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Answer {
    /// `text` or `binary`.
    pub kind: String,
    /// The payload (inflated).
    #[serde(skip)]
    pub data: Vec<u8>,
}

/// A close frame's code and reason.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Close {
    /// The code, if the frame had one.
    pub code: Option<u16>,
    /// The reason.
    pub reason: String,
}

/// One recorded connection, ready to replay.
#[derive(Debug, Clone, Default)]
pub struct Recording {
    /// The connection id in the log.
    pub conn: u64,
    /// The request target.
    pub target: String,
    /// The subprotocols offered, in order.
    pub protocols: Vec<String>,
    /// The `Sec-WebSocket-Extensions` offer, as sent.
    pub extensions: Option<String>,
    /// What the client sent after the 101, in order (its close included).
    pub frames: Vec<Frame>,
    /// The messages the recorded server answered with.
    pub answers: Vec<Answer>,
    /// The recorded server's close, if it sent one.
    pub close: Option<Close>,
}

fn decode_preview(preview: &str, encoding: &str) -> anyhow::Result<Vec<u8>> {
    match encoding {
        "text" => Ok(preview.as_bytes().to_vec()),
        "hex" => {
            if !preview.len().is_multiple_of(2) {
                bail!("a hex preview of odd length");
            }
            (0..preview.len() / 2)
                .map(|i| {
                    u8::from_str_radix(&preview[2 * i..2 * i + 2], 16).context("a hex preview with a non-hex digit")
                })
                .collect()
        }
        other => bail!("unknown preview encoding {other:?}"),
    }
}

/// The opcode's number; 15 (reserved) for a name the log should not hold.
fn opcode_u4(op: &Opcode) -> u8 {
    op.number().unwrap_or(15)
}

/// Whether `bytes` start as a pcap (either byte order, micro- or
/// nanosecond timestamps) or a pcapng file does: by its first four bytes,
/// as the capture reader tells them apart.
pub fn is_capture(bytes: &[u8]) -> bool {
    matches!(
        bytes.get(..4),
        Some(
            [0x0a, 0x0d, 0x0d, 0x0a]
                | [0xa1, 0xb2, 0xc3, 0xd4]
                | [0xd4, 0xc3, 0xb2, 0xa1]
                | [0xa1, 0xb2, 0x3c, 0x4d]
                | [0x4d, 0x3c, 0xb2, 0xa1]
        )
    )
}

/// Decodes a pcap or pcapng capture (`wsproxy --pcap`, `tcpdump -w`,
/// `tshark -w`) from `input` into the JSON log `wsproxy read --format json
/// --max-preview all` writes: the same events, with every payload whole
/// and the capture's timestamps (so the recorded pacing is the capture's).
/// Only the events of connection `conn` are kept (default: the first one
/// that upgraded; until it has, every connection's), so a long capture
/// costs the memory of the connection replayed, not of the whole capture.
/// Errors: a capture that is cut short or malformed (what the reader says,
/// and after how many packets), or that cannot be read.
pub fn log_of_capture(input: impl std::io::Read, conn: Option<u64>) -> anyhow::Result<String> {
    use wsproxy::capture::read::{ReadOptions, read};
    // The capture names its own upstream; this one is never used.
    let placeholder = wsproxy::Upstream { secure: false, host: "0.0.0.0".into(), port: 1, path: String::new() };
    let options = ReadOptions {
        config: wsproxy::Config { max_preview: wsproxy::PreviewLimit::All, ..wsproxy::Config::new(placeholder) },
        server: None,
    };
    let mut chosen = conn;
    let mut log = Vec::new();
    let mut sink = |events: &wsproxy::log::Events| -> std::io::Result<()> {
        for line in events.output(0).split_inclusive(|b| *b == b'\n') {
            let line_conn = conn_of_line(line);
            if chosen.is_none() && is_upgrade_line(line) {
                chosen = line_conn;
            }
            if chosen.is_none() || line_conn == chosen {
                log.extend_from_slice(line);
            }
        }
        Ok(())
    };
    read(std::io::BufReader::with_capacity(1 << 16, input), &options, &[wsproxy::Format::Json], &mut sink)
        .context("decoding the capture")?;
    String::from_utf8(log).context("the capture's events are not UTF-8 JSON")
}

/// The `conn` of one JSON event line as wsproxy writes it
/// (`{"ts":"…","conn":N,…`), without parsing the rest.
fn conn_of_line(line: &[u8]) -> Option<u64> {
    const KEY: &[u8] = b"\"conn\":";
    let at = line.windows(KEY.len()).position(|w| w == KEY)? + KEY.len();
    let digits = line[at..].iter().take_while(|b| b.is_ascii_digit()).count();
    std::str::from_utf8(&line[at..at + digits]).ok()?.parse().ok()
}

/// Whether a JSON event line is a 101 that upgraded its connection.
fn is_upgrade_line(line: &[u8]) -> bool {
    let has = |needle: &[u8]| line.windows(needle.len()).any(|w| w == needle);
    has(b"\"event\":\"handshake_response\"") && has(b"\"upgraded\":true")
}

impl Recording {
    /// Reads connection `conn` of a recording from `input`: a pcap or
    /// pcapng capture (decoded as it is read, with [`log_of_capture`]) or
    /// a wsproxy JSON log (see [`Recording::load`]), told apart by the
    /// first four bytes.
    pub fn from_reader(mut input: impl std::io::Read, conn: Option<u64>) -> anyhow::Result<Recording> {
        let mut magic = [0u8; 4];
        let mut got = 0;
        while got < magic.len() {
            match input.read(&mut magic[got..]) {
                Ok(0) => break,
                Ok(n) => got += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(anyhow::Error::new(e).context("reading the recording")),
            }
        }
        let mut input = std::io::Cursor::new(magic[..got].to_vec()).chain(input);
        if is_capture(&magic[..got]) {
            return Recording::load(&log_of_capture(input, conn)?, conn);
        }
        let mut bytes = Vec::new();
        input.read_to_end(&mut bytes).context("reading the recording")?;
        let text = std::str::from_utf8(&bytes).map_err(|e| {
            anyhow::anyhow!(
                "neither a pcap/pcapng capture (by its first bytes) nor a wsproxy JSON log (not UTF-8 at byte {})",
                e.valid_up_to()
            )
        })?;
        Recording::load(text, conn)
    }

    /// Reads connection `conn` (default: the first one that upgraded) from
    /// a `wsproxy --format json` log. Errors name what cannot be replayed:
    /// no WebSocket connection, a payload the log cut (`--max-preview`).
    pub fn load(text: &str, conn: Option<u64>) -> anyhow::Result<Recording> {
        let mut records = Vec::new();
        for (i, line) in text.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            let record: Record = serde_json::from_str(line)
                .with_context(|| format!("line {}: not a wsproxy JSON event (record with --format json)", i + 1))?;
            records.push(record);
        }
        // The connections that upgraded, in the order of their 101s: one
        // pass, however many connections the recording holds.
        let upgraded: Vec<u64> = records
            .iter()
            .filter(|r| matches!(r.event, Event::HandshakeResponse { upgraded: true, .. }))
            .map(|r| r.conn)
            .collect();
        let conn = match conn {
            Some(c) if upgraded.contains(&c) => c,
            Some(c) => bail!("connection {c} is not a WebSocket connection in the recording"),
            None => match upgraded.first() {
                Some(c) => *c,
                None => bail!("the recording has no WebSocket connection (no 101 answer)"),
            },
        };
        let events: Vec<&Record> = records.iter().filter(|r| r.conn == conn).collect();
        let mut rec = Recording { conn, ..Recording::default() };
        let mut start: Option<SystemTime> = None;
        // Whether frames were logged (not --messages-only) for data.
        let data_frames =
            events.iter().any(|r| matches!(&r.event, Event::Frame { opcode, .. } if opcode_u4(opcode) <= 2));
        let mut in_compressed = false;
        let mut compressed_at = Duration::ZERO;
        let mut compressed_answers = 0;
        let mut client_messages = 0u64;
        for r in events {
            let at = |start: Option<SystemTime>| -> anyhow::Result<Duration> {
                let t = humantime::parse_rfc3339(&r.ts).with_context(|| format!("a timestamp: {}", r.ts))?;
                Ok(start.and_then(|s| t.duration_since(s).ok()).unwrap_or_default())
            };
            match &r.event {
                Event::HandshakeRequest { target, headers, .. } => {
                    rec.target = target.clone();
                    rec.protocols = headers
                        .iter()
                        .filter(|h| h.name.eq_ignore_ascii_case("sec-websocket-protocol"))
                        .flat_map(|h| h.value.split(',').map(|p| p.trim().to_owned()))
                        .filter(|p| !p.is_empty())
                        .collect();
                    let offers: Vec<&str> = headers
                        .iter()
                        .filter(|h| h.name.eq_ignore_ascii_case("sec-websocket-extensions"))
                        .map(|h| h.value.as_str())
                        .collect();
                    rec.extensions = (!offers.is_empty()).then(|| offers.join(", "));
                }
                Event::HandshakeResponse { .. } => {
                    start = Some(humantime::parse_rfc3339(&r.ts).with_context(|| format!("a timestamp: {}", r.ts))?);
                }
                Event::Frame {
                    from: Side::Client,
                    fin,
                    rsv1,
                    rsv2,
                    rsv3,
                    opcode,
                    preview,
                    preview_encoding,
                    preview_truncated,
                    ..
                } => {
                    let op = opcode_u4(opcode);
                    if matches!(op, 1 | 2) {
                        client_messages += 1;
                        if *rsv1 {
                            // Replayed from its (inflated) message event.
                            in_compressed = true;
                            compressed_at = at(start)?;
                            compressed_answers = rec.answers.len();
                            continue;
                        }
                    }
                    if op == 0 && in_compressed {
                        continue;
                    }
                    if *preview_truncated {
                        bail!(
                            "client frame {} (message {client_messages}) cannot be replayed: the log holds only part of its payload; record with --max-preview all",
                            rec.frames.len() + 1
                        );
                    }
                    rec.frames.push(Frame {
                        at: at(start)?,
                        fin: *fin,
                        rsv: [*rsv1, *rsv2, *rsv3],
                        opcode: op,
                        payload: decode_preview(preview, preview_encoding)?,
                        compressed_message: false,
                        after_answers: rec.answers.len(),
                    });
                }
                Event::Message {
                    from,
                    kind,
                    compressed,
                    decompressed_len,
                    preview,
                    preview_encoding,
                    preview_truncated,
                    ..
                } => {
                    let number = rec.answers.len() + 1;
                    // Data frames replay from frame events, unless compressed (or
                    // not logged: --messages-only).
                    if *from == Side::Client && (*compressed || !data_frames) {
                        if !data_frames {
                            client_messages += 1;
                        }
                        if *compressed && decompressed_len.is_none() {
                            bail!(
                                "client message {client_messages} cannot be replayed: it was compressed and the proxy could not inflate it"
                            );
                        }
                        if *preview_truncated {
                            bail!(
                                "client message {client_messages} cannot be replayed: the log holds only part of its payload; record with --max-preview all"
                            );
                        }
                        in_compressed = false;
                        rec.frames.push(Frame {
                            at: if *compressed && data_frames { compressed_at } else { at(start)? },
                            fin: true,
                            rsv: [false; 3],
                            opcode: if kind == "text" { 1 } else { 2 },
                            payload: decode_preview(preview, preview_encoding)?,
                            compressed_message: *compressed,
                            after_answers: if *compressed && data_frames {
                                compressed_answers
                            } else {
                                rec.answers.len()
                            },
                        });
                    } else if *from == Side::Upstream {
                        if *preview_truncated {
                            bail!(
                                "server message {number} cannot be compared: the log holds only part of its payload; record with --max-preview all"
                            );
                        }
                        rec.answers
                            .push(Answer { kind: kind.clone(), data: decode_preview(preview, preview_encoding)? });
                    }
                }
                Event::Close { from: Side::Upstream, code, reason, .. } => {
                    rec.close = Some(Close { code: *code, reason: reason.clone() });
                }
                // A capture that missed bytes: what they held is unknown, so
                // neither what to send nor what to expect can be told.
                Event::Gap { from, offset, len } => bail!(
                    "connection {conn} cannot be replayed: the capture misses {len} bytes the {} sent (from byte {offset} of its stream)",
                    match from {
                        Side::Client => "client",
                        Side::Upstream => "server",
                    }
                ),
                _ => {}
            }
        }
        Ok(rec)
    }

    /// Whether a client message was compressed in the recording.
    pub fn has_compressed(&self) -> bool {
        self.frames.iter().any(|f| f.compressed_message)
    }
}

/// A difference between what the recorded server and the server now
/// answered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Difference {
    /// Message `index` (from 1) differs.
    Message {
        /// Which server message, from 1.
        index: usize,
        /// Its kind, recorded and now.
        expected_kind: String,
        /// Its kind now.
        got_kind: String,
        /// Its length, recorded.
        expected_len: usize,
        /// Its length now.
        got_len: usize,
        /// The first byte that differs (after `--ignore` masking).
        first_difference: usize,
        /// The start of the recorded message.
        expected_preview: String,
        /// The start of the message now.
        got_preview: String,
    },
    /// The recorded server sent a message the server now did not.
    Missing {
        /// Which message, from 1.
        index: usize,
        /// The start of the recorded message.
        expected_preview: String,
    },
    /// The server now sent a message more.
    Extra {
        /// Which message, from 1.
        index: usize,
        /// Its start.
        got_preview: String,
    },
    /// The server's close differs (or one of them did not close).
    Close {
        /// The recorded close.
        expected: Option<Close>,
        /// The close now.
        got: Option<Close>,
    },
    /// The server sent a frame or message the replay would not read (over
    /// its size limit, or a length that cannot be counted); reading
    /// stopped there.
    Unreadable {
        /// What it was.
        why: String,
    },
}

/// Replaces what `ignore` matches in a message (its text, or the hex of a
/// binary one) by `*`, so volatile parts compare equal.
fn masked(a: &Answer, ignore: &[regex::Regex]) -> Vec<u8> {
    if ignore.is_empty() {
        return a.data.clone();
    }
    let mut text = match (a.kind.as_str(), std::str::from_utf8(&a.data)) {
        ("text", Ok(s)) => s.to_owned(),
        _ => wscli::hex(&a.data),
    };
    for re in ignore {
        text = re.replace_all(&text, "*").into_owned();
    }
    text.into_bytes()
}

fn preview(data: &[u8]) -> String {
    const MAX: usize = 64;
    let cut = &data[..data.len().min(MAX)];
    let mut s = match std::str::from_utf8(cut) {
        Ok(s) => s.to_owned(),
        Err(_) => wscli::hex(cut),
    };
    if data.len() > MAX {
        s.push('…');
    }
    s
}

/// Compares the answers and closes, message by message.
pub fn compare(
    expected: &[Answer],
    got: &[Answer],
    expected_close: Option<&Close>,
    got_close: Option<&Close>,
    ignore: &[regex::Regex],
) -> Vec<Difference> {
    let mut diffs = Vec::new();
    for (i, (e, g)) in expected.iter().zip(got).enumerate() {
        let (me, mg) = (masked(e, ignore), masked(g, ignore));
        if e.kind != g.kind || me != mg {
            let first = me.iter().zip(&mg).position(|(a, b)| a != b).unwrap_or(me.len().min(mg.len()));
            diffs.push(Difference::Message {
                index: i + 1,
                expected_kind: e.kind.clone(),
                got_kind: g.kind.clone(),
                expected_len: e.data.len(),
                got_len: g.data.len(),
                first_difference: first,
                expected_preview: preview(&e.data),
                got_preview: preview(&g.data),
            });
        }
    }
    for (i, e) in expected.iter().enumerate().skip(got.len()) {
        diffs.push(Difference::Missing { index: i + 1, expected_preview: preview(&e.data) });
    }
    for (i, g) in got.iter().enumerate().skip(expected.len()) {
        diffs.push(Difference::Extra { index: i + 1, got_preview: preview(&g.data) });
    }
    if expected_close != got_close {
        diffs.push(Difference::Close { expected: expected_close.cloned(), got: got_close.cloned() });
    }
    diffs
}

/// How closely the replay kept the recorded pacing.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Timing {
    /// Frames sent.
    pub frames: usize,
    /// How late each frame went out against its recorded time (scaled by
    /// `--speed`), µs: median.
    pub late_us_p50: u64,
    /// The same, 99th percentile.
    pub late_us_p99: u64,
    /// The same, the worst.
    pub late_us_max: u64,
}

impl Timing {
    /// From each frame's lateness.
    pub fn from_lateness(mut late: Vec<Duration>) -> Timing {
        late.sort();
        let q = |p: f64| {
            if late.is_empty() {
                return 0;
            }
            let i = ((late.len() - 1) as f64 * p).round() as usize;
            late[i].as_micros() as u64
        };
        Timing { frames: late.len(), late_us_p50: q(0.5), late_us_p99: q(0.99), late_us_max: q(1.0) }
    }
}

/// The outcome of a replay.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// The recorded connection replayed.
    pub conn: u64,
    /// The server's URL.
    pub url: String,
    /// Client frames sent.
    pub frames_sent: usize,
    /// How compressed client messages went: `recompressed`,
    /// `uncompressed (the server declined permessage-deflate)`, or absent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub compression: Option<String>,
    /// Server messages recorded.
    pub expected_messages: usize,
    /// Server messages now.
    pub got_messages: usize,
    /// The server's close now.
    pub close: Option<Close>,
    /// Every difference; empty when the answers match.
    pub differences: Vec<Difference>,
    /// Pacing accuracy.
    pub timing: Timing,
    /// Whether the answers match.
    pub matched: bool,
}

impl Report {
    /// The report as text.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "replayed connection {} against {}: {} client frames sent, {} server messages (recorded {})",
            self.conn, self.url, self.frames_sent, self.got_messages, self.expected_messages
        );
        if let Some(c) = &self.compression {
            let _ = writeln!(out, "compressed client messages: {c}");
        }
        for d in &self.differences {
            let _ = match d {
                Difference::Message {
                    index,
                    expected_kind,
                    got_kind,
                    expected_len,
                    got_len,
                    first_difference,
                    expected_preview,
                    got_preview,
                } => writeln!(
                    out,
                    "message {index} differs: {expected_kind} of {expected_len} bytes recorded, {got_kind} of {got_len} now; first difference at byte {first_difference}\n  recorded: {expected_preview:?}\n  now:      {got_preview:?}"
                ),
                Difference::Missing { index, expected_preview } => {
                    writeln!(out, "message {index} missing: recorded {expected_preview:?}")
                }
                Difference::Extra { index, got_preview } => {
                    writeln!(out, "message {index} extra: {got_preview:?}")
                }
                Difference::Unreadable { why } => {
                    writeln!(out, "the server sent what the replay would not read, and reading stopped: {why}")
                }
                Difference::Close { expected, got } => {
                    let show = |c: &Option<Close>| match c {
                        Some(Close { code: Some(code), reason }) => format!("{code} {reason:?}"),
                        Some(Close { code: None, .. }) => "a close with no code".to_owned(),
                        None => "no close".to_owned(),
                    };
                    writeln!(out, "close differs: recorded {}, now {}", show(expected), show(got))
                }
            };
        }
        let t = &self.timing;
        let _ = writeln!(
            out,
            "pacing: {} frames, late by p50 {} µs, p99 {} µs, max {} µs",
            t.frames, t.late_us_p50, t.late_us_p99, t.late_us_max
        );
        let _ = writeln!(
            out,
            "{}",
            if self.matched {
                "the server's answers match the recording".to_owned()
            } else {
                format!("the server's answers differ from the recording ({})", self.differences.len())
            }
        );
        out
    }
}

#[cfg(test)]
mod tests;
