//! The storage layer's error: what failed, on which file or object, and why.

use std::io;

/// An error of a [`crate::BlobStore`] or [`crate::LogStore`].
///
/// Every variant names the blob or log file by its location (a path, a URL), so a message that
/// reaches an operator says where to look.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The blob or log file does not exist.
    #[error("{location}: not found")]
    NotFound {
        /// Where it was looked for.
        location: String,
    },
    /// A create-only put found the name taken.
    #[error("{location}: already exists")]
    AlreadyExists {
        /// The name that was taken.
        location: String,
    },
    /// An if-match put found another version than the one expected.
    #[error("{location}: precondition failed: expected version {expected}, found {found}")]
    Precondition {
        /// The blob.
        location: String,
        /// The version the caller expected.
        expected: String,
        /// The version found (`none` when the blob is absent).
        found: String,
    },
    /// A name that cannot be stored (empty, absolute, `..`, a temporary-file suffix).
    #[error("invalid blob name {name:?}: {why}")]
    InvalidName {
        /// The name given.
        name: String,
        /// What is wrong with it.
        why: &'static str,
    },
    /// The store was opened read-only.
    #[error("{location}: the store is read-only")]
    ReadOnly {
        /// What a write was attempted on.
        location: String,
    },
    /// An I/O error (or an injected fault: the message says so).
    #[error("{op} {location}: {source}")]
    Io {
        /// What was being done (`writing`, `fsync of`, `renaming`, …).
        op: &'static str,
        /// On which file or object.
        location: String,
        /// The cause.
        #[source]
        source: io::Error,
    },
}

impl StoreError {
    /// Wraps an I/O error, turning `NotFound` into [`StoreError::NotFound`].
    pub fn io(op: &'static str, location: impl Into<String>, source: io::Error) -> StoreError {
        let location = location.into();
        if source.kind() == io::ErrorKind::NotFound {
            return StoreError::NotFound { location };
        }
        StoreError::Io {
            op,
            location,
            source,
        }
    }

    /// True for [`StoreError::NotFound`].
    pub fn is_not_found(&self) -> bool {
        matches!(self, StoreError::NotFound { .. })
    }

    /// The I/O error kind, if this is an I/O error.
    pub fn io_kind(&self) -> Option<io::ErrorKind> {
        match self {
            StoreError::Io { source, .. } => Some(source.kind()),
            _ => None,
        }
    }
}

/// Result alias of the storage layer.
pub type StoreResult<T> = Result<T, StoreError>;
