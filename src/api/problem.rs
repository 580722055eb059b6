//! RFC 9457 problem details: every error answer of the API, with a stable `type` per kind.
//!
//! `type` is a relative URI (`/problems/<slug>`), so it resolves against the server that sent
//! it, and `GET /problems/<slug>` explains the problem in words.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::Path;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use super::rate_limit_headers;
use super::request_context::current_request_id;
use crate::auth::AuthError;
use crate::service::limits::{IpVerdict, Limit, Refusal};
use crate::service::{
    ChainError, FieldErrors, InputError, LoadError, LookupError, ServiceError, StoreError,
};

pub const CONTENT_TYPE: &str = "application/problem+json";

/// The problem kinds: `(slug, title, status, what it means)`. The limits' own kinds come from
/// [`Limit`] (see [`kind`]).
const KINDS: &[(&str, &str, u16, &str)] = &[
    (
        "task-final",
        "Task Already Final",
        409,
        "The task already reached a final state, so it cannot be cancelled or replayed.",
    ),
    (
        "idempotency-key-reused",
        "Idempotency Key Reused",
        422,
        "This Idempotency-Key was already used by you with a different request body within 24 hours.",
    ),
    (
        "store-unavailable",
        "Store Unavailable",
        503,
        "Redis did not answer in time; nothing was queued. Try again shortly.",
    ),
    (
        "malformed-json",
        "Malformed JSON",
        400,
        "The request body is not well-formed JSON; `detail` gives the line and column.",
    ),
    (
        "unauthorized",
        "Unauthorized",
        401,
        "The request has no valid bearer token. `WWW-Authenticate` says why.",
    ),
    (
        "forbidden",
        "Forbidden",
        403,
        "The caller is authenticated but its role may not use this endpoint.",
    ),
    (
        "not-found",
        "Not Found",
        404,
        "No such route or resource (another user's resources also answer 404).",
    ),
    (
        "unknown-feature",
        "Unknown Feature",
        404,
        "The AI feature in the path does not exist; `features` lists those that do.",
    ),
    (
        "method-not-allowed",
        "Method Not Allowed",
        405,
        "The route exists but not with this HTTP method.",
    ),
    (
        "payload-too-large",
        "Payload Too Large",
        413,
        "The request body is larger than the server accepts.",
    ),
    (
        "body-timeout",
        "Request Body Timeout",
        408,
        "The request body did not arrive whole within the server's deadline (`server.body_read_timeout_secs`).",
    ),
    (
        "bad-path",
        "Bad Path",
        400,
        "The request path is not valid UTF-8 once percent-decoded, or holds a control character.",
    ),
    (
        "too-many-connections",
        "Too Many Connections",
        503,
        "The server holds as many connections as it allows (`server.max_connections`); the connection was closed. Retry shortly.",
    ),
    (
        "unsupported-media-type",
        "Unsupported Media Type",
        415,
        "The request body must be sent as `Content-Type: application/json`.",
    ),
    (
        "invalid-input",
        "Invalid Input",
        422,
        "The request is well-formed but some fields are wrong; `errors` maps each field to what is wrong.",
    ),
    (
        "forbidden-topic",
        "Forbidden Topic",
        422,
        "A text input mentions a topic the feature's prompt refuses (matched as whole words, Turkish-aware).",
    ),
    (
        "unknown-prompt-version",
        "Unknown Prompt Version",
        422,
        "The pinned `prompt_version` does not exist for this feature; `available` lists those that do.",
    ),
    (
        "invalid-prompts",
        "Invalid Prompt Files",
        422,
        "A prompt reload found bad files; the running prompts were kept. `errors` maps each file to its problem.",
    ),
    (
        "internal",
        "Internal Server Error",
        500,
        "Something failed inside tutorq. Quote `request_id` when you report it.",
    ),
    (
        "invalid-model-output",
        "Invalid Model Output",
        502,
        "The AI provider answered, but not in the feature's output schema.",
    ),
    (
        "provider-error",
        "Provider Error",
        502,
        "The AI provider refused the request.",
    ),
    (
        "provider-unavailable",
        "Provider Unavailable",
        503,
        "Every AI provider in the feature's chain failed; try again later.",
    ),
    (
        "too-many-open",
        "Too Many Open",
        429,
        "The caller (or this server) holds as many long-polls, event streams or WebSockets open as allowed; close one, or retry after `Retry-After`.",
    ),
    (
        "not-ready",
        "Not Ready",
        503,
        "A dependency (Redis, PostgreSQL, prompts) is not available; `errors` names it.",
    ),
];

/// A problem kind by its slug: one of [`KINDS`], or a limit's.
fn kind(slug: &str) -> Option<(&'static str, &'static str, u16, &'static str)> {
    KINDS.iter().copied().find(|k| k.0 == slug).or_else(|| {
        Limit::problem_types()
            .find(|p| p.slug == slug)
            .map(|p| (p.slug, p.title, p.status, p.meaning))
    })
}

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    Unauthorized(#[from] AuthError),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    #[error("there is no AI feature `{0}`")]
    UnknownFeature(String),
    #[error("{method} is not allowed on {path}")]
    MethodNotAllowed { method: String, path: String },
    #[error("the request body is not valid JSON: {0}")]
    MalformedJson(String),
    #[error("{0}")]
    UnsupportedMediaType(String),
    #[error("the request body is larger than the limit of {limit} bytes")]
    PayloadTooLarge { limit: usize },
    #[error("the request body did not arrive whole within {secs} s")]
    BodyTimeout { secs: u64 },
    #[error("the request path is not valid: {0}")]
    BadPath(String),
    #[error("{detail}")]
    InvalidInput { detail: String, errors: FieldErrors },
    #[error("`{field}` mentions `{topic}`, a topic this feature does not accept")]
    ForbiddenTopic { field: String, topic: String },
    #[error(transparent)]
    UnknownPromptVersion(LookupError),
    #[error("the prompt files have errors; the running prompts were kept")]
    InvalidPrompts(LoadError),
    #[error("the AI provider answered in a shape the feature does not accept")]
    InvalidModelOutput {
        provider: &'static str,
        problems: Vec<String>,
    },
    #[error("{0}")]
    Provider(ChainError),
    #[error("the task is already {0}")]
    TaskFinal(String),
    #[error("this Idempotency-Key was already used with a different request body")]
    IdempotencyKeyReused,
    #[error("the task store (Redis) is unavailable; nothing was changed")]
    StoreUnavailable(String),
    #[error("not ready: {}", failing.keys().cloned().collect::<Vec<_>>().join(", "))]
    NotReady { failing: BTreeMap<String, String> },
    #[error("{0}")]
    TooManyOpen(String),
    #[error("{0}")]
    IpRateLimited(IpVerdict),
    #[error("{0}")]
    Limited(Box<Refusal>),
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl ApiError {
    pub fn invalid_field(field: &str, message: impl Into<String>) -> Self {
        Self::InvalidInput {
            detail: format!("`{field}` is invalid"),
            errors: BTreeMap::from([(field.to_owned(), message.into())]),
        }
    }

    fn slug(&self) -> &'static str {
        match self {
            Self::Unauthorized(_) => "unauthorized",
            Self::Forbidden(_) => "forbidden",
            Self::NotFound(_) => "not-found",
            Self::UnknownFeature(_) => "unknown-feature",
            Self::MethodNotAllowed { .. } => "method-not-allowed",
            Self::MalformedJson(_) => "malformed-json",
            Self::UnsupportedMediaType(_) => "unsupported-media-type",
            Self::PayloadTooLarge { .. } => "payload-too-large",
            Self::BodyTimeout { .. } => "body-timeout",
            Self::BadPath(_) => "bad-path",
            Self::InvalidInput { .. } => "invalid-input",
            Self::ForbiddenTopic { .. } => "forbidden-topic",
            Self::UnknownPromptVersion(_) => "unknown-prompt-version",
            Self::InvalidPrompts(_) => "invalid-prompts",
            Self::InvalidModelOutput { .. } => "invalid-model-output",
            Self::Provider(chain) if chain.error.is_transient() => "provider-unavailable",
            Self::Provider(_) => "provider-error",
            Self::NotReady { .. } => "not-ready",
            Self::TaskFinal(_) => "task-final",
            Self::IdempotencyKeyReused => "idempotency-key-reused",
            Self::StoreUnavailable(_) => "store-unavailable",
            Self::IpRateLimited(_) => Limit::Ip.problem().slug,
            Self::TooManyOpen(_) => "too-many-open",
            Self::Limited(refusal) => refusal.limit.problem().slug,
            Self::Internal(_) => "internal",
        }
    }

    fn errors(&self) -> FieldErrors {
        match self {
            Self::InvalidInput { errors, .. } | Self::NotReady { failing: errors } => {
                errors.clone()
            }
            Self::ForbiddenTopic { field, topic } => BTreeMap::from([(
                field.clone(),
                format!("mentions the forbidden topic `{topic}`"),
            )]),
            Self::UnknownPromptVersion(LookupError::UnknownVersion { available, .. }) => {
                BTreeMap::from([(
                    "prompt_version".to_owned(),
                    format!("must be one of: {}", available.join(", ")),
                )])
            }
            Self::InvalidPrompts(LoadError(files)) => files
                .iter()
                .map(|f| (f.path.display().to_string(), f.located_reason()))
                .collect(),
            _ => FieldErrors::new(),
        }
    }

    fn extensions(&self) -> serde_json::Map<String, serde_json::Value> {
        let mut extra = serde_json::Map::new();
        match self {
            Self::UnknownFeature(_) => {
                extra.insert("features".into(), crate::feature::Feature::names().into());
            }
            Self::UnknownPromptVersion(LookupError::UnknownVersion { available, .. }) => {
                extra.insert("available".into(), available.clone().into());
            }
            Self::InvalidModelOutput { provider, problems } => {
                extra.insert("provider".into(), (*provider).into());
                extra.insert("problems".into(), problems.clone().into());
            }
            Self::Provider(chain) => {
                let tried: Vec<String> = chain
                    .attempts
                    .iter()
                    .map(|(p, e)| format!("{p}: {e}"))
                    .collect();
                extra.insert("providers_tried".into(), tried.into());
            }
            Self::IpRateLimited(verdict) => {
                extra.insert("layer".into(), Limit::Ip.layer().as_str().into());
                extra.insert("retry_after".into(), verdict.retry_after_secs().into());
            }
            Self::Limited(refusal) => {
                extra.insert("layer".into(), refusal.limit.layer().as_str().into());
                extra.insert("retry_after".into(), refusal.retry_after_secs().into());
                if let Some(until) = refusal.blocked_until() {
                    extra.insert("blocked_until".into(), until.into());
                }
                if let Some(at) = refusal.resets_at() {
                    extra.insert("resets_at".into(), at.into());
                }
            }
            _ => {}
        }
        extra
    }
}

impl From<ServiceError> for ApiError {
    fn from(err: ServiceError) -> Self {
        match err {
            ServiceError::Input(InputError::Invalid(errors)) => Self::InvalidInput {
                detail: describe_fields(&errors),
                errors,
            },
            ServiceError::Input(InputError::ForbiddenTopic { field, topic }) => {
                Self::ForbiddenTopic { field, topic }
            }
            ServiceError::PromptVersion(lookup) => Self::UnknownPromptVersion(lookup),
            ServiceError::Render(reason) => Self::InvalidInput {
                detail: format!("the prompt could not be rendered with this input: {reason}"),
                errors: BTreeMap::from([("input".to_owned(), reason)]),
            },
            ServiceError::Provider(chain) => Self::Provider(chain),
            ServiceError::InvalidOutput { provider, problems } => {
                Self::InvalidModelOutput { provider, problems }
            }
            ServiceError::Store(err) => err.into(),
            ServiceError::IdempotencyMismatch => Self::IdempotencyKeyReused,
            ServiceError::TaskNotFound => Self::NotFound("there is no task with this id".into()),
            ServiceError::TaskFinal(state) => Self::TaskFinal(state),
            ServiceError::Limited(crate::service::limits::LimitError::Refused(refusal)) => {
                Self::Limited(refusal)
            }
            ServiceError::Limited(crate::service::limits::LimitError::Unavailable(err)) => {
                tracing::warn!(%err, "Redis unavailable for admission");
                Self::StoreUnavailable(err.to_string())
            }
            ServiceError::InvalidBatch(items) => Self::InvalidInput {
                detail: format!(
                    "{} item(s) are invalid: indices {}; nothing was queued (send `allow_partial: true` to run the valid ones)",
                    items.len(),
                    items
                        .iter()
                        .map(|(i, _)| i.to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
                errors: items
                    .into_iter()
                    .flat_map(|(index, errors)| {
                        errors
                            .into_iter()
                            .map(move |(field, why)| (format!("items[{index}].{field}"), why))
                    })
                    .collect(),
            },
            ServiceError::BatchNotFound => Self::NotFound("there is no batch with this id".into()),
            ServiceError::CallbackUrl(reason) => Self::InvalidInput {
                detail: format!("`callback_url` is refused: {reason}"),
                errors: BTreeMap::from([("callback_url".to_owned(), reason)]),
            },
        }
    }
}

/// A store failure as the client may see it: never the store's own text (it is logged). A
/// value PostgreSQL refuses for its content is the client's mistake (400); a Redis failure is
/// `store-unavailable`, a PostgreSQL one `not-ready` (503).
impl From<StoreError> for ApiError {
    fn from(err: StoreError) -> Self {
        tracing::warn!(%err, "a store refused or failed");
        if err.refuses_content() {
            return Self::InvalidInput {
                detail: "a value in this request cannot be stored (it holds NUL or is too large)"
                    .into(),
                errors: FieldErrors::new(),
            };
        }
        match err {
            StoreError::Redis(err) => Self::StoreUnavailable(err.to_string()),
            StoreError::Postgres(_) => Self::NotReady {
                failing: [(
                    "postgres".to_owned(),
                    "did not answer; the server log has the details".to_owned(),
                )]
                .into(),
            },
        }
    }
}

/// "2 fields are invalid: input.question, input.hint_level".
fn describe_fields(errors: &FieldErrors) -> String {
    let names: Vec<&str> = errors.keys().map(String::as_str).collect();
    match names.as_slice() {
        [one] => format!("`{one}` {}", errors[*one]),
        _ => format!("{} fields are invalid: {}", names.len(), names.join(", ")),
    }
}

/// An RFC 9457 problem: what went wrong, precisely. `type` resolves to a page describing the
/// problem (`GET /problems/{slug}`).
#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = Problem)]
pub(super) struct ProblemBody {
    /// `/problems/<slug>`, e.g. `/problems/invalid-input`.
    #[serde(rename = "type")]
    #[schema(rename = "type")]
    kind: String,
    title: &'static str,
    status: u16,
    detail: String,
    /// The request's id (also in the `x-request-id` header): quote it when reporting.
    #[serde(skip_serializing_if = "Option::is_none")]
    request_id: Option<String>,
    /// Per field: what is wrong with it (`input.question`, `items[3].input.count`, ...).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    errors: FieldErrors,
    /// Extensions of some problem types (`retry_after`, `layer`, `blocked_until`, ...).
    #[serde(flatten)]
    #[schema(ignore)]
    extensions: serde_json::Map<String, serde_json::Value>,
}

/// What a problem type means.
#[derive(Serialize, utoipa::ToSchema)]
pub(super) struct ProblemType {
    #[serde(rename = "type")]
    #[schema(rename = "type")]
    kind: String,
    title: &'static str,
    status: u16,
    description: &'static str,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let slug = self.slug();
        let (_, title, status, _) = kind(slug).expect("every slug is listed in KINDS");
        let request_id = current_request_id();
        let detail = match &self {
            Self::Internal(err) => {
                tracing::error!(error = format!("{err:#}"), "internal error");
                "an unexpected error occurred; quote the request id when reporting it".to_owned()
            }
            other => other.to_string(),
        };
        let body = ProblemBody {
            kind: format!("/problems/{slug}"),
            title,
            status,
            detail,
            request_id,
            errors: self.errors(),
            extensions: self.extensions(),
        };
        let status = StatusCode::from_u16(status).expect("valid status");
        let mut response = (status, Json(body)).into_response();
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE));
        match &self {
            Self::Unauthorized(reason) => {
                headers.insert(header::WWW_AUTHENTICATE, www_authenticate(reason));
            }
            Self::IpRateLimited(verdict) => rate_limit_headers::ip_refused(headers, verdict),
            Self::TooManyOpen(_) => {
                headers.insert(header::RETRY_AFTER, 5.into());
            }
            Self::Limited(refusal) => rate_limit_headers::refused(headers, refusal),
            _ => {}
        }
        response
    }
}

/// RFC 6750 §3: no error code when no credentials were sent, `invalid_token` otherwise.
fn www_authenticate(reason: &AuthError) -> HeaderValue {
    let value = match reason {
        AuthError::Missing => r#"Bearer realm="tutorq""#.to_owned(),
        AuthError::Malformed => r#"Bearer realm="tutorq", error="invalid_request""#.to_owned(),
        other => {
            // A header value: printable ASCII only (RFC 6750 §3 `error-description`).
            let description: String = other
                .to_string()
                .chars()
                .map(|c| match c {
                    '"' => '\'',
                    c if c == ' ' || c.is_ascii_graphic() => c,
                    _ => '?',
                })
                .collect();
            format!(
                r#"Bearer realm="tutorq", error="invalid_token", error_description="{description}""#
            )
        }
    };
    HeaderValue::from_str(&value).unwrap_or_else(|_| {
        HeaderValue::from_static(r#"Bearer realm="tutorq", error="invalid_token""#)
    })
}

/// `GET /problems/{slug}`: what a problem type means.
#[utoipa::path(
    get, path = "/problems/{slug}", operation_id = "describeProblem", tag = "health", security(()),
    params(("slug" = String, Path, description = "A problem type, e.g. invalid-input")),
    responses((status = 200, description = "What the problem type means", body = ProblemType), (status = 404))
)]
pub async fn describe(Path(slug): Path<String>) -> Response {
    match kind(&slug) {
        Some((slug, title, status, meaning)) => Json(ProblemType {
            kind: format!("/problems/{slug}"),
            title,
            status,
            description: meaning,
        })
        .into_response(),
        None => ApiError::NotFound(format!("there is no problem type `{slug}`")).into_response(),
    }
}
