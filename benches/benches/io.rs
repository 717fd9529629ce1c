//! Batched re-rank reads: io_uring at queue depths 1–64 vs `pread` vs copies out of a mapping.
//!
//! One batch = 64 reads of 512 bytes (a 128-d f32 vector each, as a re-rank of 64 candidates
//! reads them) at random vector-aligned offsets of a 1 GiB file, through
//! `strata_tiering::io` (the code the engine uses). Two cache states:
//! - **disk**: the file is dropped from the page cache (`posix_fadvise(DONTNEED)`) before each
//!   run, so reads reach the device — what depth buys;
//! - **cached**: the same after reading the whole file once — the per-read cost of each path.
//!
//! Each row also shows the bytes the device delivered per 512-byte read (`/proc/self/io`): a
//! mapping's faults read ahead around the page they need.
//!
//! Each configuration runs three times, in rotated order, and the median is printed.
//!
//! `cargo bench -p strata-benches --bench io` (quick: `-- --quick`, a 256 MiB file).

use std::fs::File;
use std::io::Write;
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::time::{Duration, Instant};

use strata_engine::storage::io::{BatchRead, Io, IoMode, MappedReader, ReadReq};

const VECTOR: usize = 512;
const BATCH: usize = 64;

#[derive(Clone, Copy, Debug)]
enum Mode {
    Mmap,
    Pread,
    Uring(u32),
}

impl Mode {
    fn label(self) -> String {
        match self {
            Mode::Mmap => "mmap (copy out of the mapping)".into(),
            Mode::Pread => "pread, one at a time".into(),
            Mode::Uring(d) => format!("io_uring, depth {d}"),
        }
    }
}

fn drop_cache(path: &std::path::Path) {
    let f = File::open(path).expect("open");
    // SAFETY: a plain advisory call on an open descriptor.
    let rc = unsafe { libc::posix_fadvise(f.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
    assert_eq!(rc, 0, "posix_fadvise");
}

/// Reads the whole file once, so every page is in the page cache.
fn warm_cache(path: &std::path::Path) {
    let mut f = File::open(path).expect("open");
    std::io::copy(&mut f, &mut std::io::sink()).expect("read");
}

fn reader(mode: Mode, path: &std::path::Path) -> Box<dyn BatchRead> {
    let f = File::open(path).expect("open");
    match mode {
        Mode::Mmap => Box::new(MappedReader::new(&f).expect("map")),
        Mode::Pread => Box::new(Arc::new(Io::pread()).reader(f).expect("reader")),
        Mode::Uring(d) => Box::new(
            Arc::new(Io::new(IoMode::IoUring, d).expect("io_uring"))
                .reader(f)
                .expect("reader"),
        ),
    }
}

/// Bytes this process caused to be read from the device (`/proc/self/io`).
fn device_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/io")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("read_bytes:"))
                .and_then(|v| v.trim().parse().ok())
        })
        .unwrap_or(0)
}

struct Run {
    /// Device bytes read per 512-byte read asked for.
    device_per_read: f64,
    reads_per_sec: f64,
    p50: Duration,
    p99: Duration,
}

fn run(r: &dyn BatchRead, batches: usize, seed: u64) -> Run {
    let slots = r.len() / VECTOR as u64;
    let mut rng = strata_engine::SplitMix64::new(seed);
    let mut bufs = vec![vec![0u8; VECTOR]; BATCH];
    let mut lat = Vec::with_capacity(batches);
    let mut check = 0u64;
    let device = device_bytes();
    let started = Instant::now();
    for _ in 0..batches {
        let offs: Vec<u64> = (0..BATCH)
            .map(|_| rng.below(slots) * VECTOR as u64)
            .collect();
        let mut reqs = ReadReq::batch(&offs, &mut bufs);
        let t = Instant::now();
        r.read_batch(&mut reqs).expect("batch");
        lat.push(t.elapsed());
        drop(reqs);
        check = check.wrapping_add(bufs.iter().map(|b| b[0] as u64).sum::<u64>());
    }
    let total = started.elapsed();
    std::hint::black_box(check);
    lat.sort();
    Run {
        device_per_read: device_bytes().saturating_sub(device) as f64 / (batches * BATCH) as f64,
        reads_per_sec: (batches * BATCH) as f64 / total.as_secs_f64(),
        p50: lat[lat.len() / 2],
        p99: lat[(lat.len() - 1) * 99 / 100],
    }
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let file_bytes: u64 = if quick { 256 << 20 } else { 1 << 30 };
    let (disk_batches, cached_batches) = if quick { (100, 500) } else { (300, 2_000) };
    let dir = tempfile::tempdir_in(std::env::var_os("CARGO_TARGET_TMPDIR").unwrap_or(".".into()))
        .or_else(|_| tempfile::tempdir())
        .expect("tempdir");
    let path = dir.path().join("vectors");
    {
        let mut f = File::create(&path).expect("create");
        let mut rng = strata_engine::SplitMix64::new(1);
        let mut chunk = vec![0u8; 8 << 20];
        for _ in 0..file_bytes / chunk.len() as u64 {
            for w in chunk.chunks_mut(8) {
                w.copy_from_slice(&rng.next_u64().to_le_bytes());
            }
            f.write_all(&chunk).expect("write");
        }
        f.sync_all().expect("fsync");
    }
    let io_uring = strata_engine::storage::io::io_uring_support();
    let mut modes = vec![Mode::Mmap, Mode::Pread];
    match &io_uring {
        Ok(()) => modes.extend([1, 4, 16, 32, 64].map(Mode::Uring)),
        Err(why) => println!("io_uring does not work here ({why}): not measured"),
    }
    println!(
        "batched re-rank reads: batches of {BATCH} × {VECTOR} B at random offsets of a {} MiB file; medians of 3 runs",
        file_bytes >> 20
    );
    for (state, batches) in [("disk", disk_batches), ("cached", cached_batches)] {
        let mut runs: Vec<Vec<Run>> = modes.iter().map(|_| Vec::new()).collect();
        for round in 0..3 {
            for k in 0..modes.len() {
                let i = (k + round) % modes.len();
                let seed = 100 + round as u64 * 17 + i as u64;
                if state == "disk" {
                    drop_cache(&path);
                } else {
                    warm_cache(&path);
                }
                let r = reader(modes[i], &path);
                runs[i].push(run(r.as_ref(), batches, seed));
            }
        }
        println!("\n{state}:");
        println!("| path | reads/s | batch p50 | batch p99 | device bytes per read |");
        println!("|---|---|---|---|---|");
        for (mode, rs) in modes.iter().zip(&mut runs) {
            rs.sort_by(|a, b| a.reads_per_sec.total_cmp(&b.reads_per_sec));
            let m = &rs[1];
            println!(
                "| {} | {:.0} | {:.0} µs | {:.0} µs | {:.0} |",
                mode.label(),
                m.reads_per_sec,
                m.p50.as_secs_f64() * 1e6,
                m.p99.as_secs_f64() * 1e6,
                m.device_per_read
            );
        }
    }
}
