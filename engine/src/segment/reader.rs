//! A validated, zero-copy view of a segment file.

use std::ops::Range;
use std::sync::{Arc, OnceLock};

use strata_tiering::Blob;

use super::format::*;
use super::meta::Ids;
use crate::codec::{DecodeError, cast_slice, crc};
use crate::filter::Bits;
use crate::quant::{CodeBuf, Codes, Quantizer};

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

/// A space's codes as loaded for walks.
struct LoadedCodes {
    quant: Quantizer,
    /// A copy of the codes (`None`: the codes section of a heap body, used in place).
    buf: Option<CodeBuf>,
    /// Euclid spaces: the rows' norm terms (`Quantizer::norms`), 4 bytes a row; else empty.
    norms: Vec<f32>,
}

/// The bytes of one segment and where each section lies.
pub(crate) struct SegmentData {
    blob: Blob,
    pub(crate) layout: Layout,
    pub(super) sec: Vec<Range<usize>>,
    /// The sections whose bytes are in `blob` (all, except for a partly fetched cold
    /// segment, whose other ranges are holes that no accessor reads).
    present: SectionSet,
    /// Per space: one-byte codes of its vectors for the graph walk, loaded or made on first
    /// use ([`SegmentData::codes`]).
    /// `None` for the buffer: the codes section of a heap body, used in place.
    codes: Box<[OnceLock<LoadedCodes>]>,
    /// Per space: a copy of a mapped body's graph in process RAM, made on first use
    /// ([`SegmentData::graph_arrays_in_ram`]).
    graphs: Box<[OnceLock<GraphCopy>]>,
    /// When re-scores ask the page cache (`mincore`) whether their vectors are cached.
    pub(crate) residency: ResidencyProbe,
    /// The row sets its payload indexes answered most recently (large ones only).
    pub(crate) row_sets: RowSetCache,
}

/// A body's recently answered payload-index questions and their rows.
///
/// A filter answered by a payload index becomes a bitmap of the segment's rows, one bit per row
/// set from the value's postings: for a value held by 10 % of GloVe-400k, 40,000 bits from
/// 160 KB of postings, ~10 % of a filtered walk. A segment never changes its postings, and
/// the same conditions come back (a tenant, a category), so the last [`Self::KEEP`] large
/// answers are kept (at most `KEEP × rows / 8` bytes) and shared on a repeat; a filter copies
/// one to remove dead rows, as from a fresh answer.
#[derive(Debug, Default)]
pub(crate) struct RowSetCache(std::sync::Mutex<std::collections::VecDeque<(String, Arc<Bits>)>>);

impl RowSetCache {
    /// Answers kept per body.
    pub(crate) const KEEP: usize = 8;
    /// Answers with fewer rows are not kept (cheap to remake).
    pub(crate) const MIN_ROWS: u64 = 4096;

    /// The answer to the question `key`, from the cache or made by `make` (and kept if large),
    /// shared with the cache: a caller that changes it copies it (`Arc::try_unwrap` or
    /// clone), a walk confined to the rows only reads them.
    pub(crate) fn shared(&self, key: String, make: impl FnOnce() -> Bits) -> Arc<Bits> {
        let lock = || {
            self.0
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
        };
        let hit = lock()
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, b)| Arc::clone(b));
        if let Some(b) = hit {
            return b;
        }
        let b = Arc::new(make());
        if b.count() >= Self::MIN_ROWS {
            let mut kept = lock();
            if !kept.iter().any(|(k, _)| *k == key) {
                kept.push_front((key, Arc::clone(&b)));
                kept.truncate(Self::KEEP);
            }
        }
        b
    }
}

/// Whether a re-score should ask the page cache (`mincore`, a system call per candidate,
/// ~0.5–1 µs each) which of its vectors are cached, or read them all through the mapping.
///
/// Asking pays when some miss (they are read together, not faulted one after another) and is
/// pure cost when all are cached — 20 system calls a search, as much as the whole walk on a
/// small segment. So every re-score asks until [`Self::TRUST_AFTER`] in a row found every
/// vector cached; after that only one in [`Self::SAMPLE_EVERY`] asks, and only about its first
/// [`Self::SAMPLE_ROWS`] candidates unless one of them misses (the others read through the
/// mapping); a miss makes every re-score ask again. A segment whose vectors leave the page
/// cache is read through the mapping, faults and all, until a sampled re-score sees a miss —
/// at once when most are out, within a few samples when only some are.
#[derive(Debug, Default)]
pub(crate) struct ResidencyProbe {
    /// Consecutive asked re-scores that found every vector cached (capped at `TRUST_AFTER`).
    streak: std::sync::atomic::AtomicU32,
    /// Re-scores since the streak was reached (picks the sampled ones).
    since: std::sync::atomic::AtomicU32,
}

/// See [`ResidencyProbe::ask`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Ask {
    Every,
    Sample,
    No,
}

impl ResidencyProbe {
    pub(crate) const TRUST_AFTER: u32 = 32;
    pub(crate) const SAMPLE_EVERY: u32 = 16;

    /// Candidates a sampled re-score asks about first: if all are cached, so are taken to be
    /// the others (a segment mostly out of the cache shows a miss among them at once).
    pub(crate) const SAMPLE_ROWS: usize = 4;

    /// How this re-score should ask: about every candidate (not trusted yet), about
    /// [`Self::SAMPLE_ROWS`] of them first (trusted, sampled), or not at all.
    pub(crate) fn ask(&self) -> Ask {
        use std::sync::atomic::Ordering::Relaxed;
        if self.streak.load(Relaxed) < Self::TRUST_AFTER {
            Ask::Every
        } else if self
            .since
            .fetch_add(1, Relaxed)
            .is_multiple_of(Self::SAMPLE_EVERY)
        {
            Ask::Sample
        } else {
            Ask::No
        }
    }

    /// What an asked re-score found.
    pub(crate) fn found(&self, all_cached: bool) {
        use std::sync::atomic::Ordering::Relaxed;
        match all_cached {
            true => {
                let s = self.streak.load(Relaxed);
                // A racing miss's reset wins (the exchange fails); racing hits may count once.
                if s < Self::TRUST_AFTER
                    && self
                        .streak
                        .compare_exchange(s, s + 1, Relaxed, Relaxed)
                        .is_ok()
                {
                    // The first re-score after the streak is reached is not sampled: it
                    // asks again only SAMPLE_EVERY later.
                    self.since.store(1, Relaxed);
                }
            }
            false => self.streak.store(0, Relaxed),
        }
    }
}

/// A graph's sections copied out of a mapping.
#[derive(Debug)]
struct GraphCopy {
    l0: Vec<u32>,
    levels: Vec<u8>,
    upper_offsets: Vec<u32>,
    upper: Vec<u32>,
}

impl std::fmt::Debug for SegmentData {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SegmentData")
            .field("header", &self.layout.header)
            .field("spaces", &self.layout.spaces.len())
            .field("blob", &self.blob)
            .field("present", &self.present)
            .finish()
    }
}

/// List `index` of fixed-width (`w` u32: count, then ids) lists in `all`; `None` when out of
/// range or malformed. Checked arithmetic: a header-only open may see hostile values.
use super::graph::list_at;

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
        Self::open_checked(blob, check, None)
    }

    /// Everything [`Verify::Full`] checks but the section checksums: the caller must check
    /// them with [`SegmentData::verify_checksums`] before trusting the bytes.
    pub(crate) fn open_structure(blob: Blob) -> Result<SegmentData, DecodeError> {
        Self::open_checked(blob, Check::Structure, None)
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
        if !present.contains_all(ID_SECTIONS) {
            return Err(err(
                0,
                "a partial segment needs its id, version and tombstone sections",
            ));
        }
        Self::open_checked(blob, Check::Partial, Some(present))
    }

    fn open_checked(
        blob: Blob,
        check: Check,
        present: Option<SectionSet>,
    ) -> Result<SegmentData, DecodeError> {
        let b = blob.as_bytes();
        if !(b.as_ptr() as usize).is_multiple_of(16) {
            return Err(err(0, "segment bytes are not 16-byte aligned"));
        }
        let layout = Layout::decode(b)?;
        let all = SectionSet::first(layout.len());
        let present = present.map_or(all, |p| p.intersect(all));
        let mut sec = Vec::with_capacity(layout.len());
        for (i, s) in layout.table.iter().enumerate() {
            let entry_at = layout.entry_at(i) as u64;
            if !layout.expected_len(i).admits(s.len) {
                return Err(err(
                    entry_at,
                    format!(
                        "section '{}' is {} bytes, expected {:?}",
                        layout.name(i),
                        s.len,
                        layout.expected_len(i)
                    ),
                ));
            }
            let end = s.offset.checked_add(s.len);
            if s.offset % ALIGN as u64 != 0
                || s.offset < layout.prefix_len as u64
                || end.is_none_or(|e| e > b.len() as u64)
            {
                return Err(err(
                    entry_at,
                    format!(
                        "section '{}' at {}+{} lies outside the file ({} bytes) or is misaligned",
                        layout.name(i),
                        s.offset,
                        s.len,
                        b.len()
                    ),
                ));
            }
            sec.push(s.offset as usize..(s.offset + s.len) as usize);
        }
        let seg = SegmentData {
            codes: layout.spaces.iter().map(|_| OnceLock::new()).collect(),
            graphs: layout.spaces.iter().map(|_| OnceLock::new()).collect(),
            residency: ResidencyProbe::default(),
            row_sets: RowSetCache::default(),
            blob,
            layout,
            sec,
            present,
        };
        match check {
            Check::Full | Check::Partial => {
                seg.verify_structure()?;
                let b = seg.blob.as_bytes();
                for (i, s) in seg.layout.table.iter().enumerate() {
                    if !seg.present.has(i) {
                        continue;
                    }
                    let r = &seg.sec[i];
                    if crc(&b[r.clone()]) != s.crc {
                        return Err(err(
                            r.start as u64,
                            format!("section '{}' checksum mismatch", seg.layout.name(i)),
                        ));
                    }
                }
            }
            Check::Structure => seg.verify_structure()?,
            Check::HeaderOnly => {}
        }
        // Every mapped body, whoever opens it (start-up, flush, compaction, promotion, a move
        // from hot to warm), after the checks above read it in order.
        seg.advise_random_access();
        Ok(seg)
    }

    /// Checks every section's checksum, reading the sections through `read` (ranges of the
    /// file → their bytes) in chunks of [`VERIFY_CHUNK`], [`VERIFY_BATCH`] at a time. An error
    /// of `read` is returned as is; a mismatch names the section.
    pub(crate) fn verify_checksums<E>(
        &self,
        read: &mut ReadRanges<'_, E>,
    ) -> Result<(), VerifyError<E>> {
        for (i, s) in self.layout.table.iter().enumerate() {
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
                    format!("section '{}' checksum mismatch", self.layout.name(i)),
                )));
            }
        }
        Ok(())
    }

    fn verify_structure(&self) -> Result<(), DecodeError> {
        let b = self.blob.as_bytes();
        let all = SectionSet::first(self.layout.len());
        // Sections must not overlap, and every byte outside them (the padding) must be zero,
        // so that no byte of the file can change unnoticed (a partial segment has holes there
        // instead: its padding is not checked).
        let mut covered: Vec<Range<usize>> =
            self.sec.iter().filter(|r| !r.is_empty()).cloned().collect();
        covered.sort_by_key(|r| r.start);
        let (table_end, prefix_len) = (self.layout.table_end, self.layout.prefix_len);
        if let Some(i) = b
            .get(table_end..prefix_len)
            .and_then(|pad| pad.iter().position(|x| *x != 0))
        {
            return Err(err((table_end + i) as u64, "non-zero padding byte"));
        }
        let mut pos = prefix_len;
        for r in covered.iter().chain(std::iter::once(&(b.len()..b.len()))) {
            if r.start < pos {
                return Err(err(r.start as u64, "sections overlap"));
            }
            if self.present == all
                && let Some(i) = b[pos..r.start].iter().position(|x| *x != 0)
            {
                return Err(err((pos + i) as u64, "non-zero padding byte"));
            }
            pos = r.end;
        }
        let n = self.rows();
        let at = |i: usize, row: usize, w: usize| (self.sec[i].start + row * w) as u64;
        self.ids().check().map_err(|(s, i, what)| {
            let width = match s {
                Sec::IdTags => 1,
                Sec::IdValues => 16,
                _ => TOMBSTONE_LEN,
            };
            err(at(common(s), i, width), what)
        })?;
        let offs = self.u64s(common(Sec::PayloadOffsets));
        let data_len = self.sec[common(Sec::PayloadData)].len() as u64;
        if self.present.has(common(Sec::PayloadOffsets))
            && (offs.first() != Some(&0)
                || offs.windows(2).any(|w| w[0] > w[1])
                || offs.last() != Some(&data_len))
        {
            return Err(err(
                at(common(Sec::PayloadOffsets), 0, 8),
                "payload offsets not monotonic",
            ));
        }
        for (j, x) in self.layout.indexes.iter().enumerate() {
            let i = index_sec(self.space_count(), j);
            if !self.present.has(i) {
                continue;
            }
            let v = super::pindex::IndexView::new(x.ty, self.bytes(i), n).map_err(|what| {
                err(
                    self.sec[i].start as u64,
                    format!("{}: {what}", self.layout.name(i)),
                )
            })?;
            if v.points() != x.points {
                return Err(err(
                    self.sec[i].start as u64,
                    format!("{}: points disagree with its record", self.layout.name(i)),
                ));
            }
        }
        for j in 0..self.layout.sparse.len() {
            let i = self.layout.sparse_sec(j);
            if !self.present.has(i) {
                continue;
            }
            crate::sparse::SparseView::view(self.bytes(i), n).map_err(|what| {
                err(
                    self.sec[i].start as u64,
                    format!("{}: {what}", self.layout.name(i)),
                )
            })?;
        }
        for space in 0..self.space_count() {
            let Some(i) = self.layout.codes_sec(space) else {
                continue;
            };
            let bad = match self.stored_codes(space) {
                None => None,
                Some(_) if !self.layout.has_graph(space) => Some("codes without a graph".into()),
                Some(r) => r.err(),
            };
            if let Some(what) = bad {
                return Err(err(
                    self.sec[i].start as u64,
                    format!("{}: {what}", self.layout.name(i)),
                ));
            }
        }
        for space in 0..self.space_count() {
            let Some(i) = self.layout.links_sec(space) else {
                continue;
            };
            if !self.present.has(i) || self.sec[i].is_empty() {
                continue;
            }
            let values = |j: u32| {
                self.payload_index(j as usize)
                    .map(|v| v.value_count())
                    .or_else(|| {
                        // An index section not fetched (a partial body): its record still
                        // exists; the value is checked when a full body is opened.
                        (j < self.layout.indexes.len() as u32).then_some(usize::MAX)
                    })
            };
            let ok = match self.layout.spaces[space].graph {
                Some(_) => super::links::LinksView::view(self.bytes(i), n)
                    .and_then(|v| v.check(n, &values)),
                None => Err("links without a graph".into()),
            };
            ok.map_err(|what| {
                err(
                    self.sec[i].start as u64,
                    format!("{}: {what}", self.layout.name(i)),
                )
            })?;
        }
        for space in 0..self.space_count() {
            let Some(g) = self.layout.spaces[space].graph else {
                continue;
            };
            if n == 0 || !self.present.contains_all(graph_sections(space)) {
                continue;
            }
            let levels = self.graph_levels(space);
            let offsets = self.u32s(space_sec(space, SpaceSec::GraphUpperOffsets));
            for row in 0..n as usize {
                let lvl = levels[row] as u32;
                if lvl > g.max_level {
                    return Err(err(
                        at(space_sec(space, SpaceSec::GraphLevels), row, 1),
                        "node level above max",
                    ));
                }
                if lvl > 0 && (offsets[row] as u64 + lvl as u64 > g.upper_lists as u64) {
                    return Err(err(
                        at(space_sec(space, SpaceSec::GraphUpperOffsets), row, 4),
                        "upper list offset out of range",
                    ));
                }
                for level in 0..=lvl {
                    let ok = self
                        .raw_neighbours(space, row as u32, level)
                        .is_some_and(|l| l.iter().all(|x| (*x as u64) < n as u64));
                    if !ok {
                        return Err(err(
                            at(
                                space_sec(space, SpaceSec::GraphL0),
                                row,
                                4 * (1 + g.l0_width as usize),
                            ),
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
    fn bytes(&self, i: usize) -> &[u8] {
        match self.present.has(i) {
            true => &self.blob.as_bytes()[self.sec[i].clone()],
            false => &[],
        }
    }

    /// True when section `i`'s bytes are here (always, unless this is a partly fetched cold
    /// segment: see [`Self::open_partial`]).
    pub(crate) fn has(&self, i: usize) -> bool {
        self.present.has(i)
    }

    /// True when every section of `set` is here.
    pub(crate) fn has_all(&self, set: SectionSet) -> bool {
        self.present
            .contains_all(set.intersect(SectionSet::first(self.layout.len())))
    }

    fn u64s(&self, i: usize) -> &[u64] {
        cast_slice(self.bytes(i)).expect("section aligned and sized at open")
    }
    fn u32s(&self, i: usize) -> &[u32] {
        cast_slice(self.bytes(i)).expect("section aligned and sized at open")
    }

    pub(crate) fn rows(&self) -> u32 {
        self.layout.header.rows
    }
    pub(crate) fn space_count(&self) -> usize {
        self.layout.spaces.len()
    }
    pub(crate) fn dim(&self, space: usize) -> usize {
        self.layout.spaces.get(space).map_or(0, |s| s.dim as usize)
    }
    pub(crate) fn segment_id(&self) -> u64 {
        self.layout.header.segment_id
    }
    pub(crate) fn file_len(&self) -> u64 {
        self.blob.len() as u64
    }
    /// The header, space records and section table as stored.
    pub(crate) fn prefix(&self) -> &[u8] {
        &self.blob.as_bytes()[..self.layout.prefix_len]
    }
    /// See [`Blob::release_pages`].
    pub(crate) fn release_pages(&self) {
        self.blob.release_pages();
    }
    /// The whole file (to write an in-RAM segment out).
    pub(crate) fn bytes_all(&self) -> &[u8] {
        self.blob.as_bytes()
    }
    /// True when `space` has a graph (and the segment has rows).
    pub(crate) fn has_graph(&self, space: usize) -> bool {
        self.layout.has_graph(space)
    }
    fn graph_meta(&self, space: usize) -> GraphMeta {
        self.layout
            .spaces
            .get(space)
            .and_then(|s| s.graph)
            .unwrap_or_default()
    }

    /// All vectors of `space`, row-major (zeros for rows without one).
    pub(crate) fn vectors(&self, space: usize) -> &[f32] {
        cast_slice(self.bytes(space_sec(space, SpaceSec::Vectors)))
            .expect("section aligned and sized at open")
    }
    /// Starts reading `space`'s whole vectors section into the page cache, for a pass over all
    /// of it (making codes, an exact scan, a compaction), when it was advised random access
    /// (see [`Self::advise_random_access`]); nothing on the heap.
    pub(crate) fn prefetch_vectors(&self, space: usize) {
        let i = space_sec(space, SpaceSec::Vectors);
        // Only sections advised random (those of a space with a graph) lost readahead.
        if space < self.space_count() && self.has_graph(space) && self.present.has(i) {
            self.blob.advise_willneed(self.sec[i].clone());
        }
    }
    /// Marks the vectors of each indexed space — read at random by a walk's re-score — as such
    /// in a mapped body: a page fault there reads one page, without the kernel's read-around
    /// (see [`Blob::advise_random`]).
    pub(crate) fn advise_random_access(&self) {
        for space in 0..self.space_count() {
            if !self.has_graph(space) {
                continue;
            }
            let i = space_sec(space, SpaceSec::Vectors);
            if self.present.has(i) {
                self.blob.advise_random(self.sec[i].clone());
            }
        }
    }
    /// Where row `row`'s vector in `space` lies in the segment's file, when the body is a
    /// mapping of that file (a warm segment): a batched read can fetch it instead of a fault
    /// through the mapping.
    pub(crate) fn vector_file_range(&self, space: usize, row: u32) -> Option<Range<u64>> {
        let i = space_sec(space, SpaceSec::Vectors);
        if !self.blob.is_mapped() || space >= self.space_count() || !self.present.has(i) {
            return None;
        }
        let len = (self.dim(space) * 4) as u64;
        let start = self.sec[i].start as u64 + u64::from(row) * len;
        (start + len <= self.sec[i].end as u64).then_some(start..start + len)
    }
    /// True when row `row`'s vector in `space` is in RAM (heap body, or its pages in the page
    /// cache: see [`Blob::is_resident`]).
    pub(crate) fn vector_resident(&self, space: usize, row: u32) -> bool {
        let i = space_sec(space, SpaceSec::Vectors);
        if space >= self.space_count() || !self.present.has(i) {
            return false;
        }
        let d = self.dim(space) * 4;
        let start = self.sec[i].start + row as usize * d;
        start + d <= self.sec[i].end && self.blob.is_resident(start..start + d)
    }
    /// Row `row`'s vector in `space`; empty when the vectors are not present (see
    /// [`Self::has`]). Zeros when the row has none there (see [`Self::has_vector`]).
    pub(crate) fn vector(&self, space: usize, row: u32) -> &[f32] {
        let d = self.dim(space);
        self.vectors(space)
            .get(row as usize * d..(row as usize + 1) * d)
            .unwrap_or(&[])
    }
    /// True when row `row` has a vector in `space` (an empty presence section: every row).
    /// Needs the presence section (streamed with the vectors).
    pub(crate) fn has_vector(&self, space: usize, row: u32) -> bool {
        let i = space_sec(space, SpaceSec::Presence);
        if space >= self.space_count() || !self.present.has(i) {
            return false;
        }
        let words = self.u64s(i);
        words.is_empty()
            || words
                .get(row as usize / 64)
                .is_some_and(|w| w & (1 << (row % 64)) != 0)
    }
    /// True when every row has a vector in `space`.
    pub(crate) fn all_have(&self, space: usize) -> bool {
        self.sec
            .get(space_sec(space, SpaceSec::Presence))
            .is_some_and(|r| r.is_empty())
    }
    /// Ids, versions and tombstones (the sections a meta file copies).
    pub(crate) fn ids(&self) -> Ids<'_> {
        Ids::new(
            self.bytes(common(Sec::IdTags)),
            self.bytes(common(Sec::IdValues)),
            self.bytes(common(Sec::Versions)),
            self.bytes(common(Sec::Tombstones)),
        )
        .expect("sections sized and aligned at open")
    }
    /// Row `row`'s stored payload bytes; `None` when the payloads are not present.
    pub(crate) fn payload(&self, row: u32) -> Option<&[u8]> {
        if !self.has_all(PAYLOAD_SECTIONS) {
            return None;
        }
        let (a, b) = self.payload_span(row)?;
        self.bytes(common(Sec::PayloadData))
            .get(a as usize..b as usize)
    }

    /// Where row `row`'s payload lies within the payload data section; `None` when the payload
    /// offsets are not present.
    pub(crate) fn payload_span(&self, row: u32) -> Option<(u64, u64)> {
        let offs = self.u64s(common(Sec::PayloadOffsets));
        Some((*offs.get(row as usize)?, *offs.get(row as usize + 1)?))
    }

    /// This segment's meta file (see [`super::meta`]), with a summary of its first space's
    /// vectors when `summary` (k-means: milliseconds per 10k rows, so not under the write
    /// gate).
    pub(crate) fn meta_bytes(&self, summary: bool) -> Vec<u8> {
        let summary = (summary && self.space_count() > 0).then(|| {
            let dim = self.dim(0);
            // Only rows that have a vector there: a bound over them is what a search needs.
            let present: Vec<f32>;
            let vectors = match self.all_have(0) {
                true => self.vectors(0),
                false => {
                    present = (0..self.rows())
                        .filter(|r| self.has_vector(0, *r))
                        .flat_map(|r| self.vector(0, r).iter().copied())
                        .collect();
                    &present
                }
            };
            super::summary::Summary::build(vectors, dim, self.segment_id()).encode(dim)
        });
        super::meta::encode(
            self.prefix(),
            self.file_len(),
            super::meta::META_SECTIONS.map(|s| self.bytes(common(s))),
            summary.as_deref(),
        )
    }

    /// Touches everything a reader can reach (fuzzing: must never panic on any accepted file).
    pub(crate) fn exercise(&self) {
        let rows = self.rows().min(4096);
        let ids = self.ids();
        for r in 0..rows {
            let _ = (ids.id(r), ids.version(r), self.payload(r).map(<[u8]>::len));
            for space in 0..self.space_count() {
                let _ = (self.vector(space, r).len(), self.has_vector(space, r));
                for level in 0..=self.graph_meta(space).max_level.min(16) {
                    let _ = self.raw_neighbours(space, r, level);
                }
            }
        }
        for t in 0..ids.tombstone_count().min(4096) {
            let _ = ids.tombstone(t);
        }
        for j in 0..self.sparse_count() {
            if let Some(v) = self.sparse_view(j) {
                for r in 0..rows {
                    let _ = v.row(r);
                }
                let _ = v.top_k(&[0, 1, 7], &[1.0, 0.5, 2.0], 4, &mut |_| true);
            }
        }
        if rows > 0 {
            let _ = ids.find(ids.id(0));
            let _ = ids.lower_bound(ids.id(rows - 1));
            for space in 0..self.space_count() {
                if let Some(arrays) = self.graph_arrays(space) {
                    let q = vec![0.5f32; self.dim(space)];
                    let metric = self.layout.spaces[space].distance;
                    let _ = super::graph::search(&arrays, metric, &q, 3, 8, 8, &mut |_| true, None);
                    let mut coded = arrays;
                    coded.codes = self.codes(space);
                    let _ = super::graph::search(&coded, metric, &q, 3, 8, 8, &mut |_| true, None);
                    if let Some(links) = self.links(space) {
                        let within = crate::filter::Bits::all(self.rows());
                        let entries: Vec<u32> = links.blocks().map(|b| b.entry).collect();
                        let confined = super::graph::Confined {
                            within: &within,
                            links,
                            entries: &entries,
                        };
                        let _ = super::graph::search(
                            &arrays,
                            metric,
                            &q,
                            3,
                            8,
                            8,
                            &mut |_| true,
                            Some(&confined),
                        );
                    }
                }
            }
        }
    }

    /// Payload index `j`, when its section is here (checked at open).
    pub(crate) fn payload_index(&self, j: usize) -> Option<super::pindex::IndexView<'_>> {
        let x = self.layout.indexes.get(j)?;
        let i = index_sec(self.space_count(), j);
        if !self.present.has(i) {
            return None;
        }
        super::pindex::IndexView::view(x.ty, self.bytes(i), self.rows()).ok()
    }

    /// Number of sparse spaces.
    pub(crate) fn sparse_count(&self) -> usize {
        self.layout.sparse.len()
    }

    /// Sparse space `j`, when its section is here (checked at open).
    pub(crate) fn sparse_view(&self, j: usize) -> Option<crate::sparse::SparseView<'_>> {
        if j >= self.sparse_count() || !self.present.has(self.layout.sparse_sec(j)) {
            return None;
        }
        crate::sparse::SparseView::view_sized(self.bytes(self.layout.sparse_sec(j)), self.rows())
            .ok()
    }

    /// `space`'s payload links, when it has some and their section is here (checked at open).
    pub(crate) fn links(&self, space: usize) -> Option<super::links::LinksView<'_>> {
        let i = self.layout.links_sec(space)?;
        if !self.present.has(i) || self.sec[i].is_empty() || !self.has_graph(space) {
            return None;
        }
        super::links::LinksView::view(self.bytes(i), self.rows()).ok()
    }

    /// A copy of `space`'s graph, when the segment has one and its sections are here.
    pub(crate) fn graph_copy(&self, space: usize) -> Option<super::graph::FlatGraph> {
        let g = self.layout.spaces.get(space)?.graph?;
        if !self.has_graph(space) || !self.has_all(graph_sections(space)) {
            return None;
        }
        Some(super::graph::FlatGraph {
            entry: g.entry,
            max_level: g.max_level,
            l0_width: g.l0_width,
            up_width: g.up_width,
            upper_lists: g.upper_lists,
            levels: self.graph_levels(space).to_vec(),
            l0: self.u32s(space_sec(space, SpaceSec::GraphL0)).to_vec(),
            upper_offsets: self
                .u32s(space_sec(space, SpaceSec::GraphUpperOffsets))
                .to_vec(),
            upper: self.u32s(space_sec(space, SpaceSec::GraphUpper)).to_vec(),
        })
    }

    /// `space`'s graph as the search walks it, or `None` if the space has none.
    pub(crate) fn graph_arrays(&self, space: usize) -> Option<super::graph::Arrays<'_>> {
        let g = self.layout.spaces.get(space)?.graph?;
        Some(super::graph::Arrays {
            entry: g.entry,
            max_level: g.max_level,
            l0: self.u32s(space_sec(space, SpaceSec::GraphL0)),
            w0: 1 + g.l0_width as usize,
            levels: self.graph_levels(space),
            upper_offsets: self.u32s(space_sec(space, SpaceSec::GraphUpperOffsets)),
            upper: self.u32s(space_sec(space, SpaceSec::GraphUpper)),
            wu: 1 + g.up_width as usize,
            vectors: self.vectors(space),
            dim: self.dim(space),
            codes: None,
        })
    }

    /// [`Self::graph_arrays`], with the lists read from a copy in process RAM when the body is
    /// a mapping (made on first use): the page cache can then evict the vectors but never the
    /// graph a walk needs (`EngineOptions::graphs_in_ram`).
    pub(crate) fn graph_arrays_in_ram(&self, space: usize) -> Option<super::graph::Arrays<'_>> {
        let mut a = self.graph_arrays(space)?;
        if !self.blob.is_mapped() {
            return Some(a);
        }
        let copy = self.graphs.get(space)?.get_or_init(|| {
            for k in [
                SpaceSec::GraphLevels,
                SpaceSec::GraphL0,
                SpaceSec::GraphUpperOffsets,
                SpaceSec::GraphUpper,
            ] {
                self.blob
                    .advise_willneed(self.sec[space_sec(space, k)].clone());
            }
            GraphCopy {
                l0: a.l0.to_vec(),
                levels: a.levels.to_vec(),
                upper_offsets: a.upper_offsets.to_vec(),
                upper: a.upper.to_vec(),
            }
        });
        a.l0 = &copy.l0;
        a.levels = &copy.levels;
        a.upper_offsets = &copy.upper_offsets;
        a.upper = &copy.upper;
        Some(a)
    }

    /// One-byte codes of `space`'s vectors (see [`crate::quant`]) for its graph walk: copied
    /// from the codes section (format 5) or, without one, made from the vectors (tens of
    /// milliseconds per 100 MB of vectors), the first time a search asks (concurrent first
    /// searches wait for the one that loads them), and kept in RAM with the body, beside the
    /// vectors (`stride / (4 · dim)` of their bytes; a heap body's stored codes are used in
    /// place). `None` if the space has
    /// no graph, or if this body is a partly fetched cold segment without its codes section:
    /// such a body serves one read, which would not repay the encoding.
    pub(crate) fn codes(&self, space: usize) -> Option<Codes<'_>> {
        let cell = self.codes.get(space)?;
        let loaded = match cell.get() {
            Some(made) => made,
            None => {
                if !self.layout.has_graph(space) {
                    return None;
                }
                // Stored in the file (format 5): copied into RAM, so the page cache can evict
                // vectors but never the codes a walk reads.
                if let Some(Ok(Some((quant, bytes)))) = self.stored_codes(space) {
                    cell.get_or_init(|| {
                        // A heap body (the hot tier) already holds them, aligned: in place.
                        if !self.blob.is_mapped() && (bytes.as_ptr() as usize).is_multiple_of(64) {
                            let norms = self.norms(space, &quant, bytes);
                            return LoadedCodes {
                                quant,
                                buf: None,
                                norms,
                            };
                        }
                        if let Some(i) = self.layout.codes_sec(space) {
                            self.blob.advise_willneed(self.sec[i].clone());
                        }
                        // The norms from the copy: the mapping is advised random access.
                        let buf = CodeBuf::from_bytes(bytes);
                        let norms = self.norms(space, &quant, buf.as_bytes());
                        LoadedCodes {
                            quant,
                            buf: Some(buf),
                            norms,
                        }
                    })
                } else if self.present != SectionSet::first(self.layout.len()) {
                    return None;
                } else {
                    self.make_codes(cell, space)
                }
            }
        };
        let bytes = match &loaded.buf {
            Some(b) => b.as_bytes(),
            // Checked when the cell was filled.
            None => {
                let i = self.layout.codes_sec(space)?;
                let head = crate::quant::section::head_len(self.dim(space));
                self.bytes(i).get(head..)?
            }
        };
        Some(Codes {
            quant: &loaded.quant,
            bytes,
            norms: &loaded.norms,
        })
    }

    /// The norm terms a Euclid walk over `space`'s codes `bytes` adds (empty for the other
    /// metrics).
    fn norms(&self, space: usize, quant: &Quantizer, bytes: &[u8]) -> Vec<f32> {
        if self.layout.spaces[space].distance == crate::types::Distance::Euclid {
            quant.norms(bytes)
        } else {
            Vec::new()
        }
    }

    /// Makes `space`'s codes from its vectors into `cell` (once).
    fn make_codes<'a>(&'a self, cell: &'a OnceLock<LoadedCodes>, space: usize) -> &'a LoadedCodes {
        cell.get_or_init(|| {
            // One pass over every vector: ask for all of them at once (the section is
            // advised random access, which would fault it in page by page).
            self.prefetch_vectors(space);
            let (dim, vectors) = (self.dim(space), self.vectors(space));
            let all = self.all_have(space);
            let quant = Quantizer::train_where(vectors, dim, |r| all || self.has_vector(space, r));
            let buf = quant.encode_all(vectors);
            let norms = self.norms(space, &quant, buf.as_bytes());
            LoadedCodes {
                quant,
                buf: Some(buf),
                norms,
            }
        })
    }

    /// `space`'s stored codes and their quantizer (format 5), when the section is here and
    /// not empty; `Err` names what is wrong with it.
    pub(crate) fn stored_codes(
        &self,
        space: usize,
    ) -> Option<Result<Option<crate::quant::section::Stored<'_>>, String>> {
        let i = self.layout.codes_sec(space)?;
        if !self.present.has(i) || self.sec[i].is_empty() {
            return None;
        }
        Some(crate::quant::section::read(
            self.bytes(i),
            self.dim(space),
            self.rows(),
        ))
    }

    pub(crate) fn graph_levels(&self, space: usize) -> &[u8] {
        self.bytes(space_sec(space, SpaceSec::GraphLevels))
    }

    /// Neighbour list of `node` at `level` in `space`'s graph, or `None` if the node has no
    /// such level or the stored list is malformed.
    pub(crate) fn raw_neighbours(&self, space: usize, node: u32, level: u32) -> Option<&[u32]> {
        let g = self.layout.spaces.get(space)?.graph?;
        if level == 0 {
            return list_at(
                self.u32s(space_sec(space, SpaceSec::GraphL0)),
                node as usize,
                1 + g.l0_width as usize,
            );
        }
        if level > *self.graph_levels(space).get(node as usize)? as u32 {
            return None;
        }
        let first = *self
            .u32s(space_sec(space, SpaceSec::GraphUpperOffsets))
            .get(node as usize)? as usize;
        list_at(
            self.u32s(space_sec(space, SpaceSec::GraphUpper)),
            first + level as usize - 1,
            1 + g.up_width as usize,
        )
    }
}

#[cfg(test)]
mod residency_tests {
    use super::ResidencyProbe;

    /// Asks how many of the next `n` re-scores ask, each finding `all_cached` when it asks.
    fn asked(p: &ResidencyProbe, n: u32, all_cached: bool) -> u32 {
        (0..n)
            .filter(|_| {
                let ask = p.ask() != super::Ask::No;
                if ask {
                    p.found(all_cached);
                }
                ask
            })
            .count() as u32
    }

    #[test]
    fn asks_every_time_until_trusted_then_samples_and_a_miss_resets() {
        let p = ResidencyProbe::default();
        // Misses: every re-score asks, however many.
        assert_eq!(asked(&p, 100, false), 100);
        // Everything cached: asks TRUST_AFTER times in a row, then one in SAMPLE_EVERY.
        assert_eq!(
            asked(&p, ResidencyProbe::TRUST_AFTER, true),
            ResidencyProbe::TRUST_AFTER
        );
        let n = 20 * ResidencyProbe::SAMPLE_EVERY;
        assert_eq!(asked(&p, n, true), 20);
        // A sampled re-score that finds a miss: every re-score asks again...
        let mut skipped = 0;
        while p.ask() == super::Ask::No {
            skipped += 1;
        }
        assert!(skipped < ResidencyProbe::SAMPLE_EVERY);
        p.found(false);
        assert_eq!(asked(&p, 50, false), 50);
        // ...until a new streak.
        asked(&p, ResidencyProbe::TRUST_AFTER, true);
        assert_eq!(asked(&p, n, true), 20);
    }
}

#[cfg(test)]
mod row_set_tests {
    use super::RowSetCache;
    use crate::filter::Bits;
    use std::cell::Cell;

    fn bits(rows: u32, set: u32) -> Bits {
        let mut b = Bits::none(rows);
        (0..set).for_each(|r| b.set(r));
        b
    }

    #[test]
    fn keeps_large_answers_only_and_at_most_keep() {
        let cache = RowSetCache::default();
        let made = Cell::new(0);
        let get = |key: &str, set: u32| {
            let b = cache.shared(key.to_string(), || {
                made.set(made.get() + 1);
                bits(100_000, set)
            });
            (*b).clone()
        };
        let large = RowSetCache::MIN_ROWS as u32;
        assert_eq!(get("a", large), bits(100_000, large));
        assert_eq!(get("a", large), bits(100_000, large));
        assert_eq!(made.get(), 1, "a large answer is made once");
        get("small", 10);
        get("small", 10);
        assert_eq!(made.get(), 3, "a small one every time");
        // KEEP more large answers push "a" out.
        for i in 0..RowSetCache::KEEP {
            get(&format!("k{i}"), large);
        }
        let before = made.get();
        get("a", large);
        assert_eq!(made.get(), before + 1, "evicted, made again");
    }
}
