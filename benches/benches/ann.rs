//! The ANN harness, Strata's side: builds Strata's HNSW in process ([`HnswIndex`]: the builder
//! and the search segments use, without a collection around them) over one data set on each
//! thread count asked, then sweeps `ef` on one search thread. Prints CSV on stdout:
//! `engine,data,threads,build_s,index_bytes,ef,qps,recall` (index bytes: graph and
//! vectors). `benches/ann.sh` runs it beside the
//! Python peers (hnswlib, …) on the same files and writes the table and plot.
//!
//! Knobs (environment):
//! - `ANN_DATA`: a directory with `base.fvecs`, `query.fvecs`, `groundtruth.ivecs` and a file
//!   `metric` (`l2`, `cosine` or `dot`); default `testdata/bigann10k` (L2).
//! - `ANN_THREADS` (default `1,2`), `ANN_M` (16), `ANN_EF_CONSTRUCT` (200),
//!   `ANN_EF` (`10,16,24,32,48,64,96,128,192,256,384,512`).
//! - `ANN_FILTER=1` (with `ANN_COLLECTION=1`): the collection's points carry `{"bucket": i % 10,
//!   "rare": i % 100 == 7}` with integer and bool payload indexes, and the sweep repeats with
//!   `bucket = 3` (10 %) and `rare = true` (1 %), recall against the collection's exact filtered
//!   search: engines `strata-filter10` (full-scan threshold 0: the graph is walked),
//!   `strata-filter10-scan` (threshold unbounded: the allowed rows are scanned exactly),
//!   `strata-filter10-auto` and `strata-filter1` (the default: the cost model decides).
//! - `ANN_PAYLOAD_LINKS=0` (with `ANN_FILTER=1`): compaction builds no payload links (the
//!   default builds them for `bucket`'s values, 10 % each; `EngineOptions::payload_links`).
//! - `ANN_FILTER_SWEEP=1` (with `ANN_FILTER=1`): points also carry `permille = i % 1000`
//!   (integer index), and each selectivity `permille < p` for p in `ANN_SWEEP_PERMILLE`
//!   (`500,200,100,50,20,10,5`) is searched walked, scanned and as the cost model picks
//!   (engines `sweep-walk-5%`, `sweep-scan-5%`, `sweep-auto-5%`) over the first
//!   `ANN_SWEEP_QUERIES` (300) queries.
//! - `ANN_SECS` (1): how long each `ef` is searched, at least (longer for a profile).
//! - `ANN_HNSW_RS=1`: also build with `hnsw_rs` (the builder Strata used before) on one thread.
//! - `ANN_COLLECTION=1`: also load the base into a collection (no fsync), flush and compact it
//!   into one indexed segment on the last of `ANN_THREADS` (build = flush + compaction), and
//!   sweep `CollectionHandle::search`: the path a server's search takes, mapped segment
//!   file included (engine `strata-collection`).
//! - `ANN_SEGMENTS=2` (with `ANN_COLLECTION=1`): the collection is loaded as two indexed
//!   segments of half the base each (flushed and indexed one after the other, as a bulk load
//!   cut by the memtable bound leaves it); swept as `strata-collection-2seg` (segments searched
//!   in parallel when a core is idle, the default) and `strata-collection-2seg-seq` (one after
//!   the other: `parallel_search_min_rows = usize::MAX`).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use hnsw_rs::anndists::dist::distances::{DistDot, DistL2};
use hnsw_rs::hnsw::Hnsw;
use strata_engine::{Distance, HnswConfig, HnswIndex};

/// A peer's search: query and `ef` to row ids.
type SearchFn<'a> = dyn Fn(&[f32], usize) -> Vec<u32> + 'a;

fn env_list(name: &str, default: &str) -> Vec<usize> {
    std::env::var(name)
        .unwrap_or_else(|_| default.into())
        .split(',')
        .map(|x| x.trim().parse().unwrap_or_else(|_| panic!("{name}: {x}")))
        .collect()
}

struct Data {
    name: String,
    metric: Distance,
    base: Vec<Vec<f32>>,
    queries: Vec<Vec<f32>>,
    truth: Vec<Vec<i32>>,
}

fn data() -> Data {
    match std::env::var("ANN_DATA") {
        Ok(dir) => {
            let dir = PathBuf::from(dir);
            let metric = match std::fs::read_to_string(dir.join("metric"))
                .expect("ANN_DATA/metric")
                .trim()
            {
                "l2" => Distance::Euclid,
                "cosine" => Distance::Cosine,
                "dot" => Distance::Dot,
                m => panic!("unknown metric {m}"),
            };
            Data {
                name: dir
                    .file_name()
                    .map_or("data".into(), |n| n.to_string_lossy().into_owned()),
                metric,
                base: strata_benches::read_fvecs(&dir.join("base.fvecs")),
                queries: strata_benches::read_fvecs(&dir.join("query.fvecs")),
                truth: strata_benches::read_ivecs(&dir.join("groundtruth.ivecs")),
            }
        }
        Err(_) => Data {
            name: "bigann10k".into(),
            metric: Distance::Euclid,
            base: strata_benches::bigann_base(),
            queries: strata_benches::bigann_queries(),
            truth: strata_benches::bigann_truth(),
        },
    }
}

/// recall@10 of `found` (row ids per query).
fn recall(found: &[Vec<u32>], truth: &[Vec<i32>]) -> f64 {
    let mut hit = 0;
    for (f, t) in found.iter().zip(truth) {
        hit += f.iter().filter(|r| t[..10].contains(&(**r as i32))).count();
    }
    hit as f64 / (10 * found.len()) as f64
}

/// Runs every query at least once and for at least `ANN_SECS` (default 1 s); returns QPS and
/// the first pass's ids.
fn sweep(queries: &[Vec<f32>], mut one: impl FnMut(&[f32]) -> Vec<u32>) -> (f64, Vec<Vec<u32>>) {
    let secs = env_list("ANN_SECS", "1")[0] as u64;
    let first: Vec<Vec<u32>> = queries.iter().map(|q| one(q)).collect();
    let start = Instant::now();
    let mut done = 0usize;
    while done < queries.len() || start.elapsed() < Duration::from_secs(secs) {
        std::hint::black_box(one(&queries[done % queries.len()]));
        done += 1;
    }
    (done as f64 / start.elapsed().as_secs_f64(), first)
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let d = data();
    let dim = d.base[0].len();
    let m = env_list("ANN_M", "16")[0];
    let efc = env_list("ANN_EF_CONSTRUCT", "200")[0];
    let efs = env_list("ANN_EF", "10,16,24,32,48,64,96,128,192,256,384,512");
    let cfg = HnswConfig {
        m: m as u32,
        ef_construct: efc as u32,
    };
    eprintln!(
        "machine: {}; {}: {} × {dim}, {} queries, {:?}; m {m}, ef_construct {efc}",
        strata_benches::machine(),
        d.name,
        d.base.len(),
        d.queries.len(),
        d.metric
    );
    println!("engine,data,threads,build_s,index_bytes,ef,qps,recall");
    let flat: Vec<f32> = d.base.iter().flatten().copied().collect();
    for threads in env_list("ANN_THREADS", "1,2") {
        let t = Instant::now();
        let mut index = HnswIndex::build(flat.clone(), dim, d.metric, cfg, threads);
        let build = t.elapsed().as_secs_f64();
        eprintln!("strata, {threads} thread(s): built in {build:.1} s");
        for engine in ["strata", "strata-int8"] {
            if engine == "strata-int8" {
                if std::env::var("ANN_INT8").is_ok_and(|v| v == "0") {
                    continue;
                }
                index.quantize();
            }
            for &ef in &efs {
                let (qps, found) = sweep(&d.queries, |q| {
                    index.search(q, 10, ef).iter().map(|h| h.row).collect()
                });
                println!(
                    "{engine},{},{threads},{build:.2},{},{ef},{qps:.0},{:.4}",
                    d.name,
                    index.graph_bytes() + flat.len() * 4 + index.code_bytes(),
                    recall(&found, &d.truth)
                );
            }
        }
    }
    if std::env::var("ANN_COLLECTION").is_ok_and(|v| v == "1") {
        let threads = *env_list("ANN_THREADS", "1,2")
            .last()
            .expect("a thread count");
        collection(&d, cfg, threads, &efs);
    }
    if std::env::var("ANN_HNSW_RS").is_ok_and(|v| v == "1") {
        let mut rows = d.base.clone();
        if d.metric != Distance::Euclid {
            rows.iter_mut()
                .for_each(|v| strata_engine::distance::normalize(v));
        }
        let t = Instant::now();
        let (l2, dot);
        let search: Box<SearchFn<'_>> = if d.metric == Distance::Euclid {
            l2 = Hnsw::<f32, DistL2>::new(m, rows.len(), 16, efc, DistL2 {});
            rows.iter()
                .enumerate()
                .for_each(|(i, v)| l2.insert_slice((v, i)));
            Box::new(|q, ef| l2.search(q, 10, ef).iter().map(|n| n.d_id as u32).collect())
        } else {
            dot = Hnsw::<f32, DistDot>::new(m, rows.len(), 16, efc, DistDot {});
            rows.iter()
                .enumerate()
                .for_each(|(i, v)| dot.insert_slice((v, i)));
            Box::new(|q, ef| {
                let mut q = q.to_vec();
                strata_engine::distance::normalize(&mut q);
                dot.search(&q, 10, ef)
                    .iter()
                    .map(|n| n.d_id as u32)
                    .collect()
            })
        };
        let build = t.elapsed().as_secs_f64();
        eprintln!("hnsw_rs, 1 thread: built in {build:.1} s");
        for &ef in &efs {
            let (qps, found) = sweep(&d.queries, |q| search(q, ef));
            println!(
                "hnsw_rs,{},1,{build:.2},,{ef},{qps:.0},{:.4}",
                d.name,
                recall(&found, &d.truth)
            );
        }
    }
}

/// The base in a collection compacted into one indexed segment, searched through
/// `CollectionHandle::search`.
fn collection(d: &Data, cfg: HnswConfig, threads: usize, efs: &[usize]) {
    use strata_engine::{
        AckMode, CollectionConfig, DEFAULT_TENANT, Engine, EngineOptions, PointId, PointInput,
        SearchRequest, VectorParams,
    };
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("tempdir");
    let mut opts = EngineOptions::new(dir.path());
    opts.background = false;
    opts.wal_ack = AckMode::None;
    opts.index_threads = threads;
    opts.payload_links = std::env::var("ANN_PAYLOAD_LINKS").map_or(true, |v| v != "0");
    let engine = Engine::open(opts).expect("open");
    let mut params = VectorParams::new(d.base[0].len() as u32, d.metric);
    params.hnsw = cfg;
    let config = CollectionConfig::single(params);
    let coll = engine
        .create_collection(DEFAULT_TENANT, "ann", config)
        .expect("create");
    let filtered = std::env::var("ANN_FILTER").is_ok_and(|v| v == "1");
    if filtered {
        coll.create_payload_index("bucket", strata_engine::FieldType::Integer)
            .expect("index");
        coll.create_payload_index("rare", strata_engine::FieldType::Bool)
            .expect("index");
        coll.create_payload_index("permille", strata_engine::FieldType::Integer)
            .expect("index");
    }
    let two = std::env::var("ANN_SEGMENTS").is_ok_and(|v| v == "2");
    let t = Instant::now();
    for (n, chunk) in d.base.chunks(1000).enumerate() {
        if two && n == d.base.len().div_ceil(2000) {
            // The first half as its own indexed segment.
            coll.flush().expect("flush");
            coll.maintain().expect("index");
        }
        let points = chunk
            .iter()
            .enumerate()
            .map(|(i, v)| {
                let id = n * 1000 + i;
                let payload = filtered.then(|| {
                    serde_json::json!({"bucket": id % 10, "rare": id % 100 == 7, "permille": id % 1000})
                        .as_object()
                        .cloned()
                        .expect("object")
                });
                PointInput::new(PointId::Num(id as u64), v.clone(), payload)
            })
            .collect();
        coll.upsert(points).expect("upsert");
    }
    let t = match two {
        true => t,
        false => Instant::now(),
    };
    coll.flush().expect("flush");
    match two {
        true => coll.maintain().expect("index"),
        false => coll.compact().expect("compact"),
    };
    let build = t.elapsed().as_secs_f64();
    let name = match two {
        true => {
            let info = coll.info().expect("info");
            assert_eq!((info.segments, info.indexed_segments), (2, 2));
            "strata-collection-2seg"
        }
        false => "strata-collection",
    };
    eprintln!(
        "strata-collection, {threads} thread(s): flush + compaction in {build:.1} s, segment files {} bytes",
        engine.stats().segment_bytes
    );
    let ids = |hits: Vec<strata_engine::ScoredPoint>| -> Vec<u32> {
        hits.iter()
            .map(|h| match h.id {
                PointId::Num(n) => n as u32,
                PointId::Uuid(_) => u32::MAX,
            })
            .collect()
    };
    // One unfiltered sweep of `coll`, printed as engine `label`.
    let sweep_ef = |coll: &strata_engine::CollectionHandle, label: &str| {
        for &ef in efs {
            let (qps, found) = sweep(&d.queries, |q| {
                let mut r = SearchRequest::new(q.to_vec(), 10);
                r.ef = Some(ef);
                ids(coll.search(&r).expect("search"))
            });
            println!(
                "{label},{},{threads},{build:.2},,{ef},{qps:.0},{:.4}",
                d.name,
                recall(&found, &d.truth)
            );
        }
    };
    sweep_ef(&coll, name);
    drop(coll);
    drop(engine);
    if two {
        // The same two segments searched one after the other.
        let mut opts = EngineOptions::new(dir.path());
        opts.background = false;
        opts.parallel_search_min_rows = usize::MAX;
        let engine = Engine::open(opts).expect("reopen");
        let coll = engine
            .collection(DEFAULT_TENANT, "ann")
            .expect("collection");
        sweep_ef(&coll, &format!("{name}-seq"));
    }
    if !filtered {
        return;
    }
    // One filtered sweep: `filter` on a reopened engine with `threshold_kb` (None: the cost
    // model), recall against the exact filtered search, over the first `nq` queries.
    let filtered_sweep =
        |engine_name: &str, filter: &serde_json::Value, threshold_kb, nq: usize, efs: &[usize]| {
            let mut opts = EngineOptions::new(dir.path());
            opts.background = false;
            opts.full_scan_threshold_kb = threshold_kb;
            let engine = Engine::open(opts).expect("reopen");
            let coll = engine
                .collection(DEFAULT_TENANT, "ann")
                .expect("collection");
            let filter = strata_engine::Filter::parse_str(&filter.to_string()).expect("filter");
            let queries = &d.queries[..nq.min(d.queries.len())];
            let truth: Vec<Vec<i32>> = queries
                .iter()
                .map(|q| {
                    let mut r = SearchRequest::new(q.to_vec(), 10);
                    r.filter = Some(filter.clone());
                    r.exact = true;
                    ids(coll.search(&r).expect("exact"))
                        .into_iter()
                        .map(|i| i as i32)
                        .collect()
                })
                .collect();
            for &ef in efs {
                let (qps, found) = sweep(queries, |q| {
                    let mut r = SearchRequest::new(q.to_vec(), 10);
                    r.ef = Some(ef);
                    r.filter = Some(filter.clone());
                    ids(coll.search(&r).expect("search"))
                });
                println!(
                    "{engine_name},{},{threads},{build:.2},,{ef},{qps:.0},{:.4}",
                    d.name,
                    recall(&found, &truth)
                );
            }
        };
    let matches = |key: &str, value: serde_json::Value| serde_json::json!({"must": [{"key": key, "match": {"value": value}}]});
    let all = d.queries.len();
    filtered_sweep(
        "strata-filter10",
        &matches("bucket", 3.into()),
        Some(0),
        all,
        efs,
    );
    filtered_sweep(
        "strata-filter10-scan",
        &matches("bucket", 3.into()),
        Some(usize::MAX / 1024),
        all,
        efs,
    );
    filtered_sweep(
        "strata-filter10-auto",
        &matches("bucket", 3.into()),
        None,
        all,
        efs,
    );
    filtered_sweep(
        "strata-filter1",
        &matches("rare", true.into()),
        None,
        all,
        efs,
    );
    // Filter routing: each selectivity walked, scanned and as the cost model picks.
    if std::env::var("ANN_FILTER_SWEEP").is_ok_and(|v| v == "1") {
        let nq = env_list("ANN_SWEEP_QUERIES", "300")[0];
        for permille in env_list("ANN_SWEEP_PERMILLE", "500,200,100,50,20,10,5") {
            let f = serde_json::json!({"must": [{"key": "permille", "range": {"lt": permille}}]});
            let pct = permille as f64 / 10.0;
            for (mode, threshold) in [
                ("walk", Some(0)),
                ("scan", Some(usize::MAX / 1024)),
                ("auto", None),
            ] {
                filtered_sweep(&format!("sweep-{mode}-{pct}%"), &f, threshold, nq, efs);
            }
        }
    }
}
