//! The patron's side: start a chat at a library's entry point, read the
//! transcript, end the chat. The patron is authorised by the chat's secret
//! token (`Authorization: Bearer …`), returned once when the chat starts.

use crate::error::Path;
use crate::error::{ApiError, ApiResult, Json};
use crate::AppState;
use axum::extract::{FromRequestParts, State};
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::Router;
use refdesk_app::{AppError, StartChat, Started};
use refdesk_domain::chat::Message;
use refdesk_domain::visibility::Viewer;
use refdesk_store::SessionRecord;
use serde::Serialize;

/// Routes of this module.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/libraries", get(libraries).post(create_library))
        .route("/api/libraries/{slug}/chats", post(start))
        .route("/api/chat", get(chat))
        .route("/api/chat/end", post(end))
        .route("/api/chat/transcript", post(transcript))
        .route("/api/chat/rating", post(rating))
}

#[derive(Serialize)]
struct LibraryView {
    id: refdesk_domain::ids::LibraryId,
    slug: String,
    name: String,
}

async fn libraries(State(state): State<AppState>) -> ApiResult<axum::Json<Vec<LibraryView>>> {
    let libs = state.app.libraries().await?;
    Ok(axum::Json(
        libs.into_iter().map(|l| LibraryView { id: l.placement.library, slug: l.slug, name: l.name }).collect(),
    ))
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct NewLibrary {
    slug: String,
    name: String,
    /// Cooperative admins may name an institution of their cooperative.
    #[serde(default)]
    institution: Option<refdesk_domain::ids::InstitutionId>,
}

async fn create_library(
    State(state): State<AppState>,
    crate::http::auth::CurrentStaff(staff): crate::http::auth::CurrentStaff,
    Json(b): Json<NewLibrary>,
) -> ApiResult<(StatusCode, axum::Json<LibraryView>)> {
    let l = state.app.add_library(Some(&staff), b.institution, &b.slug, &b.name).await?;
    Ok((StatusCode::CREATED, axum::Json(LibraryView { id: l.placement.library, slug: l.slug, name: l.name })))
}

async fn start(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    Path(slug): Path<String>,
    Json(form): Json<StartChat>,
) -> ApiResult<(StatusCode, axum::Json<Started>)> {
    let started = state.app.start_chat(&slug, form, ip).await?;
    Ok((StatusCode::CREATED, axum::Json(started)))
}

/// The chat as the patron sees it.
#[derive(Serialize)]
struct PatronChat {
    session: refdesk_domain::ids::SessionId,
    state: refdesk_domain::chat::SessionState,
    #[serde(flatten)]
    page: refdesk_app::PatronPage,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct PageQuery {
    after: Option<u64>,
    limit: Option<u32>,
}

/// The patron's chat, a page at a time (`?after=&limit=`, 200 lines by default).
async fn chat(
    State(state): State<AppState>,
    PatronToken(rec): PatronToken,
    crate::error::Query(q): crate::error::Query<PageQuery>,
) -> ApiResult<axum::Json<PatronChat>> {
    let page = state.app.patron_page(&rec, q.after.unwrap_or(0), q.limit.unwrap_or(200)).await?;
    Ok(axum::Json(PatronChat { session: rec.ctx.id, state: rec.state, page }))
}

async fn end(State(state): State<AppState>, PatronToken(rec): PatronToken) -> ApiResult<axum::Json<Message>> {
    let viewer = Viewer::Patron { session: rec.ctx.id };
    let line = state.app.patron_end(&rec).await?;
    // What the patron gets back passes the visibility function like the rest.
    if !refdesk_domain::visibility::sees(
        &viewer,
        refdesk_domain::visibility::Item::Message { ctx: &rec.ctx, message: &line },
    ) {
        return Err(AppError::Internal("the end-of-chat line is not visible to the patron".into()).into());
    }
    Ok(axum::Json(line))
}

#[derive(serde::Deserialize)]
struct TranscriptRequest {
    /// Where to send it; empty or absent cancels the request.
    email: Option<String>,
}

async fn transcript(
    State(state): State<AppState>,
    PatronToken(rec): PatronToken,
    ClientIp(ip): ClientIp,
    Json(body): Json<TranscriptRequest>,
) -> ApiResult<axum::Json<serde_json::Value>> {
    let to = state.app.request_transcript(&rec, body.email.as_deref(), ip).await?;
    Ok(axum::Json(serde_json::json!({ "transcript_to": to })))
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct RatingRequest {
    rating: u8,
    comment: Option<String>,
}

async fn rating(
    State(state): State<AppState>,
    PatronToken(rec): PatronToken,
    Json(body): Json<RatingRequest>,
) -> ApiResult<axum::Json<serde_json::Value>> {
    state.app.patron_rate(&rec, body.rating, body.comment.as_deref()).await?;
    Ok(axum::Json(serde_json::json!({ "rating": body.rating })))
}

/// The chat opened by the bearer token; 401 otherwise.
pub struct PatronToken(pub SessionRecord);

impl FromRequestParts<AppState> for PatronToken {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let token = parts
            .headers
            .get(AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .ok_or(AppError::Unauthenticated)?;
        Ok(PatronToken(state.app.patron_session(token.trim()).await?))
    }
}

/// The client's address: the peer, or behind a trusted proxy the address it
/// forwarded (see [`crate::limit::client_ip_of`]).
pub struct ClientIp(pub Option<std::net::IpAddr>);

impl FromRequestParts<AppState> for ClientIp {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let peer = parts.extensions.get::<axum::extract::ConnectInfo<std::net::SocketAddr>>().map(|c| c.0.ip());
        Ok(ClientIp(peer.map(|p| crate::limit::client_ip_of(p, &parts.headers, &state.trusted_proxies))))
    }
}
