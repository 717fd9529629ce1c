//! Distance kernels (simsimd vs a scalar loop) at 128/768/1536 dims, and exact top-10 scan
//! throughput over bigann10k (Strata's SIMD scan vs the same scan with the scalar kernel).

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use strata_engine::{Distance, SplitMix64, distance, scan};

fn vecs(dim: usize, seed: u64) -> (Vec<f32>, Vec<f32>) {
    let mut r = SplitMix64::new(seed);
    (
        (0..dim).map(|_| r.next_f32() - 0.5).collect(),
        (0..dim).map(|_| r.next_f32() - 0.5).collect(),
    )
}

fn kernels(c: &mut Criterion) {
    eprintln!("machine: {}", strata_benches::machine());
    for dim in [128usize, 768, 1536] {
        let (a, b) = vecs(dim, dim as u64);
        let mut g = c.benchmark_group(format!("kernel/{dim}"));
        g.throughput(Throughput::Elements(1));
        g.bench_function("dot/simsimd", |x| {
            x.iter(|| distance::dot(black_box(&a), black_box(&b)))
        });
        g.bench_function("dot/scalar", |x| {
            x.iter(|| distance::scalar::dot_f32(black_box(&a), black_box(&b)))
        });
        g.bench_function("l2sq/simsimd", |x| {
            x.iter(|| distance::l2sq(black_box(&a), black_box(&b)))
        });
        g.bench_function("l2sq/scalar", |x| {
            x.iter(|| distance::scalar::l2sq_f32(black_box(&a), black_box(&b)))
        });
        g.finish();
    }
}

fn exact_scan(c: &mut Criterion) {
    let base = strata_benches::bigann_base();
    let q = strata_benches::bigann_queries().swap_remove(0);
    let rows: Vec<f32> = base.iter().flatten().copied().collect();
    let mut g = c.benchmark_group("exact_scan/bigann10k_top10");
    g.throughput(Throughput::Elements(base.len() as u64));
    g.bench_function("strata_simd", |x| {
        x.iter(|| scan::top_k(Distance::Euclid, black_box(&q), &rows, 128, 10, |_| true))
    });
    g.bench_function("scalar_loop", |x| {
        x.iter(|| {
            let mut best: Vec<(f32, usize)> = Vec::with_capacity(11);
            for (i, v) in rows.chunks_exact(128).enumerate() {
                let d = distance::scalar::l2sq_f32(black_box(&q), v);
                if best.len() < 10 || d < best[best.len() - 1].0 {
                    let at = best.partition_point(|b| b.0 <= d);
                    best.insert(at, (d, i));
                    best.truncate(10);
                }
            }
            best
        })
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().warm_up_time(Duration::from_millis(500)).measurement_time(Duration::from_secs(2));
    targets = kernels, exact_scan
}
criterion_main!(benches);
