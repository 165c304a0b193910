//! Staff instant messages: one conversation per pair of staff members,
//! numbered from 1 like a chat.

use super::Backend;
use crate::api::Im;
use crate::sql::rows::not_found;
use crate::sql::select::{self as sel, IM_SELECT};
use crate::sql::{args, int, Db};
use crate::{ImConversation, Result};
use async_trait::async_trait;
use refdesk_domain::event::{Event, ImMessage};
use refdesk_domain::ids::StaffId;
use refdesk_domain::org::Staff;
use refdesk_domain::report::DAY;
use refdesk_domain::Millis;

/// The conversation of two staff members, as stored: lower id first.
fn pair(a: StaffId, b: StaffId) -> (i64, i64) {
    (a.0.min(b.0), a.0.max(b.0))
}

/// Stores a direct message; a re-sent client id returns the stored one.
async fn send<D: Db>(
    db: &mut D,
    from: Staff,
    to: StaffId,
    body: String,
    (client_id, per_day): (Option<String>, u32),
    now: Millis,
) -> Result<((ImMessage, bool), Vec<Event>)> {
    let (low, high) = pair(from.id, to);
    // One writer per conversation (its sequence numbers, its client ids).
    db.lock(&format!("im:{low}:{high}")).await?;
    if let Some(cid) = &client_id {
        let sql = format!("{IM_SELECT} WHERE m.sender = ?1 AND m.recipient = ?2 AND m.client_id = ?3");
        if let Some(m) = db.row(&sql, args![from.id.0, to.0, cid], sel::im).await? {
            return Ok(((m, true), Vec::new()));
        }
    }
    // A sender's messages of the day, whatever the conversation (index
    // `im_sent`): the one staff write no chat or question bounds.
    db.lock(&format!("im-from:{}", from.id.0)).await?;
    let sent_today = "SELECT COUNT(*) AS n FROM im_messages WHERE sender = ?1 AND at >= ?2";
    if int(db, sent_today, args![from.id.0, now - DAY], "n").await? >= i64::from(per_day) {
        let reason = format!("you sent {per_day} messages to colleagues in the last 24 hours; try again later");
        return Err(refdesk_domain::DomainError::Limited { code: "too_many_ims", reason }.into());
    }
    let seq = int(
        db,
        "SELECT COALESCE(max(seq), 0) + 1 AS seq FROM im_messages WHERE low = ?1 AND high = ?2",
        args![low, high],
        "seq",
    )
    .await?;
    db.exec(
        "INSERT INTO im_messages (low, high, seq, sender, recipient, body, client_id, at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        args![low, high, seq, from.id.0, to.0, &body, &client_id, now],
    )
    .await
    .map_err(|e| if e.is_not_found() { not_found("staff member") } else { e })?;
    db.exec(
        "INSERT INTO im_conversations (low, high, last_seq, last_at) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (low, high) DO UPDATE SET last_seq = excluded.last_seq, last_at = excluded.last_at",
        args![low, high, seq, now],
    )
    .await?;
    let m = ImMessage { seq: seq as u64, from: from.id, from_name: from.display_name, to, body, client_id, at: now };
    Ok(((m.clone(), false), vec![Event::Im(m)]))
}

async fn mark_read<D: Db>(db: &mut D, me: StaffId, peer: StaffId, seq: u64) -> Result<(u64, Vec<Event>)> {
    // No further than the conversation's last message: a position past it
    // would leave the colleague's next messages counted as read.
    let (low, high) = pair(me, peer);
    let last_sql = "SELECT COALESCE(max(last_seq), 0) AS n FROM im_conversations WHERE low = ?1 AND high = ?2";
    let last = int(db, last_sql, args![low, high], "n").await?;
    let seq = (seq.min(i64::MAX as u64) as i64).min(last);
    let sql = format!(
        "INSERT INTO im_reads (staff_id, peer_id, last_read) VALUES (?1, ?2, ?3)
         ON CONFLICT (staff_id, peer_id) DO UPDATE SET last_read = {}(im_reads.last_read, excluded.last_read)",
        db.dialect().greatest()
    );
    db.exec(&sql, args![me.0, peer.0, seq]).await.map_err(|e| {
        if e.is_not_found() {
            not_found("staff member")
        } else {
            e
        }
    })?;
    // A position written past the last message before positions were
    // capped comes back to it; then the answer is how far it is marked.
    let (keys, clamp) = (
        args![me.0, peer.0, last],
        "UPDATE im_reads SET last_read = ?3 WHERE staff_id = ?1 AND peer_id = ?2 AND last_read > ?3",
    );
    db.exec(clamp, keys).await?;
    let read_sql = "SELECT last_read AS n FROM im_reads WHERE staff_id = ?1 AND peer_id = ?2";
    let read = int(db, read_sql, args![me.0, peer.0], "n").await?;
    Ok((read.max(0) as u64, Vec::new()))
}

#[async_trait]
impl<B: Backend> Im for B {
    async fn im_send(
        &self,
        from: Staff,
        to: StaffId,
        body: String,
        client_id: Option<String>,
        per_day: u32,
        now: Millis,
    ) -> Result<(ImMessage, bool)> {
        self.write(move |db| Box::pin(send(db, from, to, body, (client_id, per_day), now))).await
    }

    async fn im_after(&self, a: StaffId, b: StaffId, after: u64, limit: u32) -> Result<Vec<ImMessage>> {
        let (low, high) = pair(a, b);
        let after = after.min(i64::MAX as u64) as i64;
        self.read(move |db| {
            Box::pin(async move {
                let sql =
                    format!("{IM_SELECT} WHERE m.low = ?1 AND m.high = ?2 AND m.seq > ?3 ORDER BY m.seq LIMIT ?4");
                db.rows(&sql, args![low, high, after, i64::from(limit)], sel::im).await
            })
        })
        .await
    }

    async fn im_conversations(&self, me: StaffId) -> Result<Vec<ImConversation>> {
        self.read(move |db| {
            Box::pin(async move {
                db.rows(sel::IM_CONVERSATIONS, args![me.0, sel::IM_UNREAD_MOST], sel::im_conversation).await
            })
        })
        .await
    }

    async fn im_read(&self, me: StaffId, peer: StaffId, seq: u64) -> Result<u64> {
        self.write(move |db| Box::pin(mark_read(db, me, peer, seq))).await
    }
}
