//! The event fan-out of one process: a few Redis readers feed every subscriber (SSE,
//! WebSocket), so ten thousand browsers cost a blocked connection per partition, not ten
//! thousand.
//!
//! The hub registers the streams its subscribers watch in their partition's watching set (a
//! user's feed in every partition's; with an expiry it keeps pushing forward), and every append
//! to a registered stream also appends the stream's key to the partition's announcement stream;
//! appends nobody watches announce nothing, so a drain with no browser open pays nothing for
//! this. Readers block on the announcement streams (one read for all partitions on one server;
//! one per partition on a cluster, where a read may not span slots) and mark what changed; the
//! deliverer reads (`XRANGE`, pipelined per slot) only the watched streams that changed, so a
//! round costs what changed, not what is watched. It is the only one that delivers, so each
//! subscriber gets its events in order, once. Each subscriber has its own cursor (the last event
//! id it has seen) and a bounded queue; one that falls behind is dropped and told to resync from
//! its last event id instead of growing memory. A new subscription marks its stream changed and
//! wakes the deliverer, so its backlog flows at once.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::storage::{RedisConnection, RedisServers};
use redis::streams::{StreamReadOptions, StreamReadReply};
use tokio::sync::{Notify, mpsc};

use super::keys::{self, Partitions};

/// Events queued per subscriber before it counts as too slow.
const SUBSCRIBER_BUFFER: usize = 256;
/// Longest one read blocks; also bounds how late a subscription joins if an unblock is missed.
const BLOCK: Duration = Duration::from_millis(250);
/// How long a registration in a watching set lasts, and how often the reader renews them. A
/// stream stays registered up to this long after its last subscriber left (harmless: a few
/// announcements nobody reads); another process may still be watching it.
const WATCH_TTL: Duration = Duration::from_secs(60);
const WATCH_RENEW: Duration = Duration::from_secs(20);
/// How often an idle reader looks whether someone subscribed.
const IDLE_CHECK: Duration = Duration::from_millis(50);
/// Entries read from one stream per round.
const READ_BATCH: usize = 256;
const FINAL_EVENTS: &[&str] = &["succeeded", "failed", "cancelled", "dead"];

/// One entry of a watched stream: a task's event, or (on a user's feed) a new task's id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskEvent {
    /// The task the event belongs to (for a feed entry: the new task).
    pub task_id: String,
    /// The stream entry id: what `Last-Event-ID` carries.
    pub id: String,
    pub name: String,
    /// JSON.
    pub data: String,
}

impl TaskEvent {
    pub fn is_final(&self) -> bool {
        FINAL_EVENTS.contains(&self.name.as_str())
    }
}

struct Subscriber {
    id: u64,
    cursor: String,
    tx: mpsc::Sender<TaskEvent>,
}

#[derive(Default)]
struct Watched {
    /// Subscribers by stream key.
    tasks: HashMap<String, Vec<Subscriber>>,
    /// Watched streams that may have entries their subscribers have not seen.
    dirty: std::collections::HashSet<String>,
}

#[derive(Clone)]
pub struct Hub {
    inner: Arc<Inner>,
}

struct Inner {
    servers: RedisServers,
    control: RedisConnection,
    parts: Partitions,
    watched: Mutex<Watched>,
    next_id: AtomicU64,
    /// Wakes the deliverer: something is dirty.
    wake: Notify,
    /// Wakes idle readers: someone subscribed.
    watchers: Notify,
    started: std::sync::Once,
}

/// A live subscription; dropping it unsubscribes.
pub struct Subscription {
    pub events: mpsc::Receiver<TaskEvent>,
    hub: Hub,
    key: String,
    id: u64,
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.hub.remove(&self.key, self.id);
    }
}

impl Hub {
    pub fn new(servers: RedisServers, control: RedisConnection, parts: Partitions) -> Self {
        Self {
            inner: Arc::new(Inner {
                servers,
                control,
                parts,
                watched: Mutex::default(),
                next_id: AtomicU64::new(1),
                wake: Notify::new(),
                watchers: Notify::new(),
                started: std::sync::Once::new(),
            }),
        }
    }

    /// Events of `task_id` after `cursor` (`0-0` for all of them), then live ones.
    pub async fn subscribe(&self, task_id: &str, cursor: &str) -> Subscription {
        self.subscribe_stream(&self.inner.parts.events(task_id), cursor)
            .await
    }

    /// A user's feed of new tasks after `cursor`, then live entries.
    pub async fn subscribe_feed(&self, user_id: &str, cursor: &str) -> Subscription {
        self.subscribe_stream(&keys::user_feed(user_id), cursor)
            .await
    }

    /// Entries of the stream at `key` after `cursor`, then live ones.
    pub async fn subscribe_stream(&self, key: &str, cursor: &str) -> Subscription {
        let inner = &self.inner;
        inner.started.call_once(|| {
            tokio::spawn(self.clone().deliver_loop());
            let groups: Vec<Vec<usize>> = if inner.servers.is_cluster() {
                inner.parts.all().map(|p| vec![p]).collect()
            } else {
                vec![inner.parts.all().collect()]
            };
            for group in groups {
                tokio::spawn(self.clone().read_loop(group));
            }
        });
        let (tx, events) = mpsc::channel(SUBSCRIBER_BUFFER);
        let id = inner.next_id.fetch_add(1, Ordering::Relaxed);
        // Registered before the first read: whatever is appended after this is announced, and
        // the first read (below, marked dirty) sees everything before it. If Redis is away, the
        // hub registers every watched stream again when it renews.
        let _ = self.register([key]).await;
        {
            let mut watched = self.lock();
            watched
                .tasks
                .entry(key.to_owned())
                .or_default()
                .push(Subscriber {
                    id,
                    cursor: valid_cursor(cursor),
                    tx,
                });
            watched.dirty.insert(key.to_owned());
        }
        inner.wake.notify_one();
        inner.watchers.notify_waiters();
        Subscription {
            events,
            hub: self.clone(),
            key: key.to_owned(),
            id,
        }
    }

    /// How many subscribers this process serves.
    pub fn subscribers(&self) -> usize {
        self.lock().tasks.values().map(Vec::len).sum()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Watched> {
        self.inner.watched.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn remove(&self, key: &str, id: u64) {
        let mut watched = self.lock();
        if let Some(subscribers) = watched.tasks.get_mut(key) {
            subscribers.retain(|s| s.id != id);
            if subscribers.is_empty() {
                watched.tasks.remove(key);
            }
        }
    }

    /// The changed watched streams with the oldest cursor among their subscribers.
    fn take_dirty(&self) -> Vec<(String, String)> {
        let mut watched = self.lock();
        let dirty: Vec<String> = watched.dirty.drain().collect();
        dirty
            .into_iter()
            .filter_map(|key| {
                let cursor = watched
                    .tasks
                    .get(&key)?
                    .iter()
                    .map(|s| s.cursor.clone())
                    .min_by(|a, b| compare_ids(a, b))?;
                Some((key, cursor))
            })
            .collect()
    }

    fn mark_dirty(&self, keys: impl IntoIterator<Item = String>) {
        let mut any = false;
        {
            let mut watched = self.lock();
            for key in keys {
                if watched.tasks.contains_key(&key) {
                    watched.dirty.insert(key);
                    any = true;
                }
            }
        }
        if any {
            self.inner.wake.notify_one();
        }
    }

    /// Every watched stream is dirty (after a reader lost its connection, or a renewal).
    fn mark_all_dirty(&self) {
        let all: Vec<String> = self.lock().tasks.keys().cloned().collect();
        self.mark_dirty(all);
    }

    /// Registers (or renews) `keys` in their partitions' watching sets until [`WATCH_TTL`] from
    /// now: a task's stream in its partition, a user's feed in every one.
    async fn register<K: AsRef<str>>(
        &self,
        keys: impl IntoIterator<Item = K>,
    ) -> redis::RedisResult<()> {
        let parts = &self.inner.parts;
        let expiry = unix_ms() + WATCH_TTL.as_millis() as u64;
        let mut calls = Vec::new();
        for key in keys {
            let key = key.as_ref();
            let partitions: Vec<usize> = match Partitions::task_of_events(key) {
                Some(task_id) => vec![parts.of(task_id)],
                None => parts.all().collect(),
            };
            for p in partitions {
                let mut call = redis::cmd("ZADD");
                call.arg(parts.watching(p)).arg("GT").arg(expiry).arg(key);
                calls.push(call);
            }
        }
        self.inner.control.clone().query_each(calls).await.map(drop)
    }

    /// Renews every registration and forgets expired ones, every [`WATCH_RENEW`].
    async fn renew(&self) -> redis::RedisResult<()> {
        let all: Vec<String> = self.lock().tasks.keys().cloned().collect();
        self.register(&all).await?;
        let parts = &self.inner.parts;
        let calls = parts
            .all()
            .map(|p| {
                let mut call = redis::cmd("ZREMRANGEBYSCORE");
                call.arg(parts.watching(p)).arg("-inf").arg(unix_ms());
                call
            })
            .collect();
        self.inner.control.clone().query_each(calls).await.map(drop)
    }

    /// Reads what changed and hands it out, whenever something is dirty.
    async fn deliver_loop(self) {
        let mut renewed = std::time::Instant::now();
        loop {
            let dirty = self.take_dirty();
            if dirty.is_empty() {
                let _ = tokio::time::timeout(WATCH_RENEW, self.inner.wake.notified()).await;
            } else if let Err(err) = self.deliver(dirty.clone()).await {
                tracing::warn!(%err, "event delivery lost Redis; retrying");
                self.mark_dirty(dirty.into_iter().map(|(key, _)| key));
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            if renewed.elapsed() >= WATCH_RENEW {
                renewed = std::time::Instant::now();
                if let Err(err) = self.renew().await {
                    tracing::warn!(%err, "event reader could not renew its watches");
                }
            }
        }
    }

    async fn deliver(&self, dirty: Vec<(String, String)>) -> redis::RedisResult<()> {
        let calls = dirty
            .iter()
            .map(|(key, from)| {
                let mut call = redis::cmd("XRANGE");
                call.arg(key)
                    .arg(format!("({from}"))
                    .arg("+")
                    .arg("COUNT")
                    .arg(READ_BATCH);
                call
            })
            .collect();
        let replies = self.inner.control.clone().query_each(calls).await?;
        let mut more = Vec::new();
        for ((key, _), reply) in dirty.into_iter().zip(replies) {
            let entries = redis::from_redis_value::<redis::streams::StreamRangeReply>(reply)?.ids;
            if entries.len() == READ_BATCH {
                more.push(key.clone());
            }
            self.dispatch(&key, entries);
        }
        self.mark_dirty(more);
        Ok(())
    }

    /// Waits for announcements on the partitions of `group` and marks what they name dirty.
    async fn read_loop(self, group: Vec<usize>) {
        let streams: Vec<String> = group
            .iter()
            .map(|&p| self.inner.parts.announcements(p))
            .collect();
        let mut conn: Option<(RedisConnection, Vec<String>)> = None;
        loop {
            if self.lock().tasks.is_empty() {
                // Short: a subscription between the check and the wait only waits this long.
                let _ = tokio::time::timeout(IDLE_CHECK, self.inner.watchers.notified()).await;
                continue;
            }
            let Some((connection, cursors)) = conn.as_mut() else {
                match self.connect(&streams).await {
                    Ok(connected) => {
                        conn = Some(connected);
                        // Whatever happened while disconnected: read every watched stream.
                        self.mark_all_dirty();
                    }
                    Err(err) => {
                        tracing::warn!(%err, "event reader cannot reach Redis; retrying");
                        tokio::time::sleep(Duration::from_millis(200)).await;
                    }
                }
                continue;
            };
            let options = StreamReadOptions::default()
                .count(1000)
                .block(BLOCK.as_millis() as usize);
            let read: redis::RedisResult<Option<StreamReadReply>> =
                redis::AsyncCommands::xread_options(connection, &streams, cursors, &options).await;
            match read {
                Ok(reply) => {
                    let mut changed = Vec::new();
                    for stream in reply.into_iter().flat_map(|r| r.keys) {
                        let Some(at) = streams.iter().position(|s| *s == stream.key) else {
                            continue;
                        };
                        for entry in stream.ids {
                            cursors[at] = entry.id.clone();
                            // One notification may name several streams, separated by spaces.
                            if let Some(keys) = entry.get::<String>("k") {
                                changed.extend(
                                    keys.split(' ').filter(|k| !k.is_empty()).map(str::to_owned),
                                );
                            }
                        }
                    }
                    self.mark_dirty(changed);
                }
                Err(err) => {
                    tracing::warn!(%err, "event reader lost Redis; reconnecting");
                    conn = None;
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        }
    }

    /// A connection for a reader and the current end of each of its announcement streams.
    async fn connect(
        &self,
        streams: &[String],
    ) -> redis::RedisResult<(RedisConnection, Vec<String>)> {
        let mut conn = self.inner.servers.dedicated(BLOCK).await?;
        let mut cursors = Vec::with_capacity(streams.len());
        for stream in streams {
            let last: Vec<(String, HashMap<String, String>)> = redis::cmd("XREVRANGE")
                .arg(stream)
                .arg("+")
                .arg("-")
                .arg("COUNT")
                .arg(1)
                .query_async(&mut conn)
                .await?;
            cursors.push(
                last.into_iter()
                    .next()
                    .map_or_else(|| "0-0".to_owned(), |(id, _)| id),
            );
        }
        Ok((conn, cursors))
    }

    /// Hands each entry to the subscribers that have not seen it; drops the ones that are full.
    fn dispatch(&self, key: &str, entries: Vec<redis::streams::StreamId>) {
        let mut watched = self.lock();
        let Some(subscribers) = watched.tasks.get_mut(key) else {
            return;
        };
        for entry in entries {
            let task_id = Partitions::task_of_events(key)
                .map(str::to_owned)
                .or_else(|| entry.get("t"))
                .unwrap_or_default();
            let event = TaskEvent {
                task_id,
                id: entry.id.clone(),
                name: entry.get("event").unwrap_or_default(),
                data: entry.get("data").unwrap_or_default(),
            };
            subscribers.retain_mut(|subscriber| {
                if compare_ids(&event.id, &subscriber.cursor).is_le() {
                    return true;
                }
                match subscriber.tx.try_send(event.clone()) {
                    Ok(()) => {
                        subscriber.cursor = event.id.clone();
                        true
                    }
                    // Too slow, or gone: it resyncs from its cursor.
                    Err(_) => false,
                }
            });
        }
        if subscribers.is_empty() {
            watched.tasks.remove(key);
        }
    }
}

fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// A stream id as given by a client, or `0-0` when it is not one.
fn valid_cursor(cursor: &str) -> String {
    let valid = cursor
        .split_once('-')
        .is_some_and(|(ms, seq)| ms.parse::<u64>().is_ok() && seq.parse::<u64>().is_ok());
    if valid {
        cursor.to_owned()
    } else {
        "0-0".to_owned()
    }
}

/// Orders stream ids `ms-seq` numerically.
pub fn compare_ids(a: &str, b: &str) -> std::cmp::Ordering {
    let parse = |id: &str| {
        let (ms, seq) = id.split_once('-').unwrap_or((id, "0"));
        (
            ms.parse::<u64>().unwrap_or(0),
            seq.parse::<u64>().unwrap_or(0),
        )
    };
    parse(a).cmp(&parse(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_ids_order_numerically() {
        assert!(compare_ids("1700000000000-10", "1700000000000-9").is_gt());
        assert!(compare_ids("999-0", "1000-0").is_lt());
        assert!(compare_ids("5-1", "5-1").is_eq());
    }

    #[test]
    fn cursors_and_keys() {
        assert_eq!(valid_cursor("1700000000000-3"), "1700000000000-3");
        assert_eq!(valid_cursor("nonsense"), "0-0");
        assert_eq!(valid_cursor(""), "0-0");
    }
}
