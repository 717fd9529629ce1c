use super::format::{Sec, SpaceSec, common, space_sec};
use super::writer::{RowRef, SegmentInput, SpaceInput, encode};
use super::*;
use crate::record::tests::point_id;
use crate::types::HnswConfig;
use proptest::prelude::*;
use strata_tiering::Blob;

/// Dimensions of each vector space (1 to 3 spaces), rows, tombstones.
type Input = (Vec<u32>, Rows, Vec<(PointId, u64)>);

fn input_strategy() -> impl Strategy<Value = Input> {
    prop::collection::vec(1u32..6, 1..4).prop_flat_map(|dims| {
        // Each row has a vector in each space with probability 3/4 (often all: the common
        // case stores no presence bitmap).
        let vectors: Vec<_> = dims
            .iter()
            .map(|d| {
                prop::option::weighted(0.75, prop::collection::vec(-10.0f32..10.0, *d as usize))
            })
            .collect();
        let row = (
            point_id(),
            1u64..1000,
            vectors,
            prop::collection::vec(any::<u8>(), 0..12),
        );
        (
            Just(dims),
            prop::collection::vec(row, 0..12),
            prop::collection::vec((point_id(), 1u64..1000), 0..5),
        )
    })
}

/// Rows: id, version, a vector per space (or none), payload.
type Rows = Vec<(PointId, u64, Vec<Option<Vec<f32>>>, Vec<u8>)>;

/// The name of space `i` of `n` (one space: the unnamed vector).
fn space_name(i: usize, n: usize) -> String {
    if n == 1 {
        String::new()
    } else {
        format!("v{i}")
    }
}

fn normalise(rows: &mut Rows, tombs: &mut Vec<(PointId, u64)>) {
    rows.sort_by_key(|r| r.0);
    rows.dedup_by_key(|r| r.0);
    tombs.sort();
    tombs.dedup_by_key(|t| t.0);
    tombs.retain(|t| rows.binary_search_by_key(&t.0, |r| r.0).is_err());
}

fn encode_rows(
    dims: &[u32],
    rows: &Rows,
    tombs: &[(PointId, u64)],
    graph: Option<graph::FlatGraph>,
) -> Vec<u8> {
    encode_indexed(dims, rows, tombs, graph, Vec::new(), None)
}

fn encode_indexed(
    dims: &[u32],
    rows: &Rows,
    tombs: &[(PointId, u64)],
    graph: Option<graph::FlatGraph>,
    payload_indexes: crate::index::PayloadIndexes,
    links: Option<super::links::PayloadLinks>,
) -> Vec<u8> {
    let mut links = links;
    let mut graph = graph;
    let indexed = graph.is_some();
    // With a graph, space 0's codes are stored, as compaction stores them.
    let mut codes = graph.as_ref().map(|_| {
        let d = dims[0] as usize;
        let flat: Vec<f32> = rows
            .iter()
            .flat_map(|r| r.2[0].clone().unwrap_or_else(|| vec![0.0; d]))
            .collect();
        let q = crate::quant::Quantizer::train_where(&flat, d, |r| rows[r as usize].2[0].is_some());
        let buf = q.encode_all(&flat);
        (q, buf)
    });
    encode(&SegmentInput {
        segment_id: 7,
        collection_id: 3,
        spaces: dims
            .iter()
            .enumerate()
            .map(|(i, d)| SpaceInput {
                name: space_name(i, dims.len()),
                dim: *d,
                distance: Distance::Euclid,
                graph: if i == 0 { graph.take() } else { None },
                links: if i == 0 { links.take() } else { None },
                codes: if i == 0 { codes.take() } else { None },
            })
            .collect(),
        sparse: Vec::new(),
        rows: rows
            .iter()
            .map(|(id, v, vecs, p)| RowRef {
                id: *id,
                version: *v,
                vectors: vecs.iter().map(|v| v.as_deref()).collect(),
                sparse: Vec::new(),
                payload: p,
            })
            .collect(),
        tombstones: tombs.to_vec(),
        indexed,
        payload_indexes,
        built_indexes: None,
    })
}

/// What row `r` of `d` holds in `space`: its vector, or `None`.
fn stored(d: &SegmentData, space: usize, r: u32) -> Option<&[f32]> {
    d.has_vector(space, r).then(|| d.vector(space, r))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]
    #[test]
    fn round_trips((dims, mut rows, mut tombs) in input_strategy()) {
        normalise(&mut rows, &mut tombs);
        let bytes = encode_rows(&dims, &rows, &tombs, None);
        let s = SegmentData::open(Blob::from_bytes(&bytes), Verify::Full).expect("valid");
        let meta = SegmentMeta::open(Blob::from_bytes(&s.meta_bytes(true))).expect("valid meta");
        prop_assert_eq!(&meta.layout, &s.layout);
        prop_assert_eq!(s.space_count(), dims.len());
        prop_assert_eq!(meta.file_len(), bytes.len() as u64);
        prop_assert_eq!(s.rows() as usize, rows.len());
        // The segment's own sections and its meta file's copies answer alike.
        for ids in [s.ids(), meta.ids()] {
            for (i, (id, v, vec, p)) in rows.iter().enumerate() {
                let r = i as u32;
                prop_assert_eq!(ids.id(r), *id);
                prop_assert_eq!(ids.version(r), *v);
                for (space, v) in vec.iter().enumerate() {
                    prop_assert_eq!(stored(&s, space, r), v.as_deref());
                }
                prop_assert_eq!(s.payload(r), Some(&p[..]));
                prop_assert_eq!(ids.find(*id), Some(r));
            }
            for (i, t) in tombs.iter().enumerate() {
                prop_assert_eq!(ids.tombstone(i), Some(*t));
                prop_assert_eq!(ids.find_tombstone(t.0), Some(t.1));
            }
        }
    }

    #[test]
    fn any_single_byte_corruption_of_a_meta_file_is_detected(
        (dims, mut rows, mut tombs) in input_strategy(),
        pos in any::<prop::sample::Index>(), flip in 1u8..=255,
    ) {
        normalise(&mut rows, &mut tombs);
        let bytes = encode_rows(&dims, &rows, &tombs, None);
        let s = SegmentData::open(Blob::from_bytes(&bytes), Verify::Full).expect("valid");
        let mut m = s.meta_bytes(true);
        let i = pos.index(m.len());
        m[i] ^= flip;
        prop_assert!(SegmentMeta::open(Blob::from_bytes(&m)).is_err(), "meta byte {} flipped unnoticed", i);
        crate::fuzzing::segment_meta(&m);
    }

    #[test]
    fn meta_never_panics_on_garbage(bytes in prop::collection::vec(any::<u8>(), 0..800)) {
        crate::fuzzing::segment_meta(&bytes);
    }

    #[test]
    fn any_single_byte_corruption_is_detected(
        (dims, mut rows, mut tombs) in input_strategy(),
        pos in any::<prop::sample::Index>(), flip in 1u8..=255,
    ) {
        normalise(&mut rows, &mut tombs);
        let mut bytes = encode_rows(&dims, &rows, &tombs, None);
        let i = pos.index(bytes.len());
        bytes[i] ^= flip;
        prop_assert!(SegmentData::open(Blob::from_bytes(&bytes), Verify::Full).is_err(), "byte {} flipped unnoticed", i);
        // The split used for mapped files: structure at open, checksums by batched reads.
        let split = SegmentData::open_structure(Blob::from_bytes(&bytes)).map_err(|_| ()).and_then(|d| {
            let b = bytes.clone();
            d.verify_checksums(&mut |ranges| {
                Ok::<_, ()>(ranges.iter().map(|r| b[r.start as usize..r.end as usize].to_vec()).collect())
            }).map_err(|_| ())
        });
        prop_assert!(split.is_err(), "byte {} flipped unnoticed by structure + batched checksums", i);
    }

    #[test]
    fn batched_checksums_accept_what_full_accepts(
        (dims, mut rows, mut tombs) in input_strategy(),
    ) {
        normalise(&mut rows, &mut tombs);
        let bytes = encode_rows(&dims, &rows, &tombs, None);
        let d = SegmentData::open_structure(Blob::from_bytes(&bytes)).expect("valid");
        let mut calls = 0;
        d.verify_checksums(&mut |ranges| {
            calls += 1;
            Ok::<_, ()>(ranges.iter().map(|r| {
                assert!(r.end - r.start <= super::reader::VERIFY_CHUNK as u64);
                bytes[r.start as usize..r.end as usize].to_vec()
            }).collect())
        }).expect("checksums of a valid file");
        prop_assert!(calls >= 1);
        // The sums are of what the reads return, not of the (clean) blob: with the reads
        // returning one flipped byte, the sums or the structure pass over the flipped file
        // (padding is no checksum's) must fail.
        let flip_at = bytes.len() / 2;
        let sums = d.verify_checksums(&mut |ranges| {
            Ok::<_, ()>(ranges.iter().map(|r| {
                let mut b = bytes[r.start as usize..r.end as usize].to_vec();
                if r.contains(&(flip_at as u64)) {
                    b[flip_at - r.start as usize] ^= 1;
                }
                b
            }).collect())
        });
        let mut flipped = bytes.clone();
        flipped[flip_at] ^= 1;
        let structure = SegmentData::open_structure(Blob::from_bytes(&flipped));
        prop_assert!(sums.is_err() || structure.is_err(), "byte {} flipped unnoticed", flip_at);
        // A read error is reported as such, not as corruption.
        let e = d.verify_checksums(&mut |_| Err::<Vec<Vec<u8>>, _>("disk gone")).expect_err("read error");
        prop_assert!(matches!(e, super::reader::VerifyError::Read("disk gone")));
    }

    #[test]
    fn never_panics_on_garbage(bytes in prop::collection::vec(any::<u8>(), 0..600)) {
        crate::fuzzing::segment(&bytes);
    }

    #[test]
    fn never_panics_on_a_corrupted_valid_file(
        (dims, mut rows, mut tombs) in input_strategy(),
        flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
    ) {
        // Garbage rarely gets past the header checks; a real file with a few section bytes
        // changed passes a header-only open and reaches every accessor.
        normalise(&mut rows, &mut tombs);
        let mut bytes = encode_rows(&dims, &rows, &tombs, None);
        for (pos, v) in flips {
            let start = format::Layout::decode(&bytes).expect("valid").prefix_len;
            let i = start + pos.index(bytes.len() - start);
            bytes[i] = v;
        }
        crate::fuzzing::segment(&bytes);
    }
}

/// `n` rows of `dim` random coordinates (seeded), versions `i + 1`, payloads by `payload`, and
/// their HNSW graph (m = 8, ef_construct = 64).
fn random_rows(
    n: u64,
    dim: usize,
    seed: u64,
    payload: impl Fn(u64) -> Vec<u8>,
) -> (Rows, graph::FlatGraph) {
    let mut rng = crate::SplitMix64::new(seed);
    let rows: Rows = (0..n)
        .map(|i| {
            let v: Vec<f32> = (0..dim).map(|_| rng.next_f32()).collect();
            (PointId::Num(i), i + 1, vec![Some(v)], payload(i))
        })
        .collect();
    let flat: Vec<f32> = rows
        .iter()
        .flat_map(|r| r.2[0].clone().unwrap_or_default())
        .collect();
    let config = HnswConfig {
        m: 8,
        ef_construct: 64,
    };
    let g = graph::build(&flat, dim, Distance::Euclid, config, 1, &|_| true);
    (rows, g)
}

#[test]
fn graph_round_trip_and_search_finds_neighbours() {
    let dim = 8;
    let n = 600u64;
    let (rows, g) = random_rows(n, dim, 42, |_| Vec::new());
    let bytes = encode_rows(&[dim as u32], &rows, &[], Some(g.clone()));
    let data = SegmentData::open(Blob::from_bytes(&bytes), Verify::Full).expect("valid");
    assert!(data.has_graph(0));
    for node in 0..n as u32 {
        let w = 1 + g.l0_width as usize;
        let list = &g.l0[node as usize * w..];
        let view = data.graph_arrays(0).expect("a graph");
        assert_eq!(
            graph::GraphView::neighbours(&view, node, 0),
            &list[1..1 + list[0] as usize]
        );
    }
    let seg = Segment::in_ram(data, 0).expect("segment");
    let body = seg.body().expect("in RAM: hot");
    let cache = crate::columns::ColumnCache::new(1 << 20);
    let query = |q: &[f32], exact: bool, k: usize| {
        let sq = SearchQuery {
            paths: None,
            space: 0,
            metric: Distance::Euclid,
            vector: q,
            k,
            ef: 64,
            exact,
            codes: true,
            rescore: 20,
            full_scan_bytes: Some(0),
            rescore_reads: None,
            graphs_in_ram: false,
            payload_links: true,
        };
        seg.search(&body, &sq, None, &cache, None).expect("search")
    };
    let mut found = 0;
    for qi in 0..50u32 {
        let q = body.vector(0, qi * 7).to_vec();
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
    let q = body.vector(0, 3).to_vec();
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
        let cfg = HnswConfig {
            m: 8,
            ef_construct: 32,
        };
        let g = graph::build(&v, 4, metric, cfg, 2, &|_| true);
        assert_eq!(g.levels.len(), 40, "{metric:?}");
        let g = graph::build_reference(&v, 4, metric, cfg, &|_| true);
        assert_eq!(g.levels.len(), 40, "{metric:?}");
    }
}

#[test]
fn a_cold_segment_answers_from_its_meta_and_refuses_body_reads() {
    use crate::read::{ReadSource, SegmentView};
    let rows: Rows = (0..20u64)
        .map(|i| {
            (
                PointId::Num(i),
                i + 1,
                vec![Some(vec![i as f32, 1.0])],
                br#"{"a":1}"#.to_vec(),
            )
        })
        .collect();
    let bytes = encode_rows(&[2], &rows, &[(PointId::Num(99), 50)], None);
    let data = SegmentData::open(Blob::from_bytes(&bytes), Verify::Full).expect("valid");
    let meta = SegmentMeta::open(Blob::from_bytes(&data.meta_bytes(true))).expect("meta");
    let seg = Arc::new(Segment::new(meta, Body::Cold, true, 0));
    assert_eq!(seg.tier(), Tier::Cold);
    assert!(seg.body().is_none());
    let cache = crate::columns::ColumnCache::new(1 << 20);
    let view = SegmentView {
        seg: Arc::clone(&seg),
        dead: None,
        body: None,
    };
    // The meta answers lookups, tombstones, unfiltered scans and ids without the body.
    assert_eq!(view.lookup(PointId::Num(3)), Some((4, Some(3))));
    assert_eq!(view.lookup(PointId::Num(99)), Some((50, None)));
    assert_eq!(
        view.scan(None, 5, None, &cache).expect("scan"),
        vec![0, 1, 2, 3, 4]
    );
    assert_eq!(view.id(7), PointId::Num(7));
    assert!(view.hold(3, false, false).is_ok());
    // Anything that needs vectors or payloads is refused, never answered from holes.
    let q = [1.0f32, 1.0];
    let sq = SearchQuery {
        paths: None,
        space: 0,
        metric: Distance::Euclid,
        vector: &q,
        k: 3,
        ef: 16,
        exact: true,
        codes: true,
        rescore: 20,
        full_scan_bytes: Some(0),
        rescore_reads: None,
        graphs_in_ram: false,
        payload_links: true,
    };
    let e = view.top_k(&sq, None, &cache).expect_err("no body");
    assert!(e.to_string().contains("cold"), "{e}");
    // A held row of a cold segment must be loaded before it is materialised.
    for (p, v) in [(true, false), (false, true)] {
        let held = view.hold(3, p, v).expect("held");
        assert!(matches!(held, crate::read::Held::Cold(..)));
        assert!(held.materialize(p, v).is_err());
    }
    let f = crate::filter::Filter::parse_str(r#"{"must":[{"key":"a","match":{"value":1}}]}"#)
        .expect("filter");
    assert!(view.scan(None, 5, Some(&f), &cache).is_err());
    // With the body, the same view answers.
    let view = SegmentView {
        body: Some(Arc::new(data)),
        ..view
    };
    assert_eq!(view.top_k(&sq, None, &cache).expect("search").len(), 3);
    assert_eq!(view.scan(None, 5, Some(&f), &cache).expect("scan").len(), 5);
}

#[test]
fn a_large_segment_is_checksummed_in_several_batches_of_bounded_reads() {
    // 9 MB of vectors: more than one batch of 32 reads of 256 KiB.
    let dim = 512u32;
    let rows: Rows = (0..4_500u64)
        .map(|i| {
            let v = (0..dim)
                .map(|j| ((i * 31 + j as u64) % 97) as f32)
                .collect();
            (PointId::Num(i), i + 1, vec![Some(v)], b"{}".to_vec())
        })
        .collect();
    let bytes = encode_rows(&[dim], &rows, &[], None);
    assert!(bytes.len() > super::reader::VERIFY_CHUNK * super::reader::VERIFY_BATCH);
    let d = SegmentData::open_structure(Blob::from_bytes(&bytes)).expect("valid");
    let (mut batches, mut read) = (0, 0u64);
    d.verify_checksums(&mut |ranges| {
        batches += 1;
        assert!(ranges.len() <= super::reader::VERIFY_BATCH);
        Ok::<_, ()>(
            ranges
                .iter()
                .map(|r| {
                    assert!(r.end - r.start <= super::reader::VERIFY_CHUNK as u64);
                    read += r.end - r.start;
                    bytes[r.start as usize..r.end as usize].to_vec()
                })
                .collect(),
        )
    })
    .expect("clean");
    assert!(batches >= 2, "{batches} batches");
    // Every section byte was read (the rest is the header, table and padding).
    assert!(
        read > bytes.len() as u64 * 9 / 10,
        "{read} of {}",
        bytes.len()
    );
    // A flipped byte in the last chunk of the vectors is found.
    let at = bytes.len() * 3 / 4;
    let e = d.verify_checksums(&mut |ranges| {
        Ok::<_, ()>(
            ranges
                .iter()
                .map(|r| {
                    let mut b = bytes[r.start as usize..r.end as usize].to_vec();
                    if r.contains(&(at as u64)) {
                        b[at - r.start as usize] ^= 0x10;
                    }
                    b
                })
                .collect(),
        )
    });
    assert!(
        matches!(e, Err(super::reader::VerifyError::Corrupt(_))),
        "{e:?}"
    );
}

/// The bytes of `file` with only the sections in `present` kept (the rest zero), as a cold
/// read assembles them: the prefix always.
fn keep_sections(file: &[u8], present: SectionSet) -> Vec<u8> {
    let layout = format::Layout::decode(file).expect("valid prefix");
    let mut out = vec![0u8; file.len()];
    out[..layout.prefix_len].copy_from_slice(&file[..layout.prefix_len]);
    for (i, e) in layout.table.iter().enumerate() {
        if present.has(i) {
            let r = e.offset as usize..(e.offset + e.len) as usize;
            out[r.clone()].copy_from_slice(&file[r]);
        }
    }
    out
}

/// Which section (if any) holds byte `i` of `file`; `None` for the prefix and padding.
fn section_at(file: &[u8], i: usize) -> Option<usize> {
    let layout = format::Layout::decode(file).expect("valid prefix");
    layout
        .table
        .iter()
        .position(|e| (e.offset..e.offset + e.len).contains(&(i as u64)))
}

proptest! {
    #[test]
    fn a_partial_segment_checks_what_it_holds_and_refuses_the_rest(
        (dims, mut rows, mut tombs) in input_strategy(),
        extra in any::<u32>(),
        pos in any::<prop::sample::Index>(), flip in 1u8..=255,
    ) {
        normalise(&mut rows, &mut tombs);
        let file = encode_rows(&dims, &rows, &tombs, None);
        let n = format::COMMON_COUNT + dims.len() * format::PER_SPACE;
        let present = (0..n)
            .filter(|i| extra & (1 << i) != 0)
            .fold(format::ID_SECTIONS, SectionSet::with);
        let prefix_len = format::Layout::decode(&file).expect("valid").prefix_len;
        let bytes = keep_sections(&file, present);
        let d = SegmentData::open_partial(Blob::from_bytes(&bytes), present).expect("valid");
        for (r, (_, _, vs, p)) in rows.iter().enumerate() {
            let r = r as u32;
            match d.has_all(PAYLOAD_SECTIONS) {
                true => prop_assert_eq!(d.payload(r), Some(&p[..])),
                false => prop_assert_eq!(d.payload(r), None),
            }
            for (space, v) in vs.iter().enumerate() {
                match d.has_all(format::vector_sections(space)) {
                    true => prop_assert_eq!(stored(&d, space, r), v.as_deref()),
                    false if d.has(space_sec(space, SpaceSec::Vectors)) => {}
                    false => prop_assert!(d.vector(space, r).is_empty()),
                }
            }
        }
        // A flipped byte of the header, the table or a present section is found; one in a
        // hole is never read.
        let i = pos.index(bytes.len());
        let mut bad = bytes.clone();
        bad[i] ^= flip;
        let opened = SegmentData::open_partial(Blob::from_bytes(&bad), present);
        match section_at(&file, i) {
            Some(s) if present.has(s) => prop_assert!(opened.is_err(), "byte {} of section {} flipped unnoticed", i, s),
            None if i < prefix_len => prop_assert!(opened.is_err(), "header byte {} flipped unnoticed", i),
            Some(_) | None => {
                if let Ok(o) = opened {
                    for r in 0..rows.len() as u32 {
                        prop_assert_eq!(o.payload(r), d.payload(r));
                        for space in 0..dims.len() {
                            prop_assert_eq!(o.vector(space, r), d.vector(space, r));
                        }
                    }
                }
            }
        }
        // The id sections are required.
        let no_versions = present.minus(SectionSet::EMPTY.with(common(Sec::Versions)));
        prop_assert!(SegmentData::open_partial(Blob::from_bytes(&bytes), no_versions).is_err());
    }
}

#[test]
fn a_streamed_search_body_searches_like_the_whole_and_refuses_payload_reads() {
    let dim = 8;
    let n = 400u64;
    let (rows, g) = random_rows(n, dim, 7, |i| format!(r#"{{"i":{i}}}"#).into_bytes());
    let file = encode_rows(&[dim as u32], &rows, &[], Some(g));
    let whole = SegmentData::open(Blob::from_bytes(&file), Verify::Full).expect("valid");
    let meta = SegmentMeta::open(Blob::from_bytes(&whole.meta_bytes(false))).expect("meta");
    let seg = Segment::new(meta, Body::Cold, true, 0);
    let need = search_sections(0, true, false)
        .with(common(Sec::PayloadOffsets))
        .union(format::ID_SECTIONS);
    let part = SegmentData::open_partial(Blob::from_bytes(&keep_sections(&file, need)), need)
        .expect("valid");
    assert!(!part.has(common(Sec::PayloadData)) && part.has(common(Sec::PayloadOffsets)));
    assert_eq!(
        part.payload(3),
        None,
        "payload bytes are not there: refused"
    );
    assert_eq!(part.payload_span(3), whole.payload_span(3));
    let cache = crate::columns::ColumnCache::new(1 << 20);
    for exact in [false, true] {
        let q = whole.vector(0, 11).to_vec();
        let sq = SearchQuery {
            paths: None,
            space: 0,
            metric: Distance::Euclid,
            vector: &q,
            k: 10,
            ef: 64,
            exact,
            codes: true,
            rescore: 20,
            full_scan_bytes: Some(0),
            rescore_reads: None,
            graphs_in_ram: false,
            payload_links: true,
        };
        let a = seg.search(&whole, &sq, None, &cache, None).expect("whole");
        let b = seg.search(&part, &sq, None, &cache, None).expect("partial");
        assert_eq!(
            a.iter().map(|h| h.row).collect::<Vec<_>>(),
            b.iter().map(|h| h.row).collect::<Vec<_>>()
        );
    }
    // A filter on payloads needs the payload bytes; a body without vectors cannot search.
    let f = crate::filter::Filter::parse_str(r#"{"must":[{"key":"i","match":{"value":1}}]}"#)
        .expect("filter");
    let q = whole.vector(0, 1).to_vec();
    let sq = SearchQuery {
        paths: None,
        space: 0,
        metric: Distance::Euclid,
        vector: &q,
        k: 3,
        ef: 16,
        exact: false,
        codes: true,
        rescore: 20,
        full_scan_bytes: Some(0),
        rescore_reads: None,
        graphs_in_ram: false,
        payload_links: true,
    };
    let e = seg
        .search(&part, &sq, Some(&f), &cache, None)
        .expect_err("no payloads");
    assert!(e.to_string().contains("cold"), "{e}");
    let ids_only = format::ID_SECTIONS.union(PAYLOAD_SECTIONS);
    let no_vectors =
        SegmentData::open_partial(Blob::from_bytes(&keep_sections(&file, ids_only)), ids_only)
            .expect("valid");
    assert!(seg.search(&no_vectors, &sq, None, &cache, None).is_err());
    assert!(
        seg.search(&no_vectors, &sq, Some(&f), &cache, None)
            .is_err()
    );
    // An indexed segment's body without its graph serves exact searches only.
    let flat_only = format::vector_sections(0).union(format::ID_SECTIONS);
    let no_graph = SegmentData::open_partial(
        Blob::from_bytes(&keep_sections(&file, flat_only)),
        flat_only,
    )
    .expect("valid");
    let e = seg
        .search(&no_graph, &sq, None, &cache, None)
        .expect_err("no graph");
    assert!(e.to_string().contains("cold"), "{e}");
    let exact = SearchQuery { exact: true, ..sq };
    assert_eq!(
        seg.search(&no_graph, &exact, None, &cache, None)
            .expect("exact"),
        seg.search(&whole, &exact, None, &cache, None)
            .expect("exact")
    );
    // A graph byte flipped in the stream is found by the graph section's checksum.
    let layout = format::Layout::decode(&file).expect("prefix");
    let mut bad = keep_sections(&file, need);
    bad[layout.table[space_sec(0, SpaceSec::GraphL0)].offset as usize + 5] ^= 1;
    let e = SegmentData::open_partial(Blob::from_bytes(&bad), need).expect_err("found");
    assert!(e.to_string().contains("graph layer 0"), "{e}");
}

/// A JSON payload for the payload index tests: a keyword, an integer, a float, a flag, a
/// datetime, each sometimes missing, a list, or of another type.
fn json_payload() -> impl Strategy<Value = Vec<u8>> {
    use serde_json::{Value, json};
    let scalar = prop_oneof![
        prop::sample::select(vec!["red", "green", "blue"]).prop_map(|s| json!(s)),
        (0i64..5).prop_map(|i| json!(i)),
        (0i64..5).prop_map(|i| json!(i as f64 / 2.0)),
        any::<bool>().prop_map(|b| json!(b)),
        (1u32..28).prop_map(|d| json!(format!("2024-02-{d:02}T12:00:00Z"))),
        Just(Value::Null),
    ];
    let field = prop_oneof![
        2 => Just(None),
        4 => scalar.clone().prop_map(Some),
        1 => prop::collection::vec(scalar, 0..3).prop_map(|v| Some(Value::Array(v))),
    ];
    prop::collection::vec(field, 5).prop_map(|fs| {
        let mut m = serde_json::Map::new();
        for (k, v) in ["c", "n", "x", "b", "t"].iter().zip(fs) {
            if let Some(v) = v {
                m.insert((*k).to_string(), v);
            }
        }
        serde_json::to_vec(&m).expect("json")
    })
}

fn payload_indexes() -> crate::index::PayloadIndexes {
    use crate::index::FieldType;
    vec![
        ("b".into(), FieldType::Bool),
        ("c".into(), FieldType::Keyword),
        ("n".into(), FieldType::Integer),
        ("t".into(), FieldType::Datetime),
        ("x".into(), FieldType::Float),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    /// A segment written with payload indexes: opens fully checked, its meta file carries the
    /// index records, any flipped byte is caught, and every filter — answered from the index
    /// sections where they can, from payloads elsewhere — selects exactly the rows that
    /// evaluating each payload selects, dead rows excluded.
    #[test]
    fn payload_indexes_round_trip_and_answer_like_payloads(
        rows in prop::collection::vec((point_id(), 1u64..1000, json_payload()), 1..40),
        dead in prop::collection::vec(any::<prop::sample::Index>(), 0..4),
        flip in (any::<prop::sample::Index>(), 1u8..=255),
        color in prop::sample::select(vec!["red", "green", "nope"]),
        lo in 0i64..5, neg in any::<bool>(),
    ) {
        use serde_json::json;
        let mut rows: Rows = rows
            .into_iter()
            .map(|(id, v, p)| (id, v, vec![Some(vec![1.0, 2.0])], p))
            .collect();
        let mut tombs = Vec::new();
        normalise(&mut rows, &mut tombs);
        let bytes = encode_indexed(&[2], &rows, &tombs, None, payload_indexes(), None);
        let data = SegmentData::open(Blob::from_bytes(&bytes), Verify::Full).expect("valid");
        prop_assert_eq!(data.layout.indexes.len(), 5);
        let meta = SegmentMeta::open(Blob::from_bytes(&data.meta_bytes(true))).expect("meta");
        prop_assert_eq!(&meta.layout, &data.layout);
        let mut bad = bytes.clone();
        let at = flip.0.index(bad.len());
        bad[at] ^= flip.1;
        prop_assert!(SegmentData::open(Blob::from_bytes(&bad), Verify::Full).is_err(), "byte {} flipped unnoticed", at);

        let seg = Segment::in_ram(data, 0).expect("segment");
        for d in &dead {
            seg.mark_dead(d.index(rows.len()) as u32);
        }
        let body = seg.body().expect("hot");
        let cache = crate::columns::ColumnCache::new(1 << 20);
        let wrap = |c: serde_json::Value| if neg { json!({"must_not": c}) } else { json!({"must": c}) };
        let filters = [
            (wrap(json!({"key": "c", "match": {"value": color}})), true),
            (wrap(json!({"key": "c", "match": {"any": [color, "blue"]}})), true),
            (wrap(json!({"key": "n", "match": {"value": lo}})), true),
            (wrap(json!({"key": "x", "range": {"gte": lo as f64 / 2.0, "lt": 2}})), true),
            (wrap(json!({"key": "b", "match": {"value": neg}})), true),
            (wrap(json!({"key": "t", "range": {"gte": format!("2024-02-{:02}", lo * 5 + 1)}})), true),
            (json!({"must": [{"key": "c", "match": {"value": color}}, {"key": "n", "range": {"lt": lo}}],
                    "should": [{"key": "b", "match": {"value": true}}, {"is_empty": {"key": "x"}}]}), false),
        ];
        for (f, indexed) in filters {
            let filter = Filter::from_json(&f, "filter").expect("parses");
            let need = seg.filter_sections(Some(&filter));
            prop_assert_eq!(!need.has(common(Sec::PayloadData)), indexed, "{}", f);
            let prepared = seg.prepare(Some(&body), Some(&filter), &cache, None).expect("prepare");
            prop_assert_eq!(prepared.rows().is_some(), indexed);
            let want: Vec<u32> = (0..rows.len() as u32)
                .filter(|r| !seg.is_dead(*r))
                .filter(|r| filter.matches(rows[*r as usize].0, &parse_payload(&rows[*r as usize].3)))
                .collect();
            let got: Vec<u32> = (0..rows.len() as u32).filter(|r| prepared.allows(*r)).collect();
            prop_assert_eq!(&got, &want, "{}", f);
            prop_assert_eq!(prepared.count(), want.len() as u64);
        }
    }
}

/// Format 5 stores the codes a walk reads: opening reads them back (equal to the codes made from
/// the vectors), a search uses them without touching the vectors, and a bad quantizer or length
/// is refused at verification, naming the section.
#[test]
fn stored_codes_are_read_back_used_and_checked() {
    let dim = 8;
    let (rows, g) = random_rows(600, dim, 7, |_| Vec::new());
    let bytes = encode_rows(&[dim as u32], &rows, &[], Some(g));
    let data = SegmentData::open(Blob::from_bytes(&bytes), Verify::Full).expect("valid");
    let (quant, stored) = data
        .stored_codes(0)
        .expect("stored")
        .expect("valid")
        .expect("this build's stride");
    let made = crate::quant::Quantizer::train(data.vectors(0), dim);
    assert_eq!((&quant.offset, &quant.scale), (&made.offset, &made.scale));
    assert_eq!(stored, made.encode_all(data.vectors(0)).as_bytes());
    // A heap body (the hot tier) walks them in place, not a second copy.
    let all = data.bytes_all().as_ptr_range();
    let walked = data.codes(0).expect("codes").bytes;
    assert!(all.contains(&walked.as_ptr()) && walked == stored);
    // The vectors zeroed (unchecked open): the codes still come from the file.
    let i = space_sec(0, SpaceSec::Vectors);
    let mut zeroed = bytes.clone();
    let r = data.sec[i].clone();
    zeroed[r].fill(0);
    let z = SegmentData::open(Blob::from_bytes(&zeroed), Verify::HeaderOnly).expect("opens");
    assert_eq!(z.codes(0).expect("codes").bytes, stored);
    // A scale that is not a number, or a short section, is refused (checksums restamped).
    let c = data.layout.codes_sec(0).expect("format 5");
    let at = data.sec[c].start;
    let restamp = |b: &mut Vec<u8>, len: u64| {
        let d = SegmentData::open(Blob::from_bytes(&bytes), Verify::HeaderOnly).expect("opens");
        let e = d.layout.entry_at(c);
        let r = d.sec[c].start..d.sec[c].start + len as usize;
        let sum = crate::codec::crc(&b[r]);
        b[e + 8..e + 16].copy_from_slice(&len.to_le_bytes());
        b[e + 16..e + 20].copy_from_slice(&sum.to_le_bytes());
        super::format::restamp_prefix_crc(b);
    };
    let mut nan = bytes.clone();
    nan[at + 16 + 4 * dim..at + 20 + 4 * dim].copy_from_slice(&f32::NAN.to_le_bytes());
    let len = data.sec[c].len() as u64;
    restamp(&mut nan, len);
    let e = SegmentData::open(Blob::from_bytes(&nan), Verify::Full).expect_err("a NaN scale");
    assert!(e.to_string().contains("codes"), "{e}");
    let mut short = bytes.clone();
    short[at + len as usize - 64..at + len as usize].fill(0);
    restamp(&mut short, len - 64);
    let e = SegmentData::open(Blob::from_bytes(&short), Verify::Full).expect_err("short codes");
    assert!(e.to_string().contains("codes"), "{e}");
}

/// A format-5 segment with payload links and stored codes, its links and codes sections
/// mutated byte by byte (checksums recomputed, so the structure checks and every accessor see
/// the damage): opening it fully or by header only, and walking it (confined too), never
/// panics; a full open refuses what its checks cover.
#[test]
fn mutated_links_and_codes_sections_never_panic() {
    let (n, dim) = (6_000u64, 4usize);
    let payload = |i: u64| format!(r#"{{"g":{}}}"#, i % 5).into_bytes();
    let (rows, g) = random_rows(n, dim, 11, payload);
    let indexes: crate::index::PayloadIndexes =
        vec![("g".into(), crate::index::FieldType::Integer)];
    let built = pindex::build(&indexes, rows.iter().map(|r| r.3.as_slice()));
    let view = pindex::IndexView::new(indexes[0].1, &built[0].2, n as u32).expect("index");
    let flat: Vec<f32> = rows
        .iter()
        .flat_map(|r| r.2[0].clone().unwrap_or_default())
        .collect();
    let cfg = HnswConfig {
        m: 8,
        ef_construct: 64,
    };
    let candidates = (0..view.value_count()).map(|v| super::links::Candidate {
        index: 0,
        value: v as u32,
        rows: view.value_rows(v),
    });
    let links = super::links::build(
        &flat,
        dim,
        Distance::Euclid,
        cfg,
        1,
        &|_| true,
        &g,
        candidates,
    )
    .expect("five blocks of 20 %");
    assert_eq!(links.blocks.len(), 5);
    let bytes = encode_indexed(&[dim as u32], &rows, &[], Some(g), indexes, Some(links));
    let data = SegmentData::open(Blob::from_bytes(&bytes), Verify::Full).expect("valid");
    assert!(data.links(0).is_some() && data.stored_codes(0).is_some());
    let secs = [
        data.layout.links_sec(0).expect("v5"),
        data.layout.codes_sec(0).expect("v5"),
    ];
    let mut rng = crate::SplitMix64::new(5);
    let mut refused = 0;
    for round in 0..600u64 {
        let mut b = bytes.clone();
        let i = secs[(round % 2) as usize];
        let r = data.sec[i].clone();
        // Mostly the heads (counts, block table, quantizer), sometimes anywhere.
        let span = if round % 3 == 0 {
            r.len()
        } else {
            r.len().min(256)
        };
        for _ in 0..1 + rng.below(3) {
            let at = r.start + rng.below(span as u64) as usize;
            b[at] ^= 1 << rng.below(8);
        }
        let e = data.layout.entry_at(i);
        let sum = crate::codec::crc(&b[r]);
        b[e + 16..e + 20].copy_from_slice(&sum.to_le_bytes());
        super::format::restamp_prefix_crc(&mut b);
        crate::fuzzing::segment(&b);
        if SegmentData::open(Blob::from_bytes(&b), Verify::Full).is_err() {
            refused += 1;
        }
    }
    assert!(
        refused > 100,
        "full verification refused only {refused} of 600"
    );
}
