//! The librarian's desk: the queue, accepting, chatting over REST (the same
//! use cases the WebSocket calls), ending, and resolution codes.

use super::auth::CurrentStaff;
use crate::error::{ApiResult, ErrorBody, Json};
use crate::error::{Path, Query};
use crate::http::views::{Ack, SessionTranscript, SessionView};
use crate::input::{sendable_kind, SendKind};
use crate::AppState;
use axum::extract::State;
use axum::http::{HeaderName, HeaderValue};
use refdesk_domain::chat::Message;
use refdesk_domain::event::QueueEntry;
use refdesk_domain::ids::SessionId;
use refdesk_domain::question::{read_scale, QuestionState, ResolutionCode};
use refdesk_domain::visibility::Viewer;
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// Routes of this module.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(queue))
        .routes(routes!(mine))
        .routes(routes!(session))
        .routes(routes!(accept))
        .routes(routes!(send))
        .routes(routes!(end))
        .routes(routes!(set_code))
        .routes(routes!(codes))
}

/// Waiting chats this staff member may serve, oldest first: the first 300
/// in line at most, as a socket's `queue` frame shows, and in the header
/// [`MORE`] how many more wait (the frame's `more`).
#[utoipa::path(get, path = "/api/queue", tag = "desk", security(("staff" = [])),
    responses((status = 200, description = "the queue: the first 300 in line at most", body = Vec<QueueEntry>,
        headers(("refdesk-more" = u64, description = "how many more wait beyond those listed (0: that is all)")))))]
async fn queue(
    State(s): State<AppState>,
    CurrentStaff(staff): CurrentStaff,
) -> ApiResult<([(HeaderName, HeaderValue); 1], axum::Json<Vec<QueueEntry>>)> {
    let mut waiting = s.app.queue(&staff).await?;
    let more = waiting.len().saturating_sub(crate::ws::connection::QUEUE_SHOWN);
    waiting.truncate(crate::ws::connection::QUEUE_SHOWN);
    Ok(([(MORE, HeaderValue::from(more))], axum::Json(waiting)))
}

/// The header of a list cut short that says how many more there are.
const MORE: HeaderName = HeaderName::from_static("refdesk-more");

/// Active chats this staff member is chatting in.
#[utoipa::path(get, path = "/api/sessions", tag = "desk", security(("staff" = [])),
    responses((status = 200, description = "my chats", body = Vec<SessionView>)))]
async fn mine(State(s): State<AppState>, CurrentStaff(staff): CurrentStaff) -> ApiResult<axum::Json<Vec<SessionView>>> {
    Ok(axum::Json(s.app.my_sessions(&staff).await?.into_iter().map(Into::into).collect()))
}

/// Where a page of a session's transcript starts.
#[derive(Deserialize, IntoParams)]
struct TranscriptParams {
    /// The lines after this one (default 0: from the first).
    after: Option<u64>,
}

/// A session and a page of the messages staff may see (notes included):
/// for the staff whose role covers it, and those of the library its
/// question was referred to.
#[utoipa::path(get, path = "/api/sessions/{id}", tag = "desk", security(("staff" = [])),
    params(("id" = i64, Path, description = "the session"), TranscriptParams),
    responses(
        (status = 200, description = "the session and a page of its transcript", body = SessionTranscript),
        (status = 400, description = "`bad_request`: `after` is not a number", body = ErrorBody),
        (status = 404, description = "`not_found`: no such chat in my scope (a chat I had for another library is in it while it goes on and for a day after its end)", body = ErrorBody),
    ))]
async fn session(
    State(s): State<AppState>,
    CurrentStaff(staff): CurrentStaff,
    Path(id): Path<i64>,
    Query(q): Query<TranscriptParams>,
) -> ApiResult<axum::Json<SessionTranscript>> {
    let after = q.after.unwrap_or(0);
    let (session, messages, more) = s.app.transcript(&Viewer::Staff(staff), SessionId(id), after).await?;
    Ok(axum::Json(SessionTranscript { session: session.into(), messages, more }))
}

/// Accept a waiting chat (atomic: one winner, I6).
#[utoipa::path(post, path = "/api/sessions/{id}/accept", tag = "desk", security(("staff" = [])),
    params(("id" = i64, Path, description = "the session")),
    responses(
        (status = 200, description = "accepted: the chat is mine", body = SessionView),
        (status = 403, description = "`forbidden`: not a chat I may serve (yet)", body = ErrorBody),
        (status = 404, description = "`not_found`: no such chat in my scope", body = ErrorBody),
        (status = 409, description = "`conflict`: already accepted, or ended", body = ErrorBody),
    ))]
async fn accept(
    State(s): State<AppState>,
    CurrentStaff(staff): CurrentStaff,
    Path(id): Path<i64>,
) -> ApiResult<axum::Json<SessionView>> {
    Ok(axum::Json(s.app.accept(&staff, SessionId(id)).await?.into()))
}

/// A line from staff.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct Send {
    /// `message` (default) or `note` (staff only).
    #[schema(value_type = Option<SendKind>)]
    kind: Option<String>,
    /// Plain text, at most `limits.max_message_chars` characters.
    #[schema(min_length = 1)]
    body: String,
    /// The sender's id for idempotent re-sends (I4), at most 64 characters.
    #[schema(max_length = 64)]
    client_id: Option<String>,
}

/// Send a message or a librarian note; answers once it is committed (I2).
#[utoipa::path(post, path = "/api/sessions/{id}/messages", tag = "desk", security(("staff" = [])),
    params(("id" = i64, Path, description = "the session")),
    request_body = Send,
    responses(
        (status = 200, description = "stored (or already stored under this client id)", body = Ack),
        (status = 403, description = "`forbidden`: not mine to write in, or not in this mode", body = ErrorBody),
        (status = 404, description = "`not_found`: no such chat in my scope", body = ErrorBody),
        (status = 409, description = "`conflict`: the chat has ended", body = ErrorBody),
        (status = 422, description = "`invalid`: a kind other than message or note, an empty or over-long body, a bad client id", body = ErrorBody),
        (status = 429, description = "`chat_full`: the chat holds `limits.max_chat_lines` lines and the hundred staff may add past them; `too_many_lines`: I wrote `limits.staff_lines_per_day` lines and notes today on this node", body = ErrorBody),
    ))]
async fn send(
    State(s): State<AppState>,
    CurrentStaff(staff): CurrentStaff,
    Path(id): Path<i64>,
    Json(body): Json<Send>,
) -> ApiResult<axum::Json<Ack>> {
    let kind = sendable_kind(body.kind.as_deref())?;
    let a = s.app.staff_send(&staff, SessionId(id), kind, &body.body, body.client_id.as_deref()).await?;
    Ok(axum::Json(a.into()))
}

/// End the chat; returns the "Chat session has ended" line (R5).
#[utoipa::path(post, path = "/api/sessions/{id}/end", tag = "desk", security(("staff" = [])),
    params(("id" = i64, Path, description = "the session")),
    responses(
        (status = 200, description = "ended", body = Message),
        (status = 403, description = "`forbidden`: not mine to end", body = ErrorBody),
        (status = 404, description = "`not_found`: no such chat in my scope", body = ErrorBody),
        (status = 409, description = "`conflict`: already ended", body = ErrorBody),
    ))]
async fn end(
    State(s): State<AppState>,
    CurrentStaff(staff): CurrentStaff,
    Path(id): Path<i64>,
) -> ApiResult<axum::Json<Message>> {
    Ok(axum::Json(s.app.staff_end(&staff, SessionId(id)).await?))
}

/// A resolution code to set.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct SetCode {
    /// The code's key (see `GET /api/codes`).
    code: String,
    /// The effort it took on the READ scale, 1–6 (optional; kept if absent).
    #[schema(minimum = 1, maximum = 6)]
    read_scale: Option<i64>,
}

/// Set or change the resolution code; it decides the question's status (R6).
#[utoipa::path(post, path = "/api/sessions/{id}/code", tag = "desk", security(("staff" = [])),
    params(("id" = i64, Path, description = "the session")),
    request_body = SetCode,
    responses(
        (status = 200, description = "the question's state after the code", body = QuestionState),
        (status = 403, description = "`forbidden`: only the chatting librarian or an admin in scope; a chatting librarian from outside the patron's library's scope (cooperative coverage) once the chat ended over a day ago", body = ErrorBody),
        (status = 404, description = "`not_found`: no such chat in my scope", body = ErrorBody),
        (status = 409, description = "`conflict`: the chat was never accepted", body = ErrorBody),
        (status = 422, description = "`invalid`: no such code in my cooperative", body = ErrorBody),
        (status = 429, description = "`chat_full`: the chat holds `limits.max_chat_lines` lines and the hundred staff may add past them; `too_many_lines`: I wrote `limits.staff_lines_per_day` lines, notes and code sets today on this node (a code set writes a line; a chat's first code is never refused)", body = ErrorBody),
    ))]
async fn set_code(
    State(s): State<AppState>,
    CurrentStaff(staff): CurrentStaff,
    Path(id): Path<i64>,
    Json(body): Json<SetCode>,
) -> ApiResult<axum::Json<QuestionState>> {
    Ok(axum::Json(s.app.set_code(&staff, SessionId(id), &body.code, read_scale(body.read_scale)?).await?))
}

/// The resolution codes of my cooperative, in picker order.
#[utoipa::path(get, path = "/api/codes", tag = "desk", security(("staff" = [])),
    responses((status = 200, description = "the codes", body = Vec<ResolutionCode>)))]
async fn codes(
    State(s): State<AppState>,
    CurrentStaff(staff): CurrentStaff,
) -> ApiResult<axum::Json<Vec<ResolutionCode>>> {
    Ok(axum::Json(s.app.codes(&staff).await?))
}
