//! The facade every entry point calls: `submit` checks, renders and then runs a request inline
//! or queues it; workers call `run_job`. Handlers stay thin and never talk to Redis or a
//! provider themselves.

mod inline;
pub mod job;
mod output;
mod streaming;
mod tasks;
pub mod workers;

use std::sync::Arc;

use serde::Serialize;
use serde_json::Value as Json;
use uuid::Uuid;

use crate::auth::Principal;
use crate::config::Settings;
use crate::feature::Feature;
use crate::prompts::{InputError, LookupError, PromptRegistry};
use crate::providers::{ChainError, CompletionOptions, FinishReason, ProviderChains, Usage};
use crate::tasks::{Engine, NewTask, TaskRecord};

pub use tasks::TaskQuery;

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
}

#[derive(Debug, Clone, Serialize)]
pub struct PromptRef {
    pub name: String,
    pub version: String,
}

/// A finished AI request.
#[derive(Debug, Clone, Serialize)]
pub struct Completion {
    pub task_id: String,
    pub feature: Feature,
    /// Text for free-form features, a JSON object for structured ones.
    pub result: Json,
    pub usage: Usage,
    pub provider: &'static str,
    pub model: String,
    pub finish_reason: FinishReason,
    pub prompt: PromptRef,
    /// Time spent producing the answer (prompt rendering and provider calls).
    pub latency_ms: u64,
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
    #[error("Redis is unavailable: {0}")]
    Store(#[from] redis::RedisError),
    #[error("this Idempotency-Key was used with a different request body")]
    IdempotencyMismatch,
    #[error("no task with this id")]
    TaskNotFound,
    #[error("the task is already {0}")]
    TaskFinal(String),
    #[error("callback_url is refused: {0}")]
    CallbackUrl(String),
}

#[derive(Clone)]
pub struct AiService {
    prompts: Arc<PromptRegistry>,
    providers: ProviderChains,
    engine: Engine,
    settings: Arc<Settings>,
    webhooks: crate::webhooks::Webhooks,
}

impl AiService {
    pub fn new(
        prompts: Arc<PromptRegistry>,
        providers: ProviderChains,
        engine: Engine,
        settings: Arc<Settings>,
        webhooks: crate::webhooks::Webhooks,
    ) -> Self {
        Self {
            prompts,
            providers,
            engine,
            settings,
            webhooks,
        }
    }

    pub fn webhooks(&self) -> &crate::webhooks::Webhooks {
        &self.webhooks
    }

    pub fn prompts(&self) -> &Arc<PromptRegistry> {
        &self.prompts
    }

    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// Checks the input against the feature's prompt, then answers inline or queues it.
    #[tracing::instrument(skip_all, fields(feature = %feature, user_id = %principal.user_id))]
    pub async fn submit(
        &self,
        principal: &Principal,
        feature: Feature,
        request: SubmitRequest,
    ) -> Result<Submitted, ServiceError> {
        let prompts = self.prompts.snapshot();
        let prompt = prompts.get(feature, request.prompt_version.as_deref())?;
        let data = crate::prompts::validate(&prompt, &request.input)?;
        prompts
            .render(&prompt, &data)
            .map_err(ServiceError::Render)?;

        let callback_url = match &request.callback_url {
            Some(url) => Some(
                self.webhooks
                    .check_url(&principal.user_id, url)
                    .await
                    .map_err(ServiceError::CallbackUrl)?
                    .url,
            ),
            None => None,
        };
        let task_id = Uuid::now_v7().to_string();
        if let Some(key) = &request.idempotency_key
            && let Some(existing) = self
                .claim_idempotency_key(principal, key, feature, &request, &task_id)
                .await?
        {
            return Ok(Submitted::Accepted(existing));
        }
        let job = job::AiRequestJob {
            task_id: task_id.clone(),
            feature,
            prompt_version: prompt.version.clone(),
            input: data,
            user_id: principal.user_id.clone(),
            role: principal.role.to_string(),
            request_id: request.request_id.clone(),
            stream: request.stream,
        };
        let new_task = NewTask {
            id: task_id.clone(),
            kind: job::AI_REQUEST.to_owned(),
            job: serde_json::to_string(&job).expect("a job serializes"),
            user_id: principal.user_id.clone(),
            role: principal.role.to_string(),
            feature: feature.to_string(),
            request_id: request.request_id.clone(),
            callback_url: callback_url.map(|url| url.to_string()),
        };
        let (threshold, seed) = self.settings.intake.for_feature(feature.as_str());
        let inline_within = match request.mode {
            Mode::Async => None,
            Mode::Sync => Some(None),
            Mode::Auto => {
                let estimate = self
                    .engine
                    .latency
                    .estimate(feature.as_str())
                    .await?
                    .unwrap_or(seed);
                (estimate < threshold).then_some(Some(threshold))
            }
        };
        if request.stream && request.mode != Mode::Async {
            return self.stream_inline(new_task, job).await;
        }
        match inline_within {
            None => {
                self.engine.store.enqueue(&new_task).await?;
                let record = self.record_of(&task_id).await?;
                Ok(Submitted::Accepted(record))
            }
            Some(limit) => self.run_inline(new_task, job, limit).await,
        }
    }

    /// Renders the prompt for `input` and runs it through the feature's provider chain.
    pub async fn execute(
        &self,
        task_id: &str,
        feature: Feature,
        version: Option<&str>,
        input: &Json,
        stream: bool,
    ) -> Result<Completion, ServiceError> {
        let started = std::time::Instant::now();
        let prompts = self.prompts.snapshot();
        let prompt = prompts.get(feature, version)?;
        let data = crate::prompts::validate(&prompt, input)?;
        let rendered = prompts
            .render(&prompt, &data)
            .map_err(ServiceError::Render)?;
        let options = CompletionOptions {
            temperature: prompt.parameters.temperature,
            max_tokens: prompt.parameters.max_tokens,
            model: prompt.parameters.model.clone(),
            json_schema: prompt.output_schema.clone(),
        };
        let response = if stream {
            self.stream_deltas(task_id, feature, &rendered, &options)
                .await?
        } else {
            self.providers
                .complete(feature, &rendered, &options)
                .await?
        };
        let result = match prompt.output_schema {
            Some(_) => output::structured(&prompt, &response.text).map_err(|problems| {
                ServiceError::InvalidOutput {
                    provider: response.provider,
                    problems,
                }
            })?,
            None => Json::String(response.text),
        };
        Ok(Completion {
            task_id: task_id.to_owned(),
            feature,
            result,
            usage: response.usage,
            provider: response.provider,
            model: response.model,
            finish_reason: response.finish_reason,
            prompt: PromptRef {
                name: prompt.name.clone(),
                version: prompt.version.clone(),
            },
            latency_ms: started.elapsed().as_millis() as u64,
        })
    }
}
