//! The WebSocket endpoint (`GET /api/ws`), protocol in `docs/protocol.md`.
//!
//! One task per connection. It waits on two cancel-safe things — the next
//! frame from the client and the next event from the bus — and handles
//! whichever comes first *outside* the `select!`, so that no store read or
//! write is ever abandoned half-way by the other branch winning.
//!
//! Every connection authenticates in its first frame, `{"type": "auth"}`:
//! a patron puts the chat's secret token in it (never in the URL, which
//! proxies log); staff send it bare and the sign-in cookie of the upgrade
//! request decides. A socket that has not done so within [`AUTH_WITHIN`]
//! is closed. After that, bad frames get an `error` frame; the connection
//! stays up.

use crate::error::ApiError;
use crate::error::Query;
use crate::http::auth::cookie_token;
use crate::AppState;
use axum::extract::ws::{Message as WsMessage, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use refdesk_app::feed::{Feed, Out};
use refdesk_app::{App, AppError};
use refdesk_domain::chat::{Member, Message, Watcher};
use refdesk_domain::event::{Availability, ImMessage, QueueEntry, SessionSummary};
use refdesk_domain::ids::{SessionId, StaffId};
use refdesk_domain::visibility::Viewer;
use refdesk_domain::DomainError;
use refdesk_domain::Millis;
use refdesk_store::SessionRecord;
use serde::{Deserialize, Serialize};
use std::time::Instant;

/// Socket buffers, sized for chat (2 KiB in, 4 KiB out; both grow for a
/// larger frame): tungstenite's defaults (128 KiB each way)
/// would cost more per idle connection than everything else together.
const READ_BUFFER: usize = 2 * 1024;
const WRITE_BUFFER: usize = 4 * 1024;

/// How long a new socket has to send its `auth` frame.
const AUTH_WITHIN: std::time::Duration = std::time::Duration::from_secs(10);
/// Sockets that have not authenticated yet, at most, on one node: anyone may
/// open one, so they are bounded apart from the signed-in ones.
pub const PENDING_AUTH: usize = 1024;
/// Sockets open at once on one chat's token (a patron with a few tabs of
/// the library's site; not a visitor multiplying the per-socket limits).
pub const SOCKETS_PER_CHAT: usize = 4;
/// How long one frame may take to go out. A client that stops reading
/// would otherwise hold its connection, and what was waiting to be sent to
/// it (a whole chat's replay), for ever.
const SEND_WITHIN: std::time::Duration = std::time::Duration::from_secs(10);

/// Open sockets per chat (see [`SOCKETS_PER_CHAT`]).
#[derive(Default)]
pub struct ChatSockets(std::sync::Mutex<std::collections::HashMap<SessionId, usize>>);

/// One chat's socket, counted while it lives.
struct ChatSocket {
    counts: std::sync::Arc<ChatSockets>,
    session: SessionId,
}

impl ChatSockets {
    fn take(self: &std::sync::Arc<Self>, session: SessionId) -> Option<ChatSocket> {
        let mut map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let n = map.entry(session).or_insert(0);
        if *n >= SOCKETS_PER_CHAT {
            return None;
        }
        *n += 1;
        Some(ChatSocket { counts: self.clone(), session })
    }
}

impl Drop for ChatSocket {
    fn drop(&mut self) {
        let mut map = self.counts.0.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = map.get_mut(&self.session) {
            *n -= 1;
            if *n == 0 {
                map.remove(&self.session);
            }
        }
    }
}

#[derive(Deserialize)]
pub(crate) struct WsQuery {
    token: Option<String>,
}

/// Upgrades; the connection authenticates in its first frame.
pub(crate) async fn upgrade(
    State(state): State<AppState>,
    Query(q): Query<WsQuery>,
    headers: HeaderMap,
    ws: WebSocketUpgrade,
) -> Result<Response, ApiError> {
    if q.token.is_some() {
        return Err(ApiError::bad_request(
            "token_in_url",
            "a chat's token never goes in a URL: send it in the first frame, {\"type\": \"auth\", \"token\": …}",
        ));
    }
    let Ok(pending) = state.pending_auth.clone().try_acquire_owned() else {
        return Err(ApiError {
            status: axum::http::StatusCode::SERVICE_UNAVAILABLE,
            code: "busy",
            message: "too many connections are opening at once; try again in a few seconds".into(),
        });
    };
    let cookie = cookie_token(&headers).map(str::to_owned);
    let chats = state.chat_sockets.clone();
    let limits = state.app.limits.clone();
    let app = state.app.clone();
    Ok(ws
        .read_buffer_size(READ_BUFFER)
        .write_buffer_size(WRITE_BUFFER)
        .max_write_buffer_size(limits.max_frame_bytes * 16)
        .max_message_size(limits.max_frame_bytes)
        .max_frame_size(limits.max_frame_bytes)
        .on_upgrade(move |socket| async move { Box::pin(serve(app, socket, cookie, pending, chats)).await }))
}

/// The first frame a connection sends.
#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
enum First {
    Auth { token: Option<String> },
}

/// Who is at the other end, once known.
type Identity = (Viewer, Option<SessionRecord>, Option<String>);

async fn serve(
    app: App,
    mut socket: WebSocket,
    cookie: Option<String>,
    pending: tokio::sync::OwnedSemaphorePermit,
    chats: std::sync::Arc<ChatSockets>,
) {
    let who = authenticate(&app, &mut socket, cookie).await;
    drop(pending);
    let Some((viewer, patron, login)) = who else {
        let _ = socket.send(WsMessage::Close(None)).await;
        return;
    };
    // Held while the socket lives.
    let _slot = match &patron {
        Some(rec) => match chats.take(rec.ctx.id) {
            Some(slot) => Some(slot),
            None => {
                let why = format!("this chat already has {SOCKETS_PER_CHAT} connections open; close one");
                let _ = error(&mut socket, "too_many_sockets", &why, None).await;
                let _ = socket.send(WsMessage::Close(None)).await;
                return;
            }
        },
        None => None,
    };
    Connection::new(app, viewer, patron, login).run(socket).await
}

/// Reads the `auth` frame: a patron's token, or the staff cookie of the
/// upgrade. Anything else, or nothing in time, ends the connection.
async fn authenticate(app: &App, socket: &mut WebSocket, cookie: Option<String>) -> Option<Identity> {
    const HOW: &str = "send {\"type\": \"auth\"} first: with the chat's token for a patron, bare for signed-in staff";
    let frame = match tokio::time::timeout(AUTH_WITHIN, socket.recv()).await {
        Ok(Some(Ok(WsMessage::Text(text)))) => text,
        Ok(Some(Ok(_))) => {
            let _ = error(socket, "unauthenticated", HOW, None).await;
            return None;
        }
        Ok(_) => return None,
        Err(_) => {
            let _ = error(socket, "unauthenticated", HOW, None).await;
            return None;
        }
    };
    let Ok(First::Auth { token }) = serde_json::from_str(frame.as_str()) else {
        let _ = error(socket, "unauthenticated", HOW, None).await;
        return None;
    };
    let who = match (token, cookie) {
        (Some(token), _) => {
            app.patron_session(&token).await.map(|rec| (Viewer::Patron { session: rec.ctx.id }, Some(rec), None))
        }
        (None, Some(cookie)) => {
            app.staff_for_token(&cookie).await.map(|staff| (Viewer::Staff(staff), None, Some(cookie)))
        }
        (None, None) => Err(AppError::Unauthenticated),
    };
    match who {
        Ok(who) => Some(who),
        Err(e) => {
            let _ = report(socket, e.into(), None).await;
            None
        }
    }
}

/// A frame from the client.
#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
enum In {
    Resume { session: Option<i64>, after: Option<u64> },
    Leave { session: i64 },
    Send { session: Option<i64>, client_id: Option<String>, kind: Option<String>, body: String },
    Typing { session: Option<i64>, on: bool, note: Option<bool> },
    // Struct variants, so that unknown fields are refused as in the others.
    Queue {},
    Monitor {},
    ImSend { to: i64, body: String, client_id: Option<String> },
    ImResume { peer: i64, after: Option<u64> },
    Ping {},
}

/// A frame to the client.
#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum OutFrame<'a> {
    Hello { role: &'static str, session: Option<SessionId>, max_message_chars: usize },
    Event(&'a Message),
    Synced { session: SessionId, last: u64 },
    Ack { session: SessionId, client_id: Option<&'a str>, seq: u64, duplicate: bool },
    Typing { session: SessionId, who: &'a str, on: bool },
    Queue { waiting: &'a [QueueEntry] },
    QueueAdded(&'a QueueEntry),
    QueueRemoved { session: SessionId },
    Error { code: &'a str, message: &'a str, client_id: Option<&'a str> },
    Pong,
    Position { position: usize, since: Millis },
    Presence { session: SessionId, librarian: Option<StaffId>, members: &'a [Member], watchers: &'a [Watcher] },
    Monitor { sessions: &'a [SessionSummary] },
    MonitorUpdate(&'a SessionSummary),
    MonitorTick { session: SessionId, at: Millis },
    MonitorGone { session: SessionId },
    Im(&'a ImMessage),
    ImAck { to: StaffId, client_id: Option<&'a str>, seq: u64, duplicate: bool },
    ImSynced { peer: StaffId, last: u64 },
    Availability { staff: StaffId, availability: Availability },
}

/// A token bucket: `rate` frames per second, bursts of `burst`.
struct Bucket {
    tokens: f64,
    rate: f64,
    burst: f64,
    at: Instant,
}

impl Bucket {
    fn take(&mut self) -> bool {
        let now = Instant::now();
        self.tokens = (self.tokens + now.duration_since(self.at).as_secs_f64() * self.rate).min(self.burst);
        self.at = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

struct Connection {
    app: App,
    feed: Feed,
    /// Keeps a staff member counted as connected while the socket lives.
    _online: Option<refdesk_app::staff::Online>,
    /// The patron's own session (None for staff).
    patron: Option<SessionRecord>,
    bucket: Bucket,
}

/// Why the connection loop stops.
struct Closed;

impl Connection {
    fn new(app: App, viewer: Viewer, patron: Option<SessionRecord>, login: Option<String>) -> Connection {
        let mut feed = Feed::new(&app, viewer);
        if let Some(token) = login {
            feed.check_sign_in(&token);
        }
        let l = &app.limits;
        let bucket = Bucket {
            tokens: l.frame_burst as f64,
            rate: l.frames_per_second as f64,
            burst: l.frame_burst as f64,
            at: Instant::now(),
        };
        let online = match feed.viewer() {
            Viewer::Staff(s) => Some(app.staff_online(s.id)),
            Viewer::Patron { .. } => None,
        };
        Connection { app, feed, _online: online, patron, bucket }
    }

    async fn run(mut self, mut socket: WebSocket) {
        let hello = OutFrame::Hello {
            role: if self.patron.is_some() { "patron" } else { "staff" },
            session: self.patron.as_ref().map(|r| r.ctx.id),
            max_message_chars: self.app.limits.max_message_chars,
        };
        if send(&mut socket, &hello).await.is_err() {
            return;
        }
        loop {
            // Both futures are cancel-safe; the work happens after the select.
            let step = tokio::select! {
                frame = socket.recv() => Step::Frame(frame),
                event = self.feed.recv() => Step::Event(event),
            };
            let result = match step {
                Step::Frame(Some(Ok(WsMessage::Text(text)))) => self.on_text(&mut socket, &text).await,
                // Every frame counts against the frame limit, whatever its kind.
                Step::Frame(Some(Ok(WsMessage::Binary(_)))) => match self.bucket.take() {
                    true => error(&mut socket, "bad_frame", "send JSON text frames", None).await,
                    false => error(&mut socket, "rate_limited", "too many frames; slow down", None).await,
                },
                Step::Frame(Some(Ok(WsMessage::Ping(_) | WsMessage::Pong(_)))) => match self.bucket.take() {
                    true => Ok(()),
                    false => error(&mut socket, "rate_limited", "too many frames; slow down", None).await,
                },
                Step::Frame(Some(Ok(WsMessage::Close(_))) | None) => Err(Closed),
                Step::Frame(Some(Err(e))) => {
                    tracing::debug!(error = %e, "WebSocket read failed");
                    Err(Closed)
                }
                Step::Event(None) => Err(Closed),
                Step::Event(Some(event)) => match self.feed.handle(event).await {
                    Ok(items) => self.forward(&mut socket, &items).await,
                    Err(e) => report(&mut socket, e.into(), None).await,
                },
            };
            if result.is_err() {
                break;
            }
        }
    }

    async fn forward(&mut self, socket: &mut WebSocket, items: &[Out]) -> Result<(), Closed> {
        for item in items {
            let frame = match item {
                Out::Message(m) => OutFrame::Event(m),
                Out::Typing { session, who, on } => OutFrame::Typing { session: *session, who, on: *on },
                Out::QueueAdded(e) => OutFrame::QueueAdded(e),
                Out::QueueRemoved(s) => OutFrame::QueueRemoved { session: *s },
                Out::Position { position, since } => OutFrame::Position { position: *position, since: *since },
                Out::Presence { session, librarian, members, watchers } => {
                    OutFrame::Presence { session: *session, librarian: *librarian, members, watchers }
                }
                Out::Monitor(summary) => OutFrame::MonitorUpdate(summary),
                Out::MonitorTick { session, at } => OutFrame::MonitorTick { session: *session, at: *at },
                Out::Im(m) => OutFrame::Im(m),
                Out::SignedOut => {
                    error(socket, "unauthenticated", "your sign-in has ended; sign in again", None).await?;
                    return Err(Closed);
                }
                Out::MonitorGone(s) => OutFrame::MonitorGone { session: *s },
                Out::Queue(waiting) => OutFrame::Queue { waiting },
                Out::MonitorList(sessions) => OutFrame::Monitor { sessions },
                Out::Availability { staff, availability } => {
                    OutFrame::Availability { staff: *staff, availability: *availability }
                }
            };
            send(socket, &frame).await?;
        }
        Ok(())
    }

    /// The session a frame names: a patron's own by default; staff must name one.
    fn session_of(&self, named: Option<i64>) -> Result<SessionId, ApiError> {
        match (&self.patron, named) {
            (Some(own), None) => Ok(own.ctx.id),
            (Some(own), Some(s)) if s == own.ctx.id.0 => Ok(own.ctx.id),
            (Some(_), Some(_)) => Err(DomainError::NotFound("session").into()),
            (None, Some(s)) => Ok(SessionId(s)),
            (None, None) => Err(ApiError::bad_request("bad_frame", "name the session")),
        }
    }

    async fn on_text(&mut self, socket: &mut WebSocket, text: &Utf8Bytes) -> Result<(), Closed> {
        if !self.bucket.take() {
            return error(socket, "rate_limited", "too many frames; slow down", None).await;
        }
        let frame: In = match serde_json::from_str(text.as_str()) {
            Ok(f) => f,
            Err(e) => return error(socket, "bad_frame", &format!("not a frame of the protocol: {e}"), None).await,
        };
        match frame {
            In::Ping {} => send(socket, &OutFrame::Pong).await,
            In::Resume { session, after } => {
                let session = match self.session_of(session) {
                    Ok(s) => s,
                    Err(e) => return report(socket, e, None).await,
                };
                match self.feed.resume(session, after.unwrap_or(0)).await {
                    Ok(missed) => {
                        for m in &missed {
                            send(socket, &OutFrame::Event(m)).await?;
                        }
                        let last = self.feed.last_seq(session).unwrap_or(0);
                        send(socket, &OutFrame::Synced { session, last }).await?;
                        // A waiting patron learns their place in line at once; the
                        // chatting librarian, who else is present (B3).
                        let extra: Vec<Out> = match self.feed.viewer() {
                            Viewer::Patron { .. } => self.feed.position().into_iter().collect(),
                            Viewer::Staff(_) => self.feed.presence(session).into_iter().collect(),
                        };
                        self.forward(socket, &extra).await
                    }
                    Err(e) => report(socket, e.into(), None).await,
                }
            }
            In::Leave { session } => {
                self.feed.leave(SessionId(session));
                Ok(())
            }
            In::Queue {} => match self.feed.watch_queue().await {
                Ok(waiting) => send(socket, &OutFrame::Queue { waiting: &waiting }).await,
                Err(e) => report(socket, e.into(), None).await,
            },
            In::Monitor {} => match self.feed.watch_monitor().await {
                Ok(sessions) => send(socket, &OutFrame::Monitor { sessions: &sessions }).await,
                Err(e) => report(socket, e.into(), None).await,
            },
            In::ImSend { to, body, client_id } => {
                let cid = client_id.as_deref();
                let Viewer::Staff(staff) = self.feed.viewer() else {
                    return error(socket, "forbidden", "patrons have no IM", cid).await;
                };
                match self.app.im_send(staff, StaffId(to), &body, cid).await {
                    Ok((m, duplicate)) => {
                        let ack = OutFrame::ImAck { to: StaffId(to), client_id: cid, seq: m.seq, duplicate };
                        send(socket, &ack).await
                    }
                    Err(e) => report(socket, e.into(), cid).await,
                }
            }
            In::ImResume { peer, after } => match self.feed.resume_im(StaffId(peer), after.unwrap_or(0)).await {
                Ok(missed) => {
                    for m in &missed {
                        send(socket, &OutFrame::Im(m)).await?;
                    }
                    let last = missed.last().map_or(after.unwrap_or(0), |m| m.seq);
                    send(socket, &OutFrame::ImSynced { peer: StaffId(peer), last }).await
                }
                Err(e) => report(socket, e.into(), None).await,
            },
            In::Send { session, client_id, kind, body } => {
                let cid = client_id.as_deref();
                let session = match self.session_of(session) {
                    Ok(s) => s,
                    Err(e) => return report(socket, e, cid).await,
                };
                let kind = match crate::http::desk::sendable_kind(kind.as_deref()) {
                    Ok(k) => k,
                    Err(e) => return report(socket, e, cid).await,
                };
                let result = match (&self.patron, self.feed.viewer()) {
                    (Some(rec), _) => self.app.patron_send(rec, kind, &body, cid).await,
                    (None, Viewer::Staff(staff)) => self.app.staff_send(staff, session, kind, &body, cid).await,
                    (None, Viewer::Patron { .. }) => Err(AppError::Unauthenticated),
                };
                match result {
                    Ok(a) => {
                        let ack = OutFrame::Ack { session, client_id: cid, seq: a.message.seq, duplicate: a.duplicate };
                        send(socket, &ack).await
                    }
                    Err(e) => report(socket, e.into(), cid).await,
                }
            }
            In::Typing { session, on, note } => {
                let session = match self.session_of(session) {
                    Ok(s) => s,
                    Err(e) => return report(socket, e, None).await,
                };
                let note = note.unwrap_or(false);
                // Only a watched session (already authorized by resume) carries typing.
                let Some(ctx) = self.feed.context(session).cloned() else {
                    return error(socket, "not_watching", "resume the session before typing in it", None).await;
                };
                let typed = match (&self.patron, self.feed.viewer()) {
                    (Some(rec), _) => self.app.patron_typing(rec, ctx, note, on),
                    (None, Viewer::Staff(staff)) => self.app.staff_typing(staff, ctx, note, on),
                    (None, Viewer::Patron { .. }) => return Err(Closed),
                };
                match typed {
                    Ok(()) => Ok(()),
                    Err(e) => report(socket, e.into(), None).await,
                }
            }
        }
    }
}

enum Step {
    Frame(Option<Result<WsMessage, axum::Error>>),
    Event(Option<std::sync::Arc<refdesk_domain::event::Event>>),
}

async fn send(socket: &mut WebSocket, frame: &OutFrame<'_>) -> Result<(), Closed> {
    let text = serde_json::to_string(frame).map_err(|e| {
        tracing::error!(error = %e, "cannot encode a frame");
        Closed
    })?;
    match tokio::time::timeout(SEND_WITHIN, socket.send(WsMessage::Text(text.into()))).await {
        Ok(sent) => sent.map_err(|_| Closed),
        Err(_) => {
            tracing::debug!("a client stopped reading; its connection is closed");
            Err(Closed)
        }
    }
}

async fn error(socket: &mut WebSocket, code: &str, message: &str, client_id: Option<&str>) -> Result<(), Closed> {
    send(socket, &OutFrame::Error { code, message, client_id }).await
}

async fn report(socket: &mut WebSocket, e: ApiError, client_id: Option<&str>) -> Result<(), Closed> {
    let (code, message) = e.parts();
    error(socket, code, message, client_id).await
}
