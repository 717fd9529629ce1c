//! The segment meta file: what stays local when a segment's bytes live only in the cold store.
//!
//! ```text
//! 0    meta header (64 bytes)   magic "STRATMET", version, segment file length, summary
//!                               (offset, length, CRC32C), header CRC32C
//! 64   the segment's own prefix: header, space records, section table and padding (its
//!      `prefix_len` bytes; 448 for a version-1 segment), copied, with its own CRC
//! ...  id tags · id values · versions · tombstones, copied from the segment, each at the next
//!      multiple of 64, each checked against the CRC the copied section table records
//! ...  summary (flag bit 0; at the next multiple of 64; see `summary.rs`)
//! ```
//! Everything a segment needs without its vectors, payloads and graph: start-up (identity,
//! counts, LSNs), lookups and shadowing (ids, versions, tombstones), counts and scrolls without
//! a filter. The meta file is derived from the segment deterministically (same segment, same
//! bytes), so a retried upload is recognised as the same object. [`SegmentMeta`] has no
//! accessor for any other section: reading a cold segment's vectors is a type error, never a
//! read of holes.

use std::ops::Range;

use strata_tiering::Blob;

use super::format::*;
use super::summary::Summary;
use crate::codec::{DecodeError, Reader, Writer, cast_slice, crc};
use crate::types::{Lsn, PointId};

pub(crate) const META_MAGIC: &[u8; 8] = b"STRATMET";
pub(crate) const META_VERSION: u32 = 1;
pub(crate) const META_HEADER_LEN: usize = 64;
/// The segment sections a meta file copies, in file order.
pub(crate) const META_SECTIONS: [Sec; 4] =
    [Sec::IdTags, Sec::IdValues, Sec::Versions, Sec::Tombstones];

/// The id, version and tombstone sections of a segment (read from the segment file itself or
/// from its meta file): every lookup by id goes through here.
#[derive(Clone, Copy)]
pub(crate) struct Ids<'a> {
    tags: &'a [u8],
    values: &'a [u8],
    versions: &'a [u64],
    tombstones: &'a [u8],
}

impl<'a> Ids<'a> {
    /// Views the four sections; `None` when their sizes disagree (a layout check failed).
    pub(crate) fn new(
        tags: &'a [u8],
        values: &'a [u8],
        versions: &'a [u8],
        tombstones: &'a [u8],
    ) -> Option<Ids<'a>> {
        let versions: &[u64] = cast_slice(versions)?;
        (values.len() == tags.len() * 16
            && versions.len() == tags.len()
            && tombstones.len().is_multiple_of(TOMBSTONE_LEN))
        .then_some(Ids {
            tags,
            values,
            versions,
            tombstones,
        })
    }

    pub(crate) fn rows(&self) -> u32 {
        self.tags.len() as u32
    }

    fn id_value(&self, row: u32) -> u128 {
        let i = row as usize * 16;
        u128::from_le_bytes(self.values[i..i + 16].try_into().expect("16 bytes"))
    }

    pub(crate) fn id(&self, row: u32) -> PointId {
        let value = self.id_value(row);
        // Checked by `check` (a full open); an unchecked bad tag reads as a UUID.
        PointId::from_parts(self.tags[row as usize], value).unwrap_or(PointId::Uuid(value))
    }

    pub(crate) fn version(&self, row: u32) -> Lsn {
        self.versions[row as usize]
    }

    /// The largest LSN in the segment: of a row's version or of a tombstone (0 if empty).
    pub(crate) fn max_version(&self) -> Lsn {
        let rows = self.versions.iter().copied().max().unwrap_or(0);
        (0..self.tombstone_count())
            .filter_map(|t| self.tombstone(t))
            .map(|(_, lsn)| lsn)
            .fold(rows, Lsn::max)
    }

    /// The row holding `id`, by binary search.
    pub(crate) fn find(&self, id: PointId) -> Option<u32> {
        let lo = self.lower_bound(id);
        (lo < self.rows() && self.id(lo) == id).then_some(lo)
    }

    /// First row whose id is `>= id`.
    pub(crate) fn lower_bound(&self, id: PointId) -> u32 {
        let (mut lo, mut hi) = (0u32, self.rows());
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if self.id(mid) < id {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        lo
    }

    pub(crate) fn tombstone_count(&self) -> usize {
        self.tombstones.len() / TOMBSTONE_LEN
    }

    /// Tombstone `i`: (id, LSN of the delete).
    pub(crate) fn tombstone(&self, i: usize) -> Option<(PointId, Lsn)> {
        let e = self
            .tombstones
            .get(i * TOMBSTONE_LEN..(i + 1) * TOMBSTONE_LEN)?;
        let value = u128::from_le_bytes(e[8..24].try_into().expect("16 bytes"));
        let lsn = u64::from_le_bytes(e[24..32].try_into().expect("8 bytes"));
        Some((PointId::from_parts(e[0], value)?, lsn))
    }

    /// The delete LSN of `id` if there is a tombstone for it.
    pub(crate) fn find_tombstone(&self, id: PointId) -> Option<Lsn> {
        let (mut lo, mut hi) = (0usize, self.tombstone_count());
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            let (tid, lsn) = self.tombstone(mid)?;
            match tid.cmp(&id) {
                std::cmp::Ordering::Less => lo = mid + 1,
                std::cmp::Ordering::Greater => hi = mid,
                std::cmp::Ordering::Equal => return Some(lsn),
            }
        }
        None
    }

    /// Structural check: every id valid and strictly ascending, every tombstone valid and
    /// strictly ascending. The error names the section and the element index.
    pub(crate) fn check(&self) -> Result<(), (Sec, usize, &'static str)> {
        for row in 0..self.rows() {
            let tag = self.tags[row as usize];
            if tag > 1 || (tag == 0 && self.id_value(row) > u64::MAX as u128) {
                return Err((Sec::IdTags, row as usize, "invalid point id"));
            }
            if row > 0 && self.id(row - 1) >= self.id(row) {
                return Err((Sec::IdValues, row as usize, "ids not sorted"));
            }
        }
        for t in 0..self.tombstone_count() {
            let e = self.tombstone(t);
            if e.is_none() || (t > 0 && self.tombstone(t - 1).map(|x| x.0) >= e.map(|x| x.0)) {
                return Err((Sec::Tombstones, t, "bad or unsorted tombstone"));
            }
        }
        Ok(())
    }
}

/// Byte ranges of the meta sections (and the summary's start) given the copied layout: each
/// section at the next multiple of [`ALIGN`] after the previous one.
fn meta_layout(layout: &Layout) -> Option<([Range<usize>; 4], usize)> {
    let mut pos = META_HEADER_LEN + layout.prefix_len;
    let mut out: [Range<usize>; 4] = Default::default();
    for (slot, s) in out.iter_mut().zip(META_SECTIONS) {
        let len = usize::try_from(layout.table[common(s)].len).ok()?;
        let end = pos.checked_add(len)?;
        *slot = pos..end;
        pos = end.checked_next_multiple_of(ALIGN)?;
    }
    Some((out, pos))
}

/// Flag: the meta file holds a summary.
const FLAG_SUMMARY: u32 = 1;

/// Encodes the meta file of a segment from its prefix (header, spaces, table, padding), its
/// length, the four [`META_SECTIONS`] in order and an encoded summary, if any.
pub(crate) fn encode(
    prefix: &[u8],
    file_len: u64,
    sections: [&[u8]; 4],
    summary: Option<&[u8]>,
) -> Vec<u8> {
    let mut body = Writer::with_capacity(
        prefix.len() + sections.iter().map(|s| s.len() + ALIGN).sum::<usize>(),
    );
    body.bytes(prefix);
    for s in sections {
        body.bytes(s);
        body.pad_to(ALIGN);
    }
    let summary_at = META_HEADER_LEN + body.len();
    let mut w = Writer::with_capacity(summary_at + summary.map_or(0, <[u8]>::len));
    w.bytes(META_MAGIC);
    w.u32(META_VERSION);
    w.u32(if summary.is_some() { FLAG_SUMMARY } else { 0 });
    w.u64(file_len);
    w.u64(if summary.is_some() {
        summary_at as u64
    } else {
        0
    });
    w.u64(summary.map_or(0, |s| s.len() as u64));
    w.u32(summary.map_or(0, crc));
    w.pad_to(60);
    let c = crc(&w.buf[..60]);
    w.u32(c);
    w.bytes(&body.buf);
    if let Some(s) = summary {
        w.bytes(s);
    }
    w.buf
}

fn err(offset: usize, what: impl Into<String>) -> DecodeError {
    DecodeError {
        offset,
        what: what.into(),
    }
}

/// A validated meta file: the always-resident part of a segment.
pub(crate) struct SegmentMeta {
    blob: Blob,
    /// The segment's header, spaces and section table (decoded and checked at open).
    pub(crate) layout: Layout,
    file_len: u64,
    sec: [Range<usize>; 4],
    /// Empty when the meta file has none (never skipped).
    pub(crate) summary: Summary,
}

impl std::fmt::Debug for SegmentMeta {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SegmentMeta")
            .field("header", &self.layout.header)
            .field("file_len", &self.file_len)
            .finish_non_exhaustive()
    }
}

impl SegmentMeta {
    /// Validates `blob` as a meta file, completely (it is small): both headers, every copied
    /// section against the segment's own checksums, zero padding, the id structure.
    pub(crate) fn open(blob: Blob) -> Result<SegmentMeta, DecodeError> {
        let b = blob.as_bytes();
        if !(b.as_ptr() as usize).is_multiple_of(16) {
            return Err(err(0, "meta bytes are not 16-byte aligned"));
        }
        if b.len() < META_HEADER_LEN + HEADER_LEN {
            return Err(err(
                b.len(),
                format!("meta file of {} bytes is shorter than its headers", b.len()),
            ));
        }
        let mut r = Reader::new(b);
        r.magic_and_version(META_MAGIC, META_VERSION, "segment meta")?;
        let flags = r.u32("flags")?;
        let file_len = r.u64("segment file length")?;
        let summary_offset = r.u64("summary offset")?;
        let summary_len = r.u64("summary length")?;
        let summary_crc = r.u32("summary crc")?;
        let stored = u32::from_le_bytes(b[60..64].try_into().expect("4 bytes"));
        if crc(&b[..60]) != stored {
            return Err(err(60, "meta header checksum mismatch"));
        }
        if flags & !FLAG_SUMMARY != 0
            || (flags == 0 && (summary_offset != 0 || summary_len != 0 || summary_crc != 0))
        {
            return Err(err(
                12,
                format!("unknown meta flags {flags:#x} or a stray summary"),
            ));
        }
        if b[44..60].iter().any(|x| *x != 0) {
            return Err(err(44, "non-zero reserved meta header bytes"));
        }
        let base = META_HEADER_LEN;
        let layout = Layout::decode(&b[base..]).map_err(|e| err(base + e.offset, e.what))?;
        let prefix_end = base + layout.prefix_len;
        if b.len() < prefix_end {
            return Err(err(
                b.len(),
                "meta file is shorter than the segment's prefix",
            ));
        }
        if b[base + layout.table_end..prefix_end]
            .iter()
            .any(|x| *x != 0)
        {
            return Err(err(base + layout.table_end, "non-zero padding byte"));
        }
        for (i, s) in layout.table.iter().enumerate() {
            if !layout.expected_len(i).admits(s.len) {
                return Err(err(
                    base + layout.entry_at(i),
                    format!(
                        "section '{}' is {} bytes, expected {:?}",
                        layout.name(i),
                        s.len,
                        layout.expected_len(i)
                    ),
                ));
            }
            if s.offset.checked_add(s.len).is_none_or(|e| e > file_len) {
                return Err(err(
                    base + layout.entry_at(i),
                    format!(
                        "section '{}' lies outside the segment file ({file_len} bytes)",
                        layout.name(i)
                    ),
                ));
            }
        }
        // The writer ends the file with its last section: a longer length is not a segment
        // this engine wrote (and a streamed read sizes its buffer by it).
        let last = layout
            .table
            .iter()
            .map(|s| s.offset.saturating_add(s.len))
            .max()
            .unwrap_or(0)
            .max(layout.prefix_len as u64);
        if file_len > last.next_multiple_of(ALIGN as u64) {
            return Err(err(
                16,
                format!(
                    "segment file length {file_len} runs past its last section (ends at {last})"
                ),
            ));
        }
        let (sec, sections_end) =
            meta_layout(&layout).ok_or_else(|| err(base, "meta sections overflow"))?;
        let end = match flags & FLAG_SUMMARY != 0 {
            true if summary_offset == sections_end as u64 => {
                sections_end.saturating_add(usize::try_from(summary_len).unwrap_or(usize::MAX))
            }
            true => return Err(err(24, "summary offset does not follow the sections")),
            false => sections_end,
        };
        if b.len() != end {
            return Err(err(
                b.len().min(end),
                format!("meta file is {} bytes, its layout needs {end}", b.len()),
            ));
        }
        if b.len() < sections_end {
            return Err(err(b.len(), "meta file is shorter than its sections"));
        }
        let mut pos = prefix_end;
        for (range, s) in sec.iter().zip(META_SECTIONS) {
            if let Some(i) = b[pos..range.start].iter().position(|x| *x != 0) {
                return Err(err(pos + i, "non-zero padding byte"));
            }
            if crc(&b[range.clone()]) != layout.table[common(s)].crc {
                return Err(err(
                    range.start,
                    format!("section '{}' checksum mismatch", layout.name(common(s))),
                ));
            }
            pos = range.end;
        }
        if let Some(i) = b[pos..sections_end].iter().position(|x| *x != 0) {
            return Err(err(pos + i, "non-zero padding byte"));
        }
        let summary = match flags & FLAG_SUMMARY != 0 {
            false => Summary::default(),
            true => {
                let bytes = &b[sections_end..end];
                if crc(bytes) != summary_crc {
                    return Err(err(sections_end, "summary checksum mismatch"));
                }
                let dim = layout.spaces.first().map_or(0, |s| s.dim as usize);
                Summary::decode(bytes, dim, layout.header.rows)
                    .map_err(|e| err(sections_end + e.offset, e.what))?
            }
        };
        let meta = SegmentMeta {
            blob,
            layout,
            file_len,
            sec,
            summary,
        };
        let ids = meta
            .try_ids()
            .ok_or_else(|| err(base, "meta sections misaligned"))?;
        ids.check().map_err(|(s, i, what)| {
            let slot = META_SECTIONS.iter().position(|m| *m == s).unwrap_or(0);
            let width = match s {
                Sec::IdTags => 1,
                Sec::IdValues => 16,
                _ => TOMBSTONE_LEN,
            };
            err(meta.sec[slot].start + i * width, what)
        })?;
        Ok(meta)
    }

    fn try_ids(&self) -> Option<Ids<'_>> {
        let b = self.blob.as_bytes();
        Ids::new(
            &b[self.sec[0].clone()],
            &b[self.sec[1].clone()],
            &b[self.sec[2].clone()],
            &b[self.sec[3].clone()],
        )
    }

    /// The segment file's prefix (header, spaces, section table, padding), as copied.
    pub(crate) fn prefix(&self) -> &[u8] {
        &self.blob.as_bytes()[META_HEADER_LEN..META_HEADER_LEN + self.layout.prefix_len]
    }

    /// Length of section `i` (canonical number) in the segment file.
    pub(crate) fn section_len(&self, i: usize) -> u64 {
        self.layout.table.get(i).map_or(0, |e| e.len)
    }

    /// The segment's section table (canonical order).
    pub(crate) fn table(&self) -> &[SectionEntry] {
        &self.layout.table
    }

    /// The bytes of a section this file copies (see [`META_SECTIONS`]); `None` for others.
    pub(crate) fn copied_section(&self, s: Sec) -> Option<&[u8]> {
        let slot = META_SECTIONS.iter().position(|m| *m == s)?;
        Some(&self.blob.as_bytes()[self.sec[slot].clone()])
    }

    /// Ids, versions and tombstones.
    pub(crate) fn ids(&self) -> Ids<'_> {
        self.try_ids().expect("checked at open")
    }

    pub(crate) fn rows(&self) -> u32 {
        self.layout.header.rows
    }
    pub(crate) fn segment_id(&self) -> u64 {
        self.layout.header.segment_id
    }
    /// Length of the segment file (not of this meta file).
    pub(crate) fn file_len(&self) -> u64 {
        self.file_len
    }
    /// True when the segment was indexed (every space with rows has a graph).
    pub(crate) fn indexed(&self) -> bool {
        self.layout.indexed()
    }
    /// True when `space` has a graph.
    pub(crate) fn has_graph(&self, space: usize) -> bool {
        self.layout.has_graph(space)
    }
    pub(crate) fn min_lsn(&self) -> Lsn {
        self.layout.header.min_lsn
    }
    pub(crate) fn max_lsn(&self) -> Lsn {
        self.layout.header.max_lsn
    }
    pub(crate) fn id(&self, row: u32) -> PointId {
        self.ids().id(row)
    }
    pub(crate) fn version(&self, row: u32) -> Lsn {
        self.ids().version(row)
    }
    pub(crate) fn find(&self, id: PointId) -> Option<u32> {
        self.ids().find(id)
    }
    pub(crate) fn lower_bound(&self, id: PointId) -> u32 {
        self.ids().lower_bound(id)
    }
    pub(crate) fn tombstone_count(&self) -> usize {
        self.ids().tombstone_count()
    }
}
