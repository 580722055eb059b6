//! One user's data never reaches another: Idempotency-Key slots and the response cache.

use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::helpers::{assert_problem, sample_input, spawn_app_with, spawn_app_with_workers};

/// Item 1, first half: `x}:k` + `y` and `x` + `k}:y` once shared one Redis key, and the second
/// user got the first one's task. A brace in a user id is refused now; the slots differ too.
#[tokio::test]
async fn an_idempotency_key_never_replays_another_users_task() {
    let app = spawn_app_with_workers(|_| {}).await;
    let body = json!({ "input": sample_input("hint"), "mode": "async" });
    let braced = app
        .post_ai_as("x}:k", "hint", &body, &[("idempotency-key", "y")])
        .await;
    assert_problem(braced, 401, "unauthorized").await;

    let first = app
        .post_ai_as("x", "hint", &body, &[("idempotency-key", "k}:y")])
        .await;
    assert_eq!(first.status(), 202);
    let first: Value = first.json().await.unwrap();
    let other = app
        .post_ai_as("xk", "hint", &body, &[("idempotency-key", "}:y")])
        .await;
    assert_eq!(other.status(), 202);
    let other: Value = other.json().await.unwrap();
    assert_ne!(
        first["task_id"], other["task_id"],
        "each user gets a task of their own"
    );
    assert_ne!(
        tutorq::tasks::keys::idempotency("a}:b", "c"),
        tutorq::tasks::keys::idempotency("a", "b}:c")
    );
}

/// The fingerprint the service keeps beside a claimed key (feature, input, prompt version).
fn fingerprint(feature: &str, input: &Value) -> String {
    let mut hasher = Sha256::new();
    hasher.update(feature);
    hasher.update([0]);
    hasher.update(input.to_string());
    hasher.update([0]);
    hasher.update("");
    format!("{:x}", hasher.finalize())
}

/// Item 1, second half: even a slot that names another user's task (planted here the way a
/// collision would leave it) never hands that task over.
#[tokio::test]
async fn a_replayed_slot_is_checked_for_its_owner() {
    let app = spawn_app_with(|_| {}).await;
    let victim = app.queue_hint("victim").await;
    let input = sample_input("hint");
    let slot = tutorq::tasks::keys::idempotency("thief", "k1");
    let mut redis = app.redis().await;
    let _: () = redis::cmd("SET")
        .arg(&slot)
        .arg(format!("{victim} {}", fingerprint("hint", &input)))
        .query_async(&mut redis)
        .await
        .unwrap();
    let body = json!({ "input": input, "mode": "async" });
    let replay = app
        .post_ai_as("thief", "hint", &body, &[("idempotency-key", "k1")])
        .await;
    let status = replay.status().as_u16();
    let text = replay.text().await.unwrap();
    assert!(
        !text.contains(&victim),
        "another user's task leaked: {text}"
    );
    assert_eq!(status, 422, "{text}");
}

/// Item 5: a student's own attempt is never answered from another student's cache entry
/// (`cached: true` would tell them someone sent exactly this); shared questions still are.
#[tokio::test]
async fn personal_inputs_are_cached_per_user_and_shared_questions_for_all() {
    let app = spawn_app_with(|s| {
        s.cache.ttl_secs.insert("evaluation".into(), 600);
        s.cache.ttl_secs.insert("hint".into(), 600);
    })
    .await;
    let evaluation = json!({ "input": sample_input("evaluation"), "mode": "sync" });
    let ask = |user: &'static str, feature: &'static str, body: Value| {
        let app = &app;
        async move {
            let response = app.post_ai_as(user, feature, &body, &[]).await;
            assert_eq!(response.status(), 200);
            let answer: Value = response.json().await.unwrap();
            answer["cached"].clone()
        }
    };
    assert_eq!(ask("ayse", "evaluation", evaluation.clone()).await, false);
    assert_eq!(
        ask("mehmet", "evaluation", evaluation.clone()).await,
        false,
        "another student's identical answer is not a cache hit"
    );
    assert_eq!(
        ask("ayse", "evaluation", evaluation).await,
        true,
        "her own is"
    );

    let hint = json!({ "input": sample_input("hint"), "mode": "sync" });
    assert_eq!(ask("ayse", "hint", hint.clone()).await, false);
    assert_eq!(
        ask("mehmet", "hint", hint).await,
        true,
        "a shared question is cached for all"
    );

    // The prompt files say which inputs are personal.
    let prompts =
        tutorq::prompts::PromptRegistry::load(&crate::helpers::repo_path("prompts"), true)
            .unwrap()
            .snapshot();
    let evaluation = prompts
        .get(tutorq::feature::Feature::Evaluation, None)
        .unwrap();
    assert!(evaluation.inputs["student_answer"].personal);
}
