//! A randomized fault workload: writes, deletes, flushes, compactions, clean reopens and
//! crashes, over storage that fails at random steps (writes, fsyncs, renames, reads, short
//! reads, deletes, listings), checked after every step against a model of what was
//! acknowledged. Deterministic per seed; a failure prints the seed and the faults injected.
//!
//! The rules it checks:
//! - while the engine runs, it shows exactly the acknowledged state: a failed write was not
//!   applied (get, scroll, count and an exact search all agree with the model);
//! - after a reopen or a crash, each point holds its acknowledged version or one of the writes
//!   attempted after it whose outcome was unknown (they failed, so may or may not be durable) —
//!   never anything older, never anything unwritten;
//! - whatever faults happened, a reopen with the faults gone succeeds.
//!
//! `STRATA_FAULT_SEEDS=N` runs N seeds (default 300, a few seconds); `STRATA_FAULT_SEED=S`
//! replays one.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use strata_engine::storage::{Fault, FaultOp, FaultRule, Faults, MemStorage, Trigger};
use strata_engine::*;

const IDS: u64 = 32;

/// What one id holds: live with a tag (vector component 1), or deleted.
type Value = Option<u32>;

#[derive(Clone, Debug, Default)]
struct Slot {
    acked: Value,
    version: Lsn,
    /// Writes attempted after the acknowledged one whose outcome is unknown.
    maybe: Vec<Value>,
}

struct Run {
    seed: u64,
    rng: SplitMix64,
    mem: MemStorage,
    faults: Arc<Faults>,
    model: BTreeMap<u64, Slot>,
    log: Vec<String>,
}

fn vector(id: u64, tag: u32) -> Vec<f32> {
    vec![id as f32, tag as f32, 0.5, 1.0]
}

impl Run {
    fn new(seed: u64) -> Run {
        let mut rng = SplitMix64::new(seed);
        let faults = Faults::new(seed ^ 0x5eed);
        let p = |rng: &mut SplitMix64, max: f64| rng.next_f32() as f64 * max;
        let err = |op, p| FaultRule::new(op, Trigger::Chance(p));
        faults.add(
            err(FaultOp::Write, p(&mut rng, 0.04))
                .fault(Fault::Error(std::io::ErrorKind::StorageFull)),
        );
        faults.add(err(FaultOp::Sync, p(&mut rng, 0.03)));
        faults.add(err(FaultOp::Rename, p(&mut rng, 0.03)));
        faults.add(err(FaultOp::Delete, p(&mut rng, 0.05)));
        faults.add(err(FaultOp::List, p(&mut rng, 0.05)));
        faults.add(err(FaultOp::Read, p(&mut rng, 0.03)));
        faults.add(err(FaultOp::Read, p(&mut rng, 0.03)).fault(Fault::ShortRead));
        Run {
            seed,
            rng,
            mem: MemStorage::new(),
            faults,
            model: (0..IDS).map(|i| (i, Slot::default())).collect(),
            log: Vec::new(),
        }
    }

    fn opts(&self, faulty: bool) -> EngineOptions {
        let storage = if faulty {
            self.mem.storage().with_faults(&self.faults)
        } else {
            self.mem.storage()
        };
        let mut o = EngineOptions::with_storage(storage);
        o.background = false;
        o.index_threshold_rows = 8;
        o.max_segments = 3;
        o.wal_file_bytes = 2048;
        o
    }

    fn fail(&self, what: &str) -> ! {
        panic!(
            "seed {}: {what}\nsteps:\n  {}\nfaults injected:\n  {}",
            self.seed,
            self.log.join("\n  "),
            self.faults.history().join("\n  ")
        )
    }

    /// Opens with faults (a few tries), then without: recovery must succeed once they stop.
    fn open(&mut self) -> Engine {
        for _ in 0..3 {
            match Engine::open(self.opts(true)) {
                Ok(e) => return e,
                Err(e) => self.log.push(format!("open failed: {e}")),
            }
        }
        match Engine::open(self.opts(false)) {
            Ok(e) => e,
            Err(e) => self.fail(&format!("recovery failed without faults: {e}")),
        }
    }

    fn coll(&mut self, e: &Engine) -> CollectionHandle {
        match e.collection(DEFAULT_TENANT, "c") {
            Ok(c) => c,
            Err(err) => self.fail(&format!("collection lost: {err}")),
        }
    }

    /// The engine's view of every id.
    fn observe(&mut self, c: &CollectionHandle) -> BTreeMap<u64, (Value, Lsn)> {
        let ids: Vec<PointId> = (0..IDS).map(PointId::Num).collect();
        let recs = match c.get(&ids, false, true) {
            Ok(r) => r,
            Err(e) => self.fail(&format!("get failed: {e}")),
        };
        let mut seen: BTreeMap<u64, (Value, Lsn)> = (0..IDS).map(|i| (i, (None, 0))).collect();
        for r in recs {
            let PointId::Num(i) = r.id else {
                self.fail("uuid")
            };
            let tag = r.vector().map_or(0.0, |v| v[1]) as u32;
            seen.insert(i, (Some(tag), r.version));
        }
        seen
    }

    /// While running: exactly the acknowledged state, by every read path.
    fn check_running(&mut self, c: &CollectionHandle) {
        let seen = self.observe(c);
        for (id, slot) in self.model.clone() {
            let (v, version) = seen[&id];
            if v != slot.acked || (v.is_some() && version != slot.version) {
                self.fail(&format!(
                    "id {id}: engine shows {v:?}@{version}, acknowledged {:?}@{}",
                    slot.acked, slot.version
                ));
            }
        }
        let live: BTreeSet<u64> = self
            .model
            .iter()
            .filter(|(_, s)| s.acked.is_some())
            .map(|(i, _)| *i)
            .collect();
        let n = c
            .count(None)
            .unwrap_or_else(|e| self.fail(&format!("count: {e}")));
        let page = c
            .scroll(&ScrollRequest {
                limit: 100,
                ..ScrollRequest::default()
            })
            .unwrap_or_else(|e| self.fail(&format!("scroll: {e}")));
        let mut q = SearchRequest::new(vec![0.0; 4], 100);
        q.exact = self.rng.below(2) == 0;
        let hits = c
            .search(&q)
            .unwrap_or_else(|e| self.fail(&format!("search: {e}")));
        let ids = |v: Vec<PointId>| -> BTreeSet<u64> {
            v.into_iter()
                .map(|p| match p {
                    PointId::Num(i) => i,
                    PointId::Uuid(_) => u64::MAX,
                })
                .collect()
        };
        let scrolled = ids(page.points.iter().map(|p| p.id).collect());
        let searched = ids(hits.iter().map(|h| h.id).collect());
        if n as usize != live.len() || scrolled != live || (q.exact && searched != live) {
            self.fail(&format!(
                "count {n}, scroll {scrolled:?}, search {searched:?}; acknowledged live {live:?}"
            ));
        }
    }

    /// After a restart: each id holds its acknowledged value or a later unknown attempt; that
    /// becomes the new acknowledged state (recovery made it durable).
    fn check_recovered(&mut self, c: &CollectionHandle) {
        let seen = self.observe(c);
        for (id, slot) in self.model.clone() {
            let (v, version) = seen[&id];
            let ok = (v == slot.acked && (v.is_none() || version == slot.version))
                || (slot.maybe.contains(&v) && (v.is_none() || version > slot.version));
            if !ok {
                self.fail(&format!(
                    "after recovery id {id} holds {v:?}@{version}; acknowledged {:?}@{}, unknown {:?}",
                    slot.acked, slot.version, slot.maybe
                ));
            }
            let s = self.model.get_mut(&id).expect("id");
            s.acked = v;
            s.version = if v.is_some() {
                version
            } else {
                s.version.max(version)
            };
            s.maybe.clear();
        }
    }

    fn restart(&mut self, e: Engine, crash: bool) -> Engine {
        drop(e);
        if crash {
            let torn = self.rng.below(2) == 0;
            let seed = self.rng.next_u64();
            self.mem.crash(torn.then_some(seed));
        }
        let e = self.open();
        let c = self.coll(&e);
        self.check_recovered(&c);
        e
    }

    fn run(mut self, steps: usize) {
        let e = Engine::open(self.opts(false)).expect("open");
        e.create_collection(
            DEFAULT_TENANT,
            "c",
            CollectionConfig::new(4, Distance::Euclid),
        )
        .expect("create");
        let mut e = e;
        for step in 0..steps {
            let c = self.coll(&e);
            let tag = step as u32 + 1;
            let roll = self.rng.below(100);
            match roll {
                0..=44 => {
                    let n = 1 + self.rng.below(5);
                    let ids: BTreeSet<u64> = (0..n).map(|_| self.rng.below(IDS)).collect();
                    let pts = ids
                        .iter()
                        .map(|i| PointInput::new(PointId::Num(*i), vector(*i, tag), None))
                        .collect();
                    let res = c.upsert(pts);
                    self.log
                        .push(format!("{step}: upsert {ids:?} tag {tag} -> {res:?}"));
                    for i in ids {
                        let s = self.model.get_mut(&i).expect("id");
                        match &res {
                            Ok(lsn) => {
                                *s = Slot {
                                    acked: Some(tag),
                                    version: *lsn,
                                    maybe: Vec::new(),
                                }
                            }
                            Err(_) => s.maybe.push(Some(tag)),
                        }
                    }
                }
                45..=59 => {
                    let n = 1 + self.rng.below(3);
                    let ids: BTreeSet<u64> = (0..n).map(|_| self.rng.below(IDS)).collect();
                    let list: Vec<PointId> = ids.iter().map(|i| PointId::Num(*i)).collect();
                    let res = c.delete(&list);
                    self.log.push(format!("{step}: delete {ids:?} -> {res:?}"));
                    for i in ids {
                        let s = self.model.get_mut(&i).expect("id");
                        match &res {
                            Ok(lsn) => {
                                *s = Slot {
                                    acked: None,
                                    version: *lsn,
                                    maybe: Vec::new(),
                                }
                            }
                            Err(_) => s.maybe.push(None),
                        }
                    }
                }
                60..=74 => {
                    let r = c.flush();
                    self.log.push(format!("{step}: flush -> {r:?}"));
                }
                75..=82 => {
                    let r = c.maintain();
                    self.log.push(format!("{step}: maintain -> {r:?}"));
                }
                83..=87 => {
                    let r = c.compact();
                    self.log.push(format!("{step}: compact -> {r:?}"));
                }
                88..=93 => {
                    self.log.push(format!("{step}: reopen"));
                    e = self.restart(e, false);
                    continue;
                }
                _ => {
                    self.log.push(format!("{step}: crash"));
                    e = self.restart(e, true);
                    continue;
                }
            }
            self.check_running(&c);
        }
        self.log.push("final crash".into());
        let e = self.restart(e, true);
        let c = self.coll(&e);
        self.check_running(&c);
    }
}

#[test]
fn random_faults_never_lose_an_acknowledged_write() {
    let seeds: Vec<u64> = match std::env::var("STRATA_FAULT_SEED") {
        Ok(s) => vec![s.parse().expect("STRATA_FAULT_SEED is a number")],
        Err(_) => {
            let n: u64 = std::env::var("STRATA_FAULT_SEEDS")
                .ok()
                .and_then(|s| s.parse().ok())
                .unwrap_or(300);
            (1..=n).collect()
        }
    };
    let mut injected = 0;
    for seed in &seeds {
        let run = Run::new(*seed);
        let faults = Arc::clone(&run.faults);
        run.run(80);
        injected += faults.injected();
    }
    // The workload must actually exercise failures, or it proves nothing.
    assert!(
        injected as usize > seeds.len(),
        "only {injected} faults injected over {} seeds",
        seeds.len()
    );
    eprintln!("{} seeds, {injected} faults injected", seeds.len());
}
