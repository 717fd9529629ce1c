//! Encodes a segment file (format version 5) from sorted rows, tombstones, per vector space an
//! optional flat graph, payload indexes and sparse spaces.

use super::format::*;
use super::graph::FlatGraph;
use crate::codec::{Writer, crc};
use crate::types::{Distance, Lsn, PointId};

/// One row to write.
#[derive(Debug, Clone)]
pub(crate) struct RowRef<'a> {
    pub(crate) id: PointId,
    pub(crate) version: Lsn,
    /// Its vector in each space (`None`: the row has none there).
    pub(crate) vectors: Vec<Option<&'a [f32]>>,
    /// Its vector in each sparse space.
    pub(crate) sparse: Vec<Option<&'a crate::sparse::SparseVector>>,
    pub(crate) payload: &'a [u8],
}

/// One named dense vector of the segment.
#[derive(Debug)]
pub(crate) struct SpaceInput {
    pub(crate) name: String,
    pub(crate) dim: u32,
    pub(crate) distance: Distance,
    pub(crate) graph: Option<FlatGraph>,
    /// Payload links over the graph (`super::links`).
    pub(crate) links: Option<super::links::PayloadLinks>,
    /// The one-byte codes of the vectors a graph walk reads, and their quantizer.
    pub(crate) codes: Option<(crate::quant::Quantizer, crate::quant::CodeBuf)>,
}

/// One named sparse vector of the segment.
#[derive(Debug)]
pub(crate) struct SparseInput {
    pub(crate) name: String,
    pub(crate) modifier: crate::sparse::Modifier,
}

impl SparseInput {
    /// The sparse spaces of a collection configured as `config`.
    pub(crate) fn of(config: &crate::types::CollectionConfig) -> Vec<SparseInput> {
        config
            .sparse
            .iter()
            .map(|(name, p)| SparseInput {
                name: name.clone(),
                modifier: p.modifier,
            })
            .collect()
    }
}

/// Everything a segment file holds. `rows` and `tombstones` must be sorted by id, unique, and
/// disjoint; `spaces` sorted by name; each row has one entry per space.
#[derive(Debug)]
pub(crate) struct SegmentInput<'a> {
    pub(crate) segment_id: u64,
    pub(crate) collection_id: u64,
    pub(crate) spaces: Vec<SpaceInput>,
    /// Sparse spaces, sorted by name; each row has one entry per sparse space.
    pub(crate) sparse: Vec<SparseInput>,
    pub(crate) rows: Vec<RowRef<'a>>,
    pub(crate) tombstones: Vec<(PointId, Lsn)>,
    /// The writer built a graph for every space with rows (the segment counts as indexed).
    pub(crate) indexed: bool,
    /// Payload indexes to build, sorted by key (unique keys).
    pub(crate) payload_indexes: crate::index::PayloadIndexes,
    /// `payload_indexes` already built over these rows (`pindex::build`), if the caller has
    /// them.
    pub(crate) built_indexes: Option<Vec<(u8, u32, Vec<u8>)>>,
}

/// Encodes `input` into the bytes of a segment file.
pub(crate) fn encode(input: &SegmentInput<'_>) -> Vec<u8> {
    debug_assert!(input.rows.windows(2).all(|w| w[0].id < w[1].id));
    debug_assert!(input.tombstones.windows(2).all(|w| w[0].0 < w[1].0));
    debug_assert!(
        input
            .rows
            .iter()
            .all(|r| r.vectors.len() == input.spaces.len())
    );
    let n = input.rows.len();
    let spaces: Vec<Space> = input
        .spaces
        .iter()
        .map(|s| Space {
            name: s.name.clone(),
            dim: s.dim,
            distance: s.distance,
            graph: s.graph.as_ref().map(|g| GraphMeta {
                entry: g.entry,
                max_level: g.max_level,
                l0_width: g.l0_width,
                up_width: g.up_width,
                upper_lists: g.upper_lists,
            }),
        })
        .collect();
    let built_here;
    let built: &Vec<(u8, u32, Vec<u8>)> = match &input.built_indexes {
        Some(b) => b,
        None => {
            built_here =
                super::pindex::build(&input.payload_indexes, input.rows.iter().map(|r| r.payload));
            &built_here
        }
    };
    let indexes: Vec<IndexRecord> = input
        .payload_indexes
        .iter()
        .zip(built)
        .map(|((key, ty), (flags, points, _))| IndexRecord {
            key: key.clone(),
            ty: *ty,
            flags: *flags,
            points: *points,
        })
        .collect();
    let sparse: Vec<SparseSpace> = input
        .sparse
        .iter()
        .map(|s| SparseSpace {
            name: s.name.clone(),
            modifier: s.modifier,
        })
        .collect();
    let prefix_len = Layout::prefix_len_for(&spaces, &indexes, &sparse);
    let payload_bytes: usize = input.rows.iter().map(|r| r.payload.len()).sum();
    let vector_bytes: usize = input.spaces.iter().map(|s| s.dim as usize * 4 * n).sum();
    let index_bytes: usize = built.iter().map(|b| b.2.len()).sum();
    let graph_bytes: usize = input
        .spaces
        .iter()
        .filter_map(|s| s.graph.as_ref().map(FlatGraph::byte_len))
        .sum::<usize>()
        + input
            .spaces
            .iter()
            .filter_map(|s| s.links.as_ref().map(|l| l.byte_len()))
            .sum::<usize>()
        + input
            .spaces
            .iter()
            .filter_map(|s| {
                s.codes.as_ref().map(|(q, c)| {
                    c.as_bytes().len() + crate::quant::section::head_len(q.dim()) + ALIGN
                })
            })
            .sum::<usize>();
    let mut w = Writer::with_capacity(
        prefix_len + n * 40 + vector_bytes + payload_bytes + graph_bytes + index_bytes + 64 * ALIGN,
    );
    w.buf.resize(prefix_len, 0);
    let mut table = Vec::with_capacity(section_count(spaces.len(), indexes.len(), sparse.len()));
    let mut section = |w: &mut Writer, fill: &mut dyn FnMut(&mut Writer)| {
        w.pad_to(ALIGN);
        let start = w.len();
        fill(w);
        table.push(SectionEntry {
            offset: start as u64,
            len: (w.len() - start) as u64,
            crc: crc(&w.buf[start..]),
        });
    };
    // Common sections, in canonical order.
    section(&mut w, &mut |w| {
        input.rows.iter().for_each(|r| w.u8(r.id.kind_tag()));
    });
    section(&mut w, &mut |w| {
        input.rows.iter().for_each(|r| w.u128(r.id.value_u128()));
    });
    section(&mut w, &mut |w| {
        input.rows.iter().for_each(|r| w.u64(r.version));
    });
    section(&mut w, &mut |w| {
        let mut off = 0u64;
        w.u64(0);
        for r in &input.rows {
            off += r.payload.len() as u64;
            w.u64(off);
        }
    });
    section(&mut w, &mut |w| {
        input.rows.iter().for_each(|r| w.bytes(r.payload));
    });
    section(&mut w, &mut |w| {
        for (id, lsn) in &input.tombstones {
            w.u8(id.kind_tag());
            w.bytes(&[0; 7]);
            w.u128(id.value_u128());
            w.u64(*lsn);
        }
    });
    let u32s = |w: &mut Writer, v: &[u32]| v.iter().for_each(|x| w.u32(*x));
    for (si, s) in input.spaces.iter().enumerate() {
        let zeros = vec![0f32; s.dim as usize];
        section(&mut w, &mut |w| {
            for r in &input.rows {
                w.f32s(r.vectors[si].unwrap_or(&zeros));
            }
        });
        let all = input.rows.iter().all(|r| r.vectors[si].is_some());
        section(&mut w, &mut |w| {
            if !all {
                for chunk in input.rows.chunks(64) {
                    let mut word = 0u64;
                    for (b, r) in chunk.iter().enumerate() {
                        if r.vectors[si].is_some() {
                            word |= 1 << b;
                        }
                    }
                    w.u64(word);
                }
            }
        });
        let g = s.graph.as_ref();
        section(&mut w, &mut |w| {
            if let Some(g) = g {
                w.bytes(&g.levels);
            }
        });
        section(&mut w, &mut |w| {
            if let Some(g) = g {
                u32s(w, &g.l0);
            }
        });
        section(&mut w, &mut |w| {
            if let Some(g) = g {
                u32s(w, &g.upper_offsets);
            }
        });
        section(&mut w, &mut |w| {
            if let Some(g) = g {
                u32s(w, &g.upper);
            }
        });
    }
    for (_, _, bytes) in built {
        section(&mut w, &mut |w| w.bytes(bytes));
    }
    for j in 0..input.sparse.len() {
        let rows: Vec<Option<&crate::sparse::SparseVector>> = input
            .rows
            .iter()
            .map(|r| r.sparse.get(j).copied().flatten())
            .collect();
        let bytes = crate::sparse::encode_section(&rows);
        section(&mut w, &mut |w| w.bytes(&bytes));
    }
    for s in &input.spaces {
        section(&mut w, &mut |w| {
            if let Some(l) = &s.links {
                l.write(w);
            }
        });
        section(&mut w, &mut |w| {
            if let Some((q, codes)) = &s.codes {
                crate::quant::section::write(q, codes, w);
            }
        });
    }
    let versions = input
        .rows
        .iter()
        .map(|r| r.version)
        .chain(input.tombstones.iter().map(|t| t.1));
    let (min_lsn, max_lsn) = versions.fold((u64::MAX, 0), |(lo, hi), v| (lo.min(v), hi.max(v)));
    let header = Header {
        version: VERSION,
        flags: if input.indexed { FLAG_INDEXED } else { 0 },
        segment_id: input.segment_id,
        collection_id: input.collection_id,
        rows: n as u32,
        tombstones: input.tombstones.len() as u32,
        min_lsn: if min_lsn == u64::MAX { 0 } else { min_lsn },
        max_lsn,
    };
    let layout = Layout::new(header, spaces, indexes, sparse, table);
    debug_assert_eq!(layout.prefix_len, prefix_len);
    let prefix = layout.encode();
    w.buf[..prefix_len].copy_from_slice(&prefix);
    w.buf
}
