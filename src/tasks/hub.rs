//! The event fan-out of one process: a single Redis reader feeds every subscriber (SSE,
//! WebSocket), so ten thousand browsers cost one blocked connection, not ten thousand.
//!
//! The reader registers the streams its subscribers watch in `ai:watching` (with an expiry it
//! keeps pushing forward), and every append to a registered stream also appends the stream's key
//! to `ai:events`; appends nobody watches announce nothing, so a drain with no browser open pays
//! nothing for this. The reader blocks on `ai:events`, and reads (`XRANGE`, pipelined) only the
//! watched streams that changed, so a round costs what changed, not what is watched. It is the only one that delivers, so each
//! subscriber gets its events in order, once. Each subscriber has its own cursor (the last event
//! id it has seen) and a bounded queue; one that falls behind is dropped and told to resync from
//! its last event id instead of growing memory. A new subscription marks its stream changed and
//! interrupts the blocked read (`CLIENT UNBLOCK`), so its backlog flows at once.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use redis::aio::ConnectionManager;
use redis::streams::{StreamReadOptions, StreamReadReply};
use tokio::sync::{Notify, mpsc};

use super::keys;

/// Events queued per subscriber before it counts as too slow.
const SUBSCRIBER_BUFFER: usize = 256;
/// Longest one read blocks; also bounds how late a subscription joins if an unblock is missed.
const BLOCK: Duration = Duration::from_millis(250);
/// How long a registration in `ai:watching` lasts, and how often the reader renews them. A
/// stream stays registered up to this long after its last subscriber left (harmless: a few
/// announcements nobody reads); another process may still be watching it.
const WATCH_TTL: Duration = Duration::from_secs(60);
const WATCH_RENEW: Duration = Duration::from_secs(20);
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
    client: redis::Client,
    control: ConnectionManager,
    watched: Mutex<Watched>,
    next_id: AtomicU64,
    /// `CLIENT ID` of the reader's connection while it exists, else 0.
    reader_client: AtomicI64,
    wake: Notify,
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
    pub fn new(client: redis::Client, control: ConnectionManager) -> Self {
        Self {
            inner: Arc::new(Inner {
                client,
                control,
                watched: Mutex::default(),
                next_id: AtomicU64::new(1),
                reader_client: AtomicI64::new(0),
                wake: Notify::new(),
                started: std::sync::Once::new(),
            }),
        }
    }

    /// Events of `task_id` after `cursor` (`0-0` for all of them), then live ones.
    pub async fn subscribe(&self, task_id: &str, cursor: &str) -> Subscription {
        self.subscribe_stream(&keys::events(task_id), cursor).await
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
            tokio::spawn(self.clone().read_loop());
        });
        let (tx, events) = mpsc::channel(SUBSCRIBER_BUFFER);
        let id = inner.next_id.fetch_add(1, Ordering::Relaxed);
        // Registered before the first read: whatever is appended after this is announced, and
        // the first read (below, marked dirty) sees everything before it. If Redis is away, the
        // reader registers every watched stream again when it reconnects.
        let mut control = inner.control.clone();
        let _: redis::RedisResult<()> = watch_pipe([key]).query_async(&mut control).await;
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
        self.unblock_reader().await;
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

    async fn unblock_reader(&self) {
        let client_id = self.inner.reader_client.load(Ordering::Relaxed);
        if client_id == 0 {
            return;
        }
        let mut control = self.inner.control.clone();
        let _: redis::RedisResult<i64> = redis::cmd("CLIENT")
            .arg("UNBLOCK")
            .arg(client_id)
            .query_async(&mut control)
            .await;
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
        let mut watched = self.lock();
        for key in keys {
            if watched.tasks.contains_key(&key) {
                watched.dirty.insert(key);
            }
        }
    }

    async fn read_loop(self) {
        let mut conn: Option<redis::aio::MultiplexedConnection> = None;
        let mut cursor = String::new();
        let mut renewed = std::time::Instant::now();
        loop {
            if self.lock().tasks.is_empty() {
                self.inner.wake.notified().await;
                continue;
            }
            if conn.is_none() {
                match self.connect().await {
                    Some((connection, last)) => {
                        conn = Some(connection);
                        cursor = last;
                        // Whatever happened while disconnected: register and read every
                        // watched stream.
                        let all: Vec<String> = self.lock().tasks.keys().cloned().collect();
                        let connection = conn.as_mut().expect("just connected");
                        if !all.is_empty()
                            && watch_pipe(&all)
                                .query_async::<()>(connection)
                                .await
                                .is_err()
                        {
                            conn = None;
                            continue;
                        }
                        renewed = std::time::Instant::now();
                        self.mark_dirty(all);
                    }
                    None => {
                        tokio::time::sleep(Duration::from_millis(200)).await;
                        continue;
                    }
                }
            }
            let connection = conn.as_mut().expect("connected above");
            if renewed.elapsed() >= WATCH_RENEW {
                renewed = std::time::Instant::now();
                let all: Vec<String> = self.lock().tasks.keys().cloned().collect();
                let mut pipe = watch_pipe(&all);
                pipe.cmd("ZREMRANGEBYSCORE")
                    .arg(keys::WATCHING)
                    .arg("-inf")
                    .arg(unix_ms())
                    .ignore();
                if let Err(err) = pipe.query_async::<()>(connection).await {
                    tracing::warn!(%err, "event reader could not renew its watches");
                }
            }
            if let Err(err) = self.round(connection, &mut cursor).await {
                if err.to_string().contains("UNBLOCKED") {
                    continue;
                }
                tracing::warn!(%err, "event reader lost Redis; reconnecting");
                self.inner.reader_client.store(0, Ordering::Relaxed);
                conn = None;
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }

    /// Reads the changed streams, then waits for news on `ai:events`.
    async fn round(
        &self,
        conn: &mut redis::aio::MultiplexedConnection,
        cursor: &mut String,
    ) -> redis::RedisResult<()> {
        let dirty = self.take_dirty();
        if !dirty.is_empty() {
            let mut pipe = redis::pipe();
            for (key, from) in &dirty {
                pipe.cmd("XRANGE")
                    .arg(key)
                    .arg(format!("({from}"))
                    .arg("+")
                    .arg("COUNT")
                    .arg(READ_BATCH);
            }
            let replies: Vec<redis::streams::StreamRangeReply> = pipe.query_async(conn).await?;
            let mut more = Vec::new();
            for ((key, _), reply) in dirty.into_iter().zip(replies) {
                let entries = reply.ids;
                if entries.len() == READ_BATCH {
                    more.push(key.clone());
                }
                self.dispatch(&key, entries);
            }
            self.mark_dirty(more);
        }
        let block = if self.lock().dirty.is_empty() {
            BLOCK
        } else {
            Duration::from_millis(1)
        };
        let options = StreamReadOptions::default()
            .count(1000)
            .block(block.as_millis() as usize);
        let reply: Option<StreamReadReply> = redis::AsyncCommands::xread_options(
            conn,
            &[keys::EVENTS_ALL],
            &[cursor.as_str()],
            &options,
        )
        .await?;
        let mut changed = Vec::new();
        for entry in reply.into_iter().flat_map(|r| r.keys).flat_map(|k| k.ids) {
            *cursor = entry.id.clone();
            // One notification may name several streams, separated by spaces.
            if let Some(keys) = entry.get::<String>("k") {
                changed.extend(keys.split(' ').filter(|k| !k.is_empty()).map(str::to_owned));
            }
        }
        self.mark_dirty(changed);
        Ok(())
    }

    /// A connection for the reader, its `CLIENT ID` noted for unblocking, and the current end
    /// of `ai:events`.
    async fn connect(&self) -> Option<(redis::aio::MultiplexedConnection, String)> {
        let config = redis::AsyncConnectionConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(1)))
            .set_response_timeout(Some(BLOCK + Duration::from_secs(2)));
        let mut conn = self
            .inner
            .client
            .get_multiplexed_async_connection_with_config(&config)
            .await
            .ok()?;
        let id: i64 = redis::cmd("CLIENT")
            .arg("ID")
            .query_async(&mut conn)
            .await
            .ok()?;
        let last: Vec<(String, HashMap<String, String>)> = redis::cmd("XREVRANGE")
            .arg(keys::EVENTS_ALL)
            .arg("+")
            .arg("-")
            .arg("COUNT")
            .arg(1)
            .query_async(&mut conn)
            .await
            .ok()?;
        self.inner.reader_client.store(id, Ordering::Relaxed);
        Some((
            conn,
            last.into_iter()
                .next()
                .map_or_else(|| "0-0".to_owned(), |(id, _)| id),
        ))
    }

    /// Hands each entry to the subscribers that have not seen it; drops the ones that are full.
    fn dispatch(&self, key: &str, entries: Vec<redis::streams::StreamId>) {
        let mut watched = self.lock();
        let Some(subscribers) = watched.tasks.get_mut(key) else {
            return;
        };
        for entry in entries {
            let task_id = task_of(key).or_else(|| entry.get("t")).unwrap_or_default();
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

/// Registers (or renews) streams in `ai:watching` until [`WATCH_TTL`] from now.
fn watch_pipe<K: AsRef<str>>(keys: impl IntoIterator<Item = K>) -> redis::Pipeline {
    let expiry = unix_ms() + WATCH_TTL.as_millis() as u64;
    let mut pipe = redis::pipe();
    for key in keys {
        pipe.cmd("ZADD")
            .arg(keys::WATCHING)
            .arg("GT")
            .arg(expiry)
            .arg(key.as_ref())
            .ignore();
    }
    pipe
}

fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// `ai:task:{id}:events` → `id`.
fn task_of(key: &str) -> Option<String> {
    key.strip_prefix("ai:task:{")?
        .strip_suffix("}:events")
        .map(str::to_owned)
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
        assert_eq!(task_of("ai:task:{abc}:events").as_deref(), Some("abc"));
        assert_eq!(task_of("ai:queue:x"), None);
    }
}
