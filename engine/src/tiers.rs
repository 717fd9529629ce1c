//! Residency: where each sealed segment's body lives, how a read gets a cold one, and the
//! mover that applies the tiering policy's plans.
//!
//! ```text
//! read needs sections ─▶ Inner::body_for ─ touch ─▶ hot/warm: the body (a hit)
//!   (search: vectors,                       └─ cold: policy::on_cold_read
//!    graph, payload                              ├─ Promote: [move lock] parallel ranged GETs
//!    offsets; filter:                            │   ─▶ written into a temp file, fsync
//!    payloads)                                   │   ─▶ verify (full, on its mapping) ─▶ rename
//!                                                │   ─▶ map ─▶ swap body to Warm (single flight)
//!                                                └─ Stream: one ranged GET per needed section
//!                                                    (coalesced) ─▶ each checked against its
//!                                                    CRC ─▶ a partial body for this read only
//! result rows ─▶ Inner::load_rows ─▶ rows of a cold or streamed segment without their bytes:
//!   promoted body (as above), else ranged GETs of each row's vector and payload (payload
//!   offsets first unless the streamed body has them); segments in parallel
//! mover (every `mover_interval`) ─▶ segment states ─▶ policy::plan ─▶ demotions, then
//!   promotions, each by up to `mover_concurrency` threads, downloads under a bandwidth cap;
//!   a failed move backs off (doubling, up to `mover_backoff_max`) and is planned again later
//! moves: Warm→Hot  heap copy of the mapped file ─▶ swap      Hot→Warm  map the file ─▶ swap
//!        *→Cold    evict the local file (refused unless the cold copy exists) ─▶ swap
//!        Cold→*    promote as above (then copy to the heap for Hot)
//! ```
//! Crash safety: a segment is in the cold store (verified) before any manifest names it, and a
//! move only ever adds or removes the *local* copy, so at no instant is a segment in no tier. A
//! restart derives each segment's tier from what is local (warm if the file is, else cold; hot
//! is re-earned). Readers hold an `Arc` of the body they started with, so a swap never pulls
//! bytes from under a running read (an evicted file stays mapped until its last reader ends).

use std::collections::HashMap;
use std::ops::Range;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use strata_tiering::policy::{self, Budgets, ColdRead, Hint, SegmentState, Tier};
use strata_tiering::{Blob, layout};

use crate::actors::sealed::{ActorBody, ActorSegment, verify_file};
use crate::engine::{Inner, lock};
use crate::error::{Error, ErrorKind, Result};
use crate::read::{Found, Held};
use crate::segment::format::{
    ID_SECTIONS, Layout, PAYLOAD_SECTIONS, Sec, SectionSet, SpaceSec, common, space_sec,
    vector_sections,
};
use crate::segment::{Body, Segment, SegmentData, Verify, compaction_sections};

/// Counters of the tiers since open (also exported as metrics).
#[derive(Debug, Default)]
pub(crate) struct TierCounters {
    /// Reads that found the body resident, by tier (hot, warm).
    pub(crate) hits: [AtomicU64; 2],
    /// Reads that found the segment cold.
    pub(crate) misses: AtomicU64,
    /// Cold reads served by streaming, and by promotion.
    pub(crate) streamed: AtomicU64,
    pub(crate) promoted: AtomicU64,
    /// Bytes read from the cold store for streamed reads (sections and rows).
    pub(crate) streamed_bytes: AtomicU64,
    /// Moves applied, by target tier (hot, warm, cold), and moves that failed.
    pub(crate) moves: [AtomicU64; 3],
    pub(crate) move_failures: AtomicU64,
    /// Cold segments searches read, skipped by their summaries, and left out (`cold: skip`).
    pub(crate) cold_searched: AtomicU64,
    pub(crate) cold_skipped: AtomicU64,
    pub(crate) cold_left_out: AtomicU64,
}

/// What the mover moves: a collection's segment or an actor segment (same policy, same
/// budgets, same backoff).
#[derive(Clone, Debug)]
pub(crate) enum Unit {
    Vector(Arc<Segment>),
    Actor(Arc<ActorSegment>),
}

impl Unit {
    fn id(&self) -> u64 {
        match self {
            Unit::Vector(s) => s.id(),
            Unit::Actor(s) => s.id,
        }
    }
}

/// The mover's own state.
#[derive(Debug, Default)]
pub(crate) struct Mover {
    /// Segments whose last move failed: (failures in a row, retry not before this ms, the
    /// error, whether it was a demotion).
    backoff: Mutex<HashMap<u64, (u32, u64, String, bool)>>,
    /// When the bandwidth cap allows the next download to start.
    next_download: Mutex<Option<Instant>>,
    /// The last probe of the cold store: when (ms) and what it found.
    probe: Mutex<Option<(u64, std::result::Result<(), String>)>>,
    pub(crate) counters: TierCounters,
}

pub(crate) fn tier_name(t: Tier) -> &'static str {
    match t {
        Tier::Hot => "hot",
        Tier::Warm => "warm",
        Tier::Cold => "cold",
    }
}

pub(crate) fn tier_index(t: Tier) -> usize {
    match t {
        Tier::Hot => 0,
        Tier::Warm => 1,
        Tier::Cold => 2,
    }
}

/// The API name of a tier hint.
pub fn hint_name(h: Hint) -> &'static str {
    match h {
        Hint::Auto => "auto",
        Hint::PinHot => "pin_hot",
        Hint::Warm => "warm",
        Hint::Offload => "offload",
    }
}

/// The tier hint an API name stands for.
pub fn parse_hint(s: &str) -> Option<Hint> {
    [Hint::Auto, Hint::PinHot, Hint::Warm, Hint::Offload]
        .into_iter()
        .find(|h| hint_name(*h) == s)
}

/// Checks the tier options (named in the error).
pub(crate) fn validate(o: &crate::options::EngineOptions) -> Result<()> {
    let t = &o.tiers;
    let bad = |what: String| Err(Error::invalid(format!("tier options: {what}")));
    if let Some(w) = t.warm_bytes
        && w < t.hot_bytes
    {
        return bad(format!(
            "warm_bytes ({w}) must be at least hot_bytes ({}): hot segments also count as local",
            t.hot_bytes
        ));
    }
    if t.mover_interval.is_zero() {
        return bad("mover_interval must be more than zero".into());
    }
    if t.mover_concurrency == 0 {
        return bad("mover_concurrency must be at least 1".into());
    }
    let b = Budgets {
        hot_bytes: t.hot_bytes,
        warm_bytes: t.warm_bytes.unwrap_or(u64::MAX),
        high_watermark: t.high_watermark,
        low_watermark: t.low_watermark,
        min_residence: 0,
        half_life: u64::try_from(t.half_life.as_millis()).unwrap_or(u64::MAX),
        admit_frequency: t.admit_frequency,
    };
    b.validate().or_else(bad)
}

/// `f` over every item, each on its own thread when there are several (cold reads of several
/// segments: one object-store round trip for all of them); a panic is an internal error.
pub(crate) fn in_parallel<T: Sync, R: Send>(
    items: &[T],
    f: impl Fn(&T) -> Result<R> + Sync,
) -> Vec<Result<R>> {
    if items.len() <= 1 {
        return items.iter().map(&f).collect();
    }
    std::thread::scope(|s| {
        let handles: Vec<_> = items.iter().map(|i| s.spawn(|| f(i))).collect();
        handles
            .into_iter()
            .map(|h| {
                h.join().unwrap_or_else(|_| {
                    Err(Error::new(
                        ErrorKind::Internal,
                        "a parallel segment read panicked",
                    ))
                })
            })
            .collect()
    })
}

/// Rows of one segment that a read fetches from the cold object (see [`Inner::load_rows`]).
struct RowFetch {
    id: u64,
    /// The segment file's header and section table.
    prefix: Vec<u8>,
    /// The partial body the read streamed, if any (it may hold the payload offsets).
    body: Option<Arc<SegmentData>>,
    /// (index into the read's rows, row in the segment).
    rows: Vec<(usize, u32)>,
}

impl RowFetch {
    fn new(id: u64, prefix: &[u8], body: Option<Arc<SegmentData>>) -> RowFetch {
        RowFetch {
            id,
            prefix: prefix.to_vec(),
            body,
            rows: Vec::new(),
        }
    }
}

/// Bytes and segments per tier (hot, warm, cold) at one instant.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct TierUsage {
    pub(crate) segments: [u64; 3],
    pub(crate) bytes: [u64; 3],
}

impl Inner {
    /// The policy's budgets from the options. Without a cold tier nothing can leave the local
    /// disk, so the warm budget is unlimited.
    pub(crate) fn budgets(&self) -> Budgets {
        let t = &self.opts().tiers;
        let millis = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        Budgets {
            hot_bytes: t.hot_bytes,
            warm_bytes: match self.tiered() {
                Some(_) => t.warm_bytes.unwrap_or(u64::MAX),
                None => u64::MAX,
            },
            high_watermark: t.high_watermark,
            low_watermark: t.low_watermark,
            min_residence: millis(t.min_residence),
            half_life: millis(t.half_life).max(1),
            admit_frequency: t.admit_frequency,
        }
    }

    fn state_of(
        &self,
        seg: &Segment,
        hint: Hint,
        now: u64,
        backoff: &HashMap<u64, (u32, u64, String, bool)>,
    ) -> SegmentState {
        SegmentState {
            id: seg.id(),
            bytes: seg.meta.file_len(),
            tier: seg.tier(),
            since: seg.since(),
            access: seg.access(),
            hint,
            moving: seg.is_moving() || backoff.get(&seg.id()).is_some_and(|b| b.1 > now),
        }
    }

    /// Every persisted segment (collections' and actor stores') with its policy state.
    fn segment_states(&self, now: u64) -> Vec<(Unit, SegmentState)> {
        let backoff = lock(&self.mover().backoff).clone();
        let mut out = Vec::new();
        for c in self.collections() {
            for s in c.segments().iter().filter(|s| s.is_persisted()) {
                out.push((
                    Unit::Vector(Arc::clone(s)),
                    self.state_of(s, c.hint(), now, &backoff),
                ));
            }
        }
        for a in self.actor_stores() {
            let hint = a.hint();
            for s in a.segments() {
                let state = SegmentState {
                    id: s.id,
                    bytes: s.file_len,
                    tier: s.tier(),
                    since: s.since(),
                    access: s.access(),
                    hint,
                    moving: s.is_moving() || backoff.get(&s.id).is_some_and(|b| b.1 > now),
                };
                out.push((Unit::Actor(s), state));
            }
        }
        out
    }

    /// Local bytes (hot and warm) of every actor segment.
    fn actor_local_bytes(&self) -> u64 {
        self.actor_stores().iter().map(|a| a.local_bytes()).sum()
    }

    /// Segments and bytes per tier (persisted segments; an unwritten one is in RAM anyway).
    pub(crate) fn tier_usage(&self) -> TierUsage {
        let mut u = TierUsage::default();
        for c in self.collections() {
            for s in c.segments().iter().filter(|s| s.is_persisted()) {
                let i = tier_index(s.tier());
                u.segments[i] += 1;
                u.bytes[i] += s.meta.file_len();
            }
        }
        u
    }

    /// The body of `seg` for a read that needs the sections `need`: resident, promoted (as
    /// the policy decides), or those sections streamed from the cold tier for this read only.
    /// Counts the read for the policy.
    pub(crate) fn body_for(
        &self,
        seg: &Arc<Segment>,
        hint: Hint,
        need: SectionSet,
    ) -> Result<Arc<SegmentData>> {
        match self.loaded(seg, hint)? {
            Some(d) => Ok(d),
            None => self.stream_sections(seg, need),
        }
    }

    /// The whole body of `seg` if it is resident or the policy promotes it now; `None` when a
    /// cold read should stream what it needs instead. Counts the read (a hit, or a miss and
    /// how it was served) and touches the segment's access statistics.
    fn loaded(&self, seg: &Arc<Segment>, hint: Hint) -> Result<Option<Arc<SegmentData>>> {
        let now = self.opts().clock.now_millis();
        let budgets = self.budgets();
        seg.touch(now, budgets.half_life);
        let counters = &self.mover().counters;
        if let Some(d) = seg.body() {
            let tier = seg.tier();
            if tier != Tier::Cold {
                counters.hits[tier_index(tier)].fetch_add(1, Ordering::Relaxed);
                metrics::counter!("strata_tier_hits_total", "tier" => tier_name(tier)).increment(1);
            }
            return Ok(Some(d));
        }
        counters.misses.fetch_add(1, Ordering::Relaxed);
        metrics::counter!("strata_tier_misses_total").increment(1);
        if seg.is_moving() {
            // A promotion (or another move) is running: wait for it rather than download the
            // same file again.
            let _wait = seg.move_lock();
            if let Some(d) = seg.body() {
                return Ok(Some(d));
            }
        }
        let usage = self.tier_usage();
        let local = u128::from(usage.bytes[0])
            + u128::from(usage.bytes[1])
            + u128::from(self.actor_local_bytes());
        // A move that started since the check above is waited for below (the move lock), not
        // read around: concurrent readers share one fetch, so the decision ignores it.
        let state = SegmentState {
            moving: false,
            ..self.state_of(seg, hint, now, &HashMap::new())
        };
        let decision = match seg.is_retired() {
            true => ColdRead::Stream,
            false => policy::on_cold_read_with_local(&state, local, &budgets, now),
        };
        if decision == ColdRead::Promote {
            let _one = seg.move_lock();
            match self.promote_locked(seg, false) {
                Ok(Some(d)) => {
                    counters.promoted.fetch_add(1, Ordering::Relaxed);
                    metrics::counter!("strata_tier_cold_reads_total", "how" => "promote")
                        .increment(1);
                    return Ok(Some(d));
                }
                Ok(None) => {} // retired meanwhile: stream
                Err(e) => {
                    tracing::warn!(segment = seg.id(), error = %e, "promotion failed; streaming this read");
                }
            }
        }
        counters.streamed.fetch_add(1, Ordering::Relaxed);
        metrics::counter!("strata_tier_cold_reads_total", "how" => "stream").increment(1);
        Ok(None)
    }

    /// Makes every row of `rows` ready to be materialised with its payload (`payload`) and
    /// vector (`vector`): a row of a cold segment ([`Held::Cold`]) gets the segment's body if
    /// the segment is resident or the policy promotes it, else its own bytes by ranged reads of
    /// the cold object; so does a row of a streamed body that lacks them (a search streams
    /// vectors, graph and payload offsets, not payloads). Segments are fetched in parallel.
    pub(crate) fn load_rows(
        &self,
        rows: &mut [Found],
        hint: Hint,
        payload: bool,
        vector: bool,
    ) -> Result<()> {
        if !payload && !vector {
            return Ok(());
        }
        // What a row of a body with `spaces` vector spaces needs.
        let need = |spaces: usize| {
            let mut n = SectionSet::EMPTY;
            if payload {
                n = n.union(PAYLOAD_SECTIONS);
            }
            if vector {
                n = (0..spaces).fold(n, |n, s| n.union(vector_sections(s)));
            }
            n
        };
        // Rows to fetch, by segment: (segment, the partial body it has, (index, row) pairs).
        let mut jobs: Vec<RowFetch> = Vec::new();
        let mut decided: HashMap<u64, Option<Arc<SegmentData>>> = HashMap::new();
        let mut streamed: HashMap<u64, Arc<SegmentData>> = HashMap::new();
        for (i, f) in rows.iter_mut().enumerate() {
            let (id, row) = match &f.held {
                Some(Held::Cold(seg, row)) => {
                    let body = match decided.get(&seg.id()) {
                        Some(b) => b.clone(),
                        None => {
                            let b = self.loaded(seg, hint)?;
                            decided.insert(seg.id(), b.clone());
                            b
                        }
                    };
                    if let Some(b) = body {
                        f.held = Some(Held::Segment(b, *row));
                        continue;
                    }
                    // Sparse vectors are not read row by row: their section is streamed whole.
                    if vector && !seg.meta.layout.sparse.is_empty() {
                        let b = match streamed.get(&seg.id()) {
                            Some(b) => Arc::clone(b),
                            None => {
                                let set = need(seg.meta.layout.spaces.len())
                                    .union(seg.meta.layout.sparse_sections());
                                let b = self.stream_sections(seg, set)?;
                                streamed.insert(seg.id(), Arc::clone(&b));
                                b
                            }
                        };
                        f.held = Some(Held::Segment(b, *row));
                        continue;
                    }
                    if !jobs.iter().any(|j| j.id == seg.id()) {
                        jobs.push(RowFetch::new(seg.id(), seg.meta.prefix(), None));
                    }
                    (seg.id(), *row)
                }
                Some(Held::Segment(b, row))
                    if !b.has_all(need(b.space_count()))
                        || (vector && !b.has_all(b.layout.sparse_sections())) =>
                {
                    if !jobs.iter().any(|j| j.id == b.segment_id()) {
                        jobs.push(RowFetch::new(
                            b.segment_id(),
                            b.prefix(),
                            Some(Arc::clone(b)),
                        ));
                    }
                    (b.segment_id(), *row)
                }
                _ => continue,
            };
            if let Some(j) = jobs.iter_mut().find(|j| j.id == id) {
                j.rows.push((i, row));
            }
        }
        if jobs.is_empty() {
            return Ok(());
        }
        let fetched = in_parallel(&jobs, |j| self.fetch_rows(j, payload, vector));
        for (job, held) in jobs.iter().zip(fetched) {
            for ((i, _), h) in job.rows.iter().zip(held?) {
                rows[*i].held = Some(h);
            }
        }
        Ok(())
    }

    /// The rows of one [`RowFetch`], read from the cold object: each vector is one range;
    /// each payload is one range of the payload bytes, located first by a read of its two
    /// offsets unless the partial body holds the offsets. Ranges the cold store coalesces.
    /// The bytes of a single row carry no checksum of their own: each is checked for what it
    /// must be (offsets within the section, a payload that parses as a JSON object).
    fn fetch_rows(&self, job: &RowFetch, payload: bool, vector: bool) -> Result<Vec<Held>> {
        let t = self.cold_tier()?;
        let name = layout::segment(job.id);
        let corrupt = |why: String| {
            Error::corruption(format!("cold segment {}: {why}", t.cold().location(&name)))
        };
        let layout = Layout::decode(&job.prefix).map_err(|e| corrupt(e.to_string()))?;
        if vector && !layout.sparse.is_empty() {
            // A read that returns vectors streams a segment's sparse sections with its body
            // (`Self::load_rows`, the search's sections): a row-by-row read would lose them.
            return Err(Error::new(
                ErrorKind::Internal,
                format!(
                    "segment {}: sparse vectors cannot be read row by row",
                    job.id
                ),
            ));
        }
        let table = &layout.table;
        let spaces = layout.spaces.len();
        let offsets = table[common(Sec::PayloadOffsets)];
        let data = table[common(Sec::PayloadData)];
        // What the streamed body already holds is taken from it; the rest is read.
        let body = job.body.as_deref();
        let all_vectors = (0..spaces).fold(SectionSet::EMPTY, |n, s| n.union(vector_sections(s)));
        let body_vectors = body.filter(|b| b.has_all(all_vectors));
        let body_payloads = body.filter(|b| b.has_all(PAYLOAD_SECTIONS));
        let body_offsets = body.filter(|b| b.has(common(Sec::PayloadOffsets)));
        let read_vectors = vector && body_vectors.is_none();
        let read_payloads = payload && body_payloads.is_none();
        // Without a streamed body (whose sections matched the meta file's checksums), the
        // object's header and section table are read along and compared with the meta file's
        // copy: rows are never read out of an object that is not this segment's file.
        let mut first: Vec<Range<u64>> = Vec::new();
        if body.is_none() {
            first.push(0..layout.prefix_len as u64);
        }
        for (_, row) in &job.rows {
            let row = u64::from(*row);
            if read_vectors {
                // Per space: the row's vector, and its presence word unless every row has one.
                for (si, sp) in layout.spaces.iter().enumerate() {
                    let vec_len = u64::from(sp.dim) * 4;
                    let at = table[space_sec(si, SpaceSec::Vectors)].offset + row * vec_len;
                    first.push(at..at + vec_len);
                    let presence = table[space_sec(si, SpaceSec::Presence)];
                    if presence.len > 0 {
                        let at = presence.offset + row / 64 * 8;
                        first.push(at..at + 8);
                    }
                }
            }
            if read_payloads && body_offsets.is_none() {
                let at = offsets.offset + row * 8;
                first.push(at..at + 16);
            }
        }
        let mut got = self.read_counted(t, &name, &first)?.into_iter();
        if body.is_none() && got.next().as_deref() != Some(&job.prefix[..]) {
            return Err(corrupt(
                "its header or section table differs from the segment's meta file".into(),
            ));
        }
        let mut vecs: Vec<Vec<(u16, Vec<f32>)>> = Vec::with_capacity(job.rows.len());
        let mut spans = Vec::with_capacity(job.rows.len());
        for (_, row) in &job.rows {
            if read_vectors {
                let mut row_vectors = Vec::new();
                for si in 0..spaces {
                    let b = got.next().unwrap_or_default();
                    let present = match table[space_sec(si, SpaceSec::Presence)].len > 0 {
                        true => {
                            let w = got.next().unwrap_or_default();
                            let word = w
                                .get(..8)
                                .and_then(|w| w.try_into().ok())
                                .map_or(0, u64::from_le_bytes);
                            word & (1 << (row % 64)) != 0
                        }
                        false => true,
                    };
                    if present {
                        let v = b
                            .chunks_exact(4)
                            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                            .collect::<Vec<f32>>();
                        row_vectors.push((si as u16, v));
                    }
                }
                vecs.push(row_vectors);
            }
            if read_payloads {
                let (a, b) = match body_offsets {
                    Some(body) => body.payload_span(*row).unwrap_or((1, 0)),
                    None => {
                        let b = got.next().unwrap_or_default();
                        let word = |i: usize| {
                            b.get(i..i + 8)
                                .and_then(|w| w.try_into().ok())
                                .map_or(1, u64::from_le_bytes)
                        };
                        (word(0), word(8))
                    }
                };
                if a > b || b > data.len {
                    return Err(corrupt(format!(
                        "payload offsets {a}..{b} of row {row} lie outside its payload bytes ({})",
                        data.len
                    )));
                }
                spans.push(data.offset + a..data.offset + b);
            }
        }
        let mut payloads = self.read_counted(t, &name, &spans)?.into_iter();
        let mut vecs = vecs.into_iter();
        let mut out = Vec::with_capacity(job.rows.len());
        for (_, row) in &job.rows {
            let p = match (payload, body_payloads) {
                (false, _) => None,
                (true, Some(b)) => Some(
                    b.payload(*row)
                        .ok_or_else(|| {
                            corrupt(format!("the payload offsets of row {row} are out of range"))
                        })?
                        .to_vec(),
                ),
                (true, None) => {
                    let b = payloads.next().unwrap_or_default();
                    if !b.is_empty() && serde_json::from_slice::<crate::types::Payload>(&b).is_err()
                    {
                        return Err(corrupt(format!(
                            "the payload of row {row} is not a JSON object"
                        )));
                    }
                    Some(b)
                }
            };
            let v = match (vector, body_vectors) {
                (false, _) => None,
                (true, Some(b)) => Some(
                    (0..b.space_count())
                        .filter(|s| b.has_vector(*s, *row))
                        .map(|s| (s as u16, b.vector(s, *row).to_vec()))
                        .collect(),
                ),
                (true, None) => vecs.next(),
            }
            .map(|dense| crate::read::RowVectors {
                dense,
                sparse: Vec::new(),
            });
            out.push(Held::Copied {
                payload: p,
                vectors: v,
            });
        }
        Ok(out)
    }

    /// Reads `ranges` of cold object `name`, counting the bytes as streamed; a wrong number
    /// or length of answers is a read error.
    fn read_counted(
        &self,
        t: &strata_tiering::TieredStore,
        name: &str,
        ranges: &[Range<u64>],
    ) -> Result<Vec<Vec<u8>>> {
        // Empty ranges (an empty payload) are answered here: no request for nothing.
        let wanted: Vec<Range<u64>> = ranges.iter().filter(|r| r.start < r.end).cloned().collect();
        if wanted.is_empty() {
            return Ok(vec![Vec::new(); ranges.len()]);
        }
        let got = t
            .read_cold(name, &wanted)
            .map_err(|e| Error::store("reading a cold segment", e))?;
        let whole = got.len() == wanted.len()
            && got
                .iter()
                .zip(&wanted)
                .all(|(b, r)| b.len() as u64 == r.end - r.start);
        if !whole {
            return Err(Error::new(
                ErrorKind::Unavailable,
                format!(
                    "reading {}: the cold store answered {} ranges of other lengths than the {} asked",
                    t.cold().location(name),
                    got.len(),
                    wanted.len()
                ),
            ));
        }
        let bytes: u64 = got.iter().map(|b| b.len() as u64).sum();
        self.mover()
            .counters
            .streamed_bytes
            .fetch_add(bytes, Ordering::Relaxed);
        let mut got = got.into_iter();
        Ok(ranges
            .iter()
            .map(|r| match r.start < r.end {
                true => got.next().unwrap_or_default(),
                false => Vec::new(),
            })
            .collect())
    }

    /// The last cold-store probe's result (probing now if there was none).
    pub(crate) fn cold_probe(&self) -> std::result::Result<(), String> {
        if let Some((_, r)) = &*lock(&self.mover().probe) {
            return r.clone();
        }
        self.probe_cold()
    }

    /// Probes the cold store if the last probe is older than ten mover intervals.
    pub(crate) fn probe_cold_if_due(&self) {
        let now = self.opts().clock.now_millis();
        let every = u64::try_from(self.opts().tiers.mover_interval.as_millis())
            .unwrap_or(u64::MAX)
            .saturating_mul(10);
        let due = lock(&self.mover().probe)
            .as_ref()
            .is_none_or(|(at, _)| now.saturating_sub(*at) >= every);
        if due && self.tiered().is_some() {
            let _ = self.probe_cold();
        }
    }

    /// One HEAD request to the cold store (a missing object is a healthy answer).
    fn probe_cold(&self) -> std::result::Result<(), String> {
        let Some(t) = self.tiered() else {
            return Ok(());
        };
        let r = match t.cold().head(layout::MANIFEST) {
            Ok(_) => Ok(()),
            Err(e) if e.is_not_found() => Ok(()),
            Err(e) => Err(e.to_string()),
        };
        if let Err(why) = &r {
            tracing::warn!(error = %why, "the cold store is unreachable");
        }
        metrics::gauge!("strata_cold_store_up").set(f64::from(u8::from(r.is_ok())));
        *lock(&self.mover().probe) = Some((self.opts().clock.now_millis(), r.clone()));
        r
    }

    /// Counts what one search did with cold segments.
    pub(crate) fn note_cold_search(&self, r: &crate::types::SearchReport) {
        let c = &self.mover().counters;
        for (n, counter, outcome) in [
            (r.cold_searched, &c.cold_searched, "searched"),
            (r.cold_skipped, &c.cold_skipped, "skipped"),
            (r.cold_left_out, &c.cold_left_out, "left_out"),
        ] {
            if n > 0 {
                counter.fetch_add(n, Ordering::Relaxed);
                metrics::counter!("strata_search_cold_segments_total", "outcome" => outcome)
                    .increment(n);
            }
        }
    }

    /// The body of `seg` for compaction: resident, or streamed without its graph (rewriting
    /// a segment is no sign that anyone reads it, so it is not promoted; the output gets a new
    /// graph).
    pub(crate) fn body_for_compaction(&self, seg: &Segment) -> Result<Arc<SegmentData>> {
        match seg.body() {
            Some(d) => {
                // Compaction reads every vector in order: ask for them all at once (the
                // sections are advised random access for searches).
                (0..d.space_count()).for_each(|s| d.prefetch_vectors(s));
                Ok(d)
            }
            None => self.stream_sections(seg, compaction_sections(&seg.meta.layout)),
        }
    }

    fn cold_tier(&self) -> Result<&Arc<strata_tiering::TieredStore>> {
        self.tiered().ok_or_else(|| {
            Error::new(
                ErrorKind::Internal,
                "a segment is cold but no cold tier is configured",
            )
        })
    }

    /// Checks bytes as segment `seg`'s file: full verification, same header as its meta.
    fn check_body(
        seg: &Segment,
        blob: Blob,
        verify: Verify,
    ) -> std::result::Result<SegmentData, String> {
        let d = SegmentData::open(blob, verify).map_err(|e| e.to_string())?;
        if d.file_len() != seg.meta.file_len() || d.prefix() != seg.meta.prefix() {
            return Err(format!(
                "segment {} does not match its meta file (header, section table or length)",
                seg.id()
            ));
        }
        Ok(d)
    }

    /// Reads the sections `need` of a cold segment for one use, keeping nothing locally: one
    /// ranged read per section (the cold store coalesces neighbours), each checked against the
    /// checksum in the section table of the segment's meta file; the id, version and tombstone
    /// sections come from the meta file itself. The body refuses reads of other sections.
    fn stream_sections(&self, seg: &Segment, need: SectionSet) -> Result<Arc<SegmentData>> {
        let t = self.cold_tier()?;
        let name = layout::segment(seg.id());
        let corrupt = |why: String| {
            Error::corruption(format!("cold segment {}: {why}", t.cold().location(&name)))
        };
        let table = seg.meta.table();
        let wanted: Vec<usize> = need
            .minus(ID_SECTIONS)
            .intersect(SectionSet::first(table.len()))
            .iter()
            .collect();
        let ranges: Vec<Range<u64>> = wanted
            .iter()
            .map(|i| {
                let e = table[*i];
                e.offset..e.offset + e.len
            })
            .collect();
        let got = self.read_counted(t, &name, &ranges)?;
        let at = |i: usize| usize::try_from(table[i].offset).unwrap_or(usize::MAX);
        let mut parts: Vec<(usize, &[u8])> = vec![(0, seg.meta.prefix())];
        for s in crate::segment::meta::META_SECTIONS {
            if let Some(b) = seg.meta.copied_section(s) {
                parts.push((at(common(s)), b));
            }
        }
        parts.extend(wanted.iter().zip(&got).map(|(i, b)| (at(*i), b.as_slice())));
        let len = usize::try_from(seg.meta.file_len()).unwrap_or(usize::MAX);
        let blob = Blob::assemble(len, &parts)
            .ok_or_else(|| corrupt("a section lies outside the file".into()))?;
        SegmentData::open_partial(blob, need.union(ID_SECTIONS))
            .map(Arc::new)
            .map_err(|e| corrupt(e.to_string()))
    }

    /// Makes a cold `seg` warm (the caller holds its move lock); returns the body, or `None`
    /// if the segment was replaced (its files are being deleted: never write them back). The
    /// mover's downloads (`throttled`) respect the bandwidth cap; a read's do not wait on it.
    fn promote_locked(&self, seg: &Segment, throttled: bool) -> Result<Option<Arc<SegmentData>>> {
        if let Some(d) = seg.body() {
            return Ok(Some(d));
        }
        if seg.is_retired() {
            return Ok(None);
        }
        let t = self.cold_tier()?;
        let name = layout::segment(seg.id());
        let len = seg.meta.file_len();
        if throttled {
            self.throttle(len);
        }
        match t.promote(&name, len, &|blob| {
            Self::check_body(seg, blob, Verify::Full).map(|_| ())
        }) {
            Ok(()) => {}
            Err(e) if e.is_not_found() && seg.is_retired() => return Ok(None),
            Err(e) => return Err(Error::store("promoting a segment from the cold tier", e)),
        }
        let blob = t
            .local()
            .open(&name)
            .map_err(|e| Error::store("opening a promoted segment", e))?;
        let d = Arc::new(
            Self::check_body(seg, blob, Verify::HeaderOnly)
                .map_err(|why| Error::corruption(format!("promoted segment {name}: {why}")))?,
        );
        seg.set_body(Body::Warm(Arc::clone(&d)), self.opts().clock.now_millis());
        self.mover().counters.moves[1].fetch_add(1, Ordering::Relaxed);
        metrics::counter!("strata_tier_moves_total", "to" => "warm").increment(1);
        Ok(Some(d))
    }

    /// Waits until the bandwidth cap allows downloading `bytes` more.
    fn throttle(&self, bytes: u64) {
        let Some(rate) = self.opts().tiers.mover_bytes_per_sec.filter(|r| *r > 0) else {
            return;
        };
        let start = {
            let mut next = lock(&self.mover().next_download);
            let now = Instant::now();
            let start = next.map_or(now, |n| n.max(now));
            *next = Some(start + Duration::from_secs_f64(bytes as f64 / rate as f64));
            start
        };
        let wait = start.saturating_duration_since(Instant::now());
        if !wait.is_zero() {
            std::thread::sleep(wait);
        }
    }

    /// Moves `seg` to tier `to` (no-op if it is there).
    pub(crate) fn move_segment(&self, seg: &Segment, to: Tier) -> Result<()> {
        let _one = seg.move_lock();
        let from = seg.tier();
        if from == to {
            return Ok(());
        }
        let name = layout::segment(seg.id());
        let now = self.opts().clock.now_millis();
        match (from, to) {
            (_, Tier::Cold) => {
                self.cold_tier()?
                    .evict(&name, seg.meta.file_len())
                    .map_err(|e| Error::store("evicting a segment to the cold tier", e))?;
                seg.set_body(Body::Cold, now);
            }
            (Tier::Cold, Tier::Warm) => {
                self.promote_locked(seg, true)?;
                return Ok(()); // counted there (nothing to do if it was replaced meanwhile)
            }
            (_, Tier::Hot) => {
                let warm = match seg.body() {
                    Some(d) => d,
                    None => match self.promote_locked(seg, true)? {
                        Some(d) => d,
                        None => return Ok(()),
                    },
                };
                // One pass over the whole file: ask for all of it at once.
                (0..warm.space_count()).for_each(|s| warm.prefetch_vectors(s));
                let hot =
                    Self::check_body(seg, Blob::from_bytes(warm.bytes_all()), Verify::HeaderOnly)
                        .map_err(|why| Error::corruption(format!("segment {name}: {why}")))?;
                seg.set_body(Body::Hot(Arc::new(hot)), now);
            }
            (Tier::Hot, Tier::Warm) => {
                let blob = self
                    .blobs()
                    .open(&name)
                    .map_err(|e| Error::store("mapping a segment", e))?;
                let warm = Self::check_body(seg, blob, Verify::HeaderOnly)
                    .map_err(|why| Error::corruption(format!("segment {name}: {why}")))?;
                seg.set_body(Body::Warm(Arc::new(warm)), now);
            }
            (Tier::Warm, Tier::Warm) => {}
        }
        self.mover().counters.moves[tier_index(to)].fetch_add(1, Ordering::Relaxed);
        metrics::counter!("strata_tier_moves_total", "to" => tier_name(to)).increment(1);
        Ok(())
    }

    /// Moves actor segment `seg` to tier `to` (no-op if it is there or was replaced): hot is
    /// a checked copy of the file in RAM, warm the local file, cold only the object store.
    pub(crate) fn move_actor_segment(&self, seg: &ActorSegment, to: Tier) -> Result<()> {
        let _one = seg.move_lock();
        let from = seg.tier();
        if from == to || seg.is_retired() {
            return Ok(());
        }
        let name = layout::segment(seg.id);
        let check = |b: &[u8]| {
            verify_file(b, &seg.meta)
                .map_err(|why| Error::corruption(format!("actor segment {name}: {why}")))
        };
        if from == Tier::Cold {
            let t = self.cold_tier()?;
            self.throttle(seg.file_len);
            t.promote(&name, seg.file_len, &|blob| {
                verify_file(blob.as_bytes(), &seg.meta)
            })
            .map_err(|e| Error::store("promoting an actor segment from the cold tier", e))?;
        }
        let now = self.opts().clock.now_millis();
        match to {
            Tier::Cold => {
                self.cold_tier()?
                    .evict(&name, seg.file_len)
                    .map_err(|e| Error::store("evicting an actor segment to the cold tier", e))?;
                seg.set_body(ActorBody::Cold, now);
            }
            Tier::Warm => seg.set_body(ActorBody::Warm, now),
            Tier::Hot => {
                let blob = self
                    .blobs()
                    .open(&name)
                    .map_err(|e| Error::store("reading an actor segment into RAM", e))?;
                check(blob.as_bytes())?;
                let copy = Blob::from_bytes(blob.as_bytes());
                seg.set_body(ActorBody::Hot(Arc::new(copy)), now);
            }
        }
        self.mover().counters.moves[tier_index(to)].fetch_add(1, Ordering::Relaxed);
        metrics::counter!("strata_tier_moves_total", "to" => tier_name(to)).increment(1);
        Ok(())
    }

    /// One pass of the mover: plan, then apply demotions and promotions with bounded
    /// concurrency. True when a move was applied. Failed moves are logged, counted and backed
    /// off per segment; the pass itself fails only if every move failed.
    pub(crate) fn run_mover(&self) -> Result<bool> {
        let now = self.opts().clock.now_millis();
        let budgets = self.budgets();
        let states = self.segment_states(now);
        let list: Vec<SegmentState> = states.iter().map(|(_, s)| s.clone()).collect();
        let plan = policy::plan(&list, &budgets, now);
        // A failed move whose retry time has come but that the plan no longer wants (others
        // made room meanwhile) is no longer failing.
        lock(&self.mover().backoff)
            .retain(|id, b| b.1 > now || plan.moves.iter().any(|m| m.id == *id));
        metrics::gauge!("strata_tier_pinned_over_budget_bytes").set(plan.pinned_over_budget as f64);
        if plan.moves.is_empty() {
            return self.failing_moves(&states).map(|()| false);
        }
        let by_id: HashMap<u64, &Unit> = states.iter().map(|(s, st)| (st.id, s)).collect();
        let (demote, promote): (Vec<_>, Vec<_>) = plan
            .moves
            .iter()
            .filter_map(|m| {
                by_id
                    .get(&m.id)
                    .map(|s| ((*s).clone(), m.to, m.to > m.from))
            })
            .partition(|(_, _, down)| *down);
        let mut applied = false;
        for (i, batch) in [demote, promote].into_iter().enumerate() {
            let mut demotions_failed = false;
            if i == 1
                && lock(&self.mover().backoff)
                    .values()
                    .any(|b| b.1 > now && b.3)
            {
                // A demotion failed: promoting now could break the budget the plan assumed.
                break;
            }
            for (id, down, res) in self.apply_moves(&batch) {
                match res {
                    Ok(()) => {
                        applied = true;
                        lock(&self.mover().backoff).remove(&id);
                    }
                    Err(e) => {
                        demotions_failed |= down;
                        self.mover()
                            .counters
                            .move_failures
                            .fetch_add(1, Ordering::Relaxed);
                        metrics::counter!("strata_tier_move_failures_total").increment(1);
                        let mut b = lock(&self.mover().backoff);
                        let failures = b.get(&id).map_or(0, |x| x.0) + 1;
                        let base = u64::try_from(self.opts().tiers.mover_interval.as_millis())
                            .unwrap_or(1)
                            .max(1);
                        let max = u64::try_from(self.opts().tiers.mover_backoff_max.as_millis())
                            .unwrap_or(u64::MAX);
                        let delay = base.saturating_mul(1 << failures.min(20)).min(max);
                        tracing::warn!(segment = id, failures, retry_in_ms = delay, error = %e, "tier move failed; will retry");
                        b.insert(
                            id,
                            (failures, now.saturating_add(delay), e.to_string(), down),
                        );
                    }
                }
            }
            if demotions_failed {
                break;
            }
        }
        self.failing_moves(&states).map(|()| applied)
    }

    /// Forgets backoff of segments that no longer exist; an error while any move is failing
    /// (so readiness shows it until the move succeeds).
    fn failing_moves(&self, states: &[(Unit, SegmentState)]) -> Result<()> {
        let mut b = lock(&self.mover().backoff);
        b.retain(|id, _| states.iter().any(|(_, s)| s.id == *id));
        match b.iter().next() {
            None => Ok(()),
            Some((id, (failures, _, why, _))) => Err(Error::new(
                ErrorKind::Unavailable,
                format!(
                    "{} segment move(s) failing, e.g. segment {id} after {failures} tries: {why}",
                    b.len()
                ),
            )),
        }
    }

    /// Applies moves by up to `mover_concurrency` threads.
    fn apply_moves(&self, moves: &[(Unit, Tier, bool)]) -> Vec<(u64, bool, Result<()>)> {
        let next = AtomicUsize::new(0);
        let out = Mutex::new(Vec::with_capacity(moves.len()));
        let workers = self
            .opts()
            .tiers
            .mover_concurrency
            .clamp(1, 64)
            .min(moves.len());
        std::thread::scope(|scope| {
            for _ in 0..workers {
                scope.spawn(|| {
                    while let Some((seg, to, down)) =
                        moves.get(next.fetch_add(1, Ordering::Relaxed))
                    {
                        if self.is_shut_down() {
                            return;
                        }
                        let res = match seg {
                            Unit::Vector(s) => self.move_segment(s, *to),
                            Unit::Actor(s) => self.move_actor_segment(s, *to),
                        };
                        lock(&out).push((seg.id(), *down, res));
                    }
                });
            }
        });
        out.into_inner()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}
