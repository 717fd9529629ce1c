//! The write-ahead log.
//!
//! Every mutation is one WAL record (a batch: all or nothing), numbered by a contiguous LSN,
//! framed with its length and a CRC32C. A write is acknowledged only once durable: with
//! [`AckMode::Fsync`] concurrent writers share one `fdatasync` (group commit).
//!
//! ```text
//!  writer ─append─▶ [inner lock: assign LSN, pwrite frame] ─sync(lsn)─▶ [sync lock: one
//!  fdatasync covers every frame written so far] ─▶ ack
//! ```
//!
//! The log is a directory of files `{first_lsn:020}.wal`. A file is closed (fsynced) when it
//! reaches `max_file_bytes` and at every open; closed files are deleted by [`Wal::release`] once
//! no stream (collection) still needs any of their records. Byte layouts: `docs/format.md`.
//!
//! Recovery ([`LocalWal::open`]) replays every record in order. A torn tail of the *last* file
//! (an incomplete frame, a last frame whose CRC fails, or trailing zeros) is truncated with a
//! warning; any other damage stops start-up with an error naming the file and offset.
//!
//! A failed write is rolled back (the file is truncated to its previous length); a failed
//! fsync poisons the log — after fsync fails, what reached the disk is unknown, so every later
//! append answers `Unavailable` until the process restarts and recovers.

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};

use crate::codec::{DecodeError, Reader, Writer, crc};
use crate::error::{Error, ErrorKind, Result};
use crate::types::Lsn;

/// When a write is acknowledged.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum AckMode {
    /// After `fdatasync` (group commit). The default; the only safe choice.
    #[default]
    Fsync,
    /// As soon as the record is in the OS page cache. A crash of the machine (not of the process)
    /// can lose acknowledged writes. For benchmarks and bulk loads only.
    None,
}

/// A write-ahead log. One per engine; records carry the id of the stream (collection) they
/// belong to so that the log can be released stream by stream.
pub trait Wal: Send + Sync + std::fmt::Debug {
    /// Appends one record for `stream`; returns its LSN. Not yet durable: call [`Wal::sync`].
    fn append(&self, stream: u64, payload: &[u8]) -> Result<Lsn>;
    /// Returns once every record up to `lsn` is durable (per the ack mode). Concurrent callers
    /// share one fsync.
    fn sync(&self, lsn: Lsn) -> Result<()>;
    /// The last LSN assigned.
    fn last_lsn(&self) -> Lsn;
    /// Deletes closed files none of whose records are still `needed(stream, max_lsn_of_stream)`.
    /// Returns how many files were deleted.
    fn release(&self, needed: &dyn Fn(u64, Lsn) -> bool) -> Result<usize>;
}

/// Largest record payload accepted (64 MiB).
pub const MAX_RECORD_BYTES: usize = 64 << 20;

pub(crate) const FILE_MAGIC: &[u8; 8] = b"STRATWAL";
pub(crate) const FILE_VERSION: u32 = 1;
/// Size of the file header.
pub(crate) const FILE_HEADER_LEN: usize = 32;
/// Size of a frame header: len u32, crc u32, lsn u64, stream u64.
pub(crate) const FRAME_HEADER_LEN: usize = 24;

/// Encodes the file header for a file whose first record is `first_lsn`.
pub(crate) fn encode_file_header(first_lsn: Lsn) -> Vec<u8> {
    let mut w = Writer::with_capacity(FILE_HEADER_LEN);
    w.bytes(FILE_MAGIC);
    w.u32(FILE_VERSION);
    w.u32(0);
    w.u64(first_lsn);
    w.u32(0);
    let c = crc(&w.buf);
    w.u32(c);
    w.buf
}

/// Decodes a file header; returns `first_lsn`.
pub(crate) fn decode_file_header(b: &[u8]) -> Result<Lsn, DecodeError> {
    let mut r = Reader::new(b);
    r.magic_and_version(FILE_MAGIC, FILE_VERSION, "WAL")?;
    let _flags = r.u32("WAL flags")?;
    let first = r.u64("first LSN")?;
    let _reserved = r.u32("reserved")?;
    let stored = r.u32("header CRC")?;
    if crc(&b[..28]) != stored {
        return Err(DecodeError {
            offset: 28,
            what: "WAL header checksum mismatch".into(),
        });
    }
    Ok(first)
}

/// Encodes one frame into `out`.
pub(crate) fn encode_frame(out: &mut Vec<u8>, lsn: Lsn, stream: u64, payload: &[u8]) {
    out.clear();
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(&lsn.to_le_bytes());
    out.extend_from_slice(&stream.to_le_bytes());
    out.extend_from_slice(payload);
    let c = frame_crc(out);
    out[4..8].copy_from_slice(&c.to_le_bytes());
}

/// CRC of a frame: over the length, then everything after the CRC field.
fn frame_crc(frame: &[u8]) -> u32 {
    crc32c::crc32c_append(crc(&frame[..4]), &frame[8..])
}

/// One decoded frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Frame<'a> {
    pub(crate) lsn: Lsn,
    pub(crate) stream: u64,
    pub(crate) payload: &'a [u8],
}

/// What stopped frame decoding.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum FrameError {
    /// Not enough bytes for the frame: a torn tail if at the end of the last file.
    Incomplete,
    /// The frame is complete but fails its checksum or sanity checks.
    Bad(String),
}

/// Decodes the frame at the start of `b`; on success also returns its total length.
pub(crate) fn decode_frame(b: &[u8]) -> Result<(Frame<'_>, usize), FrameError> {
    if b.len() < FRAME_HEADER_LEN {
        return Err(FrameError::Incomplete);
    }
    let len = u32::from_le_bytes(b[0..4].try_into().expect("4 bytes")) as usize;
    if len > MAX_RECORD_BYTES {
        return Err(FrameError::Bad(format!(
            "record length {len} exceeds the maximum {MAX_RECORD_BYTES}"
        )));
    }
    let total = FRAME_HEADER_LEN + len;
    if b.len() < total {
        return Err(FrameError::Incomplete);
    }
    let frame = &b[..total];
    let stored = u32::from_le_bytes(frame[4..8].try_into().expect("4 bytes"));
    if frame_crc(frame) != stored {
        return Err(FrameError::Bad("record checksum mismatch".into()));
    }
    let lsn = u64::from_le_bytes(frame[8..16].try_into().expect("8 bytes"));
    let stream = u64::from_le_bytes(frame[16..24].try_into().expect("8 bytes"));
    Ok((
        Frame {
            lsn,
            stream,
            payload: &frame[FRAME_HEADER_LEN..],
        },
        total,
    ))
}

#[derive(Debug, Clone)]
struct ClosedFile {
    path: PathBuf,
    first_lsn: Lsn,
    /// Highest LSN of each stream in the file.
    streams: HashMap<u64, Lsn>,
}

#[derive(Debug)]
struct Inner {
    file: Arc<File>,
    path: PathBuf,
    first_lsn: Lsn,
    len: u64,
    next_lsn: Lsn,
    streams: HashMap<u64, Lsn>,
    closed: Vec<ClosedFile>,
    frame: Vec<u8>,
}

/// A WAL in a local directory.
#[derive(Debug)]
pub struct LocalWal {
    dir: PathBuf,
    ack: AckMode,
    max_file_bytes: u64,
    inner: Mutex<Inner>,
    /// True while a leader is fsyncing on behalf of everyone.
    syncing: AtomicBool,
    /// Threads parked until the running fsync completes.
    waiters: Mutex<Vec<std::thread::Thread>>,
    durable: AtomicU64,
    last: AtomicU64,
    poisoned: AtomicBool,
    fsyncs: AtomicU64,
}

/// Called for every replayed record: `(lsn, stream, payload)`. An error stops recovery.
pub type ReplayVisitor<'a> = dyn FnMut(Lsn, u64, &[u8]) -> Result<()> + 'a;

/// Summary of a replay.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ReplayStats {
    /// Records replayed.
    pub records: u64,
    /// Files read.
    pub files: u64,
    /// Bytes dropped from a torn tail.
    pub torn_bytes: u64,
    /// Last LSN found.
    pub last_lsn: Lsn,
}

fn file_name(first_lsn: Lsn) -> String {
    format!("{first_lsn:020}.wal")
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl LocalWal {
    /// Opens (or creates) the log in `dir`, replaying every record with `visit(lsn, stream,
    /// payload)` in LSN order, then starts a new file for appends. `lsn_floor` is the highest
    /// LSN known to be used elsewhere (the manifest's), so numbering never goes backwards even
    /// when every file was released.
    pub fn open(
        dir: &Path,
        ack: AckMode,
        max_file_bytes: u64,
        lsn_floor: Lsn,
        visit: &mut ReplayVisitor<'_>,
    ) -> Result<(LocalWal, ReplayStats)> {
        strata_tiering::fs::create_dir_durable(dir)
            .map_err(|e| Error::io(format!("creating WAL directory {}", dir.display()), e))?;
        let mut names: Vec<(Lsn, PathBuf)> = Vec::new();
        for entry in
            fs::read_dir(dir).map_err(|e| Error::io(format!("listing {}", dir.display()), e))?
        {
            let entry = entry.map_err(|e| Error::io(format!("listing {}", dir.display()), e))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if let Some(stem) = name.strip_suffix(".wal")
                && let Ok(n) = stem.parse::<u64>()
            {
                names.push((n, entry.path()));
            }
        }
        names.sort();
        let mut stats = ReplayStats::default();
        let mut closed = Vec::new();
        let mut prev: Lsn = 0;
        let count = names.len();
        for (i, (_, path)) in names.into_iter().enumerate() {
            let is_last = i + 1 == count;
            let (streams, first, last) = replay_file(&path, is_last, &mut prev, &mut stats, visit)?;
            stats.files += 1;
            match first {
                Some(first_lsn) => closed.push(ClosedFile {
                    path,
                    first_lsn,
                    streams,
                }),
                // A file with no records holds nothing: remove it.
                None => {
                    fs::remove_file(&path)
                        .map_err(|e| Error::io(format!("removing {}", path.display()), e))?;
                }
            }
            let _ = last;
        }
        stats.last_lsn = prev;
        let next_lsn = prev.max(lsn_floor) + 1;
        let (file, path) = create_file(dir, next_lsn)?;
        let wal = LocalWal {
            dir: dir.to_path_buf(),
            ack,
            max_file_bytes: max_file_bytes.max(4096),
            inner: Mutex::new(Inner {
                file: Arc::new(file),
                path,
                first_lsn: next_lsn,
                len: FILE_HEADER_LEN as u64,
                next_lsn,
                streams: HashMap::new(),
                closed,
                frame: Vec::new(),
            }),
            syncing: AtomicBool::new(false),
            waiters: Mutex::new(Vec::new()),
            durable: AtomicU64::new(next_lsn - 1),
            last: AtomicU64::new(next_lsn - 1),
            poisoned: AtomicBool::new(false),
            fsyncs: AtomicU64::new(0),
        };
        Ok((wal, stats))
    }

    /// The directory of the log.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Number of fsyncs issued for acknowledgements since open (group commit makes this smaller
    /// than the number of acknowledged records).
    pub fn fsync_count(&self) -> u64 {
        self.fsyncs.load(Ordering::Relaxed)
    }

    /// False once an fsync failure poisoned the log.
    pub fn is_healthy(&self) -> bool {
        !self.poisoned.load(Ordering::Acquire)
    }

    /// Number of files (closed and current).
    pub fn file_count(&self) -> usize {
        lock(&self.inner).closed.len() + 1
    }

    fn check_poisoned(&self) -> Result<()> {
        if self.poisoned.load(Ordering::Acquire) {
            return Err(Error::new(
                ErrorKind::Unavailable,
                "the WAL is unavailable after an fsync failure; restart the server to recover",
            ));
        }
        Ok(())
    }

    fn poison(&self, what: &str, e: std::io::Error) -> Error {
        self.poisoned.store(true, Ordering::Release);
        tracing::error!(error = %e, "{what}: WAL poisoned");
        Error::new(
            ErrorKind::Unavailable,
            format!("{what}: {e}; the WAL refuses further writes until restart"),
        )
    }

    /// Fsyncs everything written so far and advances the durable LSN.
    fn fsync_written(&self) -> Result<()> {
        let (file, upto) = {
            let w = lock(&self.inner);
            (Arc::clone(&w.file), w.next_lsn - 1)
        };
        let started = std::time::Instant::now();
        if let Err(e) = file.sync_data() {
            return Err(self.poison("fsync of the WAL", e));
        }
        metrics::histogram!("strata_wal_fsync_seconds").record(started.elapsed().as_secs_f64());
        self.fsyncs.fetch_add(1, Ordering::Relaxed);
        self.durable.fetch_max(upto, Ordering::SeqCst);
        Ok(())
    }

    fn rotate(&self, w: &mut Inner) -> Result<()> {
        if let Err(e) = w.file.sync_data() {
            return Err(self.poison("fsync of WAL file before rotation", e));
        }
        self.durable.fetch_max(w.next_lsn - 1, Ordering::AcqRel);
        let (file, path) = create_file(&self.dir, w.next_lsn)?;
        let old_path = std::mem::replace(&mut w.path, path);
        let old_streams = std::mem::take(&mut w.streams);
        w.closed.push(ClosedFile {
            path: old_path,
            first_lsn: w.first_lsn,
            streams: old_streams,
        });
        w.file = Arc::new(file);
        w.first_lsn = w.next_lsn;
        w.len = FILE_HEADER_LEN as u64;
        Ok(())
    }
}

fn create_file(dir: &Path, first_lsn: Lsn) -> Result<(File, PathBuf)> {
    let path = dir.join(file_name(first_lsn));
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(&path)
        .map_err(|e| Error::io(format!("creating {}", path.display()), e))?;
    file.write_all_at(&encode_file_header(first_lsn), 0)
        .and_then(|()| file.sync_all())
        .and_then(|()| strata_tiering::fs::sync_dir(dir))
        .map_err(|e| Error::io(format!("initialising {}", path.display()), e))?;
    Ok((file, path))
}

type ReplayedFile = (HashMap<u64, Lsn>, Option<Lsn>, Option<Lsn>);

fn replay_file(
    path: &Path,
    is_last: bool,
    prev: &mut Lsn,
    stats: &mut ReplayStats,
    visit: &mut ReplayVisitor<'_>,
) -> Result<ReplayedFile> {
    let bytes = fs::read(path).map_err(|e| Error::io(format!("reading {}", path.display()), e))?;
    let at = |off: usize, what: &str| {
        Error::corruption(format!(
            "WAL file {} is corrupt at byte offset {off}: {what}",
            path.display()
        ))
    };
    let mut streams = HashMap::new();
    if bytes.len() < FILE_HEADER_LEN {
        if is_last {
            tracing::warn!(file = %path.display(), "WAL file with a torn header: ignored");
            return Ok((streams, None, None));
        }
        return Err(at(0, "file shorter than its header"));
    }
    decode_file_header(&bytes[..FILE_HEADER_LEN]).map_err(|e| at(e.offset, &e.what))?;
    let mut off = FILE_HEADER_LEN;
    let (mut first, mut last) = (None, None);
    while off < bytes.len() {
        let rest = &bytes[off..];
        match decode_frame(rest) {
            Ok((frame, len)) => {
                if frame.lsn <= *prev {
                    return Err(at(
                        off,
                        &format!("LSN {} does not follow LSN {}", frame.lsn, *prev),
                    ));
                }
                visit(frame.lsn, frame.stream, frame.payload).map_err(|e| {
                    Error::new(
                        e.kind(),
                        format!(
                            "WAL file {} at byte offset {off} (LSN {}): {}",
                            path.display(),
                            frame.lsn,
                            e.message()
                        ),
                    )
                })?;
                *prev = frame.lsn;
                first.get_or_insert(frame.lsn);
                last = Some(frame.lsn);
                let e = streams.entry(frame.stream).or_insert(0);
                *e = (*e).max(frame.lsn);
                stats.records += 1;
                off += len;
            }
            Err(err) => {
                let all_zero = rest.iter().all(|b| *b == 0);
                let torn = is_last
                    && match &err {
                        FrameError::Incomplete => true,
                        FrameError::Bad(_) => {
                            all_zero || frame_end(rest).is_none_or(|end| end >= rest.len())
                        }
                    };
                if !torn {
                    let what = match err {
                        FrameError::Incomplete => "incomplete record".to_string(),
                        FrameError::Bad(w) => w,
                    };
                    return Err(at(off, &what));
                }
                tracing::warn!(
                    file = %path.display(),
                    offset = off,
                    bytes = rest.len(),
                    "truncating torn WAL tail"
                );
                let f = OpenOptions::new()
                    .write(true)
                    .open(path)
                    .map_err(|e| Error::io(format!("opening {}", path.display()), e))?;
                f.set_len(off as u64)
                    .and_then(|()| f.sync_all())
                    .map_err(|e| Error::io(format!("truncating {}", path.display()), e))?;
                stats.torn_bytes += rest.len() as u64;
                break;
            }
        }
    }
    Ok((streams, first, last))
}

/// Where the frame starting at `b` claims to end, if its length field is readable.
fn frame_end(b: &[u8]) -> Option<usize> {
    let len = u32::from_le_bytes(b.get(0..4)?.try_into().ok()?) as usize;
    Some(FRAME_HEADER_LEN + len)
}

impl Wal for LocalWal {
    fn append(&self, stream: u64, payload: &[u8]) -> Result<Lsn> {
        self.check_poisoned()?;
        if payload.len() > MAX_RECORD_BYTES {
            return Err(Error::new(
                ErrorKind::ResourceExhausted,
                format!(
                    "batch encodes to {} bytes, over the {} byte record limit; split it",
                    payload.len(),
                    MAX_RECORD_BYTES
                ),
            ));
        }
        let mut guard = lock(&self.inner);
        let w = &mut *guard;
        if w.len >= self.max_file_bytes {
            self.rotate(w)?;
        }
        let lsn = w.next_lsn;
        let mut frame = std::mem::take(&mut w.frame);
        encode_frame(&mut frame, lsn, stream, payload);
        let res = w.file.write_all_at(&frame, w.len);
        let n = frame.len() as u64;
        w.frame = frame;
        if let Err(e) = res {
            // Roll back a partial frame so that later frames do not follow garbage.
            if let Err(e2) = w.file.set_len(w.len) {
                return Err(self.poison("rolling back a failed WAL write", e2));
            }
            return Err(Error::io(format!("writing {}", w.path.display()), e));
        }
        w.len += n;
        w.next_lsn += 1;
        let e = w.streams.entry(stream).or_insert(0);
        *e = (*e).max(lsn);
        self.last.store(lsn, Ordering::Release);
        Ok(lsn)
    }

    fn sync(&self, lsn: Lsn) -> Result<()> {
        if self.ack == AckMode::None {
            return self.check_poisoned();
        }
        // Group commit. The first writer to find no fsync running becomes the leader and syncs
        // everything written so far; the others park and are all woken at once when it is done
        // (a mutex here made covered followers find out one context switch at a time, so they
        // came back too late to share the next fsync: measured 1.1 records per fsync at 4
        // writers, see docs/benchmarks.md).
        loop {
            if self.durable.load(Ordering::SeqCst) >= lsn {
                return self.check_poisoned();
            }
            self.check_poisoned()?;
            if self
                .syncing
                .compare_exchange(false, true, Ordering::SeqCst, Ordering::SeqCst)
                .is_ok()
            {
                let res = self.fsync_written();
                self.syncing.store(false, Ordering::SeqCst);
                for t in std::mem::take(&mut *lock(&self.waiters)) {
                    t.unpark();
                }
                res?;
                continue;
            }
            // No lost wake-up: the leader clears `syncing` before it takes the waiter list, and
            // we register before we read `syncing`. Either it sees us, or we see it finished.
            // A stale unpark only makes a later park return early; the loop re-checks.
            lock(&self.waiters).push(std::thread::current());
            if self.syncing.load(Ordering::SeqCst) && self.durable.load(Ordering::SeqCst) < lsn {
                std::thread::park();
            }
        }
    }

    fn last_lsn(&self) -> Lsn {
        self.last.load(Ordering::Acquire)
    }

    fn release(&self, needed: &dyn Fn(u64, Lsn) -> bool) -> Result<usize> {
        let snapshot = lock(&self.inner).closed.clone();
        let drop_firsts: Vec<Lsn> = snapshot
            .iter()
            .filter(|f| !f.streams.iter().any(|(s, m)| needed(*s, *m)))
            .map(|f| f.first_lsn)
            .collect();
        if drop_firsts.is_empty() {
            return Ok(0);
        }
        let removed: Vec<ClosedFile> = {
            let mut w = lock(&self.inner);
            let (gone, keep) = std::mem::take(&mut w.closed)
                .into_iter()
                .partition(|f| drop_firsts.contains(&f.first_lsn));
            w.closed = keep;
            gone
        };
        for f in &removed {
            match fs::remove_file(&f.path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(Error::io(format!("removing {}", f.path.display()), e)),
            }
        }
        strata_tiering::fs::sync_dir(&self.dir)
            .map_err(|e| Error::io(format!("syncing {}", self.dir.display()), e))?;
        Ok(removed.len())
    }
}

#[cfg(test)]
mod tests;
