//! Prometheus metrics (`/metrics` on the metrics port, no auth). Names are documented in
//! `docs/operations.md`.
//!
//! Counters and histograms are recorded where things happen (HTTP middleware, WAL fsync,
//! flush, compaction); gauges (points, collections, segments, bytes, memory) are read from the
//! engine at scrape time.

use std::sync::{Arc, OnceLock};

use axum::Router;
use axum::extract::State;
use axum::routing::get;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use strata_engine::Engine;
use strata_engine::storage::IoBackend;

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// The thread that drains histogram samples into their buckets between scrapes.
const UPKEEP_THREAD: &str = "strata-metrics";
/// How often it runs (the crate's own exporter uses 5 s).
const UPKEEP_EVERY: std::time::Duration = std::time::Duration::from_secs(5);

/// Installs the global recorder once (later calls return the same handle).
pub fn install() -> PrometheusHandle {
    HANDLE
        .get_or_init(|| {
            let buckets = [
                0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
                1.0, 2.5, 5.0, 10.0,
            ];
            let recorder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), &buckets)
                .expect("bucket list is non-empty")
                .build_recorder();
            let handle = recorder.handle();
            // A second recorder in the same process (tests) is harmless: keep the first.
            let _ = metrics::set_global_recorder(recorder);
            // Histograms keep every sample until drained, and only a scrape or an upkeep
            // drains them (the crate's documented contract for `build_recorder`): without
            // this a server nobody scrapes grows by 8 bytes per request and fsync, forever.
            let upkeep = handle.clone();
            if let Err(e) = std::thread::Builder::new()
                .name(UPKEEP_THREAD.into())
                .spawn(move || {
                    loop {
                        std::thread::sleep(UPKEEP_EVERY);
                        upkeep.run_upkeep();
                    }
                })
            {
                tracing::error!(error = %e, "could not start the metrics upkeep thread: histograms grow until scraped");
            }
            handle
        })
        .clone()
}

fn resident_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}

async fn render(State((engine, handle)): State<(Arc<Engine>, PrometheusHandle)>) -> String {
    let st = engine.stats();
    metrics::gauge!("strata_collections").set(st.collections as f64);
    if let Some(io) = engine.io() {
        for b in [IoBackend::IoUring, IoBackend::Pread] {
            metrics::gauge!("strata_io_mode", "backend" => b.name())
                .set(f64::from(u8::from(b == io.backend())));
        }
    }
    metrics::gauge!("strata_points", "tier" => "memtable").set(st.memtable_points as f64);
    metrics::gauge!("strata_points", "tier" => "segments").set(st.segment_points as f64);
    metrics::gauge!("strata_segments").set(st.segments as f64);
    metrics::gauge!("strata_segments_indexed").set(st.indexed_segments as f64);
    metrics::gauge!("strata_bytes", "kind" => "memtable").set(st.memtable_bytes as f64);
    metrics::gauge!("strata_bytes", "kind" => "segments").set(st.segment_bytes as f64);
    metrics::gauge!("strata_wal_fsyncs").set(st.wal_fsyncs as f64);
    let health = engine.health();
    metrics::gauge!("strata_wal_writable").set(f64::from(u8::from(health.writable)));
    metrics::gauge!("strata_maintenance_failing_jobs").set(health.failing.len() as f64);
    metrics::gauge!("strata_segments_unwritten").set(st.unwritten_segments as f64);
    metrics::gauge!("strata_filter_cache_bytes").set(st.filter_cache_bytes as f64);
    metrics::gauge!("strata_actor_stores").set(st.actor_stores as f64);
    for (i, tier) in ["hot", "warm", "cold"].into_iter().enumerate() {
        metrics::gauge!("strata_actor_states", "tier" => tier).set(st.actor_states[i] as f64);
        metrics::gauge!("strata_actor_bytes", "tier" => tier).set(st.actor_bytes[i] as f64);
        metrics::gauge!("strata_actor_segments", "tier" => tier).set(st.actor_segments[i] as f64);
    }
    for (i, path) in ["graph", "index_rows", "scan"].into_iter().enumerate() {
        metrics::gauge!("strata_segment_searches", "path" => path)
            .set(st.segment_search_paths[i] as f64);
    }
    metrics::gauge!("strata_parallel_searches").set(st.parallel_searches as f64);
    metrics::gauge!("strata_confined_searches").set(st.confined_searches as f64);
    for (i, tier) in ["hot", "warm", "cold"].into_iter().enumerate() {
        metrics::gauge!("strata_tier_segments", "tier" => tier).set(st.tier_segments[i] as f64);
        metrics::gauge!("strata_tier_bytes", "tier" => tier).set(st.tier_bytes[i] as f64);
    }
    if let Some(rss) = resident_bytes() {
        metrics::gauge!("strata_process_resident_memory_bytes").set(rss as f64);
    }
    handle.render()
}

/// The metrics router.
pub fn router(engine: Arc<Engine>, handle: PrometheusHandle) -> Router {
    Router::new()
        .route("/metrics", get(render))
        .with_state((engine, handle))
}

#[cfg(test)]
mod tests {
    /// Names of this process's threads.
    fn threads() -> Vec<String> {
        std::fs::read_dir("/proc/self/task")
            .expect("/proc/self/task")
            .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
            .map(|c| c.trim().to_string())
            .collect()
    }

    #[test]
    fn installing_the_recorder_starts_the_histogram_upkeep() {
        let _ = super::install();
        let _ = super::install();
        // A new thread takes its name itself once it runs (until then it shows its parent's):
        // wait for that, then there must be exactly one.
        let upkeep = || {
            threads()
                .iter()
                .filter(|t| t.as_str() == super::UPKEEP_THREAD)
                .count()
        };
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while upkeep() == 0 && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        assert_eq!(upkeep(), 1, "one upkeep thread: {:?}", threads());
    }
}
