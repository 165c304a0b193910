//! Rate limits on the entry points anyone can reach without signing in
//! (DESIGN §8, §9 "rate limits on every entry point"): sign-in attempts,
//! starting chats or offline questions, and a patron's requests with their
//! chat's token (ending, rating, a transcript: each a write, and a token
//! anyone can get; reading their chat's pages, each a read on the few
//! shared readers). Per client address, a token bucket
//! per minute; over it, `429` with the API's error shape and `Retry-After`.
//! Here too: the budget of credentials that match nothing, which every
//! signed-in request and every socket's `auth` goes through
//! ([`Credentials`]), and the sockets an address opens a minute
//! ([`Limiter::open_socket`]). The socket's frames have their own limits
//! (`ws/sockets.rs`).
//!
//! An address here is [`address_key`]: an IPv4 address, or an IPv6 /64 —
//! one subscriber gets a whole /64, so counting each of its addresses
//! apart would give one visitor 2^64 buckets. A subscriber may get more
//! than one /64, though: a home a /56, a tunnel broker's customer a /48,
//! for nothing. So an IPv6 /64's bucket is backed by its /56's, which holds
//! [`WIDER`] times as much, and that by its /48's, [`WIDER`] times as much
//! again: 65,536 /64s of one /48 share sixteen /64s' worth.

use crate::error::ApiError;
use crate::proxy::ProxyNet;
use crate::AppState;
use axum::extract::{ConnectInfo, MatchedPath, Request, State};
use axum::http::{header::RETRY_AFTER, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Mutex;
use std::time::Instant;

/// Buckets tracked at most; beyond it the fullest are forgotten (a flood of
/// addresses cannot grow memory without bound).
const MAX_TRACKED: usize = 50_000;

/// How many times a /64's budget its /56 has, and a /56's its /48.
pub use refdesk_domain::net::WIDER;

/// The address limits count by: IPv4 as it is (an IPv4-mapped IPv6 address
/// too), IPv6 by its /64 ([`refdesk_domain::net::network`], the rule blocks
/// use too).
pub fn address_key(ip: IpAddr) -> IpAddr {
    refdesk_domain::net::network(ip)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Kind {
    Login,
    Start,
    Patron,
    PatronRead,
    BadCredential,
    SocketOpen,
}

struct Bucket {
    tokens: f64,
    /// Its size (a minute's worth): buckets of different kinds are
    /// compared by how full they are, not by their tokens.
    capacity: f64,
    at: Instant,
}

/// A bucket's key: what it limits, and the network (its prefix length and
/// address: an IPv6 /64's network address is also its /56's when bits 56–63
/// are zero).
type Key = (Kind, u8, IpAddr);

/// The buckets of every tracked address, and the credentials that matched
/// lately ([`Known`]).
#[derive(Default)]
pub struct Limiter(Mutex<HashMap<Key, Bucket>>, Known);

/// Credentials this node found good lately (a staff sign-in, a chat's
/// token: each by a hash under this process's random keys, which nobody
/// outside can make match), so that a network whose budget of credentials
/// that match nothing a stranger spent ([`Credentials`]) still serves its
/// own people. At most [`KNOWN_MOST`] of each kind; when full, those unseen
/// for [`KNOWN_FOR`] go first, then the older half. Staff cookies and chat
/// tokens are kept apart: anyone can get chat tokens by the thousand
/// (starting chats from many networks), and they must not push the desk's
/// cookies out; staff cookies come only from sign-ins.
#[derive(Default)]
struct Known {
    /// Staff cookies (`[0]`) and chat tokens (`[1]`).
    seen: [Mutex<HashMap<u64, Instant>>; 2],
    keys: std::hash::RandomState,
}

/// What a credential is: a staff sign-in's cookie, or a chat's token.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Credential {
    /// A staff sign-in's cookie.
    Staff,
    /// A chat's token.
    Patron,
}

/// Credentials of each kind [`Known`] holds at most (~3 MiB with the
/// table's overhead).
const KNOWN_MOST: usize = 65_536;
/// How long a credential not presented again stays known, at least while
/// there is room.
const KNOWN_FOR: std::time::Duration = std::time::Duration::from_secs(600);

impl Known {
    /// Its key: a chat's token known is not a staff cookie known.
    fn key(&self, what: Credential, credential: &str) -> u64 {
        use std::hash::BuildHasher;
        self.keys.hash_one((what, credential))
    }

    /// The table of credentials of `what`'s kind.
    fn of(&self, what: Credential) -> std::sync::MutexGuard<'_, HashMap<u64, Instant>> {
        let table = &self.seen[usize::from(what == Credential::Patron)];
        table.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn holds(&self, what: Credential, credential: &str) -> bool {
        let key = self.key(what, credential);
        self.of(what).contains_key(&key)
    }

    fn forget(&self, what: Credential, credential: &str) {
        let key = self.key(what, credential);
        self.of(what).remove(&key);
    }

    fn remember(&self, what: Credential, credential: &str) {
        let key = self.key(what, credential);
        let mut seen = self.of(what);
        let now = Instant::now();
        if seen.len() >= KNOWN_MOST && !seen.contains_key(&key) {
            seen.retain(|_, at| now.duration_since(*at) < KNOWN_FOR);
            if seen.len() >= KNOWN_MOST / 2 {
                let mut ages: Vec<Instant> = seen.values().copied().collect();
                let middle = ages.len() / 2;
                let (_, cut, _) = ages.select_nth_unstable(middle);
                let cut = *cut;
                seen.retain(|_, at| *at > cut);
            }
        }
        seen.insert(key, now);
    }
}

/// The networks an address counts in, with how many times a network's own
/// allowance each has ([`refdesk_domain::net::networks`], the rule the
/// daily caps in the store use too).
pub use refdesk_domain::net::networks;

impl Limiter {
    /// One of `ip`'s sockets opened this minute (`sockets_opened_per_minute`);
    /// `Err(seconds to wait)` when its network has opened its budget's worth.
    pub fn open_socket(&self, ip: IpAddr, per_minute: u32) -> Result<(), u64> {
        self.take(Kind::SocketOpen, ip, per_minute)
    }

    /// A credential just handed out (a sign-in's cookie, a new chat's
    /// token): known from the start ([`Known`]).
    pub fn remember(&self, what: Credential, credential: &str) {
        self.1.remember(what, credential);
    }

    /// A credential ended here (a sign-out): no longer known.
    pub fn forget(&self, what: Credential, credential: &str) {
        self.1.forget(what, credential);
    }

    /// Whether this node knows `credential` ([`Known`]).
    pub fn knows(&self, what: Credential, credential: &str) -> bool {
        self.1.holds(what, credential)
    }

    /// Takes one token for `ip` from each of its networks' buckets, even
    /// past empty (down to minus a full bucket): what was spent without
    /// asking is paid for, and the network waits the longer.
    fn charge(&self, kind: Kind, ip: IpAddr, per_minute: u32) {
        if self.take(kind, ip, per_minute).is_ok() {
            return;
        }
        let mut map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        for (prefix, net, _) in networks(ip) {
            if let Some(b) = map.get_mut(&(kind, prefix, net)) {
                b.tokens = (b.tokens - 1.0).max(-b.capacity);
            }
        }
    }

    /// Gives back the token [`Limiter::take`] took for `ip`.
    fn give_back(&self, kind: Kind, ip: IpAddr) {
        let mut map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        for (prefix, net, _) in networks(ip) {
            if let Some(b) = map.get_mut(&(kind, prefix, net)) {
                b.tokens = (b.tokens + 1.0).min(b.capacity);
            }
        }
    }

    /// Takes one token for `ip` from each of its networks' buckets, or none
    /// at all; `Err(seconds to wait)` when one has none.
    fn take(&self, kind: Kind, ip: IpAddr, per_minute: u32) -> Result<(), u64> {
        self.take_from(kind, &networks(ip).collect::<Vec<_>>(), per_minute)
    }

    /// [`Limiter::take`] from the buckets `nets` names (prefix length,
    /// network, times a network's own allowance).
    fn take_from(&self, kind: Kind, nets: &[(u8, IpAddr, u32)], per_minute: u32) -> Result<(), u64> {
        let mut map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        // An address may add three buckets (IPv6: its /64, /56 and /48).
        if map.len() + 3 > MAX_TRACKED {
            prune(&mut map, now);
        }
        let mut wait = 0;
        for &(prefix, net, times) in nets {
            let full = per_minute as f64 * times as f64;
            let b = map.entry((kind, prefix, net)).or_insert(Bucket { tokens: full, capacity: full, at: now });
            let rate = full / 60.0;
            b.capacity = full;
            b.tokens = (b.tokens + now.duration_since(b.at).as_secs_f64() * rate).min(full);
            b.at = now;
            if b.tokens < 1.0 {
                wait = wait.max(((1.0 - b.tokens) / rate).ceil() as u64);
            }
        }
        if wait > 0 {
            return Err(wait);
        }
        for &(prefix, net, _) in nets {
            if let Some(b) = map.get_mut(&(kind, prefix, net)) {
                b.tokens -= 1.0;
            }
        }
        Ok(())
    }
}

/// The browsers' tokens a sign-in attempt presented, signed and current
/// (`refdesk_app::devices`): the middleware leaves the attempt's budget to
/// the handler, which knows the account it is for.
#[derive(Clone)]
pub struct KnownDevices(pub Vec<refdesk_app::devices::KnownDevice>);

impl KnownDevices {
    /// Takes the attempt at `username` from the budget of the browser's
    /// token for that account, if it has one, else from the address's
    /// (`logins_per_minute` both); refused with `429` and `Retry-After`
    /// when it has none left, counted as the middleware counts.
    pub fn take(&self, state: &AppState, username: &str, ip: Option<IpAddr>) -> Result<(), Refused> {
        let per_minute = state.app.limits().logins_per_minute;
        let refused = |wait| {
            state.metrics.limited("login");
            wait
        };
        match state.app.known_device_of(&self.0, username) {
            // Its own bucket, apart from every address's (whose own
            // prefix length is 64).
            Some(device) => {
                let bucket = [(128, IpAddr::V6(std::net::Ipv6Addr::from(device)), 1)];
                let taken = state.limiter.take_from(Kind::Login, &bucket, per_minute);
                taken.map_err(|wait| Refused::BrowserSpent(refused(wait)))
            }
            None => match ip.map(|ip| state.limiter.take(Kind::Login, ip, per_minute)) {
                Some(Err(wait)) => Err(Refused::TooMany(refused(wait))),
                _ => Ok(()),
            },
        }
    }
}

/// A patron socket's share of its network's read budget, the one
/// `GET /api/chat` spends: a `resume` replays the chat from the store, and a
/// socket could otherwise ask for it again and again within its frame budget.
pub struct Reads {
    limiter: std::sync::Arc<Limiter>,
    ip: IpAddr,
    metrics: std::sync::Arc<crate::metrics::ServerMetrics>,
    /// Whether the socket's first read, which is free, was made.
    first_made: bool,
}

impl Reads {
    /// The budget of the network of `ip` (the client's address).
    pub fn new(state: &AppState, ip: IpAddr) -> Reads {
        Reads { limiter: state.limiter.clone(), ip, metrics: state.metrics.clone(), first_made: false }
    }

    /// Takes one read but the socket's first, which is free (a chat is
    /// followed live only once resumed, and another patron behind the same
    /// address spending the budget must not keep this one from following
    /// theirs; opening a socket is a read already); `Err(seconds to wait)`
    /// when the network has none left, counted in
    /// `refdesk_limited_total{limit="patron_read"}`.
    pub fn take_after_first(&mut self, per_minute: u32) -> Result<(), u64> {
        if !self.first_made {
            self.first_made = true;
            return Ok(());
        }
        let taken = self.limiter.take(Kind::PatronRead, self.ip, per_minute);
        if taken.is_err() {
            self.metrics.limited("patron_read");
        }
        taken
    }
}

/// A network's budget of credentials that match nothing: a staff cookie or
/// a chat's token that is made up, mistyped or expired. Looking one up is a
/// read on the few shared readers, and anyone can make them up by the
/// thousand; a real browser presents one that lapsed a few times at most,
/// then signs in or starts a chat. So a credential this node does not know
/// ([`Known`]: it matched lately, or was handed out here) takes one of its
/// network's `limits.bad_credentials_per_minute` before it is looked up
/// (counted like the other limits: an IPv6 /64, backed by its /56 and /48),
/// and gets it back if it matches; with none left it is refused with `429
/// rate_limited` before any read. One the node knows is looked up whatever
/// the budget: a stranger sharing a library's address and spending its
/// budget does not lock out the librarians and patrons already there.
#[derive(Clone)]
pub struct Credentials {
    limiter: std::sync::Arc<Limiter>,
    metrics: std::sync::Arc<crate::metrics::ServerMetrics>,
    ip: IpAddr,
    per_minute: u32,
}

/// Why a credential was not taken.
#[derive(Debug)]
pub enum Refused {
    /// Its network presented too many that matched nothing: try again in
    /// this many seconds.
    TooMany(u64),
    /// A browser's sign-in attempts at an account it signed in to lately
    /// are spent ([`KnownDevices`]): try again in this many seconds.
    BrowserSpent(u64),
    /// The lookup's own answer (`unauthenticated`, or the store's error).
    Failed(refdesk_app::AppError),
    /// A staff member's writes (all their sign-ins) past the frame budget (why): `rate_limited`,
    /// to try again in a second.
    SlowDown(String),
    /// A patron's token that opens no chat: `unauthenticated`, said as a
    /// patron can act on it (there is nothing to sign in to).
    NoChat,
    /// A patron's request with no token at all: `unauthenticated`, saying
    /// what to send (nothing was erased).
    NoToken,
    /// A staff request, a read too, that the browser says a page other than
    /// refdesk's sent: `403 cross_origin` (see `crate::origin`).
    CrossSite,
}

impl Credentials {
    /// The budget of the network of `ip` (the client's address).
    pub fn of(state: &AppState, ip: IpAddr) -> Credentials {
        let per_minute = state.app.limits().bad_credentials_per_minute;
        Credentials { limiter: state.limiter.clone(), metrics: state.metrics.clone(), ip, per_minute }
    }

    /// Looks `credential` up with `lookup`: at once if the node knows it;
    /// otherwise with one of the network's budget, kept if it matched
    /// nothing (`unauthenticated`), given back if not.
    pub async fn check<T>(
        &self,
        what: Credential,
        credential: &str,
        lookup: impl std::future::Future<Output = refdesk_app::AppResult<T>>,
    ) -> Result<T, Refused> {
        let known = self.limiter.1.holds(what, credential);
        if !known {
            // Taken before the lookup, so that lookups at once cannot
            // outrun the budget.
            if let Err(wait) = self.limiter.take(Kind::BadCredential, self.ip, self.per_minute) {
                self.metrics.limited("bad_credential");
                return Err(Refused::TooMany(wait));
            }
        }
        let looked_up = lookup.await;
        let matched_nothing = matches!(looked_up, Err(refdesk_app::AppError::Unauthenticated));
        if matched_nothing && known {
            // Known no more, and paid for now: it was looked up unasked.
            self.limiter.1.forget(what, credential);
            self.limiter.charge(Kind::BadCredential, self.ip, self.per_minute);
        } else if !matched_nothing && !known {
            self.limiter.give_back(Kind::BadCredential, self.ip);
        }
        if looked_up.is_ok() {
            self.limiter.1.remember(what, credential);
        }
        looked_up.map_err(Refused::Failed)
    }
}

/// [`Credentials::check`] for a request: by its client's address, when it
/// has one (a request always has, but in tests served without a listener).
pub async fn checked<T>(
    state: &AppState,
    ip: Option<IpAddr>,
    (what, credential): (Credential, &str),
    lookup: impl std::future::Future<Output = refdesk_app::AppResult<T>>,
) -> Result<T, Refused> {
    within(ip.map(|ip| Credentials::of(state, ip)).as_ref(), (what, credential), lookup).await
}

/// [`Credentials::check`] with the budget, if there is one.
pub async fn within<T>(
    credentials: Option<&Credentials>,
    (what, credential): (Credential, &str),
    lookup: impl std::future::Future<Output = refdesk_app::AppResult<T>>,
) -> Result<T, Refused> {
    match credentials {
        Some(c) => c.check(what, credential, lookup).await,
        None => lookup.await.map_err(Refused::Failed),
    }
}

impl Refused {
    /// As the API reports it.
    pub fn api_error(self) -> ApiError {
        match self {
            Refused::TooMany(wait) => too_many(wait),
            Refused::BrowserSpent(wait) => {
                slow_down(format!("too many sign-in attempts at this account from this browser; try again in {wait} s"))
            }
            Refused::Failed(e) => e.into(),
            Refused::SlowDown(why) => slow_down(why),
            Refused::NoChat => ApiError {
                status: StatusCode::UNAUTHORIZED,
                code: "unauthenticated",
                message: "this chat is not open here (its record was erased, or the token is not one this \
                          service gave); start a new chat"
                    .into(),
                field: None,
            },
            Refused::NoToken => ApiError {
                status: StatusCode::UNAUTHORIZED,
                code: "unauthenticated",
                message: "no chat token: send the token starting a chat gave, as `Authorization: Bearer <token>`"
                    .into(),
                field: None,
            },
            Refused::CrossSite => crate::origin::cross_origin(None),
        }
    }

    /// A patron's refusal: an unknown token is a chat that is not there,
    /// not a sign-in to make.
    pub fn for_patron(self) -> Refused {
        match self {
            Refused::Failed(refdesk_app::AppError::Unauthenticated) => Refused::NoChat,
            other => other,
        }
    }
}

impl IntoResponse for Refused {
    fn into_response(self) -> Response {
        match self {
            Refused::TooMany(wait) | Refused::BrowserSpent(wait) => {
                ([(RETRY_AFTER, wait.to_string())], self.api_error()).into_response()
            }
            Refused::Failed(e) => ApiError::from(e).into_response(),
            Refused::SlowDown(why) => ([(RETRY_AFTER, "1")], slow_down(why)).into_response(),
            Refused::NoChat | Refused::NoToken => self.api_error().into_response(),
            // Anyone's page can have a browser send these without end:
            // counted, logged at debug (`crate::metrics::Quiet`).
            Refused::CrossSite => (axum::Extension(crate::metrics::Quiet), self.api_error()).into_response(),
        }
    }
}

/// `429 rate_limited`, for why.
fn slow_down(why: String) -> ApiError {
    ApiError { status: StatusCode::TOO_MANY_REQUESTS, code: "rate_limited", message: why, field: None }
}

/// `429 rate_limited`, to try again in `wait` seconds.
fn too_many(wait: u64) -> ApiError {
    ApiError {
        status: StatusCode::TOO_MANY_REQUESTS,
        code: "rate_limited",
        message: format!("too many attempts from your address; try again in {wait} s"),
        field: None,
    }
}

/// Makes room: buckets untouched for a minute (full again: forgetting them
/// changes nothing) go first; if a flood of addresses within the minute
/// left the map full all the same, the fuller half goes too, so the map never
/// holds more than [`MAX_TRACKED`] and the addresses nearest their limit are
/// the ones remembered.
fn prune(map: &mut HashMap<Key, Bucket>, now: Instant) {
    map.retain(|_, b| now.duration_since(b.at).as_secs() < 60);
    if map.len() >= MAX_TRACKED / 2 {
        let fullness = |b: &Bucket| b.tokens / b.capacity.max(1.0);
        let mut levels: Vec<f64> = map.values().map(fullness).collect();
        let middle = levels.len() / 2;
        let (_, cut, _) = levels.select_nth_unstable_by(middle, f64::total_cmp);
        let cut = *cut;
        map.retain(|_, b| fullness(b) < cut);
    }
}

/// The `POST` entry points that are rate limited, by the route they matched
/// (as registered, `{slug}` and all: axum's [`MatchedPath`]), never by the
/// URL asked for. The test below checks that these are the document's open
/// and patron `POST` operations, so a route renamed or added without a
/// limit fails it.
const LIMITED: [(&str, Kind); 6] = [
    ("/api/login", Kind::Login),
    ("/api/libraries/{slug}/chats", Kind::Start),
    ("/api/libraries/{slug}/questions", Kind::Start),
    ("/api/chat/end", Kind::Patron),
    ("/api/chat/transcript", Kind::Patron),
    ("/api/chat/rating", Kind::Patron),
];

/// The `GET` entry points that are rate limited: those with a patron's
/// token (the test below checks the document has no other), each a read on
/// the shared readers that anyone with a chat's token could repeat without
/// end. Of the open `GET`s, a library's status and the widget's files read
/// nothing per request (the status from memory, 5 s at most per
/// cooperative); the list of libraries reads their rows (a cooperative's
/// few dozen), bounded like every request by the connections per address.
const LIMITED_READS: [(&str, Kind); 1] = [("/api/chat", Kind::PatronRead)];

fn kind_of(method: &Method, route: Option<&str>) -> Option<Kind> {
    let route = route?;
    let limited: &[(&str, Kind)] = match *method {
        Method::POST => &LIMITED,
        // axum answers a HEAD with the GET's handler: the same read.
        Method::GET | Method::HEAD => &LIMITED_READS,
        _ => return None,
    };
    limited.iter().find(|(r, _)| *r == route).map(|(_, kind)| *kind)
}

/// The client's address: the peer, or behind a trusted proxy the address
/// it forwarded (see [`client_ip_of`]).
fn client_ip(req: &Request, trusted: &[ProxyNet]) -> Option<IpAddr> {
    let peer = req.extensions().get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip())?;
    Some(client_ip_of(peer, req.headers(), trusted))
}

/// [`client_ip`] from the peer's address and the request's headers. The
/// address is the last one of the last `X-Forwarded-For` line: a proxy that
/// adds a line of its own rather than appending to the client's (HAProxy's
/// `option forwardfor`) puts its line after any the client sent, so the
/// client's own lines, forged or not, are never read. Behind two proxies (a
/// CDN, then nginx), the nearer one names the client (nginx's `real_ip`).
///
/// A peer on this machine or its network that is not trusted yet sends
/// `X-Forwarded-For` is most likely the deployment's own proxy, left out
/// of `trusted_proxies`: every client behind it is then one address (one
/// block shuts out every patron). Said at `warn`, once an hour.
pub fn client_ip_of(peer: IpAddr, headers: &axum::http::HeaderMap, trusted: &[ProxyNet]) -> IpAddr {
    if !is_trusted(peer, trusted) {
        if headers.contains_key("x-forwarded-for") && nearby(peer) {
            untrusted_proxy(peer);
        }
        return peer;
    }
    // The last entry, the one the proxy itself wrote: walking back past
    // entries inside trusted networks would let a client inside one (a
    // campus behind the library's own proxy) name any address it likes.
    let forwarded = headers
        .get_all("x-forwarded-for")
        .iter()
        .next_back()
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.rsplit(',').next())
        .and_then(forwarded_ip);
    forwarded.unwrap_or(peer)
}

/// Whether an address is this machine's or a private network's (where a
/// deployment's own reverse proxy would be).
fn nearby(ip: IpAddr) -> bool {
    match ip.to_canonical() {
        IpAddr::V4(v4) => v4.is_loopback() || v4.is_private() || v4.is_link_local(),
        IpAddr::V6(v6) => v6.is_loopback() || (v6.segments()[0] & 0xfe00) == 0xfc00,
    }
}

/// Says, once an hour at most, that `peer` forwards clients' addresses
/// without being trusted to (see [`client_ip_of`]).
fn untrusted_proxy(peer: IpAddr) {
    static SAID_AT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let said = SAID_AT.load(std::sync::atomic::Ordering::Relaxed);
    let due = said == 0 || now.saturating_sub(said) >= 3600;
    if due
        && SAID_AT
            .compare_exchange(
                said,
                now.max(1),
                std::sync::atomic::Ordering::Relaxed,
                std::sync::atomic::Ordering::Relaxed,
            )
            .is_ok()
    {
        tracing::warn!(
            %peer,
            "requests from {peer} carry X-Forwarded-For, but {peer} is not in trusted_proxies: if it is this \
             deployment's reverse proxy, every client behind it counts as one address for the rate limits, the caps \
             and blocks (one patron's block shuts out every patron). Add it to trusted_proxies"
        );
    }
}

/// An `X-Forwarded-For` entry's address: bare, as nginx writes it, or with
/// the client's port, as some proxies do (`203.0.113.5:1234`,
/// `[2001:db8::5]:1234`, `[2001:db8::5]`).
fn forwarded_ip(entry: &str) -> Option<IpAddr> {
    let entry = entry.trim();
    entry
        .parse::<IpAddr>()
        .ok()
        .or_else(|| entry.parse::<SocketAddr>().ok().map(|a| a.ip()))
        .or_else(|| entry.strip_prefix('[')?.strip_suffix(']')?.parse().ok())
}

pub use crate::proxy::is_trusted;

/// The middleware.
pub async fn limit(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    let Some(kind) = kind_of(req.method(), req.extensions().get::<MatchedPath>().map(MatchedPath::as_str)) else {
        return next.run(req).await;
    };
    if kind == Kind::Login {
        let name = crate::input::device_cookie_name(state.secure_cookies);
        if let Some(cookie) = crate::input::cookie(req.headers(), name) {
            let known = state.app.known_devices(cookie).await;
            if !known.is_empty() {
                // The handler takes it, from the token's budget or the
                // address's ([`KnownDevices::take`]).
                req.extensions_mut().insert(KnownDevices(known));
                return next.run(req).await;
            }
        }
    }
    let ip = client_ip(&req, &state.trusted_proxies);
    if let Some(ip) = ip {
        let per_minute = match kind {
            Kind::Login => state.app.limits().logins_per_minute,
            Kind::Start => state.app.limits().starts_per_minute,
            Kind::Patron => state.app.limits().patron_posts_per_minute,
            Kind::PatronRead => state.app.limits().patron_reads_per_minute,
            Kind::BadCredential => state.app.limits().bad_credentials_per_minute,
            Kind::SocketOpen => state.app.limits().sockets_opened_per_minute,
        };
        if let Err(wait) = state.limiter.take(kind, ip, per_minute) {
            state.metrics.limited(match kind {
                Kind::Login => "login",
                Kind::Start => "start",
                Kind::Patron => "patron",
                Kind::PatronRead => "patron_read",
                Kind::BadCredential => "bad_credential",
                Kind::SocketOpen => "socket_open",
            });
            return Refused::TooMany(wait).into_response();
        }
    }
    next.run(req).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bucket_allows_its_burst_then_refuses_with_a_wait() {
        let l = Limiter::default();
        let ip: IpAddr = [127, 0, 0, 1].into();
        for _ in 0..3 {
            assert!(l.take(Kind::Login, ip, 3).is_ok());
        }
        let wait = l.take(Kind::Login, ip, 3).unwrap_err();
        assert!((1..=20).contains(&wait));
        assert!(l.take(Kind::Start, ip, 3).is_ok(), "each kind has its own bucket");
        assert!(l.take(Kind::Login, [10, 0, 0, 1].into(), 3).is_ok(), "and each address");
    }

    #[test]
    fn an_ipv6_visitor_has_one_bucket_for_its_whole_64() {
        let l = Limiter::default();
        let a: IpAddr = "2001:db8:1:2::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:ffff:ffff:ffff:ffff".parse().unwrap();
        assert!(l.take(Kind::Start, a, 1).is_ok());
        assert!(l.take(Kind::Start, b, 1).is_err(), "another address of the same /64 shares the bucket");
        assert!(l.take(Kind::Start, "2001:db8:1:3::1".parse().unwrap(), 1).is_ok(), "the next /64 does not");
        let mapped: IpAddr = "::ffff:10.0.0.1".parse().unwrap();
        assert_eq!(address_key(mapped), IpAddr::from([10, 0, 0, 1]));
    }

    #[test]
    fn the_64s_of_one_56_or_48_share_its_wider_budget() {
        let l = Limiter::default();
        // One /56: 256 /64s, four /64s' worth between them.
        let in_56 = |i: u128| IpAddr::from(std::net::Ipv6Addr::from((0x2001_0db8_0001_0000u128 << 64) | (i << 64)));
        let passed = (0..256).filter(|&i| l.take(Kind::Start, in_56(i), 2).is_ok()).count();
        assert_eq!(passed, 2 * WIDER as usize, "a /56's 256 /64s got {passed} starts");
        // Its /48 holds four /56s' worth: the next /56s get the rest.
        let in_48 = |i: u128| IpAddr::from(std::net::Ipv6Addr::from((0x2001_0db8_0001_0000u128 << 64) | (i << 72)));
        let passed = (1..256).filter(|&i| l.take(Kind::Start, in_48(i), 2).is_ok()).count();
        assert_eq!(passed, (2 * WIDER * WIDER - 2 * WIDER) as usize, "the /48's other /56s got {passed}");
        assert!(l.take(Kind::Start, "2001:db8:2::1".parse().unwrap(), 2).is_ok(), "another /48 has its own");
        assert!(l.take(Kind::Login, in_56(0), 2).is_ok(), "and another kind");
        // A refusal by the wider bucket takes nothing from the narrower one.
        let l = Limiter::default();
        for i in 0..WIDER as u128 {
            assert!(l.take(Kind::Start, in_56(i), 1).is_ok());
        }
        assert!(l.take(Kind::Start, in_56(9), 1).is_err(), "the /56 is spent");
        assert_eq!(l.0.lock().unwrap()[&(Kind::Start, 64, address_key(in_56(9)))].tokens, 1.0);
        // IPv4 addresses have no wider bucket.
        let l = Limiter::default();
        let passed = (0..=255u8).filter(|&i| l.take(Kind::Start, IpAddr::from([10, 0, 0, i]), 1).is_ok()).count();
        assert_eq!(passed, 256);
    }

    #[test]
    fn a_flood_of_addresses_never_grows_the_map_past_its_bound() {
        let l = Limiter::default();
        // Every address of the flood is new and within the minute: none has
        // refilled, so forgetting by age alone would keep them all.
        for i in 0..(MAX_TRACKED as u32 * 3) {
            let ip = IpAddr::from((0x0a00_0000u32 + i).to_be_bytes());
            let _ = l.take(Kind::Start, ip, 2);
            assert!(l.0.lock().unwrap().len() <= MAX_TRACKED);
        }
        // IPv6 addresses of /48s of their own: three buckets each.
        for i in 0..(MAX_TRACKED as u128) {
            let ip = IpAddr::from(std::net::Ipv6Addr::from((0x2001_0db8u128 << 96) | (i << 80)));
            let _ = l.take(Kind::Start, ip, 2);
            assert!(l.0.lock().unwrap().len() <= MAX_TRACKED);
        }
        // One address that used up its bucket is remembered through the flood.
        let busy: IpAddr = [192, 0, 2, 1].into();
        assert!(l.take(Kind::Login, busy, 1).is_ok());
        for i in 0..(MAX_TRACKED as u32) {
            let _ = l.take(Kind::Start, IpAddr::from((0x0b00_0000u32 + i).to_be_bytes()), 2);
        }
        assert!(l.take(Kind::Login, busy, 1).is_err(), "the limited address was forgotten in the flood");
    }

    #[test]
    fn the_credentials_known_never_outgrow_their_bound_and_one_in_use_stays_known() {
        let known = Known::default();
        let len = |what| known.of(what).len();
        known.remember(Credential::Patron, "a patron's token");
        for i in 0..(KNOWN_MOST * 3) {
            known.remember(Credential::Patron, &format!("token {i}"));
            assert!(len(Credential::Patron) <= KNOWN_MOST, "{} credentials known", len(Credential::Patron));
            if i % 1024 == 0 {
                // Presented again now and then, as a chat's reconnects do.
                assert!(known.holds(Credential::Patron, "a patron's token"), "forgotten at {i}");
                known.remember(Credential::Patron, "a patron's token");
            }
        }
        assert!(known.holds(Credential::Patron, "a patron's token"));
        assert!(!known.holds(Credential::Staff, "a patron's token"), "a token is not a cookie");
        assert!(!known.holds(Credential::Patron, "token 0"), "the oldest of the flood went first");
        // Staff cookies fill a table of their own, within the same bound.
        for i in 0..(KNOWN_MOST + 10) {
            known.remember(Credential::Staff, &format!("cookie {i}"));
        }
        assert!(len(Credential::Staff) <= KNOWN_MOST);
    }

    #[test]
    fn a_flood_of_chat_tokens_does_not_push_a_librarians_cookie_out() {
        let known = Known::default();
        // Signed in, then not seen again while strangers start chats.
        known.remember(Credential::Staff, "the librarian's cookie");
        for i in 0..(KNOWN_MOST * 3) {
            known.remember(Credential::Patron, &format!("token {i}"));
        }
        assert!(known.holds(Credential::Staff, "the librarian's cookie"));
    }

    #[test]
    fn a_flood_forgets_the_least_used_buckets_whatever_their_kind() {
        let l = Limiter::default();
        // A network has used two thirds of its patron requests (60 a
        // minute): 20 tokens left, more than a fresh sign-in bucket holds.
        let busy: IpAddr = [192, 0, 2, 7].into();
        for _ in 0..40 {
            assert!(l.take(Kind::Patron, busy, 60).is_ok());
        }
        for i in 0..(MAX_TRACKED as u32 * 2) {
            let _ = l.take(Kind::Login, IpAddr::from((0x0c00_0000u32 + i).to_be_bytes()), 10);
        }
        for _ in 0..20 {
            let _ = l.take(Kind::Patron, busy, 60);
        }
        assert!(l.take(Kind::Patron, busy, 60).is_err(), "the busy network's bucket was forgotten in the flood");
    }

    #[test]
    fn only_the_open_entry_points_are_limited() {
        let route = Some;
        assert_eq!(kind_of(&Method::POST, route("/api/login")), Some(Kind::Login));
        assert_eq!(kind_of(&Method::POST, route("/api/libraries/{slug}/chats")), Some(Kind::Start));
        assert_eq!(kind_of(&Method::POST, route("/api/libraries/{slug}/questions")), Some(Kind::Start));
        assert_eq!(kind_of(&Method::GET, route("/api/libraries/{slug}/status")), None);
        assert_eq!(kind_of(&Method::POST, route("/api/chat/rating")), Some(Kind::Patron));
        assert_eq!(kind_of(&Method::GET, route("/api/chat")), Some(Kind::PatronRead));
        assert_eq!(kind_of(&Method::HEAD, route("/api/chat")), Some(Kind::PatronRead), "a HEAD runs the GET");
        assert_eq!(kind_of(&Method::POST, route("/api/chat")), None);
        assert_eq!(kind_of(&Method::GET, route("/api/chat/end")), None);
        assert_eq!(kind_of(&Method::POST, route("/api/sessions/{id}/messages")), None);
        assert_eq!(kind_of(&Method::POST, route("/api/libraries/main/chats")), None, "a URL is not a route");
        assert_eq!(kind_of(&Method::POST, None), None, "a path no route matched");
    }

    #[test]
    fn every_open_or_patron_post_and_patron_get_of_the_document_is_limited_and_nothing_else() {
        let doc = crate::http::openapi::document();
        let open_or_patron = |op: &utoipa::openapi::path::Operation| match &op.security {
            None => true,
            Some(reqs) => serde_json::to_string(reqs).is_ok_and(|s| s.contains("\"patron\"")),
        };
        let mut posts: Vec<&str> = doc
            .paths
            .paths
            .iter()
            .filter(|(_, item)| item.post.as_ref().is_some_and(open_or_patron))
            .map(|(path, _)| path.as_str())
            .collect();
        let mut limited: Vec<&str> = LIMITED.iter().map(|(r, _)| *r).collect();
        posts.sort_unstable();
        limited.sort_unstable();
        assert_eq!(posts, limited, "the open and patron POST routes are exactly the limited ones");
        let mut patron_gets: Vec<&str> = doc
            .paths
            .paths
            .iter()
            .filter(|(_, item)| item.get.as_ref().is_some_and(|op| op.security.is_some() && open_or_patron(op)))
            .map(|(path, _)| path.as_str())
            .collect();
        let mut limited_reads: Vec<&str> = LIMITED_READS.iter().map(|(r, _)| *r).collect();
        patron_gets.sort_unstable();
        limited_reads.sort_unstable();
        assert_eq!(patron_gets, limited_reads, "the GET routes with a patron's token are exactly the limited ones");
    }

    #[test]
    fn behind_a_trusted_proxy_the_address_is_the_last_the_proxy_added() {
        use axum::http::{HeaderMap, HeaderValue};
        let proxy: IpAddr = [127, 0, 0, 1].into();
        let trusted = ["127.0.0.1".parse::<ProxyNet>().unwrap()];
        let headers = |lines: &[&str]| {
            let mut h = HeaderMap::new();
            for line in lines {
                h.append("x-forwarded-for", HeaderValue::from_str(line).unwrap());
            }
            h
        };
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        // nginx appends to the client's line: the last entry is the one it saw.
        assert_eq!(client_ip_of(proxy, &headers(&["198.51.100.9, 203.0.113.5"]), &trusted), ip("203.0.113.5"));
        // A proxy that adds a line of its own puts it after the client's forged one.
        assert_eq!(
            client_ip_of(proxy, &headers(&["198.51.100.9", "203.0.113.5"]), &trusted),
            ip("203.0.113.5"),
            "a line the client sent decided the address"
        );
        // An untrusted peer is itself, whatever it sends.
        let stranger = ip("192.0.2.44");
        assert_eq!(client_ip_of(stranger, &headers(&["203.0.113.5"]), &trusted), stranger);
        // A last line that is not an address leaves the proxy's own.
        assert_eq!(client_ip_of(proxy, &headers(&["203.0.113.5", "nonsense"]), &trusted), proxy);
        assert_eq!(client_ip_of(proxy, &headers(&["unknown"]), &trusted), proxy);
        // Some proxies write the client's port too.
        for (entry, client) in [
            ("203.0.113.5:1234", "203.0.113.5"),
            ("[2001:db8::5]:1234", "2001:db8::5"),
            ("[2001:db8::5]", "2001:db8::5"),
            (" 2001:db8::5 ", "2001:db8::5"),
        ] {
            assert_eq!(client_ip_of(proxy, &headers(&[entry]), &trusted), ip(client), "{entry}");
        }
        // A client inside a trusted network (a campus behind the library's
        // own proxy) cannot name another address by writing it before its own.
        let trusted = ["127.0.0.1".parse::<ProxyNet>().unwrap(), "10.0.0.0/8".parse().unwrap()];
        assert_eq!(client_ip_of(proxy, &headers(&["198.51.100.9, 10.1.2.3"]), &trusted), ip("10.1.2.3"));
    }
}
