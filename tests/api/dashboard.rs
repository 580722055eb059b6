//! The operations dashboard: its admin data routes (snapshot, live stream, any user's task) and
//! the page itself in headless Chromium (tests/browser/dashboard.mjs) with the network blocked
//! except for the app: log in, see a task submitted meanwhile, replay a dead task and unblock a
//! user by clicking, switch language, and leave a screenshot.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::time::{Instant, timeout};
use tutorq::auth::Role;
use tutorq::config::Settings;

use crate::helpers::{
    TestApp, assert_problem, jobs_copy, repo_path, spawn_app_with, spawn_app_with_workers,
};

/// Chromium's start, the page's checks (each waits up to 30 s) and the screenshot.
const RUN_LIMIT: Duration = Duration::from_secs(180);

async fn wait_final(app: &TestApp, user: &str, id: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let task: Value = app.task_as(user, id, 10).await.json().await.unwrap();
        let state = task["status"].as_str().unwrap_or_default().to_owned();
        if ["succeeded", "failed", "cancelled", "dead"].contains(&state.as_str()) {
            return task;
        }
        assert!(Instant::now() < deadline, "{id} never finished: {task:#}");
    }
}

/// `jobs/` with one attempt per task, so a failing task is dead at once.
fn single_attempt_jobs() -> tempfile::TempDir {
    jobs_copy(|_, text| text.replace("max_attempts: 3", "max_attempts: 1"))
}

/// Evaluations go to an OpenAI-compatible server that is not there (connection refused, a
/// transient failure): with one attempt they end dead. Every other feature uses the mock.
fn evaluations_fail(settings: &mut Settings, jobs: &tempfile::TempDir) {
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    settings.jobs.dir = jobs.path().to_path_buf();
    settings
        .providers
        .chains
        .insert("evaluation".into(), vec!["openai".into()]);
    settings.providers.openai.base_url = format!("http://127.0.0.1:{closed}/v1");
}

async fn admin_get(app: &TestApp, path: &str) -> Value {
    let response = app
        .client
        .get(app.url(path))
        .bearer_auth(app.auth_token("ops-admin", Role::Admin))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "{path}");
    response.json().await.unwrap()
}

fn find<'a>(rows: &'a Value, key: &str, value: &str) -> Option<&'a Value> {
    rows.as_array()?.iter().find(|row| row[key] == value)
}

#[tokio::test]
async fn a_non_admin_gets_403_problem_json_from_the_dashboard_routes() {
    let app = spawn_app_with(|_| {}).await;
    let id = uuid::Uuid::now_v7().to_string();
    let task_route = format!("/v1/admin/tasks/{id}");
    for path in [
        "/v1/admin/dashboard",
        "/v1/admin/dashboard/events",
        &task_route,
    ] {
        for role in [Role::Student, Role::Teacher, Role::Service] {
            let response = app
                .client
                .get(app.url(path))
                .bearer_auth(app.token(role))
                .send()
                .await
                .unwrap();
            let problem = assert_problem(response, 403, "forbidden").await;
            assert!(
                problem["detail"].as_str().unwrap().contains("admin"),
                "{path}: {problem:#}"
            );
        }
        let response = app.client.get(app.url(path)).send().await.unwrap();
        assert_problem(response, 401, "unauthorized").await;
    }
    // The page itself is public (it holds no data) and asks for a token.
    let page = app.client.get(app.url("/dashboard")).send().await.unwrap();
    assert_eq!(page.status(), 200);
}

#[tokio::test]
async fn the_dashboard_page_and_its_assets_are_embedded_and_name_no_other_origin() {
    let app = spawn_app_with(|_| {}).await;
    for (path, media_type) in [
        ("/dashboard", "text/html"),
        ("/dashboard/dashboard.js", "text/javascript"),
        ("/dashboard/dashboard.css", "text/css"),
    ] {
        let response = app.client.get(app.url(path)).send().await.unwrap();
        assert_eq!(response.status(), 200, "{path}");
        let headers = response.headers().clone();
        assert!(
            headers["content-type"]
                .to_str()
                .unwrap()
                .starts_with(media_type),
            "{path}: {headers:?}"
        );
        let csp = headers["content-security-policy"].to_str().unwrap();
        assert!(
            csp.contains("default-src 'none'") && csp.contains("connect-src 'self'"),
            "{csp}"
        );
        let body = response.text().await.unwrap();
        assert!(
            !body.contains("http://") && !body.contains("https://") && !body.contains("//cdn"),
            "{path} names another origin"
        );
    }
    let page = app
        .client
        .get(app.url("/dashboard"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains(r#"src="/dashboard/dashboard.js""#));
    assert!(page.contains(r#"href="/dashboard/dashboard.css""#));
}

#[tokio::test]
async fn the_snapshot_shows_queues_workers_recent_and_dead_tasks_providers_usage_and_blocks() {
    let jobs = single_attempt_jobs();
    let app = spawn_app_with_workers(|s| {
        evaluations_fail(s, &jobs);
        s.limits.abuse.violations = 1;
    })
    .await;
    let done = app.queue("alice", "hint").await;
    let dead = app.queue("bob", "evaluation").await;
    assert_eq!(
        wait_final(&app, "alice", &done).await["status"],
        "succeeded"
    );
    assert_eq!(wait_final(&app, "bob", &dead).await["status"], "dead");
    // One invalid request blocks mallory (violations: 1).
    let bad = json!({ "input": { "subject": "Matematik" } });
    assert_eq!(
        app.post_ai_as("mallory", "hint", &bad, &[]).await.status(),
        422
    );

    // Finished tasks come from task_history (written in batches) and usage from the audit trail
    // (also batched): wait until both show.
    let deadline = Instant::now() + Duration::from_secs(20);
    let snapshot = loop {
        let snapshot = admin_get(&app, "/v1/admin/dashboard").await;
        let history_has_both = ["alice", "bob"]
            .iter()
            .all(|user| find(&snapshot["recent"], "user_id", user).is_some());
        let usage_has_both = snapshot["usage_today"]["users"]
            .as_array()
            .is_some_and(|users| users.len() >= 2);
        if history_has_both && usage_has_both {
            break snapshot;
        }
        assert!(Instant::now() < deadline, "{snapshot:#}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(snapshot["errors"], json!({}), "{snapshot:#}");

    let ai = find(&snapshot["queues"], "kind", "ai_request").expect("the ai_request queue");
    assert_eq!(ai["depth"], 0, "{ai:#}");
    assert_eq!(ai["in_flight"], 0);
    assert_eq!(
        ai["finished_total"], 2,
        "two attempts ran and left the stream"
    );
    assert_eq!(
        ai["finished_per_sec"],
        Value::Null,
        "one snapshot has no rate"
    );
    assert_eq!(ai["workers_total"], 1, "{ai:#}");
    assert_eq!(ai["workers_active"], 1, "{ai:#}");
    assert_eq!(snapshot["dead_total"], 1);
    // The worker that ran both: it holds nothing now, and its pool's heartbeat says it runs.
    let workers = snapshot["workers"].as_array().unwrap();
    let ai_worker = workers
        .iter()
        .find(|w| w["kind"] == "ai_request")
        .unwrap_or_else(|| panic!("{workers:#?}"));
    assert_eq!(ai_worker["pending"], 0);
    assert_eq!(ai_worker["status"], "waiting", "{ai_worker:#}");
    // A pool that never took a job shows too: its heartbeat is all there is of it.
    let batch_worker = workers
        .iter()
        .find(|w| w["kind"] == "batch_item")
        .unwrap_or_else(|| panic!("{workers:#?}"));
    assert_eq!(batch_worker["status"], "waiting", "{batch_worker:#}");
    assert!(
        ai_worker["name"]
            .as_str()
            .unwrap()
            .starts_with("ai_request@")
    );
    assert!(ai_worker["idle_ms"].as_u64().unwrap() < 60_000);

    let row = find(&snapshot["recent"], "task_id", &done).expect("the hint in recent");
    assert_eq!(row["state"], "succeeded");
    assert_eq!(row["user_id"], "alice");
    assert_eq!(row["feature"], "hint");
    assert!(row["duration_ms"].is_u64(), "{row:#}");
    let row = find(&snapshot["dead"], "task_id", &dead).expect("the dead task");
    assert_eq!(row["user_id"], "bob");
    assert!(
        row["error"].as_str().unwrap().starts_with("provider_"),
        "{row:#}"
    );

    let openai = find(&snapshot["providers"], "name", "openai").expect("openai");
    assert_eq!(openai["calls"], 1, "{openai:#}");
    let usage = &snapshot["usage_today"];
    assert!(usage["since"].as_str().unwrap().contains("T00:00:00+"));
    assert_eq!(usage["timezone"], "Europe/Istanbul");
    let hint = find(&usage["features"], "group", "hint").expect("hint usage");
    assert!(hint["requests"].as_u64().unwrap() >= 1, "{usage:#}");
    assert!(
        find(&usage["users"], "group", "alice").is_some(),
        "{usage:#}"
    );
    assert_eq!(snapshot["blocks"][0]["user_id"], "mallory", "{snapshot:#}");
}

/// Reads SSE frames from `response` until `count` events named `snapshot` came, or `limit`.
async fn snapshots(mut response: reqwest::Response, count: usize, limit: Duration) -> Vec<Value> {
    let deadline = Instant::now() + limit;
    let mut text = String::new();
    let mut found = Vec::new();
    while found.len() < count {
        let chunk = tokio::time::timeout_at(deadline, response.chunk())
            .await
            .unwrap_or_else(|_| panic!("only {} snapshots within {limit:?}", found.len()))
            .unwrap()
            .expect("the stream stays open");
        text.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(end) = text.find("\n\n") {
            let frame: String = text.drain(..end + 2).collect();
            if frame.lines().any(|line| line == "event: snapshot") {
                let data: String = frame
                    .lines()
                    .filter_map(|line| line.strip_prefix("data: "))
                    .collect();
                found.push(serde_json::from_str(&data).unwrap());
            }
        }
    }
    found
}

#[tokio::test]
async fn the_live_stream_sends_a_snapshot_every_second_with_throughput() {
    let app = spawn_app_with_workers(|_| {}).await;
    let response = app
        .client
        .get(app.url("/v1/admin/dashboard/events"))
        .bearer_auth(app.auth_token("ops-admin", Role::Admin))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    let id = app.queue("alice", "hint").await;
    wait_final(&app, "alice", &id).await;
    let found = snapshots(response, 3, Duration::from_secs(20)).await;
    let ai = |snapshot: &Value| {
        find(&snapshot["queues"], "kind", "ai_request")
            .unwrap()
            .clone()
    };
    assert_eq!(
        ai(&found[0])["finished_per_sec"],
        Value::Null,
        "the first has no rate"
    );
    let rate = ai(&found[2])["finished_per_sec"]
        .as_f64()
        .unwrap_or_else(|| panic!("{:#}", found[2]));
    assert!(rate >= 0.0);
    let times: Vec<jiff::Timestamp> = found
        .iter()
        .map(|s| s["at"].as_str().unwrap().parse().unwrap())
        .collect();
    assert!(times.windows(2).all(|pair| pair[0] < pair[1]), "{times:?}");
}

#[tokio::test]
async fn an_admin_reads_any_users_task_with_its_events() {
    let app = spawn_app_with_workers(|_| {}).await;
    let id = app.queue("alice", "hint").await;
    wait_final(&app, "alice", &id).await;
    let detail = admin_get(&app, &format!("/v1/admin/tasks/{id}")).await;
    assert_eq!(detail["source"], "redis");
    assert_eq!(detail["task"]["task_id"], id.as_str());
    assert_eq!(detail["task"]["user_id"], "alice");
    assert_eq!(detail["task"]["status"], "succeeded");
    let names: Vec<&str> = detail["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["event"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["queued", "started", "succeeded"], "{detail:#}");
    assert!(detail["events"][0]["data"]["at_us"].is_i64());

    // Once the record has expired from Redis, the history row answers (without events).
    let mut redis = app.redis().await;
    let _: () = redis::cmd("DEL")
        .arg(app.partitions().task(&id))
        .arg(app.partitions().events(&id))
        .query_async(&mut redis)
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let detail = loop {
        let response = app
            .client
            .get(app.url(&format!("/v1/admin/tasks/{id}")))
            .bearer_auth(app.auth_token("ops-admin", Role::Admin))
            .send()
            .await
            .unwrap();
        if response.status() == 200 {
            break response.json::<Value>().await.unwrap();
        }
        assert_problem(response, 404, "not-found").await;
        assert!(Instant::now() < deadline, "the history row never came");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(detail["source"], "history");
    assert_eq!(detail["task"]["state"], "succeeded");
    assert_eq!(detail["events"], json!([]));

    let response = app
        .client
        .get(app.url("/v1/admin/tasks/not-a-task"))
        .bearer_auth(app.auth_token("ops-admin", Role::Admin))
        .send()
        .await
        .unwrap();
    assert_problem(response, 404, "not-found").await;
}

// ---------------------------------------------------------------------------------------------
// The page in Chromium.

/// Fails with what to do when the browser tooling is not installed.
async fn require_tooling() {
    let node = tokio::process::Command::new("node")
        .arg("--version")
        .stdout(Stdio::null())
        .status()
        .await
        .is_ok_and(|status| status.success());
    assert!(node, "`node` is not installed: run script/bootstrap");
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".to_owned());
    assert!(
        std::path::Path::new(&chromium).exists(),
        "{chromium} is missing: run script/bootstrap (it installs Debian's chromium)"
    );
    assert!(
        repo_path("tests/browser/node_modules/playwright-core").is_dir(),
        "tests/browser/node_modules is missing: run script/bootstrap"
    );
}

/// `target/test-output/`, next to Cargo's own test scratch folder.
fn output_dir() -> PathBuf {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .expect("the target dir")
        .join("test-output");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[tokio::test]
async fn chromium_dashboard_shows_a_live_task_replays_a_dead_one_and_unblocks_a_user() {
    require_tooling().await;
    let jobs = single_attempt_jobs();
    let app = spawn_app_with_workers(|s| {
        evaluations_fail(s, &jobs);
        s.limits.abuse.violations = 1;
        // The mock books capacity: the page shows its row.
        s.providers.mock.rpm = 60_000;
    })
    .await;
    // Before the page opens: a dead task, an earlier finished task, a blocked user.
    let dead = app.queue("student-dead", "evaluation").await;
    assert_eq!(
        wait_final(&app, "student-dead", &dead).await["status"],
        "dead"
    );
    let earlier = app.queue("student-early", "explanation").await;
    wait_final(&app, "student-early", &earlier).await;
    let bad = json!({ "input": { "subject": "Matematik" } });
    assert_eq!(
        app.post_ai_as("student-blocked", "hint", &bad, &[])
            .await
            .status(),
        422
    );
    let blocks = admin_get(&app, "/v1/admin/blocks").await;
    assert_eq!(blocks["blocks"][0]["user_id"], "student-blocked");

    let screenshot = output_dir().join("dashboard.png");
    let _ = std::fs::remove_file(&screenshot);
    let mut child = tokio::process::Command::new("node")
        .arg(repo_path("tests/browser/dashboard.mjs"))
        .args(["--base", &app.address])
        .args(["--admin-token", &app.auth_token("ops-admin", Role::Admin)])
        .args([
            "--student-token",
            &app.auth_token("student-x", Role::Student),
        ])
        .args(["--dead-task", &dead, "--blocked-user", "student-blocked"])
        .arg("--screenshot")
        .arg(&screenshot)
        .current_dir(repo_path(""))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("node starts");
    let mut stdin = child.stdin.take().unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut stderr = child.stderr.take().unwrap();
    let stderr = tokio::spawn(async move {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text).await;
        text
    });

    // The page is logged in and live: now submit a task and tell the page its id.
    let mut output = Vec::new();
    let mut live_task = None;
    let run = async {
        while let Some(line) = lines.next_line().await.expect("node's stdout") {
            let message: Option<Value> = serde_json::from_str(&line).ok();
            output.push(line);
            if message.as_ref().is_some_and(|m| m["step"] == "ready") {
                let id = app.queue("student-live", "hint").await;
                stdin
                    .write_all(format!("{}\n", json!({ "task_id": id })).as_bytes())
                    .await
                    .unwrap();
                stdin.flush().await.unwrap();
                live_task = Some(id);
            }
        }
        child.wait().await.expect("node ends")
    };
    let status = timeout(RUN_LIMIT, run)
        .await
        .unwrap_or_else(|_| panic!("the browser run took over {RUN_LIMIT:?}"));
    let stderr = stderr.await.unwrap();
    let report: Value = output
        .iter()
        .rev()
        .find_map(|line| {
            serde_json::from_str::<Value>(line)
                .ok()
                .filter(|v| v.get("ok").is_some())
        })
        .unwrap_or_else(|| {
            panic!("no report from dashboard.mjs ({status}):\n{output:#?}\n{stderr}")
        });
    println!("{report:#}");
    assert!(
        status.success() && report["ok"] == true,
        "the dashboard checks failed ({status}): {:#}\nstderr:\n{stderr}",
        report["failures"]
    );

    // The page showed the task submitted while it was open, and its events.
    let live_task = live_task.expect("the page said it was ready");
    assert_eq!(report["live_task"]["task_id"], live_task.as_str());
    assert_eq!(report["live_task"]["final_state"], "succeeded");
    assert_eq!(
        report["live_task"]["events"],
        json!(["queued", "started", "succeeded"])
    );
    assert_eq!(report["requests"]["failed"], json!([]));
    assert_eq!(report["requests"]["blocked"], json!([]));
    assert_eq!(report["console_errors"], json!([]));

    // The click re-queued the dead task: a `queued` event marked `replayed` after `dead`, then
    // a second attempt (which fails the same way).
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let events = app.events(&dead).await;
        let names: Vec<&str> = events.iter().map(|(name, _)| name.as_str()).collect();
        let replayed = events
            .iter()
            .skip_while(|(name, _)| name != "dead")
            .any(|(name, data)| name == "queued" && data["replayed"] == true);
        if replayed && names.iter().filter(|n| **n == "started").count() == 2 {
            break;
        }
        assert!(Instant::now() < deadline, "not replayed: {names:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The other click lifted the block.
    let blocks = admin_get(&app, "/v1/admin/blocks").await;
    assert_eq!(blocks["blocks"], json!([]));

    let png = std::fs::read(&screenshot).expect("the screenshot was written");
    assert!(png.starts_with(b"\x89PNG"), "a PNG");
    println!("dashboard screenshot: {}", screenshot.display());
}
