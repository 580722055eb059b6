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
    /// How calls wait for a provider's capacity (`rpm`, `tpm`… of each provider).
    pub capacity: CapacitySettings,
}

impl ProviderSettings {
    pub fn deadline(&self) -> Duration {
        Duration::from_millis(self.deadline_ms)
    }

    /// The configured capacity of provider `name` (`mock`, `openai`, `azure`, `anthropic`).
    pub fn limits(&self, name: &str) -> CapacityLimits {
        let limits = |rpm, tpm, itpm, otpm, max_in_flight| CapacityLimits {
            rpm,
            tpm,
            itpm,
            otpm,
            max_in_flight,
        };
        let (o, a, n, m) = (&self.openai, &self.azure, &self.anthropic, &self.mock);
        match name {
            "openai" => limits(o.rpm, o.tpm, o.itpm, o.otpm, o.max_in_flight),
            "azure" => limits(a.rpm, a.tpm, a.itpm, a.otpm, a.max_in_flight),
            "anthropic" => limits(n.rpm, n.tpm, n.itpm, n.otpm, n.max_in_flight),
            _ => limits(m.rpm, m.tpm, m.itpm, m.otpm, m.max_in_flight),
        }
    }
}

/// One provider entry's capacity, shared by every process (`capacity` module): requests and
/// tokens per minute, as the vendor enforces them for the key or deployment. 0: no limit of
/// that kind. The vendor's own `x-ratelimit-*` / `anthropic-ratelimit-*` headers win while fresh.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CapacityLimits {
    /// Requests per minute.
    pub rpm: u64,
    /// Tokens (input + output) per minute: OpenAI's and Azure's TPM.
    pub tpm: u64,
    /// Input tokens per minute (Anthropic's ITPM).
    pub itpm: u64,
    /// Output tokens per minute (Anthropic's OTPM).
    pub otpm: u64,
    /// Calls in flight at once, across the fleet.
    pub max_in_flight: u64,
}

impl CapacityLimits {
    pub fn is_unlimited(&self) -> bool {
        *self == Self::default()
    }
}

/// How calls wait for capacity.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CapacitySettings {
    /// Book capacity at all (off: every call goes at once, as before there were limits).
    pub enabled: bool,
    /// Longest a worker keeps a job's slot while it waits for its booked call; a longer wait
    /// gives the slot back and the job waits in the queue instead (no attempt is counted).
    pub hold_ms: u64,
    /// The same for batch items, shorter: a batch books at most this far ahead, so it never adds
    /// more than this to an interactive call's wait (one dispatch round).
    pub batch_hold_ms: u64,
    /// How long a queued job may wait for its provider's capacity before the chain fails over
    /// to the next provider: a provider paused or busy for longer is passed over.
    pub max_wait_secs: u64,
    /// How many calls may go at once (the bucket's depth), in seconds of the rate.
    pub burst_ms: u64,
    /// How long a vendor's reported limits win over the configured ones.
    pub vendor_fresh_secs: u64,
    /// Requests of the burst batch items leave free for interactive calls.
    pub interactive_headroom: u64,
    /// Longest a call that booked capacity may stay in flight before its place is freed
    /// (a process that died mid-call).
    pub lease_secs: u64,
}

impl CapacitySettings {
    /// How long a call of `class` waits here for capacity it booked.
    pub fn hold(&self, batch: bool) -> Duration {
        Duration::from_millis(if batch {
            self.batch_hold_ms.min(self.hold_ms)
        } else {
            self.hold_ms
        })
    }

    pub fn max_wait(&self) -> Duration {
        Duration::from_secs(self.max_wait_secs)
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
    /// Requests per minute this provider takes from the fleet (0: no limit); see
    /// [`CapacityLimits`] for this and the next ones.
    #[serde(default)]
    pub rpm: u64,
    #[serde(default)]
    pub tpm: u64,
    #[serde(default)]
    pub itpm: u64,
    #[serde(default)]
    pub otpm: u64,
    #[serde(default)]
    pub max_in_flight: u64,
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
    /// Requests per minute this provider takes from the fleet (0: no limit); see
    /// [`CapacityLimits`] for this and the next ones.
    #[serde(default)]
    pub rpm: u64,
    #[serde(default)]
    pub tpm: u64,
    #[serde(default)]
    pub itpm: u64,
    #[serde(default)]
    pub otpm: u64,
    #[serde(default)]
    pub max_in_flight: u64,
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
    /// Requests per minute this provider takes from the fleet (0: no limit); see
    /// [`CapacityLimits`] for this and the next ones.
    #[serde(default)]
    pub rpm: u64,
    #[serde(default)]
    pub tpm: u64,
    #[serde(default)]
    pub itpm: u64,
    #[serde(default)]
    pub otpm: u64,
    #[serde(default)]
    pub max_in_flight: u64,
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
    /// Requests per minute this provider takes from the fleet (0: no limit); see
    /// [`CapacityLimits`] for this and the next ones.
    #[serde(default)]
    pub rpm: u64,
    #[serde(default)]
    pub tpm: u64,
    #[serde(default)]
    pub itpm: u64,
    #[serde(default)]
    pub otpm: u64,
    #[serde(default)]
    pub max_in_flight: u64,
}
