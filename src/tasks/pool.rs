//! A worker pool for one job kind: the fetcher, an apalis worker with the kind's concurrency and
//! timeout, the completer and the queue upkeep, stopped together on shutdown.

use std::sync::Arc;
use std::time::Duration;

use apalis::prelude::{Data, WorkerBuilder, WorkerBuilderExt, WorkerContext};
use tokio::sync::{Semaphore, mpsc, watch};
use tracing::Instrument as _;

use super::backend::StreamBackend;
use super::delivery::{Delivery, JobFailure};
use super::engine::Engine;
use super::fetcher::{self, Fetcher};
use super::job::Job;
use super::kinds::JobKind;

/// Fetchers per pool (see [`run_pool`]).
const FETCHERS: usize = 2;

/// A unique consumer name per pool and process: `<kind>@<host>:<pid>:<random>`.
pub fn consumer_name(kind: &JobKind) -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_else(|_| "host".into());
    format!(
        "{}@{host}:{}:{:08x}",
        kind.name,
        std::process::id(),
        fastrand::u32(..)
    )
}

/// Serves `kind` with the job type `J` until `shutdown` fires, then stops fetching, lets
/// in-flight jobs finish for at most `grace`, and records their outcomes. Jobs not finished by
/// then are re-queued by another process's reclaimer after the visibility timeout.
pub async fn run_pool<J: Job>(
    engine: Engine,
    kind: JobKind,
    context: J::Context,
    mut shutdown: watch::Receiver<bool>,
    grace: Duration,
) -> anyhow::Result<()> {
    let mut pause = Duration::from_millis(100);
    while let Err(err) = engine.store.ensure_group(&kind).await {
        tracing::warn!(%err, queue = %kind.queue, "cannot create the consumer group yet; retrying");
        tokio::select! {
            () = tokio::time::sleep(pause) => {}
            _ = crate::shutdown::stopped(&mut shutdown) => return Ok(()),
        }
        pause = (pause * 2).min(Duration::from_secs(2));
    }
    let consumer = consumer_name(&kind);
    let slots = Arc::new(Semaphore::new(kind.concurrency));
    let (jobs_tx, jobs_rx) = mpsc::channel(kind.concurrency);
    let (finished_tx, finished_rx) = mpsc::unbounded_channel();

    let completer = tokio::spawn(engine.completer(&kind).run(finished_rx));
    let upkeep = tokio::spawn(fetcher::upkeep::<J>(
        engine.store.clone(),
        kind.clone(),
        consumer.clone(),
        engine.inflight.clone(),
        context.clone(),
        shutdown.clone(),
    ));
    // Two fetchers: while one waits for its batch, the other's is being started, so Redis and
    // the workers are never both idle between batches.
    let fetchers: Vec<_> = (0..FETCHERS)
        .map(|_| {
            tokio::spawn(
                Fetcher {
                    store: engine.store.clone(),
                    kind: kind.clone(),
                    consumer: consumer.clone(),
                    slots: slots.clone(),
                    inflight: engine.inflight.clone(),
                    jobs: jobs_tx.clone(),
                    finished: finished_tx.clone(),
                    hooks: engine.hooks().clone(),
                    shutdown: shutdown.clone(),
                }
                .run(),
            )
        })
        .collect();
    drop(jobs_tx);

    let worker_context = WorkerContext::new(consumer.as_str());
    let kind_name = kind.name.clone();
    let worker = WorkerBuilder::new(&worker_context)
        .backend(StreamBackend::<J>::new(jobs_rx, finished_tx, kind.clone()))
        .concurrency(kind.concurrency)
        .timeout(kind.timeout)
        .catch_panic()
        .build(move |job: J, delivery: Data<Delivery>| {
            let context = context.clone();
            // ERROR level: recorded under any `log.level` (see `api/request_context.rs`).
            let span = tracing::error_span!(
                "job",
                kind = %kind_name,
                task_id = %delivery.0.task_id,
                request_id = %job.request_id(),
                attempt = delivery.0.attempt,
            );
            async move {
                let delivery = delivery.0;
                let cancel = delivery.cancel.clone();
                tokio::select! {
                    result = job.run(context, delivery) => result,
                    () = cancel.notified() => Err(JobFailure::new("cancelled", "the task was cancelled").give_up()),
                }
            }
            .instrument(span)
        });
    tracing::info!(%consumer, concurrency = kind.concurrency, "worker pool started");
    let running = tokio::spawn(worker.run());

    crate::shutdown::stopped(&mut shutdown).await;
    for fetcher in fetchers {
        let _ = fetcher.await;
    }
    if worker_context.stop().is_ok() && tokio::time::timeout(grace, running).await.is_err() {
        tracing::warn!(%consumer, "in-flight jobs did not finish within the grace period; they will be reclaimed");
    }
    let _ = upkeep.await;
    if tokio::time::timeout(Duration::from_secs(5), completer)
        .await
        .is_err()
    {
        tracing::warn!(%consumer, "not every finished job was recorded; those will run again");
    }
    tracing::info!(%consumer, "worker pool stopped");
    Ok(())
}
