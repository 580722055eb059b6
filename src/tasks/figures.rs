//! How much work the queues hold right now, read from Redis in one pipelined round trip: each
//! job kind's stream (length and entries ever added), its consumers (the workers, with what
//! they hold), its delayed set, the dead set, and the workers' heartbeats. `/metrics` shows the
//! counts as gauges, the dashboard the whole of it; also the tasks a queue holds and one task's
//! events, for operators.
//!
//! Every worker pool checks in to `ai:workers` every third of its visibility timeout (the
//! engine's upkeep), jobs or not: a pool's last heartbeat is its age there, and one silent for
//! longer than the visibility timeout has stopped. For a consumer with no heartbeat (a process
//! from before heartbeats) the consumer's `idle` stands in; before Redis 7.2 that only moves when
//! it gets or holds jobs.

use std::collections::HashMap;
use std::time::Duration;

use redis::{RedisResult, Value};
use serde::Serialize;

use super::keys;
use super::store::TaskStore;

/// The consumer `reclaim.lua` claims silent workers' entries as; not a worker.
const REAPER: &str = "reaper";

/// One job kind's queue.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct QueueFigures {
    pub kind: String,
    pub queue: String,
    /// Entries in the stream: waiting, and taken but not finished.
    pub depth: u64,
    /// Entries a worker holds (the consumers' pending entries).
    pub in_flight: u64,
    /// Tasks waiting for a retry, and inline runs' leases (the delayed set).
    pub retrying: u64,
    /// Stream entries ever added and since removed: attempts that ended (finished, retried or
    /// dead). Its rate is the kind's throughput.
    pub finished_total: u64,
    /// Attempts ended per second over the last minute: a reader that compares two readings
    /// fills it (the dashboard's live stream); `null` in one reading.
    pub finished_per_sec: Option<f64>,
    /// Workers known to be running now (`busy`, `waiting`).
    pub workers_active: usize,
    /// Every consumer of the queue's group, stopped ones included.
    pub workers_total: usize,
}

/// What a worker is doing, as far as Redis can tell.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum WorkerStatus {
    /// Holds jobs and heart-beats them.
    Busy,
    /// Holds nothing and reads the queue (Redis 7.2+ only: seen by its read attempts).
    Waiting,
    /// Holds nothing; its last activity is `idle_ms` ago (before Redis 7.2 nothing tells
    /// whether it still runs).
    Idle,
    /// Holds jobs but has not heart-beaten them within the visibility timeout: it stopped, and
    /// its jobs are being re-queued.
    Stalled,
    /// Silent beyond the visibility timeout (Redis 7.2+): it stopped.
    Gone,
}

/// One consumer of a queue's group: one worker pool of one process.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct WorkerView {
    /// `<kind>@<host>:<pid>:<random>`.
    pub name: String,
    pub kind: String,
    /// Entries it holds now.
    pub pending: u64,
    /// Milliseconds since its last activity (see the module docs).
    pub idle_ms: u64,
    pub status: WorkerStatus,
}

impl WorkerStatus {
    /// `heartbeat`: `idle` counts read attempts (Redis 7.2+).
    fn of(pending: u64, idle: Duration, visibility: Duration, heartbeat: bool) -> Self {
        match (pending > 0, idle < visibility, heartbeat) {
            (true, true, _) => Self::Busy,
            (true, false, _) => Self::Stalled,
            (false, true, true) => Self::Waiting,
            (false, false, true) => Self::Gone,
            (false, _, false) => Self::Idle,
        }
    }

    fn active(self) -> bool {
        matches!(self, Self::Busy | Self::Waiting)
    }
}

/// What one round trip found.
#[derive(Debug, Clone)]
pub struct EngineFigures {
    /// Per job kind, in priority order.
    pub queues: Vec<QueueFigures>,
    /// The most recently active workers first.
    pub workers: Vec<WorkerView>,
    /// Dead tasks listed (`ai:dead`, every kind).
    pub dead: u64,
}

/// One kind's queue, summed over the partitions.
#[derive(Clone, Default)]
struct QueueSums {
    depth: u64,
    added: u64,
    retrying: u64,
    consumers: Vec<HashMap<String, Value>>,
}

fn number(map: &HashMap<String, Value>, key: &str) -> u64 {
    map.get(key)
        .and_then(|v| redis::from_redis_value_ref::<u64>(v).ok())
        .unwrap_or(0)
}

/// Adds one partition's consumers (`XINFO CONSUMERS`) to `all`: a pool is one consumer in every
/// partition's group, so its pending entries add up and its idle time is the least.
fn merge_consumers(all: &mut Vec<HashMap<String, Value>>, consumers: Vec<HashMap<String, Value>>) {
    for consumer in consumers {
        let name = consumer.get("name").cloned();
        let Some(seen) = all.iter_mut().find(|c| c.get("name") == name.as_ref()) else {
            all.push(consumer);
            continue;
        };
        let pending = number(seen, "pending") + number(&consumer, "pending");
        seen.insert("pending".into(), Value::Int(pending as i64));
        if number(&consumer, "idle") < number(seen, "idle") {
            seen.insert("idle".into(), Value::Int(number(&consumer, "idle") as i64));
        }
        if !consumer.contains_key("inactive") {
            seen.remove("inactive");
        }
    }
}

/// Workers listed at most (the most recently active first); a worker process that stopped leaves
/// its consumer behind, and those are only counted beyond this.
const MAX_WORKERS: usize = 100;

impl TaskStore {
    /// Every kind's queue figures and workers, and the dead count. A queue that no worker has
    /// served yet (no stream, no group) counts zeros.
    pub async fn figures(&self) -> RedisResult<EngineFigures> {
        let kinds = self.kinds().by_priority();
        let parts = self.partitions();
        // One pipeline per partition (its keys share a slot), then the worker check-ins.
        let mut per_kind: Vec<QueueSums> = vec![QueueSums::default(); kinds.len()];
        let mut dead = 0;
        for p in parts.all() {
            let mut pipe = redis::pipe();
            for kind in &kinds {
                let queue = parts.queue(p, &kind.queue);
                pipe.cmd("XINFO").arg("STREAM").arg(&queue);
                pipe.cmd("XINFO")
                    .arg("CONSUMERS")
                    .arg(&queue)
                    .arg(keys::GROUP);
                pipe.cmd("ZCARD").arg(parts.delayed(p, &kind.queue));
            }
            pipe.cmd("ZCARD").arg(parts.dead(p));
            let replies: Vec<RedisResult<Value>> = pipe
                .ignore_errors()
                .query_async(&mut self.conn.clone())
                .await?;
            let mut replies = replies.into_iter();
            for sums in per_kind.iter_mut() {
                // "ERR no such key" and "NOGROUP" mean an empty queue; anything else is a real
                // failure.
                let stream: HashMap<String, Value> = absent_as_default(replies.next())?;
                let consumers: Vec<HashMap<String, Value>> = absent_as_default(replies.next())?;
                let retrying: u64 = absent_as_default(replies.next())?;
                sums.depth += number(&stream, "length");
                sums.added += number(&stream, "entries-added");
                sums.retrying += retrying;
                merge_consumers(&mut sums.consumers, consumers);
            }
            dead += absent_as_default::<u64>(replies.next())?;
        }
        let beats: Vec<(String, f64)> = absent_as_default(Some(
            redis::cmd("ZRANGE")
                .arg(keys::WORKERS)
                .arg(0)
                .arg(-1)
                .arg("WITHSCORES")
                .query_async(&mut self.conn.clone())
                .await,
        ))?;
        let now_ms = jiff::Timestamp::now().as_millisecond() as f64;
        let mut beat_age: HashMap<String, u64> = beats
            .into_iter()
            .map(|(name, at)| (name, (now_ms - at).max(0.0) as u64))
            .collect();
        let mut queues = Vec::with_capacity(kinds.len());
        let mut workers = Vec::new();
        for (kind, sums) in kinds.iter().zip(per_kind) {
            let QueueSums {
                depth,
                added,
                retrying,
                consumers,
            } = sums;
            let mut in_flight = 0;
            let mut active = 0;
            let mut total = 0;
            for consumer in &consumers {
                let name = consumer
                    .get("name")
                    .and_then(|v| redis::from_redis_value_ref::<String>(v).ok())
                    .unwrap_or_default();
                let pending = number(consumer, "pending");
                in_flight += pending;
                if name == REAPER {
                    continue;
                }
                // A pool's own heartbeat, when it has one, is the truth; else what Redis knows.
                let (idle_ms, status) = match beat_age.remove(&name) {
                    Some(age) => (
                        age,
                        WorkerStatus::of(
                            pending,
                            Duration::from_millis(age),
                            kind.visibility_timeout,
                            true,
                        ),
                    ),
                    None => {
                        let idle_ms = number(consumer, "idle");
                        let status = WorkerStatus::of(
                            pending,
                            Duration::from_millis(idle_ms),
                            kind.visibility_timeout,
                            consumer.contains_key("inactive"),
                        );
                        (idle_ms, status)
                    }
                };
                total += 1;
                active += usize::from(status.active());
                workers.push(WorkerView {
                    name,
                    kind: kind.name.clone(),
                    pending,
                    idle_ms,
                    status,
                });
            }
            // Pools that check in but never took a job have no consumer entry yet.
            let prefix = format!("{}@", kind.name);
            let quiet: Vec<(String, u64)> = beat_age
                .iter()
                .filter(|(name, _)| name.starts_with(&prefix))
                .map(|(name, age)| (name.clone(), *age))
                .collect();
            for (name, age) in quiet {
                beat_age.remove(&name);
                let status =
                    WorkerStatus::of(0, Duration::from_millis(age), kind.visibility_timeout, true);
                total += 1;
                active += usize::from(status.active());
                workers.push(WorkerView {
                    name,
                    kind: kind.name.clone(),
                    pending: 0,
                    idle_ms: age,
                    status,
                });
            }
            queues.push(QueueFigures {
                kind: kind.name.clone(),
                queue: kind.queue.clone(),
                depth,
                in_flight,
                retrying,
                finished_total: added.saturating_sub(depth),
                finished_per_sec: None,
                workers_active: active,
                workers_total: total,
            });
        }
        workers.sort_by(|a, b| {
            a.idle_ms
                .cmp(&b.idle_ms)
                .then(a.kind.cmp(&b.kind))
                .then(a.name.cmp(&b.name))
        });
        workers.truncate(MAX_WORKERS);
        Ok(EngineFigures {
            queues,
            workers,
            dead,
        })
    }

    /// The ids of the tasks the queues hold (queued or running, newest first) and of those
    /// waiting in their delayed sets (retrying, or running inline), at most `limit` of each
    /// per kind.
    pub async fn open_task_ids(&self, limit: usize) -> RedisResult<Vec<String>> {
        let parts = self.partitions();
        let mut calls = Vec::new();
        for kind in self.kinds().by_priority() {
            for p in parts.all() {
                let mut entries = redis::cmd("XREVRANGE");
                entries
                    .arg(parts.queue(p, &kind.queue))
                    .arg("+")
                    .arg("-")
                    .arg("COUNT")
                    .arg(limit);
                let mut delayed = redis::cmd("ZREVRANGE");
                delayed
                    .arg(parts.delayed(p, &kind.queue))
                    .arg(0)
                    .arg(limit.saturating_sub(1));
                calls.extend([entries, delayed]);
            }
        }
        let replies = self.conn.clone().query_each(calls).await?;
        let mut ids = Vec::new();
        for pair in replies.chunks(2) {
            let entries: Vec<(String, HashMap<String, Value>)> =
                redis::from_redis_value_ref(&pair[0])?;
            for (_, fields) in entries {
                if let Some(id) = fields
                    .get("t")
                    .and_then(|v| redis::from_redis_value_ref::<String>(v).ok())
                {
                    ids.push(id);
                }
            }
            if let Some(delayed) = pair.get(1) {
                ids.extend(redis::from_redis_value_ref::<Vec<String>>(delayed)?);
            }
        }
        let mut seen = std::collections::HashSet::new();
        ids.retain(|id| seen.insert(id.clone()));
        Ok(ids)
    }

    /// A task's events, oldest first (the stream keeps the last 1,000): `(id, fields)`.
    pub async fn events_of(
        &self,
        task_id: &str,
    ) -> RedisResult<Vec<(String, HashMap<String, String>)>> {
        redis::cmd("XRANGE")
            .arg(self.partitions().events(task_id))
            .arg("-")
            .arg("+")
            .arg("COUNT")
            .arg(keys::EVENTS_MAXLEN)
            .query_async(&mut self.conn.clone())
            .await
    }
}

/// The value of a reply, or its type's default when the key or group does not exist yet.
fn absent_as_default<T: redis::FromRedisValue + Default>(
    reply: Option<RedisResult<Value>>,
) -> RedisResult<T> {
    match reply {
        None => Ok(T::default()),
        Some(Ok(value)) => Ok(redis::from_redis_value(value)?),
        Some(Err(err)) => {
            let text = err.to_string().to_lowercase();
            if text.contains("no such key") || text.contains("nogroup") {
                Ok(T::default())
            } else {
                Err(err)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::WorkerStatus::{self, *};
    use std::time::Duration;

    #[test]
    fn a_workers_status_follows_what_it_holds_and_what_idle_means() {
        let vt = Duration::from_secs(15);
        let of = |pending, idle_secs, heartbeat| {
            WorkerStatus::of(pending, Duration::from_secs(idle_secs), vt, heartbeat)
        };
        assert_eq!(
            [
                of(2, 3, false),
                of(2, 20, false),
                of(0, 3, false),
                of(0, 900, false)
            ],
            [Busy, Stalled, Idle, Idle]
        );
        assert_eq!(
            [
                of(2, 3, true),
                of(2, 20, true),
                of(0, 1, true),
                of(0, 20, true)
            ],
            [Busy, Stalled, Waiting, Gone]
        );
    }
}
