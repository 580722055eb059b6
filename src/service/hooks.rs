//! What the service does once the engine records a task final, installed on the engine at
//! start-up in one list: the task's history row, usage metering, latency samples, and last the
//! audit event (which keeps the outcome). (The webhook is queued by the engine's follow-up step,
//! `webhooks::queue_finals`.)

use std::collections::HashMap;

use futures_util::future::BoxFuture;

use crate::audit::{AuditLog, RequestFacts};
use crate::metrics::UsageMeter;
use crate::tasks::{
    Engine, FinishHook, FinishHooks, FinishKeeper, FinishedTask, LatencyBook, TaskRecord, TaskState,
};

/// `engine` with the service's finish hooks installed.
pub fn install(engine: Engine, audit: &AuditLog, usage: UsageMeter) -> Engine {
    let hooks = FinishHooks::new()
        .with(engine.history.clone())
        .with(Metering(usage))
        .with(LatencySamples(engine.latency.clone()))
        .kept_by(AuditFinals(audit.clone()));
    engine.with_hooks(hooks)
}

/// Tokens and cost of each succeeded task, for `/metrics`.
struct Metering(UsageMeter);

impl FinishHook for Metering {
    fn finished<'a>(&'a self, tasks: &'a [FinishedTask]) -> BoxFuture<'a, ()> {
        for task in succeeded(tasks) {
            if let Some(answer) = &task.outcome.answer {
                self.0.record(task.facts.feature, answer);
            }
        }
        Box::pin(async {})
    }
}

/// The run time of each succeeded task teaches its feature's latency estimate (the inline or
/// queue decision), folded once per feature and batch.
struct LatencySamples(LatencyBook);

impl FinishHook for LatencySamples {
    fn finished<'a>(&'a self, tasks: &'a [FinishedTask]) -> BoxFuture<'a, ()> {
        let mut samples: HashMap<&'static str, Vec<f64>> = HashMap::new();
        for task in succeeded(tasks) {
            if let Some(answer) = &task.outcome.answer {
                samples
                    .entry(task.facts.feature_name())
                    .or_default()
                    .push(answer.latency_ms as f64);
            }
        }
        for (feature, samples) in samples {
            self.0.observe(feature, &samples);
        }
        Box::pin(async {})
    }
}

fn succeeded(tasks: &[FinishedTask]) -> impl Iterator<Item = &FinishedTask> {
    tasks.iter().filter(|t| t.state == TaskState::Succeeded)
}

/// The `success` or `error` event of every final task, including one that died at start; the
/// outcome moves into the event.
struct AuditFinals(AuditLog);

impl FinishKeeper for AuditFinals {
    fn keep(&self, tasks: Vec<FinishedTask>) {
        for task in tasks {
            let duration_ms = task.duration_ms();
            self.0.finished(
                RequestFacts::of(task.facts),
                task.state.as_str(),
                task.outcome,
                duration_ms,
                task.life.attempts,
            );
        }
    }
}

/// What the audit trail needs to know of the request behind a task read back from its record.
pub fn audit_facts(record: &TaskRecord) -> RequestFacts {
    RequestFacts::of(record.facts.clone())
}
