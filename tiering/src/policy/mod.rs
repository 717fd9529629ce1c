//! Tiering policy: decides which segments move between [`Tier::Hot`],
//! [`Tier::Warm`] and [`Tier::Cold`].
//!
//! [`plan`] is a pure function: no I/O, no clock reads, no randomness. The
//! same input yields the same [`Plan`], moves and their order included, and
//! the order of the input slice does not matter (ids are expected to be
//! unique; segments sharing an id are never moved, see [`plan`]).
//!
//! Usage accounting:
//! - *hot usage*: bytes of Hot segments, bounded by [`Budgets::hot_bytes`];
//! - *local usage*: bytes of segments with a full local file (Hot and Warm),
//!   bounded by [`Budgets::warm_bytes`].
//!
//! Rules, referred to by number in the code (details on [`plan`]):
//! 1. [`Hint::PinHot`]: target Hot, as far as the hot budget allows; pinned
//!    segments are never demoted; pins that do not fit are reported.
//! 2. [`Hint::Offload`]: target Cold, at once; never promoted.
//! 3. [`Hint::Warm`]: at least Warm as far as the local budget allows; may
//!    become Hot by rule 4.
//! 4. [`Hint::Auto`]: placement by decayed access frequency, with watermark
//!    hysteresis, an admission threshold, a displacement margin and a
//!    minimum residence time.
//! 5. A segment with a move in flight ([`SegmentState::moving`]) counts in
//!    its current tier and is never moved.
//! 6. A segment appears at most once in a plan. The moves list every
//!    demotion first, then every promotion, each group in decision order;
//!    each promotion was admitted against a usage that already included all
//!    earlier decisions, so applying the moves in order never raises a usage
//!    above its high-watermark limit (hence never above 100% of the budget).
//! 7. Each move's `from` is the segment's current tier and differs from `to`.
//!
//! Re-planning the applied result at the same `now` with
//! `min_residence > 0` yields an empty plan.

use std::cmp::Ordering;

/// Milliseconds on the caller's clock.
pub type Millis = u64;

/// A candidate must have at least this multiple of a resident's decayed
/// frequency (and rank above it) to displace it (rule 4).
pub const DISPLACE_MARGIN: f64 = 2.0;

/// Storage tier, ordered from fastest to slowest: `Hot < Warm < Cold`.
/// A move to a greater tier is a demotion, to a lesser tier a promotion.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Tier {
    /// Bytes pinned in process RAM; the local file is kept too.
    Hot,
    /// Whole file on local SSD, memory-mapped.
    Warm,
    /// Only in the object store, plus a small local metadata file.
    Cold,
}

impl Tier {
    /// Whether the segment has a full local file in this tier.
    fn is_local(self) -> bool {
        self != Tier::Cold
    }

    fn slot(self) -> usize {
        match self {
            Tier::Hot => 0,
            Tier::Warm => 1,
            Tier::Cold => 2,
        }
    }
}

/// Per-collection placement hint.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Hint {
    /// Placement follows access frequency (rule 4).
    #[default]
    Auto,
    /// Keep in Hot as far as the hot budget allows (rule 1).
    PinHot,
    /// Keep at least Warm as far as the warm budget allows (rule 3).
    Warm,
    /// Keep in Cold only (rule 2).
    Offload,
}

/// Access statistics of one segment: an exponentially decayed access count
/// and the time of the last access.
///
/// Each access adds 1; the count halves every `half_life` milliseconds.
/// The caller keeps one per segment, calls [`Access::touch`] on every access
/// and passes the same `half_life` as [`Budgets::half_life`].
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Access {
    /// Decayed count as of `last`.
    count: f64,
    last: Option<Millis>,
}

impl Access {
    /// No access yet: frequency 0, no last access.
    pub const fn new() -> Self {
        Self {
            count: 0.0,
            last: None,
        }
    }

    /// Restores persisted statistics: `count` is the decayed count as of
    /// `last`. A negative or non-finite count is taken as 0; with no `last`
    /// the count is 0.
    pub fn from_parts(count: f64, last: Option<Millis>) -> Self {
        let count = if last.is_some() && count.is_finite() && count > 0.0 {
            count
        } else {
            0.0
        };
        Self { count, last }
    }

    /// Records one access at `now`. An access older than the last one
    /// (clock skew) counts as happening at the last access time.
    pub fn touch(&mut self, now: Millis, half_life: Millis) {
        let at = self.last.map_or(now, |t| t.max(now));
        self.count = self.frequency(at, half_life) + 1.0;
        self.last = Some(at);
    }

    /// Decayed frequency at `now`: `count * 2^(-(now - last) / half_life)`.
    /// A `now` before the last access gives the undecayed count;
    /// `half_life == 0` means any elapsed time decays the count to 0.
    pub fn frequency(&self, now: Millis, half_life: Millis) -> f64 {
        match self.last {
            None => 0.0,
            Some(t) => self.count * decay(now.saturating_sub(t), half_life),
        }
    }

    /// Time of the last access, if any.
    pub fn last(&self) -> Option<Millis> {
        self.last
    }
}

/// Factor `2^(-elapsed / half_life)`.
fn decay(elapsed: Millis, half_life: Millis) -> f64 {
    if elapsed == 0 {
        1.0
    } else if half_life == 0 {
        0.0
    } else {
        (-(elapsed as f64) / half_life as f64).exp2()
    }
}

/// Placement-relevant state of one segment.
#[derive(Clone, Debug, PartialEq)]
pub struct SegmentState {
    /// Segment id; expected to be unique within one call.
    pub id: u64,
    /// Size of the segment file.
    pub bytes: u64,
    /// Current tier.
    pub tier: Tier,
    /// When the segment entered its current tier.
    pub since: Millis,
    /// Access statistics.
    pub access: Access,
    /// Hint of the segment's collection.
    pub hint: Hint,
    /// A move is in flight: the plan never moves it, and its bytes count in
    /// its current tier.
    pub moving: bool,
}

/// Budgets and tuning of the policy.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Budgets {
    /// Bound on bytes of Hot segments.
    pub hot_bytes: u64,
    /// Bound on bytes of segments with a full local file (Hot and Warm).
    pub warm_bytes: u64,
    /// A tier is trimmed only when its usage exceeds this fraction of its
    /// budget; promotions fill a tier up to this fraction. E.g. 0.95.
    pub high_watermark: f64,
    /// A trim goes down to this fraction of the budget. E.g. 0.80.
    pub low_watermark: f64,
    /// Auto rules never move a segment that entered its tier less than this
    /// long ago.
    pub min_residence: Millis,
    /// Half-life of the access frequency decay.
    pub half_life: Millis,
    /// Minimum decayed frequency for an Auto promotion (scan resistance).
    pub admit_frequency: f64,
}

impl Budgets {
    /// Checks the budgets; the error names the offending field.
    ///
    /// Watermarks must lie in (0, 1] with `low_watermark <= high_watermark`,
    /// `warm_bytes >= hot_bytes` (Hot bytes also count as local; zero budgets
    /// are allowed), `half_life > 0` and `admit_frequency` finite and >= 0.
    pub fn validate(&self) -> Result<(), String> {
        let unit = |w: f64| w > 0.0 && w <= 1.0;
        if !unit(self.high_watermark) {
            return Err(format!(
                "high_watermark must be in (0, 1], got {}",
                self.high_watermark
            ));
        }
        if !unit(self.low_watermark) {
            return Err(format!(
                "low_watermark must be in (0, 1], got {}",
                self.low_watermark
            ));
        }
        if self.low_watermark > self.high_watermark {
            return Err(format!(
                "low_watermark ({}) must not exceed high_watermark ({})",
                self.low_watermark, self.high_watermark
            ));
        }
        if self.warm_bytes < self.hot_bytes {
            return Err(format!(
                "warm_bytes ({}) must be >= hot_bytes ({})",
                self.warm_bytes, self.hot_bytes
            ));
        }
        if self.half_life == 0 {
            return Err("half_life must be > 0".to_owned());
        }
        if !(self.admit_frequency.is_finite() && self.admit_frequency >= 0.0) {
            return Err(format!(
                "admit_frequency must be finite and >= 0, got {}",
                self.admit_frequency
            ));
        }
        Ok(())
    }
}

/// Why a move was planned.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Reason {
    /// A [`Hint::PinHot`] segment goes to Hot.
    Pinned,
    /// A Cold [`Hint::Warm`] segment goes to Warm.
    PreWarm,
    /// A [`Hint::Offload`] segment goes to Cold.
    Offload,
    /// Trim of a tier above its high watermark.
    Evict,
    /// Promotion earned by access frequency.
    Promote,
    /// Displaced to make room for a pinned or a hotter segment.
    Demote,
}

/// One planned tier change.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Move {
    /// Segment id.
    pub id: u64,
    /// The segment's current tier.
    pub from: Tier,
    /// Target tier; differs from `from`.
    pub to: Tier,
    /// Why.
    pub reason: Reason,
}

/// Result of [`plan`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Plan {
    /// Moves to apply in this order: demotions first, then promotions.
    pub moves: Vec<Move>,
    /// Hot usage once every move is applied (in-flight segments counted in
    /// their current tier).
    pub hot_after: u64,
    /// Local (Hot + Warm) usage once every move is applied.
    pub local_after: u64,
    /// Bytes of pinned segments that do not fit: pinned segments left out of
    /// Hot by this plan (not counting those with a move in flight), plus the
    /// amount by which pinned Hot bytes exceed `hot_bytes`. Reported only;
    /// pinned data is never demoted to reduce it.
    pub pinned_over_budget: u64,
}

/// What to do for a query that needs a Cold segment now.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ColdRead {
    /// Read the needed byte ranges from the object store; placement unchanged.
    Stream,
    /// Fetch the whole file and make the segment Warm.
    Promote,
}

/// Decides how to serve a read of a Cold segment.
///
/// The caller should [`Access::touch`] `seg` for this read first. Returns
/// [`ColdRead::Promote`] only if all hold:
/// - `seg` is Cold, not moving, not [`Hint::Offload`], and entered Cold at
///   least `min_residence` ago (no flapping);
/// - it would be admitted: it fits under the local high watermark without
///   evicting anything, or its frequency is at least `admit_frequency` and
///   it fits under 100% of `warm_bytes`. In the latter case the next [`plan`]
///   trims local usage back to the low watermark if needed; the band between
///   the high watermark and 100% absorbs such on-demand promotions.
///
/// Local usage is computed from `segments` (which may include `seg`).
pub fn on_cold_read(
    seg: &SegmentState,
    segments: &[SegmentState],
    budgets: &Budgets,
    now: Millis,
) -> ColdRead {
    let local: u128 = segments
        .iter()
        .filter(|s| s.tier.is_local())
        .map(|s| u128::from(s.bytes))
        .sum();
    on_cold_read_with_local(seg, local, budgets, now)
}

/// [`on_cold_read`] given the local usage (bytes of Hot and Warm segments) instead of every
/// segment's state.
pub fn on_cold_read_with_local(
    seg: &SegmentState,
    local: u128,
    budgets: &Budgets,
    now: Millis,
) -> ColdRead {
    if seg.tier != Tier::Cold
        || seg.moving
        || seg.hint == Hint::Offload
        || now.saturating_sub(seg.since) < budgets.min_residence
    {
        return ColdRead::Stream;
    }
    let after = local + u128::from(seg.bytes);
    let fits_high = after <= limit(budgets.warm_bytes, budgets.high_watermark);
    let frequent = seg.access.frequency(now, budgets.half_life) >= budgets.admit_frequency;
    if fits_high || (frequent && after <= u128::from(budgets.warm_bytes)) {
        ColdRead::Promote
    } else {
        ColdRead::Stream
    }
}

/// Plans tier moves for `segments` at time `now`.
///
/// `budgets` should pass [`Budgets::validate`]; with invalid budgets the
/// result is still deterministic and the call does not panic, but the rules
/// below are not guaranteed. Segments that share an id with another segment
/// are never moved (a move names its segment by id).
///
/// Ranking (used everywhere an order is needed): decayed frequency at `now`,
/// descending; ties by last access, more recent first; then by id ascending.
///
/// Phases, in order (each names the rule it implements):
/// 1. **Offload** (rule 2): every non-Cold [`Hint::Offload`] segment goes to
///    Cold, regardless of `min_residence`. Offload segments are never
///    promoted.
/// 2. **Local trim** (rule 4, hysteresis): only if local usage exceeds
///    `high_watermark * warm_bytes`. Warm segments go to Cold, lowest-ranked
///    first ([`Hint::Auto`] before [`Hint::Warm`]) until usage is at most
///    `low_watermark * warm_bytes`; if Warm segments do not suffice, Hot
///    segments go straight to Cold, but only until usage is back under the
///    high watermark.
/// 3. **Hot trim** (rule 4, hysteresis): only if hot usage exceeds
///    `high_watermark * hot_bytes`; Hot segments go to Warm, lowest-ranked
///    first, until usage is at most `low_watermark * hot_bytes`.
/// 4. **Pins** (rule 1): non-Hot [`Hint::PinHot`] segments, best-ranked
///    first, go straight to Hot (also from Cold) if hot usage (which already
///    counts Hot pins and in-flight segments) stays under the hot high
///    watermark, and for a Cold one local usage under the local high
///    watermark. To make room a pin may displace unpinned segments,
///    all-or-nothing, lowest-ranked first (Hot ones to Warm; for local room
///    Warm ones to Cold, then segments this plan already moved from Hot to
///    Warm on to Cold within the same move, then Hot ones to Cold),
///    **ignoring their `min_residence`: pins win**. A pin that cannot fit
///    even after displacing every unpinned segment is left where it is and
///    reported in [`Plan::pinned_over_budget`]. Pinned segments are never
///    demoted, whatever the budget, so a displaced segment cannot take the
///    room back.
/// 5. **Promotions**, repeated until a pass moves nothing:
///    - PreWarm (rule 3): Cold [`Hint::Warm`] segments, best-ranked first, go
///      to Warm if they fit under the local high watermark, whatever their
///      frequency;
///    - Warm to Hot, then Cold to Warm (rule 4): a candidate needs frequency
///      at least `admit_frequency`, and either fits under the target's high
///      watermark, or displaces lowest-ranked residents (Hot to Warm; for
///      local room Warm to Cold, then Hot to Cold), all-or-nothing, each of
///      which it outranks with at least [`DISPLACE_MARGIN`] times its
///      frequency. Promotion is one tier per plan.
///
/// Phases 2, 3 and 5 (the Auto rules) only move or displace [`Hint::Auto`]
/// and [`Hint::Warm`] segments that entered their tier at least
/// `min_residence` ago (no flapping); the frequency threshold does not apply
/// to evictions. Trims run before pins, so pins first use the room a trim
/// freed and displace only what is still needed.
pub fn plan(segments: &[SegmentState], budgets: &Budgets, now: Millis) -> Plan {
    let mut p = Planner::new(segments, budgets, now);
    p.offload();
    p.trim_local();
    p.trim_hot();
    p.pins();
    p.promote();
    p.finish()
}

/// `budget * watermark`, rounded down, clamped to `[0, budget]`.
fn limit(budget: u64, watermark: f64) -> u128 {
    let x = (budget as f64 * watermark).floor();
    // `as` saturates; NaN becomes 0.
    (x as u128).min(u128::from(budget))
}

fn saturate(x: u128) -> u64 {
    u64::try_from(x).unwrap_or(u64::MAX)
}

/// Hints whose segments Auto rules may move, in local-eviction order.
const AUTO_CLASSES: [Hint; 2] = [Hint::Auto, Hint::Warm];

/// Planner view of one segment.
#[derive(Debug)]
struct Entry {
    id: u64,
    bytes: u128,
    /// Tier before the plan.
    tier: Tier,
    hint: Hint,
    freq: f64,
    last: Option<Millis>,
    moving: bool,
    /// Not moving and its id is unique.
    movable: bool,
    /// Entered its tier less than `min_residence` ago.
    young: bool,
}

fn rank_cmp(a: &Entry, b: &Entry) -> Ordering {
    b.freq
        .total_cmp(&a.freq)
        .then(b.last.cmp(&a.last))
        .then(a.id.cmp(&b.id))
}

/// A victim and the tier it goes to.
type Victims = Vec<(usize, Tier)>;

#[derive(Debug)]
struct Planner<'a> {
    budgets: &'a Budgets,
    /// Entries in rank order: index 0 is the best-ranked.
    e: Vec<Entry>,
    /// Entry indices per tier before the plan, in rank order.
    by_tier: [Vec<usize>; 3],
    /// Tier after the moves decided so far.
    after: Vec<Tier>,
    moved: Vec<bool>,
    /// Index in `demotions` of the entry's move, if demoted.
    demoted_at: Vec<Option<usize>>,
    hot: u128,
    local: u128,
    hot_high: u128,
    hot_low: u128,
    local_high: u128,
    local_low: u128,
    demotions: Vec<Move>,
    promotions: Vec<Move>,
}

impl<'a> Planner<'a> {
    fn new(segments: &[SegmentState], budgets: &'a Budgets, now: Millis) -> Self {
        let mut ids: Vec<u64> = segments.iter().map(|s| s.id).collect();
        ids.sort_unstable();
        let duplicate = |id: u64| {
            let first = ids.partition_point(|&x| x < id);
            ids.get(first + 1) == Some(&id)
        };
        let mut e: Vec<Entry> = segments
            .iter()
            .map(|s| Entry {
                id: s.id,
                bytes: u128::from(s.bytes),
                tier: s.tier,
                hint: s.hint,
                freq: s.access.frequency(now, budgets.half_life),
                last: s.access.last(),
                moving: s.moving,
                movable: !s.moving && !duplicate(s.id),
                young: now.saturating_sub(s.since) < budgets.min_residence,
            })
            .collect();
        // Stable sort: only entries sharing an id (never moved) can tie.
        e.sort_by(rank_cmp);
        let mut by_tier: [Vec<usize>; 3] = Default::default();
        let (mut hot, mut local) = (0, 0);
        for (i, x) in e.iter().enumerate() {
            by_tier[x.tier.slot()].push(i);
            if x.tier == Tier::Hot {
                hot += x.bytes;
            }
            if x.tier.is_local() {
                local += x.bytes;
            }
        }
        Self {
            budgets,
            after: e.iter().map(|x| x.tier).collect(),
            moved: vec![false; e.len()],
            demoted_at: vec![None; e.len()],
            e,
            by_tier,
            hot,
            local,
            hot_high: limit(budgets.hot_bytes, budgets.high_watermark),
            hot_low: limit(budgets.hot_bytes, budgets.low_watermark),
            local_high: limit(budgets.warm_bytes, budgets.high_watermark),
            local_low: limit(budgets.warm_bytes, budgets.low_watermark),
            demotions: Vec::new(),
            promotions: Vec::new(),
        }
    }

    /// Not yet moved by this plan and movable at all.
    fn free(&self, i: usize) -> bool {
        self.e[i].movable && !self.moved[i]
    }

    /// Movable by Auto rules: free, old enough, Auto or Warm hint.
    fn auto(&self, i: usize) -> bool {
        let x = &self.e[i];
        self.free(i) && !x.young && AUTO_CLASSES.contains(&x.hint)
    }

    /// Displaceable by a pin: free and not pinned (any age).
    fn displaceable_by_pin(&self, i: usize) -> bool {
        self.free(i) && self.e[i].hint != Hint::PinHot
    }

    /// Whether candidate `c` may displace resident `v` (rule 4).
    fn beats(&self, c: usize, v: usize) -> bool {
        c < v && self.e[c].freq >= DISPLACE_MARGIN * self.e[v].freq
    }

    fn apply(&mut self, i: usize, to: Tier, reason: Reason) {
        let x = &self.e[i];
        debug_assert!(self.free(i) && x.tier != to);
        let (from, bytes) = (x.tier, x.bytes);
        if from == Tier::Hot {
            self.hot -= bytes;
        }
        if to == Tier::Hot {
            self.hot += bytes;
        }
        if from.is_local() {
            self.local -= bytes;
        }
        if to.is_local() {
            self.local += bytes;
        }
        self.moved[i] = true;
        self.after[i] = to;
        let m = Move {
            id: x.id,
            from,
            to,
            reason,
        };
        if to > from {
            self.demoted_at[i] = Some(self.demotions.len());
            self.demotions.push(m);
        } else {
            self.promotions.push(m);
        }
    }

    /// Turns this plan's demotion of `i` into one to the lower tier `to`,
    /// now for a pin's sake ([`Reason::Demote`]). Keeps each segment in at
    /// most one move while letting pins use every unpinned local segment,
    /// as a later plan could.
    fn extend(&mut self, i: usize, to: Tier) {
        let Some(k) = self.demoted_at[i] else {
            debug_assert!(false, "extend of a segment not demoted");
            return;
        };
        let m = &mut self.demotions[k];
        debug_assert!(m.to == Tier::Warm && to == Tier::Cold);
        m.to = to;
        m.reason = Reason::Demote;
        self.after[i] = to;
        self.local -= self.e[i].bytes;
    }

    /// Picks residents to demote so that `need_hot` bytes leave Hot and
    /// `need_local` bytes leave local storage; `None` if impossible.
    ///
    /// Hot room: Hot residents, lowest-ranked first, go to Warm. Local room:
    /// Warm residents go to Cold (Auto before Warm hint, lowest-ranked
    /// first); then, if `extend`, segments this plan already demoted from
    /// Hot to Warm go on to Cold; then Hot victims already picked go to Cold
    /// instead of Warm; then further Hot residents go to Cold. Residents
    /// failing `eligible` are skipped; the scan of a list stops at the first
    /// eligible resident failing `beats` (the ones above it rank higher).
    fn victims(
        &self,
        need_hot: u128,
        need_local: u128,
        extend: bool,
        eligible: &dyn Fn(usize) -> bool,
        beats: &dyn Fn(usize) -> bool,
    ) -> Option<Victims> {
        let mut picks: Victims = Vec::new();
        let mut freed = 0;
        for &v in self.by_tier[Tier::Hot.slot()].iter().rev() {
            if freed >= need_hot {
                break;
            }
            if !eligible(v) {
                continue;
            }
            if !beats(v) {
                break;
            }
            picks.push((v, Tier::Warm));
            freed += self.e[v].bytes;
        }
        if freed < need_hot {
            return None;
        }
        let mut freed = 0;
        for class in AUTO_CLASSES {
            for &v in self.by_tier[Tier::Warm.slot()].iter().rev() {
                if freed >= need_local {
                    break;
                }
                if self.e[v].hint != class || !eligible(v) {
                    continue;
                }
                if !beats(v) {
                    break;
                }
                picks.push((v, Tier::Cold));
                freed += self.e[v].bytes;
            }
        }
        if extend {
            for &v in self.by_tier[Tier::Hot.slot()].iter().rev() {
                if freed >= need_local {
                    break;
                }
                if self.moved[v] && self.after[v] == Tier::Warm {
                    picks.push((v, Tier::Cold));
                    freed += self.e[v].bytes;
                }
            }
        }
        for p in picks.iter_mut() {
            if freed >= need_local {
                break;
            }
            if p.1 == Tier::Warm && !self.moved[p.0] {
                p.1 = Tier::Cold;
                freed += self.e[p.0].bytes;
            }
        }
        for class in AUTO_CLASSES {
            for &v in self.by_tier[Tier::Hot.slot()].iter().rev() {
                if freed >= need_local {
                    break;
                }
                if self.e[v].hint != class || !eligible(v) || picks.iter().any(|p| p.0 == v) {
                    continue;
                }
                if !beats(v) {
                    break;
                }
                picks.push((v, Tier::Cold));
                freed += self.e[v].bytes;
            }
        }
        (freed >= need_local).then_some(picks)
    }

    /// Room needed to bring `i` into `to`: (hot bytes, local bytes).
    fn need(&self, i: usize, to: Tier) -> (u128, u128) {
        let x = &self.e[i];
        let hot = if to == Tier::Hot {
            (self.hot + x.bytes).saturating_sub(self.hot_high)
        } else {
            0
        };
        let local = if !x.tier.is_local() && to.is_local() {
            (self.local + x.bytes).saturating_sub(self.local_high)
        } else {
            0
        };
        (hot, local)
    }

    /// Phase 1, rule 2.
    fn offload(&mut self) {
        for i in 0..self.e.len() {
            if self.e[i].hint == Hint::Offload && self.free(i) && self.e[i].tier != Tier::Cold {
                self.apply(i, Tier::Cold, Reason::Offload);
            }
        }
    }

    /// Phase 4, rule 1.
    fn pins(&mut self) {
        for i in 0..self.e.len() {
            if self.e[i].hint != Hint::PinHot || !self.free(i) || self.e[i].tier == Tier::Hot {
                continue;
            }
            let (need_hot, need_local) = self.need(i, Tier::Hot);
            let this = &*self;
            let picks = this.victims(
                need_hot,
                need_local,
                true,
                &|v| this.displaceable_by_pin(v),
                &|_| true,
            );
            if let Some(picks) = picks {
                for (v, to) in picks {
                    if self.moved[v] {
                        self.extend(v, to);
                    } else {
                        self.apply(v, to, Reason::Demote);
                    }
                }
                self.apply(i, Tier::Hot, Reason::Pinned);
            }
        }
    }

    /// Phase 2, rule 4: local hysteresis trim.
    fn trim_local(&mut self) {
        if self.local <= self.local_high {
            return;
        }
        for class in AUTO_CLASSES {
            for k in (0..self.by_tier[Tier::Warm.slot()].len()).rev() {
                if self.local <= self.local_low {
                    return;
                }
                let i = self.by_tier[Tier::Warm.slot()][k];
                if self.e[i].hint == class && self.auto(i) {
                    self.apply(i, Tier::Cold, Reason::Evict);
                }
            }
        }
        // Hot segments go straight to Cold only as far as needed to get back
        // under the high watermark.
        for class in AUTO_CLASSES {
            for k in (0..self.by_tier[Tier::Hot.slot()].len()).rev() {
                if self.local <= self.local_high {
                    return;
                }
                let i = self.by_tier[Tier::Hot.slot()][k];
                if self.e[i].hint == class && self.auto(i) {
                    self.apply(i, Tier::Cold, Reason::Evict);
                }
            }
        }
    }

    /// Phase 3, rule 4: hot hysteresis trim.
    fn trim_hot(&mut self) {
        if self.hot <= self.hot_high {
            return;
        }
        for k in (0..self.by_tier[Tier::Hot.slot()].len()).rev() {
            if self.hot <= self.hot_low {
                return;
            }
            let i = self.by_tier[Tier::Hot.slot()][k];
            if self.auto(i) {
                self.apply(i, Tier::Warm, Reason::Evict);
            }
        }
    }

    /// Phase 5, rules 3 and 4.
    fn promote(&mut self) {
        loop {
            let mut progress = false;
            for k in 0..self.by_tier[Tier::Cold.slot()].len() {
                let i = self.by_tier[Tier::Cold.slot()][k];
                if self.e[i].hint == Hint::Warm
                    && self.auto(i)
                    && self.need(i, Tier::Warm) == (0, 0)
                {
                    self.apply(i, Tier::Warm, Reason::PreWarm);
                    progress = true;
                }
            }
            for (from, to) in [(Tier::Warm, Tier::Hot), (Tier::Cold, Tier::Warm)] {
                for k in 0..self.by_tier[from.slot()].len() {
                    let i = self.by_tier[from.slot()][k];
                    if self.auto(i) && self.e[i].freq >= self.budgets.admit_frequency {
                        progress |= self.admit(i, to);
                    }
                }
            }
            if !progress {
                break;
            }
        }
    }

    /// Promotes `i` to `to` by fit or by displacement; returns whether it did.
    fn admit(&mut self, i: usize, to: Tier) -> bool {
        let (need_hot, need_local) = self.need(i, to);
        let picks = if need_hot == 0 && need_local == 0 {
            Some(Vec::new())
        } else {
            let this = &*self;
            this.victims(need_hot, need_local, false, &|v| this.auto(v), &|v| {
                this.beats(i, v)
            })
        };
        let Some(picks) = picks else {
            return false;
        };
        for (v, t) in picks {
            self.apply(v, t, Reason::Demote);
        }
        self.apply(i, to, Reason::Promote);
        true
    }

    fn finish(self) -> Plan {
        let (mut left_out, mut pinned_hot) = (0u128, 0u128);
        for (x, &after) in self.e.iter().zip(&self.after) {
            if x.hint != Hint::PinHot {
                continue;
            }
            if after == Tier::Hot {
                pinned_hot += x.bytes;
            } else if !x.moving {
                left_out += x.bytes;
            }
        }
        let over = left_out + pinned_hot.saturating_sub(u128::from(self.budgets.hot_bytes));
        let mut moves = self.demotions;
        moves.extend(self.promotions);
        Plan {
            moves,
            hot_after: saturate(self.hot),
            local_after: saturate(self.local),
            pinned_over_budget: saturate(over),
        }
    }
}

#[cfg(test)]
mod tests;
