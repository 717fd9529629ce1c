//! # strata-engine
//!
//! The storage engine of Strata: collections of vectors with JSON payloads, durable through a
//! write-ahead log, sealed into immutable segment files that carry an HNSW graph usable in
//! place (mapped, not decoded), searched with payload filters applied inside the graph walk.
//!
//! ```
//! use strata_engine::{CollectionConfig, Distance, Engine, EngineOptions, PointId, PointInput, SearchRequest};
//!
//! let dir = tempfile::tempdir()?;
//! let engine = Engine::open(EngineOptions::new(dir.path()))?;
//! let docs = engine.create_collection("default", "docs", CollectionConfig::new(3, Distance::Cosine))?;
//! let version = docs.upsert(vec![PointInput::new(PointId::Num(1), vec![1.0, 0.0, 0.0], None)])?;
//! let hits = docs.search(&SearchRequest::new(vec![0.9, 0.1, 0.0], 5))?;
//! assert_eq!(hits[0].id, PointId::Num(1));
//! assert_eq!(hits[0].version, version);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Every persisted byte goes through `strata-tiering` (a blob store for segments and the
//! manifest, a log store for the WAL): the engine has no file I/O of its own, so it runs the
//! same on a local directory, in RAM, or over storage that fails on purpose.
//!
//! # Layout
//! - `engine`: open/recover storage, create/drop collections, publish manifests, failure policy.
//! - `collection`: the state of one collection behind methods (apply, seal, install).
//! - `handle`: the read and write paths of one collection ([`CollectionHandle`]).
//! - `read`: one read-source abstraction over memtable and segments, merged once.
//! - `maintenance`: flush (memtable → segment) and compaction (merge, build HNSW), background
//!   workers that survive failures and panics.
//! - `wal`: the write-ahead log ([`Wal`] trait, [`LocalWal`]), group commit, replay.
//! - `deadline`: deadlines and cancellation carried into every operation.
//! - `columns`: the bounded cache of parsed payload columns for filters.
//! - `record`: the WAL record payload codec.
//! - `memtable`: newest writes in RAM, exact search.
//! - `segment`: the segment file format, its zero-copy reader, the flat HNSW graph.
//! - `manifest`: the root of recovery.
//! - `distance`, `scan`: SIMD kernels and exact top-k.
//! - `fusion`: RRF and DBSF fusion of ranked lists (`prefetch`).
//! - `groups`: grouped search (`group_by`).
//! - `recommend`: recommendation by positive and negative examples.
//! - `mmr`: maximal-marginal-relevance re-ranking of a search's candidates.
//! - `filter`: Qdrant-syntax payload filters.
//! - `index`: payload index definitions (which fields, as what type).
//! - `clock`, `rng`: injected time and randomness.
//!
//! Byte layouts of every file are in `docs/format.md`.

#[cfg(not(target_endian = "little"))]
compile_error!("Strata's on-disk formats are read in place and require a little-endian target");

mod actors;
mod clock;
mod codec;
mod collection;
mod columns;
mod deadline;
pub mod distance;
mod durable;
mod engine;
mod error;
mod filter;
mod fusion;
mod groups;
mod handle;
mod index;
mod maintenance;
mod manifest;
mod memtable;
mod mmr;
mod options;
mod quant;
mod read;
mod recommend;
mod record;
pub mod scan;
mod segment;
mod sparse;
pub mod tiers;
mod types;
mod wal;

pub use actors::{ActorCommit, ActorCondition, ActorHandle, ActorState, ActorWrite};
pub use clock::{Clock, ManualClock, SystemClock};
pub use deadline::Deadline;
pub use durable::Durable;
pub use engine::{AliasAction, Engine, EngineStats, Health, RecoveryReport, SnapshotInfo};
pub use error::{Error, ErrorKind, Result};
pub use filter::Filter;
pub use fusion::{DEFAULT_RRF_K, Fusion, Ranked, fuse};
pub use groups::MAX_GROUP_SIZE;

/// The largest squared norm a vector may have, stored or queried (`‖v‖² ≤ 1e37`, `‖v‖` up to
/// about 3.2e18): between two such vectors a squared Euclidean distance is at most 4e37 and a
/// dot product at most 1e37, so no distance or score overflows `f32`. Writes and queries past
/// it are refused with [`ErrorKind::InvalidArgument`] naming the field (and the point).
pub const MAX_SQUARED_NORM: f64 = 1e37;
pub use handle::{CollectionHandle, PointEdit};
pub use index::{FieldType, MAX_INDEX_KEY, MAX_INDEXES, PayloadIndexes};
pub use maintenance::JobFailure;
pub use mmr::Mmr;
pub use options::{EngineOptions, RescoreReads, TierOptions};
pub use recommend::{MAX_EXAMPLES, Recommend, RecommendStrategy};
pub use segment::Verify;
pub use segment::graph::HnswIndex;
pub use sparse::{MAX_SPARSE_ENTRIES, Modifier, SparseParams, SparseVector};
/// The storage layer the engine persists through (re-exported for tests and embedders).
pub use strata_tiering as storage;
pub use strata_tiering::SplitMix64;
pub use strata_tiering::policy::Hint as TierHint;
pub use types::{
    ColdReads, CollectionConfig, CollectionInfo, Distance, FacetHit, FacetRequest, GroupRequest,
    HnswConfig, HnswUpdate, Lsn, MAX_DIM, MAX_VECTOR_NAME, MAX_VECTORS, Payload, PointGroup,
    PointId, PointInput, Record, ScoredPoint, ScrollPage, ScrollRequest, SearchReport,
    SearchRequest, SparseVectors, VectorParams, Vectors, parse_named_vectors, parse_vector,
    validate_name,
};
pub use wal::{
    AckMode, LocalWal, LocalWalOptions, MAX_RECORD_BYTES, PREALLOCATE_BYTES, ReplayStats,
    ReplayVisitor, Wal,
};

/// Entry points for fuzz targets and garbage-input property tests: every decoder, fed arbitrary
/// bytes, must return an error rather than panic. Not part of the API.
#[doc(hidden)]
pub mod fuzzing {
    use strata_tiering::Blob;

    use crate::segment::{SegmentData, Verify};

    /// WAL frame and file header decoders.
    pub fn wal_frame(data: &[u8]) {
        let _ = crate::wal::decode_frame(data);
        let _ = crate::wal::decode_file_header(data);
    }

    /// WAL record payload decoder.
    pub fn wal_record(data: &[u8]) {
        let _ = crate::record::WalOp::decode(data);
    }

    /// Manifest decoder.
    pub fn manifest(data: &[u8]) {
        let _ = crate::manifest::Manifest::decode(data);
    }

    /// Segment open (both verification levels) and, when it opens, every accessor and a graph
    /// search: a header-only open must still never panic on hostile section contents.
    pub fn segment(data: &[u8]) {
        for verify in [Verify::Full, Verify::HeaderOnly] {
            if let Ok(s) = SegmentData::open(Blob::from_bytes(data), verify) {
                s.exercise();
            }
        }
        // The same bytes with a valid header checksum: mutated counts, widths and offsets
        // reach the layout checks, and mutated sections reach every accessor.
        let mut stamped = data.to_vec();
        crate::segment::format::restamp_prefix_crc(&mut stamped);
        if let Ok(s) = SegmentData::open(Blob::from_bytes(&stamped), Verify::HeaderOnly) {
            s.exercise();
        }
    }

    /// Segment meta file open (always a full check) and, when it opens, every accessor.
    pub fn segment_meta(data: &[u8]) {
        if let Ok(m) = crate::segment::SegmentMeta::open(Blob::from_bytes(data)) {
            let ids = m.ids();
            for r in 0..ids.rows().min(4096) {
                let _ = (ids.id(r), ids.version(r), ids.find(ids.id(r)));
            }
            for t in 0..ids.tombstone_count().min(4096) {
                let _ = ids.tombstone(t).map(|(id, _)| ids.find_tombstone(id));
            }
        }
    }

    /// Filter parser and evaluator.
    pub fn filter(data: &[u8]) {
        if let Ok(text) = std::str::from_utf8(data)
            && let Ok(f) = crate::filter::Filter::parse_str(text)
        {
            let payload = serde_json::json!({"a": 1, "b": [1, "x", {"c": true}], "s": "x"});
            let payload = payload.as_object().cloned().unwrap_or_default();
            let _ = f.matches(crate::types::PointId::Num(1), &payload);
        }
    }
}

/// The tenant used when no tenant is given (single-tenant deployments).
pub const DEFAULT_TENANT: &str = "default";
