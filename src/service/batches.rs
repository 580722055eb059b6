//! Batches (bulk question generation): every item is checked against the feature's prompt
//! before anything is queued; valid items become `batch_item` tasks on their own low-priority
//! queue and pool (so bulk work never takes interactive slots). Progress, results and
//! cancellation read or act on the item tasks.

use std::collections::HashMap;

use serde_json::{Value as Json, json};
use uuid::Uuid;

use super::batch_item::BatchItemJob;
use super::job::AiRequestJob;
use super::{AiService, ServiceError};
use crate::auth::Principal;
use crate::batches::{BatchRecord, BatchStore};
use crate::facts::TaskFacts;
use crate::feature::Feature;
use crate::prompts::{FieldErrors, InputError};
use crate::tasks::{HistoryRow, Job, NewTask, TaskRecord, TaskState};

pub use crate::batches::BatchView;

/// Largest batch accepted.
pub const MAX_ITEMS: usize = 10_000;

pub struct NewBatch {
    pub feature: Feature,
    pub items: Vec<Json>,
    pub allow_partial: bool,
    pub metadata: Option<Json>,
    pub callback_url: Option<String>,
    /// Items that may run at once (capped by `jobs.batch_concurrency`).
    pub concurrency: Option<usize>,
    pub request_id: String,
    pub client_ip: Option<String>,
}

impl AiService {
    /// Checks every item, then queues the valid ones (all of them must be valid unless
    /// `allow_partial`); the error lists each invalid item's index and field errors.
    pub async fn create_batch(
        &self,
        principal: &Principal,
        mut batch: NewBatch,
    ) -> Result<BatchView, ServiceError> {
        batch.items.iter_mut().for_each(crate::prompts::clean_input);
        let prompts = self.prompts.snapshot();
        let prompt = prompts.get(batch.feature, None)?;
        let mut valid = Vec::new();
        let mut invalid: Vec<(usize, FieldErrors)> = Vec::new();
        let mut estimate = 0u64;
        for (index, item) in batch.items.iter().enumerate() {
            let input = item.get("input").unwrap_or(&Json::Null);
            match crate::prompts::validate(&prompt, input) {
                Ok(data) => {
                    // Reserved like a single request.
                    let rendered = prompts
                        .render(&prompt, &data)
                        .map_err(ServiceError::Render)?;
                    let tokens = self.token_estimate(batch.feature, &prompt, &rendered);
                    estimate += tokens;
                    valid.push((index, data, input.clone(), tokens));
                }
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
        let callback = self
            .parsed_callback(principal, batch.callback_url.as_deref())
            .await?;
        let id = Uuid::now_v7().to_string();
        // The whole batch against the caller's caps at once; each item settles its share.
        let admission = self
            .limits
            .admit_many(
                principal,
                batch.feature,
                valid.len() as u64,
                estimate,
                &format!("batch:{id}"),
            )
            .await?;
        let callback_url = self
            .resolved_callback(principal, batch.feature, &admission, callback)
            .await
            .map_err(ServiceError::CallbackUrl)?;
        let created_us = jiff::Timestamp::now().as_microsecond();
        let store = self.batch_store();
        let tasks: Vec<(usize, NewTask)> = valid
            .into_iter()
            .map(|(index, data, input, tokens)| {
                let task = TaskFacts {
                    task_id: store.new_item_id(&id),
                    request_id: format!("{}#{index}", batch.request_id),
                    user_id: principal.user_id.clone(),
                    role: principal.role,
                    feature: Some(batch.feature),
                };
                let job = AiRequestJob {
                    tenant: principal.tenant.clone(),
                    ..AiRequestJob::new(&task, batch.feature, prompt.version.clone(), data, false)
                };
                let facts = crate::audit::RequestFacts {
                    task: task.clone(),
                    prompt: Some(prompt.reference()),
                    client_ip: batch.client_ip.clone(),
                };
                self.audit.pre_request(&facts, &input);
                self.audit_flags(
                    &facts,
                    &super::safety::input_flags(&self.moderation, &prompt, &job.input),
                );
                let quota = admission
                    .reservation
                    .map(|r| crate::limits::Reservation { tokens, ..r }.encode());
                let task = NewTask {
                    facts: task,
                    kind: BatchItemJob::KIND.to_owned(),
                    job: serde_json::to_string(&job).expect("a job serializes"),
                    callback_url: None,
                    quota,
                    batch: Some(id.clone()),
                };
                (index, task)
            })
            .collect();
        let invalid_json: Vec<Json> = invalid
            .iter()
            .map(|(index, errors)| json!({ "index": index, "errors": errors }))
            .collect();
        let store = &self.engine.store;
        let item_kind = store.kinds().kind(BatchItemJob::KIND);
        let ttl = item_kind.result_ttl.as_secs();
        let limit = self.settings.jobs.batch_concurrency.max(1);
        let concurrency = batch.concurrency.map_or(limit, |c| c.clamp(1, limit));
        let mut fields = vec![
            ("user_id", principal.user_id.clone()),
            ("role", principal.role.to_string()),
            ("request_id", batch.request_id.clone()),
            ("feature", batch.feature.to_string()),
            ("total", batch.items.len().to_string()),
            ("created_us", created_us.to_string()),
            ("invalid", Json::Array(invalid_json).to_string()),
            ("metadata", batch.metadata.unwrap_or(Json::Null).to_string()),
        ];
        if let Some(url) = callback_url {
            fields.push(("callback_url", url.to_string()));
            fields.push(("webhook", "pending".to_owned()));
        }
        // The held items' records first, then the batch, then the first `concurrency` items
        // queued: an item can only end once the batch counts it, and a slot it frees always
        // finds the held items recorded.
        let (first, held) = tasks.split_at(concurrency.min(tasks.len()));
        for chunk in held.chunks(1000) {
            let chunk: Vec<NewTask> = chunk.iter().map(|(_, t)| t.clone()).collect();
            store.hold_many(&chunk).await?;
        }
        self.batch_store()
            .save(&BatchRecord {
                id: &id,
                user_id: &principal.user_id,
                fields,
                items: tasks
                    .iter()
                    .map(|(i, t)| (*i, t.facts.task_id.clone()))
                    .collect(),
                item_kind,
                concurrency,
                created_us,
                ttl_secs: ttl,
            })
            .await?;
        let first: Vec<NewTask> = first.iter().map(|(_, t)| t.clone()).collect();
        store.enqueue_many(&first).await?;
        self.batch(principal, &id).await
    }

    /// The batches' records, beside the engine's tasks.
    pub(super) fn batch_store(&self) -> BatchStore {
        BatchStore::new(self.engine.store.clone())
    }

    /// The caller's batch with its progress (another user's answers 404).
    pub async fn batch(&self, principal: &Principal, id: &str) -> Result<BatchView, ServiceError> {
        let fields = self.own_batch(principal, id).await?;
        Ok(BatchView::from_fields(id, &fields))
    }

    async fn own_batch(
        &self,
        principal: &Principal,
        id: &str,
    ) -> Result<HashMap<String, String>, ServiceError> {
        match self.batch_store().fields(id).await? {
            Some(fields) if fields.get("user_id") == Some(&principal.user_id) => Ok(fields),
            _ => Err(ServiceError::BatchNotFound),
        }
    }

    /// One JSON line per item, in item order: finished items with their result or error, and
    /// the items refused at submission; unfinished items are left out (ask again later). The
    /// lines are produced 500 items at a time, as the caller reads them: a 10,000-item batch
    /// is never held in memory whole.
    pub async fn batch_results(
        &self,
        principal: &Principal,
        id: &str,
    ) -> Result<impl futures_util::Stream<Item = String> + Send + 'static, ServiceError> {
        let fields = self.own_batch(principal, id).await?;
        let items = self.batch_store().items(id).await?;
        let invalid: Vec<Json> =
            serde_json::from_str(fields.get("invalid").map_or("[]", |s| s)).unwrap_or_default();
        let mut invalid: Vec<(usize, String)> = invalid
            .into_iter()
            .map(|item| {
                let index = item["index"].as_u64().unwrap_or(0) as usize;
                let line = json!({ "index": index, "status": "invalid", "error": { "kind": "invalid_input", "fields": item["errors"] } });
                (index, line.to_string())
            })
            .collect();
        invalid.sort_by_key(|(index, _)| *index);
        let pages = ResultPages {
            store: self.engine.store.clone(),
            items,
            next: 0,
            invalid: invalid.into_iter().peekable(),
            stems: std::collections::HashSet::new(),
        };
        Ok(futures_util::stream::unfold(
            pages,
            |mut pages| async move {
                let text = pages.next_page().await?;
                Some((text, pages))
            },
        ))
    }

    /// Cancels the batch: no held item starts any more (at once), then every item not
    /// finished yet is cancelled (queued ones never start, running ones are told to stop).
    pub async fn cancel_batch(
        &self,
        principal: &Principal,
        id: &str,
    ) -> Result<BatchView, ServiceError> {
        self.own_batch(principal, id).await?;
        let batches = self.batch_store();
        batches.stop(id).await?;
        let ids: Vec<String> = batches
            .items(id)
            .await?
            .into_iter()
            .map(|(_, t)| t)
            .collect();
        let store = &self.engine.store;
        let kind = store.kinds().kind(BatchItemJob::KIND).clone();
        let cancelled = store
            .cancel_many(&kind, &ids, Some(&principal.user_id))
            .await?;
        // Each cancelled item's final audit event and history row, as for a single task.
        for chunk in cancelled.chunks(1000) {
            for record in store.get_many(chunk).await? {
                if let Some(row) = HistoryRow::from_record(&record) {
                    self.engine.history.record(row);
                }
                self.audit.refused(
                    &super::hooks::audit_facts(&record),
                    "cancelled",
                    &format!("batch cancelled by {}", principal.user_id),
                );
            }
        }
        self.batch(principal, id).await
    }

    /// The caller's latest 50 batches, newest first.
    pub async fn list_batches(
        &self,
        principal: &Principal,
    ) -> Result<Vec<BatchView>, ServiceError> {
        let ids = self.batch_store().of_user(&principal.user_id, 50).await?;
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

/// Where a results stream is: the items left, the refused items still to interleave, and the
/// question stems seen so far (for deduplication across pages).
struct ResultPages {
    store: crate::tasks::TaskStore,
    items: Vec<(usize, String)>,
    next: usize,
    invalid: std::iter::Peekable<std::vec::IntoIter<(usize, String)>>,
    stems: std::collections::HashSet<String>,
}

impl ResultPages {
    const SIZE: usize = 500;

    /// The next lines (newline-terminated), or `None` at the end. A Redis failure ends the
    /// stream early (and is logged): the client sees fewer lines, never a wrong one.
    async fn next_page(&mut self) -> Option<String> {
        let chunk = &self.items[self.next..(self.next + Self::SIZE).min(self.items.len())];
        if chunk.is_empty() && self.invalid.peek().is_none() {
            return None;
        }
        let ids: Vec<String> = chunk.iter().map(|(_, t)| t.clone()).collect();
        let records = match self.store.get_many(&ids).await {
            Ok(records) => records,
            Err(err) => {
                tracing::warn!(%err, "reading batch results failed; the stream ends early");
                return None;
            }
        };
        let by_task: HashMap<&str, &TaskRecord> = records
            .iter()
            .map(|r| (r.facts.task_id.as_str(), r))
            .collect();
        let mut text = String::new();
        for (index, task) in chunk {
            while let Some((_, line)) = self.invalid.next_if(|(i, _)| i < index) {
                text.push_str(&line);
                text.push('\n');
            }
            let Some(record) = by_task.get(task.as_str()).filter(|r| r.state.is_final()) else {
                continue;
            };
            text.push_str(&result_line(*index, task, record, &mut self.stems).to_string());
            text.push('\n');
        }
        if chunk.is_empty() {
            for (_, line) in self.invalid.by_ref() {
                text.push_str(&line);
                text.push('\n');
            }
        }
        self.next += chunk.len();
        Some(text)
    }
}

/// One finished item's line: its result (with repeated questions removed) or its error.
fn result_line(
    index: usize,
    task: &str,
    record: &TaskRecord,
    stems: &mut std::collections::HashSet<String>,
) -> Json {
    let outcome = record.outcome.as_ref();
    match record.state {
        TaskState::Succeeded => {
            let mut result = outcome.and_then(|o| o.result.clone()).unwrap_or_default();
            let removed = dedupe_questions(&mut result, stems);
            let mut line = json!({
                "index": index, "status": "succeeded", "task_id": task, "result": result,
            });
            if removed > 0 {
                line["duplicates_removed"] = removed.into();
            }
            // Who answered, and whether the answer is a stand-in (every provider was down).
            if let Some(answer) = outcome.and_then(|o| o.answer.as_ref()) {
                line["provider"] = answer.provider.clone().into();
                if answer.degraded {
                    line["degraded"] = true.into();
                }
            }
            line
        }
        state => json!({
            "index": index, "status": state.as_str(), "task_id": task,
            "error": match outcome.and_then(|o| o.error.as_ref()) {
                Some(error) => json!(error),
                None => json!({ "kind": state.as_str() }),
            },
        }),
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
