//! Abusive patrons and the open queue (DESIGN §8–9, issue 12): who a
//! patron is for a block, warnings, blocks and their lifting, and waiting
//! chats that nobody took in time.
//!
//! A block is by the patron's browser and network, never by name or e-mail
//! (both are typed in): the widget keeps a random browser id of its own,
//! and the network is the client address (IPv6: its /64, which one home or
//! phone holds). Both are stored as digests only. A block runs out (24 h by
//! default): a library's public computer is shared, and its next user must
//! not be turned away for long.

use crate::audit::Concerns;
use crate::{auth, App, AppResult};
use refdesk_domain::authz::{authorize, authorize_admin, Action, Admin, Target};
use refdesk_domain::chat::{Author, MessageKind, SessionState};
use refdesk_domain::ids::SessionId;
use refdesk_domain::input::Body;
use refdesk_domain::org::Staff;
use refdesk_domain::{DomainError, Millis};
use refdesk_store::{BlockRecord, Ending, Guard, NewBlock, PatronKeys};
use std::net::IpAddr;

/// Who is asking, as far as the server can tell: the client address (the
/// peer, or behind a trusted proxy the address it forwarded) and the
/// widget's browser id, if it sent one.
#[derive(Clone, Debug, Default)]
pub struct Asker {
    /// The client address.
    pub ip: Option<IpAddr>,
    /// The browser's random id (16 to 128 characters of `[A-Za-z0-9_-]`).
    pub browser: Option<String>,
}

impl Asker {
    /// The digests a block and the per-network limits use. A malformed
    /// browser id is ignored (it is the client's to send or not).
    pub fn keys(&self) -> PatronKeys {
        let browser = self
            .browser
            .as_deref()
            .filter(|b| {
                (16..=128).contains(&b.len()) && b.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_')
            })
            .map(|b| auth::digest(&format!("refdesk-browser:{b}")));
        let net = self.ip.map(auth::network_digest);
        let mut wider = [None, None];
        let nets = self.ip.into_iter().flat_map(refdesk_domain::net::networks).skip(1);
        for (slot, (prefix, wide, _)) in wider.iter_mut().zip(nets) {
            *slot = Some(auth::wider_network_digest(prefix, wide));
        }
        PatronKeys { browser, net, wider }
    }
}

/// The line a warning puts in the chat, as the librarian's.
pub const WARNING: &str = "Please keep this chat respectful. If it goes on like this, I will end the chat, \
and you may not be able to start another one for a while.";

/// What a blocked patron is told when they try to start a chat.
pub fn blocked_message(may_ask: bool) -> String {
    let rest = if may_ask {
        " You can still leave your question with the library's form, and a librarian will answer by e-mail."
    } else {
        " Please contact the library another way."
    };
    format!("Sorry, this library cannot take a chat from you right now.{rest}")
}

/// What the patron reads when nobody could take their chat in time.
fn expired_line(minutes: u64, has_email: bool) -> String {
    let rest = if has_email {
        "We have your question (number {question}) and your e-mail address: a librarian will answer you by e-mail."
    } else {
        "Please try again later, or leave your question with the library's form."
    };
    format!("Sorry, no librarian was free to take your chat within {}. {rest}", minutes_said(minutes))
}

/// "a minute" or "15 minutes".
fn minutes_said(minutes: u64) -> String {
    if minutes == 1 {
        "a minute".to_owned()
    } else {
        format!("{minutes} minutes")
    }
}

/// Chats the background round ends for waiting too long, at most, each
/// round (a second): a flood of them left at once ends over a few rounds,
/// and the round goes on to its other work meanwhile.
const EXPIRED_PER_ROUND: u32 = 100;

impl App {
    /// The chatting librarian (or whoever may write in the chat) warns the
    /// patron with the canned line, as their own message.
    pub async fn warn(&self, staff: &Staff, session: SessionId) -> AppResult<refdesk_store::Appended> {
        self.staff_send(staff, session, MessageKind::Message, WARNING, None).await
    }

    /// Blocks a chat's patron and ends the chat if it is still live. Who may:
    /// whoever may end an active chat (its librarian); the chatting
    /// librarian for an hour after the chat ended (the patron may end it
    /// first, or the idle timeout); the library's admins, any time, and for
    /// a chat still waiting (a flood of abusive questions need not be
    /// accepted first). `hours`: how long (default
    /// [`crate::Limits::block_hours`]); `network`: the chat's network too,
    /// not its browser alone (see [`refdesk_store::NewBlock::network`]).
    pub async fn block(
        &self,
        staff: &Staff,
        session: SessionId,
        reason: &str,
        hours: Option<u64>,
        network: bool,
    ) -> AppResult<BlockRecord> {
        let reason = Body::parse(reason, 500)
            .map_err(|_| DomainError::invalid("reason", "say why, in at most 500 characters"))?
            .into_string();
        let hours = hours.unwrap_or(self.limits.block_hours);
        if hours == 0 || hours > self.limits.max_block_hours {
            let max = self.limits.max_block_hours;
            return Err(DomainError::invalid("hours", format!("block for 1 to {max} hours")).into());
        }
        let rec = self.store.session(session).await?.ok_or(DomainError::NotFound("session"))?;
        let target = Target::of(&rec.ctx, rec.state);
        authorize(staff, Action::View, &target)?;
        let now = self.clock.now();
        let admin = authorize_admin(staff, Admin::Blocks, &rec.ctx.placement).is_ok();
        let allowed = match rec.state {
            SessionState::Active => authorize(staff, Action::End, &target),
            SessionState::Waiting if admin => Ok(()),
            SessionState::Waiting => Err(DomainError::Forbidden("a waiting chat is blocked by the library's admins")),
            SessionState::Ended if admin => Ok(()),
            SessionState::Ended => {
                let recent = rec.ended_at.is_some_and(|at| now - at <= 3_600_000);
                if rec.ctx.librarian == Some(staff.id) && recent {
                    Ok(())
                } else {
                    Err(DomainError::Forbidden(
                        "after an hour, an ended chat's patron is blocked by the library's admins",
                    ))
                }
            }
        };
        allowed?;
        // The block first: should the end fail (the patron ended it just
        // now), the patron is blocked all the same.
        let expires_at = now + hours as Millis * 3_600_000;
        let new = NewBlock { session, by: staff.clone(), reason, expires_at, now, network };
        let block = self.store.block(new).await?;
        if rec.state != SessionState::Ended {
            let author = Author::Staff { id: staff.id, name: staff.display_name.clone() };
            // Blocked patrons get no transcript: the chat is not theirs to
            // mail on. They are told, just before the end, why no other
            // chat will be taken (and their page asks no rating).
            let ending = Ending { no_transcript: true, blocked: true, keep_question: true, ..Ending::default() };
            match self.store.end(session, author, as_judged(&rec), Box::new(|_, _| None), ending, now).await {
                Ok(_) => {}
                Err(refdesk_store::StoreError::Domain(DomainError::Conflict(_))) => {}
                Err(e) => return Err(e.into()),
            }
        }
        let others = self.end_waiting_under(&block, now).await;
        self.metrics().blocks.inc();
        tracing::info!(block = block.id, session = %session, staff = %staff.username, others, "patron blocked");
        Ok(block)
    }

    /// Ends the chats the blocked patron still has waiting in the
    /// cooperative, never taken by a librarian (other tabs, other libraries'
    /// queues: [`refdesk_store::Blocks::waiting_under_block`]): a librarian
    /// need not find and block each. Ended by refdesk (the blocker may not
    /// see those libraries), with no transcript and no missed-chat question.
    /// A chat a librarian takes meanwhile is left to them. Returns how many
    /// ended; a failure is logged (the block itself stands).
    async fn end_waiting_under(&self, block: &BlockRecord, now: Millis) -> usize {
        let ids = match self.store.waiting_under_block(block.id).await {
            Ok(ids) => ids,
            Err(e) => {
                tracing::warn!(block = block.id, error = %e, "cannot look for the blocked patron's waiting chats");
                return 0;
            }
        };
        let mut ended = 0;
        for id in ids {
            let still_waiting: Guard = Box::new(|rec| match rec.state {
                SessionState::Waiting if rec.accepted_at.is_none() => Ok(()),
                _ => Err(DomainError::Conflict("the chat was taken".into())),
            });
            let ending = Ending { no_transcript: true, ..Ending::default() };
            match self.store.end(id, Author::System, still_waiting, Box::new(|_, _| None), ending, now).await {
                Ok(_) => ended += 1,
                Err(e) => tracing::debug!(block = block.id, session = %id, error = %e, "waiting chat not ended"),
            }
        }
        ended
    }

    /// Lifts a block: the admins of the library it was made at (and above).
    pub async fn lift_block(&self, staff: &Staff, id: i64) -> AppResult<BlockRecord> {
        let block = self.store.block_by_id(id).await?.ok_or(DomainError::NotFound("block"))?;
        if authorize_admin(staff, Admin::Blocks, &block.placement).is_err() {
            // Out of scope looks like nothing there.
            return Err(DomainError::NotFound("block").into());
        }
        let lifted = self.store.lift_block(id, staff.clone(), self.clock.now()).await?;
        tracing::info!(block = id, staff = %staff.username, "block lifted");
        Ok(lifted)
    }

    /// The blocks made at the libraries this admin's role covers, newest
    /// first (the audit list).
    pub async fn blocks(&self, staff: &Staff) -> AppResult<Vec<BlockRecord>> {
        if staff.role < refdesk_domain::org::Role::LibraryAdmin {
            return Err(DomainError::Forbidden("blocks are for the library's admins").into());
        }
        Ok(self.store.blocks(refdesk_store::ScopeLevel::of(staff), 1000).await?)
    }

    /// Whether a library's blocked patrons may still send its form (its admins ask).
    pub async fn blocked_may_ask(&self, staff: &Staff, slug: &str) -> AppResult<bool> {
        let lib = self.library(slug).await?;
        authorize_admin(staff, Admin::Blocks, &lib.placement)?;
        Ok(self.store.blocked_may_ask(lib.placement.library).await?)
    }

    /// Sets whether a library's blocked patrons may still send its form.
    pub async fn set_blocked_may_ask(&self, staff: &Staff, slug: &str, may: bool) -> AppResult<()> {
        let lib = self.library(slug).await?;
        authorize_admin(staff, Admin::Blocks, &lib.placement)?;
        let was = self.store.blocked_may_ask(lib.placement.library).await?;
        self.admin_change(Some(staff))?;
        self.store.set_blocked_may_ask(lib.placement.library, may).await?;
        if was != may {
            let detail = format!(
                "a blocked patron {} send the offline question form",
                if may { "may still" } else { "may not" }
            );
            self.log_admin(Some(staff), Concerns::Library(lib.placement), "blocked_patrons", detail).await;
        }
        Ok(())
    }

    /// Refuses a patron a block stands against, with the polite message.
    pub(crate) async fn refuse_blocked(
        &self,
        lib: &refdesk_store::LibraryRecord,
        keys: &PatronKeys,
        form: bool,
    ) -> AppResult<()> {
        if keys.browser.is_none() && keys.net.is_none() {
            return Ok(());
        }
        let now = self.clock.now();
        let Some(_) = self.store.active_block(lib.placement.cooperative, keys.clone(), now).await? else {
            return Ok(());
        };
        let may_ask = self.store.blocked_may_ask(lib.placement.library).await?;
        if form && may_ask {
            return Ok(());
        }
        self.metrics().blocked_refusals.inc();
        Err(DomainError::Blocked(blocked_message(may_ask)).into())
    }

    /// Ends the chats that have waited longer than
    /// [`crate::Limits::waiting_expires_minutes`]: the patron is told why,
    /// and with an e-mail address the question stays as a missed chat.
    pub(crate) async fn expire_waiting(&self, now: Millis) {
        let minutes = self.limits.waiting_expires_minutes;
        let before = now - minutes as Millis * 60_000;
        // Their ids alone, a round's worth at most: the rest go in the next
        // rounds, a second apart.
        let expired = match self.store.expired_waiting(before, EXPIRED_PER_ROUND).await {
            Ok(w) => w,
            Err(e) => {
                tracing::warn!(error = %e, "cannot look for chats waiting too long");
                return;
            }
        };
        for session in expired {
            let Ok(Some(rec)) = self.store.session(session).await else { continue };
            // One write, under one guard: a librarian who accepts meanwhile
            // keeps the chat (and no line says nobody was free), and of
            // several nodes' rounds only the first ends it.
            let still_waiting: Guard = Box::new(move |rec| match rec.state {
                SessionState::Waiting if rec.queued_at < before => Ok(()),
                _ => Err(DomainError::Conflict("the chat was taken".into())),
            });
            let ending = Ending {
                missed: Some(format!("Missed chat: no librarian accepted it within {}", minutes_said(minutes))),
                left_per_net_per_day: self.limits.form_questions_per_address_per_day,
                // Which line is decided inside the write: the promise of an
                // answer only where a question is left.
                last_words: Some(expired_line(minutes, false)),
                left_words: Some(expired_line(minutes, true)),
                last_words_unanswered: Some(expired_line(minutes, false)),
                transcripts_per_recipient_per_day: Some(self.limits.patron_mails_per_recipient_per_day),
                no_transcript: false,
                blocked: false,
                keep_question: false,
            };
            // A chat a librarian took before it went back in line (handed on
            // to a queue, or its librarian gone) had a conversation: its
            // transcript goes as asked. One nobody took has none.
            let mail: refdesk_store::TranscriptMail = match rec.accepted_at {
                Some(_) => Box::new(crate::mail::transcript_mail),
                None => Box::new(|_, _| None),
            };
            match self.store.end(session, Author::System, still_waiting, mail, ending, now).await {
                Ok(_) if rec.accepted_at.is_some() => {
                    self.mail_wakeup.notify_one();
                    tracing::info!(session = %session, "waiting chat expired");
                }
                Ok(_) => tracing::info!(session = %session, "waiting chat expired"),
                Err(e) => tracing::debug!(session = %session, error = %e, "waiting chat not expired"),
            }
        }
    }
}

/// A block ends its chat only as it was judged: a chat taken over or
/// accepted since is someone else's now (the block stands all the same).
/// When it was last put in line tells a waiting chat taken and handed back
/// since from the one judged.
fn as_judged(judged: &refdesk_store::SessionRecord) -> Guard {
    let (state, librarian, queued) = (judged.state, judged.ctx.librarian, judged.queued_at);
    Box::new(move |now| {
        if now.state != state || now.ctx.librarian != librarian || now.queued_at != queued {
            return Err(DomainError::Conflict("the chat changed hands".into()));
        }
        now.state.end().map(|_| ())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::desk::Transfer;
    use crate::testing::{app_on_sqlite, on_duty, waiting_chat};

    async fn end_as_judged(app: &App, judged: &refdesk_store::SessionRecord) -> refdesk_store::Result<()> {
        let ending = Ending { no_transcript: true, ..Ending::default() };
        let id = judged.ctx.id;
        app.store.end(id, Author::System, as_judged(judged), Box::new(|_, _| None), ending, 1).await.map(|_| ())
    }

    #[test]
    fn the_line_of_a_wait_that_ran_out_counts_its_minutes_in_words() {
        assert!(expired_line(1, false).contains("within a minute."), "not \"1 minutes\"");
        assert!(expired_line(15, false).contains("within 15 minutes."));
    }

    #[test]
    fn an_ipv6_patrons_keys_name_its_56_and_48_apart_from_any_64_and_an_ipv4_patrons_none() {
        let keys = |ip: &str| Asker { ip: Some(ip.parse().unwrap()), browser: None }.keys();
        let v6 = keys("2001:db8:1:200::9");
        let [n56, n48] = v6.wider.clone().map(Option::unwrap);
        // The /64 2001:db8:1:200:: is written as its /56 is: digested apart.
        assert_ne!(v6.net.as_deref(), Some(n56.as_str()));
        assert_ne!(n56, n48);
        let neighbour = keys("2001:db8:1:2ff::1");
        assert_ne!(neighbour.net, v6.net, "another /64");
        assert_eq!(neighbour.wider, v6.wider, "of the same /56 and /48");
        assert_eq!(keys("2001:db8:1:300::1").wider[1], v6.wider[1], "another /56 of the same /48");
        assert_eq!(keys("192.0.2.7").wider, [None, None]);
        assert_eq!(keys("::ffff:192.0.2.7"), keys("192.0.2.7"));
    }

    #[tokio::test]
    async fn a_block_ends_a_chat_only_if_it_has_not_changed_hands_since_it_was_judged() {
        let dir = tempfile::tempdir().unwrap();
        let app = app_on_sqlite(&dir).await;
        let (ann, ben) = (on_duty(&app, "ann").await, on_duty(&app, "ben").await);

        // Judged waiting; Ann takes it before the block's end is written.
        let s = waiting_chat(&app).await;
        let judged = app.store.session(s).await.unwrap().unwrap();
        app.accept(&ann, s).await.unwrap();
        assert!(end_as_judged(&app, &judged).await.unwrap_err().is_conflict());
        let now = app.store.session(s).await.unwrap().unwrap();
        assert_eq!((now.state, now.ctx.librarian), (SessionState::Active, Some(ann.id)), "Ann's chat goes on");

        // Judged in Ann's hands; she hands it to Ben meanwhile.
        let judged = now;
        app.transfer(&ann, s, Transfer::Staff(ben.id), false, None).await.unwrap();
        assert!(end_as_judged(&app, &judged).await.unwrap_err().is_conflict());

        // Judged waiting; taken and put back in line meanwhile: waiting
        // again, with nobody's name on it, but not the chat judged.
        let t = waiting_chat(&app).await;
        let judged = app.store.session(t).await.unwrap().unwrap();
        app.accept(&ann, t).await.unwrap();
        app.transfer(&ann, t, Transfer::Library("riverside-main".into()), false, None).await.unwrap();
        let now = app.store.session(t).await.unwrap().unwrap();
        assert_eq!((now.state, now.ctx.librarian), (SessionState::Waiting, None));
        assert!(end_as_judged(&app, &judged).await.unwrap_err().is_conflict());
        assert_eq!(app.store.session(t).await.unwrap().unwrap().state, SessionState::Waiting);

        // Unchanged since judged: ended.
        end_as_judged(&app, &now).await.unwrap();
        assert_eq!(app.store.session(t).await.unwrap().unwrap().state, SessionState::Ended);
    }

    #[test]
    fn one_network_one_key_and_never_the_address_itself() {
        let asker = |ip: &str| Asker { ip: Some(ip.parse().unwrap()), browser: None }.keys();
        assert_eq!(asker("2001:db8:1:2::9").net, asker("2001:db8:1:2::10").net);
        assert_ne!(asker("2001:db8:1:2::9").net, asker("2001:db8:1:3::9").net);
        assert!(!asker("10.0.0.7").net.unwrap().contains("10.0.0.7"), "stored as a digest only");
    }

    #[test]
    fn a_malformed_browser_id_is_ignored() {
        let keys = |b: &str| Asker { ip: None, browser: Some(b.into()) }.keys().browser;
        assert!(keys("0123456789abcdef-_XY").is_some());
        assert!(keys("short").is_none());
        assert!(keys("has spaces in it, too long enough").is_none());
        assert!(keys(&"x".repeat(129)).is_none());
    }
}
