//! One actor store: the states of one actor type of a tenant — a memtable (an ordered map in
//! RAM), sealed memtables waiting to be written, and actor segments (newest first) — with key
//! stripes that make a condition check and its apply one step in WAL order.
//!
//! ```text
//! write(actor, entries) → stripes of the keys (sorted) → check conditions against the newest
//!   states (memtable, sealed, segments newest first) → [gate, shared] WAL append (op 5)
//!   → group-commit fsync → apply to the memtable → unlock → LSN
//! read(key) → memtable → sealed memtables → segments newest first (bloom, one block read)
//! seal (flush) → [gate, exclusive] memtable → sealed, seal LSN = the WAL's last LSN (every
//!   record of this store up to it is applied: appends hold the gate shared until applied)
//! ```
//! Flush, compaction and the tier moves of actor segments are in `flush.rs` and `tiers.rs`.

use std::collections::{BTreeMap, HashMap};
use std::ops::Bound;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock, RwLockReadGuard};

use strata_tiering::policy::{Hint, Tier};

use super::sealed::{ActorSegment, SegmentCursor};
use super::txn::{ActorTxn, Condition, TxnOp};
use super::{ActorKey, ActorRecord};
use crate::engine::{Inner, lock, read, write};
use crate::error::{Error, ErrorKind, Result};
use crate::manifest::ActorStoreEntry;
use crate::types::Lsn;

/// Key stripes per store: conditional writes to keys of different stripes never wait for each
/// other (they share the group-commit fsync).
const STRIPES: usize = 4096;

/// Times a read restarts when a compaction replaced the segments it was reading.
const READ_ATTEMPTS: usize = 16;

/// A sealed memtable: written to a segment by the next flush.
#[derive(Debug)]
pub(crate) struct Frozen {
    pub(crate) map: BTreeMap<ActorKey, ActorRecord>,
    /// Every record of the store with an LSN up to this is here or in older tables.
    pub(crate) seal_lsn: Lsn,
}

/// The immutable tables of a store, swapped whole (a reader holds the set it started with).
#[derive(Clone, Debug, Default)]
pub(crate) struct Tables {
    /// Sealed memtables not written yet, newest first.
    pub(crate) frozen: Vec<Arc<Frozen>>,
    /// Written segments, newest first (their LSN ranges do not overlap).
    pub(crate) segments: Vec<Arc<ActorSegment>>,
}

#[derive(Debug)]
pub(crate) struct ActorStore {
    pub(crate) id: u64,
    pub(crate) tenant: String,
    pub(crate) actor_type: String,
    pub(crate) created_lsn: Lsn,
    hint: Mutex<Hint>,
    flushed_lsn: AtomicU64,
    mem: RwLock<BTreeMap<ActorKey, ActorRecord>>,
    /// Approximate bytes of the memtable, and when its oldest record was applied (ms; 0: empty).
    mem_bytes: AtomicU64,
    first_write_ms: AtomicU64,
    tables: RwLock<Arc<Tables>>,
    /// Bumped by every change of `tables` and every seal: a list restarts when it moves.
    generation: AtomicU64,
    /// Writers hold it shared from their WAL append to their apply; a seal takes it exclusive.
    gate: RwLock<()>,
    /// One flush or compaction of this store at a time.
    maintenance: Mutex<()>,
    stripes: Vec<Mutex<()>>,
    /// Writes logged but not yet applied (async commits, `handle.rs`), per key by LSN.
    /// Conditions see the newest (their writers released the key's stripe); readers see none
    /// (a state is visible once durable and applied). An entry is applied exactly once, under
    /// the memtable lock: by its writer once durable ([`ActorStore::finish_pending`]), or by a
    /// seal that finds it durable first — so an older write can never land in a memtable after
    /// a newer one of the same key was sealed.
    pending: Mutex<HashMap<ActorKey, BTreeMap<Lsn, ActorRecord>>>,
}

/// Why a transaction's condition failed: the state and its current version (`None`: absent).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Conflict {
    pub(crate) state: String,
    pub(crate) current: Option<Lsn>,
}

/// Bytes a record costs in the memtable (for the flush trigger).
fn record_bytes(r: &ActorRecord) -> u64 {
    (64 + r.key.actor.len()
        + r.key.state.len()
        + r.value
            .as_ref()
            .map_or(0, |v| v.bytes.len() + v.content_type.len())) as u64
}

/// The store's statistics: per tier (hot, warm, cold) states and bytes, and segments.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct StoreStats {
    pub(crate) states: [u64; 3],
    pub(crate) bytes: [u64; 3],
    pub(crate) segments: [u64; 3],
}

impl ActorStore {
    pub(crate) fn new(entry: &ActorStoreEntry, segments: Vec<Arc<ActorSegment>>) -> ActorStore {
        ActorStore {
            id: entry.id,
            tenant: entry.tenant.clone(),
            actor_type: entry.actor_type.clone(),
            created_lsn: entry.created_lsn,
            hint: Mutex::new(entry.hint),
            flushed_lsn: AtomicU64::new(entry.flushed_lsn),
            mem: RwLock::new(BTreeMap::new()),
            mem_bytes: AtomicU64::new(0),
            first_write_ms: AtomicU64::new(0),
            tables: RwLock::new(Arc::new(Tables {
                frozen: Vec::new(),
                segments,
            })),
            generation: AtomicU64::new(0),
            gate: RwLock::new(()),
            maintenance: Mutex::new(()),
            stripes: (0..STRIPES).map(|_| Mutex::new(())).collect(),
            pending: Mutex::new(HashMap::new()),
        }
    }

    pub(crate) fn manifest_entry(&self) -> ActorStoreEntry {
        ActorStoreEntry {
            id: self.id,
            tenant: self.tenant.clone(),
            actor_type: self.actor_type.clone(),
            created_lsn: self.created_lsn,
            flushed_lsn: self.flushed_lsn(),
            hint: self.hint(),
            segments: self.tables().segments.iter().map(|s| s.entry()).collect(),
        }
    }

    pub(crate) fn flushed_lsn(&self) -> Lsn {
        self.flushed_lsn.load(Ordering::Acquire)
    }

    pub(crate) fn hint(&self) -> Hint {
        *lock(&self.hint)
    }

    /// Sets the tier hint (the caller holds the manifest lock and publishes).
    pub(crate) fn set_hint(&self, h: Hint) -> Hint {
        std::mem::replace(&mut *lock(&self.hint), h)
    }

    pub(crate) fn tables(&self) -> Arc<Tables> {
        Arc::clone(&read(&self.tables))
    }

    /// Replaces the tables (the caller holds the manifest lock and the maintenance lock).
    pub(crate) fn set_tables(&self, t: Tables) {
        *write(&self.tables) = Arc::new(t);
        self.generation.fetch_add(1, Ordering::AcqRel);
    }

    pub(crate) fn set_flushed(&self, lsn: Lsn) {
        self.flushed_lsn.fetch_max(lsn, Ordering::AcqRel);
    }

    pub(crate) fn maintenance_lock(&self) -> MutexGuard<'_, ()> {
        lock(&self.maintenance)
    }

    /// Held shared by a writer from its WAL append to its apply.
    pub(crate) fn gate(&self) -> RwLockReadGuard<'_, ()> {
        read(&self.gate)
    }

    /// Locks the stripes of `keys` (each once, in order: no deadlock between transactions).
    pub(crate) fn lock_keys(&self, keys: &[ActorKey]) -> Vec<MutexGuard<'_, ()>> {
        stripe_indices(keys)
            .into_iter()
            .map(|i| lock(&self.stripes[i]))
            .collect()
    }

    /// The stripes of `keys` if none is held now (`None`: one is; the caller goes the blocking
    /// way).
    pub(crate) fn try_lock_keys(&self, keys: &[ActorKey]) -> Option<Vec<MutexGuard<'_, ()>>> {
        stripe_indices(keys)
            .into_iter()
            .map(|i| match self.stripes[i].try_lock() {
                Ok(g) => Some(g),
                Err(std::sync::TryLockError::Poisoned(p)) => Some(p.into_inner()),
                Err(std::sync::TryLockError::WouldBlock) => None,
            })
            .collect()
    }

    /// The gate shared, if no seal holds it now.
    pub(crate) fn try_gate(&self) -> Option<RwLockReadGuard<'_, ()>> {
        match self.gate.try_read() {
            Ok(g) => Some(g),
            Err(std::sync::TryLockError::Poisoned(p)) => Some(p.into_inner()),
            Err(std::sync::TryLockError::WouldBlock) => None,
        }
    }

    /// Records `txn`, logged at `lsn` and not yet durable, for the conditions of later writers
    /// (the caller holds its keys' stripes and the gate).
    /// Returns its keys (what finishing or forgetting it needs).
    pub(crate) fn add_pending(&self, lsn: Lsn, txn: ActorTxn) -> Vec<ActorKey> {
        let mut p = lock(&self.pending);
        records_of(lsn, txn)
            .into_iter()
            .map(|rec| {
                let key = rec.key.clone();
                p.entry(key.clone()).or_default().insert(lsn, rec);
                key
            })
            .collect()
    }

    /// Applies `txn`, logged at `lsn` and now durable, unless a seal already did (then it is
    /// in a sealed table with whatever superseded it): the memtable lock is taken before the
    /// pending map's, as a seal takes them.
    pub(crate) fn finish_pending(&self, lsn: Lsn, keys: &[ActorKey], now_ms: u64) {
        let mut mem = write(&self.mem);
        let mut p = lock(&self.pending);
        let mut added = 0;
        for key in keys {
            let Some(by_lsn) = p.get_mut(key) else {
                continue;
            };
            let Some(rec) = by_lsn.remove(&lsn) else {
                continue;
            };
            // Older pending writes of the key are durable too and shadowed now: a condition
            // must not find them.
            by_lsn.retain(|l, _| *l > lsn);
            if by_lsn.is_empty() {
                p.remove(key);
            }
            added += insert_newer(&mut mem, rec);
        }
        drop(p);
        drop(mem);
        self.note_applied(added, now_ms);
    }

    /// Forgets the pending records at `lsn` of `keys` (its sync failed: never applied).
    pub(crate) fn drop_pending(&self, lsn: Lsn, keys: &[ActorKey]) {
        let mut p = lock(&self.pending);
        for key in keys {
            if let Some(by_lsn) = p.get_mut(key) {
                by_lsn.remove(&lsn);
                if by_lsn.is_empty() {
                    p.remove(key);
                }
            }
        }
    }

    /// The newest pending record of `key`, if any.
    fn pending_of(&self, key: &ActorKey) -> Option<ActorRecord> {
        lock(&self.pending)
            .get(key)
            .and_then(|m| m.last_key_value())
            .map(|(_, r)| r.clone())
    }

    /// The newest record of `key` (a tombstone or an expired state included): the memtable,
    /// then sealed memtables, then segments newest first (at most one block read each, most
    /// spared by their bloom filters).
    pub(crate) fn newest(&self, inner: &Inner, key: &ActorKey) -> Result<Option<ActorRecord>> {
        if let Some(r) = read(&self.mem).get(key) {
            return Ok(Some(r.clone()));
        }
        // Tables are read after the memtable: a seal in between moved the record into them.
        'attempt: for _ in 0..READ_ATTEMPTS {
            let t = self.tables();
            for f in &t.frozen {
                if let Some(r) = f.map.get(key) {
                    return Ok(Some(r.clone()));
                }
            }
            for s in &t.segments {
                match s.get(inner, key)? {
                    Ok(Some(r)) => return Ok(Some(r)),
                    Ok(None) => {}
                    Err(()) => continue 'attempt,
                }
            }
            return Ok(None);
        }
        Err(Error::new(
            ErrorKind::Unavailable,
            "actor segments kept being replaced during the read; try again",
        ))
    }

    /// [`ActorStore::newest`] when it needs no I/O (the memtable, sealed tables, hot segments
    /// and bloom filters answer); `None` when a warm or cold block must be read.
    pub(crate) fn newest_resident(
        &self,
        inner: &Inner,
        key: &ActorKey,
    ) -> Option<Result<Option<ActorRecord>>> {
        if let Some(r) = read(&self.mem).get(key) {
            return Some(Ok(Some(r.clone())));
        }
        let t = self.tables();
        for f in &t.frozen {
            if let Some(r) = f.map.get(key) {
                return Some(Ok(Some(r.clone())));
            }
        }
        for s in &t.segments {
            match s.get_resident(inner, key)? {
                Ok(None) => {}
                other => return Some(other),
            }
        }
        Some(Ok(None))
    }

    /// Checks every condition of `txn` against the newest states at `now_ms` (the caller holds
    /// the stripes of its keys) and answers, per entry, whether its state exists (is live) —
    /// read only where needed: a condition, a delete, or `report` (reads of cold states cost a
    /// ranged GET, so blind puts skip it). The outer error is a failed read.
    pub(crate) fn check(
        &self,
        inner: &Inner,
        txn: &ActorTxn,
        now_ms: u64,
        report: bool,
    ) -> Result<std::result::Result<Vec<Option<bool>>, Conflict>> {
        self.check_with(txn, now_ms, report, |k| Some(self.newest(inner, k)))
            .unwrap_or_else(|| Err(Error::new(ErrorKind::Internal, "a blocking read declined")))
    }

    /// [`ActorStore::check`] when it needs no I/O (`None`: a warm or cold block must be read).
    pub(crate) fn check_resident(
        &self,
        inner: &Inner,
        txn: &ActorTxn,
        now_ms: u64,
        report: bool,
    ) -> Option<Result<std::result::Result<Vec<Option<bool>>, Conflict>>> {
        self.check_with(txn, now_ms, report, |k| self.newest_resident(inner, k))
    }

    /// The check, reading states with `newest` (`None` from it: cannot answer now). Pending
    /// writes come first: their writers released the keys' stripes before they were durable.
    fn check_with(
        &self,
        txn: &ActorTxn,
        now_ms: u64,
        report: bool,
        newest: impl Fn(&ActorKey) -> Option<Result<Option<ActorRecord>>>,
    ) -> Option<Result<std::result::Result<Vec<Option<bool>>, Conflict>>> {
        let mut existed = Vec::with_capacity(txn.entries.len());
        for e in &txn.entries {
            if e.condition == Condition::None && !report && !matches!(e.op, TxnOp::Delete) {
                existed.push(None);
                continue;
            }
            let key = ActorKey {
                actor: txn.actor.clone(),
                state: e.state.clone(),
            };
            let found = match self.pending_of(&key) {
                Some(p) => Some(p),
                None => match newest(&key)? {
                    Ok(r) => r,
                    Err(e) => return Some(Err(e)),
                },
            };
            let current = found.filter(|r| !r.absent_at(now_ms)).map(|r| r.version);
            let ok = match e.condition {
                Condition::None => true,
                Condition::IfMatch(v) => current == Some(v),
                Condition::IfNoneMatch => current.is_none(),
                Condition::IfExists => current.is_some(),
            };
            if !ok {
                return Some(Ok(Err(Conflict {
                    state: e.state.clone(),
                    current,
                })));
            }
            existed.push(Some(current.is_some()));
        }
        Some(Ok(Ok(existed)))
    }

    /// Applies a logged transaction at `lsn` to the memtable (replay: records of a newer LSN
    /// are kept).
    pub(crate) fn apply(&self, lsn: Lsn, txn: ActorTxn, now_ms: u64) {
        let mut mem = write(&self.mem);
        let records = records_of(lsn, txn);
        {
            // Pending writes of these keys older than `lsn` are durable (this one is) and
            // shadowed by it: conditions must not find them, and their writers must not apply
            // them any more.
            let mut p = lock(&self.pending);
            for r in &records {
                if let Some(by_lsn) = p.get_mut(&r.key) {
                    by_lsn.retain(|l, _| *l > lsn);
                    if by_lsn.is_empty() {
                        p.remove(&r.key);
                    }
                }
            }
        }
        let added = records.into_iter().map(|r| insert_newer(&mut mem, r)).sum();
        drop(mem);
        self.note_applied(added, now_ms);
    }

    /// Counts `added` memtable bytes applied at `now_ms` (the flush triggers).
    fn note_applied(&self, added: u64, now_ms: u64) {
        self.mem_bytes.fetch_add(added, Ordering::AcqRel);
        let _ = self.first_write_ms.compare_exchange(
            0,
            now_ms.max(1),
            Ordering::AcqRel,
            Ordering::Acquire,
        );
    }

    /// Memtable bytes and when its oldest record was applied (ms; `None`: empty).
    pub(crate) fn memtable_stats(&self) -> (u64, Option<u64>) {
        let first = self.first_write_ms.load(Ordering::Acquire);
        (
            self.mem_bytes.load(Ordering::Acquire),
            (first != 0).then_some(first),
        )
    }

    /// Moves the memtable to the sealed tables. Under the gate every appended record of this
    /// store is applied or pending (async commits): pending records already durable are applied
    /// first (their writers apply them again, harmlessly), so every record in the memtable is
    /// below the oldest still pending, and the seal LSN is just below that one (or the WAL's
    /// last LSN when none is pending). False when the memtable was empty.
    pub(crate) fn seal(&self, wal: &dyn crate::wal::Wal) -> bool {
        let _all = write(&self.gate);
        let mut mem = write(&self.mem);
        let durable = wal.durable_lsn().unwrap_or(0);
        let mut oldest_pending: Option<Lsn> = None;
        {
            let mut p = lock(&self.pending);
            let mut added = 0;
            p.retain(|_, by_lsn| {
                // Durable entries are applied here (their writers will find them gone).
                while let Some(e) = by_lsn.first_entry() {
                    if *e.key() > durable {
                        break;
                    }
                    added += insert_newer(&mut mem, e.remove());
                }
                if let Some((l, _)) = by_lsn.first_key_value() {
                    oldest_pending = Some(oldest_pending.map_or(*l, |o| o.min(*l)));
                }
                !by_lsn.is_empty()
            });
            self.mem_bytes.fetch_add(added, Ordering::AcqRel);
        }
        if mem.is_empty() {
            return false;
        }
        let seal_lsn = match oldest_pending {
            Some(o) => o - 1,
            None => wal.last_lsn(),
        };
        let map = std::mem::take(&mut *mem);
        let frozen = Arc::new(Frozen { map, seal_lsn });
        {
            let mut t = write(&self.tables);
            let mut next = (**t).clone();
            next.frozen.insert(0, frozen);
            *t = Arc::new(next);
        }
        self.generation.fetch_add(1, Ordering::AcqRel);
        self.mem_bytes.store(0, Ordering::Release);
        self.first_write_ms.store(0, Ordering::Release);
        true
    }

    /// Actor ids after `after` (exclusive) holding at least one live state at `now_ms`, in
    /// order, at most `limit`: a merge of the memtable, sealed memtables and segments (read a
    /// few blocks at a time), newest version per key. Restarts if a flush or compaction
    /// changed the tables meanwhile.
    pub(crate) fn list(
        &self,
        inner: &Inner,
        after: Option<&str>,
        limit: usize,
        now_ms: u64,
    ) -> Result<Vec<String>> {
        for _ in 0..READ_ATTEMPTS {
            let generation = self.generation.load(Ordering::Acquire);
            if let Some(out) = self.list_once(inner, after, limit, now_ms)?
                && self.generation.load(Ordering::Acquire) == generation
            {
                return Ok(out);
            }
        }
        Err(Error::new(
            ErrorKind::Unavailable,
            "actor segments kept being replaced during the list; try again",
        ))
    }

    fn list_once(
        &self,
        inner: &Inner,
        after: Option<&str>,
        limit: usize,
        now_ms: u64,
    ) -> Result<Option<Vec<String>>> {
        let start = after.map(|a| ActorKey {
            actor: a.to_string(),
            state: String::from('\u{10FFFF}'),
        });
        let t = self.tables();
        let mut sources: Vec<Source> = Vec::with_capacity(1 + t.frozen.len() + t.segments.len());
        sources.push(Source::Mem(None));
        sources.extend(t.frozen.iter().map(|f| Source::Frozen(Arc::clone(f), None)));
        sources.extend(
            t.segments
                .iter()
                .map(|s| Source::Seg(Arc::clone(s), s.cursor(start.as_ref()))),
        );
        let past_start = |k: &ActorKey| after.is_none_or(|a| k.actor.as_str() > a);
        let mut heads: Vec<Option<ActorRecord>> = Vec::with_capacity(sources.len());
        for s in &mut sources {
            match self.next_from(inner, s, start.as_ref(), &past_start)? {
                Ok(h) => heads.push(h),
                Err(()) => return Ok(None),
            }
        }
        let mut out: Vec<String> = Vec::new();
        while let Some(min) = heads.iter().flatten().map(|r| &r.key).min().cloned() {
            if out.len() >= limit && out.last() != Some(&min.actor) {
                break;
            }
            // The newest version of `min` among the sources; advance every source holding it.
            let mut best: Option<ActorRecord> = None;
            for (i, h) in heads.iter_mut().enumerate() {
                if h.as_ref().is_some_and(|r| r.key == min) {
                    let r = h.take().expect("checked");
                    if best.as_ref().is_none_or(|b| r.version > b.version) {
                        best = Some(r);
                    }
                    match self.next_from(inner, &mut sources[i], start.as_ref(), &past_start)? {
                        Ok(n) => *h = n,
                        Err(()) => return Ok(None),
                    }
                }
            }
            let r = best.expect("a source held the key");
            if r.absent_at(now_ms) {
                continue;
            }
            if out.last() != Some(&r.key.actor) {
                out.push(r.key.actor);
            }
        }
        out.truncate(limit);
        Ok(Some(out))
    }

    /// The next record of `s` past the start (`Err(())`: its segment is gone).
    fn next_from(
        &self,
        inner: &Inner,
        s: &mut Source,
        start: Option<&ActorKey>,
        past_start: &dyn Fn(&ActorKey) -> bool,
    ) -> Result<std::result::Result<Option<ActorRecord>, ()>> {
        loop {
            let next = match s {
                Source::Mem(last) => {
                    let r = next_in(&read(&self.mem), last.as_ref(), start);
                    *last = r.as_ref().map(|r| r.key.clone());
                    r
                }
                Source::Frozen(f, last) => {
                    let r = next_in(&f.map, last.as_ref(), start);
                    *last = r.as_ref().map(|r| r.key.clone());
                    r
                }
                Source::Seg(seg, cursor) => match cursor.next(inner, seg)? {
                    Ok(r) => r,
                    Err(()) => return Ok(Err(())),
                },
            };
            match next {
                Some(r) if !past_start(&r.key) => continue,
                other => return Ok(Ok(other)),
            }
        }
    }

    /// States and bytes per tier: the memtable and sealed memtables are hot (live states at
    /// `now_ms`, value bytes); a segment counts its records and file bytes in its own tier
    /// (versions a newer write shadows are counted until compaction drops them).
    pub(crate) fn stats(&self, now_ms: u64) -> StoreStats {
        let mut st = StoreStats::default();
        let mut count = |m: &BTreeMap<ActorKey, ActorRecord>| {
            for r in m.values().filter(|r| !r.absent_at(now_ms)) {
                st.states[0] += 1;
                st.bytes[0] += r.value.as_ref().map_or(0, |v| v.bytes.len() as u64);
            }
        };
        count(&read(&self.mem));
        let t = self.tables();
        for f in &t.frozen {
            count(&f.map);
        }
        for s in &t.segments {
            let i = crate::tiers::tier_index(s.tier());
            st.states[i] += u64::from(s.meta.footer.records);
            st.bytes[i] += s.file_len;
            st.segments[i] += 1;
        }
        st
    }

    /// Segments with their tiers (for the mover and tier usage).
    pub(crate) fn segments(&self) -> Vec<Arc<ActorSegment>> {
        self.tables().segments.clone()
    }

    /// Local bytes of this store's segments (hot and warm).
    pub(crate) fn local_bytes(&self) -> u64 {
        self.tables()
            .segments
            .iter()
            .filter(|s| s.tier() != Tier::Cold)
            .map(|s| s.file_len)
            .sum()
    }
}

/// The records `txn` writes at `lsn` (its values moved, not copied).
fn records_of(lsn: Lsn, txn: ActorTxn) -> Vec<ActorRecord> {
    let actor = txn.actor;
    txn.entries
        .into_iter()
        .map(|e| {
            let (value, expiry_ms) = match e.op {
                TxnOp::Put { value, expiry_ms } => (Some(value), expiry_ms),
                TxnOp::Delete => (None, None),
            };
            ActorRecord {
                key: ActorKey {
                    actor: actor.clone(),
                    state: e.state,
                },
                version: lsn,
                expiry_ms,
                value,
            }
        })
        .collect()
}

/// Puts `rec` in `mem` unless a version as new is there; returns the bytes added.
fn insert_newer(mem: &mut BTreeMap<ActorKey, ActorRecord>, rec: ActorRecord) -> u64 {
    if mem.get(&rec.key).is_some_and(|r| r.version >= rec.version) {
        return 0;
    }
    let n = record_bytes(&rec);
    mem.insert(rec.key.clone(), rec);
    n
}

/// The stripe of each key, sorted, once each.
fn stripe_indices(keys: &[ActorKey]) -> Vec<usize> {
    let mut idx: Vec<usize> = keys
        .iter()
        .map(|k| (super::key_hash(k) % STRIPES as u64) as usize)
        .collect();
    idx.sort_unstable();
    idx.dedup();
    idx
}

/// One ordered source of a list.
enum Source {
    Mem(Option<ActorKey>),
    Frozen(Arc<Frozen>, Option<ActorKey>),
    Seg(Arc<ActorSegment>, SegmentCursor),
}

/// The first record of `m` after `last` (exclusive), or at/after `start` when nothing was
/// returned yet.
fn next_in(
    m: &BTreeMap<ActorKey, ActorRecord>,
    last: Option<&ActorKey>,
    start: Option<&ActorKey>,
) -> Option<ActorRecord> {
    let lower = match (last, start) {
        (Some(l), _) => Bound::Excluded(l),
        (None, Some(s)) => Bound::Included(s),
        (None, None) => Bound::Unbounded,
    };
    m.range::<ActorKey, _>((lower, Bound::Unbounded))
        .next()
        .map(|(_, r)| r.clone())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::actors::Value;
    use crate::actors::txn::TxnEntry;
    use crate::wal::{ReplayStats, ReplayVisitor, Wal};

    /// A log that reports a fixed durable LSN (nothing else is used by a seal).
    #[derive(Debug)]
    struct Durable(Lsn);

    impl Wal for Durable {
        fn open(&self, _: Lsn, _: &mut ReplayVisitor<'_>) -> Result<ReplayStats> {
            Ok(ReplayStats::default())
        }
        fn append(&self, _: u64, _: &[u8]) -> Result<Lsn> {
            Ok(self.0 + 1)
        }
        fn sync(&self, _: Lsn) -> Result<()> {
            Ok(())
        }
        fn last_lsn(&self) -> Lsn {
            self.0 + 5
        }
        fn release(&self, _: &dyn Fn(u64, Lsn) -> bool) -> Result<usize> {
            Ok(0)
        }
        fn durable_lsn(&self) -> Option<Lsn> {
            Some(self.0)
        }
    }

    fn put(value: &[u8]) -> ActorTxn {
        ActorTxn {
            actor: "a".into(),
            entries: vec![TxnEntry {
                state: "s".into(),
                op: TxnOp::Put {
                    value: Value {
                        content_type: "b".into(),
                        bytes: value.to_vec(),
                    },
                    expiry_ms: None,
                },
                condition: Condition::None,
            }],
        }
    }

    fn store() -> ActorStore {
        ActorStore::new(
            &ActorStoreEntry {
                id: 1,
                tenant: "t".into(),
                actor_type: "x".into(),
                created_lsn: 0,
                flushed_lsn: 0,
                hint: Hint::Auto,
                segments: Vec::new(),
            },
            Vec::new(),
        )
    }

    fn key() -> ActorKey {
        ActorKey {
            actor: "a".into(),
            state: "s".into(),
        }
    }

    /// An async write (10) still pending when a newer blocking write (11) of the same key is
    /// applied and sealed: its writer, finishing late, must not put the older value into the new
    /// memtable, where reads would find it before the sealed newer one.
    #[test]
    fn a_late_async_apply_never_hides_a_newer_sealed_version() {
        let s = store();
        s.add_pending(10, put(b"old"));
        s.apply(11, put(b"new"), 1);
        assert!(s.seal(&Durable(11)));
        assert_eq!(s.tables().frozen[0].seal_lsn, 16, "nothing left pending");
        s.finish_pending(10, &[key()], 2);
        assert!(read(&s.mem).get(&key()).is_none(), "the seal handled it");
        assert_eq!(s.tables().frozen[0].map[&key()].version, 11);
    }

    /// A newer write applied clears older pending writes of its key: a condition on the older
    /// version fails (else two If-Match writers on it could both win) and the older writer,
    /// finishing late, does not apply it.
    #[test]
    fn a_newer_apply_clears_older_pending_writes_of_its_key() {
        let s = store();
        s.add_pending(2, put(b"a"));
        s.apply(3, put(b"b"), 1);
        let mut stale = put(b"c");
        stale.entries[0].condition = Condition::IfMatch(2);
        let from_mem = |k: &ActorKey| Some(Ok(read(&s.mem).get(k).cloned()));
        let c = s
            .check_with(&stale, 1, false, from_mem)
            .expect("answered")
            .expect("read");
        assert_eq!(
            c,
            Err(Conflict {
                state: "s".into(),
                current: Some(3)
            })
        );
        s.finish_pending(2, &[key()], 2);
        assert_eq!(read(&s.mem).get(&key()).map(|r| r.version), Some(3));
    }

    /// A write pending and not yet durable at the seal stays out of the sealed table, the seal
    /// LSN stops below it (replay keeps it), and its writer applies it afterwards.
    #[test]
    fn a_seal_stops_below_a_write_not_yet_durable() {
        let s = store();
        s.apply(5, put(b"five"), 1);
        s.add_pending(7, put(b"seven"));
        assert!(s.seal(&Durable(6)));
        let f = &s.tables().frozen[0];
        assert_eq!((f.seal_lsn, f.map[&key()].version), (6, 5));
        s.finish_pending(7, &[key()], 2);
        assert_eq!(read(&s.mem).get(&key()).map(|r| r.version), Some(7));
        assert!(lock(&s.pending).is_empty());
    }
}
