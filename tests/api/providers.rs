//! One suite for every provider adapter, against HTTP fixtures that replay each vendor's real
//! wire format (`tests/fixtures/providers/`, sources in its README), served by wiremock.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt as _;
use serde_json::{Value, json};
use tutorq::config::Settings;
use tutorq::prompts::RenderedPrompt;
use tutorq::providers::{
    AiProvider, Anthropic, CompletionOptions, FinishReason, MockProvider, OpenAiCompatible,
    ProviderError,
};
use wiremock::matchers::{method, path, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::helpers::{repo_path, sample_input, spawn_app_with};

#[derive(Debug, Clone, Copy, PartialEq)]
enum Vendor {
    OpenAi,
    Azure,
    Anthropic,
}

const DEPLOYMENT: &str = "tutor-gpt";
const API_VERSION: &str = "2024-10-21";

fn settings() -> Settings {
    Settings::load_from(
        &repo_path("config"),
        "test",
        vec![
            (
                "TUTORQ__PROVIDERS__OPENAI__API_KEY".into(),
                "sk-test-openai".into(),
            ),
            (
                "TUTORQ__PROVIDERS__AZURE__API_KEY".into(),
                "azure-test-key".into(),
            ),
            (
                "TUTORQ__PROVIDERS__ANTHROPIC__API_KEY".into(),
                "sk-ant-test".into(),
            ),
        ],
    )
    .expect("test settings load")
}

fn fixture(vendor: Vendor, file: &str) -> String {
    std::fs::read_to_string(repo_path(&format!(
        "tests/fixtures/providers/{}/{file}",
        vendor.dir()
    )))
    .unwrap_or_else(|err| panic!("fixture {file}: {err}"))
}

impl Vendor {
    fn dir(self) -> &'static str {
        match self {
            Self::OpenAi => "openai",
            Self::Azure => "azure",
            Self::Anthropic => "anthropic",
        }
    }

    fn chat_path(self) -> String {
        match self {
            Self::OpenAi => "/v1/chat/completions".into(),
            Self::Azure => format!("/openai/deployments/{DEPLOYMENT}/chat/completions"),
            Self::Anthropic => "/v1/messages".into(),
        }
    }

    /// The adapter under test, pointed at `server`.
    fn adapter(self, server: &MockServer, timeout_ms: u64) -> Arc<dyn AiProvider> {
        let mut settings = settings().providers;
        match self {
            Self::OpenAi => {
                let openai = &mut settings.openai;
                openai.base_url = format!("{}/v1", server.uri());
                openai.timeout_ms = timeout_ms;
                Arc::new(OpenAiCompatible::openai(openai))
            }
            Self::Azure => {
                let azure = &mut settings.azure;
                azure.endpoint = server.uri();
                azure.deployment = DEPLOYMENT.into();
                azure.embedding_deployment = "tutor-embed".into();
                azure.api_version = API_VERSION.into();
                azure.timeout_ms = timeout_ms;
                Arc::new(OpenAiCompatible::azure(azure))
            }
            Self::Anthropic => {
                let anthropic = &mut settings.anthropic;
                anthropic.base_url = format!("{}/v1", server.uri());
                anthropic.timeout_ms = timeout_ms;
                Arc::new(Anthropic::new(anthropic))
            }
        }
    }

    fn completion(self) -> &'static str {
        match self {
            Self::Anthropic => "message.json",
            _ => "chat_completion.json",
        }
    }

    fn stream(self) -> &'static str {
        match self {
            Self::Anthropic => "stream.sse",
            _ => "chat_stream.sse",
        }
    }

    /// `(text, prompt tokens, completion tokens)` of the streamed fixture.
    fn streamed(self) -> (&'static str, u32, u32) {
        match self {
            Self::OpenAi => (
                "Fotosentez, bitkilerin güneş ışığını kullanarak kendi besinlerini üretmesidir.",
                24,
                11,
            ),
            Self::Azure => (
                "Kesirleri toplarken önce paydaları eşitlersin, sonra payları toplarsın.",
                33,
                14,
            ),
            Self::Anthropic => (
                "Bir üçgenin iç açılarının toplamı her zaman 180 derecedir. Örneğin 50° ve 60° ise üçüncü açı 70° olur.",
                52,
                38,
            ),
        }
    }

    /// The error fixture for a status, where the vendor has one.
    fn error_body(self, status: u16) -> String {
        let file = match (self, status) {
            (Self::Anthropic, 503) => "error_529.json",
            (Self::OpenAi | Self::Azure, 503) => {
                return fixture(Self::OpenAi, "error_503_overloaded.json");
            }
            (Self::Azure, 401 | 429) => return fixture(self, &format!("error_{status}.json")),
            // Azure shares OpenAI's bodies for the rest.
            (Self::Azure, _) => return fixture(Self::OpenAi, &format!("error_{status}.json")),
            (_, status) => return fixture(self, &format!("error_{status}.json")),
        };
        fixture(self, file)
    }

    fn overloaded_status(self) -> u16 {
        if self == Self::Anthropic { 529 } else { 503 }
    }
}

fn prompt() -> RenderedPrompt {
    RenderedPrompt {
        system: "Sen sabırlı bir öğretmensin.".into(),
        user: "Fotosentez nedir?".into(),
    }
}

fn options() -> CompletionOptions {
    CompletionOptions {
        temperature: 0.3,
        max_tokens: 120,
        model: None,
        json_schema: None,
        patience: Default::default(),
    }
}

fn sse(body: String) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_raw(body, "text/event-stream")
}

fn json_body(status: u16, body: String) -> ResponseTemplate {
    ResponseTemplate::new(status).set_body_raw(body, "application/json")
}

async fn mount(server: &MockServer, vendor: Vendor, response: ResponseTemplate) {
    let mut mock = Mock::given(method("POST")).and(path(vendor.chat_path()));
    if vendor == Vendor::Azure {
        mock = mock.and(query_param("api-version", API_VERSION));
    }
    mock.respond_with(response).mount(server).await;
}

async fn completes_with_the_vendors_request_and_answer(vendor: Vendor) {
    let server = MockServer::start().await;
    mount(
        &server,
        vendor,
        json_body(200, fixture(vendor, vendor.completion())),
    )
    .await;
    let answer = vendor
        .adapter(&server, 5_000)
        .complete(&prompt(), &options())
        .await
        .unwrap();
    let expected: Value = serde_json::from_str(&fixture(vendor, vendor.completion())).unwrap();
    let (text, input, output) = match vendor {
        Vendor::Anthropic => (
            &expected["content"][0]["text"],
            &expected["usage"]["input_tokens"],
            &expected["usage"]["output_tokens"],
        ),
        _ => (
            &expected["choices"][0]["message"]["content"],
            &expected["usage"]["prompt_tokens"],
            &expected["usage"]["completion_tokens"],
        ),
    };
    assert_eq!(answer.text, text.as_str().unwrap());
    assert_eq!(
        u64::from(answer.usage.prompt_tokens),
        input.as_u64().unwrap()
    );
    assert_eq!(
        u64::from(answer.usage.completion_tokens),
        output.as_u64().unwrap()
    );
    assert_eq!(answer.finish_reason, FinishReason::Stop);
    assert_eq!(answer.model, expected["model"].as_str().unwrap());

    // What went over the wire: auth, and the system prompt where the vendor wants it.
    let requests = server.received_requests().await.unwrap();
    let request = &requests[0];
    let sent: Value = serde_json::from_slice(&request.body).unwrap();
    let auth = |name: &str| {
        request
            .headers
            .get(name)
            .map(|v| v.to_str().unwrap().to_owned())
    };
    match vendor {
        Vendor::OpenAi => {
            assert_eq!(
                auth("authorization").as_deref(),
                Some("Bearer sk-test-openai")
            );
            assert_eq!(
                sent["messages"][0],
                json!({"role": "system", "content": prompt().system})
            );
            assert_eq!(sent["messages"][1]["role"], "user");
            assert_eq!(sent["max_tokens"], 120);
        }
        Vendor::Azure => {
            assert_eq!(auth("api-key").as_deref(), Some("azure-test-key"));
            assert_eq!(auth("authorization"), None);
            assert_eq!(sent["messages"][0]["role"], "system");
        }
        Vendor::Anthropic => {
            assert_eq!(auth("x-api-key").as_deref(), Some("sk-ant-test"));
            assert_eq!(auth("anthropic-version").as_deref(), Some("2023-06-01"));
            assert_eq!(sent["system"], prompt().system);
            assert_eq!(
                sent["messages"],
                json!([{"role": "user", "content": prompt().user}])
            );
            assert_eq!(sent["max_tokens"], 120);
        }
    }
    assert_eq!(sent["stream"], false);
}

async fn streams_text_in_pieces_then_usage(vendor: Vendor) {
    let server = MockServer::start().await;
    mount(&server, vendor, sse(fixture(vendor, vendor.stream()))).await;
    let mut chunks = vendor
        .adapter(&server, 5_000)
        .stream(&prompt(), &options())
        .await
        .unwrap();
    let mut pieces = Vec::new();
    let mut end = None;
    while let Some(chunk) = chunks.next().await {
        let chunk = chunk.unwrap();
        if !chunk.text.is_empty() {
            pieces.push(chunk.text);
        }
        if chunk.done.is_some() {
            end = chunk.done;
        }
    }
    let (text, input, output) = vendor.streamed();
    assert!(pieces.len() >= 3, "{pieces:?}");
    assert_eq!(pieces.concat(), text);
    let end = end.expect("a final chunk");
    assert_eq!(
        (end.usage.prompt_tokens, end.usage.completion_tokens),
        (input, output)
    );
    assert_eq!(end.finish_reason, FinishReason::Stop);
    let sent: Value =
        serde_json::from_slice(&server.received_requests().await.unwrap()[0].body).unwrap();
    assert_eq!(sent["stream"], true);
    if vendor != Vendor::Anthropic {
        assert_eq!(sent["stream_options"]["include_usage"], true);
    }
}

async fn a_cut_stream_is_an_error_not_a_short_answer(vendor: Vendor) {
    let server = MockServer::start().await;
    let file = match vendor {
        Vendor::Anthropic => "stream_cut.sse".to_owned(),
        _ => "chat_stream_cut.sse".to_owned(),
    };
    let vendor_dir = if vendor == Vendor::Azure {
        Vendor::OpenAi
    } else {
        vendor
    };
    mount(&server, vendor, sse(fixture(vendor_dir, &file))).await;
    let mut chunks = vendor
        .adapter(&server, 5_000)
        .stream(&prompt(), &options())
        .await
        .unwrap();
    let mut last = None;
    while let Some(chunk) = chunks.next().await {
        last = Some(chunk);
    }
    assert!(
        matches!(last, Some(Err(ProviderError::Server(ref m))) if m.contains("ended")),
        "{last:?}"
    );
}

/// Whether an error is the expected kind.
type Expect = fn(&ProviderError) -> bool;

async fn every_error_maps_to_one_kind(vendor: Vendor) {
    let cases: Vec<(ResponseTemplate, Expect)> = vec![
        (json_body(401, vendor.error_body(401)), |e| {
            matches!(e, ProviderError::Auth(_))
        }),
        (
            json_body(429, vendor.error_body(429)).insert_header("retry-after", "2"),
            |e| {
                *e == ProviderError::RateLimited {
                    retry_after: Some(Duration::from_secs(2)),
                }
            },
        ),
        (json_body(500, vendor.error_body(500)), |e| {
            matches!(e, ProviderError::Server(_))
        }),
        (
            json_body(vendor.overloaded_status(), vendor.error_body(503)),
            |e| matches!(e, ProviderError::Overloaded(_)),
        ),
        (json_body(400, vendor.error_body(400)), |e| {
            matches!(e, ProviderError::BadRequest(_))
        }),
        (
            json_body(200, "{\"choices\": [".into()),
            |e| matches!(e, ProviderError::Server(m) if m.contains("not valid JSON")),
        ),
    ];
    for (response, expected) in cases {
        let server = MockServer::start().await;
        mount(&server, vendor, response).await;
        let error = vendor
            .adapter(&server, 5_000)
            .complete(&prompt(), &options())
            .await
            .unwrap_err();
        assert!(expected(&error), "{vendor:?}: {error:?}");
        assert_eq!(
            error.is_transient(),
            !matches!(error, ProviderError::Auth(_) | ProviderError::BadRequest(_))
        );
    }
    if vendor == Vendor::Anthropic {
        // Overloaded in the middle of a stream.
        let server = MockServer::start().await;
        mount(&server, vendor, sse(fixture(vendor, "stream_error.sse"))).await;
        let mut chunks = vendor
            .adapter(&server, 5_000)
            .stream(&prompt(), &options())
            .await
            .unwrap();
        let mut last = None;
        while let Some(chunk) = chunks.next().await {
            last = Some(chunk);
        }
        assert!(
            matches!(last, Some(Err(ProviderError::Overloaded(_)))),
            "{last:?}"
        );
    }
    if vendor == Vendor::Azure {
        let server = MockServer::start().await;
        mount(
            &server,
            vendor,
            json_body(400, fixture(vendor, "content_filter_400.json")),
        )
        .await;
        let error = vendor
            .adapter(&server, 5_000)
            .complete(&prompt(), &options())
            .await
            .unwrap_err();
        assert_eq!(error, ProviderError::ContentFilter);
    }
}

async fn a_slow_answer_times_out(vendor: Vendor) {
    let server = MockServer::start().await;
    mount(
        &server,
        vendor,
        json_body(200, fixture(vendor, vendor.completion())).set_delay(Duration::from_secs(3)),
    )
    .await;
    let error = vendor
        .adapter(&server, 300)
        .complete(&prompt(), &options())
        .await
        .unwrap_err();
    assert_eq!(error, ProviderError::Timeout);
}

async fn embeds_or_says_it_cannot(vendor: Vendor) {
    let server = MockServer::start().await;
    let embed_path = match vendor {
        Vendor::Azure => "/openai/deployments/tutor-embed/embeddings".to_owned(),
        _ => "/v1/embeddings".to_owned(),
    };
    if vendor != Vendor::Anthropic {
        Mock::given(method("POST"))
            .and(path(embed_path))
            .respond_with(json_body(200, fixture(vendor, "embeddings.json")))
            .mount(&server)
            .await;
    }
    let result = vendor.adapter(&server, 5_000).embed("merhaba").await;
    match vendor {
        Vendor::Anthropic => assert!(
            matches!(result, Err(ProviderError::Unsupported(_))),
            "{result:?}"
        ),
        _ => assert_eq!(result.unwrap().len(), 8),
    }
}

async fn counts_tokens(vendor: Vendor) {
    let server = MockServer::start().await;
    let adapter = vendor.adapter(&server, 5_000);
    let count = adapter.count_tokens("hello world");
    match vendor {
        // gpt-4o-mini (o200k): exact.
        Vendor::OpenAi | Vendor::Azure => assert_eq!(count, 2),
        // An estimate: one token per three characters.
        Vendor::Anthropic => assert_eq!(count, 4),
    }
}

macro_rules! suite {
    ($($vendor:ident: $variant:expr),* $(,)?) => {$(
        mod $vendor {
            use super::*;

            #[tokio::test]
            async fn completes_with_the_vendors_request_and_answer() {
                super::completes_with_the_vendors_request_and_answer($variant).await
            }
            #[tokio::test]
            async fn streams_text_in_pieces_then_usage() {
                super::streams_text_in_pieces_then_usage($variant).await
            }
            #[tokio::test]
            async fn a_cut_stream_is_an_error_not_a_short_answer() {
                super::a_cut_stream_is_an_error_not_a_short_answer($variant).await
            }
            #[tokio::test]
            async fn every_error_maps_to_one_kind() {
                super::every_error_maps_to_one_kind($variant).await
            }
            #[tokio::test]
            async fn a_slow_answer_times_out() {
                super::a_slow_answer_times_out($variant).await
            }
            #[tokio::test]
            async fn embeds_or_says_it_cannot() {
                super::embeds_or_says_it_cannot($variant).await
            }
            #[tokio::test]
            async fn counts_tokens() {
                super::counts_tokens($variant).await
            }
        }
    )*};
}

suite!(openai: Vendor::OpenAi, azure: Vendor::Azure, anthropic: Vendor::Anthropic);

/// The mock passes the same behaviours that make sense without HTTP.
mod mock {
    use super::*;

    fn mock() -> MockProvider {
        MockProvider::new(settings().providers.mock)
    }

    #[tokio::test]
    async fn completes_streams_embeds_and_counts() {
        let mock = mock();
        let answer = mock.complete(&prompt(), &options()).await.unwrap();
        assert!(!answer.text.is_empty());
        assert!(answer.usage.total_tokens > 0);
        let mut chunks = mock.stream(&prompt(), &options()).await.unwrap();
        let mut text = String::new();
        let mut end = None;
        while let Some(chunk) = chunks.next().await {
            let chunk = chunk.unwrap();
            text.push_str(&chunk.text);
            end = chunk.done.or(end);
        }
        assert_eq!(text, answer.text, "the same prompt streams the same answer");
        assert_eq!(end.unwrap().usage, answer.usage);
        assert_eq!(mock.embed("merhaba").await.unwrap().len(), 64);
        assert!(mock.count_tokens("hello world") > 0);
    }
}

#[tokio::test]
async fn switching_the_hint_chain_to_openai_is_configuration_only() {
    let server = MockServer::start().await;
    mount(
        &server,
        Vendor::OpenAi,
        json_body(200, fixture(Vendor::OpenAi, "chat_completion.json")),
    )
    .await;
    let uri = server.uri();
    let app = spawn_app_with(move |s| {
        s.providers
            .chains
            .insert("hint".into(), vec!["openai".into()]);
        s.providers.openai.base_url = format!("{uri}/v1");
    })
    .await;
    let body = json!({ "input": sample_input("hint"), "mode": "sync" });
    let answer: Value = app
        .post_ai_as("u1", "hint", &body, &[])
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(answer["provider"], "openai", "{answer:#}");
    assert!(answer["result"].as_str().unwrap().starts_with("Fotosentez"));
    assert_eq!(answer["usage"]["prompt_tokens"], 38);
    assert_eq!(answer["degraded"], false);
    // The rendered Turkish hint prompt went to the vendor.
    let sent: Value =
        serde_json::from_slice(&server.received_requests().await.unwrap()[0].body).unwrap();
    assert!(
        sent["messages"][1]["content"]
            .as_str()
            .unwrap()
            .contains("2x + 3 = 11")
    );
}

#[tokio::test]
async fn with_every_provider_down_the_api_answers_degraded_not_5xx() {
    let server = MockServer::start().await;
    mount(
        &server,
        Vendor::OpenAi,
        json_body(500, fixture(Vendor::OpenAi, "error_500.json")),
    )
    .await;
    let uri = server.uri();
    let app = spawn_app_with(move |s| {
        s.providers
            .chains
            .insert("hint".into(), vec!["openai".into()]);
        s.providers.openai.base_url = format!("{uri}/v1");
        s.providers.degraded_fallback = true;
    })
    .await;
    let body = json!({ "input": sample_input("hint"), "mode": "sync" });
    let response = app.post_ai_as("u1", "hint", &body, &[]).await;
    assert_eq!(response.status(), 200);
    let answer: Value = response.json().await.unwrap();
    assert_eq!(answer["degraded"], true, "{answer:#}");
    assert_eq!(answer["provider"], "mock");
    assert!(
        answer["failed_providers"][0]
            .as_str()
            .unwrap()
            .starts_with("openai: ")
    );
    let admin = app.auth_token("root", tutorq::auth::Role::Admin);
    let providers = app.get_json("/v1/admin/providers", Some(&admin)).await;
    let openai = providers["providers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "openai")
        .unwrap_or_else(|| panic!("{providers:#}"));
    assert_eq!(openai["calls"], 1);
    assert_eq!(openai["breaker"]["state"], "closed");
    assert_eq!(openai["breaker"]["consecutive_failures"], 1);
    assert!(
        openai["breaker"]["last_failure"]
            .as_str()
            .unwrap()
            .contains("500")
    );
}
