//! The `SELECT`s whose columns the decoders read, the decoders themselves
//! (written once, over [`Cols`], for any backend's row), and the
//! question-list query builder.
//!
//! Statements are written with `?N` placeholders, SQLite's spelling; the
//! PostgreSQL backend turns them into `$N` (no statement here holds a `?`
//! anywhere else). Column order in each `*_SELECT` matches its decoder.

use super::{Arg, Cols};
use crate::{
    LibraryRecord, QuestionRecord, QuestionScope, Result, ScopeLevel, SessionRecord, StoreError, TimelineEntry,
};
use refdesk_domain::chat::{
    is_live, Audience, Author, Message, MessageKind, SessionContext, SessionState, SystemEvent,
};
use refdesk_domain::event::QueueEntry;
use refdesk_domain::ids::{CooperativeId, InstitutionId, LibraryId, QuestionId, SessionId, StaffId};
use refdesk_domain::org::{Placement, Role, Staff};
use refdesk_domain::question::{Assignment, QuestionState, ResolutionCode, Status};

/// A stored value this version cannot read: the database was written by
/// something else. Reported, never guessed at.
fn parse<T>(r: &dyn Cols, col: usize, what: &str, f: impl Fn(&str) -> Option<T>) -> Result<T> {
    let s = r.text(col)?;
    f(&s).ok_or_else(|| StoreError::backend(format!("column {col} holds an unknown {what}: {s:?}")))
}

fn placement(r: &dyn Cols, first: usize) -> Result<Placement> {
    Ok(Placement {
        library: LibraryId(r.int(first)?),
        institution: InstitutionId(r.int(first + 1)?),
        cooperative: CooperativeId(r.int(first + 2)?),
    })
}

/// A placement from three nullable columns: present only if all three are.
fn opt_placement(r: &dyn Cols, first: usize) -> Result<Option<Placement>> {
    Ok(match (r.opt_int(first)?, r.opt_int(first + 1)?, r.opt_int(first + 2)?) {
        (Some(l), Some(i), Some(c)) => {
            Some(Placement { library: LibraryId(l), institution: InstitutionId(i), cooperative: CooperativeId(c) })
        }
        _ => None,
    })
}

pub(crate) const LIBRARY_SELECT: &str = "SELECT l.id, l.institution_id, i.cooperative_id, l.slug, l.name
     FROM libraries l JOIN institutions i ON i.id = l.institution_id";

pub(crate) fn library(r: &dyn Cols) -> Result<LibraryRecord> {
    Ok(LibraryRecord { placement: placement(r, 0)?, slug: r.text(3)?, name: r.text(4)? })
}

/// Every institution with its cooperative, by cooperative then name.
pub(crate) const INSTITUTION_SELECT: &str = "SELECT i.id, i.name, c.id, c.name
     FROM institutions i JOIN cooperatives c ON c.id = i.cooperative_id ORDER BY c.id, i.name, i.id";

pub(crate) fn institution(r: &dyn Cols) -> Result<crate::InstitutionRecord> {
    Ok(crate::InstitutionRecord {
        id: InstitutionId(r.int(0)?),
        name: r.text(1)?,
        cooperative: CooperativeId(r.int(2)?),
        cooperative_name: r.text(3)?,
    })
}

/// Columns 9–13: password hash, disabled, library name, availability, last seen.
pub(crate) const STAFF_SELECT: &str =
    "SELECT s.id, s.username, s.display_name, s.role, s.library_id, l.institution_id, i.cooperative_id,
     NULL, NULL, s.password_hash, s.disabled, l.name, s.availability, s.last_seen
     FROM staff s JOIN libraries l ON l.id = s.library_id JOIN institutions i ON i.id = l.institution_id";

pub(crate) fn staff(r: &dyn Cols) -> Result<Staff> {
    Ok(Staff {
        id: StaffId(r.int(0)?),
        username: r.text(1)?,
        display_name: r.text(2)?,
        role: parse(r, 3, "role", Role::parse)?,
        home: placement(r, 4)?,
    })
}

pub(crate) fn staff_entry(r: &dyn Cols) -> Result<crate::StaffEntry> {
    Ok(crate::StaffEntry {
        staff: staff(r)?,
        library_name: r.text(11)?,
        availability: parse(r, 12, "availability", refdesk_domain::event::Availability::parse)?,
        last_seen: r.int(13)?,
        disabled: r.flag(10)?,
    })
}

pub(crate) fn staff_record(r: &dyn Cols) -> Result<crate::StaffRecord> {
    Ok(crate::StaffRecord { staff: staff(r)?, password_hash: r.text(9)?, disabled: r.flag(10)? })
}

pub(crate) const IM_SELECT: &str = "SELECT m.seq, m.sender, st.display_name, m.recipient, m.body, m.client_id, m.at
     FROM im_messages m JOIN staff st ON st.id = m.sender";

pub(crate) fn im(r: &dyn Cols) -> Result<refdesk_domain::event::ImMessage> {
    Ok(refdesk_domain::event::ImMessage {
        seq: r.int(0)? as u64,
        from: StaffId(r.int(1)?),
        from_name: r.text(2)?,
        to: StaffId(r.int(3)?),
        body: r.text(4)?,
        client_id: r.opt_text(5)?,
        at: r.int(6)?,
    })
}

/// The conversations of `?1`: peer, name, last seq, unread count.
pub(crate) const IM_CONVERSATIONS: &str =
    "SELECT CASE WHEN m.low = ?1 THEN m.high ELSE m.low END AS peer, st.display_name, max(m.seq),
            sum(CASE WHEN m.recipient = ?1 AND m.seq > COALESCE(r.last_read, 0) THEN 1 ELSE 0 END)
     FROM im_messages m
     JOIN staff st ON st.id = CASE WHEN m.low = ?1 THEN m.high ELSE m.low END
     LEFT JOIN im_reads r ON r.staff_id = ?1 AND r.peer_id = CASE WHEN m.low = ?1 THEN m.high ELSE m.low END
     WHERE m.low = ?1 OR m.high = ?1
     GROUP BY peer, st.display_name ORDER BY max(m.at) DESC";

pub(crate) fn im_conversation(r: &dyn Cols) -> Result<crate::ImConversation> {
    Ok(crate::ImConversation {
        peer: StaffId(r.int(0)?),
        peer_name: r.text(1)?,
        last_seq: r.int(2)? as u64,
        unread: r.int(3)? as u64,
    })
}

pub(crate) const SESSION_SELECT: &str = "SELECT s.id, s.library_id, l.institution_id, i.cooperative_id, s.librarian_id, q.id,
     s.state, s.patron_name, s.patron_email, s.created_at, s.accepted_at, s.ended_at, q.code IS NOT NULL, s.last_seq,
     s.transcript_to, q.referred_to, rl.institution_id, ri.cooperative_id,
     ql.id, ql.institution_id, qi.cooperative_id, s.queued_at, s.queue_coop, l.name, sst.display_name, s.last_message_at,
     s.version
     FROM sessions s JOIN libraries l ON l.id = s.library_id JOIN institutions i ON i.id = l.institution_id
     JOIN libraries ql ON ql.id = COALESCE(s.queue_library_id, s.library_id) JOIN institutions qi ON qi.id = ql.institution_id
     LEFT JOIN staff sst ON sst.id = s.librarian_id
     LEFT JOIN questions q ON q.session_id = s.id
     LEFT JOIN libraries rl ON rl.id = q.referred_to LEFT JOIN institutions ri ON ri.id = rl.institution_id";

/// A session without its members (the backend adds them).
pub(crate) fn session(r: &dyn Cols) -> Result<SessionRecord> {
    Ok(SessionRecord {
        ctx: SessionContext {
            id: SessionId(r.int(0)?),
            placement: placement(r, 1)?,
            librarian: r.opt_int(4)?.map(StaffId),
            question: r.opt_int(5)?.map(QuestionId),
            referred: opt_placement(r, 15)?,
            members: Vec::new(),
            version: r.int(26)?.max(0) as u64,
        },
        state: parse(r, 6, "session state", SessionState::parse)?,
        patron_name: r.opt_text(7)?,
        patron_email: r.opt_text(8)?,
        created_at: r.int(9)?,
        accepted_at: r.opt_int(10)?,
        ended_at: r.opt_int(11)?,
        code_set: r.flag(12)?,
        last_seq: r.int(13)? as u64,
        transcript_to: r.opt_text(14)?,
        queue: placement(r, 18)?,
        queued_at: r.opt_int(21)?.unwrap_or_default(),
        queue_coop: r.flag(22)?,
        library_name: r.text(23)?,
        librarian_name: r.opt_text(24)?,
        last_message_at: r.int(25)?,
    })
}

/// A session's conference members, in the order they came.
pub(crate) const MEMBERS_SELECT: &str =
    "SELECT m.staff_id, st.display_name, m.mode FROM session_members m JOIN staff st ON st.id = m.staff_id
     WHERE m.session_id = ?1 ORDER BY m.joined_at, m.staff_id";

pub(crate) fn member(r: &dyn Cols) -> Result<refdesk_domain::chat::Member> {
    Ok(refdesk_domain::chat::Member {
        staff: StaffId(r.int(0)?),
        name: r.text(1)?,
        mode: parse(r, 2, "conference mode", refdesk_domain::chat::ConferenceMode::parse)?,
    })
}

/// The waiting chats, with their queues.
pub(crate) const QUEUE_SELECT: &str = "SELECT s.id, s.library_id, l.institution_id, i.cooperative_id, l.name, s.patron_name,
     s.question_text, COALESCE(s.queued_at, s.created_at), ql.id, ql.institution_id, qi.cooperative_id, s.queue_coop,
     s.version
     FROM sessions s JOIN libraries l ON l.id = s.library_id JOIN institutions i ON i.id = l.institution_id
     JOIN libraries ql ON ql.id = COALESCE(s.queue_library_id, s.library_id) JOIN institutions qi ON qi.id = ql.institution_id
     WHERE s.state = 'waiting'";

pub(crate) fn queue_entry(r: &dyn Cols) -> Result<QueueEntry> {
    Ok(QueueEntry {
        session: SessionId(r.int(0)?),
        placement: placement(r, 1)?,
        library_name: r.text(4)?,
        patron_name: r.opt_text(5)?.unwrap_or_else(|| "Patron".into()),
        question: r.text(6)?,
        since: r.int(7)?,
        queue: placement(r, 8)?,
        coop_now: r.flag(11)?,
        version: r.int(12)?.max(0) as u64,
    })
}

pub(crate) const MESSAGE_SELECT: &str =
    "SELECT session_id, seq, kind, audience, author_kind, author_id, author_name, client_id, body, system, at FROM messages";

pub(crate) fn message(r: &dyn Cols) -> Result<Message> {
    let name = r.text(6)?;
    let author = match r.text(4)?.as_str() {
        "patron" => Author::Patron { name },
        "staff" => Author::Staff { id: StaffId(r.int(5)?), name },
        "system" => Author::System,
        other => return Err(StoreError::backend(format!("unknown author kind {other:?}"))),
    };
    Ok(Message {
        session: SessionId(r.int(0)?),
        seq: r.int(1)? as u64,
        kind: parse(r, 2, "message kind", MessageKind::parse)?,
        audience: parse(r, 3, "audience", Audience::parse)?,
        author,
        client_id: r.opt_text(7)?,
        body: r.text(8)?,
        system: match r.opt_text(9)? {
            Some(_) => Some(parse(r, 9, "system event", SystemEvent::parse)?),
            None => None,
        },
        at: r.int(10)?,
    })
}

/// How a message's author is stored: kind, staff id, name.
pub(crate) fn author_columns(a: &Author) -> (&'static str, Option<i64>, &str) {
    match a {
        Author::Patron { name } => ("patron", None, name.as_str()),
        Author::Staff { id, name } => ("staff", Some(id.0), name.as_str()),
        Author::System => ("system", None, "refdesk"),
    }
}

pub(crate) const TIMELINE_SELECT: &str =
    "SELECT at, actor_id, actor_name, change FROM timeline WHERE question_id = ?1 ORDER BY id";

pub(crate) fn timeline(r: &dyn Cols) -> Result<TimelineEntry> {
    let json = r.text(3)?;
    Ok(TimelineEntry {
        at: r.int(0)?,
        actor: r.opt_int(1)?.map(StaffId),
        actor_name: r.text(2)?,
        change: serde_json::from_str(&json)
            .map_err(|e| StoreError::backend(format!("unreadable timeline entry: {e}")))?,
    })
}

pub(crate) const QUESTION_STATE_SELECT: &str =
    "SELECT status, code, assignee_id, follow_up, referred_to, exclude_from_stats FROM questions WHERE id = ?1";

pub(crate) fn question_state(r: &dyn Cols, at: usize) -> Result<QuestionState> {
    Ok(QuestionState {
        status: parse(r, at, "status", Status::parse)?,
        code: r.opt_text(at + 1)?,
        assignee: r.opt_int(at + 2)?.map(StaffId),
        follow_up: r.flag(at + 3)?,
        referred_to: r.opt_int(at + 4)?.map(LibraryId),
        exclude_from_stats: r.flag(at + 5)?,
    })
}

pub(crate) const QUESTION_SELECT: &str = "SELECT q.id, q.session_id, q.library_id, l.name, q.text,
     q.status, q.code, q.assignee_id, q.follow_up, q.referred_to, q.exclude_from_stats,
     s.librarian_id, st.display_name, s.state, q.created_at, s.last_message_at,
     l.institution_id, i.cooperative_id, rl.institution_id, ri.cooperative_id, rl.name, s.accepted_at,
     s.rating, s.rating_comment, s.patron_name
     FROM questions q JOIN sessions s ON s.id = q.session_id JOIN libraries l ON l.id = q.library_id
     JOIN institutions i ON i.id = l.institution_id LEFT JOIN staff st ON st.id = s.librarian_id
     LEFT JOIN libraries rl ON rl.id = q.referred_to LEFT JOIN institutions ri ON ri.id = rl.institution_id";

pub(crate) fn question(r: &dyn Cols) -> Result<QuestionRecord> {
    let state = question_state(r, 5)?;
    let session_state = parse(r, 13, "session state", SessionState::parse)?;
    let referred = match (state.referred_to, r.opt_int(18)?, r.opt_int(19)?) {
        (Some(library), Some(institution), Some(cooperative)) => Some(Placement {
            library,
            institution: InstitutionId(institution),
            cooperative: CooperativeId(cooperative),
        }),
        _ => None,
    };
    Ok(QuestionRecord {
        id: QuestionId(r.int(0)?),
        session: SessionId(r.int(1)?),
        library: LibraryId(r.int(2)?),
        library_name: r.text(3)?,
        text: r.text(4)?,
        live: is_live(r.opt_int(21)?.is_some(), session_state, state.code.is_some()),
        state,
        librarian: r.opt_int(11)?.map(StaffId),
        librarian_name: r.opt_text(12)?,
        session_state,
        created_at: r.int(14)?,
        last_message_at: r.int(15)?,
        placement: Placement {
            library: LibraryId(r.int(2)?),
            institution: InstitutionId(r.int(16)?),
            cooperative: CooperativeId(r.int(17)?),
        },
        referred,
        referred_name: r.opt_text(20)?,
        rating: r.opt_int(22)?.map(|v| v.clamp(0, 255) as u8),
        rating_comment: r.opt_text(23)?,
        patron_name: r.opt_text(24)?,
    })
}

pub(crate) const OUTBOX_SELECT: &str =
    "SELECT id, kind, to_addr, subject, body, created_at, attempts, sent_at, last_error FROM outbox";

pub(crate) fn outbox(r: &dyn Cols) -> Result<crate::OutboxMail> {
    Ok(crate::OutboxMail {
        id: r.int(0)?,
        kind: parse(r, 1, "mail kind", crate::MailKind::parse)?,
        to: r.text(2)?,
        subject: r.text(3)?,
        body: r.text(4)?,
        created_at: r.int(5)?,
        attempts: r.int(6)?.clamp(0, u32::MAX as i64) as u32,
        sent_at: r.opt_int(7)?,
        last_error: r.opt_text(8)?,
    })
}

pub(crate) const CODES_SELECT: &str =
    "SELECT key, label, status, assign, follow_up, referred, exclude_from_stats FROM resolution_codes
     WHERE cooperative_id = ?1 ORDER BY position";

pub(crate) fn code(r: &dyn Cols) -> Result<ResolutionCode> {
    Ok(ResolutionCode {
        key: r.text(0)?,
        label: r.text(1)?,
        status: parse(r, 2, "status", Status::parse)?,
        assign: parse(r, 3, "assignment", Assignment::parse)?,
        follow_up: r.flag(4)?,
        referred: r.flag(5)?,
        exclude_from_stats: r.flag(6)?,
    })
}

/// A block with its library's placement and the names of who blocked and lifted.
pub(crate) const BLOCK_SELECT: &str =
    "SELECT b.id, b.library_id, l.institution_id, i.cooperative_id, l.name, b.session_id,
            q.id, b.reason, b.created_by, cb.display_name, b.created_at, b.expires_at, b.lifted_at, lb.display_name
     FROM blocks b JOIN libraries l ON l.id = b.library_id JOIN institutions i ON i.id = l.institution_id
     JOIN staff cb ON cb.id = b.created_by LEFT JOIN staff lb ON lb.id = b.lifted_by
     LEFT JOIN questions q ON q.session_id = b.session_id";

pub(crate) fn block(r: &dyn Cols) -> Result<crate::BlockRecord> {
    Ok(crate::BlockRecord {
        id: r.int(0)?,
        placement: placement(r, 1)?,
        library_name: r.text(4)?,
        session: SessionId(r.int(5)?),
        question: r.opt_int(6)?.map(QuestionId),
        reason: r.text(7)?,
        created_by: StaffId(r.int(8)?),
        created_by_name: r.text(9)?,
        created_at: r.int(10)?,
        expires_at: r.int(11)?,
        lifted_at: r.opt_int(12)?,
        lifted_by_name: r.opt_text(13)?,
    })
}

/// Chats waiting in one library's queue (binds the library).
pub(crate) const WAITING_IN_LIBRARY: &str =
    "SELECT COUNT(*) FROM sessions WHERE state = 'waiting' AND COALESCE(queue_library_id, library_id) = ?1";

/// Chats waiting from one network (binds the network key).
pub(crate) const WAITING_FROM_NET: &str = "SELECT COUNT(*) FROM sessions WHERE state = 'waiting' AND net_key = ?1";

/// Chats started since a time that ask a transcript to one address, in any
/// letter case (binds address, since): each mails at most once, and the
/// count includes those not yet ended.
pub(crate) const TRANSCRIPTS_TO: &str =
    "SELECT COUNT(*) FROM sessions WHERE lower(transcript_to) = lower(?1) AND transcript_to IS NOT NULL AND created_at >= ?2";

/// The condition for the blocks a scope covers (binds `?1`: its id).
pub(crate) fn block_scope(scope: ScopeLevel) -> (&'static str, i64) {
    match scope {
        ScopeLevel::Library(l) => ("b.library_id = ?1", l.0),
        ScopeLevel::Institution(i) => ("l.institution_id = ?1", i.0),
        ScopeLevel::Cooperative(c) => ("i.cooperative_id = ?1", c.0),
    }
}

/// Form questions from one network since a time (binds the network key, since).
pub(crate) const FORMS_FROM_NET: &str =
    "SELECT COUNT(*) FROM sessions WHERE by_form AND net_key = ?1 AND created_at >= ?2";

/// Blocks in force on either key: binds cooperative, browser key, network key, now.
pub(crate) const ACTIVE_BLOCK: &str = "WHERE i.cooperative_id = ?1 AND b.lifted_at IS NULL AND b.expires_at > ?4
       AND ((?2 IS NOT NULL AND b.browser_key = ?2) OR (?3 IS NOT NULL AND b.net_key = ?3))
     ORDER BY b.expires_at DESC LIMIT 1";

pub(crate) const SCRIPT_SELECT: &str = "SELECT id, scope, owner_id, title, body FROM scripts";

pub(crate) fn script(r: &dyn Cols) -> Result<crate::Script> {
    Ok(crate::Script { id: r.int(0)?, scope: r.text(1)?, owner: r.int(2)?, title: r.text(3)?, body: r.text(4)? })
}

pub(crate) const POLICY_SELECT: &str = "SELECT p.library_id, p.body, p.updated_at, st.display_name FROM policies p
     LEFT JOIN staff st ON st.id = p.updated_by WHERE p.library_id = ?1";

pub(crate) fn policy(r: &dyn Cols) -> Result<crate::PolicyPage> {
    Ok(crate::PolicyPage {
        library: LibraryId(r.int(0)?),
        body: r.text(1)?,
        updated_at: r.int(2)?,
        updated_by: r.opt_text(3)?,
    })
}

/// The SQL condition for a role scope: questions of the libraries it covers,
/// questions referred to them, and those the staff member chatted in.
/// Binds `?1` (the scope's id) and `?2` (the staff member).
fn scope_condition(scope: &QuestionScope) -> (&'static str, i64) {
    match scope.covers {
        ScopeLevel::Library(l) => ("(q.library_id = ?1 OR q.referred_to = ?1 OR s.librarian_id = ?2)", l.0),
        ScopeLevel::Institution(i) => ("(l.institution_id = ?1 OR rl.institution_id = ?1 OR s.librarian_id = ?2)", i.0),
        ScopeLevel::Cooperative(c) => ("(i.cooperative_id = ?1 OR ri.cooperative_id = ?1 OR s.librarian_id = ?2)", c.0),
    }
}

/// The SQL and arguments of a question-list query: scope, view, filters,
/// paging. Every value is bound, never spliced into the text.
pub(crate) fn question_query(query: &crate::QuestionQuery, dialect: super::Dialect) -> (String, Vec<Arg<'static>>) {
    use refdesk_domain::actions::View;
    let (scope, scope_id) = scope_condition(&query.scope);
    let mut sql = format!("{QUESTION_SELECT} WHERE {scope}");
    let mut args: Vec<Arg<'static>> = vec![Arg::Int(scope_id), Arg::Int(query.scope.participant.0)];
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
        View::FollowUp => "q.follow_up = TRUE",
        View::All => "1 = 1",
        // R5: live until ended *and* coded.
        View::Live => "s.accepted_at IS NOT NULL AND (s.state <> 'ended' OR q.code IS NULL)",
    };
    sql.push_str(" AND ");
    sql.push_str(view);
    // Each condition's `?` placeholders are numbered as its values are bound.
    let mut bind = |cond: &str, values: Vec<Arg<'static>>| {
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
        bind("q.status = ?", vec![Arg::from(st.as_str())]);
    }
    if let Some(code) = &query.code {
        bind("q.code = ?", vec![Arg::owned(code.clone())]);
    }
    if let Some(from) = query.from {
        bind("q.created_at >= ?", vec![Arg::Int(from)]);
    }
    if let Some(to) = query.to {
        bind("q.created_at < ?", vec![Arg::Int(to)]);
    }
    if let Some(l) = query.librarian {
        bind("s.librarian_id = ?", vec![Arg::Int(l.0)]);
    }
    if let Some(l) = query.library {
        bind("q.library_id = ?", vec![Arg::Int(l.0)]);
    }
    if let Some(text) = &query.text {
        // A substring search over the question and every line of its
        // transcript (staff see notes, so notes are searched too); LIKE's
        // wildcards in the words are escaped.
        let escaped = text.replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_");
        let pattern = Arg::owned(format!("%{escaped}%"));
        bind(
            &format!(
                "(q.text {like} ? ESCAPE '\\' OR EXISTS (SELECT 1 FROM messages m WHERE m.session_id = q.session_id AND m.body {like} ? ESCAPE '\\'))",
                like = dialect.like()
            ),
            vec![pattern.clone(), pattern],
        );
    }
    if let Some(before) = query.before {
        bind("q.id < ?", vec![Arg::Int(before.0)]);
    }
    args.push(Arg::Int(query.limit as i64));
    sql.push_str(&format!(" ORDER BY q.id DESC LIMIT ?{}", args.len()));
    (sql, args)
}
