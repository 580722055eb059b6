//! The openai adapter against a real OpenAI-compatible server running a real small model, no
//! fixture in between: llama-cpp-python's server with SmolLM2-135M (`script/lib/model_server.sh`
//! installs it into `target/model-server`; `script/test` does that before the tests run, so here
//! it only starts, in about a second). The server stops when the test process ends.

use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use futures_util::StreamExt as _;
use serde_json::{Value, json};
use tutorq::prompts::RenderedPrompt;
use tutorq::providers::{AiProvider, CompletionOptions, OpenAiCompatible};

use crate::helpers::{repo_path, sample_input, spawn_app_with};
use crate::servers::{fastrand_suffix, free_port, spawn_watched, wait_until};

static MODEL_SERVER: OnceLock<String> = OnceLock::new();

/// The base URL (`…/v1`) of the running model server.
fn model_server() -> &'static str {
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
            std::net::TcpStream::connect(("127.0.0.1", port.parse::<u16>().unwrap())).is_ok()
                && Command::new("curl")
                    .args(["-fsS", "--max-time", "2", &probe])
                    .output()
                    .is_ok_and(|o| o.status.success())
        });
        url
    })
}

fn adapter() -> OpenAiCompatible {
    let mut settings =
        tutorq::config::Settings::load_from(&repo_path("config"), "test", Vec::new())
            .expect("test settings load")
            .providers
            .openai;
    settings.base_url = model_server().to_owned();
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
    }
}

#[tokio::test]
async fn a_real_model_completes_with_usage() {
    let answer = adapter().complete(&prompt(), &options(16)).await.unwrap();
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
    let mut chunks = adapter().stream(&prompt(), &options(16)).await.unwrap();
    let mut pieces = Vec::new();
    let mut end = None;
    while let Some(chunk) = chunks.next().await {
        let chunk = chunk.unwrap();
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
    let vector = adapter().embed("merhaba").await.unwrap();
    assert_eq!(vector.len(), 576, "SmolLM2-135M's hidden size");
    assert!(vector.iter().all(|v| v.is_finite()));
    assert!(vector.iter().any(|v| *v != 0.0));
}

#[tokio::test]
async fn a_hint_through_the_api_with_the_real_model() {
    let url = model_server().to_owned();
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
    assert_eq!(response.status(), 200);
    let answer: Value = response.json().await.unwrap();
    assert_eq!(answer["provider"], "openai", "{answer:#}");
    assert_eq!(answer["model"], "smollm2");
    assert!(!answer["result"].as_str().unwrap().trim().is_empty());
    assert!(answer["usage"]["completion_tokens"].as_u64().unwrap() > 0);
}
