//! Anthropic Messages API: `POST /v1/messages` with `x-api-key` and `anthropic-version`, the
//! system prompt as the top-level `system`, streamed as `message_start`, `content_block_delta`,
//! `message_delta` and `message_stop` events (usage from `message_start` and `message_delta`).
//! Anthropic has no embeddings endpoint.

use std::time::Instant;

use futures_util::future::BoxFuture;
use serde_json::{Value, json};

use super::http::{self, SseEvent};
use super::stream::{self, Step};
use super::{
    AiProvider, AiResponse, Chunk, ChunkStream, CompletionOptions, FinishReason, Health,
    ProviderError, StreamEnd, Usage, tokens,
};
use crate::config::AnthropicSettings;
use crate::prompts::RenderedPrompt;

pub struct Anthropic {
    client: reqwest::Client,
    base_url: String,
    api_key: String,
    version: String,
    model: String,
}

impl Anthropic {
    pub fn new(settings: &AnthropicSettings) -> Self {
        Self {
            client: http::client(settings.connect_timeout_ms, settings.timeout_ms),
            base_url: settings.base_url.trim_end_matches('/').to_owned(),
            api_key: settings
                .api_key
                .as_ref()
                .map(|k| k.expose().to_owned())
                .unwrap_or_default(),
            version: settings.version.clone(),
            model: settings.model.clone(),
        }
    }

    fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.client
            .request(method, format!("{}/{path}", self.base_url))
            .header("x-api-key", &self.api_key)
            .header("anthropic-version", &self.version)
    }

    fn body(&self, prompt: &RenderedPrompt, options: &CompletionOptions, stream: bool) -> Value {
        let mut system = prompt.system.clone();
        if let Some(schema) = &options.json_schema {
            // No structured-output switch here: ask for it in words; the answer is validated.
            system.push_str(&format!(
                "\n\nAnswer with one JSON object only, no other text, matching this JSON Schema:\n{schema}"
            ));
        }
        json!({
            "model": options.model.clone().unwrap_or_else(|| self.model.clone()),
            "system": system,
            "messages": [{ "role": "user", "content": prompt.user }],
            "max_tokens": options.max_tokens.max(1),
            "temperature": options.temperature,
            "stream": stream,
        })
    }
}

fn stop_reason(value: &Value) -> Option<FinishReason> {
    match value.as_str()? {
        "max_tokens" => Some(FinishReason::Length),
        "refusal" => Some(FinishReason::ContentFilter),
        _ => Some(FinishReason::Stop),
    }
}

/// An `error` event inside a stream (`{"type":"error","error":{"type":"overloaded_error",…}}`).
fn stream_error(data: &str) -> ProviderError {
    let parsed: Value = serde_json::from_str(data).unwrap_or_default();
    let status = match parsed["error"]["type"].as_str().unwrap_or_default() {
        "overloaded_error" => 529,
        "rate_limit_error" => 429,
        "authentication_error" => 401,
        "permission_error" => 403,
        "invalid_request_error" => 400,
        "request_too_large" => 413,
        _ => 500,
    };
    http::error_from_status(status, &reqwest::header::HeaderMap::new(), data)
}

impl AiProvider for Anthropic {
    fn name(&self) -> &'static str {
        "anthropic"
    }

    fn complete<'a>(
        &'a self,
        prompt: &'a RenderedPrompt,
        options: &'a CompletionOptions,
    ) -> BoxFuture<'a, Result<AiResponse, ProviderError>> {
        Box::pin(async move {
            let started = Instant::now();
            let request = self
                .request(reqwest::Method::POST, "messages")
                .json(&self.body(prompt, options, false));
            let response = http::send(request).await?;
            let vendor = super::ratelimit::anthropic(response.headers());
            let answer = http::json(response).await?;
            if answer["type"] == "error" {
                return Err(stream_error(&answer.to_string()));
            }
            let text: String = answer["content"]
                .as_array()
                .ok_or_else(|| ProviderError::Server("the answer has no content".into()))?
                .iter()
                .filter(|block| block["type"] == "text")
                .filter_map(|block| block["text"].as_str())
                .collect();
            let finish = stop_reason(&answer["stop_reason"]).unwrap_or(FinishReason::Stop);
            if finish == FinishReason::ContentFilter && text.is_empty() {
                return Err(ProviderError::ContentFilter);
            }
            let usage = &answer["usage"];
            Ok(AiResponse {
                usage: Usage::new(
                    usage["input_tokens"].as_u64().unwrap_or(0) as u32,
                    usage["output_tokens"].as_u64().unwrap_or(0) as u32,
                ),
                text,
                model: answer["model"].as_str().unwrap_or(&self.model).to_owned(),
                provider: "anthropic",
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
                .request(reqwest::Method::POST, "messages")
                .json(&self.body(prompt, options, true));
            let response = http::send(request).await?;
            let state = StreamState {
                vendor: super::ratelimit::anthropic(response.headers()),
                model: options.model.clone().unwrap_or_else(|| self.model.clone()),
                ..StreamState::default()
            };
            Ok(stream::chunks(response, state))
        })
    }

    fn embed<'a>(&'a self, _text: &'a str) -> BoxFuture<'a, Result<Vec<f32>, ProviderError>> {
        Box::pin(async {
            Err(ProviderError::Unsupported(
                "embeddings (Anthropic has no embeddings API)",
            ))
        })
    }

    fn count_tokens(&self, text: &str) -> usize {
        tokens::estimate(text)
    }

    fn health_check(&self) -> BoxFuture<'_, Health> {
        Box::pin(async move { http::health(self.request(reqwest::Method::GET, "models")).await })
    }
}

#[derive(Default)]
struct StreamState {
    vendor: Option<super::VendorLimits>,
    model: String,
    text: String,
    input_tokens: u64,
    output_tokens: u64,
    finish: Option<FinishReason>,
}

impl stream::Parser for StreamState {
    fn on_event(&mut self, event: &SseEvent) -> Result<Step, ProviderError> {
        let data: Value = serde_json::from_str(&event.data).map_err(|err| {
            ProviderError::Server(format!("a stream event is not valid JSON: {err}"))
        })?;
        let kind = event
            .event
            .as_deref()
            .or_else(|| data["type"].as_str())
            .unwrap_or_default();
        match kind {
            "message_start" => {
                let message = &data["message"];
                if let Some(model) = message["model"].as_str() {
                    self.model = model.to_owned();
                }
                self.input_tokens = message["usage"]["input_tokens"].as_u64().unwrap_or(0);
                self.output_tokens = message["usage"]["output_tokens"].as_u64().unwrap_or(0);
                Ok(Step::Nothing)
            }
            "content_block_delta" => match data["delta"]["text"].as_str() {
                Some(text) if data["delta"]["type"] == "text_delta" && !text.is_empty() => {
                    self.text.push_str(text);
                    Ok(Step::Text(text.to_owned()))
                }
                _ => Ok(Step::Nothing),
            },
            "message_delta" => {
                if let Some(finish) = stop_reason(&data["delta"]["stop_reason"]) {
                    self.finish = Some(finish);
                }
                if let Some(output) = data["usage"]["output_tokens"].as_u64() {
                    self.output_tokens = output;
                }
                if let Some(input) = data["usage"]["input_tokens"].as_u64() {
                    self.input_tokens = input;
                }
                Ok(Step::Nothing)
            }
            "message_stop" => Ok(Step::End),
            "error" => Err(stream_error(&event.data)),
            // ping, content_block_start, content_block_stop, and anything new.
            _ => Ok(Step::Nothing),
        }
    }

    /// Anthropic always ends with `message_stop`; closing before it is a cut stream.
    fn on_close(&self) -> Result<Step, ProviderError> {
        Err(stream::cut())
    }

    fn end(&self) -> Result<Chunk, ProviderError> {
        let finish = self.finish.unwrap_or(FinishReason::Stop);
        if finish == FinishReason::ContentFilter && self.text.is_empty() {
            return Err(ProviderError::ContentFilter);
        }
        Ok(Chunk {
            text: String::new(),
            done: Some(StreamEnd {
                usage: Usage::new(self.input_tokens as u32, self.output_tokens as u32),
                finish_reason: finish,
                model: self.model.clone(),
                vendor: self.vendor,
            }),
        })
    }
}
