//! The facade every entry point calls: `submit` checks, renders and then runs a request inline
//! or queues it; workers call `run_job`. Handlers stay thin and never talk to Redis or a
//! provider themselves.

pub mod api_keys;
mod batch_item;
pub mod batches;
pub mod dashboard;
pub mod health;
pub mod hooks;
mod inline;
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
use uuid::Uuid;

use crate::auth::Principal;
use crate::cache::{CachedAnswer, Lookup, ResponseCache};
use crate::config::Settings;
use crate::feature::Feature;
use crate::limits::{Admission, LimitError, Limits, Violation};
use crate::prompts::PromptRegistry;
use crate::providers::{CompletionOptions, FinishReason, ProviderChains, Usage};
use crate::tasks::{Engine, NewTask};

// What the HTTP layer sees of the layers below: the types it takes, returns and maps.
pub use crate::batches::BatchView;
pub use crate::prompts::{FieldErrors, InputError, LoadError, LookupError};
pub use crate::providers::{ChainError, ProviderStatus};
pub use crate::storage::StoreError;
pub use crate::tasks::{Subscription, TaskEvent, TaskRecord};
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

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct PromptRef {
    pub name: String,
    pub version: String,
}

/// A finished AI request.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Completion {
    pub task_id: String,
    pub feature: Feature,
    /// Text for free-form features, a JSON object for structured ones.
    #[schema(value_type = Value)]
    pub result: Json,
    pub usage: Usage,
    pub provider: &'static str,
    pub model: String,
    pub finish_reason: FinishReason,
    pub prompt: PromptRef,
    /// Time spent producing the answer (prompt rendering and provider calls).
    pub latency_ms: u64,
    /// Answered from the response cache: no provider call, no tokens charged.
    pub cached: bool,
    /// Every provider failed and the mock answered instead (the answer is a placeholder).
    pub degraded: bool,
    /// "provider: error" for each provider attempt that failed before this answer.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub failed_providers: Vec<String>,
    /// The hint guard refused the first hint and this one was generated again.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub regenerated: bool,
    /// The hint guard refused both hints: this is the level's safe generic hint.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub guarded: bool,
    /// Moderation flags of the input (`distress`, `self_harm`, `abuse`, `cheating`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub flags: Vec<&'static str>,
    /// A supportive note to show beside the answer (distress, self-harm or abuse flags).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub support: Option<&'static str>,
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
        }))
    }

    /// The stores themselves, for tools that measure or reset them (`tutorq bench`).
    pub fn stores(&self) -> &crate::storage::Stores {
        &self.stores
    }

    pub fn providers(&self) -> &ProviderChains {
        &self.providers
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

    /// Counts a violation against the user; a failure to record it is logged, not raised (the
    /// request is refused for its own reason anyway).
    pub async fn note_violation(&self, principal: &Principal, violation: Violation) {
        match self.limits.violation(&principal.user_id, violation).await {
            Ok(Some(until)) => {
                tracing::warn!(user_id = %principal.user_id, %until, "user blocked after repeated violations");
            }
            Ok(None) => {}
            Err(err) => tracing::warn!(%err, "could not record a violation"),
        }
    }

    /// The tokens a request reserves until it ends: the prompt as the feature's first provider
    /// counts it (exact for OpenAI models), plus the most the answer may take.
    fn token_estimate(
        &self,
        feature: Feature,
        prompt: &crate::prompts::Prompt,
        rendered: &crate::prompts::RenderedPrompt,
    ) -> u64 {
        let primary = self.providers.primary(feature);
        (primary.count_tokens(&rendered.system) + primary.count_tokens(&rendered.user)) as u64
            + u64::from(prompt.parameters.max_tokens)
    }

    /// A callback URL whose form passed the SSRF guard (and the caller has a signing secret
    /// for); its host is resolved only once the request is admitted.
    async fn parsed_callback(
        &self,
        principal: &Principal,
        url: Option<&str>,
    ) -> Result<Option<crate::webhooks::guard::Parsed>, ServiceError> {
        match url {
            Some(url) => Ok(Some(
                self.webhooks
                    .check_url(&principal.user_id, url)
                    .await
                    .map_err(ServiceError::CallbackUrl)?,
            )),
            None => Ok(None),
        }
    }

    /// Resolves an admitted request's callback host (bounded, `webhooks::guard`); when it is
    /// refused, the tokens the admission reserved are given back.
    async fn resolved_callback(
        &self,
        principal: &Principal,
        feature: Feature,
        admission: &Admission,
        callback: Option<crate::webhooks::guard::Parsed>,
    ) -> Result<Option<reqwest::Url>, String> {
        let Some(parsed) = callback else {
            return Ok(None);
        };
        match crate::webhooks::guard::resolve(parsed).await {
            Ok(checked) => Ok(Some(checked.url)),
            Err(reason) => {
                if let Some(reservation) = &admission.reservation
                    && let Err(err) = self.limits.refund(principal, feature, reservation).await
                {
                    tracing::warn!(%err, "could not refund a refused request's tokens");
                }
                Err(reason)
            }
        }
    }

    /// Checks the input against the feature's prompt, then answers inline or queues it.
    #[tracing::instrument(skip_all, fields(feature = %feature, user_id = %principal.user_id))]
    pub async fn submit(
        &self,
        principal: &Principal,
        feature: Feature,
        mut request: SubmitRequest,
    ) -> Result<(Submitted, Admission), ServiceError> {
        // What is checked, rendered, cached and audited has no invisible characters.
        crate::prompts::clean_input(&mut request.input);
        let prompts = self.prompts.snapshot();
        let prompt = prompts.get(feature, request.prompt_version.as_deref())?;
        let validated = crate::prompts::validate(&prompt, &request.input).and_then(|data| {
            self.check_attempt(principal, feature, &prompt, &data)
                .map(|()| data)
        });
        let data = match validated {
            Ok(data) => data,
            Err(err) => {
                let violation = match err {
                    InputError::ForbiddenTopic { .. } => Violation::ForbiddenTopic,
                    InputError::Invalid(_) => Violation::Invalid,
                };
                self.note_violation(principal, violation).await;
                return Err(err.into());
            }
        };
        let rendered = prompts
            .render(&prompt, &data)
            .map_err(ServiceError::Render)?;
        let estimate = self.token_estimate(feature, &prompt, &rendered);
        let callback = self
            .parsed_callback(principal, request.callback_url.as_deref())
            .await?;
        let task_id = Uuid::now_v7().to_string();
        if let Some(key) = &request.idempotency_key
            && let Some(existing) = self
                .claim_idempotency_key(principal, key, feature, &request, &task_id)
                .await?
        {
            return Ok((Submitted::Accepted(existing), Admission::default()));
        }
        let facts = crate::audit::RequestFacts {
            task_id: task_id.clone(),
            request_id: request.request_id.clone(),
            user_id: principal.user_id.clone(),
            role: principal.role.to_string(),
            feature: feature.to_string(),
            prompt_name: Some(prompt.name.clone()),
            prompt_version: Some(prompt.version.clone()),
            client_ip: request.client_ip.clone(),
        };
        self.audit.pre_request(&facts, &request.input);
        self.audit_flags(
            &facts,
            &safety::input_flags(&self.moderation, &prompt, &data),
        );
        let admission = match self
            .limits
            .admit(principal, feature, estimate, &task_id)
            .await
        {
            Ok(admission) => admission,
            Err(err) => {
                if let Some(key) = &request.idempotency_key {
                    self.release_idempotency_key(principal, key, &task_id).await;
                }
                let kind = match &err {
                    LimitError::Refused(refusal) => refusal.limit.name().to_owned(),
                    LimitError::Unavailable(_) => "store_unavailable".to_owned(),
                };
                self.audit.refused(&facts, &kind, &err.to_string());
                return Err(err.into());
            }
        };
        // DNS only for an admitted request: a blocked or over-quota caller cannot make this
        // server resolve names.
        let callback_url = match self
            .resolved_callback(principal, feature, &admission, callback)
            .await
        {
            Ok(url) => url,
            Err(reason) => {
                if let Some(key) = &request.idempotency_key {
                    self.release_idempotency_key(principal, key, &task_id).await;
                }
                self.audit.refused(&facts, "callback_refused", &reason);
                return Err(ServiceError::CallbackUrl(reason));
            }
        };
        let submitted = self
            .run_admitted(
                principal,
                feature,
                request,
                &prompt,
                data,
                task_id,
                callback_url,
                &admission,
            )
            .await?;
        Ok((submitted, admission))
    }

    /// Creates the admitted request's task and runs it inline or queues it.
    #[allow(clippy::too_many_arguments)]
    async fn run_admitted(
        &self,
        principal: &Principal,
        feature: Feature,
        request: SubmitRequest,
        prompt: &crate::prompts::Prompt,
        data: serde_json::Map<String, Json>,
        task_id: String,
        callback_url: Option<reqwest::Url>,
        admission: &Admission,
    ) -> Result<Submitted, ServiceError> {
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
            quota: admission.reservation.map(|r| r.encode()),
            batch: None,
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

    /// Renders the job's prompt and runs it through the feature's provider chain; a hint goes
    /// through the answer guard (`safety.rs`) before anyone sees it.
    pub async fn execute(&self, job: &job::AiRequestJob) -> Result<Completion, ServiceError> {
        let (task_id, feature, stream) = (job.task_id.as_str(), job.feature, job.stream);
        let started = std::time::Instant::now();
        let prompts = self.prompts.snapshot();
        let prompt = prompts.get(feature, Some(&job.prompt_version))?;
        let data = crate::prompts::validate(&prompt, &Json::Object(job.input.clone()))?;
        let rendered = prompts
            .render(&prompt, &data)
            .map_err(ServiceError::Render)?;
        let options = CompletionOptions {
            temperature: prompt.parameters.temperature,
            max_tokens: prompt.parameters.max_tokens,
            model: prompt.parameters.model.clone(),
            json_schema: prompt.output_schema.clone(),
        };
        let guard = (feature == Feature::Hint && self.settings.safety.guard_hints)
            .then(|| safety::HintGuard::new(prompt.clone(), &data));
        let (response, refused) = if stream {
            self.stream_deltas(task_id, feature, &rendered, &options, guard.as_ref())
                .await?
        } else {
            let accept = |text: &str| guard.as_ref().is_none_or(|g| g.refuses(text).is_none());
            // Personal input (a student's attempt or answer) is cached for that user alone.
            let personal = prompt
                .inputs
                .iter()
                .any(|(name, spec)| spec.personal && data.get(name).is_some_and(|v| !v.is_null()));
            let owner = personal.then_some(job.user_id.as_str());
            let response = self
                .complete_cached(feature, &prompt, &rendered, &options, owner, &accept)
                .await?;
            (response, None)
        };
        let cached = response.provider == CACHE;
        let mut guarded = None;
        let (result, response) = match (&prompt.output_schema, &guard) {
            (Some(_), _) => match output::structured(&prompt, &response.text) {
                Ok(result) => (result, response),
                // A streamed answer was already shown: it cannot be taken back and redone.
                Err(problems) if stream || cached => {
                    return Err(ServiceError::InvalidOutput {
                        provider: response.provider,
                        problems,
                    });
                }
                Err(problems) => {
                    self.repair(feature, &prompt, &rendered, &options, response, problems)
                        .await?
                }
            },
            (None, Some(guard)) => {
                let outcome = self
                    .guard_hint(job, guard, &rendered, &options, response, refused)
                    .await?;
                if outcome.regenerated && stream {
                    // What was streamed is not the answer: clients drop it and show the result.
                    self.engine
                        .store
                        .append_event(task_id, "retracted", serde_json::json!({}))
                        .await?;
                }
                guarded = Some((outcome.regenerated, outcome.safe_hint));
                (
                    Json::String(outcome.response.text.clone()),
                    outcome.response,
                )
            }
            (None, None) => (Json::String(response.text.clone()), response),
        };
        let flags = safety::input_flags(&self.moderation, &prompt, &data);
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
            cached,
            degraded: response.degraded,
            failed_providers: response.failed,
            regenerated: guarded.is_some_and(|(regenerated, _)| regenerated),
            guarded: guarded.is_some_and(|(_, safe)| safe),
            support: safety::support_note(&flags),
            flags: flags.iter().map(|f| f.category.as_str()).collect(),
        })
    }

    /// One more try for a structured answer that did not match the schema: the model sees its
    /// answer and what was wrong with it. Usage adds up over both calls.
    async fn repair(
        &self,
        feature: Feature,
        prompt: &crate::prompts::Prompt,
        rendered: &crate::prompts::RenderedPrompt,
        options: &CompletionOptions,
        first: crate::providers::AiResponse,
        problems: Vec<String>,
    ) -> Result<(Json, crate::providers::AiResponse), ServiceError> {
        tracing::info!(feature = %feature, provider = first.provider, ?problems, "answer does not match the schema; asking once more");
        let retry = crate::prompts::RenderedPrompt {
            system: rendered.system.clone(),
            user: format!(
                "{}\n\nYour previous answer was:\n{}\n\nIt is not valid: {}. Answer again with only one JSON object that matches the schema, no other text.",
                rendered.user,
                first.text,
                problems.join("; ")
            ),
        };
        let mut second = self.providers.complete(feature, &retry, options).await?;
        second.usage = Usage::new(
            first.usage.prompt_tokens + second.usage.prompt_tokens,
            first.usage.completion_tokens + second.usage.completion_tokens,
        );
        match output::structured(prompt, &second.text) {
            Ok(result) => Ok((result, second)),
            Err(problems) => Err(ServiceError::InvalidOutput {
                provider: second.provider,
                problems,
            }),
        }
    }

    /// A completion through the response cache when the feature has one: a hit answers with
    /// provider `cache` and no usage; identical misses running at once make one provider call.
    async fn complete_cached(
        &self,
        feature: Feature,
        prompt: &crate::prompts::Prompt,
        rendered: &crate::prompts::RenderedPrompt,
        options: &CompletionOptions,
        owner: Option<&str>,
        accept: &(dyn Fn(&str) -> bool + Sync),
    ) -> Result<crate::providers::AiResponse, ServiceError> {
        let Some((hash, ttl)) = self.cache.key(
            feature,
            (&prompt.name, &prompt.version),
            rendered,
            options,
            owner,
        ) else {
            return Ok(self.providers.complete(feature, rendered, options).await?);
        };
        let entry = match self.cache.lookup(&hash, ttl).await {
            Ok(Lookup::Hit(answer)) => {
                return Ok(crate::providers::AiResponse {
                    text: answer.text,
                    usage: Usage::default(),
                    model: answer.model,
                    provider: CACHE,
                    finish_reason: answer.finish_reason,
                    latency: std::time::Duration::ZERO,
                    degraded: false,
                    failed: Vec::new(),
                });
            }
            Ok(Lookup::Miss(entry)) => entry,
            Err(err) => {
                tracing::warn!(%err, "response cache unavailable; calling the provider");
                return Ok(self.providers.complete(feature, rendered, options).await?);
            }
        };
        let result = self.providers.complete(feature, rendered, options).await;
        // Only answers that are usable are kept: a structured one must match its schema, a hint
        // must pass the guard, and a degraded one is a stand-in.
        let usable = |response: &crate::providers::AiResponse| {
            !response.degraded
                && accept(&response.text)
                && (prompt.output_schema.is_none()
                    || output::structured(prompt, &response.text).is_ok())
        };
        let answer = result
            .as_ref()
            .ok()
            .filter(|r| usable(r))
            .map(|response| CachedAnswer {
                text: response.text.clone(),
                model: response.model.clone(),
                finish_reason: response.finish_reason,
            });
        self.cache.store(entry, answer.as_ref()).await;
        Ok(result?)
    }
}
