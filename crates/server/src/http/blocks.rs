//! Abusive patrons: a librarian warns or blocks the patron of a chat; the
//! library's admins list blocks (the audit list), lift them, and say
//! whether a blocked patron may still send the offline form.

use crate::error::{ApiResult, ErrorBody, Json, Path};
use crate::http::auth::CurrentStaff;
use crate::http::views::{Ack, BlockView, BlockedPatrons};
use crate::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use refdesk_domain::ids::SessionId;
use serde::Deserialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// Routes of this module.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(warn))
        .routes(routes!(block))
        .routes(routes!(list))
        .routes(routes!(lift))
        .routes(routes!(policy, set_policy))
}

/// Warn the patron: a canned line asking for respect, as the librarian's message.
#[utoipa::path(post, path = "/api/sessions/{id}/warn", tag = "abuse", security(("staff" = [])),
    params(("id" = i64, Path, description = "the session")),
    responses(
        (status = 200, description = "the warning, stored", body = Ack),
        (status = 403, description = "`forbidden`: not a chat I may write in", body = ErrorBody),
        (status = 404, description = "`not_found`: no such chat in my scope", body = ErrorBody),
        (status = 409, description = "`conflict`: the chat has ended", body = ErrorBody),
    ))]
async fn warn(
    State(s): State<AppState>,
    CurrentStaff(staff): CurrentStaff,
    Path(id): Path<i64>,
) -> ApiResult<axum::Json<Ack>> {
    Ok(axum::Json(s.app.warn(&staff, SessionId(id)).await?.into()))
}

/// A block to put on a chat's patron.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct NewBlock {
    /// Why: for staff only, never shown to the patron.
    #[schema(max_length = 500)]
    reason: String,
    /// How long (default `limits.block_hours`, 24; at most `limits.max_block_hours`, 720).
    #[serde(default)]
    #[schema(minimum = 1)]
    hours: Option<u64>,
    /// Whether the block holds the chat's network too — every patron there
    /// (a campus, a library's Wi-Fi, a mobile carrier's shared address) —
    /// or the patron's browser alone (default `true`: both). A chat with
    /// no browser id (not from the widget) is blocked by its network.
    #[serde(default = "both")]
    network: bool,
}

fn both() -> bool {
    true
}

/// End a live chat and block its patron by browser and (unless `network`
/// is `false`) network until the block runs out; a waiting chat's patron: the library's admins; an ended
/// chat's patron: its librarian within an hour of the end, or the library's
/// admins.
#[utoipa::path(post, path = "/api/sessions/{id}/block", tag = "abuse", security(("staff" = [])),
    params(("id" = i64, Path, description = "the session")),
    request_body = NewBlock,
    responses(
        (status = 201, description = "blocked", body = BlockView),
        (status = 403, description = "`forbidden`: not mine to block", body = ErrorBody),
        (status = 404, description = "`not_found`: no such chat in my scope", body = ErrorBody),
        (status = 409, description = "`conflict`: the chat's patron is blocked already (lift that block to block them again)", body = ErrorBody),
        (status = 422, description = "`invalid`: no reason, hours out of bounds, nothing to block by, or a chat with no browser id (not from the library's page) without `network: true`", body = ErrorBody),
        (status = 429, description = "`too_many_blocks`: the chat's patron was blocked ten times already", body = ErrorBody),
    ))]
async fn block(
    State(s): State<AppState>,
    CurrentStaff(staff): CurrentStaff,
    Path(id): Path<i64>,
    Json(b): Json<NewBlock>,
) -> ApiResult<(StatusCode, axum::Json<BlockView>)> {
    let created = s.app.block(&staff, SessionId(id), &b.reason, b.hours, b.network).await?;
    Ok((StatusCode::CREATED, axum::Json(created.into())))
}

/// Blocks on patrons in my scope, newest first: the audit list (library
/// admins and above).
#[utoipa::path(get, path = "/api/blocks", tag = "abuse", security(("staff" = [])),
    responses(
        (status = 200, description = "the blocks", body = Vec<BlockView>),
        (status = 403, description = "`forbidden`: library admins and above", body = ErrorBody),
    ))]
async fn list(State(s): State<AppState>, CurrentStaff(staff): CurrentStaff) -> ApiResult<axum::Json<Vec<BlockView>>> {
    Ok(axum::Json(s.app.blocks(&staff).await?.into_iter().map(Into::into).collect()))
}

/// Lift a block before it runs out (the library's admins); the question's
/// timeline records it.
#[utoipa::path(post, path = "/api/blocks/{id}/lift", tag = "abuse", security(("staff" = [])),
    params(("id" = i64, Path, description = "the block")),
    responses(
        (status = 200, description = "lifted (one already lifted: as it was, nothing changes)", body = BlockView),
        (status = 404, description = "`not_found`: no such block in my scope as an admin", body = ErrorBody),
    ))]
async fn lift(
    State(s): State<AppState>,
    CurrentStaff(staff): CurrentStaff,
    Path(id): Path<i64>,
) -> ApiResult<axum::Json<BlockView>> {
    Ok(axum::Json(s.app.lift_block(&staff, id).await?.into()))
}

/// Whether a blocked patron may still send this library's offline form (its admins).
#[utoipa::path(get, path = "/api/libraries/{slug}/blocked-patrons", tag = "abuse", security(("staff" = [])),
    params(("slug" = String, Path, description = "the library's URL name")),
    responses(
        (status = 200, description = "the library's setting", body = BlockedPatrons),
        (status = 403, description = "`forbidden`: the library's admins only", body = ErrorBody),
        (status = 404, description = "`not_found`: no such library", body = ErrorBody),
    ))]
async fn policy(
    State(s): State<AppState>,
    CurrentStaff(staff): CurrentStaff,
    Path(slug): Path<String>,
) -> ApiResult<axum::Json<BlockedPatrons>> {
    Ok(axum::Json(BlockedPatrons { may_use_form: s.app.blocked_may_ask(&staff, &slug).await? }))
}

/// Set whether a blocked patron may still send this library's offline form (its admins).
#[utoipa::path(put, path = "/api/libraries/{slug}/blocked-patrons", tag = "abuse", security(("staff" = [])),
    params(("slug" = String, Path, description = "the library's URL name")),
    request_body = BlockedPatrons,
    responses(
        (status = 200, description = "the library's setting now", body = BlockedPatrons),
        (status = 403, description = "`forbidden`: the library's admins only", body = ErrorBody),
        (status = 404, description = "`not_found`: no such library", body = ErrorBody),
        (status = 429, description = "`too_many_changes`: I made 500 changes to accounts and settings today on this node (nothing changed)", body = ErrorBody),
    ))]
async fn set_policy(
    State(s): State<AppState>,
    CurrentStaff(staff): CurrentStaff,
    Path(slug): Path<String>,
    Json(p): Json<BlockedPatrons>,
) -> ApiResult<axum::Json<BlockedPatrons>> {
    s.app.set_blocked_may_ask(&staff, &slug, p.may_use_form).await?;
    Ok(axum::Json(p))
}
