//! `wsharness bench` against a correct echo server and against deliberately
//! wrong ones: every echo is checked, and any error fails the run.

use std::process::Command;

use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::Message;

/// How a wrong server breaks the echo of every `every`-th message.
#[derive(Clone, Copy)]
enum Fault {
    FlipByte,
    Drop,
    Duplicate,
    TextForBinary,
    /// The message comes back as two messages (as a proxy with a small
    /// buffer might send it).
    Split,
}

/// An echo server on 127.0.0.1 port 0 that breaks some echoes.
async fn wrong_server(fault: Fault, every: usize) -> (String, tokio::task::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("ws://{}", listener.local_addr().expect("addr"));
    let task = tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let Ok(mut ws) = tokio_tungstenite::accept_async(stream).await else { return };
                let mut n = 0usize;
                while let Some(Ok(msg)) = ws.next().await {
                    let Message::Binary(data) = msg else { continue };
                    n += 1;
                    let faulty = n.is_multiple_of(every);
                    let reply = match (fault, faulty) {
                        (_, false) => vec![Message::Binary(data)],
                        (Fault::FlipByte, true) => {
                            let mut v = data.to_vec();
                            let last = v.len() - 1;
                            v[last] ^= 0x40;
                            vec![Message::Binary(v.into())]
                        }
                        (Fault::Drop, true) => vec![],
                        (Fault::Duplicate, true) => vec![Message::Binary(data.clone()), Message::Binary(data)],
                        (Fault::TextForBinary, true) => {
                            vec![Message::text(String::from_utf8_lossy(&data).into_owned())]
                        }
                        (Fault::Split, true) => {
                            let (a, b) = data.split_at(data.len() / 2);
                            vec![Message::binary(a.to_vec()), Message::binary(b.to_vec())]
                        }
                    };
                    for m in reply {
                        if ws.send(m).await.is_err() {
                            return;
                        }
                    }
                }
            });
        }
    });
    (url, task)
}

fn bench(url: &str, extra: &[&str]) -> (Option<i32>, serde_json::Value) {
    let out = Command::new(env!("CARGO_BIN_EXE_wsharness"))
        .args(["bench", "--url", url, "--conns", "2", "--window", "4", "--size", "64", "--messages", "200", "--json"])
        .args(extra)
        .output()
        .expect("run wsharness");
    let report = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!("{e}: {}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
    });
    (out.status.code(), report)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_correct_echo_passes() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let server = wsecho::spawn(listener, wsecho::Config::default()).expect("wsecho");
    let url = format!("ws://{}", server.local_addr());
    let (code, report) = tokio::task::spawn_blocking(move || bench(&url, &[])).await.expect("join");
    assert_eq!(code, Some(0), "{report}");
    assert_eq!(report["error_count"], 0);
    assert_eq!(report["messages"], 400, "2 connections × 200 messages, all echoed");
    assert!(report["rtt_us"]["p50"].as_u64().is_some_and(|p| p > 0));
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_echoes_are_caught_and_fail_the_run() {
    let cases = [
        (Fault::FlipByte, "mismatched"),
        (Fault::Drop, "lost"),
        (Fault::Duplicate, "duplicated_or_reordered"),
        (Fault::TextForBinary, "wrong_kind"),
        (Fault::Split, "mismatched"),
    ];
    for (fault, field) in cases {
        let (url, task) = wrong_server(fault, 10).await;
        let (code, report) = tokio::task::spawn_blocking(move || bench(&url, &[])).await.expect("join");
        task.abort();
        assert_eq!(code, Some(1), "{field}: {report}");
        let count = report["errors"][field].as_u64().unwrap_or(0);
        assert!(count >= 20, "{field}: expected about 40 errors (every 10th of 400), got {count}: {report}");
        // A corrupt echo never turns into an absurd count of lost messages.
        let lost = report["errors"]["lost"].as_u64().unwrap_or(u64::MAX);
        assert!(lost <= 400, "{field}: lost {lost}: {report}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sizes_take_units_and_durations_bare_seconds() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let server = wsecho::spawn(listener, wsecho::Config::default()).expect("wsecho");
    let url = format!("ws://{}", server.local_addr());
    let out = tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_wsharness"))
            .args(["bench", "--url", &url, "--size", "1KiB", "--duration", "0.2", "--warmup", "0", "--json"])
            .output()
            .expect("run wsharness")
    })
    .await
    .expect("join");
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("a JSON report");
    assert_eq!(out.status.code(), Some(0), "{report}");
    assert_eq!(report["size"], 1024, "{report}");
    server.shutdown().await;
}

#[test]
fn usage_errors_have_the_binary_prefix_and_help_ends_with_examples() {
    let out = Command::new(env!("CARGO_BIN_EXE_wsharness")).args(["bench", "--size", "big"]).output().expect("runs");
    let text = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2));
    assert!(text.starts_with("wsharness: error: invalid value 'big' for '--size <SIZE>'"), "{text}");
    let help = Command::new(env!("CARGO_BIN_EXE_wsharness")).arg("--help").output().expect("runs");
    let help = String::from_utf8_lossy(&help.stdout);
    let examples = help.split("Examples:\n").nth(1).expect("--help ends with examples");
    assert!(examples.lines().all(|l| l.trim_start().starts_with("wsharness ")), "{examples}");
    let help = Command::new(env!("CARGO_BIN_EXE_wsharness")).args(["bench", "--help"]).output().expect("runs");
    let help = String::from_utf8_lossy(&help.stdout);
    let examples = help.split("Examples:\n").nth(1).expect("bench --help ends with examples");
    assert!(examples.lines().all(|l| l.trim_start().starts_with("wsharness bench ")), "{examples}");
    for flag in ["--rate", "--connect-rate", "--header", "--subprotocol", "--origin", "--ca", "--insecure", "--verbose"]
    {
        assert!(help.contains(flag), "bench --help lists {flag}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_upgrade_is_reported_with_the_reason_the_body_gives() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("ws://{}", listener.local_addr().expect("addr"));
    let server = tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            let mut buf = [0u8; 4096];
            let _ = s.read(&mut buf).await;
            let body = "wsproxy: cannot connect to upstream 127.0.0.1:1\n";
            let answer = format!("HTTP/1.1 502 Bad Gateway\r\nContent-Length: {}\r\n\r\n{body}", body.len());
            let _ = s.write_all(answer.as_bytes()).await;
        }
    });
    let out = tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_wsharness")).args(["bench", "--url", &url, "-n", "1"]).output().expect("runs")
    })
    .await
    .expect("join");
    server.abort();
    let text = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{text}");
    assert!(text.contains("refused the upgrade: 502 Bad Gateway: wsproxy: cannot connect to upstream"), "{text}");
}

/// A rate so small that 1/rate is infinite (`--rate 1e-320`) once made
/// `Duration::from_secs_f64` panic; now any rate under one every 100 s is
/// a usage error, before anything connects.
#[test]
fn tiny_rates_are_usage_errors() {
    for (flag, value) in [("--rate", "1e-320"), ("--connect-rate", "1e-320"), ("--rate", "0.001"), ("--rate", "0")] {
        let out = Command::new(env!("CARGO_BIN_EXE_wsharness"))
            .args(["bench", "--url", "ws://127.0.0.1:1", flag, value])
            .output()
            .expect("runs");
        let text = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{flag} {value}: {text}");
        assert!(text.contains("a rate is at least 0.01 per second"), "{flag} {value}: {text}");
        assert!(!text.contains("panicked"), "{text}");
    }
}

/// `--window` does nothing in open loop: giving it with `--rate` says so.
#[test]
fn window_with_rate_prints_a_note() {
    let out = Command::new(env!("CARGO_BIN_EXE_wsharness"))
        .args(["bench", "--url", "ws://127.0.0.1:1", "--rate", "10", "--window", "4", "--duration", "1"])
        .output()
        .expect("runs");
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(text.contains("note: --window is ignored with --rate"), "{text}");
    let out = Command::new(env!("CARGO_BIN_EXE_wsharness"))
        .args(["bench", "--url", "ws://127.0.0.1:1", "--rate", "10", "--duration", "1"])
        .output()
        .expect("runs");
    assert!(!String::from_utf8_lossy(&out.stderr).contains("--window"), "no note without --window");
}
