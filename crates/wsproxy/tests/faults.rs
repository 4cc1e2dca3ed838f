//! `--fault` end to end, with real peers: Python `websockets` and Node `ws`
//! clients → wsproxy (its embedded echo server upstream) on 127.0.0.1. Each
//! test is one of the scenarios; the client's own account of what
//! happened and the proxy's log are both checked.
//!
//! The peers are tests/interop/fault_peer.py and fault_peer.mjs. Python is
//! found as in tests/interop.rs (`WSTOOLKIT_PYTHON`, default
//! tests/interop/.venv/bin/python); Node's `ws` in tests/interop/node_modules
//! or `WSTOOLKIT_NODE_MODULES`. A missing peer skips the test with a note,
//! or fails it under `WSTOOLKIT_REQUIRE_INTEROP=1` (ci/test.sh).

mod common;

use std::process::Command;

use common::Proxy;
use wsproxy::schema::{Event, Opcode, Side};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Peer {
    Python,
    Node,
}

/// The command that runs the fault peer of `kind`, if it is installed.
fn peer(kind: Peer) -> Option<Command> {
    let found = match kind {
        Peer::Python => common::python_peer("fault_peer.py"),
        Peer::Node => common::node_peer("fault_peer.mjs"),
    };
    if found.is_none() {
        assert!(!common::interop_required(), "the {kind:?} peer is missing (WSTOOLKIT_REQUIRE_INTEROP=1)");
        eprintln!("skipped with {kind:?}: peer not installed (ci/test.sh installs it)");
    }
    found
}

/// What a client peer says happened.
#[derive(Debug)]
struct Outcome {
    received: Vec<String>,
    closed: serde_json::Value,
}

/// Runs the peer (`args` after its mode) against the proxy; the peers bound
/// every wait themselves.
fn run(mut cmd: Command, args: &[&str]) -> Outcome {
    let out = cmd.args(args).output().expect("run the peer");
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!("{e}: {}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
    });
    let received =
        report["received"].as_array().map(|a| a.iter().filter_map(|v| v.as_str().map(str::to_owned)).collect());
    Outcome { received: received.unwrap_or_default(), closed: report["closed"].clone() }
}

fn messages(n: usize) -> Vec<String> {
    (1..=n).map(|i| format!("message {i}")).collect()
}

fn faults(events: &[Event]) -> Vec<(Side, String, Opcode)> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Fault { from, action, opcode, .. } => Some((*from, action.clone(), opcode.clone())),
            _ => None,
        })
        .collect()
}

fn closes(events: &[Event]) -> Vec<(Side, Option<u16>, String)> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Close { from, code, reason, .. } => Some((*from, *code, reason.clone())),
            _ => None,
        })
        .collect()
}

fn end_reason(events: &[Event]) -> String {
    match events.last() {
        Some(Event::End { reason, .. }) => reason.clone(),
        other => panic!("the last event is not `end`: {other:?}"),
    }
}

/// The server's pongs are swallowed: the Python client's keepalive gives up
/// and closes with 1011; the log shows the swallowed pongs and that close.
#[test]
fn swallowed_pongs_make_the_python_keepalive_close_with_1011() {
    let Some(cmd) = peer(Peer::Python) else { return };
    let mut proxy = Proxy::start(&["--fault", "upstream,pong:swallow"]);
    let url = format!("ws://{}/", proxy.addr);
    let outcome = run(cmd, &["keepalive", &url]);
    assert_eq!(outcome.closed["sent_code"], 1011, "{outcome:?}");
    let events = proxy.connection(1);
    let swallowed = faults(&events);
    assert!(!swallowed.is_empty(), "{events:#?}");
    assert!(
        swallowed.iter().all(|(from, action, op)| *from == Side::Upstream
            && action == "swallow"
            && *op == Opcode::Name("pong".into())),
        "{swallowed:?}"
    );
    let closes = closes(&events);
    assert!(closes.iter().any(|(from, code, _)| *from == Side::Client && *code == Some(1011)), "{closes:?}");
    // No pong reached the client.
    assert!(!events.iter().any(
        |e| matches!(e, Event::Frame { from: Side::Upstream, opcode, .. } if *opcode == Opcode::Name("pong".into()))
    ));
}

/// Every server text message split into 3 frames: both clients reassemble
/// them unchanged, and the log shows 3 fragments each.
#[test]
fn fragmented_messages_reach_both_clients_whole() {
    for kind in [Peer::Python, Peer::Node] {
        let Some(cmd) = peer(kind) else { continue };
        let mut proxy = Proxy::start(&["--fault", "upstream,text:fragment=3"]);
        let url = format!("ws://{}/", proxy.addr);
        let outcome = run(cmd, &["echo", &url, "4"]);
        assert_eq!(outcome.received, messages(4), "{kind:?}: {outcome:?}");
        let events = proxy.connection(1);
        let fragments: Vec<u32> = events
            .iter()
            .filter_map(|e| match e {
                Event::Message { from: Side::Upstream, fragments, .. } => Some(*fragments),
                _ => None,
            })
            .collect();
        assert_eq!(fragments, [3, 3, 3, 3], "{kind:?}");
        assert_eq!(faults(&events).len(), 4, "{kind:?}");
        assert!(!events.iter().any(|e| matches!(e, Event::Violation { .. })), "{kind:?}: {events:#?}");
    }
}

/// `close=1012` after the server's first message: both clients see 1012
/// and the reason; the log shows the closes sent both ways and the end.
#[test]
fn a_close_rule_reaches_both_clients_with_its_code_and_reason() {
    for kind in [Peer::Python, Peer::Node] {
        let Some(cmd) = peer(kind) else { continue };
        let mut proxy = Proxy::start(&["--fault", "upstream,msg=1:close=1012,restarting"]);
        let url = format!("ws://{}/", proxy.addr);
        let outcome = run(cmd, &["echo", &url, "3"]);
        assert_eq!(outcome.received, messages(1), "{kind:?}: {outcome:?}");
        assert_eq!(outcome.closed["close_code"], 1012, "{kind:?}: {outcome:?}");
        assert_eq!(outcome.closed["rcvd_reason"], "restarting", "{kind:?}: {outcome:?}");
        let events = proxy.connection(1);
        let closes = closes(&events);
        for side in [Side::Upstream, Side::Client] {
            assert!(closes.contains(&(side, Some(1012), "restarting".into())), "{kind:?}: {closes:?}");
        }
        assert_eq!(end_reason(&events), "fault");
    }
}

/// RSV2 set on the server's second message: the client fails the
/// connection with 1002, and the proxy reports the violation as injected.
#[test]
fn a_corrupted_frame_fails_the_client_with_1002_and_is_reported_injected() {
    for kind in [Peer::Python, Peer::Node] {
        let Some(cmd) = peer(kind) else { continue };
        let mut proxy = Proxy::start(&["--fault", "upstream,text,msg=2:corrupt=rsv2"]);
        let url = format!("ws://{}/", proxy.addr);
        let outcome = run(cmd, &["echo", &url, "3"]);
        assert_eq!(outcome.received, messages(1), "{kind:?}: {outcome:?}");
        if kind == Peer::Python {
            assert_eq!(outcome.closed["sent_code"], 1002, "{outcome:?}");
        }
        let events = proxy.connection(1);
        let closes = closes(&events);
        assert!(
            closes.iter().any(|(from, code, _)| *from == Side::Client && *code == Some(1002)),
            "{kind:?}: {closes:?}"
        );
        let violations: Vec<(Side, bool)> = events
            .iter()
            .filter_map(|e| match e {
                Event::Violation { from, injected, .. } => Some((*from, *injected)),
                _ => None,
            })
            .collect();
        assert_eq!(violations, [(Side::Upstream, true)], "{kind:?}: {events:#?}");
    }
}

/// A reset after the server's 5th message: the client has 5 echoes, then
/// an abnormal closure (1006, no close frame).
#[test]
fn a_reset_after_the_fifth_message_is_an_abnormal_closure() {
    for kind in [Peer::Python, Peer::Node] {
        let Some(cmd) = peer(kind) else { continue };
        let mut proxy = Proxy::start(&["--fault", "upstream,msg=5:reset"]);
        let url = format!("ws://{}/", proxy.addr);
        let outcome = run(cmd, &["echo", &url, "8"]);
        assert_eq!(outcome.received, messages(5), "{kind:?}: {outcome:?}");
        assert_eq!(outcome.closed["close_code"], 1006, "{kind:?}: {outcome:?}");
        let events = proxy.connection(1);
        assert!(closes(&events).is_empty(), "{kind:?}: no close frame either way");
        assert_eq!(faults(&events).len(), 1, "{kind:?}");
        assert_eq!(end_reason(&events), "fault");
    }
}

/// The other actions with a Python client: `duplicate` (message 1 comes
/// twice, so every later echo is one behind), `truncate` (message 2 cut
/// mid-frame: 1006), `throttle` (three echoes at 20 bytes/s take over a
/// second).
#[test]
fn duplicate_truncate_and_throttle_with_a_python_client() {
    if peer(Peer::Python).is_none() {
        return;
    }
    let python = || peer(Peer::Python).expect("found above");

    let mut proxy = Proxy::start(&["--fault", "upstream,msg=1:duplicate"]);
    let url = format!("ws://{}/", proxy.addr);
    let outcome = run(python(), &["echo", &url, "3"]);
    assert_eq!(outcome.received, ["message 1", "message 1", "message 2"], "{outcome:?}");
    let events = proxy.connection(1);
    assert_eq!(faults(&events).len(), 1);

    let mut proxy = Proxy::start(&["--fault", "upstream,msg=2:truncate"]);
    let url = format!("ws://{}/", proxy.addr);
    let outcome = run(python(), &["echo", &url, "3"]);
    assert_eq!(outcome.received, messages(1), "{outcome:?}");
    assert_eq!(outcome.closed["close_code"], 1006, "{outcome:?}");
    assert_eq!(end_reason(&proxy.connection(1)), "fault");

    let mut proxy = Proxy::start(&["--fault", "upstream,text:throttle=20/s"]);
    let url = format!("ws://{}/", proxy.addr);
    let started = std::time::Instant::now();
    let outcome = run(python(), &["echo", &url, "3"]);
    assert_eq!(outcome.received, messages(3), "{outcome:?}");
    // Each echo is an 11-byte frame: about half a second at 20 bytes/s.
    assert!(started.elapsed() >= std::time::Duration::from_millis(1_200), "{:?}", started.elapsed());
    assert_eq!(faults(&proxy.connection(1)).len(), 3);
}

/// `throttle=10/s` on a 2000-byte server message (200 s to relay) with
/// `--idle-timeout 1s`: the throttled write is a wait like any other, so
/// the idle timeout ends the connection long before the message is
/// through (before, the write could not be cut short). No peer needed.
#[test]
fn a_throttled_write_ends_at_the_idle_timeout() {
    use std::io::Read;
    let upstream = common::RawUpstream::start(|mut s| {
        let mut got = Vec::new();
        common::read_head(&mut s, &mut got);
        common::write(&mut s, &common::upgrade_response());
        common::write(&mut s, &common::frame(wsproto::OpCode::Text, true, None, &[b'x'; 2000]));
        // Hold the connection open; the proxy ends it.
        let _ = s.read(&mut [0u8; 64]);
    });
    let mut proxy = Proxy::start(&[
        "--upstream",
        &upstream.url(),
        "--fault",
        "upstream,text:throttle=10/s",
        "--idle-timeout",
        "1s",
    ]);
    let started = std::time::Instant::now();
    let mut c = common::connect(proxy.addr);
    common::write(&mut c, &common::upgrade_request("x", "/"));
    let mut got = Vec::new();
    let head = common::read_head(&mut c, &mut got);
    let events = proxy.connection(1);
    let elapsed = started.elapsed();
    assert_eq!(end_reason(&events), "timeout", "{events:#?}");
    // 2000 bytes at 10 bytes/s would take 200 s; the idle timeout is 1 s.
    assert!(elapsed < std::time::Duration::from_secs(30), "{elapsed:?}");
    let mut rest = Vec::new();
    let _ = c.read_to_end(&mut rest);
    assert!(got.len() - head + rest.len() < 2000, "cut short: not all of the message was relayed");
    upstream.join();
}
