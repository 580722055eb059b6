//! The writer: events from a bounded channel, inserted in batches (one multi-row INSERT per
//! batch, `ON CONFLICT (id) DO NOTHING`). A batch PostgreSQL refuses goes to the Redis spool; if
//! Redis refuses it too, it stays in memory and both are tried again. Nothing is dropped.

use std::time::Duration;

use sqlx::PgPool;
use tokio::sync::{mpsc, oneshot};
use uuid::Uuid;

use super::event::AuditEvent;
use super::spool::Spool;

pub enum Message {
    Event(Box<AuditEvent>),
    /// A final outcome the writer turns into its event.
    Final(Box<super::Final>),
    Flush(oneshot::Sender<()>),
}

pub async fn run(
    pool: PgPool,
    spool: Spool,
    mut rx: mpsc::Receiver<Message>,
    settings: crate::config::AuditSettings,
) {
    let batch_size = settings.batch_size.max(1);
    let flush = Duration::from_millis(settings.flush_ms);
    let mut batch: Vec<AuditEvent> = Vec::new();
    let mut waiting: Vec<oneshot::Sender<()>> = Vec::new();
    let mut open = true;
    while open || !batch.is_empty() {
        if batch.is_empty() {
            match rx.recv().await {
                Some(Message::Event(event)) => batch.push(*event),
                Some(Message::Final(done)) => batch.push(super::final_event(&settings, *done)),
                Some(Message::Flush(done)) => {
                    let _ = done.send(());
                    continue;
                }
                None => break,
            }
            // Gather what arrives within `flush`, up to a batch.
            let deadline = tokio::time::Instant::now() + flush;
            while batch.len() < batch_size {
                match tokio::time::timeout_at(deadline, rx.recv()).await {
                    Ok(Some(Message::Event(event))) => batch.push(*event),
                    Ok(Some(Message::Final(done))) => {
                        batch.push(super::final_event(&settings, *done));
                    }
                    Ok(Some(Message::Flush(done))) => {
                        waiting.push(done);
                        break;
                    }
                    Ok(None) => {
                        open = false;
                        break;
                    }
                    Err(_) => break,
                }
            }
        }
        store(&pool, &spool, &mut batch).await;
        if batch.is_empty() {
            for done in waiting.drain(..) {
                let _ = done.send(());
            }
        }
    }
    for done in waiting {
        let _ = done.send(());
    }
}

/// Writes the batch to PostgreSQL, else to the spool; empties it once either took it.
async fn store(pool: &PgPool, spool: &Spool, batch: &mut Vec<AuditEvent>) {
    let mut pause = Duration::from_millis(100);
    loop {
        match insert(pool, batch).await {
            Ok(()) => break,
            Err(db_err) => match spool.push(batch).await {
                Ok(()) => {
                    tracing::warn!(%db_err, events = batch.len(), "PostgreSQL refused audit events; spooled them in Redis");
                    break;
                }
                Err(redis_err) => {
                    tracing::error!(%db_err, %redis_err, events = batch.len(), "neither PostgreSQL nor Redis takes audit events; holding them and retrying");
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(Duration::from_secs(5));
                }
            },
        }
    }
    batch.clear();
}

/// One multi-row INSERT; a row already there (a retry) is skipped.
pub async fn insert(pool: &PgPool, events: &[AuditEvent]) -> sqlx::Result<()> {
    if events.is_empty() {
        return Ok(());
    }
    let text = |f: fn(&AuditEvent) -> String| events.iter().map(f).collect::<Vec<String>>();
    let optional = |f: fn(&AuditEvent) -> Option<String>| {
        events.iter().map(f).collect::<Vec<Option<String>>>()
    };
    sqlx::query(
        "INSERT INTO audit_events (id, kind, request_id, task_id, user_id, role, feature, prompt_name, \
         prompt_version, created_at, provider, model, prompt_tokens, completion_tokens, cost_usd, \
         duration_ms, cached, degraded, error_kind, client_ip, payload) \
         SELECT id, kind, request_id, task_id, user_id, role, feature, prompt_name, prompt_version, \
         to_timestamp(at_us / 1000000.0), provider, model, prompt_tokens, completion_tokens, cost_usd, \
         duration_ms, cached, degraded, error_kind, client_ip, payload \
         FROM UNNEST($1::uuid[], $2::text[], $3::text[], $4::uuid[], $5::text[], $6::text[], $7::text[], \
         $8::text[], $9::text[], $10::int8[], $11::text[], $12::text[], $13::int4[], $14::int4[], \
         $15::float8[], $16::int4[], $17::bool[], $18::bool[], $19::text[], $20::text[], $21::jsonb[]) \
         AS t(id, kind, request_id, task_id, user_id, role, feature, prompt_name, prompt_version, at_us, \
         provider, model, prompt_tokens, completion_tokens, cost_usd, duration_ms, cached, degraded, \
         error_kind, client_ip, payload) \
         ON CONFLICT (id) DO NOTHING",
    )
    .bind(events.iter().map(|e| e.id).collect::<Vec<Uuid>>())
    .bind(text(|e| e.kind.as_str().to_owned()))
    .bind(text(|e| e.request_id.clone()))
    .bind(events.iter().map(|e| e.task_id).collect::<Vec<Option<Uuid>>>())
    .bind(text(|e| e.user_id.clone()))
    .bind(text(|e| e.role.clone()))
    .bind(text(|e| e.feature.clone()))
    .bind(optional(|e| e.prompt_name.clone()))
    .bind(optional(|e| e.prompt_version.clone()))
    .bind(events.iter().map(|e| e.at_us).collect::<Vec<i64>>())
    .bind(optional(|e| e.provider.clone()))
    .bind(optional(|e| e.model.clone()))
    .bind(events.iter().map(|e| e.prompt_tokens).collect::<Vec<i32>>())
    .bind(events.iter().map(|e| e.completion_tokens).collect::<Vec<i32>>())
    .bind(events.iter().map(|e| e.cost_usd).collect::<Vec<f64>>())
    .bind(events.iter().map(|e| e.duration_ms).collect::<Vec<Option<i32>>>())
    .bind(events.iter().map(|e| e.cached).collect::<Vec<bool>>())
    .bind(events.iter().map(|e| e.degraded).collect::<Vec<bool>>())
    .bind(optional(|e| e.error_kind.clone()))
    .bind(optional(|e| e.client_ip.clone()))
    .bind(events.iter().map(|e| e.payload.clone()).collect::<Vec<serde_json::Value>>())
    .execute(pool)
    .await?;
    Ok(())
}
