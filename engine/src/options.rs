//! Engine options: every tunable with its default and why.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use strata_tiering::{BlobStore, Io, Storage, TieredOptions};

use crate::clock::{Clock, SystemClock};
use crate::segment::Verify;
use crate::wal::{AckMode, Wal};

/// How an [`crate::Engine`] runs. Build with [`EngineOptions::new`] and adjust fields.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct EngineOptions {
    /// Root of everything the engine stores (`MANIFEST`, `wal/`, `segments/`, `LOCK`) when
    /// `storage` is not given.
    pub data_dir: PathBuf,
    /// Where every byte is persisted. Default: the local directory `data_dir`, locked for this
    /// process. Tests give in-memory or fault-injecting storage.
    pub storage: Option<Storage>,
    /// The cold tier: an object store holding every sealed segment and every manifest
    /// generation (see `strata_tiering::TieredStore`). Default none: one local tier.
    pub cold: Option<Arc<dyn BlobStore>>,
    /// Retention and garbage collection of the cold tier.
    pub tiered: TieredOptions,
    /// How often unreferenced cold objects are looked for. Default 10 min.
    pub cold_gc_interval: Duration,
    /// The write-ahead log. Default: a [`crate::LocalWal`] over `storage`'s log store.
    pub wal: Option<Arc<dyn Wal>>,
    /// Open for inspection only: nothing on disk changes (no orphan removal, no torn-tail cut,
    /// no new WAL file) and every write is refused. `strata check` uses it.
    pub read_only: bool,
    /// When writes are acknowledged. Default [`AckMode::Fsync`].
    pub wal_ack: AckMode,
    /// WAL file size before rotation. Default 64 MiB.
    pub wal_file_bytes: u64,
    /// Memtable size that triggers a flush. Default 64 MiB.
    pub memtable_max_bytes: usize,
    /// Age of the oldest unflushed write that triggers a flush (bounds WAL replay). Default 60 s.
    pub memtable_max_age: Duration,
    /// A memtable holding at least `index_threshold_rows` live points is flushed once no write
    /// has reached it for this long, so a paused or finished bulk load gets its graph without
    /// waiting for `memtable_max_age` (searches scan a memtable exactly). `None`: only the
    /// size and age bounds flush. Default 1 s.
    pub memtable_idle_flush: Option<Duration>,
    /// Segments with fewer live rows than this get no HNSW graph (an exact SIMD scan is as fast)
    /// and are merged together. Default 2,000.
    pub index_threshold_rows: u32,
    /// Threads one HNSW graph build uses (compaction runs one build at a time), at most one per
    /// core. Default 0: one per core.
    pub index_threads: usize,
    /// How a search re-scores the best candidates of a walk over codes in a warm segment (a
    /// mapped file): those in the page cache through the mapping, the others by one batched
    /// read (io_uring where it works, else `pread`) — `Auto`, the default — or all one way.
    /// See `docs/operations.md`, "Beyond RAM".
    pub rescore_reads: RescoreReads,
    /// Walk each warm (mapped) segment's graph from a copy in process RAM, made on its first
    /// search (Qdrant's `hnsw_config.on_disk = false`), instead of through the mapping: the
    /// page cache can then evict only vectors, at the cost of the graph's bytes in anonymous
    /// memory (about `rows × (1 + 2m) × 4`: 132 bytes a row at m = 16), outside `hot_bytes`.
    /// Default false.
    pub graphs_in_ram: bool,
    /// How a filtered search of an indexed segment chooses between an exact scan of the rows
    /// the filter allows and a graph walk. `None` (default): by estimated cost (rows allowed,
    /// selectivity, dimension, `ef`; see `docs/operations.md`). `Some(kb)`: Qdrant's rule —
    /// scan when the allowed rows hold fewer vector bytes than `kb` KiB, else walk (`Some(0)`
    /// walks whenever more than `ef` rows are allowed).
    pub full_scan_threshold_kb: Option<usize>,
    /// A search of a collection holding two or more indexed segments of at least this many
    /// rows searches them on several threads when the process has idle cores (fewer searches
    /// running than cores): the latency of one search, not the throughput of many, is what
    /// it buys. `usize::MAX` turns it off. Default 50,000 (below that a segment's search is
    /// too short to pay for a thread).
    pub parallel_search_min_rows: usize,
    /// Compaction builds payload links (`docs/operations.md`, "Payload links") for the values
    /// of keyword, integer, bool and uuid payload indexes held by 1/64 to 1/4 of a segment's
    /// rows (the blocks of a space holding at most twice its rows together), and a search
    /// filtered to such values walks a graph over their rows alone. It costs a graph build over
    /// each such value's rows and up to `2m × 4` bytes per row and block holding it. False
    /// stops both at once (segments keep the links they have until compaction rewrites them,
    /// unused). Default true.
    pub payload_links: bool,
    /// Compaction never produces a segment above this many rows. Default 1,000,000.
    pub max_segment_rows: u32,
    /// Above this many segments in a collection, compaction merges the smallest. Default 8.
    pub max_segments: usize,
    /// A segment with at least this fraction of shadowed rows is rewritten. Default 0.2.
    pub compact_dead_fraction: f64,
    /// Run flush and compaction in background threads. Default true.
    pub background: bool,
    /// How often the background threads look for work. Default 200 ms.
    pub maintenance_interval: Duration,
    /// Longest wait before retrying a failing maintenance job (the wait doubles from
    /// `maintenance_interval` after each failure). Default 60 s.
    pub maintenance_backoff_max: Duration,
    /// How segment files are checked at start-up. Default [`Verify::Full`] (a mapped file's
    /// checksums are summed through batched reads of [`EngineOptions::io`]).
    pub verify_on_open: Verify,
    /// Batched reads of the local data directory (io_uring or pread). Default: the process's
    /// `auto` engine ([`Io::shared_default`]), detected once. Ignored when `storage` is given.
    pub io: Option<Arc<Io>>,
    /// Largest upsert batch, in points. Default 10,000.
    pub max_batch_points: usize,
    /// Largest payload of one point, as JSON bytes. Default 1 MiB.
    pub max_payload_bytes: usize,
    /// Largest actor state value, in bytes (default 4 MiB).
    pub max_actor_value_bytes: usize,
    /// Largest `limit + offset` of a search or scroll. Default 10,000.
    pub max_result_window: usize,
    /// RAM for parsed payload columns that filters read (all collections), evicted least
    /// recently used. Default 256 MiB.
    pub filter_cache_bytes: usize,
    /// Most distinct top-level payload keys one filter may read (each is a column per
    /// segment). Default 32.
    pub max_filter_keys: usize,
    /// Most conditions in one filter (nested ones and `match.any` values included). Default
    /// 1,024.
    pub max_filter_conditions: usize,
    /// Tier budgets and the mover (see [`TierOptions`]).
    pub tiers: TierOptions,
    /// Time source (tests inject a manual clock).
    pub clock: Arc<dyn Clock>,
}

/// Where the exact re-score of a walk over codes reads a warm segment's vectors from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RescoreReads {
    /// Through the segment's mapping: no system call when the pages are cached; a page fault
    /// each, one after the other, when they are not.
    Mapping,
    /// One batched read per segment search of just the candidates' vectors (io_uring at the
    /// engine's depth, or `pread`): a system call even when cached, but the reads that miss
    /// the cache go to the device together and bring in 4 KiB each.
    Batched,
    /// Asks the page cache which candidates' vectors are in RAM (`mincore`, about a
    /// microsecond each) and reads those through the mapping, the others by one batched read.
    Auto,
}

/// Where segment bodies live: budgets of the hot and warm tiers, the policy's tuning and the
/// mover that applies its plans (`strata_tiering::policy`).
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct TierOptions {
    /// Bytes of segment files held in process RAM (hot). Default 0: none — warm files are
    /// mapped, and the kernel's page cache keeps what is read.
    pub hot_bytes: u64,
    /// Bytes of segment files kept on local disk, hot ones included, when a cold tier is
    /// configured; the least used of the rest are evicted (only their meta files stay local).
    /// Default `None`: unlimited (nothing is evicted). Ignored without a cold tier.
    pub warm_bytes: Option<u64>,
    /// A tier is trimmed once its usage exceeds this fraction of its budget. Default 0.95.
    pub high_watermark: f64,
    /// ... down to this fraction. Default 0.80.
    pub low_watermark: f64,
    /// A segment stays at least this long in a tier before the policy moves it again (no
    /// flapping; pins and offloads excepted). Default 30 s.
    pub min_residence: Duration,
    /// Half-life of the decayed access frequency. Default 10 min.
    pub half_life: Duration,
    /// Decayed reads a segment needs before it is promoted when that displaces another
    /// (scan resistance). Default 2.
    pub admit_frequency: f64,
    /// How often the mover plans. Default 1 s.
    pub mover_interval: Duration,
    /// Moves applied at once. Default 2.
    pub mover_concurrency: usize,
    /// Download bandwidth cap of promotions, bytes per second. Default `None`: uncapped.
    pub mover_bytes_per_sec: Option<u64>,
    /// Longest wait before retrying a segment whose move failed (doubling from
    /// `mover_interval`). Default 5 min.
    pub mover_backoff_max: Duration,
    /// A search that returns payloads and streams a cold segment fetches the segment's payload
    /// bytes with its vectors when they are at most this many (one round trip instead of two,
    /// for a little more data); above, only the results' payloads are read, by row. Default
    /// 1 MiB (about what one object-store round trip could transfer meanwhile).
    pub stream_payloads_up_to: u64,
}

impl Default for TierOptions {
    fn default() -> Self {
        TierOptions {
            hot_bytes: 0,
            warm_bytes: None,
            high_watermark: 0.95,
            low_watermark: 0.80,
            min_residence: Duration::from_secs(30),
            half_life: Duration::from_secs(600),
            admit_frequency: 2.0,
            mover_interval: Duration::from_secs(1),
            mover_concurrency: 2,
            mover_bytes_per_sec: None,
            mover_backoff_max: Duration::from_secs(300),
            stream_payloads_up_to: 1 << 20,
        }
    }
}

impl EngineOptions {
    /// Defaults, storing under `data_dir`.
    pub fn new(data_dir: impl Into<PathBuf>) -> EngineOptions {
        EngineOptions {
            data_dir: data_dir.into(),
            storage: None,
            cold: None,
            tiered: TieredOptions::default(),
            cold_gc_interval: Duration::from_secs(600),
            wal: None,
            read_only: false,
            wal_ack: AckMode::Fsync,
            wal_file_bytes: 64 << 20,
            memtable_max_bytes: 64 << 20,
            memtable_max_age: Duration::from_secs(60),
            memtable_idle_flush: Some(Duration::from_secs(1)),
            index_threshold_rows: 2_000,
            index_threads: 0,
            full_scan_threshold_kb: None,
            rescore_reads: RescoreReads::Auto,
            graphs_in_ram: false,
            parallel_search_min_rows: 50_000,
            payload_links: true,
            max_segment_rows: 1_000_000,
            max_segments: 8,
            compact_dead_fraction: 0.2,
            background: true,
            maintenance_interval: Duration::from_millis(200),
            maintenance_backoff_max: Duration::from_secs(60),
            verify_on_open: Verify::Full,
            io: None,
            max_batch_points: 10_000,
            max_payload_bytes: 1 << 20,
            max_actor_value_bytes: crate::actors::DEFAULT_MAX_VALUE,
            max_result_window: 10_000,
            filter_cache_bytes: 256 << 20,
            max_filter_keys: 32,
            max_filter_conditions: 1_024,
            tiers: TierOptions::default(),
            clock: Arc::new(SystemClock),
        }
    }

    /// Defaults over the given storage (in memory, fault-injecting, …); `data_dir` is only a
    /// label.
    pub fn with_storage(storage: Storage) -> EngineOptions {
        let mut o = EngineOptions::new("(custom storage)");
        o.storage = Some(storage);
        o
    }
}
