//! Row mapping and the statements shared by several operations. Column
//! order in each `*_SELECT` matches its `*_row` function.

use super::db;
use crate::sql::{self, Cols};
use crate::{LibraryRecord, NewMessage, QuestionRecord, Result, SessionRecord, StoreError, TimelineEntry};
use refdesk_domain::chat::{Author, Member, Message, MessageKind, SystemEvent};
use refdesk_domain::event::QueueEntry;
use refdesk_domain::ids::{CooperativeId, QuestionId, SessionId};
use refdesk_domain::org::Staff;
use refdesk_domain::question::{Change, QuestionState, ResolutionCode};
use refdesk_domain::{DomainError, Millis};
use rusqlite::{params, Connection, OptionalExtension, Params, Row};

fn col<T: rusqlite::types::FromSql>(r: &Row, i: usize) -> Result<T> {
    r.get(i).map_err(db)
}

impl Cols for Row<'_> {
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

/// A shared decoder's result as rusqlite's row callbacks want it.
fn lift<T>(r: Result<T>) -> rusqlite::Result<T> {
    r.map_err(|e| rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Null, Box::new(e)))
}

/// Decodes rows with a shared decoder.
pub fn decode<T>(f: impl Fn(&Row) -> Result<T>) -> impl Fn(&Row) -> rusqlite::Result<T> {
    move |r| lift(f(r))
}

pub(crate) use crate::sql::LIBRARY_SELECT;

pub fn library_row(r: &Row) -> rusqlite::Result<LibraryRecord> {
    lift(sql::library(r))
}

pub fn library_where(c: &Connection, cond: &str, p: impl Params) -> Result<Option<LibraryRecord>> {
    c.prepare_cached(&format!("{LIBRARY_SELECT} WHERE {cond}"))
        .map_err(db)?
        .query_row(p, library_row)
        .optional()
        .map_err(db)
}

pub(crate) use crate::sql::STAFF_SELECT;

pub(crate) use crate::sql::IM_SELECT;

pub fn im_row(r: &Row) -> rusqlite::Result<refdesk_domain::event::ImMessage> {
    lift(sql::im(r))
}

pub fn staff_row(r: &Row) -> rusqlite::Result<Staff> {
    lift(sql::staff(r))
}

pub(crate) use crate::sql::SESSION_SELECT;

pub fn session_row(r: &Row) -> rusqlite::Result<SessionRecord> {
    lift(sql::session(r))
}

/// The conference members of a session, in the order they came.
pub fn members_of(c: &Connection, id: SessionId) -> Result<Vec<Member>> {
    let mut st = c.prepare_cached(sql::MEMBERS_SELECT).map_err(db)?;
    let rows = st.query_map([id.0], decode(|r| sql::member(r))).map_err(db)?;
    rows.collect::<rusqlite::Result<Vec<_>>>().map_err(db)
}

/// Sessions matching `cond`, with their members.
pub fn sessions_where(c: &Connection, cond: &str, p: impl Params) -> Result<Vec<SessionRecord>> {
    let mut st = c.prepare_cached(&format!("{SESSION_SELECT} WHERE {cond}")).map_err(db)?;
    let rows = st.query_map(p, session_row).map_err(db)?;
    let mut out = rows.collect::<rusqlite::Result<Vec<_>>>().map_err(db)?;
    for rec in &mut out {
        rec.ctx.members = members_of(c, rec.ctx.id)?;
    }
    Ok(out)
}

pub fn session_where(c: &Connection, cond: &str, p: impl Params) -> Result<Option<SessionRecord>> {
    let rec =
        c.prepare_cached(&format!("{SESSION_SELECT} WHERE {cond}")).map_err(db)?.query_row(p, session_row).optional();
    match rec.map_err(db)? {
        Some(mut rec) => {
            rec.ctx.members = members_of(c, rec.ctx.id)?;
            Ok(Some(rec))
        }
        None => Ok(None),
    }
}

/// Bumps a session's version (see `SessionContext::version`): every write
/// on a session but an append does this first, so that its events carry a
/// version newer than any read before it (a roll-up read by the background
/// round, say, delivered after an accept).
pub fn bump_version(c: &Connection, id: SessionId) -> Result<()> {
    let n = c
        .prepare_cached("UPDATE sessions SET version = version + 1 WHERE id = ?1")
        .map_err(db)?
        .execute([id.0])
        .map_err(db)?;
    if n == 0 {
        return Err(DomainError::NotFound("session").into());
    }
    Ok(())
}

/// The session, or NotFound.
pub fn load_session(c: &Connection, id: SessionId) -> Result<SessionRecord> {
    session_where(c, "s.id = ?1", params![id.0])?.ok_or(StoreError::Domain(DomainError::NotFound("session")))
}

pub fn queue_row(r: &Row) -> rusqlite::Result<QueueEntry> {
    lift(sql::queue_entry(r))
}

pub(crate) use crate::sql::QUEUE_SELECT;

pub(crate) use crate::sql::MESSAGE_SELECT;

pub fn message_row(r: &Row) -> rusqlite::Result<Message> {
    lift(sql::message(r))
}

pub fn message_by_client_id(c: &Connection, id: SessionId, sender: &str, client_id: &str) -> Result<Option<Message>> {
    c.prepare_cached(&format!("{MESSAGE_SELECT} WHERE session_id = ?1 AND sender = ?2 AND client_id = ?3"))
        .map_err(db)?
        .query_row(params![id.0, sender, client_id], message_row)
        .optional()
        .map_err(db)
}

/// Takes the session's next sequence number and stores the message under it.
pub fn insert_message(c: &Connection, rec: &SessionRecord, m: NewMessage, now: Millis) -> Result<Message> {
    let seq: i64 = c
        .prepare_cached(
            "UPDATE sessions SET last_seq = last_seq + 1, last_message_at = ?2 WHERE id = ?1 RETURNING last_seq",
        )
        .map_err(db)?
        .query_row(params![rec.ctx.id.0, now], |r| r.get(0))
        .map_err(db)?;
    let (kind, author_id, name) = sql::author_columns(&m.author);
    c.prepare_cached(
        "INSERT INTO messages (session_id, seq, kind, audience, author_kind, author_id, author_name, sender, client_id, body, system, at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
    )
    .map_err(db)?
    .execute(params![
        rec.ctx.id.0,
        seq,
        m.kind.as_str(),
        m.audience.as_str(),
        kind,
        author_id,
        name,
        m.author.sender_key(),
        m.client_id,
        m.body,
        m.system.map(SystemEvent::as_str),
        now
    ])
    .map_err(db)?;
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

pub fn insert_timeline(
    c: &Connection,
    q: QuestionId,
    now: Millis,
    actor: Option<&Staff>,
    change: &Change,
) -> Result<()> {
    let json = serde_json::to_string(change).map_err(|e| StoreError::Backend(e.to_string()))?;
    c.prepare_cached(
        "INSERT INTO timeline (question_id, at, actor_id, actor_name, change) VALUES (?1, ?2, ?3, ?4, ?5)",
    )
    .map_err(db)?
    .execute(params![q.0, now, actor.map(|s| s.id.0), actor.map_or("refdesk", |s| s.display_name.as_str()), json])
    .map_err(db)?;
    Ok(())
}

pub fn timeline_row(r: &Row) -> rusqlite::Result<TimelineEntry> {
    lift(sql::timeline(r))
}

pub fn question_state(c: &Connection, q: QuestionId) -> Result<QuestionState> {
    c.prepare_cached(sql::QUESTION_STATE_SELECT)
        .map_err(db)?
        .query_row([q.0], decode(|r| sql::question_state(r, 0)))
        .optional()
        .map_err(db)?
        .ok_or(StoreError::Domain(DomainError::NotFound("question")))
}

pub(crate) use crate::sql::QUESTION_SELECT;

pub fn question_row(r: &Row) -> rusqlite::Result<QuestionRecord> {
    lift(sql::question(r))
}

pub(crate) use crate::sql::OUTBOX_SELECT;

pub fn outbox_row(r: &Row) -> rusqlite::Result<crate::OutboxMail> {
    lift(sql::outbox(r))
}

pub fn insert_mail(
    c: &Connection,
    m: &crate::NewMail,
    question: Option<QuestionId>,
    session: Option<SessionId>,
    now: Millis,
) -> Result<i64> {
    c.prepare_cached(
        "INSERT INTO outbox (kind, question_id, session_id, to_addr, subject, body, created_at, next_attempt_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7)",
    )
    .map_err(db)?
    .execute(params![m.kind, question.map(|q| q.0), session.map(|s| s.0), m.to, m.subject, m.body, now])
    .map_err(db)?;
    Ok(c.last_insert_rowid())
}

pub fn codes_of(c: &Connection, coop: CooperativeId) -> Result<Vec<ResolutionCode>> {
    let mut st = c.prepare_cached(sql::CODES_SELECT).map_err(db)?;
    let rows = st.query_map([coop.0], decode(|r| sql::code(r))).map_err(db)?;
    rows.collect::<rusqlite::Result<Vec<_>>>().map_err(db)
}

/// One question, or NotFound.
pub fn question_where(c: &Connection, id: QuestionId) -> Result<QuestionRecord> {
    c.prepare_cached(&format!("{QUESTION_SELECT} WHERE q.id = ?1"))
        .map_err(db)?
        .query_row([id.0], question_row)
        .optional()
        .map_err(db)?
        .ok_or(StoreError::Domain(DomainError::NotFound("question")))
}

/// Every message of a session, in order.
pub fn all_messages(c: &Connection, id: SessionId) -> Result<Vec<Message>> {
    let mut st = c.prepare_cached(&format!("{MESSAGE_SELECT} WHERE session_id = ?1 ORDER BY seq")).map_err(db)?;
    let rows = st.query_map([id.0], message_row).map_err(db)?;
    rows.collect::<rusqlite::Result<Vec<_>>>().map_err(db)
}

/// The SQL and arguments of a question-list query: scope, view, filters,
/// paging. Every value is bound, never spliced into the text.
pub fn question_query_sql(query: &crate::QuestionQuery) -> (String, Vec<rusqlite::types::Value>) {
    use rusqlite::types::Value;
    let (sql, args) = sql::question_query(query);
    let args = args
        .into_iter()
        .map(|a| match a {
            sql::Arg::Int(i) => Value::Integer(i),
            sql::Arg::Text(t) => Value::Text(t),
        })
        .collect();
    (sql, args)
}

pub fn script_row(r: &Row) -> rusqlite::Result<crate::Script> {
    lift(sql::script(r))
}

/// Writes a question's new state and, for every difference from `before`,
/// a timeline entry (R7: nothing changes silently).
pub fn write_question_state(
    c: &Connection,
    id: QuestionId,
    before: &QuestionState,
    after: &QuestionState,
    by: &Staff,
    now: Millis,
) -> Result<()> {
    c.prepare_cached(
        "UPDATE questions SET status = ?2, code = ?3, assignee_id = ?4, follow_up = ?5, referred_to = ?6,
         exclude_from_stats = ?7 WHERE id = ?1",
    )
    .map_err(db)?
    .execute(params![
        id.0,
        after.status.as_str(),
        after.code,
        after.assignee.map(|s| s.0),
        after.follow_up,
        after.referred_to.map(|l| l.0),
        after.exclude_from_stats
    ])
    .map_err(db)?;
    for change in refdesk_domain::question::changes(before, after) {
        insert_timeline(c, id, now, Some(by), &change)?;
    }
    Ok(())
}

/// The patron's question as the first line of their session.
pub fn insert_first_line(c: &Connection, rec: &SessionRecord, question: &str, now: Millis) -> Result<Message> {
    let first = NewMessage {
        author: Author::Patron { name: rec.patron_display() },
        kind: MessageKind::Message,
        audience: MessageKind::Message.audience(),
        body: question.to_owned(),
        client_id: None,
        system: None,
    };
    insert_message(c, rec, first, now)
}

/// One block by id.
pub fn block_where(c: &Connection, id: i64) -> Result<crate::BlockRecord> {
    c.prepare_cached(&format!("{} WHERE b.id = ?1", sql::BLOCK_SELECT))
        .map_err(db)?
        .query_row([id], decode(|r| sql::block(r)))
        .optional()
        .map_err(db)?
        .ok_or(StoreError::Domain(DomainError::NotFound("block")))
}
