//! The `SELECT`s whose columns the decoders read, the decoders themselves
//! (written once, over [`Cols`], for any backend's row), and the
//! question-list query builder.
//!
//! Statements are written with `?N` placeholders, SQLite's spelling; the
//! PostgreSQL backend turns them into `$N` (no statement here holds a `?`
//! anywhere else).
//!
//! A decoder reads each column by the name its `SELECT` gives it with `AS`
//! (see [`Cols`] for why every column has one), so the order of the columns
//! is free. Ids are named after what they identify (`session_id`,
//! `question_id`), other columns after themselves unless a join makes that
//! ambiguous (`library_name`, `librarian_name`). A placement is three
//! columns: `library_id`, `institution_id`, `cooperative_id` for the row's
//! own, and `queue_…`, `referred_…` for the others a session or question
//! points at (not `queue_library_id`: that is a column of `sessions` with
//! another meaning). Conditions appended to a `SELECT` name their columns
//! with the table's alias (`s.id`), never by an output name.

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
use refdesk_domain::question::{Assignment, Channel, QuestionState, ResolutionCode, Status};

/// A stored value this version cannot read: the database was written by
/// something else. Reported, never guessed at.
fn parse<T>(r: &dyn Cols, col: &str, what: &str, f: impl Fn(&str) -> Option<T>) -> Result<T> {
    let s = r.text(col)?;
    f(&s).ok_or_else(|| StoreError::backend(format!("column {col} holds an unknown {what}: {s:?}")))
}

/// A placement from the columns named library, institution, cooperative.
fn placement(r: &dyn Cols, [library, institution, cooperative]: [&str; 3]) -> Result<Placement> {
    Ok(Placement {
        library: LibraryId(r.int(library)?),
        institution: InstitutionId(r.int(institution)?),
        cooperative: CooperativeId(r.int(cooperative)?),
    })
}

/// A placement from three nullable columns: present only if all three are.
fn opt_placement(r: &dyn Cols, [library, institution, cooperative]: [&str; 3]) -> Result<Option<Placement>> {
    Ok(match (r.opt_int(library)?, r.opt_int(institution)?, r.opt_int(cooperative)?) {
        (Some(l), Some(i), Some(c)) => {
            Some(Placement { library: LibraryId(l), institution: InstitutionId(i), cooperative: CooperativeId(c) })
        }
        _ => None,
    })
}

/// The columns of a row's own placement.
const OWN: [&str; 3] = ["library_id", "institution_id", "cooperative_id"];

/// The columns of the queue a session waits in (its library's, or the one
/// it was transferred to).
const QUEUE: [&str; 3] = ["queue_library", "queue_institution", "queue_cooperative"];

/// The columns of the library a question was referred to. The first is the
/// question's own `referred_to`, which [`question_state`] reads too.
const REFERRED: [&str; 3] = ["referred_to", "referred_institution", "referred_cooperative"];

pub(crate) const LIBRARY_SELECT: &str =
    "SELECT l.id AS library_id, l.institution_id AS institution_id, i.cooperative_id AS cooperative_id,
            l.slug AS slug, l.name AS library_name, ls.embed_sites AS embed_sites, ls.reply_to AS reply_to,
            ls.closed_notice AS closed_notice, ls.widget AS widget, rt.days AS retention_days
     FROM libraries l JOIN institutions i ON i.id = l.institution_id
     LEFT JOIN library_settings ls ON ls.library_id = l.id
     LEFT JOIN retention rt ON rt.library_id = l.id";

pub(crate) fn library(r: &dyn Cols) -> Result<LibraryRecord> {
    let embed_sites = r.opt_text("embed_sites")?.map(|s| s.split_whitespace().map(str::to_owned).collect());
    Ok(LibraryRecord {
        placement: placement(r, OWN)?,
        slug: r.text("slug")?,
        name: r.text("library_name")?,
        embed_sites: embed_sites.unwrap_or_default(),
        retention_days: r.opt_int("retention_days")?.and_then(|d| u32::try_from(d).ok()),
        reply_to: r.opt_text("reply_to")?,
        closed_notice: r.opt_text("closed_notice")?,
        widget: r.opt_text("widget")?.map(|w| stored_look(&w)).unwrap_or_default(),
    })
}

/// A widget's look as `set_widget` wrote it, read part by part: a part a
/// later release added is left out (after going back to this release the
/// rest stays), a part that is not text is the default, and text that is
/// no look at all is the default look — never a library that cannot be
/// listed. The API refuses unknown parts; what is stored is not refused.
fn stored_look(json: &str) -> refdesk_domain::org::WidgetLook {
    let Ok(serde_json::Value::Object(parts)) = serde_json::from_str::<serde_json::Value>(json) else {
        tracing::debug!("a library's stored widget look is not a JSON object; the default look is used");
        return Default::default();
    };
    let part = |key: &str| parts.get(key).and_then(|v| v.as_str()).map(str::to_owned);
    refdesk_domain::org::WidgetLook {
        label_online: part("label_online"),
        label_offline: part("label_offline"),
        color: part("color"),
        text_color: part("text_color"),
        position: part("position"),
    }
}

/// Every institution with its cooperative, by cooperative then name.
pub(crate) const INSTITUTION_SELECT: &str =
    "SELECT i.id AS institution_id, i.name AS institution_name, c.id AS cooperative_id, c.name AS cooperative_name
     FROM institutions i JOIN cooperatives c ON c.id = i.cooperative_id ORDER BY c.id, i.name, i.id";

pub(crate) fn institution(r: &dyn Cols) -> Result<crate::InstitutionRecord> {
    Ok(crate::InstitutionRecord {
        id: InstitutionId(r.int("institution_id")?),
        name: r.text("institution_name")?,
        cooperative: CooperativeId(r.int("cooperative_id")?),
        cooperative_name: r.text("cooperative_name")?,
    })
}

/// A staff member, with what the sign-in ([`staff_record`]) and the staff
/// list ([`staff_entry`]) read besides.
pub(crate) const STAFF_SELECT: &str =
    "SELECT s.id AS staff_id, s.username AS username, s.display_name AS display_name, s.role AS role,
            s.library_id AS library_id, l.institution_id AS institution_id, i.cooperative_id AS cooperative_id,
            s.password_hash AS password_hash, s.disabled AS disabled, l.name AS library_name,
            s.availability AS availability, s.last_seen AS last_seen
     FROM staff s JOIN libraries l ON l.id = s.library_id JOIN institutions i ON i.id = l.institution_id";

pub(crate) fn staff(r: &dyn Cols) -> Result<Staff> {
    Ok(Staff {
        id: StaffId(r.int("staff_id")?),
        username: r.text("username")?,
        display_name: r.text("display_name")?,
        role: parse(r, "role", "role", Role::parse)?,
        home: placement(r, OWN)?,
    })
}

pub(crate) fn staff_entry(r: &dyn Cols) -> Result<crate::StaffEntry> {
    Ok(crate::StaffEntry {
        staff: staff(r)?,
        library_name: r.text("library_name")?,
        availability: parse(r, "availability", "availability", refdesk_domain::event::Availability::parse)?,
        last_seen: r.int("last_seen")?,
        disabled: r.flag("disabled")?,
    })
}

pub(crate) fn staff_record(r: &dyn Cols) -> Result<crate::StaffRecord> {
    Ok(crate::StaffRecord { staff: staff(r)?, password_hash: r.text("password_hash")?, disabled: r.flag("disabled")? })
}

pub(crate) const IM_SELECT: &str =
    "SELECT m.seq AS seq, m.sender AS sender_id, st.display_name AS sender_name, m.recipient AS recipient_id,
            m.body AS body, m.client_id AS client_id, m.at AS at
     FROM im_messages m JOIN staff st ON st.id = m.sender";

pub(crate) fn im(r: &dyn Cols) -> Result<refdesk_domain::event::ImMessage> {
    Ok(refdesk_domain::event::ImMessage {
        seq: r.int("seq")? as u64,
        from: StaffId(r.int("sender_id")?),
        from_name: r.text("sender_name")?,
        to: StaffId(r.int("recipient_id")?),
        body: r.text("body")?,
        client_id: r.opt_text("client_id")?,
        at: r.int("at")?,
    })
}

/// The conversations of `?1`, the last written first: peer, name, last
/// seq, and the unread messages among the conversation's last
/// [`IM_UNREAD_MOST`] (a row per colleague written to, each count at most
/// that many entries of the primary key).
pub(crate) const IM_CONVERSATIONS: &str =
    "SELECT CASE WHEN c.low = ?1 THEN c.high ELSE c.low END AS peer, st.display_name AS peer_name,
            c.last_seq AS last_seq,
            (SELECT count(*) FROM im_messages m
              WHERE m.low = c.low AND m.high = c.high AND m.seq > c.last_seq - ?2
                AND m.seq > COALESCE(r.last_read, 0) AND m.recipient = ?1) AS unread
     FROM im_conversations c
     JOIN staff st ON st.id = CASE WHEN c.low = ?1 THEN c.high ELSE c.low END
     LEFT JOIN im_reads r ON r.staff_id = ?1 AND r.peer_id = CASE WHEN c.low = ?1 THEN c.high ELSE c.low END
     WHERE c.low = ?1 OR c.high = ?1
     ORDER BY c.last_at DESC, peer";

/// The most unread messages a conversation's count says (it reads no
/// further back).
pub(crate) const IM_UNREAD_MOST: i64 = 1000;

pub(crate) fn im_conversation(r: &dyn Cols) -> Result<crate::ImConversation> {
    Ok(crate::ImConversation {
        peer: StaffId(r.int("peer")?),
        peer_name: r.text("peer_name")?,
        last_seq: r.int("last_seq")? as u64,
        unread: r.int("unread")? as u64,
    })
}

/// The session `?1`'s next sequence number (see `rows::insert_message`):
/// a seek to the end of its range in the messages' primary key.
/// A session's last line: its number, and its number for the patron
/// (`Message::patron_seq`). No row: the session has no line yet.
pub(crate) const LAST_LINE: &str =
    "SELECT seq AS seq, patron_seq AS patron_seq FROM messages WHERE session_id = ?1 ORDER BY seq DESC LIMIT 1";

/// The patron's line numbered `?2`. A line's number is at least its
/// patron's (`patron_seq`), so the line is at `seq >= ?2`: the read seeks
/// there in the key and steps over the lines for staff before it (only
/// their `audience`, at the head of the row, is read), never over the
/// chat's lines from its start.
pub(crate) const PATRON_LINE: &str = "SELECT seq AS seq, patron_seq AS patron_seq FROM messages
     WHERE session_id = ?1 AND seq >= ?2 AND audience = 'everyone' AND patron_seq >= ?2 ORDER BY seq LIMIT 1";

/// How a question came ([`refdesk_domain::question::Channel`]), from its
/// session `s`: the question list's and the reports' one definition.
macro_rules! channel {
    () => {
        "CASE WHEN s.by_form THEN 'form' WHEN s.accepted_at IS NOT NULL THEN 'chat' \
         WHEN s.state <> 'ended' THEN 'waiting' WHEN s.ended_by = 'patron' THEN 'abandoned' ELSE 'missed' END"
    };
}
pub(crate) use channel;

/// A session's last sequence number and the time of its last line, for a
/// query naming the session `s`. Each is a seek to the end of its range in
/// the messages' primary key. A chat whose transcript was deleted keeps
/// its last line's number and time (`ops::privacy`), so no number is given
/// twice.
macro_rules! last_line {
    (seq) => {
        "COALESCE((SELECT ls.seq FROM messages ls WHERE ls.session_id = s.id ORDER BY ls.seq DESC LIMIT 1), 0)"
    };
    // The last line's time but for the lines saying the librarian's desk
    // lost its connection or is back: refdesk's, not anyone's doing (a
    // desk whose connection came and went every minute kept an abandoned
    // chat from its idle end without end).
    (at) => {
        concat!(
            "COALESCE((SELECT lm.at FROM messages lm WHERE lm.session_id = s.id ",
            "AND (lm.system IS NULL OR lm.system NOT IN ('away', 'back')) ORDER BY lm.seq DESC LIMIT 1), ",
            "s.created_at)"
        )
    };
}

// The live sessions' queries say `state <> 'ended'` as the partial index
// `sessions_live` does: SQLite cannot tell that `state = 'active'` implies
// it, and would read every session ever held instead (a year of a large
// cooperative is a million), on every node at every round for the idle
// check. PostgreSQL needs no help; the words are the same for both.

/// A staff member's (`?1`) live chats, theirs or joined: the condition for
/// [`SESSION_SELECT`].
pub(crate) const SESSIONS_OF: &str = "s.state <> 'ended' AND s.state = 'active' AND (s.librarian_id = ?1
       OR EXISTS (SELECT 1 FROM session_members m WHERE m.session_id = s.id AND m.staff_id = ?1))
     ORDER BY s.id";

/// The live sessions within a scope (`within`, binding `?1`, from
/// [`session_scope`]) or with `?2` taking part: the condition for
/// [`SESSION_SELECT`] (the live sessions' partial index, then each one's
/// library and members).
pub(crate) fn live_seen_by(within: &str) -> String {
    format!(
        "s.state <> 'ended' AND s.state IN ('waiting', 'active') AND ({within} OR s.librarian_id = ?2
           OR EXISTS (SELECT 1 FROM session_members m WHERE m.session_id = s.id AND m.staff_id = ?2))
         ORDER BY s.id"
    )
}

/// The condition for the sessions a scope covers, by the library they are
/// at (the chat's placement; binds `?1`: the scope's id).
pub(crate) fn session_scope(scope: ScopeLevel) -> (&'static str, i64) {
    match scope {
        ScopeLevel::Library(l) => ("s.library_id = ?1", l.0),
        ScopeLevel::Institution(i) => ("l.institution_id = ?1", i.0),
        ScopeLevel::Cooperative(c) => ("i.cooperative_id = ?1", c.0),
    }
}

/// How many chats wait ahead of one in its queue, their patron still there
/// (a page of theirs open: not `patron_away_at`): queue `?1`, the chat's
/// place `(?2, ?3)` in the queue's order (when it joined, then its id).
/// Counted in the index `sessions_queue` alone, its expressions spelled as
/// there; the first bound on the time lets SQLite read only the entries
/// ahead (it takes no row value for a range on an expression).
pub(crate) const QUEUE_AHEAD: &str = "SELECT count(*) AS n FROM sessions s
     WHERE s.state = 'waiting' AND COALESCE(s.queue_library_id, s.library_id) = ?1
       AND COALESCE(s.queued_at, s.created_at) <= ?2 AND (COALESCE(s.queued_at, s.created_at), s.id) < (?2, ?3)
       AND s.patron_away_at IS NULL";

/// The active chats whose last line was written before `?1` (R5's
/// timeout; [`last_line`]'s time: a desk's connection lost and back is no
/// one's doing).
pub(crate) const IDLE_SESSIONS: &str = concat!(
    "SELECT s.id AS session_id FROM sessions s WHERE s.state <> 'ended' AND s.state = 'active' AND ",
    last_line!(at),
    " < ?1 ORDER BY s.id"
);

/// Active chats whose librarian is disabled or no node has seen since `?1`
/// (binds before, limit): every node's round, every second.
pub(crate) const ORPHANED_CHATS: &str = "SELECT s.id AS session_id, s.librarian_id AS staff_id FROM sessions s
     JOIN staff st ON st.id = s.librarian_id
     WHERE s.state <> 'ended' AND s.state = 'active' AND (st.disabled OR st.last_seen < ?1)
     ORDER BY s.id LIMIT ?2";

/// Active chats whose patron is to be told their librarian's desk is gone
/// (not seen since `?1`, but since `?2`) or back (binds gone before,
/// sign-off before, limit): every node's round, every second.
pub(crate) const LIBRARIANS_TO_TELL: &str = "SELECT s.id AS session_id, s.librarian_id AS staff_id,
       st.display_name AS name, st.last_seen AS last_seen, s.librarian_away_at IS NULL AS gone
     FROM sessions s JOIN staff st ON st.id = s.librarian_id
     WHERE s.state <> 'ended' AND s.state = 'active' AND NOT st.disabled
       AND ((s.librarian_away_at IS NULL AND st.last_seen < ?1 AND st.last_seen >= ?2)
         OR st.last_seen > s.librarian_away_at)
     ORDER BY s.id LIMIT ?3";

/// A browser's chats at a library still waiting, open in a page or not
/// (binds the library, the browser's key), by the waiting chats' index of
/// browser keys (`sessions_waiting_browser`).
pub(crate) const LEFT_WAITING: &str = "SELECT s.id AS session_id FROM sessions s
     WHERE s.state = 'waiting' AND s.library_id = ?1 AND s.browser_key = ?2
     ORDER BY s.id";

/// Waiting chats that entered their queue before a time, longest waiting
/// first (binds before, limit; the waiting chats' index `sessions_queue`).
pub(crate) const EXPIRED_WAITING: &str = "SELECT s.id AS session_id FROM sessions s
     WHERE s.state = 'waiting' AND COALESCE(s.queued_at, s.created_at) < ?1
     ORDER BY COALESCE(s.queued_at, s.created_at), s.id LIMIT ?2";

/// What the patron of a chat wrote after the question, in characters
/// (binds the session): read by an append's load of a chat
/// (`SessionRecord::patron_chars`), its lines in the messages' key; their
/// bodies are read for their length (at most `patron_chars_per_chat`
/// characters of the patron's, and the staff's lines' rows).
pub(crate) const PATRON_CHARS: &str = "SELECT COALESCE(SUM(LENGTH(body)), 0) AS n FROM messages
     WHERE session_id = ?1 AND seq > 1 AND author_kind = 'patron'";

pub(crate) const SESSION_SELECT: &str = concat!(
    "SELECT s.id AS session_id,
            s.library_id AS library_id, l.institution_id AS institution_id, i.cooperative_id AS cooperative_id,
            s.librarian_id AS librarian_id, q.id AS question_id, s.state AS state, s.patron_name AS patron_name,
            s.patron_email AS patron_email, s.created_at AS created_at, s.accepted_at AS accepted_at,
            s.ended_at AS ended_at, q.code IS NOT NULL AS code_set, ",
    last_line!(seq),
    " AS last_seq, s.transcript_to AS transcript_to, s.transcript_utc_offset AS transcript_utc_offset,
            q.referred_to AS referred_to, rl.institution_id AS referred_institution,
            ri.cooperative_id AS referred_cooperative,
            ql.id AS queue_library, ql.institution_id AS queue_institution, qi.cooperative_id AS queue_cooperative,
            s.queued_at AS queued_at, s.queue_coop AS queue_coop, l.name AS library_name,
            sst.display_name AS librarian_name, ",
    last_line!(at),
    " AS last_message_at, s.version AS version, s.erased_at IS NOT NULL AS erased,
            s.patron_away_at IS NOT NULL AS patron_away
     FROM sessions s JOIN libraries l ON l.id = s.library_id JOIN institutions i ON i.id = l.institution_id
     JOIN libraries ql ON ql.id = COALESCE(s.queue_library_id, s.library_id) JOIN institutions qi ON qi.id = ql.institution_id
     LEFT JOIN staff sst ON sst.id = s.librarian_id
     LEFT JOIN questions q ON q.session_id = s.id
     LEFT JOIN libraries rl ON rl.id = q.referred_to LEFT JOIN institutions ri ON ri.id = rl.institution_id"
);

/// A session without its members (the backend adds them).
pub(crate) fn session(r: &dyn Cols) -> Result<SessionRecord> {
    Ok(SessionRecord {
        ctx: SessionContext {
            id: SessionId(r.int("session_id")?),
            placement: placement(r, OWN)?,
            librarian: r.opt_int("librarian_id")?.map(StaffId),
            question: r.opt_int("question_id")?.map(QuestionId),
            referred: opt_placement(r, REFERRED)?,
            members: Vec::new(),
            version: r.int("version")?.max(0) as u64,
        },
        state: parse(r, "state", "session state", SessionState::parse)?,
        patron_name: r.opt_text("patron_name")?,
        patron_email: r.opt_text("patron_email")?,
        created_at: r.int("created_at")?,
        accepted_at: r.opt_int("accepted_at")?,
        ended_at: r.opt_int("ended_at")?,
        code_set: r.flag("code_set")?,
        last_seq: r.int("last_seq")? as u64,
        transcript_to: r.opt_text("transcript_to")?,
        // Written only in range; read so, whatever a hand-edited row holds.
        transcript_utc_offset: r
            .opt_int("transcript_utc_offset")?
            .filter(|m| (-840..=840).contains(m))
            .map(|m| m as i32),
        queue: placement(r, QUEUE)?,
        queued_at: r.opt_int("queued_at")?.unwrap_or_default(),
        queue_coop: r.flag("queue_coop")?,
        library_name: r.text("library_name")?,
        librarian_name: r.opt_text("librarian_name")?,
        last_message_at: r.int("last_message_at")?,
        erased: r.flag("erased")?,
        patron_away: r.flag("patron_away")?,
        patron_chars: 0,
        counted_to: r.int("last_seq")? as u64,
        patron_lines: 0,
    })
}

/// A session's conference members, in the order they came.
pub(crate) const MEMBERS_SELECT: &str = "SELECT m.staff_id AS staff_id, st.display_name AS display_name, m.mode AS mode
     FROM session_members m JOIN staff st ON st.id = m.staff_id
     WHERE m.session_id = ?1 ORDER BY m.joined_at, m.staff_id";

pub(crate) fn member(r: &dyn Cols) -> Result<refdesk_domain::chat::Member> {
    Ok(refdesk_domain::chat::Member {
        staff: StaffId(r.int("staff_id")?),
        name: r.text("display_name")?,
        mode: parse(r, "mode", "conference mode", refdesk_domain::chat::ConferenceMode::parse)?,
    })
}

/// The waiting chats, with their queues.
pub(crate) const QUEUE_SELECT: &str = "SELECT s.id AS session_id,
            s.library_id AS library_id, l.institution_id AS institution_id, i.cooperative_id AS cooperative_id,
            l.name AS library_name, s.patron_name AS patron_name,
            substr(s.question_text, 1, 301) AS question_text,
            COALESCE(s.queued_at, s.created_at) AS since,
            ql.id AS queue_library, ql.institution_id AS queue_institution, qi.cooperative_id AS queue_cooperative,
            s.queue_coop AS queue_coop, s.version AS version, s.patron_away_at AS patron_away_at,
            s.created_at AS created_at
     FROM sessions s JOIN libraries l ON l.id = s.library_id JOIN institutions i ON i.id = l.institution_id
     JOIN libraries ql ON ql.id = COALESCE(s.queue_library_id, s.library_id) JOIN institutions qi ON qi.id = ql.institution_id
     WHERE s.state = 'waiting'";

pub(crate) fn queue_entry(r: &dyn Cols) -> Result<QueueEntry> {
    Ok(QueueEntry {
        session: SessionId(r.int("session_id")?),
        placement: placement(r, OWN)?,
        library_name: r.text("library_name")?,
        patron_name: r.opt_text("patron_name")?.unwrap_or_else(|| "Patron".into()),
        question: refdesk_domain::event::question_preview(&r.text("question_text")?),
        since: r.int("since")?,
        queue: placement(r, QUEUE)?,
        coop_now: r.flag("queue_coop")?,
        version: r.int("version")?.max(0) as u64,
        asked_at: r.int("created_at")?,
        away_since: r.opt_int("patron_away_at")?,
    })
}

/// Every line of a chat as a viewer receives it (the replay and catch-up
/// read this per line).
pub(crate) const MESSAGE_SELECT: &str =
    "SELECT session_id AS session_id, seq AS seq, patron_seq AS patron_seq, kind AS kind,
            audience AS audience, author_kind AS author_kind, author_id AS author_id, author_name AS author_name,
            client_id AS client_id, body AS body, system AS system, at AS at
     FROM messages";

pub(crate) fn message(r: &dyn Cols) -> Result<Message> {
    let name = r.text("author_name")?;
    let author = match r.text("author_kind")?.as_str() {
        "patron" => Author::Patron { name },
        "staff" => Author::Staff { id: StaffId(r.int("author_id")?), name },
        "system" => Author::System,
        other => return Err(StoreError::backend(format!("column author_kind holds an unknown author kind {other:?}"))),
    };
    Ok(Message {
        session: SessionId(r.int("session_id")?),
        seq: r.int("seq")? as u64,
        patron_seq: r.int("patron_seq")? as u64,
        kind: parse(r, "kind", "message kind", MessageKind::parse)?,
        audience: parse(r, "audience", "audience", Audience::parse)?,
        author,
        client_id: r.opt_text("client_id")?,
        body: r.text("body")?,
        // A kind this build does not know (written by a newer node beside
        // it during an upgrade) reads as a line without one.
        system: r.opt_text("system")?.as_deref().and_then(SystemEvent::parse),
        at: r.int("at")?,
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

/// The entries of a question's timeline (binds the question; index
/// `timeline_question`).
pub(crate) const TIMELINE_ENTRIES: &str = "SELECT COUNT(*) AS n FROM timeline WHERE question_id = ?1";

pub(crate) const TIMELINE_SELECT: &str =
    "SELECT at AS at, actor_id AS actor_id, actor_name AS actor_name, change AS change
     FROM timeline WHERE question_id = ?1 ORDER BY id LIMIT ?2 OFFSET ?3";

pub(crate) fn timeline(r: &dyn Cols) -> Result<TimelineEntry> {
    let json = r.text("change")?;
    Ok(TimelineEntry {
        at: r.int("at")?,
        actor: r.opt_int("actor_id")?.map(StaffId),
        actor_name: r.text("actor_name")?,
        change: serde_json::from_str(&json)
            .map_err(|e| StoreError::backend(format!("unreadable timeline entry: {e}")))?,
    })
}

/// A question's workflow state; [`QUESTION_SELECT`] has the same columns.
pub(crate) const QUESTION_STATE_SELECT: &str = "SELECT status AS status, code AS code, assignee_id AS assignee_id,
            follow_up AS follow_up, referred_to AS referred_to, exclude_from_stats AS exclude_from_stats,
            read_scale AS read_scale
     FROM questions WHERE id = ?1";

pub(crate) fn question_state(r: &dyn Cols) -> Result<QuestionState> {
    Ok(QuestionState {
        status: parse(r, "status", "status", Status::parse)?,
        code: r.opt_text("code")?,
        assignee: r.opt_int("assignee_id")?.map(StaffId),
        follow_up: r.flag("follow_up")?,
        referred_to: r.opt_int("referred_to")?.map(LibraryId),
        exclude_from_stats: r.flag("exclude_from_stats")?,
        read_scale: r.opt_int("read_scale")?.and_then(|n| u8::try_from(n).ok()),
    })
}

pub(crate) const QUESTION_SELECT: &str = concat!(
    "SELECT q.id AS question_id, q.session_id AS session_id,
            q.library_id AS library_id, l.institution_id AS institution_id, i.cooperative_id AS cooperative_id,
            l.name AS library_name, q.text AS text,
            q.status AS status, q.code AS code, q.assignee_id AS assignee_id, sa.display_name AS assignee_name,
            q.follow_up AS follow_up,
            q.referred_to AS referred_to, q.exclude_from_stats AS exclude_from_stats, q.read_scale AS read_scale,
            rl.institution_id AS referred_institution, ri.cooperative_id AS referred_cooperative,
            rl.name AS referred_name,
            s.librarian_id AS librarian_id, st.display_name AS librarian_name, s.state AS session_state,
            se.display_name AS emailed_by_name, q.created_at AS created_at, ",
    last_line!(at),
    " AS last_message_at, (SELECT t.at FROM timeline t WHERE t.question_id = q.id
              AND t.change LIKE '{\"change\":\"answer\",%' ORDER BY t.id DESC LIMIT 1) AS last_answer_at,
            s.accepted_at AS accepted_at,
            s.rating AS rating, s.rating_comment AS rating_comment, s.patron_name AS patron_name,
            s.erased_at IS NOT NULL AS erased, ",
    channel!(),
    " AS channel
     FROM questions q JOIN sessions s ON s.id = q.session_id JOIN libraries l ON l.id = q.library_id
     JOIN institutions i ON i.id = l.institution_id LEFT JOIN staff st ON st.id = s.librarian_id
     LEFT JOIN staff sa ON sa.id = q.assignee_id LEFT JOIN staff se ON se.id = q.emailed_by
     LEFT JOIN libraries rl ON rl.id = q.referred_to LEFT JOIN institutions ri ON ri.id = rl.institution_id"
);

pub(crate) fn question(r: &dyn Cols) -> Result<QuestionRecord> {
    let state = question_state(r)?;
    let session_state = parse(r, "session_state", "session state", SessionState::parse)?;
    Ok(QuestionRecord {
        id: QuestionId(r.int("question_id")?),
        session: SessionId(r.int("session_id")?),
        library: LibraryId(r.int("library_id")?),
        library_name: r.text("library_name")?,
        text: r.text("text")?,
        live: is_live(
            r.opt_int("accepted_at")?.is_some(),
            session_state,
            state.code.is_some(),
            r.opt_int("librarian_id")?.is_some(),
        ),
        state,
        librarian: r.opt_int("librarian_id")?.map(StaffId),
        librarian_name: r.opt_text("librarian_name")?,
        emailed_by_name: r.opt_text("emailed_by_name")?,
        assignee_name: r.opt_text("assignee_name")?,
        session_state,
        created_at: r.int("created_at")?,
        // The chat's last line, or an answer e-mailed after it.
        last_message_at: r.int("last_message_at")?.max(r.opt_int("last_answer_at")?.unwrap_or(0)),
        placement: placement(r, OWN)?,
        referred: opt_placement(r, REFERRED)?,
        referred_name: r.opt_text("referred_name")?,
        rating: r.opt_int("rating")?.map(|v| v.clamp(0, 255) as u8),
        rating_comment: r.opt_text("rating_comment")?,
        patron_name: r.opt_text("patron_name")?,
        erased: r.flag("erased")?,
        channel: parse(r, "channel", "channel", Channel::parse)?,
    })
}

/// An e-mail with the slug of the library it is from (the question's, else
/// the chat's: its `/ask/<slug>` page is linked at the foot).
pub(crate) const OUTBOX_SELECT: &str = "SELECT id AS mail_id, kind AS kind, to_addr AS to_addr, subject AS subject,
            body AS body, created_at AS created_at, attempts AS attempts, sent_at AS sent_at, last_error AS last_error,
            (SELECT l.slug FROM libraries l WHERE l.id = COALESCE(
                (SELECT q.library_id FROM questions q WHERE q.id = outbox.question_id),
                (SELECT s.library_id FROM sessions s WHERE s.id = outbox.session_id))) AS library_slug,
            COALESCE(outbox.session_id, (SELECT q.session_id FROM questions q WHERE q.id = outbox.question_id))
              AS chat_id
     FROM outbox";

pub(crate) fn outbox(r: &dyn Cols) -> Result<crate::OutboxMail> {
    Ok(crate::OutboxMail {
        id: r.int("mail_id")?,
        kind: parse(r, "kind", "mail kind", crate::MailKind::parse)?,
        to: r.text("to_addr")?,
        subject: r.text("subject")?,
        body: r.text("body")?,
        created_at: r.int("created_at")?,
        attempts: r.int("attempts")?.clamp(0, u32::MAX as i64) as u32,
        sent_at: r.opt_int("sent_at")?,
        last_error: r.opt_text("last_error")?,
        library_slug: r.opt_text("library_slug")?,
        session: r.opt_int("chat_id")?.map(SessionId),
    })
}

pub(crate) const CODES_SELECT: &str = "SELECT key AS key, label AS label, status AS status, assign AS assign,
            follow_up AS follow_up, referred AS referred, exclude_from_stats AS exclude_from_stats,
            retired AS retired
     FROM resolution_codes WHERE cooperative_id = ?1 ORDER BY position";

pub(crate) fn code(r: &dyn Cols) -> Result<ResolutionCode> {
    Ok(ResolutionCode {
        key: r.text("key")?,
        label: r.text("label")?,
        status: parse(r, "status", "status", Status::parse)?,
        assign: parse(r, "assign", "assignment", Assignment::parse)?,
        follow_up: r.flag("follow_up")?,
        referred: r.flag("referred")?,
        exclude_from_stats: r.flag("exclude_from_stats")?,
        retired: r.flag("retired")?,
    })
}

/// A block with its library's placement and the names of who blocked and lifted.
pub(crate) const BLOCK_SELECT: &str = "SELECT b.id AS block_id,
            b.library_id AS library_id, l.institution_id AS institution_id, i.cooperative_id AS cooperative_id,
            l.name AS library_name, b.session_id AS session_id, q.id AS question_id, b.reason AS reason,
            b.created_by AS created_by, cb.display_name AS created_by_name, b.created_at AS created_at,
            b.expires_at AS expires_at, b.lifted_at AS lifted_at, lb.display_name AS lifted_by_name,
            (b.net_key IS NOT NULL) AS holds_network
     FROM blocks b JOIN libraries l ON l.id = b.library_id JOIN institutions i ON i.id = l.institution_id
     JOIN staff cb ON cb.id = b.created_by LEFT JOIN staff lb ON lb.id = b.lifted_by
     LEFT JOIN questions q ON q.session_id = b.session_id";

pub(crate) fn block(r: &dyn Cols) -> Result<crate::BlockRecord> {
    Ok(crate::BlockRecord {
        id: r.int("block_id")?,
        placement: placement(r, OWN)?,
        library_name: r.text("library_name")?,
        session: SessionId(r.int("session_id")?),
        question: r.opt_int("question_id")?.map(QuestionId),
        reason: r.text("reason")?,
        created_by: StaffId(r.int("created_by")?),
        created_by_name: r.text("created_by_name")?,
        created_at: r.int("created_at")?,
        expires_at: r.int("expires_at")?,
        lifted_at: r.opt_int("lifted_at")?,
        lifted_by_name: r.opt_text("lifted_by_name")?,
        network: r.flag("holds_network")?,
    })
}

/// Chats waiting in one library's queue (binds the library).
pub(crate) const WAITING_IN_LIBRARY: &str =
    "SELECT COUNT(*) AS n FROM sessions WHERE state = 'waiting' AND COALESCE(queue_library_id, library_id) = ?1";

/// Chats waiting from one network, by the column of its key
/// (`PatronKeys::networks`; binds the key; a partial index of the waiting
/// chats per column).
pub(crate) fn waiting_from_net(column: &str) -> String {
    format!("SELECT COUNT(*) AS n FROM sessions WHERE state = 'waiting' AND {column} = ?1")
}

/// Chats started from a network since a time, whatever became of them;
/// offline-form questions are not chats (by the column of its key; binds
/// the key, since).
pub(crate) fn started_from_net(column: &str) -> String {
    format!("SELECT COUNT(*) AS n FROM sessions WHERE {column} = ?1 AND created_at >= ?2 AND NOT by_form")
}

/// Chats but one that a librarian took and that ended since a time, asking a
/// transcript to one mailbox however its address was written
/// (`mailbox_key`): the transcripts asked for there, whether or not each was
/// queued (binds the mailbox's key, since, the chat ending now).
pub(crate) const TRANSCRIPTS_ENDED_TO: &str = "SELECT COUNT(*) AS n FROM sessions
     WHERE transcript_key = ?1 AND ended_at >= ?2
       AND accepted_at IS NOT NULL AND id <> ?3";

/// Mails a staff member queued from the question list since a time (binds
/// the staff member, since; index `outbox_sender`).
pub(crate) const MAILS_SENT_BY: &str = "SELECT COUNT(*) AS n FROM outbox WHERE sender_id = ?1 AND created_at >= ?2";

/// Mails of one kind queued since a time to one mailbox, however its
/// address was written (binds kind, the mailbox's key, since; index
/// `outbox_to`).
pub(crate) const MAILS_TO: &str = "SELECT COUNT(*) AS n FROM outbox
     WHERE to_key = ?2 AND created_at >= ?3 AND kind = ?1";

/// Chats no librarian accepted and offline-form questions, started at a
/// library since a time (binds library, since; index `sessions_report`):
/// what strangers can add; the chats librarians took are the library's work.
pub(crate) const STARTED_IN_LIBRARY: &str =
    "SELECT COUNT(*) AS n FROM sessions WHERE library_id = ?1 AND created_at >= ?2 AND accepted_at IS NULL";

/// The condition for the blocks a scope covers (binds `?1`: its id).
pub(crate) fn block_scope(scope: ScopeLevel) -> (&'static str, i64) {
    match scope {
        ScopeLevel::Library(l) => ("b.library_id = ?1", l.0),
        ScopeLevel::Institution(i) => ("l.institution_id = ?1", i.0),
        ScopeLevel::Cooperative(c) => ("b.cooperative_id = ?1", c.0),
    }
}

/// Questions left for an e-mail answer from one network since a time:
/// offline forms, and chats nobody took that left a question (by the
/// column of its key; binds the key, since).
pub(crate) fn left_from_net(column: &str) -> String {
    format!(
        "SELECT COUNT(*) AS n FROM sessions s WHERE s.{column} = ?1 AND s.created_at >= ?2
           AND (s.by_form OR (s.accepted_at IS NULL AND EXISTS (SELECT 1 FROM questions q WHERE q.session_id = s.id)))"
    )
}

/// Blocks in force on either key: binds cooperative, browser key, network key, now.
/// (The lift is asked in each branch: SQLite takes a partial index for an
/// `OR` branch only if the branch itself says what the index's `WHERE` does.)
pub(crate) const ACTIVE_BLOCK: &str = "WHERE i.cooperative_id = ?1 AND b.expires_at > ?4
       AND ((?2 IS NOT NULL AND b.browser_key = ?2 AND b.lifted_at IS NULL)
         OR (?3 IS NOT NULL AND b.net_key = ?3 AND b.lifted_at IS NULL))
     ORDER BY b.expires_at DESC LIMIT 1";

/// The chats still waiting in the block's cooperative that no librarian
/// ever took, started from the blocked browser, or from its network with no
/// browser id (not the widget: a script's), but its own (`?1` the block,
/// `?2` how many at most). Another patron's widget behind the same shared
/// address (a library's lab, a campus) keeps its chat.
pub(crate) const WAITING_UNDER_BLOCK: &str = "SELECT s.id AS session_id FROM blocks b
     JOIN sessions s ON s.state <> 'ended' AND s.state = 'waiting' AND s.id <> b.session_id
       AND s.accepted_at IS NULL
       AND ((b.browser_key IS NOT NULL AND s.browser_key = b.browser_key)
         OR (b.net_key IS NOT NULL AND s.net_key = b.net_key AND s.browser_key IS NULL))
     JOIN libraries l ON l.id = s.library_id
     JOIN institutions i ON i.id = l.institution_id AND i.cooperative_id = b.cooperative_id
     WHERE b.id = ?1 ORDER BY s.id LIMIT ?2";

pub(crate) const SCRIPT_SELECT: &str =
    "SELECT id AS script_id, scope AS scope, owner_id AS owner_id, title AS title, body AS body FROM scripts";

pub(crate) fn script(r: &dyn Cols) -> Result<crate::Script> {
    Ok(crate::Script {
        id: r.int("script_id")?,
        scope: r.text("scope")?,
        owner: r.int("owner_id")?,
        title: r.text("title")?,
        body: r.text("body")?,
    })
}

pub(crate) const POLICY_SELECT: &str = "SELECT p.library_id AS library_id, p.body AS body,
            p.updated_at AS updated_at, st.display_name AS updated_by_name
     FROM policies p LEFT JOIN staff st ON st.id = p.updated_by WHERE p.library_id = ?1";

pub(crate) fn policy(r: &dyn Cols) -> Result<crate::PolicyPage> {
    Ok(crate::PolicyPage {
        library: LibraryId(r.int("library_id")?),
        body: r.text("body")?,
        updated_at: r.int("updated_at")?,
        updated_by: r.opt_text("updated_by_name")?,
    })
}

/// The SQL condition of a role scope: a question of a library it covers,
/// one referred to such a library, or one the staff member chatted in
/// that goes on or ended lately. Binds `?1` (the scope's id), `?2` (the
/// staff member) and `?3` (the end of their chats that still counts).
fn scope_condition(scope: &QuestionScope) -> (&'static str, i64) {
    match scope.covers {
        ScopeLevel::Library(l) => ("(q.library_id = ?1 OR q.referred_to = ?1 OR (s.librarian_id = ?2 AND (s.ended_at IS NULL OR s.ended_at >= ?3)))", l.0),
        ScopeLevel::Institution(i) => ("(l.institution_id = ?1 OR rl.institution_id = ?1 OR (s.librarian_id = ?2 AND (s.ended_at IS NULL OR s.ended_at >= ?3)))", i.0),
        ScopeLevel::Cooperative(c) => ("(i.cooperative_id = ?1 OR ri.cooperative_id = ?1 OR (s.librarian_id = ?2 AND (s.ended_at IS NULL OR s.ended_at >= ?3)))", c.0),
    }
}

/// A library's scope as three conditions, one for each way a question is
/// in it, each read through an index of its own: the library's questions,
/// those referred to it, those of the staff member's chats; each but the
/// first without the questions of those before it (no question is read,
/// and searched, twice).
const LIBRARY_ARMS: [&str; 3] = [
    "q.library_id = ?1",
    "q.referred_to = ?1 AND q.library_id <> ?1",
    "s.librarian_id = ?2 AND (s.ended_at IS NULL OR s.ended_at >= ?3) AND q.library_id <> ?1 AND (q.referred_to IS NULL OR q.referred_to <> ?1)",
];

/// The conditions of a view, each an arm of the list (a question matches
/// one arm at most). The views of work still to do say the `WHERE` of the
/// partial index that holds their few questions (SQLite migration 023,
/// PostgreSQL 018), so that a page of them is read there and not by
/// walking every question of the service: the scope spans two tables, so
/// no index of the scope serves it. Live is two arms, each with its index:
/// the questions with no code yet, and those of the chats not ended.
fn view_arms(view: refdesk_domain::actions::View) -> &'static [&'static str] {
    use refdesk_domain::actions::View;
    match view {
        View::MyNew => &["q.assignee_id = ?2 AND q.status = 'new'"],
        View::MyActive => &["q.assignee_id = ?2 AND q.status IN ('new', 'pending', 'answered')"],
        View::New => &["q.status IN ('new', 'pending') AND q.status = 'new'"],
        View::Unassigned => &["q.status IN ('new', 'pending') AND q.assignee_id IS NULL"],
        View::Active => &["q.status IN ('new', 'pending', 'answered')"],
        View::Answered => &["q.status = 'answered'"],
        View::Closed => &["q.status = 'closed'"],
        View::Pending => &["q.status IN ('new', 'pending') AND q.status = 'pending'"],
        View::Referred => &["q.referred_to IS NOT NULL"],
        View::FollowUp => &["q.follow_up = TRUE AND q.status IN ('new', 'pending')"],
        View::All => &["1 = 1"],
        // R5: live until ended *and* coded; ended with nobody chatting, not
        // live (`is_live`).
        View::Live => &[
            "s.accepted_at IS NOT NULL AND q.code IS NULL AND (s.librarian_id IS NOT NULL OR s.state <> 'ended')",
            "s.accepted_at IS NOT NULL AND q.code IS NOT NULL
               AND q.session_id IN (SELECT id FROM sessions WHERE state <> 'ended')",
        ],
    }
}

/// A search's condition (`?` for each of its values, in order): a
/// substring of the question, the patron's name or address (a patron who
/// calls back is looked for by name) or any line of its transcript (staff
/// see notes, so notes are searched too), in any letter case whatever the
/// script, LIKE's wildcards in the words escaped; a number, or "#" and a
/// number, is also the question's own.
fn words_condition(text: &str, dialect: super::Dialect) -> (String, Vec<Arg<'static>>) {
    // SQLite compares both sides lower-cased (`folded`); PostgreSQL's ILIKE
    // folds both by the database's locale, the words as typed: lower-cased
    // here, a database with a non-UTF-8 locale (which folds ASCII alone)
    // found not even "Östergötland" written as it is.
    let words = match dialect {
        super::Dialect::Sqlite => text.to_lowercase(),
        super::Dialect::Postgres => text.to_owned(),
    };
    let escaped = words.replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_");
    let pattern = Arg::owned(format!("%{escaped}%"));
    let number = text.trim().trim_start_matches('#').parse::<i64>().ok();
    // Words in ASCII alone are found by LIKE's own folding, as fast as
    // before; others by both sides lower-cased (a call for each line read).
    let fold = !text.is_ascii();
    let f = |column: &str| if fold { dialect.folded(column) } else { column.to_owned() };
    let cond = format!(
        "({} {like} ? ESCAPE '\\' OR {} {like} ? ESCAPE '\\' OR {} {like} ? ESCAPE '\\'
          OR q.id = ? OR EXISTS (SELECT 1 FROM messages m WHERE m.session_id = q.session_id AND {} {like} ? ESCAPE '\\'))",
        f("q.text"),
        f("s.patron_name"),
        f("s.patron_email"),
        f("m.body"),
        like = dialect.like()
    );
    (cond, vec![pattern.clone(), pattern.clone(), pattern.clone(), Arg::Int(number.unwrap_or(0)), pattern])
}

/// The SQL and arguments of a question-list query: scope, view, filters,
/// paging. Every value is bound, never spliced into the text.
pub(crate) fn question_query(query: &crate::QuestionQuery, dialect: super::Dialect) -> (String, Vec<Arg<'static>>) {
    use refdesk_domain::question::Status;
    let (either, scope_id) = scope_condition(&query.scope);
    let mut args: Vec<Arg<'static>> =
        vec![Arg::Int(scope_id), Arg::Int(query.scope.participant.0), Arg::Int(query.scope.chatted_since)];
    let mut filters = String::new();
    // Each condition's `?` placeholders are numbered as its values are bound.
    let mut bind = |cond: &str, values: Vec<Arg<'static>>| {
        filters.push_str(" AND ");
        for (i, part) in cond.split('?').enumerate() {
            if i > 0 {
                args.push(values[i - 1].clone());
                filters.push_str(&format!("?{}", args.len()));
            }
            filters.push_str(part);
        }
    };
    if let Some(st) = query.status {
        // New and pending ones are read in their own index (see `view_arms`).
        let open = if matches!(st, Status::New | Status::Pending) { "q.status IN ('new', 'pending') AND " } else { "" };
        bind(&format!("{open}q.status = ?"), vec![Arg::from(st.as_str())]);
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
        // The chatting librarian's, and those they answered by e-mail.
        bind("(s.librarian_id = ? OR q.emailed_by = ?)", vec![Arg::Int(l.0), Arg::Int(l.0)]);
    }
    if let Some(l) = query.library {
        bind("q.library_id = ?", vec![Arg::Int(l.0)]);
    }
    if let Some(ch) = query.channel {
        bind(concat!("(", channel!(), ") = ?"), vec![Arg::from(ch.as_str())]);
    }
    if let Some(text) = &query.text {
        let (cond, values) = words_condition(text, dialect);
        bind(&cond, values);
    }
    if let Some(before) = query.before {
        bind("q.id < ?", vec![Arg::Int(before.0)]);
    }
    args.push(Arg::Int(query.limit as i64));
    let page = format!(" ORDER BY q.id DESC LIMIT ?{}", args.len());
    // A search reads every question in scope. A library's, each of its
    // arms through its own index, not every question of the service, which
    // the one condition of the three walks (an admin's scope holds most of
    // them: one walk). Any other page finds its questions among the newest.
    let scopes: &[&str] = match (&query.text, query.scope.covers) {
        (Some(_), ScopeLevel::Library(_)) => &LIBRARY_ARMS,
        _ => &[either],
    };
    let arm = |scope: &str, view: &str| format!("{QUESTION_SELECT} WHERE {scope} AND {view}{filters}{page}");
    let arms: Vec<String> =
        scopes.iter().flat_map(|scope| view_arms(query.view).iter().map(|view| arm(scope, view))).collect();
    let sql = match &arms[..] {
        [one] => one.clone(),
        // Each arm's page, then the page of them all (the arms share their
        // numbered arguments; no question is in two of them).
        arms => {
            let parts: Vec<String> =
                arms.iter().enumerate().map(|(n, arm)| format!("SELECT * FROM ({arm}) AS arm{n}")).collect();
            format!("{} ORDER BY question_id DESC LIMIT ?{}", parts.join(" UNION ALL "), args.len())
        }
    };
    (sql, args)
}

#[cfg(test)]
mod tests {
    use super::stored_look;
    use refdesk_domain::org::WidgetLook;

    #[test]
    fn a_stored_look_keeps_the_parts_this_release_knows() {
        // A later release's part ("shape") is left out, not the whole look.
        let later = r##"{"label_online":"Chat with us","color":"#0b57d0","shape":"round","position":"left"}"##;
        let look = stored_look(later);
        assert_eq!(look.label_online.as_deref(), Some("Chat with us"));
        assert_eq!((look.color.as_deref(), look.position.as_deref()), (Some("#0b57d0"), Some("left")));
        assert_eq!((look.label_offline, look.text_color), (None, None));
        // A part that is not text is the default; text that is no look, the default look.
        assert_eq!(stored_look(r#"{"color":7,"position":"right"}"#).color, None);
        for junk in ["", "null", "[1]", "{", "\"blue\""] {
            assert_eq!(stored_look(junk), WidgetLook::default(), "{junk:?}");
        }
    }
}
