//! The `ai_request` job: what a queued AI request carries, and how a worker (or an inline run)
//! executes it.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value as Json};
use tracing::Instrument as _;

use super::{AiService, ServiceError};
use crate::facts::{Role, TaskFacts};
use crate::feature::Feature;
use crate::outcome::Outcome;
use crate::providers::{Class, Patience, ProviderError};
use crate::tasks::{Delivery, Job, JobFailure};

/// The kind's stable name (its [`Job::KIND`]), for code that picks the kind's settings.
pub const AI_REQUEST: &str = <AiRequestJob as Job>::KIND;

/// A queued AI request. Field names are the wire format of jobs waiting in Redis: rename with
/// `#[serde(rename)]`, never by renaming the field alone.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AiRequestJob {
    pub task_id: String,
    pub feature: Feature,
    /// The prompt version resolved at intake, so a reload between intake and run cannot change it.
    pub prompt_version: String,
    /// The validated input.
    pub input: Map<String, Json>,
    pub user_id: String,
    pub role: Role,
    pub request_id: String,
    /// Stream the answer as `delta` events while it is produced.
    #[serde(default)]
    pub stream: bool,
    /// The tenant (a school) the caller's token names, if any: users of one tenant share
    /// their turns for a provider's capacity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
}

impl AiRequestJob {
    /// A request for `feature` with the facts of its task.
    pub fn new(
        facts: &TaskFacts,
        feature: Feature,
        prompt_version: String,
        input: Map<String, Json>,
        stream: bool,
    ) -> Self {
        Self {
            task_id: facts.task_id.clone(),
            feature,
            prompt_version,
            input,
            user_id: facts.user_id.clone(),
            role: facts.role,
            request_id: facts.request_id.clone(),
            stream,
            tenant: None,
        }
    }

    /// Whose turn its provider calls take when capacity is short: its tenant when its
    /// caller's token named one, else its user.
    pub fn owner(&self) -> &str {
        self.tenant.as_deref().unwrap_or(&self.user_id)
    }

    /// The facts of its task, as the job carries them.
    pub fn facts(&self) -> TaskFacts {
        TaskFacts {
            task_id: self.task_id.clone(),
            request_id: self.request_id.clone(),
            user_id: self.user_id.clone(),
            role: self.role,
            feature: Some(self.feature),
        }
    }
}

impl Job for AiRequestJob {
    const KIND: &'static str = "ai_request";
    type Context = AiService;

    fn request_id(&self) -> &str {
        &self.request_id
    }

    async fn run(
        self,
        service: AiService,
        _delivery: Delivery,
    ) -> Result<Outcome, apalis::prelude::BoxDynError> {
        service.run_job(self, Class::Interactive).await
    }
}

impl AiService {
    /// Runs a queued AI request of `class`; the error says whether the queue should retry, or
    /// let the task wait for its provider's capacity.
    pub async fn run_job(
        &self,
        job: AiRequestJob,
        class: Class,
    ) -> Result<Outcome, apalis::prelude::BoxDynError> {
        let span = tracing::info_span!("job", task_id = %job.task_id, request_id = %job.request_id, feature = %job.feature);
        let patience = Patience {
            task_id: job.task_id.clone(),
            owner: job.owner().to_owned(),
            class,
            hold: None,
        };
        let completion = self
            .execute(&job, patience)
            .instrument(span)
            .await
            .map_err(job_failure)?;
        Ok(completion.into())
    }
}

/// Whether a failed run may succeed when tried again.
pub enum Retry {
    Never,
    Backoff,
    After(std::time::Duration),
    /// The provider's capacity is due then: wait without counting an attempt.
    Wait(std::time::Duration),
}

/// The stable kind, message and retry class of a failure.
pub fn failure_of(error: &ServiceError) -> (JobFailure, Retry) {
    match error {
        ServiceError::Provider(chain) => {
            let failure = JobFailure::new(provider_kind(&chain.error), chain.to_string());
            let retry = match chain.error {
                ProviderError::RateLimited {
                    retry_after: Some(delay),
                } => Retry::After(delay),
                ProviderError::Busy { ready_in, .. } => Retry::Wait(ready_in),
                ref error if error.is_transient() => Retry::Backoff,
                _ => Retry::Never,
            };
            (failure, retry)
        }
        // The answer was already asked for once more with its problems (`AiService::repair`):
        // a second invalid answer fails the job with the reason.
        ServiceError::InvalidOutput { problems, .. } => (
            JobFailure::new("invalid_model_output", problems.join("; ")),
            Retry::Never,
        ),
        ServiceError::Store(err) => (
            JobFailure::new("store_unavailable", err.to_string()),
            Retry::Backoff,
        ),
        other => (
            JobFailure::new("invalid_request", other.to_string()),
            Retry::Never,
        ),
    }
}

/// A failure as the queue takes it: give up, retry with backoff, or retry after a delay.
pub fn job_failure(error: ServiceError) -> apalis::prelude::BoxDynError {
    let (failure, retry) = failure_of(&error);
    match retry {
        Retry::Never => failure.give_up(),
        Retry::Backoff => failure.retry(),
        Retry::After(delay) => failure.retry_after(delay),
        Retry::Wait(delay) => failure.wait(delay),
    }
}

fn provider_kind(error: &ProviderError) -> &'static str {
    match error {
        ProviderError::Auth(_) => "provider_auth",
        ProviderError::RateLimited { .. } => "provider_rate_limited",
        ProviderError::Overloaded(_) => "provider_overloaded",
        ProviderError::Timeout => "provider_timeout",
        ProviderError::BadRequest(_) => "provider_bad_request",
        ProviderError::ContentFilter => "content_filter",
        ProviderError::Server(_) => "provider_error",
        ProviderError::Unsupported(_) => "provider_unsupported",
        ProviderError::CircuitOpen => "provider_circuit_open",
        ProviderError::Busy { .. } => "provider_busy",
    }
}
