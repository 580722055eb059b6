//! `tutorq bench capacity`: a fleet against a vendor that enforces its limits. Printed, never
//! asserted (the capacity tests assert).
//!
//! A scripted OpenAI-compatible vendor (`vendor.rs`) allows R requests a minute over two-second
//! windows and answers in L ms. One `tutorq serve` and W `tutorq worker` processes share it:
//! first interactive explanations alone (one at a time, queued), then an N-item explanation
//! batch with an interactive request queued every 100 ms beside it. Printed: the rate the vendor
//! answered while the batch ran (a tenth to nine tenths of its items) against its limit, the
//! share of calls it refused with 429, the share of answers that were degraded, and the
//! interactive requests' turnaround (created → finished) alone and beside the batch. Run with
//! the capacity ledger on, then off (`providers.capacity.enabled=false`), on the same vendor.

use std::time::{Duration, Instant};

use anyhow::Context as _;
use serde_json::{Value, json};

use super::vendor::{Limits, ScriptedVendor, Vendor};
use super::{Engine, flush, free_port, percentile};
use crate::app::AppState;
use crate::auth::Role;
use crate::config::Settings;

#[derive(Debug, Clone, clap::Args)]
pub struct CapacityBench {
    /// The vendor's requests a minute.
    #[arg(long, default_value_t = 6000)]
    pub rpm: u64,
    /// Items in the batch.
    #[arg(long, default_value_t = 3000)]
    pub items: usize,
    /// Worker processes (beside one web process).
    #[arg(long, default_value_t = 3)]
    pub workers: usize,
    /// The vendor's latency per call, ms.
    #[arg(long, default_value_t = 20)]
    pub latency_ms: u64,
    /// Interactive requests timed before the batch.
    #[arg(long, default_value_t = 50)]
    pub idle: usize,
}

#[derive(Debug, Default, Clone)]
struct Figures {
    rate: f64,
    refused_share: f64,
    degraded_share: f64,
    idle_p50: f64,
    idle_p99: f64,
    busy_p50: f64,
    busy_p99: f64,
    busy_requests: usize,
    batch_secs: f64,
}

pub async fn capacity(settings: Settings, options: CapacityBench) -> anyhow::Result<()> {
    let state = AppState::build(settings.clone()).await?;
    let token = |user: &str, role| {
        state
            .auth
            .tokens
            .mint(user, role, Duration::from_secs(7200))
    };
    let tokens = (
        token("bench-batches", Role::Service),
        token("bench-interactive", Role::Service),
    );
    let mut figures = Vec::new();
    for enabled in [true, false] {
        flush(&mut state.service.stores().redis.clone()).await?;
        figures.push(one_run(&settings, &options, &tokens, enabled).await?);
    }
    let limit = options.rpm as f64 / 60.0;
    println!();
    println!(
        "tutorq bench capacity: 1 web + {} worker processes, a vendor allowing {} requests/min over 2 s windows ({} ms a call), a {}-item batch with interactive requests beside it",
        options.workers, options.rpm, options.latency_ms, options.items
    );
    println!();
    println!("| figure | capacity ledger on | off |");
    println!("| --- | --- | --- |");
    let row = |name: &str, unit: &str, value: &dyn Fn(&Figures) -> String| {
        println!(
            "| {name}{unit} | {} | {} |",
            value(&figures[0]),
            value(&figures[1])
        );
    };
    row("vendor rate during the batch (req/s)", "", &|f| {
        format!("{:.1}", f.rate)
    });
    row("  ÷ the vendor's limit", "", &|f| {
        format!("{:.3}", f.rate / limit)
    });
    row("calls refused with 429", "", &|f| {
        format!("{:.2} %", 100.0 * f.refused_share)
    });
    row("degraded answers", "", &|f| {
        format!("{:.2} %", 100.0 * f.degraded_share)
    });
    row("interactive turnaround alone p50 (ms)", "", &|f| {
        format!("{:.1}", f.idle_p50)
    });
    row("interactive turnaround alone p99 (ms)", "", &|f| {
        format!("{:.1}", f.idle_p99)
    });
    row("interactive turnaround with the batch p50 (ms)", "", &|f| {
        format!("{:.1}", f.busy_p50)
    });
    row("interactive turnaround with the batch p99 (ms)", "", &|f| {
        format!("{:.1}", f.busy_p99)
    });
    row("interactive requests beside the batch", "", &|f| {
        f.busy_requests.to_string()
    });
    row("batch submit → last item final (s)", "", &|f| {
        format!("{:.1}", f.batch_secs)
    });
    Ok(())
}

/// Milliseconds from a task's creation to its end, and whether its answer was degraded.
fn turnaround(task: &Value) -> anyhow::Result<(f64, bool)> {
    let at = |field: &str| -> anyhow::Result<jiff::Timestamp> {
        task[field]
            .as_str()
            .and_then(|t| t.parse().ok())
            .with_context(|| format!("no {field} in {task}"))
    };
    let took = at("finished_at")?.duration_since(at("created_at")?);
    Ok((took.as_secs_f64() * 1000.0, task["degraded"] == true))
}

struct Client {
    http: reqwest::Client,
    base: String,
    student: String,
}

impl Client {
    async fn ask(&self, index: usize) -> anyhow::Result<String> {
        let body = json!({
            "input": { "topic": format!("Fotosentez, soru {index}"), "subject": "Biyoloji", "level": "ortaokul" },
            "mode": "async",
        });
        let created: Value = self
            .http
            .post(format!("{}/v1/ai/explanation", self.base))
            .bearer_auth(&self.student)
            .json(&body)
            .send()
            .await?
            .json()
            .await?;
        created["task_id"]
            .as_str()
            .map(str::to_owned)
            .with_context(|| format!("the request was not accepted: {created}"))
    }

    async fn finished(&self, id: &str) -> anyhow::Result<Value> {
        for _ in 0..120 {
            let task: Value = self
                .http
                .get(format!("{}/v1/tasks/{id}?wait=10", self.base))
                .bearer_auth(&self.student)
                .send()
                .await?
                .json()
                .await?;
            if task["finished_at"].is_string() {
                return Ok(task);
            }
        }
        anyhow::bail!("task {id} never finished")
    }
}

async fn one_run(
    settings: &Settings,
    options: &CapacityBench,
    (teacher, student): &(String, String),
    enabled: bool,
) -> anyhow::Result<Figures> {
    let limits = Limits {
        rpm: options.rpm,
        tpm: options.rpm * 4000,
        window: Duration::from_secs(2),
        latency: Duration::from_millis(options.latency_ms),
    };
    let vendor = ScriptedVendor::start(Vendor::OpenAi, limits).await?;
    let base_url = vendor.base_url();
    let (rpm, tpm) = (options.rpm.to_string(), (options.rpm * 4000).to_string());
    let env = [
        ("TUTORQ__PROVIDERS__DEFAULT_CHAIN", "[openai]"),
        ("TUTORQ__PROVIDERS__OPENAI__BASE_URL", base_url.as_str()),
        ("TUTORQ__PROVIDERS__OPENAI__RPM", rpm.as_str()),
        ("TUTORQ__PROVIDERS__OPENAI__TPM", tpm.as_str()),
        ("TUTORQ__PROVIDERS__DEGRADED_FALLBACK", "true"),
        ("TUTORQ__PROVIDERS__HEALTH_INTERVAL_SECS", "0"),
        (
            "TUTORQ__PROVIDERS__CAPACITY__ENABLED",
            if enabled { "true" } else { "false" },
        ),
        ("TUTORQ__JOBS__BATCH_CONCURRENCY", "64"),
        ("TUTORQ__CACHE__TTL_SECS__EXPLANATION", "0"),
        ("TUTORQ__WORKER__ADMIN_PORT", "0"),
    ];
    let port = free_port()?;
    let mut processes = vec![Engine::spawn_with(settings, port, "serve", &env)?];
    for _ in 0..options.workers {
        processes.push(Engine::spawn_with(settings, free_port()?, "worker", &env)?);
    }
    processes[0].wait_ready(port).await?;
    let client = Client {
        http: reqwest::Client::new(),
        base: format!("http://127.0.0.1:{port}"),
        student: student.clone(),
    };
    let mut answers = 0usize;
    let mut degraded = 0usize;
    let mut idle = Vec::with_capacity(options.idle);
    for index in 0..options.idle {
        let id = client.ask(index).await?;
        let (took, was_degraded) = turnaround(&client.finished(&id).await?)?;
        idle.push(took);
        answers += 1;
        degraded += usize::from(was_degraded);
    }

    let items: Vec<Value> = (0..options.items)
        .map(|i| json!({ "input": { "topic": format!("Fotosentez, bölüm {i}"), "subject": "Biyoloji", "level": "ortaokul" } }))
        .collect();
    let started = Instant::now();
    let created: Value = client
        .http
        .post(format!("{}/v1/batches", client.base))
        .bearer_auth(teacher)
        .json(&json!({ "feature": "explanation", "items": items }))
        .send()
        .await?
        .json()
        .await?;
    let batch = created["id"]
        .as_str()
        .with_context(|| format!("the batch was refused: {created}"))?
        .to_owned();
    let mut progress = Vec::new();
    let mut beside = Vec::new();
    let batch_secs = loop {
        let view: Value = client
            .http
            .get(format!("{}/v1/batches/{batch}", client.base))
            .bearer_auth(teacher)
            .send()
            .await?
            .json()
            .await?;
        let done = view["succeeded"].as_u64().unwrap_or(0) + view["failed"].as_u64().unwrap_or(0);
        progress.push((Instant::now(), done));
        match view["state"].as_str() {
            Some("queued" | "running") => {}
            Some(_) => break started.elapsed().as_secs_f64(),
            None => anyhow::bail!("the batch cannot be read: {view}"),
        }
        beside.push(client.ask(1_000_000 + beside.len()).await?);
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let mut busy = Vec::with_capacity(beside.len());
    for id in &beside {
        let (took, was_degraded) = turnaround(&client.finished(id).await?)?;
        busy.push(took);
        answers += 1;
        degraded += usize::from(was_degraded);
    }
    let results = client
        .http
        .get(format!("{}/v1/batches/{batch}/results", client.base))
        .bearer_auth(teacher)
        .send()
        .await?
        .text()
        .await?;
    for line in results.lines() {
        let line: Value = serde_json::from_str(line)?;
        answers += 1;
        degraded += usize::from(line["degraded"] == true);
    }
    for process in &mut processes {
        process.stop();
    }
    let seen = vendor.seen();
    let at = |share: f64| {
        progress
            .iter()
            .find(|(_, done)| *done as f64 >= share * options.items as f64)
            .map(|(t, _)| *t)
    };
    let rate = match (at(0.1), at(0.9)) {
        (Some(from), Some(to)) if to > from => {
            let answered = seen
                .answered
                .iter()
                .filter(|a| **a >= from && **a < to)
                .count();
            answered as f64 / (to - from).as_secs_f64()
        }
        _ => seen.answered.len() as f64 / batch_secs,
    };
    let calls = seen.answered.len() as f64 + seen.refused as f64;
    Ok(Figures {
        rate,
        refused_share: seen.refused as f64 / calls.max(1.0),
        degraded_share: degraded as f64 / answers.max(1) as f64,
        idle_p50: percentile(&idle, 50.0),
        idle_p99: percentile(&idle, 99.0),
        busy_p50: percentile(&busy, 50.0),
        busy_p99: percentile(&busy, 99.0),
        busy_requests: busy.len(),
        batch_secs,
    })
}
