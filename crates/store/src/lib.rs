//! refdesk's storage: one interface, [`Store`], and its backends. SQLite (the
//! embedded default) lives in [`sqlite`]; PostgreSQL, for several nodes
//! sharing one database, in [`postgres`].
//!
//! The store is the source of truth. Every write is committed before its
//! result is returned, and the events it produced are handed to the
//! [`EventSink`] *after* the commit, in commit order — so nothing is ever
//! announced that could still be rolled back (I2), and the bus sees each
//! session's messages in sequence order.
//!
//! Use cases pass a *guard* with each write on a session: the app's rule,
//! evaluated inside the transaction on the row as it is then. That makes
//! check-then-act atomic (I6: two accepts of one chat cannot both pass).
//!
//! SQL lives here and nowhere else; this crate knows nothing of HTTP.
#![forbid(unsafe_code)]

pub mod postgres;
mod sql;
pub mod sqlite;

use async_trait::async_trait;
use refdesk_domain::chat::{Audience, Author, Message, MessageKind, SessionContext, SessionState, SystemEvent};
use refdesk_domain::event::{Event, QueueEntry};
use refdesk_domain::ids::{CooperativeId, InstitutionId, LibraryId, QuestionId, SessionId, StaffId};
use refdesk_domain::org::{Placement, Role, Staff};
use refdesk_domain::question::{Change, QuestionState, ResolutionCode};
use refdesk_domain::{DomainError, Millis};
use serde::Serialize;

/// What can go wrong in the store.
#[derive(Debug, thiserror::Error, Clone)]
pub enum StoreError {
    /// A rule refused the write (a guard, a uniqueness rule, a missing row).
    #[error(transparent)]
    Domain(#[from] DomainError),
    /// The database failed. The message is for logs, never for clients.
    #[error("database error: {0}")]
    Backend(String),
    /// The store is shutting down.
    #[error("the store is closed")]
    Closed,
}

/// How long [`Store::health`] waits for a commit before it says the store
/// cannot commit.
pub const HEALTH_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// Result of a store operation.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// Receives committed events, in commit order. Called on the store's writer
/// thread: it must not block.
pub trait EventSink: Send + Sync {
    /// Hands over the events of one committed batch.
    fn publish(&self, events: Vec<Event>);
}

/// A sink that drops everything (CLI commands that run without a server).
pub struct NoSink;

impl EventSink for NoSink {
    fn publish(&self, _events: Vec<Event>) {}
}

/// Chooses, inside the write's transaction and from the session as it is
/// there, the line a presence change writes (who sees it depends on how the
/// staff member took part until now).
pub type LineFor = Box<dyn for<'a> FnOnce(&'a SessionRecord) -> Option<NewMessage> + Send>;

/// A rule evaluated inside the write's transaction on the session as it is.
/// A backend may evaluate it more than once (on a cached copy first, then on
/// the row): it must only read the session. For appends, the copy's
/// `last_seq` and `last_message_at` may be behind; an append's guard must
/// not depend on them.
pub type Guard = Box<dyn Fn(&SessionRecord) -> Result<(), DomainError> + Send>;

/// R6 as the store applies it inside `set_code`'s transaction: given the
/// question's state, its session and the cooperative's codes, the new state.
pub type Decide = Box<
    dyn for<'a> FnOnce(&'a QuestionState, &'a SessionRecord, &'a [ResolutionCode]) -> Result<QuestionState, DomainError>
        + Send,
>;

/// An e-mail to put in the outbox, in the same transaction as its cause.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewMail {
    /// `answer` or `transcript`.
    pub kind: &'static str,
    /// Recipient address (already parsed).
    pub to: String,
    /// Subject line.
    pub subject: String,
    /// Plain-text body.
    pub body: String,
}

/// An e-mail in the outbox.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct OutboxMail {
    /// Row id; with `created_at`, it makes the stable Message-ID.
    pub id: i64,
    /// `answer` or `transcript`.
    pub kind: String,
    /// Recipient.
    pub to: String,
    /// Subject.
    pub subject: String,
    /// Body.
    pub body: String,
    /// When it was queued.
    pub created_at: Millis,
    /// Delivery attempts so far.
    pub attempts: u32,
    /// When it was delivered, if it was.
    pub sent_at: Option<Millis>,
    /// Why the last attempt failed.
    pub last_error: Option<String>,
}

/// What a question-list action writes, decided by the app from the
/// question and its session as they are inside the transaction.
#[derive(Clone, Debug, Default)]
pub struct QuestionPlan {
    /// The question's new state, if it changes (its differences become timeline entries).
    pub state: Option<QuestionState>,
    /// Further timeline entries (answers, notes, messages).
    pub entries: Vec<Change>,
    /// A line for the live chat.
    pub line: Option<NewMessage>,
    /// An e-mail to send.
    pub mail: Option<NewMail>,
}

/// Decides a question-list action inside its transaction.
pub type Plan =
    Box<dyn for<'a> FnOnce(&'a QuestionRecord, &'a SessionRecord) -> Result<QuestionPlan, DomainError> + Send>;

/// Builds the end-of-chat transcript e-mail, if the patron asked for one,
/// from the session and all its messages (the app filters them through the
/// visibility function).
pub type TranscriptMail = Box<dyn for<'a> FnOnce(&'a SessionRecord, &'a [Message]) -> Option<NewMail> + Send>;

/// The result of a question-list action.
#[derive(Clone, Debug)]
pub struct Acted {
    /// The question after the action.
    pub question: QuestionRecord,
    /// The line written into the live chat, if any.
    pub line: Option<Message>,
    /// The outbox id of the e-mail queued, if any.
    pub mail: Option<i64>,
}

/// A filtered page of the question list.
#[derive(Clone, Debug)]
pub struct QuestionQuery {
    /// Whose scope.
    pub scope: QuestionScope,
    /// Which view.
    pub view: refdesk_domain::actions::View,
    /// Only this status.
    pub status: Option<refdesk_domain::question::Status>,
    /// Only this resolution code.
    pub code: Option<String>,
    /// Created at or after.
    pub from: Option<Millis>,
    /// Created before.
    pub to: Option<Millis>,
    /// Chatted by this librarian.
    pub librarian: Option<StaffId>,
    /// Owned by this library.
    pub library: Option<LibraryId>,
    /// Words to find in the question or its transcript.
    pub text: Option<String>,
    /// Paging: only questions older than this one.
    pub before: Option<QuestionId>,
    /// Page size.
    pub limit: u32,
}

/// A library's notes for staff serving its patrons (catalogue, accounts,
/// databases, fines), linked from every session of its patrons.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PolicyPage {
    /// The library.
    pub library: LibraryId,
    /// Plain text, shown as text.
    pub body: String,
    /// Last change.
    pub updated_at: Millis,
    /// Who changed it last.
    pub updated_by: Option<String>,
}

/// A canned message: a staff member's own, their library's or their
/// cooperative's.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Script {
    /// Its id.
    pub id: i64,
    /// `personal`, `library` or `cooperative`.
    pub scope: String,
    /// The staff member, library or cooperative it belongs to.
    pub owner: i64,
    /// What the picker shows.
    pub title: String,
    /// What it inserts.
    pub body: String,
}

/// Where a transferred chat goes.
#[derive(Clone, Debug)]
pub enum TransferTo {
    /// Straight to a colleague.
    Staff(Staff),
    /// Back to a queue: a library's, or (with `coop_now`) offered to the
    /// whole cooperative at once.
    Queue {
        /// The queue's library.
        library: Placement,
        /// Offer it to the whole cooperative at once.
        coop_now: bool,
    },
}

/// A change of hands: where the chat goes, whether the previous librarian
/// stays (as a whispering member), and the line that tells everyone.
#[derive(Clone, Debug)]
pub struct Handover {
    /// Where it goes.
    pub to: TransferTo,
    /// Keep the previous librarian as a whispering member.
    pub stay: bool,
    /// The line written into the chat.
    pub line: NewMessage,
}

/// A question left through the offline form (nobody on duty).
#[derive(Clone, Debug)]
pub struct NewFormQuestion {
    /// The patron's library.
    pub library: LibraryId,
    /// Their name, if given.
    pub patron_name: Option<String>,
    /// Their e-mail (required: the answer goes there).
    pub patron_email: String,
    /// Their question.
    pub question: String,
    /// A random, unused token digest (the form opens no chat).
    pub token_hash: String,
    /// Now.
    pub now: Millis,
    /// Who is asking (see [`PatronKeys`]).
    pub keys: PatronKeys,
    /// Form questions from the network in `keys.net` in the last day, at
    /// most (checked inside the write).
    pub max_per_net_per_day: u32,
}

/// A staff member with what presence and management show.
#[derive(Clone, Debug, Serialize)]
pub struct StaffEntry {
    /// The staff member.
    #[serde(flatten)]
    pub staff: Staff,
    /// Their library's name.
    pub library_name: String,
    /// On duty, away or off duty.
    pub availability: refdesk_domain::event::Availability,
    /// Last time a connection of theirs was seen.
    pub last_seen: Millis,
    /// Disabled staff cannot sign in.
    pub disabled: bool,
}

/// A change to a staff member's account.
#[derive(Clone, Debug, Default)]
pub struct StaffUpdate {
    /// New role.
    pub role: Option<Role>,
    /// Disable (true) or enable (false).
    pub disabled: Option<bool>,
    /// New argon2id hash.
    pub password_hash: Option<String>,
}

/// One IM conversation as the list shows it.
#[derive(Clone, Debug, Serialize)]
pub struct ImConversation {
    /// The other staff member.
    pub peer: StaffId,
    /// Their name.
    pub peer_name: String,
    /// The last sequence number in the conversation.
    pub last_seq: u64,
    /// Messages from them not yet read.
    pub unread: u64,
}

/// A library and where it sits.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct LibraryRecord {
    /// Its place in the organisation.
    pub placement: Placement,
    /// URL name, as in `/ask/<slug>`.
    pub slug: String,
    /// Display name.
    pub name: String,
}

/// An institution and the cooperative it belongs to.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct InstitutionRecord {
    /// Its id.
    pub id: InstitutionId,
    /// Its name.
    pub name: String,
    /// Its cooperative.
    pub cooperative: CooperativeId,
    /// The cooperative's name.
    pub cooperative_name: String,
}

/// A staff member with what only sign-in needs.
#[derive(Clone, Debug)]
pub struct StaffRecord {
    /// The staff member.
    pub staff: Staff,
    /// Argon2id PHC string.
    pub password_hash: String,
    /// Disabled staff cannot sign in.
    pub disabled: bool,
}

/// A new staff member.
#[derive(Clone, Debug)]
pub struct NewStaff {
    /// Home library.
    pub library: LibraryId,
    /// Sign-in name (already parsed).
    pub username: String,
    /// Display name.
    pub display_name: String,
    /// Role.
    pub role: Role,
    /// Argon2id PHC string.
    pub password_hash: String,
}

/// A chat session as stored.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SessionRecord {
    /// The session, with its place and participants.
    pub ctx: SessionContext,
    /// Its state.
    pub state: SessionState,
    /// The patron's name, if given.
    pub patron_name: Option<String>,
    /// The patron's e-mail, if given.
    pub patron_email: Option<String>,
    /// When the patron started it.
    pub created_at: Millis,
    /// When a librarian accepted it.
    pub accepted_at: Option<Millis>,
    /// When it ended.
    pub ended_at: Option<Millis>,
    /// Whether a resolution code has been set on its question (R5).
    pub code_set: bool,
    /// The last sequence number used.
    pub last_seq: u64,
    /// Where the patron asked the transcript to be e-mailed at the end.
    pub transcript_to: Option<String>,
    /// The library whose queue it waits (or last waited) in.
    pub queue: Placement,
    /// When it entered that queue.
    pub queued_at: Millis,
    /// Offered to the whole cooperative at once.
    pub queue_coop: bool,
    /// The patron's library's name.
    pub library_name: String,
    /// The chatting librarian's name.
    pub librarian_name: Option<String>,
    /// When its last message was written.
    pub last_message_at: Millis,
}

impl SessionRecord {
    /// The session as the chat monitor lists it.
    pub fn summary(&self) -> refdesk_domain::event::SessionSummary {
        refdesk_domain::event::SessionSummary {
            ctx: self.ctx.clone(),
            state: self.state,
            library_name: self.library_name.clone(),
            patron_name: self.patron_display(),
            librarian_name: self.librarian_name.clone(),
            created_at: self.created_at,
            accepted_at: self.accepted_at,
            last_message_at: self.last_message_at,
            queue: self.queue,
            queued_at: self.queued_at,
        }
    }

    /// How the patron appears in the chat.
    pub fn patron_display(&self) -> String {
        self.patron_name.clone().unwrap_or_else(|| "Patron".to_owned())
    }
}

/// A new chat from a patron.
#[derive(Clone, Debug)]
pub struct NewSession {
    /// The patron's library.
    pub library: LibraryId,
    /// Their name, if given.
    pub patron_name: Option<String>,
    /// Their e-mail, if given.
    pub patron_email: Option<String>,
    /// Their question: the chat's first message.
    pub question: String,
    /// E-mail the transcript here at the end.
    pub transcript_to: Option<String>,
    /// SHA-256 of the chat's secret token.
    pub token_hash: String,
    /// Now.
    pub now: Millis,
    /// Who is asking, as far as a block can tell (see [`PatronKeys`]).
    pub keys: PatronKeys,
    /// Chats waiting in the library's queue at most: a start that would
    /// make one more is refused (checked inside the write).
    pub max_waiting: u32,
    /// Chats waiting at once from the network in `keys.net` at most.
    pub max_waiting_per_net: u32,
}

/// How a chat ends, besides who ends it and the transcript.
#[derive(Clone, Debug, Default)]
pub struct Ending {
    /// For a chat still waiting whose patron gave an e-mail address: the
    /// note of the missed-chat question it leaves — a new question, or a
    /// note on the one it already has (a chat sent back to a queue).
    pub missed: Option<String>,
    /// A line from refdesk to everyone, written in the same transaction
    /// just before the end line: why the chat ends.
    pub last_words: Option<String>,
}

/// The line [`Ending::last_words`] writes.
pub(crate) fn last_words_line(body: String) -> NewMessage {
    NewMessage {
        author: Author::System,
        kind: MessageKind::Message,
        audience: Audience::Everyone,
        body,
        client_id: None,
        system: None,
    }
}

/// The refusal to block a chat started with neither a browser id nor an
/// address (nothing a block could match).
pub(crate) fn nothing_to_block() -> DomainError {
    DomainError::invalid("session", "this chat holds no browser id or address to block by; end it instead")
}

/// The refusal when a library's queue is full.
pub(crate) fn queue_full() -> DomainError {
    DomainError::Limited {
        code: "queue_full",
        reason: "this library's queue is full; please try again in a few minutes, or leave your question with the form"
            .into(),
    }
}

/// The refusal when one network sent its most form questions today.
pub(crate) fn forms_full() -> DomainError {
    DomainError::Limited {
        code: "too_many_questions",
        reason: "too many questions have been sent from your network today; please try again tomorrow".into(),
    }
}

/// The refusal when one network already has its most chats waiting.
pub(crate) fn net_full() -> DomainError {
    DomainError::Limited {
        code: "too_many_waiting",
        reason: "too many chats are waiting from your network; please wait for one to be answered".into(),
    }
}

/// What identifies a patron for a block, never in the clear: a SHA-256
/// digest (not keyed: an IPv4 address's can be found by trying them all) of
/// the browser's own random id (kept by the widget) and of the
/// network the chat came from (IPv4 address, IPv6 /64).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PatronKeys {
    /// The browser's.
    pub browser: Option<String>,
    /// The network's.
    pub net: Option<String>,
}

/// A patron blocked from chatting with a cooperative's libraries (an
/// abusive patron, DESIGN §9), until it runs out or an admin lifts it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct BlockRecord {
    /// Its id.
    pub id: i64,
    /// The library of the chat it came from (admins of it see it).
    pub placement: Placement,
    /// That library's name.
    pub library_name: String,
    /// The chat.
    pub session: SessionId,
    /// The chat's question, if it has one (its timeline records the block).
    pub question: Option<QuestionId>,
    /// Why, in the librarian's words.
    pub reason: String,
    /// Who blocked.
    pub created_by: StaffId,
    /// Their name.
    pub created_by_name: String,
    /// When.
    pub created_at: Millis,
    /// When it runs out.
    pub expires_at: Millis,
    /// When it was lifted, if it was.
    pub lifted_at: Option<Millis>,
    /// Who lifted it.
    pub lifted_by_name: Option<String>,
}

/// A block to record on a chat's patron.
#[derive(Clone, Debug)]
pub struct NewBlock {
    /// The chat.
    pub session: SessionId,
    /// Who blocks.
    pub by: Staff,
    /// Why.
    pub reason: String,
    /// When it runs out.
    pub expires_at: Millis,
    /// Now.
    pub now: Millis,
}

/// A message to append.
#[derive(Clone, Debug)]
pub struct NewMessage {
    /// Who writes.
    pub author: Author,
    /// What it is.
    pub kind: MessageKind,
    /// Who may see it (decided by the app from the kind, never by a client).
    pub audience: Audience,
    /// Text.
    pub body: String,
    /// The sender's id for idempotent re-sends.
    pub client_id: Option<String>,
    /// For system lines: what happened.
    pub system: Option<SystemEvent>,
}

/// The result of an append: the message, and whether it was already stored
/// under the same client id (I4: then nothing new was written).
#[derive(Clone, Debug)]
pub struct Appended {
    /// The stored message.
    pub message: Message,
    /// True when the client id had been used before.
    pub duplicate: bool,
}

/// A question with what the list shows.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct QuestionRecord {
    /// Its id.
    pub id: QuestionId,
    /// The session it came from.
    pub session: SessionId,
    /// The patron's library, which owns it (R1).
    pub library: LibraryId,
    /// That library's name.
    pub library_name: String,
    /// The question as first asked.
    pub text: String,
    /// Status, code, owner and flags.
    pub state: QuestionState,
    /// The chatting librarian.
    pub librarian: Option<StaffId>,
    /// Their display name.
    pub librarian_name: Option<String>,
    /// The session's state.
    pub session_state: SessionState,
    /// R5: still live.
    pub live: bool,
    /// When it was created.
    pub created_at: Millis,
    /// When its session last had a message.
    pub last_message_at: Millis,
    /// Where the owning library sits.
    pub placement: Placement,
    /// Where the library it was referred to sits, if referred.
    pub referred: Option<Placement>,
    /// The name of the library it was referred to.
    pub referred_name: Option<String>,
    /// The patron's rating of the chat (1–5), if they gave one.
    pub rating: Option<u8>,
    /// Their comment with it.
    pub rating_comment: Option<String>,
    /// The name the patron gave, if any. Question records go to staff only
    /// (the list and the question page); the e-mail address is on the
    /// question page alone.
    pub patron_name: Option<String>,
}

/// One timeline entry (R7).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TimelineEntry {
    /// When.
    pub at: Millis,
    /// Who (None: the system).
    pub actor: Option<StaffId>,
    /// Their name at the time.
    pub actor_name: String,
    /// What changed.
    #[serde(flatten)]
    pub change: Change,
}

/// Which questions to list: those of the libraries a role covers, plus those
/// whose session the staff member chatted in.
#[derive(Clone, Debug)]
pub struct QuestionScope {
    /// The role scope, as a placement filter.
    pub covers: ScopeLevel,
    /// Include questions of sessions this staff member chatted in.
    pub participant: StaffId,
}

/// A role scope as a filter.
#[derive(Clone, Copy, Debug)]
pub enum ScopeLevel {
    /// One library.
    Library(LibraryId),
    /// Every library of an institution.
    Institution(InstitutionId),
    /// Every library of a cooperative.
    Cooperative(CooperativeId),
}

impl ScopeLevel {
    /// The scope of a staff member's role.
    pub fn of(staff: &Staff) -> ScopeLevel {
        match staff.role {
            Role::Librarian | Role::LibraryAdmin => ScopeLevel::Library(staff.home.library),
            Role::InstitutionAdmin => ScopeLevel::Institution(staff.home.institution),
            Role::CooperativeAdmin => ScopeLevel::Cooperative(staff.home.cooperative),
        }
    }
}

/// The one storage interface. Every backend passes the same contract tests.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    // --- organisation -----------------------------------------------------

    /// Ends the store for a clean shutdown: writes already under way finish,
    /// then the connections close (on SQLite the last one empties and
    /// removes the write-ahead log). Every call after it fails with
    /// [`StoreError::Closed`]. Calling it again does nothing.
    async fn close(&self);
    /// Whether nothing has been created yet (for `serve --demo`).
    async fn is_empty(&self) -> Result<bool>;
    /// Whether the store can commit a write now (for `/readyz`). Cheap, and
    /// answers within a few seconds: SQLite — the writer thread is alive
    /// and a batch committed in the last second, or a no-op batch sent now
    /// commits within [`HEALTH_WAIT`] (at most one such ping is ever
    /// queued); PostgreSQL — a connection from the pool answers and the
    /// server is not a read-only standby. An error says what is wrong.
    async fn health(&self) -> Result<()>;
    /// Creates a cooperative with its resolution codes.
    async fn create_cooperative(&self, name: &str, codes: Vec<ResolutionCode>) -> Result<CooperativeId>;
    /// Creates an institution.
    async fn create_institution(&self, coop: CooperativeId, name: &str) -> Result<InstitutionId>;
    /// Creates a library; its slug must be unique.
    async fn create_library(&self, institution: InstitutionId, slug: &str, name: &str) -> Result<LibraryRecord>;
    /// A library by its slug.
    async fn library_by_slug(&self, slug: &str) -> Result<Option<LibraryRecord>>;
    /// Every library.
    async fn libraries(&self) -> Result<Vec<LibraryRecord>>;
    /// Every institution with its cooperative.
    async fn institutions(&self) -> Result<Vec<InstitutionRecord>>;
    /// A cooperative's resolution codes, in picker order.
    async fn codes(&self, coop: CooperativeId) -> Result<Vec<ResolutionCode>>;

    // --- staff and sign-in -----------------------------------------------

    /// Creates a staff member; the username must be unique.
    async fn create_staff(&self, new: NewStaff) -> Result<StaffId>;
    /// A staff member by sign-in name.
    async fn staff_by_username(&self, username: &str) -> Result<Option<StaffRecord>>;
    /// A staff member by id (enabled or not).
    async fn staff_by_id(&self, id: StaffId) -> Result<Option<Staff>>;
    /// Records a sign-in: the SHA-256 of the cookie's token.
    async fn create_login(&self, token_hash: &str, staff: StaffId, expires: Millis) -> Result<()>;
    /// The enabled staff member a live sign-in belongs to.
    async fn staff_by_login(&self, token_hash: &str, now: Millis) -> Result<Option<Staff>>;
    /// Ends a sign-in.
    async fn delete_login(&self, token_hash: &str) -> Result<()>;

    // --- chat sessions -----------------------------------------------------

    /// Starts a waiting chat; the question is its first message.
    async fn start_session(&self, new: NewSession) -> Result<(SessionRecord, QueueEntry)>;
    /// A session by id.
    async fn session(&self, id: SessionId) -> Result<Option<SessionRecord>>;
    /// A session by the SHA-256 of its patron token.
    async fn session_by_token(&self, token_hash: &str) -> Result<Option<SessionRecord>>;
    /// Every waiting chat, oldest first (the app filters by scope).
    async fn waiting(&self) -> Result<Vec<QueueEntry>>;
    /// Every session that is active and where `staff` is the librarian.
    async fn sessions_of(&self, staff: StaffId) -> Result<Vec<SessionRecord>>;
    /// Accepts a waiting chat atomically (I6) and creates its question in the
    /// patron's library (R1). `guard` sees the row first.
    async fn accept(&self, id: SessionId, by: Staff, guard: Guard, now: Millis) -> Result<(SessionRecord, Message)>;
    /// Appends a message; a re-sent client id returns the stored one (I4).
    async fn append(&self, id: SessionId, msg: NewMessage, guard: Guard, now: Millis) -> Result<Appended>;
    /// Ends the chat and writes "Chat session has ended" (R5); queues the
    /// transcript e-mail `mail` builds, in the same transaction.
    /// If the chat was still waiting and `missed` is given, a `new` question
    /// is left for the patron's library with `missed` as its first note
    /// (DESIGN §9: "missed chat"), when the patron gave an e-mail address.
    async fn end(
        &self,
        id: SessionId,
        by: Author,
        guard: Guard,
        mail: TranscriptMail,
        ending: Ending,
        now: Millis,
    ) -> Result<Message>;
    /// Records where the patron wants the transcript sent.
    async fn set_transcript_to(&self, id: SessionId, email: Option<String>) -> Result<()>;
    /// Sets the question's resolution code: writes the new state, its
    /// timeline entries (R7) and "Resolution code set" (R5). `decide` is R6,
    /// given the state before and the session.
    async fn set_code(
        &self,
        id: SessionId,
        code: String,
        by: Staff,
        guard: Guard,
        decide: Decide,
        now: Millis,
    ) -> Result<(QuestionState, Message)>;
    /// Messages with `seq > after`, in order, at most `limit`.
    async fn messages_after(&self, id: SessionId, after: u64, limit: u32) -> Result<Vec<Message>>;

    /// How many chats wait ahead of (`since`, `session`) in a library's queue.
    async fn queue_ahead(&self, queue: LibraryId, since: Millis, session: SessionId) -> Result<u64>;
    /// The patron's rating of an ended chat (1–5) and comment; replaces an earlier one.
    async fn rate(&self, id: SessionId, rating: u8, comment: Option<String>) -> Result<()>;
    /// A library's policy page for staff serving its patrons: (text, when, by whom).
    async fn policy(&self, library: LibraryId) -> Result<Option<PolicyPage>>;
    /// Replaces a library's policy page.
    async fn set_policy(&self, library: LibraryId, body: String, by: StaffId, now: Millis) -> Result<()>;
    /// The scripts a staff member may use: their own, their library's, their cooperative's.
    async fn scripts_for(&self, staff: &Staff) -> Result<Vec<Script>>;
    /// One script.
    async fn script(&self, id: i64) -> Result<Option<Script>>;
    /// Saves a script.
    async fn create_script(&self, scope: &str, owner: i64, title: String, body: String, now: Millis) -> Result<Script>;
    /// Deletes a script.
    async fn delete_script(&self, id: i64) -> Result<()>;
    /// Adds or replaces one of a cooperative's resolution codes (R6: the
    /// mapping is data). A new code goes last in the picker.
    async fn put_code(&self, coop: CooperativeId, code: ResolutionCode) -> Result<()>;
    /// Active chats whose last message is older than `before`.
    async fn idle_sessions(&self, before: Millis) -> Result<Vec<SessionId>>;
    /// Every waiting or active session (the app filters for the monitor).
    async fn live_sessions(&self) -> Result<Vec<SessionRecord>>;
    /// A staff member enters a chat, or changes mode (R3, B2). `line` is the
    /// system line to write; `None` writes none.
    async fn conference(
        &self,
        id: SessionId,
        by: Staff,
        mode: refdesk_domain::chat::ConferenceMode,
        line: LineFor,
        guard: Guard,
        now: Millis,
    ) -> Result<SessionRecord>;
    /// A conference member leaves.
    async fn leave(&self, id: SessionId, by: Staff, line: LineFor, guard: Guard, now: Millis) -> Result<SessionRecord>;
    /// The chat changes hands: a take-over or a transfer.
    async fn transfer(
        &self,
        id: SessionId,
        by: Staff,
        handover: Handover,
        guard: Guard,
        now: Millis,
    ) -> Result<SessionRecord>;
    /// Waiting chats that reached `rollup` age in (`after`, `upto`].
    async fn rolled_up(&self, after: Millis, upto: Millis, rollup: Millis) -> Result<Vec<QueueEntry>>;
    /// A question from the offline form: status new, nobody assigned.
    async fn create_form_question(&self, new: NewFormQuestion) -> Result<QuestionRecord>;

    // --- staff: availability and management ------------------------------------

    /// Sets a staff member's availability.
    async fn set_availability(&self, id: StaffId, a: refdesk_domain::event::Availability, now: Millis) -> Result<()>;
    /// Records that these staff members have a live connection now.
    async fn touch(&self, ids: Vec<StaffId>, now: Millis) -> Result<()>;
    /// Takes off duty everyone on duty not seen since `before`; returns them.
    async fn sign_off_stale(&self, before: Millis) -> Result<Vec<Staff>>;
    /// Staff of a cooperative, with availability.
    async fn staff_of(&self, coop: CooperativeId) -> Result<Vec<StaffEntry>>;
    /// Changes a staff member's account; disabling ends their sign-ins.
    async fn update_staff(&self, id: StaffId, update: StaffUpdate) -> Result<()>;

    // --- staff IM ----------------------------------------------------------------

    /// Stores a direct message; a re-sent client id returns the stored one.
    async fn im_send(
        &self,
        from: Staff,
        to: StaffId,
        body: String,
        client_id: Option<String>,
        now: Millis,
    ) -> Result<(refdesk_domain::event::ImMessage, bool)>;
    /// The conversation of `a` and `b` after `after`, in order.
    async fn im_after(
        &self,
        a: StaffId,
        b: StaffId,
        after: u64,
        limit: u32,
    ) -> Result<Vec<refdesk_domain::event::ImMessage>>;
    /// `me`'s conversations with unread counts.
    async fn im_conversations(&self, me: StaffId) -> Result<Vec<ImConversation>>;
    /// Marks `me`'s conversation with `peer` read up to `seq`.
    async fn im_read(&self, me: StaffId, peer: StaffId, seq: u64) -> Result<()>;

    // --- questions -----------------------------------------------------------

    /// A filtered page of the question list, newest first.
    async fn questions(&self, query: QuestionQuery) -> Result<Vec<QuestionRecord>>;
    /// Applies a question-list action atomically: new state and timeline
    /// (R7), a line in the live chat (R4), an e-mail in the outbox.
    async fn act_on_question(&self, id: QuestionId, by: Staff, plan: Plan, now: Millis) -> Result<Acted>;
    /// One question.
    async fn question(&self, id: QuestionId) -> Result<Option<QuestionRecord>>;
    /// Its timeline, oldest first.
    async fn timeline(&self, id: QuestionId) -> Result<Vec<TimelineEntry>>;

    // --- outbox ----------------------------------------------------------------

    /// Undelivered e-mail due at `now`, oldest first (a look, for status
    /// pages and tests: nothing changes).
    async fn due_mail(&self, now: Millis, limit: u32) -> Result<Vec<OutboxMail>>;
    /// Takes undelivered e-mail due at `now`, oldest first, for one mailer:
    /// each is due again only at `lease_until`, unless its sender reports
    /// first ([`Store::mail_sent`], [`Store::mail_failed`]). Several nodes'
    /// mailers share one outbox and never send one e-mail at once; if a node
    /// dies holding some, they are sent when the lease runs out.
    async fn claim_mail(&self, now: Millis, limit: u32, lease_until: Millis) -> Result<Vec<OutboxMail>>;
    /// Marks an e-mail delivered.
    async fn mail_sent(&self, id: i64, now: Millis) -> Result<()>;
    /// Records a failed attempt and when to try again.
    async fn mail_failed(&self, id: i64, error: &str, retry_at: Millis) -> Result<()>;
    /// One e-mail by id (for status pages and tests).
    async fn mail(&self, id: i64) -> Result<Option<OutboxMail>>;
    /// The earliest time an undelivered e-mail is due, if any.
    async fn next_mail_due(&self) -> Result<Option<Millis>>;
    /// Chats started since `since` that ask a transcript to `to`, whatever
    /// its letter case (the per-recipient cap: each chat mails once at most).
    async fn transcripts_to(&self, to: &str, since: Millis) -> Result<u64>;

    // --- blocks ------------------------------------------------------------------

    /// Blocks a chat's patron (by the keys the chat was started with) and
    /// records it in the chat's question timeline, if it has a question.
    async fn block(&self, new: NewBlock) -> Result<BlockRecord>;
    /// Lifts a block; the question timeline records it. Lifting a lifted
    /// block changes nothing.
    async fn lift_block(&self, id: i64, by: Staff, now: Millis) -> Result<BlockRecord>;
    /// One block.
    async fn block_by_id(&self, id: i64) -> Result<Option<BlockRecord>>;
    /// The blocks made at the libraries `scope` covers, newest first (the
    /// audit list; at most `limit`).
    async fn blocks(&self, scope: ScopeLevel, limit: u32) -> Result<Vec<BlockRecord>>;
    /// A block in force in `coop` at `now` on either key, if any.
    async fn active_block(&self, coop: CooperativeId, keys: PatronKeys, now: Millis) -> Result<Option<BlockRecord>>;
    /// Whether a blocked patron may still send the library's offline form.
    async fn blocked_may_ask(&self, library: LibraryId) -> Result<bool>;
    /// Sets [`Store::blocked_may_ask`].
    async fn set_blocked_may_ask(&self, library: LibraryId, may: bool) -> Result<()>;
}

/// Who hears the line a change of hands writes: everyone present before or
/// after it, including the librarian who handed the chat on.
pub(crate) fn handover_audience(before: &SessionRecord, after: &SessionRecord) -> SessionContext {
    let mut ctx = after.ctx.clone();
    for m in &before.ctx.members {
        if ctx.member_mode(m.staff).is_none() {
            ctx.members.push(m.clone());
        }
    }
    let previous = before.ctx.librarian;
    if ctx.librarian.is_none() {
        ctx.librarian = previous;
    } else if let Some(prev) = previous.filter(|p| Some(*p) != ctx.librarian && ctx.member_mode(*p).is_none()) {
        let name = before.librarian_name.clone().unwrap_or_default();
        ctx.members.push(refdesk_domain::chat::Member {
            staff: prev,
            name,
            mode: refdesk_domain::chat::ConferenceMode::Monitor,
        });
    }
    ctx
}

/// The system line both backends write when a librarian accepts a chat.
pub(crate) fn accepted_line(by: &Staff) -> NewMessage {
    system_line(format!("{} (librarian) has joined the chat", by.display_name), SystemEvent::Accepted)
}

/// The system line that ends a chat (R5), saying who ended it.
pub(crate) fn ended_line(by: &Author) -> NewMessage {
    let who = match by {
        Author::Patron { .. } => "the patron",
        Author::Staff { .. } => "the librarian",
        Author::System => "refdesk",
    };
    system_line(format!("{} (ended by {who})", refdesk_domain::chat::ENDED_TEXT), SystemEvent::Ended)
}

/// "Resolution code set": staff-only, the code is the library's business.
pub(crate) fn code_set_line(label: &str, by: &Staff) -> NewMessage {
    NewMessage {
        audience: Audience::Staff,
        ..system_line(
            format!("{}: {label} (by {})", refdesk_domain::chat::CODE_SET_TEXT, by.display_name),
            SystemEvent::CodeSet,
        )
    }
}

fn system_line(body: String, event: SystemEvent) -> NewMessage {
    NewMessage {
        author: Author::System,
        kind: MessageKind::System,
        audience: MessageKind::System.audience(),
        body,
        client_id: None,
        system: Some(event),
    }
}

/// A session as the queue lists it, having entered `rec.queue` at `since`.
pub(crate) fn queue_entry(rec: &SessionRecord, question: String, since: Millis) -> QueueEntry {
    QueueEntry {
        session: rec.ctx.id,
        placement: rec.ctx.placement,
        library_name: rec.library_name.clone(),
        patron_name: rec.patron_display(),
        question,
        since,
        queue: rec.queue,
        coop_now: rec.queue_coop,
        version: rec.ctx.version,
    }
}

/// What a new chat announces: it joined the queue, its first line, the monitor's row.
pub(crate) fn started_events(entry: &QueueEntry, rec: &SessionRecord, first: Message) -> Vec<Event> {
    vec![
        Event::QueueAdded(entry.clone()),
        Event::Message { ctx: rec.ctx.clone(), message: first },
        Event::SessionChanged(rec.summary()),
    ]
}
