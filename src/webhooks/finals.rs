//! Queueing the webhooks of tasks that ended: the engine's `webhook` follow-up step
//! (`tasks/outbox.rs`), written by the script that made each task final, applied at once by the
//! process that ran it, or by any process's outbox sweeper if that one died first. The delivery
//! task's id comes from the announced task and the moment it ended, so applying the step twice
//! queues one delivery, and a replayed task that ends again is announced again.

use std::collections::HashMap;

use futures_util::future::BoxFuture;

use super::job::WebhookJob;
use crate::outcome::Outcome;
use crate::tasks::{NewTask, TaskStore, WebhookDue};

/// Queues one `webhook_delivery` job per due webhook whose task still has a callback URL, in
/// one pipeline. A task whose record expired meanwhile has nothing left to announce.
pub fn queue_finals(
    store: TaskStore,
    due: Vec<WebhookDue>,
) -> BoxFuture<'static, redis::RedisResult<()>> {
    Box::pin(async move {
        let ids: Vec<String> = due.iter().map(|d| d.task_id.clone()).collect();
        let states: HashMap<&str, &str> = due
            .iter()
            .map(|d| (d.task_id.as_str(), d.state.as_str()))
            .collect();
        let records = store.get_many(&ids).await?;
        let jobs: Vec<NewTask> = records
            .iter()
            .filter_map(|record| {
                let url = record.callback_url.as_deref()?;
                let facts = &record.facts;
                let state = *states.get(facts.task_id.as_str())?;
                let outcome = match (&record.outcome, state) {
                    (_, "cancelled") | (None, _) => {
                        Outcome::error("cancelled", "the task was cancelled")
                    }
                    (Some(outcome), _) => outcome.clone(),
                };
                let ended_us = record.finished_us.unwrap_or_default();
                let job = WebhookJob::for_final(
                    &facts.task_id,
                    &facts.user_id,
                    state,
                    url,
                    &outcome,
                    ended_us,
                );
                Some(job.into_task(facts))
            })
            .collect();
        store.enqueue_many(&jobs).await
    })
}
