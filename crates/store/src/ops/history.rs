//! Loading past history in bulk ([`History`]): ended chats and forms with
//! their questions, first messages and conference members, hundreds of
//! rows per `INSERT` and thousands per write. It exists for the reports'
//! benchmark (a year of a large cooperative, docs/performance.md) and for
//! records brought over from another service.
//!
//! It must never carry live chats: it skips everything a chat's own
//! operations do besides storing rows (the session lock, guards, events,
//! timeline entries, e-mail), which is what makes a million chats load in
//! minutes.

use super::{quiet, Backend};
use crate::api::History;
use crate::sql::{Arg, Db, Dialect};
use crate::{PastSession, Result, StoreError};
use async_trait::async_trait;
use refdesk_domain::chat::MessageKind;
use std::borrow::Cow;
use std::collections::HashMap;

/// Rows per `INSERT`: a few thousand placeholders, well under SQLite's
/// limit (32,766) and PostgreSQL's (65,535). Every full chunk is the same
/// statement, so each backend prepares it once.
const ROWS: usize = 500;

const SESSION_COLUMNS: &str = "sessions (library_id, token_hash, state, patron_name, patron_email, question_text,
    librarian_id, created_at, accepted_at, ended_at, queued_at, by_form, ended_by, handovers,
    practice, rating, rating_comment)";
const QUESTION_COLUMNS: &str = "questions (session_id, library_id, text, status, code, assignee_id, follow_up,
    referred_to, exclude_from_stats, read_scale, created_at)";
const MESSAGE_COLUMNS: &str =
    "messages (session_id, seq, patron_seq, kind, audience, author_kind, author_name, sender, body, at)";
const MEMBER_COLUMNS: &str = "session_members (session_id, staff_id, mode, joined_at)";

/// `(?1, ?2), (?3, ?4)` for 2 rows of 2 columns.
fn placeholders(rows: usize, cols: usize) -> String {
    let row = |r: usize| {
        let cells: Vec<String> = (1..=cols).map(|c| format!("?{}", r * cols + c)).collect();
        format!("({})", cells.join(", "))
    };
    (0..rows).map(row).collect::<Vec<_>>().join(", ")
}

/// Inserts `args`, `cols` to a row, [`ROWS`] rows per statement.
async fn insert_all<D: Db>(db: &mut D, into: &str, cols: usize, args: &[Arg<'_>]) -> Result<()> {
    for chunk in args.chunks(ROWS * cols) {
        let sql = format!("INSERT INTO {into} VALUES {}", placeholders(chunk.len() / cols, cols));
        db.exec(&sql, chunk).await?;
    }
    Ok(())
}

fn session_args(s: &PastSession) -> [Arg<'_>; 17] {
    let practice = s.question.as_ref().is_some_and(|(_, q)| q.exclude_from_stats);
    let (rating, comment) = match &s.rating {
        Some((r, c)) => (Some(i64::from(*r)), c.as_deref()),
        None => (None, None),
    };
    [
        Arg::Int(s.library.0),
        Arg::from(&s.token_hash),
        Arg::from("ended"),
        Arg::from(&s.patron_name),
        Arg::from(&s.patron_email),
        Arg::from(&s.question_text),
        Arg::from(s.accepted.map(|(by, _)| by.0)),
        Arg::Int(s.created_at),
        Arg::from(s.accepted.map(|(_, at)| at)),
        Arg::Int(s.ended_at),
        Arg::Int(s.created_at),
        Arg::Bool(s.by_form),
        Arg::from(s.ended_by.map(|e| e.as_str())),
        Arg::Int(s.handovers),
        Arg::Bool(practice),
        Arg::from(rating),
        Arg::from(comment),
    ]
}

/// Inserts the sessions; their ids, in order. The ids come back with the
/// token hashes: neither backend promises `RETURNING` rows in the order of
/// the `VALUES`.
async fn insert_sessions<D: Db>(db: &mut D, sessions: &[PastSession]) -> Result<Vec<i64>> {
    let mut ids = Vec::with_capacity(sessions.len());
    for chunk in sessions.chunks(ROWS) {
        let args: Vec<Arg<'_>> = chunk.iter().flat_map(session_args).collect();
        let sql = format!(
            "INSERT INTO {SESSION_COLUMNS} VALUES {} RETURNING id AS session_id, token_hash AS token_hash",
            placeholders(chunk.len(), 17)
        );
        let made: HashMap<String, i64> =
            db.rows(&sql, &args, |r| Ok((r.text("token_hash")?, r.int("session_id")?))).await?.into_iter().collect();
        for s in chunk {
            let id = made.get(&s.token_hash).ok_or_else(|| StoreError::backend("an imported session went missing"))?;
            ids.push(*id);
        }
    }
    Ok(ids)
}

fn question_args(id: i64, s: &PastSession) -> Option<[Arg<'_>; 11]> {
    let (at, q) = s.question.as_ref()?;
    Some([
        Arg::Int(id),
        Arg::Int(s.library.0),
        Arg::from(&s.question_text),
        Arg::from(q.status.as_str()),
        Arg::from(&q.code),
        Arg::from(q.assignee.map(|a| a.0)),
        Arg::Bool(q.follow_up),
        Arg::from(q.referred_to.map(|l| l.0)),
        Arg::Bool(q.exclude_from_stats),
        Arg::from(q.read_scale.map(i64::from)),
        Arg::Int(*at),
    ])
}

/// The patron's question as the chat's first line, as a live chat starts.
fn message_args(id: i64, s: &PastSession) -> [Arg<'_>; 10] {
    let kind = MessageKind::Message;
    // The question, the chat's first line and its patron's.
    [
        Arg::Int(id),
        Arg::Int(1),
        Arg::Int(1),
        Arg::from(kind.as_str()),
        Arg::from(kind.audience().as_str()),
        Arg::from("patron"),
        Arg::Text(Cow::Borrowed(s.patron_name.as_deref().unwrap_or("Patron"))),
        Arg::from("patron"),
        Arg::from(&s.question_text),
        Arg::Int(s.created_at),
    ]
}

async fn import<D: Db>(db: &mut D, sessions: Vec<PastSession>) -> Result<u64> {
    let ids = insert_sessions(db, &sessions).await?;
    let pairs = || ids.iter().copied().zip(&sessions);
    let questions: Vec<Arg<'_>> = pairs().filter_map(|(id, s)| question_args(id, s)).flatten().collect();
    insert_all(db, QUESTION_COLUMNS, 11, &questions).await?;
    let messages: Vec<Arg<'_>> = pairs().flat_map(|(id, s)| message_args(id, s)).collect();
    insert_all(db, MESSAGE_COLUMNS, 10, &messages).await?;
    let members: Vec<Arg<'_>> = pairs()
        .flat_map(|(id, s)| s.members.iter().map(move |(staff, mode, at)| (id, staff, mode, at)))
        .flat_map(|(id, staff, mode, at)| [Arg::Int(id), Arg::Int(staff.0), Arg::from(mode.as_str()), Arg::Int(*at)])
        .collect();
    insert_all(db, MEMBER_COLUMNS, 4, &members).await?;
    Ok(ids.len() as u64)
}

#[async_trait]
impl<B: Backend> History for B {
    async fn import_history(&self, sessions: Vec<PastSession>) -> Result<u64> {
        self.write(move |db| Box::pin(quiet(import(db, sessions)))).await
    }

    async fn analyze(&self) -> Result<()> {
        // VACUUM runs outside any transaction, so on PostgreSQL on a read
        // connection; SQLite's ANALYZE writes its statistics table, so
        // there it is a write.
        let vacuumed = self
            .read(|db| {
                Box::pin(async move {
                    if db.dialect() != Dialect::Postgres {
                        return Ok(false);
                    }
                    db.exec("VACUUM ANALYZE", &[]).await?;
                    Ok(true)
                })
            })
            .await?;
        if !vacuumed {
            self.write(|db| Box::pin(quiet(async move { db.exec("ANALYZE", &[]).await.map(|_| ()) }))).await?;
        }
        Ok(())
    }

    async fn database_size(&self) -> Result<u64> {
        self.read(|db| {
            Box::pin(async move {
                let sql = match db.dialect() {
                    Dialect::Sqlite => {
                        "SELECT page_count * page_size AS n FROM pragma_page_count(), pragma_page_size()"
                    }
                    Dialect::Postgres => "SELECT pg_database_size(current_database()) AS n",
                };
                Ok(crate::sql::int(db, sql, &[], "n").await?.max(0) as u64)
            })
        })
        .await
    }
}
