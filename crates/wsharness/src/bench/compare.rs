//! `wsharness bench compare`: a fixed matrix of workloads against several
//! targets, alternating targets and repeating rounds, reported as medians
//! and ratios to the first target (all measured in the same run).

use std::fmt::Write as _;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde::Serialize;

use super::{BenchOptions, BenchReport, cpu_seconds, rss_kib, run};

/// One row of the matrix.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Workload {
    /// Short name.
    pub name: &'static str,
    /// Connections.
    pub conns: usize,
    /// In flight per connection.
    pub window: usize,
    /// Payload bytes.
    pub size: usize,
    /// Reported by latency (p50) rather than throughput.
    pub latency: bool,
}

/// The matrix: latency 1×1×16 B; throughput 10×16×16 B, 10×4×64 KiB, 2×2×1 MiB.
pub const MATRIX: [Workload; 4] = [
    Workload { name: "latency 1×1×16 B", conns: 1, window: 1, size: 16, latency: true },
    Workload { name: "throughput 10×16×16 B", conns: 10, window: 16, size: 16, latency: false },
    Workload { name: "throughput 10×4×64 KiB", conns: 10, window: 4, size: 64 << 10, latency: false },
    Workload { name: "throughput 2×2×1 MiB", conns: 2, window: 2, size: 1 << 20, latency: false },
];

/// What to compare and how.
#[derive(Debug, Clone)]
pub struct CompareOptions {
    /// (name, url, pid to sample RSS from).
    pub targets: Vec<(String, String, Option<u32>)>,
    /// Rounds (each round runs every workload on every target).
    pub rounds: usize,
    /// Measured time per run.
    pub duration: Duration,
    /// Warm-up per run.
    pub warmup: Duration,
    /// Keep the other core busy with a lowest-priority spinner during
    /// latency runs (a virtual machine's idle core takes ~30 µs to wake).
    pub spinner: bool,
}

/// Results: per workload, per target, every round's report.
#[derive(Debug, Clone, Serialize)]
pub struct Comparison {
    /// The workloads.
    pub workloads: Vec<Workload>,
    /// Target names, in order.
    pub targets: Vec<String>,
    /// `runs[w][t]`: the rounds of workload `w` on target `t`.
    pub runs: Vec<Vec<Vec<BenchReport>>>,
    /// Peak RSS per target in KiB, where a PID was given.
    pub peak_rss_kib: Vec<Option<u64>>,
    /// `cpu_us[w][t]`: per round, the target process's CPU time per echoed
    /// message in µs, where a PID was given (see [`cpu_seconds`]).
    pub cpu_us: Vec<Vec<Vec<f64>>>,
}

struct Spinner(Child);

impl Spinner {
    fn start() -> Option<Spinner> {
        Command::new("nice")
            .args(["-n", "19", "sh", "-c", "while :; do :; done"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .ok()
            .map(Spinner)
    }
}

impl Drop for Spinner {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Runs the matrix.
pub fn compare(
    opts: &CompareOptions,
    mut on_run: impl FnMut(&str, &str, usize, &BenchReport),
) -> anyhow::Result<Comparison> {
    let mut runs = vec![vec![Vec::new(); opts.targets.len()]; MATRIX.len()];
    let mut cpu_us = vec![vec![Vec::new(); opts.targets.len()]; MATRIX.len()];
    for round in 0..opts.rounds {
        for (w, workload) in MATRIX.iter().enumerate() {
            // Alternate the order each round so no target always goes first.
            let mut order: Vec<usize> = (0..opts.targets.len()).collect();
            if round % 2 == 1 {
                order.reverse();
            }
            for t in order {
                let (name, url, pid) = &opts.targets[t];
                let _spinner = (workload.latency && opts.spinner).then(Spinner::start).flatten();
                let cpu_before = pid.and_then(|p| cpu_seconds(p).ok());
                let started = std::time::Instant::now();
                let report = run(&BenchOptions {
                    url: url.clone(),
                    conns: workload.conns,
                    window: workload.window,
                    size: workload.size,
                    text: false,
                    duration: opts.duration,
                    messages: None,
                    warmup: opts.warmup,
                    ..BenchOptions::default()
                })?;
                // The process's CPU over the whole run (warm-up included),
                // as cores in use, divided by the measured message rate.
                let wall = started.elapsed().as_secs_f64();
                if let (Some(before), Some(after)) = (cpu_before, pid.and_then(|p| cpu_seconds(p).ok()))
                    && report.messages_per_sec > 0.0
                {
                    cpu_us[w][t].push((after - before) / wall / report.messages_per_sec * 1e6);
                }
                on_run(name, workload.name, round, &report);
                anyhow::ensure!(
                    report.error_count == 0,
                    "{name} ({url}) failed the echo check in {}: {:?}",
                    workload.name,
                    report.errors
                );
                runs[w][t].push(report);
            }
        }
    }
    let peak_rss_kib =
        opts.targets.iter().map(|(_, _, pid)| pid.and_then(|p| rss_kib(p).ok()).map(|(_, hwm)| hwm)).collect();
    Ok(Comparison {
        workloads: MATRIX.to_vec(),
        targets: opts.targets.iter().map(|(n, _, _)| n.clone()).collect(),
        runs,
        peak_rss_kib,
        cpu_us,
    })
}

fn median(mut v: Vec<f64>) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    let mid = v.len() / 2;
    if v.len() % 2 == 1 { v[mid] } else { (v[mid - 1] + v[mid]) / 2.0 }
}

/// The value a workload is judged by: p50 µs for latency, msg/s otherwise.
fn metric(w: &Workload, r: &BenchReport) -> f64 {
    if w.latency { r.rtt_us.p50 as f64 } else { r.messages_per_sec }
}

/// A Markdown table: per workload, each target's median and its ratio to
/// the first target (throughput: ×; latency: the difference in µs).
pub fn render_compare(c: &Comparison) -> String {
    let mut out = String::new();
    let _ = write!(out, "| workload |");
    for t in &c.targets {
        let _ = write!(out, " {t} |");
    }
    let _ = write!(out, "\n|---|");
    for _ in &c.targets {
        let _ = write!(out, "---:|");
    }
    out.push('\n');
    for (w, workload) in c.workloads.iter().enumerate() {
        let medians: Vec<f64> =
            c.runs[w].iter().map(|rs| median(rs.iter().map(|r| metric(workload, r)).collect())).collect();
        let _ = write!(out, "| {} |", workload.name);
        for (t, m) in medians.iter().enumerate() {
            if workload.latency {
                let mb = if t == 0 { String::new() } else { format!(" ({:+.0} µs)", m - medians[0]) };
                let _ = write!(out, " p50 {m:.0} µs{mb} |");
            } else {
                let mbps = median(c.runs[w][t].iter().map(|r| r.mb_per_sec).collect());
                let ratio = if t == 0 { String::new() } else { format!(" (×{:.2})", m / medians[0]) };
                let _ = write!(out, " {:.0} msg/s, {mbps:.0} MB/s{ratio} |", m);
            }
        }
        out.push('\n');
    }
    if c.cpu_us.iter().flatten().any(|rounds| !rounds.is_empty()) {
        for (w, workload) in c.workloads.iter().enumerate() {
            let _ = write!(out, "| CPU per echo, {} |", workload.name);
            for rounds in &c.cpu_us[w] {
                if rounds.is_empty() {
                    out.push_str(" – |");
                } else {
                    let _ = write!(out, " {:.1} µs |", median(rounds.clone()));
                }
            }
            out.push('\n');
        }
    }
    if c.peak_rss_kib.iter().any(Option::is_some) {
        let _ = write!(out, "| peak RSS |");
        for rss in &c.peak_rss_kib {
            match rss {
                Some(k) => {
                    let _ = write!(out, " {:.1} MiB |", *k as f64 / 1024.0);
                }
                None => out.push_str(" – |"),
            }
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_time_of_a_process_grows_as_it_works() {
        let pid = std::process::id();
        let before = cpu_seconds(pid).expect("own stat");
        let start = std::time::Instant::now();
        let mut x = 0u64;
        while start.elapsed() < Duration::from_millis(300) {
            x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
        }
        let used = cpu_seconds(pid).expect("own stat") - before;
        assert!((0.1..5.0).contains(&used), "busy for 0.3 s, counted {used} s");
        assert!(cpu_seconds(u32::MAX).is_err(), "no such process");
    }

    #[test]
    fn medians() {
        assert_eq!(median(vec![3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(vec![4.0, 1.0, 2.0, 3.0]), 2.5);
        assert!(median(vec![]).is_nan());
    }
}
