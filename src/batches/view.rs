//! A batch as its owner sees it: counts, state and ETA, derived from the batch hash.

use std::collections::HashMap;

use serde::Serialize;
use serde_json::Value as Json;

/// A batch as its owner sees it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct BatchView {
    pub id: String,
    pub feature: String,
    /// `queued`, `running`, `completed`, `completed_with_errors`, `cancelled` or `failed`.
    pub state: &'static str,
    pub total: u64,
    pub queued: u64,
    pub running: u64,
    pub succeeded: u64,
    /// Includes the items refused at submission (`invalid`).
    pub failed: u64,
    pub cancelled: u64,
    /// Items refused at submission (`allow_partial`).
    pub invalid: u64,
    /// At most this many items run at once.
    pub concurrency: u64,
    pub created_at: String,
    pub ended_at: Option<String>,
    /// Seconds until the last item is expected to finish, at the rate so far; `None` until an
    /// item finished and once the batch ended.
    pub eta_secs: Option<u64>,
    pub cancel_requested: bool,
    /// The batch webhook: `pending`, `delivered` or `failed`; absent without a callback.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub webhook: Option<String>,
    #[schema(value_type = Object)]
    pub metadata: Json,
}

impl BatchView {
    /// The view of a batch hash (as `HGETALL` returns it).
    pub fn from_fields(id: &str, fields: &HashMap<String, String>) -> Self {
        let number = |name: &str| -> u64 {
            fields
                .get(name)
                .and_then(|v| v.parse::<i64>().ok())
                .map_or(0, |v| v.max(0) as u64)
        };
        let time = |name: &str| {
            fields
                .get(name)
                .and_then(|us| us.parse().ok())
                .and_then(|us| jiff::Timestamp::from_microsecond(us).ok())
        };
        let (total, valid) = (number("total"), number("valid"));
        let invalid = total.saturating_sub(valid);
        let (succeeded, failed, cancelled) =
            (number("succeeded"), number("failed"), number("cancelled"));
        let running = number("running");
        let done = succeeded + failed + cancelled;
        let ended = time("ended_us").filter(|_| done >= valid);
        let state = if ended.is_none() {
            if done + running == 0 {
                "queued"
            } else {
                "running"
            }
        } else if cancelled > 0 {
            "cancelled"
        } else if failed + invalid == 0 {
            "completed"
        } else if succeeded == 0 {
            "failed"
        } else {
            "completed_with_errors"
        };
        let created = time("created_us");
        let eta_secs = match (created, ended) {
            (Some(created), None) if done > 0 => {
                let elapsed = jiff::Timestamp::now().as_microsecond() - created.as_microsecond();
                let per_item = elapsed.max(0) as f64 / done as f64;
                Some((per_item * valid.saturating_sub(done) as f64 / 1e6).ceil() as u64)
            }
            _ => None,
        };
        Self {
            id: id.to_owned(),
            feature: fields.get("feature").cloned().unwrap_or_default(),
            state,
            total,
            queued: valid.saturating_sub(done + running),
            running,
            succeeded,
            failed: failed + invalid,
            cancelled,
            invalid,
            concurrency: number("concurrency"),
            created_at: created.map(|t| t.to_string()).unwrap_or_default(),
            ended_at: ended.map(|t| t.to_string()),
            eta_secs,
            cancel_requested: fields.contains_key("cancel_requested_us"),
            webhook: fields.get("webhook").cloned(),
            metadata: fields
                .get("metadata")
                .and_then(|m| serde_json::from_str(m).ok())
                .unwrap_or(Json::Null),
        }
    }

    pub fn is_final(&self) -> bool {
        !matches!(self.state, "queued" | "running")
    }
}
