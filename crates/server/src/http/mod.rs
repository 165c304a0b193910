//! The HTTP API, one module per resource, each owning its `router()`.
//!
//! Every route is registered with its description: each module's `router()`
//! adds its handlers with utoipa-axum's `routes!`, which takes the method
//! and path from the handler's `#[utoipa::path]`. [`routes`] gathers them,
//! and both the router that serves and the OpenAPI document
//! (`openapi.rs`) are made from it. A route added any other way (a plain
//! `.route(…)`) would be served undescribed: the router test
//! (`tests/api/router.rs`) walks the router's own table and fails on it.

pub mod audit;
pub mod auth;
pub mod blocks;
pub mod desk;
pub mod openapi;
pub mod patron;
pub mod privacy;
pub mod questions;
pub mod reports;
pub mod staff;
mod unread;
pub mod views;
pub mod web;

use crate::error::ApiError;
use crate::http::views::ServiceView;
use crate::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::Router;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// Every route, with its description.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(openapi::base())
        .routes(routes!(healthz))
        .routes(routes!(readyz))
        .routes(routes!(service))
        .merge(auth::router())
        .merge(patron::router())
        .merge(desk::router())
        .merge(blocks::router())
        .merge(questions::router())
        .merge(reports::router())
        .merge(privacy::router())
        .merge(staff::router())
        .merge(audit::router())
        .merge(openapi::router())
        .merge(web::router())
        .routes(routes!(crate::ws::upgrade))
        .routes(routes!(crate::metrics::metrics))
}

/// The application: every route of [`routes`], behind the rate limits on
/// the open entry points and the origin check, each request counted and
/// given its id ([`crate::metrics::track`]).
pub fn router(state: AppState) -> Router {
    let (routes, _) = routes().split_for_parts();
    routes
        .fallback(not_found)
        .method_not_allowed_fallback(|| async {
            ApiError {
                status: StatusCode::METHOD_NOT_ALLOWED,
                code: "method_not_allowed",
                message: "this path does not take that method; see Allow".into(),
                field: None,
            }
        })
        // Innermost: what reaches a handler runs to its end.
        .layer(axum::middleware::from_fn_with_state(state.clone(), run_to_end))
        .layer(axum::extract::DefaultBodyLimit::max(body_limit(state.app.limits())))
        .layer(axum::middleware::from_fn_with_state(body_limit(state.app.limits()), refuse_announced_too_large))
        .layer(axum::middleware::from_fn(hold_answer))
        .layer(axum::middleware::from_fn_with_state(state.clone(), crate::limit::limit))
        .layer(axum::middleware::from_fn_with_state(state.clone(), crate::origin::check))
        // What the limits and the origin check refuse is counted, timed and
        // given a request id too.
        .layer(axum::middleware::from_fn_with_state(state.clone(), crate::metrics::track))
        .layer(axum::middleware::from_fn(unread::close_if_unread))
        // Outermost: every answer, refusals and the fallback's among them.
        .layer(axum::middleware::from_fn(safe_headers))
        .with_state(state)
}

/// Answers one staff member (all their sign-ins together) may have on their
/// way at once: built, not yet all sent. An answer is built whole before it
/// goes (a chat's page of 1 MiB of text is ~2 MiB of JSON once escaped, a
/// report or an export a few MB), and a client that does not read it holds
/// it until `idle_seconds` let it go: an account (or a stolen cookie) asking
/// at its read budget's pace and reading nothing held gigabytes (found by
/// an attacker's trial). Past this, `429 rate_limited`. The desk's pages
/// ask a few at a time.
pub const ANSWERS_PER_STAFF: usize = 16;

/// Each staff member's answers on their way ([`ANSWERS_PER_STAFF`]).
#[derive(Default)]
pub struct Answers(std::sync::Mutex<std::collections::HashMap<refdesk_domain::ids::StaffId, usize>>);

impl Answers {
    /// A place for one more of `staff`'s answers, given back when dropped;
    /// `None` when they have [`ANSWERS_PER_STAFF`] on their way.
    pub fn take(self: &Arc<Self>, staff: refdesk_domain::ids::StaffId) -> Option<AnswerPlace> {
        let mut held = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let n = held.entry(staff).or_default();
        if *n >= ANSWERS_PER_STAFF {
            return None;
        }
        *n += 1;
        Some(AnswerPlace(self.clone(), staff))
    }
}

/// One of a staff member's places for an answer on its way.
pub struct AnswerPlace(Arc<Answers>, refdesk_domain::ids::StaffId);

impl Drop for AnswerPlace {
    fn drop(&mut self) {
        let mut held = self.0 .0.lock().unwrap_or_else(|p| p.into_inner());
        if let std::collections::hash_map::Entry::Occupied(mut n) = held.entry(self.1) {
            *n.get_mut() -= 1;
            if *n.get() == 0 {
                n.remove();
            }
        }
    }
}

/// Where a request's [`AnswerPlace`] is put by the sign-in's check
/// (`auth::CurrentStaff`), for [`hold_answer`] to keep with the answer.
#[derive(Clone, Default)]
pub struct AnswerSlot(Arc<std::sync::Mutex<Option<AnswerPlace>>>);

impl AnswerSlot {
    /// Keeps `place` with this request's answer.
    pub fn keep(&self, place: AnswerPlace) {
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = Some(place);
    }
}

/// A staff member's answer holds its [`AnswerPlace`] until all of it is
/// sent (or dropped).
async fn hold_answer(mut req: axum::extract::Request, next: axum::middleware::Next) -> axum::response::Response {
    let slot = AnswerSlot::default();
    req.extensions_mut().insert(slot.clone());
    let answer = next.run(req).await;
    let place = slot.0.lock().unwrap_or_else(|p| p.into_inner()).take();
    match place {
        Some(place) => answer.map(|body| axum::body::Body::new(Holding { body, rest: None, _place: place })),
        None => answer,
    }
}

/// An answer's body and the place it holds, handed to hyper a piece of
/// [`HOLDING_PIECE`] at a time: hyper takes the next piece only once its
/// write buffer has room, so the body (and the place) ends as the answer is
/// nearly all sent, not as hyper has taken the whole of a JSON answer built
/// in one piece.
struct Holding {
    body: axum::body::Body,
    /// What is left of the last piece taken from `body`.
    rest: Option<axum::body::Bytes>,
    _place: AnswerPlace,
}

/// The most of an answer handed to hyper at once ([`Holding`]).
const HOLDING_PIECE: usize = 64 * 1024;

impl hyper::body::Body for Holding {
    type Data = axum::body::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<Self::Data>, Self::Error>>> {
        use std::task::Poll;
        let this = self.get_mut();
        let mut rest = match this.rest.take() {
            Some(rest) => rest,
            None => match std::pin::Pin::new(&mut this.body).poll_frame(cx) {
                Poll::Ready(Some(Ok(frame))) => match frame.into_data() {
                    Ok(data) => data,
                    Err(frame) => return Poll::Ready(Some(Ok(frame))),
                },
                other => return other,
            },
        };
        if rest.len() > HOLDING_PIECE {
            let piece = rest.split_to(HOLDING_PIECE);
            this.rest = Some(rest);
            return Poll::Ready(Some(Ok(hyper::body::Frame::data(piece))));
        }
        Poll::Ready(Some(Ok(hyper::body::Frame::data(rest))))
    }

    fn is_end_stream(&self) -> bool {
        self.rest.is_none() && self.body.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        let rest = self.rest.as_ref().map_or(0, |r| r.len() as u64);
        let body = self.body.size_hint();
        let mut hint = hyper::body::SizeHint::new();
        hint.set_lower(body.lower() + rest);
        if let Some(upper) = body.upper() {
            hint.set_upper(upper + rest);
        }
        hint
    }
}

/// Requests that change something running at once in tasks of their own
/// ([`run_to_end`]), at most: each is also under the rate limits.
pub const DETACHED: usize = 1024;

/// A request that may change something runs to its end even when its
/// client goes. hyper drops a request's future when its connection closes,
/// and a use case stopped between two of its writes is left half done: a
/// sign-out had put one of its librarian's chats back in line and not the
/// next (the desk reloaded as its sockets closed with the sign-in, and the
/// browser dropped the request), leaving a patron with nobody. A read
/// (`GET`, `HEAD`, `OPTIONS`) changes nothing, and stops with its client.
async fn run_to_end(
    State(state): State<AppState>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::http::Method;
    use axum::response::IntoResponse;
    use tracing::Instrument;
    if matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS) {
        return next.run(req).await;
    }
    // Bounded: a client sending and hanging up again and again does not
    // pile up work past its connection (past the bound, as a read).
    let Ok(place) = state.detached.clone().try_acquire_owned() else {
        return next.run(req).await;
    };
    // In a task of its own, with the request's span (its request id). It
    // holds the server's going-away signal as a socket does: a shutdown
    // waits for it (within half of `shutdown_seconds`) before the store
    // closes under it.
    let held = state.going_away.subscribe();
    let run = async move {
        let _held = (held, place);
        next.run(req).await
    };
    match tokio::spawn(run.in_current_span()).await {
        Ok(res) => res,
        Err(e) => ApiError::internal(format_args!("a request's handler failed: {e}")).into_response(),
    }
}

/// What no route answers. A page's address with a slash at its end (a
/// library's webmaster often adds one to `/ask/{slug}`) is sent on to the
/// one without; only a plain path is (letters, digits, `-`, `_`, `.`):
/// `//elsewhere.example/` must not become a link to another site.
async fn not_found(method: axum::http::Method, uri: axum::http::Uri) -> axum::response::Response {
    use axum::response::IntoResponse;
    let path = uri.path();
    let trimmed = path.trim_end_matches('/');
    let plain = |p: &str| {
        p.starts_with('/') && !p.starts_with("/api/") && p[1..].split('/').all(|seg| !matches!(seg, "" | "." | ".."))
    };
    let safe = trimmed.bytes().all(|b| b.is_ascii_alphanumeric() || b"/-_.".contains(&b));
    if matches!(method, axum::http::Method::GET | axum::http::Method::HEAD)
        && trimmed.len() < path.len()
        && plain(trimmed)
        && safe
    {
        let to = match uri.query() {
            Some(query) => format!("{trimmed}?{query}"),
            None => trimmed.to_owned(),
        };
        if let Ok(to) = axum::http::HeaderValue::from_str(&to) {
            return (StatusCode::PERMANENT_REDIRECT, [(axum::http::header::LOCATION, to)]).into_response();
        }
    }
    ApiError { status: StatusCode::NOT_FOUND, code: "not_found", message: "no such page".into(), field: None }
        .into_response()
}

/// An API answer is kept by no cache unless it says otherwise: most hold a
/// patron's words, name or e-mail address, and a staff computer at a
/// shared desk keeps what its browser cached after the librarian signs out
/// (and past an erasure). Pages say so themselves (`web.rs`). And no answer
/// is sniffed into another type than it says (a 404's text, a refusal's
/// JSON): `X-Content-Type-Options: nosniff` on every one.
async fn safe_headers(req: axum::extract::Request, next: axum::middleware::Next) -> axum::response::Response {
    use axum::http::{header, HeaderValue};
    let api = req.uri().path().starts_with("/api/");
    let mut res = next.run(req).await;
    let headers = res.headers_mut();
    if api {
        headers.entry(header::CACHE_CONTROL).or_insert(HeaderValue::from_static("no-store"));
    }
    headers.entry(header::X_CONTENT_TYPE_OPTIONS).or_insert(HeaderValue::from_static("nosniff"));
    res
}

/// The largest request body read, in bytes: room for the longest text
/// anyone may send (a policy page, or a message of `max_message_chars`),
/// each character escaped as JSON may escape it (6 bytes), and the rest
/// of the request. A larger body is `413 too_large`, refused from its
/// `Content-Length` before it is read (axum's default was 2 MB).
pub fn body_limit(limits: &refdesk_app::Limits) -> usize {
    limits.max_message_chars.max(refdesk_app::staff::MAX_POLICY_CHARS) * 6 + 1024
}

/// Refuses a body whose `Content-Length` is past the limit before reading
/// any of it: the limit alone would read it until it got there, holding
/// the connection while a client trickles it in. What a handler then reads
/// of a body, it reads whole into one buffer of its own, and only once the
/// request has passed its checks (the sign-in among them): the limit goes
/// with the request ([`crate::error::BodyLimit`]) to the extractors that
/// read it ([`crate::error::Json`], [`crate::error::WholeBody`]).
async fn refuse_announced_too_large(
    State(limit): State<usize>,
    mut req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let announced =
        req.headers().get(axum::http::header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if announced.is_some_and(|n| n > limit as u64) {
        return axum::response::IntoResponse::into_response(ApiError::too_large());
    }
    req.extensions_mut().insert(crate::error::BodyLimit(limit));
    next.run(req).await
}

/// Liveness: the process answers.
#[utoipa::path(get, path = "/healthz", tag = "health",
    responses((status = 200, description = "`ok`", body = String, content_type = "text/plain")))]
async fn healthz() -> &'static str {
    "ok"
}

/// What a page needs to know of the service: its public URL (for the
/// widget snippet), if one is set.
#[utoipa::path(get, path = "/api/service", tag = "health",
    responses((status = 200, description = "the service", body = ServiceView)))]
async fn service(State(state): State<AppState>) -> axum::Json<ServiceView> {
    axum::Json(ServiceView { public_url: state.public_url.clone() })
}

/// Readiness: whether this node should take traffic.
///
/// Ready when shutdown has not begun, the database answers reads and the
/// store can commit a write (on SQLite: its writer thread is alive and
/// committing, which a read-only file is not). Answers within
/// [`crate::ready::READY_WITHIN`] whatever the database does (see
/// [`crate::ready`]).
#[utoipa::path(get, path = "/readyz", tag = "health",
    responses(
        (status = 200, description = "`ready`", body = String, content_type = "text/plain"),
        (status = 503, description = "`draining` (shutdown has begun: the node still serves for `drain_seconds`, then closes), `database not answering` (no check finished in the last 2 s nor within 500 ms), `database unavailable` or `database cannot commit`; the database's three recover by themselves", body = String, content_type = "text/plain"),
    ))]
async fn readyz(State(state): State<AppState>) -> (StatusCode, &'static str) {
    if state.draining.load(Ordering::SeqCst) {
        return (StatusCode::SERVICE_UNAVAILABLE, "draining");
    }
    match state.readiness.check(state.app.store()).await {
        Ok(()) => (StatusCode::OK, "ready"),
        Err(why) => (StatusCode::SERVICE_UNAVAILABLE, why),
    }
}
