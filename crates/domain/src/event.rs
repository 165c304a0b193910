//! Committed events: what the store hands to the bus after a commit, and
//! what each connection filters through [`crate::visibility::sees`].

use crate::chat::{Audience, Message, SessionContext, SessionState, Watcher};
use crate::ids::{SessionId, StaffId};
use crate::org::Placement;
use crate::Millis;
use serde::{Deserialize, Serialize};

/// A waiting chat as the queue shows it to staff.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct QueueEntry {
    /// The session.
    pub session: SessionId,
    /// The patron's library.
    pub placement: Placement,
    /// The library's display name.
    pub library_name: String,
    /// The patron's name, or "Patron".
    pub patron_name: String,
    /// Their question, as first typed: its first 300 characters, and "…"
    /// when there is more ([`question_preview`]).
    pub question: String,
    /// When they started waiting in this queue.
    #[cfg_attr(feature = "openapi", schema(value_type = i64))]
    pub since: Millis,
    /// The library whose queue it waits in (the patron's, or the one it was
    /// transferred to).
    pub queue: Placement,
    /// Offered to the whole cooperative at once (transferred to its queue).
    pub coop_now: bool,
    /// The session's version (see `SessionContext::version`): a queue event
    /// older than one already seen for the session is dropped.
    #[serde(default)]
    pub version: u64,
    /// When the patron started the chat: before `since` when it was sent
    /// back to a queue (the desk says so, and when it was first asked).
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = i64))]
    pub asked_at: Millis,
    /// Since when the patron has had no page of the chat open (the socket
    /// of their last page closed; they may come back): `None` while one is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<i64>))]
    pub away_since: Option<Millis>,
}

/// How much of a question the queue shows ([`question_preview`]).
pub const QUESTION_PREVIEW_CHARS: usize = 300;

/// A question as the queue shows it: its first [`QUESTION_PREVIEW_CHARS`]
/// characters, and "…" when there is more (the whole question is in the
/// chat, once resumed). A queue of long questions stays small enough for
/// every desk to be sent it.
pub fn question_preview(question: &str) -> String {
    match question.char_indices().nth(QUESTION_PREVIEW_CHARS) {
        Some((cut, _)) => format!("{}…", &question[..cut]),
        None => question.to_owned(),
    }
}

/// A live session as the chat monitor lists it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SessionSummary {
    /// Place, librarian, members.
    pub ctx: SessionContext,
    /// Its state.
    pub state: SessionState,
    /// The patron's library's name.
    pub library_name: String,
    /// The patron's name, or "Patron".
    pub patron_name: String,
    /// The chatting librarian's name.
    pub librarian_name: Option<String>,
    /// When the patron started it.
    #[cfg_attr(feature = "openapi", schema(value_type = i64))]
    pub created_at: Millis,
    /// When it was accepted (duration counts from here; waiting time before).
    #[cfg_attr(feature = "openapi", schema(value_type = Option<i64>))]
    pub accepted_at: Option<Millis>,
    /// When its last message was written.
    #[cfg_attr(feature = "openapi", schema(value_type = i64))]
    pub last_message_at: Millis,
    /// The library whose queue it waits (or last waited) in.
    pub queue: Placement,
    /// Since when it waits there.
    #[cfg_attr(feature = "openapi", schema(value_type = i64))]
    pub queued_at: Millis,
    /// Whether its question has a resolution code (R5: an ended chat with
    /// one is no longer live, and there is nothing left to do in it).
    #[serde(default)]
    pub code_set: bool,
}

/// A staff-to-staff direct message.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ImMessage {
    /// Sequence number within the conversation of the two, from 1.
    pub seq: u64,
    /// Sender.
    pub from: StaffId,
    /// Sender's display name.
    pub from_name: String,
    /// Recipient.
    pub to: StaffId,
    /// Text.
    pub body: String,
    /// The sender's client message id (idempotent re-sends).
    pub client_id: Option<String>,
    /// Server time of the commit.
    #[cfg_attr(feature = "openapi", schema(value_type = i64))]
    pub at: Millis,
}

/// A staff member's availability.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Availability {
    /// On duty: offered waiting patrons.
    OnDuty,
    /// Signed in, not taking chats.
    Away,
    /// Off duty.
    OffDuty,
}

impl Availability {
    /// The name used in the API and the database.
    pub fn as_str(self) -> &'static str {
        match self {
            Availability::OnDuty => "on_duty",
            Availability::Away => "away",
            Availability::OffDuty => "off_duty",
        }
    }

    /// Parses [`Availability::as_str`]'s names.
    pub fn parse(s: &str) -> Option<Self> {
        [Self::OnDuty, Self::Away, Self::OffDuty].into_iter().find(|v| v.as_str() == s)
    }
}

/// One committed change that connected clients may need to hear about.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Event {
    /// A message was committed in a session.
    Message {
        /// The session, as of the commit.
        ctx: SessionContext,
        /// The message.
        message: Message,
    },
    /// A chat joined the queue.
    QueueAdded(QueueEntry),
    /// A waiting chat reached the roll-up delay: now offered to the whole
    /// cooperative. Nobody's place in line changes.
    QueueRolledUp(QueueEntry),
    /// Someone is typing (or stopped). Never stored; carried by the bus only.
    Typing {
        /// The session.
        ctx: SessionContext,
        /// Who may know: typing in the note composer is for staff only.
        audience: Audience,
        /// Who is typing, as shown.
        who: String,
        /// Who is typing, so that they are not told of it themselves. `None`
        /// only from a node that predates the field: shown to everyone.
        #[serde(default)]
        by: Option<crate::chat::Typist>,
        /// Started (true) or stopped (false).
        on: bool,
    },
    /// Who watches a live session without taking part changed (B3). Never
    /// stored: each node knows its own connections.
    Watchers {
        /// The session.
        ctx: SessionContext,
        /// Everyone watching it now.
        watchers: Vec<Watcher>,
    },
    /// A session's state, librarian or members changed (for the monitor).
    SessionChanged(SessionSummary),
    /// A direct message between two staff members.
    Im(ImMessage),
    /// A staff member read a conversation up to `seq`: their other desks
    /// stop counting it unread.
    ImRead {
        /// Who read it.
        staff: StaffId,
        /// The colleague it is with.
        peer: StaffId,
        /// Read up to this message.
        seq: u64,
    },
    /// A staff member's availability changed.
    Availability {
        /// Who.
        staff: StaffId,
        /// Their cooperative (only its staff hear of it).
        cooperative: crate::ids::CooperativeId,
        /// Now.
        availability: Availability,
    },
    /// A staff member's sign-ins were revoked (disabled, new password, new
    /// role): their open connections close.
    SignedOut {
        /// Who.
        staff: StaffId,
    },
    /// One sign-in ended (signed out): the connections opened with it close
    /// at once, on every node. Never stored.
    SignInEnded {
        /// The SHA-256 digest of the sign-in's token (as stored), never the token.
        login: String,
    },
    /// A question was referred to a library, or flagged for follow-up by
    /// its patron's library: that library's staff are told at their desks
    /// (issue 13). Never stored as such (the question's timeline is).
    Referred {
        /// The question.
        question: crate::ids::QuestionId,
        /// The library it was referred to (flagged: the patron's library).
        to: Placement,
        /// That library's name.
        library_name: String,
        /// The question as first asked.
        text: String,
        /// Who referred or flagged it.
        by: String,
        /// Their id: they are not told of what they did.
        #[serde(default)]
        by_id: Option<crate::ids::StaffId>,
        /// Flagged for follow-up by the patron's library (a code), not
        /// referred.
        #[serde(default)]
        follow_up: bool,
    },
    /// This node may have missed events (its link to the other nodes was
    /// down): every connection re-reads what it follows from the store.
    /// Never stored, never sent between nodes.
    Resync,
    /// The personal data of these ended chats was erased (on request or by
    /// the retention period): a page that shows one drops what it shows.
    /// Never stored (the erasure is).
    Erased {
        /// The chats.
        sessions: Vec<SessionId>,
    },
    /// A waiting chat's patron closed their last page of it, or opened
    /// one again. The patrons behind it move one place forward, or back: a
    /// place in line counts the chats ahead whose patron is there.
    PatronAway {
        /// The session.
        session: SessionId,
        /// The library whose queue it waits in.
        queue: Placement,
        /// Since when no page is open; `None`: one is again.
        since: Option<Millis>,
        /// The chat's place in its queue (since when it waits there); `None`
        /// from a node of a release before it was sent (then the patrons
        /// behind it are not told, and their place is a little off until
        /// they next rejoin a queue).
        #[serde(default)]
        waiting_since: Option<Millis>,
    },
    /// A chat left the queue (accepted, or the patron left).
    QueueRemoved {
        /// The session.
        session: SessionId,
        /// The library whose queue it waited in.
        placement: Placement,
        /// Since when it waited there (its place in that queue).
        since: Millis,
        /// The session's version after it left.
        #[serde(default)]
        version: u64,
        /// Whether its patron had no page open as it left (the patrons
        /// behind it did not count it ahead of them); `None` from a node of
        /// a release before it was sent (the patrons behind count again).
        #[serde(default)]
        away: Option<bool>,
    },
}
