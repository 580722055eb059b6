//! Batch records in Redis: `ai:batch:{id}` (a hash: owner, feature, counts fixed at creation,
//! the invalid items), `ai:batch:{id}:items` (a list of `index task_id`, in item order) and
//! `ai:batches:user:{user_id}` (a user's batches by creation time). Each valid item is a task
//! of the `batch_item` kind, so it has the engine's records, events, retries and history; the
//! batch's progress is read from its items' records.

use std::collections::HashMap;

use redis::AsyncCommands as _;

use super::store::TaskStore;

pub const BATCH_ITEM: &str = "batch_item";

fn batch_key(id: &str) -> String {
    format!("ai:batch:{{{id}}}")
}

fn items_key(id: &str) -> String {
    format!("ai:batch:{{{id}}}:items")
}

fn user_key(user_id: &str) -> String {
    format!("ai:batches:user:{{{user_id}}}")
}

impl TaskStore {
    /// Stores a batch record and its item list (before its items are queued).
    pub async fn save_batch(
        &self,
        id: &str,
        user_id: &str,
        fields: &[(&str, String)],
        items: &[(usize, String)],
        created_us: i64,
        ttl_secs: u64,
    ) -> redis::RedisResult<()> {
        let mut pipe = redis::pipe();
        pipe.atomic();
        pipe.hset_multiple(batch_key(id), fields).ignore();
        pipe.expire(batch_key(id), ttl_secs as i64).ignore();
        for chunk in items.chunks(1000) {
            let entries: Vec<String> = chunk.iter().map(|(i, t)| format!("{i} {t}")).collect();
            pipe.rpush(items_key(id), entries).ignore();
        }
        pipe.expire(items_key(id), ttl_secs as i64).ignore();
        pipe.zadd(user_key(user_id), id, created_us).ignore();
        pipe.expire(user_key(user_id), ttl_secs as i64).ignore();
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
}
