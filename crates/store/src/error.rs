//! What can go wrong in the store.

use refdesk_domain::DomainError;
use std::sync::Arc;

/// What can go wrong in the store.
#[derive(Debug, thiserror::Error, Clone)]
pub enum StoreError {
    /// A rule refused the write (a guard, a uniqueness rule, a missing row).
    #[error(transparent)]
    Domain(#[from] DomainError),
    /// The database failed. The message is for logs, never for clients; the
    /// database's own error, when there is one, is its source.
    #[error("database error: {what}")]
    Backend {
        /// What failed, in refdesk's words.
        what: String,
        /// The error underneath.
        #[source]
        source: Option<Arc<dyn std::error::Error + Send + Sync>>,
    },
    /// The database cannot take requests just now: it does not answer, or
    /// cannot write (read-only, out of space, a failing disk). It may come
    /// back by itself, so the caller may try again later. What was asked was
    /// not done, unless the connection was lost during its very commit (then
    /// it may have been). The message is for logs, like `Backend`'s.
    #[error("database unavailable: {what}")]
    Unavailable {
        /// What failed, in refdesk's words, with the database's own error.
        what: String,
        /// The error underneath.
        #[source]
        source: Option<Arc<dyn std::error::Error + Send + Sync>>,
    },
    /// The store is shutting down.
    #[error("the store is closed")]
    Closed,
}

impl StoreError {
    /// A failure refdesk itself noticed (nothing underneath).
    pub fn backend(what: impl Into<String>) -> StoreError {
        StoreError::Backend { what: what.into(), source: None }
    }

    /// A failure of the database or the driver, kept as the source. Its
    /// text is in the message too: logs that print only the message (most
    /// do) still say what the database said.
    pub fn failed(what: impl Into<String>, source: impl std::error::Error + Send + Sync + 'static) -> StoreError {
        let what = format!("{}: {source}", what.into());
        StoreError::Backend { what, source: Some(Arc::new(source)) }
    }

    /// The database cannot be reached or cannot write now ([`StoreError::Unavailable`]).
    pub fn unavailable(what: impl Into<String>, source: impl std::error::Error + Send + Sync + 'static) -> StoreError {
        let what = format!("{}: {source}", what.into());
        StoreError::Unavailable { what, source: Some(Arc::new(source)) }
    }

    /// Whether the database could not be reached or could not write (as
    /// opposed to a fault, or a refusal of this write).
    pub fn is_unavailable(&self) -> bool {
        matches!(self, StoreError::Unavailable { .. })
    }

    /// Whether this is a conflict with the row's state (as opposed to a
    /// failure): what was to be changed had changed already.
    pub fn is_conflict(&self) -> bool {
        matches!(self, StoreError::Domain(DomainError::Conflict(_)))
    }

    /// Whether this is a missing row (as opposed to a failure).
    pub fn is_not_found(&self) -> bool {
        matches!(self, StoreError::Domain(DomainError::NotFound(_)))
    }
}

/// Result of a store operation.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;
