//! Every Redis operation of the engine: each state change is one Lua script, atomic together
//! with the queue operation it belongs to, so several web and worker processes can share one
//! Redis safely.

use std::time::Duration;

use crate::storage::{RedisConnection, RedisServers};
use serde_json::Value as Json;

use super::hooks::TaskLife;
use super::keys;
use super::keys::Partitions;
use super::kinds::{JobKind, JobKinds};
use super::outbox::{FollowUp, FollowUpSteps};
use super::scripts::{
    AppendArgs, AppendKeys, CancelArgs, CancelKeys, CreateArgs, CreateKeys, FinishArgs,
    FinishItemArgs, FinishItemKeys, FinishKeys, PromoteArgs, PromoteItemArgs, PromoteKeys,
    ReclaimArgs, ReclaimKeys, ReplayArgs, ReplayKeys, Scripts, StartArgs, StartItemArgs, StartKeys,
    TaskKeys, UserTaskArgs, UserTaskKeys,
};
use crate::facts::TaskFacts;
use crate::outcome::Outcome;

/// One job as the start script left it.
#[derive(Debug)]
pub struct Started {
    /// The partition whose queue it came from.
    pub partition: usize,
    pub entry_id: String,
    pub task_id: String,
    /// The job's JSON (empty when the caller already has it).
    pub job: String,
    /// The attempt number (> 0); 0 when skipped (already final or expired); -1 when it died.
    pub attempt: i64,
}

/// How many replicas a new task must reach before it counts as accepted (`redis.wait_replicas`),
/// and how long to wait for them.
#[derive(Debug, Clone, Copy, Default)]
pub struct Durability {
    pub replicas: u32,
    pub timeout: Duration,
}

/// A task to create.
#[derive(Debug, Clone)]
pub struct NewTask {
    pub facts: TaskFacts,
    pub kind: String,
    /// The job payload, JSON.
    pub job: String,
    /// Where the final event is POSTed (a Standard Webhooks callback), if anywhere.
    pub callback_url: Option<String>,
    /// Tokens reserved at admission (`limits::Reservation::encode`), settled when the task ends.
    pub quota: Option<String>,
    /// The batch this task is an item of (`batches/`).
    pub batch: Option<String>,
}

/// Where a new task goes: the queue, an inline run under a lease, or held back (batch items
/// over their batch's concurrency cap).
#[derive(Debug, Clone, Copy)]
enum Mode {
    Queue,
    Inline(Duration),
    Hold,
}

/// How one attempt ended, as the engine records it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    Succeeded,
    /// Give up: the error cannot be fixed by trying again.
    Failed,
    /// Attempts used up.
    Dead,
    /// Try again after the delay.
    Retrying(Duration),
    /// Run again after the delay without counting this attempt: what the job needs (a
    /// provider's capacity) is due then. The task is queued meanwhile.
    Waiting(Duration),
}

impl Ending {
    fn name(self) -> &'static str {
        match self {
            Ending::Succeeded => "succeeded",
            Ending::Failed => "failed",
            Ending::Dead => "dead",
            Ending::Retrying(_) => "retrying",
            Ending::Waiting(_) => "waiting",
        }
    }
}

/// One finished attempt to record.
#[derive(Debug, Clone)]
pub struct Finish {
    /// The queue entry to acknowledge; `None` for an inline run (its lease is released instead).
    pub entry_id: Option<String>,
    pub task_id: String,
    pub ending: Ending,
    /// The result or the error, stored on the task and sent with its event.
    pub outcome: Outcome,
    /// The worker slot of the attempt, released once the finish is recorded.
    pub slot: Option<std::sync::Arc<tokio::sync::OwnedSemaphorePermit>>,
    /// The user's settlement keys (`limits::settlement_keys`), when the caller knows whose task
    /// it is (an inline run): on one server the finish then settles the task's reservation in
    /// its own step, with no follow-up.
    pub settlement_keys: Option<[String; 4]>,
}

impl Finish {
    /// A finish that holds no worker slot (inline runs, undecodable jobs).
    pub fn new(
        entry_id: Option<String>,
        task_id: String,
        ending: Ending,
        outcome: Outcome,
    ) -> Self {
        Self {
            entry_id,
            task_id,
            ending,
            outcome,
            slot: None,
            settlement_keys: None,
        }
    }
}

/// What recording a finish did, with the task's stored facts (for the finish hooks).
#[derive(Debug, Clone)]
pub struct Finished {
    /// False when the task was already final (first final state wins).
    pub applied: bool,
    pub facts: TaskFacts,
    pub life: TaskLife,
}

/// What cancelling found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cancelled {
    Missing,
    /// It was already final: nothing changed.
    AlreadyFinal(String),
    /// It was cancelled; the state it was in.
    From(String),
}

impl Cancelled {
    /// What `cancel.lua` answered: the state before, or `missing`.
    fn of(before: &str) -> Self {
        match before {
            "missing" => Self::Missing,
            "succeeded" | "failed" | "cancelled" | "dead" => Self::AlreadyFinal(before.to_owned()),
            _ => Self::From(before.to_owned()),
        }
    }
}

/// One row of `finish.lua`'s answer: applied, then the task's stored facts.
type FinishRow = (
    i64,
    String,
    String,
    String,
    String,
    String,
    String,
    String,
    String,
);

/// The engine's Redis operations; cloning is one reference count.
#[derive(Clone)]
pub struct TaskStore(std::sync::Arc<StoreParts>);

impl std::ops::Deref for TaskStore {
    type Target = StoreParts;

    fn deref(&self) -> &StoreParts {
        &self.0
    }
}

/// What [`TaskStore`] holds.
pub struct StoreParts {
    pub(super) conn: RedisConnection,
    servers: RedisServers,
    kinds: JobKinds,
    parts: Partitions,
    steps: FollowUpSteps,
    durability: Durability,
    /// Outbox entries applied and not yet deleted (`outbox.rs`).
    applied: std::sync::Mutex<Vec<(usize, String)>>,
    pub(super) scripts: Scripts,
}

impl TaskStore {
    pub fn new(
        conn: RedisConnection,
        servers: RedisServers,
        kinds: JobKinds,
        parts: Partitions,
        steps: FollowUpSteps,
        durability: Durability,
    ) -> Self {
        let scripts = Scripts::new(steps.settle_lua);
        Self(std::sync::Arc::new(StoreParts {
            conn,
            servers,
            kinds,
            parts,
            steps,
            durability,
            applied: std::sync::Mutex::default(),
            scripts,
        }))
    }

    /// Outbox entries applied and not yet deleted.
    pub(super) fn applied(&self) -> std::sync::MutexGuard<'_, Vec<(usize, String)>> {
        self.applied.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// What applies each kind of follow-up step (`outbox.rs`).
    pub(super) fn steps(&self) -> &FollowUpSteps {
        &self.steps
    }

    /// The partitions of the engine's keys (`keys.rs`).
    pub fn partitions(&self) -> &Partitions {
        &self.parts
    }

    pub fn kinds(&self) -> &JobKinds {
        &self.kinds
    }

    /// A connection of its own, for blocking reads that must not stall shared traffic; it waits
    /// up to `blocking` plus a margin for an answer.
    pub async fn dedicated_connection(
        &self,
        blocking: Duration,
    ) -> redis::RedisResult<RedisConnection> {
        self.servers.dedicated(blocking).await
    }

    pub fn servers(&self) -> &RedisServers {
        &self.servers
    }

    /// The shared connection, for modules that keep records of their own beside the tasks'
    /// (the batches).
    pub fn connection(&self) -> RedisConnection {
        self.conn.clone()
    }

    /// Creates the consumer group of a kind's queue (and the stream) in every partition, where
    /// missing.
    pub async fn ensure_group(&self, kind: &JobKind) -> redis::RedisResult<()> {
        let mut conn = self.conn.clone();
        for p in self.parts.all() {
            let created: redis::RedisResult<()> = redis::cmd("XGROUP")
                .arg("CREATE")
                .arg(self.parts.queue(p, &kind.queue))
                .arg(keys::GROUP)
                .arg("0")
                .arg("MKSTREAM")
                .query_async(&mut conn)
                .await;
            match created {
                Err(err) if err.code() == Some("BUSYGROUP") => {}
                other => other?,
            }
        }
        Ok(())
    }

    /// The keys and arguments of `create.lua` for `task`, queued or (with a lease) inline.
    fn create_call(&self, task: &NewTask, mode: Mode) -> (CreateKeys, CreateArgs) {
        let kind = self.kinds.kind(&task.kind);
        let facts = &task.facts;
        let p = self.parts.of(&facts.task_id);
        let keys = CreateKeys {
            task: self.parts.task(&facts.task_id),
            events: self.parts.events(&facts.task_id),
            queue: match mode {
                Mode::Inline(_) => self.parts.delayed(p, &kind.queue),
                Mode::Queue | Mode::Hold => self.parts.queue(p, &kind.queue),
            },
            watching: self.parts.watching(p),
            announcements: self.parts.announcements(p),
            user_tasks: self
                .user_step_inline()
                .then(|| keys::user_tasks(&facts.user_id)),
            user_feed: self
                .user_step_inline()
                .then(|| keys::user_feed(&facts.user_id)),
        };
        let args = CreateArgs {
            task_id: facts.task_id.clone(),
            job: task.job.clone(),
            ttl_secs: kind.result_ttl.as_secs(),
            max_attempts: kind.max_attempts,
            kind: kind.name.clone(),
            user_id: facts.user_id.clone(),
            feature: facts.feature_name(),
            request_id: facts.request_id.clone(),
            role: facts.role.as_str(),
            events_maxlen: keys::EVENTS_MAXLEN,
            mode: match mode {
                Mode::Queue => "queue",
                Mode::Inline(_) => "inline",
                Mode::Hold => "hold",
            },
            lease_ms: match mode {
                Mode::Inline(lease) => lease.as_millis() as u64,
                _ => 0,
            },
            callback_url: task.callback_url.clone().unwrap_or_default(),
            quota: task.quota.clone().unwrap_or_default(),
            batch: task.batch.clone().unwrap_or_default(),
            user_feed: keys::user_feed(&facts.user_id),
        };
        (keys, args)
    }

    /// The keys and arguments of `user_task.lua`: the task in its user's index and feed.
    fn user_task_call(&self, task: &NewTask) -> (UserTaskKeys, UserTaskArgs) {
        let facts = &task.facts;
        (
            UserTaskKeys {
                user_tasks: keys::user_tasks(&facts.user_id),
                user_feed: keys::user_feed(&facts.user_id),
            },
            UserTaskArgs {
                task_id: facts.task_id.clone(),
                ttl_secs: self.kinds.kind(&task.kind).result_ttl.as_secs(),
            },
        )
    }

    /// Whether `create.lua` writes the user's index and feed itself: on one server, where a
    /// script may change any keys together. On a cluster `user_task.lua` does, first.
    fn user_step_inline(&self) -> bool {
        !self.servers.is_cluster()
    }

    /// How many keys `create.lua` gets.
    fn create_keys(&self) -> usize {
        CreateKeys::NAMES.len() - if self.user_step_inline() { 0 } else { 2 }
    }

    /// On a cluster, the user's slot first, then the task's partition (`lua/user_task.lua` says
    /// why); on one server, one script.
    async fn create(&self, task: &NewTask, mode: Mode) -> redis::RedisResult<bool> {
        let mut conn = self.conn.clone();
        if !self.user_step_inline() {
            let (keys, args) = self.user_task_call(task);
            let mut invocation = self.scripts.user_task.prepare_invoke();
            keys.push(&mut invocation);
            args.push(&mut invocation);
            invocation.invoke_async::<i64>(&mut conn).await?;
        }
        let (keys, args) = self.create_call(task, mode);
        let mut invocation = self.scripts.create.prepare_invoke();
        keys.push(&mut invocation);
        args.push(&mut invocation);
        let created: i64 = invocation.invoke_async(&mut conn).await?;
        self.replicate(&mut conn, &self.parts.task(&task.facts.task_id))
            .await?;
        Ok(created != 0)
    }

    /// With [`Durability::replicas`], waits until the writes to the node of `key` reached
    /// them: an accepted task then survives its master's failover.
    async fn replicate(&self, conn: &mut RedisConnection, key: &str) -> redis::RedisResult<()> {
        let Durability { replicas, timeout } = self.durability;
        if replicas == 0 {
            return Ok(());
        }
        let reached = conn.wait_for_replicas(key, replicas, timeout).await?;
        if reached < replicas {
            tracing::warn!(
                reached,
                wanted = replicas,
                "a new task reached fewer replicas than redis.wait_replicas asks"
            );
        }
        Ok(())
    }

    /// Records a task and queues its job; false if the id exists already.
    pub async fn enqueue(&self, task: &NewTask) -> redis::RedisResult<bool> {
        self.create(task, Mode::Queue).await
    }

    /// Records a task that runs inline now, with a lease: if this process dies before finishing
    /// it, the job is queued once `lease` passes without [`TaskStore::extend_lease`].
    pub async fn begin_inline(&self, task: &NewTask, lease: Duration) -> redis::RedisResult<bool> {
        self.create(task, Mode::Inline(lease)).await
    }

    pub async fn extend_lease(
        &self,
        kind: &JobKind,
        task_id: &str,
        lease: Duration,
    ) -> redis::RedisResult<()> {
        let due = jiff::Timestamp::now().as_millisecond() + lease.as_millis() as i64;
        let mut conn = self.conn.clone();
        redis::cmd("ZADD")
            .arg(self.parts.delayed(self.parts.of(task_id), &kind.queue))
            .arg("XX")
            .arg(due)
            .arg(task_id)
            .query_async::<()>(&mut conn)
            .await
    }

    /// Queues many tasks in one pipeline (bulk producers and benchmarks).
    pub async fn enqueue_many(&self, tasks: &[NewTask]) -> redis::RedisResult<()> {
        self.create_many(tasks, Mode::Queue).await
    }

    /// Records many batch items as queued but keeps them out of the queue: the batch queues
    /// each one when a slot frees (`lua/prelude.lua`, `batch_step`).
    pub async fn hold_many(&self, tasks: &[NewTask]) -> redis::RedisResult<()> {
        self.create_many(tasks, Mode::Hold).await
    }

    async fn create_many(&self, tasks: &[NewTask], mode: Mode) -> redis::RedisResult<()> {
        if tasks.is_empty() {
            return Ok(());
        }
        let mut conn = self.conn.clone();
        let user_task = self.load(&self.scripts.user_task).await?;
        let create = self.load(&self.scripts.create).await?;
        // On a cluster, every user step before any create (`lua/user_task.lua`).
        if !self.user_step_inline() {
            let calls: Vec<redis::Cmd> = tasks
                .iter()
                .map(|task| {
                    let (keys, args) = self.user_task_call(task);
                    let mut call = evalsha(&user_task, UserTaskKeys::NAMES.len());
                    keys.push_cmd(&mut call);
                    args.push_cmd(&mut call);
                    call
                })
                .collect();
            conn.query_each(calls).await?;
        }
        let calls: Vec<redis::Cmd> = tasks
            .iter()
            .map(|task| {
                let (keys, args) = self.create_call(task, mode);
                let mut call = evalsha(&create, self.create_keys());
                keys.push_cmd(&mut call);
                args.push_cmd(&mut call);
                call
            })
            .collect();
        conn.query_each(calls).await?;
        if self.durability.replicas > 0 {
            for p in self.parts.all() {
                if let Some(task) = tasks.iter().find(|t| self.parts.of(&t.facts.task_id) == p) {
                    self.replicate(&mut conn, &self.parts.task(&task.facts.task_id))
                        .await?;
                }
            }
        }
        Ok(())
    }

    /// Loads a script on every node (for `EVALSHA` in pipelines); its SHA-1.
    async fn load(&self, script: &redis::Script) -> redis::RedisResult<String> {
        script
            .prepare_invoke()
            .load_async(&mut self.conn.clone())
            .await
    }

    /// Takes up to `count` new entries of partition `p`'s queue of the kind (no blocking: an
    /// empty queue answers an empty list at once) and marks them running.
    pub async fn take_and_start(
        &self,
        kind: &JobKind,
        p: usize,
        worker: &str,
        count: usize,
    ) -> redis::RedisResult<Vec<Started>> {
        let options = redis::streams::StreamReadOptions::default()
            .group(keys::GROUP, worker)
            .count(count);
        let reply: Option<redis::streams::StreamReadReply> = redis::AsyncCommands::xread_options(
            &mut self.conn.clone(),
            &[self.parts.queue(p, &kind.queue)],
            &[">"],
            &options,
        )
        .await?;
        let entries = job_entries(reply);
        if entries.is_empty() {
            return Ok(Vec::new());
        }
        let ids: Vec<(String, String)> = entries
            .iter()
            .map(|(entry, task, _)| (entry.clone(), task.clone()))
            .collect();
        let mut started = self.start_taken(kind, p, worker, &ids).await?;
        for (started, (_, _, job)) in started.iter_mut().zip(entries) {
            started.job = job;
        }
        Ok(started)
    }

    /// Marks entries a read of partition `p`'s queue took running.
    pub async fn start_taken(
        &self,
        kind: &JobKind,
        p: usize,
        worker: &str,
        entries: &[(String, String)],
    ) -> redis::RedisResult<Vec<Started>> {
        let mut invocation = self.scripts.start.prepare_invoke();
        StartKeys {
            queue: self.parts.queue(p, &kind.queue),
            dead: self.parts.dead(p),
            watching: self.parts.watching(p),
            announcements: self.parts.announcements(p),
            outbox: self.parts.outbox(p),
        }
        .push(&mut invocation);
        StartArgs {
            group: keys::GROUP,
            events_maxlen: keys::EVENTS_MAXLEN,
            worker,
        }
        .push(&mut invocation);
        for (entry, task_id) in entries {
            self.task_keys(task_id).push(&mut invocation);
            StartItemArgs { entry, task_id }.push(&mut invocation);
        }
        let (flat, followups): (Vec<redis::Value>, redis::Value) =
            invocation.invoke_async(&mut self.conn.clone()).await?;
        self.follow_up(FollowUp::parse_all(p, &followups)).await;
        flat.chunks_exact(3)
            .map(|job| {
                Ok(Started {
                    partition: p,
                    entry_id: redis::from_redis_value_ref(&job[0])?,
                    task_id: redis::from_redis_value_ref(&job[1])?,
                    job: String::new(),
                    attempt: redis::from_redis_value_ref(&job[2])?,
                })
            })
            .collect()
    }

    fn task_keys(&self, task_id: &str) -> TaskKeys {
        TaskKeys {
            task: self.parts.task(task_id),
            events: self.parts.events(task_id),
        }
    }

    /// Records a batch of finished attempts and acknowledges their entries: one script per
    /// partition the batch touches.
    pub async fn finish_batch(
        &self,
        kind: &JobKind,
        batch: &[Finish],
    ) -> redis::RedisResult<Vec<Finished>> {
        let mut by_partition: Vec<Vec<usize>> = vec![Vec::new(); self.parts.count()];
        for (index, finish) in batch.iter().enumerate() {
            by_partition[self.parts.of(&finish.task_id)].push(index);
        }
        let mut finished: Vec<Option<Finished>> = vec![None; batch.len()];
        for (p, indices) in by_partition.into_iter().enumerate() {
            if indices.is_empty() {
                continue;
            }
            let part: Vec<&Finish> = indices.iter().map(|&i| &batch[i]).collect();
            let rows = self.finish_in(kind, p, &part).await?;
            for (index, row) in indices.into_iter().zip(rows) {
                finished[index] = Some(row);
            }
        }
        Ok(finished.into_iter().flatten().collect())
    }

    async fn finish_in(
        &self,
        kind: &JobKind,
        p: usize,
        batch: &[&Finish],
    ) -> redis::RedisResult<Vec<Finished>> {
        // Settled in this step when every job comes with its user's settlement keys (inline
        // runs, on one server); else by follow-up.
        let settling = self.user_step_inline()
            && !self.steps.settle_lua.is_empty()
            && batch.iter().all(|f| f.settlement_keys.is_some());
        let mut invocation = if settling {
            self.scripts.finish_settling.prepare_invoke()
        } else {
            self.scripts.finish.prepare_invoke()
        };
        FinishKeys {
            queue: self.parts.queue(p, &kind.queue),
            dead: self.parts.dead(p),
            delayed: self.parts.delayed(p, &kind.queue),
            watching: self.parts.watching(p),
            announcements: self.parts.announcements(p),
            outbox: self.parts.outbox(p),
        }
        .push(&mut invocation);
        FinishArgs {
            group: keys::GROUP,
            events_maxlen: keys::EVENTS_MAXLEN,
            ttl_secs: kind.result_ttl.as_secs(),
        }
        .push(&mut invocation);
        for finish in batch {
            let task = self.task_keys(&finish.task_id);
            match (settling, &finish.settlement_keys) {
                (true, Some([daily, monthly, bucket, settled])) => FinishItemKeys {
                    task: task.task,
                    events: task.events,
                    daily: daily.clone(),
                    monthly: monthly.clone(),
                    bucket: bucket.clone(),
                    settled: settled.clone(),
                }
                .push(&mut invocation),
                _ => task.push(&mut invocation),
            }
            FinishItemArgs {
                entry: finish.entry_id.as_deref().unwrap_or(""),
                task_id: &finish.task_id,
                ending: finish.ending.name(),
                outcome: serde_json::to_string(&finish.outcome).expect("an outcome serialises"),
                delay_ms: match finish.ending {
                    Ending::Retrying(delay) | Ending::Waiting(delay) => delay.as_millis() as u64,
                    _ => 0,
                },
                tokens: finish.outcome.tokens_used(),
            }
            .push(&mut invocation);
        }
        let (rows, followups): (Vec<FinishRow>, redis::Value) =
            invocation.invoke_async(&mut self.conn.clone()).await?;
        self.follow_up(FollowUp::parse_all(p, &followups)).await;
        Ok(batch
            .iter()
            .zip(rows)
            .map(
                |(
                    finish,
                    (
                        applied,
                        user_id,
                        role,
                        feature,
                        request_id,
                        created,
                        started,
                        attempts,
                        callback,
                    ),
                )| {
                    Finished {
                        applied: applied == 1,
                        facts: TaskFacts::from_stored(
                            finish.task_id.clone(),
                            request_id,
                            user_id,
                            &role,
                            &feature,
                        ),
                        life: TaskLife {
                            created_us: created.parse().ok(),
                            started_us: started.parse().ok(),
                            attempts: attempts.parse().unwrap_or(0),
                            callback_url: (!callback.is_empty()).then_some(callback),
                        },
                    }
                },
            )
            .collect())
    }

    /// Moves partition `p`'s due retries and expired inline leases to its queue; returns how
    /// many moved and how long until the next one is due.
    pub async fn promote(
        &self,
        kind: &JobKind,
        p: usize,
        limit: usize,
    ) -> redis::RedisResult<(u64, Option<Duration>)> {
        let delayed = self.parts.delayed(p, &kind.queue);
        let due: Vec<String> = redis::cmd("ZRANGEBYSCORE")
            .arg(&delayed)
            .arg("-inf")
            .arg(jiff::Timestamp::now().as_millisecond())
            .arg("LIMIT")
            .arg(0)
            .arg(limit)
            .query_async(&mut self.conn.clone())
            .await?;
        let mut invocation = self.scripts.promote.prepare_invoke();
        PromoteKeys {
            delayed,
            queue: self.parts.queue(p, &kind.queue),
            watching: self.parts.watching(p),
            announcements: self.parts.announcements(p),
        }
        .push(&mut invocation);
        PromoteArgs {
            events_maxlen: keys::EVENTS_MAXLEN,
        }
        .push(&mut invocation);
        for task_id in &due {
            self.task_keys(task_id).push(&mut invocation);
            PromoteItemArgs { task_id }.push(&mut invocation);
        }
        let (moved, next_ms): (u64, i64) = invocation.invoke_async(&mut self.conn.clone()).await?;
        Ok((
            moved,
            (next_ms >= 0).then(|| Duration::from_millis(next_ms as u64)),
        ))
    }

    /// Re-queues partition `p`'s entries whose consumer went silent for longer than the
    /// visibility timeout.
    pub async fn reclaim(&self, kind: &JobKind, p: usize, limit: usize) -> redis::RedisResult<u64> {
        let mut invocation = self.scripts.reclaim.prepare_invoke();
        ReclaimKeys {
            queue: self.parts.queue(p, &kind.queue),
        }
        .push(&mut invocation);
        ReclaimArgs {
            group: keys::GROUP,
            min_idle_ms: kind.visibility_timeout.as_millis() as u64,
            limit,
        }
        .push(&mut invocation);
        invocation.invoke_async(&mut self.conn.clone()).await
    }

    /// Resets the idle time of entries still being worked on (`(task id, entry id)`), so they
    /// are not reclaimed.
    pub async fn heartbeat(
        &self,
        kind: &JobKind,
        consumer: &str,
        entries: &[(String, String)],
    ) -> redis::RedisResult<()> {
        let mut conn = self.conn.clone();
        // The pool's own check-in (the dashboard's "last heartbeat"); pools silent for a day
        // are forgotten.
        let now_ms = jiff::Timestamp::now().as_millisecond();
        redis::pipe()
            .zadd(keys::WORKERS, consumer, now_ms)
            .ignore()
            .zrembyscore(keys::WORKERS, "-inf", now_ms - 86_400_000)
            .ignore()
            .query_async::<()>(&mut conn)
            .await?;
        for p in self.parts.all() {
            let ids: Vec<&str> = entries
                .iter()
                .filter(|(task_id, _)| self.parts.of(task_id) == p)
                .map(|(_, entry)| entry.as_str())
                .collect();
            if ids.is_empty() {
                continue;
            }
            redis::cmd("XCLAIM")
                .arg(self.parts.queue(p, &kind.queue))
                .arg(keys::GROUP)
                .arg(consumer)
                .arg(0)
                .arg(ids)
                .arg("JUSTID")
                .query_async::<()>(&mut conn)
                .await?;
        }
        Ok(())
    }

    /// The `cancel.lua` call (loaded as `hash`) for one task of the queue `queue`.
    fn cancel_call(
        &self,
        hash: &str,
        queue: &str,
        task_id: &str,
        owner: Option<&str>,
    ) -> redis::Cmd {
        let p = self.parts.of(task_id);
        let mut call = evalsha(hash, CancelKeys::NAMES.len());
        CancelKeys {
            task: self.parts.task(task_id),
            events: self.parts.events(task_id),
            delayed: self.parts.delayed(p, queue),
            watching: self.parts.watching(p),
            announcements: self.parts.announcements(p),
            outbox: self.parts.outbox(p),
        }
        .push_cmd(&mut call);
        CancelArgs {
            task_id,
            owner: owner.unwrap_or(""),
            events_maxlen: keys::EVENTS_MAXLEN,
            cancel_channel: keys::CANCEL_CHANNEL,
        }
        .push_cmd(&mut call);
        call
    }

    /// Runs `cancel.lua` for each task (one pipeline per slot), applies the follow-ups, and
    /// answers the state each was in.
    async fn cancel_each(
        &self,
        queue: &str,
        task_ids: &[String],
        owner: Option<&str>,
    ) -> redis::RedisResult<Vec<Cancelled>> {
        let hash = self.load(&self.scripts.cancel).await?;
        let calls = task_ids
            .iter()
            .map(|id| self.cancel_call(&hash, queue, id, owner))
            .collect();
        let replies = self.conn.clone().query_each(calls).await?;
        let mut answers = Vec::with_capacity(replies.len());
        let mut followups = Vec::new();
        for (id, reply) in task_ids.iter().zip(replies) {
            let (before, entries): (String, redis::Value) = redis::from_redis_value(reply)?;
            followups.extend(FollowUp::parse_all(self.parts.of(id), &entries));
            answers.push(Cancelled::of(&before));
        }
        self.follow_up(followups).await;
        Ok(answers)
    }

    /// Cancels many tasks of one kind, 1,000 at a time (a batch's items); tasks already final
    /// are left as they are. Returns the ids of the tasks it cancelled.
    pub async fn cancel_many(
        &self,
        kind: &JobKind,
        task_ids: &[String],
        owner: Option<&str>,
    ) -> redis::RedisResult<Vec<String>> {
        let mut cancelled = Vec::new();
        for chunk in task_ids.chunks(1000) {
            let before = self.cancel_each(&kind.queue, chunk, owner).await?;
            cancelled.extend(
                chunk
                    .iter()
                    .zip(before)
                    .filter(|(_, state)| matches!(state, Cancelled::From(_)))
                    .map(|(id, _)| id.clone()),
            );
        }
        Ok(cancelled)
    }

    /// Cancels a task of `owner` (any owner when `None`).
    pub async fn cancel(
        &self,
        task_id: &str,
        owner: Option<&str>,
    ) -> redis::RedisResult<Cancelled> {
        let Some(record) = self.get(task_id).await? else {
            return Ok(Cancelled::Missing);
        };
        let queue = self
            .kinds
            .get(&record.kind)
            .map_or(record.kind.clone(), |k| k.queue.clone());
        let mut answers = self
            .cancel_each(&queue, &[task_id.to_owned()], owner)
            .await?;
        Ok(answers.pop().unwrap_or(Cancelled::Missing))
    }

    /// Re-queues a dead task with fresh attempts; false if it is not dead.
    pub async fn replay_dead(&self, task_id: &str) -> redis::RedisResult<bool> {
        let Some(record) = self.get(task_id).await? else {
            return Ok(false);
        };
        let Some(kind) = self.kinds.get(&record.kind) else {
            return Ok(false);
        };
        let p = self.parts.of(task_id);
        let mut invocation = self.scripts.replay.prepare_invoke();
        ReplayKeys {
            task: self.parts.task(task_id),
            events: self.parts.events(task_id),
            dead: self.parts.dead(p),
            queue: self.parts.queue(p, &kind.queue),
            watching: self.parts.watching(p),
            announcements: self.parts.announcements(p),
        }
        .push(&mut invocation);
        ReplayArgs {
            task_id,
            events_maxlen: keys::EVENTS_MAXLEN,
            ttl_secs: kind.result_ttl.as_secs(),
        }
        .push(&mut invocation);
        let replayed: i64 = invocation.invoke_async(&mut self.conn.clone()).await?;
        Ok(replayed == 1)
    }

    /// Appends an event that changes no state (streamed text) to a task's events.
    pub async fn append_event(
        &self,
        task_id: &str,
        name: &str,
        mut data: Json,
    ) -> redis::RedisResult<()> {
        data["task_id"] = task_id.into();
        data["at_us"] = jiff::Timestamp::now().as_microsecond().into();
        let p = self.parts.of(task_id);
        let mut invocation = self.scripts.append.prepare_invoke();
        AppendKeys {
            events: self.parts.events(task_id),
            watching: self.parts.watching(p),
            announcements: self.parts.announcements(p),
        }
        .push(&mut invocation);
        AppendArgs {
            name,
            data: data.to_string(),
            events_maxlen: keys::EVENTS_MAXLEN,
        }
        .push(&mut invocation);
        let _: i64 = invocation.invoke_async(&mut self.conn.clone()).await?;
        Ok(())
    }

    /// The webhook's delivery state (`pending`, `delivered`, `failed`) on the task or batch it
    /// announces; nothing when that record has expired.
    pub async fn set_webhook_state(&self, record: &str, state: &str) -> redis::RedisResult<()> {
        let _: i64 = self
            .scripts
            .webhook_state
            .key(record)
            .arg(state)
            .invoke_async(&mut self.conn.clone())
            .await?;
        Ok(())
    }
}

/// An `EVALSHA` of a loaded script with `keys` keys, for its keys and arguments to follow.
fn evalsha(hash: &str, keys: usize) -> redis::Cmd {
    let mut call = redis::cmd("EVALSHA");
    call.arg(hash).arg(keys);
    call
}

/// `(entry id, task id, job)` of the job entries of a read; others are skipped (the start
/// script never sees them; they stay pending until reclaimed and dropped).
pub(super) fn job_entries(
    reply: Option<redis::streams::StreamReadReply>,
) -> Vec<(String, String, String)> {
    let mut entries = Vec::new();
    for stream in reply.map(|r| r.keys).unwrap_or_default() {
        for id in stream.ids {
            let task_id: Option<String> = id.get("t");
            let job: Option<String> = id.get("j");
            if let (Some(task_id), Some(job)) = (task_id, job) {
                entries.push((id.id, task_id, job));
            }
        }
    }
    entries
}
