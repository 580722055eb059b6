//! Every way a request can fail authentication answers 401 with `WWW-Authenticate`.

use serde_json::json;
use tutorq::auth::{Claims, Role};

use crate::helpers::{TestApp, assert_problem, sample_input, spawn_app};

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn b64(bytes: &[u8]) -> String {
    const TABLE: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |acc, (i, b)| acc | (u32::from(*b) << (16 - 8 * i)));
        for i in 0..=chunk.len() {
            out.push(TABLE[((n >> (18 - 6 * i)) & 63) as usize] as char);
        }
    }
    out
}

async fn call(app: &TestApp, authorization: Option<&str>) -> reqwest::Response {
    let mut request = app
        .client
        .post(app.url("/v1/ai/hint"))
        .json(&json!({ "input": sample_input("hint") }));
    if let Some(value) = authorization {
        request = request.header("authorization", value);
    }
    request.send().await.unwrap()
}

async fn assert_401(response: reqwest::Response, www_authenticate: &str, detail: &str) {
    let header = response
        .headers()
        .get("www-authenticate")
        .map(|v| v.to_str().unwrap().to_owned());
    let header = header.expect("WWW-Authenticate is set");
    assert!(header.starts_with(www_authenticate), "{header}");
    let body = assert_problem(response, 401, "unauthorized").await;
    assert!(body["detail"].as_str().unwrap().contains(detail), "{body}");
}

#[tokio::test]
async fn a_valid_token_is_accepted() {
    let app = spawn_app().await;
    let token = app.token(Role::Student);
    assert_eq!(
        call(&app, Some(&format!("Bearer {token}"))).await.status(),
        200
    );
    assert_eq!(
        call(&app, Some(&format!("bearer {token}"))).await.status(),
        200
    );
}

#[tokio::test]
async fn missing_and_malformed_headers() {
    let app = spawn_app().await;
    assert_401(
        call(&app, None).await,
        r#"Bearer realm="tutorq""#,
        "no Authorization header",
    )
    .await;
    assert_401(
        call(&app, Some("Basic dXNlcjpwYXNz")).await,
        r#"Bearer realm="tutorq", error="invalid_request""#,
        "Bearer <token>",
    )
    .await;
    assert_401(
        call(&app, Some("Bearer ")).await,
        r#"Bearer realm="tutorq", error="invalid_request""#,
        "Bearer <token>",
    )
    .await;
    assert_401(
        call(&app, Some("Bearer not-a-jwt")).await,
        r#"Bearer realm="tutorq", error="invalid_token""#,
        "not a well-formed JWT",
    )
    .await;
}

#[tokio::test]
async fn bad_signature_alg_none_expired_and_bad_claims() {
    let app = spawn_app().await;
    let good = app.token(Role::Admin);
    let (header_and_claims, _) = good.rsplit_once('.').unwrap();
    let forged = format!(
        "{header_and_claims}.{}",
        b64(b"definitely not the signature")
    );
    assert_401(
        call(&app, Some(&format!("Bearer {forged}"))).await,
        r#"Bearer realm="tutorq", error="invalid_token""#,
        "bad signature",
    )
    .await;

    let claims = json!({"sub": "mallory", "role": "admin", "exp": now() + 600});
    let unsigned = format!(
        "{}.{}.",
        b64(br#"{"alg":"none","typ":"JWT"}"#),
        b64(claims.to_string().as_bytes())
    );
    assert_401(
        call(&app, Some(&format!("Bearer {unsigned}"))).await,
        r#"Bearer realm="tutorq", error="invalid_token""#,
        "token is invalid",
    )
    .await;

    let expired = app.token_with(&Claims {
        sub: "u1".into(),
        role: Role::Student,
        exp: now() - 3600,
        iat: None,
        tenant: None,
    });
    assert_401(
        call(&app, Some(&format!("Bearer {expired}"))).await,
        r#"Bearer realm="tutorq", error="invalid_token""#,
        "expired",
    )
    .await;
}

#[tokio::test]
async fn claims_must_be_complete_and_the_role_known() {
    let app = spawn_app().await;
    let secret = app.settings.auth.signing_secret();
    let key = jsonwebtoken::EncodingKey::from_secret(secret.expose().as_bytes());
    let header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
    let sign = |claims: serde_json::Value| jsonwebtoken::encode(&header, &claims, &key).unwrap();

    let no_exp = sign(json!({"sub": "u1", "role": "student"}));
    assert_401(
        call(&app, Some(&format!("Bearer {no_exp}"))).await,
        r#"Bearer realm="tutorq", error="invalid_token""#,
        "`exp` claim is required",
    )
    .await;
    let bad_role = sign(json!({"sub": "u1", "role": "principal", "exp": now() + 600}));
    assert_401(
        call(&app, Some(&format!("Bearer {bad_role}"))).await,
        r#"Bearer realm="tutorq", error="invalid_token""#,
        "`principal` is not a role",
    )
    .await;
    let no_sub = sign(json!({"role": "student", "exp": now() + 600}));
    assert_401(
        call(&app, Some(&format!("Bearer {no_sub}"))).await,
        r#"Bearer realm="tutorq", error="invalid_token""#,
        "`sub` claim is required",
    )
    .await;
}

#[tokio::test]
async fn admin_routes_need_the_admin_role() {
    let app = spawn_app().await;
    for role in [Role::Student, Role::Teacher, Role::Service] {
        let response = app
            .client
            .post(app.url("/v1/admin/prompts/reload"))
            .bearer_auth(app.token(role))
            .send()
            .await
            .unwrap();
        let body = assert_problem(response, 403, "forbidden").await;
        assert!(body["detail"].as_str().unwrap().contains("admin"), "{body}");
    }
    let response = app
        .client
        .post(app.url("/v1/admin/prompts/reload"))
        .bearer_auth(app.token(Role::Admin))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
}
