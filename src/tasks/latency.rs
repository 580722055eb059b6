//! The learned latency of each feature: a moving average of real run times kept in Redis, so
//! every web process decides inline-or-queue from the same figure.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use redis::Script;
use redis::aio::ConnectionManager;

use super::keys;

/// Weight of one new sample in the moving average.
const ALPHA: f64 = 0.2;
/// How long a process trusts its copy of an estimate before reading Redis again.
const CACHE_FOR: Duration = Duration::from_secs(1);

/// When a value was read, and the value (milliseconds) if Redis had one.
type Cached = (Instant, Option<f64>);

#[derive(Clone)]
pub struct LatencyBook {
    conn: ConnectionManager,
    script: Arc<Script>,
    cache: Arc<Mutex<HashMap<String, Cached>>>,
}

impl LatencyBook {
    pub fn new(conn: ConnectionManager) -> Self {
        Self {
            conn,
            script: Arc::new(Script::new(include_str!("lua/latency.lua"))),
            cache: Arc::default(),
        }
    }

    /// Folds samples (milliseconds) into a feature's average.
    pub async fn observe(&self, feature: &str, samples: &[f64]) -> redis::RedisResult<()> {
        if samples.is_empty() {
            return Ok(());
        }
        let mean = samples.iter().sum::<f64>() / samples.len() as f64;
        let _: String = self
            .script
            .key(keys::latency(feature))
            .arg(mean)
            .arg(samples.len())
            .arg(ALPHA)
            .invoke_async(&mut self.conn.clone())
            .await?;
        self.cache
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(feature);
        Ok(())
    }

    /// The learned average for a feature, if any run was recorded; read through a 1 s cache.
    pub async fn estimate(&self, feature: &str) -> redis::RedisResult<Option<Duration>> {
        if let Some((at, value)) = self
            .cache
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(feature)
            && at.elapsed() < CACHE_FOR
        {
            return Ok(value.map(|ms| Duration::from_secs_f64(ms / 1000.0)));
        }
        let value: Option<String> =
            redis::AsyncCommands::hget(&mut self.conn.clone(), keys::latency(feature), "ewma_ms")
                .await?;
        let value = value.and_then(|v| v.parse::<f64>().ok());
        self.cache
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(feature.to_owned(), (Instant::now(), value));
        Ok(value.map(|ms| Duration::from_secs_f64(ms / 1000.0)))
    }
}
