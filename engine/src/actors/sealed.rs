//! A written actor segment at run time: its meta (footer, sparse index, bloom — always in RAM,
//! and in the segment's meta file so a cold segment opens without a download), where its
//! blocks are (hot: the file in RAM; warm: the local file; cold: only the object store), and
//! its access statistics for the tiering policy.
//!
//! ```text
//! point read of key ─▶ bloom says absent? ─▶ no read at all
//!                  └─▶ index: the one block ─▶ hot:  a slice of the RAM copy
//!                                           ├─ warm: one positional read (io_uring / pread)
//!                                           └─ cold: one ranged GET
//!                      ─▶ block checksum ─▶ the record, or absent
//! ```
//! A tier move swaps the body under the segment's move lock; a read that raced an eviction
//! reads the cold copy (the tiered store falls back to it), and a read of a segment a
//! compaction retired (files deleted) is retried by the store on its current segments.

use std::ops::Range;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, RwLock};

use strata_tiering::policy::{Access, Tier};
use strata_tiering::{Blob, BlobStore, PutMode, TieredStore, layout};

use super::segment::{FOOTER_LEN, Footer, Meta, block_records, find};
use super::{ActorKey, ActorRecord};
use crate::engine::{Inner, lock, read, write};
use crate::error::{Error, ErrorKind, Result};
use crate::manifest::ActorSegmentEntry;
use crate::segment::Verify;

/// Where an actor segment's blocks are.
#[derive(Clone, Debug)]
pub(crate) enum ActorBody {
    /// The whole file in process RAM.
    Hot(std::sync::Arc<Blob>),
    /// The file is local: blocks are read by position.
    Warm,
    /// Only the cold store has the file: blocks are read by ranged GETs.
    Cold,
}

impl ActorBody {
    pub(crate) fn tier(&self) -> Tier {
        match self {
            ActorBody::Hot(_) => Tier::Hot,
            ActorBody::Warm => Tier::Warm,
            ActorBody::Cold => Tier::Cold,
        }
    }
}

/// One written actor segment.
#[derive(Debug)]
pub(crate) struct ActorSegment {
    pub(crate) id: u64,
    pub(crate) file_len: u64,
    pub(crate) meta: Meta,
    body: RwLock<ActorBody>,
    since: AtomicU64,
    access: Mutex<Access>,
    moving: Mutex<()>,
    retired: AtomicBool,
}

/// The meta file of an actor segment: the file's tail (index, bloom, footer).
pub(crate) fn meta_file_bytes(file: &[u8]) -> Result<Vec<u8>> {
    let len = file.len() as u64;
    let footer = Footer::range(len)
        .and_then(|r| Footer::decode(&file[r.start as usize..], len).ok())
        .ok_or_else(|| Error::corruption("an actor segment's footer is unreadable"))?;
    Ok(file[footer.meta_range().start as usize..].to_vec())
}

/// Decodes a meta file (see [`meta_file_bytes`]) of a segment of `file_len` bytes.
pub(crate) fn decode_meta_file(tail: &[u8], file_len: u64) -> std::result::Result<Meta, String> {
    let at = tail
        .len()
        .checked_sub(FOOTER_LEN)
        .ok_or("shorter than a footer")?;
    let footer = Footer::decode(&tail[at..], file_len).map_err(|e| e.to_string())?;
    let mr = footer.meta_range();
    if mr.end - mr.start != at as u64 {
        return Err("index and bloom of the wrong length".into());
    }
    Meta::decode(footer, &tail[..at]).map_err(|e| e.to_string())
}

/// Checks a whole actor segment file against `meta`: same footer, every block's checksum and
/// order.
pub(crate) fn verify_file(file: &[u8], meta: &Meta) -> std::result::Result<(), String> {
    let len = file.len() as u64;
    let fr = Footer::range(len).ok_or("shorter than a footer")?;
    let footer = Footer::decode(&file[fr.start as usize..], len).map_err(|e| e.to_string())?;
    if footer != meta.footer {
        return Err("its footer differs from the segment's meta file".into());
    }
    for r in meta.block_ranges() {
        block_records(&file[r.start as usize..r.end as usize]).map_err(|e| e.to_string())?;
    }
    Ok(())
}

impl ActorSegment {
    pub(crate) fn new(id: u64, file_len: u64, meta: Meta, body: ActorBody, now_ms: u64) -> Self {
        ActorSegment {
            id,
            file_len,
            meta,
            body: RwLock::new(body),
            since: AtomicU64::new(now_ms),
            access: Mutex::new(Access::new()),
            moving: Mutex::new(()),
            retired: AtomicBool::new(false),
        }
    }

    pub(crate) fn entry(&self) -> ActorSegmentEntry {
        let f = &self.meta.footer;
        ActorSegmentEntry {
            id: self.id,
            records: f.records,
            min_lsn: f.min_lsn,
            max_lsn: f.max_lsn,
            file_len: self.file_len,
        }
    }

    pub(crate) fn body(&self) -> ActorBody {
        read(&self.body).clone()
    }

    pub(crate) fn tier(&self) -> Tier {
        read(&self.body).tier()
    }

    pub(crate) fn set_body(&self, body: ActorBody, now_ms: u64) {
        *write(&self.body) = body;
        self.since.store(now_ms, Ordering::Release);
    }

    pub(crate) fn since(&self) -> u64 {
        self.since.load(Ordering::Acquire)
    }

    /// Counts a read now for the tiering policy.
    pub(crate) fn touch_now(&self, inner: &Inner) {
        let o = inner.opts();
        let half_life = u64::try_from(o.tiers.half_life.as_millis()).unwrap_or(u64::MAX);
        lock(&self.access).touch(o.clock.now_millis(), half_life.max(1));
    }

    pub(crate) fn access(&self) -> Access {
        *lock(&self.access)
    }

    pub(crate) fn move_lock(&self) -> MutexGuard<'_, ()> {
        lock(&self.moving)
    }

    pub(crate) fn is_moving(&self) -> bool {
        matches!(
            self.moving.try_lock(),
            Err(std::sync::TryLockError::WouldBlock)
        )
    }

    pub(crate) fn retire(&self) {
        self.retired.store(true, Ordering::Release);
    }

    pub(crate) fn is_retired(&self) -> bool {
        self.retired.load(Ordering::Acquire)
    }

    /// Reads the bytes of `ranges` (blocks) from wherever the segment is, counting the read
    /// by tier. One request for all of them: a slice copy hot, one batched positional read
    /// warm, one ranged GET per range cold (coalesced by the object store).
    pub(crate) fn read_ranges(
        &self,
        inner: &Inner,
        ranges: &[Range<u64>],
    ) -> Result<Option<Vec<Vec<u8>>>> {
        let name = layout::segment(self.id);
        let body = self.body();
        let tier = body.tier();
        inner.actor_counters().reads[crate::tiers::tier_index(tier)]
            .fetch_add(1, Ordering::Relaxed);
        metrics::counter!("strata_actor_segment_reads_total", "tier" => crate::tiers::tier_name(tier))
            .increment(1);
        let got = match body {
            ActorBody::Hot(blob) => {
                let b = blob.as_bytes();
                return ranges
                    .iter()
                    .map(|r| {
                        b.get(r.start as usize..r.end as usize)
                            .map(<[u8]>::to_vec)
                            .ok_or_else(|| {
                                Error::corruption(format!(
                                    "actor segment {}: a block lies outside the file",
                                    self.id
                                ))
                            })
                    })
                    .collect::<Result<Vec<_>>>()
                    .map(Some);
            }
            // The tiered store falls back to the cold copy when an eviction won the race.
            ActorBody::Warm => inner.blobs().read_ranges(&name, ranges),
            ActorBody::Cold => match inner.tiered() {
                Some(t) => t.read_cold(&name, ranges),
                None => {
                    return Err(Error::new(
                        ErrorKind::Unavailable,
                        format!(
                            "actor segment {} is in the cold tier but no cold store is configured",
                            self.id
                        ),
                    ));
                }
            },
        };
        match got {
            Ok(v) => {
                let whole = v.len() == ranges.len()
                    && v.iter()
                        .zip(ranges)
                        .all(|(b, r)| b.len() as u64 == r.end - r.start);
                if !whole {
                    return Err(Error::new(
                        ErrorKind::Unavailable,
                        format!(
                            "reading actor segment {}: the store answered other lengths than asked",
                            self.id
                        ),
                    ));
                }
                Ok(Some(v))
            }
            Err(e) if e.is_not_found() && self.is_retired() => Ok(None),
            Err(e) => Err(Error::store("reading an actor segment", e)),
        }
    }

    /// The record of `key` in this segment (a tombstone or an expired one included), one
    /// block read at most; `Ok(Err(()))` when the segment is gone (a compaction retired it).
    pub(crate) fn get(
        &self,
        inner: &Inner,
        key: &ActorKey,
    ) -> Result<std::result::Result<Option<ActorRecord>, ()>> {
        let Some(range) = self.meta.block_for(key) else {
            return Ok(Ok(None));
        };
        self.touch_now(inner);
        let Some(mut blocks) = self.read_ranges(inner, std::slice::from_ref(&range))? else {
            return Ok(Err(()));
        };
        let block = blocks.pop().unwrap_or_default();
        find(&block, key)
            .map(Ok)
            .map_err(|e| self.corrupt(&range, e))
    }

    /// The record of `key` if answering needs no I/O: `Some(None)` when the bloom filter or the
    /// index rules the key out, `Some(record)` from the RAM copy of a hot segment; `None` when a
    /// warm or cold block must be read.
    pub(crate) fn get_resident(
        &self,
        inner: &Inner,
        key: &ActorKey,
    ) -> Option<Result<Option<ActorRecord>>> {
        let range = match self.meta.block_for(key) {
            None => return Some(Ok(None)),
            Some(r) => r,
        };
        let ActorBody::Hot(blob) = self.body() else {
            return None;
        };
        self.touch_now(inner);
        inner.actor_counters().reads[0].fetch_add(1, Ordering::Relaxed);
        metrics::counter!("strata_actor_segment_reads_total", "tier" => "hot").increment(1);
        let Some(block) = blob
            .as_bytes()
            .get(range.start as usize..range.end as usize)
        else {
            return Some(Err(Error::corruption(format!(
                "actor segment {}: a block lies outside the file",
                self.id
            ))));
        };
        Some(find(block, key).map_err(|e| self.corrupt(&range, e)))
    }

    /// Every record of the blocks from the one that may hold `from` on (all blocks when
    /// `None`), read `batch` blocks at a time by `next` calls of the returned cursor.
    pub(crate) fn cursor(&self, from: Option<&ActorKey>) -> SegmentCursor {
        let ranges: Vec<Range<u64>> = self.meta.block_ranges().collect();
        let first = match from {
            None => 0,
            Some(k) => self.meta.first_block_at_or_before(k),
        };
        SegmentCursor {
            ranges,
            next: first,
            buffered: std::collections::VecDeque::new(),
        }
    }

    pub(crate) fn corrupt(&self, range: &Range<u64>, e: crate::codec::DecodeError) -> Error {
        Error::corruption(format!(
            "actor segment {} is corrupt in the block at {}..{}: {} (at {})",
            self.id, range.start, range.end, e.what, e.offset
        ))
    }
}

/// Reads a segment's records in key order, a few blocks per read.
pub(crate) struct SegmentCursor {
    ranges: Vec<Range<u64>>,
    next: usize,
    buffered: std::collections::VecDeque<ActorRecord>,
}

/// Blocks a cursor reads per request.
const CURSOR_BLOCKS: usize = 4;

impl SegmentCursor {
    /// The next record, `Ok(Err(()))` when the segment is gone (retired).
    pub(crate) fn next(
        &mut self,
        inner: &Inner,
        seg: &ActorSegment,
    ) -> Result<std::result::Result<Option<ActorRecord>, ()>> {
        while self.buffered.is_empty() {
            if self.next >= self.ranges.len() {
                return Ok(Ok(None));
            }
            let end = (self.next + CURSOR_BLOCKS).min(self.ranges.len());
            let want = &self.ranges[self.next..end];
            let Some(blocks) = seg.read_ranges(inner, want)? else {
                return Ok(Err(()));
            };
            for (b, r) in blocks.iter().zip(want) {
                self.buffered
                    .extend(block_records(b).map_err(|e| seg.corrupt(r, e))?);
            }
            self.next = end;
        }
        Ok(Ok(self.buffered.pop_front()))
    }
}

/// Writes an actor segment file and its meta file and returns the segment, warm (the file is
/// local; with a cold tier it is also uploaded and verified before this returns). Ids are never
/// reused, so an overwrite only replaces this segment's own failed attempt.
pub(crate) fn write_segment(inner: &Inner, id: u64, bytes: &[u8]) -> Result<ActorSegment> {
    let name = layout::segment(id);
    let tail = meta_file_bytes(bytes)?;
    let meta = decode_meta_file(&tail, bytes.len() as u64).map_err(|why| {
        Error::corruption(format!("a fresh actor segment's meta is refused: {why}"))
    })?;
    let blobs = inner.blobs();
    blobs
        .put(&name, bytes, PutMode::Overwrite)
        .map_err(|e| Error::store("writing an actor segment", e))?;
    let back = blobs
        .open(&name)
        .map_err(|e| Error::store("opening an actor segment just written", e))?;
    verify_file(back.as_bytes(), &meta).map_err(|why| {
        Error::corruption(format!(
            "actor segment {} rejected after write: {why}",
            blobs.location(&name)
        ))
    })?;
    drop(back);
    blobs
        .put(&layout::segment_meta(id), &tail, PutMode::Overwrite)
        .map_err(|e| Error::store("writing an actor segment meta file", e))?;
    Ok(ActorSegment::new(
        id,
        bytes.len() as u64,
        meta,
        ActorBody::Warm,
        inner.opts().clock.now_millis(),
    ))
}

/// Opens actor segment `s` of store `store_id` at start-up: its meta file (fetched from the
/// cold store if only there; rebuilt from the segment when missing or damaged — it is derived
/// data), warm if the segment file is local (checked whole when `verify` is full), else cold.
pub(crate) fn open(
    blobs: &dyn BlobStore,
    tiered: Option<&TieredStore>,
    s: &ActorSegmentEntry,
    store_id: u64,
    verify: Verify,
    read_only: bool,
) -> Result<ActorSegment> {
    let name = layout::segment(s.id);
    let meta_name = layout::segment_meta(s.id);
    let local = crate::engine::is_local(blobs, tiered, s.id)
        .map_err(|e| Error::store("looking for an actor segment", e))?;
    let path = blobs.location(&name);
    let missing =
        || Error::corruption(format!("actor segment {path} named in MANIFEST is missing"));
    let file = match local {
        true => Some(blobs.open(&name).map_err(|e| match e.is_not_found() {
            true => missing(),
            false => Error::store("opening an actor segment", e),
        })?),
        false => None,
    };
    if let Some(f) = &file
        && f.len() as u64 != s.file_len
    {
        return Err(Error::corruption(format!(
            "actor segment {path} is {} bytes, MANIFEST records {}",
            f.len(),
            s.file_len
        )));
    }
    let meta = match blobs.open(&meta_name) {
        Ok(b) => match decode_meta_file(b.as_bytes(), s.file_len) {
            Ok(m) => Some(m),
            Err(why) => {
                tracing::warn!(file = %blobs.location(&meta_name), error = %why, "damaged actor segment meta file; rebuilding it from the segment");
                None
            }
        },
        Err(e) if e.is_not_found() => None,
        Err(e) => return Err(Error::store("opening an actor segment meta file", e)),
    };
    let meta = match meta {
        Some(m) => m,
        None => {
            let fetched;
            let whole = match &file {
                Some(f) => f,
                None => {
                    fetched = blobs.open(&name).map_err(|e| match e.is_not_found() {
                        true => missing(),
                        false => Error::store("opening an actor segment", e),
                    })?;
                    &fetched
                }
            };
            let tail = meta_file_bytes(whole.as_bytes())
                .map_err(|e| Error::corruption(format!("actor segment {path}: {e}")))?;
            let m = decode_meta_file(&tail, s.file_len)
                .map_err(|why| Error::corruption(format!("actor segment {path}: {why}")))?;
            let written = match (read_only, tiered) {
                (true, _) => Ok(()),
                (false, Some(t)) => t.replace_derived(&meta_name, &tail),
                (false, None) => blobs.put(&meta_name, &tail, PutMode::Overwrite).map(|_| ()),
            };
            written.map_err(|e| Error::store("writing an actor segment meta file", e))?;
            m
        }
    };
    let f = &meta.footer;
    if f.segment_id != s.id
        || f.store_id != store_id
        || f.records != s.records
        || f.min_lsn != s.min_lsn
        || f.max_lsn != s.max_lsn
    {
        return Err(Error::corruption(format!(
            "actor segment {path} does not match MANIFEST (id, store, records or LSN range)"
        )));
    }
    if let Some(f) = &file
        && verify == Verify::Full
    {
        verify_file(f.as_bytes(), &meta)
            .map_err(|why| Error::corruption(format!("actor segment {path}: {why}")))?;
    }
    let body = match local {
        true => ActorBody::Warm,
        false => ActorBody::Cold,
    };
    Ok(ActorSegment::new(s.id, s.file_len, meta, body, 0))
}
