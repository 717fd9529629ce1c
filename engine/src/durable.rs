//! Durability notifications for callers on an async runtime: instead of a thread per write
//! blocked in [`Wal::sync`], a write registers its LSN and awaits a [`Durable`] future; one
//! syncer thread fsyncs for every registered write at once and completes them together.
//!
//! ```text
//! writer (async task): WAL append → LSN → Syncer::wait(lsn) ─┐        (no thread blocked)
//! syncer thread: wait for waiters → take them all → Wal::sync(max LSN) → complete each ─┘
//!                (joins the WAL's group commit with blocking writers)
//! ```
//! Each waiter carries what to do once its fate is known (`then`: apply the write, or forget
//! it), run by the syncer before the future is woken — so a write is applied even when the
//! future waiting for it was dropped (a client gone). A failed sync completes a waiter whose
//! LSN is durable anyway (another writer's fsync covered it) with success, the others with the
//! error (the WAL is poisoned by then, so no later write becomes durable either). On shutdown
//! the syncer serves the waiters it has, then stops; a wait registered after that fails.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Condvar, Mutex};
use std::task::{Context, Poll, Waker};

use crate::engine::lock;
use crate::error::{Error, ErrorKind, Result};
use crate::types::Lsn;
use crate::wal::Wal;

/// One waiter's result and waker.
#[derive(Debug, Default)]
struct Slot {
    state: Mutex<(Option<Result<()>>, Option<Waker>)>,
}

impl Slot {
    fn complete(&self, r: Result<()>) {
        let waker = {
            let mut s = lock(&self.state);
            s.0 = Some(r);
            s.1.take()
        };
        if let Some(w) = waker {
            w.wake();
        }
    }
}

/// Resolves once the LSN it was made for is durable (or the sync failed).
#[derive(Debug)]
pub struct Durable {
    slot: Option<Arc<Slot>>,
    done: Option<Result<()>>,
}

impl Durable {
    fn ready(r: Result<()>) -> Durable {
        Durable {
            slot: None,
            done: Some(r),
        }
    }
}

impl Future for Durable {
    type Output = Result<()>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<()>> {
        if let Some(r) = self.done.take() {
            return Poll::Ready(r);
        }
        let Some(slot) = &self.slot else {
            return Poll::Ready(Err(Error::new(
                ErrorKind::Internal,
                "a durability wait was polled after it completed",
            )));
        };
        let mut s = lock(&slot.state);
        match s.0.take() {
            Some(r) => Poll::Ready(r),
            None => {
                s.1 = Some(cx.waker().clone());
                Poll::Pending
            }
        }
    }
}

/// What a waiter does once its LSN is durable (`Ok`) or cannot be (`Err`).
pub(crate) type Then = Box<dyn FnOnce(&Result<()>) + Send>;

#[derive(Default)]
struct State {
    waiters: Vec<(Lsn, Arc<Slot>, Then)>,
    stop: bool,
    /// The syncer thread waits on the condition variable (else it is syncing and takes the
    /// waiters registered meanwhile when its round ends): only then does a waiter signal it.
    idle: bool,
}

impl std::fmt::Debug for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("State")
            .field("waiters", &self.waiters.len())
            .field("stop", &self.stop)
            .finish()
    }
}

/// The registry of async waiters and its thread's loop.
#[derive(Debug, Default)]
pub(crate) struct Syncer {
    state: Mutex<State>,
    cv: Condvar,
}

/// A copy of `e` for each waiter of a failed round.
fn copy(e: &Error) -> Error {
    Error::new(e.kind(), e.message().to_string())
}

impl Syncer {
    /// A future that resolves once `lsn` is durable (or cannot be); `then` runs first, on the
    /// syncer thread (or here, when the answer is known at once), whether or not the future is
    /// still awaited.
    pub(crate) fn wait(&self, wal: &dyn Wal, lsn: Lsn, then: Then) -> Durable {
        if wal.durable_lsn().is_some_and(|d| d >= lsn) {
            then(&Ok(()));
            return Durable::ready(Ok(()));
        }
        let slot = Arc::new(Slot::default());
        {
            let mut s = lock(&self.state);
            if s.stop {
                drop(s);
                let r = Err(Error::new(
                    ErrorKind::Unavailable,
                    "the engine is shutting down",
                ));
                then(&r);
                return Durable::ready(r);
            }
            s.waiters.push((lsn, Arc::clone(&slot), then));
            // A signal is a system call: skip it while the syncer is busy (it looks at the
            // waiters under this lock before it waits again).
            if s.idle {
                s.idle = false;
                self.cv.notify_one();
            }
        }
        Durable {
            slot: Some(slot),
            done: None,
        }
    }

    /// Stops the loop once the waiters it has are served.
    pub(crate) fn stop(&self) {
        lock(&self.state).stop = true;
        self.cv.notify_all();
    }

    /// The syncer thread: one `Wal::sync` per round for every waiter registered by then.
    pub(crate) fn run(&self, wal: &dyn Wal) {
        loop {
            let batch = {
                let mut s = lock(&self.state);
                while s.waiters.is_empty() && !s.stop {
                    s.idle = true;
                    s = self
                        .cv
                        .wait(s)
                        .unwrap_or_else(std::sync::PoisonError::into_inner);
                }
                s.idle = false;
                if s.waiters.is_empty() {
                    return;
                }
                std::mem::take(&mut s.waiters)
            };
            let max = batch.iter().map(|(l, _, _)| *l).max().unwrap_or(0);
            let r = wal.sync(max);
            // After a failure, what is durable anyway (covered by another fsync) succeeded.
            let durable = wal.durable_lsn().unwrap_or(0);
            metrics::histogram!("strata_async_commit_batch").record(batch.len() as f64);
            for (lsn, slot, then) in batch {
                let mine = match &r {
                    Err(e) if lsn > durable => Err(copy(e)),
                    _ => Ok(()),
                };
                then(&mine);
                slot.complete(mine);
            }
        }
    }
}
