//! `/dashboard`: the operators' live page (plain HTML, CSS and JS embedded in the binary) and the
//! admin routes it reads: the engine's whole state as one snapshot, the same snapshot every
//! second as Server-Sent Events, and any user's task with its events.
//!
//! The page keeps the token in `sessionStorage` and sends it as `Authorization: Bearer` on
//! every call, the event stream included (read with `fetch`, not `EventSource`, so no token
//! ever sits in a URL).

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::{HeaderName, HeaderValue, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router, middleware};
use futures_util::stream::{self, Stream};
use serde_json::json;

use super::auth::{require_auth, require_role};
use super::problem::ApiError;
use crate::api::AppState;
use crate::auth::{Principal, Role};
use crate::service::dashboard::{AdminTask, Collector, Snapshot};

/// How often the live stream sends a snapshot.
const EVERY: Duration = Duration::from_secs(1);
/// A live stream ends after this and the page reconnects, so a revoked or expired token stops
/// seeing the dashboard within this long.
const STREAM_LIFETIME: Duration = Duration::from_secs(300);

const PAGE: &str = include_str!("pages/dashboard.html");
const SCRIPT: &str = include_str!("pages/dashboard.js");
const STYLE: &str = include_str!("pages/dashboard.css");

/// Everything the page loads comes from this origin; nothing else may run or be fetched.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; \
                   img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

pub fn router(state: AppState) -> Router<AppState> {
    let data = Router::new()
        .route("/v1/admin/dashboard", get(snapshot_once))
        .route("/v1/admin/dashboard/events", get(snapshot_stream))
        .route("/v1/admin/tasks/{id}", get(task))
        .route_layer(middleware::from_fn_with_state(state, require_auth));
    Router::new()
        .route("/dashboard", get(|| async { asset(PAGE, "text/html") }))
        .route(
            "/dashboard/dashboard.js",
            get(|| async { asset(SCRIPT, "text/javascript") }),
        )
        .route(
            "/dashboard/dashboard.css",
            get(|| async { asset(STYLE, "text/css") }),
        )
        .merge(data)
}

fn asset(body: &'static str, media_type: &'static str) -> Response {
    let content_type = format!("{media_type}; charset=utf-8");
    let headers = [
        (
            header::CONTENT_TYPE,
            HeaderValue::from_str(&content_type).expect("a static media type"),
        ),
        (
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CSP),
        ),
        (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
        (
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ),
        (
            HeaderName::from_static("referrer-policy"),
            HeaderValue::from_static("no-referrer"),
        ),
    ];
    (headers, body).into_response()
}

/// The dashboard's state now (throughput needs two snapshots: it is `null` here).
#[utoipa::path(
    get, path = "/v1/admin/dashboard", operation_id = "dashboardSnapshot", tag = "admin",
    responses((status = 200, description = "The dashboard's state: queues (depth, in flight, retrying, finished), workers, the 50 most recent tasks of every user, dead tasks, providers, today's usage by user and feature, blocked users; `errors` names parts that could not be read", body = Snapshot), (status = 401), (status = 403, description = "the caller is not an admin"))
)]
pub(super) async fn snapshot_once(
    State(state): State<AppState>,
    principal: Principal,
) -> Result<Json<Snapshot>, ApiError> {
    require_role(&principal, &[Role::Admin])?;
    Ok(Json(Collector::new(state.service.clone()).collect().await))
}

/// A `snapshot` event every second for five minutes, then the stream ends (the page reconnects).
#[utoipa::path(
    get, path = "/v1/admin/dashboard/events", operation_id = "dashboardEvents", tag = "admin",
    responses((status = 200, description = "Server-Sent Events: `snapshot` (the body of `GET /v1/admin/dashboard`, with `finished_per_sec` per queue) every second; the stream ends after 5 minutes", content_type = "text/event-stream"), (status = 401), (status = 403, description = "the caller is not an admin"))
)]
pub(super) async fn snapshot_stream(
    State(state): State<AppState>,
    principal: Principal,
) -> Result<Response, ApiError> {
    require_role(&principal, &[Role::Admin])?;
    let sse = Sse::new(live(state)).keep_alive(KeepAlive::new().interval(Duration::from_secs(15)));
    let mut response = sse.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert("x-accel-buffering", HeaderValue::from_static("no"));
    Ok(response)
}

fn live(state: AppState) -> impl Stream<Item = Result<Event, Infallible>> {
    let mut ticks = tokio::time::interval(EVERY);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let until = tokio::time::Instant::now() + STREAM_LIFETIME;
    stream::unfold(
        (Collector::new(state.service.clone()), ticks),
        move |(mut collector, mut ticks)| async move {
            let tick = ticks.tick().await;
            if tick >= until {
                return None;
            }
            let snapshot = collector.collect().await;
            let event = match Event::default().event("snapshot").json_data(&snapshot) {
                Ok(event) => event,
                Err(err) => Event::default()
                    .event("failure")
                    .data(json!({ "detail": err.to_string() }).to_string()),
            };
            Some((Ok(event), (collector, ticks)))
        },
    )
}

/// Any user's task (from Redis while its record lasts, else its history row) with its events.
#[utoipa::path(
    get, path = "/v1/admin/tasks/{id}", operation_id = "adminTask", tag = "admin",
    params(("id" = String, Path, description = "The task id")),
    responses((status = 200, description = "`task` (any user's), `source` (`redis` or `history`) and `events` (id, event, data)", body = AdminTask), (status = 401), (status = 403, description = "the caller is not an admin"), (status = 404, description = "no such task"), (status = 503))
)]
pub(super) async fn task(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
) -> Result<Json<AdminTask>, ApiError> {
    require_role(&principal, &[Role::Admin])?;
    let found = state.service.admin_task(&id).await?;
    Ok(Json(found.ok_or_else(|| {
        ApiError::NotFound(format!("no task {id}"))
    })?))
}
