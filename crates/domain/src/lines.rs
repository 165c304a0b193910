//! The lines refdesk itself writes into a chat, worded in one place (ready
//! for translation): who joined, left, took over or ended a chat, the code
//! set at its end, a chat handed on or referred, a librarian's desk that
//! lost its connection or is back. Who may read each one is
//! its [`Audience`], set here and enforced by [`crate::visibility`]. (The
//! question list's own chat lines — an answer, a note, "Question closed" —
//! are decided with their action in [`crate::actions`].)

use crate::chat::{Audience, Author, ConferenceMode, MessageKind, NewMessage, SystemEvent, CODE_SET_TEXT, ENDED_TEXT};

/// A system line.
fn system(body: String, audience: Audience, event: SystemEvent) -> NewMessage {
    NewMessage {
        author: Author::System,
        kind: MessageKind::System,
        audience,
        body,
        client_id: None,
        system: Some(event),
    }
}

/// A librarian accepted the chat.
pub fn accepted(librarian: &str) -> NewMessage {
    system(format!("{librarian} (librarian) has joined the chat"), Audience::Everyone, SystemEvent::Accepted)
}

/// The chat ended (R5), saying who ended it.
pub fn ended(by: &Author) -> NewMessage {
    let who = match by {
        Author::Patron { .. } => "the patron",
        Author::Staff { .. } => "the librarian",
        Author::System => "refdesk",
    };
    system(format!("{ENDED_TEXT} (ended by {who})"), Audience::Everyone, SystemEvent::Ended)
}

/// "Resolution code set" (R5): staff only, the code is the library's business.
pub fn code_set(label: &str, by: &str) -> NewMessage {
    system(format!("{CODE_SET_TEXT}: {label} (by {by})"), Audience::Staff, SystemEvent::CodeSet)
}

/// What refdesk tells the patron as it ends a chat for them (a chat that
/// waited too long, a blocked patron): an ordinary line everyone reads.
pub fn last_words(body: String) -> NewMessage {
    NewMessage {
        author: Author::System,
        kind: MessageKind::Message,
        audience: Audience::Everyone,
        body,
        client_id: None,
        system: None,
    }
}

/// What a patron blocked from a chat reads just before its end: the chat is
/// over, and why they will not get another soon (the warning said it may
/// come to this, `refdesk_app`'s `WARNING`). Not the reason the librarian
/// gave: that is the library's.
pub fn blocked() -> NewMessage {
    system(
        "The librarian has ended this chat, and this library cannot take another chat from you for a while.".into(),
        Audience::Everyone,
        SystemEvent::Blocked,
    )
}

/// A staff member enters a chat or changes mode (R3, B2). Joining is
/// announced to the patron, and so is leaving after a join; monitoring and
/// whispering are announced to staff only — the chatting librarian always
/// knows (B3). `before` is how they took part until now.
pub fn conference(name: &str, before: Option<ConferenceMode>, mode: ConferenceMode) -> NewMessage {
    match (before, mode) {
        (_, ConferenceMode::Join) => joined(name),
        // The patron saw them join: they are told when that ends.
        (Some(ConferenceMode::Join), _) => left(name),
        (_, ConferenceMode::Monitor) => {
            system(format!("{name} is monitoring this chat (read only)"), Audience::Staff, SystemEvent::Presence)
        }
        (_, ConferenceMode::Whisper) => system(
            format!("{name} is whispering in this chat (librarian notes only)"),
            Audience::Staff,
            SystemEvent::Presence,
        ),
    }
}

/// A conference member leaves; `before` is how they took part.
pub fn leave(name: &str, before: Option<ConferenceMode>) -> NewMessage {
    match before {
        Some(ConferenceMode::Join) => left(name),
        _ => system(format!("{name} is no longer watching this chat"), Audience::Staff, SystemEvent::Presence),
    }
}

fn joined(name: &str) -> NewMessage {
    system(format!("{name} (librarian) has joined the chat"), Audience::Everyone, SystemEvent::Presence)
}

fn left(name: &str) -> NewMessage {
    system(format!("{name} (librarian) has left the chat"), Audience::Everyone, SystemEvent::Presence)
}

/// Where a chat is handed on to, as the line about it says.
pub enum HandedTo<'a> {
    /// A colleague takes it over from a conference (B2).
    TakenOver,
    /// The chatting librarian gives it to a colleague.
    Colleague(&'a str),
    /// Back into a library's queue.
    Library(&'a str),
    /// Into the cooperative's queue, offered to every library at once.
    Cooperative,
    /// Back into its library's queue because its librarian can no longer
    /// answer (signed off the desk, or their account disabled).
    Away,
}

/// The line a change of hands writes; `by` is who handed it on (or, for a
/// take-over, who took it).
pub fn handed_over(by: &str, to: HandedTo<'_>) -> NewMessage {
    let body = match to {
        HandedTo::TakenOver => format!("{by} (librarian) has taken over the chat"),
        HandedTo::Colleague(name) => format!("{by} (librarian) has transferred the chat to {name} (librarian)"),
        HandedTo::Library(name) => {
            format!("{by} (librarian) has transferred this chat to {name}; the next free librarian there will take it")
        }
        HandedTo::Cooperative => format!(
            "{by} (librarian) has transferred this chat to the cooperative's librarians; the next one free will take it"
        ),
        HandedTo::Away => {
            format!("{by} (librarian) is no longer at the desk; this chat is back in line for the next free librarian")
        }
    };
    system(body, Audience::Everyone, SystemEvent::Transferred)
}

/// Why a chat ends when its librarian leaves the desk while no page of the
/// patron's is open on it: the patron reads it if they come back.
pub fn left_while_patron_away(by: &str) -> String {
    format!(
        "{by} (librarian) has left the desk while this chat's page was closed, so the chat has ended; start a new chat if you still need help"
    )
}

/// The chatting librarian's desk has lost its connection (no node has
/// seen it for a minute): the patron is told, and how long until the chat
/// goes back in line if the librarian is not back (`minutes`, at least 1).
pub fn librarian_gone(name: &str, minutes: i64) -> NewMessage {
    let within = if minutes <= 1 { "a minute".to_owned() } else { format!("{minutes} minutes") };
    system(
        format!(
            "{name} (librarian) seems to have lost their connection; if they are not back within {within}, this chat goes back in line for the next free librarian"
        ),
        Audience::Everyone,
        SystemEvent::Away,
    )
}

/// The librarian whose desk had lost its connection is back.
pub fn librarian_back(name: &str) -> NewMessage {
    system(format!("{name} (librarian) is back"), Audience::Everyone, SystemEvent::Back)
}

/// What the patron asked of the transcript, for staff: what the desk shows
/// of it (where it goes) is read again when this line comes. The address
/// is not in the line (it is the patron's, erased with their data).
pub fn transcript(asked: TranscriptAsk) -> NewMessage {
    let body = match asked {
        TranscriptAsk::Asked => "The patron asked for the transcript by e-mail at the end of the chat",
        TranscriptAsk::Readdressed => "The patron gave another address for the transcript",
        TranscriptAsk::Cancelled => "The patron no longer wants the transcript by e-mail",
        TranscriptAsk::AfterEnd { sent: true } => "The patron asked for the transcript after the end: it is e-mailed",
        TranscriptAsk::AfterEnd { sent: false } => {
            "The patron asked for the transcript after the end: not sent (that address has had its transcripts for today)"
        }
    };
    system(body.to_owned(), Audience::Staff, SystemEvent::Transcript)
}

/// What a patron's transcript request changed ([`transcript`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TranscriptAsk {
    /// Asked for, none asked before.
    Asked,
    /// Asked again, to another address.
    Readdressed,
    /// No longer wanted.
    Cancelled,
    /// Asked once the chat had ended: sent at once, unless the address had
    /// its transcripts for the day.
    AfterEnd {
        /// Whether it was queued.
        sent: bool,
    },
}

/// A question referred to another library (`to`, its name) from the
/// question list while its chat goes on: staff only.
pub fn referred(by: &str, to: &str) -> NewMessage {
    NewMessage {
        author: Author::System,
        kind: MessageKind::System,
        audience: Audience::Staff,
        body: format!("Question referred to {to} by {by}"),
        client_id: None,
        system: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_joining_and_leaving_after_a_join_reach_the_patron() {
        use ConferenceMode::*;
        assert_eq!(conference("Ann", None, Join).audience, Audience::Everyone);
        assert_eq!(conference("Ann", Some(Join), Monitor).audience, Audience::Everyone);
        assert_eq!(conference("Ann", None, Monitor).audience, Audience::Staff);
        assert_eq!(conference("Ann", Some(Monitor), Whisper).audience, Audience::Staff);
        assert_eq!(leave("Ann", Some(Join)).audience, Audience::Everyone);
        assert_eq!(leave("Ann", Some(Whisper)).audience, Audience::Staff);
        assert_eq!(code_set("Answered", "Ann").audience, Audience::Staff);
        use TranscriptAsk::*;
        for ask in [Asked, Readdressed, Cancelled, AfterEnd { sent: true }, AfterEnd { sent: false }] {
            assert_eq!(transcript(ask).audience, Audience::Staff);
        }
    }

    #[test]
    fn lines_both_sides_read_speak_of_this_chat_not_of_yours() {
        let both = [
            handed_over("Ann", HandedTo::Library("Lakeside")),
            handed_over("Ann", HandedTo::Cooperative),
            handed_over("Ann", HandedTo::Away),
            handed_over("Ann", HandedTo::Colleague("Ben")),
            librarian_gone("Ann", 3),
            librarian_back("Ann"),
        ];
        for line in both {
            assert_eq!(line.audience, Audience::Everyone);
            let lower = line.body.to_lowercase();
            let mut words = lower.split(|c: char| !c.is_alphanumeric());
            assert!(!words.any(|w| w == "your" || w == "you"), "{}", line.body);
        }
    }

    #[test]
    fn a_librarians_lost_connection_is_told_to_everyone_with_the_time_left() {
        let one = librarian_gone("Ann", 1);
        assert_eq!(one.audience, Audience::Everyone);
        assert!(one.body.contains("not back within a minute,"), "{}", one.body);
        assert!(librarian_gone("Ann", 4).body.contains("within 4 minutes,"));
        assert_eq!(librarian_back("Ann").body, "Ann (librarian) is back");
        assert_eq!(librarian_back("Ann").audience, Audience::Everyone);
        assert_eq!((one.system, librarian_back("Ann").system), (Some(SystemEvent::Away), Some(SystemEvent::Back)));
    }
}
