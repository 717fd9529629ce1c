//! Tests of the tiering policy: unit tests per rule, property tests, and simulations with
//! an injected clock compared with the offline optimum (Belady).
use super::*;
use proptest::prelude::*;
use std::collections::{BTreeSet, HashMap, HashSet};

const NOW: Millis = 10_000;

fn seg(id: u64, bytes: u64, tier: Tier) -> SegmentState {
    SegmentState {
        id,
        bytes,
        tier,
        since: 0,
        access: Access::new(),
        hint: Hint::Auto,
        moving: false,
    }
}

/// `s` with decayed frequency `f` at `NOW`.
fn freq(mut s: SegmentState, f: f64) -> SegmentState {
    s.access = Access::from_parts(f, Some(NOW));
    s
}

fn hinted(mut s: SegmentState, hint: Hint) -> SegmentState {
    s.hint = hint;
    s
}

fn young(mut s: SegmentState) -> SegmentState {
    s.since = NOW;
    s
}

/// Hot limit 90/50, local limit 0.9/0.5 of `warm`, no min_residence.
fn budgets(hot: u64, warm: u64) -> Budgets {
    Budgets {
        hot_bytes: hot,
        warm_bytes: warm,
        high_watermark: 0.9,
        low_watermark: 0.5,
        min_residence: 0,
        half_life: 1_000,
        admit_frequency: 2.0,
    }
}

fn mv(id: u64, from: Tier, to: Tier, reason: Reason) -> Move {
    Move {
        id,
        from,
        to,
        reason,
    }
}

/// (hot usage, local usage).
fn usage(segs: &[SegmentState]) -> (u128, u128) {
    let sum = |f: &dyn Fn(Tier) -> bool| {
        segs.iter()
            .filter(|s| f(s.tier))
            .map(|s| u128::from(s.bytes))
            .sum()
    };
    (sum(&|t| t == Tier::Hot), sum(&|t| t != Tier::Cold))
}

/// Applies `plan` in order, checking rules 5, 6 and 7 on the way.
fn apply(segs: &[SegmentState], plan: &Plan, b: &Budgets, now: Millis) -> Vec<SegmentState> {
    let mut out = segs.to_vec();
    let mut seen = HashSet::new();
    let mut promoted = false;
    let hot_cap = limit(b.hot_bytes, b.high_watermark);
    let local_cap = limit(b.warm_bytes, b.high_watermark);
    for m in &plan.moves {
        assert!(seen.insert(m.id), "segment {} moved twice", m.id);
        assert_ne!(m.from, m.to, "{m:?}");
        let s = out
            .iter_mut()
            .find(|s| s.id == m.id)
            .expect("move names an input segment");
        assert_eq!(s.tier, m.from, "{m:?}");
        assert!(!s.moving, "in-flight segment moved: {m:?}");
        if m.to < m.from {
            promoted = true;
        } else {
            assert!(!promoted, "demotion after a promotion: {:?}", plan.moves);
        }
        let before = usage(&out);
        let s = out
            .iter_mut()
            .find(|s| s.id == m.id)
            .expect("move names an input segment");
        s.tier = m.to;
        s.since = now;
        let after = usage(&out);
        if after.0 > before.0 {
            assert!(after.0 <= hot_cap, "hot over limit after {m:?}");
        }
        if after.1 > before.1 {
            assert!(after.1 <= local_cap, "local over limit after {m:?}");
        }
    }
    out
}

fn find(plan: &Plan, id: u64) -> Option<Move> {
    plan.moves.iter().copied().find(|m| m.id == id)
}

#[test]
fn access_decay_math() {
    let hl = 100;
    let mut a = Access::new();
    assert_eq!(a.frequency(5, hl), 0.0);
    assert_eq!(a.last(), None);
    a.touch(0, hl);
    assert_eq!(a.frequency(0, hl), 1.0);
    assert_eq!(a.frequency(100, hl), 0.5);
    assert_eq!(a.frequency(200, hl), 0.25);
    assert!((a.frequency(50, hl) - 0.5f64.sqrt()).abs() < 1e-12);
    a.touch(100, hl);
    assert_eq!(a.frequency(100, hl), 1.5);
    assert_eq!(a.last(), Some(100));
    // An older access counts at the last access time.
    a.touch(40, hl);
    assert_eq!(a.frequency(100, hl), 2.5);
    assert_eq!(a.last(), Some(100));
    // Before the last access: undecayed.
    assert_eq!(a.frequency(0, hl), 2.5);
    let mut b = Access::new();
    b.touch(7, hl);
    b.touch(7, hl);
    assert_eq!(b.frequency(7, hl), 2.0);
    // half_life 0: any elapsed time decays to 0.
    assert_eq!(b.frequency(8, 0), 0.0);
    assert_eq!(b.frequency(7, 0), 2.0);
    assert_eq!(Access::from_parts(f64::NAN, Some(1)).frequency(1, hl), 0.0);
    assert_eq!(Access::from_parts(-3.0, Some(1)).frequency(1, hl), 0.0);
    assert_eq!(Access::from_parts(3.0, None).frequency(1, hl), 0.0);
    assert_eq!(Access::from_parts(3.0, Some(1)).frequency(101, hl), 1.5);
    assert_eq!(Access::default(), Access::new());
}

#[test]
fn validate_names_the_field() {
    let ok = budgets(100, 200);
    assert_eq!(ok.validate(), Ok(()));
    assert_eq!(budgets(0, 0).validate(), Ok(()));
    let cases: Vec<(Budgets, &str)> = vec![
        (
            Budgets {
                high_watermark: 0.0,
                ..ok
            },
            "high_watermark",
        ),
        (
            Budgets {
                high_watermark: 1.5,
                ..ok
            },
            "high_watermark",
        ),
        (
            Budgets {
                high_watermark: f64::NAN,
                ..ok
            },
            "high_watermark",
        ),
        (
            Budgets {
                low_watermark: 0.0,
                ..ok
            },
            "low_watermark",
        ),
        (
            Budgets {
                low_watermark: 0.95,
                ..ok
            },
            "low_watermark",
        ),
        (
            Budgets {
                warm_bytes: 99,
                ..ok
            },
            "warm_bytes",
        ),
        (Budgets { half_life: 0, ..ok }, "half_life"),
        (
            Budgets {
                admit_frequency: -1.0,
                ..ok
            },
            "admit_frequency",
        ),
        (
            Budgets {
                admit_frequency: f64::INFINITY,
                ..ok
            },
            "admit_frequency",
        ),
    ];
    for (b, field) in cases {
        let err = b.validate().expect_err(field);
        assert!(err.starts_with(field), "{err:?} should name {field}");
    }
}

#[test]
fn pin_promotes_warm_and_cold_to_hot() {
    let b = budgets(100, 1_000);
    let segs = [
        hinted(seg(1, 30, Tier::Warm), Hint::PinHot),
        hinted(seg(2, 30, Tier::Cold), Hint::PinHot),
    ];
    let p = plan(&segs, &b, NOW);
    // Same frequency and no access: ties broken by id.
    assert_eq!(
        p.moves,
        [
            mv(1, Tier::Warm, Tier::Hot, Reason::Pinned),
            mv(2, Tier::Cold, Tier::Hot, Reason::Pinned),
        ]
    );
    assert_eq!(
        (p.hot_after, p.local_after, p.pinned_over_budget),
        (60, 60, 0)
    );
}

#[test]
fn pin_displaces_young_unpinned_hot_segment() {
    // Pins win over min_residence of the displaced segment.
    let b = Budgets {
        min_residence: 1_000,
        ..budgets(100, 1_000)
    };
    let segs = [
        young(freq(seg(1, 80, Tier::Hot), 100.0)),
        hinted(seg(2, 50, Tier::Warm), Hint::PinHot),
    ];
    let p = plan(&segs, &b, NOW);
    assert_eq!(
        p.moves,
        [
            mv(1, Tier::Hot, Tier::Warm, Reason::Demote),
            mv(2, Tier::Warm, Tier::Hot, Reason::Pinned),
        ]
    );
    assert_eq!(p.pinned_over_budget, 0);
}

#[test]
fn pin_extends_a_demotion_of_this_plan() {
    // Regression (found by prop_no_flapping): the hot trim moves 7 from
    // Hot to Warm; the Cold pin needs local room, so 7 goes on to Cold in
    // the same move rather than in the next plan.
    let b = Budgets {
        high_watermark: 0.75,
        low_watermark: 0.05,
        min_residence: 1,
        ..budgets(60, 104)
    };
    // Limits: hot 45 / 3, local 78 / 5.
    let segs = [
        seg(1, 8, Tier::Hot),
        hinted(seg(4, 31, Tier::Cold), Hint::PinHot),
        hinted(freq(seg(7, 75, Tier::Hot), 1.0), Hint::Warm),
    ];
    let p = plan(&segs, &b, NOW);
    assert_eq!(
        p.moves,
        [
            mv(1, Tier::Hot, Tier::Cold, Reason::Evict),
            mv(7, Tier::Hot, Tier::Cold, Reason::Demote),
            mv(4, Tier::Cold, Tier::Hot, Reason::Pinned),
        ]
    );
    let after = apply(&segs, &p, &b, NOW);
    assert!(plan(&after, &b, NOW).moves.is_empty());
}

#[test]
fn pinned_hot_is_never_demoted_and_excess_is_reported() {
    let b = budgets(0, 0);
    let segs = [
        hinted(seg(1, 50, Tier::Hot), Hint::PinHot),
        hinted(seg(2, 20, Tier::Warm), Hint::PinHot),
        seg(3, 10, Tier::Hot),
    ];
    let p = plan(&segs, &b, NOW);
    assert_eq!(p.moves, [mv(3, Tier::Hot, Tier::Cold, Reason::Evict),]);
    // 50 pinned Hot bytes over a 0 budget + 20 bytes left out of Hot.
    assert_eq!(p.pinned_over_budget, 70);
    assert_eq!((p.hot_after, p.local_after), (50, 70));
}

#[test]
fn pins_that_do_not_fit_are_reported() {
    let b = budgets(100, 1_000);
    // Hot pins count first: 50 pinned Hot + 50 would exceed 90.
    let segs = [
        hinted(seg(1, 50, Tier::Hot), Hint::PinHot),
        hinted(freq(seg(2, 50, Tier::Warm), 9.0), Hint::PinHot),
    ];
    let p = plan(&segs, &b, NOW);
    assert!(p.moves.is_empty());
    assert_eq!(p.pinned_over_budget, 50);
    // Highest frequency first: 3 fits, 4 is reported; 5 (smaller) fits.
    let segs = [
        hinted(freq(seg(3, 60, Tier::Warm), 5.0), Hint::PinHot),
        hinted(freq(seg(4, 60, Tier::Cold), 9.0), Hint::PinHot),
        hinted(freq(seg(5, 20, Tier::Warm), 1.0), Hint::PinHot),
    ];
    let p = plan(&segs, &b, NOW);
    assert_eq!(
        p.moves,
        [
            mv(4, Tier::Cold, Tier::Hot, Reason::Pinned),
            mv(5, Tier::Warm, Tier::Hot, Reason::Pinned),
        ]
    );
    assert_eq!(p.pinned_over_budget, 60);
    // A pin in flight is not reported as left out.
    let mut moving = hinted(seg(6, 500, Tier::Warm), Hint::PinHot);
    moving.moving = true;
    assert_eq!(plan(&[moving], &b, NOW).pinned_over_budget, 0);
}

#[test]
fn offload_demotes_regardless_of_residence_and_never_promotes() {
    let b = Budgets {
        min_residence: 1_000,
        ..budgets(100, 1_000)
    };
    let segs = [
        young(hinted(freq(seg(1, 10, Tier::Hot), 50.0), Hint::Offload)),
        young(hinted(seg(2, 10, Tier::Warm), Hint::Offload)),
        hinted(freq(seg(3, 10, Tier::Cold), 50.0), Hint::Offload),
    ];
    let p = plan(&segs, &b, NOW);
    assert_eq!(
        p.moves,
        [
            mv(1, Tier::Hot, Tier::Cold, Reason::Offload),
            mv(2, Tier::Warm, Tier::Cold, Reason::Offload),
        ]
    );
    assert_eq!((p.hot_after, p.local_after), (0, 0));
}

#[test]
fn warm_hint_prewarms_when_budget_allows() {
    let b = Budgets {
        min_residence: 100,
        ..budgets(100, 100)
    };
    // Local limit 90: 60 resident, 20 fits, then 30 does not.
    let segs = [
        seg(1, 60, Tier::Warm),
        hinted(seg(2, 20, Tier::Cold), Hint::Warm),
        hinted(seg(3, 30, Tier::Cold), Hint::Warm),
        young(hinted(seg(4, 5, Tier::Cold), Hint::Warm)),
    ];
    let p = plan(&segs, &b, NOW);
    assert_eq!(p.moves, [mv(2, Tier::Cold, Tier::Warm, Reason::PreWarm)]);
    // A frequent Warm-hinted segment may become Hot by the Auto rules.
    let segs = [hinted(freq(seg(5, 10, Tier::Warm), 3.0), Hint::Warm)];
    let p = plan(&segs, &b, NOW);
    assert_eq!(p.moves, [mv(5, Tier::Warm, Tier::Hot, Reason::Promote)]);
}

#[test]
fn auto_promotes_one_tier_when_admitted() {
    let b = budgets(100, 1_000);
    let segs = [
        freq(seg(1, 10, Tier::Warm), 3.0),
        freq(seg(2, 10, Tier::Cold), 3.0),
        // Below admit_frequency: scan resistance.
        freq(seg(3, 10, Tier::Warm), 1.9),
        freq(seg(4, 10, Tier::Cold), 1.9),
    ];
    let p = plan(&segs, &b, NOW);
    assert_eq!(
        p.moves,
        [
            mv(1, Tier::Warm, Tier::Hot, Reason::Promote),
            mv(2, Tier::Cold, Tier::Warm, Reason::Promote),
        ]
    );
}

#[test]
fn auto_displaces_only_with_margin_and_after_residence() {
    let b = Budgets {
        min_residence: 100,
        ..budgets(100, 1_000)
    };
    let resident = freq(seg(1, 80, Tier::Hot), 3.0);
    let p = plan(
        &[resident.clone(), freq(seg(2, 80, Tier::Warm), 6.0)],
        &b,
        NOW,
    );
    assert_eq!(
        p.moves,
        [
            mv(1, Tier::Hot, Tier::Warm, Reason::Demote),
            mv(2, Tier::Warm, Tier::Hot, Reason::Promote),
        ]
    );
    let p = plan(
        &[resident.clone(), freq(seg(2, 80, Tier::Warm), 5.9)],
        &b,
        NOW,
    );
    assert!(p.moves.is_empty());
    let p = plan(
        &[young(resident), freq(seg(2, 80, Tier::Warm), 6.0)],
        &b,
        NOW,
    );
    assert!(p.moves.is_empty());
    // Cold to Warm displacement demotes a Warm resident to Cold.
    let b = budgets(0, 100);
    let p = plan(
        &[
            freq(seg(3, 80, Tier::Warm), 2.0),
            freq(seg(4, 80, Tier::Cold), 4.0),
        ],
        &b,
        NOW,
    );
    assert_eq!(
        p.moves,
        [
            mv(3, Tier::Warm, Tier::Cold, Reason::Demote),
            mv(4, Tier::Cold, Tier::Warm, Reason::Promote),
        ]
    );
}

#[test]
fn hot_hysteresis() {
    let b = budgets(100, 1_000);
    // Hot limits: high 90, low 50. Frequencies 1..=n, all below admit.
    let hot = |n: u64| -> Vec<SegmentState> {
        (1..=n)
            .map(|i| freq(seg(i, 10, Tier::Hot), i as f64 / 10.0))
            .collect()
    };
    // 80 bytes: between low and high, no eviction.
    assert!(plan(&hot(8), &b, NOW).moves.is_empty());
    // 90 bytes: at the high mark, no eviction.
    assert!(plan(&hot(9), &b, NOW).moves.is_empty());
    // 100 bytes: trimmed to 50, lowest-ranked first.
    let p = plan(&hot(10), &b, NOW);
    let evicted: Vec<Move> = (1..=5)
        .map(|i| mv(i, Tier::Hot, Tier::Warm, Reason::Evict))
        .collect();
    assert_eq!(p.moves, evicted);
    assert_eq!(p.hot_after, 50);
    // Young segments are not evicted.
    let b = Budgets {
        min_residence: 1,
        ..b
    };
    let segs: Vec<SegmentState> = hot(10).into_iter().map(young).collect();
    assert!(plan(&segs, &b, NOW).moves.is_empty());
}

#[test]
fn local_trim_prefers_warm_and_uses_hot_only_if_it_must() {
    let b = budgets(1_000, 100);
    let mut segs: Vec<SegmentState> = (1..=6)
        .map(|i| freq(seg(i, 10, Tier::Warm), 1.0 + i as f64 / 10.0))
        .collect();
    segs.extend((7..=10).map(|i| freq(seg(i, 10, Tier::Hot), 0.1)));
    // Local 100 > 90: Warm segments go to Cold until 50.
    let p = plan(&segs, &b, NOW);
    let expected: Vec<Move> = (1..=5)
        .map(|i| mv(i, Tier::Warm, Tier::Cold, Reason::Evict))
        .collect();
    assert_eq!(p.moves, expected);
    // Only 10 Warm bytes: the lowest-ranked Hot segment goes to Cold,
    // but only until the high mark (90), not the low one.
    let mut segs: Vec<SegmentState> = (1..=9)
        .map(|i| freq(seg(i, 10, Tier::Hot), i as f64 / 10.0))
        .collect();
    segs.push(freq(seg(10, 10, Tier::Warm), 1.5));
    let p = plan(&segs, &b, NOW);
    assert_eq!(p.moves, [mv(10, Tier::Warm, Tier::Cold, Reason::Evict)]);
    let mut segs = segs[..9].to_vec();
    segs.push(freq(seg(10, 10, Tier::Hot), 1.5));
    let p = plan(&segs, &b, NOW);
    assert_eq!(p.moves, [mv(1, Tier::Hot, Tier::Cold, Reason::Evict)]);
    // Warm-hinted segments go after Auto ones even if colder.
    let segs = [
        hinted(seg(1, 50, Tier::Warm), Hint::Warm),
        freq(seg(2, 50, Tier::Warm), 1.0),
    ];
    let p = plan(&segs, &b, NOW);
    assert_eq!(p.moves, [mv(2, Tier::Warm, Tier::Cold, Reason::Evict)]);
}

#[test]
fn moving_segments_count_but_never_move() {
    let b = budgets(100, 1_000);
    let mut inflight = freq(seg(1, 95, Tier::Hot), 0.0);
    inflight.moving = true;
    let segs = [inflight, freq(seg(2, 10, Tier::Warm), 50.0)];
    let p = plan(&segs, &b, NOW);
    // Hot is over its high mark, but only with in-flight bytes; the
    // candidate cannot fit nor displace an in-flight segment.
    assert!(p.moves.is_empty());
    assert_eq!(p.hot_after, 95);
}

#[test]
fn duplicate_ids_are_never_moved() {
    let b = budgets(100, 1_000);
    let segs = [
        freq(seg(1, 10, Tier::Warm), 9.0),
        freq(seg(1, 10, Tier::Cold), 9.0),
        freq(seg(2, 10, Tier::Warm), 9.0),
    ];
    let p = plan(&segs, &b, NOW);
    assert_eq!(p.moves, [mv(2, Tier::Warm, Tier::Hot, Reason::Promote)]);
}

#[test]
fn cold_read_decision() {
    let b = Budgets {
        min_residence: 100,
        ..budgets(0, 100)
    };
    // Local limit 90; 80 resident.
    let resident = seg(1, 80, Tier::Warm);
    let small = seg(2, 10, Tier::Cold);
    let big_rare = freq(seg(3, 15, Tier::Cold), 1.0);
    let big_frequent = freq(seg(4, 15, Tier::Cold), 2.0);
    let huge_frequent = freq(seg(5, 30, Tier::Cold), 9.0);
    let all = [
        resident.clone(),
        small.clone(),
        big_rare.clone(),
        big_frequent.clone(),
        huge_frequent.clone(),
    ];
    let read = |s: &SegmentState| on_cold_read(s, &all, &b, NOW);
    assert_eq!(read(&small), ColdRead::Promote, "fits under high mark");
    assert_eq!(read(&big_rare), ColdRead::Stream, "no room, not admitted");
    assert_eq!(
        read(&big_frequent),
        ColdRead::Promote,
        "admitted, fits in 100%"
    );
    assert_eq!(read(&huge_frequent), ColdRead::Stream, "exceeds 100%");
    assert_eq!(
        read(&hinted(big_frequent.clone(), Hint::Offload)),
        ColdRead::Stream
    );
    assert_eq!(
        read(&hinted(small.clone(), Hint::Offload)),
        ColdRead::Stream
    );
    assert_eq!(read(&young(small.clone())), ColdRead::Stream);
    let mut moving = small.clone();
    moving.moving = true;
    assert_eq!(read(&moving), ColdRead::Stream);
    assert_eq!(read(&resident), ColdRead::Stream, "not Cold");
}

// ---- Property tests ----

fn arb_segment() -> impl Strategy<Value = SegmentState> {
    (
        prop_oneof![1 => Just(0u64), 9 => 1u64..=100],
        prop_oneof![Just(Tier::Hot), Just(Tier::Warm), Just(Tier::Cold)],
        0..=NOW,
        prop_oneof![1 => Just(None), 4 => (0..=NOW).prop_map(Some)],
        prop_oneof![Just(0.0), Just(1.0), Just(4.0), 0.0f64..20.0],
        prop_oneof![
            4 => Just(Hint::Auto),
            1 => Just(Hint::PinHot),
            1 => Just(Hint::Warm),
            1 => Just(Hint::Offload),
        ],
        prop::bool::weighted(0.1),
    )
        .prop_map(
            |(bytes, tier, since, last, count, hint, moving)| SegmentState {
                id: 0,
                bytes,
                tier,
                since,
                access: Access::from_parts(count, last),
                hint,
                moving,
            },
        )
}

fn arb_budgets() -> impl Strategy<Value = Budgets> {
    (
        0u64..=600,
        0u64..=1_500,
        0.05f64..=1.0,
        0.05f64..=1.0,
        prop_oneof![Just(0), 1..=5_000u64],
        1u64..=5_000,
        0.0f64..=5.0,
    )
        .prop_map(
            |(hot, extra, a, b, min_residence, half_life, admit)| Budgets {
                hot_bytes: hot,
                warm_bytes: hot + extra,
                high_watermark: a.max(b),
                low_watermark: a.min(b),
                min_residence,
                half_life,
                admit_frequency: admit,
            },
        )
}

/// Up to 30 segments with unique ids, and valid budgets.
fn arb_input() -> impl Strategy<Value = (Vec<SegmentState>, Budgets)> {
    (prop::collection::vec(arb_segment(), 0..30), arb_budgets()).prop_map(|(mut segs, b)| {
        for (i, s) in segs.iter_mut().enumerate() {
            s.id = i as u64 * 3 + 1;
        }
        (segs, b)
    })
}

fn is_young(s: &SegmentState, b: &Budgets, now: Millis) -> bool {
    now.saturating_sub(s.since) < b.min_residence
}

/// If a usage is over its high limit, every segment making it up is
/// pinned, in flight, or young (moved less than min_residence ago).
fn assert_over_limit_only_protected(segs: &[SegmentState], b: &Budgets, now: Millis) {
    let (hot, local) = usage(segs);
    let protected = |s: &SegmentState| s.hint == Hint::PinHot || s.moving || is_young(s, b, now);
    if hot > limit(b.hot_bytes, b.high_watermark) {
        for s in segs.iter().filter(|s| s.tier == Tier::Hot) {
            assert!(protected(s), "hot over limit with evictable {s:?}");
        }
    }
    if local > limit(b.warm_bytes, b.high_watermark) {
        for s in segs.iter().filter(|s| s.tier != Tier::Cold) {
            assert!(protected(s), "local over limit with evictable {s:?}");
        }
    }
}

fn pinned_over_budget(segs: &[SegmentState], b: &Budgets) -> u128 {
    let pins = segs.iter().filter(|s| s.hint == Hint::PinHot);
    let hot: u128 = pins
        .clone()
        .filter(|s| s.tier == Tier::Hot)
        .map(|s| u128::from(s.bytes))
        .sum();
    let left_out: u128 = pins
        .filter(|s| s.tier != Tier::Hot && !s.moving)
        .map(|s| u128::from(s.bytes))
        .sum();
    left_out + hot.saturating_sub(u128::from(b.hot_bytes))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// (a) Budgets. After one plan (any min_residence): each usage is at
    /// most its high-watermark limit, or every segment counted in it is
    /// pinned, in flight or young. An input within 100% of both budgets
    /// stays within them. The reported usages and pinned_over_budget
    /// match the applied state. With min_residence = 0, re-planning at
    /// the same `now` reaches a fixpoint within 2n+2 plans, where a usage
    /// over its limit is made only of pinned or in-flight segments.
    #[test]
    fn prop_budgets_hold((segs, b) in arb_input()) {
        prop_assert!(b.validate().is_ok());
        let p = plan(&segs, &b, NOW);
        let after = apply(&segs, &p, &b, NOW);
        let (hot, local) = usage(&after);
        prop_assert_eq!(u128::from(p.hot_after), hot);
        prop_assert_eq!(u128::from(p.local_after), local);
        prop_assert_eq!(u128::from(p.pinned_over_budget), pinned_over_budget(&after, &b));
        assert_over_limit_only_protected(&after, &b, NOW);
        let (hot0, local0) = usage(&segs);
        if hot0 <= u128::from(b.hot_bytes) && local0 <= u128::from(b.warm_bytes) {
            prop_assert!(hot <= u128::from(b.hot_bytes) && local <= u128::from(b.warm_bytes));
        }

        let b0 = Budgets { min_residence: 0, ..b };
        let mut state = segs.clone();
        let mut rounds = 0;
        loop {
            let p = plan(&state, &b0, NOW);
            if p.moves.is_empty() {
                break;
            }
            state = apply(&state, &p, &b0, NOW);
            rounds += 1;
            prop_assert!(rounds <= 2 * segs.len() + 2, "no fixpoint");
        }
        assert_over_limit_only_protected(&state, &b0, NOW);
    }

    /// (b) Pinned segments are never demoted (so pinned Hot ones never
    /// move); Offload segments are never promoted and every non-Cold,
    /// not in-flight Offload segment goes to Cold.
    #[test]
    fn prop_pins_and_offload((segs, b) in arb_input()) {
        let p = plan(&segs, &b, NOW);
        let by_id: HashMap<u64, &SegmentState> = segs.iter().map(|s| (s.id, s)).collect();
        for m in &p.moves {
            let s = by_id[&m.id];
            if s.hint == Hint::PinHot {
                prop_assert!(s.tier != Tier::Hot && m.to == Tier::Hot, "{:?}", m);
            }
            if s.hint == Hint::Offload {
                prop_assert!(m.to == Tier::Cold, "{:?}", m);
            }
        }
        for s in &segs {
            if s.hint == Hint::Offload && !s.moving && s.tier != Tier::Cold {
                prop_assert_eq!(find(&p, s.id).map(|m| m.reason), Some(Reason::Offload));
            }
        }
    }

    /// (c) Determinism: the same input gives an identical plan, and so
    /// does any permutation of the input (moves in the same order).
    #[test]
    fn prop_deterministic(
        ((segs, shuffled), b) in arb_input().prop_flat_map(|(segs, b)| {
            ((Just(segs.clone()), Just(segs).prop_shuffle()), Just(b))
        })
    ) {
        let p = plan(&segs, &b, NOW);
        prop_assert_eq!(&p, &plan(&segs, &b, NOW));
        prop_assert_eq!(&p, &plan(&shuffled, &b, NOW));
    }

    /// (d) Rules 5-7, checked by `apply`: no segment twice, no in-flight
    /// segment, `from` is the current tier and differs from `to`, all
    /// demotions precede all promotions, and a move that raises a usage
    /// leaves it at most its high-watermark limit (so at most 100%).
    #[test]
    fn prop_rules_6_and_7((segs, b) in arb_input()) {
        let p = plan(&segs, &b, NOW);
        apply(&segs, &p, &b, NOW);
    }

    /// (e) No flapping, with min_residence > 0: Auto rules never move a
    /// young segment (only Offload, pins and pin displacements do), and
    /// re-planning the applied result at the same `now` gives no move.
    #[test]
    fn prop_no_flapping((segs, b) in arb_input(), min_residence in 1..=5_000u64) {
        let b = Budgets { min_residence, ..b };
        let p = plan(&segs, &b, NOW);
        let pinned = p.moves.iter().any(|m| m.reason == Reason::Pinned);
        let by_id: HashMap<u64, &SegmentState> = segs.iter().map(|s| (s.id, s)).collect();
        for m in &p.moves {
            if is_young(by_id[&m.id], &b, NOW) {
                prop_assert!(
                    matches!(m.reason, Reason::Offload | Reason::Pinned)
                        || (m.reason == Reason::Demote && pinned),
                    "young segment moved by an Auto rule: {:?}", m
                );
            }
        }
        let after = apply(&segs, &p, &b, NOW);
        let again = plan(&after, &b, NOW);
        prop_assert!(again.moves.is_empty(), "second plan moved: {:?}", again.moves);
    }
}

// ---- Simulations ----

/// SplitMix64 PRNG.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Zipf ranks 0..n with exponent s, sampled by inverse CDF.
fn zipf_trace(rng: &mut SplitMix64, n: usize, s: f64, len: usize) -> Vec<usize> {
    let mut cdf: Vec<f64> = (1..=n).map(|r| (r as f64).powf(-s)).collect();
    let mut acc = 0.0;
    for c in cdf.iter_mut() {
        acc += *c;
        *c = acc;
    }
    (0..len)
        .map(|_| {
            let u = rng.next_f64() * acc;
            cdf.partition_point(|&c| c <= u).min(n - 1)
        })
        .collect()
}

const SIM_N: usize = 1_000;
const SIM_HOT: usize = 100;
const SIM_SEG: u64 = 1 << 20;
/// Accesses between two plans.
const SIM_PERIOD: usize = 250;

fn sim_budgets() -> Budgets {
    Budgets {
        hot_bytes: SIM_HOT as u64 * SIM_SEG,
        warm_bytes: SIM_N as u64 * SIM_SEG,
        // The policy may use the whole hot budget, as Belady does.
        high_watermark: 1.0,
        low_watermark: 0.9,
        min_residence: 1_000,
        half_life: 5_000,
        admit_frequency: 2.0,
    }
}

/// Runs the policy on `trace` (one access per ms, a plan every
/// `SIM_PERIOD` accesses, moves applied instantly); returns per-access
/// hot hits. All segments start Warm; the warm budget holds them all.
fn simulate(trace: &[usize]) -> Vec<bool> {
    let b = sim_budgets();
    let mut segs: Vec<SegmentState> = (0..SIM_N)
        .map(|i| seg(i as u64, SIM_SEG, Tier::Warm))
        .collect();
    let mut hits = Vec::with_capacity(trace.len());
    for (k, &x) in trace.iter().enumerate() {
        let now = k as Millis + 1;
        hits.push(segs[x].tier == Tier::Hot);
        segs[x].access.touch(now, b.half_life);
        if (k + 1) % SIM_PERIOD == 0 {
            for m in plan(&segs, &b, now).moves {
                let s = &mut segs[m.id as usize];
                s.tier = m.to;
                s.since = now;
            }
        }
    }
    hits
}

/// Belady's MIN with demand fetch: on a miss the segment is cached and,
/// if full, the resident used farthest in the future is evicted.
fn belady(trace: &[usize], capacity: usize) -> Vec<bool> {
    let mut next = vec![usize::MAX; trace.len()];
    let mut seen = vec![usize::MAX; SIM_N];
    for (k, &x) in trace.iter().enumerate().rev() {
        next[k] = seen[x];
        seen[x] = k;
    }
    let mut cache: BTreeSet<(usize, usize)> = BTreeSet::new();
    let mut key: Vec<Option<usize>> = vec![None; SIM_N];
    let mut hits = Vec::with_capacity(trace.len());
    for (k, &x) in trace.iter().enumerate() {
        let hit = match key[x] {
            Some(nu) => {
                cache.remove(&(nu, x));
                true
            }
            None => {
                if cache.len() == capacity
                    && let Some((_, y)) = cache.pop_last()
                {
                    key[y] = None;
                }
                false
            }
        };
        cache.insert((next[k], x));
        key[x] = Some(next[k]);
        hits.push(hit);
    }
    hits
}

fn rate(hits: &[bool]) -> f64 {
    hits.iter().filter(|&&h| h).count() as f64 / hits.len().max(1) as f64
}

/// Warm-up excluded from whole-trace hit rates (the policy needs a few
/// plans and `min_residence` before it promotes anything).
const WARMUP: usize = 10_000;
const SIM_LEN: usize = 200_000;
const WINDOW: usize = 20_000;

// Fairness: Belady knows the future and fetches on every miss, while the
// policy only acts at plans (every SIM_PERIOD accesses), admits segments
// with a decayed frequency >= 2 and replaces a resident only with 2x its
// frequency. Both get the same capacity (100 segments; the sims use
// high_watermark = 1.0 so the policy may fill the whole hot budget). For
// an independent Zipf stream no online policy beats the static top-100
// by much (its hit rate is H(100)/H(1000) = 0.693 for s = 1), so Belady
// is an upper bound, not a target.
//
// Floors, from measured values over seeds 1, 2, 3, 101, 202, 303, 404:
// - Zipf: policy/Belady 0.913..0.916 (policy 0.688..0.692, Belady
//   0.754..0.756); floor 0.85.
// - Scan: post/pre window ratio 0.986..1.005; floor 0.95 (20k-access
//   windows; sampling noise of a window's rate is about 0.003).
// - Shift: recovered after 7000..9000 accesses; bound 15000.

#[test]
fn sim_zipf() {
    let mut rng = SplitMix64(1);
    let trace = zipf_trace(&mut rng, SIM_N, 1.0, SIM_LEN);
    let policy = rate(&simulate(&trace)[WARMUP..]);
    let opt = rate(&belady(&trace, SIM_HOT)[WARMUP..]);
    let harmonic = |n: usize| (1..=n).map(|r| 1.0 / r as f64).sum::<f64>();
    let top = harmonic(SIM_HOT) / harmonic(SIM_N);
    println!(
        "zipf: policy {policy:.4} belady {opt:.4} ratio {:.3} (static top-{SIM_HOT} {top:.4})",
        policy / opt
    );
    assert!(policy >= 0.85 * opt, "policy {policy} belady {opt}");
}

#[test]
fn sim_zipf_with_scan() {
    let mut rng = SplitMix64(2);
    let half = SIM_LEN / 2;
    let mut trace = zipf_trace(&mut rng, SIM_N, 1.0, half);
    let scan_start = trace.len();
    trace.extend(0..SIM_N);
    let scan_end = trace.len();
    trace.extend(zipf_trace(&mut rng, SIM_N, 1.0, half));
    let hits = simulate(&trace);
    let opt = belady(&trace, SIM_HOT);
    let pre = rate(&hits[scan_start - WINDOW..scan_start]);
    let post = rate(&hits[scan_end..scan_end + WINDOW]);
    let opt_pre = rate(&opt[scan_start - WINDOW..scan_start]);
    let opt_post = rate(&opt[scan_end..scan_end + WINDOW]);
    println!(
        "scan: policy pre {pre:.4} post {post:.4} | belady pre {opt_pre:.4} post {opt_post:.4} | whole: policy {:.4} belady {:.4}",
        rate(&hits[WARMUP..]),
        rate(&opt[WARMUP..])
    );
    assert!(
        post >= 0.95 * pre,
        "scan flushed the hot set: {pre} -> {post}"
    );
}

#[test]
fn sim_shifting_hot_set() {
    let mut rng = SplitMix64(3);
    let half = SIM_LEN / 2;
    let mut trace = zipf_trace(&mut rng, SIM_N, 1.0, half);
    // Rotate the ranking: the former mid-tail becomes the head.
    trace.extend(
        zipf_trace(&mut rng, SIM_N, 1.0, half)
            .into_iter()
            .map(|r| (r + SIM_N / 2) % SIM_N),
    );
    let hits = simulate(&trace);
    let opt = belady(&trace, SIM_HOT);
    let pre = rate(&hits[half - WINDOW..half]);
    // Recovery: first offset (step 1000) from which a 5000-access window
    // reaches 0.9 of the pre-shift rate.
    let (step, win) = (1_000, 5_000);
    let recovered = (0..(half - win) / step)
        .map(|i| i * step)
        .find(|&d| rate(&hits[half + d..half + d + win]) >= 0.9 * pre);
    println!(
        "shift: policy pre {pre:.4} recovered after {recovered:?} accesses | whole: policy {:.4} belady {:.4} | last {WINDOW}: policy {:.4} belady {:.4}",
        rate(&hits[WARMUP..]),
        rate(&opt[WARMUP..]),
        rate(&hits[trace.len() - WINDOW..]),
        rate(&opt[trace.len() - WINDOW..]),
    );
    let recovered = recovered.expect("hit rate never recovered");
    assert!(recovered <= 15_000, "recovered after {recovered}");
}
