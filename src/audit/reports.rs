//! Admin reports over `audit_events`: usage grouped one way, latency percentiles, and the
//! events themselves with keyset pagination. Every query filters on `created_at` (indexed,
//! alone or after `user_id` / `feature`); reports count a request by its final event.

use serde::Serialize;
use sqlx::PgPool;

/// A time range `[from, to)`, as RFC 3339 text PostgreSQL reads exactly.
#[derive(Debug, Clone)]
pub struct Range {
    pub from: String,
    pub to: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupBy {
    User,
    Feature,
    Provider,
    Model,
    Day,
}

impl std::str::FromStr for GroupBy {
    type Err = ();

    fn from_str(text: &str) -> Result<Self, ()> {
        Ok(match text {
            "user" => Self::User,
            "feature" => Self::Feature,
            "provider" => Self::Provider,
            "model" => Self::Model,
            "day" => Self::Day,
            _ => return Err(()),
        })
    }
}

impl GroupBy {
    /// The SQL expression of the group (fixed text, never input).
    fn column(self) -> &'static str {
        match self {
            Self::User => "user_id",
            Self::Feature => "feature",
            Self::Provider => "coalesce(provider, '')",
            Self::Model => "coalesce(model, '')",
            Self::Day => "to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD')",
        }
    }
}

#[derive(Debug, Clone, Serialize, sqlx::FromRow, PartialEq, utoipa::ToSchema)]
pub struct UsageRow {
    pub group: String,
    pub requests: i64,
    pub prompt_tokens: i64,
    pub completion_tokens: i64,
    pub cost_usd: f64,
    pub cache_hits: i64,
    pub degraded: i64,
    pub errors: i64,
}

pub async fn usage(pool: &PgPool, range: &Range, group_by: GroupBy) -> sqlx::Result<Vec<UsageRow>> {
    let sql = format!(
        "SELECT {group} AS \"group\", count(*) AS requests, \
         coalesce(sum(prompt_tokens), 0)::int8 AS prompt_tokens, \
         coalesce(sum(completion_tokens), 0)::int8 AS completion_tokens, \
         coalesce(sum(cost_usd), 0)::float8 AS cost_usd, \
         count(*) FILTER (WHERE cached) AS cache_hits, \
         count(*) FILTER (WHERE degraded) AS degraded, \
         count(*) FILTER (WHERE kind = 'error') AS errors \
         FROM audit_events \
         WHERE kind IN ('success', 'error') AND created_at >= $1::timestamptz AND created_at < $2::timestamptz \
         GROUP BY 1 ORDER BY 1",
        group = group_by.column()
    );
    sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(&range.from)
        .bind(&range.to)
        .fetch_all(pool)
        .await
}

#[derive(Debug, Clone, Serialize, sqlx::FromRow, PartialEq, utoipa::ToSchema)]
pub struct LatencyRow {
    pub feature: String,
    pub requests: i64,
    pub p50_ms: Option<f64>,
    pub p95_ms: Option<f64>,
    pub p99_ms: Option<f64>,
}

/// Duration percentiles of successful requests per feature (or for one).
pub async fn latency(
    pool: &PgPool,
    range: &Range,
    feature: Option<&str>,
) -> sqlx::Result<Vec<LatencyRow>> {
    sqlx::query_as(
        "SELECT feature, count(*) AS requests, \
         percentile_cont(0.5) WITHIN GROUP (ORDER BY duration_ms) AS p50_ms, \
         percentile_cont(0.95) WITHIN GROUP (ORDER BY duration_ms) AS p95_ms, \
         percentile_cont(0.99) WITHIN GROUP (ORDER BY duration_ms) AS p99_ms \
         FROM audit_events \
         WHERE kind = 'success' AND duration_ms IS NOT NULL \
         AND created_at >= $1::timestamptz AND created_at < $2::timestamptz \
         AND ($3::text IS NULL OR feature = $3) \
         GROUP BY feature ORDER BY feature",
    )
    .bind(&range.from)
    .bind(&range.to)
    .bind(feature)
    .fetch_all(pool)
    .await
}

#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    pub user_id: Option<String>,
    pub feature: Option<String>,
    /// `pre_request`, `success` or `error`.
    pub status: Option<String>,
    /// Events strictly older than this `(created_at, id)` (the previous page's last).
    pub before: Option<(String, uuid::Uuid)>,
    pub limit: i64,
}

#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct AuditRow {
    #[schema(value_type = String)]
    pub id: uuid::Uuid,
    pub kind: String,
    /// RFC 3339 with microseconds, UTC.
    pub created_at: String,
    pub request_id: String,
    #[schema(value_type = Option<String>)]
    pub task_id: Option<uuid::Uuid>,
    pub user_id: String,
    pub role: String,
    pub feature: String,
    pub prompt_name: Option<String>,
    pub prompt_version: Option<String>,
    pub provider: Option<String>,
    pub model: Option<String>,
    pub prompt_tokens: i32,
    pub completion_tokens: i32,
    pub cost_usd: f64,
    pub duration_ms: Option<i32>,
    pub cached: bool,
    pub degraded: bool,
    pub error_kind: Option<String>,
    pub client_ip: Option<String>,
    #[schema(value_type = Object)]
    pub payload: serde_json::Value,
}

/// The SQL of an audit page (also what the index test explains).
pub const AUDIT_PAGE: &str = "SELECT id, kind, to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"') AS created_at, \
     request_id, task_id, user_id, role, feature, prompt_name, prompt_version, provider, model, \
     prompt_tokens, completion_tokens, cost_usd, duration_ms, cached, degraded, error_kind, client_ip, payload \
     FROM audit_events \
     WHERE created_at >= $1::timestamptz AND created_at < $2::timestamptz \
     AND ($3::text IS NULL OR user_id = $3) AND ($4::text IS NULL OR feature = $4) \
     AND ($5::text IS NULL OR kind = $5) \
     AND ($6::timestamptz IS NULL OR (created_at, id) < ($6::timestamptz, $7::uuid)) \
     ORDER BY created_at DESC, id DESC LIMIT $8";

/// Newest first; pass the last row's `(created_at, id)` as `before` for the next page.
pub async fn audit_page(
    pool: &PgPool,
    range: &Range,
    filter: &AuditFilter,
) -> sqlx::Result<Vec<AuditRow>> {
    sqlx::query_as(AUDIT_PAGE)
        .bind(&range.from)
        .bind(&range.to)
        .bind(filter.user_id.as_deref())
        .bind(filter.feature.as_deref())
        .bind(filter.status.as_deref())
        .bind(filter.before.as_ref().map(|(at, _)| at.clone()))
        .bind(filter.before.as_ref().map(|(_, id)| *id))
        .bind(filter.limit)
        .fetch_all(pool)
        .await
}

/// Deletes events older than `days`, 1,000 rows per statement, until none are left.
pub async fn delete_older_than(pool: &PgPool, days: u32) -> sqlx::Result<u64> {
    let mut deleted = 0;
    loop {
        let done = sqlx::query(
            "DELETE FROM audit_events WHERE id IN (SELECT id FROM audit_events \
             WHERE created_at < now() - make_interval(days => $1) LIMIT 1000)",
        )
        .bind(days as i32)
        .execute(pool)
        .await?;
        deleted += done.rows_affected();
        if done.rows_affected() < 1000 {
            return Ok(deleted);
        }
    }
}
