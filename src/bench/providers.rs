//! `tutorq bench providers`: what resilience costs a request, printed, never asserted.
//!
//! A local HTTP server plays the vendors: `/ok` answers like OpenAI's Chat Completions, `/fail`
//! answers 500. Three chains, each timed over N sequential completions (p50/p99):
//! (a) `[openai → ok]`: the baseline;
//! (b) `[azure → fail, openai → ok]` with the breaker kept closed: one failover hop;
//! (c) the same with azure's breaker open: the cost of skipping a provider that is down.

use std::time::Instant;

use axum::Router;
use axum::http::StatusCode;
use axum::routing::post;

use super::percentile;
use crate::config::{ProviderSettings, Settings};
use crate::feature::Feature;
use crate::prompts::RenderedPrompt;
use crate::providers::{CompletionOptions, ProviderChains};

#[derive(Debug, Clone, clap::Args)]
pub struct ProvidersBench {
    /// Completions timed per chain.
    #[arg(long, default_value_t = 2_000)]
    pub requests: usize,
}

const COMPLETION: &str = r#"{"id":"chatcmpl-bench","object":"chat.completion","created":1764252131,"model":"gpt-4o-mini-2024-07-18","choices":[{"index":0,"message":{"role":"assistant","content":"Önce verilenleri yaz.","refusal":null},"logprobs":null,"finish_reason":"stop"}],"usage":{"prompt_tokens":38,"completion_tokens":7,"total_tokens":45}}"#;
const FAILURE: &str = r#"{"error":{"message":"The server had an error while processing your request.","type":"server_error","param":null,"code":null}}"#;

pub async fn providers(settings: Settings, options: ProvidersBench) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    let vendor = Router::new()
        .route(
            "/ok/v1/chat/completions",
            post(|| async { ([("content-type", "application/json")], COMPLETION) }),
        )
        .fallback(|| async {
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                [("content-type", "application/json")],
                FAILURE,
            )
        });
    tokio::spawn(async move { axum::serve(listener, vendor).await });

    let configure = |chain: &[&str], keep_closed: bool| {
        let mut p: ProviderSettings = settings.providers.clone();
        p.default_chain = chain.iter().map(|s| (*s).to_owned()).collect();
        p.openai.base_url = format!("{base}/ok/v1");
        p.azure.endpoint = format!("{base}/fail");
        p.azure.deployment = "bench".into();
        p.retry.max_attempts = 1;
        p.degraded_fallback = false;
        p.health_interval_secs = 0;
        if keep_closed {
            p.breaker.consecutive_failures = u32::MAX;
            p.breaker.min_calls = u32::MAX;
        } else {
            p.breaker.consecutive_failures = 1;
            p.breaker.cooldown_secs = 86_400;
        }
        ProviderChains::from_settings(&p)
    };
    let baseline = configure(&["openai"], true);
    let failover = configure(&["azure", "openai"], true);
    let skipping = configure(&["azure", "openai"], false);
    // One call opens azure's breaker for the rest of the run.
    time(&skipping, 1).await?;

    let mut rows = Vec::new();
    for (name, chain) in [
        ("(a) baseline [openai]", &baseline),
        ("(b) one failover hop [azure 500 → openai]", &failover),
        ("(c) open breaker [azure skipped → openai]", &skipping),
    ] {
        time(chain, 200).await?; // warm-up: connections, allocator
        let samples = time(chain, options.requests).await?;
        rows.push((name, percentile(&samples, 50.0), percentile(&samples, 99.0)));
    }
    println!();
    println!(
        "tutorq bench providers: {} sequential completions per chain, local HTTP vendor",
        options.requests
    );
    println!();
    println!("| chain | p50 | p99 | added p50 | added p99 |");
    println!("| --- | --- | --- | --- | --- |");
    let (_, base50, base99) = rows[0];
    for (name, p50, p99) in rows {
        println!(
            "| {name} | {p50:.3} ms | {p99:.3} ms | {:+.3} ms | {:+.3} ms |",
            p50 - base50,
            p99 - base99
        );
    }
    Ok(())
}

/// Milliseconds per completion.
async fn time(chains: &ProviderChains, n: usize) -> anyhow::Result<Vec<f64>> {
    let prompt = RenderedPrompt {
        system: "Sen sabırlı bir öğretmensin.".into(),
        user: "2x + 3 = 11 ise x kaçtır?".into(),
    };
    let options = CompletionOptions {
        temperature: 0.3,
        max_tokens: 100,
        model: None,
        json_schema: None,
        patience: Default::default(),
    };
    let mut samples = Vec::with_capacity(n);
    for _ in 0..n {
        let started = Instant::now();
        let answer = chains.complete(Feature::Hint, &prompt, &options).await?;
        samples.push(started.elapsed().as_secs_f64() * 1000.0);
        anyhow::ensure!(
            answer.provider == "openai",
            "answered by {}",
            answer.provider
        );
    }
    Ok(samples)
}
