//! Records finished attempts in Redis in batches: whatever has finished by the time the previous
//! batch is written goes into the next one, so a busy pool makes one Lua call per many jobs and
//! an idle one adds no waiting.

use std::collections::HashMap;
use std::time::Duration;

use tokio::sync::mpsc;

use super::history::{HistoryRow, HistorySink};
use super::inflight::InFlight;
use super::kinds::JobKind;
use super::latency::LatencyBook;
use super::store::{Finish, Outcome, TaskStore};
use super::webhook_job::WebhookJob;
use crate::audit::{AuditLog, RequestFacts};
use crate::metrics::UsageMeter;

const BATCH: usize = 512;

pub struct Completer {
    pub store: TaskStore,
    pub kind: JobKind,
    pub inflight: InFlight,
    pub history: HistorySink,
    pub latency: LatencyBook,
    pub audit: AuditLog,
    pub usage: UsageMeter,
}

impl Completer {
    /// Runs until every sender is gone and everything received is recorded.
    pub async fn run(self, mut finished: mpsc::UnboundedReceiver<Finish>) {
        while let Some(first) = finished.recv().await {
            let mut batch = vec![first];
            while batch.len() < BATCH {
                match finished.try_recv() {
                    Ok(finish) => batch.push(finish),
                    Err(_) => break,
                }
            }
            self.record(batch).await;
        }
    }

    /// Writes one batch, retrying until Redis takes it: an unrecorded finish would run again.
    pub async fn record(&self, batch: Vec<Finish>) {
        let mut pause = Duration::from_millis(50);
        let results = loop {
            match self.store.finish_batch(&self.kind, &batch).await {
                Ok(results) => break results,
                Err(err) => {
                    tracing::warn!(%err, jobs = batch.len(), "recording finished jobs failed; retrying");
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(Duration::from_secs(2));
                }
            }
        };
        let mut samples: HashMap<String, Vec<f64>> = HashMap::new();
        let mut webhooks = Vec::new();
        for (mut finish, result) in batch.into_iter().zip(results) {
            self.inflight
                .end(finish.entry_id.as_deref(), &finish.task_id);
            if !result.applied {
                continue;
            }
            let now_us = jiff::Timestamp::now().as_microsecond();
            let ran = result
                .started_us
                .map(|started| Duration::from_micros(now_us.saturating_sub(started).max(0) as u64));
            let state = match finish.outcome {
                Outcome::Succeeded => "succeeded",
                Outcome::Failed => "failed",
                Outcome::Dead => "dead",
                Outcome::Retrying(_) => {
                    crate::metrics::job_finished(&self.kind.name, "retrying", ran);
                    continue;
                }
            };
            crate::metrics::job_finished(&self.kind.name, state, ran);
            if finish.outcome == Outcome::Succeeded {
                self.usage.record(&result.feature, &finish.payload);
            }
            if let (Outcome::Succeeded, Some(ms)) = (
                finish.outcome,
                finish.payload.get("latency_ms").and_then(|v| v.as_f64()),
            ) {
                samples.entry(result.feature.clone()).or_default().push(ms);
            }
            if let Some(url) = &result.callback_url {
                let job = WebhookJob::for_final(
                    &finish.task_id,
                    &result.user_id,
                    state,
                    url,
                    &finish.payload,
                );
                webhooks.push(job.into_task(&result.user_id, &result.role, &result.request_id));
            }
            if let Some(row) =
                HistoryRow::from_finish(&finish.task_id, state, &result, &finish.payload)
            {
                self.history.record(row);
            }
            let facts = RequestFacts {
                task_id: finish.task_id.clone(),
                request_id: result.request_id.clone(),
                user_id: result.user_id.clone(),
                role: result.role.clone(),
                feature: result.feature.clone(),
                prompt_name: None,
                prompt_version: None,
                client_ip: None,
            };
            let duration_ms = result.created_us.map(|created| (now_us - created) / 1000);
            let outcome = std::mem::take(&mut finish.payload);
            self.audit
                .finished(facts, state, outcome, duration_ms, result.attempts);
        }
        if let Err(err) = self.store.enqueue_many(&webhooks).await {
            tracing::error!(%err, count = webhooks.len(), "could not queue webhook deliveries");
        }
        for (feature, samples) in samples {
            self.latency.observe(&feature, &samples);
        }
    }
}
