//! Batches (bulk question generation): every item is checked against the feature's prompt
//! before anything is queued; valid items become `batch_item` tasks on their own low-priority
//! queue and pool (so bulk work never takes interactive slots). Progress, results and
//! cancellation read or act on the item tasks.

use serde::Serialize;
use serde_json::{Value as Json, json};
use uuid::Uuid;

use super::job::AiRequestJob;
use super::{AiService, ServiceError};
use crate::auth::Principal;
use crate::feature::Feature;
use crate::prompts::{FieldErrors, InputError};
use crate::tasks::{BATCH_ITEM, NewTask, TaskRecord, TaskState};

/// Largest batch accepted.
pub const MAX_ITEMS: usize = 10_000;

/// A batch as its owner sees it.
#[derive(Debug, Clone, Serialize)]
pub struct BatchView {
    pub id: String,
    pub feature: String,
    /// `queued`, `running`, `completed`, `completed_with_errors`, `cancelled` or `failed`.
    pub state: &'static str,
    pub total: usize,
    pub queued: usize,
    pub running: usize,
    pub succeeded: usize,
    pub failed: usize,
    pub cancelled: usize,
    /// Items refused at submission (`allow_partial`); they count as failed.
    pub invalid: usize,
    pub created_at: String,
    pub metadata: Json,
}

pub struct NewBatch {
    pub feature: Feature,
    pub items: Vec<Json>,
    pub allow_partial: bool,
    pub metadata: Option<Json>,
    pub request_id: String,
}

impl AiService {
    /// Checks every item, then queues the valid ones (all of them must be valid unless
    /// `allow_partial`); the error lists each invalid item's index and field errors.
    pub async fn create_batch(
        &self,
        principal: &Principal,
        batch: NewBatch,
    ) -> Result<BatchView, ServiceError> {
        let prompts = self.prompts.snapshot();
        let prompt = prompts.get(batch.feature, None)?;
        let mut valid = Vec::new();
        let mut invalid: Vec<(usize, FieldErrors)> = Vec::new();
        for (index, item) in batch.items.iter().enumerate() {
            let input = item.get("input").unwrap_or(&Json::Null);
            match crate::prompts::validate(&prompt, input) {
                Ok(data) => valid.push((index, data)),
                Err(InputError::Invalid(errors)) => invalid.push((index, errors)),
                Err(InputError::ForbiddenTopic { field, topic }) => invalid.push((
                    index,
                    [(field, format!("mentions the forbidden topic `{topic}`"))].into(),
                )),
            }
        }
        if !invalid.is_empty() && (!batch.allow_partial || valid.is_empty()) {
            return Err(ServiceError::InvalidBatch(invalid));
        }
        let id = Uuid::now_v7().to_string();
        let created_us = jiff::Timestamp::now().as_microsecond();
        let tasks: Vec<(usize, NewTask)> = valid
            .into_iter()
            .map(|(index, data)| {
                let task_id = Uuid::now_v7().to_string();
                let job = AiRequestJob {
                    task_id: task_id.clone(),
                    feature: batch.feature,
                    prompt_version: prompt.version.clone(),
                    input: data,
                    user_id: principal.user_id.clone(),
                    role: principal.role.to_string(),
                    request_id: format!("{}#{index}", batch.request_id),
                    stream: false,
                };
                let task = NewTask {
                    id: task_id,
                    kind: BATCH_ITEM.to_owned(),
                    job: serde_json::to_string(&job).expect("a job serializes"),
                    user_id: principal.user_id.clone(),
                    role: principal.role.to_string(),
                    feature: batch.feature.to_string(),
                    request_id: job.request_id.clone(),
                    callback_url: None,
                    quota: None,
                };
                (index, task)
            })
            .collect();
        let invalid_json: Vec<Json> = invalid
            .iter()
            .map(|(index, errors)| json!({ "index": index, "errors": errors }))
            .collect();
        let ttl = self
            .engine
            .store
            .kinds()
            .kind(BATCH_ITEM)
            .result_ttl
            .as_secs();
        let fields = [
            ("user_id", principal.user_id.clone()),
            ("feature", batch.feature.to_string()),
            ("total", batch.items.len().to_string()),
            ("created_us", created_us.to_string()),
            ("invalid", Json::Array(invalid_json).to_string()),
            ("metadata", batch.metadata.unwrap_or(Json::Null).to_string()),
        ];
        let items: Vec<(usize, String)> = tasks.iter().map(|(i, t)| (*i, t.id.clone())).collect();
        self.engine
            .store
            .save_batch(&id, &principal.user_id, &fields, &items, created_us, ttl)
            .await?;
        for chunk in tasks.chunks(1000) {
            let chunk: Vec<NewTask> = chunk.iter().map(|(_, t)| t.clone()).collect();
            self.engine.store.enqueue_many(&chunk).await?;
        }
        self.batch(principal, &id).await
    }

    /// The caller's batch with its progress (another user's answers 404).
    pub async fn batch(&self, principal: &Principal, id: &str) -> Result<BatchView, ServiceError> {
        let (fields, records, _) = self.batch_parts(principal, id).await?;
        Ok(view(id, &fields, &records))
    }

    async fn batch_parts(
        &self,
        principal: &Principal,
        id: &str,
    ) -> Result<
        (
            std::collections::HashMap<String, String>,
            Vec<TaskRecord>,
            Vec<(usize, String)>,
        ),
        ServiceError,
    > {
        let fields = match self.engine.store.batch(id).await? {
            Some(fields) if fields.get("user_id") == Some(&principal.user_id) => fields,
            _ => return Err(ServiceError::BatchNotFound),
        };
        let items = self.engine.store.batch_items(id).await?;
        let ids: Vec<String> = items.iter().map(|(_, t)| t.clone()).collect();
        let records = self.engine.store.get_many(&ids).await?;
        Ok((fields, records, items))
    }

    /// One JSON line per item, in item order: finished items with their result or error, and
    /// the items refused at submission; unfinished items are left out (ask again later).
    pub async fn batch_results(
        &self,
        principal: &Principal,
        id: &str,
    ) -> Result<Vec<String>, ServiceError> {
        let (fields, records, items) = self.batch_parts(principal, id).await?;
        let by_task: std::collections::HashMap<&str, &TaskRecord> =
            records.iter().map(|r| (r.id.as_str(), r)).collect();
        let mut lines: Vec<(usize, String)> = Vec::new();
        let mut stems = std::collections::HashSet::new();
        for (index, task) in &items {
            let Some(record) = by_task.get(task.as_str()) else {
                continue;
            };
            if !record.state.is_final() {
                continue;
            }
            let outcome = record.outcome.clone().unwrap_or(Json::Null);
            let line = match record.state {
                TaskState::Succeeded => {
                    let mut result = outcome["result"].clone();
                    let removed = dedupe_questions(&mut result, &mut stems);
                    let mut line = json!({
                        "index": index, "status": "succeeded", "task_id": task, "result": result,
                    });
                    if removed > 0 {
                        line["duplicates_removed"] = removed.into();
                    }
                    line
                }
                state => json!({
                    "index": index, "status": state.as_str(), "task_id": task,
                    "error": if outcome["error"].is_null() { json!({ "kind": state.as_str() }) } else { outcome["error"].clone() },
                }),
            };
            lines.push((*index, line.to_string()));
        }
        let invalid: Vec<Json> =
            serde_json::from_str(fields.get("invalid").map_or("[]", |s| s)).unwrap_or_default();
        for item in invalid {
            let index = item["index"].as_u64().unwrap_or(0) as usize;
            let line = json!({ "index": index, "status": "invalid", "error": { "kind": "invalid_input", "fields": item["errors"] } });
            lines.push((index, line.to_string()));
        }
        lines.sort_by_key(|(index, _)| *index);
        Ok(lines.into_iter().map(|(_, line)| line).collect())
    }

    /// Cancels every item not finished yet (queued ones never start; running ones stop).
    pub async fn cancel_batch(
        &self,
        principal: &Principal,
        id: &str,
    ) -> Result<BatchView, ServiceError> {
        let (_, records, _) = self.batch_parts(principal, id).await?;
        for record in records.iter().filter(|r| !r.state.is_final()) {
            self.engine
                .store
                .cancel(&record.id, Some(&principal.user_id))
                .await?;
        }
        self.batch(principal, id).await
    }

    /// The caller's latest 50 batches, newest first.
    pub async fn list_batches(
        &self,
        principal: &Principal,
    ) -> Result<Vec<BatchView>, ServiceError> {
        let ids = self
            .engine
            .store
            .user_batches(&principal.user_id, 50)
            .await?;
        let mut views = Vec::with_capacity(ids.len());
        for id in ids {
            match self.batch(principal, &id).await {
                Ok(view) => views.push(view),
                Err(ServiceError::BatchNotFound) => continue,
                Err(err) => return Err(err),
            }
        }
        Ok(views)
    }
}

/// Drops generated questions whose stem (folded Turkish-aware, punctuation and spacing
/// ignored) an earlier item of the batch already has; returns how many were dropped.
fn dedupe_questions(result: &mut Json, seen: &mut std::collections::HashSet<String>) -> usize {
    let Some(questions) = result.get_mut("questions").and_then(Json::as_array_mut) else {
        return 0;
    };
    let before = questions.len();
    questions.retain(|question| {
        let stem = question["stem"].as_str().unwrap_or_default();
        let key = crate::prompts::words(stem, true).join(" ");
        key.is_empty() || seen.insert(key)
    });
    before - questions.len()
}

fn view(
    id: &str,
    fields: &std::collections::HashMap<String, String>,
    records: &[TaskRecord],
) -> BatchView {
    let count = |wanted: &[TaskState]| records.iter().filter(|r| wanted.contains(&r.state)).count();
    let invalid = serde_json::from_str::<Vec<Json>>(fields.get("invalid").map_or("[]", |s| s))
        .map_or(0, |v| v.len());
    let total = fields
        .get("total")
        .and_then(|t| t.parse().ok())
        .unwrap_or(0);
    let queued = count(&[TaskState::Queued, TaskState::Retrying]);
    let running = count(&[TaskState::Running]);
    let succeeded = count(&[TaskState::Succeeded]);
    let failed = count(&[TaskState::Failed, TaskState::Dead]) + invalid;
    let cancelled = count(&[TaskState::Cancelled]);
    let finished = succeeded + failed + cancelled;
    let state = if finished < total {
        if running + succeeded + failed - invalid + cancelled == 0 {
            "queued"
        } else {
            "running"
        }
    } else if cancelled > 0 {
        "cancelled"
    } else if failed == 0 {
        "completed"
    } else if succeeded == 0 {
        "failed"
    } else {
        "completed_with_errors"
    };
    BatchView {
        id: id.to_owned(),
        feature: fields.get("feature").cloned().unwrap_or_default(),
        state,
        total,
        queued,
        running,
        succeeded,
        failed,
        cancelled,
        invalid,
        created_at: fields
            .get("created_us")
            .and_then(|us| us.parse().ok())
            .and_then(|us| jiff::Timestamp::from_microsecond(us).ok())
            .map(|t| t.to_string())
            .unwrap_or_default(),
        metadata: fields
            .get("metadata")
            .and_then(|m| serde_json::from_str(m).ok())
            .unwrap_or(Json::Null),
    }
}
