//! Row mapping and the statements shared by several operations. Column
//! order in each `*_SELECT` matches its `*_row` function.

use super::db;
use crate::{
    LibraryRecord, NewMessage, QuestionRecord, QuestionScope, Result, ScopeLevel, SessionRecord, StoreError,
    TimelineEntry,
};
use refdesk_domain::chat::{
    is_live, Audience, Author, ConferenceMode, Member, Message, MessageKind, SessionContext, SessionState, SystemEvent,
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
     NULL, NULL, s.password_hash, s.disabled, l.name, s.availability, s.last_seen
     FROM staff s JOIN libraries l ON l.id = s.library_id JOIN institutions i ON i.id = l.institution_id";

pub fn parse_availability(r: &Row, col: usize) -> rusqlite::Result<refdesk_domain::event::Availability> {
    parse(r, col, "availability", refdesk_domain::event::Availability::parse)
}

pub const IM_SELECT: &str = "SELECT m.seq, m.sender, st.display_name, m.recipient, m.body, m.client_id, m.at
     FROM im_messages m JOIN staff st ON st.id = m.sender";

pub fn im_row(r: &Row) -> rusqlite::Result<refdesk_domain::event::ImMessage> {
    Ok(refdesk_domain::event::ImMessage {
        seq: r.get::<_, i64>(0)? as u64,
        from: StaffId(r.get(1)?),
        from_name: r.get(2)?,
        to: StaffId(r.get(3)?),
        body: r.get(4)?,
        client_id: r.get(5)?,
        at: r.get(6)?,
    })
}

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
     s.state, s.patron_name, s.patron_email, s.created_at, s.accepted_at, s.ended_at, q.code IS NOT NULL, s.last_seq,
     s.transcript_to, q.referred_to, rl.institution_id, ri.cooperative_id,
     ql.id, ql.institution_id, qi.cooperative_id, s.queued_at, s.queue_coop, l.name, sst.display_name, s.last_message_at
     FROM sessions s JOIN libraries l ON l.id = s.library_id JOIN institutions i ON i.id = l.institution_id
     JOIN libraries ql ON ql.id = COALESCE(s.queue_library_id, s.library_id) JOIN institutions qi ON qi.id = ql.institution_id
     LEFT JOIN staff sst ON sst.id = s.librarian_id
     LEFT JOIN questions q ON q.session_id = s.id
     LEFT JOIN libraries rl ON rl.id = q.referred_to LEFT JOIN institutions ri ON ri.id = rl.institution_id";

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
            referred: match (r.get::<_, Option<i64>>(15)?, r.get::<_, Option<i64>>(16)?, r.get::<_, Option<i64>>(17)?) {
                (Some(l), Some(i), Some(c)) => Some(Placement {
                    library: LibraryId(l),
                    institution: InstitutionId(i),
                    cooperative: CooperativeId(c),
                }),
                _ => None,
            },
            // Filled in by `session_where` / `with_members`.
            members: Vec::new(),
        },
        state: parse(r, 6, "session state", SessionState::parse)?,
        patron_name: r.get(7)?,
        patron_email: r.get(8)?,
        created_at: r.get(9)?,
        accepted_at: r.get(10)?,
        ended_at: r.get(11)?,
        code_set: r.get(12)?,
        last_seq: r.get::<_, i64>(13)? as u64,
        transcript_to: r.get(14)?,
        queue: Placement {
            library: LibraryId(r.get(18)?),
            institution: InstitutionId(r.get(19)?),
            cooperative: CooperativeId(r.get(20)?),
        },
        queued_at: r.get::<_, Option<i64>>(21)?.unwrap_or_default(),
        queue_coop: r.get(22)?,
        library_name: r.get(23)?,
        librarian_name: r.get(24)?,
        last_message_at: r.get(25)?,
    })
}

/// The conference members of a session, in the order they came.
pub fn members_of(c: &Connection, id: SessionId) -> Result<Vec<Member>> {
    let mut st = c
        .prepare_cached(
            "SELECT m.staff_id, st.display_name, m.mode FROM session_members m JOIN staff st ON st.id = m.staff_id
             WHERE m.session_id = ?1 ORDER BY m.joined_at, m.staff_id",
        )
        .map_err(db)?;
    let rows = st
        .query_map([id.0], |r| {
            Ok(Member {
                staff: StaffId(r.get(0)?),
                name: r.get(1)?,
                mode: parse(r, 2, "conference mode", ConferenceMode::parse)?,
            })
        })
        .map_err(db)?;
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
        queue: Placement {
            library: LibraryId(r.get(8)?),
            institution: InstitutionId(r.get(9)?),
            cooperative: CooperativeId(r.get(10)?),
        },
        coop_now: r.get(11)?,
    })
}

/// The waiting chats, with their queues, oldest first.
pub const QUEUE_SELECT: &str = "SELECT s.id, s.library_id, l.institution_id, i.cooperative_id, l.name, s.patron_name,
     s.question_text, COALESCE(s.queued_at, s.created_at), ql.id, ql.institution_id, qi.cooperative_id, s.queue_coop
     FROM sessions s JOIN libraries l ON l.id = s.library_id JOIN institutions i ON i.id = l.institution_id
     JOIN libraries ql ON ql.id = COALESCE(s.queue_library_id, s.library_id) JOIN institutions qi ON qi.id = ql.institution_id
     WHERE s.state = 'waiting'";

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
     s.librarian_id, st.display_name, s.state, q.created_at, s.last_message_at,
     l.institution_id, i.cooperative_id, rl.institution_id, ri.cooperative_id, rl.name, s.accepted_at,
     s.rating, s.rating_comment
     FROM questions q JOIN sessions s ON s.id = q.session_id JOIN libraries l ON l.id = q.library_id
     JOIN institutions i ON i.id = l.institution_id LEFT JOIN staff st ON st.id = s.librarian_id
     LEFT JOIN libraries rl ON rl.id = q.referred_to LEFT JOIN institutions ri ON ri.id = rl.institution_id";

pub fn question_row(r: &Row) -> rusqlite::Result<QuestionRecord> {
    let state = question_state_row(r, 5)?;
    let state_referred = state.referred_to;
    let session_state = parse(r, 13, "session state", SessionState::parse)?;
    Ok(QuestionRecord {
        id: QuestionId(r.get(0)?),
        session: SessionId(r.get(1)?),
        library: LibraryId(r.get(2)?),
        library_name: r.get(3)?,
        text: r.get(4)?,
        live: is_live(r.get::<_, Option<i64>>(21)?.is_some(), session_state, state.code.is_some()),
        state,
        librarian: r.get::<_, Option<i64>>(11)?.map(StaffId),
        librarian_name: r.get(12)?,
        session_state,
        created_at: r.get(14)?,
        last_message_at: r.get(15)?,
        placement: Placement {
            library: LibraryId(r.get(2)?),
            institution: InstitutionId(r.get(16)?),
            cooperative: CooperativeId(r.get(17)?),
        },
        referred: match (state_referred, r.get::<_, Option<i64>>(18)?, r.get::<_, Option<i64>>(19)?) {
            (Some(library), Some(institution), Some(cooperative)) => Some(Placement {
                library,
                institution: InstitutionId(institution),
                cooperative: CooperativeId(cooperative),
            }),
            _ => None,
        },
        referred_name: r.get(20)?,
        rating: r.get::<_, Option<i64>>(22)?.map(|v| v.clamp(0, 255) as u8),
        rating_comment: r.get(23)?,
    })
}

/// The SQL condition for a role scope: questions of the libraries it covers,
/// questions referred to them, and those the staff member chatted in.
/// Binds `?1` (the scope's id) and `?2` (the staff member).
pub fn scope_condition(scope: &QuestionScope) -> (&'static str, i64) {
    match scope.covers {
        ScopeLevel::Library(l) => ("(q.library_id = ?1 OR q.referred_to = ?1 OR s.librarian_id = ?2)", l.0),
        ScopeLevel::Institution(i) => ("(l.institution_id = ?1 OR rl.institution_id = ?1 OR s.librarian_id = ?2)", i.0),
        ScopeLevel::Cooperative(c) => ("(i.cooperative_id = ?1 OR ri.cooperative_id = ?1 OR s.librarian_id = ?2)", c.0),
    }
}

pub const OUTBOX_SELECT: &str =
    "SELECT id, kind, to_addr, subject, body, created_at, attempts, sent_at, last_error FROM outbox";

pub fn outbox_row(r: &Row) -> rusqlite::Result<crate::OutboxMail> {
    Ok(crate::OutboxMail {
        id: r.get(0)?,
        kind: r.get(1)?,
        to: r.get(2)?,
        subject: r.get(3)?,
        body: r.get(4)?,
        created_at: r.get(5)?,
        attempts: r.get::<_, i64>(6)? as u32,
        sent_at: r.get(7)?,
        last_error: r.get(8)?,
    })
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
    use refdesk_domain::actions::View;
    use rusqlite::types::Value;
    let (scope, scope_id) = scope_condition(&query.scope);
    let mut sql = format!("{QUESTION_SELECT} WHERE {scope}");
    let mut args: Vec<Value> = vec![Value::Integer(scope_id), Value::Integer(query.scope.participant.0)];
    let view = match query.view {
        View::MyNew => "q.assignee_id = ?2 AND q.status = 'new'",
        View::MyActive => "q.assignee_id = ?2 AND q.status IN ('new', 'pending', 'answered')",
        View::New => "q.status = 'new'",
        View::Unassigned => "q.assignee_id IS NULL AND q.status IN ('new', 'pending')",
        View::Active => "q.status IN ('new', 'pending', 'answered')",
        View::Answered => "q.status = 'answered'",
        View::Closed => "q.status = 'closed'",
        View::Pending => "q.status = 'pending'",
        View::Referred => "q.referred_to IS NOT NULL",
        View::FollowUp => "q.follow_up = 1",
        View::All => "1 = 1",
        // R5: live until ended *and* coded.
        View::Live => "s.accepted_at IS NOT NULL AND (s.state <> 'ended' OR q.code IS NULL)",
    };
    sql.push_str(" AND ");
    sql.push_str(view);
    // Each condition's `?` placeholders are numbered as its values are bound.
    let mut bind = |cond: &str, values: Vec<Value>| {
        let mut out = String::new();
        for (i, part) in cond.split('?').enumerate() {
            if i > 0 {
                args.push(values[i - 1].clone());
                out.push_str(&format!("?{}", args.len()));
            }
            out.push_str(part);
        }
        sql.push_str(" AND ");
        sql.push_str(&out);
    };
    if let Some(st) = query.status {
        bind("q.status = ?", vec![Value::Text(st.as_str().into())]);
    }
    if let Some(code) = &query.code {
        bind("q.code = ?", vec![Value::Text(code.clone())]);
    }
    if let Some(from) = query.from {
        bind("q.created_at >= ?", vec![Value::Integer(from)]);
    }
    if let Some(to) = query.to {
        bind("q.created_at < ?", vec![Value::Integer(to)]);
    }
    if let Some(l) = query.librarian {
        bind("s.librarian_id = ?", vec![Value::Integer(l.0)]);
    }
    if let Some(l) = query.library {
        bind("q.library_id = ?", vec![Value::Integer(l.0)]);
    }
    if let Some(text) = &query.text {
        // A substring search over the question and every line of its
        // transcript (staff see notes, so notes are searched too); LIKE's
        // wildcards in the words are escaped.
        let escaped = text.replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_");
        let pattern = Value::Text(format!("%{escaped}%"));
        bind(
            "(q.text LIKE ? ESCAPE '\\' OR EXISTS (SELECT 1 FROM messages m WHERE m.session_id = q.session_id AND m.body LIKE ? ESCAPE '\\'))",
            vec![pattern.clone(), pattern],
        );
    }
    if let Some(before) = query.before {
        bind("q.id < ?", vec![Value::Integer(before.0)]);
    }
    args.push(Value::Integer(query.limit as i64));
    sql.push_str(&format!(" ORDER BY q.id DESC LIMIT ?{}", args.len()));
    (sql, args)
}

pub fn script_row(r: &Row) -> rusqlite::Result<crate::Script> {
    Ok(crate::Script { id: r.get(0)?, scope: r.get(1)?, owner: r.get(2)?, title: r.get(3)?, body: r.get(4)? })
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
