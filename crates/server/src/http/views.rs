//! Wire views: the JSON shapes the REST API answers with, owned by the edge.
//!
//! Handlers never serialize a store record or a use case's result as it is:
//! each is turned into a view here, so that a change inside `store` or `app`
//! (a field renamed, a record split) cannot change what clients read, and
//! the OpenAPI document is derived from the very types that are sent.
//!
//! Domain types that already are the wire format — a message after the
//! visibility function, a queue entry, a monitor row, a resolution code, an
//! IM — are sent as they are; they derive their schema through the
//! `openapi` feature of `refdesk-domain` rather than being mirrored here,
//! where a copy could drift from what the WebSocket sends of the same thing.
//!
//! The field names and shapes below are the API's: the web client in `web/`
//! and the API tests read them. Never rename one without changing both.

use refdesk_domain::chat::{Message, SessionContext, SessionState};
use refdesk_domain::event::{Availability, ImMessage, SessionSummary};
use refdesk_domain::ids::{CooperativeId, InstitutionId, LibraryId, QuestionId, SessionId, StaffId};
use refdesk_domain::org::{Placement, Staff};
use refdesk_domain::privacy::Transcripts;
use refdesk_domain::question::{Change, Channel, QuestionState};
use serde::Serialize;
use utoipa::ToSchema;

/// A chat session as staff see it.
#[derive(Serialize, ToSchema)]
pub struct SessionView {
    /// The session, with its place and participants.
    pub ctx: SessionContext,
    /// waiting, active or ended.
    pub state: SessionState,
    /// The name the patron gave, if any.
    pub patron_name: Option<String>,
    /// The e-mail address the patron gave, if any.
    pub patron_email: Option<String>,
    /// When the patron started it (ms since the epoch).
    pub created_at: i64,
    /// When a librarian accepted it.
    pub accepted_at: Option<i64>,
    /// When it ended.
    pub ended_at: Option<i64>,
    /// Whether a resolution code has been set on its question (R5).
    pub code_set: bool,
    /// The last sequence number used.
    pub last_seq: u64,
    /// Where the patron asked the transcript to be e-mailed at the end.
    pub transcript_to: Option<String>,
    /// The library whose queue it waits (or last waited) in.
    pub queue: Placement,
    /// When it entered that queue.
    pub queued_at: i64,
    /// Offered to the whole cooperative at once.
    pub queue_coop: bool,
    /// The patron's library's name.
    pub library_name: String,
    /// The chatting librarian's name.
    pub librarian_name: Option<String>,
    /// When its last message was written.
    pub last_message_at: i64,
}

impl From<refdesk_store::SessionRecord> for SessionView {
    fn from(r: refdesk_store::SessionRecord) -> Self {
        SessionView {
            ctx: r.ctx,
            state: r.state,
            patron_name: r.patron_name,
            patron_email: r.patron_email,
            created_at: r.created_at,
            accepted_at: r.accepted_at,
            ended_at: r.ended_at,
            code_set: r.code_set,
            last_seq: r.last_seq,
            transcript_to: r.transcript_to,
            queue: r.queue,
            queued_at: r.queued_at,
            queue_coop: r.queue_coop,
            library_name: r.library_name,
            librarian_name: r.librarian_name,
            last_message_at: r.last_message_at,
        }
    }
}

/// A session with a page of the messages staff may see (notes included).
#[derive(Serialize, ToSchema)]
pub struct SessionTranscript {
    /// The session.
    pub session: SessionView,
    /// Its messages after `after`, in order: at most 5,000, and no more
    /// than about 1 MiB of text (the first always).
    pub messages: Vec<Message>,
    /// Whether more follow: ask again with `after` the last one's `seq`.
    pub more: bool,
}

/// The acknowledgement of a committed message (I2: sent after the commit).
#[derive(Serialize, ToSchema)]
pub struct Ack {
    /// Its sequence number.
    pub seq: u64,
    /// True if the client id had been used before (nothing new was stored, I4).
    pub duplicate: bool,
    /// The stored message.
    pub message: Message,
}

impl From<refdesk_store::Appended> for Ack {
    fn from(a: refdesk_store::Appended) -> Self {
        Ack { seq: a.message.seq, duplicate: a.duplicate, message: a.message }
    }
}

/// A block on an abusive patron, as the audit list shows it.
#[derive(Serialize, ToSchema)]
pub struct BlockView {
    /// Its id.
    pub id: i64,
    /// The library of the chat it came from.
    pub placement: Placement,
    /// That library's name.
    pub library_name: String,
    /// The chat.
    pub session: SessionId,
    /// The chat's question, if it has one.
    pub question: Option<QuestionId>,
    /// Why, in the librarian's words (staff only).
    pub reason: String,
    /// Who blocked.
    pub created_by: StaffId,
    /// Their name.
    pub created_by_name: String,
    /// When.
    pub created_at: i64,
    /// When it runs out.
    pub expires_at: i64,
    /// When it was lifted, if it was.
    pub lifted_at: Option<i64>,
    /// Who lifted it.
    pub lifted_by_name: Option<String>,
    /// Whether it holds the chat's network — every patron there — and not
    /// only the patron's browser.
    pub network: bool,
}

impl From<refdesk_store::BlockRecord> for BlockView {
    fn from(b: refdesk_store::BlockRecord) -> Self {
        BlockView {
            id: b.id,
            placement: b.placement,
            library_name: b.library_name,
            session: b.session,
            question: b.question,
            reason: b.reason,
            created_by: b.created_by,
            created_by_name: b.created_by_name,
            created_at: b.created_at,
            expires_at: b.expires_at,
            lifted_at: b.lifted_at,
            lifted_by_name: b.lifted_by_name,
            network: b.network,
        }
    }
}

/// A question as the list shows it.
#[derive(Serialize, ToSchema)]
pub struct QuestionView {
    /// Its number.
    pub id: QuestionId,
    /// The chat it came from.
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
    /// Their name.
    pub librarian_name: Option<String>,
    /// The name of the staff member who last e-mailed an answer to it (a
    /// question asked by the form has no chatting librarian; the list's
    /// `librarian` filter finds it by either).
    pub emailed_by_name: Option<String>,
    /// The name of the staff member it is assigned to (`state.assignee`).
    pub assignee_name: Option<String>,
    /// The chat's state.
    pub session_state: SessionState,
    /// R2, B1: its chat is still live (R5: not ended, or ended and not
    /// coded; a chat that ended while nobody was chatting in it is not).
    pub live: bool,
    /// When it was created.
    pub created_at: i64,
    /// When its chat last had a message, or it was last answered by
    /// e-mail, whichever is later.
    pub last_message_at: i64,
    /// Where the owning library sits.
    pub placement: Placement,
    /// Where the library it was referred to sits, if referred.
    pub referred: Option<Placement>,
    /// The name of that library.
    pub referred_name: Option<String>,
    /// The patron's rating of the chat (1–5), if they gave one.
    #[schema(minimum = 1, maximum = 5)]
    pub rating: Option<u8>,
    /// Their comment with it.
    pub rating_comment: Option<String>,
    /// The name the patron gave, if any.
    pub patron_name: Option<String>,
    /// Its patron's personal data was erased (on request or by the
    /// library's retention period): the chat's lines and the question's
    /// texts are masked. A page that shows it reads it again.
    pub erased: bool,
    /// How it came: a chat a librarian took, a chat missed or abandoned
    /// (its patron left the line), one still waiting, or the offline form.
    pub channel: Channel,
}

impl From<refdesk_store::QuestionRecord> for QuestionView {
    fn from(q: refdesk_store::QuestionRecord) -> Self {
        QuestionView {
            id: q.id,
            session: q.session,
            library: q.library,
            library_name: q.library_name,
            text: q.text,
            state: q.state,
            librarian: q.librarian,
            librarian_name: q.librarian_name,
            emailed_by_name: q.emailed_by_name,
            assignee_name: q.assignee_name,
            session_state: q.session_state,
            live: q.live,
            created_at: q.created_at,
            last_message_at: q.last_message_at,
            placement: q.placement,
            referred: q.referred,
            referred_name: q.referred_name,
            rating: q.rating,
            rating_comment: q.rating_comment,
            patron_name: q.patron_name,
            erased: q.erased,
            channel: q.channel,
        }
    }
}

/// One entry of a question's timeline (R7): when, who, and what changed
/// (the fields of `Change`, tagged by `change`, beside these).
#[derive(Serialize, ToSchema)]
pub struct TimelineEntryView {
    /// When.
    pub at: i64,
    /// Who (none: refdesk itself).
    pub actor: Option<StaffId>,
    /// Their name at the time.
    pub actor_name: String,
    /// What changed.
    #[serde(flatten)]
    pub change: Change,
}

impl From<refdesk_store::TimelineEntry> for TimelineEntryView {
    fn from(t: refdesk_store::TimelineEntry) -> Self {
        TimelineEntryView { at: t.at, actor: t.actor, actor_name: t.actor_name, change: t.change }
    }
}

/// A question's page: the record, its transcript and its timeline.
#[derive(Serialize, ToSchema)]
pub struct QuestionDetailView {
    /// The question.
    pub question: QuestionView,
    /// The messages staff may see, notes included, after `after`: a page
    /// (at most 5,000, and about 1 MiB of text).
    pub transcript: Vec<Message>,
    /// Whether the chat goes on past `transcript`: ask again with `after`
    /// the last one's `seq`.
    pub transcript_more: bool,
    /// A page of its timeline (R7), oldest first: the entries after the
    /// first `timeline_after`, at most 100 and about 256 KiB of text.
    pub timeline: Vec<TimelineEntryView>,
    /// Whether the timeline goes on past `timeline`: ask again with
    /// `timeline_after` the number of entries shown.
    pub timeline_more: bool,
    /// The e-mail address the patron gave, if any (the page is staff-only).
    pub patron_email: Option<String>,
    /// When, why and by whom its patron's personal data was erased; `null`
    /// if it was not.
    pub erasure: Option<ErasureView>,
}

/// How a chat's personal data was erased.
#[derive(Serialize, ToSchema)]
pub struct ErasureView {
    /// When (ms since the epoch).
    pub at: i64,
    /// `erase` (an admin, at the patron's request), `retention` (the
    /// library's retention period) or `redo` (erased again after a restore
    /// from a backup); `null` when the audit list has no entry of it.
    pub action: Option<String>,
    /// What became of the chat's lines: `mask` (the patron's name,
    /// addresses and numbers taken out) or `delete`.
    pub transcripts: Option<Transcripts>,
    /// The admin who erased it (their name now); `null` for the retention
    /// period.
    pub by_name: Option<String>,
}

impl From<refdesk_app::QuestionDetail> for QuestionDetailView {
    fn from(d: refdesk_app::QuestionDetail) -> Self {
        QuestionDetailView {
            question: d.question.into(),
            transcript: d.transcript,
            transcript_more: d.transcript_more,
            timeline: d.timeline.into_iter().map(Into::into).collect(),
            timeline_more: d.timeline_more,
            patron_email: d.patron_email,
            erasure: d.erasure.map(|e| ErasureView {
                at: e.at,
                action: e.action,
                transcripts: e.transcripts,
                by_name: e.by_name,
            }),
        }
    }
}

/// The outcome of an action on a question, with a sentence for the person who acted.
#[derive(Serialize, ToSchema)]
pub struct ActOutcomeView {
    /// The question after the action.
    pub question: QuestionView,
    /// The line written into the live chat, if any.
    pub chat_line: Option<Message>,
    /// The address the answer was e-mailed to, if any.
    pub emailed_to: Option<String>,
    /// What happened, in words (e.g. "shown in the chat only").
    pub notice: Option<String>,
}

impl From<refdesk_app::ActOutcome> for ActOutcomeView {
    fn from(o: refdesk_app::ActOutcome) -> Self {
        ActOutcomeView {
            question: o.question.into(),
            chat_line: o.chat_line,
            emailed_to: o.emailed_to,
            notice: o.notice,
        }
    }
}

/// The chat monitor's two tabs.
#[derive(Serialize, ToSchema)]
pub struct MonitorView {
    /// Sessions I am in (chatting or conferencing).
    pub my: Vec<SessionSummary>,
    /// Every live session in my scope (admins; empty for librarians).
    pub all: Vec<SessionSummary>,
    /// Sessions I am in beyond those in `my` (0: that is all).
    pub my_more: usize,
    /// Live sessions in my scope beyond those in `all` (0: that is all).
    pub all_more: usize,
}

impl MonitorView {
    /// Both tabs, each cut to its first `most`, saying how many more each holds.
    pub fn first(m: refdesk_app::Monitor, most: usize) -> Self {
        let (mut my, mut all) = (m.my, m.all);
        let (my_more, all_more) = (my.len().saturating_sub(most), all.len().saturating_sub(most));
        my.truncate(most);
        all.truncate(most);
        MonitorView { my, all, my_more, all_more }
    }
}

/// A staff member with what staff management shows.
#[derive(Serialize, ToSchema)]
pub struct StaffEntryView {
    /// The staff member (their fields, beside these).
    #[serde(flatten)]
    pub staff: Staff,
    /// Their library's name.
    pub library_name: String,
    /// On duty, away or off duty.
    pub availability: Availability,
    /// When a connection of theirs was last seen.
    pub last_seen: i64,
    /// Disabled staff cannot sign in.
    pub disabled: bool,
}

impl From<refdesk_store::StaffEntry> for StaffEntryView {
    fn from(e: refdesk_store::StaffEntry) -> Self {
        StaffEntryView {
            staff: e.staff,
            library_name: e.library_name,
            availability: e.availability,
            last_seen: e.last_seen,
            disabled: e.disabled,
        }
    }
}

/// What a colleague's presence says.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum PresenceState {
    /// Connected and on duty.
    OnDuty,
    /// Connected and away.
    Away,
    /// Connected, off duty.
    Online,
    /// Not connected.
    Offline,
}

/// A colleague as the presence list shows them.
#[derive(Serialize, ToSchema)]
pub struct PresenceView {
    /// The staff member and their availability (their fields, beside `presence`).
    #[serde(flatten)]
    pub entry: StaffEntryView,
    /// Whether they are connected, and how.
    pub presence: PresenceState,
}

impl From<refdesk_app::Presence> for PresenceView {
    fn from(p: refdesk_app::Presence) -> Self {
        // `App::presence` says one of these four; anything else would be a
        // colleague it cannot see connected.
        let presence = match p.presence {
            "on_duty" => PresenceState::OnDuty,
            "away" => PresenceState::Away,
            "online" => PresenceState::Online,
            _ => PresenceState::Offline,
        };
        PresenceView { entry: p.entry.into(), presence }
    }
}

/// One IM conversation as the list shows it.
#[derive(Serialize, ToSchema)]
pub struct ImConversationView {
    /// The other staff member.
    pub peer: StaffId,
    /// Their name.
    pub peer_name: String,
    /// The last sequence number in the conversation.
    pub last_seq: u64,
    /// Messages from them not yet read, counted among the conversation's
    /// last 1,000 (so 1,000 at most).
    pub unread: u64,
}

impl From<refdesk_store::ImConversation> for ImConversationView {
    fn from(c: refdesk_store::ImConversation) -> Self {
        ImConversationView { peer: c.peer, peer_name: c.peer_name, last_seq: c.last_seq, unread: c.unread }
    }
}

/// A direct message just sent.
#[derive(Serialize, ToSchema)]
pub struct ImSent {
    /// The stored message.
    pub message: ImMessage,
    /// True if the client id had been used before (nothing new was stored).
    pub duplicate: bool,
}

/// A library and its entry point (`/ask/{slug}`).
#[derive(Serialize, ToSchema)]
pub struct LibraryView {
    /// Its id.
    pub id: LibraryId,
    /// URL name.
    pub slug: String,
    /// Display name.
    pub name: String,
    /// Its institution.
    pub institution: refdesk_domain::ids::InstitutionId,
    /// Its cooperative (a page lists what is in its reader's scope).
    pub cooperative: refdesk_domain::ids::CooperativeId,
}

impl From<refdesk_store::LibraryRecord> for LibraryView {
    fn from(l: refdesk_store::LibraryRecord) -> Self {
        let p = l.placement;
        LibraryView {
            id: p.library,
            slug: l.slug,
            name: l.name,
            institution: p.institution,
            cooperative: p.cooperative,
        }
    }
}

/// An institution and its cooperative.
#[derive(Serialize, ToSchema)]
pub struct InstitutionView {
    /// Its id.
    pub id: InstitutionId,
    /// Its name.
    pub name: String,
    /// Its cooperative.
    pub cooperative: CooperativeId,
    /// The cooperative's name.
    pub cooperative_name: String,
}

impl From<refdesk_store::InstitutionRecord> for InstitutionView {
    fn from(i: refdesk_store::InstitutionRecord) -> Self {
        InstitutionView { id: i.id, name: i.name, cooperative: i.cooperative, cooperative_name: i.cooperative_name }
    }
}

/// A library's notes for staff serving its patrons.
#[derive(Serialize, ToSchema)]
pub struct PolicyPageView {
    /// The library.
    pub library: LibraryId,
    /// Plain text, shown as text.
    pub body: String,
    /// Last change.
    pub updated_at: i64,
    /// Who changed it last.
    pub updated_by: Option<String>,
}

impl From<refdesk_store::PolicyPage> for PolicyPageView {
    fn from(p: refdesk_store::PolicyPage) -> Self {
        PolicyPageView { library: p.library, body: p.body, updated_at: p.updated_at, updated_by: p.updated_by }
    }
}

/// A canned message.
#[derive(Serialize, ToSchema)]
pub struct ScriptView {
    /// Its id.
    pub id: i64,
    /// `personal`, `library` or `cooperative`.
    pub scope: String,
    /// The staff member, library or cooperative it belongs to (by `scope`).
    pub owner: i64,
    /// What the picker shows.
    pub title: String,
    /// What it inserts.
    pub body: String,
}

impl From<refdesk_store::Script> for ScriptView {
    fn from(s: refdesk_store::Script) -> Self {
        ScriptView { id: s.id, scope: s.scope, owner: s.owner, title: s.title, body: s.body }
    }
}

/// A chat just started: its id and the patron's secret token (shown once).
#[derive(Serialize, ToSchema)]
pub struct StartedView {
    /// The session.
    pub session: SessionId,
    /// The secret that opens it (`Authorization: Bearer …`, or the socket's
    /// `auth` frame). Only its digest is stored.
    pub token: String,
    /// The library's name.
    pub library: String,
    /// Where the transcript will be e-mailed at the end: the address when
    /// one was asked for and taken, else none — asked for from a network
    /// that asked for too many this hour, the chat starts without one
    /// (`limits.patron_mails_per_address_per_hour`; a library's lab shares
    /// one address) and the page says so.
    pub transcript_to: Option<String>,
}

impl From<refdesk_app::Started> for StartedView {
    fn from(s: refdesk_app::Started) -> Self {
        StartedView { session: s.session, token: s.token, library: s.library, transcript_to: s.transcript_to }
    }
}

/// The chat as the patron sees it, a page at a time.
#[derive(Serialize, ToSchema)]
pub struct PatronChat {
    /// The session.
    pub session: SessionId,
    /// waiting, active or ended.
    pub state: SessionState,
    /// The lines the patron may see (notes and staff-only lines never, B4),
    /// numbered the patron's way: `seq` is their `patron_seq`, 1, 2, 3…
    pub messages: Vec<Message>,
    /// The patron's number of the last line read: the next page starts
    /// after it.
    pub last: u64,
    /// Whether more lines follow.
    pub more: bool,
    /// Where the transcript is (or was) to be e-mailed at the end, if the
    /// patron asked: a page opened again says so.
    pub transcript_to: Option<String>,
}

/// Whether a library's entry point has anyone to answer.
#[derive(Serialize, ToSchema)]
pub struct LibraryStatusView {
    /// The library's name.
    pub library: String,
    /// Someone who can serve its patrons is on duty.
    pub online: bool,
    /// The longest question or line a patron may send, in characters
    /// (`limits.max_message_chars`): the start form counts down to it.
    pub max_message_chars: usize,
    /// Days after a chat ends that the library removes the patron's name,
    /// e-mail address and network from it (its retention period); `null`:
    /// kept until the library erases them. The start form says which.
    pub personal_data_days: Option<u32>,
    /// While the library's admins have closed its chat to new patrons:
    /// their notice, which the page and the widget show instead of the
    /// chat and the question form (both are refused, `409 closed`); `null`:
    /// open.
    pub closed_notice: Option<String>,
    /// Whether the page that asked (the request's `Origin`) may show the
    /// chat in a frame: `false` when the library's admins named the sites
    /// that may (`PUT /api/libraries/{slug}/embedding`) and this page's is
    /// not one of them — the browser would refuse the frame, so the widget
    /// opens the chat in a tab of its own instead. `true` without an
    /// `Origin`.
    pub framed_here: bool,
    /// How the widget's button looks, as the library's admins set it
    /// (`PUT /api/libraries/{slug}/widget`); the snippet's `data-`
    /// attributes come first where a page gives them.
    pub widget: refdesk_domain::org::WidgetLook,
}

impl LibraryStatusView {
    /// The view of `s`, with the service's line limit.
    pub fn of(s: refdesk_app::LibraryStatus, max_message_chars: usize) -> Self {
        LibraryStatusView {
            library: s.library,
            online: s.online,
            max_message_chars,
            personal_data_days: s.retention_days,
            closed_notice: s.closed_notice,
            framed_here: s.framed_here,
            widget: s.widget,
        }
    }
}

/// A question left through the offline form: its number, for the patron.
#[derive(Serialize, ToSchema)]
pub struct FormReceiptView {
    /// The question's number.
    pub question: QuestionId,
    /// The library's name.
    pub library: String,
}

impl From<refdesk_app::FormReceipt> for FormReceiptView {
    fn from(r: refdesk_app::FormReceipt) -> Self {
        FormReceiptView { question: r.question, library: r.library }
    }
}

/// What a page needs to know of the service.
#[derive(Serialize, ToSchema)]
pub struct ServiceView {
    /// The public URL (for the widget snippet), if one is set.
    pub public_url: Option<String>,
}

/// A sign-out done.
#[derive(Serialize, ToSchema)]
pub struct SignedOut {
    /// Always true.
    pub signed_out: bool,
}

/// Where the transcript will be e-mailed at the end.
#[derive(Serialize, ToSchema)]
pub struct TranscriptTo {
    /// The confirmed address; none when the request was cancelled.
    pub transcript_to: Option<String>,
}

/// A rating kept.
#[derive(Serialize, ToSchema)]
pub struct Rated {
    /// The rating, 1–5.
    #[schema(minimum = 1, maximum = 5)]
    pub rating: u8,
}

/// One's availability now.
#[derive(Serialize, ToSchema)]
pub struct AvailabilityView {
    /// on_duty, away or off_duty.
    pub availability: Availability,
}

/// A staff member created.
#[derive(Serialize, ToSchema)]
pub struct StaffCreated {
    /// Their id.
    pub id: StaffId,
}

/// A staff member changed.
#[derive(Serialize, ToSchema)]
pub struct StaffUpdated {
    /// Their id.
    pub updated: i64,
}

/// An IM conversation marked read.
#[derive(Serialize, ToSchema)]
pub struct ImRead {
    /// Read up to this sequence number.
    pub read: u64,
}

/// A script deleted.
#[derive(Serialize, ToSchema)]
pub struct Deleted {
    /// Its id.
    pub deleted: i64,
}

/// Whether a blocked patron may still send a library's offline form.
#[derive(Serialize, serde::Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BlockedPatrons {
    /// True: the form stays open to them.
    pub may_use_form: bool,
}
