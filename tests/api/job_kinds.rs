//! A job kind of the tests' own, proving what adding one takes: this file's `Echo` (the job and
//! its `impl Job`), one registry line ([`jobs`]) and its `jobs/test_echo.yaml`. The loader, the
//! workers, the completer's finish hooks and the task API serve it without knowing it.

use std::sync::Arc;

use apalis::prelude::BoxDynError;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tutorq::outcome::Outcome;
use tutorq::service::AiService;
use tutorq::tasks::{Delivery, Job, JobFailure, JobRegistry, NewTask};

use crate::helpers::{jobs_copy, spawn_app_with_jobs, test_settings};

/// Answers with its text; an empty text cannot get better by retrying.
#[derive(Debug, Serialize, Deserialize)]
struct Echo {
    text: String,
    #[serde(default)]
    request_id: String,
}

impl Job for Echo {
    const KIND: &'static str = "test_echo";
    type Context = ();

    fn request_id(&self) -> &str {
        &self.request_id
    }

    async fn run(self, (): (), delivery: Delivery) -> Result<Outcome, BoxDynError> {
        if self.text.is_empty() {
            return Err(JobFailure::new("nothing_to_echo", "the text is empty").give_up());
        }
        Ok(Outcome::value(
            json!({ "echo": self.text, "attempt": delivery.attempt }),
        ))
    }
}

/// The shipped kinds and `Echo`: the one registry line.
fn jobs() -> JobRegistry<AiService> {
    tutorq::service::jobs::registry().with::<Echo>()
}

const ECHO_FILE: &str = "\
name: test_echo
queue: test_echo
priority: 3
concurrency: 4
timeout: 5s
visibility_timeout: 5s
max_attempts: 2
backoff:
  initial: 100ms
  multiplier: 2.0
  max: 1s
  jitter: false
result_ttl: 1h
";

/// The shipped job files and `test_echo.yaml`.
fn jobs_dir() -> tempfile::TempDir {
    let dir = jobs_copy(|_, text| text);
    std::fs::write(dir.path().join("test_echo.yaml"), ECHO_FILE).unwrap();
    dir
}

fn echo_task(text: &str) -> NewTask {
    let id = uuid::Uuid::now_v7().to_string();
    let job = Echo {
        text: text.to_owned(),
        request_id: format!("echo-{id}"),
    };
    NewTask {
        facts: tutorq::facts::TaskFacts {
            task_id: id,
            request_id: job.request_id.clone(),
            user_id: "echoer".into(),
            role: tutorq::facts::Role::Student,
            feature: None,
        },
        kind: Echo::KIND.to_owned(),
        job: serde_json::to_string(&job).unwrap(),
        callback_url: None,
        quota: None,
        batch: None,
    }
}

#[tokio::test]
async fn a_job_kind_of_the_tests_own_is_queued_run_and_recorded() {
    let dir = jobs_dir();
    let app = spawn_app_with_jobs(jobs(), |s| s.jobs.dir = dir.path().to_path_buf()).await;
    let state = tutorq::app::AppState::build_with_jobs(app.settings.clone(), &jobs())
        .await
        .unwrap();
    let store = &state.service.engine().store;
    let (echo, empty) = (echo_task("merhaba"), echo_task(""));
    store
        .enqueue_many(&[echo.clone(), empty.clone()])
        .await
        .unwrap();

    let task: Value = app
        .task_as("echoer", &echo.facts.task_id, 20)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(task["status"], "succeeded", "{task:#}");
    assert_eq!(task["result"]["echo"], "merhaba");
    assert_eq!(task["result"]["attempt"], 1);
    assert!(
        task["worker"].as_str().unwrap().starts_with("test_echo@"),
        "{task}"
    );
    let failed: Value = app
        .task_as("echoer", &empty.facts.task_id, 20)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(failed["status"], "failed", "{failed:#}");
    assert_eq!(failed["error"]["kind"], "nothing_to_echo");
    assert_eq!(failed["attempts"], 1, "given up, not retried");

    // The finish hooks the service installed ran for a kind they never heard of.
    let pool = sqlx::PgPool::connect(app.settings.database.url.expose())
        .await
        .unwrap();
    let mut states = Vec::new();
    for _ in 0..100 {
        states = sqlx::query_scalar::<_, String>(
            "SELECT state FROM task_history WHERE id = ANY($1::uuid[]) ORDER BY state",
        )
        .bind(vec![
            echo.facts.task_id.clone(),
            empty.facts.task_id.clone(),
        ])
        .fetch_all(&pool)
        .await
        .unwrap();
        if states.len() == 2 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(states, ["failed", "succeeded"]);
}

/// The job run directly, without a worker or Redis.
#[tokio::test]
async fn the_echo_job_runs_without_a_worker() {
    let delivery = |attempt| {
        Delivery::new(
            None,
            "t1".into(),
            attempt,
            Arc::new(tokio::sync::Notify::new()),
            None,
        )
    };
    let echo = |text: &str| Echo {
        text: text.into(),
        request_id: String::new(),
    };
    let answer = echo("selam").run((), delivery(2)).await.unwrap();
    assert_eq!(
        answer,
        Outcome::value(json!({ "echo": "selam", "attempt": 2 }))
    );
    let error = echo("").run((), delivery(1)).await.unwrap_err();
    assert!(
        error
            .downcast_ref::<apalis::prelude::AbortError>()
            .is_some(),
        "{error}"
    );
}

#[tokio::test]
async fn the_job_files_must_match_the_registry() {
    let dir = jobs_dir();
    let mut settings = test_settings().await;
    settings.jobs.dir = dir.path().to_path_buf();
    let Err(err) = tutorq::app::AppState::build(settings.clone()).await else {
        panic!("a file of an unregistered kind is refused");
    };
    let err = format!("{err:#}");
    assert!(
        err.contains("test_echo.yaml: no job kind `test_echo` is registered"),
        "{err}"
    );

    settings.jobs.dir = crate::helpers::repo_path("jobs");
    let Err(err) = tutorq::app::AppState::build_with_jobs(settings, &jobs()).await else {
        panic!("a registered kind without a file is refused");
    };
    let err = format!("{err:#}");
    assert!(
        err.contains("test_echo.yaml: missing: the job kind `test_echo` is registered"),
        "{err}"
    );
}
