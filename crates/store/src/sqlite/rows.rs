//! Row mapping and the statements shared by several operations. Column
//! order in each `*_SELECT` matches its `*_row` function.

use super::db;
use crate::{
    LibraryRecord, NewMessage, QuestionRecord, QuestionScope, Result, ScopeLevel, SessionRecord, StoreError,
    TimelineEntry,
};
use refdesk_domain::chat::{
    is_live, Audience, Author, Message, MessageKind, SessionContext, SessionState, SystemEvent,
};
use refdesk_domain::event::QueueEntry;
use refdesk_domain::ids::{CooperativeId, InstitutionId, LibraryId, QuestionId, SessionId, StaffId};
use refdesk_domain::org::{Placement, Role, Staff};
use refdesk_domain::question::{Assignment, Change, QuestionState, ResolutionCode, Status};
use refdesk_domain::{DomainError, Millis};
use rusqlite::{params, Connection, OptionalExtension, Params, Row};

/// A stored value this version cannot read: the database was written by
/// something else. Reported, never guessed at.
fn bad(col: usize, what: &str) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(col, rusqlite::types::Type::Text, format!("unknown {what}").into())
}

fn parse<T>(r: &Row, col: usize, what: &str, f: impl Fn(&str) -> Option<T>) -> rusqlite::Result<T> {
    let s: String = r.get(col)?;
    f(&s).ok_or_else(|| bad(col, what))
}

pub const LIBRARY_SELECT: &str = "SELECT l.id, l.institution_id, i.cooperative_id, l.slug, l.name
     FROM libraries l JOIN institutions i ON i.id = l.institution_id";

pub fn library_row(r: &Row) -> rusqlite::Result<LibraryRecord> {
    Ok(LibraryRecord {
        placement: Placement {
            library: LibraryId(r.get(0)?),
            institution: InstitutionId(r.get(1)?),
            cooperative: CooperativeId(r.get(2)?),
        },
        slug: r.get(3)?,
        name: r.get(4)?,
    })
}

pub fn library_where(c: &Connection, cond: &str, p: impl Params) -> Result<Option<LibraryRecord>> {
    c.prepare_cached(&format!("{LIBRARY_SELECT} WHERE {cond}"))
        .map_err(db)?
        .query_row(p, library_row)
        .optional()
        .map_err(db)
}

pub const STAFF_SELECT: &str =
    "SELECT s.id, s.username, s.display_name, s.role, s.library_id, l.institution_id, i.cooperative_id,
     NULL, NULL, s.password_hash, s.disabled
     FROM staff s JOIN libraries l ON l.id = s.library_id JOIN institutions i ON i.id = l.institution_id";

pub fn staff_row(r: &Row) -> rusqlite::Result<Staff> {
    Ok(Staff {
        id: StaffId(r.get(0)?),
        username: r.get(1)?,
        display_name: r.get(2)?,
        role: parse(r, 3, "role", Role::parse)?,
        home: Placement {
            library: LibraryId(r.get(4)?),
            institution: InstitutionId(r.get(5)?),
            cooperative: CooperativeId(r.get(6)?),
        },
    })
}

pub const SESSION_SELECT: &str = "SELECT s.id, s.library_id, l.institution_id, i.cooperative_id, s.librarian_id, q.id,
     s.state, s.patron_name, s.patron_email, s.created_at, s.accepted_at, s.ended_at, q.code IS NOT NULL, s.last_seq
     FROM sessions s JOIN libraries l ON l.id = s.library_id JOIN institutions i ON i.id = l.institution_id
     LEFT JOIN questions q ON q.session_id = s.id";

pub fn session_row(r: &Row) -> rusqlite::Result<SessionRecord> {
    Ok(SessionRecord {
        ctx: SessionContext {
            id: SessionId(r.get(0)?),
            placement: Placement {
                library: LibraryId(r.get(1)?),
                institution: InstitutionId(r.get(2)?),
                cooperative: CooperativeId(r.get(3)?),
            },
            librarian: r.get::<_, Option<i64>>(4)?.map(StaffId),
            question: r.get::<_, Option<i64>>(5)?.map(QuestionId),
        },
        state: parse(r, 6, "session state", SessionState::parse)?,
        patron_name: r.get(7)?,
        patron_email: r.get(8)?,
        created_at: r.get(9)?,
        accepted_at: r.get(10)?,
        ended_at: r.get(11)?,
        code_set: r.get(12)?,
        last_seq: r.get::<_, i64>(13)? as u64,
    })
}

pub fn session_where(c: &Connection, cond: &str, p: impl Params) -> Result<Option<SessionRecord>> {
    c.prepare_cached(&format!("{SESSION_SELECT} WHERE {cond}"))
        .map_err(db)?
        .query_row(p, session_row)
        .optional()
        .map_err(db)
}

/// The session, or NotFound.
pub fn load_session(c: &Connection, id: SessionId) -> Result<SessionRecord> {
    session_where(c, "s.id = ?1", params![id.0])?.ok_or(StoreError::Domain(DomainError::NotFound("session")))
}

pub fn queue_row(r: &Row) -> rusqlite::Result<QueueEntry> {
    Ok(QueueEntry {
        session: SessionId(r.get(0)?),
        placement: Placement {
            library: LibraryId(r.get(1)?),
            institution: InstitutionId(r.get(2)?),
            cooperative: CooperativeId(r.get(3)?),
        },
        library_name: r.get(4)?,
        patron_name: r.get::<_, Option<String>>(5)?.unwrap_or_else(|| "Patron".into()),
        question: r.get(6)?,
        since: r.get(7)?,
    })
}

pub const MESSAGE_SELECT: &str =
    "SELECT session_id, seq, kind, audience, author_kind, author_id, author_name, client_id, body, system, at FROM messages";

pub fn message_row(r: &Row) -> rusqlite::Result<Message> {
    let author_kind: String = r.get(4)?;
    let name: String = r.get(6)?;
    let author = match author_kind.as_str() {
        "patron" => Author::Patron { name },
        "staff" => Author::Staff { id: StaffId(r.get(5)?), name },
        "system" => Author::System,
        _ => return Err(bad(4, "author kind")),
    };
    let system: Option<String> = r.get(9)?;
    Ok(Message {
        session: SessionId(r.get(0)?),
        seq: r.get::<_, i64>(1)? as u64,
        kind: parse(r, 2, "message kind", MessageKind::parse)?,
        audience: parse(r, 3, "audience", Audience::parse)?,
        author,
        client_id: r.get(7)?,
        body: r.get(8)?,
        system: match system {
            Some(s) => Some(SystemEvent::parse(&s).ok_or_else(|| bad(9, "system event"))?),
            None => None,
        },
        at: r.get(10)?,
    })
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
    let (kind, author_id, name) = match &m.author {
        Author::Patron { name } => ("patron", None, name.as_str()),
        Author::Staff { id, name } => ("staff", Some(id.0), name.as_str()),
        Author::System => ("system", None, "refdesk"),
    };
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
    let json: String = r.get(3)?;
    Ok(TimelineEntry {
        at: r.get(0)?,
        actor: r.get::<_, Option<i64>>(1)?.map(StaffId),
        actor_name: r.get(2)?,
        change: serde_json::from_str(&json).map_err(|_| bad(3, "timeline change"))?,
    })
}

fn question_state_row(r: &Row, at: usize) -> rusqlite::Result<QuestionState> {
    Ok(QuestionState {
        status: parse(r, at, "status", Status::parse)?,
        code: r.get(at + 1)?,
        assignee: r.get::<_, Option<i64>>(at + 2)?.map(StaffId),
        follow_up: r.get(at + 3)?,
        referred_to: r.get::<_, Option<i64>>(at + 4)?.map(LibraryId),
        exclude_from_stats: r.get(at + 5)?,
    })
}

pub fn question_state(c: &Connection, q: QuestionId) -> Result<QuestionState> {
    c.prepare_cached(
        "SELECT status, code, assignee_id, follow_up, referred_to, exclude_from_stats FROM questions WHERE id = ?1",
    )
    .map_err(db)?
    .query_row([q.0], |r| question_state_row(r, 0))
    .optional()
    .map_err(db)?
    .ok_or(StoreError::Domain(DomainError::NotFound("question")))
}

pub const QUESTION_SELECT: &str = "SELECT q.id, q.session_id, q.library_id, l.name, q.text,
     q.status, q.code, q.assignee_id, q.follow_up, q.referred_to, q.exclude_from_stats,
     s.librarian_id, st.display_name, s.state, q.created_at, s.last_message_at
     FROM questions q JOIN sessions s ON s.id = q.session_id JOIN libraries l ON l.id = q.library_id
     JOIN institutions i ON i.id = l.institution_id LEFT JOIN staff st ON st.id = s.librarian_id";

pub fn question_row(r: &Row) -> rusqlite::Result<QuestionRecord> {
    let state = question_state_row(r, 5)?;
    let session_state = parse(r, 13, "session state", SessionState::parse)?;
    Ok(QuestionRecord {
        id: QuestionId(r.get(0)?),
        session: SessionId(r.get(1)?),
        library: LibraryId(r.get(2)?),
        library_name: r.get(3)?,
        text: r.get(4)?,
        live: is_live(session_state, state.code.is_some()),
        state,
        librarian: r.get::<_, Option<i64>>(11)?.map(StaffId),
        librarian_name: r.get(12)?,
        session_state,
        created_at: r.get(14)?,
        last_message_at: r.get(15)?,
    })
}

pub fn scope_filter(scope: &QuestionScope) -> (&'static str, i64) {
    match scope.covers {
        ScopeLevel::Library(l) => ("q.library_id", l.0),
        ScopeLevel::Institution(i) => ("l.institution_id", i.0),
        ScopeLevel::Cooperative(c) => ("i.cooperative_id", c.0),
    }
}

pub fn codes_of(c: &Connection, coop: CooperativeId) -> Result<Vec<ResolutionCode>> {
    let mut st = c
        .prepare_cached(
            "SELECT key, label, status, assign, follow_up, referred, exclude_from_stats FROM resolution_codes
             WHERE cooperative_id = ?1 ORDER BY position",
        )
        .map_err(db)?;
    let rows = st
        .query_map([coop.0], |r| {
            Ok(ResolutionCode {
                key: r.get(0)?,
                label: r.get(1)?,
                status: parse(r, 2, "status", Status::parse)?,
                assign: parse(r, 3, "assignment", Assignment::parse)?,
                follow_up: r.get(4)?,
                referred: r.get(5)?,
                exclude_from_stats: r.get(6)?,
            })
        })
        .map_err(db)?;
    rows.collect::<rusqlite::Result<Vec<_>>>().map_err(db)
}
