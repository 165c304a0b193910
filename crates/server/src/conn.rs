//! Accepting and keeping TCP connections: what a stranger can make the
//! server hold before any request is read (DESIGN §11).
//!
//! `axum::serve` has no timeouts and no caps, so refdesk runs its own accept
//! loop on hyper's HTTP/1 connection:
//!
//! - **Caps.** At most [`Limits::max_connections`] connections on the node
//!   and [`Limits::connections_per_address`] from one client address (an
//!   IPv4 address, or an IPv6 /64; see [`crate::limit::address_key`]), and
//!   from an IPv6 /56 and /48 4 and 16 times as many
//!   ([`crate::limit::networks`]: a /48 is 65,536 /64s, free). Past
//!   either, a new connection takes the place of the oldest *silent* one
//!   within the cap it met (one with no request being handled nor answer
//!   still going out: opened and quiet, trickling a header, or kept alive
//!   between requests), which is closed; with none silent, the new
//!   connection is closed at once, before anything is read. So connections
//!   that send nothing cannot keep anyone out (a stranger on a library's
//!   Wi-Fi filling its address's share with them kept the library's desks
//!   and patrons out): only requests being handled or answered (bounded by
//!   the rate limits, and by the idle timeout for a client that stops
//!   reading) and upgraded WebSockets (the socket caps) hold a place for
//!   sure. A request that changes something and whose client hangs up
//!   runs on to its end without the connection's place
//!   ([`crate::http::DETACHED`] of them at most). A connection is chosen in one atomic step from silent
//!   ([`Lease`]'s `busy`): a request that begins on it after is refused. A connection keeps
//!   its place until its socket closes, an upgraded WebSocket's too. Behind a trusted
//!   proxy every connection comes from the proxy, so the per-address cap is
//!   left to it (the WebSocket layer still counts the client's address).
//! - **Header timeout.** hyper's `header_read_timeout` starts when the
//!   connection opens and again whenever an answer has gone out, so a silent
//!   connection, an idle keep-alive one and one that sends a header a line a
//!   second are all closed after [`Limits::header_read_seconds`].
//! - **Body timeout.** A request body must arrive within
//!   [`Limits::body_seconds`] of its header ([`Deadline`]).
//! - **Idle timeout.** A connection with no request being handled that moves
//!   no byte for [`Limits::idle_seconds`] (a client that stopped reading an
//!   answer) is closed.
//!
//! Upgraded WebSockets leave this module's timeouts behind (hyper hands the
//! socket over): `ws` pings them instead.
//!
//! `auto::Builder` (what `axum::serve` uses) is not used: with upgrades it
//! first waits for the client's first bytes to tell HTTP/1 from HTTP/2, with
//! no timeout, before hyper's header timer starts; and its graceful
//! shutdown helper needs HTTP/2 compiled in.

use crate::limit::networks;
use crate::AppState;
use axum::extract::ConnectInfo;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use refdesk_app::Limits;
use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::{pin, Pin};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

/// File descriptors kept aside from the connection cap, for the database
/// (SQLite's files and readers, or the PostgreSQL pool), NATS, SMTP, e-mail
/// files and the runtime's own.
pub const FD_RESERVE: u64 = 128;
/// The derived connection cap never goes above this: past it, memory per
/// connection (buffers, a WebSocket's feed) rather than file descriptors
/// is what runs out on a 2-core, few-GiB node.
pub const DERIVED_MAX: usize = 10_000;
/// The usual soft open-file limit, assumed when the real one is not known
/// (in-process tests).
pub const USUAL_NOFILE: u64 = 1024;
/// What one connection may park in the kernel's send buffer. Linux grows
/// it up to 4 MiB for a fast peer; a client that stops reading would then
/// make the server push megabytes before its writes block (the kernel's
/// memory, and the server's own work of producing them). 256 KiB still
/// moves 2.5 MB/s at 100 ms of round trip: far more than chat needs.
const SEND_BUFFER: usize = 256 * 1024;
/// Largest read buffer of one HTTP connection (hyper's default is ~400 KiB):
/// a request head must fit. Bodies stream through it. A client that
/// trickles a head holds this much for `header_read_seconds`, on each of
/// its connections: at 64 KiB, one IPv6 /48's 4,096 connections (16 ×
/// `connections_per_address`) were 256 MiB, the node's 10,000 640 MiB; at
/// 16 KiB a quarter. refdesk's own requests carry one cookie; nginx, in
/// front, takes header lines of 8 KiB at most by default.
const MAX_BUF: usize = 16 * 1024;
/// Largest request head (the request line and every header), refused with
/// `431` beyond. The read buffer's limit alone is checked only while a head
/// is incomplete: one that arrived whole in a larger read was taken.
const MAX_HEAD: usize = 16 * 1024;

/// The connection cap for a node whose open-file limit is `nofile` and that
/// keeps `database_connections` to PostgreSQL: `configured` if set (but
/// never above what the file descriptors allow), else derived.
pub fn connection_cap(configured: usize, nofile: u64, database_connections: u32) -> usize {
    let room = nofile.saturating_sub(FD_RESERVE + u64::from(database_connections)).max(16);
    let room = usize::try_from(room).unwrap_or(usize::MAX);
    match configured {
        0 => room.min(DERIVED_MAX),
        n => n.min(room),
    }
}

/// Open connections, on the node and per client address.
pub struct Counts {
    max: usize,
    per_address: usize,
    total: AtomicUsize,
    open: Mutex<Open>,
}

/// The connections each cap counts, oldest first.
#[derive(Default)]
struct Open {
    /// Every connection still serving HTTP (an upgraded one has left: its
    /// [`Lease`] is gone), in the order they opened.
    all: VecDeque<Weak<Lease>>,
    /// Per network (prefix length, address; see [`networks`]): how many
    /// connections it holds (upgraded ones too), and those still serving
    /// HTTP, in the order they opened.
    by_address: HashMap<(u8, IpAddr), Network>,
}

#[derive(Default)]
struct Network {
    count: usize,
    leases: VecDeque<Weak<Lease>>,
}

/// A [`Lease`]'s `busy` once its place went to a newcomer.
const EVICTED: usize = 1 << (usize::BITS - 1);

/// Places a newcomer at a cap looks at for a silent connection, at most,
/// before it is closed instead: a cap full of busy connections costs a
/// bounded walk per refusal.
const LOOK_AT_MOST: usize = 256;

/// A connection still serving HTTP, as the caps see it: whether it is
/// handling a request, and how to close it for a newcomer.
#[derive(Default)]
pub struct Lease {
    /// Requests being handled or answered now (their answer's body not yet
    /// all sent): none, and the connection is silent. [`EVICTED`] once its
    /// place went to a newcomer: set only from none (one atomic step, so no
    /// request can begin meanwhile), and a request that comes after is
    /// refused.
    busy: AtomicUsize,
    /// Requests in the router now (not their answers being sent): the idle
    /// timeout waits for none (a client that stopped reading an answer is
    /// let go).
    handling: AtomicUsize,
    /// Its last write found the kernel's send buffer full: an answer (whose
    /// body may be done, its bytes in hyper's buffer) is still going out.
    /// Not silent either; a client that stopped reading is let go by the
    /// idle timeout instead. Shared with its [`Watched`] stream.
    stalled: Arc<AtomicBool>,
    /// Set once its place has been given back (by it, or to a newcomer).
    released: Arc<AtomicBool>,
    /// Told when its place went to a newcomer.
    evicted: tokio::sync::Notify,
    /// The networks it is counted in (none behind a trusted proxy).
    address: Option<IpAddr>,
}

/// One connection's place, given back when it is dropped (with the socket),
/// unless a newcomer took it first.
pub struct Slot {
    counts: Arc<Counts>,
    /// The client's address, when it is counted.
    address: Option<IpAddr>,
    released: Arc<AtomicBool>,
}

/// A new connection's place: its slot, what the caps see of it, and
/// whether a silent connection was closed to make room.
pub struct Taken {
    pub slot: Slot,
    pub lease: Arc<Lease>,
    pub evicted: bool,
}

impl Counts {
    /// Counts with these caps.
    pub fn new(max: usize, per_address: usize) -> Arc<Counts> {
        Arc::new(Counts { max, per_address, total: AtomicUsize::new(0), open: Mutex::default() })
    }

    /// A place for a connection from `peer`, if both caps allow one, or
    /// once the oldest silent connection under the cap that is full has
    /// given it up. `per_address: false` (a trusted proxy) counts only
    /// against the node's.
    pub fn take(self: &Arc<Self>, peer: IpAddr, per_address: bool) -> Option<Taken> {
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        let mut evicted = false;
        // Narrowest network first: a place given up in it is given up in
        // the wider ones and on the node too, so nobody is closed for a
        // newcomer that is then turned away.
        if per_address {
            for (prefix, net, times) in networks(peer) {
                let cap = self.per_address.saturating_mul(times as usize);
                if open.by_address.get(&(prefix, net)).is_some_and(|n| n.count >= cap) {
                    if !self.evict(&mut open, Some((prefix, net))) {
                        return None;
                    }
                    evicted = true;
                }
            }
        }
        if self.total.load(Ordering::SeqCst) >= self.max {
            if !self.evict(&mut open, None) {
                return None;
            }
            evicted = true;
        }
        let released = Arc::new(AtomicBool::new(false));
        let address = per_address.then_some(peer);
        let lease = Arc::new(Lease { released: released.clone(), address, ..Lease::default() });
        self.total.fetch_add(1, Ordering::SeqCst);
        let total = self.total.load(Ordering::SeqCst);
        push(&mut open.all, &lease, total);
        if let Some(peer) = address {
            for (prefix, net, _) in networks(peer) {
                let network = open.by_address.entry((prefix, net)).or_default();
                network.count += 1;
                push(&mut network.leases, &lease, network.count);
            }
        }
        Some(Taken { slot: Slot { counts: self.clone(), address, released }, lease, evicted })
    }

    /// Gives a newcomer the place of the oldest silent connection in
    /// `network` (or on the node): releases it now and tells it to close.
    /// False when none of the first [`LOOK_AT_MOST`] is silent.
    fn evict(&self, open: &mut Open, network: Option<(u8, IpAddr)>) -> bool {
        let leases = match network {
            None => &mut open.all,
            Some(key) => match open.by_address.get_mut(&key) {
                Some(n) => &mut n.leases,
                None => return false,
            },
        };
        let mut victim = None;
        let mut looked = 0;
        let mut i = 0;
        while i < leases.len() && looked < LOOK_AT_MOST {
            let Some(lease) = leases[i].upgrade().filter(|l| !l.released.load(Ordering::SeqCst)) else {
                leases.remove(i);
                continue;
            };
            // Silent, and from this step on refusing requests: chosen.
            let stalled = lease.stalled.load(Ordering::SeqCst);
            if !stalled && lease.busy.compare_exchange(0, EVICTED, Ordering::SeqCst, Ordering::SeqCst).is_ok() {
                leases.remove(i);
                // Unless its socket closed just now: it gives its place
                // back itself (once this lock is free); look on.
                if !lease.released.swap(true, Ordering::SeqCst) {
                    victim = Some(lease);
                    break;
                }
                continue;
            }
            looked += 1;
            i += 1;
        }
        let Some(victim) = victim else { return false };
        self.release(open, victim.address);
        victim.evicted.notify_one();
        true
    }

    /// Connections open now.
    pub fn open(&self) -> usize {
        self.total.load(Ordering::SeqCst)
    }

    /// Gives a connection's place back on the node and in its networks.
    fn release(&self, open: &mut Open, address: Option<IpAddr>) {
        self.total.fetch_sub(1, Ordering::SeqCst);
        let Some(peer) = address else { return };
        for (prefix, net, _) in networks(peer) {
            if let Some(n) = open.by_address.get_mut(&(prefix, net)) {
                n.count -= 1;
                if n.count == 0 {
                    open.by_address.remove(&(prefix, net));
                }
            }
        }
    }
}

/// Adds a connection to a cap's list, first dropping those gone from it
/// when it has grown to twice the `count` still open (so a network that
/// never empties does not keep the Weak of every connection it ever had).
fn push(leases: &mut VecDeque<Weak<Lease>>, lease: &Arc<Lease>, count: usize) {
    if leases.len() >= 2 * count + 16 {
        leases.retain(|l| l.upgrade().is_some_and(|l| !l.released.load(Ordering::SeqCst)));
    }
    leases.push_back(Arc::downgrade(lease));
}

impl Drop for Slot {
    fn drop(&mut self) {
        if !self.released.swap(true, Ordering::SeqCst) {
            let mut open = self.counts.open.lock().unwrap_or_else(|p| p.into_inner());
            self.counts.release(&mut open, self.address);
        }
    }
}

/// When a connection last moved a byte, in milliseconds since `start`.
struct Activity {
    start: Instant,
    last: AtomicU64,
}

impl Activity {
    fn touch(&self) {
        self.last.store(self.start.elapsed().as_millis() as u64, Ordering::Relaxed);
    }

    fn last(&self) -> Instant {
        self.start + Duration::from_millis(self.last.load(Ordering::Relaxed))
    }
}

/// A TCP stream that notes when it last moved a byte and holds the
/// connection's [`Slot`] for as long as it is open (through an upgrade).
struct Watched {
    tcp: TcpStream,
    activity: Arc<Activity>,
    _slot: Slot,
    /// Whether the last write found the kernel's send buffer full (the
    /// client stopped reading), as its [`Lease`] sees it too.
    blocked: bool,
    stalled: Arc<AtomicBool>,
    /// Set by whoever lets the client go for not reading (a WebSocket too
    /// slow for its frames: its last write may have gone into the kernel,
    /// which then cannot send it).
    let_go: LetGo,
}

/// A connection's client stopped reading and is let go: its socket is to be
/// reset when it closes (see [`Watched`]'s `drop`). In every request's
/// extensions.
#[derive(Clone, Default)]
pub struct LetGo(Arc<std::sync::atomic::AtomicBool>);

impl LetGo {
    /// Resets the connection, rather than closing it, once it closes.
    pub fn reset(&self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

impl Drop for Watched {
    /// A connection let go while its client was not reading is reset, not
    /// closed: a close would leave the kernel holding what it could not
    /// send (up to twice [`SEND_BUFFER`]) in a socket no descriptor and no
    /// connection cap counts any more, for as long as the client keeps its
    /// window shut — and the client could then open another and do it
    /// again. A reset drops it at once.
    fn drop(&mut self) {
        if self.blocked || self.let_go.0.load(Ordering::Relaxed) {
            if let Err(e) = socket2::SockRef::from(&self.tcp).set_linger(Some(Duration::ZERO)) {
                tracing::debug!(error = %e, "cannot set SO_LINGER");
            }
        }
    }
}

impl Watched {
    /// Notes how a write went: bytes moved, or a full send buffer.
    fn wrote(&mut self, polled: &Poll<std::io::Result<usize>>) {
        match polled {
            Poll::Ready(Ok(n)) if *n > 0 => {
                self.blocked = false;
                self.activity.touch();
            }
            Poll::Pending => self.blocked = true,
            Poll::Ready(_) => return,
        }
        self.stalled.store(self.blocked, Ordering::SeqCst);
    }
}

impl AsyncRead for Watched {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.tcp).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.activity.touch();
        }
        polled
    }
}

impl AsyncWrite for Watched {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, data: &[u8]) -> Poll<std::io::Result<usize>> {
        let polled = Pin::new(&mut self.tcp).poll_write(cx, data);
        self.wrote(&polled);
        polled
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let polled = Pin::new(&mut self.tcp).poll_write_vectored(cx, bufs);
        self.wrote(&polled);
        polled
    }

    fn is_write_vectored(&self) -> bool {
        self.tcp.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.tcp).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.tcp).poll_shutdown(cx)
    }
}

/// A request body that must have arrived by a deadline; past it, reading
/// it fails (the extractor answers 400) and the connection is not reused.
/// Once it has all come, its request counts as busy ([`BusyOnce`]).
pub struct Deadline {
    body: Incoming,
    sleep: Pin<Box<tokio::time::Sleep>>,
    busy: BusyOnce,
}

impl Body for Deadline {
    type Data = hyper::body::Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        if let Poll::Ready(frame) = Pin::new(&mut self.body).poll_frame(cx) {
            // All come, on a connection whose place went to a newcomer while
            // it waited: not handed on, so that no handler acts on it.
            if (frame.is_none() || self.body.is_end_stream()) && !self.busy.arrived() {
                return Poll::Ready(Some(Err("this connection's place went to a newer one".into())));
            }
            return Poll::Ready(frame.map(|f| f.map_err(Into::into)));
        }
        match self.sleep.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Some(Err("the request body did not arrive in time".into()))),
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// Counts a request as being handled (in the router) while it lives.
struct Handling(Arc<Lease>);

impl Drop for Handling {
    fn drop(&mut self) {
        self.0.handling.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Counts a request as busy on its connection, until its answer's body is
/// all sent (or dropped): a connection still answering is not silent
/// ([`Lease`]).
struct Busy(Arc<Lease>);

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.busy.fetch_sub(1, Ordering::SeqCst);
    }
}

/// A request's [`Busy`], from its head when it has no body, else from when
/// its body has all come, until its answer is sent. A request still waiting
/// for its body is silent: a connection that announced a body and sends
/// none (or a byte now and then) holds no place a newcomer cannot take.
/// Counted busy from its head, 256 such connections from one address shut
/// out every other client there for `body_seconds` at a time, on any route,
/// with no rate limit (found by an attacker's trial).
#[derive(Clone)]
struct BusyOnce(Arc<std::sync::Mutex<Stage>>);

enum Stage {
    /// The body is still coming.
    Waiting(Arc<Lease>),
    /// Counted busy, until dropped.
    Busy { _held: Busy },
    /// The answer is sent: nothing more is counted.
    Done,
}

impl BusyOnce {
    /// Busy from now (a request with no body), and whether the connection
    /// still had its place (the step that counts it busy tells).
    fn now(lease: Arc<Lease>) -> (BusyOnce, bool) {
        let once = BusyOnce(Arc::new(std::sync::Mutex::new(Stage::Waiting(lease))));
        let kept = once.arrived();
        (once, kept)
    }

    /// Busy from when [`BusyOnce::arrived`] says the body has come.
    fn at_end(lease: Arc<Lease>) -> BusyOnce {
        BusyOnce(Arc::new(std::sync::Mutex::new(Stage::Waiting(lease))))
    }

    /// The body has all come: busy (once). Whether the connection still has
    /// its place: counted busy in one atomic step with the look at
    /// [`EVICTED`], so that a connection chosen as silent serves nothing
    /// after, and one counted busy is not chosen.
    fn arrived(&self) -> bool {
        let mut stage = self.0.lock().unwrap_or_else(|p| p.into_inner());
        match &*stage {
            Stage::Waiting(lease) => {
                let before = lease.busy.fetch_add(1, Ordering::SeqCst);
                *stage = Stage::Busy { _held: Busy(lease.clone()) };
                before & EVICTED == 0
            }
            Stage::Busy { .. } | Stage::Done => true,
        }
    }

    /// The answer is sent (or dropped): busy no more.
    fn done(&self) {
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = Stage::Done;
    }
}

/// An answer's body, holding its request's [`BusyOnce`] until it is sent.
struct Answering {
    body: axum::body::Body,
    busy: BusyOnce,
}

impl Drop for Answering {
    fn drop(&mut self) {
        self.busy.done();
    }
}

impl Body for Answering {
    type Data = hyper::body::Bytes;
    type Error = axum::Error;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.get_mut().body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// A request on a connection whose place went to a newcomer (it began as
/// the connection was chosen as silent): not served, and the connection
/// closes.
#[derive(Debug)]
struct PlaceTaken;

impl std::fmt::Display for PlaceTaken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("this connection's place went to a newer one")
    }
}

impl std::error::Error for PlaceTaken {}

/// Accepts connections until `shutdown` completes, then lets the open
/// requests finish (upgraded WebSockets are not waited for: they are the
/// `ws` module's).
pub(crate) async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    counts: Arc<Counts>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    let (limits, trusted, metrics) = (state.app.limits().clone(), state.trusted_proxies.clone(), state.metrics.clone());
    let serving = Serving { limits, trusted, metrics, counts, refused: "connection", evicted: "connection_oldest" };
    serve_router(listener, crate::app(state), serving, shutdown).await;
}

/// What a listener's connections are held to: the limits (header, body and
/// idle times), the proxies whose connections are counted against the
/// node's cap alone, and the caps.
pub(crate) struct Serving {
    pub limits: Arc<Limits>,
    pub trusted: Arc<Vec<crate::proxy::ProxyNet>>,
    pub metrics: Arc<crate::metrics::ServerMetrics>,
    pub counts: Arc<Counts>,
    /// The `limit` label a connection refused by the caps is counted under.
    pub refused: &'static str,
    /// The label a silent connection closed for a newcomer is counted under.
    pub evicted: &'static str,
}

/// [`serve`] for any router: the main listener's, or the metrics'.
pub(crate) async fn serve_router(
    listener: tokio::net::TcpListener,
    router: axum::Router,
    Serving { limits, trusted, metrics, counts, refused, evicted }: Serving,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(Duration::from_secs(limits.header_read_seconds))
        .max_buf_size(MAX_BUF)
        .max_header_size(MAX_HEAD);
    let builder = Arc::new(builder);
    // Each connection task holds a receiver: the sender's `closed()` says
    // when every one has finished. A send starts their graceful shutdown.
    let (drain_tx, drain_rx) = tokio::sync::watch::channel(());
    let mut shutdown = pin!(shutdown);
    loop {
        let (tcp, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors (or a connection reset before
                    // it was accepted): wait a little rather than spin.
                    tracing::warn!(error = %e, open = counts.open(), "cannot accept a connection");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        // A trusted proxy's connections are many clients': the node's cap
        // alone holds them (an IPv4 proxy reaches `[::]` as `::ffff:a.b.c.d`).
        let Some(taken) = counts.take(peer.ip(), !crate::limit::is_trusted(peer.ip(), &trusted)) else {
            tracing::debug!(open = counts.open(), "connection refused: too many open, none silent");
            metrics.limited(refused);
            drop(tcp);
            continue;
        };
        if taken.evicted {
            tracing::debug!(open = counts.open(), "a silent connection closed for a new one");
            metrics.limited(evicted);
        }
        // Chat frames are small and latency-bound: Nagle's algorithm would hold
        // them back waiting for the peer's delayed ACK (tens of milliseconds).
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!(error = %e, "cannot set TCP_NODELAY");
        }
        if let Err(e) = socket2::SockRef::from(&tcp).set_send_buffer_size(SEND_BUFFER) {
            tracing::debug!(error = %e, "cannot set SO_SNDBUF");
        }
        let activity = Arc::new(Activity { start: Instant::now(), last: AtomicU64::new(0) });
        let let_go = LetGo::default();
        let io = TokioIo::new(Watched {
            tcp,
            activity: activity.clone(),
            _slot: taken.slot,
            blocked: false,
            stalled: taken.lease.stalled.clone(),
            let_go: let_go.clone(),
        });
        let client = Client { peer, activity, let_go, lease: taken.lease };
        tokio::spawn(connection(builder.clone(), io, router.clone(), client, limits.clone(), drain_rx.clone()));
    }
    // Closed now, not once the connections below have finished: a client
    // that connects from here on is refused at once and goes elsewhere.
    drop(listener);
    drop(drain_rx);
    let _ = drain_tx.send(());
    drain_tx.closed().await;
}

/// What a connection's task knows of its client.
struct Client {
    peer: SocketAddr,
    activity: Arc<Activity>,
    let_go: LetGo,
    lease: Arc<Lease>,
}

async fn connection(
    builder: Arc<http1::Builder>,
    io: TokioIo<Watched>,
    router: axum::Router,
    Client { peer, activity, let_go, lease }: Client,
    limits: Arc<Limits>,
    mut drain: tokio::sync::watch::Receiver<()>,
) {
    let body_within = Duration::from_secs(limits.body_seconds);
    let service = {
        let lease = lease.clone();
        service_fn(move |req: hyper::Request<Incoming>| {
            let (busy, taken) = match req.body().is_end_stream() {
                true => {
                    let (busy, kept) = BusyOnce::now(lease.clone());
                    (busy, !kept)
                }
                // Its place is looked at again once the body has come.
                false => (BusyOnce::at_end(lease.clone()), lease.busy.load(Ordering::SeqCst) & EVICTED != 0),
            };
            lease.handling.fetch_add(1, Ordering::SeqCst);
            let handling = Handling(lease.clone());
            let sleep = Box::pin(tokio::time::sleep(body_within));
            let at_end = busy.clone();
            let mut req = req.map(|body| axum::body::Body::new(Deadline { body, sleep, busy: at_end }));
            req.extensions_mut().insert(ConnectInfo(peer));
            req.extensions_mut().insert(let_go.clone());
            let mut router = router.clone();
            async move {
                if taken {
                    return Err(PlaceTaken);
                }
                let answer = match tower_service::Service::call(&mut router, req).await {
                    Ok(answer) => answer,
                    Err(never) => match never {},
                };
                drop(handling);
                Ok(answer.map(|body| axum::body::Body::new(Answering { body, busy })))
            }
        })
    };
    let idle = Duration::from_secs(limits.idle_seconds);
    let mut conn = pin!(builder.serve_connection(io, service).with_upgrades());
    let watchdog = tokio::time::sleep(idle);
    let mut watchdog = pin!(watchdog);
    let mut draining = false;
    loop {
        tokio::select! {
            served = conn.as_mut() => {
                if let Err(e) = served {
                    tracing::debug!(error = %e, "connection ended");
                }
                break;
            }
            changed = drain.changed(), if !draining => {
                draining = true;
                if changed.is_ok() {
                    conn.as_mut().graceful_shutdown();
                }
            }
            // Its place went to a newcomer while it was silent: nothing is
            // being answered, and a request that comes now is refused.
            () = lease.evicted.notified() => {
                tracing::debug!("silent connection closed for a new one");
                break;
            }
            () = watchdog.as_mut() => {
                let quiet_until = activity.last() + idle;
                if lease.handling.load(Ordering::SeqCst) == 0 && Instant::now() >= quiet_until {
                    tracing::debug!("idle connection closed");
                    break;
                }
                let next = quiet_until.max(Instant::now() + Duration::from_millis(100));
                watchdog.as_mut().reset(next.into());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::FutureExt;

    /// A connection that is not silent: upgraded (no lease left), so never
    /// closed for a newcomer.
    fn busy(taken: Taken) -> Slot {
        taken.slot
    }

    #[test]
    fn the_64s_of_one_56_or_48_share_its_wider_connection_cap() {
        let counts = Counts::new(10_000, 2);
        // The /64s of one /56 (bits 56–63 of the address).
        let in_56 = |i: u128| IpAddr::from(std::net::Ipv6Addr::from((0x2001_0db8_0001_0000u128 << 64) | (i << 64)));
        let held: Vec<Slot> = (0..256).filter_map(|i| counts.take(in_56(i), true).map(busy)).collect();
        assert_eq!(held.len(), 2 * 4, "a /56 holds four /64s' worth");
        // The /56s of its /48 (bits 48–55) share sixteen /64s' worth.
        let in_48 = |i: u128| IpAddr::from(std::net::Ipv6Addr::from((0x2001_0db8_0001_0000u128 << 64) | (i << 72)));
        let more: Vec<Slot> = (1..256).filter_map(|i| counts.take(in_48(i), true).map(busy)).collect();
        assert_eq!(held.len() + more.len(), 2 * 16, "the /48's other /56s got {}", more.len());
        assert!(counts.take("2001:db8:2::1".parse().unwrap(), true).is_some(), "another /48 has its own");
        // Closing gives every network its place back.
        drop(held);
        drop(more);
        assert!(counts.open.lock().unwrap().by_address.len() <= 3, "only the other /48's networks are left");
        let again: Vec<Slot> = (0..256).filter_map(|i| counts.take(in_56(i), true).map(busy)).collect();
        assert_eq!(again.len(), 8);
        // IPv4 addresses are counted alone; a trusted proxy's not at all.
        let v4: Vec<Slot> =
            (0..=255u8).filter_map(|i| counts.take(IpAddr::from([10, 0, 0, i]), true).map(busy)).collect();
        assert_eq!(v4.len(), 256);
        let proxy: Vec<Slot> =
            (0..5).filter_map(|_| counts.take(IpAddr::from([127, 0, 0, 1]), false).map(busy)).collect();
        assert_eq!(proxy.len(), 5);
    }

    #[test]
    fn at_a_cap_the_oldest_silent_connection_gives_its_place_to_a_newcomer() {
        let counts = Counts::new(6, 3);
        let (a, b, c) = (IpAddr::from([10, 0, 0, 1]), IpAddr::from([10, 0, 0, 2]), IpAddr::from([10, 0, 0, 3]));
        let first: Vec<Taken> = (0..3).map(|_| counts.take(a, true).unwrap()).collect();
        assert!(!first.iter().any(|t| t.evicted));
        // The oldest is handling a request (or still sending its answer):
        // the next oldest, silent, goes.
        first[0].lease.busy.fetch_add(1, Ordering::SeqCst);
        let fourth = counts.take(a, true).expect("a silent connection gave its place");
        assert!(fourth.evicted);
        assert!(first[1].lease.released.load(Ordering::SeqCst));
        assert!(first[1].lease.evicted.notified().now_or_never().is_some(), "the closed one is told");
        // A request that begins on it now is refused (it was chosen silent).
        assert_ne!(first[1].lease.busy.fetch_add(1, Ordering::SeqCst) & EVICTED, 0);
        assert!(!first[2].lease.released.load(Ordering::SeqCst));
        assert_eq!(counts.open(), 3);
        // Its socket closing later gives nothing back a second time.
        let mut first = first.into_iter();
        let (busy_one, evicted, third) = (first.next().unwrap(), first.next().unwrap(), first.next().unwrap());
        drop(evicted);
        assert_eq!(counts.open(), 3);
        // The node's cap: another address fills it, and a third takes the
        // place of the oldest silent connection anywhere (`third`).
        let others: Vec<Taken> = (0..3).map(|_| counts.take(b, true).unwrap()).collect();
        assert!(others.iter().all(|t| !t.evicted));
        let newcomer = counts.take(c, true).expect("the node's oldest silent connection gave its place");
        assert!(newcomer.evicted && third.lease.released.load(Ordering::SeqCst));
        assert_eq!(counts.open(), 6);
        // Busy or upgraded connections are never closed for a newcomer: with
        // none silent, it is turned away and nobody is closed.
        let kept: Vec<Slot> = [fourth, newcomer].into_iter().chain(others).map(busy).collect();
        assert!(counts.take(a, true).is_none(), "a full address of busy connections");
        assert!(counts.take(IpAddr::from([10, 0, 0, 9]), true).is_none(), "a full node of busy connections");
        assert_eq!(counts.open(), 6);
        drop(kept);
        drop(busy_one);
        assert_eq!(counts.open(), 0);
        assert!(counts.open.lock().unwrap().by_address.is_empty());
    }
}
