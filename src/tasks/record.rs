//! A task's record as stored in `ai:task:{id}` and as the API shows it.

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;

use serde::Serialize;
use serde_json::Value as Json;

use crate::facts::TaskFacts;
use crate::feature::Feature;
use crate::outcome::Outcome;

/// queued, running, retrying, succeeded, failed, cancelled or dead.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum TaskState {
    Queued,
    Running,
    Retrying,
    Succeeded,
    Failed,
    Cancelled,
    Dead,
}

impl TaskState {
    pub const ALL: [TaskState; 7] = [
        TaskState::Queued,
        TaskState::Running,
        TaskState::Retrying,
        TaskState::Succeeded,
        TaskState::Failed,
        TaskState::Cancelled,
        TaskState::Dead,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            TaskState::Queued => "queued",
            TaskState::Running => "running",
            TaskState::Retrying => "retrying",
            TaskState::Succeeded => "succeeded",
            TaskState::Failed => "failed",
            TaskState::Cancelled => "cancelled",
            TaskState::Dead => "dead",
        }
    }

    pub fn is_final(self) -> bool {
        matches!(
            self,
            TaskState::Succeeded | TaskState::Failed | TaskState::Cancelled | TaskState::Dead
        )
    }
}

impl fmt::Display for TaskState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for TaskState {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|state| state.as_str() == s)
            .ok_or_else(|| format!("`{s}` is not a task state"))
    }
}

/// The stored fields of one task.
#[derive(Debug, Clone)]
pub struct TaskRecord {
    pub facts: TaskFacts,
    pub state: TaskState,
    pub kind: String,
    /// The worker (consumer) that ran the last attempt; empty for inline runs.
    pub worker: String,
    pub attempts: u32,
    pub max_attempts: u32,
    pub created_us: i64,
    pub started_us: Option<i64>,
    pub finished_us: Option<i64>,
    pub next_run_us: Option<i64>,
    /// What the last attempt produced: the result, or the error.
    pub outcome: Option<Outcome>,
    /// The job payload as queued.
    pub job: Json,
    pub callback_url: Option<String>,
    /// Webhook delivery: pending, delivered or failed.
    pub webhook: Option<String>,
}

impl TaskRecord {
    pub fn from_hash(fields: HashMap<String, String>) -> Option<Self> {
        let text = |name: &str| fields.get(name).cloned().unwrap_or_default();
        let number = |name: &str| fields.get(name).and_then(|v| v.parse::<i64>().ok());
        Some(Self {
            facts: TaskFacts::from_stored(
                fields.get("id")?.clone(),
                text("request_id"),
                text("user_id"),
                fields.get("role").map_or("", String::as_str),
                fields.get("feature").map_or("", String::as_str),
            ),
            state: fields.get("state")?.parse().ok()?,
            kind: text("kind"),
            worker: text("worker"),
            attempts: number("attempts").unwrap_or(0) as u32,
            max_attempts: number("max_attempts").unwrap_or(0) as u32,
            created_us: number("created_us").unwrap_or(0),
            started_us: number("started_us"),
            finished_us: number("finished_us"),
            next_run_us: number("next_run_us"),
            outcome: fields
                .get("outcome")
                .and_then(|v| serde_json::from_str(v).ok()),
            callback_url: fields.get("callback_url").cloned(),
            webhook: fields.get("webhook").cloned(),
            job: fields
                .get("job")
                .and_then(|v| serde_json::from_str(v).ok())
                .unwrap_or(Json::Null),
        })
    }

    /// The public view: status, result or error, usage, provider, attempts, timestamps, links.
    pub fn view(&self) -> TaskView {
        let id = &self.facts.task_id;
        TaskView {
            task_id: id.clone(),
            status: self.state,
            feature: self.facts.feature,
            attempts: self.attempts,
            max_attempts: self.max_attempts,
            worker: (!self.worker.is_empty()).then(|| self.worker.clone()),
            created_at: timestamp(Some(self.created_us)),
            started_at: timestamp(self.started_us),
            finished_at: timestamp(self.finished_us),
            // A retrying task shows when it runs again and its last error.
            next_attempt_at: (self.state == TaskState::Retrying)
                .then(|| timestamp(self.next_run_us))
                .flatten(),
            outcome: self.outcome.clone().unwrap_or_default(),
            webhook: self.webhook.clone(),
            links: TaskLinks {
                this: format!("/v1/tasks/{id}"),
                events: format!("/v1/tasks/{id}/events"),
            },
        }
    }
}

/// A task as the API shows it: a queued (or inline) request's state, and once final its result
/// or error.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct TaskView {
    pub task_id: String,
    pub status: TaskState,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub feature: Option<Feature>,
    pub attempts: u32,
    pub max_attempts: u32,
    /// The worker running it (null when none yet).
    pub worker: Option<String>,
    pub created_at: Option<String>,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
    /// When a retrying task runs again.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_attempt_at: Option<String>,
    #[serde(flatten)]
    pub outcome: Outcome,
    /// The webhook's delivery: pending, delivered or failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub webhook: Option<String>,
    pub links: TaskLinks,
}

/// Where a task and its events are read.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct TaskLinks {
    #[serde(rename = "self")]
    pub this: String,
    pub events: String,
}

/// RFC 3339 from microseconds since the epoch; `None` when absent.
pub fn timestamp(us: Option<i64>) -> Option<String> {
    us.and_then(|us| jiff::Timestamp::from_microsecond(us).ok())
        .map(|ts| ts.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn final_states() {
        let finals: Vec<&str> = TaskState::ALL
            .iter()
            .filter(|s| s.is_final())
            .map(|s| s.as_str())
            .collect();
        assert_eq!(finals, ["succeeded", "failed", "cancelled", "dead"]);
        assert_eq!(
            "retrying".parse::<TaskState>().unwrap(),
            TaskState::Retrying
        );
    }

    #[test]
    fn timestamps_are_rfc3339() {
        assert_eq!(
            timestamp(Some(1_700_000_000_123_456)).as_deref(),
            Some("2023-11-14T22:13:20.123456Z")
        );
        assert_eq!(timestamp(None), None);
    }
}
