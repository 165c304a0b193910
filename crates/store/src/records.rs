//! The records the store reads and writes, and the closures use cases hand
//! to a write (rules evaluated inside its transaction).

use crate::Result;
pub use refdesk_domain::chat::NewMessage;
use refdesk_domain::chat::{Author, Message, SessionContext, SessionState};
use refdesk_domain::ids::{CooperativeId, InstitutionId, LibraryId, QuestionId, SessionId, StaffId};
use refdesk_domain::net::WIDER;
use refdesk_domain::org::{Placement, Role, Staff};
use refdesk_domain::question::{Change, QuestionState, ResolutionCode};
use refdesk_domain::{DomainError, Millis};
use serde::Serialize;

/// What one cooperative's admins may create, at most (DESIGN §8: what
/// anyone can make the service hold is bounded, staff too). Each is read
/// whole on hot paths (the codes with every question, the libraries for
/// the open list, a staff member's scripts on the desk); far past what a
/// cooperative of hundreds of libraries uses. Counted inside the write
/// (on PostgreSQL, writes at the same moment may each pass the count once).
pub const MAX_CODES_PER_COOPERATIVE: i64 = 100;
/// See [`MAX_CODES_PER_COOPERATIVE`].
pub const MAX_INSTITUTIONS_PER_COOPERATIVE: i64 = 1_000;
/// See [`MAX_CODES_PER_COOPERATIVE`].
pub const MAX_LIBRARIES_PER_COOPERATIVE: i64 = 2_000;
/// See [`MAX_CODES_PER_COOPERATIVE`].
pub const MAX_STAFF_PER_COOPERATIVE: i64 = 10_000;
/// Staff accounts of one library, at most: a library admin who adds
/// accounts without end fills their own library's share, not the whole
/// cooperative's (no account is ever removed, only disabled).
pub const MAX_STAFF_PER_LIBRARY: i64 = 1_000;
/// Scripts of one owner (a staff member, a library, a cooperative).
pub const MAX_SCRIPTS_PER_OWNER: i64 = 200;

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

/// What an e-mail in the outbox is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum MailKind {
    /// An answer to a question, from the question list.
    Answer,
    /// A chat's transcript, at its end.
    Transcript,
}

impl MailKind {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            MailKind::Answer => "answer",
            MailKind::Transcript => "transcript",
        }
    }

    /// Parses [`MailKind::as_str`]'s names.
    pub fn parse(s: &str) -> Option<MailKind> {
        [MailKind::Answer, MailKind::Transcript].into_iter().find(|k| k.as_str() == s)
    }
}

/// An e-mail to put in the outbox, in the same transaction as its cause.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewMail {
    /// What it is.
    pub kind: MailKind,
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
    /// What it is.
    pub kind: MailKind,
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
    /// The slug of the library it is from, if known.
    pub library_slug: Option<String>,
    /// The chat it is of (a transcript's; an answer's question's chat),
    /// if any.
    pub session: Option<SessionId>,
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
    /// Mails of the same kind to the mail's address (in any letter case) at
    /// most in the last 24 hours, counted in this write under a lock per
    /// address: past it the action is refused (`too_many_mails`) and
    /// changes nothing. `None`: no cap.
    pub mails_per_recipient_per_day: Option<u32>,
    /// Mails the acting staff member had queued from the question list at
    /// most in the last 24 hours, to anyone, counted in this write under a
    /// lock per staff member: past it the action is refused
    /// (`too_many_mails`) and changes nothing. `None`: no cap.
    pub mails_per_sender_per_day: Option<u32>,
    /// Entries the question's timeline may hold at most before this
    /// action: when it would add to one holding that many, it is refused
    /// (`question_full`) and changes nothing. `None`: no cap.
    pub timeline_most: Option<u32>,
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
    /// Came this way.
    pub channel: Option<refdesk_domain::question::Channel>,
    /// Words to find in the question or its transcript.
    pub text: Option<String>,
    /// Paging: only questions older than this one.
    pub before: Option<QuestionId>,
    /// Page size.
    pub limit: u32,
}

impl QuestionQuery {
    /// A page of `limit` questions of a view, with no other filter.
    pub fn page(scope: QuestionScope, view: refdesk_domain::actions::View, limit: u32) -> QuestionQuery {
        QuestionQuery {
            scope,
            view,
            status: None,
            code: None,
            from: None,
            to: None,
            librarian: None,
            library: None,
            channel: None,
            text: None,
            before: None,
            limit,
        }
    }
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

/// Who keeps a script: a staff member for themselves, a library or a
/// cooperative for all its staff.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ScriptOwner {
    /// One staff member's own.
    Personal(StaffId),
    /// A library's.
    Library(LibraryId),
    /// A cooperative's.
    Cooperative(CooperativeId),
}

impl ScriptOwner {
    /// The stored scope name.
    pub fn scope(self) -> &'static str {
        match self {
            ScriptOwner::Personal(_) => "personal",
            ScriptOwner::Library(_) => "library",
            ScriptOwner::Cooperative(_) => "cooperative",
        }
    }

    /// The owner's id, whichever kind it is.
    pub fn id(self) -> i64 {
        match self {
            ScriptOwner::Personal(s) => s.0,
            ScriptOwner::Library(l) => l.0,
            ScriptOwner::Cooperative(c) => c.0,
        }
    }
}

impl Script {
    /// Who keeps it.
    pub fn owned_by(&self) -> Option<ScriptOwner> {
        match self.scope.as_str() {
            "personal" => Some(ScriptOwner::Personal(StaffId(self.owner))),
            "library" => Some(ScriptOwner::Library(LibraryId(self.owner))),
            "cooperative" => Some(ScriptOwner::Cooperative(CooperativeId(self.owner))),
            _ => None,
        }
    }
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
        /// Its librarian left the desk (signed out, disabled, gone): the
        /// question's timeline says so.
        left: bool,
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
    /// A librarian note for whoever takes the chat next (staff only),
    /// written just before the line.
    pub note: Option<NewMessage>,
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
    /// Chats nobody accepted and form questions started at the library in
    /// the last 24 hours at most, from anywhere (see [`NewSession`]).
    pub max_started_in_library_per_day: u32,
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
    /// New display name (lines already written keep the name they had).
    pub display_name: Option<String>,
    /// The role and home library the change was decided on (the actor's
    /// right to make it): if the account has another now (promoted or moved
    /// meanwhile), nothing changes (`Conflict`).
    pub decided_on: Option<(Role, LibraryId)>,
    /// The password hash the change was decided on (one's own password,
    /// checked): if the account has another now (reset meanwhile), or it
    /// was disabled, nothing changes (`Conflict`).
    pub password_was: Option<String>,
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
    /// Messages from them not yet read, among the conversation's last
    /// 1,000 (it says 1,000 at most).
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
    /// The sites allowed to show its chat in a frame (origins, as
    /// `refdesk_domain::input::embed_sites` writes them); empty: any site.
    pub embed_sites: Vec<String>,
    /// Its retention period's days (`None`: personal data kept until
    /// erased on request), for what its patrons are told.
    pub retention_days: Option<u32>,
    /// The address its e-mails to patrons name for replies (`Reply-To`).
    pub reply_to: Option<String>,
    /// Its admins' notice while its chat is closed to new patrons (`None`:
    /// open).
    pub closed_notice: Option<String>,
    /// How its widget button looks.
    pub widget: refdesk_domain::org::WidgetLook,
}

/// What a new name is given to ([`crate::api::Organisation::rename`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Named {
    /// A cooperative.
    Cooperative(CooperativeId),
    /// An institution.
    Institution(InstitutionId),
    /// A library (its slug, in its widget snippets and links, stays).
    Library(LibraryId),
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

/// A sign-in to record ([`crate::api::Staffing::create_login`]).
#[derive(Clone, Debug)]
pub struct NewLogin {
    /// The SHA-256 of the cookie's token.
    pub token_hash: String,
    /// Who signs in.
    pub staff: StaffId,
    /// When the sign-in stops working.
    pub expires: Millis,
    /// The password hash the password was checked against. Checking takes
    /// a while: if by the write the account's is another (its password was
    /// reset meanwhile), or the account was disabled, nothing is recorded.
    pub password_hash: String,
    /// The network it came from, when known: among the account's
    /// [`KnownNetwork`]s from now on.
    pub from: Option<KnownNetwork>,
    /// The account's sign-ins kept at most, this one included: the oldest
    /// past it end (`limits.sign_ins_per_account`).
    pub keep: u32,
}

/// A network a staff member signed in from (DESIGN §8: failed sign-ins
/// per account spare the networks an account signs in from).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KnownNetwork {
    /// The digest of an IPv4 address or an IPv6 /64
    /// (`refdesk_app::auth::staff_network_digest`), not the address.
    pub network: String,
    /// When the account last signed in from it.
    pub last_at: Millis,
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
    /// The last sequence number used (its last message's).
    pub last_seq: u64,
    /// Where the patron asked the transcript to be e-mailed at the end.
    pub transcript_to: Option<String>,
    /// The patron's local time minus UTC in minutes, as their browser gave
    /// it with the transcript's address: the transcript's times are written
    /// in it (`None`: in UTC).
    pub transcript_utc_offset: Option<i32>,
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
    /// When its last message was written (its start, if it has none), but
    /// for the lines saying the librarian's desk lost its connection or is
    /// back (no one's doing: they keep no chat from its idle end).
    pub last_message_at: Millis,
    /// Whether its patron's personal data was erased.
    pub erased: bool,
    /// While it waits: whether its patron has no page of it open (since
    /// when is in its queue entry, `QueueEntry::away_since`). A flag, not
    /// the time: each patron's socket keeps its record (issue 17).
    #[serde(skip)]
    pub patron_away: bool,
    /// Characters of the patron's lines after the question: counted in the
    /// copies appends read (`ops::chats::append` loads it, `note_line` adds
    /// each line), 0 in other reads.
    #[serde(skip)]
    pub patron_chars: u64,
    /// The last line `patron_chars` counts as read: lines after it are
    /// added as they are noted, in whatever order.
    #[serde(skip)]
    pub counted_to: u64,
    /// The lines its patron sees (its last line's `patron_seq`): in the
    /// copies appends read, as `patron_chars`; 0 in other reads.
    #[serde(skip)]
    pub patron_lines: u64,
}

impl SessionRecord {
    /// A line stored after this copy was read: its last line follows, and
    /// what the patron wrote (the patron's limits on lines read both from
    /// the copy).
    pub fn note_line(&mut self, line: &Message) {
        // Each stored line is noted once, but not always in order (the
        // callers of a PostgreSQL batch are answered together): counted by
        // its number, not by whether it is the last.
        let patrons = matches!(line.author, Author::Patron { .. });
        if patrons && line.seq > self.counted_to.max(1) {
            self.patron_chars += line.body.chars().count() as u64;
        }
        if line.seq > self.last_seq {
            self.last_seq = line.seq;
            // As the store reads it: a desk's connection lost and back is
            // no one's doing, and keeps no chat from its idle end.
            if !matches!(
                line.system,
                Some(refdesk_domain::chat::SystemEvent::Away | refdesk_domain::chat::SystemEvent::Back)
            ) {
                self.last_message_at = line.at;
            }
            self.patron_lines = line.patron_seq;
        }
    }

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
            code_set: self.code_set,
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
    /// The patron's local time minus UTC, in minutes, for the transcript.
    pub transcript_utc_offset: Option<i32>,
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
    /// Chats started from the network in `keys.net` in the last 24 hours
    /// at most, waiting, answered or not (offline-form questions are
    /// counted apart): every chat is kept, so chats started all day would
    /// fill the store.
    pub max_started_per_net_per_day: u32,
    /// Chats no librarian accepted (waiting, or ended unanswered) and
    /// offline-form questions started at the library in the last 24 hours
    /// at most, from every network together: what bounds the rows strangers
    /// with many networks (an IPv6 /48 holds 65,536 /64s) can add to one
    /// library in a day. Chats librarians took do not count.
    pub max_started_in_library_per_day: u32,
}

/// A live chat whose patron is to be told about its librarian's desk
/// ([`crate::Chats::librarians_to_tell`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LibrarianToTell {
    /// The chat.
    pub session: SessionId,
    /// Its librarian.
    pub staff: StaffId,
    /// Their display name.
    pub name: String,
    /// When a node last saw them connected.
    pub last_seen: Millis,
    /// Gone (the patron not told yet), or back (told they were gone, and
    /// seen since).
    pub gone: bool,
}

/// What a patron is to be told of their librarian's desk
/// ([`crate::Chats::tell_librarian_desk`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeskNews {
    /// It has lost its connection: no node has seen the librarian since
    /// this time.
    Gone {
        /// Not seen since (checked inside the write).
        not_seen_since: Millis,
    },
    /// They are back (seen since the patron was told they were gone).
    Back,
}

/// How a chat ends, besides who ends it and the transcript.
#[derive(Clone, Debug, Default)]
pub struct Ending {
    /// For a chat still waiting whose patron gave an e-mail address: the
    /// note of the missed-chat question it leaves — a new question, or a
    /// note on the one it already has (a chat sent back to a queue).
    pub missed: Option<String>,
    /// Questions a network may leave for an e-mail answer in a day, forms
    /// and missed chats together: past it a missed chat leaves no new
    /// question (a stranger starting and ending chats with an address
    /// would otherwise fill a library's list).
    pub left_per_net_per_day: u32,
    /// A line from refdesk to everyone, written in the same transaction
    /// just before the end line: why the chat ends.
    pub last_words: Option<String>,
    /// The line instead of `last_words` when a missed chat leaves its
    /// question (the patron is told it will be answered by e-mail);
    /// `{question}` in it becomes the question's number.
    pub left_words: Option<String>,
    /// The line instead of `last_words` when a missed chat could leave no
    /// question (its network's count for the day is reached): it must not
    /// promise an answer by e-mail.
    pub last_words_unanswered: Option<String>,
    /// Transcripts to one address (in any letter case) at most, counted as
    /// the start's count is, over what was asked: the chats a librarian took
    /// that ended in the last 24 hours asking one there. Past it this end
    /// queues none. Counted in this write under a lock per address, so that
    /// chats started at once (each passing the count at its start) cannot
    /// all mail. `None`: no cap.
    pub transcripts_per_recipient_per_day: Option<u32>,
    /// No transcript goes, whatever the patron asked (a blocked patron's
    /// chat): the chat's lines are not read for one.
    pub no_transcript: bool,
    /// Its patron was blocked: [`refdesk_domain::lines::blocked`] is written
    /// just before the end line, instead of any `last_words`.
    pub blocked: bool,
    /// A chat taken before and back in a queue leaves its question as it is
    /// (it goes back to its library's work otherwise): its patron was
    /// blocked, or is being served in a new chat they asked for.
    pub keep_question: bool,
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
    /// An IPv6 network's /56's and /48's, in that order (`None` for IPv4):
    /// the per-network caps on chats and questions count there too,
    /// [`WIDER`] and [`WIDER`]² times as large (`refdesk_domain::net`).
    /// Only a block's keys are kept once the patron's data is erased, and
    /// a block keeps `browser` and `net` alone.
    pub wider: [Option<String>; 2],
}

impl PatronKeys {
    /// The networks the per-network caps count in, narrowest first: each
    /// one's key, and how many times a network's own cap it has.
    pub fn networks(&self) -> impl Iterator<Item = (&str, u32)> + Clone {
        self.columns().map(|(_, key, times)| (key, times))
    }

    /// [`PatronKeys::networks`], each with its column in `sessions`.
    pub(crate) fn columns(&self) -> impl Iterator<Item = (&'static str, &str, u32)> + Clone {
        let [n56, n48] = &self.wider;
        let own = self.net.as_deref().map(|k| ("net_key", k, 1));
        let n56 = n56.as_deref().map(|k| ("net56_key", k, WIDER));
        let n48 = n48.as_deref().map(|k| ("net48_key", k, WIDER * WIDER));
        own.into_iter().chain(n56).chain(n48)
    }

    /// The widest network's key: what a write counting the caps locks (on
    /// PostgreSQL), so that the counts of every narrower one are ordered
    /// too.
    pub(crate) fn widest(&self) -> Option<&str> {
        self.networks().last().map(|(key, _)| key)
    }
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
    /// Whether it holds the chat's network (everyone there), not only its
    /// browser; false too once its digests are forgotten (run out or lifted,
    /// its chat erased).
    pub network: bool,
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
    /// Whether it holds the chat's network too, and so every patron there
    /// (a campus, a library's Wi-Fi), or the browser alone. A chat with no
    /// browser id is refused without it (`Invalid`, field `network`).
    pub network: bool,
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
    /// The display name of the staff member who last e-mailed an answer
    /// to it, if any.
    pub emailed_by_name: Option<String>,
    /// The display name of the staff member it is assigned to
    /// (`state.assignee`).
    pub assignee_name: Option<String>,
    /// The session's state.
    pub session_state: SessionState,
    /// R5: still live.
    pub live: bool,
    /// When it was created.
    pub created_at: Millis,
    /// When its session last had a message, or it was last answered by
    /// e-mail, whichever is later.
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
    /// Whether its patron's personal data was erased (docs/privacy.md):
    /// the chat's lines and the question's texts are masked.
    pub erased: bool,
    /// How it came: a chat taken, missed or abandoned, or the form.
    pub channel: refdesk_domain::question::Channel,
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
    /// Include questions of sessions this staff member chatted in…
    pub participant: StaffId,
    /// …while they go on, or ended at or after this time: the librarian
    /// who chatted for another library is part of its question only for a
    /// while after the chat (DESIGN §2, `authz::WRAP_UP_MS`).
    pub chatted_since: Millis,
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

/// What a report counts (issue 15): the chats, forms and questions of
/// `libraries` created in [`from`, `to`), bucketed in local time
/// `offset` ms east of UTC, in buckets `bucket` ms long. Practice chats are
/// never counted.
#[derive(Clone, Debug)]
pub struct ReportRange {
    /// The libraries in scope.
    pub libraries: Vec<LibraryId>,
    /// Created at or after.
    pub from: Millis,
    /// Created before.
    pub to: Millis,
    /// Local time minus UTC, added before grouping by time.
    pub offset: Millis,
    /// The length of the buckets `SessionGroup::Hour` and `QuestionGroup::Hour`
    /// group by (an hour; a quarter of one, for a zone whose offset changes).
    pub bucket: Millis,
}

/// How a report groups sessions (chats and offline forms).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum SessionGroup {
    /// By local hour since the epoch (days, weeks and the hour-of-week heat
    /// map are summed from it).
    Hour,
    /// By the patron's library.
    Library,
    /// By the patron's library and the library of the librarian who served
    /// the chat; rows where either is in range's libraries.
    Coverage,
    /// By the librarian who served the chat, whose library is in range.
    Librarian,
    /// By the patron's rating.
    Rating,
    /// Everything together.
    Total,
}

/// Sessions counted for one group of a [`SessionGroup`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SessionCounts {
    /// The group (unused keys are `None`).
    pub keys: [Option<i64>; 2],
    /// Chats and forms.
    pub sessions: i64,
    /// Chats (not forms).
    pub chats: i64,
    /// Chats a librarian accepted.
    pub accepted: i64,
    /// Chats nobody accepted that ended, not by the patron.
    pub missed: i64,
    /// Chats the patron ended before anyone accepted them.
    pub abandoned: i64,
    /// Chats still waiting.
    pub waiting: i64,
    /// Offline forms.
    pub forms: i64,
    /// Take-overs and transfers.
    pub handovers: i64,
    /// Ratings given.
    pub ratings: i64,
    /// Their sum.
    pub rating_sum: i64,
    /// Accepted chats that ended.
    pub timed: i64,
    /// Their durations' sum, in whole seconds each.
    pub duration_sum: i64,
}

/// How a report groups questions.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum QuestionGroup {
    /// By local hour since the epoch.
    Hour,
    /// By the library that owns the question (the patron's).
    Library,
    /// By resolution code.
    Code,
    /// By status.
    Status,
    /// By its chat's channel: `chat` (accepted), `form`, `missed`,
    /// `abandoned` (by the patron, before anyone accepted), `waiting`.
    Channel,
    /// By READ scale level.
    ReadScale,
    /// By the staff member who last e-mailed an answer to it (their id),
    /// for the staff of the libraries in range rather than the questions
    /// of those libraries; questions no one e-mailed are not counted.
    EmailedBy,
}

/// A span of a chat, measured for percentiles.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Span {
    /// From start to accept.
    Wait,
    /// From accept to end.
    Duration,
}

/// A patron's rating with a comment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RatingComment {
    /// When the chat started.
    pub at: Millis,
    /// The patron's library.
    pub library: LibraryId,
    /// 1–5.
    pub rating: i64,
    /// The comment.
    pub comment: String,
    /// The chat's question, to read what the comment is about.
    pub question: Option<QuestionId>,
}

/// A chat or question that carries a patron's e-mail address, found for
/// erasing it on request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PatronSession {
    /// The session.
    pub session: SessionId,
    /// Its question, if any.
    pub question: Option<QuestionId>,
    /// The patron's library.
    pub library: LibraryId,
    /// When it started.
    pub created_at: Millis,
    /// Waiting, active or ended.
    pub state: SessionState,
    /// The name the patron gave.
    pub patron_name: Option<String>,
    /// The question asked.
    pub question_text: String,
}

/// Why personal data is erased.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ErasureReason {
    /// The library's retention period ran out.
    Retention,
    /// The patron asked; an admin erased it.
    Request(StaffId),
    /// Erased on request before, and again now in a database restored
    /// from a backup taken before that (the admin who erased it, if the
    /// account is in this database).
    Redone(Option<StaffId>),
}

/// What [`crate::api::Privacy::redo_erasures`] did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Redone {
    /// Chats erased now.
    pub erased: Vec<SessionId>,
    /// Chats to erase still going on in this database (restored while
    /// they were): erased once they end.
    pub waiting: Vec<SessionId>,
}

/// An entry of the privacy audit list.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PrivacyEntry {
    /// Its id.
    pub id: i64,
    /// When.
    pub at: Millis,
    /// Whose chats.
    pub library: LibraryId,
    /// `retention` or `erase`.
    pub action: String,
    /// The admin who erased on request.
    pub by: Option<StaffId>,
    /// How many chats.
    pub sessions: i64,
    /// What happened to their transcripts.
    pub transcripts: Option<refdesk_domain::privacy::Transcripts>,
}

/// How one chat's personal data was erased.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Erasure {
    /// When.
    pub at: Millis,
    /// `erase` (on request), `retention` (the library's retention period)
    /// or `redo` (erased again after a restore from a backup); `None` for an
    /// erasure the audit list has no entry of.
    pub action: Option<String>,
    /// What became of its transcript: masked or deleted.
    pub transcripts: Option<refdesk_domain::privacy::Transcripts>,
    /// The admin who erased it, by their name now.
    pub by_name: Option<String>,
}

/// One entry of the admin log: a change an admin made to accounts or
/// settings (or the operator, from the command line), and where.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct AdminEntry {
    /// Its id (0 in one not yet written).
    pub id: i64,
    /// When.
    pub at: Millis,
    /// The cooperative it was made in.
    pub cooperative: CooperativeId,
    /// The institution it concerns, if one (a library's too).
    pub institution: Option<InstitutionId>,
    /// The library it concerns, if one.
    pub library: Option<LibraryId>,
    /// Who made it; `None`: the operator, from the command line.
    pub actor: Option<StaffId>,
    /// Who made it as they were named then (`Name (username)`); `None`
    /// for the operator, and in entries written before it was kept.
    pub actor_name: Option<String>,
    /// What kind of change (`staff`, `code`, `embedding`, …).
    pub action: String,
    /// What changed, in words (names, not ids; never a password).
    pub detail: String,
}

/// A chat or offline form of the past, ended, with its question (if it has
/// one) and its first message: what [`crate::History::import_history`]
/// writes. For loading history in bulk — the reports' benchmark, or
/// records brought over from another service — never for live chats,
/// which go through [`crate::Chats`] so that every rule and event applies.
#[derive(Clone, Debug)]
pub struct PastSession {
    /// The patron's library.
    pub library: LibraryId,
    /// Unique among sessions; the SHA-256 of a patron token in live chats.
    /// A past session has no patron connected: any unique value no token
    /// hashes to will do (64 random hex digits).
    pub token_hash: String,
    /// The name the patron gave.
    pub patron_name: Option<String>,
    /// Their e-mail address.
    pub patron_email: Option<String>,
    /// The question, also the first message of the chat.
    pub question_text: String,
    /// Sent with the offline form, not a chat.
    pub by_form: bool,
    /// When the patron asked.
    pub created_at: Millis,
    /// Who accepted it (the librarian who served it last, after any
    /// hand-over), and when.
    pub accepted: Option<(StaffId, Millis)>,
    /// When it ended.
    pub ended_at: Millis,
    /// Who ended it (None for a form).
    pub ended_by: Option<PastEnd>,
    /// Take-overs and transfers it went through.
    pub handovers: i64,
    /// The patron's rating (1–5) and comment.
    pub rating: Option<(u8, Option<String>)>,
    /// Staff who joined it (monitor, whisper or conference), and when.
    pub members: Vec<(StaffId, refdesk_domain::chat::ConferenceMode, Millis)>,
    /// Its question: when it was created and its state. `exclude_from_stats`
    /// marks the session as practice too.
    pub question: Option<(Millis, QuestionState)>,
}

/// Who ended a past chat (the `ended_by` the reports read: a chat the
/// patron ended before anyone accepted it is abandoned, else missed).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PastEnd {
    /// The patron.
    Patron,
    /// A staff member.
    Staff,
    /// refdesk (idle, no one on duty).
    System,
}

impl PastEnd {
    /// The name in the database, as [`refdesk_domain::chat::Author`]'s kinds.
    pub fn as_str(self) -> &'static str {
        match self {
            PastEnd::Patron => "patron",
            PastEnd::Staff => "staff",
            PastEnd::System => "system",
        }
    }
}

/// The outbox at a glance, for metrics: how much e-mail waits, and since when.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OutboxStats {
    /// E-mails not sent yet (due, waiting to be retried, or kept as undeliverable).
    pub unsent: u64,
    /// When the oldest of them was queued.
    pub oldest_queued_at: Option<Millis>,
}

/// Live chats of one library, for metrics.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LiveCount {
    /// The library's slug (as in `/ask/<slug>`).
    pub library: String,
    /// Chats waiting for a librarian.
    pub waiting: u64,
    /// Chats under way.
    pub active: u64,
}
