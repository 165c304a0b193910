//! The desk around the chats: the chat monitor, conferencing, transfer,
//! availability and presence, staff management, staff IM, and the
//! entry point's status and offline question form.

use super::auth::CurrentStaff;
use crate::error::{ApiError, ApiResult, ErrorBody, Json};
use crate::error::{Path, Query};
use crate::http::views::{
    AvailabilityView, Deleted, FormReceiptView, ImConversationView, ImRead, ImSent, InstitutionView, LibraryStatusView,
    MonitorView, PolicyPageView, PresenceView, ScriptView, SessionView, StaffCreated, StaffEntryView, StaffUpdated,
};
use crate::input::invalid;
use crate::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use refdesk_app::{OfflineForm, Transfer};
use refdesk_domain::chat::ConferenceMode;
use refdesk_domain::event::{Availability, ImMessage};
use refdesk_domain::ids::{InstitutionId, LibraryId, SessionId, StaffId};
use refdesk_domain::org::{Role, Staff};
use refdesk_domain::question::ResolutionCode;
use refdesk_store::Named;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// Routes of this module.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(monitor))
        .routes(routes!(conference))
        .routes(routes!(leave))
        .routes(routes!(take_over))
        .routes(routes!(transfer))
        .routes(routes!(availability))
        .routes(routes!(presence))
        .routes(routes!(staff_list, staff_create))
        .routes(routes!(staff_update))
        .routes(routes!(im_list))
        .routes(routes!(im_history, im_send))
        .routes(routes!(im_read))
        .routes(routes!(library_status))
        .routes(routes!(offline_question))
        .routes(routes!(policy, set_policy))
        .routes(routes!(scripts, create_script))
        .routes(routes!(update_script, delete_script))
        .routes(routes!(put_code))
        .routes(routes!(institutions, create_institution))
        .routes(routes!(rename_institution))
        .routes(routes!(rename_library))
        .routes(routes!(rename_cooperative))
}

/// The institutions of my cooperative.
#[utoipa::path(get, path = "/api/institutions", tag = "admin", security(("staff" = [])),
    responses((status = 200, description = "the institutions", body = Vec<InstitutionView>)))]
async fn institutions(
    State(s): State<AppState>,
    CurrentStaff(staff): CurrentStaff,
) -> ApiResult<axum::Json<Vec<InstitutionView>>> {
    Ok(axum::Json(s.app.institutions(Some(&staff)).await?.into_iter().map(Into::into).collect()))
}

/// A new institution.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct NewInstitution {
    /// Its name.
    #[schema(max_length = 200)]
    name: String,
}

/// A cooperative admin adds an institution to their cooperative.
#[utoipa::path(post, path = "/api/institutions", tag = "admin", security(("staff" = [])),
    request_body = NewInstitution,
    responses(
        (status = 201, description = "created", body = InstitutionView),
        (status = 403, description = "`forbidden`: cooperative admins only", body = ErrorBody),
        (status = 409, description = "`conflict`: another institution of the cooperative has that name (as a reader tells names apart: in any letter case, spaces, full-width forms and characters that show as nothing aside, letters of other scripts drawn alike as one: a Cyrillic \"Јое\" is \"Joe\")", body = ErrorBody),
        (status = 422, description = "`invalid`: an empty or over-long name", body = ErrorBody),
        (status = 429, description = "`too_many`: the cooperative holds 1,000 institutions already; `too_many_changes`: I made 500 changes to accounts and settings today on this node (nothing changed)", body = ErrorBody),
    ))]
async fn create_institution(
    State(s): State<AppState>,
    CurrentStaff(staff): CurrentStaff,
    Json(body): Json<NewInstitution>,
) -> ApiResult<(StatusCode, axum::Json<InstitutionView>)> {
    let created = s.app.add_institution(Some(&staff), staff.home.cooperative, &body.name).await?;
    Ok((StatusCode::CREATED, axum::Json(created.into())))
}

/// A new name.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct NewName {
    /// The name, one line (at most 200 characters).
    #[schema(max_length = 200)]
    name: String,
}

/// What was renamed, by what name now.
#[derive(Serialize, ToSchema)]
struct Renamed {
    /// The new name, as stored (trimmed).
    name: String,
}

/// Gives a library, an institution or a cooperative a new name.
async fn rename(s: &AppState, staff: &Staff, what: Named, name: &str) -> ApiResult<axum::Json<Renamed>> {
    s.app.rename(Some(staff), what, name).await?;
    Ok(axum::Json(Renamed { name: name.trim().to_owned() }))
}

/// Rename a library (a typo, or a library that renames itself): its admins
/// and those above. Its slug, in widget snippets and links, stays; what was
/// written under the old name (chat lines, e-mail) keeps it; the widget
/// and the lists show the new one within 5 s.
#[utoipa::path(post, path = "/api/libraries/{slug}", tag = "admin", security(("staff" = [])),
    params(("slug" = String, Path, description = "the library's slug")),
    request_body = NewName,
    responses(
        (status = 200, description = "renamed", body = Renamed),
        (status = 403, description = "`forbidden`: not an admin of the library", body = ErrorBody),
        (status = 404, description = "`not_found`: no such library", body = ErrorBody),
        (status = 409, description = "`conflict`: another library of the cooperative has that name (as a reader tells names apart: in any letter case, spaces, full-width forms and characters that show as nothing aside, letters of other scripts drawn alike as one: a Cyrillic \"Јое\" is \"Joe\")", body = ErrorBody),
        (status = 422, description = "`invalid`: an empty or over-long name", body = ErrorBody),
        (status = 429, description = "`too_many_changes`: I made 500 changes to accounts and settings today on this node (nothing changed)", body = ErrorBody),
    ))]
async fn rename_library(
    State(s): State<AppState>,
    CurrentStaff(staff): CurrentStaff,
    Path(slug): Path<String>,
    Json(body): Json<NewName>,
) -> ApiResult<axum::Json<Renamed>> {
    let lib = s.app.library(&slug).await?;
    rename(&s, &staff, Named::Library(lib.placement.library), &body.name).await
}

/// Rename an institution of my cooperative: its admins and cooperative
/// admins.
#[utoipa::path(post, path = "/api/institutions/{id}", tag = "admin", security(("staff" = [])),
    params(("id" = i64, Path, description = "the institution")),
    request_body = NewName,
    responses(
        (status = 200, description = "renamed", body = Renamed),
        (status = 403, description = "`forbidden`: not an admin of the institution", body = ErrorBody),
        (status = 404, description = "`not_found`: no such institution", body = ErrorBody),
        (status = 409, description = "`conflict`: another institution of the cooperative has that name (as a reader tells names apart: in any letter case, spaces, full-width forms and characters that show as nothing aside, letters of other scripts drawn alike as one: a Cyrillic \"Јое\" is \"Joe\")", body = ErrorBody),
        (status = 422, description = "`invalid`: an empty or over-long name", body = ErrorBody),
        (status = 429, description = "`too_many_changes`: I made 500 changes to accounts and settings today on this node (nothing changed)", body = ErrorBody),
    ))]
async fn rename_institution(
    State(s): State<AppState>,
    CurrentStaff(staff): CurrentStaff,
    Path(id): Path<i64>,
    Json(body): Json<NewName>,
) -> ApiResult<axum::Json<Renamed>> {
    rename(&s, &staff, Named::Institution(InstitutionId(id)), &body.name).await
}

/// Rename my cooperative: cooperative admins.
#[utoipa::path(post, path = "/api/cooperative", tag = "admin", security(("staff" = [])),
    request_body = NewName,
    responses(
        (status = 200, description = "renamed", body = Renamed),
        (status = 403, description = "`forbidden`: cooperative admins only", body = ErrorBody),
        (status = 409, description = "`conflict`: another cooperative of the service has that name (as a reader tells names apart: in any letter case, spaces, full-width forms and characters that show as nothing aside, letters of other scripts drawn alike as one: a Cyrillic \"Јое\" is \"Joe\")", body = ErrorBody),
        (status = 422, description = "`invalid`: an empty or over-long name", body = ErrorBody),
        (status = 429, description = "`too_many_changes`: I made 500 changes to accounts and settings today on this node (nothing changed)", body = ErrorBody),
    ))]
async fn rename_cooperative(
    State(s): State<AppState>,
    CurrentStaff(staff): CurrentStaff,
    Json(body): Json<NewName>,
) -> ApiResult<axum::Json<Renamed>> {
    rename(&s, &staff, Named::Cooperative(staff.home.cooperative), &body.name).await
}

/// The chat monitor: My (sessions I am in) and ALL (live sessions in my
/// scope; admins), each the first 500 at most, as a socket's `monitor`
/// frame shows, and how many more each holds.
#[utoipa::path(get, path = "/api/monitor", tag = "desk", security(("staff" = [])),
    responses((status = 200, description = "both tabs, each the first 500 at most", body = MonitorView)))]
async fn monitor(State(s): State<AppState>, CurrentStaff(staff): CurrentStaff) -> ApiResult<axum::Json<MonitorView>> {
    Ok(axum::Json(MonitorView::first(s.app.monitor(&staff).await?, crate::ws::connection::MONITOR_SHOWN)))
}

/// How to take part in someone else's chat.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct ConferenceBody {
    /// monitor, whisper or join (B2).
    #[schema(value_type = ConferenceMode)]
    mode: String,
}

/// Enter a live chat from the ALL tab, or change mode (institution and
/// cooperative admins, B2).
#[utoipa::path(post, path = "/api/sessions/{id}/conference", tag = "desk", security(("staff" = [])),
    params(("id" = i64, Path, description = "the session")),
    request_body = ConferenceBody,
    responses(
        (status = 200, description = "in the chat, in that mode", body = SessionView),
        (status = 403, description = "`forbidden`: not an admin with this chat in scope", body = ErrorBody),
        (status = 404, description = "`not_found`: no such chat in my scope", body = ErrorBody),
        (status = 409, description = "`conflict`: the chat is not live, I am its chatting librarian, or I am in it in that mode already", body = ErrorBody),
        (status = 422, description = "`invalid`: an unknown mode", body = ErrorBody),
        (status = 429, description = "`chat_full`: the chat holds `limits.max_chat_lines` lines and the hundred staff may add past them", body = ErrorBody),
    ))]
async fn conference(
    State(s): State<AppState>,
    CurrentStaff(staff): CurrentStaff,
    Path(id): Path<i64>,
    Json(body): Json<ConferenceBody>,
) -> ApiResult<axum::Json<SessionView>> {
    let mode = ConferenceMode::parse(&body.mode).ok_or_else(|| invalid("mode", "use monitor, whisper or join"))?;
    Ok(axum::Json(s.app.conference(&staff, SessionId(id), mode).await?.into()))
}

/// Leave a chat one conferenced into.
#[utoipa::path(post, path = "/api/sessions/{id}/leave", tag = "desk", security(("staff" = [])),
    params(("id" = i64, Path, description = "the session")),
    responses(
        (status = 200, description = "left", body = SessionView),
        (status = 404, description = "`not_found`: no such chat in my scope", body = ErrorBody),
        (status = 409, description = "`conflict`: not a member of this chat", body = ErrorBody),
    ))]
async fn leave(
    State(s): State<AppState>,
    CurrentStaff(staff): CurrentStaff,
    Path(id): Path<i64>,
) -> ApiResult<axum::Json<SessionView>> {
    Ok(axum::Json(s.app.leave_conference(&staff, SessionId(id)).await?.into()))
}

/// Take the chat over; the previous librarian stays, whispering (B2).
#[utoipa::path(post, path = "/api/sessions/{id}/takeover", tag = "desk", security(("staff" = [])),
    params(("id" = i64, Path, description = "the session")),
    responses(
        (status = 200, description = "the chat is mine", body = SessionView),
        (status = 403, description = "`forbidden`: not an admin with this chat in scope", body = ErrorBody),
        (status = 404, description = "`not_found`: no such chat in my scope", body = ErrorBody),
        (status = 409, description = "`conflict`: the chat is not active, or already mine", body = ErrorBody),
        (status = 429, description = "`chat_full`: the chat holds `limits.max_chat_lines` lines and the hundred staff may add past them", body = ErrorBody),
    ))]
async fn take_over(
    State(s): State<AppState>,
    CurrentStaff(staff): CurrentStaff,
    Path(id): Path<i64>,
) -> ApiResult<axum::Json<SessionView>> {
    Ok(axum::Json(s.app.take_over(&staff, SessionId(id)).await?.into()))
}

/// Where a chat goes: exactly one of `to`, `library` or `cooperative`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct TransferBody {
    /// A colleague's id.
    to: Option<i64>,
    /// A library's slug: back to its queue.
    library: Option<String>,
    /// The cooperative's queue: offered to every library at once.
    #[serde(default)]
    cooperative: bool,
    /// Stay as a whispering member.
    #[serde(default)]
    stay: bool,
    /// A librarian note for whoever takes the chat next (staff only;
    /// blank: none), written just before the transfer's line.
    note: Option<String>,
}

impl TransferBody {
    /// The one destination it names.
    fn destination(&self) -> Result<Transfer, ApiError> {
        match (self.to, &self.library, self.cooperative) {
            (Some(to), None, false) => Ok(Transfer::Staff(StaffId(to))),
            (None, Some(lib), false) => Ok(Transfer::Library(refdesk_domain::input::slug("library", lib)?)),
            (None, None, true) => Ok(Transfer::Cooperative),
            _ => Err(ApiError::new(
                axum::http::StatusCode::UNPROCESSABLE_ENTITY,
                "invalid",
                "invalid transfer: name exactly one of to, library or cooperative",
            )),
        }
    }
}

/// The chatting librarian hands the chat to a colleague, a library's queue
/// or the cooperative's queue; the patron is told.
#[utoipa::path(post, path = "/api/sessions/{id}/transfer", tag = "desk", security(("staff" = [])),
    params(("id" = i64, Path, description = "the session")),
    request_body = TransferBody,
    responses(
        (status = 200, description = "handed over", body = SessionView),
        (status = 403, description = "`forbidden`: only the chatting librarian", body = ErrorBody),
        (status = 404, description = "`not_found`: no such chat in my scope", body = ErrorBody),
        (status = 409, description = "`conflict`: the chat is not active, or the colleague is off duty", body = ErrorBody),
        (status = 422, description = "`invalid`: not exactly one destination, no such colleague or library in my cooperative, or myself; or a `note` longer than `limits.max_message_chars` or with control characters (`field`: `note`)", body = ErrorBody),
        (status = 429, description = "`chat_full`: the chat holds `limits.max_chat_lines` lines and the hundred staff may add past them; `too_many_lines`: a `note` past `limits.staff_lines_per_day`", body = ErrorBody),
    ))]
async fn transfer(
    State(s): State<AppState>,
    CurrentStaff(staff): CurrentStaff,
    Path(id): Path<i64>,
    Json(b): Json<TransferBody>,
) -> ApiResult<axum::Json<SessionView>> {
    let to = b.destination()?;
    Ok(axum::Json(s.app.transfer(&staff, SessionId(id), to, b.stay, b.note.as_deref()).await?.into()))
}

/// One's availability.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct AvailabilityBody {
    /// on_duty, away or off_duty.
    #[schema(value_type = Availability)]
    availability: String,
}

/// Go on duty, away, or off duty.
#[utoipa::path(post, path = "/api/me/availability", tag = "desk", security(("staff" = [])),
    request_body = AvailabilityBody,
    responses(
        (status = 200, description = "set", body = AvailabilityView),
        (status = 422, description = "`invalid`: an unknown availability", body = ErrorBody),
    ))]
async fn availability(
    State(s): State<AppState>,
    CurrentStaff(staff): CurrentStaff,
    Json(b): Json<AvailabilityBody>,
) -> ApiResult<axum::Json<AvailabilityView>> {
    let a =
        Availability::parse(&b.availability).ok_or_else(|| invalid("availability", "use on_duty, away or off_duty"))?;
    s.app.set_availability(&staff, a).await?;
    Ok(axum::Json(AvailabilityView { availability: a }))
}

/// The staff of my cooperative with their availability and presence.
#[utoipa::path(get, path = "/api/staff/presence", tag = "desk", security(("staff" = [])),
    responses((status = 200, description = "my colleagues", body = Vec<PresenceView>)))]
async fn presence(
    State(s): State<AppState>,
    CurrentStaff(staff): CurrentStaff,
) -> ApiResult<axum::Json<Vec<PresenceView>>> {
    Ok(axum::Json(s.app.presence(&staff).await?.into_iter().map(Into::into).collect()))
}

/// Staff I may manage (library admins and above, within scope).
#[utoipa::path(get, path = "/api/staff", tag = "staff", security(("staff" = [])),
    responses(
        (status = 200, description = "the staff in my scope", body = Vec<StaffEntryView>),
        (status = 403, description = "`forbidden`: library admins and above", body = ErrorBody),
    ))]
async fn staff_list(
    State(s): State<AppState>,
    CurrentStaff(staff): CurrentStaff,
) -> ApiResult<axum::Json<Vec<StaffEntryView>>> {
    Ok(axum::Json(s.app.manageable_staff(&staff).await?.into_iter().map(Into::into).collect()))
}

/// A new staff member.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct NewStaffBody {
    /// Sign-in name.
    username: String,
    /// What patrons and colleagues see.
    display_name: String,
    /// Their home library's slug.
    library: String,
    /// Never above my own.
    #[schema(value_type = Role)]
    role: String,
    /// 8 to 256 characters (an admin's 12 to 256), at least 5 different
    /// ones (an admin's 6), not containing the username, and not a common
    /// password with a few characters added.
    #[schema(min_length = 8, max_length = 256)]
    password: String,
}

fn role(s: &str) -> Result<Role, ApiError> {
    Role::parse(s)
        .ok_or_else(|| invalid("role", "use librarian, library_admin, institution_admin or cooperative_admin"))
}

/// Create a staff member (within scope, never above my role).
#[utoipa::path(post, path = "/api/staff", tag = "staff", security(("staff" = [])),
    request_body = NewStaffBody,
    responses(
        (status = 201, description = "created", body = StaffCreated),
        (status = 403, description = "`forbidden`: outside my scope, or a role above mine", body = ErrorBody),
        (status = 404, description = "`not_found`: no such library", body = ErrorBody),
        (status = 409, description = "`conflict`: the username is taken", body = ErrorBody),
        (status = 422, description = "`invalid`: a bad username, name, role or a weak password", body = ErrorBody),
        (status = 429, description = "`too_many`: the cooperative holds 10,000 staff accounts already, or the library 1,000; `too_many_changes`: I made 500 changes to accounts and settings today on this node (nothing changed)", body = ErrorBody),
    ))]
async fn staff_create(
    State(s): State<AppState>,
    CurrentStaff(staff): CurrentStaff,
    Json(b): Json<NewStaffBody>,
) -> ApiResult<(StatusCode, axum::Json<StaffCreated>)> {
    let r = role(&b.role)?;
    // Parsed before anything looks it up (a NUL was a 500 on PostgreSQL).
    let library = refdesk_domain::input::slug("library", &b.library)?;
    let id = s.app.add_staff(Some(&staff), &library, &b.username, &b.display_name, r, &b.password).await?;
    Ok((StatusCode::CREATED, axum::Json(StaffCreated { id })))
}

/// A change to a staff member's account.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct StaffUpdateBody {
    /// A new role (never above mine).
    #[schema(value_type = Option<Role>)]
    role: Option<String>,
    /// Disable (true) or enable (false) their sign-in.
    disabled: Option<bool>,
    /// A new password.
    #[schema(min_length = 8)]
    password: Option<String>,
    /// A new display name, one line (at most 100 characters): lines already
    /// written keep the name they were written under.
    #[schema(max_length = 100)]
    display_name: Option<String>,
}

/// Change a staff member's role, disable or enable them, reset their
/// password or give them a new display name; their sign-ins end (so that
/// no open desk keeps the old role, password or name).
#[utoipa::path(post, path = "/api/staff/{id}", tag = "staff", security(("staff" = [])),
    params(("id" = i64, Path, description = "the staff member")),
    request_body = StaffUpdateBody,
    responses(
        (status = 200, description = "changed", body = StaffUpdated),
        (status = 403, description = "`forbidden`: outside my scope, or a role above mine", body = ErrorBody),
        (status = 404, description = "`not_found`: no such staff member, or one of another cooperative", body = ErrorBody),
        (status = 409, description = "`conflict`: disabling or demoting myself, or the account's role or home changed while this was decided (look again)", body = ErrorBody),
        (status = 422, description = "`invalid`: a bad role, a weak password, a promotion into an admin role without a new password, or nothing to change", body = ErrorBody),
        (status = 429, description = "`too_many_changes`: I made 500 changes to accounts and settings today on this node (nothing changed)", body = ErrorBody),
    ))]
async fn staff_update(
    State(s): State<AppState>,
    CurrentStaff(staff): CurrentStaff,
    Path(id): Path<i64>,
    Json(b): Json<StaffUpdateBody>,
) -> ApiResult<axum::Json<StaffUpdated>> {
    let r = b.role.as_deref().map(role).transpose()?;
    s.app.manage_staff(&staff, StaffId(id), r, b.disabled, b.password.as_deref(), b.display_name.as_deref()).await?;
    Ok(axum::Json(StaffUpdated { updated: id }))
}

/// My IM conversations, with unread counts.
#[utoipa::path(get, path = "/api/im", tag = "im", security(("staff" = [])),
    responses((status = 200, description = "my conversations", body = Vec<ImConversationView>)))]
async fn im_list(
    State(s): State<AppState>,
    CurrentStaff(staff): CurrentStaff,
) -> ApiResult<axum::Json<Vec<ImConversationView>>> {
    Ok(axum::Json(s.app.im_conversations(&staff).await?.into_iter().map(Into::into).collect()))
}

/// Where a conversation's page starts.
#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct After {
    /// Messages after this sequence number (default 0: from the start).
    after: Option<u64>,
}

/// The conversation with a colleague.
#[utoipa::path(get, path = "/api/im/{peer}", tag = "im", security(("staff" = [])),
    params(("peer" = i64, Path, description = "the colleague"), After),
    responses(
        (status = 200, description = "the messages, oldest first: at most 1,000 and 1 MiB of text (the first whatever its length); ask again after the last `seq` for the rest", body = Vec<ImMessage>),
        (status = 422, description = "`invalid`: no such colleague in my cooperative (and no conversation with them)", body = ErrorBody),
    ))]
async fn im_history(
    State(s): State<AppState>,
    CurrentStaff(staff): CurrentStaff,
    Path(peer): Path<i64>,
    Query(q): Query<After>,
) -> ApiResult<axum::Json<Vec<ImMessage>>> {
    Ok(axum::Json(s.app.im_history(&staff, StaffId(peer), q.after.unwrap_or(0)).await?))
}

/// A direct message.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct ImBody {
    /// Plain text.
    #[schema(min_length = 1)]
    body: String,
    /// The sender's id for idempotent re-sends, at most 64 characters.
    #[schema(max_length = 64)]
    client_id: Option<String>,
}

/// Send a direct message to a colleague of my cooperative.
#[utoipa::path(post, path = "/api/im/{peer}", tag = "im", security(("staff" = [])),
    params(("peer" = i64, Path, description = "the colleague")),
    request_body = ImBody,
    responses(
        (status = 200, description = "stored (or already stored under this client id)", body = ImSent),
        (status = 422, description = "`invalid`: an empty or over-long body, a bad client id, oneself, or no such colleague in my cooperative", body = ErrorBody),
        (status = 429, description = "`too_many_ims`: I sent `limits.ims_per_staff_per_day` messages to colleagues in the last 24 hours", body = ErrorBody),
    ))]
async fn im_send(
    State(s): State<AppState>,
    CurrentStaff(staff): CurrentStaff,
    Path(peer): Path<i64>,
    Json(b): Json<ImBody>,
) -> ApiResult<axum::Json<ImSent>> {
    let (message, duplicate) = s.app.im_send(&staff, StaffId(peer), &b.body, b.client_id.as_deref()).await?;
    Ok(axum::Json(ImSent { message, duplicate }))
}

/// How far a conversation was read.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct ReadBody {
    /// Read up to this sequence number.
    seq: u64,
}

/// Mark the conversation read up to `seq`.
#[utoipa::path(post, path = "/api/im/{peer}/read", tag = "im", security(("staff" = [])),
    params(("peer" = i64, Path, description = "the colleague")),
    request_body = ReadBody,
    responses(
        (status = 200, description = "marked: how far (the last message at most)", body = ImRead),
        (status = 422, description = "`invalid` (`peer`): no colleague of my cooperative has this id", body = ErrorBody),
    ))]
async fn im_read(
    State(s): State<AppState>,
    CurrentStaff(staff): CurrentStaff,
    Path(peer): Path<i64>,
    Json(b): Json<ReadBody>,
) -> ApiResult<axum::Json<ImRead>> {
    let read = s.app.im_read(&staff, StaffId(peer), b.seq).await?;
    Ok(axum::Json(ImRead { read }))
}

/// Whether anyone who can serve this library's patrons is on duty.
///
/// Public: the widget's button on a library's own site (another origin)
/// reads it, so any origin may (no cookies are involved). Its refusals too:
/// a mistyped slug in a library's snippet shows in the browser's console
/// as the `404` it is, not as a cross-origin error.
#[utoipa::path(get, path = "/api/libraries/{slug}/status", tag = "patron",
    params(("slug" = String, Path, description = "the library's URL name")),
    responses(
        (status = 200, description = "the entry point's status", body = LibraryStatusView,
            headers(("access-control-allow-origin" = String, description = "*"))),
        (status = 404, description = "`not_found`: no such library", body = ErrorBody,
            headers(("access-control-allow-origin" = String, description = "*"))),
    ))]
async fn library_status(
    State(s): State<AppState>,
    Path(slug): Path<String>,
    request: axum::http::HeaderMap,
) -> axum::response::Response {
    use axum::http::header::{ACCESS_CONTROL_ALLOW_ORIGIN, CACHE_CONTROL, ORIGIN, VARY};
    use axum::response::IntoResponse;
    let headers = [(ACCESS_CONTROL_ALLOW_ORIGIN, "*"), (CACHE_CONTROL, "no-store"), (VARY, "Origin")];
    // An Origin that is not text is no site's: not framed (as the origin
    // check refuses it on writes).
    let origin = request.get(ORIGIN).map(|o| o.to_str().unwrap_or("null"));
    match s.app.library_status(&slug, origin).await {
        Ok(status) => {
            let view = LibraryStatusView::of(status, s.app.limits().max_message_chars);
            (headers, axum::Json(view)).into_response()
        }
        Err(e) => (headers, ApiError::from(e)).into_response(),
    }
}

/// What the offline question form takes.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct OfflineFormBody {
    /// Their name (optional).
    name: Option<String>,
    /// Their e-mail (required: the answer goes there).
    email: Option<String>,
    /// Their question.
    #[schema(min_length = 1)]
    question: String,
    /// The widget's random id for this browser (16–128 of `[A-Za-z0-9_-]`):
    /// what a block goes by, with the network.
    #[serde(default)]
    browser: Option<String>,
}

impl From<OfflineFormBody> for OfflineForm {
    fn from(b: OfflineFormBody) -> Self {
        OfflineForm { name: b.name, email: b.email, question: b.question, browser: b.browser }
    }
}

/// The offline question form: a new question, answered by e-mail.
#[utoipa::path(post, path = "/api/libraries/{slug}/questions", tag = "patron",
    params(("slug" = String, Path, description = "the library's URL name")),
    request_body = OfflineFormBody,
    responses(
        (status = 201, description = "the question's number", body = FormReceiptView),
        (status = 403, description = "`blocked`: where the library does not let blocked patrons use the form", body = ErrorBody),
        (status = 404, description = "`not_found`: no such library", body = ErrorBody),
        (status = 409, description = "`closed`: the library's admins closed its chat; the message is their notice", body = ErrorBody),
        (status = 422, description = "`invalid`: no e-mail address, an empty or over-long question", body = ErrorBody),
        (status = 429, description = "`rate_limited` (starts from this address), `too_many_questions` (this network's questions today) or `too_many_today` (the chats and offline questions the library took in the last 24 hours)", body = ErrorBody),
    ))]
async fn offline_question(
    State(s): State<AppState>,
    crate::http::patron::ClientIp(ip): crate::http::patron::ClientIp,
    Path(slug): Path<String>,
    Json(form): Json<OfflineFormBody>,
) -> ApiResult<(StatusCode, axum::Json<FormReceiptView>)> {
    Ok((StatusCode::CREATED, axum::Json(s.app.ask_offline(&slug, form.into(), ip).await?.into())))
}

/// A library's policy page for staff serving its patrons.
#[utoipa::path(get, path = "/api/policies/{library}", tag = "desk", security(("staff" = [])),
    params(("library" = i64, Path, description = "the library's id")),
    responses(
        (status = 200, description = "the page (empty if none was written)", body = PolicyPageView),
        (status = 404, description = "`not_found`: no such library in my cooperative", body = ErrorBody),
    ))]
async fn policy(
    State(s): State<AppState>,
    CurrentStaff(staff): CurrentStaff,
    Path(library): Path<i64>,
) -> ApiResult<axum::Json<PolicyPageView>> {
    Ok(axum::Json(s.app.policy(&staff, LibraryId(library)).await?.into()))
}

/// A policy page's text.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct PolicyBody {
    /// Plain text.
    #[schema(max_length = 20000)]
    body: String,
}

/// Replace a library's policy page (its admins).
#[utoipa::path(put, path = "/api/policies/{library}", tag = "admin", security(("staff" = [])),
    params(("library" = i64, Path, description = "the library's id")),
    request_body = PolicyBody,
    responses(
        (status = 200, description = "the page now", body = PolicyPageView),
        (status = 403, description = "`forbidden`: the library's admins only", body = ErrorBody),
        (status = 404, description = "`not_found`: no such library, or another cooperative's", body = ErrorBody),
        (status = 422, description = "`invalid`: an over-long page", body = ErrorBody),
        (status = 429, description = "`too_many_changes`: I made 500 changes to accounts and settings today on this node (nothing changed)", body = ErrorBody),
    ))]
async fn set_policy(
    State(s): State<AppState>,
    CurrentStaff(staff): CurrentStaff,
    Path(library): Path<i64>,
    Json(b): Json<PolicyBody>,
) -> ApiResult<axum::Json<PolicyPageView>> {
    let id = LibraryId(library);
    s.app.set_policy(&staff, id, &b.body).await?;
    Ok(axum::Json(s.app.policy(&staff, id).await?.into()))
}

/// Which library's scripts.
#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
struct ScriptsQuery {
    /// The library whose patron I serve (a library of my cooperative); my
    /// own when left out.
    library: Option<i64>,
}

/// The scripts (canned messages) I may use: mine, a library's (my own, or
/// the one whose patron I serve: `library`), my cooperative's.
#[utoipa::path(get, path = "/api/scripts", tag = "desk", security(("staff" = [])),
    params(ScriptsQuery),
    responses(
        (status = 200, description = "the scripts", body = Vec<ScriptView>),
        (status = 404, description = "`not_found`: `library` names no library of my cooperative", body = ErrorBody),
    ))]
async fn scripts(
    State(s): State<AppState>,
    CurrentStaff(staff): CurrentStaff,
    Query(q): Query<ScriptsQuery>,
) -> ApiResult<axum::Json<Vec<ScriptView>>> {
    let scripts = s.app.scripts(&staff, q.library.map(LibraryId)).await?;
    Ok(axum::Json(scripts.into_iter().map(Into::into).collect()))
}

/// Whose a script is.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
enum ScriptScope {
    /// Mine.
    Personal,
    /// My library's (library admins).
    Library,
    /// My cooperative's (cooperative admins).
    Cooperative,
}

/// A new script.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct ScriptBody {
    /// personal (anyone), library (library admins) or cooperative (cooperative admins).
    #[schema(value_type = ScriptScope)]
    scope: String,
    /// For scope `library`: the library's id (a library of my cooperative
    /// whose admin I am: its own, its institution's or the cooperative's
    /// admins); my own library when left out.
    library: Option<i64>,
    /// What the picker shows.
    #[schema(max_length = 100)]
    title: String,
    /// What it inserts.
    body: String,
}

/// Save a script: personal (anyone), library (the library's admins and its
/// institution's and cooperative's), cooperative (cooperative admins).
#[utoipa::path(post, path = "/api/scripts", tag = "desk", security(("staff" = [])),
    request_body = ScriptBody,
    responses(
        (status = 201, description = "saved", body = ScriptView),
        (status = 403, description = "`forbidden`: a scope my role may not write, or a library I am not an admin of", body = ErrorBody),
        (status = 404, description = "`not_found`: `library` names no library of my cooperative", body = ErrorBody),
        (status = 422, description = "`invalid`: an unknown scope, a `library` with a scope other than `library`, an empty or over-long title or body", body = ErrorBody),
        (status = 429, description = "`too_many`: the owner holds 200 scripts already; `too_many_changes`: I made 500 changes to accounts and settings today on this node (nothing changed)", body = ErrorBody),
    ))]
async fn create_script(
    State(s): State<AppState>,
    CurrentStaff(staff): CurrentStaff,
    Json(b): Json<ScriptBody>,
) -> ApiResult<(StatusCode, axum::Json<ScriptView>)> {
    Ok((
        StatusCode::CREATED,
        axum::Json(s.app.create_script(&staff, &b.scope, b.library.map(LibraryId), &b.title, &b.body).await?.into()),
    ))
}

/// A script's new title and text.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct ScriptEdit {
    /// What the picker shows.
    #[schema(max_length = 100)]
    title: String,
    /// What it inserts.
    body: String,
}

/// Change the title and text of a script one may keep (its scope stays):
/// one's own; a library's (its admins); the cooperative's (its admins).
#[utoipa::path(put, path = "/api/scripts/{id}", tag = "desk", security(("staff" = [])),
    params(("id" = i64, Path, description = "the script")),
    request_body = ScriptEdit,
    responses(
        (status = 200, description = "the script now", body = ScriptView),
        (status = 403, description = "`forbidden`: a script of a library of my cooperative or of my cooperative that my role does not keep there", body = ErrorBody),
        (status = 404, description = "`not_found`: no such script, or one I do not see", body = ErrorBody),
        (status = 422, description = "`invalid`: an empty or over-long title or body", body = ErrorBody),
        (status = 429, description = "`too_many_changes`: I made 500 changes to accounts and settings today on this node (nothing changed)", body = ErrorBody),
    ))]
async fn update_script(
    State(s): State<AppState>,
    CurrentStaff(staff): CurrentStaff,
    Path(id): Path<i64>,
    Json(b): Json<ScriptEdit>,
) -> ApiResult<axum::Json<ScriptView>> {
    Ok(axum::Json(s.app.update_script(&staff, id, &b.title, &b.body).await?.into()))
}

/// Delete a script one may keep.
#[utoipa::path(delete, path = "/api/scripts/{id}", tag = "desk", security(("staff" = [])),
    params(("id" = i64, Path, description = "the script")),
    responses(
        (status = 200, description = "deleted", body = Deleted),
        (status = 403, description = "`forbidden`: a script of a library of my cooperative or of my cooperative that my role does not keep there", body = ErrorBody),
        (status = 404, description = "`not_found`: no such script, or one I do not see", body = ErrorBody),
        (status = 429, description = "`too_many_changes`: I made 500 changes to accounts and settings today on this node (nothing changed)", body = ErrorBody),
    ))]
async fn delete_script(
    State(s): State<AppState>,
    CurrentStaff(staff): CurrentStaff,
    Path(id): Path<i64>,
) -> ApiResult<axum::Json<Deleted>> {
    s.app.delete_script(&staff, id).await?;
    Ok(axum::Json(Deleted { deleted: id }))
}

/// Add or change a resolution code (cooperative admins); returns the codes.
#[utoipa::path(put, path = "/api/codes/{key}", tag = "admin", security(("staff" = [])),
    params(("key" = String, Path, description = "the code's key (the body's `key` must match)")),
    request_body = ResolutionCode,
    responses(
        (status = 200, description = "the cooperative's codes now", body = Vec<ResolutionCode>),
        (status = 403, description = "`forbidden`: cooperative admins only", body = ErrorBody),
        (status = 409, description = "`conflict`: another code in use has that label (in any letter case)", body = ErrorBody),
        (status = 422, description = "`invalid`: a key that does not match the path, a bad key or label", body = ErrorBody),
        (status = 429, description = "`too_many`: a new code, and the cooperative holds 100 already; `too_many_changes`: I made 500 changes to accounts and settings today on this node (nothing changed)", body = ErrorBody),
    ))]
async fn put_code(
    State(s): State<AppState>,
    CurrentStaff(staff): CurrentStaff,
    Path(key): Path<String>,
    Json(code): Json<ResolutionCode>,
) -> ApiResult<axum::Json<Vec<ResolutionCode>>> {
    if code.key != key {
        return Err(invalid("key", "the code's key must match the path"));
    }
    s.app.put_code(&staff, code).await?;
    Ok(axum::Json(s.app.codes(&staff).await?))
}
