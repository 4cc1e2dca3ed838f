//! Fault injection: `--fault WHERE:ACTION` rules, parsed once at start
//! ([`FaultRule::parse`]), and the sans-IO engine that applies them to one
//! direction's WebSocket frames (`FaultEngine`).
//!
//! The engine sits where `--enforce` acts: the session feeds it the bytes
//! a side sent after the 101, and it answers with what to do instead of
//! forwarding them: bytes (the frames as they came, or changed), pauses,
//! a rate limit, closes, a reset, a cut. It never decodes more than frame
//! headers; a frame that no rule matches is given back byte for byte, and a
//! stream it cannot follow (a frame over [`MAX_FAULT_FRAME`]) passes
//! unchanged from there on. No clock and no sockets: the relay does the
//! waiting.

use std::fmt;
use std::time::Duration;

use wsproto::{CloseCode, FrameHeader, OpCode, Status, parse_header};

use crate::event::Side;

/// The largest frame (header and payload) the engine holds to act on; a
/// larger one, and everything after it, is relayed unchanged.
pub const MAX_FAULT_FRAME: u64 = 16 << 20;

/// The slowest `throttle=`, bytes per second: one byte every tenth of a
/// second, the relay's step. (A throttled write can still be long; the
/// relay cuts it short when the connection stops or goes idle.)
pub const MIN_THROTTLE: u64 = 10;

/// A `--fault` rule: where it applies and what it does.
#[derive(Debug, Clone)]
pub struct FaultRule {
    /// The rule as given, for the `fault` events.
    text: String,
    from: Option<Side>,
    kinds: Vec<Kind>,
    /// The sender's data messages, counted from 1 (inclusive range).
    msg: Option<(u64, u64)>,
    pattern: Option<regex::Regex>,
    probability: Option<f64>,
    action: Action,
}

/// A frame kind selector.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Text,
    Binary,
    Ping,
    Pong,
    Close,
    Data,
    Control,
}

impl Kind {
    fn matches(self, opcode: OpCode) -> bool {
        match self {
            Kind::Text => opcode == OpCode::Text,
            Kind::Binary => opcode == OpCode::Binary,
            Kind::Ping => opcode == OpCode::Ping,
            Kind::Pong => opcode == OpCode::Pong,
            Kind::Close => opcode == OpCode::Close,
            Kind::Data => opcode.is_data(),
            Kind::Control => opcode.is_control(),
        }
    }
}

/// What a rule does to what it matches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Relay the frame this long after it was read (what follows waits
    /// behind it; delays do not add up).
    Delay(Duration),
    /// Relay nothing of the message or control frame.
    Drop,
    /// Relay the message or control frame twice.
    Duplicate,
    /// Split a one-frame message into this many frames.
    Fragment(u32),
    /// Break the frame on purpose.
    Corrupt(Corruption),
    /// Relay the frame, then send a close with this code and reason to both
    /// sides and end the connection.
    Close {
        /// The close code.
        code: u16,
        /// The reason.
        reason: String,
    },
    /// Relay the frame, then reset both TCP connections.
    Reset,
    /// Relay the frame's header and half its payload, then end both
    /// connections (no close frame).
    Truncate,
    /// Relay the frame at this many bytes per second.
    Throttle(u64),
    /// Relay nothing of it (as `drop`; named for what it is for: pongs, so
    /// the sender's keepalive fires).
    Swallow,
}

/// How `corrupt=` breaks a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Corruption {
    /// Set RSV1.
    Rsv1,
    /// Set RSV2.
    Rsv2,
    /// Set RSV3.
    Rsv3,
    /// Mask a frame that was not masked (a server's), unmask one that was.
    Mask,
    /// Flip the lowest bit of the first payload byte.
    Bit,
    /// Make the first payload byte 0xFF, never valid in UTF-8.
    Utf8,
}

impl Action {
    /// The action's name, as in the rule and the `fault` event.
    pub fn name(&self) -> &'static str {
        match self {
            Action::Delay(_) => "delay",
            Action::Drop => "drop",
            Action::Duplicate => "duplicate",
            Action::Fragment(_) => "fragment",
            Action::Corrupt(_) => "corrupt",
            Action::Close { .. } => "close",
            Action::Reset => "reset",
            Action::Truncate => "truncate",
            Action::Throttle(_) => "throttle",
            Action::Swallow => "swallow",
        }
    }

    fn parse(s: &str) -> Result<Action, String> {
        let (name, value) = match s.split_once('=') {
            Some((n, v)) => (n, Some(v)),
            None => (s, None),
        };
        let need = |what: &str| value.ok_or_else(|| format!("`{name}` needs a value: {name}={what}"));
        let none = |a: Action| match value {
            Some(_) => Err(format!("`{name}` takes no value")),
            None => Ok(a),
        };
        match name {
            "delay" => {
                let d = wscli::parse_duration(need("DURATION")?).map_err(|e| format!("delay: {e}"))?;
                Ok(Action::Delay(d))
            }
            "drop" => none(Action::Drop),
            "duplicate" => none(Action::Duplicate),
            "swallow" => none(Action::Swallow),
            "reset" => none(Action::Reset),
            "truncate" => none(Action::Truncate),
            "fragment" => {
                let v = need("N")?;
                match v.parse::<u32>() {
                    Ok(n) if n >= 2 => Ok(Action::Fragment(n)),
                    _ => Err(format!("fragment={v}: N is a number of frames, 2 or more")),
                }
            }
            "corrupt" => {
                let v = need("rsv1|rsv2|rsv3|mask|bit|utf8")?;
                let c = match v {
                    "rsv1" => Corruption::Rsv1,
                    "rsv2" => Corruption::Rsv2,
                    "rsv3" => Corruption::Rsv3,
                    "mask" => Corruption::Mask,
                    "bit" => Corruption::Bit,
                    "utf8" => Corruption::Utf8,
                    other => return Err(format!("corrupt={other}: one of rsv1, rsv2, rsv3, mask, bit, utf8")),
                };
                Ok(Action::Corrupt(c))
            }
            "close" => {
                let v = need("CODE[,REASON]")?;
                let (code, reason) = v.split_once(',').unwrap_or((v, ""));
                let code: u16 = code.parse().map_err(|_| format!("close={v}: CODE is a number (1000-4999)"))?;
                // RFC 6455 §7.4: the codes an endpoint may send.
                if !CloseCode(code).is_sendable() {
                    return Err(format!("close={code}: not a code an endpoint may send (RFC 6455 §7.4.1)"));
                }
                if reason.len() > 123 {
                    return Err(format!("close: the reason is {} bytes; a close frame holds 123", reason.len()));
                }
                Ok(Action::Close { code, reason: reason.to_owned() })
            }
            "throttle" => {
                let v = need("BYTES/S")?;
                let bytes = v.strip_suffix("/s").unwrap_or(v);
                let rate = wscli::parse_size(bytes).map_err(|e| format!("throttle={v}: {e}"))?;
                if rate < MIN_THROTTLE {
                    return Err(format!(
                        "throttle={v}: the rate is at least {MIN_THROTTLE} bytes/s (the relay writes a tenth of a second's worth, one byte or more, at a time)"
                    ));
                }
                Ok(Action::Throttle(rate))
            }
            other => Err(format!(
                "unknown action `{other}`: one of delay=, drop, duplicate, fragment=, corrupt=, close=, reset, truncate, throttle=, swallow"
            )),
        }
    }
}

impl FaultRule {
    /// Parses `WHERE:ACTION` (see `wsproxy --help` and the README). The
    /// action is after the last `:` that starts one, so a `match=` regex
    /// may hold colons; `match=` comes last in WHERE and takes the rest of
    /// it, commas included.
    pub fn parse(s: &str) -> Result<FaultRule, String> {
        let mut split = None;
        let mut last_error = None;
        for (i, _) in s.match_indices(':').collect::<Vec<_>>().into_iter().rev() {
            match Action::parse(&s[i + 1..]) {
                Ok(a) => {
                    split = Some((i, a));
                    break;
                }
                Err(e) => {
                    last_error.get_or_insert(e);
                }
            }
        }
        let Some((at, action)) = split else {
            return Err(match last_error {
                Some(e) => format!("`{s}`: {e}"),
                None => format!("`{s}`: a rule is WHERE:ACTION, for example upstream,pong:swallow"),
            });
        };
        let mut rule = FaultRule {
            text: s.to_owned(),
            from: None,
            kinds: Vec::new(),
            msg: None,
            pattern: None,
            probability: None,
            action,
        };
        let mut rest = &s[..at];
        while !rest.is_empty() {
            if let Some(re) = rest.strip_prefix("match=") {
                let re = regex::Regex::new(re).map_err(|e| format!("`{s}`: match={re}: {e}"))?;
                rule.pattern = Some(re);
                break;
            }
            let (sel, tail) = rest.split_once(',').unwrap_or((rest, ""));
            rest = tail;
            let bad = |why: String| format!("`{s}`: {why}");
            match sel {
                "client" | "upstream" => {
                    let side = if sel == "client" { Side::Client } else { Side::Upstream };
                    if rule.from.is_some_and(|f| f != side) {
                        return Err(bad("both client and upstream: a frame has one sender".into()));
                    }
                    rule.from = Some(side);
                }
                "text" => rule.kinds.push(Kind::Text),
                "binary" => rule.kinds.push(Kind::Binary),
                "ping" => rule.kinds.push(Kind::Ping),
                "pong" => rule.kinds.push(Kind::Pong),
                "close" => rule.kinds.push(Kind::Close),
                "data" => rule.kinds.push(Kind::Data),
                "control" => rule.kinds.push(Kind::Control),
                "" => return Err(bad("an empty selector (two commas, or a comma at an end)".into())),
                _ => {
                    if let Some(v) = sel.strip_prefix("msg=") {
                        let (a, b) = v.split_once('-').unwrap_or((v, v));
                        match (a.parse::<u64>(), b.parse::<u64>()) {
                            (Ok(a), Ok(b)) if a >= 1 && a <= b => rule.msg = Some((a, b)),
                            _ => return Err(bad(format!("msg={v}: N or N-M, counted from 1, N ≤ M"))),
                        }
                    } else if let Some(v) = sel.strip_prefix("p=") {
                        match v.parse::<f64>() {
                            Ok(p) if (0.0..=1.0).contains(&p) => rule.probability = Some(p),
                            _ => return Err(bad(format!("p={v}: a probability from 0 to 1"))),
                        }
                    } else {
                        return Err(bad(format!(
                            "unknown selector `{sel}`: client, upstream, text, binary, ping, pong, close, data, control, msg=N[-M], match=REGEX, p=P"
                        )));
                    }
                }
            }
        }
        // Kinds are ANDed: `text,binary` would never match a frame.
        if !rule.kinds.is_empty()
            && ![OpCode::Text, OpCode::Binary, OpCode::Ping, OpCode::Pong, OpCode::Close]
                .into_iter()
                .any(|op| rule.kinds.iter().all(|k| k.matches(op)))
        {
            return Err(format!(
                "`{s}`: no frame is all of these kinds (kinds are ANDed; use data/control, or one rule per kind)"
            ));
        }
        if rule.msg.is_some() && rule.kinds.iter().any(|k| !matches!(k, Kind::Text | Kind::Binary | Kind::Data)) {
            return Err(format!("`{s}`: msg= counts data messages; it never matches a control frame"));
        }
        if matches!(rule.action, Action::Fragment(_))
            && rule.kinds.iter().any(|k| !matches!(k, Kind::Text | Kind::Binary | Kind::Data))
        {
            return Err(format!("`{s}`: control frames cannot be fragmented (RFC 6455 §5.5)"));
        }
        Ok(rule)
    }

    /// The rule as it was given.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// What the rule does.
    pub fn action(&self) -> &Action {
        &self.action
    }

    /// Whether the rule can act on what `from` sends.
    pub fn applies_to(&self, from: Side) -> bool {
        self.from.is_none_or(|f| f == from)
    }

    /// Whether the rule's selectors other than `p=` match a frame.
    fn selects(&self, opcode: OpCode, msg: Option<u64>, payload: &[u8]) -> bool {
        if !self.kinds.iter().all(|k| k.matches(opcode)) {
            return false;
        }
        // RFC 6455 §5.5: "Control frames MUST NOT be fragmented." A
        // `fragment=` rule that names no kind acts on data frames only.
        if matches!(self.action, Action::Fragment(_)) && !opcode.is_data() {
            return false;
        }
        if let Some((a, b)) = self.msg {
            match msg {
                Some(n) if opcode.is_data() && (a..=b).contains(&n) => {}
                _ => return false,
            }
        }
        if let Some(re) = &self.pattern {
            let text = match std::str::from_utf8(payload) {
                Ok(s) if opcode != OpCode::Binary => std::borrow::Cow::Borrowed(s),
                _ => std::borrow::Cow::Owned(wscli::hex(payload)),
            };
            if !re.is_match(&text) {
                return false;
            }
        }
        true
    }
}

impl fmt::Display for FaultRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// What to do with the bytes of a direction, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Out {
    /// Forward these bytes.
    Bytes(Vec<u8>),
    /// Forward these bytes, which a rule changed or made: a violation the
    /// receiver's inspector finds in them was injected.
    Injected(Vec<u8>),
    /// Wait this long before the next bytes.
    Delay(Duration),
    /// Forward these bytes at this many bytes per second.
    Throttled(Vec<u8>, u64),
    /// Send a close frame with this code and reason to both sides, then end.
    Close(u16, String),
    /// Reset both connections.
    Reset,
    /// End both connections (after what came before).
    End,
}

/// One action taken, for the `fault` event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Record {
    /// Which rule (index in the configured list).
    pub rule: usize,
    /// The frame's opcode.
    pub opcode: OpCode,
    /// The sender's data message number, for a data frame.
    pub msg: Option<u64>,
    /// The frame's payload length.
    pub len: u64,
    /// Where the frame starts in the sender's WebSocket stream.
    pub offset: u64,
    /// What was done, in words.
    pub detail: String,
}

/// A small seeded generator (SplitMix64): fault probabilities and masking
/// keys, repeatable with `--seed`.
#[derive(Debug, Clone)]
pub(crate) struct Rng(u64);

impl Rng {
    /// A generator for `seed`.
    pub(crate) fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    /// The next 64 random bits.
    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in [0, 1).
    fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    fn mask(&mut self) -> [u8; 4] {
        (self.next_u64() as u32).to_be_bytes()
    }
}

/// The current data message: its number and the rule acting on it.
#[derive(Debug)]
struct Message {
    number: u64,
    rule: Option<usize>,
    /// For `duplicate` of a fragmented message: its frames so far.
    copy: Option<Vec<u8>>,
}

/// Applies the rules to the frames one side sends.
#[derive(Debug)]
pub(crate) struct FaultEngine {
    from: Side,
    rules: std::sync::Arc<[FaultRule]>,
    rng: Rng,
    /// Bytes of a frame not complete yet.
    buf: Vec<u8>,
    /// Bytes of the sender's stream before `buf`.
    offset: u64,
    /// Data messages seen.
    messages: u64,
    message: Option<Message>,
    /// Bytes of an oversized frame still to relay unchanged.
    passing: u64,
    /// The stream cannot be followed any more: everything passes.
    opaque: bool,
    /// A rule ended the connection: nothing more is relayed.
    ended: bool,
}

impl FaultEngine {
    /// An engine for what `from` sends, seeded with `seed`.
    pub(crate) fn new(from: Side, rules: std::sync::Arc<[FaultRule]>, seed: u64) -> FaultEngine {
        FaultEngine {
            from,
            rules,
            rng: Rng::new(seed),
            buf: Vec::new(),
            offset: 0,
            messages: 0,
            message: None,
            passing: 0,
            opaque: false,
            ended: false,
        }
    }

    /// Bytes held waiting for the rest of a frame.
    pub(crate) fn held(&self) -> usize {
        self.buf.len()
    }

    /// The sender ended its stream: what is held goes on as it came.
    pub(crate) fn flush(&mut self) -> Vec<u8> {
        self.offset += self.buf.len() as u64;
        std::mem::take(&mut self.buf)
    }

    /// The next bytes of the sender's WebSocket stream: what to do instead
    /// of forwarding them, and the actions taken.
    pub(crate) fn feed(&mut self, data: &[u8], out: &mut Vec<Out>, records: &mut Vec<Record>) {
        let mut data = data;
        // Until the input is used up and what is held waits for more: a
        // header or frame that the last byte completed is acted on now.
        while !self.ended {
            if self.opaque {
                push_bytes(out, data);
                self.offset += data.len() as u64;
                return;
            }
            if self.passing > 0 {
                if data.is_empty() {
                    return;
                }
                let n = (self.passing.min(data.len() as u64)) as usize;
                push_bytes(out, &data[..n]);
                self.passing -= n as u64;
                self.offset += n as u64;
                data = &data[n..];
                continue;
            }
            if data.is_empty() && self.buf.is_empty() {
                return;
            }
            // Collect a header, then the whole frame.
            let before = self.buf.len();
            let need = match parse_header(if before > 0 { &self.buf } else { data }) {
                // A 64-bit length may be crafted so that the frame's end
                // cannot be counted (header plus payload past u64::MAX):
                // such a stream cannot be followed.
                Status::Complete(h) => match (h.header_len as u64).checked_add(h.header.payload_len) {
                    Some(total) => Some(total),
                    None => {
                        self.opaque = true;
                        let held = std::mem::take(&mut self.buf);
                        push_bytes(out, &held);
                        self.offset += held.len() as u64;
                        continue;
                    }
                },
                Status::Partial => None,
            };
            match need {
                Some(total) if total > MAX_FAULT_FRAME => {
                    // Too large to hold: relayed as it comes; the rest of
                    // its message is not acted on either.
                    let held = std::mem::take(&mut self.buf);
                    push_bytes(out, &held);
                    self.offset += held.len() as u64;
                    // `held` is at most the header, which `total` counts.
                    self.passing = total.saturating_sub(held.len() as u64);
                    if let Status::Complete(h) = parse_header(if held.is_empty() { data } else { &held }) {
                        self.note_unfollowed(h.header);
                    }
                }
                Some(total) => {
                    let total = total as usize;
                    if before == 0 && data.len() >= total {
                        let (frame, rest) = data.split_at(total);
                        self.frame(frame, out, records);
                        self.offset += total as u64;
                        data = rest;
                    } else {
                        let take = (total - before).min(data.len());
                        self.buf.extend_from_slice(&data[..take]);
                        data = &data[take..];
                        if self.buf.len() < total {
                            // All the input is held: wait for more.
                            return;
                        }
                        let frame = std::mem::take(&mut self.buf);
                        self.frame(&frame, out, records);
                        self.offset += total as u64;
                    }
                }
                None => {
                    // A header cut short (at most 13 bytes are held): one
                    // byte more at a time, so none past the header is taken
                    // before its length is known.
                    let Some((&first, rest)) = data.split_first() else { return };
                    self.buf.push(first);
                    data = rest;
                }
            }
        }
    }

    /// A frame too large to act on: counted, left alone.
    fn note_unfollowed(&mut self, h: FrameHeader) {
        if matches!(h.opcode, OpCode::Text | OpCode::Binary) {
            self.messages += 1;
            self.message = (!h.fin).then_some(Message { number: self.messages, rule: None, copy: None });
        } else if h.opcode == OpCode::Continuation && h.fin {
            self.message = None;
        }
    }

    /// The first rule that selects the frame (and wins its `p=` draw).
    fn choose(&mut self, opcode: OpCode, msg: Option<u64>, payload: &[u8]) -> Option<usize> {
        for i in 0..self.rules.len() {
            let rule = &self.rules[i];
            if !rule.applies_to(self.from) || !rule.selects(opcode, msg, payload) {
                continue;
            }
            if let Some(p) = rule.probability
                && self.rng.next_f64() >= p
            {
                continue;
            }
            return Some(i);
        }
        None
    }

    /// One whole frame (`raw`: header and payload as sent).
    fn frame(&mut self, raw: &[u8], out: &mut Vec<Out>, records: &mut Vec<Record>) {
        let Status::Complete(ph) = parse_header(raw) else {
            return push_bytes(out, raw);
        };
        let h = ph.header;
        let mut payload = raw[ph.header_len..].to_vec();
        if let Some(key) = h.mask {
            wsproto::apply_mask(&mut payload, key, 0);
        }
        let (rule, msg, first) = match h.opcode {
            OpCode::Text | OpCode::Binary => {
                self.messages += 1;
                let number = self.messages;
                let rule = self.choose(h.opcode, Some(number), &payload);
                let copy = (!h.fin && rule.is_some_and(|r| self.rules[r].action == Action::Duplicate)).then(Vec::new);
                self.message = Some(Message { number, rule, copy });
                (rule, Some(number), true)
            }
            OpCode::Continuation => match &self.message {
                Some(m) => (m.rule, Some(m.number), false),
                None => (None, None, false),
            },
            op if op.is_control() => (self.choose(h.opcode, None, &payload), None, true),
            // A reserved opcode: nothing to select on.
            _ => (None, None, false),
        };
        let message_ends = h.opcode.is_data() && h.fin;
        let Some(rule) = rule else {
            push_bytes(out, raw);
            if message_ends {
                self.message = None;
            }
            return;
        };
        let action = self.rules[rule].action.clone();
        let offset = self.offset;
        let mut record =
            |detail: String| records.push(Record { rule, opcode: h.opcode, msg, len: h.payload_len, offset, detail });
        match action {
            Action::Drop | Action::Swallow => {
                if first {
                    record(if h.fin || h.opcode.is_control() {
                        "not relayed".to_owned()
                    } else {
                        "not relayed (every frame of the message)".to_owned()
                    });
                }
            }
            Action::Delay(d) => {
                if first {
                    record(format!("relayed after {d:?}"));
                    out.push(Out::Delay(d));
                }
                push_bytes(out, raw);
            }
            Action::Duplicate => {
                push_bytes(out, raw);
                if h.opcode.is_control() || (first && h.fin) {
                    record("relayed twice".to_owned());
                    out.push(Out::Injected(raw.to_vec()));
                } else if let Some(m) = self.message.as_mut()
                    && let Some(copy) = m.copy.as_mut()
                {
                    if copy.len() as u64 + raw.len() as u64 > MAX_FAULT_FRAME {
                        m.copy = None;
                        record("message larger than 16 MiB: relayed once".to_owned());
                    } else {
                        copy.extend_from_slice(raw);
                        if message_ends {
                            let copy = m.copy.take().unwrap_or_default();
                            record("relayed twice (all its frames again after the last)".to_owned());
                            out.push(Out::Injected(copy));
                        }
                    }
                }
            }
            Action::Fragment(n) => {
                if first && h.fin {
                    let n = (n as usize).min(payload.len()).max(1);
                    let bytes = self.fragment(h, &payload, n);
                    record(format!("split into {n} frames"));
                    out.push(Out::Injected(bytes));
                } else {
                    if first {
                        record("already fragmented: relayed as it came".to_owned());
                    }
                    push_bytes(out, raw);
                }
            }
            Action::Corrupt(c) => {
                if first {
                    let (bytes, detail) = self.corrupt(raw, h, &payload, c);
                    record(detail);
                    out.push(Out::Injected(bytes));
                } else {
                    push_bytes(out, raw);
                }
            }
            Action::Close { code, reason } => {
                push_bytes(out, raw);
                record(format!("relayed, then close {code} sent to both sides"));
                out.push(Out::Close(code, reason));
                self.ended = true;
            }
            Action::Reset => {
                push_bytes(out, raw);
                record("relayed, then both connections reset".to_owned());
                out.push(Out::Reset);
                self.ended = true;
            }
            Action::Truncate => {
                let keep = ph.header_len + payload.len() / 2;
                record(format!("cut after {keep} of its {} bytes, then both connections ended", raw.len()));
                out.push(Out::Injected(raw[..keep].to_vec()));
                out.push(Out::End);
                self.ended = true;
            }
            Action::Throttle(rate) => {
                if first {
                    record(format!("relayed at {rate} bytes/s"));
                }
                out.push(Out::Throttled(raw.to_vec(), rate));
            }
        }
        if message_ends {
            self.message = None;
        }
    }

    /// `payload` (unmasked) as `n` frames, the first with `h`'s opcode and
    /// RSV bits; masked with fresh keys if `h` was masked.
    fn fragment(&mut self, h: FrameHeader, payload: &[u8], n: usize) -> Vec<u8> {
        let mut bytes = Vec::with_capacity(payload.len() + 14 * n);
        let size = payload.len().div_ceil(n).max(1);
        let pieces: Vec<&[u8]> = if payload.is_empty() { vec![&[][..]] } else { payload.chunks(size).collect() };
        let last = pieces.len() - 1;
        for (i, piece) in pieces.into_iter().enumerate() {
            let mask = h.mask.map(|_| self.rng.mask());
            let header = FrameHeader {
                fin: i == last,
                rsv1: i == 0 && h.rsv1,
                rsv2: i == 0 && h.rsv2,
                rsv3: i == 0 && h.rsv3,
                opcode: if i == 0 { h.opcode } else { OpCode::Continuation },
                mask,
                payload_len: piece.len() as u64,
            };
            wsproto::encode_frame(&header, piece, &mut bytes);
        }
        bytes
    }

    fn corrupt(&mut self, raw: &[u8], h: FrameHeader, payload: &[u8], c: Corruption) -> (Vec<u8>, String) {
        let mut bytes = raw.to_vec();
        let header_len = raw.len() - payload.len();
        match c {
            Corruption::Rsv1 | Corruption::Rsv2 | Corruption::Rsv3 => {
                let (bit, name) = match c {
                    Corruption::Rsv1 => (0x40, "RSV1"),
                    Corruption::Rsv2 => (0x20, "RSV2"),
                    _ => (0x10, "RSV3"),
                };
                bytes[0] |= bit;
                (bytes, format!("{name} set"))
            }
            Corruption::Mask => {
                let mask = if h.mask.is_some() { None } else { Some(self.rng.mask()) };
                let mut out = Vec::with_capacity(raw.len() + 4);
                wsproto::encode_frame(&FrameHeader { mask, ..h }, payload, &mut out);
                let detail = if mask.is_some() { "masked" } else { "unmasked" };
                (out, detail.to_owned())
            }
            Corruption::Bit => match bytes.get_mut(header_len) {
                Some(b) => {
                    *b ^= 1;
                    (bytes, "lowest bit of the first payload byte flipped".to_owned())
                }
                None => (bytes, "empty payload: no bit to flip, relayed as it came".to_owned()),
            },
            Corruption::Utf8 => {
                let mut changed = payload.to_vec();
                match changed.first_mut() {
                    Some(b) => *b = 0xFF,
                    None => changed.push(0xFF),
                }
                let mut out = Vec::with_capacity(raw.len() + 1);
                wsproto::encode_frame(&FrameHeader { mask: h.mask.map(|_| self.rng.mask()), ..h }, &changed, &mut out);
                (out, "first payload byte made 0xFF (never valid UTF-8)".to_owned())
            }
        }
    }
}

/// Appends bytes to forward unchanged, joining them to the previous ones.
fn push_bytes(out: &mut Vec<Out>, bytes: &[u8]) {
    if bytes.is_empty() {
        return;
    }
    match out.last_mut() {
        Some(Out::Bytes(v)) => v.extend_from_slice(bytes),
        _ => out.push(Out::Bytes(bytes.to_vec())),
    }
}

/// The close frame a rule sends to `to`: masked towards the upstream.
pub(crate) fn close_frame_to(to: Side, code: u16, reason: &str, rng: &mut Rng) -> Vec<u8> {
    let mask = (to == Side::Upstream).then(|| rng.mask());
    let payload = wsproto::encode_close_payload(CloseCode(code), reason);
    let mut out = Vec::new();
    wsproto::encode_frame(&FrameHeader { mask, ..FrameHeader::new(OpCode::Close, 0) }, &payload, &mut out);
    out
}

#[cfg(test)]
mod tests;
