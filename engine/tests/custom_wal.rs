//! The `Wal` trait is a real seam: a second implementation, written here outside the crate
//! (an in-memory log, as an object-store WAL for cluster mode will be one more), runs the
//! engine through writes, flushes, releases and reopens. It also lets a test hand recovery a
//! record no honest writer produces.

use std::sync::{Arc, Mutex};

use strata_engine::storage::MemStorage;
use strata_engine::*;

/// Records in RAM; `sync` is a no-op (RAM is as durable as this log gets).
#[derive(Debug, Default)]
struct MemWal {
    records: Mutex<Vec<(Lsn, u64, Vec<u8>)>>,
    next: Mutex<Lsn>,
}

impl Wal for MemWal {
    fn open(&self, lsn_floor: Lsn, visit: &mut ReplayVisitor<'_>) -> Result<ReplayStats> {
        let records = self.records.lock().expect("lock").clone();
        let mut stats = ReplayStats::default();
        for (lsn, stream, payload) in &records {
            visit(*lsn, *stream, payload)?;
            stats.records += 1;
            stats.last_lsn = *lsn;
        }
        *self.next.lock().expect("lock") = stats.last_lsn.max(lsn_floor) + 1;
        Ok(stats)
    }
    fn append(&self, stream: u64, payload: &[u8]) -> Result<Lsn> {
        let mut next = self.next.lock().expect("lock");
        let lsn = *next;
        *next += 1;
        self.records
            .lock()
            .expect("lock")
            .push((lsn, stream, payload.to_vec()));
        Ok(lsn)
    }
    fn sync(&self, _lsn: Lsn) -> Result<()> {
        Ok(())
    }
    fn last_lsn(&self) -> Lsn {
        *self.next.lock().expect("lock") - 1
    }
    fn release(&self, needed: &dyn Fn(u64, Lsn) -> bool) -> Result<usize> {
        let mut r = self.records.lock().expect("lock");
        let before = r.len();
        r.retain(|(lsn, stream, _)| needed(*stream, *lsn));
        Ok(before - r.len())
    }
}

fn opts(storage: &MemStorage, wal: &Arc<MemWal>) -> EngineOptions {
    let mut o = EngineOptions::with_storage(storage.storage());
    o.wal = Some(Arc::clone(wal) as Arc<dyn Wal>);
    o.background = false;
    o
}

fn point(i: u64) -> PointInput {
    PointInput::new(PointId::Num(i), vec![i as f32, 1.0, 0.0], None)
}

#[test]
fn the_engine_runs_on_a_wal_written_outside_the_crate() {
    let storage = MemStorage::new();
    let wal = Arc::new(MemWal::default());
    {
        let e = Engine::open(opts(&storage, &wal)).expect("open");
        let c = e
            .create_collection(DEFAULT_TENANT, "c", CollectionConfig::new(3, Distance::Dot))
            .expect("create");
        c.upsert((0..10).map(point).collect()).expect("upsert");
        c.flush().expect("flush");
        assert!(
            wal.records.lock().expect("lock").is_empty(),
            "a flush releases what the published manifest covers"
        );
        c.upsert((10..15).map(point).collect()).expect("upsert");
        c.delete(&[PointId::Num(3)]).expect("delete");
        assert_eq!(wal.records.lock().expect("lock").len(), 2);
    }
    let e = Engine::open(opts(&storage, &wal)).expect("reopen");
    assert_eq!(e.recovery_report().wal_records_replayed, 2);
    let c = e.collection(DEFAULT_TENANT, "c").expect("c");
    assert_eq!(c.count(None).expect("count"), 14);
    assert!(
        c.get(&[PointId::Num(3)], false, false)
            .expect("get")
            .is_empty()
    );
    let v = c.upsert(vec![point(99)]).expect("upsert");
    assert!(
        v > e.recovery_report().last_lsn,
        "numbering continues after replay"
    );
}

#[test]
fn a_replayed_record_that_does_not_fit_its_collection_stops_recovery_by_name() {
    // A record with the wrong dimension used to panic in the memtable on replay.
    let storage = MemStorage::new();
    let wal = Arc::new(MemWal::default());
    let stream = {
        let e = Engine::open(opts(&storage, &wal)).expect("open");
        let c = e
            .create_collection(DEFAULT_TENANT, "c", CollectionConfig::new(3, Distance::Dot))
            .expect("create");
        c.upsert(vec![point(1)]).expect("upsert");
        wal.records.lock().expect("lock")[0].1
    };
    // The same op encoding with a 2-dimensional vector: op 1 (upsert), count 1, id tag 0,
    // id 7, dim 2, two floats, empty payload.
    let mut rec = vec![1u8];
    rec.extend_from_slice(&1u32.to_le_bytes());
    rec.push(0);
    rec.extend_from_slice(&7u64.to_le_bytes());
    rec.extend_from_slice(&2u32.to_le_bytes());
    rec.extend_from_slice(&1f32.to_le_bytes());
    rec.extend_from_slice(&2f32.to_le_bytes());
    rec.extend_from_slice(&0u32.to_le_bytes());
    wal.append(stream, &rec).expect("append");
    let err = Engine::open(opts(&storage, &wal)).expect_err("refused");
    assert_eq!(err.kind(), ErrorKind::Corruption);
    assert!(
        err.to_string()
            .contains("2 dimensions in vector \"\"; it has 3"),
        "{err}"
    );
    // A non-finite component is refused the same way.
    wal.records.lock().expect("lock").pop();
    let mut nan = rec.clone();
    let at = nan.len() - 8;
    nan[at..at + 4].copy_from_slice(&f32::NAN.to_le_bytes());
    nan[14..18].copy_from_slice(&3u32.to_le_bytes());
    nan.splice(at..at, 5f32.to_le_bytes());
    wal.append(stream, &nan).expect("append");
    let err = Engine::open(opts(&storage, &wal)).expect_err("refused");
    assert!(err.to_string().contains("non-finite"), "{err}");
}
