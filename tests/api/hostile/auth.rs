//! Who may call: one policy for principal ids, `nbf`, issuer and audience, token lifetime.

use serde_json::{Value, json};

use crate::helpers::{TestApp, assert_problem, sample_input, spawn_app, spawn_app_with};

fn now() -> u64 {
    jsonwebtoken::get_current_timestamp()
}

/// A token with exactly these claims, signed with the app's key.
fn signed(app: &TestApp, claims: &Value) -> String {
    let secret = app.settings.auth.signing_secret();
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        claims,
        &jsonwebtoken::EncodingKey::from_secret(secret.expose().as_bytes()),
    )
    .unwrap()
}

async fn hint_with(app: &TestApp, token: &str) -> reqwest::Response {
    let body = json!({ "input": sample_input("hint"), "mode": "async" });
    app.post_json("/v1/ai/hint", token, &body).await
}

async fn refused(response: reqwest::Response, says: &str) {
    let www = response.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(www.contains("invalid_token"), "{www}");
    let body = assert_problem(response, 401, "unauthorized").await;
    assert!(body["detail"].as_str().unwrap().contains(says), "{body}");
}

/// Item 2: a `sub` with a space broke `subscribe all`, a newline forged log lines, NUL or a
/// 100 KB id made PostgreSQL refuse the audit row; braces broke the Redis hash tags.
#[tokio::test]
async fn principal_ids_outside_the_policy_are_refused_naming_the_rule() {
    let app = spawn_app().await;
    let long = "u".repeat(100 * 1024);
    for sub in [
        "a b",
        "a\nb",
        "a\0b",
        "{u1}",
        "x}:k",
        "öğrenci",
        long.as_str(),
    ] {
        let token = signed(
            &app,
            &json!({ "sub": sub, "role": "student", "exp": now() + 600 }),
        );
        refused(hint_with(&app, &token).await, "must be 1 to 128 characters").await;
    }
    let good = signed(
        &app,
        &json!({ "sub": "auth0|5f7c.ayse@okul", "role": "student", "exp": now() + 600 }),
    );
    assert_eq!(hint_with(&app, &good).await.status(), 202);
}

/// Item 2, API keys: a key whose owner breaks the policy (written before it existed) is
/// refused like an unknown key.
#[tokio::test]
async fn an_api_key_with_an_owner_outside_the_policy_is_refused() {
    let app = spawn_app().await;
    let key = app.api_key("svc-grader", "service").await;
    assert_eq!(hint_with(&app, &key).await.status(), 202);
    let pool = sqlx::PgPool::connect(app.settings.database.url.expose())
        .await
        .unwrap();
    sqlx::query("UPDATE api_keys SET owner = 'svc grader' WHERE owner = 'svc-grader'")
        .execute(&pool)
        .await
        .unwrap();
    // Lookups are remembered for 2 seconds per process.
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    refused(hint_with(&app, &key).await, "unknown or revoked API key").await;
}

/// Item 10: `nbf` in the future is refused; `iss` and `aud` are checked when configured; a
/// token may live no longer than `auth.max_token_lifetime_secs`.
#[tokio::test]
async fn nbf_issuer_audience_and_lifetime_are_enforced() {
    let app = spawn_app().await;
    let early = signed(
        &app,
        &json!({ "sub": "u1", "role": "student", "exp": now() + 600, "nbf": now() + 300 }),
    );
    refused(hint_with(&app, &early).await, "not valid yet").await;

    let app = spawn_app_with(|s| {
        s.auth.issuer = Some("https://auth.okul.example".into());
        s.auth.audience = Some("tutorq".into());
        s.auth.max_token_lifetime_secs = 3600;
    })
    .await;
    let claims = |extra: Value| {
        let mut claims =
            json!({ "sub": "u1", "role": "student", "exp": now() + 600, "iat": now() });
        claims
            .as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        claims
    };
    let right = json!({ "iss": "https://auth.okul.example", "aud": "tutorq" });
    assert_eq!(
        hint_with(&app, &signed(&app, &claims(right)))
            .await
            .status(),
        202
    );
    let wrong_issuer = claims(json!({ "iss": "https://evil.example", "aud": "tutorq" }));
    refused(hint_with(&app, &signed(&app, &wrong_issuer)).await, "`iss`").await;
    let wrong_audience = claims(json!({ "iss": "https://auth.okul.example", "aud": "other" }));
    refused(
        hint_with(&app, &signed(&app, &wrong_audience)).await,
        "`aud`",
    )
    .await;
    let missing = claims(json!({ "aud": "tutorq" }));
    refused(
        hint_with(&app, &signed(&app, &missing)).await,
        "`iss` claim is required",
    )
    .await;
    let long_lived = claims(json!({
        "iss": "https://auth.okul.example", "aud": "tutorq", "exp": now() + 86_400
    }));
    refused(
        hint_with(&app, &signed(&app, &long_lived)).await,
        "lives longer",
    )
    .await;
}
