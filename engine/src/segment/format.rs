//! Segment file layout (byte level; see `docs/format.md` for the table).
//!
//! ```text
//! 0    header (128 bytes)            magic, version, ids, dim, counts, graph meta, LSNs, CRC
//! 128  section table (11 × 24 bytes)  offset u64, len u64, crc32c u32, reserved u32
//! 448  sections, each starting at a multiple of 64:
//!      VECTORS f32[rows×dim] · ID_TAGS u8[rows] · ID_VALUES u128[rows] · VERSIONS u64[rows]
//!      PAYLOAD_OFFSETS u64[rows+1] · PAYLOAD_DATA · TOMBSTONES 32 B each
//!      GRAPH_LEVELS u8[rows] · GRAPH_L0 u32[rows×(1+w0)] · GRAPH_UPPER_OFFSETS u32[rows]
//!      GRAPH_UPPER u32[lists×(1+w)]
//! ```
//! Rows and tombstones are sorted by point id, so lookups are binary searches and scrolls are
//! merges. Sections are aligned so that vectors and neighbour lists are used in place.

use crate::codec::{DecodeError, Reader, Writer, crc};
use crate::types::Distance;

pub(crate) const MAGIC: &[u8; 8] = b"STRATSEG";
pub(crate) const VERSION: u32 = 1;
pub(crate) const HEADER_LEN: usize = 128;
pub(crate) const SECTION_COUNT: usize = 11;
pub(crate) const SECTION_ENTRY_LEN: usize = 24;
pub(crate) const TABLE_END: usize = HEADER_LEN + SECTION_COUNT * SECTION_ENTRY_LEN;
pub(crate) const ALIGN: usize = 64;
pub(crate) const DATA_START: usize = TABLE_END.next_multiple_of(ALIGN);
pub(crate) const TOMBSTONE_LEN: usize = 32;
pub(crate) const FLAG_GRAPH: u8 = 1;

/// Section indices in the table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(usize)]
pub(crate) enum Sec {
    Vectors = 0,
    IdTags = 1,
    IdValues = 2,
    Versions = 3,
    PayloadOffsets = 4,
    PayloadData = 5,
    Tombstones = 6,
    GraphLevels = 7,
    GraphL0 = 8,
    GraphUpperOffsets = 9,
    GraphUpper = 10,
}

impl Sec {
    /// This section's bit in a set of sections (see [`SectionSet`]).
    pub(crate) const fn bit(self) -> u16 {
        1 << self as usize
    }
}

/// A set of sections, one bit per [`Sec`].
pub(crate) type SectionSet = u16;

/// Every section.
pub(crate) const ALL_SECTIONS: SectionSet = (1 << SECTION_COUNT) - 1;
/// The sections of the HNSW graph.
pub(crate) const GRAPH_SECTIONS: SectionSet = Sec::GraphLevels.bit()
    | Sec::GraphL0.bit()
    | Sec::GraphUpperOffsets.bit()
    | Sec::GraphUpper.bit();
/// The sections of the payloads.
pub(crate) const PAYLOAD_SECTIONS: SectionSet = Sec::PayloadOffsets.bit() | Sec::PayloadData.bit();
/// The sections a meta file copies (ids, versions, tombstones).
pub(crate) const ID_SECTIONS: SectionSet =
    Sec::IdTags.bit() | Sec::IdValues.bit() | Sec::Versions.bit() | Sec::Tombstones.bit();

/// All sections in file-table order.
pub(crate) const SECTIONS: [Sec; SECTION_COUNT] = [
    Sec::Vectors,
    Sec::IdTags,
    Sec::IdValues,
    Sec::Versions,
    Sec::PayloadOffsets,
    Sec::PayloadData,
    Sec::Tombstones,
    Sec::GraphLevels,
    Sec::GraphL0,
    Sec::GraphUpperOffsets,
    Sec::GraphUpper,
];

pub(crate) const SECTION_NAMES: [&str; SECTION_COUNT] = [
    "vectors",
    "id tags",
    "id values",
    "versions",
    "payload offsets",
    "payload data",
    "tombstones",
    "graph levels",
    "graph layer 0",
    "graph upper offsets",
    "graph upper layers",
];

/// The fixed header.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub(crate) struct Header {
    pub(crate) distance: u8,
    pub(crate) flags: u8,
    pub(crate) segment_id: u64,
    pub(crate) collection_id: u64,
    pub(crate) dim: u32,
    pub(crate) rows: u32,
    pub(crate) tombstones: u32,
    pub(crate) graph_entry: u32,
    pub(crate) graph_max_level: u32,
    pub(crate) graph_l0_width: u32,
    pub(crate) graph_up_width: u32,
    pub(crate) graph_upper_lists: u32,
    pub(crate) min_lsn: u64,
    pub(crate) max_lsn: u64,
}

/// One section table entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub(crate) struct SectionEntry {
    pub(crate) offset: u64,
    pub(crate) len: u64,
    pub(crate) crc: u32,
}

/// Encodes header and table into the first `DATA_START` bytes.
pub(crate) fn encode_prefix(h: &Header, table: &[SectionEntry; SECTION_COUNT]) -> Vec<u8> {
    let mut w = Writer::with_capacity(DATA_START);
    w.bytes(MAGIC);
    w.u32(VERSION);
    w.u8(h.distance);
    w.u8(h.flags);
    w.u16(0);
    w.u64(h.segment_id);
    w.u64(h.collection_id);
    w.u32(h.dim);
    w.u32(h.rows);
    w.u32(h.tombstones);
    w.u32(h.graph_entry);
    w.u32(h.graph_max_level);
    w.u32(h.graph_l0_width);
    w.u32(h.graph_up_width);
    w.u32(h.graph_upper_lists);
    w.u64(h.min_lsn);
    w.u64(h.max_lsn);
    w.u32(SECTION_COUNT as u32);
    w.pad_to(124);
    w.u32(0); // header CRC, filled below
    for s in table {
        w.u64(s.offset);
        w.u64(s.len);
        w.u32(s.crc);
        w.u32(0);
    }
    debug_assert_eq!(w.len(), TABLE_END);
    let c = prefix_crc(&w.buf);
    w.buf[124..128].copy_from_slice(&c.to_le_bytes());
    w.pad_to(ALIGN);
    w.buf
}

/// Recomputes the header CRC of `b` in place (fuzzing: lets mutated headers and sections past
/// the checksum so that the structure checks and accessors behind it get exercised).
pub(crate) fn restamp_prefix_crc(b: &mut [u8]) {
    if b.len() >= TABLE_END {
        let c = prefix_crc(b);
        b[124..128].copy_from_slice(&c.to_le_bytes());
    }
}

fn prefix_crc(b: &[u8]) -> u32 {
    crc32c::crc32c_append(crc(&b[..124]), &b[HEADER_LEN..TABLE_END])
}

/// Decodes and checks header and table (magic, version, CRC).
pub(crate) fn decode_prefix(
    b: &[u8],
) -> Result<(Header, [SectionEntry; SECTION_COUNT]), DecodeError> {
    if b.len() < TABLE_END {
        return Err(DecodeError {
            offset: b.len(),
            what: format!(
                "file of {} bytes is shorter than the segment header",
                b.len()
            ),
        });
    }
    let mut r = Reader::new(b);
    r.magic_and_version(MAGIC, VERSION, "segment")?;
    let stored = u32::from_le_bytes(b[124..128].try_into().expect("4 bytes"));
    if prefix_crc(b) != stored {
        return Err(DecodeError {
            offset: 124,
            what: "segment header checksum mismatch".into(),
        });
    }
    let mut h = Header {
        distance: r.u8("distance")?,
        flags: r.u8("flags")?,
        ..Header::default()
    };
    let _ = r.u16("reserved")?;
    h.segment_id = r.u64("segment id")?;
    h.collection_id = r.u64("collection id")?;
    h.dim = r.u32("dim")?;
    h.rows = r.u32("row count")?;
    h.tombstones = r.u32("tombstone count")?;
    h.graph_entry = r.u32("graph entry")?;
    h.graph_max_level = r.u32("graph max level")?;
    h.graph_l0_width = r.u32("graph layer-0 width")?;
    h.graph_up_width = r.u32("graph upper width")?;
    h.graph_upper_lists = r.u32("graph upper list count")?;
    h.min_lsn = r.u64("min LSN")?;
    h.max_lsn = r.u64("max LSN")?;
    let count = r.u32("section count")?;
    if count as usize != SECTION_COUNT {
        return Err(r.err(format!("section count {count}, expected {SECTION_COUNT}")));
    }
    let mut r = Reader::new(&b[HEADER_LEN..TABLE_END]);
    let mut table = [SectionEntry::default(); SECTION_COUNT];
    for s in &mut table {
        s.offset = r.u64("section offset")?;
        s.len = r.u64("section length")?;
        s.crc = r.u32("section crc")?;
        let _ = r.u32("reserved")?;
    }
    Ok((h, table))
}

/// Checks a decoded header's values (distance, dimension, flags, graph widths) and returns the
/// distance and each section's expected length (`None`: any length, for payload data).
pub(crate) fn check_header(
    h: &Header,
) -> Result<(Distance, [Option<u64>; SECTION_COUNT]), DecodeError> {
    let err = |offset: usize, what: String| DecodeError { offset, what };
    let distance = Distance::from_tag(h.distance)
        .ok_or_else(|| err(12, format!("unknown distance tag {}", h.distance)))?;
    let rows = h.rows as u64;
    let dim = h.dim as u64;
    if dim == 0 || dim > crate::types::MAX_DIM as u64 {
        return Err(err(32, format!("dimension {dim} out of range")));
    }
    let has_graph = h.flags & FLAG_GRAPH != 0;
    if h.flags & !FLAG_GRAPH != 0 {
        return Err(err(13, format!("unknown flags {:#x}", h.flags)));
    }
    if has_graph && (h.graph_l0_width > 4096 || h.graph_up_width > 4096) {
        return Err(err(52, "graph list width out of range".into()));
    }
    // rows < 2^32, dim <= 2^16 and widths <= 4096: none of these products overflow u64.
    let g = |x: u64| if has_graph { x } else { 0 };
    Ok((
        distance,
        [
            Some(rows * dim * 4),
            Some(rows),
            Some(rows * 16),
            Some(rows * 8),
            Some((rows + 1) * 8),
            None,
            Some(h.tombstones as u64 * TOMBSTONE_LEN as u64),
            Some(g(rows)),
            Some(g(rows * (1 + h.graph_l0_width as u64) * 4)),
            Some(g(rows * 4)),
            Some(g(h.graph_upper_lists as u64
                * (1 + h.graph_up_width as u64)
                * 4)),
        ],
    ))
}
