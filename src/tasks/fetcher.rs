//! The fetch side of a worker pool. A logical queue is one stream per partition (`keys.rs`):
//! while they have work, a non-blocking `XREADGROUP` takes as many jobs as there are free slots
//! from one partition and one Lua step marks them running, the partitions taken in turn so none
//! starves. When every partition is empty, the fetcher waits for a doorbell: a blocking
//! `XREADGROUP` of the partitions' streams (one for all of them on one Redis server; one per
//! partition on a cluster, where a read may not span slots) that takes at most one entry per
//! stream and hands it over, so an idle worker wakes as soon as a job arrives. Then into the apalis worker. Beside it, the upkeep of every partition: due retries
//! promoted, silent consumers' entries reclaimed, and heartbeats for the entries this process
//! holds.

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

/// What a doorbell took: at most one entry per partition it watches.
struct Rung {
    partition: usize,
    /// `(entry id, task id, job)`.
    entries: Vec<(String, String, String)>,
}

impl<J: DeserializeOwned + Send + 'static> Fetcher<J> {
    pub async fn run(mut self) {
        let mut pause = Duration::from_millis(50);
        let partitions = self.store.partitions().count();
        let mut next = 0;
        let (rung, mut rungs) = mpsc::channel::<Rung>(64);
        let (idle, idle_rx) = watch::channel(false);
        let groups: Vec<Vec<usize>> = if self.store.servers().is_cluster() {
            self.store.partitions().all().map(|p| vec![p]).collect()
        } else {
            vec![self.store.partitions().all().collect()]
        };
        for group in groups {
            tokio::spawn(doorbell(
                self.store.clone(),
                self.kind.clone(),
                self.consumer.clone(),
                group,
                rung.clone(),
                idle_rx.clone(),
                self.shutdown.clone(),
            ));
        }
        drop(rung);
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
            // What a doorbell took after the fetcher stopped waiting for it.
            if let Ok(taken) = rungs.try_recv() {
                self.start(taken, &mut slots).await;
                continue;
            }
            let free = slots.num_permits();
            // While a partition has work, one round trip takes a batch and one marks it running.
            // A partition whose node is away is passed over, not waited for.
            let mut took = false;
            let mut failed = 0;
            for i in 0..partitions {
                let p = (next + i) % partitions;
                match self
                    .store
                    .take_and_start(&self.kind, p, &self.consumer, free)
                    .await
                {
                    Ok(started) if !started.is_empty() => {
                        next = (p + 1) % partitions;
                        took = true;
                        self.hand_over(started, &mut slots).await;
                        break;
                    }
                    Ok(_) => {}
                    Err(err) => {
                        tracing::warn!(queue = %self.kind.queue, partition = p, %err, "taking jobs failed; retrying");
                        failed += 1;
                    }
                }
            }
            if took {
                pause = Duration::from_millis(50);
                continue;
            }
            if failed > 0 {
                drop(slots);
                self.sleep(&mut pause).await;
                continue;
            }
            pause = Duration::from_millis(50);
            // Every partition is empty: the doorbells read (blocking), and what one takes is
            // started here with the slots still held.
            let _ = idle.send(true);
            let taken = tokio::select! {
                taken = rungs.recv() => taken,
                () = tokio::time::sleep(BLOCK) => None,
                _ = crate::shutdown::stopped(&mut self.shutdown) => break,
            };
            let _ = idle.send(false);
            if let Some(taken) = taken {
                self.start(taken, &mut slots).await;
            }
        }
        tracing::debug!(queue = %self.kind.queue, "fetcher stopped");
    }

    /// Marks what a doorbell took running and hands the started jobs to the worker.
    async fn start(&mut self, taken: Rung, slots: &mut OwnedSemaphorePermit) {
        let ids: Vec<(String, String)> = taken
            .entries
            .iter()
            .map(|(entry, task, _)| (entry.clone(), task.clone()))
            .collect();
        let mut pause = Duration::from_millis(50);
        let mut started = loop {
            match self
                .store
                .start_taken(&self.kind, taken.partition, &self.consumer, &ids)
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
        for (started, (_, _, job)) in started.iter_mut().zip(taken.entries) {
            started.job = job;
        }
        self.hand_over(started, slots).await;
    }

    async fn sleep(&mut self, pause: &mut Duration) {
        tokio::select! {
            () = tokio::time::sleep(*pause) => {}
            _ = crate::shutdown::stopped(&mut self.shutdown) => {}
        }
        *pause = (*pause * 2).min(Duration::from_secs(2));
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
                // Doorbells of several partitions may each take one at the same moment.
                tracing::debug!("more jobs fetched than reserved slots; running it anyway");
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

/// While the fetcher is idle, waits on the `partitions`' queue streams with a blocking
/// `XREADGROUP` that takes at most one entry per stream, and hands what it took to the fetcher
/// (an idle worker wakes as soon as a job arrives). Only while idle: a busy fetcher takes whole
/// batches itself.
async fn doorbell(
    store: TaskStore,
    kind: JobKind,
    consumer: String,
    partitions: Vec<usize>,
    rung: mpsc::Sender<Rung>,
    mut idle: watch::Receiver<bool>,
    mut shutdown: watch::Receiver<bool>,
) {
    let streams: Vec<String> = partitions
        .iter()
        .map(|&p| store.partitions().queue(p, &kind.queue))
        .collect();
    let cursors = vec![">"; streams.len()];
    let mut conn: Option<crate::storage::RedisConnection> = None;
    while !*shutdown.borrow() {
        tokio::select! {
            waited = idle.wait_for(|idle| *idle) => if waited.is_err() { return },
            _ = crate::shutdown::stopped(&mut shutdown) => return,
        }
        let Some(connection) = conn.as_mut() else {
            match store.dedicated_connection(BLOCK).await {
                Ok(connected) => conn = Some(connected),
                Err(err) => {
                    tracing::warn!(%err, "cannot connect to Redis for fetching");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
            continue;
        };
        let options = StreamReadOptions::default()
            .group(super::keys::GROUP, &consumer)
            .count(1)
            .block(BLOCK.as_millis() as usize);
        let read = tokio::select! {
            read = redis::AsyncCommands::xread_options::<_, _, Option<StreamReadReply>>(
                connection, &streams, &cursors, &options) => read,
            // An entry the server hands over after this stays pending: the reclaimer re-queues it.
            _ = crate::shutdown::stopped(&mut shutdown) => return,
        };
        match read {
            Ok(reply) => {
                for stream in reply.map(|r| r.keys).unwrap_or_default() {
                    let Some(at) = streams.iter().position(|s| *s == stream.key) else {
                        continue;
                    };
                    let entries =
                        super::store::job_entries(Some(StreamReadReply { keys: vec![stream] }));
                    if !entries.is_empty() {
                        let taken = Rung {
                            partition: partitions[at],
                            entries,
                        };
                        if rung.send(taken).await.is_err() {
                            return;
                        }
                    }
                }
            }
            Err(err) => {
                tracing::warn!(queue = %kind.queue, %err, "fetch failed; reconnecting");
                conn = None;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
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
                for p in store.partitions().all() {
                    loop {
                        match store.promote(&kind, p, FETCH_BATCH).await {
                            Ok((moved, _)) if moved as usize == FETCH_BATCH => continue,
                            Ok(_) => break,
                            Err(err) => {
                                tracing::debug!(%err, "promoting due jobs failed");
                                break;
                            }
                        }
                    }
                }
            }
            _ = beat.tick() => {
                if let Err(err) = store.heartbeat(&kind, &consumer, &inflight.entries()).await {
                    tracing::debug!(%err, "heartbeat failed");
                }
            }
            _ = reclaim.tick() => {
                for p in store.partitions().all() {
                    match store.reclaim(&kind, p, FETCH_BATCH).await {
                        Ok(0) => {}
                        Ok(moved) => tracing::warn!(queue = %kind.queue, moved, "re-queued jobs whose worker stopped"),
                        Err(err) => tracing::debug!(%err, "reclaim failed"),
                    }
                }
            }
            _ = crate::shutdown::stopped(&mut shutdown) => return,
        }
    }
}
