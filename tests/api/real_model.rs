//! The openai adapter against a real OpenAI-compatible server running a real small model, no
//! fixture in between: llama-cpp-python's server with SmolLM2-135M (`script/lib/model_server.sh`
//! installs it into `target/model-server`; `script/test` does that before the tests run, so here
//! it only starts, in about a second). The server stops when the test process ends.

use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use futures_util::StreamExt as _;
use serde_json::{Value, json};
use tutorq::prompts::RenderedPrompt;
use tutorq::providers::{AiProvider, CompletionOptions, OpenAiCompatible};

use crate::helpers::{repo_path, sample_input, spawn_app_with};
use crate::servers::{exit_report, fastrand_suffix, free_port, spawn_watched, wait_until};

static MODEL_SERVER: OnceLock<ModelServer> = OnceLock::new();

/// The running model server: where it answers and where its watchdog reports how it ended.
struct ModelServer {
    /// The base URL, `…/v1`.
    url: String,
    dir: PathBuf,
    log: PathBuf,
}

impl ModelServer {
    /// Fails the test with the server's exit signal and log when it died, else with `err`.
    fn fail(&self, err: impl std::fmt::Debug) -> ! {
        // The watchdog notices a dead server within half a second.
        for _ in 0..20 {
            if let Some(report) = exit_report(&self.dir, &self.log) {
                panic!("the model server died during the test ({err:?}): {report}");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("the model server is running but the call failed: {err:?}");
    }
}

/// Unwraps `result`, or fails with what became of the model server.
trait OrServerReport<T> {
    fn or_report(self) -> T;
}

impl<T, E: std::fmt::Debug> OrServerReport<T> for Result<T, E> {
    fn or_report(self) -> T {
        self.unwrap_or_else(|err| model_server().fail(err))
    }
}

/// The running model server, started once per test process.
fn model_server() -> &'static ModelServer {
    MODEL_SERVER.get_or_init(|| {
        let installed = Command::new("bash")
            .arg("-c")
            .arg("source script/lib/model_server.sh && model_server_install target/model-server")
            .current_dir(repo_path(""))
            .status()
            .expect("run the model server installer");
        assert!(
            installed.success(),
            "installing the model server failed (see above)"
        );
        let home = repo_path("target/model-server");
        let scratch = std::env::temp_dir().join(format!(
            "tutorq-model-{}-{}",
            std::process::id(),
            fastrand_suffix()
        ));
        std::fs::create_dir_all(&scratch).unwrap();
        let port = free_port().to_string();
        let log = scratch.join("server.log");
        let python = home.join("venv/bin/python");
        let launcher = repo_path("tests/model/launcher.py");
        let model = home.join("SmolLM2-135M-Instruct.Q4_1.gguf");
        spawn_watched(
            &[
                python.to_str().unwrap(),
                launcher.to_str().unwrap(),
                "--model",
                model.to_str().unwrap(),
                "--model_alias",
                "smollm2",
                "--host",
                "127.0.0.1",
                "--port",
                &port,
                "--n_threads",
                "2",
                "--interrupt_requests",
                "false",
                "--embedding",
                "true",
            ],
            "TERM",
            &scratch,
            &log,
        );
        let url = format!("http://127.0.0.1:{port}/v1");
        let probe = format!("{url}/models");
        wait_until("the model server", &log, || {
            if let Some(report) = exit_report(&scratch, &log) {
                panic!("the model server did not start: {report}");
            }
            std::net::TcpStream::connect(("127.0.0.1", port.parse::<u16>().unwrap())).is_ok()
                && Command::new("curl")
                    .args(["-fsS", "--max-time", "2", &probe])
                    .output()
                    .is_ok_and(|o| o.status.success())
        });
        ModelServer {
            url,
            dir: scratch,
            log,
        }
    })
}

fn adapter() -> OpenAiCompatible {
    let mut settings =
        tutorq::config::Settings::load_from(&repo_path("config"), "test", Vec::new())
            .expect("test settings load")
            .providers
            .openai;
    settings.base_url = model_server().url.clone();
    settings.model = "smollm2".into();
    settings.embedding_model = "smollm2".into();
    // llama-cpp-python refuses `json_schema` response formats (it knows `json_object`).
    settings.structured_output = false;
    settings.timeout_ms = 120_000;
    OpenAiCompatible::openai(&settings)
}

fn prompt() -> RenderedPrompt {
    RenderedPrompt {
        system: "You are a helpful teacher. Answer briefly.".into(),
        user: "What is a prime number?".into(),
    }
}

fn options(max_tokens: u32) -> CompletionOptions {
    CompletionOptions {
        temperature: 0.0,
        max_tokens,
        model: None,
        json_schema: None,
        patience: Default::default(),
    }
}

#[tokio::test]
async fn a_real_model_completes_with_usage() {
    let answer = adapter()
        .complete(&prompt(), &options(16))
        .await
        .or_report();
    assert!(!answer.text.trim().is_empty(), "{answer:?}");
    assert_eq!(answer.model, "smollm2");
    assert!(answer.usage.prompt_tokens > 5, "{:?}", answer.usage);
    assert!(
        (1..=16).contains(&answer.usage.completion_tokens),
        "{:?}",
        answer.usage
    );
}

#[tokio::test]
async fn a_real_model_streams_in_several_deltas() {
    let mut chunks = adapter().stream(&prompt(), &options(16)).await.or_report();
    let mut pieces = Vec::new();
    let mut end = None;
    while let Some(chunk) = chunks.next().await {
        let chunk = chunk.or_report();
        if !chunk.text.is_empty() {
            pieces.push(chunk.text);
        }
        end = chunk.done.or(end);
    }
    assert!(pieces.len() >= 3, "{pieces:?}");
    // This server sends no usage chunk: the adapter counts.
    let end = end.expect("a final chunk");
    assert!(
        end.usage.prompt_tokens > 0 && end.usage.completion_tokens > 0,
        "{:?}",
        end.usage
    );
}

#[tokio::test]
async fn a_real_model_embeds_text_as_one_vector() {
    let vector = adapter().embed("merhaba").await.or_report();
    assert_eq!(vector.len(), 576, "SmolLM2-135M's hidden size");
    assert!(vector.iter().all(|v| v.is_finite()));
    assert!(vector.iter().any(|v| *v != 0.0));
}

#[tokio::test]
async fn a_hint_through_the_api_with_the_real_model() {
    let url = model_server().url.clone();
    let app = spawn_app_with(move |s| {
        s.providers
            .chains
            .insert("hint".into(), vec!["openai".into()]);
        s.providers.openai.base_url = url;
        s.providers.openai.model = "smollm2".into();
        s.providers.openai.structured_output = false;
        s.providers.openai.timeout_ms = 120_000;
        s.intake.sync_threshold_ms = 600_000;
    })
    .await;
    let body = json!({ "input": sample_input("hint"), "mode": "sync" });
    let response = tokio::time::timeout(
        Duration::from_secs(120),
        app.post_ai_as("u1", "hint", &body, &[]),
    )
    .await
    .expect("an answer within 2 minutes");
    if response.status() != 200 {
        let status = response.status();
        let body = response.text().await.unwrap_or_default();
        model_server().fail(format!("{status}: {body}"));
    }
    let answer: Value = response.json().await.unwrap();
    if answer["provider"] != "openai" {
        model_server().fail(format!("the answer came from another provider: {answer:#}"));
    }
    assert_eq!(answer["model"], "smollm2");
    assert!(!answer["result"].as_str().unwrap().trim().is_empty());
    assert!(answer["usage"]["completion_tokens"].as_u64().unwrap() > 0);
}

/// What the real-model tests print when the model server dies: how it ended and its log.
#[test]
fn a_server_that_dies_is_reported_with_its_signal_and_log() {
    let dir = std::env::temp_dir().join(format!(
        "tutorq-dying-{}-{}",
        std::process::id(),
        fastrand_suffix()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let log = dir.join("server.log");
    spawn_watched(
        &["sh", "-c", "echo 'loading libggml-cpu'; kill -SEGV $$"],
        "TERM",
        &dir,
        &log,
    );
    let mut report = None;
    for _ in 0..100 {
        report = exit_report(&dir, &log);
        if report.is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let report = report.expect("the watchdog reports the exit");
    assert!(report.contains("killed by signal 11"), "{report}");
    assert!(report.contains("loading libggml-cpu"), "{report}");
}
