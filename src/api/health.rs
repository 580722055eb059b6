//! `GET /healthz` (the process is up) and `GET /readyz` (its dependencies answer, each with how
//! long its check took).

use std::collections::BTreeMap;

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Value as Json_, json};

use super::problem::ApiError;
use crate::app::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
}

#[utoipa::path(
    get, path = "/healthz", operation_id = "healthz", tag = "health", security(()),
    responses((status = 200, description = "The process runs", body = super::openapi::Live))
)]
pub(super) async fn healthz() -> Json<Json_> {
    Json(json!({ "status": "ok" }))
}

#[utoipa::path(
    get, path = "/readyz", operation_id = "readyz", tag = "health", security(()),
    responses((status = 200, description = "Redis, PostgreSQL and the prompts answer, with each check's latency", body = super::openapi::Ready), (status = 503))
)]
pub(super) async fn readyz(State(state): State<AppState>) -> Result<Json<Json_>, ApiError> {
    let started = std::time::Instant::now();
    let (checks, features) = state.service.readiness().await;
    let failing = crate::service::health::failing(&checks);
    if !failing.is_empty() {
        return Err(ApiError::NotReady { failing });
    }
    let mut answer: BTreeMap<&str, Json_> = checks
        .iter()
        .map(|c| {
            (
                c.name,
                json!({ "status": "ok", "latency_ms": c.latency_ms }),
            )
        })
        .collect();
    let prompts_ms = (started.elapsed().as_secs_f64() * 1e6).round() / 1e3;
    answer.insert(
        "prompts",
        json!({ "status": "ok", "features": features, "latency_ms": prompts_ms }),
    );
    Ok(Json(json!({ "status": "ready", "checks": answer })))
}
