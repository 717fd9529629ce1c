//! # strata-tiering
//!
//! Byte-level storage for Strata. This crate moves and serves immutable files ("blobs") and knows
//! nothing of vectors or actors: the engine interprets the bytes.
//!
//! What it has today:
//! - [`fs`]: crash-safe local files (`write_atomic`: temp file, fsync, rename, fsync directory).
//! - [`Blob`]: an immutable byte buffer, either memory-mapped from a file (zero-copy, O(1) open)
//!   or held on the heap with an alignment fit for casting to `f32`/`u32`/`u64` slices.
//! - [`PositionalRead`]: the small read trait every warm/cold backend implements, with two
//!   implementations ([`MmapFile`], [`PreadFile`]) sharing one conformance suite.
//!
//! ```text
//!   engine ──bytes──▶ fs::write_atomic ──▶ dir/name (durable)
//!   engine ◀─&[u8]─── Blob::map(dir/name)   (mmap, no decode)
//! ```
//!
//! Later issues add the io_uring reader, object stores (`object_store`), tier residency, the pure
//! policy engine and the mover.

mod blob;
pub mod fs;
mod read;

pub use blob::Blob;
pub use read::{MmapFile, PositionalRead, PreadFile};
