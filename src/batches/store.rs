//! Batch records in Redis, in the batch's partition (`tasks/keys.rs`): `ai:{p}:batch:<id>` (a
//! hash: owner, feature, callback, the invalid items, and counters the task scripts keep:
//! `valid`, `running`, `succeeded`, `failed`, `cancelled`, `done`, `ended_us`),
//! `ai:{p}:batch:<id>:items` (a list of `index task_id`, in item order), `ai:{p}:batch:<id>:held`
//! (the items waiting for a slot under the batch's concurrency cap); and, in the user's slot,
//! `ai:batches:user:{user_id}` (a user's batches by creation time). A batch's items are tasks of
//! its own partition ([`BatchStore::new_item_id`]), so the scripts that change an item keep its
//! batch in step in the same atomic step.
//!
//! Each valid item is a task of the `batch_item` kind with a `batch` field, so it has the
//! engine's records, events, retries and history. The first `concurrency` items are queued at
//! once, the rest held; whenever a queued item reaches a final state the script recording it
//! queues the next held one and counts it (`batch_step` in `tasks/lua/prelude.lua`: it runs
//! inside the engine's own scripts, atomic with the item's state change). The script that counts
//! the last item pushes the batch id to its partition's `batches:ended`; the `batch_item` pool's upkeep turns
//! that into the batch's webhook ([`BatchStore::announce_ended`]).

use std::collections::HashMap;

use redis::AsyncCommands as _;

use super::BatchView;
use crate::facts::TaskFacts;
use crate::tasks::{JobKind, TaskStore};
use crate::webhooks::WebhookJob;

/// The id of a batch's webhook task: one per batch, whoever queues it.
fn user_key(user_id: &str) -> String {
    format!("ai:batches:user:{{{user_id}}}")
}

/// A batch to record: its hash fields, and its valid items in order.
pub struct BatchRecord<'a> {
    pub id: &'a str,
    pub user_id: &'a str,
    pub fields: Vec<(&'static str, String)>,
    /// `(index, task id)` of the valid items.
    pub items: Vec<(usize, String)>,
    /// The items' job kind: its queue takes each held item when a slot frees.
    pub item_kind: &'a JobKind,
    /// How many items run at once; the rest are held.
    pub concurrency: usize,
    pub created_us: i64,
    pub ttl_secs: u64,
}

/// The batches' records, beside the task store their items live in; cloning is one reference
/// count.
#[derive(Clone)]
pub struct BatchStore(TaskStore);

impl BatchStore {
    pub fn new(tasks: TaskStore) -> Self {
        Self(tasks)
    }

    fn batch_key(&self, id: &str) -> String {
        self.0.partitions().batch(id)
    }

    fn items_key(&self, id: &str) -> String {
        self.batch_key(id) + ":items"
    }

    fn held_key(&self, id: &str) -> String {
        self.batch_key(id) + ":held"
    }

    /// A new item's task id, in the batch's partition.
    pub fn new_item_id(&self, batch_id: &str) -> String {
        let parts = self.0.partitions();
        parts.new_id_in(parts.of(batch_id))
    }

    /// Stores a batch: its hash and its item and held lists. Call it after the items' tasks
    /// exist (held) and before any is queued, so that no item can end before the batch knows it.
    pub async fn save(&self, batch: &BatchRecord<'_>) -> redis::RedisResult<()> {
        let (id, ttl) = (batch.id, batch.ttl_secs as i64);
        let parts = self.0.partitions();
        let queue = parts.queue(parts.of(id), &batch.item_kind.queue);
        let (batch_key, items_key, held_key) =
            (self.batch_key(id), self.items_key(id), self.held_key(id));
        let mut pipe = redis::pipe();
        pipe.atomic();
        pipe.hset_multiple(&batch_key, &batch.fields).ignore();
        pipe.hset_multiple(
            &batch_key,
            &[
                ("valid", batch.items.len().to_string()),
                ("concurrency", batch.concurrency.to_string()),
                ("queue", queue),
            ],
        )
        .ignore();
        pipe.expire(&batch_key, ttl).ignore();
        for chunk in batch.items.chunks(1000) {
            let entries: Vec<String> = chunk.iter().map(|(i, t)| format!("{i} {t}")).collect();
            pipe.rpush(&items_key, entries).ignore();
        }
        pipe.expire(&items_key, ttl).ignore();
        let held: Vec<&String> = batch
            .items
            .iter()
            .skip(batch.concurrency)
            .map(|(_, t)| t)
            .collect();
        for chunk in held.chunks(1000) {
            pipe.rpush(&held_key, chunk).ignore();
        }
        pipe.expire(&held_key, ttl).ignore();
        let mut conn = self.0.connection();
        pipe.query_async::<()>(&mut conn).await?;
        // The user's slot: listed once the batch exists.
        redis::pipe()
            .zadd(user_key(batch.user_id), id, batch.created_us)
            .ignore()
            .expire(user_key(batch.user_id), ttl)
            .ignore()
            .query_async::<()>(&mut conn)
            .await
    }

    /// A batch's fields, or `None` when it does not exist (or expired).
    pub async fn fields(&self, id: &str) -> redis::RedisResult<Option<HashMap<String, String>>> {
        let fields: HashMap<String, String> =
            self.0.connection().hgetall(self.batch_key(id)).await?;
        Ok((!fields.is_empty()).then_some(fields))
    }

    /// `(index, task id)` of a batch's queued items, in item order.
    pub async fn items(&self, id: &str) -> redis::RedisResult<Vec<(usize, String)>> {
        let entries: Vec<String> = self
            .0
            .connection()
            .lrange(self.items_key(id), 0, -1)
            .await?;
        Ok(entries
            .into_iter()
            .filter_map(|e| {
                let (index, task) = e.split_once(' ')?;
                Some((index.parse().ok()?, task.to_owned()))
            })
            .collect())
    }

    /// Stops a batch from starting more items: its held items stay held for good (the caller
    /// cancels them and the queued ones next).
    pub async fn stop(&self, id: &str) -> redis::RedisResult<()> {
        let now = jiff::Timestamp::now().as_microsecond();
        let mut pipe = redis::pipe();
        pipe.atomic()
            .del(self.held_key(id))
            .ignore()
            .hset(self.batch_key(id), "cancel_requested_us", now)
            .ignore();
        pipe.query_async::<()>(&mut self.0.connection()).await
    }

    /// A user's batch ids, newest first.
    pub async fn of_user(&self, user_id: &str, limit: isize) -> redis::RedisResult<Vec<String>> {
        self.0
            .connection()
            .zrevrange(user_key(user_id), 0, limit - 1)
            .await
    }

    /// Queues the webhook of every batch that ended since the last call and has a callback
    /// URL. The webhook's task id comes from the batch id, so a second run (another worker,
    /// or a crash between queueing and clearing) creates nothing twice.
    pub async fn announce_ended(&self) -> redis::RedisResult<usize> {
        let mut conn = self.0.connection();
        let parts = self.0.partitions();
        let mut count = 0;
        for p in parts.all() {
            let ended_key = parts.batches_ended(p);
            let ended: Vec<String> = conn.lrange(&ended_key, 0, 99).await?;
            count += ended.len();
            self.announce(&ended_key, &ended).await?;
        }
        Ok(count)
    }

    async fn announce(&self, ended_key: &str, ended: &[String]) -> redis::RedisResult<()> {
        let mut conn = self.0.connection();
        for id in ended {
            if let Some(fields) = self.fields(id).await?
                && let Some(url) = fields.get("callback_url")
            {
                let view = BatchView::from_fields(id, &fields);
                let text = |name: &str| fields.get(name).cloned().unwrap_or_default();
                let owner = TaskFacts::from_stored(
                    id.clone(),
                    text("request_id"),
                    text("user_id"),
                    &text("role"),
                    "",
                );
                let task = WebhookJob::for_batch(id, &owner.user_id, url, view.state, &view)
                    .into_task(&owner);
                self.0.enqueue(&task).await?;
            }
            let _: i64 = conn.lrem(ended_key, 1, id).await?;
        }
        Ok(())
    }
}
