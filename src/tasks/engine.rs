//! The engine handle every process holds: the task store, what this process runs, the history
//! writer, the latency book and the finish hooks the service installed.

use std::sync::Arc;

use super::completer::Completer;
use super::history::{self, HistorySink};
use super::hooks::FinishHooks;
use super::hub::Hub;
use super::inflight::InFlight;
use super::kinds::JobKind;
use super::kinds::JobKinds;
use super::latency::LatencyBook;
use super::store::Finish;
use super::store::TaskStore;

#[derive(Clone)]
pub struct Engine {
    pub store: TaskStore,
    pub inflight: InFlight,
    pub history: HistorySink,
    pub latency: LatencyBook,
    pub hub: Hub,
    /// What happens once a task is recorded final (see [`Engine::with_hooks`]).
    hooks: Arc<FinishHooks>,
}

impl Engine {
    /// Starts the history writer and the cancel listener of this process. No finish hooks yet:
    /// install them with [`Engine::with_hooks`] before any pool or inline run starts.
    pub fn start(
        conn: crate::storage::RedisConnection,
        servers: crate::storage::RedisServers,
        db: sqlx::PgPool,
        kinds: JobKinds,
        parts: super::keys::Partitions,
        steps: super::outbox::FollowUpSteps,
        durability: super::store::Durability,
    ) -> Self {
        let (history, _writer) = history::spawn(db);
        let inflight = InFlight::default();
        // Lives as long as the runtime; a process that never runs jobs just never hears a match.
        tokio::spawn(inflight.clone().listen_for_cancels(servers.clone()));
        let store = TaskStore::new(
            conn.clone(),
            servers.clone(),
            kinds,
            parts.clone(),
            steps,
            durability,
        );
        // Follow-ups a process left behind (`outbox.rs`), applied by whichever process looks.
        tokio::spawn(store.clone().sweep_forever());
        Self {
            hub: Hub::new(servers.clone(), conn.clone(), parts.clone()),
            latency: LatencyBook::new(conn.clone()),
            store: store.clone(),
            inflight,
            history,
            hooks: Arc::default(),
        }
    }

    /// The engine with `hooks` called whenever a task is recorded final.
    pub fn with_hooks(mut self, hooks: FinishHooks) -> Self {
        self.hooks = Arc::new(hooks);
        self
    }

    pub(super) fn hooks(&self) -> &Arc<FinishHooks> {
        &self.hooks
    }

    /// The completer of one kind: records finishes, then calls the hooks.
    pub(super) fn completer(&self, kind: &JobKind) -> Completer {
        Completer {
            store: self.store.clone(),
            kind: kind.clone(),
            inflight: self.inflight.clone(),
            hooks: self.hooks.clone(),
        }
    }

    /// Records finished attempts now (inline runs, and jobs that failed before reaching a worker).
    pub async fn record(&self, kind: &JobKind, batch: Vec<Finish>) {
        self.completer(kind).record(batch).await;
    }
}
