//! Abusive patrons blocked from chatting (DESIGN §9).

use super::{quiet, Backend};
use crate::api::Blocks;
use crate::sql::rows::{block_where, insert_message, insert_timeline, lock_session, not_found};
use crate::sql::select::{self as sel, BLOCK_SELECT};
use crate::sql::{args, int, Db};
use crate::{BlockRecord, NewBlock, PatronKeys, Result, ScopeLevel};
use async_trait::async_trait;
use refdesk_domain::chat::SessionState;
use refdesk_domain::event::Event;
use refdesk_domain::ids::{CooperativeId, SessionId};
use refdesk_domain::lines;
use refdesk_domain::org::Staff;
use refdesk_domain::question::Change;
use refdesk_domain::{DomainError, Millis};

/// Blocks a chat's patron at most this many times in all (each lifted
/// before the next): each block is a row and a timeline entry, and its
/// lifting another, which nothing else bounds.
pub const BLOCKS_PER_CHAT: i64 = 10;

/// How long after its end a chat's patron, blocked, is still told so in it
/// (their page may still be open, offering a rating the block refuses).
const TOLD_AFTER_END: Millis = 3_600_000;

/// Blocks the keys a chat was started with, cooperative-wide: one block at
/// a time per chat (locked: two at once cannot both pass), and
/// [`BLOCKS_PER_CHAT`] in all. A chat that ended within the hour gets the
/// `blocked` line its end would have had (a chat going on gets it from the
/// end that follows the block).
async fn block<D: Db>(db: &mut D, new: NewBlock) -> Result<(BlockRecord, Vec<Event>)> {
    let rec = lock_session(db, new.session).await?;
    let (held, live) = db
        .row(
            "SELECT COUNT(*) AS n, COALESCE(SUM(CASE WHEN lifted_at IS NULL AND expires_at > ?2 THEN 1 ELSE 0 END), 0) AS live
             FROM blocks WHERE session_id = ?1",
            args![new.session.0, new.now],
            |r| Ok((r.int("n")?, r.int("live")?)),
        )
        .await?
        .unwrap_or_default();
    if live > 0 {
        let why = "this chat's patron is blocked already; lift that block to block them again";
        return Err(DomainError::Conflict(why.into()).into());
    }
    if held >= BLOCKS_PER_CHAT {
        let reason = format!("this chat's patron was blocked {held} times already; block them from a newer chat");
        return Err(DomainError::Limited { code: "too_many_blocks", reason }.into());
    }
    let (browser, net) = db
        .row(
            "SELECT browser_key AS browser_key, net_key AS net_key FROM sessions WHERE id = ?1",
            args![new.session.0],
            |r| Ok((r.opt_text("browser_key")?, r.opt_text("net_key")?)),
        )
        .await?
        .ok_or(not_found("session"))?;
    if browser.is_none() && net.is_none() {
        let why = "this chat holds no browser id or address to block by; end it instead";
        return Err(DomainError::invalid("session", why).into());
    }
    // A chat with no browser id (not started from the library's page, which
    // always sends one) is blocked by its network alone, everyone at its
    // address with it: that is the librarian's to choose, never the
    // stranger's, who would otherwise pick the network block by leaving the
    // id out.
    if browser.is_none() && !new.network {
        let why = "this chat's patron sent no browser id (it was not started from the library's chat page): only \
                   their network can be blocked, and with it everyone at that address; block the network too, or \
                   end the chat";
        return Err(DomainError::invalid("network", why).into());
    }
    let net = net.filter(|_| new.network);
    let id = int(
        db,
        "INSERT INTO blocks (cooperative_id, library_id, session_id, browser_key, net_key, reason, created_by,
           created_at, expires_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9) RETURNING id AS block_id",
        args![
            rec.ctx.placement.cooperative.0,
            rec.ctx.placement.library.0,
            new.session.0,
            &browser,
            &net,
            &new.reason,
            new.by.id.0,
            new.now,
            new.expires_at
        ],
        "block_id",
    )
    .await?;
    if let Some(q) = rec.ctx.question {
        let change = Change::Blocked { block: id, reason: new.reason.clone(), until: new.expires_at };
        insert_timeline(db, q, new.now, Some(&new.by), &change).await?;
    }
    let mut events = Vec::new();
    let lately = rec.ended_at.is_some_and(|at| new.now.saturating_sub(at) <= TOLD_AFTER_END);
    if rec.state == SessionState::Ended && lately {
        let message = insert_message(db, &rec, lines::blocked(), new.now).await?;
        events.push(Event::Message { ctx: rec.ctx, message });
    }
    Ok((block_where(db, id).await?, events))
}

/// Lifts a block once; lifting it again changes nothing.
async fn lift<D: Db>(db: &mut D, id: i64, by: Staff, now: Millis) -> Result<BlockRecord> {
    // Its chat's lock, as every writer of a timeline takes: entries commit
    // in the order of their numbers, so a page that follows the timeline by
    // how many entries it holds misses none (PostgreSQL).
    let session = db
        .row("SELECT session_id AS session_id FROM blocks WHERE id = ?1", args![id], |r| r.opt_int("session_id"))
        .await?
        .flatten();
    if let Some(session) = session {
        match lock_session(db, SessionId(session)).await {
            Err(e) if !e.is_not_found() => return Err(e),
            _ => {}
        }
    }
    let n = db
        .exec(
            "UPDATE blocks SET lifted_at = ?2, lifted_by = ?3 WHERE id = ?1 AND lifted_at IS NULL",
            args![id, now, by.id.0],
        )
        .await?;
    let block = block_where(db, id).await?;
    if let (1, Some(q)) = (n, block.question) {
        insert_timeline(db, q, now, Some(&by), &Change::Unblocked { block: id }).await?;
    }
    Ok(block)
}

#[async_trait]
impl<B: Backend> Blocks for B {
    async fn block(&self, new: NewBlock) -> Result<BlockRecord> {
        self.write(move |db| Box::pin(block(db, new))).await
    }

    async fn lift_block(&self, id: i64, by: Staff, now: Millis) -> Result<BlockRecord> {
        self.write(move |db| Box::pin(quiet(lift(db, id, by, now)))).await
    }

    async fn block_by_id(&self, id: i64) -> Result<Option<BlockRecord>> {
        self.read(move |db| {
            Box::pin(async move {
                match block_where(db, id).await {
                    Ok(b) => Ok(Some(b)),
                    Err(e) if e.is_not_found() => Ok(None),
                    Err(e) => Err(e),
                }
            })
        })
        .await
    }

    async fn blocks(&self, scope: ScopeLevel, limit: u32) -> Result<Vec<BlockRecord>> {
        self.read(move |db| {
            Box::pin(async move {
                let (cond, id) = sel::block_scope(scope);
                let sql = format!("{BLOCK_SELECT} WHERE {cond} ORDER BY b.id DESC LIMIT ?2");
                db.rows(&sql, args![id, i64::from(limit)], sel::block).await
            })
        })
        .await
    }

    async fn active_block(&self, coop: CooperativeId, keys: PatronKeys, now: Millis) -> Result<Option<BlockRecord>> {
        self.read(move |db| {
            Box::pin(async move {
                let sql = format!("{BLOCK_SELECT} {}", sel::ACTIVE_BLOCK);
                db.row(&sql, args![coop.0, &keys.browser, &keys.net, now], sel::block).await
            })
        })
        .await
    }

    async fn waiting_under_block(&self, block: i64) -> Result<Vec<SessionId>> {
        let most = i64::from(crate::api::BLOCKED_WAITING_AT_MOST);
        self.read(move |db| {
            Box::pin(async move {
                db.rows(sel::WAITING_UNDER_BLOCK, args![block, most], |r| Ok(SessionId(r.int("session_id")?))).await
            })
        })
        .await
    }
}
