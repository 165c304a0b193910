//! Patron privacy (issue 15): retention periods, erasing a chat's personal
//! data, and the audit list.
//!
//! Erasing keeps every column the reports count (times, libraries, staff,
//! codes, ratings), so the figures are the same after as before. What goes:
//! the patron's name, e-mail address and transcript address, the browser
//! and network digests (an IPv4 address can be found again from its
//! digest), the e-mail kept in the outbox. What stays is masked
//! ([`refdesk_domain::privacy::mask`]): the question, the messages (or,
//! when the library deletes transcripts, the first line only, and the last
//! line's number under a fixed text), the rating comment and the
//! timeline's texts.

use super::{quiet, Backend};
use crate::api::Privacy;
use crate::sql::rows::{lock_session, not_found};
use crate::sql::{args, within, Db};
use crate::{Erasure, ErasureReason, PatronSession, PrivacyEntry, Redone, Result, StoreError};
use async_trait::async_trait;
use refdesk_domain::chat::SessionState;
use refdesk_domain::ids::{LibraryId, QuestionId, SessionId, StaffId};
use refdesk_domain::privacy::{mask, mask_change, mask_refdesks_change, Retention, Transcripts, DELETED, PATRON};
use refdesk_domain::question::Change;
use refdesk_domain::{DomainError, Millis};
use std::collections::BTreeMap;

/// Masks the messages left of a chat; with `Delete`, only its first line
/// (the question) is left, and its last line's number. That stays because
/// a chat's next sequence number is its last line's plus one
/// (`rows::insert_message`) and an ended chat still takes lines (a code
/// set, a question-list action): without it, the next line would take a
/// number its viewers already had for another (I3). What the last line
/// said goes (it may be a librarian's note about the patron, which masking
/// alone would not clear): it becomes refdesk's, saying [`DELETED`].
async fn erase_messages<D: Db>(db: &mut D, id: SessionId, how: Transcripts, name: Option<&str>) -> Result<()> {
    if how == Transcripts::Delete {
        db.exec(
            "DELETE FROM messages WHERE session_id = ?1 AND seq > 1
               AND seq < (SELECT max(last.seq) FROM messages last WHERE last.session_id = ?1)",
            args![id.0],
        )
        .await?;
        db.exec(
            "UPDATE messages SET kind = 'system', author_kind = 'system', author_id = NULL, author_name = 'refdesk',
               sender = 'system', client_id = NULL, body = ?2, system = NULL
             WHERE session_id = ?1 AND seq > 1",
            args![id.0, DELETED],
        )
        .await?;
    }
    let lines = db
        .rows(
            "SELECT seq AS seq, body AS body, author_kind AS author_kind FROM messages WHERE session_id = ?1",
            args![id.0],
            |r| Ok((r.int("seq")?, r.text("body")?, r.text("author_kind")? == "system")),
        )
        .await?;
    for (seq, body, refdesks) in lines {
        // refdesk's own lines name staff, libraries and codes, never the
        // patron: their words are not the patron's name's, whatever it is.
        let masked = mask(&body, if refdesks { None } else { name });
        if masked != body {
            db.exec("UPDATE messages SET body = ?3 WHERE session_id = ?1 AND seq = ?2", args![id.0, seq, &masked])
                .await?;
        }
    }
    db.exec(
        "UPDATE messages SET author_name = ?2 WHERE session_id = ?1 AND author_kind = 'patron'",
        args![id.0, PATRON],
    )
    .await?;
    Ok(())
}

/// Masks a question's text and its timeline entries.
async fn erase_question<D: Db>(db: &mut D, q: QuestionId, name: Option<&str>) -> Result<()> {
    let text = db
        .row("SELECT text AS text FROM questions WHERE id = ?1", args![q.0], |r| r.text("text"))
        .await?
        .ok_or(not_found("question"))?;
    db.exec("UPDATE questions SET text = ?2 WHERE id = ?1", args![q.0, &mask(&text, name)]).await?;
    let entries = db
        .rows(
            "SELECT id AS id, change AS change, actor_id AS actor_id FROM timeline WHERE question_id = ?1",
            args![q.0],
            |r| Ok((r.int("id")?, r.text("change")?, r.opt_int("actor_id")?)),
        )
        .await?;
    for (id, json, actor) in entries {
        let change: Change = serde_json::from_str(&json)
            .map_err(|e| StoreError::backend(format!("unreadable timeline entry {id}: {e}")))?;
        // refdesk's own entries (no actor) are its sentences: their words are
        // not the patron's name's ("Missed chat" for a Mia Missed), but what
        // they quote (a mail server's reply) may be.
        let masked = match actor {
            Some(_) => mask_change(&change, name),
            None => mask_refdesks_change(&change, name),
        };
        if masked != change {
            let json =
                serde_json::to_string(&masked).map_err(|e| StoreError::failed("encoding a timeline entry", e))?;
            db.exec("UPDATE timeline SET change = ?2 WHERE id = ?1", args![id, &json]).await?;
        }
    }
    db.exec(OUTBOX_OF_QUESTION, args![q.0]).await?;
    db.exec("DELETE FROM answer_addresses WHERE question_id = ?1", args![q.0]).await?;
    Ok(())
}

/// Erases one ended chat's personal data; its library, or `None` if it was
/// erased before.
async fn erase_one<D: Db>(db: &mut D, id: SessionId, how: Transcripts, now: Millis) -> Result<Option<LibraryId>> {
    let rec = lock_session(db, id).await?;
    if rec.state != SessionState::Ended {
        let why = format!("chat {} is still going on: end it before erasing it", id.0);
        return Err(DomainError::Conflict(why).into());
    }
    let (erased, question, comment) = db
        .row(
            "SELECT erased_at AS erased_at, question_text AS question_text, rating_comment AS rating_comment
             FROM sessions WHERE id = ?1",
            args![id.0],
            |r| Ok((r.opt_int("erased_at")?, r.text("question_text")?, r.opt_text("rating_comment")?)),
        )
        .await?
        .ok_or(not_found("session"))?;
    if erased.is_some() {
        return Ok(None);
    }
    let name = rec.patron_name.as_deref();
    erase_messages(db, id, how, name).await?;
    if let Some(q) = rec.ctx.question {
        erase_question(db, q, name).await?;
    }
    db.exec(
        "UPDATE sessions SET patron_name = NULL, patron_email = NULL, transcript_to = NULL, transcript_key = NULL,
           browser_key = NULL,
           transcript_utc_offset = NULL, net_key = NULL, net56_key = NULL, net48_key = NULL, question_text = ?2, rating_comment = ?3, erased_at = ?4,
           token_hash = ?5
         WHERE id = ?1",
        // The patron's token opens nothing any more (a page on a shared
        // computer kept it): what replaces its digest is no digest of any.
        args![id.0, &mask(&question, name), &comment.map(|c| mask(&c, name)), now, &format!("erased:{}", id.0)],
    )
    .await?;
    db.exec(OUTBOX_OF_SESSION, args![id.0]).await?;
    // A block still in force keeps its digests until it runs out (the
    // patron was abusive): `forget_spent_blocks` takes them then. Its
    // reason, which a librarian wrote, is masked now.
    let blocks = db.rows(BLOCKS_OF_SESSION, args![id.0], |r| Ok((r.int("id")?, r.text("reason")?))).await?;
    for (block, reason) in blocks {
        db.exec("UPDATE blocks SET reason = ?2 WHERE id = ?1", args![block, &mask(&reason, name)]).await?;
    }
    forget_spent_blocks(db, Some(id), now).await?;
    Ok(Some(rec.ctx.placement.library))
}

/// Takes the digests out of blocks that ran out or were lifted, of erased
/// chats (of `session` only, if given). Returns how many blocks.
async fn forget_spent_blocks<D: Db>(db: &mut D, session: Option<SessionId>, now: Millis) -> Result<u64> {
    db.exec(&forget_spent(session.is_some()), args![now, session.map(|s| s.0)]).await
}

/// An erased chat's mails, and its question's (each through its index:
/// the retention round erases thousands of chats, inside the one writer).
pub(crate) const OUTBOX_OF_SESSION: &str = "DELETE FROM outbox WHERE session_id = ?1";
pub(crate) const OUTBOX_OF_QUESTION: &str = "DELETE FROM outbox WHERE question_id = ?1";
async fn forget_sent_mail<D: Db>(db: &mut D, before: Millis, limit: u32) -> Result<u64> {
    db.exec(SENT_MAIL_BEFORE, args![before, i64::from(limit)]).await
}

/// Delivered e-mails, the oldest first, through their index (binds
/// before, how many at most).
pub(crate) const SENT_MAIL_BEFORE: &str = "DELETE FROM outbox WHERE id IN
     (SELECT id FROM outbox WHERE sent_at IS NOT NULL AND sent_at < ?1 ORDER BY sent_at LIMIT ?2)";
/// The blocks of a chat (binds it).
pub(crate) const BLOCKS_OF_SESSION: &str = "SELECT id AS id, reason AS reason FROM blocks WHERE session_id = ?1";

/// [`forget_spent_blocks`]' statement (binds now, then the session if
/// `one`; each block's chat found by its key, not by listing every erased
/// chat).
pub(crate) fn forget_spent(one: bool) -> String {
    let which = if one { "session_id = ?2" } else { "?2 IS NULL" };
    format!(
        "UPDATE blocks SET browser_key = NULL, net_key = NULL
         WHERE (browser_key IS NOT NULL OR net_key IS NOT NULL) AND (lifted_at IS NOT NULL OR expires_at <= ?1)
           AND {which} AND EXISTS (SELECT 1 FROM sessions s WHERE s.id = blocks.session_id AND s.erased_at IS NOT NULL)"
    )
}

/// The chats of `libraries` an address was given or used on: as the
/// patron's, as the transcript's, or where an answer was e-mailed (a
/// librarian may answer to an address the patron gave in the chat). Each
/// row says which address it was found by, newest chat first; a chat may
/// come once for each. Each branch says its column is set, so that SQLite
/// takes the partial indexes of the addresses.
///
/// Binds the address, compared in any ASCII letter case (through the
/// addresses' indexes); with `pattern`, a `LIKE` pattern instead (see
/// [`AddressQuery`]), which reads every address.
pub(crate) fn patron_sessions_sql(libraries: &[LibraryId], pattern: bool) -> String {
    let is = |column: &str| {
        if pattern {
            format!("lower({column}) LIKE ?1 ESCAPE '\\'")
        } else {
            format!("lower({column}) = lower(?1)")
        }
    };
    format!(
        "SELECT s.id AS session_id, q.id AS question_id, s.library_id AS library_id,
                s.created_at AS created_at, s.state AS state, s.patron_name AS patron_name,
                substr(s.question_text, 1, {QUESTION_SHOWN}) AS question_text, hit.address AS address
         FROM (SELECT id AS session_id, patron_email AS address FROM sessions
                 WHERE patron_email IS NOT NULL AND {}
               UNION ALL
               SELECT id, transcript_to FROM sessions WHERE transcript_to IS NOT NULL AND {}
               UNION ALL
               SELECT aq.session_id, a.address FROM answer_addresses a JOIN questions aq ON aq.id = a.question_id
                 WHERE {}) hit
         JOIN sessions s ON s.id = hit.session_id LEFT JOIN questions q ON q.session_id = s.id
         WHERE {}
         ORDER BY s.created_at DESC, s.id DESC LIMIT {}",
        is("patron_email"),
        is("transcript_to"),
        is("a.address"),
        within("s.library_id", libraries),
        // A pattern's candidates include some that Rust's folding then
        // drops: room for many more.
        (if pattern { 30 } else { 3 }) * PATRON_SESSIONS_MAX
    )
}

/// The most chats [`Privacy::patron_sessions`] lists.
const PATRON_SESSIONS_MAX: usize = 1000;
/// The characters of each chat's question it lists: enough to tell the
/// chats apart, not a whole question for each of thousands of candidates.
pub const QUESTION_SHOWN: usize = 200;

/// How the stores look an address up, so that both find the same chats.
/// SQLite's `lower` folds ASCII letters alone (it is built without ICU),
/// PostgreSQL's by its locale: the stores find the candidates, and Rust's
/// Unicode folding ([`fold`]) decides. An address in ASCII (nearly all) is
/// compared in the indexes; one with other letters is matched as a
/// `LIKE` pattern in which each run of them may be anything.
pub(crate) enum AddressQuery {
    /// ASCII: compared with `lower(…) = lower(?1)`.
    Exact(String),
    /// Not ASCII: a pattern for `lower(…) LIKE ?1`.
    Pattern(String),
}

impl AddressQuery {
    pub(crate) fn new(address: &str) -> AddressQuery {
        if address.is_ascii() {
            return AddressQuery::Exact(address.to_owned());
        }
        let mut pattern = String::with_capacity(address.len());
        for c in address.chars() {
            match c {
                '%' | '_' | '\\' => {
                    pattern.push('\\');
                    pattern.push(c);
                }
                c if c.is_ascii() => pattern.push(c.to_ascii_lowercase()),
                // Any run of other letters: its lower case may be longer
                // (İ is i and a dot), or the database may count bytes.
                _ if pattern.ends_with('%') && !pattern.ends_with("\\%") => {}
                _ => pattern.push('%'),
            }
        }
        AddressQuery::Pattern(pattern)
    }
}

/// An address as compared when erasing by address: trimmed, in lower case
/// by Unicode's rules.
pub(crate) fn fold(address: &str) -> String {
    address.trim().to_lowercase()
}

async fn erase<D: Db>(
    db: &mut D,
    mut sessions: Vec<SessionId>,
    how: Transcripts,
    why: ErasureReason,
    now: Millis,
) -> Result<u64> {
    // Always in one order, so that two erasures never wait on each other.
    sessions.sort_by_key(|s| s.0);
    sessions.dedup();
    let mut per_library: BTreeMap<i64, i64> = BTreeMap::new();
    for id in sessions {
        if let Some(library) = erase_one(db, id, how, now).await? {
            *per_library.entry(library.0).or_default() += 1;
        }
    }
    let (action, by) = match why {
        ErasureReason::Retention => ("retention", None),
        ErasureReason::Request(by) => ("erase", Some(by.0)),
        ErasureReason::Redone(by) => ("redo", by.map(|b| b.0)),
    };
    for (library, n) in &per_library {
        db.exec(
            "INSERT INTO privacy_log (library_id, at, action, actor_id, sessions, transcripts)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            args![*library, now, action, by, *n, how.as_str()],
        )
        .await?;
    }
    Ok(per_library.values().sum::<i64>() as u64)
}

/// See [`Privacy::redo_erasures`].
async fn redo<D: Db>(
    db: &mut D,
    chats: Vec<(SessionId, Millis)>,
    how: Transcripts,
    by: (StaffId, String),
    now: Millis,
) -> Result<Redone> {
    let mut due = Vec::new();
    let mut waiting = Vec::new();
    for (id, started) in chats {
        let sql = "SELECT created_at AS created_at, state AS state, erased_at AS erased_at FROM sessions WHERE id = ?1";
        let found =
            db.row(sql, args![id.0], |r| Ok((r.int("created_at")?, r.text("state")?, r.opt_int("erased_at")?))).await?;
        match found {
            Some((created, state, None)) if created == started => match SessionState::parse(&state) {
                Some(SessionState::Ended) => due.push(id),
                _ => waiting.push(id),
            },
            _ => {}
        }
    }
    if due.is_empty() {
        return Ok(Redone { erased: Vec::new(), waiting });
    }
    // The audit list names the admin only if the account is in this
    // database (one made after the backup is not; its id may be another's).
    let (by, username) = by;
    let sql = "SELECT id AS id FROM staff WHERE id = ?1 AND username = ?2";
    let known = db.row(sql, args![by.0, username.as_str()], |r| r.int("id")).await?;
    erase(db, due.clone(), how, ErasureReason::Redone(known.map(StaffId)), now).await?;
    Ok(Redone { erased: due, waiting })
}

fn transcripts(r: &dyn crate::sql::Cols, column: &str) -> Result<Transcripts> {
    let t = r.text(column)?;
    Transcripts::parse(&t).ok_or_else(|| StoreError::backend(format!("unknown transcripts setting {t:?}")))
}

fn retention_row(r: &dyn crate::sql::Cols) -> Result<Retention> {
    let days = r.int("days")?;
    Ok(Retention {
        days: u32::try_from(days).map_err(|_| StoreError::backend(format!("bad retention days {days}")))?,
        transcripts: transcripts(r, "transcripts")?,
    })
}

async fn set_retention<D: Db>(
    db: &mut D,
    library: LibraryId,
    r: Option<Retention>,
    by: StaffId,
    now: Millis,
) -> Result<()> {
    let found = db.row("SELECT id AS id FROM libraries WHERE id = ?1", args![library.0], |r| r.int("id")).await?;
    found.ok_or(not_found("library"))?;
    match r {
        None => db.exec("DELETE FROM retention WHERE library_id = ?1", args![library.0]).await?,
        Some(r) => {
            db.exec(
                "INSERT INTO retention (library_id, days, transcripts, updated_at, updated_by)
                 VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT (library_id) DO UPDATE SET days = excluded.days, transcripts = excluded.transcripts,
                   updated_at = excluded.updated_at, updated_by = excluded.updated_by",
                args![library.0, i64::from(r.days), r.transcripts.as_str(), now, by.0],
            )
            .await?
        }
    };
    Ok(())
}

fn patron_session(r: &dyn crate::sql::Cols) -> Result<PatronSession> {
    let state = r.text("state")?;
    Ok(PatronSession {
        session: SessionId(r.int("session_id")?),
        question: r.opt_int("question_id")?.map(QuestionId),
        library: LibraryId(r.int("library_id")?),
        created_at: r.int("created_at")?,
        state: SessionState::parse(&state).ok_or_else(|| StoreError::backend(format!("unknown state {state:?}")))?,
        patron_name: r.opt_text("patron_name")?,
        question_text: r.text("question_text")?,
    })
}

fn privacy_entry(r: &dyn crate::sql::Cols) -> Result<PrivacyEntry> {
    Ok(PrivacyEntry {
        id: r.int("id")?,
        at: r.int("at")?,
        library: LibraryId(r.int("library_id")?),
        action: r.text("action")?,
        by: r.opt_int("actor_id")?.map(StaffId),
        sessions: r.int("sessions")?,
        transcripts: match r.opt_text("transcripts")? {
            Some(_) => Some(transcripts(r, "transcripts")?),
            None => None,
        },
    })
}

#[async_trait]
impl<B: Backend> Privacy for B {
    async fn retention(&self, library: LibraryId) -> Result<Option<Retention>> {
        self.read(move |db| {
            Box::pin(async move {
                let sql = "SELECT days AS days, transcripts AS transcripts FROM retention WHERE library_id = ?1";
                db.row(sql, args![library.0], retention_row).await
            })
        })
        .await
    }

    async fn set_retention(&self, library: LibraryId, r: Option<Retention>, by: StaffId, now: Millis) -> Result<()> {
        self.write(move |db| Box::pin(quiet(set_retention(db, library, r, by, now)))).await
    }

    async fn retentions(&self) -> Result<Vec<(LibraryId, Retention)>> {
        self.read(move |db| {
            Box::pin(async move {
                let sql = "SELECT library_id AS library_id, days AS days, transcripts AS transcripts FROM retention
                           ORDER BY library_id";
                db.rows(sql, args![], |r| Ok((LibraryId(r.int("library_id")?), retention_row(r)?))).await
            })
        })
        .await
    }

    async fn due_for_erasure(&self, library: LibraryId, before: Millis, limit: u32) -> Result<Vec<SessionId>> {
        self.read(move |db| {
            Box::pin(async move {
                let sql = "SELECT id AS id FROM sessions
                           WHERE library_id = ?1 AND erased_at IS NULL AND created_at < ?2 AND state = 'ended'
                           ORDER BY created_at, id LIMIT ?3";
                db.rows(sql, args![library.0, before, i64::from(limit)], |r| Ok(SessionId(r.int("id")?))).await
            })
        })
        .await
    }

    async fn erase(&self, sessions: Vec<SessionId>, how: Transcripts, why: ErasureReason, now: Millis) -> Result<u64> {
        self.write(move |db| Box::pin(quiet(erase(db, sessions, how, why, now)))).await
    }

    async fn redo_erasures(
        &self,
        chats: Vec<(SessionId, Millis)>,
        how: Transcripts,
        by: (StaffId, String),
        now: Millis,
    ) -> Result<Redone> {
        self.write(move |db| Box::pin(quiet(redo(db, chats, how, by, now)))).await
    }

    async fn forget_spent_blocks(&self, now: Millis) -> Result<u64> {
        self.write(move |db| Box::pin(quiet(forget_spent_blocks(db, None, now)))).await
    }

    async fn forget_sent_mail(&self, before: Millis, limit: u32) -> Result<u64> {
        self.write(move |db| Box::pin(quiet(forget_sent_mail(db, before, limit)))).await
    }

    async fn patron_sessions(&self, email: &str, libraries: Vec<LibraryId>) -> Result<Vec<PatronSession>> {
        let wanted = fold(email);
        let (sql, bound) = match AddressQuery::new(email.trim()) {
            AddressQuery::Exact(a) => (patron_sessions_sql(&libraries, false), a),
            AddressQuery::Pattern(p) => (patron_sessions_sql(&libraries, true), p),
        };
        let hits = self
            .read_long(move |db| {
                Box::pin(
                    async move { db.rows(&sql, args![&bound], |r| Ok((patron_session(r)?, r.text("address")?))).await },
                )
            })
            .await?;
        let mut found: Vec<PatronSession> = Vec::new();
        for (chat, address) in hits {
            if fold(&address) == wanted && !found.iter().any(|f| f.session == chat.session) {
                found.push(chat);
            }
        }
        found.truncate(PATRON_SESSIONS_MAX);
        Ok(found)
    }

    async fn erasure_of(&self, session: SessionId) -> Result<Option<Erasure>> {
        self.read(move |db| {
            Box::pin(async move {
                // One erasure writes its time on each chat and on its
                // library's entry of the audit list.
                let sql = "SELECT s.erased_at AS at, pl.action AS action, pl.transcripts AS transcripts,
                            st.display_name AS by_name
                     FROM sessions s
                     LEFT JOIN privacy_log pl ON pl.id = (SELECT p.id FROM privacy_log p
                       WHERE p.library_id = s.library_id AND p.at = s.erased_at ORDER BY p.id DESC LIMIT 1)
                     LEFT JOIN staff st ON st.id = pl.actor_id
                     WHERE s.id = ?1 AND s.erased_at IS NOT NULL";
                db.row(sql, args![session.0], |r| {
                    Ok(Erasure {
                        at: r.int("at")?,
                        action: r.opt_text("action")?,
                        transcripts: match r.opt_text("transcripts")? {
                            Some(_) => Some(transcripts(r, "transcripts")?),
                            None => None,
                        },
                        by_name: r.opt_text("by_name")?,
                    })
                })
                .await
            })
        })
        .await
    }

    async fn privacy_log(&self, libraries: Vec<LibraryId>, limit: u32) -> Result<Vec<PrivacyEntry>> {
        self.read(move |db| {
            Box::pin(async move {
                let sql = format!(
                    "SELECT id AS id, at AS at, library_id AS library_id, action AS action, actor_id AS actor_id,
                            sessions AS sessions, transcripts AS transcripts
                     FROM privacy_log WHERE {} ORDER BY id DESC LIMIT ?1",
                    within("library_id", &libraries)
                );
                db.rows(&sql, args![i64::from(limit)], privacy_entry).await
            })
        })
        .await
    }
}
