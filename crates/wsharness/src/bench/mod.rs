//! `wsharness bench`: a load generator whose every echo is verified.
//!
//! C connections each keep W messages of S bytes in flight (W = 1 is strict
//! ping-pong). Each payload starts with a sequence number; each echo is
//! compared byte for byte and by kind, so loss, duplication, reordering and
//! corruption are counted as errors. Round trips go into an HdrHistogram.

mod client;
mod compare;
mod payload;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use hdrhistogram::Histogram;
use serde::Serialize;
use wsproto::WsUrl;

pub use client::{Errors, connect};
pub use compare::{CompareOptions, Workload, compare, render_compare};
pub use payload::Shape;

/// One bench run.
#[derive(Debug, Clone)]
pub struct BenchOptions {
    /// The echo server.
    pub url: String,
    /// Connections.
    pub conns: usize,
    /// Messages in flight per connection.
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
    /// Length of the measured window, seconds.
    pub seconds: f64,
    /// Echoes per second.
    pub messages_per_sec: f64,
    /// Payload megabytes (10^6) per second, one way.
    pub mb_per_sec: f64,
    /// Round trip percentiles, µs.
    pub rtt_us: Percentiles,
    /// Errors; any makes the run fail.
    pub errors: Errors,
    /// Sum of `errors`.
    pub error_count: u64,
}

/// Round-trip percentiles in µs.
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

/// Runs the bench on a tokio runtime of its own (one thread, so the load
/// generator takes at most one core from the server under test).
pub fn run(opts: &BenchOptions) -> anyhow::Result<BenchReport> {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().context("starting tokio")?;
    rt.block_on(run_async(opts))
}

/// [`run`], on the caller's runtime.
pub async fn run_async(opts: &BenchOptions) -> anyhow::Result<BenchReport> {
    let target = WsUrl::parse(&opts.url).map_err(|e| anyhow::anyhow!("{}: {e}", opts.url))?;
    if target.secure {
        anyhow::bail!("{}: wss:// is not supported by the bench", opts.url);
    }
    anyhow::ensure!(opts.conns > 0 && opts.window > 0, "--conns and --window must be at least 1");
    let shape = Shape { size: opts.size, text: opts.text };
    let start = Instant::now();
    let (measure_from, send_until) = match opts.messages {
        Some(_) => (start, start + Duration::from_secs(24 * 3600)),
        None => (start + opts.warmup, start + opts.warmup + opts.duration),
    };
    let plan = client::Plan { shape, window: opts.window, measure_from, send_until, messages: opts.messages };
    let progress = Arc::new(AtomicU64::new(0));
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..opts.conns {
        let target = target.clone();
        let progress = progress.clone();
        tasks.spawn(async move { client::run(&target, plan, progress).await });
    }
    let bar = opts.progress.then(|| {
        let bar = indicatif::ProgressBar::new_spinner();
        bar.set_style(
            indicatif::ProgressStyle::with_template("{spinner} {msg} [{elapsed}]")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
        );
        bar
    });
    let mut results = Vec::new();
    let mut ticker = tokio::time::interval(Duration::from_millis(250));
    loop {
        tokio::select! {
            joined = tasks.join_next() => match joined {
                Some(r) => results.push(r.context("bench connection panicked")??),
                None => break,
            },
            _ = ticker.tick(), if bar.is_some() => {
                if let Some(bar) = &bar {
                    let n = progress.load(Ordering::Relaxed);
                    let secs = start.elapsed().as_secs_f64().max(1e-3);
                    bar.set_message(format!("{n} echoes, {:.0}/s", n as f64 / secs));
                }
            }
        }
    }
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    let mut hist = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).context("histogram")?;
    let mut errors = Errors::default();
    let mut measured = 0;
    let mut last = None::<Instant>;
    for r in &results {
        hist.add(&r.rtt_us).context("merging histograms")?;
        errors.add(&r.errors);
        measured += r.measured;
        last = last.max(r.last_echo);
    }
    let seconds = match opts.messages {
        Some(_) => last.map_or(0.0, |l| l.duration_since(start).as_secs_f64()),
        None => opts.duration.as_secs_f64(),
    }
    .max(1e-9);
    let rate = measured as f64 / seconds;
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
        rtt_us: Percentiles {
            p50: hist.value_at_quantile(0.5),
            p90: hist.value_at_quantile(0.9),
            p99: hist.value_at_quantile(0.99),
            max: hist.max(),
        },
        error_count: errors.total(),
        errors,
    })
}

/// The report as a few lines of text.
pub fn render_report(r: &BenchReport) -> String {
    let e = &r.errors;
    format!(
        "{} — {} × {} in flight × {} B {}\n\
         {:>12.0} msg/s   {:>9.2} MB/s   ({} in {:.2} s)\n\
         round trip µs: p50 {}  p90 {}  p99 {}  max {}\n\
         errors: {} (mismatched {}, wrong kind {}, lost {}, duplicated/reordered {}, protocol {})\n",
        r.url,
        wscli::count(r.conns as u64, "connection"),
        r.window,
        r.size,
        if r.text { "text" } else { "binary" },
        r.messages_per_sec,
        r.mb_per_sec,
        wscli::count_with(r.messages, "echo", "echoes"),
        r.seconds,
        r.rtt_us.p50,
        r.rtt_us.p90,
        r.rtt_us.p99,
        r.rtt_us.max,
        r.error_count,
        e.mismatched,
        e.wrong_kind,
        e.lost,
        e.duplicated_or_reordered,
        e.protocol
    )
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
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    rt.block_on(async {
        let (before, _) = rss_kib(pid)?;
        let mut open = Vec::with_capacity(conns);
        for i in 0..conns {
            let (s, _) = connect(&target).await.with_context(|| format!("connection {}", i + 1))?;
            open.push(s);
        }
        tokio::time::sleep(settle).await;
        let (after, _) = rss_kib(pid)?;
        drop(open);
        Ok((before, after, (after.saturating_sub(before)) as f64 / conns as f64))
    })
}
