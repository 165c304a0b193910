//! The admin log: what admins changed in accounts and settings, for the
//! admins whose role covers it. Read only: entries are written by the app
//! beside each change, never through this module.

use super::auth::CurrentStaff;
use crate::error::{ApiResult, ErrorBody, Query};
use crate::AppState;
use axum::extract::State;
use refdesk_app::audit::{AdminLogLine, ADMIN_LOG_PAGE};
use refdesk_domain::Millis;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// Routes of this module.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(admin_log))
}

/// How many entries.
#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct Limit {
    /// At most this many, newest first (1 to 500; default 200).
    #[param(minimum = 1, maximum = 500)]
    limit: Option<u32>,
}

/// One change an admin made.
#[derive(Serialize, ToSchema)]
struct AdminLogEntry {
    /// Its id: later entries have larger ones.
    id: i64,
    /// When (ms since the epoch).
    at: Millis,
    /// What kind: `staff` (an account added or changed), `code`,
    /// `retention`, `embedding`, `widget`, `reply_to`, `closing`, `blocked_patrons`, `policy`, `script`,
    /// `library`, `institution`, `rename`, `setup`.
    action: String,
    /// What changed, in words (names, roles, settings; never a password).
    detail: String,
    /// Who made it: "Display Name (username)"; `null` for the operator,
    /// from the command line.
    by: Option<String>,
    /// The library it concerns, if one.
    library: Option<String>,
    /// The institution it concerns, if one (a library's too).
    institution: Option<String>,
}

impl From<AdminLogLine> for AdminLogEntry {
    fn from(l: AdminLogLine) -> Self {
        let AdminLogLine { entry, by, library, institution } = l;
        AdminLogEntry {
            id: entry.id,
            at: entry.at,
            action: entry.action,
            detail: entry.detail,
            by,
            library,
            institution,
        }
    }
}

/// The admin log of the places my role covers (library admins and above):
/// accounts added and changed (roles, disabling, password resets, names,
/// one's own password), resolution codes, retention periods, the sites
/// that may show a chat, the blocked patrons' form, policy notes, library
/// and cooperative scripts, libraries and institutions added and renamed
/// (lifted blocks are in `GET /api/blocks`). A change that changes nothing
/// is not logged. Newest first; a cooperative keeps its last 10,000, and
/// every entry for 30 days.
#[utoipa::path(get, path = "/api/admin-log", tag = "admin", security(("staff" = [])),
    params(Limit),
    responses(
        (status = 200, description = "the entries, newest first", body = Vec<AdminLogEntry>),
        (status = 403, description = "`forbidden`: admins only", body = ErrorBody),
        (status = 422, description = "`invalid`: a bad limit", body = ErrorBody),
    ))]
async fn admin_log(
    State(s): State<AppState>,
    CurrentStaff(staff): CurrentStaff,
    Query(q): Query<Limit>,
) -> ApiResult<axum::Json<Vec<AdminLogEntry>>> {
    let limit = q.limit.unwrap_or(200);
    if !(1..=ADMIN_LOG_PAGE).contains(&limit) {
        return Err(refdesk_domain::DomainError::invalid("limit", format!("1 to {ADMIN_LOG_PAGE}")).into());
    }
    Ok(axum::Json(s.app.admin_log(&staff, limit).await?.into_iter().map(Into::into).collect()))
}
