//! `GET /healthz` (the process is up) and `GET /readyz` (its dependencies answer).

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

async fn healthz() -> Json<Json_> {
    Json(json!({ "status": "ok" }))
}

async fn readyz(State(state): State<AppState>) -> Result<Json<Json_>, ApiError> {
    let (redis, postgres) = tokio::join!(state.stores.ping_redis(), state.stores.ping_postgres());
    let prompts = state.service.prompts().snapshot().versions();
    let mut checks = BTreeMap::new();
    let mut failing = BTreeMap::new();
    for (name, result) in [("redis", redis), ("postgres", postgres)] {
        match result {
            Ok(()) => {
                checks.insert(name.to_owned(), "ok".to_owned());
            }
            Err(err) => {
                failing.insert(name.to_owned(), format!("{err:#}"));
            }
        }
    }
    if !failing.is_empty() {
        return Err(ApiError::NotReady { failing });
    }
    checks.insert(
        "prompts".to_owned(),
        format!("ok ({} features)", prompts.len()),
    );
    Ok(Json(json!({ "status": "ready", "checks": checks })))
}
