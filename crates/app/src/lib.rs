//! refdesk's use cases. Each one authorizes (through `refdesk_domain::authz`),
//! applies the domain rule, persists through the [`Store`], and lets the
//! store's commit publish the resulting events on the [`bus::Bus`].
//!
//! - [`App`]: the use cases, one method each.
//! - [`bus`]: in-process fan-out of committed events to connections.
//! - [`feed`]: one connection's view of the bus: subscriptions, resume,
//!   gap filling and the visibility filter (I1, I3).
//! - [`auth`]: passwords (argon2id) and secret tokens.
//! - [`mail`]: the e-mail sent (answers, transcripts) and the outbox's sender.
//! - [`nats`]: the link between nodes' buses when several serve one cooperative.
//! - [`metrics`]: what the node counts for the operator's `/metrics`.
//! - `questions`: the question list and its actions on live chats (R4, B1).
//! - `desk`: the chat monitor (My / ALL), conferencing and transfer.
//! - [`staff`]: availability, presence, sign-off, roll-up, staff management, the offline form.
//! - `im`: staff-to-staff direct messages.
//! - [`reports`]: statistics, as tables.
//! - [`privacy`]: retention periods, erasing a patron's data, the audit list.
//! - [`setup`]: a new service without the demo; cooperatives, institutions, libraries.
//! - [`demo`]: the demo cooperative.
//!
//! This crate never knows about HTTP: it speaks [`AppError`], which the
//! server maps to status codes once.
#![forbid(unsafe_code)]

pub mod audit;
pub mod auth;
pub mod blocks;
pub mod bus;
mod chat;
pub mod demo;
mod desk;
pub mod devices;
pub mod erasures;
pub mod feed;
mod flight;
mod im;
pub mod mail;
pub mod metrics;
pub mod nats;
pub mod privacy;
mod questions;
pub mod reports;
pub mod setup;
mod signin;
pub mod staff;
#[cfg(test)]
mod testing;
pub mod turns;
pub mod zone;

pub use chat::{PatronPage, StartChat, Started, LISTED_FOR};
pub use desk::{Monitor, Transfer};
pub use questions::{ActOutcome, ListFilter, QuestionAction, QuestionDetail};
pub use staff::{FormReceipt, LibraryStatus, OfflineForm, Presence};

use refdesk_domain::DomainError;
use refdesk_domain::Millis;
use refdesk_store::{Store, StoreError};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

/// Why a use case did not succeed.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// A rule refused it.
    #[error(transparent)]
    Domain(#[from] DomainError),
    /// No valid sign-in or chat token.
    #[error("not signed in")]
    Unauthenticated,
    /// Something broke inside (the store, a task). For logs only.
    #[error("internal error: {0}")]
    Internal(#[source] Failure),
    /// The database cannot be reached or cannot write just now (down,
    /// read-only, out of space): trying again later may work (what was asked
    /// was not done, unless a connection was lost during its commit). For
    /// logs only, like `Internal`.
    #[error("unavailable: {0}")]
    Unavailable(#[source] Failure),
}

/// Something that broke inside, with what broke underneath when there is
/// something (a database error keeps the driver's error as its source).
#[derive(Debug)]
pub struct Failure {
    what: String,
    source: Option<Box<dyn std::error::Error + Send + Sync>>,
}

impl Failure {
    /// A failure caused by `source`.
    pub fn caused_by(what: impl Into<String>, source: impl std::error::Error + Send + Sync + 'static) -> Failure {
        Failure { what: what.into(), source: Some(Box::new(source)) }
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.source {
            // Most logs print only the message: it says what was underneath too.
            Some(source) => write!(f, "{}: {source}", self.what),
            None => f.write_str(&self.what),
        }
    }
}

impl std::error::Error for Failure {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source.as_deref().map(|e| e as &(dyn std::error::Error + 'static))
    }
}

impl From<&str> for Failure {
    fn from(what: &str) -> Failure {
        Failure { what: what.to_owned(), source: None }
    }
}

impl From<String> for Failure {
    fn from(what: String) -> Failure {
        Failure { what, source: None }
    }
}

impl From<StoreError> for AppError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Domain(d) => AppError::Domain(d),
            e @ StoreError::Unavailable { .. } => {
                AppError::Unavailable(Failure::caused_by("the database is unavailable", e))
            }
            other => AppError::Internal(Failure::caused_by("the store failed", other)),
        }
    }
}

impl AppError {
    /// Whether this is `busy`: the line of password hashes is full.
    pub fn is_busy(&self) -> bool {
        matches!(self, AppError::Domain(DomainError::Limited { code: "busy", .. }))
    }

    /// A record the input names and that does not exist is bad input (the
    /// field is wrong); any other failure — the database down, say — stays
    /// what it is, and is never reported as the caller's mistake.
    pub fn missing_is_invalid(self, field: &'static str, message: &'static str) -> AppError {
        match self {
            AppError::Domain(DomainError::NotFound(_)) => DomainError::invalid(field, message).into(),
            other => other,
        }
    }
}

/// Result of a use case.
pub type AppResult<T> = Result<T, AppError>;

/// Password hashes running or waiting for their turn at once, at most
/// ([`hashes_at_once`] run): a line a few seconds long at the worst.
pub const HASHES_WAITING: usize = 64;

/// Password hashes running at once on a node: one core fewer than the
/// process may run on, one at least and four at most. Each takes a core
/// for tens of milliseconds: a flood of sign-ins (each within its rate, from
/// many networks) keeps that many cores busy for as long as it lasts, and
/// must leave one to the chats. On a machine of two cores, one.
pub fn hashes_at_once() -> usize {
    let cores = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
    cores.saturating_sub(1).clamp(1, 4)
}

/// Places in a line of their own for sign-ins from a network the account
/// signed in from lately ([`signin`]): sign-ins from everywhere else that
/// fill [`HASHES_WAITING`] do not keep a librarian out at her desk.
pub const KNOWN_HASHES_WAITING: usize = 16;

/// Limits and timings the use cases enforce. Every field has a safe default.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Longest chat message, in characters.
    pub max_message_chars: usize,
    /// After how many seconds a waiting chat is offered to the whole cooperative.
    pub rollup_seconds: u64,
    /// How long a staff sign-in lasts, in hours.
    pub login_hours: u64,
    /// Frames the sockets of one chat token, or of one staff sign-in, may
    /// send per second together, sustained (a staff member's sockets
    /// together five times that; and a staff member's HTTP writes).
    pub frames_per_second: u32,
    /// Frames they may send in a burst.
    pub frame_burst: u32,
    /// Frames the patrons' sockets of one network (IPv4 address, IPv6 /64)
    /// may send per second together, beyond each chat's own budget (bursts
    /// of three seconds' worth): a chat's token is anyone's for the asking,
    /// and each `send` or `resume` is work for the store.
    pub patron_frames_per_second_per_address: u32,
    /// Largest WebSocket frame (and message) accepted, in bytes: 32 KiB,
    /// a 4,000-character line in JSON with room. A message sent in pieces
    /// and never finished is held whole until the socket closes, however
    /// long it answers pings: a socket holds about two and a half times this.
    pub max_frame_bytes: usize,
    /// Events queued for one slow connection before it must catch up from the store.
    pub connection_queue: usize,
    /// Minutes after a staff member's last connection closed before they are
    /// taken off duty automatically.
    pub signoff_minutes: u64,
    /// Minutes without a message after which an active chat is ended by
    /// refdesk (R5: a chat ends by the patron, the librarian, or a timeout).
    pub idle_chat_minutes: u64,
    /// Sign-in attempts one address may make per minute; a browser that
    /// signed in to the account lately has as many of its own for it
    /// ([`devices`]).
    pub logins_per_minute: u32,
    /// Sign-in attempts one account may take per hour on a node, whatever
    /// the network, but from those it signed in from in the last 30 days
    /// (`429 too_many_attempts` beyond; a sign-in gives its attempt back).
    pub failed_logins_per_account_per_hour: u32,
    /// Chats and offline questions one address may start per minute (a
    /// library's public computers may share one address: not too low).
    pub starts_per_minute: u32,
    /// Requests one address may make per minute with a chat's token
    /// (ending, rating, asking for the transcript): each is a write.
    pub patron_posts_per_minute: u32,
    /// Pages of their chat one address may read per minute with a chat's
    /// token (`GET /api/chat`): each is a read of up to 501 lines, and the
    /// readers are few and shared by everyone.
    pub patron_reads_per_minute: u32,
    /// Staff cookies and chat tokens one address may present per minute
    /// that match nothing (made up, mistyped, expired): each is a read.
    /// Past it, the address's credentials are refused (`429`) before any
    /// read until a minute's worth has refilled.
    pub bad_credentials_per_minute: u32,
    /// Answers e-mailed from the question list to one address in 24 hours
    /// (`429 too_many_mails` beyond): a patron asks a few questions a day,
    /// and refdesk's own address must not be turned on anyone's inbox.
    pub answers_per_recipient_per_day: u32,
    /// Answers one staff member e-mails from the question list in 24 hours,
    /// to anyone (`429 too_many_mails` beyond): each address has its own
    /// cap, so a stolen sign-in could otherwise mail any number of them.
    pub answers_per_staff_per_day: u32,
    /// Entries a question's timeline may hold from notes and messages to
    /// its librarian (`429 question_full` beyond); the other actions (an
    /// answer, a code, an assignment, closing) may add a hundred more. A
    /// question is erased whole with its timeline: looping notes on one
    /// must not grow it without bound.
    pub max_question_entries: u32,
    /// IMs a staff member may send in 24 hours, to all colleagues together
    /// (`429 too_many_ims` beyond): the one staff write no chat or question
    /// bounds, so a stolen sign-in looping IMs cannot fill the disk.
    pub ims_per_staff_per_day: u32,
    /// Chat lines, librarian notes and question-list actions (notes,
    /// messages, answers, codes, assignments, claims, referrals, status
    /// changes) one staff member may write a day (a UTC day), on each node:
    /// a stolen sign-in within its frame budget would otherwise write a line
    /// of 16 KB twenty times a second into every chat it may reach, or an
    /// entry in a question's history, all day. A chat's first code and
    /// closing an open question always go.
    pub staff_lines_per_day: u32,
    /// Reads (`GET`, `HEAD`) one staff member may ask a second over HTTP,
    /// all their sign-ins together, in bursts of ten seconds' worth, on
    /// each node: a question's page or a page of a chat is up to a megabyte
    /// or so, and a stolen sign-in looping them kept both cores and the
    /// shared readers busy.
    pub staff_reads_per_second: u32,
    /// Chats waiting at once in one library's queue: beyond it a new chat
    /// is refused (the patron is offered the form). Bounds what a flood of
    /// starts can put in front of a librarian.
    pub max_waiting_per_library: u32,
    /// Chats waiting at once from one client address (IPv6: per /64) on a
    /// node. A library's public computers share one address: not too low.
    pub max_waiting_per_address: u32,
    /// Minutes a chat may wait for a librarian before refdesk ends it (the
    /// patron is told; with an e-mail address it stays as a missed chat).
    pub waiting_expires_minutes: u64,
    /// Seconds a waiting patron's pages stay closed before the queue says
    /// they have closed the chat page (a reload or a move to another page
    /// of the library's site is not told). 0: at once.
    pub patron_away_seconds: u64,
    /// Hours a block on an abusive patron lasts unless the librarian says
    /// otherwise (a library's public computer must not be blocked for long).
    pub block_hours: u64,
    /// Longest block a librarian may set, in hours.
    pub max_block_hours: u64,
    /// E-mails patrons may have sent to one address per day (transcripts):
    /// refdesk is not a way to mail strangers.
    pub patron_mails_per_recipient_per_day: u32,
    /// Transcript e-mails one client address (IPv6: per /64) may ask for per hour.
    pub patron_mails_per_address_per_hour: u32,
    /// Offline-form questions one client address (IPv6: per /64) may send
    /// a day: each is a `new` question in a library's list.
    pub form_questions_per_address_per_day: u32,
    /// Chats one client address (IPv6: per /64) may start in 24 hours.
    /// Every chat is kept, answered or not (its question and the lines
    /// written before a librarian takes it): without this a stranger
    /// starting and ending chats all day, within `starts_per_minute`, would
    /// fill the disk. A library's public computers share one address: not
    /// too low.
    pub chats_per_address_per_day: u32,
    /// Chats and offline-form questions one library may take in 24 hours,
    /// from every address together: what bounds the rows strangers with
    /// many addresses (an IPv6 /48 is 65,536 networks of their own) can add
    /// to one library a day. Far above a library's busiest day.
    pub starts_per_library_per_day: u32,
    /// Lines a patron may add after their question while no librarian has
    /// taken the chat yet: a stranger's chat cannot fill the store while it
    /// waits (a librarian then reads what they wrote).
    pub patron_lines_before_accept: u32,
    /// Characters of those lines together: 20 lines of 4,000 four-byte
    /// characters would be 320 KB a waiting chat, and a day's waiting chats
    /// of one library (`starts_per_library_per_day`) 1.6 GB.
    pub patron_chars_before_accept: u32,
    /// Characters of the patron's lines after the question in one chat,
    /// taken or not: `max_chat_lines` lines of 4,000 four-byte characters
    /// would be 32 MB a chat. Far above what a patron types in a long chat.
    pub patron_chars_per_chat: u32,
    /// Lines its patron sees that a chat may hold before they may add no
    /// more (lines for staff are not counted); staff may add lines until it
    /// holds 100 more in all: no chat grows without bound.
    pub max_chat_lines: u32,
    /// Seconds a client has to send a request's whole header, counted from
    /// when the connection opens or its previous answer went out: a slow or
    /// silent client (and an idle keep-alive connection) is closed after it.
    pub header_read_seconds: u64,
    /// Seconds an HTTP connection with no request being handled may move
    /// no byte (a client that stops reading an answer) before it is closed.
    pub idle_seconds: u64,
    /// Seconds a request body may take to arrive, from the end of its header.
    pub body_seconds: u64,
    /// Connections one node holds at once. `0`: derived from the open-file
    /// limit (less a reserve for the database and files), at most 10000.
    pub max_connections: usize,
    /// Connections one client address holds at once (IPv6: per /64). A
    /// library's public computers share one address: not too low.
    pub connections_per_address: usize,
    /// WebSockets open at once on one chat's token (a patron with a few
    /// tabs; not a visitor multiplying the per-socket limits).
    pub sockets_per_chat: usize,
    /// WebSockets open at once on one staff sign-in.
    pub sockets_per_sign_in: usize,
    /// Sign-ins one staff account holds at once (its devices and browsers):
    /// a new one ends the oldest past it. Each has sockets and budgets of
    /// its own; a password signing in again and again would otherwise
    /// multiply them (and its rows) without end.
    pub sign_ins_per_account: u32,
    /// WebSockets one client address holds at once (IPv6: per /64).
    pub sockets_per_address: usize,
    /// WebSockets one client address may open per minute: each is a
    /// handshake, an `auth` and, for a patron, a free replay of the chat, so
    /// opening and closing sockets in a loop must not be free.
    pub sockets_opened_per_minute: u32,
    /// Seconds between the server's WebSocket pings; a socket that shows no
    /// sign of life for two of them is closed.
    pub ws_ping_seconds: u64,
    /// Seconds one frame may take to go out before the socket is closed as
    /// one that does not drain.
    pub ws_send_seconds: u64,
    /// Lines read from the store and sent at a time when replaying a chat
    /// or an IM conversation: the next page is read only once the last is sent.
    pub replay_page: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_message_chars: 4000,
            rollup_seconds: 60,
            login_hours: 12,
            frames_per_second: 20,
            frame_burst: 60,
            patron_frames_per_second_per_address: 100,
            max_frame_bytes: 32 * 1024,
            connection_queue: 256,
            signoff_minutes: 5,
            idle_chat_minutes: 30,
            logins_per_minute: 10,
            failed_logins_per_account_per_hour: 20,
            starts_per_minute: 20,
            patron_posts_per_minute: 60,
            patron_reads_per_minute: 300,
            bad_credentials_per_minute: 120,
            answers_per_recipient_per_day: 20,
            answers_per_staff_per_day: 200,
            max_question_entries: 500,
            ims_per_staff_per_day: 2_000,
            staff_lines_per_day: 5_000,
            staff_reads_per_second: 50,
            max_waiting_per_library: 600,
            max_waiting_per_address: 20,
            waiting_expires_minutes: 15,
            patron_away_seconds: 10,
            block_hours: 24,
            max_block_hours: 24 * 30,
            patron_mails_per_recipient_per_day: 5,
            patron_mails_per_address_per_hour: 10,
            form_questions_per_address_per_day: 30,
            chats_per_address_per_day: 200,
            starts_per_library_per_day: 5_000,
            patron_lines_before_accept: 20,
            patron_chars_before_accept: 8_000,
            patron_chars_per_chat: 100_000,
            max_chat_lines: 2000,
            header_read_seconds: 15,
            idle_seconds: 60,
            body_seconds: 30,
            max_connections: 0,
            connections_per_address: 256,
            sockets_per_chat: 4,
            sockets_per_sign_in: 8,
            sign_ins_per_account: 20,
            sockets_per_address: 128,
            sockets_opened_per_minute: 300,
            ws_ping_seconds: 30,
            ws_send_seconds: 10,
            replay_page: 50,
        }
    }
}

/// Where "now" comes from. Tests use [`Clock::manual`] to move time without sleeping.
#[derive(Clone, Debug)]
pub struct Clock(Option<Arc<AtomicI64>>);

impl Clock {
    /// The system clock.
    pub fn system() -> Clock {
        Clock(None)
    }

    /// A clock that only moves when told to.
    pub fn manual(start: Millis) -> Clock {
        Clock(Some(Arc::new(AtomicI64::new(start))))
    }

    /// Moves a manual clock forward; no effect on the system clock.
    pub fn advance(&self, ms: Millis) {
        if let Some(t) = &self.0 {
            t.fetch_add(ms, Ordering::SeqCst);
        }
    }

    /// Now, in milliseconds since the epoch.
    pub fn now(&self) -> Millis {
        match &self.0 {
            Some(t) => t.load(Ordering::SeqCst),
            None => std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as Millis),
        }
    }
}

/// Connections that may re-read from the store at once (see [`App::rereads`]).
const REREADS: usize = 8;

/// The open list of libraries as last read ([`App::listed_libraries`]).
#[derive(Default)]
struct Listed {
    /// The list, and when it was read.
    read: Option<(Millis, Arc<Vec<refdesk_store::LibraryRecord>>)>,
    /// When a read of it last failed: the store is not asked again for
    /// [`chat::LISTED_FOR`].
    failed_at: Option<Millis>,
    /// Libraries added on this node: a read begun before one is not kept.
    changes: u64,
}

/// The application: every use case hangs off this. Cheap to clone, and
/// small: every connection holds one (a waiting patron's socket is mostly
/// what it holds, issue 17), so it is one pointer to [`Parts`].
#[derive(Clone)]
pub struct App(Arc<Parts>);

impl std::ops::Deref for App {
    type Target = Parts;

    fn deref(&self) -> &Parts {
        &self.0
    }
}

/// What an [`App`] shares between its clones.
pub struct Parts {
    /// The source of truth.
    store: Arc<dyn Store>,
    /// Fan-out of committed events.
    bus: Arc<bus::Bus>,
    /// Limits in force.
    limits: Arc<Limits>,
    /// Time.
    clock: Clock,
    /// When this app was assembled (the node started), by `clock`.
    started: Millis,
    /// Wakes the mailer when an e-mail is queued.
    mail_wakeup: Arc<tokio::sync::Notify>,
    /// Live staff connections on this node.
    connections: staff::SharedConnections,
    /// Password hashing is slow and takes 19 MiB each: [`hashes_at_once`]
    /// at a time, so a burst of sign-ins cannot exhaust memory, the blocking
    /// threads or the cores.
    hashing: Arc<tokio::sync::Semaphore>,
    /// Places in line for [`App::hash_work`] ([`HASHES_WAITING`]).
    hash_line: Arc<tokio::sync::Semaphore>,
    /// Places for sign-ins from a known network ([`KNOWN_HASHES_WAITING`]).
    known_line: Arc<tokio::sync::Semaphore>,
    /// Sign-in attempts left per account (see [`signin`]).
    sign_ins: Arc<signin::FailedSignIns>,
    /// The key of browsers' tokens ([`devices`]), once read from the store.
    device_key: tokio::sync::OnceCell<devices::DeviceKey>,
    /// When the store last failed to give it (0: never).
    device_key_failed_at: std::sync::atomic::AtomicI64,
    /// Whether anyone is on duty, per cooperative, and when that was read
    /// (see `App::library_status`).
    on_duty: staff::OnDutyCache,
    /// Held by the one request reading a cooperative's status from the store.
    status_reading: Arc<tokio::sync::Mutex<()>>,
    /// Each cooperative's waiting chats as last read ([`App::waiting_now`]).
    waiting: Arc<std::sync::Mutex<std::collections::HashMap<refdesk_domain::ids::CooperativeId, chat::WaitingRead>>>,
    /// Held by the one request reading a cooperative's waiting chats (one
    /// per cooperative).
    waiting_reading: Arc<
        std::sync::Mutex<std::collections::HashMap<refdesk_domain::ids::CooperativeId, Arc<tokio::sync::Mutex<()>>>>,
    >,
    /// Libraries by slug, with when each was read: only those found are kept
    /// (at most the libraries there are), so the open entry points (a
    /// library's status, on every page the widget is on) need not read one
    /// for every request. A library is renamed now and then: each is read
    /// again after [`chat::LISTED_FOR`] (one renamed on this node, at once).
    libraries: Arc<std::sync::Mutex<std::collections::HashMap<String, (refdesk_store::LibraryRecord, Millis)>>>,
    /// Every library, as last read for the open list ([`App::listed_libraries`]).
    listed: Arc<std::sync::Mutex<Listed>>,
    /// Held by the one request reading the open list from the store.
    listing: Arc<tokio::sync::Mutex<()>>,
    /// Connections re-reading what they follow at once (after a resync every
    /// connection of the node does): a few at a time, so the database is
    /// not flooded; the others wait their turn.
    rereads: Arc<tokio::sync::Semaphore>,
    /// Transcripts asked for per network this hour (see [`mail::MailAsks`]).
    mail_asks: Arc<mail::MailAsks>,
    /// When each library that took its day's chats was last logged as
    /// such ([`App::note_day_spent`]); one entry per library at most.
    day_spent: Arc<std::sync::Mutex<std::collections::HashMap<refdesk_domain::ids::LibraryId, Millis>>>,
    /// Held while this node applies the retention periods: one run at a
    /// time, however long a run takes.
    retention: Arc<tokio::sync::Mutex<()>>,
    /// What each staff member wrote today on this node (`staff_lines_per_day`).
    written: chat::Written,
    /// The changes each admin made today on this node
    /// ([`audit::ADMIN_CHANGES_PER_DAY`]).
    admin_changes: chat::Written,
    /// Each staff member's own line for reports and searches by words.
    long_reads: turns::Lines,
    /// The erasure journal, when the server keeps one (`erasures`).
    erasures: std::sync::OnceLock<Arc<erasures::Journal>>,
    /// The journal's entries whose chats wait for their end to be erased
    /// again (only those chats).
    erasures_waiting: std::sync::Mutex<Vec<erasures::Entry>>,
    /// Chats of a departed librarian whose patron had no page open, each
    /// looked at again once a page reloading or reconnecting would be back
    /// ([`App::hand_back`]): one wait per chat, however often the rounds
    /// find it meanwhile.
    handing_back: std::sync::Mutex<std::collections::HashSet<refdesk_domain::ids::SessionId>>,
}

impl App {
    /// Runs a password hash or check off the async threads, a few at a time.
    /// Past [`HASHES_WAITING`] running or waiting, `busy` at once: sign-ins
    /// from many networks (each within its rate) would otherwise queue
    /// without end, holding their requests, and staff wait behind them.
    pub async fn hash_work<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> AppResult<T> {
        let place = self.hash_place(&self.hash_line)?;
        self.hash_in_place(place, f).await
    }

    /// A place in `line` for a hash, or `busy` at once.
    fn hash_place(&self, line: &Arc<tokio::sync::Semaphore>) -> AppResult<tokio::sync::OwnedSemaphorePermit> {
        line.clone().try_acquire_owned().map_err(|_| {
            DomainError::Limited {
                code: "busy",
                reason: "too many sign-ins at once; try again in a few seconds".into(),
            }
            .into()
        })
    }

    /// [`App::hash_work`] with a place already taken.
    async fn hash_in_place<T: Send + 'static>(
        &self,
        place: tokio::sync::OwnedSemaphorePermit,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> AppResult<T> {
        let permit = self
            .hashing
            .clone()
            .acquire_owned()
            .await
            .map_err(|e| AppError::Internal(Failure::caused_by("hashing", e)))?;
        self.metrics().password_work.inc();
        // The place and the turn go with the hash: a caller that goes away
        // (a client gone, a timeout) does not free them while it runs.
        let hash = move || {
            let _held = (place, permit);
            f()
        };
        tokio::task::spawn_blocking(hash).await.map_err(|e| AppError::Internal(Failure::caused_by("hashing", e)))
    }

    /// Runs one turn of a task that must outlive its bugs (the mailer, the
    /// background round): a panic in the turn is logged at `error` and
    /// counted (`refdesk_task_panics_total`), and the task goes on with its
    /// next turn, instead of stopping for the life of the process unseen
    /// (`/readyz` would still say ready). `None` when the turn panicked.
    pub async fn one_turn<T>(&self, task: &'static str, turn: impl std::future::Future<Output = T>) -> Option<T> {
        use futures_util::FutureExt;
        match std::panic::AssertUnwindSafe(turn).catch_unwind().await {
            Ok(out) => Some(out),
            Err(_) => {
                self.metrics().task_panics.get_or_create(&[("task", task)]).inc();
                tracing::error!(task, "a turn of this task panicked (a bug; the panic is logged above); it goes on");
                None
            }
        }
    }

    /// Password hashes running or waiting for their turn now, in both lines.
    pub fn hashes_in_line(&self) -> usize {
        HASHES_WAITING + KNOWN_HASHES_WAITING - self.hash_line.available_permits() - self.known_line.available_permits()
    }

    /// Assembles the app. The store must have been opened with `bus` as its sink.
    pub fn new(store: Arc<dyn Store>, bus: Arc<bus::Bus>, limits: Limits, clock: Clock) -> App {
        App(Arc::new(Parts {
            store,
            bus,
            limits: Arc::new(limits),
            started: clock.now(),
            clock,
            mail_wakeup: Arc::new(tokio::sync::Notify::new()),
            connections: Arc::default(),
            hashing: Arc::new(tokio::sync::Semaphore::new(hashes_at_once())),
            hash_line: Arc::new(tokio::sync::Semaphore::new(HASHES_WAITING)),
            known_line: Arc::new(tokio::sync::Semaphore::new(KNOWN_HASHES_WAITING)),
            sign_ins: Arc::default(),
            device_key: tokio::sync::OnceCell::new(),
            device_key_failed_at: std::sync::atomic::AtomicI64::new(0),
            on_duty: Arc::default(),
            status_reading: Arc::default(),
            waiting: Arc::default(),
            waiting_reading: Arc::default(),
            libraries: Arc::default(),
            listed: Arc::default(),
            listing: Arc::default(),
            rereads: Arc::new(tokio::sync::Semaphore::new(REREADS)),
            mail_asks: Arc::default(),
            day_spent: Arc::default(),
            retention: Arc::default(),
            written: chat::Written::default(),
            admin_changes: chat::Written::default(),
            long_reads: turns::Lines::default(),
            erasures: std::sync::OnceLock::new(),
            erasures_waiting: std::sync::Mutex::default(),
            handing_back: std::sync::Mutex::default(),
        }))
    }

    /// The store, for what the server does with it directly: readiness,
    /// closing it at shutdown, and the tests' look at what was written.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// The bus this node's connections subscribe to.
    pub fn bus(&self) -> &Arc<bus::Bus> {
        &self.bus
    }

    /// The limits in force.
    pub fn limits(&self) -> &Arc<Limits> {
        &self.limits
    }

    /// The app's clock (a manual one in tests).
    pub fn clock(&self) -> &Clock {
        &self.clock
    }

    /// What wakes the mailer when an e-mail is queued.
    pub fn mail_wakeup(&self) -> &Arc<tokio::sync::Notify> {
        &self.mail_wakeup
    }

    /// The node's metrics (held by its bus).
    pub fn metrics(&self) -> &Arc<metrics::Metrics> {
        self.bus.metrics()
    }

    /// Live staff connections on this node.
    pub fn connections(&self) -> &staff::SharedConnections {
        &self.connections
    }

    /// Rollup delay in milliseconds.
    pub fn rollup_ms(&self) -> Millis {
        (self.limits.rollup_seconds as Millis).saturating_mul(1000)
    }
}
