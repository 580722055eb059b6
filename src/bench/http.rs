//! A closed-loop HTTP load: `concurrency` clients send `total` requests as fast as answers come.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// What a load run measured.
pub struct Load {
    pub req_per_s: f64,
    /// Per-request latency, ms.
    pub latencies_ms: Vec<f64>,
}

/// POSTs `body` to `url`, request n with `tokens[n % tokens.len()]` (one caller or many);
/// every answer must have `status`.
pub async fn post_load(
    url: &str,
    tokens: &[String],
    body: &serde_json::Value,
    status: u16,
    concurrency: usize,
    total: usize,
) -> anyhow::Result<Load> {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(concurrency)
        .build()?;
    let next = Arc::new(AtomicUsize::new(0));
    let failures = Arc::new(AtomicUsize::new(0));
    let latencies = Arc::new(Mutex::new(Vec::with_capacity(total)));
    let tokens: Arc<[String]> = tokens.into();
    let started = Instant::now();
    let mut clients = tokio::task::JoinSet::new();
    for _ in 0..concurrency {
        let (client, url, body, tokens) =
            (client.clone(), url.to_owned(), body.clone(), tokens.clone());
        let (next, failures, latencies) = (next.clone(), failures.clone(), latencies.clone());
        clients.spawn(async move {
            let mut mine = Vec::new();
            loop {
                let n = next.fetch_add(1, Ordering::Relaxed);
                if n >= total {
                    break;
                }
                let sent = Instant::now();
                let ok = client
                    .post(&url)
                    .bearer_auth(&tokens[n % tokens.len()])
                    .json(&body)
                    .send()
                    .await
                    .is_ok_and(|r| r.status().as_u16() == status);
                mine.push(sent.elapsed().as_secs_f64() * 1000.0);
                if !ok {
                    failures.fetch_add(1, Ordering::Relaxed);
                }
            }
            latencies
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .extend(mine);
        });
    }
    while clients.join_next().await.is_some() {}
    let elapsed = started.elapsed().as_secs_f64();
    let failed = failures.load(Ordering::Relaxed);
    anyhow::ensure!(
        failed == 0,
        "{failed} of {total} requests were not answered {status}"
    );
    let latencies_ms = std::mem::take(&mut *latencies.lock().unwrap_or_else(|e| e.into_inner()));
    Ok(Load {
        req_per_s: total as f64 / elapsed,
        latencies_ms,
    })
}
