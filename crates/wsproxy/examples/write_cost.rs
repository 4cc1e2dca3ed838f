//! What writing a capture's bytes costs by itself, without the proxy: the
//! CPU time (this process's user + system time, helper thread included) to
//! write `SIZE` bytes at a time through [`wsproxy::logfile::LogFile`]
//! (the file `--pcap` writes to: `fdatasync` and page-cache drop every
//! 16 MiB), and, for comparison, to copy them once in memory and to
//! compute their TCP checksum (etherparse). Numbers for the README's account of what
//! `--pcap` costs; not a test.
//!
//! ```text
//! cargo run --release -p wsproxy --example write_cost -- 139264 2048 /tmp/cost.bin
//! ```

use std::io::Write;
use std::time::Instant;

/// This process's CPU time so far, in seconds (`/proc/self/stat`).
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<f64>().ok()).unwrap_or(0.0);
    // utime and stime are fields 14 and 15 (11 and 12 after the name).
    (ticks(11) + ticks(12)) / 100.0
}

fn measure(what: &str, chunks: usize, size: usize, mut step: impl FnMut(usize)) {
    let (cpu, wall) = (cpu_seconds(), Instant::now());
    for i in 0..chunks {
        step(i);
    }
    let (cpu, wall) = (cpu_seconds() - cpu, wall.elapsed().as_secs_f64());
    println!(
        "{what}: {:.1} µs CPU and {:.1} µs wall per {size} B ({:.2} GB/s of CPU)",
        cpu * 1e6 / chunks as f64,
        wall * 1e6 / chunks as f64,
        (chunks * size) as f64 / cpu.max(1e-9) / 1e9
    );
}

fn main() -> std::io::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let size: usize = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(139_264);
    let chunks: usize = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(2048);
    let path = args.get(3).map_or("write_cost.bin", String::as_str);
    let data: Vec<u8> = (0..size).map(|i| (i * 7 + 3) as u8).collect();

    let mut copy = vec![0u8; size];
    measure("copy in memory", chunks * 4, size, |i| {
        copy.copy_from_slice(&data);
        copy[i % size] ^= 1;
    });
    let mut sum = 0u64;
    measure("TCP checksum (etherparse)", chunks * 4, size, |_| {
        sum += u64::from(etherparse::checksum::Sum16BitWords::new().add_slice(&data).ones_complement());
    });
    let mut file = wsproxy::logfile::LogFile::create(std::path::Path::new(path))?;
    let mut failed = None;
    measure("write to the file (LogFile)", chunks, size, |_| {
        if let Err(e) = file
            .write_vectored(&[std::io::IoSlice::new(&data)])
            .and_then(|n| if n == size { Ok(()) } else { file.write_all(&data[n..]) })
        {
            failed = Some(e);
        }
    });
    drop(file);
    std::fs::remove_file(path)?;
    if let Some(e) = failed {
        return Err(e);
    }
    println!("(checksum {sum:x})");
    Ok(())
}
