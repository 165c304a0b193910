//! The question list, a question's page, and the actions on it (R4, B1).
//! Every action takes `confirm_live`: required on a live question, refused
//! as stale on one that is not.

use super::auth::CurrentStaff;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::error::{Path, Query};
use crate::http::views::{ActOutcomeView, QuestionDetailView, QuestionView};
use crate::AppState;
use axum::extract::State;
use refdesk_app::{ListFilter, QuestionAction};
use refdesk_domain::actions::View;
use refdesk_domain::ids::{QuestionId, StaffId};
use refdesk_domain::question::{Channel, Status};
use refdesk_domain::Millis;
use serde::Deserialize;
use std::collections::HashMap;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// Routes of this module.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list)).routes(routes!(detail)).routes(routes!(act))
}

fn bad(field: &str, why: impl std::fmt::Display) -> ApiError {
    crate::input::invalid(field, why)
}

fn int<T: std::str::FromStr>(q: &HashMap<&str, String>, key: &str) -> Result<Option<T>, ApiError> {
    match q.get(key).map(String::as_str).filter(|v| !v.is_empty()) {
        Some(v) => v.parse().map(Some).map_err(|_| {
            // A whole number too large for the field is not "not a number".
            let digits = v.strip_prefix('-').unwrap_or(v);
            let whole = !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit());
            bad(key, if whole { "is out of range" } else { "must be a whole number" })
        }),
        None => Ok(None),
    }
}

/// The question list's query string. Each value is read as text and parsed
/// by [`filter`], so that a bad one is a `422` naming it (`view=` is as much
/// a mistake as `view=everything`); the types below are what each must hold.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct ListParams {
    /// One of the list's views (default: all).
    #[param(value_type = Option<View>, inline)]
    view: Option<String>,
    /// Only questions with this status.
    #[param(value_type = Option<Status>, inline)]
    status: Option<String>,
    /// Only questions with this resolution code (a key of my cooperative's codes).
    #[param(min_length = 1)]
    code: Option<String>,
    /// Created at or after (ms since the epoch).
    #[param(value_type = Option<i64>)]
    from: Option<String>,
    /// Created before (ms since the epoch).
    #[param(value_type = Option<i64>)]
    to: Option<String>,
    /// The chatting librarian's id.
    #[param(value_type = Option<i64>)]
    librarian: Option<String>,
    /// The owning library's slug.
    library: Option<String>,
    /// How it came: `chat` (a librarian took the chat), `missed`, `abandoned`
    /// (its patron left the line), `form` (the offline form). No question is
    /// of a chat still waiting: it is made when the chat is taken or ends.
    #[param(value_type = Option<String>, pattern = "^(chat|missed|abandoned|form)$")]
    channel: Option<String>,
    /// Words in the question or its transcript, in any letter case (whatever the script).
    #[param(max_length = 200)]
    q: Option<String>,
    /// Paging: questions older than this one (its id).
    #[param(value_type = Option<i64>)]
    before: Option<String>,
    /// How many, 1–200 (default 50).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 200)]
    limit: Option<String>,
    /// Anything else: refused, naming it.
    #[serde(flatten)]
    #[param(ignore)]
    unknown: HashMap<String, String>,
}

impl ListParams {
    /// The known parameters by name.
    fn known(self) -> HashMap<&'static str, String> {
        let ListParams { view, status, code, from, to, librarian, library, channel, q, before, limit, unknown: _ } =
            self;
        [
            ("view", view),
            ("status", status),
            ("code", code),
            ("from", from),
            ("to", to),
            ("librarian", librarian),
            ("library", library),
            ("channel", channel),
            ("q", q),
            ("before", before),
            ("limit", limit),
        ]
        .into_iter()
        .filter_map(|(k, v)| Some((k, v?)))
        .collect()
    }
}

/// Parses the list's query string, naming the first bad parameter.
pub(super) fn filter(p: ListParams) -> Result<ListFilter, ApiError> {
    const KNOWN: [&str; 11] =
        ["view", "status", "code", "from", "to", "librarian", "library", "channel", "q", "before", "limit"];
    if let Some(unknown) = p.unknown.keys().next() {
        return Err(bad(unknown, format!("unknown parameter; use {}", KNOWN.join(", "))));
    }
    let q = p.known();
    let text = |k: &str| q.get(k).filter(|v| !v.is_empty()).cloned();
    // A filter that names a value must name one: `view=`, `status=` or
    // `code=` (empty) is as much a mistake as `view=everything`, and
    // answering it with every question would hide the mistake.
    let named = |k: &str| match q.get(k) {
        Some(v) if v.is_empty() => Err(bad(k, "is empty; leave it out for no filter")),
        v => Ok(v),
    };
    Ok(ListFilter {
        view: match named("view")? {
            Some(v) => View::parse(v)
                .ok_or_else(|| bad("view", format!("use one of {}", View::ALL.map(View::as_str).join(", "))))?,
            None => View::All,
        },
        status: match named("status")? {
            Some(v) => Some(Status::parse(v).ok_or_else(|| bad("status", "use new, pending, answered or closed"))?),
            None => None,
        },
        // Whether the code exists is for the app to say (codes are data).
        code: named("code")?.cloned(),
        from: int::<Millis>(&q, "from")?,
        to: int::<Millis>(&q, "to")?,
        librarian: int::<i64>(&q, "librarian")?.map(StaffId),
        library: text("library"),
        channel: match named("channel")? {
            Some(v) => Some(
                Channel::parse(v)
                    .filter(|c| *c != Channel::Waiting)
                    .ok_or_else(|| bad("channel", "use one of chat, missed, abandoned, form"))?,
            ),
            None => None,
        },
        text: text("q"),
        before: int::<i64>(&q, "before")?.map(QuestionId),
        limit: match int::<u64>(&q, "limit")? {
            Some(n @ 1..=200) => n as u32,
            Some(_) => return Err(bad("limit", "must be between 1 and 200")),
            None => 50,
        },
    })
}

/// The question list in my scope, newest first; live questions are marked live (R2, B1). Besides my
/// role's libraries and what was referred to them: the questions of the chats I had for other libraries,
/// while the chat goes on and for a day after its end.
#[utoipa::path(get, path = "/api/questions", tag = "questions", security(("staff" = [])),
    params(ListParams),
    responses(
        (status = 200, description = "a page of the list", body = Vec<QuestionView>),
        (status = 422, description = "`invalid`: an unknown or empty parameter, a bad value (a number out of range), no such code or library in my cooperative", body = ErrorBody),
    ))]
async fn list(
    State(s): State<AppState>,
    CurrentStaff(staff): CurrentStaff,
    Query(q): Query<ListParams>,
) -> ApiResult<axum::Json<Vec<QuestionView>>> {
    let list = s.app.question_list(&staff, filter(q)?).await?;
    Ok(axum::Json(list.into_iter().map(Into::into).collect()))
}

/// Where the pages of a question's transcript and timeline start.
#[derive(Deserialize, IntoParams)]
struct DetailParams {
    /// The transcript's lines after this one (default 0: from the first).
    after: Option<u64>,
    /// The timeline's entries after its first `timeline_after` (default 0:
    /// from the first).
    timeline_after: Option<u64>,
}

/// A question with a page of its transcript, a page of its timeline and the patron's e-mail address.
#[utoipa::path(get, path = "/api/questions/{id}", tag = "questions", security(("staff" = [])),
    params(("id" = i64, Path, description = "the question's number"), DetailParams),
    responses(
        (status = 200, description = "the question's page", body = QuestionDetailView),
        (status = 403, description = "`forbidden`: a question of my cooperative outside my scope (a question of another library whose chat I had is in it while the chat goes on and for a day after its end)", body = ErrorBody),
        (status = 404, description = "`not_found`: no such question, or one of another cooperative (which, is not said)", body = ErrorBody),
    ))]
async fn detail(
    State(s): State<AppState>,
    CurrentStaff(staff): CurrentStaff,
    Path(id): Path<i64>,
    Query(q): Query<DetailParams>,
) -> ApiResult<axum::Json<QuestionDetailView>> {
    let (after, timeline_after) = (q.after.unwrap_or(0), q.timeline_after.unwrap_or(0));
    Ok(axum::Json(s.app.question(&staff, QuestionId(id), after, timeline_after).await?.into()))
}

/// The actions on a question (R4).
#[derive(Clone, Copy, Deserialize, ToSchema)]
#[serde(rename_all = "kebab-case")]
enum ActionName {
    /// E-mail an answer (and show it in the live chat): needs `body`; `email` optional.
    Answer,
    /// Add a librarian note: needs `body`.
    Note,
    /// A note to the chatting librarian in the live chat: needs `body`.
    MessageLibrarian,
    /// Close the question.
    Close,
    /// Reopen a closed question.
    Reopen,
    /// Assign it to `to` (absent: nobody).
    Assign,
    /// Take it myself.
    Claim,
    /// Refer it to the library `library`.
    Refer,
    /// Set or change its resolution code `code` (`library` for a referral).
    Code,
}

impl ActionName {
    const ALL: [(&'static str, ActionName); 9] = [
        ("answer", ActionName::Answer),
        ("note", ActionName::Note),
        ("message-librarian", ActionName::MessageLibrarian),
        ("close", ActionName::Close),
        ("reopen", ActionName::Reopen),
        ("assign", ActionName::Assign),
        ("claim", ActionName::Claim),
        ("refer", ActionName::Refer),
        ("code", ActionName::Code),
    ];

    /// The action a path segment names; a segment that names none is a page
    /// that does not exist (404), as for any other unknown path.
    fn parse(s: &str) -> Result<ActionName, ApiError> {
        Self::ALL.iter().find(|(name, _)| *name == s).map(|(_, a)| *a).ok_or_else(|| ApiError {
            status: axum::http::StatusCode::NOT_FOUND,
            code: "not_found",
            message: format!("no action {s:?}; use {}", Self::ALL.map(|(name, _)| name).join(", ")),
            field: None,
        })
    }

    /// The use case's action, with the fields it needs from the body.
    fn with(self, b: ActBody) -> Result<QuestionAction, ApiError> {
        Ok(match self {
            ActionName::Answer => QuestionAction::Answer { body: required(b.body, "body")?, email: b.email },
            ActionName::Note => QuestionAction::Note { body: required(b.body, "body")? },
            ActionName::MessageLibrarian => QuestionAction::MessageLibrarian { body: required(b.body, "body")? },
            ActionName::Close => QuestionAction::Close,
            ActionName::Reopen => QuestionAction::Reopen,
            ActionName::Assign => QuestionAction::Assign { to: b.to.map(StaffId) },
            ActionName::Claim => QuestionAction::Claim,
            ActionName::Refer => QuestionAction::Refer { library: library_slug(required(b.library, "library")?)? },
            ActionName::Code => QuestionAction::SetCode {
                code: required(b.code, "code")?,
                library: b.library.map(library_slug).transpose()?,
                read_scale: refdesk_domain::question::read_scale(b.read_scale)?,
            },
        })
    }
}

/// The body of every action; each action reads the fields it needs. Actions
/// without fields (close, claim…) may come with no body at all, or `null`.
#[derive(Deserialize, Default, ToSchema)]
#[serde(deny_unknown_fields)]
struct ActBody {
    /// B1: "I know this chat is live and the patron may see this" — required
    /// on a live question, refused (409) as stale on one that is not.
    #[serde(default)]
    confirm_live: bool,
    /// answer, note, message-librarian: the text.
    body: Option<String>,
    /// answer: send here instead of the patron's address.
    email: Option<String>,
    /// assign: the staff member (absent: unassign).
    to: Option<i64>,
    /// refer, code (a referral): the receiving library's slug.
    library: Option<String>,
    /// code: the resolution code's key.
    code: Option<String>,
    /// code: the effort on the READ scale, 1–6 (optional; kept if absent).
    #[schema(minimum = 1, maximum = 6)]
    read_scale: Option<i64>,
}

/// A library named in a body: a slug, parsed before anything looks it up.
fn library_slug(s: String) -> Result<String, ApiError> {
    Ok(refdesk_domain::input::slug("library", &s)?)
}

fn required(v: Option<String>, field: &str) -> Result<String, ApiError> {
    v.ok_or_else(|| bad(field, "is required"))
}

/// Act on a question: on a live question `confirm_live` must be true (B1);
/// a stale confirmation is refused.
#[utoipa::path(post, path = "/api/questions/{id}/{action}", tag = "questions", security(("staff" = [])),
    params(
        ("id" = i64, Path, description = "the question's number"),
        ("action" = inline(ActionName), Path, description = "what to do"),
    ),
    request_body(content = Option<ActBody>, description = "optional for actions without fields"),
    responses(
        (status = 200, description = "done; what happened, in words, in `notice`", body = ActOutcomeView),
        (status = 403, description = "`forbidden`: a question of my cooperative outside my scope, or an action my role may not take; for a librarian who only chatted with its patron for the cooperative, anything but wrapping it up (a note, an answer to the patron's own address or in the chat, a code that refers it to no other library) while the chat goes on and for a day after it ended", body = ErrorBody),
        (status = 404, description = "`not_found`: no such question (or one of another cooperative), action, colleague or library", body = ErrorBody),
        (status = 409, description = "`conflict`: a live question without `confirm_live`, a stale confirmation, an action its state refuses, or words (a note, an answer, a message to the librarian) on a question whose patron's data was erased", body = ErrorBody),
        (status = 422, description = "`invalid`: a missing or bad field", body = ErrorBody),
        (status = 429, description = "`too_many_mails`: `limits.answers_per_recipient_per_day` answers were e-mailed to that address in the last 24 hours, or `limits.answers_per_staff_per_day` by this staff member to anyone; `question_full`: the question's timeline holds `limits.max_question_entries` entries (a note or a message to the librarian) or a hundred more (any other action but closing an open question, which always goes); `chat_full`: a line for a live chat that is full; `too_many_lines`: an action from one who wrote `limits.staff_lines_per_day` lines, notes and question-list actions today on this node (never a chat's first code, nor closing an open question). Nothing was done", body = ErrorBody),
    ))]
async fn act(
    State(s): State<AppState>,
    CurrentStaff(staff): CurrentStaff,
    Path((id, action)): Path<(i64, String)>,
    crate::error::WholeBody(body): crate::error::WholeBody,
) -> ApiResult<axum::Json<ActOutcomeView>> {
    let action = ActionName::parse(&action)?;
    // Actions without fields (close, claim…) may come with no body, or `null`.
    let b: ActBody = if body.iter().all(u8::is_ascii_whitespace) || body.trim_ascii() == b"null" {
        ActBody::default()
    } else {
        serde_json::from_slice(&body).map_err(crate::error::bad_json)?
    };
    let confirm_live = b.confirm_live;
    let outcome = s.app.act(&staff, QuestionId(id), action.with(b)?, confirm_live).await?;
    Ok(axum::Json(outcome.into()))
}
