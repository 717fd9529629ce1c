//! The two storage contracts: a blob store for immutable files and the manifest, and a log
//! store for the write-ahead log.
//!
//! Both are synchronous (the engine runs on its own threads; an object-store backend blocks on
//! its runtime) and object-safe: the engine holds `Arc<dyn BlobStore>` and `Arc<dyn LogStore>`.
//! Every implementation passes the same conformance suite (`conformance.rs`).

use std::fmt;
use std::ops::Range;
use std::sync::Arc;

use crate::blob::Blob;
use crate::error::StoreResult;

/// A version of a blob, as the store reports it: equal tags mean the same bytes were put by the
/// same put. (Local files: device, inode, mtime and size, as `object_store`'s local backend does;
/// object stores: the ETag.)
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ETag(pub String);

impl fmt::Display for ETag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// How a put treats an existing blob of the same name (`object_store`'s `PutMode`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PutMode {
    /// Replace whatever is there.
    Overwrite,
    /// Only if the name is free; otherwise [`crate::StoreError::AlreadyExists`].
    Create,
    /// Only if the current version is this one; otherwise [`crate::StoreError::Precondition`].
    Update(ETag),
}

/// Name, size and version of a stored blob.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BlobMeta {
    /// Its name (relative, `/`-separated; see [`crate::layout`]).
    pub name: String,
    /// Its length in bytes.
    pub size: u64,
    /// Its version.
    pub e_tag: ETag,
}

/// Immutable named blobs: segment files and the manifest.
///
/// Contract (checked by the conformance suite):
/// - **put is atomic and durable.** When `put` returns `Ok`, every reader and every later
///   process sees exactly the new bytes. When it fails, a reader sees the old bytes or the new
///   ones, never a mix — and the caller cannot tell which (a failed directory fsync leaves the
///   new name visible but perhaps not durable).
/// - **open is cheap.** It does not read the whole blob when the backend can map it; the bytes
///   are 16-byte aligned (see [`Blob`]).
/// - **read_ranges** returns exactly the requested bytes for every range, or an error; never
///   fewer bytes.
/// - **list** returns the names directly under a prefix (`""` or ending in `/`), sorted, never
///   temporary files.
/// - **delete** is durable and idempotent (deleting an absent name is `Ok`).
/// - Names are validated: empty names, absolute paths, `.`/`..` components and the temporary
///   suffix are refused with [`crate::StoreError::InvalidName`].
pub trait BlobStore: Send + Sync + fmt::Debug {
    /// Where `name` lives, for messages (a path, a URL).
    fn location(&self, name: &str) -> String;
    /// Stores `bytes` under `name` (see the contract above).
    fn put(&self, name: &str, bytes: &[u8], mode: PutMode) -> StoreResult<ETag>;
    /// The whole blob.
    fn open(&self, name: &str) -> StoreResult<Blob>;
    /// Several ranges of one blob; `out[i]` holds exactly the bytes of `ranges[i]`. A range past
    /// the end fails with an `UnexpectedEof` I/O error.
    fn read_ranges(&self, name: &str, ranges: &[Range<u64>]) -> StoreResult<Vec<Vec<u8>>>;
    /// Size and version.
    fn head(&self, name: &str) -> StoreResult<BlobMeta>;
    /// Blobs directly under `prefix`, sorted by name.
    fn list(&self, prefix: &str) -> StoreResult<Vec<BlobMeta>>;
    /// Removes `name`.
    fn delete(&self, name: &str) -> StoreResult<()>;

    /// Stores under `name` (overwriting) a blob of `len` bytes written in parts: `fill` gets
    /// a [`PartSink`] and writes disjoint parts, from several threads and in any order if it
    /// likes, that must cover all `len` bytes; `check` then gets the complete blob and may
    /// refuse it. Only when both succeed does the blob become visible under `name`, durably;
    /// otherwise nothing changes under the name. A local directory writes the parts straight
    /// into the temporary file (the blob never has to fit in RAM); this default assembles it
    /// on the heap and puts it.
    fn put_assembled(
        &self,
        name: &str,
        len: u64,
        fill: &dyn Fn(&dyn PartSink) -> StoreResult<()>,
        check: &dyn Fn(Blob) -> Result<(), String>,
    ) -> StoreResult<()> {
        let size = usize::try_from(len).map_err(|_| {
            invalid_part(
                self.location(name),
                format!("{len} bytes do not fit in memory"),
            )
        })?;
        let sink = HeapSink {
            location: self.location(name),
            buf: std::sync::Mutex::new(vec![0; size]),
            cover: Coverage::new(len),
        };
        fill(&sink)?;
        sink.cover.complete(|| self.location(name))?;
        let buf = sink
            .buf
            .into_inner()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        check(Blob::from_bytes(&buf)).map_err(|why| refused(self.location(name), why))?;
        self.put(name, &buf, PutMode::Overwrite).map(|_| ())
    }
}

/// Where [`BlobStore::put_assembled`]'s parts go. Thread-safe.
pub trait PartSink: Sync {
    /// Writes `bytes` at `offset` of the blob being assembled.
    fn write_part(&self, offset: u64, bytes: &[u8]) -> StoreResult<()>;
}

/// Which byte ranges of an assembled blob have been written: parts must lie inside it, must
/// not overlap, and must cover it all.
#[derive(Debug)]
pub(crate) struct Coverage {
    len: u64,
    parts: std::sync::Mutex<Vec<Range<u64>>>,
}

impl Coverage {
    pub(crate) fn new(len: u64) -> Coverage {
        Coverage {
            len,
            parts: std::sync::Mutex::new(Vec::new()),
        }
    }

    /// Records a part about to be written at `offset`; refuses one outside the blob.
    pub(crate) fn add(
        &self,
        location: impl FnOnce() -> String,
        offset: u64,
        n: usize,
    ) -> StoreResult<()> {
        match offset.checked_add(n as u64) {
            Some(end) if end <= self.len => {
                crate::lock(&self.parts).push(offset..end);
                Ok(())
            }
            _ => Err(invalid_part(
                location(),
                format!(
                    "a part of {n} bytes at {offset} lies outside the {} bytes",
                    self.len
                ),
            )),
        }
    }

    /// Ok when the parts cover every byte exactly once.
    pub(crate) fn complete(&self, location: impl FnOnce() -> String) -> StoreResult<()> {
        let mut parts = crate::lock(&self.parts).clone();
        parts.sort_by_key(|r| r.start);
        let mut at = 0;
        for r in parts.iter().filter(|r| !r.is_empty()) {
            if r.start != at {
                let what = if r.start < at {
                    "overlap"
                } else {
                    "leave a hole"
                };
                return Err(invalid_part(
                    location(),
                    format!("the parts {what} at byte {}", r.start.min(at)),
                ));
            }
            at = r.end;
        }
        if at != self.len {
            return Err(invalid_part(
                location(),
                format!("the parts end at byte {at} of {}", self.len),
            ));
        }
        Ok(())
    }
}

fn invalid_part(location: String, why: String) -> crate::StoreError {
    crate::StoreError::Io {
        op: "assembling",
        location,
        source: std::io::Error::new(std::io::ErrorKind::InvalidInput, why),
    }
}

/// A blob refused by [`BlobStore::put_assembled`]'s check.
pub(crate) fn refused(location: String, why: String) -> crate::StoreError {
    crate::StoreError::Io {
        op: "verifying",
        location,
        source: std::io::Error::new(std::io::ErrorKind::InvalidData, why),
    }
}

struct HeapSink {
    location: String,
    buf: std::sync::Mutex<Vec<u8>>,
    cover: Coverage,
}

impl PartSink for HeapSink {
    fn write_part(&self, offset: u64, bytes: &[u8]) -> StoreResult<()> {
        self.cover
            .add(|| self.location.clone(), offset, bytes.len())?;
        let at = offset as usize;
        crate::lock(&self.buf)[at..at + bytes.len()].copy_from_slice(bytes);
        Ok(())
    }
}

/// An append-only log file handle from [`LogStore::create`].
pub trait LogFile: Send + Sync + fmt::Debug {
    /// Writes `bytes` at `offset`, which the caller keeps equal to the current end. Not durable
    /// until [`LogFile::sync`]. On error any prefix of `bytes` may have been written: the caller
    /// cuts it with [`LogFile::set_len`].
    fn write_at(&self, offset: u64, bytes: &[u8]) -> StoreResult<()>;
    /// Makes everything written so far durable (`fdatasync`). After an error, what reached the
    /// device is unknown.
    fn sync(&self) -> StoreResult<()>;
    /// Cuts the file to `len` bytes (rolling back a failed write). Durable with the next sync.
    fn set_len(&self, len: u64) -> StoreResult<()>;
    /// Reserves space so the file is at least `len` bytes long, the new bytes reading as zeros
    /// (a longer file is left alone). Writes into reserved space then change neither the
    /// file's size nor its block map, so an `fdatasync` need not write the inode as well
    /// (measured: a third of a small write's `fdatasync` on ext4). The local file system's
    /// reserves the blocks (`fallocate`) and writes the zeros, so that they are ordinary
    /// written blocks, not unwritten extents converted on first use; where `fallocate` is
    /// missing the zeros alone extend the file. Durable with the next sync.
    fn allocate(&self, len: u64) -> StoreResult<()>;
}

/// A directory of append-only log files: the WAL's device.
///
/// Contract (checked by the conformance suite):
/// - **create** makes a file holding exactly `header`, durably and atomically (a crash never
///   leaves a partial header under the name); creating an existing name replaces it.
/// - **read** returns the whole file, **len** its size; appended bytes are visible to both as
///   soon as `write_at` returns.
/// - **truncate**, **sync_file** and **remove** are durable when they return; removing an
///   absent file is `Ok`.
/// - **list** returns every log file name, sorted, never temporary files.
pub trait LogStore: Send + Sync + fmt::Debug {
    /// Where `name` lives, for messages.
    fn location(&self, name: &str) -> String;
    /// Log file names, sorted.
    fn list(&self) -> StoreResult<Vec<String>>;
    /// The whole file.
    fn read(&self, name: &str) -> StoreResult<Vec<u8>>;
    /// The file's size in bytes.
    fn len(&self, name: &str) -> StoreResult<u64>;
    /// Creates `name` holding `header`; returns a handle to append to it.
    fn create(&self, name: &str, header: &[u8]) -> StoreResult<Arc<dyn LogFile>>;
    /// Cuts `name` to `len` bytes, durably (a torn tail at recovery).
    fn truncate(&self, name: &str, len: u64) -> StoreResult<()>;
    /// Makes all of `name` durable. Recovery syncs what it replayed, so that what it shows
    /// (records a crashed process had written but not synced) survives a later crash.
    fn sync_file(&self, name: &str) -> StoreResult<()>;
    /// Removes `name`, durably.
    fn remove(&self, name: &str) -> StoreResult<()>;
}

/// Checks a blob name (see the [`BlobStore`] contract).
pub(crate) fn check_name(name: &str) -> StoreResult<()> {
    let bad = |why| {
        Err(crate::StoreError::InvalidName {
            name: name.to_string(),
            why,
        })
    };
    if name.is_empty() {
        return bad("empty");
    }
    if name.starts_with('/') || name.ends_with('/') {
        return bad("must be relative and name a file");
    }
    if name.ends_with(crate::layout::TMP_SUFFIX) {
        return bad("the temporary-file suffix is reserved");
    }
    for part in name.split('/') {
        if part.is_empty() || part == "." || part == ".." {
            return bad("empty, `.` or `..` path component");
        }
        if part.bytes().any(|b| b == 0 || b == b'\\') {
            return bad("NUL or backslash");
        }
    }
    Ok(())
}

/// Checks a list prefix: empty, or a valid name followed by `/`.
pub(crate) fn check_prefix(prefix: &str) -> StoreResult<()> {
    match prefix.strip_suffix('/') {
        None if prefix.is_empty() => Ok(()),
        Some(dir) => check_name(dir),
        None => Err(crate::StoreError::InvalidName {
            name: prefix.to_string(),
            why: "a list prefix is empty or ends with `/`",
        }),
    }
}

/// Checks that `ranges` lie within `len` bytes.
pub(crate) fn check_ranges(location: &str, len: u64, ranges: &[Range<u64>]) -> StoreResult<()> {
    for r in ranges {
        if r.start > r.end || r.end > len {
            return Err(crate::StoreError::Io {
                op: "reading",
                location: location.to_string(),
                source: std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    format!("range {}..{} outside the {len} bytes", r.start, r.end),
                ),
            });
        }
    }
    Ok(())
}
