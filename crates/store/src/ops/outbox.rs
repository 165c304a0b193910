//! E-mail waiting to be sent, and the caps on it.

use super::{quiet, Backend};
use crate::api::Outbox;
use crate::sql::rows::{insert_timeline, question_where};
use crate::sql::select::{self as sel, OUTBOX_SELECT};
use crate::sql::{args, Db};
use crate::{MailKind, OutboxMail, OutboxStats, Result};
use async_trait::async_trait;
use refdesk_domain::ids::QuestionId;
use refdesk_domain::question::{Change, QuestionState};
use refdesk_domain::Millis;

/// Takes due e-mail for one mailer until `lease_until`. Several nodes'
/// mailers claim at once on PostgreSQL: each skips rows another holds.
async fn claim<D: Db>(db: &mut D, now: Millis, limit: u32, lease_until: Millis) -> Result<Vec<OutboxMail>> {
    let sql = format!(
        "{OUTBOX_SELECT} WHERE sent_at IS NULL AND next_attempt_at <= ?1 ORDER BY next_attempt_at, id LIMIT ?2{}",
        db.dialect().skip_locked()
    );
    let claimed = db.rows(&sql, args![now, i64::from(limit)], sel::outbox).await?;
    for m in &claimed {
        db.exec("UPDATE outbox SET next_attempt_at = ?2 WHERE id = ?1", args![m.id, lease_until]).await?;
    }
    Ok(claimed)
}

/// Sets an e-mail aside as undeliverable and tells its question: a note
/// in its timeline quoting what the mail server said (its first
/// [`QUOTED_REPLY`] characters: the reply may come from a server the
/// patron runs), and an answer's question flagged for follow-up (its
/// patron has not been answered). Nothing if the e-mail was sent or set
/// aside meanwhile (another node's mailer, once this one's lease ran out).
async fn undeliverable<D: Db>(db: &mut D, id: i64, error: String, now: Millis) -> Result<Option<QuestionId>> {
    let sql = "SELECT COALESCE(o.question_id, q.id) AS question_id, o.kind AS kind, o.to_addr AS to_addr
         FROM outbox o LEFT JOIN questions q ON q.session_id = o.session_id WHERE o.id = ?1";
    let found =
        db.row(sql, args![id], |r| Ok((r.opt_int("question_id")?, r.text("kind")?, r.text("to_addr")?))).await?;
    if let Some((Some(q), _, _)) = &found {
        // Under the chat's lock, as the question list's actions take it:
        // its state is written whole there, and would undo the flag.
        let lock = format!(
            "SELECT s.id AS session_id FROM sessions s JOIN questions q ON q.session_id = s.id WHERE q.id = ?1{}",
            db.dialect().for_update()
        );
        db.row(&lock, args![*q], |r| r.int("session_id")).await?;
    }
    let set_aside = db
        .exec(
            "UPDATE outbox SET attempts = attempts + 1, last_error = ?2, next_attempt_at = ?3
             WHERE id = ?1 AND sent_at IS NULL AND next_attempt_at <> ?3",
            args![id, &error, i64::MAX],
        )
        .await?;
    let Some((Some(q), kind, to)) = found.filter(|_| set_aside > 0) else { return Ok(None) };
    let q = QuestionId(q);
    let answer = MailKind::parse(&kind) == Some(MailKind::Answer);
    let what = if answer { "The answer" } else { "The transcript" };
    let again = if answer { " Answer again, to a corrected address if need be." } else { "" };
    let said: String = error.chars().take(QUOTED_REPLY).collect();
    let cut = if said.len() < error.len() { "…" } else { "" };
    let body =
        format!("{what} e-mailed to {to} could not be delivered; the mail server answered: “{said}{cut}”.{again}");
    insert_timeline(db, q, now, None, &Change::Note { body }).await?;
    if answer {
        let before = question_where(db, q).await?.state;
        let after = QuestionState { follow_up: true, ..before.clone() };
        db.exec("UPDATE questions SET follow_up = ?2 WHERE id = ?1", args![q.0, true]).await?;
        for change in refdesk_domain::question::changes(&before, &after) {
            insert_timeline(db, q, now, None, &change).await?;
        }
    }
    Ok(Some(q))
}

/// How much of a mail server's refusal a question's timeline quotes.
const QUOTED_REPLY: usize = 200;

#[async_trait]
impl<B: Backend> Outbox for B {
    async fn mail_undeliverable(&self, id: i64, error: &str, now: Millis) -> Result<Option<QuestionId>> {
        let error = error.to_owned();
        self.write(move |db| Box::pin(quiet(undeliverable(db, id, error, now)))).await
    }

    async fn due_mail(&self, now: Millis, limit: u32) -> Result<Vec<OutboxMail>> {
        self.read(move |db| {
            Box::pin(async move {
                let sql = format!(
                    "{OUTBOX_SELECT} WHERE sent_at IS NULL AND next_attempt_at <= ?1 ORDER BY next_attempt_at, id LIMIT ?2"
                );
                db.rows(&sql, args![now, i64::from(limit)], sel::outbox).await
            })
        })
        .await
    }

    async fn claim_mail(&self, now: Millis, limit: u32, lease_until: Millis) -> Result<Vec<OutboxMail>> {
        self.write(move |db| Box::pin(quiet(claim(db, now, limit, lease_until)))).await
    }

    async fn mail_sent(&self, id: i64, now: Millis) -> Result<()> {
        self.write(move |db| {
            Box::pin(quiet(async move {
                db.exec(
                    "UPDATE outbox SET sent_at = ?2, attempts = attempts + 1, last_error = NULL WHERE id = ?1",
                    args![id, now],
                )
                .await?;
                Ok(())
            }))
        })
        .await
    }

    async fn mail_failed(&self, id: i64, error: &str, retry_at: Millis) -> Result<()> {
        let error = error.to_owned();
        self.write(move |db| {
            Box::pin(quiet(async move {
                db.exec(
                    "UPDATE outbox SET attempts = attempts + 1, last_error = ?2, next_attempt_at = ?3
                     WHERE id = ?1 AND sent_at IS NULL",
                    args![id, &error, retry_at],
                )
                .await?;
                Ok(())
            }))
        })
        .await
    }

    async fn mail(&self, id: i64) -> Result<Option<OutboxMail>> {
        self.read(move |db| {
            Box::pin(async move { db.row(&format!("{OUTBOX_SELECT} WHERE id = ?1"), args![id], sel::outbox).await })
        })
        .await
    }

    async fn next_mail_due(&self) -> Result<Option<Millis>> {
        self.read(|db| {
            Box::pin(async move {
                let sql = "SELECT min(next_attempt_at) AS next_attempt_at FROM outbox WHERE sent_at IS NULL";
                Ok(db.row(sql, &[], |r| r.opt_int("next_attempt_at")).await?.flatten())
            })
        })
        .await
    }

    async fn outbox_stats(&self) -> Result<OutboxStats> {
        self.read(|db| {
            Box::pin(async move {
                // Mail the server refused for good waits at `i64::MAX`: it is
                // no backlog, and must not age the figure for ever.
                let sql = "SELECT count(*) AS unsent, min(created_at) AS oldest FROM outbox
                           WHERE sent_at IS NULL AND next_attempt_at < 9223372036854775807";
                let row = db.row(sql, &[], |r| Ok((r.int("unsent")?, r.opt_int("oldest")?))).await?;
                let (unsent, oldest) = row.unwrap_or((0, None));
                Ok(OutboxStats { unsent: unsent.max(0) as u64, oldest_queued_at: oldest })
            })
        })
        .await
    }
}
