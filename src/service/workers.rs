//! Worker pools of this process: one per job kind that has a handler, highest priority first.

use std::sync::Arc;
use std::time::Duration;

use super::AiService;
use super::job::{AI_REQUEST, AiRequestJob};
use crate::shutdown::Shutdown;
use crate::tasks::{JobFn, run_pool};

impl crate::tasks::JobOrigin for AiRequestJob {
    fn request_id(&self) -> &str {
        &self.request_id
    }
}

/// Runs the pools for `queues` (every kind when empty) until shutdown.
pub async fn run(
    service: AiService,
    queues: Vec<String>,
    shutdown: Shutdown,
    grace: Duration,
) -> anyhow::Result<()> {
    let kinds = service.engine().store.kinds().clone();
    for queue in &queues {
        anyhow::ensure!(
            kinds
                .by_priority()
                .iter()
                .any(|k| &k.queue == queue || &k.name == queue),
            "unknown queue `{queue}` (known: {})",
            kinds
                .by_priority()
                .iter()
                .map(|k| k.queue.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    let mut pools = tokio::task::JoinSet::new();
    for kind in kinds.by_priority() {
        if !queues.is_empty() && !queues.iter().any(|q| q == &kind.queue || q == &kind.name) {
            continue;
        }
        match kind.name.as_str() {
            // A batch item is an AI request on its own queue and pool.
            AI_REQUEST | crate::tasks::BATCH_ITEM => {
                let runner = service.clone();
                let handler: JobFn<AiRequestJob> = Arc::new(move |job, _delivery| {
                    let runner = runner.clone();
                    Box::pin(async move { runner.run_job(job).await })
                });
                pools.spawn(run_pool(
                    service.engine().clone(),
                    kind.clone(),
                    handler,
                    shutdown.receiver(),
                    grace,
                ));
            }
            crate::tasks::WEBHOOK_DELIVERY => {
                let (webhooks, store, kind_for_job) = (
                    service.webhooks().clone(),
                    service.engine().store.clone(),
                    kind.clone(),
                );
                let handler: JobFn<crate::tasks::WebhookJob> = Arc::new(move |job, delivery| {
                    let (webhooks, store, kind) =
                        (webhooks.clone(), store.clone(), kind_for_job.clone());
                    Box::pin(async move {
                        crate::webhooks::deliver(&webhooks, &store, &kind, job, &delivery).await
                    })
                });
                pools.spawn(run_pool(
                    service.engine().clone(),
                    kind.clone(),
                    handler,
                    shutdown.receiver(),
                    grace,
                ));
            }
            other => tracing::info!(
                kind = other,
                "no handler for this job kind yet; its queue is left to other processes"
            ),
        }
    }
    while let Some(joined) = pools.join_next().await {
        joined??;
    }
    service.engine().history.flush(Duration::from_secs(5)).await;
    service.engine().audit.flush(Duration::from_secs(5)).await;
    Ok(())
}
