//! `providers`: the chains, the resilience around them (retries, breakers, deadline, degraded
//! answer) and each vendor's connection. API keys come only from the environment.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;

use super::Secret;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderSettings {
    /// Provider chain of every feature without its own, tried in order.
    pub default_chain: Vec<String>,
    #[serde(default)]
    pub chains: BTreeMap<String, Vec<String>>,
    /// When every provider of a chain fails (or has its breaker open), answer with the mock and
    /// `degraded: true` instead of an error.
    pub degraded_fallback: bool,
    /// Longest one request may spend across its chain, retries included.
    pub deadline_ms: u64,
    pub retry: RetrySettings,
    pub breaker: BreakerSettings,
    /// Health check of every configured provider this often (feeds the breakers); 0: never.
    pub health_interval_secs: u64,
    pub mock: MockSettings,
    pub openai: OpenAiSettings,
    pub azure: AzureSettings,
    pub anthropic: AnthropicSettings,
}

impl ProviderSettings {
    pub fn deadline(&self) -> Duration {
        Duration::from_millis(self.deadline_ms)
    }
}

/// Retries of one provider before the chain moves on (only for retryable failures).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetrySettings {
    /// Attempts per provider, the first included.
    pub max_attempts: u32,
    pub initial_ms: u64,
    pub multiplier: f32,
    pub max_ms: u64,
    pub jitter: bool,
}

/// One circuit breaker per provider.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BreakerSettings {
    /// Opens after this many failures in a row…
    pub consecutive_failures: u32,
    /// …or when at least `min_calls` calls in the last `window_secs` failed at this ratio.
    pub failure_ratio: f64,
    pub min_calls: u32,
    pub window_secs: u64,
    /// Stays open this long, then lets `half_open_probes` calls through to test the provider.
    pub cooldown_secs: u64,
    pub half_open_probes: u32,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MockSettings {
    pub model: String,
    pub latency_ms: LatencySetting,
    pub failure_rate: f64,
    pub stream_chunk_chars: usize,
    /// Free-text answers to give instead of the generated ones, in turn (then again from the
    /// first): lets a test or a demo make the mock say something exact (a hint that leaks).
    #[serde(default)]
    pub replies: Vec<String>,
}

/// A fixed latency (`latency_ms: 50`) or a uniform range (`latency_ms: {min: 20, max: 120}`).
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(untagged)]
pub enum LatencySetting {
    Fixed(u64),
    Range { min: u64, max: u64 },
}

impl LatencySetting {
    pub fn bounds(self) -> (Duration, Duration) {
        match self {
            Self::Fixed(ms) => (Duration::from_millis(ms), Duration::from_millis(ms)),
            Self::Range { min, max } => (Duration::from_millis(min), Duration::from_millis(max)),
        }
    }
}

/// OpenAI, or any server that speaks its Chat Completions API (vLLM, llama.cpp, Ollama).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OpenAiSettings {
    /// Up to and including `/v1`.
    pub base_url: String,
    /// Environment only: `TUTORQ__PROVIDERS__OPENAI__API_KEY`. A local server may need none.
    #[serde(default)]
    pub api_key: Option<Secret>,
    #[serde(default)]
    pub organization: Option<String>,
    #[serde(default)]
    pub project: Option<String>,
    pub model: String,
    pub embedding_model: String,
    /// Send the prompt's output schema as `response_format` (`json_schema`); off for servers
    /// that do not support it (the answer is still validated, with one repair attempt).
    pub structured_output: bool,
    pub connect_timeout_ms: u64,
    pub timeout_ms: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AzureSettings {
    /// `https://<resource>.openai.azure.com`
    pub endpoint: String,
    pub deployment: String,
    pub embedding_deployment: String,
    pub api_version: String,
    /// Environment only: `TUTORQ__PROVIDERS__AZURE__API_KEY` (sent as `api-key`)…
    #[serde(default)]
    pub api_key: Option<Secret>,
    /// …or an Entra ID token, `TUTORQ__PROVIDERS__AZURE__BEARER_TOKEN` (sent as `Authorization`).
    #[serde(default)]
    pub bearer_token: Option<Secret>,
    /// The model behind the deployment (token counting and reports).
    pub model: String,
    pub structured_output: bool,
    pub connect_timeout_ms: u64,
    pub timeout_ms: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AnthropicSettings {
    /// Up to and including `/v1`.
    pub base_url: String,
    /// Environment only: `TUTORQ__PROVIDERS__ANTHROPIC__API_KEY`.
    #[serde(default)]
    pub api_key: Option<Secret>,
    /// The `anthropic-version` header.
    pub version: String,
    pub model: String,
    pub connect_timeout_ms: u64,
    pub timeout_ms: u64,
}
