//! One actor store: the states of one actor type of a tenant, in RAM (an ordered map), with
//! key stripes that make a condition check and its apply one step in WAL order.
//!
//! ```text
//! write(actor, entries) → stripes of the keys (sorted) → check conditions against the newest
//!   states → WAL append (op 5) → group-commit fsync → apply → unlock → LSN
//! ```
//! Every state is in the memtable and the WAL until flushes to actor segments exist (the next
//! step of `docs/actors.md`); the store keeps its WAL records (its flushed LSN stays at its
//! creation, so no WAL file holding them is released).

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard, RwLock};

use super::txn::{ActorTxn, Condition, TxnOp};
use super::{ActorKey, ActorRecord};
use crate::engine::{lock, read, write};
use crate::manifest::ActorStoreEntry;
use crate::types::Lsn;

/// Key stripes per store: conditional writes to keys of different stripes never wait for each
/// other (they share the group-commit fsync).
const STRIPES: usize = 4096;

#[derive(Debug)]
pub(crate) struct ActorStore {
    pub(crate) id: u64,
    pub(crate) tenant: String,
    pub(crate) actor_type: String,
    pub(crate) created_lsn: Lsn,
    mem: RwLock<BTreeMap<ActorKey, ActorRecord>>,
    stripes: Vec<Mutex<()>>,
}

/// Why a transaction's condition failed: the state and its current version (`None`: absent).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Conflict {
    pub(crate) state: String,
    pub(crate) current: Option<Lsn>,
}

impl ActorStore {
    pub(crate) fn new(entry: &ActorStoreEntry) -> ActorStore {
        ActorStore {
            id: entry.id,
            tenant: entry.tenant.clone(),
            actor_type: entry.actor_type.clone(),
            created_lsn: entry.created_lsn,
            mem: RwLock::new(BTreeMap::new()),
            stripes: (0..STRIPES).map(|_| Mutex::new(())).collect(),
        }
    }

    pub(crate) fn manifest_entry(&self) -> ActorStoreEntry {
        ActorStoreEntry {
            id: self.id,
            tenant: self.tenant.clone(),
            actor_type: self.actor_type.clone(),
            created_lsn: self.created_lsn,
            flushed_lsn: self.created_lsn,
        }
    }

    /// Locks the stripes of `keys` (each once, in order: no deadlock between transactions).
    pub(crate) fn lock_keys(&self, keys: &[ActorKey]) -> Vec<MutexGuard<'_, ()>> {
        let mut idx: Vec<usize> = keys
            .iter()
            .map(|k| (super::key_hash(k) % STRIPES as u64) as usize)
            .collect();
        idx.sort_unstable();
        idx.dedup();
        idx.into_iter().map(|i| lock(&self.stripes[i])).collect()
    }

    /// The newest record of `key` (a tombstone or an expired state included).
    pub(crate) fn newest(&self, key: &ActorKey) -> Option<ActorRecord> {
        read(&self.mem).get(key).cloned()
    }

    /// Checks every condition of `txn` against the newest states at `now_ms` (the caller holds
    /// the stripes of its keys).
    pub(crate) fn check(&self, txn: &ActorTxn, now_ms: u64) -> Result<(), Conflict> {
        let mem = read(&self.mem);
        for e in &txn.entries {
            let key = ActorKey {
                actor: txn.actor.clone(),
                state: e.state.clone(),
            };
            let current = mem
                .get(&key)
                .filter(|r| !r.absent_at(now_ms))
                .map(|r| r.version);
            let ok = match e.condition {
                Condition::None => true,
                Condition::IfMatch(v) => current == Some(v),
                Condition::IfNoneMatch => current.is_none(),
            };
            if !ok {
                return Err(Conflict {
                    state: e.state.clone(),
                    current,
                });
            }
        }
        Ok(())
    }

    /// Applies a logged transaction at `lsn` (replay: records of a newer LSN are kept).
    pub(crate) fn apply(&self, lsn: Lsn, txn: ActorTxn) {
        let mut mem = write(&self.mem);
        for e in txn.entries {
            let key = ActorKey {
                actor: txn.actor.clone(),
                state: e.state,
            };
            if mem.get(&key).is_some_and(|r| r.version >= lsn) {
                continue;
            }
            let (value, expiry_ms) = match e.op {
                TxnOp::Put { value, expiry_ms } => (Some(value), expiry_ms),
                TxnOp::Delete => (None, None),
            };
            mem.insert(
                key.clone(),
                ActorRecord {
                    key,
                    version: lsn,
                    expiry_ms,
                    value,
                },
            );
        }
    }

    /// Actor ids after `after` (exclusive) holding at least one live state at `now_ms`, in
    /// order, at most `limit`.
    pub(crate) fn list(&self, after: Option<&str>, limit: usize, now_ms: u64) -> Vec<String> {
        let mem = read(&self.mem);
        let start = after.map(|a| ActorKey {
            actor: a.to_string(),
            state: String::from('\u{10FFFF}'),
        });
        let iter: Box<dyn Iterator<Item = (&ActorKey, &ActorRecord)>> = match &start {
            Some(k) => Box::new(mem.range(k.clone()..)),
            None => Box::new(mem.iter()),
        };
        let mut out: Vec<String> = Vec::new();
        for (k, r) in iter {
            if out.len() >= limit && out.last() != Some(&k.actor) {
                break;
            }
            if after.is_some_and(|a| k.actor.as_str() <= a) || r.absent_at(now_ms) {
                continue;
            }
            if out.last() != Some(&k.actor) {
                out.push(k.actor.clone());
            }
        }
        out.truncate(limit);
        out
    }

    /// Live states and their bytes at `now_ms` (statistics).
    pub(crate) fn stats(&self, now_ms: u64) -> (u64, u64) {
        let mem = read(&self.mem);
        mem.values()
            .filter(|r| !r.absent_at(now_ms))
            .fold((0, 0), |(n, b), r| {
                (
                    n + 1,
                    b + r.value.as_ref().map_or(0, |v| v.bytes.len() as u64),
                )
            })
    }
}
