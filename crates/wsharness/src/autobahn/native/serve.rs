//! The fuzzingserver: the same cases, run from the server's side against a
//! WebSocket client, behind the URL interface of wstest's
//! `-m fuzzingserver` (`autobahntestsuite/fuzzing.py`:
//! `FuzzingServerProtocol.onConnect` reads the request, `FuzzingProtocol.onOpen`
//! answers it), so that a client library's existing driver runs unchanged:
//!
//! * `/getCaseCount`: the number of selected cases, as a text message, then
//!   a close;
//! * `/getCaseInfo?case=N`: `{"id": …, "description": …}`, then a close;
//! * `/runCase?case=N&agent=A` (or `casetuple=1.1.1`): runs the N-th
//!   selected case (1-based, in wstest's order: sorted by id) on this
//!   connection, with the fuzzer as the server ([`super::Role::Server`]);
//! * `/getCaseStatus?case=N&agent=A`: `{"behavior": …}` of that case for that
//!   agent, once it has run, then a close;
//! * `/updateReports?agent=A` (`&shutdownOnComplete=true` stops the server
//!   afterwards): writes the reports of every agent, then a close;
//! * `/stopServer`: stops the server.
//!
//! Requests wstest refuses are refused alike: a handshake that breaks RFC
//! 6455 §4.2.1 gets `400` with the reason, an unknown case or a missing
//! agent gets the `500 Internal Server Error` that an exception in
//! `onConnect` gets. Differences from wstest: a path it does not know
//! enters wstest's "direct command mode" (JSON commands), which is not
//! implemented here (`404`); `/getCaseStatus` for a case not run yet waits
//! before answering the handshake (wstest answers it and waits before
//! sending the status); and a case whose permessage-deflate offer is
//! invalid is refused without a report (wstest reports it as never opened).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, bail};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use super::cases::{Action, Case, ExpectedClose, Judge, Kind};
use super::conn::{self, Accepted, CaseRun};
use super::testdata::TestFile;

/// `openHandshakeTimeout` of `WebSocketServerFactory` (5 s): a client that
/// does not finish its request head in time is dropped.
const OPEN_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);

/// What the fuzzingserver serves and where its reports go.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// Case patterns to serve (`*`, `1.*`, `9.1.6`), as the spec's `cases`.
    pub cases: Vec<String>,
    /// Case patterns left out (`exclude-cases`).
    pub exclude: Vec<String>,
    /// The report directory (wstest's default is `./reports/clients/`).
    pub out: PathBuf,
    /// The virtualenv whose testsuite has the compression cases' test data.
    pub venv: Option<PathBuf>,
    /// Print a line per finished case on stderr.
    pub log_cases: bool,
}

/// What a request asks for: the URL interface of `FuzzingServerProtocol`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    /// `/getCaseCount`.
    CaseCount,
    /// `/getCaseInfo?case=N`.
    CaseInfo {
        /// 1-based position in the selected cases.
        case: usize,
    },
    /// `/runCase?case=N&agent=A`.
    RunCase {
        /// 1-based position in the selected cases.
        case: usize,
        /// The client's name in the reports.
        agent: String,
    },
    /// `/getCaseStatus?case=N&agent=A`.
    CaseStatus {
        /// 1-based position in the selected cases.
        case: usize,
        /// The client's name in the reports.
        agent: String,
    },
    /// `/updateReports?agent=A[&shutdownOnComplete=true]`.
    UpdateReports {
        /// The agent asking (wstest requires one; every agent's reports are written).
        agent: String,
        /// Stop the server once the reports are written.
        shutdown: bool,
    },
    /// `/stopServer`.
    StopServer,
}

/// Why a request is refused: the HTTP status and reason to answer with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// `400`, `404` or `500`.
    pub status: u16,
    /// The reason phrase.
    pub reason: String,
    /// What was wrong (for the server's log).
    pub detail: String,
}

impl Refusal {
    /// An exception in `onConnect`: `forwardError` answers `500`.
    fn internal(detail: String) -> Refusal {
        Refusal { status: 500, reason: "Internal Server Error".into(), detail }
    }
    /// `failHandshake(reason)`: `400` with the reason as the phrase.
    fn bad_request(reason: String) -> Refusal {
        Refusal { status: 400, detail: reason.clone(), reason }
    }
}

/// `%XX` and `+` decoded, as `urllib.unquote_plus` does (invalid escapes kept).
fn unquote_plus(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len() => {
                match u8::from_str_radix(std::str::from_utf8(&b[i + 1..i + 3]).unwrap_or("zz"), 16) {
                    Ok(v) => {
                        out.push(v);
                        i += 2;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `urlparse.parse_qs` (Python 2.7): pairs split at `&` and `;`, names and
/// values unquoted, blank values dropped, each name's values in order.
fn parse_qs(query: &str) -> BTreeMap<String, Vec<String>> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for pair in query.split(['&', ';']).filter(|p| !p.is_empty()) {
        let Some((name, value)) = pair.split_once('=') else { continue };
        if value.is_empty() {
            continue;
        }
        out.entry(unquote_plus(name)).or_default().push(unquote_plus(value));
    }
    out
}

/// Reads what a request target asks for, as `FuzzingServerProtocol.onConnect`
/// does, check for check and with its messages; `case_ids` are the
/// selected cases in order (`specCases`).
pub fn parse_endpoint(target: &str, case_ids: &[String]) -> Result<Endpoint, Refusal> {
    // `urlparse`: an absolute URI's scheme and host are ignored.
    let target = match target.split_once("://") {
        Some((_, rest)) => rest.find('/').map_or("/", |i| &rest[i..]),
        None => target,
    };
    let (target, fragment) = target.split_once('#').unwrap_or((target, ""));
    if !fragment.is_empty() {
        return Err(Refusal::bad_request(format!(
            "HTTP requested resource contains a fragment identifier '{fragment}'"
        )));
    }
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let params = parse_qs(query);
    let single = |name: &str, what: &str| -> Result<Option<String>, Refusal> {
        match params.get(name).map(Vec::as_slice) {
            None => Ok(None),
            Some([one]) => Ok(Some(one.clone())),
            Some(_) => Err(Refusal::internal(format!("multiple {what} specified"))),
        }
    };
    let agent = single("agent", "agents")?;
    let mut case: Option<usize> = None;
    if let Some(tuple) = single("casetuple", "test cases")? {
        let position = case_ids.iter().position(|id| id == tuple.trim());
        case = Some(position.ok_or_else(|| Refusal::internal(format!("invalid test case tuple {tuple}")))? + 1);
    }
    if let Some(n) = single("case", "test cases")? {
        // Python's `int()` takes surrounding blanks and a sign.
        let parsed = n.trim().parse::<i64>().map_err(|_| Refusal::internal(format!("invalid test case ID {n}")))?;
        // `if self.case:` — case 0 counts as none.
        case = match parsed {
            0 => None,
            n => Some(usize::try_from(n).map_err(|_| Refusal::internal(format!("case {n} not found")))?),
        };
    }
    let shutdown = match single("shutdownOnComplete", "shutdownOnComplete values")? {
        Some(v) => ["true", "yes"].contains(&v.to_lowercase().as_str()),
        None => false,
    };
    if let Some(n) = case
        && !(1..=case_ids.len()).contains(&n)
    {
        return Err(Refusal::internal(format!("case {n} not found")));
    }
    let need = |what: &str| Refusal::internal(format!("need {what}"));
    match path {
        "/runCase" => Ok(Endpoint::RunCase {
            case: case.ok_or_else(|| need("case to run"))?,
            agent: agent.ok_or_else(|| need("agent to run case"))?,
        }),
        "/updateReports" => {
            Ok(Endpoint::UpdateReports { agent: agent.ok_or_else(|| need("agent to update reports for"))?, shutdown })
        }
        "/getCaseInfo" => Ok(Endpoint::CaseInfo { case: case.ok_or_else(|| need("case to get info"))? }),
        "/getCaseStatus" => Ok(Endpoint::CaseStatus {
            case: case.ok_or_else(|| need("case to get status"))?,
            agent: agent.ok_or_else(|| need("agent to get status"))?,
        }),
        "/getCaseCount" => Ok(Endpoint::CaseCount),
        "/stopServer" => Ok(Endpoint::StopServer),
        other => Err(Refusal {
            status: 404,
            reason: "Not Found".into(),
            detail: format!("{other}: wstest's direct command mode is not implemented"),
        }),
    }
}

/// `caseClassToPrettyDescription`: the description up to its first HTML
/// tag, blanks collapsed.
fn pretty_description(description: &str) -> String {
    description.split('<').next().unwrap_or_default().split_whitespace().collect::<Vec<_>>().join(" ")
}

/// A JSON string as Python's `json.dumps` writes it (non-ASCII escaped).
fn python_json_string(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (' '..='~').contains(&c) => out.push(c),
            c => {
                let mut units = [0u16; 2];
                for u in c.encode_utf16(&mut units) {
                    out.push_str(&format!("\\u{u:04x}"));
                }
            }
        }
    }
    out.push('"');
    out
}

/// The id of a case as the tuple wstest sorts by (`caseIdtoIdTuple`).
fn id_tuple(id: &str) -> Vec<u32> {
    id.split('.').map(|p| p.parse().unwrap_or(u32::MAX)).collect()
}

/// One recorded case result.
struct Recorded {
    case: usize,
    run: CaseRun,
}

/// The fuzzingserver's state: the selected cases, the results by agent
/// (`FuzzingFactory.agents`), and the signals its users wait on.
pub struct FuzzingServer {
    cases: Vec<Case>,
    testdata: BTreeMap<String, Arc<TestFile>>,
    out: PathBuf,
    log_cases: bool,
    results: Mutex<BTreeMap<String, BTreeMap<String, Recorded>>>,
    /// Bumped whenever a case result is recorded.
    recorded: watch::Sender<u64>,
    /// Bumped whenever the reports are written.
    reported: watch::Sender<u64>,
    /// Bumped whenever an `/updateReports` connection has ended (its
    /// closing handshake done, so the client has its answer).
    updated: watch::Sender<u64>,
    /// Set to stop the server.
    stop: watch::Sender<bool>,
}

impl FuzzingServer {
    /// The server for the selected cases; fails when nothing matches.
    pub fn new(opts: &ServeOptions) -> anyhow::Result<Arc<FuzzingServer>> {
        let (mut cases, missing) = super::select(&opts.cases, &opts.exclude);
        if !missing.is_empty() {
            bail!("the native engine has no script for {} selected cases (first: {})", missing.len(), missing[0]);
        }
        if cases.is_empty() {
            bail!("no case matches --cases {} (less --exclude)", opts.cases.join(","));
        }
        // `parseSpecCases`: sorted by id tuple.
        cases.sort_by_key(|c| id_tuple(&c.id));
        let testdata = super::load_testdata(&cases, opts.venv.as_deref());
        Ok(Arc::new(FuzzingServer {
            cases,
            testdata,
            out: opts.out.clone(),
            log_cases: opts.log_cases,
            results: Mutex::new(BTreeMap::new()),
            recorded: watch::channel(0).0,
            reported: watch::channel(0).0,
            updated: watch::channel(0).0,
            stop: watch::channel(false).0,
        }))
    }

    /// The selected case ids, in the order `case=N` counts them.
    pub fn case_ids(&self) -> Vec<String> {
        self.cases.iter().map(|c| c.id.clone()).collect()
    }

    /// Ends [`FuzzingServer::run`].
    pub fn stop(&self) {
        self.stop.send_replace(true);
    }

    /// Changes each time the reports are written (`/updateReports`).
    pub fn reports_written(&self) -> watch::Receiver<u64> {
        self.reported.subscribe()
    }

    /// Changes each time a case finishes.
    pub fn cases_recorded(&self) -> watch::Receiver<u64> {
        self.recorded.subscribe()
    }

    /// How many case results are recorded, over all agents.
    pub fn recorded_count(&self) -> usize {
        self.results.lock().map_or(0, |r| r.values().map(BTreeMap::len).sum())
    }

    /// The agents that ran cases.
    pub fn agents(&self) -> Vec<String> {
        self.results.lock().map_or_else(|_| Vec::new(), |r| r.keys().cloned().collect())
    }

    /// `createReports`: `index.json`, a report per agent and case, and
    /// `index.html` for `html_agent` (or the first agent).
    pub fn write_reports(&self, html_agent: Option<&str>) -> anyhow::Result<PathBuf> {
        std::fs::create_dir_all(&self.out).with_context(|| format!("creating {}", self.out.display()))?;
        let results = self.results.lock().map_err(|_| anyhow::anyhow!("a case task panicked"))?;
        let agents: Vec<(String, Vec<(&Case, &CaseRun)>)> = results
            .iter()
            .map(|(agent, by_case)| {
                let mut runs: Vec<&Recorded> = by_case.values().collect();
                runs.sort_by_key(|r| id_tuple(&self.cases[r.case].id));
                (agent.clone(), runs.into_iter().map(|r| (&self.cases[r.case], &r.run)).collect())
            })
            .collect();
        let html_agent =
            html_agent.filter(|a| results.contains_key(*a)).or_else(|| results.keys().next().map(String::as_str));
        super::write_reports(&self.out, &agents, html_agent.unwrap_or_default())?;
        drop(results);
        self.reported.send_modify(|n| *n += 1);
        Ok(self.out.clone())
    }

    fn record(&self, agent: &str, case: usize, run: CaseRun) {
        if self.log_cases {
            let c = &self.cases[case];
            eprintln!(
                "case {} ({}/{}) for {agent}: {} / {}",
                c.id,
                case + 1,
                self.cases.len(),
                run.flags.behavior,
                run.flags.behavior_close
            );
        }
        if let Ok(mut results) = self.results.lock() {
            results.entry(agent.to_owned()).or_default().insert(self.cases[case].id.clone(), Recorded { case, run });
        }
        self.recorded.send_modify(|n| *n += 1);
    }

    fn behavior_of(&self, agent: &str, case: usize) -> Option<&'static str> {
        let results = self.results.lock().ok()?;
        results.get(agent)?.get(&self.cases[case].id).map(|r| r.run.flags.behavior)
    }

    /// Accepts connections until [`FuzzingServer::stop`], each on its own task.
    pub async fn run(self: Arc<Self>, listener: TcpListener) {
        let mut stop = self.stop.subscribe();
        loop {
            tokio::select! {
                accepted = listener.accept() => {
                    if let Ok((stream, _)) = accepted {
                        tokio::spawn(Arc::clone(&self).handle(stream));
                    }
                }
                _ = stop.wait_for(|s| *s) => return,
            }
        }
    }

    /// One connection: the request head, then what it asks for.
    async fn handle(self: Arc<Self>, mut stream: TcpStream) {
        let limits = wsproto::handshake::Limits::default();
        let deadline = tokio::time::Instant::now() + OPEN_HANDSHAKE_TIMEOUT;
        let mut reads = Vec::new();
        let mut buf = Vec::new();
        let mut chunk = vec![0u8; 64 * 1024];
        let head_len = loop {
            match wsproto::handshake::parse_request(&buf, &limits) {
                Ok(wsproto::Status::Complete((_, n))) => break n,
                Ok(wsproto::Status::Partial) => {}
                Err(e) => return refuse(stream, Refusal::bad_request(e.to_string())).await,
            }
            match tokio::time::timeout_at(deadline, stream.read(&mut chunk)).await {
                Ok(Ok(n)) if n > 0 => {
                    reads.push(chunk[..n].to_vec());
                    buf.extend_from_slice(&chunk[..n]);
                }
                // `onOpenHandshakeTimeout`, or the client went away.
                _ => return,
            }
        };
        let started = super::wirelog::utc_now();
        let Ok(wsproto::Status::Complete((request, _))) = wsproto::handshake::parse_request(&buf, &limits) else {
            return;
        };
        let key = match request.validate() {
            Ok(handshake) => handshake.key.to_owned(),
            Err(e) => return refuse(stream, Refusal::bad_request(e.to_string())).await,
        };
        let endpoint = match parse_endpoint(request.target, &self.case_ids()) {
            Ok(endpoint) => endpoint,
            Err(refusal) => return refuse(stream, refusal).await,
        };
        let extensions: Vec<String> = request
            .headers_named("sec-websocket-extensions")
            .map(|v| String::from_utf8_lossy(v).into_owned())
            .collect();
        if extensions.len() > 1 {
            let reason = "HTTP Sec-WebSocket-Extensions header appears more than once in opening handshake request";
            return refuse(stream, Refusal::bad_request(reason.into())).await;
        }
        let offers = match super::offer::parse_offers(&extensions) {
            Ok(offers) => offers,
            Err(reason) => return refuse(stream, Refusal::bad_request(reason)).await,
        };
        let head = buf[..head_len].to_vec();
        let rest = buf[head_len..].to_vec();
        let accepted = Accepted { stream, reads, head, rest, key, offers, started };
        match endpoint {
            Endpoint::RunCase { case, agent } => {
                let c = &self.cases[case - 1];
                let data = c.deflate.as_ref().and_then(|d| self.testdata.get(&d.file).cloned());
                let run = conn::serve_case(c, case, accepted, data).await;
                self.record(&agent, case - 1, run);
            }
            Endpoint::CaseCount => {
                let count = self.cases.len().to_string();
                control(accepted, Some(count)).await;
            }
            Endpoint::CaseInfo { case } => {
                let c = &self.cases[case - 1];
                let info = format!(
                    "{{\"id\": {}, \"description\": {}}}",
                    python_json_string(&c.id),
                    python_json_string(&pretty_description(&c.description))
                );
                control(accepted, Some(info)).await;
            }
            Endpoint::CaseStatus { case, agent } => {
                // `addResultListener`: answer once the case has run.
                let mut recorded = self.recorded.subscribe();
                let behavior = loop {
                    if let Some(b) = self.behavior_of(&agent, case - 1) {
                        break b;
                    }
                    if recorded.changed().await.is_err() {
                        return;
                    }
                };
                control(accepted, Some(format!("{{\"behavior\": {}}}", python_json_string(behavior)))).await;
            }
            Endpoint::UpdateReports { agent, shutdown } => {
                match self.write_reports(Some(&agent)) {
                    Ok(dir) => {
                        if self.log_cases {
                            eprintln!("reports for {agent} written to {}", dir.display());
                        }
                    }
                    Err(e) => eprintln!("autobahn serve: writing the reports: {e:#}"),
                }
                control(accepted, None).await;
                self.updated.send_modify(|n| *n += 1);
                if shutdown {
                    self.stop();
                }
            }
            Endpoint::StopServer => self.stop(),
        }
    }
}

/// `failHandshake`: an HTTP error response, then the connection dropped.
async fn refuse(mut stream: TcpStream, refusal: Refusal) {
    eprintln!("autobahn serve: refused a request: {}", refusal.detail);
    let response = format!("HTTP/1.1 {} {}\r\n\r\n", refusal.status, refusal.reason);
    let _ = stream.write_all(response.as_bytes()).await;
    let _ = stream.shutdown().await;
}

/// The connections that ask rather than run a case: opened by the same
/// engine (a script of one text message and a close, `onOpen`'s
/// `sendMessage` and `sendClose()`), with no report.
async fn control(accepted: Accepted, message: Option<String>) {
    let mut on_open = Vec::new();
    if let Some(m) = message {
        on_open.push(Action::Message { payload: m.into_bytes(), binary: false, fragment_size: None });
    }
    on_open.push(Action::Close { code: None, reason: None });
    let case = Case {
        id: String::new(),
        index: 0,
        description: String::new(),
        expectation: String::new(),
        on_open,
        parts: Vec::new(),
        expected: BTreeMap::new(),
        expected_close: ExpectedClose {
            closed_by_me: true,
            close_code: Vec::new(),
            require_clean: false,
            closed_by_wrong_endpoint_is_fatal: false,
        },
        suppress_close: true,
        judge: Judge::Default,
        auto_fragment_size: None,
        kind: Kind::Standard,
        deflate: None,
    };
    let _ = conn::serve_case(&case, 0, accepted, None).await;
}

/// A running fuzzingserver: where it listens and how to stop it.
pub struct Serving {
    /// The address it listens on.
    pub addr: std::net::SocketAddr,
    /// The server (its results and signals).
    pub server: Arc<FuzzingServer>,
}

/// Binds `listen` and runs the fuzzingserver on `runtime` (in the
/// background); `listening` is called with the real address once bound.
pub fn start(
    runtime: &tokio::runtime::Runtime,
    opts: &ServeOptions,
    listen: std::net::SocketAddr,
) -> anyhow::Result<Serving> {
    let server = FuzzingServer::new(opts)?;
    let listener = runtime.block_on(TcpListener::bind(listen)).map_err(|e| wscli::bind_error("--listen", listen, e))?;
    let addr = listener.local_addr().context("reading the listening address")?;
    runtime.spawn(Arc::clone(&server).run(listener));
    Ok(Serving { addr, server })
}

/// `wsharness autobahn serve`: runs the fuzzingserver until Ctrl-C, or with
/// `once` until the reports have been written once; returns the report
/// directory when they were.
pub fn serve(opts: &ServeOptions, listen: std::net::SocketAddr, once: bool) -> anyhow::Result<Option<PathBuf>> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().context("starting tokio")?;
    let Serving { addr, server } = start(&runtime, opts, listen)?;
    eprintln!(
        "autobahn serve: {} for any client, reports in {}",
        wscli::count(server.cases.len() as u64, "case"),
        opts.out.display()
    );
    eprintln!("listening on ws://{addr}");
    let mut updated = server.updated.subscribe();
    let mut stopped = server.stop.subscribe();
    runtime.block_on(async {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = stopped.wait_for(|s| *s) => {}
            _ = updated.wait_for(|n| *n > 0), if once => {}
        }
    });
    server.stop();
    let written = *server.reported.borrow() > 0;
    Ok(written.then(|| opts.out.clone()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids() -> Vec<String> {
        ["1.1.1", "1.1.2", "2.1", "12.1.1"].iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn endpoints_as_fuzzing_py_reads_them() {
        let ids = ids();
        let table: [(&str, Endpoint); 9] = [
            ("/getCaseCount", Endpoint::CaseCount),
            ("/getCaseInfo?case=2", Endpoint::CaseInfo { case: 2 }),
            (
                "/runCase?case=1&agent=tokio-tungstenite",
                Endpoint::RunCase { case: 1, agent: "tokio-tungstenite".into() },
            ),
            ("/runCase?casetuple=2.1&agent=a", Endpoint::RunCase { case: 3, agent: "a".into() }),
            (
                "/runCase?case=4&agent=Python%20websockets+12",
                Endpoint::RunCase { case: 4, agent: "Python websockets 12".into() },
            ),
            ("/getCaseStatus?case=3;agent=x", Endpoint::CaseStatus { case: 3, agent: "x".into() }),
            ("/updateReports?agent=x", Endpoint::UpdateReports { agent: "x".into(), shutdown: false }),
            (
                "/updateReports?agent=x&shutdownOnComplete=Yes",
                Endpoint::UpdateReports { agent: "x".into(), shutdown: true },
            ),
            ("ws://127.0.0.1:9001/getCaseCount?agent=", Endpoint::CaseCount),
        ];
        for (target, want) in table {
            assert_eq!(parse_endpoint(target, &ids), Ok(want), "{target}");
        }
    }

    #[test]
    fn refusals_as_fuzzing_py_raises_them() {
        let ids = ids();
        let table: [(&str, u16, &str); 10] = [
            ("/runCase?case=5&agent=a", 500, "case 5 not found"),
            ("/runCase?case=0&agent=a", 500, "need case to run"),
            ("/runCase?case=x&agent=a", 500, "invalid test case ID x"),
            ("/runCase?case=1", 500, "need agent to run case"),
            ("/runCase?case=1&agent=a&agent=b", 500, "multiple agents specified"),
            ("/runCase?casetuple=9.9.9&agent=a", 500, "invalid test case tuple 9.9.9"),
            ("/getCaseInfo", 500, "need case to get info"),
            ("/getCaseStatus?case=1", 500, "need agent to get status"),
            ("/updateReports", 500, "need agent to update reports for"),
            ("/getCaseCount#x", 400, "HTTP requested resource contains a fragment identifier 'x'"),
        ];
        for (target, status, detail) in table {
            let r = parse_endpoint(target, &ids).expect_err(target);
            assert_eq!((r.status, r.detail.as_str()), (status, detail), "{target}");
        }
        assert_eq!(parse_endpoint("/", &ids).map_err(|r| r.status), Err(404));
    }

    #[test]
    fn texts_as_python_writes_them() {
        assert_eq!(python_json_string("a\"é\u{1F600}"), "\"a\\\"\\u00e9\\ud83d\\ude00\"");
        assert_eq!(pretty_description("Send  text\nmessage <b>bold</b> rest"), "Send text message");
        assert_eq!(unquote_plus("a%2Fb+c%zz%4"), "a/b c%zz%4");
    }

    #[test]
    fn selection_in_wstests_order() {
        let opts = ServeOptions {
            cases: vec!["10.*".into(), "9.1.1".into(), "2.1".into()],
            exclude: vec![],
            out: PathBuf::from("unused"),
            venv: None,
            log_cases: false,
        };
        let server = FuzzingServer::new(&opts).expect("cases");
        assert_eq!(server.case_ids(), ["2.1", "9.1.1", "10.1.1"]);
    }
}
