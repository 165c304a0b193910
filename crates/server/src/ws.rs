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
//!
//! What one visitor can make a socket hold is bounded (DESIGN §11):
//!
//! - sockets per chat token, per staff sign-in and per client address
//!   ([`Sockets`]); the sockets of one chat token (or one sign-in) share one
//!   frame budget, so opening more of them does not multiply it;
//! - a replay is sent a page at a time, each page read only once the last
//!   is written; a frame that cannot be written in `ws_send_seconds` closes
//!   the socket with 1013 (the client resumes later);
//! - the server pings every `ws_ping_seconds` and closes (1011) a socket
//!   that shows no sign of life for two of them;
//! - a frame over `max_frame_bytes` closes the socket with 1009 and a reason;
//! - a staff socket closes (1008) once its sign-in has ended: signed out on
//!   any node, or expired (checked at every ping).

use crate::error::ApiError;
use crate::error::Query;
use crate::http::auth::cookie_token;
use crate::AppState;
use axum::extract::ws::{CloseFrame, Message as WsMessage, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::extract::{ConnectInfo, State};
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
use std::collections::HashMap;
use std::hash::Hash;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Socket buffers, sized for chat (2 KiB in, 4 KiB out; both grow for a
/// larger frame): tungstenite's defaults (128 KiB each way)
/// would cost more per idle connection than everything else together.
const READ_BUFFER: usize = 2 * 1024;
const WRITE_BUFFER: usize = 4 * 1024;

/// How long a new socket has to send its `auth` frame.
const AUTH_WITHIN: Duration = Duration::from_secs(10);
/// Sockets that have not authenticated yet, at most, on one node: anyone may
/// open one, so they are bounded apart from the signed-in ones.
pub const PENDING_AUTH: usize = 1024;
/// How long the goodbye (a close frame) may take on a socket being closed.
const CLOSE_WITHIN: Duration = Duration::from_secs(1);

/// Close codes (RFC 6455 §7.4 and the IANA registry).
const CLOSE_POLICY: u16 = 1008;
const CLOSE_TOO_BIG: u16 = 1009;
const CLOSE_NO_PONG: u16 = 1011;
const CLOSE_TRY_AGAIN: u16 = 1013;

/// A token bucket: `rate` frames per second, bursts of `burst`.
pub struct Bucket {
    tokens: f64,
    rate: f64,
    burst: f64,
    at: Instant,
}

impl Bucket {
    fn new(rate: u32, burst: u32) -> Bucket {
        Bucket { tokens: burst as f64, rate: rate as f64, burst: burst as f64, at: Instant::now() }
    }

    fn refill(&mut self) {
        let now = Instant::now();
        self.tokens = (self.tokens + now.duration_since(self.at).as_secs_f64() * self.rate).min(self.burst);
        self.at = now;
    }

    fn take(&mut self) -> bool {
        self.refill();
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    fn full(&mut self) -> bool {
        self.refill();
        self.tokens >= self.burst
    }
}

/// Open sockets per key — a chat, a staff sign-in, a client address — and
/// the frame budget the sockets of one key share. A key whose sockets have
/// all closed keeps its budget until it has refilled: closing and opening
/// again does not buy a fresh burst.
pub struct Registry<K> {
    map: Mutex<RegistryMap<K>>,
}

struct RegistryMap<K> {
    entries: HashMap<K, Entry>,
    /// Size at which keys with no socket and a full budget are forgotten.
    prune_at: usize,
}

struct Entry {
    open: usize,
    bucket: Arc<Mutex<Bucket>>,
}

impl<K> Default for Registry<K> {
    fn default() -> Self {
        Registry { map: Mutex::new(RegistryMap { entries: HashMap::new(), prune_at: 1024 }) }
    }
}

/// One open socket's place under a key, given back when dropped.
pub struct Held<K: Hash + Eq + Clone> {
    registry: Arc<Registry<K>>,
    key: K,
    /// The frame budget shared by the key's sockets.
    bucket: Arc<Mutex<Bucket>>,
}

impl<K: Hash + Eq + Clone> Registry<K> {
    /// A place under `key` if fewer than `cap` sockets hold one.
    fn take(self: &Arc<Self>, key: K, cap: usize, limits: &refdesk_app::Limits) -> Option<Held<K>> {
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        if map.entries.len() >= map.prune_at {
            map.entries.retain(|_, e| e.open > 0 || !e.bucket.lock().unwrap_or_else(|p| p.into_inner()).full());
            map.prune_at = (map.entries.len() * 2).max(1024);
        }
        let entry = map.entries.entry(key.clone()).or_insert_with(|| Entry {
            open: 0,
            bucket: Arc::new(Mutex::new(Bucket::new(limits.frames_per_second, limits.frame_burst))),
        });
        if entry.open >= cap {
            return None;
        }
        entry.open += 1;
        Some(Held { registry: self.clone(), key, bucket: entry.bucket.clone() })
    }

    /// Sockets open under `key` now.
    pub fn open(&self, key: &K) -> usize {
        self.map.lock().unwrap_or_else(|p| p.into_inner()).entries.get(key).map_or(0, |e| e.open)
    }
}

impl<K: Hash + Eq + Clone> Drop for Held<K> {
    fn drop(&mut self) {
        let mut map = self.registry.map.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(e) = map.entries.get_mut(&self.key) {
            e.open -= 1;
            if e.open == 0 && e.bucket.lock().unwrap_or_else(|p| p.into_inner()).full() {
                map.entries.remove(&self.key);
            }
        }
    }
}

/// Every open socket of the node, counted per chat, per staff sign-in and
/// per client address (see the `sockets_per_…` limits).
#[derive(Default)]
pub struct Sockets {
    chats: Arc<Registry<SessionId>>,
    sign_ins: Arc<Registry<String>>,
    addresses: Arc<Registry<IpAddr>>,
}

#[derive(Deserialize)]
pub(crate) struct WsQuery {
    token: Option<String>,
}

/// Upgrades; the connection authenticates in its first frame.
pub(crate) async fn upgrade(
    State(state): State<AppState>,
    Query(q): Query<WsQuery>,
    peer: Option<axum::Extension<ConnectInfo<SocketAddr>>>,
    headers: HeaderMap,
    ws: WebSocketUpgrade,
) -> Result<Response, ApiError> {
    if q.token.is_some() {
        return Err(ApiError::bad_request(
            "token_in_url",
            "a chat's token never goes in a URL: send it in the first frame, {\"type\": \"auth\", \"token\": …}",
        ));
    }
    // Counted by the client's address (behind a trusted proxy, the one it
    // names), before anything else is spent on it.
    let address = peer
        .map(|p| crate::limit::address_key(crate::limit::client_ip_of(p.0 .0.ip(), &headers, &state.trusted_proxies)));
    let from_address = match address {
        Some(a) => match state.sockets.addresses.take(a, state.app.limits.sockets_per_address, &state.app.limits) {
            Some(held) => Some(held),
            None => {
                return Err(ApiError {
                    status: axum::http::StatusCode::TOO_MANY_REQUESTS,
                    code: "too_many_sockets",
                    message: "too many connections are open from your address; close some".into(),
                })
            }
        },
        None => None,
    };
    let Ok(pending) = state.pending_auth.clone().try_acquire_owned() else {
        return Err(ApiError {
            status: axum::http::StatusCode::SERVICE_UNAVAILABLE,
            code: "busy",
            message: "too many connections are opening at once; try again in a few seconds".into(),
        });
    };
    let cookie = cookie_token(&headers).map(str::to_owned);
    let sockets = state.sockets.clone();
    let limits = state.app.limits.clone();
    let app = state.app.clone();
    Ok(ws
        .read_buffer_size(READ_BUFFER)
        .write_buffer_size(WRITE_BUFFER)
        .max_write_buffer_size(limits.max_frame_bytes * 16)
        .max_message_size(limits.max_frame_bytes)
        .max_frame_size(limits.max_frame_bytes)
        .on_upgrade(move |socket| async move {
            let _from_address = from_address;
            Box::pin(serve(app, socket, cookie, pending, sockets)).await
        }))
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
    sockets: Arc<Sockets>,
) {
    let who = authenticate(&app, &mut socket, cookie).await;
    drop(pending);
    let Some((viewer, patron, login)) = who else {
        let _ = socket.send(WsMessage::Close(None)).await;
        return;
    };
    // Held while the socket lives: its place under its chat or its sign-in,
    // and the frame budget it shares with the others there.
    let l = &app.limits;
    let (held, cap, what) = match (&patron, &login) {
        (Some(rec), _) => {
            (sockets.chats.take(rec.ctx.id, l.sockets_per_chat, l).map(Slot::Chat), l.sockets_per_chat, "chat")
        }
        (None, Some(token)) => {
            let key = refdesk_app::auth::digest(token);
            (sockets.sign_ins.take(key, l.sockets_per_sign_in, l).map(Slot::SignIn), l.sockets_per_sign_in, "sign-in")
        }
        (None, None) => return,
    };
    let Some(held) = held else {
        let why = format!("this {what} already has {cap} connections open; close one");
        let _ = error(&mut socket, "too_many_sockets", &why, None).await;
        let _ = socket.send(close_frame(CLOSE_POLICY, "too many connections")).await;
        return;
    };
    Connection::new(app, viewer, patron, login, held).run(socket).await
}

/// A socket's place under its chat or its staff sign-in.
enum Slot {
    Chat(Held<SessionId>),
    SignIn(Held<String>),
}

impl Slot {
    fn bucket(&self) -> &Arc<Mutex<Bucket>> {
        match self {
            Slot::Chat(h) => &h.bucket,
            Slot::SignIn(h) => &h.bucket,
        }
    }
}

fn close_frame(code: u16, reason: &str) -> WsMessage {
    WsMessage::Close(Some(CloseFrame { code, reason: reason.into() }))
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
    Referred { question: refdesk_domain::ids::QuestionId, library_name: &'a str, text: &'a str, by: &'a str },
}

struct Connection {
    app: App,
    feed: Feed,
    /// Keeps a staff member counted as connected while the socket lives.
    _online: Option<refdesk_app::staff::Online>,
    /// The patron's own session (None for staff).
    patron: Option<SessionRecord>,
    /// Its place under its chat or sign-in, with the shared frame budget.
    slot: Slot,
    /// When the client last sent anything (a pong counts).
    heard: Instant,
}

/// Why the connection loop stops, and the close frame to say goodbye with
/// (none when the socket is already gone).
struct Closed(Option<(u16, String)>);

impl Closed {
    fn quiet() -> Closed {
        Closed(None)
    }

    fn with(code: u16, reason: impl Into<String>) -> Closed {
        Closed(Some((code, reason.into())))
    }
}

impl Connection {
    fn new(app: App, viewer: Viewer, patron: Option<SessionRecord>, login: Option<String>, slot: Slot) -> Connection {
        let mut feed = Feed::new(&app, viewer);
        if let Some(token) = login {
            feed.check_sign_in(&token);
        }
        let online = match feed.viewer() {
            Viewer::Staff(s) => Some(app.staff_online(s.id)),
            Viewer::Patron { .. } => None,
        };
        Connection { app, feed, _online: online, patron, slot, heard: Instant::now() }
    }

    /// Takes a frame from the budget this socket shares.
    fn take(&self) -> bool {
        self.slot.bucket().lock().unwrap_or_else(|p| p.into_inner()).take()
    }

    async fn run(mut self, mut socket: WebSocket) {
        let hello = OutFrame::Hello {
            role: if self.patron.is_some() { "patron" } else { "staff" },
            session: self.patron.as_ref().map(|r| r.ctx.id),
            max_message_chars: self.app.limits.max_message_chars,
        };
        let send_within = self.send_within();
        if send(&mut socket, &hello, send_within).await.is_err() {
            return;
        }
        let every = Duration::from_secs(self.app.limits.ws_ping_seconds);
        let mut ping = tokio::time::interval_at((Instant::now() + every).into(), every);
        ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let closed = loop {
            // All three are cancel-safe; the work happens after the select.
            let step = tokio::select! {
                frame = socket.recv() => Step::Frame(frame),
                event = self.feed.recv() => Step::Event(event),
                _ = ping.tick() => Step::Tick,
            };
            if matches!(step, Step::Frame(Some(Ok(_)))) {
                self.heard = Instant::now();
            }
            let result = match step {
                Step::Frame(Some(Ok(WsMessage::Text(text)))) => self.on_text(&mut socket, &text).await,
                // Every frame counts against the frame limit, whatever its kind.
                Step::Frame(Some(Ok(WsMessage::Binary(_)))) => match self.take() {
                    true => error(&mut socket, "bad_frame", "send JSON text frames", None).await,
                    false => error(&mut socket, "rate_limited", "too many frames; slow down", None).await,
                },
                Step::Frame(Some(Ok(WsMessage::Ping(_) | WsMessage::Pong(_)))) => match self.take() {
                    true => Ok(()),
                    false => error(&mut socket, "rate_limited", "too many frames; slow down", None).await,
                },
                Step::Frame(Some(Ok(WsMessage::Close(_))) | None) => Err(Closed::quiet()),
                Step::Frame(Some(Err(e))) => Err(self.read_failed(e)),
                Step::Tick => self.on_tick(&mut socket, every).await,
                Step::Event(None) => Err(Closed::quiet()),
                Step::Event(Some(event)) => match self.feed.handle(event).await {
                    Ok(items) => self.forward(&mut socket, &items).await,
                    Err(e) => report(&mut socket, e.into(), None).await,
                },
            };
            if let Err(closed) = result {
                break closed;
            }
        };
        if let Closed(Some((code, reason))) = closed {
            let _ = tokio::time::timeout(CLOSE_WITHIN, socket.send(close_frame(code, &reason))).await;
        }
    }

    fn send_within(&self) -> Duration {
        Duration::from_secs(self.app.limits.ws_send_seconds)
    }

    /// A frame could not be read: over the size limit (said with 1009), or
    /// a broken connection.
    fn read_failed(&self, e: axum::Error) -> Closed {
        use tokio_tungstenite::tungstenite::error::{CapacityError, Error as WsError};
        let inner = e.into_inner();
        match inner.downcast_ref::<WsError>() {
            Some(WsError::Capacity(CapacityError::MessageTooLong { .. })) => {
                let max = self.app.limits.max_frame_bytes;
                Closed::with(CLOSE_TOO_BIG, format!("a frame may be at most {max} bytes"))
            }
            Some(WsError::Protocol(p)) => {
                tracing::debug!(error = %p, "WebSocket protocol error");
                Closed::with(1002, "protocol error")
            }
            _ => {
                tracing::debug!(error = %inner, "WebSocket read failed");
                Closed::quiet()
            }
        }
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
                    return Err(Closed::with(CLOSE_POLICY, "signed out"));
                }
                Out::MonitorGone(s) => OutFrame::MonitorGone { session: *s },
                Out::Queue(waiting) => OutFrame::Queue { waiting },
                Out::MonitorList(sessions) => OutFrame::Monitor { sessions },
                Out::Availability { staff, availability } => {
                    OutFrame::Availability { staff: *staff, availability: *availability }
                }
                Out::Referred { question, library_name, text, by } => {
                    OutFrame::Referred { question: *question, library_name, text, by }
                }
            };
            send(socket, &frame, self.send_within()).await?;
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
        if !self.take() {
            return error(socket, "rate_limited", "too many frames; slow down", None).await;
        }
        let within = self.send_within();
        let frame: In = match serde_json::from_str(text.as_str()) {
            Ok(f) => f,
            Err(e) => return error(socket, "bad_frame", &format!("not a frame of the protocol: {e}"), None).await,
        };
        match frame {
            In::Ping {} => send(socket, &OutFrame::Pong, within).await,
            In::Resume { session, after } => {
                let session = match self.session_of(session) {
                    Ok(s) => s,
                    Err(e) => return report(socket, e, None).await,
                };
                if let Err(e) = self.feed.resume(session, after.unwrap_or(0)).await {
                    return report(socket, e.into(), None).await;
                }
                // A page at a time, the next read only once the last is
                // written: a reader that stops holds one page, not the chat.
                let page = self.app.limits.replay_page;
                loop {
                    match self.feed.next_page(session, page).await {
                        Ok(p) => {
                            for m in &p.items {
                                send(socket, &OutFrame::Event(m), within).await?;
                            }
                            if p.done {
                                break;
                            }
                        }
                        Err(e) => return report(socket, e.into(), None).await,
                    }
                }
                let last = self.feed.last_seq(session).unwrap_or(0);
                send(socket, &OutFrame::Synced { session, last }, within).await?;
                // A waiting patron learns their place in line at once; the
                // chatting librarian, who else is present (B3).
                let extra: Vec<Out> = match self.feed.viewer() {
                    Viewer::Patron { .. } => self.feed.position().into_iter().collect(),
                    Viewer::Staff(_) => self.feed.presence(session).into_iter().collect(),
                };
                self.forward(socket, &extra).await
            }
            In::Leave { session } => {
                self.feed.leave(SessionId(session));
                Ok(())
            }
            In::Queue {} => match self.feed.watch_queue().await {
                Ok(waiting) => send(socket, &OutFrame::Queue { waiting: &waiting }, within).await,
                Err(e) => report(socket, e.into(), None).await,
            },
            In::Monitor {} => match self.feed.watch_monitor().await {
                Ok(sessions) => send(socket, &OutFrame::Monitor { sessions: &sessions }, within).await,
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
                        send(socket, &ack, within).await
                    }
                    Err(e) => report(socket, e.into(), cid).await,
                }
            }
            In::ImResume { peer, after } => {
                let (peer, mut last) = (StaffId(peer), after.unwrap_or(0));
                loop {
                    match self.feed.im_page(peer, last, self.app.limits.replay_page).await {
                        Ok(p) => {
                            for m in &p.items {
                                send(socket, &OutFrame::Im(m), within).await?;
                            }
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
                        send(socket, &ack, within).await
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
                    (None, Viewer::Patron { .. }) => return Err(Closed::quiet()),
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
    Event(Option<Arc<refdesk_domain::event::Event>>),
    Tick,
}

/// A socket that does not drain: closed, and the client may resume later.
fn too_slow() -> Closed {
    tracing::debug!("a client stopped reading; its connection is closed");
    Closed::with(CLOSE_TRY_AGAIN, "too slow: frames were not read in time; reconnect and resume")
}

/// Sends a frame; one that cannot go out within `within` closes the socket.
async fn send(socket: &mut WebSocket, frame: &OutFrame<'_>, within: Duration) -> Result<(), Closed> {
    let text = serde_json::to_string(frame).map_err(|e| {
        tracing::error!(error = %e, "cannot encode a frame");
        Closed::with(1011, "internal error")
    })?;
    match tokio::time::timeout(within, socket.send(WsMessage::Text(text.into()))).await {
        Ok(sent) => sent.map_err(|_| Closed::quiet()),
        Err(_) => Err(too_slow()),
    }
}

/// Sends an `error` frame. Before a connection is set up (auth) or for
/// answers that are themselves errors the default send time applies.
async fn error(socket: &mut WebSocket, code: &str, message: &str, client_id: Option<&str>) -> Result<(), Closed> {
    send(socket, &OutFrame::Error { code, message, client_id }, ERROR_WITHIN).await
}

/// How long an `error` frame may take to go out.
const ERROR_WITHIN: Duration = Duration::from_secs(10);

async fn report(socket: &mut WebSocket, e: ApiError, client_id: Option<&str>) -> Result<(), Closed> {
    let (code, message) = e.parts();
    error(socket, code, message, client_id).await
}
