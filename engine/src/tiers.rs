//! Residency: where each sealed segment's body lives, how a read gets a cold one, and the
//! mover that applies the tiering policy's plans.
//!
//! ```text
//! read needs a body ─▶ Inner::resident ─ touch access ─▶ hot/warm: the body (a hit)
//!                                         └─ cold: policy::on_cold_read
//!                                              ├─ Promote: [move lock] parallel ranged GETs
//!                                              │   ─▶ written into a temp file, fsync
//!                                              │   ─▶ verify (full, on its mapping) ─▶ rename
//!                                              │   ─▶ map ─▶ swap body to Warm (single flight)
//!                                              └─ Stream: ranged GET ─▶ verify ─▶ a body for
//!                                                  this read only (nothing cached)
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
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use strata_tiering::policy::{self, Budgets, ColdRead, Hint, SegmentState, Tier};
use strata_tiering::{Blob, layout};

use crate::engine::{Inner, lock};
use crate::error::{Error, ErrorKind, Result};
use crate::segment::format::DATA_START;
use crate::segment::{Body, Segment, SegmentData, Verify};

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
    /// Moves applied, by target tier (hot, warm, cold), and moves that failed.
    pub(crate) moves: [AtomicU64; 3],
    pub(crate) move_failures: AtomicU64,
    /// Cold segments searches read, skipped by their summaries, and left out (`cold: skip`).
    pub(crate) cold_searched: AtomicU64,
    pub(crate) cold_skipped: AtomicU64,
    pub(crate) cold_left_out: AtomicU64,
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

fn tier_name(t: Tier) -> &'static str {
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

    /// Every persisted segment with its policy state.
    fn segment_states(&self, now: u64) -> Vec<(Arc<Segment>, SegmentState)> {
        let backoff = lock(&self.mover().backoff).clone();
        let mut out = Vec::new();
        for c in self.collections() {
            for s in c.segments().iter().filter(|s| s.is_persisted()) {
                out.push((Arc::clone(s), self.state_of(s, c.hint(), now, &backoff)));
            }
        }
        out
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

    /// The body of `seg` for a read: resident, or loaded from the cold tier (promoted or
    /// streamed, as the policy decides). Counts the read for the policy.
    pub(crate) fn resident(&self, seg: &Arc<Segment>, hint: Hint) -> Result<Arc<SegmentData>> {
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
            return Ok(d);
        }
        counters.misses.fetch_add(1, Ordering::Relaxed);
        metrics::counter!("strata_tier_misses_total").increment(1);
        if seg.is_moving() {
            // A promotion (or another move) is running: wait for it rather than download the
            // same file again.
            let _wait = seg.move_lock();
            if let Some(d) = seg.body() {
                return Ok(d);
            }
        }
        let usage = self.tier_usage();
        let local = u128::from(usage.bytes[0]) + u128::from(usage.bytes[1]);
        let state = self.state_of(seg, hint, now, &HashMap::new());
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
                    return Ok(d);
                }
                Ok(None) => {} // retired meanwhile: stream
                Err(e) => {
                    tracing::warn!(segment = seg.id(), error = %e, "promotion failed; streaming this read");
                }
            }
        }
        counters.streamed.fetch_add(1, Ordering::Relaxed);
        metrics::counter!("strata_tier_cold_reads_total", "how" => "stream").increment(1);
        self.stream(seg)
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

    /// The body of `seg` for compaction: resident, or streamed (rewriting a segment is no sign
    /// that anyone reads it, so it is not promoted).
    pub(crate) fn body_for_compaction(&self, seg: &Segment) -> Result<Arc<SegmentData>> {
        match seg.body() {
            Some(d) => Ok(d),
            None => self.stream(seg),
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
        if d.file_len() != seg.meta.file_len()
            || d.bytes_all().get(..DATA_START) != Some(seg.meta.prefix())
        {
            return Err(format!(
                "segment {} does not match its meta file (header, section table or length)",
                seg.id()
            ));
        }
        Ok(d)
    }

    /// Reads the whole of a cold segment for one use, keeping nothing locally.
    fn stream(&self, seg: &Segment) -> Result<Arc<SegmentData>> {
        let t = self.cold_tier()?;
        let name = layout::segment(seg.id());
        let len = seg.meta.file_len();
        let mut got = t
            .read_cold(&name, std::slice::from_ref(&(0..len)))
            .map_err(|e| Error::store("reading a cold segment", e))?;
        let bytes = got.pop().unwrap_or_default();
        Self::check_body(seg, Blob::from_bytes(&bytes), Verify::Full)
            .map(Arc::new)
            .map_err(|why| {
                Error::corruption(format!("cold segment {}: {why}", t.cold().location(&name)))
            })
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
        let by_id: HashMap<u64, &Arc<Segment>> = states.iter().map(|(s, st)| (st.id, s)).collect();
        let (demote, promote): (Vec<_>, Vec<_>) = plan
            .moves
            .iter()
            .filter_map(|m| {
                by_id
                    .get(&m.id)
                    .map(|s| (Arc::clone(s), m.to, m.to > m.from))
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
    fn failing_moves(&self, states: &[(Arc<Segment>, SegmentState)]) -> Result<()> {
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
    fn apply_moves(&self, moves: &[(Arc<Segment>, Tier, bool)]) -> Vec<(u64, bool, Result<()>)> {
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
                        let res = self.move_segment(seg, *to);
                        lock(&out).push((seg.id(), *down, res));
                    }
                });
            }
        });
        out.into_inner()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}
