//! The web pages, embedded in the binary: no files to deploy, no Node.js.
//! Every page is plain HTML with ES modules; nothing is loaded from any other
//! site, and the Content-Security-Policy says so.

use crate::AppState;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::header::{CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE, X_CONTENT_TYPE_OPTIONS};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use refdesk_app::AppError;
use refdesk_domain::DomainError;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// Only our own origin, ever: no third-party scripts in patron pages (DESIGN §9).
/// `form-action 'none'`: every form is sent by script; should a script fail,
/// the browser refuses to submit a form itself (which would put what the
/// patron typed in the URL).
const CSP: &str = "default-src 'self'; connect-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; frame-ancestors 'self'; base-uri 'none'; form-action 'none'";
/// The patron's chat may be framed by the web sites its library's admins
/// named (the widget), or by any site if they named none; everything else
/// stays as strict.
fn csp_embeddable(sites: &[String]) -> String {
    let ancestors = if sites.is_empty() { "*".to_owned() } else { format!("'self' {}", sites.join(" ")) };
    CSP.replace("frame-ancestors 'self'", &format!("frame-ancestors {ancestors}"))
}

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
    ("reports.js", "text/javascript; charset=utf-8", include_str!("../../../../web/reports.js")),
];

const INDEX: &str = include_str!("../../../../web/index.html");
const WIDGET: &str = include_str!("../../../../web/widget.js");
const ASK: &str = include_str!("../../../../web/ask.html");
const DESK: &str = include_str!("../../../../web/desk.html");
const QUESTIONS: &str = include_str!("../../../../web/questions.html");
const QUESTION: &str = include_str!("../../../../web/question.html");
const STAFF: &str = include_str!("../../../../web/staff.html");
const ADMIN: &str = include_str!("../../../../web/admin.html");
const REPORTS: &str = include_str!("../../../../web/reports.html");

/// The pages served from these constants (the widget's script apart):
/// with [`ASSETS`] and [`WIDGET`], what [`release`] is the fingerprint of.
const PAGES: &[&str] = &[INDEX, ASK, DESK, QUESTIONS, QUESTION, STAFF, ADMIN, REPORTS];

/// 64-bit FNV-1a of texts, continued from `hash`, worked out when the
/// binary is built: two servers built from the same pages give the same
/// number.
const fn fingerprint(mut hash: u64, texts: &[&str]) -> u64 {
    let mut t = 0;
    while t < texts.len() {
        let bytes = texts[t].as_bytes();
        let mut i = 0;
        while i < bytes.len() {
            hash ^= bytes[i] as u64;
            hash = hash.wrapping_mul(0x0100_0000_01b3);
            i += 1;
        }
        // Where one text ends counts: moving a byte from one to the next
        // changes the pages.
        hash ^= 0xff;
        hash = hash.wrapping_mul(0x0100_0000_01b3);
        t += 1;
    }
    hash
}

/// What the pages' scripts and the server agree on beyond the pages' text:
/// changed with any change of what a frame means (docs/protocol.md) that
/// comes without a change to the pages, so that pages open across the
/// upgrade reload all the same ([`release`]).
const PROTOCOL: &str = "2026-12-06: a patron's own sequence numbers (patron_seq)";

/// [`fingerprint`] of the protocol, every page, the widget and every asset.
const fn build() -> u64 {
    let mut hash = fingerprint(0xcbf2_9ce4_8422_2325, &[PROTOCOL]);
    hash = fingerprint(hash, PAGES);
    hash = fingerprint(hash, &[WIDGET]);
    let mut a = 0;
    while a < ASSETS.len() {
        hash = fingerprint(hash, &[ASSETS[a].2]);
        a += 1;
    }
    hash
}

/// Which build of the pages this server serves, as the socket's `hello`
/// says it (`release`): a page that hears another one than at its first
/// `hello` was loaded from an older build and reloads (the patron's) or
/// says so (the desk's). Opaque: no version number for a stranger to
/// match against a list of flaws.
pub fn release() -> &'static str {
    static RELEASE: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| format!("{:016x}", build()));
    &RELEASE
}

/// Routes of this module.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(index))
        .routes(routes!(ask))
        .routes(routes!(widget))
        .routes(routes!(desk))
        .routes(routes!(questions))
        .routes(routes!(question))
        .routes(routes!(reports))
        .routes(routes!(staff))
        .routes(routes!(admin))
        .routes(routes!(asset))
}

/// The start page: every library's entry point.
#[utoipa::path(get, path = "/", tag = "pages",
    responses((status = 200, description = "HTML", body = String, content_type = "text/html")))]
async fn index(State(state): State<AppState>) -> Response {
    page(INDEX, &state)
}

/// The patron's chat: the only page other sites may frame (the widget).
/// A library that does not exist gets the same page with `404` (the page
/// says so): a mistyped snippet shows in the site's and the proxy's logs,
/// and a link checker finds it.
#[utoipa::path(get, path = "/ask/{slug}", tag = "pages",
    params(("slug" = String, Path, description = "the library's URL name")),
    responses(
        (status = 200, description = "HTML", body = String, content_type = "text/html"),
        (status = 404, description = "no such library: the same page, which says so", body = String, content_type = "text/html")))]
async fn ask(State(state): State<AppState>, slug: Result<Path<String>, PathRejection>) -> Response {
    // A name that is not text (bytes that are not UTF-8) names no library.
    let found = match slug {
        Ok(Path(slug)) => state.app.open_library(&slug).await,
        Err(_) => Err(AppError::Domain(DomainError::NotFound("library"))),
    };
    match found {
        Ok(lib) => page_with(ASK, &csp_embeddable(&lib.embed_sites), &state),
        Err(AppError::Domain(DomainError::NotFound(_))) => {
            // A mistyped snippet's frame says so, wherever it is.
            let mut page = page_with(ASK, &csp_embeddable(&[]), &state);
            *page.status_mut() = StatusCode::NOT_FOUND;
            page
        }
        // The store unreachable (and no list of libraries read before):
        // which sites the library allows is not known, so only refdesk's
        // own may frame the page; a widget's frame stays blank until the
        // patron opens the chat again.
        Err(_) => page_with(ASK, CSP, &state),
    }
}

/// The librarian desk.
#[utoipa::path(get, path = "/desk", tag = "pages",
    responses((status = 200, description = "HTML", body = String, content_type = "text/html")))]
async fn desk(State(state): State<AppState>) -> Response {
    page(DESK, &state)
}

/// The question list.
#[utoipa::path(get, path = "/desk/questions", tag = "pages",
    responses((status = 200, description = "HTML", body = String, content_type = "text/html")))]
async fn questions(State(state): State<AppState>) -> Response {
    page(QUESTIONS, &state)
}

/// A question's page.
#[utoipa::path(get, path = "/desk/questions/{id}", tag = "pages",
    params(("id" = String, Path, description = "the question's number (read by the page's script)")),
    responses((status = 200, description = "HTML", body = String, content_type = "text/html")))]
async fn question(State(state): State<AppState>) -> Response {
    page(QUESTION, &state)
}

/// Reports: the figures of the reports API as charts and tables, each with its CSV.
#[utoipa::path(get, path = "/desk/reports", tag = "pages",
    responses((status = 200, description = "HTML", body = String, content_type = "text/html")))]
async fn reports(State(state): State<AppState>) -> Response {
    page(REPORTS, &state)
}

/// Staff management.
#[utoipa::path(get, path = "/desk/staff", tag = "pages",
    responses((status = 200, description = "HTML", body = String, content_type = "text/html")))]
async fn staff(State(state): State<AppState>) -> Response {
    page(STAFF, &state)
}

/// The libraries' widget snippets, policy notes, scripts and resolution codes.
#[utoipa::path(get, path = "/desk/admin", tag = "pages",
    responses((status = 200, description = "HTML", body = String, content_type = "text/html")))]
async fn admin(State(state): State<AppState>) -> Response {
    page(ADMIN, &state)
}

fn page(html: &'static str, state: &AppState) -> Response {
    page_with(html, CSP, state)
}

/// A page, its build named in it (`<meta name="refdesk-release">`): its
/// script tells by it whether a server it reaches later serves another
/// build (docs/protocol.md, `hello`). With a public URL, that too
/// (`<meta name="refdesk-public-url">`): a page opened at another address
/// of the same server (`localhost`, a name the proxy also answers to),
/// whose every change would be refused as another site's, goes there.
fn page_with(html: &'static str, csp: &str, state: &AppState) -> Response {
    let mut head = format!("<head>\n<meta name=\"refdesk-release\" content=\"{}\">", release());
    if let Some(url) = &state.public_url {
        head.push_str(&format!("\n<meta name=\"refdesk-public-url\" content=\"{}\">", attribute(url)));
    }
    let stamped = html.replacen("<head>", &head, 1);
    (
        [
            (CONTENT_TYPE, "text/html; charset=utf-8"),
            (CONTENT_SECURITY_POLICY, csp),
            (X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (CACHE_CONTROL, "no-store"),
        ],
        stamped,
    )
        .into_response()
}

/// `text` as an HTML attribute's value, between double quotes.
fn attribute(text: &str) -> String {
    text.replace('&', "&amp;").replace('"', "&quot;").replace('<', "&lt;").replace('>', "&gt;")
}

/// The embeddable widget: loaded by other sites, so it may be cached briefly
/// and carries no cookies of ours.
#[utoipa::path(get, path = "/widget.js", tag = "pages",
    responses((status = 200, description = "the widget's script", body = String, content_type = "text/javascript")))]
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

/// A stylesheet or module of the pages.
#[utoipa::path(get, path = "/assets/{file}", tag = "pages",
    params(("file" = String, Path, description = "e.g. refdesk.css, common.js")),
    responses(
        (status = 200, description = "the asset", content((String = "text/css"), (String = "text/javascript"))),
        (status = 404, description = "no such asset", body = String, content_type = "text/plain"),
    ))]
async fn asset(Path(file): Path<String>) -> Response {
    match ASSETS.iter().find(|(name, _, _)| *name == file) {
        Some((_, mime, body)) => {
            ([(CONTENT_TYPE, *mime), (X_CONTENT_TYPE_OPTIONS, "nosniff"), (CACHE_CONTROL, "no-cache")], *body)
                .into_response()
        }
        None => (StatusCode::NOT_FOUND, "no such asset").into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_release_changes_with_any_page_and_not_otherwise() {
        let print = |texts: &[&str]| fingerprint(0xcbf2_9ce4_8422_2325, texts);
        let same = print(&["<p>a</p>", "let x = 1;"]);
        assert_eq!(same, print(&["<p>a</p>", "let x = 1;"]));
        assert_ne!(same, print(&["<p>a</p>", "let x = 2;"]), "a byte changed");
        assert_ne!(same, print(&["<p>a</p>l", "et x = 1;"]), "a byte moved from one file to the next");
        assert_ne!(same, print(&["let x = 1;", "<p>a</p>"]), "two files swapped");
        assert_eq!(release(), format!("{:016x}", build()));
        assert_eq!(release().len(), 16);
        // Every page is one of those fingerprinted, and names its build once.
        for page in [INDEX, ASK, DESK, QUESTIONS, QUESTION, STAFF, ADMIN, REPORTS] {
            assert!(PAGES.contains(&page));
            assert_eq!(page.matches("<head>").count(), 1, "the build goes in the page's one <head>");
        }
    }
}
