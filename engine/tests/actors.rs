//! Actor state in the engine (`docs/actors.md`): versions are LSNs (ETags); conditional writes
//! are decided in WAL order (concurrent read-modify-write loops lose no increment); TTL with an
//! injected clock; transactions all or nothing; everything survives a reopen; and a model-based
//! test of random operations against a reference map.

use std::collections::BTreeMap;
use std::sync::Arc;

use proptest::prelude::*;
use strata_engine::*;

#[path = "support/block_on.rs"]
mod block_on;
#[path = "support/counting.rs"]
mod counting;

fn open(dir: &std::path::Path, clock: Arc<ManualClock>) -> Engine {
    let mut o = EngineOptions::new(dir);
    o.background = false;
    o.clock = clock;
    Engine::open(o).expect("open")
}

fn put(a: &ActorHandle, actor: &str, state: &str, v: &[u8], c: ActorCondition) -> Result<u64> {
    a.put(
        actor,
        state,
        v.to_vec(),
        "application/octet-stream",
        None,
        c,
    )
}

#[test]
fn concurrent_read_modify_write_loops_lose_no_increment_and_survive_a_reopen() {
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = Arc::new(ManualClock::new(1_000));
    let engine = Arc::new(open(dir.path(), Arc::clone(&clock)));
    let a = engine.actors(DEFAULT_TENANT, "counter").expect("store");
    put(&a, "c1", "state", b"0", ActorCondition::IfNoneMatch).expect("create");
    let (threads, each) = (8, 40);
    let conflicts = std::sync::atomic::AtomicU64::new(0);
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| {
                for _ in 0..each {
                    loop {
                        let cur = a.get("c1", "state").expect("get").expect("present");
                        let n: u64 = std::str::from_utf8(&cur.value)
                            .expect("utf8")
                            .parse()
                            .expect("number");
                        let next = (n + 1).to_string();
                        match put(
                            &a,
                            "c1",
                            "state",
                            next.as_bytes(),
                            ActorCondition::IfMatch(cur.version),
                        ) {
                            Ok(v) => {
                                assert!(v > cur.version);
                                break;
                            }
                            Err(e) => {
                                assert_eq!(e.kind(), ErrorKind::FailedPrecondition, "{e}");
                                let now =
                                    e.conflict_version().expect("a conflict").expect("present");
                                assert!(now > cur.version, "the winner's version is newer");
                                conflicts.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                            }
                        }
                    }
                }
            });
        }
    });
    let total = threads * each;
    let got = a.get("c1", "state").expect("get").expect("present");
    assert_eq!(got.value, total.to_string().into_bytes());
    eprintln!(
        "{total} increments, {} conflicts retried",
        conflicts.into_inner()
    );
    let version = got.version;
    drop(a);
    let engine = Arc::try_unwrap(engine).expect("sole owner");
    drop(engine);
    // Reopened: the WAL replays the same value and version.
    let engine = open(dir.path(), clock);
    let a = engine.actors(DEFAULT_TENANT, "counter").expect("store");
    let again = a.get("c1", "state").expect("get").expect("present");
    assert_eq!(
        (again.value, again.version),
        (total.to_string().into_bytes(), version)
    );
}

#[test]
fn ttl_expiry_follows_the_injected_clock() {
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = Arc::new(ManualClock::new(10_000));
    let engine = open(dir.path(), Arc::clone(&clock));
    let a = engine.actors(DEFAULT_TENANT, "session").expect("store");
    a.put(
        "u1",
        "state",
        b"x".to_vec(),
        "application/json",
        Some(500),
        ActorCondition::None,
    )
    .expect("put");
    let s = a.get("u1", "state").expect("get").expect("present");
    assert_eq!(
        (s.content_type.as_str(), s.expires_at_ms),
        ("application/json", Some(10_500))
    );
    clock.advance(499);
    assert!(a.get("u1", "state").expect("get").is_some());
    assert_eq!(a.list(None, 10).expect("list"), vec!["u1".to_string()]);
    clock.advance(1);
    assert!(
        a.get("u1", "state").expect("get").is_none(),
        "expired at once"
    );
    assert!(a.list(None, 10).expect("list").is_empty());
    // An expired state is absent for conditions too: create-only succeeds.
    put(&a, "u1", "state", b"y", ActorCondition::IfNoneMatch).expect("create again");
    let e = a
        .put(
            "u1",
            "state",
            b"z".to_vec(),
            "t",
            Some(0),
            ActorCondition::None,
        )
        .expect_err("ttl 0");
    assert!(e.message().contains("ttl"), "{e}");
}

#[test]
fn a_failed_condition_applies_nothing_of_the_transaction() {
    let dir = tempfile::tempdir().expect("tempdir");
    let engine = open(dir.path(), Arc::new(ManualClock::new(1)));
    let a = engine.actors(DEFAULT_TENANT, "bank").expect("store");
    let va = put(&a, "acct", "a", b"100", ActorCondition::None).expect("a");
    let vb = put(&a, "acct", "b", b"0", ActorCondition::None).expect("b");
    let w = |state: &str, v: &[u8], c| ActorWrite::Put {
        state: state.into(),
        value: v.to_vec(),
        content_type: "text/plain".into(),
        ttl_ms: None,
        condition: c,
    };
    let e = a
        .transaction(
            "acct",
            vec![
                w("a", b"50", ActorCondition::IfMatch(va)),
                w("b", b"50", ActorCondition::IfMatch(vb + 1000)),
                w("log", b"moved", ActorCondition::IfNoneMatch),
            ],
        )
        .expect_err("b's version is wrong");
    assert_eq!(e.conflict_version(), Some(Some(vb)));
    assert!(e.message().contains("\"b\""), "{e}");
    assert_eq!(a.get("acct", "a").expect("get").expect("a").value, b"100");
    assert!(a.get("acct", "log").expect("get").is_none());
    let commit = a
        .commit(
            "acct",
            vec![
                w("a", b"50", ActorCondition::IfMatch(va)),
                w("b", b"50", ActorCondition::IfMatch(vb)),
                ActorWrite::Delete {
                    state: "gone".into(),
                    condition: ActorCondition::None,
                },
                w("new", b"1", ActorCondition::None),
            ],
            true,
        )
        .expect("all hold");
    // Which states existed; the delete of one that did not is not written.
    assert_eq!(
        commit.existed,
        vec![Some(true), Some(true), Some(false), Some(false)]
    );
    let lsn = commit.version.expect("written");
    assert_eq!(
        a.transaction(
            "acct",
            vec![ActorWrite::Delete {
                state: "gone".into(),
                condition: ActorCondition::None,
            }],
        )
        .expect("nothing to delete"),
        None,
        "nothing written"
    );
    assert_eq!(engine.last_lsn(), lsn, "no record logged");
    for s in ["a", "b"] {
        let got = a.get("acct", s).expect("get").expect("present");
        assert_eq!(
            (got.value, got.version),
            (b"50".to_vec(), lsn),
            "one LSN for the whole transaction"
        );
    }
    // Bad input names the field.
    let e = a
        .transaction(
            "acct",
            vec![
                w("a", b"1", ActorCondition::None),
                w("a", b"2", ActorCondition::None),
            ],
        )
        .expect_err("twice");
    assert!(e.message().contains("operations[1].state"), "{e}");
    let e = a
        .put(
            "acct",
            "c",
            b"1".to_vec(),
            "text/plain; charset=\u{e9}",
            None,
            ActorCondition::None,
        )
        .expect_err("a content type that is not ASCII");
    assert!(e.message().contains("content_type"), "{e}");
    let e = a.get("", "state").expect_err("empty id");
    assert!(e.message().starts_with("id"), "{e}");
    assert!(engine.actors(DEFAULT_TENANT, "../x").is_err());
}

#[derive(Clone, Debug)]
enum Step {
    Put {
        store: u8,
        actor: u8,
        state: u8,
        value: u8,
        cond: u8,
        ttl: Option<u8>,
    },
    Delete {
        store: u8,
        actor: u8,
        state: u8,
        cond: u8,
    },
    Txn {
        store: u8,
        actor: u8,
        puts: Vec<(u8, u8)>,
        stale: bool,
    },
    Advance(u16),
    Flush(u8),
    Compact(u8, bool),
    /// A tier hint for a store, then one mover pass.
    Tier(u8, u8),
    Reopen,
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        4 => (0u8..2, 0u8..4, 0u8..3, any::<u8>(), 0u8..5, prop::option::of(1u8..50)).prop_map(|(store, actor, state, value, cond, ttl)| Step::Put { store, actor, state, value, cond, ttl }),
        2 => (0u8..2, 0u8..4, 0u8..3, 0u8..5).prop_map(|(store, actor, state, cond)| Step::Delete { store, actor, state, cond }),
        2 => (0u8..2, 0u8..4, prop::collection::btree_map(0u8..3, any::<u8>(), 1..3), any::<bool>()).prop_map(|(store, actor, puts, stale)| Step::Txn { store, actor, puts: puts.into_iter().collect(), stale }),
        1 => (1u16..100).prop_map(Step::Advance),
        2 => (0u8..2).prop_map(Step::Flush),
        1 => (0u8..2, any::<bool>()).prop_map(|(s, full)| Step::Compact(s, full)),
        1 => (0u8..2, 0u8..4).prop_map(|(s, h)| Step::Tier(s, h)),
        1 => Just(Step::Reopen),
    ]
}

/// Reference: (actor, state) → (value, version, expiry).
type Model = BTreeMap<(String, String), (Vec<u8>, u64, Option<u64>)>;

fn live(m: &Model, k: &(String, String), now: u64) -> Option<(Vec<u8>, u64)> {
    m.get(k)
        .filter(|(_, _, e)| e.is_none_or(|e| e > now))
        .map(|(v, ver, _)| (v.clone(), *ver))
}

/// An engine on RAM storage with a cold store in RAM (tier moves included; room for 64 MiB
/// hot), no background threads.
fn open_tiered(
    local: &storage::MemStorage,
    cold: &Arc<dyn storage::BlobStore>,
    clock: &Arc<ManualClock>,
) -> Engine {
    let mut o = EngineOptions::with_storage(local.storage());
    o.cold = Some(Arc::clone(cold));
    o.background = false;
    o.clock = Arc::clone(clock) as Arc<dyn Clock>;
    o.tiers.min_residence = std::time::Duration::ZERO;
    o.tiers.hot_bytes = 64 << 20;
    Engine::open(o).expect("open")
}

const HINTS: [TierHint; 4] = [
    TierHint::Auto,
    TierHint::PinHot,
    TierHint::Warm,
    TierHint::Offload,
];

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]
    /// Random get / put / delete / transaction / flush / compact / tier move / reopen
    /// sequences on two actor stores (records of both interleave in one WAL) match a
    /// reference map: every state and version, conflicts with the current version, lists
    /// walked in pages of two.
    #[test]
    fn random_operations_match_a_reference_map(steps in prop::collection::vec(step(), 1..80)) {
        let local = storage::MemStorage::new();
        let cold: Arc<dyn storage::BlobStore> = Arc::new(storage::MemStore::new());
        let clock = Arc::new(ManualClock::new(1_000));
        let mut engine = open_tiered(&local, &cold, &clock);
        let types = ["m", "n"];
        let mut stores: Vec<ActorHandle> = types.iter().map(|t| engine.actors(DEFAULT_TENANT, t).expect("store")).collect();
        let mut models = [Model::new(), Model::new()];
        let name = |actor: u8, state: u8| (format!("actor{actor}"), format!("s{state}"));
        // A condition from a code: 0 none, 1 if-match the current version (or a wrong one
        // when absent), 2 if-none-match, 3 if-match a wrong version (a newer one).
        let cond = |m: &Model, k: &(String, String), code: u8, now: u64| match code {
            1 => ActorCondition::IfMatch(live(m, k, now).map_or(7, |(_, v)| v)),
            2 => ActorCondition::IfNoneMatch,
            3 => ActorCondition::IfMatch(live(m, k, now).map_or(7, |(_, v)| v + 1)),
            4 => ActorCondition::IfExists,
            _ => ActorCondition::None,
        };
        let holds = |m: &Model, k: &(String, String), c: ActorCondition, now: u64| match c {
            ActorCondition::None => true,
            ActorCondition::IfMatch(v) => live(m, k, now).is_some_and(|(_, cur)| cur == v),
            ActorCondition::IfNoneMatch => live(m, k, now).is_none(),
            ActorCondition::IfExists => live(m, k, now).is_some(),
        };
        for s in steps {
            let now = clock.now_millis();
            match s {
                Step::Put { store, actor, state, value, cond: code, ttl } => {
                    let (a, model) = (&stores[store as usize], &mut models[store as usize]);
                    let k = name(actor, state);
                    let c = cond(model, &k, code, now);
                    // Odd values take the async path (awaiting the syncer), even ones block.
                    let write = ActorWrite::Put { state: k.1.clone(), value: vec![value], content_type: "b".into(), ttl_ms: ttl.map(u64::from), condition: c };
                    let r = match (value % 2 == 1).then(|| a.commit_async(&k.0, vec![write.clone()], false)).flatten() {
                        Some(f) => block_on::block_on(f),
                        None => a.commit(&k.0, vec![write], false),
                    }
                    .map(|c| c.version.expect("a put writes"));
                    if holds(model, &k, c, now) {
                        let v = r.expect("condition holds");
                        model.insert(k, (vec![value], v, ttl.map(|t| now + u64::from(t))));
                    } else {
                        let e = r.expect_err("condition fails");
                        prop_assert_eq!(e.kind(), ErrorKind::FailedPrecondition);
                        prop_assert_eq!(e.conflict_version(), Some(live(model, &k, now).map(|(_, v)| v)));
                    }
                }
                Step::Delete { store, actor, state, cond: code } => {
                    let (a, model) = (&stores[store as usize], &mut models[store as usize]);
                    let k = name(actor, state);
                    let c = cond(model, &k, code, now);
                    let r = a.delete(&k.0, &k.1, c);
                    if holds(model, &k, c, now) {
                        // Nothing is written (no version) when there was nothing to delete.
                        let v = r.expect("condition holds");
                        prop_assert_eq!(v.is_some(), live(model, &k, now).is_some());
                        model.remove(&k);
                    } else {
                        prop_assert_eq!(r.expect_err("condition fails").conflict_version(), Some(live(model, &k, now).map(|(_, v)| v)));
                    }
                }
                Step::Txn { store, actor, puts, stale } => {
                    let (a, model) = (&stores[store as usize], &mut models[store as usize]);
                    let keys: Vec<(String, String)> = puts.iter().map(|(s, _)| name(actor, *s)).collect();
                    let writes: Vec<ActorWrite> = puts.iter().zip(&keys).enumerate().map(|(i, ((_, v), k))| ActorWrite::Put {
                        state: k.1.clone(),
                        value: vec![*v],
                        content_type: "b".into(),
                        ttl_ms: None,
                        // The last write is conditioned on a stale version when `stale`.
                        condition: match (stale && i + 1 == keys.len(), live(model, k, now)) {
                            (true, _) => ActorCondition::IfMatch(u64::MAX),
                            (false, Some((_, v))) => ActorCondition::IfMatch(v),
                            (false, None) => ActorCondition::IfNoneMatch,
                        },
                    }).collect();
                    let r = a.transaction(&keys[0].0, writes);
                    if stale {
                        prop_assert!(r.is_err());
                    } else {
                        let v = r.expect("all conditions hold").expect("puts write");
                        for ((_, val), k) in puts.iter().zip(keys) {
                            model.insert(k, (vec![*val], v, None));
                        }
                    }
                }
                Step::Advance(ms) => clock.advance(u64::from(ms)),
                Step::Flush(s) => {
                    stores[s as usize].flush().expect("flush");
                }
                Step::Compact(s, full) => {
                    stores[s as usize].compact(full).expect("compact");
                }
                Step::Tier(s, h) => {
                    stores[s as usize].set_tier_hint(HINTS[h as usize]).expect("hint");
                    engine.run_mover().expect("mover");
                    let tiers = stores[s as usize].segments_per_tier();
                    match HINTS[h as usize] {
                        TierHint::Offload => prop_assert_eq!(&tiers[..2], &[0, 0][..]),
                        TierHint::PinHot => prop_assert_eq!(&tiers[1..], &[0, 0][..]),
                        _ => {}
                    }
                }
                Step::Reopen => {
                    stores.clear();
                    drop(engine);
                    engine = open_tiered(&local, &cold, &clock);
                    stores = types.iter().map(|t| engine.actors(DEFAULT_TENANT, t).expect("store")).collect();
                }
            }
            let now = clock.now_millis();
            for (a, model) in stores.iter().zip(&models) {
                for actor in 0..4 {
                    for state in 0..3 {
                        let k = name(actor, state);
                        let got = a.get(&k.0, &k.1).expect("get").map(|s| (s.value, s.version));
                        prop_assert_eq!(&got, &live(model, &k, now), "{} {:?}", a.actor_type(), k);
                        // Without I/O: the same answer, or none (a warm or cold block to read).
                        if let Some(r) = a.get_resident(&k.0, &k.1) {
                            prop_assert_eq!(r.expect("resident").map(|s| (s.value, s.version)), got);
                        }
                    }
                }
                let want: Vec<String> = (0..4).map(|x| format!("actor{x}"))
                    .filter(|x| (0..3).any(|s| live(model, &(x.clone(), format!("s{s}")), now).is_some()))
                    .collect();
                prop_assert_eq!(a.list(None, 100).expect("list"), want.clone());
                // Pages of two, each starting after the last id of the one before.
                let mut paged: Vec<String> = Vec::new();
                loop {
                    let page = a.list(paged.last().map(String::as_str), 2).expect("page");
                    prop_assert!(page.len() <= 2);
                    if page.is_empty() {
                        break;
                    }
                    paged.extend(page);
                }
                prop_assert_eq!(paged, want);
            }
        }
    }
}

/// States that age out to the cold tier read back with the same value and version, and a get
/// of one costs one ranged read of the cold store (a key the bloom filter rules out, none).
#[test]
fn a_cold_get_costs_one_ranged_read() {
    let local = storage::MemStorage::new();
    let mem: Arc<dyn storage::BlobStore> = Arc::new(storage::MemStore::new());
    let counting = Arc::new(counting::CountingStore {
        inner: Arc::clone(&mem),
        reads: Default::default(),
        delay: std::time::Duration::ZERO,
    });
    let cold: Arc<dyn storage::BlobStore> = Arc::clone(&counting) as Arc<dyn storage::BlobStore>;
    let clock = Arc::new(ManualClock::new(1_000));
    let engine = open_tiered(&local, &cold, &clock);
    let a = engine.actors(DEFAULT_TENANT, "player").expect("store");
    let mut versions = Vec::new();
    for i in 0..2_000u32 {
        let v = put(
            &a,
            &format!("p{i:05}"),
            "state",
            format!("value {i}").as_bytes(),
            ActorCondition::None,
        )
        .expect("put");
        versions.push(v);
    }
    assert!(a.flush().expect("flush"));
    a.set_tier_hint(TierHint::Offload).expect("hint");
    engine.run_mover().expect("mover");
    assert_eq!(a.segments_per_tier(), [0, 0, 1]);
    assert_eq!(engine.stats().actor_states, [0, 0, 2_000]);
    let segment = local_segment_names(&local);
    assert!(
        segment.iter().all(|n| n.ends_with(".meta")),
        "only the meta file stays local: {segment:?}"
    );
    for i in [0u32, 1, 777, 1_999] {
        let before = counting.total();
        let reads_before = engine.stats().actor_segment_reads;
        let got = a
            .get(&format!("p{i:05}"), "state")
            .expect("get")
            .expect("present");
        assert_eq!(got.value, format!("value {i}").as_bytes());
        assert_eq!(got.version, versions[i as usize]);
        assert_eq!(
            counting.total() - before,
            1,
            "one ranged read of the cold store per get"
        );
        assert_eq!(engine.stats().actor_segment_reads[2] - reads_before[2], 1);
    }
    // Absent keys: the bloom filter answers almost all without any read.
    let before = counting.total();
    for i in 0..200 {
        assert_eq!(a.get(&format!("q{i:05}"), "state").expect("get"), None);
    }
    assert!(
        counting.total() - before <= 10,
        "{} reads for 200 absent keys",
        counting.total() - before
    );
    // A conditional write on a cold state checks against its cold version.
    let e = put(
        &a,
        "p00005",
        "state",
        b"x",
        ActorCondition::IfMatch(versions[5] + 1),
    )
    .expect_err("stale");
    assert_eq!(e.conflict_version(), Some(Some(versions[5])));
    put(
        &a,
        "p00005",
        "state",
        b"x",
        ActorCondition::IfMatch(versions[5]),
    )
    .expect("current");
    // Back to warm: positional reads of the local file, no cold read.
    a.set_tier_hint(TierHint::Warm).expect("hint");
    engine.run_mover().expect("mover");
    assert_eq!(a.segments_per_tier(), [0, 1, 0]);
    let before = counting.total();
    assert_eq!(
        a.get("p01234", "state")
            .expect("get")
            .expect("present")
            .version,
        versions[1234]
    );
    assert_eq!(counting.total(), before);
    // A restart with an empty local directory restores from the cold store alone.
    drop(a);
    drop(engine);
    let engine = open_tiered(&storage::MemStorage::new(), &cold, &clock);
    let a = engine
        .actors_existing(DEFAULT_TENANT, "player")
        .expect("ok")
        .expect("restored");
    assert_eq!(
        a.get("p01999", "state")
            .expect("get")
            .expect("present")
            .version,
        versions[1999]
    );
    assert_eq!(
        a.list(None, 3).expect("list"),
        vec!["p00000", "p00001", "p00002"]
    );
}

fn local_segment_names(local: &storage::MemStorage) -> Vec<String> {
    local
        .storage()
        .blobs
        .list(storage::layout::SEGMENTS)
        .expect("list")
        .into_iter()
        .map(|m| m.name)
        .collect()
}

#[test]
fn reads_never_create_a_store_and_a_created_one_survives_a_reopen() {
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = Arc::new(ManualClock::new(1));
    let engine = open(dir.path(), Arc::clone(&clock));
    assert!(
        engine
            .actors_existing(DEFAULT_TENANT, "t")
            .expect("lookup")
            .is_none()
    );
    assert!(
        engine
            .actors_existing(DEFAULT_TENANT, "t")
            .expect("lookup")
            .is_none()
    );
    let a = engine.actors(DEFAULT_TENANT, "t").expect("created");
    let v = put(&a, "x", "state", b"1", ActorCondition::None).expect("put");
    drop(a);
    drop(engine);
    let engine = open(dir.path(), clock);
    let a = engine
        .actors_existing(DEFAULT_TENANT, "t")
        .expect("lookup")
        .expect("in the manifest");
    assert_eq!(
        a.get("x", "state").expect("get").map(|s| s.version),
        Some(v)
    );
    assert!(
        engine
            .actors_existing("other", "t")
            .expect("lookup")
            .is_none(),
        "per tenant"
    );
}

/// Async commits (no thread held while the WAL syncs; conditions see pending writes) and
/// blocking ones decide conditions together: 8 clients — half async, half blocking — do 40
/// If-Match increments each of one counter while another thread keeps flushing the store
/// (seals with writes pending); the counter ends at exactly 320 and survives a reopen.
#[test]
fn async_and_blocking_commits_decide_conditions_together_through_flushes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = Arc::new(ManualClock::new(1_000));
    let engine = Arc::new(open(dir.path(), Arc::clone(&clock)));
    let a = engine.actors(DEFAULT_TENANT, "counter").expect("store");
    put(&a, "c1", "state", b"0", ActorCondition::IfNoneMatch).expect("create");
    let (threads, each) = (8usize, 40usize);
    let went_async = std::sync::atomic::AtomicU64::new(0);
    let stop = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|s| {
        let flusher = s.spawn(|| {
            let mut flushes = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                flushes += u32::from(a.flush().expect("flush"));
                std::thread::sleep(std::time::Duration::from_millis(2));
            }
            flushes
        });
        let clients: Vec<_> = (0..threads)
            .map(|t| {
                let (a, went_async) = (&a, &went_async);
                s.spawn(move || {
                    for _ in 0..each {
                        loop {
                            let cur = a.get("c1", "state").expect("get").expect("present");
                            let n: u64 = std::str::from_utf8(&cur.value)
                                .expect("utf8")
                                .parse()
                                .expect("number");
                            let w = vec![ActorWrite::Put {
                                state: "state".into(),
                                value: (n + 1).to_string().into_bytes(),
                                content_type: "text/plain".into(),
                                ttl_ms: None,
                                condition: ActorCondition::IfMatch(cur.version),
                            }];
                            let r = match (t % 2 == 0)
                                .then(|| a.commit_async("c1", w.clone(), false))
                                .flatten()
                            {
                                Some(f) => {
                                    went_async.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                                    block_on::block_on(f)
                                }
                                None => a.commit("c1", w, false),
                            };
                            match r {
                                Ok(c) => {
                                    assert!(c.version.expect("written") > cur.version);
                                    break;
                                }
                                Err(e) => {
                                    assert_eq!(e.kind(), ErrorKind::FailedPrecondition, "{e}")
                                }
                            }
                        }
                    }
                })
            })
            .collect();
        for c in clients {
            c.join().expect("client");
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        assert!(
            flusher.join().expect("flusher") > 0,
            "flushes ran meanwhile"
        );
    });
    assert!(
        went_async.load(std::sync::atomic::Ordering::Relaxed) > 0,
        "the async path ran"
    );
    let want = (threads * each).to_string().into_bytes();
    assert_eq!(
        a.get("c1", "state").expect("get").expect("present").value,
        want
    );
    drop(a);
    let engine = Arc::try_unwrap(engine).expect("one owner");
    drop(engine);
    let engine = open(dir.path(), clock);
    let a = engine.actors(DEFAULT_TENANT, "counter").expect("store");
    assert_eq!(
        a.get("c1", "state").expect("get").expect("present").value,
        want
    );
}

/// An async commit whose future is dropped (a client gone) is still applied once durable (the
/// syncer applies it), so reads and conditions agree on it.
#[test]
fn an_async_commit_is_applied_even_when_nobody_awaits_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let engine = open(dir.path(), Arc::new(ManualClock::new(1)));
    let a = engine.actors(DEFAULT_TENANT, "t").expect("store");
    let w = vec![ActorWrite::Put {
        state: "state".into(),
        value: b"v".to_vec(),
        content_type: "b".into(),
        ttl_ms: None,
        condition: ActorCondition::IfNoneMatch,
    }];
    drop(a.commit_async("x", w, false).expect("no I/O needed"));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    let got = loop {
        if let Some(s) = a.get("x", "state").expect("get") {
            break s;
        }
        assert!(std::time::Instant::now() < deadline, "never applied");
        std::thread::sleep(std::time::Duration::from_millis(1));
    };
    assert_eq!(got.value, b"v");
    // Its version is the current one for conditions too.
    put(&a, "x", "state", b"w", ActorCondition::IfMatch(got.version)).expect("current");
}

/// The cold store failing under actor segments: a flush whose upload fails keeps every state
/// readable from RAM and the WAL (a crash then loses nothing acknowledged); an offload whose
/// upload fails leaves the segment where it was; a cold read that fails answers an error —
/// never "absent" or another version — and the same get succeeds once the store is back; a
/// restore from the cold store alone then has everything.
#[test]
fn a_failing_cold_store_under_actor_segments_loses_nothing_and_never_misreads() {
    use std::io;
    use storage::{Fault, FaultOp, FaultRule, Faults, FaultyStore, Trigger};
    let local = storage::MemStorage::new();
    let mem: Arc<dyn storage::BlobStore> = Arc::new(storage::MemStore::new());
    let faults = Faults::new(11);
    let cold: Arc<dyn storage::BlobStore> =
        Arc::new(FaultyStore::new(Arc::clone(&mem), Arc::clone(&faults)));
    let clock = Arc::new(ManualClock::new(1_000));
    let engine = open_tiered(&local, &cold, &clock);
    let a = engine.actors(DEFAULT_TENANT, "player").expect("store");
    let mut versions = BTreeMap::new();
    for i in 0..500u32 {
        let id = format!("p{i:04}");
        let v = put(&a, &id, "state", id.as_bytes(), ActorCondition::None).expect("put");
        versions.insert(id, v);
    }
    let check_all = |a: &ActorHandle, versions: &BTreeMap<String, u64>| {
        for (id, v) in versions {
            let got = a.get(id, "state").expect("get").expect("present");
            assert_eq!((got.value.as_slice(), got.version), (id.as_bytes(), *v));
        }
    };
    // 1. Every upload fails: the flush fails, nothing is lost or hidden, writes go on.
    faults.add(
        FaultRule::new(FaultOp::Write, Trigger::From(1))
            .fault(Fault::Error(io::ErrorKind::ConnectionReset))
            .on("segments/"),
    );
    let e = a.flush().expect_err("the upload fails");
    assert!(e.to_string().contains("injected"), "{e}");
    assert_eq!(a.segments_per_tier(), [0, 0, 0]);
    check_all(&a, &versions);
    let v = put(&a, "late", "state", b"late", ActorCondition::None).expect("writes go on");
    versions.insert("late".into(), v);
    // A crash now: the WAL still holds every acknowledged write.
    drop(a);
    drop(engine);
    local.crash(None);
    faults.clear();
    let engine = open_tiered(&local, &cold, &clock);
    let a = engine.actors(DEFAULT_TENANT, "player").expect("store");
    check_all(&a, &versions);
    assert!(a.flush().expect("the store is back"));
    assert_eq!(a.segments_per_tier().iter().sum::<u64>(), 1);
    // 2. Offload (the segment was uploaded at flush: the move drops the local copy), then the
    // cold store's reads fail: gets and conditional writes on those states answer errors.
    a.set_tier_hint(TierHint::Offload).expect("hint");
    engine.run_mover().expect("mover");
    assert_eq!(a.segments_per_tier(), [0, 0, 1]);
    faults.add(
        FaultRule::new(FaultOp::Read, Trigger::From(1))
            .fault(Fault::Error(io::ErrorKind::TimedOut))
            .on("segments/"),
    );
    for id in ["p0000", "p0250", "late"] {
        let e = a
            .get(id, "state")
            .expect_err("a failed cold read is an error, not an absent state");
        assert!(e.to_string().contains("injected"), "{e}");
        // A conditional write cannot be decided without the current version: refused too.
        assert!(
            put(&a, id, "state", b"x", ActorCondition::IfMatch(versions[id])).is_err(),
            "a condition on an unreadable state is not taken as a conflict or a pass"
        );
    }
    // Fetching it back to the local disk fails too: the segment stays cold, nothing is lost.
    a.set_tier_hint(TierHint::Warm).expect("hint");
    let _ = engine.run_mover();
    assert_eq!(
        a.segments_per_tier(),
        [0, 0, 1],
        "a failed fetch moves nothing"
    );
    // 3. The store is back: the same gets answer the same values and versions, and the
    // fetch goes through.
    faults.clear();
    check_all(&a, &versions);
    clock.advance(3_600_000); // past the failed move's backoff
    engine.run_mover().expect("mover");
    assert_eq!(a.segments_per_tier(), [0, 1, 0]);
    check_all(&a, &versions);
    a.set_tier_hint(TierHint::Offload).expect("hint");
    engine.run_mover().expect("mover");
    // 4. A new node restores from the cold store alone.
    drop(a);
    drop(engine);
    let engine = open_tiered(&storage::MemStorage::new(), &cold, &clock);
    let a = engine
        .actors_existing(DEFAULT_TENANT, "player")
        .expect("ok")
        .expect("restored");
    check_all(&a, &versions);
}
