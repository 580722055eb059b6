//! The queue engine: typed jobs on Redis Streams under apalis workers, task records and events,
//! retries with backoff, dead tasks, crash recovery and task history.

mod backend;
mod batches;
mod completer;
mod delivery;
mod engine;
mod fetcher;
mod figures;
mod history;
mod hub;
mod inflight;
pub mod keys;
mod kinds;
mod latency;
mod pool;
mod record;
mod store;
mod webhook_job;

pub use batches::{BATCH_ITEM, BatchRecord, BatchView};
pub use delivery::{Delivery, JobFailure, classify};
pub use engine::Engine;
pub use figures::{EngineFigures, QueueFigures};
pub use history::{HistoryRow, HistorySink};
pub use hub::{Hub, Subscription, TaskEvent, compare_ids};
pub use kinds::{JobKind, JobKinds};
pub use latency::LatencyBook;
pub use pool::{JobFn, JobOrigin, consumer_name, run_pool};
pub use record::{TaskRecord, TaskState, timestamp};
pub use store::{Cancelled, Finish, Finished, NewTask, Outcome, TaskStore};
pub use webhook_job::{WEBHOOK_DELIVERY, WebhookJob};
