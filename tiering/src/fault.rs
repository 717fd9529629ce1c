//! Fault injection: decorators that make a [`BlobStore`] or [`LogStore`] fail on purpose.
//!
//! Every trait call is broken into the low-level steps a real backend takes, and each step is
//! offered to a shared, seeded [`Faults`] controller, which decides from its rules whether that
//! step fails:
//!
//! | call | steps (before the real call) | steps after it (fail *ambiguously*: the change happened) |
//! |---|---|---|
//! | `put` | write, sync (file), rename | sync (directory) |
//! | `delete`, log `remove` | delete | sync (directory) |
//! | log `create` | write, sync, rename | sync (directory) |
//! | log `truncate` | write | sync |
//! | log `sync_file` | sync | |
//! | `open`, `read_ranges`, `head`, log `read`, `len` | read | |
//! | `list` | list | |
//! | log file `write_at` | write (writes a seeded random prefix, then fails) | |
//! | log file `sync`, `set_len` | sync, write | |
//!
//! A fault is an I/O error of a chosen kind (`StorageFull` is ENOSPC), a short read (fewer
//! bytes than asked, no error), a panic (a bug below), and any step can be delayed. Rules fire
//! on the Nth matching step, on every step from the Nth (a full disk), or with a probability
//! drawn from the seeded generator — so a failing run is replayed exactly from its seed.
//! Modelled on redb's `FailingBackend` and SlateDB's `FailingObjectStore`.

use std::fmt;
use std::io;
use std::ops::Range;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use crate::blob::Blob;
use crate::error::{StoreError, StoreResult};
use crate::rng::SplitMix64;
use crate::store::{BlobMeta, BlobStore, ETag, LogFile, LogStore, PutMode};

/// The class of a low-level step.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FaultOp {
    /// Writing bytes (a temp file, a log append, a truncate).
    Write,
    /// An fsync (of a file or a directory).
    Sync,
    /// The rename (or link) that makes a put visible.
    Rename,
    /// Reading bytes or metadata.
    Read,
    /// Unlinking.
    Delete,
    /// Listing.
    List,
}

/// What an injected fault does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// The step fails with an I/O error of this kind (`StorageFull` = ENOSPC).
    Error(io::ErrorKind),
    /// A read returns fewer bytes than asked, without an error (other steps: no effect).
    ShortRead,
    /// The step panics.
    Panic,
}

/// When a rule fires.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Trigger {
    /// On the Nth matching step (1-based), once.
    Nth(u64),
    /// On every matching step from the Nth on (a disk that stays full).
    From(u64),
    /// On each matching step with this probability, drawn from the seeded generator.
    Chance(f64),
}

/// One rule: which steps it matches and what it does to them.
#[derive(Clone, Debug)]
pub struct FaultRule {
    op: FaultOp,
    trigger: Trigger,
    fault: Fault,
    only: Option<String>,
}

impl FaultRule {
    /// A rule failing steps of class `op` when `trigger` says, with an I/O error (`Other`).
    pub fn new(op: FaultOp, trigger: Trigger) -> FaultRule {
        FaultRule {
            op,
            trigger,
            fault: Fault::Error(io::ErrorKind::Other),
            only: None,
        }
    }
    /// What the fault does.
    pub fn fault(mut self, fault: Fault) -> FaultRule {
        self.fault = fault;
        self
    }
    /// Only steps on files or blobs whose location contains `needle` match.
    pub fn on(mut self, needle: impl Into<String>) -> FaultRule {
        self.only = Some(needle.into());
        self
    }
}

#[derive(Debug)]
struct RuleState {
    rule: FaultRule,
    seen: u64,
    fired: bool,
}

#[derive(Debug)]
struct State {
    rules: Vec<RuleState>,
    rng: SplitMix64,
    max_delay: Duration,
    injected: u64,
    history: Vec<String>,
}

/// The shared controller of a set of faulty stores. Deterministic for a given seed and order
/// of steps.
pub struct Faults {
    state: Mutex<State>,
}

impl fmt::Debug for Faults {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.lock();
        f.debug_struct("Faults")
            .field("rules", &s.rules.len())
            .field("injected", &s.injected)
            .finish()
    }
}

impl Faults {
    /// A controller with no rules, drawing from `seed`.
    pub fn new(seed: u64) -> Arc<Faults> {
        Arc::new(Faults {
            state: Mutex::new(State {
                rules: Vec::new(),
                rng: SplitMix64::new(seed),
                max_delay: Duration::ZERO,
                injected: 0,
                history: Vec::new(),
            }),
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        crate::lock(&self.state)
    }

    /// Adds a rule.
    pub fn add(&self, rule: FaultRule) {
        self.lock().rules.push(RuleState {
            rule,
            seen: 0,
            fired: false,
        });
    }

    /// Removes every rule (and the delay): the stores behave normally from now on.
    pub fn clear(&self) {
        let mut s = self.lock();
        s.rules.clear();
        s.max_delay = Duration::ZERO;
    }

    /// Delays every step by a seeded random duration up to `max`.
    pub fn set_max_delay(&self, max: Duration) {
        self.lock().max_delay = max;
    }

    /// How many faults were injected so far.
    pub fn injected(&self) -> u64 {
        self.lock().injected
    }

    /// What was injected, one line each (step, location, fault), in order.
    pub fn history(&self) -> Vec<String> {
        self.lock().history.clone()
    }

    /// A seeded number in `0..n` (n > 0), for decorators that choose how much to damage.
    fn below(&self, n: u64) -> u64 {
        self.lock().rng.below(n)
    }

    /// Offers one step to the rules; returns the fault to inject, if any.
    fn step(&self, op: FaultOp, location: &str) -> Option<Fault> {
        let (delay, hit) = {
            let mut s = self.lock();
            let delay = if s.max_delay.is_zero() {
                Duration::ZERO
            } else {
                let ns = s.max_delay.as_nanos().min(u64::MAX as u128) as u64;
                Duration::from_nanos(s.rng.below(ns + 1))
            };
            let mut hit = None;
            let State {
                rules,
                rng,
                history,
                injected,
                ..
            } = &mut *s;
            for r in rules.iter_mut() {
                if r.rule.op != op
                    || r.rule
                        .only
                        .as_deref()
                        .is_some_and(|n| !location.contains(n))
                {
                    continue;
                }
                r.seen += 1;
                let fire = match r.rule.trigger {
                    Trigger::Nth(n) => !r.fired && r.seen == n,
                    Trigger::From(n) => r.seen >= n,
                    Trigger::Chance(p) => ((rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64) < p,
                };
                if fire && hit.is_none() {
                    r.fired = true;
                    *injected += 1;
                    history.push(format!("{op:?} {location}: {:?}", r.rule.fault));
                    hit = Some(r.rule.fault);
                }
            }
            (delay, hit)
        };
        if !delay.is_zero() {
            std::thread::sleep(delay);
        }
        if hit == Some(Fault::Panic) {
            panic!("injected panic at a {op:?} step on {location}");
        }
        hit
    }

    /// A step that can only fail with an error (short reads do not apply to it).
    fn check(&self, op: FaultOp, location: &str) -> StoreResult<()> {
        match self.step(op, location) {
            Some(Fault::Error(kind)) => Err(injected(op, location, kind)),
            _ => Ok(()),
        }
    }

    /// The steps of an atomic replace (a blob put, a log create): write, fsync and rename before
    /// `apply`, the directory fsync after it — a failure there is ambiguous, as on a disk.
    fn replace<T>(&self, at: &str, apply: impl FnOnce() -> StoreResult<T>) -> StoreResult<T> {
        for op in [FaultOp::Write, FaultOp::Sync, FaultOp::Rename] {
            self.check(op, at)?;
        }
        let out = apply()?;
        self.check(FaultOp::Sync, at)?;
        Ok(out)
    }

    /// The steps of a durable unlink: the unlink before `apply`, the directory fsync after.
    fn unlink(&self, at: &str, apply: impl FnOnce() -> StoreResult<()>) -> StoreResult<()> {
        self.check(FaultOp::Delete, at)?;
        apply()?;
        self.check(FaultOp::Sync, at)
    }

    /// A read step: `Ok(true)` asks the caller to return a short read.
    fn read_step(&self, location: &str) -> StoreResult<bool> {
        match self.step(FaultOp::Read, location) {
            Some(Fault::Error(kind)) => Err(injected(FaultOp::Read, location, kind)),
            Some(Fault::ShortRead) => Ok(true),
            _ => Ok(false),
        }
    }
}

fn injected(op: FaultOp, location: &str, kind: io::ErrorKind) -> StoreError {
    StoreError::Io {
        op: match op {
            FaultOp::Write => "writing",
            FaultOp::Sync => "fsync of",
            FaultOp::Rename => "renaming",
            FaultOp::Read => "reading",
            FaultOp::Delete => "removing",
            FaultOp::List => "listing",
        },
        location: location.to_string(),
        source: io::Error::new(kind, format!("injected fault ({kind})")),
    }
}

/// A [`BlobStore`] whose steps fail when its [`Faults`] say so.
#[derive(Debug)]
pub struct FaultyStore {
    inner: Arc<dyn BlobStore>,
    faults: Arc<Faults>,
}

impl FaultyStore {
    /// Wraps `inner`.
    pub fn new(inner: Arc<dyn BlobStore>, faults: Arc<Faults>) -> FaultyStore {
        FaultyStore { inner, faults }
    }
}

impl BlobStore for FaultyStore {
    fn location(&self, name: &str) -> String {
        self.inner.location(name)
    }

    fn put(&self, name: &str, bytes: &[u8], mode: PutMode) -> StoreResult<ETag> {
        self.faults
            .replace(&self.location(name), || self.inner.put(name, bytes, mode))
    }

    /// The inner store's own assembly (a local directory's temp file), behind the same steps
    /// as a put: a write, fsync or rename fault before it changes nothing; the directory
    /// fsync after it leaves the change made but unconfirmed.
    fn put_assembled(
        &self,
        name: &str,
        len: u64,
        fill: &dyn Fn(&dyn crate::PartSink) -> StoreResult<()>,
        check: &dyn Fn(Blob) -> Result<(), String>,
    ) -> StoreResult<()> {
        self.faults.replace(&self.location(name), || {
            self.inner.put_assembled(name, len, fill, check)
        })
    }

    fn open(&self, name: &str) -> StoreResult<Blob> {
        let short = self.faults.read_step(&self.location(name))?;
        let blob = self.inner.open(name)?;
        if short && !blob.is_empty() {
            let keep = self.faults.below(blob.len() as u64) as usize;
            return Ok(Blob::from_bytes(&blob.as_bytes()[..keep]));
        }
        Ok(blob)
    }

    fn read_ranges(&self, name: &str, ranges: &[Range<u64>]) -> StoreResult<Vec<Vec<u8>>> {
        let short = self.faults.read_step(&self.location(name))?;
        let mut out = self.inner.read_ranges(name, ranges)?;
        if short && let Some(buf) = out.iter_mut().rev().find(|b| !b.is_empty()) {
            let keep = self.faults.below(buf.len() as u64) as usize;
            buf.truncate(keep);
        }
        Ok(out)
    }

    fn head(&self, name: &str) -> StoreResult<BlobMeta> {
        self.faults.check(FaultOp::Read, &self.location(name))?;
        self.inner.head(name)
    }

    fn list(&self, prefix: &str) -> StoreResult<Vec<BlobMeta>> {
        self.faults.check(FaultOp::List, &self.location(prefix))?;
        self.inner.list(prefix)
    }

    fn delete(&self, name: &str) -> StoreResult<()> {
        self.faults
            .unlink(&self.location(name), || self.inner.delete(name))
    }
}

/// A [`LogStore`] whose steps fail when its [`Faults`] say so.
#[derive(Debug)]
pub struct FaultyLog {
    inner: Arc<dyn LogStore>,
    faults: Arc<Faults>,
}

impl FaultyLog {
    /// Wraps `inner`.
    pub fn new(inner: Arc<dyn LogStore>, faults: Arc<Faults>) -> FaultyLog {
        FaultyLog { inner, faults }
    }
}

impl LogStore for FaultyLog {
    fn location(&self, name: &str) -> String {
        self.inner.location(name)
    }

    fn list(&self) -> StoreResult<Vec<String>> {
        self.faults.check(FaultOp::List, &self.location(""))?;
        self.inner.list()
    }

    fn read(&self, name: &str) -> StoreResult<Vec<u8>> {
        let short = self.faults.read_step(&self.location(name))?;
        let mut bytes = self.inner.read(name)?;
        if short && !bytes.is_empty() {
            let keep = self.faults.below(bytes.len() as u64) as usize;
            bytes.truncate(keep);
        }
        Ok(bytes)
    }

    fn len(&self, name: &str) -> StoreResult<u64> {
        self.faults.check(FaultOp::Read, &self.location(name))?;
        self.inner.len(name)
    }

    fn create(&self, name: &str, header: &[u8]) -> StoreResult<Arc<dyn LogFile>> {
        let at = self.location(name);
        let file = self
            .faults
            .replace(&at, || self.inner.create(name, header))?;
        Ok(Arc::new(FaultyLogFile {
            inner: file,
            faults: Arc::clone(&self.faults),
            location: at,
        }))
    }

    fn truncate(&self, name: &str, len: u64) -> StoreResult<()> {
        let at = self.location(name);
        self.faults.check(FaultOp::Write, &at)?;
        self.inner.truncate(name, len)?;
        self.faults.check(FaultOp::Sync, &at)
    }

    fn sync_file(&self, name: &str) -> StoreResult<()> {
        self.faults.check(FaultOp::Sync, &self.location(name))?;
        self.inner.sync_file(name)
    }

    fn remove(&self, name: &str) -> StoreResult<()> {
        self.faults
            .unlink(&self.location(name), || self.inner.remove(name))
    }
}

#[derive(Debug)]
struct FaultyLogFile {
    inner: Arc<dyn LogFile>,
    faults: Arc<Faults>,
    location: String,
}

impl LogFile for FaultyLogFile {
    fn write_at(&self, offset: u64, bytes: &[u8]) -> StoreResult<()> {
        if let Some(Fault::Error(kind)) = self.faults.step(FaultOp::Write, &self.location) {
            // A failed write may still have put part of the bytes down.
            let keep = self.faults.below(bytes.len() as u64 + 1) as usize;
            self.inner.write_at(offset, &bytes[..keep])?;
            return Err(injected(FaultOp::Write, &self.location, kind));
        }
        self.inner.write_at(offset, bytes)
    }

    fn sync(&self) -> StoreResult<()> {
        self.faults.check(FaultOp::Sync, &self.location)?;
        self.inner.sync()
    }

    fn set_len(&self, len: u64) -> StoreResult<()> {
        self.faults.check(FaultOp::Write, &self.location)?;
        self.inner.set_len(len)
    }

    fn allocate(&self, len: u64) -> StoreResult<()> {
        self.faults.check(FaultOp::Write, &self.location)?;
        self.inner.allocate(len)
    }
}
