//! A real browser: headless Chromium (Debian's, driven by playwright-core from
//! tests/browser/run.mjs) opens the demo page `/demo/events` and checks that
//! 1. an `EventSource` receives `queued`, `started`, `succeeded` of an async task;
//! 2. a `WebSocket` subscribed with `{"op":"subscribe","all":true}` receives the events of two
//!    tasks created after subscribing (and of no other task);
//! 3. after its connection is dropped (by a fault-injecting proxy between the browser and the
//!    app, right after the first event), the `EventSource` reconnects by itself with
//!    `Last-Event-ID` and no event is missing or repeated.
//!
//! Needs `node`, `/usr/bin/chromium` and tests/browser/node_modules: script/bootstrap installs
//! them.

use std::process::Stdio;
use std::time::Duration;

use serde_json::{Value, json};
use tutorq::auth::Role;

use crate::helpers::{TestApp, repo_path, spawn_app_with_workers};

/// The whole browser run: Chromium's start, three checks, each waiting up to 30 s.
const RUN_LIMIT: Duration = Duration::from_secs(180);

/// The ids of a task's stream entries, in order: what `Last-Event-ID` and `event_id` carry.
async fn stream_ids(app: &TestApp, task_id: &str) -> Vec<String> {
    let mut conn = app.redis().await;
    let entries: Vec<(String, std::collections::HashMap<String, String>)> = redis::cmd("XRANGE")
        .arg(app.partitions().events(task_id))
        .arg("-")
        .arg("+")
        .query_async(&mut conn)
        .await
        .unwrap();
    entries.into_iter().map(|(id, _)| id).collect()
}

fn strings(value: &Value) -> Vec<String> {
    value
        .as_array()
        .unwrap_or_else(|| panic!("an array, not {value}"))
        .iter()
        .map(|v| v.as_str().unwrap().to_owned())
        .collect()
}

/// Fails with what to do when the browser tooling is not installed.
pub fn require_tooling() {
    let node = std::process::Command::new("node")
        .arg("--version")
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|status| status.success());
    assert!(node, "`node` is not installed: run script/bootstrap");
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".to_owned());
    assert!(
        std::path::Path::new(&chromium).exists(),
        "{chromium} is missing: run script/bootstrap (it installs Debian's chromium)"
    );
    assert!(
        repo_path("tests/browser/node_modules/playwright-core").is_dir(),
        "tests/browser/node_modules is missing: run script/bootstrap \
         (it runs `npm ci --prefix tests/browser`)"
    );
}

#[tokio::test]
async fn chromium_follows_tasks_over_sse_and_websocket_and_resumes_after_a_drop() {
    require_tooling();
    let app = spawn_app_with_workers(|_| {}).await;
    let jwt = app
        .auth
        .mint("browser-sse", Role::Student, Duration::from_secs(600));
    // The WebSocket's user has no task yet: the tasks it sees are the two the page creates.
    let ws_jwt = app
        .auth
        .mint("browser-ws", Role::Student, Duration::from_secs(600));
    let follow = app.queue_hint("browser-sse").await;
    let resume = app.queue_hint("browser-sse").await;

    let run = tokio::process::Command::new("node")
        .arg(repo_path("tests/browser/run.mjs"))
        .args(["--base", &app.address])
        .args(["--jwt", &jwt, "--ws-jwt", &ws_jwt])
        .args(["--follow", &follow, "--resume", &resume])
        .current_dir(repo_path(""))
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(RUN_LIMIT, run)
        .await
        .unwrap_or_else(|_| panic!("the browser run took over {RUN_LIMIT:?}"))
        .expect("node runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    let report: Value = stdout
        .lines()
        .rev()
        .find_map(|line| serde_json::from_str(line).ok())
        .unwrap_or_else(|| {
            panic!(
                "no JSON report from run.mjs ({}):\n{stdout}\n{stderr}",
                output.status
            )
        });
    println!("{report:#}");
    assert!(
        output.status.success() && report["ok"] == true,
        "the browser checks failed ({}): {:#}\nstderr:\n{stderr}",
        output.status,
        report["failures"]
    );

    // 1. Every event of the task, over EventSource, with the ids of its Redis stream.
    let expected = ["queued", "started", "succeeded"];
    assert_eq!(report["sse"]["task_id"], follow.as_str());
    assert_eq!(strings(&report["sse"]["events"]), expected, "{report:#}");
    assert_eq!(
        strings(&report["sse"]["ids"]),
        stream_ids(&app, &follow).await
    );

    // 2. Both tasks created after subscribing, over the WebSocket, and nothing else.
    assert_eq!(report["ws"]["subscribed"]["all"], true, "{report:#}");
    let created = strings(&report["ws"]["created"]);
    assert_eq!(created.len(), 2, "{report:#}");
    assert_ne!(created[0], created[1]);
    assert_eq!(report["ws"]["other_task_ids"], json!([]), "{report:#}");
    for id in &created {
        let seen = &report["ws"]["tasks"][id];
        assert_eq!(strings(&seen["events"]), expected, "{id}: {report:#}");
        assert_eq!(strings(&seen["ids"]), stream_ids(&app, id).await, "{id}");
        let task: Value = app
            .client
            .get(app.url(&format!("/v1/tasks/{id}")))
            .bearer_auth(&ws_jwt)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(task["status"], "succeeded", "{task:#}");
    }

    // 3. Dropped after the first event, resumed from it by the header: all three, once each.
    let resumed = &report["resume"];
    let ids = stream_ids(&app, &resume).await;
    assert_eq!(strings(&resumed["events"]), expected, "{report:#}");
    assert_eq!(strings(&resumed["ids"]), ids);
    assert_eq!(resumed["cut"]["after_event_id"], ids[0].as_str());
    assert_eq!(
        resumed["requests"],
        json!([
            { "task_id": resume, "last_event_id_header": null, "last_event_id_query": null },
            { "task_id": resume, "last_event_id_header": ids[0], "last_event_id_query": null },
        ]),
        "one drop, one automatic reconnect with Last-Event-ID"
    );
}
