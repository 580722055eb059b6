//! `tutorq bench queue`: the queue engine's figures, printed, never asserted.
//!
//! The bench process is the producer and the observer; the engine runs in a child `tutorq all`
//! process (as in production), so its RSS is the engine's own. Every timestamp used for a rate
//! or a latency is Redis `TIME` written by the engine's Lua scripts, so producer, workers and
//! observer share one clock.
//!
//! (a) drain: a backlog of N no-op `ai_request` jobs (mock provider, 0 ms) queued before any
//!     worker runs; jobs/s between the first and the last completion, with task records, events
//!     and history rows written; then every task is checked to have succeeded exactly once.
//! (b) steady state: the producer queues N jobs while the workers drain them.
//! (c) idle pickup: one job at a time, created → `started` and created → `succeeded`, p50/p99.
//! (d) HTTP intake: `POST /v1/ai/hint?mode=async` with auth at concurrency C, requests/s.
//! (e) RSS of `tutorq all`: idle, and peak during (a).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use redis::AsyncCommands;
use serde_json::json;

use super::{Engine, enqueue, flush, free_port, new_task, percentile};
use crate::app::AppState;
use crate::auth::Role;
use crate::config::Settings;
use crate::tasks::keys;

#[derive(Debug, Clone, clap::Args)]
pub struct QueueBench {
    /// Jobs in the drain backlog (a).
    #[arg(long, default_value_t = 100_000)]
    pub jobs: usize,
    /// Jobs queued while workers run (b).
    #[arg(long, default_value_t = 50_000)]
    pub steady_jobs: usize,
    /// Sequential jobs for the pickup latency (c).
    #[arg(long, default_value_t = 1_000)]
    pub latency_jobs: usize,
    /// HTTP requests for the intake rate (d).
    #[arg(long, default_value_t = 20_000)]
    pub http_requests: usize,
    /// Concurrent HTTP clients (d).
    #[arg(long, default_value_t = 64)]
    pub concurrency: usize,
    /// Repetitions; the table shows the median and the range.
    #[arg(long, default_value_t = 3)]
    pub runs: usize,
}

#[derive(Debug, Default, Clone)]
struct Figures {
    drain_jobs_per_s: f64,
    drain_wall_s: f64,
    steady_jobs_per_s: f64,
    pickup_p50_ms: f64,
    pickup_p99_ms: f64,
    done_p50_ms: f64,
    done_p99_ms: f64,
    http_req_per_s: f64,
    rss_idle_mb: f64,
    rss_drain_peak_mb: f64,
    /// CPU per drained job (Redis's; per shard on a cluster).
    drain_cpu: super::cpu::PerRequest,
}

pub async fn queue(settings: Settings, options: QueueBench) -> anyhow::Result<()> {
    let state = AppState::build(settings.clone()).await?;
    let all = super::repeat(options.runs, async |_| {
        one_run(&state, &settings, &options).await
    })
    .await?;
    print_table(&options, &all);
    Ok(())
}

async fn one_run(
    state: &AppState,
    settings: &Settings,
    options: &QueueBench,
) -> anyhow::Result<Figures> {
    let mut figures = Figures::default();
    let mut redis = state.service.stores().redis.clone();

    // (e) idle RSS of a fresh `tutorq all`. Each run starts from empty stores: the history rows
    // of earlier runs would otherwise make PostgreSQL work harder on the same two cores.
    flush(&mut redis).await?;
    sqlx::query("TRUNCATE task_history, webhook_deliveries")
        .execute(&state.service.stores().db)
        .await?;
    let port = free_port()?;
    let mut engine = Engine::spawn(settings, port, "all")?;
    engine.wait_ready(port).await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    figures.rss_idle_mb = engine.rss_mb();
    engine.stop();

    // (a) drain of a backlog queued before any worker runs.
    flush(&mut redis).await?;
    let ids = enqueue(state, options.jobs, "bench-drain").await?;
    let started = Instant::now();
    let mut engine = Engine::spawn(settings, port, "all")?;
    let peak = engine.watch_rss();
    let processes = super::cpu::Processes::find(state, engine.child.id()).await;
    let cpu_before = processes.snapshot();
    wait_completed(state, options.jobs).await?;
    figures.drain_cpu = cpu_before.per_request(&processes.snapshot(), options.jobs);
    figures.drain_wall_s = started.elapsed().as_secs_f64();
    figures.rss_drain_peak_mb = peak.stop();
    let finished = finished_times(state, &ids).await?;
    figures.drain_jobs_per_s = rate(&finished);
    verify_exactly_once(state, &ids).await?;

    // (b) steady state: producer and workers together.
    engine.wait_ready(port).await?;
    let before = completed(state).await?;
    let ids = enqueue(state, options.steady_jobs, "bench-steady").await?;
    wait_completed(state, before + options.steady_jobs).await?;
    let created = created_times(state, &ids).await?;
    let finished = finished_times(state, &ids).await?;
    let first = created.iter().copied().min().unwrap_or(0);
    let last = finished.iter().copied().max().unwrap_or(0);
    figures.steady_jobs_per_s = options.steady_jobs as f64 / ((last - first).max(1) as f64 / 1e6);

    // (c) idle pickup, one job at a time.
    let (pickup, done) = pickup_latency(state, options.latency_jobs).await?;
    figures.pickup_p50_ms = percentile(&pickup, 50.0);
    figures.pickup_p99_ms = percentile(&pickup, 99.0);
    figures.done_p50_ms = percentile(&done, 50.0);
    figures.done_p99_ms = percentile(&done, 99.0);

    // (d) HTTP intake with auth.
    figures.http_req_per_s = http_intake(state, port, options).await?;
    engine.stop();
    Ok(figures)
}

/// Succeeded `hint` tasks so far: the sample count of the feature's latency average, which the
/// completer raises once per recorded success (cheaper than reading every record while timing).
async fn completed(state: &AppState) -> anyhow::Result<usize> {
    let mut redis = state.service.stores().redis.clone();
    let samples: Option<String> = redis.hget(keys::latency("hint"), "samples").await?;
    Ok(samples.and_then(|s| s.parse().ok()).unwrap_or(0))
}

async fn wait_completed(state: &AppState, target: usize) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(600);
    while completed(state).await? < target {
        anyhow::ensure!(
            Instant::now() < deadline,
            "jobs did not complete within 10 minutes"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(())
}

async fn hash_field(state: &AppState, ids: &[String], field: &str) -> anyhow::Result<Vec<i64>> {
    let mut redis = state.service.stores().redis.clone();
    let parts = state.service.engine().store.partitions().clone();
    let mut values = Vec::with_capacity(ids.len());
    for chunk in ids.chunks(5000) {
        let calls = chunk
            .iter()
            .map(|id| {
                let mut call = redis::cmd("HGET");
                call.arg(parts.task(id)).arg(field);
                call
            })
            .collect();
        for value in redis.query_each(calls).await? {
            values.extend(redis::from_redis_value::<Option<i64>>(value)?);
        }
    }
    Ok(values)
}

/// One hash field of many tasks (for the other benches).
pub(super) async fn hash_field_pub(
    state: &AppState,
    ids: &[String],
    field: &str,
) -> anyhow::Result<Vec<i64>> {
    hash_field(state, ids, field).await
}

async fn finished_times(state: &AppState, ids: &[String]) -> anyhow::Result<Vec<i64>> {
    hash_field(state, ids, "finished_us").await
}

async fn created_times(state: &AppState, ids: &[String]) -> anyhow::Result<Vec<i64>> {
    hash_field(state, ids, "created_us").await
}

/// (count − 1) / (last − first completion), the anchors' definition.
fn rate(finished: &[i64]) -> f64 {
    let (Some(first), Some(last)) = (finished.iter().min(), finished.iter().max()) else {
        return 0.0;
    };
    (finished.len().saturating_sub(1)) as f64 / ((last - first).max(1) as f64 / 1e6)
}

/// Every task succeeded, after one attempt, with exactly one `succeeded` event.
async fn verify_exactly_once(state: &AppState, ids: &[String]) -> anyhow::Result<()> {
    let mut redis = state.service.stores().redis.clone();
    let parts = state.service.engine().store.partitions().clone();
    let mut bad = 0usize;
    for chunk in ids.chunks(2000) {
        let mut calls = Vec::new();
        for id in chunk {
            let mut state = redis::cmd("HGET");
            state.arg(parts.task(id)).arg("state");
            let mut events = redis::cmd("XRANGE");
            events.arg(parts.events(id)).arg("-").arg("+");
            calls.extend([state, events]);
        }
        let replies = redis.query_each(calls).await?;
        for pair in replies.chunks(2) {
            let state: Option<String> =
                redis::FromRedisValue::from_redis_value(pair[0].clone()).unwrap_or(None);
            let events: Vec<(String, HashMap<String, String>)> =
                redis::FromRedisValue::from_redis_value(pair[1].clone()).unwrap_or_default();
            let succeeded = events
                .iter()
                .filter(|(_, f)| f.get("event").map(String::as_str) == Some("succeeded"))
                .count();
            if state.as_deref() != Some("succeeded") || succeeded != 1 {
                bad += 1;
            }
        }
    }
    anyhow::ensure!(
        bad == 0,
        "{bad} of {} tasks did not succeed exactly once",
        ids.len()
    );
    eprintln!("bench: all {} tasks succeeded exactly once", ids.len());
    Ok(())
}

/// Created → started and created → succeeded, in milliseconds, one job at a time.
async fn pickup_latency(state: &AppState, count: usize) -> anyhow::Result<(Vec<f64>, Vec<f64>)> {
    let store = &state.service.engine().store;
    let mut reader = store.dedicated_connection(Duration::from_secs(5)).await?;
    let (mut pickup, mut done) = (Vec::with_capacity(count), Vec::with_capacity(count));
    for index in 0..count + 20 {
        let task = new_task("bench-latency", index);
        store.enqueue(&task).await?;
        let events = store.partitions().events(&task.facts.task_id);
        let mut cursor = "0-0".to_owned();
        let (mut created, mut started, mut succeeded) = (None, None, None);
        while succeeded.is_none() {
            let options = redis::streams::StreamReadOptions::default()
                .block(5000)
                .count(10);
            let reply: Option<redis::streams::StreamReadReply> = reader
                .xread_options(&[&events], &[&cursor], &options)
                .await?;
            let reply = reply.context("no event within 5 s")?;
            for entry in reply.keys.into_iter().flat_map(|k| k.ids) {
                cursor = entry.id.clone();
                let name: Option<String> = entry.get("event");
                let data: Option<String> = entry.get("data");
                let at = data
                    .and_then(|d| serde_json::from_str::<serde_json::Value>(&d).ok())
                    .and_then(|d| d["at_us"].as_i64());
                match name.as_deref() {
                    Some("queued") => created = at,
                    Some("started") => started = at,
                    Some("succeeded") => succeeded = at,
                    Some(other) => anyhow::bail!("unexpected event {other}"),
                    None => {}
                }
            }
        }
        // The first 20 warm the connections and are not counted.
        if index >= 20
            && let (Some(c), Some(s), Some(d)) = (created, started, succeeded)
        {
            pickup.push((s - c) as f64 / 1000.0);
            done.push((d - c) as f64 / 1000.0);
        }
    }
    Ok((pickup, done))
}

async fn http_intake(state: &AppState, port: u16, options: &QueueBench) -> anyhow::Result<f64> {
    let token = state
        .auth
        .tokens
        .mint("bench-http", Role::Service, Duration::from_secs(3600));
    let url = format!("http://127.0.0.1:{port}/v1/ai/hint?mode=async");
    let body = json!({"input": {"question": "2x + 3 = 11 ise x kaçtır?", "subject": "Matematik", "hint_level": 1}});
    let load = super::http::post_load(
        &url,
        std::slice::from_ref(&token),
        &body,
        202,
        options.concurrency,
        options.http_requests,
    )
    .await?;
    Ok(load.req_per_s)
}

fn print_table(options: &QueueBench, runs: &[Figures]) {
    super::table_head(&format!(
        "tutorq bench queue: {} runs; drain {} jobs, steady {} jobs, latency {} jobs, HTTP {} requests at c={}",
        runs.len(),
        options.jobs,
        options.steady_jobs,
        options.latency_jobs,
        options.http_requests,
        options.concurrency
    ));
    super::table_row(runs, "(a) drain of the backlog", "jobs/s", 2, |f| {
        f.drain_jobs_per_s
    });
    super::table_row(runs, "(a) drain, worker start → last job", "s", 2, |f| {
        f.drain_wall_s
    });
    super::table_row(
        runs,
        "(b) steady state, producer + workers",
        "jobs/s",
        2,
        |f| f.steady_jobs_per_s,
    );
    super::table_row(runs, "(c) pickup p50, created → started", "ms", 2, |f| {
        f.pickup_p50_ms
    });
    super::table_row(runs, "(c) pickup p99, created → started", "ms", 2, |f| {
        f.pickup_p99_ms
    });
    super::table_row(
        runs,
        "(c) round trip p50, created → succeeded",
        "ms",
        2,
        |f| f.done_p50_ms,
    );
    super::table_row(
        runs,
        "(c) round trip p99, created → succeeded",
        "ms",
        2,
        |f| f.done_p99_ms,
    );
    super::table_row(runs, "(d) HTTP async intake", "req/s", 2, |f| {
        f.http_req_per_s
    });
    super::table_row(runs, "(e) RSS of tutorq all, idle", "MB", 2, |f| {
        f.rss_idle_mb
    });
    super::table_row(
        runs,
        "(e) RSS of tutorq all, peak during (a)",
        "MB",
        2,
        |f| f.rss_drain_peak_mb,
    );
    super::table_row(runs, "(a) Redis CPU per job (all shards)", "µs", 0, |f| {
        f.drain_cpu.redis_us
    });
    super::shard_rows(runs, "(a)", "job", |f| f.drain_cpu);
}
