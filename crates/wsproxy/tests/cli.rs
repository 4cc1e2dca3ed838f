//! The wsproxy binary's command line and status lines: the `--listen` forms
//! and bind errors, durations and sizes, help and error texts the README
//! promises, `open` written at accept, per-connection errors on stderr and
//! in the totals, and the start-up probe of the upstream.

mod common;

use std::process::{Command, Output, Stdio};

use common::{Proxy, WAIT, announced_url, connect, read_to_end, upgrade_request, write};
use wsproxy::schema::Event;

fn wsproxy(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_wsproxy")).args(args).output().expect("runs")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Starts wsproxy with exactly `args` (no `--listen` added) and returns the
/// URL it announced; the process is killed when the guard drops.
fn announce(args: &[&str]) -> (Guard, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_wsproxy"))
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start wsproxy");
    let stderr = child.stderr.take().expect("stderr");
    let guard = Guard(child);
    let (url, _) = announced_url(stderr, "wsproxy");
    (guard, url)
}

struct Guard(std::process::Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A port nothing listens on (bound, then released).
fn closed_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}

#[test]
fn listen_takes_a_bare_port_localhost_and_ipv6() {
    for (listen, prefix) in [
        ("0", "ws://127.0.0.1:"),
        (":0", "ws://127.0.0.1:"),
        ("localhost:0", "ws://127.0.0.1:"),
        ("127.0.0.1:0", "ws://127.0.0.1:"),
    ] {
        let (_proxy, url) = announce(&["--listen", listen]);
        assert!(url.starts_with(prefix) && !url.ends_with(":0"), "--listen {listen}: {url}");
    }
    // IPv6 where the machine has it.
    if std::net::TcpListener::bind("[::1]:0").is_ok() {
        let (_proxy, url) = announce(&["--listen", "[::1]:0"]);
        assert!(url.starts_with("ws://[::1]:"), "{url}");
    }
}

#[test]
fn a_port_in_use_gets_advice() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = taken.local_addr().expect("addr").port().to_string();
    let out = wsproxy(&["--listen", &port]);
    assert_eq!(out.status.code(), Some(1));
    let text = stderr(&out);
    assert!(text.starts_with(&format!("wsproxy: error: --listen 127.0.0.1:{port}: cannot listen")), "{text}");
    assert!(text.contains("pick another port") && text.contains("--listen 127.0.0.1:0"), "{text}");
}

#[test]
fn help_and_errors_as_the_readme_shows_them() {
    let help = wsproxy(&["--help"]);
    assert_eq!(help.status.code(), Some(0));
    let help = String::from_utf8_lossy(&help.stdout);
    // Prose is wrapped to the help's width; compare it unwrapped.
    let unwrapped = help.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(unwrapped.contains("log stalls (how often a relay had to wait for the event writer"), "{help}");
    let examples = help.split("Examples:\n").nth(1).expect("--help ends with examples");
    // One example a line, none wrapped at clap's 100 columns.
    assert!(examples.lines().all(|l| l.trim_start().starts_with("wsproxy") && l.len() < 100), "{examples}");
    // Usage errors and our own errors: one prefix; the usage line does not
    // make optional flags look required.
    let out = wsproxy(&["--upstream", "ws://127.0.0.1:1", "--tls-cert", "c.pem"]);
    let text = stderr(&out);
    assert_eq!(out.status.code(), Some(2));
    assert!(text.starts_with("wsproxy: error: ") && text.contains("Usage: wsproxy [OPTIONS]\n"), "{text}");
    let out = wsproxy(&["--listen", "0", "--upstream", "http://127.0.0.1:8080/chat"]);
    let text = stderr(&out);
    assert_eq!(out.status.code(), Some(1));
    assert!(text.starts_with("wsproxy: error: --upstream http://127.0.0.1:8080/chat: "), "{text}");
    assert!(text.contains("try --upstream ws://127.0.0.1:8080/chat"), "{text}");
    assert_eq!(text.matches("expected").count(), 1, "{text}");
    for (flag, bad, says) in [
        ("--max-inflate", "lots", "expected a size such as 65536, 64KiB"),
        ("--handshake-timeout", "soon", "a number of seconds"),
        ("--listen", "localhost:http", "is not a port"),
    ] {
        let out = wsproxy(&[flag, bad]);
        let text = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{flag} {bad}");
        assert!(text.starts_with(&format!("wsproxy: error: invalid value '{bad}' for '{flag} ")), "{text}");
        assert!(text.contains(says), "{flag} {bad}: {text}");
    }
}

#[test]
fn durations_take_bare_seconds_and_sizes_take_units() {
    let (_proxy, url) = announce(&[
        "--listen",
        "0",
        "--handshake-timeout",
        "1",
        "--idle-timeout",
        "2.5",
        "--drain",
        "1",
        "--max-inflate",
        "1MiB",
    ]);
    assert!(url.starts_with("ws://127.0.0.1:"), "{url}");
}

#[test]
fn open_is_written_when_the_connection_is_accepted() {
    let mut proxy = Proxy::start(&[]);
    // A client that connects and sends nothing is shown at once…
    let silent = connect(proxy.addr);
    let open = proxy.wait_for("open", |r| r.conn == 1 && matches!(r.event, Event::Open { .. }));
    assert_eq!(open.conn, 1);
    // …and before anything a later connection logs.
    let mut second = connect(proxy.addr);
    write(&mut second, b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    let mut got = Vec::new();
    read_to_end(&mut second, &mut got);
    assert!(got.starts_with(b"HTTP/1.1 200"), "{}", String::from_utf8_lossy(&got));
    drop(second);
    proxy.connection(2);
    drop(silent);
    proxy.connection(1);
    let first_of = |conn: u64| proxy.seen.iter().position(|r| r.conn == conn).expect("seen");
    let end_of_2 = proxy.seen.iter().position(|r| r.conn == 2 && matches!(r.event, Event::End { .. }));
    assert!(first_of(1) < first_of(2) && Some(first_of(1)) < end_of_2);
}

#[test]
fn with_log_errors_reach_stderr_and_the_totals() {
    let dir = std::env::temp_dir().join(format!("wsproxy-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let log = dir.join("events.jsonl");
    let upstream = format!("ws://127.0.0.1:{}", closed_port());
    let proxy = Proxy::start(&["--upstream", &upstream, "--log", log.to_str().expect("utf-8 path")]);
    // The start-up probe's warning.
    let deadline = std::time::Instant::now() + WAIT;
    let mut lines = Vec::new();
    while !lines.iter().any(|l: &String| l.contains("does not accept connections")) {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        lines.push(proxy.stderr.recv_timeout(left).unwrap_or_else(|_| panic!("no probe warning: {lines:?}")));
    }
    // A burst of clients, each answered 502.
    const CLIENTS: usize = 20;
    for _ in 0..CLIENTS {
        let mut c = connect(proxy.addr);
        write(&mut c, &upgrade_request("x", "/"));
        let mut got = Vec::new();
        read_to_end(&mut c, &mut got);
        assert!(got.starts_with(b"HTTP/1.1 502 Bad Gateway\r\n"));
    }
    let (status, rest) = proxy.terminate();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(status.success(), "{status}");
    lines.extend(rest);
    let probe = lines.iter().find(|l| l.contains("does not accept connections")).expect("probe warning");
    assert!(
        probe.starts_with("wsproxy: warning: upstream 127.0.0.1:")
            && probe.ends_with("running anyway: clients get 502 Bad Gateway until it does"),
        "{probe}"
    );
    let shown = lines.iter().filter(|l| l.starts_with("wsproxy: connection ")).count();
    assert!(lines.iter().any(|l| l.starts_with("wsproxy: connection 1: cannot connect to upstream")), "{lines:#?}");
    assert!((1..CLIENTS).contains(&shown), "rate-limited: {shown} of {CLIENTS} shown: {lines:#?}");
    let totals = lines.last().expect("totals");
    assert!(totals.starts_with(&format!("wsproxy: {CLIENTS} connections,")), "{totals}");
    assert!(totals.contains(&format!(", {CLIENTS} errors,")), "{totals}");
}

/// The bind error the README's Install section shows, word for word (the
/// OS's wording of the errno is Linux's).
#[cfg(target_os = "linux")]
#[test]
fn the_readme_shows_the_bind_error_as_it_is() {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md")).expect("README");
    let shown = readme.lines().find(|l| l.starts_with("wsproxy: error: --listen 127.0.0.1:9001: ")).expect("in README");
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = taken.local_addr().expect("addr").port().to_string();
    let out = wsproxy(&["--listen", &port]);
    assert_eq!(stderr(&out).trim_end(), shown.replace("9001", &port));
}

/// `--log FILE --tee json`: the same events, in the same order, in the file
/// and on stdout.
#[test]
fn tee_writes_the_same_events_to_the_file_and_stdout() {
    let dir = std::env::temp_dir().join(format!("wsproxy-tee-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let file = dir.join("events.jsonl");
    let mut proxy = common::Proxy::start(&["--log", file.to_str().expect("utf-8"), "--tee", "json"]);
    let mut c = common::connect(proxy.addr);
    common::write(&mut c, &common::upgrade_request("x", "/"));
    let mut got = Vec::new();
    common::read_head(&mut c, &mut got);
    common::write(&mut c, &common::frame(wsproto::OpCode::Text, true, Some([1, 2, 3, 4]), b"tee"));
    common::write(&mut c, &common::frame(wsproto::OpCode::Close, true, Some([1, 2, 3, 4]), &[3, 232]));
    common::read_to_end(&mut c, &mut got);
    drop(c);
    let on_stdout = proxy.connection(1);
    let (status, _) = proxy.terminate();
    assert!(status.success());
    let in_file: Vec<wsproxy::schema::Event> = std::fs::read_to_string(&file)
        .expect("the log file")
        .lines()
        .map(|l| wsproxy::schema::parse_strict(l).expect("strict").event)
        .collect();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(on_stdout.iter().any(|e| matches!(e, wsproxy::schema::Event::Message { preview, .. } if preview == "tee")));
    assert_eq!(in_file, on_stdout);
}

/// A `--fault` rule that does not parse is refused at start, with the
/// reason; good ones start the proxy.
#[test]
fn a_bad_fault_rule_is_refused_with_the_reason() {
    for (rule, why) in [
        ("upstream,pongs:swallow", "unknown selector `pongs`"),
        ("upstream:explode", "unknown action `explode`"),
        ("text:close=1005", "not a code an endpoint may send"),
        ("upstream,pong", "WHERE:ACTION"),
    ] {
        let out = wsproxy(&["--listen", "0", "--fault", rule]);
        let text = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{rule}: {text}");
        assert!(
            text.starts_with("wsproxy: error: ") && text.contains("--fault") && text.contains(why),
            "{rule}: {text}"
        );
    }
    let (_proxy, url) = announce(&["--listen", "0", "--fault", "upstream,pong:swallow", "--fault", "p=0.5:drop"]);
    assert!(url.starts_with("ws://127.0.0.1:"), "{url}");
}

/// `--format none`: the traffic is relayed and inspected (the totals count
/// the frames and the violation) and no event is written; with `--log` it
/// is refused, and `read --format none` needs `--har`.
#[test]
fn format_none_relays_and_counts_but_writes_no_events() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_wsproxy"))
        .args(["--listen", "127.0.0.1:0", "--format", "none", "--no-ui"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start wsproxy");
    let stdout = child.stdout.take().expect("stdout");
    let (url, stderr_lines) = announced_url(child.stderr.take().expect("stderr"), "wsproxy");
    let guard = Guard(child);
    let addr: std::net::SocketAddr = url.trim_start_matches("ws://").parse().expect("an address");
    let mut c = connect(addr);
    write(&mut c, &upgrade_request("x", "/"));
    let mut got = Vec::new();
    common::read_head(&mut c, &mut got);
    write(&mut c, &common::frame(wsproto::OpCode::Text, true, Some([1, 2, 3, 4]), b"none"));
    // RSV2 with no extension that defines it: a violation (RFC 6455 §5.2).
    let mut bad = common::frame(wsproto::OpCode::Text, true, Some([1, 2, 3, 4]), b"bad");
    bad[0] |= 0x20;
    write(&mut c, &bad);
    write(&mut c, &common::frame(wsproto::OpCode::Close, true, Some([1, 2, 3, 4]), &[3, 232]));
    read_to_end(&mut c, &mut got);
    drop(c);
    // SIGTERM: the proxy drains (the connection has ended: read_to_end
    // saw the echo's close) and prints its totals.
    let mut guard = guard;
    let _ = Command::new("kill").args(["-TERM", &guard.0.id().to_string()]).status();
    let status = guard.0.wait().expect("wait");
    assert!(status.success(), "{status}");
    let mut events = String::new();
    std::io::Read::read_to_string(&mut { stdout }, &mut events).expect("stdout");
    assert_eq!(events, "", "no event on stdout");
    // Every line to the end of stderr (the reader thread ends at EOF): the
    // process has exited, but its last lines may not have been read yet.
    let status_lines: Vec<String> =
        std::iter::from_fn(|| stderr_lines.recv_timeout(std::time::Duration::from_secs(10)).ok()).collect();
    let totals = status_lines.iter().find(|l| l.contains(" connection")).unwrap_or_else(|| panic!("{status_lines:?}"));
    assert!(totals.contains("1 connection, ") && totals.contains(" 1 violation,"), "{totals}");
    assert!(String::from_utf8_lossy(&got).contains("none"), "the echo came back through the proxy");

    let out = wsproxy(&["--listen", "0", "--format", "none", "--log", "x.jsonl"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("--format none writes no events"), "{}", stderr(&out));
    let out = wsproxy(&["read", "nothing.pcapng", "--format", "none"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("give --har FILE"), "{}", stderr(&out));
}
