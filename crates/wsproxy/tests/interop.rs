//! Interop with real peers that negotiate permessage-deflate: Python
//! `websockets` and Node `ws` clients and servers, client → wsproxy →
//! server, on 127.0.0.1. Every message the proxy logs (inflated) must equal
//! what was sent, byte for byte, in both directions, with no violation.
//!
//! The peers live in tests/interop (peer.py, peer.mjs); `ci/test.sh`
//! installs them and sets `WSTOOLKIT_REQUIRE_INTEROP=1`, which turns a
//! missing peer into a failure. Elsewhere a missing peer skips the test
//! with a note on stderr. `WSTOOLKIT_PYTHON` names the Python that has
//! `websockets` (default: tests/interop/.venv/bin/python) and
//! `WSTOOLKIT_NODE_MODULES` the node_modules with `ws` (default:
//! tests/interop/node_modules); both are found by `common`.

mod common;

use std::path::Path;
use std::process::{Child, Command, Stdio};

use common::Proxy;
use wsproxy::schema::{Event, Side};

/// The command that runs a peer of `kind`, if it is installed.
fn peer_command(kind: Kind) -> Option<Command> {
    match kind {
        Kind::Python => common::python_peer("peer.py"),
        Kind::Node => common::node_peer("peer.mjs"),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Python,
    Node,
}

/// A peer server; killed on drop, even when the test fails.
struct Server {
    child: Child,
    url: String,
}

impl Server {
    fn start(mut cmd: Command, deflate: &str) -> Server {
        let mut child = cmd
            .args(["server", "--deflate", deflate])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start the peer server");
        let stderr = child.stderr.take().expect("stderr");
        let (url, _) = common::announced_url(stderr, "the peer server");
        Server { child, url }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The message set, written to `dir` for the client peers: empty, 1 byte,
/// 10 KiB of repeating text (twice, so context takeover matters), 1 MiB of
/// random bytes, and fragmented text and binary messages.
fn write_messages(dir: &Path) -> Vec<(&'static str, Vec<u8>)> {
    std::fs::create_dir_all(dir).expect("messages dir");
    let repeating = "the quick brown fox jumps over the lazy dog — ünïcödé 🦀 ".repeat(160).into_bytes();
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let random: Vec<u8> = (0..1 << 20)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect();
    let set: Vec<(&'static str, Vec<u8>, u32)> = vec![
        ("text", Vec::new(), 1),
        ("binary", vec![0x42], 1),
        ("text", repeating[..10 << 10].to_vec(), 1),
        ("text", repeating[..10 << 10].to_vec(), 1),
        ("binary", random, 1),
        ("text", "fragmented text, ".repeat(300).into_bytes(), 3),
        ("binary", (0..=255u8).cycle().take(5000).collect(), 4),
    ];
    let mut listing = Vec::new();
    for (i, (kind, data, fragments)) in set.iter().enumerate() {
        let file = format!("{i:02}.{kind}");
        std::fs::write(dir.join(&file), data).expect("write message");
        listing.push(serde_json::json!({"file": file, "kind": kind, "fragments": fragments}));
    }
    std::fs::write(dir.join("messages.json"), serde_json::to_vec(&listing).expect("json")).expect("listing");
    set.into_iter().map(|(k, d, _)| (k, d)).collect()
}

fn decode_preview(preview: &str, encoding: &str) -> Vec<u8> {
    match encoding {
        "text" => preview.as_bytes().to_vec(),
        _ => (0..preview.len() / 2)
            .map(|i| u8::from_str_radix(&preview[2 * i..2 * i + 2], 16).expect("hex preview"))
            .collect(),
    }
}

/// Runs `client` → wsproxy → `server` with the message set; returns the
/// extensions the server agreed to.
fn scenario(client: Kind, server_kind: Kind, deflate: &str) -> Option<String> {
    let server = server_kind;
    let (Some(server_cmd), Some(mut client_cmd)) = (peer_command(server), peer_command(client)) else {
        assert!(!common::interop_required(), "{client:?} or {server:?} peer missing (WSTOOLKIT_REQUIRE_INTEROP=1)");
        eprintln!("skipped {client:?} → {server:?}: peer not installed (ci/test.sh installs them)");
        return None;
    };
    let dir =
        std::env::temp_dir().join(format!("wsproxy-interop-{}-{client:?}-{server:?}-{deflate}", std::process::id()));
    let sent = write_messages(&dir);
    let peer = Server::start(server_cmd, deflate);
    let mut proxy = Proxy::start(&["--upstream", &peer.url, "--max-preview", "all"]);
    let url = format!("ws://{}/", proxy.addr);
    let out = client_cmd
        .args(["client", &url, dir.to_str().expect("utf-8 temp dir"), "--deflate", deflate])
        .output()
        .expect("run the client peer");
    let _ = std::fs::remove_dir_all(&dir);
    let negotiated = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    assert!(out.status.success(), "{client:?} client failed: {}", String::from_utf8_lossy(&out.stderr));
    assert!(negotiated.starts_with("permessage-deflate"), "nothing negotiated: {negotiated:?}");

    let events = proxy.connection(1);
    let violations: Vec<_> = events.iter().filter(|e| matches!(e, Event::Violation { .. })).collect();
    assert!(violations.is_empty(), "{client:?} → {server:?} ({deflate}): {violations:#?}");
    for side in [Side::Client, Side::Upstream] {
        let logged: Vec<(String, Vec<u8>, bool, Option<u64>)> = events
            .iter()
            .filter_map(|e| match e {
                Event::Message { from, kind, preview, preview_encoding, compressed, decompressed_len, .. }
                    if *from == side =>
                {
                    Some((kind.clone(), decode_preview(preview, preview_encoding), *compressed, *decompressed_len))
                }
                _ => None,
            })
            .collect();
        assert_eq!(logged.len(), sent.len(), "{side:?}: {} messages logged", logged.len());
        for (i, ((kind, data), (logged_kind, logged_data, compressed, len))) in sent.iter().zip(&logged).enumerate() {
            assert_eq!(logged_kind, kind, "{side:?} message {i}");
            assert!(logged_data == data, "{side:?} message {i}: the log shows other bytes than were sent");
            if *compressed {
                assert_eq!(*len, Some(data.len() as u64), "{side:?} message {i}");
            }
        }
        // Non-empty messages travel compressed both ways.
        assert!(logged.iter().skip(1).all(|m| m.2), "{side:?}: a message was not compressed");
    }
    Some(negotiated)
}

#[test]
fn python_to_python_default_compression() {
    // websockets' defaults: context takeover, 12-bit windows.
    if let Some(n) = scenario(Kind::Python, Kind::Python, "default") {
        assert!(n.contains("server_max_window_bits=12"), "{n}");
    }
}

#[test]
fn python_to_python_no_context_takeover_small_windows() {
    if let Some(n) = scenario(Kind::Python, Kind::Python, "no-context") {
        for p in ["server_no_context_takeover", "client_no_context_takeover", "server_max_window_bits=9"] {
            assert!(n.contains(p), "{p} not in {n}");
        }
    }
}

#[test]
fn node_to_node_default_and_no_context_takeover() {
    scenario(Kind::Node, Kind::Node, "default");
    if let Some(n) = scenario(Kind::Node, Kind::Node, "no-context") {
        assert!(n.contains("server_no_context_takeover") && n.contains("client_no_context_takeover"), "{n}");
    }
}

#[test]
fn node_to_python_and_python_to_node() {
    scenario(Kind::Node, Kind::Python, "default");
    scenario(Kind::Python, Kind::Node, "default");
}
