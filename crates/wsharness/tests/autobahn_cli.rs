//! `wsharness autobahn check|diff|export` on small fixture reports, through
//! the built binary.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name)
}

fn wsharness(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_wsharness")).args(args).output().expect("runs")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn path(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

#[test]
fn check_passes_a_passing_report() {
    let out = wsharness(&["autobahn", "check", path(&fixture("passing"))]);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    let text = stdout(&out);
    assert!(text.contains("verdict: PASS"), "{text}");
    let total = text.lines().find(|l| l.starts_with("Total")).expect("total row");
    let numbers: Vec<&str> = total.split_whitespace().skip(1).collect();
    assert_eq!(numbers, ["4", "1", "1", "1", "1", "0", "0"], "{total}");
    assert!(text.lines().any(|l| l.starts_with("12/13 Compression") && l.contains(" 1 ")), "{text}");
}

#[test]
fn check_fails_and_explains_a_failing_report() {
    let out = wsharness(&["autobahn", "check", path(&fixture("failing"))]);
    assert_eq!(out.status.code(), Some(1));
    let text = stdout(&out);
    assert!(text.contains("failing cases (2)"), "{text}");
    assert!(text.contains("6.4.1") && text.contains("fail fast on UTF-8"), "description and expectation: {text}");
    assert!(text.contains("7.3.1") && text.contains("close FAILED"), "bad close behaviour: {text}");
    let utf8 = text.lines().find(|l| l.starts_with("6 UTF-8")).expect("row");
    assert_eq!(utf8.split_whitespace().nth(7), Some("1"), "FAILED column: {utf8}");
}

#[test]
fn diff_finds_changed_cases_and_counts_missing_ones_apart() {
    let out = wsharness(&["autobahn", "diff", path(&fixture("passing")), path(&fixture("changed"))]);
    assert_eq!(out.status.code(), Some(1));
    let text = stdout(&out);
    assert!(text.starts_with("1 of 4 cases differ"), "{text}");
    assert!(text.lines().any(|l| l.contains("3.2") && l.contains("NON-STRICT") && l.contains("-> OK")), "{text}");
    assert!(
        text.lines().any(|l| l.starts_with("1 case of ")
            && l.contains("not run in")
            && l.ends_with("not compared: 12.1.2 (--require-all-cases counts them as differences)")),
        "{text}"
    );
    // With --require-all-cases, a case one side did not run is a difference.
    let out =
        wsharness(&["autobahn", "diff", path(&fixture("passing")), path(&fixture("changed")), "--require-all-cases"]);
    assert_eq!(out.status.code(), Some(1));
    let text = stdout(&out);
    assert!(text.starts_with("2 of 5 cases differ"), "{text}");
    assert!(text.lines().any(|l| l.contains("12.1.2") && l.contains("(not run)")), "{text}");
}

#[test]
fn diff_of_a_partial_run_compares_the_cases_that_ran() {
    // A run of two of the four cases, with the results of the full run.
    let dir = std::env::temp_dir().join(format!("wsharness-partial-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let partial = r#"{"echo": {
        "1.1.1": {"behavior": "OK", "behaviorClose": "OK", "duration": 5, "remoteCloseCode": 1000},
        "7.1.1": {"behavior": "INFORMATIONAL", "behaviorClose": "INFORMATIONAL", "duration": 4, "remoteCloseCode": 1000}
    }}"#;
    std::fs::write(dir.join("index.json"), partial).expect("write");
    let out = wsharness(&["autobahn", "diff", path(&dir), path(&fixture("passing"))]);
    let strict = wsharness(&["autobahn", "diff", path(&dir), path(&fixture("passing")), "--require-all-cases"]);
    let _ = std::fs::remove_dir_all(&dir);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(text.starts_with("no differences: 2 cases with the same behavior"), "{text}");
    assert!(text.contains("2 cases of ") && text.contains("not compared: 3.2 12.1.1"), "{text}");
    assert_eq!(strict.status.code(), Some(1), "{}", stdout(&strict));
    assert!(stdout(&strict).starts_with("2 of 4 cases differ"), "{}", stdout(&strict));
}

#[test]
fn diff_of_a_run_and_its_export_is_empty() {
    let dir = std::env::temp_dir().join(format!("wsharness-export-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let expected = dir.join("expected.json");
    let out = wsharness(&["autobahn", "export", path(&fixture("passing")), "-o", path(&expected)]);
    assert_eq!(out.status.code(), Some(0));
    let text = std::fs::read_to_string(&expected).expect("written");
    assert!(!text.contains("duration"), "durations are stripped: {text}");
    let out = wsharness(&["autobahn", "diff", path(&fixture("passing")), path(&expected)]);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    assert!(stdout(&out).contains("no differences"));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn bad_input_gets_a_clear_error() {
    let out = wsharness(&["autobahn", "check", path(&fixture(""))]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("has no index.json"));
    let out = wsharness(&["autobahn", "check", "/nonexistent/reports"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("does not exist"));
}

#[test]
fn proxy_log_counts_a_compressed_message_left_uninflated_against_its_case() {
    let reports = fixture("compression");
    let log = fixture("compression-proxy.jsonl");
    let out = wsharness(&["autobahn", "proxy-log", path(&reports), path(&log)]);
    assert_eq!(out.status.code(), Some(0));
    // 3.1 sets RSV1 without the extension: a reserved-bit violation only.
    assert_eq!(stdout(&out), "3.1 client:reserved_bit_set\n12.1.2 proxy:not_inflated\n");
    let none = std::env::temp_dir().join(format!("wsharness-none-{}.txt", std::process::id()));
    std::fs::write(&none, "# no violations expected\n").expect("write");
    let out = wsharness(&["autobahn", "proxy-log", path(&reports), path(&log), "--expected", path(&none)]);
    let _ = std::fs::remove_file(&none);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert!(stdout(&out).contains("12.1.2: reported"), "{}", stdout(&out));
}

/// The README's example: a run of `--cases '1.*,2.*'` diffed against the
/// checked-in expected results prints what the README shows.
#[test]
fn the_readme_shows_the_diff_of_a_partial_run_as_it_is() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let expected_text = std::fs::read_to_string(root.join("autobahn/expected/wsecho.json")).expect("expected");
    let expected: serde_json::Value = serde_json::from_str(&expected_text).expect("JSON");
    let ran: serde_json::Map<String, serde_json::Value> = expected["cases"]
        .as_object()
        .expect("cases")
        .iter()
        .filter(|(id, _)| id.starts_with("1.") || id.starts_with("2."))
        .map(|(id, r)| (id.clone(), r.clone()))
        .collect();
    let dir = std::env::temp_dir().join(format!("wsharness-readme-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    std::fs::write(dir.join("index.json"), serde_json::json!({ "wsecho": ran }).to_string()).expect("write");
    let out = Command::new(env!("CARGO_BIN_EXE_wsharness"))
        .current_dir(&root)
        .args(["autobahn", "diff", path(&dir), "autobahn/expected/wsecho.json"])
        .output()
        .expect("runs");
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    let readme = std::fs::read_to_string(root.join("README.md")).expect("README");
    let start = readme.find("no differences: 27 cases").expect("the example in the README");
    let shown = &readme[start..start + readme[start..].find("```").expect("end of block")];
    assert_eq!(stdout(&out), shown.replace("target/autobahn/wsecho", path(&dir)));
}
