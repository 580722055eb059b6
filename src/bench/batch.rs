//! `tutorq bench batch`: does bulk work starve interactive work? Printed, never asserted.
//!
//! On one `tutorq all` (mock provider at L ms for every feature), sequential async hints
//! (submit over HTTP → `succeeded` over SSE) are timed first on the idle system, then while a
//! batch of N `question_gen` items (default 10,000, submitted as NDJSON) runs. The goal: the
//! hints' p99 during the batch within 2× of their idle p99. The batch's own throughput is
//! printed too.

use std::time::{Duration, Instant};

use anyhow::Context as _;
use serde_json::{Value, json};

use super::{Engine, flush, free_port, hint_round_trip, percentile, repeat, table_head, table_row};
use crate::app::AppState;
use crate::auth::Role;
use crate::config::Settings;

#[derive(Debug, Clone, clap::Args)]
pub struct BatchBench {
    /// Items in the batch.
    #[arg(long, default_value_t = 10_000)]
    pub items: usize,
    /// Idle hint round trips before the batch.
    #[arg(long, default_value_t = 300)]
    pub idle_hints: usize,
    /// The mock provider's latency for every call, ms.
    #[arg(long, default_value_t = 50)]
    pub latency_ms: u64,
    /// Repetitions; the table shows the median and the range.
    #[arg(long, default_value_t = 3)]
    pub runs: usize,
}

#[derive(Debug, Default, Clone)]
struct Figures {
    idle_p50_ms: f64,
    idle_p99_ms: f64,
    busy_p50_ms: f64,
    busy_p99_ms: f64,
    busy_hints: usize,
    batch_secs: f64,
    items_per_s: f64,
}

pub async fn batch(settings: Settings, options: BatchBench) -> anyhow::Result<()> {
    let state = AppState::build(settings.clone()).await?;
    let token = state
        .auth
        .tokens
        .mint("bench-batch", Role::Service, Duration::from_secs(7200));
    let runs = repeat(options.runs, async |_| {
        flush(&mut state.service.stores().redis.clone()).await?;
        one_run(&settings, &options, &token).await
    })
    .await?;
    println!();
    println!(
        "tutorq bench batch: async hints one at a time, idle and during a {}-item question_gen batch (mock {} ms per call), {} runs",
        options.items, options.latency_ms, options.runs
    );
    table_head("Interactive hints (submit → succeeded over SSE)");
    table_row(&runs, "idle p50", "ms", 2, |f| f.idle_p50_ms);
    table_row(&runs, "idle p99", "ms", 2, |f| f.idle_p99_ms);
    table_row(&runs, "during the batch p50", "ms", 2, |f| f.busy_p50_ms);
    table_row(&runs, "during the batch p99", "ms", 2, |f| f.busy_p99_ms);
    table_row(&runs, "p99 during ÷ p99 idle (goal ≤ 2)", "×", 2, |f| {
        f.busy_p99_ms / f.idle_p99_ms
    });
    table_row(&runs, "hints timed during the batch", "", 0, |f| {
        f.busy_hints as f64
    });
    table_head("The batch");
    table_row(&runs, "submit → last item final", "s", 1, |f| {
        f.batch_secs
    });
    table_row(&runs, "items per second", "/s", 0, |f| f.items_per_s);
    Ok(())
}

async fn one_run(
    settings: &Settings,
    options: &BatchBench,
    token: &str,
) -> anyhow::Result<Figures> {
    let port = free_port()?;
    let latency = options.latency_ms.to_string();
    let mut all = Engine::spawn_with(
        settings,
        port,
        "all",
        &[("TUTORQ__PROVIDERS__MOCK__LATENCY_MS", latency.as_str())],
    )?;
    all.wait_ready(port).await?;
    let client = reqwest::Client::new();
    let mut idle = Vec::with_capacity(options.idle_hints);
    for index in 0..options.idle_hints + 20 {
        let took = hint_round_trip(&client, port, token, index).await?;
        if index >= 20 {
            idle.push(took);
        }
    }

    let body: String = (0..options.items)
        .map(|i| {
            let item = json!({ "input": {
                "subject": "Matematik",
                "topic": format!("Üslü sayılar, bölüm {i}"),
                "grade": 8,
                "count": 3,
                "difficulty": "orta",
            }});
            format!("{item}\n")
        })
        .collect();
    let started = Instant::now();
    let created: Value = client
        .post(format!(
            "http://127.0.0.1:{port}/v1/batches?feature=question_gen"
        ))
        .bearer_auth(token)
        .header("content-type", "application/x-ndjson")
        .body(body)
        .send()
        .await?
        .json()
        .await?;
    let id = created["id"]
        .as_str()
        .with_context(|| format!("the batch was refused: {created}"))?
        .to_owned();
    let mut busy = Vec::new();
    let mut index = 1_000_000;
    let batch_secs = loop {
        busy.push(hint_round_trip(&client, port, token, index).await?);
        index += 1;
        if busy.len() % 20 == 0 {
            let view: Value = client
                .get(format!("http://127.0.0.1:{port}/v1/batches/{id}"))
                .bearer_auth(token)
                .send()
                .await?
                .json()
                .await?;
            match view["state"].as_str() {
                Some("queued" | "running") => {}
                Some("completed") => break started.elapsed().as_secs_f64(),
                _ => anyhow::bail!("the batch ended badly: {view}"),
            }
        }
    };
    all.stop();
    Ok(Figures {
        idle_p50_ms: percentile(&idle, 50.0),
        idle_p99_ms: percentile(&idle, 99.0),
        busy_p50_ms: percentile(&busy, 50.0),
        busy_p99_ms: percentile(&busy, 99.0),
        busy_hints: busy.len(),
        batch_secs,
        items_per_s: options.items as f64 / batch_secs,
    })
}
