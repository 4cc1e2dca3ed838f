//! `wsharness bench` through wsproxy with `--fault 'client,data:delay=200ms'`
//! (the proxy and wsecho in-process, the bench as the binary): the round
//! trips it measures grow by the delay. The bounds are robust, not timing
//! measurements: the median round trip is at least the delay longer than
//! the direct one's; with four messages in flight each is delayed once
//! (the delays do not add up), which is checked against one in flight
//! through the same delay in the same run.

use std::process::Command;
use std::time::Duration;

use tokio::net::TcpListener;

fn bench(url: &str, window: &str) -> serde_json::Value {
    let out = Command::new(env!("CARGO_BIN_EXE_wsharness"))
        .args(["bench", "--url", url, "--conns", "1", "--window", window, "--size", "16", "--messages", "8", "--json"])
        .output()
        .expect("run wsharness");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)))
}

/// Starts wsproxy in front of `upstream` with `faults`; returns its URL.
async fn proxy(upstream: std::net::SocketAddr, faults: &[&str]) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("ws://{}", listener.local_addr().expect("addr"));
    let upstream = wsproxy::Upstream::parse(&format!("ws://{upstream}")).expect("upstream");
    let config = wsproxy::Config {
        faults: faults.iter().map(|f| wsproxy::FaultRule::parse(f).expect("rule")).collect::<Vec<_>>().into(),
        ..wsproxy::Config::new(upstream)
    };
    let output = wsproxy::log::Output { format: wsproxy::Format::Json, writer: Box::new(std::io::sink()) };
    let (sink, _writer) = wsproxy::log::start(vec![output]);
    tokio::spawn(wsproxy::serve(listener, config, sink, std::future::pending()));
    url
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delay_on_client_messages_lengthens_the_round_trips() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let server = wsecho::spawn(listener, wsecho::Config::default()).expect("wsecho");
    let plain = proxy(server.local_addr(), &[]).await;
    let delayed = proxy(server.local_addr(), &["client,data:delay=200ms"]).await;
    let (plain, delayed, windowed) =
        tokio::task::spawn_blocking(move || (bench(&plain, "1"), bench(&delayed, "1"), bench(&delayed, "4")))
            .await
            .expect("join");
    let us = |r: &serde_json::Value, q: &str| r["rtt_us"][q].as_u64().unwrap_or_else(|| panic!("rtt_us.{q}: {r}"));
    let delay = Duration::from_millis(200).as_micros() as u64;
    assert_eq!(delayed["messages"], 8, "{delayed}");
    assert_eq!(delayed["error_count"], 0, "{delayed}");
    // The typical delayed round trip took the delay on top of the typical
    // direct one (less a millisecond of timer slack).
    let (p, d) = (us(&plain, "p50"), us(&delayed, "p50"));
    assert!(d >= p + delay - 1_000, "p50 {p} µs direct, {d} µs delayed\nplain {plain}\ndelayed {delayed}");
    // Four in flight: each is delayed once, not once per message ahead of
    // it. Added up, the typical one would wait two or three delays; compared
    // with one in flight through the same delay, in the same run (not with
    // a wall-time bound a loaded machine could break).
    assert_eq!(windowed["error_count"], 0, "{windowed}");
    let w = us(&windowed, "p50");
    assert!(w >= delay - 1_000, "p50 {w} µs with 4 in flight\n{windowed}");
    assert!(w < d + delay / 2, "p50 {w} µs with 4 in flight, {d} µs with 1\n{windowed}");
    server.shutdown().await;
}
