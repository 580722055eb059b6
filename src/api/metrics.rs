//! `GET /metrics` (Prometheus text format, behind `metrics.token` when set) and the layer that
//! counts and times every HTTP request by method, route template and status.

use std::time::Instant;

use axum::Router;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use sha2::{Digest, Sha256};

use super::problem::ApiError;
use crate::api::AppState;
use crate::auth::AuthError;

pub fn router() -> Router<AppState> {
    Router::new().route("/metrics", get(scrape))
}

#[utoipa::path(
    get, path = "/metrics", operation_id = "metrics", tag = "health", security(()),
    responses(
        (status = 200, description = "Prometheus text format (with `Authorization: Bearer <metrics.token>` when one is set)", body = String, content_type = "text/plain; version=0.0.4"), (status = 401, description = "`metrics.token` is set and was not sent"), (status = 404, description = "metrics are off")
    )
)]
pub(super) async fn scrape(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let settings = &state.settings.metrics;
    if !settings.enabled {
        return Err(ApiError::NotFound(
            "metrics are turned off (metrics.enabled)".into(),
        ));
    }
    if let Some(token) = &settings.token {
        let given = headers
            .get(header::AUTHORIZATION)
            .ok_or(AuthError::Missing)?
            .to_str()
            .ok()
            .and_then(|v| v.strip_prefix("Bearer "))
            .ok_or(AuthError::Malformed)?;
        // Digests compared, so the time taken says nothing about the token.
        if Sha256::digest(given.trim()) != Sha256::digest(token.expose()) {
            return Err(AuthError::Invalid("it is not the metrics token".into()).into());
        }
    }
    let text = state.service.metrics_text().await;
    let mut response = text.into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    Ok(response)
}

/// Middleware: one count and one duration per request, labelled with the matched route
/// template (`unmatched` when no route matched), never the raw path.
pub async fn track(request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = method_label(request.method());
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |path| path.as_str().to_owned());
    let response = next.run(request).await;
    crate::metrics::http_request(method, route, response.status().as_u16(), started.elapsed());
    response
}

fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}
