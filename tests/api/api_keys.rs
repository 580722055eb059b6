//! API keys: created once, stored as a hash, used as `Bearer tq_…`, revoked everywhere.

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tutorq::auth::Role;

use crate::helpers::{TestApp, sample_input, spawn_app_with, spawn_sibling};

async fn create(app: &TestApp, body: Value) -> reqwest::Response {
    app.client
        .post(app.url("/v1/admin/api-keys"))
        .bearer_auth(app.auth_token("root", Role::Admin))
        .json(&body)
        .send()
        .await
        .unwrap()
}

async fn hint_with_key(app: &TestApp, key: &str) -> reqwest::Response {
    app.client
        .post(app.url("/v1/ai/hint"))
        .bearer_auth(key)
        .json(&json!({ "input": sample_input("hint"), "mode": "async" }))
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn a_key_is_shown_once_stored_as_a_hash_and_acts_as_its_owner() {
    let app = spawn_app_with(|_| {}).await;
    let response = create(
        &app,
        json!({ "name": "batch scheduler", "owner": "svc-batch", "role": "service" }),
    )
    .await;
    assert_eq!(response.status(), 201);
    let created: Value = response.json().await.unwrap();
    let key = created["key"].as_str().unwrap().to_owned();
    assert!(key.starts_with("tq_") && key.len() > 40, "{key}");
    assert!(key.starts_with(created["prefix"].as_str().unwrap()));

    let accepted = hint_with_key(&app, &key).await;
    assert_eq!(accepted.status(), 202);
    let task: Value = accepted.json().await.unwrap();
    // The task is the owner's.
    let mine = app
        .task_as("svc-batch", task["task_id"].as_str().unwrap(), 0)
        .await;
    assert_eq!(mine.status(), 200);

    // Listed without the key; PostgreSQL has only its hash.
    let listed = app
        .get_json(
            "/v1/admin/api-keys",
            Some(&app.auth_token("root", Role::Admin)),
        )
        .await;
    let entry = &listed["api_keys"][0];
    assert_eq!(entry["owner"], "svc-batch");
    assert!(
        entry.get("key").is_none() && entry.get("hash").is_none(),
        "{entry}"
    );
    let pool = sqlx::PgPool::connect(app.settings.database.url.expose())
        .await
        .unwrap();
    let stored: String = sqlx::query_scalar("SELECT hash FROM api_keys")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_ne!(stored, key);
    assert!(!stored.contains(&key[3..]));
    let mut used = None;
    for _ in 0..100 {
        used = sqlx::query_scalar::<_, Option<String>>("SELECT last_used_at::text FROM api_keys")
            .fetch_one(&pool)
            .await
            .unwrap();
        if used.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(used.is_some(), "last use is noted");

    // A wrong key is a 401 like a bad token.
    let wrong = hint_with_key(&app, "tq_not-a-key").await;
    assert_eq!(wrong.status(), 401);
}

#[tokio::test]
async fn a_key_can_carry_its_own_quota() {
    let app = spawn_app_with(|_| {}).await;
    let created: Value = create(
        &app,
        json!({ "name": "tiny", "owner": "svc-tiny", "role": "service", "quota": { "daily_requests": 1 } }),
    )
    .await
    .json()
    .await
    .unwrap();
    let key = created["key"].as_str().unwrap();
    assert_eq!(hint_with_key(&app, key).await.status(), 202);
    assert_eq!(hint_with_key(&app, key).await.status(), 429);
}

#[tokio::test]
async fn a_revoked_key_is_refused_by_every_web_process_within_seconds() {
    let first = spawn_app_with(|_| {}).await;
    let second = spawn_sibling(&first).await;
    let created: Value = create(
        &first,
        json!({ "name": "ci", "owner": "svc-ci", "role": "teacher" }),
    )
    .await
    .json()
    .await
    .unwrap();
    let key = created["key"].as_str().unwrap();
    // Both processes have seen the key work (and remember it).
    assert_eq!(hint_with_key(&first, key).await.status(), 202);
    assert_eq!(hint_with_key(&second, key).await.status(), 202);

    let revoked = first
        .client
        .delete(first.url(&format!(
            "/v1/admin/api-keys/{}",
            created["id"].as_str().unwrap()
        )))
        .bearer_auth(first.auth_token("root", Role::Admin))
        .send()
        .await
        .unwrap();
    assert_eq!(revoked.status(), 204);
    let started = Instant::now();
    loop {
        let status = hint_with_key(&second, key).await.status();
        if status == 401 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "still {status} after 5 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(hint_with_key(&first, key).await.status(), 401);
}

#[tokio::test]
async fn bad_key_requests_are_refused_precisely() {
    let app = spawn_app_with(|_| {}).await;
    let admin_role = create(&app, json!({ "name": "x", "owner": "o", "role": "admin" })).await;
    assert_eq!(admin_role.status(), 422);
    let bad_quota = create(
        &app,
        json!({ "name": "x", "owner": "o", "role": "service", "quota": { "daily_request": 5 } }),
    )
    .await;
    assert_eq!(bad_quota.status(), 422);
    let body: Value = bad_quota.json().await.unwrap();
    assert!(
        body["errors"]["quota.daily_request"].is_string(),
        "{body:#}"
    );
    let student = app
        .client
        .post(app.url("/v1/admin/api-keys"))
        .bearer_auth(app.auth_token("s", Role::Student))
        .json(&json!({ "name": "x", "owner": "o", "role": "service" }))
        .send()
        .await
        .unwrap();
    assert_eq!(student.status(), 403);
    let missing = app
        .client
        .delete(app.url("/v1/admin/api-keys/0191c3a4-1111-7000-8000-000000000001"))
        .bearer_auth(app.auth_token("root", Role::Admin))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
}

#[tokio::test]
async fn a_key_with_its_own_webhook_secret_gets_callbacks_signed_with_it() {
    use std::io::{BufRead as _, BufReader};
    let app = crate::helpers::spawn_app_with_workers(|_| {}).await;
    let created: Value = create(
        &app,
        json!({ "name": "hooks", "owner": "svc-hooks", "role": "service", "webhook_secret": true }),
    )
    .await
    .json()
    .await
    .unwrap();
    let secret = created["webhook_secret"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("whsec_"));
    let listed = app
        .get_json(
            "/v1/admin/api-keys",
            Some(&app.auth_token("root", Role::Admin)),
        )
        .await;
    assert!(!listed.to_string().contains(&secret), "never listed");

    let port = crate::servers::free_port();
    let mut receiver =
        std::process::Command::new(crate::helpers::repo_path("target/pyenv/bin/python"))
            .arg(crate::helpers::repo_path("tests/webhooks/receiver.py"))
            .arg(port.to_string())
            .arg(&secret)
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
    let mut lines = BufReader::new(receiver.stdout.take().unwrap()).lines();
    assert!(lines.next().unwrap().unwrap().contains("listening"));
    let accepted = app
        .client
        .post(app.url("/v1/ai/hint"))
        .bearer_auth(created["key"].as_str().unwrap())
        .json(&json!({
            "input": sample_input("hint"),
            "mode": "async",
            "callback_url": format!("http://127.0.0.1:{port}/hook"),
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(accepted.status(), 202);
    let report: Value = tokio::task::spawn_blocking(move || {
        serde_json::from_str(&lines.next().unwrap().unwrap()).unwrap()
    })
    .await
    .unwrap();
    let _ = receiver.kill();
    let _ = receiver.wait();
    assert_eq!(
        report["verified"], true,
        "signed with the key's own secret: {report}"
    );
}
