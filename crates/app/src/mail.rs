//! E-mail: what refdesk sends (answers, transcripts) and the sender that
//! delivers the outbox.
//!
//! Every e-mail is first a row in the outbox, written in the same
//! transaction as its cause (an answer, the end of a chat), so nothing is
//! lost if SMTP is down or refdesk stops. The [`Mailer`] delivers due rows,
//! marks each sent right after the server accepts it, and on failure retries
//! with exponential backoff. Each e-mail carries a Message-ID derived from
//! its row, the same on every attempt, so that in the one unavoidable
//! window (the server accepted it, refdesk stopped before recording that) a
//! second copy is recognisably the same message.
//!
//! With no SMTP server configured — the embedded default — each e-mail is
//! written as an `.eml` file under the data folder instead.
//!
//! Transcripts are built with the one visibility function, as the patron's
//! socket sees the chat: no librarian note, no staff-only line (B4).

use crate::{App, AppResult};
use lettre::message::header::ContentType;
use lettre::message::Mailbox;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message as Email, Tokio1Executor};
use refdesk_domain::chat::{Author, Message};
use refdesk_domain::visibility::{transcript, Viewer};
use refdesk_domain::{DomainError, Millis};
use refdesk_store::{MailKind, NewMail, OutboxMail, QuestionRecord, SessionRecord};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::time::Duration;

/// The longest first wait before an e-mail is tried again (an hour).
pub const RETRY_INITIAL_MS_MOST: u64 = 3_600_000;
/// The longest wait between two tries of an e-mail (a week).
pub const RETRY_MAX_MS_MOST: u64 = 7 * 24 * 3_600_000;

/// E-mail settings.
#[derive(Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MailConfig {
    /// SMTP server, e.g. `smtp://mail.example.org:587?tls=required` (STARTTLS),
    /// `smtps://user:password@mail.example.org` (TLS) or `smtp://127.0.0.1:2525`
    /// (plain). Empty: write `.eml` files under the data folder.
    pub smtp_url: Option<String>,
    /// The From address.
    pub from: String,
    /// First retry after a failed delivery, in milliseconds; doubles each time.
    pub retry_initial_ms: u64,
    /// Longest wait between retries, in milliseconds.
    pub retry_max_ms: u64,
    /// Keep every e-mail in the outbox and send (or write) none: after a
    /// restore, until the erasures made since the backup are repeated; while
    /// the SMTP server is changed. Unset it and restart to send them.
    pub hold: bool,
    /// The service's public URL (the server's `public_url`): the foot of
    /// every e-mail links its library's `/ask/<slug>` page there (the root
    /// when the library is not known). Not a setting of its own.
    #[serde(skip)]
    pub public_url: Option<String>,
}

impl Default for MailConfig {
    fn default() -> Self {
        MailConfig {
            smtp_url: None,
            from: "refdesk <noreply@localhost>".into(),
            retry_initial_ms: 2_000,
            retry_max_ms: 600_000,
            hold: false,
            public_url: None,
        }
    }
}

/// Never prints the SMTP URL: it may hold a password.
impl std::fmt::Debug for MailConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MailConfig")
            .field("smtp_url", &self.smtp_url.as_ref().map(|_| "<hidden>"))
            .field("from", &self.from)
            .field("retry_initial_ms", &self.retry_initial_ms)
            .field("retry_max_ms", &self.retry_max_ms)
            .field("hold", &self.hold)
            .finish()
    }
}

impl MailConfig {
    /// Refuses settings that cannot work.
    pub fn validate(&self) -> Result<(), String> {
        match self.problems().as_slice() {
            [] => Ok(()),
            problems => Err(problems.join("\n")),
        }
    }

    /// Whether the sender (`from`) is at `localhost`: mail servers refuse
    /// such mail or file it as spam. One test for `serve`'s warning at
    /// start and `config --check`'s.
    pub fn sender_at_localhost(&self) -> bool {
        self.from.parse::<Mailbox>().is_ok_and(|m| m.email.domain().eq_ignore_ascii_case("localhost"))
    }

    /// Every problem of these settings, one each (an operator fixes them
    /// all at once, not one per check).
    pub fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        // (lettre's own word for it, "Invalid input", says nothing more.)
        if self.from.parse::<Mailbox>().is_err() {
            problems.push(format!(
                "mail.from {:?} is not an address: give one like \"Ask a Librarian <ask@library.example.org>\" \
                 or ask@library.example.org",
                self.from
            ));
        }
        if let Some(url) = &self.smtp_url {
            if !(url.starts_with("smtp://") || url.starts_with("smtps://")) {
                problems.push(
                    "mail.smtp_url must start with smtps:// (TLS from the start) or smtp:// (with ?tls=required for \
                     STARTTLS)"
                        .into(),
                );
            } else if let Err(e) = AsyncSmtpTransport::<Tokio1Executor>::from_url(url) {
                problems.push(format!("mail.smtp_url is not a usable SMTP URL: {e}"));
            } else if password_in_clear(url) {
                problems.push(
                    "mail.smtp_url gives a password over plain SMTP, which anyone on the way can read: use smtps://… \
                     (TLS from the start) or smtp://…?tls=required (STARTTLS), or a relay on this machine (127.0.0.1, \
                     ::1, localhost)"
                        .into(),
                );
            }
        }
        if self.retry_initial_ms == 0 || self.retry_max_ms < self.retry_initial_ms {
            problems.push("mail.retry_initial_ms must be positive and at most mail.retry_max_ms".into());
        } else if self.retry_initial_ms > RETRY_INITIAL_MS_MOST || self.retry_max_ms > RETRY_MAX_MS_MOST {
            problems.push(format!(
                "mail.retry_initial_ms must be at most {RETRY_INITIAL_MS_MOST} (an hour) and mail.retry_max_ms at most \
                 {RETRY_MAX_MS_MOST} (a week): an e-mail that waits longer is better told undeliverable (it is {} and {})",
                self.retry_initial_ms, self.retry_max_ms
            ));
        }
        problems
    }
}

/// Whether an SMTP URL sends a password to another machine without TLS
/// (`smtp://` without `tls=required`; `tls=opportunistic` falls back to
/// plain text when STARTTLS is refused, so it counts as none).
fn password_in_clear(smtp_url: &str) -> bool {
    let Ok(url) = url::Url::parse(smtp_url) else { return false };
    // lettre reads the first `tls` parameter; so does this.
    let first_tls = url.query_pairs().find(|(k, _)| k == "tls").map(|(_, v)| v.into_owned());
    let tls = url.scheme() == "smtps" || first_tls.as_deref() == Some("required");
    // `smtp` is not a scheme the URL standard knows: its host is opaque
    // text, an address written as one.
    let local = match url.host() {
        Some(url::Host::Domain(d)) => {
            let bare = d.trim_start_matches('[').trim_end_matches(']');
            bare.eq_ignore_ascii_case("localhost") || bare.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
        }
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    };
    url.password().is_some() && !tls && !local
}

/// An optional e-mail address from outside, checked for shape and for
/// whether our mailer can send to it — so that an address accepted now never
/// fails for good later, after staff were told it was e-mailed.
pub fn email_address(s: Option<&str>) -> Result<Option<String>, refdesk_domain::DomainError> {
    let address = refdesk_domain::input::optional_email(s)?;
    if let Some(a) = &address {
        // The mailer parses the recipient as a mailbox, which takes no
        // domain literal (`pat@[127.0.0.1]`) though an address does.
        // What is checked is what is sent: the domain in ASCII.
        let sent = refdesk_domain::input::ascii_address(a);
        let sendable = sent.is_some_and(|a| a.parse::<lettre::Address>().is_ok() && a.parse::<Mailbox>().is_ok());
        if !sendable {
            return Err(refdesk_domain::DomainError::invalid("email", "not an address we can send to"));
        }
    }
    Ok(address)
}

/// The e-mail for an answer sent from the question list. The question number
/// is in the subject so that a reply can be matched to it.
pub fn answer_mail(q: &QuestionRecord, answer: &str, to: &str) -> NewMail {
    NewMail {
        kind: MailKind::Answer,
        to: to.to_owned(),
        subject: format!("Answer to your question #{} — {}", q.id, q.library_name),
        body: format!(
            "{answer}\n\n— {library}\n\nYour question (#{id}):\n> {question}\n",
            library = q.library_name,
            id = q.id,
            // Each line quoted: what a stranger wrote on the offline form
            // cannot pass for the library's words after its signature.
            question = lines_joined(&q.text, "\n> "),
        ),
    }
}

/// A transcript e-mail's text stops after the line that takes it past
/// this: mail servers refuse messages of tens of MB (a chat may hold 2,000
/// lines of 16 KB), and no patron reads one.
pub const TRANSCRIPT_MAIL_BYTES: usize = 512 * 1024;

/// The end-of-chat transcript, if the patron asked for one: exactly the lines
/// the patron could see, through the visibility function, up to
/// [`TRANSCRIPT_MAIL_BYTES`].
///
/// Only for a chat a librarian took: otherwise anyone could have refdesk
/// e-mail any address whatever text they typed (start a chat, end it).
pub fn transcript_mail(session: &SessionRecord, all: &[Message]) -> Option<NewMail> {
    session.accepted_at?;
    let to = session.transcript_to.clone()?;
    let viewer = Viewer::Patron { session: session.ctx.id };
    let wall = Wall(session.transcript_utc_offset.unwrap_or(0));
    let mut day = wall.day(session.created_at);
    let mut body = format!(
        "The transcript of your chat with {} on {} (times are {}):\n\n",
        session.library_name,
        wall.date(session.created_at),
        wall.zone()
    );
    let lines: Vec<&Message> = transcript(&viewer, &session.ctx, all).collect();
    for (i, m) in lines.iter().enumerate() {
        if body.len() > TRANSCRIPT_MAIL_BYTES {
            let rest = lines.len() - i;
            body.push_str(&format!("\n[{rest} more lines: too long for an e-mail. Ask the library for the rest.]\n"));
            break;
        }
        if wall.day(m.at) != day {
            day = wall.day(m.at);
            body.push_str(&format!("\n{}\n", wall.date(m.at)));
        }
        // refdesk's own lines ("… has joined the chat") are said by no one.
        // The patron's are "You": a name is the patron's to choose, and one
        // like "Ann Archer (librarian)" made their lines read as the
        // librarian's in a mail sent under the library's name.
        let who = match &m.author {
            Author::Patron { .. } => "You: ".to_owned(),
            Author::Staff { name, .. } => format!("{name} (librarian): "),
            Author::System => String::new(),
        };
        body.push_str(&format!("[{}] {who}{}\n", wall.time(m.at), indented(&m.body)));
    }
    let library = &session.library_name;
    let subject = match session.ctx.question {
        Some(q) => format!("Transcript of your chat with {library} (question #{q})"),
        None => format!("Transcript of your chat with {library}"),
    };
    Some(NewMail { kind: MailKind::Transcript, to, subject, body })
}

/// A line's text with every line after its first indented: no text a
/// patron writes can begin a line of the transcript, as a time and a name
/// do (a question of several lines forged a librarian's line, and the end).
fn indented(text: &str) -> String {
    lines_joined(text, "\n    ")
}

/// `text`'s lines joined by `between`: every character a mail reader may
/// break a line at ends one (Unicode's line and paragraph separators, the
/// next-line and form-feed controls, not only `\n`), so that each line
/// gets the indent or quote mark `between` ends with.
fn lines_joined(text: &str, between: &str) -> String {
    let breaks = |c: char| matches!(c, '\n' | '\r' | '\u{0b}' | '\u{0c}' | '\u{85}' | '\u{2028}' | '\u{2029}');
    text.replace("\r\n", "\n").split(breaks).collect::<Vec<_>>().join(between)
}

/// The patron's wall clock: local time minus UTC in minutes (0: UTC
/// itself, when the browser gave none). Without a date library: a chat
/// lasts minutes, so one offset, the one given with the address, serves it.
struct Wall(i32);

impl Wall {
    fn local(&self, ms: i64) -> i64 {
        ms.div_euclid(60_000).saturating_add(i64::from(self.0))
    }

    /// The local day since 1970-01-01.
    fn day(&self, ms: i64) -> i64 {
        self.local(ms).div_euclid(24 * 60)
    }

    /// `HH:MM`, local.
    fn time(&self, ms: i64) -> String {
        let mins = self.local(ms).rem_euclid(24 * 60);
        format!("{:02}:{:02}", mins / 60, mins % 60)
    }

    /// `Saturday 5 December 2026`, local.
    fn date(&self, ms: i64) -> String {
        const DAYS: [&str; 7] = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"];
        const MONTHS: [&str; 12] = [
            "January",
            "February",
            "March",
            "April",
            "May",
            "June",
            "July",
            "August",
            "September",
            "October",
            "November",
            "December",
        ];
        let day = self.day(ms);
        let (y, m, d) = refdesk_domain::report::civil_from_days(day);
        let weekday = DAYS[refdesk_domain::report::weekday(day) as usize];
        format!("{weekday} {d} {} {y}", MONTHS[(m as usize).saturating_sub(1) % 12])
    }

    /// `UTC`, or `UTC+05:30` / `UTC-05:00`.
    fn zone(&self) -> String {
        match self.0 {
            0 => "UTC".into(),
            o => format!("UTC{}{:02}:{:02}", if o < 0 { '-' } else { '+' }, o.abs() / 60, o.abs() % 60),
        }
    }
}

enum Transport {
    Smtp(AsyncSmtpTransport<Tokio1Executor>),
    Files(PathBuf),
}

/// Networks tracked at most by [`MailAsks`]; beyond it past hours are
/// forgotten, then the networks that asked least, so a flood of addresses
/// can neither grow memory without bound nor wipe the count of a network
/// near its cap.
const MAIL_ASKS_TRACKED: usize = 50_000;

/// Transcripts asked for per network in the current hour, on this node.
#[derive(Default)]
pub struct MailAsks(std::sync::Mutex<std::collections::HashMap<String, (Millis, u32)>>);

impl MailAsks {
    /// Counts one ask at `now` in each of the networks `nets` (a key, and
    /// how many times `cap` it has: an IPv6 /64's /56 and /48 too); false,
    /// counting nothing, when one has had its hour's share.
    fn take<'k>(&self, nets: impl Iterator<Item = (&'k str, u32)> + Clone, now: Millis, cap: u32) -> bool {
        let hour = now.div_euclid(3_600_000);
        let mut map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() >= MAIL_ASKS_TRACKED {
            map.retain(|_, (h, _)| *h == hour);
            if map.len() >= MAIL_ASKS_TRACKED / 2 {
                let mut counts: Vec<u32> = map.values().map(|(_, n)| *n).collect();
                let middle = counts.len() / 2;
                let cut = *counts.select_nth_unstable(middle).1;
                map.retain(|_, (_, n)| *n > cut);
            }
        }
        let spent = |(net, times): (&str, u32)| {
            map.get(net).is_some_and(|(h, n)| *h == hour && u64::from(*n) >= u64::from(cap) * u64::from(times))
        };
        if nets.clone().any(spent) {
            return false;
        }
        for (net, _) in nets {
            let entry = map.entry(net.to_owned()).or_insert((hour, 0));
            if entry.0 != hour {
                *entry = (hour, 0);
            }
            entry.1 += 1;
        }
        true
    }
}

impl App {
    /// Whether a patron may ask for a transcript:
    /// [`crate::Limits::patron_mails_per_address_per_hour`] asks from one
    /// network an hour. refdesk is not a way to mail strangers: at most
    /// [`crate::Limits::patron_mails_per_recipient_per_day`] transcripts go
    /// to one address a day, counted by the chat's end inside its write,
    /// which queues nothing past it. Not here: a refusal would tell anyone,
    /// from any cooperative, whether an address was sent transcripts today.
    pub(crate) fn may_ask_transcript(&self, keys: &refdesk_store::PatronKeys) -> AppResult<()> {
        let now = self.clock.now();
        let too_many = || DomainError::Limited {
            code: "too_many_mails",
            reason: "too many transcripts have been asked for; please copy the chat instead".into(),
        };
        if !self.mail_asks.take(keys.networks(), now, self.limits.patron_mails_per_address_per_hour) {
            return Err(too_many().into());
        }
        Ok(())
    }
}

/// Delivers the outbox.
pub struct Mailer {
    app: App,
    transport: Transport,
    from: Mailbox,
    config: MailConfig,
}

/// An SMTP URL's scheme, host and port, for the log and the operator
/// (never its user or password).
pub fn smtp_server(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(url) => {
            let port = url.port().map(|p| format!(":{p}")).unwrap_or_default();
            format!("{}://{}{port}", url.scheme(), url.host_str().unwrap_or(""))
        }
        Err(_) => "the SMTP server".into(),
    }
}

/// Whether the SMTP server of `url` is reached as the mailer will reach
/// it — connected, TLS and the sign-in as the URL says — then left
/// (`QUIT`); the server's or the connection's words if not. For `config
/// --check`: a wrong port, `tls=required` against a server without it or
/// a wrong password showed only later, as e-mails retried.
pub async fn check_smtp(url: &str) -> Result<(), String> {
    let transport: AsyncSmtpTransport<Tokio1Executor> = AsyncSmtpTransport::<Tokio1Executor>::from_url(url)
        .map_err(|e| e.to_string())?
        .timeout(Some(Duration::from_secs(10)))
        .build();
    match transport.test_connection().await {
        Ok(true) => Ok(()),
        Ok(false) => Err("it did not answer as an SMTP server does".into()),
        Err(e) => Err(e.to_string()),
    }
}

impl Mailer {
    /// A mailer for `config`; with no SMTP URL, e-mail goes to `<data_dir>/mail/*.eml`.
    pub fn new(app: App, config: MailConfig, data_dir: PathBuf) -> Result<Mailer, String> {
        config.validate()?;
        let from = config.from.parse().map_err(|e| format!("mail.from: {e}"))?;
        let transport = match &config.smtp_url {
            Some(url) => Transport::Smtp(
                AsyncSmtpTransport::<Tokio1Executor>::from_url(url)
                    .map_err(|e| format!("mail.smtp_url: {e}"))?
                    .timeout(Some(Duration::from_secs(30)))
                    .build(),
            ),
            None => Transport::Files(data_dir.join("mail")),
        };
        Ok(Mailer { app, transport, from, config })
    }

    /// Where the mail goes, for the log: the SMTP server ([`smtp_server`]),
    /// or the folder.
    fn server(&self) -> String {
        match (&self.transport, self.config.smtp_url.as_deref()) {
            (Transport::Smtp(_), Some(url)) => smtp_server(url),
            (Transport::Files(dir), _) => dir.display().to_string(),
            (Transport::Smtp(_), None) => "the SMTP server".into(),
        }
    }

    /// Says once, at the start, what an operator must not miss: with no SMTP
    /// server the e-mail stays on this machine (patrons get nothing), and a
    /// sender at `localhost` is refused or filed as spam by mail servers.
    fn warn_of_setup(&self) {
        match &self.transport {
            Transport::Files(dir) => tracing::warn!(
                folder = %dir.display(),
                "no mail.smtp_url: e-mails (transcripts, answers) are written to files in this folder, not sent; \
                 set mail.smtp_url to send them"
            ),
            Transport::Smtp(_) if self.config.sender_at_localhost() => tracing::warn!(
                from = %self.from,
                "mail.from is at localhost: mail servers refuse such mail or file it as spam; set mail.from to an \
                 address of the library's own domain"
            ),
            Transport::Smtp(_) => {}
        }
    }

    /// Delivers until `shutdown` resolves: whatever is due, then sleeps until
    /// the next retry or until a new e-mail is queued.
    pub async fn run(self, shutdown: impl std::future::Future<Output = ()>) {
        if self.config.hold {
            tracing::warn!(
                "mail.hold is set: every e-mail stays in the outbox and none is sent; unset it and restart to send them"
            );
            return shutdown.await;
        }
        tokio::pin!(shutdown);
        self.warn_of_setup();
        loop {
            self.app.one_turn("mailer", self.deliver_due()).await;
            let wait = match self.app.store.next_mail_due().await {
                Ok(Some(at)) => Duration::from_millis((at - self.app.clock.now()).clamp(0, 60_000) as u64),
                Ok(None) => Duration::from_secs(60),
                Err(e) => {
                    tracing::warn!(error = %e, "cannot read the outbox; retrying");
                    Duration::from_secs(5)
                }
            };
            tokio::select! {
                _ = &mut shutdown => return,
                _ = self.app.mail_wakeup.notified() => {}
                _ = tokio::time::sleep(wait) => {}
            }
        }
    }

    /// One pass over the due e-mail. Returns how many were delivered.
    pub async fn deliver_due(&self) -> usize {
        let now = self.app.clock.now();
        // A few at a time, each send bounded by SEND_TIMEOUT: all are done
        // well before the claim on them runs out (another node's mailer may
        // take them then).
        match self.app.store.claim_mail(now, CLAIM_BATCH, now.saturating_add(CLAIM_MS)).await {
            Ok(due) => self.deliver_claimed(due).await,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the outbox");
                0
            }
        }
    }

    /// `claimed` as it is now, if it is still to be sent now: not if it was
    /// erased or recorded as sent since it was taken, nor while its chat
    /// waits to be erased again (the erasure journal: a chat going on in a
    /// restored database; its erasure deletes the mail once the chat ends).
    /// One not read, or waiting, stays under its claim, taken again after it.
    async fn still_to_send(&self, claimed: &OutboxMail) -> Option<OutboxMail> {
        let mail = match self.app.store.mail(claimed.id).await {
            Ok(Some(mail)) if mail.sent_at.is_none() => mail,
            Ok(_) => {
                tracing::info!(
                    id = claimed.id,
                    "an e-mail was erased (or recorded as sent) since it was taken; not sent"
                );
                return None;
            }
            Err(e) => {
                tracing::warn!(error = %e, id = claimed.id, "cannot read an e-mail again before sending it; left for later");
                return None;
            }
        };
        if mail.session.is_some_and(|s| self.app.erasure_waits(s)) {
            tracing::info!(id = mail.id, "an e-mail of a chat to be erased again once it ends; not sent");
            return None;
        }
        Some(mail)
    }

    /// Delivers e-mail this mailer claimed ([`deliver_due`]'s second half,
    /// public so that a test can put a privacy erase between the two).
    /// Each is read again just before it is sent: the ones before it may
    /// have taken minutes (each up to `SEND_TIMEOUT`), and meanwhile its
    /// patron may have been erased, which deletes their e-mail from the
    /// outbox. Only what is still there and unsent goes. Returns how many
    /// were delivered.
    ///
    /// [`deliver_due`]: Mailer::deliver_due
    pub async fn deliver_claimed(&self, due: Vec<OutboxMail>) -> usize {
        let mut delivered = 0;
        for claimed in due {
            let Some(mail) = self.still_to_send(&claimed).await else { continue };
            // A mail whose sending panics (a bug) is set aside as
            // undeliverable: tried again, it would panic again and hold up
            // the mails after it in every pass.
            let sending = tokio::time::timeout(SEND_TIMEOUT, self.deliver(&mail));
            let sent = match self.app.one_turn("mailer", sending).await {
                Some(Ok(sent)) => sent,
                Some(Err(_)) => Err(Failure::Transient(Why::plain("the SMTP server took too long"))),
                None => Err(Failure::Permanent(Why::plain("refdesk failed while sending it (a bug; see the log)"))),
            };
            match sent {
                Ok(()) => {
                    delivered += 1;
                    // Written to a file is not sent: `/metrics` tells them apart.
                    let filed = matches!(self.transport, Transport::Files(_));
                    self.app.metrics().mail(if filed { "filed" } else { "sent" });
                    if let Err(e) = self.app.store.mail_sent(mail.id, self.app.clock.now()).await {
                        tracing::error!(error = %e, id = mail.id, "delivered but not recorded; it may be sent again");
                    }
                }
                Err(Failure::Permanent(why)) => {
                    self.app.metrics().mail("undeliverable");
                    let now = self.app.clock.now();
                    match self.app.store.mail_undeliverable(mail.id, &why.stored, now).await {
                        Ok(question) => tracing::error!(
                            id = mail.id,
                            question = question.map(|q| q.0),
                            why = %why.logged,
                            "e-mail cannot be delivered; kept in the outbox, and said in its question's timeline"
                        ),
                        Err(e) => tracing::error!(
                            id = mail.id,
                            why = %why.logged,
                            error = %e,
                            "e-mail cannot be delivered, and could not be set aside; it will be tried again"
                        ),
                    }
                }
                Err(Failure::Transient(why)) => {
                    self.app.metrics().mail("retry");
                    let backoff = self
                        .config
                        .retry_initial_ms
                        .saturating_mul(1u64 << mail.attempts.min(20))
                        .min(self.config.retry_max_ms);
                    let why_logged = &why.logged;
                    tracing::warn!(
                        id = mail.id,
                        why = %why_logged,
                        server = %self.server(),
                        retry_in_ms = backoff,
                        "e-mail delivery failed; will retry"
                    );
                    let due = self.app.clock.now().saturating_add(i64::try_from(backoff).unwrap_or(i64::MAX));
                    let _ = self.app.store.mail_failed(mail.id, &why.stored, due).await;
                }
            }
        }
        delivered
    }

    /// The library's address for replies, named with the library's name;
    /// `None` when it has none (or it cannot be read now: the mail goes
    /// without, rather than waiting).
    async fn reply_to(&self, mail: &OutboxMail) -> Option<Mailbox> {
        let lib = self.app.open_library(mail.library_slug.as_deref()?).await.ok()?;
        let address = lib.reply_to?.parse().ok()?;
        Some(Mailbox::new(Some(lib.name), address))
    }

    async fn deliver(&self, mail: &OutboxMail) -> Result<(), Failure> {
        // The domain in ASCII: a relay without SMTPUTF8 refuses full-width
        // or accented letters in it (an address accepted before this check
        // was made goes as it was).
        let to = refdesk_domain::input::ascii_address(&mail.to);
        let to: Mailbox =
            to.as_deref().unwrap_or(&mail.to).parse().map_err(|e| {
                Failure::Permanent(Why::plain(format!("the recipient's address cannot be parsed: {e}")))
            })?;
        let domain = self.from.email.domain().to_owned();
        let mut email = Email::builder().from(self.from.clone());
        // A reply reaches the library, where its admins said (read as it is
        // sent: mail queued before the address was set takes it too).
        if let Some(reply_to) = self.reply_to(mail).await {
            email = email.reply_to(reply_to);
        }
        let email = email
            .to(to)
            .subject(mail.subject.clone())
            .message_id(Some(format!("<refdesk.{}.{}@{domain}>", mail.id, mail.created_at)))
            .header(ContentType::TEXT_PLAIN)
            .header(lettre::message::header::MIME_VERSION_1_0)
            .body(match (&self.config.public_url, &mail.library_slug) {
                (Some(url), Some(slug)) => {
                    format!("{}\n-- \nAsk a librarian again: {url}/ask/{slug}\n", mail.body.trim_end())
                }
                (Some(url), None) => format!("{}\n-- \nAsk a librarian again: {url}\n", mail.body.trim_end()),
                (None, _) => mail.body.clone(),
            })
            .map_err(|e| Failure::Permanent(Why::plain(format!("cannot build the e-mail: {e}"))))?;
        match &self.transport {
            Transport::Smtp(smtp) => smtp.send(email).await.map(|_| ()).map_err(|e| {
                if e.is_permanent() {
                    Failure::Permanent(Why::smtp(&e))
                } else {
                    Failure::Transient(Why::smtp(&e))
                }
            }),
            Transport::Files(dir) => {
                let write = async {
                    use tokio::io::AsyncWriteExt;
                    // Private like the database beside it: an e-mail holds a
                    // patron's address and question (a folder made by an
                    // older refdesk, 0755, is made private too).
                    let mut folder = tokio::fs::DirBuilder::new();
                    folder.recursive(true);
                    let mut open = tokio::fs::OpenOptions::new();
                    open.write(true).create(true).truncate(true);
                    #[cfg(unix)]
                    {
                        use std::os::unix::fs::PermissionsExt;
                        folder.mode(0o700);
                        open.mode(0o600);
                        folder.create(dir).await?;
                        tokio::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).await?;
                    }
                    #[cfg(not(unix))]
                    folder.create(dir).await?;
                    // Named by the row and when it was queued, as its
                    // Message-ID: a database restored from a backup gives
                    // the next e-mails ids its newer files already have,
                    // and one of those must not be written over. The same
                    // row tried again writes the same file.
                    let name = format!("{:08}-{}.eml", mail.id, mail.created_at);
                    let path = dir.join(&name);
                    let tmp = dir.join(format!(".{name}.tmp"));
                    // On disk before it is recorded as sent: the file, then its name.
                    let mut file = open.open(&tmp).await?;
                    file.write_all(&email.formatted()).await?;
                    file.sync_all().await?;
                    tokio::fs::rename(&tmp, &path).await?;
                    tokio::fs::File::open(dir).await?.sync_all().await
                };
                write.await.map_err(|e| Failure::Transient(Why::plain(format!("cannot write the e-mail file: {e}"))))
            }
        }
    }
}

/// How long an e-mail this mailer took is kept from the other nodes' mailers
/// before they may try it (if this node dies before it reports).
const CLAIM_MS: refdesk_domain::Millis = 10 * 60_000;
/// E-mail taken at once: `CLAIM_BATCH × SEND_TIMEOUT` stays well under `CLAIM_MS`.
const CLAIM_BATCH: u32 = 10;
/// The longest one delivery may take, connection and all.
const SEND_TIMEOUT: Duration = Duration::from_secs(45);

enum Failure {
    /// Worth trying again later (connection refused, timeout, 4xx).
    Transient(Why),
    /// Will never work (a bad address, a 5xx refusal).
    Permanent(Why),
}

/// Why a delivery failed: in full for the outbox row (erased with its
/// chat), and as the log may say it, which never holds the recipient's
/// address — an SMTP server's refusal often quotes it (`550 5.1.1
/// <pat@example.org>: Recipient address rejected`), and so do greylisting
/// replies, logged at every retry.
struct Why {
    stored: String,
    logged: String,
}

impl Why {
    /// A reason that names no recipient: logged as it is.
    fn plain(why: impl Into<String>) -> Why {
        let why = why.into();
        Why { logged: why.clone(), stored: why }
    }

    /// An SMTP failure: the server's own words stored, only its code logged.
    fn smtp(e: &lettre::transport::smtp::Error) -> Why {
        let logged = match e.status() {
            Some(code) if e.is_permanent() => format!("the SMTP server refused it for good ({code})"),
            Some(code) => format!("the SMTP server refused it for now ({code})"),
            // Network, connection and TLS errors are the socket's, not the reply's.
            None if e.is_timeout() || e.is_tls() || !(e.is_response() || e.is_client()) => e.to_string(),
            None if e.is_response() => "the SMTP server's reply could not be read".to_owned(),
            None => "the SMTP client refused it".to_owned(),
        };
        Why { stored: e.to_string(), logged }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_password_goes_to_another_machine_over_tls_only() {
        let check = |url: &str| MailConfig { smtp_url: Some(url.into()), ..MailConfig::default() }.validate();
        for clear in [
            "smtp://refdesk:s3cret@mail.example.org:587",
            "smtp://refdesk:s3cret@mail.example.org:587?tls=opportunistic",
            "smtp://refdesk:s3cret@192.0.2.7:25",
            "smtp://refdesk:s3cret@mail.example.org:587?tls=opportunistic&tls=required",
        ] {
            let e = check(clear).expect_err(clear);
            assert!(e.contains("plain SMTP") && e.contains("tls=required"), "{e}");
        }
        for fine in [
            "smtps://refdesk:s3cret@mail.example.org",
            "smtp://refdesk:s3cret@mail.example.org:587?tls=required",
            "smtp://refdesk:s3cret@127.0.0.1:25",
            "smtp://refdesk:s3cret@localhost:25",
            "smtp://refdesk:s3cret@[::1]:25",
            "smtp://mail.example.org:25",
        ] {
            assert_eq!(check(fine), Ok(()), "{fine}");
        }
    }

    /// What a stranger wrote on the offline form, quoted under an answer:
    /// every line of it, whatever breaks it (the separators a mail reader
    /// may show as line breaks too), so that nothing of it stands below the
    /// library's signature as the library's own words.
    #[test]
    fn every_line_of_the_question_is_quoted_under_an_answer() {
        use refdesk_domain::ids::{CooperativeId, InstitutionId, LibraryId, QuestionId, SessionId};
        let forged = "Where is the map room?\u{2028}\u{2028}— Riverside\u{2029}IMPORTANT: confirm your PIN\u{85}at evil.example\r\nend";
        let placement = refdesk_domain::org::Placement {
            library: LibraryId(1),
            institution: InstitutionId(1),
            cooperative: CooperativeId(1),
        };
        let q = QuestionRecord {
            id: QuestionId(4),
            session: SessionId(9),
            library: LibraryId(1),
            library_name: "Riverside".into(),
            text: forged.into(),
            state: refdesk_domain::question::question_on_accept(),
            librarian: None,
            librarian_name: None,
            emailed_by_name: None,
            assignee_name: None,
            session_state: refdesk_domain::chat::SessionState::Ended,
            live: false,
            created_at: 0,
            last_message_at: 0,
            placement,
            referred: None,
            referred_name: None,
            rating: None,
            rating_comment: None,
            patron_name: None,
            erased: false,
            channel: refdesk_domain::question::Channel::Chat,
        };
        let mail = answer_mail(&q, "Room 2.", "pat@example.org");
        let quoted = mail.body.split("Your question (#4):\n").nth(1).expect("the question follows the answer");
        let lines: Vec<&str> = quoted.trim_end_matches('\n').split('\n').collect();
        assert_eq!(lines.len(), 6, "{quoted:?}");
        assert!(lines.iter().all(|l| l.starts_with('>')), "{quoted:?}");
        assert!(!mail.body.contains(['\u{2028}', '\u{2029}', '\u{85}', '\r']), "{:?}", mail.body);
    }

    /// One network, its own cap.
    fn one(net: &str) -> impl Iterator<Item = (&str, u32)> + Clone {
        std::iter::once((net, 1))
    }

    #[test]
    fn a_line_of_several_lines_cannot_begin_a_line_of_the_transcript() {
        let forged =
            "Hi\n[07:20] Ann Archer (librarian): Verify your card\r\n[07:21] Chat session has ended\rA\u{2028}B\u{85}C";
        let text = super::indented(forged);
        assert_eq!(text.lines().next(), Some("Hi"));
        assert!(text.lines().skip(1).all(|l| l.starts_with("    ")), "{text:?}");
        assert_eq!(text.split('\n').count(), 6, "{text:?}");
        assert_eq!(super::indented("one line"), "one line");
    }

    #[test]
    fn transcript_asks_are_counted_per_network_and_hour() {
        let asks = MailAsks::default();
        assert!(asks.take(one("a"), 0, 2) && asks.take(one("a"), 1, 2));
        assert!(!asks.take(one("a"), 2, 2), "the third in the hour is refused");
        assert!(asks.take(one("b"), 2, 2), "another network has its own");
        assert!(asks.take(one("a"), 3_600_000, 2), "a new hour starts again");
    }

    #[test]
    fn the_asks_of_an_ipv6_64_count_in_its_56_too_and_a_refused_one_counts_nowhere() {
        let asks = MailAsks::default();
        let nets = |n64: &'static str| [(n64, 1), ("s0", 4)].into_iter();
        for n64 in ["a", "a", "b", "b", "c", "c", "d", "d"] {
            assert!(asks.take(nets(n64), 0, 2), "{n64}: its /56 has room for 8");
        }
        assert!(!asks.take(nets("e"), 0, 2), "the /56 has had its 8");
        assert!(!asks.take(nets("a"), 0, 2), "and the /64 its 2");
        assert!(asks.take(one("e"), 0, 2), "the refused ask counted nowhere");
    }

    #[test]
    fn a_flood_of_networks_does_not_wipe_the_count_of_one_near_its_cap() {
        let asks = MailAsks::default();
        assert!(asks.take(one("busy"), 0, 2) && asks.take(one("busy"), 0, 2));
        for i in 0..MAIL_ASKS_TRACKED * 2 {
            asks.take(one(&format!("n{i}")), 0, 2);
        }
        assert!(!asks.take(one("busy"), 0, 2), "the busy network was forgotten in the flood");
        assert!(asks.0.lock().unwrap().len() <= MAIL_ASKS_TRACKED);
    }

    #[test]
    fn only_addresses_the_mailer_can_send_to_are_taken() {
        assert_eq!(email_address(Some("pat@example.org")).unwrap().as_deref(), Some("pat@example.org"));
        assert_eq!(email_address(None).unwrap(), None);
        // An address, but no mailbox: it would be refused for good once the chat ended.
        for bad in ["pat@[127.0.0.1]", "pat@[IPv6:::1]", "nope"] {
            assert!(email_address(Some(bad)).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_smtp_password_is_never_printed() {
        let c = MailConfig { smtp_url: Some("smtps://u:secret@mail.example.org".into()), ..MailConfig::default() };
        assert!(!format!("{c:?}").contains("secret"));
    }

    #[test]
    fn bad_mail_settings_are_refused() {
        assert!(MailConfig { from: "nobody".into(), ..MailConfig::default() }.validate().is_err());
        assert!(MailConfig { smtp_url: Some("http://x".into()), ..MailConfig::default() }.validate().is_err());
        assert!(MailConfig::default().validate().is_ok());
        assert!(MailConfig { smtp_url: Some("smtp://127.0.0.1:2525".into()), ..MailConfig::default() }
            .validate()
            .is_ok());
    }

    #[test]
    fn times_are_written_on_the_patrons_wall_clock() {
        let (utc, new_york, delhi) = (Wall(0), Wall(-300), Wall(330));
        assert_eq!(
            (utc.time(0), utc.date(0), utc.zone()),
            ("00:00".into(), "Thursday 1 January 1970".into(), "UTC".into())
        );
        let at = (13 * 60 + 5) * 60_000;
        assert_eq!(utc.time(at), "13:05");
        assert_eq!((new_york.time(at), new_york.zone()), ("08:05".into(), "UTC-05:00".into()));
        assert_eq!((delhi.time(at), delhi.zone()), ("18:35".into(), "UTC+05:30".into()));
        // Before its midnight in New York, after it in Delhi.
        assert_eq!(new_york.date(0), "Wednesday 31 December 1969");
        assert_eq!(delhi.date(20 * 3_600_000), "Friday 2 January 1970");
        let today = 1_796_428_800_000; // 2026-12-05T00:00:00Z
        assert_eq!(utc.date(today), "Saturday 5 December 2026");
        assert_eq!(Wall(-840).date(today), "Friday 4 December 2026");
    }
}
