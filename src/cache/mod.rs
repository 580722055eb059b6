//! The response cache (DESIGN.md §8): `ai:cache:response:{hash}`, keyed by the feature, the
//! prompt's name and version, the rendered prompt and the model parameters, so a changed
//! prompt or input never hits an old answer. Each feature has its own TTL (0: never cached).
//! A request holding a personal input (`personal: true` in its prompt file: a student's
//! attempt or answer) is keyed with its user too, so it never hits another user's answer.
//!
//! Identical misses are coalesced across processes: the first takes
//! `ai:cache:lock:{hash}` (`SET NX PX`, in the same Lua step that found no answer) and calls the
//! provider; the others wait for its answer
//! to appear (polling the key every few milliseconds) instead of calling the provider too. If
//! the leader fails, its lock goes and the next waiter takes over.

pub mod keys;

use std::time::Duration;

use crate::storage::RedisConnection;
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

/// A cacheable request: its feature (for the hit/miss metrics) and the hash of everything that
/// makes two requests identical.
pub struct CacheKey {
    feature: Feature,
    hash: String,
}

/// What a cache lookup decided.
pub enum Lookup {
    /// Answered from the cache.
    Hit(CachedAnswer),
    /// Not cached: call the provider, then [`ResponseCache::store`] (which also releases the
    /// lock this caller may hold).
    Miss(Entry),
}

/// A cacheable request's key, and the lock token when this caller holds its lock.
pub struct Entry {
    key: String,
    lock: String,
    token: Option<String>,
    ttl: u64,
}

struct Scripts {
    lookup: redis::Script,
    store: redis::Script,
}

#[derive(Clone)]
pub struct ResponseCache {
    conn: RedisConnection,
    settings: CacheSettings,
    scripts: std::sync::Arc<Scripts>,
}

impl ResponseCache {
    pub fn new(conn: RedisConnection, settings: &CacheSettings) -> Self {
        Self {
            conn,
            settings: settings.clone(),
            scripts: std::sync::Arc::new(Scripts {
                lookup: crate::storage::script::lua(include_str!("lua/lookup.lua")),
                store: crate::storage::script::lua(include_str!("lua/store.lua")),
            }),
        }
    }

    /// The cache key of a request, or `None` when the feature is not cached. `owner` scopes
    /// the entry to one user (a request holding personal input); `None` shares it.
    pub fn key(
        &self,
        feature: Feature,
        prompt: (&str, &str),
        rendered: &RenderedPrompt,
        options: &CompletionOptions,
        owner: Option<&str>,
    ) -> Option<(CacheKey, u64)> {
        let ttl = self.settings.ttl(feature.as_str());
        if ttl == 0 {
            return None;
        }
        let mut hasher = Sha256::new();
        // Shared entries hash an empty owner; user ids are never empty.
        for part in [
            owner.unwrap_or(""),
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
        let hash = format!("{:x}", hasher.finalize());
        Some((CacheKey { feature, hash }, ttl))
    }

    /// Looks the request up; on a miss, waits for an identical request already running (up to
    /// `cache.coalesce_wait_ms`) or becomes the one that runs. One round trip per look.
    pub async fn lookup(&self, request: &CacheKey, ttl: u64) -> redis::RedisResult<Lookup> {
        let found = self.find(&request.hash, ttl).await;
        if let Ok(lookup) = &found {
            let hit = matches!(lookup, Lookup::Hit(_));
            crate::metrics::cache_lookup(request.feature.as_str(), hit);
        }
        found
    }

    async fn find(&self, hash: &str, ttl: u64) -> redis::RedisResult<Lookup> {
        // One hash tag: the answer and its lock share a slot, so one script handles both.
        let key = keys::answer(hash);
        let lock = keys::lock(hash);
        let wait = Duration::from_millis(self.settings.coalesce_wait_ms);
        let deadline = tokio::time::Instant::now() + wait;
        let token = uuid::Uuid::now_v7().to_string();
        let mut conn = self.conn.clone();
        loop {
            let (state, cached): (i64, String) = self
                .scripts
                .lookup
                .key(&key)
                .key(&lock)
                .arg(&token)
                .arg(wait.as_millis() as u64)
                .invoke_async(&mut conn)
                .await?;
            if state == 1
                && let Ok(answer) = serde_json::from_str(&cached)
            {
                return Ok(Lookup::Hit(answer));
            }
            if state == 2 {
                return Ok(Lookup::Miss(Entry {
                    key,
                    lock,
                    token: Some(token),
                    ttl,
                }));
            }
            if tokio::time::Instant::now() >= deadline {
                // Waited long enough: run without the lock (and still store the answer).
                return Ok(Lookup::Miss(Entry {
                    key,
                    lock,
                    token: None,
                    ttl,
                }));
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Stores the answer (when there is one) and releases the lock, so waiters find the answer
    /// or take over; one round trip.
    pub async fn store(&self, entry: Entry, answer: Option<&CachedAnswer>) {
        let json = answer
            .map(|a| serde_json::to_string(a).expect("an answer serializes"))
            .unwrap_or_default();
        let stored: redis::RedisResult<i64> = self
            .scripts
            .store
            .key(&entry.key)
            .key(&entry.lock)
            .arg(json)
            .arg(entry.ttl)
            .arg(entry.token.unwrap_or_default())
            .invoke_async(&mut self.conn.clone())
            .await;
        if let Err(err) = stored {
            tracing::warn!(%err, "could not store a response in the cache (its lock expires by itself)");
        }
    }
}
