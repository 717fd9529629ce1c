//! Segment file layout (byte level; see `docs/format.md` for the tables).
//!
//! Version 5 (written; the sparse sections of version 4 and the payload links of version 5
//! follow the payload indexes, see `docs/format.md`):
//! ```text
//! 0    header (128 bytes)   magic, version, ids, counts, LSNs, space, section and payload
//!                           index counts, prefix length, CRC of header + records + table
//! 128  space records         one per named dense vector: kind, distance, dim, graph meta, name
//! ...  index records         one per payload index: field type, flags, key length, points, key
//! ...  section table         24 bytes per section: offset, len, crc32c, kind, space (or index)
//! ...  zero padding to the prefix length (a multiple of 64)
//!      sections, each starting at a multiple of 64, in canonical order:
//!      ID_TAGS · ID_VALUES · VERSIONS · PAYLOAD_OFFSETS · PAYLOAD_DATA · TOMBSTONES, then per
//!      space: VECTORS f32[rows×dim] · PRESENCE u64[⌈rows/64⌉] or empty (every row has it) ·
//!      GRAPH_LEVELS · GRAPH_L0 · GRAPH_UPPER_OFFSETS · GRAPH_UPPER, then one PAYLOAD_INDEX
//!      per index record (see `pindex.rs`), SPARSE per sparse record (`sparse.rs`), then
//!      (version 5) PAYLOAD_LINKS and CODES per space, either possibly empty (`links.rs`,
//!      `quant.rs`)
//! ```
//! Version 4 (still read) is version 5 without the payload links and codes sections; version 3 is
//! version 4 without sparse spaces.
//! Version 2 (still read) is version 3 without payload indexes (the count's bytes were zero).
//! Version 1 (still read) had one unnamed space and a fixed table of 11 entries; it decodes
//! into the same [`Layout`] (one space named `""`, every row present).
//!
//! In memory, sections are numbered in *canonical order*: the six common sections, then six
//! per space ([`common`], [`space_sec`]); a [`SectionSet`] is a set of those numbers.

use crate::codec::{DecodeError, Reader, Writer, crc};
use crate::types::Distance;

pub(crate) const MAGIC: &[u8; 8] = b"STRATSEG";
/// The version this code writes.
pub(crate) const VERSION: u32 = 5;
pub(crate) const HEADER_LEN: usize = 128;
pub(crate) const SECTION_ENTRY_LEN: usize = 24;
pub(crate) const ALIGN: usize = 64;
pub(crate) const TOMBSTONE_LEN: usize = 32;
/// Header flag (both versions): the segment was indexed — every space with rows has a graph.
pub(crate) const FLAG_INDEXED: u32 = 1;
/// Named dense vectors per segment (and collection) at most.
pub(crate) const MAX_SPACES: usize = 16;
/// Longest vector name, in bytes.
pub(crate) const MAX_NAME: usize = 255;
/// Version 1: 11 sections, data from byte 448.
const V1_SECTIONS: usize = 11;
const V1_DATA_START: usize = 448;
/// Bytes of a space record before its name.
const SPACE_FIXED: usize = 32;
/// The `space` field of a common section's table entry.
const NO_SPACE: u16 = u16::MAX;
const KIND_DENSE: u8 = 1;
/// Section kind of a payload index (its table entry's `space` field is the index number).
const KIND_PAYLOAD_INDEX: u8 = 12;
/// Payload indexes per segment at most (as per collection).
pub(crate) const MAX_SEGMENT_INDEXES: usize = crate::index::MAX_INDEXES;
/// Bytes of an index record before its key.
const INDEX_FIXED: usize = 8;
/// Kind byte of a sparse record.
const KIND_SPARSE: u8 = 2;
/// Section kind of a sparse space (its table entry's `space` field is the sparse number).
const KIND_SPARSE_SECTION: u8 = 13;
/// Section kind of a space's payload links (version 5; its table entry's `space` field is the
/// space number).
const KIND_LINKS: u8 = 14;
/// Section kind of a space's one-byte codes (version 5; `space` = the space number).
const KIND_CODES: u8 = 15;
/// Bytes of a sparse record before its name.
const SPARSE_FIXED: usize = 8;
/// Sparse vector spaces per segment at most.
pub(crate) const MAX_SPARSE: usize = 16;

/// Sections every segment has once (canonical numbers 0..6).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(usize)]
pub(crate) enum Sec {
    IdTags = 0,
    IdValues = 1,
    Versions = 2,
    PayloadOffsets = 3,
    PayloadData = 4,
    Tombstones = 5,
}
pub(crate) const COMMON_COUNT: usize = 6;
const COMMON: [Sec; COMMON_COUNT] = [
    Sec::IdTags,
    Sec::IdValues,
    Sec::Versions,
    Sec::PayloadOffsets,
    Sec::PayloadData,
    Sec::Tombstones,
];
/// On-disk kind byte of each common section (v1's table index).
const COMMON_KIND: [u8; COMMON_COUNT] = [1, 2, 3, 4, 5, 6];
const COMMON_NAMES: [&str; COMMON_COUNT] = [
    "id tags",
    "id values",
    "versions",
    "payload offsets",
    "payload data",
    "tombstones",
];

/// Sections every space has (canonical numbers `6 + 6 × space + k`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(usize)]
pub(crate) enum SpaceSec {
    Vectors = 0,
    Presence = 1,
    GraphLevels = 2,
    GraphL0 = 3,
    GraphUpperOffsets = 4,
    GraphUpper = 5,
}
pub(crate) const PER_SPACE: usize = 6;
/// On-disk kind byte of each space section (v1's table index; presence is new in v2).
const SPACE_KIND: [u8; PER_SPACE] = [0, 11, 7, 8, 9, 10];
const SPACE_NAMES: [&str; PER_SPACE] = [
    "vectors",
    "presence",
    "graph levels",
    "graph layer 0",
    "graph upper offsets",
    "graph upper layers",
];

/// Canonical number of a common section.
pub(crate) const fn common(s: Sec) -> usize {
    s as usize
}

/// Canonical number of section `k` of space `space`.
pub(crate) const fn space_sec(space: usize, k: SpaceSec) -> usize {
    COMMON_COUNT + space * PER_SPACE + k as usize
}

/// Canonical number of payload index `j` of a segment with `spaces` vector spaces.
pub(crate) const fn index_sec(spaces: usize, j: usize) -> usize {
    COMMON_COUNT + spaces * PER_SPACE + j
}

/// Canonical number of sparse space `j` of a segment with `spaces` vector spaces and
/// `indexes` payload indexes.
pub(crate) const fn sparse_sec(spaces: usize, indexes: usize, j: usize) -> usize {
    index_sec(spaces, indexes) + j
}

/// Canonical number of space `space`'s payload links section (version 5: two per space after
/// the sparse sections, links then codes).
pub(crate) const fn links_sec(spaces: usize, indexes: usize, sparse: usize, space: usize) -> usize {
    sparse_sec(spaces, indexes, sparse) + 2 * space
}

/// Canonical number of space `space`'s codes section (version 5).
pub(crate) const fn codes_sec(spaces: usize, indexes: usize, sparse: usize, space: usize) -> usize {
    links_sec(spaces, indexes, sparse, space) + 1
}

/// Sections of a version-5 segment.
pub(crate) const fn section_count(spaces: usize, indexes: usize, sparse: usize) -> usize {
    links_sec(spaces, indexes, sparse, spaces)
}

/// A set of sections by canonical number (at most 256).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct SectionSet([u64; 4]);

impl SectionSet {
    pub(crate) const EMPTY: SectionSet = SectionSet([0; 4]);

    /// Every section of a segment with `n` sections.
    pub(crate) fn first(n: usize) -> SectionSet {
        (0..n).fold(SectionSet::EMPTY, SectionSet::with)
    }
    #[must_use]
    pub(crate) const fn with(mut self, i: usize) -> SectionSet {
        if i < 256 {
            self.0[i / 64] |= 1 << (i % 64);
        }
        self
    }
    pub(crate) const fn has(&self, i: usize) -> bool {
        i < 256 && self.0[i / 64] & (1 << (i % 64)) != 0
    }
    #[must_use]
    pub(crate) const fn union(mut self, o: SectionSet) -> SectionSet {
        let mut i = 0;
        while i < 4 {
            self.0[i] |= o.0[i];
            i += 1;
        }
        self
    }
    #[must_use]
    pub(crate) fn minus(mut self, o: SectionSet) -> SectionSet {
        for (a, b) in self.0.iter_mut().zip(o.0) {
            *a &= !b;
        }
        self
    }
    #[must_use]
    pub(crate) fn intersect(mut self, o: SectionSet) -> SectionSet {
        for (a, b) in self.0.iter_mut().zip(o.0) {
            *a &= b;
        }
        self
    }
    pub(crate) fn contains_all(&self, o: SectionSet) -> bool {
        o.minus(*self) == SectionSet::EMPTY
    }
    pub(crate) fn iter(self) -> impl Iterator<Item = usize> {
        (0..256).filter(move |i| self.has(*i))
    }
}

const fn set_of(secs: &[Sec]) -> SectionSet {
    let mut s = SectionSet::EMPTY;
    let mut i = 0;
    while i < secs.len() {
        s = s.with(secs[i] as usize);
        i += 1;
    }
    s
}

/// The sections of the payloads.
pub(crate) const PAYLOAD_SECTIONS: SectionSet = set_of(&[Sec::PayloadOffsets, Sec::PayloadData]);
/// The sections a meta file copies (ids, versions, tombstones).
pub(crate) const ID_SECTIONS: SectionSet =
    set_of(&[Sec::IdTags, Sec::IdValues, Sec::Versions, Sec::Tombstones]);

/// A space's vectors and presence bitmap.
pub(crate) fn vector_sections(space: usize) -> SectionSet {
    SectionSet::EMPTY
        .with(space_sec(space, SpaceSec::Vectors))
        .with(space_sec(space, SpaceSec::Presence))
}

/// A space's graph.
pub(crate) fn graph_sections(space: usize) -> SectionSet {
    [
        SpaceSec::GraphLevels,
        SpaceSec::GraphL0,
        SpaceSec::GraphUpperOffsets,
        SpaceSec::GraphUpper,
    ]
    .into_iter()
    .fold(SectionSet::EMPTY, |s, k| s.with(space_sec(space, k)))
}

/// Where a space's HNSW graph starts and how wide its lists are.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub(crate) struct GraphMeta {
    pub(crate) entry: u32,
    pub(crate) max_level: u32,
    pub(crate) l0_width: u32,
    pub(crate) up_width: u32,
    pub(crate) upper_lists: u32,
}

impl GraphMeta {
    /// Reads the five u32 fields, in this order (both versions store them so).
    fn read(r: &mut Reader<'_>) -> Result<GraphMeta, DecodeError> {
        Ok(GraphMeta {
            entry: r.u32("graph entry")?,
            max_level: r.u32("graph max level")?,
            l0_width: r.u32("graph layer-0 width")?,
            up_width: r.u32("graph upper width")?,
            upper_lists: r.u32("graph upper list count")?,
        })
    }
}

/// A space section's (space, index within the space) from its canonical number (≥ 6).
fn split(i: usize) -> (usize, usize) {
    (
        (i - COMMON_COUNT) / PER_SPACE,
        (i - COMMON_COUNT) % PER_SPACE,
    )
}

/// The on-disk (kind, space) of canonical section `i` of a segment with `spaces` vector spaces,
/// `indexes` payload indexes and `sparse` sparse spaces (the table fields of versions 2 to 5).
fn kind_of(i: usize, spaces: usize, indexes: usize, sparse: usize) -> (u8, u16) {
    match i {
        i if i < COMMON_COUNT => (COMMON_KIND[i], NO_SPACE),
        i if i >= links_sec(spaces, indexes, sparse, 0) => {
            let k = i - links_sec(spaces, indexes, sparse, 0);
            let kind = if k.is_multiple_of(2) {
                KIND_LINKS
            } else {
                KIND_CODES
            };
            (kind, (k / 2) as u16)
        }
        i if i >= sparse_sec(spaces, indexes, 0) => (
            KIND_SPARSE_SECTION,
            (i - sparse_sec(spaces, indexes, 0)) as u16,
        ),
        i if i >= index_sec(spaces, 0) => (KIND_PAYLOAD_INDEX, (i - index_sec(spaces, 0)) as u16),
        i => {
            let (space, k) = split(i);
            (SPACE_KIND[k], space as u16)
        }
    }
}

/// One payload index of a segment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct IndexRecord {
    /// The indexed key, as the index was created (`a.b`, `a[].b`).
    pub(crate) key: String,
    pub(crate) ty: crate::index::FieldType,
    /// `pindex::FLAG_*`.
    pub(crate) flags: u8,
    /// Rows holding at least one indexed value.
    pub(crate) points: u32,
}

fn index_record_len(key: &str) -> usize {
    INDEX_FIXED + key.len().next_multiple_of(8)
}

/// One sparse vector space of a segment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct SparseSpace {
    pub(crate) name: String,
    pub(crate) modifier: crate::sparse::Modifier,
}

fn sparse_record_len(name: &str) -> usize {
    SPARSE_FIXED + name.len().next_multiple_of(8)
}

/// One named dense vector of a segment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Space {
    pub(crate) name: String,
    pub(crate) dim: u32,
    pub(crate) distance: Distance,
    /// `None` when this space has no graph (searched exactly).
    pub(crate) graph: Option<GraphMeta>,
}

/// The fixed header's values.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub(crate) struct Header {
    pub(crate) version: u32,
    pub(crate) flags: u32,
    pub(crate) segment_id: u64,
    pub(crate) collection_id: u64,
    pub(crate) rows: u32,
    pub(crate) tombstones: u32,
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

/// A decoded header, space list and section table (canonical order), of either version.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Layout {
    pub(crate) header: Header,
    pub(crate) spaces: Vec<Space>,
    /// Payload indexes, sorted by key.
    pub(crate) indexes: Vec<IndexRecord>,
    /// Sparse vector spaces, sorted by name.
    pub(crate) sparse: Vec<SparseSpace>,
    pub(crate) table: Vec<SectionEntry>,
    /// Where the table entry of each section lies in the file (error offsets).
    entry_at: Vec<usize>,
    /// Bytes of header, space records and table, padded: where sections may start.
    pub(crate) prefix_len: usize,
    /// End of the table (the padding up to `prefix_len` must be zero).
    pub(crate) table_end: usize,
}

fn err(offset: usize, what: impl Into<String>) -> DecodeError {
    DecodeError {
        offset,
        what: what.into(),
    }
}

fn too_short(len: usize) -> DecodeError {
    err(
        len,
        format!("file of {len} bytes is shorter than the segment header"),
    )
}

fn space_record_len(name: &str) -> usize {
    SPACE_FIXED + name.len().next_multiple_of(8)
}

impl Layout {
    /// A layout to write: `table` in canonical order (offsets filled by the writer).
    pub(crate) fn new(
        header: Header,
        spaces: Vec<Space>,
        indexes: Vec<IndexRecord>,
        sparse: Vec<SparseSpace>,
        table: Vec<SectionEntry>,
    ) -> Layout {
        let table_end = HEADER_LEN
            + spaces
                .iter()
                .map(|s| space_record_len(&s.name))
                .sum::<usize>()
            + indexes
                .iter()
                .map(|x| index_record_len(&x.key))
                .sum::<usize>()
            + sparse
                .iter()
                .map(|x| sparse_record_len(&x.name))
                .sum::<usize>()
            + table.len() * SECTION_ENTRY_LEN;
        let entry_at = (0..table.len())
            .map(|i| table_end - (table.len() - i) * SECTION_ENTRY_LEN)
            .collect();
        Layout {
            header: Header {
                version: VERSION,
                ..header
            },
            spaces,
            indexes,
            sparse,
            table,
            entry_at,
            prefix_len: table_end.next_multiple_of(ALIGN),
            table_end,
        }
    }

    /// The prefix length a segment with these spaces, indexes and sparse spaces has.
    pub(crate) fn prefix_len_for(
        spaces: &[Space],
        indexes: &[IndexRecord],
        sparse: &[SparseSpace],
    ) -> usize {
        Layout::new(
            Header::default(),
            spaces.to_vec(),
            indexes.to_vec(),
            sparse.to_vec(),
            vec![SectionEntry::default(); section_count(spaces.len(), indexes.len(), sparse.len())],
        )
        .prefix_len
    }

    /// The number of the sparse space named `name`, if the segment has it.
    pub(crate) fn sparse_index(&self, name: &str) -> Option<usize> {
        self.sparse.iter().position(|s| s.name == name)
    }

    /// Canonical number of sparse space `j`'s section.
    pub(crate) fn sparse_sec(&self, j: usize) -> usize {
        sparse_sec(self.spaces.len(), self.indexes.len(), j)
    }

    /// Canonical number of `space`'s payload links section, if the segment has one (version
    /// 5; it may be empty: no links).
    pub(crate) fn links_sec(&self, space: usize) -> Option<usize> {
        let i = links_sec(
            self.spaces.len(),
            self.indexes.len(),
            self.sparse.len(),
            space,
        );
        (space < self.spaces.len() && i < self.table.len()).then_some(i)
    }

    /// Canonical number of `space`'s codes section, if the segment has one (version 5; it may
    /// be empty: no codes stored).
    pub(crate) fn codes_sec(&self, space: usize) -> Option<usize> {
        let i = codes_sec(
            self.spaces.len(),
            self.indexes.len(),
            self.sparse.len(),
            space,
        );
        (space < self.spaces.len() && i < self.table.len()).then_some(i)
    }

    /// Every sparse section.
    pub(crate) fn sparse_sections(&self) -> SectionSet {
        (0..self.sparse.len()).fold(SectionSet::EMPTY, |s, j| s.with(self.sparse_sec(j)))
    }

    /// The index whose key path is `path` and which answers `q`, if any (its number).
    pub(crate) fn index_for(&self, q: crate::filter::IndexQuery<'_>) -> Option<usize> {
        let path = match q {
            crate::filter::IndexQuery::Match { key, .. }
            | crate::filter::IndexQuery::Range { key, .. } => key,
        };
        self.indexes.iter().position(|x| {
            crate::filter::key_is(&x.key, path) && super::pindex::answers(x.ty, x.flags, q)
        })
    }

    /// Number of sections.
    pub(crate) fn len(&self) -> usize {
        self.table.len()
    }

    /// A section's name for messages.
    pub(crate) fn name(&self, i: usize) -> String {
        if i < COMMON_COUNT {
            return COMMON_NAMES[i].to_string();
        }
        if let Some(l) = self.links_sec(0)
            && i >= l
        {
            let what = if (i - l).is_multiple_of(2) {
                "payload links"
            } else {
                "codes"
            };
            return match self.spaces.get((i - l) / 2) {
                Some(s) if self.spaces.len() == 1 && s.name.is_empty() => what.into(),
                Some(s) => format!("{what} of vector {:?}", s.name),
                None => format!("section {i}"),
            };
        }
        if i >= self.sparse_sec(0) {
            return match self.sparse.get(i - self.sparse_sec(0)) {
                Some(x) => format!("sparse vector {:?}", x.name),
                None => format!("section {i}"),
            };
        }
        if i >= index_sec(self.spaces.len(), 0) {
            let j = i - index_sec(self.spaces.len(), 0);
            return match self.indexes.get(j) {
                Some(x) => format!("payload index {:?}", x.key),
                None => format!("section {i}"),
            };
        }
        let (space, k) = split(i);
        match self.spaces.get(space) {
            Some(s) if self.spaces.len() == 1 && s.name.is_empty() => SPACE_NAMES[k].to_string(),
            Some(s) => format!("{} of vector {:?}", SPACE_NAMES[k], s.name),
            None => format!("section {i}"),
        }
    }

    /// Where section `i`'s table entry lies in the file.
    pub(crate) fn entry_at(&self, i: usize) -> usize {
        self.entry_at.get(i).copied().unwrap_or(HEADER_LEN)
    }

    /// True when `space` has a graph (and the segment has rows).
    pub(crate) fn has_graph(&self, space: usize) -> bool {
        self.spaces.get(space).is_some_and(|s| s.graph.is_some()) && self.header.rows > 0
    }

    /// True when the segment was indexed (every space with rows has a graph).
    pub(crate) fn indexed(&self) -> bool {
        self.header.flags & FLAG_INDEXED != 0 && self.header.rows > 0
    }

    /// Section `i`'s expected length; `None` for any length (payload data), `Some(None)`-like
    /// choices are spelled out: presence may be empty or one bit per row.
    pub(crate) fn expected_len(&self, i: usize) -> Expected {
        let rows = u64::from(self.header.rows);
        if i < COMMON_COUNT {
            return match COMMON[i] {
                Sec::IdTags => Expected::Is(rows),
                Sec::IdValues => Expected::Is(rows * 16),
                Sec::Versions => Expected::Is(rows * 8),
                Sec::PayloadOffsets => Expected::Is((rows + 1) * 8),
                Sec::PayloadData => Expected::Any,
                Sec::Tombstones => {
                    Expected::Is(u64::from(self.header.tombstones) * TOMBSTONE_LEN as u64)
                }
            };
        }
        if i >= index_sec(self.spaces.len(), 0) {
            return Expected::Any;
        }
        let (space, k) = split(i);
        let Some(s) = self.spaces.get(space) else {
            return Expected::Is(0);
        };
        let g = |x: u64| if s.graph.is_some() { x } else { 0 };
        let gm = s.graph.unwrap_or_default();
        // rows < 2^32, dim <= 2^16 and widths <= 4096: none of these products overflow u64.
        Expected::Is(match k {
            0 => rows * u64::from(s.dim) * 4,
            1 => return Expected::ZeroOr(rows.div_ceil(64) * 8),
            2 => g(rows),
            3 => g(rows * (1 + u64::from(gm.l0_width)) * 4),
            4 => g(rows * 4),
            _ => g(u64::from(gm.upper_lists) * (1 + u64::from(gm.up_width)) * 4),
        })
    }

    /// Decodes and checks header, spaces and table of either version: magic, version, CRC,
    /// every value (distances, dimensions, widths, names, kinds in canonical order).
    pub(crate) fn decode(b: &[u8]) -> Result<Layout, DecodeError> {
        if b.len() < HEADER_LEN {
            return Err(too_short(b.len()));
        }
        let mut r = Reader::new(b);
        if r.take(8, "segment magic")? != MAGIC {
            return Err(err(0, "bad segment magic"));
        }
        let version = r.u32("segment format version")?;
        let layout = match version {
            1 => Self::decode_v1(b)?,
            2..=5 => Self::decode_v2(b, version)?,
            v => return Err(err(8, format!("unsupported segment format version {v}"))),
        };
        layout.check_values()?;
        Ok(layout)
    }

    /// Gives a segment file (any version, checked first) another segment id and collection
    /// id, updating the header checksum: how a restored snapshot's segments join this data
    /// directory.
    pub(crate) fn renumber(
        b: &mut [u8],
        segment_id: u64,
        collection_id: u64,
    ) -> Result<(), DecodeError> {
        let layout = Self::decode(b)?;
        b[16..24].copy_from_slice(&segment_id.to_le_bytes());
        b[24..32].copy_from_slice(&collection_id.to_le_bytes());
        let sum = crc32c::crc32c_append(crc(&b[..124]), &b[HEADER_LEN..layout.table_end]);
        b[124..128].copy_from_slice(&sum.to_le_bytes());
        Ok(())
    }

    fn check_crc(b: &[u8], table_end: usize) -> Result<(), DecodeError> {
        let stored = u32::from_le_bytes(b[124..128].try_into().expect("4 bytes"));
        let sum = crc32c::crc32c_append(crc(&b[..124]), &b[HEADER_LEN..table_end]);
        if sum != stored {
            return Err(err(124, "segment header checksum mismatch"));
        }
        Ok(())
    }

    fn decode_v1(b: &[u8]) -> Result<Layout, DecodeError> {
        let table_end = HEADER_LEN + V1_SECTIONS * SECTION_ENTRY_LEN;
        if b.len() < table_end {
            return Err(too_short(b.len()));
        }
        Self::check_crc(b, table_end)?;
        let mut r = Reader::new(&b[12..]);
        let distance_tag = r.u8("distance")?;
        let flags = r.u8("flags")?;
        let _ = r.u16("reserved")?;
        let mut h = Header {
            version: 1,
            flags: u32::from(flags),
            segment_id: r.u64("segment id")?,
            collection_id: r.u64("collection id")?,
            ..Header::default()
        };
        let dim = r.u32("dim")?;
        h.rows = r.u32("row count")?;
        h.tombstones = r.u32("tombstone count")?;
        let gm = GraphMeta::read(&mut r)?;
        h.min_lsn = r.u64("min LSN")?;
        h.max_lsn = r.u64("max LSN")?;
        let count = r.u32("section count")?;
        if count as usize != V1_SECTIONS {
            return Err(err(
                80,
                format!("section count {count}, expected {V1_SECTIONS}"),
            ));
        }
        let distance = Distance::from_tag(distance_tag)
            .ok_or_else(|| err(12, format!("unknown distance tag {distance_tag}")))?;
        if flags & !1 != 0 {
            return Err(err(13, format!("unknown flags {flags:#x}")));
        }
        let mut raw = [SectionEntry::default(); V1_SECTIONS];
        let mut r = Reader::new(&b[HEADER_LEN..table_end]);
        for s in &mut raw {
            s.offset = r.u64("section offset")?;
            s.len = r.u64("section length")?;
            s.crc = r.u32("section crc")?;
            let _ = r.u32("reserved")?;
        }
        // Canonical order: the common sections (v1 indices 1..=6), then the one space's
        // vectors (0), an empty presence section (every row present), the graph (7..=10).
        let order: [Option<usize>; COMMON_COUNT + PER_SPACE] = [
            Some(1),
            Some(2),
            Some(3),
            Some(4),
            Some(5),
            Some(6),
            Some(0),
            None,
            Some(7),
            Some(8),
            Some(9),
            Some(10),
        ];
        let mut table = Vec::with_capacity(order.len());
        let mut entry_at = Vec::with_capacity(order.len());
        for o in order {
            match o {
                Some(i) => {
                    table.push(raw[i]);
                    entry_at.push(HEADER_LEN + i * SECTION_ENTRY_LEN);
                }
                None => {
                    table.push(SectionEntry {
                        offset: V1_DATA_START as u64,
                        len: 0,
                        crc: 0,
                    });
                    entry_at.push(HEADER_LEN);
                }
            }
        }
        Ok(Layout {
            header: h,
            spaces: vec![Space {
                name: String::new(),
                dim,
                distance,
                graph: (flags & 1 != 0).then_some(gm),
            }],
            indexes: Vec::new(),
            sparse: Vec::new(),
            table,
            entry_at,
            prefix_len: V1_DATA_START,
            table_end,
        })
    }

    fn decode_v2(b: &[u8], version: u32) -> Result<Layout, DecodeError> {
        let mut r = Reader::new(&b[12..HEADER_LEN]);
        let mut h = Header {
            version,
            flags: r.u32("flags")?,
            segment_id: r.u64("segment id")?,
            collection_id: r.u64("collection id")?,
            rows: r.u32("row count")?,
            tombstones: r.u32("tombstone count")?,
            min_lsn: r.u64("min LSN")?,
            max_lsn: r.u64("max LSN")?,
        };
        let space_count = r.u32("space count")? as usize;
        let section_count = r.u32("section count")? as usize;
        let prefix_len = r.u32("prefix length")? as usize;
        let index_count = match version {
            2 => 0,
            _ => r.u32("payload index count")? as usize,
        };
        let sparse_count = match version {
            2 | 3 => 0,
            _ => r.u32("sparse space count")? as usize,
        };
        let reserved = match version {
            2 => 68,
            3 => 72,
            _ => 76,
        };
        if sparse_count > MAX_SPARSE {
            return Err(err(
                72,
                format!("{sparse_count} sparse spaces, at most {MAX_SPARSE}"),
            ));
        }
        if b[reserved..124].iter().any(|x| *x != 0) {
            return Err(err(reserved, "non-zero reserved header bytes"));
        }
        if index_count > MAX_SEGMENT_INDEXES {
            return Err(err(
                68,
                format!("{index_count} payload indexes, at most {MAX_SEGMENT_INDEXES}"),
            ));
        }
        if h.flags & !FLAG_INDEXED != 0 {
            return Err(err(12, format!("unknown flags {:#x}", h.flags)));
        }
        h.flags &= FLAG_INDEXED;
        if space_count > MAX_SPACES {
            return Err(err(
                56,
                format!("{space_count} vector spaces, at most {MAX_SPACES}"),
            ));
        }
        let want_sections = match version {
            2..=4 => sparse_sec(space_count, index_count, sparse_count),
            _ => self::section_count(space_count, index_count, sparse_count),
        };
        if section_count != want_sections {
            return Err(err(
                60,
                format!(
                    "section count {section_count}, expected {want_sections} for {space_count} spaces, {index_count} payload indexes and {sparse_count} sparse spaces"
                ),
            ));
        }
        if prefix_len > b.len() || !prefix_len.is_multiple_of(ALIGN) || prefix_len < HEADER_LEN {
            return Err(err(
                64,
                format!(
                    "prefix length {prefix_len} is misaligned or past the file ({} bytes)",
                    b.len()
                ),
            ));
        }
        // The checksum first: a damaged byte is reported as damage, not as a strange value.
        match Self::decode_v2_table_end(b) {
            Some(end) if end <= prefix_len => Self::check_crc(b, end)?,
            _ => {
                return Err(err(
                    64,
                    format!("prefix length {prefix_len} does not hold the space records and table"),
                ));
            }
        }
        let mut r = Reader::new(&b[..prefix_len]);
        r.take(HEADER_LEN, "header")?;
        let mut spaces: Vec<Space> = Vec::with_capacity(space_count);
        for i in 0..space_count {
            let at = r.pos();
            let kind = r.u8("space kind")?;
            let dist = r.u8("distance")?;
            let flags = r.u8("space flags")?;
            let name_len = r.u8("name length")? as usize;
            let dim = r.u32("dim")?;
            let gm = GraphMeta::read(&mut r)?;
            let _ = r.u32("reserved")?;
            let name_at = r.pos();
            let raw = r.take(name_len.next_multiple_of(8), "vector name")?;
            if kind != KIND_DENSE {
                return Err(err(at, format!("space {i}: unknown kind {kind}")));
            }
            if flags & !1 != 0 {
                return Err(err(at + 2, format!("space {i}: unknown flags {flags:#x}")));
            }
            if raw[name_len..].iter().any(|x| *x != 0) {
                return Err(err(name_at, format!("space {i}: non-zero name padding")));
            }
            let name = std::str::from_utf8(&raw[..name_len])
                .map_err(|_| err(name_at, format!("space {i}: name is not UTF-8")))?
                .to_string();
            if spaces.last().is_some_and(|p| p.name >= name) {
                return Err(err(
                    name_at,
                    format!("space {i}: names not sorted or repeated"),
                ));
            }
            let distance = Distance::from_tag(dist)
                .ok_or_else(|| err(at + 1, format!("space {i}: unknown distance tag {dist}")))?;
            spaces.push(Space {
                name,
                dim,
                distance,
                graph: (flags & 1 != 0).then_some(gm),
            });
        }
        let mut indexes: Vec<IndexRecord> = Vec::with_capacity(index_count);
        for j in 0..index_count {
            let at = r.pos();
            let tag = r.u8("index field type")?;
            let flags = r.u8("index flags")?;
            let key_len = r.u16("index key length")? as usize;
            let points = r.u32("index points")?;
            let key_at = r.pos();
            let raw = r.take(key_len.next_multiple_of(8), "index key")?;
            let ty = crate::index::FieldType::from_tag(tag)
                .ok_or_else(|| err(at, format!("payload index {j}: unknown field type {tag}")))?;
            if flags & !super::pindex::FLAG_OTHER_NUMBERS != 0 {
                return Err(err(
                    at + 1,
                    format!("payload index {j}: unknown flags {flags:#x}"),
                ));
            }
            if raw[key_len..].iter().any(|x| *x != 0) {
                return Err(err(
                    key_at,
                    format!("payload index {j}: non-zero key padding"),
                ));
            }
            let key = std::str::from_utf8(&raw[..key_len])
                .map_err(|_| err(key_at, format!("payload index {j}: key is not UTF-8")))?
                .to_string();
            if crate::index::validate_key(&key).is_err()
                || indexes.last().is_some_and(|p| p.key >= key)
            {
                return Err(err(
                    key_at,
                    format!("payload index {j}: key invalid, unsorted or repeated"),
                ));
            }
            if points > h.rows {
                return Err(err(
                    at + 4,
                    format!("payload index {j}: {points} points in {} rows", h.rows),
                ));
            }
            indexes.push(IndexRecord {
                key,
                ty,
                flags,
                points,
            });
        }
        let mut sparse: Vec<SparseSpace> = Vec::with_capacity(sparse_count);
        for j in 0..sparse_count {
            let at = r.pos();
            let kind = r.u8("sparse kind")?;
            let modifier = r.u8("sparse modifier")?;
            let reserved = r.u8("reserved")?;
            let name_len = r.u8("sparse name length")? as usize;
            let reserved32 = r.u32("reserved")?;
            let name_at = r.pos();
            let raw = r.take(name_len.next_multiple_of(8), "sparse vector name")?;
            if kind != KIND_SPARSE || reserved != 0 || reserved32 != 0 {
                return Err(err(
                    at,
                    format!("sparse space {j}: unknown kind {kind} or non-zero reserved bytes"),
                ));
            }
            let modifier = crate::sparse::Modifier::from_tag(modifier).ok_or_else(|| {
                err(
                    at + 1,
                    format!("sparse space {j}: unknown modifier {modifier}"),
                )
            })?;
            if raw[name_len..].iter().any(|x| *x != 0) {
                return Err(err(
                    name_at,
                    format!("sparse space {j}: non-zero name padding"),
                ));
            }
            let name = std::str::from_utf8(&raw[..name_len])
                .map_err(|_| err(name_at, format!("sparse space {j}: name is not UTF-8")))?
                .to_string();
            if sparse.last().is_some_and(|p| p.name >= name) {
                return Err(err(
                    name_at,
                    format!("sparse space {j}: names not sorted or repeated"),
                ));
            }
            sparse.push(SparseSpace { name, modifier });
        }
        let mut table = Vec::with_capacity(section_count);
        let mut entry_at = Vec::with_capacity(section_count);
        for i in 0..section_count {
            let at = r.pos();
            let e = SectionEntry {
                offset: r.u64("section offset")?,
                len: r.u64("section length")?,
                crc: r.u32("section crc")?,
            };
            let kind = r.u8("section kind")?;
            if r.u8("reserved")? != 0 {
                return Err(err(at + 21, "non-zero reserved byte"));
            }
            let space = r.u16("section space")?;
            let (want_kind, want_space) = kind_of(i, space_count, index_count, sparse_count);
            if (kind, space) != (want_kind, want_space) {
                return Err(err(
                    at + 20,
                    format!(
                        "section {i} is kind {kind} of space {space}, expected kind {want_kind} of space {want_space}"
                    ),
                ));
            }
            table.push(e);
            entry_at.push(at);
        }
        let table_end = r.pos();
        if table_end.next_multiple_of(ALIGN) != prefix_len {
            return Err(err(
                64,
                format!("prefix length {prefix_len} does not end the table ({table_end})"),
            ));
        }
        Ok(Layout {
            header: h,
            spaces,
            indexes,
            sparse,
            table,
            entry_at,
            prefix_len,
            table_end,
        })
    }

    /// Checks the decoded values: dimensions, graph widths and entry points, names.
    fn check_values(&self) -> Result<(), DecodeError> {
        for (i, s) in self.spaces.iter().enumerate() {
            if s.dim == 0 || s.dim > crate::types::MAX_DIM {
                return Err(err(
                    HEADER_LEN,
                    format!("space {i}: dimension {} out of range", s.dim),
                ));
            }
            if s.name.len() > MAX_NAME {
                return Err(err(HEADER_LEN, format!("space {i}: name too long")));
            }
            if let Some(g) = s.graph {
                if g.l0_width > 4096 || g.up_width > 4096 {
                    return Err(err(
                        HEADER_LEN,
                        format!("space {i}: graph list width out of range"),
                    ));
                }
                if self.header.rows > 0 && (g.entry >= self.header.rows || g.max_level > 255) {
                    return Err(err(
                        HEADER_LEN,
                        format!("space {i}: graph entry point out of range"),
                    ));
                }
            }
        }
        Ok(())
    }

    /// Encodes header, spaces and table (version 2) into `prefix_len` bytes.
    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut w = Writer::with_capacity(self.prefix_len);
        let h = &self.header;
        w.bytes(MAGIC);
        w.u32(VERSION);
        w.u32(h.flags);
        w.u64(h.segment_id);
        w.u64(h.collection_id);
        w.u32(h.rows);
        w.u32(h.tombstones);
        w.u64(h.min_lsn);
        w.u64(h.max_lsn);
        w.u32(self.spaces.len() as u32);
        w.u32(self.table.len() as u32);
        w.u32(self.prefix_len as u32);
        w.u32(self.indexes.len() as u32);
        w.u32(self.sparse.len() as u32);
        w.pad_to(124);
        w.u32(0); // CRC, filled below
        for s in &self.spaces {
            let g = s.graph.unwrap_or_default();
            w.u8(KIND_DENSE);
            w.u8(s.distance.tag());
            w.u8(u8::from(s.graph.is_some()));
            w.u8(s.name.len() as u8);
            w.u32(s.dim);
            w.u32(g.entry);
            w.u32(g.max_level);
            w.u32(g.l0_width);
            w.u32(g.up_width);
            w.u32(g.upper_lists);
            w.u32(0);
            w.bytes(s.name.as_bytes());
            w.pad_to(8);
        }
        for x in &self.indexes {
            w.u8(x.ty.tag());
            w.u8(x.flags);
            w.u16(x.key.len() as u16);
            w.u32(x.points);
            w.bytes(x.key.as_bytes());
            w.pad_to(8);
        }
        for x in &self.sparse {
            w.u8(KIND_SPARSE);
            w.u8(x.modifier.tag());
            w.u8(0);
            w.u8(x.name.len() as u8);
            w.u32(0);
            w.bytes(x.name.as_bytes());
            w.pad_to(8);
        }
        for (i, e) in self.table.iter().enumerate() {
            w.u64(e.offset);
            w.u64(e.len);
            w.u32(e.crc);
            let (kind, space) =
                kind_of(i, self.spaces.len(), self.indexes.len(), self.sparse.len());
            w.u8(kind);
            w.u8(0);
            w.u16(space);
        }
        debug_assert_eq!(w.len(), self.table_end);
        let c = crc32c::crc32c_append(crc(&w.buf[..124]), &w.buf[HEADER_LEN..]);
        w.buf[124..128].copy_from_slice(&c.to_le_bytes());
        w.pad_to(ALIGN);
        w.buf
    }
}

/// What length a section must have.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Expected {
    /// Exactly this.
    Is(u64),
    /// Zero or exactly this (a presence bitmap: empty means every row).
    ZeroOr(u64),
    /// Any length (payload data).
    Any,
}

impl Expected {
    pub(crate) fn admits(self, len: u64) -> bool {
        match self {
            Expected::Is(n) => len == n,
            Expected::ZeroOr(n) => len == 0 || len == n,
            Expected::Any => true,
        }
    }
}

/// Recomputes the header CRC of `b` in place (fuzzing: lets mutated headers and sections past
/// the checksum so that the structure checks and accessors behind it get exercised).
pub(crate) fn restamp_prefix_crc(b: &mut [u8]) {
    if b.len() < HEADER_LEN {
        return;
    }
    let table_end = match u32::from_le_bytes(b[8..12].try_into().expect("4 bytes")) {
        1 => HEADER_LEN + V1_SECTIONS * SECTION_ENTRY_LEN,
        _ => match Layout::decode_v2_table_end(b) {
            Some(e) => e,
            None => return,
        },
    };
    if b.len() >= table_end {
        let c = crc32c::crc32c_append(crc(&b[..124]), &b[HEADER_LEN..table_end]);
        b[124..128].copy_from_slice(&c.to_le_bytes());
    }
}

impl Layout {
    /// Where a version-2 table ends, from the counts and names alone (fuzzing support).
    fn decode_v2_table_end(b: &[u8]) -> Option<usize> {
        let spaces = u32::from_le_bytes(b.get(56..60)?.try_into().ok()?) as usize;
        let sections = u32::from_le_bytes(b.get(60..64)?.try_into().ok()?) as usize;
        let version = u32::from_le_bytes(b.get(8..12)?.try_into().ok()?);
        let indexes = match version {
            2 => 0,
            _ => u32::from_le_bytes(b.get(68..72)?.try_into().ok()?) as usize,
        };
        let sparse = match version {
            2 | 3 => 0,
            _ => u32::from_le_bytes(b.get(72..76)?.try_into().ok()?) as usize,
        };
        if spaces > MAX_SPACES
            || sections > 256
            || indexes > MAX_SEGMENT_INDEXES
            || sparse > MAX_SPARSE
        {
            return None;
        }
        let mut pos = HEADER_LEN;
        for _ in 0..spaces {
            let name_len = *b.get(pos + 3)? as usize;
            pos += SPACE_FIXED + name_len.next_multiple_of(8);
        }
        for _ in 0..indexes {
            let key_len = u16::from_le_bytes(b.get(pos + 2..pos + 4)?.try_into().ok()?) as usize;
            pos += INDEX_FIXED + key_len.next_multiple_of(8);
        }
        for _ in 0..sparse {
            let name_len = *b.get(pos + 3)? as usize;
            pos += SPARSE_FIXED + name_len.next_multiple_of(8);
        }
        Some(pos + sections * SECTION_ENTRY_LEN)
    }
}
