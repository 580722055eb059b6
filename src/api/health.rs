//! `GET /healthz` (the process is up) and `GET /readyz` (its dependencies answer, each with how
//! long its check took).

use std::collections::BTreeMap;

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;
use utoipa::ToSchema;

use super::problem::ApiError;
use crate::api::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
}

/// The process runs.
#[derive(Serialize, ToSchema)]
pub(super) struct Live {
    /// `ok`.
    status: &'static str,
}

#[derive(Serialize, ToSchema)]
pub(super) struct Check {
    /// `ok`.
    status: &'static str,
    latency_ms: f64,
    /// Prompts: the features loaded.
    #[serde(skip_serializing_if = "Option::is_none")]
    features: Option<usize>,
}

/// Every dependency answers.
#[derive(Serialize, ToSchema)]
pub(super) struct Ready {
    /// `ready`.
    status: &'static str,
    /// `redis`, `postgres`, `prompts`.
    checks: BTreeMap<&'static str, Check>,
}

#[utoipa::path(
    get, path = "/healthz", operation_id = "healthz", tag = "health", security(()),
    responses((status = 200, description = "The process runs", body = Live))
)]
pub(super) async fn healthz() -> Json<Live> {
    Json(Live { status: "ok" })
}

#[utoipa::path(
    get, path = "/readyz", operation_id = "readyz", tag = "health", security(()),
    responses((status = 200, description = "Redis, PostgreSQL and the prompts answer, with each check's latency", body = Ready), (status = 503))
)]
pub(super) async fn readyz(State(state): State<AppState>) -> Result<Json<Ready>, ApiError> {
    let checks = state.service.readiness().await;
    let failing: BTreeMap<String, String> = checks
        .iter()
        .filter_map(|c| c.failure.clone().map(|f| (c.name.to_owned(), f)))
        .collect();
    if !failing.is_empty() {
        return Err(ApiError::NotReady { failing });
    }
    let checks = checks
        .into_iter()
        .map(|c| {
            let check = Check {
                status: "ok",
                latency_ms: c.latency_ms,
                features: c.features,
            };
            (c.name, check)
        })
        .collect();
    Ok(Json(Ready {
        status: "ready",
        checks,
    }))
}
