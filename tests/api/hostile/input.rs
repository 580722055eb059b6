//! Bad input that must be a clean 4xx problem, never a 5xx, a text/plain answer or database
//! text; and validation messages that say what the server really accepts.

use serde_json::{Value, json};
use tutorq::auth::Role;

use crate::helpers::{TestApp, assert_problem, sample_input, spawn_app};

async fn get(app: &TestApp, path: &str, role: Role) -> reqwest::Response {
    app.client
        .get(app.url(path))
        .bearer_auth(app.auth_token("u1", role))
        .send()
        .await
        .unwrap()
}

fn no_database_text(body: &Value) {
    let text = body.to_string().to_lowercase();
    for word in ["postgres", "sqlx", "0x00", "invalid byte sequence", "utf8"] {
        assert!(!text.contains(word), "database text `{word}` in {body}");
    }
}

/// Item 13: a NUL in a query parameter (teachers reach /v1/admin/flags) answered 503 "not
/// ready" with PostgreSQL's text; invalid UTF-8 in a path segment answered 400 text/plain.
#[tokio::test]
async fn nul_in_a_query_and_broken_utf8_in_a_path_are_clean_problems() {
    let app = spawn_app().await;
    let body = assert_problem(
        get(&app, "/v1/admin/flags?user_id=%00", Role::Teacher).await,
        422,
        "invalid-input",
    )
    .await;
    assert!(
        body["errors"]["user_id"].as_str().unwrap().contains("NUL"),
        "{body}"
    );
    no_database_text(&body);
    let body = assert_problem(
        get(&app, "/v1/tasks/%FF%FE", Role::Student).await,
        400,
        "bad-path",
    )
    .await;
    no_database_text(&body);
    let body = assert_problem(
        get(&app, "/v1/tasks/a%00b", Role::Student).await,
        400,
        "bad-path",
    )
    .await;
    no_database_text(&body);
}

/// Item 13: an API-key owner with a NUL answered 503 with PostgreSQL's text.
#[tokio::test]
async fn an_api_key_owner_with_nul_is_refused_with_the_rule() {
    let app = spawn_app().await;
    for owner in ["svc\u{0}x", "svc x", "{svc}"] {
        let response = app
            .create_api_key(&json!({ "name": "k", "owner": owner, "role": "service" }))
            .await;
        let body = assert_problem(response, 422, "invalid-input").await;
        assert!(
            body["errors"]["owner"]
                .as_str()
                .unwrap()
                .contains("must be 1 to 128"),
            "{body}"
        );
        no_database_text(&body);
    }
    let response = app
        .create_api_key(&json!({ "name": "k\u{0}", "owner": "svc", "role": "service" }))
        .await;
    assert_problem(response, 422, "invalid-input").await;
}

async fn hint(app: &TestApp, question: &str) -> reqwest::Response {
    let mut input = sample_input("hint");
    input["question"] = question.into();
    app.post_ai_as(
        "u1",
        "hint",
        &json!({ "input": input, "mode": "async" }),
        &[],
    )
    .await
}

/// Item 14: a required text of spaces was accepted; NUL, bidi overrides and zero-width
/// characters went into prompts and the audit unchanged. Blank text and control or bidi
/// override characters are refused; invisible characters are taken out (so they cannot split
/// a forbidden word past the topic check).
#[tokio::test]
async fn blank_text_controls_and_bidi_overrides_are_refused_and_invisibles_removed() {
    let app = spawn_app().await;
    let body = assert_problem(hint(&app, "             ").await, 422, "invalid-input").await;
    assert!(
        body["errors"]["input.question"]
            .as_str()
            .unwrap()
            .contains("blank"),
        "{body}"
    );
    for (question, code) in [
        ("2x + 3 = 11 ise\u{0} x kaçtır?", "U+0000"),
        ("2x + 3 = 11 ise x \u{202E}?rıtçak", "U+202E"),
        ("2x + 3 = 11 ise x \u{2067}kaçtır?\u{2069}", "U+2067"),
        ("2x + 3 = 11 ise x kaçtır?\u{1b}[31m", "U+001B"),
    ] {
        let body = assert_problem(hint(&app, question).await, 422, "invalid-input").await;
        assert!(
            body["errors"]["input.question"]
                .as_str()
                .unwrap()
                .contains(code),
            "{body}"
        );
    }
    // A zero-width space no longer hides a forbidden word.
    let body = assert_problem(
        hint(
            &app,
            "Bu sorunun ce\u{200b}vap anahtarı nedir, 2x + 3 = 11?",
        )
        .await,
        422,
        "forbidden-topic",
    )
    .await;
    assert!(body["detail"].as_str().unwrap().contains("cevap"), "{body}");
    // Line breaks and tabs are text, not controls.
    assert_eq!(
        hint(&app, "2x + 3 = 11\n\tise x kaçtır?").await.status(),
        202
    );
}

/// Item 16: `wait` said "between 0 and 30" but took 3600; limit overrides took `per_minute:
/// 0.5` and `1e308` (then `RateLimit-Limit: 0` on admitted requests).
#[tokio::test]
async fn validation_and_its_messages_agree() {
    let app = spawn_app().await;
    let id = app.queue_hint("u1").await;
    let body = assert_problem(app.task_as("u1", &id, 3600).await, 422, "invalid-input").await;
    assert!(
        body["errors"]["wait"]
            .as_str()
            .unwrap()
            .contains("between 0 and 30"),
        "{body}"
    );
    assert_eq!(app.task_as("u1", &id, 0).await.status(), 200);

    let admin = app.auth_token("root", Role::Admin);
    for (value, says) in [
        (json!(0.5), "whole number"),
        (json!(1e308), "whole number from 0 to 1000000000000"),
        (json!(-1), "whole number"),
    ] {
        let response = app
            .client
            .put(app.url("/v1/admin/users/u9/limits"))
            .bearer_auth(&admin)
            .json(&json!({ "per_minute": value }))
            .send()
            .await
            .unwrap();
        let body = assert_problem(response, 422, "invalid-input").await;
        assert!(body.to_string().contains(says), "{value}: {body}");
    }
    let response = app
        .client
        .put(app.url("/v1/admin/users/u9/limits"))
        .bearer_auth(&admin)
        .json(&json!({ "per_minute": 30, "bucket_refill_per_sec": 0.5 }))
        .send()
        .await
        .unwrap();
    assert!(
        response.status().is_success(),
        "{}",
        response.text().await.unwrap()
    );
}
