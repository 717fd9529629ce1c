//! WAL append + fsync with 1–64 concurrent writers: group commit lets writers share fsyncs, so
//! throughput should grow with concurrency while one writer is bound by fsync latency. The
//! peers in the same run are the single writer, the WAL without space reserved ahead (each
//! write grows the file) and `AckMode::None` (no fsync at all).

use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use strata_engine::storage::Storage;
use strata_engine::{AckMode, LocalWal, LocalWalOptions, PREALLOCATE_BYTES, Wal};

const RECORD: usize = 512;

fn run(wal: &Arc<LocalWal>, writers: usize, per_writer: u64) -> Duration {
    let start = Instant::now();
    let handles: Vec<_> = (0..writers)
        .map(|w| {
            let wal = Arc::clone(wal);
            std::thread::spawn(move || {
                let payload = vec![w as u8; RECORD];
                for _ in 0..per_writer {
                    let lsn = wal.append(w as u64, &payload).expect("append");
                    wal.sync(lsn).expect("sync");
                }
            })
        })
        .collect();
    for h in handles {
        h.join().expect("writer");
    }
    start.elapsed()
}

fn group_commit(c: &mut Criterion) {
    eprintln!("machine: {}", strata_benches::machine());
    // fsync with space reserved ahead (the default), fsync with the file growing per write
    // (the peer for the reservation), and no fsync.
    let peers = [
        (AckMode::Fsync, PREALLOCATE_BYTES, "fsync"),
        (AckMode::Fsync, 0, "fsync_growing"),
        (AckMode::None, PREALLOCATE_BYTES, "none"),
    ];
    for (ack, reserve, label) in peers {
        let name = format!("wal_append_512B/{label}");
        let mut g = c.benchmark_group(name);
        for writers in [1usize, 4, 16, 64] {
            let dir = tempfile::tempdir().expect("tempdir");
            let log = Storage::open_local(dir.path()).expect("storage").log;
            let mut opts = LocalWalOptions::new(ack);
            opts.reserve_bytes = reserve;
            let wal = LocalWal::new(log, opts);
            wal.open(0, &mut |_, _, _| Ok(())).expect("open");
            let wal = Arc::new(wal);
            let per = 20u64;
            g.throughput(Throughput::Elements(writers as u64 * per));
            g.bench_function(format!("{writers}_writers"), |b| {
                b.iter_custom(|iters| (0..iters).map(|_| run(&wal, writers, per)).sum())
            });
        }
        g.finish();
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(10).warm_up_time(Duration::from_millis(500)).measurement_time(Duration::from_secs(3));
    targets = group_commit
}
criterion_main!(benches);
