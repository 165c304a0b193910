//! The statements several operations share, written once over [`Db`]: load
//! a session, bump its version, store a message, a timeline entry, an
//! e-mail, a question's new state.

use super::select::{self as sel, MESSAGE_SELECT, QUESTION_SELECT, SESSION_SELECT};
use super::{args, int, Arg, ClientIdSeen, Db};
use crate::{NewMail, NewMessage, QuestionRecord, Result, SessionRecord, StoreError};
use refdesk_domain::chat::{Audience, Author, Member, Message, MessageKind, SystemEvent};
use refdesk_domain::ids::{CooperativeId, QuestionId, SessionId, StaffId};
use refdesk_domain::org::Staff;
use refdesk_domain::question::{Change, QuestionState, ResolutionCode};
use refdesk_domain::{DomainError, Millis};

/// A missing row, as the store reports it.
pub(crate) fn not_found(what: &'static str) -> StoreError {
    StoreError::Domain(DomainError::NotFound(what))
}

/// The conference members of a session, in the order they came.
async fn members_of<D: Db>(db: &mut D, id: SessionId) -> Result<Vec<Member>> {
    db.rows(sel::MEMBERS_SELECT, args![id.0], sel::member).await
}

/// Sessions whose members [`sessions_where`] reads in one statement.
const MEMBERS_AT_ONCE: usize = 100;

/// Sessions matching `cond`, with their members: read [`MEMBERS_AT_ONCE`]
/// sessions' at a time (the chat monitor lists every live chat in scope:
/// one statement per chat was a round trip per chat on PostgreSQL).
pub(crate) async fn sessions_where<D: Db>(db: &mut D, cond: &str, args: &[Arg<'_>]) -> Result<Vec<SessionRecord>> {
    let mut out = db.rows(&format!("{SESSION_SELECT} WHERE {cond}"), args, sel::session).await?;
    // One statement text whatever the count: ids past the last are 0, no session's.
    let marks: Vec<String> = (1..=MEMBERS_AT_ONCE).map(|i| format!("?{i}")).collect();
    let sql = format!(
        "SELECT m.session_id AS session_id, m.staff_id AS staff_id, st.display_name AS display_name, m.mode AS mode
         FROM session_members m JOIN staff st ON st.id = m.staff_id
         WHERE m.session_id IN ({}) ORDER BY m.session_id, m.joined_at, m.staff_id",
        marks.join(", ")
    );
    let mut members: std::collections::HashMap<i64, Vec<Member>> = std::collections::HashMap::new();
    for chunk in out.chunks(MEMBERS_AT_ONCE) {
        let mut ids: Vec<Arg<'_>> = chunk.iter().map(|rec| Arg::Int(rec.ctx.id.0)).collect();
        ids.resize_with(MEMBERS_AT_ONCE, || Arg::Int(0));
        for (session, member) in db.rows(&sql, &ids, |r| Ok((r.int("session_id")?, sel::member(r)?))).await? {
            members.entry(session).or_default().push(member);
        }
    }
    for rec in &mut out {
        rec.ctx.members = members.remove(&rec.ctx.id.0).unwrap_or_default();
    }
    Ok(out)
}

/// The first session matching `cond`, with its members.
pub(crate) async fn session_where<D: Db>(db: &mut D, cond: &str, args: &[Arg<'_>]) -> Result<Option<SessionRecord>> {
    match db.row(&format!("{SESSION_SELECT} WHERE {cond}"), args, sel::session).await? {
        Some(mut rec) => {
            rec.ctx.members = members_of(db, rec.ctx.id).await?;
            Ok(Some(rec))
        }
        None => Ok(None),
    }
}

/// The session, or NotFound.
pub(crate) async fn load_session<D: Db>(db: &mut D, id: SessionId) -> Result<SessionRecord> {
    session_where(db, "s.id = ?1", args![id.0]).await?.ok_or(not_found("session"))
}

/// Takes the session for this write and bumps its version (see
/// `SessionContext::version`): every write on a session but an append does
/// this first, so that its events carry a version newer than any read
/// before it (a roll-up read by the background round, say, delivered after
/// an accept), and so that on PostgreSQL the row stays locked — writes on
/// one session run one at a time across every node (sequence numbers, I4,
/// I6) — and every node's copy for appends is stale.
pub(crate) async fn lock_session<D: Db>(db: &mut D, id: SessionId) -> Result<SessionRecord> {
    db.forget_session(id);
    if db.exec("UPDATE sessions SET version = version + 1 WHERE id = ?1", args![id.0]).await? == 0 {
        return Err(not_found("session"));
    }
    load_session(db, id).await
}

/// The patron's question as they asked it.
pub(crate) async fn question_text<D: Db>(db: &mut D, id: SessionId) -> Result<String> {
    db.row("SELECT question_text AS question_text FROM sessions WHERE id = ?1", args![id.0], |r| {
        r.text("question_text")
    })
    .await?
    .ok_or(not_found("session"))
}

/// The message a sender already stored under a client id, if any (I4).
/// Where the backend's copy knows there is none (SQLite's writer, for a
/// kept session: nearly every line), nothing is read.
pub(crate) async fn message_by_client_id<D: Db>(
    db: &mut D,
    id: SessionId,
    sender: &str,
    client_id: &str,
) -> Result<Option<Message>> {
    if db.client_id_seen(id, sender, client_id) == ClientIdSeen::Never {
        return Ok(None);
    }
    let sql = format!("{MESSAGE_SELECT} WHERE session_id = ?1 AND sender = ?2 AND client_id = ?3");
    db.row(&sql, args![id.0, sender, client_id], sel::message).await
}

/// Takes the session's next sequence number and stores the message under it.
///
/// The next number is the last stored one's plus one: the caller holds the
/// session (SQLite's one writer; on PostgreSQL the row's lock, taken by
/// [`lock_session`] or the append's own lock), so no other line can take it
/// meanwhile. The session's row itself is not written (issue 17: it cost a
/// page of the log per line).
pub(crate) async fn insert_message<D: Db>(
    db: &mut D,
    rec: &SessionRecord,
    m: NewMessage,
    now: Millis,
) -> Result<Message> {
    let id = rec.ctx.id;
    let last = db.row(sel::LAST_LINE, args![id.0], |r| Ok((r.int("seq")?, r.int("patron_seq")?))).await?;
    let (seq, patron_seq) = next_numbers(last.unwrap_or((0, 0)), m.audience);
    let (kind, author_id, name) = sel::author_columns(&m.author);
    let sender = m.author.sender_key();
    db.exec(
        "INSERT INTO messages (session_id, seq, patron_seq, kind, audience, author_kind, author_id, author_name, sender, client_id, body, system, at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
        args![
            id.0,
            seq,
            patron_seq,
            m.kind.as_str(),
            m.audience.as_str(),
            kind,
            author_id,
            name,
            &sender,
            &m.client_id,
            &m.body,
            m.system.map(SystemEvent::as_str),
            now
        ],
    )
    .await?;
    if let Some(client_id) = &m.client_id {
        db.note_client_id(id, &sender, client_id);
    }
    Ok(Message {
        session: id,
        seq: seq as u64,
        patron_seq: patron_seq as u64,
        kind: m.kind,
        audience: m.audience,
        author: m.author,
        body: m.body,
        client_id: m.client_id,
        at: now,
        system: m.system,
    })
}

/// The numbers of the line after one numbered `last` (`(0, 0)`: none), for
/// `audience`: the next of the session's, and the patron's, which only the
/// lines they see move on (`Message::patron_seq`).
pub(crate) fn next_numbers(last: (i64, i64), audience: Audience) -> (i64, i64) {
    let (seq, patron_seq) = last;
    (seq + 1, patron_seq + i64::from(audience == Audience::Everyone))
}

/// The patron's question as the first line of their session.
pub(crate) async fn insert_first_line<D: Db>(
    db: &mut D,
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
    insert_message(db, rec, first, now).await
}

/// Every message of a session, in order.
pub(crate) async fn all_messages<D: Db>(db: &mut D, id: SessionId) -> Result<Vec<Message>> {
    db.rows(&format!("{MESSAGE_SELECT} WHERE session_id = ?1 ORDER BY seq"), args![id.0], sel::message).await
}

/// Records a change in a question's timeline (R7).
pub(crate) async fn insert_timeline<D: Db>(
    db: &mut D,
    q: QuestionId,
    now: Millis,
    actor: Option<&Staff>,
    change: &Change,
) -> Result<()> {
    let json = serde_json::to_string(change).map_err(|e| StoreError::failed("encoding a timeline entry", e))?;
    db.exec(
        "INSERT INTO timeline (question_id, at, actor_id, actor_name, change) VALUES (?1, ?2, ?3, ?4, ?5)",
        args![q.0, now, actor.map(|s| s.id.0), actor.map_or("refdesk", |s| s.display_name.as_str()), &json],
    )
    .await?;
    // Where an answer went, for erasing by address (it may be an address
    // the patron gave in the chat, not the chat's own).
    if let Change::Answer { emailed_to: Some(to), .. } = change {
        db.exec("INSERT INTO answer_addresses (question_id, address) VALUES (?1, ?2)", args![q.0, to]).await?;
        // Who answered it by e-mail, for the list, its filter and the
        // reports (a question asked by the form has no chatting librarian).
        if let Some(by) = actor {
            db.exec("UPDATE questions SET emailed_by = ?2 WHERE id = ?1", args![q.0, by.id.0]).await?;
        }
    }
    Ok(())
}

/// A new question for a session, with its "created" timeline entry.
pub(crate) async fn insert_question<D: Db>(
    db: &mut D,
    rec: &SessionRecord,
    text: &str,
    state: &QuestionState,
    actor: Option<&Staff>,
    now: Millis,
) -> Result<QuestionId> {
    let id = int(
        db,
        "INSERT INTO questions (session_id, library_id, text, status, follow_up, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6) RETURNING id AS question_id",
        args![rec.ctx.id.0, rec.ctx.placement.library.0, text, state.status.as_str(), state.follow_up, now],
        "question_id",
    )
    .await?;
    let q = QuestionId(id);
    insert_timeline(db, q, now, actor, &Change::Created { status: state.status }).await?;
    Ok(q)
}

/// A question's workflow state, or NotFound.
pub(crate) async fn question_state<D: Db>(db: &mut D, q: QuestionId) -> Result<QuestionState> {
    db.row(sel::QUESTION_STATE_SELECT, args![q.0], sel::question_state).await?.ok_or(not_found("question"))
}

/// One question, or NotFound.
pub(crate) async fn question_where<D: Db>(db: &mut D, id: QuestionId) -> Result<QuestionRecord> {
    db.row(&format!("{QUESTION_SELECT} WHERE q.id = ?1"), args![id.0], sel::question)
        .await?
        .ok_or(not_found("question"))
}

/// Writes a question's new state and, for every difference from `before`,
/// a timeline entry (R7: nothing changes silently).
pub(crate) async fn write_question_state<D: Db>(
    db: &mut D,
    id: QuestionId,
    before: &QuestionState,
    after: &QuestionState,
    by: &Staff,
    now: Millis,
) -> Result<()> {
    db.exec(
        "UPDATE questions SET status = ?2, code = ?3, assignee_id = ?4, follow_up = ?5, referred_to = ?6,
         exclude_from_stats = ?7, read_scale = ?8 WHERE id = ?1",
        args![
            id.0,
            after.status.as_str(),
            &after.code,
            after.assignee.map(|s| s.0),
            after.follow_up,
            after.referred_to.map(|l| l.0),
            after.exclude_from_stats,
            after.read_scale.map(i64::from)
        ],
    )
    .await?;
    if before.exclude_from_stats != after.exclude_from_stats {
        db.exec(
            "UPDATE sessions SET practice = ?2 WHERE id = (SELECT session_id FROM questions WHERE id = ?1)",
            args![id.0, after.exclude_from_stats],
        )
        .await?;
    }
    for change in refdesk_domain::question::changes(before, after) {
        insert_timeline(db, id, now, Some(by), &change).await?;
    }
    Ok(())
}

/// Puts an e-mail in the outbox; its id. `sender`: the staff member who
/// sent it from the question list (their answers of the day are counted).
pub(crate) async fn insert_mail<D: Db>(
    db: &mut D,
    m: &NewMail,
    (question, session): (Option<QuestionId>, Option<SessionId>),
    sender: Option<StaffId>,
    now: Millis,
) -> Result<i64> {
    int(
        db,
        "INSERT INTO outbox (kind, question_id, session_id, to_addr, subject, body, created_at, next_attempt_at, sender_id,
           to_key)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7, ?8, ?9) RETURNING id AS mail_id",
        args![
            m.kind.as_str(),
            question.map(|q| q.0),
            session.map(|s| s.0),
            &m.to,
            &m.subject,
            &m.body,
            now,
            sender.map(|s| s.0),
            &refdesk_domain::input::mailbox_key(&m.to)
        ],
        "mail_id",
    )
    .await
}

/// A cooperative's resolution codes, in picker order.
pub(crate) async fn codes_of<D: Db>(db: &mut D, coop: CooperativeId) -> Result<Vec<ResolutionCode>> {
    db.rows(sel::CODES_SELECT, args![coop.0], sel::code).await
}

/// One block, or NotFound.
pub(crate) async fn block_where<D: Db>(db: &mut D, id: i64) -> Result<crate::BlockRecord> {
    db.row(&format!("{} WHERE b.id = ?1", sel::BLOCK_SELECT), args![id], sel::block).await?.ok_or(not_found("block"))
}
