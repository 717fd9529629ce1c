//! Deadlines and cancellation carried into the engine.
//!
//! A server answers a request that ran out of time; the engine makes that answer true. Every
//! operation of a [`crate::CollectionHandle`] made with [`crate::CollectionHandle::with_deadline`]
//! checks its [`Deadline`]:
//! - a **write** checks it last thing before its WAL append — the commit point. If it has
//!   passed (or the caller cancelled), the write fails with `DeadlineExceeded` and nothing was
//!   applied. Once appended, the write completes (one fsync) and is acknowledged even if that
//!   takes it past the deadline: a timed-out write never applies later;
//! - a **read** checks it between sources (the memtable, each segment) and between pages, and
//!   stops with `DeadlineExceeded`.
//!
//! Multi-batch writes (delete or set-payload by filter, id lists above the batch limit) check
//! it before each batch: batches committed before it passed stay committed, and the error says
//! how many there were.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::error::{Error, ErrorKind, Result};

/// When an operation must give up, and a flag its caller can raise to cancel it.
#[derive(Clone, Debug, Default)]
pub struct Deadline {
    at: Option<Instant>,
    cancelled: Option<Arc<AtomicBool>>,
}

impl Deadline {
    /// No deadline, not cancellable.
    pub fn none() -> Deadline {
        Deadline::default()
    }

    /// Expires at `at`.
    pub fn at(at: Instant) -> Deadline {
        Deadline {
            at: Some(at),
            cancelled: None,
        }
    }

    /// Expires `d` from now.
    pub fn after(d: Duration) -> Deadline {
        Deadline::at(Instant::now() + d)
    }

    /// Also stops once `flag` is set (e.g. when the client went away).
    pub fn cancelled_by(mut self, flag: Arc<AtomicBool>) -> Deadline {
        self.cancelled = Some(flag);
        self
    }

    /// The instant it expires, if any.
    pub fn instant(&self) -> Option<Instant> {
        self.at
    }

    /// Time left (`None`: unbounded).
    pub fn remaining(&self) -> Option<Duration> {
        self.at
            .map(|at| at.saturating_duration_since(Instant::now()))
    }

    /// `Err(DeadlineExceeded)` once expired or cancelled; `what` names the operation.
    pub fn check(&self, what: &str) -> Result<()> {
        if self
            .cancelled
            .as_ref()
            .is_some_and(|c| c.load(Ordering::Acquire))
        {
            return Err(Error::new(
                ErrorKind::DeadlineExceeded,
                format!("{what}: cancelled by the caller"),
            ));
        }
        if self.at.is_some_and(|at| Instant::now() >= at) {
            return Err(Error::new(
                ErrorKind::DeadlineExceeded,
                format!("{what}: deadline exceeded"),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expiry_and_cancellation() {
        assert!(Deadline::none().check("x").is_ok());
        assert!(Deadline::after(Duration::from_secs(60)).check("x").is_ok());
        let e = Deadline::at(Instant::now())
            .check("upsert")
            .expect_err("expired");
        assert_eq!(e.kind(), ErrorKind::DeadlineExceeded);
        assert!(e.to_string().contains("upsert"), "{e}");
        let flag = Arc::new(AtomicBool::new(false));
        let d = Deadline::none().cancelled_by(Arc::clone(&flag));
        assert!(d.check("x").is_ok());
        flag.store(true, Ordering::Release);
        assert!(
            d.check("x")
                .expect_err("cancelled")
                .to_string()
                .contains("cancelled")
        );
    }
}
