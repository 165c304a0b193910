//! One authenticated WebSocket connection: its loop, and what it does with
//! each frame in and each event out.
//!
//! The loop waits on three cancel-safe things — the next frame from the
//! client, the next event from the bus, the ping timer — and handles
//! whichever comes first *outside* the `select!`, so that no store read or
//! write is ever abandoned half-way by another branch winning.

use super::protocol::{In, OutFrame};
use super::sockets::Slot;
use super::{going_away, goodbye, CLOSE_GOING_AWAY, GOING_AWAY_REASON};
use super::{CLOSE_NO_PONG, CLOSE_POLICY, CLOSE_TOO_BIG, CLOSE_TRY_AGAIN};
use crate::error::ApiError;
use crate::input::sendable_kind;
use axum::extract::ws::{CloseFrame, Message as WsMessage, Utf8Bytes, WebSocket};
use futures_util::SinkExt as _;
use refdesk_app::feed::{Feed, Out};
use refdesk_app::{App, AppError};
use refdesk_domain::ids::{SessionId, StaffId};
use refdesk_domain::input::ClientId;
use refdesk_domain::visibility::Viewer;
use refdesk_domain::DomainError;
use refdesk_store::SessionRecord;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A connection once its client is known.
pub(super) struct Connection {
    /// What the viewer follows, and the application (`feed.app()`).
    feed: Feed,
    /// Keeps a staff member counted as connected while the socket lives
    /// (boxed: a patron's socket, most of them, has none).
    online: Option<Box<refdesk_app::staff::Online>>,
    /// The patron's own session (None for staff).
    patron: Option<SessionRecord>,
    /// Its place under its chat or sign-in, with the shared frame budget.
    slot: Slot,
    /// A patron's share of their network's read budget (`resume`).
    reads: Option<crate::limit::Reads>,
    /// When the client last sent anything (a pong counts).
    heard: Instant,
    /// Turns `true` when the node's sockets must go (1001); held for the
    /// socket's life, so the shutdown knows when the last one has closed.
    gone: tokio::sync::watch::Receiver<bool>,
}

/// Why the connection loop stops, and the close frame to say goodbye with
/// (none when the socket is already gone).
pub(super) struct Closed(Option<(u16, String)>);

impl Closed {
    pub(super) fn quiet() -> Closed {
        Closed(None)
    }

    pub(super) fn with(code: u16, reason: impl Into<String>) -> Closed {
        Closed(Some((code, reason.into())))
    }
}

impl Connection {
    pub(super) fn new(
        app: App,
        viewer: Viewer,
        (patron, login, desk): (Option<SessionRecord>, Option<String>, bool),
        slot: Slot,
        gone: tokio::sync::watch::Receiver<bool>,
        reads: Option<crate::limit::Reads>,
    ) -> Connection {
        let mut feed = Feed::new(&app, viewer);
        if let Some(token) = login {
            feed.check_sign_in(&token);
        }
        // A desk counts the staff member connected (on duty, their chats
        // kept); a page that only reads along does not.
        let online = match feed.viewer() {
            Viewer::Staff(s) if desk => Some(Box::new(app.staff_online(s.id, s.home.cooperative))),
            Viewer::Staff(_) | Viewer::Patron { .. } => None,
        };
        Connection { feed, online, patron, slot, reads, heard: Instant::now(), gone }
    }

    /// Takes a frame from the budget this socket shares.
    fn take(&self) -> bool {
        self.slot.take()
    }

    /// A frame past the budget: answered `rate_limited` and dropped, then
    /// nothing more is read from the socket until its budgets have a frame
    /// again (at most [`MOST_PAUSE`]). A client that floods is held back by
    /// its own TCP window, not answered as fast as it sends: at most one
    /// refusal for each frame the budget lets through.
    /// A refused text frame's refusal carries its `client_id` (a valid one),
    /// so that a client can tell which line did not go (a desk re-sending its
    /// lines at a reconnect puts it back in the box).
    async fn refuse(&self, socket: &mut WebSocket, client_id: Option<&str>) -> Result<(), Closed> {
        error(socket, "rate_limited", "too many frames; slow down", client_id).await?;
        tokio::time::sleep(self.slot.wait().min(MOST_PAUSE)).await;
        Ok(())
    }

    /// Spends a frame of the socket's budgets on a page of a replay, waiting
    /// until they have one: a replay is many reads for one frame, and a
    /// chat's budget is shared by its sockets and kept while it refills, so
    /// opening socket after socket to replay a long chat from the start is
    /// held to it too (a replay within the budget's burst goes at once).
    async fn pace(&self) {
        while !self.take() {
            tokio::time::sleep(self.slot.wait().clamp(Duration::from_millis(1), MOST_PAUSE)).await;
        }
    }

    /// Says `hello`, then serves the socket until either side ends it; the
    /// close code it said goodbye with, if any.
    pub(super) async fn run(&mut self, socket: &mut WebSocket) -> Option<u16> {
        // What an idle socket holds for its whole life is this future: all
        // but the wait is boxed, each box made in a `let` of its own (the
        // unboxed future, a temporary of an `.await` statement, would stay
        // in this one's state).
        let hello = Box::pin(self.hello(socket));
        if let Err(Closed(closed)) = hello.await {
            return closed.map(|(code, _)| code);
        }
        let every = Duration::from_secs(self.feed.app().limits().ws_ping_seconds);
        let mut ping = tokio::time::interval_at((Instant::now() + every).into(), every);
        ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let closed = loop {
            // All four are cancel-safe; the work happens after the select.
            // In this order: the node going away first; then a frame the
            // client sent (a pong waiting behind a long turn is read before
            // the ping timer's check that would take the client for gone).
            let step = tokio::select! {
                biased;
                () = going_away(&mut self.gone) => Step::GoingAway,
                frame = socket.recv() => Step::Frame(frame),
                event = self.feed.recv() => Step::Event(event),
                _ = ping.tick() => Step::Tick,
            };
            let turn = Box::pin(self.turn(socket, step, every));
            if let Err(closed) = turn.await {
                break closed;
            }
        };
        let Closed(Some((code, reason))) = closed else { return None };
        Box::pin(goodbye(socket, close_frame(code, &reason))).await;
        Some(code)
    }

    /// The socket closed, its client gone (see `Feed::page_closed`).
    pub(super) fn page_closed(&mut self) {
        let waiting = self.patron.as_ref().filter(|r| r.state == refdesk_domain::chat::SessionState::Waiting);
        self.feed.page_closed(waiting.map(|r| (r.queue.library, (r.queued_at, r.ctx.id))));
    }

    /// The first frame: who the server takes the client to be.
    async fn hello(&self, socket: &mut WebSocket) -> Result<(), Closed> {
        let hello = OutFrame::Hello {
            role: if self.patron.is_some() { "patron" } else { "staff" },
            session: self.patron.as_ref().map(|r| r.ctx.id),
            max_message_chars: self.feed.app().limits().max_message_chars,
            release: crate::http::web::release(),
        };
        send(socket, &hello, self.send_within()).await
    }

    /// One turn of the loop: what came in, then what is already waiting.
    async fn turn(&mut self, socket: &mut WebSocket, step: Step, every: Duration) -> Result<(), Closed> {
        if matches!(step, Step::Frame(Some(Ok(_)))) {
            self.heard = Instant::now();
        }
        match step {
            Step::Frame(Some(Ok(WsMessage::Text(text)))) => self.on_text(socket, &text).await,
            // Every frame counts against the frame limit, whatever its kind.
            Step::Frame(Some(Ok(WsMessage::Binary(_)))) => match self.take() {
                true => error(socket, "bad_frame", "send JSON text frames", None).await,
                false => self.refuse(socket, None).await,
            },
            Step::Frame(Some(Ok(WsMessage::Ping(_) | WsMessage::Pong(_)))) => match self.take() {
                true => Ok(()),
                false => self.refuse(socket, None).await,
            },
            Step::Frame(Some(Ok(WsMessage::Close(_)))) => {
                // The client closes: its close is answered (RFC 6455, 5.5.1)
                // by the reply the WebSocket queued, which a flush sends.
                let _ = tokio::time::timeout(super::CLOSE_WITHIN, socket.flush()).await;
                Err(Closed::quiet())
            }
            Step::Frame(None) => Err(Closed::quiet()),
            Step::Frame(Some(Err(e))) => Err(self.read_failed(e)),
            Step::Tick => self.on_tick(socket, every).await,
            Step::GoingAway => Err(Closed::with(CLOSE_GOING_AWAY, GOING_AWAY_REASON)),
            Step::Event(event) => self.on_event(socket, event).await,
        }?;
        // What is already waiting goes out with what this turn wrote, in one
        // write: the echo of a message just acknowledged, a burst. Only after
        // a turn that went well: a socket being closed (signed out, too slow,
        // going away) is passed nothing more, and its close frame flushes
        // what was queued.
        self.drain(socket).await
    }

    /// An event from the bus: passed on as this viewer may see it.
    async fn on_event(
        &mut self,
        socket: &mut WebSocket,
        event: Arc<refdesk_domain::event::Event>,
    ) -> Result<(), Closed> {
        match self.feed.handle(event).await {
            Ok(items) => self.forward(socket, &items).await,
            Err(e) => report(socket, e.into(), None).await,
        }
    }

    /// Passes on the events already waiting (a few at most: the socket's
    /// own frames come next), then writes out everything queued this turn.
    async fn drain(&mut self, socket: &mut WebSocket) -> Result<(), Closed> {
        for _ in 0..DRAIN_EVENTS {
            let Some(event) = self.feed.try_recv() else { break };
            self.on_event(socket, event).await?;
        }
        match tokio::time::timeout(self.send_within(), socket.flush()).await {
            Ok(flushed) => flushed.map_err(|_| Closed::quiet()),
            Err(_) => Err(too_slow()),
        }
    }

    fn send_within(&self) -> Duration {
        Duration::from_secs(self.feed.app().limits().ws_send_seconds)
    }

    fn read_failed(&self, e: axum::Error) -> Closed {
        read_failed(e, self.feed.app().limits().max_frame_bytes)
    }

    /// Every ping interval: a socket silent for two intervals is dead; a
    /// staff socket whose sign-in has ended closes; the others get a ping.
    async fn on_tick(&mut self, socket: &mut WebSocket, every: Duration) -> Result<(), Closed> {
        if self.heard.elapsed() > every * 2 {
            tracing::debug!("a socket answered no ping; it is closed");
            return Err(Closed::with(CLOSE_NO_PONG, "no answer to pings"));
        }
        match self.feed.signed_in().await {
            Ok(true) => {}
            Ok(false) => return self.forward(socket, &[Out::SignedOut]).await,
            Err(e) => tracing::warn!(error = %e, "cannot check a sign-in; asked again at the next ping"),
        }
        match tokio::time::timeout(self.send_within(), socket.send(WsMessage::Ping(Default::default()))).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) => Err(Closed::quiet()),
            Err(_) => Err(too_slow()),
        }
    }

    /// Before a frame that reads what a staff member may see: the sign-in
    /// is asked again, so that someone disabled, demoted or signed out since
    /// (an expired sign-in publishes nothing) is not served from what this
    /// connection knew at its `auth` until the next ping. Asks nothing for a
    /// patron. `false`: not served (the socket is then closed, or the
    /// question failed and was reported).
    async fn still_signed_in(&mut self, socket: &mut WebSocket) -> Result<bool, Closed> {
        match self.feed.signed_in().await {
            Ok(true) => Ok(true),
            Ok(false) => self.forward(socket, &[Out::SignedOut]).await.map(|()| false),
            Err(e) => report(socket, e.into(), None).await.map(|()| false),
        }
    }

    async fn forward(&mut self, socket: &mut WebSocket, items: &[Out]) -> Result<(), Closed> {
        for item in items {
            let frame = match item {
                Out::Message(m) => OutFrame::Event(m),
                Out::Typing { session, who, patron, on } => {
                    OutFrame::Typing { session: *session, who, by: if *patron { "patron" } else { "staff" }, on: *on }
                }
                Out::QueueAdded(e) => OutFrame::QueueAdded(e),
                Out::QueueRemoved(s) => OutFrame::QueueRemoved { session: *s },
                Out::PatronAway { session, since } => OutFrame::PatronAway { session: *session, since: *since },
                Out::Position { position, since } => OutFrame::Position { position: *position, since: *since },
                Out::Presence { session, librarian, members, watchers, patron_here } => OutFrame::Presence {
                    session: *session,
                    librarian: *librarian,
                    members,
                    watchers,
                    patron_here: *patron_here,
                },
                Out::Monitor(summary) => OutFrame::MonitorUpdate(summary),
                Out::MonitorTick { session, at } => OutFrame::MonitorTick { session: *session, at: *at },
                Out::Im(m) => OutFrame::Im(m),
                Out::ImRead { peer, seq } => OutFrame::ImRead { peer: *peer, seq: *seq },
                Out::SignedOut => {
                    error(socket, "unauthenticated", "your sign-in has ended; sign in again", None).await?;
                    return Err(Closed::with(CLOSE_POLICY, "signed out"));
                }
                Out::MonitorGone(s) => OutFrame::MonitorGone { session: *s },
                Out::Erased(s) => {
                    queue(socket, &OutFrame::Erased { session: *s }, self.send_within()).await?;
                    self.erased_chats_patron()?;
                    continue;
                }
                Out::Queue(waiting) => queue_frame(waiting),
                Out::MonitorList(sessions) => monitor_frame(sessions),
                Out::Availability { staff, availability } => {
                    OutFrame::Availability { staff: *staff, availability: *availability }
                }
                Out::Link { down } => OutFrame::Link { down: *down },
                Out::Referred { question, library_name, text, by, follow_up } => {
                    OutFrame::Referred { question: *question, library_name, text, by, follow_up: *follow_up }
                }
            };
            queue(socket, &frame, self.send_within()).await?;
        }
        Ok(())
    }

    /// After an `erased` frame: a patron's socket closes (the chat's token
    /// opens nothing any more); a staff socket goes on.
    fn erased_chats_patron(&self) -> Result<(), Closed> {
        match self.patron {
            Some(_) => Err(Closed::with(CLOSE_POLICY, "the chat was erased")),
            None => Ok(()),
        }
    }

    /// The session a frame names: a patron's own by default; staff must name one.
    fn session_of(&self, named: Option<SessionId>) -> Result<SessionId, ApiError> {
        match (&self.patron, named) {
            (Some(own), None) => Ok(own.ctx.id),
            (Some(own), Some(s)) if s == own.ctx.id => Ok(own.ctx.id),
            (Some(_), Some(_)) => Err(DomainError::NotFound("session").into()),
            (None, Some(s)) => Ok(s),
            (None, None) => Err(ApiError::bad_request("bad_frame", "name the session")),
        }
    }

    /// A text frame: spends one frame of the budget, parses it, and hands it
    /// to the method for its type. A bad frame gets an `error` frame and the
    /// connection stays up.
    async fn on_text(&mut self, socket: &mut WebSocket, text: &Utf8Bytes) -> Result<(), Closed> {
        if !self.take() {
            let tagged = refused_client_id(text.as_str());
            return self.refuse(socket, tagged.as_ref().map(ClientId::as_str)).await;
        }
        let frame: In = match serde_json::from_str(text.as_str()) {
            Ok(f) => f,
            Err(e) => {
                let why = crate::error::cut(format!("not a frame of the protocol: {e}"));
                return error(socket, "bad_frame", &why, None).await;
            }
        };
        if frame.reads() && !self.still_signed_in(socket).await? {
            return Ok(());
        }
        // A page that only reads along (`auth`'s `reader`: a staff socket
        // that does not count as the desk) follows chats and nothing more:
        // its typing would keep an idle chat from ending with no desk there.
        let reader = matches!(self.feed.viewer(), Viewer::Staff(_)) && self.online.is_none();
        if reader && !matches!(frame, In::Ping {} | In::Resume { .. } | In::Leave { .. }) {
            return error(socket, "forbidden", "this socket only reads along (auth with reader): use a desk's", None)
                .await;
        }
        let within = self.send_within();
        match frame {
            In::Ping {} => send(socket, &OutFrame::Pong, within).await,
            In::Resume { session, after } => self.on_resume(socket, session, after.unwrap_or(0)).await,
            In::Leave { session } => {
                self.feed.leave(session);
                Ok(())
            }
            In::Queue {} => match self.feed.watch_queue().await {
                Ok(waiting) => send(socket, &queue_frame(&waiting), within).await,
                Err(e) => report(socket, e.into(), None).await,
            },
            In::Monitor {} => match self.feed.watch_monitor().await {
                Ok(sessions) => send(socket, &monitor_frame(&sessions), within).await,
                Err(e) => report(socket, e.into(), None).await,
            },
            In::ImSend { to, body, client_id } => self.on_im_send(socket, to, &body, client_id.as_deref()).await,
            In::ImResume { peer, after } => self.on_im_resume(socket, peer, after.unwrap_or(0)).await,
            In::Send { session, client_id, kind, body } => {
                self.on_send(socket, session, kind.as_deref(), &body, client_id.as_deref()).await
            }
            In::Typing { session, on, note } => self.on_typing(socket, session, on, note.unwrap_or(false)).await,
        }
    }

    /// `resume`: the replay after `after`, a page at a time (the next read
    /// only once the last is written: a reader that stops holds one page, not
    /// the chat), then `synced`, then what the viewer learns at once. A page
    /// must be written whole within `ws_send_seconds`, not each of its frames:
    /// a reader taking one frame every few seconds would otherwise hold its
    /// page (up to 50 lines of 16 KB) for as long as it liked. It is let go
    /// as too slow (1013), and resumes after the last line it got. Each page
    /// after the first spends a frame of the socket's budgets, waiting for
    /// one if need be ([`Connection::pace`]).
    async fn on_resume(&mut self, socket: &mut WebSocket, named: Option<SessionId>, after: u64) -> Result<(), Closed> {
        let session = match self.session_of(named) {
            Ok(s) => s,
            Err(e) => return report(socket, e, None).await,
        };
        // A patron's replay is a read of their chat like `GET /api/chat`,
        // from the same budget, taken before anything is read; but not the
        // socket's first (see `Reads::take_after_first`).
        let per_minute = self.feed.app().limits().patron_reads_per_minute;
        if let Some(Err(wait)) = self.reads.as_mut().map(|r| r.take_after_first(per_minute)) {
            let why = format!("too many reads from your address; try again in {wait} s");
            return error(socket, "rate_limited", &why, None).await;
        }
        match self.feed.resume(session, after).await {
            Ok(true) => {}
            Ok(false) => {
                send(socket, &OutFrame::Erased { session }, self.send_within()).await?;
                return self.erased_chats_patron();
            }
            Err(e) => return report(socket, e.into(), None).await,
        }
        let (within, page) = (self.send_within(), self.feed.app().limits().replay_page);
        for n in 0.. {
            if n > 0 {
                self.pace().await;
            }
            match self.feed.next_page(session, page).await {
                Ok(p) => {
                    send_page(socket, p.items.iter().map(OutFrame::Event), within).await?;
                    if p.done {
                        break;
                    }
                }
                Err(e) => return report(socket, e.into(), None).await,
            }
        }
        let last = self.feed.last_seq(session).unwrap_or(0);
        send(socket, &OutFrame::Synced { session, last }, within).await?;
        // A waiting patron learns their place in line at once; the chatting
        // librarian, who else is present (B3).
        let extra: Vec<Out> = match self.feed.viewer() {
            Viewer::Patron { .. } => match self.feed.place_in_line(session).await {
                Ok(place) => place.into_iter().collect(),
                Err(e) => return report(socket, e.into(), None).await,
            },
            Viewer::Staff(_) => self.feed.presence(session).into_iter().collect(),
        };
        self.forward(socket, &extra).await
    }

    /// `send`: a line in a session, acknowledged once committed (I2).
    async fn on_send(
        &mut self,
        socket: &mut WebSocket,
        named: Option<SessionId>,
        kind: Option<&str>,
        body: &str,
        cid: Option<&str>,
    ) -> Result<(), Closed> {
        let parsed = self.session_of(named).and_then(|s| Ok((s, sendable_kind(kind)?)));
        let (session, kind) = match parsed {
            Ok(v) => v,
            Err(e) => return report(socket, e, cid).await,
        };
        let result = match (&self.patron, self.feed.viewer()) {
            (Some(rec), _) => self.feed.app().patron_send(rec, kind, body, cid).await,
            (None, Viewer::Staff(staff)) => self.feed.app().staff_send(staff, session, kind, body, cid).await,
            (None, Viewer::Patron { .. }) => Err(AppError::Unauthenticated),
        };
        match result {
            Ok(a) => {
                // A patron's by their own count (`Message::patron_seq`).
                let seq = refdesk_domain::visibility::seq_seen(self.feed.viewer(), &a.message);
                let ack = OutFrame::Ack { session, client_id: cid, seq, duplicate: a.duplicate };
                queue(socket, &ack, self.send_within()).await
            }
            Err(e) => report(socket, e.into(), cid).await,
        }
    }

    /// `typing`: only in a followed session (already authorized by `resume`).
    async fn on_typing(
        &mut self,
        socket: &mut WebSocket,
        named: Option<SessionId>,
        on: bool,
        note: bool,
    ) -> Result<(), Closed> {
        let session = match self.session_of(named) {
            Ok(s) => s,
            Err(e) => return report(socket, e, None).await,
        };
        let Some(ctx) = self.feed.context(session).cloned() else {
            return error(socket, "not_watching", "resume the session before typing in it", None).await;
        };
        let staff = matches!(self.feed.viewer(), Viewer::Staff(_));
        let typed = match &self.patron {
            Some(rec) => self.feed.app().patron_typing(rec, ctx, note, on),
            None if staff => self.feed.staff_typing(ctx, note, on),
            None => return Err(Closed::quiet()),
        };
        match typed {
            Ok(()) => Ok(()),
            Err(e) => report(socket, e.into(), None).await,
        }
    }

    /// `im_send`: a direct message to a colleague (staff only).
    async fn on_im_send(
        &mut self,
        socket: &mut WebSocket,
        to: StaffId,
        body: &str,
        cid: Option<&str>,
    ) -> Result<(), Closed> {
        let Viewer::Staff(staff) = self.feed.viewer() else {
            return error(socket, "forbidden", "patrons have no IM", cid).await;
        };
        match self.feed.app().im_send(staff, to, body, cid).await {
            Ok((m, duplicate)) => {
                let ack = OutFrame::ImAck { to, client_id: cid, seq: m.seq, duplicate };
                send(socket, &ack, self.send_within()).await
            }
            Err(e) => report(socket, e.into(), cid).await,
        }
    }

    /// `im_resume`: the conversation after `after`, a page at a time, each
    /// written whole within `ws_send_seconds` and paced as a `resume`'s is,
    /// then `im_synced`.
    async fn on_im_resume(&mut self, socket: &mut WebSocket, peer: StaffId, mut last: u64) -> Result<(), Closed> {
        let within = self.send_within();
        for n in 0.. {
            if n > 0 {
                self.pace().await;
            }
            match self.feed.im_page(peer, last, self.feed.app().limits().replay_page).await {
                Ok(p) => {
                    send_page(socket, p.items.iter().map(OutFrame::Im), within).await?;
                    last = p.items.last().map_or(last, |m| m.seq);
                    if p.done {
                        break;
                    }
                }
                Err(e) => return report(socket, e.into(), None).await,
            }
        }
        send(socket, &OutFrame::ImSynced { peer, last }, within).await
    }
}

enum Step {
    Frame(Option<Result<WsMessage, axum::Error>>),
    Event(Arc<refdesk_domain::event::Event>),
    Tick,
    /// The node is shutting down: say goodbye with 1001.
    GoingAway,
}

/// Waiting chats a `queue` frame shows at most; 300 previews of the longest
/// questions (`question_preview`) and names make about 600 KB, under the
/// socket's 1 MiB write buffer, which no frame may pass.
pub(crate) const QUEUE_SHOWN: usize = 300;
/// Live chats a `monitor` frame shows at most (about 900 bytes each at
/// most: 450 KB).
pub(crate) const MONITOR_SHOWN: usize = 500;

/// The `queue` frame for the waiting chats in line: the first
/// [`QUEUE_SHOWN`], and how many more wait. A flood of waiting chats cannot
/// make a frame the socket cannot send (which would close it, at every
/// reconnection, and with it the desk).
fn queue_frame(waiting: &[refdesk_domain::event::QueueEntry]) -> OutFrame<'_> {
    let shown = &waiting[..waiting.len().min(QUEUE_SHOWN)];
    OutFrame::Queue { waiting: shown, more: waiting.len() - shown.len() }
}

/// The `monitor` frame: the first [`MONITOR_SHOWN`] of the live chats (the
/// viewer's own come first), and how many more there are.
fn monitor_frame(sessions: &[refdesk_domain::event::SessionSummary]) -> OutFrame<'_> {
    let shown = &sessions[..sessions.len().min(MONITOR_SHOWN)];
    OutFrame::Monitor { sessions: shown, more: sessions.len() - shown.len() }
}

/// A socket that does not drain: closed, and the client may resume later.
fn too_slow() -> Closed {
    tracing::debug!("a client stopped reading; its connection is closed");
    Closed::with(CLOSE_TRY_AGAIN, "too slow: frames were not read in time; reconnect and resume")
}

/// Events passed on at the end of a turn, at most, before the socket's own
/// frames are read again.
const DRAIN_EVENTS: usize = 16;

/// Sends a frame; one that cannot go out within `within` closes the socket.
pub(super) async fn send(socket: &mut WebSocket, frame: &OutFrame<'_>, within: Duration) -> Result<(), Closed> {
    match tokio::time::timeout(within, socket.send(encode(frame)?)).await {
        Ok(sent) => sent.map_err(|_| Closed::quiet()),
        Err(_) => Err(too_slow()),
    }
}

/// Queues a frame, to be written with the turn's others when the loop
/// flushes ([`Connection::drain`]): one system call for an acknowledgement
/// and its echo. A full buffer is written out first, within `within`.
async fn queue(socket: &mut WebSocket, frame: &OutFrame<'_>, within: Duration) -> Result<(), Closed> {
    match tokio::time::timeout(within, socket.feed(encode(frame)?)).await {
        Ok(queued) => queued.map_err(|_| Closed::quiet()),
        Err(_) => Err(too_slow()),
    }
}

/// Sends a page of a replay, whole within `within` (not each frame within
/// it): a reader taking a frame every few seconds would otherwise hold the
/// page (up to `replay_page` lines of 16 KB) as long as it liked.
async fn send_page<'a>(
    socket: &mut WebSocket,
    frames: impl Iterator<Item = OutFrame<'a>>,
    within: Duration,
) -> Result<(), Closed> {
    let deadline = tokio::time::Instant::now() + within;
    for frame in frames {
        send(socket, &frame, deadline.saturating_duration_since(tokio::time::Instant::now())).await?;
    }
    Ok(())
}

fn encode(frame: &OutFrame<'_>) -> Result<WsMessage, Closed> {
    let text = serde_json::to_string(frame).map_err(|e| {
        tracing::error!(error = %e, "cannot encode a frame");
        Closed::with(1011, "internal error")
    })?;
    Ok(WsMessage::Text(text.into()))
}

/// Sends an `error` frame. Before a connection is set up (auth) or for
/// answers that are themselves errors the default send time applies.
/// The `client_id` of a frame refused unread, if it names a valid one: the
/// frame is parsed for that field alone (at most one refusal for each frame
/// the budget lets through, [`Connection::refuse`]).
fn refused_client_id(text: &str) -> Option<ClientId> {
    #[derive(serde::Deserialize)]
    struct Tagged<'a> {
        #[serde(borrow)]
        client_id: Option<std::borrow::Cow<'a, str>>,
    }
    let tagged: Tagged<'_> = serde_json::from_str(text).ok()?;
    ClientId::parse(&tagged.client_id?).ok()
}

pub(super) async fn error(
    socket: &mut WebSocket,
    code: &str,
    message: &str,
    client_id: Option<&str>,
) -> Result<(), Closed> {
    // Only a valid id goes back: an invalid one (what was refused, maybe)
    // is not echoed, whatever it holds (controls, direction overrides,
    // 60 KB).
    let client_id = client_id.filter(|c| ClientId::parse(c).is_ok());
    send(socket, &OutFrame::Error { code, message, client_id }, ERROR_WITHIN).await
}

/// The longest a socket is left unread after a refused frame (the budgets'
/// slowest refill is a frame a second: `patron_frames_per_second_per_address`
/// at least 1).
const MOST_PAUSE: Duration = Duration::from_secs(1);

/// How long an `error` frame may take to go out.
const ERROR_WITHIN: Duration = Duration::from_secs(10);

/// Sends an error as an `error` frame, with the refused frame's client id.
pub(super) async fn report(socket: &mut WebSocket, e: ApiError, client_id: Option<&str>) -> Result<(), Closed> {
    let (code, message) = e.parts();
    error(socket, code, message, client_id).await
}

/// A close frame with a code and a reason.
/// A frame could not be read, before `auth` or after: over the size limit
/// `max` (said with 1009), a protocol error (1002), a text frame not in
/// UTF-8 (1007), or a broken connection (nothing to say).
pub(super) fn read_failed(e: axum::Error, max: usize) -> Closed {
    use tokio_tungstenite::tungstenite::error::{CapacityError, Error as WsError};
    let inner = e.into_inner();
    match inner.downcast_ref::<WsError>() {
        Some(WsError::Capacity(CapacityError::MessageTooLong { .. })) => {
            Closed::with(CLOSE_TOO_BIG, format!("a frame may be at most {max} bytes"))
        }
        Some(WsError::Protocol(p)) => {
            tracing::debug!(error = %p, "WebSocket protocol error");
            Closed::with(1002, "protocol error")
        }
        // A text frame that is not UTF-8 (RFC 6455, 8.1: fail with 1007).
        Some(WsError::Utf8(_)) => Closed::with(1007, "a text frame must be UTF-8"),
        _ => {
            tracing::debug!(error = %inner, "WebSocket read failed");
            Closed::quiet()
        }
    }
}

impl Closed {
    /// The close frame to say goodbye with, if any.
    pub(super) fn frame(self) -> WsMessage {
        match self.0 {
            Some((code, reason)) => close_frame(code, &reason),
            None => WsMessage::Close(None),
        }
    }
}

pub(super) fn close_frame(code: u16, reason: &str) -> WsMessage {
    WsMessage::Close(Some(CloseFrame { code, reason: reason.into() }))
}

#[cfg(test)]
mod tests {
    use super::refused_client_id;

    #[test]
    fn a_refused_frame_is_answered_with_its_client_id_only_when_it_is_a_valid_one() {
        let id = |text: &str| refused_client_id(text).map(|c| c.as_str().to_owned());
        assert_eq!(id(r#"{"type":"send","client_id":"c-7","body":"hi"}"#).as_deref(), Some("c-7"));
        assert_eq!(id(r#"{"client_id":"c\u002d8"}"#).as_deref(), Some("c-8"), "escaped");
        assert_eq!(id(r#"{"type":"send","body":"hi"}"#), None, "none given");
        assert_eq!(id(r#"{"client_id":"not valid"}"#), None, "a space");
        assert_eq!(id(&format!(r#"{{"client_id":"{}"}}"#, "x".repeat(65))), None, "too long");
        assert_eq!(id(r#"{"client_id":7}"#), None, "not a string");
        assert_eq!(id("not json"), None);
    }
}
