//! The HTTP API, one module per resource, each owning its `router()`.
//!
//! Every route is registered with its description: each module's `router()`
//! adds its handlers with utoipa-axum's `routes!`, which takes the method
//! and path from the handler's `#[utoipa::path]`. [`routes`] gathers them,
//! and both the router that serves and the OpenAPI document
//! (`openapi.rs`) are made from it. A route added any other way (a plain
//! `.route(…)`) would be served undescribed: the router test
//! (`tests/api/router.rs`) walks the router's own table and fails on it.

pub mod auth;
pub mod blocks;
pub mod desk;
pub mod openapi;
pub mod patron;
pub mod privacy;
pub mod questions;
pub mod reports;
pub mod staff;
pub mod views;
pub mod web;

use crate::error::ApiError;
use crate::http::views::ServiceView;
use crate::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::Router;
use std::sync::atomic::Ordering;
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
        .fallback(|| async {
            ApiError { status: StatusCode::NOT_FOUND, code: "not_found", message: "no such page".into() }
        })
        .method_not_allowed_fallback(|| async {
            ApiError {
                status: StatusCode::METHOD_NOT_ALLOWED,
                code: "method_not_allowed",
                message: "this path does not take that method; see Allow".into(),
            }
        })
        .layer(axum::middleware::from_fn_with_state(state.clone(), crate::limit::limit))
        .layer(axum::middleware::from_fn_with_state(state.clone(), crate::origin::check))
        // Outermost: what the limits and the origin check refuse is counted,
        // timed and given a request id too.
        .layer(axum::middleware::from_fn_with_state(state.clone(), crate::metrics::track))
        .with_state(state)
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
/// Ready when the database answers reads, the store can commit a write
/// (on SQLite: its writer thread is alive and committing), and shutdown has
/// not begun. A read alone is no proof: SQLite reads go on beside a writer
/// that cannot commit. Answers within a few seconds whatever the store does.
#[utoipa::path(get, path = "/readyz", tag = "health",
    responses(
        (status = 200, description = "`ready`", body = String, content_type = "text/plain"),
        (status = 503, description = "`shutting down`, `database unavailable` or `database cannot commit` (recovers by itself)", body = String, content_type = "text/plain"),
    ))]
async fn readyz(State(state): State<AppState>) -> (StatusCode, &'static str) {
    if state.draining.load(Ordering::SeqCst) {
        return (StatusCode::SERVICE_UNAVAILABLE, "shutting down");
    }
    if let Err(e) = state.app.store().is_empty().await {
        tracing::warn!(error = %e, "not ready: the database does not answer");
        return (StatusCode::SERVICE_UNAVAILABLE, "database unavailable");
    }
    let wait = refdesk_store::HEALTH_WAIT + std::time::Duration::from_secs(1);
    match tokio::time::timeout(wait, state.app.store().health()).await {
        Ok(Ok(())) => (StatusCode::OK, "ready"),
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "not ready: the database cannot commit");
            (StatusCode::SERVICE_UNAVAILABLE, "database cannot commit")
        }
        Err(_) => {
            tracing::warn!("not ready: the database's health check did not answer in time");
            (StatusCode::SERVICE_UNAVAILABLE, "database cannot commit")
        }
    }
}
