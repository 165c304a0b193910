//! The desk around the chats: the chat monitor, conferencing, transfer,
//! availability and presence, staff management, staff IM, and the
//! entry point's status and offline question form.

use super::auth::CurrentStaff;
use crate::error::{ApiError, ApiResult, Json};
use crate::error::{Path, Query};
use crate::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::Router;
use refdesk_app::{FormReceipt, LibraryStatus, Monitor, OfflineForm, Presence, Transfer};
use refdesk_domain::chat::ConferenceMode;
use refdesk_domain::event::{Availability, ImMessage};
use refdesk_domain::ids::{SessionId, StaffId};
use refdesk_domain::org::Role;
use refdesk_store::{ImConversation, SessionRecord, StaffEntry};
use serde::Deserialize;

/// Routes of this module.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/monitor", get(monitor))
        .route("/api/sessions/{id}/conference", post(conference))
        .route("/api/sessions/{id}/leave", post(leave))
        .route("/api/sessions/{id}/takeover", post(take_over))
        .route("/api/sessions/{id}/transfer", post(transfer))
        .route("/api/me/availability", post(availability))
        .route("/api/staff/presence", get(presence))
        .route("/api/staff", get(staff_list).post(staff_create))
        .route("/api/staff/{id}", post(staff_update))
        .route("/api/im", get(im_list))
        .route("/api/im/{peer}", get(im_history).post(im_send))
        .route("/api/im/{peer}/read", post(im_read))
        .route("/api/libraries/{slug}/status", get(library_status))
        .route("/api/libraries/{slug}/questions", post(offline_question))
        .route("/api/policies/{library}", get(policy).put(set_policy))
        .route("/api/scripts", get(scripts).post(create_script))
        .route("/api/scripts/{id}", axum::routing::delete(delete_script))
        .route("/api/codes/{key}", axum::routing::put(put_code))
        .route("/api/institutions", get(institutions).post(create_institution))
}

fn invalid(field: &str, why: &str) -> ApiError {
    ApiError { status: StatusCode::UNPROCESSABLE_ENTITY, code: "invalid", message: format!("invalid {field}: {why}") }
}

async fn institutions(
    State(s): State<AppState>,
    CurrentStaff(staff): CurrentStaff,
) -> ApiResult<axum::Json<Vec<refdesk_store::InstitutionRecord>>> {
    Ok(axum::Json(s.app.institutions(Some(&staff)).await?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewInstitution {
    name: String,
}

/// A cooperative admin adds an institution to their cooperative.
async fn create_institution(
    State(s): State<AppState>,
    CurrentStaff(staff): CurrentStaff,
    Json(body): Json<NewInstitution>,
) -> ApiResult<(StatusCode, axum::Json<refdesk_store::InstitutionRecord>)> {
    let created = s.app.add_institution(Some(&staff), staff.home.cooperative, &body.name).await?;
    Ok((StatusCode::CREATED, axum::Json(created)))
}

async fn monitor(State(s): State<AppState>, CurrentStaff(staff): CurrentStaff) -> ApiResult<axum::Json<Monitor>> {
    Ok(axum::Json(s.app.monitor(&staff).await?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ConferenceBody {
    mode: String,
}

async fn conference(
    State(s): State<AppState>,
    CurrentStaff(staff): CurrentStaff,
    Path(id): Path<i64>,
    Json(body): Json<ConferenceBody>,
) -> ApiResult<axum::Json<SessionRecord>> {
    let mode = ConferenceMode::parse(&body.mode).ok_or_else(|| invalid("mode", "use monitor, whisper or join"))?;
    Ok(axum::Json(s.app.conference(&staff, SessionId(id), mode).await?))
}

async fn leave(
    State(s): State<AppState>,
    CurrentStaff(staff): CurrentStaff,
    Path(id): Path<i64>,
) -> ApiResult<axum::Json<SessionRecord>> {
    Ok(axum::Json(s.app.leave_conference(&staff, SessionId(id)).await?))
}

async fn take_over(
    State(s): State<AppState>,
    CurrentStaff(staff): CurrentStaff,
    Path(id): Path<i64>,
) -> ApiResult<axum::Json<SessionRecord>> {
    Ok(axum::Json(s.app.take_over(&staff, SessionId(id)).await?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TransferBody {
    /// A colleague's id.
    to: Option<i64>,
    /// A library's slug.
    library: Option<String>,
    /// The cooperative's queue.
    #[serde(default)]
    cooperative: bool,
    /// Stay as a whispering member.
    #[serde(default)]
    stay: bool,
}

async fn transfer(
    State(s): State<AppState>,
    CurrentStaff(staff): CurrentStaff,
    Path(id): Path<i64>,
    Json(b): Json<TransferBody>,
) -> ApiResult<axum::Json<SessionRecord>> {
    let to = match (b.to, b.library, b.cooperative) {
        (Some(to), None, false) => Transfer::Staff(StaffId(to)),
        (None, Some(lib), false) => Transfer::Library(lib),
        (None, None, true) => Transfer::Cooperative,
        _ => return Err(invalid("transfer", "name exactly one of to, library or cooperative")),
    };
    Ok(axum::Json(s.app.transfer(&staff, SessionId(id), to, b.stay).await?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AvailabilityBody {
    availability: String,
}

async fn availability(
    State(s): State<AppState>,
    CurrentStaff(staff): CurrentStaff,
    Json(b): Json<AvailabilityBody>,
) -> ApiResult<axum::Json<serde_json::Value>> {
    let a =
        Availability::parse(&b.availability).ok_or_else(|| invalid("availability", "use on_duty, away or off_duty"))?;
    s.app.set_availability(&staff, a).await?;
    Ok(axum::Json(serde_json::json!({ "availability": a })))
}

async fn presence(
    State(s): State<AppState>,
    CurrentStaff(staff): CurrentStaff,
) -> ApiResult<axum::Json<Vec<Presence>>> {
    Ok(axum::Json(s.app.presence(&staff).await?))
}

async fn staff_list(
    State(s): State<AppState>,
    CurrentStaff(staff): CurrentStaff,
) -> ApiResult<axum::Json<Vec<StaffEntry>>> {
    Ok(axum::Json(s.app.manageable_staff(&staff).await?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewStaffBody {
    username: String,
    display_name: String,
    library: String,
    role: String,
    password: String,
}

fn role(s: &str) -> Result<Role, ApiError> {
    Role::parse(s)
        .ok_or_else(|| invalid("role", "use librarian, library_admin, institution_admin or cooperative_admin"))
}

async fn staff_create(
    State(s): State<AppState>,
    CurrentStaff(staff): CurrentStaff,
    Json(b): Json<NewStaffBody>,
) -> ApiResult<(StatusCode, axum::Json<serde_json::Value>)> {
    let r = role(&b.role)?;
    let id = s.app.add_staff(Some(&staff), &b.library, &b.username, &b.display_name, r, &b.password).await?;
    Ok((StatusCode::CREATED, axum::Json(serde_json::json!({ "id": id }))))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StaffUpdateBody {
    role: Option<String>,
    disabled: Option<bool>,
    password: Option<String>,
}

async fn staff_update(
    State(s): State<AppState>,
    CurrentStaff(staff): CurrentStaff,
    Path(id): Path<i64>,
    Json(b): Json<StaffUpdateBody>,
) -> ApiResult<axum::Json<serde_json::Value>> {
    let r = b.role.as_deref().map(role).transpose()?;
    s.app.manage_staff(&staff, StaffId(id), r, b.disabled, b.password.as_deref()).await?;
    Ok(axum::Json(serde_json::json!({ "updated": id })))
}

async fn im_list(
    State(s): State<AppState>,
    CurrentStaff(staff): CurrentStaff,
) -> ApiResult<axum::Json<Vec<ImConversation>>> {
    Ok(axum::Json(s.app.im_conversations(&staff).await?))
}

#[derive(Deserialize)]
struct After {
    after: Option<u64>,
}

async fn im_history(
    State(s): State<AppState>,
    CurrentStaff(staff): CurrentStaff,
    Path(peer): Path<i64>,
    Query(q): Query<After>,
) -> ApiResult<axum::Json<Vec<ImMessage>>> {
    Ok(axum::Json(s.app.im_history(&staff, StaffId(peer), q.after.unwrap_or(0)).await?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ImBody {
    body: String,
    client_id: Option<String>,
}

async fn im_send(
    State(s): State<AppState>,
    CurrentStaff(staff): CurrentStaff,
    Path(peer): Path<i64>,
    Json(b): Json<ImBody>,
) -> ApiResult<axum::Json<serde_json::Value>> {
    let (m, duplicate) = s.app.im_send(&staff, StaffId(peer), &b.body, b.client_id.as_deref()).await?;
    Ok(axum::Json(serde_json::json!({ "message": m, "duplicate": duplicate })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ReadBody {
    seq: u64,
}

async fn im_read(
    State(s): State<AppState>,
    CurrentStaff(staff): CurrentStaff,
    Path(peer): Path<i64>,
    Json(b): Json<ReadBody>,
) -> ApiResult<axum::Json<serde_json::Value>> {
    s.app.im_read(&staff, StaffId(peer), b.seq).await?;
    Ok(axum::Json(serde_json::json!({ "read": b.seq })))
}

/// Public: the widget's button on a library's own site (another origin)
/// reads it, so any origin may (no cookies are involved).
async fn library_status(
    State(s): State<AppState>,
    Path(slug): Path<String>,
) -> ApiResult<impl axum::response::IntoResponse> {
    use axum::http::header::{ACCESS_CONTROL_ALLOW_ORIGIN, CACHE_CONTROL};
    let status: LibraryStatus = s.app.library_status(&slug).await?;
    Ok(([(ACCESS_CONTROL_ALLOW_ORIGIN, "*"), (CACHE_CONTROL, "no-store")], axum::Json(status)))
}

async fn offline_question(
    State(s): State<AppState>,
    crate::http::patron::ClientIp(ip): crate::http::patron::ClientIp,
    Path(slug): Path<String>,
    Json(form): Json<OfflineForm>,
) -> ApiResult<(StatusCode, axum::Json<FormReceipt>)> {
    Ok((StatusCode::CREATED, axum::Json(s.app.ask_offline(&slug, form, ip).await?)))
}

async fn policy(
    State(s): State<AppState>,
    CurrentStaff(staff): CurrentStaff,
    Path(library): Path<i64>,
) -> ApiResult<axum::Json<refdesk_store::PolicyPage>> {
    Ok(axum::Json(s.app.policy(&staff, refdesk_domain::ids::LibraryId(library)).await?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PolicyBody {
    body: String,
}

async fn set_policy(
    State(s): State<AppState>,
    CurrentStaff(staff): CurrentStaff,
    Path(library): Path<i64>,
    Json(b): Json<PolicyBody>,
) -> ApiResult<axum::Json<refdesk_store::PolicyPage>> {
    let id = refdesk_domain::ids::LibraryId(library);
    s.app.set_policy(&staff, id, &b.body).await?;
    Ok(axum::Json(s.app.policy(&staff, id).await?))
}

async fn scripts(
    State(s): State<AppState>,
    CurrentStaff(staff): CurrentStaff,
) -> ApiResult<axum::Json<Vec<refdesk_store::Script>>> {
    Ok(axum::Json(s.app.scripts(&staff).await?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ScriptBody {
    scope: String,
    title: String,
    body: String,
}

async fn create_script(
    State(s): State<AppState>,
    CurrentStaff(staff): CurrentStaff,
    Json(b): Json<ScriptBody>,
) -> ApiResult<(StatusCode, axum::Json<refdesk_store::Script>)> {
    Ok((StatusCode::CREATED, axum::Json(s.app.create_script(&staff, &b.scope, &b.title, &b.body).await?)))
}

async fn delete_script(
    State(s): State<AppState>,
    CurrentStaff(staff): CurrentStaff,
    Path(id): Path<i64>,
) -> ApiResult<axum::Json<serde_json::Value>> {
    s.app.delete_script(&staff, id).await?;
    Ok(axum::Json(serde_json::json!({ "deleted": id })))
}

async fn put_code(
    State(s): State<AppState>,
    CurrentStaff(staff): CurrentStaff,
    Path(key): Path<String>,
    Json(code): Json<refdesk_domain::question::ResolutionCode>,
) -> ApiResult<axum::Json<Vec<refdesk_domain::question::ResolutionCode>>> {
    if code.key != key {
        return Err(invalid("key", "the code's key must match the path"));
    }
    s.app.put_code(&staff, code).await?;
    Ok(axum::Json(s.app.codes(&staff).await?))
}
