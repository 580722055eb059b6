//! `tutorq bench audit`: what the audit trail costs, printed, never asserted.
//!
//! (1) The writer alone: N events recorded as fast as possible, until every one is a row in
//!     PostgreSQL: events/s.
//! (2) Inline `POST /v1/ai/hint` (mock 0 ms, cache off) at concurrency C against a web process
//!     with auditing on and off: requests/s and latency p50/p99, side by side.

use std::time::{Duration, Instant};

use super::{InlineFigures, flush};
use crate::app::AppState;
use crate::audit::{AuditEvent, AuditLog, Kind, event_id};
use crate::config::Settings;

#[derive(Debug, Clone, clap::Args)]
pub struct AuditBench {
    /// Events written in (1).
    #[arg(long, default_value_t = 100_000)]
    pub events: usize,
    #[command(flatten)]
    pub load: super::InlineLoad,
    /// Repetitions; the table shows the median and the range (and, for what auditing costs,
    /// the mean and its standard error: one run's on/off pair varies by ±10% on a shared
    /// 2-core machine, so it takes about ten to see a difference of a few percent).
    #[arg(long, default_value_t = 10)]
    pub runs: usize,
}

#[derive(Debug, Default, Clone)]
struct Figures {
    events_per_s: f64,
    /// CPU per event written in (1); the writer runs in this process.
    writer_cpu: super::cpu::PerRequest,
    on: InlineFigures,
    off: InlineFigures,
}

pub async fn audit(settings: Settings, options: AuditBench) -> anyhow::Result<()> {
    let state = AppState::build(settings.clone()).await?;
    let runs = super::repeat(options.runs, async |run| {
        one_run(&state, &settings, &options, run).await
    })
    .await?;
    super::table_head(&format!(
        "tutorq bench audit: {} runs; {} events written, {} inline requests at c={} from {} users per configuration",
        runs.len(),
        options.events,
        options.load.http_requests,
        options.load.concurrency,
        options.load.users
    ));
    let row = |name: &str, unit: &str, get: fn(&Figures) -> f64| {
        super::table_row(&runs, name, unit, 1, get);
    };
    row("(1) audit writer into PostgreSQL", "events/s", |f| {
        f.events_per_s
    });
    row("(1) CPU per event: PostgreSQL", "µs", |f| {
        f.writer_cpu.postgres_us
    });
    row(
        "(1) CPU per event: the writer (and making the events)",
        "µs",
        |f| f.writer_cpu.client_us,
    );
    row("(2) inline hint, auditing on", "req/s", |f| f.on.req_per_s);
    row("(2) inline hint, auditing off", "req/s", |f| {
        f.off.req_per_s
    });
    let lost = |f: &Figures| 100.0 * (1.0 - f.on.req_per_s / f.off.req_per_s);
    row("(2) throughput lost to auditing", "%", lost);
    super::table_mean_row(&runs, "(2) throughput lost to auditing", "%", lost);
    row("(2) latency p99, auditing on", "ms", |f| f.on.p99_ms);
    row("(2) latency p99, auditing off", "ms", |f| f.off.p99_ms);
    // On a machine the load saturates, throughput follows the CPU all processes spend per
    // request; that cost is far less noisy than the rate itself.
    row(
        "(2) CPU per request, all processes, auditing on",
        "µs",
        |f| total_us(&f.on),
    );
    row(
        "(2) CPU per request, all processes, auditing off",
        "µs",
        |f| total_us(&f.off),
    );
    let share = |f: &Figures| 100.0 * (1.0 - total_us(&f.off) / total_us(&f.on));
    row("(2) auditing's share of the CPU per request", "%", share);
    super::table_mean_row(
        &runs,
        "(2) auditing's share of the CPU per request",
        "%",
        share,
    );
    super::cpu_rows(&runs, "auditing on", |f| &f.on);
    super::cpu_rows(&runs, "auditing off", |f| &f.off);
    Ok(())
}

async fn one_run(
    state: &AppState,
    settings: &Settings,
    options: &AuditBench,
    run: usize,
) -> anyhow::Result<Figures> {
    let mut figures = Figures::default();
    let mut redis = state.service.stores().redis.clone();
    flush(&mut redis).await?;
    let db = &state.service.stores().db;
    sqlx::query("TRUNCATE audit_events").execute(db).await?;

    // (1) The writer alone, fed as fast as it takes events.
    let mut audit = settings.audit.clone();
    audit.enabled = true;
    let log = AuditLog::start(&audit, db.clone(), redis.clone());
    let processes = super::cpu::Processes::find(state, std::process::id()).await;
    let before = processes.snapshot();
    let started = Instant::now();
    for i in 0..options.events {
        log.send(event(i)).await;
    }
    log.flush(Duration::from_secs(120)).await;
    loop {
        let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM audit_events")
            .fetch_one(db)
            .await?;
        if rows as usize >= options.events {
            break;
        }
        anyhow::ensure!(
            started.elapsed() < Duration::from_secs(600),
            "only {rows} of {} audit events were written",
            options.events
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    figures.events_per_s = options.events as f64 / started.elapsed().as_secs_f64();
    figures.writer_cpu = before.per_request(&processes.snapshot(), options.events);
    sqlx::query("TRUNCATE audit_events, task_history")
        .execute(db)
        .await?;

    // (2) Inline requests, auditing on and off (in turns: see `inline_on_off`).
    (figures.on, figures.off) =
        super::inline_on_off(state, settings, "TUTORQ__AUDIT__ENABLED", options.load, run).await?;
    Ok(figures)
}

fn total_us(figures: &InlineFigures) -> f64 {
    let cpu = &figures.cpu;
    cpu.web_us + cpu.redis_us + cpu.postgres_us + cpu.client_us
}

/// A success event as an answered hint leaves it.
fn event(i: usize) -> AuditEvent {
    let task = uuid::Uuid::now_v7();
    AuditEvent {
        id: event_id(&task.to_string(), Kind::Success),
        kind: Kind::Success,
        request_id: format!("bench-{i}"),
        task_id: Some(task),
        user_id: format!("bench-{}", i % 1000),
        role: "student".into(),
        feature: "hint".into(),
        prompt_name: Some("question_hint".into()),
        prompt_version: Some("1.0".into()),
        at_us: jiff::Timestamp::now().as_microsecond(),
        provider: Some("mock".into()),
        model: Some("mock-1".into()),
        prompt_tokens: 71,
        completion_tokens: 38,
        cost_usd: 0.0,
        duration_ms: Some(12),
        cached: false,
        degraded: false,
        error_kind: None,
        client_ip: Some("10.0.0.1".into()),
        payload: serde_json::json!({
            "response": "Önce sorunun senden ne istediğini kendi cümlelerinle yaz. Küçük bir sayıyla deneyip örüntüyü görmeye çalış.",
            "usage": { "prompt_tokens": 71, "completion_tokens": 38, "total_tokens": 109 },
            "finish_reason": "stop",
            "attempts": 1,
        }),
    }
}
