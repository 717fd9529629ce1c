//! Encodes a segment file from sorted rows, tombstones and an optional flat graph.

use super::format::*;
use super::graph::FlatGraph;
use crate::codec::{Writer, crc};
use crate::types::{Distance, Lsn, PointId};

/// One row to write.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RowRef<'a> {
    pub(crate) id: PointId,
    pub(crate) version: Lsn,
    pub(crate) vector: &'a [f32],
    pub(crate) payload: &'a [u8],
}

/// Everything a segment file holds. `rows` and `tombstones` must be sorted by id, unique, and
/// disjoint.
#[derive(Debug)]
pub(crate) struct SegmentInput<'a> {
    pub(crate) segment_id: u64,
    pub(crate) collection_id: u64,
    pub(crate) dim: u32,
    pub(crate) distance: Distance,
    pub(crate) rows: Vec<RowRef<'a>>,
    pub(crate) tombstones: Vec<(PointId, Lsn)>,
    pub(crate) graph: Option<FlatGraph>,
}

/// Encodes `input` into the bytes of a segment file.
pub(crate) fn encode(input: &SegmentInput<'_>) -> Vec<u8> {
    debug_assert!(input.rows.windows(2).all(|w| w[0].id < w[1].id));
    debug_assert!(input.tombstones.windows(2).all(|w| w[0].0 < w[1].0));
    let n = input.rows.len();
    let dim = input.dim as usize;
    let payload_bytes: usize = input.rows.iter().map(|r| r.payload.len()).sum();
    let graph_bytes = input.graph.as_ref().map_or(0, FlatGraph::byte_len);
    let mut w = Writer::with_capacity(
        DATA_START + n * (dim * 4 + 32) + payload_bytes + graph_bytes + 12 * ALIGN,
    );
    w.buf.resize(DATA_START, 0);
    let mut table = [SectionEntry::default(); SECTION_COUNT];
    let mut section = |w: &mut Writer, sec: Sec, fill: &mut dyn FnMut(&mut Writer)| {
        w.pad_to(ALIGN);
        let start = w.len();
        fill(w);
        table[sec as usize] = SectionEntry {
            offset: start as u64,
            len: (w.len() - start) as u64,
            crc: crc(&w.buf[start..]),
        };
    };
    section(&mut w, Sec::Vectors, &mut |w| {
        for r in &input.rows {
            w.f32s(r.vector);
        }
    });
    section(&mut w, Sec::IdTags, &mut |w| {
        input.rows.iter().for_each(|r| w.u8(r.id.kind_tag()));
    });
    section(&mut w, Sec::IdValues, &mut |w| {
        input.rows.iter().for_each(|r| w.u128(r.id.value_u128()));
    });
    section(&mut w, Sec::Versions, &mut |w| {
        input.rows.iter().for_each(|r| w.u64(r.version));
    });
    section(&mut w, Sec::PayloadOffsets, &mut |w| {
        let mut off = 0u64;
        w.u64(0);
        for r in &input.rows {
            off += r.payload.len() as u64;
            w.u64(off);
        }
    });
    section(&mut w, Sec::PayloadData, &mut |w| {
        input.rows.iter().for_each(|r| w.bytes(r.payload));
    });
    section(&mut w, Sec::Tombstones, &mut |w| {
        for (id, lsn) in &input.tombstones {
            w.u8(id.kind_tag());
            w.bytes(&[0; 7]);
            w.u128(id.value_u128());
            w.u64(*lsn);
        }
    });
    let g = input.graph.as_ref();
    section(&mut w, Sec::GraphLevels, &mut |w| {
        if let Some(g) = g {
            w.bytes(&g.levels);
        }
    });
    let u32s = |w: &mut Writer, v: &[u32]| v.iter().for_each(|x| w.u32(*x));
    section(&mut w, Sec::GraphL0, &mut |w| {
        if let Some(g) = g {
            u32s(w, &g.l0);
        }
    });
    section(&mut w, Sec::GraphUpperOffsets, &mut |w| {
        if let Some(g) = g {
            u32s(w, &g.upper_offsets);
        }
    });
    section(&mut w, Sec::GraphUpper, &mut |w| {
        if let Some(g) = g {
            u32s(w, &g.upper);
        }
    });
    let versions = input
        .rows
        .iter()
        .map(|r| r.version)
        .chain(input.tombstones.iter().map(|t| t.1));
    let (min_lsn, max_lsn) = versions.fold((u64::MAX, 0), |(lo, hi), v| (lo.min(v), hi.max(v)));
    let header = Header {
        distance: input.distance.tag(),
        flags: if g.is_some() { FLAG_GRAPH } else { 0 },
        segment_id: input.segment_id,
        collection_id: input.collection_id,
        dim: input.dim,
        rows: n as u32,
        tombstones: input.tombstones.len() as u32,
        graph_entry: g.map_or(u32::MAX, |g| g.entry),
        graph_max_level: g.map_or(0, |g| g.max_level),
        graph_l0_width: g.map_or(0, |g| g.l0_width),
        graph_up_width: g.map_or(0, |g| g.up_width),
        graph_upper_lists: g.map_or(0, |g| g.upper_lists),
        min_lsn: if min_lsn == u64::MAX { 0 } else { min_lsn },
        max_lsn,
    };
    let prefix = encode_prefix(&header, &table);
    w.buf[..DATA_START].copy_from_slice(&prefix);
    w.buf
}
