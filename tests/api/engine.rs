//! The queue engine end to end: async submission, workers, retries to dead, replay, cancel,
//! idempotency, the inline/queue decision, and ownership of tasks.

use std::path::Path;

use serde_json::{Value, json};
use tutorq::auth::Role;
use tutorq::config::LatencySetting;

use crate::helpers::{
    TestApp, assert_problem, jobs_copy, sample_input, spawn_app_with, spawn_app_with_workers,
};

fn hint() -> Value {
    json!({ "input": sample_input("hint") })
}

async fn accepted_id(response: reqwest::Response) -> String {
    assert_eq!(response.status(), 202);
    let location = response.headers()["location"].to_str().unwrap().to_owned();
    let body: Value = response.json().await.unwrap();
    let id = body["task_id"].as_str().unwrap().to_owned();
    assert_eq!(location, format!("/v1/tasks/{id}"));
    assert!(
        body["status"] == "queued" || body["status"] == "running",
        "{body}"
    );
    assert_eq!(body["links"]["events"], format!("/v1/tasks/{id}/events"));
    id
}

/// Queues a hint for `user` and returns the task id.
async fn queue_hint(app: &TestApp, user: &str) -> String {
    let body = json!({ "input": sample_input("hint"), "mode": "async" });
    accepted_id(app.post_ai_as(user, "hint", &body, &[]).await).await
}

async fn wait_final(app: &TestApp, user: &str, id: &str) -> Value {
    let response = app.task_as(user, id, 20).await;
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

/// A copy of `jobs/` with short timings for tests.
fn fast_jobs(max_attempts: u32, visibility: &str) -> tempfile::TempDir {
    jobs_copy(|_, text| {
        text.replace("max_attempts: 3", &format!("max_attempts: {max_attempts}"))
            .replace(
                "visibility_timeout: 15s",
                &format!("visibility_timeout: {visibility}"),
            )
            .replace("initial: 1s", "initial: 200ms")
            .replace("jitter: true", "jitter: false")
    })
}

fn jobs_dir(dir: &Path) -> impl FnOnce(&mut tutorq::config::Settings) + '_ {
    move |s| s.jobs.dir = dir.to_path_buf()
}

#[tokio::test]
async fn an_async_request_is_queued_run_by_a_worker_and_recorded() {
    let app = spawn_app_with_workers(|_| {}).await;
    let id = accepted_id(
        app.post_ai_as(
            "u1",
            "question_gen",
            &json!({ "input": sample_input("question_gen"), "mode": "async" }),
            &[],
        )
        .await,
    )
    .await;
    // Polled without `?wait=` (a long-poll would subscribe to the task's events).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let task = loop {
        let task: Value = app.task_as("u1", &id, 0).await.json().await.unwrap();
        if task["finished_at"].is_string() {
            break task;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "never finished: {task}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    };
    assert_eq!(task["status"], "succeeded", "{task:#}");
    assert_eq!(task["attempts"], 1);
    assert!(
        task["worker"].as_str().unwrap().starts_with("ai_request@"),
        "{task}"
    );
    assert!(task["result"]["questions"].is_array(), "{task}");
    assert_eq!(task["provider"], "mock");
    for field in ["created_at", "started_at", "finished_at"] {
        assert!(
            task[field].as_str().is_some_and(|t| t.ends_with('Z')),
            "{field}: {task}"
        );
    }
    let names: Vec<String> = app
        .events(&id)
        .await
        .into_iter()
        .map(|(name, _)| name)
        .collect();
    assert_eq!(names, ["queued", "started", "succeeded"]);
    // Nobody subscribed to this task: its appends were not announced to event readers.
    let parts = app.partitions();
    let mut announced = 0;
    for p in parts.all() {
        announced += redis::cmd("XLEN")
            .arg(parts.announcements(p))
            .query_async::<usize>(&mut app.redis().await)
            .await
            .unwrap();
    }
    assert_eq!(announced, 0);

    // The history row lands in PostgreSQL off the job path.
    let pool = sqlx::PgPool::connect(app.settings.database.url.expose())
        .await
        .unwrap();
    let mut found = None;
    for _ in 0..100 {
        found = sqlx::query_as::<_, (String, String, i32)>(
            "SELECT state, feature, attempts FROM task_history WHERE id = $1::uuid",
        )
        .bind(&id)
        .fetch_optional(&pool)
        .await
        .unwrap();
        if found.is_some() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(
        found,
        Some(("succeeded".to_owned(), "question_gen".to_owned(), 1))
    );
}

#[tokio::test]
async fn prefer_respond_async_and_the_mode_query_queue_too() {
    let app = spawn_app_with(|_| {}).await;
    accepted_id(
        app.post_ai_as("u1", "hint", &hint(), &[("prefer", "respond-async")])
            .await,
    )
    .await;
    let response = app
        .client
        .post(app.url("/v1/ai/hint?mode=async"))
        .bearer_auth(app.token(Role::Student))
        .json(&hint())
        .send()
        .await
        .unwrap();
    accepted_id(response).await;
    let response = app
        .client
        .post(app.url("/v1/ai/hint?mode=later"))
        .bearer_auth(app.token(Role::Student))
        .json(&hint())
        .send()
        .await
        .unwrap();
    assert_problem(response, 422, "invalid-input").await;
}

#[tokio::test]
async fn another_users_task_is_not_found() {
    let app = spawn_app_with(|_| {}).await;
    let id = queue_hint(&app, "alice").await;
    assert_eq!(app.task_as("alice", &id, 0).await.status(), 200);
    assert_problem(app.task_as("mallory", &id, 0).await, 404, "not-found").await;
    let token = app
        .auth
        .mint("mallory", Role::Student, std::time::Duration::from_secs(60));
    let response = app
        .client
        .delete(app.url(&format!("/v1/tasks/{id}")))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_problem(response, 404, "not-found").await;
    assert_problem(
        app.task_as("alice", "no-such-task", 0).await,
        404,
        "not-found",
    )
    .await;
}

#[tokio::test]
async fn a_job_that_keeps_failing_runs_max_attempts_times_with_growing_delays_then_is_dead_and_can_be_replayed()
 {
    let jobs = fast_jobs(3, "15s");
    let app = spawn_app_with_workers(|s| {
        s.jobs.dir = jobs.path().to_path_buf();
        s.providers.mock.failure_rate = 1.0;
    })
    .await;
    let id = queue_hint(&app, "u1").await;
    let task = wait_final(&app, "u1", &id).await;
    assert_eq!(task["status"], "dead", "{task:#}");
    assert_eq!(task["attempts"], 3);
    assert_eq!(task["error"]["kind"], "provider_error", "{task}");

    let events = app.events(&id).await;
    let names: Vec<&str> = events.iter().map(|(name, _)| name.as_str()).collect();
    assert_eq!(
        names,
        [
            "queued", "started", "retrying", "queued", "started", "retrying", "queued", "started",
            "dead"
        ]
    );
    let delays: Vec<u64> = events
        .iter()
        .filter(|(n, _)| n == "retrying")
        .map(|(_, d)| d["retry_in_ms"].as_u64().unwrap())
        .collect();
    assert_eq!(
        delays,
        [200, 400],
        "exponential backoff from jobs/ai_request.yaml"
    );
    let started_at: Vec<i64> = events
        .iter()
        .filter(|(n, _)| n == "started")
        .map(|(_, d)| d["at_us"].as_i64().unwrap())
        .collect();
    let gaps: Vec<i64> = started_at.windows(2).map(|w| w[1] - w[0]).collect();
    assert!(
        gaps[0] >= 200_000 && gaps[1] >= 400_000 && gaps[1] > gaps[0],
        "gaps between attempts grow: {gaps:?}"
    );

    let admin = app.token(Role::Admin);
    let dead: Value = app
        .client
        .get(app.url("/v1/admin/dead"))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(dead["tasks"][0]["task_id"], id.as_str());
    let response = app
        .client
        .post(app.url(&format!("/v1/admin/dead/{id}/retry")))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 202);
    let replayed: Value = response.json().await.unwrap();
    // A worker may have taken it already; either way its attempts start again from zero.
    assert!(
        replayed["status"] == "queued" || replayed["status"] == "running",
        "{replayed}"
    );
    assert!(replayed["attempts"].as_u64().unwrap() <= 1, "{replayed}");
    let task = wait_final(&app, "u1", &id).await;
    assert_eq!(task["status"], "dead");
    assert_eq!(
        app.events(&id)
            .await
            .iter()
            .filter(|(n, _)| n == "started")
            .count(),
        6,
        "replayed for 3 more attempts"
    );
    let response = app
        .client
        .post(app.url(&format!("/v1/admin/dead/{id}/retry")))
        .bearer_auth(app.token(Role::Student))
        .send()
        .await
        .unwrap();
    assert_problem(response, 403, "forbidden").await;
}

#[tokio::test]
async fn a_queued_task_cancelled_never_runs() {
    let app = spawn_app_with(|_| {}).await;
    let id = queue_hint(&app, "u1").await;
    let token = app
        .auth
        .mint("u1", Role::Student, std::time::Duration::from_secs(60));
    let cancelled: Value = app
        .client
        .delete(app.url(&format!("/v1/tasks/{id}")))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(cancelled["status"], "cancelled");
    let again = app
        .client
        .delete(app.url(&format!("/v1/tasks/{id}")))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_problem(again, 409, "task-final").await;

    // Start a worker on the same stores: it takes the entry, sees the task is final, skips it.
    let service = tutorq::app::AppState::build(app.settings.clone())
        .await
        .unwrap()
        .service
        .clone();
    tokio::spawn(tutorq::service::workers::run(
        service,
        vec![],
        tutorq::shutdown::Shutdown::never(),
        std::time::Duration::from_secs(1),
    ));
    let second = queue_hint(&app, "u1").await;
    assert_eq!(wait_final(&app, "u1", &second).await["status"], "succeeded");
    let names: Vec<String> = app.events(&id).await.into_iter().map(|(n, _)| n).collect();
    assert_eq!(names, ["queued", "cancelled"]);
}

#[tokio::test]
async fn a_running_task_is_cancelled_cooperatively() {
    let app =
        spawn_app_with_workers(|s| s.providers.mock.latency_ms = LatencySetting::Fixed(3_000))
            .await;
    let id = queue_hint(&app, "u1").await;
    for _ in 0..100 {
        if app.events(&id).await.iter().any(|(n, _)| n == "started") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let token = app
        .auth
        .mint("u1", Role::Student, std::time::Duration::from_secs(60));
    let cancelled: Value = app
        .client
        .delete(app.url(&format!("/v1/tasks/{id}")))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(cancelled["status"], "cancelled");
    // The provider call is aborted: the worker records its end (ignored) well before the 3 s
    // latency, and the task stays cancelled.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let task: Value = app.task_as("u1", &id, 0).await.json().await.unwrap();
    assert_eq!(task["status"], "cancelled");
    assert!(task.get("result").is_none(), "{task}");
    let names: Vec<String> = app.events(&id).await.into_iter().map(|(n, _)| n).collect();
    assert_eq!(names, ["queued", "started", "cancelled"]);
}

#[tokio::test]
async fn idempotency_keys_return_the_same_task_and_refuse_a_different_body() {
    let app = spawn_app_with(|_| {}).await;
    let body = json!({ "input": sample_input("hint"), "mode": "async" });
    let first = accepted_id(
        app.post_ai_as("u1", "hint", &body, &[("idempotency-key", "k-1")])
            .await,
    )
    .await;
    let again = accepted_id(
        app.post_ai_as("u1", "hint", &body, &[("idempotency-key", "k-1")])
            .await,
    )
    .await;
    assert_eq!(first, again);
    // Another user may use the same key for their own request.
    let theirs = accepted_id(
        app.post_ai_as("u2", "hint", &body, &[("idempotency-key", "k-1")])
            .await,
    )
    .await;
    assert_ne!(first, theirs);
    let mut other = body.clone();
    other["input"]["hint_level"] = json!(3);
    assert_problem(
        app.post_ai_as("u1", "hint", &other, &[("idempotency-key", "k-1")])
            .await,
        422,
        "idempotency-key-reused",
    )
    .await;
}

#[tokio::test]
async fn auto_mode_answers_fast_features_inline_and_queues_slow_ones() {
    let app = spawn_app_with_workers(|s| {
        s.intake.sync_threshold_ms = 1_000;
        s.intake.features.insert(
            "study_plan".into(),
            tutorq::config::FeatureIntake {
                sync_threshold_ms: None,
                expected_latency_ms: Some(5_000),
            },
        );
    })
    .await;
    let inline = app.post_ai_as("u1", "hint", &hint(), &[]).await;
    assert_eq!(inline.status(), 200);
    let body: Value = inline.json().await.unwrap();
    assert_eq!(body["status"], "succeeded");
    // Inline runs are tasks too: readable afterwards, run once, by no worker.
    let task = wait_final(&app, "u1", body["task_id"].as_str().unwrap()).await;
    assert_eq!(task["status"], "succeeded");
    assert_eq!(task["worker"], Value::Null);

    let queued = app
        .post_ai_as(
            "u1",
            "study_plan",
            &json!({ "input": sample_input("study_plan") }),
            &[],
        )
        .await;
    let id = accepted_id(queued).await;
    let task = wait_final(&app, "u1", &id).await;
    assert_eq!(task["status"], "succeeded");
    assert!(task["worker"].is_string());
}

#[tokio::test]
async fn an_inline_run_that_overruns_answers_202_completes_once_and_teaches_the_estimate() {
    let app = spawn_app_with_workers(|s| {
        s.intake.sync_threshold_ms = 150;
        s.intake.expected_latency_ms = 10;
        s.providers.mock.latency_ms = LatencySetting::Fixed(600);
    })
    .await;
    let id = accepted_id(app.post_ai_as("u1", "hint", &hint(), &[]).await).await;
    let task = wait_final(&app, "u1", &id).await;
    assert_eq!(task["status"], "succeeded");
    assert_eq!(task["attempts"], 1);
    assert_eq!(
        task["worker"],
        Value::Null,
        "finished by the inline run, not re-run by a worker"
    );
    let names: Vec<String> = app.events(&id).await.into_iter().map(|(n, _)| n).collect();
    assert_eq!(names, ["queued", "started", "succeeded"]);

    // The learned latency (about 600 ms) is now over the threshold: the next one is queued.
    // Samples reach Redis a tenth of a second after the run ends.
    let mut conn = app.redis().await;
    let mut learned = None;
    for _ in 0..100 {
        learned = redis::cmd("HGET")
            .arg(tutorq::tasks::keys::latency("hint"))
            .arg("ewma_ms")
            .query_async::<Option<String>>(&mut conn)
            .await
            .unwrap();
        if learned.is_some() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let learned = learned.expect("the run's latency reaches Redis");
    assert!(learned.parse::<f64>().unwrap() > 150.0, "{learned}");
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await; // the 1 s estimate cache
    let id = accepted_id(app.post_ai_as("u1", "hint", &hint(), &[]).await).await;
    let task = wait_final(&app, "u1", &id).await;
    assert!(task["worker"].is_string(), "queued straight away: {task}");
}

#[tokio::test]
async fn the_task_list_filters_and_pages() {
    let app = spawn_app_with_workers(|_| {}).await;
    let mut ids = Vec::new();
    for _ in 0..5 {
        ids.push(queue_hint(&app, "lister").await);
    }
    for id in &ids {
        wait_final(&app, "lister", id).await;
    }
    let token = app
        .auth
        .mint("lister", Role::Student, std::time::Duration::from_secs(60));
    let page: Value = app
        .client
        .get(app.url("/v1/tasks?limit=3&state=succeeded"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let first: Vec<&str> = page["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["task_id"].as_str().unwrap())
        .collect();
    assert_eq!(
        first,
        [ids[4].as_str(), ids[3].as_str(), ids[2].as_str()],
        "newest first"
    );
    let cursor = page["next_cursor"].as_str().unwrap();
    let page: Value = app
        .client
        .get(app.url(&format!("/v1/tasks?limit=3&cursor={cursor}")))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let second: Vec<&str> = page["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["task_id"].as_str().unwrap())
        .collect();
    assert_eq!(second, [ids[1].as_str(), ids[0].as_str()]);
    assert!(page["next_cursor"].is_null());
    let none: Value = app
        .client
        .get(app.url("/v1/tasks?feature=evaluation"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(none["tasks"], json!([]));
    let bad = app
        .client
        .get(app.url("/v1/tasks?state=sleeping"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_problem(bad, 422, "invalid-input").await;
}

#[tokio::test]
async fn with_redis_down_the_api_answers_503_fast() {
    let dead_port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let app = spawn_app_with(|s| {
        s.redis.cluster.clear();
        s.redis.url = tutorq::config::Secret::new(format!("redis://127.0.0.1:{dead_port}/0"))
    })
    .await;
    let body = json!({ "input": sample_input("hint"), "mode": "async" });
    assert_problem(
        app.post_ai_as("u1", "hint", &body, &[]).await,
        503,
        "store-unavailable",
    )
    .await;
    let _ = jobs_dir;
}

/// A job run directly, without a worker: its result, and what its errors tell the queue.
#[tokio::test]
async fn the_ai_request_job_runs_without_a_worker() {
    use apalis::prelude::{AbortError, RetryAfterError};
    use tutorq::service::job::AiRequestJob;

    let job = |input: Value| AiRequestJob {
        task_id: uuid::Uuid::now_v7().to_string(),
        feature: tutorq::feature::Feature::Evaluation,
        prompt_version: "1.0".into(),
        input: input.as_object().unwrap().clone(),
        user_id: "u1".into(),
        role: tutorq::auth::Role::Student,
        request_id: "r1".into(),
        stream: false,
        tenant: None,
    };
    let settings = crate::helpers::test_settings().await;
    let service = tutorq::app::AppState::build(settings.clone())
        .await
        .unwrap()
        .service
        .clone();
    let outcome = service
        .run_job(
            job(sample_input("evaluation")),
            tutorq::providers::Class::Interactive,
        )
        .await
        .unwrap();
    let payload = serde_json::to_value(&outcome).unwrap();
    assert!(payload["result"]["score"].is_u64(), "{payload}");
    assert_eq!(payload["prompt"]["name"], "answer_evaluation");

    // An input that no longer validates cannot get better by retrying: give up.
    let error = service
        .run_job(
            job(json!({ "question": "kısa" })),
            tutorq::providers::Class::Interactive,
        )
        .await
        .unwrap_err();
    assert!(error.downcast_ref::<AbortError>().is_some(), "{error}");

    // A failing provider is transient: retry with backoff (a plain error, neither abort nor retry-after).
    let mut failing = settings;
    failing.providers.mock.failure_rate = 1.0;
    let service = tutorq::app::AppState::build(failing)
        .await
        .unwrap()
        .service
        .clone();
    let error = service
        .run_job(
            job(sample_input("evaluation")),
            tutorq::providers::Class::Interactive,
        )
        .await
        .unwrap_err();
    assert!(
        error.downcast_ref::<AbortError>().is_none()
            && error.downcast_ref::<RetryAfterError>().is_none(),
        "{error}"
    );
}
