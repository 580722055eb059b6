//! The facade every entry point calls: `submit` checks, renders and then runs a request inline
//! or queues it; workers call `run_job`. Handlers stay thin and never talk to Redis or a
//! provider themselves.

pub mod api_keys;
mod batch_item;
pub mod batches;
pub mod dashboard;
mod execute;
pub mod health;
pub mod hooks;
mod inline;
mod intake;
pub mod job;
pub mod jobs;
pub mod limits;
mod output;
pub mod reports;
mod safety;
mod streaming;
mod tasks;
pub mod workers;

use std::sync::Arc;

use serde::Serialize;
use serde_json::Value as Json;

use crate::auth::Principal;
use crate::cache::ResponseCache;
use crate::config::Settings;
use crate::feature::Feature;
use crate::limits::{LimitError, Limits};
use crate::outcome::{Answer, Outcome};
use crate::prompts::PromptRegistry;
use crate::providers::ProviderChains;
use crate::tasks::Engine;

// What the HTTP layer sees of the layers below: the types it takes, returns and maps.
pub use crate::batches::BatchView;
pub use crate::capacity::CapacityStatus;
pub use crate::outcome::PromptRef;
pub use crate::prompts::{FieldErrors, InputError, LoadError, LookupError};
pub use crate::providers::{ChainError, ProviderStatus};
pub use crate::storage::StoreError;
pub use crate::tasks::{Subscription, TaskEvent, TaskRecord, TaskView};
pub use tasks::TaskQuery;

/// The `provider` of an answer that came from the response cache.
pub const CACHE: &str = "cache";

/// How the caller wants the request run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Inline when the feature's learned latency is under its threshold, queued otherwise.
    #[default]
    Auto,
    /// Inline, however long it takes.
    Sync,
    /// Always queued: 202 and a task id.
    Async,
}

#[derive(Debug, Clone)]
pub struct SubmitRequest {
    pub input: Json,
    pub prompt_version: Option<String>,
    pub mode: Mode,
    pub idempotency_key: Option<String>,
    pub request_id: String,
    /// Stream the answer as `delta` events.
    pub stream: bool,
    /// POST the final event here (checked against the SSRF guard first).
    pub callback_url: Option<String>,
    /// The client's address, for the audit trail.
    pub client_ip: Option<String>,
}

/// A finished AI request: its result, and how it was made.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Completion {
    pub task_id: String,
    pub feature: Feature,
    /// Text for free-form features, a JSON object for structured ones.
    #[schema(value_type = Value)]
    pub result: Json,
    #[serde(flatten)]
    pub answer: Answer,
}

impl From<Completion> for Outcome {
    fn from(completion: Completion) -> Self {
        Outcome::answered(completion.result, completion.answer)
    }
}

/// What `submit` did with a request.
#[derive(Debug)]
pub enum Submitted {
    /// Answered inline.
    Done(Completion),
    /// Queued (or an inline run overran its threshold and goes on in the background).
    Accepted(TaskRecord),
    /// Running inline with streamed output: follow the task's events.
    Streaming(TaskRecord),
}

#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error(transparent)]
    Input(#[from] InputError),
    #[error(transparent)]
    PromptVersion(#[from] LookupError),
    #[error("the prompt could not be rendered: {0}")]
    Render(String),
    #[error(transparent)]
    Provider(#[from] ChainError),
    #[error("the model's answer does not match the feature's output schema")]
    InvalidOutput {
        provider: &'static str,
        problems: Vec<String>,
    },
    #[error(transparent)]
    Store(#[from] crate::storage::StoreError),
    #[error("this Idempotency-Key was used with a different request body")]
    IdempotencyMismatch,
    #[error("no task with this id")]
    TaskNotFound,
    #[error("the task is already {0}")]
    TaskFinal(String),
    #[error("callback_url is refused: {0}")]
    CallbackUrl(String),
    #[error(transparent)]
    Limited(#[from] LimitError),
    #[error("{} item(s) of the batch are invalid", .0.len())]
    InvalidBatch(Vec<(usize, crate::prompts::FieldErrors)>),
    #[error("no batch with this id")]
    BatchNotFound,
}

impl From<redis::RedisError> for ServiceError {
    fn from(err: redis::RedisError) -> Self {
        Self::Store(err.into())
    }
}

impl From<sqlx::Error> for ServiceError {
    fn from(err: sqlx::Error) -> Self {
        Self::Store(err.into())
    }
}

fn versions(set: &crate::prompts::PromptSet) -> std::collections::BTreeMap<String, Vec<String>> {
    set.versions()
        .into_iter()
        .map(|(feature, versions)| (feature.to_string(), versions))
        .collect()
}

/// The service handle: one reference count to clone (it travels into every spawned run).
#[derive(Clone)]
pub struct AiService(Arc<Parts>);

impl std::ops::Deref for AiService {
    type Target = Parts;

    fn deref(&self) -> &Parts {
        &self.0
    }
}

/// What [`AiService`] holds.
pub struct Parts {
    stores: crate::storage::Stores,
    api_keys: crate::auth::ApiKeys,
    prompts: Arc<PromptRegistry>,
    providers: ProviderChains,
    engine: Engine,
    audit: crate::audit::AuditLog,
    settings: Arc<Settings>,
    webhooks: crate::webhooks::Webhooks,
    limits: Limits,
    cache: ResponseCache,
    moderation: crate::guard::Moderation,
    capacity: crate::capacity::Ledger,
}

impl AiService {
    /// The facade over its parts, each built once at start-up (`app.rs`).
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        moderation: crate::guard::Moderation,
        stores: crate::storage::Stores,
        api_keys: crate::auth::ApiKeys,
        prompts: Arc<PromptRegistry>,
        providers: ProviderChains,
        engine: Engine,
        audit: crate::audit::AuditLog,
        settings: Arc<Settings>,
        webhooks: crate::webhooks::Webhooks,
        limits: Limits,
        cache: ResponseCache,
        capacity: crate::capacity::Ledger,
    ) -> Self {
        Self(Arc::new(Parts {
            stores,
            api_keys,
            moderation,
            prompts,
            providers,
            engine,
            audit,
            settings,
            webhooks,
            limits,
            cache,
            capacity,
        }))
    }

    /// The stores themselves, for tools that measure or reset them (`tutorq bench`).
    pub fn stores(&self) -> &crate::storage::Stores {
        &self.stores
    }

    pub fn providers(&self) -> &ProviderChains {
        &self.providers
    }

    /// Each provider entry's capacity across the fleet, for the entries that book it.
    pub async fn capacity(&self) -> Result<Vec<crate::capacity::CapacityStatus>, ServiceError> {
        let names: Vec<&'static str> = self.providers.status().iter().map(|p| p.name).collect();
        self.capacity
            .status(&names)
            .await
            .map_err(|err| ServiceError::Store(err.into()))
    }

    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    pub fn webhooks(&self) -> &crate::webhooks::Webhooks {
        &self.webhooks
    }

    /// Loaded prompt versions per feature, lowest first.
    pub fn prompt_versions(&self) -> std::collections::BTreeMap<String, Vec<String>> {
        versions(&self.prompts.snapshot())
    }

    /// Loads `prompts/` again; a bad file keeps the running prompts.
    pub fn reload_prompts(
        &self,
    ) -> Result<std::collections::BTreeMap<String, Vec<String>>, crate::prompts::LoadError> {
        self.prompts.reload().map(|set| versions(&set))
    }

    pub fn prompts(&self) -> &Arc<PromptRegistry> {
        &self.prompts
    }

    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    pub fn audit(&self) -> &crate::audit::AuditLog {
        &self.audit
    }
}
