//! The fleet against a vendor that enforces its limits (issue 22): three worker processes and
//! a web process share one provider's requests per minute while a 2,000-item batch runs and
//! students ask interactive questions. The vendor refuses almost nothing, nobody gets a
//! degraded answer, the fleet uses the limit, and interactive requests wait at most about one
//! dispatch round for the batch. Then the same for Anthropic's headers. A second test: one
//! user's thousands of queued jobs do not delay another user's one.

use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tutorq::auth::Role;
use tutorq::config::{Secret, Settings};

use crate::helpers::{TestApp, sample_input, spawn_app_with};
use tutorq::bench::vendor::{Limits, ScriptedVendor, Vendor};

/// Requests a minute the vendor allows in the fleet tests: 100 a second.
const RPM: u64 = 6000;

/// A vendor allowing [`RPM`] (and tokens to spare) over two-second windows, answering each
/// call in 20 ms.
async fn scripted(vendor: Vendor) -> ScriptedVendor {
    let limits = Limits {
        rpm: RPM,
        tpm: RPM * 4000,
        window: Duration::from_secs(2),
        latency: Duration::from_millis(20),
    };
    ScriptedVendor::start(vendor, limits).await.unwrap()
}

/// Worker processes of the fleet, killed with the test.
struct Workers(Vec<Child>);

impl Drop for Workers {
    fn drop(&mut self) {
        for child in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Points `settings` at the scripted vendor with its limits.
fn configure(s: &mut Settings, vendor: &ScriptedVendor) {
    let p = &mut s.providers;
    p.default_chain = vec![vendor.vendor.provider().into()];
    p.degraded_fallback = true;
    p.retry.max_attempts = 2;
    match vendor.vendor {
        Vendor::OpenAi => {
            p.openai.base_url = vendor.base_url();
            p.openai.rpm = RPM;
            p.openai.tpm = RPM * 4000;
        }
        Vendor::Anthropic => {
            p.anthropic.base_url = vendor.base_url();
            p.anthropic.api_key = Some(Secret::new("sk-ant-test"));
            p.anthropic.rpm = RPM;
            p.anthropic.itpm = RPM * 4000;
        }
    }
    s.jobs.batch_concurrency = 64;
}

/// The same settings for a worker process, as its environment.
fn worker_env(vendor: &ScriptedVendor) -> Vec<(String, String)> {
    let name = vendor.vendor.provider().to_uppercase();
    let tokens = match vendor.vendor {
        Vendor::OpenAi => "TPM",
        Vendor::Anthropic => "ITPM",
    };
    let mut env = vec![
        (
            "TUTORQ__PROVIDERS__DEFAULT_CHAIN".into(),
            format!("[{}]", vendor.vendor.provider()),
        ),
        ("TUTORQ__PROVIDERS__DEGRADED_FALLBACK".into(), "true".into()),
        ("TUTORQ__PROVIDERS__RETRY__MAX_ATTEMPTS".into(), "2".into()),
        (
            format!("TUTORQ__PROVIDERS__{name}__BASE_URL"),
            vendor.base_url(),
        ),
        (format!("TUTORQ__PROVIDERS__{name}__RPM"), RPM.to_string()),
        (
            format!("TUTORQ__PROVIDERS__{name}__{tokens}"),
            (RPM * 4000).to_string(),
        ),
        ("TUTORQ__JOBS__BATCH_CONCURRENCY".into(), "64".into()),
        ("TUTORQ__LOG__LEVEL".into(), "error".into()),
    ];
    if vendor.vendor == Vendor::Anthropic {
        env.push((
            "TUTORQ__PROVIDERS__ANTHROPIC__API_KEY".into(),
            "sk-ant-test".into(),
        ));
    }
    env
}

fn start_workers(app: &TestApp, vendor: &ScriptedVendor, count: usize) -> Workers {
    Workers(
        (0..count)
            .map(|_| {
                crate::helpers::tutorq_command(&app.settings, &["worker"])
                    .envs(worker_env(vendor))
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .spawn()
                    .expect("start a worker process")
            })
            .collect(),
    )
}

/// A task once it has finished.
async fn finished(app: &TestApp, user: &str, id: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let task: Value = app.task_as(user, id, 5).await.json().await.unwrap();
        if task["finished_at"].is_string() {
            return task;
        }
        assert!(Instant::now() < deadline, "never finished: {task}");
    }
}

/// Seconds from a task's creation to its end: the wait for the queue and the provider's
/// capacity (in the queue or booked by its worker), plus the vendor's 20 ms.
fn waited(task: &Value) -> f64 {
    let at = |field: &str| {
        task[field]
            .as_str()
            .and_then(|t| t.parse::<jiff::Timestamp>().ok())
            .unwrap_or_else(|| panic!("{field} in {task}"))
    };
    at("finished_at")
        .duration_since(at("created_at"))
        .as_secs_f64()
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

/// An explanation of `user`, queued.
async fn ask_async(app: &TestApp, user: &str) -> String {
    let mut input = sample_input("explanation");
    input["topic"] = format!("Fotosentez, {user}").into();
    let response = app
        .post_ai_as(
            user,
            "explanation",
            &json!({ "input": input, "mode": "async" }),
            &[],
        )
        .await;
    assert_eq!(response.status(), 202);
    let task: Value = response.json().await.unwrap();
    task["task_id"].as_str().unwrap().to_owned()
}

async fn run_fleet(vendor: Vendor, items: usize) {
    let vendor = scripted(vendor).await;
    let app = spawn_app_with(|s| configure(s, &vendor)).await;
    let _workers = start_workers(&app, &vendor, 3);

    // Interactive requests alone first: how long they wait with no batch.
    let mut alone = Vec::new();
    for i in 0..10 {
        let user = format!("alone-{i}");
        let id = ask_async(&app, &user).await;
        alone.push(waited(&finished(&app, &user, &id).await));
    }

    let teacher = app.auth_token("teacher-fleet", Role::Teacher);
    let batch_items: Vec<Value> = (0..items)
        .map(|i| {
            let mut input = sample_input("explanation");
            input["topic"] = format!("Fotosentez, bölüm {i}").into();
            json!({ "input": input })
        })
        .collect();
    let created: Value = app
        .client
        .post(app.url("/v1/batches"))
        .bearer_auth(&teacher)
        .json(&json!({ "feature": "explanation", "items": batch_items }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let batch_id = created["id"]
        .as_str()
        .expect("the batch is accepted")
        .to_owned();
    let batch_started = Instant::now();

    // Interactive traffic while the batch runs: queued and inline requests of many students.
    let mut interactive = Vec::new();
    let mut inline = Vec::new();
    let mut progress = Vec::new();
    let batch = loop {
        let view = app
            .get_json(&format!("/v1/batches/{batch_id}"), Some(&teacher))
            .await;
        progress.push((
            batch_started.elapsed(),
            view["succeeded"].as_u64().unwrap_or(0),
        ));
        if ["completed", "completed_with_errors", "failed"]
            .contains(&view["state"].as_str().unwrap_or(""))
        {
            break view;
        }
        assert!(
            batch_started.elapsed() < Duration::from_secs(300),
            "the batch never finished: {view:#}"
        );
        let n = interactive.len();
        let user = format!("student-{n}");
        interactive.push((user.clone(), ask_async(&app, &user).await));
        if n % 4 == 0 {
            let started = Instant::now();
            let response = app
                .post_ai_as(
                    &user,
                    "explanation",
                    &json!({ "input": sample_input("explanation"), "mode": "sync" }),
                    &[],
                )
                .await;
            let status = response.status().as_u16();
            let answer: Value = response.json().await.unwrap();
            inline.push((status, answer, started.elapsed()));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let batch_secs = batch_started.elapsed().as_secs_f64();
    assert_eq!(batch["state"], "completed", "{batch:#}");
    assert_eq!(batch["succeeded"].as_u64(), Some(items as u64), "{batch:#}");

    let mut with_batch = Vec::new();
    let mut degraded = 0;
    for (user, id) in &interactive {
        let task = finished(&app, user, id).await;
        assert_eq!(task["status"], "succeeded", "{task:#}");
        degraded += usize::from(task["degraded"] == true);
        with_batch.push(waited(&task));
    }
    for (status, answer, _) in &inline {
        // Answered inline, or (no capacity within its threshold) queued: never degraded.
        assert!(*status == 200 || *status == 202, "{status}: {answer}");
        degraded += usize::from(answer["degraded"] == true);
    }
    let results = app
        .client
        .get(app.url(&format!("/v1/batches/{batch_id}/results")))
        .bearer_auth(&teacher)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for line in results.lines() {
        let line: Value = serde_json::from_str(line).unwrap();
        assert_eq!(line["status"], "succeeded", "{line}");
        assert_eq!(line["provider"], vendor.vendor.provider(), "{line}");
        degraded += usize::from(line["degraded"] == true);
    }

    let seen = vendor.seen();
    let calls = seen.answered.len() as u64 + seen.refused;
    // The rate while the batch ran at full speed: between a tenth and nine tenths of its items.
    let at = |share: f64| {
        progress
            .iter()
            .find(|(_, done)| *done as f64 >= share * items as f64)
            .map(|(t, _)| *t)
            .expect("the batch went through every share")
    };
    let (from, to) = (batch_started + at(0.1), batch_started + at(0.9));
    let answered = seen
        .answered
        .iter()
        .filter(|a| **a >= from && **a < to)
        .count();
    let rate = answered as f64 / (to - from).as_secs_f64();
    with_batch.sort_by(f64::total_cmp);
    alone.sort_by(f64::total_cmp);
    eprintln!(
        "capacity fleet ({:?}): {items} items in {batch_secs:.1} s; vendor calls {calls}, 429s {} ({:.2}%); \
         rate {rate:.1}/s of {:.1}/s; degraded {degraded}; interactive wait p50/p99 {:.3}/{:.3} s with the batch, \
         {:.3}/{:.3} s without; inline {} ({} answered 200)",
        vendor.vendor,
        seen.refused,
        100.0 * seen.refused as f64 / calls as f64,
        RPM as f64 / 60.0,
        percentile(&with_batch, 0.5),
        percentile(&with_batch, 0.99),
        percentile(&alone, 0.5),
        percentile(&alone, 0.99),
        inline.len(),
        inline.iter().filter(|(s, _, _)| *s == 200).count(),
    );
    assert!(
        seen.refused * 100 <= calls,
        "{} of {calls} calls were refused with 429",
        seen.refused
    );
    assert_eq!(degraded, 0, "no answer is degraded");
    let limit = RPM as f64 / 60.0;
    assert!(
        rate >= 0.9 * limit && rate <= 1.1 * limit,
        "the fleet used {rate:.1} calls/s of the vendor's {limit:.1}"
    );
    // One dispatch round is the batch's booking horizon (`batch_hold_ms`, 200 ms); the rest is
    // the queue's own pickup, here on a loaded test machine.
    let worst = percentile(&with_batch, 0.99);
    assert!(
        worst <= percentile(&alone, 0.99) + 1.0,
        "the batch added {worst:.3} s to an interactive request's wait"
    );
}

/// Items of the fleet tests: 2,000 as the issue asks, fewer with `TUTORQ_FLEET_ITEMS`.
fn fleet_items() -> usize {
    std::env::var("TUTORQ_FLEET_ITEMS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(2000)
}

#[tokio::test]
async fn three_workers_share_an_openai_limit_with_a_batch_and_interactive_traffic() {
    run_fleet(Vendor::OpenAi, fleet_items()).await;
}

#[tokio::test]
async fn three_workers_share_an_anthropic_limit_with_a_batch_and_interactive_traffic() {
    run_fleet(Vendor::Anthropic, fleet_items()).await;
}

/// User A queues 2,000 jobs, then user B queues one: B's starts within a dispatch round (its
/// call is booked at once, `reserve.lua`), while A's last waits its turn behind A's others.
#[tokio::test]
async fn one_users_backlog_does_not_delay_another_users_job() {
    use futures_util::StreamExt as _;
    let vendor = scripted(Vendor::OpenAi).await;
    let app = spawn_app_with(|s| configure(s, &vendor)).await;
    let _workers = start_workers(&app, &vendor, 3);
    let heavy: Vec<String> = futures_util::stream::iter(0..fleet_items())
        .map(|_| ask_async(&app, "student-a"))
        .buffered(16)
        .collect()
        .await;
    let lone = ask_async(&app, "student-b").await;
    let lone_wait = waited(&finished(&app, "student-b", &lone).await);
    let last_wait = waited(&finished(&app, "student-a", heavy.last().unwrap()).await);
    for id in &heavy {
        let task = finished(&app, "student-a", id).await;
        assert_eq!(task["status"], "succeeded", "{task:#}");
        assert_eq!(task["degraded"], false, "{task:#}");
    }
    eprintln!(
        "capacity fairness: B's one job waited {lone_wait:.3} s; A's last of {} waited {last_wait:.3} s",
        heavy.len()
    );
    assert!(
        last_wait > 3.0,
        "A's backlog waited its turns ({last_wait:.3} s): the test needs a backlog"
    );
    assert!(
        lone_wait <= 1.5,
        "B's job waited {lone_wait:.3} s behind A's backlog"
    );
}
