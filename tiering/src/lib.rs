//! # strata-tiering
//!
//! Byte-level storage for Strata: the only code that touches files or objects. It moves and
//! serves immutable blobs and log files and knows nothing of vectors or actors; the engine
//! interprets the bytes.
//!
//! ```text
//!   engine ── put / open / list / delete ──▶ dyn BlobStore ──▶ LocalDir   (files, mmap, pread)
//!          │                                              ├─▶ MemStore   (RAM)
//!          │                                              └─▶ FaultyStore(any) — fails on purpose
//!          └─ create / write_at / sync / read ─▶ dyn LogStore ─▶ LocalLog · MemLog · FaultyLog
//! ```
//!
//! - [`BlobStore`]: atomic durable put (overwrite, create-only, if-match), open as a [`Blob`]
//!   (mapped or aligned heap), batched range reads, list, delete.
//! - [`LogStore`] / [`LogFile`]: the WAL's device — create, append at an offset, sync, cut,
//!   list, read, remove.
//! - [`layout`]: the one module that names every file and object.
//! - Implementations: the local directory ([`Storage::open_local`]: today's files), RAM
//!   ([`MemStorage`], with crash simulation), and the fault-injecting decorators
//!   ([`Faults`], [`FaultyStore`], [`FaultyLog`]). One conformance suite runs against all.
//!
//! ```
//! use strata_tiering::{BlobStore, MemStorage, PutMode};
//!
//! let storage = MemStorage::new().storage();
//! storage.blobs.put("segments/1.seg", b"bytes", PutMode::Create)?;
//! assert_eq!(storage.blobs.open("segments/1.seg")?.as_bytes(), b"bytes");
//! assert!(storage.blobs.put("segments/1.seg", b"again", PutMode::Create).is_err());
//! # Ok::<(), strata_tiering::StoreError>(())
//! ```
//!
//! - [`io`]: positional batched reads of local files — io_uring (`depth` reads in flight),
//!   `pread`, or a mapping — behind [`BatchRead`], chosen once per process by [`IoMode`].
//! - The cold tier: [`ObjectBlobStore`] over any `object_store`, and [`TieredStore`] (local
//!   cache over the cold copy) with the pure [`policy`] deciding residency.

mod blob;
mod error;
mod fault;
pub mod io;
pub mod layout;
mod local;
mod memory;
mod object;
mod object_fault;
pub mod policy;
mod rng;
mod storage;
mod store;
#[doc(hidden)]
pub mod testing;
mod tiered;

/// Locks `m`, ignoring poisoning: every structure behind a lock here stays consistent across a
/// panic (a panic is caught and reported higher up; the data must stay usable).
pub(crate) fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[cfg(test)]
mod conformance;

pub use blob::Blob;
pub use error::{StoreError, StoreResult};
pub use fault::{Fault, FaultOp, FaultRule, Faults, FaultyLog, FaultyStore, Trigger};
pub use io::{BatchRead, Io, IoBackend, IoMode, ReadReq};
pub use local::{LocalDir, LocalLog, Replace, write_file_atomic};
pub use memory::{MemLog, MemStore};
pub use object::{ColdConfig, ColdConfigError, ObjectBlobStore};
pub use object_fault::{FaultyObjectStore, ObjectFaults};
/// The `object_store` crate this one builds on (to wrap or build stores for [`ObjectBlobStore`]).
pub use object_store;
pub use rng::SplitMix64;
pub use storage::{MemStorage, Storage};
pub use store::{BlobMeta, BlobStore, ETag, LogFile, LogStore, PartSink, PutMode};
pub use tiered::{GcReport, ManifestRefs, TieredOptions, TieredStore};
