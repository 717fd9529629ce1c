//! A validated, zero-copy view of a segment file.

use std::ops::Range;

use strata_tiering::Blob;

use super::format::*;
use super::meta::Ids;
use crate::codec::{DecodeError, cast_slice, crc};
use crate::types::Distance;

/// How much to check when opening.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verify {
    /// Header, layout, every section checksum, and structural invariants (ids sorted, payload
    /// offsets monotonic, neighbour ids in range). O(size). The default at start-up.
    Full,
    /// Header and layout only: O(1). For files whose bytes were verified when they arrived
    /// (e.g. a download checked against its recorded checksum).
    HeaderOnly,
}

/// What an open checks (`Structure`: everything but the section checksums, which the caller
/// checks with [`SegmentData::verify_checksums`] through batched reads, so that a mapped
/// file's bytes are not faulted into the process to be summed once).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Check {
    Full,
    Structure,
    HeaderOnly,
    /// Checksums and structure of the sections present (a partly fetched cold segment).
    Partial,
}

/// Bytes per read when checksums are verified through batched reads.
pub(crate) const VERIFY_CHUNK: usize = 256 << 10;
/// Reads per batch then (32 × 256 KiB = 8 MiB of buffers; the default io depth is 32).
pub(crate) const VERIFY_BATCH: usize = 32;

/// Ranges of a file → their bytes (a batched read).
pub(crate) type ReadRanges<'a, E> = dyn FnMut(&[Range<u64>]) -> Result<Vec<Vec<u8>>, E> + 'a;

/// Why [`SegmentData::verify_checksums`] failed.
#[derive(Debug)]
pub(crate) enum VerifyError<E> {
    /// The bytes are wrong.
    Corrupt(DecodeError),
    /// Reading them failed.
    Read(E),
}

/// The bytes of one segment and where each section lies.
pub(crate) struct SegmentData {
    blob: Blob,
    pub(crate) header: Header,
    pub(crate) distance: Distance,
    sec: [Range<usize>; SECTION_COUNT],
    /// The sections whose bytes are in `blob` (all, except for a partly fetched cold
    /// segment, whose other ranges are holes that no accessor reads).
    present: SectionSet,
}

impl std::fmt::Debug for SegmentData {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SegmentData")
            .field("header", &self.header)
            .field("blob", &self.blob)
            .field("present", &format_args!("{:#x}", self.present))
            .finish()
    }
}

/// List `index` of fixed-width (`w` u32: count, then ids) lists in `all`; `None` when out of
/// range or malformed. Checked arithmetic: a header-only open may see hostile values.
fn list_at(all: &[u32], index: usize, w: usize) -> Option<&[u32]> {
    let l = all.get(index.checked_mul(w)?..index.checked_add(1)?.checked_mul(w)?)?;
    let n = *l.first()? as usize;
    l.get(1..1 + n)
}

fn err(offset: u64, what: impl Into<String>) -> DecodeError {
    DecodeError {
        offset: offset as usize,
        what: what.into(),
    }
}

impl SegmentData {
    /// Validates `blob` as a segment file.
    pub(crate) fn open(blob: Blob, verify: Verify) -> Result<SegmentData, DecodeError> {
        let check = match verify {
            Verify::Full => Check::Full,
            Verify::HeaderOnly => Check::HeaderOnly,
        };
        Self::open_checked(blob, check, ALL_SECTIONS)
    }

    /// Everything [`Verify::Full`] checks but the section checksums: the caller must check
    /// them with [`SegmentData::verify_checksums`] before trusting the bytes.
    pub(crate) fn open_structure(blob: Blob) -> Result<SegmentData, DecodeError> {
        Self::open_checked(blob, Check::Structure, ALL_SECTIONS)
    }

    /// A segment of which only the sections in `present` were fetched; the rest of `blob` is
    /// holes. Checks the layout as [`Verify::Full`] does, the checksum of every present
    /// section against the table, and the structure of what is present. The id, version and
    /// tombstone sections must be present (a cold segment's meta file holds them). Reads of
    /// absent sections are refused (see [`SegmentData::has`]), never answered from holes.
    pub(crate) fn open_partial(
        blob: Blob,
        present: SectionSet,
    ) -> Result<SegmentData, DecodeError> {
        if present & ID_SECTIONS != ID_SECTIONS {
            return Err(err(
                0,
                "a partial segment needs its id, version and tombstone sections",
            ));
        }
        Self::open_checked(blob, Check::Partial, present & ALL_SECTIONS)
    }

    fn open_checked(
        blob: Blob,
        check: Check,
        present: SectionSet,
    ) -> Result<SegmentData, DecodeError> {
        let b = blob.as_bytes();
        if !(b.as_ptr() as usize).is_multiple_of(16) {
            return Err(err(0, "segment bytes are not 16-byte aligned"));
        }
        let (h, table) = decode_prefix(b)?;
        let (distance, expected) = check_header(&h)?;
        let has_graph = h.flags & FLAG_GRAPH != 0;
        let rows = h.rows as u64;
        let mut sec: [Range<usize>; SECTION_COUNT] = Default::default();
        for (i, s) in table.iter().enumerate() {
            let entry_at = (HEADER_LEN + i * SECTION_ENTRY_LEN) as u64;
            let name = SECTION_NAMES[i];
            if let Some(want) = expected[i]
                && s.len != want
            {
                return Err(err(
                    entry_at,
                    format!("section '{name}' is {} bytes, expected {want}", s.len),
                ));
            }
            let end = s.offset.checked_add(s.len);
            if s.offset % ALIGN as u64 != 0
                || s.offset < DATA_START as u64
                || end.is_none_or(|e| e > b.len() as u64)
            {
                return Err(err(
                    entry_at,
                    format!(
                        "section '{name}' at {}+{} lies outside the file ({} bytes) or is misaligned",
                        s.offset,
                        s.len,
                        b.len()
                    ),
                ));
            }
            sec[i] = s.offset as usize..(s.offset + s.len) as usize;
        }
        if has_graph && rows > 0 && (h.graph_entry as u64 >= rows || h.graph_max_level > 255) {
            return Err(err(44, "graph entry point out of range"));
        }
        let seg = SegmentData {
            blob,
            header: h,
            distance,
            sec,
            present,
        };
        match check {
            Check::Full | Check::Partial => {
                seg.verify_structure()?;
                let b = seg.blob.as_bytes();
                for (i, s) in table.iter().enumerate() {
                    if !seg.has(SECTIONS[i]) {
                        continue;
                    }
                    let r = &seg.sec[i];
                    if crc(&b[r.clone()]) != s.crc {
                        return Err(err(
                            r.start as u64,
                            format!("section '{}' checksum mismatch", SECTION_NAMES[i]),
                        ));
                    }
                }
            }
            Check::Structure => seg.verify_structure()?,
            Check::HeaderOnly => {}
        }
        Ok(seg)
    }

    /// Checks every section's checksum, reading the sections through `read` (ranges of the
    /// file → their bytes) in chunks of [`VERIFY_CHUNK`], [`VERIFY_BATCH`] at a time. An error
    /// of `read` is returned as is; a mismatch names the section.
    pub(crate) fn verify_checksums<E>(
        &self,
        read: &mut ReadRanges<'_, E>,
    ) -> Result<(), VerifyError<E>> {
        let table = decode_prefix(self.blob.as_bytes())
            .map_err(VerifyError::Corrupt)?
            .1;
        for (i, s) in table.iter().enumerate() {
            let r = &self.sec[i];
            let chunks: Vec<Range<u64>> = (r.start..r.end)
                .step_by(VERIFY_CHUNK)
                .map(|at| at as u64..(at + VERIFY_CHUNK).min(r.end) as u64)
                .collect();
            let mut sum = 0u32;
            for batch in chunks.chunks(VERIFY_BATCH) {
                for bytes in read(batch).map_err(VerifyError::Read)? {
                    sum = crc32c::crc32c_append(sum, &bytes);
                }
            }
            if sum != s.crc {
                return Err(VerifyError::Corrupt(err(
                    r.start as u64,
                    format!("section '{}' checksum mismatch", SECTION_NAMES[i]),
                )));
            }
        }
        Ok(())
    }

    fn verify_structure(&self) -> Result<(), DecodeError> {
        let b = self.blob.as_bytes();
        // Sections must not overlap, and every byte outside them (the padding) must be zero,
        // so that no byte of the file can change unnoticed (a partial segment has holes there
        // instead: its padding is not checked).
        let mut covered: Vec<Range<usize>> =
            self.sec.iter().filter(|r| !r.is_empty()).cloned().collect();
        covered.sort_by_key(|r| r.start);
        if let Some(i) = b
            .get(TABLE_END..DATA_START)
            .and_then(|pad| pad.iter().position(|x| *x != 0))
        {
            return Err(err((TABLE_END + i) as u64, "non-zero padding byte"));
        }
        let mut pos = TABLE_END;
        for r in covered.iter().chain(std::iter::once(&(b.len()..b.len()))) {
            if r.start < pos {
                return Err(err(r.start as u64, "sections overlap"));
            }
            if self.present == ALL_SECTIONS
                && let Some(i) = b[pos..r.start].iter().position(|x| *x != 0)
            {
                return Err(err((pos + i) as u64, "non-zero padding byte"));
            }
            pos = r.end;
        }
        let n = self.rows();
        let at = |s: Sec, i: usize, w: usize| (self.sec[s as usize].start + i * w) as u64;
        self.ids().check().map_err(|(s, i, what)| {
            let width = match s {
                Sec::IdTags => 1,
                Sec::IdValues => 16,
                _ => TOMBSTONE_LEN,
            };
            err(at(s, i, width), what)
        })?;
        let offs = self.u64s(Sec::PayloadOffsets);
        let data_len = self.sec[Sec::PayloadData as usize].len() as u64;
        if self.has(Sec::PayloadOffsets)
            && (offs.first() != Some(&0)
                || offs.windows(2).any(|w| w[0] > w[1])
                || offs.last() != Some(&data_len))
        {
            return Err(err(
                at(Sec::PayloadOffsets, 0, 8),
                "payload offsets not monotonic",
            ));
        }
        if self.has_graph() && self.present & GRAPH_SECTIONS == GRAPH_SECTIONS {
            let h = &self.header;
            let levels = self.graph_levels();
            let offsets = self.u32s(Sec::GraphUpperOffsets);
            for row in 0..n as usize {
                let lvl = levels[row] as u32;
                if lvl > h.graph_max_level {
                    return Err(err(at(Sec::GraphLevels, row, 1), "node level above max"));
                }
                if lvl > 0 && (offsets[row] as u64 + lvl as u64 > h.graph_upper_lists as u64) {
                    return Err(err(
                        at(Sec::GraphUpperOffsets, row, 4),
                        "upper list offset out of range",
                    ));
                }
                for level in 0..=lvl {
                    let ok = self
                        .raw_neighbours(row as u32, level)
                        .is_some_and(|l| l.iter().all(|x| (*x as u64) < n as u64));
                    if !ok {
                        return Err(err(
                            at(Sec::GraphL0, row, 4 * (1 + h.graph_l0_width as usize)),
                            format!("bad neighbour list of node {row} at level {level}"),
                        ));
                    }
                }
            }
        }
        Ok(())
    }

    /// A section's bytes; empty when it is not present (entry points check [`Self::has`]
    /// first, so an absent section is refused there, never read as holes).
    fn bytes(&self, s: Sec) -> &[u8] {
        match self.has(s) {
            true => &self.blob.as_bytes()[self.sec[s as usize].clone()],
            false => &[],
        }
    }

    /// True when section `s`'s bytes are here (always, unless this is a partly fetched cold
    /// segment: see [`Self::open_partial`]).
    pub(crate) fn has(&self, s: Sec) -> bool {
        self.present & s.bit() != 0
    }

    /// True when every section of `set` is here.
    pub(crate) fn has_all(&self, set: SectionSet) -> bool {
        self.present & set == set
    }

    fn u64s(&self, s: Sec) -> &[u64] {
        cast_slice(self.bytes(s)).expect("section aligned and sized at open")
    }
    fn u32s(&self, s: Sec) -> &[u32] {
        cast_slice(self.bytes(s)).expect("section aligned and sized at open")
    }

    pub(crate) fn rows(&self) -> u32 {
        self.header.rows
    }
    pub(crate) fn dim(&self) -> usize {
        self.header.dim as usize
    }
    pub(crate) fn segment_id(&self) -> u64 {
        self.header.segment_id
    }
    pub(crate) fn file_len(&self) -> u64 {
        self.blob.len() as u64
    }
    /// See [`Blob::release_pages`].
    pub(crate) fn release_pages(&self) {
        self.blob.release_pages();
    }
    /// The whole file (to write an in-RAM segment out).
    pub(crate) fn bytes_all(&self) -> &[u8] {
        self.blob.as_bytes()
    }
    pub(crate) fn has_graph(&self) -> bool {
        self.header.flags & FLAG_GRAPH != 0 && self.header.rows > 0
    }

    /// All vectors, row-major.
    pub(crate) fn vectors(&self) -> &[f32] {
        cast_slice(self.bytes(Sec::Vectors)).expect("section aligned and sized at open")
    }
    /// Row `row`'s vector; empty when the vectors are not present (see [`Self::has`]).
    pub(crate) fn vector(&self, row: u32) -> &[f32] {
        let d = self.dim();
        self.vectors()
            .get(row as usize * d..(row as usize + 1) * d)
            .unwrap_or(&[])
    }
    /// Ids, versions and tombstones (the sections a meta file copies).
    pub(crate) fn ids(&self) -> Ids<'_> {
        Ids::new(
            self.bytes(Sec::IdTags),
            self.bytes(Sec::IdValues),
            self.bytes(Sec::Versions),
            self.bytes(Sec::Tombstones),
        )
        .expect("sections sized and aligned at open")
    }
    /// Row `row`'s stored payload bytes; `None` when the payloads are not present.
    pub(crate) fn payload(&self, row: u32) -> Option<&[u8]> {
        if !self.has_all(PAYLOAD_SECTIONS) {
            return None;
        }
        let (a, b) = self.payload_span(row)?;
        self.bytes(Sec::PayloadData).get(a as usize..b as usize)
    }

    /// Where row `row`'s payload lies within the payload data section; `None` when the payload
    /// offsets are not present.
    pub(crate) fn payload_span(&self, row: u32) -> Option<(u64, u64)> {
        let offs = self.u64s(Sec::PayloadOffsets);
        Some((*offs.get(row as usize)?, *offs.get(row as usize + 1)?))
    }

    /// This segment's meta file (see [`super::meta`]), with a summary of its vectors when
    /// `summary` (k-means: milliseconds per 10k rows, so not under the write gate).
    pub(crate) fn meta_bytes(&self, summary: bool) -> Vec<u8> {
        let b = self.blob.as_bytes();
        let summary = summary.then(|| {
            super::summary::Summary::build(self.vectors(), self.dim(), self.segment_id())
                .encode(self.dim())
        });
        super::meta::encode(
            &b[..DATA_START],
            self.file_len(),
            super::meta::META_SECTIONS.map(|s| self.bytes(s)),
            summary.as_deref(),
        )
    }

    /// Touches everything a reader can reach (fuzzing: must never panic on any accepted file).
    pub(crate) fn exercise(&self) {
        let rows = self.rows().min(4096);
        let ids = self.ids();
        for r in 0..rows {
            let _ = (
                ids.id(r),
                ids.version(r),
                self.vector(r).len(),
                self.payload(r).map(<[u8]>::len),
            );
            for level in 0..=self.header.graph_max_level.min(16) {
                let _ = self.raw_neighbours(r, level);
            }
        }
        for t in 0..ids.tombstone_count().min(4096) {
            let _ = ids.tombstone(t);
        }
        if rows > 0 {
            let _ = ids.find(ids.id(0));
            let _ = ids.lower_bound(ids.id(rows - 1));
            if self.has_graph() {
                let q = vec![0.5f32; self.dim()];
                let _ = super::graph::search(self, self.distance, &q, 3, 8, &mut |_| true);
            }
        }
    }

    pub(crate) fn graph_levels(&self) -> &[u8] {
        self.bytes(Sec::GraphLevels)
    }

    /// Neighbour list of `node` at `level`, or `None` if the node has no such level or the
    /// stored list is malformed.
    pub(crate) fn raw_neighbours(&self, node: u32, level: u32) -> Option<&[u32]> {
        let h = &self.header;
        if level == 0 {
            return list_at(
                self.u32s(Sec::GraphL0),
                node as usize,
                1 + h.graph_l0_width as usize,
            );
        }
        if level > *self.graph_levels().get(node as usize)? as u32 {
            return None;
        }
        let first = *self.u32s(Sec::GraphUpperOffsets).get(node as usize)? as usize;
        list_at(
            self.u32s(Sec::GraphUpper),
            first + level as usize - 1,
            1 + h.graph_up_width as usize,
        )
    }
}
