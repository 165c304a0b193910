//! Questions: statuses, resolution codes and the rules that decide them
//! (DESIGN §4, R1, R6, R7).

use crate::ids::{LibraryId, StaffId};
use serde::{Deserialize, Serialize};

/// A question's status (DESIGN §4).
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Needs work.
    New,
    /// Waiting for the patron or a partner.
    Pending,
    /// Answered.
    Answered,
    /// Closed.
    Closed,
}

impl Status {
    /// Every status.
    pub const ALL: [Status; 4] = [Status::New, Status::Pending, Status::Answered, Status::Closed];

    /// The name used in the API and the database.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::New => "new",
            Status::Pending => "pending",
            Status::Answered => "answered",
            Status::Closed => "closed",
        }
    }

    /// Parses [`Status::as_str`]'s names.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|v| v.as_str() == s)
    }
}

/// How a question came: a chat a librarian took, a chat no one took
/// (missed, or left by the patron while it waited), one still waiting, or
/// the offline form.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Channel {
    /// A chat a librarian accepted.
    Chat,
    /// A chat no one accepted that ended, not by its patron.
    Missed,
    /// A chat its patron left before anyone accepted it.
    Abandoned,
    /// A chat still waiting for a librarian.
    Waiting,
    /// The offline form.
    Form,
}

impl Channel {
    /// Every channel.
    pub const ALL: [Channel; 5] = [Channel::Chat, Channel::Missed, Channel::Abandoned, Channel::Waiting, Channel::Form];

    /// The name used in the API and the reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Channel::Chat => "chat",
            Channel::Missed => "missed",
            Channel::Abandoned => "abandoned",
            Channel::Waiting => "waiting",
            Channel::Form => "form",
        }
    }

    /// Parses [`Channel::as_str`]'s names.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|v| v.as_str() == s)
    }
}

/// Who a resolution code assigns the question to.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Assignment {
    /// The librarian who chatted.
    ChattingLibrarian,
    /// Nobody: the patron's library picks it up.
    Nobody,
    /// The library it was referred to.
    ReceivingLibrary,
    /// Not applicable ("—" in DESIGN §4): the question needs no owner, so
    /// any assignee is cleared.
    NotApplicable,
}

impl Assignment {
    /// The name used in the API and the database.
    pub fn as_str(self) -> &'static str {
        match self {
            Assignment::ChattingLibrarian => "chatting_librarian",
            Assignment::Nobody => "nobody",
            Assignment::ReceivingLibrary => "receiving_library",
            Assignment::NotApplicable => "not_applicable",
        }
    }

    /// Parses [`Assignment::as_str`]'s names.
    pub fn parse(s: &str) -> Option<Self> {
        [Self::ChattingLibrarian, Self::Nobody, Self::ReceivingLibrary, Self::NotApplicable]
            .into_iter()
            .find(|v| v.as_str() == s)
    }
}

/// A resolution code and what it decides (R6). The mapping is data: these
/// rows live in the database, per cooperative, editable by its admins.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ResolutionCode {
    /// Stable key, e.g. `follow_up_by_me`.
    pub key: String,
    /// What the librarian picks from.
    pub label: String,
    /// The status it gives the question.
    pub status: Status,
    /// Who it assigns the question to.
    pub assign: Assignment,
    /// Flags the question for follow-up by the patron's library.
    pub follow_up: bool,
    /// Marks the question as referred.
    pub referred: bool,
    /// Leaves the question out of statistics (practice chats).
    pub exclude_from_stats: bool,
    /// No longer offered: a question cannot be given it, but questions
    /// that have it keep it (and reports still name it). A code is retired
    /// rather than deleted, since questions and their history name it.
    #[serde(default)]
    pub retired: bool,
}

impl ResolutionCode {
    fn new(key: &str, label: &str, status: Status, assign: Assignment) -> Self {
        ResolutionCode {
            key: key.into(),
            label: label.into(),
            status,
            assign,
            follow_up: false,
            referred: false,
            exclude_from_stats: false,
            retired: false,
        }
    }
}

/// The code `key` of `codes`, to give a question whose code is now
/// `current`: a retired code only if the question has it already (a READ
/// scale set again with it), never newly.
pub fn pick_code<'a>(
    codes: &'a [ResolutionCode],
    key: &str,
    current: Option<&str>,
) -> Result<&'a ResolutionCode, crate::DomainError> {
    let code = codes
        .iter()
        .find(|c| c.key == key)
        .ok_or_else(|| crate::DomainError::invalid("code", format!("unknown resolution code {key:?}")))?;
    if code.retired && current != Some(key) {
        let why = format!("the resolution code {:?} is retired: pick another", code.label);
        return Err(crate::DomainError::invalid("code", why));
    }
    Ok(code)
}

/// The default resolution codes of DESIGN §4, in picker order.
pub fn default_codes() -> Vec<ResolutionCode> {
    use Assignment::*;
    vec![
        ResolutionCode::new("answered", "Answered", Status::Answered, ChattingLibrarian),
        ResolutionCode::new("follow_up_by_me", "Follow-up by me", Status::New, ChattingLibrarian),
        ResolutionCode {
            follow_up: true,
            ..ResolutionCode::new("follow_up_by_library", "Follow-up by patron's library", Status::New, Nobody)
        },
        ResolutionCode {
            referred: true,
            ..ResolutionCode::new("referred", "Referred to another library", Status::Pending, ReceivingLibrary)
        },
        ResolutionCode::new("lost_call", "Lost call (patron left, connection lost)", Status::Closed, NotApplicable),
        ResolutionCode::new("inappropriate", "Inappropriate / abusive", Status::Closed, NotApplicable),
        ResolutionCode {
            exclude_from_stats: true,
            ..ResolutionCode::new("practice", "Practice", Status::Answered, NotApplicable)
        },
    ]
}

/// The part of a question that rules change. Every change between two of
/// these is recorded in the timeline (R7).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct QuestionState {
    /// Its status.
    pub status: Status,
    /// The resolution code set, if any.
    pub code: Option<String>,
    /// Who owns it.
    pub assignee: Option<StaffId>,
    /// Flagged for follow-up by the patron's library.
    pub follow_up: bool,
    /// Referred to another library (the one named).
    pub referred_to: Option<LibraryId>,
    /// Left out of statistics.
    pub exclude_from_stats: bool,
    /// The effort it took on the READ scale (1–6), recorded with the code
    /// if the librarian chooses to.
    #[serde(default)]
    pub read_scale: Option<u8>,
}

/// R1: the question created the moment a librarian begins chatting. It
/// belongs to the *patron's* library (the caller stores it there, whoever's
/// library the librarian is from), is `answered` by default and has no code.
pub fn question_on_accept() -> QuestionState {
    QuestionState {
        status: Status::Answered,
        code: None,
        assignee: None,
        follow_up: false,
        referred_to: None,
        exclude_from_stats: false,
        read_scale: None,
    }
}

/// R6: what setting `code` does to a question. The code decides the status —
/// even over an earlier "close" from the question list (R4), which is how a
/// code can reopen a question. `chatting` is the librarian who chatted;
/// `receiving` the library a referral goes to.
pub fn apply_code(
    before: &QuestionState,
    code: &ResolutionCode,
    chatting: Option<StaffId>,
    receiving: Option<LibraryId>,
) -> QuestionState {
    let assignee = match code.assign {
        Assignment::ChattingLibrarian => chatting,
        Assignment::Nobody | Assignment::ReceivingLibrary | Assignment::NotApplicable => None,
    };
    // Work a code gives the chatting librarian where there is none who may
    // hold it (one of another library, who reads the question for a day
    // only): flagged for the patron's library instead, so that it is in
    // its Follow-up view, not left unowned in New for nobody to notice.
    let orphaned = code.assign == Assignment::ChattingLibrarian
        && assignee.is_none()
        && matches!(code.status, Status::New | Status::Pending);
    QuestionState {
        status: code.status,
        code: Some(code.key.clone()),
        assignee,
        follow_up: code.follow_up || orphaned,
        referred_to: if code.referred { receiving.or(before.referred_to) } else { None },
        exclude_from_stats: code.exclude_from_stats,
        read_scale: before.read_scale,
    }
}

/// One entry of a question's timeline (R7): what changed, from what, to what.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(tag = "change", rename_all = "snake_case")]
pub enum Change {
    /// The question was created (R1).
    Created {
        /// Its initial status.
        status: Status,
    },
    /// The status changed.
    Status {
        /// Before.
        from: Status,
        /// After.
        to: Status,
    },
    /// The resolution code was set or changed.
    Code {
        /// Before.
        from: Option<String>,
        /// After.
        to: Option<String>,
    },
    /// The owner changed.
    Assignee {
        /// Before.
        from: Option<StaffId>,
        /// After.
        to: Option<StaffId>,
    },
    /// The follow-up flag changed.
    FollowUp {
        /// After.
        to: bool,
    },
    /// The referral changed.
    Referred {
        /// After.
        to: Option<LibraryId>,
    },
    /// The statistics exclusion changed.
    ExcludeFromStats {
        /// After.
        to: bool,
    },
    /// The READ scale level changed.
    ReadScale {
        /// After.
        to: Option<u8>,
    },
    /// An answer was sent from the question list.
    Answer {
        /// Its text.
        body: String,
        /// The address it was e-mailed to, if any.
        emailed_to: Option<String>,
        /// Whether it also appeared in the live chat.
        in_chat: bool,
    },
    /// A librarian note was added.
    Note {
        /// Its text.
        body: String,
    },
    /// A staff member entered, changed mode in, or left the chat (B2).
    Conference {
        /// Who.
        staff: StaffId,
        /// Their name.
        name: String,
        /// Their mode now; `None` when they left.
        mode: Option<crate::chat::ConferenceMode>,
    },
    /// The chatting librarian changed: a take-over or a transfer.
    Librarian {
        /// Before.
        from: Option<StaffId>,
        /// After (`None`: back to a queue).
        to: Option<StaffId>,
        /// How it changed hands.
        how: Handing,
        /// For a chat put back in a queue: the queue's library (absent in
        /// entries written before it was kept).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        queue: Option<LibraryId>,
        /// For a chat put back in a queue: offered to the whole cooperative
        /// at once.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        cooperative: bool,
        /// For a chat put back in a queue: because its chatting librarian
        /// left the desk (signed out, disabled, or gone past
        /// `signoff_minutes`). A field, not a way of changing hands of its
        /// own, so that a node of an earlier release reads the entry.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        left: bool,
    },
    /// A message to the chatting librarian was sent into the live chat.
    LibrarianMessage {
        /// The chatting librarian.
        to: Option<StaffId>,
        /// Its text.
        body: String,
    },
    /// The patron was blocked from the chat (an abusive patron).
    Blocked {
        /// The block's id.
        block: i64,
        /// Why, as the librarian wrote it.
        reason: String,
        /// Until when.
        #[cfg_attr(feature = "openapi", schema(value_type = i64))]
        until: crate::Millis,
    },
    /// A block was lifted before it ran out.
    Unblocked {
        /// The block's id.
        block: i64,
    },
}

impl Change {
    /// The bytes of text the entry carries (a note's, an answer's, a block's
    /// reason; names and codes; none for the rest): what a page of a
    /// question's timeline is measured by.
    pub fn text_len(&self) -> usize {
        let opt = |s: &Option<String>| s.as_ref().map_or(0, String::len);
        match self {
            Change::Answer { body, emailed_to, .. } => body.len() + opt(emailed_to),
            Change::Note { body } | Change::LibrarianMessage { body, .. } => body.len(),
            Change::Blocked { reason, .. } => reason.len(),
            Change::Conference { name, .. } => name.len(),
            Change::Code { from, to } => opt(from) + opt(to),
            Change::Created { .. }
            | Change::Status { .. }
            | Change::Assignee { .. }
            | Change::FollowUp { .. }
            | Change::Referred { .. }
            | Change::ExcludeFromStats { .. }
            | Change::ReadScale { .. }
            | Change::Librarian { .. }
            | Change::Unblocked { .. } => 0,
        }
    }

    /// The timeline entry's kind, as stored.
    pub fn kind(&self) -> &'static str {
        match self {
            Change::Created { .. } => "created",
            Change::Status { .. } => "status",
            Change::Code { .. } => "code",
            Change::Assignee { .. } => "assignee",
            Change::FollowUp { .. } => "follow_up",
            Change::Referred { .. } => "referred",
            Change::ExcludeFromStats { .. } => "exclude_from_stats",
            Change::ReadScale { .. } => "read_scale",
            Change::Answer { .. } => "answer",
            Change::Note { .. } => "note",
            Change::LibrarianMessage { .. } => "librarian_message",
            Change::Conference { .. } => "conference",
            Change::Librarian { .. } => "librarian",
            Change::Blocked { .. } => "blocked",
            Change::Unblocked { .. } => "unblocked",
        }
    }
}

/// How a chat changed hands, as its question's timeline records it. The
/// stored names are the wire names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum Handing {
    /// A conferencing member took the chat over (B2).
    #[serde(rename = "take_over")]
    TakeOver,
    /// The chatting librarian gave it to a colleague.
    #[serde(rename = "transfer")]
    Transfer,
    /// It went back into a queue.
    #[serde(rename = "queue")]
    Queue,
    /// A librarian accepted it from the queue it had been sent back to.
    #[serde(rename = "accepted from a queue")]
    AcceptedFromQueue,
}

/// R7: every difference between two states, as timeline entries. Nothing
/// changes silently: whoever writes `after` must record these.
pub fn changes(before: &QuestionState, after: &QuestionState) -> Vec<Change> {
    let mut out = Vec::new();
    if before.status != after.status {
        out.push(Change::Status { from: before.status, to: after.status });
    }
    if before.code != after.code {
        out.push(Change::Code { from: before.code.clone(), to: after.code.clone() });
    }
    if before.assignee != after.assignee {
        out.push(Change::Assignee { from: before.assignee, to: after.assignee });
    }
    if before.follow_up != after.follow_up {
        out.push(Change::FollowUp { to: after.follow_up });
    }
    if before.referred_to != after.referred_to {
        out.push(Change::Referred { to: after.referred_to });
    }
    if before.exclude_from_stats != after.exclude_from_stats {
        out.push(Change::ExcludeFromStats { to: after.exclude_from_stats });
    }
    if before.read_scale != after.read_scale {
        out.push(Change::ReadScale { to: after.read_scale });
    }
    out
}

/// Checks a READ scale level (1–6).
pub fn read_scale(level: Option<i64>) -> Result<Option<u8>, crate::DomainError> {
    match level {
        None => Ok(None),
        Some(n @ 1..=6) => Ok(Some(n as u8)),
        Some(_) => Err(crate::DomainError::invalid("read_scale", "use a READ scale level from 1 to 6")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(key: &str) -> ResolutionCode {
        default_codes().into_iter().find(|c| c.key == key).expect("a default code")
    }

    const ANN: StaffId = StaffId(7);

    #[test]
    fn a_retired_code_is_picked_only_by_a_question_that_has_it() {
        let mut codes = default_codes();
        codes[1].retired = true;
        let key = codes[1].key.clone();
        let refused = |r: Result<&ResolutionCode, crate::DomainError>| match r {
            Err(crate::DomainError::Invalid { field: "code", reason }) => reason,
            other => panic!("{other:?}"),
        };
        assert!(refused(pick_code(&codes, &key, None)).contains("is retired"), "newly: refused");
        assert!(refused(pick_code(&codes, &key, Some("answered"))).contains("is retired"), "over another code");
        assert_eq!(pick_code(&codes, &key, Some(&key)).map(|c| &c.key), Ok(&key), "the question's own");
        assert_eq!(pick_code(&codes, "answered", Some(&key)).map(|c| c.key.as_str()), Ok("answered"));
        assert!(refused(pick_code(&codes, "nope", None)).contains("unknown resolution code"));
    }

    #[test]
    fn r1_question_is_answered_with_no_code_at_acceptance() {
        let q = question_on_accept();
        assert_eq!(q.status, Status::Answered);
        assert_eq!(q.code, None);
        assert_eq!(q.assignee, None);
    }

    #[test]
    fn r6_answered_assigns_the_chatting_librarian() {
        let q = apply_code(&question_on_accept(), &code("answered"), Some(ANN), None);
        assert_eq!((q.status, q.assignee), (Status::Answered, Some(ANN)));
        assert_eq!(q.code.as_deref(), Some("answered"));
    }

    #[test]
    fn r6_follow_up_by_me_is_new_and_mine() {
        let q = apply_code(&question_on_accept(), &code("follow_up_by_me"), Some(ANN), None);
        assert_eq!((q.status, q.assignee, q.follow_up), (Status::New, Some(ANN), false));
        // No chatting librarian who may hold it (another library's): the
        // patron's library is flagged to follow it up.
        let q = apply_code(&question_on_accept(), &code("follow_up_by_me"), None, None);
        assert_eq!((q.status, q.assignee, q.follow_up), (Status::New, None, true));
        // "Answered" with nobody to give it to leaves no work to flag.
        let q = apply_code(&question_on_accept(), &code("answered"), None, None);
        assert_eq!((q.status, q.assignee, q.follow_up), (Status::Answered, None, false));
    }

    #[test]
    fn r6_follow_up_by_library_is_new_flagged_and_unassigned() {
        let q = apply_code(&question_on_accept(), &code("follow_up_by_library"), Some(ANN), None);
        assert_eq!((q.status, q.assignee, q.follow_up), (Status::New, None, true));
    }

    #[test]
    fn r6_referred_is_pending_and_marked_for_the_receiving_library() {
        let q = apply_code(&question_on_accept(), &code("referred"), Some(ANN), Some(LibraryId(3)));
        assert_eq!((q.status, q.assignee), (Status::Pending, None));
        assert_eq!(q.referred_to, Some(LibraryId(3)));
    }

    #[test]
    fn r6_lost_call_and_inappropriate_close_with_no_owner() {
        for key in ["lost_call", "inappropriate"] {
            let q = apply_code(&question_on_accept(), &code(key), Some(ANN), None);
            assert_eq!((q.status, q.assignee), (Status::Closed, None), "{key}");
        }
    }

    #[test]
    fn r6_practice_is_answered_and_excluded_from_statistics() {
        let q = apply_code(&question_on_accept(), &code("practice"), Some(ANN), None);
        assert_eq!(q.status, Status::Answered);
        assert!(q.exclude_from_stats);
    }

    #[test]
    fn r6_a_code_decides_the_status_even_after_a_close() {
        let closed = QuestionState { status: Status::Closed, ..question_on_accept() };
        let q = apply_code(&closed, &code("follow_up_by_me"), Some(ANN), None);
        assert_eq!((q.status, q.assignee), (Status::New, Some(ANN)));
    }

    #[test]
    fn r6_every_default_code_has_a_unique_key() {
        let codes = default_codes();
        let mut keys: Vec<_> = codes.iter().map(|c| c.key.as_str()).collect();
        keys.sort();
        keys.dedup();
        assert_eq!(keys.len(), codes.len());
        assert_eq!(codes.len(), 7);
    }

    #[test]
    fn r7_every_difference_becomes_a_timeline_entry() {
        let before = question_on_accept();
        let after = apply_code(&before, &code("follow_up_by_me"), Some(ANN), None);
        let got = changes(&before, &after);
        assert_eq!(
            got,
            vec![
                Change::Status { from: Status::Answered, to: Status::New },
                Change::Code { from: None, to: Some("follow_up_by_me".into()) },
                Change::Assignee { from: None, to: Some(ANN) },
            ]
        );
        assert!(changes(&after, &after).is_empty(), "no change, no entry");
    }

    #[test]
    fn r7_changing_a_code_records_the_old_and_new_code() {
        let first = apply_code(&question_on_accept(), &code("answered"), Some(ANN), None);
        let second = apply_code(&first, &code("lost_call"), Some(ANN), None);
        let got = changes(&first, &second);
        assert!(got.contains(&Change::Code { from: Some("answered".into()), to: Some("lost_call".into()) }));
        assert!(got.contains(&Change::Status { from: Status::Answered, to: Status::Closed }));
    }
}
