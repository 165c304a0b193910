//! The link between nodes: each node's [`Bus`] publishes what its store
//! committed on a NATS subject and delivers what the other nodes published
//! there. NATS carries committed events with their sequence numbers, so a
//! node never re-reads what it is handed; the database stays the source of
//! truth: a gap (a lost or late event) is filled from the store by the
//! connection that sees it, and when the link comes back after an outage
//! every connection re-reads what it follows ([`Bus::resync`]).
//!
//! Each event crosses NATS once, inside an [`Envelope`] from the node
//! that sent it; a node ignores its own (its connections already had them).
//!
//! NATS is not trusted: every envelope is sealed with the key the nodes
//! share ([`seal`]: encrypted and authenticated, numbered, timed), and a
//! node drops — and logs, a few times a minute at most, never with what it
//! held — every message that does not open with the key, is too old, or
//! was taken before. Nothing from NATS reaches a connection, a patron's
//! least of all, without that check. Someone who can reach NATS but does
//! not hold the key can still drop or delay envelopes (the nodes then
//! re-read the store) and see how much the nodes send, when, and which
//! node sends it; not what, and they cannot add to it.
//!
//! How a node signs in to NATS and whether it uses TLS is [`NatsOptions`].
//! A server that refuses the node (a wrong password, a certificate it cannot
//! trust) is an error at start; only a server out of reach is waited for in
//! the background. Secrets never reach a log or an error.

pub mod seal;

use crate::bus::Bus;
use crate::{AppError, AppResult};
use futures_util::StreamExt;
use refdesk_domain::event::Event;
use refdesk_domain::ids::SessionId;
use seal::{NatsKey, Opener, Refused, Sealer};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

/// Batches waiting to be sent before the link is counted as behind.
const OUTBOX: usize = 4096;
/// How often a node says how far it got (an envelope with no events and
/// its latest number), so that a loss at the end of a burst is noticed, and
/// sends its watcher lists again.
const HEARTBEAT: Duration = Duration::from_secs(5);
/// Another node's watcher list not said again for this long is a dead node's.
const WATCHERS_TTL: Duration = Duration::from_secs(20);
/// A node not heard from for this long (no heartbeat) is forgotten.
const FORGET_NODE: Duration = Duration::from_secs(60);
/// An envelope is closed once its events take this many bytes (NATS refuses
/// messages over 1 MiB by default).
const ENVELOPE_BYTES: usize = 256 * 1024;
/// Dropped messages are logged at most this often (as counts): a flood of
/// forgeries must not become a flood of log lines.
const DROPS_LOGGED_EVERY: Duration = Duration::from_secs(10);
/// How often the connections re-read from the database while NATS is out
/// of reach ([`reread_while_down`]).
const REREAD_WHILE_DOWN: Duration = Duration::from_secs(5);

/// What crosses NATS, sealed ([`seal::Sealer`]); the node that sent it is
/// in the seal. Each event is encoded once, as the sender splits its
/// events into envelopes ([`envelopes`]).
#[derive(Serialize)]
struct Envelope<'a> {
    /// Its number among that node's envelopes: 1, 2, 3… A receiver that
    /// sees a number skipped has missed something and re-reads the store.
    /// A heartbeat (no events) repeats the latest number.
    seq: u64,
    /// Its events, in commit order.
    events: &'a [Box<RawValue>],
    /// Beside each event, the chat whose watchers alone it is for (its
    /// lines and typing), or `null` (an event for more than one chat's
    /// watchers: the queue, the monitor, staff). A receiver decodes a
    /// chat's event only if someone there follows it ([`Bus::follows`]).
    to: &'a [Option<SessionId>],
}

/// An envelope as received: its events still encoded. `to` is empty from
/// a node of a version before it (every event is then decoded).
#[derive(Deserialize)]
struct Received<'a> {
    seq: u64,
    #[serde(borrow)]
    events: Vec<&'a RawValue>,
    #[serde(default)]
    to: Vec<Option<SessionId>>,
}

/// A batch's events encoded, and for whom (see [`Envelope::to`]).
#[derive(Default)]
struct Encoded {
    events: Vec<Box<RawValue>>,
    to: Vec<Option<SessionId>>,
}

/// The chat an event is for alone, if it is for one chat's watchers only.
fn for_chat(event: &Event) -> Option<SessionId> {
    match event {
        // Someone beginning to type is every node's to hear: each node's
        // round decides whether a chat is idle (`Bus::typed_within`).
        Event::Typing { on: true, .. } => None,
        Event::Message { ctx, .. } | Event::Typing { ctx, .. } => Some(ctx.id),
        _ => None,
    }
}

/// A running link. The tasks it started stop when the process does.
pub struct Link {
    /// This node's name on the link (random, new at every start).
    pub node: String,
}

/// How to reach the NATS server and sign in. Its `Debug` hides the password
/// and the token.
#[derive(Clone, Default)]
pub struct NatsOptions {
    /// `nats://host:4222`, or `tls://host:4222` to require TLS. A user and
    /// password (`nats://user:password@host:4222`, percent-encoded) or a
    /// token (`nats://token@host:4222`) in it are the sign-in; they are
    /// taken out of the URL before the client sees it, so that no log of
    /// the client's can show them.
    pub url: String,
    /// The user, when the URL holds none (with `password`).
    pub user: Option<String>,
    /// The user's password.
    pub password: Option<String>,
    /// A token, when the URL holds none.
    pub token: Option<String>,
    /// A `.creds` file (a user JWT and its NKey seed), for NATS servers
    /// run with accounts from an operator.
    pub credentials_file: Option<PathBuf>,
    /// PEM certificates of the CAs to trust, instead of the system's. It
    /// implies TLS: a CA file with a plain connection would protect nothing.
    pub ca_file: Option<PathBuf>,
    /// Require TLS, whatever the server offers (a `tls://` URL does too).
    pub tls: bool,
    /// The key the nodes share to seal envelopes ([`NatsKey::parse`]). A
    /// link needs it, or `key_file`, not both.
    pub key: Option<String>,
    /// A file holding that key.
    pub key_file: Option<PathBuf>,
    /// A second key, which opens what other nodes send but never seals:
    /// the old key or the new one while the deployment changes its key one
    /// node at a time (README, "The nodes' key").
    pub second_key: Option<String>,
    /// A file holding that second key.
    pub second_key_file: Option<PathBuf>,
}

impl std::fmt::Debug for NatsOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NatsOptions")
            .field("url", &redact_url(&self.url))
            .field("user", &self.user)
            .field("password", &self.password.as_ref().map(|_| "<hidden>"))
            .field("token", &self.token.as_ref().map(|_| "<hidden>"))
            .field("credentials_file", &self.credentials_file)
            .field("ca_file", &self.ca_file)
            .field("tls", &self.tls)
            .field("key", &self.key.as_ref().map(|_| "<hidden>"))
            .field("key_file", &self.key_file)
            .field("second_key", &self.second_key.as_ref().map(|_| "<hidden>"))
            .field("second_key_file", &self.second_key_file)
            .finish()
    }
}

/// Why a link without a key is refused.
const NO_KEY: &str = "the nodes must share a key to seal what they send over NATS (anyone who can reach NATS \
                      could otherwise read it and speak for a node): set nats_key or nats_key_file \
                      (REFDESK_NATS_KEY, REFDESK_NATS_KEY_FILE) on every node to the same random key of at least \
                      32 bytes, e.g. the output of `openssl rand -base64 32`";

/// Why a second key set twice is refused.
const BOTH_SECOND: &str =
    "nats_second_key and nats_second_key_file are both set: set the second NATS key one way, not both";

/// One way of signing in to NATS.
enum SignIn {
    Anonymous,
    Password(String, String),
    Token(String),
    Credentials(PathBuf),
}

impl NatsOptions {
    /// Options for the server at `url`, with no other setting.
    pub fn new(url: impl Into<String>) -> NatsOptions {
        NatsOptions { url: url.into(), ..NatsOptions::default() }
    }

    /// Options for the server at `url`, sealing with `key`.
    pub fn with_key(url: impl Into<String>, key: impl Into<String>) -> NatsOptions {
        NatsOptions { key: Some(key.into()), ..NatsOptions::new(url) }
    }

    /// Whether these options can work: a `nats://` or `tls://` URL, at
    /// most one way of signing in, and a key (a key file is read only by
    /// [`link`]). Says what is wrong without any secret.
    pub fn check(&self) -> Result<(), String> {
        self.server()?;
        match (&self.second_key, &self.second_key_file) {
            (Some(key), None) => NatsKey::parse(key).map(drop).map_err(|e| format!("nats_second_key: {e}"))?,
            (Some(_), Some(_)) => return Err(BOTH_SECOND.into()),
            _ => {}
        }
        match (&self.key, &self.key_file) {
            (Some(key), None) => NatsKey::parse(key).map(|_| ()).map_err(|e| format!("nats_key: {e}")),
            (None, Some(_)) => Ok(()),
            (Some(_), Some(_)) => {
                Err("nats_key and nats_key_file are both set: set the NATS key one way, not both".into())
            }
            (None, None) => Err(NO_KEY.into()),
        }
    }

    /// [`NatsOptions::check`], and the files [`link`] reads at start, read
    /// now (`config --check`): the nodes' key file (its key checked), the
    /// CA file (PEM certificates) and the credentials file. Says what is
    /// wrong without any secret.
    pub fn check_files(&self) -> Result<(), String> {
        self.check()?;
        self.envelope_key()?;
        self.second_envelope_key()?;
        if let Some(file) = &self.ca_file {
            let pem =
                std::fs::read(file).map_err(|e| format!("cannot read the NATS CA file {}: {e}", file.display()))?;
            if !pem.windows(27).any(|w| w == b"-----BEGIN CERTIFICATE-----") {
                return Err(format!("the NATS CA file {} holds no PEM certificate", file.display()));
            }
        }
        if let Some(file) = &self.credentials_file {
            std::fs::read(file)
                .map_err(|e| format!("cannot read the NATS credentials file {}: {e}", file.display()))?;
        }
        Ok(())
    }

    /// The second key ([`NatsOptions::second_key`]), if one is set.
    fn second_envelope_key(&self) -> Result<Option<NatsKey>, String> {
        match (&self.second_key, &self.second_key_file) {
            (Some(key), None) => NatsKey::parse(key).map(Some).map_err(|e| format!("nats_second_key: {e}")),
            (None, Some(file)) => NatsKey::read(file).map(Some).map_err(|e| format!("nats_second_key_file: {e}")),
            (Some(_), Some(_)) => Err(BOTH_SECOND.into()),
            (None, None) => Ok(None),
        }
    }

    /// The key the envelopes are sealed with.
    fn envelope_key(&self) -> Result<NatsKey, String> {
        match (&self.key, &self.key_file) {
            (Some(key), None) => NatsKey::parse(key).map_err(|e| format!("nats_key: {e}")),
            (None, Some(file)) => NatsKey::read(file).map_err(|e| format!("nats_key_file: {e}")),
            (Some(_), Some(_)) => {
                Err("nats_key and nats_key_file are both set: set the NATS key one way, not both".into())
            }
            (None, None) => Err(NO_KEY.into()),
        }
    }

    /// The server's address without the sign-in, and the sign-in.
    fn server(&self) -> Result<(async_nats::ServerAddr, SignIn), String> {
        if !(self.url.starts_with("nats://") || self.url.starts_with("tls://")) {
            return Err("the NATS URL must be nats://host:port, or tls://host:port to require TLS".into());
        }
        // The parser's message never repeats the URL.
        let addr: async_nats::ServerAddr =
            self.url.parse().map_err(|e| format!("the NATS URL {} is not usable: {e}", redact_url(&self.url)))?;
        let in_url = match (addr.username(), addr.password()) {
            (Some(user), Some(password)) => Some(SignIn::Password(unescape(user), unescape(password))),
            (Some(token), None) => Some(SignIn::Token(unescape(token))),
            _ => None,
        };
        let mut ways: Vec<SignIn> = in_url.into_iter().collect();
        match (&self.user, &self.password) {
            (Some(user), Some(password)) => ways.push(SignIn::Password(user.clone(), password.clone())),
            (None, None) => {}
            _ => return Err("a NATS user needs a password, and a password a user".into()),
        }
        if let Some(token) = &self.token {
            ways.push(SignIn::Token(token.clone()));
        }
        if let Some(file) = &self.credentials_file {
            ways.push(SignIn::Credentials(file.clone()));
        }
        if ways.len() > 1 {
            return Err("sign in to NATS one way only: a user and password, a token (either in the URL or set \
                        apart) or a credentials file"
                .into());
        }
        let mut url = addr.into_inner();
        // Neither can fail on a nats:// or tls:// URL, which has a host.
        let _ = url.set_username("");
        let _ = url.set_password(None);
        let addr = async_nats::ServerAddr::from_url(url).map_err(|e| format!("the NATS URL is not usable: {e}"))?;
        Ok((addr, ways.pop().unwrap_or(SignIn::Anonymous)))
    }
}

/// `%XX` sequences in a URL's user or password, decoded (a password may
/// hold `@` or `:`, which the URL must escape).
fn unescape(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes.get(i + 1..i + 3).filter(|h| h.iter().all(u8::is_ascii_hexdigit));
        let decoded = hex.and_then(|h| std::str::from_utf8(h).ok()).and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], decoded) {
            (b'%', Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (byte, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Whether a first connection failed because the server refused refdesk
/// (a wrong password, a certificate it cannot trust, TLS on one side
/// only), which trying again cannot mend, rather than because the server
/// is out of reach, which waiting can.
fn refused(e: &async_nats::ConnectError) -> bool {
    use async_nats::ConnectErrorKind as Kind;
    match e.kind() {
        Kind::AuthorizationViolation | Kind::Authentication | Kind::Tls | Kind::ServerParse => true,
        Kind::Io => match std::error::Error::source(e) {
            // rustls reports a failed handshake (an untrusted certificate,
            // a server that does not speak TLS) as invalid data.
            Some(source) => match source.downcast_ref::<std::io::Error>() {
                Some(io) => io.kind() == std::io::ErrorKind::InvalidData,
                // The server said -ERR while we signed in.
                None => source.downcast_ref::<async_nats::ServerError>().is_some(),
            },
            None => false,
        },
        _ => false,
    }
}

/// What an operator reads when the server at `shown` refused the node with
/// `e`: what failed, and what to check.
fn refusal(e: &async_nats::ConnectError, shown: &str) -> String {
    match e.kind() {
        async_nats::ConnectErrorKind::AuthorizationViolation | async_nats::ConnectErrorKind::Authentication => {
            format!(
                "the NATS server at {shown} refused this node's sign-in ({e}): check the user and password, the \
                 token or the credentials file (nats_url, nats_user and nats_password, nats_token, \
                 nats_credentials_file)"
            )
        }
        async_nats::ConnectErrorKind::ServerParse => format!("the NATS URL {shown} is not usable: {e}"),
        _ if std::error::Error::source(e).is_some_and(|s| s.is::<async_nats::ServerError>()) => {
            format!("the NATS server at {shown} refused this node ({e})")
        }
        _ => format!(
            "TLS with the NATS server at {shown} failed ({e}): check nats_ca_file (the CA that signed the \
             server's certificate), that the certificate names the host in nats_url, and that TLS is on at both \
             ends (nats_tls, or a tls:// URL)"
        ),
    }
}

/// A URL fit for logs and for `refdesk config`: its password or token
/// (everything between `://` and the last `@`, but a user name before a
/// `:`) and the values of query parameters that may hold a secret
/// (`password=`, `token=`, …) are `***`; the user name and the other
/// parameters stay, so that what decides the connection's security
/// (`tls=required`, `sslmode=verify-full`) is still seen — and is kept by an
/// operator who saves the output as a configuration. A name alone before
/// the `@` is a user for PostgreSQL and SMTP, and stays; for NATS it is a
/// token, and is hidden.
pub fn redact_url(url: &str) -> String {
    let parts = UrlParts::of(url);
    let user = match parts.userinfo {
        None => String::new(),
        Some(info) => match info.split_once(':') {
            Some((user, _)) => format!("{user}:***@"),
            None if parts.token_alone => "***@".to_owned(),
            None => format!("{info}@"),
        },
    };
    let (host, query) = match parts.rest.split_once('?') {
        Some((host, query)) => (host, Some(query)),
        None => (parts.rest, None),
    };
    let mut shown = format!("{}{user}{host}", parts.scheme);
    if let Some(query) = query {
        let params: Vec<String> = query
            .split('&')
            .map(|param| match param.split_once('=') {
                Some((key, _)) if secret_param(key) => format!("{key}=***"),
                _ => param.to_owned(),
            })
            .collect();
        shown = format!("{shown}?{}", params.join("&"));
    }
    shown
}

/// A URL cut where [`redact_url`] needs it. The user information runs to
/// the last `@` whatever it holds (a password with an unescaped `?` or `/`
/// is hidden whole, not taken for the query).
struct UrlParts<'a> {
    /// `nats://`, or nothing.
    scheme: &'a str,
    userinfo: Option<&'a str>,
    /// The host and what follows.
    rest: &'a str,
    /// A name alone before the `@` is a token (NATS).
    token_alone: bool,
}

impl<'a> UrlParts<'a> {
    fn of(url: &'a str) -> UrlParts<'a> {
        let after_scheme = url.find("://").map_or(0, |i| i + 3);
        let (scheme, tail) = url.split_at(after_scheme);
        let token_alone = scheme.is_empty() || ["nats://", "tls://", "ws://", "wss://"].contains(&scheme);
        match tail.rfind('@') {
            Some(at) => UrlParts { scheme, userinfo: Some(&tail[..at]), rest: &tail[at + 1..], token_alone },
            None => UrlParts { scheme, userinfo: None, rest: tail, token_alone },
        }
    }
}

/// Whether a URL's query parameter may hold a secret (its value is hidden).
/// `sslkey` and `sslcert` are file names, not secrets.
fn secret_param(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    ["pass", "pwd", "token", "secret", "cred"].iter().any(|s| key.contains(s))
        || ["key", "apikey", "api_key", "auth"].contains(&key.as_str())
}

/// Whether a URL holds `***` where a secret goes: a [`redact_url`] output
/// saved as a configuration, which would sign in with `***`.
pub fn holds_hidden_secret(url: &str) -> bool {
    let parts = UrlParts::of(url);
    let in_userinfo = parts.userinfo.is_some_and(|u| u == "***" || u.ends_with(":***"));
    let in_query = parts
        .rest
        .split_once('?')
        .is_some_and(|(_, q)| q.split('&').any(|p| p.split_once('=').is_some_and(|(_, v)| v == "***")));
    in_userinfo || in_query
}

/// Links `bus` to the other nodes through the NATS server `nats` names, on
/// `subject`. Returns once the link is set up. A missing or unusable key,
/// or a server that refuses the node (its sign-in, or TLS), is an error
/// here, at start. A server out of reach is not: the link keeps trying in
/// the background (the node serves its own connections meanwhile, and
/// re-reads from the store once linked).
pub async fn link(bus: Arc<Bus>, nats: &NatsOptions, subject: &str) -> AppResult<Link> {
    let key = nats.envelope_key().map_err(|e| AppError::Internal(e.into()))?;
    let second = nats.second_envelope_key().map_err(|e| AppError::Internal(e.into()))?;
    let sealer = Sealer::new(&key).map_err(|e| AppError::Internal(e.into()))?;
    let (node, me) = (sealer.name(), sealer.node());
    let shown = redact_url(&nats.url);
    let (server, sign_in) = nats.server().map_err(|e| AppError::Internal(e.into()))?;
    if let Some(file) = &nats.ca_file {
        std::fs::read(file)
            .map_err(|e| AppError::Internal(format!("cannot read the NATS CA file {}: {e}", file.display()).into()))?;
    }
    // Once without retrying, so that a refusal is told now; then, if the
    // server was only out of reach, again with retries in the background.
    let first = connect_options(&bus, nats, &sign_in, &node, &shown).await?.connect(server.clone()).await;
    let client = match first {
        Ok(client) => client,
        Err(e) if refused(&e) => return Err(AppError::Internal(refusal(&e, &shown).into())),
        Err(e) => {
            tracing::warn!(server = %shown, error = %e, "cannot reach NATS yet; linking in the background, the node serves its own connections meanwhile (they re-read from the database every 5 s until it is linked)");
            bus.set_link_down(true);
            connect_options(&bus, nats, &sign_in, &node, &shown)
                .await?
                .retry_on_initial_connect()
                .connect(server)
                .await
                .map_err(|e| AppError::Internal(format!("cannot use the NATS server at {shown}: {e}").into()))?
        }
    };
    let inbound = client
        .subscribe(subject.to_owned())
        .await
        .map_err(|e| AppError::Internal(format!("cannot subscribe to {subject} on NATS: {e}").into()))?;
    let (uplink, outbound) = mpsc::channel::<Vec<Event>>(OUTBOX);
    bus.set_uplink(uplink).map_err(|_| AppError::Internal("this bus is already linked".into()))?;
    tokio::spawn(send(client, subject.to_owned(), bus.clone(), outbound, sealer));
    tokio::spawn(reread_while_down(bus.clone()));
    tokio::spawn(receive(inbound, subject.to_owned(), bus, Opener::with_second(key, second), me));
    Ok(Link { node })
}

/// While NATS is out of reach the other nodes' events do not come: every
/// [`REREAD_WHILE_DOWN`] this node's connections re-read what they follow
/// from the database, as after a missed envelope, so that a chat whose
/// patron and librarian are on different nodes goes on (late by that much
/// at most) instead of waiting for NATS, and a desk sees patrons who came
/// in through another node. The reads are the rereads' (one connection at
/// a time per permit of `App::rereads`).
async fn reread_while_down(bus: Arc<Bus>) {
    loop {
        tokio::time::sleep(REREAD_WHILE_DOWN).await;
        if bus.link_down() {
            bus.resync();
        }
    }
}

/// The outbound task: this node's committed events, numbered and sealed,
/// and a heartbeat when there are none (which also re-announces who watches
/// which chat here).
async fn send(
    client: async_nats::Client,
    to: String,
    local: Arc<Bus>,
    mut outbound: mpsc::Receiver<Vec<Event>>,
    mut sealer: Sealer,
) {
    let mut seq = 0u64;
    let mut failing = false;
    let mut beat = tokio::time::interval(HEARTBEAT);
    beat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let batches = tokio::select! {
            batch = outbound.recv() => match batch {
                Some(events) => {
                    if local.take_uplink_overflow() {
                        seq += 1; // a number nobody receives: the other nodes re-read the store
                    }
                    let (batches, lost) = envelopes(events);
                    if lost {
                        seq += 1; // told as dropped events are
                    }
                    batches
                }
                None => break,
            },
            _ = beat.tick() => {
                local.republish_watchers();
                local.expire_remote_watchers(WATCHERS_TTL);
                vec![Encoded::default()]
            }
        };
        for batch in batches {
            if !batch.events.is_empty() {
                seq += 1;
            }
            let sealed = serde_json::to_vec(&Envelope { seq, events: &batch.events, to: &batch.to })
                .map_err(|e| e.to_string())
                .and_then(|json| sealer.seal(&to, &json, now_ms()));
            let payload = match sealed {
                Ok(p) => p,
                Err(e) => {
                    tracing::error!(error = %e, "cannot seal events for the other nodes");
                    continue;
                }
            };
            // Said once while publishing fails, not once per envelope (each
            // patron's typing is one).
            match client.publish(to.clone(), payload.into()).await {
                Ok(()) => {
                    local.metrics().nats_envelope("sent");
                    if std::mem::take(&mut failing) {
                        tracing::info!("publishing to NATS again");
                    }
                }
                Err(e) if !failing => {
                    failing = true;
                    tracing::warn!(error = %e, "cannot publish to NATS; the other nodes will re-read from the store")
                }
                Err(e) => tracing::debug!(error = %e, "cannot publish to NATS"),
            }
        }
    }
}

/// The inbound task: other nodes' envelopes, opened (nothing below sees one
/// that does not open with the key), checked for gaps and delivered here.
async fn receive(mut inbound: async_nats::Subscriber, on: String, bus: Arc<Bus>, mut opener: Opener, me: [u8; 16]) {
    let mut dropped = Dropped::default();
    let mut report = tokio::time::interval(DROPS_LOGGED_EVERY);
    report.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut heard = Heard::default();
    let mut gaps = Gaps::default();
    loop {
        let message = tokio::select! {
            message = inbound.next() => match message {
                Some(message) => message,
                None => break,
            },
            _ = report.tick() => {
                dropped.report();
                gaps.report();
                continue;
            }
        };
        if seal::sealed_by(&message.payload) == Some(me) {
            continue; // our own, replayed by someone (NATS itself does not echo them)
        }
        let opened = match opener.open(&on, &message.payload, now_ms()) {
            Ok(opened) => opened,
            Err(refused) => {
                bus.metrics().nats_envelope("refused");
                dropped.count(refused);
                continue;
            }
        };
        let envelope = match serde_json::from_slice::<Received>(&opened.payload) {
            Ok(envelope) => envelope,
            // Sealed with our key, yet not an envelope: a node of
            // another version. Nothing can be done with it.
            Err(_) => {
                bus.metrics().nats_envelope("refused");
                dropped.unreadable += 1;
                dropped.maybe_report();
                continue;
            }
        };
        opener.forget(FORGET_NODE);
        bus.metrics().nats_envelope("received");
        let heartbeat = envelope.events.is_empty();
        let mut missed = heard.missed(&opened.node, envelope.seq, heartbeat);
        if !heartbeat {
            match decode(&bus, &envelope) {
                Some(events) => bus.deliver_remote(&opened.node, events),
                // What could not be read is re-read from the store.
                None => {
                    dropped.unreadable += 1;
                    dropped.maybe_report();
                    missed = true;
                }
            }
        }
        if missed {
            bus.metrics().nats_gaps.inc();
            if gaps.note(std::time::Instant::now()) {
                tracing::warn!(node = %opened.node, "missed events from another node; re-reading from the store");
            }
            bus.resync();
        }
    }
    dropped.report();
    tracing::warn!("the NATS subscription ended");
}

/// The events of `envelope` that someone on this node follows, decoded; a
/// chat's events that nobody here follows are passed over still encoded
/// (with several nodes each receives every other node's lines, most of
/// them for chats it has no connection to). `None` if one to decode does
/// not decode (a node of another version).
fn decode(bus: &Bus, envelope: &Received) -> Option<Vec<Event>> {
    let chats: Vec<Option<SessionId>> =
        (0..envelope.events.len()).map(|i| envelope.to.get(i).copied().flatten()).collect();
    let wanted = bus.follows(&chats);
    let mut events = Vec::with_capacity(envelope.events.len());
    let mut skipped = 0;
    for (raw, wanted) in envelope.events.iter().zip(wanted) {
        if wanted {
            events.push(serde_json::from_str::<Event>(raw.get()).ok()?);
        } else {
            skipped += 1;
        }
    }
    bus.metrics().nats_events_skipped.inc_by(skipped);
    Some(events)
}

/// Each node's latest envelope number, and when it was last heard. Node
/// names are new at every start, so a node silent for `FORGET_NODE`
/// (stopped, or replaced by a restart) is forgotten.
#[derive(Default)]
struct Heard(HashMap<String, (u64, std::time::Instant)>);

impl Heard {
    /// Records envelope `seq` from `node`; whether envelopes were missed
    /// before it.
    fn missed(&mut self, node: &str, seq: u64, heartbeat: bool) -> bool {
        let now = std::time::Instant::now();
        self.0.retain(|_, (_, heard)| now.duration_since(*heard) < FORGET_NODE);
        let before = self.0.get(node).map(|(seq, _)| *seq);
        let missed = match before {
            Some(b) if heartbeat => seq > b,
            Some(b) => seq != b + 1,
            // A node heard of for the first time, or again after it was
            // forgotten: past its first envelope, what it sent before may
            // have been missed.
            None => seq > 1,
        };
        self.0.insert(node.to_owned(), (seq.max(before.unwrap_or(0)), now));
        missed
    }
}

/// Milliseconds since the Unix epoch, by this machine's clock (the seal's
/// time; nodes keep their clocks with NTP).
fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

/// Gaps in other nodes' numbering (each a resync): the first is logged at
/// once, those within [`DROPS_LOGGED_EVERY`] after it are counted and logged
/// together. A NATS link losing envelopes under load would otherwise log a
/// line for each; `refdesk_nats_gaps_total` counts them all.
#[derive(Default)]
struct Gaps {
    /// Gaps since the last one logged, not logged yet.
    unlogged: u64,
    /// When a gap was last logged.
    logged: Option<std::time::Instant>,
}

impl Gaps {
    /// Notes a gap found at `now`; whether to log it now.
    fn note(&mut self, now: std::time::Instant) -> bool {
        if self.logged.is_none_or(|at| now.duration_since(at) >= DROPS_LOGGED_EVERY) {
            self.logged = Some(now);
            return true;
        }
        self.unlogged += 1;
        false
    }

    /// Logs the gaps not logged yet, if any.
    fn report(&mut self) {
        let more = std::mem::take(&mut self.unlogged);
        if more > 0 {
            tracing::warn!(more, "missed events from other nodes again; re-read from the store each time");
        }
    }
}

/// Messages dropped since they were last logged, by reason. What they held
/// is never logged: it may be a forger's text, or (sealed) a patron's.
#[derive(Default)]
struct Dropped {
    not_sealed: u64,
    forged: u64,
    stale: u64,
    replayed: u64,
    unreadable: u64,
    /// The furthest from this node's clock a stale one was, in ms.
    worst_off_ms: i64,
    /// When they were last logged.
    logged: Option<std::time::Instant>,
}

impl Dropped {
    fn count(&mut self, refused: Refused) {
        match refused {
            Refused::NotSealed => self.not_sealed += 1,
            Refused::Forged => self.forged += 1,
            Refused::Stale { off_ms, .. } => {
                self.stale += 1;
                if off_ms.abs() > self.worst_off_ms.abs() {
                    self.worst_off_ms = off_ms;
                }
            }
            Refused::Replayed { .. } => self.replayed += 1,
        }
        self.maybe_report();
    }

    /// Logs now if nothing was logged for a while (the first drop is told
    /// at once; the rest wait for [`Dropped::report`] on the next tick).
    fn maybe_report(&mut self) {
        if self.logged.is_none_or(|at| at.elapsed() >= DROPS_LOGGED_EVERY) {
            self.report();
        }
    }

    /// Logs the counts, if any, and starts again from zero.
    fn report(&mut self) {
        let total = self.not_sealed + self.forged + self.stale + self.replayed + self.unreadable;
        if total == 0 {
            return;
        }
        tracing::warn!(
            total,
            not_sealed = self.not_sealed,
            forged = self.forged,
            stale = self.stale,
            replayed = self.replayed,
            unreadable = self.unreadable,
            "dropped NATS messages that failed the check (not sealed, not opening with nats_key, replayed, or \
             too old): something other than this deployment's nodes publishes on its subject, or a node has \
             another key"
        );
        if self.stale > 0 {
            tracing::warn!(
                off_seconds = self.worst_off_ms / 1000,
                "sealed envelopes from another node were too far from this node's clock: replays, envelopes held up \
                 by a NATS outage (what they held is re-read from the store), or clocks that disagree (keep every \
                 node's clock with NTP)"
            );
        }
        *self = Dropped { logged: Some(std::time::Instant::now()), ..Dropped::default() };
    }
}

/// The client's options: its name, sign-in and TLS, and what it does as
/// it connects and disconnects.
async fn connect_options(
    bus: &Arc<Bus>,
    nats: &NatsOptions,
    sign_in: &SignIn,
    node: &str,
    shown: &str,
) -> AppResult<async_nats::ConnectOptions> {
    // `no_echo`: the server does not send a node its own envelopes back. The
    // node would only drop them (`receive` still does, should one come), and
    // with two nodes that was half of what each one read from NATS.
    let mut options = async_nats::ConnectOptions::new().name(format!("refdesk-{node}")).no_echo();
    options = match sign_in {
        SignIn::Anonymous => options,
        SignIn::Password(user, password) => options.user_and_password(user.clone(), password.clone()),
        SignIn::Token(token) => options.token(token.clone()),
        SignIn::Credentials(file) => options.credentials_file(file).await.map_err(|e| {
            AppError::Internal(format!("cannot use the NATS credentials file {}: {e}", file.display()).into())
        })?,
    };
    if let Some(file) = &nats.ca_file {
        options = options.add_root_certificates(file.clone()).require_tls(true);
    }
    if nats.tls {
        options = options.require_tls(true);
    }
    let (on_event, server) = (bus.clone(), shown.to_owned());
    Ok(options.event_callback(move |event| {
        let (bus, server) = (on_event.clone(), server.clone());
        async move {
            match event {
                async_nats::Event::Connected => {
                    bus.set_link_down(false);
                    tracing::info!("linked to the other nodes over NATS; re-reading from the store");
                    // Watching that began while the link was down is
                    // told to the other nodes now.
                    bus.republish_watchers();
                    bus.resync();
                    // The client renews its subscription as it reconnects;
                    // a second pass covers anything published just then.
                    tokio::spawn(async move {
                        tokio::time::sleep(Duration::from_secs(1)).await;
                        bus.resync();
                    });
                }
                async_nats::Event::Disconnected => {
                    bus.set_link_down(true);
                    tracing::warn!(%server, "lost NATS: until it is back, the node's connections re-read from the database every 5 s what the other nodes would have told")
                }
                // Reconnecting, the client only says what kind of error it met.
                async_nats::Event::ClientError(e) if e.to_string().contains("authorization") => {
                    tracing::error!(%server, error = %e, "the NATS server refuses this node's sign-in; check the NATS user and password, token or credentials file")
                }
                async_nats::Event::ClientError(e) => {
                    tracing::warn!(%server, error = %e, "cannot reach NATS; the node serves its own connections meanwhile")
                }
                other => tracing::debug!(event = %other, "NATS"),
            }
        }
    }))
}

/// Encodes a batch's events, each once, into envelopes of at most about
/// [`ENVELOPE_BYTES`]; and whether one could not be.
fn envelopes(events: Vec<Event>) -> (Vec<Encoded>, bool) {
    let mut out: Vec<Encoded> = Vec::new();
    let mut lost = false;
    let mut size = 0;
    for event in events {
        let raw = match serde_json::value::to_raw_value(&event) {
            Ok(raw) => raw,
            // Plain data always encodes; were one not to, it is told as
            // dropped events are (`lost`): the other nodes see a gap and
            // re-read the store.
            Err(e) => {
                tracing::error!(error = %e, "an event could not be encoded for the other nodes");
                lost = true;
                continue;
            }
        };
        let bytes = raw.get().len();
        if out.is_empty() || size + bytes > ENVELOPE_BYTES {
            out.push(Encoded::default());
            size = 0;
        }
        size += bytes;
        if let Some(last) = out.last_mut() {
            last.to.push(for_chat(&event));
            last.events.push(raw);
        }
    }
    (out, lost)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gaps_are_logged_the_first_at_once_then_together_at_most_every_few_seconds() {
        let (mut gaps, start) = (Gaps::default(), std::time::Instant::now());
        assert!(gaps.note(start), "the first, at once");
        for ms in [1, 500, 9_999] {
            assert!(!gaps.note(start + Duration::from_millis(ms)), "{ms} ms later: counted");
        }
        assert_eq!(gaps.unlogged, 3);
        gaps.report();
        assert_eq!(gaps.unlogged, 0, "logged together, then from zero");
        assert!(gaps.note(start + DROPS_LOGGED_EVERY), "one a while later, at once again");
        assert!(!gaps.note(start + DROPS_LOGGED_EVERY + Duration::from_millis(1)));
    }

    #[test]
    fn secrets_in_a_nats_url_are_not_shown() {
        assert_eq!(redact_url("nats://user:pass@host:4222"), "nats://user:***@host:4222");
        assert_eq!(redact_url("nats://token@host"), "nats://***@host");
        assert_eq!(redact_url("nats://127.0.0.1:4222"), "nats://127.0.0.1:4222");
        assert_eq!(redact_url("postgres://h/db?password=x"), "postgres://h/db?password=***");
        assert_eq!(redact_url("user:pw@host:4222"), "user:***@host:4222");
        // What makes the connection secure is shown, and so kept by whoever
        // saves `refdesk config` as a configuration.
        assert_eq!(
            redact_url("smtp://me:p%40ss@mail:587?tls=required&auth_token=t0k"),
            "smtp://me:***@mail:587?tls=required&auth_token=***"
        );
        assert_eq!(
            redact_url("postgres://u:pw@db/refdesk?sslmode=verify-full&sslpassword=x"),
            "postgres://u:***@db/refdesk?sslmode=verify-full&sslpassword=***"
        );
        // A password holding an unescaped `?` is hidden whole.
        assert_eq!(redact_url("nats://u:p?ss@host"), "nats://u:***@host");
        assert_eq!(redact_url("smtp://u:p/a?s=s@mail:25?tls=required"), "smtp://u:***@mail:25?tls=required");
        // A user name alone stays for PostgreSQL and SMTP (it is a token for
        // NATS); a client certificate's key file is no secret.
        assert_eq!(redact_url("postgres://refdesk@db/refdesk"), "postgres://refdesk@db/refdesk");
        assert_eq!(redact_url("postgres://db/r?sslkey=/etc/k.pem"), "postgres://db/r?sslkey=/etc/k.pem");
        assert!(!holds_hidden_secret(&redact_url("postgres://refdesk@db/refdesk?sslkey=/etc/k.pem")));
        for odd in ["@", "user@", "://", "://@", "n@ts://é@ü?x=@", "?@?", ""] {
            let _ = (redact_url(odd), holds_hidden_secret(odd));
        }
        for shown in ["smtp://me:***@mail:587?tls=required", "nats://***@mail", "postgres://db?password=***"] {
            assert!(holds_hidden_secret(shown), "{shown}");
        }
        for real in ["smtp://me:s3cret@mail:587?tls=required", "nats://127.0.0.1:4222", "smtp://mail?tls=required"] {
            assert!(!holds_hidden_secret(real), "{real}");
        }
    }

    #[test]
    fn the_sign_in_comes_out_of_the_url_decoded() {
        let (addr, sign_in) = NatsOptions::new("nats://me:p%40ss%3Aw@host:4222").server().unwrap();
        assert!(matches!(sign_in, SignIn::Password(u, p) if u == "me" && p == "p@ss:w"));
        assert_eq!(addr.username(), None, "the client never sees it");
        assert_eq!(addr.password(), None);
        assert_eq!(unescape("a%2"), "a%2");
        assert_eq!(unescape("a%+1b"), "a%+1b");
        let (addr, sign_in) = NatsOptions::new("tls://s3cret@host").server().unwrap();
        assert!(matches!(sign_in, SignIn::Token(t) if t == "s3cret"));
        assert!(addr.tls_required(), "tls:// requires TLS");
        let (_, sign_in) = NatsOptions::new("nats://127.0.0.1:4222").server().unwrap();
        assert!(matches!(sign_in, SignIn::Anonymous));
    }

    #[test]
    fn one_way_of_signing_in_and_no_secret_in_what_is_said() {
        let both = NatsOptions { token: Some("t0ken".into()), ..NatsOptions::new("nats://me:hunter2@host") };
        let e = both.check().unwrap_err();
        assert!(e.contains("one way") && !e.contains("hunter2") && !e.contains("t0ken"), "{e}");
        assert!(NatsOptions { user: Some("me".into()), ..NatsOptions::new("nats://host") }.check().is_err());
        assert!(NatsOptions::new("http://host").check().is_err());
        let shown = format!(
            "{:?}",
            NatsOptions {
                user: Some("me".into()),
                password: Some("hunter2".into()),
                ..NatsOptions::new("nats://host")
            }
        );
        assert!(!shown.contains("hunter2"), "{shown}");
    }

    const KEY: &str = "8f1c2a9d4e7b6035a1c4d8e2f9b7a6c3d5e1f0a2b4c6d8e0f1a3b5c7d9e2f4a6";

    #[test]
    fn a_link_needs_one_good_key_and_never_shows_it() {
        let e = NatsOptions::new("nats://host").check().unwrap_err();
        assert!(e.contains("nats_key") && e.contains("32"), "no key: {e}");
        assert!(NatsOptions::with_key("nats://host", KEY).check().is_ok());
        let both = NatsOptions { key_file: Some("/etc/k".into()), ..NatsOptions::with_key("nats://host", KEY) };
        assert!(both.check().unwrap_err().contains("not both"));
        let file_only = NatsOptions { key_file: Some("/etc/k".into()), ..NatsOptions::new("nats://host") };
        assert!(file_only.check().is_ok(), "the file is read when linking");
        assert!(file_only.envelope_key().unwrap_err().contains("/etc/k"));
        let weak = NatsOptions::with_key("nats://host", "s3cret-but-short");
        let e = weak.check().unwrap_err();
        assert!(e.starts_with("nats_key:") && !e.contains("s3cret"), "{e}");
        let shown = format!("{:?}", NatsOptions::with_key("nats://host", KEY));
        assert!(!shown.contains(KEY) && shown.contains("<hidden>"), "{shown}");
    }

    #[tokio::test]
    async fn a_link_without_a_key_is_refused_before_it_connects() {
        // Nothing listens on port 1: the refusal comes before any connection.
        let e = link(Bus::new(), &NatsOptions::new("nats://127.0.0.1:1"), "test.nokey").await.err().unwrap();
        assert!(e.to_string().contains("nats_key"), "{e}");
    }

    #[test]
    fn large_batches_are_split_and_nothing_is_dropped() {
        let big = "x".repeat(100_000);
        let events: Vec<Event> = (0..10)
            .map(|i| Event::SignedOut { staff: refdesk_domain::ids::StaffId(i) })
            .chain((0..6).map(|_| Event::Typing {
                ctx: refdesk_domain::chat::SessionContext {
                    id: refdesk_domain::ids::SessionId(1),
                    placement: refdesk_domain::org::Placement {
                        library: refdesk_domain::ids::LibraryId(1),
                        institution: refdesk_domain::ids::InstitutionId(1),
                        cooperative: refdesk_domain::ids::CooperativeId(1),
                    },
                    librarian: None,
                    question: None,
                    referred: None,
                    members: Vec::new(),
                    version: 0,
                },
                audience: refdesk_domain::chat::Audience::Everyone,
                who: big.clone(),
                by: None,
                on: false,
            }))
            .collect();
        let (split, lost) = envelopes(events.clone());
        assert!(!lost);
        assert!(split.len() >= 3, "{} envelopes", split.len());
        let decoded: Vec<Event> =
            split.iter().flat_map(|e| &e.events).map(|raw| serde_json::from_str(raw.get()).unwrap()).collect();
        assert_eq!(decoded, events, "in order, nothing lost");
        for e in &split {
            assert_eq!(e.to.len(), e.events.len(), "a chat or none beside each event");
            let json = serde_json::to_vec(&Envelope { seq: 1, events: &e.events, to: &e.to }).unwrap();
            assert!(json.len() < 1024 * 1024);
        }
        let typing = split.iter().flat_map(|e| &e.to).filter(|to| **to == Some(SessionId(1))).count();
        assert_eq!(typing, 6, "typing stopped is for its chat's watchers alone; the rest for everyone");
        // Typing begun is for every node (each decides whether the chat is idle).
        let mut begun = events[10].clone();
        if let Event::Typing { on, .. } = &mut begun {
            *on = true;
        }
        assert_eq!(for_chat(&begun), None);
        assert_eq!(for_chat(&events[10]), Some(SessionId(1)));
    }
}
