//! Execution: a job's prompt rendered and run through the feature's provider chain (through
//! the response cache where the feature has one), its structured answer checked and repaired
//! once, a hint through the answer guard.

use serde_json::Value as Json;

use super::*;
use crate::cache::{CachedAnswer, Lookup};
use crate::outcome::Answer;
use crate::providers::{CompletionOptions, Usage};

impl AiService {
    /// Renders the job's prompt and runs it through the feature's provider chain (its calls
    /// waiting for capacity as `patience` allows); a hint goes through the answer guard
    /// (`safety.rs`) before anyone sees it.
    pub async fn execute(
        &self,
        job: &job::AiRequestJob,
        patience: crate::providers::Patience,
    ) -> Result<Completion, ServiceError> {
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
            patience,
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
            answer: Answer {
                usage: response.usage,
                provider: response.provider.to_owned(),
                model: response.model,
                finish_reason: response.finish_reason,
                prompt: prompt.reference(),
                latency_ms: started.elapsed().as_millis() as u64,
                cached,
                degraded: response.degraded,
                failed_providers: response.failed,
                regenerated: guarded.is_some_and(|(regenerated, _)| regenerated),
                guarded: guarded.is_some_and(|(_, safe)| safe),
                support: safety::support_note(&flags).map(str::to_owned),
                flags: flags
                    .iter()
                    .map(|f| f.category.as_str().to_owned())
                    .collect(),
            },
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
                    vendor: None,
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
