//! Positional batched reads of local files — io_uring, `pread(2)` and a mapping behind one
//! trait, [`BatchRead`] — and positional batched writes ([`Io::write_batch`]: io_uring or
//! `pwrite(2)`; promotions write the parts they download into their temp file through it).
//!
//! Graph walks read segments through their mapping (a pointer chase wants no system call per
//! node). Reads that come in batches — checksum scans, re-rank vectors, ranges of a file a
//! caller wants copied out — go through [`Io`]: with io_uring, up to `depth` reads are in flight
//! at once (on a virtio disk here 4 KiB random reads go from ≈27K IOPS at depth 1 to ≈75K at
//! depth 32); with `pread` they run one after another. Which one is used is chosen once per
//! process from the setting [`IoMode`]: `auto` tries io_uring (setting up a ring and running a
//! no-op through it; it fails with `EPERM` under container seccomp profiles, `ENOSYS` on old
//! kernels, or when `kernel.io_uring_disabled` says so) and falls back to `pread` with a log
//! line; `io_uring` refuses to start without it; `pread` never tries.
//!
//! Safety of io_uring: the kernel writes into (or reads from) the caller's buffers until each
//! operation completes, so [`Io`] never returns while one is in flight — on an error it first
//! waits for every submitted one. If even waiting fails (which the kernel does not do for reads of
//! regular files), the process aborts rather than return buffers the kernel may still write.

use std::collections::VecDeque;
use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::FileExt;
use std::str::FromStr;
use std::sync::{Arc, Mutex, OnceLock};

use crate::blob::Blob;

/// The setting: which backend batched reads use.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum IoMode {
    /// io_uring when it works here, `pread` otherwise (logged).
    #[default]
    Auto,
    /// io_uring or refuse to start.
    IoUring,
    /// `pread(2)`, one read at a time.
    Pread,
}

impl FromStr for IoMode {
    type Err = String;

    fn from_str(s: &str) -> Result<IoMode, String> {
        match s {
            "auto" => Ok(IoMode::Auto),
            "io_uring" => Ok(IoMode::IoUring),
            "pread" => Ok(IoMode::Pread),
            other => Err(format!(
                "unknown io mode '{other}' (expected auto, io_uring or pread)"
            )),
        }
    }
}

impl IoMode {
    /// The setting's spelling.
    pub fn name(self) -> &'static str {
        match self {
            IoMode::Auto => "auto",
            IoMode::IoUring => "io_uring",
            IoMode::Pread => "pread",
        }
    }
}

/// The backend a reader uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum IoBackend {
    /// io_uring, `depth` reads in flight.
    IoUring,
    /// `pread(2)`.
    Pread,
    /// Copies out of a mapping (page faults do the reading).
    Mmap,
}

impl IoBackend {
    /// Its name in logs, readiness and metrics.
    pub fn name(self) -> &'static str {
        match self {
            IoBackend::IoUring => "io_uring",
            IoBackend::Pread => "pread",
            IoBackend::Mmap => "mmap",
        }
    }
}

/// One read of a batch: fill all of `buf` from `offset`.
#[derive(Debug)]
pub struct ReadReq<'a> {
    /// Where in the file.
    pub offset: u64,
    /// Filled exactly.
    pub buf: &'a mut [u8],
}

impl<'a> ReadReq<'a> {
    /// One request per offset, into the buffer beside it (their sizes say how much to read).
    pub fn batch(offsets: &[u64], bufs: &'a mut [Vec<u8>]) -> Vec<ReadReq<'a>> {
        offsets
            .iter()
            .zip(bufs.iter_mut())
            .map(|(&offset, buf)| ReadReq { offset, buf })
            .collect()
    }
}

/// Positional batched reads of one immutable file.
///
/// Contract (checked by one conformance suite for every backend): after `Ok`, every `buf` holds
/// exactly the file's bytes at its offset — never fewer (short reads are continued), never
/// zeros for bytes the file lacks. A request reaching past the end fails the batch with
/// `UnexpectedEof` before anything is read. Empty batches and empty buffers are fine. Safe to
/// call from many threads at once.
pub trait BatchRead: Send + Sync {
    /// Which backend serves the reads.
    fn backend(&self) -> IoBackend;
    /// The file's length.
    fn len(&self) -> u64;
    /// True for an empty file.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Reads every request (see the contract above).
    fn read_batch(&self, reqs: &mut [ReadReq<'_>]) -> io::Result<()>;
}

fn check_bounds(len: u64, reqs: &[ReadReq<'_>]) -> io::Result<()> {
    for r in reqs {
        let end = r.offset.checked_add(r.buf.len() as u64);
        if end.is_none_or(|e| e > len) {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!(
                    "read of {} bytes at {} reaches past the end of the {len}-byte file",
                    r.buf.len(),
                    r.offset
                ),
            ));
        }
    }
    Ok(())
}

fn count(backend: IoBackend, reqs: &[ReadReq<'_>]) {
    let b = backend.name();
    metrics::counter!("strata_io_batches_total", "backend" => b).increment(1);
    metrics::counter!("strata_io_reads_total", "backend" => b).increment(reqs.len() as u64);
    metrics::counter!("strata_io_read_bytes_total", "backend" => b)
        .increment(reqs.iter().map(|r| r.buf.len() as u64).sum());
}

/// Reads out of a mapping (or heap copy) of the file.
#[derive(Debug)]
pub struct MappedReader {
    blob: Blob,
}

impl MappedReader {
    /// Maps `file`.
    pub fn new(file: &File) -> io::Result<MappedReader> {
        Ok(MappedReader {
            blob: Blob::map_file(file)?,
        })
    }
}

impl BatchRead for MappedReader {
    fn backend(&self) -> IoBackend {
        IoBackend::Mmap
    }

    fn len(&self) -> u64 {
        self.blob.len() as u64
    }

    fn read_batch(&self, reqs: &mut [ReadReq<'_>]) -> io::Result<()> {
        check_bounds(self.len(), reqs)?;
        let b = self.blob.as_bytes();
        for r in reqs.iter_mut() {
            let at = r.offset as usize;
            r.buf.copy_from_slice(&b[at..at + r.buf.len()]);
        }
        count(IoBackend::Mmap, reqs);
        Ok(())
    }
}

/// Reads through [`Io`]: io_uring or `pread`.
#[derive(Debug)]
pub struct FileReader {
    file: File,
    len: u64,
    io: Arc<Io>,
}

impl BatchRead for FileReader {
    fn backend(&self) -> IoBackend {
        self.io.backend
    }

    fn len(&self) -> u64 {
        self.len
    }

    fn read_batch(&self, reqs: &mut [ReadReq<'_>]) -> io::Result<()> {
        check_bounds(self.len, reqs)?;
        self.io.read_batch(&self.file, reqs)
    }
}

/// A process's batched-read engine: the backend chosen from the setting, and for io_uring a
/// pool of rings (one per concurrent batch, kept for reuse).
pub struct Io {
    backend: IoBackend,
    depth: u32,
    /// Why `auto` fell back to `pread`, if it did.
    fallback: Option<String>,
    rings: Mutex<Vec<io_uring::IoUring>>,
    /// Largest single read or write submitted ([`MAX_READ`]; tests lower it to force
    /// continuations).
    max_read: usize,
}

impl std::fmt::Debug for Io {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Io")
            .field("backend", &self.backend)
            .field("depth", &self.depth)
            .field("fallback", &self.fallback)
            .finish()
    }
}

/// Rings kept for reuse; more concurrent batches make (and then drop) their own.
const POOLED_RINGS: usize = 8;
/// Largest single read submitted (a bigger request is read in pieces).
const MAX_READ: usize = 1 << 30;
/// The default number of reads in flight (see docs/benchmarks.md for the depth curve).
pub const DEFAULT_DEPTH: u32 = 32;

/// For tests: whether to test io_uring. True where it works; where it does not, a test fails
/// (naming why) unless `STRATA_TEST_SKIP_IO_URING=1` says to test without it.
#[doc(hidden)]
pub fn test_io_uring() -> bool {
    match io_uring_support() {
        Ok(()) => true,
        Err(why) if std::env::var("STRATA_TEST_SKIP_IO_URING").as_deref() == Ok("1") => {
            eprintln!("io_uring is not tested: {why} (STRATA_TEST_SKIP_IO_URING=1)");
            false
        }
        Err(why) => panic!(
            "io_uring does not work on this machine: {why}; set STRATA_TEST_SKIP_IO_URING=1 to test without it"
        ),
    }
}

/// Whether io_uring works in this process for what [`Io`] does with it: a ring can be set up,
/// the kernel supports the read opcode (`IORING_OP_READ`, Linux 5.6; the probe interface
/// itself is 5.6 too, so older kernels fail here), and a no-op goes through the ring. Once.
pub fn io_uring_support() -> Result<(), String> {
    static PROBE: OnceLock<Result<(), String>> = OnceLock::new();
    PROBE
        .get_or_init(|| {
            let mut ring =
                io_uring::IoUring::new(2).map_err(|e| format!("setting up a ring failed: {e}"))?;
            let mut probe = io_uring::Probe::new();
            ring.submitter()
                .register_probe(&mut probe)
                .map_err(|e| format!("probing the kernel's io_uring opcodes failed: {e}"))?;
            if !probe.is_supported(io_uring::opcode::Read::CODE)
                || !probe.is_supported(io_uring::opcode::Write::CODE)
            {
                return Err(
                    "the kernel's io_uring has no read or write opcode (Linux < 5.6)".to_string(),
                );
            }
            let nop = io_uring::opcode::Nop::new().build().user_data(7);
            // SAFETY: a no-op references no memory.
            unsafe { ring.submission().push(&nop) }
                .map_err(|_| "the submission queue is full".to_string())?;
            ring.submit_and_wait(1)
                .map_err(|e| format!("submitting to a ring failed: {e}"))?;
            match ring.completion().next() {
                Some(c) if c.user_data() == 7 && c.result() >= 0 => Ok(()),
                Some(c) => Err(format!(
                    "a no-op completed with {}",
                    io::Error::from_raw_os_error(-c.result())
                )),
                None => Err("a no-op did not complete".to_string()),
            }
        })
        .clone()
}

impl Io {
    /// The engine for `mode`, `depth` reads in flight (1..=4096). Logs the choice; `IoUring`
    /// fails when io_uring does not work here, naming why.
    pub fn new(mode: IoMode, depth: u32) -> Result<Io, String> {
        Io::with_probe(mode, depth, io_uring_support)
    }

    /// [`Io::new`] with `probe` in place of the io_uring detection (tests the fallback).
    fn with_probe(
        mode: IoMode,
        depth: u32,
        probe: impl FnOnce() -> Result<(), String>,
    ) -> Result<Io, String> {
        if !(1..=4096).contains(&depth) {
            return Err(format!("io depth {depth} is outside 1..=4096"));
        }
        // A ring of the configured depth is made now, so that a depth the kernel refuses (ring
        // memory counts against RLIMIT_MEMLOCK before Linux 5.12) shows at start.
        let first_ring = |depth: u32| {
            io_uring::IoUring::new(depth)
                .map(Some)
                .map_err(|e| format!("setting up a ring of depth {depth} failed: {e}"))
        };
        let (backend, ring) = match mode {
            IoMode::Pread => (IoBackend::Pread, Ok(None)),
            IoMode::IoUring => match probe().and_then(|()| first_ring(depth)) {
                Ok(ring) => (IoBackend::IoUring, Ok(ring)),
                Err(why) => {
                    return Err(format!(
                        "io mode io_uring was asked for but io_uring does not work here: {why} \
                         (use auto or pread)"
                    ));
                }
            },
            IoMode::Auto => match probe().and_then(|()| first_ring(depth)) {
                Ok(ring) => (IoBackend::IoUring, Ok(ring)),
                Err(why) => (IoBackend::Pread, Err(why)),
            },
        };
        let (rings, fallback) = match ring {
            Ok(r) => (r.into_iter().collect(), None),
            Err(why) => (Vec::new(), Some(why)),
        };
        Ok(Io {
            backend,
            depth,
            fallback,
            rings: Mutex::new(rings),
            max_read: MAX_READ,
        })
    }

    /// `pread` only (no detection).
    pub fn pread() -> Io {
        Io {
            backend: IoBackend::Pread,
            depth: 1,
            fallback: None,
            rings: Mutex::new(Vec::new()),
            max_read: MAX_READ,
        }
    }

    /// The process default (`auto`, [`DEFAULT_DEPTH`]), detected and logged once.
    pub fn shared_default() -> Arc<Io> {
        static IO: OnceLock<Arc<Io>> = OnceLock::new();
        Arc::clone(IO.get_or_init(|| {
            let io = Io::new(IoMode::Auto, DEFAULT_DEPTH).unwrap_or_else(|_| Io::pread());
            io.log("auto");
            Arc::new(io)
        }))
    }

    /// Logs the choice (once per process start, by whoever builds the engine).
    pub fn log(&self, requested: &str) {
        match &self.fallback {
            None => tracing::info!(
                requested,
                backend = self.backend.name(),
                depth = self.depth,
                "batched reads"
            ),
            Some(why) => tracing::warn!(
                requested,
                backend = self.backend.name(),
                reason = %why,
                "io_uring is not available; batched reads fall back to pread"
            ),
        }
    }

    /// The backend in use.
    pub fn backend(&self) -> IoBackend {
        self.backend
    }

    /// Reads in flight per batch.
    pub fn depth(&self) -> u32 {
        self.depth
    }

    /// Why `auto` fell back to `pread`, if it did.
    pub fn fallback_reason(&self) -> Option<&str> {
        self.fallback.as_deref()
    }

    /// A reader of `file` through this engine.
    pub fn reader(self: &Arc<Io>, file: File) -> io::Result<FileReader> {
        let len = file.metadata()?.len();
        Ok(FileReader {
            file,
            len,
            io: Arc::clone(self),
        })
    }

    /// Reads every request from `file` (bounds already checked by the caller).
    fn read_batch(&self, file: &File, reqs: &mut [ReadReq<'_>]) -> io::Result<()> {
        let ops: Vec<(u64, *mut u8, usize)> = reqs
            .iter_mut()
            .map(|r| (r.offset, r.buf.as_mut_ptr(), r.buf.len()))
            .collect();
        // SAFETY: every buffer is borrowed mutably (through `reqs`) for this whole call, and
        // `run` returns only when the kernel holds none of them.
        let on_ring = unsafe { self.run(file, Op::Read, &ops)? };
        if !on_ring {
            for r in reqs.iter_mut() {
                file.read_exact_at(r.buf, r.offset)?;
            }
        }
        count(self.backend, reqs);
        Ok(())
    }

    /// Writes every `(offset, bytes)` part into `file`: through io_uring (up to `depth` writes
    /// in flight, short writes continued) or `pwrite`, as this engine does. Parts must not
    /// overlap.
    pub fn write_batch(&self, file: &File, parts: &[(u64, &[u8])]) -> io::Result<()> {
        let ops: Vec<(u64, *mut u8, usize)> = parts
            .iter()
            .map(|(at, b)| (*at, b.as_ptr().cast_mut(), b.len()))
            .collect();
        // SAFETY: every buffer is borrowed (through `parts`) for this whole call and only read
        // (`Op::Write`), and `run` returns only when the kernel holds none of them.
        let on_ring = unsafe { self.run(file, Op::Write, &ops)? };
        if !on_ring {
            for (at, b) in parts {
                file.write_all_at(b, *at)?;
            }
        }
        let b = self.backend.name();
        metrics::counter!("strata_io_writes_total", "backend" => b).increment(parts.len() as u64);
        metrics::counter!("strata_io_write_bytes_total", "backend" => b)
            .increment(parts.iter().map(|(_, p)| p.len() as u64).sum());
        Ok(())
    }

    /// Runs `ops` on a ring when the backend is io_uring and a ring can be had; `Ok(false)`
    /// when the caller must do them with pread/pwrite instead (another backend, no ops, or no
    /// ring now — nothing was submitted then).
    ///
    /// # Safety
    /// Each `(offset, ptr, len)` must be valid for `len` bytes (writable for [`Op::Read`]) and
    /// not used elsewhere until this returns.
    unsafe fn run(&self, file: &File, op: Op, ops: &[(u64, *mut u8, usize)]) -> io::Result<bool> {
        if self.backend != IoBackend::IoUring || ops.is_empty() {
            return Ok(false);
        }
        let pooled = crate::lock(&self.rings).pop();
        match pooled.map_or_else(|| io_uring::IoUring::new(self.depth), Ok) {
            Ok(mut ring) => {
                // SAFETY: forwarded from the caller.
                let out = unsafe { uring_run(&mut ring, self.depth, self.max_read, file, op, ops) };
                if out.is_ok() {
                    let mut pool = crate::lock(&self.rings);
                    if pool.len() < POOLED_RINGS {
                        pool.push(ring);
                    }
                }
                out.map(|()| true)
            }
            // No ring to be had now (memory): nothing was submitted.
            Err(e) => {
                metrics::counter!("strata_io_ring_failures_total").increment(1);
                tracing::debug!(error = %e, "no io_uring ring for a batch; using pread/pwrite");
                Ok(false)
            }
        }
    }
}

/// What a batch does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Op {
    Read,
    Write,
}

fn transient(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EINTR) | Some(libc::EAGAIN) | Some(libc::EBUSY)
    )
}

/// Reads submitted to a ring and not yet completed. Dropping it — on return or while a panic
/// unwinds — waits until the kernel has finished every one of them, because they write into
/// buffers the caller is about to free; if the ring stops delivering completions for 30 s the
/// process aborts rather than let the kernel write into freed memory.
struct InFlight<'r> {
    ring: &'r mut io_uring::IoUring,
    /// Entries pushed and not completed (some may still sit unsubmitted in the queue).
    n: usize,
}

impl InFlight<'_> {
    /// Entries the kernel has taken and not completed.
    fn in_kernel(&mut self) -> usize {
        self.n.saturating_sub(self.ring.submission().len())
    }

    /// Enters the ring to submit and wait for one completion. Errors other than interruptions
    /// are returned after a short sleep (the caller reaps and retries).
    fn enter(&mut self) -> Option<io::Error> {
        match self.ring.submit_and_wait(1) {
            Ok(_) => None,
            Err(e) if e.raw_os_error() == Some(libc::EINTR) => None,
            Err(e) => {
                std::thread::sleep(std::time::Duration::from_millis(1));
                Some(e)
            }
        }
    }

    /// Takes one completion off the ring.
    fn reap(&mut self) -> Option<(usize, i32)> {
        let c = self.ring.completion().next()?;
        self.n = match self.n.checked_sub(1) {
            Some(n) => n,
            None => abort_in_flight("a completion arrived for no submitted read"),
        };
        Some((c.user_data() as usize, c.result()))
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while self.in_kernel() > 0 {
            while self.reap().is_some() {}
            if self.in_kernel() == 0 {
                break;
            }
            if std::time::Instant::now() > deadline {
                abort_in_flight("io_uring reads did not complete within 30 s");
            }
            let _ = self.enter();
        }
    }
}

fn abort_in_flight(why: &str) -> ! {
    tracing::error!(
        why,
        "aborting: the kernel may still write into buffers being freed"
    );
    eprintln!("strata: aborting: {why}");
    std::process::abort();
}

/// Runs `ops` through `ring`, at most `depth` in flight and `max_len` bytes per operation,
/// continuing short ones. Returns only when nothing is in flight (see [`InFlight`]).
///
/// # Safety
/// As [`Io::run`]: every buffer valid (writable for reads) and unused elsewhere until return.
unsafe fn uring_run(
    ring: &mut io_uring::IoUring,
    depth: u32,
    max_len: usize,
    file: &File,
    op: Op,
    ops: &[(u64, *mut u8, usize)],
) -> io::Result<()> {
    let fd = io_uring::types::Fd(file.as_raw_fd());
    let mut done = vec![0usize; ops.len()];
    let mut queue: VecDeque<usize> = (0..ops.len()).filter(|&i| ops[i].2 > 0).collect();
    let mut failed: Option<io::Error> = None;
    let mut g = InFlight { ring, n: 0 };
    loop {
        if failed.is_none() {
            while g.n < depth as usize {
                let Some(i) = queue.pop_front() else { break };
                let (offset, ptr, len) = ops[i];
                let n = (len - done[i]).min(max_len) as u32;
                // SAFETY: `done[i] < len`, so the pointer stays within the caller's buffer.
                let at = unsafe { ptr.add(done[i]) };
                let pos = offset + done[i] as u64;
                let entry = match op {
                    Op::Read => io_uring::opcode::Read::new(fd, at, n).offset(pos).build(),
                    Op::Write => io_uring::opcode::Write::new(fd, at, n).offset(pos).build(),
                }
                .user_data(i as u64);
                // SAFETY: the buffer outlives the operation: `g` does not let this function
                // return or unwind while one is in flight, and the caller keeps the buffers
                // valid and unused until it returns.
                if unsafe { g.ring.submission().push(&entry) }.is_err() {
                    queue.push_front(i);
                    break;
                }
                g.n += 1;
            }
        }
        if g.n == 0 || (failed.is_some() && g.in_kernel() == 0) {
            break;
        }
        if let Some(e) = g.enter()
            && !transient(&e)
        {
            failed.get_or_insert(e);
        }
        while let Some((i, res)) = g.reap() {
            let Some(want) = ops.get(i).map(|o| o.2) else {
                abort_in_flight("a completion names no submitted operation");
            };
            if res < 0 {
                let e = io::Error::from_raw_os_error(-res);
                if transient(&e) && failed.is_none() {
                    queue.push_back(i);
                } else {
                    failed.get_or_insert(e);
                }
            } else if res == 0 {
                failed.get_or_insert(match op {
                    Op::Read => io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "the file ended before a read was complete (shortened while read?)",
                    ),
                    Op::Write => {
                        io::Error::new(io::ErrorKind::WriteZero, "a write made no progress")
                    }
                });
            } else {
                done[i] += res as usize;
                if done[i] < want {
                    queue.push_back(i);
                }
            }
        }
    }
    drop(g);
    match failed {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The conformance suite every backend passes.
    fn suite(open: &dyn Fn(&std::path::Path) -> Box<dyn BatchRead>) {
        let d = tempfile::tempdir().expect("tempdir");
        let path = d.path().join("f");
        let data: Vec<u8> = (0..300_001u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        std::fs::write(&path, &data).expect("write");
        let r = open(&path);
        assert_eq!(r.len(), data.len() as u64);

        // Many reads, more than any depth, unaligned, overlapping, repeated, some empty.
        let mut rng = crate::SplitMix64::new(9);
        let spans: Vec<(u64, usize)> = (0..300)
            .map(|i| {
                let len = match i % 5 {
                    0 => 0,
                    1 => 1,
                    2 => 4096,
                    3 => (rng.next_u64() % 70_000) as usize,
                    _ => (rng.next_u64() % 512) as usize,
                };
                let at = rng.next_u64() % (data.len() - len + 1) as u64;
                (at, len)
            })
            .chain([(0, data.len()), (data.len() as u64, 0), (5, 7), (5, 7)])
            .collect();
        let mut bufs: Vec<Vec<u8>> = spans.iter().map(|&(_, n)| vec![0xAA; n]).collect();
        let offsets: Vec<u64> = spans.iter().map(|&(at, _)| at).collect();
        let mut reqs = ReadReq::batch(&offsets, &mut bufs);
        r.read_batch(&mut reqs).expect("batch");
        drop(reqs);
        for (&(at, n), got) in spans.iter().zip(&bufs) {
            assert_eq!(got.as_slice(), &data[at as usize..at as usize + n]);
        }

        // Empty batch.
        r.read_batch(&mut []).expect("empty batch");

        // Past the end, by one byte and by far: the whole batch fails, nothing claims success.
        for (at, n) in [(data.len() as u64 - 3, 4), (u64::MAX - 1, 4)] {
            let mut ok = vec![0u8; 10];
            let mut bad = vec![0u8; n];
            let mut reqs = [
                ReadReq {
                    offset: 0,
                    buf: &mut ok,
                },
                ReadReq {
                    offset: at,
                    buf: &mut bad,
                },
            ];
            let e = r.read_batch(&mut reqs).expect_err("past the end");
            assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof, "{e}");
        }

        // Many threads at once on one reader.
        std::thread::scope(|s| {
            for t in 0..4u64 {
                let (r, data) = (&r, &data);
                s.spawn(move || {
                    for k in 0..50u64 {
                        let mut bufs: Vec<Vec<u8>> = (0..20).map(|_| vec![0; 777]).collect();
                        let offs: Vec<u64> = (0..20)
                            .map(|j| (t * 7919 + k * 104_729 + j * 13) % (data.len() as u64 - 777))
                            .collect();
                        let mut reqs = ReadReq::batch(&offs, &mut bufs);
                        r.read_batch(&mut reqs).expect("concurrent batch");
                        drop(reqs);
                        for (o, b) in offs.iter().zip(&bufs) {
                            assert_eq!(b.as_slice(), &data[*o as usize..*o as usize + 777]);
                        }
                    }
                });
            }
        });

        // An empty file.
        let empty = d.path().join("e");
        std::fs::write(&empty, b"").expect("write");
        let r = open(&empty);
        assert!(r.is_empty());
        r.read_batch(&mut [ReadReq {
            offset: 0,
            buf: &mut [],
        }])
        .expect("empty read of an empty file");
    }

    #[test]
    fn mmap_conforms() {
        suite(&|p| Box::new(MappedReader::new(&File::open(p).expect("open")).expect("map")));
    }

    #[test]
    fn pread_conforms() {
        let io = Arc::new(Io::new(IoMode::Pread, 16).expect("pread"));
        assert_eq!(io.backend(), IoBackend::Pread);
        suite(&|p| Box::new(io.reader(File::open(p).expect("open")).expect("reader")));
    }

    #[test]
    fn io_uring_conforms_at_every_depth() {
        // This machine has io_uring (see docs/operations.md); a kernel without it fails here
        // on purpose, naming why, rather than passing without testing anything.
        if !test_io_uring() {
            return;
        }
        for depth in [1, 2, 16, 64] {
            let io = Arc::new(Io::new(IoMode::IoUring, depth).expect("io_uring"));
            assert_eq!(io.backend(), IoBackend::IoUring);
            suite(&|p| Box::new(io.reader(File::open(p).expect("open")).expect("reader")));
            // Reads split at 1,000 bytes: every longer read is continued from where the
            // previous part ended, as a short read is.
            let mut split = Io::new(IoMode::IoUring, depth).expect("io_uring");
            split.max_read = 1000;
            let split = Arc::new(split);
            suite(&|p| Box::new(split.reader(File::open(p).expect("open")).expect("reader")));
        }
    }

    /// The write conformance: parts from several threads at once, in any order, some longer
    /// than a single operation, one empty, land whole; a failing write is an error.
    fn write_suite(io: &Io) {
        let d = tempfile::tempdir().expect("tempdir");
        let path = d.path().join("w");
        let len = 250_003usize;
        let data: Vec<u8> = (0..len as u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 11) as u8)
            .collect();
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(true)
            .read(true)
            .write(true)
            .open(&path)
            .expect("create");
        // Parts of uneven sizes (one empty), written by four threads, batches of several.
        let mut cuts = vec![0usize, 1, 4096, 4097, 70_000, 70_000, 131_072, 200_001, len];
        cuts.dedup();
        let mut parts: Vec<(u64, &[u8])> = cuts
            .windows(2)
            .map(|w| (w[0] as u64, &data[w[0]..w[1]]))
            .collect();
        parts.push((5, &[]));
        parts.reverse();
        std::thread::scope(|s| {
            for chunk in parts.chunks(3) {
                let file = &file;
                s.spawn(move || io.write_batch(file, chunk).expect("write"));
            }
        });
        assert_eq!(std::fs::read(&path).expect("read back"), data);
        // A file opened read-only refuses writes: an error, not a panic or a partial success.
        let ro = File::open(&path).expect("open");
        assert!(io.write_batch(&ro, &[(0, &data[..10])]).is_err());
        assert!(io.write_batch(&ro, &[]).is_ok(), "nothing to write");
    }

    #[test]
    fn writes_conform_on_every_backend() {
        write_suite(&Io::pread());
        if !test_io_uring() {
            return;
        }
        for depth in [1, 2, 16] {
            write_suite(&Io::new(IoMode::IoUring, depth).expect("io_uring"));
            // Writes split at 1,000 bytes: every longer one is continued where it stopped.
            let mut split = Io::new(IoMode::IoUring, depth).expect("io_uring");
            split.max_read = 1000;
            write_suite(&split);
        }
    }

    #[test]
    fn modes_parse_and_depth_is_checked() {
        assert_eq!("auto".parse::<IoMode>(), Ok(IoMode::Auto));
        assert_eq!("io_uring".parse::<IoMode>(), Ok(IoMode::IoUring));
        assert_eq!("pread".parse::<IoMode>(), Ok(IoMode::Pread));
        assert!(
            "uring"
                .parse::<IoMode>()
                .expect_err("unknown")
                .contains("'uring'")
        );
        assert!(
            Io::new(IoMode::Pread, 0)
                .expect_err("depth 0")
                .contains("depth 0")
        );
        // auto picks io_uring when the probe works and falls back, saying why, when not (as
        // under a seccomp profile that refuses io_uring_setup); io_uring then refuses.
        let eperm = || Err("setting up a ring failed: Operation not permitted".to_string());
        let auto = Io::with_probe(IoMode::Auto, 8, eperm).expect("auto never fails");
        assert_eq!(auto.backend(), IoBackend::Pread);
        assert!(
            auto.fallback_reason()
                .is_some_and(|w| w.contains("not permitted"))
        );
        let strict = Io::with_probe(IoMode::IoUring, 8, eperm).expect_err("refused");
        assert!(
            strict.contains("not permitted") && strict.contains("pread"),
            "{strict}"
        );
        let auto = Io::with_probe(IoMode::Auto, 8, || Ok(())).expect("auto");
        assert_eq!(auto.backend(), IoBackend::IoUring);
        assert!(auto.fallback_reason().is_none());
        // A pread engine reads through a fallen-back auto engine too.
        let d = tempfile::tempdir().expect("tempdir");
        std::fs::write(d.path().join("f"), b"0123456789").expect("write");
        let io = Arc::new(Io::with_probe(IoMode::Auto, 8, eperm).expect("auto"));
        let r = io
            .reader(File::open(d.path().join("f")).expect("open"))
            .expect("reader");
        let mut buf = [0u8; 4];
        r.read_batch(&mut [ReadReq {
            offset: 3,
            buf: &mut buf,
        }])
        .expect("read");
        assert_eq!(&buf, b"3456");
    }
}
