//! `/v1/batches`: bulk requests (teachers, services and admins). Submit, follow, read the
//! results as JSON lines, cancel.

use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::auth::require_role;
use super::client_ip::ClientIp;
use super::problem::ApiError;
use super::query::ApiQuery;
use super::request_context::current_request_id;
use crate::api::AppState;
use crate::auth::{Principal, Role};
use crate::feature::Feature;
use crate::service::BatchView;
use crate::service::batches::{MAX_ITEMS, NewBatch};

const ROLES: &[Role] = &[Role::Teacher, Role::Service, Role::Admin];

pub fn router(body_limit: usize) -> Router<AppState> {
    Router::new()
        .route("/v1/batches", post(create).get(list))
        .route("/v1/batches/{id}", get(show).delete(cancel))
        .route("/v1/batches/{id}/results", get(results))
        .route("/v1/batches/{id}/events", get(events))
        .layer(axum::extract::DefaultBodyLimit::max(body_limit))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct BatchBody {
    feature: String,
    /// `[{"input": {...}}, ...]`
    #[schema(value_type = Vec<Object>)]
    items: Vec<Value>,
    /// Run the valid items even when some are invalid (those are reported as failed).
    #[serde(default)]
    allow_partial: bool,
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    metadata: Option<Value>,
    /// Gets one signed webhook when the batch ends (`batch.completed`, ...).
    #[serde(default)]
    callback_url: Option<String>,
    /// Items that may run at once (at most the server's `jobs.batch_concurrency`).
    #[serde(default)]
    concurrency: Option<usize>,
}

/// For `application/x-ndjson` bodies (one `{"input": …}` per line) the rest comes as query
/// parameters.
#[derive(Debug, Default, Deserialize)]
pub(super) struct BatchQuery {
    feature: Option<String>,
    #[serde(default)]
    allow_partial: bool,
    callback_url: Option<String>,
    concurrency: Option<usize>,
}

/// The batch from a JSON body or an NDJSON one (one item per line).
async fn read_body(
    state: &AppState,
    query: BatchQuery,
    request: axum::extract::Request,
) -> Result<BatchBody, ApiError> {
    let content_type = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    let limit = state.settings.server.batch_body_limit_bytes;
    let bytes = super::json::read_body(request, state, limit).await?;
    match content_type.as_str() {
        "application/json" => super::json::parse(&bytes),
        "application/x-ndjson" | "application/jsonl" => {
            let text = std::str::from_utf8(&bytes)
                .map_err(|err| ApiError::MalformedJson(format!("the body is not UTF-8: {err}")))?;
            let mut items = Vec::new();
            for (number, line) in text.lines().enumerate() {
                if line.trim().is_empty() {
                    continue;
                }
                let item: Value = serde_json::from_str(line).map_err(|err| {
                    ApiError::MalformedJson(format!("line {}: {err}", number + 1))
                })?;
                items.push(item);
            }
            Ok(BatchBody {
                feature: query.feature.ok_or_else(|| {
                    ApiError::invalid_field("feature", "is required as a query parameter with an NDJSON body (?feature=question_gen)")
                })?,
                items,
                allow_partial: query.allow_partial,
                metadata: None,
                callback_url: query.callback_url,
                concurrency: query.concurrency,
            })
        }
        other => Err(ApiError::UnsupportedMediaType(format!(
            "send the batch as `application/json` or `application/x-ndjson`, not `{other}`"
        ))),
    }
}

#[utoipa::path(
    post, path = "/v1/batches", operation_id = "createBatch", tag = "batches",
    params(("feature" = Option<String>, Query, description = "With an `application/x-ndjson` body: the feature"),
           ("allow_partial" = Option<bool>, Query, description = "With an NDJSON body: run the valid items even when some are invalid"),
           ("callback_url" = Option<String>, Query, description = "With an NDJSON body: the batch webhook"),
           ("concurrency" = Option<usize>, Query, description = "With an NDJSON body: items that may run at once")),
    request_body(content = BatchBody, description = "Up to 10,000 items; or `application/x-ndjson`, one `{\"input\": ...}` per line"),
    responses((status = 202, description = "Accepted: the batch with its counts", body = crate::service::BatchView), (status = 400), (status = 401),
        (status = 403), (status = 404),
        (status = 413), (status = 415),
        (status = 422), (status = 429),
        (status = 503))
)]
pub(super) async fn create(
    State(state): State<AppState>,
    ClientIp(client_ip): ClientIp,
    principal: Principal,
    ApiQuery(query): ApiQuery<BatchQuery>,
    request: axum::extract::Request,
) -> Result<(StatusCode, Json<BatchView>), ApiError> {
    require_role(&principal, ROLES)?;
    let body = read_body(&state, query, request).await?;
    let feature: Feature = body
        .feature
        .parse()
        .map_err(|_| ApiError::UnknownFeature(body.feature.clone()))?;
    if body.items.is_empty() || body.items.len() > MAX_ITEMS {
        return Err(ApiError::invalid_field(
            "items",
            format!("must hold 1 to {MAX_ITEMS} items, got {}", body.items.len()),
        ));
    }
    if body.concurrency == Some(0) {
        return Err(ApiError::invalid_field("concurrency", "must be at least 1"));
    }
    let batch = NewBatch {
        feature,
        items: body.items,
        allow_partial: body.allow_partial,
        metadata: body.metadata,
        callback_url: body.callback_url,
        concurrency: body.concurrency,
        request_id: current_request_id().unwrap_or_default(),
        client_ip: Some(client_ip.to_string()),
    };
    let view = state.service.create_batch(&principal, batch).await?;
    Ok((StatusCode::ACCEPTED, Json(view)))
}

#[utoipa::path(
    get, path = "/v1/batches", operation_id = "listBatches", tag = "batches",
    responses((status = 200, description = "The caller's latest batches", body = BatchList), (status = 401), (status = 403),
        (status = 503))
)]
pub(super) async fn list(
    State(state): State<AppState>,
    principal: Principal,
) -> Result<Json<BatchList>, ApiError> {
    require_role(&principal, ROLES)?;
    let batches = state.service.list_batches(&principal).await?;
    Ok(Json(BatchList { batches }))
}

/// The caller's latest batches.
#[derive(Serialize, utoipa::ToSchema)]
pub(super) struct BatchList {
    batches: Vec<BatchView>,
}

#[utoipa::path(
    get, path = "/v1/batches/{id}", operation_id = "getBatch", tag = "batches",
    params(("id" = String, Path, description = "The id")),
    responses((status = 200, description = "Counts, state, timestamps and ETA", body = crate::service::BatchView), (status = 401), (status = 403),
        (status = 404), (status = 503))
)]
pub(super) async fn show(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
) -> Result<Json<BatchView>, ApiError> {
    require_role(&principal, ROLES)?;
    let view = state.service.batch(&principal, &id).await?;
    Ok(Json(view))
}

#[utoipa::path(
    delete, path = "/v1/batches/{id}", operation_id = "cancelBatch", tag = "batches",
    params(("id" = String, Path, description = "The id")),
    responses((status = 200, description = "Cancelled: held and queued items never start, running ones stop", body = crate::service::BatchView), (status = 401), (status = 403),
        (status = 404), (status = 503))
)]
pub(super) async fn cancel(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
) -> Result<Json<BatchView>, ApiError> {
    require_role(&principal, ROLES)?;
    let view = state.service.cancel_batch(&principal, &id).await?;
    Ok(Json(view))
}

/// Server-Sent Events: `progress` (the batch's counts) whenever they changed, at most every
/// 500 ms, then one event named for the final state, and the stream ends.
#[utoipa::path(
    get, path = "/v1/batches/{id}/events", operation_id = "batchEvents", tag = "batches",
    params(("id" = String, Path, description = "The id")),
    responses((status = 200, description = "Server-Sent Events: `progress` at most every 500 ms, then the final state", content_type = "text/event-stream"), (status = 401), (status = 403),
        (status = 404), (status = 429), (status = 503))
)]
pub(super) async fn events(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    require_role(&principal, ROLES)?;
    let first = state.service.batch(&principal, &id).await?;
    let slot = state.open.event_streams.take(&principal.user_id)?;
    let expires_at = principal.expires_at;
    let stream = futures_util::stream::unfold(
        (state, principal, id, Some(first), None::<String>, false),
        |(state, principal, id, mut next, mut last, done)| async move {
            if done {
                return None;
            }
            loop {
                let view = match next.take() {
                    Some(view) => view,
                    None => {
                        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
                        match state.service.batch(&principal, &id).await {
                            Ok(view) => view,
                            Err(err) => {
                                let event = Event::default()
                                    .event("error")
                                    .data(json!({ "message": err.to_string() }).to_string());
                                return Some((
                                    Ok::<_, std::convert::Infallible>(event),
                                    (state, principal, id, None, last, true),
                                ));
                            }
                        }
                    }
                };
                let data = serde_json::to_string(&view).expect("a batch serializes");
                let finished = !matches!(view.state, "queued" | "running");
                if finished {
                    let event = Event::default().event(view.state).data(data);
                    return Some((Ok(event), (state, principal, id, None, last, true)));
                }
                if last.as_deref() != Some(data.as_str()) {
                    last = Some(data.clone());
                    let event = Event::default().event("progress").data(data);
                    return Some((Ok(event), (state, principal, id, None, last, false)));
                }
            }
        },
    );
    Ok(Sse::new(super::events::held_sse(stream, slot, expires_at))
        .keep_alive(KeepAlive::new().interval(std::time::Duration::from_secs(15)))
        .into_response())
}

/// `application/x-ndjson`: one line per finished (or refused) item, in item order.
#[utoipa::path(
    get, path = "/v1/batches/{id}/results", operation_id = "batchResults", tag = "batches",
    params(("id" = String, Path, description = "The id")),
    responses((status = 200, description = "One JSON line per finished item, in item order: index, status, result or error", body = String, content_type = "application/x-ndjson"), (status = 401), (status = 403),
        (status = 404), (status = 503))
)]
pub(super) async fn results(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    require_role(&principal, ROLES)?;
    let lines = state.service.batch_results(&principal, &id).await?;
    let body = axum::body::Body::from_stream(futures_util::StreamExt::map(
        lines,
        Ok::<_, std::convert::Infallible>,
    ));
    let mut response = body.into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/x-ndjson"),
    );
    Ok(response)
}
