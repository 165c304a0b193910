//! The OpenAPI document, served at `/api/openapi.json`, derived from the
//! code: each handler's `#[utoipa::path]` names its method, path,
//! parameters, request body and answers, with schemas derived from the very
//! types it takes and sends (the request structs next to each handler, the
//! views of `views.rs`, the domain's wire types). The router and the
//! document are made from one list ([`super::routes`]); the router test
//! (`tests/api/router.rs`) walks the router and checks that every route it
//! serves is here, and every operation here is served.
//!
//! What every operation of a kind may answer, whatever its handler does, is
//! added here once, from what the operation declares ([`edge_responses`]):
//! `401` for a sign-in it lacks (and `429` when the client's address made
//! up too many), `403 cross_origin` for a change asked by
//! another site's page, `400`/`413`/`415`/`422` for a body that is not the
//! JSON it takes, `400` for a path or query string that does not parse,
//! `503 unavailable` while the database cannot be reached or written. A
//! handler's own `responses(...)` list what its use case may refuse.

use crate::error::ErrorBody;
use crate::AppState;
use utoipa::openapi::path::{Operation, ParameterIn};
use utoipa::openapi::response::ResponseBuilder;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{ContentBuilder, OpenApi, Ref, RefOr};
use utoipa::OpenApi as _;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// The name of the staff sign-in's security scheme (the cookie).
pub const STAFF: &str = "staff";
/// The name of the patron's security scheme (the chat's bearer token).
pub const PATRON: &str = "patron";

/// The document's frame: what is said once for the whole API.
#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "refdesk",
        description = "Virtual reference service: live chat between library patrons and librarians. \
Real-time traffic uses the WebSocket at /api/ws (docs/protocol.md). Staff sign in with POST /api/login, \
which sets the `refdesk_session` cookie (`__Host-refdesk_session` when cookies are Secure: an https \
public_url, or secure_cookies); a patron's chat is opened by its secret token \
(`Authorization: Bearer …`), returned once when the chat starts. A browser request that changes something, \
or upgrades to a WebSocket, or any staff request (reads too), from a page that is not refdesk's own gets 403 \
cross_origin. A request that \
changes something and has a body must send it as Content-Type: application/json, else 415 \
unsupported_media_type (nothing changes). A JSON body of the wrong shape (missing, mistyped or unknown \
field) is 422 bad_json; one that is not JSON, 400 bad_json. Every error is {\"error\": {\"code\", \"message\"}}."
    ),
    components(schemas(ErrorBody))
)]
struct Frame;

/// The frame with the security schemes, to which [`super::routes`] adds every operation.
pub fn base() -> OpenApi {
    let mut doc = Frame::openapi();
    let components = doc.components.get_or_insert_with(Default::default);
    components.add_security_scheme(
        STAFF,
        SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::with_description(
            crate::input::COOKIE_NAME,
            "set by POST /api/login (HttpOnly, SameSite=Strict); named __Host-refdesk_session, and Secure, when refdesk is served over https",
        ))),
    );
    components.add_security_scheme(
        PATRON,
        SecurityScheme::Http(
            HttpBuilder::new()
                .scheme(HttpAuthScheme::Bearer)
                .description(Some("the chat's secret token, from POST /api/libraries/{slug}/chats"))
                .build(),
        ),
    );
    doc
}

/// Routes of this module.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(openapi_json))
}

/// The whole document.
pub fn document() -> OpenApi {
    let mut doc = super::routes().into_openapi();
    for (path, item) in doc.paths.paths.iter_mut() {
        let ops = [
            (false, &mut item.get),
            (false, &mut item.head),
            (false, &mut item.options),
            (true, &mut item.post),
            (true, &mut item.put),
            (true, &mut item.delete),
            (true, &mut item.patch),
        ];
        for (changes, op) in ops {
            if let Some(op) = op {
                // The upgrade is checked like a change: a socket acts.
                // Signing out spends none of the sign-in's budget.
                let writes = changes && path != "/api/logout";
                let reads = !changes && path != "/api/ws";
                edge_responses(op, (changes || path == "/api/ws", writes, reads), path.starts_with("/api/"));
                if path.starts_with("/api/") && path != "/api/openapi.json" {
                    add(op, 503, UNAVAILABLE);
                }
            }
        }
    }
    doc
}

/// This document.
#[utoipa::path(get, path = "/api/openapi.json", tag = "health",
    responses((status = 200, description = "the OpenAPI document of this API", body = Object)))]
async fn openapi_json() -> axum::response::Response {
    use axum::response::IntoResponse as _;
    match served() {
        Ok(doc) => ([(axum::http::header::CONTENT_TYPE, "application/json")], axum::body::Bytes::from_static(doc))
            .into_response(),
        Err(e) => crate::error::ApiError::from(refdesk_app::AppError::Internal(e.clone().into())).into_response(),
    }
}

/// The document as served: built and encoded once, on the first request
/// (anyone may ask for it, and building it costs milliseconds).
fn served() -> &'static Result<Vec<u8>, String> {
    static DOC: std::sync::LazyLock<Result<Vec<u8>, String>> = std::sync::LazyLock::new(|| {
        serde_json::to_vec(&document()).map_err(|e| format!("cannot encode the OpenAPI document: {e}"))
    });
    &DOC
}

/// Adds to `op` what the edge may answer before or around its handler:
/// the refusals of the sign-in extractors, the origin check, the JSON body,
/// path and query extractors. `changes`: whether the origin is checked;
/// whether the method writes (a staff member's write budget is spent), or
/// reads (their read budget is).
fn edge_responses(op: &mut Operation, (changes, writes, reads): (bool, bool, bool), api: bool) {
    let schemes: Vec<String> = op
        .security
        .iter()
        .flatten()
        .filter_map(|r| serde_json::to_value(r).ok())
        .filter_map(|v| v.as_object().map(|o| o.keys().cloned().collect::<Vec<_>>()))
        .flatten()
        .collect();
    if schemes.iter().any(|s| s == STAFF) {
        add(op, 401, "`unauthenticated`: no sign-in cookie, or one that signs nobody in (expired, signed out)");
    }
    if schemes.iter().any(|s| s == PATRON) {
        add(op, 401, "`unauthenticated`: no chat token, or one that opens no chat");
    }
    if schemes.iter().any(|s| s == STAFF || s == PATRON) {
        add(op, 429, "`rate_limited`: the client's address presented more sign-in cookies or chat tokens that matched nothing than `limits.bad_credentials_per_minute` (120) allows, and each is refused before it is looked up until its budget refills; `Retry-After` says when to try again");
    }
    if writes && schemes.iter().any(|s| s == STAFF) {
        add(op, 429, "`rate_limited`: this staff member's writes over HTTP, all their sign-ins together, went past `limits.frames_per_second` (20 a second, bursts of `frame_burst`, 60), or 16 answers to them are still on their way (not all read); nothing was written (`Retry-After: 1`)");
    } else if reads && schemes.iter().any(|s| s == STAFF) {
        add(op, 429, "`rate_limited`: this staff member's reads, all their sign-ins together, went past `limits.staff_reads_per_second` (50 a second, bursts of ten seconds' worth), or 16 answers to them are still on their way (not all read) (`Retry-After: 1`)");
    }
    if changes {
        add(op, 403, "`cross_origin`: asked by a page that is not refdesk's own");
    }
    if op.request_body.is_some() {
        add(op, 400, "`bad_json`: the body is not JSON");
        add(op, 413, "`too_large`: the body (or its `Content-Length`) is past the limit: 6 bytes for each character of the longest text anyone may send (20,000, a policy page, or `max_message_chars` if larger), plus 1,024");
        add(op, 415, "`unsupported_media_type`: the body is not declared `application/json`");
        add(op, 422, "`bad_json`: JSON of the wrong shape (a missing, mistyped or unknown field)");
    }
    let params = op.parameters.iter().flatten();
    let (mut path, mut query) = (false, false);
    for p in params {
        path |= matches!(p.parameter_in, ParameterIn::Path);
        query |= matches!(p.parameter_in, ParameterIn::Query);
    }
    if api && path {
        add(op, 400, "`bad_path`: a path parameter of the wrong type");
    }
    if api && query {
        add(op, 400, "`bad_query`: a query string that does not parse (a wrong type, an unknown parameter)");
    }
}

/// What any operation that reads or writes the database may answer.
const UNAVAILABLE: &str = "`unavailable`: the database cannot be reached or cannot write just now (it is down, read-only or out of space). `Retry-After` says when to try again";

/// Adds an error answer to `op`, or its reason to the one already there.
fn add(op: &mut Operation, status: u16, why: &str) {
    let key = status.to_string();
    match op.responses.responses.get_mut(&key) {
        Some(RefOr::T(existing)) => {
            if !existing.description.contains(why) {
                existing.description = format!("{}; {why}", existing.description);
            }
        }
        Some(RefOr::Ref(_)) => {}
        None => {
            let content = ContentBuilder::new().schema(Some(Ref::from_schema_name("ErrorBody"))).build();
            let response = ResponseBuilder::new().description(why).content("application/json", content).build();
            op.responses.responses.insert(key, RefOr::T(response));
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_document_is_built_once_and_served_as_built() {
        let first = super::served().as_ref().unwrap();
        assert!(std::ptr::eq(first, super::served().as_ref().unwrap()), "not built again for a second request");
        let doc: serde_json::Value = serde_json::from_slice(first).unwrap();
        assert_eq!(doc, serde_json::to_value(super::document()).unwrap());
    }
}
