//! `GET /v1/quota` (the caller's own limits and usage) and the admin side of the limits:
//! blocks, unblocking and per-user overrides.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{Map, Value, json};

use super::auth::require_role;
use super::json::ApiJson;
use super::problem::ApiError;
use crate::app::AppState;
use crate::auth::{Principal, Role};
use crate::limits::parse_overrides;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/quota", get(quota))
        .route("/v1/admin/blocks", get(blocks))
        .route("/v1/admin/users/{id}/unblock", post(unblock))
        .route(
            "/v1/admin/users/{id}/limits",
            get(overrides).put(set_overrides).delete(clear_overrides),
        )
}

fn unavailable(err: redis::RedisError) -> ApiError {
    ApiError::StoreUnavailable(err.to_string())
}

#[utoipa::path(
    get, path = "/v1/quota", operation_id = "getQuota", tag = "limits",
    responses((status = 200, description = "The caller's limits, usage this minute, day and month, reset times", body = super::openapi::Quota), (status = 401), (status = 503))
)]
pub(super) async fn quota(
    State(state): State<AppState>,
    principal: Principal,
) -> Result<Json<Value>, ApiError> {
    let status = state.limits.status(&principal).await.map_err(unavailable)?;
    Ok(Json(
        serde_json::to_value(status).expect("a quota status serializes"),
    ))
}

#[utoipa::path(
    get, path = "/v1/admin/blocks", operation_id = "listBlocks", tag = "limits",
    responses((status = 200, description = "Users blocked now and until when", body = super::openapi::Blocks), (status = 401), (status = 403),
        (status = 503))
)]
pub(super) async fn blocks(
    State(state): State<AppState>,
    principal: Principal,
) -> Result<Json<Value>, ApiError> {
    require_role(&principal, &[Role::Admin])?;
    let blocked: Vec<Value> = state
        .limits
        .blocks()
        .await
        .map_err(unavailable)?
        .into_iter()
        .map(|(user, until)| json!({ "user_id": user, "blocked_until": until.to_string() }))
        .collect();
    Ok(Json(json!({ "blocks": blocked })))
}

#[utoipa::path(
    post, path = "/v1/admin/users/{id}/unblock", operation_id = "unblockUser", tag = "limits",
    params(("id" = String, Path, description = "The user id")),
    responses((status = 200, description = "The block is lifted and the violations forgotten", body = super::openapi::Unblocked), (status = 401), (status = 403),
        (status = 503))
)]
pub(super) async fn unblock(
    State(state): State<AppState>,
    principal: Principal,
    Path(user): Path<String>,
) -> Result<Json<Value>, ApiError> {
    require_role(&principal, &[Role::Admin])?;
    let was_blocked = state.limits.unblock(&user).await.map_err(unavailable)?;
    tracing::info!(by = %principal.user_id, user_id = %user, was_blocked, "user unblocked");
    Ok(Json(json!({ "user_id": user, "was_blocked": was_blocked })))
}

#[utoipa::path(
    get, path = "/v1/admin/users/{id}/limits", operation_id = "getUserLimits", tag = "limits",
    params(("id" = String, Path, description = "The user id")),
    responses((status = 200, description = "The user's overrides of their role's limits", body = super::openapi::LimitOverrides), (status = 401), (status = 403),
        (status = 503))
)]
pub(super) async fn overrides(
    State(state): State<AppState>,
    principal: Principal,
    Path(user): Path<String>,
) -> Result<Json<Value>, ApiError> {
    require_role(&principal, &[Role::Admin])?;
    let overrides = state.limits.overrides(&user).await.map_err(unavailable)?;
    Ok(Json(json!({ "user_id": user, "overrides": overrides })))
}

/// Replaces the user's overrides: `{"daily_tokens": 500000, ...}`; figures not named follow
/// the user's role.
#[utoipa::path(
    put, path = "/v1/admin/users/{id}/limits", operation_id = "setUserLimits", tag = "limits",
    params(("id" = String, Path, description = "The user id")),
    request_body(content = super::openapi::JsonObject, description = "Limits to override, e.g. `{\"daily_tokens\": 500000}`"),
    responses((status = 200, description = "The overrides now", body = super::openapi::LimitOverrides), (status = 415), (status = 400), (status = 401),
        (status = 403), (status = 422),
        (status = 503))
)]
pub(super) async fn set_overrides(
    State(state): State<AppState>,
    principal: Principal,
    Path(user): Path<String>,
    ApiJson(body): ApiJson<Map<String, Value>>,
) -> Result<Json<Value>, ApiError> {
    require_role(&principal, &[Role::Admin])?;
    let values = parse_overrides(&body).map_err(|errors| ApiError::InvalidInput {
        detail: format!("{} override(s) are invalid", errors.len()),
        errors,
    })?;
    state
        .limits
        .set_overrides(&user, &values)
        .await
        .map_err(unavailable)?;
    tracing::info!(by = %principal.user_id, user_id = %user, "limits overridden");
    let overrides = state.limits.overrides(&user).await.map_err(unavailable)?;
    Ok(Json(json!({ "user_id": user, "overrides": overrides })))
}

#[utoipa::path(
    delete, path = "/v1/admin/users/{id}/limits", operation_id = "clearUserLimits", tag = "limits",
    params(("id" = String, Path, description = "The user id")),
    responses((status = 204, description = "The overrides are gone"), (status = 401), (status = 403),
        (status = 503))
)]
pub(super) async fn clear_overrides(
    State(state): State<AppState>,
    principal: Principal,
    Path(user): Path<String>,
) -> Result<StatusCode, ApiError> {
    require_role(&principal, &[Role::Admin])?;
    state
        .limits
        .set_overrides(&user, &[])
        .await
        .map_err(unavailable)?;
    Ok(StatusCode::NO_CONTENT)
}
