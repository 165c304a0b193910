//! One connection's view of the bus. A [`Feed`] holds what the connection
//! watches and the last sequence number it has passed on for each session
//! and IM conversation, and turns committed events into what this viewer
//! may see:
//!
//! - every event goes through [`refdesk_domain::visibility::sees`] — the one
//!   visibility function — before it is handed out (I1);
//! - per session (and per IM conversation), events come out in sequence
//!   order with no gap and no duplicate (I3): older ones are dropped, and a
//!   gap (after a lag, or a node that missed something) is filled from the
//!   store;
//! - [`Feed::resume`] joins the bus *before* it reads the session's record
//!   and the replay reads the store's lines, so no change committed in
//!   between can fall through the crack; a page of lines read from the store
//!   (a replay's, a gap's, a lag's) is judged by the session read again
//!   after it, so a change of hands among them is never judged by a copy
//!   from before it (a patron's place in line is read after the replay);
//! - a catch-up reads a page per session or conversation per turn, the rest
//!   at the next turn (one wake-up at a time): a lagging reader holds a page;
//! - a replay is read a page at a time ([`Feed::next_page`],
//!   [`Feed::im_page`]): the connection reads the next page only once it has
//!   sent the last, so a reader that stops reading holds one page, not a
//!   whole chat.

use crate::bus::Subscription;
use crate::{App, AppError, AppResult};
use refdesk_domain::authz::authorize_view_at;
use refdesk_domain::chat::{Member, Message, SessionContext, Watcher};
use refdesk_domain::event::{Availability, Event, ImMessage, QueueEntry, SessionSummary};
use refdesk_domain::ids::{CooperativeId, SessionId, StaffId};
use refdesk_domain::org::Placement;
use refdesk_domain::visibility::{as_seen, sees, Item, Viewer};
use refdesk_domain::{DomainError, Millis};
use std::collections::HashMap;
use std::sync::Arc;

/// Lines read from the store at a time when a connection fills a gap or
/// catches up after missed events, per session or IM conversation: the
/// rest is read at its next turn (`Subscription::wake`), once
/// this page is written out, so that what a lagging reader holds is a
/// page, not everything it missed.
const PAGE: u32 = 100;

/// One page of a replay.
#[derive(Debug)]
pub struct Page<T> {
    /// What the viewer may see of it, in order (may be empty when every
    /// line of the page was hidden from this viewer).
    pub items: Vec<T>,
    /// Whether this was the last page: nothing more was stored.
    pub done: bool,
}

/// What a feed hands to its connection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Out {
    /// A message the viewer may see.
    Message(Message),
    /// Someone is typing, or stopped.
    Typing {
        /// The session.
        session: SessionId,
        /// Who.
        who: String,
        /// Whether it is the chat's patron (else a staff member): a patron
        /// who gave a librarian's name is told apart by it.
        patron: bool,
        /// Started or stopped.
        on: bool,
    },
    /// A waiting chat the viewer may serve.
    QueueAdded(QueueEntry),
    /// A chat left the queue.
    QueueRemoved(SessionId),
    /// A waiting chat's patron has had no page of it open since `since`,
    /// or has one again (`None`).
    PatronAway {
        /// The session.
        session: SessionId,
        /// Since when.
        since: Option<Millis>,
    },
    /// The patron's place in line (1 = next).
    Position {
        /// Their place.
        position: usize,
        /// Since when they wait.
        since: Millis,
    },
    /// Who is present in a watched session changed (B3).
    Presence {
        /// The session.
        session: SessionId,
        /// The chatting librarian.
        librarian: Option<StaffId>,
        /// Conference members.
        members: Vec<Member>,
        /// Staff watching without taking part.
        watchers: Vec<Watcher>,
        /// Whether the patron has the chat open (a page with its socket
        /// on some node).
        patron_here: bool,
    },
    /// A session changed, for the chat monitor.
    Monitor(SessionSummary),
    /// A session had a message, for the chat monitor's last-message times.
    MonitorTick {
        /// The session.
        session: SessionId,
        /// When.
        at: Millis,
    },
    /// A direct message to or from this staff member.
    Im(ImMessage),
    /// This staff member read a conversation up to `seq` (at this desk or another).
    ImRead {
        /// The colleague it is with.
        peer: StaffId,
        /// Read up to this message.
        seq: u64,
    },
    /// This staff member's sign-ins were revoked: the connection must close.
    SignedOut,
    /// A question was referred to a library this staff member serves, or
    /// flagged for its follow-up.
    Referred {
        /// The question.
        question: refdesk_domain::ids::QuestionId,
        /// The library it was referred to (or flagged for).
        library_name: String,
        /// The question as first asked.
        text: String,
        /// Who referred or flagged it.
        by: String,
        /// Flagged for follow-up, not referred.
        follow_up: bool,
    },
    /// A session left the viewer's chat monitor (transferred away, out of scope).
    MonitorGone(SessionId),
    /// A followed chat's personal data was erased: no longer followed.
    Erased(SessionId),
    /// A colleague's availability changed.
    Availability {
        /// Who.
        staff: StaffId,
        /// Now.
        availability: Availability,
    },
    /// This node's link to the other nodes went down (NATS out of reach:
    /// lines from elsewhere come from the store, up to 5 s late), or is
    /// back. Staff only, and only when it changes.
    Link {
        /// Down now.
        down: bool,
    },
    /// The whole queue again (after a lag or a resync: changes may be missing).
    Queue(Vec<QueueEntry>),
    /// The whole chat monitor again (after a lag or a resync).
    MonitorList(Vec<SessionSummary>),
}

struct Watched {
    ctx: SessionContext,
    /// Staff watching it without taking part, as last heard.
    watchers: Vec<Watcher>,
    /// Highest sequence number processed (seen or filtered out).
    last: u64,
    /// That line's number for the chat's patron ([`Message::patron_seq`]).
    shown: u64,
    /// A catch-up stopped at a page: the rest is read at the next turn.
    more: bool,
    /// Erased when the viewer began to watch it: what they were given is
    /// what the erasure left.
    erased: bool,
    /// When this staff viewer's view of it ends: a librarian who chatted
    /// with another library's patron follows the chat for a day after its
    /// end (`authz::view_ends`), then it is left. `None`: for good.
    until: Option<Millis>,
}

impl Watched {
    /// A line processed (passed on or filtered out).
    fn passed(&mut self, m: &Message) {
        if m.seq > self.last {
            self.last = m.seq;
            self.shown = m.patron_seq;
        }
    }
}

/// A watched session read again ([`Feed::read_context_again`]).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Again {
    /// Still watched, its context renewed.
    Watched,
    /// No longer in view: left.
    Left,
    /// Erased since the viewer began to watch it (the event that said so
    /// was missed): left; the viewer must be told.
    Erased,
}

/// A connection's feed.
pub struct Feed {
    app: App,
    viewer: Viewer,
    sub: Subscription,
    /// Boxed: a table of four empty buckets, the least it allocates, would
    /// otherwise take four `Watched` (a waiting patron has one session).
    sessions: HashMap<SessionId, Box<Watched>>,
    /// A waiting patron's queue, place key and place in line.
    waiting: Option<(refdesk_domain::ids::LibraryId, crate::bus::QueueKey, usize)>,
    /// What only a staff member's connection keeps. Boxed, and `None` for a
    /// patron: a waiting patron's connection is the one there are thousands
    /// of, and this is 160 bytes it never uses.
    desk: Option<Box<Desk>>,
    /// A wake-up for the rest of a catch-up is in the mailbox: one at a
    /// time, however many chats have more to read.
    woken: bool,
    /// Events handled in a row that failed on the store ([`Feed::retry_later`]).
    failures: u8,
}

/// The first wait before a feed whose store read failed tries again, and
/// the most it grows to, doubled at each failure in a row (each wait is
/// then taken at random between half and one and a half of it).
const RETRY_FIRST: std::time::Duration = std::time::Duration::from_secs(1);
const RETRY_MOST: std::time::Duration = std::time::Duration::from_secs(30);

/// A staff connection's own state (see [`Feed::desk`]).
#[derive(Default)]
struct Desk {
    /// Last IM sequence number passed on, per peer.
    im: HashMap<StaffId, u64>,
    monitor: bool,
    /// Whether this connection watches the queue.
    watching_queue: bool,
    /// The digest of the staff sign-in this connection was opened with,
    /// checked again whenever events may have been missed (a revoked
    /// sign-in's `SignedOut` among them).
    login: Option<String>,
    /// Sessions this viewer's chat monitor lists, to say when one leaves it.
    monitored: std::collections::HashSet<SessionId>,
    /// Whether this staff member is on duty: only they are offered chats (DESIGN §9).
    on_duty: bool,
    /// Watched sessions seen to end, oldest first. An ended chat still gets
    /// a line or two (the code, a rating), so it is followed a while longer;
    /// past [`ENDED_KEPT`] the oldest is left. Without this a desk open all
    /// shift would follow every chat it ever opened.
    ended: std::collections::VecDeque<SessionId>,
    /// IM conversations whose catch-up stopped at a page: the rest is read
    /// at the next turn.
    im_more: Vec<StaffId>,
    /// The "typing" this connection announced last and has not ended: its
    /// chat, and whether in the note composer ([`Feed::staff_typing`]).
    typing: Option<(SessionId, bool)>,
    /// Whether this connection was last told the node's link is down.
    told_link_down: bool,
}

/// Ended sessions a staff connection keeps following at most.
const ENDED_KEPT: usize = 32;

impl Feed {
    /// A feed for `viewer`, watching nothing yet (staff hear their own IM and
    /// their colleagues' availability from the start).
    pub fn new(app: &App, viewer: Viewer) -> Feed {
        let sub = app.bus.subscribe(app.limits.connection_queue);
        let mut desk = None;
        if let Viewer::Staff(s) = &viewer {
            sub.join_staff(s.id);
            desk = Some(Box::default());
        }
        Feed { app: app.clone(), viewer, sub, sessions: HashMap::new(), waiting: None, desk, woken: false, failures: 0 }
    }

    /// The staff connection's own state; made on first use (a patron's
    /// connection never needs it, but nothing breaks if one does).
    fn desk(&mut self) -> &mut Desk {
        self.desk.get_or_insert_with(Box::default)
    }

    /// A staff connection's flag or list, read without making the desk.
    fn desk_has(&self, f: impl Fn(&Desk) -> bool) -> bool {
        self.desk.as_deref().is_some_and(f)
    }

    /// A staff member's typing from this connection ([`App::staff_typing`]).
    /// The "off" of the "on" it announced goes to the same audience without
    /// asking again whether they may write there: a change of conference
    /// mode (join to whisper, a take-over) must not leave the patron shown
    /// "typing…" by someone who may no longer write to them. It reveals
    /// nobody: that audience was told of them with the "on".
    pub fn staff_typing(&mut self, ctx: SessionContext, note: bool, on: bool) -> AppResult<()> {
        let Viewer::Staff(staff) = &self.viewer else {
            return Err(DomainError::Forbidden("only staff type as staff").into());
        };
        let (this, announced) = (Some((ctx.id, note)), self.desk.as_deref().and_then(|d| d.typing));
        if !on && announced == this {
            self.app.publish_staff_typing(staff, ctx, note, false);
        } else {
            self.app.staff_typing(staff, ctx, note, on)?;
        }
        if on || announced == this {
            self.desk().typing = this.filter(|_| on);
        }
        Ok(())
    }

    /// The application this feed reads from.
    pub fn app(&self) -> &App {
        &self.app
    }

    /// Who this feed is for.
    pub fn viewer(&self) -> &Viewer {
        &self.viewer
    }

    /// The session context last seen, if the feed watches the session.
    pub fn context(&self, session: SessionId) -> Option<&SessionContext> {
        self.sessions.get(&session).map(|w| &w.ctx)
    }

    /// The highest sequence number processed for a watched session, as
    /// the viewer numbers the session's lines (a patron, by their own count:
    /// [`refdesk_domain::visibility::seq_seen`]).
    pub fn last_seq(&self, session: SessionId) -> Option<u64> {
        let patron = matches!(self.viewer, Viewer::Patron { .. });
        self.sessions.get(&session).map(|w| if patron { w.shown } else { w.last })
    }

    /// The highest sequence number passed on of the IM conversation with
    /// `peer`, if the feed follows it.
    pub fn im_last_seq(&self, peer: StaffId) -> Option<u64> {
        self.desk.as_ref().and_then(|d| d.im.get(&peer).copied())
    }

    /// IM conversations the feed follows.
    pub fn im_followed(&self) -> usize {
        self.desk.as_ref().map_or(0, |d| d.im.len())
    }

    /// Starts (or restarts) watching a session from `after` (a line's number
    /// as the viewer knows it: a patron's are their own); what the viewer
    /// may see of it since then comes from [`Feed::next_page`]. Refused
    /// outside the viewer's scope (I5). `false`: the chat was erased, and
    /// the viewer claims lines of it (`after` > 0) it did not get from this
    /// connection since: they may be from before the erasure (a page that
    /// was reconnecting when the `erased` frame went out), or the viewer is
    /// its patron. It is not watched; the viewer must be told (`erased`),
    /// and staff may resume from 0.
    pub async fn resume(&mut self, session: SessionId, after: u64) -> AppResult<bool> {
        if matches!(self.viewer, Viewer::Patron { session: own } if own != session) {
            return Err(DomainError::NotFound("session").into());
        }
        // Listen first, then read: a change of hands in between is then in
        // the record read or among the events that follow, never in neither.
        let watched = self.sessions.contains_key(&session);
        self.sub.join(session);
        let rec = match self.record_in_view(session).await {
            Ok(rec) => rec,
            Err(e) => {
                // Refused (no longer in view): not followed any more, even
                // if it was (its lines would otherwise go on coming).
                if watched && matches!(e, AppError::Domain(DomainError::NotFound(_))) {
                    self.leave(session);
                } else if !watched {
                    self.sub.leave(session);
                }
                return Err(e);
            }
        };
        let known = self.sessions.get(&session).is_some_and(|w| w.erased);
        // An erased chat is not its patron's any more (its token opens
        // nothing): a socket of theirs opened before the erasure reads none
        // of it either.
        let patron = matches!(self.viewer, Viewer::Patron { .. });
        if rec.erased && (patron || (after > 0 && !known)) {
            self.leave(session);
            return Ok(false);
        }
        // A client cannot claim to have seen the future: that would silence
        // every message up to the number it named. A patron's number is
        // their own (`Message::patron_seq`): where it stands is read.
        let (last, shown) = match self.viewer {
            Viewer::Patron { .. } => match self.app.store.seen_by_patron(session, after).await {
                Ok(numbers) => numbers,
                Err(e) => {
                    if !watched {
                        self.sub.leave(session);
                    }
                    return Err(e.into());
                }
            },
            Viewer::Staff(_) => (after.min(rec.last_seq), 0),
        };
        if let Viewer::Staff(staff) = &self.viewer {
            // Watching a live chat one takes no part in is never silent:
            // the chatting librarian sees who is watching (B3).
            let part = rec.ctx.librarian == Some(staff.id) || rec.ctx.member_mode(staff.id).is_some();
            if rec.state == refdesk_domain::chat::SessionState::Active && !part {
                self.sub.watch(&rec.ctx, Watcher::staff(staff.id, &staff.display_name));
            }
        } else {
            self.patron_present(&rec.ctx, rec.state);
        }
        let watchers = self.sub.watchers_of(session);
        let erased = rec.erased;
        let until = self.view_ends(&rec.ctx, rec.ended_at);
        let watched = Watched { ctx: rec.ctx, watchers, last, shown, more: false, erased, until };
        self.sessions.insert(session, Box::new(watched));
        if rec.state == refdesk_domain::chat::SessionState::Ended {
            self.forget_ended(session);
        }
        Ok(true)
    }

    /// Whether a page of lines read from the store is judged by the session
    /// read again after it: always for staff (what they see follows the
    /// session's hands and referral, and not every change of them writes a
    /// line marked as one); for a patron, who sees the lines for everyone
    /// whoever holds the chat, when a line changed hands (for presence).
    fn judged_again(&self, page: &[Message]) -> bool {
        !page.is_empty() && (matches!(self.viewer, Viewer::Staff(_)) || page.iter().any(|m| m.system.is_some()))
    }

    /// When this viewer's view of a session ends ([`Watched::until`]).
    fn view_ends(&self, ctx: &SessionContext, ended_at: Option<Millis>) -> Option<Millis> {
        match &self.viewer {
            Viewer::Staff(staff) => refdesk_domain::authz::view_ends(staff, ctx, ended_at),
            Viewer::Patron { .. } => None,
        }
    }

    /// Leaves a watched session whose view has ended ([`Watched::until`]);
    /// whether it did.
    fn left_in_time(&mut self, session: SessionId) -> bool {
        // The clock is read only for a session whose view ends (per event
        // on every watched session: most have none).
        let until = self.sessions.get(&session).and_then(|w| w.until);
        let over = until.is_some_and(|until| self.app.clock.now() > until);
        if over {
            self.leave(session);
        }
        over
    }

    /// A session's record as it is now, if this viewer may see it (I5).
    async fn record_in_view(&self, session: SessionId) -> AppResult<refdesk_store::SessionRecord> {
        let rec = self.app.store.session(session).await?.ok_or(DomainError::NotFound("session"))?;
        if let Viewer::Staff(staff) = &self.viewer {
            authorize_view_at(staff, &rec.ctx, rec.state, rec.ended_at, self.app.clock.now())?;
        }
        Ok(rec)
    }

    /// Reads a watched session's context again (after missed events, or
    /// lines that changed hands): a session no longer in view is left, and
    /// so is one erased since the viewer began to watch it.
    async fn read_context_again(&mut self, session: SessionId) -> AppResult<Again> {
        match self.record_in_view(session).await {
            Ok(rec) => {
                let until = self.view_ends(&rec.ctx, rec.ended_at);
                let Some(w) = self.sessions.get_mut(&session) else { return Ok(Again::Left) };
                if rec.erased && !w.erased {
                    self.leave(session);
                    return Ok(Again::Erased);
                }
                w.ctx = rec.ctx;
                w.until = until;
                Ok(Again::Watched)
            }
            Err(AppError::Domain(DomainError::NotFound(_))) => {
                self.leave(session);
                Ok(Again::Left)
            }
            Err(e) => Err(e),
        }
    }

    /// A resumed patron's place in line, once the replay is passed on: read
    /// from the store then, not when the resume began. A chat accepted
    /// meanwhile is in the replay, its "accepted" line with it, and a place
    /// counted before would follow that line and stand (its change of state
    /// came before this connection listened). `None` once not waiting.
    pub async fn place_in_line(&mut self, session: SessionId) -> AppResult<Option<Out>> {
        if !matches!(self.viewer, Viewer::Patron { session: own } if own == session) {
            return Ok(None);
        }
        let counted = async {
            let rec = self.app.store.session(session).await?.ok_or(DomainError::NotFound("session"))?;
            self.follow_queue(session, rec.state, rec.queue.library, rec.queued_at).await?;
            Ok::<_, AppError>(rec.patron_away && self.waiting.is_some())
        };
        match counted.await {
            // A page open again: the queue no longer shows them away.
            Ok(true) => self.patron_back(session).await,
            Ok(false) => {}
            Err(e) => {
                // Counted again at the next event, as after a lag.
                self.sub.set_lagged();
                return Err(e);
            }
        }
        Ok(self.position())
    }

    /// The next page (at most `limit` stored lines) of a resumed session,
    /// after what was last passed on; that mark moves past the page.
    pub async fn next_page(&mut self, session: SessionId, limit: u32) -> AppResult<Page<Message>> {
        let Some(from) = self.sessions.get(&session).map(|w| w.last) else {
            return Ok(Page { items: Vec::new(), done: true });
        };
        // A few pages are read at a time across the node: two hundred
        // replays at once would otherwise each hold a database connection
        // and a thread (SQLite) or wait on the pool (PostgreSQL).
        let read = {
            let _turn = self.app.rereads.acquire().await.map_err(|e| AppError::Internal(e.to_string().into()))?;
            self.app.store.messages_after(session, from, limit).await?
        };
        let done = read.len() < limit as usize;
        // A change of hands among these lines (an acceptance, a transfer, a
        // colleague joining, a referral, the end) may change who sees what
        // after it: the lines are judged by the session as it is now, read
        // after them, not by the copy from before them (a chat transferred
        // away while its replay was read would show the new hands' notes).
        // Out of view now, the replay is refused as a resume would be.
        if self.judged_again(&read) && self.read_context_again(session).await? != Again::Watched {
            return Err(DomainError::NotFound("session").into());
        }
        let Some(w) = self.sessions.get_mut(&session) else {
            return Ok(Page { items: Vec::new(), done: true });
        };
        let mut items = Vec::with_capacity(read.len());
        for m in read {
            w.passed(&m);
            if sees(&self.viewer, Item::Message { ctx: &w.ctx, message: &m }) {
                items.push(as_seen(&self.viewer, m));
            }
        }
        Ok(Page { items, done })
    }

    /// While a librarian chats with the patron, this patron's page counts
    /// as one open on the chat (a watcher marked `patron`): its staff are
    /// told, on every node, and told again when the last such page closes.
    /// Not while it waits (a queue may hold thousands, each a list every
    /// node would send the others every few seconds), nor once it ended.
    fn patron_present(&self, ctx: &SessionContext, state: refdesk_domain::chat::SessionState) {
        match state {
            refdesk_domain::chat::SessionState::Active => self.sub.watch(ctx, Watcher::patron()),
            _ => self.sub.unwatch(Some(ctx.id)),
        }
    }

    /// Counts this waiting patron's place in line again from the store
    /// (said only if it changed). A failed read leaves it as it was.
    async fn count_place_again(&mut self, out: &mut Vec<Out>) {
        let Some((queue, (since, session), position)) = self.waiting else { return };
        match self.app.store.queue_ahead(queue, since, session).await {
            Ok(ahead) if ahead as usize + 1 != position => {
                if let Some((_, _, position)) = self.waiting.as_mut() {
                    *position = ahead as usize + 1;
                }
                out.extend(self.position());
            }
            Ok(_) => {}
            Err(e) => tracing::debug!(%session, error = %e, "could not count a place in line again"),
        }
    }

    /// Keeps a patron's place in line: read once from the store when they
    /// (re)join a queue, then moved by the queue events ahead of them.
    async fn follow_queue(
        &mut self,
        session: SessionId,
        state: refdesk_domain::chat::SessionState,
        queue: refdesk_domain::ids::LibraryId,
        since: Millis,
    ) -> AppResult<()> {
        if state != refdesk_domain::chat::SessionState::Waiting {
            self.sub.leave_queue_place();
            self.waiting = None;
            return Ok(());
        }
        let key = (since, session);
        if self.waiting.is_some_and(|(q, k, _)| q == queue && k == key) {
            return Ok(());
        }
        // Listen first, then count: a change in between is at worst counted twice,
        // and the next event ahead corrects nothing it should not.
        self.sub.wait_in_queue(queue, key);
        let ahead = self.app.store.queue_ahead(queue, since, session).await?;
        self.waiting = Some((queue, key, ahead as usize + 1));
        Ok(())
    }

    /// The patron's place in line, while their chat waits.
    pub fn position(&self) -> Option<Out> {
        self.waiting.map(|(_, (since, _), position)| Out::Position { position, since })
    }

    /// Who is present in a watched session, if this viewer may know (B3).
    pub fn presence(&self, session: SessionId) -> Option<Out> {
        let w = self.sessions.get(&session)?;
        let ctx = &w.ctx;
        sees(&self.viewer, Item::Presence { ctx }).then(|| presence_of(ctx, &w.watchers))
    }

    /// Notes that a watched session ended; leaves the oldest ended one past
    /// [`ENDED_KEPT`]. A patron's connection follows only its own chat.
    fn forget_ended(&mut self, session: SessionId) {
        if !matches!(self.viewer, Viewer::Staff(_)) || !self.sessions.contains_key(&session) {
            return;
        }
        self.sub.unwatch(Some(session));
        // Opened again, it is the latest: to the back of the line.
        let ended = &mut self.desk().ended;
        ended.retain(|s| *s != session);
        ended.push_back(session);
        let past = ended.len().saturating_sub(ENDED_KEPT);
        let oldest: Vec<SessionId> = ended.drain(..past).collect();
        for old in oldest {
            self.leave(old);
        }
    }

    /// Stops watching a session.
    pub fn leave(&mut self, session: SessionId) {
        self.sub.unwatch(Some(session));
        self.sub.leave(session);
        self.sessions.remove(&session);
        if let Some(desk) = self.desk.as_deref_mut() {
            desk.ended.retain(|s| *s != session);
        }
    }

    /// Remembers the staff sign-in (its cookie token) this connection was
    /// opened with, to check again after missed events.
    pub fn check_sign_in(&mut self, token: &str) {
        self.desk().login = Some(crate::auth::digest(token));
    }

    /// Whether the staff sign-in this connection was opened with still
    /// signs someone in (not signed out, not expired, the account enabled).
    /// Signing out ends one sign-in and publishes nothing, so a connection
    /// asks now and then (on every ping) and closes when it is gone: on
    /// every node alike. Always true for a patron.
    pub async fn signed_in(&self) -> AppResult<bool> {
        match self.sign_in() {
            Some(login) => Ok(self.app.store.staff_by_login(login, self.app.clock.now()).await?.is_some()),
            None => Ok(true),
        }
    }

    /// The digest of the staff sign-in this connection was opened with.
    pub fn sign_in(&self) -> Option<&str> {
        self.desk.as_deref().and_then(|d| d.login.as_deref())
    }

    /// Starts receiving the queue; returns the waiting chats this staff
    /// member may serve now. Patrons have no queue.
    pub async fn watch_queue(&mut self) -> AppResult<Vec<QueueEntry>> {
        if matches!(self.viewer, Viewer::Patron { .. }) {
            return Err(DomainError::Forbidden("patrons have no queue").into());
        }
        if let Viewer::Staff(me) = &self.viewer {
            self.sub.join_queue(me.home.cooperative);
            let on_duty = self.app.is_on_duty(me).await?;
            self.desk().on_duty = on_duty;
        }
        self.desk().watching_queue = true;
        let now = self.app.clock.now();
        let Viewer::Staff(me) = &self.viewer else { return Ok(Vec::new()) };
        let all = self.app.waiting_now(me.home.cooperative).await?;
        Ok(all.iter().filter(|e| self.may_see_waiting(e, now)).cloned().collect())
    }

    /// Starts receiving the chat monitor; returns the live sessions this
    /// staff member may see in it (My and ALL together).
    pub async fn watch_monitor(&mut self) -> AppResult<Vec<SessionSummary>> {
        let Viewer::Staff(me) = &self.viewer else {
            return Err(DomainError::Forbidden("patrons have no chat monitor").into());
        };
        let (coop, scope, id) = (me.home.cooperative, crate::desk::monitor_scope(me), me.id);
        self.sub.join_monitor(coop);
        self.desk().monitor = true;
        let live = self.app.store.live_seen_by(scope, id).await?;
        let mut list: Vec<SessionSummary> =
            live.iter().filter(|r| sees(&self.viewer, Item::Monitored { ctx: &r.ctx })).map(|r| r.summary()).collect();
        self.desk().monitored = list.iter().map(|s| s.ctx.id).collect();
        // The viewer's own chats (My) first: a frame may show only the first
        // part of a long list (the socket's `MONITOR_SHOWN`).
        if let Viewer::Staff(me) = &self.viewer {
            list.sort_by_key(|s| s.ctx.librarian != Some(me.id) && s.ctx.member_mode(me.id).is_none());
        }
        Ok(list)
    }

    /// One page (at most `limit` messages) of an IM conversation after
    /// `after` (I3 for IM); the conversation is kept in order from then on.
    /// A replay calls it again from the last `seq` of each page.
    pub async fn im_page(&mut self, peer: StaffId, after: u64, limit: u32) -> AppResult<Page<ImMessage>> {
        // A few at a time across the node, as for [`Feed::next_page`].
        let rereads = self.app.rereads.clone();
        let page = {
            let _turn = rereads.acquire().await.map_err(|e| AppError::Internal(e.to_string().into()))?;
            self.im_page_of(peer, after, limit).await?
        };
        if let (true, 0, Viewer::Staff(me)) = (page.items.is_empty(), after, &self.viewer) {
            // A first page with nothing on it: refused as REST refuses it
            // when there is no one to talk with (another cooperative's
            // staff, or nobody). A desk catching up after a reconnect asks
            // after what it holds, and is not looked up each time.
            self.app.colleague(me, peer, "peer").await?;
        }
        Ok(page)
    }

    async fn im_page_of(&mut self, peer: StaffId, after: u64, limit: u32) -> AppResult<Page<ImMessage>> {
        let Viewer::Staff(me) = &self.viewer else {
            return Err(DomainError::Forbidden("patrons have no IM").into());
        };
        let me = me.id;
        let items = self.app.store.im_after(me, peer, after, limit).await?;
        let done = items.len() < limit as usize;
        // Only what was really read moves the mark: a client claiming a
        // future number does not silence what comes next.
        if let Some(m) = items.last() {
            let entry = self.desk().im.entry(peer).or_insert(0);
            *entry = (*entry).max(m.seq);
        } else if after > 0 {
            let known = self.app.store.im_conversations(me).await?.into_iter().find(|c| c.peer == peer);
            // A peer with no conversation leaves no mark: a client naming
            // made-up peers must not grow the marks (copied on every event,
            // each one read again after a lag).
            if let Some(known) = known {
                let entry = self.desk().im.entry(peer).or_insert(0);
                *entry = (*entry).max(after.min(known.last_seq));
            }
        }
        Ok(Page { items, done })
    }

    /// A page of an IM conversation after `after`, for a gap or a lag (what
    /// was missed, not a whole history); a full page asks for the rest at
    /// the next turn.
    async fn catch_up_im(&mut self, peer: StaffId, after: u64) -> AppResult<Vec<ImMessage>> {
        // Not `im_page`: a re-read already holds its turn.
        let page = self.im_page_of(peer, after, PAGE).await?;
        let more = &mut self.desk().im_more;
        more.retain(|p| *p != peer);
        if !page.done {
            more.push(peer);
            self.wake();
        }
        Ok(page.items)
    }

    /// Asks for a turn to read the rest of a catch-up, once.
    fn wake(&mut self) {
        if !self.woken {
            self.woken = true;
            self.sub.wake();
        }
    }

    /// The next page of every catch-up that stopped at one (a connection
    /// that missed much reads it a page per turn), a re-read's turn held as
    /// for the first page.
    async fn catch_up_more(&mut self, out: &mut Vec<Out>) -> AppResult<()> {
        self.woken = false;
        if !self.sessions.values().any(|w| w.more) && self.desk.as_deref().is_none_or(|d| d.im_more.is_empty()) {
            return Ok(());
        }
        let rereads = self.app.rereads.clone();
        let _turn = rereads.acquire().await.map_err(|e| AppError::Internal(e.to_string().into()))?;
        let sessions: Vec<SessionId> = self.sessions.iter().filter(|(_, w)| w.more).map(|(s, _)| *s).collect();
        for s in sessions {
            out.extend(self.catch_up(s).await?.into_iter().map(Out::Message));
        }
        let peers = self.desk.as_deref().map(|d| d.im_more.clone()).unwrap_or_default();
        for peer in peers {
            let last = self.desk.as_deref().and_then(|d| d.im.get(&peer).copied()).unwrap_or(0);
            out.extend(self.catch_up_im(peer, last).await?.into_iter().map(Out::Im));
        }
        Ok(())
    }

    fn may_see_waiting(&self, e: &QueueEntry, now: Millis) -> bool {
        if !self.desk_has(|d| d.on_duty) {
            return false;
        }
        let item = Item::Waiting {
            placement: e.queue,
            waited: now - e.since,
            rollup: self.app.rollup_ms(),
            coop_now: e.coop_now,
        };
        sees(&self.viewer, item)
    }

    /// Reads from the store a page of what follows the last processed
    /// sequence number of `session`, filtered for this viewer; a full page
    /// asks for the rest at the connection's next turn.
    /// All or nothing: on an error the session's place is unchanged.
    async fn catch_up(&mut self, session: SessionId) -> AppResult<Vec<Message>> {
        let Some(from) = self.sessions.get(&session).map(|w| w.last) else { return Ok(Vec::new()) };
        let page = self.app.store.messages_after(session, from, PAGE).await?;
        // As for a replay's page (`next_page`): judged as the session is now.
        if self.judged_again(&page) && self.read_context_again(session).await? != Again::Watched {
            return Ok(Vec::new());
        }
        let more = page.len() == PAGE as usize;
        if more {
            self.wake();
        }
        let Some(w) = self.sessions.get_mut(&session) else { return Ok(Vec::new()) };
        w.more = more;
        let mut out = Vec::with_capacity(page.len());
        for m in page {
            w.passed(&m);
            if sees(&self.viewer, Item::Message { ctx: &w.ctx, message: &m }) {
                out.push(as_seen(&self.viewer, m));
            }
        }
        Ok(out)
    }

    /// Waits for the next committed event. Cancel-safe: use it in
    /// `select!`, then pass the event to [`Feed::handle`] outside it.
    /// Never ends otherwise: the feed's own mailbox is never closed.
    pub async fn recv(&mut self) -> Arc<Event> {
        self.sub.recv().await
    }

    /// The next committed event if one is already waiting; never waits.
    pub fn try_recv(&mut self) -> Option<Arc<Event>> {
        self.sub.try_recv()
    }

    /// Updates a watched session's context; reports a change of who is present.
    fn refresh(&mut self, ctx: &SessionContext, out: &mut Vec<Out>) {
        let Some(w) = self.sessions.get_mut(&ctx.id) else { return };
        if ctx.version < w.ctx.version {
            return; // from before a change already applied (another node's late event)
        }
        let changed = w.ctx.members != ctx.members || w.ctx.librarian != ctx.librarian;
        w.ctx = ctx.clone();
        if changed && sees(&self.viewer, Item::Presence { ctx }) {
            out.push(presence_of(ctx, &w.watchers));
        }
    }

    /// Turns one event into what this viewer may see, in order, filling gaps.
    /// On an error nothing is lost: what was being read is read again at
    /// the next event (the connection counts as lagged), and if none comes,
    /// at a wake-up of its own a moment later ([`Feed::retry_later`]).
    pub async fn handle(&mut self, event: Arc<Event>) -> AppResult<Vec<Out>> {
        // All or nothing: if anything fails, where each session and
        // conversation stood is restored, so that what was read but not
        // passed on is read again.
        let sessions: Vec<(SessionId, (u64, u64))> =
            self.sessions.iter().map(|(s, w)| (*s, (w.last, w.shown))).collect();
        let (im, waiting) = (self.desk.as_ref().map(|d| d.im.clone()), self.waiting);
        let handled = self.handle_event(event).await;
        if handled.is_err() {
            self.waiting = waiting;
            for (s, (last, shown)) in sessions {
                if let Some(w) = self.sessions.get_mut(&s) {
                    (w.last, w.shown) = (last, shown);
                }
            }
            if let (Some(desk), Some(im)) = (self.desk.as_deref_mut(), im) {
                desk.im = im;
            }
            self.sub.set_lagged();
            if let Err(e) = &handled {
                if !matches!(e, AppError::Domain(_)) {
                    self.retry_later();
                }
            }
        } else {
            self.failures = 0;
        }
        handled
    }

    /// After an event failed on the store, asks for a turn of its own a
    /// little later, so that what it was reading reaches the viewer even if
    /// no other event comes (a quiet chat, a patron waiting in line). One
    /// at a time ([`Subscription::wake_after`]); the wait doubles with each
    /// failure in a row, from [`RETRY_FIRST`] to [`RETRY_MOST`], give or
    /// take a random half, so that a store that is down is not asked again
    /// and again, nor by every connection at the same moment.
    fn retry_later(&mut self) {
        let base = RETRY_FIRST.saturating_mul(1 << self.failures.min(5)).min(RETRY_MOST);
        let mut byte = [0u8; 1];
        let spread = getrandom::fill(&mut byte).map_or(128, |()| u32::from(byte[0]));
        let wait = base / 2 + base * spread / 255;
        self.failures = self.failures.saturating_add(1);
        self.sub.wake_after(wait);
    }

    async fn reread(&mut self) -> AppResult<Vec<Out>> {
        let rereads = self.app.rereads.clone();
        let _turn = rereads.acquire().await.map_err(|e| AppError::Internal(e.to_string().into()))?;
        self.app.metrics().rereads.inc();
        // A wake-up may have been among what was dropped: asked for anew.
        self.woken = false;
        let mut out = Vec::new();
        if let Some(login) = self.sign_in() {
            if self.app.store.staff_by_login(login, self.app.clock.now()).await?.is_none() {
                return Ok(vec![Out::SignedOut]);
            }
        }
        // Events were dropped for this slow connection: everything it
        // watches is re-read from the store, which has all of it.
        let watched: Vec<SessionId> = self.sessions.keys().copied().collect();
        for s in watched {
            // Changes of hands may be among what was dropped: the
            // context is re-read, and a session no longer in view is left.
            match self.read_context_again(s).await? {
                Again::Watched => {}
                Again::Left => continue,
                Again::Erased => {
                    out.push(Out::Erased(s));
                    continue;
                }
            }
            out.extend(self.catch_up(s).await?.into_iter().map(Out::Message));
            // Who is present may have changed among what was dropped (a
            // patron's page closed): told again if it did.
            let now = self.sub.watchers_of(s);
            if let Some(w) = self.sessions.get_mut(&s).filter(|w| w.watchers != now) {
                w.watchers = now;
                if sees(&self.viewer, Item::Presence { ctx: &w.ctx }) {
                    out.push(presence_of(&w.ctx, &w.watchers));
                }
            }
        }
        // A patron's place in line is counted again — a chat sent back to
        // a queue meanwhile is in line again — and told only if it moved.
        if let Viewer::Patron { session } = self.viewer {
            if self.sessions.contains_key(&session) {
                if let Some(rec) = self.app.store.session(session).await? {
                    let before = self.waiting.map(|(_, _, place)| place);
                    self.waiting = None;
                    self.patron_present(&rec.ctx, rec.state);
                    self.follow_queue(session, rec.state, rec.queue.library, rec.queued_at).await?;
                    if self.waiting.map(|(_, _, place)| place) != before {
                        out.extend(self.position());
                    }
                    // Marked away among what was missed, while this page is open.
                    if rec.patron_away && self.waiting.is_some() {
                        self.patron_back(session).await;
                    }
                }
            }
        }
        let peers: Vec<(StaffId, u64)> = self.desk.iter().flat_map(|d| d.im.iter().map(|(p, l)| (*p, *l))).collect();
        for (peer, last) in peers {
            out.extend(self.catch_up_im(peer, last).await?.into_iter().map(Out::Im));
        }
        // Queue and monitor changes may be among what was missed: the
        // lists are sent whole again.
        if self.desk_has(|d| d.watching_queue) {
            out.push(Out::Queue(self.watch_queue().await?));
        }
        if self.desk_has(|d| d.monitor) {
            out.push(Out::MonitorList(self.watch_monitor().await?));
        }
        Ok(out)
    }

    async fn handle_event(&mut self, event: Arc<Event>) -> AppResult<Vec<Out>> {
        let mut out = Vec::new();
        if self.sub.take_lagged() {
            out = self.reread().await?;
            // Every change of the link re-reads (while it is down, every
            // 5 s): a desk hears of it then.
            let down = self.app.bus.link_down();
            if let Some(desk) = self.desk.as_deref_mut().filter(|d| d.told_link_down != down) {
                desk.told_link_down = down;
                out.push(Out::Link { down });
            }
        }
        match &*event {
            Event::Message { ctx, message } => self.on_message(ctx, message, &mut out).await?,
            Event::Watchers { ctx, watchers } => self.on_watchers(ctx.id, watchers, &mut out),
            Event::Typing { ctx, audience, who, by, on } => {
                // Judged by the newer of the typist's copy of the session and
                // this connection's own: a typist whose copy predates a change
                // (a member gone from join to whisper) is not shown by it.
                let own = self.sessions.get(&ctx.id).map(|w| &w.ctx);
                let newest = own.filter(|own| own.version > ctx.version).unwrap_or(ctx);
                if own.is_some() && sees(&self.viewer, Item::Typing { ctx: newest, audience: *audience, by: *by }) {
                    let patron = *by == Some(refdesk_domain::chat::Typist::Patron);
                    out.push(Out::Typing { session: ctx.id, who: who.clone(), patron, on: *on });
                }
            }
            Event::QueueAdded(e) => self.on_queue_added(e, &mut out),
            Event::QueueRolledUp(e) => {
                if self.may_see_waiting(e, self.app.clock.now()) {
                    out.push(Out::QueueAdded(e.clone()));
                }
            }
            Event::QueueRemoved { session, placement, away, .. } => {
                self.on_queue_removed(*session, *placement, *away, &mut out).await
            }
            Event::PatronAway { session, queue, since, .. } => {
                self.on_patron_away(*session, *queue, *since, &mut out).await
            }
            Event::SessionChanged(summary) => self.on_session_changed(summary, &mut out).await?,
            Event::Im(m) => self.on_im(m, &mut out).await?,
            Event::ImRead { staff, peer, seq } => {
                let mine = matches!(&self.viewer, Viewer::Staff(me) if me.id == *staff);
                if mine && sees(&self.viewer, Item::Im { from: *peer, to: *staff }) {
                    out.push(Out::ImRead { peer: *peer, seq: *seq });
                }
            }
            Event::Availability { staff, cooperative, availability } => {
                self.on_availability(*staff, *cooperative, *availability, &mut out).await?
            }
            Event::SignInEnded { login } => {
                if self.sign_in() == Some(login.as_str()) {
                    out.push(Out::SignedOut);
                }
            }
            Event::Referred { question, to, library_name, text, by, by_id, follow_up } => {
                let theirs = matches!(&self.viewer, Viewer::Staff(me) if Some(me.id) == *by_id);
                if !theirs && sees(&self.viewer, Item::Referral { to: *to }) {
                    out.push(Out::Referred {
                        question: *question,
                        library_name: library_name.clone(),
                        text: text.clone(),
                        by: by.clone(),
                        follow_up: *follow_up,
                    });
                }
            }
            Event::SignedOut { staff } => {
                if matches!(&self.viewer, Viewer::Staff(me) if me.id == *staff) {
                    out.push(Out::SignedOut);
                }
            }
            Event::Erased { sessions } => self.on_erased(sessions, &mut out),
            // A lag is handled above (everything followed was re-read);
            // otherwise the connection was woken for the rest of a catch-up.
            Event::Resync => self.catch_up_more(&mut out).await?,
        }
        Ok(out)
    }

    /// Chats whose personal data was erased: each this connection follows
    /// is told of, and no longer followed (the page drops what it shows of
    /// it; opening it again reads what is left). The event names several
    /// chats and reaches this connection once for each it follows: the
    /// first time tells of them all.
    fn on_erased(&mut self, sessions: &[SessionId], out: &mut Vec<Out>) {
        for session in sessions {
            let Some(watched) = self.sessions.get(session) else { continue };
            if !sees(&self.viewer, Item::Erased { ctx: &watched.ctx }) {
                continue;
            }
            self.leave(*session);
            out.push(Out::Erased(*session));
        }
    }

    /// A committed line: passed on once, in order, if this viewer sees it.
    async fn on_message(&mut self, ctx: &SessionContext, message: &Message, out: &mut Vec<Out>) -> AppResult<()> {
        // Ticks for the chats the monitor lists (live ones: an ended chat
        // is shown ended once, then no longer listed) — not for the lines
        // saying a librarian's desk lost its connection or is back, which
        // are no one's activity (the store's last message time leaves
        // them out too).
        let activity = !matches!(
            message.system,
            Some(refdesk_domain::chat::SystemEvent::Away | refdesk_domain::chat::SystemEvent::Back)
        );
        if activity
            && self.desk_has(|d| d.monitor && d.monitored.contains(&ctx.id))
            && sees(&self.viewer, Item::Monitored { ctx })
        {
            out.push(Out::MonitorTick { session: ctx.id, at: message.at });
        }
        if self.left_in_time(ctx.id) {
            return Ok(());
        }
        self.refresh(ctx, out);
        let Some(w) = self.sessions.get_mut(&ctx.id) else { return Ok(()) };
        if message.seq <= w.last {
            return Ok(()); // already passed on (I3: no duplicate)
        }
        if message.seq > w.last + 1 {
            // A gap: fill it (and this message) from the store.
            self.app.metrics().feed_gaps.inc();
            tracing::debug!(session = %ctx.id, seq = message.seq, after = w.last, "a gap; filled from the store");
            out.extend(self.catch_up(ctx.id).await?.into_iter().map(Out::Message));
            return Ok(());
        }
        w.passed(message);
        if sees(&self.viewer, Item::Message { ctx: &w.ctx, message }) {
            // In the receiving connection's span (its request id): with the
            // sender's "message committed", one line can be followed across.
            tracing::debug!(session = %ctx.id, seq = message.seq, "message passed on");
            out.push(Out::Message(as_seen(&self.viewer, message.clone())));
        }
        Ok(())
    }

    /// Who is looking at a chat. Who takes part comes from this
    /// connection's own context, the newest it has (the event's is from
    /// when watching began).
    fn on_watchers(&mut self, session: SessionId, watchers: &[Watcher], out: &mut Vec<Out>) {
        let Some(w) = self.sessions.get_mut(&session) else { return };
        w.watchers = watchers.to_vec();
        if sees(&self.viewer, Item::Presence { ctx: &w.ctx }) {
            out.push(presence_of(&w.ctx, watchers));
        }
    }

    fn on_queue_added(&mut self, e: &QueueEntry, out: &mut Vec<Out>) {
        if let Viewer::Patron { .. } = self.viewer {
            // Delivered to a patron only when it lands ahead of them (and
            // counted only with its patron there).
            if let Some((_, _, position)) = self.waiting.as_mut().filter(|_| e.away_since.is_none()) {
                *position += 1;
                out.extend(self.position());
            }
        } else if self.may_see_waiting(e, self.app.clock.now()) {
            out.push(Out::QueueAdded(e.clone()));
        }
    }

    async fn on_queue_removed(
        &mut self,
        session: SessionId,
        placement: Placement,
        away: Option<bool>,
        out: &mut Vec<Out>,
    ) {
        if let Viewer::Patron { .. } = self.viewer {
            // Someone ahead left the queue: one place forward (unless their
            // page was closed, and they were not counted ahead; an event
            // that does not say: counted again).
            match away {
                Some(true) => {}
                Some(false) => {
                    if let Some((_, _, position)) = self.waiting.as_mut() {
                        *position = position.saturating_sub(1).max(1);
                        out.extend(self.position());
                    }
                }
                None => self.count_place_again(out).await,
            }
            return;
        }
        // Anyone who could have been offered it hears that it is gone.
        if self.may_have_been_offered(placement) {
            out.push(Out::QueueRemoved(session));
        }
    }

    /// Whether this viewer could have been offered a chat waiting in
    /// `queue`, at some time (waiting long enough, or sent to the
    /// cooperative's queue): who hears of what becomes of it.
    fn may_have_been_offered(&self, queue: Placement) -> bool {
        sees(
            &self.viewer,
            Item::Waiting { placement: queue, waited: Millis::MAX, rollup: self.app.rollup_ms(), coop_now: true },
        )
    }

    /// A waiting patron's pages closed, or one opened again. Staff who
    /// could be offered the chat are told; a page of the patron's own that
    /// is open marks them back at once (the page that closed may have been
    /// another tab, on this node or another).
    async fn on_patron_away(
        &mut self,
        session: SessionId,
        queue: Placement,
        since: Option<Millis>,
        out: &mut Vec<Out>,
    ) {
        if let Viewer::Patron { session: own } = self.viewer {
            if own == session && since.is_some() && self.waiting.is_some() {
                self.patron_back(session).await;
            } else if own != session {
                // A patron ahead closed their last page, or opened one again
                // (delivered only to those behind). Counted again rather than
                // moved by one: it carries no version, and may come before or
                // after the chat's leaving the line, from another node.
                self.count_place_again(out).await;
            }
        } else if self.may_have_been_offered(queue) {
            out.push(Out::PatronAway { session, since });
        }
    }

    /// Marks this connection's patron back (a page of the waiting chat is
    /// open). A failed write is logged: the queue shows them away until
    /// their next page opens, which is all it costs.
    async fn patron_back(&self, session: SessionId) {
        if let Err(e) = self.app.store.patron_away(session, None).await {
            tracing::warn!(%session, error = %e, "could not mark a waiting patron back");
        }
    }

    /// This connection's page closed (its client went; not this node): a
    /// waiting patron with no other page of the chat open on this node is
    /// marked away, as of when their last page closed, once
    /// `limits.patron_away_seconds` pass with none open here again (a
    /// reload, a move to another page of the library's site: no flicker at
    /// the desks, no write). One wait per chat, however many pages close.
    /// A page of theirs open on another node marks them back as soon as it
    /// hears of it.
    ///
    /// `opened`: the chat's queue and place as the page's socket found them
    /// when it opened, for a page closed before it was told its place.
    pub fn page_closed(&mut self, opened: Option<(refdesk_domain::ids::LibraryId, crate::bus::QueueKey)>) {
        let Viewer::Patron { session } = self.viewer else { return };
        let Some((queue, key)) = self.waiting.take().map(|(queue, key, _)| (queue, key)).or(opened) else { return };
        self.sub.leave_queue_place();
        let bus = self.app.bus().clone();
        if bus.waits_at(queue, key) || !bus.page_gone(session, self.app.clock.now()) {
            return;
        }
        let app = self.app.clone();
        let grace = std::time::Duration::from_secs(app.limits().patron_away_seconds);
        tokio::spawn(async move {
            // From the latest close: a page closed again meanwhile waits its
            // own grace.
            while let Some((since, closed)) = bus.pages_gone_at(session) {
                let due = closed + grace;
                if std::time::Instant::now() < due {
                    tokio::time::sleep_until(due.into()).await;
                    continue;
                }
                bus.pages_wait_over(session);
                if !bus.waits_at(queue, key) {
                    if let Err(e) = app.store.patron_away(session, Some(since)).await {
                        tracing::warn!(%session, error = %e, "could not mark a waiting patron away");
                    }
                }
                break;
            }
        });
    }

    async fn on_session_changed(&mut self, summary: &SessionSummary, out: &mut Vec<Out>) -> AppResult<()> {
        let ended = summary.state == refdesk_domain::chat::SessionState::Ended;
        self.left_in_time(summary.ctx.id);
        self.refresh(&summary.ctx, out);
        // A watcher who now takes part (whispers, joins, took the chat) is
        // listed as taking part, not as watching too (B3).
        if let Viewer::Staff(staff) = &self.viewer {
            let ctx = &summary.ctx;
            if ctx.librarian == Some(staff.id) || ctx.member_mode(staff.id).is_some() {
                self.sub.unwatch(Some(ctx.id));
            }
        }
        if ended {
            self.forget_ended(summary.ctx.id);
            // Its end starts the day a librarian who chatted for another
            // library still follows it (the end's time is about now).
            let until = self.view_ends(&summary.ctx, Some(self.app.clock.now()));
            if let Some(w) = self.sessions.get_mut(&summary.ctx.id).filter(|w| w.until.is_none()) {
                w.until = until;
            }
            self.left_in_time(summary.ctx.id);
        }
        if let Viewer::Patron { session } = self.viewer {
            if summary.ctx.id == session {
                // Accepted, ended, or transferred back to a queue.
                self.patron_present(&summary.ctx, summary.state);
                self.follow_queue(session, summary.state, summary.queue.library, summary.queued_at).await?;
                out.extend(self.position());
            }
        }
        let Some(desk) = self.desk.as_deref_mut().filter(|d| d.monitor) else { return Ok(()) };
        if sees(&self.viewer, Item::Monitored { ctx: &summary.ctx }) {
            // An ended chat is shown ended once, then no longer tracked: a
            // later change of it (a conference member leaving, a code) is
            // not the monitor's, whose list is of live chats.
            if ended {
                if desk.monitored.remove(&summary.ctx.id) {
                    out.push(Out::Monitor(summary.clone()));
                }
            } else {
                desk.monitored.insert(summary.ctx.id);
                out.push(Out::Monitor(summary.clone()));
            }
        } else if desk.monitored.remove(&summary.ctx.id) {
            out.push(Out::MonitorGone(summary.ctx.id));
        }
        Ok(())
    }

    /// A staff message: passed on once, in order, gaps filled from the store.
    async fn on_im(&mut self, m: &ImMessage, out: &mut Vec<Out>) -> AppResult<()> {
        let Viewer::Staff(me) = &self.viewer else { return Ok(()) };
        if !sees(&self.viewer, Item::Im { from: m.from, to: m.to }) {
            return Ok(());
        }
        let peer = if m.from == me.id { m.to } else { m.from };
        let last = self.desk.as_ref().and_then(|d| d.im.get(&peer).copied()).unwrap_or(m.seq - 1);
        if m.seq <= last {
            return Ok(());
        }
        if m.seq > last + 1 {
            out.extend(self.catch_up_im(peer, last).await?.into_iter().map(Out::Im));
            return Ok(());
        }
        self.desk().im.insert(peer, m.seq);
        out.push(Out::Im(m.clone()));
        Ok(())
    }

    async fn on_availability(
        &mut self,
        staff: StaffId,
        cooperative: CooperativeId,
        availability: Availability,
        out: &mut Vec<Out>,
    ) -> AppResult<()> {
        let on_duty = availability == Availability::OnDuty;
        if matches!(&self.viewer, Viewer::Staff(me) if me.id == staff) && on_duty != self.desk_has(|d| d.on_duty) {
            self.desk().on_duty = on_duty;
            // Going on duty, the patrons already waiting are offered at once
            // (off duty, none: nothing to read): the whole queue.
            if let (true, Viewer::Staff(me)) = (self.desk_has(|d| d.watching_queue), &self.viewer) {
                let now = self.app.clock.now();
                let all = if on_duty { self.app.waiting_now(me.home.cooperative).await? } else { Arc::default() };
                out.push(Out::Queue(all.iter().filter(|e| self.may_see_waiting(e, now)).cloned().collect()));
            }
        }
        if sees(&self.viewer, Item::Colleague { cooperative }) {
            out.push(Out::Availability { staff, availability });
        }
        Ok(())
    }
}

/// Who is in a session (B3), for staff: its librarian and members, the
/// staff watching it, and whether the patron's page is open — the patron's
/// own entry among the watchers is told as that alone, never listed.
fn presence_of(ctx: &SessionContext, watchers: &[Watcher]) -> Out {
    Out::Presence {
        session: ctx.id,
        librarian: ctx.librarian,
        members: ctx.members.clone(),
        watchers: watchers.iter().filter(|w| !w.patron).cloned().collect(),
        patron_here: watchers.iter().any(|w| w.patron),
    }
}
