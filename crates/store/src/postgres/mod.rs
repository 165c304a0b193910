//! The PostgreSQL backend: for a cooperative served by several refdesk
//! nodes, which share one database.
//!
//! Each write is one transaction on a pooled connection. A write on a
//! session first locks the session's row (the version bump in
//! `sql::rows::lock_session`; an append, `SELECT … FOR UPDATE`), so the
//! rules that need one writer per session — gapless sequence numbers,
//! idempotent client ids (I4), the atomic accept (I6) — hold whichever node
//! the write comes from. Events go to the sink after the commit (I2).
//! Two writes on one session commit in lock order but may reach the sink
//! in the other order; readers put them back in order and fill any gap from
//! the store (I3), as they must anyway for events from other nodes.
//!
//! Appends, the write each chat message makes, take a faster way when the
//! store's copy of the session is current: the node's concurrent appends
//! are committed together, in one statement, one round trip and one commit
//! for the batch ([`batch`]), with the same checks and the same guarantees
//! as one append alone. A batch locks its sessions' rows in ascending id
//! order, so that batches of several nodes never deadlock.
//!
//! The pool reconnects by itself: while the database is unreachable, every
//! operation fails with [`StoreError::Unavailable`] (and `/readyz` says so),
//! and once it is back the next operation succeeds.

mod batch;
mod connection;
pub mod moving;
mod schema;

use crate::ops::{Backend, Read, Write};
use crate::sql::Cols;
use crate::{Appended, EventSink, Guard, NewMessage, Result, SessionRecord, StoreError};
pub use batch::BATCH_TASKS;
use batch::{Answer, Appender, Outcome};
use connection::{PgConn, PgDb};
use refdesk_domain::chat::Message;
use refdesk_domain::ids::SessionId;
use refdesk_domain::{DomainError, Millis};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{Connection, PgConnection, PgPool};
use std::collections::HashMap;
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Sessions kept for appends at most (a busy cooperative has fewer live ones).
const SESSION_CACHE: usize = 20_000;

/// How long a kept copy nobody used stays: a chat another node ended, or
/// erased (this node hears of neither), is not held here, with its patron's
/// name and addresses, for as long as the node runs.
const SESSION_UNUSED: Duration = Duration::from_secs(600);
/// How often the copies are looked over for unused ones.
const SESSION_SWEEP_EVERY: Duration = Duration::from_secs(60);

/// Sessions as appends need them, with the version they were read at,
/// shared by every connection of one store. An append checks that version
/// under the row lock in the same statement that stores it, so a stale copy
/// is never acted on: it is read again. That makes an append one round trip.
#[derive(Default)]
pub struct SessionCache(Mutex<Kept<(i64, SessionRecord)>>);

/// Copies by session, each with when it was last used; those unused for
/// [`SESSION_UNUSED`] go at the next look, once a [`SESSION_SWEEP_EVERY`].
struct Kept<V> {
    map: HashMap<SessionId, (V, Instant)>,
    swept: Option<Instant>,
}

impl<V> Default for Kept<V> {
    fn default() -> Self {
        Kept { map: HashMap::new(), swept: None }
    }
}

impl<V: Clone> Kept<V> {
    fn get(&mut self, id: SessionId, now: Instant) -> Option<V> {
        self.sweep(now);
        let (v, used) = self.map.get_mut(&id)?;
        *used = now;
        Some(v.clone())
    }

    fn put(&mut self, id: SessionId, v: V, now: Instant) {
        self.sweep(now);
        if self.map.len() >= SESSION_CACHE {
            self.map.clear();
        }
        self.map.insert(id, (v, now));
    }

    fn sweep(&mut self, now: Instant) {
        if self.swept.is_some_and(|at| now.saturating_duration_since(at) < SESSION_SWEEP_EVERY) {
            return;
        }
        self.swept = Some(now);
        self.map.retain(|_, (_, used)| now.saturating_duration_since(*used) < SESSION_UNUSED);
    }
}

impl SessionCache {
    fn get(&self, id: SessionId) -> Option<(i64, SessionRecord)> {
        self.0.lock().ok()?.get(id, Instant::now())
    }

    fn put(&self, id: SessionId, version: i64, rec: SessionRecord) {
        if let Ok(mut kept) = self.0.lock() {
            kept.put(id, (version, rec), Instant::now());
        }
    }

    pub(super) fn note_line(&self, line: &Message) {
        if let Ok(mut kept) = self.0.lock() {
            if let Some(((_, rec), _)) = kept.map.get_mut(&line.session) {
                rec.note_line(line);
            }
        }
    }

    fn forget(&self, id: SessionId) {
        if let Ok(mut kept) = self.0.lock() {
            kept.map.remove(&id);
        }
    }
}

/// The PostgreSQL store. Cheap to share behind an `Arc`.
pub struct PgStore {
    pool: PgPool,
    sink: Arc<dyn EventSink>,
    sessions: Arc<SessionCache>,
    /// The queue of appends on fresh copies, committed in batches.
    appends: Appender,
    /// The turns of long reads (reports, searches).
    long_reads: Arc<tokio::sync::Semaphore>,
    /// The connection `/readyz`'s checks run on ([`crate::Store::health`]), outside
    /// the pool: a flood of requests that holds every pooled connection is
    /// no reason to take the node out of rotation. Opened at the first
    /// check, again after one fails and once a minute ([`CHECKS_FOR`]),
    /// with when it was opened.
    checks: tokio::sync::Mutex<Option<(PgConnection, Instant)>>,
    /// How to open it.
    connect: PgConnectOptions,
    /// When the database was last seen writable again after the checks
    /// found it read-only: the pooled connections opened before then.
    writable_again: Arc<WritableAgain>,
}

/// The pooled connections opened while the database was read-only (a
/// standby, or `default_transaction_read_only`) keep that session default
/// and refuse every write until they are replaced: once `/readyz` finds the
/// database writable again, each is closed at its next acquire instead of
/// failing writes (with `500`) until its lifetime ends, while `/readyz`
/// already said ready.
struct WritableAgain {
    /// The pool's start, the clock of `since_ms`.
    born: Instant,
    /// Milliseconds after `born` at which the database was found writable
    /// again; 0 if never.
    since_ms: std::sync::atomic::AtomicU64,
    /// Whether the last check found the database read-only.
    read_only: std::sync::atomic::AtomicBool,
}

impl WritableAgain {
    /// Whether a connection `age` old was opened before the database was
    /// last found writable again (and is to be replaced).
    fn stale(&self, age: Duration) -> bool {
        let since = self.since_ms.load(std::sync::atomic::Ordering::Relaxed);
        let opened = self.born.elapsed().saturating_sub(age).as_millis() as u64;
        since > 0 && opened < since
    }

    /// Notes what a check found.
    fn found(&self, read_only: bool) {
        use std::sync::atomic::Ordering::Relaxed;
        if self.read_only.swap(read_only, Relaxed) && !read_only {
            let now = (self.born.elapsed().as_millis() as u64).max(1);
            self.since_ms.store(now, Relaxed);
        }
    }
}

/// A database error as the store reports it: a broken uniqueness rule is a
/// conflict the caller can act on; anything else is for the logs.
fn db(e: sqlx::Error) -> StoreError {
    if let sqlx::Error::PoolClosed = e {
        return StoreError::Closed;
    }
    if let Some(d) = e.as_database_error() {
        if d.is_unique_violation() {
            return StoreError::Domain(DomainError::Conflict(format!(
                "already exists ({})",
                d.constraint().unwrap_or("constraint")
            )));
        }
        if d.is_foreign_key_violation() {
            return StoreError::Domain(DomainError::NotFound("a record it refers to"));
        }
    }
    if unavailable(&e) {
        return StoreError::unavailable("PostgreSQL", e);
    }
    StoreError::failed("PostgreSQL", e)
}

/// Whether `e` says the database cannot be reached or cannot write just
/// now, rather than that a statement was wrong: no connection within the
/// pool's wait, a connection refused, lost or cut mid-message, PostgreSQL's classes 08
/// (connection exception), 53 (insufficient resources: a full disk, too
/// many connections) and 57P (shutting down, starting up), and a read-only
/// transaction (a standby, `default_transaction_read_only`). Each passes by
/// itself; none is refdesk's fault.
fn unavailable(e: &sqlx::Error) -> bool {
    match e {
        // A protocol error is most often a connection cut in the middle of
        // a message (the server gone); one of sqlx's own would be a bug, and
        // is logged all the same (at `warn`, with its text).
        sqlx::Error::PoolTimedOut | sqlx::Error::Io(_) | sqlx::Error::Tls(_) | sqlx::Error::Protocol(_) => true,
        // 08P01 (protocol_violation) is a client's fault, not the link's.
        sqlx::Error::Database(d) => d.code().is_some_and(|c| {
            (c.starts_with("08") && c != "08P01") || c.starts_with("53") || c.starts_with("57P") || c == "25006"
        }),
        _ => false,
    }
}

/// Says at `warn` when the database's character type is not UTF-8 ("C",
/// "POSIX", an 8-bit one): the question list's search then tells letter
/// case apart outside ASCII ("östergötland" does not find "Östergötland"),
/// which a UTF-8 locale does not. Nothing refuses it: the data is whole.
async fn warn_of_locale(c: &mut PgConnection) {
    use sqlx::Row;
    // ICU's (and PostgreSQL 17's builtin) collations fold by their own
    // rules whatever `lc_ctype` says (PostgreSQL 14 has no such column: the
    // C library's, then).
    let provider = "SELECT datlocprovider::text AS provider FROM pg_database WHERE datname = current_database()";
    if let Ok(row) = sqlx::query(provider).fetch_one(&mut *c).await {
        if row.try_get::<String, _>("provider").is_ok_and(|p| p != "c") {
            return;
        }
    }
    let Ok(row) = sqlx::query("SELECT current_setting('lc_ctype') AS ctype").fetch_one(&mut *c).await else { return };
    let ctype: String = row.try_get("ctype").unwrap_or_default();
    let lower = ctype.to_ascii_lowercase();
    if !(lower.contains("utf-8") || lower.contains("utf8")) {
        tracing::warn!(
            lc_ctype = %ctype,
            "this PostgreSQL database's character type is not a UTF-8 one: the question list's search ignores letter \
             case in ASCII only (\"östergötland\" does not find \"Östergötland\"); a database created with a UTF-8 \
             locale (--locale=C.UTF-8 or en_US.UTF-8) folds every script"
        );
    }
}

/// A failed connection as an operator needs it: the server it was for (host,
/// port, database and `sslmode`, never the password) and, for the usual
/// TLS and sign-in mistakes, what to change. sqlx's own message alone names
/// neither the server nor the setting at fault.
fn cannot_connect(e: sqlx::Error, o: &PgConnectOptions) -> StoreError {
    use sqlx::postgres::PgSslMode;
    let mode = match o.get_ssl_mode() {
        PgSslMode::Disable => "disable",
        PgSslMode::Allow => "allow",
        PgSslMode::Prefer => "prefer",
        PgSslMode::Require => "require",
        PgSslMode::VerifyCa => "verify-ca",
        PgSslMode::VerifyFull => "verify-full",
    };
    let hint = match &e {
        sqlx::Error::Tls(why) if why.to_string().contains("does not support TLS") => {
            "; the server does not offer TLS: turn ssl on there, or lower sslmode only on a network you trust"
        }
        // rustls reports a refused handshake (an untrusted certificate, a
        // name it does not hold) as invalid data on the socket.
        sqlx::Error::Tls(_) | sqlx::Error::Io(_) if tls_refused(&e) => {
            "; the TLS handshake failed: check sslrootcert (the CA that signed the server's certificate) and, \
             with verify-full, that the certificate names the host in the URL"
        }
        // A TCP connection never fails with these: it is the sslrootcert file.
        sqlx::Error::Io(io)
            if matches!(io.kind(), std::io::ErrorKind::NotFound | std::io::ErrorKind::PermissionDenied) =>
        {
            "; cannot read the sslrootcert file"
        }
        sqlx::Error::Database(d) if d.code().as_deref() == Some("28000") => {
            let text = d.message();
            if text.contains("no encryption") || text.contains("SSL off") {
                "; the server accepts only TLS connections: add sslmode=verify-full&sslrootcert=/path/to/ca.pem \
                 (or at least sslmode=require) to the URL"
            } else {
                "; the server's pg_hba.conf has no entry for this user, database and address"
            }
        }
        sqlx::Error::Database(d) if d.code().as_deref() == Some("28P01") => "; check the user and password",
        _ => "",
    };
    let database = o.get_database().unwrap_or(o.get_username());
    let (host, port) = (o.get_host(), o.get_port());
    StoreError::Backend {
        what: format!("cannot connect to PostgreSQL at {host}:{port} (database {database}, sslmode {mode}): {e}{hint}"),
        source: Some(Arc::new(e)),
    }
}

/// Whether `e` is a TLS handshake the client refused.
fn tls_refused(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Tls(_) => true,
        sqlx::Error::Io(io) => io.kind() == std::io::ErrorKind::InvalidData,
        _ => false,
    }
}

/// Options for opening a PostgreSQL store.
#[derive(Clone, Debug)]
pub struct PgOptions {
    /// Connections kept at most.
    pub max_connections: u32,
    /// How long an operation waits for a connection before failing.
    pub acquire_timeout: Duration,
    /// How long a batch of appends waits for the one on its way, at most
    /// ([`batch::GATHER_WAIT`]).
    pub gather_wait: Duration,
}

impl Default for PgOptions {
    fn default() -> Self {
        PgOptions { max_connections: 16, acquire_timeout: Duration::from_secs(5), gather_wait: batch::GATHER_WAIT }
    }
}

/// The database's schema version and this refdesk's, read without
/// changing anything (`config --check`): connecting as `serve` would, so
/// that a bad URL, an unreadable `sslrootcert`, a refused sign-in or TLS
/// handshake is said before a restart, as `serve` would say it.
pub async fn schema_versions(url: &str) -> Result<(usize, usize)> {
    let connect = PgConnectOptions::from_str(url)
        .map_err(|e| StoreError::failed("bad PostgreSQL URL", e))?
        .application_name("refdesk config --check");
    let mut c = PgConnection::connect_with(&connect).await.map_err(|e| cannot_connect(e, &connect))?;
    let present = sqlx::query("SELECT to_regclass('refdesk_schema') IS NOT NULL AS present")
        .fetch_one(&mut c)
        .await
        .map_err(db)?
        .flag("present")?;
    let mut version = 0;
    if present {
        let row = sqlx::query("SELECT max(version) AS version FROM refdesk_schema").fetch_one(&mut c).await;
        version = row.map_err(db)?.opt_int("version")?.unwrap_or(0) as usize;
    }
    let _ = c.close().await;
    Ok((version, schema::MIGRATIONS.len()))
}

/// Refuses to make refdesk's schema in a database whose encoding cannot
/// hold text in every script (a LATIN1 one stopped half-way through the
/// migrations, and would refuse a patron's Cyrillic). UTF-8, and
/// SQL_ASCII (bytes as they come, as before), are taken; a database made
/// before this check is left alone.
async fn refuse_encoding(c: &mut PgConnection) -> Result<()> {
    let encoding = sqlx::query("SELECT current_setting('server_encoding') AS e")
        .fetch_one(&mut *c)
        .await
        .map_err(db)?
        .text("e")?;
    if encoding != "UTF8" && encoding != "SQL_ASCII" {
        return Err(StoreError::backend(format!(
            "the PostgreSQL database's encoding is {encoding}: refdesk needs UTF8 (create the database with \
             `createdb -E UTF8 -T template0 …`, or `CREATE DATABASE … ENCODING 'UTF8' TEMPLATE template0`)"
        )));
    }
    Ok(())
}

/// Brings the schema up to date, one node at a time (an advisory lock).
async fn migrate(c: &mut PgConnection) -> Result<()> {
    // Any fixed number: it names refdesk's migration lock.
    const LOCK: i64 = 0x0072_6566_6465_736b;
    sqlx::query("SELECT pg_advisory_lock($1)").bind(LOCK).execute(&mut *c).await.map_err(db)?;
    let result = async {
        let exists = sqlx::query("SELECT to_regclass('refdesk_schema') IS NOT NULL AS present")
            .fetch_one(&mut *c)
            .await
            .map_err(db)?
            .flag("present")?;
        if !exists {
            refuse_encoding(c).await?;
            sqlx::query("CREATE TABLE refdesk_schema (version BIGINT NOT NULL)").execute(&mut *c).await.map_err(db)?;
        }
        let version = sqlx::query("SELECT max(version) AS version FROM refdesk_schema")
            .fetch_one(&mut *c)
            .await
            .map_err(db)?
            .opt_int("version")?
            .unwrap_or(0) as usize;
        if version > schema::MIGRATIONS.len() {
            return Err(StoreError::backend(format!(
                "the database is at schema version {version}, newer than this refdesk ({}); upgrade refdesk",
                schema::MIGRATIONS.len()
            )));
        }
        for (i, text) in schema::MIGRATIONS.iter().enumerate().skip(version) {
            let mut tx = c.begin().await.map_err(db)?;
            sqlx::raw_sql(text).execute(&mut *tx).await.map_err(db)?;
            sqlx::query("INSERT INTO refdesk_schema (version) VALUES ($1)")
                .bind(i as i64 + 1)
                .execute(&mut *tx)
                .await
                .map_err(db)?;
            tx.commit().await.map_err(db)?;
            tracing::debug!(version = i + 1, "applied PostgreSQL migration");
        }
        // One line for them all: a new database applies every one.
        if version < schema::MIGRATIONS.len() {
            tracing::info!(from = version, to = schema::MIGRATIONS.len(), "PostgreSQL schema brought up to date");
        }
        Ok(())
    }
    .await;
    let unlocked = sqlx::query("SELECT pg_advisory_unlock($1)").bind(LOCK).execute(&mut *c).await.map_err(db);
    result.and(unlocked.map(|_| ()))
}

impl PgStore {
    /// Connects to the database at `url` (`postgres://…`), applies
    /// migrations, and keeps a pool. Committed events go to `sink`.
    ///
    /// The URL's `sslmode` chooses TLS as libpq does: `disable`; `prefer`
    /// (the default: TLS when the server offers it, unverified); `require`
    /// (TLS, unverified); `verify-ca` and `verify-full` (the server's
    /// certificate must chain to `sslrootcert`, a PEM file, or to the
    /// public CAs compiled in; `verify-full` also checks the host name).
    /// TLS is rustls with the *ring* provider.
    pub async fn open(url: &str, options: PgOptions, sink: Arc<dyn EventSink>) -> Result<PgStore> {
        let connect = PgConnectOptions::from_str(url)
            .map_err(|e| StoreError::failed("bad PostgreSQL URL", e))?
            .application_name("refdesk");
        let mut c = PgConnection::connect_with(&connect).await.map_err(|e| cannot_connect(e, &connect))?;
        migrate(&mut c).await?;
        warn_of_locale(&mut c).await;
        let _ = c.close().await;
        let writable_again = Arc::new(WritableAgain {
            born: Instant::now(),
            since_ms: Default::default(),
            read_only: Default::default(),
        });
        let again = writable_again.clone();
        let pool = PgPoolOptions::new()
            .before_acquire(move |_, meta| Box::pin(std::future::ready(Ok(!again.stale(meta.age)))))
            .max_connections(options.max_connections.max(1))
            .acquire_timeout(options.acquire_timeout)
            // Replaced as often as `/readyz`'s own connection: what a new
            // session is (a database set read-only, or back to read-write)
            // is what the node does within a minute, and what it says.
            .max_lifetime(CHECKS_FOR)
            .connect_with(connect.clone())
            .await
            .map_err(|e| cannot_connect(e, &connect))?;
        let tasks = batch::BATCH_TASKS.min(options.max_connections.max(1) as usize);
        let appends = Appender::start(pool.clone(), sink.clone(), tasks, options.gather_wait);
        let long_reads = Arc::new(tokio::sync::Semaphore::new(crate::ops::LONG_READS));
        let checks = tokio::sync::Mutex::new(None);
        Ok(PgStore { pool, sink, sessions: Default::default(), appends, long_reads, checks, connect, writable_again })
    }

    /// An append on a cached copy of the session, in the next batch of
    /// appends (see [`batch`]; `refdesk_append_many` in the migrations).
    /// `None` when the copy was stale (the caller takes the full path).
    async fn append_on_copy(
        &self,
        version: i64,
        rec: SessionRecord,
        msg: &NewMessage,
        now: Millis,
    ) -> Result<Option<Appended>> {
        let id = rec.ctx.id;
        let Answer { outcome, seq, stored } = self.appends.append(version, rec.ctx, msg.clone(), now).await?;
        match outcome {
            Outcome::Stored => {
                let message = stored.ok_or_else(|| StoreError::backend("a stored message went missing"))?;
                self.sessions.note_line(&message);
                Ok(Some(Appended { message, duplicate: false }))
            }
            Outcome::Duplicate => {
                let sql = format!("{} WHERE session_id = ?1 AND seq = ?2", crate::sql::select::MESSAGE_SELECT);
                let message = self
                    .read(move |db| {
                        Box::pin(async move {
                            crate::sql::Db::row(db, &sql, crate::sql::args![id.0, seq], crate::sql::select::message)
                                .await
                        })
                    })
                    .await?
                    .ok_or_else(|| StoreError::backend("a re-sent message vanished"))?;
                Ok(Some(Appended { message, duplicate: true }))
            }
            Outcome::Ended => Err(DomainError::Conflict("this chat has ended".into()).into()),
            Outcome::Missing => Err(DomainError::NotFound("session").into()),
            Outcome::Stale => {
                self.sessions.forget(id);
                Ok(None)
            }
        }
    }
}

/// Tells the sink of a write's commit (each write but an append is its own
/// transaction; appends report their batch's) begun at `start`.
fn reported<T>(sink: &dyn EventSink, start: Instant, outcome: Result<T>) -> Result<T> {
    sink.committed(crate::CommitReport { writes: 1, took: start.elapsed(), ok: outcome.is_ok() });
    outcome
}

impl Backend for PgStore {
    type Db = PgDb;

    async fn write<T: Send + 'static>(
        &self,
        op: impl for<'c> FnOnce(&'c mut PgDb) -> Write<'c, T> + Send + 'static,
    ) -> Result<T> {
        let start = Instant::now();
        let tx = self.pool.begin().await.map_err(db)?;
        let mut conn = PgDb::new(PgConn::Tx(tx), self.sessions.clone());
        let (value, events) = op(&mut conn).await?;
        let (PgConn::Tx(tx), noted) = conn.into_inner() else {
            return Err(StoreError::backend("a write lost its transaction"));
        };
        // Commits, then hands the events to the sink (never before: I2). In
        // a task of its own, so that a committed write's events are
        // published even if the caller has gone away meanwhile.
        let (sink, sessions) = (self.sink.clone(), self.sessions.clone());
        tokio::spawn(async move {
            reported(sink.as_ref(), start, tx.commit().await.map_err(db))?;
            for line in &noted {
                sessions.note_line(line);
            }
            if !events.is_empty() {
                sink.publish(events);
            }
            Ok::<_, StoreError>(())
        })
        .await
        .map_err(|e| StoreError::failed("the commit task failed", e))??;
        Ok(value)
    }

    fn long_reads(&self) -> &Arc<tokio::sync::Semaphore> {
        &self.long_reads
    }

    async fn read<T: Send + 'static>(
        &self,
        op: impl for<'c> FnOnce(&'c mut PgDb) -> Read<'c, T> + Send + 'static,
    ) -> Result<T> {
        let conn = self.pool.acquire().await.map_err(db)?;
        op(&mut PgDb::new(PgConn::Pool(conn), self.sessions.clone())).await
    }

    /// In a task of its own that holds the turn and the connection: a
    /// caller that goes away does not free the turn while the scan still
    /// holds its connection (sqlx gives a connection back to the pool only
    /// once its query has ended).
    async fn read_long<T: Send + 'static>(
        &self,
        op: impl for<'c> FnOnce(&'c mut PgDb) -> Read<'c, T> + Send + 'static,
    ) -> Result<T> {
        let turn = self.long_reads.clone().acquire_owned().await.map_err(|_| StoreError::Closed)?;
        let (pool, sessions) = (self.pool.clone(), self.sessions.clone());
        tokio::spawn(async move {
            let _turn = turn;
            let conn = pool.acquire().await.map_err(db)?;
            op(&mut PgDb::new(PgConn::Pool(conn), sessions)).await
        })
        .await
        .map_err(|e| StoreError::failed("a long read's task failed", e))?
    }

    async fn append(&self, id: SessionId, msg: NewMessage, guard: Guard, now: Millis) -> Result<Appended> {
        // The fast path: the guard passes on a copy the database confirms is current.
        if let Some((version, rec)) = self.sessions.get(id) {
            match guard(&rec) {
                Ok(()) => {
                    if let Some(done) = self.append_on_copy(version, rec, &msg, now).await? {
                        return Ok(done);
                    }
                }
                // A chat full on the copy is full in the database too (its
                // lines and what its patron wrote only grow while it is
                // live): refused without the full path's locked read of the
                // whole chat, once an unlocked look has not found the line
                // already stored under its client id (a re-send after a lost
                // ack is acknowledged again, I4).
                Err(full @ DomainError::Limited { code: "chat_full", .. }) => {
                    let Some(cid) = msg.client_id.clone() else { return Err(full.into()) };
                    let sender = msg.author.sender_key();
                    let stored = self
                        .read(move |db| {
                            Box::pin(async move { crate::sql::rows::message_by_client_id(db, id, &sender, &cid).await })
                        })
                        .await?;
                    return match stored {
                        Some(message) => Ok(Appended { message, duplicate: true }),
                        None => Err(full.into()),
                    };
                }
                // Any other refusal (waiting for a librarian, say) may be
                // stale on the copy: the full path reads the chat afresh.
                Err(_) => {}
            }
        }
        // The full path, which also refreshes the copy.
        self.write(move |db| Box::pin(crate::ops::append(db, id, msg, guard, now))).await
    }

    async fn close(&self) {
        // The pool first: a check under way then opens no connection.
        self.pool.close().await;
        if let Some((c, _)) = self.checks.lock().await.take() {
            let _ = c.close().await;
        }
    }

    fn forget_unused(&self) {
        if let Ok(mut kept) = self.sessions.0.lock() {
            kept.sweep(Instant::now());
        }
    }

    async fn answers(&self) -> Result<()> {
        self.check("SELECT false").await.map(drop)
    }

    async fn health(&self) -> Result<()> {
        // A standby (after a fail-over that left this node on the old
        // primary's replica) answers reads but commits nothing; so does a
        // database made read-only (`default_transaction_read_only`, which
        // an operator or a disk-space guard sets), seen here as the
        // session's default.
        let read_only =
            self.check("SELECT pg_is_in_recovery() OR current_setting('transaction_read_only')::boolean").await?;
        self.writable_again.found(read_only);
        if read_only {
            // The next check asks a new session: what the pool's new
            // connections will be once the database is writable again.
            self.checks.lock().await.take();
            return Err(StoreError::backend("the database is read-only (a standby, or default_transaction_read_only)"));
        }
        Ok(())
    }
}

/// How long `/readyz`'s checks keep their connection ([`PgStore::check`]).
const CHECKS_FOR: Duration = Duration::from_secs(60);

impl PgStore {
    /// One round trip of `sql` (one boolean) on the health connection,
    /// opened first if need be; given up after [`crate::HEALTH_WAIT`]. A
    /// connection kept from the last check may have been ended since (the
    /// server restarted, or an operator ended it): a failure on it is tried
    /// again on a new one. One older than [`CHECKS_FOR`] is replaced: what
    /// a new session would be (`ALTER DATABASE … SET
    /// default_transaction_read_only`) is what the pool's connections will
    /// be. A connection that failed or was given up is dropped: the next
    /// check opens another.
    async fn check(&self, sql: &'static str) -> Result<bool> {
        let mut held = self.checks.lock().await;
        if self.pool.is_closed() {
            return Err(StoreError::Closed);
        }
        let asked = async {
            let old = held.as_ref().is_some_and(|(_, opened)| opened.elapsed() >= CHECKS_FOR);
            if let Some((c, _)) = held.as_mut().filter(|_| !old) {
                if let Ok(answer) = sqlx::query_scalar::<_, bool>(sql).fetch_one(c).await {
                    return Ok(answer);
                }
            }
            // The new one opened before the old one goes (a server near its
            // connection limit keeps the slot for it).
            let c = PgConnection::connect_with(&self.connect).await.map_err(|e| cannot_connect(e, &self.connect))?;
            let (c, _) = held.insert((c, Instant::now()));
            sqlx::query_scalar::<_, bool>(sql).fetch_one(c).await.map_err(db)
        };
        let answer = tokio::time::timeout(crate::HEALTH_WAIT, asked)
            .await
            .unwrap_or_else(|_| Err(StoreError::backend("the database did not answer in time")));
        if answer.is_err() {
            held.take();
        }
        answer
    }
}

/// Creates an empty database named `name` on the server `server_url` points
/// at (any database of it, such as `postgres://postgres@127.0.0.1/postgres`)
/// and returns the URL of the new one, with the same query (`sslmode`,
/// `sslrootcert`…). For tests and benchmarks, which want a fresh database
/// per run. `name` is lower-case letters, digits and `_`.
pub async fn create_database(server_url: &str, name: &str) -> Result<String> {
    let valid = !name.is_empty()
        && name.len() <= 63
        && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        && !name.as_bytes()[0].is_ascii_digit();
    if !valid {
        return Err(StoreError::backend(format!("{name:?} is not a database name refdesk creates")));
    }
    let options = PgConnectOptions::from_str(server_url).map_err(|e| StoreError::failed("bad PostgreSQL URL", e))?;
    let mut c = PgConnection::connect_with(&options).await.map_err(|e| cannot_connect(e, &options))?;
    // The name was checked above: it cannot break out of the statement.
    sqlx::raw_sql(&format!("CREATE DATABASE {name}")).execute(&mut c).await.map_err(db)?;
    let _ = c.close().await;
    Ok(url_with_database(server_url, name))
}

/// `postgres://user@host:port/db?x` → `postgres://user@host:port/name?x`.
/// The query stays: a server reached over TLS is reached the same way for
/// the new database.
fn url_with_database(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, format!("?{query}")),
        None => (url, String::new()),
    };
    let after_scheme = base.find("://").map_or(0, |i| i + 3);
    let server = match base[after_scheme..].find('/') {
        Some(slash) => &base[..after_scheme + slash],
        None => base,
    };
    format!("{server}/{name}{query}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn long_reads_such_as_reports_leave_pooled_connections_for_the_chats() {
        let server = std::env::var("REFDESK_TEST_POSTGRES")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
        let name = format!("refdesk_longreads_{}_{nanos}", std::process::id());
        let url = create_database(&server, &name)
            .await
            .unwrap_or_else(|e| panic!("PostgreSQL must be running at {server} (scripts/test.sh starts it): {e}"));
        let options = PgOptions::default();
        let store = Arc::new(PgStore::open(&url, options.clone(), Arc::new(crate::NoSink)).await.unwrap());
        let many = options.max_connections as usize + 4;
        crate::ops::tests::long_reads_leave_room_for_the_rest(store.clone(), many, false).await;
        store.close().await;
    }

    /// A copy nobody used for ten minutes goes at the next look (once a
    /// minute): one of a chat another node ended or erased is not kept for
    /// the node's life. One in use stays.
    #[test]
    fn a_kept_copy_unused_for_a_while_goes_and_one_in_use_stays() {
        let t0 = Instant::now();
        let mut kept: Kept<u32> = Kept::default();
        kept.put(SessionId(1), 1, t0);
        kept.put(SessionId(2), 2, t0);
        let minute = Duration::from_secs(60);
        for m in 1..=12 {
            assert_eq!(kept.get(SessionId(2), t0 + minute * m), Some(2), "used each minute");
        }
        assert_eq!(kept.map.len(), 1, "the unused one went");
        assert_eq!(kept.get(SessionId(1), t0 + minute * 12), None);
        // A look at most once a minute: not one per use.
        kept.put(SessionId(3), 3, t0 + minute * 12 + Duration::from_secs(1));
        assert_eq!(kept.swept, Some(t0 + minute * 12));
    }

    /// The addresses answers were e-mailed to are copied from the timelines
    /// an older release kept (migration 021), but those of chats already
    /// erased and those of entries that are not answers or went nowhere; a
    /// timeline entry that is not an answer is never read as JSON.
    #[tokio::test]
    async fn the_answer_addresses_of_an_older_release_are_filled_in() {
        let server = std::env::var("REFDESK_TEST_POSTGRES")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
        let name = format!("refdesk_answers_{}_{nanos}", std::process::id());
        let url = create_database(&server, &name)
            .await
            .unwrap_or_else(|e| panic!("PostgreSQL must be running at {server} (scripts/test.sh starts it): {e}"));
        let mut c = PgConnection::connect(&url).await.unwrap();
        let (before, from) = schema::MIGRATIONS.split_at(20);
        for m in before {
            sqlx::raw_sql(m).execute(&mut c).await.unwrap();
        }
        sqlx::raw_sql(
            r#"SET session_replication_role = replica;
             INSERT INTO sessions (id, library_id, token_hash, state, question_text, created_at, erased_at)
               OVERRIDING SYSTEM VALUE VALUES
               (1, 1, 'a', 'ended', 'q', 10, NULL), (2, 1, 'b', 'ended', 'q', 10, 20);
             INSERT INTO questions (id, session_id, library_id, text, status, created_at)
               OVERRIDING SYSTEM VALUE VALUES
               (1, 1, 1, 'q', 'answered', 10), (2, 2, 1, 'q', 'answered', 10);
             INSERT INTO timeline (question_id, at, actor_name, change) VALUES
               (1, 11, 'Ann', '{"change":"answer","body":"Hi","emailed_to":"Jo@example.org","in_chat":false}'),
               (1, 12, 'Ann', '{"change":"answer","body":"Hi","emailed_to":null,"in_chat":true}'),
               (1, 13, 'Ann', 'not JSON: an entry that is no answer is never cast'),
               (2, 11, 'Ann', '{"change":"answer","body":"[masked]","emailed_to":"[email]","in_chat":false}');
             SET session_replication_role = DEFAULT;"#,
        )
        .execute(&mut c)
        .await
        .unwrap();
        for m in from {
            sqlx::raw_sql(m).execute(&mut c).await.unwrap();
        }
        let rows: Vec<(i64, String)> =
            sqlx::query_as("SELECT question_id, address FROM answer_addresses").fetch_all(&mut c).await.unwrap();
        assert_eq!(rows, [(1, "Jo@example.org".to_owned())]);
        c.close().await.unwrap();
    }

    #[test]
    fn a_database_url_takes_the_new_name_and_keeps_its_tls_settings() {
        assert_eq!(
            url_with_database("postgres://postgres@127.0.0.1:5432/postgres", "x"),
            "postgres://postgres@127.0.0.1:5432/x"
        );
        assert_eq!(url_with_database("postgres://h", "x"), "postgres://h/x");
        assert_eq!(
            url_with_database("postgres://h/db?sslmode=verify-full&sslrootcert=/ca.pem", "x"),
            "postgres://h/x?sslmode=verify-full&sslrootcert=/ca.pem"
        );
    }
}
