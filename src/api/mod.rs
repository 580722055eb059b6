//! The HTTP surface: routes, extractors, the problem+json error mapping and the middleware stack.

mod admin;
mod ai;
mod api_keys;
mod auth;
mod batches;
mod client_ip;
mod dashboard;
mod demo;
mod events;
mod health;
mod ip_limit;
mod json;
mod limits;
mod metrics;
mod openapi;
mod problem;
mod query;
mod rate_limit_headers;
mod reports;
mod request_context;
mod slots;
mod state;
mod tasks;
mod ws;

use axum::extract::DefaultBodyLimit;
use axum::http::{Method, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Router, middleware};
use tower_http::catch_panic::CatchPanicLayer;

pub use auth::authenticate;
pub use openapi::description as openapi_description;
pub use problem::ApiError;
pub use request_context::REQUEST_ID_HEADER;
pub use slots::OpenSlots;
pub use state::{AppState, Shared};

pub fn router(state: AppState) -> Router {
    let authenticated = Router::new()
        .merge(ai::router())
        .merge(admin::router())
        .merge(limits::router())
        .merge(api_keys::router())
        .merge(reports::router())
        .merge(batches::router(
            state.settings.server.batch_body_limit_bytes,
        ))
        .merge(tasks::router())
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            auth::require_auth,
        ));
    Router::new()
        .merge(authenticated)
        .merge(events::router(state.clone()))
        .merge(dashboard::router(state.clone()))
        .merge(ws::router())
        .merge(demo::router(state.settings.server.demo_pages))
        .merge(health::router())
        .merge(metrics::router())
        .merge(openapi::router())
        .route("/problems/{slug}", get(problem::describe))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(CatchPanicLayer::custom(panic_response))
        .layer(DefaultBodyLimit::max(
            state.settings.server.body_limit_bytes,
        ))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            ip_limit::limit_ip,
        ))
        .layer(middleware::from_fn(query::check_uri))
        .layer(middleware::from_fn(metrics::track))
        .layer(middleware::from_fn(request_context::request_context))
        .with_state(state)
}

/// What `tutorq worker` serves on `worker.admin_port`: health, readiness and metrics.
pub fn admin_router(state: AppState) -> Router {
    Router::new()
        .merge(health::router())
        .merge(metrics::router())
        .fallback(not_found)
        .layer(middleware::from_fn(metrics::track))
        .layer(middleware::from_fn(request_context::request_context))
        .with_state(state)
}

async fn not_found(uri: Uri) -> ApiError {
    ApiError::NotFound(format!("there is no route {}", uri.path()))
}

async fn method_not_allowed(method: Method, uri: Uri) -> ApiError {
    ApiError::MethodNotAllowed {
        method: method.to_string(),
        path: uri.path().to_owned(),
    }
}

fn panic_response(panic: Box<dyn std::any::Any + Send + 'static>) -> Response {
    let message = panic
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
        .unwrap_or_else(|| "unknown panic".to_owned());
    ApiError::Internal(anyhow::anyhow!("handler panicked: {message}")).into_response()
}
