//! The WebSocket endpoint (`GET /api/ws`), protocol in `docs/protocol.md`.
//!
//! One task per connection. It waits on cancel-safe things — the next
//! frame from the client, the next event from the bus, the ping timer, the
//! node's shutdown — and handles whichever comes first *outside* the
//! `select!`, so that no store read or write is ever abandoned half-way by
//! another branch winning.
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
//! - sockets not yet authenticated: 32 per client address, and
//!   [`PENDING_AUTH`] per node, past which the one that has waited longest
//!   for its first frame closes with 1013 ([`Opening`]);
//! - a replay is sent a page at a time, each page read only once the last
//!   is written; a frame (or a turn's frames, written together) that cannot
//!   be written in `ws_send_seconds` closes the socket with 1013 (the
//!   client resumes later);
//! - the server pings every `ws_ping_seconds` and closes (1011) a socket
//!   that shows no sign of life for two of them;
//! - a frame over `max_frame_bytes` closes the socket with 1009 and a reason;
//! - a staff socket closes (1008) once its sign-in has ended: signed out on
//!   any node, or expired (checked at every ping).
//!
//! When the node shuts down, after its drain period (see [`crate::run`]),
//! every socket — signed in or still waiting for its `auth` frame — closes
//! with 1001 (going away) and a reason, so that its client resumes at once
//! on another node instead of waiting out a backoff after a dead link.

pub(crate) mod connection;
mod opening;
pub mod protocol;
mod sockets;

pub use opening::Opening;

pub(crate) use sockets::per_key;
pub use sockets::{Bucket, Held, Registry, Sockets};

use crate::error::{ApiError, ErrorBody, Query};
use crate::input::cookie_token;
use crate::limit::Credential;
use crate::AppState;
use axum::extract::ws::{Message as WsMessage, WebSocket, WebSocketUpgrade};
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use connection::{close_frame, error, report, Connection};
use protocol::First;
use refdesk_app::App;
use refdesk_domain::visibility::Viewer;
use refdesk_store::SessionRecord;
use serde::Deserialize;
use sockets::Slot;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tracing::Instrument;

/// Socket buffers, sized for chat (2 KiB in, 4 KiB out; both grow for a
/// larger frame): tungstenite's defaults (128 KiB each way)
/// would cost more per idle connection than everything else together.
/// Public for the bare relay of `refdesk bench-relay`, which uses the same.
pub const READ_BUFFER: usize = 2 * 1024;
/// The write buffer: frames queued in one turn are written together.
pub const WRITE_BUFFER: usize = 4 * 1024;

/// How long a new socket has to send its `auth` frame.
const AUTH_WITHIN: Duration = Duration::from_secs(10);
/// Sockets that have not authenticated yet, at most, on one node: anyone may
/// open one, so they are bounded apart from the signed-in ones. Past it, a
/// new socket takes the place of the one that has waited longest
/// ([`Opening`]).
pub const PENDING_AUTH: usize = 1024;
/// Sockets waiting for their `auth` frame from one client address (IPv6:
/// its /64), at most: a few networks holding silent sockets would
/// otherwise fill [`PENDING_AUTH`] and turn everyone else away. A page
/// authenticates within milliseconds of opening, so even a computer lab
/// sharing one address, all reconnecting at once after a restart, seldom
/// has more than a few waiting (and one refused retries after its backoff).
pub const PENDING_AUTH_PER_ADDRESS: usize = 32;

/// A socket's place among those waiting for their `auth` frame: on the
/// node, given back as soon as its first frame is in (until then a newer
/// socket may take it, [`Opening`]), and under its client's address, given
/// back once the client is known.
pub(crate) struct Pending {
    node: opening::Place,
    _address: Option<Held<std::net::IpAddr>>,
    /// The frame budgets of the patrons' sockets of the client's network.
    network: Option<Arc<sockets::Network>>,
    /// The read budget of the client's network, for a patron's replays.
    reads: Option<crate::limit::Reads>,
    /// Its budget of credentials that match nothing, for the `auth` frame.
    credentials: Option<crate::limit::Credentials>,
    /// The client, when the upgrade came with a staff cookie the node
    /// knows (its socket was counted, not refused, nor its opening rated).
    desk_client: Option<DeskClient>,
}

/// The client of an upgrade that came with a staff cookie the node knows:
/// a patron's token in its `auth` frame is held to the client's caps (its
/// address's, and for IPv6 its /56's and /48's) and to its opening rate
/// after all — a librarian's cookie must not lift a stranger's bounds.
struct DeskClient {
    ip: std::net::IpAddr,
    limiter: Arc<crate::limit::Limiter>,
}

impl DeskClient {
    /// Why a patron's socket opened on this upgrade is refused, if it is:
    /// the `error` frame's code and text, and the close frame.
    fn refuses_patron(
        &self,
        sockets: &Sockets,
        limits: &refdesk_app::Limits,
        metrics: &crate::metrics::ServerMetrics,
    ) -> Option<(&'static str, &'static str, WsMessage)> {
        // The cap first: a socket it refuses spends none of the rate.
        if sockets.over_cap(self.ip, limits.sockets_per_address) {
            metrics.limited("socket");
            let close = close_frame(CLOSE_POLICY, "too many connections");
            return Some(("too_many_sockets", "too many connections are open from your address; close some", close));
        }
        if self.limiter.open_socket(self.ip, limits.sockets_opened_per_minute).is_err() {
            metrics.limited("socket_open");
            let close = close_frame(CLOSE_TRY_AGAIN, "too many connections opened");
            return Some(("rate_limited", "too many connections were opened from your address; slow down", close));
        }
        None
    }
}
/// How long the goodbye (a close frame, and the client's in reply) may take
/// on a socket being closed.
pub(crate) const CLOSE_WITHIN: Duration = Duration::from_secs(1);

/// Says goodbye: the close frame, then the client's frames read and
/// dropped until its own close frame comes back (RFC 6455, 7.1.1), all
/// within [`CLOSE_WITHIN`]. A socket dropped with frames still unread in
/// its buffer is reset, and a client may then lose the close frame with
/// its code: a patron's page would take a restart's 1001 for a broken line
/// and wait out its backoff.
pub(crate) async fn goodbye(socket: &mut WebSocket, close: WsMessage) {
    let bye = async {
        if socket.send(close).await.is_err() {
            return;
        }
        while let Some(Ok(frame)) = socket.recv().await {
            if matches!(frame, WsMessage::Close(_)) {
                break;
            }
        }
    };
    let _ = tokio::time::timeout(CLOSE_WITHIN, bye).await;
}

/// Close codes (RFC 6455 §7.4 and the IANA registry).
pub(crate) const CLOSE_POLICY: u16 = 1008;
pub(crate) const CLOSE_TOO_BIG: u16 = 1009;
pub(crate) const CLOSE_NO_PONG: u16 = 1011;
pub(crate) const CLOSE_TRY_AGAIN: u16 = 1013;
pub(crate) const CLOSE_GOING_AWAY: u16 = 1001;
/// The reason sent with [`CLOSE_GOING_AWAY`].
pub(crate) const GOING_AWAY_REASON: &str = "this server is restarting; reconnect";

/// Resolves once the node's sockets must go (the drain is over, or the
/// server is gone altogether).
pub(crate) async fn going_away(rx: &mut tokio::sync::watch::Receiver<bool>) {
    let _ = rx.wait_for(|gone| *gone).await;
}

/// The upgrade's query string: nothing is taken from it; a token there is refused.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct WsQuery {
    /// Refused (`400 token_in_url`): a chat's token never goes in a URL,
    /// which proxies log; it goes in the first frame.
    token: Option<String>,
}

/// Upgrade to the WebSocket of `docs/protocol.md`; the first frame
/// authenticates: `{"type": "auth"}`, with `"token"` for a patron.
#[utoipa::path(get, path = "/api/ws", tag = "desk",
    params(WsQuery),
    responses(
        (status = 101, description = "switching to the WebSocket protocol"),
        (status = 400, description = "`token_in_url`: a token in the URL; `not_a_websocket`: not a WebSocket upgrade request", body = ErrorBody),
        (status = 426, description = "`not_a_websocket`: the connection cannot be upgraded", body = ErrorBody),
        (status = 429, description = "`too_many_sockets`: the client's address (IPv6: its /64) already holds `limits.sockets_per_address` sockets (IPv6: or its /56 4 times as many, its /48 16 times), or 32 that have not sent their `auth` frame yet (never for a staff page whose sign-in the node knows); `rate_limited`: it opened `limits.sockets_opened_per_minute` (300) within the minute (IPv6: a /64, within its /56's and /48's), or, for a staff page whose sign-in the node knows, the sign-in's frame budget is spent; `Retry-After` says when to try again", body = ErrorBody),
    ))]
pub(crate) async fn upgrade(
    State(state): State<AppState>,
    Query(q): Query<WsQuery>,
    peer: Option<axum::Extension<ConnectInfo<SocketAddr>>>,
    let_go: Option<axum::Extension<crate::conn::LetGo>>,
    headers: HeaderMap,
    ws: Result<WebSocketUpgrade, axum::extract::ws::rejection::WebSocketUpgradeRejection>,
) -> Result<Response, ApiError> {
    if q.token.is_some() {
        return Err(ApiError::bad_request(
            "token_in_url",
            "a chat's token never goes in a URL: send it in the first frame, {\"type\": \"auth\", \"token\": …}",
        ));
    }
    let ws = ws.map_err(|r| ApiError::new(r.status(), "not_a_websocket", r.body_text()))?;
    // Counted by the client's address (behind a trusted proxy, the one it
    // names), before anything else is spent on it.
    let ip = peer.map(|p| crate::limit::client_ip_of(p.0 .0.ip(), &headers, &state.trusted_proxies));
    // A desk this node knows reconnects whatever the address opened: a
    // stranger sharing a library's address does not keep its librarians out.
    // Its sign-in's frame budget pays instead (each socket is an
    // authentication, and a member's first and last on the node a write:
    // the staff member seen connected), and its account's after `auth`.
    let desk = match known_desk(&state, &headers) {
        Ok(desk) => desk,
        Err(refused) => return Ok(refused.into_response()),
    };
    let per_minute = state.app.limits().sockets_opened_per_minute;
    if let Some(Err(wait)) = ip.filter(|_| desk.is_none()).map(|ip| state.limiter.open_socket(ip, per_minute)) {
        state.metrics.limited("socket_open");
        return Ok(crate::limit::Refused::TooMany(wait).into_response());
    }
    let address = ip.map(crate::limit::address_key);
    let (from_address, pending_here) = address_places(&state, address, desk.is_some())?;
    let network = match from_address.as_ref().zip(ip) {
        Some((own, ip)) => {
            // A desk the node knows is not held to its /56's and /48's: a
            // stranger holding sockets across a campus's /64s must not keep
            // its librarians out (their sign-ins bound their sockets).
            let cap = if desk.is_some() { usize::MAX } else { state.app.limits().sockets_per_address };
            let budget = sockets::per_address(state.app.limits());
            match sockets::Network::of(&state.sockets, own, ip, cap, budget) {
                Some(network) => Some(Arc::new(network)),
                None => {
                    state.metrics.limited("socket");
                    return Err(too_many_sockets("too many connections are open from your network; close some"));
                }
            }
        }
        None => None,
    };
    let (reads, credentials) =
        (ip.map(|ip| crate::limit::Reads::new(&state, ip)), ip.map(|ip| crate::limit::Credentials::of(&state, ip)));
    let desk_client = ip.filter(|_| desk.is_some()).map(|ip| DeskClient { ip, limiter: state.limiter.clone() });
    let pending =
        Pending { node: state.pending_auth.enter(), _address: pending_here, network, reads, credentials, desk_client };
    let cookie = cookie_token(&headers, state.secure_cookies).map(str::to_owned);
    let sockets = state.sockets.clone();
    let limits = state.app.limits().clone();
    let app = state.app.clone();
    let metrics = state.metrics.clone();
    // The upgrade request's span (its request id) goes with the socket for
    // its whole life, into the use cases it calls.
    let span = tracing::Span::current();
    // Subscribed before the upgrade: the server's shutdown waits for every
    // receiver, so no socket can slip past its goodbye.
    let gone = state.going_away.subscribe();
    Ok(ws
        .read_buffer_size(READ_BUFFER)
        .write_buffer_size(WRITE_BUFFER)
        .max_write_buffer_size(limits.max_frame_bytes * 16)
        .max_message_size(limits.max_frame_bytes)
        .max_frame_size(limits.max_frame_bytes)
        .on_upgrade(move |socket| {
            let let_go = let_go.map(|e| e.0);
            serve(app, socket, cookie, pending, sockets, metrics, gone, from_address, let_go).instrument(span)
        }))
}

/// The staff cookie of the upgrade, if it signs in a desk this node knows,
/// its sign-in's frame budget spent for the socket; past that budget the
/// refusal (`429`) to answer with.
fn known_desk<'h>(state: &AppState, headers: &'h HeaderMap) -> Result<Option<&'h str>, crate::limit::Refused> {
    let desk = cookie_token(headers, state.secure_cookies).filter(|c| state.limiter.knows(Credential::Staff, c));
    if let Some(cookie) = desk {
        if !state.sockets.sign_ins.spend(refdesk_app::auth::digest(cookie), sockets::per_key(state.app.limits())) {
            state.metrics.limited("socket_open");
            let why = "this sign-in opened too many connections in a short time; slow down";
            return Err(crate::limit::Refused::SlowDown(why.into()));
        }
    }
    Ok(desk)
}

/// `429 too_many_sockets`, saying why.
fn too_many_sockets(why: &str) -> ApiError {
    ApiError::new(StatusCode::TOO_MANY_REQUESTS, "too_many_sockets", why)
}

/// A socket's place among those open from its address, and among those
/// still opening from it.
type AddressPlaces = (Option<Held<std::net::IpAddr>>, Option<Held<std::net::IpAddr>>);

/// The socket's places under its client's address: among the sockets
/// open from it (`sockets_per_address`) and among those still opening
/// ([`PENDING_AUTH_PER_ADDRESS`]); `429 too_many_sockets` when either is full.
/// A desk the node knows (`desk`) is counted but never refused: a stranger
/// sharing a library's address (a campus NAT, the library's Wi-Fi) holding
/// its sockets or leaving 32 unopened must not keep its librarians out
/// (their sign-ins bound their sockets: `sockets_per_sign_in`).
fn address_places(state: &AppState, address: Option<std::net::IpAddr>, desk: bool) -> Result<AddressPlaces, ApiError> {
    let (cap, opening) = match desk {
        true => (usize::MAX, usize::MAX),
        false => (state.app.limits().sockets_per_address, PENDING_AUTH_PER_ADDRESS),
    };
    let from_address = match address {
        Some(a) => match state.sockets.addresses.take(a, cap, sockets::per_address(state.app.limits())) {
            Some(held) => Some(held),
            None => {
                state.metrics.limited("socket");
                return Err(too_many_sockets("too many connections are open from your address; close some"));
            }
        },
        None => None,
    };
    // Only the count of sockets still opening: its frame budget is never spent.
    let pending_here = match address {
        Some(a) => match state.sockets.pending.take(a, opening, sockets::per_key(state.app.limits())) {
            Some(held) => Some(held),
            None => {
                state.metrics.limited("socket_opening");
                let why = "too many connections from your address are still opening; try again in a few seconds";
                return Err(too_many_sockets(why));
            }
        },
        None => None,
    };
    Ok((from_address, pending_here))
}

/// Serves one socket. What an idle socket holds for its whole life is kept
/// small (issue 17: a waiting patron is mostly an idle socket): the opening
/// (authentication, the socket's place under its chat or sign-in) runs in
/// its own boxed future, gone once done; then the connection and its socket
/// live in one heap block, and the loop's own future holds little more than
/// a reference to them. Written as one `async fn`, the compiler kept the
/// opening's state, the arguments and the loop side by side: 6 KiB a socket.
#[allow(clippy::too_many_arguments)]
fn serve(
    app: App,
    socket: WebSocket,
    cookie: Option<String>,
    pending: Pending,
    sockets: Arc<Sockets>,
    metrics: Arc<crate::metrics::ServerMetrics>,
    gone: tokio::sync::watch::Receiver<bool>,
    from_address: Option<Held<std::net::IpAddr>>,
    let_go: Option<crate::conn::LetGo>,
) -> impl std::future::Future<Output = ()> {
    let opening = Box::pin(open(app, socket, cookie, pending, sockets, metrics, gone));
    async move {
        let _from_address = from_address;
        let Some(mut live) = opening.await else { return };
        let Live { conn, socket, kind, .. } = &mut *live;
        let code = Box::pin(conn.run(socket)).await;
        // A client let go for not reading (or answering) is reset when the
        // socket closes: what its socket could not send is dropped.
        if matches!(code, Some(CLOSE_TRY_AGAIN | CLOSE_NO_PONG)) {
            if let Some(let_go) = &let_go {
                let_go.reset();
            }
        }
        // The client went, not this node (whose patrons open their pages
        // again on another): a waiting patron's queue entry may say so.
        if code != Some(CLOSE_GOING_AWAY) {
            conn.page_closed();
        }
        tracing::debug!(kind = *kind, "socket closed");
    }
}

/// A socket past its opening, for as long as it lives.
struct Live {
    conn: Connection,
    socket: WebSocket,
    /// Counts the socket among the open ones while it lives.
    _open: crate::metrics::OpenSocket,
    /// `patron_socket` or `staff_socket`, for the logs.
    kind: &'static str,
}

/// Who is at the other end, once known: the viewer, a patron's chat, a
/// staff member's sign-in, and whether the socket is a desk (not a page
/// that only reads along: `auth`'s `reader`).
type Identity = (Viewer, Option<SessionRecord>, Option<String>, bool);

/// Authenticates a new socket and gives it its place: the connection, or
/// `None` once the socket has been answered (an `error` frame, or a close).
async fn open(
    app: App,
    mut socket: WebSocket,
    cookie: Option<String>,
    pending: Pending,
    sockets: Arc<Sockets>,
    metrics: Arc<crate::metrics::ServerMetrics>,
    mut gone: tokio::sync::watch::Receiver<bool>,
) -> Option<Box<Live>> {
    let Pending { node, _address: from_address, network, reads, credentials, desk_client } = pending;
    // Authentication only reads: abandoning it for the goodbye is harmless.
    let who = tokio::select! {
        // Boxed: its state is gone once the client is known, and the
        // socket's future, held as long as the socket, stays small.
        who = Box::pin(authenticate(&app, &mut socket, cookie, node, credentials)) => who,
        () = going_away(&mut gone) => Err(Closed::GoingAway),
    };
    drop(from_address);
    let who = match who {
        Ok(who) => who,
        Err(closed) => return closed_before_auth(&mut socket, closed, &metrics).await,
    };
    let Some((viewer, patron, login, desk)) = who else {
        goodbye(&mut socket, WsMessage::Close(None)).await;
        return None;
    };
    // Held while the socket lives: its place under its chat or its sign-in,
    // and the frame budget it shares with the others there.
    let l = app.limits();
    let (held, cap, what) = match (&patron, &login) {
        (Some(rec), _) => {
            let held = sockets.chats.take(rec.ctx.id, l.sockets_per_chat, sockets::per_key(l));
            (held.map(|h| Slot::Chat(h, network)), l.sockets_per_chat, "chat")
        }
        (None, Some(token)) => {
            let refdesk_domain::visibility::Viewer::Staff(staff) = &viewer else { return None };
            let key = refdesk_app::auth::digest(token);
            // Pages that only read along leave two places for desks: a
            // restart reconnecting a desk and many question pages at once
            // must not keep the desk out.
            let cap = if desk { l.sockets_per_sign_in } else { l.sockets_per_sign_in.saturating_sub(2).max(1) };
            let held = sockets.sign_ins.take(key, cap, sockets::per_key(l)).and_then(|sign_in| {
                let account =
                    sockets.sign_ins.take(sockets::account_key(staff.id), usize::MAX, sockets::per_account(l))?;
                Some(Slot::SignIn(Box::new(sockets::StaffPlace { sign_in, account })))
            });
            (held, l.sockets_per_sign_in, "sign-in")
        }
        (None, None) => return None,
    };
    // A desk's upgrade was not held to its client's caps; a patron's chat
    // opened on it is (a page of /ask beside the desk, in one browser,
    // still fits).
    if let Some((code, why, close)) =
        desk_client.filter(|_| patron.is_some()).and_then(|d| d.refuses_patron(&sockets, l, &metrics))
    {
        return refuse(&mut socket, code, why, close).await;
    }
    let Some(held) = held else {
        let why = format!("this {what} already has {cap} connections open; close one");
        return refuse(&mut socket, "too_many_sockets", &why, close_frame(CLOSE_POLICY, "too many connections")).await;
    };
    if !held.opened() {
        metrics.limited("socket_open");
        let why = "this account opened too many connections in a short time; slow down";
        return refuse(&mut socket, "rate_limited", why, close_frame(CLOSE_TRY_AGAIN, "too many connections opened"))
            .await;
    }
    let kind = if patron.is_some() { "patron_socket" } else { "staff_socket" };
    let _open = metrics.socket(kind);
    tracing::debug!(kind, "socket authenticated");
    let reads = if patron.is_some() { reads } else { None };
    let conn = Connection::new(app, viewer, (patron, login, desk), held, gone, reads);
    Some(Box::new(Live { conn, socket, _open, kind }))
}

/// Says goodbye to a socket closed before it was authenticated, with the
/// code that says why. Always `None` (no connection).
async fn closed_before_auth(
    socket: &mut WebSocket,
    closed: Closed,
    metrics: &crate::metrics::ServerMetrics,
) -> Option<Box<Live>> {
    let frame = match closed {
        Closed::GoingAway => close_frame(CLOSE_GOING_AWAY, GOING_AWAY_REASON),
        Closed::PlaceLost => {
            metrics.limited("socket_opening_oldest");
            close_frame(CLOSE_TRY_AGAIN, "too many connections are opening; try again")
        }
        Closed::Unreadable(why) => why.frame(),
    };
    goodbye(socket, frame).await;
    None
}

/// Refuses a socket just authenticated: an `error` frame saying why, then
/// the goodbye with `close`. Always `None` (no connection).
async fn refuse(socket: &mut WebSocket, code: &str, why: &str, close: WsMessage) -> Option<Box<Live>> {
    let _ = error(socket, code, why, None).await;
    goodbye(socket, close).await;
    None
}

/// Why a socket was closed before it was authenticated.
enum Closed {
    /// The node is shutting down.
    GoingAway,
    /// A newer socket took its place among the opening ones before its
    /// first frame came ([`Opening`]).
    PlaceLost,
    /// Its first frame could not be read (over the size limit, not UTF-8,
    /// a protocol error): said with the code that says why, as after `auth`.
    Unreadable(connection::Closed),
}

/// Reads the `auth` frame: a patron's token, or the staff cookie of the
/// upgrade. Anything else, or nothing in time, ends the connection
/// (`Ok(None)`). The socket's place among the opening ones is given back
/// as soon as its first frame is in: past that, it cannot lose it.
async fn authenticate(
    app: &App,
    socket: &mut WebSocket,
    cookie: Option<String>,
    mut place: opening::Place,
    credentials: Option<crate::limit::Credentials>,
) -> Result<Option<Identity>, Closed> {
    let first = tokio::select! {
        first = tokio::time::timeout(AUTH_WITHIN, socket.recv()) => first,
        () = place.lost() => return Err(Closed::PlaceLost),
    };
    drop(place);
    if let Ok(Some(Err(e))) = first {
        return Err(Closed::Unreadable(connection::read_failed(e, app.limits().max_frame_bytes)));
    }
    Ok(identify(app, socket, cookie, first, credentials).await)
}

/// Who the first frame says the client is (see [`authenticate`]).
async fn identify(
    app: &App,
    socket: &mut WebSocket,
    cookie: Option<String>,
    first: Result<Option<Result<WsMessage, axum::Error>>, tokio::time::error::Elapsed>,
    credentials: Option<crate::limit::Credentials>,
) -> Option<Identity> {
    const HOW: &str = "send {\"type\": \"auth\"} first: with the chat's token for a patron, bare for signed-in staff";
    const NEITHER: &str = "this auth frame has no chat token and the socket no staff sign-in: a patron sends the \
                           chat's token (\"token\"), staff sign in first (POST /api/login)";
    // `unauthenticated` says the credential opens nothing (a client drops
    // it); a first frame that is not `auth`, or none in time, says only
    // that: the credential may be good, and the client tries again.
    let frame = match first {
        Ok(Some(Ok(WsMessage::Text(text)))) => text,
        Ok(Some(Ok(_))) => {
            let _ = error(socket, "bad_frame", HOW, None).await;
            return None;
        }
        Ok(_) => return None,
        Err(_) => {
            let _ = error(socket, "auth_timeout", HOW, None).await;
            return None;
        }
    };
    let Ok(First::Auth { token, reader }) = serde_json::from_str(frame.as_str()) else {
        let _ = error(socket, "bad_frame", HOW, None).await;
        return None;
    };
    // Looked up within the network's budget of credentials that match nothing.
    let budget = credentials.as_ref();
    let who = match (token, cookie) {
        (Some(token), _) => crate::limit::within(budget, (Credential::Patron, &token), app.patron_session(&token))
            .await
            .map(|rec| (Viewer::Patron { session: rec.ctx.id }, Some(rec), None, false))
            .map_err(crate::limit::Refused::for_patron),
        (None, Some(cookie)) => {
            crate::limit::within(budget, (Credential::Staff, &cookie), app.staff_for_token(&cookie))
                .await
                .map(|staff| (Viewer::Staff(staff), None, Some(cookie), !reader))
        }
        (None, None) => {
            // Nothing to look up: said apart from a credential that opens nothing.
            let _ = error(socket, "unauthenticated", NEITHER, None).await;
            return None;
        }
    };
    match who {
        Ok(who) => Some(who),
        Err(e) => {
            let _ = report(socket, e.api_error(), None).await;
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What an idle socket holds for its whole life (issue 17): its heap
    /// block and its loop's future. Every waiting patron pays for each byte:
    /// raise these bounds knowingly, never to make a change pass.
    #[test]
    fn an_idle_socket_holds_little() {
        fn output_size<'a, F, Fut>(_: F) -> usize
        where
            F: FnOnce(&'a mut Connection, &'a mut WebSocket) -> Fut,
        {
            std::mem::size_of::<Fut>()
        }
        let run = output_size(Connection::run);
        assert!(run <= 512, "the connection loop's future takes {run} bytes: box what a turn awaits");
        let live = std::mem::size_of::<Live>();
        // 1,168 bytes once a staff connection's own feed state was boxed
        // apart (`Feed`'s desk; ~1,320 with it inline); 1,136 since `App` is
        // one pointer (it was about twenty handles, ~150 bytes); 1,160 with
        // the patron's own line count in their chat's record (8 bytes, for
        // a limit that says nothing of the notes in it).
        assert!(live <= 1160, "a live socket's block takes {live} bytes: is it something only staff need?");
    }
}
