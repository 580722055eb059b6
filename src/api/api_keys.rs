//! `/v1/admin/api-keys` (admin): create (the key is shown once), list, revoke.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{delete, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::auth::require_role;
use super::json::ApiJson;
use super::problem::ApiError;
use crate::api::AppState;
use crate::auth::{Principal, Role};
use crate::service::api_keys::{KeyInfo, NewApiKey};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/admin/api-keys", post(create).get(list))
        .route("/v1/admin/api-keys/{id}", delete(revoke))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct NewKey {
    /// What the key is for ("batch scheduler").
    name: String,
    /// The user id the key acts as; its tasks, quotas and audit events are this owner's.
    owner: String,
    /// `service` or `teacher`.
    #[schema(value_type = String)]
    role: Role,
    /// Limits for the owner, overriding the role's (`daily_tokens`, `per_minute`, …).
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    quota: Option<serde_json::Map<String, Value>>,
    /// Give the key its own webhook signing secret (returned once), used for the owner's
    /// callbacks instead of the server's.
    #[serde(default)]
    webhook_secret: bool,
}

#[utoipa::path(
    post, path = "/v1/admin/api-keys", operation_id = "createApiKey", tag = "admin",
    request_body(content = NewKey),
    responses((status = 201, description = "The key (`tq_...`), shown once", body = CreatedKey), (status = 415), (status = 400), (status = 401),
        (status = 403), (status = 422),
        (status = 503))
)]
pub(super) async fn create(
    State(state): State<AppState>,
    principal: Principal,
    ApiJson(body): ApiJson<NewKey>,
) -> Result<(StatusCode, Json<CreatedKey>), ApiError> {
    require_role(&principal, &[Role::Admin])?;
    let owner = body.owner.trim().to_owned();
    let created = state
        .service
        .create_api_key(NewApiKey {
            name: body.name,
            owner: owner.clone(),
            role: body.role,
            quota: body.quota,
            webhook_secret: body.webhook_secret,
        })
        .await?;
    let (key, info, webhook_secret) = (created.key, created.info, created.webhook_secret);
    tracing::info!(by = %principal.user_id, prefix = %info.prefix, %owner, "API key created");
    Ok((
        StatusCode::CREATED,
        Json(CreatedKey {
            info,
            key,
            webhook_secret,
            note: "the key is shown only now; store it safely",
        }),
    ))
}

/// A new key: the listing fields, and the key (and webhook secret) shown this once.
#[derive(Serialize, utoipa::ToSchema)]
pub(super) struct CreatedKey {
    #[serde(flatten)]
    info: KeyInfo,
    /// `tq_...`: send it as `Authorization: Bearer`.
    key: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    webhook_secret: Option<String>,
    note: &'static str,
}

#[derive(Serialize, utoipa::ToSchema)]
pub(super) struct KeyList {
    api_keys: Vec<KeyInfo>,
}

#[utoipa::path(
    get, path = "/v1/admin/api-keys", operation_id = "listApiKeys", tag = "admin",
    responses((status = 200, description = "Keys: prefix, owner, role, created, last used", body = KeyList), (status = 401), (status = 403),
        (status = 503))
)]
pub(super) async fn list(
    State(state): State<AppState>,
    principal: Principal,
) -> Result<Json<KeyList>, ApiError> {
    require_role(&principal, &[Role::Admin])?;
    let keys = state.service.api_keys().await?;
    Ok(Json(KeyList { api_keys: keys }))
}

#[utoipa::path(
    delete, path = "/v1/admin/api-keys/{id}", operation_id = "revokeApiKey", tag = "admin",
    params(("id" = String, Path, description = "The id")),
    responses((status = 204, description = "Revoked (refused by every web process within seconds)"), (status = 401), (status = 403),
        (status = 404), (status = 503))
)]
pub(super) async fn revoke(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    require_role(&principal, &[Role::Admin])?;
    let id = uuid::Uuid::parse_str(&id)
        .map_err(|_| ApiError::NotFound(format!("there is no API key `{id}`")))?;
    if state.service.revoke_api_key(id).await? {
        tracing::info!(by = %principal.user_id, %id, "API key revoked");
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::NotFound(format!(
            "there is no active API key `{id}`"
        )))
    }
}
