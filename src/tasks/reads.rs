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
        let fields: HashMap<String, String> =
            self.conn.clone().hgetall(keys::task(task_id)).await?;
        Ok(TaskRecord::from_hash(fields))
    }

    /// Records of the ids in `ids`, in order, skipping expired ones.
    pub async fn get_many(&self, ids: &[String]) -> redis::RedisResult<Vec<TaskRecord>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipe = redis::pipe();
        for id in ids {
            pipe.hgetall(keys::task(id));
        }
        let hashes: Vec<HashMap<String, String>> = pipe.query_async(&mut self.conn.clone()).await?;
        Ok(hashes
            .into_iter()
            .filter_map(TaskRecord::from_hash)
            .collect())
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

    /// Dead task ids, newest first.
    pub async fn dead_ids(&self, limit: usize) -> redis::RedisResult<Vec<String>> {
        self.conn
            .clone()
            .zrevrange(keys::DEAD, 0, limit as isize - 1)
            .await
    }

    /// The id of the last event of a task's stream, if it has any.
    pub async fn last_event_id(&self, task_id: &str) -> redis::RedisResult<Option<String>> {
        self.newest_entry(&keys::events(task_id)).await
    }

    /// Entries waiting in a kind's queue (not yet fetched) and fetched but unacknowledged.
    pub async fn queue_depth(&self, kind: &JobKind) -> redis::RedisResult<u64> {
        self.conn.clone().xlen(keys::queue(&kind.queue)).await
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
