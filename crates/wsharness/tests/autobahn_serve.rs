//! `wsharness autobahn serve` and `autobahn client`, black box: the built
//! binary on 127.0.0.1 port 0, driven by tokio-tungstenite (a client that
//! passes) and by a raw client broken on purpose (one that does not mask,
//! one that echoes text without validating it).

mod common;

use common::autobahn_venv;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

use futures_util::{SinkExt, StreamExt};
use serde_json::Value;

/// A running `autobahn serve`, killed on drop.
struct Served {
    child: Child,
    /// `ws://127.0.0.1:PORT`.
    url: String,
    out: PathBuf,
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("wsharness-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

/// Starts the fuzzingserver for `cases` and waits for its `listening on` line.
fn serve(name: &str, cases: &str) -> Served {
    serve_with(name, cases, &[], Stdio::null())
}

fn serve_with(name: &str, cases: &str, args: &[&str], stdout: Stdio) -> Served {
    let out = temp_dir(name);
    let mut child = Command::new(env!("CARGO_BIN_EXE_wsharness"))
        .args(["autobahn", "serve", "--listen", ":0", "--quiet", "--cases", cases, "--out"])
        .arg(&out)
        .args(args)
        .stdout(stdout)
        .stderr(Stdio::piped())
        .spawn()
        .expect("starts");
    let mut lines = BufReader::new(child.stderr.take().expect("stderr")).lines();
    let url = loop {
        let line = lines.next().expect("serve printed its address").expect("utf-8");
        if let Some(addr) = line.strip_prefix("listening on ") {
            break addr.to_owned();
        }
    };
    // Keep reading stderr so that the server never blocks on it.
    std::thread::spawn(move || lines.for_each(drop));
    Served { child, url, out }
}

/// The text message an endpoint answers with.
async fn ask(url: &str) -> String {
    let (mut ws, _) = tokio_tungstenite::connect_async(url).await.expect("connects");
    let msg = ws.next().await.expect("a message").expect("valid");
    // Read on to the server's close.
    while let Some(Ok(_)) = ws.next().await {}
    msg.into_text().expect("text").to_string()
}

/// A client that echoes data messages until the connection ends (the
/// driver's `runCase` loop).
async fn echo_case(url: &str) {
    let (mut ws, _) = tokio_tungstenite::connect_async(url).await.expect("connects");
    while let Some(Ok(msg)) = ws.next().await {
        if (msg.is_text() || msg.is_binary()) && ws.send(msg).await.is_err() {
            break;
        }
    }
}

fn read_json(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).expect("JSON")
}

fn status_of(url: &str, case: usize, agent: &str) -> String {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("tokio");
    let status = runtime.block_on(ask(&format!("{url}/getCaseStatus?case={case}&agent={agent}")));
    let value: Value = serde_json::from_str(&status).expect("JSON status");
    value["behavior"].as_str().expect("behavior").to_owned()
}

#[test]
fn a_conforming_client_passes_and_gets_wstests_reports() {
    let served = serve("serve-ok", "1.1.1,2.1,5.1,6.4.1,7.1.1,12.1.1");
    let url = served.url.clone();
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("tokio");
    runtime.block_on(async {
        assert_eq!(ask(&format!("{url}/getCaseCount")).await, "6");
        let info: Value = serde_json::from_str(&ask(&format!("{url}/getCaseInfo?case=4")).await).expect("JSON");
        assert_eq!(info["id"], "6.4.1");
        assert!(info["description"].as_str().is_some_and(|d| d.starts_with("Send invalid UTF-8")), "{info}");
        for case in 1..=6 {
            echo_case(&format!("{url}/runCase?case={case}&agent=tt")).await;
        }
        // By id, as wstest accepts it: the same case again, recorded once.
        echo_case(&format!("{url}/runCase?casetuple=1.1.1&agent=tt")).await;
    });
    let behaviors: Vec<String> = (1..=6).map(|case| status_of(&url, case, "tt")).collect();
    assert_eq!(behaviors[..3], ["OK", "OK", "OK"], "1.1.1, 2.1, 5.1");
    // 6.4.1: tungstenite fails the connection once the whole frame is in.
    assert!(["OK", "NON-STRICT"].contains(&behaviors[3].as_str()), "6.4.1: {}", behaviors[3]);
    assert_eq!(behaviors[4..], ["OK", "UNIMPLEMENTED"], "7.1.1, 12.1.1 (no permessage-deflate)");
    runtime.block_on(async {
        let (mut ws, _) =
            tokio_tungstenite::connect_async(format!("{url}/updateReports?agent=tt")).await.expect("connects");
        while let Some(Ok(_)) = ws.next().await {}
    });
    let index = read_json(&served.out.join("index.json"));
    let cases = index["tt"].as_object().expect("the agent's cases");
    assert_eq!(cases.len(), 6, "{index}");
    for (id, entry) in cases {
        for field in ["behavior", "behaviorClose", "duration", "remoteCloseCode", "reportfile"] {
            assert!(entry.get(field).is_some(), "{id}: no {field}");
        }
        let report = read_json(&served.out.join(entry["reportfile"].as_str().expect("file name")));
        assert_eq!(report["id"], id.as_str());
        assert_eq!(report["isServer"], true, "{id}");
        assert_eq!(report["agent"], "tt");
        assert_eq!(report["behavior"], entry["behavior"]);
    }
    let report = read_json(&served.out.join("tt_case_1_1_1.json"));
    assert_eq!((report["case"].as_u64(), report["behaviorClose"].as_str()), (Some(1), Some("OK")));
    assert!(report["httpResponse"].as_str().is_some_and(|r| r.starts_with("HTTP/1.1 101 Switching Protocols\r\n")));
    assert!(report["httpRequest"].as_str().is_some_and(|r| r.starts_with("GET /runCase?casetuple=1.1.1&agent=tt")));
    // What the client sent was masked; what the server sent was not.
    let wirelog = report["wirelog"].as_array().expect("wire log");
    let rx: Vec<&Value> = wirelog.iter().filter(|e| e[0] == "RF").collect();
    assert!(!rx.is_empty() && rx.iter().all(|e| e[5] == true), "{wirelog:?}");
    assert!(wirelog.iter().filter(|e| e[0] == "TF").all(|e| e[5].is_null()), "{wirelog:?}");
    let check = Command::new(env!("CARGO_BIN_EXE_wsharness"))
        .args(["autobahn", "check"])
        .arg(&served.out)
        .output()
        .expect("runs");
    assert_eq!(check.status.code(), Some(0), "{}", String::from_utf8_lossy(&check.stdout));
}

/// One frame as the raw client sends it.
fn frame(opcode: u8, payload: &[u8], masked: bool) -> Vec<u8> {
    assert!(payload.len() < 126, "small frames only");
    let mut out = vec![0x80 | opcode, payload.len() as u8 | if masked { 0x80 } else { 0 }];
    let key = [0x12, 0x34, 0x56, 0x78];
    if masked {
        out.extend_from_slice(&key);
        out.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
    } else {
        out.extend_from_slice(payload);
    }
    out
}

/// A broken client: a raw handshake, then every data frame of the server
/// echoed as is (no UTF-8 check), masked or not, and a close answered.
fn raw_echo_case(url: &str, path: &str, masked: bool) {
    let addr = url.strip_prefix("ws://").expect("ws URL");
    let mut s = TcpStream::connect(addr).expect("connects");
    s.set_read_timeout(Some(std::time::Duration::from_secs(10))).expect("timeout");
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    .expect("request");
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let n = s.read(&mut chunk).expect("response");
        assert!(n > 0, "closed before the response");
        buf.extend_from_slice(&chunk[..n]);
    };
    assert!(buf.starts_with(b"HTTP/1.1 101"), "{}", String::from_utf8_lossy(&buf));
    buf.drain(..head_end);
    loop {
        // The server's frames are small and unmasked.
        while buf.len() >= 2 && buf.len() >= 2 + usize::from(buf[1] & 0x7f) {
            let (opcode, len) = (buf[0] & 0x0f, usize::from(buf[1] & 0x7f));
            let payload: Vec<u8> = buf.drain(..2 + len).skip(2).collect();
            let reply = match opcode {
                1 | 2 => frame(opcode, &payload, masked),
                8 => frame(8, &payload[..payload.len().min(2)], masked),
                9 => frame(10, &payload, masked),
                _ => continue,
            };
            if s.write_all(&reply).is_err() || opcode == 8 {
                return;
            }
        }
        match s.read(&mut chunk) {
            Ok(n) if n > 0 => buf.extend_from_slice(&chunk[..n]),
            _ => return,
        }
    }
}

#[test]
fn broken_clients_fail() {
    let served = serve("serve-broken", "1.1.2,6.3.1");
    // Unmasked frames: "unmasked client-to-server frame", the echo never counts.
    raw_echo_case(&served.url, "/runCase?case=1&agent=unmasked", false);
    // Masked, but invalid UTF-8 echoed instead of failing the connection.
    raw_echo_case(&served.url, "/runCase?case=2&agent=noutf8", true);
    assert_eq!(status_of(&served.url, 1, "unmasked"), "FAILED");
    assert_eq!(status_of(&served.url, 2, "noutf8"), "FAILED");
    // The same raw client, masking, passes 1.1.2.
    raw_echo_case(&served.url, "/runCase?case=1&agent=masked", true);
    assert_eq!(status_of(&served.url, 1, "masked"), "OK");
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("tokio");
    runtime.block_on(async {
        let url = format!("{}/updateReports?agent=unmasked", served.url);
        let (mut ws, _) = tokio_tungstenite::connect_async(url).await.expect("connects");
        while let Some(Ok(_)) = ws.next().await {}
    });
    let report = read_json(&served.out.join("unmasked_case_1_1_2.json"));
    assert_eq!(report["failedByMe"], true);
    assert_eq!(report["localCloseCode"], 1002);
    assert_eq!(report["localCloseReason"], "unmasked client-to-server frame");
    let report = read_json(&served.out.join("noutf8_case_6_3_1.json"));
    assert_eq!((report["behavior"].as_str(), report["localCloseCode"].as_u64()), (Some("FAILED"), Some(1007)));
    // `check` judges the three agents' reports when told which one.
    let check = |agent: &str| {
        let out = Command::new(env!("CARGO_BIN_EXE_wsharness"))
            .args(["autobahn", "check", "--agent", agent])
            .arg(&served.out)
            .output()
            .expect("runs");
        out.status.code()
    };
    assert_eq!((check("unmasked"), check("masked"), check("noutf8")), (Some(1), Some(0), Some(1)));
}

#[test]
fn bad_requests_are_refused_as_wstest_refuses_them() {
    let served = serve("serve-refuse", "1.1.1");
    let addr = served.url.strip_prefix("ws://").expect("ws URL").to_owned();
    let ask_raw = |path: &str| {
        let mut s = TcpStream::connect(&addr).expect("connects");
        write!(
            s,
            "GET {path} HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        )
        .expect("request");
        // Frames (not UTF-8) may follow the head, and a reset may end it.
        let mut response = Vec::new();
        let _ = s.read_to_end(&mut response);
        String::from_utf8_lossy(&response).lines().next().unwrap_or_default().to_owned()
    };
    assert_eq!(ask_raw("/runCase?case=2&agent=a"), "HTTP/1.1 500 Internal Server Error");
    assert_eq!(ask_raw("/runCase?case=1"), "HTTP/1.1 500 Internal Server Error");
    assert_eq!(ask_raw("/getCaseCount"), "HTTP/1.1 101 Switching Protocols");
}

/// The examples cargo builds next to this test's binary.
fn example(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test binary");
    let dir = exe.parent().and_then(Path::parent).expect("target dir");
    dir.join("examples").join(name)
}

fn client(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_wsharness")).args(["autobahn", "client"]).args(args).output().expect("runs")
}

#[test]
fn client_runs_a_driver_and_judges_it() {
    let driver = example("tt_autobahn_client");
    assert!(driver.is_file(), "{} (cargo test builds the examples)", driver.display());
    let out = temp_dir("client-tt");
    let run = client(&[
        "--cases",
        "1.1.*,2.1,7.1.1",
        "--out",
        out.to_str().expect("utf-8"),
        "--",
        driver.to_str().expect("utf-8"),
    ]);
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert_eq!(run.status.code(), Some(0), "{stdout}{}", String::from_utf8_lossy(&run.stderr));
    assert!(stdout.contains("Autobahn results for tokio-tungstenite") && stdout.contains("verdict: PASS"), "{stdout}");
    assert_eq!(read_json(&out.join("index.json"))["tokio-tungstenite"].as_object().map(|c| c.len()), Some(10));
    // The URL through the environment, with a shell command line.
    let out = temp_dir("client-tt-env");
    let line = format!("{} \"$AUTOBAHN_URL\"", driver.display());
    let run = client(&["--cases", "2.1", "--out", out.to_str().expect("utf-8"), "--cmd", &line]);
    assert_eq!(run.status.code(), Some(0), "{}", String::from_utf8_lossy(&run.stderr));
}

#[test]
fn serve_once_stops_after_the_reports_and_judges_them() {
    let mut served = serve_with("serve-once", "1.1.1,2.1", &["--once"], Stdio::piped());
    let driver = Command::new(example("tt_autobahn_client")).arg(&served.url).output().expect("driver runs");
    assert!(driver.status.success(), "the driver got its answers: {}", String::from_utf8_lossy(&driver.stderr));
    let mut stdout = String::new();
    served.child.stdout.take().expect("stdout").read_to_string(&mut stdout).expect("read");
    assert_eq!(served.child.wait().expect("exits").code(), Some(0), "{stdout}");
    assert!(stdout.contains("Autobahn results for tokio-tungstenite") && stdout.contains("verdict: PASS"), "{stdout}");
}

#[test]
fn client_says_why_a_run_cannot_be_judged() {
    let out = temp_dir("client-broken");
    let out = out.to_str().expect("utf-8");
    let run = client(&["--cases", "1.1.1", "--out", out, "--cmd", "exit 3"]);
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert_eq!(run.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("exited with status 3 before running any case"), "{stderr}");
    let run = client(&["--cases", "1.1.1", "--out", out, "--cmd", "true"]);
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert_eq!(run.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("without asking for") && stderr.contains("/updateReports"), "{stderr}");
    let started = std::time::Instant::now();
    let run = client(&["--cases", "1.1.1", "--out", out, "--timeout", "1s", "--cmd", "sleep 30 & sleep 30"]);
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert_eq!(run.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("did not finish within 1s"), "{stderr}");
    assert!(started.elapsed() < std::time::Duration::from_secs(20), "the timeout ended the driver");
}

#[test]
fn wstests_fuzzingserver_and_the_native_one_agree_on_the_tt_driver() {
    let Some(venv) = autobahn_venv() else {
        assert!(
            std::env::var_os("WSTOOLKIT_REQUIRE_AUTOBAHN").is_none(),
            "no Autobahn virtualenv, and WSTOOLKIT_REQUIRE_AUTOBAHN is set"
        );
        eprintln!("skipped: no Autobahn virtualenv (run `wsharness autobahn setup` once, or set WSHARNESS_VENV)");
        return;
    };
    let driver = example("tt_autobahn_client");
    let cases = "1.1.*,2.*,5.1,5.15,6.4.1,7.1.*,7.9.*,12.1.1";
    let run = |engine: &str| {
        let out = temp_dir(&format!("client-{engine}"));
        let o = out.to_str().expect("utf-8").to_owned();
        let venv = venv.to_str().expect("utf-8");
        let run = client(&[
            "--engine",
            engine,
            "--venv",
            venv,
            "--cases",
            cases,
            "--out",
            &o,
            "--",
            driver.to_str().expect("utf-8"),
        ]);
        assert_eq!(run.status.code(), Some(0), "{engine}: {}", String::from_utf8_lossy(&run.stderr));
        out
    };
    let (native, wstest) = (run("native"), run("wstest"));
    let report = read_json(&wstest.join("tokio_tungstenite_case_1_1_1.json"));
    assert_eq!((report["isServer"].as_bool(), report["case"].as_u64()), (Some(true), Some(1)), "wstest's own report");
    let diff = Command::new(env!("CARGO_BIN_EXE_wsharness"))
        .args(["autobahn", "diff", "--require-all-cases"])
        .args([&native, &wstest])
        .output()
        .expect("runs");
    let shown = String::from_utf8_lossy(&diff.stdout);
    assert_eq!(diff.status.code(), Some(0), "{shown}");
    assert!(shown.starts_with("no differences: 38 cases"), "{shown}");
}
