//! A task's record as stored in `ai:task:{id}` and as the API shows it.

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;

use serde::Serialize;
use serde_json::{Map, Value as Json, json};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
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
    pub id: String,
    pub state: TaskState,
    pub kind: String,
    pub feature: String,
    pub user_id: String,
    pub role: String,
    pub request_id: String,
    /// The worker (consumer) that ran the last attempt; empty for inline runs.
    pub worker: String,
    pub attempts: u32,
    pub max_attempts: u32,
    pub created_us: i64,
    pub started_us: Option<i64>,
    pub finished_us: Option<i64>,
    pub next_run_us: Option<i64>,
    /// What the last attempt produced: the result fields, or `{error}`.
    pub outcome: Option<Json>,
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
            id: fields.get("id")?.clone(),
            state: fields.get("state")?.parse().ok()?,
            kind: text("kind"),
            feature: text("feature"),
            user_id: text("user_id"),
            role: text("role"),
            request_id: text("request_id"),
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
    pub fn to_json(&self) -> Json {
        let mut view = Map::new();
        view.insert("task_id".into(), self.id.clone().into());
        view.insert("status".into(), self.state.as_str().into());
        if !self.feature.is_empty() {
            view.insert("feature".into(), self.feature.clone().into());
        }
        view.insert("attempts".into(), self.attempts.into());
        view.insert(
            "worker".into(),
            if self.worker.is_empty() {
                Json::Null
            } else {
                self.worker.clone().into()
            },
        );
        view.insert("max_attempts".into(), self.max_attempts.into());
        view.insert("created_at".into(), timestamp(Some(self.created_us)));
        view.insert("started_at".into(), timestamp(self.started_us));
        view.insert("finished_at".into(), timestamp(self.finished_us));
        if self.state == TaskState::Retrying {
            view.insert("next_attempt_at".into(), timestamp(self.next_run_us));
        }
        if let Some(Json::Object(outcome)) = &self.outcome {
            for (key, value) in outcome {
                // A retrying task shows its last error; a final one its result or error.
                view.entry(key.clone()).or_insert_with(|| value.clone());
            }
        }
        if let Some(webhook) = &self.webhook {
            view.insert("webhook".into(), webhook.clone().into());
        }
        view.insert(
            "links".into(),
            json!({ "self": format!("/v1/tasks/{}", self.id), "events": format!("/v1/tasks/{}/events", self.id) }),
        );
        Json::Object(view)
    }
}

/// RFC 3339 from microseconds since the epoch; `null` when absent.
pub fn timestamp(us: Option<i64>) -> Json {
    us.and_then(|us| jiff::Timestamp::from_microsecond(us).ok())
        .map(|ts| Json::String(ts.to_string()))
        .unwrap_or(Json::Null)
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
            timestamp(Some(1_700_000_000_123_456)),
            json!("2023-11-14T22:13:20.123456Z")
        );
        assert_eq!(timestamp(None), Json::Null);
    }
}
