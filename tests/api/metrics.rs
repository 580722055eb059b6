//! `/metrics`: parsed with the reference Prometheus parser (`tests/metrics/parse.py`,
//! prometheus-client from PyPI), moving as requests and jobs run; its token; and `tutorq worker`'s
//! admin port.
//!
//! The recorder is global and every test in this binary runs in one process, so the in-process
//! test sees other tests' traffic on shared labels: it asserts "at least". The worker test runs
//! its own process and asserts exact counts.

use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::io::AsyncWriteExt as _;
use tutorq::auth::Role;
use tutorq::config::Secret;

use crate::helpers::{
    TestApp, assert_problem, repo_path, sample_input, spawn_app, spawn_app_with,
    spawn_app_with_workers, test_settings,
};

/// One parsed scrape: sample name → `[{labels, value}]`, and `__types__`.
struct Scrape(Value);

impl Scrape {
    /// The sum of the samples of `name` whose labels include every pair of `labels` (0 if none).
    fn value(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.matching(name, labels)
            .map(|s| s["value"].as_f64().unwrap())
            .sum()
    }

    fn has(&self, name: &str, labels: &[(&str, &str)]) -> bool {
        self.matching(name, labels).next().is_some()
    }

    fn matching<'a>(
        &'a self,
        name: &str,
        labels: &'a [(&'a str, &'a str)],
    ) -> impl Iterator<Item = &'a Value> {
        self.0[name]
            .as_array()
            .map(|a| a.as_slice())
            .unwrap_or_default()
            .iter()
            .filter(move |sample| labels.iter().all(|(k, v)| sample["labels"][*k] == *v))
    }

    fn kind(&self, family: &str) -> &str {
        self.0["__types__"][family].as_str().unwrap_or("missing")
    }

    /// Every label value of every sample.
    fn label_values(&self) -> Vec<String> {
        let samples = self.0.as_object().unwrap();
        samples
            .iter()
            .filter(|(name, _)| *name != "__types__")
            .flat_map(|(_, samples)| samples.as_array().unwrap())
            .flat_map(|sample| sample["labels"].as_object().unwrap().values())
            .map(|v| v.as_str().unwrap().to_owned())
            .collect()
    }
}

/// Parses exposition text with prometheus_client (never blocking this runtime: the app under
/// test serves on it).
async fn parse(text: &str) -> Scrape {
    let python = repo_path("target/pyenv/bin/python");
    assert!(
        python.exists(),
        "run script/bootstrap: it installs prometheus-client into target/pyenv"
    );
    let mut child = tokio::process::Command::new(python)
        .arg(repo_path("tests/metrics/parse.py"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the parser");
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(text.as_bytes()).await.unwrap();
    drop(stdin);
    let output = child.wait_with_output().await.unwrap();
    assert!(
        output.status.success(),
        "prometheus_client refused the exposition: {}\n{text}",
        String::from_utf8_lossy(&output.stderr)
    );
    Scrape(serde_json::from_slice(&output.stdout).unwrap())
}

async fn scrape_at(client: &reqwest::Client, url: &str) -> Scrape {
    let response = client.get(url).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let content_type = response.headers()["content-type"].to_str().unwrap();
    assert!(
        content_type.starts_with("text/plain; version=0.0.4"),
        "{content_type}"
    );
    parse(&response.text().await.unwrap()).await
}

async fn scrape(app: &TestApp) -> Scrape {
    scrape_at(&app.client, &app.url("/metrics")).await
}

/// Queues `count` hints (each with its own question, so none is answered twice).
async fn queue_hints(app: &TestApp, user: &str, count: usize) -> Vec<String> {
    let mut ids = Vec::new();
    for i in 0..count {
        let mut input = sample_input("hint");
        input["question"] = json!(format!("Soru {i}: 2x + 3 = 11 denkleminde x kaçtır?"));
        let response = app
            .post_ai_as(
                user,
                "hint",
                &json!({ "input": input, "mode": "async" }),
                &[],
            )
            .await;
        assert_eq!(response.status(), 202);
        let body: Value = response.json().await.unwrap();
        ids.push(body["task_id"].as_str().unwrap().to_owned());
    }
    ids
}

async fn wait_succeeded(app: &TestApp, user: &str, ids: &[String]) {
    for id in ids {
        let task: Value = app.task_as(user, id, 20).await.json().await.unwrap();
        assert_eq!(task["status"], "succeeded", "{task}");
    }
}

#[tokio::test]
async fn metrics_parse_and_move_as_requests_and_jobs_run() {
    let app = spawn_app_with_workers(|_| {}).await;
    let before = scrape(&app).await;

    let ids = queue_hints(&app, "metrics-user", 3).await;
    wait_succeeded(&app, "metrics-user", &ids).await;
    let missing = app
        .client
        .get(app.url("/no/such/route"))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);

    // The jobs' outcomes are counted when the completer records them, which is when the task
    // shows `succeeded`; one more scrape is not needed.
    let after = scrape(&app).await;
    let moved = |name: &str, labels: &[(&str, &str)]| {
        after.value(name, labels) - before.value(name, labels)
    };

    for (family, kind) in [
        ("tutorq_http_requests", "counter"),
        ("tutorq_http_request_duration_seconds", "histogram"),
        ("tutorq_jobs_finished", "counter"),
        ("tutorq_job_duration_seconds", "histogram"),
        ("tutorq_tokens", "counter"),
        ("tutorq_cost_usd", "counter"),
        ("tutorq_provider_requests", "counter"),
        ("tutorq_provider_duration_seconds", "histogram"),
        ("tutorq_provider_breaker_state", "gauge"),
        ("tutorq_queue_depth", "gauge"),
        ("tutorq_queue_in_flight", "gauge"),
        ("tutorq_queue_retrying", "gauge"),
        ("tutorq_dead_tasks", "gauge"),
        ("tutorq_audit_spool_length", "gauge"),
    ] {
        assert_eq!(after.kind(family), kind, "{family}");
    }

    let submitted = [
        ("method", "POST"),
        ("route", "/v1/ai/{feature}"),
        ("status", "202"),
    ];
    assert!(moved("tutorq_http_requests_total", &submitted) >= 3.0);
    assert!(
        moved(
            "tutorq_http_request_duration_seconds_count",
            &[("method", "POST"), ("route", "/v1/ai/{feature}")]
        ) >= 3.0
    );
    assert!(
        after.has(
            "tutorq_http_request_duration_seconds_bucket",
            &[("route", "/v1/ai/{feature}"), ("le", "+Inf")]
        ),
        "a real histogram, with buckets"
    );
    assert!(
        moved(
            "tutorq_http_requests_total",
            &[("route", "unmatched"), ("status", "404")]
        ) >= 1.0
    );
    let succeeded = [("kind", "ai_request"), ("outcome", "succeeded")];
    assert!(moved("tutorq_jobs_finished_total", &succeeded) >= 3.0);
    assert!(
        moved(
            "tutorq_job_duration_seconds_count",
            &[("kind", "ai_request")]
        ) >= 3.0
    );
    for kind in ["prompt", "completion"] {
        let labels = [("feature", "hint"), ("provider", "mock"), ("kind", kind)];
        assert!(moved("tutorq_tokens_total", &labels) > 0.0, "{kind} tokens");
    }
    // The mock's price is 0, but its cost is counted.
    assert!(after.has(
        "tutorq_cost_usd_total",
        &[("feature", "hint"), ("provider", "mock")]
    ));
    assert!(
        moved(
            "tutorq_provider_requests_total",
            &[("provider", "mock"), ("outcome", "ok")]
        ) >= 3.0
    );
    assert_eq!(
        after.value("tutorq_provider_breaker_state", &[("provider", "mock")]),
        0.0
    );
    for kind in ["ai_request", "batch_item", "webhook_delivery"] {
        for gauge in [
            "tutorq_queue_depth",
            "tutorq_queue_in_flight",
            "tutorq_queue_retrying",
        ] {
            assert!(
                after.has(gauge, &[("kind", kind)]),
                "{gauge}{{kind={kind}}}"
            );
        }
    }
    assert!(after.has("tutorq_dead_tasks", &[]));
    assert!(after.has("tutorq_audit_spool_length", &[]));

    // Bounded labels: no task id, user id or raw path anywhere.
    let values = after.label_values();
    for id in &ids {
        assert!(!values.iter().any(|v| v.contains(id.as_str())), "{id}");
    }
    assert!(!values.iter().any(|v| v.contains("metrics-user")));
    assert!(!values.iter().any(|v| v.contains("/no/such/route")));
}

#[tokio::test]
async fn open_sse_streams_and_websockets_are_gauges() {
    use futures_util::{SinkExt as _, StreamExt as _};
    use tokio_tungstenite::tungstenite::Message;
    use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;

    let app = spawn_app().await;
    let ids = queue_hints(&app, "user-1", 1).await;
    // A stream that stays open: the task waits in the queue (this app has no workers).
    let stream = app
        .client
        .get(app.url(&format!("/v1/tasks/{}/events", ids[0])))
        .bearer_auth(app.token(Role::Student))
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status(), 200);
    let mut request = format!("ws://{}/v1/ws", app.address.trim_start_matches("http://"))
        .into_client_request()
        .unwrap();
    request.headers_mut().insert(
        "authorization",
        format!("Bearer {}", app.token(Role::Student))
            .parse()
            .unwrap(),
    );
    let (mut socket, _) = tokio_tungstenite::connect_async(request).await.unwrap();
    // Once the pong is back the server side of the socket is running (and counted).
    socket
        .send(Message::Text(json!({ "op": "ping" }).to_string().into()))
        .await
        .unwrap();
    let pong = tokio::time::timeout(Duration::from_secs(10), socket.next())
        .await
        .unwrap();
    assert!(pong.is_some());

    // Other tests' streams count too (one recorder per process): ours make at least one each.
    let during = scrape(&app).await;
    assert_eq!(during.kind("tutorq_sse_connections"), "gauge");
    assert_eq!(during.kind("tutorq_ws_connections"), "gauge");
    assert!(during.value("tutorq_sse_connections", &[]) >= 1.0);
    assert!(during.value("tutorq_ws_connections", &[]) >= 1.0);
    drop(stream);
    let _ = socket.close(None).await;
}

#[tokio::test]
async fn the_metrics_token_guards_the_endpoint() {
    let app = spawn_app_with(|s| s.metrics.token = Some(Secret::new("scrape-me-please"))).await;
    let url = app.url("/metrics");
    let missing = app.client.get(&url).send().await.unwrap();
    assert_problem(missing, 401, "unauthorized").await;
    let wrong = app
        .client
        .get(&url)
        .bearer_auth("nope")
        .send()
        .await
        .unwrap();
    assert_problem(wrong, 401, "unauthorized").await;
    let right = app
        .client
        .get(&url)
        .bearer_auth("scrape-me-please")
        .send()
        .await
        .unwrap();
    assert_eq!(right.status(), 200);
    parse(&right.text().await.unwrap()).await;

    let off = spawn_app_with(|s| s.metrics.enabled = false).await;
    let response = off.client.get(off.url("/metrics")).send().await.unwrap();
    assert_problem(response, 404, "not-found").await;
}

#[tokio::test]
async fn the_worker_serves_health_readiness_and_exact_metrics_on_its_admin_port() {
    // A web process without workers queues the jobs; a `tutorq worker` process runs them.
    let settings = test_settings().await;
    let web = crate::helpers::spawn_app_from_settings(settings.clone()).await;
    let ids = queue_hints(&web, "user-1", 4).await;

    let port = crate::servers::free_port();
    let mut command = tokio::process::Command::from(crate::helpers::tutorq_command(
        &settings,
        &["worker", "--queues", "ai_request"],
    ));
    let mut worker = command
        .env("TUTORQ__WORKER__ADMIN_PORT", port.to_string())
        .env("TUTORQ__LOG__LEVEL", "error")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("start tutorq worker");
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    let started = Instant::now();
    while client.get(format!("{base}/healthz")).send().await.is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the worker's admin port did not open"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    wait_succeeded(&web, "user-1", &ids).await;

    for _ in 0..3 {
        let ready = client.get(format!("{base}/readyz")).send().await.unwrap();
        assert_eq!(ready.status(), 200);
        let body: Value = ready.json().await.unwrap();
        assert_eq!(body["status"], "ready", "{body}");
        for check in ["redis", "postgres", "prompts"] {
            assert_eq!(body["checks"][check]["status"], "ok", "{body}");
            assert!(body["checks"][check]["latency_ms"].as_f64().unwrap() >= 0.0);
        }
    }
    let not_here = client
        .get(format!("{base}/v1/ai/hint"))
        .send()
        .await
        .unwrap();
    assert_eq!(not_here.status(), 404);

    // Its own process: the counts are exact.
    let metrics = scrape_at(&client, &format!("{base}/metrics")).await;
    let succeeded = [("kind", "ai_request"), ("outcome", "succeeded")];
    assert_eq!(metrics.value("tutorq_jobs_finished_total", &succeeded), 4.0);
    assert_eq!(
        metrics.value(
            "tutorq_job_duration_seconds_count",
            &[("kind", "ai_request")]
        ),
        4.0
    );
    assert_eq!(
        metrics.value(
            "tutorq_provider_requests_total",
            &[("provider", "mock"), ("outcome", "ok")]
        ),
        4.0
    );
    assert_eq!(
        metrics.value(
            "tutorq_http_requests_total",
            &[("method", "GET"), ("route", "/readyz"), ("status", "200")]
        ),
        3.0
    );
    assert_eq!(
        metrics.value(
            "tutorq_http_requests_total",
            &[("route", "unmatched"), ("status", "404")]
        ),
        1.0
    );
    assert_eq!(
        metrics.value("tutorq_queue_depth", &[("kind", "ai_request")]),
        0.0
    );
    assert!(metrics.value("tutorq_tokens_total", &[("feature", "hint")]) > 0.0);

    let pid = worker.id().unwrap().to_string();
    let killed = tokio::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .await
        .unwrap();
    assert!(killed.success());
    let status = tokio::time::timeout(Duration::from_secs(20), worker.wait())
        .await
        .expect("the worker stops on SIGTERM")
        .unwrap();
    assert!(status.success(), "tutorq worker exited with {status}");
}

#[tokio::test]
async fn queue_figures_are_read_before_any_worker_ran() {
    // A web-only process has never created the consumer groups: in-flight is 0, not an error.
    let app = tutorq::app::Application::build(test_settings().await)
        .await
        .unwrap();
    let figures = app.state().service.engine().store.figures().await.unwrap();
    let kinds: Vec<&str> = figures.queues.iter().map(|q| q.kind.as_str()).collect();
    assert_eq!(kinds, ["ai_request", "webhook_delivery", "batch_item"]);
    for queue in &figures.queues {
        assert_eq!(
            (queue.depth, queue.in_flight, queue.retrying),
            (0, 0, 0),
            "{queue:?}"
        );
    }
    let spool = tutorq::audit::spool_length(&app.state().service.stores().redis)
        .await
        .unwrap();
    assert_eq!((figures.dead, spool), (0, 0));
}
