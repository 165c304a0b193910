//! Abusive patrons: a librarian warns or blocks the patron of a chat; the
//! library's admins list blocks (the audit list), lift them, and say
//! whether a blocked patron may still send the offline form.

use crate::error::{ApiResult, Json, Path};
use crate::http::auth::CurrentStaff;
use crate::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::Router;
use refdesk_domain::ids::SessionId;
use refdesk_store::BlockRecord;
use serde::Deserialize;

/// Routes of this module.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/sessions/{id}/warn", post(warn))
        .route("/api/sessions/{id}/block", post(block))
        .route("/api/blocks", get(list))
        .route("/api/blocks/{id}/lift", post(lift))
        .route("/api/libraries/{slug}/blocked-patrons", get(policy).put(set_policy))
}

async fn warn(
    State(s): State<AppState>,
    CurrentStaff(staff): CurrentStaff,
    Path(id): Path<i64>,
) -> ApiResult<axum::Json<crate::http::desk::Ack>> {
    let a = s.app.warn(&staff, SessionId(id)).await?;
    Ok(axum::Json(crate::http::desk::Ack { seq: a.message.seq, duplicate: a.duplicate, message: a.message }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewBlock {
    reason: String,
    #[serde(default)]
    hours: Option<u64>,
}

async fn block(
    State(s): State<AppState>,
    CurrentStaff(staff): CurrentStaff,
    Path(id): Path<i64>,
    Json(b): Json<NewBlock>,
) -> ApiResult<(StatusCode, axum::Json<BlockRecord>)> {
    Ok((StatusCode::CREATED, axum::Json(s.app.block(&staff, SessionId(id), &b.reason, b.hours).await?)))
}

async fn list(State(s): State<AppState>, CurrentStaff(staff): CurrentStaff) -> ApiResult<axum::Json<Vec<BlockRecord>>> {
    Ok(axum::Json(s.app.blocks(&staff).await?))
}

async fn lift(
    State(s): State<AppState>,
    CurrentStaff(staff): CurrentStaff,
    Path(id): Path<i64>,
) -> ApiResult<axum::Json<BlockRecord>> {
    Ok(axum::Json(s.app.lift_block(&staff, id).await?))
}

#[derive(Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
struct Policy {
    may_use_form: bool,
}

async fn policy(
    State(s): State<AppState>,
    CurrentStaff(staff): CurrentStaff,
    Path(slug): Path<String>,
) -> ApiResult<axum::Json<Policy>> {
    Ok(axum::Json(Policy { may_use_form: s.app.blocked_may_ask(&staff, &slug).await? }))
}

async fn set_policy(
    State(s): State<AppState>,
    CurrentStaff(staff): CurrentStaff,
    Path(slug): Path<String>,
    Json(p): Json<Policy>,
) -> ApiResult<axum::Json<Policy>> {
    s.app.set_blocked_may_ask(&staff, &slug, p.may_use_form).await?;
    Ok(axum::Json(p))
}
