//! The facade every entry point calls: one `submit` that checks, renders and runs a request.
//!
//! Quota reservation, the sync/async decision and the audit trail slot in here in later steps;
//! handlers stay thin and never talk to Redis or a provider themselves.

mod output;

use std::sync::Arc;

use serde::Serialize;
use serde_json::Value as Json;
use uuid::Uuid;

use crate::auth::Principal;
use crate::feature::Feature;
use crate::prompts::{InputError, LookupError, PromptRegistry};
use crate::providers::{ChainError, CompletionOptions, FinishReason, ProviderChains, Usage};

#[derive(Debug, Clone)]
pub struct SubmitRequest {
    pub input: Json,
    pub prompt_version: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct PromptRef {
    pub name: String,
    pub version: String,
}

/// A finished AI request.
#[derive(Debug, Clone, Serialize)]
pub struct Completion {
    pub task_id: Uuid,
    pub feature: Feature,
    /// Text for free-form features, a JSON object for structured ones.
    pub result: Json,
    pub usage: Usage,
    pub provider: &'static str,
    pub model: String,
    pub finish_reason: FinishReason,
    pub prompt: PromptRef,
    pub latency_ms: u64,
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
}

#[derive(Clone)]
pub struct AiService {
    prompts: Arc<PromptRegistry>,
    providers: ProviderChains,
}

impl AiService {
    pub fn new(prompts: Arc<PromptRegistry>, providers: ProviderChains) -> Self {
        Self { prompts, providers }
    }

    pub fn prompts(&self) -> &Arc<PromptRegistry> {
        &self.prompts
    }

    /// Checks the input against the feature's prompt, renders it and runs it inline.
    #[tracing::instrument(skip_all, fields(feature = %feature, user_id = %principal.user_id))]
    pub async fn submit(
        &self,
        principal: &Principal,
        feature: Feature,
        request: SubmitRequest,
    ) -> Result<Completion, ServiceError> {
        let started = std::time::Instant::now();
        let prompts = self.prompts.snapshot();
        let prompt = prompts.get(feature, request.prompt_version.as_deref())?;
        let data = crate::prompts::validate(&prompt, &request.input)?;
        let rendered = prompts
            .render(&prompt, &data)
            .map_err(ServiceError::Render)?;
        let options = CompletionOptions {
            temperature: prompt.parameters.temperature,
            max_tokens: prompt.parameters.max_tokens,
            model: prompt.parameters.model.clone(),
            json_schema: prompt.output_schema.clone(),
        };
        let response = self
            .providers
            .complete(feature, &rendered, &options)
            .await?;
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
            task_id: Uuid::now_v7(),
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
