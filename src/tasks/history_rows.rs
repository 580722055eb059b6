//! Tasks across every user as operators see them: a row per task, made from its Redis record
//! (open tasks) or read back from `task_history` (finished ones), and a task's events as JSON.

use std::collections::HashMap;

use serde::Serialize;
use serde_json::{Value as Json, json};
use sqlx::PgPool;

use super::record::{TaskRecord, timestamp};
use crate::feature::Feature;

/// One row of the recent and dead task tables.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct TaskRow {
    pub task_id: String,
    pub user_id: String,
    pub feature: String,
    pub kind: Option<String>,
    pub state: String,
    pub attempts: u32,
    pub created_at: Option<String>,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
    /// Created → finished, for finished tasks (an open one's age is `at - created_at`).
    pub duration_ms: Option<u64>,
    /// Started → finished: the last attempt's run.
    pub run_ms: Option<u64>,
    /// `kind: message` of the last failure.
    pub error: Option<String>,
    #[serde(skip)]
    pub created_us: i64,
}

fn span_ms(from: Option<i64>, to: Option<i64>) -> Option<u64> {
    Some((to? - from?).max(0) as u64 / 1000)
}

impl TaskRow {
    pub fn from_record(record: &TaskRecord) -> Self {
        let error = record
            .outcome
            .as_ref()
            .and_then(|outcome| outcome.error.as_ref())
            .map(|error| format!("{}: {}", error.kind, error.message));
        let finished = record.finished_us.filter(|_| record.state.is_final());
        Self {
            task_id: record.facts.task_id.clone(),
            user_id: record.facts.user_id.clone(),
            feature: record.facts.feature_name().to_owned(),
            kind: Some(record.kind.clone()),
            state: record.state.to_string(),
            attempts: record.attempts,
            created_at: timestamp(Some(record.created_us)),
            started_at: timestamp(record.started_us),
            finished_at: timestamp(finished),
            duration_ms: span_ms(Some(record.created_us), finished),
            run_ms: span_ms(record.started_us, finished),
            error,
            created_us: record.created_us,
        }
    }
}

/// A `task_history` row as the dashboard reads it (times in microseconds).
#[derive(Debug, Clone, sqlx::FromRow)]
struct HistoryItem {
    id: String,
    user_id: String,
    feature: String,
    state: String,
    attempts: i32,
    error_kind: Option<String>,
    error_message: Option<String>,
    created_us: i64,
    started_us: Option<i64>,
    finished_us: i64,
}

impl From<HistoryItem> for TaskRow {
    fn from(item: HistoryItem) -> Self {
        let error = item
            .error_kind
            .map(|kind| format!("{kind}: {}", item.error_message.unwrap_or_default()));
        Self {
            task_id: item.id,
            user_id: item.user_id,
            feature: item.feature,
            kind: None,
            state: item.state,
            attempts: item.attempts.max(0) as u32,
            created_at: timestamp(Some(item.created_us)),
            started_at: timestamp(item.started_us),
            finished_at: timestamp(Some(item.finished_us)),
            duration_ms: span_ms(Some(item.created_us), Some(item.finished_us)),
            run_ms: span_ms(item.started_us, Some(item.finished_us)),
            error,
            created_us: item.created_us,
        }
    }
}

/// The columns of a [`HistoryItem`] from `task_history h` (a macro, so queries stay literals).
macro_rules! history_item {
    () => {
        "SELECT h.id::text AS id, h.user_id, h.feature, h.state, h.attempts, \
         h.error_kind, h.error_message, \
         (extract(epoch FROM h.created_at) * 1000000)::int8 AS created_us, \
         (extract(epoch FROM h.started_at) * 1000000)::int8 AS started_us, \
         (extract(epoch FROM h.finished_at) * 1000000)::int8 AS finished_us "
    };
}

/// The `limit` most recently created finished tasks. One short index scan per feature
/// (`task_history_feature_created`) instead of sorting the whole table.
pub async fn recent_finished(pool: &PgPool, limit: i64) -> sqlx::Result<Vec<TaskRow>> {
    let items: Vec<HistoryItem> = sqlx::query_as(concat!(
        history_item!(),
        "FROM unnest($1::text[]) AS f(name) \
         CROSS JOIN LATERAL (SELECT * FROM task_history t WHERE t.feature = f.name \
                             ORDER BY t.created_at DESC LIMIT $2) h \
         ORDER BY h.created_at DESC LIMIT $2"
    ))
    .bind(Feature::names())
    .bind(limit)
    .fetch_all(pool)
    .await?;
    Ok(items.into_iter().map(TaskRow::from).collect())
}

/// One finished task's history row.
pub async fn finished(pool: &PgPool, id: uuid::Uuid) -> sqlx::Result<Option<TaskRow>> {
    let item: Option<HistoryItem> = sqlx::query_as(concat!(
        history_item!(),
        "FROM task_history h WHERE h.id = $1"
    ))
    .bind(id)
    .fetch_optional(pool)
    .await?;
    Ok(item.map(TaskRow::from))
}

/// Open tasks and finished ones together, newest first, each once (Redis's record wins: it is
/// the fresher), at most `limit`.
pub fn merge_recent(open: Vec<TaskRow>, finished: Vec<TaskRow>, limit: usize) -> Vec<TaskRow> {
    let mut seen = std::collections::HashSet::new();
    let mut rows: Vec<TaskRow> = open
        .into_iter()
        .chain(finished)
        .filter(|row| seen.insert(row.task_id.clone()))
        .collect();
    rows.sort_by(|a, b| {
        b.created_us
            .cmp(&a.created_us)
            .then(a.task_id.cmp(&b.task_id))
    });
    rows.truncate(limit);
    rows
}

/// A task's stream entries as JSON: id, event name and decoded data.
pub fn events_json(entries: Vec<(String, HashMap<String, String>)>) -> Vec<Json> {
    entries
        .into_iter()
        .map(|(id, mut fields)| {
            let data = fields
                .remove("data")
                .map(|text| serde_json::from_str(&text).unwrap_or(Json::String(text)))
                .unwrap_or(Json::Null);
            json!({ "id": id, "event": fields.remove("event").unwrap_or_default(), "data": data })
        })
        .collect()
}
