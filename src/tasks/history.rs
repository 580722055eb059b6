//! Task history in PostgreSQL: one row per task that reached a final state, written in batches
//! off the job path. While PostgreSQL is unreachable rows wait in memory (bounded) and are
//! retried.

use std::collections::VecDeque;
use std::time::Duration;

use futures_util::future::BoxFuture;
use sqlx::PgPool;
use tokio::sync::mpsc;
use uuid::Uuid;

use super::hooks::{FinishHook, FinishedTask};

/// Rows kept while PostgreSQL is down; beyond this the oldest are dropped (and logged).
const MAX_BUFFERED: usize = 100_000;
const BATCH: usize = 1_000;

#[derive(Debug, Clone)]
pub struct HistoryRow {
    pub id: Uuid,
    pub request_id: String,
    pub user_id: String,
    pub role: String,
    pub feature: String,
    pub prompt_name: String,
    pub prompt_version: String,
    pub state: String,
    pub attempts: i32,
    pub provider: Option<String>,
    pub model: Option<String>,
    pub degraded: bool,
    pub cached: bool,
    pub prompt_tokens: i32,
    pub completion_tokens: i32,
    pub error_kind: Option<String>,
    pub error_message: Option<String>,
    pub created_us: i64,
    pub started_us: Option<i64>,
    pub finished_us: i64,
}

impl HistoryRow {
    /// A row for a task that has just been recorded final.
    pub fn from_finished(task: &FinishedTask) -> Option<Self> {
        let (facts, life, outcome) = (&task.facts, &task.life, &task.outcome);
        let answer = outcome.answer.as_ref();
        let error = outcome.error.as_ref();
        Some(Self {
            id: Uuid::parse_str(&facts.task_id).ok()?,
            request_id: facts.request_id.clone(),
            user_id: facts.user_id.clone(),
            role: facts.role.as_str().to_owned(),
            feature: facts.feature_name().to_owned(),
            prompt_name: answer.map(|a| a.prompt.name.clone()).unwrap_or_default(),
            prompt_version: answer.map(|a| a.prompt.version.clone()).unwrap_or_default(),
            state: task.state.as_str().to_owned(),
            attempts: life.attempts as i32,
            provider: answer.map(|a| a.provider.clone()),
            model: answer.map(|a| a.model.clone()),
            degraded: answer.is_some_and(|a| a.degraded),
            cached: answer.is_some_and(|a| a.cached),
            prompt_tokens: answer.map_or(0, |a| a.usage.prompt_tokens as i32),
            completion_tokens: answer.map_or(0, |a| a.usage.completion_tokens as i32),
            error_kind: error.map(|e| e.kind.clone()),
            error_message: error.map(|e| e.message.clone()),
            created_us: life.created_us?,
            started_us: life.started_us,
            finished_us: task
                .finished_us
                .unwrap_or_else(|| jiff::Timestamp::now().as_microsecond()),
        })
    }

    /// A row for a task read back from Redis (cancelled by the API, dead at start).
    pub fn from_record(record: &super::record::TaskRecord) -> Option<Self> {
        Self::from_finished(&FinishedTask::from_record(record.clone(), record.state))
    }
}

enum Message {
    Row(Box<HistoryRow>),
    /// Answered once everything sent before it is written (or given up on).
    Flush(tokio::sync::oneshot::Sender<()>),
}

/// Where finished tasks send their history row.
#[derive(Clone)]
pub struct HistorySink(mpsc::UnboundedSender<Message>);

impl HistorySink {
    pub fn record(&self, row: HistoryRow) {
        let _ = self.0.send(Message::Row(Box::new(row)));
    }

    /// Waits (at most `limit`) until every row recorded so far is written.
    pub async fn flush(&self, limit: Duration) {
        let (tx, rx) = tokio::sync::oneshot::channel();
        if self.0.send(Message::Flush(tx)).is_ok() && tokio::time::timeout(limit, rx).await.is_err()
        {
            tracing::warn!("task history not fully written before shutdown");
        }
    }
}

/// Every final task gets its row, including one that died at start.
impl FinishHook for HistorySink {
    fn finished<'a>(&'a self, tasks: &'a [FinishedTask]) -> BoxFuture<'a, ()> {
        tasks.iter().for_each(|task| self.record_final(task));
        Box::pin(async {})
    }

    fn died_at_start(&self, task: &FinishedTask) {
        self.record_final(task);
    }
}

impl HistorySink {
    fn record_final(&self, task: &FinishedTask) {
        if let Some(row) = HistoryRow::from_finished(task) {
            self.record(row);
        }
    }
}

/// Starts the writer; it ends after the last sink is dropped and its rows are written (or
/// PostgreSQL stayed unreachable through the final attempts).
pub fn spawn(pool: PgPool) -> (HistorySink, tokio::task::JoinHandle<()>) {
    let (tx, rx) = mpsc::unbounded_channel();
    (HistorySink(tx), tokio::spawn(write_loop(pool, rx)))
}

async fn write_loop(pool: PgPool, mut rx: mpsc::UnboundedReceiver<Message>) {
    let mut buffer: VecDeque<HistoryRow> = VecDeque::new();
    let mut flushes: Vec<tokio::sync::oneshot::Sender<()>> = Vec::new();
    let mut open = true;
    let mut pause = Duration::from_millis(100);
    let mut failures_after_close = 0;
    while open || !buffer.is_empty() {
        if buffer.is_empty() {
            for flush in flushes.drain(..) {
                let _ = flush.send(());
            }
            match rx.recv().await {
                Some(Message::Row(row)) => buffer.push_back(*row),
                Some(Message::Flush(done)) => {
                    let _ = done.send(());
                    continue;
                }
                None => break,
            }
        }
        while buffer.len() < BATCH {
            match rx.try_recv() {
                Ok(Message::Row(row)) => buffer.push_back(*row),
                Ok(Message::Flush(done)) => flushes.push(done),
                Err(mpsc::error::TryRecvError::Empty) => break,
                Err(mpsc::error::TryRecvError::Disconnected) => {
                    open = false;
                    break;
                }
            }
        }
        let take = buffer.len().min(BATCH);
        let batch: Vec<HistoryRow> = buffer.iter().take(take).cloned().collect();
        match insert(&pool, &batch).await {
            Ok(()) => {
                buffer.drain(..take);
                pause = Duration::from_millis(100);
            }
            Err(err) => {
                tracing::warn!(%err, buffered = buffer.len(), "writing task history failed; will retry");
                if buffer.len() > MAX_BUFFERED {
                    let dropped = buffer.len() - MAX_BUFFERED;
                    buffer.drain(..dropped);
                    tracing::error!(dropped, "task history buffer full; dropped the oldest rows");
                }
                if !open {
                    failures_after_close += 1;
                    if failures_after_close > 5 || !flushes.is_empty() && failures_after_close > 2 {
                        tracing::error!(
                            lost = buffer.len(),
                            "shutting down with task history unwritten"
                        );
                        return;
                    }
                }
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_secs(5));
            }
        }
    }
}

async fn insert(pool: &PgPool, rows: &[HistoryRow]) -> sqlx::Result<()> {
    let column = |f: fn(&HistoryRow) -> String| rows.iter().map(f).collect::<Vec<String>>();
    let optional =
        |f: fn(&HistoryRow) -> Option<String>| rows.iter().map(f).collect::<Vec<Option<String>>>();
    let seconds = |us: i64| us as f64 / 1_000_000.0;
    sqlx::query(
        "INSERT INTO task_history (id, request_id, user_id, role, feature, prompt_name, prompt_version, state, attempts, \
         provider, model, degraded, cached, prompt_tokens, completion_tokens, error_kind, error_message, created_at, started_at, finished_at) \
         SELECT id, request_id, user_id, role, feature, prompt_name, prompt_version, state, attempts, provider, model, degraded, cached, \
         prompt_tokens, completion_tokens, error_kind, error_message, to_timestamp(created), to_timestamp(started), to_timestamp(finished) \
         FROM UNNEST($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[], $9::int4[], \
         $10::text[], $11::text[], $12::bool[], $13::bool[], $14::int4[], $15::int4[], $16::text[], $17::text[], $18::float8[], $19::float8[], $20::float8[]) \
         AS t(id, request_id, user_id, role, feature, prompt_name, prompt_version, state, attempts, provider, model, degraded, cached, \
         prompt_tokens, completion_tokens, error_kind, error_message, created, started, finished) \
         ON CONFLICT (id) DO NOTHING",
    )
    .bind(rows.iter().map(|r| r.id).collect::<Vec<Uuid>>())
    .bind(column(|r| r.request_id.clone()))
    .bind(column(|r| r.user_id.clone()))
    .bind(column(|r| r.role.clone()))
    .bind(column(|r| r.feature.clone()))
    .bind(column(|r| r.prompt_name.clone()))
    .bind(column(|r| r.prompt_version.clone()))
    .bind(column(|r| r.state.clone()))
    .bind(rows.iter().map(|r| r.attempts).collect::<Vec<i32>>())
    .bind(optional(|r| r.provider.clone()))
    .bind(optional(|r| r.model.clone()))
    .bind(rows.iter().map(|r| r.degraded).collect::<Vec<bool>>())
    .bind(rows.iter().map(|r| r.cached).collect::<Vec<bool>>())
    .bind(rows.iter().map(|r| r.prompt_tokens).collect::<Vec<i32>>())
    .bind(rows.iter().map(|r| r.completion_tokens).collect::<Vec<i32>>())
    .bind(optional(|r| r.error_kind.clone()))
    .bind(optional(|r| r.error_message.clone()))
    .bind(rows.iter().map(|r| seconds(r.created_us)).collect::<Vec<f64>>())
    .bind(rows.iter().map(|r| r.started_us.map(seconds)).collect::<Vec<Option<f64>>>())
    .bind(rows.iter().map(|r| seconds(r.finished_us)).collect::<Vec<f64>>())
    .execute(pool)
    .await?;
    Ok(())
}
