//! Chat sessions and their messages (DESIGN §5, R5).

use crate::ids::{QuestionId, SessionId, StaffId};
use crate::org::Placement;
use crate::{DomainError, Millis};
use serde::{Deserialize, Serialize};

/// A chat session's state: waiting → active → ended. A waiting chat may also
/// end (the patron gave up) without ever being active.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum SessionState {
    /// In the queue; nobody has accepted it.
    Waiting,
    /// A librarian is chatting with the patron.
    Active,
    /// Over. Nothing more can be said in it.
    Ended,
}

impl SessionState {
    /// The name used in the API and the database.
    pub fn as_str(self) -> &'static str {
        match self {
            SessionState::Waiting => "waiting",
            SessionState::Active => "active",
            SessionState::Ended => "ended",
        }
    }

    /// Parses [`SessionState::as_str`]'s names.
    pub fn parse(s: &str) -> Option<Self> {
        [Self::Waiting, Self::Active, Self::Ended].into_iter().find(|v| v.as_str() == s)
    }

    /// Accepting: only a waiting chat can be accepted (I6 is this rule
    /// applied atomically by the store).
    pub fn accept(self) -> Result<SessionState, DomainError> {
        match self {
            SessionState::Waiting => Ok(SessionState::Active),
            SessionState::Active => Err(DomainError::Conflict("this chat was already accepted".into())),
            SessionState::Ended => Err(DomainError::Conflict("this chat has ended".into())),
        }
    }

    /// Ending: waiting or active chats end; ending twice is a conflict.
    pub fn end(self) -> Result<SessionState, DomainError> {
        match self {
            SessionState::Waiting | SessionState::Active => Ok(SessionState::Ended),
            SessionState::Ended => Err(DomainError::Conflict("this chat has already ended".into())),
        }
    }

    /// Whether messages may still be sent in it.
    pub fn accepts_messages(self) -> bool {
        self != SessionState::Ended
    }
}

/// What a patron may write to a chat (DESIGN §8: what one patron may make
/// the service hold is bounded).
#[derive(Clone, Copy, Debug)]
pub struct PatronLines {
    /// Lines after the question while no librarian has taken the chat.
    pub before_accept: u64,
    /// Characters of those lines, together.
    pub chars_before_accept: u64,
    /// The patron's lines (those they see: `Message::patron_seq`), past
    /// which they may add none. Lines for staff never count towards it,
    /// nor do they bring the patron to the staff's own limit
    /// ([`staff_may_add_a_line`]): where the chat fills for its patron would
    /// tell that they were written.
    pub max_lines: u64,
    /// Characters of the patron's lines after the question in the whole
    /// chat, together, past which the patron may add none.
    pub chars: u64,
}

/// A chat as a patron's next line finds it.
#[derive(Clone, Copy, Debug)]
pub struct SoFar {
    /// Whether a librarian has taken it.
    pub accepted: bool,
    /// The lines its patron sees (its last line's `patron_seq`): their
    /// limits count these alone, so that where they stop tells nothing of
    /// the lines for staff.
    pub lines: u64,
    /// Characters of the patron's lines after the question while nobody
    /// had taken it.
    pub chars: u64,
}

/// Whether a patron may add a line of `chars` characters to their chat.
/// Until a librarian takes it, at most `before_accept` lines after the
/// question, of `chars_before_accept` characters together; in any chat,
/// none once it holds `max_lines` lines they see, nor past `chars`
/// characters of the patron's lines together. So a chat holds at most
/// `max_lines` lines its patron sees and the staff's lines, which stop at
/// their own limit ([`staff_may_add_a_line`]).
pub fn patron_may_add_a_line(chat: SoFar, chars: u64, most: PatronLines) -> Result<(), DomainError> {
    let SoFar { accepted, lines: last_seq, chars: written } = chat;
    if !accepted && last_seq > most.before_accept {
        let before_accept = most.before_accept;
        return Err(DomainError::Limited {
            code: "wait_for_a_librarian",
            reason: format!(
                "you have added {before_accept} lines to your question; a librarian will read them and answer soon"
            ),
        });
    }
    if !accepted && written.saturating_add(chars) > most.chars_before_accept {
        return Err(DomainError::Limited {
            code: "wait_for_a_librarian",
            reason: "you have added as much to your question as a waiting chat may hold; a librarian will read it \
                     and answer soon"
                .into(),
        });
    }
    if last_seq >= most.max_lines || written.saturating_add(chars) > most.chars {
        return Err(DomainError::Limited {
            code: "chat_full",
            reason: "this chat is as long as a chat may be; please start a new one".into(),
        });
    }
    Ok(())
}

/// Whether staff may add a line to a chat that holds `last_seq` lines:
/// none once it holds `most` (`max_chat_lines` and a few past it, for the
/// last words the patron, who may add none, is owed).
pub fn staff_may_add_a_line(last_seq: u64, most: u64) -> Result<(), DomainError> {
    if last_seq >= most {
        return Err(DomainError::Limited {
            code: "chat_full",
            reason: "this chat is as long as a chat may be: end it, and the patron may start a new one".into(),
        });
    }
    Ok(())
}

/// R5: a session stays *live* until it has ended **and** its resolution code
/// has been set. Between the two, actions on its question still reach the
/// chatting librarian's wrap-up, so the question list must keep saying "live".
/// A question that never had a chat (the offline form: nobody ever
/// accepted it) is never live; nor one whose chat ended while nobody was
/// chatting (`chatting`: it had a chatting librarian when it ended) — sent
/// back to a queue, then left by its patron: no desk lists it, so no wrap-up
/// is coming (its library's staff code it from the question list).
pub fn is_live(chatted: bool, state: SessionState, code_set: bool, chatting: bool) -> bool {
    chatted && !(state == SessionState::Ended && (code_set || !chatting))
}

/// What a message is.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum MessageKind {
    /// An ordinary chat line.
    Message,
    /// A librarian note: staff only, always.
    Note,
    /// An answer sent from the question list.
    Answer,
    /// A line written by refdesk itself ("Chat session has ended").
    System,
}

impl MessageKind {
    /// The name used in the API and the database.
    pub fn as_str(self) -> &'static str {
        match self {
            MessageKind::Message => "message",
            MessageKind::Note => "note",
            MessageKind::Answer => "answer",
            MessageKind::System => "system",
        }
    }

    /// Parses [`MessageKind::as_str`]'s names.
    pub fn parse(s: &str) -> Option<Self> {
        [Self::Message, Self::Note, Self::Answer, Self::System].into_iter().find(|v| v.as_str() == s)
    }

    /// The audience a message of this kind gets when written by a person.
    /// A note is for staff, whatever the client asked for: the audience is
    /// never taken from the client.
    pub fn audience(self) -> Audience {
        match self {
            MessageKind::Note => Audience::Staff,
            MessageKind::Message | MessageKind::Answer | MessageKind::System => Audience::Everyone,
        }
    }
}

/// Who may see a message.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Audience {
    /// The patron and staff.
    Everyone,
    /// Staff only — never the patron (I1, B4).
    Staff,
}

impl Audience {
    /// The name used in the API and the database.
    pub fn as_str(self) -> &'static str {
        match self {
            Audience::Everyone => "everyone",
            Audience::Staff => "staff",
        }
    }

    /// Parses [`Audience::as_str`]'s names.
    pub fn parse(s: &str) -> Option<Self> {
        [Self::Everyone, Self::Staff].into_iter().find(|v| v.as_str() == s)
    }
}

/// Who wrote a message.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Author {
    /// The patron, under the name they gave (or "Patron").
    Patron {
        /// Display name.
        name: String,
    },
    /// A staff member.
    Staff {
        /// Their id.
        id: StaffId,
        /// Their display name.
        name: String,
    },
    /// refdesk itself.
    System,
}

impl Author {
    /// A stable key for the sender. Client message ids are unique per sender
    /// within a session (I4), so two senders may both use "1".
    pub fn sender_key(&self) -> String {
        match self {
            Author::Patron { .. } => "patron".into(),
            Author::Staff { id, .. } => format!("staff:{id}"),
            Author::System => "system".into(),
        }
    }
}

/// Who is typing in a session: nobody is told that they themselves are
/// typing (their own typing would come back to them as "… is typing").
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Typist {
    /// The session's patron.
    Patron,
    /// A staff member.
    Staff(StaffId),
}

/// How a conferencing staff member takes part in someone else's chat (B2).
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum ConferenceMode {
    /// Silent and read only.
    Monitor,
    /// Librarian notes only: the patron never learns they are there.
    Whisper,
    /// Announced to the patron; may send messages and notes.
    Join,
}

impl ConferenceMode {
    /// The name used in the API and the database.
    pub fn as_str(self) -> &'static str {
        match self {
            ConferenceMode::Monitor => "monitor",
            ConferenceMode::Whisper => "whisper",
            ConferenceMode::Join => "join",
        }
    }

    /// Parses [`ConferenceMode::as_str`]'s names.
    pub fn parse(s: &str) -> Option<Self> {
        [Self::Monitor, Self::Whisper, Self::Join].into_iter().find(|v| v.as_str() == s)
    }
}

/// A staff member present in a session besides the chatting librarian (B3).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Member {
    /// Who.
    pub staff: StaffId,
    /// Their display name.
    pub name: String,
    /// How they take part.
    pub mode: ConferenceMode,
}

/// A staff member watching a live chat without taking part in it (from the
/// chat monitor or the question list). The chatting librarian always sees
/// them (B3). Or, marked `patron`, the patron's own page open on the chat
/// (no one's id or name): carried with the watchers from node to node, so
/// that staff can tell whether the patron is still there.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Watcher {
    /// Who.
    pub staff: StaffId,
    /// Their display name.
    pub name: String,
    /// The patron's page, not a staff member (never listed as a watcher:
    /// staff are told `patron_here` instead).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub patron: bool,
}

impl Watcher {
    /// A staff member watching.
    pub fn staff(id: StaffId, name: &str) -> Self {
        Watcher { staff: id, name: name.to_owned(), patron: false }
    }

    /// The patron's page, open on their chat.
    pub fn patron() -> Self {
        Watcher { staff: StaffId(0), name: String::new(), patron: true }
    }
}

/// What a system line records, so that clients can update their state from
/// the ordered message stream alone.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum SystemEvent {
    /// A librarian accepted the chat.
    Accepted,
    /// "Chat session has ended" (R5).
    Ended,
    /// "Resolution code set" (R5).
    CodeSet,
    /// Someone joined, changed mode, took over or left (B2, B3).
    Presence,
    /// The chat was transferred (to a colleague or back to a queue).
    Transferred,
    /// Its patron was blocked: the line just before the end says so.
    Blocked,
    /// The patron asked for the transcript by e-mail, gave it another
    /// address, or no longer wants it (staff only: the desk shows it).
    Transcript,
    /// The chatting librarian's desk seems to have lost its connection: the
    /// chat goes back in line if they are not back in time.
    Away,
    /// That librarian is back.
    Back,
}

impl SystemEvent {
    /// The name used in the API and the database.
    pub fn as_str(self) -> &'static str {
        match self {
            SystemEvent::Accepted => "accepted",
            SystemEvent::Ended => "ended",
            SystemEvent::CodeSet => "code_set",
            SystemEvent::Presence => "presence",
            SystemEvent::Transferred => "transferred",
            SystemEvent::Blocked => "blocked",
            SystemEvent::Transcript => "transcript",
            SystemEvent::Away => "away",
            SystemEvent::Back => "back",
        }
    }

    /// Parses [`SystemEvent::as_str`]'s names.
    pub fn parse(s: &str) -> Option<Self> {
        [
            Self::Accepted,
            Self::Ended,
            Self::CodeSet,
            Self::Presence,
            Self::Transferred,
            Self::Blocked,
            Self::Transcript,
            Self::Away,
            Self::Back,
        ]
        .into_iter()
        .find(|v| v.as_str() == s)
    }
}

/// [`Message::system`] as read from another node: a kind this build does
/// not know is none.
fn known_system<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<SystemEvent>, D::Error> {
    Ok(Option::<String>::deserialize(d)?.as_deref().and_then(SystemEvent::parse))
}

/// R5's text for the end of a chat.
pub const ENDED_TEXT: &str = "Chat session has ended";
/// R5's text for a resolution code being set.
pub const CODE_SET_TEXT: &str = "Resolution code set";

/// A line to append to a session: what a use case decides, before the
/// store gives it its sequence number and time.
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

/// One committed message of a session.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Message {
    /// The session it belongs to.
    pub session: SessionId,
    /// Per-session sequence number, strictly increasing from 1.
    pub seq: u64,
    /// The number the session's patron knows it by: how many of the
    /// session's lines for everyone there are up to it (a line for staff
    /// carries the last such line's). The patron's lines count 1, 2, 3…
    /// with no gap where staff lines fall between them
    /// ([`crate::visibility::as_seen`]).
    #[serde(default)]
    pub patron_seq: u64,
    /// What it is.
    pub kind: MessageKind,
    /// Who may see it.
    pub audience: Audience,
    /// Who wrote it.
    pub author: Author,
    /// Plain text; clients render it as text, never as HTML.
    pub body: String,
    /// The sender's client message id, for idempotent re-sends (I4).
    pub client_id: Option<String>,
    /// Server time of the commit.
    #[cfg_attr(feature = "openapi", schema(value_type = i64))]
    pub at: Millis,
    /// For system lines: what happened. A kind this build does not know
    /// (a newer node's, over the bus during an upgrade) reads as none: the
    /// line is shown as it is, and nothing else is dropped with it.
    #[serde(default, deserialize_with = "known_system")]
    pub system: Option<SystemEvent>,
}

/// What the visibility function needs to know about a session: its place,
/// and who is part of it. Carried with every event so that a connection can
/// decide without reading the database.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SessionContext {
    /// The session.
    pub id: SessionId,
    /// The patron's library.
    pub placement: Placement,
    /// The chatting librarian, once accepted.
    pub librarian: Option<StaffId>,
    /// Its question, once accepted (R1).
    pub question: Option<QuestionId>,
    /// The library its question was referred to, if any: its staff work the
    /// question, so they may read the chat.
    #[serde(default)]
    pub referred: Option<Placement>,
    /// Conference members present besides the chatting librarian (B3).
    #[serde(default)]
    pub members: Vec<Member>,
    /// Grows with every change of the session other than a new message.
    /// Events may arrive out of order (from several nodes, or a read made
    /// before a write and delivered after it): a context, queue entry or
    /// monitor row older than one already seen is not applied.
    #[serde(default)]
    pub version: u64,
}

impl SessionContext {
    /// The mode `staff` takes part in, if they are a conference member.
    pub fn member_mode(&self, staff: StaffId) -> Option<ConferenceMode> {
        self.members.iter().find(|m| m.staff == staff).map(|m| m.mode)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_of_a_system_kind_this_build_does_not_know_reads_as_a_line_without_one() {
        let line = |system: &str| {
            format!(
                r#"{{"session":7,"seq":3,"patron_seq":2,"kind":"system","audience":"everyone","author":{{"type":"system"}},"body":"b","client_id":null,"at":1,"system":{system}}}"#
            )
        };
        let read = |system: &str| serde_json::from_str::<Message>(&line(system)).map(|m| m.system);
        assert_eq!(read(r#""away""#).unwrap(), Some(SystemEvent::Away));
        assert_eq!(read(r#""a_kind_of_a_later_release""#).unwrap(), None);
        assert_eq!(read("null").unwrap(), None);
        assert!(read("7").is_err(), "not a name at all is still refused");
        let every = [SystemEvent::Accepted, SystemEvent::Back, SystemEvent::Away, SystemEvent::Transcript];
        for kind in every {
            assert_eq!(SystemEvent::parse(kind.as_str()), Some(kind));
            let json = serde_json::to_string(&kind).unwrap();
            assert_eq!(json, format!("\"{}\"", kind.as_str()), "the wire's name is the stored one");
        }
    }

    #[test]
    fn a_patron_adds_lines_up_to_the_limits_and_no_further() {
        let code = |r: Result<(), DomainError>| match r {
            Ok(()) => "ok",
            Err(DomainError::Limited { code, .. }) => code,
            Err(_) => "other",
        };
        let most = PatronLines { before_accept: 3, chars_before_accept: 100, max_lines: 10, chars: 5_000 };
        // A chat whose lines are all the patron's.
        let line = |accepted, lines, chars_so_far, chars, most| {
            code(patron_may_add_a_line(SoFar { accepted, lines, chars: chars_so_far }, chars, most))
        };
        // Waiting: the question (line 1) and 3 more, of 100 characters together.
        assert_eq!(line(false, 3, 0, 5, most), "ok");
        assert_eq!(line(false, 4, 0, 5, most), "wait_for_a_librarian");
        assert_eq!(line(false, 2, 60, 40, most), "ok");
        assert_eq!(line(false, 2, 60, 41, most), "wait_for_a_librarian");
        assert_eq!(line(false, 1, 0, 101, most), "wait_for_a_librarian", "one line past it");
        // Taken: up to the chat's limits, whatever was said while waiting.
        assert_eq!(line(true, 9, 100, 4000, most), "ok");
        assert_eq!(line(true, 10, 0, 5, most), "chat_full");
        assert_eq!(line(true, 5, 4_000, 1_000, most), "ok", "the last character that fits");
        assert_eq!(line(true, 5, 4_000, 1_001, most), "chat_full", "characters, whatever the lines");
        assert_eq!(line(false, 2, 0, 5_001, PatronLines { chars_before_accept: 10_000, ..most }), "chat_full");
        assert_eq!(line(false, 1, 0, 5, PatronLines { before_accept: 0, ..most }), "wait_for_a_librarian");
        // Lines for staff between theirs are not counted (where they stop
        // would tell how many there are): the patron's limits read only
        // what they see.
        let waiting = SoFar { accepted: false, lines: 3, chars: 0 };
        assert_eq!(code(patron_may_add_a_line(waiting, 5, most)), "ok", "three after the question");
        // Staff: a few past the patron's limit, then none either.
        assert!(staff_may_add_a_line(109, 110).is_ok());
        assert_eq!(code(staff_may_add_a_line(110, 110)), "chat_full");
    }

    #[test]
    fn i6_only_a_waiting_chat_can_be_accepted() {
        assert_eq!(SessionState::Waiting.accept(), Ok(SessionState::Active));
        assert!(SessionState::Active.accept().is_err());
        assert!(SessionState::Ended.accept().is_err());
    }

    #[test]
    fn r5_a_session_is_live_until_ended_and_coded() {
        assert!(is_live(true, SessionState::Active, true, true), "a code set mid-chat does not end it");
        assert!(is_live(true, SessionState::Ended, false, true), "ended but not yet coded");
        assert!(!is_live(true, SessionState::Ended, true, true));
        assert!(!is_live(false, SessionState::Ended, false, false), "an offline-form question never had a chat");
        assert!(is_live(true, SessionState::Waiting, false, false), "back in line after a transfer");
        assert!(!is_live(true, SessionState::Ended, false, false), "ended in line: no chatting librarian to code it");
    }

    #[test]
    fn r5_ending_twice_is_a_conflict() {
        assert_eq!(SessionState::Active.end(), Ok(SessionState::Ended));
        assert_eq!(SessionState::Waiting.end(), Ok(SessionState::Ended));
        assert!(SessionState::Ended.end().is_err());
        assert!(!SessionState::Ended.accepts_messages());
    }

    #[test]
    fn b4_a_note_is_always_for_staff() {
        assert_eq!(MessageKind::Note.audience(), Audience::Staff);
        assert_eq!(MessageKind::Message.audience(), Audience::Everyone);
    }

    #[test]
    fn names_round_trip() {
        for k in [MessageKind::Message, MessageKind::Note, MessageKind::Answer, MessageKind::System] {
            assert_eq!(MessageKind::parse(k.as_str()), Some(k));
        }
        for s in [SessionState::Waiting, SessionState::Active, SessionState::Ended] {
            assert_eq!(SessionState::parse(s.as_str()), Some(s));
        }
    }
}
