//! The PostgreSQL backend: for a cooperative served by several refdesk
//! nodes, which share one database.
//!
//! Each write is one transaction on a pooled connection. A write on a
//! session first locks the session's row (`SELECT … FOR UPDATE`), so the
//! rules that need one writer per session — gapless sequence numbers,
//! idempotent client ids (I4), the atomic accept (I6) — hold whichever node
//! the write comes from. Events go to the sink after the commit (I2).
//! Two writes on one session commit in lock order but may reach the sink
//! in the other order; readers put them back in order and fill any gap from
//! the store (I3), as they must anyway for events from other nodes.
//!
//! The pool reconnects by itself: while the database is unreachable, every
//! operation fails with [`StoreError::Backend`] (and `/readyz` says so), and
//! once it is back the next operation succeeds.

mod rows;
mod schema;

use crate::sql::{self, Arg, Cols};
use crate::{
    Acted, Appended, BlockRecord, Decide, Ending, EventSink, Guard, Handover, ImConversation, LibraryRecord, LineFor,
    NewBlock, NewFormQuestion, NewMessage, NewSession, NewStaff, OutboxMail, PatronKeys, Plan, PolicyPage,
    QuestionQuery, QuestionRecord, Result, Script, SessionRecord, StaffEntry, StaffRecord, StaffUpdate, Store,
    StoreError, TimelineEntry, TranscriptMail, TransferTo,
};
use async_trait::async_trait;
use refdesk_domain::chat::{Author, ConferenceMode, Message, SessionState, SystemEvent};
use refdesk_domain::event::{Availability, Event, ImMessage, QueueEntry};
use refdesk_domain::ids::{CooperativeId, InstitutionId, LibraryId, QuestionId, SessionId, StaffId};
use refdesk_domain::org::Staff;
use refdesk_domain::question::{question_on_accept, Change, QuestionState, ResolutionCode, Status};
use refdesk_domain::{DomainError, Millis};
use rows::*;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{Connection, PgConnection, PgPool, Postgres, Transaction};

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

/// Sessions kept for appends at most (a busy cooperative has fewer live ones).
const SESSION_CACHE: usize = 20_000;

/// The PostgreSQL store. Cheap to share behind an `Arc`.
pub struct PgStore {
    pool: PgPool,
    sink: Arc<dyn EventSink>,
    /// Sessions as appends need them, with the version they were read at.
    /// An append checks that version under the row lock in the same
    /// statement that stores it, so a stale copy is never acted on: it is
    /// read again. That makes an append one round trip.
    sessions: std::sync::Mutex<std::collections::HashMap<SessionId, (i64, SessionRecord)>>,
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
    StoreError::Backend(e.to_string())
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
    StoreError::Backend(format!(
        "cannot connect to PostgreSQL at {}:{} (database {database}, sslmode {mode}): {e}{hint}",
        o.get_host(),
        o.get_port()
    ))
}

/// Whether `e` is a TLS handshake the client refused.
fn tls_refused(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Tls(_) => true,
        sqlx::Error::Io(io) => io.kind() == std::io::ErrorKind::InvalidData,
        _ => false,
    }
}

/// A statement shared with SQLite (`?N` placeholders) in PostgreSQL's spelling.
fn pg(sql: &str) -> String {
    sql.replace('?', "$")
}

/// Options for opening a PostgreSQL store.
#[derive(Clone, Debug)]
pub struct PgOptions {
    /// Connections kept at most.
    pub max_connections: u32,
    /// How long an operation waits for a connection before failing.
    pub acquire_timeout: Duration,
}

impl Default for PgOptions {
    fn default() -> Self {
        PgOptions { max_connections: 16, acquire_timeout: Duration::from_secs(5) }
    }
}

/// Brings the schema up to date, one node at a time (an advisory lock).
async fn migrate(c: &mut PgConnection) -> Result<()> {
    // Any fixed number: it names refdesk's migration lock.
    const LOCK: i64 = 0x0072_6566_6465_736b;
    sqlx::query("SELECT pg_advisory_lock($1)").bind(LOCK).execute(&mut *c).await.map_err(db)?;
    let result = async {
        let exists = sqlx::query("SELECT to_regclass('refdesk_schema') IS NOT NULL")
            .fetch_one(&mut *c)
            .await
            .map_err(db)?
            .flag(0)?;
        if !exists {
            sqlx::query("CREATE TABLE refdesk_schema (version BIGINT NOT NULL)").execute(&mut *c).await.map_err(db)?;
        }
        let version = sqlx::query("SELECT max(version) FROM refdesk_schema")
            .fetch_one(&mut *c)
            .await
            .map_err(db)?
            .opt_int(0)?
            .unwrap_or(0) as usize;
        if version > schema::MIGRATIONS.len() {
            return Err(StoreError::Backend(format!(
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
            tracing::info!(version = i + 1, "applied PostgreSQL migration");
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
            .map_err(|e| StoreError::Backend(format!("bad PostgreSQL URL: {e}")))?
            .application_name("refdesk");
        let mut c = PgConnection::connect_with(&connect).await.map_err(|e| cannot_connect(e, &connect))?;
        migrate(&mut c).await?;
        let _ = c.close().await;
        let pool = PgPoolOptions::new()
            .max_connections(options.max_connections.max(1))
            .acquire_timeout(options.acquire_timeout)
            .connect_with(connect.clone())
            .await
            .map_err(|e| cannot_connect(e, &connect))?;
        Ok(PgStore { pool, sink, sessions: Default::default() })
    }

    fn cached(&self, id: SessionId) -> Option<(i64, SessionRecord)> {
        self.sessions.lock().ok()?.get(&id).cloned()
    }

    fn cache(&self, id: SessionId, version: i64, rec: SessionRecord) {
        if let Ok(mut map) = self.sessions.lock() {
            if map.len() >= SESSION_CACHE {
                map.clear();
            }
            map.insert(id, (version, rec));
        }
    }

    fn forget(&self, id: SessionId) {
        if let Ok(mut map) = self.sessions.lock() {
            map.remove(&id);
        }
    }

    /// An append on a cached copy of the session, in one statement. `None`
    /// when the copy was stale (the caller takes the full path).
    async fn append_on_copy(
        &self,
        version: i64,
        rec: SessionRecord,
        msg: &NewMessage,
        now: Millis,
    ) -> Result<Option<Appended>> {
        let id = rec.ctx.id;
        let (pool, sink, new) = (self.pool.clone(), self.sink.clone(), msg.clone());
        // Its own task: once the statement has run, its event is published
        // even if the caller has gone away meanwhile (I2, and no silent gap).
        let run = tokio::spawn(async move {
            let (kind, author_id, name) = sql::author_columns(&new.author);
            let row = sqlx::query(
                "SELECT outcome, seq FROM refdesk_append($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
            )
            .bind(id.0)
            .bind(version)
            .bind(now)
            .bind(new.kind.as_str())
            .bind(new.audience.as_str())
            .bind(kind)
            .bind(author_id)
            .bind(name)
            .bind(new.author.sender_key())
            .bind(&new.client_id)
            .bind(&new.body)
            .bind(new.system.map(SystemEvent::as_str))
            .fetch_one(&pool)
            .await
            .map_err(db)?;
            let (outcome, seq) = (row.text(0)?, row.int(1)?);
            if outcome != "stored" {
                return Ok((outcome, seq, None));
            }
            let message = Message {
                session: id,
                seq: seq as u64,
                kind: new.kind,
                audience: new.audience,
                author: new.author,
                body: new.body,
                client_id: new.client_id,
                at: now,
                system: new.system,
            };
            // The statement has committed: now it may be told (I2).
            sink.publish(vec![Event::Message { ctx: rec.ctx, message: message.clone() }]);
            Ok::<_, StoreError>((outcome, seq, Some(message)))
        });
        let (outcome, seq, stored) =
            run.await.map_err(|e| StoreError::Backend(format!("the append task failed: {e}")))??;
        match outcome.as_str() {
            "stored" => {
                let message = stored.ok_or_else(|| StoreError::Backend("a stored message went missing".into()))?;
                Ok(Some(Appended { message, duplicate: false }))
            }
            "duplicate" => {
                let text = format!("{} WHERE session_id = $1 AND seq = $2", sql::MESSAGE_SELECT);
                let message = opt(&self.pool, sqlx::query(&text).bind(id.0).bind(seq), sql::message)
                    .await?
                    .ok_or_else(|| StoreError::Backend("a re-sent message vanished".into()))?;
                Ok(Some(Appended { message, duplicate: true }))
            }
            "ended" => Err(DomainError::Conflict("this chat has ended".into()).into()),
            "missing" => Err(DomainError::NotFound("session").into()),
            _ => {
                self.forget(id);
                Ok(None)
            }
        }
    }

    async fn begin(&self) -> Result<Transaction<'static, Postgres>> {
        self.pool.begin().await.map_err(db)
    }

    /// Commits, then hands the events to the sink (never before: I2). In
    /// a task of its own, so that a committed write's events are published
    /// even if the caller has gone away meanwhile (a client that hung up).
    async fn commit(&self, tx: Transaction<'static, Postgres>, events: Vec<Event>) -> Result<()> {
        let sink = self.sink.clone();
        tokio::spawn(async move {
            tx.commit().await.map_err(db)?;
            if !events.is_empty() {
                sink.publish(events);
            }
            Ok(())
        })
        .await
        .map_err(|e| StoreError::Backend(format!("the commit task failed: {e}")))?
    }

    /// Begins a transaction holding the session's lock, and reads it.
    async fn begin_session(&self, id: SessionId) -> Result<(Transaction<'static, Postgres>, SessionRecord)> {
        let mut tx = self.begin().await?;
        lock_session(&mut tx, id).await?;
        let rec = load_session(&mut tx, id).await?;
        Ok((tx, rec))
    }
}

#[async_trait]
impl Store for PgStore {
    async fn close(&self) {
        self.pool.close().await
    }

    async fn is_empty(&self) -> Result<bool> {
        Ok(int(&self.pool, sqlx::query("SELECT count(*) FROM cooperatives")).await? == 0)
    }

    async fn health(&self) -> Result<()> {
        // One round trip on a pooled connection; a standby (after a
        // fail-over that left this node on the old primary's replica)
        // answers reads but commits nothing.
        let standby = tokio::time::timeout(
            crate::HEALTH_WAIT,
            sqlx::query_scalar::<_, bool>("SELECT pg_is_in_recovery()").fetch_one(&self.pool),
        )
        .await
        .map_err(|_| StoreError::Backend("the database did not answer in time".into()))?
        .map_err(db)?;
        if standby {
            return Err(StoreError::Backend("the database is a read-only standby".into()));
        }
        Ok(())
    }

    async fn create_cooperative(&self, name: &str, codes: Vec<ResolutionCode>) -> Result<CooperativeId> {
        let mut tx = self.begin().await?;
        let id =
            int(&mut *tx, sqlx::query("INSERT INTO cooperatives (name) VALUES ($1) RETURNING id").bind(name)).await?;
        for (i, code) in codes.iter().enumerate() {
            exec(
                &mut *tx,
                sqlx::query(
                    "INSERT INTO resolution_codes (cooperative_id, key, label, status, assign, follow_up, referred, exclude_from_stats, position)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
                )
                .bind(id)
                .bind(&code.key)
                .bind(&code.label)
                .bind(code.status.as_str())
                .bind(code.assign.as_str())
                .bind(code.follow_up)
                .bind(code.referred)
                .bind(code.exclude_from_stats)
                .bind(i as i64),
            )
            .await?;
        }
        self.commit(tx, Vec::new()).await?;
        Ok(CooperativeId(id))
    }

    async fn create_institution(&self, coop: CooperativeId, name: &str) -> Result<InstitutionId> {
        let q = sqlx::query("INSERT INTO institutions (cooperative_id, name) VALUES ($1, $2) RETURNING id")
            .bind(coop.0)
            .bind(name);
        Ok(InstitutionId(int(&self.pool, q).await?))
    }

    async fn create_library(&self, institution: InstitutionId, slug: &str, name: &str) -> Result<LibraryRecord> {
        let q = sqlx::query("INSERT INTO libraries (institution_id, slug, name) VALUES ($1, $2, $3) RETURNING id")
            .bind(institution.0)
            .bind(slug)
            .bind(name);
        let id = int(&self.pool, q).await.map_err(|e| match e {
            StoreError::Domain(DomainError::NotFound(_)) => DomainError::NotFound("institution").into(),
            other => other,
        })?;
        let text = format!("{} WHERE l.id = $1", sql::LIBRARY_SELECT);
        opt(&self.pool, sqlx::query(&text).bind(id), sql::library)
            .await?
            .ok_or(StoreError::Domain(DomainError::NotFound("library")))
    }

    async fn library_by_slug(&self, slug: &str) -> Result<Option<LibraryRecord>> {
        let text = format!("{} WHERE l.slug = $1", sql::LIBRARY_SELECT);
        opt(&self.pool, sqlx::query(&text).bind(slug), sql::library).await
    }

    async fn libraries(&self) -> Result<Vec<LibraryRecord>> {
        let text = format!("{} ORDER BY l.id", sql::LIBRARY_SELECT);
        all(&self.pool, sqlx::query(&text), sql::library).await
    }

    async fn institutions(&self) -> Result<Vec<crate::InstitutionRecord>> {
        all(&self.pool, sqlx::query(sql::INSTITUTION_SELECT), sql::institution).await
    }

    async fn codes(&self, coop: CooperativeId) -> Result<Vec<ResolutionCode>> {
        codes_of(&self.pool, coop).await
    }

    async fn create_staff(&self, new: NewStaff) -> Result<StaffId> {
        let q = sqlx::query(
            "INSERT INTO staff (library_id, username, display_name, role, password_hash) VALUES ($1, $2, $3, $4, $5) RETURNING id",
        )
        .bind(new.library.0)
        .bind(&new.username)
        .bind(&new.display_name)
        .bind(new.role.as_str())
        .bind(&new.password_hash);
        let id = int(&self.pool, q).await.map_err(|e| match e {
            StoreError::Domain(DomainError::Conflict(_)) => {
                StoreError::Domain(DomainError::Conflict(format!("the username {} is taken", new.username)))
            }
            other => other,
        })?;
        Ok(StaffId(id))
    }

    async fn staff_by_username(&self, username: &str) -> Result<Option<StaffRecord>> {
        let text = format!("{} WHERE s.username = $1", sql::STAFF_SELECT);
        opt(&self.pool, sqlx::query(&text).bind(username), sql::staff_record).await
    }

    async fn staff_by_id(&self, id: StaffId) -> Result<Option<Staff>> {
        let text = format!("{} WHERE s.id = $1", sql::STAFF_SELECT);
        opt(&self.pool, sqlx::query(&text).bind(id.0), sql::staff).await
    }

    async fn create_login(&self, token_hash: &str, staff: StaffId, expires: Millis) -> Result<()> {
        let q = sqlx::query("INSERT INTO logins (token_hash, staff_id, expires_at) VALUES ($1, $2, $3)")
            .bind(token_hash)
            .bind(staff.0)
            .bind(expires);
        exec(&self.pool, q).await.map(|_| ())
    }

    async fn staff_by_login(&self, token_hash: &str, now: Millis) -> Result<Option<Staff>> {
        let text = format!(
            "{} JOIN logins g ON g.staff_id = s.id WHERE g.token_hash = $1 AND g.expires_at > $2 AND NOT s.disabled",
            sql::STAFF_SELECT
        );
        opt(&self.pool, sqlx::query(&text).bind(token_hash).bind(now), sql::staff).await
    }

    async fn delete_login(&self, token_hash: &str) -> Result<()> {
        exec(&self.pool, sqlx::query("DELETE FROM logins WHERE token_hash = $1").bind(token_hash)).await.map(|_| ())
    }

    async fn start_session(&self, new: NewSession) -> Result<(SessionRecord, QueueEntry)> {
        let mut tx = self.begin().await?;
        let text = format!("{} WHERE l.id = $1", sql::LIBRARY_SELECT);
        opt(&mut *tx, sqlx::query(&text).bind(new.library.0), sql::library)
            .await?
            .ok_or(StoreError::Domain(DomainError::NotFound("library")))?;
        // The library's row lock orders the starts of one library: the count
        // below cannot be passed by two starts at once.
        exec(&mut *tx, sqlx::query("SELECT 1 FROM libraries WHERE id = $1 FOR NO KEY UPDATE").bind(new.library.0))
            .await?;
        let waiting = int(&mut *tx, sqlx::query(&pg(sql::WAITING_IN_LIBRARY)).bind(new.library.0)).await?;
        if waiting >= i64::from(new.max_waiting) {
            return Err(crate::queue_full().into());
        }
        if let Some(net) = &new.keys.net {
            // Starts from one network to several libraries are ordered too.
            exec(&mut *tx, sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended('net:' || $1, 0))").bind(net))
                .await?;
            let from_net = int(&mut *tx, sqlx::query(&pg(sql::WAITING_FROM_NET)).bind(net)).await?;
            if from_net >= i64::from(new.max_waiting_per_net) {
                return Err(crate::net_full().into());
            }
        }
        let id = int(
            &mut *tx,
            sqlx::query(
                "INSERT INTO sessions (library_id, token_hash, state, patron_name, patron_email, question_text, created_at, last_message_at, transcript_to, queued_at, browser_key, net_key)
                 VALUES ($1, $2, 'waiting', $3, $4, $5, $6, $6, $7, $6, $8, $9) RETURNING id",
            )
            .bind(new.library.0)
            .bind(&new.token_hash)
            .bind(&new.patron_name)
            .bind(&new.patron_email)
            .bind(&new.question)
            .bind(new.now)
            .bind(&new.transcript_to)
            .bind(&new.keys.browser)
            .bind(&new.keys.net),
        )
        .await?;
        let id = SessionId(id);
        let rec = load_session(&mut tx, id).await?;
        let message = insert_first_line(&mut tx, &rec, &new.question, new.now).await?;
        let rec = load_session(&mut tx, id).await?;
        let entry = crate::queue_entry(&rec, new.question, new.now);
        let events = crate::started_events(&entry, &rec, message);
        self.commit(tx, events).await?;
        Ok((rec, entry))
    }

    async fn session(&self, id: SessionId) -> Result<Option<SessionRecord>> {
        let mut c = self.pool.acquire().await.map_err(db)?;
        Ok(sessions_where(&mut c, "s.id = $1", Some(id.0)).await?.pop())
    }

    async fn session_by_token(&self, token_hash: &str) -> Result<Option<SessionRecord>> {
        let mut c = self.pool.acquire().await.map_err(db)?;
        session_where(&mut c, "s.token_hash = $1", token_hash).await
    }

    async fn waiting(&self) -> Result<Vec<QueueEntry>> {
        let text = format!("{} ORDER BY COALESCE(s.queued_at, s.created_at), s.id", sql::QUEUE_SELECT);
        all(&self.pool, sqlx::query(&text), sql::queue_entry).await
    }

    async fn sessions_of(&self, staff: StaffId) -> Result<Vec<SessionRecord>> {
        let mut c = self.pool.acquire().await.map_err(db)?;
        sessions_where(
            &mut c,
            "s.state = 'active' AND (s.librarian_id = $1
               OR EXISTS (SELECT 1 FROM session_members m WHERE m.session_id = s.id AND m.staff_id = $1))
             ORDER BY s.id",
            Some(staff.0),
        )
        .await
    }

    async fn accept(&self, id: SessionId, by: Staff, guard: Guard, now: Millis) -> Result<(SessionRecord, Message)> {
        let (mut tx, rec) = self.begin_session(id).await?;
        guard(&rec)?;
        rec.state.accept()?;
        // The row lock makes this the one accept that sees 'waiting' (I6);
        // the WHERE clause says so again.
        let n = exec(
            &mut *tx,
            sqlx::query(
                "UPDATE sessions SET state = 'active', librarian_id = $2, accepted_at = $3 WHERE id = $1 AND state = 'waiting'",
            )
            .bind(id.0)
            .bind(by.id.0)
            .bind(now),
        )
        .await?;
        if n != 1 {
            return Err(DomainError::Conflict("this chat was already accepted".into()).into());
        }
        // R1: the question is created at the first acceptance; a chat
        // accepted again after a transfer to a queue keeps its question.
        match rec.ctx.question {
            None => {
                let q = question_on_accept();
                let text = question_text(&mut tx, id).await?;
                let question = int(
                    &mut *tx,
                    sqlx::query(
                        "INSERT INTO questions (session_id, library_id, text, status, created_at) VALUES ($1, $2, $3, $4, $5) RETURNING id",
                    )
                    .bind(id.0)
                    .bind(rec.ctx.placement.library.0)
                    .bind(text)
                    .bind(q.status.as_str())
                    .bind(now),
                )
                .await?;
                insert_timeline(&mut tx, QuestionId(question), now, Some(&by), &Change::Created { status: q.status })
                    .await?;
            }
            Some(question) => {
                let change = Change::Librarian { from: None, to: Some(by.id), how: "accepted from a queue".into() };
                insert_timeline(&mut tx, question, now, Some(&by), &change).await?;
            }
        }
        exec(
            &mut *tx,
            sqlx::query("DELETE FROM session_members WHERE session_id = $1 AND staff_id = $2").bind(id.0).bind(by.id.0),
        )
        .await?;
        let rec = load_session(&mut tx, id).await?;
        let line = crate::accepted_line(&by);
        let message = insert_message(&mut tx, &rec, line, now).await?;
        let rec = load_session(&mut tx, id).await?;
        let events = vec![
            Event::QueueRemoved { session: id, placement: rec.queue, since: rec.queued_at, version: rec.ctx.version },
            Event::Message { ctx: rec.ctx.clone(), message: message.clone() },
            Event::SessionChanged(rec.summary()),
        ];
        self.commit(tx, events).await?;
        Ok((rec, message))
    }

    async fn append(&self, id: SessionId, msg: NewMessage, guard: Guard, now: Millis) -> Result<Appended> {
        // The fast path: the guard passes on a copy the database confirms is current.
        if let Some((version, rec)) = self.cached(id) {
            if guard(&rec).is_ok() {
                if let Some(done) = self.append_on_copy(version, rec, &msg, now).await? {
                    return Ok(done);
                }
            }
        }
        // The full path, which also refreshes the copy: the row, locked,
        // without a new version (an append changes nothing a guard reads).
        let mut tx = self.begin().await?;
        let version =
            opt(&mut *tx, sqlx::query("SELECT version FROM sessions WHERE id = $1 FOR UPDATE").bind(id.0), |r| {
                r.int(0)
            })
            .await?
            .ok_or(StoreError::Domain(DomainError::NotFound("session")))?;
        let rec = load_session(&mut tx, id).await?;
        // An ended chat takes no more lines: it is not kept (its patron's
        // name and address with it) for appends that will all be refused.
        if rec.state.accepts_messages() {
            self.cache(id, version, rec.clone());
        }
        guard(&rec)?;
        if let Some(cid) = &msg.client_id {
            if let Some(message) = message_by_client_id(&mut tx, id, &msg.author.sender_key(), cid).await? {
                return Ok(Appended { message, duplicate: true });
            }
        }
        if !rec.state.accepts_messages() {
            return Err(DomainError::Conflict("this chat has ended".into()).into());
        }
        let message = insert_message(&mut tx, &rec, msg, now).await?;
        let events = vec![Event::Message { ctx: rec.ctx, message: message.clone() }];
        self.commit(tx, events).await?;
        Ok(Appended { message, duplicate: false })
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
        // An ended chat takes no more appends: its cached copy (with the
        // patron's name and address) goes, not at the cache's limit.
        self.forget(id);
        let (mut tx, rec) = self.begin_session(id).await?;
        guard(&rec)?;
        rec.state.end()?;
        exec(
            &mut *tx,
            sqlx::query("UPDATE sessions SET state = 'ended', ended_at = $2 WHERE id = $1").bind(id.0).bind(now),
        )
        .await?;
        let line = crate::ended_line(&by);
        let missed = (rec.state, &ending.missed, &rec.patron_email, rec.ctx.question);
        if let (SessionState::Waiting, Some(note), Some(_), Some(q)) = missed {
            // Sent back to a queue, and nobody took it again: its question stays.
            insert_timeline(&mut tx, q, now, None, &Change::Note { body: note.clone() }).await?;
        } else if let (SessionState::Waiting, Some(note), Some(_), None) = missed {
            let text = question_text(&mut tx, id).await?;
            let q = int(
                &mut *tx,
                sqlx::query(
                    "INSERT INTO questions (session_id, library_id, text, status, follow_up, created_at) VALUES ($1, $2, $3, 'new', TRUE, $4) RETURNING id",
                )
                .bind(id.0)
                .bind(rec.ctx.placement.library.0)
                .bind(text)
                .bind(now),
            )
            .await?;
            let q = QuestionId(q);
            insert_timeline(&mut tx, q, now, None, &Change::Created { status: Status::New }).await?;
            insert_timeline(&mut tx, q, now, None, &Change::Note { body: note.clone() }).await?;
        }
        let last_words = match ending.last_words {
            Some(words) => {
                let before = load_session(&mut tx, id).await?;
                Some((before.ctx.clone(), insert_message(&mut tx, &before, crate::last_words_line(words), now).await?))
            }
            None => None,
        };
        let ended = load_session(&mut tx, id).await?;
        let message = insert_message(&mut tx, &ended, line, now).await?;
        let every = all_messages(&mut tx, id).await?;
        if let Some(m) = mail(&ended, &every) {
            insert_mail(&mut tx, &m, ended.ctx.question, Some(id), now).await?;
        }
        let mut events = Vec::new();
        if rec.state == SessionState::Waiting {
            events.push(Event::QueueRemoved {
                session: id,
                placement: rec.queue,
                since: rec.queued_at,
                version: rec.ctx.version,
            });
        }
        let summary = load_session(&mut tx, id).await?.summary();
        if let Some((ctx, words)) = last_words {
            events.push(Event::Message { ctx, message: words });
        }
        events.push(Event::Message { ctx: ended.ctx, message: message.clone() });
        events.push(Event::SessionChanged(summary));
        self.commit(tx, events).await?;
        Ok(message)
    }

    async fn set_transcript_to(&self, id: SessionId, email: Option<String>) -> Result<()> {
        let mut tx = self.begin().await?;
        lock_session(&mut tx, id).await?;
        // Only while the chat goes on: at its end the transcript is built
        // from this column, in the same transaction as the end.
        let n = exec(
            &mut *tx,
            sqlx::query("UPDATE sessions SET transcript_to = $2 WHERE id = $1 AND state <> 'ended'")
                .bind(id.0)
                .bind(email),
        )
        .await?;
        if n == 0 {
            return Err(DomainError::Conflict("the chat has ended".into()).into());
        }
        self.commit(tx, Vec::new()).await
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
        let (mut tx, rec) = self.begin_session(id).await?;
        guard(&rec)?;
        let question = rec
            .ctx
            .question
            .ok_or_else(|| DomainError::Conflict("this chat has no question yet: accept it first".into()))?;
        let before = question_state(&mut tx, question).await?;
        let codes = codes_of(&mut *tx, rec.ctx.placement.cooperative).await?;
        let after = decide(&before, &rec, &codes)?;
        write_question_state(&mut tx, question, &before, &after, &by, now).await?;
        let label = codes.iter().find(|k| Some(&k.key) == after.code.as_ref()).map(|k| k.label.clone()).unwrap_or(code);
        let line = crate::code_set_line(&label, &by);
        let rec = load_session(&mut tx, id).await?;
        let message = insert_message(&mut tx, &rec, line, now).await?;
        let events = vec![Event::Message { ctx: rec.ctx, message: message.clone() }];
        self.commit(tx, events).await?;
        Ok((after, message))
    }

    async fn messages_after(&self, id: SessionId, after: u64, limit: u32) -> Result<Vec<Message>> {
        let text = format!("{} WHERE session_id = $1 AND seq > $2 ORDER BY seq LIMIT $3", sql::MESSAGE_SELECT);
        let q = sqlx::query(&text).bind(id.0).bind(after.min(i64::MAX as u64) as i64).bind(i64::from(limit));
        all(&self.pool, q, sql::message).await
    }

    async fn queue_ahead(&self, queue: LibraryId, since: Millis, session: SessionId) -> Result<u64> {
        let q = sqlx::query(
            "SELECT count(*) FROM sessions s WHERE s.state = 'waiting' AND COALESCE(s.queue_library_id, s.library_id) = $1
             AND (COALESCE(s.queued_at, s.created_at) < $2 OR (COALESCE(s.queued_at, s.created_at) = $2 AND s.id < $3))",
        )
        .bind(queue.0)
        .bind(since)
        .bind(session.0);
        Ok(int(&self.pool, q).await?.max(0) as u64)
    }

    async fn rate(&self, id: SessionId, rating: u8, comment: Option<String>) -> Result<()> {
        let q = sqlx::query("UPDATE sessions SET rating = $2, rating_comment = $3 WHERE id = $1")
            .bind(id.0)
            .bind(i64::from(rating))
            .bind(comment);
        if exec(&self.pool, q).await? == 0 {
            return Err(DomainError::NotFound("session").into());
        }
        Ok(())
    }

    async fn policy(&self, library: LibraryId) -> Result<Option<PolicyPage>> {
        opt(&self.pool, sqlx::query(&pg(sql::POLICY_SELECT)).bind(library.0), sql::policy).await
    }

    async fn set_policy(&self, library: LibraryId, body: String, by: StaffId, now: Millis) -> Result<()> {
        let q = sqlx::query(
            "INSERT INTO policies (library_id, body, updated_at, updated_by) VALUES ($1, $2, $3, $4)
             ON CONFLICT (library_id) DO UPDATE SET body = excluded.body, updated_at = excluded.updated_at, updated_by = excluded.updated_by",
        )
        .bind(library.0)
        .bind(body)
        .bind(now)
        .bind(by.0);
        exec(&self.pool, q).await.map(|_| ())
    }

    async fn scripts_for(&self, staff: &Staff) -> Result<Vec<Script>> {
        let text = format!(
            "{} WHERE (scope = 'personal' AND owner_id = $1) OR (scope = 'library' AND owner_id = $2)
                OR (scope = 'cooperative' AND owner_id = $3)
             ORDER BY CASE scope WHEN 'personal' THEN 0 WHEN 'library' THEN 1 ELSE 2 END, title, id",
            sql::SCRIPT_SELECT
        );
        let q = sqlx::query(&text).bind(staff.id.0).bind(staff.home.library.0).bind(staff.home.cooperative.0);
        all(&self.pool, q, sql::script).await
    }

    async fn script(&self, id: i64) -> Result<Option<Script>> {
        let text = format!("{} WHERE id = $1", sql::SCRIPT_SELECT);
        opt(&self.pool, sqlx::query(&text).bind(id), sql::script).await
    }

    async fn create_script(&self, scope: &str, owner: i64, title: String, body: String, now: Millis) -> Result<Script> {
        let q = sqlx::query(
            "INSERT INTO scripts (scope, owner_id, title, body, created_at) VALUES ($1, $2, $3, $4, $5) RETURNING id",
        )
        .bind(scope)
        .bind(owner)
        .bind(&title)
        .bind(&body)
        .bind(now);
        let id = int(&self.pool, q).await?;
        Ok(Script { id, scope: scope.to_owned(), owner, title, body })
    }

    async fn delete_script(&self, id: i64) -> Result<()> {
        exec(&self.pool, sqlx::query("DELETE FROM scripts WHERE id = $1").bind(id)).await.map(|_| ())
    }

    async fn put_code(&self, coop: CooperativeId, code: ResolutionCode) -> Result<()> {
        let mut tx = self.begin().await?;
        // One code change at a time per cooperative: the new position is max + 1.
        sqlx::query("SELECT id FROM cooperatives WHERE id = $1 FOR UPDATE")
            .bind(coop.0)
            .fetch_optional(&mut *tx)
            .await
            .map_err(db)?
            .ok_or(StoreError::Domain(DomainError::NotFound("cooperative")))?;
        exec(
            &mut *tx,
            sqlx::query(
                "INSERT INTO resolution_codes (cooperative_id, key, label, status, assign, follow_up, referred, exclude_from_stats, position)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8,
                         (SELECT COALESCE(max(position), -1) + 1 FROM resolution_codes WHERE cooperative_id = $1))
                 ON CONFLICT (cooperative_id, key) DO UPDATE SET label = excluded.label, status = excluded.status,
                   assign = excluded.assign, follow_up = excluded.follow_up, referred = excluded.referred,
                   exclude_from_stats = excluded.exclude_from_stats",
            )
            .bind(coop.0)
            .bind(&code.key)
            .bind(&code.label)
            .bind(code.status.as_str())
            .bind(code.assign.as_str())
            .bind(code.follow_up)
            .bind(code.referred)
            .bind(code.exclude_from_stats),
        )
        .await?;
        self.commit(tx, Vec::new()).await
    }

    async fn idle_sessions(&self, before: Millis) -> Result<Vec<SessionId>> {
        let q = sqlx::query("SELECT id FROM sessions WHERE state = 'active' AND last_message_at < $1 ORDER BY id")
            .bind(before);
        all(&self.pool, q, |r| Ok(SessionId(r.int(0)?))).await
    }

    async fn live_sessions(&self) -> Result<Vec<SessionRecord>> {
        let mut c = self.pool.acquire().await.map_err(db)?;
        sessions_where(&mut c, "s.state IN ('waiting', 'active') ORDER BY s.id", None).await
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
        let (mut tx, rec) = self.begin_session(id).await?;
        guard(&rec)?;
        if rec.ctx.member_mode(by.id) == Some(mode) {
            return Err(DomainError::Conflict(format!("you are already in this chat in {} mode", mode.as_str())).into());
        }
        let line = line(&rec);
        exec(
            &mut *tx,
            sqlx::query(
                "INSERT INTO session_members (session_id, staff_id, mode, joined_at) VALUES ($1, $2, $3, $4)
                 ON CONFLICT (session_id, staff_id) DO UPDATE SET mode = excluded.mode",
            )
            .bind(id.0)
            .bind(by.id.0)
            .bind(mode.as_str())
            .bind(now),
        )
        .await?;
        if let Some(q) = rec.ctx.question {
            let change = Change::Conference { staff: by.id, name: by.display_name.clone(), mode: Some(mode) };
            insert_timeline(&mut tx, q, now, Some(&by), &change).await?;
        }
        let after = load_session(&mut tx, id).await?;
        let mut events = Vec::new();
        if let Some(line) = line {
            let message = insert_message(&mut tx, &after, line, now).await?;
            events.push(Event::Message { ctx: after.ctx.clone(), message });
        }
        events.push(Event::SessionChanged(after.summary()));
        self.commit(tx, events).await?;
        Ok(after)
    }

    async fn leave(&self, id: SessionId, by: Staff, line: LineFor, guard: Guard, now: Millis) -> Result<SessionRecord> {
        let (mut tx, rec) = self.begin_session(id).await?;
        guard(&rec)?;
        let line = line(&rec);
        exec(
            &mut *tx,
            sqlx::query("DELETE FROM session_members WHERE session_id = $1 AND staff_id = $2").bind(id.0).bind(by.id.0),
        )
        .await?;
        if let Some(q) = rec.ctx.question {
            let change = Change::Conference { staff: by.id, name: by.display_name.clone(), mode: None };
            insert_timeline(&mut tx, q, now, Some(&by), &change).await?;
        }
        // The line is written while they are still a member, so that it
        // reaches them too; then the context without them.
        let mut events = Vec::new();
        if let Some(line) = line {
            let message = insert_message(&mut tx, &rec, line, now).await?;
            events.push(Event::Message { ctx: rec.ctx.clone(), message });
        }
        let after = load_session(&mut tx, id).await?;
        events.push(Event::SessionChanged(after.summary()));
        self.commit(tx, events).await?;
        Ok(after)
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
        let (mut tx, rec) = self.begin_session(id).await?;
        guard(&rec)?;
        let previous = rec.ctx.librarian;
        let (new_librarian, how) = match &to {
            TransferTo::Staff(s) => {
                exec(
                    &mut *tx,
                    sqlx::query("UPDATE sessions SET librarian_id = $2 WHERE id = $1 AND state = 'active'")
                        .bind(id.0)
                        .bind(s.id.0),
                )
                .await?;
                exec(
                    &mut *tx,
                    sqlx::query("DELETE FROM session_members WHERE session_id = $1 AND staff_id = $2")
                        .bind(id.0)
                        .bind(s.id.0),
                )
                .await?;
                (Some(s.id), if s.id == by.id { "take_over" } else { "transfer" })
            }
            TransferTo::Queue { library, coop_now } => {
                exec(
                    &mut *tx,
                    sqlx::query(
                        "UPDATE sessions SET state = 'waiting', librarian_id = NULL, queue_library_id = $2, queued_at = $3, queue_coop = $4
                         WHERE id = $1 AND state = 'active'",
                    )
                    .bind(id.0)
                    .bind(library.library.0)
                    .bind(now)
                    .bind(*coop_now),
                )
                .await?;
                (None, "queue")
            }
        };
        if stay {
            if let Some(prev) = previous.filter(|p| Some(*p) != new_librarian) {
                exec(
                    &mut *tx,
                    sqlx::query(
                        "INSERT INTO session_members (session_id, staff_id, mode, joined_at) VALUES ($1, $2, 'whisper', $3)
                         ON CONFLICT (session_id, staff_id) DO UPDATE SET mode = 'whisper'",
                    )
                    .bind(id.0)
                    .bind(prev.0)
                    .bind(now),
                )
                .await?;
            }
        }
        if let Some(q) = rec.ctx.question {
            let change = Change::Librarian { from: previous, to: new_librarian, how: how.into() };
            insert_timeline(&mut tx, q, now, Some(&by), &change).await?;
        }
        let after = load_session(&mut tx, id).await?;
        let ctx = crate::handover_audience(&rec, &after);
        let message = insert_message(&mut tx, &after, line, now).await?;
        let mut events = vec![Event::Message { ctx, message }];
        if after.state == SessionState::Waiting {
            let text = question_text(&mut tx, id).await?;
            events.push(Event::QueueAdded(crate::queue_entry(&after, text, now)));
        }
        events.push(Event::SessionChanged(after.summary()));
        self.commit(tx, events).await?;
        Ok(after)
    }

    async fn rolled_up(&self, after: Millis, upto: Millis, rollup: Millis) -> Result<Vec<QueueEntry>> {
        let text = format!(
            "{} AND NOT s.queue_coop AND COALESCE(s.queued_at, s.created_at) + $3 > $1
             AND COALESCE(s.queued_at, s.created_at) + $3 <= $2 ORDER BY s.queued_at, s.id",
            sql::QUEUE_SELECT
        );
        all(&self.pool, sqlx::query(&text).bind(after).bind(upto).bind(rollup), sql::queue_entry).await
    }

    async fn create_form_question(&self, new: NewFormQuestion) -> Result<QuestionRecord> {
        let mut tx = self.begin().await?;
        if let Some(net) = &new.keys.net {
            exec(&mut *tx, sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended('net:' || $1, 0))").bind(net))
                .await?;
            let text = pg(sql::FORMS_FROM_NET);
            let today = int(&mut *tx, sqlx::query(&text).bind(net).bind(new.now - 86_400_000)).await?;
            if today >= i64::from(new.max_per_net_per_day) {
                return Err(crate::forms_full().into());
            }
        }
        let session = int(
            &mut *tx,
            sqlx::query(
                "INSERT INTO sessions (library_id, token_hash, state, patron_name, patron_email, question_text, created_at, ended_at, last_message_at, queued_at, browser_key, net_key, by_form)
                 VALUES ($1, $2, 'ended', $3, $4, $5, $6, $6, $6, $6, $7, $8, TRUE) RETURNING id",
            )
            .bind(new.library.0)
            .bind(&new.token_hash)
            .bind(&new.patron_name)
            .bind(&new.patron_email)
            .bind(&new.question)
            .bind(new.now)
            .bind(&new.keys.browser)
            .bind(&new.keys.net),
        )
        .await?;
        let session = SessionId(session);
        let rec = load_session(&mut tx, session).await?;
        insert_first_line(&mut tx, &rec, &new.question, new.now).await?;
        // The form question has no chat to wait for: it is not live, and
        // "new" says it needs work (DESIGN §9).
        let q = int(
            &mut *tx,
            sqlx::query(
                "INSERT INTO questions (session_id, library_id, text, status, code, created_at) VALUES ($1, $2, $3, 'new', NULL, $4) RETURNING id",
            )
            .bind(session.0)
            .bind(new.library.0)
            .bind(&new.question)
            .bind(new.now),
        )
        .await?;
        let q = QuestionId(q);
        insert_timeline(&mut tx, q, new.now, None, &Change::Created { status: Status::New }).await?;
        let question = question_where(&mut *tx, q).await?;
        self.commit(tx, Vec::new()).await?;
        Ok(question)
    }

    async fn set_availability(&self, id: StaffId, a: Availability, now: Millis) -> Result<()> {
        let mut tx = self.begin().await?;
        let coop = opt(
            &mut *tx,
            sqlx::query(
                "UPDATE staff s SET availability = $2, last_seen = GREATEST(s.last_seen, $3)
                 FROM libraries l JOIN institutions i ON i.id = l.institution_id
                 WHERE s.id = $1 AND l.id = s.library_id RETURNING i.cooperative_id",
            )
            .bind(id.0)
            .bind(a.as_str())
            .bind(now),
            |r| r.int(0),
        )
        .await?
        .ok_or(StoreError::Domain(DomainError::NotFound("staff member")))?;
        let event = Event::Availability { staff: id, cooperative: CooperativeId(coop), availability: a };
        self.commit(tx, vec![event]).await
    }

    async fn touch(&self, ids: Vec<StaffId>, now: Millis) -> Result<()> {
        let ids: Vec<i64> = ids.into_iter().map(|s| s.0).collect();
        let q =
            sqlx::query("UPDATE staff SET last_seen = GREATEST(last_seen, $2) WHERE id = ANY($1)").bind(ids).bind(now);
        exec(&self.pool, q).await.map(|_| ())
    }

    async fn sign_off_stale(&self, before: Millis) -> Result<Vec<Staff>> {
        let mut tx = self.begin().await?;
        // Each node's tick may run this at once: the UPDATE decides who is
        // taken off duty, so each change is announced by exactly one node.
        let ids = all(
            &mut *tx,
            sqlx::query(
                "UPDATE staff SET availability = 'off_duty' WHERE availability <> 'off_duty' AND last_seen < $1 RETURNING id",
            )
            .bind(before),
            |r| r.int(0),
        )
        .await?;
        let text = format!("{} WHERE s.id = ANY($1) ORDER BY s.id", sql::STAFF_SELECT);
        let stale = all(&mut *tx, sqlx::query(&text).bind(ids), sql::staff).await?;
        let events = stale
            .iter()
            .map(|s| Event::Availability {
                staff: s.id,
                cooperative: s.home.cooperative,
                availability: Availability::OffDuty,
            })
            .collect();
        self.commit(tx, events).await?;
        Ok(stale)
    }

    async fn staff_of(&self, coop: CooperativeId) -> Result<Vec<StaffEntry>> {
        let text = format!("{} WHERE i.cooperative_id = $1 ORDER BY s.display_name, s.id", sql::STAFF_SELECT);
        all(&self.pool, sqlx::query(&text).bind(coop.0), sql::staff_entry).await
    }

    async fn update_staff(&self, id: StaffId, update: StaffUpdate) -> Result<()> {
        let mut tx = self.begin().await?;
        sqlx::query("SELECT id FROM staff WHERE id = $1 FOR UPDATE")
            .bind(id.0)
            .fetch_optional(&mut *tx)
            .await
            .map_err(db)?
            .ok_or(StoreError::Domain(DomainError::NotFound("staff member")))?;
        if let Some(role) = update.role {
            exec(&mut *tx, sqlx::query("UPDATE staff SET role = $2 WHERE id = $1").bind(id.0).bind(role.as_str()))
                .await?;
        }
        if let Some(hash) = &update.password_hash {
            exec(&mut *tx, sqlx::query("UPDATE staff SET password_hash = $2 WHERE id = $1").bind(id.0).bind(hash))
                .await?;
        }
        if let Some(disabled) = update.disabled {
            exec(&mut *tx, sqlx::query("UPDATE staff SET disabled = $2 WHERE id = $1").bind(id.0).bind(disabled))
                .await?;
            if disabled {
                exec(&mut *tx, sqlx::query("UPDATE staff SET availability = 'off_duty' WHERE id = $1").bind(id.0))
                    .await?;
            }
        }
        // A disabled account, a new password or a new role: every sign-in
        // ends, and every open connection with it.
        exec(&mut *tx, sqlx::query("DELETE FROM logins WHERE staff_id = $1").bind(id.0)).await?;
        self.commit(tx, vec![Event::SignedOut { staff: id }]).await
    }

    async fn im_send(
        &self,
        from: Staff,
        to: StaffId,
        body: String,
        client_id: Option<String>,
        now: Millis,
    ) -> Result<(ImMessage, bool)> {
        let (low, high) = if from.id.0 < to.0 { (from.id.0, to.0) } else { (to.0, from.id.0) };
        let mut tx = self.begin().await?;
        // One writer per conversation (its sequence numbers, its client ids).
        sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended('im:' || $1::text || ':' || $2::text, 0))")
            .bind(low)
            .bind(high)
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        if let Some(cid) = &client_id {
            let text = format!("{} WHERE m.sender = $1 AND m.recipient = $2 AND m.client_id = $3", sql::IM_SELECT);
            let found = opt(&mut *tx, sqlx::query(&text).bind(from.id.0).bind(to.0).bind(cid), sql::im).await?;
            if let Some(m) = found {
                return Ok((m, true));
            }
        }
        let seq = int(
            &mut *tx,
            sqlx::query("SELECT COALESCE(max(seq), 0) + 1 FROM im_messages WHERE low = $1 AND high = $2")
                .bind(low)
                .bind(high),
        )
        .await?;
        exec(
            &mut *tx,
            sqlx::query(
                "INSERT INTO im_messages (low, high, seq, sender, recipient, body, client_id, at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            )
            .bind(low)
            .bind(high)
            .bind(seq)
            .bind(from.id.0)
            .bind(to.0)
            .bind(&body)
            .bind(&client_id)
            .bind(now),
        )
        .await
        .map_err(|e| match e {
            StoreError::Domain(DomainError::NotFound(_)) => DomainError::NotFound("staff member").into(),
            other => other,
        })?;
        let m = ImMessage {
            seq: seq as u64,
            from: from.id,
            from_name: from.display_name.clone(),
            to,
            body,
            client_id,
            at: now,
        };
        self.commit(tx, vec![Event::Im(m.clone())]).await?;
        Ok((m, false))
    }

    async fn im_after(&self, a: StaffId, b: StaffId, after: u64, limit: u32) -> Result<Vec<ImMessage>> {
        let (low, high) = if a.0 < b.0 { (a.0, b.0) } else { (b.0, a.0) };
        let text =
            format!("{} WHERE m.low = $1 AND m.high = $2 AND m.seq > $3 ORDER BY m.seq LIMIT $4", sql::IM_SELECT);
        let q = sqlx::query(&text).bind(low).bind(high).bind(after.min(i64::MAX as u64) as i64).bind(i64::from(limit));
        all(&self.pool, q, sql::im).await
    }

    async fn im_conversations(&self, me: StaffId) -> Result<Vec<ImConversation>> {
        all(&self.pool, sqlx::query(&pg(sql::IM_CONVERSATIONS)).bind(me.0), sql::im_conversation).await
    }

    async fn im_read(&self, me: StaffId, peer: StaffId, seq: u64) -> Result<()> {
        let q = sqlx::query(
            "INSERT INTO im_reads (staff_id, peer_id, last_read) VALUES ($1, $2, $3)
             ON CONFLICT (staff_id, peer_id) DO UPDATE SET last_read = GREATEST(im_reads.last_read, excluded.last_read)",
        )
        .bind(me.0)
        .bind(peer.0)
        .bind(seq.min(i64::MAX as u64) as i64);
        exec(&self.pool, q).await.map(|_| ())
    }

    async fn questions(&self, query: QuestionQuery) -> Result<Vec<QuestionRecord>> {
        let (text, args) = sql::question_query(&query);
        // SQLite's LIKE ignores the case of ASCII letters; PostgreSQL's ILIKE does the same.
        let text = pg(&text).replace(" LIKE ", " ILIKE ");
        let mut q = sqlx::query(&text);
        for a in args {
            q = match a {
                Arg::Int(i) => q.bind(i),
                Arg::Text(t) => q.bind(t),
            };
        }
        all(&self.pool, q, sql::question).await
    }

    async fn act_on_question(&self, id: QuestionId, by: Staff, plan: Plan, now: Millis) -> Result<Acted> {
        let mut tx = self.begin().await?;
        let session = SessionId(
            opt(&mut *tx, sqlx::query("SELECT session_id FROM questions WHERE id = $1").bind(id.0), |r| r.int(0))
                .await?
                .ok_or(StoreError::Domain(DomainError::NotFound("question")))?,
        );
        lock_session(&mut tx, session).await?;
        let question = question_where(&mut *tx, id).await?;
        let session = load_session(&mut tx, session).await?;
        let before = question.state.clone();
        let plan = plan(&question, &session)?;
        if let Some(after) = &plan.state {
            write_question_state(&mut tx, id, &before, after, &by, now).await?;
        }
        for entry in &plan.entries {
            insert_timeline(&mut tx, id, now, Some(&by), entry).await?;
        }
        let mut events = Vec::new();
        let line = match plan.line {
            Some(line) => {
                let message = insert_message(&mut tx, &session, line, now).await?;
                events.push(Event::Message { ctx: session.ctx.clone(), message: message.clone() });
                Some(message)
            }
            None => None,
        };
        let mail = match &plan.mail {
            Some(m) => Some(insert_mail(&mut tx, m, Some(id), Some(session.ctx.id), now).await?),
            None => None,
        };
        let question = question_where(&mut *tx, id).await?;
        self.commit(tx, events).await?;
        Ok(Acted { question, line, mail })
    }

    async fn question(&self, id: QuestionId) -> Result<Option<QuestionRecord>> {
        match question_where(&self.pool, id).await {
            Ok(q) => Ok(Some(q)),
            Err(StoreError::Domain(DomainError::NotFound(_))) => Ok(None),
            Err(e) => Err(e),
        }
    }

    async fn timeline(&self, id: QuestionId) -> Result<Vec<TimelineEntry>> {
        all(&self.pool, sqlx::query(&pg(sql::TIMELINE_SELECT)).bind(id.0), sql::timeline).await
    }

    async fn due_mail(&self, now: Millis, limit: u32) -> Result<Vec<OutboxMail>> {
        let text = format!(
            "{} WHERE sent_at IS NULL AND next_attempt_at <= $1 ORDER BY next_attempt_at, id LIMIT $2",
            sql::OUTBOX_SELECT
        );
        all(&self.pool, sqlx::query(&text).bind(now).bind(i64::from(limit)), sql::outbox).await
    }

    async fn claim_mail(&self, now: Millis, limit: u32, lease_until: Millis) -> Result<Vec<OutboxMail>> {
        // SKIP LOCKED: two nodes' mailers claiming at once take different rows
        // instead of waiting for each other. Returned in the order they fell due.
        let text = format!(
            "WITH due AS (
                 SELECT id, next_attempt_at AS was_due FROM outbox WHERE sent_at IS NULL AND next_attempt_at <= $1
                 ORDER BY next_attempt_at, id LIMIT $2 FOR UPDATE SKIP LOCKED),
             claimed AS (
                 UPDATE outbox o SET next_attempt_at = $3 FROM due WHERE o.id = due.id
                 RETURNING o.id, o.kind, o.to_addr, o.subject, o.body, o.created_at, o.attempts, o.sent_at,
                           o.last_error, due.was_due)
             SELECT {} FROM claimed ORDER BY was_due, id",
            sql::OUTBOX_SELECT.trim_start_matches("SELECT ").trim_end_matches(" FROM outbox")
        );
        let q = sqlx::query(&text).bind(now).bind(i64::from(limit)).bind(lease_until);
        all(&self.pool, q, sql::outbox).await
    }

    async fn mail_sent(&self, id: i64, now: Millis) -> Result<()> {
        let q = sqlx::query("UPDATE outbox SET sent_at = $2, attempts = attempts + 1, last_error = NULL WHERE id = $1")
            .bind(id)
            .bind(now);
        exec(&self.pool, q).await.map(|_| ())
    }

    async fn mail_failed(&self, id: i64, error: &str, retry_at: Millis) -> Result<()> {
        let q = sqlx::query(
            "UPDATE outbox SET attempts = attempts + 1, last_error = $2, next_attempt_at = $3 WHERE id = $1 AND sent_at IS NULL",
        )
        .bind(id)
        .bind(error)
        .bind(retry_at);
        exec(&self.pool, q).await.map(|_| ())
    }

    async fn mail(&self, id: i64) -> Result<Option<OutboxMail>> {
        let text = format!("{} WHERE id = $1", sql::OUTBOX_SELECT);
        opt(&self.pool, sqlx::query(&text).bind(id), sql::outbox).await
    }

    async fn next_mail_due(&self) -> Result<Option<Millis>> {
        let q = sqlx::query("SELECT min(next_attempt_at) FROM outbox WHERE sent_at IS NULL");
        Ok(q.fetch_one(&self.pool).await.map_err(db)?.opt_int(0)?)
    }

    async fn transcripts_to(&self, to: &str, since: Millis) -> Result<u64> {
        let text = pg(sql::TRANSCRIPTS_TO);
        Ok(int(&self.pool, sqlx::query(&text).bind(to).bind(since)).await? as u64)
    }

    async fn block(&self, new: NewBlock) -> Result<BlockRecord> {
        let mut tx = self.begin().await?;
        let rec = load_session(&mut tx, new.session).await?;
        let keys = sqlx::query("SELECT browser_key, net_key FROM sessions WHERE id = $1")
            .bind(new.session.0)
            .fetch_one(&mut *tx)
            .await
            .map_err(db)?;
        if keys.opt_text(0)?.is_none() && keys.opt_text(1)?.is_none() {
            return Err(crate::nothing_to_block().into());
        }
        let id = int(
            &mut *tx,
            sqlx::query(
                "INSERT INTO blocks (cooperative_id, library_id, session_id, browser_key, net_key, reason, created_by, created_at, expires_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING id",
            )
            .bind(rec.ctx.placement.cooperative.0)
            .bind(rec.ctx.placement.library.0)
            .bind(new.session.0)
            .bind(keys.opt_text(0)?)
            .bind(keys.opt_text(1)?)
            .bind(&new.reason)
            .bind(new.by.id.0)
            .bind(new.now)
            .bind(new.expires_at),
        )
        .await?;
        if let Some(q) = rec.ctx.question {
            let change = Change::Blocked { block: id, reason: new.reason.clone(), until: new.expires_at };
            insert_timeline(&mut tx, q, new.now, Some(&new.by), &change).await?;
        }
        let block = block_where(&mut tx, id).await?;
        self.commit(tx, Vec::new()).await?;
        Ok(block)
    }

    async fn lift_block(&self, id: i64, by: Staff, now: Millis) -> Result<BlockRecord> {
        let mut tx = self.begin().await?;
        let n = exec(
            &mut *tx,
            sqlx::query("UPDATE blocks SET lifted_at = $2, lifted_by = $3 WHERE id = $1 AND lifted_at IS NULL")
                .bind(id)
                .bind(now)
                .bind(by.id.0),
        )
        .await?;
        let block = block_where(&mut tx, id).await?;
        if let (1, Some(q)) = (n, block.question) {
            insert_timeline(&mut tx, q, now, Some(&by), &Change::Unblocked { block: id }).await?;
        }
        self.commit(tx, Vec::new()).await?;
        Ok(block)
    }

    async fn block_by_id(&self, id: i64) -> Result<Option<BlockRecord>> {
        let text = format!("{} WHERE b.id = $1", sql::BLOCK_SELECT);
        opt(&self.pool, sqlx::query(&text).bind(id), sql::block).await
    }

    async fn blocks(&self, scope: crate::ScopeLevel, limit: u32) -> Result<Vec<BlockRecord>> {
        let (cond, id) = sql::block_scope(scope);
        let text = pg(&format!("{} WHERE {cond} ORDER BY b.id DESC LIMIT ?2", sql::BLOCK_SELECT));
        all(&self.pool, sqlx::query(&text).bind(id).bind(i64::from(limit)), sql::block).await
    }

    async fn active_block(&self, coop: CooperativeId, keys: PatronKeys, now: Millis) -> Result<Option<BlockRecord>> {
        let text = format!("{} {}", sql::BLOCK_SELECT, pg(sql::ACTIVE_BLOCK));
        let q = sqlx::query(&text).bind(coop.0).bind(keys.browser).bind(keys.net).bind(now);
        opt(&self.pool, q, sql::block).await
    }

    async fn blocked_may_ask(&self, library: LibraryId) -> Result<bool> {
        let q = sqlx::query("SELECT blocked_may_ask FROM library_settings WHERE library_id = $1").bind(library.0);
        Ok(opt(&self.pool, q, |r| r.flag(0)).await?.unwrap_or(true))
    }

    async fn set_blocked_may_ask(&self, library: LibraryId, may: bool) -> Result<()> {
        let q = sqlx::query(
            "INSERT INTO library_settings (library_id, blocked_may_ask) VALUES ($1, $2)
             ON CONFLICT (library_id) DO UPDATE SET blocked_may_ask = excluded.blocked_may_ask",
        )
        .bind(library.0)
        .bind(may);
        exec(&self.pool, q).await.map(|_| ())
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
        return Err(StoreError::Backend(format!("{name:?} is not a database name refdesk creates")));
    }
    let options =
        PgConnectOptions::from_str(server_url).map_err(|e| StoreError::Backend(format!("bad PostgreSQL URL: {e}")))?;
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

    #[test]
    fn placeholders_take_postgresql_spelling() {
        assert_eq!(pg("a = ?1 AND b = ?2"), "a = $1 AND b = $2");
    }
}
