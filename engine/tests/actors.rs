//! Actor state in the engine (`docs/actors.md`): versions are LSNs (ETags); conditional writes
//! are decided in WAL order (concurrent read-modify-write loops lose no increment); TTL with an
//! injected clock; transactions all or nothing; everything survives a reopen; and a model-based
//! test of random operations against a reference map.

use std::collections::BTreeMap;
use std::sync::Arc;

use proptest::prelude::*;
use strata_engine::*;

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
    let lsn = a
        .transaction(
            "acct",
            vec![
                w("a", b"50", ActorCondition::IfMatch(va)),
                w("b", b"50", ActorCondition::IfMatch(vb)),
                ActorWrite::Delete {
                    state: "gone".into(),
                    condition: ActorCondition::None,
                },
            ],
        )
        .expect("all hold");
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
        actor: u8,
        state: u8,
        value: u8,
        cond: u8,
        ttl: Option<u8>,
    },
    Delete {
        actor: u8,
        state: u8,
        cond: u8,
    },
    Txn {
        actor: u8,
        puts: Vec<(u8, u8)>,
        stale: bool,
    },
    Advance(u16),
    Reopen,
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        4 => (0u8..4, 0u8..3, any::<u8>(), 0u8..3, prop::option::of(1u8..50)).prop_map(|(actor, state, value, cond, ttl)| Step::Put { actor, state, value, cond, ttl }),
        2 => (0u8..4, 0u8..3, 0u8..3).prop_map(|(actor, state, cond)| Step::Delete { actor, state, cond }),
        2 => (0u8..4, prop::collection::btree_map(0u8..3, any::<u8>(), 1..3), any::<bool>()).prop_map(|(actor, puts, stale)| Step::Txn { actor, puts: puts.into_iter().collect(), stale }),
        1 => (1u16..100).prop_map(Step::Advance),
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

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]
    #[test]
    fn random_operations_match_a_reference_map(steps in prop::collection::vec(step(), 1..60)) {
        let dir = tempfile::tempdir().expect("tempdir");
        let clock = Arc::new(ManualClock::new(1_000));
        let mut engine = open(dir.path(), Arc::clone(&clock));
        let mut a = engine.actors(DEFAULT_TENANT, "m").expect("store");
        let mut model = Model::new();
        let name = |actor: u8, state: u8| (format!("actor{actor}"), format!("s{state}"));
        // A condition from a code: 0 none, 1 if-match the current version (or a wrong one
        // when absent), 2 if-none-match.
        let cond = |m: &Model, k: &(String, String), code: u8, now: u64| match code {
            1 => ActorCondition::IfMatch(live(m, k, now).map_or(7, |(_, v)| v)),
            2 => ActorCondition::IfNoneMatch,
            _ => ActorCondition::None,
        };
        let holds = |m: &Model, k: &(String, String), c: ActorCondition, now: u64| match c {
            ActorCondition::None => true,
            ActorCondition::IfMatch(v) => live(m, k, now).is_some_and(|(_, cur)| cur == v),
            ActorCondition::IfNoneMatch => live(m, k, now).is_none(),
        };
        for s in steps {
            let now = clock.now_millis();
            match s {
                Step::Put { actor, state, value, cond: code, ttl } => {
                    let k = name(actor, state);
                    let c = cond(&model, &k, code, now);
                    let r = a.put(&k.0, &k.1, vec![value], "b", ttl.map(u64::from), c);
                    if holds(&model, &k, c, now) {
                        let v = r.expect("condition holds");
                        model.insert(k, (vec![value], v, ttl.map(|t| now + u64::from(t))));
                    } else {
                        prop_assert_eq!(r.expect_err("condition fails").kind(), ErrorKind::FailedPrecondition);
                    }
                }
                Step::Delete { actor, state, cond: code } => {
                    let k = name(actor, state);
                    let c = cond(&model, &k, code, now);
                    let r = a.delete(&k.0, &k.1, c);
                    if holds(&model, &k, c, now) {
                        r.expect("condition holds");
                        model.remove(&k);
                    } else {
                        prop_assert!(r.is_err());
                    }
                }
                Step::Txn { actor, puts, stale } => {
                    let keys: Vec<(String, String)> = puts.iter().map(|(s, _)| name(actor, *s)).collect();
                    let writes: Vec<ActorWrite> = puts.iter().zip(&keys).enumerate().map(|(i, ((_, v), k))| ActorWrite::Put {
                        state: k.1.clone(),
                        value: vec![*v],
                        content_type: "b".into(),
                        ttl_ms: None,
                        // The last write is conditioned on a stale version when `stale`.
                        condition: match (stale && i + 1 == keys.len(), live(&model, k, now)) {
                            (true, _) => ActorCondition::IfMatch(u64::MAX),
                            (false, Some((_, v))) => ActorCondition::IfMatch(v),
                            (false, None) => ActorCondition::IfNoneMatch,
                        },
                    }).collect();
                    let r = a.transaction(&keys[0].0, writes);
                    if stale {
                        prop_assert!(r.is_err());
                    } else {
                        let v = r.expect("all conditions hold");
                        for ((_, val), k) in puts.iter().zip(keys) {
                            model.insert(k, (vec![*val], v, None));
                        }
                    }
                }
                Step::Advance(ms) => clock.advance(u64::from(ms)),
                Step::Reopen => {
                    drop(a);
                    drop(engine);
                    engine = open(dir.path(), Arc::clone(&clock));
                    a = engine.actors(DEFAULT_TENANT, "m").expect("store");
                }
            }
            let now = clock.now_millis();
            for actor in 0..4 {
                for state in 0..3 {
                    let k = name(actor, state);
                    let got = a.get(&k.0, &k.1).expect("get").map(|s| (s.value, s.version));
                    prop_assert_eq!(got, live(&model, &k, now), "{:?}", k);
                }
            }
            let want: Vec<String> = (0..4).map(|x| format!("actor{x}"))
                .filter(|x| (0..3).any(|s| live(&model, &(x.clone(), format!("s{s}")), now).is_some()))
                .collect();
            prop_assert_eq!(a.list(None, 100).expect("list"), want.clone());
            if want.len() > 1 {
                prop_assert_eq!(a.list(Some(&want[0]), 1).expect("page"), vec![want[1].clone()]);
            }
        }
    }
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
