//! SIGKILL crash test: a child process does concurrent upserts and deletes (with background
//! flush and compaction running) and is killed at random moments. After each kill the store
//! must open cleanly, every acknowledged write must be there with its version, and the one
//! write each thread had in flight must be either wholly applied or wholly absent.
//!
//! The same with a cold tier (an object store on a directory), a local budget of a few
//! segments and a reader thread, so that kills land during uploads, evictions, promotions and
//! streamed reads: after each, the store opens with the cold tier, every segment is reachable
//! (a search reads every body), and nothing acknowledged is lost.
//!
//! Rounds: 20 (cold: 12), or `STRATA_CRASH_ROUNDS`.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use strata_engine::*;

const THREADS: u64 = 4;
const IDS: u64 = 64;

#[derive(Clone, Debug, PartialEq)]
enum Op {
    Upsert(Vec<u64>),
    Delete(Vec<u64>),
}

/// Expected state of one id: `Some((writer seq, version))` or absent.
type Model = BTreeMap<u64, Option<(u64, Option<Lsn>)>>;

fn apply(model: &mut Model, t: u64, seq: u64, op: &Op, lsn: Option<Lsn>) {
    let _ = t;
    match op {
        Op::Upsert(ids) => ids.iter().for_each(|i| {
            model.insert(*i, Some((seq, lsn)));
        }),
        Op::Delete(ids) => ids.iter().for_each(|i| {
            model.insert(*i, None);
        }),
    }
}

fn matches(model: &Model, actual: &BTreeMap<u64, Option<(u64, Lsn)>>) -> bool {
    model.iter().all(|(id, want)| {
        let got = actual.get(id).copied().flatten();
        match (want, got) {
            (None, None) => true,
            (Some((seq, lsn)), Some((gseq, glsn))) => *seq == gseq && lsn.is_none_or(|l| l == glsn),
            _ => false,
        }
    })
}

#[test]
fn sigkill_during_writes_loses_no_acknowledged_write() {
    crash_rounds(20, false);
}

#[test]
fn sigkill_during_upload_evict_and_promote_loses_nothing_and_every_segment_is_reachable() {
    crash_rounds(12, true);
}

fn cold_store(dir: &std::path::Path) -> std::sync::Arc<dyn storage::BlobStore> {
    let url = format!("file://{}", dir.display());
    std::sync::Arc::new(
        storage::ObjectBlobStore::open(&storage::ColdConfig::new(url)).expect("cold store"),
    )
}

fn crash_rounds(default_rounds: u64, with_cold: bool) {
    let rounds: u64 = std::env::var("STRATA_CRASH_ROUNDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default_rounds);
    let dir = tempfile::tempdir().expect("tempdir");
    let cold_dir = tempfile::tempdir().expect("tempdir");
    let mut moved = 0u64;
    let mut models: Vec<Model> = (0..THREADS)
        .map(|t| (0..IDS).map(|i| (t * 1000 + i, None)).collect())
        .collect();
    let mut rng = SplitMix64::new(0x5eed);
    let mut total_acked = 0u64;
    let mut max_indexed = 0u64;
    for round in 0..rounds {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_strata-crash-child"));
        cmd.arg(dir.path()).arg(round.to_string());
        if with_cold {
            cmd.arg(cold_dir.path());
        }
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn child");
        let stdout = child.stdout.take().expect("stdout");
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let reader = std::thread::spawn(move || {
            let mut lines = Vec::new();
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if lines.is_empty() {
                    let _ = ready_tx.send(());
                }
                lines.push(line);
            }
            lines
        });
        // Let it get going (open + recover: waited for, so a loaded machine does not kill it
        // before it starts), then kill it at a random moment of its work.
        let start = Instant::now();
        let ready = ready_rx.recv_timeout(Duration::from_secs(60)).is_ok();
        std::thread::sleep(Duration::from_millis(50 + rng.below(450)));
        child.kill().expect("SIGKILL");
        child.wait().expect("reap");
        let lines = reader.join().expect("reader");
        assert!(
            ready && lines.first().is_some_and(|l| l == "READY"),
            "round {round}: child never became ready in {:?}",
            start.elapsed()
        );

        // Per thread: ops in order, with the LSN if acknowledged.
        let mut ops: Vec<Vec<(u64, Op, Option<Lsn>)>> = vec![Vec::new(); THREADS as usize];
        for line in &lines[1..] {
            let f: Vec<&str> = line.split(' ').collect();
            match f.as_slice() {
                ["BEGIN", t, seq, kind, ids] => {
                    let ids: Vec<u64> = ids.split(',').map(|x| x.parse().expect("id")).collect();
                    let op = if *kind == "U" {
                        Op::Upsert(ids)
                    } else {
                        Op::Delete(ids)
                    };
                    ops[t.parse::<usize>().expect("t")].push((seq.parse().expect("seq"), op, None));
                }
                ["ACK", t, seq, lsn] => {
                    let last = ops[t.parse::<usize>().expect("t")]
                        .last_mut()
                        .expect("ACK follows BEGIN");
                    assert_eq!(last.0, seq.parse::<u64>().expect("seq"));
                    last.2 = Some(lsn.parse().expect("lsn"));
                    total_acked += 1;
                }
                ["ERR", ..] => panic!("round {round}: child saw an error: {line}"),
                _ => {} // a line torn by the kill
            }
        }

        let mut opts = EngineOptions::new(dir.path());
        opts.background = false;
        if with_cold {
            opts.cold = Some(cold_store(cold_dir.path()));
        }
        let engine = Engine::open(opts)
            .unwrap_or_else(|e| panic!("round {round}: store does not open: {e}"));
        let Ok(c) = engine.collection(DEFAULT_TENANT, "c") else {
            assert!(
                lines.len() == 1 && round == 0,
                "collection lost after acknowledged writes"
            );
            continue;
        };
        for t in 0..THREADS as usize {
            let ids: Vec<PointId> = models[t].keys().map(|i| PointId::Num(*i)).collect();
            let actual: BTreeMap<u64, Option<(u64, Lsn)>> = c
                .get(&ids, false, true)
                .expect("get")
                .into_iter()
                .map(|r| {
                    let v = r.vector().expect("vector");
                    assert_eq!(v[1] as usize, t, "point written by another thread");
                    let PointId::Num(id) = r.id else {
                        panic!("uuid")
                    };
                    (id, Some((v[0] as u64, r.version)))
                })
                .collect();
            let mut without = models[t].clone();
            let mut in_flight = None;
            for (seq, op, lsn) in &ops[t] {
                match lsn {
                    Some(_) => apply(&mut without, t as u64, *seq, op, *lsn),
                    None => in_flight = Some((*seq, op.clone())),
                }
            }
            if matches(&without, &actual) {
                models[t] = without;
                continue;
            }
            let (seq, op) = in_flight.unwrap_or_else(|| {
                panic!("round {round}, thread {t}: acknowledged state lost.\nwant {without:?}\ngot {actual:?}")
            });
            let mut with = without.clone();
            apply(&mut with, t as u64, seq, &op, None);
            assert!(
                matches(&with, &actual),
                "round {round}, thread {t}: state is neither before nor after the in-flight op {op:?} (half-applied or lost).\nwithout {without:?}\nwith {with:?}\ngot {actual:?}"
            );
            // Record the in-flight op's real version for later rounds.
            for (id, v) in with.iter_mut() {
                if let Some((_, lsn @ None)) = v {
                    *lsn = actual.get(id).copied().flatten().map(|x| x.1);
                }
            }
            models[t] = with;
        }
        max_indexed = max_indexed.max(c.info().expect("info").indexed_segments);
        if with_cold {
            let st = engine.stats();
            assert_eq!(st.tier_segments.iter().sum::<u64>(), st.segments);
            moved += st.tier_segments[2];
            // Every segment reachable: a search reads every body, local or cold.
            let mut q = SearchRequest::new(vec![0.0; 8], 10);
            q.exact = true;
            c.search(&q)
                .unwrap_or_else(|e| panic!("round {round}: a segment is unreachable: {e}"));
        }
        let expected: usize = models
            .iter()
            .map(|m| m.values().filter(|v| v.is_some()).count())
            .sum();
        assert_eq!(
            c.count(None).expect("count") as usize,
            expected,
            "round {round}: count"
        );
    }
    assert!(
        total_acked > rounds * 10,
        "the child acknowledged only {total_acked} writes: test too weak"
    );
    assert!(
        max_indexed > 0,
        "background compaction never built a graph during the rounds: test too weak"
    );
    if with_cold {
        assert!(
            moved > 0,
            "no segment was ever cold after a kill: test too weak"
        );
    }
    eprintln!("{rounds} crash rounds, {total_acked} acknowledged writes verified");
}
