//! The error every layer above speaks: the HTTP layer maps each variant to
//! one status code, once.

/// Why a use case refused or failed.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum DomainError {
    /// The thing does not exist — or exists outside the caller's scope where
    /// saying so would leak it.
    #[error("{0} not found")]
    NotFound(&'static str),
    /// The caller is known but may not do this.
    #[error("forbidden: {0}")]
    Forbidden(&'static str),
    /// The request is valid but conflicts with the current state
    /// (the chat was already accepted, the session has ended…).
    #[error("conflict: {0}")]
    Conflict(String),
    /// Bad input: which field, and why.
    #[error("invalid {field}: {reason}")]
    Invalid {
        /// The offending field, as the client named it.
        field: &'static str,
        /// A sentence a person can act on.
        reason: String,
    },
    /// A limit on what one patron, network or queue may hold was reached
    /// (DESIGN §8): try again later.
    #[error("{reason}")]
    Limited {
        /// Which limit, for clients (`queue_full`, `too_many_waiting`, …).
        code: &'static str,
        /// A sentence a person can act on.
        reason: String,
    },
    /// The patron is blocked from chatting (an abusive patron): a polite
    /// sentence that says what they can still do.
    #[error("{0}")]
    Blocked(String),
    /// The library's chat is closed (its admins closed it): their notice
    /// to patrons, said instead of the chat and the question form.
    #[error("{0}")]
    Closed(String),
}

impl DomainError {
    /// Shorthand for [`DomainError::Invalid`].
    pub fn invalid(field: &'static str, reason: impl Into<String>) -> Self {
        DomainError::Invalid { field, reason: reason.into() }
    }
}
