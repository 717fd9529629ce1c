//! Positional reads: the one trait every local backend implements.
//!
//! Contract (checked by the conformance suite below, run against every implementation):
//! - `len()` is the file length at open and never changes (files are immutable);
//! - `read_at(offset, buf)` fills all of `buf` from `offset` or fails with
//!   `UnexpectedEof` when `offset + buf.len() > len()`; it never returns partial data;
//! - reads are safe from many threads at once.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;

use crate::Blob;

/// Positional reads over an immutable file.
pub trait PositionalRead: Send + Sync {
    /// Length of the file in bytes.
    fn len(&self) -> u64;
    /// True when the file is empty.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Fills `buf` with the bytes at `offset..offset + buf.len()`.
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<()>;
}

fn check_range(len: u64, offset: u64, n: usize) -> io::Result<()> {
    match offset.checked_add(n as u64) {
        Some(end) if end <= len => Ok(()),
        _ => Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            format!("read of {n} bytes at offset {offset} past end of file ({len} bytes)"),
        )),
    }
}

/// Reads through a memory map.
#[derive(Debug)]
pub struct MmapFile {
    blob: Blob,
}

impl MmapFile {
    /// Maps `path` read-only.
    pub fn open(path: &Path) -> io::Result<MmapFile> {
        Ok(MmapFile {
            blob: Blob::map(path)?,
        })
    }
}

impl PositionalRead for MmapFile {
    fn len(&self) -> u64 {
        self.blob.len() as u64
    }
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        check_range(self.len(), offset, buf.len())?;
        let start = offset as usize;
        buf.copy_from_slice(&self.blob.as_bytes()[start..start + buf.len()]);
        Ok(())
    }
}

/// Reads with `pread(2)`: the fallback when mapping is not wanted.
#[derive(Debug)]
pub struct PreadFile {
    file: File,
    len: u64,
}

impl PreadFile {
    /// Opens `path` for reading.
    pub fn open(path: &Path) -> io::Result<PreadFile> {
        let file = File::open(path)?;
        let len = file.metadata()?.len();
        Ok(PreadFile { file, len })
    }
}

impl PositionalRead for PreadFile {
    fn len(&self) -> u64 {
        self.len
    }
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        check_range(self.len, offset, buf.len())?;
        self.file.read_exact_at(buf, offset)
    }
}

#[cfg(test)]
mod conformance {
    use super::*;
    use std::sync::Arc;

    fn fixture() -> (tempfile::TempDir, std::path::PathBuf, Vec<u8>) {
        let d = tempfile::tempdir().expect("tempdir");
        let data: Vec<u8> = (0..70_000u32).map(|i| (i % 251) as u8).collect();
        crate::fs::write_atomic(d.path(), "f", &data).expect("write");
        let p = d.path().join("f");
        (d, p, data)
    }

    fn suite(r: Arc<dyn PositionalRead>, data: &[u8]) {
        assert_eq!(r.len(), data.len() as u64);
        for (off, n) in [
            (0usize, 0usize),
            (0, 1),
            (5, 4096),
            (65_536, 4464),
            (69_999, 1),
        ] {
            let mut buf = vec![0u8; n];
            r.read_at(off as u64, &mut buf).expect("in range");
            assert_eq!(&buf[..], &data[off..off + n], "offset {off} len {n}");
        }
        let mut buf = vec![0u8; 2];
        let e = r.read_at(69_999, &mut buf).expect_err("past end");
        assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof);
        assert!(r.read_at(u64::MAX, &mut buf).is_err(), "overflowing offset");
        let handles: Vec<_> = (0..4)
            .map(|t| {
                let r = Arc::clone(&r);
                let expect = data[t * 1000..t * 1000 + 100].to_vec();
                std::thread::spawn(move || {
                    let mut b = vec![0u8; 100];
                    for _ in 0..200 {
                        r.read_at((t * 1000) as u64, &mut b).expect("read");
                        assert_eq!(b, expect);
                    }
                })
            })
            .collect();
        for h in handles {
            h.join().expect("thread");
        }
    }

    #[test]
    fn mmap_conforms() {
        let (_d, p, data) = fixture();
        suite(Arc::new(MmapFile::open(&p).expect("open")), &data);
    }

    #[test]
    fn pread_conforms() {
        let (_d, p, data) = fixture();
        suite(Arc::new(PreadFile::open(&p).expect("open")), &data);
    }
}
