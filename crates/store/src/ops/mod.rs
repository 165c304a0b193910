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

pub(crate) mod blocks;
mod chats;
mod history;
mod im;
mod org;
mod outbox;
pub(crate) mod privacy;
mod questions;
mod reports;
pub(crate) mod staffing;

pub(crate) use chats::append;

use crate::sql::Db;
use crate::{Appended, Guard, NewMessage, Result, StoreError};
use refdesk_domain::event::Event;
use refdesk_domain::ids::SessionId;
use refdesk_domain::Millis;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use tokio::sync::Semaphore;

/// How many long reads ([`Backend::read_long`]) run at once on a node: of
/// SQLite's six read connections, four stay for everything else.
pub const LONG_READS: usize = 2;

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

    /// The turns of long reads ([`LONG_READS`] of them), for
    /// [`Backend::read_long`].
    fn long_reads(&self) -> &Arc<Semaphore>;

    /// Runs a long read — a scan of a range or of every row: a report, a
    /// search by e-mail or by words — as [`Backend::read`], at most
    /// [`LONG_READS`] at once across the node. The reports page asks for
    /// thirteen at once, each a few hundred milliseconds on a year of a
    /// large cooperative; unbounded, they would take every read connection
    /// (SQLite) or every pooled one (PostgreSQL, where writes wait on the
    /// same pool), and patrons' chats would wait behind an administrator's
    /// figures. The turn is held by the read itself, so a caller that goes
    /// away does not free it while its scan still runs (a backend whose
    /// reads run in the caller's future, PostgreSQL, runs a long one in a
    /// task of its own).
    fn read_long<T: Send + 'static>(
        &self,
        op: impl for<'c> FnOnce(&'c mut Self::Db) -> Read<'c, T> + Send + 'static,
    ) -> impl Future<Output = Result<T>> + Send {
        async move {
            let turn = self.long_reads().clone().acquire_owned().await.map_err(|_| StoreError::Closed)?;
            self.read(move |db| {
                Box::pin(async move {
                    let _turn = turn;
                    op(db).await
                })
            })
            .await
        }
    }

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

    /// See [`crate::Store::answers`].
    fn answers(&self) -> impl Future<Output = Result<()>> + Send;

    /// See [`crate::Store::health`].
    fn health(&self) -> impl Future<Output = Result<()>> + Send;

    /// See [`crate::Store::forget_unused`].
    fn forget_unused(&self) {}
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

    async fn answers(&self) -> Result<()> {
        Backend::answers(self).await
    }

    async fn health(&self) -> Result<()> {
        Backend::health(self).await
    }

    fn forget_unused(&self) {
        Backend::forget_unused(self)
    }
}

/// A write that publishes nothing.
async fn quiet<T>(value: impl Future<Output = Result<T>>) -> Result<(T, Vec<Event>)> {
    Ok((value.await?, Vec::new()))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
    use std::time::Duration;

    /// Waits until `running` reaches `n` (a test fails after 10 s).
    async fn reaches(running: &AtomicUsize, n: usize) {
        let waited = tokio::time::timeout(Duration::from_secs(10), async {
            while running.load(SeqCst) < n {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        });
        assert!(waited.await.is_ok(), "{} of {n} reads ran", running.load(SeqCst));
    }

    /// Starts `many` long reads, more than the backend has connections,
    /// each holding its connection until let go: only [`LONG_READS`] run;
    /// the callers of those that run go away, and their reads keep their
    /// turns until they end; a short read is served meanwhile. `on_thread`:
    /// the backend runs a read's closure on a thread of its own (SQLite),
    /// where it may block.
    pub(crate) async fn long_reads_leave_room_for_the_rest<B: Backend>(store: Arc<B>, many: usize, on_thread: bool) {
        let running = Arc::new(AtomicUsize::new(0));
        let started = Arc::new(std::sync::Mutex::new(Vec::new()));
        let (open, gate) = tokio::sync::watch::channel(false);
        let mut callers = Vec::new();
        for n in 0..many {
            let (store, running, started, mut gate) = (store.clone(), running.clone(), started.clone(), gate.clone());
            callers.push(tokio::spawn(async move {
                store
                    .read_long(move |_db| {
                        started.lock().unwrap().push(n);
                        running.fetch_add(1, SeqCst);
                        if on_thread {
                            // Until let go, or until the test has failed.
                            while !*gate.borrow() && gate.has_changed().is_ok() {
                                std::thread::sleep(Duration::from_millis(1));
                            }
                            return Box::pin(async { Ok(()) });
                        }
                        Box::pin(async move {
                            let _ = gate.wait_for(|open| *open).await;
                            Ok(())
                        })
                    })
                    .await
            }));
        }
        reaches(&running, LONG_READS).await;
        for n in started.lock().unwrap().iter() {
            callers[*n].abort();
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(running.load(SeqCst), LONG_READS, "no more long reads run at once");
        let short = store.read(|_db| Box::pin(async { Ok(()) }));
        let served = tokio::time::timeout(Duration::from_secs(10), short).await;
        assert!(served.is_ok_and(|r| r.is_ok()), "a short read is served while the long ones hold their turns");
        assert_eq!(running.load(SeqCst), LONG_READS);
        open.send(true).unwrap();
        for caller in callers {
            // The aborted ones' reads end on their threads.
            if let Ok(read) = caller.await {
                read.unwrap();
            }
        }
        reaches(&running, many).await;
    }
}
