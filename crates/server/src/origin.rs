//! Requests that change something, WebSocket upgrades and every staff
//! request (reads too: `CurrentStaff`) must come from refdesk's own pages.
//! A browser says where a request comes from (`Origin`,
//! `Sec-Fetch-Site`); a page on another origin — another site, or another
//! host of the same site — that tries to act with a signed-in librarian's
//! cookie is refused before any handler runs. Clients that are not browsers
//! (the CLI's bench, curl, an integration) send neither header and are not
//! concerned: they hold no one's cookie.
//!
//! refdesk's origin is the public URL's when one is set (`public_url`);
//! otherwise the `Host` the request was sent to.
//!
//! A request that changes something and carries a body must also say that
//! the body is JSON (`Content-Type: application/json`), or it is refused
//! with `415` before any handler reads it. A page on another site can send
//! `text/plain`, form or multipart bodies without asking the browser first
//! (a "simple" request); a JSON body needs the browser's CORS preflight,
//! which refdesk never grants. So a browser too old to send `Origin` still
//! cannot make a cross-site request that acts, and no handler parses a
//! body whose type it did not check. refdesk takes no form bodies: every
//! page sends JSON by script (`form-action 'none'`). Bodiless requests
//! (accept, end, sign-out) need no type; the origin check is theirs.

use crate::error::ApiError;
use crate::AppState;
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

/// `scheme://host[:port]` of a public URL, lowercased; `None` if it is not one.
pub fn origin_of(url: &str) -> Option<String> {
    let uri: axum::http::Uri = url.parse().ok()?;
    let scheme = uri.scheme_str()?;
    if !matches!(scheme, "http" | "https") {
        return None;
    }
    let authority = uri.authority()?;
    if authority.as_str().contains('@') {
        return None;
    }
    let authority = authority.as_str().to_ascii_lowercase();
    // A browser's Origin leaves out the scheme's own port.
    let authority = match (scheme, authority.rsplit_once(':')) {
        ("https", Some((host, "443"))) | ("http", Some((host, "80"))) => host.to_owned(),
        _ => authority,
    };
    Some(format!("{scheme}://{authority}"))
}

/// Whether the browser's own account of where the request comes from says
/// refdesk's pages. `expected`: refdesk's origin, if known. Staff routes
/// ask it of reads too (`CurrentStaff`): a page on a host of the same site
/// gets the `SameSite=Strict` cookie sent with its requests, and though it
/// cannot read the answers, each would spend the librarian's budget of reads.
pub fn from_our_pages(headers: &HeaderMap, expected: Option<&str>) -> bool {
    let (Ok(site), Ok(origin)) = (single(headers, "sec-fetch-site"), single(headers, header::ORIGIN.as_str())) else {
        return false;
    };
    // `none`: typed in or bookmarked, not sent by a page.
    if site.is_some_and(|site| !matches!(site, "same-origin" | "none")) {
        return false;
    }
    let Some(origin) = origin else { return true };
    let origin = origin.to_ascii_lowercase();
    match expected {
        Some(ours) => origin == ours,
        // No public URL: the origin's host and port must be the Host asked for.
        None => {
            let host = headers.get(header::HOST).and_then(|h| h.to_str().ok()).map(str::to_ascii_lowercase);
            let authority = origin.split_once("://").map(|(_, a)| a);
            host.is_some() && authority == host.as_deref()
        }
    }
}

/// The one value of header `name`, if it was sent; `Err` when it was sent
/// more than once or is not text. A browser sends each of these once: two
/// are made by hand, and which one a proxy in front passes on, or checks,
/// is anyone's guess.
fn single<'h>(headers: &'h HeaderMap, name: &str) -> Result<Option<&'h str>, ()> {
    let mut all = headers.get_all(name).iter();
    match (all.next(), all.next()) {
        (None, _) => Ok(None),
        (Some(value), None) => value.to_str().map(Some).map_err(|_| ()),
        (Some(_), Some(_)) => Err(()),
    }
}

/// Whether a `Content-Type` says JSON: `application/json` or an
/// `application/…+json`, with any parameters (the types axum's `Json` takes).
fn is_json(headers: &HeaderMap) -> bool {
    let Some(Ok(value)) = headers.get(header::CONTENT_TYPE).map(|v| v.to_str()) else { return false };
    let essence = value.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    match essence.split_once('/') {
        Some(("application", sub)) => sub == "json" || sub.ends_with("+json"),
        _ => false,
    }
}

/// Whether the request has a body: a known length of 0 (no
/// `Content-Length`, or `Content-Length: 0`) is none; a chunked body is one.
fn has_body(req: &Request) -> bool {
    use axum::body::HttpBody;
    req.body().size_hint().exact() != Some(0)
}

/// `403 cross_origin`; with refdesk's origin (`ours`) said, so that a
/// librarian who opened the desk at another address of the same server
/// (http for https, an internal name) is told where to open it.
pub fn cross_origin(ours: Option<&str>) -> ApiError {
    let message = match ours {
        Some(ours) => format!("this request comes from a page that is not refdesk's own: open refdesk at {ours}"),
        None => "this request comes from a page that is not refdesk's own".into(),
    };
    ApiError { status: StatusCode::FORBIDDEN, code: "cross_origin", message, field: None }
}

/// Logs a refused origin at `warn`, once a minute at most (anyone can send
/// them without end): a desk opened at an address that is not
/// `public_url`'s fails every sign-in, and the operator should hear why.
fn tell_the_operator(state: &AppState, headers: &HeaderMap, ours: Option<&str>) {
    use std::sync::atomic::Ordering;
    let minute = state.app.clock().now().div_euclid(60_000);
    if state.cross_origin_told.swap(minute, Ordering::Relaxed) == minute {
        return;
    }
    let seen = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or("none");
    tracing::warn!(
        origin = seen("origin"),
        sec_fetch_site = seen("sec-fetch-site"),
        expected = ours.unwrap_or("the Host asked for"),
        "refused a request from a page that is not refdesk's own (once a minute at most); if it is your own desk's \
         address, open the desk at public_url's, or set public_url to it"
    );
}

/// The middleware: refuses, with `403 cross_origin`, a request that
/// changes something or upgrades to a WebSocket when the browser says it
/// comes from a page that is not refdesk's own; then, with
/// `415 unsupported_media_type`, one that changes something with a body
/// that is not declared JSON.
pub async fn check(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let changes = !matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS);
    let upgrade = req.headers().contains_key(header::UPGRADE);
    // Refusals anyone can send without end, before any limit: counted, and
    // logged at debug (`crate::metrics::Quiet`).
    let refused = |e: ApiError| (axum::Extension(crate::metrics::Quiet), e).into_response();
    if (changes || upgrade) && !from_our_pages(req.headers(), state.public_origin.as_deref()) {
        let ours = state.public_origin.as_deref();
        tell_the_operator(&state, req.headers(), ours);
        return refused(cross_origin(ours));
    }
    if changes && has_body(&req) && !is_json(req.headers()) {
        return refused(ApiError {
            status: StatusCode::UNSUPPORTED_MEDIA_TYPE,
            code: "unsupported_media_type",
            message: "a request body must be JSON, sent with Content-Type: application/json".into(),
            field: None,
        });
    }
    next.run(req).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(axum::http::HeaderName::from_bytes(k.as_bytes()).unwrap(), v.parse().unwrap());
        }
        h
    }

    #[test]
    fn public_urls_give_their_origin_and_nothing_else_passes() {
        assert_eq!(origin_of("https://Ask.Coop.example.org"), Some("https://ask.coop.example.org".into()));
        assert_eq!(origin_of("https://ask.example.org:8443/"), Some("https://ask.example.org:8443".into()));
        assert_eq!(origin_of("https://ask.example.org:443"), Some("https://ask.example.org".into()));
        assert_eq!(origin_of("http://ask.example.org:80"), Some("http://ask.example.org".into()));
        for bad in ["ask.example.org", "ftp://ask.example.org", "https://user:pw@ask.example.org", "/relative", ""] {
            assert_eq!(origin_of(bad), None, "{bad}");
        }
    }

    #[test]
    fn only_json_content_types_are_json() {
        for ok in ["application/json", "Application/JSON; charset=utf-8", "application/merge-patch+json"] {
            assert!(is_json(&headers(&[("content-type", ok)])), "{ok}");
        }
        for bad in ["text/plain", "text/json", "application/x-www-form-urlencoded", "multipart/form-data", ""] {
            assert!(!is_json(&headers(&[("content-type", bad)])), "{bad}");
        }
        assert!(!is_json(&headers(&[])), "no type");
    }

    #[test]
    fn only_refdesk_pages_may_act() {
        let ours = Some("https://ask.example.org");
        assert!(from_our_pages(&headers(&[]), ours), "not a browser");
        assert!(from_our_pages(&headers(&[("origin", "https://ask.example.org")]), ours));
        assert!(from_our_pages(
            &headers(&[("sec-fetch-site", "same-origin"), ("origin", "https://ask.example.org")]),
            ours
        ));
        for (k, v) in [
            ("origin", "https://library.example.edu"),
            ("origin", "https://other.ask.example.org"),
            ("origin", "http://ask.example.org"),
            ("origin", "null"),
            ("sec-fetch-site", "same-site"),
            ("sec-fetch-site", "cross-site"),
        ] {
            assert!(!from_our_pages(&headers(&[(k, v)]), ours), "{k}: {v}");
        }
        // Sent twice, even with ours first: refused.
        let mut twice = headers(&[("origin", "https://ask.example.org")]);
        twice.append("origin", "https://library.example.edu".parse().unwrap());
        assert!(!from_our_pages(&twice, ours));
        let mut twice = headers(&[("sec-fetch-site", "same-origin")]);
        twice.append("sec-fetch-site", "same-origin".parse().unwrap());
        assert!(!from_our_pages(&twice, ours));
        // No public URL: the Host decides.
        let h = headers(&[("host", "127.0.0.1:8080"), ("origin", "http://127.0.0.1:8080")]);
        assert!(from_our_pages(&h, None));
        let h = headers(&[("host", "127.0.0.1:8080"), ("origin", "http://127.0.0.1:9999")]);
        assert!(!from_our_pages(&h, None));
    }
}
