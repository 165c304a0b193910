//! The question list, a question's page, and the actions on it (R4, B1).
//! Every action takes `confirm_live`: required on a live question, refused
//! as stale on one that is not.

use super::auth::CurrentStaff;
use crate::error::{ApiError, ApiResult};
use crate::error::{Path, Query};
use crate::AppState;
use axum::extract::State;
use axum::routing::{get, post};
use axum::Router;
use refdesk_app::{ActOutcome, ListFilter, QuestionAction, QuestionDetail};
use refdesk_domain::actions::View;
use refdesk_domain::ids::{QuestionId, StaffId};
use refdesk_domain::question::Status;
use refdesk_domain::Millis;
use refdesk_store::QuestionRecord;
use serde::Deserialize;
use std::collections::HashMap;

/// Routes of this module.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/questions", get(list))
        .route("/api/questions/{id}", get(detail))
        .route("/api/questions/{id}/{action}", post(act))
}

fn bad(field: &str, why: impl std::fmt::Display) -> ApiError {
    ApiError {
        status: axum::http::StatusCode::UNPROCESSABLE_ENTITY,
        code: "invalid",
        message: format!("invalid {field}: {why}"),
    }
}

fn int<T: std::str::FromStr>(q: &HashMap<String, String>, key: &str) -> Result<Option<T>, ApiError> {
    match q.get(key).map(String::as_str).filter(|v| !v.is_empty()) {
        Some(v) => v.parse().map(Some).map_err(|_| bad(key, "must be a whole number")),
        None => Ok(None),
    }
}

/// Parses the list's query string, naming the first bad parameter.
fn filter(q: &HashMap<String, String>) -> Result<ListFilter, ApiError> {
    const KNOWN: [&str; 10] = ["view", "status", "code", "from", "to", "librarian", "library", "q", "before", "limit"];
    if let Some(unknown) = q.keys().find(|k| !KNOWN.contains(&k.as_str())) {
        return Err(bad(unknown, format!("unknown parameter; use {}", KNOWN.join(", "))));
    }
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
        from: int::<Millis>(q, "from")?,
        to: int::<Millis>(q, "to")?,
        librarian: int::<i64>(q, "librarian")?.map(StaffId),
        library: text("library"),
        text: text("q"),
        before: int::<i64>(q, "before")?.map(QuestionId),
        limit: match int::<u32>(q, "limit")? {
            Some(n) if (1..=200).contains(&n) => n,
            Some(_) => return Err(bad("limit", "must be between 1 and 200")),
            None => 50,
        },
    })
}

async fn list(
    State(s): State<AppState>,
    CurrentStaff(staff): CurrentStaff,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult<axum::Json<Vec<QuestionRecord>>> {
    Ok(axum::Json(s.app.question_list(&staff, filter(&q)?).await?))
}

async fn detail(
    State(s): State<AppState>,
    CurrentStaff(staff): CurrentStaff,
    Path(id): Path<i64>,
) -> ApiResult<axum::Json<QuestionDetail>> {
    Ok(axum::Json(s.app.question(&staff, QuestionId(id)).await?))
}

/// The body of every action; each action reads the fields it needs.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct ActBody {
    /// B1: "I know this chat is live and the patron may see this."
    #[serde(default)]
    confirm_live: bool,
    body: Option<String>,
    email: Option<String>,
    to: Option<i64>,
    library: Option<String>,
    code: Option<String>,
}

fn required(v: Option<String>, field: &str) -> Result<String, ApiError> {
    v.ok_or_else(|| bad(field, "is required"))
}

async fn act(
    State(s): State<AppState>,
    CurrentStaff(staff): CurrentStaff,
    Path((id, action)): Path<(i64, String)>,
    body: axum::body::Bytes,
) -> ApiResult<axum::Json<ActOutcome>> {
    // Actions without fields (close, claim…) may come with no body, or `null`.
    let b: ActBody = if body.iter().all(u8::is_ascii_whitespace) || body.trim_ascii() == b"null" {
        ActBody::default()
    } else {
        serde_json::from_slice(&body).map_err(crate::error::bad_json)?
    };
    let action = match action.as_str() {
        "answer" => QuestionAction::Answer { body: required(b.body, "body")?, email: b.email },
        "note" => QuestionAction::Note { body: required(b.body, "body")? },
        "message-librarian" => QuestionAction::MessageLibrarian { body: required(b.body, "body")? },
        "close" => QuestionAction::Close,
        "reopen" => QuestionAction::Reopen,
        "assign" => QuestionAction::Assign { to: b.to.map(StaffId) },
        "claim" => QuestionAction::Claim,
        "refer" => QuestionAction::Refer { library: required(b.library, "library")? },
        "code" => QuestionAction::SetCode { code: required(b.code, "code")?, library: b.library },
        other => {
            return Err(ApiError {
                status: axum::http::StatusCode::NOT_FOUND,
                code: "not_found",
                message: format!(
                "no action {other:?}; use answer, note, message-librarian, close, reopen, assign, claim, refer or code"
            ),
            })
        }
    };
    Ok(axum::Json(s.app.act(&staff, QuestionId(id), action, b.confirm_live).await?))
}
