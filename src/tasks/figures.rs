//! How much work the queues hold right now, read in one pipelined round trip: what `/metrics`
//! shows as queue gauges.

use redis::{RedisResult, Value};

use super::keys;
use super::store::TaskStore;

/// One job kind's queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueFigures {
    pub kind: String,
    /// Entries in the stream (`XLEN`): waiting and taken but not yet acknowledged.
    pub depth: u64,
    /// Entries a worker took and has not finished (`XPENDING` of the `workers` group).
    pub in_flight: u64,
    /// Tasks waiting for a retry, and inline runs' leases (`ZCARD` of the delayed set).
    pub retrying: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EngineFigures {
    /// Per job kind, in priority order.
    pub queues: Vec<QueueFigures>,
    /// Dead tasks listed (`ai:dead`, every kind).
    pub dead: u64,
}

impl TaskStore {
    /// Every queue's figures and the dead set in one round trip. A queue no
    /// worker has served yet has no consumer group: its in-flight count is 0.
    pub async fn figures(&self) -> RedisResult<EngineFigures> {
        let kinds = self.kinds().by_priority();
        let mut pipe = redis::pipe();
        for kind in &kinds {
            pipe.cmd("XLEN").arg(keys::queue(&kind.queue));
            pipe.cmd("XPENDING")
                .arg(keys::queue(&kind.queue))
                .arg(keys::GROUP);
            pipe.cmd("ZCARD").arg(keys::delayed(&kind.queue));
        }
        pipe.cmd("ZCARD").arg(keys::DEAD);
        let replies: Vec<RedisResult<Value>> = pipe
            .ignore_errors()
            .query_async(&mut self.conn.clone())
            .await?;
        let mut replies = replies.into_iter();
        let mut next = |pending: bool| -> RedisResult<u64> {
            let Some(reply) = replies.next() else {
                return Ok(0);
            };
            Ok(match (reply, pending) {
                // XPENDING's summary: [count, lowest id, highest id, consumers].
                (Ok(value), true) => {
                    let summary: Vec<Value> = redis::from_redis_value(value)?;
                    match summary.into_iter().next() {
                        Some(count) => redis::from_redis_value(count)?,
                        None => 0,
                    }
                }
                // NOGROUP: no worker has created the group yet.
                (Err(_), true) => 0,
                (reply, false) => redis::from_redis_value(reply?)?,
            })
        };
        let mut queues = Vec::with_capacity(kinds.len());
        for kind in &kinds {
            queues.push(QueueFigures {
                kind: kind.name.clone(),
                depth: next(false)?,
                in_flight: next(true)?,
                retrying: next(false)?,
            });
        }
        Ok(EngineFigures {
            queues,
            dead: next(false)?,
        })
    }
}
