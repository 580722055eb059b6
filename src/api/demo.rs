//! `GET /demo/events`: a small page that follows tasks with `EventSource` and `WebSocket`, for
//! development and for the browser tests. Served only when `server.demo_pages` is on.

use axum::Router;
use axum::response::Html;
use axum::routing::get;

use crate::api::AppState;

pub fn router(enabled: bool) -> Router<AppState> {
    if !enabled {
        return Router::new();
    }
    Router::new().route(
        "/demo/events",
        get(|| async { Html(include_str!("pages/events.html")) }),
    )
}
