//! Webhooks: the SSRF guard at submit time, retries with growing gaps, 410 stops, every attempt
//! recorded, and signatures checked by the reference `standardwebhooks` package.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::http::{HeaderMap, StatusCode};
use serde_json::{Value, json};
use tutorq::tasks::Job as _;
use tutorq::webhooks::WebhookJob;

use crate::helpers::{
    TestApp, assert_problem, jobs_copy, repo_path, sample_input, spawn_app_with,
    spawn_app_with_workers,
};

async fn submit(app: &TestApp, callback: &str) -> reqwest::Response {
    app.post_ai_as(
        "u1",
        "hint",
        &json!({ "input": sample_input("hint"), "mode": "async", "callback_url": callback }),
        &[],
    )
    .await
}

#[tokio::test]
async fn internal_and_plain_http_callbacks_are_refused_at_submit() {
    let app = spawn_app_with(|s| s.webhooks.allow_hosts.clear()).await;
    for url in [
        "https://127.0.0.1/hook",
        "https://10.0.0.1/hook",
        "https://169.254.169.254/latest/meta-data",
        "https://[::1]/hook",
        "https://localhost/hook",
    ] {
        let body = assert_problem(submit(&app, url).await, 422, "invalid-input").await;
        assert!(
            body["errors"]["callback_url"]
                .as_str()
                .unwrap()
                .contains("internal address"),
            "{url}: {body}"
        );
    }
    let body = assert_problem(
        submit(&app, "http://93.184.215.14/hook").await,
        422,
        "invalid-input",
    )
    .await;
    assert!(
        body["errors"]["callback_url"]
            .as_str()
            .unwrap()
            .contains("https"),
        "{body}"
    );
    let body = assert_problem(submit(&app, "not a url").await, 422, "invalid-input").await;
    assert!(
        body["errors"]["callback_url"]
            .as_str()
            .unwrap()
            .contains("not a URL"),
        "{body}"
    );
}

/// A receiver that answers with `statuses` in turn (then 200) and remembers each call.
async fn receiver(statuses: Vec<u16>) -> (String, Arc<Mutex<Vec<(Instant, HeaderMap)>>>) {
    let calls: Arc<Mutex<Vec<(Instant, HeaderMap)>>> = Arc::default();
    let seen = calls.clone();
    let router = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |headers: HeaderMap| {
            let seen = seen.clone();
            let statuses = statuses.clone();
            async move {
                let mut calls = seen.lock().unwrap();
                let status = statuses.get(calls.len()).copied().unwrap_or(200);
                calls.push((Instant::now(), headers));
                StatusCode::from_u16(status).unwrap()
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!(
        "http://127.0.0.1:{}/hook",
        listener.local_addr().unwrap().port()
    );
    tokio::spawn(async move { axum::serve(listener, router).await });
    (url, calls)
}

/// `jobs/` with fast webhook retries.
fn fast_webhook_jobs() -> tempfile::TempDir {
    jobs_copy(|kind, text| {
        if kind != WebhookJob::KIND {
            return text;
        }
        text.replace("initial: 30s", "initial: 200ms")
            .replace("multiplier: 4.0", "multiplier: 2.0")
            .replace("jitter: true", "jitter: false")
    })
}

async fn wait_webhook(app: &TestApp, id: &str, expected: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let task: Value = app.task_as("u1", id, 0).await.json().await.unwrap();
        if task["webhook"] == expected {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "webhook never {expected}: {task}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_failing_receiver_gets_the_event_on_the_fourth_attempt_with_growing_gaps() {
    let jobs = fast_webhook_jobs();
    let app = spawn_app_with_workers(|s| s.jobs.dir = jobs.path().to_path_buf()).await;
    let (url, calls) = receiver(vec![500, 500, 500]).await;
    let response = submit(&app, &url).await;
    assert_eq!(response.status(), 202);
    let task: Value = response.json().await.unwrap();
    let id = task["task_id"].as_str().unwrap().to_owned();
    wait_webhook(&app, &id, "delivered").await;

    let calls = calls.lock().unwrap().clone();
    assert_eq!(calls.len(), 4);
    let ids: Vec<&str> = calls
        .iter()
        .map(|(_, h)| h["webhook-id"].to_str().unwrap())
        .collect();
    assert!(
        ids.windows(2).all(|w| w[0] == w[1]),
        "one message id across retries: {ids:?}"
    );
    assert!(
        calls
            .iter()
            .all(|(_, h)| h["webhook-signature"].to_str().unwrap().starts_with("v1,"))
    );
    let gaps: Vec<Duration> = calls.windows(2).map(|w| w[1].0 - w[0].0).collect();
    assert!(
        gaps[0] >= Duration::from_millis(200) && gaps[1] > gaps[0] && gaps[2] > gaps[1],
        "growing gaps: {gaps:?}"
    );

    let pool = sqlx::PgPool::connect(app.settings.database.url.expose())
        .await
        .unwrap();
    let statuses: Vec<Option<i32>> = sqlx::query_scalar(
        "SELECT status FROM webhook_deliveries WHERE task_id = $1::uuid ORDER BY attempt",
    )
    .bind(&id)
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(statuses, [Some(500), Some(500), Some(500), Some(200)]);
}

#[tokio::test]
async fn a_receiver_that_answers_410_is_not_called_again() {
    let jobs = fast_webhook_jobs();
    let app = spawn_app_with_workers(|s| s.jobs.dir = jobs.path().to_path_buf()).await;
    let (url, calls) = receiver(vec![410]).await;
    let task: Value = submit(&app, &url).await.json().await.unwrap();
    let id = task["task_id"].as_str().unwrap().to_owned();
    wait_webhook(&app, &id, "failed").await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(calls.lock().unwrap().len(), 1);
}

/// What finish.lua leaves of a hint that succeeded with a callback URL: its record, final.
async fn record_succeeded(app: &TestApp, id: &str, url: &str) {
    let finished_us = (jiff::Timestamp::now().as_microsecond()).to_string();
    let outcome = json!({ "result": { "hint": "Önce iki tarafı 3'e böl." } }).to_string();
    redis::cmd("HSET")
        .arg(app.partitions().task(id))
        .arg(&[
            ("id", id),
            ("state", "succeeded"),
            ("kind", "hint"),
            ("user_id", "u1"),
            ("role", "student"),
            ("feature", "hint"),
            ("request_id", "req-left-behind"),
            ("created_us", finished_us.as_str()),
            ("finished_us", finished_us.as_str()),
            ("attempts", "1"),
            ("max_attempts", "3"),
            ("job", "{}"),
            ("outcome", outcome.as_str()),
            ("callback_url", url),
            ("webhook", "pending"),
        ])
        .query_async::<()>(&mut app.redis().await)
        .await
        .unwrap();
}

#[tokio::test]
async fn a_webhook_a_dead_process_left_in_the_outbox_is_delivered_once() {
    let app = spawn_app_with_workers(|_| {}).await;
    let (url, calls) = receiver(vec![]).await;
    // The process that made the task final died before it queued the webhook: the step is in
    // the outbox, nothing else knows of it.
    let id = uuid::Uuid::now_v7().to_string();
    record_succeeded(&app, &id, &url).await;
    let step = [
        ("op", "webhook"),
        ("task", id.as_str()),
        ("state", "succeeded"),
    ];
    crate::outbox::leave_in_outbox(&app, &id, &step).await;
    crate::outbox::outbox_drained(&app, &id).await;
    wait_webhook(&app, &id, "delivered").await;
    // A sweeper that queued it and died before deleting the step: it comes round again and
    // queues nothing (the delivery task's id comes from the task and its end).
    crate::outbox::leave_in_outbox(&app, &id, &step).await;
    crate::outbox::outbox_drained(&app, &id).await;

    // A real task's webhook after it: had the repeat queued a second delivery, it would be
    // delivered by now too.
    let task: Value = submit(&app, &url).await.json().await.unwrap();
    let second = task["task_id"].as_str().unwrap().to_owned();
    wait_webhook(&app, &second, "delivered").await;
    let calls = calls.lock().unwrap().clone();
    let ids: Vec<&str> = calls
        .iter()
        .map(|(_, h)| h["webhook-id"].to_str().unwrap())
        .collect();
    assert_eq!(ids.len(), 2, "one delivery per task: {ids:?}");
    assert_ne!(ids[0], ids[1]);
}

#[tokio::test]
async fn a_cancelled_task_announces_its_cancellation() {
    let app = spawn_app_with(|_| {}).await;
    let (url, _calls) = receiver(vec![]).await;
    let task: Value = submit(&app, &url).await.json().await.unwrap();
    let id = task["task_id"].as_str().unwrap().to_owned();
    let response = app
        .client
        .delete(app.url(&format!("/v1/tasks/{id}")))
        .bearer_auth(app.auth_token("u1", tutorq::auth::Role::Student))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
    // No workers run here: the delivery waits in the webhook queue, under the id that comes
    // from the task and its end, with the cancellation as its body.
    let mut conn = app.redis().await;
    let finished_us: String = redis::cmd("HGET")
        .arg(app.partitions().task(&id))
        .arg("finished_us")
        .query_async(&mut conn)
        .await
        .unwrap();
    let owner = tutorq::facts::TaskFacts::from_stored(
        id.clone(),
        String::new(),
        "u1".into(),
        "student",
        "",
    );
    let outcome = tutorq::outcome::Outcome::error("cancelled", "the task was cancelled");
    let expected = WebhookJob::for_final(
        &id,
        "u1",
        "cancelled",
        &url,
        &outcome,
        finished_us.parse().unwrap(),
    )
    .into_task(&owner);
    let delivery: std::collections::HashMap<String, String> = redis::cmd("HGETALL")
        .arg(app.partitions().task(&expected.facts.task_id))
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(delivery["state"], "queued", "{delivery:?}");
    assert_eq!(delivery["kind"], WebhookJob::KIND);
    let job: WebhookJob = serde_json::from_str(&delivery["job"]).unwrap();
    let body: Value = serde_json::from_str(&job.body).unwrap();
    assert_eq!(body["type"], "task.cancelled", "{body}");
    assert_eq!(body["data"]["task_id"], id.as_str());
}

#[tokio::test]
async fn signatures_verify_with_the_reference_standardwebhooks_package() {
    let python = repo_path("target/pyenv/bin/python");
    assert!(
        python.exists(),
        "run script/bootstrap: it installs the standardwebhooks package into target/pyenv"
    );
    let app = spawn_app_with_workers(|_| {}).await;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let secret = "whsec_dHV0b3JxLWRldmVsb3BtZW50LXdlYmhvb2stc2VjcmV0";
    let mut child = Command::new(python)
        .arg(repo_path("tests/webhooks/receiver.py"))
        .arg(port.to_string())
        .arg(secret)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    assert!(lines.next().unwrap().unwrap().contains("listening"));
    let response = submit(&app, &format!("http://127.0.0.1:{port}/hook")).await;
    assert_eq!(response.status(), 202);
    let report: Value = tokio::task::spawn_blocking(move || {
        serde_json::from_str(&lines.next().unwrap().unwrap()).unwrap()
    })
    .await
    .unwrap();
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(report["verified"], true, "{report}");
    assert_eq!(report["tampered_rejected"], true, "{report}");
    assert_eq!(report["stale_rejected"], true, "{report}");
    assert_eq!(report["type"], "task.succeeded");
}
