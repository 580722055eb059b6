//! Worker pools of this process: one per registered job kind (`service/jobs.rs`), highest
//! priority first.

use std::time::Duration;

use super::AiService;
use crate::shutdown::Shutdown;
use crate::tasks::JobRegistry;

/// Runs the pools of the shipped kinds for `queues` (every kind when empty) until shutdown.
pub async fn run(
    service: AiService,
    queues: Vec<String>,
    shutdown: Shutdown,
    grace: Duration,
) -> anyhow::Result<()> {
    run_with(service, &super::jobs::registry(), queues, shutdown, grace).await
}

/// Like [`run`], for the kinds of `jobs` (the registry the service's state was built with).
pub async fn run_with(
    service: AiService,
    jobs: &JobRegistry<AiService>,
    queues: Vec<String>,
    shutdown: Shutdown,
    grace: Duration,
) -> anyhow::Result<()> {
    let kinds = service.engine().store.kinds().clone();
    let by_priority = kinds.by_priority();
    let wanted = |queue: &String| {
        by_priority
            .iter()
            .any(|k| &k.queue == queue || &k.name == queue)
    };
    if let Some(unknown) = queues.iter().find(|q| !wanted(q)) {
        let known: Vec<&str> = by_priority.iter().map(|k| k.queue.as_str()).collect();
        anyhow::bail!("unknown queue `{unknown}` (known: {})", known.join(", "));
    }
    let mut pools = tokio::task::JoinSet::new();
    for kind in by_priority {
        if !queues.is_empty() && !queues.iter().any(|q| q == &kind.queue || q == &kind.name) {
            continue;
        }
        // The job files were checked against the registry at start: every kind has its entry.
        let pool = jobs
            .serve(
                &service,
                service.engine().clone(),
                kind.clone(),
                shutdown.receiver(),
                grace,
            )
            .ok_or_else(|| {
                anyhow::anyhow!("the job kind `{}` is not in this registry", kind.name)
            })?;
        pools.spawn(pool);
    }
    while let Some(joined) = pools.join_next().await {
        joined??;
    }
    service.engine().history.flush(Duration::from_secs(5)).await;
    service.audit().flush(Duration::from_secs(5)).await;
    Ok(())
}
