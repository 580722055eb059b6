//! The provider layer: one trait every AI vendor implements, and the chains built from config.
//!
//! Providers know nothing of quotas, tasks or HTTP routes: they take a rendered prompt and
//! options and answer text, usage and timing.

mod anthropic;
mod breaker;
mod chain;
pub mod gate;
mod http;
mod mock;
mod openai;
pub mod ratelimit;
mod stream;
pub mod tokens;

use std::pin::Pin;
use std::time::Duration;

use futures_util::Stream;
use futures_util::future::BoxFuture;
use serde::Serialize;

pub use anthropic::Anthropic;
pub use chain::{ChainError, ProviderChains, ProviderStatus};
pub use gate::{CapacityGate, Class, Patience};
pub use http::{SseDecoder, SseEvent};
pub use mock::MockProvider;
pub use openai::OpenAiCompatible;
pub use ratelimit::VendorLimits;

use crate::prompts::RenderedPrompt;

/// Provider names a chain may use (the configuration owns the list it accepts).
pub use crate::config::PROVIDERS as KNOWN;

/// What a caller asks of one completion.
#[derive(Debug, Clone, Default)]
pub struct CompletionOptions {
    pub temperature: f32,
    pub max_tokens: u32,
    /// A model override; otherwise the provider's configured model.
    pub model: Option<String>,
    /// Ask for JSON matching this schema (structured output).
    pub json_schema: Option<std::sync::Arc<serde_json::Value>>,
    /// How long the call may wait for a provider's capacity, and for which task.
    pub patience: Patience,
}

pub use crate::outcome::{FinishReason, Usage};

#[derive(Debug, Clone)]
pub struct AiResponse {
    pub text: String,
    pub usage: Usage,
    pub model: String,
    pub provider: &'static str,
    pub finish_reason: FinishReason,
    pub latency: Duration,
    /// Every provider of the chain failed and the mock stood in.
    pub degraded: bool,
    /// "provider: error" for each failed attempt before this answer.
    pub failed: Vec<String>,
    /// What the vendor reported of its rate limits with this answer.
    pub vendor: Option<VendorLimits>,
}

/// One piece of a streamed answer; the last one carries how the answer ended.
#[derive(Debug, Clone)]
pub struct Chunk {
    pub text: String,
    pub done: Option<StreamEnd>,
}

#[derive(Debug, Clone)]
pub struct StreamEnd {
    pub usage: Usage,
    pub finish_reason: FinishReason,
    pub model: String,
    /// What the vendor reported of its rate limits when the stream began.
    pub vendor: Option<VendorLimits>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Health {
    pub healthy: bool,
    pub detail: String,
}

/// Every vendor failure maps to one of these; the kind decides retry or give up.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProviderError {
    #[error("authentication with the provider failed: {0}")]
    Auth(String),
    #[error("rate limited by the provider")]
    RateLimited { retry_after: Option<Duration> },
    #[error("the provider is overloaded: {0}")]
    Overloaded(String),
    #[error("the provider timed out")]
    Timeout,
    #[error("the provider refused the request: {0}")]
    BadRequest(String),
    #[error("the provider's content filter stopped the answer")]
    ContentFilter,
    #[error("provider error: {0}")]
    Server(String),
    #[error("not supported by this provider: {0}")]
    Unsupported(&'static str),
    #[error("the provider's circuit breaker is open (it failed repeatedly); skipped")]
    CircuitOpen,
    /// Its capacity (shared by the fleet) is taken for longer than the call may wait here.
    #[error("the provider has no capacity for {} ms ({reason})", ready_in.as_millis())]
    Busy {
        ready_in: Duration,
        reason: &'static str,
    },
}

impl ProviderError {
    /// Whether trying again (here or at the next provider in the chain) may succeed.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            Self::RateLimited { .. }
                | Self::Overloaded(_)
                | Self::Timeout
                | Self::Server(_)
                | Self::CircuitOpen
                | Self::Busy { .. }
        )
    }

    /// A short stable name for metrics (`tutorq_provider_requests_total{outcome}`).
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Auth(_) => "auth",
            Self::RateLimited { .. } => "rate_limited",
            Self::Overloaded(_) => "overloaded",
            Self::Timeout => "timeout",
            Self::BadRequest(_) => "bad_request",
            Self::ContentFilter => "content_filter",
            Self::Server(_) => "server_error",
            Self::Unsupported(_) => "unsupported",
            Self::CircuitOpen => "circuit_open",
            Self::Busy { .. } => "busy",
        }
    }

    /// Whether the request itself was refused, so another provider would refuse it too.
    pub fn is_refusal(&self) -> bool {
        matches!(
            self,
            Self::BadRequest(_) | Self::ContentFilter | Self::Unsupported(_)
        )
    }
}

pub type ChunkStream = Pin<Box<dyn Stream<Item = Result<Chunk, ProviderError>> + Send>>;

/// DESIGN.md §7: what every AI vendor adapter offers.
pub trait AiProvider: Send + Sync {
    fn name(&self) -> &'static str;
    fn complete<'a>(
        &'a self,
        prompt: &'a RenderedPrompt,
        options: &'a CompletionOptions,
    ) -> BoxFuture<'a, Result<AiResponse, ProviderError>>;
    fn stream<'a>(
        &'a self,
        prompt: &'a RenderedPrompt,
        options: &'a CompletionOptions,
    ) -> BoxFuture<'a, Result<ChunkStream, ProviderError>>;
    fn embed<'a>(&'a self, text: &'a str) -> BoxFuture<'a, Result<Vec<f32>, ProviderError>>;
    fn count_tokens(&self, text: &str) -> usize;
    fn health_check(&self) -> BoxFuture<'_, Health>;
}
