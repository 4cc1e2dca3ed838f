//! The native engine: the fuzzingclient's cases in Rust, with wstest's
//! verdicts and report files, and no Python.
//!
//! * `cases`: the case families as data (what to send, when, what to expect).
//! * `conn`: one case on one connection, Autobahn's client rebuilt on tokio.
//! * `judge`: `behavior` and `behaviorClose`, as `Case.onConnectionLost` decides.
//! * `wirelog`: the report's renderings of bytes and times.
//! * `traffic`: the `trafficStats` of the compression cases.
//! * `testdata`: the testsuite's files the compression cases cut their
//!   messages from, found in the installed testsuite.
//! * `html`: `index.html`, the run as one self-contained page.
//!
//! [`run_native`] runs the selected cases one after the other, as wstest
//! does (or `--jobs N` at a time: the waits some cases are made of then
//! overlap), and writes `index.json` and one `AGENT_case_X_Y_Z.json` per
//! case in wstest's layout (and an `index.html` of its own), so `check`,
//! `diff` and `export` read them unchanged. It has every case of the
//! testsuite's fuzzingclient (517).

mod cases;
mod conn;
mod html;
mod judge;
mod offer;
mod serve;
mod testdata;
mod traffic;
mod wirelog;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::{Value, json};

pub use cases::{Case, all_cases};
pub use conn::{Role, Target};
pub use serve::{Endpoint, FuzzingServer, Refusal, ServeOptions, Serving, parse_endpoint, serve, start};
pub use testdata::TESTDATA_ENV;

use super::run::{RunOptions, glob_match};
use cases::{ExpectedClose, Observed};
use conn::CaseRun;

/// The families (first id components) the native engine runs.
pub const NATIVE_FAMILIES: [u32; 11] = [1, 2, 3, 4, 5, 6, 7, 9, 10, 12, 13];

/// `ws://host[:port][/path]` → where to connect and what to ask for.
pub fn target(url: &str) -> anyhow::Result<Target> {
    let rest = match url.strip_prefix("ws://") {
        Some(rest) => rest,
        None if url.starts_with("wss://") => bail!("{url}: the native engine speaks ws:// only"),
        None => bail!("{url} is not a ws:// URL"),
    };
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let (host, port) = match authority.rsplit_once(':') {
        Some((h, p)) if !authority.ends_with(']') => {
            (h.to_owned(), p.parse::<u16>().with_context(|| format!("{url}: bad port {p:?}"))?)
        }
        _ => (authority.to_owned(), 80),
    };
    if host.is_empty() {
        bail!("{url} has no host");
    }
    Ok(Target { addr: format!("{host}:{port}"), host, port, resource: path.to_owned() })
}

/// `cleanForFilename`: lowercase letters and digits kept, anything else
/// `_` (ends trimmed), as the report file names have them.
fn clean_for_filename(s: &str) -> String {
    let spaced: String = s
        .trim()
        .to_lowercase()
        .chars()
        .map(|c| if c.is_ascii_lowercase() || c.is_ascii_digit() { c } else { ' ' })
        .collect();
    spaced.trim().replace(' ', "_")
}

/// The per-case report file name wstest gives a case.
pub fn report_file_name(agent: &str, id: &str) -> String {
    format!("{}_case_{}.json", clean_for_filename(agent), id.replace('.', "_"))
}

fn observed_json(o: &Observed) -> Value {
    match o {
        Observed::Message(payload, binary) => json!(["message", wirelog::ascii_log_data(payload), binary]),
        Observed::Pong(payload) => json!(["pong", wirelog::ascii_log_data(payload)]),
        Observed::Timeout(tag) => json!(["timeout", tag]),
    }
}

fn expected_close_json(e: &ExpectedClose) -> Value {
    let mut m = serde_json::Map::new();
    m.insert("closeCode".into(), json!(e.close_code));
    m.insert("closedByMe".into(), json!(e.closed_by_me));
    if e.closed_by_wrong_endpoint_is_fatal {
        m.insert("closedByWrongEndpointIsFatal".into(), json!(true));
    }
    m.insert("requireClean".into(), json!(e.require_clean));
    Value::Object(m)
}

fn stats<K: ToString>(m: &BTreeMap<K, u64>) -> Value {
    Value::Object(m.iter().map(|(k, v)| (k.to_string(), json!(v))).collect())
}

/// The report of one case, with wstest's fields.
fn case_report(case: &Case, agent: &str, run: &CaseRun) -> Value {
    let f = &run.flags;
    let expected: serde_json::Map<String, Value> = case
        .expected
        .iter()
        .map(|(k, v)| ((*k).to_owned(), Value::Array(v.iter().map(observed_json).collect())))
        .collect();
    let local_reason = f.local_close_reason.as_ref().map(|r| match std::str::from_utf8(r) {
        Ok(s) => s.to_owned(),
        Err(_) => conn::hex(r),
    });
    let fields: BTreeMap<&str, Value> = BTreeMap::from([
        ("agent", json!(agent)),
        ("behavior", json!(f.behavior)),
        ("behaviorClose", json!(f.behavior_close)),
        ("case", json!(run.number)),
        ("closedByMe", json!(f.closed_by_me)),
        ("createStats", json!(true)),
        ("createWirelog", json!(run.create_wirelog)),
        ("description", json!(case.description)),
        ("droppedByMe", json!(f.dropped_by_me)),
        ("duration", json!(run.duration_ms)),
        ("expectation", json!(case.expectation)),
        ("expected", Value::Object(expected)),
        ("expectedClose", expected_close_json(&case.expected_close)),
        ("failedByMe", json!(f.failed_by_me)),
        ("httpRequest", json!(run.http_request)),
        ("httpResponse", json!(run.http_response)),
        ("id", json!(case.id)),
        ("isServer", json!(f.is_server)),
        ("localCloseCode", json!(f.local_close_code)),
        ("localCloseReason", json!(local_reason)),
        ("received", Value::Array(run.received.iter().map(observed_json).collect())),
        ("remoteCloseCode", json!(f.remote_close_code)),
        ("remoteCloseReason", json!(f.remote_close_reason)),
        ("reportCompressionRatio", json!(case.kind == cases::Kind::Deflate)),
        ("reportTime", json!(case.kind != cases::Kind::Standard)),
        ("result", json!(f.result)),
        ("resultClose", json!(f.result_close)),
        ("rxFrameStats", stats(&run.rx_frame_stats)),
        ("rxOctetStats", stats(&run.rx_octet_stats)),
        ("started", json!(run.started)),
        ("trafficStats", run.traffic_stats.as_ref().map_or(Value::Null, traffic::TrafficStats::to_json)),
        ("txFrameStats", stats(&run.tx_frame_stats)),
        ("txOctetStats", stats(&run.tx_octet_stats)),
        ("wasClean", json!(f.was_clean)),
        ("wasCloseHandshakeTimeout", json!(f.was_close_handshake_timeout)),
        ("wasNotCleanReason", json!(f.was_not_clean_reason)),
        ("wasOpenHandshakeTimeout", json!(f.was_open_handshake_timeout)),
        ("wasServerConnectionDropTimeout", json!(f.was_server_connection_drop_timeout)),
        ("wirelog", Value::Array(run.wirelog.clone())),
    ]);
    json!(fields)
}

/// JSON as wstest writes it: sorted keys, three-space indent.
fn write_json(path: &Path, value: &Value) -> anyhow::Result<()> {
    use serde::Serialize;
    let mut out = Vec::new();
    let mut ser =
        serde_json::Serializer::with_formatter(&mut out, serde_json::ser::PrettyFormatter::with_indent(b"   "));
    value.serialize(&mut ser)?;
    std::fs::write(path, out).with_context(|| format!("writing {}", path.display()))
}

/// Writes `index.json` (every agent), one report file per agent and case,
/// and `index.html` (for `html_agent`), as `FuzzingFactory.createReports`
/// writes them: `createMasterReportJSON` and `createAgentCaseReportJSON`.
pub(crate) fn write_reports(
    out: &Path,
    agents: &[(String, Vec<(&Case, &CaseRun)>)],
    html_agent: &str,
) -> anyhow::Result<()> {
    let mut index_json = serde_json::Map::new();
    for (agent, results) in agents {
        let mut index = serde_json::Map::new();
        let mut reports = Vec::with_capacity(results.len());
        for (case, run) in results {
            let file = report_file_name(agent, &case.id);
            let report = case_report(case, agent, run);
            write_json(&out.join(&file), &report)?;
            reports.push(report);
            let f = &run.flags;
            index.insert(
                case.id.clone(),
                json!({
                    "behavior": f.behavior,
                    "behaviorClose": f.behavior_close,
                    "duration": run.duration_ms,
                    "remoteCloseCode": f.remote_close_code,
                    "reportfile": file,
                }),
            );
        }
        if agent == html_agent {
            let page = out.join("index.html");
            std::fs::write(&page, html::render(agent, &reports))
                .with_context(|| format!("writing {}", page.display()))?;
        }
        index_json.insert(agent.clone(), Value::Object(index));
    }
    write_json(&out.join("index.json"), &Value::Object(index_json))
}

/// The cases a run selects, and the selected ids the engine cannot run.
pub fn select(patterns: &[String], exclude: &[String]) -> (Vec<Case>, Vec<String>) {
    let wanted = |id: &str| patterns.iter().any(|p| glob_match(p, id)) && !exclude.iter().any(|p| glob_match(p, id));
    let cases: Vec<Case> = all_cases().into_iter().filter(|c| wanted(&c.id)).collect();
    let missing = cases::spec_rows()
        .into_iter()
        .map(|r| r.id)
        .filter(|id| wanted(id) && !cases.iter().any(|c| &c.id == id))
        .collect();
    (cases, missing)
}

/// The test data the selected compression cases read. Without it they still
/// run: a server that declines permessage-deflate gets its UNIMPLEMENTED,
/// and a case that would need the data fails, saying so (as the warning
/// printed here does).
fn load_testdata(cases: &[Case], venv: Option<&Path>) -> BTreeMap<String, std::sync::Arc<testdata::TestFile>> {
    let wanted: std::collections::BTreeSet<(String, bool)> =
        cases.iter().filter_map(|c| c.deflate.as_ref()).map(|d| (d.file.clone(), d.binary)).collect();
    if wanted.is_empty() {
        return BTreeMap::new();
    }
    let venv = venv.map_or_else(super::run::default_venv, Path::to_path_buf);
    match testdata::load(&wanted, &cases::testdata_specs(), &venv) {
        Ok(files) => files,
        Err(e) => {
            eprintln!(
                "autobahn: warning: {e:#}; the compression cases fail against a server that accepts permessage-deflate"
            );
            BTreeMap::new()
        }
    }
}

/// Runs the selected cases natively and writes the reports; returns the
/// report directory.
pub fn run_native(opts: &RunOptions) -> anyhow::Result<PathBuf> {
    let target = target(&opts.url)?;
    let (cases, missing) = select(&opts.cases, &opts.exclude);
    if !missing.is_empty() {
        // Every case of the spec table has a script; this is a bug.
        bail!("the native engine has no script for {} selected cases (first: {})", missing.len(), missing[0]);
    }
    if cases.is_empty() {
        bail!("no case matches --cases {} (less --exclude)", opts.cases.join(","));
    }
    std::fs::create_dir_all(&opts.out).with_context(|| format!("creating {}", opts.out.display()))?;
    let out = opts.out.canonicalize().with_context(|| format!("resolving {}", opts.out.display()))?;
    let _ = std::fs::remove_file(out.join("index.json"));
    let testdata = load_testdata(&cases, opts.venv.as_deref());
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().context("starting tokio")?;
    // Say so before the suite when nothing listens.
    runtime
        .block_on(async {
            tokio::time::timeout(Duration::from_secs(3), tokio::net::TcpStream::connect(&target.addr)).await
        })
        .map_err(anyhow::Error::from)
        .and_then(|r| r.map_err(anyhow::Error::from))
        .with_context(|| {
            format!("nothing accepts connections at {} ({}): start the server under test first", target.addr, opts.url)
        })?;
    let bar = if std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        ProgressBar::new(cases.len() as u64)
    } else {
        ProgressBar::hidden()
    };
    bar.set_style(
        ProgressStyle::with_template("{bar:30} autobahn {pos}/{len} cases [{elapsed}] {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let jobs = opts.jobs.max(1);
    let runs: Vec<(usize, CaseRun)> = runtime.block_on(async {
        let slots = std::sync::Arc::new(tokio::sync::Semaphore::new(jobs));
        let mut set = tokio::task::JoinSet::new();
        let mut done = Vec::with_capacity(cases.len());
        for (i, case) in cases.iter().enumerate() {
            let Ok(slot) = std::sync::Arc::clone(&slots).acquire_owned().await else { break };
            let (case, target) = (case.clone(), target.clone());
            let data = case.deflate.as_ref().and_then(|d| testdata.get(&d.file).cloned());
            bar.set_message(case.id.clone());
            set.spawn(async move {
                let run = conn::run_case(&case, &target, data).await;
                drop(slot);
                (i, run)
            });
            while let Some(Ok(finished)) = set.try_join_next() {
                bar.inc(1);
                done.push(finished);
            }
        }
        while let Some(finished) = set.join_next().await {
            if let Ok(finished) = finished {
                bar.inc(1);
                done.push(finished);
            }
        }
        done.sort_by_key(|(i, _)| *i);
        done
    });
    bar.finish_and_clear();
    let results: Vec<(&Case, &CaseRun)> = runs.iter().map(|(i, run)| (&cases[*i], run)).collect();
    write_reports(&out, &[(opts.agent.clone(), results)], &opts.agent)?;
    eprintln!(
        "autobahn: {} run natively against {}, reports in {}",
        wscli::count(cases.len() as u64, "case"),
        opts.url,
        out.display()
    );
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_as_wstest() {
        assert_eq!(report_file_name("wsecho", "1.1.1"), "wsecho_case_1_1_1.json");
        assert_eq!(report_file_name("Python websockets/17", "12.1.1"), "python_websockets_17_case_12_1_1.json");
    }

    #[test]
    fn targets() {
        let t = target("ws://127.0.0.1:9001").expect("valid");
        assert_eq!((t.addr.as_str(), t.port, t.resource.as_str()), ("127.0.0.1:9001", 9001, "/"));
        let t = target("ws://localhost/echo?x=1").expect("valid");
        assert_eq!((t.addr.as_str(), t.resource.as_str()), ("localhost:80", "/echo?x=1"));
        assert!(target("wss://x").is_err());
        assert!(target("ws://:1").is_err());
    }

    #[test]
    fn selection_has_every_case() {
        let (cases, missing) = select(&["1.*".into(), "9.1.1".into(), "12.1.1".into()], &["1.2.*".into()]);
        assert_eq!(cases.len(), 10);
        assert!(missing.is_empty(), "{missing:?}");
        let (all, missing) = select(&["*".into()], &[]);
        assert_eq!((all.len(), missing.len()), (517, 0));
    }
}
