//! Every store operation, written once for both backends.
//!
//! A backend is a [`Backend`]: it knows how to run a write (inside a
//! transaction, committing before it answers and publishing the events
//! after) and a read, on its own [`Db`]. Each aggregate's trait
//! ([`crate::api`]) is implemented here for every backend, over those two
//! and the primitives of [`Db`]; one module per aggregate.
//!
//! A multi-statement operation runs in the same order everywhere: take the
//! session (lock, bump its version), check the guard, change the rows,
//! record the timeline, read back what the events carry. The backends only
//! differ below [`Db`] — and in [`Backend::append`], each one's fast path
//! for the one operation that runs per message.

mod blocks;
mod chats;
mod history;
mod im;
mod org;
mod outbox;
mod privacy;
mod questions;
mod reports;
mod staffing;

pub(crate) use chats::append;

use crate::sql::Db;
use crate::{Appended, Guard, NewMessage, Result};
use refdesk_domain::event::Event;
use refdesk_domain::ids::SessionId;
use refdesk_domain::Millis;
use std::future::Future;
use std::pin::Pin;

/// A write running on a backend's connection: its value and the events to
/// publish once it has committed.
pub type Write<'c, T> = Pin<Box<dyn Future<Output = Result<(T, Vec<Event>)>> + Send + 'c>>;

/// A read running on a backend's connection.
pub type Read<'c, T> = Pin<Box<dyn Future<Output = Result<T>> + Send + 'c>>;

/// What a backend provides (see the module's documentation). Public only
/// so that the aggregate traits can be implemented for every backend; it is
/// not reachable from outside the crate.
pub trait Backend: Send + Sync + 'static {
    /// The connection operations run on.
    type Db: Db;

    /// Runs `op` in a transaction of its own (on SQLite: a savepoint in the
    /// writer's next batch), commits, publishes the events, then returns
    /// the value. An error rolls back everything `op` wrote.
    fn write<T: Send + 'static>(
        &self,
        op: impl for<'c> FnOnce(&'c mut Self::Db) -> Write<'c, T> + Send + 'static,
    ) -> impl Future<Output = Result<T>> + Send;

    /// Runs `op` on a connection outside any write.
    fn read<T: Send + 'static>(
        &self,
        op: impl for<'c> FnOnce(&'c mut Self::Db) -> Read<'c, T> + Send + 'static,
    ) -> impl Future<Output = Result<T>> + Send;

    /// Appends a message (see [`crate::Chats::append`]). The default is the
    /// shared operation as one write; a backend may first try a faster way
    /// that keeps the same guarantees.
    fn append(
        &self,
        id: SessionId,
        msg: NewMessage,
        guard: Guard,
        now: Millis,
    ) -> impl Future<Output = Result<Appended>> + Send {
        self.write(move |db| Box::pin(append(db, id, msg, guard, now)))
    }

    /// See [`crate::Store::close`].
    fn close(&self) -> impl Future<Output = ()> + Send;

    /// See [`crate::Store::health`].
    fn health(&self) -> impl Future<Output = Result<()>> + Send;
}

#[async_trait::async_trait]
impl<B: Backend> crate::Store for B {
    async fn close(&self) {
        Backend::close(self).await
    }

    async fn is_empty(&self) -> Result<bool> {
        let n =
            self.read(|db| Box::pin(crate::sql::int(db, "SELECT count(*) AS n FROM cooperatives", &[], "n"))).await?;
        Ok(n == 0)
    }

    async fn health(&self) -> Result<()> {
        Backend::health(self).await
    }
}

/// A write that publishes nothing.
async fn quiet<T>(value: impl Future<Output = Result<T>>) -> Result<(T, Vec<Event>)> {
    Ok((value.await?, Vec::new()))
}
