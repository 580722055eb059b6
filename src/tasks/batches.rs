//! Batch records in Redis: `ai:batch:{id}` (a hash: owner, feature, callback, the invalid items,
//! and counters the task scripts keep: `valid`, `running`, `succeeded`, `failed`, `cancelled`,
//! `done`, `ended_us`), `ai:batch:{id}:items` (a list of `index task_id`, in item order),
//! `ai:batch:{id}:held` (the items waiting for a slot under the batch's concurrency cap) and
//! `ai:batches:user:{user_id}` (a user's batches by creation time).
//!
//! Each valid item is a task of the `batch_item` kind with a `batch` field, so it has the
//! engine's records, events, retries and history. The first `concurrency` items are queued at
//! once, the rest held; whenever a queued item reaches a final state the script recording it
//! queues the next held one and counts it (`batch_step` in `lua/prelude.lua`). The script that
//! counts the last item pushes the batch id to `ai:batches:ended`; the `batch_item` pool's
//! upkeep turns that into the batch's webhook.

use std::collections::HashMap;

use redis::AsyncCommands as _;
use serde::Serialize;
use serde_json::Value as Json;

use super::keys;
use super::store::TaskStore;
use super::webhook_job::WebhookJob;

pub const BATCH_ITEM: &str = "batch_item";

/// Ids of batches whose last item just finished, waiting for their webhook.
const ENDED: &str = "ai:batches:ended";

fn batch_key(id: &str) -> String {
    keys::batch(id)
}

fn items_key(id: &str) -> String {
    format!("ai:batch:{{{id}}}:items")
}

fn held_key(id: &str) -> String {
    format!("ai:batch:{{{id}}}:held")
}

/// The id of a batch's webhook task: one per batch, whoever queues it.
fn webhook_task_id(batch_id: &str) -> String {
    use sha2::Digest as _;
    let digest = sha2::Sha256::digest(format!("batch-webhook/{batch_id}").as_bytes());
    uuid::Uuid::new_v8(digest[..16].try_into().expect("16 bytes")).to_string()
}

fn user_key(user_id: &str) -> String {
    format!("ai:batches:user:{{{user_id}}}")
}

/// A batch as its owner sees it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct BatchView {
    pub id: String,
    pub feature: String,
    /// `queued`, `running`, `completed`, `completed_with_errors`, `cancelled` or `failed`.
    pub state: &'static str,
    pub total: u64,
    pub queued: u64,
    pub running: u64,
    pub succeeded: u64,
    /// Includes the items refused at submission (`invalid`).
    pub failed: u64,
    pub cancelled: u64,
    /// Items refused at submission (`allow_partial`).
    pub invalid: u64,
    /// At most this many items run at once.
    pub concurrency: u64,
    pub created_at: String,
    pub ended_at: Option<String>,
    /// Seconds until the last item is expected to finish, at the rate so far; `None` until an
    /// item finished and once the batch ended.
    pub eta_secs: Option<u64>,
    pub cancel_requested: bool,
    /// The batch webhook: `pending`, `delivered` or `failed`; absent without a callback.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub webhook: Option<String>,
    #[schema(value_type = Object)]
    pub metadata: Json,
}

impl BatchView {
    /// The view of a batch hash (as `HGETALL` returns it).
    pub fn from_fields(id: &str, fields: &HashMap<String, String>) -> Self {
        let number = |name: &str| -> u64 {
            fields
                .get(name)
                .and_then(|v| v.parse::<i64>().ok())
                .map_or(0, |v| v.max(0) as u64)
        };
        let time = |name: &str| {
            fields
                .get(name)
                .and_then(|us| us.parse().ok())
                .and_then(|us| jiff::Timestamp::from_microsecond(us).ok())
        };
        let (total, valid) = (number("total"), number("valid"));
        let invalid = total.saturating_sub(valid);
        let (succeeded, failed, cancelled) =
            (number("succeeded"), number("failed"), number("cancelled"));
        let running = number("running");
        let done = succeeded + failed + cancelled;
        let ended = time("ended_us").filter(|_| done >= valid);
        let state = if ended.is_none() {
            if done + running == 0 {
                "queued"
            } else {
                "running"
            }
        } else if cancelled > 0 {
            "cancelled"
        } else if failed + invalid == 0 {
            "completed"
        } else if succeeded == 0 {
            "failed"
        } else {
            "completed_with_errors"
        };
        let created = time("created_us");
        let eta_secs = match (created, ended) {
            (Some(created), None) if done > 0 => {
                let elapsed = jiff::Timestamp::now().as_microsecond() - created.as_microsecond();
                let per_item = elapsed.max(0) as f64 / done as f64;
                Some((per_item * valid.saturating_sub(done) as f64 / 1e6).ceil() as u64)
            }
            _ => None,
        };
        Self {
            id: id.to_owned(),
            feature: fields.get("feature").cloned().unwrap_or_default(),
            state,
            total,
            queued: valid.saturating_sub(done + running),
            running,
            succeeded,
            failed: failed + invalid,
            cancelled,
            invalid,
            concurrency: number("concurrency"),
            created_at: created.map(|t| t.to_string()).unwrap_or_default(),
            ended_at: ended.map(|t| t.to_string()),
            eta_secs,
            cancel_requested: fields.contains_key("cancel_requested_us"),
            webhook: fields.get("webhook").cloned(),
            metadata: fields
                .get("metadata")
                .and_then(|m| serde_json::from_str(m).ok())
                .unwrap_or(Json::Null),
        }
    }

    pub fn is_final(&self) -> bool {
        !matches!(self.state, "queued" | "running")
    }
}

/// A batch to record: its hash fields, and its valid items in order.
pub struct BatchRecord<'a> {
    pub id: &'a str,
    pub user_id: &'a str,
    pub fields: Vec<(&'static str, String)>,
    /// `(index, task id)` of the valid items.
    pub items: Vec<(usize, String)>,
    /// How many items run at once; the rest are held.
    pub concurrency: usize,
    pub created_us: i64,
    pub ttl_secs: u64,
}

impl TaskStore {
    /// Stores a batch: its hash and its item and held lists. Call it after the items' tasks
    /// exist (held) and before any is queued, so that no item can end before the batch knows it.
    pub async fn save_batch(&self, batch: &BatchRecord<'_>) -> redis::RedisResult<()> {
        let (id, ttl) = (batch.id, batch.ttl_secs as i64);
        let queue = keys::queue(&self.kinds().kind(BATCH_ITEM).queue);
        let mut pipe = redis::pipe();
        pipe.atomic();
        pipe.hset_multiple(batch_key(id), &batch.fields).ignore();
        pipe.hset_multiple(
            batch_key(id),
            &[
                ("valid", batch.items.len().to_string()),
                ("concurrency", batch.concurrency.to_string()),
                ("queue", queue),
            ],
        )
        .ignore();
        pipe.expire(batch_key(id), ttl).ignore();
        for chunk in batch.items.chunks(1000) {
            let entries: Vec<String> = chunk.iter().map(|(i, t)| format!("{i} {t}")).collect();
            pipe.rpush(items_key(id), entries).ignore();
        }
        pipe.expire(items_key(id), ttl).ignore();
        let held: Vec<&String> = batch
            .items
            .iter()
            .skip(batch.concurrency)
            .map(|(_, t)| t)
            .collect();
        for chunk in held.chunks(1000) {
            pipe.rpush(held_key(id), chunk).ignore();
        }
        pipe.expire(held_key(id), ttl).ignore();
        pipe.zadd(user_key(batch.user_id), id, batch.created_us)
            .ignore();
        pipe.expire(user_key(batch.user_id), ttl).ignore();
        pipe.query_async::<()>(&mut self.conn.clone()).await
    }

    /// A batch's fields, or `None` when it does not exist (or expired).
    pub async fn batch(&self, id: &str) -> redis::RedisResult<Option<HashMap<String, String>>> {
        let fields: HashMap<String, String> = self.conn.clone().hgetall(batch_key(id)).await?;
        Ok((!fields.is_empty()).then_some(fields))
    }

    /// `(index, task id)` of a batch's queued items, in item order.
    pub async fn batch_items(&self, id: &str) -> redis::RedisResult<Vec<(usize, String)>> {
        let entries: Vec<String> = self.conn.clone().lrange(items_key(id), 0, -1).await?;
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
    pub async fn stop_batch(&self, id: &str) -> redis::RedisResult<()> {
        let now = jiff::Timestamp::now().as_microsecond();
        let mut pipe = redis::pipe();
        pipe.atomic()
            .del(held_key(id))
            .ignore()
            .hset(batch_key(id), "cancel_requested_us", now)
            .ignore();
        pipe.query_async::<()>(&mut self.conn.clone()).await
    }

    /// A user's batch ids, newest first.
    pub async fn user_batches(
        &self,
        user_id: &str,
        limit: isize,
    ) -> redis::RedisResult<Vec<String>> {
        self.conn
            .clone()
            .zrevrange(user_key(user_id), 0, limit - 1)
            .await
    }

    /// Queues the webhook of every batch that ended since the last call and has a callback
    /// URL. The webhook's task id comes from the batch id, so a second run (another worker,
    /// or a crash between queueing and clearing) creates nothing twice.
    pub async fn announce_ended_batches(&self) -> redis::RedisResult<usize> {
        let mut conn = self.conn.clone();
        let ended: Vec<String> = conn.lrange(ENDED, 0, 99).await?;
        for id in &ended {
            if let Some(fields) = self.batch(id).await?
                && let Some(url) = fields.get("callback_url")
            {
                let view = BatchView::from_fields(id, &fields);
                let user = fields.get("user_id").map_or("", String::as_str);
                let role = fields.get("role").map_or("", String::as_str);
                let request = fields.get("request_id").map_or("", String::as_str);
                let mut task =
                    WebhookJob::for_batch(id, user, url, &view).into_task(user, role, request);
                task.id = webhook_task_id(id);
                self.enqueue(&task).await?;
            }
            let _: i64 = conn.lrem(ENDED, 1, id).await?;
        }
        Ok(ended.len())
    }
}
