//! `GET /v1/tasks/{id}/events`: a task's events as Server-Sent Events, from the start or from
//! `Last-Event-ID`, live until a final state. Browsers' `EventSource` cannot send headers, so
//! this route alone also takes a short-lived stream token in `?token=`, issued by
//! `POST /v1/tasks/{id}/stream-token`.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router, middleware};
use futures_util::stream::{self, Stream};
use serde::Deserialize;
use serde_json::{Value, json};

use super::auth::require_auth;
use super::problem::ApiError;
use super::query::ApiQuery;
use crate::app::AppState;
use crate::auth::{AuthError, Principal};
use crate::tasks::Subscription;

/// How long a stream token is valid.
const STREAM_TOKEN_TTL: Duration = Duration::from_secs(300);
/// What `EventSource` waits before reconnecting.
const RECONNECT_HINT: Duration = Duration::from_secs(2);

pub fn router(state: AppState) -> Router<AppState> {
    let token = Router::new()
        .route("/v1/tasks/{id}/stream-token", post(stream_token))
        .route_layer(middleware::from_fn_with_state(state, require_auth));
    Router::new()
        .route("/v1/tasks/{id}/events", get(events))
        .merge(token)
}

#[utoipa::path(
    post, path = "/v1/tasks/{id}/stream-token", operation_id = "createStreamToken", tag = "tasks",
    params(("id" = String, Path, description = "The id")),
    responses((status = 200, description = "A short-lived token for `?token=` on the task's events", body = super::openapi::StreamToken), (status = 401), (status = 404),
        (status = 503))
)]
pub(super) async fn stream_token(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    state.service.task(&principal, &id, Duration::ZERO).await?;
    let token = state.auth.mint_stream(&principal, &id, STREAM_TOKEN_TTL);
    Ok(Json(json!({
        "token": token,
        "expires_in": STREAM_TOKEN_TTL.as_secs(),
        "url": format!("/v1/tasks/{id}/events?token={token}"),
    })))
}

#[derive(Debug, Default, Deserialize)]
pub(super) struct EventsQuery {
    token: Option<String>,
    /// For clients that cannot set `Last-Event-ID`.
    last_event_id: Option<String>,
}

#[utoipa::path(
    get, path = "/v1/tasks/{id}/events", operation_id = "taskEvents", tag = "tasks",
    params(("id" = String, Path, description = "The id"), ("token" = Option<String>, Query, description = "A stream token (for `EventSource`, which cannot send headers)"),
           ("last_event_id" = Option<String>, Query, description = "Resume after this event (or the `Last-Event-ID` header)")),
    responses((status = 200, description = "Server-Sent Events: `queued`, `started`, `delta`, `retracted`, then the final state", content_type = "text/event-stream"), (status = 401), (status = 404),
        (status = 503))
)]
pub(super) async fn events(
    State(state): State<AppState>,
    Path(id): Path<String>,
    ApiQuery(query): ApiQuery<EventsQuery>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let principal = match (headers.get(header::AUTHORIZATION), &query.token) {
        (Some(value), _) => state
            .auth
            .authenticate(Some(value.to_str().map_err(|_| AuthError::Malformed)?))?,
        (None, Some(token)) => state.auth.verify_stream(token, &id)?,
        (None, None) => return Err(AuthError::Missing.into()),
    };
    let cursor = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .or(query.last_event_id)
        .unwrap_or_else(|| "0-0".to_owned());
    stream_response(&state, &principal, &id, &cursor).await
}

/// The SSE answer that follows a task's events after `cursor`.
pub async fn stream_response(
    state: &AppState,
    principal: &Principal,
    task_id: &str,
    cursor: &str,
) -> Result<Response, ApiError> {
    let subscription = state.service.subscribe(principal, task_id, cursor).await?;
    let events = super::metrics::counted_sse(event_stream(subscription, cursor.to_owned()));
    let sse = Sse::new(events).keep_alive(KeepAlive::new().interval(Duration::from_secs(15)));
    let mut response = sse.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert("x-accel-buffering", HeaderValue::from_static("no"));
    Ok(response)
}

struct Progress {
    subscription: Subscription,
    last_id: String,
    hinted: bool,
    done: bool,
}

/// The reconnect hint, then each event with its stream id; after a final event the stream ends.
/// A subscriber dropped for being too slow gets `resync` with the last id it saw.
fn event_stream(
    subscription: Subscription,
    cursor: String,
) -> impl Stream<Item = Result<Event, Infallible>> {
    let start = Progress {
        subscription,
        last_id: cursor,
        hinted: false,
        done: false,
    };
    stream::unfold(start, |mut progress| async move {
        if progress.done {
            return None;
        }
        if !progress.hinted {
            progress.hinted = true;
            return Some((Ok(Event::default().retry(RECONNECT_HINT)), progress));
        }
        let event = match progress.subscription.events.recv().await {
            Some(event) => {
                progress.done = event.is_final();
                progress.last_id = event.id.clone();
                Event::default()
                    .id(event.id)
                    .event(event.name)
                    .data(event.data)
            }
            None => {
                progress.done = true;
                Event::default()
                    .event("resync")
                    .data(json!({ "last_event_id": progress.last_id }).to_string())
            }
        };
        Some((Ok(event), progress))
    })
}
