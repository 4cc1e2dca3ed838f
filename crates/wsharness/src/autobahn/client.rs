//! `wsharness autobahn client`: test a WebSocket client in one command.
//!
//! Starts a fuzzingserver on `127.0.0.1` (port 0: a free port), the native
//! one in-process ([`super::native::start`]) or wstest's
//! (`wstest -m fuzzingserver -s SPEC` from the testsuite's virtualenv),
//! runs the client's driver against it with a time bound, stops the
//! server, and hands back the report directory for `check`'s judgement.
//!
//! The driver is the small program client libraries ship for wstest's
//! fuzzingserver (tokio-tungstenite's `examples/autobahn-client.rs`, the
//! Python `websockets` and Node `ws` ones): it asks `BASE/getCaseCount`,
//! runs `BASE/runCase?case=N&agent=A` for each case, echoing what it gets,
//! and asks `BASE/updateReports?agent=A` at the end. It gets the base URL
//! (`ws://127.0.0.1:PORT`) in place of `{url}` in its command line and in
//! `AUTOBAHN_URL`.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use indicatif::{ProgressBar, ProgressStyle};

use super::native::{ServeOptions, Serving};

/// The environment variable the driver finds the base URL in.
pub const URL_ENV: &str = "AUTOBAHN_URL";

/// How long wstest may take to start listening.
const WSTEST_START_TIMEOUT: Duration = Duration::from_secs(60);

/// How the driver is started.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Driver {
    /// A shell command line (`sh -c`), `{url}` replaced by the base URL.
    Shell(String),
    /// A program and its arguments, `{url}` replaced in each.
    Argv(Vec<String>),
}

/// Which fuzzingserver tests the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServerEngine {
    /// The native engine, in this process.
    Native,
    /// wstest 25.10.1's fuzzingserver, from the testsuite's virtualenv.
    Wstest,
}

/// What `autobahn client` runs.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// The driver.
    pub driver: Driver,
    /// The fuzzingserver.
    pub engine: ServerEngine,
    /// Case patterns.
    pub cases: Vec<String>,
    /// Case patterns left out.
    pub exclude: Vec<String>,
    /// The report directory.
    pub out: PathBuf,
    /// The time the driver gets for all of it.
    pub timeout: Duration,
    /// The testsuite's virtualenv (wstest, and the compression cases' data).
    pub venv: Option<PathBuf>,
    /// A progress bar on stderr.
    pub progress: bool,
}

/// `{url}` replaced by the base URL.
fn substitute(s: &str, url: &str) -> String {
    s.replace("{url}", url)
}

/// The driver's command, its `{url}` replaced, `AUTOBAHN_URL` set, in a
/// process group of its own (so that a timeout ends its children too).
pub fn driver_command(driver: &Driver, url: &str) -> anyhow::Result<Command> {
    let mut cmd = match driver {
        Driver::Shell(line) => {
            let mut cmd = Command::new("sh");
            cmd.arg("-c").arg(substitute(line, url));
            cmd
        }
        Driver::Argv(argv) => {
            let (program, args) = argv.split_first().context("no driver command given")?;
            let mut cmd = Command::new(substitute(program, url));
            cmd.args(args.iter().map(|a| substitute(a, url)));
            cmd
        }
    };
    cmd.env(URL_ENV, url).stdin(Stdio::null());
    #[cfg(unix)]
    std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
    Ok(cmd)
}

/// Ends a child and its process group (SIGKILL), then reaps it.
fn kill_tree(child: &mut Child) {
    #[cfg(target_os = "linux")]
    if let Some(pid) = i32::try_from(child.id()).ok().and_then(rustix::process::Pid::from_raw) {
        let _ = rustix::process::kill_process_group(pid, rustix::process::Signal::KILL);
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// Waits for a child until `deadline`; None when it is still running then.
fn wait_until(child: &mut Child, deadline: Instant) -> anyhow::Result<Option<ExitStatus>> {
    loop {
        if let Some(status) = child.try_wait().context("waiting for the driver")? {
            return Ok(Some(status));
        }
        if Instant::now() >= deadline {
            return Ok(None);
        }
        // No child-exit event to wait on without a signal handler: poll.
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn display_driver(driver: &Driver) -> String {
    match driver {
        Driver::Shell(line) => line.clone(),
        Driver::Argv(argv) => argv.join(" "),
    }
}

/// The server side of a run, whichever engine: where it listens, how many
/// cases ran, how to stop it.
enum Server {
    Native { serving: Serving },
    Wstest { child: Child, port: u16, ran: std::sync::Arc<std::sync::atomic::AtomicU64>, selected: usize },
}

impl Server {
    fn port(&self) -> u16 {
        match self {
            Server::Native { serving, .. } => serving.addr.port(),
            Server::Wstest { port, .. } => *port,
        }
    }

    /// The cases the run selects (for the progress bar).
    fn selected(&self) -> usize {
        match self {
            Server::Native { serving } => serving.server.case_ids().len(),
            Server::Wstest { selected, .. } => *selected,
        }
    }

    fn cases_run(&self) -> u64 {
        match self {
            Server::Native { serving, .. } => serving.server.recorded_count() as u64,
            Server::Wstest { ran, .. } => ran.load(std::sync::atomic::Ordering::Relaxed),
        }
    }

    fn stop(self) {
        match self {
            Server::Native { serving } => serving.server.stop(),
            Server::Wstest { mut child, .. } => kill_tree(&mut child),
        }
    }
}

/// A free port on 127.0.0.1 for wstest (which cannot report the port it
/// got): bound, read, released.
fn free_port() -> anyhow::Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").context("finding a free port on 127.0.0.1")?;
    Ok(listener.local_addr()?.port())
}

/// wstest's fuzzingserver with a spec for this run, once it accepts
/// connections.
fn start_wstest(
    opts: &ClientOptions,
    out: &Path,
    interrupted: &std::sync::atomic::AtomicBool,
) -> anyhow::Result<Server> {
    let port = free_port()?;
    let spec = serde_json::json!({
        "url": format!("ws://127.0.0.1:{port}"),
        "outdir": out.display().to_string(),
        "cases": super::run::spec_patterns(&opts.cases),
        "exclude-cases": super::run::spec_patterns(&opts.exclude),
    });
    let spec_path = out.join("fuzzingserver.json");
    std::fs::write(&spec_path, serde_json::to_string_pretty(&spec)?)
        .with_context(|| format!("writing {}", spec_path.display()))?;
    let venv = super::ensure_venv(opts.venv.clone())?;
    let wstest = venv.join("bin").join("wstest");
    let mut cmd = Command::new(&wstest);
    // --webport 0: no web server on 8080 besides the fuzzingserver.
    cmd.args(["-m", "fuzzingserver", "--webport", "0", "-s"])
        .arg(&spec_path)
        .current_dir(out)
        // Its "Running test case ID" lines are the progress: line by line.
        .env("PYTHONUNBUFFERED", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    #[cfg(unix)]
    std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
    let mut child = cmd.spawn().with_context(|| format!("starting {}", wstest.display()))?;
    let ran = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let tail = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    for stream in [
        child.stdout.take().map(|s| Box::new(s) as Box<dyn std::io::Read + Send>),
        child.stderr.take().map(|s| Box::new(s) as _),
    ]
    .into_iter()
    .flatten()
    {
        let (ran, tail) = (std::sync::Arc::clone(&ran), std::sync::Arc::clone(&tail));
        std::thread::spawn(move || {
            for line in BufReader::new(stream).lines().map_while(Result::ok) {
                if line.starts_with("Running test case ID ") {
                    ran.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
                if let Ok(mut tail) = tail.lock() {
                    tail.push(line);
                    if tail.len() > 40 {
                        tail.remove(0);
                    }
                }
            }
        });
    }
    // Wait for it to listen: connect until it accepts (it prints nothing
    // once listening), and stop early if it exits.
    let deadline = Instant::now() + WSTEST_START_TIMEOUT;
    loop {
        if let Some(status) = child.try_wait().context("waiting for wstest")? {
            let tail = tail.lock().map(|t| t.join("\n")).unwrap_or_default();
            bail!("wstest's fuzzingserver exited ({status}) before listening; its last output:\n{tail}");
        }
        if std::net::TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_millis(200)).is_ok() {
            break;
        }
        if Instant::now() >= deadline {
            kill_tree(&mut child);
            bail!("wstest's fuzzingserver did not listen on 127.0.0.1:{port} within {WSTEST_START_TIMEOUT:?}");
        }
        if interrupted.load(std::sync::atomic::Ordering::Relaxed) {
            kill_tree(&mut child);
            bail!("interrupted while wstest's fuzzingserver was starting");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let selected = super::run::expected_case_ids()
        .iter()
        .filter(|id| {
            opts.cases.iter().any(|p| super::run::glob_match(p, id))
                && !opts.exclude.iter().any(|p| super::run::glob_match(p, id))
        })
        .count();
    Ok(Server::Wstest { child, port, ran, selected })
}

/// Runs the driver against a fresh fuzzingserver and returns the report
/// directory it had written. Fails (the caller exits 2) when the run
/// cannot be judged: the server does not start, the driver cannot start,
/// exits with an error before any case ran, outlives the timeout, or
/// finishes without asking for `/updateReports`.
pub fn run_client(opts: &ClientOptions) -> anyhow::Result<PathBuf> {
    std::fs::create_dir_all(&opts.out).with_context(|| format!("creating {}", opts.out.display()))?;
    let out = opts.out.canonicalize().with_context(|| format!("resolving {}", opts.out.display()))?;
    // Old reports would be read as this run's.
    let _ = std::fs::remove_file(out.join("index.json"));
    // The native server runs on this runtime's one worker thread while this
    // thread waits for the driver; it also catches Ctrl-C and SIGTERM, so
    // that the driver and wstest (each in a process group of its own, out
    // of the terminal's reach) end with this process.
    let runtime =
        tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().context("starting tokio")?;
    let interrupted = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    runtime.spawn(wait_for_interrupt(std::sync::Arc::clone(&interrupted)));
    let server = match opts.engine {
        ServerEngine::Native => {
            let serve = ServeOptions {
                cases: opts.cases.clone(),
                exclude: opts.exclude.clone(),
                out: out.clone(),
                venv: opts.venv.clone(),
                log_cases: false,
            };
            let serving = super::native::start(&runtime, &serve, ([127, 0, 0, 1], 0).into())?;
            Server::Native { serving }
        }
        ServerEngine::Wstest => start_wstest(opts, &out, &interrupted)?,
    };
    let url = format!("ws://127.0.0.1:{}", server.port());
    let result = drive(opts, &url, &server, &interrupted);
    let ran = server.cases_run();
    server.stop();
    runtime.shutdown_timeout(Duration::from_secs(1));
    let status = result?;
    let shown = display_driver(&opts.driver);
    if !out.join("index.json").is_file() {
        bail!(
            "the driver ({shown}) {} after {} without asking for {url}/updateReports?agent=…: no reports to judge",
            describe(status),
            wscli::count(ran, "case")
        );
    }
    if !status.success() {
        eprintln!("autobahn client: note: the driver {} (the reports are judged anyway)", describe(status));
    }
    eprintln!("autobahn client: {} run against the driver, reports in {}", wscli::count(ran, "case"), out.display());
    Ok(out)
}

/// Sets `flag` on Ctrl-C or SIGTERM.
async fn wait_for_interrupt(flag: std::sync::Arc<std::sync::atomic::AtomicBool>) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let (Ok(mut int), Ok(mut term)) = (signal(SignalKind::interrupt()), signal(SignalKind::terminate())) else {
            return;
        };
        tokio::select! {
            _ = int.recv() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = tokio::signal::ctrl_c().await;
    flag.store(true, std::sync::atomic::Ordering::Relaxed);
}

fn describe(status: ExitStatus) -> String {
    match status.code() {
        Some(0) => "finished".into(),
        Some(code) => format!("exited with status {code}"),
        None => format!("was ended by a signal ({status})"),
    }
}

/// Starts the driver and waits for it within the timeout.
fn drive(
    opts: &ClientOptions,
    url: &str,
    server: &Server,
    interrupted: &std::sync::atomic::AtomicBool,
) -> anyhow::Result<ExitStatus> {
    let shown = display_driver(&opts.driver);
    let mut child =
        driver_command(&opts.driver, url)?.spawn().with_context(|| format!("starting the driver ({shown})"))?;
    let bar = if opts.progress { ProgressBar::new(server.selected() as u64) } else { ProgressBar::hidden() };
    bar.set_style(
        ProgressStyle::with_template("{bar:30} autobahn client {pos}/{len} cases [{elapsed}]")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let deadline = Instant::now() + opts.timeout;
    let status = loop {
        bar.set_position(server.cases_run());
        match wait_until(&mut child, (Instant::now() + Duration::from_millis(100)).min(deadline)) {
            Ok(Some(status)) => break status,
            Ok(None) if interrupted.load(std::sync::atomic::Ordering::Relaxed) => {
                kill_tree(&mut child);
                bar.finish_and_clear();
                bail!("interrupted: ended the driver ({shown}) and the fuzzingserver");
            }
            Ok(None) if Instant::now() >= deadline => {
                kill_tree(&mut child);
                bar.finish_and_clear();
                bail!(
                    "the driver ({shown}) did not finish within {} ({} run): ended it and its process group",
                    humantime::format_duration(opts.timeout),
                    wscli::count(server.cases_run(), "case")
                );
            }
            Ok(None) => {}
            Err(e) => {
                kill_tree(&mut child);
                bar.finish_and_clear();
                return Err(e);
            }
        }
    };
    bar.finish_and_clear();
    if !status.success() && server.cases_run() == 0 {
        bail!("the driver ({shown}) {} before running any case (is {url} in its command?)", describe(status));
    }
    Ok(status)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_url_reaches_the_driver() {
        let cmd =
            driver_command(&Driver::Argv(vec!["drv".into(), "--url={url}/x".into()]), "ws://h:1").expect("command");
        assert_eq!(cmd.get_program(), "drv");
        assert_eq!(cmd.get_args().collect::<Vec<_>>(), ["--url=ws://h:1/x"]);
        assert!(cmd.get_envs().any(|(k, v)| k == URL_ENV && v == Some("ws://h:1".as_ref())));
        let cmd = driver_command(&Driver::Shell("client {url} {url}".into()), "ws://h:1").expect("command");
        assert_eq!(cmd.get_args().collect::<Vec<_>>(), ["-c", "client ws://h:1 ws://h:1"]);
        assert!(driver_command(&Driver::Argv(vec![]), "ws://h:1").is_err());
    }
}
