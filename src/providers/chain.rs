//! Each feature's provider chain, and the resilience around it (DESIGN.md §7):
//!
//! - every provider has a circuit breaker ([`Breaker`]); an open one is skipped at once;
//! - a retryable failure (rate limit, overload, timeout, 5xx) is retried on the same provider
//!   with exponential backoff and jitter (backon), never sooner than its `Retry-After`;
//! - then the chain fails over to the next provider; a failure the request caused (bad request,
//!   content filter) ends the chain, since another provider would refuse it too;
//! - one deadline bounds the whole request, so retries never multiply down the chain;
//! - when every provider has failed, the mock answers with `degraded: true` and the failures.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use backon::BackoffBuilder as _;
use futures_util::StreamExt as _;
use futures_util::future::BoxFuture;
use serde::Serialize;
use tokio::time::Instant;

use super::breaker::{Breaker, Snapshot};
use super::{
    AiProvider, AiResponse, Anthropic, Chunk, ChunkStream, CompletionOptions, Health, MockProvider,
    OpenAiCompatible, ProviderError,
};
use crate::config::{MockSettings, ProviderSettings, RetrySettings};
use crate::feature::Feature;
use crate::prompts::RenderedPrompt;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("every provider failed; last: {provider}: {error}")]
pub struct ChainError {
    pub provider: &'static str,
    pub error: ProviderError,
    /// `(provider, error)` for every attempt, in order.
    pub attempts: Vec<(&'static str, ProviderError)>,
}

impl ChainError {
    /// The error of a chain whose every attempt failed; the last attempt is the headline.
    fn from_attempts(attempts: Vec<(&'static str, ProviderError)>) -> Self {
        let (provider, error) = attempts
            .last()
            .cloned()
            .expect("a chain has at least one provider");
        Self {
            provider,
            error,
            attempts,
        }
    }
}

/// One provider with its breaker and counters.
struct Slot {
    provider: Arc<dyn AiProvider>,
    breaker: Arc<Breaker>,
    calls: AtomicU64,
    health: std::sync::Mutex<Option<(Health, jiff::Timestamp)>>,
}

/// What `GET /v1/admin/providers` shows of one provider.
#[derive(Debug, Clone, Serialize)]
pub struct ProviderStatus {
    pub name: &'static str,
    /// Calls this process made to it.
    pub calls: u64,
    pub breaker: Snapshot,
    pub health: Option<Health>,
    pub health_checked_at: Option<String>,
}

/// How running a chain ended without an answer.
enum Failed {
    /// Every provider failed (or was skipped): a degraded answer may stand in.
    Exhausted(Vec<(&'static str, ProviderError)>),
    /// The request itself was refused: the error goes back to the caller.
    Refused(Vec<(&'static str, ProviderError)>),
}

#[derive(Clone)]
pub struct ProviderChains {
    chains: Arc<BTreeMap<Feature, Vec<&'static str>>>,
    slots: Arc<BTreeMap<&'static str, Slot>>,
    /// The mock that answers, flagged degraded, when a whole chain failed.
    fallback: Option<Arc<dyn AiProvider>>,
    retry: RetrySettings,
    deadline: Duration,
}

impl ProviderChains {
    pub fn from_settings(settings: &ProviderSettings) -> Self {
        Self::with_builder(settings, |name| build(name, settings))
    }

    /// Chains from the settings, each provider name made by `build` (tests pass fakes).
    pub fn with_builder(
        settings: &ProviderSettings,
        mut build: impl FnMut(&str) -> Arc<dyn AiProvider>,
    ) -> Self {
        let mut slots: BTreeMap<&'static str, Slot> = BTreeMap::new();
        let mut chains = BTreeMap::new();
        for feature in Feature::ALL {
            let names = settings
                .chains
                .get(feature.as_str())
                .unwrap_or(&settings.default_chain);
            let mut chain = Vec::new();
            for name in names {
                if let Some(existing) = slots.keys().find(|k| **k == name.as_str()) {
                    chain.push(*existing);
                    continue;
                }
                let provider = build(name);
                let name = provider.name();
                slots.entry(name).or_insert_with(|| Slot {
                    provider,
                    breaker: Breaker::new(&settings.breaker),
                    calls: AtomicU64::new(0),
                    health: std::sync::Mutex::new(None),
                });
                chain.push(name);
            }
            chains.insert(feature, chain);
        }
        let fallback = settings.degraded_fallback.then(|| {
            // Always answers, at once: it stands in for providers that are down.
            let steady = MockSettings {
                latency_ms: crate::config::LatencySetting::Fixed(0),
                failure_rate: 0.0,
                ..settings.mock.clone()
            };
            Arc::new(MockProvider::new(steady)) as Arc<dyn AiProvider>
        });
        Self {
            chains: Arc::new(chains),
            slots: Arc::new(slots),
            fallback,
            retry: settings.retry.clone(),
            deadline: settings.deadline(),
        }
    }

    fn chain(&self, feature: Feature) -> impl Iterator<Item = &Slot> {
        self.chains
            .get(&feature)
            .into_iter()
            .flatten()
            .filter_map(|name| self.slots.get(name))
    }

    /// The first provider of the feature's chain, for token counting before a call.
    pub fn primary(&self, feature: Feature) -> &Arc<dyn AiProvider> {
        &self
            .chain(feature)
            .next()
            .expect("every chain has a provider")
            .provider
    }

    /// Every provider some chain uses: calls, breaker, last health check.
    pub fn status(&self) -> Vec<ProviderStatus> {
        self.slots
            .values()
            .map(|slot| {
                let health = slot
                    .health
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .clone();
                ProviderStatus {
                    name: slot.provider.name(),
                    calls: slot.calls.load(Ordering::Relaxed),
                    breaker: slot.breaker.snapshot(),
                    health_checked_at: health.as_ref().map(|(_, at)| at.to_string()),
                    health: health.map(|(h, _)| h),
                }
            })
            .collect()
    }

    /// Checks every provider but the mock every `interval`; the results feed the breakers.
    pub fn spawn_health_checks(&self, interval: Duration) {
        if interval.is_zero() {
            return;
        }
        let chains = self.clone();
        tokio::spawn(async move {
            let mut timer = tokio::time::interval(interval);
            timer.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                timer.tick().await;
                for slot in chains.slots.values() {
                    if slot.provider.name() == "mock" {
                        continue;
                    }
                    let health = slot.provider.health_check().await;
                    if let Ok(ticket) = slot.breaker.admit() {
                        let failure = ProviderError::Server(health.detail.clone());
                        ticket.record((!health.healthy).then_some(&failure));
                    }
                    *slot.health.lock().unwrap_or_else(|e| e.into_inner()) =
                        Some((health, jiff::Timestamp::now()));
                }
            }
        });
    }

    fn backoff(&self) -> impl Iterator<Item = Duration> {
        let retry = &self.retry;
        let builder = backon::ExponentialBuilder::default()
            .with_min_delay(Duration::from_millis(retry.initial_ms))
            .with_factor(retry.multiplier)
            .with_max_delay(Duration::from_millis(retry.max_ms))
            .with_max_times(retry.max_attempts.saturating_sub(1) as usize);
        if retry.jitter {
            builder.with_jitter().build()
        } else {
            builder.build()
        }
    }

    /// Runs `call` down the feature's chain with breakers, retries, failover and the deadline.
    async fn run<'a, T>(
        &'a self,
        feature: Feature,
        call: impl Fn(&'a dyn AiProvider) -> BoxFuture<'a, Result<T, ProviderError>>,
    ) -> Result<(T, Vec<(&'static str, ProviderError)>), Failed> {
        let deadline = Instant::now() + self.deadline;
        let mut failures = Vec::new();
        for slot in self.chain(feature) {
            let name = slot.provider.name();
            let mut delays = self.backoff();
            loop {
                let Ok(ticket) = slot.breaker.admit() else {
                    crate::metrics::provider_call(name, ProviderError::CircuitOpen.kind(), None);
                    failures.push((name, ProviderError::CircuitOpen));
                    break;
                };
                slot.calls.fetch_add(1, Ordering::Relaxed);
                let started = Instant::now();
                let result = tokio::time::timeout_at(deadline, call(slot.provider.as_ref()))
                    .await
                    .unwrap_or(Err(ProviderError::Timeout));
                let outcome = result.as_ref().map_or_else(ProviderError::kind, |_| "ok");
                crate::metrics::provider_call(name, outcome, Some(started.elapsed()));
                let error = match result {
                    Ok(value) => {
                        ticket.record(None);
                        return Ok((value, failures));
                    }
                    Err(error) => error,
                };
                ticket.record(Some(&error));
                tracing::warn!(provider = name, %error, "provider call failed");
                let wait_at_least = match &error {
                    ProviderError::RateLimited { retry_after } => retry_after.unwrap_or_default(),
                    _ => Duration::ZERO,
                };
                let retryable = error.is_transient();
                let refused = error.is_refusal();
                failures.push((name, error));
                if refused {
                    return Err(Failed::Refused(failures));
                }
                let Some(delay) = delays.next().filter(|_| retryable) else {
                    break;
                };
                let delay = delay.max(wait_at_least);
                if Instant::now() + delay >= deadline {
                    break;
                }
                tokio::time::sleep(delay).await;
            }
            if Instant::now() >= deadline {
                break;
            }
        }
        Err(Failed::Exhausted(failures))
    }

    pub async fn complete(
        &self,
        feature: Feature,
        prompt: &RenderedPrompt,
        options: &CompletionOptions,
    ) -> Result<AiResponse, ChainError> {
        match self
            .run(feature, |provider| provider.complete(prompt, options))
            .await
        {
            Ok((mut response, failures)) => {
                response.failed = describe(&failures);
                Ok(response)
            }
            Err(Failed::Exhausted(failures)) if self.fallback.is_some() => {
                let fallback = self.fallback.as_ref().expect("checked above");
                let mut response = fallback
                    .complete(prompt, options)
                    .await
                    .map_err(|error| ChainError::from_attempts(vec![("mock", error)]))?;
                response.degraded = true;
                response.failed = describe(&failures);
                tracing::warn!(feature = %feature, failed = ?response.failed, "every provider failed; answering degraded");
                Ok(response)
            }
            Err(Failed::Exhausted(failures) | Failed::Refused(failures)) => {
                Err(ChainError::from_attempts(failures))
            }
        }
    }

    /// Streams the answer, calling `on_text` per chunk. Retries and failover apply until the
    /// first chunk arrives; a stream that breaks after it ends the call (its text was shown).
    pub async fn stream(
        &self,
        feature: Feature,
        prompt: &RenderedPrompt,
        options: &CompletionOptions,
        mut on_text: impl FnMut(&str),
    ) -> Result<AiResponse, ChainError> {
        let started = std::time::Instant::now();
        let begun = self
            .run(feature, |provider| {
                Box::pin(async move {
                    let mut chunks = provider.stream(prompt, options).await?;
                    let first = chunks
                        .next()
                        .await
                        .unwrap_or_else(|| Err(super::stream::cut()))?;
                    Ok((provider.name(), first, chunks))
                })
            })
            .await;
        let (provider, first, rest, failures, degraded) = match begun {
            Ok(((provider, first, rest), failures)) => (provider, first, rest, failures, false),
            Err(Failed::Exhausted(failures)) if self.fallback.is_some() => {
                let fallback = self.fallback.as_ref().expect("checked above");
                let started = fallback.stream(prompt, options).await;
                let mut rest =
                    started.map_err(|error| ChainError::from_attempts(vec![("mock", error)]))?;
                let first = rest
                    .next()
                    .await
                    .unwrap_or_else(|| Err(super::stream::cut()))
                    .map_err(|error| ChainError::from_attempts(vec![("mock", error)]))?;
                ("mock", first, rest, failures, true)
            }
            Err(Failed::Exhausted(failures) | Failed::Refused(failures)) => {
                return Err(ChainError::from_attempts(failures));
            }
        };
        let mut response = drain(provider, first, rest, &mut on_text)
            .await
            .map_err(|error| {
                let mut attempts = failures.clone();
                attempts.push((provider, error));
                ChainError::from_attempts(attempts)
            })?;
        response.latency = started.elapsed();
        response.degraded = degraded;
        response.failed = describe(&failures);
        Ok(response)
    }
}

/// Reads a started stream to its end.
async fn drain(
    provider: &'static str,
    first: Chunk,
    mut rest: ChunkStream,
    on_text: &mut impl FnMut(&str),
) -> Result<AiResponse, ProviderError> {
    let mut text = String::new();
    let mut next = Some(Ok(first));
    while let Some(chunk) = next {
        let chunk = chunk?;
        if !chunk.text.is_empty() {
            on_text(&chunk.text);
            text.push_str(&chunk.text);
        }
        if let Some(end) = chunk.done {
            return Ok(AiResponse {
                text,
                usage: end.usage,
                model: end.model,
                provider,
                finish_reason: end.finish_reason,
                latency: Duration::ZERO,
                degraded: false,
                failed: Vec::new(),
            });
        }
        next = rest.next().await;
    }
    Err(super::stream::cut())
}

/// "openai: HTTP 500: …" per failed attempt.
fn describe(failures: &[(&'static str, ProviderError)]) -> Vec<String> {
    failures
        .iter()
        .map(|(provider, error)| format!("{provider}: {error}"))
        .collect()
}

/// The adapter for a configured provider name (config validation admits only known names).
fn build(name: &str, settings: &ProviderSettings) -> Arc<dyn AiProvider> {
    match name {
        "openai" => Arc::new(OpenAiCompatible::openai(&settings.openai)),
        "azure" => Arc::new(OpenAiCompatible::azure(&settings.azure)),
        "anthropic" => Arc::new(Anthropic::new(&settings.anthropic)),
        _ => Arc::new(MockProvider::new(settings.mock.clone())),
    }
}

#[cfg(test)]
#[path = "chain_tests.rs"]
mod tests;
