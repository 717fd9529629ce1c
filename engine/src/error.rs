//! The engine's one public error: a small, prescriptive [`ErrorKind`] plus a message that names
//! what was wrong (the field, the file and offset, the collection).
//!
//! The kind is what callers branch on; the server maps it to an HTTP status and a gRPC code in
//! exactly one function. Corruption is its own kind so that it is never retried or hidden.

use std::fmt;

/// What went wrong, as a caller needs to act on it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The request is malformed: wrong dimension, NaN, bad name, bad filter. Do not retry.
    InvalidArgument,
    /// The collection or point does not exist.
    NotFound,
    /// The collection already exists.
    AlreadyExists,
    /// The request conflicts with the current state (e.g. a version precondition failed).
    FailedPrecondition,
    /// A limit was exceeded (batch size, record size).
    ResourceExhausted,
    /// A transient condition: the store is closing, or a previous I/O failure made it refuse
    /// writes until it recovers (a failed fsync poisons the WAL until restart; a failed
    /// manifest write until the manifest is written again).
    Unavailable,
    /// The request's deadline passed (or its caller went away) before it could take effect.
    /// A write that fails with this kind was not applied.
    DeadlineExceeded,
    /// Stored data failed verification. Names the file and offset.
    Corruption,
    /// An I/O error or a broken invariant.
    Internal,
    /// The request uses a feature this version does not implement (the message names it).
    Unimplemented,
}

impl ErrorKind {
    /// A short, stable, lower-case name (used in logs and metric labels).
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::InvalidArgument => "invalid_argument",
            ErrorKind::NotFound => "not_found",
            ErrorKind::AlreadyExists => "already_exists",
            ErrorKind::FailedPrecondition => "failed_precondition",
            ErrorKind::ResourceExhausted => "resource_exhausted",
            ErrorKind::Unavailable => "unavailable",
            ErrorKind::DeadlineExceeded => "deadline_exceeded",
            ErrorKind::Corruption => "corruption",
            ErrorKind::Internal => "internal",
            ErrorKind::Unimplemented => "unimplemented",
        }
    }
}

/// The engine's error.
#[derive(Debug)]
pub struct Error {
    kind: ErrorKind,
    message: String,
    /// For a failed actor condition: the state's current version (`None` inside: absent).
    current_version: Option<Option<u64>>,
    source: Option<Box<dyn std::error::Error + Send + Sync>>,
}

/// Result alias used throughout the engine.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// Builds an error of `kind` with `message`.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Error {
        Error {
            kind,
            message: message.into(),
            current_version: None,
            source: None,
        }
    }

    pub(crate) fn invalid(message: impl Into<String>) -> Error {
        Error::new(ErrorKind::InvalidArgument, message)
    }

    pub(crate) fn not_found(message: impl Into<String>) -> Error {
        Error::new(ErrorKind::NotFound, message)
    }

    pub(crate) fn corruption(message: impl Into<String>) -> Error {
        Error::new(ErrorKind::Corruption, message)
    }

    /// Wraps a storage-layer error with what was being done. A missing file or object is
    /// `NotFound`, a read-only store `Unavailable`, anything else `Internal`; the message names
    /// the file or object.
    pub(crate) fn store(context: &str, e: strata_tiering::StoreError) -> Error {
        use strata_tiering::StoreError as S;
        let kind = match &e {
            S::NotFound { .. } => ErrorKind::NotFound,
            S::ReadOnly { .. } => ErrorKind::Unavailable,
            S::AlreadyExists { .. } => ErrorKind::AlreadyExists,
            S::Precondition { .. } => ErrorKind::FailedPrecondition,
            _ => ErrorKind::Internal,
        };
        Error {
            kind,
            message: format!("{context}: {e}"),
            current_version: None,
            source: Some(Box::new(e)),
        }
    }

    /// A failed actor condition (kind `FailedPrecondition`) carrying the state's current
    /// version (`None`: the state is absent).
    pub(crate) fn conflict(message: impl Into<String>, current: Option<u64>) -> Error {
        Error {
            current_version: Some(current),
            ..Error::new(ErrorKind::FailedPrecondition, message)
        }
    }

    /// For a failed actor condition: `Some(current version)` (`Some(None)`: the state is
    /// absent); `None` for every other error.
    pub fn conflict_version(&self) -> Option<Option<u64>> {
        self.current_version
    }

    /// The kind.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The message, without the kind.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.kind.as_str(), self.message)
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_ref()
            .map(|e| e.as_ref() as &(dyn std::error::Error + 'static))
    }
}
