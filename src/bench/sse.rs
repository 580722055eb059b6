//! `tutorq bench sse`: Server-Sent Events fan-out on one web process.
//!
//! (a) N concurrent subscribers, each following its own queued task, on one `tutorq serve`:
//!     the web process's RSS with all of them connected; then the tasks are finished (final
//!     state written by the engine's Lua step, timestamped by Redis `TIME`), half at a steady
//!     rate and half in one burst, and the delay until each subscriber has its final event is
//!     reported, p50/p99, for both.
//! (b) one idle task at a time on `tutorq all`: submit (HTTP) → `succeeded` over SSE, p50/p99.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use tokio::sync::Mutex;

use super::{Engine, enqueue, flush, free_port, hint_round_trip, percentile};
use crate::app::AppState;
use crate::auth::Role;
use crate::config::Settings;
use crate::outcome::Outcome;
use crate::tasks::{Ending, Finish};

#[derive(Debug, Clone, clap::Args)]
pub struct SseBench {
    /// Concurrent SSE subscribers (a).
    #[arg(long, default_value_t = 10_000)]
    pub subscribers: usize,
    /// Sequential submit → succeeded round trips (b).
    #[arg(long, default_value_t = 1_000)]
    pub round_trips: usize,
    /// Final states written per second in the paced part of (a); the rest come as one burst.
    #[arg(long, default_value_t = 1_000)]
    pub finish_rate: usize,
}

fn finish_all(ids: &[String]) -> Vec<Finish> {
    ids.iter()
        .map(|id| {
            Finish::new(
                None,
                id.clone(),
                Ending::Succeeded,
                Outcome::value(json!("bench")),
            )
        })
        .collect()
}

pub async fn sse(settings: Settings, options: SseBench) -> anyhow::Result<()> {
    let state = AppState::build(settings.clone()).await?;
    let mut redis = state.service.stores().redis.clone();
    flush(&mut redis).await?;

    // (a) fan-out.
    let port = free_port()?;
    let mut web = Engine::spawn(&settings, port, "serve")?;
    web.wait_ready(port).await?;
    let rss_idle = web.rss_mb();
    let ids = enqueue(&state, options.subscribers, "bench-sse").await?;
    let token = state
        .auth
        .tokens
        .mint("bench-sse", Role::Service, Duration::from_secs(3600));
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()?;
    let arrivals: Arc<Mutex<Vec<(String, i64)>>> = Arc::default();
    let connected = Arc::new(tokio::sync::Semaphore::new(0));
    let mut followers = tokio::task::JoinSet::new();
    for id in ids.iter().cloned() {
        let (client, token, arrivals, connected) = (
            client.clone(),
            token.clone(),
            arrivals.clone(),
            connected.clone(),
        );
        let url = format!("http://127.0.0.1:{port}/v1/tasks/{id}/events");
        followers.spawn(async move {
            let mut response = client.get(url).bearer_auth(token).send().await?;
            let mut seen = String::new();
            let mut announced = false;
            while let Some(chunk) = response.chunk().await? {
                seen.push_str(&String::from_utf8_lossy(&chunk));
                if !announced && seen.contains("event: queued") {
                    announced = true;
                    connected.add_permits(1);
                }
                if seen.contains("event: succeeded") {
                    arrivals
                        .lock()
                        .await
                        .push((id, jiff::Timestamp::now().as_microsecond()));
                    return Ok::<(), anyhow::Error>(());
                }
            }
            anyhow::bail!("the stream of {id} ended without succeeded")
        });
    }
    let _all = connected.acquire_many(options.subscribers as u32).await?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let rss_connected = web.rss_mb();

    // Finish the tasks the way a worker does: the first half paced at `finish_rate` per second
    // (10 ms batches), the second half as one burst; Redis notes when each was written.
    let store = &state.service.engine().store;
    let kind = store.kinds().kind("ai_request").clone();
    let (paced, burst) = ids.split_at(ids.len() / 2);
    let per_tick = (options.finish_rate / 100).max(1);
    let mut tick = tokio::time::interval(Duration::from_millis(10));
    for chunk in paced.chunks(per_tick) {
        tick.tick().await;
        store.finish_batch(&kind, &finish_all(chunk)).await?;
    }
    let started = Instant::now();
    for chunk in burst.chunks(200) {
        store.finish_batch(&kind, &finish_all(chunk)).await?;
    }
    while let Some(joined) = followers.join_next().await {
        joined??;
    }
    let fanout_s = started.elapsed().as_secs_f64();
    let finished_at = super::queue::hash_field_pub(&state, &ids, "finished_us").await?;
    let arrivals = arrivals.lock().await.clone();
    let written: std::collections::HashMap<&String, i64> =
        ids.iter().zip(finished_at.iter().copied()).collect();
    let delay = |set: &[String]| -> Vec<f64> {
        let set: std::collections::HashSet<&String> = set.iter().collect();
        arrivals
            .iter()
            .filter(|(id, _)| set.contains(id))
            .filter_map(|(id, at)| written.get(id).map(|w| (at - w) as f64 / 1000.0))
            .collect()
    };
    let (paced_delays, burst_delays) = (delay(paced), delay(burst));
    web.stop();

    // (b) idle round trips on `tutorq all`.
    let mut all = Engine::spawn(&settings, port, "all")?;
    all.wait_ready(port).await?;
    let mut round_trips = Vec::with_capacity(options.round_trips);
    let client = reqwest::Client::new();
    for index in 0..options.round_trips + 20 {
        let took = hint_round_trip(&client, port, &token, index).await?;
        if index >= 20 {
            round_trips.push(took);
        }
    }
    all.stop();

    println!();
    println!(
        "tutorq bench sse: {} subscribers on one `tutorq serve`, {} round trips",
        options.subscribers, options.round_trips
    );
    println!();
    println!("| figure | value |");
    println!("| --- | --- |");
    println!("| (a) web process RSS, idle | {rss_idle:.1} MB |");
    println!(
        "| (a) web process RSS, {} subscribers connected | {rss_connected:.1} MB |",
        options.subscribers
    );
    println!(
        "| (a) final state written → event at subscriber, {} per s, p50 | {:.2} ms |",
        options.finish_rate,
        percentile(&paced_delays, 50.0)
    );
    println!(
        "| (a) final state written → event at subscriber, {} per s, p99 | {:.2} ms |",
        options.finish_rate,
        percentile(&paced_delays, 99.0)
    );
    println!(
        "| (a) burst: {} final states at once, delivered p50 | {:.2} ms |",
        burst.len(),
        percentile(&burst_delays, 50.0)
    );
    println!(
        "| (a) burst: {} final states at once, delivered p99 | {:.2} ms |",
        burst.len(),
        percentile(&burst_delays, 99.0)
    );
    println!("| (a) burst: all delivered in | {fanout_s:.2} s |");
    println!(
        "| (b) submit → succeeded over SSE, p50 | {:.2} ms |",
        percentile(&round_trips, 50.0)
    );
    println!(
        "| (b) submit → succeeded over SSE, p99 | {:.2} ms |",
        percentile(&round_trips, 99.0)
    );
    Ok(())
}
