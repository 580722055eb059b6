//! The API description: OpenAPI 3.1 generated from the handlers' `#[utoipa::path]`
//! annotations and the request types, served at `/openapi.json`, and `/docs`, an interactive
//! page (embedded in the binary, no CDN) that reads it.

use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::Value;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::api::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/openapi.json", get(document))
        .route("/docs", get(page))
        .route("/docs/docs.js", get(script))
        .route("/docs/docs.css", get(style))
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "tutorq",
        description = "The AI engine of the student-coaching platform: hints that never give the answer, explanations, study plans, evaluations and bulk question generation, answered inline or queued, with results by polling, Server-Sent Events, WebSocket or signed webhooks. Errors are RFC 9457 problem+json: `type` links to `/problems/{slug}`."
    ),
    paths(
        super::ai::submit,
        super::tasks::list,
        super::tasks::show,
        super::tasks::cancel,
        super::events::events,
        super::events::stream_token,
        super::ws::upgrade,
        super::batches::create,
        super::batches::list,
        super::batches::show,
        super::batches::cancel,
        super::batches::results,
        super::batches::events,
        super::limits::quota,
        super::limits::blocks,
        super::limits::unblock,
        super::limits::overrides,
        super::limits::set_overrides,
        super::limits::clear_overrides,
        super::admin::providers,
        super::admin::list_prompts,
        super::admin::reload_prompts,
        super::admin::dead,
        super::admin::retry_dead,
        super::dashboard::snapshot_once,
        super::dashboard::snapshot_stream,
        super::dashboard::task,
        super::api_keys::create,
        super::api_keys::list,
        super::api_keys::revoke,
        super::reports::usage,
        super::reports::latency,
        super::reports::audit,
        super::reports::flags,
        super::reports::quarantine,
        super::health::healthz,
        super::health::readyz,
        super::metrics::scrape,
        super::problem::describe
    ),
    components(schemas(super::problem::ProblemBody)),
    modifiers(&Bearer, &Problems),
    tags(
        (name = "ai", description = "AI requests"),
        (name = "tasks", description = "Queued requests: state, results, events"),
        (name = "batches", description = "Bulk requests (teachers, services, admins)"),
        (name = "limits", description = "Quotas, rate limits and abuse blocks"),
        (name = "admin", description = "Operators"),
        (name = "reports", description = "Usage, latency, audit trail and moderation flags"),
        (name = "health", description = "Liveness and readiness")
    )
)]
struct ApiDoc;

/// Every route needs `Authorization: Bearer <JWT or tq_ API key>` unless it says otherwise.
struct Bearer;

impl Modify for Bearer {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "A JWT (HS256, `sub` and `role` claims) or an API key `tq_...`",
                    ))
                    .build(),
            ),
        );
        openapi.security = Some(vec![utoipa::openapi::security::SecurityRequirement::new(
            "bearer",
            Vec::<String>::new(),
        )]);
    }
}

/// What each error status means when an operation does not say more.
const PROBLEM_STATUSES: &[(&str, &str)] = &[
    (
        "400",
        "malformed JSON, or a path that is not valid UTF-8 or holds a control character",
    ),
    (
        "408",
        "the request body did not arrive within `server.body_read_timeout_secs`",
    ),
    ("401", "no or invalid credentials"),
    (
        "403",
        "the caller's role may not do this, or the user is blocked",
    ),
    ("404", "no such resource (or not the caller's)"),
    ("409", "the resource is in a state that does not allow it"),
    ("413", "the body is too large"),
    ("415", "unsupported content type"),
    (
        "422",
        "invalid input or query parameter: `errors` names each field",
    ),
    (
        "429",
        "a rate limit or quota refused the request (`Retry-After`, `RateLimit-*` headers), or the caller holds too many long-polls, streams or sockets open",
    ),
    ("503", "a dependency (Redis, PostgreSQL) is unavailable"),
];

/// Every error answer is a [`Problem`] (`application/problem+json`): the handlers list only
/// their error statuses (with a description when theirs is special), and this fills in the
/// body and the usual description.
struct Problems;

impl Modify for Problems {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::{ContentBuilder, Ref, RefOr};
        for item in openapi.paths.paths.values_mut() {
            let operations = [
                &mut item.get,
                &mut item.put,
                &mut item.post,
                &mut item.delete,
            ];
            for operation in operations.into_iter().flatten() {
                // Every route refuses a bad path (400) or query parameter (422) before its
                // handler runs, and a body that does not arrive in time (408).
                let mut general = vec!["400", "422"];
                if operation.request_body.is_some() {
                    general.push("408");
                }
                for status in general {
                    operation
                        .responses
                        .responses
                        .entry(status.to_owned())
                        .or_insert_with(|| RefOr::T(utoipa::openapi::Response::new("")));
                }
                for (status, response) in operation.responses.responses.iter_mut() {
                    let RefOr::T(response) = response else {
                        continue;
                    };
                    if !status.starts_with(['4', '5']) || !response.content.is_empty() {
                        continue;
                    }
                    if response.description.is_empty()
                        && let Some((_, usual)) = PROBLEM_STATUSES.iter().find(|(s, _)| s == status)
                    {
                        response.description = (*usual).to_owned();
                    }
                    response.content.insert(
                        "application/problem+json".to_owned(),
                        ContentBuilder::new()
                            .schema(Some(Ref::from_schema_name("Problem")))
                            .build(),
                    );
                }
            }
        }
    }
}

/// The description of this API (OpenAPI 3.1).
pub fn description() -> Value {
    serde_json::to_value(ApiDoc::openapi()).expect("the API description serializes")
}

async fn document() -> Json<Value> {
    Json(description())
}

async fn page() -> Response {
    asset("text/html; charset=utf-8", include_str!("pages/docs.html"))
}

async fn script() -> Response {
    asset(
        "text/javascript; charset=utf-8",
        include_str!("pages/docs.js"),
    )
}

async fn style() -> Response {
    asset("text/css; charset=utf-8", include_str!("pages/docs.css"))
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    let mut response = body.into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}
