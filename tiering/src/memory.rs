//! In-memory backends: a [`BlobStore`] and a [`LogStore`] in RAM.
//!
//! They follow the same contract as the local directory (the conformance suite runs on both)
//! and add what a disk cannot give a test: [`MemLog::crash`] drops every log byte that was
//! written but not synced (or keeps a seeded random prefix of it, as a partial write-back
//! would), so crash-recovery tests run in-process, deterministically, thousands of times.
//! Blob puts, log creates, truncates and removes are durable when they return, as the contract
//! says, so a crash keeps them.

use std::collections::BTreeMap;
use std::ops::Range;
use std::sync::{Arc, Mutex};

use crate::blob::Blob;
use crate::error::{StoreError, StoreResult};
use crate::lock;
use crate::rng::SplitMix64;
use crate::store::{
    BlobMeta, BlobStore, ETag, LogFile, LogStore, PutMode, check_name, check_prefix, check_ranges,
};

fn location(name: &str) -> String {
    format!("memory:{name}")
}

#[derive(Debug, Default)]
struct Blobs {
    map: BTreeMap<String, (Arc<[u8]>, u64)>,
    next_version: u64,
}

/// Blobs in RAM.
#[derive(Debug, Default)]
pub struct MemStore {
    state: Mutex<Blobs>,
}

impl MemStore {
    /// An empty store.
    pub fn new() -> MemStore {
        MemStore::default()
    }

    fn get(&self, name: &str) -> StoreResult<Arc<[u8]>> {
        check_name(name)?;
        lock(&self.state)
            .map
            .get(name)
            .map(|(b, _)| Arc::clone(b))
            .ok_or_else(|| StoreError::NotFound {
                location: location(name),
            })
    }
}

fn tag(version: u64) -> ETag {
    ETag(format!("v{version}"))
}

impl BlobStore for MemStore {
    fn location(&self, name: &str) -> String {
        location(name)
    }

    fn put(&self, name: &str, bytes: &[u8], mode: PutMode) -> StoreResult<ETag> {
        check_name(name)?;
        let mut s = lock(&self.state);
        let current = s.map.get(name).map(|(_, v)| tag(*v));
        match (&mode, &current) {
            (PutMode::Create, Some(_)) => {
                return Err(StoreError::AlreadyExists {
                    location: location(name),
                });
            }
            (PutMode::Update(expected), found) if found.as_ref() != Some(expected) => {
                return Err(StoreError::Precondition {
                    location: location(name),
                    expected: expected.0.clone(),
                    found: found
                        .as_ref()
                        .map_or_else(|| "none".into(), |t| t.0.clone()),
                });
            }
            _ => {}
        }
        s.next_version += 1;
        let v = s.next_version;
        s.map.insert(name.to_string(), (Arc::from(bytes), v));
        Ok(tag(v))
    }

    fn open(&self, name: &str) -> StoreResult<Blob> {
        Ok(Blob::from_bytes(&self.get(name)?))
    }

    fn read_ranges(&self, name: &str, ranges: &[Range<u64>]) -> StoreResult<Vec<Vec<u8>>> {
        let b = self.get(name)?;
        check_ranges(&location(name), b.len() as u64, ranges)?;
        Ok(ranges
            .iter()
            .map(|r| b[r.start as usize..r.end as usize].to_vec())
            .collect())
    }

    fn head(&self, name: &str) -> StoreResult<BlobMeta> {
        check_name(name)?;
        let s = lock(&self.state);
        let (b, v) = s.map.get(name).ok_or_else(|| StoreError::NotFound {
            location: location(name),
        })?;
        Ok(BlobMeta {
            name: name.to_string(),
            size: b.len() as u64,
            e_tag: tag(*v),
        })
    }

    fn list(&self, prefix: &str) -> StoreResult<Vec<BlobMeta>> {
        check_prefix(prefix)?;
        let s = lock(&self.state);
        Ok(s.map
            .range(prefix.to_string()..)
            .take_while(|(n, _)| n.starts_with(prefix))
            .filter(|(n, _)| !n[prefix.len()..].contains('/'))
            .map(|(n, (b, v))| BlobMeta {
                name: n.clone(),
                size: b.len() as u64,
                e_tag: tag(*v),
            })
            .collect())
    }

    fn delete(&self, name: &str) -> StoreResult<()> {
        check_name(name)?;
        lock(&self.state).map.remove(name);
        Ok(())
    }
}

/// One change to a log file not yet synced.
#[derive(Debug)]
enum Pending {
    Write(usize, Vec<u8>),
    SetLen(usize),
}

/// A log file: what a reader sees (`data`), what survives a crash (`durable`), and the
/// changes between them in order. Writes may land inside the durable bytes (space reserved
/// by `allocate` is overwritten in place), so the durable image is kept whole rather than as
/// a length.
#[derive(Debug, Default)]
struct FileState {
    data: Vec<u8>,
    durable: Vec<u8>,
    pending: Vec<Pending>,
}

impl FileState {
    fn new(bytes: &[u8]) -> FileState {
        FileState {
            data: bytes.to_vec(),
            durable: bytes.to_vec(),
            pending: Vec::new(),
        }
    }

    /// Applies `p` to `image`, keeping at most `budget` bytes of a write; returns the bytes
    /// of the write kept.
    fn apply(image: &mut Vec<u8>, p: &Pending, budget: usize) -> usize {
        match p {
            Pending::Write(at, bytes) => {
                let n = bytes.len().min(budget);
                if image.len() < at + n {
                    image.resize(at + n, 0);
                }
                image[*at..at + n].copy_from_slice(&bytes[..n]);
                n
            }
            Pending::SetLen(len) => {
                image.resize(*len, 0);
                0
            }
        }
    }

    fn sync(&mut self) {
        for p in std::mem::take(&mut self.pending) {
            Self::apply(&mut self.durable, &p, usize::MAX);
        }
    }

    fn unsynced_bytes(&self) -> usize {
        self.pending
            .iter()
            .map(|p| match p {
                Pending::Write(_, b) => b.len(),
                Pending::SetLen(_) => 0,
            })
            .sum()
    }
}

#[derive(Debug)]
struct MemLogFile {
    state: Mutex<FileState>,
}

impl LogFile for MemLogFile {
    fn write_at(&self, offset: u64, bytes: &[u8]) -> StoreResult<()> {
        let mut s = lock(&self.state);
        let p = Pending::Write(offset as usize, bytes.to_vec());
        FileState::apply(&mut s.data, &p, usize::MAX);
        s.pending.push(p);
        Ok(())
    }

    fn sync(&self) -> StoreResult<()> {
        lock(&self.state).sync();
        Ok(())
    }

    fn set_len(&self, len: u64) -> StoreResult<()> {
        let mut s = lock(&self.state);
        let p = Pending::SetLen(len as usize);
        FileState::apply(&mut s.data, &p, 0);
        s.pending.push(p);
        Ok(())
    }

    fn allocate(&self, len: u64) -> StoreResult<()> {
        let mut s = lock(&self.state);
        if s.data.len() < len as usize {
            let p = Pending::SetLen(len as usize);
            FileState::apply(&mut s.data, &p, 0);
            s.pending.push(p);
        }
        Ok(())
    }
}

/// Log files in RAM, with crash simulation.
#[derive(Debug, Default)]
pub struct MemLog {
    files: Mutex<BTreeMap<String, Arc<MemLogFile>>>,
}

impl MemLog {
    /// An empty log store.
    pub fn new() -> MemLog {
        MemLog::default()
    }

    fn file(&self, name: &str) -> StoreResult<Arc<MemLogFile>> {
        check_name(name)?;
        lock(&self.files)
            .get(name)
            .cloned()
            .ok_or_else(|| StoreError::NotFound {
                location: location(name),
            })
    }

    /// Simulates a machine crash: each file keeps its synced bytes, plus — when `torn_seed` is
    /// given — a seeded random prefix of the bytes written after the last sync (a write-back
    /// that got part of the way). Handles from before the crash must not be used afterwards.
    pub fn crash(&self, torn_seed: Option<u64>) {
        let mut rng = torn_seed.map(SplitMix64::new);
        for f in lock(&self.files).values() {
            let mut s = lock(&f.state);
            let unsynced = s.unsynced_bytes();
            let mut keep = match &mut rng {
                Some(r) if unsynced > 0 => r.below(unsynced as u64 + 1) as usize,
                _ => 0,
            };
            // The changes in order, up to `keep` bytes of writes (the last one cut short).
            let pending = std::mem::take(&mut s.pending);
            for p in &pending {
                if keep == 0 {
                    break;
                }
                keep -= FileState::apply(&mut s.durable, p, keep);
            }
            s.data = s.durable.clone();
        }
    }

    /// Bytes written but not yet synced, over every file.
    pub fn unsynced_bytes(&self) -> u64 {
        lock(&self.files)
            .values()
            .map(|f| lock(&f.state).unsynced_bytes() as u64)
            .sum()
    }
}

impl LogStore for MemLog {
    fn location(&self, name: &str) -> String {
        location(name)
    }

    fn list(&self) -> StoreResult<Vec<String>> {
        Ok(lock(&self.files).keys().cloned().collect())
    }

    fn read(&self, name: &str) -> StoreResult<Vec<u8>> {
        Ok(lock(&self.file(name)?.state).data.clone())
    }

    fn len(&self, name: &str) -> StoreResult<u64> {
        Ok(lock(&self.file(name)?.state).data.len() as u64)
    }

    fn create(&self, name: &str, header: &[u8]) -> StoreResult<Arc<dyn LogFile>> {
        check_name(name)?;
        if name.contains('/') {
            return Err(StoreError::InvalidName {
                name: name.to_string(),
                why: "log file names are flat",
            });
        }
        let f = Arc::new(MemLogFile {
            state: Mutex::new(FileState::new(header)),
        });
        lock(&self.files).insert(name.to_string(), Arc::clone(&f));
        Ok(f)
    }

    fn truncate(&self, name: &str, len: u64) -> StoreResult<()> {
        let f = self.file(name)?;
        let mut s = lock(&f.state);
        s.data.resize(len as usize, 0);
        s.sync();
        s.durable.resize(len as usize, 0);
        Ok(())
    }

    fn sync_file(&self, name: &str) -> StoreResult<()> {
        self.file(name)?.sync()
    }

    fn remove(&self, name: &str) -> StoreResult<()> {
        check_name(name)?;
        lock(&self.files).remove(name);
        Ok(())
    }
}
