//! Reading, waiting for, listing and cancelling tasks; dead tasks for admins. A caller sees only
//! its own tasks: another user's id is "not found".

use std::time::Duration;

use sha2::{Digest, Sha256};

use super::{AiService, ServiceError, SubmitRequest};
use crate::auth::Principal;
use crate::feature::Feature;
use crate::tasks::{Cancelled, HistoryRow, TaskRecord, TaskState};

/// Filters and page of `GET /v1/tasks`.
#[derive(Debug, Clone)]
pub struct TaskQuery {
    pub state: Option<TaskState>,
    pub feature: Option<Feature>,
    pub limit: usize,
    /// Only tasks created before this (microseconds), from the previous page's cursor.
    pub before_us: Option<i64>,
}

impl AiService {
    /// The caller's task, after waiting up to `wait` for it to reach a final state.
    pub async fn task(
        &self,
        principal: &Principal,
        task_id: &str,
        wait: Duration,
    ) -> Result<TaskRecord, ServiceError> {
        let record = self.own_task(principal, task_id).await?;
        if record.state.is_final() || wait.is_zero() {
            return Ok(record);
        }
        let limit = wait.min(Duration::from_secs(self.settings.intake.long_poll_max_secs));
        self.wait_for_final(task_id, limit).await?;
        self.own_task(principal, task_id).await
    }

    /// Waits, through this process's one event reader (no Redis connection of its own), until
    /// the task's stream shows a final event or `limit` passes.
    async fn wait_for_final(&self, task_id: &str, limit: Duration) -> Result<(), ServiceError> {
        let deadline = tokio::time::Instant::now() + limit;
        // From the current end: only what happens from now on is read. A final event appended
        // since the record was read is after this id too, so it is not missed.
        let mut cursor = self
            .engine
            .store
            .last_event_id(task_id)
            .await?
            .unwrap_or_else(|| "0-0".to_owned());
        loop {
            let mut subscription = self.engine.hub.subscribe(task_id, &cursor).await;
            loop {
                match tokio::time::timeout_at(deadline, subscription.events.recv()).await {
                    Err(_elapsed) => return Ok(()),
                    Ok(Some(event)) if event.is_final() => return Ok(()),
                    Ok(Some(event)) => cursor = event.id,
                    // Dropped for falling behind: subscribe again from the last event seen.
                    Ok(None) => break,
                }
            }
        }
    }

    async fn own_task(
        &self,
        principal: &Principal,
        task_id: &str,
    ) -> Result<TaskRecord, ServiceError> {
        match self.engine.store.get(task_id).await? {
            Some(record) if record.facts.user_id == principal.user_id => Ok(record),
            _ => Err(ServiceError::TaskNotFound),
        }
    }

    /// Whether a reader at `cursor` has seen all of the caller's task: it is final and the
    /// cursor is at or past its last event (nothing more will ever come).
    pub async fn seen_to_the_end(
        &self,
        principal: &Principal,
        task_id: &str,
        cursor: &str,
    ) -> Result<bool, ServiceError> {
        let record = self.own_task(principal, task_id).await?;
        if !record.state.is_final() || cursor == "0-0" {
            return Ok(false);
        }
        Ok(match self.engine.store.last_event_id(task_id).await? {
            Some(last) => crate::tasks::compare_ids(cursor, &last).is_ge(),
            None => true,
        })
    }

    /// The caller's task events after `cursor`, then live ones.
    pub async fn subscribe(
        &self,
        principal: &Principal,
        task_id: &str,
        cursor: &str,
    ) -> Result<crate::tasks::Subscription, ServiceError> {
        self.own_task(principal, task_id).await?;
        Ok(self.engine.hub.subscribe(task_id, cursor).await)
    }

    /// Events of a task the caller's own feed announced. The feed holds only the caller's tasks
    /// (its key is the caller's), so there is no record check: on a Redis Cluster a new task
    /// enters its user's feed a moment before its partition records it, and a check in between
    /// would find nothing and drop the task.
    pub async fn subscribe_from_feed(&self, task_id: &str) -> crate::tasks::Subscription {
        self.engine.hub.subscribe(task_id, "0-0").await
    }

    /// The caller's feed of new tasks from now on, and its unfinished recent tasks (up to 100)
    /// created before that point, so that together they miss nothing.
    pub async fn subscribe_all(
        &self,
        principal: &Principal,
    ) -> (crate::tasks::Subscription, Vec<String>) {
        let cursor = self
            .engine
            .store
            .feed_end(&principal.user_id)
            .await
            .ok()
            .flatten()
            .unwrap_or_else(|| "0-0".into());
        let cutoff_us = cursor
            .split('-')
            .next()
            .and_then(|ms| ms.parse::<i64>().ok())
            .unwrap_or(0)
            * 1000
            + 999;
        let subscription = self
            .engine
            .hub
            .subscribe_feed(&principal.user_id, &cursor)
            .await;
        let ids = self
            .engine
            .store
            .user_task_ids(&principal.user_id, None, 100)
            .await
            .unwrap_or_default();
        let ids: Vec<String> = ids.into_iter().map(|(id, _)| id).collect();
        let recent = self.engine.store.get_many(&ids).await.unwrap_or_default();
        let open = recent
            .into_iter()
            .filter(|r| !r.state.is_final() && r.created_us <= cutoff_us)
            .map(|r| r.facts.task_id)
            .collect();
        (subscription, open)
    }

    /// Cancels the caller's task: at once if it waits, cooperatively if it runs.
    pub async fn cancel_task(
        &self,
        principal: &Principal,
        task_id: &str,
    ) -> Result<TaskRecord, ServiceError> {
        match self
            .engine
            .store
            .cancel(task_id, Some(&principal.user_id))
            .await?
        {
            Cancelled::Missing => Err(ServiceError::TaskNotFound),
            Cancelled::AlreadyFinal(state) => Err(ServiceError::TaskFinal(state)),
            Cancelled::From(_) => {
                let record = self.own_task(principal, task_id).await?;
                if let Some(row) = HistoryRow::from_record(&record) {
                    self.engine.history.record(row);
                }
                self.audit.refused(
                    &super::hooks::audit_facts(&record),
                    "cancelled",
                    &format!("cancelled by {}", principal.user_id),
                );
                Ok(record)
            }
        }
    }

    /// The caller's tasks, newest first; the second value is the cursor of the next page.
    pub async fn list_tasks(
        &self,
        principal: &Principal,
        query: &TaskQuery,
    ) -> Result<(Vec<TaskRecord>, Option<i64>), ServiceError> {
        let mut found = Vec::new();
        // Each id's place in the user's index: the cursor (a little before its `created_us`,
        // which its partition's clock wrote).
        let mut placed = std::collections::HashMap::new();
        let mut before = query.before_us;
        // Filters are applied after reading, so read pages until the page is full or ids run out.
        loop {
            let ids = self
                .engine
                .store
                .user_task_ids(&principal.user_id, before, query.limit * 2)
                .await?;
            let exhausted = ids.len() < query.limit * 2;
            let Some((_, oldest)) = ids.last().cloned() else {
                break;
            };
            before = Some(oldest);
            let id_list: Vec<String> = ids.iter().map(|(id, _)| id.clone()).collect();
            placed.extend(ids);
            for record in self.engine.store.get_many(&id_list).await? {
                let state_ok = query.state.is_none_or(|s| s == record.state);
                let feature_ok = query
                    .feature
                    .is_none_or(|f| record.facts.feature == Some(f));
                if state_ok && feature_ok && found.len() < query.limit {
                    found.push(record);
                }
            }
            if found.len() >= query.limit || exhausted {
                break;
            }
        }
        let next = (found.len() == query.limit)
            .then(|| {
                found
                    .last()
                    .and_then(|r| placed.get(&r.facts.task_id).copied())
            })
            .flatten();
        Ok((found, next))
    }

    pub async fn dead_tasks(&self, limit: usize) -> Result<Vec<TaskRecord>, ServiceError> {
        let ids = self.engine.store.dead_ids(limit).await?;
        Ok(self.engine.store.get_many(&ids).await?)
    }

    /// Re-queues a dead task with fresh attempts.
    pub async fn replay_dead(&self, task_id: &str) -> Result<TaskRecord, ServiceError> {
        if !self.engine.store.replay_dead(task_id).await? {
            return match self.engine.store.get(task_id).await? {
                Some(record) => Err(ServiceError::TaskFinal(record.state.to_string())),
                None => Err(ServiceError::TaskNotFound),
            };
        }
        self.engine
            .store
            .get(task_id)
            .await?
            .ok_or(ServiceError::TaskNotFound)
    }

    /// Remembers `key` for this caller; returns the earlier task when the same request was sent
    /// with it before, and refuses a different request under the same key.
    /// Frees a key this request claimed but did not use (its admission was refused), so the
    /// same key can be sent again once the limit allows.
    pub(super) async fn release_idempotency_key(
        &self,
        principal: &Principal,
        key: &str,
        task_id: &str,
    ) {
        if let Err(err) = self
            .engine
            .store
            .release_idempotency_key(&principal.user_id, key, &format!("{task_id} "))
            .await
        {
            tracing::warn!(%err, "could not release an unused Idempotency-Key");
        }
    }

    pub(super) async fn claim_idempotency_key(
        &self,
        principal: &Principal,
        key: &str,
        feature: Feature,
        request: &SubmitRequest,
        task_id: &str,
    ) -> Result<Option<TaskRecord>, ServiceError> {
        let fingerprint = {
            let mut hasher = Sha256::new();
            hasher.update(feature.as_str());
            hasher.update([0]);
            hasher.update(request.input.to_string());
            hasher.update([0]);
            hasher.update(request.prompt_version.as_deref().unwrap_or(""));
            format!("{:x}", hasher.finalize())
        };
        let value = format!("{task_id} {fingerprint}");
        let ttl = self.settings.intake.idempotency_ttl_secs;
        let (claimed, existing) = self
            .engine
            .store
            .claim_idempotency_key(&principal.user_id, key, &value, ttl)
            .await?;
        if claimed {
            return Ok(None);
        }
        let (earlier_id, earlier_fingerprint) =
            existing.split_once(' ').unwrap_or((existing.as_str(), ""));
        if earlier_fingerprint != fingerprint {
            return Err(ServiceError::IdempotencyMismatch);
        }
        // The first request may still be creating its task.
        for _ in 0..40 {
            if let Some(record) = self.engine.store.get(earlier_id).await? {
                // Only the caller's own task is ever replayed.
                if record.facts.user_id != principal.user_id {
                    return Err(ServiceError::IdempotencyMismatch);
                }
                return Ok(Some(record));
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        Err(ServiceError::TaskNotFound)
    }
}
