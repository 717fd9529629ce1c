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
//! let version = docs.upsert(vec![PointInput { id: PointId::Num(1), vector: vec![1.0, 0.0, 0.0], payload: None }])?;
//! let hits = docs.search(&SearchRequest::new(vec![0.9, 0.1, 0.0], 5))?;
//! assert_eq!(hits[0].id, PointId::Num(1));
//! assert_eq!(hits[0].version, version);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Layout
//! - `engine`: open/recover a data directory, create/drop collections, manifests.
//! - `collection`: the read and write paths of one collection ([`CollectionHandle`]).
//! - `maintenance`: flush (memtable → segment) and compaction (merge, build HNSW), background.
//! - `wal`: the write-ahead log ([`Wal`] trait, [`LocalWal`]), group commit, replay.
//! - `record`: the WAL record payload codec.
//! - `memtable`: newest writes in RAM, exact search.
//! - `segment`: the segment file format, its zero-copy reader, the flat HNSW graph.
//! - `manifest`: the root of recovery.
//! - `distance`, `scan`: SIMD kernels and exact top-k.
//! - `filter`: Qdrant-syntax payload filters.
//! - `clock`, `rng`: injected time and randomness.
//!
//! Byte layouts of every file are in `docs/format.md`.

#[cfg(not(target_endian = "little"))]
compile_error!("Strata's on-disk formats are read in place and require a little-endian target");

mod clock;
mod codec;
mod collection;
pub mod distance;
mod engine;
mod error;
mod filter;
mod maintenance;
mod manifest;
mod memtable;
mod options;
mod record;
mod rng;
pub mod scan;
mod segment;
mod types;
mod wal;

pub use clock::{Clock, ManualClock, SystemClock};
pub use collection::CollectionHandle;
pub use engine::{Engine, RecoveryReport};
pub use error::{Error, ErrorKind, Result};
pub use filter::Filter;
pub use options::EngineOptions;
pub use rng::SplitMix64;
pub use segment::Verify;
pub use types::{
    CollectionConfig, CollectionInfo, Distance, HnswConfig, Lsn, MAX_DIM, Payload, PointId,
    PointInput, Record, ScoredPoint, ScrollPage, ScrollRequest, SearchRequest, validate_name,
};
pub use wal::{AckMode, LocalWal, MAX_RECORD_BYTES, ReplayStats, ReplayVisitor, Wal};

/// The tenant used when no tenant is given (single-tenant deployments).
pub const DEFAULT_TENANT: &str = "default";
