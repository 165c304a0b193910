//! The WebSocket protocol's frames (`docs/protocol.md`): what a client may
//! send ([`First`], then [`In`]) and what the server sends ([`OutFrame`]).
//!
//! Every frame is a JSON text frame tagged by `type`. Frames in are parsed
//! here into typed values — ids as ids, struct variants so that unknown
//! fields are refused (`bad_frame`) — and nothing else in the server reads
//! a client's JSON. What a frame carries that both the socket and the REST
//! API take (the kind of a message) is parsed by [`crate::input`], so both
//! refuse it alike. Frames out borrow what they send: a line or a queue
//! entry that already passed the visibility function in `Feed` is written
//! as it is, never rebuilt.

use refdesk_domain::chat::{Member, Message, Watcher};
use refdesk_domain::event::{Availability, ImMessage, QueueEntry, SessionSummary};
use refdesk_domain::ids::{QuestionId, SessionId, StaffId};
use refdesk_domain::Millis;
use serde::{Deserialize, Serialize};

/// The first frame a connection sends: `{"type": "auth"}`, with the chat's
/// token for a patron, bare for staff (the upgrade's cookie decides).
#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum First {
    /// Authenticate.
    Auth {
        /// A patron's chat token; never in the URL.
        token: Option<String>,
        /// A staff page that only reads along (a question's page): it does
        /// not count as the staff member's desk being connected.
        #[serde(default)]
        reader: bool,
    },
}

/// A frame from an authenticated client. Struct variants throughout, so
/// that unknown fields are refused in every one (`{"type": "ping", "x": 1}`
/// is `bad_frame`).
#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum In {
    /// Follow a session from after `after` (the last `seq` seen): the
    /// replay, then `synced`, then live events. A patron's own by default.
    Resume {
        /// Staff must name one.
        session: Option<SessionId>,
        /// The last sequence number seen (default 0: everything).
        after: Option<u64>,
    },
    /// Stop following a session.
    Leave {
        /// The session.
        session: SessionId,
    },
    /// Write a line; acknowledged with `ack` once committed (I2).
    Send {
        /// Staff must name one; a patron's own by default.
        session: Option<SessionId>,
        /// For idempotent re-sends (I4); echoed in `ack` and `error`.
        client_id: Option<String>,
        /// `message` (default) or `note`: parsed by [`crate::input::sendable_kind`].
        kind: Option<String>,
        /// Plain text.
        body: String,
    },
    /// Typing started or stopped in a followed session.
    Typing {
        /// Staff must name one; a patron's own by default.
        session: Option<SessionId>,
        /// Started (true) or stopped (false).
        on: bool,
        /// In the note composer (staff only hear of it).
        note: Option<bool>,
    },
    /// Follow the queue of chats one may serve (staff).
    Queue {},
    /// Follow the chat monitor (staff).
    Monitor {},
    /// A direct message to a colleague (staff).
    ImSend {
        /// The colleague.
        to: StaffId,
        /// Plain text.
        body: String,
        /// For idempotent re-sends; echoed in `im_ack` and `error`.
        client_id: Option<String>,
    },
    /// The conversation with a colleague after `after`, then `im_synced`.
    ImResume {
        /// The colleague.
        peer: StaffId,
        /// The last sequence number seen.
        after: Option<u64>,
    },
    /// Answered with `pong`.
    Ping {},
}

impl In {
    /// Whether the frame reads what its sender may see (a replay, the
    /// queue, the monitor, an IM conversation): a staff sign-in is checked
    /// again first.
    pub fn reads(&self) -> bool {
        matches!(self, In::Resume { .. } | In::Queue {} | In::Monitor {} | In::ImResume { .. })
    }
}

/// A frame to the client.
#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum OutFrame<'a> {
    /// The first frame after `auth`: who the server takes the client for.
    Hello {
        /// `patron` or `staff`.
        role: &'static str,
        /// A patron's chat.
        session: Option<SessionId>,
        /// The longest line the server takes.
        max_message_chars: usize,
        /// Which build of the pages the server serves (opaque): another
        /// than at a page's first `hello` means the page is out of date.
        release: &'static str,
    },
    /// A line of a followed session (the message's own fields).
    Event(&'a Message),
    /// The replay of `resume` is complete.
    Synced {
        /// The session.
        session: SessionId,
        /// The last sequence number sent.
        last: u64,
    },
    /// A line was committed.
    Ack {
        /// Its session.
        session: SessionId,
        /// The client's id for it.
        client_id: Option<&'a str>,
        /// Its sequence number.
        seq: u64,
        /// It had been stored before under that client id (I4).
        duplicate: bool,
    },
    /// Someone is typing (or stopped).
    Typing {
        /// The session.
        session: SessionId,
        /// Who, as shown.
        who: &'a str,
        /// `patron` or `staff`: who is typing, whatever name they gave.
        by: &'static str,
        /// Started or stopped.
        on: bool,
    },
    /// The queue, when following begins: the first
    /// [`super::connection::QUEUE_SHOWN`] waiting chats in line.
    Queue {
        /// The waiting chats one may serve, in line.
        waiting: &'a [QueueEntry],
        /// How many more wait beyond those (0: that is all).
        more: usize,
    },
    /// A chat joined the queue (the entry's own fields).
    QueueAdded(&'a QueueEntry),
    /// A chat left the queue.
    QueueRemoved {
        /// The session.
        session: SessionId,
    },
    /// A waiting chat's patron has had no page of it open since `since`
    /// (milliseconds; their last page's socket closed), or has one again
    /// (`null`). To staff who could be offered the chat.
    PatronAway {
        /// The session.
        session: SessionId,
        /// Since when, or `null`.
        since: Option<i64>,
    },
    /// A frame was refused; the connection stays up.
    Error {
        /// As the REST API's error codes.
        code: &'a str,
        /// A sentence for people.
        message: &'a str,
        /// The refused frame's client id, if it had one.
        client_id: Option<&'a str>,
    },
    /// The answer to `ping`.
    Pong,
    /// A waiting patron's place in line.
    Position {
        /// 1 for the next to be served.
        position: usize,
        /// Since when they wait.
        since: Millis,
    },
    /// Who is in a session besides the patron (B3).
    Presence {
        /// The session.
        session: SessionId,
        /// The chatting librarian.
        librarian: Option<StaffId>,
        /// Conference members.
        members: &'a [Member],
        /// Staff watching without taking part.
        watchers: &'a [Watcher],
        /// Whether the patron has the chat open (their page is connected).
        patron_here: bool,
    },
    /// The chat monitor, when following begins: the viewer's own chats,
    /// then the others, [`super::connection::MONITOR_SHOWN`] at most.
    Monitor {
        /// Live sessions in scope.
        sessions: &'a [SessionSummary],
        /// How many more are live in scope beyond those (0: that is all).
        more: usize,
    },
    /// A monitored session changed (the summary's own fields).
    MonitorUpdate(&'a SessionSummary),
    /// A monitored session had a line.
    MonitorTick {
        /// The session.
        session: SessionId,
        /// When.
        at: Millis,
    },
    /// A session left the monitor (no longer live, or out of scope).
    MonitorGone {
        /// The session.
        session: SessionId,
    },
    /// A followed chat's personal data was erased: the page drops what it
    /// shows of it (it is no longer followed).
    Erased {
        /// The session.
        session: SessionId,
    },
    /// A direct message (the message's own fields).
    Im(&'a ImMessage),
    /// A conversation was read up to `seq` at another of my desks.
    ImRead {
        /// The colleague.
        peer: StaffId,
        /// Read up to this message.
        seq: u64,
    },
    /// A direct message was committed.
    ImAck {
        /// The colleague.
        to: StaffId,
        /// The client's id for it.
        client_id: Option<&'a str>,
        /// Its sequence number in the conversation.
        seq: u64,
        /// It had been stored before under that client id.
        duplicate: bool,
    },
    /// The replay of `im_resume` is complete.
    ImSynced {
        /// The colleague.
        peer: StaffId,
        /// The last sequence number sent.
        last: u64,
    },
    /// A colleague's availability changed.
    Availability {
        /// Who.
        staff: StaffId,
        /// Now.
        availability: Availability,
    },
    /// This node's link to refdesk's other nodes went down (lines from
    /// patrons and colleagues on them come up to 5 s late), or is back.
    Link {
        /// Down now.
        down: bool,
    },
    /// A question was referred to one's library, or flagged for its
    /// follow-up.
    Referred {
        /// The question.
        question: QuestionId,
        /// The receiving library's name.
        library_name: &'a str,
        /// The question as first asked.
        text: &'a str,
        /// Who referred or flagged it.
        by: &'a str,
        /// Flagged for follow-up by the patron's library, not referred.
        follow_up: bool,
    },
}
