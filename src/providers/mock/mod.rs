//! The mock provider: deterministic answers derived from the rendered prompt, with configurable
//! latency and failure rate. The development default and the load-test provider.

mod instance;

use std::time::{Duration, Instant};

use futures_util::StreamExt as _;
use futures_util::future::BoxFuture;
use futures_util::stream;
use sha2::{Digest, Sha256};

use super::{
    AiProvider, AiResponse, Chunk, ChunkStream, CompletionOptions, FinishReason, Health,
    ProviderError, StreamEnd, Usage,
};
use crate::config::MockSettings;
use crate::prompts::RenderedPrompt;

/// Sentences the mock picks from for plain-text answers.
const SENTENCES: &[&str] = &[
    "Önce sorunun senden ne istediğini kendi cümlelerinle yaz.",
    "Verilenleri ve istenenleri ayrı ayrı listelemek işini kolaylaştırır.",
    "Benzer bir örneği hatırla: orada hangi adımı ilk attın?",
    "Konunun temel tanımını gözden geçirmek iyi bir başlangıç olur.",
    "Küçük bir sayıyla deneyip örüntüyü görmeye çalış.",
    "Her adımı kontrol ederek ilerlersen hatayı erken yakalarsın.",
    "Bu konu, günlük hayattaki basit bir durumla düşünülünce daha kolay anlaşılır.",
    "Çözüme ulaşmak için bir sonraki mantıklı adım üzerinde düşün.",
];

pub struct MockProvider {
    settings: MockSettings,
    /// Free-text answers given so far from `settings.replies`.
    replied: std::sync::atomic::AtomicUsize,
}

impl MockProvider {
    pub fn new(settings: MockSettings) -> Self {
        Self {
            settings,
            replied: std::sync::atomic::AtomicUsize::new(0),
        }
    }

    fn seed(prompt: &RenderedPrompt, model: &str) -> u64 {
        let mut hasher = Sha256::new();
        hasher.update(model.as_bytes());
        hasher.update([0]);
        hasher.update(prompt.system.as_bytes());
        hasher.update([0]);
        hasher.update(prompt.user.as_bytes());
        let digest = hasher.finalize();
        u64::from_le_bytes(digest[..8].try_into().expect("8 bytes"))
    }

    fn latency(&self) -> Duration {
        let (min, max) = self.settings.latency_ms.bounds();
        if min >= max {
            return min;
        }
        Duration::from_millis(fastrand::u64(
            min.as_millis() as u64..=max.as_millis() as u64,
        ))
    }

    fn injected_failure(&self) -> Result<(), ProviderError> {
        if self.settings.failure_rate > 0.0 && fastrand::f64() < self.settings.failure_rate {
            return Err(ProviderError::Server("mock: injected failure".into()));
        }
        Ok(())
    }

    /// The answer with its usage and model, as both `complete` and `stream` give it.
    fn respond(
        &self,
        prompt: &RenderedPrompt,
        options: &CompletionOptions,
    ) -> (String, Usage, String) {
        let model = options
            .model
            .clone()
            .unwrap_or_else(|| self.settings.model.clone());
        let text = self.answer(prompt, options, &model);
        let prompt_tokens = self.count_tokens(&prompt.system) + self.count_tokens(&prompt.user);
        let usage = Usage::new(prompt_tokens as u32, self.count_tokens(&text) as u32);
        (text, usage, model)
    }

    /// The answer for a prompt: the same prompt and options always give the same text.
    fn answer(&self, prompt: &RenderedPrompt, options: &CompletionOptions, model: &str) -> String {
        let mut rng = fastrand::Rng::with_seed(Self::seed(prompt, model));
        let topic = topic_line(&prompt.user);
        match &options.json_schema {
            Some(schema) => instance::instance(schema, &mut rng, &topic, "mock").to_string(),
            None if !self.settings.replies.is_empty() => {
                let turn = self
                    .replied
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                self.settings.replies[turn % self.settings.replies.len()].clone()
            }
            None => {
                let first = rng.usize(..SENTENCES.len());
                let second = (first + 1 + rng.usize(..SENTENCES.len() - 1)) % SENTENCES.len();
                let (first, second) = (SENTENCES[first], SENTENCES[second]);
                let text = format!("{first} {second} ({topic})");
                truncate_tokens(&text, options.max_tokens as usize)
            }
        }
    }
}

/// The first non-empty line of the user prompt without its `Label:`, shortened: what the
/// mock "talks about".
fn topic_line(user: &str) -> String {
    let line = user
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or("");
    // "Soru: 2x + 3 = 11 ..." talks about "2x + 3 = 11 ...".
    let value = line.split_once(": ").map_or(line, |(_, value)| value);
    value.chars().take(80).collect()
}

/// Rough token estimate used by the mock: one token per four characters, rounded up.
fn estimate_tokens(text: &str) -> usize {
    text.chars().count().div_ceil(4)
}

fn truncate_tokens(text: &str, max_tokens: usize) -> String {
    if max_tokens == 0 || estimate_tokens(text) <= max_tokens {
        return text.to_owned();
    }
    text.chars().take(max_tokens * 4).collect()
}

impl AiProvider for MockProvider {
    fn name(&self) -> &'static str {
        "mock"
    }

    fn complete<'a>(
        &'a self,
        prompt: &'a RenderedPrompt,
        options: &'a CompletionOptions,
    ) -> BoxFuture<'a, Result<AiResponse, ProviderError>> {
        Box::pin(async move {
            let started = Instant::now();
            let latency = self.latency();
            if !latency.is_zero() {
                tokio::time::sleep(latency).await;
            }
            self.injected_failure()?;
            let (text, usage, model) = self.respond(prompt, options);
            Ok(AiResponse {
                text,
                usage,
                model,
                provider: self.name(),
                finish_reason: FinishReason::Stop,
                latency: started.elapsed(),
                degraded: false,
                failed: Vec::new(),
                vendor: None,
            })
        })
    }

    fn stream<'a>(
        &'a self,
        prompt: &'a RenderedPrompt,
        options: &'a CompletionOptions,
    ) -> BoxFuture<'a, Result<ChunkStream, ProviderError>> {
        Box::pin(async move {
            self.injected_failure()?;
            let (text, usage, model) = self.respond(prompt, options);
            let chars: Vec<char> = text.chars().collect();
            let pieces: Vec<String> = chars
                .chunks(self.settings.stream_chunk_chars)
                .map(|c| c.iter().collect())
                .collect();
            let pause = self.latency() / pieces.len().max(1) as u32;
            let last = pieces.len().saturating_sub(1);
            let chunks = stream::iter(pieces.into_iter().enumerate()).then(move |(i, text)| {
                let model = model.clone();
                async move {
                    tokio::time::sleep(pause).await;
                    Ok(Chunk {
                        text,
                        done: (i == last).then_some(StreamEnd {
                            usage,
                            finish_reason: FinishReason::Stop,
                            model,
                            vendor: None,
                        }),
                    })
                }
            });
            Ok(Box::pin(chunks) as ChunkStream)
        })
    }

    fn embed<'a>(&'a self, text: &'a str) -> BoxFuture<'a, Result<Vec<f32>, ProviderError>> {
        Box::pin(async move {
            let digest = Sha256::digest(text.as_bytes());
            let mut rng = fastrand::Rng::with_seed(u64::from_le_bytes(
                digest[..8].try_into().expect("8 bytes"),
            ));
            let raw: Vec<f32> = (0..64).map(|_| rng.f32() * 2.0 - 1.0).collect();
            let norm = raw
                .iter()
                .map(|x| x * x)
                .sum::<f32>()
                .sqrt()
                .max(f32::EPSILON);
            Ok(raw.into_iter().map(|x| x / norm).collect())
        })
    }

    fn count_tokens(&self, text: &str) -> usize {
        estimate_tokens(text)
    }

    fn health_check(&self) -> BoxFuture<'_, Health> {
        Box::pin(async {
            Health {
                healthy: true,
                detail: "mock provider".into(),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::LatencySetting;

    fn provider(failure_rate: f64) -> MockProvider {
        MockProvider::new(MockSettings {
            model: "mock-1".into(),
            latency_ms: LatencySetting::Fixed(0),
            failure_rate,
            stream_chunk_chars: 8,
            replies: Vec::new(),
            rpm: 0,
            tpm: 0,
            itpm: 0,
            otpm: 0,
            max_in_flight: 0,
        })
    }

    fn prompt() -> RenderedPrompt {
        RenderedPrompt {
            system: "Sen bir öğretmensin.".into(),
            user: "Soru: 2x + 3 = 11 ise x kaçtır?".into(),
        }
    }

    #[tokio::test]
    async fn answers_are_deterministic_and_counted() {
        let mock = provider(0.0);
        let options = CompletionOptions {
            max_tokens: 200,
            ..Default::default()
        };
        let a = mock.complete(&prompt(), &options).await.unwrap();
        let b = mock.complete(&prompt(), &options).await.unwrap();
        assert_eq!(a.text, b.text);
        assert!(a.text.contains("2x + 3 = 11"), "{}", a.text);
        assert_eq!(
            a.usage.total_tokens,
            a.usage.prompt_tokens + a.usage.completion_tokens
        );
        assert!(a.usage.completion_tokens > 0);
    }

    #[tokio::test]
    async fn stream_reassembles_to_the_complete_answer() {
        let mock = provider(0.0);
        let options = CompletionOptions {
            max_tokens: 200,
            ..Default::default()
        };
        let whole = mock.complete(&prompt(), &options).await.unwrap();
        let chunks: Vec<Chunk> = mock
            .stream(&prompt(), &options)
            .await
            .unwrap()
            .map(|c| c.unwrap())
            .collect()
            .await;
        assert!(chunks.len() > 1);
        assert_eq!(
            chunks.iter().map(|c| c.text.as_str()).collect::<String>(),
            whole.text
        );
        assert!(chunks.last().unwrap().done.is_some());
        assert!(chunks[..chunks.len() - 1].iter().all(|c| c.done.is_none()));
    }

    #[tokio::test]
    async fn failure_rate_one_always_fails() {
        let mock = provider(1.0);
        let err = mock
            .complete(&prompt(), &CompletionOptions::default())
            .await
            .unwrap_err();
        assert!(err.is_transient());
    }

    #[tokio::test]
    async fn embeddings_are_unit_vectors() {
        let v = provider(0.0).embed("merhaba").await.unwrap();
        let norm: f32 = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-4);
    }
}
