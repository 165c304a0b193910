//! refdesk's storage: one interface, [`Store`] (cut by aggregate in
//! [`api`]), and its backends. SQLite (the embedded default) lives in
//! [`sqlite`]; PostgreSQL, for several nodes sharing one database, in
//! [`postgres`].
//!
//! The store is the source of truth. Every write is committed before its
//! result is returned, and the events it produced are handed to the
//! [`EventSink`] *after* the commit, in commit order — so nothing is ever
//! announced that could still be rolled back (I2), and the bus sees each
//! session's messages in sequence order.
//!
//! Every operation is written once, in [`ops`], over the primitives both
//! backends implement (`sql::Db`: run a statement, read rows, take a
//! lock). A backend adds only how it runs a write (SQLite: group commit on
//! one writer thread; PostgreSQL: a pooled transaction), its migrations
//! and its fast path for appends (on PostgreSQL, batched: one statement and
//! one commit for a node's concurrent appends).
//!
//! Use cases pass a *guard* with each write on a session: the app's rule,
//! evaluated inside the transaction on the row as it is then. That makes
//! check-then-act atomic (I6: two accepts of one chat cannot both pass).
//!
//! SQL lives here and nowhere else; this crate knows nothing of HTTP.
#![forbid(unsafe_code)]

pub mod api;
mod error;
mod ops;
pub mod postgres;
mod records;
mod sql;
pub mod sqlite;

pub use api::{
    Blocks, Chats, History, Im, Organisation, Outbox, Privacy, Questions, Reports, Staffing, Store,
    BLOCKED_WAITING_AT_MOST,
};
pub use error::{Result, StoreError};
pub use ops::blocks::BLOCKS_PER_CHAT;
pub use ops::LONG_READS;
pub use records::*;

/// The storage traits, to bring every store method into scope at once.
pub mod prelude {
    pub use crate::api::{
        Blocks, Chats, History, Im, Organisation, Outbox, Privacy, Questions, Reports, Staffing, Store,
    };
}

use refdesk_domain::event::Event;

/// How long [`Store::health`] waits for a commit before it says the store
/// cannot commit.
pub const HEALTH_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// Receives committed events, in commit order. Called on the store's writer
/// thread: it must not block.
pub trait EventSink: Send + Sync {
    /// Hands over the events of one committed batch.
    fn publish(&self, events: Vec<Event>);

    /// Told of every commit, whether it succeeded or not: how many writes
    /// it carried and how long it took. For metrics; the store knows
    /// nothing of how they are kept. Called on the writer's thread (SQLite)
    /// or task (PostgreSQL): it must not block. Ignored by default.
    fn committed(&self, _commit: CommitReport) {}
}

/// One commit, as [`EventSink::committed`] is told of it.
#[derive(Clone, Copy, Debug)]
pub struct CommitReport {
    /// Writes it carried: on SQLite, the jobs of one group-committed batch;
    /// on PostgreSQL, the appends of one batch, or one for any other write
    /// (each is its own transaction).
    pub writes: usize,
    /// From the transaction's start to its commit (or failure).
    pub took: std::time::Duration,
    /// Whether it committed.
    pub ok: bool,
}

/// A sink that drops everything (CLI commands that run without a server).
pub struct NoSink;

impl EventSink for NoSink {
    fn publish(&self, _events: Vec<Event>) {}
}
