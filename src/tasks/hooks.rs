//! What happens after the engine records a task final is not the engine's business: the
//! service installs finish hooks at start-up (history, audit, usage metering, latency samples,
//! webhooks) and the completer calls them once per recorded batch, after Redis took it.

use super::record::{TaskRecord, TaskState};
use crate::facts::TaskFacts;
use crate::outcome::Outcome;
use futures_util::future::BoxFuture;

/// When a task was created and last started, how often it was tried, and where its end is
/// announced: what the script recording its end read back besides its facts.
#[derive(Debug, Clone, Default)]
pub struct TaskLife {
    pub created_us: Option<i64>,
    pub started_us: Option<i64>,
    pub attempts: u32,
    /// Where the final event is POSTed, if anywhere.
    pub callback_url: Option<String>,
}

/// A task the engine just recorded in a final state.
#[derive(Debug, Clone)]
pub struct FinishedTask {
    pub facts: TaskFacts,
    pub state: TaskState,
    pub life: TaskLife,
    /// What the last attempt produced: the result, or the error.
    pub outcome: Outcome,
    /// When it was recorded final, if known.
    pub finished_us: Option<i64>,
}

impl FinishedTask {
    /// A task read back from its record (one the start script declared `state`).
    pub fn from_record(record: TaskRecord, state: TaskState) -> Self {
        Self {
            facts: record.facts,
            state,
            life: TaskLife {
                created_us: Some(record.created_us),
                started_us: record.started_us,
                attempts: record.attempts,
                callback_url: record.callback_url,
            },
            outcome: record.outcome.unwrap_or_default(),
            finished_us: record.finished_us,
        }
    }

    /// Milliseconds from creation to the final state, when both are known.
    pub fn duration_ms(&self) -> Option<i64> {
        Some((self.finished_us? - self.life.created_us?) / 1000)
    }
}

/// Sees the tasks of each recorded batch that reached a final state. Called on the completer's
/// path: do cheap work here and hand slow work off (a channel, one pipeline per batch).
pub trait FinishHook: Send + Sync + 'static {
    fn finished<'a>(&'a self, tasks: &'a [FinishedTask]) -> BoxFuture<'a, ()>;

    /// A task the start script declared dead because its workers kept dying: no attempt of it
    /// ended, only its record speaks for it. Nothing happens unless the hook says so.
    fn died_at_start(&self, task: &FinishedTask) {
        let _ = task;
    }
}

/// The last to see finished tasks, and the one that keeps them: it takes them by value, so
/// what it keeps (the audit trail's outcome) is moved, never copied.
pub trait FinishKeeper: Send + Sync + 'static {
    fn keep(&self, tasks: Vec<FinishedTask>);
}

/// The hooks a process installs, in order, and its keeper. The engine shares them behind one
/// reference count.
#[derive(Default)]
pub struct FinishHooks {
    hooks: Vec<Box<dyn FinishHook>>,
    keeper: Option<Box<dyn FinishKeeper>>,
}

impl FinishHooks {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a hook, called after the ones added before it.
    pub fn with(mut self, hook: impl FinishHook) -> Self {
        self.hooks.push(Box::new(hook));
        self
    }

    /// Sets the keeper, called after every hook.
    pub fn kept_by(mut self, keeper: impl FinishKeeper) -> Self {
        self.keeper = Some(Box::new(keeper));
        self
    }

    /// Runs every hook on one recorded batch, then gives it to the keeper.
    pub async fn finished(&self, tasks: Vec<FinishedTask>) {
        if tasks.is_empty() {
            return;
        }
        for hook in &self.hooks {
            hook.finished(&tasks).await;
        }
        if let Some(keeper) = &self.keeper {
            keeper.keep(tasks);
        }
    }

    /// Tells every hook, then the keeper, about a task that died at start.
    pub fn died_at_start(&self, task: FinishedTask) {
        for hook in &self.hooks {
            hook.died_at_start(&task);
        }
        if let Some(keeper) = &self.keeper {
            keeper.keep(vec![task]);
        }
    }
}
