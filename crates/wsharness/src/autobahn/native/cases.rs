//! The fuzzingclient's cases as data: what each sends, when, and which
//! outcomes it expects, read from Autobahn's case classes
//! (`autobahntestsuite/case/*.py`) and written here family by family.
//!
//! The report text (id, description, expectation), the UTF-8 sequences of
//! 6.5.* and later and the parameters of the permessage-deflate cases 12.*
//! and 13.* come from `autobahn/spec/cases.json`, extracted from the pinned
//! testsuite by `autobahn/spec/extract.py`, so the reports say word for word
//! what wstest's say and the compression cases send what wstest's send.

use std::collections::BTreeMap;

use serde::Deserialize;

/// The spec table: every case of the testsuite, in the testsuite's order.
const SPEC: &str = include_str!("../../../../../autobahn/spec/cases.json");

/// Close codes (RFC 6455 §7.4.1) the cases use.
pub const CLOSE_NORMAL: u16 = 1000;
/// 1001: the fuzzer's own "going away" when it gives up waiting.
pub const CLOSE_GOING_AWAY: u16 = 1001;
/// 1002.
pub const CLOSE_PROTOCOL_ERROR: u16 = 1002;
/// 1007.
pub const CLOSE_INVALID_PAYLOAD: u16 = 1007;

/// One case's report text, as the testsuite has it.
#[derive(Debug, Clone, Deserialize)]
pub struct SpecRow {
    /// `1.1.1`.
    pub id: String,
    /// What the case does (HTML, as Autobahn writes it).
    pub description: String,
    /// What it expects.
    pub expectation: String,
    /// For the data-driven UTF-8 cases: the payload, in hex.
    #[serde(default)]
    pub payload: Option<String>,
    /// For the data-driven UTF-8 cases: whether the payload is valid UTF-8.
    #[serde(default)]
    pub valid: Option<bool>,
    /// For the permessage-deflate cases: what they send.
    #[serde(default)]
    pub deflate: Option<DeflateSpec>,
}

/// The parameters of one permessage-deflate case (`case12_x_x.py`'s class
/// attributes).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct DeflateSpec {
    /// `LEN`: each message's length, in bytes for binary test data and in
    /// characters for text.
    pub len: usize,
    /// `COUNT`: messages, one after the other, each sent when the echo of
    /// the one before is back.
    pub count: usize,
    /// `WAITSECS`: seconds for all of them.
    pub wait: u32,
    /// `AUTOFRAGSIZE`: the compressed payload is sent in frames of this
    /// many bytes (0: one frame).
    pub fragment: usize,
    /// The test data file (in the testsuite's `testdata/`) the messages are
    /// cut from.
    pub file: String,
    /// Whether the messages are binary (else text).
    pub binary: bool,
    /// The `Sec-WebSocket-Extensions` value the client offers, as Autobahn
    /// writes it.
    pub offers: String,
}

/// A test data file as the pinned testsuite ships it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct TestdataSpec {
    /// Its length.
    pub size: u64,
    /// Its SHA-1, in hex.
    pub sha1: String,
}

#[derive(Debug, Deserialize)]
struct SpecFile {
    cases: Vec<SpecRow>,
    #[serde(default)]
    testdata: BTreeMap<String, TestdataSpec>,
}

/// Every case of the testsuite in its order (the report's `case` number is
/// the 1-based position here).
pub fn spec_rows() -> Vec<SpecRow> {
    serde_json::from_str::<SpecFile>(SPEC).map(|f| f.cases).unwrap_or_default()
}

/// The test data files the compression cases read, by name.
pub fn testdata_specs() -> BTreeMap<String, TestdataSpec> {
    serde_json::from_str::<SpecFile>(SPEC).map(|f| f.testdata).unwrap_or_default()
}

/// A frame exactly as the fuzzer writes it, broken or not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// The 4-bit opcode, reserved ones included.
    pub opcode: u8,
    /// The payload (repeated to `payload_len` when that is set).
    pub payload: Vec<u8>,
    /// FIN.
    pub fin: bool,
    /// RSV as a 3-bit number (4 = RSV1, 2 = RSV2, 1 = RSV3), as Autobahn counts.
    pub rsv: u8,
    /// Write this many payload bytes, repeating `payload`.
    pub payload_len: Option<usize>,
    /// Write the frame in pieces of this many bytes, each on its own.
    pub chopsize: Option<usize>,
    /// Write the frame on its own, not coalesced with what follows.
    pub sync: bool,
}

impl Frame {
    /// A final, unchopped frame.
    pub fn new(opcode: u8, payload: impl Into<Vec<u8>>) -> Frame {
        Frame { opcode, payload: payload.into(), fin: true, rsv: 0, payload_len: None, chopsize: None, sync: false }
    }
    /// With FIN as given.
    pub fn fin(mut self, fin: bool) -> Frame {
        self.fin = fin;
        self
    }
    /// With these reserved bits.
    pub fn rsv(mut self, rsv: u8) -> Frame {
        self.rsv = rsv;
        self
    }
    /// Written in chops of `n` bytes.
    pub fn chop(mut self, n: usize) -> Frame {
        self.chopsize = Some(n);
        self
    }
    /// Written on its own.
    pub fn sync(mut self, sync: bool) -> Frame {
        self.sync = sync;
        self
    }
    /// Payload repeated up to `n` bytes.
    pub fn repeat(mut self, n: usize) -> Frame {
        self.payload_len = Some(n);
        self
    }
}

/// One step of a case's script.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// `sendFrame`.
    Frame(Frame),
    /// `sendMessage`: one frame, or fragments of `fragment_size`.
    Message {
        /// The payload.
        payload: Vec<u8>,
        /// Binary or text.
        binary: bool,
        /// Fragment size, if fragmented.
        fragment_size: Option<usize>,
    },
    /// `sendCloseFrame`/`sendClose`: a close frame (only while open), which
    /// starts the closing handshake.
    Close {
        /// The code, if any.
        code: Option<u16>,
        /// The reason bytes, if any (not checked: some cases send broken ones).
        reason: Option<Vec<u8>>,
    },
    /// `beginMessage` + `beginMessageFrame(len)`: the header of a text frame
    /// without FIN whose payload follows in [`Action::FrameData`] pieces.
    BeginFrame {
        /// The frame's payload length.
        len: usize,
    },
    /// `sendMessageFrameData`: the next piece of the frame begun.
    FrameData(Vec<u8>),
    /// `killAfter`: fail the connection (1001) after this many seconds.
    KillAfter(f64),
    /// `closeAfter`: start the closing handshake after this many seconds.
    CloseAfter(f64),
    /// `continueLater`: run the case's part with this index after a delay.
    ContinueLater {
        /// Seconds.
        delay: f64,
        /// The index in [`Case::parts`].
        part: usize,
        /// The tag the wire log shows.
        tag: Option<String>,
    },
}

/// A later part of a case, run by [`Action::ContinueLater`].
#[derive(Debug, Clone, PartialEq)]
pub struct Part {
    /// Run only while the connection is open, and then record
    /// `("timeout", tag)` first (the 6.4.* fail-fast cases).
    pub timeout_tag: Option<String>,
    /// What it does.
    pub actions: Vec<Action>,
}

/// What the fuzzer observes: the `received` list of a report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Observed {
    /// A message: payload and whether it was binary.
    Message(Vec<u8>, bool),
    /// A pong with its payload.
    Pong(Vec<u8>),
    /// A wait that ran out with the connection still open.
    Timeout(String),
}

/// How the closing handshake should go (`expectedClose`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpectedClose {
    /// The fuzzer (not the server) starts the closing handshake.
    pub closed_by_me: bool,
    /// Close codes the server may send.
    pub close_code: Vec<u16>,
    /// The TCP connection must end after a full closing handshake.
    pub require_clean: bool,
    /// Closing by the wrong endpoint fails the case (UTF-8 cases).
    pub closed_by_wrong_endpoint_is_fatal: bool,
}

impl ExpectedClose {
    /// The fuzzer closes, the server answers with `code`, cleanly.
    pub fn clean_by_me(code: u16) -> ExpectedClose {
        ExpectedClose {
            closed_by_me: true,
            close_code: vec![code],
            require_clean: true,
            closed_by_wrong_endpoint_is_fatal: false,
        }
    }
    /// The server fails the connection with `code`.
    pub fn failed_by_peer(code: u16) -> ExpectedClose {
        ExpectedClose {
            closed_by_me: false,
            close_code: vec![code],
            require_clean: false,
            closed_by_wrong_endpoint_is_fatal: false,
        }
    }
}

/// How a case turns its observations into a verdict, beyond the default
/// comparison (each a case class's `onConnectionLost` override).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Judge {
    /// `Case.onConnectionLost` as is.
    Default,
    /// A WRONG CODE close also fails the behavior (7.*).
    WrongCodeFails,
    /// Always INFORMATIONAL for both (7.13.*).
    Informational,
    /// INFORMATIONAL, with the result saying which outcome happened (7.1.6).
    InformationalOutcome,
    /// The frames the fuzzer sent must be 50 continuations and one text
    /// frame (10.1.1, auto-fragmentation at 1300).
    AutoFragment,
}

/// What a case does with the messages it gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Record them and compare with the expected outcomes (most cases).
    Standard,
    /// 9.1.* to 9.6.*: one big message; OK when its echo has the right
    /// type and length; the wire log is off until then.
    Limits {
        /// The message's length.
        len: usize,
        /// Binary or text.
        binary: bool,
        /// Seconds to wait for the echo.
        wait: u32,
    },
    /// 9.7.* and 9.8.*: `count` messages one after the other, each sent when
    /// the echo of the one before is back.
    RoundTrip {
        /// Each message's length.
        len: usize,
        /// How many.
        count: usize,
        /// Binary or text.
        binary: bool,
        /// Seconds for all of them.
        wait: u32,
    },
    /// 12.* and 13.*: as [`Kind::RoundTrip`], with permessage-deflate
    /// negotiated, messages cut from a test data file ([`Case::deflate`])
    /// and each echo checked by its SHA-1; UNIMPLEMENTED when the server
    /// does not accept the offer.
    Deflate,
}

/// One case: its report text, its script and its expectations.
#[derive(Debug, Clone)]
pub struct Case {
    /// The id (`1.1.1`).
    pub id: String,
    /// Position in the testsuite (1-based): the report's `case`.
    pub index: usize,
    /// The description the report shows.
    pub description: String,
    /// The expectation the report shows.
    pub expectation: String,
    /// What to do once the connection is open.
    pub on_open: Vec<Action>,
    /// Later parts.
    pub parts: Vec<Part>,
    /// Expected outcomes by verdict (`OK`, `NON-STRICT`).
    pub expected: BTreeMap<&'static str, Vec<Observed>>,
    /// Expected closing behaviour.
    pub expected_close: ExpectedClose,
    /// Do not start the closing handshake when the outcome is reached.
    pub suppress_close: bool,
    /// The judgement.
    pub judge: Judge,
    /// Fragment size of `sendMessage` when the case sets `autoFragmentSize`.
    pub auto_fragment_size: Option<usize>,
    /// How it treats the messages it gets.
    pub kind: Kind,
    /// The compression cases' parameters (12.*, 13.*).
    pub deflate: Option<DeflateSpec>,
}

/// The parts of a case a family builder fills in.
struct Script {
    on_open: Vec<Action>,
    parts: Vec<Part>,
    expected: BTreeMap<&'static str, Vec<Observed>>,
    expected_close: ExpectedClose,
    suppress_close: bool,
    judge: Judge,
    auto_fragment_size: Option<usize>,
    kind: Kind,
}

impl Script {
    fn new(ok: Vec<Observed>, close: ExpectedClose, on_open: Vec<Action>) -> Script {
        Script {
            on_open,
            parts: Vec::new(),
            expected: BTreeMap::from([("OK", ok)]),
            expected_close: close,
            suppress_close: false,
            judge: Judge::Default,
            auto_fragment_size: None,
            kind: Kind::Standard,
        }
    }
    fn non_strict(mut self, outcome: Vec<Observed>) -> Script {
        self.expected.insert("NON-STRICT", outcome);
        self
    }
    fn suppress_close(mut self) -> Script {
        self.suppress_close = true;
        self
    }
    fn judge(mut self, judge: Judge) -> Script {
        self.judge = judge;
        self
    }
}

fn msg(payload: &[u8], binary: bool) -> Observed {
    Observed::Message(payload.to_vec(), binary)
}

fn pong(payload: &[u8]) -> Observed {
    Observed::Pong(payload.to_vec())
}

fn timeout(tag: &str) -> Observed {
    Observed::Timeout(tag.to_owned())
}

fn frame(opcode: u8, payload: &[u8]) -> Frame {
    Frame::new(opcode, payload)
}

fn send(f: Frame) -> Action {
    Action::Frame(f)
}

fn close(code: Option<u16>, reason: Option<&[u8]>) -> Action {
    Action::Close { code, reason: reason.map(<[u8]>::to_vec) }
}

fn message(payload: &[u8], fragment_size: Option<usize>) -> Action {
    Action::Message { payload: payload.to_vec(), binary: false, fragment_size }
}

/// 1.1.* and 1.2.*: text and binary messages of growing size.
fn framing(id: &[u32]) -> Option<Script> {
    let (opcode, byte, binary) = match id[1] {
        1 => (1, b'*', false),
        2 => (2, 0xfe, true),
        _ => return None,
    };
    let (len, chop, kill) = match id[2] {
        1 => (0, None, 1.0),
        2 => (125, None, 1.0),
        3 => (126, None, 1.0),
        4 => (127, None, 1.0),
        5 => (128, None, 1.0),
        6 => (65535, None, 10.0),
        7 => (65536, None, 10.0),
        8 => (65536, Some(997), 10.0),
        _ => return None,
    };
    let payload = vec![byte; len];
    let mut f = frame(opcode, &payload);
    f.chopsize = chop;
    Some(Script::new(
        vec![msg(&payload, binary)],
        ExpectedClose::clean_by_me(CLOSE_NORMAL),
        vec![send(f), Action::KillAfter(kill)],
    ))
}

/// 2.*: pings and pongs.
fn ping_pong(n: u32) -> Option<Script> {
    let normal = ExpectedClose::clean_by_me(CLOSE_NORMAL);
    let binary = b"\x00\xff\xfe\xfd\xfc\xfb\x00\xff";
    let ping = |payload: &[u8], after: f64, chop: Option<usize>| {
        let mut f = frame(9, payload);
        f.chopsize = chop;
        Script::new(vec![pong(payload)], normal.clone(), vec![send(f), Action::CloseAfter(after)])
    };
    Some(match n {
        1 => ping(b"", 1.0, None),
        2 => ping(b"Hello, world!", 1.0, None),
        3 => ping(binary, 1.0, None),
        4 => ping(&[0xfe; 125], 1.0, None),
        5 => Script::new(
            vec![],
            ExpectedClose::failed_by_peer(CLOSE_PROTOCOL_ERROR),
            vec![send(frame(9, &[0xfe; 126])), Action::KillAfter(1.0)],
        ),
        6 => ping(&[0xfe; 125], 2.0, Some(1)),
        7 | 8 => {
            let payload: &[u8] = if n == 7 { b"" } else { b"unsolicited pong payload" };
            Script::new(
                vec![],
                normal,
                vec![send(frame(10, payload)), close(Some(CLOSE_NORMAL), None), Action::CloseAfter(1.0)],
            )
        }
        9 => Script::new(
            vec![pong(b"ping payload")],
            normal,
            vec![
                send(frame(10, b"unsolicited pong payload")),
                send(frame(9, b"ping payload")),
                Action::CloseAfter(1.0),
            ],
        ),
        10 | 11 => {
            let chop = if n == 11 { Some(1) } else { None };
            let mut actions = Vec::new();
            let mut pongs = Vec::new();
            for i in 0..10 {
                let payload = format!("payload-{i}").into_bytes();
                pongs.push(pong(&payload));
                let mut f = frame(9, &payload);
                f.chopsize = chop;
                actions.push(send(f));
            }
            actions.push(Action::CloseAfter(3.0));
            Script::new(pongs, normal, actions)
        }
        _ => return None,
    })
}

/// The shape most protocol-violation cases share: a valid text message, a
/// broken frame, then a ping; the echo may or may not come back first.
fn echo_then_broken(broken: Frame, chop: Option<usize>, sync: bool) -> Script {
    let hello = b"Hello, world!";
    let mut first = frame(1, hello).sync(sync);
    let mut ping = frame(9, b"").sync(sync);
    let mut broken = broken.sync(sync);
    first.chopsize = chop;
    ping.chopsize = chop;
    broken.chopsize = chop;
    Script::new(
        vec![msg(hello, false)],
        ExpectedClose::failed_by_peer(CLOSE_PROTOCOL_ERROR),
        vec![send(first), send(broken), send(ping), Action::KillAfter(1.0)],
    )
    .non_strict(vec![])
}

fn fails(frames: Vec<Frame>) -> Script {
    let mut actions: Vec<Action> = frames.into_iter().map(send).collect();
    actions.push(Action::KillAfter(1.0));
    Script::new(vec![], ExpectedClose::failed_by_peer(CLOSE_PROTOCOL_ERROR), actions)
}

/// 3.*: reserved bits.
fn reserved_bits(n: u32) -> Option<Script> {
    let hello = b"Hello, world!";
    Some(match n {
        1 => fails(vec![frame(1, hello).rsv(1)]),
        2 => echo_then_broken(frame(1, hello).rsv(2), None, false),
        3 => echo_then_broken(frame(1, hello).rsv(3), None, true),
        4 => echo_then_broken(frame(1, hello).rsv(4), Some(1), false),
        5 => fails(vec![frame(2, b"\x00\xff\xfe\xfd\xfc\xfb\x00\xff").rsv(5)]),
        6 => fails(vec![frame(2, hello).rsv(6)]),
        7 => fails(vec![frame(8, b"").rsv(7)]),
        _ => return None,
    })
}

/// 4.*: reserved opcodes.
fn opcodes(id: &[u32]) -> Option<Script> {
    let hello = b"Hello, world!";
    let base = match id[1] {
        1 => 3,
        2 => 11,
        _ => return None,
    };
    Some(match id[2] {
        1 => fails(vec![frame(base, b"")]),
        2 => fails(vec![frame(base + 1, b"reserved opcode payload")]),
        3 => echo_then_broken(frame(base + 2, b""), None, false),
        4 => echo_then_broken(frame(base + 3, hello), None, false),
        5 => echo_then_broken(frame(base + 4, hello), Some(1), false),
        _ => return None,
    })
}

/// 5.*: fragmentation.
fn fragmentation(n: u32) -> Option<Script> {
    let normal = ExpectedClose::clean_by_me(CLOSE_NORMAL);
    let (f1, f2): (&[u8], &[u8]) = (b"fragment1", b"fragment2");
    let both = b"fragment1fragment2";
    let two = |chop: Option<usize>, sync: bool| {
        let mut a = frame(1, f1).fin(false).sync(sync);
        let mut b = frame(0, f2).sync(sync);
        a.chopsize = chop;
        b.chopsize = chop;
        Script::new(vec![msg(both, false)], normal.clone(), vec![send(a), send(b), Action::CloseAfter(1.0)])
    };
    let with_ping = |chop: Option<usize>, sync: bool| {
        let mut frames = [frame(1, f1).fin(false), frame(9, b"ping payload"), frame(0, f2)];
        for f in &mut frames {
            f.chopsize = chop;
            f.sync = sync;
        }
        let mut actions: Vec<Action> = frames.into_iter().map(send).collect();
        actions.push(Action::CloseAfter(1.0));
        Script::new(vec![pong(b"ping payload"), msg(both, false)], normal.clone(), actions)
    };
    let stray = |fin: bool, chop: Option<usize>, sync: bool| {
        let mut a = frame(0, b"non-continuation payload").fin(fin).sync(sync);
        let mut b = frame(1, b"Hello, world!").sync(sync);
        a.chopsize = chop;
        b.chopsize = chop;
        fails(vec![a, b])
    };
    Some(match n {
        1 => fails(vec![frame(9, f1).fin(false), frame(0, f2)]),
        2 => fails(vec![frame(10, f1).fin(false), frame(0, f2)]),
        3 => two(None, false),
        4 => two(None, true),
        5 => two(Some(1), false),
        6 => with_ping(None, false),
        7 => with_ping(None, true),
        8 => with_ping(Some(1), false),
        9 => stray(true, None, false),
        10 => stray(true, None, true),
        11 => stray(true, Some(1), false),
        12 => stray(false, None, false),
        13 => stray(false, None, true),
        14 => stray(false, Some(1), false),
        15 => Script::new(
            vec![msg(both, false)],
            ExpectedClose::failed_by_peer(CLOSE_PROTOCOL_ERROR),
            vec![
                send(frame(1, f1).fin(false)),
                send(frame(0, f2)),
                send(frame(0, b"fragment3").fin(false)),
                send(frame(1, b"fragment4")),
                Action::KillAfter(1.0),
            ],
        )
        .non_strict(vec![]),
        16 | 17 => {
            let fin = n == 17;
            let mut frames = Vec::new();
            for _ in 0..2 {
                frames.push(frame(0, b"fragment1").fin(fin));
                frames.push(frame(1, b"fragment2").fin(false));
                frames.push(frame(0, b"fragment3"));
            }
            fails(frames)
        }
        18 => fails(vec![frame(1, f1).fin(false), frame(1, f2)]),
        19 | 20 => {
            let sync = n == 20;
            let fragments: Vec<Vec<u8>> = (1..=5).map(|i| format!("fragment{i}").into_bytes()).collect();
            let (p1, p2): (&[u8], &[u8]) = (b"pongme 1!", b"pongme 2!");
            let mut s = Script::new(
                vec![pong(p1), pong(p2), msg(&fragments.concat(), false)],
                normal,
                vec![
                    send(frame(1, &fragments[0]).fin(false).sync(sync)),
                    send(frame(0, &fragments[1]).fin(false).sync(sync)),
                    send(frame(9, p1).sync(sync)),
                    Action::ContinueLater { delay: 1.0, part: 0, tag: None },
                ],
            );
            s.parts.push(Part {
                timeout_tag: None,
                actions: vec![
                    send(frame(0, &fragments[2]).fin(false).sync(sync)),
                    send(frame(0, &fragments[3]).fin(false).sync(sync)),
                    send(frame(9, p2).sync(sync)),
                    send(frame(0, &fragments[4]).sync(sync)),
                    Action::CloseAfter(1.0),
                ],
            });
            s
        }
        _ => return None,
    })
}

fn utf8_fails() -> ExpectedClose {
    ExpectedClose {
        closed_by_me: false,
        close_code: vec![CLOSE_INVALID_PAYLOAD],
        require_clean: false,
        closed_by_wrong_endpoint_is_fatal: true,
    }
}

/// The payload of 6.2.4 and the start of 6.3.1: "κόσμε".
const KOSME: &[u8] = b"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5";

/// 6.1.* to 6.4.*: written out; 6.5.* and later: from the spec table.
fn utf8(id: &[u32], row: &SpecRow) -> Option<Script> {
    let normal = ExpectedClose::clean_by_me(CLOSE_NORMAL);
    let hello = "Hello-µ@ßöäüàá-UTF-8!!".as_bytes();
    let invalid_6_3: Vec<u8> = [KOSME, b"\xed\xa0\x80", b"edited"].concat();
    let invalid_6_4: Vec<u8> = [KOSME, b"\xf4\x90\x80\x80", b"edited"].concat();
    let echo = |payload: &[u8], actions: Vec<Action>| Script::new(vec![msg(payload, false)], normal.clone(), actions);
    let fail_fast = |on_open: Vec<Action>, part2: Vec<Action>, part3: Vec<Action>| {
        let mut s = Script::new(vec![timeout("A")], utf8_fails(), on_open).non_strict(vec![timeout("A"), timeout("B")]);
        s.parts.push(Part { timeout_tag: Some("A".into()), actions: part2 });
        s.parts.push(Part { timeout_tag: Some("B".into()), actions: part3 });
        s
    };
    let later = |part: usize, tag: &str| Action::ContinueLater { delay: 1.0, part, tag: Some(tag.into()) };
    Some(match (id[1], id[2]) {
        (1, 1) => echo(b"", vec![send(frame(1, b"")), Action::CloseAfter(1.0)]),
        (1, 2) => echo(
            b"",
            vec![
                send(frame(1, b"").fin(false)),
                send(frame(0, b"").fin(false)),
                send(frame(0, b"")),
                Action::CloseAfter(1.0),
            ],
        ),
        (1, 3) => echo(
            b"middle frame payload",
            vec![
                send(frame(1, b"").fin(false)),
                send(frame(0, b"middle frame payload").fin(false)),
                send(frame(0, b"")),
                Action::CloseAfter(1.0),
            ],
        ),
        (2, 1) => echo(hello, vec![message(hello, None), Action::CloseAfter(1.0)]),
        (2, 2) => {
            let (a, b) = hello.split_at("Hello-µ@ßöä".len());
            echo(hello, vec![send(frame(1, a).fin(false)), send(frame(0, b)), Action::CloseAfter(1.0)])
        }
        (2, 3) => echo(hello, vec![message(hello, Some(1)), Action::CloseAfter(1.0)]),
        (2, 4) => echo(KOSME, vec![message(KOSME, Some(1)), Action::CloseAfter(1.0)]),
        (3, 1) => Script::new(vec![], utf8_fails(), vec![message(&invalid_6_3, None), Action::KillAfter(1.0)]),
        (3, 2) => Script::new(vec![], utf8_fails(), vec![message(&invalid_6_3, Some(1)), Action::KillAfter(1.0)]),
        (4, 1) => fail_fast(
            vec![send(frame(1, KOSME).fin(false)), later(0, "A")],
            vec![send(frame(0, b"\xf4\x90\x80\x80").fin(false)), later(1, "B")],
            vec![send(frame(0, b"edited")), Action::KillAfter(1.0)],
        ),
        (4, 2) => fail_fast(
            vec![send(frame(1, &invalid_6_4[..12]).fin(false)), later(0, "A")],
            vec![send(frame(0, &invalid_6_4[12..13]).fin(false)), later(1, "B")],
            vec![send(frame(0, &invalid_6_4[13..])), Action::KillAfter(1.0)],
        ),
        (4, 3) => fail_fast(
            vec![Action::BeginFrame { len: invalid_6_4.len() }, Action::FrameData(KOSME.to_vec()), later(0, "A")],
            vec![Action::FrameData(b"\xf4\x90\x80\x80".to_vec()), later(1, "B")],
            vec![Action::FrameData(b"edited".to_vec()), send(frame(0, b"")), Action::KillAfter(1.0)],
        ),
        (4, 4) => fail_fast(
            vec![
                Action::BeginFrame { len: invalid_6_4.len() },
                Action::FrameData(invalid_6_4[..12].to_vec()),
                later(0, "A"),
            ],
            vec![Action::FrameData(invalid_6_4[12..13].to_vec()), later(1, "B")],
            vec![Action::FrameData(invalid_6_4[13..].to_vec()), send(frame(0, b"")), Action::KillAfter(1.0)],
        ),
        (major, _) if major >= 5 => {
            let payload = decode_hex(row.payload.as_deref()?)?;
            let actions = vec![message(&payload, None), Action::KillAfter(0.5)];
            if row.valid? { echo(&payload, actions) } else { Script::new(vec![], utf8_fails(), actions) }
        }
        _ => return None,
    })
}

/// 7.*: closing.
fn closing(id: &[u32]) -> Option<Script> {
    let normal = ExpectedClose::clean_by_me(CLOSE_NORMAL);
    let kill = Action::KillAfter(1.0);
    let closes_with = |codes: Vec<u16>, require_clean: bool, actions: Vec<Action>| {
        let close = ExpectedClose {
            closed_by_me: true,
            close_code: codes,
            require_clean,
            closed_by_wrong_endpoint_is_fatal: false,
        };
        Script::new(vec![], close, actions).suppress_close().judge(Judge::WrongCodeFails)
    };
    let invalid_reason: Vec<u8> = [KOSME, b"\xed\xa0\x80", b"edited"].concat();
    Some(match (id[1], id.get(2).copied().unwrap_or(0)) {
        (1, 1) => Script::new(vec![msg(b"Hello World!", false)], normal, vec![send(frame(1, b"Hello World!")), kill])
            .judge(Judge::WrongCodeFails),
        (1, 2) => {
            closes_with(vec![CLOSE_NORMAL], true, vec![close(Some(CLOSE_NORMAL), None), send(frame(8, b"")), kill])
        }
        (1, 3) => {
            closes_with(vec![CLOSE_NORMAL], true, vec![close(Some(CLOSE_NORMAL), None), send(frame(9, b"")), kill])
        }
        (1, 4) => closes_with(
            vec![CLOSE_NORMAL],
            true,
            vec![close(Some(CLOSE_NORMAL), None), send(frame(1, b"Hello World!")), kill],
        ),
        (1, 5) => closes_with(
            vec![CLOSE_NORMAL],
            true,
            vec![
                send(frame(1, b"fragment1").fin(false)),
                close(Some(CLOSE_NORMAL), None),
                send(frame(0, b"fragment2")),
                kill,
            ],
        ),
        (1, 6) => Script::new(
            vec![msg(b"Hello World!", false)],
            normal,
            vec![
                send(frame(1, b"BAsd7&jh23").repeat(256 * 1024)),
                send(frame(1, b"Hello World!")),
                close(Some(CLOSE_NORMAL), None),
                send(frame(9, b"")),
                kill,
            ],
        )
        .non_strict(vec![])
        .suppress_close()
        .judge(Judge::InformationalOutcome),
        (3, 1) => closes_with(vec![CLOSE_NORMAL], true, vec![close(None, None), kill]),
        (3, 2) => closes_with(vec![CLOSE_PROTOCOL_ERROR], false, vec![close(None, Some(b"a")), kill]),
        (3, 3) => closes_with(vec![CLOSE_NORMAL], true, vec![close(Some(CLOSE_NORMAL), None), kill]),
        (3, 4) => closes_with(vec![CLOSE_NORMAL], true, vec![close(Some(CLOSE_NORMAL), Some(b"Hello World!")), kill]),
        (3, 5) => closes_with(vec![CLOSE_NORMAL], true, vec![close(Some(CLOSE_NORMAL), Some(&[b'*'; 123])), kill]),
        (3, 6) => {
            closes_with(vec![CLOSE_PROTOCOL_ERROR], false, vec![close(Some(CLOSE_NORMAL), Some(&[b'*'; 124])), kill])
        }
        (5, 1) => closes_with(
            vec![CLOSE_PROTOCOL_ERROR, CLOSE_INVALID_PAYLOAD],
            false,
            vec![close(Some(CLOSE_NORMAL), Some(&invalid_reason)), kill],
        ),
        (7, n) => {
            let code = *[1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 3000, 3999, 4000, 4999]
                .get(usize::try_from(n).ok()?.checked_sub(1)?)?;
            closes_with(vec![CLOSE_NORMAL, code], true, vec![close(Some(code), None), kill])
        }
        (9, n) => {
            let code =
                *[0, 999, 1004, 1005, 1006, 1016, 1100, 2000, 2999].get(usize::try_from(n).ok()?.checked_sub(1)?)?;
            closes_with(vec![CLOSE_PROTOCOL_ERROR], false, vec![close(Some(code), None), kill])
        }
        (13, n @ (1 | 2)) => {
            let code = if n == 1 { 5000 } else { 65535 };
            let mut s =
                closes_with(vec![CLOSE_NORMAL, code, CLOSE_PROTOCOL_ERROR], false, vec![close(Some(code), None), kill]);
            s.judge = Judge::Informational;
            s
        }
        _ => return None,
    })
}

/// 10.1.1: a 64 KiB text message auto-fragmented at 1300 bytes.
fn misc(id: &[u32]) -> Option<Script> {
    if id != [10, 1, 1] {
        return None;
    }
    let payload = vec![b'*'; 65536];
    let mut s = Script::new(
        vec![msg(&payload, false)],
        ExpectedClose::clean_by_me(CLOSE_NORMAL),
        vec![message(&payload, None), Action::KillAfter(10.0)],
    )
    .judge(Judge::AutoFragment);
    s.auto_fragment_size = Some(1300);
    Some(s)
}

/// 9.*: limits and performance, from the parameters of Autobahn's classes.
fn limits(id: &[u32]) -> Option<Script> {
    let idx = usize::try_from(id[2]).ok()?.checked_sub(1)?;
    const MIB: usize = 1 << 20;
    const KIB: usize = 1 << 10;
    let normal = ExpectedClose::clean_by_me(CLOSE_NORMAL);
    let script = |kind: Kind, actions: Vec<Action>| {
        let mut s = Script::new(vec![], normal.clone(), actions);
        s.expected.clear();
        s.kind = kind;
        s
    };
    let text_repeat: &[u8] = b"BAsd7&jh23";
    let binary_repeat: &[u8] = b"\x00\xfe\x23\xfa\xf0";
    Some(match id[1] {
        1 | 2 => {
            let binary = id[1] == 2;
            let len = *[64 * KIB, 256 * KIB, MIB, 4 * MIB, 8 * MIB, 16 * MIB].get(idx)?;
            let wait = if binary { [10, 10, 10, 10, 100, 100] } else { [10, 10, 100, 100, 100, 100] }[idx];
            let (opcode, repeat) = if binary { (2, binary_repeat) } else { (1, text_repeat) };
            script(
                Kind::Limits { len, binary, wait },
                vec![send(frame(opcode, repeat).repeat(len)), Action::CloseAfter(f64::from(wait))],
            )
        }
        3 | 4 => {
            let binary = id[1] == 4;
            let fragment = *[64, 256, KIB, 4 * KIB, 16 * KIB, 64 * KIB, 256 * KIB, MIB, 4 * MIB].get(idx)?;
            let len = 4 * MIB;
            let byte = if binary && idx == 0 { 0xfe } else { b'*' };
            script(
                Kind::Limits { len, binary, wait: 100 },
                vec![
                    Action::Message { payload: vec![byte; len], binary, fragment_size: Some(fragment) },
                    Action::CloseAfter(100.0),
                ],
            )
        }
        5 | 6 => {
            let binary = id[1] == 6;
            let chop = *[64, 128, 256, 512, 1024, 2048].get(idx)?;
            let (opcode, repeat) = if binary { (2, binary_repeat) } else { (1, text_repeat) };
            script(
                Kind::Limits { len: MIB, binary, wait: 1000 },
                vec![send(frame(opcode, repeat).repeat(MIB).chop(chop)), Action::CloseAfter(1000.0)],
            )
        }
        7 | 8 => {
            let (len, wait) = *[(0, 60), (16, 60), (64, 60), (256, 120), (1024, 240), (4096, 480)].get(idx)?;
            script(Kind::RoundTrip { len, count: 1000, binary: id[1] == 8, wait }, vec![])
        }
        _ => return None,
    })
}

fn decode_hex(hex: &str) -> Option<Vec<u8>> {
    if !hex.len().is_multiple_of(2) {
        return None;
    }
    (0..hex.len()).step_by(2).map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok()).collect()
}

/// 12.* and 13.*: permessage-deflate, from the spec table's parameters.
fn deflate(row: &SpecRow) -> Option<Script> {
    let spec = row.deflate.as_ref()?;
    let mut s = Script::new(vec![], ExpectedClose::clean_by_me(CLOSE_NORMAL), vec![]);
    s.expected.clear();
    s.kind = Kind::Deflate;
    // `autoFragmentSize = 0` sends each message in one frame.
    s.auto_fragment_size = (spec.fragment > 0).then_some(spec.fragment);
    Some(s)
}

/// The script of a case, if the native engine has its family.
fn script(row: &SpecRow) -> Option<Script> {
    let id: Vec<u32> = row.id.split('.').map(|p| p.parse().ok()).collect::<Option<_>>()?;
    match id.first()? {
        1 if id.len() == 3 => framing(&id),
        2 if id.len() == 2 => ping_pong(id[1]),
        3 if id.len() == 2 => reserved_bits(id[1]),
        4 if id.len() == 3 => opcodes(&id),
        5 if id.len() == 2 => fragmentation(id[1]),
        6 if id.len() == 3 => utf8(&id, row),
        7 => closing(&id),
        9 if id.len() == 3 => limits(&id),
        10 => misc(&id),
        12 | 13 if id.len() == 3 => deflate(row),
        _ => None,
    }
}

/// Every case the native engine has, in the testsuite's order.
pub fn all_cases() -> Vec<Case> {
    spec_rows()
        .into_iter()
        .enumerate()
        .filter_map(|(i, row)| {
            let s = script(&row)?;
            Some(Case {
                id: row.id,
                index: i + 1,
                description: row.description,
                expectation: row.expectation,
                on_open: s.on_open,
                parts: s.parts,
                expected: s.expected,
                expected_close: s.expected_close,
                suppress_close: s.suppress_close,
                judge: s.judge,
                auto_fragment_size: s.auto_fragment_size,
                kind: s.kind,
                deflate: row.deflate,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_spec_table_has_every_case_in_order() {
        let rows = spec_rows();
        assert_eq!(rows.len(), 517);
        assert_eq!(rows[0].id, "1.1.1");
        assert_eq!(rows.iter().filter(|r| r.id.starts_with("6.")).count(), 145);
        assert!(rows.iter().all(|r| !r.description.is_empty() && !r.expectation.is_empty()));
    }

    #[test]
    fn the_native_families_are_complete() {
        let cases = all_cases();
        let count = |prefix: &str| cases.iter().filter(|c| c.id.starts_with(prefix)).count();
        let table = [
            ("1.", 16),
            ("2.", 11),
            ("3.", 7),
            ("4.", 10),
            ("5.", 20),
            ("6.", 145),
            ("7.", 37),
            ("9.", 54),
            ("10.", 1),
            ("12.", 90),
            ("13.", 126),
        ];
        for (prefix, n) in table {
            assert_eq!(count(prefix), n, "family {prefix}");
        }
        assert_eq!(cases.len(), 517);
    }

    #[test]
    fn compression_cases_carry_autobahns_parameters() {
        let cases = all_cases();
        let case = |id: &str| cases.iter().find(|c| c.id == id).expect("case exists");
        let first = case("12.1.1");
        assert_eq!(first.kind, Kind::Deflate);
        let spec = first.deflate.as_ref().expect("deflate parameters");
        assert_eq!((spec.len, spec.count, spec.wait, spec.fragment), (16, 1000, 60, 0));
        assert_eq!((spec.file.as_str(), spec.binary), ("data1.json", false));
        assert_eq!(spec.offers, "permessage-deflate; client_no_context_takeover; client_max_window_bits");
        assert_eq!(first.auto_fragment_size, None);
        // 12.2: lena512.bmp, binary; 12.x.11 to 18 fragment the compressed payload.
        let lena = case("12.2.11");
        assert_eq!(lena.deflate.as_ref().map(|d| (d.file.as_str(), d.binary)), Some(("lena512.bmp", true)));
        assert_eq!(lena.auto_fragment_size, Some(256));
        assert_eq!(case("12.5.18").auto_fragment_size, Some(32768));
        // 13.7 offers three configurations, in Autobahn's order and words.
        let offers = &case("13.7.1").deflate.as_ref().expect("deflate").offers;
        assert_eq!(
            offers,
            "permessage-deflate; client_no_context_takeover; client_max_window_bits; server_no_context_takeover; \
             server_max_window_bits=9, permessage-deflate; client_no_context_takeover; client_max_window_bits; \
             server_no_context_takeover, permessage-deflate; client_no_context_takeover; client_max_window_bits"
        );
        // Each offer is a valid permessage-deflate offer to wsproto's
        // negotiation, with the parameters the case names.
        let offers_of = |id: &str| {
            let header = case(id).deflate.as_ref().expect("deflate").offers.clone();
            let mut elements = Vec::new();
            wsproto::handshake::parse_extensions(header.as_bytes(), &mut elements).expect("a valid header");
            wsproto::deflate::DeflateOffer::offers(&elements).collect::<Result<Vec<_>, _>>().expect("valid offers")
        };
        let table: [(&str, &[(bool, Option<u8>)]); 7] = [
            ("13.1.1", &[(false, None)]),
            ("13.2.1", &[(true, None)]),
            ("13.3.1", &[(false, Some(9))]),
            ("13.4.1", &[(false, Some(15))]),
            ("13.5.1", &[(true, Some(9))]),
            ("13.6.1", &[(true, Some(15))]),
            ("13.7.1", &[(true, Some(9)), (true, None), (false, None)]),
        ];
        for (id, want) in table {
            let got: Vec<(bool, Option<u8>)> =
                offers_of(id).iter().map(|o| (o.server_no_context_takeover, o.server_max_window_bits)).collect();
            assert_eq!(got, want, "{id}");
            // Autobahn's offers always announce both client parameters.
            assert!(
                offers_of(id).iter().all(|o| o.client_no_context_takeover && o.client_max_window_bits == Some(None))
            );
        }
        // Every file the cases read is pinned by size and digest.
        let files = testdata_specs();
        assert_eq!(files.len(), 5);
        assert!(cases.iter().filter_map(|c| c.deflate.as_ref()).all(|d| files.contains_key(&d.file)));
    }

    #[test]
    fn utf8_rows_carry_their_payload() {
        let cases = all_cases();
        let case = cases.iter().find(|c| c.id == "6.5.1").expect("6.5.1");
        assert_eq!(case.expected["OK"], vec![Observed::Message(b"hello$world".to_vec(), false)]);
        let invalid = cases.iter().find(|c| c.id == "6.8.1").expect("6.8.1");
        assert_eq!(invalid.expected["OK"], vec![]);
        assert!(invalid.expected_close.closed_by_wrong_endpoint_is_fatal);
    }

    #[test]
    fn hex() {
        assert_eq!(decode_hex("00ff41"), Some(vec![0, 255, b'A']));
        assert_eq!(decode_hex("0"), None);
        assert_eq!(decode_hex("zz"), None);
    }
}
