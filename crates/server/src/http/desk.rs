//! The librarian's desk: the queue, accepting, chatting over REST (the same
//! use cases the WebSocket calls), ending, resolution codes, and the
//! question list.

use super::auth::CurrentStaff;
use crate::error::Path;
use crate::error::{ApiResult, Json};
use crate::AppState;
use axum::extract::State;
use axum::routing::{get, post};
use axum::Router;
use refdesk_domain::chat::{Message, MessageKind};
use refdesk_domain::event::QueueEntry;
use refdesk_domain::ids::SessionId;
use refdesk_domain::question::{QuestionState, ResolutionCode};
use refdesk_domain::visibility::Viewer;
use refdesk_store::SessionRecord;
use serde::{Deserialize, Serialize};

/// Routes of this module.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/queue", get(queue))
        .route("/api/sessions", get(mine))
        .route("/api/sessions/{id}", get(session))
        .route("/api/sessions/{id}/accept", post(accept))
        .route("/api/sessions/{id}/messages", post(send))
        .route("/api/sessions/{id}/end", post(end))
        .route("/api/sessions/{id}/code", post(set_code))
        .route("/api/codes", get(codes))
}

async fn queue(State(s): State<AppState>, CurrentStaff(staff): CurrentStaff) -> ApiResult<axum::Json<Vec<QueueEntry>>> {
    Ok(axum::Json(s.app.queue(&staff).await?))
}

async fn mine(
    State(s): State<AppState>,
    CurrentStaff(staff): CurrentStaff,
) -> ApiResult<axum::Json<Vec<SessionRecord>>> {
    Ok(axum::Json(s.app.my_sessions(&staff).await?))
}

/// A session with the messages staff may see.
#[derive(Serialize)]
struct SessionView {
    session: SessionRecord,
    messages: Vec<Message>,
}

async fn session(
    State(s): State<AppState>,
    CurrentStaff(staff): CurrentStaff,
    Path(id): Path<i64>,
) -> ApiResult<axum::Json<SessionView>> {
    let (session, messages) = s.app.transcript(&Viewer::Staff(staff), SessionId(id)).await?;
    Ok(axum::Json(SessionView { session, messages }))
}

async fn accept(
    State(s): State<AppState>,
    CurrentStaff(staff): CurrentStaff,
    Path(id): Path<i64>,
) -> ApiResult<axum::Json<SessionRecord>> {
    Ok(axum::Json(s.app.accept(&staff, SessionId(id)).await?))
}

#[derive(Deserialize)]
struct Send {
    kind: Option<String>,
    body: String,
    client_id: Option<String>,
}

/// The acknowledgement of a committed message.
#[derive(Serialize)]
pub struct Ack {
    /// Its sequence number.
    pub seq: u64,
    /// True if the client id had been used before (nothing new was stored).
    pub duplicate: bool,
    /// The stored message.
    pub message: Message,
}

/// Parses a message kind a person may send.
pub fn sendable_kind(kind: Option<&str>) -> Result<MessageKind, crate::error::ApiError> {
    match kind.unwrap_or("message") {
        "message" => Ok(MessageKind::Message),
        "note" => Ok(MessageKind::Note),
        other => Err(crate::error::ApiError {
            status: axum::http::StatusCode::UNPROCESSABLE_ENTITY,
            code: "invalid",
            message: format!("invalid kind: {other:?}; send \"message\" or \"note\""),
        }),
    }
}

async fn send(
    State(s): State<AppState>,
    CurrentStaff(staff): CurrentStaff,
    Path(id): Path<i64>,
    Json(body): Json<Send>,
) -> ApiResult<axum::Json<Ack>> {
    let kind = sendable_kind(body.kind.as_deref())?;
    let a = s.app.staff_send(&staff, SessionId(id), kind, &body.body, body.client_id.as_deref()).await?;
    Ok(axum::Json(Ack { seq: a.message.seq, duplicate: a.duplicate, message: a.message }))
}

async fn end(
    State(s): State<AppState>,
    CurrentStaff(staff): CurrentStaff,
    Path(id): Path<i64>,
) -> ApiResult<axum::Json<Message>> {
    Ok(axum::Json(s.app.staff_end(&staff, SessionId(id)).await?))
}

#[derive(Deserialize)]
struct SetCode {
    code: String,
}

async fn set_code(
    State(s): State<AppState>,
    CurrentStaff(staff): CurrentStaff,
    Path(id): Path<i64>,
    Json(body): Json<SetCode>,
) -> ApiResult<axum::Json<QuestionState>> {
    Ok(axum::Json(s.app.set_code(&staff, SessionId(id), &body.code).await?))
}

async fn codes(
    State(s): State<AppState>,
    CurrentStaff(staff): CurrentStaff,
) -> ApiResult<axum::Json<Vec<ResolutionCode>>> {
    Ok(axum::Json(s.app.codes(&staff).await?))
}
