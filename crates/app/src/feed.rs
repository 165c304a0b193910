//! One connection's view of the bus. A [`Feed`] holds what the connection
//! watches and the last sequence number it has passed on for each session,
//! and turns committed events into what this viewer may see:
//!
//! - every event goes through [`refdesk_domain::visibility::sees`] — the one
//!   visibility function — before it is handed out (I1);
//! - per session, events come out in sequence order with no gap and no
//!   duplicate (I3): older ones are dropped, and a gap (after a lag, or a
//!   node that missed something) is filled from the store;
//! - [`Feed::resume`] joins the bus *before* reading the store, so nothing
//!   committed in between can fall through the crack.

use crate::bus::Subscription;
use crate::{App, AppResult};
use refdesk_domain::authz::{authorize, Action, Target};
use refdesk_domain::chat::{Message, SessionContext};
use refdesk_domain::event::{Event, QueueEntry};
use refdesk_domain::ids::SessionId;
use refdesk_domain::visibility::{sees, Item, Viewer};
use refdesk_domain::{DomainError, Millis};
use std::collections::HashMap;
use std::sync::Arc;

/// Page size when reading a session's history from the store.
const PAGE: u32 = 500;

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
        /// Started or stopped.
        on: bool,
    },
    /// A waiting chat the viewer may serve.
    QueueAdded(QueueEntry),
    /// A chat left the queue.
    QueueRemoved(SessionId),
}

struct Watched {
    ctx: SessionContext,
    /// Highest sequence number processed (seen or filtered out).
    last: u64,
}

/// A connection's feed.
pub struct Feed {
    app: App,
    viewer: Viewer,
    sub: Subscription,
    sessions: HashMap<SessionId, Watched>,
}

impl Feed {
    /// A feed for `viewer`, watching nothing yet.
    pub fn new(app: &App, viewer: Viewer) -> Feed {
        let sub = app.bus.subscribe(app.limits.connection_queue);
        Feed { app: app.clone(), viewer, sub, sessions: HashMap::new() }
    }

    /// Who this feed is for.
    pub fn viewer(&self) -> &Viewer {
        &self.viewer
    }

    /// The session context last seen, if the feed watches the session.
    pub fn context(&self, session: SessionId) -> Option<&SessionContext> {
        self.sessions.get(&session).map(|w| &w.ctx)
    }

    /// Starts (or restarts) watching a session and returns what the viewer
    /// may see of it after `after`. Refused outside the viewer's scope (I5).
    pub async fn resume(&mut self, session: SessionId, after: u64) -> AppResult<Vec<Message>> {
        let rec = self.app.store.session(session).await?.ok_or(DomainError::NotFound("session"))?;
        match &self.viewer {
            Viewer::Patron { session: own } if *own == session => {}
            Viewer::Patron { .. } => return Err(DomainError::NotFound("session").into()),
            Viewer::Staff(staff) => {
                let target = Target { placement: rec.ctx.placement, state: rec.state, librarian: rec.ctx.librarian };
                authorize(staff, Action::View, &target)?;
            }
        }
        self.sub.join(session);
        // A client cannot claim to have seen the future: that would silence
        // every message up to the number it named.
        let after = after.min(rec.last_seq);
        self.sessions.insert(session, Watched { ctx: rec.ctx, last: after });
        self.catch_up(session).await
    }

    /// Stops watching a session.
    pub fn leave(&mut self, session: SessionId) {
        self.sub.leave(session);
        self.sessions.remove(&session);
    }

    /// Starts receiving the queue; returns the waiting chats this staff
    /// member may serve now. Patrons have no queue.
    pub async fn watch_queue(&mut self) -> AppResult<Vec<QueueEntry>> {
        if matches!(self.viewer, Viewer::Patron { .. }) {
            return Err(DomainError::Forbidden("patrons have no queue").into());
        }
        self.sub.join_queue();
        let now = self.app.clock.now();
        let all = self.app.store.waiting().await?;
        Ok(all.into_iter().filter(|e| self.may_see_waiting(e, now)).collect())
    }

    fn may_see_waiting(&self, e: &QueueEntry, now: Millis) -> bool {
        let item = Item::Waiting { placement: e.placement, waited: now - e.since, rollup: self.app.rollup_ms() };
        sees(&self.viewer, item)
    }

    /// Reads from the store everything after the last processed sequence
    /// number of `session`, filtered for this viewer.
    async fn catch_up(&mut self, session: SessionId) -> AppResult<Vec<Message>> {
        let mut out = Vec::new();
        loop {
            let Some(w) = self.sessions.get(&session) else { return Ok(out) };
            let page = self.app.store.messages_after(session, w.last, PAGE).await?;
            let Some(w) = self.sessions.get_mut(&session) else { return Ok(out) };
            let full = page.len() == PAGE as usize;
            for m in page {
                w.last = w.last.max(m.seq);
                if sees(&self.viewer, Item::Message { ctx: &w.ctx, message: &m }) {
                    out.push(m);
                }
            }
            if !full {
                return Ok(out);
            }
        }
    }

    /// The highest sequence number processed for a watched session.
    pub fn last_seq(&self, session: SessionId) -> Option<u64> {
        self.sessions.get(&session).map(|w| w.last)
    }

    /// Waits for the next committed event. Cancel-safe: use it in
    /// `select!`, then pass the event to [`Feed::handle`] outside it.
    /// `None` when the bus has gone away.
    pub async fn recv(&mut self) -> Option<Arc<Event>> {
        self.sub.rx.recv().await
    }

    /// Turns one event into what this viewer may see, in order, filling gaps.
    pub async fn handle(&mut self, event: Arc<Event>) -> AppResult<Vec<Out>> {
        let mut out = Vec::new();
        if self.sub.take_lagged() {
            // Events were dropped for this slow connection: everything it
            // watches is re-read from the store, which has all of it.
            let watched: Vec<SessionId> = self.sessions.keys().copied().collect();
            for s in watched {
                out.extend(self.catch_up(s).await?.into_iter().map(Out::Message));
            }
        }
        match &*event {
            Event::Message { ctx, message } => {
                let Some(w) = self.sessions.get_mut(&ctx.id) else { return Ok(out) };
                w.ctx = ctx.clone();
                if message.seq <= w.last {
                    return Ok(out); // already passed on (I3: no duplicate)
                }
                if message.seq > w.last + 1 {
                    // A gap: fill it (and this message) from the store.
                    out.extend(self.catch_up(ctx.id).await?.into_iter().map(Out::Message));
                    return Ok(out);
                }
                w.last = message.seq;
                if sees(&self.viewer, Item::Message { ctx: &w.ctx, message }) {
                    out.push(Out::Message(message.clone()));
                }
            }
            Event::Typing { ctx, audience, who, on } => {
                if self.sessions.contains_key(&ctx.id) && sees(&self.viewer, Item::Typing { ctx, audience: *audience })
                {
                    out.push(Out::Typing { session: ctx.id, who: who.clone(), on: *on });
                }
            }
            Event::QueueAdded(e) => {
                if self.may_see_waiting(e, self.app.clock.now()) {
                    out.push(Out::QueueAdded(e.clone()));
                }
            }
            Event::QueueRemoved { session, placement } => {
                // Anyone who could have been offered it hears that it is gone.
                let item = Item::Waiting { placement: *placement, waited: Millis::MAX, rollup: self.app.rollup_ms() };
                if sees(&self.viewer, item) {
                    out.push(Out::QueueRemoved(*session));
                }
            }
        }
        Ok(out)
    }
}
