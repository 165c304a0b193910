//! The question list's actions and what they do to a question and to its
//! chat when the chat is still live (R4, B1). Pure: the app applies the
//! resulting state and lines in one transaction.

use crate::chat::{Audience, MessageKind};
use crate::ids::{LibraryId, StaffId};
use crate::question::{QuestionState, Status};
use crate::DomainError;
use serde::{Deserialize, Serialize};

/// The question-list views (DESIGN §4).
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum View {
    /// New questions assigned to me.
    MyNew,
    /// New, pending or answered questions assigned to me.
    MyActive,
    /// Every new question.
    New,
    /// New or pending questions with no assignee.
    Unassigned,
    /// New, pending and answered.
    Active,
    /// Answered.
    Answered,
    /// Closed.
    Closed,
    /// Pending.
    Pending,
    /// Referred to another library.
    Referred,
    /// Flagged for follow-up by the patron's library.
    FollowUp,
    /// Everything in scope.
    All,
    /// Questions whose chat is still live (B1).
    Live,
}

impl View {
    /// Every view, in menu order.
    pub const ALL: [View; 12] = [
        View::MyNew,
        View::MyActive,
        View::New,
        View::Unassigned,
        View::Active,
        View::Answered,
        View::Closed,
        View::Pending,
        View::Referred,
        View::FollowUp,
        View::All,
        View::Live,
    ];

    /// The name used in the API.
    pub fn as_str(self) -> &'static str {
        match self {
            View::MyNew => "my_new",
            View::MyActive => "my_active",
            View::New => "new",
            View::Unassigned => "unassigned",
            View::Active => "active",
            View::Answered => "answered",
            View::Closed => "closed",
            View::Pending => "pending",
            View::Referred => "referred",
            View::FollowUp => "follow_up",
            View::All => "all",
            View::Live => "live",
        }
    }

    /// Parses [`View::as_str`]'s names.
    pub fn parse(s: &str) -> Option<View> {
        View::ALL.into_iter().find(|v| v.as_str() == s)
    }

    /// Whether a question belongs in this view, for `me`.
    pub fn contains(self, q: &QuestionState, live: bool, me: StaffId) -> bool {
        let active = matches!(q.status, Status::New | Status::Pending | Status::Answered);
        match self {
            View::MyNew => q.assignee == Some(me) && q.status == Status::New,
            View::MyActive => q.assignee == Some(me) && active,
            View::New => q.status == Status::New,
            View::Unassigned => q.assignee.is_none() && matches!(q.status, Status::New | Status::Pending),
            View::Active => active,
            View::Answered => q.status == Status::Answered,
            View::Closed => q.status == Status::Closed,
            View::Pending => q.status == Status::Pending,
            View::Referred => q.referred_to.is_some(),
            // Flagged and still to do: a to-do list that empties as the
            // work is done (an answer e-mailed, the question closed).
            View::FollowUp => q.follow_up && matches!(q.status, Status::New | Status::Pending),
            View::All => true,
            View::Live => live,
        }
    }
}

/// B1: acting on a live question needs an explicit confirmation, because
/// the patron may see the result; a confirmation given for a chat that has
/// ended meanwhile is stale and refused, so that nobody acts on a belief
/// that is no longer true.
pub fn check_confirmation(live: bool, confirmed: bool) -> Result<(), DomainError> {
    match (live, confirmed) {
        (true, false) => Err(DomainError::Conflict(
            "this question's chat is live: what you do may appear in the chat and the patron may see it; confirm to go on"
                .into(),
        )),
        (false, true) => Err(DomainError::Conflict(
            "stale confirmation: the chat has ended since you confirmed; nothing was done, look again".into(),
        )),
        _ => Ok(()),
    }
}

/// A line an action writes into the live chat.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChatLine {
    /// What it is.
    pub kind: MessageKind,
    /// Who sees it.
    pub audience: Audience,
    /// Its text.
    pub body: String,
}

/// R4, send answer: the question becomes answered; in a live chat the answer
/// appears for the patron and librarians alike.
pub fn answer(before: &QuestionState, body: &str, live: bool) -> (QuestionState, Option<ChatLine>) {
    let after = QuestionState { status: Status::Answered, ..before.clone() };
    let line =
        live.then(|| ChatLine { kind: MessageKind::Answer, audience: Audience::Everyone, body: body.to_owned() });
    (after, line)
}

/// R4, add note: in a live chat it appears as a librarian note — staff only.
pub fn note(body: &str, live: bool) -> Option<ChatLine> {
    live.then(|| ChatLine { kind: MessageKind::Note, audience: Audience::Staff, body: body.to_owned() })
}

/// R4, send message to librarian: a librarian note addressed to the
/// chatting librarian. Only meaningful while the chat is live.
pub fn message_to_librarian(body: &str, librarian: &str, live: bool) -> Result<ChatLine, DomainError> {
    if !live {
        return Err(DomainError::Conflict(
            "the chat is no longer live: add a note to the question, or message the librarian directly".into(),
        ));
    }
    Ok(ChatLine { kind: MessageKind::Note, audience: Audience::Staff, body: format!("To {librarian}: {body}") })
}

/// R4, close: the status becomes closed; in a live chat a staff-only line
/// "Question closed by X" appears and the chat goes on. A resolution code
/// set afterwards decides the status again (see `apply_code`).
/// `chat_open` says whether the chat itself is still going (it may have
/// ended while its code is not yet set).
pub fn close(
    before: &QuestionState,
    by: &str,
    live: bool,
    chat_open: bool,
) -> Result<(QuestionState, Option<ChatLine>), DomainError> {
    if before.status == Status::Closed {
        return Err(DomainError::Conflict("the question is already closed".into()));
    }
    let after = QuestionState { status: Status::Closed, ..before.clone() };
    let tail = if chat_open { "; the chat goes on" } else { "" };
    let line = live.then(|| ChatLine {
        kind: MessageKind::System,
        audience: Audience::Staff,
        body: format!("Question closed by {by} from the question list{tail}"),
    });
    Ok((after, line))
}

/// Reopen: a closed question becomes new again. While its chat is live, a
/// staff-only line says so, as closing it did: the chatting librarian, told
/// it was closed, is told it is open again.
pub fn reopen(before: &QuestionState, by: &str, live: bool) -> Result<(QuestionState, Option<ChatLine>), DomainError> {
    if before.status != Status::Closed {
        return Err(DomainError::Conflict("only a closed question can be reopened".into()));
    }
    let line = live.then(|| ChatLine {
        kind: MessageKind::System,
        audience: Audience::Staff,
        body: format!("Question reopened by {by} from the question list"),
    });
    Ok((QuestionState { status: Status::New, ..before.clone() }, line))
}

/// Assign (or claim, or unassign with `None`).
pub fn assign(before: &QuestionState, to: Option<StaffId>) -> Result<QuestionState, DomainError> {
    if before.assignee == to {
        let why = if to.is_some() {
            "the question is already assigned to them"
        } else {
            "the question is assigned to nobody already"
        };
        return Err(DomainError::Conflict(why.into()));
    }
    Ok(QuestionState { assignee: to, ..before.clone() })
}

/// Refer to another library: pending, marked referred, no assignee (the
/// receiving library picks it up).
pub fn refer(before: &QuestionState, owner: LibraryId, to: LibraryId) -> Result<QuestionState, DomainError> {
    if to == owner {
        return Err(DomainError::invalid("library", "a question cannot be referred to its own library"));
    }
    if before.referred_to == Some(to) {
        return Err(DomainError::Conflict("the question is already referred to that library".into()));
    }
    Ok(QuestionState { status: Status::Pending, referred_to: Some(to), assignee: None, ..before.clone() })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::question::{apply_code, default_codes, question_on_accept};

    const ANN: StaffId = StaffId(1);

    #[test]
    fn b1_a_live_question_needs_confirmation_and_a_stale_one_is_refused() {
        assert!(check_confirmation(true, false).is_err());
        assert!(check_confirmation(true, true).is_ok());
        assert!(check_confirmation(false, false).is_ok());
        let stale = check_confirmation(false, true).unwrap_err();
        assert!(stale.to_string().contains("stale"));
    }

    #[test]
    fn r4_an_answer_on_a_live_chat_is_shown_to_everyone() {
        let (after, line) = answer(&question_on_accept(), "Try the map room.", true);
        assert_eq!(after.status, Status::Answered);
        let line = line.unwrap();
        assert_eq!((line.kind, line.audience), (MessageKind::Answer, Audience::Everyone));
        assert!(answer(&question_on_accept(), "x", false).1.is_none(), "no chat line when not live");
    }

    #[test]
    fn r4_notes_and_messages_to_the_librarian_are_staff_only() {
        let n = note("n", true).unwrap();
        assert_eq!((n.kind, n.audience), (MessageKind::Note, Audience::Staff));
        let m = message_to_librarian("look at the catalogue", "Ann Archer", true).unwrap();
        assert_eq!((m.kind, m.audience), (MessageKind::Note, Audience::Staff));
        assert_eq!(m.body, "To Ann Archer: look at the catalogue");
        assert!(message_to_librarian("x", "Ann", false).is_err());
    }

    #[test]
    fn r4_close_while_live_keeps_chat_open_and_a_later_code_reopens() {
        let (closed, line) = close(&question_on_accept(), "Carla", true, true).unwrap();
        assert_eq!(closed.status, Status::Closed);
        let line = line.unwrap();
        assert_eq!((line.kind, line.audience), (MessageKind::System, Audience::Staff));
        assert!(line.body.contains("Carla") && line.body.contains("goes on"));
        let code = default_codes().into_iter().find(|c| c.key == "follow_up_by_me").unwrap();
        let coded = apply_code(&closed, &code, Some(ANN), None);
        assert_eq!((coded.status, coded.assignee), (Status::New, Some(ANN)));
    }

    #[test]
    fn r4_closing_twice_is_a_conflict() {
        let (closed, _) = close(&question_on_accept(), "C", false, false).unwrap();
        assert!(close(&closed, "C", false, false).is_err());
    }

    #[test]
    fn reopen_assign_and_refer() {
        let (closed, _) = close(&question_on_accept(), "C", false, false).unwrap();
        assert_eq!(
            reopen(&closed, "C", false).unwrap(),
            (QuestionState { status: Status::New, ..closed.clone() }, None)
        );
        let (_, line) = reopen(&closed, "C", true).unwrap();
        let line = line.expect("a line while live");
        assert_eq!(
            (line.audience, line.body.as_str()),
            (Audience::Staff, "Question reopened by C from the question list")
        );
        assert!(reopen(&question_on_accept(), "C", false).is_err());
        let mine = assign(&question_on_accept(), Some(ANN)).unwrap();
        assert!(assign(&mine, Some(ANN)).is_err());
        let referred = refer(&mine, LibraryId(1), LibraryId(2)).unwrap();
        assert_eq!(
            (referred.status, referred.assignee, referred.referred_to),
            (Status::Pending, None, Some(LibraryId(2)))
        );
        assert!(refer(&mine, LibraryId(1), LibraryId(1)).is_err());
    }

    #[test]
    fn views_select_what_their_names_say() {
        let q = |status, assignee| QuestionState { status, assignee, ..question_on_accept() };
        assert!(View::MyNew.contains(&q(Status::New, Some(ANN)), false, ANN));
        assert!(!View::MyNew.contains(&q(Status::New, Some(StaffId(2))), false, ANN));
        assert!(View::Unassigned.contains(&q(Status::Pending, None), false, ANN));
        assert!(!View::Unassigned.contains(&q(Status::Answered, None), false, ANN));
        assert!(View::Active.contains(&q(Status::Answered, None), false, ANN));
        assert!(!View::Active.contains(&q(Status::Closed, None), false, ANN));
        assert!(View::Live.contains(&q(Status::Closed, None), true, ANN));
        for v in View::ALL {
            assert_eq!(View::parse(v.as_str()), Some(v));
        }
    }
}
