//! The response cache (DESIGN.md §8): `ai:cache:response:{hash}`, keyed by the feature, the
//! prompt's name and version, the rendered prompt and the model parameters, so a changed
//! prompt or input never hits an old answer. Each feature has its own TTL (0: never cached).
//!
//! Identical misses are coalesced across processes: the first takes
//! `ai:cache:lock:{hash}` (`SET NX PX`) and calls the provider; the others wait for its answer
//! to appear (polling the key every few milliseconds) instead of calling the provider too. If
//! the leader fails, its lock goes and the next waiter takes over.

use std::time::Duration;

use redis::AsyncCommands as _;
use redis::aio::ConnectionManager;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::config::CacheSettings;
use crate::feature::Feature;
use crate::prompts::RenderedPrompt;
use crate::providers::{CompletionOptions, FinishReason};

const POLL: Duration = Duration::from_millis(10);

/// What the cache keeps of a provider's answer.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CachedAnswer {
    pub text: String,
    pub model: String,
    pub finish_reason: FinishReason,
}

/// What a cache lookup decided.
pub enum Lookup {
    /// Answered from the cache.
    Hit(CachedAnswer),
    /// Not cached: call the provider, then [`ResponseCache::store`] (which also releases the
    /// lock this caller may hold).
    Miss(Entry),
}

/// A cacheable request's key, and whether this caller holds its lock.
pub struct Entry {
    key: String,
    lock: Option<String>,
    ttl: u64,
}

#[derive(Clone)]
pub struct ResponseCache {
    conn: ConnectionManager,
    settings: CacheSettings,
}

impl ResponseCache {
    pub fn new(conn: ConnectionManager, settings: &CacheSettings) -> Self {
        Self {
            conn,
            settings: settings.clone(),
        }
    }

    /// The cache key of a request, or `None` when the feature is not cached.
    pub fn key(
        &self,
        feature: Feature,
        prompt: (&str, &str),
        rendered: &RenderedPrompt,
        options: &CompletionOptions,
    ) -> Option<(String, u64)> {
        let ttl = self.settings.ttl(feature.as_str());
        if ttl == 0 {
            return None;
        }
        let mut hasher = Sha256::new();
        for part in [
            feature.as_str(),
            prompt.0,
            prompt.1,
            &rendered.system,
            &rendered.user,
            &options.temperature.to_string(),
            &options.max_tokens.to_string(),
            options.model.as_deref().unwrap_or(""),
            &options
                .json_schema
                .as_ref()
                .map(|s| s.to_string())
                .unwrap_or_default(),
        ] {
            hasher.update(part.as_bytes());
            hasher.update([0]);
        }
        Some((format!("{:x}", hasher.finalize()), ttl))
    }

    /// Looks `hash` up; on a miss, waits for an identical request already running (up to
    /// `cache.coalesce_wait_ms`) or becomes the one that runs.
    pub async fn lookup(&self, hash: &str, ttl: u64) -> redis::RedisResult<Lookup> {
        let key = format!("ai:cache:response:{hash}");
        let lock_key = format!("ai:cache:lock:{hash}");
        let wait = Duration::from_millis(self.settings.coalesce_wait_ms);
        let deadline = tokio::time::Instant::now() + wait;
        let token = uuid::Uuid::now_v7().to_string();
        let mut conn = self.conn.clone();
        loop {
            let cached: Option<String> = conn.get(&key).await?;
            if let Some(answer) = cached.and_then(|c| serde_json::from_str(&c).ok()) {
                return Ok(Lookup::Hit(answer));
            }
            let taken: Option<String> = redis::cmd("SET")
                .arg(&lock_key)
                .arg(&token)
                .arg("NX")
                .arg("PX")
                .arg(wait.as_millis() as u64)
                .query_async(&mut conn)
                .await?;
            if taken.is_some() {
                return Ok(Lookup::Miss(Entry {
                    key,
                    lock: Some(token),
                    ttl,
                }));
            }
            if tokio::time::Instant::now() >= deadline {
                // Waited long enough: run without the lock (and still store the answer).
                return Ok(Lookup::Miss(Entry {
                    key,
                    lock: None,
                    ttl,
                }));
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Stores the answer (when there is one) and releases the lock, so waiters find the answer
    /// or take over.
    pub async fn store(&self, entry: Entry, answer: Option<&CachedAnswer>) {
        let mut conn = self.conn.clone();
        if let Some(answer) = answer {
            let json = serde_json::to_string(answer).expect("an answer serializes");
            if let Err(err) = conn.set_ex::<_, _, ()>(&entry.key, json, entry.ttl).await {
                tracing::warn!(%err, "could not store a response in the cache");
            }
        }
        if let Some(token) = entry.lock {
            const RELEASE: &str = "if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end return 1";
            let lock_key = entry
                .key
                .replacen("ai:cache:response:", "ai:cache:lock:", 1);
            let released: redis::RedisResult<i64> = redis::Script::new(RELEASE)
                .key(lock_key)
                .arg(token)
                .invoke_async(&mut conn)
                .await;
            if let Err(err) = released {
                tracing::debug!(%err, "could not release a cache lock (it expires by itself)");
            }
        }
    }
}
