//! `wsharness bench`: a load generator whose every echo is verified.
//!
//! C connections each keep W messages of S bytes in flight (W = 1 is strict
//! ping-pong), or, with a rate, send on a fixed schedule whatever comes
//! back (open loop: round trips count from each message's scheduled
//! send time; see the README on coordinated omission). Each payload starts with a sequence number; each echo is
//! compared byte for byte and by kind, so loss, duplication, reordering and
//! corruption are counted as errors. Round trips go into an HdrHistogram.
//!
//! The report is honest about the run: the measured time is the time that
//! really passed, every connection that ended early is counted by how
//! (close code and reason, reset, timeout, refused upgrade) and named, and
//! a run whose connections all ended early says when and why.

mod client;
mod compare;
mod conn;
mod pace;
mod payload;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use hdrhistogram::Histogram;
use serde::Serialize;
use wsproto::WsUrl;

pub use client::{End, Errors, GRACE, XorShift};
pub use compare::{CompareOptions, Workload, compare, render_compare};
pub use conn::{BoxStream, Connector, OPEN_TIMEOUT, OpenError, OpenFailure, Opened, Timings, TlsOptions};
pub use payload::Shape;

/// One bench run.
#[derive(Debug, Clone)]
pub struct BenchOptions {
    /// The echo server.
    pub url: String,
    /// Connections.
    pub conns: usize,
    /// Messages in flight per connection (closed loop).
    pub window: usize,
    /// Payload bytes.
    pub size: usize,
    /// Text messages instead of binary.
    pub text: bool,
    /// Measured time (after the warm-up), unless `messages` is set.
    pub duration: Duration,
    /// Messages per connection instead of a duration.
    pub messages: Option<u64>,
    /// Warm-up time, checked but not measured.
    pub warmup: Duration,
    /// Show a progress line on a terminal.
    pub progress: bool,
    /// TLS for `wss://`.
    pub tls: TlsOptions,
    /// Extra request headers, `Name: value`.
    pub headers: Vec<String>,
    /// The `Origin` header.
    pub origin: Option<String>,
    /// Subprotocols to offer, in order of preference.
    pub subprotocols: Vec<String>,
    /// Open loop: messages per second across all connections.
    pub rate: Option<f64>,
    /// Connections opened per second (all at once when unset).
    pub connect_rate: Option<f64>,
    /// Report each connection.
    pub verbose: bool,
}

impl Default for BenchOptions {
    fn default() -> Self {
        BenchOptions {
            url: String::new(),
            conns: 1,
            window: 1,
            size: 16,
            text: false,
            duration: Duration::from_secs(5),
            messages: None,
            warmup: Duration::from_secs(1),
            progress: false,
            tls: TlsOptions::default(),
            headers: Vec::new(),
            origin: None,
            subprotocols: Vec::new(),
            rate: None,
            connect_rate: None,
            verbose: false,
        }
    }
}

/// What a run measured.
#[derive(Debug, Clone, Serialize)]
pub struct BenchReport {
    /// The server.
    pub url: String,
    /// Connections.
    pub conns: usize,
    /// Window.
    pub window: usize,
    /// Payload bytes.
    pub size: usize,
    /// Text or binary.
    pub text: bool,
    /// Echoes in the measured window.
    pub messages: u64,
    /// Length of the measured window as it really was, seconds: shorter
    /// than asked when every connection ended early.
    pub seconds: f64,
    /// Echoes per second.
    pub messages_per_sec: f64,
    /// Payload megabytes (10^6) per second, one way.
    pub mb_per_sec: f64,
    /// Round trip percentiles, µs: from the actual send (closed loop) or
    /// from the scheduled send (open loop, see `latency_from`).
    pub rtt_us: Percentiles,
    /// Errors; any makes the run fail.
    pub errors: Errors,
    /// Sum of `errors`.
    pub error_count: u64,
    /// Wall time of the whole run (connecting, warm-up, measuring,
    /// waiting for the last echoes), seconds.
    pub elapsed_s: f64,
    /// Echoes received in the whole run, warm-up included.
    pub echoes_total: u64,
    /// Where round trips start: `"send"` (closed loop) or
    /// `"scheduled_send"` (open loop: the time the message was due).
    pub latency_from: &'static str,
    /// Open loop: the schedule and how well it was kept.
    pub rate: Option<RateReport>,
    /// Connections opened and how many were open.
    pub connections: ConnectionCounts,
    /// Handshake times of the connections that opened.
    pub handshake_us: HandshakeTimes,
    /// The subprotocol the server chose (from the first connection).
    pub subprotocol: Option<String>,
    /// Connection errors by kind and detail, with the connections they hit.
    pub connection_errors: Vec<ErrorGroup>,
    /// Set when every connection ended before the plan did.
    pub ended_early: Option<EarlyEnd>,
    /// Each connection (with `--verbose`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub per_connection: Option<Vec<ConnReport>>,
}

/// Percentiles in µs.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Percentiles {
    /// Median.
    pub p50: u64,
    /// 90th percentile.
    pub p90: u64,
    /// 99th percentile.
    pub p99: u64,
    /// Largest.
    pub max: u64,
}

impl Percentiles {
    fn of(h: &Histogram<u64>) -> Percentiles {
        Percentiles {
            p50: h.value_at_quantile(0.5),
            p90: h.value_at_quantile(0.9),
            p99: h.value_at_quantile(0.99),
            max: h.max(),
        }
    }
}

/// Open loop: the target rate and what was achieved.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct RateReport {
    /// Messages per second asked for, across all connections.
    pub target_per_sec: f64,
    /// Messages sent per second in the measured window.
    pub achieved_per_sec: f64,
    /// Messages due in the measured window and sent.
    pub sent: u64,
    /// Messages due in the measured window and never sent (the generator
    /// fell behind, or connections ended).
    pub unsent: u64,
    /// How late messages due in the measured window (not the warm-up)
    /// were written after they were due, µs.
    pub behind_us: Percentiles,
}

/// How many connections opened, and how many were open at once.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct ConnectionCounts {
    /// Connections that completed the handshake.
    pub opened: usize,
    /// Connections that could not be opened.
    pub failed: usize,
    /// Most open at one time.
    pub peak_open: usize,
    /// Open at the end of the measured window.
    pub open_at_end: usize,
}

/// Handshake time percentiles, µs.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct HandshakeTimes {
    /// TCP connect.
    pub tcp: Percentiles,
    /// TLS handshake (`wss://`).
    pub tls: Option<Percentiles>,
    /// The WebSocket opening handshake (request to 101).
    pub ws: Percentiles,
}

/// Connections that failed or ended the same way.
#[derive(Debug, Clone, Serialize)]
pub struct ErrorGroup {
    /// The field of `errors` that counts it: `closed`, `disconnected`,
    /// `reset`, `timeout`, `connect`, `handshake`.
    pub kind: &'static str,
    /// What happened, in words.
    pub detail: String,
    /// The close code, for `closed`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code: Option<u16>,
    /// The close reason, for `closed`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The HTTP status, for a refused upgrade.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// How many connections.
    pub count: usize,
    /// Which (numbered from 1; the first [`MAX_NAMED`]).
    pub conns: Vec<usize>,
    /// When the first of them happened, seconds into the run.
    pub first_at_s: f64,
}

/// Connections named per [`ErrorGroup`].
pub const MAX_NAMED: usize = 20;

/// When and why a run ended before its plan.
#[derive(Debug, Clone, Serialize)]
pub struct EarlyEnd {
    /// Seconds into the run when the last connection ended.
    pub at_s: f64,
    /// Why, in words.
    pub why: String,
}

/// One connection, for `--verbose`.
#[derive(Debug, Clone, Serialize)]
pub struct ConnReport {
    /// Its number, from 1.
    pub conn: usize,
    /// When its handshake completed, seconds into the run.
    pub opened_at_s: Option<f64>,
    /// TCP connect, µs.
    pub tcp_us: Option<u64>,
    /// TLS handshake, µs.
    pub tls_us: Option<u64>,
    /// WebSocket handshake, µs.
    pub ws_us: Option<u64>,
    /// Messages sent.
    pub sent: u64,
    /// Echoes received.
    pub echoes: u64,
    /// Its errors.
    pub errors: Errors,
    /// How it ended early, if it did.
    pub end: Option<String>,
    /// When it ended or stopped, seconds into the run.
    pub ended_at_s: f64,
}

/// What became of one connection.
struct Outcome {
    id: usize,
    opened: Option<(Instant, conn::Timings, Option<String>)>,
    failed: Option<(OpenFailure, String)>,
    result: Option<client::ConnResult>,
    /// When it ended (failed, ended early, or stopped).
    finished: Instant,
}

impl Outcome {
    /// The group key of how it failed or ended early, if it did.
    fn error(&self) -> Option<(&'static str, String, Option<u16>, Option<String>, Option<u16>)> {
        if let Some((kind, message)) = &self.failed {
            return Some(match kind {
                OpenFailure::Connect => ("connect", message.clone(), None, None, None),
                OpenFailure::Status(status) => ("handshake", message.clone(), None, None, Some(*status)),
                OpenFailure::Handshake => ("handshake", message.clone(), None, None, None),
                OpenFailure::Timeout => ("timeout", message.clone(), None, None, None),
            });
        }
        let (_, end) = self.result.as_ref()?.end.as_ref()?;
        Some(match end {
            End::Closed { code, reason } => ("closed", end.describe(), *code, Some(reason.clone()), None),
            End::Disconnected => ("disconnected", end.describe(), None, None, None),
            End::Reset { .. } => ("reset", end.describe(), None, None, None),
            End::Timeout => ("timeout", end.describe(), None, None, None),
        })
    }

    /// Until when it was doing its work: when it ended, or, for a server
    /// gone silent, when the silence began (the [`client::GRACE`] waited
    /// after it measured nothing); not the close exchange after the end.
    fn active_until(&self) -> Instant {
        match self.result.as_ref().and_then(|r| r.end.as_ref()) {
            Some((at, End::Timeout)) => at.checked_sub(client::GRACE).unwrap_or(*at),
            Some((at, _)) => *at,
            None => self.finished,
        }
    }

    /// When it ended abnormally.
    fn ended_at(&self) -> Option<Instant> {
        if self.failed.is_some() {
            return Some(self.finished);
        }
        self.result.as_ref()?.end.as_ref().map(|(at, _)| *at)
    }
}

/// The lowest `--rate` and `--connect-rate`: one every 100 seconds. Below
/// it the schedule's intervals stop being numbers a timer can wait for
/// (a rate of 1e-320 makes 1/rate infinite).
pub const MIN_RATE: f64 = 0.01;

/// Checks a rate (per second) against [`MIN_RATE`].
pub fn check_rate(rate: f64) -> Result<f64, String> {
    if rate.is_finite() && rate >= MIN_RATE {
        Ok(rate)
    } else {
        Err(format!("a rate is at least {MIN_RATE} per second (one every {} s)", 1.0 / MIN_RATE))
    }
}

/// Parses a `--rate` or `--connect-rate` value, per second.
pub fn parse_rate(s: &str) -> Result<f64, String> {
    let rate: f64 = s.trim().parse().map_err(|_| format!("{s:?} is not a number"))?;
    check_rate(rate)
}

/// Runs the bench on a tokio runtime of its own (one thread, so the load
/// generator takes at most one core from the server under test).
pub fn run(opts: &BenchOptions) -> anyhow::Result<BenchReport> {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().context("starting tokio")?;
    rt.block_on(run_async(opts))
}

/// [`run`], on the caller's runtime.
pub async fn run_async(opts: &BenchOptions) -> anyhow::Result<BenchReport> {
    let target = WsUrl::parse(&opts.url).map_err(|e| anyhow::anyhow!("{}: {e}", opts.url))?;
    anyhow::ensure!(opts.conns > 0 && opts.window > 0, "--conns and --window must be at least 1");
    if let Some(rate) = opts.rate {
        check_rate(rate).map_err(|e| anyhow::anyhow!("--rate {rate}: {e}"))?;
    }
    if let Some(rate) = opts.connect_rate {
        check_rate(rate).map_err(|e| anyhow::anyhow!("--connect-rate {rate}: {e}"))?;
    }
    let connector =
        Arc::new(Connector::new(target, &opts.tls, &opts.headers, opts.origin.as_deref(), &opts.subprotocols)?);
    if let Some(rate) = opts.connect_rate {
        let ramp = opts.conns.saturating_sub(1) as f64 / rate;
        if opts.messages.is_none() && ramp > opts.warmup.as_secs_f64() {
            eprintln!(
                "wsharness: note: opening {} at {rate} per second takes {ramp:.1} s, longer than the {:.1} s warm-up: \
                 the measured window includes the ramp (--warmup {:.0}s to measure the steady state)",
                wscli::count(opts.conns as u64, "connection"),
                opts.warmup.as_secs_f64(),
                ramp.ceil() + 1.0
            );
        }
    }
    // A socket per connection, and in open loop a timer too.
    ensure_open_files(opts.conns as u64 * if opts.rate.is_some() { 2 } else { 1 } + 64);
    let shape = Shape { size: opts.size, text: opts.text };
    let start = Instant::now();
    let (measure_from, send_until) = match opts.messages {
        Some(_) => (start, start + Duration::from_secs(24 * 3600)),
        None => (start + opts.warmup, start + opts.warmup + opts.duration),
    };
    let plan = client::Plan {
        shape,
        window: opts.window,
        rate: opts.rate.map(|r| r / opts.conns as f64),
        measure_from,
        send_until,
        messages: opts.messages,
    };
    let progress = Arc::new(AtomicU64::new(0));
    let open = Arc::new(AtomicU64::new(0));
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..opts.conns {
        let connector = connector.clone();
        let (progress, open) = (progress.clone(), open.clone());
        let open_at = start + opts.connect_rate.map_or(Duration::ZERO, |r| Duration::from_secs_f64(i as f64 / r));
        // Open loop: connection i starts i/rate later, so the connections'
        // messages interleave instead of leaving together.
        let stagger = opts.rate.map_or(Duration::ZERO, |r| Duration::from_secs_f64(i as f64 / r));
        let nonce = client::XorShift::new().nonce();
        tasks.spawn(async move {
            tokio::time::sleep_until(open_at.into()).await;
            let id = i + 1;
            match connector.open(nonce).await {
                Err(e) => Outcome {
                    id,
                    opened: None,
                    failed: Some((e.kind, format!("{:#}", e.error))),
                    result: None,
                    finished: Instant::now(),
                },
                Ok(opened) => {
                    let at = Instant::now();
                    let info = (at, opened.timings, opened.protocol.clone());
                    open.fetch_add(1, Ordering::Relaxed);
                    tokio::time::sleep(stagger).await;
                    let result = client::run(opened, plan, progress).await;
                    open.fetch_sub(1, Ordering::Relaxed);
                    Outcome { id, opened: Some(info), failed: None, finished: result.finished, result: Some(result) }
                }
            }
        });
    }
    let bar = opts.progress.then(|| {
        let bar = indicatif::ProgressBar::new_spinner();
        bar.set_style(
            indicatif::ProgressStyle::with_template("{spinner} {msg} [{elapsed}]")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
        );
        bar
    });
    let mut outcomes = Vec::new();
    let mut ticker = tokio::time::interval(Duration::from_millis(250));
    loop {
        tokio::select! {
            joined = tasks.join_next() => match joined {
                Some(r) => outcomes.push(r.context("bench connection panicked")?),
                None => break,
            },
            _ = ticker.tick(), if bar.is_some() => {
                if let Some(bar) = &bar {
                    let n = progress.load(Ordering::Relaxed);
                    let secs = start.elapsed().as_secs_f64().max(1e-3);
                    let o = open.load(Ordering::Relaxed);
                    bar.set_message(format!("{o} open, {n} echoes, {:.0}/s", n as f64 / secs));
                }
            }
        }
    }
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    outcomes.sort_by_key(|o| o.id);
    if outcomes.iter().all(|o| o.failed.is_some())
        && let Some((_, message)) = outcomes.first().and_then(|o| o.failed.as_ref())
    {
        let also = outcomes.len() - 1;
        let also =
            if also == 0 { String::new() } else { format!(" (and {} more)", wscli::count(also as u64, "connection")) };
        anyhow::bail!("{message}{also}");
    }
    report(opts, start, measure_from, send_until, &outcomes)
}

/// Raises the soft limit on open files towards `needed` (as far as the hard
/// limit allows), and says so when even that is too low.
fn ensure_open_files(needed: u64) {
    #[cfg(target_os = "linux")]
    {
        use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
        let limit = getrlimit(Resource::Nofile);
        let (Some(soft), hard) = (limit.current, limit.maximum) else { return };
        if soft >= needed {
            return;
        }
        let raised = hard.map_or(needed, |h| h.min(needed));
        let _ = setrlimit(Resource::Nofile, Rlimit { current: Some(raised), maximum: hard });
        if raised < needed {
            eprintln!(
                "wsharness: note: about {needed} open files needed, the limit is {raised} (ulimit -Hn): \
                 some connections may fail with \"too many open files\""
            );
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = needed;
}

fn secs(start: Instant, t: Instant) -> f64 {
    t.saturating_duration_since(start).as_secs_f64()
}

/// Everything the outcomes say, in one report.
fn report(
    opts: &BenchOptions,
    start: Instant,
    measure_from: Instant,
    send_until: Instant,
    outcomes: &[Outcome],
) -> anyhow::Result<BenchReport> {
    let mut hist = client::histogram();
    let mut behind = client::histogram();
    let (mut tcp, mut tls, mut ws) = (client::histogram(), client::histogram(), client::histogram());
    let mut errors = Errors::default();
    let (mut measured, mut sent_in_window, mut unsent_in_window, mut echoes_total) = (0, 0, 0, 0);
    let mut last_echo = None::<Instant>;
    let mut finished = start;
    let mut active_until = start;
    for o in outcomes {
        finished = finished.max(o.finished);
        active_until = active_until.max(o.active_until());
        if let Some((kind, _)) = &o.failed {
            match kind {
                OpenFailure::Connect => errors.connect += 1,
                OpenFailure::Status(_) | OpenFailure::Handshake => errors.handshake += 1,
                OpenFailure::Timeout => errors.timeout += 1,
            }
        }
        if let Some((_, t, _)) = &o.opened {
            let _ = tcp.record((t.tcp.as_micros() as u64).max(1));
            if let Some(d) = t.tls {
                let _ = tls.record((d.as_micros() as u64).max(1));
            }
            let _ = ws.record((t.ws.as_micros() as u64).max(1));
        }
        if let Some(r) = &o.result {
            hist.add(&r.rtt_us).context("merging histograms")?;
            behind.add(&r.behind_us).context("merging histograms")?;
            errors.add(&r.errors);
            measured += r.measured;
            echoes_total += r.received;
            sent_in_window += r.sent_in_window;
            unsent_in_window += r.unsent_in_window;
            last_echo = last_echo.max(r.last_echo);
        }
    }
    // The window as it really was: it ends when the last connection does
    // (a silent server's from when it went silent), if that is before the
    // planned end.
    let seconds = match opts.messages {
        Some(_) => last_echo.map_or(0.0, |l| secs(start, l)),
        None => secs(measure_from, send_until.min(active_until)),
    };
    let per_sec = |n: u64| if seconds > 0.0 { n as f64 / seconds } else { 0.0 };
    let rate = per_sec(measured);

    // Connections open over time: +1 at each open, -1 at each end.
    let mut steps: Vec<(Instant, i64)> = Vec::new();
    for o in outcomes {
        if let Some((at, _, _)) = &o.opened {
            steps.push((*at, 1));
            steps.push((o.ended_at().unwrap_or(o.finished), -1));
        }
    }
    steps.sort();
    let (mut now_open, mut peak_open) = (0i64, 0i64);
    for (_, d) in &steps {
        now_open += d;
        peak_open = peak_open.max(now_open);
    }
    let window_end = match opts.messages {
        Some(_) => finished,
        None => send_until.min(finished),
    };
    let open_at_end = outcomes
        .iter()
        .filter(|o| o.opened.as_ref().is_some_and(|(at, _, _)| *at <= window_end))
        .filter(|o| o.ended_at().is_none_or(|e| e > window_end))
        .count();

    // Connection errors, grouped.
    let mut groups: BTreeMap<(&'static str, String), ErrorGroup> = BTreeMap::new();
    for o in outcomes {
        let Some((kind, detail, code, reason, status)) = o.error() else { continue };
        let at = secs(start, o.ended_at().unwrap_or(o.finished));
        let group = groups.entry((kind, detail.clone())).or_insert_with(|| ErrorGroup {
            kind,
            detail,
            code,
            reason,
            status,
            count: 0,
            conns: Vec::new(),
            first_at_s: at,
        });
        group.count += 1;
        if group.conns.len() < MAX_NAMED {
            group.conns.push(o.id);
        }
        group.first_at_s = group.first_at_s.min(at);
    }
    let mut connection_errors: Vec<ErrorGroup> = groups.into_values().collect();
    connection_errors.sort_by(|a, b| a.first_at_s.total_cmp(&b.first_at_s));

    // Early: every connection failed or ended, before the plan's end.
    let last_end = outcomes.iter().map(Outcome::ended_at).try_fold(start, |acc, e| e.map(|e| acc.max(e)));
    let ended_early = last_end.filter(|at| opts.messages.is_some() || *at < send_until).map(|at| {
        let why = connection_errors.iter().map(describe_group).collect::<Vec<_>>().join("; ");
        EarlyEnd { at_s: secs(start, at), why: format!("every connection ended: {why}") }
    });

    let per_connection = opts.verbose.then(|| {
        outcomes
            .iter()
            .map(|o| ConnReport {
                conn: o.id,
                opened_at_s: o.opened.as_ref().map(|(at, _, _)| secs(start, *at)),
                tcp_us: o.opened.as_ref().map(|(_, t, _)| t.tcp.as_micros() as u64),
                tls_us: o.opened.as_ref().and_then(|(_, t, _)| t.tls.map(|d| d.as_micros() as u64)),
                ws_us: o.opened.as_ref().map(|(_, t, _)| t.ws.as_micros() as u64),
                sent: o.result.as_ref().map_or(0, |r| r.sent),
                echoes: o.result.as_ref().map_or(0, |r| r.received),
                errors: o.result.as_ref().map_or_else(Errors::default, |r| r.errors),
                end: o.error().map(|(_, detail, ..)| detail),
                ended_at_s: secs(start, o.ended_at().unwrap_or(o.finished)),
            })
            .collect()
    });

    let opened = outcomes.iter().filter(|o| o.opened.is_some()).count();
    Ok(BenchReport {
        url: opts.url.clone(),
        conns: opts.conns,
        window: opts.window,
        size: opts.size,
        text: opts.text,
        messages: measured,
        seconds,
        messages_per_sec: rate,
        mb_per_sec: rate * opts.size as f64 / 1e6,
        rtt_us: Percentiles::of(&hist),
        error_count: errors.total(),
        errors,
        elapsed_s: secs(start, finished),
        echoes_total,
        latency_from: if opts.rate.is_some() { "scheduled_send" } else { "send" },
        rate: opts.rate.map(|target| RateReport {
            target_per_sec: target,
            achieved_per_sec: per_sec(sent_in_window),
            sent: sent_in_window,
            unsent: unsent_in_window,
            behind_us: Percentiles::of(&behind),
        }),
        connections: ConnectionCounts {
            opened,
            failed: outcomes.len() - opened,
            peak_open: peak_open as usize,
            open_at_end,
        },
        handshake_us: HandshakeTimes {
            tcp: Percentiles::of(&tcp),
            tls: (!tls.is_empty()).then(|| Percentiles::of(&tls)),
            ws: Percentiles::of(&ws),
        },
        subprotocol: outcomes.iter().find_map(|o| o.opened.as_ref().and_then(|(_, _, p)| p.clone())),
        connection_errors,
        ended_early,
        per_connection,
    })
}

/// `closed by the server: 1011 "enough": connections 1, 2 (first at 0.02 s)`.
fn describe_group(g: &ErrorGroup) -> String {
    let mut conns = g.conns.iter().map(usize::to_string).collect::<Vec<_>>().join(", ");
    if g.count > g.conns.len() {
        let _ = write!(conns, " and {} more", g.count - g.conns.len());
    }
    let which = if g.count == 1 { "connection" } else { "connections" };
    format!("{}: {which} {conns} (first at {:.2} s)", g.detail, g.first_at_s)
}

/// The report as a few lines of text.
pub fn render_report(r: &BenchReport) -> String {
    let mut out = String::new();
    let load = match &r.rate {
        Some(rate) => format!("{:.0} msg/s open loop", rate.target_per_sec),
        None => format!("{} in flight", r.window),
    };
    let _ = writeln!(
        out,
        "{} — {} × {load} × {} B {}",
        r.url,
        wscli::count(r.conns as u64, "connection"),
        r.size,
        if r.text { "text" } else { "binary" },
    );
    let _ = writeln!(
        out,
        "{:>12.0} msg/s   {:>9.2} MB/s   ({} in {:.2} s measured; {} in all, the run took {:.2} s)",
        r.messages_per_sec,
        r.mb_per_sec,
        wscli::count_with(r.messages, "echo", "echoes"),
        r.seconds,
        r.echoes_total,
        r.elapsed_s,
    );
    let from = if r.rate.is_some() { " (from the scheduled send time)" } else { "" };
    let p = r.rtt_us;
    let _ = writeln!(out, "round trip µs{from}: p50 {}  p90 {}  p99 {}  max {}", p.p50, p.p90, p.p99, p.max);
    if let Some(rate) = &r.rate {
        let b = rate.behind_us;
        let _ = writeln!(
            out,
            "schedule: target {:.0} msg/s, sent {:.1} msg/s ({:+.2} %); behind schedule µs: p50 {}  p99 {}  max {}{}",
            rate.target_per_sec,
            rate.achieved_per_sec,
            (rate.achieved_per_sec / rate.target_per_sec - 1.0) * 100.0,
            b.p50,
            b.p99,
            b.max,
            if rate.unsent > 0 {
                format!("; {} never sent", wscli::count(rate.unsent, "due message"))
            } else {
                String::new()
            },
        );
    }
    let c = &r.connections;
    let h = &r.handshake_us;
    let tls = h.tls.map(|t| format!(", tls p50 {} p99 {}", t.p50, t.p99)).unwrap_or_default();
    let _ = writeln!(
        out,
        "connections: {} opened, {} failed, peak {} open, {} open at the end; handshake µs: tcp p50 {} p99 {}{tls}, ws p50 {} p99 {}",
        c.opened, c.failed, c.peak_open, c.open_at_end, h.tcp.p50, h.tcp.p99, h.ws.p50, h.ws.p99
    );
    if let Some(p) = &r.subprotocol {
        let _ = writeln!(out, "subprotocol: {p}");
    }
    let e = &r.errors;
    let mut kinds = format!(
        "mismatched {}, wrong kind {}, lost {}, duplicated/reordered {}, protocol {}",
        e.mismatched, e.wrong_kind, e.lost, e.duplicated_or_reordered, e.protocol
    );
    for (name, n) in [
        ("closed", e.closed),
        ("disconnected", e.disconnected),
        ("reset", e.reset),
        ("timeout", e.timeout),
        ("connect", e.connect),
        ("handshake", e.handshake),
    ] {
        if n > 0 {
            let _ = write!(kinds, ", {name} {n}");
        }
    }
    let _ = writeln!(out, "errors: {} ({kinds})", r.error_count);
    for g in &r.connection_errors {
        let _ = writeln!(out, "  {}", describe_group(g));
    }
    if let Some(early) = &r.ended_early {
        let _ = writeln!(out, "ended early at {:.2} s: {}", early.at_s, early.why);
    }
    for c in r.per_connection.iter().flatten() {
        let opened = c.opened_at_s.map_or("not opened".to_owned(), |t| format!("opened at {t:.3} s"));
        let times = match (c.tcp_us, c.tls_us, c.ws_us) {
            (Some(tcp), tls, Some(ws)) => {
                format!(" (tcp {tcp} µs{}, ws {ws} µs)", tls.map(|t| format!(", tls {t} µs")).unwrap_or_default())
            }
            _ => String::new(),
        };
        let end = c.end.as_deref().map_or(String::new(), |e| format!(", {e}"));
        let _ = writeln!(
            out,
            "  connection {}: {opened}{times}, {} sent, {}, {} errors{end}, ended at {:.3} s",
            c.conn,
            c.sent,
            wscli::count_with(c.echoes, "echo", "echoes"),
            c.errors.total(),
            c.ended_at_s
        );
    }
    out
}

/// Resident memory of a process, from `/proc/PID/status`: (current, peak) in KiB.
pub fn rss_kib(pid: u32) -> anyhow::Result<(u64, u64)> {
    let path = format!("/proc/{pid}/status");
    let text = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse::<u64>().ok())
    };
    Ok((field("VmRSS:").context("no VmRSS")?, field("VmHWM:").context("no VmHWM")?))
}

/// CPU time (user + system) the process `pid` has used, in seconds, from
/// `/proc/PID/stat` (fields 14 and 15, in clock ticks of 1/100 s: Linux
/// reports them in `USER_HZ`, which is 100).
pub fn cpu_seconds(pid: u32) -> anyhow::Result<f64> {
    let path = format!("/proc/{pid}/stat");
    let text = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    // The command name (field 2) may hold spaces and parentheses: count
    // fields from the last ')'.
    let rest = text.rsplit_once(')').map(|(_, r)| r).context("no ')' in stat")?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // `rest` starts at field 3, so fields 14 and 15 are at 11 and 12.
    let ticks = |i: usize| fields.get(i).and_then(|v| v.parse::<u64>().ok()).context("short stat line");
    Ok((ticks(11)? + ticks(12)?) as f64 / 100.0)
}

/// Memory per idle connection: opens `conns` connections, completes their
/// handshakes, waits `settle`, and compares the server's RSS before and after.
pub fn idle(url: &str, conns: usize, pid: u32, settle: Duration) -> anyhow::Result<(u64, u64, f64)> {
    let target = WsUrl::parse(url).map_err(|e| anyhow::anyhow!("{url}: {e}"))?;
    let connector = Connector::new(target, &TlsOptions::default(), &[], None, &[])?;
    let mut rng = client::XorShift::new();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    rt.block_on(async {
        let (before, _) = rss_kib(pid)?;
        let mut open = Vec::with_capacity(conns);
        for i in 0..conns {
            let opened = connector
                .open(rng.nonce())
                .await
                .map_err(|e| e.error)
                .with_context(|| format!("connection {}", i + 1))?;
            open.push(opened.stream);
        }
        tokio::time::sleep(settle).await;
        let (after, _) = rss_kib(pid)?;
        drop(open);
        Ok((before, after, (after.saturating_sub(before)) as f64 / conns as f64))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options() -> BenchOptions {
        BenchOptions {
            url: "ws://127.0.0.1:9".into(),
            conns: 2,
            window: 4,
            duration: Duration::from_secs(3),
            warmup: Duration::from_secs(1),
            ..BenchOptions::default()
        }
    }

    fn ms(start: Instant, n: u64) -> Instant {
        start + Duration::from_millis(n)
    }

    /// Connection `id` opened at 5 ms; ended at `end_ms` the way `end`
    /// says, else stopped normally at `end_ms`.
    fn ran(start: Instant, id: usize, end_ms: u64, end: Option<End>) -> Outcome {
        let timings = conn::Timings { tcp: Duration::from_micros(100), tls: None, ws: Duration::from_micros(300) };
        let mut result = client::new_result();
        result.finished = ms(start, end_ms);
        if let Some(end) = end {
            end.count(&mut result.errors);
            result.end = Some((ms(start, end_ms), end));
        }
        Outcome {
            id,
            opened: Some((ms(start, 5), timings, None)),
            failed: None,
            result: Some(result),
            finished: ms(start, end_ms),
        }
    }

    fn enough() -> Option<End> {
        Some(End::Closed { code: Some(1011), reason: "enough".into() })
    }

    #[test]
    fn every_connection_closed_in_the_warm_up() {
        let start = Instant::now();
        let outcomes = [ran(start, 1, 20, enough()), ran(start, 2, 20, enough())];
        let r = report(&options(), start, ms(start, 1000), ms(start, 4000), &outcomes).expect("report");
        assert_eq!(r.seconds, 0.0, "nothing measured: it ended in the warm-up");
        assert!((r.elapsed_s - 0.02).abs() < 1e-9, "{}", r.elapsed_s);
        assert_eq!(r.errors.closed, 2);
        assert_eq!((r.connections.opened, r.connections.peak_open, r.connections.open_at_end), (2, 2, 0));
        let [g] = &r.connection_errors[..] else { panic!("one group: {:?}", r.connection_errors) };
        assert_eq!(
            (g.kind, g.code, g.reason.as_deref(), &g.conns[..]),
            ("closed", Some(1011), Some("enough"), &[1, 2][..])
        );
        let early = r.ended_early.as_ref().expect("ended early");
        assert!((early.at_s - 0.02).abs() < 1e-9);
        assert_eq!(
            early.why,
            "every connection ended: closed by the server: 1011 \"enough\": connections 1, 2 (first at 0.02 s)"
        );
        let text = render_report(&r);
        assert!(text.contains("ended early at 0.02 s: every connection ended"), "{text}");
    }

    #[test]
    fn the_window_ends_when_the_last_connection_does() {
        let start = Instant::now();
        // Both closed 1.5 s into the 3 s window (after the 1 s warm-up).
        let outcomes = [ran(start, 1, 2500, enough()), ran(start, 2, 2500, Some(End::Disconnected))];
        let r = report(&options(), start, ms(start, 1000), ms(start, 4000), &outcomes).expect("report");
        assert!((r.seconds - 1.5).abs() < 1e-9, "{}", r.seconds);
        assert_eq!(r.connection_errors.len(), 2);
        let why = &r.ended_early.as_ref().expect("ended early").why;
        assert!(why.contains("connection 1 (") && why.contains("disconnected by the server"), "{why}");
    }

    /// Both servers went silent: each connection ends GRACE (3 s) after
    /// the silence began, at 5 s, and its close exchange takes until 6 s.
    /// The window ends when the silence began (2 s, one second into it),
    /// not at the planned 4 s the grace and the close wait reached.
    #[test]
    fn a_silent_server_ends_the_window_when_it_went_silent() {
        let start = Instant::now();
        let silent = |id| {
            let mut o = ran(start, id, 5000, Some(End::Timeout));
            o.finished = ms(start, 6000);
            o
        };
        let outcomes = [silent(1), silent(2)];
        let r = report(&options(), start, ms(start, 1000), ms(start, 4000), &outcomes).expect("report");
        assert!((r.seconds - 1.0).abs() < 1e-9, "{}", r.seconds);
    }

    #[test]
    fn one_connection_lost_is_not_an_early_end() {
        let start = Instant::now();
        let outcomes = [ran(start, 1, 1500, enough()), ran(start, 2, 4100, None)];
        let r = report(&options(), start, ms(start, 1000), ms(start, 4000), &outcomes).expect("report");
        assert!(r.ended_early.is_none());
        assert_eq!(r.seconds, 3.0, "the planned window, which really passed");
        assert_eq!((r.connections.peak_open, r.connections.open_at_end), (2, 1));
        assert_eq!(r.connection_errors[0].conns, [1]);
    }

    #[test]
    fn a_refused_connection_is_counted_with_its_status() {
        let start = Instant::now();
        let refused = Outcome {
            id: 2,
            opened: None,
            failed: Some((OpenFailure::Status(401), "127.0.0.1:9 refused the upgrade: 401 Unauthorized".into())),
            result: None,
            finished: ms(start, 3),
        };
        let outcomes = [ran(start, 1, 4100, None), refused];
        let r = report(&options(), start, ms(start, 1000), ms(start, 4000), &outcomes).expect("report");
        assert_eq!((r.errors.handshake, r.error_count), (1, 1));
        assert_eq!((r.connections.opened, r.connections.failed), (1, 1));
        assert_eq!(r.connection_errors[0].status, Some(401));
        assert!(r.ended_early.is_none(), "connection 1 ran to the end");
    }
}
