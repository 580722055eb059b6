//! The engine handle every process holds: the task store, what this process runs, the history
//! writer and the latency book.

use super::completer::Completer;
use super::history::{self, HistorySink};
use super::hub::Hub;
use super::inflight::InFlight;
use super::kinds::JobKind;
use super::kinds::JobKinds;
use super::latency::LatencyBook;
use super::store::Finish;
use super::store::TaskStore;
use crate::audit::AuditLog;
use crate::metrics::UsageMeter;

#[derive(Clone)]
pub struct Engine {
    pub store: TaskStore,
    pub inflight: InFlight,
    pub history: HistorySink,
    pub latency: LatencyBook,
    pub hub: Hub,
    pub audit: AuditLog,
    /// Counts finished tasks' tokens and cost for `/metrics`.
    pub usage: UsageMeter,
}

impl Engine {
    /// Starts the history writer and the cancel listener of this process.
    pub fn start(
        conn: redis::aio::ConnectionManager,
        client: redis::Client,
        db: sqlx::PgPool,
        kinds: JobKinds,
        audit: AuditLog,
        usage: UsageMeter,
    ) -> Self {
        let (history, _writer) = history::spawn(db);
        let inflight = InFlight::default();
        // Lives as long as the runtime; a process that never runs jobs just never hears a match.
        tokio::spawn(inflight.clone().listen_for_cancels(client.clone()));
        Self {
            hub: Hub::new(client.clone(), conn.clone()),
            latency: LatencyBook::new(conn.clone()),
            store: TaskStore::new(conn, client, kinds),
            inflight,
            history,
            audit,
            usage,
        }
    }

    /// Records finished attempts now (inline runs, and jobs that failed before reaching a worker).
    pub async fn record(&self, kind: &JobKind, batch: Vec<Finish>) {
        Completer {
            store: self.store.clone(),
            kind: kind.clone(),
            inflight: self.inflight.clone(),
            history: self.history.clone(),
            latency: self.latency.clone(),
            audit: self.audit.clone(),
            usage: self.usage.clone(),
        }
        .record(batch)
        .await;
    }
}
