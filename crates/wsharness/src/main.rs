//! `wsharness`: run the Autobahn|Testsuite and judge its results.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Subcommand};
use wsharness::autobahn;

/// The WebSocket conformance tool: runs the Autobahn|Testsuite's
/// fuzzingclient against a server, judges the reports and compares runs.
#[derive(Debug, clap::Parser)]
#[command(version, about, after_help = EXAMPLES)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

const EXAMPLES: &str = "\
Examples:
  wsharness autobahn run --url ws://127.0.0.1:9001 --agent wsecho --out target/autobahn/wsecho
  wsharness autobahn run --url ws://127.0.0.1:9001 --cases '1.*,2.*' --exclude 2.10 --jobs 4
  wsharness autobahn run --engine wstest --url ws://127.0.0.1:9001 --cases '12.*,13.*'
  wsharness autobahn check target/autobahn/wsecho
  wsharness autobahn diff target/autobahn/wsecho autobahn/expected/wsecho.json
  wsharness autobahn serve --listen 127.0.0.1:9001 --cases '1.*,2.*' --out reports/clients
  wsharness autobahn client --cmd 'python3 autobahn_client.py {url}' --cases '1.*,2.*'
  wsharness bench --url ws://127.0.0.1:9001 -c 10 -w 4 -s 64KiB -d 5
  wsharness bench --url ws://127.0.0.1:9001 -c 10 --rate 10000 -d 10
  wsharness bench --url wss://example.com/ws -H 'Authorization: Bearer T' --subprotocol chat
  wsharness bench --url wss://localhost:8443 --ca ca.pem -c 1000 --connect-rate 200 --rate 2000
  wsharness replay session.jsonl --url ws://127.0.0.1:8080 --ignore '\\d{13}'
";

const BENCH_EXAMPLES: &str = "\
Examples:
  wsharness bench --url ws://127.0.0.1:9001 -c 10 -w 16 -d 5
  wsharness bench --url ws://127.0.0.1:9001 -c 10 --rate 10000 -d 10
  wsharness bench --url wss://x.example/ws -H 'Authorization: Bearer T' --origin https://x.example
  wsharness bench --url wss://example.com/ws --subprotocol chat.v1 --rate 100 --verbose
  wsharness bench --url wss://localhost:8443 --ca ca.pem -c 1000 --connect-rate 200 --warmup 6s
  wsharness bench compare wsecho=ws://127.0.0.1:9001 proxy=ws://127.0.0.1:9002
";

#[derive(Debug, Subcommand)]
enum Command {
    /// The Autobahn|Testsuite.
    #[command(subcommand)]
    Autobahn(AutobahnCommand),
    /// Load-test an echo server: every echo verified; exits 1 on any error.
    Bench(BenchArgs),
    /// Play the client side of a recorded connection against a server and
    /// compare its answers with the recorded ones: exits 0 when they match,
    /// 1 when they differ, 2 when the replay cannot happen.
    #[command(after_help = REPLAY_EXAMPLES)]
    Replay(ReplayArgs),
}

const REPLAY_EXAMPLES: &str = "\
Examples:
  wsproxy --upstream ws://127.0.0.1:8080 --format json --max-preview all --log session.jsonl
  wsharness replay session.jsonl --url ws://127.0.0.1:8080
  wsharness replay session.jsonl --url ws://staging:8080 --conn 3 --speed 2 --ignore '\"ts\":\\d+'
  wsharness replay session.jsonl --url ws://127.0.0.1:8080 --no-wait --json
  wsproxy --upstream ws://127.0.0.1:8080 --pcap session.pcapng
  wsharness replay session.pcapng --url ws://127.0.0.1:8080
";

#[derive(Debug, Args)]
struct ReplayArgs {
    /// A `wsproxy --format json --max-preview all` log (every payload in
    /// full; a capped one says which message it cannot replay), or a pcap
    /// or pcapng capture (`wsproxy --pcap`, `tcpdump -w`; told apart by
    /// its first bytes) of unencrypted traffic, decoded as `wsproxy read`
    /// decodes it.
    recording: PathBuf,
    /// The server: ws://HOST:PORT[/PATH] or wss://… (TLS). A PATH replaces
    /// the recorded request target.
    #[arg(long)]
    url: String,
    /// The connection to replay (the `conn` of its events; default: the
    /// first WebSocket connection).
    #[arg(long)]
    conn: Option<u64>,
    /// Playback speed: 2 sends twice as fast as recorded.
    #[arg(long, default_value_t = 1.0)]
    speed: f64,
    /// Send every frame as soon as the previous one is written.
    #[arg(long)]
    no_wait: bool,
    /// Mask what this regex matches (in text, or in the hex of binary
    /// messages) before comparing: timestamps, ids (repeatable).
    #[arg(long, value_name = "REGEX")]
    ignore: Vec<String>,
    /// The longest any wait may take: connecting, the 101, the server's
    /// answers after the last frame.
    #[arg(long, value_name = "DURATION", default_value = "5s", value_parser = wscli::parse_duration)]
    timeout: std::time::Duration,
    /// Print the report as one JSON object.
    #[arg(long)]
    json: bool,
    /// wss://: trust the CA certificates in this PEM file (or the server's
    /// own certificate, pinned) besides the platform's and webpki's roots.
    #[arg(long, value_name = "FILE")]
    ca: Option<PathBuf>,
    /// wss://: do not verify the server's certificate.
    #[arg(long)]
    insecure: bool,
}

fn replay(args: ReplayArgs) -> anyhow::Result<bool> {
    if !(args.speed > 0.0 && args.speed.is_finite()) {
        anyhow::bail!("--speed must be more than 0");
    }
    let ignore = args
        .ignore
        .iter()
        .map(|r| regex::Regex::new(r).with_context(|| format!("--ignore {r}")))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let file = std::fs::File::open(&args.recording)
        .with_context(|| format!("opening the recording {}", args.recording.display()))?;
    let rec = wsharness::replay::Recording::from_reader(file, args.conn)
        .with_context(|| format!("{}", args.recording.display()))?;
    let opts = wsharness::replay::Options {
        url: args.url,
        speed: args.speed,
        no_wait: args.no_wait,
        ignore,
        timeout: args.timeout,
        ca_file: args.ca,
        insecure: args.insecure,
    };
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let report = runtime.block_on(wsharness::replay::run(&rec, &opts))?;
    if args.json {
        emit(&(serde_json::to_string(&report)? + "\n"));
    } else {
        emit(&report.render());
    }
    Ok(report.matched)
}

#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true, after_help = BENCH_EXAMPLES)]
struct BenchArgs {
    #[command(subcommand)]
    command: Option<BenchCommand>,
    #[command(flatten)]
    run: BenchRunArgs,
}

#[derive(Debug, Args)]
struct BenchRunArgs {
    /// The echo server, ws://HOST:PORT[/PATH] or wss://….
    #[arg(long)]
    url: Option<String>,
    /// Connections.
    #[arg(long, short = 'c', default_value_t = 1)]
    conns: usize,
    /// Messages in flight per connection (1: strict ping-pong); closed
    /// loop only. Default 1.
    #[arg(long, short = 'w')]
    window: Option<usize>,
    /// Payload per message: 16, 64KiB, 1MiB.
    #[arg(long, short = 's', value_name = "SIZE", default_value = "16", value_parser = wscli::parse_size_usize)]
    size: usize,
    /// Send text messages instead of binary.
    #[arg(long)]
    text: bool,
    /// How long to measure (after the warm-up).
    #[arg(long, short = 'd', default_value = "5s", value_parser = wscli::parse_duration, conflicts_with = "messages")]
    duration: std::time::Duration,
    /// Send this many messages per connection instead of measuring for a duration.
    #[arg(long, short = 'n')]
    messages: Option<u64>,
    /// Warm-up before measuring (checked, not counted).
    #[arg(long, default_value = "1s", value_parser = wscli::parse_duration)]
    warmup: std::time::Duration,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
    /// Open loop: send this many messages per second across all
    /// connections, on schedule whether or not echoes have come back;
    /// round trips are measured from each message's scheduled send time
    /// (no coordinated omission). --window is ignored.
    #[arg(long, value_name = "MSG_PER_SEC", value_parser = wsharness::bench::parse_rate)]
    rate: Option<f64>,
    /// Open the connections at this many per second (a ramp) instead of
    /// all at once.
    #[arg(long, value_name = "CONNS_PER_SEC", value_parser = wsharness::bench::parse_rate)]
    connect_rate: Option<f64>,
    /// A request header for the opening handshake, 'Name: value'
    /// (repeatable): Authorization, Cookie, …
    #[arg(long = "header", short = 'H', value_name = "NAME: VALUE")]
    headers: Vec<String>,
    /// Offer this subprotocol (repeatable, in order of preference); a 101
    /// that picks one not offered fails the connection.
    #[arg(long = "subprotocol", value_name = "NAME")]
    subprotocols: Vec<String>,
    /// The Origin header.
    #[arg(long)]
    origin: Option<String>,
    /// wss://: trust the CA certificates in this PEM file (or the server's
    /// own certificate, pinned) besides the platform's and webpki's roots.
    #[arg(long, value_name = "FILE")]
    ca: Option<PathBuf>,
    /// wss://: do not verify the server's certificate.
    #[arg(long)]
    insecure: bool,
    /// Report every connection (handshake times, counts, how it ended).
    #[arg(long, short = 'v')]
    verbose: bool,
}

#[derive(Debug, Subcommand)]
enum BenchCommand {
    /// Run a fixed matrix (latency 1×1×16 B; throughput 10×16×16 B,
    /// 10×4×64 KiB, 2×2×1 MiB) against each target, alternating targets over
    /// several rounds, and print medians and ratios to the first target.
    Compare {
        /// Targets as NAME=URL or NAME=URL@PID (PID: sample the server's peak RSS and CPU time per echo).
        #[arg(required = true)]
        targets: Vec<String>,
        /// Rounds.
        #[arg(long, default_value_t = 3)]
        rounds: usize,
        /// Measured time per run.
        #[arg(long, default_value = "3s", value_parser = wscli::parse_duration)]
        duration: std::time::Duration,
        /// Warm-up per run.
        #[arg(long, default_value = "500ms", value_parser = wscli::parse_duration)]
        warmup: std::time::Duration,
        /// Do not keep the other core busy during latency runs.
        #[arg(long)]
        no_spinner: bool,
        /// Print the whole comparison as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Hold N idle connections and report the server's memory per connection.
    Idle {
        /// The server.
        #[arg(long)]
        url: String,
        /// Its process id (for /proc/PID/status).
        #[arg(long)]
        pid: u32,
        /// Connections to hold.
        #[arg(long, short = 'c', default_value_t = 1000)]
        conns: usize,
        /// How long to let the server settle before measuring.
        #[arg(long, default_value = "1s", value_parser = wscli::parse_duration)]
        settle: std::time::Duration,
    },
}

const SERVE_EXAMPLES: &str = "\
Examples:
  wsharness autobahn serve
  wsharness autobahn serve --listen 127.0.0.1:0 --cases '1.*,5.*,12.1.*' --out reports/clients
  wsharness autobahn serve --exclude '9.*,12.*,13.*' --once
  websocat ws://127.0.0.1:9001/getCaseCount

The URL interface is wstest's (autobahntestsuite/fuzzing.py):
  /getCaseCount                   the number of cases, as a text message, then a close
  /getCaseInfo?case=N             {\"id\": …, \"description\": …}
  /runCase?case=N&agent=A         runs the N-th case (1-based); casetuple=1.1.1 also works
  /getCaseStatus?case=N&agent=A   {\"behavior\": …} once the case has run
  /updateReports?agent=A          writes index.json and the per-case reports
";

const CLIENT_EXAMPLES: &str = "\
Examples:
  wsharness autobahn client --cmd 'python3 autobahn_client.py {url}'
  wsharness autobahn client --cases '1.*,2.*,5.*' --agent myclient -- node autobahn-client.js
  wsharness autobahn client --engine wstest --cmd 'cargo run --example autobahn-client -- {url}'
  wsharness autobahn client --timeout 20m --exclude '9.*' -- ./target/release/my-driver

The driver gets the base URL ws://127.0.0.1:PORT in place of {url} and in $AUTOBAHN_URL,
and appends /getCaseCount, /runCase?case=N&agent=A and /updateReports?agent=A to it.
Exit status: 0 when every case passes, 1 when one fails, 2 when the run cannot be judged.
";

#[derive(Debug, Subcommand)]
enum AutobahnCommand {
    /// Run the fuzzingclient against a server, then check the results.
    Run(RunArgs),
    /// Test WebSocket clients: a fuzzingserver with wstest's URL interface
    /// (getCaseCount, runCase, getCaseStatus, updateReports), the same cases
    /// run from the server's side, wstest's reports. Runs until Ctrl-C (or
    /// --once).
    #[command(after_help = SERVE_EXAMPLES)]
    Serve(ServeArgs),
    /// Test a WebSocket client in one command: start a fuzzingserver on a
    /// free port, run the client's Autobahn driver against it with a time
    /// bound, judge the reports as `check` does.
    #[command(after_help = CLIENT_EXAMPLES)]
    Client(ClientArgs),
    /// Create the testsuite's Python 2.7 virtualenv (once) and print where
    /// it is: wstest runs in it, and the native engine reads the
    /// compression cases' test data files from it.
    Setup {
        /// The virtualenv to create (default: in the cache directory; also
        /// $WSHARNESS_VENV).
        #[arg(long)]
        venv: Option<PathBuf>,
    },
    /// Judge a report directory: counts per category, failing cases; exits
    /// 1 when any case fails.
    Check {
        /// A report directory (with index.json) or an index.json file.
        dir: PathBuf,
        /// The agent to judge, when the reports hold several.
        #[arg(long)]
        agent: Option<String>,
    },
    /// Compare two runs case by case (behavior and close behavior; durations
    /// ignored); exits 1 on any difference. Cases only one side ran (a
    /// partial run with --cases) are counted, not compared, unless
    /// --require-all-cases.
    Diff {
        /// A report directory, an index.json, or an expected-results file.
        left: PathBuf,
        /// The same, for the other side.
        right: PathBuf,
        /// The agent on the left, when it holds several.
        #[arg(long)]
        left_agent: Option<String>,
        /// The agent on the right, when it holds several.
        #[arg(long)]
        right_agent: Option<String>,
        /// Count a case that only one side ran as a difference (for full
        /// runs against expected results).
        #[arg(long)]
        require_all_cases: bool,
    },
    /// Attribute the violations in a `wsproxy --format json` log of a run to
    /// the run's cases; with --expected, exit 1 unless they are exactly the
    /// expected ones.
    ProxyLog {
        /// The run's report directory.
        reports: PathBuf,
        /// The proxy's JSON Lines log of the same run.
        log: PathBuf,
        /// A file of `CASE from:rule,…` lines to compare with (`from:*`: and
        /// maybe other rules from that side; `#` starts a comment).
        #[arg(long)]
        expected: Option<PathBuf>,
        /// The agent, when the reports hold several.
        #[arg(long)]
        agent: Option<String>,
    },
    /// Write a run's results as an expected-results file (durations stripped).
    Export {
        /// A report directory or index.json.
        dir: PathBuf,
        /// The agent, when the reports hold several.
        #[arg(long)]
        agent: Option<String>,
        /// Output file (default: standard output).
        #[arg(long, short)]
        output: Option<PathBuf>,
    },
}

/// The engines `autobahn run` can use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Engine {
    /// The cases in Rust (wsharness itself).
    Native,
    /// wstest in a cached Python 2.7 virtualenv.
    Wstest,
    /// wstest in the pinned Docker image.
    Docker,
}

#[derive(Debug, Args)]
struct ServeArgs {
    /// Where to listen (port 0: any free port; the real address is printed
    /// as `listening on ws://ADDR` on stderr once ready).
    #[arg(long, default_value = "127.0.0.1:9001", value_parser = parse_fuzzingserver_listen)]
    listen: std::net::SocketAddr,
    /// Cases to serve, comma-separated patterns (the spec's `cases`).
    #[arg(long, default_value = "*", value_delimiter = ',')]
    cases: Vec<String>,
    /// Cases to leave out, comma-separated patterns.
    #[arg(long, value_delimiter = ',')]
    exclude: Vec<String>,
    /// Report directory (written on /updateReports).
    #[arg(long, default_value = "autobahn/reports/clients")]
    out: PathBuf,
    /// Stop once a client has asked for /updateReports, then judge the
    /// reports as `check` does (exit 1 on a failing case).
    #[arg(long)]
    once: bool,
    /// Do not print a line per finished case.
    #[arg(long, short)]
    quiet: bool,
    /// The virtualenv whose testsuite has the compression cases' test data
    /// (default: in the cache directory; also $WSHARNESS_VENV).
    #[arg(long)]
    venv: Option<PathBuf>,
}

/// The fuzzingservers `autobahn client` can use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum ClientEngine {
    /// The cases in Rust, in this process.
    Native,
    /// wstest's fuzzingserver in a cached Python 2.7 virtualenv.
    Wstest,
}

#[derive(Debug, Args)]
struct ClientArgs {
    /// The driver as a shell command line; `{url}` is replaced by the base
    /// URL (ws://127.0.0.1:PORT).
    #[arg(long, conflicts_with = "command", required_unless_present = "command")]
    cmd: Option<String>,
    /// The driver as a program and its arguments (after `--`); `{url}` is
    /// replaced in each, and $AUTOBAHN_URL is set either way.
    #[arg(last = true, value_name = "COMMAND")]
    command: Vec<String>,
    /// Which fuzzingserver tests the client.
    #[arg(long, value_enum, default_value_t = ClientEngine::Native)]
    engine: ClientEngine,
    /// Cases to run, comma-separated patterns.
    #[arg(long, default_value = "*", value_delimiter = ',')]
    cases: Vec<String>,
    /// Cases to leave out, comma-separated patterns.
    #[arg(long, value_delimiter = ',')]
    exclude: Vec<String>,
    /// The agent to judge, when the driver reported several.
    #[arg(long)]
    agent: Option<String>,
    /// Report directory.
    #[arg(long, default_value = "autobahn/reports/clients")]
    out: PathBuf,
    /// The time the driver gets for all cases; then it and its process
    /// group are killed and the run cannot be judged. (wstest's
    /// fuzzingserver took over 30 minutes for the 216 compression cases
    /// against Python `websockets` here; the native one about 10.)
    #[arg(long, default_value = "1h", value_parser = wscli::parse_duration)]
    timeout: std::time::Duration,
    /// The virtualenv to use or create (default: in the cache directory;
    /// also $WSHARNESS_VENV).
    #[arg(long)]
    venv: Option<PathBuf>,
}

/// `--listen`: `HOST:PORT`, `:PORT` or `PORT` (127.0.0.1 by default).
fn parse_fuzzingserver_listen(s: &str) -> Result<std::net::SocketAddr, String> {
    wscli::parse_listen(s, 9001)
}

#[derive(Debug, Args)]
struct RunArgs {
    /// The server under test.
    #[arg(long)]
    url: String,
    /// The name the reports give the server.
    #[arg(long, default_value = "server")]
    agent: String,
    /// Cases to run, comma-separated patterns.
    #[arg(long, default_value = "*", value_delimiter = ',')]
    cases: Vec<String>,
    /// Cases to skip, comma-separated patterns.
    #[arg(long, value_delimiter = ',')]
    exclude: Vec<String>,
    /// Report directory.
    #[arg(long, default_value = "autobahn/reports")]
    out: PathBuf,
    /// Which engine runs the cases: the native Rust engine (no Python, no
    /// Docker; all 517 cases, with wstest's verdicts), wstest in a local
    /// Python 2.7 virtualenv, or wstest in Docker (host networking).
    #[arg(long, value_enum, default_value_t = Engine::Native)]
    engine: Engine,
    /// Cases to run at the same time (native engine): their waits overlap,
    /// which a server that serves one connection at a time may not like.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=256))]
    jobs: u16,
    /// Same as --engine docker (kept for existing scripts).
    #[arg(long, conflicts_with = "engine")]
    docker: bool,
    /// The Docker image (with --docker).
    #[arg(long, default_value = autobahn::DEFAULT_IMAGE)]
    image: String,
    /// The virtualenv to use or create (default: in the cache directory;
    /// also $WSHARNESS_VENV).
    #[arg(long)]
    venv: Option<PathBuf>,
}

fn main() -> ExitCode {
    let cli: Cli = wscli::parse_args("wsharness");
    match run(cli.command) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            wscli::report("wsharness", &e);
            ExitCode::from(2)
        }
    }
}

/// Prints to stdout; a closed pipe (`| head`) is not an error.
fn emit(text: &str) {
    use std::io::Write;
    let _ = std::io::stdout().write_all(text.as_bytes());
}

/// Runs a command; `Ok(false)` when its verdict is a failure.
fn run(command: Command) -> anyhow::Result<bool> {
    let command = match command {
        Command::Autobahn(command) => command,
        Command::Bench(args) => return bench(args),
        Command::Replay(args) => return replay(args),
    };
    match command {
        AutobahnCommand::Run(args) => {
            let opts = autobahn::RunOptions {
                url: args.url,
                agent: args.agent.clone(),
                cases: args.cases,
                exclude: args.exclude,
                out: args.out,
                docker: args.docker || args.engine == Engine::Docker,
                image: args.image,
                venv: args.venv,
                jobs: usize::from(args.jobs),
            };
            let dir = if args.engine == Engine::Native {
                autobahn::native::run_native(&opts)?
            } else {
                autobahn::run(&opts)?
            };
            check(&dir, Some(&args.agent))
        }
        AutobahnCommand::Serve(args) => {
            let opts = autobahn::native::ServeOptions {
                cases: args.cases,
                exclude: args.exclude,
                out: args.out,
                venv: args.venv,
                log_cases: !args.quiet,
            };
            match autobahn::native::serve(&opts, args.listen, args.once)? {
                Some(dir) if args.once => check(&dir, None),
                // Stopped (Ctrl-C, /stopServer) or the reports could not be
                // written: nothing to judge, which is not a pass.
                None if args.once => anyhow::bail!("autobahn serve --once: no reports were written, nothing to judge"),
                _ => Ok(true),
            }
        }
        AutobahnCommand::Client(args) => {
            let driver = match args.cmd {
                Some(line) => autobahn::Driver::Shell(line),
                None => autobahn::Driver::Argv(args.command),
            };
            let opts = autobahn::ClientOptions {
                driver,
                engine: match args.engine {
                    ClientEngine::Native => autobahn::ServerEngine::Native,
                    ClientEngine::Wstest => autobahn::ServerEngine::Wstest,
                },
                cases: args.cases,
                exclude: args.exclude,
                out: args.out,
                timeout: args.timeout,
                venv: args.venv,
                progress: std::io::IsTerminal::is_terminal(&std::io::stderr()),
            };
            let dir = autobahn::run_client(&opts)?;
            check(&dir, args.agent.as_deref())
        }
        AutobahnCommand::Setup { venv } => {
            let venv = autobahn::ensure_venv(venv)?;
            if !autobahn::has_accelerator(&venv) {
                eprintln!(
                    "autobahn: wstest runs without its C accelerators (wsaccel): the compression cases take \
                     about 6 times the CPU; remove {} to build it again",
                    venv.display()
                );
            }
            emit(&format!("{}\n", venv.display()));
            Ok(true)
        }
        AutobahnCommand::Check { dir, agent } => check(&dir, agent.as_deref()),
        AutobahnCommand::Diff { left, right, left_agent, right_agent, require_all_cases } => {
            let l = autobahn::load_results(&left, left_agent.as_deref())?;
            let r = autobahn::load_results(&right, right_agent.as_deref())?;
            let comparison = autobahn::compare(&l, &r);
            let (ln, rn) = (left.display().to_string(), right.display().to_string());
            emit(&autobahn::render_comparison(&ln, &rn, &comparison, require_all_cases));
            Ok(comparison.passes(require_all_cases))
        }
        AutobahnCommand::ProxyLog { reports, log, expected, agent } => {
            let results = autobahn::load_results(&reports, agent.as_deref())?;
            let found = autobahn::violations_by_case(&results, &log)?;
            let Some(expected) = expected else {
                emit(&autobahn::render_violations(&found));
                return Ok(true);
            };
            let text = std::fs::read_to_string(&expected).with_context(|| format!("reading {}", expected.display()))?;
            let want = autobahn::parse_expected_violations(&text)?;
            let mut ok = true;
            for (case, rules) in &found {
                if !want.get(case).is_some_and(|want| autobahn::expected_matches(want, rules)) {
                    ok = false;
                    let expected = want.get(case).map(|r| format!("{r:?}")).unwrap_or_else(|| "none".into());
                    emit(&format!("{case}: reported {rules:?}, expected {expected}\n"));
                }
            }
            for case in want.keys().filter(|c| !found.contains_key(*c)) {
                ok = false;
                emit(&format!("{case}: expected violations, none reported\n"));
            }
            let cases = found.len();
            emit(&if ok {
                format!("proxy log: violations reported in exactly the {cases} expected cases\n")
            } else {
                "proxy log: the reported violations differ from the expected ones\n".to_string()
            });
            Ok(ok)
        }
        AutobahnCommand::Export { dir, agent, output } => {
            let results = autobahn::load_results(&dir, agent.as_deref())?;
            let text = serde_json::to_string_pretty(&results.to_expected())? + "\n";
            match output {
                Some(path) => std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?,
                None => emit(&text),
            }
            Ok(true)
        }
    }
}

fn bench(args: BenchArgs) -> anyhow::Result<bool> {
    use wsharness::bench;
    match args.command {
        None => {
            let a = args.run;
            let url = a.url.context("--url is required (the echo server to load)")?;
            if a.rate.is_some() && a.window.is_some() {
                eprintln!("wsharness: note: --window is ignored with --rate (open loop sends on schedule)");
            }
            let opts = bench::BenchOptions {
                url,
                conns: a.conns,
                window: a.window.unwrap_or(1),
                size: a.size,
                text: a.text,
                duration: a.duration,
                messages: a.messages,
                warmup: if a.messages.is_some() { std::time::Duration::ZERO } else { a.warmup },
                progress: !a.json && std::io::IsTerminal::is_terminal(&std::io::stderr()),
                tls: bench::TlsOptions { ca_file: a.ca, insecure: a.insecure },
                headers: a.headers,
                origin: a.origin,
                subprotocols: a.subprotocols,
                rate: a.rate,
                connect_rate: a.connect_rate,
                verbose: a.verbose,
            };
            let report = bench::run(&opts)?;
            if a.json {
                emit(&(serde_json::to_string(&report)? + "\n"));
            } else {
                emit(&bench::render_report(&report));
            }
            Ok(report.error_count == 0)
        }
        Some(BenchCommand::Compare { targets, rounds, duration, warmup, no_spinner, json }) => {
            let mut parsed = Vec::new();
            for t in targets {
                let (name, rest) = t.split_once('=').with_context(|| format!("{t:?}: expected NAME=URL[@PID]"))?;
                let (url, pid) = match rest.rsplit_once('@') {
                    Some((url, pid)) => (url, Some(pid.parse().with_context(|| format!("{t:?}: bad PID"))?)),
                    None => (rest, None),
                };
                parsed.push((name.to_owned(), url.to_owned(), pid));
            }
            let opts = bench::CompareOptions { targets: parsed, rounds, duration, warmup, spinner: !no_spinner };
            let comparison = bench::compare(&opts, |name, workload, round, r| {
                eprintln!(
                    "round {} {workload:<24} {name:<16} {:>10.0} msg/s {:>8.1} MB/s p50 {:>6} µs",
                    round + 1,
                    r.messages_per_sec,
                    r.mb_per_sec,
                    r.rtt_us.p50
                );
            })?;
            if json {
                emit(&(serde_json::to_string_pretty(&comparison)? + "\n"));
            } else {
                emit(&bench::render_compare(&comparison));
            }
            Ok(true)
        }
        Some(BenchCommand::Idle { url, pid, conns, settle }) => {
            let (before, after, per_conn) = bench::idle(&url, conns, pid, settle)?;
            emit(&format!(
                "{url}: RSS {before} KiB before, {after} KiB with {conns} idle connections: {per_conn:.1} KiB per connection\n"
            ));
            Ok(true)
        }
    }
}

fn check(dir: &std::path::Path, agent: Option<&str>) -> anyhow::Result<bool> {
    let results = autobahn::load_results(dir, agent)?;
    let summary = autobahn::summarize(&results);
    emit(&autobahn::render_check(&summary));
    Ok(summary.passed())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cli_definition_is_valid() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
