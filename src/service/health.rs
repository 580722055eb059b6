//! Whether this process can serve: its stores answer and its prompts are loaded, each check
//! timed; and the Prometheus text of everything it counts.

use std::future::Future;
use std::time::Instant;

use super::AiService;

/// One readiness check: how it went and how long it took.
pub struct Check {
    pub name: &'static str,
    /// `None` when it passed; else what failed.
    pub failure: Option<String>,
    /// Milliseconds, to the microsecond.
    pub latency_ms: f64,
    /// The prompts check: how many features have prompts.
    pub features: Option<usize>,
}

/// Runs a check and says how long it took.
async fn timed<T>(check: impl Future<Output = T>) -> (T, f64) {
    let started = Instant::now();
    let result = check.await;
    let ms = (started.elapsed().as_secs_f64() * 1e6).round() / 1e3;
    (result, ms)
}

impl AiService {
    /// Redis and PostgreSQL, checked at once, then the prompts.
    pub async fn readiness(&self) -> Vec<Check> {
        let ((redis, redis_ms), (postgres, postgres_ms)) = tokio::join!(
            timed(self.stores.ping_redis()),
            timed(self.stores.ping_postgres())
        );
        let mut checks: Vec<Check> = [
            ("redis", redis, redis_ms),
            ("postgres", postgres, postgres_ms),
        ]
        .into_iter()
        .map(|(name, result, latency_ms)| Check {
            name,
            failure: result
                .err()
                .map(|err| format!("{err:#} (after {latency_ms} ms)")),
            latency_ms,
            features: None,
        })
        .collect();
        let (features, latency_ms) =
            timed(async { self.prompts.snapshot().versions().len() }).await;
        checks.push(Check {
            name: "prompts",
            failure: None,
            latency_ms,
            features: Some(features),
        });
        checks
    }

    /// The Prometheus text format of this process's metrics, with the queue gauges read now.
    pub async fn metrics_text(&self) -> String {
        let (figures, spool) = tokio::join!(
            self.engine.store.figures(),
            crate::audit::spool_length(&self.stores.redis)
        );
        let queues = match figures.and_then(|figures| Ok((figures, spool?))) {
            Ok((figures, audit_spool)) => Some(crate::metrics::QueuesSample {
                kinds: figures
                    .queues
                    .into_iter()
                    .map(|q| (q.kind, q.depth, q.in_flight, q.retrying))
                    .collect(),
                dead: figures.dead,
                audit_spool,
            }),
            Err(err) => {
                tracing::warn!(%err, "could not read the queue figures for /metrics");
                None
            }
        };
        let breakers = self
            .providers
            .status()
            .into_iter()
            .map(|status| (status.name, status.breaker.state))
            .collect();
        let capacity = match self.capacity().await {
            Ok(entries) => Some(entries.into_iter().map(capacity_sample).collect()),
            Err(err) => {
                tracing::warn!(%err, "could not read the providers' capacity for /metrics");
                None
            }
        };
        crate::metrics::render(crate::metrics::Sampled {
            queues,
            breakers,
            capacity,
        })
    }
}

fn capacity_sample(entry: crate::capacity::CapacityStatus) -> crate::metrics::CapacitySample {
    let paused_secs = entry
        .paused_until
        .as_deref()
        .and_then(|until| until.parse::<jiff::Timestamp>().ok())
        .map_or(0.0, |until| {
            until
                .duration_since(jiff::Timestamp::now())
                .as_secs_f64()
                .max(0.0)
        });
    crate::metrics::CapacitySample {
        provider: entry.provider,
        kinds: entry
            .limits
            .iter()
            .map(|k| (k.kind, k.limit, k.left_now, k.used_this_minute))
            .collect(),
        paused_secs,
        in_flight: entry.in_flight,
        waiting_interactive: entry.waiting_interactive,
        waiting_batch: entry.waiting_batch,
    }
}
