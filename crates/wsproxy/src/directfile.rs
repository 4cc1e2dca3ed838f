//! The `--pcap` output's file: written with direct I/O (`O_DIRECT`) where
//! the file system allows it, so the capture's bytes go from one buffer of
//! ours to the disk without the page cache.
//!
//! Why: a capture writes every byte that passes. Through the page cache
//! that costs, on this project's virtual machines, about 0.5 µs of CPU per
//! KiB with [`crate::logfile::LogFile`]'s sync and page reuse every 16 MiB
//! (1.5–2.2 µs without the reuse: the kernel's copy, ext4, writeback); with
//! `O_DIRECT` in 4 MiB writes it costs about 0.07 µs per KiB, and the disk
//! took 2 GB/s of it against 0.25 GB/s through the page cache (the example
//! `write_cost` and `dd`; the README has the figures).
//!
//! How: bytes are gathered in a 4 MiB buffer aligned to [`ALIGN`] and
//! written whole, at aligned offsets. At a flush (the log writer flushes
//! after every round, so the capture is complete after each) the aligned
//! part is written directly and the rest, less than a block, through a
//! second, ordinary descriptor of the same file; it stays in the buffer
//! and the next direct write covers it again (Linux keeps the two kinds
//! of write coherent). Where `O_DIRECT` is refused (tmpfs, some network
//! file systems) every write goes through the ordinary descriptor.

use std::fs::{File, OpenOptions};
use std::io::{self, IoSlice, Write};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::Path;

/// Offsets, lengths and the buffer's address are multiples of this (the
/// largest logical block size in common use).
pub const ALIGN: usize = 4096;
/// Bytes gathered before a direct write.
const CHUNK: usize = 4 << 20;

/// A file written with direct I/O; see the module documentation.
#[derive(Debug)]
pub struct DirectFile {
    /// Opened with `O_DIRECT`; `None` when refused (or a direct write was).
    direct: Option<File>,
    /// An ordinary descriptor: the tail at a flush, or everything.
    plain: File,
    /// `CHUNK + ALIGN` bytes; the aligned region starts at `start`.
    buf: Vec<u8>,
    start: usize,
    /// Bytes in the region.
    len: usize,
    /// Where the region goes in the file (a multiple of [`ALIGN`]).
    pos: u64,
}

impl DirectFile {
    /// Creates (or truncates) the file at `path`.
    pub fn create(path: &Path) -> io::Result<DirectFile> {
        let plain = File::create(path)?;
        let direct =
            OpenOptions::new().write(true).custom_flags(rustix::fs::OFlags::DIRECT.bits() as i32).open(path).ok();
        let buf = vec![0u8; CHUNK + ALIGN];
        let start = (ALIGN - buf.as_ptr() as usize % ALIGN) % ALIGN;
        Ok(DirectFile { direct, plain, buf, start, len: 0, pos: 0 })
    }

    /// Whether writes go directly to the disk.
    pub fn is_direct(&self) -> bool {
        self.direct.is_some()
    }

    /// Writes the region's first `n` bytes (a multiple of [`ALIGN`]) at
    /// `pos` and moves what follows to the region's start.
    fn write_aligned(&mut self, n: usize) -> io::Result<()> {
        let region = &self.buf[self.start..self.start + n];
        match &self.direct {
            Some(direct) => {
                if let Err(e) = direct.write_all_at(region, self.pos) {
                    if e.raw_os_error() != Some(rustix::io::Errno::INVAL.raw_os_error()) {
                        return Err(e);
                    }
                    // The file system took the flag but not the write.
                    self.direct = None;
                    self.plain.write_all_at(region, self.pos)?;
                }
            }
            None => self.plain.write_all_at(region, self.pos)?,
        }
        self.buf.copy_within(self.start + n..self.start + self.len, self.start);
        self.len -= n;
        self.pos += n as u64;
        Ok(())
    }
}

impl Write for DirectFile {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let n = data.len().min(CHUNK - self.len);
        let at = self.start + self.len;
        self.buf[at..at + n].copy_from_slice(&data[..n]);
        self.len += n;
        if self.len == CHUNK {
            self.write_aligned(CHUNK)?;
        }
        Ok(n)
    }

    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        let mut total = 0;
        for b in bufs {
            self.write_all(b)?;
            total += b.len();
        }
        Ok(total)
    }

    /// Everything written so far is in the file: the whole blocks
    /// directly, the tail through the ordinary descriptor.
    fn flush(&mut self) -> io::Result<()> {
        let whole = self.len - self.len % ALIGN;
        if whole > 0 {
            self.write_aligned(whole)?;
        }
        if self.len > 0 {
            self.plain.write_all_at(&self.buf[self.start..self.start + self.len], self.pos)?;
        }
        Ok(())
    }
}

impl Drop for DirectFile {
    fn drop(&mut self) {
        let _ = self.flush();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Writes of every size, flushes between them, past several chunks:
    /// after each flush the file holds exactly what was written.
    #[test]
    fn after_every_flush_the_file_holds_what_was_written() {
        let dir = std::env::temp_dir().join(format!("wsproxy-directfile-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let path = dir.join("capture.pcapng");
        let mut f = DirectFile::create(&path).expect("create");
        let mut expected = Vec::new();
        let sizes = [1, 4095, 4096, 4097, 100_000, 3 << 20, 7, CHUNK, 12_345];
        for (round, size) in sizes.iter().cycle().take(40).enumerate() {
            let piece: Vec<u8> = (0..*size).map(|i| (i * 31 + round) as u8).collect();
            let half = piece.len() / 2;
            let n = f.write_vectored(&[IoSlice::new(&piece[..half]), IoSlice::new(&piece[half..])]).expect("write");
            assert_eq!(n, piece.len(), "write_vectored takes every slice");
            expected.extend_from_slice(&piece);
            if round % 3 != 2 {
                f.flush().expect("flush");
                let got = std::fs::read(&path).expect("read");
                assert!(got == expected, "round {round}: {} bytes in the file, {} written", got.len(), expected.len());
            }
        }
        drop(f);
        assert!(std::fs::read(&path).expect("read") == expected);
        std::fs::remove_dir_all(&dir).expect("cleanup");
    }
}
