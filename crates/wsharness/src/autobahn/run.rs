//! Running `wstest -m fuzzingclient`: natively in a cached Python 2.7
//! virtualenv with pinned packages, or in Docker.

use std::io::{BufRead, BufReader};
use std::net::{TcpStream, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{Context, bail};
use indicatif::{ProgressBar, ProgressStyle};

/// The pinned packages of the native testsuite.
const REQUIREMENTS: &str = include_str!("../../../../autobahn/requirements-py27.txt");

/// The results of wsecho, whose case ids give the progress bar its total.
const EXPECTED_WSECHO: &str = include_str!("../../../../autobahn/expected/wsecho.json");

/// wstest's optional C accelerators for UTF-8 validation and masking, which
/// autobahn 0.10.9 imports when present (`autobahn/websocket/utf8validator.py`,
/// `xormasker.py`); without them both run byte by byte in Python. Measured
/// against wsecho's wsproto engine, cases 12.1.*: 179 s wall (172 s CPU)
/// without, 30 s (24 s) with, and the same verdicts. Built from source (it
/// needs a C compiler and Python 2.7's headers), so it is installed on its
/// own and the virtualenv works without it.
const ACCELERATOR: &str = "wsaccel==0.6.2";

/// The last virtualenv release that creates Python 2.7 environments.
const VIRTUALENV: &str = "virtualenv==20.15.1";

/// The Docker image of the testsuite, pinned.
pub const DEFAULT_IMAGE: &str = "crossbario/autobahn-testsuite:0.8.2";

/// What to run, against what, and where the reports go.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// The server under test, `ws://host:port[/path]`.
    pub url: String,
    /// The name the reports give the server.
    pub agent: String,
    /// Case patterns to run (`*`, `1.*`, `9.1.6`).
    pub cases: Vec<String>,
    /// Case patterns to skip.
    pub exclude: Vec<String>,
    /// The report directory.
    pub out: PathBuf,
    /// Run the testsuite in Docker instead of the virtualenv.
    pub docker: bool,
    /// The Docker image.
    pub image: String,
    /// The virtualenv (default: in the user's cache directory).
    pub venv: Option<PathBuf>,
    /// Cases run at the same time (native engine only; wstest runs one).
    pub jobs: usize,
}

/// Every case id the testsuite has (from wsecho's expected results).
pub fn expected_case_ids() -> Vec<String> {
    let value: serde_json::Value = serde_json::from_str(EXPECTED_WSECHO).unwrap_or_default();
    value["cases"].as_object().map(|cases| cases.keys().cloned().collect()).unwrap_or_default()
}

/// fnmatch-style matching with `*` and `?`, as the testsuite matches case ids.
pub(crate) fn glob_match(pattern: &str, text: &str) -> bool {
    let (p, t) = (pattern.as_bytes(), text.as_bytes());
    let (mut pi, mut ti, mut star, mut mark) = (0, 0, None, 0);
    while ti < t.len() {
        if pi < p.len() && (p[pi] == b'?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == b'*' {
            star = Some(pi);
            mark = ti;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == b'*')
}

fn selected_count(opts: &RunOptions) -> usize {
    expected_case_ids()
        .iter()
        .filter(|id| opts.cases.iter().any(|p| glob_match(p, id)) && !opts.exclude.iter().any(|p| glob_match(p, id)))
        .count()
}

/// `host:port` of a `ws://` URL.
fn authority(url: &str) -> anyhow::Result<String> {
    let rest = if let Some(rest) = url.strip_prefix("ws://") {
        rest
    } else if url.starts_with("wss://") {
        bail!("{url}: the fuzzingclient run here speaks ws:// only; put wsproxy or the server on plain ws://");
    } else {
        bail!("{url} is not a ws:// URL");
    };
    let host_port = rest.split('/').next().unwrap_or_default();
    if host_port.is_empty() {
        bail!("{url} has no host");
    }
    Ok(if host_port.rsplit_once(':').is_some_and(|(_, p)| p.parse::<u16>().is_ok()) && !host_port.ends_with(']') {
        host_port.to_owned()
    } else {
        format!("{host_port}:80")
    })
}

/// Says so before the suite starts when nothing listens at the URL.
fn check_reachable(url: &str) -> anyhow::Result<()> {
    let authority = authority(url)?;
    let addrs: Vec<_> =
        authority.to_socket_addrs().with_context(|| format!("resolving {authority} (from {url})"))?.collect();
    let mut last = None;
    for addr in addrs {
        match TcpStream::connect_timeout(&addr, Duration::from_secs(3)) {
            Ok(_) => return Ok(()),
            Err(e) => last = Some(e),
        }
    }
    match last {
        Some(e) => bail!("nothing accepts connections at {authority} ({e}): start the server under test first"),
        None => bail!("{authority} resolves to no address"),
    }
}

/// The testsuite's case patterns understand `*` only: a pattern with `?` is
/// expanded to the case ids it matches.
pub(crate) fn spec_patterns(patterns: &[String]) -> Vec<String> {
    let ids = expected_case_ids();
    let mut out = Vec::new();
    for p in patterns {
        if p.contains('?') {
            out.extend(ids.iter().filter(|id| glob_match(p, id)).cloned());
        } else {
            out.push(p.clone());
        }
    }
    out
}

fn write_spec(opts: &RunOptions, outdir: &str, path: &Path) -> anyhow::Result<()> {
    let spec = serde_json::json!({
        "options": {"failByDrop": false},
        "outdir": outdir,
        "servers": [{"agent": opts.agent, "url": opts.url}],
        "cases": spec_patterns(&opts.cases),
        "exclude-cases": spec_patterns(&opts.exclude),
        "exclude-agent-cases": {},
    });
    std::fs::write(path, serde_json::to_string_pretty(&spec)?).with_context(|| format!("writing {}", path.display()))
}

/// Runs the fuzzingclient and returns the report directory.
pub fn run(opts: &RunOptions) -> anyhow::Result<PathBuf> {
    check_reachable(&opts.url)?;
    std::fs::create_dir_all(&opts.out).with_context(|| format!("creating {}", opts.out.display()))?;
    let out = opts.out.canonicalize().with_context(|| format!("resolving {}", opts.out.display()))?;
    // Old reports would be read as this run's.
    let _ = std::fs::remove_file(out.join("index.json"));
    let spec = out.join("fuzzingclient.json");
    let mut cmd = if opts.docker {
        write_spec(opts, "/reports", &spec)?;
        let mut cmd = Command::new("docker");
        cmd.args(["run", "--rm", "--network", "host", "-v"])
            .arg(format!("{}:/reports", out.display()))
            .arg(&opts.image)
            .args(["wstest", "-m", "fuzzingclient", "-s", "/reports/fuzzingclient.json"]);
        cmd
    } else {
        write_spec(opts, &out.display().to_string(), &spec)?;
        let venv = ensure_venv(opts.venv.clone())?;
        let mut cmd = Command::new(venv.join("bin").join("wstest"));
        cmd.args(["-m", "fuzzingclient", "-s"]).arg(&spec).current_dir(&out);
        cmd
    };
    let total = selected_count(opts);
    let bar = ProgressBar::new(total as u64);
    bar.set_style(
        ProgressStyle::with_template("{spinner} autobahn {pos}/{len} cases [{elapsed}] {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("starting {:?}", cmd.get_program()))?;
    // wstest writes its progress to stdout; keep stderr's tail for errors.
    let stderr = child.stderr.take();
    let stderr_tail = std::thread::spawn(move || {
        let mut tail = Vec::new();
        if let Some(stderr) = stderr {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                tail.push(line);
                if tail.len() > 40 {
                    tail.remove(0);
                }
            }
        }
        tail
    });
    let mut tail = Vec::new();
    let mut ran = 0u64;
    if let Some(stdout) = child.stdout.take() {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(rest) = line.strip_prefix("Running test case ID ") {
                ran += 1;
                bar.set_position(ran);
                bar.set_message(rest.split_whitespace().next().unwrap_or_default().to_owned());
            }
            tail.push(line);
            if tail.len() > 40 {
                tail.remove(0);
            }
        }
    }
    let status = child.wait().context("waiting for wstest")?;
    bar.finish_and_clear();
    tail.extend(stderr_tail.join().unwrap_or_default());
    if !status.success() || !out.join("index.json").is_file() {
        bail!("wstest failed ({status}) after {ran} cases; its last output:\n{}", tail.join("\n"));
    }
    eprintln!("autobahn: {} run against {}, reports in {}", wscli::count(ran, "case"), opts.url, out.display());
    Ok(out)
}

/// A short stable hash of the requirements, so a change makes a new venv.
fn requirements_hash() -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in REQUIREMENTS.bytes().chain(ACCELERATOR.bytes()) {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{:08x}", h >> 32)
}

/// The testsuite's virtualenv: `$WSHARNESS_VENV`, else one per set of pinned
/// packages in the user's cache directory.
pub(crate) fn default_venv() -> PathBuf {
    if let Some(dir) = std::env::var_os("WSHARNESS_VENV") {
        return PathBuf::from(dir);
    }
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(std::env::temp_dir);
    cache.join("wstoolkit").join(format!("autobahn-py27-{}", requirements_hash()))
}

/// Whether `python` is a CPython 2.7.
fn is_python27(python: &Path) -> bool {
    Command::new(python)
        .args(["-c", "import sys; print(sys.version_info[:2] == (2, 7))"])
        .stderr(Stdio::null())
        .output()
        .is_ok_and(|o| o.status.success() && String::from_utf8_lossy(&o.stdout).trim() == "True")
}

/// Finds a Python 2.7: `$WSHARNESS_PYTHON2`, pyenv's 2.7 versions,
/// `python2.7`, `python2`.
fn find_python27() -> anyhow::Result<PathBuf> {
    let mut candidates: Vec<PathBuf> = Vec::new();
    if let Some(p) = std::env::var_os("WSHARNESS_PYTHON2") {
        candidates.push(PathBuf::from(p));
    }
    let pyenv_root = std::env::var_os("PYENV_ROOT")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".pyenv")));
    if let Some(versions) = pyenv_root.map(|r| r.join("versions"))
        && let Ok(entries) = std::fs::read_dir(versions)
    {
        let mut found: Vec<PathBuf> = entries
            .filter_map(Result::ok)
            .filter(|e| e.file_name().to_string_lossy().starts_with("2.7"))
            .map(|e| e.path().join("bin").join("python"))
            .collect();
        found.sort();
        candidates.extend(found.into_iter().rev());
    }
    candidates.push("python2.7".into());
    candidates.push("python2".into());
    candidates.into_iter().find(|p| is_python27(p)).context(
        "no Python 2.7 found (the Autobahn testsuite runs on Python 2.7 only): install CPython 2.7 \
         (e.g. `pyenv install 2.7.18`) and/or set WSHARNESS_PYTHON2=/path/to/python2.7, or run the \
         testsuite in Docker with --docker",
    )
}

fn run_step(cmd: &mut Command, what: &str) -> anyhow::Result<()> {
    let output = cmd.output().with_context(|| format!("{what}: starting {:?}", cmd.get_program()))?;
    if !output.status.success() {
        bail!(
            "{what} failed ({}):\n{}{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(())
}

/// Creates the virtualenv once (cached) and returns it.
pub fn ensure_venv(venv: Option<PathBuf>) -> anyhow::Result<PathBuf> {
    let venv = venv.unwrap_or_else(default_venv);
    let done = venv.join(".wsharness-complete");
    if done.is_file() && venv.join("bin").join("wstest").is_file() {
        return Ok(venv);
    }
    let python = find_python27()?;
    eprintln!("autobahn: creating the testsuite's virtualenv in {} (once) with {}", venv.display(), python.display());
    let _ = std::fs::remove_dir_all(&venv);
    let bootstrap = venv.with_extension("bootstrap");
    run_step(
        Command::new(&python)
            .args(["-m", "pip", "install", "--disable-pip-version-check", "-q", "--target"])
            .arg(&bootstrap)
            .arg(VIRTUALENV),
        "installing virtualenv for Python 2.7",
    )?;
    run_step(
        Command::new(&python).env("PYTHONPATH", &bootstrap).args(["-m", "virtualenv", "-q"]).arg(&venv),
        "creating the virtualenv",
    )?;
    let reqs = venv.join("requirements-py27.txt");
    std::fs::write(&reqs, REQUIREMENTS).with_context(|| format!("writing {}", reqs.display()))?;
    run_step(
        Command::new(venv.join("bin").join("pip"))
            .args(["install", "--disable-pip-version-check", "-q", "-r"])
            .arg(&reqs),
        "installing the pinned testsuite (autobahn/requirements-py27.txt)",
    )?;
    let pip = venv.join("bin").join("pip");
    let built = Command::new(&pip)
        .args(["install", "--disable-pip-version-check", "-q", "--no-binary", ":all:", ACCELERATOR])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !built {
        eprintln!(
            "autobahn: warning: {ACCELERATOR} did not build (it needs a C compiler and Python 2.7's headers; \
             `{} install --no-binary :all: {ACCELERATOR}` shows why). wstest works without it, but spends \
             about 6 times the CPU on the compression cases (12.*, 13.*).",
            pip.display()
        );
    }
    std::fs::write(&done, "").with_context(|| format!("writing {}", done.display()))?;
    let _ = std::fs::remove_dir_all(&bootstrap);
    Ok(venv)
}

/// Whether wstest in `venv` runs with its C accelerators (wsaccel: UTF-8
/// validation and masking in C; see `ensure_venv`).
pub fn has_accelerator(venv: &Path) -> bool {
    Command::new(venv.join("bin").join("python"))
        .args(["-c", "import wsaccel.utf8validator, wsaccel.xormask"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        let table = [
            ("*", "1.1.1", true),
            ("1.*", "1.1.1", true),
            ("1.*", "12.1.1", false),
            ("12.1.*", "12.1.10", true),
            ("9.1.6", "9.1.6", true),
            ("9.1.?", "9.1.6", true),
            ("9.1.?", "9.1.10", false),
            ("*.1", "7.1", true),
        ];
        for (p, t, want) in table {
            assert_eq!(glob_match(p, t), want, "{p} {t}");
        }
    }

    #[test]
    fn expected_ids_and_selection() {
        assert_eq!(expected_case_ids().len(), 517);
        let opts = |cases: &[&str], exclude: &[&str]| RunOptions {
            url: String::new(),
            agent: String::new(),
            cases: cases.iter().map(|s| s.to_string()).collect(),
            exclude: exclude.iter().map(|s| s.to_string()).collect(),
            out: PathBuf::new(),
            docker: false,
            image: String::new(),
            venv: None,
            jobs: 1,
        };
        assert_eq!(selected_count(&opts(&["*"], &[])), 517);
        assert_eq!(selected_count(&opts(&["*"], &["12.*", "13.*"])), 517 - 216);
        assert_eq!(selected_count(&opts(&["12.?.1", "13.?.1"], &[])), 5 + 7);
    }

    #[test]
    fn question_marks_are_expanded_for_the_testsuite() {
        let mut got = spec_patterns(&["12.?.1".to_owned(), "1.*".to_owned()]);
        got.sort();
        assert_eq!(got, ["1.*", "12.1.1", "12.2.1", "12.3.1", "12.4.1", "12.5.1"]);
    }

    #[test]
    fn authorities() {
        assert_eq!(authority("ws://127.0.0.1:9001").ok().as_deref(), Some("127.0.0.1:9001"));
        assert_eq!(authority("ws://localhost/echo").ok().as_deref(), Some("localhost:80"));
        assert!(authority("http://x").is_err());
        assert!(authority("wss://x").is_err());
    }

    #[test]
    fn refused_url_is_reported_before_the_suite() {
        // Bind then drop: the port is (almost certainly) closed now.
        let port = std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port());
        let port = port.unwrap_or(1);
        let err = check_reachable(&format!("ws://127.0.0.1:{port}")).expect_err("nothing listens");
        assert!(err.to_string().contains("start the server under test first"), "{err}");
    }
}
