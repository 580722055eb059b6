//! The chain's resilience with scripted providers and tokio's paused clock: no sleeps, no HTTP
//! (the adapters' HTTP is tested against vendor fixtures in `tests/api/providers.rs`).

use std::sync::Mutex;

use super::*;
use crate::config::Settings;
use crate::providers::{FinishReason, StreamEnd, Usage};

/// A provider that answers what the test says, and notes when it was called.
struct Scripted {
    name: &'static str,
    answer: Mutex<Result<String, ProviderError>>,
    calls: Mutex<Vec<Instant>>,
}

impl Scripted {
    fn new(name: &'static str, answer: Result<&str, ProviderError>) -> Arc<Self> {
        Arc::new(Self {
            name,
            answer: Mutex::new(answer.map(str::to_owned)),
            calls: Mutex::default(),
        })
    }

    fn set(&self, answer: Result<&str, ProviderError>) {
        *self.answer.lock().unwrap() = answer.map(str::to_owned);
    }

    fn calls(&self) -> Vec<Instant> {
        self.calls.lock().unwrap().clone()
    }

    fn next(&self) -> Result<String, ProviderError> {
        self.calls.lock().unwrap().push(Instant::now());
        self.answer.lock().unwrap().clone()
    }
}

impl AiProvider for Scripted {
    fn name(&self) -> &'static str {
        self.name
    }

    fn complete<'a>(
        &'a self,
        _prompt: &'a RenderedPrompt,
        _options: &'a CompletionOptions,
    ) -> BoxFuture<'a, Result<AiResponse, ProviderError>> {
        Box::pin(async move {
            let text = self.next()?;
            Ok(AiResponse {
                text,
                usage: Usage::new(10, 5),
                model: format!("{}-model", self.name),
                provider: self.name,
                finish_reason: FinishReason::Stop,
                latency: Duration::ZERO,
                degraded: false,
                failed: Vec::new(),
                vendor: None,
            })
        })
    }

    fn stream<'a>(
        &'a self,
        _prompt: &'a RenderedPrompt,
        _options: &'a CompletionOptions,
    ) -> BoxFuture<'a, Result<ChunkStream, ProviderError>> {
        Box::pin(async move {
            let text = self.next()?;
            let chunks = vec![
                Ok(Chunk { text, done: None }),
                Ok(Chunk {
                    text: String::new(),
                    done: Some(StreamEnd {
                        usage: Usage::new(10, 5),
                        finish_reason: FinishReason::Stop,
                        model: "m".into(),
                        vendor: None,
                    }),
                }),
            ];
            Ok(Box::pin(futures_util::stream::iter(chunks)) as ChunkStream)
        })
    }

    fn embed<'a>(&'a self, _text: &'a str) -> BoxFuture<'a, Result<Vec<f32>, ProviderError>> {
        Box::pin(async { Ok(vec![0.0]) })
    }

    fn count_tokens(&self, text: &str) -> usize {
        text.len()
    }

    fn health_check(&self) -> BoxFuture<'_, Health> {
        Box::pin(async {
            Health {
                healthy: true,
                detail: String::new(),
            }
        })
    }
}

fn settings(change: impl FnOnce(&mut ProviderSettings)) -> ProviderSettings {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config");
    let mut settings = Settings::load_from(&root, "development", Vec::new())
        .expect("settings load")
        .providers;
    settings.default_chain = vec!["openai".into(), "anthropic".into()];
    settings.retry.max_attempts = 1;
    settings.retry.jitter = false;
    settings.breaker.consecutive_failures = 3;
    settings.breaker.cooldown_secs = 30;
    change(&mut settings);
    settings
}

fn chains(settings: &ProviderSettings, providers: &[Arc<Scripted>]) -> ProviderChains {
    ProviderChains::with_builder(settings, |name| {
        providers
            .iter()
            .find(|p| p.name == name)
            .expect("a scripted provider per name")
            .clone()
    })
}

fn prompt() -> RenderedPrompt {
    RenderedPrompt {
        system: "s".into(),
        user: "u".into(),
    }
}

fn server_error() -> ProviderError {
    ProviderError::Server("HTTP 500".into())
}

async fn ask(chains: &ProviderChains) -> Result<AiResponse, ChainError> {
    chains
        .complete(Feature::Hint, &prompt(), &CompletionOptions::default())
        .await
}

fn breaker_state(chains: &ProviderChains, name: &str) -> &'static str {
    chains
        .status()
        .into_iter()
        .find(|s| s.name == name)
        .unwrap()
        .breaker
        .state
}

#[tokio::test(start_paused = true)]
async fn a_failing_primary_fails_over_trips_its_breaker_and_recovers_after_a_probe() {
    let primary = Scripted::new("openai", Err(server_error()));
    let secondary = Scripted::new("anthropic", Ok("from the secondary"));
    let chains = chains(&settings(|_| {}), &[primary.clone(), secondary.clone()]);

    for _ in 0..3 {
        let answer = ask(&chains).await.unwrap();
        assert_eq!(answer.provider, "anthropic");
        assert!(!answer.degraded);
        assert_eq!(answer.failed, ["openai: provider error: HTTP 500"]);
    }
    assert_eq!(breaker_state(&chains, "openai"), "open");
    // Open: the primary gets no traffic, the answer comes straight from the secondary.
    for _ in 0..5 {
        assert_eq!(ask(&chains).await.unwrap().provider, "anthropic");
    }
    assert_eq!(primary.calls().len(), 3);

    // After the cool-down one probe goes through; it fails, so the breaker opens again.
    tokio::time::advance(Duration::from_secs(30)).await;
    assert_eq!(ask(&chains).await.unwrap().provider, "anthropic");
    assert_eq!(primary.calls().len(), 4);
    assert_eq!(breaker_state(&chains, "openai"), "open");

    // Fixed: the next probe succeeds and closes the breaker.
    primary.set(Ok("from the primary"));
    tokio::time::advance(Duration::from_secs(30)).await;
    assert_eq!(ask(&chains).await.unwrap().provider, "openai");
    assert_eq!(breaker_state(&chains, "openai"), "closed");
    assert_eq!(ask(&chains).await.unwrap().provider, "openai");
}

#[tokio::test(start_paused = true)]
async fn when_every_provider_fails_the_answer_is_degraded_not_an_error() {
    let primary = Scripted::new("openai", Err(server_error()));
    let secondary = Scripted::new("anthropic", Err(ProviderError::Overloaded("busy".into())));
    let chains = chains(&settings(|_| {}), &[primary, secondary]);
    let answer = ask(&chains).await.unwrap();
    assert!(answer.degraded);
    assert_eq!(answer.provider, "mock");
    assert_eq!(answer.failed.len(), 2, "{:?}", answer.failed);

    let mut streamed = String::new();
    let answer = chains
        .stream(
            Feature::Hint,
            &prompt(),
            &CompletionOptions::default(),
            |t| streamed.push_str(t),
        )
        .await
        .unwrap();
    assert!(answer.degraded);
    assert_eq!(streamed, answer.text);

    // Without the fallback it is the chain's error.
    let chains = super::ProviderChains {
        fallback: None,
        ..chains
    };
    let error = ask(&chains).await.unwrap_err();
    assert_eq!(error.attempts.len(), 2);
}

#[tokio::test(start_paused = true)]
async fn a_429_is_retried_no_sooner_than_its_retry_after_and_a_400_not_at_all() {
    let limited = Scripted::new(
        "openai",
        Err(ProviderError::RateLimited {
            retry_after: Some(Duration::from_secs(2)),
        }),
    );
    let secondary = Scripted::new("anthropic", Ok("second"));
    let settings = settings(|s| {
        s.retry.max_attempts = 3;
        s.retry.initial_ms = 100;
    });
    let chains = chains(&settings, &[limited.clone(), secondary.clone()]);
    assert_eq!(ask(&chains).await.unwrap().provider, "anthropic");
    let calls = limited.calls();
    assert_eq!(calls.len(), 3);
    for pair in calls.windows(2) {
        assert!(
            pair[1] - pair[0] >= Duration::from_secs(2),
            "{:?}",
            pair[1] - pair[0]
        );
    }

    let refused = Scripted::new("openai", Err(ProviderError::BadRequest("too long".into())));
    let secondary = Scripted::new("anthropic", Ok("second"));
    let chains = super::ProviderChains::with_builder(&settings, |name| {
        if name == "openai" {
            refused.clone()
        } else {
            secondary.clone()
        }
    });
    let error = ask(&chains).await.unwrap_err();
    assert!(matches!(error.error, ProviderError::BadRequest(_)));
    assert_eq!(refused.calls().len(), 1, "a 400 is not retried");
    assert!(secondary.calls().is_empty(), "nor sent elsewhere");
}

#[tokio::test(start_paused = true)]
async fn the_deadline_bounds_retries_across_the_chain() {
    let slow = Scripted::new(
        "openai",
        Err(ProviderError::RateLimited {
            retry_after: Some(Duration::from_secs(50)),
        }),
    );
    let secondary = Scripted::new("anthropic", Ok("second"));
    let settings = settings(|s| {
        s.retry.max_attempts = 5;
        s.deadline_ms = 10_000;
    });
    let chains = chains(&settings, &[slow.clone(), secondary]);
    let started = Instant::now();
    assert_eq!(ask(&chains).await.unwrap().provider, "anthropic");
    assert_eq!(
        slow.calls().len(),
        1,
        "a wait past the deadline is not taken"
    );
    assert!(Instant::now() - started < Duration::from_secs(1));
}

/// A capacity gate that says, per provider, how long until its capacity is due (`None`: no
/// limit), and notes what was settled.
struct Gated {
    busy_for: Vec<(&'static str, Option<Duration>)>,
    settled: Mutex<Vec<(&'static str, Option<Usage>, bool)>>,
}

impl super::super::gate::CapacityGate for Gated {
    fn applies(&self, provider: &str) -> bool {
        self.busy_for.iter().any(|(p, _)| *p == provider)
    }

    fn observed(&self, _: &'static str, _: super::super::VendorLimits) {}

    fn reserve<'a>(
        &'a self,
        provider: &'static str,
        demand: super::super::gate::Demand<'a>,
    ) -> BoxFuture<'a, Gate> {
        let busy = self
            .busy_for
            .iter()
            .find(|(p, _)| *p == provider)
            .and_then(|(_, busy)| *busy);
        Box::pin(async move {
            match busy {
                Some(ready_in) => Gate::Busy(super::super::gate::Busy {
                    ready_in,
                    reason: "paused",
                }),
                None => Gate::Booked(Booking {
                    provider,
                    wait: Duration::ZERO,
                    call_id: "c".into(),
                    input_tokens: demand.input_tokens,
                    output_tokens: demand.output_tokens,
                }),
            }
        })
    }

    fn settle(&self, booking: Booking, report: Report) -> BoxFuture<'_, ()> {
        self.settled.lock().unwrap().push((
            booking.provider,
            report.usage,
            report.rate_limited.is_some(),
        ));
        Box::pin(async {})
    }
}

fn gated(busy_for: Vec<(&'static str, Option<Duration>)>) -> Arc<Gated> {
    Arc::new(Gated {
        busy_for,
        settled: Mutex::default(),
    })
}

#[tokio::test(start_paused = true)]
async fn a_provider_paused_briefly_is_waited_for_not_failed_over_or_degraded() {
    let primary = Scripted::new("openai", Ok("from the primary"));
    let secondary = Scripted::new("anthropic", Ok("from the secondary"));
    let gate = gated(vec![("openai", Some(Duration::from_secs(5)))]);
    let chains = chains(
        &settings(|s| s.degraded_fallback = true),
        &[primary, secondary.clone()],
    )
    .with_gate(gate);
    let error = ask(&chains).await.unwrap_err();
    assert!(
        matches!(error.error, ProviderError::Busy { ready_in, .. } if ready_in == Duration::from_secs(5)),
        "{error:?}"
    );
    assert!(secondary.calls().is_empty(), "no failover for a short wait");
}

#[tokio::test(start_paused = true)]
async fn a_provider_paused_longer_than_a_job_may_wait_is_passed_over() {
    let primary = Scripted::new("openai", Ok("from the primary"));
    let secondary = Scripted::new("anthropic", Ok("from the secondary"));
    // Paused past `providers.capacity.max_wait_secs` (30 s).
    let gate = gated(vec![
        ("openai", Some(Duration::from_secs(120))),
        ("anthropic", None),
    ]);
    let chains = chains(&settings(|_| {}), &[primary.clone(), secondary]).with_gate(gate.clone());
    let answer = ask(&chains).await.unwrap();
    assert_eq!(answer.provider, "anthropic");
    assert!(!answer.degraded);
    assert!(primary.calls().is_empty());
    // The call that went settles its booking with the real usage.
    assert_eq!(
        *gate.settled.lock().unwrap(),
        [("anthropic", Some(Usage::new(10, 5)), false)]
    );
}

#[tokio::test(start_paused = true)]
async fn a_busy_provider_beside_a_failed_one_waits_instead_of_degrading() {
    let primary = Scripted::new("openai", Ok("from the primary"));
    let secondary = Scripted::new("anthropic", Err(server_error()));
    let gate = gated(vec![("openai", Some(Duration::from_secs(90)))]);
    let chains = chains(
        &settings(|s| s.degraded_fallback = true),
        &[primary, secondary],
    )
    .with_gate(gate);
    // The secondary is down, the primary only busy: the task waits for the primary.
    let error = ask(&chains).await.unwrap_err();
    assert_eq!(error.provider, "openai");
    assert!(
        matches!(error.error, ProviderError::Busy { .. }),
        "{error:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_429_settles_its_booking_as_rate_limited() {
    let primary = Scripted::new(
        "openai",
        Err(ProviderError::RateLimited {
            retry_after: Some(Duration::from_secs(1)),
        }),
    );
    let secondary = Scripted::new("anthropic", Ok("from the secondary"));
    let gate = gated(vec![("openai", None)]);
    let chains = chains(&settings(|_| {}), &[primary, secondary]).with_gate(gate.clone());
    assert_eq!(ask(&chains).await.unwrap().provider, "anthropic");
    assert_eq!(*gate.settled.lock().unwrap(), [("openai", None, true)]);
}
