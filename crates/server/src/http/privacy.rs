//! Patron privacy (issue 15), for a library's admins: its retention
//! period, finding and erasing one patron's data on request, and the audit
//! list of both.

use super::auth::CurrentStaff;
use crate::error::{ApiResult, ErrorBody, Json, Path, Query};
use crate::AppState;
use axum::extract::State;
use refdesk_domain::chat::SessionState;
use refdesk_domain::ids::SessionId;
use refdesk_domain::privacy::{Retention, Transcripts};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// Routes of this module.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(retention, set_retention))
        .routes(routes!(retention_due))
        .routes(routes!(find))
        .routes(routes!(erase))
        .routes(routes!(log))
}

/// A library's retention period.
#[derive(Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct RetentionView {
    /// Days after which a chat's personal data is erased, 1–3650; null:
    /// kept until erased on request.
    #[schema(minimum = 1, maximum = 3650)]
    days: Option<i64>,
    /// What happens to transcripts then (default `mask`).
    #[serde(default = "mask")]
    transcripts: Transcripts,
}

fn mask() -> Transcripts {
    Transcripts::Mask
}

/// A library's retention period to set.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct RetentionChange {
    /// Days after which a chat's personal data is erased, 1–3650; null:
    /// kept until erased on request. Required: a body without it is
    /// refused, never taken as null.
    #[schema(minimum = 1, maximum = 3650, required = true)]
    #[serde(deserialize_with = "crate::input::nullable")]
    days: Option<i64>,
    /// What happens to transcripts then; left out, it stays as it is
    /// (`mask` for a library that never set it): a period changed without
    /// it must not keep transcripts a library had chosen to delete.
    #[serde(default)]
    transcripts: Option<Transcripts>,
}

/// A library's retention period (its admins).
#[utoipa::path(get, path = "/api/libraries/{slug}/retention", tag = "privacy", security(("staff" = [])),
    params(("slug" = String, Path, description = "the library")),
    responses(
        (status = 200, description = "the period", body = RetentionView),
        (status = 403, description = "`forbidden`: not an admin of this library", body = ErrorBody),
        (status = 404, description = "`not_found`: no such library", body = ErrorBody),
    ))]
async fn retention(
    State(s): State<AppState>,
    CurrentStaff(staff): CurrentStaff,
    Path(slug): Path<String>,
) -> ApiResult<axum::Json<RetentionView>> {
    let r = s.app.retention(&staff, &slug).await?;
    Ok(axum::Json(RetentionView {
        days: r.map(|r| i64::from(r.days)),
        transcripts: r.map_or(Transcripts::Mask, |r| r.transcripts),
    }))
}

/// Sets a library's retention period (its admins); `days: null` keeps
/// personal data until it is erased on request.
#[utoipa::path(put, path = "/api/libraries/{slug}/retention", tag = "privacy", security(("staff" = [])),
    params(("slug" = String, Path, description = "the library")),
    request_body = RetentionChange,
    responses(
        (status = 200, description = "set", body = RetentionView),
        (status = 403, description = "`forbidden`: not an admin of this library", body = ErrorBody),
        (status = 404, description = "`not_found`: no such library", body = ErrorBody),
        (status = 422, description = "`invalid`: days out of bounds", body = ErrorBody),
        (status = 429, description = "`too_many_changes`: I made 500 changes to accounts and settings today on this node (nothing changed)", body = ErrorBody),
    ))]
async fn set_retention(
    State(s): State<AppState>,
    CurrentStaff(staff): CurrentStaff,
    Path(slug): Path<String>,
    Json(b): Json<RetentionChange>,
) -> ApiResult<axum::Json<RetentionView>> {
    // Left out, what transcripts become stays as it is (read by who may
    // set it: a librarian gets 403 here as below).
    let transcripts = match b.transcripts {
        Some(t) => t,
        None => s.app.retention(&staff, &slug).await?.map_or(Transcripts::Mask, |r| r.transcripts),
    };
    // Read as any whole number, so that -5 or 10^12 get the rule's own
    // words (1 to 3650), not a parser's "expected u32"; judged once the
    // caller may set it at all (a librarian gets 403 whatever the days).
    let days = |d: i64| u32::try_from(d).unwrap_or(0);
    let r = || b.days.map(|d| Retention::new(days(d), transcripts)).transpose();
    s.app.set_retention(&staff, &slug, r).await?;
    Ok(axum::Json(RetentionView { days: b.days, transcripts }))
}

/// The period to look ahead at.
#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct DueQuery {
    /// Days, 1–3650.
    #[param(minimum = 1, maximum = 3650)]
    days: i64,
}

/// What a retention period would erase if it were set now.
#[derive(Serialize, ToSchema)]
struct DueView {
    /// The period looked at.
    days: i64,
    /// How many ended chats still holding personal data started before it
    /// (at most 10,000).
    chats: usize,
    /// Whether there are more than `chats`.
    more: bool,
}

/// How many of a library's chats a retention period of `days` would erase
/// if it were set now, within ten minutes and for good (its admins; the
/// libraries page asks before shortening a period). Changes nothing.
#[utoipa::path(get, path = "/api/libraries/{slug}/retention/due", tag = "privacy", security(("staff" = [])),
    params(("slug" = String, Path, description = "the library"), DueQuery),
    responses(
        (status = 200, description = "the count", body = DueView),
        (status = 403, description = "`forbidden`: not an admin of this library", body = ErrorBody),
        (status = 404, description = "`not_found`: no such library", body = ErrorBody),
        (status = 422, description = "`invalid`: days out of bounds", body = ErrorBody),
    ))]
async fn retention_due(
    State(s): State<AppState>,
    CurrentStaff(staff): CurrentStaff,
    Path(slug): Path<String>,
    Query(q): Query<DueQuery>,
) -> ApiResult<axum::Json<DueView>> {
    // As for setting it: any whole number reads, the rule's words refuse it.
    let (chats, more) = s.app.retention_due(&staff, &slug, || u32::try_from(q.days).unwrap_or(0)).await?;
    Ok(axum::Json(DueView { days: q.days, chats, more }))
}

/// Whose data to find. In a body, not the query string: a URL is written
/// in access logs (a reverse proxy's too), and the address must not be.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct FindRequest {
    /// The patron's e-mail address (any letter case).
    #[schema(max_length = 254)]
    email: String,
}

/// A chat that carries the patron's address.
#[derive(Serialize, ToSchema)]
struct PatronChatView {
    /// The chat.
    session: i64,
    /// Its question, if any.
    question: Option<i64>,
    /// The patron's library.
    library: String,
    /// When it started (ms since the epoch).
    created_at: i64,
    /// waiting, active or ended (only ended chats can be erased).
    state: SessionState,
    /// The name the patron gave.
    patron_name: Option<String>,
    /// What they asked: its first 200 characters.
    question_text: String,
}

/// Every chat and question of my libraries whose patron e-mail or
/// transcript address is `email`, or where an answer was e-mailed to it, in
/// any letter case (library admins and above), newest first.
/// A `POST` that changes nothing, so that the address stays out of URLs.
#[utoipa::path(post, path = "/api/privacy/patron", tag = "privacy", security(("staff" = [])),
    request_body = FindRequest,
    responses(
        (status = 200, description = "what carries the address", body = [PatronChatView]),
        (status = 403, description = "`forbidden`: not an admin", body = ErrorBody),
        (status = 422, description = "`invalid`: not an e-mail address (or one with a control character)", body = ErrorBody),
    ))]
async fn find(
    State(s): State<AppState>,
    CurrentStaff(staff): CurrentStaff,
    Json(q): Json<FindRequest>,
) -> ApiResult<axum::Json<Vec<PatronChatView>>> {
    let found = s.app.patron_chats(&staff, &q.email).await?;
    Ok(axum::Json(
        found
            .into_iter()
            .map(|c| PatronChatView {
                session: c.found.session.0,
                question: c.found.question.map(|q| q.0),
                library: c.library_name,
                created_at: c.found.created_at,
                state: c.found.state,
                patron_name: c.found.patron_name,
                question_text: c.found.question_text,
            })
            .collect(),
    ))
}

/// An erase request.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct EraseRequest {
    /// The patron's e-mail address: each chat named must carry it. Left
    /// out, the chats are named by their number alone (a patron who gave
    /// no address, found by their question: the question page's Erase).
    #[schema(max_length = 254)]
    email: Option<String>,
    /// The chats to erase, of my libraries: each carrying the address (see
    /// `GET /api/privacy/patron`) when one is given.
    #[schema(min_items = 1, max_items = 200)]
    sessions: Vec<i64>,
    /// What happens to their transcripts (default `mask`).
    #[serde(default = "mask")]
    transcripts: Transcripts,
}

/// How many chats were erased.
#[derive(Serialize, ToSchema)]
struct Erased {
    /// Chats whose personal data was erased now.
    erased: u64,
}

/// Erases a patron's personal data from the chats named (library admins
/// and above), all or nothing, and records it in the audit list.
#[utoipa::path(post, path = "/api/privacy/erase", tag = "privacy", security(("staff" = [])),
    request_body = EraseRequest,
    responses(
        (status = 200, description = "erased", body = Erased),
        (status = 403, description = "`forbidden`: not an admin", body = ErrorBody),
        (status = 409, description = "`conflict`: a chat is still going on, or this node keeps no erasure journal (its data folder could not be made)", body = ErrorBody),
        (status = 422, description = "`invalid`: a chat that does not carry the address in my libraries, or (without an address) that is not of my libraries", body = ErrorBody),
    ))]
async fn erase(
    State(s): State<AppState>,
    CurrentStaff(staff): CurrentStaff,
    Json(b): Json<EraseRequest>,
) -> ApiResult<axum::Json<Erased>> {
    let sessions = b.sessions.into_iter().map(SessionId).collect();
    let erased = s.app.erase_patron(&staff, b.email.as_deref(), sessions, b.transcripts).await?;
    Ok(axum::Json(Erased { erased }))
}

/// An entry of the privacy audit list.
#[derive(Serialize, ToSchema)]
struct PrivacyEntryView {
    /// Its number.
    id: i64,
    /// When (ms since the epoch).
    at: i64,
    /// Whose chats.
    library: String,
    /// `retention` (the period ran out), `erase` (on request) or `redo` (an
    /// erasure on request made again from the erasure journal, where the
    /// database lacked it: one restored from an older backup).
    action: String,
    /// The admin who erased on request.
    by: Option<String>,
    /// How many chats.
    sessions: i64,
    /// What happened to their transcripts.
    transcripts: Option<Transcripts>,
}

/// The privacy audit list of my libraries, newest first (library admins and above).
#[utoipa::path(get, path = "/api/privacy/log", tag = "privacy", security(("staff" = [])),
    responses(
        (status = 200, description = "the audit list", body = [PrivacyEntryView]),
        (status = 403, description = "`forbidden`: not an admin", body = ErrorBody),
    ))]
async fn log(
    State(s): State<AppState>,
    CurrentStaff(staff): CurrentStaff,
) -> ApiResult<axum::Json<Vec<PrivacyEntryView>>> {
    let entries = s.app.privacy_log(&staff).await?;
    Ok(axum::Json(
        entries
            .into_iter()
            .map(|(e, library, by)| PrivacyEntryView {
                id: e.id,
                at: e.at,
                library,
                action: e.action,
                by,
                sessions: e.sessions,
                transcripts: e.transcripts,
            })
            .collect(),
    ))
}
