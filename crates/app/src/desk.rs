//! The chat monitor (My / ALL), conferencing (R3, B2, B3) and transfer.
//! Every line the patron may see about a second librarian is announced:
//! nobody enters a chat unannounced except silently (monitor) or in notes
//! only (whisper).

use crate::chat::staff_guard;
use crate::{App, AppError, AppResult};
use refdesk_domain::authz::{authorize, Action, Target};
use refdesk_domain::chat::{Author, ConferenceMode, MessageKind};
use refdesk_domain::event::SessionSummary;
use refdesk_domain::ids::{SessionId, StaffId};
use refdesk_domain::lines::{self, HandedTo};
use refdesk_domain::org::{Role, Staff};
use refdesk_domain::visibility::{sees, Item, Viewer};
use refdesk_domain::DomainError;
use refdesk_store::{DeskNews, Guard, Handover, ScopeLevel, SessionRecord, TransferTo};
use serde::Serialize;

/// Chats whose librarian left handed back in one round at most; the rest
/// in the next rounds, a second apart.
const ORPHANS_PER_ROUND: u32 = 100;

/// The chat monitor's two tabs.
#[derive(Clone, Debug, Serialize)]
pub struct Monitor {
    /// Sessions I am in (chatting or conferencing).
    pub my: Vec<SessionSummary>,
    /// Every live session in my scope (admins; empty for librarians).
    pub all: Vec<SessionSummary>,
}

/// Where a transfer goes.
#[derive(Clone, Debug)]
pub enum Transfer {
    /// To a colleague.
    Staff(StaffId),
    /// To a library's queue (slug).
    Library(String),
    /// To the cooperative's queue: offered to every library at once.
    Cooperative,
}

impl App {
    /// The chat monitor for this staff member: My and ALL.
    pub async fn monitor(&self, staff: &Staff) -> AppResult<Monitor> {
        let viewer = Viewer::Staff(staff.clone());
        let live = self.store.live_seen_by(monitor_scope(staff), staff.id).await?;
        let mine = |r: &SessionRecord| r.ctx.librarian == Some(staff.id) || r.ctx.member_mode(staff.id).is_some();
        let my = live.iter().filter(|r| mine(r)).map(SessionRecord::summary).collect();
        let all = live
            .iter()
            .filter(|_| staff.role >= Role::LibraryAdmin)
            .filter(|r| sees(&viewer, Item::Monitored { ctx: &r.ctx }))
            .map(SessionRecord::summary)
            .collect();
        Ok(Monitor { my, all })
    }

    /// Enters (or changes mode in) a live chat from the ALL tab (R3, B2).
    /// Joining is announced to the patron; monitoring and whispering are
    /// announced to staff only — the chatting librarian always knows (B3).
    pub async fn conference(
        &self,
        staff: &Staff,
        session: SessionId,
        mode: ConferenceMode,
    ) -> AppResult<SessionRecord> {
        let g = self.line_guard(staff, Action::Conference(mode));
        Ok(self.store.conference(session, staff.clone(), mode, g, self.clock.now()).await?)
    }

    /// Leaves a chat one conferenced into.
    pub async fn leave_conference(&self, staff: &Staff, session: SessionId) -> AppResult<SessionRecord> {
        Ok(self.store.leave(session, staff.clone(), staff_guard(staff, Action::Leave), self.clock.now()).await?)
    }

    /// Takes the chat over (B2): a transfer to the conferencing member; the
    /// previous librarian stays, whispering.
    pub async fn take_over(&self, staff: &Staff, session: SessionId) -> AppResult<SessionRecord> {
        let line = lines::handed_over(&staff.display_name, HandedTo::TakenOver);
        let g = self.line_guard(staff, Action::TakeOver);
        let to = TransferTo::Staff(staff.clone());
        let handover = Handover { to, stay: true, line, note: None };
        Ok(self.store.transfer(session, staff.clone(), handover, g, self.clock.now()).await?)
    }

    /// The chatting librarian hands the chat on; the patron is told. With
    /// `stay`, the previous librarian remains as a whispering member. A
    /// `note` (blank: none) is a librarian note for whoever takes it next,
    /// written just before the transfer's line: a note like any other
    /// (staff only, counted in `staff_lines_per_day`).
    pub async fn transfer(
        &self,
        staff: &Staff,
        session: SessionId,
        to: Transfer,
        stay: bool,
        note: Option<&str>,
    ) -> AppResult<SessionRecord> {
        let me = &staff.display_name;
        // Refuse someone who may not transfer before judging where to.
        let rec = self.store.session(session).await?.ok_or(DomainError::NotFound("session"))?;
        authorize(staff, Action::Transfer, &Target::of(&rec.ctx, rec.state))?;
        let note = match note.filter(|n| !n.trim().is_empty()) {
            Some(body) => {
                let author = Author::Staff { id: staff.id, name: me.clone() };
                let note = self.new_message(author, MessageKind::Note, body, None).map_err(|e| match e {
                    AppError::Domain(DomainError::Invalid { reason, .. }) => {
                        DomainError::invalid("note", reason).into()
                    }
                    e => e,
                })?;
                Some(note)
            }
            None => None,
        };
        let (target, line) = match to {
            Transfer::Staff(id) => {
                // A chat goes only to a colleague who can take it now: enabled, on duty.
                let entry = self
                    .store
                    .staff_entry(id)
                    .await?
                    .filter(|e| e.staff.home.cooperative == staff.home.cooperative && !e.disabled)
                    .ok_or_else(|| DomainError::invalid("to", "no such colleague in your cooperative"))?;
                if entry.availability != refdesk_domain::event::Availability::OnDuty {
                    return Err(DomainError::Conflict(format!("{} is not on duty", entry.staff.display_name)).into());
                }
                let colleague = entry.staff;
                if colleague.id == staff.id {
                    return Err(DomainError::invalid("to", "you are already chatting").into());
                }
                let line = lines::handed_over(me, HandedTo::Colleague(&colleague.display_name));
                (TransferTo::Staff(colleague), line)
            }
            Transfer::Library(slug) => {
                let lib = self.library(&slug).await.map_err(|e| e.missing_is_invalid("library", "no such library"))?;
                if lib.placement.cooperative != staff.home.cooperative {
                    return Err(DomainError::invalid("library", "transfer within your cooperative").into());
                }
                let line = lines::handed_over(me, HandedTo::Library(&lib.name));
                (TransferTo::Queue { library: lib.placement, coop_now: false, left: false }, line)
            }
            Transfer::Cooperative => {
                let line = lines::handed_over(me, HandedTo::Cooperative);
                (TransferTo::Queue { library: rec.ctx.placement, coop_now: true, left: false }, line)
            }
        };
        let g = self.line_guard(staff, Action::Transfer);
        let now = self.clock.now();
        let counted = note.is_some();
        if counted {
            self.written.take(staff.id, self.limits.staff_lines_per_day, now)?;
        }
        let handover = Handover { to: target, stay, line, note };
        let done = self.transfer_as_seen(session, staff, handover, g).await;
        if counted && done.is_err() {
            self.written.give_back(staff.id, now);
        }
        done
    }

    /// A transfer; a chat it sends back to a queue whose patron had no page
    /// of it open (presence, while it was live) is marked away at once, as
    /// the queue would have shown them had they left while it waited.
    async fn transfer_as_seen(
        &self,
        session: SessionId,
        by: &Staff,
        handover: Handover,
        guard: refdesk_store::Guard,
    ) -> AppResult<SessionRecord> {
        let to_queue = matches!(handover.to, TransferTo::Queue { .. });
        let here = self.bus().patron_watches(session);
        let now = self.clock.now();
        let rec = self.store.transfer(session, by.clone(), handover, guard, now).await?;
        if to_queue && !here && rec.state == refdesk_domain::chat::SessionState::Waiting {
            if let Err(e) = self.store.patron_away(session, Some(now)).await {
                tracing::warn!(%session, error = %e, "could not mark a patron gone before the hand-back away");
            }
        }
        Ok(rec)
    }

    /// Puts the chats `librarian` was chatting in back in their library's
    /// queue, when they can no longer answer them: their account disabled,
    /// their last sign-in ended, or signed off the desk after
    /// `signoff_minutes` with no connection; the conferences they were in,
    /// they leave.
    /// The patron is told and waits for the next librarian, instead of
    /// sitting in a chat nobody answers until it idles out; the timeline
    /// says who it was taken from. A chat that changed hands meanwhile is
    /// left as it is (checked inside each write).
    pub(crate) async fn hand_back(&self, librarian: &Staff) {
        let chats = match self.store.sessions_of(librarian.id).await {
            Ok(chats) => chats,
            Err(e) => {
                tracing::warn!(error = %e, staff = %librarian.username, "cannot read the chats of a librarian who left");
                return;
            }
        };
        for rec in chats {
            if rec.ctx.librarian == Some(librarian.id) {
                self.hand_back_one(librarian, &rec).await;
            } else if rec.ctx.member_mode(librarian.id).is_some() {
                // A conference they were in: they leave it, with its line
                // (a patron told someone joined is told they left).
                if let Err(e) = self.leave_conference(librarian, rec.ctx.id).await {
                    tracing::debug!(error = %e, session = %rec.ctx.id, "a departed member did not leave a chat");
                }
            }
        }
    }

    /// [`App::hand_back`] for every chat whose librarian is disabled or has
    /// had no connection on any node since `before` (`signoff_minutes`):
    /// every round, so that a chat is handed back even when the moment the
    /// librarian left was missed (a node that stopped, a read that failed,
    /// a change made from the command line).
    pub(crate) async fn hand_back_orphans(&self, before: refdesk_domain::Millis) {
        let orphans = match self.store.orphaned_chats(before, ORPHANS_PER_ROUND).await {
            Ok(orphans) => orphans,
            Err(e) => {
                tracing::warn!(error = %e, "cannot look for chats whose librarian left");
                return;
            }
        };
        for (session, staff) in orphans {
            let (Ok(Some(rec)), Ok(Some(librarian))) =
                (self.store.session(session).await, self.store.staff_by_id(staff).await)
            else {
                continue;
            };
            self.hand_back_one(&librarian, &rec).await;
        }
    }

    /// Tells the patrons of live chats whose librarian's desk has lost its
    /// connection (no node has seen them for
    /// [`crate::staff::AVAILABLE_WITHIN_MS`]) that it has, and when the
    /// chat goes back in line if they are not back (`signoff_before`: what
    /// [`App::hand_back_orphans`] hands back); and, once a node sees them
    /// again, that they are back. A patron would otherwise read "a librarian
    /// is with you" for the whole sign-off delay. Every node's round may
    /// find the same chats: each is told once (checked inside the write).
    pub(crate) async fn tell_librarians_desks(
        &self,
        now: refdesk_domain::Millis,
        signoff_before: refdesk_domain::Millis,
    ) {
        let gone_before = now - crate::staff::AVAILABLE_WITHIN_MS;
        // A node that was down (an upgrade, a restart) has not seen the
        // desks that are reconnecting to it: their librarians did not go
        // anywhere, the node did. Their first minute back is theirs.
        if gone_before < self.started {
            return;
        }
        let due = match self.store.librarians_to_tell(gone_before, signoff_before, ORPHANS_PER_ROUND).await {
            Ok(due) => due,
            Err(e) => {
                tracing::warn!(error = %e, "cannot look for chats whose librarian's desk is gone or back");
                return;
            }
        };
        for t in due {
            let line = match t.gone {
                true => lines::librarian_gone(&t.name, (t.last_seen - signoff_before + 59_999).max(60_000) / 60_000),
                false => lines::librarian_back(&t.name),
            };
            let news = match t.gone {
                true => DeskNews::Gone { not_seen_since: gone_before },
                false => DeskNews::Back,
            };
            let max_lines = self.limits.max_chat_lines as u64;
            match self.store.tell_librarian_desk(t.session, t.staff, news, line, max_lines, now).await {
                Ok(true) => {
                    tracing::info!(session = %t.session, staff = t.staff.0, gone = t.gone, "the patron was told of the librarian's desk")
                }
                Ok(false) => {}
                Err(e) => {
                    tracing::warn!(error = %e, session = %t.session, "cannot tell the patron of the librarian's desk")
                }
            }
        }
    }

    /// Puts one chat of `librarian`'s back in its library's queue, if it is
    /// still theirs inside the write.
    async fn hand_back_one(&self, librarian: &Staff, rec: &SessionRecord) {
        // No page of the patron's open on it: looked at again once a page
        // reloading, moving to another page of the library's site or
        // reconnecting to a node that just started would be back, and a
        // list of another node's pages would have come.
        if !self.bus().patron_watches(rec.ctx.id) && !self.bus().link_down() {
            let first = self.handing_back.lock().unwrap_or_else(|p| p.into_inner()).insert(rec.ctx.id);
            if first {
                let (app, librarian, id) = (self.clone(), librarian.clone(), rec.ctx.id);
                let wait = std::time::Duration::from_secs(self.limits.patron_away_seconds) + PAGES_BACK_WITHIN;
                tokio::spawn(async move {
                    tokio::time::sleep(wait).await;
                    app.one_turn("background", app.hand_back_after_wait(&librarian, id)).await;
                    app.handing_back.lock().unwrap_or_else(|p| p.into_inner()).remove(&id);
                });
            }
            return;
        }
        self.put_back_in_line(librarian, rec).await;
    }

    /// [`App::hand_back_one`] once the wait is over: still no page of the
    /// patron's open (and every node's pages heard of), the chat ends, the
    /// librarian's, with a line saying why — back in line it would wait for
    /// no one, count as a transfer, its time in line as chatting, credited
    /// to no one, and expire telling the patron no librarian was free. A
    /// page back meanwhile, or the nodes' link down: back in line.
    async fn hand_back_after_wait(&self, librarian: &Staff, id: SessionId) {
        let rec = match self.store.session(id).await {
            Ok(Some(rec)) if still_theirs(librarian.id)(&rec).is_ok() => rec,
            Ok(_) => return,
            Err(e) => return tracing::warn!(error = %e, session = %id, "cannot read a departed librarian's chat"),
        };
        if self.bus().patron_watches(id) || self.bus().link_down() {
            return self.put_back_in_line(librarian, &rec).await;
        }
        let author = Author::Staff { id: librarian.id, name: librarian.display_name.clone() };
        let why = lines::left_while_patron_away(&librarian.display_name);
        let ending = refdesk_store::Ending { last_words: Some(why), ..Default::default() };
        match self.end_mailing(id, author, still_theirs(librarian.id), ending, self.clock.now()).await {
            Ok(_) => {
                tracing::info!(session = %id, staff = %librarian.username, "a chat ended: its librarian left, its patron was gone")
            }
            Err(AppError::Domain(DomainError::Conflict(_))) => {}
            Err(e) => tracing::warn!(error = %e, session = %id, "cannot end a chat whose librarian and patron left"),
        }
    }

    /// Puts a departed librarian's chat back in its library's queue.
    async fn put_back_in_line(&self, librarian: &Staff, rec: &SessionRecord) {
        let line = lines::handed_over(&librarian.display_name, HandedTo::Away);
        let to = TransferTo::Queue { library: rec.ctx.placement, coop_now: false, left: true };
        let handover = Handover { to, stay: false, line, note: None };
        match self.transfer_as_seen(rec.ctx.id, librarian, handover, still_theirs(librarian.id)).await {
            Ok(_) => {
                tracing::info!(session = %rec.ctx.id, staff = %librarian.username, "a chat went back in line: its librarian left")
            }
            Err(AppError::Domain(DomainError::Conflict(_))) => {}
            Err(e) => tracing::warn!(error = %e, session = %rec.ctx.id, "cannot put a chat back in line"),
        }
    }
}

/// How long, beyond `limits.patron_away_seconds`, a departed librarian's
/// chat with no page of its patron's open waits before it ends: a page's
/// longest wait to reconnect (10 s) and two of the nodes' heartbeats, which
/// carry their pages' lists.
const PAGES_BACK_WITHIN: std::time::Duration = std::time::Duration::from_secs(20);

/// Whose live chats the chat monitor reads for `staff`: their role's
/// libraries for an admin (the ALL tab), none beyond their own chats for a
/// librarian (DESIGN §2). The visibility function still decides.
pub(crate) fn monitor_scope(staff: &Staff) -> Option<ScopeLevel> {
    (staff.role >= Role::LibraryAdmin).then(|| ScopeLevel::of(staff))
}

/// A departed librarian's chat goes back in line only if it is still
/// theirs inside the write: taken over, handed on or ended meanwhile, it is
/// left as it is.
fn still_theirs(who: StaffId) -> Guard {
    Box::new(move |rec| {
        match rec.ctx.librarian == Some(who) && rec.state == refdesk_domain::chat::SessionState::Active {
            true => Ok(()),
            false => Err(DomainError::Conflict("the chat changed hands".into())),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{app_on_sqlite, on_duty, waiting_chat};
    use refdesk_domain::chat::SessionState;

    #[tokio::test]
    async fn a_chat_handed_on_while_its_departed_librarian_was_judged_stays_where_it_went() {
        let dir = tempfile::tempdir().unwrap();
        let app = app_on_sqlite(&dir).await;
        let (ann, ben) = (on_duty(&app, "ann").await, on_duty(&app, "ben").await);
        let s = waiting_chat(&app).await;
        app.accept(&ann, s).await.unwrap();
        // The patron's page is open on it throughout.
        let page = app.bus().subscribe(8);
        page.watch(&app.store.session(s).await.unwrap().unwrap().ctx, refdesk_domain::chat::Watcher::patron());
        // Ann's chats are read for handing back; she hands this one to Ben
        // before the write.
        let judged = app.store.session(s).await.unwrap().unwrap();
        app.transfer(&ann, s, Transfer::Staff(ben.id), false, None).await.unwrap();
        app.hand_back_one(&ann, &judged).await;
        let now = app.store.session(s).await.unwrap().unwrap();
        assert_eq!((now.state, now.ctx.librarian), (SessionState::Active, Some(ben.id)), "Ben's chat goes on");
        let lines = app.store.messages_after(s, 0, 100).await.unwrap();
        assert!(!lines.iter().any(|m| m.body.contains("back in line") || m.body.contains("no longer")), "{lines:?}");

        // Still Ben's when judged: back in line, at its library.
        app.hand_back_one(&ben, &now).await;
        let back = app.store.session(s).await.unwrap().unwrap();
        assert_eq!((back.state, back.ctx.librarian), (SessionState::Waiting, None));

        // Taken again by Ann meanwhile: Ben's hand-back leaves it to her.
        app.accept(&ann, s).await.unwrap();
        app.hand_back_one(&ben, &now).await;
        let taken = app.store.session(s).await.unwrap().unwrap();
        assert_eq!((taken.state, taken.ctx.librarian), (SessionState::Active, Some(ann.id)));

        // Ended meanwhile: it stays ended, not back in line.
        app.staff_end(&ann, s).await.unwrap();
        app.hand_back_one(&ann, &taken).await;
        assert_eq!(app.store.session(s).await.unwrap().unwrap().state, SessionState::Ended);
    }

    /// A chat whose patron has no page open on it when its librarian leaves
    /// (nor a while after) ends, hers, with a line saying why: back in line it waited for no
    /// one, counted as a transfer, its time in line as time chatting, and
    /// expired telling the patron no librarian was free.
    #[tokio::test]
    async fn a_departed_librarians_chat_whose_patron_is_gone_ends_as_hers() {
        let dir = tempfile::tempdir().unwrap();
        let app = app_on_sqlite(&dir).await;
        let ann = on_duty(&app, "ann").await;
        let s = waiting_chat(&app).await;
        app.accept(&ann, s).await.unwrap();
        let judged = app.store.session(s).await.unwrap().unwrap();
        // Not at once: a page of the patron's may be reloading.
        app.hand_back_one(&ann, &judged).await;
        let now = app.store.session(s).await.unwrap().unwrap();
        assert_eq!((now.state, now.ctx.librarian), (SessionState::Active, Some(ann.id)), "left a while");
        // Still no page once the wait is over: it ends.
        app.hand_back_after_wait(&ann, s).await;
        let ended = app.store.session(s).await.unwrap().unwrap();
        assert_eq!((ended.state, ended.ctx.librarian), (SessionState::Ended, Some(ann.id)), "ended, Ann's");
        let lines = app.store.messages_after(s, 0, 100).await.unwrap();
        let bodies: Vec<&str> = lines.iter().map(|m| m.body.as_str()).collect();
        assert!(bodies.iter().any(|b| b.contains("has left the desk while this chat's page was closed")), "{bodies:?}");
        assert!(!bodies.iter().any(|b| b.contains("back in line")), "{bodies:?}");
        assert_eq!(app.store.session(s).await.unwrap().unwrap().ctx.librarian, Some(ann.id));

        // A page back meanwhile: back in line, for the next librarian.
        let s = waiting_chat(&app).await;
        app.accept(&ann, s).await.unwrap();
        let page = app.bus().subscribe(8);
        page.watch(&app.store.session(s).await.unwrap().unwrap().ctx, refdesk_domain::chat::Watcher::patron());
        app.hand_back_after_wait(&ann, s).await;
        let back = app.store.session(s).await.unwrap().unwrap();
        assert_eq!((back.state, back.ctx.librarian), (SessionState::Waiting, None));
    }
}
