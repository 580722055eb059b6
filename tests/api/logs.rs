//! Log lines carry their context: a request's its `request_id`, a queued job's its `task_id`
//! and the `request_id` of the request that queued it. Captured in the production (JSON) format
//! from a `tutorq all` process of its own, as an operator's log shipper would read them (a
//! subscriber inside the test binary would share tracing's process-wide callsite cache with
//! every other test running at the same time).

use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::helpers::{sample_input, test_settings, tutorq_command};

/// A `tutorq all` process writing JSON log lines to a file; killed when dropped.
struct Process {
    child: Child,
    log: std::path::PathBuf,
    _dir: tempfile::TempDir,
    base: String,
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Process {
    fn lines(&self) -> Vec<Value> {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .map(|line| serde_json::from_str(line).expect("every line is one JSON object"))
            .collect()
    }

    /// The first line with `message` whose spans hold every `(field, value)`, waiting up to 20 s.
    async fn wait_for(&self, message: &str, fields: &[(&str, &str)]) -> Value {
        let started = Instant::now();
        loop {
            let found = self.lines().into_iter().find(|line| {
                line["message"] == message
                    && fields.iter().all(|(field, value)| {
                        line["spans"]
                            .as_array()
                            .is_some_and(|spans| spans.iter().any(|s| s[*field] == *value))
                    })
            });
            if let Some(line) = found {
                return line;
            }
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "no `{message}` line with {fields:?} in:\n{:#?}",
                self.lines()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

#[tokio::test]
async fn request_and_job_log_lines_carry_their_ids() {
    let settings = test_settings().await;
    let port = crate::servers::free_port();
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("tutorq.log");
    let child = tutorq_command(&settings, &["all"])
        .env("TUTORQ__SERVER__PORT", port.to_string())
        .env("TUTORQ__LOG__FORMAT", "json")
        .env("RUST_LOG", "warn,tutorq::api::request_context=info")
        // Every provider call fails, and each failure is logged where it happens.
        .env("TUTORQ__PROVIDERS__MOCK__FAILURE_RATE", "1.0")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .expect("start tutorq all");
    let process = Process {
        child,
        log,
        _dir: dir,
        base: format!("http://127.0.0.1:{port}"),
    };
    let client = reqwest::Client::new();
    let started = Instant::now();
    while !client
        .get(format!("{}/readyz", process.base))
        .send()
        .await
        .is_ok_and(|r| r.status().is_success())
    {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "tutorq all never got ready"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let token = tutorq::auth::Authenticator::new(&settings.auth).mint(
        "u-logs",
        tutorq::auth::Role::Student,
        Duration::from_secs(600),
    );
    let post = |mode: &'static str, request_id: String| {
        client
            .post(format!("{}/v1/ai/hint", process.base))
            .bearer_auth(&token)
            .header("x-request-id", request_id)
            .json(&json!({ "input": sample_input("hint"), "mode": mode }))
            .send()
    };
    let suffix = uuid::Uuid::now_v7().simple().to_string();

    let inline_id = format!("logs-inline-{suffix}");
    let response = post("sync", inline_id.clone()).await.unwrap();
    assert_eq!(response.status(), 503);
    // The request span is recorded under any level (it is an ERROR-level span).
    let line = process
        .wait_for("request finished", &[("request_id", inline_id.as_str())])
        .await;
    assert_eq!(line["status"], 503);

    let queued_id = format!("logs-queued-{suffix}");
    let response = post("async", queued_id.clone()).await.unwrap();
    assert_eq!(response.status(), 202);
    let task: Value = response.json().await.unwrap();
    let task_id = task["task_id"].as_str().unwrap();
    let line = process
        .wait_for(
            "provider call failed",
            &[("task_id", task_id), ("request_id", queued_id.as_str())],
        )
        .await;
    // The worker's span: kind and attempt next to both ids.
    let job = line["spans"]
        .as_array()
        .unwrap()
        .iter()
        .find(|span| span["name"] == "job" && span["kind"] == "ai_request")
        .unwrap_or_else(|| panic!("no job span in {line:#}"));
    assert_eq!(job["task_id"], task_id);
    assert_eq!(job["request_id"], queued_id.as_str());
    assert_eq!(job["attempt"], 1);
}
