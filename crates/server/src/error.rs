//! The one API error type. Every failure leaves the server as
//! `{"error": {"code", "message"}}` with a fitting status; 5xx bodies say
//! nothing internal, the detail goes to the log.

use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, Request};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use refdesk_app::AppError;
use refdesk_domain::DomainError;
use serde::Serialize;

/// An error as the API reports it.
#[derive(Debug)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// Stable machine-readable code.
    pub code: &'static str,
    /// A sentence for people.
    pub message: String,
    /// For `invalid`: the request's field that was refused, as the client
    /// named it, so that a page can point at the box to correct.
    pub field: Option<String>,
}

impl ApiError {
    /// An error of no one field.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError { status, code, message: message.into(), field: None }
    }

    /// A 400 with the given code.
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        ApiError { status: StatusCode::BAD_REQUEST, code, message: message.into(), field: None }
    }

    /// A 500 whose detail goes to the log only: each of the first
    /// [`LOGGED_A_MINUTE`] a minute, then how many more (a full disk failed
    /// every write, and its two hundred lines a second went to a journal on
    /// that disk).
    pub fn internal(detail: impl std::fmt::Display) -> Self {
        match Said::next() {
            Say::Line { unsaid: 0 } => tracing::error!(%detail, "internal error"),
            Say::Line { unsaid } => tracing::error!(
                %detail,
                unsaid,
                "internal error (and `unsaid` more since the last one logged, past the minute's twenty)"
            ),
            Say::Nothing => {}
        }
        ApiError {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            code: "internal",
            message: "something went wrong on our side; nothing was lost, try again".into(),
            field: None,
        }
    }

    /// A `503 unavailable`: the database cannot be reached or cannot write
    /// just now. Logged at `warn` (it is the database's state, not a fault
    /// of refdesk's), within the same budget of lines as [`Self::internal`]:
    /// a database down fails every request.
    pub fn unavailable(detail: impl std::fmt::Display) -> Self {
        match Said::next() {
            Say::Line { unsaid: 0 } => tracing::warn!(%detail, "the database is unavailable"),
            Say::Line { unsaid } => tracing::warn!(
                %detail,
                unsaid,
                "the database is unavailable (and `unsaid` more errors since the last one logged, past the minute's twenty)"
            ),
            Say::Nothing => {}
        }
        ApiError {
            status: StatusCode::SERVICE_UNAVAILABLE,
            code: "unavailable",
            message: "the service cannot reach its database just now; try again in a moment".into(),
            field: None,
        }
    }

    /// The `(code, message)` pair, for WebSocket error frames.
    pub fn parts(&self) -> (&'static str, &str) {
        (self.code, &self.message)
    }
}

impl From<AppError> for ApiError {
    fn from(e: AppError) -> Self {
        match e {
            AppError::Domain(d) => d.into(),
            AppError::Unauthenticated => ApiError {
                status: StatusCode::UNAUTHORIZED,
                code: "unauthenticated",
                message: "sign in first".into(),
                field: None,
            },
            AppError::Internal(detail) => ApiError::internal(detail),
            AppError::Unavailable(detail) => ApiError::unavailable(detail),
        }
    }
}

impl From<DomainError> for ApiError {
    fn from(d: DomainError) -> Self {
        let message = d.to_string();
        let field = match &d {
            DomainError::Invalid { field, .. } => Some((*field).to_owned()),
            _ => None,
        };
        let (status, code) = match d {
            DomainError::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            DomainError::Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden"),
            DomainError::Conflict(_) => (StatusCode::CONFLICT, "conflict"),
            DomainError::Invalid { .. } => (StatusCode::UNPROCESSABLE_ENTITY, "invalid"),
            DomainError::Limited { code, .. } => (StatusCode::TOO_MANY_REQUESTS, code),
            DomainError::Blocked(_) => (StatusCode::FORBIDDEN, "blocked"),
            DomainError::Closed(_) => (StatusCode::CONFLICT, "closed"),
        };
        ApiError { status, code, message, field }
    }
}

/// The `Retry-After` of a `503 unavailable`, in seconds.
pub const UNAVAILABLE_RETRY_AFTER: &str = "5";

/// How many internal errors a minute are logged one by one.
pub const LOGGED_A_MINUTE: u32 = 20;

/// The process's budget of internal-error lines, as the log itself is the
/// process's: every app of a process (tests run several) shares it.
static INTERNAL_SAID: std::sync::Mutex<Said> = std::sync::Mutex::new(Said { since: None, said: 0, unsaid: 0 });

/// The internal errors of the minute begun `since`: how many were logged
/// and how many were not.
struct Said {
    since: Option<std::time::Instant>,
    said: u32,
    unsaid: u64,
}

/// What to log of one more internal error.
#[derive(Debug, PartialEq)]
enum Say {
    /// Its line, with how many went unsaid in the minute before.
    Line { unsaid: u64 },
    /// Nothing: the minute's lines are spent (it is counted).
    Nothing,
}

impl Said {
    /// What to log of one more error, from the process's budget.
    fn next() -> Say {
        let said = INTERNAL_SAID.lock().map(|mut s| s.note(std::time::Instant::now()));
        said.unwrap_or(Say::Line { unsaid: 0 })
    }

    fn note(&mut self, now: std::time::Instant) -> Say {
        let minute = std::time::Duration::from_secs(60);
        let mut unsaid = 0;
        if self.since.is_none_or(|since| now.duration_since(since) >= minute) {
            (unsaid, self.since, self.said, self.unsaid) = (self.unsaid, Some(now), 0, 0);
        }
        if self.said >= LOGGED_A_MINUTE {
            self.unsaid += 1;
            return Say::Nothing;
        }
        self.said += 1;
        Say::Line { unsaid }
    }
}

/// The body of every error response: `{"error": {"code", "message"}}`.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// What went wrong.
    pub error: ErrorDetail,
}

/// An error's code and sentence.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ErrorDetail {
    /// Stable and machine-readable: `not_found`, `forbidden`, `conflict`,
    /// `invalid`, `unauthenticated`, `bad_json`, `rate_limited`… (each
    /// operation of the OpenAPI document names those it may answer).
    pub code: String,
    /// A sentence for people: for `invalid`, "invalid <field>: <why>".
    pub message: String,
    /// For `invalid`, when the refusal is of one field of the request: its
    /// name, as the request spelled it (`email`, `question`…). Absent
    /// otherwise.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

impl ApiError {
    /// `413 too_large`: a body past [`crate::http::body_limit`].
    pub fn too_large() -> ApiError {
        ApiError {
            status: StatusCode::PAYLOAD_TOO_LARGE,
            code: "too_large",
            message: "the request body is larger than refdesk reads; send less".into(),
            field: None,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body =
            ErrorBody { error: ErrorDetail { code: self.code.to_owned(), message: self.message, field: self.field } };
        if self.status == StatusCode::SERVICE_UNAVAILABLE {
            return (self.status, [(axum::http::header::RETRY_AFTER, UNAVAILABLE_RETRY_AFTER)], axum::Json(body))
                .into_response();
        }
        (self.status, axum::Json(body)).into_response()
    }
}

/// The largest request body read, in bytes (`http::body_limit`), which the
/// router puts with each request.
#[derive(Clone, Copy, Debug)]
pub struct BodyLimit(pub usize);

/// A request's body read whole into one buffer of its own, each piece
/// copied and let go as it comes; past [`BodyLimit`], `413 too_large`.
///
/// axum's extractors gather the pieces as hyper hands them over, and each
/// piece of a body trickled a few bytes at a time kept the whole read buffer
/// it came in (8 KiB): a 121 KB body sent 50 bytes at a time held 20 MB,
/// and a stranger's few megabytes of such sign-ins took a node past a
/// gigabyte. Read this way a body holds at most twice what was sent of it.
/// As the last extractor of a handler, it reads only once the others (the
/// sign-in, the path) have passed.
pub struct WholeBody(pub axum::body::Bytes);

impl<S: Send + Sync> FromRequest<S> for WholeBody {
    type Rejection = ApiError;

    async fn from_request(req: Request, _: &S) -> Result<Self, Self::Rejection> {
        let (parts, body) = req.into_parts();
        Ok(WholeBody(read_whole(&parts, body).await?))
    }
}

/// [`WholeBody`]'s reading, for a request taken apart.
async fn read_whole(parts: &axum::http::request::Parts, body: axum::body::Body) -> Result<axum::body::Bytes, ApiError> {
    use futures_util::StreamExt;
    let limit = parts.extensions.get::<BodyLimit>().map_or(DEFAULT_BODY_LIMIT, |l| l.0);
    let announced =
        parts.headers.get(axum::http::header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<usize>().ok());
    if announced.is_some_and(|n| n > limit) {
        return Err(ApiError::too_large());
    }
    // Room for a usual body at once; a larger one grows as it comes.
    let mut whole = Vec::with_capacity(announced.unwrap_or(0).min(16 * 1024));
    let mut pieces = body.into_data_stream();
    while let Some(piece) = pieces.next().await {
        // Cut short: the client went, or took past `body_seconds`.
        let piece = piece.map_err(|_| ApiError::bad_request("bad_body", "the request body was cut short"))?;
        if whole.len() + piece.len() > limit {
            return Err(ApiError::too_large());
        }
        whole.extend_from_slice(&piece);
    }
    Ok(whole.into())
}

/// [`BodyLimit`] where the router gave none (a handler tried alone).
const DEFAULT_BODY_LIMIT: usize = 2 * 1024 * 1024;

/// A JSON body extractor whose rejections have the API's error shape; the
/// body is read as [`WholeBody`] reads one.
pub struct Json<T>(pub T);

impl<T, S> FromRequest<S> for Json<T>
where
    axum::Json<T>: FromRequest<S, Rejection = JsonRejection>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let (parts, body) = req.into_parts();
        let whole = read_whole(&parts, body).await?;
        let req = Request::from_parts(parts, axum::body::Body::from(whole));
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(v)) => Ok(Json(v)),
            Err(rejection) if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE => Err(ApiError::too_large()),
            Err(rejection) => Err(ApiError {
                status: rejection.status(),
                code: "bad_json",
                message: cut(rejection.body_text()),
                field: None,
            }),
        }
    }
}

/// A request body that [`serde_json`] could not turn into what the handler
/// takes, with the same status as [`Json`]'s rejections (axum's): JSON of
/// the wrong shape — a missing field, a wrong type, an unknown field — is
/// `422`; text that is not JSON at all is `400`. Both are `bad_json`.
pub fn bad_json(e: serde_json::Error) -> ApiError {
    let status = match e.classify() {
        serde_json::error::Category::Data => StatusCode::UNPROCESSABLE_ENTITY,
        _ => StatusCode::BAD_REQUEST,
    };
    ApiError { status, code: "bad_json", message: cut(format!("the request body: {e}")), field: None }
}

/// A parser's message, at most 300 characters of it: serde quotes what it
/// did not expect whole, and a body or a frame of 100 KB would come back in
/// its error. Rust's names of number types are said in words.
pub(crate) fn cut(message: String) -> String {
    let message = crate::settings::in_words(&message);
    match message.char_indices().nth(300) {
        Some((at, _)) => format!("{}…", &message[..at]),
        None => message,
    }
}

/// Result of a handler.
pub type ApiResult<T> = Result<T, ApiError>;

/// A path extractor whose rejections (`/api/sessions/abc`) have the API's
/// error shape. A path that holds a control character once decoded
/// (`/api/libraries/a%00b/status`) is refused before anything looks it up:
/// no name refdesk stores has one, and PostgreSQL cannot even compare a
/// NUL (it answered such a lookup with an error, a 500).
pub struct Path<T>(pub T);

impl<T, S> axum::extract::FromRequestParts<S> for Path<T>
where
    axum::extract::Path<T>: axum::extract::FromRequestParts<S, Rejection = axum::extract::rejection::PathRejection>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut axum::http::request::Parts, state: &S) -> Result<Self, Self::Rejection> {
        if crate::input::has_encoded_control(parts.uri.path()) {
            return Err(ApiError::bad_request("bad_path", "a path may not hold control characters"));
        }
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(v)) => Ok(Path(v)),
            Err(r) => Err(ApiError { status: r.status(), code: "bad_path", message: cut(r.body_text()), field: None }),
        }
    }
}

/// A query-string extractor whose rejections (`?after=x`) have the API's
/// error shape; a control character in a value (`?q=a%00b`) is refused as
/// in [`Path`], and so are bytes that are not UTF-8 (`?q=%ED%A0%80`).
pub struct Query<T>(pub T);

impl<T, S> axum::extract::FromRequestParts<S> for Query<T>
where
    axum::extract::Query<T>: axum::extract::FromRequestParts<S, Rejection = axum::extract::rejection::QueryRejection>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut axum::http::request::Parts, state: &S) -> Result<Self, Self::Rejection> {
        if crate::input::has_encoded_control(parts.uri.query().unwrap_or("")) {
            return Err(ApiError::bad_request("bad_query", "a query string may not hold control characters"));
        }
        if crate::input::has_encoded_non_utf8(parts.uri.query().unwrap_or("")) {
            return Err(ApiError::bad_request("bad_query", "a query string must be UTF-8 once decoded"));
        }
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(v)) => Ok(Query(v)),
            Err(r) => Err(ApiError { status: r.status(), code: "bad_query", message: cut(r.body_text()), field: None }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    #[test]
    fn internal_errors_are_logged_twenty_a_minute_then_counted_and_said_with_the_next_minutes_first() {
        let mut said = Said { since: None, said: 0, unsaid: 0 };
        let start = Instant::now();
        for _ in 0..LOGGED_A_MINUTE {
            assert_eq!(said.note(start), Say::Line { unsaid: 0 });
        }
        for i in 0..500 {
            assert_eq!(said.note(start + Duration::from_millis(i)), Say::Nothing, "a flood is counted");
        }
        let next = start + Duration::from_secs(60);
        assert_eq!(said.note(next), Say::Line { unsaid: 500 }, "the next minute's first says how many");
        assert_eq!(said.note(next), Say::Line { unsaid: 0 });
        assert_eq!(said.note(next + Duration::from_secs(120)), Say::Line { unsaid: 0 }, "a quiet minute: none");
    }
}
