//! Child process of the SIGKILL crash test (`tests/crash.rs`). Not a user-facing tool.
//!
//! `strata-crash-child DIR SEED` opens the engine in DIR with tiny memtables and aggressive
//! background flush/compaction, then runs THREADS writer threads. Thread `t` owns ids
//! `t*1000 .. t*1000+IDS` and runs one operation at a time; around each it prints
//! `BEGIN t seq U|D id,id,...` before the call and `ACK t seq lsn` after it returned Ok.
//! The parent kills it with SIGKILL at a random moment and checks what survived.
//!
//! Vectors encode who wrote them: `[seq, t, 0, ...]`.
//!
//! `strata-crash-child DIR SEED COLD_DIR` also puts a cold tier in `COLD_DIR` (an object store
//! on a directory) with a local budget of a few segments and no minimum residence, and runs a
//! reader thread that searches and reads points: segments are uploaded, evicted, promoted and
//! streamed all the time, so the kill lands in the middle of those too.

use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use strata_engine::*;

const THREADS: u64 = 4;
const IDS: u64 = 64;
const DIM: usize = 8;

/// The cold tier in directory `dir`, as `STRATA_COLD_STORE_URL=file://DIR` would give it.
fn cold_store(dir: &str) -> Arc<dyn storage::BlobStore> {
    std::fs::create_dir_all(dir).expect("cold dir");
    let url = format!(
        "file://{}",
        std::fs::canonicalize(dir).expect("path").display()
    );
    Arc::new(storage::ObjectBlobStore::open(&storage::ColdConfig::new(url)).expect("cold store"))
}

fn main() {
    let mut args = std::env::args().skip(1);
    let dir = args.next().expect("usage: strata-crash-child DIR SEED");
    let seed: u64 = args.next().and_then(|s| s.parse().ok()).expect("SEED");
    let cold = args.next();
    let mut opts = EngineOptions::new(&dir);
    if let Some(cold) = &cold {
        opts.cold = Some(cold_store(cold));
        opts.tiers.warm_bytes = Some(12 << 10);
        opts.tiers.min_residence = Duration::ZERO;
        // Even rounds: reads promote whatever they touch (promotion-heavy); odd rounds: reads
        // stream and evicted segments stay cold (eviction-heavy).
        opts.tiers.admit_frequency = if seed.is_multiple_of(2) { 0.0 } else { 1e9 };
        opts.tiers.mover_interval = Duration::from_millis(5);
    }
    opts.memtable_max_bytes = 16 << 10;
    opts.index_threshold_rows = 48;
    opts.max_segments = 3;
    opts.maintenance_interval = Duration::from_millis(5);
    opts.wal_file_bytes = 32 << 10;
    let engine = Arc::new(Engine::open(opts).expect("open"));
    let c = match engine.collection(DEFAULT_TENANT, "c") {
        Ok(c) => c,
        Err(_) => engine
            .create_collection(
                DEFAULT_TENANT,
                "c",
                CollectionConfig::new(DIM as u32, Distance::Euclid),
            )
            .expect("create"),
    };
    println!("READY");
    if cold.is_some() {
        let c = c.clone();
        std::thread::spawn(move || {
            let mut rng = SplitMix64::new(seed);
            loop {
                let mut q = vec![0.0f32; DIM];
                q[0] = rng.below(50) as f32;
                q[1] = rng.below(THREADS) as f32;
                let _ = c.search(&SearchRequest::new(q, 5));
                let ids: Vec<PointId> = (0..8).map(|_| PointId::Num(rng.below(IDS))).collect();
                let _ = c.get(&ids, true, true);
            }
        });
    }
    let threads: Vec<_> = (0..THREADS)
        .map(|t| {
            let c = c.clone();
            std::thread::spawn(move || {
                let mut rng = SplitMix64::new(seed * 1000 + t);
                for seq in 0u64.. {
                    let n = 1 + rng.below(6);
                    let mut ids: Vec<u64> = (0..n).map(|_| t * 1000 + rng.below(IDS)).collect();
                    ids.sort();
                    ids.dedup();
                    let list = ids.iter().map(u64::to_string).collect::<Vec<_>>().join(",");
                    let delete = rng.below(4) == 0;
                    println!("BEGIN {t} {seq} {} {list}", if delete { "D" } else { "U" });
                    let pids: Vec<PointId> = ids.iter().map(|i| PointId::Num(*i)).collect();
                    let res = if delete {
                        c.delete(&pids)
                    } else {
                        let mut v = vec![0.0f32; DIM];
                        v[0] = seq as f32;
                        v[1] = t as f32;
                        c.upsert(
                            pids.iter()
                                .map(|id| PointInput::new(*id, v.clone(), None))
                                .collect(),
                        )
                    };
                    match res {
                        Ok(lsn) => println!("ACK {t} {seq} {lsn}"),
                        Err(e) => {
                            println!("ERR {t} {seq} {e}");
                            std::thread::sleep(Duration::from_millis(10));
                        }
                    }
                    let _ = std::io::stdout().flush();
                }
            })
        })
        .collect();
    for t in threads {
        let _ = t.join();
    }
}
