//! `GET /v1/tasks/{id}/events`: a task's events as Server-Sent Events, from the start or from
//! `Last-Event-ID`, live until a final state. Browsers' `EventSource` cannot send headers, so
//! this route alone also takes a short-lived stream token in `?token=`, issued by
//! `POST /v1/tasks/{id}/stream-token`.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router, middleware};
use futures_util::StreamExt as _;
use futures_util::stream::{self, Stream};
use serde::Deserialize;
use serde_json::json;

use super::auth::require_auth;
use super::problem::ApiError;
use super::query::ApiQuery;
use super::slots::Slot;
use crate::api::AppState;
use crate::auth::{AuthError, Principal};
use crate::service::Subscription;

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
    responses((status = 200, description = "A short-lived token for `?token=` on the task's events", body = StreamToken), (status = 401), (status = 404),
        (status = 503))
)]
pub(super) async fn stream_token(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
) -> Result<Json<StreamToken>, ApiError> {
    state.service.task(&principal, &id, Duration::ZERO).await?;
    let token = state
        .auth
        .tokens
        .mint_stream(&principal, &id, STREAM_TOKEN_TTL);
    Ok(Json(StreamToken {
        url: format!("/v1/tasks/{id}/events?token={token}"),
        token,
        expires_in: STREAM_TOKEN_TTL.as_secs(),
    }))
}

/// A token for `?token=` on one task's events (for `EventSource`, which cannot send headers).
#[derive(serde::Serialize, utoipa::ToSchema)]
pub(super) struct StreamToken {
    token: String,
    /// Seconds it stays valid.
    expires_in: u64,
    /// The events URL with the token.
    url: String,
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
    responses((status = 200, description = "Server-Sent Events: `queued`, `started`, `delta`, `retracted`, then the final state (or `expired` when the token runs out)", content_type = "text/event-stream"),
        (status = 204, description = "The task is final and `Last-Event-ID` is its last event: nothing more will come (EventSource stops)"), (status = 401), (status = 404), (status = 429),
        (status = 503))
)]
pub(super) async fn events(
    State(state): State<AppState>,
    Path(id): Path<String>,
    ApiQuery(query): ApiQuery<EventsQuery>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let principal = match (headers.get(header::AUTHORIZATION), &query.token) {
        (Some(value), _) => {
            let value = value.to_str().map_err(|_| AuthError::Malformed)?;
            super::auth::authenticate(&state, Some(value)).await?
        }
        (None, Some(token)) => state.auth.tokens.verify_stream(token, &id)?,
        (None, None) => return Err(AuthError::Missing.into()),
    };
    let cursor = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .or(query.last_event_id)
        .unwrap_or_else(|| "0-0".to_owned());
    // `EventSource` reconnects after every ended stream, with the last id it saw: once that
    // is the final event, 204 is what makes it stop (WHATWG HTML §9.2.3).
    if state
        .service
        .seen_to_the_end(&principal, &id, &cursor)
        .await?
    {
        return Ok(StatusCode::NO_CONTENT.into_response());
    }
    let slot = state.open.event_streams.take(&principal.user_id)?;
    stream_response(&state, &principal, &id, &cursor, slot).await
}

/// The SSE answer that follows a task's events after `cursor`, holding `slot` while open.
pub async fn stream_response(
    state: &AppState,
    principal: &Principal,
    task_id: &str,
    cursor: &str,
    slot: Slot,
) -> Result<Response, ApiError> {
    let subscription = state.service.subscribe(principal, task_id, cursor).await?;
    let events = held_sse(
        event_stream(subscription, cursor.to_owned()),
        slot,
        principal.expires_at,
    );
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

/// An event stream as served: counted while open, holding its caller's slot, and ended with
/// an `expired` event when the caller's token expires (an API key's stream has no end).
pub(super) fn held_sse<S>(
    events: S,
    slot: Slot,
    expires_at: Option<u64>,
) -> impl Stream<Item = Result<Event, Infallible>>
where
    S: Stream<Item = Result<Event, Infallible>> + Send,
{
    let open = crate::metrics::OpenConnection::sse();
    let expiry = Box::pin(tokio::time::sleep_until(expiry_instant(expires_at)));
    let held = (Box::pin(events), expiry, (open, slot), false);
    stream::unfold(held, |(mut events, mut expiry, held, done)| async move {
        if done {
            return None;
        }
        tokio::select! {
            item = events.next() => item.map(|item| (item, (events, expiry, held, false))),
            () = &mut expiry => {
                let event = Event::default().event("expired").data(
                    json!({ "message": "the token expired; reconnect with a fresh token (and Last-Event-ID) to go on" })
                        .to_string(),
                );
                Some((Ok(event), (events, expiry, held, true)))
            }
        }
    })
}

/// When a credential expiring at `expires_at` (Unix seconds) runs out, on the runtime's clock;
/// far in the future for one that never expires.
pub(super) fn expiry_instant(expires_at: Option<u64>) -> tokio::time::Instant {
    const NEVER: Duration = Duration::from_secs(100 * 365 * 86_400);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let left = match expires_at {
        Some(exp) => Duration::from_secs(exp).saturating_sub(now),
        None => NEVER,
    };
    tokio::time::Instant::now() + left
}
