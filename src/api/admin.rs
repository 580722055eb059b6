//! `/v1/admin/*`: operator endpoints (admin role only).

use axum::extract::State;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{Map, Value as Json_, json};

use super::auth::require_role;
use super::problem::ApiError;
use crate::app::AppState;
use crate::auth::{Principal, Role};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/admin/prompts", get(list_prompts))
        .route("/v1/admin/prompts/reload", post(reload_prompts))
        .route("/v1/admin/dead", get(dead))
        .route("/v1/admin/dead/{id}/retry", post(retry_dead))
        .route("/v1/admin/providers", get(providers))
}

/// The providers the chains use: calls this process made, breaker state, last health check.
#[utoipa::path(
    get, path = "/v1/admin/providers", operation_id = "listProviders", tag = "admin",
    responses((status = 200, description = "Providers: calls, circuit breaker state, last health check", body = super::openapi::Providers), (status = 401), (status = 403))
)]
pub(super) async fn providers(
    State(state): State<AppState>,
    principal: Principal,
) -> Result<Json<Json_>, ApiError> {
    require_role(&principal, &[Role::Admin])?;
    let providers = state.service.providers().status();
    Ok(Json(json!({ "providers": providers })))
}

fn versions_json(set: &crate::prompts::PromptSet) -> Json_ {
    let map: Map<String, Json_> = set
        .versions()
        .into_iter()
        .map(|(feature, versions)| (feature.to_string(), versions.into()))
        .collect();
    Json_::Object(map)
}

#[utoipa::path(
    get, path = "/v1/admin/prompts", operation_id = "listPrompts", tag = "admin",
    responses((status = 200, description = "Loaded prompt versions per feature", body = super::openapi::PromptVersions), (status = 401), (status = 403))
)]
pub(super) async fn list_prompts(
    State(state): State<AppState>,
    principal: Principal,
) -> Result<Json<Json_>, ApiError> {
    require_role(&principal, &[Role::Admin])?;
    Ok(Json(
        json!({ "prompts": versions_json(&state.service.prompts().snapshot()) }),
    ))
}

/// Loads `prompts/` again; a bad file answers 422 and leaves the running prompts in place.
#[utoipa::path(
    post, path = "/v1/admin/prompts/reload", operation_id = "reloadPrompts", tag = "admin",
    responses((status = 200, description = "Reloaded", body = super::openapi::PromptsReloaded), (status = 401), (status = 403),
        (status = 422))
)]
pub(super) async fn reload_prompts(
    State(state): State<AppState>,
    principal: Principal,
) -> Result<Json<Json_>, ApiError> {
    require_role(&principal, &[Role::Admin])?;
    let set = state
        .service
        .prompts()
        .reload()
        .map_err(ApiError::InvalidPrompts)?;
    tracing::info!(by = %principal.user_id, "prompts reloaded");
    Ok(Json(
        json!({ "reloaded": true, "prompts": versions_json(&set) }),
    ))
}

/// Dead tasks, newest first (at most 100).
#[utoipa::path(
    get, path = "/v1/admin/dead", operation_id = "listDeadTasks", tag = "admin",
    responses((status = 200, description = "Dead tasks of the last week", body = super::openapi::DeadTasks), (status = 401), (status = 403),
        (status = 503))
)]
pub(super) async fn dead(
    State(state): State<AppState>,
    principal: Principal,
) -> Result<Json<Json_>, ApiError> {
    require_role(&principal, &[Role::Admin])?;
    let records = state.service.dead_tasks(100).await?;
    let tasks: Vec<Json_> = records
        .iter()
        .map(|r| {
            let mut view = r.to_json();
            view["user_id"] = r.user_id.clone().into();
            view
        })
        .collect();
    Ok(Json(json!({ "tasks": tasks })))
}

/// Queues a dead task again with fresh attempts.
#[utoipa::path(
    post, path = "/v1/admin/dead/{id}/retry", operation_id = "replayDeadTask", tag = "admin",
    params(("id" = String, Path, description = "The id")),
    responses((status = 202, description = "Queued again with its attempts reset", body = super::openapi::Task), (status = 401), (status = 403),
        (status = 404), (status = 409),
        (status = 503))
)]
pub(super) async fn retry_dead(
    State(state): State<AppState>,
    principal: Principal,
    axum::extract::Path(id): axum::extract::Path<String>,
) -> Result<axum::response::Response, ApiError> {
    require_role(&principal, &[Role::Admin])?;
    let record = state.service.replay_dead(&id).await?;
    tracing::info!(by = %principal.user_id, task_id = %id, "dead task re-queued");
    Ok(super::ai::accepted(&record))
}
