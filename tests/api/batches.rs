//! Batches: every item checked before anything runs, items as tasks on their own queue,
//! progress, JSON-lines results and cancellation.

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tutorq::auth::Role;

use crate::helpers::{TestApp, sample_input, spawn_app_with_workers};

fn items(count: usize) -> Vec<Value> {
    (0..count)
        .map(|i| {
            let mut input = sample_input("question_gen");
            input["topic"] = format!("Üslü sayılar, bölüm {i}").into();
            json!({ "input": input })
        })
        .collect()
}

async fn submit(app: &TestApp, role: Role, body: &Value) -> reqwest::Response {
    app.client
        .post(app.url("/v1/batches"))
        .bearer_auth(app.auth_token("teacher-1", role))
        .json(body)
        .send()
        .await
        .unwrap()
}

/// A batch the teacher submitted, as accepted (202).
async fn accepted(app: &TestApp, body: &Value) -> Value {
    let response = submit(app, Role::Teacher, body).await;
    assert_eq!(response.status(), 202);
    response.json().await.unwrap()
}

async fn batch(app: &TestApp, id: &str) -> Value {
    app.get_json(
        &format!("/v1/batches/{id}"),
        Some(&app.auth_token("teacher-1", Role::Teacher)),
    )
    .await
}

async fn wait_state(app: &TestApp, id: &str, done: &[&str]) -> Value {
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let view = batch(app, id).await;
        if done.contains(&view["state"].as_str().unwrap_or("")) {
            return view;
        }
        assert!(Instant::now() < deadline, "batch never finished: {view:#}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn results(app: &TestApp, id: &str) -> Vec<Value> {
    let response = app
        .client
        .get(app.url(&format!("/v1/batches/{id}/results")))
        .bearer_auth(app.auth_token("teacher-1", Role::Teacher))
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["content-type"], "application/x-ndjson");
    response
        .text()
        .await
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect()
}

/// Items in the full-run test: 30 by default; `TUTORQ_BATCH_ITEMS=10000` runs the issue's
/// 10,000-item acceptance.
fn full_run_items() -> usize {
    std::env::var("TUTORQ_BATCH_ITEMS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(30)
}

#[tokio::test]
async fn a_batch_runs_every_item_and_reports_each_in_order() {
    let n = full_run_items();
    let app = spawn_app_with_workers(|_| {}).await;
    let response = submit(
        &app,
        Role::Teacher,
        &json!({ "feature": "question_gen", "items": items(n), "metadata": { "bank": "ünite-3" } }),
    )
    .await;
    assert_eq!(response.status(), 202);
    let created: Value = response.json().await.unwrap();
    assert_eq!(created["total"], n);
    let id = created["id"].as_str().unwrap();
    let done = wait_state(&app, id, &["completed", "completed_with_errors", "failed"]).await;
    assert_eq!(done["state"], "completed", "{done:#}");
    assert_eq!(
        (done["succeeded"].as_u64(), done["failed"].as_u64()),
        (Some(n as u64), Some(0))
    );
    assert_eq!(done["metadata"]["bank"], "ünite-3");
    let lines = results(&app, id).await;
    assert_eq!(lines.len(), n);
    for (i, line) in lines.iter().enumerate() {
        assert_eq!(line["index"], i);
        assert_eq!(line["status"], "succeeded");
        assert!(line["result"]["questions"].is_array(), "{line}");
    }
    // The items ran as batch_item tasks.
    let kind: Option<String> = redis::cmd("HGET")
        .arg(app.partitions().task(lines[0]["task_id"].as_str().unwrap()))
        .arg("kind")
        .query_async(&mut app.redis().await)
        .await
        .unwrap();
    assert_eq!(kind.as_deref(), Some("batch_item"));
    let listed = app
        .get_json(
            "/v1/batches",
            Some(&app.auth_token("teacher-1", Role::Teacher)),
        )
        .await;
    assert_eq!(listed["batches"][0]["id"], id);
}

#[tokio::test]
async fn invalid_items_refuse_the_batch_unless_partial_is_allowed() {
    let app = spawn_app_with_workers(|_| {}).await;
    let mut all = items(10);
    all[2]["input"]["difficulty"] = "imkansız".into();
    all[5]["input"]["count"] = 99.into();
    all[7] = json!({ "input": { "subject": "Matematik" } });
    let refused = submit(
        &app,
        Role::Service,
        &json!({ "feature": "question_gen", "items": all }),
    )
    .await;
    let body = crate::helpers::assert_problem(refused, 422, "invalid-input").await;
    assert!(
        body["detail"].as_str().unwrap().contains("indices 2, 5, 7"),
        "{body:#}"
    );
    assert!(
        body["errors"]["items[2].input.difficulty"].is_string(),
        "{body:#}"
    );
    assert!(
        body["errors"]["items[5].input.count"].is_string(),
        "{body:#}"
    );
    let none = app
        .get_json(
            "/v1/batches",
            Some(&app.auth_token("teacher-1", Role::Service)),
        )
        .await;
    assert_eq!(none["batches"], json!([]), "nothing was queued");

    let partial = submit(
        &app,
        Role::Teacher,
        &json!({ "feature": "question_gen", "items": all, "allow_partial": true }),
    )
    .await;
    assert_eq!(partial.status(), 202);
    let id = partial.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let done = wait_state(&app, &id, &["completed", "completed_with_errors", "failed"]).await;
    assert_eq!(done["state"], "completed_with_errors", "{done:#}");
    assert_eq!(
        (
            done["succeeded"].as_u64(),
            done["failed"].as_u64(),
            done["invalid"].as_u64()
        ),
        (Some(7), Some(3), Some(3))
    );
    let lines = results(&app, &id).await;
    assert_eq!(lines.len(), 10);
    let statuses: Vec<&str> = lines
        .iter()
        .map(|l| l["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses.iter().filter(|s| **s == "invalid").count(), 3);
    assert_eq!(lines[2]["status"], "invalid");
}

#[tokio::test]
async fn cancelling_stops_the_queued_items_and_the_counts_add_up() {
    let app = spawn_app_with_workers(|s| {
        s.providers.mock.latency_ms = tutorq::config::LatencySetting::Fixed(300);
    })
    .await;
    let created: Value = accepted(
        &app,
        &json!({ "feature": "question_gen", "items": items(80) }),
    )
    .await;
    let id = created["id"].as_str().unwrap();
    tokio::time::sleep(Duration::from_millis(400)).await;
    let cancelled = app
        .client
        .delete(app.url(&format!("/v1/batches/{id}")))
        .bearer_auth(app.auth_token("teacher-1", Role::Teacher))
        .send()
        .await
        .unwrap();
    assert_eq!(cancelled.status(), 200);
    let done = wait_state(&app, id, &["cancelled"]).await;
    let (succeeded, failed, cancelled) = (
        done["succeeded"].as_u64().unwrap(),
        done["failed"].as_u64().unwrap(),
        done["cancelled"].as_u64().unwrap(),
    );
    assert_eq!(succeeded + failed + cancelled, 80, "{done:#}");
    assert!(cancelled > 0 && succeeded < 80, "{done:#}");
    // Nothing new starts after the cancel.
    tokio::time::sleep(Duration::from_millis(700)).await;
    let later = batch(&app, id).await;
    assert_eq!(later["succeeded"], done["succeeded"]);
}

#[tokio::test]
async fn students_cannot_batch_and_others_batches_are_not_found() {
    let app = spawn_app_with_workers(|_| {}).await;
    let student = submit(
        &app,
        Role::Student,
        &json!({ "feature": "question_gen", "items": items(1) }),
    )
    .await;
    assert_eq!(student.status(), 403);
    let created: Value = accepted(
        &app,
        &json!({ "feature": "question_gen", "items": items(1) }),
    )
    .await;
    let other = app
        .client
        .get(app.url(&format!("/v1/batches/{}", created["id"].as_str().unwrap())))
        .bearer_auth(app.auth_token("someone-else", Role::Teacher))
        .send()
        .await
        .unwrap();
    assert_eq!(other.status(), 404);
    let empty = submit(
        &app,
        Role::Teacher,
        &json!({ "feature": "question_gen", "items": [] }),
    )
    .await;
    crate::helpers::assert_problem(empty, 422, "invalid-input").await;
    let unknown = submit(
        &app,
        Role::Teacher,
        &json!({ "feature": "poetry", "items": items(1) }),
    )
    .await;
    crate::helpers::assert_problem(unknown, 404, "unknown-feature").await;
}

#[tokio::test]
async fn progress_streams_as_server_sent_events_until_the_final_state() {
    use futures_util::StreamExt as _;
    let app = spawn_app_with_workers(|s| {
        s.providers.mock.latency_ms = tutorq::config::LatencySetting::Fixed(50);
    })
    .await;
    let created: Value = accepted(
        &app,
        &json!({ "feature": "question_gen", "items": items(64) }),
    )
    .await;
    let id = created["id"].as_str().unwrap();
    let response = app
        .client
        .get(app.url(&format!("/v1/batches/{id}/events")))
        .bearer_auth(app.auth_token("teacher-1", Role::Teacher))
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    let mut body = String::new();
    let mut chunks = response.bytes_stream();
    while let Some(chunk) = chunks.next().await {
        body.push_str(&String::from_utf8_lossy(&chunk.unwrap()));
    }
    let names: Vec<&str> = body
        .lines()
        .filter_map(|l| l.strip_prefix("event: "))
        .collect();
    assert!(names.first() == Some(&"progress"), "{body}");
    assert_eq!(names.last(), Some(&"completed"), "{body}");
    let last_data = body
        .lines()
        .rev()
        .find_map(|l| l.strip_prefix("data: "))
        .unwrap();
    let last: Value = serde_json::from_str(last_data).unwrap();
    assert_eq!(last["succeeded"], 64);
}

#[tokio::test]
async fn generated_questions_are_deduplicated_within_a_batch() {
    let app = spawn_app_with_workers(|_| {}).await;
    // The mock answers the same input with the same questions.
    let same = json!({ "input": sample_input("question_gen") });
    let created: Value = accepted(
        &app,
        &json!({ "feature": "question_gen", "items": [same.clone(), same] }),
    )
    .await;
    let id = created["id"].as_str().unwrap();
    wait_state(&app, id, &["completed"]).await;
    let lines = results(&app, id).await;
    // The mock repeats its stems, so even one answer loses its repeats; the second answer
    // repeats the first entirely.
    let kept = lines[0]["result"]["questions"].as_array().unwrap().len();
    assert!(kept > 0, "{:#}", lines[0]);
    assert!(
        lines[1]["duplicates_removed"].as_u64().unwrap() > 0,
        "{:#}",
        lines[1]
    );
    assert_eq!(lines[1]["result"]["questions"], json!([]));
}

#[tokio::test]
async fn a_batch_may_come_as_json_lines() {
    let app = spawn_app_with_workers(|_| {}).await;
    let body: String = items(5).iter().map(|i| format!("{i}\n")).collect();
    let response = app
        .client
        .post(app.url("/v1/batches?feature=question_gen"))
        .bearer_auth(app.auth_token("teacher-1", Role::Teacher))
        .header("content-type", "application/x-ndjson")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 202);
    let id = response.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(wait_state(&app, &id, &["completed"]).await["succeeded"], 5);

    // A broken line is named.
    let broken = app
        .client
        .post(app.url("/v1/batches?feature=question_gen"))
        .bearer_auth(app.auth_token("teacher-1", Role::Teacher))
        .header("content-type", "application/x-ndjson")
        .body("{\"input\": {}}\n{oops\n")
        .send()
        .await
        .unwrap();
    let problem = crate::helpers::assert_problem(broken, 400, "malformed-json").await;
    assert!(
        problem["detail"].as_str().unwrap().contains("line 2"),
        "{problem:#}"
    );
}

/// A webhook receiver that keeps every body it gets.
async fn body_receiver() -> (
    String,
    std::sync::Arc<std::sync::Mutex<Vec<(axum::http::HeaderMap, Value)>>>,
) {
    let calls: std::sync::Arc<std::sync::Mutex<Vec<(axum::http::HeaderMap, Value)>>> =
        Default::default();
    let seen = calls.clone();
    let router = axum::Router::new().route(
        "/hook",
        axum::routing::post(
            move |headers: axum::http::HeaderMap, axum::Json(body): axum::Json<Value>| {
                let seen = seen.clone();
                async move {
                    seen.lock().unwrap().push((headers, body));
                    axum::http::StatusCode::NO_CONTENT
                }
            },
        ),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!(
        "http://127.0.0.1:{}/hook",
        listener.local_addr().unwrap().port()
    );
    tokio::spawn(async move { axum::serve(listener, router).await });
    (url, calls)
}

/// The most items whose `[started_us, finished_us]` overlap at one instant.
fn most_at_once(spans: &[(i64, i64)]) -> usize {
    let mut edges: Vec<(i64, i32)> = spans
        .iter()
        .flat_map(|&(start, end)| [(start, 1), (end, -1)])
        .collect();
    // An end before a start at the same microsecond: a freed slot is taken after it freed.
    edges.sort();
    let (mut now, mut most) = (0i32, 0i32);
    for (_, step) in edges {
        now += step;
        most = most.max(now);
    }
    most as usize
}

#[tokio::test]
async fn items_never_exceed_the_batch_concurrency_and_its_end_sends_one_webhook() {
    let (url, calls) = body_receiver().await;
    let app = spawn_app_with_workers(|s| {
        s.providers.mock.latency_ms = tutorq::config::LatencySetting::Fixed(60);
    })
    .await;
    let created: Value = accepted(&app, &json!({ "feature": "question_gen", "items": items(15), "concurrency": 3, "callback_url": url })).await;
    assert_eq!(created["concurrency"], 3, "{created:#}");
    let id = created["id"].as_str().unwrap();
    let done = wait_state(&app, id, &["completed", "completed_with_errors", "failed"]).await;
    assert_eq!(done["state"], "completed", "{done:#}");
    assert_eq!(
        (done["queued"].as_u64(), done["running"].as_u64()),
        (Some(0), Some(0))
    );
    assert!(done["ended_at"].is_string(), "{done:#}");
    // From the items' own records: when each ran.
    let mut redis = app.redis().await;
    let mut spans = Vec::new();
    for line in results(&app, id).await {
        let (started, finished): (i64, i64) = redis::cmd("HMGET")
            .arg(app.partitions().task(line["task_id"].as_str().unwrap()))
            .arg("started_us")
            .arg("finished_us")
            .query_async(&mut redis)
            .await
            .unwrap();
        spans.push((started, finished));
    }
    let most = most_at_once(&spans);
    // The pool has 32 slots; the batch may use 3 of them, and does.
    assert_eq!(most, 3, "{spans:?}");

    let deadline = Instant::now() + Duration::from_secs(20);
    while calls.lock().unwrap().is_empty() {
        assert!(Instant::now() < deadline, "the batch webhook never came");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let later = wait_webhook_state(&app, id).await;
    assert_eq!(later["webhook"], "delivered", "{later:#}");
    let calls = calls.lock().unwrap().clone();
    assert_eq!(calls.len(), 1, "one webhook per batch");
    let (headers, body) = &calls[0];
    assert_eq!(body["type"], "batch.completed", "{body:#}");
    assert_eq!(body["data"]["id"], id);
    assert_eq!(body["data"]["succeeded"], 15);
    for header in ["webhook-id", "webhook-timestamp", "webhook-signature"] {
        assert!(
            headers.contains_key(header),
            "{header} missing: {headers:?}"
        );
    }
}

async fn wait_webhook_state(app: &TestApp, id: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let view = batch(app, id).await;
        if view["webhook"] != "pending" {
            return view;
        }
        assert!(Instant::now() < deadline, "webhook still pending: {view:#}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_batch_reserves_its_requests_and_tokens_up_front_and_items_settle_them() {
    let app = spawn_app_with_workers(|s| {
        let roles = &mut s.limits.roles;
        for role in [&mut roles.teacher, &mut roles.service] {
            role.daily_requests = 10;
        }
        s.providers.mock.latency_ms = tutorq::config::LatencySetting::Fixed(100);
    })
    .await;
    let token = app.auth_token("teacher-1", Role::Teacher);
    let too_many = submit(
        &app,
        Role::Teacher,
        &json!({ "feature": "question_gen", "items": items(11) }),
    )
    .await;
    crate::helpers::assert_problem(too_many, 429, "daily-requests").await;
    let quota = app.get_json("/v1/quota", Some(&token)).await;
    assert_eq!(quota["daily"]["requests"]["used"], 0, "{quota:#}");

    let created: Value = accepted(
        &app,
        &json!({ "feature": "question_gen", "items": items(8), "concurrency": 1 }),
    )
    .await;
    let id = created["id"].as_str().unwrap();
    let reserved = app.get_json("/v1/quota", Some(&token)).await;
    assert_eq!(reserved["daily"]["requests"]["used"], 8, "{reserved:#}");
    let reserved_tokens = reserved["daily"]["tokens"]["used"].as_u64().unwrap();
    // Two requests left today: a third is refused.
    for (i, expected) in [(0, 202), (1, 202), (2, 429)] {
        let mut input = sample_input("question_gen");
        input["topic"] = format!("Ek konu {i}").into();
        let response = app
            .client
            .post(app.url("/v1/ai/question_gen"))
            .bearer_auth(&token)
            .json(&json!({ "input": input, "mode": "async" }))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), expected, "request {i}");
    }
    wait_state(&app, id, &["completed"]).await;
    let mut used = 0;
    for line in results(&app, id).await {
        let task: Value = app
            .get_json(
                &format!("/v1/tasks/{}", line["task_id"].as_str().unwrap()),
                Some(&token),
            )
            .await;
        used += task["usage"]["total_tokens"].as_u64().unwrap();
    }
    assert!(
        used < reserved_tokens,
        "reserved {reserved_tokens}, used {used}"
    );
    // The two single requests settle too; wait for them, then compare with the items alone.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let quota = app.get_json("/v1/quota", Some(&token)).await;
        let now_used = quota["daily"]["tokens"]["used"].as_u64().unwrap();
        if now_used < reserved_tokens {
            assert!(now_used >= used, "{quota:#}");
            break;
        }
        assert!(Instant::now() < deadline, "never settled: {quota:#}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn an_invalid_model_answer_is_asked_for_once_more_then_the_item_fails_with_the_reason() {
    use wiremock::matchers::{method, path};
    use wiremock::{Mock, MockServer, ResponseTemplate};
    let server = MockServer::start().await;
    let prose = std::fs::read_to_string(crate::helpers::repo_path(
        "tests/fixtures/providers/openai/chat_completion.json",
    ))
    .unwrap();
    Mock::given(method("POST"))
        .and(path("/v1/chat/completions"))
        .respond_with(ResponseTemplate::new(200).set_body_raw(prose, "application/json"))
        .mount(&server)
        .await;
    let uri = server.uri();
    let app = spawn_app_with_workers(move |s| {
        s.providers
            .chains
            .insert("question_gen".into(), vec!["openai".into()]);
        s.providers.openai.base_url = format!("{uri}/v1");
        s.providers.openai.api_key = Some(tutorq::config::Secret::new("sk-test"));
    })
    .await;
    let created: Value = accepted(
        &app,
        &json!({ "feature": "question_gen", "items": items(1) }),
    )
    .await;
    let id = created["id"].as_str().unwrap();
    let done = wait_state(&app, id, &["failed", "completed"]).await;
    assert_eq!(done["state"], "failed", "{done:#}");
    let line = &results(&app, id).await[0];
    assert_eq!(line["status"], "failed", "{line:#}");
    assert_eq!(line["error"]["kind"], "invalid_model_output", "{line:#}");
    assert!(!line["error"]["message"].as_str().unwrap().is_empty());
    // The first answer and one repair request; no job retry after that.
    assert_eq!(server.received_requests().await.unwrap().len(), 2);
    let task: Value = app
        .get_json(
            &format!("/v1/tasks/{}", line["task_id"].as_str().unwrap()),
            Some(&app.auth_token("teacher-1", Role::Teacher)),
        )
        .await;
    assert_eq!(task["attempts"], 1, "{task:#}");
}

/// `tutorq batch ...` against the test server, without blocking the runtime that serves it.
async fn tutorq_batch(app: &TestApp, args: &[&str]) -> std::process::Output {
    let run = tokio::process::Command::new(env!("CARGO_BIN_EXE_tutorq"))
        .arg("batch")
        .args(args)
        .args(["--server", &app.url("")])
        .env("TUTORQ_TOKEN", app.auth_token("teacher-1", Role::Teacher))
        .env_remove("TUTORQ_SERVER")
        .kill_on_drop(true)
        .output();
    tokio::time::timeout(Duration::from_secs(120), run)
        .await
        .expect("tutorq batch finished")
        .expect("tutorq batch ran")
}

#[tokio::test]
async fn the_cli_submits_a_file_follows_its_progress_and_writes_the_results() {
    let app = spawn_app_with_workers(|s| {
        s.providers.mock.latency_ms = tutorq::config::LatencySetting::Fixed(20);
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("items.jsonl");
    let lines: String = items(40).iter().map(|i| format!("{i}\n")).collect();
    std::fs::write(&file, lines).unwrap();
    let out = dir.path().join("out.jsonl");
    let submitted = tutorq_batch(
        &app,
        &[
            "submit",
            file.to_str().unwrap(),
            "--wait",
            "--concurrency",
            "4",
            "--output",
            out.to_str().unwrap(),
        ],
    )
    .await;
    let stderr = String::from_utf8_lossy(&submitted.stderr);
    assert!(submitted.status.success(), "{stderr}");
    assert!(stderr.contains("40 succeeded"), "{stderr}");
    let id = String::from_utf8_lossy(&submitted.stdout).trim().to_owned();
    let written = std::fs::read_to_string(&out).unwrap();
    assert_eq!(written.lines().count(), 40);
    let first: Value = serde_json::from_str(written.lines().next().unwrap()).unwrap();
    assert_eq!(
        (first["index"].as_u64(), first["status"].as_str()),
        (Some(0), Some("succeeded"))
    );

    let status = tutorq_batch(&app, &["status", &id]).await;
    assert!(status.status.success());
    let view: Value = serde_json::from_slice(&status.stdout).unwrap();
    assert_eq!(view["state"], "completed");
    let results = tutorq_batch(&app, &["results", &id]).await;
    assert_eq!(String::from_utf8_lossy(&results.stdout), written);

    // A refused batch: the problem's detail, and a failing exit.
    std::fs::write(&file, "{\"input\": {\"topic\": \"x\"}}\n").unwrap();
    let refused = tutorq_batch(&app, &["submit", file.to_str().unwrap()]).await;
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stderr.contains("422") && stderr.contains("indices 0"),
        "{stderr}"
    );
}

#[tokio::test]
async fn results_keep_item_order_when_the_refused_items_come_last() {
    let app = spawn_app_with_workers(|_| {}).await;
    let mut all = items(3);
    all[2] = json!({ "input": { "subject": "Matematik" } });
    let created: Value = accepted(
        &app,
        &json!({ "feature": "question_gen", "items": all, "allow_partial": true }),
    )
    .await;
    let id = created["id"].as_str().unwrap();
    wait_state(&app, id, &["completed_with_errors"]).await;
    let lines = results(&app, id).await;
    let order: Vec<(u64, &str)> = lines
        .iter()
        .map(|l| (l["index"].as_u64().unwrap(), l["status"].as_str().unwrap()))
        .collect();
    assert_eq!(
        order,
        [(0, "succeeded"), (1, "succeeded"), (2, "invalid")],
        "{lines:#?}"
    );
}
