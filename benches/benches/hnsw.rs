//! HNSW on bigann10k: build time (Strata's compaction, which builds its graph on every core and
//! writes the segment, vs hnsw_rs alone on one thread; `benches/ann.sh` compares builders
//! thread for thread) and search latency (Strata's in-place flat-layout search vs hnsw_rs's own
//! search on a graph built with the same parameters vs an exact scan), with recall@10 of each;
//! and the cost of payload filters (10 % and 1 % of points) on the same segment.

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use hnsw_rs::anndists::dist::distances::DistL2;
use hnsw_rs::hnsw::Hnsw;
use strata_engine::*;

use strata_benches::recall_at_10 as recall;

fn hnsw(c: &mut Criterion) {
    eprintln!("machine: {}", strata_benches::machine());
    let base = strata_benches::bigann_base();
    let queries = strata_benches::bigann_queries();
    let truth = strata_benches::bigann_truth();

    let dir = tempfile::tempdir().expect("tempdir");
    let mut opts = EngineOptions::new(dir.path());
    opts.background = false;
    opts.wal_ack = AckMode::None;
    let engine = Engine::open(opts).expect("open");
    let coll = engine
        .create_collection(
            DEFAULT_TENANT,
            "b",
            CollectionConfig::new(128, Distance::Euclid),
        )
        .expect("create");
    strata_benches::load_bigann(&coll, &base);
    coll.flush().expect("flush");
    let t = Instant::now();
    coll.compact().expect("compact");
    let strata_build = t.elapsed();

    let t = Instant::now();
    let peer: Hnsw<'_, f32, DistL2> = Hnsw::new(16, base.len(), 16, 100, DistL2 {});
    for (i, v) in base.iter().enumerate() {
        peer.insert_slice((v, i));
    }
    let peer_build = t.elapsed();
    eprintln!(
        "build bigann10k (m=16, ef_construct=100): strata compaction {:.2}s, hnsw_rs alone {:.2}s (ratio {:.2})",
        strata_build.as_secs_f64(),
        peer_build.as_secs_f64(),
        strata_build.as_secs_f64() / peer_build.as_secs_f64()
    );

    let strata_found: Vec<Vec<u64>> = queries
        .iter()
        .map(|q| {
            coll.search(&SearchRequest::new(q.clone(), 10))
                .expect("search")
                .iter()
                .map(|h| match h.id {
                    PointId::Num(n) => n,
                    PointId::Uuid(_) => u64::MAX,
                })
                .collect()
        })
        .collect();
    let peer_found: Vec<Vec<u64>> = queries
        .iter()
        .map(|q| {
            peer.search(q, 10, 100)
                .iter()
                .map(|n| n.d_id as u64)
                .collect()
        })
        .collect();
    eprintln!(
        "recall@10 (ef=100): strata {:.4}, hnsw_rs {:.4}",
        recall(&strata_found, &truth),
        recall(&peer_found, &truth)
    );

    let mut g = c.benchmark_group("search_bigann10k_k10");
    g.throughput(Throughput::Elements(queries.len() as u64));
    g.bench_function("strata_hnsw_ef100", |b| {
        b.iter(|| {
            for q in &queries {
                black_box(
                    coll.search(&SearchRequest::new(q.clone(), 10))
                        .expect("search"),
                );
            }
        })
    });
    g.bench_function("hnsw_rs_ef100", |b| {
        b.iter(|| {
            for q in &queries {
                black_box(peer.search(q, 10, 100));
            }
        })
    });
    // Payload filters on the same segment: 10 % (graph walk with an allow-list) and 1 % (below
    // the 5 % threshold: exact scan of the matching rows).
    for (name, json) in [
        (
            "strata_filter_10pct",
            r#"{"must": [{"key": "bucket", "match": {"value": 3}}]}"#,
        ),
        (
            "strata_filter_1pct",
            r#"{"must": [{"key": "rare", "match": {"value": true}}]}"#,
        ),
    ] {
        let f = Filter::parse_str(json).expect("filter");
        g.bench_function(name, |b| {
            b.iter(|| {
                for q in &queries {
                    let mut r = SearchRequest::new(q.clone(), 10);
                    r.filter = Some(f.clone());
                    black_box(coll.search(&r).expect("search"));
                }
            })
        });
    }
    // The same 10 % filter over a memtable (fresh data, not yet flushed): exact scan.
    let fresh = engine
        .create_collection(
            DEFAULT_TENANT,
            "fresh",
            CollectionConfig::new(128, Distance::Euclid),
        )
        .expect("create");
    strata_benches::load_bigann(&fresh, &base);
    let f10 = Filter::parse_str(r#"{"must": [{"key": "bucket", "match": {"value": 3}}]}"#)
        .expect("filter");
    g.bench_function("memtable_filter_10pct", |b| {
        b.iter(|| {
            for q in &queries {
                let mut r = SearchRequest::new(q.clone(), 10);
                r.filter = Some(f10.clone());
                black_box(fresh.search(&r).expect("search"));
            }
        })
    });
    g.bench_function("strata_exact", |b| {
        b.iter(|| {
            for q in &queries {
                let mut r = SearchRequest::new(q.clone(), 10);
                r.exact = true;
                black_box(coll.search(&r).expect("search"));
            }
        })
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20).warm_up_time(Duration::from_millis(500)).measurement_time(Duration::from_secs(4));
    targets = hnsw
}
criterion_main!(benches);
