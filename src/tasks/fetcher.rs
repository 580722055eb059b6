//! The fetch side of a worker pool: while the queue has work, one Lua step takes as many jobs as
//! there are free slots (`XREADGROUP` inside the script) and marks them running; when it is
//! empty, a blocking `XREADGROUP` waits for the next entry (an idle worker wakes at once) and the
//! same step marks what it read running. Then into the apalis worker. Beside it, the
//! upkeep of the queue: due retries promoted, silent consumers' entries reclaimed, and heartbeats
//! for the entries this process holds.

use std::sync::Arc;
use std::time::Duration;

use apalis::prelude::{Task, TaskBuilder, TaskId};
use redis::streams::{StreamReadOptions, StreamReadReply};
use serde::de::DeserializeOwned;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, watch};

use super::delivery::Delivery;
use super::hooks::{FinishHooks, FinishedTask};
use super::inflight::InFlight;
use super::job::Job;
use super::keys;
use super::kinds::JobKind;
use super::record::TaskState;
use super::store::{Ending, Finish, Started, TaskStore};
use crate::outcome::Outcome;

/// Most jobs taken by one read.
const FETCH_BATCH: usize = 256;
/// Longest a read blocks before looking at shutdown and reconnecting.
const BLOCK: Duration = Duration::from_secs(2);
/// How often due retries are looked for.
const PROMOTE_EVERY: Duration = Duration::from_millis(200);
/// How often entries of silent consumers are looked for.
const RECLAIM_EVERY: Duration = Duration::from_secs(1);

pub struct Fetcher<J> {
    pub store: TaskStore,
    pub kind: JobKind,
    pub consumer: String,
    pub slots: Arc<Semaphore>,
    pub inflight: InFlight,
    pub jobs: mpsc::Sender<Task<J>>,
    pub finished: mpsc::UnboundedSender<Finish>,
    pub hooks: Arc<FinishHooks>,
    pub shutdown: watch::Receiver<bool>,
}

struct Entry {
    entry_id: String,
    task_id: String,
    job: String,
}

impl<J: DeserializeOwned + Send + 'static> Fetcher<J> {
    pub async fn run(mut self) {
        let mut pause = Duration::from_millis(50);
        let mut conn = None;
        while !*self.shutdown.borrow() {
            // Slots are reserved before reading, so two fetchers never take more jobs than
            // there are free slots; what a read leaves unused goes back at the end of the round.
            let mut slots = tokio::select! {
                permit = self.slots.clone().acquire_owned() => permit.expect("the slot semaphore is never closed"),
                _ = crate::shutdown::stopped(&mut self.shutdown) => break,
            };
            let more = self.slots.available_permits().min(FETCH_BATCH - 1) as u32;
            if let Ok(permits) = self.slots.clone().try_acquire_many_owned(more) {
                slots.merge(permits);
            }
            let free = slots.num_permits();
            // While the queue has work, one round trip takes a batch and marks it running.
            match self
                .store
                .take_and_start(&self.kind, &self.consumer, free)
                .await
            {
                Ok(started) if !started.is_empty() => {
                    pause = Duration::from_millis(50);
                    self.hand_over(started, &mut slots).await;
                    continue;
                }
                Ok(_) => {}
                Err(err) => {
                    tracing::warn!(queue = %self.kind.queue, %err, "taking jobs failed; retrying");
                    self.sleep(&mut pause).await;
                    continue;
                }
            }
            // The queue is empty: block until something arrives.
            if conn.is_none() {
                conn = self.connect().await;
            }
            let Some(connection) = conn.as_mut() else {
                self.sleep(&mut pause).await;
                continue;
            };
            let read = tokio::select! {
                read = read_entries(connection, &self.kind, &self.consumer, free) => read,
                _ = crate::shutdown::stopped(&mut self.shutdown) => break,
            };
            let entries = match read {
                Ok(entries) => entries,
                Err(err) => {
                    tracing::warn!(queue = %self.kind.queue, %err, "fetch failed; reconnecting");
                    conn = None;
                    self.sleep(&mut pause).await;
                    continue;
                }
            };
            pause = Duration::from_millis(50);
            if !entries.is_empty() {
                self.start(entries, &mut slots).await;
            }
        }
        tracing::debug!(queue = %self.kind.queue, "fetcher stopped");
    }

    async fn connect(&self) -> Option<redis::aio::MultiplexedConnection> {
        match self.store.dedicated_connection(BLOCK).await {
            Ok(conn) => Some(conn),
            Err(err) => {
                tracing::warn!(%err, "cannot connect to Redis for fetching");
                None
            }
        }
    }

    async fn sleep(&mut self, pause: &mut Duration) {
        tokio::select! {
            () = tokio::time::sleep(*pause) => {}
            _ = crate::shutdown::stopped(&mut self.shutdown) => {}
        }
        *pause = (*pause * 2).min(Duration::from_secs(2));
    }

    /// Marks entries a blocking read took running and hands the started ones to the worker.
    async fn start(&mut self, entries: Vec<Entry>, slots: &mut OwnedSemaphorePermit) {
        let ids: Vec<(String, String)> = entries
            .iter()
            .map(|e| (e.entry_id.clone(), e.task_id.clone()))
            .collect();
        let mut pause = Duration::from_millis(50);
        let mut started = loop {
            match self
                .store
                .start_taken(&self.kind, &self.consumer, &ids)
                .await
            {
                Ok(started) => break started,
                Err(err) if !*self.shutdown.borrow() => {
                    tracing::warn!(%err, "could not mark fetched jobs running; retrying");
                    self.sleep(&mut pause).await;
                }
                // Left pending: the reclaimer re-queues them after the visibility timeout.
                Err(_) => return,
            }
        };
        for (started, entry) in started.iter_mut().zip(entries) {
            started.job = entry.job;
        }
        self.hand_over(started, slots).await;
    }

    /// Hands started jobs to the worker; records the ones that died at start.
    async fn hand_over(&mut self, started: Vec<Started>, slots: &mut OwnedSemaphorePermit) {
        for entry in started {
            if entry.attempt < 0 {
                // Dead at start: its worker kept dying. The hooks hear of it from the record.
                crate::metrics::job_finished(&self.kind.name, "dead", None);
                let (store, hooks) = (self.store.clone(), self.hooks.clone());
                tokio::spawn(async move {
                    let Ok(Some(record)) = store.get(&entry.task_id).await else {
                        return;
                    };
                    hooks.died_at_start(FinishedTask::from_record(record, TaskState::Dead));
                });
                continue;
            }
            if entry.attempt == 0 {
                continue;
            }
            let job: J = match serde_json::from_str(&entry.job) {
                Ok(job) => job,
                Err(err) => {
                    let _ = self.finished.send(Finish::new(
                        Some(entry.entry_id),
                        entry.task_id,
                        Ending::Failed,
                        Outcome::error(
                            "bad_job",
                            format!("the job payload does not decode: {err}"),
                        ),
                    ));
                    continue;
                }
            };
            let attempt = entry.attempt as u32;
            let slot = slots.split(1);
            if slot.is_none() {
                tracing::error!("more jobs fetched than reserved slots; running it anyway");
            }
            self.dispatch(job, entry, attempt, slot).await;
        }
    }

    async fn dispatch(
        &mut self,
        job: J,
        entry: Started,
        attempt: u32,
        slot: Option<OwnedSemaphorePermit>,
    ) {
        let cancel = self.inflight.begin(Some(&entry.entry_id), &entry.task_id);
        let delivery = Delivery::new(
            Some(entry.entry_id),
            entry.task_id.clone(),
            attempt,
            cancel,
            slot,
        );
        let task = TaskBuilder::new(job)
            .task_id(TaskId::from_string(entry.task_id))
            .attempt(attempt as usize)
            .data(delivery)
            .build();
        if self.jobs.send(task).await.is_err() {
            tracing::warn!("the worker stopped taking jobs; this one will be reclaimed");
        }
    }
}

async fn read_entries(
    conn: &mut redis::aio::MultiplexedConnection,
    kind: &JobKind,
    consumer: &str,
    count: usize,
) -> redis::RedisResult<Vec<Entry>> {
    let options = StreamReadOptions::default()
        .group(keys::GROUP, consumer)
        .count(count)
        .block(BLOCK.as_millis() as usize);
    let reply: Option<StreamReadReply> =
        redis::AsyncCommands::xread_options(conn, &[keys::queue(&kind.queue)], &[">"], &options)
            .await?;
    let mut entries = Vec::new();
    for stream in reply.map(|r| r.keys).unwrap_or_default() {
        for id in stream.ids {
            let task_id: Option<String> = id.get("t");
            let job: Option<String> = id.get("j");
            if let (Some(task_id), Some(job)) = (task_id, job) {
                entries.push(Entry {
                    entry_id: id.id,
                    task_id,
                    job,
                });
            }
        }
    }
    Ok(entries)
}

/// Promotes due retries (after the kind's own upkeep, [`Job::upkeep`]), re-queues entries of
/// silent consumers and heart-beats the entries this process holds, until shutdown.
pub async fn upkeep<J: Job>(
    store: TaskStore,
    kind: JobKind,
    consumer: String,
    inflight: InFlight,
    context: J::Context,
    mut shutdown: watch::Receiver<bool>,
) {
    let beat_every = (kind.visibility_timeout / 3).max(Duration::from_millis(500));
    let mut promote = tokio::time::interval(PROMOTE_EVERY);
    let mut beat = tokio::time::interval(beat_every);
    let mut reclaim = tokio::time::interval(RECLAIM_EVERY);
    for timer in [&mut promote, &mut beat, &mut reclaim] {
        timer.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    }
    loop {
        tokio::select! {
            _ = promote.tick() => {
                J::upkeep(&context).await;
                loop {
                    match store.promote(&kind, FETCH_BATCH).await {
                        Ok((moved, _)) if moved as usize == FETCH_BATCH => continue,
                        Ok(_) => break,
                        Err(err) => {
                            tracing::debug!(%err, "promoting due jobs failed");
                            break;
                        }
                    }
                }
            }
            _ = beat.tick() => {
                if let Err(err) = store.heartbeat(&kind, &consumer, &inflight.entry_ids()).await {
                    tracing::debug!(%err, "heartbeat failed");
                }
            }
            _ = reclaim.tick() => {
                match store.reclaim(&kind, FETCH_BATCH).await {
                    Ok(0) => {}
                    Ok(moved) => tracing::warn!(queue = %kind.queue, moved, "re-queued jobs whose worker stopped"),
                    Err(err) => tracing::debug!(%err, "reclaim failed"),
                }
            }
            _ = crate::shutdown::stopped(&mut shutdown) => return,
        }
    }
}
