//! The writer: events from a bounded channel, written in batches (one binary `COPY` per batch;
//! a batch holding a row that is already there is inserted again with `ON CONFLICT (id) DO
//! NOTHING`). A row PostgreSQL refuses for its content is isolated (the batch is split until
//! only that row fails) and quarantined; the rest is written. A batch PostgreSQL cannot take
//! (it is away) goes to the Redis spool; if Redis refuses it too, it stays in memory and both
//! are tried again. Nothing is dropped.

use std::time::Duration;

use sqlx::PgPool;
use sqlx::postgres::PgPoolCopyExt as _;
use tokio::sync::{mpsc, oneshot};
use uuid::Uuid;

use super::event::AuditEvent;
use super::quarantine;
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
    let flush = Duration::from_millis(settings.flush_ms);
    let mut gather = Gather {
        limit: settings.batch_size.max(1),
        settings: &settings,
        batch: Vec::new(),
        flushes: Vec::new(),
        closed: false,
    };
    while let Some(first) = rx.recv().await {
        let deadline = tokio::time::Instant::now() + flush;
        gather.take(first);
        gather.drain(&mut rx);
        // Not full and no one waiting for a flush: one timer for the rest of the window, then
        // whatever arrived meanwhile. Waiting on the channel instead would wake this task once
        // per event, which cost the web process more than writing the events.
        if gather.wants_more() {
            tokio::time::sleep_until(deadline).await;
            gather.drain(&mut rx);
        }
        store(&pool, &spool, &mut gather.batch).await;
        for done in gather.flushes.drain(..) {
            let _ = done.send(());
        }
        if gather.closed {
            break;
        }
    }
}

/// One batch on its way: events (final outcomes made into events as they come) and the
/// flushes that wait for it.
struct Gather<'a> {
    limit: usize,
    settings: &'a crate::config::AuditSettings,
    batch: Vec<AuditEvent>,
    flushes: Vec<oneshot::Sender<()>>,
    closed: bool,
}

impl Gather<'_> {
    fn take(&mut self, message: Message) {
        match message {
            Message::Event(event) => self.batch.push(*event),
            Message::Final(done) => self.batch.push(super::final_event(self.settings, *done)),
            Message::Flush(done) => self.flushes.push(done),
        }
    }

    /// Takes what the channel holds now, up to a full batch.
    fn drain(&mut self, rx: &mut mpsc::Receiver<Message>) {
        while self.batch.len() < self.limit {
            match rx.try_recv() {
                Ok(message) => self.take(message),
                Err(mpsc::error::TryRecvError::Empty) => return,
                Err(mpsc::error::TryRecvError::Disconnected) => {
                    self.closed = true;
                    return;
                }
            }
        }
    }

    fn wants_more(&self) -> bool {
        self.batch.len() < self.limit && self.flushes.is_empty() && !self.closed
    }
}

/// Writes the batch to PostgreSQL, else to the spool; empties it once either took it.
async fn store(pool: &PgPool, spool: &Spool, batch: &mut Vec<AuditEvent>) {
    let mut pause = Duration::from_millis(100);
    loop {
        match write_isolating(pool, batch).await {
            Ok(_) => break,
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

/// Writes `events`, isolating the rows PostgreSQL refuses for their content into quarantine;
/// returns how many were quarantined. Fails only when PostgreSQL cannot take the batch at all
/// (then nothing is lost: the caller keeps the batch and tries again or spools it).
pub async fn write_isolating(pool: &PgPool, events: &[AuditEvent]) -> sqlx::Result<usize> {
    match write(pool, events).await {
        Ok(()) => Ok(0),
        Err(err) if quarantine::refuses_row(&err) => {
            if let [event] = events {
                tracing::error!(%err, event_id = %event.id, "PostgreSQL refused an audit event; quarantined it");
                quarantine::keep(pool, event, &err).await?;
                return Ok(1);
            }
            // Halves until each refused row stands alone: k bad rows of n cost about
            // 2·k·log2(n) writes, and the good rows of the batch are written.
            let (left, right) = events.split_at(events.len() / 2);
            let left = Box::pin(write_isolating(pool, left)).await?;
            let right = Box::pin(write_isolating(pool, right)).await?;
            Ok(left + right)
        }
        Err(err) => Err(err),
    }
}

/// Writes `events` with one binary `COPY`; when one of them is already there (a retried batch,
/// a re-run task), the whole batch again as an INSERT that skips existing rows.
pub async fn write(pool: &PgPool, events: &[AuditEvent]) -> sqlx::Result<()> {
    if events.is_empty() {
        return Ok(());
    }
    let rows = super::copy::encode(events);
    let copied = async {
        let mut copy = pool.copy_in_raw(super::copy::STATEMENT).await?;
        copy.send(rows).await?;
        copy.finish().await
    };
    match copied.await {
        Ok(_) => Ok(()),
        Err(sqlx::Error::Database(err)) if err.is_unique_violation() => insert(pool, events).await,
        Err(err) => Err(err),
    }
}

/// One multi-row INSERT; a row already there (a retry) is skipped.
async fn insert(pool: &PgPool, events: &[AuditEvent]) -> sqlx::Result<()> {
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
         duration_ms, cached, degraded, error_kind, client_ip, payload::json \
         FROM UNNEST($1::uuid[], $2::text[], $3::text[], $4::uuid[], $5::text[], $6::text[], $7::text[], \
         $8::text[], $9::text[], $10::int8[], $11::text[], $12::text[], $13::int4[], $14::int4[], \
         $15::float8[], $16::int4[], $17::bool[], $18::bool[], $19::text[], $20::text[], $21::text[]) \
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
    .bind(events.iter().map(|e| e.payload.to_string()).collect::<Vec<String>>())
    .execute(pool)
    .await?;
    Ok(())
}
