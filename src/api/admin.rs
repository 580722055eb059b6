//! `/v1/admin/*`: operator endpoints (admin role only).

use std::collections::BTreeMap;

use axum::extract::State;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Serialize;

use super::auth::require_role;
use super::problem::ApiError;
use crate::api::AppState;
use crate::auth::{Principal, Role};
use crate::service::TaskView;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/admin/prompts", get(list_prompts))
        .route("/v1/admin/prompts/reload", post(reload_prompts))
        .route("/v1/admin/dead", get(dead))
        .route("/v1/admin/dead/{id}/retry", post(retry_dead))
        .route("/v1/admin/providers", get(providers))
}

/// The providers the chains use: calls this process made, breaker state, last health check;
/// and, for each provider that books capacity, its limits, what is left and used across the
/// fleet, its pause after a 429, its calls in flight and the tasks waiting for it.
#[utoipa::path(
    get, path = "/v1/admin/providers", operation_id = "listProviders", tag = "admin",
    responses((status = 200, description = "Providers: calls, circuit breaker state, last health check, capacity", body = Providers), (status = 401), (status = 403), (status = 503))
)]
pub(super) async fn providers(
    State(state): State<AppState>,
    principal: Principal,
) -> Result<Json<Providers>, ApiError> {
    require_role(&principal, &[Role::Admin])?;
    Ok(Json(Providers {
        providers: state.service.providers().status(),
        capacity: state.service.capacity().await?,
    }))
}

/// The providers the chains use: calls this process made, breaker state, last health check.
#[derive(Serialize, utoipa::ToSchema)]
pub(super) struct Providers {
    #[schema(value_type = Vec<Object>)]
    providers: Vec<crate::service::ProviderStatus>,
    /// Providers that book capacity (configured limits, or reported by their vendor).
    capacity: Vec<crate::service::CapacityStatus>,
}

/// Loaded prompt versions per feature, lowest first (the highest is the default).
#[derive(Serialize, utoipa::ToSchema)]
pub(super) struct PromptVersions {
    prompts: BTreeMap<String, Vec<String>>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub(super) struct PromptsReloaded {
    reloaded: bool,
    prompts: BTreeMap<String, Vec<String>>,
}

/// Dead tasks of the last week (each with its owner's `user_id`).
#[derive(Serialize, utoipa::ToSchema)]
pub(super) struct DeadTasks {
    tasks: Vec<DeadTask>,
}

/// A dead task and whose it is.
#[derive(Serialize, utoipa::ToSchema)]
pub(super) struct DeadTask {
    user_id: String,
    #[serde(flatten)]
    task: TaskView,
}

#[utoipa::path(
    get, path = "/v1/admin/prompts", operation_id = "listPrompts", tag = "admin",
    responses((status = 200, description = "Loaded prompt versions per feature", body = PromptVersions), (status = 401), (status = 403))
)]
pub(super) async fn list_prompts(
    State(state): State<AppState>,
    principal: Principal,
) -> Result<Json<PromptVersions>, ApiError> {
    require_role(&principal, &[Role::Admin])?;
    Ok(Json(PromptVersions {
        prompts: state.service.prompt_versions(),
    }))
}

/// Loads `prompts/` again; a bad file answers 422 and leaves the running prompts in place.
#[utoipa::path(
    post, path = "/v1/admin/prompts/reload", operation_id = "reloadPrompts", tag = "admin",
    responses((status = 200, description = "Reloaded", body = PromptsReloaded), (status = 401), (status = 403),
        (status = 422))
)]
pub(super) async fn reload_prompts(
    State(state): State<AppState>,
    principal: Principal,
) -> Result<Json<PromptsReloaded>, ApiError> {
    require_role(&principal, &[Role::Admin])?;
    let prompts = state
        .service
        .reload_prompts()
        .map_err(ApiError::InvalidPrompts)?;
    tracing::info!(by = %principal.user_id, "prompts reloaded");
    Ok(Json(PromptsReloaded {
        reloaded: true,
        prompts,
    }))
}

/// Dead tasks, newest first (at most 100).
#[utoipa::path(
    get, path = "/v1/admin/dead", operation_id = "listDeadTasks", tag = "admin",
    responses((status = 200, description = "Dead tasks of the last week", body = DeadTasks), (status = 401), (status = 403),
        (status = 503))
)]
pub(super) async fn dead(
    State(state): State<AppState>,
    principal: Principal,
) -> Result<Json<DeadTasks>, ApiError> {
    require_role(&principal, &[Role::Admin])?;
    let records = state.service.dead_tasks(100).await?;
    let tasks = records
        .iter()
        .map(|r| DeadTask {
            user_id: r.facts.user_id.clone(),
            task: r.view(),
        })
        .collect();
    Ok(Json(DeadTasks { tasks }))
}

/// Queues a dead task again with fresh attempts.
#[utoipa::path(
    post, path = "/v1/admin/dead/{id}/retry", operation_id = "replayDeadTask", tag = "admin",
    params(("id" = String, Path, description = "The id")),
    responses((status = 202, description = "Queued again with its attempts reset", body = TaskView), (status = 401), (status = 403),
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
