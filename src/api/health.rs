//! `GET /healthz` (the process is up) and `GET /readyz` (its dependencies answer, each with how
//! long its check took).

use std::collections::BTreeMap;
use std::future::Future;
use std::time::Instant;

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

/// Runs a check and says how long it took, in milliseconds (to the microsecond).
async fn timed<T>(check: impl Future<Output = T>) -> (T, f64) {
    let started = Instant::now();
    let result = check.await;
    let ms = (started.elapsed().as_secs_f64() * 1e6).round() / 1e3;
    (result, ms)
}

#[utoipa::path(
    get, path = "/readyz", operation_id = "readyz", tag = "health", security(()),
    responses((status = 200, description = "Redis, PostgreSQL and the prompts answer, with each check's latency", body = super::openapi::Ready), (status = 503))
)]
pub(super) async fn readyz(State(state): State<AppState>) -> Result<Json<Json_>, ApiError> {
    let ((redis, redis_ms), (postgres, postgres_ms)) = tokio::join!(
        timed(state.stores.ping_redis()),
        timed(state.stores.ping_postgres())
    );
    let (features, prompts_ms) =
        timed(async { state.service.prompts().snapshot().versions().len() }).await;
    let mut checks = BTreeMap::new();
    let mut failing = BTreeMap::new();
    for (name, result, ms) in [
        ("redis", redis, redis_ms),
        ("postgres", postgres, postgres_ms),
    ] {
        match result {
            Ok(()) => {
                checks.insert(name, json!({ "status": "ok", "latency_ms": ms }));
            }
            Err(err) => {
                failing.insert(name.to_owned(), format!("{err:#} (after {ms} ms)"));
            }
        }
    }
    if !failing.is_empty() {
        return Err(ApiError::NotReady { failing });
    }
    checks.insert(
        "prompts",
        json!({ "status": "ok", "features": features, "latency_ms": prompts_ms }),
    );
    Ok(Json(json!({ "status": "ready", "checks": checks })))
}
