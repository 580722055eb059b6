//! `GET /v1/quota` (the caller's own limits and usage) and the admin side of the limits:
//! blocks, unblocking and per-user overrides.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Serialize;

use super::auth::require_role;
use super::json::ApiJson;
use super::problem::ApiError;
use crate::api::AppState;
use crate::auth::{Principal, Role};
use crate::service::limits::{Overrides, QuotaStatus};

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

#[derive(Serialize, utoipa::ToSchema)]
pub(super) struct Block {
    user_id: String,
    /// RFC 3339.
    blocked_until: String,
}

#[derive(Serialize, utoipa::ToSchema)]
pub(super) struct Blocks {
    blocks: Vec<Block>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub(super) struct Unblocked {
    user_id: String,
    was_blocked: bool,
}

/// One user's overrides of their role's limits (`daily_tokens`, `per_minute`, ...).
#[derive(Serialize, utoipa::ToSchema)]
pub(super) struct LimitOverrides {
    user_id: String,
    #[schema(value_type = Object)]
    overrides: Overrides,
}

#[utoipa::path(
    get, path = "/v1/quota", operation_id = "getQuota", tag = "limits",
    responses((status = 200, description = "The caller's limits, usage this minute, day and month, reset times", body = QuotaStatus), (status = 401), (status = 503))
)]
pub(super) async fn quota(
    State(state): State<AppState>,
    principal: Principal,
) -> Result<Json<QuotaStatus>, ApiError> {
    Ok(Json(state.service.quota(&principal).await?))
}

#[utoipa::path(
    get, path = "/v1/admin/blocks", operation_id = "listBlocks", tag = "limits",
    responses((status = 200, description = "Users blocked now and until when", body = Blocks), (status = 401), (status = 403),
        (status = 503))
)]
pub(super) async fn blocks(
    State(state): State<AppState>,
    principal: Principal,
) -> Result<Json<Blocks>, ApiError> {
    require_role(&principal, &[Role::Admin])?;
    let blocks = state
        .service
        .blocks()
        .await?
        .into_iter()
        .map(|(user_id, until)| Block {
            user_id,
            blocked_until: until.to_string(),
        })
        .collect();
    Ok(Json(Blocks { blocks }))
}

#[utoipa::path(
    post, path = "/v1/admin/users/{id}/unblock", operation_id = "unblockUser", tag = "limits",
    params(("id" = String, Path, description = "The user id")),
    responses((status = 200, description = "The block is lifted and the violations forgotten", body = Unblocked), (status = 401), (status = 403),
        (status = 503))
)]
pub(super) async fn unblock(
    State(state): State<AppState>,
    principal: Principal,
    Path(user): Path<String>,
) -> Result<Json<Unblocked>, ApiError> {
    require_role(&principal, &[Role::Admin])?;
    let was_blocked = state.service.unblock(&user).await?;
    tracing::info!(by = %principal.user_id, user_id = %user, was_blocked, "user unblocked");
    Ok(Json(Unblocked {
        user_id: user,
        was_blocked,
    }))
}

#[utoipa::path(
    get, path = "/v1/admin/users/{id}/limits", operation_id = "getUserLimits", tag = "limits",
    params(("id" = String, Path, description = "The user id")),
    responses((status = 200, description = "The user's overrides of their role's limits", body = LimitOverrides), (status = 401), (status = 403),
        (status = 503))
)]
pub(super) async fn overrides(
    State(state): State<AppState>,
    principal: Principal,
    Path(user): Path<String>,
) -> Result<Json<LimitOverrides>, ApiError> {
    require_role(&principal, &[Role::Admin])?;
    let overrides = state.service.limit_overrides(&user).await?;
    Ok(Json(LimitOverrides {
        user_id: user,
        overrides,
    }))
}

/// Replaces the user's overrides: `{"daily_tokens": 500000, ...}`; figures not named follow
/// the user's role.
#[utoipa::path(
    put, path = "/v1/admin/users/{id}/limits", operation_id = "setUserLimits", tag = "limits",
    params(("id" = String, Path, description = "The user id")),
    request_body(content = Object, description = "Limits to override, e.g. `{\"daily_tokens\": 500000}`"),
    responses((status = 200, description = "The overrides now", body = LimitOverrides), (status = 415), (status = 400), (status = 401),
        (status = 403), (status = 422),
        (status = 503))
)]
pub(super) async fn set_overrides(
    State(state): State<AppState>,
    principal: Principal,
    Path(user): Path<String>,
    ApiJson(body): ApiJson<Overrides>,
) -> Result<Json<LimitOverrides>, ApiError> {
    require_role(&principal, &[Role::Admin])?;
    let overrides = state
        .service
        .set_limit_overrides(&user, &body)
        .await
        .map_err(|err| match ApiError::from(err) {
            ApiError::InvalidInput { errors, .. } => ApiError::InvalidInput {
                detail: format!("{} override(s) are invalid", errors.len()),
                errors,
            },
            other => other,
        })?;
    tracing::info!(by = %principal.user_id, user_id = %user, "limits overridden");
    Ok(Json(LimitOverrides {
        user_id: user,
        overrides,
    }))
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
    state.service.clear_limit_overrides(&user).await?;
    Ok(StatusCode::NO_CONTENT)
}
