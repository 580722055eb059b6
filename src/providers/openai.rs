//! OpenAI Chat Completions, and the same wire format behind Azure OpenAI deployments and any
//! OpenAI-compatible server (llama.cpp, vLLM, Ollama): `POST …/chat/completions`, streamed as
//! `data:` chunks ending with `data: [DONE]`, and `POST …/embeddings`.

use std::time::Instant;

use futures_util::future::BoxFuture;
use serde_json::{Value, json};

use super::http::{self, SseEvent};
use super::stream::{self, Step};
use super::{
    AiProvider, AiResponse, Chunk, ChunkStream, CompletionOptions, FinishReason, Health,
    ProviderError, StreamEnd, Usage, tokens,
};
use crate::config::{AzureSettings, OpenAiSettings};
use crate::prompts::RenderedPrompt;

/// Where the requests go and how they are authorized.
enum Endpoint {
    OpenAi {
        base_url: String,
        api_key: Option<String>,
        organization: Option<String>,
        project: Option<String>,
    },
    Azure {
        endpoint: String,
        deployment: String,
        embedding_deployment: String,
        api_version: String,
        /// `api-key: …` or `Authorization: Bearer …`.
        auth: (&'static str, String),
    },
}

pub struct OpenAiCompatible {
    name: &'static str,
    client: reqwest::Client,
    endpoint: Endpoint,
    model: String,
    embedding_model: String,
    structured_output: bool,
}

impl OpenAiCompatible {
    pub fn openai(settings: &OpenAiSettings) -> Self {
        tokens::warm(&settings.model);
        Self {
            name: "openai",
            client: http::client(settings.connect_timeout_ms, settings.timeout_ms),
            endpoint: Endpoint::OpenAi {
                base_url: settings.base_url.trim_end_matches('/').to_owned(),
                api_key: settings.api_key.as_ref().map(|k| k.expose().to_owned()),
                organization: settings.organization.clone(),
                project: settings.project.clone(),
            },
            model: settings.model.clone(),
            embedding_model: settings.embedding_model.clone(),
            structured_output: settings.structured_output,
        }
    }

    pub fn azure(settings: &AzureSettings) -> Self {
        let auth = match (&settings.api_key, &settings.bearer_token) {
            (Some(key), _) => ("api-key", key.expose().to_owned()),
            (None, Some(token)) => ("authorization", format!("Bearer {}", token.expose())),
            (None, None) => ("api-key", String::new()),
        };
        tokens::warm(&settings.model);
        Self {
            name: "azure",
            client: http::client(settings.connect_timeout_ms, settings.timeout_ms),
            endpoint: Endpoint::Azure {
                endpoint: settings.endpoint.trim_end_matches('/').to_owned(),
                deployment: settings.deployment.clone(),
                embedding_deployment: settings.embedding_deployment.clone(),
                api_version: settings.api_version.clone(),
                auth,
            },
            model: settings.model.clone(),
            embedding_model: settings.embedding_deployment.clone(),
            structured_output: settings.structured_output,
        }
    }

    fn url(&self, operation: &str) -> String {
        match &self.endpoint {
            Endpoint::OpenAi { base_url, .. } => format!("{base_url}/{operation}"),
            Endpoint::Azure {
                endpoint,
                deployment,
                embedding_deployment,
                api_version,
                ..
            } => {
                let deployment = if operation == "embeddings" {
                    embedding_deployment
                } else {
                    deployment
                };
                format!(
                    "{endpoint}/openai/deployments/{deployment}/{operation}?api-version={api_version}"
                )
            }
        }
    }

    fn authorized(&self, request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match &self.endpoint {
            Endpoint::OpenAi {
                api_key,
                organization,
                project,
                ..
            } => {
                let mut request = request;
                if let Some(key) = api_key {
                    request = request.bearer_auth(key);
                }
                if let Some(org) = organization {
                    request = request.header("openai-organization", org);
                }
                if let Some(project) = project {
                    request = request.header("openai-project", project);
                }
                request
            }
            Endpoint::Azure { auth, .. } => request.header(auth.0, &auth.1),
        }
    }

    fn model_for(&self, options: &CompletionOptions) -> String {
        options.model.clone().unwrap_or_else(|| self.model.clone())
    }

    /// The request body of a chat completion.
    fn body(&self, prompt: &RenderedPrompt, options: &CompletionOptions, stream: bool) -> Value {
        let mut body = json!({
            "model": self.model_for(options),
            "messages": [
                { "role": "system", "content": prompt.system },
                { "role": "user", "content": prompt.user },
            ],
            "temperature": options.temperature,
            "max_tokens": options.max_tokens,
            "stream": stream,
        });
        if stream {
            body["stream_options"] = json!({ "include_usage": true });
        }
        if let (true, Some(schema)) = (self.structured_output, &options.json_schema) {
            body["response_format"] = json!({
                "type": "json_schema",
                "json_schema": { "name": "answer", "schema": schema.as_ref(), "strict": false },
            });
        }
        body
    }
}

/// Usage from the answer, or counted when the server sent none.
fn usage_of(usage: &Value, model: &str, prompt: &RenderedPrompt, text: &str) -> Usage {
    match (
        usage["prompt_tokens"].as_u64(),
        usage["completion_tokens"].as_u64(),
    ) {
        (Some(input), Some(output)) => Usage::new(input as u32, output as u32),
        _ => Usage::new(
            (tokens::count(model, &prompt.system) + tokens::count(model, &prompt.user)) as u32,
            tokens::count(model, text) as u32,
        ),
    }
}

fn finish_reason(value: &Value) -> Option<FinishReason> {
    match value.as_str()? {
        "length" => Some(FinishReason::Length),
        "content_filter" => Some(FinishReason::ContentFilter),
        _ => Some(FinishReason::Stop),
    }
}

impl AiProvider for OpenAiCompatible {
    fn name(&self) -> &'static str {
        self.name
    }

    fn complete<'a>(
        &'a self,
        prompt: &'a RenderedPrompt,
        options: &'a CompletionOptions,
    ) -> BoxFuture<'a, Result<AiResponse, ProviderError>> {
        Box::pin(async move {
            let started = Instant::now();
            let request = self
                .client
                .post(self.url("chat/completions"))
                .json(&self.body(prompt, options, false));
            let response = http::send(self.authorized(request)).await?;
            let vendor = super::ratelimit::openai(response.headers());
            let answer = http::json(response).await?;
            let choice = &answer["choices"][0];
            let finish = finish_reason(&choice["finish_reason"]).unwrap_or(FinishReason::Stop);
            let text = choice["message"]["content"].as_str().unwrap_or_default();
            if text.is_empty()
                && (finish == FinishReason::ContentFilter
                    || choice["message"]["refusal"].is_string())
            {
                return Err(ProviderError::ContentFilter);
            }
            if choice.is_null() {
                return Err(ProviderError::Server("the answer has no choices".into()));
            }
            let model = answer["model"]
                .as_str()
                .map_or_else(|| self.model_for(options), str::to_owned);
            Ok(AiResponse {
                usage: usage_of(&answer["usage"], &model, prompt, text),
                text: text.to_owned(),
                model,
                provider: self.name,
                finish_reason: finish,
                latency: started.elapsed(),
                degraded: false,
                failed: Vec::new(),
                vendor,
            })
        })
    }

    fn stream<'a>(
        &'a self,
        prompt: &'a RenderedPrompt,
        options: &'a CompletionOptions,
    ) -> BoxFuture<'a, Result<ChunkStream, ProviderError>> {
        Box::pin(async move {
            let request = self
                .client
                .post(self.url("chat/completions"))
                .json(&self.body(prompt, options, true));
            let response = http::send(self.authorized(request)).await?;
            let state = StreamState {
                vendor: super::ratelimit::openai(response.headers()),
                model: self.model_for(options),
                prompt: prompt.clone(),
                ..StreamState::default()
            };
            Ok(stream::chunks(response, state))
        })
    }

    fn embed<'a>(&'a self, text: &'a str) -> BoxFuture<'a, Result<Vec<f32>, ProviderError>> {
        Box::pin(async move {
            let request = self
                .client
                .post(self.url("embeddings"))
                .json(&json!({ "model": self.embedding_model, "input": text }));
            let answer = http::json(http::send(self.authorized(request)).await?).await?;
            let vector: Option<Vec<f32>> =
                answer["data"][0]["embedding"].as_array().map(|values| {
                    values
                        .iter()
                        .filter_map(|v| v.as_f64())
                        .map(|v| v as f32)
                        .collect()
                });
            vector
                .filter(|v| !v.is_empty())
                .ok_or_else(|| ProviderError::Server("the answer has no embedding".into()))
        })
    }

    fn count_tokens(&self, text: &str) -> usize {
        tokens::count(&self.model, text)
    }

    fn health_check(&self) -> BoxFuture<'_, Health> {
        Box::pin(async move {
            let url = match &self.endpoint {
                Endpoint::OpenAi { base_url, .. } => format!("{base_url}/models"),
                Endpoint::Azure {
                    endpoint,
                    api_version,
                    ..
                } => format!("{endpoint}/openai/models?api-version={api_version}"),
            };
            http::health(self.authorized(self.client.get(url))).await
        })
    }
}

/// What a streamed answer has said so far.
#[derive(Default)]
struct StreamState {
    vendor: Option<super::VendorLimits>,
    model: String,
    prompt: RenderedPrompt,
    text: String,
    finish: Option<FinishReason>,
    usage: Value,
}

impl stream::Parser for StreamState {
    fn on_event(&mut self, event: &SseEvent) -> Result<Step, ProviderError> {
        if event.data.trim() == "[DONE]" {
            return Ok(Step::End);
        }
        let chunk: Value = serde_json::from_str(&event.data).map_err(|err| {
            ProviderError::Server(format!("a stream chunk is not valid JSON: {err}"))
        })?;
        if chunk["error"].is_object() {
            return Err(http::error_from_status(
                500,
                &reqwest::header::HeaderMap::new(),
                &event.data,
            ));
        }
        if let Some(model) = chunk["model"].as_str().filter(|m| !m.is_empty()) {
            self.model = model.to_owned();
        }
        if chunk["usage"].is_object() {
            self.usage = chunk["usage"].clone();
        }
        let choice = &chunk["choices"][0];
        if let Some(finish) = finish_reason(&choice["finish_reason"]) {
            self.finish = Some(finish);
        }
        match choice["delta"]["content"].as_str() {
            Some(text) if !text.is_empty() => {
                self.text.push_str(text);
                Ok(Step::Text(text.to_owned()))
            }
            _ => Ok(Step::Nothing),
        }
    }

    /// Some servers close without `[DONE]` after the last chunk.
    fn on_close(&self) -> Result<Step, ProviderError> {
        match self.finish {
            Some(_) => Ok(Step::End),
            None => Err(stream::cut()),
        }
    }

    fn end(&self) -> Result<Chunk, ProviderError> {
        let finish = self.finish.unwrap_or(FinishReason::Stop);
        if finish == FinishReason::ContentFilter && self.text.is_empty() {
            return Err(ProviderError::ContentFilter);
        }
        let usage = usage_of(&self.usage, &self.model, &self.prompt, &self.text);
        Ok(Chunk {
            text: String::new(),
            done: Some(StreamEnd {
                usage,
                finish_reason: finish,
                model: self.model.clone(),
                vendor: self.vendor,
            }),
        })
    }
}
