//! Flush and compaction of an actor store.
//!
//! ```text
//! flush:   [maintenance lock] seal the memtable (gate exclusive, milliseconds) → for each
//!          sealed table, oldest first: encode (sorted records, blocks, index, bloom) → write
//!          file + meta file (uploaded and verified first when a cold tier is configured)
//!          → [manifest lock] swap the table for the segment, flushed LSN = its seal LSN
//!          → publish → release WAL files the published flushed LSNs cover
//! compact: [maintenance lock] pick the newest run of segments (size-tiered: an older segment
//!          joins while it is at most twice the run so far) once there are COMPACT_AT or more
//!          → merge newest version per key (a run that reaches the oldest segment drops
//!          tombstones and expired states: nothing older can resurface) → write → [manifest
//!          lock] swap the run for the output → publish → retire the inputs (deleted after
//!          that publish succeeded; reads still on them retry on the new tables)
//! ```
//! A failed write leaves the sealed table readable in RAM and its WAL records unreleased; the
//! next flush writes it first. A crash leaves a manifest naming the inputs or the output,
//! never neither; files it does not name are removed at the next start.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::ActorRecord;
use super::sealed::{self, ActorSegment};
use super::segment::encode;
use super::store::{ActorStore, Tables};
use crate::engine::{Inner, ManifestChange};
use crate::error::{Error, ErrorKind, Result};
use crate::maintenance::refuse_read_only;

/// A store compacts once it has this many segments.
pub(crate) const COMPACT_AT: usize = 4;

/// True when the store's memtable is due for a flush (bytes or age, as for collections), or
/// a sealed table waits to be written.
pub(crate) fn needs_flush(inner: &Inner, store: &ActorStore) -> bool {
    let (bytes, first) = store.memtable_stats();
    let o = inner.opts();
    !store.tables().frozen.is_empty()
        || (bytes > 0
            && (bytes >= o.memtable_max_bytes as u64
                || first.is_some_and(|t| {
                    o.clock.now_millis().saturating_sub(t)
                        >= u64::try_from(o.memtable_max_age.as_millis()).unwrap_or(u64::MAX)
                })))
}

/// Seals and writes the store's memtable (and any table an earlier flush sealed but could not
/// write). False if there was nothing to do.
pub(crate) fn flush(inner: &Inner, store: &ActorStore) -> Result<bool> {
    refuse_read_only(inner)?;
    let _one = store.maintenance_lock();
    inner.republish_if_failed()?;
    store.seal(inner.wal());
    let mut wrote = false;
    while let Some(frozen) = store.tables().frozen.last().cloned() {
        let records: Vec<ActorRecord> = frozen.map.values().cloned().collect();
        let id = inner.new_segment_id();
        let bytes = encode(id, store.id, &records);
        let seg = Arc::new(sealed::write_segment(inner, id, &bytes)?);
        let published = {
            let mut m = inner.lock_manifest();
            let mut t: Tables = (*store.tables()).clone();
            t.frozen.retain(|f| !Arc::ptr_eq(f, &frozen));
            t.segments.insert(0, seg);
            store.set_tables(t);
            store.set_flushed(frozen.seal_lsn);
            // On failure the segment is installed and persisted: the retried publish names it
            // together with the flushed LSN.
            m.publish(ManifestChange::None)
        };
        inner.note_flush();
        published?;
        wrote = true;
        tracing::debug!(
            actor_type = store.actor_type,
            seal_lsn = frozen.seal_lsn,
            "actor store flushed"
        );
    }
    if wrote {
        inner.release_wal_logged();
    }
    Ok(wrote)
}

/// The newest run of segments to merge now (empty: none).
pub(crate) fn plan(segs: &[Arc<ActorSegment>], force: bool) -> usize {
    if segs.len() < 2 || (!force && segs.len() < COMPACT_AT) {
        return 0;
    }
    if force {
        return segs.len();
    }
    let mut total = segs[0].file_len;
    let mut n = 1;
    while n < segs.len() && (n < 2 || segs[n].file_len <= total.saturating_mul(2)) {
        total += segs[n].file_len;
        n += 1;
    }
    n
}

/// Merges the newest run of segments (all of them when `full`). False if there was nothing to
/// merge.
pub(crate) fn compact(inner: &Inner, store: &ActorStore, full: bool) -> Result<bool> {
    refuse_read_only(inner)?;
    let _one = store.maintenance_lock();
    let segs = store.segments();
    let n = plan(&segs, full);
    if n == 0 {
        return Ok(false);
    }
    let run = &segs[..n];
    let reaches_oldest = n == segs.len();
    let now = inner.opts().clock.now_millis();
    // Newest segment first: the first version of a key seen is the newest.
    let mut merged: BTreeMap<super::ActorKey, ActorRecord> = BTreeMap::new();
    for s in run {
        let mut cursor = s.cursor(None);
        while let Some(r) = cursor.next(inner, s)?.map_err(|()| {
            Error::new(
                ErrorKind::Internal,
                format!(
                    "actor segment {} was removed while its store compacted",
                    s.id
                ),
            )
        })? {
            merged.entry(r.key.clone()).or_insert(r);
        }
    }
    let records: Vec<ActorRecord> = merged
        .into_values()
        .filter(|r| !(reaches_oldest && r.absent_at(now)))
        .collect();
    let output = match records.is_empty() {
        true => None,
        false => {
            let id = inner.new_segment_id();
            Some(Arc::new(sealed::write_segment(
                inner,
                id,
                &encode(id, store.id, &records),
            )?))
        }
    };
    let published = {
        let mut m = inner.lock_manifest();
        let mut t: Tables = (*store.tables()).clone();
        let at = t
            .segments
            .iter()
            .position(|s| Arc::ptr_eq(s, &run[0]))
            .unwrap_or(0);
        t.segments
            .retain(|s| !run.iter().any(|r| Arc::ptr_eq(r, s)));
        if let Some(o) = &output {
            t.segments.insert(at, Arc::clone(o));
        }
        store.set_tables(t);
        for s in run {
            s.retire();
        }
        m.retire(run.iter().map(|s| s.id));
        m.publish(ManifestChange::None)
    };
    inner.note_compaction();
    published?;
    tracing::debug!(
        actor_type = store.actor_type,
        inputs = n,
        records = records.len(),
        "actor store compacted"
    );
    Ok(true)
}
