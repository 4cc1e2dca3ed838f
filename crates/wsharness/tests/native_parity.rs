//! The native engine's parity gate: its verdicts, case by case, equal
//! wstest's on the same servers: every case against wsecho's
//! tokio-tungstenite engine (the compression cases 12.* and 13.* are
//! UNIMPLEMENTED there: that engine declines permessage-deflate; wsecho's
//! default engine compresses, and `ci/test.sh` runs the full suite against
//! it with both engines), families 1.* to 7.* and 10.* against the broken
//! servers, and the compression cases against `takeover`, the broken server
//! that compresses (9.* takes minutes; `ci/test.sh` runs it, and the
//! compression cases against Python `websockets` and Node `ws`).
//!
//! The compression cases cut their messages from the testsuite's test data
//! files, which the native engine reads from the testsuite's virtualenv
//! (`wsharness autobahn setup` creates it): where there is none, the
//! compression cases against `takeover` are skipped with a note, unless
//! `WSTOOLKIT_REQUIRE_TESTDATA=1` (set by `ci/test.sh`).
//!
//! The native runs have nothing on their PATH: no Python, no Docker.
//! wstest's results are checked in (`autobahn/expected/*.json`, exported from
//! wstest 25.10.1 runs), so this test needs no Python: it runs
//! `wsharness autobahn run --engine native` against wsecho and against the
//! deliberately broken servers of the `wsbroken` crate, and `autobahn diff`s
//! each run against wstest's results for the same server.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The families run against every server.
const FAMILIES: &str = "1.*,2.*,3.*,4.*,5.*,6.*,7.*,10.*";
/// Cases in those families.
const NATIVE_CASES: usize = 247;
/// The compression cases, run against wsecho too.
const COMPRESSION: &str = "12.*,13.*";
/// Cases in those families.
const COMPRESSION_CASES: usize = 216;

/// The parity runs one at a time: each runs 16 cases at once, and two such
/// runs side by side on a loaded 2-core machine delay servers past the
/// cases' 1 s closing timers (a verdict then turns UNCLEAN or FAILED BY
/// CLIENT on the load, not on the engine).
static ONE_RUN_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

/// Runs the native engine against `url` (the `cases`, `count` of them),
/// then diffs the run against wstest's results in
/// `autobahn/expected/{expected}`; returns the diff's output.
fn native_run_diffs_clean(url: &str, agent: &str, expected: &str, cases: &str, count: usize) -> String {
    let _one = ONE_RUN_AT_A_TIME.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let out = std::env::temp_dir().join(format!("wsharness-parity-{agent}-{}", std::process::id()));
    // No Python, no Docker: nothing on the PATH at all.
    let run = Command::new(env!("CARGO_BIN_EXE_wsharness"))
        .env("PATH", "/nonexistent")
        .args(["autobahn", "run", "--engine", "native", "--jobs", "16", "--url", url, "--agent", agent])
        .args(["--cases", cases, "--out"])
        .arg(&out)
        .output()
        .expect("runs wsharness");
    assert!(out.join("index.json").is_file(), "no reports: {}", text(&run));
    let page = std::fs::read_to_string(out.join("index.html")).expect("index.html");
    assert!(page.contains("<table id=\"cases\">") && page.contains("id=\"case-7.1.1\""), "the HTML report");
    let diff = Command::new(env!("CARGO_BIN_EXE_wsharness"))
        .current_dir(root())
        .args(["autobahn", "diff"])
        .arg(&out)
        .arg(format!("autobahn/expected/{expected}"))
        .output()
        .expect("runs wsharness");
    let _ = std::fs::remove_dir_all(&out);
    let shown = text(&diff);
    assert_eq!(diff.status.code(), Some(0), "the native engine's verdicts differ from wstest's:\n{shown}");
    assert!(shown.starts_with(&format!("no differences: {count} cases")), "every native case is compared: {shown}");
    shown
}

/// The verdicts in an expected-results file, counted.
fn verdicts(expected: &str) -> (Vec<String>, Vec<String>) {
    let text = std::fs::read_to_string(root().join("autobahn/expected").join(expected)).expect("expected results");
    let value: serde_json::Value = serde_json::from_str(&text).expect("JSON");
    let cases = value["cases"].as_object().expect("cases");
    let pick = |field: &str| cases.values().filter_map(|c| c[field].as_str().map(str::to_owned)).collect();
    (pick("behavior"), pick("behaviorClose"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn native_verdicts_equal_wstests_on_wsecho() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let config = wsecho::Config { engine: wsecho::Engine::Tungstenite, ..wsecho::Config::default() };
    let server = wsecho::spawn(listener, config).expect("wsecho");
    let url = format!("ws://{}", server.local_addr());
    let cases = format!("{FAMILIES},{COMPRESSION}");
    tokio::task::spawn_blocking(move || {
        let expected = "wsecho-tokio-tungstenite.json";
        native_run_diffs_clean(&url, "wsecho-tokio-tungstenite", expected, &cases, NATIVE_CASES + COMPRESSION_CASES)
    })
    .await
    .expect("join");
    server.shutdown().await;
}

/// Whether the testsuite's test data files are where the native engine
/// looks for them: `$WSHARNESS_AUTOBAHN_TESTDATA`, `$WSHARNESS_VENV`, or a
/// testsuite virtualenv in the cache.
fn testdata_available() -> bool {
    let in_venv = |venv: &Path| {
        std::fs::read_dir(venv.join("lib"))
            .into_iter()
            .flatten()
            .filter_map(Result::ok)
            .any(|e| e.path().join("site-packages/autobahntestsuite/testdata/data1.json").is_file())
    };
    if let Some(dir) = std::env::var_os("WSHARNESS_AUTOBAHN_TESTDATA") {
        return Path::new(&dir).join("data1.json").is_file();
    }
    if let Some(venv) = std::env::var_os("WSHARNESS_VENV") {
        return in_venv(Path::new(&venv));
    }
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")));
    let venvs = cache.map(|c| c.join("wstoolkit")).and_then(|d| std::fs::read_dir(d).ok());
    venvs
        .into_iter()
        .flatten()
        .filter_map(Result::ok)
        .any(|e| e.file_name().to_string_lossy().starts_with("autobahn-py27-") && in_venv(&e.path()))
}

/// Each broken server, natively, gets wstest's verdicts, and wstest's results
/// for them hold the verdicts the gate is about: FAILED, NON-STRICT, WRONG
/// CODE, UNCLEAN.
#[test]
fn native_verdicts_equal_wstests_on_broken_servers() {
    let testdata = testdata_available();
    if !testdata {
        assert!(
            !std::env::var("WSTOOLKIT_REQUIRE_TESTDATA").is_ok_and(|v| v == "1"),
            "WSTOOLKIT_REQUIRE_TESTDATA=1 but the testsuite's test data files are not found"
        );
        eprintln!("note: no testsuite virtualenv: the compression cases against broken-takeover are skipped");
    }
    for flaw in wsbroken::Flaw::ALL {
        let server = wsbroken::spawn("127.0.0.1:0", flaw).expect("binds");
        let agent = format!("broken-{}", flaw.name());
        let url = format!("ws://{}", server.local_addr());
        let (cases, count) = if flaw == wsbroken::Flaw::Takeover && testdata {
            (format!("{FAMILIES},{COMPRESSION}"), NATIVE_CASES + COMPRESSION_CASES)
        } else {
            (FAMILIES.to_owned(), NATIVE_CASES)
        };
        native_run_diffs_clean(&url, &agent, &format!("{agent}.json"), &cases, count);
    }
    let (unchecked, unchecked_close) = verdicts("broken-unchecked.json");
    assert!(unchecked.iter().any(|b| b == "FAILED"));
    assert!(unchecked_close.iter().any(|b| b == "WRONG CODE"));
    let (lazy, _) = verdicts("broken-lazy.json");
    assert!(lazy.iter().any(|b| b == "NON-STRICT"));
    let (_, linger_close) = verdicts("broken-linger.json");
    assert!(linger_close.iter().any(|b| b == "UNCLEAN"));
    // The compression cases fail against takeover: the client cannot
    // inflate a message that refers back past its start.
    let (takeover, takeover_close) = verdicts("broken-takeover.json");
    assert_eq!(takeover.iter().filter(|b| *b == "FAILED").count(), COMPRESSION_CASES);
    assert_eq!(takeover_close.iter().filter(|b| *b == "FAILED").count(), COMPRESSION_CASES);
}

/// A selection that matches no case is an error that says so.
#[test]
fn a_selection_of_no_case_is_refused() {
    let out = Command::new(env!("CARGO_BIN_EXE_wsharness"))
        .args(["autobahn", "run", "--engine", "native", "--url", "ws://127.0.0.1:9", "--cases", "99.*"])
        .output()
        .expect("runs wsharness");
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let shown = text(&out);
    assert!(shown.contains("no case matches --cases 99.*"), "{shown}");
}
