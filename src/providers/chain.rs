//! Each feature's provider chain, and the resilience around it (DESIGN.md §7):
//!
//! - every provider has a circuit breaker ([`Breaker`]); an open one is skipped at once;
//! - a retryable failure (rate limit, overload, timeout, 5xx) is retried on the same provider
//!   with exponential backoff and jitter (backon), never sooner than its `Retry-After`;
//! - then the chain fails over to the next provider; a failure the request caused (bad request,
//!   content filter) ends the chain, since another provider would refuse it too;
//! - one deadline bounds the whole request, so retries never multiply down the chain;
//! - when every provider has failed, the mock answers with `degraded: true` and the failures;
//! - before each call the provider's capacity (shared by the fleet, [`CapacityGate`]) is booked:
//!   a call due within its hold waits for it; a provider whose capacity is taken for longer than
//!   `providers.capacity.max_wait_secs` is passed over; otherwise the chain answers
//!   [`ProviderError::Busy`] (the task waits in the queue, never a degraded answer).

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
use super::gate::{Booking, CapacityGate, Demand, Gate, Report, Unlimited};
use super::{
    AiProvider, AiResponse, Anthropic, Chunk, ChunkStream, CompletionOptions, Health, MockProvider,
    OpenAiCompatible, ProviderError,
};
use crate::config::{CapacitySettings, MockSettings, ProviderSettings, RetrySettings};
use crate::feature::Feature;
use crate::prompts::RenderedPrompt as Prompt;
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
    /// A provider worth waiting for has no capacity yet (the last failure says until when).
    Busy(Vec<(&'static str, ProviderError)>),
}

#[derive(Clone)]
pub struct ProviderChains {
    chains: Arc<BTreeMap<Feature, Vec<&'static str>>>,
    slots: Arc<BTreeMap<&'static str, Slot>>,
    /// The mock that answers, flagged degraded, when a whole chain failed.
    fallback: Option<Arc<dyn AiProvider>>,
    retry: RetrySettings,
    deadline: Duration,
    gate: Arc<dyn CapacityGate>,
    capacity: CapacitySettings,
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
            gate: Arc::new(Unlimited),
            capacity: settings.capacity.clone(),
        }
    }

    /// The same chains, booking each call's capacity at `gate`.
    pub fn with_gate(mut self, gate: Arc<dyn CapacityGate>) -> Self {
        self.gate = gate;
        self
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

    /// Books `provider`'s capacity for one call of `prompt` and waits until it is due; `Ok(None)`
    /// when no limit applies, `Err` when it is not due within the call's hold.
    async fn book(
        &self,
        provider: &dyn AiProvider,
        prompt: &Prompt,
        options: &CompletionOptions,
    ) -> Result<Option<Booking>, super::gate::Busy> {
        if !self.gate.applies(provider.name()) {
            return Ok(None);
        }
        let patience = &options.patience;
        let demand = Demand {
            patience,
            hold: patience
                .hold
                .unwrap_or_else(|| self.capacity.hold(patience.class == super::Class::Batch)),
            input_tokens: (provider.count_tokens(&prompt.system)
                + provider.count_tokens(&prompt.user)) as u64,
            output_tokens: u64::from(options.max_tokens),
        };
        match self.gate.reserve(provider.name(), demand).await {
            Gate::Open => Ok(None),
            Gate::Booked(booking) => {
                if !booking.wait.is_zero() {
                    tokio::time::sleep(booking.wait).await;
                }
                Ok(Some(booking))
            }
            Gate::Busy(busy) => Err(busy),
        }
    }

    /// Settles a call's booking to what it used and what the vendor reported; a call that
    /// booked nothing still tells the gate the vendor's limits.
    async fn settle(&self, provider: &'static str, booking: Option<Booking>, report: Report) {
        match booking {
            Some(booking) => self.gate.settle(booking, report).await,
            None => {
                if let Some(vendor) = report.vendor {
                    self.gate.observed(provider, vendor);
                }
            }
        }
    }

    /// Runs `call` down the feature's chain with breakers, capacity, retries, failover and the
    /// deadline. A success comes with the capacity it booked, for the caller to settle.
    async fn run<'a, T>(
        &'a self,
        feature: Feature,
        prompt: &Prompt,
        options: &CompletionOptions,
        call: impl Fn(&'a dyn AiProvider) -> BoxFuture<'a, Result<T, ProviderError>>,
    ) -> Result<Ran<T>, Failed> {
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
                let booking = match self.book(slot.provider.as_ref(), prompt, options).await {
                    Ok(booking) => booking,
                    Err(busy) => {
                        let error = ProviderError::Busy {
                            ready_in: busy.ready_in,
                            reason: busy.reason,
                        };
                        crate::metrics::provider_call(name, error.kind(), None);
                        failures.push((name, error));
                        // Soon enough to wait for: the task waits in the queue for it.
                        if busy.ready_in <= self.capacity.max_wait() {
                            return Err(Failed::Busy(failures));
                        }
                        break;
                    }
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
                        return Ok(Ran {
                            value,
                            failures,
                            booking,
                        });
                    }
                    Err(error) => error,
                };
                ticket.record(Some(&error));
                tracing::warn!(provider = name, %error, "provider call failed");
                let wait_at_least = match &error {
                    ProviderError::RateLimited { retry_after } => retry_after.unwrap_or_default(),
                    _ => Duration::ZERO,
                };
                let rate_limited = match &error {
                    ProviderError::RateLimited { retry_after } => Some(*retry_after),
                    _ => None,
                };
                self.settle(
                    name,
                    booking,
                    Report {
                        rate_limited,
                        ..Report::default()
                    },
                )
                .await;
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
        // A provider that was only busy is not an outage: the soonest one is waited for.
        let soonest = failures
            .iter()
            .enumerate()
            .filter_map(|(i, (_, error))| match error {
                ProviderError::Busy { ready_in, .. } => Some((*ready_in, i)),
                _ => None,
            })
            .min();
        if let Some((_, i)) = soonest {
            let busy = failures.remove(i);
            failures.push(busy);
            return Err(Failed::Busy(failures));
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
            .run(feature, prompt, options, |provider| {
                provider.complete(prompt, options)
            })
            .await
        {
            Ok(Ran {
                value: mut response,
                failures,
                booking,
            }) => {
                let report = Report {
                    usage: Some(response.usage),
                    vendor: response.vendor,
                    rate_limited: None,
                };
                self.settle(response.provider, booking, report).await;
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
            Err(
                Failed::Exhausted(failures) | Failed::Refused(failures) | Failed::Busy(failures),
            ) => Err(ChainError::from_attempts(failures)),
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
            .run(feature, prompt, options, |provider| {
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
        let (provider, first, rest, failures, degraded, booking) = match begun {
            Ok(Ran {
                value: (provider, first, rest),
                failures,
                booking,
            }) => (provider, first, rest, failures, false, booking),
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
                ("mock", first, rest, failures, true, None)
            }
            Err(
                Failed::Exhausted(failures) | Failed::Refused(failures) | Failed::Busy(failures),
            ) => {
                return Err(ChainError::from_attempts(failures));
            }
        };
        let drained = drain(provider, first, rest, &mut on_text).await;
        let report = match &drained {
            Ok(response) => Report {
                usage: Some(response.usage),
                vendor: response.vendor,
                rate_limited: None,
            },
            Err(_) => Report::default(),
        };
        self.settle(provider, booking, report).await;
        let mut response = drained.map_err(|error| {
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

/// A call that answered, the failures before it, and the capacity it booked.
struct Ran<T> {
    value: T,
    failures: Vec<(&'static str, ProviderError)>,
    booking: Option<Booking>,
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
                vendor: end.vendor,
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
