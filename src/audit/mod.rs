//! The audit trail (DESIGN.md §9): every AI request leaves a `pre_request` event and a
//! `success` or `error` event in PostgreSQL (`audit_events`), written off the request path.
//!
//! `record` never blocks and never drops: events go into a bounded channel; when it is full
//! (or the writer is gone) they go straight to the Redis spool. The writer inserts in batches;
//! a batch PostgreSQL cannot take goes to the spool too, and a drainer moves the spool back in
//! order once PostgreSQL answers. A single event PostgreSQL refuses for its content is
//! isolated from its batch and quarantined (`audit_quarantine`), so it never blocks the rest. Event ids are derived from task ids and inserts skip existing ids, so
//! retries and re-runs never duplicate a row. Secrets never reach an event: configured keys are
//! redacted and long strings cut (`audit.redact_fields`, `audit.max_field_bytes`).

mod copy;
pub mod event;
pub mod quarantine;
pub mod reports;
mod spool;
mod writer;

use std::sync::Arc;
use std::time::Duration;

use crate::storage::RedisConnection;
use serde_json::{Value as Json, json};
use sqlx::PgPool;
use tokio::sync::mpsc;

use crate::config::AuditSettings;
use crate::facts::TaskFacts;
use crate::outcome::{Outcome, PromptRef};
pub use event::{AuditEvent, Kind, event_id, input_hash};
use spool::Spool;
pub use spool::{KEY as SPOOL_KEY, LOCK as SPOOL_LOCK};
use writer::Message;

/// Who asked for what: the facts every event of a request carries.
#[derive(Debug, Clone)]
pub struct RequestFacts {
    pub task: TaskFacts,
    /// The prompt the request was rendered with, when known (else the answer's).
    pub prompt: Option<PromptRef>,
    /// The client's address (at intake only).
    pub client_ip: Option<String>,
}

impl RequestFacts {
    /// A task's facts, with no prompt and no client address known.
    pub fn of(task: TaskFacts) -> Self {
        Self {
            task,
            prompt: None,
            client_ip: None,
        }
    }
}

/// Events waiting in the Redis spool for PostgreSQL, whichever process spooled them.
pub async fn spool_length(redis: &RedisConnection) -> redis::RedisResult<u64> {
    Spool::new(redis.clone()).len().await
}

#[derive(Clone)]
pub struct AuditLog(Option<Arc<Inner>>);

struct Inner {
    tx: mpsc::Sender<Message>,
    spool: Spool,
    settings: AuditSettings,
    /// Events that found the channel full, waiting for the one task that spools them (in
    /// batches: one RPUSH for everything that piled up meanwhile).
    overflow: std::sync::Mutex<Vec<AuditEvent>>,
}

impl AuditLog {
    /// Starts the writer and the spool drainer (when auditing is on).
    pub fn start(settings: &AuditSettings, pool: PgPool, redis: RedisConnection) -> Self {
        if !settings.enabled {
            return Self(None);
        }
        let (tx, rx) = mpsc::channel(settings.channel_capacity.max(1));
        let spool = Spool::new(redis);
        tokio::spawn(writer::run(
            pool.clone(),
            spool.clone(),
            rx,
            settings.clone(),
        ));
        spool.spawn_drainer(pool.clone(), Duration::from_secs(1));
        if settings.retention_days > 0 {
            let days = settings.retention_days;
            tokio::spawn(async move {
                let mut timer = tokio::time::interval(Duration::from_secs(3600));
                loop {
                    timer.tick().await;
                    match reports::delete_older_than(&pool, days).await {
                        Ok(0) => {}
                        Ok(deleted) => tracing::info!(deleted, days, "old audit events deleted"),
                        Err(err) => tracing::debug!(%err, "deleting old audit events failed"),
                    }
                }
            });
        }
        Self(Some(Arc::new(Inner {
            tx,
            spool,
            settings: settings.clone(),
            overflow: std::sync::Mutex::default(),
        })))
    }

    /// An audit log that records nothing.
    pub fn disabled() -> Self {
        Self(None)
    }

    /// Hands the event to the writer, or (channel full) straight to the spool. Never waits.
    pub fn record(&self, event: AuditEvent) {
        let Some(inner) = &self.0 else { return };
        let event = match inner.tx.try_send(Message::Event(Box::new(event))) {
            Ok(()) => return,
            Err(
                mpsc::error::TrySendError::Full(Message::Event(event))
                | mpsc::error::TrySendError::Closed(Message::Event(event)),
            ) => *event,
            Err(_) => return,
        };
        let first = {
            let mut overflow = inner.overflow.lock().unwrap_or_else(|e| e.into_inner());
            overflow.push(event);
            overflow.len() == 1
        };
        if first {
            // The first overflowing event starts the spooler; later ones join its next batch.
            let inner = inner.clone();
            tokio::spawn(async move {
                let mut pause = Duration::from_millis(100);
                loop {
                    let batch = std::mem::take(
                        &mut *inner.overflow.lock().unwrap_or_else(|e| e.into_inner()),
                    );
                    if batch.is_empty() {
                        return;
                    }
                    if let Err(err) = inner.spool.push(&batch).await {
                        tracing::error!(%err, events = batch.len(), "could not spool audit events; retrying");
                        {
                            // Back in front of what arrived meanwhile, keeping the order.
                            let mut overflow =
                                inner.overflow.lock().unwrap_or_else(|e| e.into_inner());
                            let newer = std::mem::replace(&mut *overflow, batch);
                            overflow.extend(newer);
                        }
                        tokio::time::sleep(pause).await;
                        pause = (pause * 2).min(Duration::from_secs(5));
                    }
                }
            });
        }
    }

    /// Hands the event to the writer, waiting while its channel is full (for bulk writers such
    /// as the benchmark; requests use [`record`](Self::record), which never waits).
    pub async fn send(&self, event: AuditEvent) {
        if let Some(inner) = &self.0
            && let Err(err) = inner.tx.send(Message::Event(Box::new(event))).await
            && let Message::Event(event) = err.0
        {
            self.record(*event);
        }
    }

    /// Waits (at most `limit`) until everything recorded so far is in PostgreSQL or the spool.
    pub async fn flush(&self, limit: Duration) {
        let Some(inner) = &self.0 else { return };
        let (done, wait) = tokio::sync::oneshot::channel();
        if inner.tx.send(Message::Flush(done)).await.is_ok()
            && tokio::time::timeout(limit, wait).await.is_err()
        {
            tracing::warn!("audit events not all written before shutdown");
        }
    }

    /// `pre_request`: the validated input, its hash and who sent it, before anything runs.
    /// The input is copied once; hashing and redaction then work on that copy in place.
    pub fn pre_request(&self, facts: &RequestFacts, input: &Json) {
        let Some(inner) = &self.0 else { return };
        let settings = &inner.settings;
        let mut input = input.clone();
        event::hash_in_place(
            &mut input,
            &settings.hash_fields,
            settings.hash_key.as_ref().map(|k| k.expose()),
        );
        let hash = input_hash(&input);
        event::redact_in_place(
            &mut input,
            &settings.redact_fields,
            settings.max_field_bytes,
        );
        let payload = json!({ "input_hash": hash, "input": input });
        self.record(base(facts, Kind::PreRequest, payload));
    }

    /// `flag`: moderation flags raised by a request's input (once per task).
    pub fn flag(&self, facts: &RequestFacts, flags: Json) {
        if self.0.is_some() {
            self.record(base(facts, Kind::Flag, json!({ "flags": flags })));
        }
    }

    /// `guard`: the hint guard refused generated hints of a request (what kind of leak, how
    /// it ended); never the leaked text.
    pub fn guard(&self, facts: &RequestFacts, details: Json) {
        if self.0.is_some() {
            self.record(base(facts, Kind::Guard, details));
        }
    }

    /// `error` for a request refused before it ran (a limit, a cancellation).
    pub fn refused(&self, facts: &RequestFacts, kind: &str, message: &str) {
        if self.0.is_none() {
            return;
        }
        let mut event = base(
            facts,
            Kind::Error,
            json!({ "error": { "kind": kind, "message": message } }),
        );
        event.error_kind = Some(kind.to_owned());
        self.record(event);
    }

    /// `success` or `error` for a task that reached a final state, from its outcome (the
    /// answer and how it was made, or the error). The event is built by the writer, off the
    /// caller's path (the completer records whole batches of jobs at once).
    pub fn finished(
        &self,
        facts: RequestFacts,
        state: &str,
        outcome: Outcome,
        duration_ms: Option<i64>,
        attempts: u32,
    ) {
        let Some(inner) = &self.0 else { return };
        let done = Final {
            facts,
            state: state.to_owned(),
            outcome,
            duration_ms,
            attempts,
        };
        match inner.tx.try_send(Message::Final(Box::new(done))) {
            Ok(()) => {}
            Err(
                mpsc::error::TrySendError::Full(Message::Final(done))
                | mpsc::error::TrySendError::Closed(Message::Final(done)),
            ) => self.record(final_event(&inner.settings, *done)),
            Err(_) => {}
        }
    }
}

/// A final outcome on its way to becoming an event.
pub struct Final {
    facts: RequestFacts,
    state: String,
    outcome: Outcome,
    duration_ms: Option<i64>,
    attempts: u32,
}

/// The `success` or `error` event of a final outcome.
fn final_event(settings: &AuditSettings, done: Final) -> AuditEvent {
    let Final {
        mut facts,
        state,
        outcome,
        duration_ms,
        attempts,
    } = done;
    let clean = |mut value: Json| {
        event::redact_in_place(
            &mut value,
            &settings.redact_fields,
            settings.max_field_bytes,
        );
        value
    };
    let Outcome {
        result,
        answer,
        error,
    } = outcome;
    if let Some(answer) = &answer {
        facts.prompt.get_or_insert_with(|| answer.prompt.clone());
    }
    let success = state == "succeeded";
    let error_kind = (!success).then(|| {
        error
            .as_ref()
            .map_or_else(|| state.clone(), |error| error.kind.clone())
    });
    let usage = answer.as_ref().map(|a| a.usage).unwrap_or_default();
    let failed_providers = answer
        .as_ref()
        .map(|a| a.failed_providers.clone())
        .filter(|failed| !failed.is_empty());
    let payload = if success {
        json!({
            "response": clean(result.unwrap_or_default()),
            "usage": answer.as_ref().map(|a| a.usage),
            "finish_reason": answer.as_ref().map(|a| a.finish_reason),
            "attempts": attempts,
            "failed_providers": failed_providers,
        })
    } else {
        json!({
            "state": state,
            "error": clean(error.map(|e| json!(e)).unwrap_or_default()),
            "attempts": attempts,
            "failed_providers": failed_providers,
        })
    };
    let mut event = base(
        &facts,
        if success { Kind::Success } else { Kind::Error },
        payload,
    );
    let (prompt_tokens, completion_tokens) = (
        u64::from(usage.prompt_tokens),
        u64::from(usage.completion_tokens),
    );
    if let Some(answer) = answer {
        event.cost_usd = settings.cost(
            &answer.provider,
            &answer.model,
            prompt_tokens,
            completion_tokens,
        );
        event.cached = answer.cached;
        event.degraded = answer.degraded;
        event.provider = Some(answer.provider);
        event.model = Some(answer.model);
    }
    event.prompt_tokens = prompt_tokens as i32;
    event.completion_tokens = completion_tokens as i32;
    event.duration_ms = duration_ms.map(|ms| ms.clamp(0, i32::MAX as i64) as i32);
    event.error_kind = error_kind;
    event
}

fn base(facts: &RequestFacts, kind: Kind, payload: Json) -> AuditEvent {
    AuditEvent {
        id: event_id(&facts.task.task_id, kind),
        kind,
        request_id: facts.task.request_id.clone(),
        task_id: facts.task.task_id.parse().ok(),
        user_id: facts.task.user_id.clone(),
        role: facts.task.role.as_str().to_owned(),
        feature: facts.task.feature_name().to_owned(),
        prompt_name: facts.prompt.as_ref().map(|p| p.name.clone()),
        prompt_version: facts.prompt.as_ref().map(|p| p.version.clone()),
        at_us: jiff::Timestamp::now().as_microsecond(),
        provider: None,
        model: None,
        prompt_tokens: 0,
        completion_tokens: 0,
        cost_usd: 0.0,
        duration_ms: None,
        cached: false,
        degraded: false,
        error_kind: None,
        client_ip: facts.client_ip.clone(),
        payload,
    }
}
