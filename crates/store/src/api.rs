//! The storage interface, cut by aggregate. [`Store`] is all of them: use
//! cases hold an `Arc<dyn Store>` and bring the traits into scope with
//! `use refdesk_store::prelude::*`.

use crate::records::*;
use crate::Result;
use async_trait::async_trait;
use refdesk_domain::chat::{Author, Message};
use refdesk_domain::event::QueueEntry;
use refdesk_domain::ids::{CooperativeId, InstitutionId, LibraryId, QuestionId, SessionId, StaffId};
use refdesk_domain::org::Staff;
use refdesk_domain::privacy::{Retention, Transcripts};
use refdesk_domain::question::{QuestionState, ResolutionCode};
use refdesk_domain::Millis;

/// The cooperative, its institutions and libraries, and what each keeps: resolution codes, policy pages, scripts, settings.
#[async_trait]
pub trait Organisation: Send + Sync {
    /// Creates a cooperative with its resolution codes.
    async fn create_cooperative(&self, name: &str, codes: Vec<ResolutionCode>) -> Result<CooperativeId>;
    /// Creates an institution.
    async fn create_institution(&self, coop: CooperativeId, name: &str) -> Result<InstitutionId>;
    /// Creates a library; its slug must be unique.
    async fn create_library(&self, institution: InstitutionId, slug: &str, name: &str) -> Result<LibraryRecord>;
    /// Gives a cooperative, an institution or a library a new name (a
    /// typo, or a library that renames itself); `NotFound` if it is not
    /// there. What was written under the old name (chat lines, mail) keeps it.
    async fn rename(&self, what: Named, name: &str) -> Result<()>;
    /// A library by its slug.
    async fn library_by_slug(&self, slug: &str) -> Result<Option<LibraryRecord>>;
    /// Every library.
    async fn libraries(&self) -> Result<Vec<LibraryRecord>>;
    /// Every institution with its cooperative.
    async fn institutions(&self) -> Result<Vec<InstitutionRecord>>;
    /// A cooperative's resolution codes, in picker order.
    async fn codes(&self, coop: CooperativeId) -> Result<Vec<ResolutionCode>>;
    /// Adds or replaces one of a cooperative's resolution codes (R6: the
    /// mapping is data). A new code goes last in the picker.
    async fn put_code(&self, coop: CooperativeId, code: ResolutionCode) -> Result<()>;
    /// A library's policy page for staff serving its patrons: (text, when, by whom).
    async fn policy(&self, library: LibraryId) -> Result<Option<PolicyPage>>;
    /// Replaces a library's policy page.
    async fn set_policy(&self, library: LibraryId, body: String, by: StaffId, now: Millis) -> Result<()>;
    /// The scripts a staff member may use serving `library`'s patrons: their
    /// own, that library's, their cooperative's.
    async fn scripts_for(&self, staff: &Staff, library: LibraryId) -> Result<Vec<Script>>;
    /// One script.
    async fn script(&self, id: i64) -> Result<Option<Script>>;
    /// Saves a script.
    async fn create_script(&self, owner: ScriptOwner, title: String, body: String, now: Millis) -> Result<Script>;
    /// Replaces a script's title and text (its owner stays); `NotFound` if
    /// there is no such script.
    async fn update_script(&self, id: i64, title: String, body: String) -> Result<Script>;
    /// Deletes a script.
    async fn delete_script(&self, id: i64) -> Result<()>;
    /// Whether a blocked patron may still send the library's offline form.
    async fn blocked_may_ask(&self, library: LibraryId) -> Result<bool>;
    /// Sets [`Organisation::blocked_may_ask`].
    async fn set_blocked_may_ask(&self, library: LibraryId, may: bool) -> Result<()>;
    /// Writes an entry of the admin log; past `keep` entries of its
    /// cooperative, the oldest are deleted in the same write, but never one
    /// written at or after `young`.
    async fn log_admin(&self, entry: AdminEntry, keep: u32, young: Millis) -> Result<()>;
    /// The admin log entries of a scope, newest first: a library's, an
    /// institution's (its libraries' too), a cooperative's (all of them).
    async fn admin_log(&self, scope: ScopeLevel, limit: u32) -> Result<Vec<AdminEntry>>;
    /// Sets the sites allowed to show a library's chat in a frame
    /// ([`LibraryRecord::embed_sites`], checked by the caller); empty: any site.
    async fn set_embed_sites(&self, library: LibraryId, sites: Vec<String>) -> Result<()>;
    /// Sets the address a library's e-mails name for replies
    /// ([`LibraryRecord::reply_to`], checked by the caller); `None`: none.
    async fn set_reply_to(&self, library: LibraryId, address: Option<String>) -> Result<()>;
    /// Closes a library's chat to new patrons with a notice
    /// ([`LibraryRecord::closed_notice`], checked by the caller), or opens
    /// it again (`None`).
    async fn set_closed_notice(&self, library: LibraryId, notice: Option<String>) -> Result<()>;
    /// Sets how a library's widget button looks (checked by the caller:
    /// [`refdesk_domain::org::WidgetLook::checked`]); the default is kept
    /// as no setting.
    async fn set_widget(&self, library: LibraryId, look: refdesk_domain::org::WidgetLook) -> Result<()>;
}

/// Staff accounts, sign-ins and availability.
#[async_trait]
pub trait Staffing: Send + Sync {
    /// Creates a staff member; the username must be unique.
    async fn create_staff(&self, new: NewStaff) -> Result<StaffId>;
    /// A staff member by sign-in name.
    async fn staff_by_username(&self, username: &str) -> Result<Option<StaffRecord>>;
    /// A staff member by id (enabled or not).
    async fn staff_by_id(&self, id: StaffId) -> Result<Option<Staff>>;
    /// One staff member with their availability and state.
    async fn staff_entry(&self, id: StaffId) -> Result<Option<StaffEntry>>;
    /// Records a sign-in, and the network it came from among the account's
    /// [`KnownNetwork`]s (only the 8 it signed in from last are kept).
    /// `None`, recording nothing, when the account's password is no longer
    /// the one checked or the account is disabled; otherwise the digests of
    /// the account's oldest sign-ins it ended, past [`NewLogin::keep`].
    async fn create_login(&self, login: NewLogin) -> Result<Option<Vec<String>>>;
    /// The networks the account `username` signed in from after `since`,
    /// newest first; `None` when no account has that name.
    async fn known_networks(&self, username: &str, since: Millis) -> Result<Option<Vec<KnownNetwork>>>;
    /// Forgets the networks last signed in from at or before `before`;
    /// returns how many. At most 8 per account are ever kept.
    async fn forget_known_networks(&self, before: Millis) -> Result<u64>;
    /// The secret the service keeps under `name`: the one stored, or
    /// `fresh` when there was none (it is stored then, so that every node,
    /// before and after a restart, gets the same).
    async fn server_key(&self, name: &str, fresh: &str) -> Result<String>;
    /// The enabled staff member a live sign-in belongs to.
    async fn staff_by_login(&self, token_hash: &str, now: Millis) -> Result<Option<Staff>>;
    /// Ends a sign-in. Returns its staff member when it was the last of
    /// theirs still valid at `now` (they have left every desk), else `None`.
    async fn delete_login(&self, token_hash: &str, now: Millis) -> Result<Option<StaffId>>;
    /// Deletes at most `limit` sign-ins that expired at or before `now`
    /// (they can never be used again: [`Staffing::staff_by_login`] ignores
    /// them) and returns how many it deleted. Bounded, so that one call
    /// never holds the writer long; call again while it returns `limit`.
    async fn purge_expired_logins(&self, now: Millis, limit: u32) -> Result<u64>;
    /// Sets a staff member's availability and marks them seen; whether it
    /// changed (an unchanged one is announced to nobody).
    async fn set_availability(&self, id: StaffId, a: refdesk_domain::event::Availability, now: Millis) -> Result<bool>;
    /// Records that these staff members have a live connection now.
    async fn touch(&self, ids: Vec<StaffId>, now: Millis) -> Result<()>;
    /// Takes off duty everyone on duty not seen since `before`; returns them.
    async fn sign_off_stale(&self, before: Millis) -> Result<Vec<Staff>>;
    /// Staff of a cooperative, with availability.
    async fn staff_of(&self, coop: CooperativeId) -> Result<Vec<StaffEntry>>;
    /// Changes a staff member's account; disabling ends their sign-ins. A
    /// demotion also takes them out of the ended chats they had been in.
    async fn update_staff(&self, id: StaffId, update: StaffUpdate) -> Result<()>;
    /// Takes a staff member out of the ended chats they had been in (a
    /// conference, a hand-over they stayed in), after a demotion: their
    /// role's scope decides what they see of them.
    async fn leave_ended_chats(&self, id: StaffId) -> Result<()>;
}

/// Chat sessions: the queue, the lines, the people in them.
#[async_trait]
pub trait Chats: Send + Sync {
    /// Starts a waiting chat; the question is its first message.
    async fn start_session(&self, new: NewSession) -> Result<(SessionRecord, QueueEntry)>;
    /// A session by id.
    async fn session(&self, id: SessionId) -> Result<Option<SessionRecord>>;
    /// A session by the SHA-256 of its patron token.
    async fn session_by_token(&self, token_hash: &str) -> Result<Option<SessionRecord>>;
    /// Every waiting chat of the service, oldest first (for tests and
    /// tools; the app reads a cooperative's with [`Chats::waiting_in`]).
    async fn waiting(&self) -> Result<Vec<QueueEntry>>;
    /// The waiting chats whose queue is in `coop`, oldest first: what its
    /// staff may be offered (the app filters further), without reading the
    /// other cooperatives' queues.
    async fn waiting_in(&self, coop: CooperativeId) -> Result<Vec<QueueEntry>>;
    /// Every session that is active and where `staff` is the librarian.
    async fn sessions_of(&self, staff: StaffId) -> Result<Vec<SessionRecord>>;
    /// Active chats whose librarian can no longer answer them: their
    /// account disabled, or no node has seen them since `before`; `limit`
    /// at most, with the librarian of each.
    async fn orphaned_chats(&self, before: Millis, limit: u32) -> Result<Vec<(SessionId, StaffId)>>;
    /// Active chats whose librarian's desk is gone and whose patron was not
    /// told (no node has seen the librarian since `gone_before`, but one
    /// has since `signoff_before`: the chat is not handed back yet), and
    /// those whose patron was told and whose librarian has been seen since;
    /// `limit` at most. Their accounts enabled.
    async fn librarians_to_tell(
        &self,
        gone_before: Millis,
        signoff_before: Millis,
        limit: u32,
    ) -> Result<Vec<LibrarianToTell>>;
    /// Writes `line` into an active chat of `staff`'s, telling its patron
    /// `news` of their desk, and records it — if that still holds inside the
    /// write (the chat theirs, not told already, under `max_lines` lines:
    /// a desk that drops and comes back again and again fills no chat).
    /// Whether it wrote.
    async fn tell_librarian_desk(
        &self,
        id: SessionId,
        staff: StaffId,
        news: DeskNews,
        line: NewMessage,
        max_lines: u64,
        now: Millis,
    ) -> Result<bool>;
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
    /// Records where the patron wants the transcript sent, and tells staff
    /// in a line when that changed (unless the chat holds `max_lines`).
    async fn set_transcript_to(
        &self,
        id: SessionId,
        email: Option<String>,
        utc_offset: Option<i32>,
        max_lines: u64,
        now: Millis,
    ) -> Result<()>;
    /// The patron asks for the transcript once the chat has ended: recorded
    /// and queued at once (`mail` builds it), once per chat, only of a chat
    /// a librarian took and whose data is not erased; past
    /// `max_per_recipient_per_day` transcripts to one mailbox, recorded and
    /// not sent (as at an end: never refused for it).
    async fn transcript_after_end(
        &self,
        id: SessionId,
        email: String,
        utc_offset: Option<i32>,
        mail: TranscriptMail,
        max_per_recipient_per_day: Option<u32>,
        now: Millis,
    ) -> Result<()>;
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
    /// The patron's line numbered `patron_seq` (`Message::patron_seq`), as
    /// `(seq, patron_seq)`: where a patron who has had their lines up to it
    /// stands. A number past the chat's last line is its last line's
    /// numbers; `(0, 0)` for 0.
    async fn seen_by_patron(&self, id: SessionId, patron_seq: u64) -> Result<(u64, u64)>;
    /// The lines for everyone (those a patron sees) with `seq > after`, in
    /// order, at most `limit`: the lines for staff between them are stepped
    /// over in the read, never read whole nor counted.
    async fn lines_for_everyone_after(&self, id: SessionId, after: u64, limit: u32) -> Result<Vec<Message>>;
    /// How many chats wait ahead of (`since`, `session`) in a library's
    /// queue whose patron has a page open (not marked away).
    async fn queue_ahead(&self, queue: LibraryId, since: Millis, session: SessionId) -> Result<u64>;
    /// A waiting chat's patron has had no page of it open since `since`
    /// (their last page's socket closed), or has one again (`None`):
    /// recorded and told to the queues (`Event::PatronAway`) when it
    /// changes; nothing once the chat no longer waits.
    async fn patron_away(&self, id: SessionId, since: Option<Millis>) -> Result<()>;
    /// The patron's rating of an ended chat (1–5) and comment; replaces an earlier one.
    async fn rate(&self, id: SessionId, rating: u8, comment: Option<String>) -> Result<()>;
    /// Active chats whose last message is older than `before`.
    async fn idle_sessions(&self, before: Millis) -> Result<Vec<SessionId>>;
    /// Waiting chats that entered their queue before `before`, longest
    /// waiting first, `limit` at most: their ids alone (the background
    /// round asks every second, whatever strangers left in the queues).
    async fn expired_waiting(&self, before: Millis, limit: u32) -> Result<Vec<SessionId>>;
    /// The chats started at `library` from the browser of key `browser`
    /// (`PatronKeys::browser`) that still wait, with a page of them open
    /// or not (`patron_away`, which the caller reads): those left behind by
    /// a patron who closed the page, and who now asks again.
    async fn left_waiting(&self, library: LibraryId, browser: &str) -> Result<Vec<SessionId>>;
    /// The waiting and active sessions of `scope`'s libraries and those
    /// `staff` takes part in (their librarian or a member), by id: what the
    /// chat monitor may show them (the app filters further), without
    /// reading the rest of the service's. `None`: only those they take
    /// part in.
    async fn live_seen_by(&self, scope: Option<ScopeLevel>, staff: StaffId) -> Result<Vec<SessionRecord>>;
    /// A staff member enters a chat, or changes mode (R3, B2), with the line
    /// [`refdesk_domain::lines::conference`] words for it.
    async fn conference(
        &self,
        id: SessionId,
        by: Staff,
        mode: refdesk_domain::chat::ConferenceMode,
        guard: Guard,
        now: Millis,
    ) -> Result<SessionRecord>;
    /// A conference member leaves, with the line [`refdesk_domain::lines::leave`] words.
    async fn leave(&self, id: SessionId, by: Staff, guard: Guard, now: Millis) -> Result<SessionRecord>;
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
    /// Waiting and active chats per library (the patron's), for metrics.
    /// Only libraries with a live chat are listed. Cheap: it reads the
    /// index of live sessions, never the ended ones.
    async fn live_counts(&self) -> Result<Vec<LiveCount>>;
}

/// The question list: questions, their actions and timelines.
#[async_trait]
pub trait Questions: Send + Sync {
    /// A question from the offline form: status new, nobody assigned.
    async fn create_form_question(&self, new: NewFormQuestion) -> Result<QuestionRecord>;
    /// A filtered page of the question list, newest first.
    async fn questions(&self, query: QuestionQuery) -> Result<Vec<QuestionRecord>>;
    /// Applies a question-list action atomically: new state and timeline
    /// (R7), a line in the live chat (R4), an e-mail in the outbox.
    async fn act_on_question(&self, id: QuestionId, by: Staff, plan: Plan, now: Millis) -> Result<Acted>;
    /// One question.
    async fn question(&self, id: QuestionId) -> Result<Option<QuestionRecord>>;
    /// A page of its timeline, oldest first: the entries after its first
    /// `after`, at most `limit`.
    async fn timeline_page(&self, id: QuestionId, after: u64, limit: u32) -> Result<Vec<TimelineEntry>>;
    /// Its whole timeline, oldest first (at most `max_question_entries` and a
    /// hundred more, and its blocks): for tests and tools; a question's page
    /// reads [`Questions::timeline_page`].
    async fn timeline(&self, id: QuestionId) -> Result<Vec<TimelineEntry>> {
        self.timeline_page(id, 0, u32::MAX).await
    }
}

/// Staff instant messages.
#[async_trait]
pub trait Im: Send + Sync {
    /// Stores a direct message; a re-sent client id returns the stored one.
    /// A sender who sent `per_day` in the last 24 hours is refused
    /// (`too_many_ims`), counted inside the write.
    async fn im_send(
        &self,
        from: Staff,
        to: StaffId,
        body: String,
        client_id: Option<String>,
        per_day: u32,
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
    /// `me`'s conversations, the last written first, with unread counts
    /// (among each conversation's last 1,000 messages): a row per colleague
    /// written to, whatever the history's length.
    async fn im_conversations(&self, me: StaffId) -> Result<Vec<ImConversation>>;
    /// Marks `me`'s conversation with `peer` read up to `seq`, or its last
    /// message if `seq` is past it; returns how far.
    async fn im_read(&self, me: StaffId, peer: StaffId, seq: u64) -> Result<u64>;
}

/// E-mail waiting to be sent, and the caps on it.
#[async_trait]
pub trait Outbox: Send + Sync {
    /// Undelivered e-mail due at `now`, oldest first (a look, for status
    /// pages and tests: nothing changes).
    async fn due_mail(&self, now: Millis, limit: u32) -> Result<Vec<OutboxMail>>;
    /// Takes undelivered e-mail due at `now`, oldest first, for one mailer:
    /// each is due again only at `lease_until`, unless its sender reports
    /// first ([`Outbox::mail_sent`], [`Outbox::mail_failed`]). Several nodes'
    /// mailers share one outbox and never send one e-mail at once; if a node
    /// dies holding some, they are sent when the lease runs out.
    async fn claim_mail(&self, now: Millis, limit: u32, lease_until: Millis) -> Result<Vec<OutboxMail>>;
    /// Marks an e-mail delivered.
    async fn mail_sent(&self, id: i64, now: Millis) -> Result<()>;
    /// Records a failed attempt and when to try again.
    async fn mail_failed(&self, id: i64, error: &str, retry_at: Millis) -> Result<()>;
    /// Sets an e-mail aside for good (the mail server refused it): kept in
    /// the outbox, never tried again; its question (if any) is told in its
    /// timeline, and an answer's flagged for follow-up. Returns it.
    async fn mail_undeliverable(&self, id: i64, error: &str, now: Millis) -> Result<Option<QuestionId>>;
    /// One e-mail by id (for status pages and tests).
    async fn mail(&self, id: i64) -> Result<Option<OutboxMail>>;
    /// The earliest time an undelivered e-mail is due, if any.
    async fn next_mail_due(&self) -> Result<Option<Millis>>;
    /// How many e-mails are not sent yet and when the oldest was queued
    /// (for metrics; reads the index of unsent mail only).
    async fn outbox_stats(&self) -> Result<OutboxStats>;
}

/// Abusive patrons blocked from chatting.
#[async_trait]
pub trait Blocks: Send + Sync {
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
    /// The chats still waiting at the block's cooperative, never taken by a
    /// librarian, from the blocked patron: started with its browser id, or
    /// from its network with no browser id at all (a script's; another
    /// patron's widget behind a shared address keeps its chat). Not the one
    /// it was made from; oldest first, at most [`BLOCKED_WAITING_AT_MOST`].
    async fn waiting_under_block(&self, block: i64) -> Result<Vec<SessionId>>;
}

/// At most this many waiting chats a block ends besides its own: a network
/// has at most `limits.max_waiting_per_address` waiting, a browser id's
/// chats are bounded by the libraries' queues.
pub const BLOCKED_WAITING_AT_MOST: u32 = 1_000;

/// The figures of the reports (issue 15), counted where the rows are.
/// Practice chats (a question excluded from statistics) are never counted.
#[async_trait]
pub trait Reports: Send + Sync {
    /// Chats and forms in `range`, counted per group.
    async fn session_counts(&self, range: ReportRange, by: SessionGroup) -> Result<Vec<SessionCounts>>;
    /// Questions in `range`, counted per group (the key as text).
    async fn question_counts(&self, range: ReportRange, by: QuestionGroup) -> Result<Vec<(Option<String>, i64)>>;
    /// How many chats in `range` lasted each whole number of seconds of
    /// `span` (a histogram, for exact percentiles to the second).
    async fn span_histogram(&self, range: ReportRange, span: Span) -> Result<Vec<(i64, i64)>>;
    /// How many chats in `range` someone conferenced into (monitor, whisper
    /// or join), whether or not they are still there.
    async fn conferenced(&self, range: ReportRange) -> Result<i64>;
    /// Ratings with a comment, newest first, at most `limit`.
    async fn rating_comments(&self, range: ReportRange, limit: u32) -> Result<Vec<RatingComment>>;
}

/// Patron privacy (issue 15): retention periods, erasing personal data,
/// and the audit list of both.
#[async_trait]
pub trait Privacy: Send + Sync {
    /// A library's retention period, if it set one.
    async fn retention(&self, library: LibraryId) -> Result<Option<Retention>>;
    /// Sets or clears (`None`: keep) a library's retention period.
    async fn set_retention(&self, library: LibraryId, r: Option<Retention>, by: StaffId, now: Millis) -> Result<()>;
    /// Every library's retention period.
    async fn retentions(&self) -> Result<Vec<(LibraryId, Retention)>>;
    /// Ended chats of `library` started before `before` whose personal
    /// data is still there, oldest first, at most `limit`.
    async fn due_for_erasure(&self, library: LibraryId, before: Millis, limit: u32) -> Result<Vec<SessionId>>;
    /// Erases the personal data of `sessions` in one write, all or nothing
    /// (a session that is not ended is a conflict), and records it in the
    /// audit list, one entry per library. Returns how many were erased
    /// (one erased before is not counted again).
    async fn erase(
        &self,
        sessions: Vec<SessionId>,
        transcripts: Transcripts,
        why: ErasureReason,
        now: Millis,
    ) -> Result<u64>;
    /// Erases again, in one write, the chats of an erasure on request made
    /// by `by` (an account's id and username: the audit list names it only
    /// if both match an account here) (each named with when it started: an id a restored database
    /// gave again to another chat is left alone) whose personal data this
    /// database still holds: the ended ones now, recorded in the audit list
    /// as `redo`; those going on are returned as waiting. A chat this
    /// database does not hold, or holds erased, is passed over.
    async fn redo_erasures(
        &self,
        chats: Vec<(SessionId, Millis)>,
        transcripts: Transcripts,
        by: (StaffId, String),
        now: Millis,
    ) -> Result<Redone>;
    /// Takes the browser and network digests out of every block that ran
    /// out or was lifted, once its chat was erased (a block in force keeps
    /// them until then). Returns how many blocks.
    async fn forget_spent_blocks(&self, now: Millis) -> Result<u64>;
    /// Deletes at most `limit` e-mails delivered before `before`, oldest
    /// first (the outbox is a queue, not an archive: each holds an answer or
    /// a whole transcript); never one not delivered. Returns how many.
    async fn forget_sent_mail(&self, before: Millis, limit: u32) -> Result<u64>;
    /// Chats of `libraries` whose patron e-mail or transcript address is
    /// `email`, whatever its letter case; newest first.
    async fn patron_sessions(&self, email: &str, libraries: Vec<LibraryId>) -> Result<Vec<PatronSession>>;
    /// The audit list of `libraries`, newest first.
    async fn privacy_log(&self, libraries: Vec<LibraryId>, limit: u32) -> Result<Vec<PrivacyEntry>>;
    /// How a chat's personal data was erased — when, why and by whom, from
    /// its entry in the audit list — or `None` if it was not.
    async fn erasure_of(&self, session: SessionId) -> Result<Option<Erasure>>;
}

/// Loading past history in bulk: the reports' benchmark (`refdesk
/// bench-reports`, docs/performance.md) and records brought over from
/// another service. Thousands of rows per write, none of the per-chat
/// work of [`Chats`] (no events, no timeline entries, no e-mail): for an
/// offline load, never for live chats.
#[async_trait]
pub trait History: Send + Sync {
    /// Writes ended chats and forms of the past with their questions, first
    /// messages and conference members, in one write (all or nothing).
    /// Returns how many sessions were written.
    async fn import_history(&self, sessions: Vec<PastSession>) -> Result<u64>;
    /// Refreshes what the query planner knows after a bulk load: `ANALYZE`
    /// on SQLite, `VACUUM ANALYZE` on PostgreSQL (which also lets its
    /// index-only scans skip the table).
    async fn analyze(&self) -> Result<()>;
    /// The database's size in bytes (SQLite: its pages, without the
    /// write-ahead log; PostgreSQL: `pg_database_size`).
    async fn database_size(&self) -> Result<u64>;
}

/// The one storage interface: every aggregate's, plus the store's own life.
/// Every backend passes the same contract tests.
#[async_trait]
pub trait Store:
    Organisation + Staffing + Chats + Questions + Im + Outbox + Blocks + Reports + Privacy + History + 'static
{
    /// Ends the store for a clean shutdown: writes already under way finish,
    /// then the connections close (on SQLite the last one empties and
    /// removes the write-ahead log). Every call after it fails with
    /// [`StoreError::Closed`]. Calling it again does nothing.
    async fn close(&self);
    /// Whether nothing has been created yet (for `serve --demo`).
    async fn is_empty(&self) -> Result<bool>;
    /// Whether the database answers a read (for `/readyz`), without
    /// waiting behind the reads of others: a flood of patrons' requests,
    /// which the node refuses as it should, is no reason to take it out of
    /// rotation. SQLite — a read first in the readers' line; PostgreSQL —
    /// on the store's health connection, outside the pool.
    async fn answers(&self) -> Result<()>;
    /// Whether the store can commit a write now (for `/readyz`). Cheap, and
    /// answers within a few seconds, without waiting behind other writes:
    /// SQLite — the writer thread is alive and a batch that wrote committed
    /// in the last second, or a ping asked for now, which writes a byte of
    /// the file's header in a transaction of its own before the writer's
    /// next batch, commits within [`crate::HEALTH_WAIT`] (at most one such
    /// ping is ever pending; a batch that writes nothing proves nothing: it
    /// commits on a read-only file too); PostgreSQL — the store's health
    /// connection (one of its own, outside the pool, opened again when it
    /// fails) answers and is not read-only (no standby, no
    /// `default_transaction_read_only`). An error says what is wrong.
    async fn health(&self) -> Result<()>;
    /// Lets go of what the store keeps in memory that nobody has used for
    /// a while (PostgreSQL: the copies of chats for appends, with their
    /// patrons' names and addresses); the background round calls it, so
    /// that a node that appends nothing still lets them go.
    fn forget_unused(&self) {}
}
