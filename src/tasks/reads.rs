//! Reading task records back: one task, many, a user's, the dead ones, the end of a task's
//! events or of a user's feed, and how deep a queue is.

use std::collections::HashMap;

use redis::AsyncCommands as _;

use super::keys;
use super::kinds::JobKind;
use super::record::TaskRecord;
use super::store::TaskStore;

impl TaskStore {
    pub async fn get(&self, task_id: &str) -> redis::RedisResult<Option<TaskRecord>> {
        let fields: HashMap<String, String> = self
            .conn
            .clone()
            .hgetall(self.partitions().task(task_id))
            .await?;
        Ok(TaskRecord::from_hash(fields))
    }

    /// Records of the ids in `ids`, in order, skipping expired ones.
    pub async fn get_many(&self, ids: &[String]) -> redis::RedisResult<Vec<TaskRecord>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let calls = ids
            .iter()
            .map(|id| {
                let mut call = redis::cmd("HGETALL");
                call.arg(self.partitions().task(id));
                call
            })
            .collect();
        let hashes = self.conn.clone().query_each(calls).await?;
        hashes
            .into_iter()
            .map(|hash| {
                redis::from_redis_value::<HashMap<String, String>>(hash).map_err(Into::into)
            })
            .filter_map(|hash| hash.map(TaskRecord::from_hash).transpose())
            .collect()
    }

    /// A user's task ids, newest first, created strictly before `before_us` when given.
    pub async fn user_task_ids(
        &self,
        user_id: &str,
        before_us: Option<i64>,
        limit: usize,
    ) -> redis::RedisResult<Vec<(String, i64)>> {
        let max = before_us.map_or("+inf".to_owned(), |us| format!("({us}"));
        redis::cmd("ZREVRANGEBYSCORE")
            .arg(keys::user_tasks(user_id))
            .arg(max)
            .arg("-inf")
            .arg("WITHSCORES")
            .arg("LIMIT")
            .arg(0)
            .arg(limit)
            .query_async(&mut self.conn.clone())
            .await
    }

    /// Dead task ids, newest first: the newest `limit` of every partition, merged.
    pub async fn dead_ids(&self, limit: usize) -> redis::RedisResult<Vec<String>> {
        let parts = self.partitions();
        let mut dead: Vec<(String, f64)> = Vec::new();
        for p in parts.all() {
            let newest: Vec<(String, f64)> = self
                .conn
                .clone()
                .zrevrange_withscores(parts.dead(p), 0, limit as isize - 1)
                .await?;
            dead.extend(newest);
        }
        dead.sort_by(|a, b| b.1.total_cmp(&a.1));
        dead.truncate(limit);
        Ok(dead.into_iter().map(|(id, _)| id).collect())
    }

    /// The id of the last event of a task's stream, if it has any.
    pub async fn last_event_id(&self, task_id: &str) -> redis::RedisResult<Option<String>> {
        self.newest_entry(&self.partitions().events(task_id)).await
    }

    /// Entries waiting in a kind's queue (not yet fetched) and fetched but unacknowledged, in
    /// all its partitions.
    pub async fn queue_depth(&self, kind: &JobKind) -> redis::RedisResult<u64> {
        let parts = self.partitions();
        let mut depth = 0;
        for p in parts.all() {
            depth += self
                .conn
                .clone()
                .xlen::<_, u64>(parts.queue(p, &kind.queue))
                .await?;
        }
        Ok(depth)
    }

    /// The id of the newest entry of a user's feed of new tasks, if any.
    pub async fn feed_end(&self, user_id: &str) -> redis::RedisResult<Option<String>> {
        self.newest_entry(&keys::user_feed(user_id)).await
    }

    async fn newest_entry(&self, stream: &str) -> redis::RedisResult<Option<String>> {
        let last: Vec<(String, HashMap<String, String>)> = redis::cmd("XREVRANGE")
            .arg(stream)
            .arg("+")
            .arg("-")
            .arg("COUNT")
            .arg(1)
            .query_async(&mut self.conn.clone())
            .await?;
        Ok(last.into_iter().next().map(|(id, _)| id))
    }
}
