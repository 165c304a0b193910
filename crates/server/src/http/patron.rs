//! The patron's side: start a chat at a library's entry point, read the
//! transcript, end the chat. The patron is authorised by the chat's secret
//! token (`Authorization: Bearer …`), returned once when the chat starts.

use crate::error::Path;
use crate::error::{ApiResult, ErrorBody, Json};
use crate::http::auth::CurrentStaff;
use crate::http::views::{LibraryView, PatronChat, Rated, StartedView, TranscriptTo};
use crate::limit::{Credential, Refused};
use crate::AppState;
use axum::extract::{FromRequestParts, State};
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use refdesk_app::{AppError, StartChat};
use refdesk_domain::chat::Message;
use refdesk_domain::ids::InstitutionId;
use refdesk_domain::org::WidgetLook;
use refdesk_domain::visibility::Viewer;
use refdesk_store::{LibraryRecord, SessionRecord};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// Routes of this module.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(libraries, create_library))
        .routes(routes!(embedding, set_embedding))
        .routes(routes!(reply_to, set_reply_to))
        .routes(routes!(closing, set_closing))
        .routes(routes!(set_widget))
        .routes(routes!(start))
        .routes(routes!(chat))
        .routes(routes!(end))
        .routes(routes!(transcript))
        .routes(routes!(rating))
}

/// Libraries and their entry points (read at most every 5 seconds on a
/// node: one added on another node may take that long to show).
#[utoipa::path(get, path = "/api/libraries", tag = "patron",
    responses((status = 200, description = "every library", body = Vec<LibraryView>)))]
async fn libraries(State(state): State<AppState>) -> ApiResult<axum::response::Response> {
    let libs = state.app.listed_libraries().await?;
    let json = state.listed_json.encoded(&libs)?;
    Ok(([(axum::http::header::CONTENT_TYPE, "application/json")], json).into_response())
}

/// The open list of libraries as last encoded, with the list it was
/// encoded from: anyone may ask for it as often as they like, and a large
/// cooperative's list is a few hundred kilobytes, so it is encoded once
/// per read of the list (every few seconds at most), not once per request.
#[derive(Default)]
pub struct ListedJson(std::sync::Mutex<Option<(Arc<Vec<LibraryRecord>>, axum::body::Bytes)>>);

impl ListedJson {
    fn encoded(&self, libs: &Arc<Vec<LibraryRecord>>) -> Result<axum::body::Bytes, AppError> {
        let mut kept = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((_, json)) = kept.as_ref().filter(|(from, _)| Arc::ptr_eq(from, libs)) {
            return Ok(json.clone());
        }
        let views: Vec<LibraryView> = libs.iter().cloned().map(Into::into).collect();
        let json = axum::body::Bytes::from(
            serde_json::to_vec(&views)
                .map_err(|e| AppError::Internal(format!("encoding the libraries: {e}").into()))?,
        );
        *kept = Some((libs.clone(), json.clone()));
        Ok(json)
    }
}

/// A new library.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct NewLibrary {
    /// URL name, as in `/ask/{slug}`.
    slug: String,
    /// Display name.
    name: String,
    /// Cooperative admins may name an institution of their cooperative
    /// (default: their own).
    #[serde(default)]
    institution: Option<InstitutionId>,
}

/// Create a library in my institution, or (cooperative admins) in a named
/// institution of my cooperative; its entry point works at once.
#[utoipa::path(post, path = "/api/libraries", tag = "admin", security(("staff" = [])),
    request_body = NewLibrary,
    responses(
        (status = 201, description = "created", body = LibraryView),
        (status = 403, description = "`forbidden`: institution or cooperative admins only, in scope", body = ErrorBody),
        (status = 404, description = "`not_found`: no such institution", body = ErrorBody),
        (status = 409, description = "`conflict`: the slug is taken, or another library of the cooperative has that name (as a reader tells names apart: in any letter case, spaces, full-width forms and characters that show as nothing aside, letters of other scripts drawn alike as one: a Cyrillic \"Јое\" is \"Joe\")", body = ErrorBody),
        (status = 422, description = "`invalid`: a bad slug, or an empty or over-long name", body = ErrorBody),
        (status = 429, description = "`too_many`: the cooperative holds 2,000 libraries already; `too_many_changes`: I made 500 changes to accounts and settings today on this node (nothing changed)", body = ErrorBody),
    ))]
async fn create_library(
    State(state): State<AppState>,
    CurrentStaff(staff): CurrentStaff,
    Json(b): Json<NewLibrary>,
) -> ApiResult<(StatusCode, axum::Json<LibraryView>)> {
    let l = state.app.add_library(Some(&staff), b.institution, &b.slug, &b.name).await?;
    Ok((StatusCode::CREATED, axum::Json(l.into())))
}

/// The web sites allowed to show a library's chat in a frame: its widget's
/// pages. Each an origin (`https://www.example.org`, a port if not the
/// scheme's, `https://*.example.org` for every subdomain); none: any site.
#[derive(Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct EmbedSites {
    /// Origins, at most 20; empty: any site may show the chat.
    #[schema(max_items = 20)]
    sites: Vec<String>,
}

/// The sites allowed to show this library's chat (its admins).
#[utoipa::path(get, path = "/api/libraries/{slug}/embedding", tag = "admin", security(("staff" = [])),
    params(("slug" = String, Path, description = "the library's URL name")),
    responses(
        (status = 200, description = "the library's setting", body = EmbedSites),
        (status = 403, description = "`forbidden`: the library's admins only", body = ErrorBody),
        (status = 404, description = "`not_found`: no such library", body = ErrorBody),
    ))]
async fn embedding(
    State(s): State<AppState>,
    CurrentStaff(staff): CurrentStaff,
    Path(slug): Path<String>,
) -> ApiResult<axum::Json<EmbedSites>> {
    Ok(axum::Json(EmbedSites { sites: s.app.embed_sites(&staff, &slug).await? }))
}

/// Say which sites may show this library's chat in a frame (its admins):
/// `/ask/{slug}` then carries `Content-Security-Policy: frame-ancestors`
/// with them (at once on this node, within 10 s on the others), and a
/// browser shows the chat on no other site. An empty list lets any site.
#[utoipa::path(put, path = "/api/libraries/{slug}/embedding", tag = "admin", security(("staff" = [])),
    params(("slug" = String, Path, description = "the library's URL name")),
    request_body = EmbedSites,
    responses(
        (status = 200, description = "the library's setting now, as written back (lower case, each once)", body = EmbedSites),
        (status = 403, description = "`forbidden`: the library's admins only", body = ErrorBody),
        (status = 404, description = "`not_found`: no such library", body = ErrorBody),
        (status = 422, description = "`invalid`: more than 20 sites, or one that is not an origin (field `sites`)", body = ErrorBody),
        (status = 429, description = "`too_many_changes`: I made 500 changes to accounts and settings today on this node (nothing changed)", body = ErrorBody),
    ))]
async fn set_embedding(
    State(s): State<AppState>,
    CurrentStaff(staff): CurrentStaff,
    Path(slug): Path<String>,
    Json(b): Json<EmbedSites>,
) -> ApiResult<axum::Json<EmbedSites>> {
    Ok(axum::Json(EmbedSites { sites: s.app.set_embed_sites(&staff, &slug, &b.sites).await? }))
}

/// Where patrons' replies to a library's e-mails go.
#[derive(Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct ReplyTo {
    /// An e-mail address (the library's reference desk), or `null`: none,
    /// replies go to the service's `mail.from`. Required: a body without
    /// it is refused, never taken as null.
    #[schema(required = true)]
    #[serde(deserialize_with = "crate::input::nullable")]
    reply_to: Option<String>,
}

/// Where patrons' replies to this library's e-mails go (its admins).
#[utoipa::path(get, path = "/api/libraries/{slug}/reply-to", tag = "admin", security(("staff" = [])),
    params(("slug" = String, Path, description = "the library's URL name")),
    responses(
        (status = 200, description = "the library's setting", body = ReplyTo),
        (status = 403, description = "`forbidden`: the library's admins only", body = ErrorBody),
        (status = 404, description = "`not_found`: no such library", body = ErrorBody),
    ))]
async fn reply_to(
    State(s): State<AppState>,
    CurrentStaff(staff): CurrentStaff,
    Path(slug): Path<String>,
) -> ApiResult<axum::Json<ReplyTo>> {
    Ok(axum::Json(ReplyTo { reply_to: s.app.reply_to(&staff, &slug).await? }))
}

/// Say where patrons' replies to this library's e-mails (answers,
/// transcripts) go: each is sent with `Reply-To: <library name> <address>`
/// (mail already queued too); `null` or blank: none.
#[utoipa::path(put, path = "/api/libraries/{slug}/reply-to", tag = "admin", security(("staff" = [])),
    params(("slug" = String, Path, description = "the library's URL name")),
    request_body = ReplyTo,
    responses(
        (status = 200, description = "the library's setting now, as written back (trimmed)", body = ReplyTo),
        (status = 403, description = "`forbidden`: the library's admins only", body = ErrorBody),
        (status = 404, description = "`not_found`: no such library", body = ErrorBody),
        (status = 422, description = "`invalid`: not an address mail can be sent to (field `reply_to`)", body = ErrorBody),
        (status = 429, description = "`too_many_changes`: I made 500 changes to accounts and settings today on this node (nothing changed)", body = ErrorBody),
    ))]
async fn set_reply_to(
    State(s): State<AppState>,
    CurrentStaff(staff): CurrentStaff,
    Path(slug): Path<String>,
    Json(b): Json<ReplyTo>,
) -> ApiResult<axum::Json<ReplyTo>> {
    Ok(axum::Json(ReplyTo { reply_to: s.app.set_reply_to(&staff, &slug, b.reply_to.as_deref()).await? }))
}

/// Whether a library's chat is closed to new patrons, and what they read.
#[derive(Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct Closing {
    /// The notice patrons read instead of the chat and the question form
    /// (one line, at most 500 characters: "Closed for the holidays until
    /// 2 January; call 555-0100"), or `null`: open. Required: a body
    /// without it is refused, never taken as null.
    #[schema(required = true)]
    #[serde(deserialize_with = "crate::input::nullable")]
    notice: Option<String>,
}

/// Whether this library's chat is closed to new patrons (its admins).
#[utoipa::path(get, path = "/api/libraries/{slug}/closing", tag = "admin", security(("staff" = [])),
    params(("slug" = String, Path, description = "the library's URL name")),
    responses(
        (status = 200, description = "the library's setting", body = Closing),
        (status = 403, description = "`forbidden`: the library's admins only", body = ErrorBody),
        (status = 404, description = "`not_found`: no such library", body = ErrorBody),
    ))]
async fn closing(
    State(s): State<AppState>,
    CurrentStaff(staff): CurrentStaff,
    Path(slug): Path<String>,
) -> ApiResult<axum::Json<Closing>> {
    Ok(axum::Json(Closing { notice: s.app.closed_notice(&staff, &slug).await? }))
}

/// Close this library's chat to new patrons with a notice (a holiday, the
/// library leaving the service), or open it again (`null` or blank). While
/// closed, its page, its widget and the status say the notice, and a new
/// chat or offline question is refused (`409 closed`); chats going on and
/// patrons already waiting are not touched. At once on this node, within
/// 10 s on the others.
#[utoipa::path(put, path = "/api/libraries/{slug}/closing", tag = "admin", security(("staff" = [])),
    params(("slug" = String, Path, description = "the library's URL name")),
    request_body = Closing,
    responses(
        (status = 200, description = "the library's setting now, as written back (trimmed)", body = Closing),
        (status = 403, description = "`forbidden`: the library's admins only", body = ErrorBody),
        (status = 404, description = "`not_found`: no such library", body = ErrorBody),
        (status = 422, description = "`invalid`: more than 500 characters, more than one line, or characters that turn the text around (field `notice`)", body = ErrorBody),
        (status = 429, description = "`too_many_changes`: I made 500 changes to accounts and settings today on this node (nothing changed)", body = ErrorBody),
    ))]
async fn set_closing(
    State(s): State<AppState>,
    CurrentStaff(staff): CurrentStaff,
    Path(slug): Path<String>,
    Json(b): Json<Closing>,
) -> ApiResult<axum::Json<Closing>> {
    Ok(axum::Json(Closing { notice: s.app.set_closed_notice(&staff, &slug, b.notice.as_deref()).await? }))
}

/// Set how this library's widget button looks on its site: its words on
/// and off duty, its colours, its corner (each `null` or left out: the
/// default). Every page carrying the library's snippet shows it at the
/// widget's next status read (30 s at most), at once from this node and
/// within 10 s from the others; a page's own `data-` attributes come first.
#[utoipa::path(put, path = "/api/libraries/{slug}/widget", tag = "admin", security(("staff" = [])),
    params(("slug" = String, Path, description = "the library's URL name")),
    request_body = WidgetLook,
    responses(
        (status = 200, description = "the look as kept (words trimmed, colours in lower case)", body = WidgetLook),
        (status = 403, description = "`forbidden`: the library's admins only", body = ErrorBody),
        (status = 404, description = "`not_found`: no such library", body = ErrorBody),
        (status = 422, description = "`invalid`: words over 80 characters or on several lines, a colour that is not `#rgb` or `#rrggbb`, a position other than `left` or `right` (the field is named); `bad_json`: another field. Nothing changed", body = ErrorBody),
        (status = 429, description = "`too_many_changes`: I made 500 changes to accounts and settings today on this node (nothing changed)", body = ErrorBody),
    ))]
async fn set_widget(
    State(s): State<AppState>,
    CurrentStaff(staff): CurrentStaff,
    Path(slug): Path<String>,
    Json(look): Json<WidgetLook>,
) -> ApiResult<axum::Json<WidgetLook>> {
    Ok(axum::Json(s.app.set_widget_look(&staff, &slug, look).await?))
}

/// What a patron types into the pre-chat form.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct StartChatBody {
    /// Their name (optional).
    #[schema(max_length = 100)]
    name: Option<String>,
    /// Their e-mail (optional; needed for a transcript).
    email: Option<String>,
    /// Their question: the chat's first line.
    #[schema(min_length = 1)]
    question: String,
    /// E-mail the transcript at the end (needs `email`; only a chat a
    /// librarian accepted is mailed).
    #[serde(default)]
    transcript: bool,
    /// The widget's random id for this browser (16–128 of `[A-Za-z0-9_-]`):
    /// what a block goes by, with the network.
    #[serde(default)]
    browser: Option<String>,
    /// The patron's local time minus UTC in minutes, −840 to 840 (a
    /// browser's `-new Date().getTimezoneOffset()`): the transcript's times
    /// are written in it; without it, in UTC.
    #[serde(default)]
    #[schema(minimum = -840, maximum = 840)]
    utc_offset: Option<i32>,
}

impl From<StartChatBody> for StartChat {
    fn from(b: StartChatBody) -> Self {
        let StartChatBody { name, email, question, transcript, browser, utc_offset } = b;
        StartChat { name, email, question, transcript, browser, utc_offset }
    }
}

/// A patron starts a chat; returns the session and its secret token.
#[utoipa::path(post, path = "/api/libraries/{slug}/chats", tag = "patron",
    params(("slug" = String, Path, description = "the library's URL name")),
    request_body = StartChatBody,
    responses(
        (status = 201, description = "waiting in the library's queue", body = StartedView),
        (status = 403, description = "`blocked`: a polite refusal for a blocked patron", body = ErrorBody),
        (status = 404, description = "`not_found`: no such library", body = ErrorBody),
        (status = 409, description = "`closed`: the library's admins closed its chat; the message is their notice", body = ErrorBody),
        (status = 422, description = "`invalid`: an empty or over-long question, a bad e-mail address or `utc_offset` out of range (a malformed browser id is ignored)", body = ErrorBody),
        (status = 429, description = "`rate_limited` (starts from this address), `too_many_waiting` (this network's waiting chats), `too_many_chats` (chats this network started in the last 24 hours), `queue_full` (the library's queue) or `too_many_today` (the chats and offline questions the library took in the last 24 hours) (a transcript past this network's hourly share is not refused: the chat starts without one, `transcript_to` null)", body = ErrorBody),
    ))]
async fn start(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    Path(slug): Path<String>,
    Json(form): Json<StartChatBody>,
) -> ApiResult<(StatusCode, axum::Json<StartedView>)> {
    let started = state.app.start_chat(&slug, form.into(), ip).await?;
    state.limiter.remember(Credential::Patron, &started.token);
    Ok((StatusCode::CREATED, axum::Json(started.into())))
}

/// A page of the patron's chat.
#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct PageQuery {
    /// Lines after this number, the patron's own (a line's `patron_seq`,
    /// which their lines carry as `seq`; default 0: from the start).
    after: Option<u64>,
    /// Lines at most, 1–500 (default 200): the patron's (the lines for staff
    /// are neither read nor counted). A page also stops before
    /// the line that would take the text it shows past 64 KiB (it always
    /// holds one line); `more` says whether lines follow.
    #[param(minimum = 1, maximum = 500)]
    limit: Option<u32>,
}

/// The patron's chat, a page at a time: its state, the lines the patron may
/// see, the last line read and whether more follow.
#[utoipa::path(get, path = "/api/chat", tag = "patron", security(("patron" = [])),
    params(PageQuery),
    responses(
        (status = 200, description = "a page of the chat", body = PatronChat),
        (status = 422, description = "`invalid`: a limit outside 1–500", body = ErrorBody),
        (status = 429, description = "`rate_limited`: this network read more pages this minute than \
            `limits.patron_reads_per_minute` (300) allows; `Retry-After` says when to try again", body = ErrorBody),
    ))]
async fn chat(
    State(state): State<AppState>,
    PatronToken(rec): PatronToken,
    crate::error::Query(q): crate::error::Query<PageQuery>,
) -> ApiResult<axum::Json<PatronChat>> {
    let page = state.app.patron_page(&rec, q.after.unwrap_or(0), q.limit.unwrap_or(200)).await?;
    Ok(axum::Json(PatronChat {
        session: rec.ctx.id,
        state: rec.state,
        messages: page.messages,
        last: page.last,
        more: page.more,
        transcript_to: rec.transcript_to,
    }))
}

/// The patron ends the chat; returns the "Chat session has ended" line.
#[utoipa::path(post, path = "/api/chat/end", tag = "patron", security(("patron" = [])),
    responses(
        (status = 200, description = "ended", body = Message),
        (status = 409, description = "`conflict`: the chat has already ended", body = ErrorBody),
    ))]
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
    Ok(axum::Json(refdesk_domain::visibility::as_seen(&viewer, line)))
}

/// Where the patron wants the transcript.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct TranscriptRequest {
    /// Where to send it; empty or absent cancels the request.
    email: Option<String>,
    /// The patron's local time minus UTC in minutes, −840 to 840: the
    /// transcript's times are written in it; without it, in UTC.
    #[serde(default)]
    #[schema(minimum = -840, maximum = 840)]
    utc_offset: Option<i32>,
}

/// The patron asks for the transcript by e-mail at the end (an empty
/// address cancels the request). Once the chat has ended, the transcript
/// is queued at once: once per chat, within an hour of the end, of a chat
/// a librarian took.
#[utoipa::path(post, path = "/api/chat/transcript", tag = "patron", security(("patron" = [])),
    request_body = TranscriptRequest,
    responses(
        (status = 200, description = "the address it will go to (or, once the chat has ended, is on its way to), or none", body = TranscriptTo),
        (status = 409, description = "`conflict`: the chat has ended and the request cancels nothing, or its transcript was already asked for, no librarian took it, it ended more than an hour ago, its patron was blocked from it, or its personal data was erased", body = ErrorBody),
        (status = 422, description = "`invalid`: not an e-mail address, or `utc_offset` out of range", body = ErrorBody),
        (status = 429, description = "`too_many_mails`: transcripts asked from this network this hour", body = ErrorBody),
    ))]
async fn transcript(
    State(state): State<AppState>,
    PatronToken(rec): PatronToken,
    ClientIp(ip): ClientIp,
    Json(body): Json<TranscriptRequest>,
) -> ApiResult<axum::Json<TranscriptTo>> {
    let to = state.app.request_transcript(&rec, body.email.as_deref(), body.utc_offset, ip).await?;
    Ok(axum::Json(TranscriptTo { transcript_to: to }))
}

/// The patron's rating of an ended chat.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct RatingRequest {
    /// 1 (poor) to 5 (excellent).
    #[schema(minimum = 1, maximum = 5)]
    rating: u8,
    /// An optional comment.
    #[schema(max_length = 2000)]
    comment: Option<String>,
}

/// The patron rates the ended chat (1–5), with an optional comment kept
/// with its question.
#[utoipa::path(post, path = "/api/chat/rating", tag = "patron", security(("patron" = [])),
    request_body = RatingRequest,
    responses(
        (status = 200, description = "kept", body = Rated),
        (status = 409, description = "`conflict`: the chat has not ended, was never accepted, its patron was blocked from it, or its personal data was erased", body = ErrorBody),
        (status = 422, description = "`invalid`: a rating outside 1–5 or an over-long comment", body = ErrorBody),
    ))]
async fn rating(
    State(state): State<AppState>,
    PatronToken(rec): PatronToken,
    Json(body): Json<RatingRequest>,
) -> ApiResult<axum::Json<Rated>> {
    state.app.patron_rate(&rec, body.rating, body.comment.as_deref()).await?;
    Ok(axum::Json(Rated { rating: body.rating }))
}

/// The chat opened by the bearer token; 401 otherwise.
pub struct PatronToken(pub SessionRecord);

impl FromRequestParts<AppState> for PatronToken {
    type Rejection = Refused;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let token = parts
            .headers
            .get(AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .ok_or(Refused::NoToken)?;
        let ip = ClientIp::of(parts, state);
        let token = token.trim();
        let lookup = crate::limit::checked(state, ip, (Credential::Patron, token), state.app.patron_session(token));
        Ok(PatronToken(lookup.await.map_err(Refused::for_patron)?))
    }
}

/// The client's address: the peer, or behind a trusted proxy the address it
/// forwarded (see [`crate::limit::client_ip_of`]).
pub struct ClientIp(pub Option<std::net::IpAddr>);

impl FromRequestParts<AppState> for ClientIp {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        Ok(ClientIp(ClientIp::of(parts, state)))
    }
}

impl ClientIp {
    /// The client's address of a request (`None` when served without a
    /// listener).
    pub fn of(parts: &Parts, state: &AppState) -> Option<std::net::IpAddr> {
        let peer = parts.extensions.get::<axum::extract::ConnectInfo<std::net::SocketAddr>>().map(|c| c.0.ip());
        peer.map(|p| crate::limit::client_ip_of(p, &parts.headers, &state.trusted_proxies))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use refdesk_domain::ids::{CooperativeId, LibraryId};
    use refdesk_domain::org::Placement;

    #[test]
    fn the_list_of_libraries_is_encoded_once_per_read_of_it() {
        let library = |id: i64, slug: &str| LibraryRecord {
            placement: Placement {
                library: LibraryId(id),
                institution: InstitutionId(1),
                cooperative: CooperativeId(1),
            },
            slug: slug.into(),
            name: format!("The {slug} library"),
            embed_sites: Vec::new(),
            retention_days: None,
            reply_to: None,
            closed_notice: None,
            widget: Default::default(),
        };
        let kept = ListedJson::default();
        let read = Arc::new(vec![library(1, "main")]);
        let first = kept.encoded(&read).unwrap();
        let again = kept.encoded(&read).unwrap();
        assert_eq!(first.as_ptr(), again.as_ptr(), "the same bytes, not encoded again");
        let listed: serde_json::Value = serde_json::from_slice(&first).unwrap();
        assert_eq!(listed[0]["slug"], "main");
        // A new read of the list (a library added): encoded anew.
        let next = Arc::new(vec![library(1, "main"), library(2, "music")]);
        let listed: serde_json::Value = serde_json::from_slice(&kept.encoded(&next).unwrap()).unwrap();
        assert_eq!(listed[1]["slug"], "music");
    }
}
