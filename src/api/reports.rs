//! Admin reports: `GET /v1/admin/usage`, `/v1/admin/latency`, `/v1/admin/audit`, and
//! `/v1/admin/flags` (moderation flags, teachers too). JSON by
//! default; `Accept: text/csv` gives the same rows as CSV (RFC 4180).

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use base64::Engine as _;
use serde::Deserialize;

use super::auth::require_role;
use super::problem::ApiError;
use super::query::ApiQuery;
use crate::api::AppState;
use crate::auth::{Principal, Role};
use crate::service::reports::{
    AuditFilter, AuditRow, GroupBy, LatencyRow, Quarantined, Range, UsageRow,
};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/admin/usage", get(usage))
        .route("/v1/admin/latency", get(latency))
        .route("/v1/admin/audit", get(audit))
        .route("/v1/admin/flags", get(flags))
        .route("/v1/admin/audit/quarantine", get(quarantine))
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct QuarantineQuery {
    limit: Option<i64>,
}

/// What a quarantine listing holds: how many in all, the newest first.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub(super) struct QuarantineList {
    total: i64,
    events: Vec<Quarantined>,
}

/// Audit events PostgreSQL refused for their content (isolated from their batch so the rest
/// was written), with the reason, newest first.
#[utoipa::path(
    get, path = "/v1/admin/audit/quarantine", operation_id = "auditQuarantine", tag = "reports",
    params(("limit" = Option<i64>, Query, description = "1 to 500 (default 100)")),
    responses((status = 200, description = "Quarantined audit events, newest first, and how many there are", body = QuarantineList), (status = 401), (status = 403),
        (status = 422), (status = 503))
)]
pub(super) async fn quarantine(
    State(state): State<AppState>,
    principal: Principal,
    ApiQuery(query): ApiQuery<QuarantineQuery>,
) -> Result<Json<QuarantineList>, ApiError> {
    require_role(&principal, &[Role::Admin])?;
    let limit = query.limit.unwrap_or(100);
    if !(1..=500).contains(&limit) {
        return Err(ApiError::invalid_field(
            "limit",
            "must be between 1 and 500",
        ));
    }
    let (total, events) = state.service.quarantined(limit).await?;
    Ok(Json(QuarantineList { total, events }))
}

#[derive(Debug, Default, Deserialize)]
pub(super) struct ReportQuery {
    from: Option<String>,
    to: Option<String>,
    group_by: Option<String>,
    feature: Option<String>,
    user_id: Option<String>,
    status: Option<String>,
    cursor: Option<String>,
    limit: Option<i64>,
}

/// `[from, to)`: both RFC 3339; `to` defaults to now and `from` to 30 days before `to`.
fn range(query: &ReportQuery) -> Result<Range, ApiError> {
    let parse = |field: &str, text: &str| {
        text.parse::<jiff::Timestamp>().map_err(|err| {
            ApiError::invalid_field(
                field,
                format!("must be an RFC 3339 time such as 2026-11-01T00:00:00Z ({err})"),
            )
        })
    };
    let to = match &query.to {
        Some(text) => parse("to", text)?,
        None => jiff::Timestamp::now(),
    };
    let from = match &query.from {
        Some(text) => parse("from", text)?,
        None => to - jiff::SignedDuration::from_hours(24 * 30),
    };
    if from >= to {
        return Err(ApiError::invalid_field("from", "must be before `to`"));
    }
    Ok(Range {
        from: from.to_string(),
        to: to.to_string(),
    })
}

fn feature(query: &ReportQuery) -> Result<Option<String>, ApiError> {
    match &query.feature {
        Some(name) => name
            .parse::<crate::feature::Feature>()
            .map(|f| Some(f.to_string()))
            .map_err(|_| ApiError::UnknownFeature(name.clone())),
        None => Ok(None),
    }
}

fn wants_csv(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.contains("text/csv"))
}

/// RFC 4180: every field quoted when it holds a comma, quote or line break.
fn csv(columns: &[&str], rows: impl IntoIterator<Item = Vec<String>>) -> Response {
    let field = |text: &str| {
        if text.contains([',', '"', '\n', '\r']) {
            format!("\"{}\"", text.replace('"', "\"\""))
        } else {
            text.to_owned()
        }
    };
    let mut out = columns.join(",") + "\r\n";
    for row in rows {
        out.push_str(&row.iter().map(|f| field(f)).collect::<Vec<_>>().join(","));
        out.push_str("\r\n");
    }
    let mut response = out.into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/csv; charset=utf-8"),
    );
    response
}

#[utoipa::path(
    get, path = "/v1/admin/usage", operation_id = "usageReport", tag = "reports",
    params(("from" = Option<String>, Query, description = "RFC 3339 (default: 30 days ago)"), ("to" = Option<String>, Query, description = "RFC 3339 (default: now)"),
           ("group_by" = Option<String>, Query, description = "user, feature, provider, model or day")),
    responses((status = 200, description = "Requests, tokens, cost, cache hits, degraded answers and errors per group (CSV with `Accept: text/csv`)", content((UsageReport = "application/json"), (String = "text/csv"))), (status = 404, description = "no such feature"), (status = 401), (status = 403),
        (status = 422), (status = 503))
)]
pub(super) async fn usage(
    State(state): State<AppState>,
    principal: Principal,
    headers: HeaderMap,
    ApiQuery(query): ApiQuery<ReportQuery>,
) -> Result<Response, ApiError> {
    require_role(&principal, &[Role::Admin])?;
    let range = range(&query)?;
    let group_by = query.group_by.as_deref().unwrap_or("feature");
    let group: GroupBy = group_by.parse().map_err(|()| {
        ApiError::invalid_field(
            "group_by",
            "must be one of user, feature, provider, model, day",
        )
    })?;
    let rows = state.service.usage_report(&range, group).await?;
    if wants_csv(&headers) {
        return Ok(csv(
            &[
                group_by,
                "requests",
                "prompt_tokens",
                "completion_tokens",
                "cost_usd",
                "cache_hits",
                "degraded",
                "errors",
            ],
            rows.iter().map(|r| {
                vec![
                    r.group.clone(),
                    r.requests.to_string(),
                    r.prompt_tokens.to_string(),
                    r.completion_tokens.to_string(),
                    format!("{:.6}", r.cost_usd),
                    r.cache_hits.to_string(),
                    r.degraded.to_string(),
                    r.errors.to_string(),
                ]
            }),
        ));
    }
    Ok(Json(UsageReport {
        from: range.from,
        to: range.to,
        group_by: group_by.to_owned(),
        rows,
    })
    .into_response())
}

#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub(super) struct UsageReport {
    from: String,
    to: String,
    group_by: String,
    rows: Vec<UsageRow>,
}

#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub(super) struct LatencyReport {
    from: String,
    to: String,
    rows: Vec<LatencyRow>,
}

/// Audit events (or moderation flags), newest first.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub(super) struct AuditPage {
    events: Vec<AuditRow>,
    /// Pass as `cursor` for the next page; null on the last.
    next_cursor: Option<String>,
}

#[utoipa::path(
    get, path = "/v1/admin/latency", operation_id = "latencyReport", tag = "reports",
    params(("feature" = Option<String>, Query, description = "Only this feature"), ("from" = Option<String>, Query, description = "RFC 3339"), ("to" = Option<String>, Query, description = "RFC 3339")),
    responses((status = 200, description = "p50/p95/p99 of successful requests per feature (CSV with `Accept: text/csv`)", content((LatencyReport = "application/json"), (String = "text/csv"))), (status = 404, description = "no such feature"), (status = 401), (status = 403),
        (status = 422), (status = 503))
)]
pub(super) async fn latency(
    State(state): State<AppState>,
    principal: Principal,
    headers: HeaderMap,
    ApiQuery(query): ApiQuery<ReportQuery>,
) -> Result<Response, ApiError> {
    require_role(&principal, &[Role::Admin])?;
    let range = range(&query)?;
    let feature = feature(&query)?;
    let rows = state
        .service
        .latency_report(&range, feature.as_deref())
        .await?;
    if wants_csv(&headers) {
        let ms = |v: Option<f64>| v.map(|v| format!("{v:.1}")).unwrap_or_default();
        return Ok(csv(
            &["feature", "requests", "p50_ms", "p95_ms", "p99_ms"],
            rows.iter().map(|r| {
                vec![
                    r.feature.clone(),
                    r.requests.to_string(),
                    ms(r.p50_ms),
                    ms(r.p95_ms),
                    ms(r.p99_ms),
                ]
            }),
        ));
    }
    Ok(Json(LatencyReport {
        from: range.from,
        to: range.to,
        rows,
    })
    .into_response())
}

#[utoipa::path(
    get, path = "/v1/admin/audit", operation_id = "auditEvents", tag = "reports",
    params(("user_id" = Option<String>, Query, description = "Only this user"), ("feature" = Option<String>, Query, description = "Only this feature"),
           ("status" = Option<String>, Query, description = "pre_request, success, error, flag or guard"), ("from" = Option<String>, Query, description = "RFC 3339"),
           ("to" = Option<String>, Query, description = "RFC 3339"), ("limit" = Option<i64>, Query, description = "1 to 500"), ("cursor" = Option<String>, Query, description = "`next_cursor` of the previous page")),
    responses((status = 200, description = "Audit events, newest first (CSV with `Accept: text/csv`)", content((AuditPage = "application/json"), (String = "text/csv"))), (status = 404, description = "no such feature"), (status = 401), (status = 403),
        (status = 422), (status = 503))
)]
pub(super) async fn audit(
    State(state): State<AppState>,
    principal: Principal,
    headers: HeaderMap,
    ApiQuery(query): ApiQuery<ReportQuery>,
) -> Result<Response, ApiError> {
    require_role(&principal, &[Role::Admin])?;
    if let Some(status) = &query.status
        && !["pre_request", "success", "error", "flag", "guard"].contains(&status.as_str())
    {
        return Err(ApiError::invalid_field(
            "status",
            "must be pre_request, success, error, flag or guard",
        ));
    }
    audit_events(state, headers, query).await
}

/// Moderation flags for teachers and admins: the `flag` audit events (which categories and
/// terms a student's input matched), newest first, with the same filters and paging.
#[utoipa::path(
    get, path = "/v1/admin/flags", operation_id = "moderationFlags", tag = "reports",
    params(("user_id" = Option<String>, Query, description = "Only this user"), ("from" = Option<String>, Query, description = "RFC 3339"),
           ("to" = Option<String>, Query, description = "RFC 3339"), ("limit" = Option<i64>, Query, description = "1 to 500"), ("cursor" = Option<String>, Query, description = "`next_cursor` of the previous page")),
    responses((status = 200, description = "Moderation flags, newest first (teachers and admins; CSV with `Accept: text/csv`)", content((AuditPage = "application/json"), (String = "text/csv"))), (status = 404, description = "no such feature"), (status = 401), (status = 403),
        (status = 422), (status = 503))
)]
pub(super) async fn flags(
    State(state): State<AppState>,
    principal: Principal,
    headers: HeaderMap,
    ApiQuery(mut query): ApiQuery<ReportQuery>,
) -> Result<Response, ApiError> {
    require_role(&principal, &[Role::Teacher, Role::Admin])?;
    if query.status.is_some() {
        return Err(ApiError::invalid_field(
            "status",
            "is not a filter of /v1/admin/flags (every row is a flag)",
        ));
    }
    query.status = Some("flag".into());
    audit_events(state, headers, query).await
}

async fn audit_events(
    state: AppState,
    headers: HeaderMap,
    query: ReportQuery,
) -> Result<Response, ApiError> {
    let range = range(&query)?;
    let limit = query.limit.unwrap_or(100);
    if !(1..=500).contains(&limit) {
        return Err(ApiError::invalid_field(
            "limit",
            "must be between 1 and 500",
        ));
    }
    let before = match &query.cursor {
        Some(cursor) => Some(decode_cursor(cursor).ok_or_else(|| {
            ApiError::invalid_field("cursor", "is not a cursor this endpoint gave out")
        })?),
        None => None,
    };
    let filter = AuditFilter {
        user_id: query.user_id.clone(),
        feature: feature(&query)?,
        status: query.status.clone(),
        before,
        limit,
    };
    let rows = state.service.audit_events(&range, &filter).await?;
    let next = (rows.len() as i64 == limit)
        .then(|| rows.last().map(|r| encode_cursor(&r.created_at, r.id)))
        .flatten();
    if wants_csv(&headers) {
        let text = |v: &Option<String>| v.clone().unwrap_or_default();
        let mut response = csv(
            &[
                "id",
                "kind",
                "created_at",
                "request_id",
                "task_id",
                "user_id",
                "role",
                "feature",
                "prompt_version",
                "provider",
                "model",
                "prompt_tokens",
                "completion_tokens",
                "cost_usd",
                "duration_ms",
                "cached",
                "degraded",
                "error_kind",
                "payload",
            ],
            rows.iter().map(|r| {
                vec![
                    r.id.to_string(),
                    r.kind.clone(),
                    r.created_at.clone(),
                    r.request_id.clone(),
                    r.task_id.map(|t| t.to_string()).unwrap_or_default(),
                    r.user_id.clone(),
                    r.role.clone(),
                    r.feature.clone(),
                    text(&r.prompt_version),
                    text(&r.provider),
                    text(&r.model),
                    r.prompt_tokens.to_string(),
                    r.completion_tokens.to_string(),
                    format!("{:.6}", r.cost_usd),
                    r.duration_ms.map(|d| d.to_string()).unwrap_or_default(),
                    r.cached.to_string(),
                    r.degraded.to_string(),
                    text(&r.error_kind),
                    r.payload.to_string(),
                ]
            }),
        );
        if let Some(next) = next.as_deref().and_then(|n| HeaderValue::from_str(n).ok()) {
            response.headers_mut().insert("x-next-cursor", next);
        }
        return Ok(response);
    }
    Ok(Json(AuditPage {
        events: rows,
        next_cursor: next,
    })
    .into_response())
}

fn encode_cursor(created_at: &str, id: uuid::Uuid) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("{created_at}|{id}"))
}

fn decode_cursor(cursor: &str) -> Option<(String, uuid::Uuid)> {
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(cursor)
        .ok()?;
    let text = String::from_utf8(bytes).ok()?;
    let (at, id) = text.split_once('|')?;
    at.parse::<jiff::Timestamp>().ok()?;
    Some((at.to_owned(), id.parse().ok()?))
}
