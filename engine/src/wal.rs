//! The write-ahead log.
//!
//! Every mutation is one WAL record (a batch: all or nothing), numbered by a contiguous LSN,
//! framed with its length and a CRC32C. A write is acknowledged only once durable: with
//! [`AckMode::Fsync`] concurrent writers share one `fdatasync` (group commit).
//!
//! ```text
//!  writer ─append─▶ [state lock: assign LSN, write frame at the end] ─sync(lsn)─▶ [one leader
//!  fsyncs every frame written so far; followers park] ─▶ ack
//! ```
//!
//! [`Wal`] is the contract the engine uses (open with replay, append, sync, release); a second
//! implementation (an object-store WAL for cluster mode) plugs in through
//! `EngineOptions::wal`, and `tests/custom_wal.rs` proves it with one in RAM. [`LocalWal`] is
//! the default: files `{first_lsn:020}.wal` on a [`LogStore`] (the local `wal/` directory, or
//! any other implementation — RAM, fault injection). A file is closed (fsynced) when it
//! reaches `max_file_bytes` and at every open; closed files are deleted by [`Wal::release`]
//! once no stream (collection) still needs any of their records. Byte layouts:
//! `docs/format.md`.
//!
//! **Space is reserved ahead** ([`LogFile::allocate`], `fallocate` and zeros): the current file is
//! kept [`LocalWalOptions::reserve_bytes`] (default [`PREALLOCATE_BYTES`]) longer than its
//! frames, zeros past the last one, so a write
//! changes neither the file's size nor its block map and each group commit's `fdatasync`
//! writes the data alone (not the inode too). A file is cut to its frames when it is closed.
//!
//! **Recovery** replays every record in order. Within a file LSNs are contiguous. Zeros after
//! the last frame of the *last* file are reserved space, cut without a warning. A damaged
//! frame at the end of the last file is a torn tail (the last write of a crash) and is cut
//! with a warning — unless a valid frame with a later LSN follows it: then it is corruption in
//! the middle of the log, and start-up stops with the file and offset, as it does for any
//! other damage.
//!
//! **Failures.** A failed write is rolled back (the file is cut to its previous length); a
//! failed fsync poisons the log — after fsync fails, what reached the disk is unknown, so every
//! later append answers `Unavailable` until the process restarts and recovers. A failed
//! rollback poisons it too.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};
use strata_tiering::{LogFile, LogStore, layout};

use crate::codec::{DecodeError, Reader, Writer, crc};
use crate::engine::lock;
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
///
/// Contract: [`Wal::open`] is called once per engine open, before any append; it replays every
/// record the log still holds, in LSN order, and readies the log to number new records after
/// `max(last replayed LSN, lsn_floor)`. An engine may be opened again on the same log after the
/// previous one was dropped. LSNs are assigned contiguously; a record is acknowledged only
/// after [`Wal::sync`] covers it.
pub trait Wal: Send + Sync + std::fmt::Debug {
    /// Replays every record with `visit(lsn, stream, payload)` and readies appends.
    fn open(&self, lsn_floor: Lsn, visit: &mut ReplayVisitor<'_>) -> Result<ReplayStats>;
    /// Appends one record for `stream`; returns its LSN. Not yet durable: call [`Wal::sync`].
    fn append(&self, stream: u64, payload: &[u8]) -> Result<Lsn>;
    /// Returns once every record up to `lsn` is durable (per the ack mode). Concurrent callers
    /// share one fsync.
    fn sync(&self, lsn: Lsn) -> Result<()>;
    /// The last LSN assigned.
    fn last_lsn(&self) -> Lsn;
    /// Drops records none of whose streams still need them: a record of `stream` is needed
    /// while `needed(stream, lsn)` is true. Returns how many units (files) were released.
    fn release(&self, needed: &dyn Fn(u64, Lsn) -> bool) -> Result<usize>;
    /// Numbers the next record after `lsn` if it would be numbered lower (no-op otherwise),
    /// durably: after a crash the log still numbers above `lsn` (restoring a snapshot whose
    /// versions are ahead of this log needs it). Logs that cannot skip answer
    /// [`crate::ErrorKind::Unimplemented`].
    fn skip_to(&self, lsn: Lsn) -> Result<()> {
        if lsn <= self.last_lsn() {
            return Ok(());
        }
        Err(Error::new(
            crate::error::ErrorKind::Unimplemented,
            "this write-ahead log cannot skip LSNs",
        ))
    }
    /// False once a failure made the log refuse appends until restart.
    fn is_healthy(&self) -> bool {
        true
    }
    /// Fsyncs issued for acknowledgements since open (group commit makes this smaller than
    /// the number of acknowledged records).
    fn fsync_count(&self) -> u64 {
        0
    }
    /// Every record up to this LSN is durable, when the log can tell (`None`: it cannot, and
    /// callers must use [`Wal::sync`] — the engine then never applies a record before its
    /// writer's own sync returned).
    fn durable_lsn(&self) -> Option<Lsn> {
        None
    }
}

/// Largest record payload accepted (64 MiB).
pub const MAX_RECORD_BYTES: usize = 64 << 20;

pub(crate) const FILE_MAGIC: &[u8; 8] = b"STRATWAL";
pub(crate) const FILE_VERSION: u32 = 1;
/// Size of the file header.
pub(crate) const FILE_HEADER_LEN: usize = 32;
/// Size of a frame header: len u32, crc u32, lsn u64, stream u64.
pub(crate) const FRAME_HEADER_LEN: usize = 24;
/// Space reserved past the current file's last frame by default
/// ([`LocalWalOptions::reserve_bytes`]): one `fallocate`, this many zeros and one inode write
/// per this many bytes of log instead of one per commit. 1 MiB: the zeros are written under
/// the WAL's lock, and 4 MiB of them measured a higher p99 for the same throughput.
pub const PREALLOCATE_BYTES: u64 = 1 << 20;

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
    name: String,
    first_lsn: Lsn,
    /// Highest LSN of each stream in the file.
    streams: HashMap<u64, Lsn>,
}

/// The file being appended to.
#[derive(Debug)]
struct Current {
    file: Arc<dyn LogFile>,
    name: String,
    first_lsn: Lsn,
    len: u64,
    /// The file's size: `len` plus reserved zeros.
    allocated: u64,
    streams: HashMap<u64, Lsn>,
}

#[derive(Debug, Default)]
struct State {
    current: Option<Current>,
    next_lsn: Lsn,
    closed: Vec<ClosedFile>,
    frame: Vec<u8>,
}

/// Settings of a [`LocalWal`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct LocalWalOptions {
    /// When writes are acknowledged.
    pub ack: AckMode,
    /// File size before rotation (at least 4 KiB).
    pub max_file_bytes: u64,
    /// Replay only: cut no torn tail, create no file, refuse appends (`strata check`).
    pub read_only: bool,
    /// Space reserved past the current file's last frame (at most `max_file_bytes`; 0: none,
    /// writes extend the file — for file systems where `fallocate` buys nothing, such as
    /// copy-on-write ones).
    pub reserve_bytes: u64,
}

impl LocalWalOptions {
    /// `ack` mode, 64 MiB files, read-write.
    pub fn new(ack: AckMode) -> LocalWalOptions {
        LocalWalOptions {
            ack,
            max_file_bytes: 64 << 20,
            read_only: false,
            reserve_bytes: PREALLOCATE_BYTES,
        }
    }
}

/// The WAL as files on a [`LogStore`].
#[derive(Debug)]
pub struct LocalWal {
    log: Arc<dyn LogStore>,
    opts: LocalWalOptions,
    state: Mutex<State>,
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
#[non_exhaustive]
pub struct ReplayStats {
    /// Records replayed.
    pub records: u64,
    /// Files read.
    pub files: u64,
    /// Bytes of a torn tail (cut, or in read-only mode only found).
    pub torn_bytes: u64,
    /// Last LSN found.
    pub last_lsn: Lsn,
}

impl LocalWal {
    /// A WAL over `log`; nothing is read until [`Wal::open`].
    pub fn new(log: Arc<dyn LogStore>, opts: LocalWalOptions) -> LocalWal {
        LocalWal {
            log,
            opts: LocalWalOptions {
                max_file_bytes: opts.max_file_bytes.max(4096),
                ..opts
            },
            state: Mutex::new(State::default()),
            syncing: AtomicBool::new(false),
            waiters: Mutex::new(Vec::new()),
            durable: AtomicU64::new(0),
            last: AtomicU64::new(0),
            poisoned: AtomicBool::new(false),
            fsyncs: AtomicU64::new(0),
        }
    }

    /// Number of files (closed and current).
    pub fn file_count(&self) -> usize {
        let s = lock(&self.state);
        s.closed.len() + usize::from(s.current.is_some())
    }

    fn check_poisoned(&self) -> Result<()> {
        if self.poisoned.load(Ordering::Acquire) {
            return Err(Error::new(
                ErrorKind::Unavailable,
                "the WAL is unavailable after a failed fsync or rollback; restart the server to recover",
            ));
        }
        Ok(())
    }

    fn poison(&self, what: &str, e: impl std::fmt::Display) -> Error {
        self.poisoned.store(true, Ordering::Release);
        metrics::counter!("strata_wal_poisoned_total").increment(1);
        tracing::error!(error = %e, "{what}: WAL poisoned");
        Error::new(
            ErrorKind::Unavailable,
            format!("{what}: {e}; the WAL refuses further writes until restart"),
        )
    }

    /// Fsyncs everything written so far and advances the durable LSN.
    fn fsync_written(&self) -> Result<()> {
        let (file, upto) = {
            let s = lock(&self.state);
            let Some(c) = &s.current else {
                return Err(not_open());
            };
            (Arc::clone(&c.file), s.next_lsn - 1)
        };
        let started = std::time::Instant::now();
        if let Err(e) = file.sync() {
            return Err(self.poison("fsync of the WAL", e));
        }
        metrics::histogram!("strata_wal_fsync_seconds").record(started.elapsed().as_secs_f64());
        self.fsyncs.fetch_add(1, Ordering::Relaxed);
        self.durable.fetch_max(upto, Ordering::SeqCst);
        Ok(())
    }

    /// Closes the current file (fsynced) and starts a new one at the next LSN. On a failed
    /// create the current file stays in use.
    fn rotate(&self, s: &mut State) -> Result<()> {
        let Some(cur) = &mut s.current else {
            return Err(not_open());
        };
        // A closed file ends at its last frame (recovery takes zeros past it for reserved
        // space only in the last file); the cut is durable with the sync below.
        if cur.allocated > cur.len {
            cur.file
                .set_len(cur.len)
                .map_err(|e| Error::store("cutting the reserved tail of a WAL file", e))?;
            cur.allocated = cur.len;
        }
        if let Err(e) = cur.file.sync() {
            return Err(self.poison("fsync of WAL file before rotation", e));
        }
        self.durable.fetch_max(s.next_lsn - 1, Ordering::AcqRel);
        let (file, name) = self.create_file(s.next_lsn)?;
        let old = s.current.replace(Current {
            file,
            name,
            first_lsn: s.next_lsn,
            len: FILE_HEADER_LEN as u64,
            allocated: FILE_HEADER_LEN as u64,
            streams: HashMap::new(),
        });
        if let Some(old) = old {
            s.closed.push(ClosedFile {
                name: old.name,
                first_lsn: old.first_lsn,
                streams: old.streams,
            });
        }
        Ok(())
    }

    fn create_file(&self, first_lsn: Lsn) -> Result<(Arc<dyn LogFile>, String)> {
        let name = layout::wal_file(first_lsn);
        let file = self
            .log
            .create(&name, &encode_file_header(first_lsn))
            .map_err(|e| Error::store("creating a WAL file", e))?;
        Ok((file, name))
    }

    /// Reads one whole file, refusing a short read (a shorter copy could pass for a torn tail
    /// and have real records cut).
    fn read_whole(&self, name: &str) -> Result<Vec<u8>> {
        let bytes = self
            .log
            .read(name)
            .map_err(|e| Error::store("reading the WAL", e))?;
        let len = self
            .log
            .len(name)
            .map_err(|e| Error::store("reading the WAL", e))?;
        if bytes.len() as u64 != len {
            return Err(Error::new(
                ErrorKind::Internal,
                format!(
                    "short read of WAL file {}: got {} of {len} bytes",
                    self.log.location(name),
                    bytes.len()
                ),
            ));
        }
        Ok(bytes)
    }

    /// Replays one file; returns the streams it holds and its first record's LSN.
    fn replay_file(
        &self,
        name: &str,
        is_last: bool,
        prev: &mut Lsn,
        stats: &mut ReplayStats,
        visit: &mut ReplayVisitor<'_>,
    ) -> Result<(HashMap<u64, Lsn>, Option<Lsn>)> {
        let location = self.log.location(name);
        let bytes = self.read_whole(name)?;
        let at = |off: usize, what: &str| {
            Error::corruption(format!(
                "WAL file {location} is corrupt at byte offset {off}: {what}"
            ))
        };
        let mut streams = HashMap::new();
        if bytes.len() < FILE_HEADER_LEN {
            if is_last {
                tracing::warn!(file = %location, "WAL file with a torn header: ignored");
                return Ok((streams, None));
            }
            return Err(at(0, "file shorter than its header"));
        }
        let header_first =
            decode_file_header(&bytes[..FILE_HEADER_LEN]).map_err(|e| at(e.offset, &e.what))?;
        let mut off = FILE_HEADER_LEN;
        let mut first = None;
        while off < bytes.len() {
            let rest = &bytes[off..];
            match decode_frame(rest) {
                Ok((frame, len)) => {
                    // Contiguous within a file: the first record is the header's LSN.
                    let want = match first {
                        None => header_first.max(*prev + 1),
                        Some(_) => *prev + 1,
                    };
                    if frame.lsn != want {
                        return Err(at(
                            off,
                            &format!("LSN {} where LSN {want} was expected", frame.lsn),
                        ));
                    }
                    visit(frame.lsn, frame.stream, frame.payload).map_err(|e| {
                        Error::new(
                            e.kind(),
                            format!(
                                "WAL file {location} at byte offset {off} (LSN {}): {}",
                                frame.lsn,
                                e.message()
                            ),
                        )
                    })?;
                    *prev = frame.lsn;
                    first.get_or_insert(frame.lsn);
                    let e = streams.entry(frame.stream).or_insert(0);
                    *e = (*e).max(frame.lsn);
                    stats.records += 1;
                    off += len;
                }
                Err(_) if is_last && rest.iter().all(|b| *b == 0) => {
                    // Reserved space past the last frame: not a torn write. Cut so that the
                    // file, closed from now on, ends at its last frame.
                    if !self.opts.read_only {
                        self.log
                            .truncate(name, off as u64)
                            .map_err(|e| Error::store("cutting a WAL file's reserved tail", e))?;
                    }
                    break;
                }
                Err(err) => {
                    let what = match err {
                        FrameError::Incomplete => "incomplete record".to_string(),
                        FrameError::Bad(w) => w,
                    };
                    if !is_last {
                        return Err(at(off, &what));
                    }
                    if let Some((p, lsn)) = later_frame(rest, *prev) {
                        return Err(at(
                            off,
                            &format!(
                                "{what}, but a valid record with LSN {lsn} follows at byte offset {}: \
                                 damage inside the log, not a torn tail",
                                off + p
                            ),
                        ));
                    }
                    // Reserved zeros after the torn bytes are not counted as torn.
                    let torn = rest.iter().rposition(|b| *b != 0).map_or(0, |p| p + 1);
                    stats.torn_bytes += torn as u64;
                    if self.opts.read_only {
                        tracing::warn!(file = %location, offset = off, bytes = torn, "torn WAL tail (read-only: left in place)");
                    } else {
                        tracing::warn!(file = %location, offset = off, bytes = torn, "truncating torn WAL tail");
                        self.log
                            .truncate(name, off as u64)
                            .map_err(|e| Error::store("truncating a torn WAL tail", e))?;
                    }
                    break;
                }
            }
        }
        Ok((streams, first))
    }
}

fn not_open() -> Error {
    Error::new(ErrorKind::Internal, "the WAL is not open")
}

/// A valid frame starting somewhere in `rest[1..]` whose LSN is after `prev`: its offset and
/// LSN. LSNs are contiguous, so only the few LSNs that could follow are candidates; the CRC is
/// computed only where the LSN field matches one, which keeps the scan linear.
fn later_frame(rest: &[u8], prev: Lsn) -> Option<(usize, Lsn)> {
    let max_frames = (rest.len() / FRAME_HEADER_LEN) as u64 + 1;
    (1..rest.len().saturating_sub(FRAME_HEADER_LEN - 1)).find_map(|p| {
        let lsn = u64::from_le_bytes(rest[p + 8..p + 16].try_into().expect("8 bytes"));
        if lsn <= prev || lsn - prev > max_frames {
            return None;
        }
        match decode_frame(&rest[p..]) {
            Ok((f, _)) if f.lsn == lsn => Some((p, lsn)),
            _ => None,
        }
    })
}

/// A cleanly closed WAL ends at its last frame: the reserved tail is cut (best effort —
/// recovery cuts it anyway after a crash). A poisoned WAL is left as it is.
impl Drop for LocalWal {
    fn drop(&mut self) {
        if self.opts.read_only || self.poisoned.load(Ordering::Acquire) {
            return;
        }
        let s = lock(&self.state);
        if let Some(cur) = s.current.as_ref().filter(|c| c.allocated > c.len)
            && let Err(e) = cur.file.set_len(cur.len).and_then(|()| cur.file.sync())
        {
            tracing::warn!(error = %e, file = %cur.name, "could not cut the WAL's reserved tail at close; recovery will");
        }
    }
}

impl Wal for LocalWal {
    fn open(&self, lsn_floor: Lsn, visit: &mut ReplayVisitor<'_>) -> Result<ReplayStats> {
        let mut names: Vec<(Lsn, String)> = self
            .log
            .list()
            .map_err(|e| Error::store("listing the WAL", e))?
            .into_iter()
            .filter_map(|n| layout::wal_first_lsn(&n).map(|l| (l, n)))
            .collect();
        names.sort();
        let mut stats = ReplayStats::default();
        let mut closed = Vec::new();
        let mut prev: Lsn = 0;
        let count = names.len();
        for (i, (_, name)) in names.into_iter().enumerate() {
            let is_last = i + 1 == count;
            let (streams, first) =
                self.replay_file(&name, is_last, &mut prev, &mut stats, visit)?;
            stats.files += 1;
            match first {
                Some(first_lsn) => {
                    if !self.opts.read_only {
                        // What recovery shows must survive the next crash: a crashed process
                        // may have left records written but not synced.
                        self.log
                            .sync_file(&name)
                            .map_err(|e| Error::store("syncing a replayed WAL file", e))?;
                    }
                    closed.push(ClosedFile {
                        name,
                        first_lsn,
                        streams,
                    })
                }
                // A file with no records holds nothing: remove it.
                None if !self.opts.read_only => self
                    .log
                    .remove(&name)
                    .map_err(|e| Error::store("removing an empty WAL file", e))?,
                None => {}
            }
        }
        stats.last_lsn = prev;
        let next_lsn = prev.max(lsn_floor) + 1;
        let current = if self.opts.read_only {
            None
        } else {
            let (file, name) = self.create_file(next_lsn)?;
            Some(Current {
                file,
                name,
                first_lsn: next_lsn,
                len: FILE_HEADER_LEN as u64,
                allocated: FILE_HEADER_LEN as u64,
                streams: HashMap::new(),
            })
        };
        *lock(&self.state) = State {
            current,
            next_lsn,
            closed,
            frame: Vec::new(),
        };
        self.durable.store(next_lsn - 1, Ordering::SeqCst);
        self.last.store(next_lsn - 1, Ordering::SeqCst);
        self.poisoned.store(false, Ordering::SeqCst);
        Ok(stats)
    }

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
        let mut guard = lock(&self.state);
        let s = &mut *guard;
        let len = s.current.as_ref().ok_or_else(not_open)?.len;
        if len >= self.opts.max_file_bytes {
            self.rotate(s)?;
        }
        let lsn = s.next_lsn;
        let n = (FRAME_HEADER_LEN + payload.len()) as u64;
        let reserve = self.opts.reserve_bytes.min(self.opts.max_file_bytes);
        let cur = s.current.as_mut().ok_or_else(not_open)?;
        if cur.len + n > cur.allocated && reserve > 0 {
            // Nothing written yet: a failure (ENOSPC found here rather than mid-frame) refuses
            // this record alone.
            let want = cur.len + n + reserve;
            cur.file
                .allocate(want)
                .map_err(|e| Error::store("reserving space in the WAL", e))?;
            cur.allocated = want;
        }
        let mut frame = std::mem::take(&mut s.frame);
        encode_frame(&mut frame, lsn, stream, payload);
        let cur = s.current.as_mut().ok_or_else(not_open)?;
        let res = cur.file.write_at(cur.len, &frame);
        s.frame = frame;
        if let Err(e) = res {
            // Roll back a partial frame so that later frames do not follow garbage (the
            // reserved space goes with it; the next append reserves again).
            if let Err(e2) = cur.file.set_len(cur.len) {
                return Err(self.poison("rolling back a failed WAL write", e2));
            }
            cur.allocated = cur.len;
            return Err(Error::store("writing the WAL", e));
        }
        cur.len += n;
        let e = cur.streams.entry(stream).or_insert(0);
        *e = (*e).max(lsn);
        s.next_lsn += 1;
        self.last.store(lsn, Ordering::Release);
        Ok(lsn)
    }

    fn skip_to(&self, lsn: Lsn) -> Result<()> {
        self.check_poisoned()?;
        let mut guard = lock(&self.state);
        let s = &mut *guard;
        if s.next_lsn > lsn {
            return Ok(());
        }
        // A file's LSNs are contiguous: start a new file at lsn + 1 (the current one is fsynced
        // first). Until a record lands in it, the manifest's last LSN (published right after
        // by the caller) is what keeps numbering above `lsn` across a crash.
        let before = s.next_lsn;
        s.next_lsn = lsn.checked_add(1).ok_or_else(|| {
            Error::invalid(format!("cannot skip to LSN {lsn}: no LSNs would be left"))
        })?;
        if let Err(e) = self.rotate(s) {
            s.next_lsn = before;
            return Err(e);
        }
        self.last.store(lsn, Ordering::Release);
        Ok(())
    }

    fn sync(&self, lsn: Lsn) -> Result<()> {
        if self.opts.ack == AckMode::None {
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
        if self.opts.read_only {
            return Ok(0);
        }
        let gone: Vec<ClosedFile> = {
            let mut s = lock(&self.state);
            let (gone, keep) = std::mem::take(&mut s.closed)
                .into_iter()
                .partition(|f| !f.streams.iter().any(|(st, m)| needed(*st, *m)));
            s.closed = keep;
            gone
        };
        let mut removed = 0;
        let mut failed = Vec::new();
        let mut first_error = None;
        for f in gone {
            match self.log.remove(&f.name) {
                Ok(()) => removed += 1,
                Err(e) => {
                    first_error.get_or_insert(e);
                    failed.push(f);
                }
            }
        }
        if !failed.is_empty() {
            // Kept for the next release; recovery skips their records anyway.
            let mut s = lock(&self.state);
            s.closed.extend(failed);
            s.closed.sort_by_key(|f| f.first_lsn);
        }
        match first_error {
            Some(e) => Err(Error::store("removing a released WAL file", e)),
            None => Ok(removed),
        }
    }

    fn is_healthy(&self) -> bool {
        !self.poisoned.load(Ordering::Acquire)
    }

    fn durable_lsn(&self) -> Option<Lsn> {
        match self.opts.ack {
            AckMode::Fsync => Some(self.durable.load(Ordering::SeqCst)),
            AckMode::None => Some(self.last_lsn()),
        }
    }

    fn fsync_count(&self) -> u64 {
        self.fsyncs.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests;
