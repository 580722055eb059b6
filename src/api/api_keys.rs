//! `/v1/admin/api-keys` (admin): create (the key is shown once), list, revoke.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{delete, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};

use super::auth::require_role;
use super::json::ApiJson;
use super::problem::ApiError;
use crate::app::AppState;
use crate::auth::{Principal, Role};
use crate::limits::parse_overrides;

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

fn database(err: sqlx::Error) -> ApiError {
    ApiError::database(err)
}

#[utoipa::path(
    post, path = "/v1/admin/api-keys", operation_id = "createApiKey", tag = "admin",
    request_body(content = NewKey),
    responses((status = 201, description = "The key (`tq_...`), shown once", body = super::openapi::CreatedApiKey), (status = 415), (status = 400), (status = 401),
        (status = 403), (status = 422),
        (status = 503))
)]
pub(super) async fn create(
    State(state): State<AppState>,
    principal: Principal,
    ApiJson(body): ApiJson<NewKey>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    require_role(&principal, &[Role::Admin])?;
    let name = body.name.trim();
    let owner = body.owner.trim();
    if name.is_empty() || name.len() > 200 || name.chars().any(char::is_control) {
        return Err(ApiError::invalid_field(
            "name",
            "must be 1 to 200 characters, without control characters",
        ));
    }
    crate::auth::check_id(owner).map_err(|rule| ApiError::invalid_field("owner", rule))?;
    if !matches!(body.role, Role::Service | Role::Teacher) {
        return Err(ApiError::invalid_field(
            "role",
            "must be `service` or `teacher`",
        ));
    }
    let overrides = match &body.quota {
        Some(quota) => Some(parse_overrides(quota).map_err(|errors| {
            ApiError::InvalidInput {
                detail: "`quota` has invalid limits".into(),
                errors: errors
                    .into_iter()
                    .map(|(k, v)| (format!("quota.{k}"), v))
                    .collect(),
            }
        })?),
        None => None,
    };
    let quota = body.quota.clone().map(Value::Object);
    let webhook_secret = body.webhook_secret.then(crate::auth::new_webhook_secret);
    let (key, info) = state
        .api_keys
        .create(
            name,
            owner,
            body.role,
            quota.as_ref(),
            webhook_secret.as_deref(),
        )
        .await
        .map_err(database)?;
    if let Some(overrides) = overrides {
        state
            .limits
            .set_overrides(owner, &overrides)
            .await
            .map_err(|err| ApiError::StoreUnavailable(err.to_string()))?;
    }
    tracing::info!(by = %principal.user_id, prefix = %info.prefix, owner, "API key created");
    let mut body = serde_json::to_value(&info).expect("key info serializes");
    body["key"] = key.into();
    if let Some(secret) = webhook_secret {
        body["webhook_secret"] = secret.into();
    }
    body["note"] = "the key is shown only now; store it safely".into();
    Ok((StatusCode::CREATED, Json(body)))
}

#[utoipa::path(
    get, path = "/v1/admin/api-keys", operation_id = "listApiKeys", tag = "admin",
    responses((status = 200, description = "Keys: prefix, owner, role, created, last used", body = super::openapi::ApiKeyList), (status = 401), (status = 403),
        (status = 503))
)]
pub(super) async fn list(
    State(state): State<AppState>,
    principal: Principal,
) -> Result<Json<Value>, ApiError> {
    require_role(&principal, &[Role::Admin])?;
    let keys = state.api_keys.list().await.map_err(database)?;
    Ok(Json(json!({ "api_keys": keys })))
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
    if state.api_keys.revoke(id).await.map_err(database)? {
        tracing::info!(by = %principal.user_id, %id, "API key revoked");
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::NotFound(format!(
            "there is no active API key `{id}`"
        )))
    }
}
