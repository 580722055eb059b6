//! The five AI features answered inline, each result checked against its prompt's schema.

use serde_json::{Value, json};

use crate::helpers::{assert_problem, repo_path, sample_input, spawn_app};

fn output_schema(feature: &str) -> Option<Value> {
    let text = std::fs::read_to_string(repo_path(&format!("prompts/{feature}.yaml"))).unwrap();
    let file: Value = serde_norway::from_str(&text).unwrap();
    file.get("output_schema").cloned()
}

#[tokio::test]
async fn every_feature_answers_inline_with_a_valid_result() {
    let app = spawn_app().await;
    for feature in [
        "hint",
        "explanation",
        "study_plan",
        "evaluation",
        "question_gen",
    ] {
        let response = app
            .post_ai(feature, &json!({ "input": sample_input(feature) }))
            .await;
        assert_eq!(response.status(), 200, "{feature}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["feature"], feature);
        let task_id = uuid::Uuid::parse_str(body["task_id"].as_str().unwrap()).unwrap();
        assert_eq!(task_id.get_version_num(), 7, "task ids are UUIDv7");
        assert_eq!(body["provider"], "mock");
        assert_eq!(body["model"], "mock-1");
        // The hint's ladder prompt is 2.0; every other feature has one version.
        let latest = if feature == "hint" { "2.0" } else { "1.0" };
        assert_eq!(body["prompt"]["version"], latest);
        assert!(
            body["prompt"]["name"]
                .as_str()
                .is_some_and(|n| !n.is_empty())
        );
        assert!(body["latency_ms"].is_u64());
        let usage = &body["usage"];
        let (p, c, t) = (
            usage["prompt_tokens"].as_u64().unwrap(),
            usage["completion_tokens"].as_u64().unwrap(),
            usage["total_tokens"].as_u64().unwrap(),
        );
        assert!(p > 0 && c > 0 && t == p + c, "{feature}: {usage}");
        match output_schema(feature) {
            Some(schema) => {
                let validator = jsonschema::validator_for(&schema).unwrap();
                let errors: Vec<String> = validator
                    .iter_errors(&body["result"])
                    .map(|e| e.to_string())
                    .collect();
                assert!(
                    errors.is_empty(),
                    "{feature}: {errors:?}\n{:#}",
                    body["result"]
                );
            }
            None => assert!(
                body["result"]
                    .as_str()
                    .is_some_and(|t| !t.trim().is_empty()),
                "{feature}: {body}"
            ),
        }
    }
}

#[tokio::test]
async fn answers_are_deterministic_for_the_same_input() {
    let app = spawn_app().await;
    let body = json!({ "input": sample_input("question_gen") });
    let first: Value = app
        .post_ai("question_gen", &body)
        .await
        .json()
        .await
        .unwrap();
    let second: Value = app
        .post_ai("question_gen", &body)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(first["result"], second["result"]);
    assert_ne!(first["task_id"], second["task_id"]);
}

#[tokio::test]
async fn input_is_data_never_a_template_and_turkish_is_not_escaped() {
    let app = spawn_app().await;
    let question =
        "{{subject}} ve {{#each x}}<b>Öğrenci'nin</b> & \"şüphe\"{{/each}} sorusu nedir?";
    let input = json!({"question": question, "subject": "Matematik", "hint_level": 2});
    let response = app.post_ai("hint", &json!({ "input": input })).await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    // The mock echoes the first line of the rendered user prompt: it must hold the input verbatim.
    let text = body["result"].as_str().unwrap();
    assert!(
        text.contains("{{subject}} ve {{#each x}}<b>Öğrenci'nin</b> & \"şüphe\""),
        "{text}"
    );
}

#[tokio::test]
async fn a_prompt_version_can_be_pinned() {
    let app = spawn_app().await;
    let pinned = json!({ "input": sample_input("hint"), "prompt_version": "1.0" });
    let response = app.post_ai("hint", &pinned).await;
    assert_eq!(response.status(), 200);

    let unknown = json!({ "input": sample_input("hint"), "prompt_version": "9.9" });
    let body = assert_problem(
        app.post_ai("hint", &unknown).await,
        422,
        "unknown-prompt-version",
    )
    .await;
    assert_eq!(body["available"], json!(["1.0", "2.0"]));
    assert!(
        body["errors"]["prompt_version"]
            .as_str()
            .unwrap()
            .contains("1.0")
    );
}

#[tokio::test]
async fn a_failing_provider_is_a_503_problem_not_a_500() {
    let app = crate::helpers::spawn_app_with(|s| s.providers.mock.failure_rate = 1.0).await;
    let body = assert_problem(
        app.post_ai("hint", &json!({ "input": sample_input("hint") }))
            .await,
        503,
        "provider-unavailable",
    )
    .await;
    assert!(
        body["providers_tried"][0]
            .as_str()
            .unwrap()
            .starts_with("mock:"),
        "{body}"
    );
}
