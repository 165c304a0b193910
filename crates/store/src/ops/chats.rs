//! Chat sessions: the queue, the lines, the people in them.

use super::{quiet, Backend};
use crate::api::Chats;
use crate::sql::rows::*;
use crate::sql::select::{self as sel, MESSAGE_SELECT, QUEUE_SELECT};
use crate::sql::{args, int, Cols, Db};
use crate::{
    Appended, Decide, DeskNews, Ending, Guard, Handover, LibrarianToTell, LiveCount, MailKind, NewMail, NewMessage,
    NewSession, PatronKeys, Result, ScopeLevel, SessionRecord, TranscriptMail, TransferTo,
};
use async_trait::async_trait;
use refdesk_domain::chat::{Author, ConferenceMode, Message, SessionState};
use refdesk_domain::event::{Event, QueueEntry};
use refdesk_domain::ids::{CooperativeId, LibraryId, QuestionId, SessionId, StaffId};
use refdesk_domain::input::mailbox_key;
use refdesk_domain::lines;
use refdesk_domain::org::Staff;
use refdesk_domain::question::{question_on_accept, Change, Handing, QuestionState, Status};
use refdesk_domain::report::DAY;
use refdesk_domain::{DomainError, Millis};

/// A session as the queue lists it, having entered `rec.queue` at `since`
/// (its question as a preview).
fn queue_entry(rec: &SessionRecord, question: &str, since: Millis) -> QueueEntry {
    QueueEntry {
        session: rec.ctx.id,
        placement: rec.ctx.placement,
        library_name: rec.library_name.clone(),
        patron_name: rec.patron_display(),
        question: refdesk_domain::event::question_preview(question),
        since,
        queue: rec.queue,
        coop_now: rec.queue_coop,
        version: rec.ctx.version,
        asked_at: rec.created_at,
        // Entering a queue (started, sent back): the patron has the chat
        // open, or is taken to until their page is seen to close.
        away_since: None,
    }
}

/// The event that takes a session out of the queue it waited in; `away`:
/// its patron had no page open as it waited (`SessionRecord::patron_away`
/// before it left).
fn queue_removed(rec: &SessionRecord, away: bool) -> Event {
    let (session, placement, since, version) = (rec.ctx.id, rec.queue, rec.queued_at, rec.ctx.version);
    Event::QueueRemoved { session, placement, since, version, away: Some(away) }
}

fn queue_full() -> DomainError {
    DomainError::Limited {
        code: "queue_full",
        reason: "this library's queue is full; please try again in a few minutes, or leave your question with the form"
            .into(),
    }
}

fn net_full() -> DomainError {
    DomainError::Limited {
        code: "too_many_waiting",
        reason: "too many chats are waiting from your network; please wait for one to be answered".into(),
    }
}

/// A library that took its day's chats and questions (`too_many_today`).
pub(crate) fn library_spent() -> DomainError {
    DomainError::Limited {
        code: "too_many_today",
        reason: "this library cannot take more chats or questions today; please try again tomorrow".into(),
    }
}

fn net_spent() -> DomainError {
    DomainError::Limited {
        code: "too_many_chats",
        reason: "too many chats have been started from your network today; please try again tomorrow".into(),
    }
}

/// Starts a waiting chat. The queue caps are counted inside this write:
/// under the library's row lock and a lock per network on PostgreSQL (and
/// SQLite's single writer), two starts cannot both pass a full count.
async fn start<D: Db>(db: &mut D, new: NewSession) -> Result<((SessionRecord, QueueEntry), Vec<Event>)> {
    let lock = format!("SELECT id AS library_id FROM libraries WHERE id = ?1{}", db.dialect().no_key_update());
    db.row(&lock, args![new.library.0], |r| r.int("library_id")).await?.ok_or(not_found("library"))?;
    if int(db, sel::WAITING_IN_LIBRARY, args![new.library.0], "n").await? >= i64::from(new.max_waiting) {
        return Err(queue_full().into());
    }
    let today = int(db, sel::STARTED_IN_LIBRARY, args![new.library.0, new.now - DAY], "n").await?;
    if today >= i64::from(new.max_started_in_library_per_day) {
        return Err(library_spent().into());
    }
    if let Some(widest) = new.keys.widest() {
        // Starts from one network to several libraries are ordered too.
        db.lock(&format!("net:{widest}")).await?;
    }
    for (column, key, times) in new.keys.columns() {
        let cap = |max: u32| i64::from(max) * i64::from(times);
        if int(db, &sel::waiting_from_net(column), args![key], "n").await? >= cap(new.max_waiting_per_net) {
            return Err(net_full().into());
        }
        let today = int(db, &sel::started_from_net(column), args![key, new.now - DAY], "n").await?;
        if today >= cap(new.max_started_per_net_per_day) {
            return Err(net_spent().into());
        }
    }
    let [net56, net48] = &new.keys.wider;
    let transcript_key = new.transcript_to.as_deref().map(mailbox_key);
    let id = int(
        db,
        "INSERT INTO sessions (library_id, token_hash, state, patron_name, patron_email, question_text, created_at,
           transcript_to, transcript_utc_offset, queued_at, browser_key, net_key, net56_key, net48_key, transcript_key)
         VALUES (?1, ?2, 'waiting', ?3, ?4, ?5, ?6, ?7, ?12, ?6, ?8, ?9, ?10, ?11, ?13) RETURNING id AS session_id",
        args![
            new.library.0,
            &new.token_hash,
            &new.patron_name,
            &new.patron_email,
            &new.question,
            new.now,
            &new.transcript_to,
            &new.keys.browser,
            &new.keys.net,
            net56,
            net48,
            new.transcript_utc_offset.map(i64::from),
            &transcript_key
        ],
        "session_id",
    )
    .await?;
    let id = SessionId(id);
    let rec = load_session(db, id).await?;
    let first = insert_first_line(db, &rec, &new.question, new.now).await?;
    let rec = load_session(db, id).await?;
    let entry = queue_entry(&rec, &new.question, new.now);
    let events = vec![
        Event::QueueAdded(entry.clone()),
        Event::Message { ctx: rec.ctx.clone(), message: first },
        Event::SessionChanged(rec.summary()),
    ];
    Ok(((rec, entry), events))
}

/// Accepts a waiting chat (I6) and creates its question (R1).
async fn accept<D: Db>(
    db: &mut D,
    id: SessionId,
    by: Staff,
    guard: Guard,
    now: Millis,
) -> Result<((SessionRecord, Message), Vec<Event>)> {
    let rec = lock_session(db, id).await?;
    guard(&rec)?;
    // Lost to a colleague: who took it (to ask them, or to leave it).
    if rec.state == SessionState::Active {
        let who = match (rec.ctx.librarian, rec.librarian_name.as_deref()) {
            (Some(l), _) if l == by.id => "You have".to_owned(),
            (_, Some(name)) => format!("{name} has"),
            _ => "Another librarian has".to_owned(),
        };
        return Err(DomainError::Conflict(format!("{who} already accepted this chat")).into());
    }
    rec.state.accept()?;
    let was_away = rec.patron_away;
    // The session's lock makes this the one accept that sees 'waiting'; the
    // WHERE clause says so again. `accepted_at` is the first acceptance: a
    // chat accepted again after a transfer to a queue keeps it, so that the
    // reports' wait ends when the patron was first served and the duration
    // covers the whole chat.
    let n = db
        .exec(
            "UPDATE sessions SET state = 'active', librarian_id = ?2, accepted_at = COALESCE(accepted_at, ?3),
               patron_away_at = NULL, librarian_away_at = NULL
             WHERE id = ?1 AND state = 'waiting'",
            args![id.0, by.id.0, now],
        )
        .await?;
    if n != 1 {
        return Err(DomainError::Conflict("this chat was already accepted".into()).into());
    }
    // R1: the question is created at the first acceptance; a chat accepted
    // again after a transfer to a queue keeps its question.
    match rec.ctx.question {
        None => {
            let text = question_text(db, id).await?;
            insert_question(db, &rec, &text, &question_on_accept(), Some(&by), now).await?;
        }
        Some(question) => {
            let how = Handing::AcceptedFromQueue;
            let change =
                Change::Librarian { from: None, to: Some(by.id), how, queue: None, cooperative: false, left: false };
            insert_timeline(db, question, now, Some(&by), &change).await?;
        }
    }
    db.exec("DELETE FROM session_members WHERE session_id = ?1 AND staff_id = ?2", args![id.0, by.id.0]).await?;
    let accepted = load_session(db, id).await?;
    let message = insert_message(db, &accepted, lines::accepted(&by.display_name), now).await?;
    let rec = load_session(db, id).await?;
    let events = vec![
        queue_removed(&rec, was_away),
        Event::Message { ctx: rec.ctx.clone(), message: message.clone() },
        Event::SessionChanged(rec.summary()),
    ];
    Ok(((rec, message), events))
}

/// Appends a message; a re-sent client id returns the stored one (I4). The
/// session comes from the backend's copy when it has one (see
/// [`Db::cached_session`]); an append changes nothing a guard reads, so it
/// neither bumps the version nor drops the copy.
pub(crate) async fn append<D: Db>(
    db: &mut D,
    id: SessionId,
    msg: NewMessage,
    guard: Guard,
    now: Millis,
) -> Result<(Appended, Vec<Event>)> {
    let rec = match db.cached_session(id) {
        Some(rec) => rec,
        None => {
            // The row, locked on PostgreSQL, without a new version.
            let lock = format!("SELECT version AS version FROM sessions WHERE id = ?1{}", db.dialect().for_update());
            let version = db.row(&lock, args![id.0], |r| r.int("version")).await?.ok_or(not_found("session"))?;
            let mut rec = load_session(db, id).await?;
            rec.patron_chars = int(db, sel::PATRON_CHARS, args![id.0], "n").await?.max(0) as u64;
            let patron_lines = db.row(sel::LAST_LINE, args![id.0], |r| r.int("patron_seq")).await?;
            rec.patron_lines = patron_lines.unwrap_or(0).max(0) as u64;
            // An ended chat takes no more lines: it is not kept (its
            // patron's name and address with it) for appends that will all
            // be refused.
            if rec.state.accepts_messages() {
                db.cache_session(version, &rec);
            }
            rec
        }
    };
    if let Err(refused) = guard(&rec) {
        // A line already stored under its client id is acknowledged again
        // whatever a limit says now (I4: a re-send after a lost ack must not
        // read as refused); any other refusal stands.
        if let (DomainError::Limited { .. }, Some(cid)) = (&refused, &msg.client_id) {
            if let Some(message) = message_by_client_id(db, id, &msg.author.sender_key(), cid).await? {
                return Ok((Appended { message, duplicate: true }, Vec::new()));
            }
        }
        return Err(refused.into());
    }
    if let Some(cid) = &msg.client_id {
        if let Some(message) = message_by_client_id(db, id, &msg.author.sender_key(), cid).await? {
            return Ok((Appended { message, duplicate: true }, Vec::new()));
        }
    }
    if !rec.state.accepts_messages() {
        return Err(DomainError::Conflict("this chat has ended".into()).into());
    }
    let message = insert_message(db, &rec, msg, now).await?;
    db.note_line(&message);
    let events = vec![Event::Message { ctx: rec.ctx, message: message.clone() }];
    Ok((Appended { message, duplicate: false }, events))
}

/// A chat that waited and was never taken: its question (kept from an
/// earlier acceptance, or a new one) gets `note`, for the patron's library
/// to answer by e-mail (DESIGN §9, "missed chat").
async fn leave_missed<D: Db>(db: &mut D, rec: &SessionRecord, note: &str, now: Millis) -> Result<QuestionId> {
    let q = match rec.ctx.question {
        Some(q) => {
            back_to_work(db, q, now).await?;
            q
        }
        None => {
            let text = question_text(db, rec.ctx.id).await?;
            let state = QuestionState { status: Status::New, follow_up: true, ..question_on_accept() };
            insert_question(db, rec, &text, &state, None, now).await?
        }
    };
    insert_timeline(db, q, now, None, &Change::Note { body: note.to_owned() }).await?;
    Ok(q)
}

/// A question kept from an earlier acceptance (`answered` since, R1) whose
/// chat went back in line and was never taken again: the patron is told a
/// librarian will answer by e-mail, so it goes back to the work to do —
/// `new`, nobody's, flagged for follow-up, each change in its timeline —
/// if nobody did anything with it since the accept: no code, no close, no
/// referral, no assignee, no answer (in the chat or by e-mail). What a
/// librarian decided stands.
async fn back_to_work<D: Db>(db: &mut D, q: QuestionId, now: Millis) -> Result<()> {
    let before = question_where(db, q).await?.state;
    let as_accepted = QuestionState {
        exclude_from_stats: before.exclude_from_stats,
        read_scale: before.read_scale,
        ..question_on_accept()
    };
    if before != as_accepted || answered(db, q).await? {
        return Ok(());
    }
    let after = QuestionState { status: Status::New, assignee: None, follow_up: true, ..before.clone() };
    db.exec(
        "UPDATE questions SET status = ?2, assignee_id = NULL, follow_up = ?3 WHERE id = ?1",
        args![q.0, after.status.as_str(), true],
    )
    .await?;
    for change in refdesk_domain::question::changes(&before, &after) {
        insert_timeline(db, q, now, None, &change).await?;
    }
    Ok(())
}

/// Whether a question was answered (in its chat or by e-mail), from its
/// timeline (at most `max_question_entries` entries, read once a chat
/// leaves the line).
async fn answered<D: Db>(db: &mut D, q: QuestionId) -> Result<bool> {
    let entries = db
        .rows("SELECT change AS change FROM timeline WHERE question_id = ?1", args![q.0], |r| r.text("change"))
        .await?;
    Ok(entries.iter().any(|json| matches!(serde_json::from_str(json), Ok(Change::Answer { .. }))))
}

/// Whether a chat nobody took may leave a question for an e-mail answer:
/// one it already has takes a note; a new one only while its network has
/// left fewer than `max` today, forms and missed chats together (counted
/// under a lock per network on PostgreSQL, as the form is).
async fn may_leave_question<D: Db>(db: &mut D, rec: &SessionRecord, max: u32, now: Millis) -> Result<bool> {
    if rec.ctx.question.is_some() {
        return Ok(true);
    }
    let nets_of =
        "SELECT net_key AS net_key, net56_key AS net56_key, net48_key AS net48_key FROM sessions WHERE id = ?1";
    let keys = |r: &dyn Cols| {
        let wider = [r.opt_text("net56_key")?, r.opt_text("net48_key")?];
        Ok(PatronKeys { browser: None, net: r.opt_text("net_key")?, wider })
    };
    let keys = db.row(nets_of, args![rec.ctx.id.0], keys).await?.unwrap_or_default();
    may_leave_from(db, &keys, max, now).await
}

/// Whether the networks of `keys` have left fewer questions for an e-mail
/// answer than `max` (each wider one its multiple of it) in the last day,
/// forms and missed chats together, counted under a lock of the widest
/// (PostgreSQL).
pub(crate) async fn may_leave_from<D: Db>(db: &mut D, keys: &PatronKeys, max: u32, now: Millis) -> Result<bool> {
    if let Some(widest) = keys.widest() {
        db.lock(&format!("net:{widest}")).await?;
    }
    for (column, key, times) in keys.columns() {
        let today = int(db, &sel::left_from_net(column), args![key, now - DAY], "n").await?;
        if today >= i64::from(max) * i64::from(times) {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Whether an ending chat may queue its transcript `mail`: fewer than `max`
/// other chats that asked one for the same address ended in the last day,
/// counted under a lock per address (see [`Ending`]).
async fn may_mail_transcript<D: Db>(
    db: &mut D,
    id: SessionId,
    mail: &NewMail,
    max: Option<u32>,
    now: Millis,
) -> Result<bool> {
    let Some(max) = max.filter(|_| mail.kind == MailKind::Transcript) else { return Ok(true) };
    let key = mailbox_key(&mail.to);
    db.lock(&format!("mail:{key}")).await?;
    let sent = int(db, sel::TRANSCRIPTS_ENDED_TO, args![&key, now - DAY, id.0], "n").await?;
    Ok(sent < i64::from(max))
}

/// Ends a chat (R5) and queues its transcript, in one write.
async fn end<D: Db>(
    db: &mut D,
    id: SessionId,
    by: Author,
    guard: Guard,
    mail: TranscriptMail,
    ending: Ending,
    now: Millis,
) -> Result<(Message, Vec<Event>)> {
    let rec = lock_session(db, id).await?;
    guard(&rec)?;
    rec.state.end()?;
    let (ended_by, _, _) = sel::author_columns(&by);
    db.exec(
        "UPDATE sessions SET state = 'ended', ended_at = ?2, ended_by = ?3 WHERE id = ?1",
        args![id.0, now, ended_by],
    )
    .await?;
    let mut last_words = ending.last_words;
    if let (SessionState::Waiting, Some(note), Some(_)) = (rec.state, &ending.missed, &rec.patron_email) {
        if may_leave_question(db, &rec, ending.left_per_net_per_day, now).await? {
            let question = leave_missed(db, &rec, note, now).await?;
            let left = ending.left_words.map(|w| w.replace("{question}", &question.0.to_string()));
            last_words = left.or(last_words);
        } else {
            tracing::info!(session = %id, "a missed chat past its network's questions for the day: no question left");
            last_words = ending.last_words_unanswered.or(last_words);
        }
    } else if let (SessionState::Waiting, Some(q), false) = (rec.state, rec.ctx.question, ending.keep_question) {
        // Taken before and back in a queue when it ends (its patron left,
        // or no address to answer at): no chatting librarian will code it,
        // so its question goes back to the work to do, flagged for its
        // library, as a missed chat's does — else it stood "answered",
        // uncoded, among the answered ones. Said in its timeline.
        back_to_work(db, q, now).await?;
        let why = "The chat ended while it waited in line again, before another librarian took it";
        insert_timeline(db, q, now, None, &Change::Note { body: why.to_owned() }).await?;
    }
    let mut events = Vec::new();
    if rec.state == SessionState::Waiting {
        events.push(queue_removed(&rec, rec.patron_away));
    }
    let last_line = match (ending.blocked, last_words) {
        (true, _) => Some(lines::blocked()),
        (false, words) => words.map(lines::last_words),
    };
    if let Some(line) = last_line {
        let before = load_session(db, id).await?;
        let message = insert_message(db, &before, line, now).await?;
        events.push(Event::Message { ctx: before.ctx, message });
    }
    let ended = load_session(db, id).await?;
    let message = insert_message(db, &ended, lines::ended(&by), now).await?;
    // The lines are read for a transcript only: an end with none to send
    // reads nothing more (a chat may hold thousands of long lines).
    let all = match (&ended.transcript_to, ended.accepted_at, ending.no_transcript) {
        (Some(_), Some(_), false) => all_messages(db, id).await?,
        _ => Vec::new(),
    };
    if let Some(m) = mail(&ended, &all) {
        if may_mail_transcript(db, id, &m, ending.transcripts_per_recipient_per_day, now).await? {
            insert_mail(db, &m, (ended.ctx.question, Some(id)), None, now).await?;
        } else {
            tracing::info!(session = %id, "a transcript past its address's mails for the day: none queued");
        }
    }
    let summary = load_session(db, id).await?.summary();
    events.push(Event::Message { ctx: ended.ctx, message: message.clone() });
    events.push(Event::SessionChanged(summary));
    Ok((message, events))
}

/// Only while the chat goes on: at its end the transcript is built from
/// this column, in the same transaction as the end.
async fn set_transcript_to<D: Db>(
    db: &mut D,
    id: SessionId,
    email: Option<String>,
    utc_offset: Option<i32>,
    max_lines: u64,
    now: Millis,
) -> Result<((), Vec<Event>)> {
    let rec = lock_session(db, id).await?;
    if rec.state == SessionState::Ended {
        return Err(DomainError::Conflict("the chat has ended".into()).into());
    }
    // Staff are told what changed (their desk shows where it goes); the
    // same mailbox again, however written and with another clock perhaps,
    // is no news.
    let asked = match (&rec.transcript_to, &email) {
        (None, Some(_)) => Some(lines::TranscriptAsk::Asked),
        (Some(before), Some(to)) if mailbox_key(before) != mailbox_key(to) => Some(lines::TranscriptAsk::Readdressed),
        (Some(_), None) => Some(lines::TranscriptAsk::Cancelled),
        _ => None,
    };
    let utc_offset = utc_offset.filter(|_| email.is_some()).map(i64::from);
    let key = email.as_deref().map(mailbox_key);
    db.exec(
        "UPDATE sessions SET transcript_to = ?2, transcript_utc_offset = ?3, transcript_key = ?4 WHERE id = ?1",
        args![id.0, &email, utc_offset, &key],
    )
    .await?;
    // Told only in a chat a librarian took (a waiting chat's desk reads
    // where the transcript goes when it is accepted), and not without end: a
    // patron asking and cancelling again and again writes no line past
    // [`TRANSCRIPT_LINES_MOST`] of them, nor once the chat holds the
    // patron's `max_lines` (staff keep their room past it to say goodbye).
    let Some(asked) = asked.filter(|_| rec.accepted_at.is_some() && rec.last_seq < max_lines) else {
        return Ok(((), Vec::new()));
    };
    let told = db
        .row("SELECT COUNT(*) AS n FROM messages WHERE session_id = ?1 AND system = 'transcript'", args![id.0], |r| {
            r.int("n")
        })
        .await?
        .unwrap_or(0);
    if told >= TRANSCRIPT_LINES_MOST {
        return Ok(((), Vec::new()));
    }
    let message = insert_message(db, &rec, lines::transcript(asked), now).await?;
    Ok(((), vec![Event::Message { ctx: rec.ctx, message }]))
}

/// The lines telling staff of a patron's changes to the transcript that one
/// chat holds at most ([`set_transcript_to`]); past them the changes are
/// kept, unsaid (the desk reads where it goes when the chat is opened).
const TRANSCRIPT_LINES_MOST: i64 = 10;

/// How long after a chat's end its transcript may still be asked for.
const TRANSCRIPT_AFTER_END: Millis = 3_600_000;

/// A transcript asked for once the chat has ended: where it goes is
/// recorded and the mail queued in one write. Once per chat (a transcript
/// asked for before the end was sent then), within an hour of the end,
/// only of a chat a librarian took and whose patron was not blocked from
/// it, not once its patron's data is erased; past the cap of transcripts
/// to one mailbox a day (`max`) it is recorded and not sent, as at an end.
async fn transcript_after_end<D: Db>(
    db: &mut D,
    id: SessionId,
    email: String,
    utc_offset: Option<i32>,
    mail: TranscriptMail,
    max: Option<u32>,
    now: Millis,
) -> Result<((), Vec<Event>)> {
    let rec = lock_session(db, id).await?;
    let refused = |why: &str| Err(DomainError::Conflict(why.to_owned()).into());
    if rec.state != SessionState::Ended {
        return refused("the chat has not ended: its transcript is sent when it does");
    }
    if rec.erased {
        return refused("this chat's personal data was erased; it has no transcript now");
    }
    if rec.accepted_at.is_none() {
        return refused("no librarian took this chat: it has no transcript");
    }
    if rec.transcript_to.is_some() {
        return refused("the transcript of this chat has already been asked for");
    }
    // Soon after the end only: then the mailbox's cap, which counts the
    // chats ended in the last day, counts this one too.
    if rec.ended_at.is_some_and(|at| now - at > TRANSCRIPT_AFTER_END) {
        return refused("this chat ended more than an hour ago: its transcript can no longer be sent");
    }
    // A chat its patron was blocked from is not theirs to mail (as at a
    // block's end: no transcript).
    let blocked = db.row("SELECT id AS id FROM blocks WHERE session_id = ?1", args![id.0], |r| r.int("id")).await?;
    if blocked.is_some() {
        return refused("this chat's patron was blocked: it has no transcript");
    }
    let key = mailbox_key(&email);
    db.exec(
        "UPDATE sessions SET transcript_to = ?2, transcript_utc_offset = ?3, transcript_key = ?4 WHERE id = ?1",
        args![id.0, &email, utc_offset.map(i64::from), &key],
    )
    .await?;
    let ended = load_session(db, id).await?;
    let all = all_messages(db, id).await?;
    let mut sent = false;
    if let Some(m) = mail(&ended, &all) {
        // Past the mailbox's day, as at an end: recorded, not sent, and not
        // refused (which would tell a stranger the address had
        // transcripts today).
        if may_mail_transcript(db, id, &m, max, now).await? {
            insert_mail(db, &m, (ended.ctx.question, Some(id)), None, now).await?;
            sent = true;
        } else {
            tracing::info!(session = %id, "a transcript asked after the end past its address's mails for the day: none queued");
        }
    }
    // After the lines the transcript holds: staff are told, truly (once: a
    // chat's transcript is asked for once after its end).
    let message = insert_message(db, &ended, lines::transcript(lines::TranscriptAsk::AfterEnd { sent }), now).await?;
    Ok(((), vec![Event::Message { ctx: ended.ctx, message }]))
}

/// Sets the question's code (R6 decided by `decide`) and says so in the chat.
async fn set_code<D: Db>(
    db: &mut D,
    id: SessionId,
    code: String,
    by: Staff,
    guard: Guard,
    decide: Decide,
    now: Millis,
) -> Result<((QuestionState, Message), Vec<Event>)> {
    let rec = lock_session(db, id).await?;
    guard(&rec)?;
    let question = rec
        .ctx
        .question
        .ok_or_else(|| DomainError::Conflict("this chat has no question yet: accept it first".into()))?;
    let before = question_state(db, question).await?;
    let codes = codes_of(db, rec.ctx.placement.cooperative).await?;
    let after = decide(&before, &rec, &codes)?;
    write_question_state(db, question, &before, &after, &by, now).await?;
    // Read again: the code may have changed the referral, and with it who
    // may see the line (a library referred to no longer does).
    let rec = load_session(db, id).await?;
    let label = codes.iter().find(|k| Some(&k.key) == after.code.as_ref()).map_or(code, |k| k.label.clone());
    let message = insert_message(db, &rec, lines::code_set(&label, &by.display_name), now).await?;
    let events = vec![Event::Message { ctx: rec.ctx, message: message.clone() }];
    Ok(((after, message), events))
}

/// A staff member enters a chat or changes mode (R3, B2).
async fn conference<D: Db>(
    db: &mut D,
    id: SessionId,
    by: Staff,
    mode: ConferenceMode,
    guard: Guard,
    now: Millis,
) -> Result<(SessionRecord, Vec<Event>)> {
    let rec = lock_session(db, id).await?;
    guard(&rec)?;
    // The role the request was judged by must still be the account's: a
    // demotion committed meanwhile took the account out of the chats its
    // new role does not cover, and must not be undone (on PostgreSQL the
    // share lock waits for a change of the account under way).
    let role_of = format!("SELECT role AS role FROM staff WHERE id = ?1{}", db.dialect().for_share());
    if db.row(&role_of, args![by.id.0], |r| r.text("role")).await?.as_deref() != Some(by.role.as_str()) {
        return Err(DomainError::Conflict("your role has changed: sign in again".into()).into());
    }
    let before = rec.ctx.member_mode(by.id);
    if before == Some(mode) {
        return Err(DomainError::Conflict(format!("you are already in this chat in {} mode", mode.as_str())).into());
    }
    db.exec(
        "INSERT INTO session_members (session_id, staff_id, mode, joined_at) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (session_id, staff_id) DO UPDATE SET mode = excluded.mode",
        args![id.0, by.id.0, mode.as_str(), now],
    )
    .await?;
    // For the reports: the member row goes when they leave; this stays.
    db.exec("UPDATE sessions SET conferenced = TRUE WHERE id = ?1", args![id.0]).await?;
    if let Some(q) = rec.ctx.question {
        let change = Change::Conference { staff: by.id, name: by.display_name.clone(), mode: Some(mode) };
        insert_timeline(db, q, now, Some(&by), &change).await?;
    }
    let after = load_session(db, id).await?;
    let message = insert_message(db, &after, lines::conference(&by.display_name, before, mode), now).await?;
    let events = vec![Event::Message { ctx: after.ctx.clone(), message }, Event::SessionChanged(after.summary())];
    Ok((after, events))
}

/// A conference member leaves.
async fn leave<D: Db>(
    db: &mut D,
    id: SessionId,
    by: Staff,
    guard: Guard,
    now: Millis,
) -> Result<(SessionRecord, Vec<Event>)> {
    let rec = lock_session(db, id).await?;
    guard(&rec)?;
    let line = lines::leave(&by.display_name, rec.ctx.member_mode(by.id));
    db.exec("DELETE FROM session_members WHERE session_id = ?1 AND staff_id = ?2", args![id.0, by.id.0]).await?;
    if let Some(q) = rec.ctx.question {
        let change = Change::Conference { staff: by.id, name: by.display_name.clone(), mode: None };
        insert_timeline(db, q, now, Some(&by), &change).await?;
    }
    // The line is written while they are still a member, so that it reaches
    // them too; then the context without them.
    let message = insert_message(db, &rec, line, now).await?;
    let after = load_session(db, id).await?;
    let events = vec![Event::Message { ctx: rec.ctx, message }, Event::SessionChanged(after.summary())];
    Ok((after, events))
}

/// Counts a change of hands for the reports (issue 15) — but a chat put
/// back in line because its librarian left the desk, which no one handed
/// on. The timeline says who and how.
async fn count_handover<D: Db>(db: &mut D, id: SessionId, to: &TransferTo) -> Result<()> {
    if !matches!(to, TransferTo::Queue { left: true, .. }) {
        db.exec("UPDATE sessions SET handovers = handovers + 1 WHERE id = ?1", args![id.0]).await?;
    }
    Ok(())
}

/// The chat changes hands: a take-over or a transfer.
async fn transfer<D: Db>(
    db: &mut D,
    id: SessionId,
    by: Staff,
    handover: Handover,
    guard: Guard,
    now: Millis,
) -> Result<(SessionRecord, Vec<Event>)> {
    let Handover { to, stay, line, note } = handover;
    let rec = lock_session(db, id).await?;
    guard(&rec)?;
    count_handover(db, id, &to).await?;
    let previous = rec.ctx.librarian;
    let mut queue = None;
    let (new_librarian, how) = match &to {
        TransferTo::Staff(s) => {
            // Checked again inside the write (the caller checked before it):
            // a colleague disabled or gone off duty meanwhile would hold a
            // chat nobody answers.
            if s.id != by.id {
                let sql = format!(
                    "SELECT id AS staff_id FROM staff WHERE id = ?1 AND NOT disabled AND availability = 'on_duty'{}",
                    db.dialect().for_update()
                );
                if db.row(&sql, args![s.id.0], |r| r.int("staff_id")).await?.is_none() {
                    return Err(DomainError::Conflict(format!("{} is not on duty", s.display_name)).into());
                }
            }
            db.exec(
                "UPDATE sessions SET librarian_id = ?2, librarian_away_at = NULL WHERE id = ?1 AND state = 'active'",
                args![id.0, s.id.0],
            )
            .await?;
            db.exec("DELETE FROM session_members WHERE session_id = ?1 AND staff_id = ?2", args![id.0, s.id.0]).await?;
            (Some(s.id), if s.id == by.id { Handing::TakeOver } else { Handing::Transfer })
        }
        TransferTo::Queue { library, coop_now, left } => {
            db.exec(
                "UPDATE sessions SET state = 'waiting', librarian_id = NULL, queue_library_id = ?2, queued_at = ?3,
                   queue_coop = ?4, patron_away_at = NULL, librarian_away_at = NULL
                 WHERE id = ?1 AND state = 'active'",
                args![id.0, library.library.0, now, *coop_now],
            )
            .await?;
            queue = Some((library.library, *coop_now, *left));
            (None, Handing::Queue)
        }
    };
    if let Some(prev) = previous.filter(|p| stay && Some(*p) != new_librarian) {
        db.exec(
            "INSERT INTO session_members (session_id, staff_id, mode, joined_at) VALUES (?1, ?2, 'whisper', ?3)
             ON CONFLICT (session_id, staff_id) DO UPDATE SET mode = 'whisper'",
            args![id.0, prev.0, now],
        )
        .await?;
    }
    if let Some(q) = rec.ctx.question {
        let (queue, cooperative, left) = queue.map_or((None, false, false), |(l, c, left)| (Some(l), c, left));
        let change = Change::Librarian { from: previous, to: new_librarian, how, queue, cooperative, left };
        insert_timeline(db, q, now, Some(&by), &change).await?;
    }
    let after = load_session(db, id).await?;
    let ctx = refdesk_domain::visibility::handover_audience(&rec.ctx, rec.librarian_name.as_deref(), &after.ctx);
    let mut events = Vec::new();
    if let Some(note) = note {
        let message = insert_message(db, &after, note, now).await?;
        events.push(Event::Message { ctx: ctx.clone(), message });
    }
    let message = insert_message(db, &after, line, now).await?;
    events.push(Event::Message { ctx, message });
    if after.state == SessionState::Waiting {
        let text = question_text(db, id).await?;
        events.push(Event::QueueAdded(queue_entry(&after, &text, now)));
    }
    events.push(Event::SessionChanged(after.summary()));
    Ok((after, events))
}

/// [`Chats::tell_librarian_desk`]: the line and the mark together, or
/// nothing when the chat changed hands, or another node told it first.
async fn tell_librarian_desk<D: Db>(
    db: &mut D,
    id: SessionId,
    staff: StaffId,
    news: DeskNews,
    (line, max_lines): (NewMessage, u64),
    now: Millis,
) -> Result<(bool, Vec<Event>)> {
    let rec = lock_session(db, id).await?;
    if rec.state != SessionState::Active || rec.ctx.librarian != Some(staff) || rec.last_seq >= max_lines {
        return Ok((false, Vec::new()));
    }
    let marked = match news {
        DeskNews::Gone { not_seen_since } => {
            db.exec(
                "UPDATE sessions SET librarian_away_at = ?3 WHERE id = ?1 AND librarian_away_at IS NULL
                   AND EXISTS (SELECT 1 FROM staff st WHERE st.id = ?2 AND st.last_seen < ?4)",
                args![id.0, staff.0, now, not_seen_since],
            )
            .await?
        }
        DeskNews::Back => {
            db.exec(
                "UPDATE sessions SET librarian_away_at = NULL WHERE id = ?1 AND librarian_away_at IS NOT NULL
                   AND EXISTS (SELECT 1 FROM staff st WHERE st.id = ?2 AND st.last_seen > sessions.librarian_away_at)",
                args![id.0, staff.0],
            )
            .await?
        }
    };
    if marked == 0 {
        return Ok((false, Vec::new()));
    }
    let message = insert_message(db, &rec, line, now).await?;
    Ok((true, vec![Event::Message { ctx: rec.ctx, message }]))
}

/// Marks a waiting chat's patron away since `since` (their last page
/// closed), or back (`None`); a change only, told to the queues. Nothing
/// once the chat no longer waits: its patron is followed otherwise then.
async fn patron_away<D: Db>(db: &mut D, id: SessionId, since: Option<Millis>) -> Result<((), Vec<Event>)> {
    let sql = if since.is_some() {
        "UPDATE sessions SET patron_away_at = ?2 WHERE id = ?1 AND state = 'waiting' AND patron_away_at IS NULL"
    } else {
        "UPDATE sessions SET patron_away_at = ?2 WHERE id = ?1 AND state = 'waiting' AND patron_away_at IS NOT NULL"
    };
    if db.exec(sql, args![id.0, since]).await? == 0 {
        return Ok(((), Vec::new()));
    }
    let rec = load_session(db, id).await?;
    let waiting_since = Some(rec.queued_at);
    Ok(((), vec![Event::PatronAway { session: id, queue: rec.queue, since, waiting_since }]))
}

/// The patron's rating of an ended chat, replacing an earlier one.
async fn rate<D: Db>(db: &mut D, id: SessionId, rating: u8, comment: Option<String>) -> Result<()> {
    // Not from a patron blocked from the chat (as its transcript): the
    // service's ratings are its patrons' word on it, not a blocked one's.
    let blocked = db.row("SELECT id AS id FROM blocks WHERE session_id = ?1", args![id.0], |r| r.int("id")).await?;
    if blocked.is_some() {
        return Err(DomainError::Conflict("this chat's patron was blocked: it takes no rating".into()).into());
    }
    // Not once the chat's personal data is erased: a comment written after
    // it would be kept for good (an erasure is done once).
    let n = db
        .exec(
            "UPDATE sessions SET rating = ?2, rating_comment = ?3 WHERE id = ?1 AND erased_at IS NULL",
            args![id.0, i64::from(rating), &comment],
        )
        .await?;
    if n == 0 {
        let exists = db.row("SELECT id AS id FROM sessions WHERE id = ?1", args![id.0], |r| r.int("id")).await?;
        return Err(match exists {
            Some(_) => {
                DomainError::Conflict("this chat's personal data was erased; it takes no rating now".into()).into()
            }
            None => not_found("session"),
        });
    }
    Ok(())
}

#[async_trait]
impl<B: Backend> Chats for B {
    async fn start_session(&self, new: NewSession) -> Result<(SessionRecord, QueueEntry)> {
        self.write(move |db| Box::pin(start(db, new))).await
    }

    async fn session(&self, id: SessionId) -> Result<Option<SessionRecord>> {
        self.read(move |db| Box::pin(async move { session_where(db, "s.id = ?1", args![id.0]).await })).await
    }

    async fn session_by_token(&self, token_hash: &str) -> Result<Option<SessionRecord>> {
        let token_hash = token_hash.to_owned();
        self.read(move |db| Box::pin(async move { session_where(db, "s.token_hash = ?1", args![&token_hash]).await }))
            .await
    }

    async fn waiting(&self) -> Result<Vec<QueueEntry>> {
        self.read(|db| {
            Box::pin(async move {
                let sql = format!("{QUEUE_SELECT} ORDER BY COALESCE(s.queued_at, s.created_at), s.id");
                db.rows(&sql, &[], sel::queue_entry).await
            })
        })
        .await
    }

    async fn waiting_in(&self, coop: CooperativeId) -> Result<Vec<QueueEntry>> {
        self.read(move |db| {
            Box::pin(async move {
                let order = "ORDER BY COALESCE(s.queued_at, s.created_at), s.id";
                let sql = format!("{QUEUE_SELECT} AND qi.cooperative_id = ?1 {order}");
                db.rows(&sql, args![coop.0], sel::queue_entry).await
            })
        })
        .await
    }

    async fn sessions_of(&self, staff: StaffId) -> Result<Vec<SessionRecord>> {
        self.read(move |db| Box::pin(async move { sessions_where(db, sel::SESSIONS_OF, args![staff.0]).await })).await
    }

    async fn orphaned_chats(&self, before: Millis, limit: u32) -> Result<Vec<(SessionId, StaffId)>> {
        self.read(move |db| {
            Box::pin(async move {
                db.rows(sel::ORPHANED_CHATS, args![before, i64::from(limit)], |r| {
                    Ok((SessionId(r.int("session_id")?), StaffId(r.int("staff_id")?)))
                })
                .await
            })
        })
        .await
    }

    async fn librarians_to_tell(
        &self,
        gone_before: Millis,
        signoff_before: Millis,
        limit: u32,
    ) -> Result<Vec<LibrarianToTell>> {
        self.read(move |db| {
            Box::pin(async move {
                let bound = args![gone_before, signoff_before, i64::from(limit)];
                db.rows(sel::LIBRARIANS_TO_TELL, bound, |r| {
                    Ok(LibrarianToTell {
                        session: SessionId(r.int("session_id")?),
                        staff: StaffId(r.int("staff_id")?),
                        name: r.text("name")?,
                        last_seen: r.int("last_seen")?,
                        gone: r.flag("gone")?,
                    })
                })
                .await
            })
        })
        .await
    }

    async fn tell_librarian_desk(
        &self,
        id: SessionId,
        staff: StaffId,
        news: DeskNews,
        line: NewMessage,
        max_lines: u64,
        now: Millis,
    ) -> Result<bool> {
        self.write(move |db| Box::pin(tell_librarian_desk(db, id, staff, news, (line, max_lines), now))).await
    }

    async fn accept(&self, id: SessionId, by: Staff, guard: Guard, now: Millis) -> Result<(SessionRecord, Message)> {
        self.write(move |db| Box::pin(accept(db, id, by, guard, now))).await
    }

    async fn append(&self, id: SessionId, msg: NewMessage, guard: Guard, now: Millis) -> Result<Appended> {
        Backend::append(self, id, msg, guard, now).await
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
        self.write(move |db| Box::pin(end(db, id, by, guard, mail, ending, now))).await
    }

    async fn set_transcript_to(
        &self,
        id: SessionId,
        email: Option<String>,
        utc_offset: Option<i32>,
        max_lines: u64,
        now: Millis,
    ) -> Result<()> {
        self.write(move |db| Box::pin(set_transcript_to(db, id, email, utc_offset, max_lines, now))).await
    }
    async fn transcript_after_end(
        &self,
        id: SessionId,
        email: String,
        utc_offset: Option<i32>,
        mail: TranscriptMail,
        max_per_recipient_per_day: Option<u32>,
        now: Millis,
    ) -> Result<()> {
        self.write(move |db| {
            Box::pin(transcript_after_end(db, id, email, utc_offset, mail, max_per_recipient_per_day, now))
        })
        .await
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
        self.write(move |db| Box::pin(set_code(db, id, code, by, guard, decide, now))).await
    }

    async fn messages_after(&self, id: SessionId, after: u64, limit: u32) -> Result<Vec<Message>> {
        let after = after.min(i64::MAX as u64) as i64;
        self.read(move |db| {
            Box::pin(async move {
                let sql = format!("{MESSAGE_SELECT} WHERE session_id = ?1 AND seq > ?2 ORDER BY seq LIMIT ?3");
                db.rows(&sql, args![id.0, after, i64::from(limit)], sel::message).await
            })
        })
        .await
    }

    async fn seen_by_patron(&self, id: SessionId, patron_seq: u64) -> Result<(u64, u64)> {
        if patron_seq == 0 {
            return Ok((0, 0));
        }
        let patron_seq = patron_seq.min(i64::MAX as u64) as i64;
        self.read(move |db| {
            Box::pin(async move {
                let numbers = |r: &dyn Cols| Ok((r.int("seq")? as u64, r.int("patron_seq")? as u64));
                match db.row(sel::PATRON_LINE, args![id.0, patron_seq], numbers).await? {
                    Some(line) => Ok(line),
                    None => Ok(db.row(sel::LAST_LINE, args![id.0], numbers).await?.unwrap_or((0, 0))),
                }
            })
        })
        .await
    }

    async fn lines_for_everyone_after(&self, id: SessionId, after: u64, limit: u32) -> Result<Vec<Message>> {
        let after = after.min(i64::MAX as u64) as i64;
        self.read(move |db| {
            Box::pin(async move {
                let sql = format!(
                    "{MESSAGE_SELECT} WHERE session_id = ?1 AND seq > ?2 AND audience = 'everyone' ORDER BY seq LIMIT ?3"
                );
                db.rows(&sql, args![id.0, after, i64::from(limit)], sel::message).await
            })
        })
        .await
    }

    async fn queue_ahead(&self, queue: LibraryId, since: Millis, session: SessionId) -> Result<u64> {
        self.read(move |db| {
            Box::pin(async move {
                let n = int(db, sel::QUEUE_AHEAD, args![queue.0, since, session.0], "n").await?;
                Ok(n.max(0) as u64)
            })
        })
        .await
    }

    async fn patron_away(&self, id: SessionId, since: Option<Millis>) -> Result<()> {
        self.write(move |db| Box::pin(patron_away(db, id, since))).await
    }

    async fn rate(&self, id: SessionId, rating: u8, comment: Option<String>) -> Result<()> {
        self.write(move |db| Box::pin(quiet(rate(db, id, rating, comment)))).await
    }

    async fn idle_sessions(&self, before: Millis) -> Result<Vec<SessionId>> {
        self.read(move |db| {
            Box::pin(async move {
                db.rows(sel::IDLE_SESSIONS, args![before], |r| Ok(SessionId(r.int("session_id")?))).await
            })
        })
        .await
    }

    async fn left_waiting(&self, library: LibraryId, browser: &str) -> Result<Vec<SessionId>> {
        let browser = browser.to_owned();
        self.read(move |db| {
            Box::pin(async move {
                db.rows(sel::LEFT_WAITING, args![library.0, &browser], |r| Ok(SessionId(r.int("session_id")?))).await
            })
        })
        .await
    }

    async fn expired_waiting(&self, before: Millis, limit: u32) -> Result<Vec<SessionId>> {
        self.read(move |db| {
            Box::pin(async move {
                let limit = i64::from(limit);
                db.rows(sel::EXPIRED_WAITING, args![before, limit], |r| Ok(SessionId(r.int("session_id")?))).await
            })
        })
        .await
    }

    async fn live_seen_by(&self, scope: Option<ScopeLevel>, staff: StaffId) -> Result<Vec<SessionRecord>> {
        self.read(move |db| {
            Box::pin(async move {
                // No scope: a library that is none (PostgreSQL wants `?1` used).
                let (within, id) = scope.map_or(("s.library_id = ?1", 0), sel::session_scope);
                let cond = sel::live_seen_by(within);
                sessions_where(db, &cond, args![id, staff.0]).await
            })
        })
        .await
    }

    async fn conference(
        &self,
        id: SessionId,
        by: Staff,
        mode: ConferenceMode,
        guard: Guard,
        now: Millis,
    ) -> Result<SessionRecord> {
        self.write(move |db| Box::pin(conference(db, id, by, mode, guard, now))).await
    }

    async fn leave(&self, id: SessionId, by: Staff, guard: Guard, now: Millis) -> Result<SessionRecord> {
        self.write(move |db| Box::pin(leave(db, id, by, guard, now))).await
    }

    async fn transfer(
        &self,
        id: SessionId,
        by: Staff,
        handover: Handover,
        guard: Guard,
        now: Millis,
    ) -> Result<SessionRecord> {
        self.write(move |db| Box::pin(transfer(db, id, by, handover, guard, now))).await
    }

    async fn rolled_up(&self, after: Millis, upto: Millis, rollup: Millis) -> Result<Vec<QueueEntry>> {
        self.read(move |db| {
            Box::pin(async move {
                let sql = format!(
                    "{QUEUE_SELECT} AND NOT s.queue_coop AND COALESCE(s.queued_at, s.created_at) + ?3 > ?1
                     AND COALESCE(s.queued_at, s.created_at) + ?3 <= ?2 ORDER BY s.queued_at, s.id"
                );
                db.rows(&sql, args![after, upto, rollup], sel::queue_entry).await
            })
        })
        .await
    }

    async fn live_counts(&self) -> Result<Vec<LiveCount>> {
        self.read(|db| {
            Box::pin(async move {
                // `state <> 'ended'` as written in the partial index
                // `sessions_live` (both backends), so that it is the one used.
                let sql = "SELECT l.slug AS slug, s.state AS state, count(*) AS n
                     FROM sessions s JOIN libraries l ON l.id = s.library_id
                     WHERE s.state <> 'ended' GROUP BY l.slug, s.state ORDER BY l.slug";
                let rows = db.rows(sql, &[], |r| Ok((r.text("slug")?, r.text("state")?, r.int("n")?))).await?;
                let mut out: Vec<LiveCount> = Vec::new();
                for (library, state, n) in rows {
                    if out.last().is_none_or(|c| c.library != library) {
                        out.push(LiveCount { library, waiting: 0, active: 0 });
                    }
                    if let Some(count) = out.last_mut() {
                        match state.as_str() {
                            "waiting" => count.waiting = n.max(0) as u64,
                            _ => count.active = n.max(0) as u64,
                        }
                    }
                }
                Ok(out)
            })
        })
        .await
    }
}
