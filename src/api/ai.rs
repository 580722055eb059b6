//! `POST /v1/ai/{feature}`: one AI request, answered inline.

use axum::extract::{FromRequestParts, Path, State};
use axum::http::request::Parts;
use axum::routing::post;
use axum::{Json, Router};
use serde::Deserialize;

use super::json::ApiJson;
use super::problem::ApiError;
use crate::app::AppState;
use crate::auth::Principal;
use crate::feature::Feature;
use crate::service::{Completion, SubmitRequest};

pub fn router() -> Router<AppState> {
    Router::new().route("/v1/ai/{feature}", post(submit))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SubmitBody {
    /// The feature's inputs; checked against its prompt's `inputs`.
    #[serde(default)]
    input: serde_json::Value,
    /// Pin a prompt version; the highest one otherwise.
    #[serde(default)]
    prompt_version: Option<String>,
}

/// The `{feature}` path segment, parsed; an unknown one is a 404 before the body is read.
struct FeaturePath(Feature);

impl<S: Send + Sync> FromRequestParts<S> for FeaturePath {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let Path(name) = Path::<String>::from_request_parts(parts, state)
            .await
            .map_err(|err| ApiError::NotFound(err.body_text()))?;
        name.parse()
            .map(FeaturePath)
            .map_err(|_| ApiError::UnknownFeature(name))
    }
}

async fn submit(
    State(state): State<AppState>,
    principal: Principal,
    FeaturePath(feature): FeaturePath,
    ApiJson(body): ApiJson<SubmitBody>,
) -> Result<Json<Completion>, ApiError> {
    if body.input.is_null() {
        return Err(ApiError::invalid_field(
            "input",
            "is required: an object with the feature's inputs",
        ));
    }
    let request = SubmitRequest {
        input: body.input,
        prompt_version: body.prompt_version,
    };
    Ok(Json(
        state.service.submit(&principal, feature, request).await?,
    ))
}
