//! Actor state (issue 9; design in `docs/actors.md`): keys, records, the WAL record of a
//! transaction (op 5), the store (memtable, sealed tables, segments), its handle, the actor
//! segment format, segments at run time (tiers, block reads), flush and compaction.

pub(crate) mod flush;
pub(crate) mod handle;
pub(crate) mod sealed;
pub(crate) mod segment;
pub(crate) mod store;
pub(crate) mod txn;

pub use handle::{ActorCommit, ActorCondition, ActorHandle, ActorState, ActorWrite};

use crate::error::{Error, Result};
use crate::types::Lsn;

/// Longest actor id, in bytes.
pub(crate) const MAX_ACTOR_ID: usize = 1024;
/// Longest state name, in bytes.
pub(crate) const MAX_STATE_NAME: usize = 255;
/// Longest content type, in bytes.
pub(crate) const MAX_CONTENT_TYPE: usize = 255;
/// Default value limit (configurable per engine).
pub(crate) const DEFAULT_MAX_VALUE: usize = 4 << 20;

/// The key of one state within an actor store (the store is the actor type): ordered by actor
/// id, then state name (bytewise), so one actor's states are adjacent.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct ActorKey {
    pub(crate) actor: String,
    pub(crate) state: String,
}

impl ActorKey {
    /// A key, checked: ids 1..=1024 bytes, state names 1..=255 bytes, no control characters;
    /// errors name `at` (`id`, `state`).
    pub(crate) fn new(actor: &str, state: &str) -> Result<ActorKey> {
        check_part("id", actor, MAX_ACTOR_ID)?;
        check_part("state", state, MAX_STATE_NAME)?;
        Ok(ActorKey {
            actor: actor.to_string(),
            state: state.to_string(),
        })
    }
}

fn check_part(at: &str, s: &str, max: usize) -> Result<()> {
    if s.is_empty() || s.len() > max || s.chars().any(char::is_control) {
        return Err(Error::invalid(format!(
            "{at}: {s:?} is invalid (1 to {max} bytes, no control characters)"
        )));
    }
    Ok(())
}

/// A state's value and how it was given.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Value {
    pub(crate) content_type: String,
    pub(crate) bytes: Vec<u8>,
}

/// One stored version of a state: a value, or a tombstone (`value: None`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ActorRecord {
    pub(crate) key: ActorKey,
    /// The LSN that wrote it (the ETag).
    pub(crate) version: Lsn,
    /// Absolute expiry, milliseconds of the engine clock.
    pub(crate) expiry_ms: Option<u64>,
    pub(crate) value: Option<Value>,
}

impl ActorRecord {
    /// True when it reads as absent at `now_ms`: a tombstone, or expired.
    pub(crate) fn absent_at(&self, now_ms: u64) -> bool {
        self.value.is_none() || self.expiry_ms.is_some_and(|e| e <= now_ms)
    }
}

/// 64-bit hash of a key for the bloom filter: FNV-1a over `actor`, a 0xFF separator (never in
/// UTF-8) and `state`, finished with SplitMix64's mixer. Part of the on-disk format: never
/// change it without a new segment version.
pub(crate) fn key_hash(key: &ActorKey) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in key
        .actor
        .bytes()
        .chain(std::iter::once(0xFF))
        .chain(key.state.bytes())
    {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    let mut z = h.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Counters of actor segment reads since open, by the tier that served them (hot, warm, cold).
#[derive(Debug, Default)]
pub(crate) struct ActorCounters {
    pub(crate) reads: [std::sync::atomic::AtomicU64; 3],
    /// Commits that wrote, by path: async (awaited the syncer), blocking (a thread synced).
    pub(crate) commits: [std::sync::atomic::AtomicU64; 2],
}
