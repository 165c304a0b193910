//! The HTTP API, one module per resource, each owning its `router()`.

pub mod auth;
pub mod blocks;
pub mod desk;
pub mod openapi;
pub mod patron;
pub mod questions;
pub mod staff;
pub mod web;

use crate::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::Router;
use std::sync::atomic::Ordering;

/// All routes.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/api/service", get(service))
        .merge(auth::router())
        .merge(patron::router())
        .merge(desk::router())
        .merge(blocks::router())
        .merge(questions::router())
        .merge(staff::router())
        .merge(openapi::router())
        .merge(web::router())
        .route("/api/ws", get(crate::ws::upgrade))
        .fallback(|| async {
            crate::error::ApiError { status: StatusCode::NOT_FOUND, code: "not_found", message: "no such page".into() }
        })
        .layer(axum::middleware::from_fn_with_state(state.clone(), crate::limit::limit))
        .layer(axum::middleware::from_fn_with_state(state.clone(), crate::origin::check))
        .with_state(state)
}

/// What a page needs to know of the service: its public URL (for the
/// widget snippet), if one is set.
async fn service(State(state): State<AppState>) -> axum::Json<serde_json::Value> {
    axum::Json(serde_json::json!({ "public_url": state.public_url }))
}

/// Ready when the database answers reads, the store can commit a write
/// (on SQLite: its writer thread is alive and committing), and shutdown has
/// not begun. A read alone is no proof: SQLite reads go on beside a writer
/// that cannot commit. Answers within a few seconds whatever the store does.
async fn readyz(State(state): State<AppState>) -> (StatusCode, &'static str) {
    if state.draining.load(Ordering::SeqCst) {
        return (StatusCode::SERVICE_UNAVAILABLE, "shutting down");
    }
    if let Err(e) = state.app.store.is_empty().await {
        tracing::warn!(error = %e, "not ready: the database does not answer");
        return (StatusCode::SERVICE_UNAVAILABLE, "database unavailable");
    }
    let wait = refdesk_store::HEALTH_WAIT + std::time::Duration::from_secs(1);
    match tokio::time::timeout(wait, state.app.store.health()).await {
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
