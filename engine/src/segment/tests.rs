use super::writer::{RowRef, SegmentInput, encode};
use super::*;
use crate::record::tests::point_id;
use crate::types::HnswConfig;
use proptest::prelude::*;
use strata_tiering::Blob;

type Input = (u32, Rows, Vec<(PointId, u64)>);

fn input_strategy() -> impl Strategy<Value = Input> {
    (1u32..6).prop_flat_map(|dim| {
        let row = (
            point_id(),
            1u64..1000,
            prop::collection::vec(-10.0f32..10.0, dim as usize),
            prop::collection::vec(any::<u8>(), 0..12),
        );
        (
            Just(dim),
            prop::collection::vec(row, 0..12),
            prop::collection::vec((point_id(), 1u64..1000), 0..5),
        )
    })
}

type Rows = Vec<(PointId, u64, Vec<f32>, Vec<u8>)>;

fn normalise(rows: &mut Rows, tombs: &mut Vec<(PointId, u64)>) {
    rows.sort_by_key(|r| r.0);
    rows.dedup_by_key(|r| r.0);
    tombs.sort();
    tombs.dedup_by_key(|t| t.0);
    tombs.retain(|t| rows.binary_search_by_key(&t.0, |r| r.0).is_err());
}

fn encode_rows(
    dim: u32,
    rows: &Rows,
    tombs: &[(PointId, u64)],
    graph: Option<graph::FlatGraph>,
) -> Vec<u8> {
    encode(&SegmentInput {
        segment_id: 7,
        collection_id: 3,
        dim,
        distance: Distance::Euclid,
        rows: rows
            .iter()
            .map(|(id, v, vec, p)| RowRef {
                id: *id,
                version: *v,
                vector: vec,
                payload: p,
            })
            .collect(),
        tombstones: tombs.to_vec(),
        graph,
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]
    #[test]
    fn round_trips((dim, mut rows, mut tombs) in input_strategy()) {
        normalise(&mut rows, &mut tombs);
        let bytes = encode_rows(dim, &rows, &tombs, None);
        let s = SegmentData::open(Blob::from_bytes(&bytes), Verify::Full).expect("valid");
        prop_assert_eq!(s.rows() as usize, rows.len());
        for (i, (id, v, vec, p)) in rows.iter().enumerate() {
            let r = i as u32;
            prop_assert_eq!(s.id(r), *id);
            prop_assert_eq!(s.version(r), *v);
            prop_assert_eq!(s.vector(r), &vec[..]);
            prop_assert_eq!(s.payload(r), &p[..]);
            prop_assert_eq!(s.find(*id), Some(r));
        }
        for (i, t) in tombs.iter().enumerate() {
            prop_assert_eq!(s.tombstone(i), Some(*t));
            prop_assert_eq!(s.find_tombstone(t.0), Some(t.1));
        }
    }

    #[test]
    fn any_single_byte_corruption_is_detected(
        (dim, mut rows, mut tombs) in input_strategy(),
        pos in any::<prop::sample::Index>(), flip in 1u8..=255,
    ) {
        normalise(&mut rows, &mut tombs);
        let mut bytes = encode_rows(dim, &rows, &tombs, None);
        let i = pos.index(bytes.len());
        bytes[i] ^= flip;
        prop_assert!(SegmentData::open(Blob::from_bytes(&bytes), Verify::Full).is_err(), "byte {} flipped unnoticed", i);
    }

    #[test]
    fn never_panics_on_garbage(bytes in prop::collection::vec(any::<u8>(), 0..600)) {
        crate::fuzzing::segment(&bytes);
    }

    #[test]
    fn never_panics_on_a_corrupted_valid_file(
        (dim, mut rows, mut tombs) in input_strategy(),
        flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
    ) {
        // Garbage rarely gets past the header checks; a real file with a few section bytes
        // changed passes a header-only open and reaches every accessor.
        normalise(&mut rows, &mut tombs);
        let mut bytes = encode_rows(dim, &rows, &tombs, None);
        for (pos, v) in flips {
            let i = format::DATA_START + pos.index(bytes.len() - format::DATA_START);
            bytes[i] = v;
        }
        crate::fuzzing::segment(&bytes);
    }
}

#[test]
fn graph_round_trip_and_search_finds_neighbours() {
    let dim = 8;
    let n = 600u64;
    let mut rng = crate::SplitMix64::new(42);
    let rows: Rows = (0..n)
        .map(|i| {
            let v: Vec<f32> = (0..dim).map(|_| rng.next_f32()).collect();
            (PointId::Num(i), i + 1, v, Vec::new())
        })
        .collect();
    let flat: Vec<f32> = rows.iter().flat_map(|r| r.2.clone()).collect();
    let g = graph::build(
        &flat,
        dim,
        Distance::Euclid,
        HnswConfig {
            m: 8,
            ef_construct: 64,
        },
    );
    let bytes = encode_rows(dim as u32, &rows, &[], Some(g.clone()));
    let data = SegmentData::open(Blob::from_bytes(&bytes), Verify::Full).expect("valid");
    assert!(data.has_graph());
    for node in 0..n as u32 {
        let w = 1 + g.l0_width as usize;
        let list = &g.l0[node as usize * w..];
        assert_eq!(
            graph::GraphView::neighbours(&data, node, 0),
            &list[1..1 + list[0] as usize]
        );
    }
    let seg = Segment::new(data, true);
    let cache = crate::columns::ColumnCache::new(1 << 20);
    let query = |q: &[f32], exact: bool, k: usize| {
        let sq = SearchQuery {
            metric: Distance::Euclid,
            vector: q,
            k,
            ef: 64,
            exact,
        };
        seg.search(&sq, None, &cache, None)
    };
    let mut found = 0;
    for qi in 0..50u32 {
        let q = seg.data.vector(qi * 7).to_vec();
        let exact = query(&q, true, 10);
        let approx = query(&q, false, 10);
        found += approx
            .iter()
            .filter(|h| exact.iter().any(|e| e.row == h.row))
            .count();
    }
    assert!(
        found as f64 / 500.0 >= 0.9,
        "recall {}",
        found as f64 / 500.0
    );
    // Dead rows never come back.
    let q = seg.data.vector(3).to_vec();
    seg.mark_dead(3);
    assert!(query(&q, false, 5).iter().all(|h| h.row != 3));
    assert_eq!(seg.live_rows(), n - 1);
}

#[test]
fn graph_build_survives_distances_that_overflow() {
    // Finite components near f32::MAX overflow every metric to inf (and Dot's bound arithmetic
    // to inf - inf); the build must not panic on them.
    for metric in [Distance::Euclid, Distance::Dot, Distance::Cosine] {
        let mut v: Vec<f32> = Vec::new();
        for i in 0..40 {
            let big = if i % 3 == 0 { 3.0e38 } else { i as f32 };
            v.extend_from_slice(&[big, -big, 1.0, i as f32]);
        }
        let g = graph::build(
            &v,
            4,
            metric,
            HnswConfig {
                m: 8,
                ef_construct: 32,
            },
        );
        assert_eq!(g.levels.len(), 40, "{metric:?}");
    }
}
