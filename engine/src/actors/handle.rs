//! The public face of an actor store (see `docs/actors.md`).

use std::sync::Arc;
use std::sync::atomic::Ordering;

use super::store::ActorStore;
use super::txn::{ActorTxn, Condition, TxnEntry, TxnOp};
use super::{ActorKey, MAX_CONTENT_TYPE, Value};
use crate::engine::Inner;
use crate::error::{Error, ErrorKind, Result};
use crate::types::Lsn;

/// What must hold for a write to apply.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ActorCondition {
    /// Nothing: the write applies.
    #[default]
    None,
    /// The state's current version is exactly this (an ETag match).
    IfMatch(Lsn),
    /// The state does not exist, or reads as absent (expired): create only.
    IfNoneMatch,
    /// The state exists, whatever its version (HTTP `If-Match: *`).
    IfExists,
}

/// What a committed transaction did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ActorCommit {
    /// The version written (the new ETag of every state it wrote); `None` when nothing was
    /// written: every write deleted a state that did not exist.
    pub version: Option<Lsn>,
    /// Per write, whether its state existed before: known for deletes, conditional writes and
    /// every write when asked for (`report`); `None` otherwise.
    pub existed: Vec<Option<bool>>,
}

/// One write of a transaction.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ActorWrite {
    /// Set a state.
    Put {
        /// The state name.
        state: String,
        /// The value.
        value: Vec<u8>,
        /// Its content type (kept and returned).
        content_type: String,
        /// Time to live from the write, in milliseconds of the engine clock.
        ttl_ms: Option<u64>,
        /// What must hold.
        condition: ActorCondition,
    },
    /// Remove a state.
    Delete {
        /// The state name.
        state: String,
        /// What must hold.
        condition: ActorCondition,
    },
}

/// A state as read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ActorState {
    /// The value.
    pub value: Vec<u8>,
    /// Its content type.
    pub content_type: String,
    /// The LSN that wrote it: the ETag.
    pub version: Lsn,
    /// When it expires (ms of the engine clock), if it does.
    pub expires_at_ms: Option<u64>,
}

/// The states of one actor type of one tenant.
#[derive(Clone)]
pub struct ActorHandle {
    inner: Arc<Inner>,
    store: Arc<ActorStore>,
}

impl std::fmt::Debug for ActorHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ActorHandle")
            .field("tenant", &self.store.tenant)
            .field("actor_type", &self.store.actor_type)
            .finish()
    }
}

impl ActorHandle {
    pub(crate) fn new(inner: Arc<Inner>, store: Arc<ActorStore>) -> ActorHandle {
        ActorHandle { inner, store }
    }

    /// The actor type.
    pub fn actor_type(&self) -> &str {
        &self.store.actor_type
    }

    /// A state, or `None` when it does not exist, was deleted or has expired. May read a
    /// block of a warm or cold segment (blocking I/O); see [`ActorHandle::get_resident`].
    pub fn get(&self, actor: &str, state: &str) -> Result<Option<ActorState>> {
        let key = ActorKey::new(actor, state)?;
        metrics::counter!("strata_actor_gets_total").increment(1);
        let found = self.store.newest(&self.inner, &key)?;
        Ok(self.visible(found))
    }

    /// [`ActorHandle::get`] when it needs no I/O — the state is in RAM (memtable, a hot
    /// segment) or every segment's bloom filter or index rules it out: for callers on an async
    /// runtime, which then call `get` on a blocking thread only when this answers `None`.
    pub fn get_resident(&self, actor: &str, state: &str) -> Option<Result<Option<ActorState>>> {
        let key = match ActorKey::new(actor, state) {
            Ok(k) => k,
            Err(e) => return Some(Err(e)),
        };
        let found = self.store.newest_resident(&self.inner, &key)?;
        metrics::counter!("strata_actor_gets_total").increment(1);
        Some(found.map(|r| self.visible(r)))
    }

    /// A record as a read answers it: absent when deleted or expired now.
    fn visible(&self, found: Option<super::ActorRecord>) -> Option<ActorState> {
        let now = self.inner.opts().clock.now_millis();
        found.filter(|r| !r.absent_at(now)).and_then(|r| {
            let v = r.value?;
            Some(ActorState {
                value: v.bytes,
                content_type: v.content_type,
                version: r.version,
                expires_at_ms: r.expiry_ms,
            })
        })
    }

    /// Sets one state. Returns its new version.
    pub fn put(
        &self,
        actor: &str,
        state: &str,
        value: Vec<u8>,
        content_type: &str,
        ttl_ms: Option<u64>,
        condition: ActorCondition,
    ) -> Result<Lsn> {
        let put = ActorWrite::Put {
            state: state.to_string(),
            value,
            content_type: content_type.to_string(),
            ttl_ms,
            condition,
        };
        let c = self.commit(actor, vec![put], false)?;
        c.version
            .ok_or_else(|| Error::new(ErrorKind::Internal, "a put wrote nothing"))
    }

    /// Removes one state. Returns the version of the delete, or `None` when the state did not
    /// exist (nothing is written).
    pub fn delete(
        &self,
        actor: &str,
        state: &str,
        condition: ActorCondition,
    ) -> Result<Option<Lsn>> {
        let del = ActorWrite::Delete {
            state: state.to_string(),
            condition,
        };
        Ok(self.commit(actor, vec![del], false)?.version)
    }

    /// Several writes to one actor's states, all or nothing (see [`ActorHandle::commit`]).
    /// Returns the version written, `None` when nothing was.
    pub fn transaction(&self, actor: &str, writes: Vec<ActorWrite>) -> Result<Option<Lsn>> {
        Ok(self.commit(actor, writes, false)?.version)
    }

    /// Several writes to one actor's states, all or nothing: every condition is checked (in WAL
    /// order, under the keys' stripes) before anything is logged; a failed one applies nothing
    /// and answers `FailedPrecondition` with the state's current version
    /// ([`Error::conflict_version`]). A delete of a state that does not exist writes nothing.
    /// Durable (fsynced) when it returns. `report`: say for every write whether its state
    /// existed (a read per write; without it only deletes and conditional writes read).
    pub fn commit(
        &self,
        actor: &str,
        writes: Vec<ActorWrite>,
        report: bool,
    ) -> Result<ActorCommit> {
        let p = self.prepare(actor, writes)?;
        let _stripes = self.store.lock_keys(&p.keys);
        // The clock is read at the commit point: conditions judge expiry then, TTLs start then.
        let now = self.inner.opts().clock.now_millis();
        let mut txn = p.stamp(actor, now);
        self.inner.check_writable()?;
        let existed = self
            .store
            .check(&self.inner, &txn, now, report)?
            .map_err(|c| conflict(actor, c))?;
        if !drop_noops(&mut txn, &existed) {
            return Ok(ActorCommit {
                version: None,
                existed,
            });
        }
        let bytes = txn.encode();
        let wal = self.inner.wal();
        // Shared with other writers; a seal waits for this append to be applied.
        let gate = self.store.gate();
        let lsn = wal.append(self.store.id, &bytes)?;
        wal.sync(lsn)?;
        let written = txn.entries.len() as u64;
        self.store.apply(lsn, txn, now);
        drop(gate);
        metrics::counter!("strata_actor_writes_total").increment(written);
        metrics::counter!("strata_actor_commits_total", "path" => "blocking").increment(1);
        self.inner.actor_counters().commits[1].fetch_add(1, Ordering::Relaxed);
        Ok(ActorCommit {
            version: Some(lsn),
            existed,
        })
    }

    /// [`ActorHandle::commit`] for callers on an async runtime, when it can run without
    /// blocking: conditions answered from RAM, the keys' stripes free, and a WAL that reports
    /// durability. Then the transaction is checked and logged here, and the returned future
    /// waits — without holding a thread — for the engine's syncer to make it durable (one
    /// fsync for every write waiting) and apply it (also when the future is dropped), and
    /// answers as `commit` would. `None`: call `commit` on a blocking thread instead.
    ///
    /// Between its append and its apply a write is *pending*: later writers of the same keys
    /// check their conditions against it (so of two `If-Match` writers exactly one wins, as on
    /// the blocking path); readers see it once it is durable and applied.
    pub fn commit_async(
        &self,
        actor: &str,
        writes: Vec<ActorWrite>,
        report: bool,
    ) -> Option<impl std::future::Future<Output = Result<ActorCommit>> + Send + 'static> {
        self.inner.wal().durable_lsn()?;
        let step = match self.prepare(actor, writes) {
            Err(e) => Step::Done(Err(e)),
            Ok(p) => self.log_now(actor, p, report)?,
        };
        Some(async move {
            match step {
                Step::Done(r) => r,
                Step::Wait { wait, lsn, existed } => {
                    // Applied (or forgotten) by the syncer before this wakes.
                    wait.await?;
                    Ok(ActorCommit {
                        version: Some(lsn),
                        existed,
                    })
                }
            }
        })
    }

    /// The synchronous part of [`ActorHandle::commit_async`]: `None` when it would block.
    fn log_now(&self, actor: &str, p: Prepared, report: bool) -> Option<Step> {
        let stripes = self.store.try_lock_keys(&p.keys)?;
        let now = self.inner.opts().clock.now_millis();
        let mut txn = p.stamp(actor, now);
        if let Err(e) = self.inner.check_writable() {
            return Some(Step::Done(Err(e)));
        }
        let existed = match self.store.check_resident(&self.inner, &txn, now, report)? {
            Err(e) => return Some(Step::Done(Err(e))),
            Ok(Err(c)) => return Some(Step::Done(Err(conflict(actor, c)))),
            Ok(Ok(x)) => x,
        };
        if !drop_noops(&mut txn, &existed) {
            return Some(Step::Done(Ok(ActorCommit {
                version: None,
                existed,
            })));
        }
        let gate = self.store.try_gate()?;
        let wal = self.inner.wal();
        let lsn = match wal.append(self.store.id, &txn.encode()) {
            Ok(lsn) => lsn,
            Err(e) => return Some(Step::Done(Err(e))),
        };
        let keys = self.store.add_pending(lsn, txn);
        drop(gate);
        drop(stripes);
        // Applied by the syncer once durable, even if nobody awaits the answer any more.
        let (store, inner) = (Arc::clone(&self.store), Arc::clone(&self.inner));
        let then: crate::durable::Then = Box::new(move |r: &Result<()>| match r {
            Ok(()) => {
                let written = keys.len() as u64;
                store.finish_pending(lsn, &keys, now);
                metrics::counter!("strata_actor_writes_total").increment(written);
                metrics::counter!("strata_actor_commits_total", "path" => "async").increment(1);
                inner.actor_counters().commits[0].fetch_add(1, Ordering::Relaxed);
            }
            Err(_) => store.drop_pending(lsn, &keys),
        });
        Some(Step::Wait {
            wait: self.inner.syncer().wait(wal, lsn, then),
            lsn,
            existed,
        })
    }

    /// Validates `writes` (errors name the field) into keys and log entries.
    fn prepare(&self, actor: &str, writes: Vec<ActorWrite>) -> Result<Prepared> {
        if writes.is_empty() {
            return Err(Error::invalid("operations: at least one write"));
        }
        let max_batch = self.inner.opts().max_batch_points;
        if writes.len() > max_batch {
            return Err(Error::new(
                ErrorKind::ResourceExhausted,
                format!(
                    "operations: {} writes exceed the limit of {max_batch}",
                    writes.len()
                ),
            ));
        }
        let max_value = self.inner.opts().max_actor_value_bytes;
        // TTLs, relative until the keys are locked (expiry counts from the commit point).
        let mut ttls: Vec<Option<u64>> = Vec::with_capacity(writes.len());
        let mut keys = Vec::with_capacity(writes.len());
        let mut entries = Vec::with_capacity(writes.len());
        for (i, w) in writes.into_iter().enumerate() {
            let at = format!("operations[{i}]");
            let (state, op, condition) = match w {
                ActorWrite::Put {
                    state,
                    value,
                    content_type,
                    ttl_ms,
                    condition,
                } => {
                    if value.len() > max_value {
                        return Err(Error::new(
                            ErrorKind::ResourceExhausted,
                            format!(
                                "{at}.value: {} bytes exceed the limit of {max_value}",
                                value.len()
                            ),
                        ));
                    }
                    // Returned as a header: visible ASCII and spaces only.
                    if content_type.len() > MAX_CONTENT_TYPE
                        || !content_type.bytes().all(|b| (0x20..0x7f).contains(&b))
                    {
                        return Err(Error::invalid(format!(
                            "{at}.content_type: at most {MAX_CONTENT_TYPE} bytes of visible ASCII"
                        )));
                    }
                    if ttl_ms == Some(0) {
                        return Err(Error::invalid(format!("{at}.ttl: must be positive")));
                    }
                    ttls.push(ttl_ms);
                    let expiry_ms = None;
                    let value = Value {
                        content_type,
                        bytes: value,
                    };
                    (state, TxnOp::Put { value, expiry_ms }, condition)
                }
                ActorWrite::Delete { state, condition } => {
                    ttls.push(None);
                    (state, TxnOp::Delete, condition)
                }
            };
            let key = ActorKey::new(actor, &state)
                .map_err(|e| Error::invalid(format!("{at}.{}", e.message())))?;
            if keys.contains(&key) {
                return Err(Error::invalid(format!(
                    "{at}.state: {state:?} is written twice in one transaction"
                )));
            }
            keys.push(key);
            entries.push(TxnEntry {
                state,
                op,
                condition: match condition {
                    ActorCondition::None => Condition::None,
                    ActorCondition::IfMatch(v) => Condition::IfMatch(v),
                    ActorCondition::IfNoneMatch => Condition::IfNoneMatch,
                    ActorCondition::IfExists => Condition::IfExists,
                },
            });
        }
        Ok(Prepared {
            keys,
            entries,
            ttls,
        })
    }

    /// Actor ids after `after` with at least one live state, in order, at most `limit`
    /// (1..=10,000).
    pub fn list(&self, after: Option<&str>, limit: usize) -> Result<Vec<String>> {
        if limit == 0 || limit > 10_000 {
            return Err(Error::invalid(format!(
                "limit: must be in 1..=10000, got {limit}"
            )));
        }
        let now = self.inner.opts().clock.now_millis();
        self.store.list(&self.inner, after, limit, now)
    }

    /// States per tier (hot, warm, cold): live states in RAM are hot; a segment's records
    /// count in its tier until compaction drops the versions shadowed since.
    pub fn states_per_tier(&self) -> [u64; 3] {
        self.store
            .stats(self.inner.opts().clock.now_millis())
            .states
    }

    /// Actor segments per tier (hot, warm, cold).
    pub fn segments_per_tier(&self) -> [u64; 3] {
        self.store
            .stats(self.inner.opts().clock.now_millis())
            .segments
    }

    /// Seals and writes this store's memtable to an actor segment now (the background flush
    /// does it by size and age). False when there was nothing to write.
    pub fn flush(&self) -> Result<bool> {
        crate::actors::flush::flush(&self.inner, &self.store)
    }

    /// Merges this store's segments now: all of them when `full` (dropping deleted and expired
    /// states), else the run the background policy would pick. False when there was nothing
    /// to merge.
    pub fn compact(&self, full: bool) -> Result<bool> {
        crate::actors::flush::compact(&self.inner, &self.store, full)
    }

    /// This actor type's tier hint.
    pub fn tier_hint(&self) -> crate::TierHint {
        self.store.hint()
    }

    /// Sets this actor type's tier hint (persisted in the manifest; the mover follows it).
    pub fn set_tier_hint(&self, hint: crate::TierHint) -> Result<()> {
        let mut m = self.inner.lock_manifest();
        let old = self.store.set_hint(hint);
        if let Err(e) = m.publish(crate::engine::ManifestChange::None) {
            self.store.set_hint(old);
            return Err(e);
        }
        Ok(())
    }
}

/// A validated transaction, before the commit point.
struct Prepared {
    keys: Vec<ActorKey>,
    entries: Vec<TxnEntry>,
    /// Per entry, its TTL (expiry counts from the commit point).
    ttls: Vec<Option<u64>>,
}

impl Prepared {
    /// The transaction to log, its TTLs turned into expiries at `now_ms`.
    fn stamp(self, actor: &str, now_ms: u64) -> ActorTxn {
        let mut entries = self.entries;
        for (e, ttl) in entries.iter_mut().zip(&self.ttls) {
            if let (TxnOp::Put { expiry_ms, .. }, Some(t)) = (&mut e.op, ttl) {
                *expiry_ms = Some(now_ms.saturating_add(*t));
            }
        }
        ActorTxn {
            actor: actor.to_string(),
            entries,
        }
    }
}

/// Where an async commit stands after its synchronous part.
enum Step {
    /// Answered already (an error, a conflict, nothing to write).
    Done(Result<ActorCommit>),
    /// Logged at `lsn`, pending until `wait` resolves (the syncer applies it first).
    Wait {
        wait: crate::Durable,
        lsn: Lsn,
        existed: Vec<Option<bool>>,
    },
}

/// A failed condition as the typed error carrying the current version.
fn conflict(actor: &str, c: super::store::Conflict) -> Error {
    metrics::counter!("strata_actor_conflicts_total").increment(1);
    let current = match c.current {
        Some(v) => format!("current version {v}"),
        None => "the state is absent".to_string(),
    };
    Error::conflict(
        format!(
            "state {:?} of actor {actor:?}: condition failed ({current})",
            c.state
        ),
        c.current,
    )
}

/// Drops the deletes of states that do not exist (nothing to write). False when nothing is
/// left.
fn drop_noops(txn: &mut ActorTxn, existed: &[Option<bool>]) -> bool {
    let mut i = 0;
    txn.entries.retain(|e| {
        let keep = !(matches!(e.op, TxnOp::Delete) && existed[i] == Some(false));
        i += 1;
        keep
    });
    !txn.entries.is_empty()
}
