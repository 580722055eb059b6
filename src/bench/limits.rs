//! `tutorq bench limits`: what admission costs, printed, never asserted.
//!
//! (1) In-process, sequential: the per-IP script and the admission script (window, cooldown,
//!     daily/monthly caps with reservation, token bucket, abuse block) for each request, as one
//!     request pays them: p50/p99 per request, spread over 1,000 users.
//! (2) Inline `POST /v1/ai/hint?mode=sync` (mock 0 ms, response cache off, so every request runs
//!     the whole path) at concurrency C against a child `tutorq serve`, with limits on (high
//!     enough never to refuse) and off: requests/s and latency p50/p99, side by side.

use std::time::Instant;

use super::{InlineFigures, flush, percentile};
use crate::app::AppState;
use crate::auth::{Principal, Role};
use crate::config::Settings;
use crate::feature::Feature;
use crate::limits::Limits;

#[derive(Debug, Clone, clap::Args)]
pub struct LimitsBench {
    /// Admissions timed in-process (1).
    #[arg(long, default_value_t = 20_000)]
    pub admissions: usize,
    #[command(flatten)]
    pub load: super::InlineLoad,
    /// Repetitions; the table shows the median and the range.
    #[arg(long, default_value_t = 3)]
    pub runs: usize,
}

#[derive(Debug, Default, Clone)]
struct Figures {
    admit_p50_ms: f64,
    admit_p99_ms: f64,
    on: InlineFigures,
    off: InlineFigures,
}

pub async fn limits(settings: Settings, options: LimitsBench) -> anyhow::Result<()> {
    let state = AppState::build(settings.clone()).await?;
    let all = super::repeat(options.runs, async |run| {
        one_run(&state, &settings, &options, run).await
    })
    .await?;
    print_table(&options, &all);
    Ok(())
}

async fn one_run(
    state: &AppState,
    settings: &Settings,
    options: &LimitsBench,
    run: usize,
) -> anyhow::Result<Figures> {
    let mut redis = state.service.stores().redis.clone();
    flush(&mut redis).await?;
    let mut figures = Figures::default();

    // (1) The scripts one request runs, with limits that never refuse.
    let mut high = settings.limits.clone();
    high.enabled = true;
    high.ip.per_minute = u64::MAX / 2;
    let roles = &mut high.roles.student;
    roles.per_minute = 1_000_000;
    roles.daily_requests = 1_000_000_000;
    roles.monthly_requests = 1_000_000_000;
    roles.daily_tokens = 1_000_000_000_000;
    roles.monthly_tokens = 1_000_000_000_000;
    roles.bucket_tokens = 1_000_000_000_000;
    roles.bucket_refill_per_sec = 1e9;
    let limits = Limits::new(redis.clone(), &high);
    let mut samples = Vec::with_capacity(options.admissions);
    for i in 0..options.admissions {
        let principal = Principal::new(format!("bench-{}", i % 1000), Role::Student);
        let ip = std::net::IpAddr::from([10, 0, (i / 250 % 250) as u8, (i % 250) as u8]);
        let started = Instant::now();
        limits.ip(ip).await?;
        limits
            .admit(&principal, Feature::Hint, 600, &format!("bench-{i}"))
            .await?;
        samples.push(started.elapsed().as_secs_f64() * 1000.0);
    }
    figures.admit_p50_ms = percentile(&samples, 50.0);
    figures.admit_p99_ms = percentile(&samples, 99.0);

    // (2) Inline requests through a web process, limits on and off (in turns).
    (figures.on, figures.off) = super::inline_on_off(
        state,
        settings,
        "TUTORQ__LIMITS__ENABLED",
        options.load,
        run,
    )
    .await?;
    Ok(figures)
}

fn print_table(options: &LimitsBench, runs: &[Figures]) {
    super::table_head(&format!(
        "tutorq bench limits: {} runs; {} admissions in-process, {} inline requests at c={} from {} users per configuration",
        runs.len(),
        options.admissions,
        options.load.http_requests,
        options.load.concurrency,
        options.load.users
    ));
    super::table_row(runs, "(1) admission, all layers, p50", "ms", 3, |f| {
        f.admit_p50_ms
    });
    super::table_row(runs, "(1) admission, all layers, p99", "ms", 3, |f| {
        f.admit_p99_ms
    });
    type Row = (&'static str, &'static str, fn(&InlineFigures) -> f64);
    let rows: [Row; 3] = [
        ("inline hint", "req/s", |f| f.req_per_s),
        ("latency p50", "ms", |f| f.p50_ms),
        ("latency p99", "ms", |f| f.p99_ms),
    ];
    for (name, unit, of) in rows {
        super::table_row(runs, &format!("(2) {name}, limits on"), unit, 3, |f| {
            of(&f.on)
        });
        super::table_row(runs, &format!("(2) {name}, limits off"), unit, 3, |f| {
            of(&f.off)
        });
    }
    super::cpu_rows(runs, "limits on", |f| &f.on);
    super::cpu_rows(runs, "limits off", |f| &f.off);
}
