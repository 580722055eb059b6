//! A caller's `Idempotency-Key` slots: the first request to claim one keeps it (its task id
//! and request fingerprint) for a while; a request refused before it made a task gives it back.

use redis::AsyncCommands as _;

use super::keys;
use super::store::TaskStore;

impl TaskStore {
    /// Claims `user`'s slot for `key` with `value` unless it is held (for `ttl_secs`); whether
    /// it was claimed, and the value it now holds.
    pub async fn claim_idempotency_key(
        &self,
        user: &str,
        key: &str,
        value: &str,
        ttl_secs: u64,
    ) -> redis::RedisResult<(bool, String)> {
        let slot = keys::idempotency(user, key);
        let mut conn = self.conn.clone();
        let set: Option<String> = redis::cmd("SET")
            .arg(&slot)
            .arg(value)
            .arg("NX")
            .arg("EX")
            .arg(ttl_secs)
            .query_async(&mut conn)
            .await?;
        if set.is_some() {
            return Ok((true, value.to_owned()));
        }
        let held: Option<String> = conn.get(&slot).await?;
        Ok((false, held.unwrap_or_default()))
    }

    /// Gives the slot back if it still holds a value starting with `prefix` (this request's).
    pub async fn release_idempotency_key(
        &self,
        user: &str,
        key: &str,
        prefix: &str,
    ) -> redis::RedisResult<()> {
        let _: i64 = self
            .scripts
            .idempotency_release
            .key(keys::idempotency(user, key))
            .arg(prefix)
            .invoke_async(&mut self.conn.clone())
            .await?;
        Ok(())
    }
}
