//! The queue engine: typed jobs on Redis Streams under apalis workers, task records and events,
//! retries with backoff, dead tasks, crash recovery and task history. It knows queues, attempts
//! and records only: job kinds describe themselves ([`Job`], listed in a [`JobRegistry`]) and
//! what follows a task's end is the finish hooks the service installs ([`FinishHooks`]) and the
//! follow-up steps it is given for other slots ([`FollowUpSteps`]: settlement, webhooks).

mod backend;
mod completer;
mod delivery;
mod engine;
mod fetcher;
mod figures;
mod history;
pub mod history_rows;
mod hooks;
mod hub;
mod idempotency;
mod inflight;
mod job;
pub mod keys;
mod kinds;
mod latency;
mod outbox;
mod pool;
mod reads;
mod record;
mod registry;
mod scripts;
mod store;

pub use delivery::{Delivery, JobFailure, classify};
pub use engine::Engine;
pub use figures::{EngineFigures, QueueFigures, WorkerStatus, WorkerView};
pub use history::{HistoryRow, HistorySink};
pub use hooks::{FinishHook, FinishHooks, FinishKeeper, FinishedTask, TaskLife};
pub use hub::{Hub, Subscription, TaskEvent, compare_ids};
pub use job::{Job, Provides};
pub use kinds::{JobKind, JobKinds};
pub use latency::LatencyBook;
pub use outbox::{FollowUp, FollowUpSteps, Settlement, Settler, Step, WebhookDue, WebhookQueuer};
pub use pool::{consumer_name, run_pool};
pub use record::{TaskLinks, TaskRecord, TaskState, TaskView, timestamp};
pub use registry::JobRegistry;
pub use store::{Cancelled, Durability, Ending, Finish, Finished, NewTask, TaskStore};
