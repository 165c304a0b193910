//! refdesk's server: configuration, the HTTP JSON API, the WebSocket
//! endpoint and the embedded web pages. Handlers are thin: extract, call a
//! use case of [`refdesk_app::App`], map the result. No SQL, no rules here.
//!
//! - [`config`]: layered configuration (defaults → TOML → environment → flags).
//! - [`http`]: one module per resource, each with its own `router()`.
//! - [`ws`]: the WebSocket protocol of `docs/protocol.md`.
//! - [`conn`]: the accept loop: connection caps and HTTP timeouts.
//! - [`error`]: the one API error type and its JSON shape.
//! - [`metrics`]: `/metrics`, and the request id and span of every request.
//! - [`ready`]: `/readyz`, answered within a bound whatever the database does.
//!
//! [`run`] takes the listener and a shutdown signal as arguments, which is
//! what lets tests start a real server on port 0; it also drains the node
//! when that signal comes (see [`run`]).
#![forbid(unsafe_code)]

pub mod config;
pub mod conn;
pub mod error;
pub mod http;
pub mod input;
pub mod limit;
pub mod metrics;
pub mod origin;
pub mod proxy;
pub mod ready;
pub mod settings;
pub mod ws;

pub use config::Config;

/// The commit this build was made from (Git's, 12 hex digits; or as
/// `REFDESK_COMMIT` named it at build time), or `unknown` (`build.rs`).
pub const COMMIT: &str = env!("REFDESK_COMMIT");

/// What `refdesk --version` says: the version and the commit.
pub const VERSION: &str = concat!(env!("CARGO_PKG_VERSION"), " (commit ", env!("REFDESK_COMMIT"), ")");

use anyhow::Context;
use refdesk_app::{bus::Bus, App, Clock};
use refdesk_store::postgres::{PgOptions, PgStore};
use refdesk_store::sqlite::SqliteStore;
use std::future::Future;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

/// Everything a handler can reach.
#[derive(Clone)]
pub struct AppState {
    /// The use cases.
    pub app: App,
    /// Whether cookies are marked `Secure` (behind HTTPS).
    pub secure_cookies: bool,
    /// Set when shutdown begins, so `/readyz` turns away new traffic.
    pub draining: Arc<AtomicBool>,
    /// How long the node goes on serving once shutdown begins (`drain_seconds`).
    pub drain_period: Duration,
    /// How long closing may take after the drain (`shutdown_seconds`).
    pub shutdown_within: Duration,
    /// Set to `true` when the drain ends: every WebSocket then says goodbye
    /// with 1001 (going away). Each socket holds a receiver, so the sender
    /// knows when the last one has closed.
    pub going_away: Arc<tokio::sync::watch::Sender<bool>>,
    /// Requests that change something and run to their end in a task of
    /// their own, though their client may have gone ([`http::router`]): at
    /// most [`http::DETACHED`] at once; past that they run as reads do,
    /// stopped with their client. A client that hangs up frees its
    /// connection's place, not this one's.
    pub detached: Arc<tokio::sync::Semaphore>,
    /// Each staff member's answers not yet all sent ([`http::Answers`]).
    pub answers: Arc<http::Answers>,
    /// The readiness check under way, shared by every `/readyz`.
    pub readiness: Arc<ready::Readiness>,
    /// E-mail settings, for the mailer [`run`] starts.
    pub mail: refdesk_app::mail::MailConfig,
    /// The data folder (e-mail files go under it when there is no SMTP server).
    pub data_dir: std::path::PathBuf,
    /// Rate limits on the open entry points.
    pub limiter: Arc<limit::Limiter>,
    /// Proxies whose `X-Forwarded-For` is believed.
    pub trusted_proxies: Arc<Vec<crate::proxy::ProxyNet>>,
    /// refdesk's origin from `public_url` (see [`origin`]).
    pub public_origin: Option<String>,
    /// `public_url`, without a trailing slash.
    pub public_url: Option<String>,
    /// Room for WebSockets that have not authenticated yet (see [`ws::PENDING_AUTH`]).
    pub pending_auth: Arc<ws::Opening>,
    /// Open sockets per chat, per staff sign-in and per client address.
    pub sockets: Arc<ws::Sockets>,
    /// The node's metrics registry and the figures the server keeps.
    pub metrics: Arc<metrics::ServerMetrics>,
    /// `GET /api/libraries`'s answer, encoded once per read of the list.
    pub listed_json: Arc<http::patron::ListedJson>,
    /// The minute (of the app's clock) a refused origin was last logged at
    /// `warn` (see `origin::check`).
    pub cross_origin_told: Arc<std::sync::atomic::AtomicI64>,
}

/// Opens the store named by `config` (migrating it), links the bus to the
/// other nodes if NATS is configured, and assembles the app.
pub async fn open(config: &Config, clock: Clock) -> anyhow::Result<AppState> {
    let bus = Bus::new();
    let store: Arc<dyn refdesk_store::Store> = match &config.database_url {
        None => {
            make_data_dir(config)?;
            let path = config.database_path();
            private(&config.data_dir, Some(&path))?;
            let store = SqliteStore::open(&path, bus.clone())
                .with_context(|| format!("opening the SQLite database {}", path.display()))?;
            Arc::new(store)
        }
        Some(url) => {
            let options = PgOptions { max_connections: config.database_connections, ..PgOptions::default() };
            // The URL may hold a password: it is not repeated in the error.
            let store = PgStore::open(url, options, bus.clone()).await.context("opening the PostgreSQL database")?;
            Arc::new(store)
        }
    };
    if let Some(nats) = config.nats() {
        // What stops the link at start is the configuration's or the NATS
        // server's answer, never a fault of refdesk's: said as it is.
        let link = refdesk_app::nats::link(bus.clone(), &nats, &config.nats_subject)
            .await
            .map_err(|e| match e {
                refdesk_app::AppError::Internal(why) => anyhow::anyhow!("{why}"),
                e => anyhow::anyhow!("{e}"),
            })
            .context("linking to the other nodes over NATS")?;
        tracing::info!(node = %link.node, subject = %config.nats_subject, "NATS link set up (it connects in the background if NATS is not reachable yet)");
    }
    let metrics = Arc::new(metrics::ServerMetrics::new(bus.metrics(), config.metrics_listen));
    metrics.watch_disk(config.data_dir.clone());
    let app = App::new(store, bus, config.limits.clone(), clock);
    // Erasures on request, noted beside the database (see
    // `refdesk_app::erasures`). On PostgreSQL `serve` makes the data folder
    // first ([`make_data_dir`]); a command of the command line makes no
    // erasure and needs none.
    if config.data_dir.is_dir() {
        app.keep_erasures(config.data_dir.join(refdesk_app::erasures::FILE));
    }
    Ok(AppState {
        app,
        secure_cookies: config.cookies_secure(),
        draining: Arc::new(AtomicBool::new(false)),
        // On SQLite the node is the only one (its data folder is locked):
        // no load balancer has another to send its clients to, so it does
        // not drain; its clients resume when it is back.
        drain_period: Duration::from_secs(if config.database_url.is_some() { config.drain_seconds } else { 0 }),
        shutdown_within: Duration::from_secs(config.shutdown_seconds),
        going_away: Arc::new(tokio::sync::watch::Sender::new(false)),
        detached: Arc::new(tokio::sync::Semaphore::new(http::DETACHED)),
        answers: Arc::default(),
        readiness: Arc::default(),
        mail: refdesk_app::mail::MailConfig {
            public_url: config.public_url.as_ref().map(|u| u.trim_end_matches('/').to_owned()),
            ..config.mail.clone()
        },
        data_dir: config.data_dir.clone(),
        limiter: Arc::default(),
        trusted_proxies: Arc::new(config.trusted_proxies.clone()),
        public_origin: config.public_origin(),
        public_url: config.public_url.as_ref().map(|u| u.trim_end_matches('/').to_owned()),
        pending_auth: ws::Opening::new(ws::PENDING_AUTH),
        sockets: Arc::default(),
        metrics,
        listed_json: Arc::default(),
        cross_origin_told: Arc::default(),
    })
}

/// Makes the data folder if it is not there, private (0700): on SQLite
/// the database's (every command's), on PostgreSQL the erasure journal's
/// and the mailer's without SMTP (`serve`'s, before [`open`]). Not the
/// folders above it: a mistyped path is refused.
pub fn make_data_dir(config: &Config) -> anyhow::Result<()> {
    if !config.data_dir.is_dir() {
        std::fs::create_dir(&config.data_dir).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => anyhow::anyhow!(
                "creating the data folder {}: the folder above it does not exist (is data_dir right? \
                 refdesk creates the data folder, not the folders above it)",
                config.data_dir.display()
            ),
            _ => anyhow::Error::new(e).context(format!("creating the data folder {}", config.data_dir.display())),
        })?;
    }
    private(&config.data_dir, None)
}

/// The data folder holds password hashes and transcripts: only its owner
/// may enter it (0700), and the database is created 0600 (SQLite gives its
/// `-wal` and `-shm` files the database's mode).
fn private(dir: &std::path::Path, db: Option<&std::path::Path>) -> anyhow::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        let only_owner = |p: &std::path::Path, mode| {
            std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode))
                .with_context(|| format!("making {} private", p.display()))
        };
        only_owner(dir, 0o700)?;
        let Some(db) = db else { return Ok(()) };
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(db)
            .with_context(|| format!("creating {}", db.display()))?;
        only_owner(db, 0o600)?;
    }
    Ok(())
}

/// The whole HTTP application.
pub fn app(state: AppState) -> axum::Router {
    http::router(state)
}

/// A task's stop: the sender that tells it, and the future it waits on.
fn stop_signal() -> (tokio::sync::oneshot::Sender<()>, impl Future<Output = ()> + Send + 'static) {
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    (stop, async move {
        let _ = stopped.await;
    })
}

/// Serves until `shutdown` completes, then shuts down cleanly, in steps a
/// load balancer and the clients can follow:
///
/// 1. **Drain** (`drain_seconds`): `/readyz` answers 503 `draining` while
///    the node still serves everything — chats go on, new connections are
///    accepted — so the load balancer stops sending it new clients first.
/// 2. **Going away**: every WebSocket gets a close frame 1001 with a reason
///    (the clients resume at once, on another node), and the listener
///    closes; HTTP requests under way finish.
/// 3. **Closing**: the mailer and the background round stop, then the
///    store closes (on SQLite that empties and removes the write-ahead log).
///
/// Steps 2 and 3 take at most `shutdown_seconds`; past it, this returns
/// anyway with a log line, and the process exits with whatever was left
/// (every acknowledged write is already durable: I2).
pub async fn run(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    // First: an address that cannot be bound stops the start before
    // anything else runs.
    let (stop_metrics, metrics_task) = serve_metrics(&state).await?;
    // The outbox's sender runs beside the server and stops with it.
    let (stop_mail, mail_stopped) = stop_signal();
    let redone = redo_erasures_at_start(&state.app).await;
    let mail_task = start_mailer(&state, mail_stopped, redone)?;
    // Roll-ups, sign-offs and presence run beside the server too.
    let (stop_background, background_stopped) = stop_signal();
    let background = tokio::spawn(state.app.clone().run_background(background_stopped));
    // A line a minute at most summing up what the limits refused.
    let (stop_summing, summing_stopped) = stop_signal();
    let summing = tokio::spawn(state.metrics.clone().log_refusals(summing_stopped));
    let limits = state.app.limits().clone();
    // The binary sets the cap from the real open-file limit; otherwise
    // (in-process tests) the usual one is assumed.
    let max = match limits.max_connections {
        0 => conn::connection_cap(0, conn::USUAL_NOFILE, 16),
        n => n,
    };
    let counts = conn::Counts::new(max, limits.connections_per_address);
    state.metrics.watch_connections(counts.clone());
    let (stop_accepting, accepting_stopped) = stop_signal();
    let serving = tokio::spawn(conn::serve(listener, state.clone(), counts, accepting_stopped));
    shutdown.await;
    drain(&state).await;
    state.going_away.send_replace(true);
    let _ = stop_accepting.send(());
    let within = state.shutdown_within;
    let store = state.app.store().clone();
    let going_away = state.going_away.clone();
    drop(state);
    let closing = async move {
        // Connections get half the bound to finish: a slow client (a body
        // sent a byte at a time, an export read slowly) must not keep the
        // rest — the mailer, the store — from closing cleanly.
        let connections = async {
            let _ = serving.await;
            // Every socket has sent its close frame (or found its peer gone).
            going_away.closed().await;
        };
        if tokio::time::timeout(within / 2, connections).await.is_err() {
            tracing::warn!("connections still open at half of shutdown_seconds; closing the rest regardless");
        }
        let _ = stop_metrics.send(());
        if let Some(task) = metrics_task {
            let _ = task.await;
        }
        let _ = stop_summing.send(());
        let _ = summing.await;
        let _ = stop_mail.send(());
        let _ = stop_background.send(());
        let _ = mail_task.await;
        let _ = background.await;
        // Last: writes already under way finish, then the database closes.
        store.close().await;
    };
    match tokio::time::timeout(within, closing).await {
        Ok(()) => tracing::info!("shut down cleanly"),
        Err(_) => tracing::warn!(
            shutdown_seconds = within.as_secs(),
            "shutdown did not finish within shutdown_seconds; exiting anyway"
        ),
    }
    Ok(())
}

/// Step 1 of [`run`]: `/readyz` says 503 `draining` while everything else
/// goes on being served for the drain period.
async fn drain(state: &AppState) {
    state.draining.store(true, std::sync::atomic::Ordering::SeqCst);
    let seconds = state.drain_period.as_secs();
    if seconds == 0 {
        // SQLite (one node: no balancer has another to send clients to),
        // or `drain_seconds = 0`: said as it is, not as a drain.
        tracing::info!(
            "shutdown begun: no drain period; WebSockets are closed with 1001 (going away), the listener closes now"
        );
    } else {
        tracing::info!(drain_seconds = seconds, "shutdown begun: /readyz answers 503 while this node drains");
    }
    tokio::time::sleep(state.drain_period).await;
    if seconds > 0 {
        tracing::info!("drain over: WebSockets are closed with 1001 (going away), the listener closes");
    }
}

/// Starts the outbox's sender, once the erasures a restored database lacks
/// are made again (their chats' e-mails go with them: `redone` says whether
/// the start did it already), until `stopped`.
fn start_mailer(
    state: &AppState,
    stopped: impl Future<Output = ()> + Send + 'static,
    redone: bool,
) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    let mailer = refdesk_app::mail::Mailer::new(state.app.clone(), state.mail.clone(), state.data_dir.clone())
        .map_err(anyhow::Error::msg)
        .context("configuring e-mail")?;
    let app = state.app.clone();
    Ok(tokio::spawn(async move {
        let mut stopped = std::pin::pin!(stopped);
        tokio::select! {
            () = redo_erasures(&app, redone) => mailer.run(stopped).await,
            () = &mut stopped => {}
        }
    }))
}

/// [`App::redo_erasures`] unless `done`, tried again every 10 s until it is.
async fn redo_erasures(app: &App, done: bool) {
    if done {
        return;
    }
    loop {
        tokio::time::sleep(Duration::from_secs(10)).await;
        match app.redo_erasures().await {
            Ok(_) => return,
            Err(e) => {
                tracing::error!(error = %e, "cannot make the erasures of the journal again yet; the e-mail waits")
            }
        }
    }
}

/// Makes again, before anything is served, the erasures of the journal
/// the database lacks (see `refdesk_app::erasures`). A store that cannot
/// within [`REDO_AT_START`] does not keep the node from starting (it may be
/// down, and `/readyz` says so): the mailer waits for it instead. Whether
/// it was done.
async fn redo_erasures_at_start(app: &App) -> bool {
    match tokio::time::timeout(REDO_AT_START, app.redo_erasures()).await {
        Ok(Ok(_)) => true,
        Ok(Err(e)) => {
            tracing::error!(error = %e, "cannot make the erasures of the journal again yet; the e-mail waits");
            false
        }
        Err(_) => {
            tracing::warn!("the erasures of the journal are not made again yet (the store is slow); the e-mail waits");
            false
        }
    }
}

/// How long a start waits for [`redo_erasures_at_start`].
const REDO_AT_START: Duration = Duration::from_secs(10);

/// Starts `/metrics` on `metrics_listen`, if set; stopped by the sender.
/// An address that cannot be bound stops the start, as the main one does.
async fn serve_metrics(
    state: &AppState,
) -> anyhow::Result<(tokio::sync::oneshot::Sender<()>, Option<tokio::task::JoinHandle<()>>)> {
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let Some(addr) = state.metrics.listen else { return Ok((stop, None)) };
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("listening on {addr} for /metrics (metrics_listen)"))?;
    tracing::info!(%addr, "serving /metrics on metrics_listen");
    let task = tokio::spawn(metrics::serve(listener, state.clone(), async move {
        let _ = stopped.await;
    }));
    Ok((stop, Some(task)))
}
