//! `POST /v1/ai/{feature}`: one AI request, answered inline (200) or queued (202).

use axum::extract::{FromRequestParts, Path, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde::Deserialize;

use super::client_ip::ClientIp;
use super::json::ApiJson;
use super::problem::ApiError;
use super::query::ApiQuery;
use super::rate_limit_headers;
use super::request_context::current_request_id;
use crate::api::AppState;
use crate::auth::Principal;
use crate::feature::Feature;
use crate::service::limits::Violation;
use crate::service::{Mode, SubmitRequest, Submitted};

pub fn router() -> Router<AppState> {
    Router::new().route("/v1/ai/{feature}", post(submit))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({
    "input": {"question": "2x + 3 = 11 ise x kaçtır?", "subject": "Matematik", "hint_level": 1},
    "mode": "async"
}))]
pub(super) struct SubmitBody {
    /// The feature's inputs; checked against its prompt's `inputs`.
    #[serde(default)]
    #[schema(value_type = Object)]
    input: serde_json::Value,
    /// Pin a prompt version; the highest one otherwise.
    #[serde(default)]
    prompt_version: Option<String>,
    /// auto (default), sync or async.
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    mode: Option<Mode>,
    /// Stream the answer: inline requests answer with Server-Sent Events (`delta` events, then
    /// `succeeded`); queued ones add `delta` events to the task's stream.
    #[serde(default)]
    stream: bool,
    /// When the task ends, POST its final event here (Standard Webhooks signature).
    #[serde(default)]
    callback_url: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
pub(super) struct SubmitQuery {
    mode: Option<String>,
}

/// The `{feature}` path segment, parsed; an unknown one is a 404 before the body is read.
pub(super) struct FeaturePath(Feature);

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

/// The mode from the body, else `?mode=`, else `Prefer: respond-async`, else auto.
fn mode(body: Option<Mode>, query: Option<&str>, headers: &HeaderMap) -> Result<Mode, ApiError> {
    if let Some(mode) = body {
        return Ok(mode);
    }
    if let Some(text) = query {
        return match text {
            "auto" => Ok(Mode::Auto),
            "sync" => Ok(Mode::Sync),
            "async" => Ok(Mode::Async),
            other => Err(ApiError::invalid_field(
                "mode",
                format!("`{other}` is not one of auto, sync, async"),
            )),
        };
    }
    let prefers_async = headers
        .get_all("prefer")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|p| p.trim().eq_ignore_ascii_case("respond-async"));
    Ok(if prefers_async {
        Mode::Async
    } else {
        Mode::Auto
    })
}

fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let Some(value) = headers.get("idempotency-key") else {
        return Ok(None);
    };
    let key = value.to_str().unwrap_or_default().trim();
    if key.is_empty() || key.len() > 255 || !key.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(ApiError::invalid_field(
            "Idempotency-Key",
            "must be 1 to 255 visible ASCII characters",
        ));
    }
    Ok(Some(key.to_owned()))
}

#[utoipa::path(
    post, path = "/v1/ai/{feature}", operation_id = "submitAiRequest", tag = "ai",
    params(("feature" = String, Path, description = "hint, explanation, study_plan, evaluation or question_gen")),
    request_body(content = SubmitBody, description = "The feature's inputs (see `inputs:` in its prompt) and how to run it"),
    responses(
        (status = 200, description = "Answered inline: the result, usage, provider, prompt version, and `status: succeeded` (with `stream`: `text/event-stream` of `delta` events, then the final state)", content((crate::service::Completion = "application/json"), (String = "text/event-stream"))), (status = 202, description = "Queued: the task (`Location: /v1/tasks/{id}`)", body = crate::service::TaskView), (status = 400),
        (status = 401), (status = 403),
        (status = 404), (status = 413),
        (status = 415), (status = 422),
        (status = 429), (status = 503)
    )
)]
pub(super) async fn submit(
    State(state): State<AppState>,
    principal: Principal,
    FeaturePath(feature): FeaturePath,
    ApiQuery(query): ApiQuery<SubmitQuery>,
    headers: HeaderMap,
    ClientIp(client_ip): ClientIp,
    body: Result<ApiJson<SubmitBody>, ApiError>,
) -> Result<Response, ApiError> {
    let body = match body {
        Ok(ApiJson(body)) => body,
        Err(err) => {
            // Oversized and malformed requests count against the user (abuse detection).
            let violation = match err {
                ApiError::PayloadTooLarge { .. } => Violation::Oversized,
                _ => Violation::Invalid,
            };
            state.service.note_violation(&principal, violation).await;
            return Err(err);
        }
    };
    if body.input.is_null() {
        return Err(ApiError::invalid_field(
            "input",
            "is required: an object with the feature's inputs",
        ));
    }
    let request = SubmitRequest {
        mode: mode(body.mode, query.mode.as_deref(), &headers)?,
        idempotency_key: idempotency_key(&headers)?,
        input: body.input,
        prompt_version: body.prompt_version,
        request_id: current_request_id().unwrap_or_default(),
        stream: body.stream,
        callback_url: body.callback_url,
        client_ip: Some(client_ip.to_string()),
    };
    // A streamed answer is an open event stream: its slot is taken before anything runs.
    let mut stream_slot = if request.stream {
        Some(state.open.event_streams.take(&principal.user_id)?)
    } else {
        None
    };
    let (submitted, admission) = state.service.submit(&principal, feature, request).await?;
    let mut response = match submitted {
        Submitted::Done(completion) => {
            let mut body = serde_json::to_value(&completion).expect("a completion serializes");
            body["status"] = "succeeded".into();
            Json(body).into_response()
        }
        Submitted::Accepted(record) => accepted(&record),
        Submitted::Streaming(record) => {
            let slot = stream_slot
                .take()
                .expect("a streamed answer was asked for, so its slot was taken");
            super::events::stream_response(&state, &principal, &record.facts.task_id, "0-0", slot)
                .await?
        }
    };
    if let Some(figures) = admission.figures {
        rate_limit_headers::admitted(response.headers_mut(), &figures);
    }
    Ok(response)
}

/// 202 with the task's record and where to follow it.
pub fn accepted(record: &crate::service::TaskRecord) -> Response {
    let location = format!("/v1/tasks/{}", record.facts.task_id);
    let mut response = (StatusCode::ACCEPTED, Json(record.view())).into_response();
    if let Ok(value) = HeaderValue::from_str(&location) {
        response.headers_mut().insert(header::LOCATION, value);
    }
    response
}
