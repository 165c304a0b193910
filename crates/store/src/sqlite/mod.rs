//! The SQLite backend: the embedded default.
//!
//! One writer thread owns the only writing connection. Writes from every
//! session queue up as jobs; the writer takes all that are waiting (up to
//! [`MAX_BATCH`]), runs each inside its own savepoint of one transaction,
//! commits once, and only then answers each caller and hands the batch's
//! events to the sink. That is group commit: one fsync for many messages,
//! and still no acknowledgement before the data is durable (I2). A failing
//! job rolls back to its savepoint and fails alone. The writer keeps a copy
//! of each live session it appends to, with what it knows of the session's
//! lines' client ids ([`kept`]): SQLite has no index of them, and I4 rests
//! on that copy never missing a stored line.
//!
//! Reads go to a few reader threads, each with its own read-only connection
//! for its whole life ([`Readers`]); WAL mode lets them run beside the
//! writer. Each read is one closure on one thread: no read transaction stays
//! open across an `.await`, so no reader pins an old snapshot of the log.
//! A reader that has read nothing for a while gives its page cache back
//! ([`give_back`]).
//!
//! A job that panics must not take the writer with it: every later write
//! would fail while reads (and so a naive readiness check) went on working.
//! The panic is caught where the job's savepoint is open, the savepoint is
//! rolled back, and that one caller gets an error; the batch commits the
//! rest (see [`catch_panic`]). The writer reports each commit, and
//! [`Store::health`] says whether it can commit now.
//!
//! A third thread keeps the write-ahead log bounded (see [`checkpointer`]),
//! and [`SqliteStore::close`] ends them all — the reader threads, then the
//! checkpointer, then the writer — so that the last connection to close
//! checkpoints the log and removes it.
//!
//! [`backup`] copies the database while all this runs, from another process
//! (`refdesk backup`), and puts a copy back (`refdesk restore`).

pub mod backup;
mod connection;
mod kept;
pub(crate) mod schema;

use crate::ops::{Backend, Read, Write};
use crate::{EventSink, Result, StoreError};
use connection::SqliteDb;
use refdesk_domain::event::Event;
use refdesk_domain::DomainError;
use rusqlite::Connection;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::task::{Context, Poll, Waker};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot, watch};

/// The most jobs committed in one transaction.
const MAX_BATCH: usize = 1024;
/// How often the checkpointer copies the WAL back into the database file.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(250);
/// How often while the log is past half the restart size: a burst fast
/// enough to add more than the restart size in one [`CHECKPOINT_EVERY`]
/// would otherwise carry the log well past it before the next look.
const CHECKPOINT_EVERY_WHEN_FILLING: Duration = Duration::from_millis(25);
/// A log with more than this in it is restarted (see [`checkpointer`]).
const RESTART_WAL_BYTES: i64 = 16 << 20;
/// `journal_size_limit`: a restarted log file is cut back to this size, so a
/// burst that grew it does not keep its disk space for ever.
const WAL_SIZE_LIMIT: i64 = 32 << 20;
/// Reader threads, each with its own connection: the most reads that run at
/// once. Bounded: unbounded, a burst of reads (a flood of sockets
/// authenticating at once) took a blocking thread and opened a connection,
/// with its own page cache, for each — hundreds of them, and hundreds of MiB
/// (docs/performance.md, "Idle sockets").
const READERS: usize = 6;
/// A reader thread that has read nothing for this long gives its page cache
/// back ([`give_back`]): long enough that a burst of reads (a page of
/// reports, sockets reconnecting) keeps its cache, short enough that a node
/// whose reads have stopped does not hold on to the pages.
const READER_IDLE: Duration = Duration::from_millis(500);

/// A job's outcome once its savepoint is done: the events to publish if the
/// batch commits, and how to answer the caller.
struct Pending {
    events: Vec<Event>,
    finish: Box<dyn FnOnce(Result<()>) + Send>,
}

/// A write waiting for the writer. It is given the writer's connection,
/// inside the batch's transaction, or why the transaction could not begin.
type Job = Box<dyn FnOnce(Result<&mut SqliteDb>) -> Pending + Send>;

/// What the writer thread is sent.
enum ToWriter {
    Job(Job),
    /// Wakes a writer waiting for work to run the health ping it was asked
    /// for ([`Store::health`]); a busy one finds the request before its
    /// next batch.
    Ping,
    /// Finish the jobs already queued, checkpoint the log and close.
    Close,
}

/// Sessions cached at most (a busy cooperative has fewer live ones).
const SESSION_CACHE: usize = 20_000;

/// The SQLite store. Cheap to share behind an `Arc`.
pub struct SqliteStore {
    jobs: mpsc::Sender<ToWriter>,
    readers: Readers,
    /// The writer and checkpointer threads, joined by [`SqliteStore::close`].
    threads: Mutex<Option<Threads>>,
    /// The writer's last commit, for [`Store::health`].
    commits: watch::Receiver<Commit>,
    /// Set to ask the writer for a health ping ([`Store::health`]); the
    /// writer clears it when it takes the request. However often `/readyz`
    /// is asked, at most one ping is pending.
    ping_wanted: Arc<AtomicBool>,
    /// The turns of long reads (reports, searches).
    long_reads: Arc<tokio::sync::Semaphore>,
}

/// What the writer's batches have shown so far. Kept as a count, not as
/// the latest batch alone: a watcher may see only the last of several
/// batches, and under a flood of work that writes nothing a ping's commit
/// is followed at once by batches that prove nothing.
#[derive(Clone, Copy)]
struct Commit {
    /// Batches so far (0: none yet).
    n: u64,
    /// The latest batch that proved the database takes writes, and when:
    /// it committed and changed rows, or it was a health ping (which
    /// writes). A batch that changes nothing (a sign-off round with nobody
    /// to sign off) commits without writing a byte, even on a read-only
    /// file or a full disk.
    proved: Option<(u64, Instant)>,
    /// The latest batch that failed to commit (0: none).
    failed: u64,
}

impl Commit {
    /// Whether a batch proved the database takes writes less than
    /// [`FRESH_COMMIT`] ago, and none failed since.
    fn fresh(&self) -> bool {
        self.proved.is_some_and(|(n, at)| n > self.failed && at.elapsed() < FRESH_COMMIT)
    }

    /// Whether a batch after the `n`th proved the database takes writes
    /// (`Some(true)`), or failed to commit, latest (`Some(false)`).
    fn since(&self, n: u64) -> Option<bool> {
        let proved = self.proved.map_or(0, |(p, _)| p);
        match (proved > n, self.failed > n) {
            (false, false) => None,
            _ => Some(proved > self.failed),
        }
    }
}

/// What a health ping writes: SQLite's header field for the program whose
/// file this is ("RDSK"). Setting it, even to the value it has, dirties the
/// first page, so the ping's commit must really write to the log.
const PING_WRITE: &str = "PRAGMA application_id = 1380209483";

/// A batch that wrote and committed less than this long ago shows the
/// writer can commit; older, [`Store::health`] sends a ping that writes
/// ([`PING_WRITE`]) to find out.
const FRESH_COMMIT: Duration = Duration::from_secs(1);

struct Threads {
    writer: JoinHandle<()>,
    checkpointer: JoinHandle<()>,
    /// Dropping it wakes the checkpointer and stops it.
    stop_checkpoints: std::sync::mpsc::Sender<()>,
}

/// The reader threads ([`READERS`] at most) and the reads waiting for one.
/// Each thread keeps one connection, opened at its first read, for its
/// whole life: SQLite allocates a connection's page cache and statements
/// through the C library's `malloc`, whose arenas are per thread, so a
/// connection that moved from thread to thread (tokio's blocking pool,
/// before 2026-12-02) left its pages in a dozen arenas and grew them all
/// (docs/performance.md, "Idle sockets"). A thread is started when more
/// reads are queued than threads wait for them, so a node that never reads
/// more than one thing at a time keeps one (each thread, with its
/// allocators' own pages, costs memory); a thread that has read nothing for
/// [`READER_IDLE`] gives its page cache back ([`give_back`]).
struct Readers {
    /// What the threads share with the store.
    shared: Arc<ReadersShared>,
    /// The threads started, joined by `close`.
    threads: Mutex<Vec<JoinHandle<()>>>,
}

/// What the reader threads share: the queue, under one lock with the
/// counts that decide whether a read needs another thread, and the signal
/// that a read is queued (or that the store is closing).
struct ReadersShared {
    queue: Mutex<ReadQueue>,
    signal: Condvar,
    path: PathBuf,
    /// How long a thread reads nothing before it gives its page cache back
    /// ([`READER_IDLE`]; shorter in tests).
    idle: Duration,
    /// Connections opened so far (each one a page cache), for the tests.
    #[cfg_attr(not(test), allow(dead_code))]
    opened: AtomicUsize,
    /// Times a thread gave its page cache back, for the tests.
    #[cfg_attr(not(test), allow(dead_code))]
    gave_back: AtomicUsize,
}

/// The reads waiting for a reader thread, and the threads.
#[derive(Default)]
struct ReadQueue {
    reads: std::collections::VecDeque<ReadJob>,
    /// Threads started and not ended.
    started: usize,
    /// Threads waiting for a read (or about to).
    waiting: usize,
    /// Set by `close`, or when the store is dropped: no read is queued any
    /// more, those still queued fail and the threads end.
    closed: bool,
}

/// A read waiting for a reader thread, given that thread's connection (or
/// why it could not be opened) and a call to make before it answers its
/// caller: from then on the thread counts as waiting for the next read, so
/// a caller reading one thing after another finds it so and starts no other.
type ReadJob = Box<dyn FnOnce(Result<&mut SqliteDb>, &dyn Fn()) + Send>;

/// Takes a lock even if a thread panicked holding it: nothing under the
/// readers' locks is left half done by a panic.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Readers {
    fn new(path: &Path, idle: Duration) -> Readers {
        let shared = ReadersShared {
            queue: Mutex::default(),
            signal: Condvar::new(),
            path: path.to_owned(),
            idle,
            opened: AtomicUsize::new(0),
            gave_back: AtomicUsize::new(0),
        };
        Readers { shared: Arc::new(shared), threads: Mutex::new(Vec::new()) }
    }

    /// Queues a read — at the end of the line, or `first` in it — first
    /// starting a thread for it if more reads are queued than threads wait
    /// for them and fewer than [`READERS`] run; fails once the store is
    /// closing.
    fn send(&self, job: ReadJob, first: bool) -> Result<()> {
        let shared = &self.shared;
        let mut queue = lock(&shared.queue);
        if queue.closed {
            return Err(StoreError::Closed);
        }
        if queue.reads.len() + 1 > queue.waiting && queue.started < READERS {
            let n = queue.started;
            let them = shared.clone();
            match std::thread::Builder::new().name(format!("refdesk-sqlite-read-{n}")).spawn(move || reader(&them)) {
                Ok(thread) => {
                    queue.started += 1;
                    lock(&self.threads).push(thread);
                }
                // With no thread at all the read would wait for ever.
                Err(e) if n == 0 => return Err(StoreError::failed("cannot start a SQLite reader thread", e)),
                Err(e) => tracing::warn!(error = %e, "cannot start another SQLite reader thread"),
            }
        }
        if first {
            queue.reads.push_front(job);
        } else {
            queue.reads.push_back(job);
        }
        drop(queue);
        shared.signal.notify_one();
        Ok(())
    }

    /// Fails the reads still queued and ends the threads, which close their
    /// connections.
    async fn close(&self) {
        self.stop();
        let threads = std::mem::take(&mut *lock(&self.threads));
        let _ = tokio::task::spawn_blocking(move || threads.into_iter().for_each(|t| drop(t.join()))).await;
    }

    /// Tells the threads to fail what is queued and end.
    fn stop(&self) {
        lock(&self.shared.queue).closed = true;
        self.shared.signal.notify_all();
    }
}

/// A store dropped without [`SqliteStore::close`] (tests do) still ends its
/// reader threads and closes their connections.
impl Drop for Readers {
    fn drop(&mut self) {
        self.stop();
    }
}

/// What a reader thread does next.
enum Next {
    /// A read, and whether the store is closing (then it fails).
    Read(ReadJob, bool),
    /// Nothing read for the idle time ([`READER_IDLE`]): give the page
    /// cache back.
    GiveBack,
    /// The store is closing and nothing is queued.
    End,
}

/// A reader thread's place among the threads: whether it counts itself as
/// waiting for a read. Dropped however the thread ends, it counts the
/// thread out; the last one to end fails the reads still queued (a thread
/// that ends other than by `close` could otherwise leave them waiting for
/// the next read to start one).
struct Seat<'a> {
    shared: &'a ReadersShared,
    waiting: std::cell::Cell<bool>,
}

impl Seat<'_> {
    /// Counts the thread as waiting for a read, once.
    fn ready(&self) {
        if !self.waiting.replace(true) {
            lock(&self.shared.queue).waiting += 1;
        }
    }

    /// Waits for what to do next: the next read (and whether the store is
    /// closing), the page cache to give back once the connection, `holding`
    /// what it last read at that instant, has read nothing for the idle
    /// time, or the end.
    fn next(&self, holding: Option<Instant>) -> Next {
        self.ready();
        let shared = self.shared;
        let mut queue = lock(&shared.queue);
        loop {
            if let Some(job) = queue.reads.pop_front() {
                queue.waiting -= 1;
                self.waiting.set(false);
                return Next::Read(job, queue.closed);
            }
            if queue.closed {
                return Next::End;
            }
            queue = match holding.map(|at| shared.idle.saturating_sub(at.elapsed())) {
                None => shared.signal.wait(queue).unwrap_or_else(|p| p.into_inner()),
                Some(left) if left.is_zero() => return Next::GiveBack,
                Some(left) => shared.signal.wait_timeout(queue, left).unwrap_or_else(|p| p.into_inner()).0,
            };
        }
    }
}

impl Drop for Seat<'_> {
    fn drop(&mut self) {
        let mut queue = lock(&self.shared.queue);
        queue.started -= 1;
        if self.waiting.get() {
            queue.waiting -= 1;
        }
        let stranded = match queue.started {
            0 => std::mem::take(&mut queue.reads),
            _ => Default::default(),
        };
        drop(queue);
        for job in stranded {
            job(Err(StoreError::backend("the SQLite reader threads ended")), &|| {});
        }
    }
}

/// A reader thread: runs the queued reads one at a time on its connection
/// until the store closes, and gives its page cache back when it has read
/// nothing for [`READER_IDLE`]. A read that panics fails alone (its caller
/// hears why, [`catch_panic`]); should anything else end the thread, it is
/// no longer counted, so the next read starts another.
fn reader(shared: &ReadersShared) {
    let seat = Seat { shared, waiting: std::cell::Cell::new(false) };
    let ready = || seat.ready();
    let mut conn: Option<SqliteDb> = None;
    // When the connection last read, while its page cache holds what it read.
    let mut holding: Option<Instant> = None;
    loop {
        let job = match seat.next(holding) {
            Next::End => return,
            Next::GiveBack => {
                // Still counted as waiting: a read queued meanwhile waits
                // for this, which is short, rather than starting a thread.
                if let Some(db) = conn.as_ref() {
                    give_back(db);
                    shared.gave_back.fetch_add(1, Ordering::Relaxed);
                }
                holding = None;
                continue;
            }
            Next::Read(job, true) => {
                job(Err(StoreError::Closed), &ready);
                continue;
            }
            Next::Read(job, false) => job,
        };
        let db = match conn.as_mut() {
            Some(db) => db,
            None => match open_conn(&shared.path, true) {
                Ok(c) => {
                    shared.opened.fetch_add(1, Ordering::Relaxed);
                    conn.insert(SqliteDb::new(c))
                }
                Err(e) => {
                    job(Err(e), &ready);
                    continue;
                }
            },
        };
        // The read itself catches its panic ([`SqliteStore::read`]); this
        // one is a backstop: the connection is opened afresh.
        if std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| job(Ok(db), &ready))).is_err() {
            conn = None;
        }
        holding = Some(Instant::now());
    }
}

/// Gives a read connection's page cache back to the C library, and the C
/// library's free pages back to the system. What a read connection caches
/// is worth little once the reads stop: the next commit of the writer
/// empties it anyway (SQLite drops a connection's cache whenever the log
/// changed under it), but the C library keeps the pages it held, so each
/// reader thread's arena stayed as large as its cache ever grew (2 MB each;
/// docs/performance.md, "Idle sockets").
fn give_back(db: &SqliteDb) {
    if let Err(e) = db.conn.release_memory() {
        tracing::debug!(error = %e, "a SQLite read connection did not release its memory");
    }
    let began = Instant::now();
    refdesk_memory::trim_c_heap();
    tracing::debug!(took_us = began.elapsed().as_micros() as u64, "a SQLite reader gave its page cache back");
}

fn db(e: rusqlite::Error) -> StoreError {
    if let rusqlite::Error::SqliteFailure(f, msg) = &e {
        if f.code == rusqlite::ErrorCode::ConstraintViolation {
            let what = msg.as_deref().unwrap_or("constraint");
            if what.contains("UNIQUE") {
                return StoreError::Domain(DomainError::Conflict(format!("already exists ({what})")));
            }
            // As on PostgreSQL: a row naming one that does not exist.
            if what.contains("FOREIGN KEY") {
                return StoreError::Domain(DomainError::NotFound("a record it refers to"));
            }
        }
        // The file cannot be written now (a full disk, a read-only or
        // failing file system) or another process holds it past the busy
        // wait: it may pass by itself, and nothing was written.
        use rusqlite::ErrorCode::*;
        if matches!(f.code, DiskFull | ReadOnly | SystemIoFailure | CannotOpen | DatabaseBusy) {
            return StoreError::unavailable("SQLite", e);
        }
    }
    StoreError::failed("SQLite", e)
}

pub(crate) fn open_conn(path: &Path, read_only: bool) -> Result<Connection> {
    use rusqlite::OpenFlags;
    let flags = if read_only {
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX
    } else {
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE | OpenFlags::SQLITE_OPEN_NO_MUTEX
    };
    let conn = Connection::open_with_flags(path, flags).map_err(db)?;
    conn.busy_handler(Some(busy_wait)).map_err(db)?;
    // FULL: a commit is on disk before anyone is told (I2). Group commit is
    // what keeps this affordable.
    conn.execute_batch("PRAGMA foreign_keys = ON; PRAGMA synchronous = FULL;").map_err(db)?;
    if !read_only {
        conn.execute_batch(&format!("PRAGMA journal_size_limit = {WAL_SIZE_LIMIT}")).map_err(db)?;
        // What a patron's erasure removes is overwritten with zeros, not left
        // in the file's free space, where a copy of the file (`refdesk
        // backup` copies pages) would carry it on (docs/privacy.md). It also
        // zeroes what other deletes and updates free (a conference member
        // leaving, a sign-in ending): a few bytes in pages being written
        // anyway; lines are never deleted on the hot path.
        conn.execute_batch("PRAGMA secure_delete = ON").map_err(db)?;
    }
    conn.set_prepared_statement_cache_capacity(64);
    // Text in lower case whatever its script, for searches (`Dialect::folded`).
    let flags =
        rusqlite::functions::FunctionFlags::SQLITE_UTF8 | rusqlite::functions::FunctionFlags::SQLITE_DETERMINISTIC;
    conn.create_scalar_function("casefold", 1, flags, |ctx| {
        Ok(match ctx.get_raw(0) {
            rusqlite::types::ValueRef::Text(t) => Some(String::from_utf8_lossy(t).to_lowercase()),
            _ => None,
        })
    })
    .map_err(db)?;
    Ok(conn)
}

/// Waits for a lock another connection holds (the writer behind a restart
/// of the log, or the checkpointer behind the writer), in [`WAIT_STEP`]s, so
/// the wait ends within a step of the lock's release (SQLite's own busy
/// timeout sleeps up to 100 ms at a time), and gives up after 10 s.
fn busy_wait(tries: i32) -> bool {
    wait_step(tries, Duration::from_secs(10))
}

/// A busy handler's step: how long a lock wait sleeps before it tries again.
const WAIT_STEP: Duration = Duration::from_micros(100);

thread_local! {
    /// When this thread's current lock wait began, and when it last slept
    /// (busy handlers are plain functions, called with the tries so far).
    static WAIT: std::cell::Cell<Option<(Instant, Instant)>> = const { std::cell::Cell::new(None) };
}

/// Sleeps a [`WAIT_STEP`] and says to try again, until `most` has passed
/// since the wait's first try. Bounded by the clock, not by a count of
/// steps: a step of 100 µs sleeps longer (the kernel's timer slack, the
/// wake-up), by how much depends on the machine — 10,000 of them, meant
/// as a second, took two on one. A wait is new at its first try, or when
/// the last step slept long ago (SQLite does not always count from 0: a
/// statement prepared again after a wait goes on from that wait's tries).
fn wait_step(tries: i32, most: Duration) -> bool {
    const NEW_AFTER: Duration = Duration::from_millis(100);
    let now = Instant::now();
    let began = WAIT.with(|wait| {
        let began = match wait.get() {
            Some((began, last)) if tries > 0 && now.duration_since(last) < NEW_AFTER => began,
            _ => now,
        };
        wait.set(Some((began, now)));
        began
    });
    if now.duration_since(began) >= most {
        return false;
    }
    std::thread::sleep(WAIT_STEP);
    true
}

/// Brings the schema up to date. Idempotent.
fn migrate(conn: &mut Connection) -> Result<()> {
    conn.execute_batch("PRAGMA journal_mode = WAL;").map_err(db)?;
    let version: usize = conn.query_row("PRAGMA user_version", [], |r| r.get(0)).map_err(db)?;
    if version > schema::MIGRATIONS.len() {
        return Err(StoreError::backend(format!(
            "the database is at schema version {version}, newer than this refdesk ({}); upgrade refdesk",
            schema::MIGRATIONS.len()
        )));
    }
    for (i, sql) in schema::MIGRATIONS.iter().enumerate().skip(version) {
        let tx = conn.transaction().map_err(db)?;
        tx.execute_batch(sql).map_err(db)?;
        tx.execute_batch(&format!("PRAGMA user_version = {}", i + 1)).map_err(db)?;
        tx.commit().map_err(db)?;
        tracing::debug!(version = i + 1, "applied SQLite migration");
    }
    // One line for them all: a new database applies every one.
    if version < schema::MIGRATIONS.len() {
        tracing::info!(from = version, to = schema::MIGRATIONS.len(), "SQLite schema brought up to date");
    }
    Ok(())
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `path`, applies migrations,
    /// and starts the writer thread. Committed events go to `sink`.
    pub fn open(path: &Path, sink: Arc<dyn EventSink>) -> Result<SqliteStore> {
        let mut conn = open_conn(path, false)?;
        migrate(&mut conn)?;
        // Checkpoints copy the WAL back into the database and fsync it; run
        // on the writer they would stall every commit behind them. A
        // separate connection does them instead (see [`checkpointer`]).
        conn.execute_batch("PRAGMA wal_autocheckpoint = 0").map_err(db)?;
        let checkpoints = open_conn(path, false)?;
        let (stop_checkpoints, stopped) = std::sync::mpsc::channel::<()>();
        let checkpointer = std::thread::Builder::new()
            .name("refdesk-sqlite-checkpoint".into())
            .spawn(move || checkpointer(checkpoints, stopped))
            .map_err(|e| StoreError::failed("cannot start the checkpoint thread", e))?;
        let (jobs, rx) = mpsc::channel::<ToWriter>(MAX_BATCH * 4);
        let (report, commits) = watch::channel(Commit { n: 0, proved: None, failed: 0 });
        let ping_wanted = Arc::new(AtomicBool::new(false));
        let wanted = ping_wanted.clone();
        let writer = std::thread::Builder::new()
            .name("refdesk-sqlite-writer".into())
            .spawn(move || writer(conn, rx, sink, CommitReports { report, ping_wanted: wanted }))
            .map_err(|e| StoreError::failed("cannot start the writer thread", e))?;
        let readers = Readers::new(path, READER_IDLE);
        let threads = Mutex::new(Some(Threads { writer, checkpointer, stop_checkpoints }));
        let long_reads = Arc::new(tokio::sync::Semaphore::new(crate::ops::LONG_READS));
        Ok(SqliteStore { jobs, readers, threads, commits, ping_wanted, long_reads })
    }

    /// Runs `op` on a reader thread's connection, at the end of the
    /// readers' line or `first` in it.
    async fn read_in_line<T: Send + 'static>(
        &self,
        op: impl for<'c> FnOnce(&'c mut SqliteDb) -> Read<'c, T> + Send + 'static,
        first: bool,
    ) -> Result<T> {
        let (tx, rx) = oneshot::channel();
        let job = Box::new(move |db: Result<&mut SqliteDb>, ready: &dyn Fn()| {
            // A caller that has gone (a socket closed while its read waited)
            // costs no read.
            if !tx.is_closed() {
                let out = db.and_then(|db| catch_panic("read", || run_now(op(db)))?);
                ready();
                let _ = tx.send(out);
            }
        });
        self.readers.send(job, first)?;
        rx.await.map_err(|_| StoreError::backend("a SQLite read panicked"))?
    }

    /// For tests of the writer's panic handling only: a write that inserts a
    /// cooperative named `name`, then panics inside its job (unless `name`
    /// is empty: then it commits, for a test that wants a plain write). Its
    /// caller gets an error; the insert is rolled back; the writer keeps
    /// serving.
    #[doc(hidden)]
    pub async fn write_that_panics(&self, name: &str) -> Result<()> {
        use crate::sql::Db;
        let name = name.to_owned();
        self.write(move |db| {
            Box::pin(async move {
                db.exec("INSERT INTO cooperatives (name) VALUES (?1)", crate::sql::args![&name]).await?;
                if !name.is_empty() {
                    panic!("a job panicked on purpose (test hook)");
                }
                Ok(((), Vec::new()))
            })
        })
        .await
    }

    /// See [`Store::close`]. The checkpointer closes first, then the writer
    /// runs what is queued, empties the log (TRUNCATE checkpoint) and closes
    /// last, so that SQLite removes the `-wal` file.
    async fn shut(&self) {
        let Some(threads) = self.threads.lock().ok().and_then(|mut t| t.take()) else { return };
        self.readers.close().await;
        let Threads { writer, checkpointer, stop_checkpoints } = threads;
        drop(stop_checkpoints);
        let _ = tokio::task::spawn_blocking(move || checkpointer.join()).await;
        // Queued behind every job already sent: those still run.
        let _ = self.jobs.send(ToWriter::Close).await;
        let _ = tokio::task::spawn_blocking(move || writer.join()).await;
    }
}

/// Runs an operation on SQLite to its end. Every primitive of [`SqliteDb`]
/// runs its statement before it returns, so the operation's future is
/// ready the first time it is polled: no executor is needed, and the
/// writer runs each job inside its batch on its own thread.
fn run_now<T>(mut op: Pin<Box<dyn Future<Output = Result<T>> + Send + '_>>) -> Result<T> {
    match op.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(out) => out,
        Poll::Pending => Err(StoreError::backend("a SQLite operation waited for something; none may")),
    }
}

impl Backend for SqliteStore {
    type Db = SqliteDb;

    async fn write<T: Send + 'static>(
        &self,
        op: impl for<'c> FnOnce(&'c mut SqliteDb) -> Write<'c, T> + Send + 'static,
    ) -> Result<T> {
        let (tx, rx) = oneshot::channel();
        let job: Job = Box::new(move |db| {
            // Caught inside the savepoint, so that what the job wrote before
            // it panicked is rolled back with it.
            let run = db.map(|db| {
                savepoint(db, |db| {
                    catch_panic("write", || run_now(op(&mut *db))).unwrap_or_else(|panicked| {
                        // It may have left the session cache half-updated.
                        db.sessions.clear();
                        Err(panicked)
                    })
                })
            });
            match run.and_then(|run| run) {
                Ok((value, events)) => Pending {
                    events,
                    finish: Box::new(move |committed| {
                        let _ = tx.send(committed.map(|()| value));
                    }),
                },
                Err(e) => Pending {
                    events: Vec::new(),
                    finish: Box::new(move |_| {
                        let _ = tx.send(Err(e));
                    }),
                },
            }
        });
        self.jobs.send(ToWriter::Job(job)).await.map_err(|_| StoreError::Closed)?;
        rx.await.map_err(|_| StoreError::Closed)?
    }

    fn long_reads(&self) -> &Arc<tokio::sync::Semaphore> {
        &self.long_reads
    }

    /// On a reader thread's connection ([`Readers`]).
    async fn read<T: Send + 'static>(
        &self,
        op: impl for<'c> FnOnce(&'c mut SqliteDb) -> Read<'c, T> + Send + 'static,
    ) -> Result<T> {
        self.read_in_line(op, false).await
    }

    /// A read first in the readers' line: it waits only for a reader to
    /// finish the read in hand, not behind a flood of patrons' reads.
    async fn answers(&self) -> Result<()> {
        self.read_in_line(|db| Box::pin(crate::sql::int(db, "SELECT 1 AS n", &[], "n")), true).await.map(drop)
    }

    async fn close(&self) {
        self.shut().await
    }

    async fn health(&self) -> Result<()> {
        let alive = self.threads.lock().ok().and_then(|t| t.as_ref().map(|t| !t.writer.is_finished()));
        match alive {
            None => return Err(StoreError::Closed),
            Some(false) => return Err(StoreError::backend("the writer thread has stopped")),
            Some(true) => {}
        }
        let mut commits = self.commits.clone();
        let last = *commits.borrow_and_update();
        if last.fresh() {
            return Ok(());
        }
        // Ask for a ping unless one is pending. It does not wait behind
        // the jobs queued (a flood of refused starts, which write nothing,
        // can fill the queue): the writer looks for the request before each
        // batch. A full queue means the writer is busy and will; an idle
        // one is woken.
        if !self.ping_wanted.swap(true, Ordering::AcqRel) {
            let _ = self.jobs.try_send(ToWriter::Ping);
        }
        // The next batch that proves the writes reach the disk, or fails to.
        let next = tokio::time::timeout(crate::HEALTH_WAIT, commits.wait_for(|c| c.since(last.n).is_some())).await;
        match next.map(|r| r.map(|c| c.since(last.n))) {
            Ok(Ok(Some(true))) => Ok(()),
            Ok(Ok(_)) => Err(StoreError::backend("the writer's last batch failed to commit")),
            Ok(Err(_)) => Err(StoreError::backend("the writer thread has stopped")),
            Err(_) => Err(StoreError::backend(match last.proved {
                Some((_, at)) => format!("the writer has committed no write for {} s", at.elapsed().as_secs()),
                None => "the writer has committed no write since the start".into(),
            })),
        }
    }
}

/// Runs `f`; a panic in it becomes an error (its message is logged and kept
/// in the error, which goes to logs only). `AssertUnwindSafe`: what `f` can
/// leave half-done is the open savepoint or transaction and the session
/// cache, and each caller undoes both when this returns an error.
fn catch_panic<T>(op: &'static str, f: impl FnOnce() -> T) -> Result<T> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).map_err(|panic| {
        let what = panic
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "a panic".into());
        tracing::error!(panic = %what, "a SQLite {op} panicked; it fails alone (a write is rolled back) and the rest go on");
        StoreError::backend(format!("the {op} panicked: {what}"))
    })
}

/// Runs one of the writer's own statements (`BEGIN`, `SAVEPOINT`, `COMMIT`…)
/// from the connection's statement cache: each runs once or twice per job,
/// and `execute_batch` parsed it again every time.
fn run_cached(conn: &Connection, sql: &str) -> Result<()> {
    conn.prepare_cached(sql).and_then(|mut st| st.execute([])).map(drop).map_err(db)
}

/// Runs one job inside its own savepoint of the batch's transaction.
///
/// Some failures make SQLite roll the whole transaction back, not just the
/// statement (a full disk, an I/O error, no memory). After one, there is no
/// transaction left: a `SAVEPOINT` would start one of its own and its
/// `RELEASE` commit that job alone — on disk, while the batch's `COMMIT`
/// then fails and tells its caller it was not. So a job finding no
/// transaction fails at once, and the rest of the batch with it.
fn savepoint<T>(db: &mut SqliteDb, f: impl FnOnce(&mut SqliteDb) -> Result<T>) -> Result<T> {
    if db.conn.is_autocommit() {
        return Err(StoreError::backend("the batch's transaction was rolled back by an earlier failure"));
    }
    run_cached(&db.conn, "SAVEPOINT job")?;
    match f(db) {
        Ok(v) => {
            run_cached(&db.conn, "RELEASE job")?;
            Ok(v)
        }
        Err(e) => {
            // Unless the failure took the whole transaction with it.
            if !db.conn.is_autocommit() {
                run_cached(&db.conn, "ROLLBACK TO job")?;
                run_cached(&db.conn, "RELEASE job")?;
            }
            Err(e)
        }
    }
}

/// The checkpointer thread: keeps the write-ahead log bounded without
/// stalling the writer behind the copy and its fsync.
///
/// Every [`CHECKPOINT_EVERY`] (every [`CHECKPOINT_EVERY_WHEN_FILLING`] while
/// the log is past half the restart size) a PASSIVE checkpoint copies what
/// the log holds back into the database file, beside the writer. That alone never lets
/// the log start again from its beginning under steady writes: SQLite
/// restarts it only once a checkpoint has copied *every* frame, and by the
/// time a passive one ends the writer has added more. So once the log holds
/// more than [`RESTART_WAL_BYTES`], a RESTART checkpoint follows at once. It
/// holds the writer back, but only for the frames written since the passive
/// one (a few milliseconds' worth) and one fsync; then the next commit
/// writes from the log's start, and the restart cuts the file back to
/// [`WAL_SIZE_LIMIT`]. Measured under 1,000 msg/s (docs/performance.md, the
/// soak) the log stays under 32 MiB, where passive checkpoints alone let it
/// grow by about 15 MB a second.
///
/// A RESTART holds the writer's lock while it waits for readers of older
/// snapshots, and one may read for long: an online backup
/// ([`backup::backup`]) reads one snapshot for the whole copy. So a RESTART
/// waits at most [`RESTART_WAIT`] (not the 10 s of every other
/// wait), and one that could not finish is not tried again for a while,
/// twice as long each time up to [`RESTART_BACKOFF_MAX`]: during a backup
/// the writer is held back for tens of milliseconds now and then, not for
/// seconds every quarter of a second, and the log grows by what is written
/// meanwhile until the next restart that succeeds. Past twice
/// [`RESTART_WAL_BYTES`] a RESTART waits up to a second for a gap between
/// readers and is tried every half second at most: readers that come and
/// go (the desk's) always leave one, so the log stays bounded (issue 7);
/// a reader that holds one snapshot for long (a backup) keeps the log from
/// restarting whatever the checkpointer does, and then holds the writer
/// back a second at a time at most.
fn checkpointer(conn: Connection, stop: std::sync::mpsc::Receiver<()>) {
    let page: i64 = conn.query_row("PRAGMA page_size", [], |r| r.get(0)).unwrap_or(4096);
    // Each WAL frame is a page and a 24-byte header.
    let restart_frames = RESTART_WAL_BYTES / (page + 24);
    let mut backoff = Duration::ZERO;
    let mut next_restart = Instant::now();
    let mut every = CHECKPOINT_EVERY;
    // A failing checkpoint (a full disk) fails four times a second: said
    // once a minute, with how many times since (the passes and the
    // restarts apart: a pass that works says nothing of the restarts).
    let (mut passes, mut restarts) = (Throttle::default(), Throttle::default());
    // Stops when `close` sends or drops the other end.
    while let Err(std::sync::mpsc::RecvTimeoutError::Timeout) = stop.recv_timeout(every) {
        let passive = wal_checkpoint(&conn, "PASSIVE");
        let filling = matches!(passive, Ok((_, frames)) if frames > restart_frames / 2);
        every = if filling { CHECKPOINT_EVERY_WHEN_FILLING } else { CHECKPOINT_EVERY };
        match passive {
            Ok((_, frames)) if frames > restart_frames && Instant::now() >= next_restart => {
                passes.worked();
                let began = Instant::now();
                // Past twice the restart size the log's bound comes first: a
                // RESTART waits longer for a gap between readers, and is
                // tried again sooner.
                let urgent = frames > 2 * restart_frames;
                set_restart_wait(&conn, urgent);
                match wal_checkpoint(&conn, "RESTART") {
                    Ok((false, _)) => {
                        restarts.worked();
                        backoff = Duration::ZERO;
                        tracing::debug!(frames, took_us = began.elapsed().as_micros() as u64, "restarted the WAL");
                    }
                    Ok((true, _)) => {
                        let most = if urgent { URGENT_BACKOFF_MAX } else { RESTART_BACKOFF_MAX };
                        backoff = (backoff * 2).clamp(CHECKPOINT_EVERY, most);
                        tracing::debug!(
                            frames,
                            backoff_ms = backoff.as_millis() as u64,
                            "a reader kept the WAL from restarting"
                        );
                    }
                    Err(e) => {
                        if let Some(more) = restarts.failed(Instant::now()) {
                            tracing::warn!(error = %e, failed_since = more, "WAL restart failed; will retry");
                        }
                    }
                }
                next_restart = Instant::now() + backoff;
            }
            Ok(_) => passes.worked(),
            Err(e) => {
                if let Some(more) = passes.failed(Instant::now()) {
                    tracing::warn!(error = %e, failed_since = more, "WAL checkpoint failed; will retry");
                }
            }
        }
    }
}

/// A failure that repeats, told once a [`Throttle::EVERY`] at most.
#[derive(Default)]
struct Throttle {
    /// When it was last told, and the failures since.
    told: Option<(Instant, u64)>,
}

impl Throttle {
    const EVERY: Duration = Duration::from_secs(60);

    /// Another failure at `now`: `Some(failures not told since the last
    /// time)` if it is to be told.
    fn failed(&mut self, now: Instant) -> Option<u64> {
        match &mut self.told {
            Some((at, missed)) if now.duration_since(*at) < Self::EVERY => {
                *missed += 1;
                None
            }
            told => {
                let missed = told.map_or(0, |(_, missed)| missed);
                *told = Some((now, 0));
                Some(missed)
            }
        }
    }

    /// It worked: the next failure is told at once.
    fn worked(&mut self) {
        if self.told.take().is_some() {
            tracing::info!("WAL checkpoints work again");
        }
    }
}

/// How long a RESTART checkpoint waits for the writer's batch and for
/// readers (see [`checkpointer`]).
const RESTART_WAIT: Duration = Duration::from_millis(100);
/// The longest pause between RESTARTs that a reader kept from finishing.
const RESTART_BACKOFF_MAX: Duration = Duration::from_secs(2);

/// How long an urgent RESTART waits: readers that come and go leave a gap
/// within it, and the writer is held back a second at most.
const URGENT_RESTART_WAIT: Duration = Duration::from_secs(1);
/// The longest pause between urgent RESTARTs.
const URGENT_BACKOFF_MAX: Duration = Duration::from_millis(500);

/// The checkpointer's busy handler when the log must be cut back.
fn urgent_restart_wait(tries: i32) -> bool {
    wait_step(tries, URGENT_RESTART_WAIT)
}

/// How long the checkpointer's next RESTART waits: briefly (see
/// [`restart_wait`]), or, when the log must be cut back (`urgent`), up to a
/// second ([`urgent_restart_wait`]).
fn set_restart_wait(conn: &Connection, urgent: bool) {
    let set = if urgent { conn.busy_handler(Some(urgent_restart_wait)) } else { conn.busy_handler(Some(restart_wait)) };
    if let Err(e) = set {
        tracing::warn!(error = %e, "cannot set the checkpointer's waits");
    }
}

/// The checkpointer's busy handler (see [`busy_wait`] for the others').
fn restart_wait(tries: i32) -> bool {
    wait_step(tries, RESTART_WAIT)
}

/// Runs a checkpoint; returns whether it was kept from finishing (a RESTART
/// or TRUNCATE blocked by a reader or the writer) and the frames in the log
/// when it began.
fn wal_checkpoint(conn: &Connection, mode: &str) -> Result<(bool, i64)> {
    conn.query_row(&format!("PRAGMA wal_checkpoint({mode})"), [], |r| {
        Ok((r.get::<_, i64>(0)? != 0, r.get::<_, i64>(1)?))
    })
    .map_err(db)
}

/// How the writer reports each batch, for [`Store::health`].
struct CommitReports {
    report: watch::Sender<Commit>,
    /// Set when a health ping is wanted (see [`PING_WRITE`]).
    ping_wanted: Arc<AtomicBool>,
}

impl CommitReports {
    /// Reports a batch: whether it committed, and whether it wrote.
    fn send(&self, ok: bool, wrote: bool) {
        self.report.send_modify(|c| {
            c.n += 1;
            if ok && wrote {
                c.proved = Some((c.n, Instant::now()));
            } else if !ok {
                c.failed = c.n;
            }
        });
    }
}

/// A health ping in a transaction of its own, ahead of the batch the
/// writer has gathered: whether it committed, and whether it wrote.
fn ping(db: &mut SqliteDb) -> (bool, bool) {
    if let Err(e) = run_cached(&db.conn, "BEGIN IMMEDIATE") {
        tracing::warn!(error = %e, "the health ping cannot begin a transaction");
        return (false, false);
    }
    let wrote = db.conn.execute_batch(PING_WRITE).inspect_err(|e| {
        tracing::warn!(error = %e, "the health ping cannot write");
    });
    let committed = run_cached(&db.conn, "COMMIT").inspect_err(|_| {
        let _ = db.conn.execute_batch("ROLLBACK");
    });
    (committed.is_ok(), wrote.is_ok())
}

fn writer(conn: Connection, mut rx: mpsc::Receiver<ToWriter>, sink: Arc<dyn EventSink>, reports: CommitReports) {
    let mut batch: Vec<Job> = Vec::with_capacity(MAX_BATCH);
    let mut db = SqliteDb::new(conn);
    let mut closing = false;
    while let Some(first) = rx.blocking_recv() {
        match first {
            ToWriter::Job(job) => batch.push(job),
            ToWriter::Ping => {}
            ToWriter::Close => {
                // No new job gets in; those already queued still run.
                rx.close();
                closing = true;
            }
        }
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(ToWriter::Job(job)) => batch.push(job),
                Ok(ToWriter::Ping) => {}
                Ok(ToWriter::Close) => {
                    rx.close();
                    closing = true;
                }
                Err(_) => break,
            }
        }
        if reports.ping_wanted.swap(false, Ordering::AcqRel) {
            let (ok, wrote) = ping(&mut db);
            reports.send(ok, wrote);
        }
        if !batch.is_empty() {
            // A panic that escaped every job's own guard (in the batch's
            // bookkeeping, or the sink): the batch is undone and the writer
            // goes on. Callers whose answer it had not sent yet hear that the
            // store failed them (their channel closes).
            let changes_before = db.conn.total_changes();
            let outcome = catch_panic("write", || commit_batch(&mut db, &mut batch, sink.as_ref()));
            let ok = outcome.unwrap_or_else(|_| {
                if !db.conn.is_autocommit() {
                    let _ = db.conn.execute_batch("ROLLBACK");
                }
                batch.clear();
                db.sessions.clear();
                false
            });
            reports.send(ok, db.conn.total_changes() > changes_before);
        }
        if closing && rx.is_empty() {
            break;
        }
    }
    // Copy the whole log back and empty it. If this is the last connection
    // (it is, unless a read is still running), closing it removes the log.
    if let Err(e) = wal_checkpoint(&db.conn, "TRUNCATE") {
        tracing::warn!(error = %e, "final WAL checkpoint failed; the log is replayed at the next start");
    }
    if let Err((_, e)) = db.conn.close() {
        tracing::warn!(error = %e, "closing the SQLite database failed");
    }
}

/// Runs one batch in one transaction, commits it, publishes its events and
/// answers each caller. Returns whether it committed.
fn commit_batch(db: &mut SqliteDb, batch: &mut Vec<Job>, sink: &dyn EventSink) -> bool {
    let start = Instant::now();
    let writes = batch.len();
    let began = run_cached(&db.conn, "BEGIN IMMEDIATE");
    let mut pending = Vec::with_capacity(batch.len());
    if db.sessions.len() > SESSION_CACHE {
        db.sessions.clear();
    }
    for job in batch.drain(..) {
        // If the transaction could not begin, no job runs: each caller hears why.
        pending.push(job(began.clone().map(|()| &mut *db)));
    }
    let committed = match began {
        Ok(()) => run_cached(&db.conn, "COMMIT").inspect_err(|_| {
            let _ = db.conn.execute_batch("ROLLBACK");
        }),
        Err(e) => Err(e),
    };
    if let Err(e) = &committed {
        tracing::error!(error = %e, "SQLite batch failed; its writes are rolled back");
        // Rows read inside the failed transaction may never have been.
        db.sessions.clear();
    }
    sink.committed(crate::CommitReport { writes, took: start.elapsed(), ok: committed.is_ok() });
    // Publish first, then answer: when a caller hears "done", its events
    // are already on the bus.
    if committed.is_ok() {
        let events: Vec<Event> = pending.iter_mut().flat_map(|p| std::mem::take(&mut p.events)).collect();
        if !events.is_empty() {
            sink.publish(events);
        }
    }
    let ok = committed.is_ok();
    for p in pending {
        (p.finish)(committed.clone());
    }
    ok
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Under a flood of work that writes nothing, a health ping's commit is
    /// followed at once by batches that prove nothing, and a watcher may
    /// see only the last of them: the ping is not hidden by them (it was,
    /// and `/readyz` said the database could not commit). A failure after
    /// it is the latest word.
    #[test]
    fn a_ping_that_proved_is_not_hidden_by_the_batches_after_it() {
        let (report, commits) = watch::channel(Commit { n: 0, proved: None, failed: 0 });
        let reports = CommitReports { report, ping_wanted: Arc::default() };
        reports.send(true, true);
        let asked = commits.borrow().n;
        assert_eq!(commits.borrow().since(asked), None, "nothing since");
        reports.send(true, false);
        assert_eq!(commits.borrow().since(asked), None, "a batch that wrote nothing proves nothing");
        reports.send(true, true);
        reports.send(true, false);
        reports.send(true, false);
        assert_eq!(commits.borrow().since(asked), Some(true), "the ping, two batches back");
        assert!(commits.borrow().fresh(), "a write proved just now");
        reports.send(false, false);
        assert_eq!(commits.borrow().since(asked), Some(false), "then a batch failed");
        assert!(!commits.borrow().fresh(), "a failure since: not fresh, however recent the proof");
        reports.send(true, true);
        assert_eq!(commits.borrow().since(asked), Some(true), "and one proved again");
    }

    #[test]
    fn a_checkpoint_failing_four_times_a_second_is_told_once_a_minute_with_the_count() {
        let mut failing = Throttle::default();
        let start = Instant::now();
        let told: Vec<(u64, u64)> = (0..4 * 150u64)
            .filter_map(|i| failing.failed(start + Duration::from_millis(250 * i)).map(|missed| (i, missed)))
            .collect();
        // At 0 s, 60 s and 120 s of 150 s; each time with the failures between.
        assert_eq!(told, [(0, 0), (240, 239), (480, 239)]);
        // Once it works, the next failure is told at once.
        failing.worked();
        assert_eq!(failing.failed(start + Duration::from_secs(151)), Some(0));
    }

    /// Counts the steps of one wait until the handler gives up.
    fn steps_until_given_up(first_try: i32, most: Duration) -> i32 {
        let mut tries = first_try;
        while wait_step(tries, most) {
            tries += 1;
        }
        tries - first_try
    }

    /// A lock wait lasts its time, however long each step sleeps, and one
    /// that starts from another wait's count of tries (SQLite's, after a
    /// statement prepared again) still gets its own time.
    #[test]
    fn a_lock_wait_is_bounded_by_its_time_and_a_new_one_starts_afresh() {
        let began = Instant::now();
        let steps = steps_until_given_up(0, Duration::from_millis(30));
        assert!(began.elapsed() >= Duration::from_millis(30) && steps > 0, "{steps} steps, {:?}", began.elapsed());
        std::thread::sleep(Duration::from_millis(150));
        let again = Instant::now();
        assert!(steps_until_given_up(steps + 1, Duration::from_millis(30)) > 0, "a wait going on from old tries");
        assert!(again.elapsed() >= Duration::from_millis(30));
    }

    struct Nowhere;

    impl EventSink for Nowhere {
        fn publish(&self, _events: Vec<Event>) {}
    }

    type OnWriter = Box<dyn FnOnce(&Connection) -> Result<()> + Send>;

    /// A write that runs `f` on the writer's connection, inside its batch,
    /// sent at once; its answer comes through the handle.
    fn on_writer(store: &Arc<SqliteStore>, f: OnWriter) -> tokio::task::JoinHandle<Result<()>> {
        let store = store.clone();
        tokio::spawn(async move {
            store.write(move |db| Box::pin(async move { f(&db.conn).map(|()| ((), Vec::new())) })).await
        })
    }

    fn insert(name: &'static str) -> OnWriter {
        Box::new(move |c| c.execute("INSERT INTO cooperatives (name) VALUES (?1)", [name]).map(drop).map_err(db))
    }

    async fn cooperatives(store: &SqliteStore) -> Vec<String> {
        let read = |d: &mut SqliteDb| {
            let mut st = d.conn.prepare("SELECT name FROM cooperatives")?;
            let names = st.query_map([], |r| r.get::<_, String>(0))?.collect::<rusqlite::Result<Vec<String>>>();
            names
        };
        store.read(move |d| Box::pin(std::future::ready(read(d).map_err(db)))).await.unwrap()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_failure_that_rolls_the_whole_batch_back_commits_none_of_the_jobs_after_it() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(SqliteStore::open(&dir.path().join("t.sqlite3"), Arc::new(Nowhere)).unwrap());
        let pause = Duration::from_millis(20);
        // Holds the writer, so that the next three queue up into one batch.
        let held = on_writer(
            &store,
            Box::new(|_| {
                std::thread::sleep(Duration::from_millis(300));
                Ok(())
            }),
        );
        tokio::time::sleep(pause).await;
        let before = on_writer(&store, insert("Before"));
        tokio::time::sleep(pause).await;
        // As SQLite does on a full disk or an I/O error: the whole
        // transaction is rolled back, and the job fails.
        let failing = on_writer(
            &store,
            Box::new(|c| {
                c.execute_batch("ROLLBACK").map_err(db)?;
                Err(StoreError::backend("the disk is full (as if)"))
            }),
        );
        tokio::time::sleep(pause).await;
        let after = on_writer(&store, insert("After"));
        held.await.unwrap().unwrap();
        assert!(failing.await.unwrap().is_err());
        assert!(before.await.unwrap().is_err(), "the batch was rolled back: its earlier job must hear so");
        assert!(after.await.unwrap().is_err(), "a job after the batch was rolled back must fail");
        let names = cooperatives(&store).await;
        assert!(names.is_empty(), "nothing of that batch may be on disk: {names:?}");
        // And the writer goes on.
        on_writer(&store, insert("Later")).await.unwrap().unwrap();
        assert_eq!(cooperatives(&store).await, ["Later"]);
        store.close().await;
    }

    /// A new store's waiting chat, for tests of its lines.
    async fn waiting_chat(store: &SqliteStore) -> refdesk_domain::ids::SessionId {
        use crate::prelude::*;
        let coop = store.create_cooperative("c", refdesk_domain::question::default_codes()).await.unwrap();
        let inst = store.create_institution(coop, "i").await.unwrap();
        let lib = store.create_library(inst, "lib", "Library").await.unwrap();
        let new = crate::NewSession {
            library: lib.placement.library,
            patron_name: None,
            patron_email: None,
            question: "q".into(),
            token_hash: "t".into(),
            transcript_to: None,
            transcript_utc_offset: None,
            keys: Default::default(),
            max_waiting: u32::MAX,
            max_waiting_per_net: u32::MAX,
            max_started_per_net_per_day: u32::MAX,
            max_started_in_library_per_day: u32::MAX,
            now: 1,
        };
        store.start_session(new).await.unwrap().0.ctx.id
    }

    fn patron_line(client_id: &str) -> crate::NewMessage {
        use refdesk_domain::chat::{Audience, Author, MessageKind};
        crate::NewMessage {
            author: Author::Patron { name: "P".into() },
            kind: MessageKind::Message,
            audience: Audience::Everyone,
            body: format!("line {client_id}"),
            client_id: Some(client_id.into()),
            system: None,
        }
    }

    fn any_line() -> crate::Guard {
        Box::new(|_| Ok(()))
    }

    /// A copy of a waiting chat counts each patron line stored after it was
    /// read once, in whatever order the lines are noted (a PostgreSQL
    /// batch answers its callers together), and nothing read with it.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_copy_counts_what_its_patron_wrote_while_waiting_whatever_the_order_lines_are_noted_in() {
        use crate::prelude::*;
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(SqliteStore::open(&dir.path().join("t.sqlite3"), Arc::new(Nowhere)).unwrap());
        let id = waiting_chat(&store).await;
        let before = Chats::append(&*store, id, patron_line("c0"), any_line(), 2).await.unwrap().message;
        let mut copy = store.session(id).await.unwrap().unwrap();
        let (first, second) = (
            Chats::append(&*store, id, patron_line("c1"), any_line(), 3).await.unwrap().message,
            Chats::append(&*store, id, patron_line("c22"), any_line(), 4).await.unwrap().message,
        );
        copy.note_line(&second);
        copy.note_line(&first);
        copy.note_line(&before);
        assert_eq!(copy.patron_chars, ("line c1".len() + "line c22".len()) as u64, "both, once; not the one read");
        assert_eq!(copy.last_seq, second.seq);
        Backend::close(&*store).await;
    }

    /// I4 without an index of client ids (migration 014): a line stored by
    /// a job that then failed is gone, though the writer's set of the
    /// session's client ids still names it — so the line sent again is
    /// stored, once.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_line_whose_job_failed_is_not_taken_for_stored() {
        use crate::prelude::*;
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(SqliteStore::open(&dir.path().join("t.sqlite3"), Arc::new(Nowhere)).unwrap());
        let id = waiting_chat(&store).await;
        assert!(!Chats::append(&*store, id, patron_line("a"), any_line(), 2).await.unwrap().duplicate);
        let failed = store
            .write(move |db| {
                Box::pin(async move {
                    crate::ops::append(db, id, patron_line("b"), any_line(), 3).await?;
                    Err::<((), Vec<Event>), _>(StoreError::backend("after the line"))
                })
            })
            .await;
        assert!(failed.is_err());
        let b = Chats::append(&*store, id, patron_line("b"), any_line(), 4).await.unwrap();
        assert!(!b.duplicate, "the line of the failed job is not there");
        let again = Chats::append(&*store, id, patron_line("b"), any_line(), 5).await.unwrap();
        assert!(again.duplicate && again.message.seq == b.message.seq);
        let a = Chats::append(&*store, id, patron_line("a"), any_line(), 6).await.unwrap();
        assert!(a.duplicate && a.message.seq == 2);
        let lines = store.messages_after(id, 0, 100).await.unwrap();
        let seqs: Vec<u64> = lines.iter().map(|m| m.seq).collect();
        assert_eq!(seqs, [1, 2, 3], "the question, a, b: once each, gapless");
        Backend::close(&*store).await;
    }

    /// What the writer's copy of a session tells of client ids: nothing for
    /// a session it does not keep or whose ids do not fit in its room,
    /// `Never` for an id no line of that sender's has, `Perhaps` for one it
    /// has; a set that would name an id twice, or grow past the room, goes
    /// until the session's copy is made again; the count follows.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_writers_copy_knows_a_kept_sessions_client_ids_within_its_room() {
        use crate::prelude::*;
        use crate::sql::ClientIdSeen::{Never, Perhaps, Unknown};
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.sqlite3");
        let store = Arc::new(SqliteStore::open(&path, Arc::new(Nowhere)).unwrap());
        let id = waiting_chat(&store).await;
        for cid in ["c0", "c1", "c2"] {
            Chats::append(&*store, id, patron_line(cid), any_line(), 2).await.unwrap();
        }
        let rec = store.session(id).await.unwrap().unwrap();
        let conn = open_conn(&path, true).unwrap();
        let indexes: Vec<String> = conn
            .prepare("SELECT name FROM pragma_index_list('messages')")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        assert!(!indexes.iter().any(|i| i.contains("client")), "no index of client ids: {indexes:?}");

        let mut small = kept::Kept::with_room(2);
        assert_eq!(small.client_id(&conn, id, "patron", "c0"), Unknown, "not kept");
        small.keep(&rec);
        assert_eq!(small.client_id(&conn, id, "patron", "c0"), Unknown, "three ids, room for two");
        assert_eq!(small.ids(), 0);

        let mut kept = kept::Kept::with_room(5);
        kept.keep(&rec);
        assert_eq!(kept.client_id(&conn, id, "patron", "c0"), Perhaps);
        assert_eq!(kept.client_id(&conn, id, "patron", "c9"), Never);
        assert_eq!(kept.client_id(&conn, id, "staff:1", "c0"), Never, "client ids are per sender");
        assert_eq!(kept.ids(), 3);
        kept.note_client_id(id, "patron", "c9");
        assert_eq!((kept.client_id(&conn, id, "patron", "c9"), kept.ids()), (Perhaps, 4));
        // Named twice (as after a rolled-back line): the database answers
        // until the copy is made again, and then the lines say.
        kept.note_client_id(id, "patron", "c9");
        assert_eq!((kept.client_id(&conn, id, "patron", "c2"), kept.ids()), (Unknown, 0));
        kept.keep(&rec);
        assert_eq!(kept.client_id(&conn, id, "patron", "c9"), Never, "c9 was never stored");
        assert_eq!(kept.client_id(&conn, id, "patron", "c2"), Perhaps);
        // Lines stored past the room: the set goes.
        kept.note_client_id(id, "patron", "c10");
        kept.note_client_id(id, "patron", "c11");
        assert_eq!((kept.client_id(&conn, id, "patron", "c11"), kept.ids()), (Perhaps, 5));
        kept.note_client_id(id, "patron", "c12");
        assert_eq!((kept.client_id(&conn, id, "patron", "c12"), kept.ids()), (Unknown, 0));
        kept.keep(&rec);
        assert_eq!((kept.client_id(&conn, id, "patron", "c2"), kept.ids()), (Perhaps, 3));
        kept.forget(id);
        assert_eq!((kept.client_id(&conn, id, "patron", "c2"), kept.ids()), (Unknown, 0));
        kept.keep(&rec);
        assert_eq!(kept.client_id(&conn, id, "patron", "c2"), Perhaps);
        kept.clear();
        assert_eq!((kept.len(), kept.ids()), (0, 0));
        Backend::close(&*store).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn long_reads_such_as_reports_leave_read_connections_for_the_chats() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(SqliteStore::open(&dir.path().join("t.sqlite3"), Arc::new(Nowhere)).unwrap());
        crate::ops::tests::long_reads_leave_room_for_the_rest(store.clone(), 2 * READERS, true).await;
        store.close().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_burst_of_reads_runs_a_few_at_a_time_on_a_few_connections() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(SqliteStore::open(&dir.path().join("t.sqlite3"), Arc::new(Nowhere)).unwrap());
        // One read at a time needs one thread: a thread counts itself
        // waiting before it answers.
        for _ in 0..20 {
            store.read(|_db| Box::pin(async { Ok(()) })).await.unwrap();
        }
        let started = lock(&store.readers.shared.queue).started;
        assert_eq!(started, 1, "{started} reader threads for one read at a time");
        let (running, most) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let threads = Arc::new(Mutex::new(std::collections::HashSet::new()));
        let mut reads = tokio::task::JoinSet::new();
        for _ in 0..200 {
            let (store, running, most, threads) = (store.clone(), running.clone(), most.clone(), threads.clone());
            reads.spawn(async move {
                store
                    .read(move |_db| {
                        // Runs on a reader thread: slow enough that the
                        // burst's reads would all overlap if let.
                        let name = std::thread::current().name().unwrap_or("unnamed").to_owned();
                        threads.lock().unwrap().insert(name);
                        most.fetch_max(running.fetch_add(1, Ordering::SeqCst) + 1, Ordering::SeqCst);
                        std::thread::sleep(Duration::from_millis(2));
                        running.fetch_sub(1, Ordering::SeqCst);
                        Box::pin(async { Ok(()) })
                    })
                    .await
            });
        }
        while let Some(done) = reads.join_next().await {
            done.unwrap().unwrap();
        }
        let most = most.load(Ordering::SeqCst);
        assert!(most <= READERS, "{most} reads ran at once");
        assert!(most > 1, "reads never ran side by side");
        let opened = store.readers.shared.opened.load(Ordering::Relaxed);
        assert!(opened <= READERS, "{opened} read connections were opened");
        // Each connection stays on its own thread (SQLite's memory stays in
        // that thread's arena of the C library's malloc).
        let threads = threads.lock().unwrap().clone();
        assert!(threads.len() <= READERS, "reads ran on {} threads: {threads:?}", threads.len());
        assert!(threads.iter().all(|t| t.starts_with("refdesk-sqlite-read-")), "reads ran on {threads:?}");
        store.close().await;
        assert!(matches!(store.read(|_db| Box::pin(async { Ok(()) })).await, Err(StoreError::Closed)));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_reader_that_has_read_nothing_for_a_while_gives_its_page_cache_back_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.sqlite3");
        let mut store = SqliteStore::open(&path, Arc::new(Nowhere)).unwrap();
        let idle = Duration::from_millis(100);
        store.readers = Readers::new(&path, idle);
        let gave_back = || store.readers.shared.gave_back.load(Ordering::Relaxed);
        let gives_back = |n: usize| async move {
            let deadline = Instant::now() + Duration::from_secs(10);
            while gave_back() < n {
                assert!(Instant::now() < deadline, "{} give-backs after 10 s, not {n}", gave_back());
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            assert_eq!(gave_back(), n);
        };
        let read = || {
            store.read(|db| {
                Box::pin(async move {
                    use crate::sql::Db;
                    db.row("SELECT count(*) AS n FROM sessions", &[], |r| r.int("n")).await
                })
            })
        };
        read().await.unwrap();
        // Nothing more is read: the thread gives its cache back once…
        gives_back(1).await;
        // …and, holding nothing, does not wake to give back again.
        tokio::time::sleep(idle * 5).await;
        assert_eq!(gave_back(), 1);
        // It reads as before, and gives back again after that read.
        assert_eq!(read().await.unwrap(), Some(0));
        gives_back(2).await;
        assert_eq!(lock(&store.readers.shared.queue).started, 1);
        store.close().await;
        assert_eq!(lock(&store.readers.shared.queue).started, 0, "the threads ended with the store");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_store_dropped_without_closing_ends_its_reader_threads() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("t.sqlite3"), Arc::new(Nowhere)).unwrap();
        store.read(|_db| Box::pin(async { Ok(()) })).await.unwrap();
        let shared = store.readers.shared.clone();
        assert_eq!(lock(&shared.queue).started, 1);
        drop(store);
        let deadline = Instant::now() + Duration::from_secs(10);
        while lock(&shared.queue).started > 0 {
            assert!(Instant::now() < deadline, "a reader thread outlived its store");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_read_that_panics_fails_alone_and_the_reads_go_on() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("t.sqlite3"), Arc::new(Nowhere)).unwrap();
        for _ in 0..2 * READERS {
            let failed = store.read::<()>(|_db| panic!("a read panicked on purpose (test)")).await;
            let Err(StoreError::Backend { what, .. }) = failed else { panic!("{failed:?}") };
            assert_eq!(what, "the read panicked: a read panicked on purpose (test)");
        }
        // The threads and their connections go on; all still read.
        let mut reads = tokio::task::JoinSet::new();
        let store = Arc::new(store);
        for _ in 0..4 * READERS {
            let store = store.clone();
            reads.spawn(async move {
                store
                    .read(|db| {
                        Box::pin(async move {
                            use crate::sql::Db;
                            db.row("SELECT 1 AS one", &[], |r| r.int("one")).await
                        })
                    })
                    .await
            });
        }
        while let Some(done) = reads.join_next().await {
            assert_eq!(done.unwrap().unwrap(), Some(1));
        }
        store.close().await;
    }
}
