//! E-mail waiting to be sent, and the caps on it.

use super::{quiet, Backend};
use crate::api::Outbox;
use crate::sql::select::{self as sel, OUTBOX_SELECT};
use crate::sql::{args, Db};
use crate::{OutboxMail, OutboxStats, Result};
use async_trait::async_trait;
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

#[async_trait]
impl<B: Backend> Outbox for B {
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
