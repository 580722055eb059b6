//! Every Redis operation of the engine: each state change is one Lua script, atomic together
//! with the queue operation it belongs to, so several web and worker processes can share one
//! Redis safely.

use std::time::Duration;

use redis::aio::ConnectionManager;
use serde_json::Value as Json;

use super::hooks::TaskLife;
use super::keys;
use super::kinds::{JobKind, JobKinds};
use super::scripts::{
    CreateArgs, CreateKeys, FinishArgs, FinishItemArgs, FinishItemKeys, FinishKeys, Scripts,
    StartArgs, StartItemArgs, StartKeys,
};
use crate::facts::TaskFacts;
use crate::outcome::Outcome;

/// One job as the start script left it.
#[derive(Debug)]
pub struct Started {
    pub entry_id: String,
    pub task_id: String,
    /// The job's JSON (empty when the caller already has it).
    pub job: String,
    /// The attempt number (> 0); 0 when skipped (already final or expired); -1 when it died.
    pub attempt: i64,
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
}

impl Ending {
    fn name(self) -> &'static str {
        match self {
            Ending::Succeeded => "succeeded",
            Ending::Failed => "failed",
            Ending::Dead => "dead",
            Ending::Retrying(_) => "retrying",
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

/// The keys and arguments of `cancel.lua` for one task of the queue `queue`.
fn cancel_call(queue: &str, task_id: &str, owner: Option<&str>) -> ([String; 3], [String; 4]) {
    (
        [
            keys::task(task_id),
            keys::events(task_id),
            keys::delayed(queue),
        ],
        [
            task_id.to_owned(),
            owner.unwrap_or("").to_owned(),
            keys::EVENTS_MAXLEN.to_string(),
            keys::CANCEL_CHANNEL.to_owned(),
        ],
    )
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
    pub(super) conn: ConnectionManager,
    client: redis::Client,
    kinds: JobKinds,
    pub(super) scripts: Scripts,
}

impl TaskStore {
    pub fn new(conn: ConnectionManager, client: redis::Client, kinds: JobKinds) -> Self {
        Self(std::sync::Arc::new(StoreParts {
            conn,
            client,
            kinds,
            scripts: Scripts::new(),
        }))
    }

    pub fn kinds(&self) -> &JobKinds {
        &self.kinds
    }

    /// A connection of its own, for blocking reads that must not stall shared traffic; it waits
    /// up to `blocking` plus a margin for an answer.
    pub async fn dedicated_connection(
        &self,
        blocking: Duration,
    ) -> redis::RedisResult<redis::aio::MultiplexedConnection> {
        let config = redis::AsyncConnectionConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(1)))
            .set_response_timeout(Some(blocking + Duration::from_secs(2)));
        self.client
            .get_multiplexed_async_connection_with_config(&config)
            .await
    }

    pub fn client(&self) -> &redis::Client {
        &self.client
    }

    /// The shared connection, for modules that keep records of their own beside the tasks'
    /// (the batches).
    pub fn connection(&self) -> ConnectionManager {
        self.conn.clone()
    }

    /// Creates the consumer group of a kind's queue (and the stream) if missing.
    pub async fn ensure_group(&self, kind: &JobKind) -> redis::RedisResult<()> {
        let mut conn = self.conn.clone();
        let created: redis::RedisResult<()> = redis::cmd("XGROUP")
            .arg("CREATE")
            .arg(keys::queue(&kind.queue))
            .arg(keys::GROUP)
            .arg("0")
            .arg("MKSTREAM")
            .query_async(&mut conn)
            .await;
        match created {
            Err(err) if err.code() == Some("BUSYGROUP") => Ok(()),
            other => other,
        }
    }

    /// The keys and arguments of `create.lua` for `task`, queued or (with a lease) inline.
    fn create_call(&self, task: &NewTask, mode: Mode) -> (CreateKeys, CreateArgs) {
        let kind = self.kinds.kind(&task.kind);
        let facts = &task.facts;
        let keys = CreateKeys {
            task: keys::task(&facts.task_id),
            events: keys::events(&facts.task_id),
            user_tasks: keys::user_tasks(&facts.user_id),
            queue: match mode {
                Mode::Inline(_) => keys::delayed(&kind.queue),
                Mode::Queue | Mode::Hold => keys::queue(&kind.queue),
            },
            user_feed: keys::user_feed(&facts.user_id),
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
        };
        (keys, args)
    }

    async fn create(&self, task: &NewTask, mode: Mode) -> redis::RedisResult<bool> {
        let (keys, args) = self.create_call(task, mode);
        let mut invocation = self.scripts.create.prepare_invoke();
        keys.push(&mut invocation);
        args.push(&mut invocation);
        let created: i64 = invocation.invoke_async(&mut self.conn.clone()).await?;
        Ok(created != 0)
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
            .arg(keys::delayed(&kind.queue))
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
        let hash = self
            .scripts
            .create
            .prepare_invoke()
            .load_async(&mut conn)
            .await?;
        let mut pipe = redis::pipe();
        for task in tasks {
            let (keys, args) = self.create_call(task, mode);
            let mut call = redis::cmd("EVALSHA");
            call.arg(&hash).arg(CreateKeys::NAMES.len());
            keys.push_cmd(&mut call);
            args.push_cmd(&mut call);
            pipe.add_command(call).ignore();
        }
        pipe.query_async::<()>(&mut conn).await
    }

    /// Takes up to `count` new entries of the kind's queue and marks them running, in one
    /// round trip (no blocking: an empty queue answers an empty list at once).
    pub async fn take_and_start(
        &self,
        kind: &JobKind,
        worker: &str,
        count: usize,
    ) -> redis::RedisResult<Vec<Started>> {
        self.start(kind, worker, count, &[]).await
    }

    /// Marks entries a blocking read already took running.
    pub async fn start_taken(
        &self,
        kind: &JobKind,
        worker: &str,
        entries: &[(String, String)],
    ) -> redis::RedisResult<Vec<Started>> {
        self.start(kind, worker, 0, entries).await
    }

    async fn start(
        &self,
        kind: &JobKind,
        worker: &str,
        count: usize,
        entries: &[(String, String)],
    ) -> redis::RedisResult<Vec<Started>> {
        let mut invocation = self.scripts.start.prepare_invoke();
        StartKeys {
            queue: keys::queue(&kind.queue),
            dead: keys::DEAD,
        }
        .push(&mut invocation);
        StartArgs {
            group: keys::GROUP,
            events_maxlen: keys::EVENTS_MAXLEN,
            worker,
            read_count: count,
        }
        .push(&mut invocation);
        for (entry, task_id) in entries {
            StartItemArgs { entry, task_id }.push(&mut invocation);
        }
        let flat: Vec<redis::Value> = invocation.invoke_async(&mut self.conn.clone()).await?;
        flat.chunks_exact(4)
            .map(|job| {
                Ok(Started {
                    entry_id: redis::from_redis_value_ref(&job[0])?,
                    task_id: redis::from_redis_value_ref(&job[1])?,
                    job: redis::from_redis_value_ref(&job[2])?,
                    attempt: redis::from_redis_value_ref(&job[3])?,
                })
            })
            .collect()
    }

    /// Records a batch of finished attempts and acknowledges their entries.
    pub async fn finish_batch(
        &self,
        kind: &JobKind,
        batch: &[Finish],
    ) -> redis::RedisResult<Vec<Finished>> {
        let mut invocation = self.scripts.finish.prepare_invoke();
        FinishKeys {
            queue: keys::queue(&kind.queue),
            dead: keys::DEAD,
            delayed: keys::delayed(&kind.queue),
        }
        .push(&mut invocation);
        FinishArgs {
            group: keys::GROUP,
            events_maxlen: keys::EVENTS_MAXLEN,
            ttl_secs: kind.result_ttl.as_secs(),
        }
        .push(&mut invocation);
        for finish in batch {
            FinishItemKeys {
                task: keys::task(&finish.task_id),
                events: keys::events(&finish.task_id),
            }
            .push(&mut invocation);
            FinishItemArgs {
                entry: finish.entry_id.as_deref().unwrap_or(""),
                task_id: &finish.task_id,
                ending: finish.ending.name(),
                outcome: serde_json::to_string(&finish.outcome).expect("an outcome serialises"),
                delay_ms: match finish.ending {
                    Ending::Retrying(delay) => delay.as_millis() as u64,
                    _ => 0,
                },
                tokens: finish.outcome.tokens_used(),
            }
            .push(&mut invocation);
        }
        let rows: Vec<FinishRow> = invocation.invoke_async(&mut self.conn.clone()).await?;
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

    /// Moves due retries and expired inline leases to the queue; returns how many moved and
    /// how long until the next one is due.
    pub async fn promote(
        &self,
        kind: &JobKind,
        limit: usize,
    ) -> redis::RedisResult<(u64, Option<Duration>)> {
        let (moved, next_ms): (u64, i64) = self
            .scripts
            .promote
            .key(keys::delayed(&kind.queue))
            .key(keys::queue(&kind.queue))
            .arg(limit)
            .arg(keys::EVENTS_MAXLEN)
            .invoke_async(&mut self.conn.clone())
            .await?;
        Ok((
            moved,
            (next_ms >= 0).then(|| Duration::from_millis(next_ms as u64)),
        ))
    }

    /// Re-queues entries whose consumer went silent for longer than the visibility timeout.
    pub async fn reclaim(&self, kind: &JobKind, limit: usize) -> redis::RedisResult<u64> {
        self.scripts
            .reclaim
            .key(keys::queue(&kind.queue))
            .arg(keys::GROUP)
            .arg(kind.visibility_timeout.as_millis() as u64)
            .arg(limit)
            .invoke_async(&mut self.conn.clone())
            .await
    }

    /// Resets the idle time of entries still being worked on, so they are not reclaimed.
    pub async fn heartbeat(
        &self,
        kind: &JobKind,
        consumer: &str,
        entry_ids: &[String],
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
        if entry_ids.is_empty() {
            return Ok(());
        }
        redis::cmd("XCLAIM")
            .arg(keys::queue(&kind.queue))
            .arg(keys::GROUP)
            .arg(consumer)
            .arg(0)
            .arg(entry_ids)
            .arg("JUSTID")
            .query_async::<()>(&mut conn)
            .await
    }

    /// Cancels a task of `owner` (any owner when `None`).
    /// Cancels many tasks of one kind in pipelines of 1,000 (a batch's items); tasks already
    /// final are left as they are. Returns the ids of the tasks it cancelled.
    pub async fn cancel_many(
        &self,
        kind: &JobKind,
        task_ids: &[String],
        owner: Option<&str>,
    ) -> redis::RedisResult<Vec<String>> {
        let mut conn = self.conn.clone();
        let hash = self
            .scripts
            .cancel
            .prepare_invoke()
            .load_async(&mut conn)
            .await?;
        let mut cancelled = Vec::new();
        for chunk in task_ids.chunks(1000) {
            let mut pipe = redis::pipe();
            for id in chunk {
                let (keys, args) = cancel_call(&kind.queue, id, owner);
                pipe.cmd("EVALSHA")
                    .arg(&hash)
                    .arg(keys.len())
                    .arg(&keys[..])
                    .arg(&args[..]);
            }
            let before: Vec<String> = pipe.query_async(&mut conn).await?;
            cancelled.extend(
                chunk
                    .iter()
                    .zip(before)
                    .filter(|(_, state)| matches!(Cancelled::of(state), Cancelled::From(_)))
                    .map(|(id, _)| id.clone()),
            );
        }
        Ok(cancelled)
    }

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
        let (keys, args) = cancel_call(&queue, task_id, owner);
        let before: String = self
            .scripts
            .cancel
            .key(&keys[..])
            .arg(&args[..])
            .invoke_async(&mut self.conn.clone())
            .await?;
        Ok(Cancelled::of(&before))
    }

    /// Re-queues a dead task with fresh attempts; false if it is not dead.
    pub async fn replay_dead(&self, task_id: &str) -> redis::RedisResult<bool> {
        let Some(record) = self.get(task_id).await? else {
            return Ok(false);
        };
        let Some(kind) = self.kinds.get(&record.kind) else {
            return Ok(false);
        };
        let replayed: i64 = self
            .scripts
            .replay
            .key(keys::task(task_id))
            .key(keys::events(task_id))
            .key(keys::DEAD)
            .key(keys::queue(&kind.queue))
            .arg(task_id)
            .arg(keys::EVENTS_MAXLEN)
            .arg(kind.result_ttl.as_secs())
            .invoke_async(&mut self.conn.clone())
            .await?;
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
        let _: i64 = self
            .scripts
            .append
            .key(keys::events(task_id))
            .arg(name)
            .arg(data.to_string())
            .arg(keys::EVENTS_MAXLEN)
            .invoke_async(&mut self.conn.clone())
            .await?;
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
