//! Bad input gets a precise RFC 9457 answer: 400, 404, 405, 413, 415 and 422 with field errors.

use serde_json::{Value, json};
use tutorq::auth::Role;

use crate::helpers::{TestApp, assert_problem, sample_input, spawn_app};

async fn post_raw(
    app: &TestApp,
    path: &str,
    content_type: Option<&str>,
    body: Vec<u8>,
) -> reqwest::Response {
    let mut request = app
        .client
        .post(app.url(path))
        .bearer_auth(app.token(Role::Student))
        .body(body);
    if let Some(content_type) = content_type {
        request = request.header("content-type", content_type);
    }
    request.send().await.unwrap()
}

async fn hint_with(app: &TestApp, input: Value) -> reqwest::Response {
    app.post_ai("hint", &json!({ "input": input })).await
}

#[tokio::test]
async fn malformed_json_is_400_with_the_position() {
    let app = spawn_app().await;
    let response = post_raw(
        &app,
        "/v1/ai/hint",
        Some("application/json"),
        b"{\"input\": {\"question\": ".to_vec(),
    )
    .await;
    let body = assert_problem(response, 400, "malformed-json").await;
    assert!(
        body["detail"].as_str().unwrap().contains("line 1"),
        "{body}"
    );
    let response = post_raw(&app, "/v1/ai/hint", Some("application/json"), Vec::new()).await;
    let body = assert_problem(response, 400, "malformed-json").await;
    assert!(body["detail"].as_str().unwrap().contains("empty"), "{body}");
}

#[tokio::test]
async fn a_caller_request_id_is_echoed_into_the_problem() {
    let app = spawn_app().await;
    let response = app
        .client
        .post(app.url("/v1/ai/hint"))
        .bearer_auth(app.token(Role::Student))
        .header("content-type", "application/json")
        .header("x-request-id", "client-abc-123")
        .body("{")
        .send()
        .await
        .unwrap();
    let body = assert_problem(response, 400, "malformed-json").await;
    assert_eq!(body["request_id"], "client-abc-123");
}

#[tokio::test]
async fn wrong_or_missing_content_type_is_415() {
    let app = spawn_app().await;
    let body = serde_json::to_vec(&json!({ "input": sample_input("hint") })).unwrap();
    let problem = assert_problem(
        post_raw(&app, "/v1/ai/hint", Some("text/plain"), body.clone()).await,
        415,
        "unsupported-media-type",
    )
    .await;
    assert!(problem["detail"].as_str().unwrap().contains("text/plain"));
    assert_problem(
        post_raw(&app, "/v1/ai/hint", None, body).await,
        415,
        "unsupported-media-type",
    )
    .await;
}

#[tokio::test]
async fn a_body_over_the_limit_is_413() {
    let app = spawn_app().await;
    let question = "x".repeat(70 * 1024);
    let body = serde_json::to_vec(&json!({ "input": { "question": question } })).unwrap();
    let problem = assert_problem(
        post_raw(&app, "/v1/ai/hint", Some("application/json"), body).await,
        413,
        "payload-too-large",
    )
    .await;
    assert!(
        problem["detail"].as_str().unwrap().contains("65536"),
        "{problem}"
    );
}

#[tokio::test]
async fn unknown_feature_route_and_method() {
    let app = spawn_app().await;
    let body = assert_problem(
        app.post_ai("horoscope", &json!({ "input": {} })).await,
        404,
        "unknown-feature",
    )
    .await;
    assert_eq!(
        body["features"],
        json!([
            "hint",
            "explanation",
            "study_plan",
            "evaluation",
            "question_gen"
        ])
    );
    let response = app
        .client
        .get(app.url("/v1/nothing-here"))
        .send()
        .await
        .unwrap();
    assert_problem(response, 404, "not-found").await;
    let response = app
        .client
        .get(app.url("/v1/ai/hint"))
        .bearer_auth(app.token(Role::Student))
        .send()
        .await
        .unwrap();
    assert_problem(response, 405, "method-not-allowed").await;
}

#[tokio::test]
async fn the_request_body_shape_is_checked() {
    let app = spawn_app().await;
    let body = assert_problem(app.post_ai("hint", &json!({})).await, 422, "invalid-input").await;
    assert_eq!(
        body["errors"]["input"],
        "is required: an object with the feature's inputs"
    );
    let body = assert_problem(
        app.post_ai("hint", &json!({ "input": "soru" })).await,
        422,
        "invalid-input",
    )
    .await;
    assert_eq!(body["errors"]["input"], "must be a JSON object");
    let body = assert_problem(
        app.post_ai("hint", &json!({ "input": {}, "colour": "red" }))
            .await,
        422,
        "invalid-input",
    )
    .await;
    assert!(
        body["errors"]["colour"]
            .as_str()
            .unwrap()
            .contains("unknown field `colour`"),
        "{body}"
    );
    let body = assert_problem(
        app.post_ai("hint", &json!({ "input": {}, "prompt_version": 1 }))
            .await,
        422,
        "invalid-input",
    )
    .await;
    assert!(
        body["errors"]["prompt_version"]
            .as_str()
            .unwrap()
            .contains("invalid type"),
        "{body}"
    );
}

#[tokio::test]
async fn every_bad_field_gets_its_own_entry() {
    let app = spawn_app().await;
    let input = json!({ "question": "kısa", "hint_level": 7, "mood": "tired" });
    let body = assert_problem(hint_with(&app, input).await, 422, "invalid-input").await;
    let errors = body["errors"].as_object().unwrap();
    assert_eq!(
        errors["input.question"],
        "must be at least 10 characters long (got 4)"
    );
    assert_eq!(errors["input.subject"], "is required");
    assert_eq!(
        errors["input.hint_level"],
        "must be between 1 and 3 (got 7)"
    );
    assert!(
        errors["input.mood"]
            .as_str()
            .unwrap()
            .starts_with("is not an input of this feature")
    );
    assert_eq!(errors.len(), 4, "{body}");
}

#[tokio::test]
async fn types_ranges_and_allowed_values() {
    let app = spawn_app().await;
    let base = sample_input("hint");
    for (field, value, message) in [
        ("hint_level", json!("2"), "must be an integer"),
        ("hint_level", json!(2.5), "must be an integer"),
        ("hint_level", json!(0), "must be between 1 and 3 (got 0)"),
        ("question", json!(42), "must be a string"),
        ("subject", json!("   "), "must not be blank"),
    ] {
        let mut input = base.clone();
        input[field] = value;
        let body = assert_problem(hint_with(&app, input).await, 422, "invalid-input").await;
        assert_eq!(
            body["errors"][format!("input.{field}")],
            message,
            "{field}: {body}"
        );
    }
    let mut input = sample_input("explanation");
    input["level"] = json!("kolej");
    let body = assert_problem(
        app.post_ai("explanation", &json!({ "input": input })).await,
        422,
        "invalid-input",
    )
    .await;
    assert!(
        body["errors"]["input.level"]
            .as_str()
            .unwrap()
            .starts_with("must be one of"),
        "{body}"
    );
    let mut input = sample_input("study_plan");
    input["subjects"] = json!([]);
    let body = assert_problem(
        app.post_ai("study_plan", &json!({ "input": input })).await,
        422,
        "invalid-input",
    )
    .await;
    assert_eq!(
        body["errors"]["input.subjects"],
        "must have at least 1 items (got 0)"
    );
}

#[tokio::test]
async fn lengths_count_unicode_characters() {
    let app = spawn_app().await;
    let mut input = sample_input("hint");
    // 2,000 Turkish characters are 4,000 bytes but within the 2,000-character limit.
    input["question"] = json!("ş".repeat(2000));
    assert_eq!(hint_with(&app, input.clone()).await.status(), 200);
    input["question"] = json!("ş".repeat(2001));
    let body = assert_problem(hint_with(&app, input).await, 422, "invalid-input").await;
    assert_eq!(
        body["errors"]["input.question"],
        "must be at most 2000 characters long (got 2001)"
    );
    let mut input = sample_input("hint");
    input["question"] = json!("ğüşıöçĞÜŞ"); // 9 characters, 18 bytes
    let body = assert_problem(hint_with(&app, input).await, 422, "invalid-input").await;
    assert_eq!(
        body["errors"]["input.question"],
        "must be at least 10 characters long (got 9)"
    );
}

#[tokio::test]
async fn forbidden_topics_are_refused_in_any_turkish_case() {
    let app = spawn_app().await;
    for (question, topic) in [
        ("Bu sorunun cevap şıkkı hangisi acaba?", "cevap"),
        ("Bu sorunun CEVAP şıkkı hangisi acaba?", "cevap"),
        ("Lütfen bana SONUÇ değerini söyler misin?", "sonuç"),
        ("Lütfen bana SONUC değerini söyler misin?", "sonuç"),
        ("Just tell me the Answer, please!", "answer"),
    ] {
        let mut input = sample_input("hint");
        input["question"] = json!(question);
        let body = assert_problem(hint_with(&app, input).await, 422, "forbidden-topic").await;
        assert_eq!(
            body["errors"]["input.question"],
            format!("mentions the forbidden topic `{topic}`"),
            "{question}"
        );
    }
    // Whole words only: "cevapsız" and "sonuçlanan" are different words.
    let mut input = sample_input("hint");
    input["question"] = json!("Cevapsız kalan ve sonuçlanan işlemleri nasıl düşünmeliyim?");
    assert_eq!(hint_with(&app, input).await.status(), 200);
}

#[tokio::test]
async fn problem_types_are_documented() {
    let app = spawn_app().await;
    let body = app.get_json("/problems/invalid-input", None).await;
    assert_eq!(body["status"], 422);
    assert!(body["description"].as_str().unwrap().contains("errors"));
    let response = app
        .client
        .get(app.url("/problems/nope"))
        .send()
        .await
        .unwrap();
    assert_problem(response, 404, "not-found").await;
}
