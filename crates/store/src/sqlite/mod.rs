//! The SQLite backend: the embedded default.
//!
//! One writer thread owns the only writing connection. Writes from every
//! session queue up as jobs; the writer takes all that are waiting (up to
//! [`MAX_BATCH`]), runs each inside its own savepoint of one transaction,
//! commits once, and only then answers each caller and hands the batch's
//! events to the sink. That is group commit: one fsync for many messages,
//! and still no acknowledgement before the data is durable (I2). A failing
//! job rolls back to its savepoint and fails alone.
//!
//! Reads go to a small pool of read-only connections on blocking threads;
//! WAL mode lets them run beside the writer. Each read is one closure on one
//! thread: no read transaction stays open across an `.await`, so no reader
//! pins an old snapshot of the log.
//!
//! A job that panics must not take the writer with it: every later write
//! would fail while reads (and so a naive readiness check) went on working.
//! The panic is caught where the job's savepoint is open, the savepoint is
//! rolled back, and that one caller gets an error; the batch commits the
//! rest (see [`catch_panic`]). The writer reports each commit, and
//! [`Store::health`] says whether it can commit now.
//!
//! A third thread keeps the write-ahead log bounded (see [`checkpointer`]),
//! and [`SqliteStore::close`] ends all three so that the last connection to
//! close checkpoints the log and removes it.

mod rows;
mod schema;

use crate::{
    Acted, Appended, Decide, EventSink, Guard, ImConversation, LibraryRecord, NewFormQuestion, NewMessage, NewSession,
    NewStaff, OutboxMail, Plan, QuestionQuery, QuestionRecord, Result, SessionRecord, StaffEntry, StaffRecord,
    StaffUpdate, Store, StoreError, TimelineEntry, TranscriptMail, TransferTo,
};
use crate::{BlockRecord, Ending, Handover, LineFor, NewBlock, PatronKeys, PolicyPage, Script};
use async_trait::async_trait;
use refdesk_domain::chat::{Author, ConferenceMode, Message, SessionState};
use refdesk_domain::event::{Availability, Event, ImMessage, QueueEntry};
use refdesk_domain::ids::{CooperativeId, InstitutionId, LibraryId, QuestionId, SessionId, StaffId};
use refdesk_domain::org::Staff;
use refdesk_domain::question::{question_on_accept, Change, QuestionState, ResolutionCode};
use refdesk_domain::{DomainError, Millis};
use rows::*;
use rusqlite::{params, Connection, OptionalExtension};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot, watch};

/// The most jobs committed in one transaction.
const MAX_BATCH: usize = 1024;
/// How often the checkpointer copies the WAL back into the database file.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(250);
/// A log with more than this in it is restarted (see [`checkpointer`]).
const RESTART_WAL_BYTES: i64 = 16 << 20;
/// `journal_size_limit`: a restarted log file is cut back to this size, so a
/// burst that grew it does not keep its disk space for ever.
const WAL_SIZE_LIMIT: i64 = 32 << 20;
/// Read connections kept open.
const READERS: usize = 4;

/// A job's outcome once its savepoint is done: the events to publish if the
/// batch commits, and how to answer the caller.
struct Pending {
    events: Vec<Event>,
    finish: Box<dyn FnOnce(Result<()>) + Send>,
}

/// A write waiting for the writer. It is given the batch's transaction, or
/// `None` when the transaction could not begin.
type Job = Box<dyn FnOnce(Option<&mut Tx<'_>>) -> Pending + Send>;

/// What the writer thread is sent.
enum ToWriter {
    Job(Job),
    /// Finish the jobs already queued, checkpoint the log and close.
    Close,
}

/// What a job sees of the writer: the connection, inside the batch's
/// transaction, and the writer's cache of session rows.
struct Tx<'a> {
    conn: &'a Connection,
    /// Session rows as appends need them (context, members, state). Only
    /// appends use it, and they change nothing in it; every other write
    /// empties it, and so does a failed commit — so it never holds a row
    /// that differs from the database. It saves the two reads per message
    /// that were most of the writer's work per message.
    sessions: &'a mut HashMap<SessionId, SessionRecord>,
}

/// Sessions cached at most (a busy cooperative has fewer live ones).
const SESSION_CACHE: usize = 20_000;

/// The SQLite store. Cheap to share behind an `Arc`.
pub struct SqliteStore {
    jobs: mpsc::Sender<ToWriter>,
    readers: Arc<Readers>,
    /// The writer and checkpointer threads, joined by [`SqliteStore::close`].
    threads: Mutex<Option<Threads>>,
    /// The writer's last commit, for [`Store::health`].
    commits: watch::Receiver<Commit>,
    /// Set while a health ping waits in the writer's queue, so that however
    /// often `/readyz` is asked, at most one ping is queued.
    ping_queued: Arc<AtomicBool>,
}

/// The outcome of the writer's latest batch.
#[derive(Clone, Copy)]
struct Commit {
    /// Batches so far (0: none yet).
    n: u64,
    /// Whether it committed.
    ok: bool,
    at: Instant,
}

/// A batch that committed less than this long ago shows the writer can
/// commit; older, [`Store::health`] sends a no-op batch to find out.
const FRESH_COMMIT: Duration = Duration::from_secs(1);

struct Threads {
    writer: JoinHandle<()>,
    checkpointer: JoinHandle<()>,
    /// Dropping it wakes the checkpointer and stops it.
    stop_checkpoints: std::sync::mpsc::Sender<()>,
}

struct Readers {
    path: PathBuf,
    idle: Mutex<Vec<Connection>>,
    /// Set by `close`: a read after it fails, and none keeps its connection.
    closed: AtomicBool,
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
    }
    StoreError::Backend(e.to_string())
}

fn open_conn(path: &Path, read_only: bool) -> Result<Connection> {
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
    }
    conn.set_prepared_statement_cache_capacity(64);
    Ok(conn)
}

/// Waits for a lock another connection holds (the writer behind a restart
/// of the log, or the checkpointer behind the writer): 100 µs steps, so the
/// wait ends within a step of the lock's release (SQLite's own busy timeout
/// sleeps up to 100 ms at a time), and gives up after 100,000 of them (10 s
/// of sleep; more in time, as each wake-up costs too).
fn busy_wait(tries: i32) -> bool {
    const STEP: Duration = Duration::from_micros(100);
    if tries >= 100_000 {
        return false;
    }
    std::thread::sleep(STEP);
    true
}

/// Brings the schema up to date. Idempotent.
fn migrate(conn: &mut Connection) -> Result<()> {
    conn.execute_batch("PRAGMA journal_mode = WAL;").map_err(db)?;
    let version: usize = conn.query_row("PRAGMA user_version", [], |r| r.get(0)).map_err(db)?;
    if version > schema::MIGRATIONS.len() {
        return Err(StoreError::Backend(format!(
            "the database is at schema version {version}, newer than this refdesk ({}); upgrade refdesk",
            schema::MIGRATIONS.len()
        )));
    }
    for (i, sql) in schema::MIGRATIONS.iter().enumerate().skip(version) {
        let tx = conn.transaction().map_err(db)?;
        tx.execute_batch(sql).map_err(db)?;
        tx.execute_batch(&format!("PRAGMA user_version = {}", i + 1)).map_err(db)?;
        tx.commit().map_err(db)?;
        tracing::info!(version = i + 1, "applied SQLite migration");
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
            .map_err(|e| StoreError::Backend(format!("cannot start the checkpoint thread: {e}")))?;
        let (jobs, rx) = mpsc::channel::<ToWriter>(MAX_BATCH * 4);
        let (report, commits) = watch::channel(Commit { n: 0, ok: false, at: Instant::now() });
        let writer = std::thread::Builder::new()
            .name("refdesk-sqlite-writer".into())
            .spawn(move || writer(conn, rx, sink, report))
            .map_err(|e| StoreError::Backend(format!("cannot start the writer thread: {e}")))?;
        let readers =
            Arc::new(Readers { path: path.to_owned(), idle: Mutex::new(Vec::new()), closed: AtomicBool::new(false) });
        let threads = Mutex::new(Some(Threads { writer, checkpointer, stop_checkpoints }));
        Ok(SqliteStore { jobs, readers, threads, commits, ping_queued: Arc::default() })
    }

    /// For tests of the writer's panic handling only: a write that inserts a
    /// cooperative named `name`, then panics inside its job. Its caller gets
    /// an error; the insert is rolled back; the writer keeps serving.
    #[doc(hidden)]
    pub async fn write_that_panics(&self, name: &str) -> Result<()> {
        let name = name.to_owned();
        self.write_other(move |c| {
            c.execute("INSERT INTO cooperatives (name) VALUES (?1)", [&name]).map_err(db)?;
            panic!("a job panicked on purpose (test hook)");
        })
        .await
    }

    /// Runs `f` in the next group-committed transaction and returns its
    /// value once that transaction has committed. `f` may change sessions:
    /// the writer's session cache is emptied.
    async fn write<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> Result<(T, Vec<Event>)> + Send + 'static,
    ) -> Result<T> {
        self.write_append(move |c, cache| {
            cache.clear();
            f(c)
        })
        .await
    }

    /// Like [`Self::write`], for writes that touch no session row (sign-ins,
    /// presence, the outbox, IM): the session cache is kept.
    async fn write_other<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> Result<(T, Vec<Event>)> + Send + 'static,
    ) -> Result<T> {
        self.write_append(move |c, _| f(c)).await
    }

    /// The job every write goes through: `f` also gets the session cache
    /// (appends read it; see [`Tx::sessions`]).
    async fn write_append<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection, &mut HashMap<SessionId, SessionRecord>) -> Result<(T, Vec<Event>)> + Send + 'static,
    ) -> Result<T> {
        let (tx, rx) = oneshot::channel();
        let job: Job = Box::new(move |t| {
            let run = t.map(|t| {
                let (conn, cache) = (t.conn, &mut *t.sessions);
                // Caught inside the savepoint, so that what the job wrote
                // before it panicked is rolled back with it.
                savepoint(conn, |c| {
                    catch_panic(|| f(c, &mut *cache)).unwrap_or_else(|panicked| {
                        // It may have left the cache half-updated.
                        cache.clear();
                        Err(panicked)
                    })
                })
            });
            match run.unwrap_or(Err(StoreError::Backend("the batch could not begin".into()))) {
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

    /// See [`Store::close`]. The checkpointer closes first, then the writer
    /// runs what is queued, empties the log (TRUNCATE checkpoint) and closes
    /// last, so that SQLite removes the `-wal` file.
    async fn shut(&self) {
        let Some(threads) = self.threads.lock().ok().and_then(|mut t| t.take()) else { return };
        self.readers.closed.store(true, Ordering::Release);
        if let Ok(mut idle) = self.readers.idle.lock() {
            idle.clear();
        }
        let Threads { writer, checkpointer, stop_checkpoints } = threads;
        drop(stop_checkpoints);
        let _ = tokio::task::spawn_blocking(move || checkpointer.join()).await;
        // Queued behind every job already sent: those still run.
        let _ = self.jobs.send(ToWriter::Close).await;
        let _ = tokio::task::spawn_blocking(move || writer.join()).await;
    }

    /// Runs `f` on a read connection on a blocking thread.
    async fn read<T: Send + 'static>(&self, f: impl FnOnce(&Connection) -> Result<T> + Send + 'static) -> Result<T> {
        let readers = self.readers.clone();
        tokio::task::spawn_blocking(move || {
            if readers.closed.load(Ordering::Acquire) {
                return Err(StoreError::Closed);
            }
            let conn = match readers.idle.lock().map_err(|_| StoreError::Closed)?.pop() {
                Some(c) => c,
                None => open_conn(&readers.path, true)?,
            };
            let out = f(&conn);
            let mut idle = readers.idle.lock().map_err(|_| StoreError::Closed)?;
            if idle.len() < READERS && !readers.closed.load(Ordering::Acquire) {
                idle.push(conn);
            }
            out
        })
        .await
        .map_err(|e| StoreError::Backend(format!("read task failed: {e}")))?
    }
}

/// Runs `f`; a panic in it becomes an error (its message is logged and kept
/// in the error, which goes to logs only). `AssertUnwindSafe`: what `f` can
/// leave half-done is the open savepoint or transaction and the session
/// cache, and each caller undoes both when this returns an error.
fn catch_panic<T>(f: impl FnOnce() -> T) -> Result<T> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).map_err(|panic| {
        let what = panic
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "a panic".into());
        tracing::error!(panic = %what, "a SQLite write panicked; it is rolled back and the writer goes on");
        StoreError::Backend(format!("the write panicked: {what}"))
    })
}

fn savepoint<T>(conn: &Connection, f: impl FnOnce(&Connection) -> Result<T>) -> Result<T> {
    conn.execute_batch("SAVEPOINT job").map_err(db)?;
    match f(conn) {
        Ok(v) => {
            conn.execute_batch("RELEASE job").map_err(db)?;
            Ok(v)
        }
        Err(e) => {
            conn.execute_batch("ROLLBACK TO job; RELEASE job").map_err(db)?;
            Err(e)
        }
    }
}

/// The checkpointer thread: keeps the write-ahead log bounded without
/// stalling the writer behind the copy and its fsync.
///
/// Every [`CHECKPOINT_EVERY`] a PASSIVE checkpoint copies what the log holds
/// back into the database file, beside the writer. That alone never lets
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
fn checkpointer(conn: Connection, stop: std::sync::mpsc::Receiver<()>) {
    let page: i64 = conn.query_row("PRAGMA page_size", [], |r| r.get(0)).unwrap_or(4096);
    // Each WAL frame is a page and a 24-byte header.
    let restart_frames = RESTART_WAL_BYTES / (page + 24);
    // Stops when `close` sends or drops the other end.
    while let Err(std::sync::mpsc::RecvTimeoutError::Timeout) = stop.recv_timeout(CHECKPOINT_EVERY) {
        match wal_checkpoint(&conn, "PASSIVE") {
            Ok(frames) if frames > restart_frames => {
                let began = Instant::now();
                if let Err(e) = wal_checkpoint(&conn, "RESTART") {
                    tracing::warn!(error = %e, "WAL restart failed; will retry");
                }
                tracing::debug!(frames, took_us = began.elapsed().as_micros() as u64, "restarted the WAL");
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "WAL checkpoint failed; will retry"),
        }
    }
}

/// Runs a checkpoint; returns the frames in the log when it began.
fn wal_checkpoint(conn: &Connection, mode: &str) -> Result<i64> {
    conn.query_row(&format!("PRAGMA wal_checkpoint({mode})"), [], |r| r.get::<_, i64>(1)).map_err(db)
}

fn writer(conn: Connection, mut rx: mpsc::Receiver<ToWriter>, sink: Arc<dyn EventSink>, report: watch::Sender<Commit>) {
    let mut batch: Vec<Job> = Vec::with_capacity(MAX_BATCH);
    let mut sessions: HashMap<SessionId, SessionRecord> = HashMap::new();
    let mut closing = false;
    while let Some(first) = rx.blocking_recv() {
        match first {
            ToWriter::Job(job) => batch.push(job),
            ToWriter::Close => {
                // No new job gets in; those already queued still run.
                rx.close();
                closing = true;
            }
        }
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(ToWriter::Job(job)) => batch.push(job),
                Ok(ToWriter::Close) => {
                    rx.close();
                    closing = true;
                }
                Err(_) => break,
            }
        }
        if !batch.is_empty() {
            // A panic that escaped every job's own guard (in the batch's
            // bookkeeping, or the sink): the batch is undone and the writer
            // goes on. Callers whose answer it had not sent yet hear that the
            // store failed them (their channel closes).
            let outcome = catch_panic(|| commit_batch(&conn, &mut batch, &mut sessions, sink.as_ref()));
            let ok = outcome.unwrap_or_else(|_| {
                if !conn.is_autocommit() {
                    let _ = conn.execute_batch("ROLLBACK");
                }
                batch.clear();
                sessions.clear();
                false
            });
            report.send_modify(|c| *c = Commit { n: c.n + 1, ok, at: Instant::now() });
        }
        if closing && rx.is_empty() {
            break;
        }
    }
    // Copy the whole log back and empty it. If this is the last connection
    // (it is, unless a read is still running), closing it removes the log.
    if let Err(e) = wal_checkpoint(&conn, "TRUNCATE") {
        tracing::warn!(error = %e, "final WAL checkpoint failed; the log is replayed at the next start");
    }
    if let Err((_, e)) = conn.close() {
        tracing::warn!(error = %e, "closing the SQLite database failed");
    }
}

/// Runs one batch in one transaction, commits it, publishes its events and
/// answers each caller. Returns whether it committed.
fn commit_batch(
    conn: &Connection,
    batch: &mut Vec<Job>,
    sessions: &mut HashMap<SessionId, SessionRecord>,
    sink: &dyn EventSink,
) -> bool {
    let began = conn.execute_batch("BEGIN IMMEDIATE").map_err(db);
    let mut pending = Vec::with_capacity(batch.len());
    if sessions.len() > SESSION_CACHE {
        sessions.clear();
    }
    for job in batch.drain(..) {
        // If the transaction could not begin, no job runs: each caller hears why.
        let mut tx = Tx { conn, sessions: &mut *sessions };
        pending.push(job(began.as_ref().ok().map(|()| &mut tx)));
    }
    let committed = match began {
        Ok(()) => conn.execute_batch("COMMIT").map_err(db).inspect_err(|_| {
            let _ = conn.execute_batch("ROLLBACK");
        }),
        Err(e) => Err(e),
    };
    if let Err(e) = &committed {
        tracing::error!(error = %e, "SQLite batch failed; its writes are rolled back");
        // Rows read inside the failed transaction may never have been.
        sessions.clear();
    }
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

#[async_trait]
impl Store for SqliteStore {
    async fn close(&self) {
        self.shut().await
    }

    async fn health(&self) -> Result<()> {
        let alive = self.threads.lock().ok().and_then(|t| t.as_ref().map(|t| !t.writer.is_finished()));
        match alive {
            None => return Err(StoreError::Closed),
            Some(false) => return Err(StoreError::Backend("the writer thread has stopped".into())),
            Some(true) => {}
        }
        let mut commits = self.commits.clone();
        let last = *commits.borrow_and_update();
        if last.ok && last.at.elapsed() < FRESH_COMMIT {
            return Ok(());
        }
        // Ask for a batch unless a ping already waits; a full queue means a
        // batch is coming anyway.
        if !self.ping_queued.swap(true, Ordering::AcqRel) {
            let queued = self.ping_queued.clone();
            let ping: Job = Box::new(move |_| Pending {
                events: Vec::new(),
                finish: Box::new(move |_| queued.store(false, Ordering::Release)),
            });
            if self.jobs.try_send(ToWriter::Job(ping)).is_err() {
                self.ping_queued.store(false, Ordering::Release);
            }
        }
        let next = tokio::time::timeout(crate::HEALTH_WAIT, commits.wait_for(|c| c.n > last.n)).await;
        match next.map(|r| r.map(|c| *c)) {
            Ok(Ok(c)) if c.ok => Ok(()),
            Ok(Ok(_)) => Err(StoreError::Backend("the writer's last batch failed to commit".into())),
            Ok(Err(_)) => Err(StoreError::Backend("the writer thread has stopped".into())),
            Err(_) => Err(StoreError::Backend(format!(
                "the writer has committed nothing for {} s",
                last.at.elapsed().as_secs()
            ))),
        }
    }

    async fn is_empty(&self) -> Result<bool> {
        self.read(|c| {
            let n: i64 = c.query_row("SELECT count(*) FROM cooperatives", [], |r| r.get(0)).map_err(db)?;
            Ok(n == 0)
        })
        .await
    }

    async fn create_cooperative(&self, name: &str, codes: Vec<ResolutionCode>) -> Result<CooperativeId> {
        let name = name.to_owned();
        self.write(move |c| {
            c.execute("INSERT INTO cooperatives (name) VALUES (?1)", [&name]).map_err(db)?;
            let id = c.last_insert_rowid();
            for (i, code) in codes.iter().enumerate() {
                c.execute(
                    "INSERT INTO resolution_codes (cooperative_id, key, label, status, assign, follow_up, referred, exclude_from_stats, position)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                    params![id, code.key, code.label, code.status.as_str(), code.assign.as_str(), code.follow_up, code.referred, code.exclude_from_stats, i as i64],
                )
                .map_err(db)?;
            }
            Ok((CooperativeId(id), Vec::new()))
        })
        .await
    }

    async fn create_institution(&self, coop: CooperativeId, name: &str) -> Result<InstitutionId> {
        let name = name.to_owned();
        self.write(move |c| {
            c.execute("INSERT INTO institutions (cooperative_id, name) VALUES (?1, ?2)", params![coop.0, name])
                .map_err(db)?;
            Ok((InstitutionId(c.last_insert_rowid()), Vec::new()))
        })
        .await
    }

    async fn create_library(&self, institution: InstitutionId, slug: &str, name: &str) -> Result<LibraryRecord> {
        let (slug, name) = (slug.to_owned(), name.to_owned());
        self.write(move |c| {
            c.execute(
                "INSERT INTO libraries (institution_id, slug, name) VALUES (?1, ?2, ?3)",
                params![institution.0, slug, name],
            )
            .map_err(db)?;
            let lib = library_where(c, "l.id = ?1", params![c.last_insert_rowid()])?
                .ok_or(StoreError::Domain(DomainError::NotFound("institution")))?;
            Ok((lib, Vec::new()))
        })
        .await
    }

    async fn library_by_slug(&self, slug: &str) -> Result<Option<LibraryRecord>> {
        let slug = slug.to_owned();
        self.read(move |c| library_where(c, "l.slug = ?1", params![slug])).await
    }

    async fn libraries(&self) -> Result<Vec<LibraryRecord>> {
        self.read(|c| {
            let mut st = c.prepare_cached(&format!("{LIBRARY_SELECT} ORDER BY l.id")).map_err(db)?;
            let rows = st.query_map([], library_row).map_err(db)?;
            rows.collect::<rusqlite::Result<Vec<_>>>().map_err(db)
        })
        .await
    }

    async fn institutions(&self) -> Result<Vec<crate::InstitutionRecord>> {
        self.read(|c| {
            let mut st = c.prepare_cached(crate::sql::INSTITUTION_SELECT).map_err(db)?;
            let rows = st.query_map([], decode(|r| crate::sql::institution(r))).map_err(db)?;
            rows.collect::<rusqlite::Result<Vec<_>>>().map_err(db)
        })
        .await
    }

    async fn codes(&self, coop: CooperativeId) -> Result<Vec<ResolutionCode>> {
        self.read(move |c| codes_of(c, coop)).await
    }

    async fn create_staff(&self, new: NewStaff) -> Result<StaffId> {
        self.write(move |c| {
            c.execute(
                "INSERT INTO staff (library_id, username, display_name, role, password_hash) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![new.library.0, new.username, new.display_name, new.role.as_str(), new.password_hash],
            )
            .map_err(|e| match db(e) {
                StoreError::Domain(DomainError::Conflict(_)) => {
                    StoreError::Domain(DomainError::Conflict(format!("the username {} is taken", new.username)))
                }
                other => other,
            })?;
            Ok((StaffId(c.last_insert_rowid()), Vec::new()))
        })
        .await
    }

    async fn staff_by_username(&self, username: &str) -> Result<Option<StaffRecord>> {
        let username = username.to_owned();
        self.read(move |c| {
            c.query_row(
                &format!("{STAFF_SELECT} WHERE s.username = ?1"),
                [username],
                decode(|r| crate::sql::staff_record(r)),
            )
            .optional()
            .map_err(db)
        })
        .await
    }

    async fn staff_by_id(&self, id: StaffId) -> Result<Option<Staff>> {
        self.read(move |c| {
            c.query_row(&format!("{STAFF_SELECT} WHERE s.id = ?1"), [id.0], staff_row).optional().map_err(db)
        })
        .await
    }

    async fn create_login(&self, token_hash: &str, staff: StaffId, expires: Millis) -> Result<()> {
        let token_hash = token_hash.to_owned();
        self.write_other(move |c| {
            c.execute(
                "INSERT INTO logins (token_hash, staff_id, expires_at) VALUES (?1, ?2, ?3)",
                params![token_hash, staff.0, expires],
            )
            .map_err(db)?;
            Ok(((), Vec::new()))
        })
        .await
    }

    async fn staff_by_login(&self, token_hash: &str, now: Millis) -> Result<Option<Staff>> {
        let token_hash = token_hash.to_owned();
        self.read(move |c| {
            c.query_row(
                &format!("{STAFF_SELECT} JOIN logins g ON g.staff_id = s.id WHERE g.token_hash = ?1 AND g.expires_at > ?2 AND s.disabled = 0"),
                params![token_hash, now],
                staff_row,
            )
            .optional()
            .map_err(db)
        })
        .await
    }

    async fn delete_login(&self, token_hash: &str) -> Result<()> {
        let token_hash = token_hash.to_owned();
        self.write_other(move |c| {
            c.execute("DELETE FROM logins WHERE token_hash = ?1", [token_hash]).map_err(db)?;
            Ok(((), Vec::new()))
        })
        .await
    }

    async fn start_session(&self, new: NewSession) -> Result<(SessionRecord, QueueEntry)> {
        self.write(move |c| {
            library_where(c, "l.id = ?1", params![new.library.0])?
                .ok_or(StoreError::Domain(DomainError::NotFound("library")))?;
            let waiting: i64 = c
                .prepare_cached(crate::sql::WAITING_IN_LIBRARY)
                .map_err(db)?
                .query_row([new.library.0], |r| r.get(0))
                .map_err(db)?;
            if waiting >= i64::from(new.max_waiting) {
                return Err(crate::queue_full().into());
            }
            if let Some(net) = &new.keys.net {
                let from_net: i64 = c
                    .prepare_cached(crate::sql::WAITING_FROM_NET)
                    .map_err(db)?
                    .query_row([net], |r| r.get(0))
                    .map_err(db)?;
                if from_net >= i64::from(new.max_waiting_per_net) {
                    return Err(crate::net_full().into());
                }
            }
            c.execute(
                "INSERT INTO sessions (library_id, token_hash, state, patron_name, patron_email, question_text, created_at, last_message_at, transcript_to, queued_at, browser_key, net_key)
                 VALUES (?1, ?2, 'waiting', ?3, ?4, ?5, ?6, ?6, ?7, ?6, ?8, ?9)",
                params![new.library.0, new.token_hash, new.patron_name, new.patron_email, new.question, new.now, new.transcript_to, new.keys.browser, new.keys.net],
            )
            .map_err(db)?;
            let id = SessionId(c.last_insert_rowid());
            let rec = load_session(c, id)?;
            let message = insert_first_line(c, &rec, &new.question, new.now)?;
            let rec = load_session(c, id)?;
            let entry = crate::queue_entry(&rec, new.question, new.now);
            let events = crate::started_events(&entry, &rec, message);
            Ok(((rec, entry), events))
        })
        .await
    }

    async fn session(&self, id: SessionId) -> Result<Option<SessionRecord>> {
        self.read(move |c| session_where(c, "s.id = ?1", params![id.0])).await
    }

    async fn session_by_token(&self, token_hash: &str) -> Result<Option<SessionRecord>> {
        let token_hash = token_hash.to_owned();
        self.read(move |c| session_where(c, "s.token_hash = ?1", params![token_hash])).await
    }

    async fn waiting(&self) -> Result<Vec<QueueEntry>> {
        self.read(|c| {
            let mut st = c
                .prepare_cached(&format!("{QUEUE_SELECT} ORDER BY COALESCE(s.queued_at, s.created_at), s.id"))
                .map_err(db)?;
            let rows = st.query_map([], queue_row).map_err(db)?;
            rows.collect::<rusqlite::Result<Vec<_>>>().map_err(db)
        })
        .await
    }

    async fn sessions_of(&self, staff: StaffId) -> Result<Vec<SessionRecord>> {
        self.read(move |c| {
            sessions_where(
                c,
                "s.state = 'active' AND (s.librarian_id = ?1
                   OR EXISTS (SELECT 1 FROM session_members m WHERE m.session_id = s.id AND m.staff_id = ?1))
                 ORDER BY s.id",
                [staff.0],
            )
        })
        .await
    }

    async fn rate(&self, id: SessionId, rating: u8, comment: Option<String>) -> Result<()> {
        self.write(move |c| {
            let n = c
                .execute(
                    "UPDATE sessions SET rating = ?2, rating_comment = ?3 WHERE id = ?1",
                    params![id.0, rating, comment],
                )
                .map_err(db)?;
            if n == 0 {
                return Err(DomainError::NotFound("session").into());
            }
            Ok(((), Vec::new()))
        })
        .await
    }

    async fn policy(&self, library: LibraryId) -> Result<Option<PolicyPage>> {
        self.read(move |c| {
            c.query_row(crate::sql::POLICY_SELECT, [library.0], decode(|r| crate::sql::policy(r)))
                .optional()
                .map_err(db)
        })
        .await
    }

    async fn set_policy(&self, library: LibraryId, body: String, by: StaffId, now: Millis) -> Result<()> {
        self.write_other(move |c| {
            c.execute(
                "INSERT INTO policies (library_id, body, updated_at, updated_by) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (library_id) DO UPDATE SET body = excluded.body, updated_at = excluded.updated_at, updated_by = excluded.updated_by",
                params![library.0, body, now, by.0],
            )
            .map_err(db)?;
            Ok(((), Vec::new()))
        })
        .await
    }

    async fn scripts_for(&self, staff: &Staff) -> Result<Vec<Script>> {
        let (me, lib, coop) = (staff.id.0, staff.home.library.0, staff.home.cooperative.0);
        self.read(move |c| {
            let mut st = c
                .prepare_cached(
                    "SELECT id, scope, owner_id, title, body FROM scripts
                     WHERE (scope = 'personal' AND owner_id = ?1) OR (scope = 'library' AND owner_id = ?2)
                        OR (scope = 'cooperative' AND owner_id = ?3)
                     ORDER BY CASE scope WHEN 'personal' THEN 0 WHEN 'library' THEN 1 ELSE 2 END, title, id",
                )
                .map_err(db)?;
            let rows = st.query_map(params![me, lib, coop], script_row).map_err(db)?;
            rows.collect::<rusqlite::Result<Vec<_>>>().map_err(db)
        })
        .await
    }

    async fn script(&self, id: i64) -> Result<Option<Script>> {
        self.read(move |c| {
            c.query_row(&format!("{} WHERE id = ?1", crate::sql::SCRIPT_SELECT), [id], script_row)
                .optional()
                .map_err(db)
        })
        .await
    }

    async fn create_script(&self, scope: &str, owner: i64, title: String, body: String, now: Millis) -> Result<Script> {
        let scope = scope.to_owned();
        self.write_other(move |c| {
            c.execute(
                "INSERT INTO scripts (scope, owner_id, title, body, created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![scope, owner, title, body, now],
            )
            .map_err(db)?;
            Ok((Script { id: c.last_insert_rowid(), scope, owner, title, body }, Vec::new()))
        })
        .await
    }

    async fn delete_script(&self, id: i64) -> Result<()> {
        self.write_other(move |c| {
            c.execute("DELETE FROM scripts WHERE id = ?1", [id]).map_err(db)?;
            Ok(((), Vec::new()))
        })
        .await
    }

    async fn put_code(&self, coop: CooperativeId, code: ResolutionCode) -> Result<()> {
        self.write(move |c| {
            c.execute(
                "INSERT INTO resolution_codes (cooperative_id, key, label, status, assign, follow_up, referred, exclude_from_stats, position)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8,
                         (SELECT COALESCE(max(position), -1) + 1 FROM resolution_codes WHERE cooperative_id = ?1))
                 ON CONFLICT (cooperative_id, key) DO UPDATE SET label = excluded.label, status = excluded.status,
                   assign = excluded.assign, follow_up = excluded.follow_up, referred = excluded.referred,
                   exclude_from_stats = excluded.exclude_from_stats",
                params![
                    coop.0,
                    code.key,
                    code.label,
                    code.status.as_str(),
                    code.assign.as_str(),
                    code.follow_up,
                    code.referred,
                    code.exclude_from_stats
                ],
            )
            .map_err(db)?;
            Ok(((), Vec::new()))
        })
        .await
    }

    async fn queue_ahead(&self, queue: LibraryId, since: Millis, session: SessionId) -> Result<u64> {
        self.read(move |c| {
            c.prepare_cached(
                "SELECT count(*) FROM sessions s WHERE s.state = 'waiting' AND COALESCE(s.queue_library_id, s.library_id) = ?1
                 AND (COALESCE(s.queued_at, s.created_at) < ?2 OR (COALESCE(s.queued_at, s.created_at) = ?2 AND s.id < ?3))",
            )
            .map_err(db)?
            .query_row(params![queue.0, since, session.0], |r| r.get::<_, i64>(0))
            .map(|n| n as u64)
            .map_err(db)
        })
        .await
    }

    async fn idle_sessions(&self, before: Millis) -> Result<Vec<SessionId>> {
        self.read(move |c| {
            let mut st = c
                .prepare_cached("SELECT id FROM sessions WHERE state = 'active' AND last_message_at < ?1 ORDER BY id")
                .map_err(db)?;
            let rows = st.query_map([before], |r| Ok(SessionId(r.get(0)?))).map_err(db)?;
            rows.collect::<rusqlite::Result<Vec<_>>>().map_err(db)
        })
        .await
    }

    async fn live_sessions(&self) -> Result<Vec<SessionRecord>> {
        self.read(|c| sessions_where(c, "s.state IN ('waiting', 'active') ORDER BY s.id", [])).await
    }

    async fn accept(&self, id: SessionId, by: Staff, guard: Guard, now: Millis) -> Result<(SessionRecord, Message)> {
        self.write(move |c| {
            bump_version(c, id)?;
            let rec = load_session(c, id)?;
            guard(&rec)?;
            rec.state.accept()?;
            // The WHERE clause is the atomic claim (I6); the guard above has
            // already seen 'waiting', and the single writer keeps it so.
            let n = c
                .execute(
                    "UPDATE sessions SET state = 'active', librarian_id = ?2, accepted_at = ?3 WHERE id = ?1 AND state = 'waiting'",
                    params![id.0, by.id.0, now],
                )
                .map_err(db)?;
            if n != 1 {
                return Err(DomainError::Conflict("this chat was already accepted".into()).into());
            }
            // R1: the question is created at the first acceptance; a chat
            // accepted again after a transfer to a queue keeps its question.
            match rec.ctx.question {
                None => {
                    let q = question_on_accept();
                    let text: String = c
                        .query_row("SELECT question_text FROM sessions WHERE id = ?1", [id.0], |r| r.get(0))
                        .map_err(db)?;
                    c.execute(
                        "INSERT INTO questions (session_id, library_id, text, status, created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
                        params![id.0, rec.ctx.placement.library.0, text, q.status.as_str(), now],
                    )
                    .map_err(db)?;
                    let question = QuestionId(c.last_insert_rowid());
                    insert_timeline(c, question, now, Some(&by), &Change::Created { status: q.status })?;
                }
                Some(question) => {
                    let change = Change::Librarian { from: None, to: Some(by.id), how: "accepted from a queue".into() };
                    insert_timeline(c, question, now, Some(&by), &change)?;
                }
            }
            c.execute("DELETE FROM session_members WHERE session_id = ?1 AND staff_id = ?2", params![id.0, by.id.0])
                .map_err(db)?;
            let rec = load_session(c, id)?;
            let line = crate::accepted_line(&by);
            let message = insert_message(c, &rec, line, now)?;
            let rec = load_session(c, id)?;
            let events = vec![
                Event::QueueRemoved { session: id, placement: rec.queue, since: rec.queued_at, version: rec.ctx.version },
                Event::Message { ctx: rec.ctx.clone(), message: message.clone() },
                Event::SessionChanged(rec.summary()),
            ];
            Ok(((rec, message), events))
        })
        .await
    }

    async fn append(&self, id: SessionId, msg: NewMessage, guard: Guard, now: Millis) -> Result<Appended> {
        self.write_append(move |c, cache| {
            let rec = match cache.get(&id) {
                Some(rec) => rec.clone(),
                None => {
                    let rec = load_session(c, id)?;
                    cache.insert(id, rec.clone());
                    rec
                }
            };
            guard(&rec)?;
            if let Some(cid) = &msg.client_id {
                if let Some(message) = message_by_client_id(c, id, &msg.author.sender_key(), cid)? {
                    return Ok((Appended { message, duplicate: true }, Vec::new()));
                }
            }
            if !rec.state.accepts_messages() {
                return Err(DomainError::Conflict("this chat has ended".into()).into());
            }
            let message = insert_message(c, &rec, msg, now)?;
            let events = vec![Event::Message { ctx: rec.ctx, message: message.clone() }];
            Ok((Appended { message, duplicate: false }, events))
        })
        .await
    }

    async fn end(
        &self,
        id: SessionId,
        by: Author,
        guard: Guard,
        mail: TranscriptMail,
        ending: Ending,
        now: Millis,
    ) -> Result<Message> {
        self.write(move |c| {
            bump_version(c, id)?;
            let rec = load_session(c, id)?;
            guard(&rec)?;
            rec.state.end()?;
            c.execute("UPDATE sessions SET state = 'ended', ended_at = ?2 WHERE id = ?1", params![id.0, now])
                .map_err(db)?;
            let line = crate::ended_line(&by);
            let missed = (rec.state, &ending.missed, &rec.patron_email, rec.ctx.question);
            if let (SessionState::Waiting, Some(note), Some(_), Some(q)) = missed {
                // Sent back to a queue, and nobody took it again: its question stays.
                insert_timeline(c, q, now, None, &Change::Note { body: note.clone() })?;
            } else if let (SessionState::Waiting, Some(note), Some(_), None) = missed {
                let text: String =
                    c.query_row("SELECT question_text FROM sessions WHERE id = ?1", [id.0], |r| r.get(0)).map_err(db)?;
                c.execute(
                    "INSERT INTO questions (session_id, library_id, text, status, follow_up, created_at) VALUES (?1, ?2, ?3, 'new', 1, ?4)",
                    params![id.0, rec.ctx.placement.library.0, text, now],
                )
                .map_err(db)?;
                let q = QuestionId(c.last_insert_rowid());
                insert_timeline(c, q, now, None, &Change::Created { status: refdesk_domain::question::Status::New })?;
                insert_timeline(c, q, now, None, &Change::Note { body: note.clone() })?;
            }
            let last_words = match ending.last_words {
                Some(words) => {
                    let before = load_session(c, id)?;
                    Some((before.ctx.clone(), insert_message(c, &before, crate::last_words_line(words), now)?))
                }
                None => None,
            };
            let ended = load_session(c, id)?;
            let message = insert_message(c, &ended, line, now)?;
            let all = all_messages(c, id)?;
            if let Some(m) = mail(&ended, &all) {
                insert_mail(c, &m, ended.ctx.question, Some(id), now)?;
            }
            let mut events = Vec::new();
            if rec.state == SessionState::Waiting {
                events.push(Event::QueueRemoved { session: id, placement: rec.queue, since: rec.queued_at, version: rec.ctx.version });
            }
            let summary = load_session(c, id)?.summary();
            if let Some((ctx, words)) = last_words {
                events.push(Event::Message { ctx, message: words });
            }
            events.push(Event::Message { ctx: ended.ctx, message: message.clone() });
            events.push(Event::SessionChanged(summary));
            Ok((message, events))
        })
        .await
    }

    async fn set_transcript_to(&self, id: SessionId, email: Option<String>) -> Result<()> {
        self.write(move |c| {
            bump_version(c, id)?;
            // Only while the chat goes on: at its end the transcript is built
            // from this column, in the same transaction as the end.
            let n = c
                .execute(
                    "UPDATE sessions SET transcript_to = ?2 WHERE id = ?1 AND state <> 'ended'",
                    params![id.0, email],
                )
                .map_err(db)?;
            if n == 0 {
                let exists: Option<i64> = c
                    .query_row("SELECT id FROM sessions WHERE id = ?1", [id.0], |r| r.get(0))
                    .optional()
                    .map_err(db)?;
                return Err(match exists {
                    Some(_) => DomainError::Conflict("the chat has ended".into()).into(),
                    None => DomainError::NotFound("session").into(),
                });
            }
            Ok(((), Vec::new()))
        })
        .await
    }

    async fn set_code(
        &self,
        id: SessionId,
        code: String,
        by: Staff,
        guard: Guard,
        decide: Decide,
        now: Millis,
    ) -> Result<(QuestionState, Message)> {
        self.write(move |c| {
            bump_version(c, id)?;
            let rec = load_session(c, id)?;
            guard(&rec)?;
            let question = rec
                .ctx
                .question
                .ok_or_else(|| DomainError::Conflict("this chat has no question yet: accept it first".into()))?;
            let before = question_state(c, question)?;
            let codes = codes_of(c, rec.ctx.placement.cooperative)?;
            let after = decide(&before, &rec, &codes)?;
            write_question_state(c, question, &before, &after, &by, now)?;
            let label =
                codes.iter().find(|k| Some(&k.key) == after.code.as_ref()).map(|k| k.label.clone()).unwrap_or(code);
            let line = crate::code_set_line(&label, &by);
            let rec = load_session(c, id)?;
            let message = insert_message(c, &rec, line, now)?;
            let events = vec![Event::Message { ctx: rec.ctx, message: message.clone() }];
            Ok(((after, message), events))
        })
        .await
    }

    async fn conference(
        &self,
        id: SessionId,
        by: Staff,
        mode: ConferenceMode,
        line: LineFor,
        guard: Guard,
        now: Millis,
    ) -> Result<SessionRecord> {
        self.write(move |c| {
            bump_version(c, id)?;
            let rec = load_session(c, id)?;
            guard(&rec)?;
            if rec.ctx.member_mode(by.id) == Some(mode) {
                return Err(
                    DomainError::Conflict(format!("you are already in this chat in {} mode", mode.as_str())).into()
                );
            }
            let line = line(&rec);
            c.execute(
                "INSERT INTO session_members (session_id, staff_id, mode, joined_at) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (session_id, staff_id) DO UPDATE SET mode = excluded.mode",
                params![id.0, by.id.0, mode.as_str(), now],
            )
            .map_err(db)?;
            if let Some(q) = rec.ctx.question {
                let change = Change::Conference { staff: by.id, name: by.display_name.clone(), mode: Some(mode) };
                insert_timeline(c, q, now, Some(&by), &change)?;
            }
            let after = load_session(c, id)?;
            let mut events = Vec::new();
            if let Some(line) = line {
                let message = insert_message(c, &after, line, now)?;
                events.push(Event::Message { ctx: after.ctx.clone(), message });
            }
            events.push(Event::SessionChanged(after.summary()));
            Ok((after, events))
        })
        .await
    }

    async fn leave(&self, id: SessionId, by: Staff, line: LineFor, guard: Guard, now: Millis) -> Result<SessionRecord> {
        self.write(move |c| {
            bump_version(c, id)?;
            let rec = load_session(c, id)?;
            guard(&rec)?;
            let line = line(&rec);
            c.execute("DELETE FROM session_members WHERE session_id = ?1 AND staff_id = ?2", params![id.0, by.id.0])
                .map_err(db)?;
            if let Some(q) = rec.ctx.question {
                let change = Change::Conference { staff: by.id, name: by.display_name.clone(), mode: None };
                insert_timeline(c, q, now, Some(&by), &change)?;
            }
            // The line is written while they are still a member, so that it
            // reaches them too; then the context without them.
            let mut events = Vec::new();
            if let Some(line) = line {
                let message = insert_message(c, &rec, line, now)?;
                events.push(Event::Message { ctx: rec.ctx.clone(), message });
            }
            let after = load_session(c, id)?;
            events.push(Event::SessionChanged(after.summary()));
            Ok((after, events))
        })
        .await
    }

    async fn transfer(
        &self,
        id: SessionId,
        by: Staff,
        handover: Handover,
        guard: Guard,
        now: Millis,
    ) -> Result<SessionRecord> {
        let Handover { to, stay, line } = handover;
        self.write(move |c| {
            bump_version(c, id)?;
            let rec = load_session(c, id)?;
            guard(&rec)?;
            let previous = rec.ctx.librarian;
            let (new_librarian, how) = match &to {
                TransferTo::Staff(s) => {
                    c.execute(
                        "UPDATE sessions SET librarian_id = ?2 WHERE id = ?1 AND state = 'active'",
                        params![id.0, s.id.0],
                    )
                    .map_err(db)?;
                    c.execute("DELETE FROM session_members WHERE session_id = ?1 AND staff_id = ?2", params![id.0, s.id.0])
                        .map_err(db)?;
                    (Some(s.id), if s.id == by.id { "take_over" } else { "transfer" })
                }
                TransferTo::Queue { library, coop_now } => {
                    c.execute(
                        "UPDATE sessions SET state = 'waiting', librarian_id = NULL, queue_library_id = ?2, queued_at = ?3, queue_coop = ?4
                         WHERE id = ?1 AND state = 'active'",
                        params![id.0, library.library.0, now, coop_now],
                    )
                    .map_err(db)?;
                    (None, "queue")
                }
            };
            if stay {
                if let Some(prev) = previous.filter(|p| Some(*p) != new_librarian) {
                    c.execute(
                        "INSERT INTO session_members (session_id, staff_id, mode, joined_at) VALUES (?1, ?2, 'whisper', ?3)
                         ON CONFLICT (session_id, staff_id) DO UPDATE SET mode = 'whisper'",
                        params![id.0, prev.0, now],
                    )
                    .map_err(db)?;
                }
            }
            if let Some(q) = rec.ctx.question {
                let change = Change::Librarian { from: previous, to: new_librarian, how: how.into() };
                insert_timeline(c, q, now, Some(&by), &change)?;
            }
            let after = load_session(c, id)?;
            let ctx = crate::handover_audience(&rec, &after);
            let message = insert_message(c, &after, line, now)?;
            let mut events = vec![Event::Message { ctx, message }];
            if after.state == SessionState::Waiting {
                let text: String =
                    c.query_row("SELECT question_text FROM sessions WHERE id = ?1", [id.0], |r| r.get(0)).map_err(db)?;
                events.push(Event::QueueAdded(crate::queue_entry(&after, text, now)));
            }
            events.push(Event::SessionChanged(after.summary()));
            Ok((after, events))
        })
        .await
    }

    async fn rolled_up(&self, after: Millis, upto: Millis, rollup: Millis) -> Result<Vec<QueueEntry>> {
        self.read(move |c| {
            let mut st = c
                .prepare_cached(&format!(
                    "{QUEUE_SELECT} AND s.queue_coop = FALSE AND COALESCE(s.queued_at, s.created_at) + ?3 > ?1
                     AND COALESCE(s.queued_at, s.created_at) + ?3 <= ?2 ORDER BY s.queued_at, s.id"
                ))
                .map_err(db)?;
            let rows = st.query_map(params![after, upto, rollup], queue_row).map_err(db)?;
            rows.collect::<rusqlite::Result<Vec<_>>>().map_err(db)
        })
        .await
    }

    async fn create_form_question(&self, new: NewFormQuestion) -> Result<QuestionRecord> {
        self.write(move |c| {
            if let Some(net) = &new.keys.net {
                let today: i64 = c
                    .prepare_cached(crate::sql::FORMS_FROM_NET)
                    .map_err(db)?
                    .query_row(params![net, new.now - 86_400_000], |r| r.get(0))
                    .map_err(db)?;
                if today >= i64::from(new.max_per_net_per_day) {
                    return Err(crate::forms_full().into());
                }
            }
            c.execute(
                "INSERT INTO sessions (library_id, token_hash, state, patron_name, patron_email, question_text, created_at, ended_at, last_message_at, queued_at, browser_key, net_key, by_form)
                 VALUES (?1, ?2, 'ended', ?3, ?4, ?5, ?6, ?6, ?6, ?6, ?7, ?8, TRUE)",
                params![new.library.0, new.token_hash, new.patron_name, new.patron_email, new.question, new.now, new.keys.browser, new.keys.net],
            )
            .map_err(db)?;
            let session = SessionId(c.last_insert_rowid());
            let rec = load_session(c, session)?;
            insert_first_line(c, &rec, &new.question, new.now)?;
            // The form question has no chat to wait for: it is not live, and
            // "new" says it needs work (DESIGN §9).
            c.execute(
                "INSERT INTO questions (session_id, library_id, text, status, code, created_at) VALUES (?1, ?2, ?3, 'new', NULL, ?4)",
                params![session.0, new.library.0, new.question, new.now],
            )
            .map_err(db)?;
            let q = QuestionId(c.last_insert_rowid());
            insert_timeline(c, q, new.now, None, &Change::Created { status: refdesk_domain::question::Status::New })?;
            Ok((question_where(c, q)?, Vec::new()))
        })
        .await
    }

    async fn set_availability(&self, id: StaffId, a: Availability, now: Millis) -> Result<()> {
        self.write_other(move |c| {
            let coop: i64 = c
                .query_row(
                    "SELECT i.cooperative_id FROM staff s JOIN libraries l ON l.id = s.library_id JOIN institutions i ON i.id = l.institution_id WHERE s.id = ?1",
                    [id.0],
                    |r| r.get(0),
                )
                .optional()
                .map_err(db)?
                .ok_or(StoreError::Domain(DomainError::NotFound("staff member")))?;
            c.execute("UPDATE staff SET availability = ?2, last_seen = max(last_seen, ?3) WHERE id = ?1", params![id.0, a.as_str(), now])
                .map_err(db)?;
            let event = Event::Availability { staff: id, cooperative: CooperativeId(coop), availability: a };
            Ok(((), vec![event]))
        })
        .await
    }

    async fn touch(&self, ids: Vec<StaffId>, now: Millis) -> Result<()> {
        self.write_other(move |c| {
            let mut st =
                c.prepare_cached("UPDATE staff SET last_seen = max(last_seen, ?2) WHERE id = ?1").map_err(db)?;
            for id in ids {
                st.execute(params![id.0, now]).map_err(db)?;
            }
            Ok(((), Vec::new()))
        })
        .await
    }

    async fn sign_off_stale(&self, before: Millis) -> Result<Vec<Staff>> {
        self.write_other(move |c| {
            let stale: Vec<Staff> = {
                let mut st = c
                    .prepare_cached(&format!("{STAFF_SELECT} WHERE s.availability <> 'off_duty' AND s.last_seen < ?1"))
                    .map_err(db)?;
                let rows = st.query_map([before], staff_row).map_err(db)?;
                rows.collect::<rusqlite::Result<Vec<_>>>().map_err(db)?
            };
            let mut events = Vec::new();
            for s in &stale {
                c.execute("UPDATE staff SET availability = 'off_duty' WHERE id = ?1", [s.id.0]).map_err(db)?;
                events.push(Event::Availability {
                    staff: s.id,
                    cooperative: s.home.cooperative,
                    availability: Availability::OffDuty,
                });
            }
            Ok((stale, events))
        })
        .await
    }

    async fn staff_of(&self, coop: CooperativeId) -> Result<Vec<StaffEntry>> {
        self.read(move |c| {
            let mut st = c
                .prepare_cached(&format!("{STAFF_SELECT} WHERE i.cooperative_id = ?1 ORDER BY s.display_name, s.id"))
                .map_err(db)?;
            let rows = st.query_map([coop.0], decode(|r| crate::sql::staff_entry(r))).map_err(db)?;
            rows.collect::<rusqlite::Result<Vec<_>>>().map_err(db)
        })
        .await
    }

    async fn update_staff(&self, id: StaffId, update: StaffUpdate) -> Result<()> {
        self.write(move |c| {
            let exists: Option<i64> =
                c.query_row("SELECT id FROM staff WHERE id = ?1", [id.0], |r| r.get(0)).optional().map_err(db)?;
            if exists.is_none() {
                return Err(DomainError::NotFound("staff member").into());
            }
            if let Some(role) = update.role {
                c.execute("UPDATE staff SET role = ?2 WHERE id = ?1", params![id.0, role.as_str()]).map_err(db)?;
            }
            if let Some(hash) = &update.password_hash {
                c.execute("UPDATE staff SET password_hash = ?2 WHERE id = ?1", params![id.0, hash]).map_err(db)?;
            }
            if let Some(disabled) = update.disabled {
                c.execute("UPDATE staff SET disabled = ?2 WHERE id = ?1", params![id.0, disabled]).map_err(db)?;
                if disabled {
                    c.execute("UPDATE staff SET availability = 'off_duty' WHERE id = ?1", [id.0]).map_err(db)?;
                }
            }
            // A disabled account, a new password or a new role: every
            // sign-in ends, and every open connection with it, so no old
            // cookie or socket keeps old powers.
            c.execute("DELETE FROM logins WHERE staff_id = ?1", [id.0]).map_err(db)?;
            Ok(((), vec![Event::SignedOut { staff: id }]))
        })
        .await
    }

    async fn im_send(
        &self,
        from: Staff,
        to: StaffId,
        body: String,
        client_id: Option<String>,
        now: Millis,
    ) -> Result<(ImMessage, bool)> {
        self.write_other(move |c| {
            let (low, high) = if from.id.0 < to.0 { (from.id.0, to.0) } else { (to.0, from.id.0) };
            if let Some(cid) = &client_id {
                let found = c
                    .prepare_cached(&format!("{IM_SELECT} WHERE m.sender = ?1 AND m.recipient = ?2 AND m.client_id = ?3"))
                    .map_err(db)?
                    .query_row(params![from.id.0, to.0, cid], im_row)
                    .optional()
                    .map_err(db)?;
                if let Some(m) = found {
                    return Ok(((m, true), Vec::new()));
                }
            }
            let seq: i64 = c
                .query_row("SELECT COALESCE(max(seq), 0) + 1 FROM im_messages WHERE low = ?1 AND high = ?2", params![low, high], |r| {
                    r.get(0)
                })
                .map_err(db)?;
            c.execute(
                "INSERT INTO im_messages (low, high, seq, sender, recipient, body, client_id, at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                params![low, high, seq, from.id.0, to.0, body, client_id, now],
            )
            .map_err(db)?;
            let m = ImMessage {
                seq: seq as u64,
                from: from.id,
                from_name: from.display_name.clone(),
                to,
                body,
                client_id,
                at: now,
            };
            Ok(((m.clone(), false), vec![Event::Im(m)]))
        })
        .await
    }

    async fn im_after(&self, a: StaffId, b: StaffId, after: u64, limit: u32) -> Result<Vec<ImMessage>> {
        self.read(move |c| {
            let (low, high) = if a.0 < b.0 { (a.0, b.0) } else { (b.0, a.0) };
            let mut st = c
                .prepare_cached(&format!(
                    "{IM_SELECT} WHERE m.low = ?1 AND m.high = ?2 AND m.seq > ?3 ORDER BY m.seq LIMIT ?4"
                ))
                .map_err(db)?;
            let rows = st.query_map(params![low, high, after as i64, limit], im_row).map_err(db)?;
            rows.collect::<rusqlite::Result<Vec<_>>>().map_err(db)
        })
        .await
    }

    async fn im_conversations(&self, me: StaffId) -> Result<Vec<ImConversation>> {
        self.read(move |c| {
            let mut st = c.prepare_cached(crate::sql::IM_CONVERSATIONS).map_err(db)?;
            let rows = st.query_map([me.0], decode(|r| crate::sql::im_conversation(r))).map_err(db)?;
            rows.collect::<rusqlite::Result<Vec<_>>>().map_err(db)
        })
        .await
    }

    async fn im_read(&self, me: StaffId, peer: StaffId, seq: u64) -> Result<()> {
        self.write_other(move |c| {
            c.execute(
                "INSERT INTO im_reads (staff_id, peer_id, last_read) VALUES (?1, ?2, ?3)
                 ON CONFLICT (staff_id, peer_id) DO UPDATE SET last_read = max(last_read, excluded.last_read)",
                params![me.0, peer.0, seq as i64],
            )
            .map_err(db)?;
            Ok(((), Vec::new()))
        })
        .await
    }

    async fn messages_after(&self, id: SessionId, after: u64, limit: u32) -> Result<Vec<Message>> {
        self.read(move |c| {
            let mut st = c
                .prepare_cached(&format!("{MESSAGE_SELECT} WHERE session_id = ?1 AND seq > ?2 ORDER BY seq LIMIT ?3"))
                .map_err(db)?;
            let rows = st.query_map(params![id.0, after as i64, limit], message_row).map_err(db)?;
            rows.collect::<rusqlite::Result<Vec<_>>>().map_err(db)
        })
        .await
    }

    async fn questions(&self, query: QuestionQuery) -> Result<Vec<QuestionRecord>> {
        self.read(move |c| {
            let (sql, args) = question_query_sql(&query);
            let mut st = c.prepare_cached(&sql).map_err(db)?;
            let rows = st.query_map(rusqlite::params_from_iter(args), question_row).map_err(db)?;
            rows.collect::<rusqlite::Result<Vec<_>>>().map_err(db)
        })
        .await
    }

    async fn act_on_question(&self, id: QuestionId, by: Staff, plan: Plan, now: Millis) -> Result<Acted> {
        self.write(move |c| {
            let question = question_where(c, id)?;
            bump_version(c, question.session)?;
            let session = load_session(c, question.session)?;
            let before = question.state.clone();
            let plan = plan(&question, &session)?;
            if let Some(after) = &plan.state {
                write_question_state(c, id, &before, after, &by, now)?;
            }
            for entry in &plan.entries {
                insert_timeline(c, id, now, Some(&by), entry)?;
            }
            let mut events = Vec::new();
            let line = match plan.line {
                Some(line) => {
                    let message = insert_message(c, &session, line, now)?;
                    events.push(Event::Message { ctx: session.ctx.clone(), message: message.clone() });
                    Some(message)
                }
                None => None,
            };
            let mail = match &plan.mail {
                Some(m) => Some(insert_mail(c, m, Some(id), Some(session.ctx.id), now)?),
                None => None,
            };
            let question = question_where(c, id)?;
            Ok((Acted { question, line, mail }, events))
        })
        .await
    }

    async fn due_mail(&self, now: Millis, limit: u32) -> Result<Vec<OutboxMail>> {
        self.read(move |c| {
            let mut st = c
                .prepare_cached(&format!(
                    "{OUTBOX_SELECT} WHERE sent_at IS NULL AND next_attempt_at <= ?1 ORDER BY next_attempt_at, id LIMIT ?2"
                ))
                .map_err(db)?;
            let rows = st.query_map(params![now, limit], outbox_row).map_err(db)?;
            rows.collect::<rusqlite::Result<Vec<_>>>().map_err(db)
        })
        .await
    }

    async fn claim_mail(&self, now: Millis, limit: u32, lease_until: Millis) -> Result<Vec<OutboxMail>> {
        self.write_other(move |c| {
            let mut st = c
                .prepare_cached(&format!(
                    "{OUTBOX_SELECT} WHERE sent_at IS NULL AND next_attempt_at <= ?1 ORDER BY next_attempt_at, id LIMIT ?2"
                ))
                .map_err(db)?;
            let rows = st.query_map(params![now, limit], outbox_row).map_err(db)?;
            let claimed = rows.collect::<rusqlite::Result<Vec<_>>>().map_err(db)?;
            let mut lease = c.prepare_cached("UPDATE outbox SET next_attempt_at = ?2 WHERE id = ?1").map_err(db)?;
            for m in &claimed {
                lease.execute(params![m.id, lease_until]).map_err(db)?;
            }
            Ok((claimed, Vec::new()))
        })
        .await
    }

    async fn mail_sent(&self, id: i64, now: Millis) -> Result<()> {
        self.write_other(move |c| {
            c.execute(
                "UPDATE outbox SET sent_at = ?2, attempts = attempts + 1, last_error = NULL WHERE id = ?1",
                params![id, now],
            )
            .map_err(db)?;
            Ok(((), Vec::new()))
        })
        .await
    }

    async fn mail_failed(&self, id: i64, error: &str, retry_at: Millis) -> Result<()> {
        let error = error.to_owned();
        self.write_other(move |c| {
            c.execute(
                "UPDATE outbox SET attempts = attempts + 1, last_error = ?2, next_attempt_at = ?3 WHERE id = ?1 AND sent_at IS NULL",
                params![id, error, retry_at],
            )
            .map_err(db)?;
            Ok(((), Vec::new()))
        })
        .await
    }

    async fn mail(&self, id: i64) -> Result<Option<OutboxMail>> {
        self.read(move |c| {
            c.query_row(&format!("{OUTBOX_SELECT} WHERE id = ?1"), [id], outbox_row).optional().map_err(db)
        })
        .await
    }

    async fn next_mail_due(&self) -> Result<Option<Millis>> {
        self.read(|c| {
            c.query_row("SELECT min(next_attempt_at) FROM outbox WHERE sent_at IS NULL", [], |r| r.get(0)).map_err(db)
        })
        .await
    }

    async fn transcripts_to(&self, to: &str, since: Millis) -> Result<u64> {
        let to = to.to_owned();
        self.read(move |c| {
            c.prepare_cached(crate::sql::TRANSCRIPTS_TO)
                .map_err(db)?
                .query_row(params![to, since], |r| r.get::<_, i64>(0))
                .map(|n| n as u64)
                .map_err(db)
        })
        .await
    }

    async fn block(&self, new: NewBlock) -> Result<BlockRecord> {
        self.write_other(move |c| {
            let rec = load_session(c, new.session)?;
            let (browser, net): (Option<String>, Option<String>) = c
                .query_row("SELECT browser_key, net_key FROM sessions WHERE id = ?1", [new.session.0], |r| {
                    Ok((r.get(0)?, r.get(1)?))
                })
                .map_err(db)?;
            if browser.is_none() && net.is_none() {
                return Err(crate::nothing_to_block().into());
            }
            c.execute(
                "INSERT INTO blocks (cooperative_id, library_id, session_id, browser_key, net_key, reason, created_by, created_at, expires_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                params![
                    rec.ctx.placement.cooperative.0,
                    rec.ctx.placement.library.0,
                    new.session.0,
                    browser,
                    net,
                    new.reason,
                    new.by.id.0,
                    new.now,
                    new.expires_at
                ],
            )
            .map_err(db)?;
            let id = c.last_insert_rowid();
            if let Some(q) = rec.ctx.question {
                let change = Change::Blocked { block: id, reason: new.reason.clone(), until: new.expires_at };
                insert_timeline(c, q, new.now, Some(&new.by), &change)?;
            }
            Ok((block_where(c, id)?, Vec::new()))
        })
        .await
    }

    async fn lift_block(&self, id: i64, by: Staff, now: Millis) -> Result<BlockRecord> {
        self.write_other(move |c| {
            let n = c
                .execute(
                    "UPDATE blocks SET lifted_at = ?2, lifted_by = ?3 WHERE id = ?1 AND lifted_at IS NULL",
                    params![id, now, by.id.0],
                )
                .map_err(db)?;
            let block = block_where(c, id)?;
            if let (1, Some(q)) = (n, block.question) {
                insert_timeline(c, q, now, Some(&by), &Change::Unblocked { block: id })?;
            }
            Ok((block, Vec::new()))
        })
        .await
    }

    async fn block_by_id(&self, id: i64) -> Result<Option<BlockRecord>> {
        self.read(move |c| match block_where(c, id) {
            Ok(b) => Ok(Some(b)),
            Err(StoreError::Domain(DomainError::NotFound(_))) => Ok(None),
            Err(e) => Err(e),
        })
        .await
    }

    async fn blocks(&self, scope: crate::ScopeLevel, limit: u32) -> Result<Vec<BlockRecord>> {
        self.read(move |c| {
            let (cond, id) = crate::sql::block_scope(scope);
            let text = format!("{} WHERE {cond} ORDER BY b.id DESC LIMIT ?2", crate::sql::BLOCK_SELECT);
            let mut st = c.prepare_cached(&text).map_err(db)?;
            let rows = st.query_map(params![id, limit], decode(|r| crate::sql::block(r))).map_err(db)?;
            rows.collect::<rusqlite::Result<Vec<_>>>().map_err(db)
        })
        .await
    }

    async fn active_block(&self, coop: CooperativeId, keys: PatronKeys, now: Millis) -> Result<Option<BlockRecord>> {
        self.read(move |c| {
            let text = format!("{} {}", crate::sql::BLOCK_SELECT, crate::sql::ACTIVE_BLOCK);
            c.prepare_cached(&text)
                .map_err(db)?
                .query_row(params![coop.0, keys.browser, keys.net, now], decode(|r| crate::sql::block(r)))
                .optional()
                .map_err(db)
        })
        .await
    }

    async fn blocked_may_ask(&self, library: LibraryId) -> Result<bool> {
        self.read(move |c| {
            let may: Option<bool> = c
                .query_row("SELECT blocked_may_ask FROM library_settings WHERE library_id = ?1", [library.0], |r| {
                    r.get(0)
                })
                .optional()
                .map_err(db)?;
            Ok(may.unwrap_or(true))
        })
        .await
    }

    async fn set_blocked_may_ask(&self, library: LibraryId, may: bool) -> Result<()> {
        self.write_other(move |c| {
            c.execute(
                "INSERT INTO library_settings (library_id, blocked_may_ask) VALUES (?1, ?2)
                 ON CONFLICT (library_id) DO UPDATE SET blocked_may_ask = excluded.blocked_may_ask",
                params![library.0, may],
            )
            .map_err(db)?;
            Ok(((), Vec::new()))
        })
        .await
    }

    async fn question(&self, id: QuestionId) -> Result<Option<QuestionRecord>> {
        self.read(move |c| match question_where(c, id) {
            Ok(q) => Ok(Some(q)),
            Err(StoreError::Domain(DomainError::NotFound(_))) => Ok(None),
            Err(e) => Err(e),
        })
        .await
    }

    async fn timeline(&self, id: QuestionId) -> Result<Vec<TimelineEntry>> {
        self.read(move |c| {
            let mut st = c.prepare_cached(crate::sql::TIMELINE_SELECT).map_err(db)?;
            let rows = st.query_map([id.0], timeline_row).map_err(db)?;
            rows.collect::<rusqlite::Result<Vec<_>>>().map_err(db)
        })
        .await
    }
}
