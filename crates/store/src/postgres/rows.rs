//! The statements several PostgreSQL operations share, on a connection
//! inside their transaction. SQL comes from [`crate::sql`] where the two
//! backends agree.

use super::{db, pg};
use crate::sql::{self, Cols};
use crate::{NewMail, NewMessage, QuestionRecord, Result, SessionRecord, StoreError};
use refdesk_domain::chat::{Author, Message, MessageKind, SystemEvent};
use refdesk_domain::ids::{CooperativeId, QuestionId, SessionId};
use refdesk_domain::org::Staff;
use refdesk_domain::question::{Change, QuestionState, ResolutionCode};
use refdesk_domain::{DomainError, Millis};
use sqlx::postgres::{PgArguments, PgRow};
use sqlx::query::Query;
use sqlx::{PgConnection, PgExecutor, Postgres, Row};

fn col<'r, T: sqlx::Decode<'r, Postgres> + sqlx::Type<Postgres>>(r: &'r PgRow, i: usize) -> Result<T> {
    r.try_get(i).map_err(db)
}

impl Cols for PgRow {
    fn int(&self, i: usize) -> Result<i64> {
        col(self, i)
    }
    fn opt_int(&self, i: usize) -> Result<Option<i64>> {
        col(self, i)
    }
    fn text(&self, i: usize) -> Result<String> {
        col(self, i)
    }
    fn opt_text(&self, i: usize) -> Result<Option<String>> {
        col(self, i)
    }
    fn flag(&self, i: usize) -> Result<bool> {
        col(self, i)
    }
}

/// A bound statement.
pub type Q<'q> = Query<'q, Postgres, PgArguments>;

/// Every row of `q`, decoded.
pub async fn all<'c, T>(e: impl PgExecutor<'c>, q: Q<'_>, f: impl Fn(&PgRow) -> Result<T>) -> Result<Vec<T>> {
    q.fetch_all(e).await.map_err(db)?.iter().map(f).collect()
}

/// The row of `q`, if any, decoded.
pub async fn opt<'c, T>(e: impl PgExecutor<'c>, q: Q<'_>, f: impl Fn(&PgRow) -> Result<T>) -> Result<Option<T>> {
    q.fetch_optional(e).await.map_err(db)?.map(|r| f(&r)).transpose()
}

/// The single integer `q` returns.
pub async fn int<'c>(e: impl PgExecutor<'c>, q: Q<'_>) -> Result<i64> {
    q.fetch_one(e).await.map_err(db)?.int(0)
}

/// Runs `q`; the number of rows it changed.
pub async fn exec<'c>(e: impl PgExecutor<'c>, q: Q<'_>) -> Result<u64> {
    Ok(q.execute(e).await.map_err(db)?.rows_affected())
}

/// Locks a session's row for the rest of the transaction and bumps its
/// version: every write on a session but an append takes this first, so
/// writes on one session run one at a time across every node (sequence
/// numbers, I4, I6), and every node's cached copy for appends is stale.
pub async fn lock_session(c: &mut PgConnection, id: SessionId) -> Result<()> {
    let found = sqlx::query("UPDATE sessions SET version = version + 1 WHERE id = $1 RETURNING id")
        .bind(id.0)
        .fetch_optional(&mut *c)
        .await
        .map_err(db)?;
    found.map(|_| ()).ok_or(StoreError::Domain(DomainError::NotFound("session")))
}

/// Sessions matching `cond` (binding `$1` to `arg`), with their members.
pub async fn sessions_where(c: &mut PgConnection, cond: &str, arg: Option<i64>) -> Result<Vec<SessionRecord>> {
    let text = pg(&format!("{} WHERE {cond}", sql::SESSION_SELECT));
    let mut out = all(&mut *c, sqlx::query(&text).bind(arg), sql::session).await?;
    for rec in &mut out {
        let members = pg(sql::MEMBERS_SELECT);
        rec.ctx.members = all(&mut *c, sqlx::query(&members).bind(rec.ctx.id.0), sql::member).await?;
    }
    Ok(out)
}

/// The session matching `cond` (binding `$1` to `arg`), with its members.
pub async fn session_where(c: &mut PgConnection, cond: &str, arg: impl ToString) -> Result<Option<SessionRecord>> {
    let text = pg(&format!("{} WHERE {cond}", sql::SESSION_SELECT));
    let Some(mut rec) = opt(&mut *c, sqlx::query(&text).bind(arg.to_string()), sql::session).await? else {
        return Ok(None);
    };
    let members = pg(sql::MEMBERS_SELECT);
    rec.ctx.members = all(&mut *c, sqlx::query(&members).bind(rec.ctx.id.0), sql::member).await?;
    Ok(Some(rec))
}

/// The session, or NotFound.
pub async fn load_session(c: &mut PgConnection, id: SessionId) -> Result<SessionRecord> {
    sessions_where(c, "s.id = $1", Some(id.0)).await?.pop().ok_or(StoreError::Domain(DomainError::NotFound("session")))
}

/// The message a sender already stored under `client_id`, if any (I4).
pub async fn message_by_client_id(
    c: &mut PgConnection,
    id: SessionId,
    sender: &str,
    client_id: &str,
) -> Result<Option<Message>> {
    let text = pg(&format!("{} WHERE session_id = ?1 AND sender = ?2 AND client_id = ?3", sql::MESSAGE_SELECT));
    opt(c, sqlx::query(&text).bind(id.0).bind(sender).bind(client_id), sql::message).await
}

/// Takes the session's next sequence number and stores the message under it.
/// The caller holds the session's lock.
pub async fn insert_message(c: &mut PgConnection, rec: &SessionRecord, m: NewMessage, now: Millis) -> Result<Message> {
    let seq = int(
        &mut *c,
        sqlx::query(
            "UPDATE sessions SET last_seq = last_seq + 1, last_message_at = $2 WHERE id = $1 RETURNING last_seq",
        )
        .bind(rec.ctx.id.0)
        .bind(now),
    )
    .await?;
    let (kind, author_id, name) = sql::author_columns(&m.author);
    exec(
        &mut *c,
        sqlx::query(
            "INSERT INTO messages (session_id, seq, kind, audience, author_kind, author_id, author_name, sender, client_id, body, system, at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
        )
        .bind(rec.ctx.id.0)
        .bind(seq)
        .bind(m.kind.as_str())
        .bind(m.audience.as_str())
        .bind(kind)
        .bind(author_id)
        .bind(name)
        .bind(m.author.sender_key())
        .bind(&m.client_id)
        .bind(&m.body)
        .bind(m.system.map(SystemEvent::as_str))
        .bind(now),
    )
    .await?;
    Ok(Message {
        session: rec.ctx.id,
        seq: seq as u64,
        kind: m.kind,
        audience: m.audience,
        author: m.author,
        body: m.body,
        client_id: m.client_id,
        at: now,
        system: m.system,
    })
}

/// The patron's question as the first line of their session.
pub async fn insert_first_line(
    c: &mut PgConnection,
    rec: &SessionRecord,
    question: &str,
    now: Millis,
) -> Result<Message> {
    let first = NewMessage {
        author: Author::Patron { name: rec.patron_display() },
        kind: MessageKind::Message,
        audience: MessageKind::Message.audience(),
        body: question.to_owned(),
        client_id: None,
        system: None,
    };
    insert_message(c, rec, first, now).await
}

/// Adds a timeline entry (R7).
pub async fn insert_timeline(
    c: &mut PgConnection,
    q: QuestionId,
    now: Millis,
    actor: Option<&Staff>,
    change: &Change,
) -> Result<()> {
    let json = serde_json::to_string(change).map_err(|e| StoreError::Backend(e.to_string()))?;
    exec(
        c,
        sqlx::query("INSERT INTO timeline (question_id, at, actor_id, actor_name, change) VALUES ($1, $2, $3, $4, $5)")
            .bind(q.0)
            .bind(now)
            .bind(actor.map(|s| s.id.0))
            .bind(actor.map_or("refdesk", |s| s.display_name.as_str()))
            .bind(json),
    )
    .await?;
    Ok(())
}

/// A question's state, or NotFound.
pub async fn question_state(c: &mut PgConnection, q: QuestionId) -> Result<QuestionState> {
    opt(c, sqlx::query(&pg(sql::QUESTION_STATE_SELECT)).bind(q.0), |r| sql::question_state(r, 0))
        .await?
        .ok_or(StoreError::Domain(DomainError::NotFound("question")))
}

/// One question, or NotFound.
pub async fn question_where<'c>(e: impl PgExecutor<'c>, id: QuestionId) -> Result<QuestionRecord> {
    opt(e, sqlx::query(&format!("{} WHERE q.id = $1", sql::QUESTION_SELECT)).bind(id.0), sql::question)
        .await?
        .ok_or(StoreError::Domain(DomainError::NotFound("question")))
}

/// Writes a question's new state and, for every difference from `before`,
/// a timeline entry (R7: nothing changes silently).
pub async fn write_question_state(
    c: &mut PgConnection,
    id: QuestionId,
    before: &QuestionState,
    after: &QuestionState,
    by: &Staff,
    now: Millis,
) -> Result<()> {
    exec(
        &mut *c,
        sqlx::query(
            "UPDATE questions SET status = $2, code = $3, assignee_id = $4, follow_up = $5, referred_to = $6,
             exclude_from_stats = $7 WHERE id = $1",
        )
        .bind(id.0)
        .bind(after.status.as_str())
        .bind(&after.code)
        .bind(after.assignee.map(|s| s.0))
        .bind(after.follow_up)
        .bind(after.referred_to.map(|l| l.0))
        .bind(after.exclude_from_stats),
    )
    .await?;
    for change in refdesk_domain::question::changes(before, after) {
        insert_timeline(c, id, now, Some(by), &change).await?;
    }
    Ok(())
}

/// Puts an e-mail in the outbox; its id.
pub async fn insert_mail(
    c: &mut PgConnection,
    m: &NewMail,
    question: Option<QuestionId>,
    session: Option<SessionId>,
    now: Millis,
) -> Result<i64> {
    int(
        c,
        sqlx::query(
            "INSERT INTO outbox (kind, question_id, session_id, to_addr, subject, body, created_at, next_attempt_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $7) RETURNING id",
        )
        .bind(m.kind)
        .bind(question.map(|q| q.0))
        .bind(session.map(|s| s.0))
        .bind(&m.to)
        .bind(&m.subject)
        .bind(&m.body)
        .bind(now),
    )
    .await
}

/// A cooperative's resolution codes, in picker order.
pub async fn codes_of<'c>(e: impl PgExecutor<'c>, coop: CooperativeId) -> Result<Vec<ResolutionCode>> {
    all(e, sqlx::query(&pg(sql::CODES_SELECT)).bind(coop.0), sql::code).await
}

/// Every message of a session, in order.
pub async fn all_messages(c: &mut PgConnection, id: SessionId) -> Result<Vec<Message>> {
    let text = format!("{} WHERE session_id = $1 ORDER BY seq", sql::MESSAGE_SELECT);
    all(c, sqlx::query(&text).bind(id.0), sql::message).await
}

/// The patron's question as they first asked it.
pub async fn question_text(c: &mut PgConnection, id: SessionId) -> Result<String> {
    let row =
        sqlx::query("SELECT question_text FROM sessions WHERE id = $1").bind(id.0).fetch_one(c).await.map_err(db)?;
    row.text(0)
}

/// One block by id.
pub async fn block_where(c: &mut PgConnection, id: i64) -> Result<crate::BlockRecord> {
    let text = format!("{} WHERE b.id = $1", sql::BLOCK_SELECT);
    opt(&mut *c, sqlx::query(&text).bind(id), sql::block)
        .await?
        .ok_or(StoreError::Domain(DomainError::NotFound("block")))
}
