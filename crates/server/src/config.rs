//! Configuration, layered: defaults → TOML file → `REFDESK_…` environment
//! variables (every setting has one: see [`crate::settings`]) → command-line
//! flags (applied by the binary; `--set name=value` for any setting). Every field has a
//! safe default, so `refdesk serve` needs none of it.

use crate::settings::named_at;
use anyhow::{bail, Context};
use refdesk_app::mail::MailConfig;
use refdesk_app::Limits;
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// How log lines are written (see [`Config::log_format`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Lines for a person to read.
    #[default]
    Text,
    /// One JSON object a line.
    Json,
}

impl std::str::FromStr for LogFormat {
    type Err = anyhow::Error;

    fn from_str(s: &str) -> anyhow::Result<LogFormat> {
        match s {
            "text" => Ok(LogFormat::Text),
            "json" => Ok(LogFormat::Json),
            other => bail!("log_format {other:?}: use text or json"),
        }
    }
}

/// The server's configuration. Its `Debug` hides the passwords URLs may hold.
#[derive(Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Address to listen on.
    pub listen: SocketAddr,
    /// Folder for the SQLite database and, with no SMTP server configured, the e-mail files (`mail/*.eml`).
    pub data_dir: PathBuf,
    /// The database. Unset: the embedded SQLite file in `data_dir` (one
    /// node). A `postgres://user@host:port/db` URL: PostgreSQL, which
    /// several nodes can share.
    pub database_url: Option<String>,
    /// PostgreSQL connections each node keeps at most.
    pub database_connections: u32,
    /// The NATS server that links several nodes (`nats://host:4222`, or
    /// `tls://host:4222` to require TLS). A user and password
    /// (`nats://user:password@host:4222`) or a token (`nats://token@host`)
    /// may be in it. Unset: one node, with the in-process bus. Needs
    /// `database_url`.
    pub nats_url: Option<String>,
    /// The NATS user, when `nats_url` holds none (with `nats_password`).
    pub nats_user: Option<String>,
    /// The NATS user's password.
    pub nats_password: Option<String>,
    /// A NATS token, when `nats_url` holds none.
    pub nats_token: Option<String>,
    /// A NATS `.creds` file (user JWT and NKey seed), for servers run with
    /// accounts from an operator.
    pub nats_credentials_file: Option<PathBuf>,
    /// PEM certificates of the CAs to trust for NATS instead of the
    /// system's; implies TLS.
    pub nats_ca_file: Option<PathBuf>,
    /// Require TLS to NATS (as a `tls://` URL does).
    pub nats_tls: bool,
    /// The NATS subject the nodes of one deployment share (another
    /// deployment on the same NATS server uses another).
    pub nats_subject: String,
    /// The key every node of the deployment shares to seal what it sends
    /// over NATS (encrypted and authenticated; a node drops what does not
    /// open with it): at least 32 random bytes in base64 or hexadecimal,
    /// e.g. `openssl rand -base64 32`. Required with `nats_url` (this or
    /// `nats_key_file`). Never printed.
    pub nats_key: Option<String>,
    /// A file holding that key (readable by refdesk's user only), instead
    /// of `nats_key`.
    pub nats_key_file: Option<PathBuf>,
    /// A second key that opens what other nodes send, never used to seal:
    /// set while the deployment changes its key one node at a time (the
    /// new key, then the old one; README, "The nodes' key"). Never printed.
    pub nats_second_key: Option<String>,
    /// A file holding that second key, instead of `nats_second_key`.
    pub nats_second_key_file: Option<PathBuf>,
    /// The address patrons and staff reach refdesk at, e.g.
    /// `https://ask.coop.example.org` (behind a reverse proxy, the proxy's).
    /// Pages that change something must come from this origin; cookies are
    /// `Secure` when it is https; e-mails and the widget snippet link to it.
    /// Unset: the `Host` each request names.
    pub public_url: Option<String>,
    /// Mark cookies `Secure` (always so when `public_url` is https).
    pub secure_cookies: bool,
    /// Reverse proxies whose `X-Forwarded-For` is believed: behind one, the
    /// rate limits count the client's address, not the proxy's. Each an
    /// address, or a network (`10.0.0.0/8`) for proxies whose addresses
    /// change.
    pub trusted_proxies: Vec<crate::proxy::ProxyNet>,
    /// On SIGTERM or Ctrl-C, how long the node goes on serving everything
    /// while `/readyz` answers 503 `draining`, so that load balancers stop
    /// sending it new clients first. 0: no drain period. On SQLite, whose
    /// node is the only one, there is none whatever this says.
    pub drain_seconds: u64,
    /// After the drain period, how long closing may take at most: every
    /// WebSocket gets a close frame (1001), requests under way finish, the
    /// database closes. Past it, the process exits anyway (and says so).
    pub shutdown_seconds: u64,
    /// Where `/metrics` is served. Unset: on `listen`, beside the API.
    /// Set (e.g. `127.0.0.1:9090`): on that address only, and not on
    /// `listen`, so that it can be kept private to the monitoring network.
    pub metrics_listen: Option<SocketAddr>,
    /// How log lines are written to standard error: `text` (for a person;
    /// coloured only on a terminal) or `json` (one object a line, for a log
    /// collector). Which lines: `REFDESK_LOG` (e.g. `info`, `debug`).
    pub log_format: LogFormat,
    /// Limits and timings.
    pub limits: Limits,
    /// E-mail to patrons.
    pub mail: MailConfig,
    /// Where each setting set by name last came from (`REFDESK_…`, `--set
    /// …`), for the errors of [`Config::validate`]; the file's own errors
    /// name its lines.
    #[serde(skip)]
    pub sources: std::collections::BTreeMap<String, String>,
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        use refdesk_app::nats::redact_url;
        f.debug_struct("Config")
            .field("listen", &self.listen)
            .field("data_dir", &self.data_dir)
            .field("database_url", &self.database_url.as_deref().map(redact_url))
            .field("database_connections", &self.database_connections)
            .field("nats_url", &self.nats_url.as_deref().map(redact_url))
            .field("nats_user", &self.nats_user)
            .field("nats_password", &self.nats_password.as_ref().map(|_| "<hidden>"))
            .field("nats_token", &self.nats_token.as_ref().map(|_| "<hidden>"))
            .field("nats_credentials_file", &self.nats_credentials_file)
            .field("nats_ca_file", &self.nats_ca_file)
            .field("nats_tls", &self.nats_tls)
            .field("nats_subject", &self.nats_subject)
            .field("nats_key", &self.nats_key.as_ref().map(|_| "<hidden>"))
            .field("nats_key_file", &self.nats_key_file)
            .field("nats_second_key", &self.nats_second_key.as_ref().map(|_| "<hidden>"))
            .field("nats_second_key_file", &self.nats_second_key_file)
            .field("public_url", &self.public_url)
            .field("secure_cookies", &self.secure_cookies)
            .field("trusted_proxies", &self.trusted_proxies)
            .field("drain_seconds", &self.drain_seconds)
            .field("shutdown_seconds", &self.shutdown_seconds)
            .field("metrics_listen", &self.metrics_listen)
            .field("log_format", &self.log_format)
            .field("limits", &self.limits)
            .field("mail", &self.mail)
            .finish()
    }
}

/// The mail table's setting unset by default, shown in it.
const MAIL_UNSET_BY_DEFAULT: &str = r#"# Unset by default: e-mail is written to <data_dir>/mail/*.eml. An SMTP server, with TLS
# required (smtps://, or tls=required with STARTTLS) and its sign-in:
# smtp_url = "smtp://refdesk:password@mail.example.org:587?tls=required"
"#;

/// The top-level settings that are unset by default, as `refdesk config`
/// shows them.
const UNSET_BY_DEFAULT: &str = r#"
# Unset by default. The address patrons and staff reach refdesk at (behind a reverse proxy, the
# proxy's): only pages from it may change anything; https makes cookies Secure; e-mails and the
# widget snippet link to it.
# public_url = "https://ask.coop.example.org"
# Unset by default. PostgreSQL, shared by several nodes; TLS as libpq: sslmode=disable, prefer (the default:
# TLS if offered, unverified), require (unverified), verify-full (checked against sslrootcert, and the host's
# name; verify-ca checks the name too).
# database_url = "postgres://refdesk:secret@db.example.org/refdesk?sslmode=verify-full&sslrootcert=/etc/refdesk/db-ca.pem"
# The NATS link between nodes: nats://host:4222, or tls://host:4222 to require TLS. Sign in one way:
# a user and password or a token (in the URL, or below), or a credentials file.
# nats_url = "tls://nats.example.org:4222"
# nats_user = "refdesk"
# nats_password = "secret"
# nats_token = "secret"
# nats_credentials_file = "/etc/refdesk/nats.creds"
# nats_ca_file = "/etc/refdesk/nats-ca.pem"   # CAs to trust instead of the system's; implies TLS
# Required with nats_url: the key all nodes share to seal (encrypt and authenticate) what crosses NATS,
# at least 32 random bytes in base64 or hex (`openssl rand -base64 32`). One of:
# nats_key = "…"                              # or REFDESK_NATS_KEY
# nats_key_file = "/etc/refdesk/nats.key"      # or REFDESK_NATS_KEY_FILE; mode 0600
# While the key changes, node by node: a second key that opens what other nodes send (never seals).
# nats_second_key_file = "/etc/refdesk/nats-old.key"   # or nats_second_key, REFDESK_NATS_SECOND_KEY(_FILE)
# Unset by default: /metrics is served on `listen`. Set, it is served on this address only
# (keep it private to the monitoring network). Or REFDESK_METRICS_LISTEN.
# metrics_listen = "127.0.0.1:9090"
"#;

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            data_dir: PathBuf::from("data"),
            database_url: None,
            database_connections: 16,
            nats_url: None,
            nats_user: None,
            nats_password: None,
            nats_token: None,
            nats_credentials_file: None,
            nats_ca_file: None,
            nats_tls: false,
            nats_subject: "refdesk.events".into(),
            nats_key: None,
            nats_key_file: None,
            nats_second_key: None,
            nats_second_key_file: None,
            public_url: None,
            secure_cookies: false,
            trusted_proxies: Vec::new(),
            drain_seconds: 10,
            shutdown_seconds: 15,
            metrics_listen: None,
            log_format: LogFormat::Text,
            limits: Limits::default(),
            mail: MailConfig::default(),
            sources: Default::default(),
        }
    }
}

/// Settings whose upper bound is another setting: `(setting, its bound)`.
const BOUNDED_BY: [(&str, &str); 1] = [("limits.block_hours", "limits.max_block_hours")];

/// Every problem [`Config::validate`] found, one a line when shown.
#[derive(Debug)]
pub struct Problems(pub Vec<String>);

impl std::fmt::Display for Problems {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0.join("\n"))
    }
}

impl std::error::Error for Problems {}

impl Config {
    /// refdesk's origin (`https://host[:port]`), if a public URL is set.
    pub fn public_origin(&self) -> Option<String> {
        self.public_url.as_deref().and_then(|u| crate::origin::origin_of(u.trim_end_matches('/')))
    }

    /// Whether cookies get `Secure`: asked for, or served over https.
    pub fn cookies_secure(&self) -> bool {
        self.secure_cookies || self.public_origin().is_some_and(|o| o.starts_with("https://"))
    }

    /// Defaults, then the TOML file (if any), then the environment.
    pub fn load(file: Option<&Path>) -> anyhow::Result<Config> {
        let config = Config::load_unchecked(file)?;
        config.validate()?;
        Ok(config)
    }

    /// [`Config::load`] without the check, for a caller that applies flags
    /// of its own first and then calls [`Config::validate`]: a setting may
    /// be valid only with a flag's (`REFDESK_NATS_URL` needs a database
    /// URL, which `--database-url` may give).
    pub fn load_unchecked(file: Option<&Path>) -> anyhow::Result<Config> {
        let mut config = match file {
            Some(path) => {
                let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
                let mut config = Config::parse_toml(&text)
                    .with_context(|| format!("in the configuration file {}", path.display()))?;
                config.paths_from(path.parent().unwrap_or(Path::new(".")), &text);
                config
            }
            None => Config::default(),
        };
        config.apply_env_settings(|k| std::env::var(k).ok())?;
        config.apply_env(|k| std::env::var(k).ok())?;
        Ok(config)
    }

    /// A relative path the file `text` sets is taken from the file's
    /// folder `dir`, not from wherever a command is run: `data_dir = "data"`
    /// in /etc/refdesk/refdesk.toml is /etc/refdesk/data for `serve`, for
    /// `setup` and for the nightly backup alike (run from three folders, a
    /// relative path was three data folders, two of them empty).
    fn paths_from(&mut self, dir: &Path, text: &str) {
        let in_file = |name: &str| crate::settings::line_of(text, name).is_some();
        let from_dir = |p: &mut PathBuf| {
            if p.is_relative() {
                *p = dir.join(&*p);
            }
        };
        if in_file("data_dir") {
            from_dir(&mut self.data_dir);
        }
        for (name, path) in [
            ("nats_credentials_file", &mut self.nats_credentials_file),
            ("nats_ca_file", &mut self.nats_ca_file),
            ("nats_key_file", &mut self.nats_key_file),
            ("nats_second_key_file", &mut self.nats_second_key_file),
        ] {
            if let Some(p) = path.as_mut().filter(|_| in_file(name)) {
                from_dir(p);
            }
        }
    }

    /// Parses a configuration file. An error names the line and what is
    /// wrong, never the line's text: it may hold a password (in a URL).
    pub fn parse_toml(text: &str) -> anyhow::Result<Config> {
        toml::from_str(text).map_err(|e| {
            let line = e.span().map(|s| text[..s.start.min(text.len())].matches('\n').count() + 1);
            let what = crate::settings::with_hint(e.message().trim_end_matches('.'));
            match line {
                Some(n) => anyhow::anyhow!("line {n}: {what}"),
                None => anyhow::anyhow!("{what}"),
            }
        })
    }

    /// Applies `REFDESK_LISTEN`, `REFDESK_DATA_DIR`, `REFDESK_DATABASE_URL`,
    /// `REFDESK_NATS_URL`, `REFDESK_NATS_USER`, `REFDESK_NATS_PASSWORD`,
    /// `REFDESK_NATS_TOKEN`, `REFDESK_NATS_CREDENTIALS_FILE`,
    /// `REFDESK_NATS_CA_FILE`, `REFDESK_NATS_TLS`,
    /// `REFDESK_NATS_SUBJECT`, `REFDESK_NATS_KEY`, `REFDESK_NATS_KEY_FILE`,
    /// `REFDESK_NATS_SECOND_KEY`, `REFDESK_NATS_SECOND_KEY_FILE`,
    /// `REFDESK_PUBLIC_URL`, `REFDESK_METRICS_LISTEN`, `REFDESK_LOG_FORMAT`,
    /// `REFDESK_TRUSTED_PROXIES`
    /// (comma-separated), `REFDESK_SECURE_COOKIES`,
    /// `REFDESK_SMTP_URL`, `REFDESK_MAIL_FROM`, `REFDESK_MAX_MESSAGE_CHARS`
    /// the two rate limits, the two waiting-chat caps
    /// (`REFDESK_MAX_WAITING_PER_ADDRESS`, `REFDESK_MAX_WAITING_PER_LIBRARY`)
    /// and `REFDESK_MAX_CONNECTIONS`.
    pub fn apply_env(&mut self, get: impl Fn(&str) -> Option<String>) -> anyhow::Result<()> {
        for (var, path) in ENV_SET {
            if get(var).is_some() {
                self.sources.insert((*path).to_owned(), (*var).to_owned());
            }
        }
        if let Some(v) = get("REFDESK_LISTEN") {
            self.listen =
                v.parse().with_context(|| format!("REFDESK_LISTEN={v:?} is not an address like 127.0.0.1:8080"))?;
        }
        if let Some(v) = get("REFDESK_DATA_DIR") {
            self.data_dir = v.into();
        }
        if let Some(v) = get("REFDESK_DATABASE_URL") {
            self.database_url = Some(v).filter(|v| !v.is_empty());
        }
        self.apply_nats_env(&get)?;
        if let Some(v) = get("REFDESK_PUBLIC_URL") {
            self.public_url = Some(v).filter(|v| !v.is_empty());
        }
        if let Some(v) = get("REFDESK_TRUSTED_PROXIES") {
            self.trusted_proxies = v
                .split(',')
                .map(str::trim)
                .filter(|a| !a.is_empty())
                .map(|a| a.parse().map_err(|e| anyhow::anyhow!("REFDESK_TRUSTED_PROXIES: {e}")))
                .collect::<anyhow::Result<_>>()?;
        }
        if let Some(v) = get("REFDESK_SECURE_COOKIES") {
            self.secure_cookies =
                v.parse().with_context(|| format!("REFDESK_SECURE_COOKIES={v:?} must be true or false"))?;
        }
        self.apply_ops_env(&get)?;
        // Its own name and the one every setting's follows (unset by
        // default, it has no `REFDESK_<NAME>` of the settings').
        match (get("REFDESK_SMTP_URL"), get("REFDESK_MAIL_SMTP_URL")) {
            (Some(a), Some(b)) if a != b => {
                anyhow::bail!(
                    "REFDESK_SMTP_URL and REFDESK_MAIL_SMTP_URL both set mail.smtp_url, to different values: set one \
                     of them"
                )
            }
            (Some(v), _) | (None, Some(v)) => self.mail.smtp_url = Some(v).filter(|v| !v.is_empty()),
            (None, None) => {}
        }
        if let Some(v) = get("REFDESK_MAIL_FROM") {
            self.mail.from = v;
        }
        for (var, field) in [
            ("REFDESK_LOGINS_PER_MINUTE", &mut self.limits.logins_per_minute),
            ("REFDESK_STARTS_PER_MINUTE", &mut self.limits.starts_per_minute),
            ("REFDESK_CHATS_PER_ADDRESS_PER_DAY", &mut self.limits.chats_per_address_per_day),
            ("REFDESK_MAX_WAITING_PER_ADDRESS", &mut self.limits.max_waiting_per_address),
            ("REFDESK_MAX_WAITING_PER_LIBRARY", &mut self.limits.max_waiting_per_library),
        ] {
            if let Some(v) = get(var) {
                *field = v.parse().with_context(|| format!("{var}={v:?} must be a number"))?;
            }
        }
        if let Some(v) = get("REFDESK_MAX_CONNECTIONS") {
            self.limits.max_connections =
                v.parse().with_context(|| format!("REFDESK_MAX_CONNECTIONS={v:?} must be a number"))?;
        }
        if let Some(v) = get("REFDESK_MAX_MESSAGE_CHARS") {
            self.limits.max_message_chars =
                v.parse().with_context(|| format!("REFDESK_MAX_MESSAGE_CHARS={v:?} must be a number"))?;
        }
        Ok(())
    }

    /// The metrics' and logs' part of [`Config::apply_env`]. An empty
    /// `REFDESK_METRICS_LISTEN` means unset, as for the URLs.
    fn apply_ops_env(&mut self, get: &impl Fn(&str) -> Option<String>) -> anyhow::Result<()> {
        if let Some(v) = get("REFDESK_METRICS_LISTEN") {
            self.metrics_listen =
                match v.as_str() {
                    "" => None,
                    v => Some(v.parse().with_context(|| {
                        format!("REFDESK_METRICS_LISTEN={v:?} is not an address like 127.0.0.1:9090")
                    })?),
                };
        }
        if let Some(v) = get("REFDESK_LOG_FORMAT") {
            self.log_format = v.parse().context("REFDESK_LOG_FORMAT")?;
        }
        Ok(())
    }

    /// The NATS link's part of [`Config::apply_env`].
    fn apply_nats_env(&mut self, get: &impl Fn(&str) -> Option<String>) -> anyhow::Result<()> {
        if let Some(v) = get("REFDESK_NATS_URL") {
            self.nats_url = Some(v).filter(|v| !v.is_empty());
        }
        // Empty means unset, as for the URLs.
        for (var, field) in [
            ("REFDESK_NATS_USER", &mut self.nats_user),
            ("REFDESK_NATS_PASSWORD", &mut self.nats_password),
            ("REFDESK_NATS_TOKEN", &mut self.nats_token),
            ("REFDESK_NATS_KEY", &mut self.nats_key),
            ("REFDESK_NATS_SECOND_KEY", &mut self.nats_second_key),
        ] {
            if let Some(v) = get(var) {
                *field = Some(v).filter(|v| !v.is_empty());
            }
        }
        for (var, field) in [
            ("REFDESK_NATS_CREDENTIALS_FILE", &mut self.nats_credentials_file),
            ("REFDESK_NATS_CA_FILE", &mut self.nats_ca_file),
            ("REFDESK_NATS_KEY_FILE", &mut self.nats_key_file),
            ("REFDESK_NATS_SECOND_KEY_FILE", &mut self.nats_second_key_file),
        ] {
            if let Some(v) = get(var) {
                *field = Some(v).filter(|v| !v.is_empty()).map(PathBuf::from);
            }
        }
        if let Some(v) = get("REFDESK_NATS_TLS") {
            self.nats_tls = v.parse().with_context(|| format!("REFDESK_NATS_TLS={v:?} must be true or false"))?;
        }
        if let Some(v) = get("REFDESK_NATS_SUBJECT") {
            self.nats_subject = v;
        }
        Ok(())
    }

    /// What works but is unsafe on the open internet: said at start (a
    /// `warn` line each) and by `config --check`, never refused (a trial on
    /// a private network is not wrong).
    pub fn advice(&self) -> Vec<String> {
        let mut advice = Vec::new();
        let url = self.public_url.as_deref().and_then(|u| u.parse::<axum::http::Uri>().ok());
        if let Some(url) = url.filter(|u| u.scheme_str() == Some("http")) {
            let host = url.host().unwrap_or("").trim_matches(['[', ']']);
            let local = host.eq_ignore_ascii_case("localhost")
                || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback());
            if !local {
                advice.push(format!(
                    "public_url is plain http ({}): staff passwords and sign-in cookies would cross the network \
                     unencrypted; serve refdesk over https behind a TLS proxy (README, \"The public address, TLS and a \
                     reverse proxy\")",
                    self.public_origin().unwrap_or_default()
                ));
            }
        }
        if !self.trusted_proxies.is_empty() && self.public_url.is_none() {
            let cookies = if self.cookies_secure() { "" } else { " and the cookies are not Secure" };
            advice.push(format!(
                "trusted_proxies is set but public_url is not: behind a proxy the pages then take sign-ins at \
                 whatever Host it forwards{cookies}; set public_url to the https address patrons and staff use"
            ));
        }
        advice
    }

    /// Refuses configurations that cannot work, saying every problem found,
    /// one a line (an operator fixes them all at once, not one per check).
    /// An error about a setting that a variable or a flag set names it
    /// (`(from REFDESK_PUBLIC_URL)`): the file's line is not at fault then.
    pub fn validate(&self) -> anyhow::Result<()> {
        let problems: Vec<String> = self
            .validate_settings()
            .into_iter()
            .map(|e| {
                let message = format!("{e:#}");
                if message.contains(", from ") {
                    return message;
                }
                let named = self.sources.iter().filter_map(|(path, src)| Some((named_at(&message, path)?, src))).min();
                match named {
                    Some((_, src)) => format!("{message} (from {src})"),
                    None => message,
                }
            })
            .collect();
        if problems.is_empty() {
            return Ok(());
        }
        Err(Problems(problems).into())
    }

    /// Every problem of the settings (none: they can work).
    fn validate_settings(&self) -> Vec<anyhow::Error> {
        let mut problems = Vec::new();
        self.message_problems(&mut problems);
        let l = &self.limits;
        // Upper bounds too: nothing here may overflow a computation or a
        // buffer (a day of sign-off, a year of sign-in, a 16 MiB frame…).
        let bounded = [
            // A day at most: a drain or a shutdown longer than that is a typo.
            ("drain_seconds", self.drain_seconds, 0, 24 * 3600),
            ("shutdown_seconds", self.shutdown_seconds, 1, 24 * 3600),
            ("limits.signoff_minutes", l.signoff_minutes, 1, 24 * 60),
            ("limits.idle_chat_minutes", l.idle_chat_minutes, 1, 24 * 60),
            ("limits.login_hours", l.login_hours, 1, 24 * 366),
            ("limits.rollup_seconds", l.rollup_seconds, 0, 24 * 3600),
            ("limits.max_frame_bytes", l.max_frame_bytes as u64, 1024, 16 << 20),
            ("limits.connection_queue", l.connection_queue as u64, 1, 1 << 16),
            ("limits.frames_per_second", l.frames_per_second as u64, 1, 100_000),
            ("limits.frame_burst", l.frame_burst as u64, 1, 100_000),
            (
                "limits.patron_frames_per_second_per_address",
                l.patron_frames_per_second_per_address as u64,
                1,
                1_000_000,
            ),
            ("limits.logins_per_minute", l.logins_per_minute as u64, 1, 100_000),
            ("limits.failed_logins_per_account_per_hour", l.failed_logins_per_account_per_hour as u64, 1, 1_000_000),
            ("limits.starts_per_minute", l.starts_per_minute as u64, 1, 100_000),
            ("limits.patron_posts_per_minute", l.patron_posts_per_minute as u64, 1, 100_000),
            ("limits.patron_reads_per_minute", l.patron_reads_per_minute as u64, 1, 100_000),
            ("limits.bad_credentials_per_minute", l.bad_credentials_per_minute as u64, 1, 100_000),
            ("limits.answers_per_recipient_per_day", l.answers_per_recipient_per_day as u64, 1, 1_000_000),
            ("limits.answers_per_staff_per_day", l.answers_per_staff_per_day as u64, 1, 1_000_000),
            ("limits.header_read_seconds", l.header_read_seconds, 1, 3600),
            ("limits.idle_seconds", l.idle_seconds, 1, 24 * 3600),
            ("limits.body_seconds", l.body_seconds, 1, 3600),
            ("limits.max_connections", l.max_connections as u64, 0, 1 << 20),
            ("limits.connections_per_address", l.connections_per_address as u64, 1, 1 << 20),
            ("limits.sockets_per_chat", l.sockets_per_chat as u64, 1, 1000),
            ("limits.sockets_per_sign_in", l.sockets_per_sign_in as u64, 1, 1000),
            ("limits.sign_ins_per_account", u64::from(l.sign_ins_per_account), 1, 1000),
            ("limits.sockets_per_address", l.sockets_per_address as u64, 1, 1 << 20),
            ("limits.sockets_opened_per_minute", l.sockets_opened_per_minute as u64, 1, 1_000_000),
            ("limits.ws_ping_seconds", l.ws_ping_seconds, 1, 3600),
            ("limits.ws_send_seconds", l.ws_send_seconds, 1, 3600),
            ("limits.replay_page", l.replay_page as u64, 1, 10_000),
            ("limits.max_waiting_per_library", l.max_waiting_per_library as u64, 1, 1_000_000),
            ("limits.max_waiting_per_address", l.max_waiting_per_address as u64, 1, 1_000_000),
            ("limits.waiting_expires_minutes", l.waiting_expires_minutes, 1, 7 * 24 * 60),
            ("limits.patron_away_seconds", l.patron_away_seconds, 0, 3600),
            ("limits.max_block_hours", l.max_block_hours, 1, 24 * 366),
            ("limits.block_hours", l.block_hours, 1, l.max_block_hours),
            ("limits.patron_mails_per_recipient_per_day", l.patron_mails_per_recipient_per_day as u64, 0, 10_000),
            ("limits.patron_mails_per_address_per_hour", l.patron_mails_per_address_per_hour as u64, 0, 100_000),
            ("limits.form_questions_per_address_per_day", l.form_questions_per_address_per_day as u64, 1, 1_000_000),
            ("limits.chats_per_address_per_day", l.chats_per_address_per_day as u64, 1, 100_000_000),
            ("limits.starts_per_library_per_day", l.starts_per_library_per_day as u64, 1, 100_000_000),
            ("limits.patron_lines_before_accept", l.patron_lines_before_accept as u64, 0, 100_000),
            ("limits.patron_chars_before_accept", l.patron_chars_before_accept as u64, 0, 100_000_000),
            ("limits.patron_chars_per_chat", u64::from(l.patron_chars_per_chat), 1, 100_000_000),
            ("limits.max_chat_lines", l.max_chat_lines as u64, 10, 1_000_000),
            ("limits.max_question_entries", l.max_question_entries as u64, 10, 100_000),
            ("limits.ims_per_staff_per_day", l.ims_per_staff_per_day as u64, 1, 1_000_000),
            ("limits.staff_lines_per_day", l.staff_lines_per_day as u64, 1, 10_000_000),
            ("limits.staff_reads_per_second", l.staff_reads_per_second as u64, 1, 1_000_000),
        ];
        problems.extend(
            bounded.into_iter().filter_map(|(name, value, min, max)| self.in_range(name, value, min, max).err()),
        );
        problems.extend(self.mail.problems().into_iter().map(anyhow::Error::msg));
        self.address_problems(&mut problems);
        self.link_problems(&mut problems);
        problems
    }

    /// A message's length, and the frame that must hold it.
    fn message_problems(&self, problems: &mut Vec<anyhow::Error>) {
        let l = &self.limits;
        if l.max_message_chars == 0 || l.max_message_chars > 100_000 {
            let it = l.max_message_chars;
            let from = self.source_of("limits.max_message_chars");
            problems.push(anyhow::anyhow!("limits.max_message_chars must be between 1 and 100000 (it is {it}{from})"));
        }
        // A character is at most 4 bytes in UTF-8 and may be escaped in JSON;
        // a full-length message must always fit in a frame.
        let least = l.max_message_chars.saturating_mul(6).saturating_add(1024);
        if l.max_frame_bytes < least {
            let (it, chars) = (l.max_frame_bytes, l.max_message_chars);
            problems.push(anyhow::anyhow!(
                "limits.max_frame_bytes must be at least 6 × max_message_chars + 1024, so a full-length message always \
                 fits: with max_message_chars = {chars} at least {least} (it is {it}{})",
                self.source_of("limits.max_frame_bytes")
            ));
        }
    }

    /// The addresses refdesk answers on and is known by.
    fn address_problems(&self, problems: &mut Vec<anyhow::Error>) {
        if self.metrics_listen.is_some_and(|m| m == self.listen) {
            problems.push(anyhow::anyhow!(
                "metrics_listen must differ from listen (leave it unset to serve /metrics on listen)"
            ));
        }
        if let Some(url) = &self.public_url {
            let origin = crate::origin::origin_of(url.trim_end_matches('/'));
            let bare = url.trim_end_matches('/').splitn(4, '/').nth(3).is_none();
            if origin.is_none() || !bare || url.contains(['?', '#']) || !reachable(url) {
                problems.push(anyhow::anyhow!(
                    "public_url must be like https://ask.example.org (http or https, a host name or IP address, an \
                     optional port from 1 to 65535, no path; a name in other letters than a-z in its xn-- form)"
                ));
            }
        }
    }

    /// The data folder, database and NATS part of [`Config::validate`]:
    /// where the data goes, and settings that only make sense together.
    fn link_problems(&self, problems: &mut Vec<anyhow::Error>) {
        // An empty value (`REFDESK_DATA_DIR=` in a unit file) is no folder.
        if self.data_dir.as_os_str().to_string_lossy().trim().is_empty() {
            problems.push(anyhow::anyhow!("data_dir is empty: give the data folder, such as /var/lib/refdesk"));
        } else if self.data_dir.exists() && !self.data_dir.is_dir() {
            problems.push(anyhow::anyhow!("data_dir {} is a file, not a folder", self.data_dir.display()));
        }
        // What `serve` and `setup` would refuse, said by the check before a
        // restart: refdesk makes the data folder, not those above (on
        // PostgreSQL too: it holds the erasure journal).
        let above = self.data_dir.parent().filter(|p| !p.as_os_str().is_empty());
        if !self.data_dir.exists() && above.is_some_and(|p| !p.is_dir()) {
            problems.push(anyhow::anyhow!(
                "data_dir {}: the folder above it does not exist (is data_dir right? refdesk creates the data \
                 folder, not the folders above it)",
                self.data_dir.display()
            ));
        }
        let urls = [
            ("database_url", &self.database_url),
            ("nats_url", &self.nats_url),
            ("mail.smtp_url", &self.mail.smtp_url),
        ];
        for (name, url) in urls {
            if url.as_deref().is_some_and(refdesk_app::nats::holds_hidden_secret) {
                problems.push(anyhow::anyhow!("{name} holds *** where its password or token goes (`refdesk config` hides them): write the real one"));
            }
        }
        if let Some(url) = &self.database_url {
            if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
                problems.push(anyhow::anyhow!("database_url must be a postgres:// URL (leave it unset for the embedded SQLite database in data_dir)"));
            }
        }
        if !(1..=1000).contains(&self.database_connections) {
            problems.push(anyhow::anyhow!("database_connections must be between 1 and 1000"));
        }
        match self.nats() {
            Some(nats) => {
                // An error about the key names its own setting; the rest are the link's.
                if let Err(e) = nats.check() {
                    let named = if e.starts_with("nats_") { e } else { format!("nats_url: {e}") };
                    problems.push(anyhow::anyhow!(named));
                }
                if self.database_url.is_none() {
                    problems.push(anyhow::anyhow!(
                        "nats_url links several nodes, which must share a PostgreSQL database: set database_url too"
                    ));
                }
            }
            None => {
                let set = self.nats_user.is_some()
                    || self.nats_password.is_some()
                    || self.nats_token.is_some()
                    || self.nats_credentials_file.is_some()
                    || self.nats_ca_file.is_some()
                    || self.nats_key.is_some()
                    || self.nats_key_file.is_some()
                    || self.nats_second_key.is_some()
                    || self.nats_second_key_file.is_some()
                    || self.nats_tls;
                if set {
                    problems
                        .push(anyhow::anyhow!("the nats_… settings are for the NATS link, but nats_url is not set"));
                }
            }
        }
        let subject_ok = !self.nats_subject.is_empty()
            && self
                .nats_subject
                .split('.')
                .all(|t| !t.is_empty() && t.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-'));
        if !subject_ok {
            problems.push(anyhow::anyhow!(
                "nats_subject must be dot-separated words of letters, digits, '_' and '-' (no wildcards)"
            ));
        }
    }

    /// The NATS link's settings, if there is one.
    pub fn nats(&self) -> Option<refdesk_app::nats::NatsOptions> {
        let url = self.nats_url.clone()?;
        Some(refdesk_app::nats::NatsOptions {
            url,
            user: self.nats_user.clone(),
            password: self.nats_password.clone(),
            token: self.nats_token.clone(),
            credentials_file: self.nats_credentials_file.clone(),
            ca_file: self.nats_ca_file.clone(),
            tls: self.nats_tls,
            key: self.nats_key.clone(),
            key_file: self.nats_key_file.clone(),
            second_key: self.nats_second_key.clone(),
            second_key_file: self.nats_second_key_file.clone(),
        })
    }

    /// The SQLite database file.
    pub fn database_path(&self) -> PathBuf {
        self.data_dir.join("refdesk.sqlite3")
    }

    /// Whether the setting `name` is within `min..=max`; the error names
    /// the variable or flag that set it, when one did.
    fn in_range(&self, name: &str, value: u64, min: u64, max: u64) -> anyhow::Result<()> {
        if !(min..=max).contains(&value) {
            let from = self.source_of(name);
            // A bound that is itself a setting is named with its source.
            let bound = match BOUNDED_BY.iter().find(|(setting, _)| *setting == name) {
                Some((_, bound)) if value > max => format!(", and {bound} is {max}{}", self.source_of(bound)),
                _ => String::new(),
            };
            bail!("{name} must be between {min} and {max} (it is {value}{from}{bound})");
        }
        Ok(())
    }

    /// ", from X" when the variable or flag X set the setting `name`
    /// (nothing when the file or the default did).
    fn source_of(&self, name: &str) -> String {
        self.sources.get(name).map(|s| format!(", from {s}")).unwrap_or_default()
    }

    /// The default configuration as TOML, for `refdesk config`. Settings
    /// unset by default are shown commented out, with an example, before
    /// the first table (where they belong).
    pub fn default_toml() -> String {
        let text = toml::to_string_pretty(&Config::default()).unwrap_or_default();
        let tables = text.find("\n[").map_or(text.len(), |i| i + 1);
        let text = format!("{}{UNSET_BY_DEFAULT}{}", &text[..tables], &text[tables..]);
        text.replacen("[mail]\n", &format!("[mail]\n{MAIL_UNSET_BY_DEFAULT}"), 1)
    }
}

/// The variables [`Config::apply_env`] reads by name, with the setting
/// each sets: an error about that setting names the variable.
const ENV_SET: &[(&str, &str)] = &[
    ("REFDESK_LISTEN", "listen"),
    ("REFDESK_DATA_DIR", "data_dir"),
    ("REFDESK_DATABASE_URL", "database_url"),
    ("REFDESK_PUBLIC_URL", "public_url"),
    ("REFDESK_TRUSTED_PROXIES", "trusted_proxies"),
    ("REFDESK_SECURE_COOKIES", "secure_cookies"),
    ("REFDESK_SMTP_URL", "mail.smtp_url"),
    ("REFDESK_MAIL_SMTP_URL", "mail.smtp_url"),
    ("REFDESK_MAIL_FROM", "mail.from"),
    ("REFDESK_METRICS_LISTEN", "metrics_listen"),
    ("REFDESK_LOG_FORMAT", "log_format"),
    ("REFDESK_NATS_URL", "nats_url"),
    ("REFDESK_NATS_USER", "nats_user"),
    ("REFDESK_NATS_PASSWORD", "nats_password"),
    ("REFDESK_NATS_TOKEN", "nats_token"),
    ("REFDESK_NATS_KEY", "nats_key"),
    ("REFDESK_NATS_CREDENTIALS_FILE", "nats_credentials_file"),
    ("REFDESK_NATS_CA_FILE", "nats_ca_file"),
    ("REFDESK_NATS_KEY_FILE", "nats_key_file"),
    ("REFDESK_NATS_SECOND_KEY", "nats_second_key"),
    ("REFDESK_NATS_SECOND_KEY_FILE", "nats_second_key_file"),
    ("REFDESK_NATS_TLS", "nats_tls"),
    ("REFDESK_NATS_SUBJECT", "nats_subject"),
    ("REFDESK_LOGINS_PER_MINUTE", "limits.logins_per_minute"),
    ("REFDESK_STARTS_PER_MINUTE", "limits.starts_per_minute"),
    ("REFDESK_CHATS_PER_ADDRESS_PER_DAY", "limits.chats_per_address_per_day"),
    ("REFDESK_MAX_WAITING_PER_ADDRESS", "limits.max_waiting_per_address"),
    ("REFDESK_MAX_WAITING_PER_LIBRARY", "limits.max_waiting_per_library"),
    ("REFDESK_MAX_CONNECTIONS", "limits.max_connections"),
    ("REFDESK_MAX_MESSAGE_CHARS", "limits.max_message_chars"),
];

/// Whether a browser could reach `url` (a `public_url` of the right
/// shape): its port from 1 to 65535, and its host an IP address or a name
/// as DNS writes it. A browser never sends the origin of `:99999` or of
/// `-bad-.example..org`: every sign-in would be refused.
fn reachable(url: &str) -> bool {
    let Ok(uri) = url.trim_end_matches('/').parse::<axum::http::Uri>() else { return false };
    let (Some(host), Some(authority)) = (uri.host(), uri.authority()) else { return false };
    // `Uri::port` is `None` for a port that is not a `u16`, as for none. A
    // port written as a browser writes it: digits, no leading zero, no
    // sign (`:0443` and `:+443` are 443 to a browser, whose `Origin` then
    // never matches the one written here).
    let port_ok = match authority.as_str().rsplit_once(':') {
        Some((_, port)) if !port.ends_with(']') => {
            port.bytes().all(|b| b.is_ascii_digit()) && !port.starts_with('0') && port.parse::<u16>().is_ok()
        }
        _ => true,
    };
    let ip = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .is_some_and(|h| h.parse::<std::net::Ipv6Addr>().is_ok());
    // An underscore is no DNS host name's, but browsers load such names
    // (some intranets have them): taken, as before this check.
    let name = host.to_ascii_lowercase().replace('_', "-");
    port_ok && (ip || refdesk_domain::input::host_name(&name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_relative_paths_a_file_sets_are_taken_from_its_folder() {
        let text = "data_dir = \"data\"\nnats_ca_file = \"certs/ca.pem\"\nnats_key_file = \"/abs/key\"\n";
        let mut c = Config::parse_toml(text).unwrap();
        c.nats_credentials_file = Some("set/elsewhere".into());
        c.paths_from(Path::new("/etc/refdesk"), text);
        assert_eq!(c.data_dir, Path::new("/etc/refdesk/data"));
        assert_eq!(c.nats_ca_file.as_deref(), Some(Path::new("/etc/refdesk/certs/ca.pem")));
        assert_eq!(c.nats_key_file.as_deref(), Some(Path::new("/abs/key")), "an absolute path is kept");
        assert_eq!(c.nats_credentials_file.as_deref(), Some(Path::new("set/elsewhere")), "not the file's");
    }

    #[test]
    fn the_default_configuration_round_trips_and_is_valid() {
        let text = Config::default_toml();
        let parsed: Config = toml::from_str(&text).unwrap();
        parsed.validate().unwrap();
        assert_eq!(parsed.listen, Config::default().listen);
        // Each setting unset by default is shown in its table, commented out.
        let mail = &text[text.find("[mail]").unwrap()..];
        assert!(mail.contains("# smtp_url = "), "{text}");
        for top in ["# public_url = ", "# database_url = ", "# nats_url = "] {
            assert!(text[..text.find("\n[").unwrap()].contains(top), "{top}: {text}");
        }
    }

    #[test]
    fn the_drain_and_shutdown_bounds_come_from_the_file_or_the_environment() {
        let mut c = Config::parse_toml("drain_seconds = 0\nshutdown_seconds = 30\n").unwrap();
        assert_eq!((c.drain_seconds, c.shutdown_seconds), (0, 30));
        c.apply_env_settings(|k| (k == "REFDESK_DRAIN_SECONDS").then(|| "25".into())).unwrap();
        assert_eq!((c.drain_seconds, c.shutdown_seconds), (25, 30));
        assert!(c.apply_env_settings(|k| (k == "REFDESK_SHUTDOWN_SECONDS").then(|| "soon".into())).is_err());
        c.shutdown_seconds = 0;
        assert!(c.validate().is_err(), "closing needs some time");
    }

    #[test]
    fn unknown_keys_and_bad_values_are_refused() {
        assert!(toml::from_str::<Config>("lisen = \"x\"").is_err());
        let mut c = Config::default();
        assert!(c.apply_env(|k| (k == "REFDESK_LISTEN").then(|| "nowhere".into())).is_err());
        c.limits.max_message_chars = 0;
        assert!(c.validate().is_err());
        // A longer line needs a larger frame (32 KiB takes 5,290 characters):
        // the refusal says how large.
        let mut c = Config::default();
        c.limits.max_message_chars = 8000;
        let why = format!("{:#}", c.validate().expect_err("a frame too small for the line"));
        assert!(why.contains("at least 49024 (it is 32768"), "{why}");
        c.limits.max_frame_bytes = 49024;
        assert!(c.validate().is_ok());
    }

    #[test]
    fn an_empty_data_folder_and_retries_that_would_overflow_a_time_are_refused() {
        let refused = |f: fn(&mut Config)| {
            let mut c = Config::default();
            f(&mut c);
            format!("{:#}", c.validate().expect_err("refused"))
        };
        let empty = refused(|c| c.data_dir = "".into());
        assert!(empty.contains("data_dir is empty"), "{empty}");
        assert!(refused(|c| c.data_dir = "  ".into()).contains("data_dir is empty"));
        // Each try's due time is now plus the wait: a wait near i64::MAX
        // milliseconds overflowed it, and the panic stopped the mailer.
        let retry = refused(|c| {
            c.mail.retry_initial_ms = 9_223_372_036_854_775_000;
            c.mail.retry_max_ms = u64::MAX;
        });
        assert!(retry.contains("mail.retry_initial_ms must be at most 3600000"), "{retry}");
        let max = refused(|c| c.mail.retry_max_ms = refdesk_app::mail::RETRY_MAX_MS_MOST + 1);
        assert!(max.contains("mail.retry_max_ms at most"), "{max}");
        let mut c = Config::default();
        c.mail.retry_initial_ms = refdesk_app::mail::RETRY_INITIAL_MS_MOST;
        c.mail.retry_max_ms = refdesk_app::mail::RETRY_MAX_MS_MOST;
        c.validate().expect("the longest waits allowed");
    }

    #[test]
    fn the_database_and_nats_settings_are_checked() {
        let with = |f: fn(&mut Config)| {
            let mut c = Config::default();
            f(&mut c);
            c.validate()
        };
        assert!(with(|c| c.database_url = Some("mysql://x".into())).is_err());
        assert!(with(|c| c.database_url = Some("postgres://u@127.0.0.1/db".into())).is_ok());
        assert!(
            with(|c| {
                c.nats_url = Some("nats://127.0.0.1:4222".into());
                c.nats_key = Some(KEY.into());
            })
            .is_err(),
            "NATS without PostgreSQL"
        );
        assert!(with(|c| {
            c.database_url = Some("postgres://u@h/db".into());
            c.nats_url = Some("nats://127.0.0.1:4222".into());
            c.nats_key = Some(KEY.into());
        })
        .is_ok());
        assert!(with(|c| c.nats_subject = "refdesk.>".into()).is_err());
        assert!(with(|c| c.nats_subject = "a..b".into()).is_err());
        assert!(with(|c| c.database_connections = 0).is_err());
        let mut c = Config::default();
        c.apply_env(|k| (k == "REFDESK_DATABASE_URL").then(|| "postgres://h/db".into())).unwrap();
        assert_eq!(c.database_url.as_deref(), Some("postgres://h/db"));
    }

    /// A NATS key for the tests (64 hex digits).
    const KEY: &str = "8f1c2a9d4e7b6035a1c4d8e2f9b7a6c3d5e1f0a2b4c6d8e0f1a3b5c7d9e2f4a6";

    #[test]
    fn a_nats_link_needs_a_key_shared_by_the_nodes_and_it_is_never_printed() {
        let with = |f: &dyn Fn(&mut Config)| {
            let mut c = Config {
                database_url: Some("postgres://u@h/db".into()),
                nats_url: Some("nats://127.0.0.1:4222".into()),
                ..Config::default()
            };
            f(&mut c);
            c.validate()
        };
        let e = format!("{:#}", with(&|_| {}).unwrap_err());
        assert!(e.contains("nats_key") && e.contains("REFDESK_NATS_KEY"), "a key is required: {e}");
        assert!(with(&|c| c.nats_key = Some(KEY.into())).is_ok());
        assert!(with(&|c| c.nats_key_file = Some("/etc/refdesk/nats.key".into())).is_ok(), "read when linking");
        assert!(with(&|c| {
            c.nats_key = Some(KEY.into());
            c.nats_key_file = Some("/etc/refdesk/nats.key".into());
        })
        .is_err());
        let e = format!("{:#}", with(&|c| c.nats_key = Some("hunter2hunter2".into())).unwrap_err());
        assert!(e.contains("at least 32") && !e.contains("hunter2"), "{e}");
        let lone = Config { nats_key: Some(KEY.into()), ..Config::default() };
        assert!(lone.validate().is_err(), "a key without nats_url");
        let mut c = Config::default();
        let env = |k: &str| match k {
            "REFDESK_NATS_KEY" => Some(KEY.into()),
            "REFDESK_NATS_KEY_FILE" => Some("/run/secrets/nats.key".into()),
            _ => None,
        };
        c.apply_env(env).unwrap();
        assert_eq!(c.nats_key.as_deref(), Some(KEY));
        assert_eq!(c.nats_key_file.as_deref(), Some(Path::new("/run/secrets/nats.key")));
        c.nats_url = Some("nats://n:4222".into());
        assert_eq!(c.nats().unwrap().key.as_deref(), Some(KEY));
        assert!(!format!("{c:?}").contains(KEY), "Debug hides it");
        assert!(!format!("{:?}", c.nats().unwrap()).contains(KEY));
        let shown = Config::default_toml();
        assert!(shown.contains("# nats_key = ") && shown.contains("# nats_key_file = "), "{shown}");
        assert!(toml::from_str::<Config>(&shown).unwrap().nats_key.is_none(), "unset by default");
    }

    #[test]
    fn a_second_nats_key_is_checked_like_the_first_and_never_printed() {
        const SECOND: &str = "Zm9vYmFyIGJhenF1eCBxdXV4IGNvcmdlIGdyYXVsdCBnYXJwbHk=";
        let with = |f: &dyn Fn(&mut Config)| {
            let mut c = Config {
                database_url: Some("postgres://u@h/db".into()),
                nats_url: Some("nats://127.0.0.1:4222".into()),
                nats_key: Some(KEY.into()),
                ..Config::default()
            };
            f(&mut c);
            c.validate()
        };
        assert!(with(&|c| c.nats_second_key = Some(SECOND.into())).is_ok());
        assert!(with(&|c| c.nats_second_key_file = Some("/etc/refdesk/old.key".into())).is_ok(), "read when linking");
        let e = format!("{:#}", with(&|c| c.nats_second_key = Some("hunter2hunter2".into())).unwrap_err());
        assert!(e.contains("nats_second_key") && e.contains("at least 32") && !e.contains("hunter2"), "{e}");
        let e = format!(
            "{:#}",
            with(&|c| {
                c.nats_second_key = Some(SECOND.into());
                c.nats_second_key_file = Some("/etc/refdesk/old.key".into());
            })
            .unwrap_err()
        );
        assert!(e.contains("both set"), "{e}");
        let lone = Config { nats_second_key: Some(SECOND.into()), ..Config::default() };
        assert!(lone.validate().is_err(), "a second key without nats_url");
        let mut c = Config::default();
        let env = |k: &str| match k {
            "REFDESK_NATS_SECOND_KEY" => Some(SECOND.into()),
            "REFDESK_NATS_SECOND_KEY_FILE" => Some("/run/secrets/old.key".into()),
            _ => None,
        };
        c.apply_env(env).unwrap();
        c.nats_url = Some("nats://n:4222".into());
        let nats = c.nats().unwrap();
        assert_eq!(nats.second_key.as_deref(), Some(SECOND));
        assert_eq!(nats.second_key_file.as_deref(), Some(Path::new("/run/secrets/old.key")));
        assert!(!format!("{c:?}").contains(SECOND) && !format!("{nats:?}").contains(SECOND), "Debug hides it");
    }

    #[test]
    fn the_nats_sign_in_and_tls_settings_are_checked() {
        let with = |f: fn(&mut Config)| {
            let mut c = Config {
                database_url: Some("postgres://u@h/db".into()),
                nats_key: Some(KEY.into()),
                ..Config::default()
            };
            f(&mut c);
            c.validate()
        };
        assert!(with(|c| c.nats_url = Some("tls://u:p@127.0.0.1:4222".into())).is_ok());
        assert!(with(|c| c.nats_url = Some("http://127.0.0.1:4222".into())).is_err());
        assert!(with(|c| {
            c.nats_url = Some("nats://u:p@127.0.0.1:4222".into());
            c.nats_token = Some("t".into());
        })
        .is_err());
        assert!(
            with(|c| {
                c.nats_url = Some("nats://127.0.0.1:4222".into());
                c.nats_user = Some("u".into());
            })
            .is_err(),
            "a user without a password"
        );
        assert!(with(|c| c.nats_tls = true).is_err(), "NATS settings without nats_url");
        let mut c = Config::default();
        let env = |k: &str| match k {
            "REFDESK_NATS_USER" => Some("refdesk".into()),
            "REFDESK_NATS_PASSWORD" => Some("s3cret".into()),
            "REFDESK_NATS_CA_FILE" => Some("/etc/ca.pem".into()),
            "REFDESK_NATS_TLS" => Some("true".into()),
            _ => None,
        };
        c.apply_env(env).unwrap();
        c.nats_url = Some("nats://n:4222".into());
        let nats = c.nats().unwrap();
        assert_eq!(nats.password.as_deref(), Some("s3cret"));
        assert_eq!(nats.ca_file.as_deref(), Some(Path::new("/etc/ca.pem")));
        assert!(nats.tls);
        assert!(c.apply_env(|k| (k == "REFDESK_NATS_TLS").then(|| "yes".into())).is_err());
    }

    #[test]
    fn the_default_configuration_shows_the_settings_unset_by_default() {
        let text = Config::default_toml();
        for key in ["database_url", "sslmode=verify-full", "nats_url", "nats_password", "nats_credentials_file"] {
            assert!(text.contains(key), "{key} in\n{text}");
        }
        let tables = text.find("\n[").unwrap();
        assert!(text.find("nats_ca_file").unwrap() < tables, "before the first table");
    }

    #[test]
    fn passwords_in_urls_are_never_printed() {
        let c = Config {
            database_url: Some("postgres://refdesk:hunter2@db/refdesk".into()),
            nats_url: Some("nats://me:s3cret@nats:4222".into()),
            nats_password: Some("pa55word".into()),
            nats_token: Some("t0ken".into()),
            ..Config::default()
        };
        let shown = format!("{c:?}");
        for secret in ["hunter2", "s3cret", "pa55word", "t0ken"] {
            assert!(!shown.contains(secret), "{shown}");
        }
        assert!(shown.contains("db/refdesk"));
    }

    #[test]
    fn a_bad_configuration_file_is_explained_without_printing_its_secrets() {
        let typo = "listen = \"127.0.0.1:8080\"\ndatabse_url = \"postgres://u:hunter2@db/x\"\n";
        let e = format!("{:#}", Config::parse_toml(typo).unwrap_err());
        assert!(e.contains("line 2") && e.contains("databse_url"), "{e}");
        assert!(!e.contains("hunter2"), "{e}");
        let unclosed = "[mail]\nsmtp_url = \"smtps://m:s3cret@mail\n";
        let e = format!("{:#}", Config::parse_toml(unclosed).unwrap_err());
        assert!(e.contains("line 2") && !e.contains("s3cret"), "{e}");
    }

    #[test]
    fn limits_are_bounded_so_nothing_overflows() {
        for tweak in [
            (|c: &mut Config| c.limits.login_hours = u64::MAX) as fn(&mut Config),
            |c| c.limits.signoff_minutes = u64::MAX,
            |c| c.limits.connection_queue = usize::MAX,
            |c| c.limits.max_frame_bytes = usize::MAX,
        ] {
            let mut c = Config::default();
            tweak(&mut c);
            assert!(c.validate().is_err());
        }
        assert!(Config::default().validate().is_ok());
    }

    #[test]
    fn metrics_and_log_settings_come_from_the_file_or_the_environment() {
        let c: Config = toml::from_str("metrics_listen = \"127.0.0.1:9090\"\nlog_format = \"json\"").unwrap();
        assert_eq!(c.metrics_listen, Some(SocketAddr::from(([127, 0, 0, 1], 9090))));
        assert_eq!(c.log_format, LogFormat::Json);
        let mut c = Config::default();
        let env = |k: &str| match k {
            "REFDESK_METRICS_LISTEN" => Some("127.0.0.1:9191".into()),
            "REFDESK_LOG_FORMAT" => Some("json".into()),
            _ => None,
        };
        c.apply_env(env).unwrap();
        assert_eq!(c.metrics_listen.map(|a| a.port()), Some(9191));
        assert_eq!(c.log_format, LogFormat::Json);
        assert!(c.apply_env(|k| (k == "REFDESK_LOG_FORMAT").then(|| "xml".into())).is_err());
        assert!(c.apply_env(|k| (k == "REFDESK_METRICS_LISTEN").then(|| "nowhere".into())).is_err());
        c.metrics_listen = Some(c.listen);
        assert!(c.validate().is_err(), "not the main listener's address");
        assert!(Config::default_toml().contains("# metrics_listen = "));
    }

    #[test]
    fn the_environment_overrides_the_file() {
        let mut c: Config = toml::from_str("listen = \"127.0.0.1:9000\"").unwrap();
        c.apply_env(|k| (k == "REFDESK_LISTEN").then(|| "127.0.0.1:9001".into())).unwrap();
        assert_eq!(c.listen.port(), 9001);
    }
}
