//! One delivery attempt: check the URL again, POST the signed body to the checked address
//! (no redirects), record the attempt, and classify the answer: 2xx delivered; 410 stop; other
//! 4xx fail; 429 retry after its `Retry-After`; 5xx, timeouts and network errors retry.

use std::time::{Duration, Instant};

use apalis::prelude::BoxDynError;
use serde_json::json;

use super::{WebhookJob, Webhooks, guard, signature};
use crate::outcome::Outcome;
use crate::tasks::{Delivery, JobFailure, JobKind, TaskStore};

pub async fn deliver(
    webhooks: &Webhooks,
    store: &TaskStore,
    kind: &JobKind,
    job: WebhookJob,
    delivery: &Delivery,
) -> Result<Outcome, BoxDynError> {
    let last_attempt = delivery.attempt >= kind.max_attempts;
    let started = Instant::now();
    let result = attempt(webhooks, &job).await;
    let duration = started.elapsed();
    crate::metrics::webhook_attempt(match &result {
        Ok(_) => "delivered",
        Err((_, failure)) => failure.kind,
    });
    let (status, error) = match &result {
        Ok(status) => (Some(*status), None),
        Err((status, failure)) => (*status, Some(failure.to_string())),
    };
    record(
        webhooks,
        &job,
        delivery.attempt,
        status,
        duration,
        error.as_deref(),
    )
    .await;
    let outcome = match result {
        Ok(status) => {
            set_status(store, &job, "delivered").await;
            return Ok(Outcome::value(
                json!({ "delivered": true, "status": status, "url": job.url }),
            ));
        }
        Err((_, failure)) => failure,
    };
    if outcome.is_final || last_attempt {
        set_status(store, &job, "failed").await;
    }
    Err(match (outcome.is_final, outcome.retry_after) {
        (true, _) => JobFailure::new(outcome.kind, outcome.message).give_up(),
        (false, Some(delay)) => JobFailure::new(outcome.kind, outcome.message).retry_after(delay),
        (false, None) => JobFailure::new(outcome.kind, outcome.message).retry(),
    })
}

struct Failed {
    kind: &'static str,
    message: String,
    /// No later attempt can succeed.
    is_final: bool,
    retry_after: Option<Duration>,
}

impl std::fmt::Display for Failed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

fn failed(kind: &'static str, message: impl Into<String>, is_final: bool) -> Failed {
    Failed {
        kind,
        message: message.into(),
        is_final,
        retry_after: None,
    }
}

/// The HTTP status on success, or the status (if any) and why it failed.
async fn attempt(webhooks: &Webhooks, job: &WebhookJob) -> Result<u16, (Option<u16>, Failed)> {
    let secret = webhooks.secret_for(&job.user_id).await.ok_or((
        None,
        failed(
            "webhook_unconfigured",
            "no webhook secret is configured",
            true,
        ),
    ))?;
    let key = signature::key(secret.expose())
        .map_err(|m| (None, failed("webhook_unconfigured", m, true)))?;
    let checked = guard::check(&job.url, &webhooks.allow_hosts)
        .await
        .map_err(|m| (None, failed("callback_refused", m, true)))?;
    let host = checked
        .url
        .host_str()
        .unwrap_or_default()
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned();
    // No proxy: a proxy resolves the host itself, and the address checked above would not be
    // the one connected to (HTTPS_PROXY / ALL_PROXY are ignored here on purpose).
    let client = reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(webhooks.timeout)
        .connect_timeout(webhooks.timeout.min(Duration::from_secs(5)))
        .resolve(&host, checked.addr)
        .build()
        .map_err(|e| (None, failed("webhook_client", e.to_string(), false)))?;
    let timestamp = jiff::Timestamp::now().as_second();
    let signed = signature::sign(&key, &job.message_id, timestamp, &job.body);
    let response = client
        .post(checked.url)
        .header("content-type", "application/json")
        .header("user-agent", "tutorq-webhooks/1")
        .header("webhook-id", &job.message_id)
        .header("webhook-timestamp", timestamp.to_string())
        .header("webhook-signature", signed)
        .body(job.body.clone())
        .send()
        .await;
    let response = match response {
        Ok(response) => response,
        Err(err) if err.is_timeout() => {
            return Err((
                None,
                failed(
                    "webhook_timeout",
                    "the receiver did not answer in time",
                    false,
                ),
            ));
        }
        Err(err) => {
            return Err((
                None,
                failed(
                    "webhook_network",
                    format!("could not reach the receiver: {err}"),
                    false,
                ),
            ));
        }
    };
    let status = response.status().as_u16();
    match status {
        200..=299 => Ok(status),
        410 => Err((
            Some(status),
            failed(
                "webhook_gone",
                "the receiver answered 410 Gone: no more attempts",
                true,
            ),
        )),
        429 => {
            let retry_after = response
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok())
                .map(Duration::from_secs);
            let mut failure = failed("webhook_rate_limited", "the receiver answered 429", false);
            failure.retry_after = retry_after;
            Err((Some(status), failure))
        }
        408 | 500..=599 => Err((
            Some(status),
            failed(
                "webhook_server_error",
                format!("the receiver answered {status}"),
                false,
            ),
        )),
        _ => Err((
            Some(status),
            failed(
                "webhook_rejected",
                format!("the receiver answered {status}"),
                true,
            ),
        )),
    }
}

async fn record(
    webhooks: &Webhooks,
    job: &WebhookJob,
    attempt: u32,
    status: Option<u16>,
    duration: Duration,
    error: Option<&str>,
) {
    let Some(db) = &webhooks.db else { return };
    let inserted = sqlx::query(
        "INSERT INTO webhook_deliveries (message_id, task_id, attempt, url, status, duration_ms, error) \
         VALUES ($1, $2::uuid, $3, $4, $5, $6, $7)",
    )
    .bind(&job.message_id)
    .bind(&job.task_id)
    .bind(attempt as i32)
    .bind(&job.url)
    .bind(status.map(i32::from))
    .bind(duration.as_millis() as i32)
    .bind(error)
    .execute(db)
    .await;
    if let Err(err) = inserted {
        tracing::warn!(%err, "could not record a webhook attempt");
    }
}

/// The delivery state on the task (or batch) the webhook announces: `webhook` in its record.
async fn set_status(store: &TaskStore, job: &WebhookJob, status: &str) {
    let parts = store.partitions();
    let key = if job.batch {
        parts.batch(&job.task_id)
    } else {
        parts.task(&job.task_id)
    };
    let _ = store.set_webhook_state(&key, status).await;
}
