//! `/metrics`, in the Prometheus (OpenMetrics) text format, and the HTTP
//! middleware that counts, times and names every request (its request id).
//!
//! Every metric is listed, with what to alert on, in docs/operations.md
//! ("Metrics"). Three kinds of figure:
//!
//! - counted as things happen, by the app ([`refdesk_app::metrics`]: commits,
//!   e-mail, NATS, resyncs, blocks) and here (HTTP requests, refusals by
//!   the limits, open sockets);
//! - read at each scrape: open TCP connections (from the accept loop's
//!   counts), chats waiting and active per library and the outbox (from
//!   the store, each read bounded by [`STORE_WAIT`]);
//! - nothing else: no figure has a label a visitor chooses (a route is the
//!   one it matched, never the URL asked for; a library is its slug, which
//!   the operator chose), so no request can add a series.
//!
//! `/metrics` is on the main listener unless `metrics_listen` is set: then
//! only there (a plain `axum::serve` on an address the operator keeps
//! private), and the main listener answers it 404.
//!
//! The request id: an incoming `X-Request-Id` of 1–64 letters, digits, `.`,
//! `_` or `-` is kept (a proxy's, so its logs and ours match), anything else
//! replaced by a random one; it is sent back in the answer's `X-Request-Id`
//! and is a field of the request's span, which a WebSocket keeps for its
//! whole life, so each log line of a request or socket carries it.

use crate::AppState;
use axum::extract::{MatchedPath, Request, State};
use axum::http::header::{HeaderValue, CONTENT_TYPE};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::{Registry, Unit};
use refdesk_app::metrics::Label;
use refdesk_domain::event::Availability;
use std::net::SocketAddr;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};
use tracing::Instrument;

/// The content type of the OpenMetrics text format, which Prometheus asks
/// for first (and every current Prometheus-compatible scraper reads).
pub const CONTENT_TYPE_OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
/// How long a scrape waits for each of the store's figures: a slow or
/// unreachable database must not make the scrape time out (the other
/// figures still come, and `refdesk_store_readable` says 0).
pub const STORE_WAIT: Duration = Duration::from_secs(2);
/// The request id's header, in and out.
pub const REQUEST_ID: &str = "x-request-id";
/// Every label of `refdesk_limited_total`, each there from the start.
const LIMITS: [&str; 18] = [
    "login",
    "start",
    "patron",
    "patron_read",
    "socket",
    "socket_opening",
    "socket_opening_oldest",
    "connection",
    "connection_oldest",
    "metrics_connection",
    "metrics_connection_oldest",
    "login_account",
    "login_busy",
    "bad_credential",
    "socket_open",
    "staff_write",
    "staff_read",
    "staff_answers",
];
/// How often the refusals by the limits are summed up in the log, at most.
const REFUSALS_EVERY: Duration = Duration::from_secs(60);

/// An HTTP request's labels.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HttpLabels {
    /// The route it matched (`/api/sessions/{id}`), or `unmatched`.
    route: String,
    /// GET, POST… or `other`.
    method: String,
    /// The status answered.
    status: u16,
}

/// A route, for the latency histogram (statuses would multiply its buckets).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    route: String,
    method: String,
}

/// A library's live chats in one state.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ChatLabels {
    /// The library's slug.
    library: String,
    /// `waiting` or `active`.
    state: String,
}

/// A library's slug, as a label.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LibraryLabel {
    library: String,
}

/// The staff on duty (not disabled) of every cooperative.
async fn on_duty(store: &dyn refdesk_store::Store) -> refdesk_store::Result<Vec<refdesk_store::StaffEntry>> {
    let mut cooperatives: Vec<_> = store.institutions().await?.into_iter().map(|i| i.cooperative).collect();
    cooperatives.dedup();
    let mut on = Vec::new();
    for coop in cooperatives {
        let staff = store.staff_of(coop).await?;
        on.extend(staff.into_iter().filter(|s| !s.disabled && s.availability == Availability::OnDuty));
    }
    Ok(on)
}

fn latency_histogram() -> Histogram {
    // 1 ms … 16 s.
    Histogram::new(exponential_buckets(0.001, 2.0, 15))
}

/// The node's registry and the figures the server keeps.
pub struct ServerMetrics {
    registry: Registry,
    http_requests: Family<HttpLabels, Counter>,
    http_seconds: Family<RouteLabels, Histogram, fn() -> Histogram>,
    connections: Family<Label, Gauge>,
    chats: Family<ChatLabels, Gauge>,
    outbox_unsent: Gauge,
    outbox_oldest: Gauge<f64, AtomicU64>,
    store_readable: Gauge,
    database_bytes: Gauge,
    disk_available: Gauge,
    disk_size: Gauge,
    on_duty: Family<LibraryLabel, Gauge>,
    limited: Family<Label, Counter>,
    /// The accept loop's counts, once it runs (read at each scrape).
    open: OnceLock<Arc<crate::conn::Counts>>,
    /// The data folder, whose file system's free space each scrape reads.
    data_dir: OnceLock<std::path::PathBuf>,
    /// One scrape at a time: each sets the read figures, then encodes them.
    scraping: tokio::sync::Mutex<()>,
    /// `metrics_listen`: where `/metrics` is served instead of the main listener.
    pub listen: Option<SocketAddr>,
}

impl ServerMetrics {
    /// The registry with the app's metrics and the server's.
    pub fn new(app: &refdesk_app::metrics::Metrics, listen: Option<SocketAddr>) -> ServerMetrics {
        let mut registry = Registry::with_prefix("refdesk");
        app.register(&mut registry);
        let m = ServerMetrics {
            registry: Registry::default(),
            http_requests: Family::default(),
            http_seconds: Family::new_with_constructor(latency_histogram as fn() -> Histogram),
            connections: Family::default(),
            chats: Family::default(),
            outbox_unsent: Gauge::default(),
            outbox_oldest: Gauge::default(),
            store_readable: Gauge::default(),
            database_bytes: Gauge::default(),
            disk_available: Gauge::default(),
            disk_size: Gauge::default(),
            on_duty: Family::default(),
            limited: Family::default(),
            open: OnceLock::new(),
            data_dir: OnceLock::new(),
            scraping: tokio::sync::Mutex::new(()),
            listen,
        };
        for kind in ["tcp", "patron_socket", "staff_socket"] {
            let _ = m.connections.get_or_create(&[("kind", kind)]);
        }
        for limit in LIMITS {
            let _ = m.limited.get_or_create(&[("limit", limit)]);
        }
        let r = &mut registry;
        r.register("http_requests", "HTTP requests by route, method and status", m.http_requests.clone());
        // Unit in the name (see the app's `commit_seconds`).
        r.register("http_request_seconds", "HTTP request latency in seconds by route", m.http_seconds.clone());
        r.register(
            "connections",
            "Open connections: tcp (all, sockets included), patron_socket, staff_socket",
            m.connections.clone(),
        );
        r.register("chats", "Live chats per library (the patron's) and state: waiting, active", m.chats.clone());
        r.register("outbox_unsent", "E-mails not sent yet", m.outbox_unsent.clone());
        r.register_with_unit(
            "outbox_oldest_unsent_age",
            "Age of the oldest e-mail not sent yet (0: none)",
            Unit::Seconds,
            m.outbox_oldest.clone(),
        );
        r.register("store_readable", "1 if this scrape could read the store's figures", m.store_readable.clone());
        r.register_with_unit(
            "database",
            "The database's size (SQLite: its pages, without the write-ahead log; PostgreSQL: pg_database_size)",
            Unit::Bytes,
            m.database_bytes.clone(),
        );
        r.register_with_unit(
            "data_dir_available",
            "Space left on the data folder's file system for refdesk (statvfs: blocks available to it; the database, its write-ahead log, e-mail files and backups there grow into it)",
            Unit::Bytes,
            m.disk_available.clone(),
        );
        r.register_with_unit(
            "data_dir_size",
            "The size of the data folder's file system",
            Unit::Bytes,
            m.disk_size.clone(),
        );
        r.register("staff_on_duty", "Staff on duty per library (their home library)", m.on_duty.clone());
        let build = Info::new([("version", env!("CARGO_PKG_VERSION")), ("commit", crate::COMMIT)]);
        r.register("build", "The running build: its version and the commit it was built from", build);
        r.register(
            "limited",
            "Requests, frames and connections refused by a limit (docs/operations.md lists the limits)",
            m.limited.clone(),
        );
        ServerMetrics { registry, ..m }
    }

    /// Counts a refusal by one of the limits.
    pub fn limited(&self, limit: &'static str) {
        self.limited.get_or_create(&[("limit", limit)]).inc();
    }

    /// What each limit refused since `seen` (its counts then, which it
    /// moves on to now), as `limit=count` pairs; `None` when none refused
    /// anything.
    fn refused_since(&self, seen: &mut [u64; LIMITS.len()]) -> Option<String> {
        let mut said = Vec::new();
        for (limit, seen) in LIMITS.iter().zip(seen.iter_mut()) {
            let now = self.limited.get_or_create(&[("limit", *limit)]).get();
            if now > *seen {
                said.push(format!("{limit}={}", now - *seen));
            }
            *seen = now;
        }
        (!said.is_empty()).then(|| said.join(" "))
    }

    /// Sums up at `warn`, once every [`REFUSALS_EVERY`] at most, what the
    /// limits refused meanwhile, until `stop`. Each refusal is logged at
    /// `debug` only (a flood of them would fill the log and make journald
    /// drop the lines that matter), so this line is what an operator sees
    /// of a flood, or of sign-ins refused because the node's line of
    /// password hashes is full (`login_busy`).
    pub(crate) async fn log_refusals(self: Arc<Self>, stop: impl std::future::Future<Output = ()>) {
        let mut seen = [0; LIMITS.len()];
        self.refused_since(&mut seen);
        let mut every = tokio::time::interval_at(tokio::time::Instant::now() + REFUSALS_EVERY, REFUSALS_EVERY);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tokio::pin!(stop);
        loop {
            tokio::select! {
                _ = &mut stop => return,
                _ = every.tick() => {}
            }
            if let Some(refused) = self.refused_since(&mut seen) {
                tracing::warn!(%refused, "refused by the limits in the last minute (refdesk_limited_total; docs/operations.md)");
            }
        }
    }

    /// Counts an open socket of `kind` until the guard is dropped.
    pub fn socket(&self, kind: &'static str) -> OpenSocket {
        let gauge = self.connections.get_or_create_owned(&[("kind", kind)]);
        gauge.inc();
        OpenSocket(gauge)
    }

    /// Lets scrapes read the accept loop's count of open connections.
    pub(crate) fn watch_connections(&self, counts: Arc<crate::conn::Counts>) {
        let _ = self.open.set(counts);
    }

    fn request(&self, route: &str, method: &str, status: StatusCode, took: Duration) {
        let labels = HttpLabels { route: route.to_owned(), method: method.to_owned(), status: status.as_u16() };
        self.http_requests.get_or_create(&labels).inc();
        let route = RouteLabels { route: labels.route, method: labels.method };
        self.http_seconds.get_or_create(&route).observe(took.as_secs_f64());
    }

    /// Lets scrapes read the free space of the data folder's file system.
    pub(crate) fn watch_disk(&self, data_dir: std::path::PathBuf) {
        let _ = self.data_dir.set(data_dir);
    }

    /// Reads the data folder's file system (left as it was when it cannot
    /// be read: a folder not made yet, on PostgreSQL).
    fn read_disk(&self) {
        let Some(dir) = self.data_dir.get() else { return };
        match disk_space(dir) {
            Ok(space) => {
                self.disk_available.set(i64::try_from(space.available).unwrap_or(i64::MAX));
                self.disk_size.set(i64::try_from(space.size).unwrap_or(i64::MAX));
            }
            Err(e) => tracing::debug!(error = %e, "/metrics: the data folder's file system could not be read"),
        }
    }

    /// Sets the figures read at scrape time. Whether the store answered.
    async fn refresh(&self, app: &refdesk_app::App) -> bool {
        if let Some(counts) = self.open.get() {
            self.connections.get_or_create(&[("kind", "tcp")]).set(counts.open() as i64);
        }
        self.read_disk();
        let store = app.store();
        let (libraries, live, outbox, size, staff) = tokio::join!(
            tokio::time::timeout(STORE_WAIT, store.libraries()),
            tokio::time::timeout(STORE_WAIT, store.live_counts()),
            tokio::time::timeout(STORE_WAIT, store.outbox_stats()),
            tokio::time::timeout(STORE_WAIT, store.database_size()),
            tokio::time::timeout(STORE_WAIT, on_duty(store.as_ref())),
        );
        let (Ok(Ok(libraries)), Ok(Ok(live)), Ok(Ok(outbox)), Ok(Ok(size)), Ok(Ok(staff))) =
            (libraries, live, outbox, size, staff)
        else {
            tracing::warn!("/metrics: the store did not answer; its figures are left as they were");
            return false;
        };
        self.database_bytes.set(i64::try_from(size).unwrap_or(i64::MAX));
        self.on_duty.clear();
        for lib in &libraries {
            let n = staff.iter().filter(|s| s.staff.home.library == lib.placement.library).count();
            self.on_duty.get_or_create(&LibraryLabel { library: lib.slug.clone() }).set(n as i64);
        }
        // Every library shows, at 0 when nothing is live: an alert on a
        // queue needs its series before the first chat.
        self.chats.clear();
        for lib in libraries {
            for state in ["waiting", "active"] {
                let _ = self.chats.get_or_create(&ChatLabels { library: lib.slug.clone(), state: state.into() });
            }
        }
        for c in live {
            for (state, n) in [("waiting", c.waiting), ("active", c.active)] {
                let labels = ChatLabels { library: c.library.clone(), state: state.into() };
                self.chats.get_or_create(&labels).set(n as i64);
            }
        }
        self.outbox_unsent.set(outbox.unsent as i64);
        let age = outbox.oldest_queued_at.map_or(0.0, |at| (app.clock().now() - at).max(0) as f64 / 1000.0);
        self.outbox_oldest.set(age);
        true
    }

    /// The whole exposition, with the read figures brought up to date.
    pub async fn scrape(&self, app: &refdesk_app::App) -> Result<String, std::fmt::Error> {
        let _one = self.scraping.lock().await;
        let readable = self.refresh(app).await;
        self.store_readable.set(i64::from(readable));
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.registry)?;
        Ok(text)
    }
}

/// An open socket, counted while this lives.
pub struct OpenSocket(Gauge);

impl Drop for OpenSocket {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// The node's metrics, for Prometheus.
///
/// A file system's space, in bytes.
#[derive(Clone, Copy, Debug)]
pub struct DiskSpace {
    /// What an unprivileged process may still write there.
    pub available: u64,
    /// Its size.
    pub size: u64,
}

/// The space of the file system that holds `dir` (statvfs).
pub fn disk_space(dir: &std::path::Path) -> std::io::Result<DiskSpace> {
    let fs = rustix::fs::statvfs(dir)?;
    let bytes = |blocks: u64| blocks.saturating_mul(fs.f_frsize);
    Ok(DiskSpace { available: bytes(fs.f_bavail), size: bytes(fs.f_blocks) })
}

/// Counters (`_total`), gauges and histograms as listed in
/// docs/operations.md. Served here unless `metrics_listen` is set: then
/// only on that address, and this answers 404. Here, only to this machine
/// ([`crate::http::auth::from_this_machine`]: a loopback peer that is not a
/// trusted proxy, no proxy header, a loopback host name): a proxy in front
/// of refdesk that forwards every path would otherwise publish them, and
/// each scrape reads the database.
#[utoipa::path(get, path = "/metrics", tag = "health",
    responses(
        (status = 200, description = "the metrics, in the OpenMetrics text format", body = String,
         content_type = "application/openmetrics-text"),
        (status = 404, description = "`not_found`: `metrics_listen` is set, and the metrics are served there; or the request came from another machine, or through a proxy (on the main listener they are served to a loopback address only)", body = crate::error::ErrorBody),
    ))]
pub(crate) async fn metrics(
    State(state): State<AppState>,
    peer: Option<axum::Extension<axum::extract::ConnectInfo<std::net::SocketAddr>>>,
    headers: axum::http::HeaderMap,
) -> Response {
    let message = if state.metrics.listen.is_some() {
        "no such page"
    } else if !crate::http::auth::from_this_machine(peer.map(|p| p.0 .0.ip()), &headers, &state.trusted_proxies) {
        "the metrics are served to this machine only; set metrics_listen to scrape them from elsewhere"
    } else {
        return answer(&state).await;
    };
    crate::error::ApiError { status: StatusCode::NOT_FOUND, code: "not_found", message: message.into(), field: None }
        .into_response()
}

async fn answer(state: &AppState) -> Response {
    match state.metrics.scrape(&state.app).await {
        Ok(text) => ([(CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE_OPENMETRICS))], text).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "cannot encode the metrics");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}

/// Connections the `metrics_listen` address holds at once, at most (a
/// scraper needs one): whoever else reaches the address cannot hold the
/// node's file descriptors there…
pub const METRICS_CONNECTIONS: usize = 16;

/// …nor, from one address, every place the scraper needs.
pub const METRICS_CONNECTIONS_PER_ADDRESS: usize = 4;

/// Serves `/metrics` alone on `listener` (the `metrics_listen` address)
/// until `shutdown` completes, with the main listener's header, body and
/// idle times and [`METRICS_CONNECTIONS`] connections at most, of them
/// [`METRICS_CONNECTIONS_PER_ADDRESS`] from one address (scrapes
/// themselves run one at a time: [`ServerMetrics::scrape`]).
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) {
    let serving = crate::conn::Serving {
        limits: state.app.limits().clone(),
        trusted: Arc::new(Vec::new()),
        metrics: state.metrics.clone(),
        counts: crate::conn::Counts::new(METRICS_CONNECTIONS, METRICS_CONNECTIONS_PER_ADDRESS),
        refused: "metrics_connection",
        evicted: "metrics_connection_oldest",
    };
    let router = axum::Router::new()
        .route("/metrics", axum::routing::get(|State(state): State<AppState>| async move { answer(&state).await }))
        .with_state(state);
    crate::conn::serve_router(listener, router, serving, shutdown).await;
}

/// The request id to use: the client's (or proxy's) if well formed, else a new one.
fn request_id(headers: &HeaderMap) -> String {
    let given = headers.get(REQUEST_ID).and_then(|v| v.to_str().ok()).filter(|v| {
        (1..=64).contains(&v.len()) && v.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
    });
    if let Some(id) = given {
        return id.to_owned();
    }
    let mut bytes = [0u8; 16];
    if getrandom::fill(&mut bytes).is_err() {
        // No randomness: still an id, unique on this node.
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        return format!("local-{n}");
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The method as a label: the usual ones by name, anything else `other`
/// (a client may send any token as a method).
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

/// Whether a request's line is logged at `debug` rather than `info`: at
/// `info` what staff signed in on this node ask, what changes something,
/// a failed sign-in (which the sign-in limits bound) and every server
/// error; at `debug` probes and scrapes, and what anyone can send without
/// end — an anonymous read (a page, a document, the widget's script and
/// files and its library's status on every page of a library's site, a
/// patron's chat), an anonymous request refused (a rate limit's `429`, a
/// path that matches no route, no credential, another site's form, a body
/// that is not JSON) — so that neither a flood nor a busy library site
/// floods the log (journald's rate limit would then drop the lines that
/// matter). Each is counted in `refdesk_http_requests_total` all the same.
/// `staff`: the request carries a sign-in this node knows.
fn quiet(route: &str, method: &str, res: &Response, staff: bool) -> bool {
    let status = res.status();
    let anonymous = !staff && route != "/api/login" && !status.is_server_error();
    matches!(route, "/healthz" | "/readyz" | "/metrics" | "unmatched")
        || (WIDGET_ROUTES.contains(&route) && matches!(method, "GET" | "HEAD") && !status.is_server_error())
        || status == StatusCode::TOO_MANY_REQUESTS
        || (status == StatusCode::UNAUTHORIZED && route != "/api/login")
        || res.extensions().get::<Quiet>().is_some()
        || (anonymous && (matches!(method, "GET" | "HEAD" | "OPTIONS") || status.is_client_error()))
}

/// Marks a response logged at debug whatever its route and status: a
/// refusal anyone can send without end before any limit (another site's
/// request, a body that is not JSON).
#[derive(Clone, Copy, Debug)]
pub struct Quiet;

/// What a library's web site asks of refdesk on each visitor's page, with
/// the widget on it: logged at debug (see [`track`]).
const WIDGET_ROUTES: [&str; 4] = ["/widget.js", "/assets/{file}", "/api/libraries/{slug}/status", "/ask/{slug}"];

/// The outermost middleware: gives the request its id and span, then
/// counts and times it by the route it matched and the status answered.
/// Logs one line per request: its route, never its URL, query or client
/// address; at `info` or `debug` as [`quiet`] says.
pub async fn track(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let id = request_id(req.headers());
    let route = req.extensions().get::<MatchedPath>().map_or("unmatched", |p| p.as_str()).to_owned();
    let method = method_label(req.method());
    let staff = crate::input::cookie_token(req.headers(), state.secure_cookies)
        .is_some_and(|c| state.limiter.knows(crate::limit::Credential::Staff, c));
    let span = tracing::info_span!("request", request_id = %id, method, route = %route);
    let start = Instant::now();
    let mut res = next.run(req).instrument(span.clone()).await;
    let took = start.elapsed();
    state.metrics.request(&route, method, res.status(), took);
    let (status, ms) = (res.status().as_u16(), took.as_secs_f64() * 1000.0);
    span.in_scope(|| match quiet(&route, method, &res, staff) {
        true => tracing::debug!(status, ms, "answered"),
        false => tracing::info!(status, ms, "answered"),
    });
    if let Ok(v) = HeaderValue::from_str(&id) {
        res.headers_mut().insert(REQUEST_ID, v);
    }
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_main_listener_serves_the_metrics_to_a_loopback_address_no_proxy_forwarded() {
        use crate::http::auth::from_this_machine;
        let host = |h: &'static str| {
            let mut headers = HeaderMap::new();
            headers.insert(axum::http::header::HOST, HeaderValue::from_static(h));
            headers
        };
        let local = host("127.0.0.1:8080");
        let ip = |s: &str| Some(s.parse::<std::net::IpAddr>().unwrap());
        assert!(from_this_machine(ip("127.0.0.1"), &local, &[]));
        assert!(from_this_machine(ip("::1"), &host("[::1]:8080"), &[]));
        assert!(from_this_machine(ip("::ffff:127.0.0.1"), &host("localhost:8080"), &[]));
        assert!(!from_this_machine(ip("192.0.2.7"), &local, &[]), "another machine");
        assert!(!from_this_machine(ip("2001:db8::7"), &local, &[]));
        assert!(!from_this_machine(None, &local, &[]), "no peer known");
        assert!(!from_this_machine(ip("127.0.0.1"), &host("ask.example.org"), &[]), "a public name: a tunnel");
        assert!(!from_this_machine(ip("127.0.0.1"), &local, &["127.0.0.1".parse().unwrap()]), "a trusted proxy");
        let mut forwarded = local.clone();
        forwarded.insert("x-forwarded-for", HeaderValue::from_static("192.0.2.7"));
        assert!(!from_this_machine(ip("127.0.0.1"), &forwarded, &[]), "a proxy on this machine");
    }

    #[test]
    fn the_refusals_are_summed_up_by_limit_since_the_last_summary() {
        let app = refdesk_app::metrics::Metrics::default();
        let m = ServerMetrics::new(&app, None);
        let mut seen = [0; LIMITS.len()];
        assert_eq!(m.refused_since(&mut seen), None, "nothing refused");
        m.limited("login_busy");
        m.limited("login_busy");
        m.limited("start");
        assert_eq!(m.refused_since(&mut seen).as_deref(), Some("start=1 login_busy=2"));
        assert_eq!(m.refused_since(&mut seen), None, "nothing since");
        m.limited("socket_open");
        assert_eq!(m.refused_since(&mut seen).as_deref(), Some("socket_open=1"));
    }

    #[test]
    fn a_well_formed_request_id_is_kept_and_anything_else_replaced() {
        let with = |v: &str| {
            let mut h = HeaderMap::new();
            h.insert(REQUEST_ID, HeaderValue::from_str(v).unwrap());
            request_id(&h)
        };
        assert_eq!(with("abc-123_x.y"), "abc-123_x.y");
        for bad in ["", "has space", "a\"quote", &"x".repeat(65), "new\tline"] {
            let id = with(bad);
            assert_ne!(id, bad);
            assert_eq!(id.len(), 32, "a new one: {id}");
        }
        assert_ne!(request_id(&HeaderMap::new()), request_id(&HeaderMap::new()));
    }
}
