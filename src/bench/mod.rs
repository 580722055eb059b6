//! `tutorq bench`: figures printed, never asserted. The engine under test runs in a child
//! process (as in production), so its RSS is its own; the bench process produces and observes.

mod audit;
mod batch;
mod capacity;
mod cpu;
mod http;
mod limits;
mod providers;
mod queue;
mod sse;
pub mod vendor;

use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use anyhow::Context as _;
use serde_json::json;

pub use audit::{AuditBench, audit};
pub use batch::{BatchBench, batch};
pub use capacity::{CapacityBench, capacity};
pub use limits::{LimitsBench, limits};
pub use providers::{ProvidersBench, providers};
pub use queue::{QueueBench, queue};
pub use sse::{SseBench, sse};

use crate::app::AppState;
use crate::config::Settings;
use crate::facts::{Role, TaskFacts};
use crate::service::job::{AI_REQUEST, AiRequestJob};
use crate::tasks::NewTask;

/// The engine under test: limits on but high enough that the load never meets them (the
/// limits bench compares with them off), and no response cache for the bench's feature.
const HIGH_LIMITS: &[(&str, &str)] = &[
    ("TUTORQ__LIMITS__IP__PER_MINUTE", "1000000000"),
    ("TUTORQ__LIMITS__ROLES__SERVICE__PER_MINUTE", "1000000000"),
    (
        "TUTORQ__LIMITS__ROLES__SERVICE__DAILY_REQUESTS",
        "1000000000",
    ),
    (
        "TUTORQ__LIMITS__ROLES__SERVICE__MONTHLY_REQUESTS",
        "1000000000",
    ),
    (
        "TUTORQ__LIMITS__ROLES__SERVICE__DAILY_TOKENS",
        "1000000000000",
    ),
    (
        "TUTORQ__LIMITS__ROLES__SERVICE__MONTHLY_TOKENS",
        "1000000000000",
    ),
    (
        "TUTORQ__LIMITS__ROLES__SERVICE__BUCKET_TOKENS",
        "1000000000000",
    ),
    (
        "TUTORQ__LIMITS__ROLES__SERVICE__BUCKET_REFILL_PER_SEC",
        "1000000000",
    ),
    // Every bench job asks something new, so a response cache could only miss (two more Redis
    // round trips per job); bulk work (question_gen) has no cache in production either.
    ("TUTORQ__CACHE__TTL_SECS__HINT", "0"),
];

/// A child `tutorq <command>` (`all` or `serve`) with the mock at 0 ms and quiet logs.
struct Engine {
    child: Child,
}

impl Engine {
    fn spawn(settings: &Settings, port: u16, command: &str) -> anyhow::Result<Self> {
        Self::spawn_with(settings, port, command, &[])
    }

    /// Like [`spawn`](Self::spawn), with more environment (applied last).
    fn spawn_with(
        settings: &Settings,
        port: u16,
        command: &str,
        env: &[(&str, &str)],
    ) -> anyhow::Result<Self> {
        let exe = std::env::current_exe().context("locating the tutorq binary")?;
        let child = Command::new(exe)
            .arg(command)
            .env("TUTORQ__SERVER__PORT", port.to_string())
            .env("TUTORQ__REDIS__URL", settings.redis.url.expose())
            .env("TUTORQ__REDIS__CLUSTER", cluster_env(settings))
            .env("TUTORQ__DATABASE__URL", settings.database.url.expose())
            .env("TUTORQ__PROVIDERS__MOCK__LATENCY_MS", "0")
            .env("TUTORQ__LOG__LEVEL", "warn")
            .envs(HIGH_LIMITS.iter().copied())
            .envs(env.iter().copied())
            .env_remove("RUST_LOG")
            .stdout(Stdio::null())
            .spawn()
            .context("starting tutorq all")?;
        Ok(Self { child })
    }

    async fn wait_ready(&self, port: u16) -> anyhow::Result<()> {
        let client = reqwest::Client::new();
        for _ in 0..600 {
            if client
                .get(format!("http://127.0.0.1:{port}/readyz"))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success())
            {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        anyhow::bail!("tutorq all did not become ready")
    }

    fn rss_mb(&self) -> f64 {
        rss_kb(self.child.id()) as f64 / 1024.0
    }

    /// Samples the RSS every 100 ms until stopped; returns the peak.
    fn watch_rss(&self) -> PeakWatch {
        let pid = self.child.id();
        let peak = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicUsize::new(0));
        let (p, s) = (peak.clone(), stop.clone());
        std::thread::spawn(move || {
            while s.load(Ordering::Relaxed) == 0 {
                p.fetch_max(rss_kb(pid) as usize, Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(100));
            }
        });
        PeakWatch { peak, stop }
    }

    fn stop(&mut self) {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let _ = self.child.wait();
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

struct PeakWatch {
    peak: Arc<AtomicUsize>,
    stop: Arc<AtomicUsize>,
}

impl PeakWatch {
    fn stop(self) -> f64 {
        self.stop.store(1, Ordering::Relaxed);
        self.peak.load(Ordering::Relaxed) as f64 / 1024.0
    }
}

fn rss_kb(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        })
        .unwrap_or(0)
}

/// `redis.cluster` as an environment value (a YAML list).
fn cluster_env(settings: &Settings) -> String {
    let seeds: Vec<&str> = settings.redis.cluster.iter().map(|s| s.expose()).collect();
    format!("[{}]", seeds.join(", "))
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// Empties the database and waits until Redis has freed the old data in the background, so a
/// run does not pay for the previous one.
async fn flush(redis: &mut crate::storage::RedisConnection) -> anyhow::Result<()> {
    if redis.is_cluster() {
        // Every master, at once (a cluster has no lazy-free figure to wait on across nodes).
        return Ok(redis::cmd("FLUSHDB").query_async::<()>(redis).await?);
    }
    redis::cmd("FLUSHDB")
        .arg("ASYNC")
        .query_async::<()>(redis)
        .await?;
    for _ in 0..600 {
        let info: String = redis::cmd("INFO").arg("memory").query_async(redis).await?;
        let pending = info
            .lines()
            .find_map(|l| l.strip_prefix("lazyfree_pending_objects:"))
            .and_then(|v| v.trim().parse::<u64>().ok())
            .unwrap_or(0);
        if pending == 0 {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    anyhow::bail!("Redis did not finish freeing the flushed database within a minute")
}

fn new_task(user: &str, index: usize) -> NewTask {
    let mut input = serde_json::Map::new();
    input.insert(
        "question".into(),
        json!(format!("Bench sorusu {index}: 2x + 3 = 11 ise x kaçtır?")),
    );
    input.insert("subject".into(), json!("Matematik"));
    input.insert("hint_level".into(), json!(1));
    let feature = crate::feature::Feature::Hint;
    let facts = TaskFacts {
        task_id: uuid::Uuid::now_v7().to_string(),
        request_id: format!("bench-{index}"),
        user_id: user.into(),
        role: Role::Service,
        feature: Some(feature),
    };
    let job = AiRequestJob::new(&facts, feature, "1.0".into(), input, false);
    NewTask {
        facts,
        kind: AI_REQUEST.into(),
        job: serde_json::to_string(&job).expect("a job serializes"),
        callback_url: None,
        quota: None,
        batch: None,
    }
}

/// Queues `count` jobs in pipelined chunks; returns their ids.
async fn enqueue(state: &AppState, count: usize, user: &str) -> anyhow::Result<Vec<String>> {
    let store = &state.service.engine().store;
    let mut ids = Vec::with_capacity(count);
    let mut index = 0;
    while index < count {
        let chunk: Vec<NewTask> = (index..(index + 1000).min(count))
            .map(|i| new_task(user, i))
            .collect();
        index += chunk.len();
        ids.extend(chunk.iter().map(|t| t.facts.task_id.clone()));
        store.enqueue_many(&chunk).await?;
    }
    Ok(ids)
}

/// One async hint on `tutorq all`: submit over HTTP, then its event stream until
/// `succeeded`; the milliseconds it took. `index` makes each question new (no cache hit).
async fn hint_round_trip(
    client: &reqwest::Client,
    port: u16,
    token: &str,
    index: usize,
) -> anyhow::Result<f64> {
    let body = json!({
        "input": {
            "question": format!("Soru {index}: 2x + 3 = 11 ise x kaçtır?"),
            "subject": "Matematik",
            "hint_level": 1,
        },
        "mode": "async",
    });
    let started = std::time::Instant::now();
    let created: serde_json::Value = client
        .post(format!("http://127.0.0.1:{port}/v1/ai/hint"))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await?
        .json()
        .await?;
    let id = created["task_id"]
        .as_str()
        .with_context(|| format!("the hint was not accepted: {created}"))?;
    let mut response = client
        .get(format!("http://127.0.0.1:{port}/v1/tasks/{id}/events"))
        .bearer_auth(token)
        .send()
        .await?;
    let mut seen = String::new();
    while let Some(chunk) = response.chunk().await? {
        seen.push_str(&String::from_utf8_lossy(&chunk));
        if seen.contains("event: succeeded") {
            return Ok(started.elapsed().as_secs_f64() * 1000.0);
        }
    }
    anyhow::bail!("the hint's event stream ended before it succeeded: {seen}")
}

fn percentile(values: &[f64], p: f64) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let rank = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[rank]
}

/// Inline `POST /v1/ai/hint?mode=sync` (mock 0 ms, response cache off, so every request runs
/// the whole path) against a child `tutorq serve` with `env`, from `load.users` callers in turn
/// (each its own quota, window and bucket): rate, latency and CPU per request.
async fn inline_load(
    state: &AppState,
    settings: &Settings,
    env: &[(&str, &str)],
    load: InlineLoad,
) -> anyhow::Result<InlineFigures> {
    let tokens: Vec<String> = (0..load.users.max(1))
        .map(|i| {
            state.auth.tokens.mint(
                &format!("bench-inline-{i}"),
                crate::auth::Role::Service,
                Duration::from_secs(3600),
            )
        })
        .collect();
    let body = json!({"input": {"question": "2x + 3 = 11 ise x kaçtır?", "subject": "Matematik", "hint_level": 1}});
    let port = free_port()?;
    let mut web = Engine::spawn_with(settings, port, "serve", env)?;
    web.wait_ready(port).await?;
    let url = format!("http://127.0.0.1:{port}/v1/ai/hint?mode=sync");
    // Unmeasured first: connections, loaded scripts and warm caches, so that neither of two
    // configurations compared pays for a cold start the other does not.
    let warmup = (load.http_requests / 10).clamp(1, 2_000);
    http::post_load(&url, &tokens, &body, 200, load.concurrency, warmup).await?;
    let processes = cpu::Processes::find(state, web.child.id()).await;
    let before = processes.snapshot();
    let run = http::post_load(
        &url,
        &tokens,
        &body,
        200,
        load.concurrency,
        load.http_requests,
    )
    .await?;
    let cpu = before.per_request(&processes.snapshot(), load.http_requests);
    web.stop();
    Ok(InlineFigures {
        req_per_s: run.req_per_s,
        p50_ms: percentile(&run.latencies_ms, 50.0),
        p99_ms: percentile(&run.latencies_ms, 99.0),
        cpu,
    })
}

/// The same inline load with `variable` set to `true` and to `false`, each on a fresh web
/// process and an emptied Redis: `(on, off)`. Odd runs measure `true` first, even runs
/// `false`, so that whatever the first of two loads in a row pays (or the second, after the
/// first's writes) falls on both sides equally.
async fn inline_on_off(
    state: &AppState,
    settings: &Settings,
    variable: &str,
    load: InlineLoad,
    run: usize,
) -> anyhow::Result<(InlineFigures, InlineFigures)> {
    let mut redis = state.service.stores().redis.clone();
    let mut measure = async |enabled: &str| {
        flush(&mut redis).await?;
        inline_load(state, settings, &[(variable, enabled)], load).await
    };
    if run % 2 == 1 {
        let on = measure("true").await?;
        Ok((on, measure("false").await?))
    } else {
        let off = measure("false").await?;
        Ok((measure("true").await?, off))
    }
}

/// What an inline load measured.
#[derive(Debug, Clone, Copy, Default)]
struct InlineFigures {
    req_per_s: f64,
    p50_ms: f64,
    p99_ms: f64,
    /// CPU per request of the web process, Redis, PostgreSQL and the load client.
    cpu: cpu::PerRequest,
}

/// The shape of an inline load: how many requests, how many at once, from how many callers.
#[derive(Debug, Clone, Copy, clap::Args)]
pub struct InlineLoad {
    /// Inline HTTP requests per configuration (2).
    #[arg(long, default_value_t = 20_000)]
    pub http_requests: usize,
    /// Concurrent HTTP clients (2).
    #[arg(long, default_value_t = 64)]
    pub concurrency: usize,
    /// Callers the inline requests come from, in turn (each its own window, quota and bucket).
    #[arg(long, default_value_t = 1_000)]
    pub users: usize,
}

/// Runs `one` `runs` times (passing the run's number, from 1), logging each run's figures to
/// stderr.
async fn repeat<T: std::fmt::Debug>(
    runs: usize,
    mut one: impl AsyncFnMut(usize) -> anyhow::Result<T>,
) -> anyhow::Result<Vec<T>> {
    let mut all = Vec::with_capacity(runs);
    for run in 1..=runs {
        eprintln!("bench: run {run} of {runs}");
        let figures = one(run).await?;
        eprintln!("bench: {figures:?}");
        all.push(figures);
    }
    Ok(all)
}

/// The head of a results table: its title line, then the column names.
fn table_head(title: &str) {
    println!();
    println!("{title}");
    println!();
    println!("| figure | median | range |");
    println!("| --- | --- | --- |");
}

/// The CPU-per-request rows of one inline configuration, and the rate at which that much
/// Redis work fills one Redis core (Redis runs commands on one thread: more web processes
/// cannot go past it).
/// On a Redis Cluster: each master's CPU per unit of work (`INFO cpu`, the server's own
/// accounting), and what that projects to when every shard has a core of its own: `n` shards
/// share the measured total per unit evenly but for the measured imbalance (the busiest
/// master's share times the masters measured), so the busiest shard fills its core at
/// `1e6 / (total / n × imbalance)` units/s.
fn shard_rows<T>(runs: &[T], label: &str, unit: &str, get: impl Fn(&T) -> cpu::PerRequest) {
    let count = runs.first().map_or(0, |run| get(run).shard_count);
    if count == 0 {
        return;
    }
    for shard in 0..count {
        table_row(
            runs,
            &format!("{label}: Redis CPU per {unit}, shard {}", shard + 1),
            "µs",
            0,
            |f| get(f).shards_us[shard],
        );
    }
    let imbalance = |c: &cpu::PerRequest| {
        let busiest = c.shards_us[..c.shard_count]
            .iter()
            .copied()
            .fold(0.0, f64::max);
        (busiest * c.shard_count as f64 / c.redis_us.max(1e-9)).max(1.0)
    };
    table_row(
        runs,
        &format!("{label}: imbalance of the busiest shard"),
        "×",
        2,
        |f| imbalance(&get(f)),
    );
    for shards in [1usize, 3, 6, 12] {
        table_row(
            runs,
            &format!("{label}: projected with {shards} shards, a core each"),
            &format!("{unit}s/s"),
            0,
            |f| {
                let c = get(f);
                1e6 / (c.redis_us / shards as f64 * if shards == 1 { 1.0 } else { imbalance(&c) })
            },
        );
    }
}

fn cpu_rows<T>(runs: &[T], label: &str, get: impl Fn(&T) -> &InlineFigures) {
    type Row = (&'static str, fn(&cpu::PerRequest) -> f64);
    let rows: [Row; 4] = [
        ("web process", |c| c.web_us),
        ("Redis", |c| c.redis_us),
        ("PostgreSQL", |c| c.postgres_us),
        ("load client", |c| c.client_us),
    ];
    for (name, of) in rows {
        table_row(
            runs,
            &format!("(2) CPU per request, {label}: {name}"),
            "µs",
            0,
            |f| of(&get(f).cpu),
        );
    }
    table_row(
        runs,
        &format!("(2) one Redis core full at, {label}"),
        "req/s",
        0,
        |f| 1e6 / get(f).cpu.redis_us.max(1.0),
    );
    shard_rows(runs, &format!("(2) {label}"), "request", |f| get(f).cpu);
}

/// A row for a difference that the noise between runs can hide: the mean of `get` over the
/// runs with its standard error (the spread of that mean), and the range.
fn table_mean_row<T>(runs: &[T], name: &str, unit: &str, get: impl Fn(&T) -> f64) {
    let values: Vec<f64> = runs.iter().map(get).collect();
    let n = values.len() as f64;
    let mean = values.iter().sum::<f64>() / n;
    let variance = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0).max(1.0);
    let error = (variance / n).sqrt();
    let low = values.iter().copied().fold(f64::INFINITY, f64::min);
    let high = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    println!(
        "| {name}, mean ± standard error | {mean:.1} ± {error:.1} {unit} | {low:.1} – {high:.1} |"
    );
}

/// One row of a results table: the median and the range of `get` over the runs.
fn table_row<T>(runs: &[T], name: &str, unit: &str, decimals: usize, get: impl Fn(&T) -> f64) {
    let mut values: Vec<f64> = runs.iter().map(get).collect();
    values.sort_by(f64::total_cmp);
    let median = values[values.len() / 2];
    let (low, high) = (values[0], values[values.len() - 1]);
    println!("| {name} | {median:.decimals$} {unit} | {low:.decimals$} – {high:.decimals$} |");
}
