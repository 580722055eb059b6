//! The finish hook that announces final tasks: a `webhook_delivery` job for each one with a
//! callback URL, all of a recorded batch queued in one pipeline.

use futures_util::future::BoxFuture;

use super::job::WebhookJob;
use crate::tasks::{FinishHook, FinishedTask, NewTask, TaskStore};

pub struct FinalWebhooks(pub TaskStore);

impl FinishHook for FinalWebhooks {
    fn finished<'a>(&'a self, tasks: &'a [FinishedTask]) -> BoxFuture<'a, ()> {
        let webhooks: Vec<NewTask> = tasks
            .iter()
            .filter_map(|task| {
                let url = task.life.callback_url.as_deref()?;
                let facts = &task.facts;
                let job = WebhookJob::for_final(
                    &facts.task_id,
                    &facts.user_id,
                    task.state.as_str(),
                    url,
                    &task.outcome,
                );
                Some(job.into_task(facts))
            })
            .collect();
        Box::pin(async move {
            if let Err(err) = self.0.enqueue_many(&webhooks).await {
                tracing::error!(%err, count = webhooks.len(), "could not queue webhook deliveries");
            }
        })
    }
}
