//! Builds each feature's provider chain from config and runs a completion along it.
//!
//! A transient failure moves on to the next provider; any other failure stops the chain.
//! Circuit breakers, retries and the degraded answer wrap this in a later step.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use super::{AiProvider, AiResponse, CompletionOptions, MockProvider, ProviderError};
use crate::config::ProviderSettings;
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

#[derive(Clone)]
pub struct ProviderChains {
    chains: BTreeMap<Feature, Vec<Arc<dyn AiProvider>>>,
    /// Calls made to each provider by this process (`GET /v1/admin/providers`).
    calls: Arc<BTreeMap<String, AtomicU64>>,
}

impl ProviderChains {
    pub fn from_settings(settings: &ProviderSettings) -> Self {
        let mut built: BTreeMap<String, Arc<dyn AiProvider>> = BTreeMap::new();
        let mut provider = |name: &str| -> Arc<dyn AiProvider> {
            built
                .entry(name.to_owned())
                .or_insert_with(|| match name {
                    "mock" => Arc::new(MockProvider::new(settings.mock.clone())),
                    other => {
                        unreachable!("config validation admits only known providers, got {other}")
                    }
                })
                .clone()
        };
        let chains: BTreeMap<Feature, Vec<Arc<dyn AiProvider>>> = Feature::ALL
            .into_iter()
            .map(|feature| {
                let names = settings
                    .chains
                    .get(feature.as_str())
                    .unwrap_or(&settings.default_chain);
                (feature, names.iter().map(|n| provider(n)).collect())
            })
            .collect();
        let calls = built
            .keys()
            .map(|name| (name.clone(), AtomicU64::new(0)))
            .collect();
        Self {
            chains,
            calls: Arc::new(calls),
        }
    }

    /// `(provider, calls)` of every provider some chain uses.
    pub fn calls(&self) -> Vec<(String, u64)> {
        self.calls
            .iter()
            .map(|(name, count)| (name.clone(), count.load(Ordering::Relaxed)))
            .collect()
    }

    fn count_call(&self, provider: &str) {
        if let Some(count) = self.calls.get(provider) {
            count.fetch_add(1, Ordering::Relaxed);
        }
    }

    pub fn chain(&self, feature: Feature) -> &[Arc<dyn AiProvider>] {
        self.chains
            .get(&feature)
            .map(Vec::as_slice)
            .unwrap_or_default()
    }

    /// The first provider of the feature's chain, for token counting before a call.
    pub fn primary(&self, feature: Feature) -> &Arc<dyn AiProvider> {
        &self.chain(feature)[0]
    }

    /// Streams the answer of the first provider that starts one, calling `on_text` per chunk.
    /// A provider that fails before its first chunk hands over to the next; one that fails
    /// after it ends the call (its partial text was already shown).
    pub async fn stream(
        &self,
        feature: Feature,
        prompt: &RenderedPrompt,
        options: &CompletionOptions,
        mut on_text: impl FnMut(&str),
    ) -> Result<AiResponse, ChainError> {
        let mut attempts = Vec::new();
        for provider in self.chain(feature) {
            let started = std::time::Instant::now();
            self.count_call(provider.name());
            let mut chunks = match provider.stream(prompt, options).await {
                Ok(chunks) => chunks,
                Err(error) => {
                    let transient = error.is_transient();
                    attempts.push((provider.name(), error));
                    if transient {
                        continue;
                    }
                    break;
                }
            };
            let mut text = String::new();
            let mut end = None;
            let mut failure = None;
            while let Some(chunk) = futures_util::StreamExt::next(&mut chunks).await {
                match chunk {
                    Ok(chunk) => {
                        on_text(&chunk.text);
                        text.push_str(&chunk.text);
                        if chunk.done.is_some() {
                            end = chunk.done;
                        }
                    }
                    Err(error) => {
                        failure = Some(error);
                        break;
                    }
                }
            }
            match (failure, end) {
                (None, Some(end)) => {
                    return Ok(AiResponse {
                        text,
                        usage: end.usage,
                        model: end.model,
                        provider: provider.name(),
                        finish_reason: end.finish_reason,
                        latency: started.elapsed(),
                    });
                }
                (failure, _) => {
                    let error = failure.unwrap_or_else(|| {
                        ProviderError::Server("the stream ended without its final chunk".into())
                    });
                    let retry_next = text.is_empty() && error.is_transient();
                    attempts.push((provider.name(), error));
                    if !retry_next {
                        break;
                    }
                }
            }
        }
        Err(ChainError::from_attempts(attempts))
    }

    pub async fn complete(
        &self,
        feature: Feature,
        prompt: &RenderedPrompt,
        options: &CompletionOptions,
    ) -> Result<AiResponse, ChainError> {
        let mut attempts = Vec::new();
        for provider in self.chain(feature) {
            self.count_call(provider.name());
            match provider.complete(prompt, options).await {
                Ok(response) => return Ok(response),
                Err(error) => {
                    tracing::warn!(provider = provider.name(), %error, "provider call failed");
                    let transient = error.is_transient();
                    attempts.push((provider.name(), error));
                    if !transient {
                        break;
                    }
                }
            }
        }
        Err(ChainError::from_attempts(attempts))
    }
}
