//! The learned latency of each feature: a moving average of real run times kept in Redis, so
//! every web process decides inline-or-queue from the same figure. Samples are gathered in the
//! process and folded in once per [`FOLD_EVERY`]: a busy web process makes one Redis call per
//! feature a tenth of a second instead of one per request.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::storage::RedisConnection;
use redis::Script;

use super::keys;

/// Weight of one new sample in the moving average.
const ALPHA: f64 = 0.2;
/// How long a process trusts its copy of an estimate before reading Redis again.
const CACHE_FOR: Duration = Duration::from_secs(1);
/// How long samples wait in the process before they are folded into the shared average.
const FOLD_EVERY: Duration = Duration::from_millis(100);

/// Samples not yet folded in, per feature: their sum (ms) and count.
type Pending = HashMap<String, (f64, usize)>;

/// When a value was read, and the value (milliseconds) if Redis had one.
type Cached = (Instant, Option<f64>);

#[derive(Clone)]
pub struct LatencyBook {
    conn: RedisConnection,
    script: Arc<Script>,
    cache: Arc<Mutex<HashMap<String, Cached>>>,
    pending: Arc<Mutex<Pending>>,
    /// Whether a fold is already scheduled.
    folding: Arc<AtomicBool>,
}

impl LatencyBook {
    pub fn new(conn: RedisConnection) -> Self {
        Self {
            conn,
            script: Arc::new(crate::storage::script::lua(include_str!("lua/latency.lua"))),
            cache: Arc::default(),
            pending: Arc::default(),
            folding: Arc::default(),
        }
    }

    /// Adds samples (milliseconds) of a feature; they reach the shared average within
    /// [`FOLD_EVERY`]. Needs a Tokio runtime.
    pub fn observe(&self, feature: &str, samples: &[f64]) {
        if samples.is_empty() {
            return;
        }
        {
            let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
            let (sum, count) = pending.entry(feature.to_owned()).or_default();
            *sum += samples.iter().sum::<f64>();
            *count += samples.len();
        }
        if !self.folding.swap(true, Ordering::AcqRel) {
            let book = self.clone();
            tokio::spawn(async move {
                tokio::time::sleep(FOLD_EVERY).await;
                // Cleared first: samples added from here on schedule the next fold.
                book.folding.store(false, Ordering::Release);
                book.fold().await;
            });
        }
    }

    /// Folds every pending sample into the shared averages (one script call per feature).
    async fn fold(&self) {
        let pending = std::mem::take(&mut *self.pending.lock().unwrap_or_else(|e| e.into_inner()));
        for (feature, (sum, count)) in pending {
            let folded: redis::RedisResult<String> = self
                .script
                .key(keys::latency(&feature))
                .arg(sum / count as f64)
                .arg(count)
                .arg(ALPHA)
                .invoke_async(&mut self.conn.clone())
                .await;
            if let Err(err) = folded {
                tracing::debug!(%err, feature, "updating the latency estimate failed");
            }
            self.cache
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(&feature);
        }
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
