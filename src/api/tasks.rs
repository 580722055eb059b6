//! `/v1/tasks`: a task's record (with long-poll), cancellation, and the caller's task list.

use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::routing::get;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};

use super::problem::ApiError;
use crate::api::AppState;
use crate::auth::Principal;
use crate::service::{TaskQuery, TaskRecord, TaskView};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/tasks", get(list))
        .route("/v1/tasks/{id}", get(show).delete(cancel))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ShowQuery {
    /// Seconds to wait for a final state (long-poll).
    #[serde(default)]
    wait: Option<f64>,
}

#[utoipa::path(
    get, path = "/v1/tasks/{id}", operation_id = "getTask", tag = "tasks",
    params(("id" = String, Path, description = "The id"), ("wait" = Option<f64>, Query, description = "Seconds to wait for a final state (long-poll, 0 to `intake.long_poll_max_secs`, 30 by default)")),
    responses((status = 200, description = "The task: status, result or error, usage, attempts, timestamps", body = TaskView), (status = 401), (status = 404),
        (status = 422), (status = 429), (status = 503))
)]
pub(super) async fn show(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
    query: Result<Query<ShowQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<TaskView>, ApiError> {
    let Query(query) = query.map_err(|err| ApiError::invalid_field("query", err.body_text()))?;
    let max = state.settings.intake.long_poll_max_secs;
    let wait = match query.wait {
        None => Duration::ZERO,
        Some(seconds) if (0.0..=max as f64).contains(&seconds) => Duration::from_secs_f64(seconds),
        Some(_) => {
            return Err(ApiError::invalid_field(
                "wait",
                format!("must be a number of seconds between 0 and {max}"),
            ));
        }
    };
    // A long-poll holds a slot while it waits (an immediate answer holds none).
    let _slot = if wait.is_zero() {
        None
    } else {
        Some(state.open.long_polls.take(&principal.user_id)?)
    };
    let record = state.service.task(&principal, &id, wait).await?;
    Ok(Json(record.view()))
}

#[utoipa::path(
    delete, path = "/v1/tasks/{id}", operation_id = "cancelTask", tag = "tasks",
    params(("id" = String, Path, description = "The id")),
    responses((status = 200, description = "Cancelled: queued tasks never start, a running one is stopped", body = TaskView), (status = 401), (status = 404),
        (status = 409), (status = 503))
)]
pub(super) async fn cancel(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
) -> Result<Json<TaskView>, ApiError> {
    let record = state.service.cancel_task(&principal, &id).await?;
    Ok(Json(record.view()))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ListQuery {
    state: Option<String>,
    feature: Option<String>,
    limit: Option<usize>,
    cursor: Option<String>,
}

#[utoipa::path(
    get, path = "/v1/tasks", operation_id = "listTasks", tag = "tasks",
    params(("state" = Option<String>, Query, description = "queued, running, retrying, succeeded, failed, cancelled or dead"),
           ("feature" = Option<String>, Query, description = "Only this feature"),
           ("limit" = Option<usize>, Query, description = "Page size, 1 to 100"),
           ("cursor" = Option<String>, Query, description = "`next_cursor` of the previous page")),
    responses((status = 200, description = "The caller's tasks, newest first", body = TaskList), (status = 401), (status = 422),
        (status = 503))
)]
pub(super) async fn list(
    State(state): State<AppState>,
    principal: Principal,
    query: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<TaskList>, ApiError> {
    let Query(query) = query.map_err(|err| ApiError::invalid_field("query", err.body_text()))?;
    let task_query = TaskQuery {
        state: query
            .state
            .as_deref()
            .map(str::parse)
            .transpose()
            .map_err(|e: String| ApiError::invalid_field("state", e))?,
        feature: query
            .feature
            .as_deref()
            .map(str::parse)
            .transpose()
            .map_err(|e: crate::feature::UnknownFeature| {
                ApiError::invalid_field("feature", e.to_string())
            })?,
        limit: match query.limit {
            None => 20,
            Some(limit @ 1..=100) => limit,
            Some(_) => {
                return Err(ApiError::invalid_field(
                    "limit",
                    "must be between 1 and 100",
                ));
            }
        },
        before_us: query
            .cursor
            .as_deref()
            .map(|c| {
                c.parse::<i64>().map_err(|_| {
                    ApiError::invalid_field("cursor", "is not a cursor from a previous page")
                })
            })
            .transpose()?,
    };
    let (records, next) = state.service.list_tasks(&principal, &task_query).await?;
    Ok(Json(TaskList {
        tasks: records.iter().map(TaskRecord::view).collect(),
        next_cursor: next.map(|c| c.to_string()),
    }))
}

/// A page of the caller's tasks, newest first.
#[derive(Serialize, utoipa::ToSchema)]
pub(super) struct TaskList {
    tasks: Vec<TaskView>,
    /// Pass as `cursor` for the next page; null on the last.
    next_cursor: Option<String>,
}
