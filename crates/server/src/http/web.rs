//! The web pages, embedded in the binary: no files to deploy, no Node.js.
//! Every page is plain HTML with ES modules; nothing is loaded from any other
//! site, and the Content-Security-Policy says so.

use crate::AppState;
use axum::extract::Path;
use axum::http::header::{CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE, X_CONTENT_TYPE_OPTIONS};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

/// Only our own origin, ever: no third-party scripts in patron pages (DESIGN §9).
/// `form-action 'none'`: every form is sent by script; should a script fail,
/// the browser refuses to submit a form itself (which would put what the
/// patron typed in the URL).
const CSP: &str = "default-src 'self'; connect-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; frame-ancestors 'self'; base-uri 'none'; form-action 'none'";
/// The patron's chat may be framed by any library's web site (the widget);
/// everything else stays as strict.
const CSP_EMBEDDABLE: &str = "default-src 'self'; connect-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; frame-ancestors *; base-uri 'none'; form-action 'none'";

const ASSETS: &[(&str, &str, &str)] = &[
    ("refdesk.css", "text/css; charset=utf-8", include_str!("../../../../web/refdesk.css")),
    ("common.js", "text/javascript; charset=utf-8", include_str!("../../../../web/common.js")),
    ("ask.js", "text/javascript; charset=utf-8", include_str!("../../../../web/ask.js")),
    ("desk.js", "text/javascript; charset=utf-8", include_str!("../../../../web/desk.js")),
    ("index.js", "text/javascript; charset=utf-8", include_str!("../../../../web/index.js")),
    ("questions.js", "text/javascript; charset=utf-8", include_str!("../../../../web/questions.js")),
    ("question.js", "text/javascript; charset=utf-8", include_str!("../../../../web/question.js")),
    ("staff.js", "text/javascript; charset=utf-8", include_str!("../../../../web/staff.js")),
    ("admin.js", "text/javascript; charset=utf-8", include_str!("../../../../web/admin.js")),
];

const INDEX: &str = include_str!("../../../../web/index.html");
const WIDGET: &str = include_str!("../../../../web/widget.js");
const ASK: &str = include_str!("../../../../web/ask.html");
const DESK: &str = include_str!("../../../../web/desk.html");
const QUESTIONS: &str = include_str!("../../../../web/questions.html");
const QUESTION: &str = include_str!("../../../../web/question.html");
const STAFF: &str = include_str!("../../../../web/staff.html");
const ADMIN: &str = include_str!("../../../../web/admin.html");

/// Routes of this module.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(|| async { page(INDEX) }))
        .route("/ask/{slug}", get(|| async { page_with(ASK, CSP_EMBEDDABLE) }))
        .route("/widget.js", get(widget))
        .route("/desk", get(|| async { page(DESK) }))
        .route("/desk/questions", get(|| async { page(QUESTIONS) }))
        .route("/desk/questions/{id}", get(|| async { page(QUESTION) }))
        .route("/desk/staff", get(|| async { page(STAFF) }))
        .route("/desk/admin", get(|| async { page(ADMIN) }))
        .route("/assets/{file}", get(asset))
}

fn page(html: &'static str) -> Response {
    page_with(html, CSP)
}

fn page_with(html: &'static str, csp: &'static str) -> Response {
    (
        [
            (CONTENT_TYPE, "text/html; charset=utf-8"),
            (CONTENT_SECURITY_POLICY, csp),
            (X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (CACHE_CONTROL, "no-store"),
        ],
        html,
    )
        .into_response()
}

/// The embeddable widget: loaded by other sites, so it may be cached briefly
/// and carries no cookies of ours.
async fn widget() -> Response {
    (
        [
            (CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (CACHE_CONTROL, "public, max-age=300"),
        ],
        WIDGET,
    )
        .into_response()
}

async fn asset(Path(file): Path<String>) -> Response {
    match ASSETS.iter().find(|(name, _, _)| *name == file) {
        Some((_, mime, body)) => {
            ([(CONTENT_TYPE, *mime), (X_CONTENT_TYPE_OPTIONS, "nosniff"), (CACHE_CONTROL, "no-cache")], *body)
                .into_response()
        }
        None => (StatusCode::NOT_FOUND, "no such asset").into_response(),
    }
}
