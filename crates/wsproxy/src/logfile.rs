//! The `--log FILE` output: a file written as a stream. Every few MiB a
//! helper thread makes what was written durable (`fdatasync`) and then
//! drops it from the page cache (`posix_fadvise(DONTNEED)`), so a log of
//! many gigabytes neither evicts the machine's cache nor keeps claiming
//! fresh memory: the pages just written are freed and reused for the next
//! ones. On this project's virtual machines, writing into memory the guest
//! has not touched lately runs at ~0.5 GB/s against ~3 GB/s for reused
//! pages; at 16-byte messages the log writer spent most of a core there.
//!
//! The writer itself never waits for the disk: when the helper is still busy
//! with the previous stretch, the next one is simply handed over later (the
//! page cache then holds more, as it would without any of this).

use std::fs::File;
use std::io::{self, Write};
use std::sync::mpsc::{SyncSender, TrySendError, sync_channel};

/// Bytes written between two hand-overs to the helper.
const STRETCH: u64 = 16 << 20;

/// A log file; see the module documentation.
#[derive(Debug)]
pub struct LogFile {
    file: File,
    written: u64,
    handed_over: u64,
    helper: Option<SyncSender<u64>>,
}

impl LogFile {
    /// Creates (or truncates) the file at `path`.
    pub fn create(path: &std::path::Path) -> io::Result<LogFile> {
        let file = File::create(path)?;
        let helper = file.try_clone().ok().and_then(start_helper);
        Ok(LogFile { file, written: 0, handed_over: 0, helper })
    }
}

/// Starts the thread that syncs and drops what was written up to each
/// offset it receives; it ends when the [`LogFile`] is dropped.
fn start_helper(file: File) -> Option<SyncSender<u64>> {
    let (tx, rx) = sync_channel::<u64>(1);
    std::thread::Builder::new()
        .name("wsproxy-log-sync".into())
        .spawn(move || {
            let mut dropped = 0;
            while let Ok(upto) = rx.recv() {
                if file.sync_data().is_err() {
                    // Not a file that can be synced (a pipe given as a path): nothing to drop.
                    return;
                }
                drop_cached(&file, dropped, upto);
                // The kernel keeps a page the range only partly covers:
                // start the next range at that page.
                dropped = upto - upto % 4096;
            }
        })
        .ok()?;
    Some(tx)
}

#[cfg(target_os = "linux")]
fn drop_cached(file: &File, from: u64, to: u64) {
    use rustix::fs::{Advice, fadvise};
    // Advice only: a failure changes nothing but memory use.
    let _ = fadvise(file, from, std::num::NonZeroU64::new(to.saturating_sub(from)), Advice::DontNeed);
}

#[cfg(not(target_os = "linux"))]
fn drop_cached(_file: &File, _from: u64, _to: u64) {}

impl LogFile {
    /// Counts `n` bytes written and hands a stretch to the helper when one
    /// is complete.
    fn wrote(&mut self, n: usize) {
        self.written += n as u64;
        if self.written - self.handed_over >= STRETCH
            && let Some(helper) = &self.helper
        {
            match helper.try_send(self.written) {
                Ok(()) => self.handed_over = self.written,
                // Still busy with the last stretch: hand this one over later.
                Err(TrySendError::Full(_)) => {}
                Err(TrySendError::Disconnected(_)) => self.helper = None,
            }
        }
    }
}

impl Write for LogFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.file.write(buf)?;
        self.wrote(n);
        Ok(n)
    }

    /// One `writev` (the `--pcap` writer hands headers and payloads as
    /// separate slices).
    fn write_vectored(&mut self, bufs: &[io::IoSlice<'_>]) -> io::Result<usize> {
        let n = self.file.write_vectored(bufs)?;
        self.wrote(n);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use super::*;

    #[test]
    fn everything_written_is_in_the_file_in_order() {
        let dir = std::env::temp_dir().join(format!("wsproxy-logfile-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let path = dir.join("events.jsonl");
        let mut expected = Vec::new();
        {
            let mut log = io::BufWriter::with_capacity(1 << 20, LogFile::create(&path).expect("create"));
            // Past several stretches, so the helper syncs and drops while
            // the writer goes on.
            for i in 0..1_000_000u32 {
                let line = format!("{{\"n\":{i},\"pad\":\"{}\"}}\n", "x".repeat((i % 97) as usize));
                log.write_all(line.as_bytes()).expect("write");
                expected.extend_from_slice(line.as_bytes());
            }
            log.flush().expect("flush");
        }
        assert!(expected.len() as u64 > 3 * STRETCH, "{} bytes", expected.len());
        let mut got = Vec::new();
        File::open(&path).expect("open").read_to_end(&mut got).expect("read");
        assert!(got == expected, "the file holds {} bytes, {} were written", got.len(), expected.len());
        std::fs::remove_dir_all(&dir).expect("cleanup");
    }
}
