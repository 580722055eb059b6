//! Records finished attempts in Redis in batches: whatever has finished by the time the previous
//! batch is written goes into the next one, so a busy pool makes one Lua call per many jobs and
//! an idle one adds no waiting. Then the installed finish hooks see the batch's final tasks.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;

use super::hooks::{FinishHooks, FinishedTask};
use super::inflight::InFlight;
use super::kinds::JobKind;
use super::record::TaskState;
use super::store::{Ending, Finish, TaskStore};

const BATCH: usize = 512;

pub struct Completer {
    pub store: TaskStore,
    pub kind: JobKind,
    pub inflight: InFlight,
    pub hooks: Arc<FinishHooks>,
}

impl Completer {
    /// Runs until every sender is gone and everything received is recorded.
    pub async fn run(self, mut finished: mpsc::UnboundedReceiver<Finish>) {
        while let Some(first) = finished.recv().await {
            let mut batch = vec![first];
            while batch.len() < BATCH {
                match finished.try_recv() {
                    Ok(finish) => batch.push(finish),
                    Err(_) => break,
                }
            }
            self.record(batch).await;
        }
    }

    /// Writes one batch, one part per partition at once, each retried until Redis takes it (an
    /// unrecorded finish would run again): a partition whose node is away (a cluster's failover)
    /// holds up only its own part. Then hands the tasks each part made final to the hooks.
    pub async fn record(&self, batch: Vec<Finish>) {
        let parts = self.store.partitions();
        if parts.count() == 1 {
            return self.record_part(batch).await;
        }
        let mut by_partition: Vec<Vec<Finish>> = (0..parts.count()).map(|_| Vec::new()).collect();
        for finish in batch {
            by_partition[parts.of(&finish.task_id)].push(finish);
        }
        futures_util::future::join_all(
            by_partition
                .into_iter()
                .filter(|part| !part.is_empty())
                .map(|part| self.record_part(part)),
        )
        .await;
    }

    async fn record_part(&self, batch: Vec<Finish>) {
        let mut pause = Duration::from_millis(50);
        let results = loop {
            match self.store.finish_batch(&self.kind, &batch).await {
                Ok(results) => break results,
                Err(err) => {
                    tracing::warn!(%err, jobs = batch.len(), "recording finished jobs failed; retrying");
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(Duration::from_secs(2));
                }
            }
        };
        let now_us = jiff::Timestamp::now().as_microsecond();
        let mut finals = Vec::with_capacity(batch.len());
        for (finish, result) in batch.into_iter().zip(results) {
            let Finish {
                entry_id,
                task_id,
                ending,
                outcome,
                slot,
                ..
            } = finish;
            self.inflight.end(entry_id.as_deref(), &task_id);
            // The worker slot is free once its finish is recorded.
            drop(slot);
            if !result.applied {
                continue;
            }
            let ran = result
                .life
                .started_us
                .map(|started| Duration::from_micros(now_us.saturating_sub(started).max(0) as u64));
            let state = match ending {
                Ending::Succeeded => TaskState::Succeeded,
                Ending::Failed => TaskState::Failed,
                Ending::Dead => TaskState::Dead,
                Ending::Retrying(_) => {
                    crate::metrics::job_finished(&self.kind.name, "retrying", ran);
                    continue;
                }
                Ending::Waiting(_) => {
                    crate::metrics::job_finished(&self.kind.name, "waiting", ran);
                    continue;
                }
            };
            crate::metrics::job_finished(&self.kind.name, state.as_str(), ran);
            finals.push(FinishedTask {
                facts: result.facts,
                state,
                life: result.life,
                outcome,
                finished_us: Some(now_us),
            });
        }
        self.hooks.finished(finals).await;
    }
}
