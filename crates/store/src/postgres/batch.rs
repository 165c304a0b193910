//! Group commit for appends on PostgreSQL: a node's concurrent appends go
//! to the database together, in one statement (`refdesk_append_many` in
//! the migrations), so in one round trip and one commit (one WAL flush)
//! instead of one each.
//!
//! An append whose guard passed on the store's copy of its session (the
//! fast path of [`super::PgStore`]'s `append`) becomes a [`Job`] in a
//! bounded queue ([`QUEUE`]: past it, appends wait for room). A few batch
//! tasks take turns at the queue: the one whose turn it is takes every job
//! waiting, up to [`MAX_BATCH`], hands the queue on and runs its batch.
//! Alone, an append is a batch of one and costs what it did before
//! batching; under load, appends gather while the batch ahead of them
//! commits ([`gather`], for [`GATHER_WAIT`] at most), and once a gathering
//! batch is large, several batches can be on their way at once (their
//! number bounded by the tasks, [`BATCH_TASKS`] at most).
//!
//! What holds for one append holds for each in a batch:
//!
//! - commit before answer, publish after commit (I2): the statement runs in
//!   autocommit, so its answer means committed. Only then does the task
//!   publish the stored messages' events (one [`EventSink::publish`], in
//!   the order the database stored them) and answer each caller. The task,
//!   not the caller, carries the job: a caller that went away still has its
//!   committed message published.
//! - the function checks each append as the shared `ops::chats::append` does (the version
//!   the guard saw, a re-sent client id (I4), an ended chat), in arrival
//!   order within a session, and locks the sessions' rows in ascending id
//!   order, so that two nodes' batches on the same sessions never deadlock.
//! - a batch that fails as a whole tells no caller it succeeded, and
//!   publishes nothing. If the database refused the statement (so it rolled
//!   back), each append is tried alone: one bad append fails alone, as it
//!   would have without batching. If the outcome is unknown (the
//!   connection broke, the server went away) or nothing ran (no
//!   connection), each caller gets the error, as it would have alone; a
//!   retry then could store a message twice.

use super::db;
use crate::sql::Cols;
use crate::{CommitReport, EventSink, NewMessage, Result, StoreError};
use refdesk_domain::chat::{Message, SessionContext, SystemEvent};
use refdesk_domain::event::Event;
use refdesk_domain::Millis;
use sqlx::postgres::{PgArguments, PgRow};
use sqlx::query::Query;
use sqlx::{PgPool, Postgres};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::{mpsc, oneshot, Mutex, Notify};

/// The most appends one statement carries: enough that a batch gathers
/// what arrives during a commit at thousands of messages a second, few
/// enough that a batch stays a short transaction holding few row locks.
const MAX_BATCH: usize = 256;

/// Batches of appends one store has on their way at once, at most: its
/// batch tasks (fewer with a smaller pool: each holds a connection while
/// its statement runs). More than one, so that under heavy load a commit's
/// wait for the disk does not keep the next large batch from starting.
pub const BATCH_TASKS: usize = 4;

/// The size from which a batch starts while another is on its way;
/// smaller ones wait for it to end, gathering ([`gather`]).
const GATHER: usize = 64;

/// The longest a batch waits for the one on its way: many times a commit
/// under load (a few milliseconds), so that only a batch held up for
/// another reason (a row locked by another transaction, a stalled disk) is
/// not waited for to the end. (`PgOptions::gather_wait`; a test lengthens
/// it to tell the rules apart on a loaded machine.)
pub(super) const GATHER_WAIT: std::time::Duration = std::time::Duration::from_millis(100);

/// Appends waiting at most: enough for every task's next batch; past it an
/// append waits for room, so a database that falls behind slows the senders
/// instead of filling the memory.
const QUEUE: usize = BATCH_TASKS * MAX_BATCH;

/// What `refdesk_append_many` did with one append.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Outcome {
    /// The message is stored.
    Stored,
    /// The client id was already used: the stored message's seq is returned.
    Duplicate,
    /// The chat has ended.
    Ended,
    /// No such session.
    Missing,
    /// The copy's version is not the row's: read it again.
    Stale,
}

impl Outcome {
    fn parse(s: &str) -> Result<Outcome> {
        Ok(match s {
            "stored" => Outcome::Stored,
            "duplicate" => Outcome::Duplicate,
            "ended" => Outcome::Ended,
            "missing" => Outcome::Missing,
            "stale" => Outcome::Stale,
            other => return Err(StoreError::backend(format!("refdesk_append_many answered {other:?}"))),
        })
    }
}

/// An append's answer: its outcome, its seq (the stored one for a
/// duplicate, 0 when nothing was stored) and, when stored, the message.
pub(super) struct Answer {
    pub(super) outcome: Outcome,
    pub(super) seq: i64,
    pub(super) stored: Option<Message>,
}

/// An append waiting for its batch.
struct Job {
    /// The version of the session the caller's guard passed on.
    version: i64,
    /// The session as its event names it.
    ctx: SessionContext,
    msg: NewMessage,
    now: Millis,
    answer: oneshot::Sender<Result<Answer>>,
}

/// The queue of appends and the tasks that batch them. The tasks stop once
/// this is dropped and the queue is empty.
pub(super) struct Appender {
    jobs: mpsc::Sender<Job>,
}

impl Appender {
    /// Starts `tasks` batch tasks (at least one) that store appends on `pool`
    /// and publish to `sink`.
    pub(super) fn start(pool: PgPool, sink: Arc<dyn EventSink>, tasks: usize, wait: std::time::Duration) -> Appender {
        let (jobs, queue) = mpsc::channel(QUEUE);
        let queue = Arc::new(Mutex::new(queue));
        let in_flight = Arc::new(InFlight { count: AtomicUsize::new(0), ended: Notify::new(), wait });
        for _ in 0..tasks.max(1) {
            tokio::spawn(batches(queue.clone(), in_flight.clone(), pool.clone(), sink.clone()));
        }
        Appender { jobs }
    }

    /// Appends `msg` to the session `ctx` names if the row is still at
    /// `version`, in the next batch. Once queued, the append runs to its
    /// end whether or not the caller waits for it.
    pub(super) async fn append(
        &self,
        version: i64,
        ctx: SessionContext,
        msg: NewMessage,
        now: Millis,
    ) -> Result<Answer> {
        let (answer, answered) = oneshot::channel();
        self.jobs.send(Job { version, ctx, msg, now, answer }).await.map_err(|_| StoreError::Closed)?;
        answered.await.map_err(|_| StoreError::backend("the append's batch failed before it answered"))?
    }
}

/// Batches on their way, shared by a store's batch tasks: how many, and a
/// signal each time one ends; and how long a batch waits for them at most
/// ([`GATHER_WAIT`]).
struct InFlight {
    count: AtomicUsize,
    ended: Notify,
    wait: std::time::Duration,
}

/// A batch task: takes its turn at the queue, gathers a batch
/// ([`gather`]), hands the queue on, commits the batch; again.
async fn batches(
    queue: Arc<Mutex<mpsc::Receiver<Job>>>,
    in_flight: Arc<InFlight>,
    pool: PgPool,
    sink: Arc<dyn EventSink>,
) {
    loop {
        let batch = {
            let mut queue = queue.lock().await;
            let Some(batch) = gather(&mut queue, &in_flight).await else { return };
            in_flight.count.fetch_add(1, Ordering::AcqRel);
            batch
        };
        // A task of its own, so that a panic (in the sink, say) fails this
        // batch's callers (their answers are dropped) and not the batcher.
        let done = tokio::spawn(commit(pool.clone(), sink.clone(), batch)).await;
        in_flight.count.fetch_sub(1, Ordering::AcqRel);
        in_flight.ended.notify_waiters();
        if let Err(e) = done {
            tracing::error!(error = %e, "a batch of appends panicked; its callers were told it failed");
        }
    }
}

/// The next batch: the first append to come and everything waiting behind
/// it. While another batch is on its way and this one holds fewer than
/// [`GATHER`], it goes on taking appends as they come until that batch ends
/// (or this one reaches [`GATHER`]): a commit costs the database about as
/// much as thirty appends, so batches that start while others commit are
/// fewer and larger, and under load the commits per message halve. A batch
/// never waits when none is on its way (a lone append goes at once), nor
/// once it is large (then batches overlap, up to [`BATCH_TASKS`]), nor
/// longer than [`GATHER_WAIT`] (a batch ahead held up by a row another
/// transaction keeps locked holds up no other chat for long). `None` once
/// the queue is closed and empty.
async fn gather(queue: &mut mpsc::Receiver<Job>, in_flight: &InFlight) -> Option<Vec<Job>> {
    let mut batch = vec![queue.recv().await?];
    let waited_enough = tokio::time::sleep(in_flight.wait);
    tokio::pin!(waited_enough);
    loop {
        while batch.len() < MAX_BATCH {
            match queue.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        if batch.len() >= GATHER {
            return Some(batch);
        }
        // Asked for before the count is read: an end between the two is
        // not missed.
        let ended = in_flight.ended.notified();
        tokio::pin!(ended);
        ended.as_mut().enable();
        if in_flight.count.load(Ordering::Acquire) == 0 {
            return Some(batch);
        }
        tokio::select! {
            _ = &mut ended => return Some(batch),
            _ = &mut waited_enough => return Some(batch),
            job = queue.recv() => match job {
                Some(job) => batch.push(job),
                None => return Some(batch),
            },
        }
    }
}

/// Commits `batch` and answers every caller (see the module's
/// documentation for what a failure does).
async fn commit(pool: PgPool, sink: Arc<dyn EventSink>, batch: Vec<Job>) {
    let n = batch.len();
    let Err((e, batch)) = run(&pool, sink.as_ref(), batch).await else { return };
    if n > 1 && rolled_back(&e) {
        tracing::warn!(error = %e, appends = n, "the database refused a batch of appends; each is tried alone");
        for job in batch {
            if let Err((e, job)) = run(&pool, sink.as_ref(), vec![job]).await {
                fail(job, db(e));
            }
        }
    } else {
        fail(batch, db(e));
    }
}

/// Tells each caller of `jobs` that its append failed with `e`.
fn fail(jobs: Vec<Job>, e: StoreError) {
    for job in jobs {
        let _ = job.answer.send(Err(e.clone()));
    }
}

/// Whether a failed statement certainly rolled back (the database answered
/// it with an error), rather than broke off with its outcome unknown (the
/// connection, the server going away or cancelling it: a commit may have
/// happened) or never ran (no connection).
fn rolled_back(e: &sqlx::Error) -> bool {
    let Some(d) = e.as_database_error() else { return false };
    let class = d.code().map(|c| c.chars().take(2).collect::<String>()).unwrap_or_default();
    // 08 connection exception, 57 operator intervention (shutdown, a
    // cancelled statement), 58 system error, XX internal error.
    !matches!(class.as_str(), "" | "08" | "57" | "58" | "XX")
}

/// Runs `batch` in one statement (one commit) and reports the commit; then,
/// if it committed, publishes the stored messages and answers each caller.
/// If it failed, nothing is published and nobody answered: the jobs come
/// back with the error.
async fn run(pool: &PgPool, sink: &dyn EventSink, batch: Vec<Job>) -> Result<(), (sqlx::Error, Vec<Job>)> {
    let start = Instant::now();
    let rows = statement(&batch).fetch_all(pool).await;
    sink.committed(CommitReport { writes: batch.len(), took: start.elapsed(), ok: rows.is_ok() });
    let rows = match rows {
        Ok(rows) => rows,
        Err(e) => return Err((e, batch)),
    };
    let mut jobs: Vec<Option<Job>> = batch.into_iter().map(Some).collect();
    let mut answers = Vec::with_capacity(jobs.len());
    let mut events = Vec::new();
    for row in &rows {
        match answer(row, &mut jobs) {
            Ok((reply, answer, event)) => {
                events.extend(event);
                answers.push((reply, answer));
            }
            Err(e) => tracing::error!(error = %e, "a row of refdesk_append_many names no append of its batch"),
        }
    }
    // The statement has committed: now it may be told (I2). Published
    // first, then answered: when a caller hears "done", its event is
    // already on its way.
    if !events.is_empty() {
        sink.publish(events);
    }
    for (reply, answer) in answers {
        let _ = reply.send(answer);
    }
    let unanswered = StoreError::backend("refdesk_append_many did not answer for this append");
    fail(jobs.into_iter().flatten().collect(), unanswered);
    Ok(())
}

/// Where a caller waits for its answer.
type Reply = oneshot::Sender<Result<Answer>>;

/// From one row of the statement: the caller to answer, the answer, and the
/// event to publish if the message was stored. The row's job is taken out
/// of `jobs` by its position (`idx`); an error says the row names none.
fn answer(row: &PgRow, jobs: &mut [Option<Job>]) -> Result<(Reply, Result<Answer>, Option<Event>)> {
    let idx = row.int("idx")?;
    let Job { ctx, msg, now, answer: reply, .. } = usize::try_from(idx - 1)
        .ok()
        .and_then(|i| jobs.get_mut(i))
        .and_then(Option::take)
        .ok_or_else(|| StoreError::backend(format!("refdesk_append_many answered for append {idx}")))?;
    let read =
        || Ok::<_, StoreError>((Outcome::parse(&row.text("outcome")?)?, row.int("seq")?, row.int("patron_seq")?));
    let (outcome, seq, patron_seq) = match read() {
        Ok(read) => read,
        Err(e) => return Ok((reply, Err(e), None)),
    };
    if outcome != Outcome::Stored {
        return Ok((reply, Ok(Answer { outcome, seq, stored: None }), None));
    }
    let message = Message {
        session: ctx.id,
        seq: seq as u64,
        patron_seq: patron_seq as u64,
        kind: msg.kind,
        audience: msg.audience,
        author: msg.author,
        body: msg.body,
        client_id: msg.client_id,
        at: now,
        system: msg.system,
    };
    let event = Event::Message { ctx, message: message.clone() };
    Ok((reply, Ok(Answer { outcome, seq, stored: Some(message) }), Some(event)))
}

/// The batch as one call of `refdesk_append_many`: one array per column,
/// the batch's order kept (the function orders by session itself).
fn statement(batch: &[Job]) -> Query<'_, Postgres, PgArguments> {
    let n = batch.len();
    let (mut session, mut version, mut now) = (Vec::with_capacity(n), Vec::with_capacity(n), Vec::with_capacity(n));
    let (mut kind, mut audience, mut author_kind) =
        (Vec::with_capacity(n), Vec::with_capacity(n), Vec::with_capacity(n));
    let (mut author_id, mut author_name, mut sender) =
        (Vec::with_capacity(n), Vec::with_capacity(n), Vec::with_capacity(n));
    let (mut client_id, mut body, mut system) = (Vec::with_capacity(n), Vec::with_capacity(n), Vec::with_capacity(n));
    for job in batch {
        let m = &job.msg;
        let (a_kind, a_id, a_name) = crate::sql::select::author_columns(&m.author);
        session.push(job.ctx.id.0);
        version.push(job.version);
        now.push(job.now);
        kind.push(m.kind.as_str());
        audience.push(m.audience.as_str());
        author_kind.push(a_kind);
        author_id.push(a_id);
        author_name.push(a_name);
        sender.push(m.author.sender_key());
        client_id.push(m.client_id.as_deref());
        body.push(m.body.as_str());
        system.push(m.system.map(SystemEvent::as_str));
    }
    sqlx::query("SELECT idx, outcome, seq, patron_seq FROM refdesk_append_many($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)")
        .bind(session)
        .bind(version)
        .bind(now)
        .bind(kind)
        .bind(audience)
        .bind(author_kind)
        .bind(author_id)
        .bind(author_name)
        .bind(sender)
        .bind(client_id)
        .bind(body)
        .bind(system)
}
