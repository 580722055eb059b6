//! Callbacks (SSRF): every special-purpose address is refused, however it is spelled; the
//! webhook client never goes through a proxy; names are resolved only for admitted requests.

use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::helpers::{assert_problem, sample_input, spawn_app_with, test_settings};

/// Item 11: IPv6 forms that carry an internal IPv4 address, and the IPv4 and IPv6 ranges the
/// IANA special-purpose registries mark not globally reachable, were accepted.
#[tokio::test]
async fn every_special_purpose_address_is_refused_as_a_callback() {
    let app = spawn_app_with(|s| s.webhooks.allow_hosts.clear()).await;
    let refused = [
        ("[64:ff9b::a9fe:a9fe]", "NAT64 of 169.254.169.254"),
        ("[64:ff9b::7f00:1]", "NAT64 of 127.0.0.1"),
        ("[64:ff9b:1::a00:1]", "local-use NAT64"),
        ("[2002:a9fe:a9fe::1]", "6to4 of 169.254.169.254"),
        ("[::a9fe:a9fe]", "IPv4-compatible"),
        ("[::ffff:a9fe:a9fe]", "IPv4-mapped"),
        ("[2001:0:4136:e378:8000:63bf:3fff:fdd2]", "Teredo"),
        ("[fec0::1]", "site-local"),
        ("[100::1]", "discard-only"),
        ("[2001:db8::1]", "documentation"),
        ("[fc00::1]", "unique local"),
        ("198.18.0.1", "benchmarking"),
        ("198.19.255.254", "benchmarking"),
        ("192.0.0.170", "IETF protocol assignments"),
        ("192.88.99.1", "6to4 relay anycast"),
        ("100.64.0.1", "shared address space"),
        ("240.0.0.1", "reserved"),
        ("0.0.0.0", "this network"),
    ];
    for (host, what) in refused {
        let body = json!({
            "input": sample_input("hint"),
            "mode": "async",
            "callback_url": format!("https://{host}/hook"),
        });
        let response = app.post_ai_as("u1", "hint", &body, &[]).await;
        let problem = assert_problem(response, 422, "invalid-input").await;
        assert!(
            problem["errors"]["callback_url"]
                .as_str()
                .is_some_and(|m| m.contains("internal address")),
            "{host} ({what}): {problem}"
        );
    }
    let public = json!({
        "input": sample_input("hint"),
        "mode": "async",
        "callback_url": "https://[64:ff9b::808:808]/hook",
    });
    assert_eq!(
        app.post_ai_as("u1", "hint", &public, &[]).await.status(),
        202,
        "NAT64 of a public address is a public address"
    );
}

/// Item 12: a blocked or over-quota caller could still make the server resolve names, since
/// the callback host was looked up before admission. A host that does not resolve now meets
/// the refusing limit first (429), not the DNS lookup (422).
#[tokio::test]
async fn a_caller_over_its_limit_makes_the_server_resolve_nothing() {
    let app = spawn_app_with(|s| {
        s.limits.roles.student.per_minute = 1;
        s.limits.roles.student.cooldown_secs = 0;
    })
    .await;
    let callback = |host: &str| json!({ "input": sample_input("hint"), "mode": "async", "callback_url": format!("https://{host}/hook") });
    assert_eq!(
        app.post_ai_as(
            "u1",
            "hint",
            &json!({ "input": sample_input("hint"), "mode": "async" }),
            &[]
        )
        .await
        .status(),
        202
    );
    let response = app
        .post_ai_as("u1", "hint", &callback("does-not-resolve.invalid"), &[])
        .await;
    assert_problem(response, 429, "rate-limited").await;
    // Admitted, the same host is refused after its lookup, and the tokens come back.
    let response = app
        .post_ai_as("u2", "hint", &callback("does-not-resolve.invalid"), &[])
        .await;
    let problem = assert_problem(response, 422, "invalid-input").await;
    assert!(
        problem["errors"]["callback_url"]
            .as_str()
            .unwrap()
            .contains("resolve"),
        "{problem}"
    );
    let quota = app
        .get_json(
            "/v1/quota",
            Some(&app.auth_token("u2", tutorq::auth::Role::Student)),
        )
        .await;
    assert_eq!(quota["daily"]["tokens"]["used"], 0, "{quota:#}");
}

/// A webhook receiver on loopback that records each body it gets.
async fn receiver() -> (String, Arc<Mutex<Vec<Value>>>) {
    let calls: Arc<Mutex<Vec<Value>>> = Arc::default();
    let seen = calls.clone();
    let router = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |body: axum::Json<Value>| {
            let seen = seen.clone();
            async move {
                seen.lock().unwrap().push(body.0);
                "ok"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    (url, calls)
}

/// Item 12: the webhook client honoured `HTTPS_PROXY` / `ALL_PROXY`, and a proxy resolves the
/// host itself, so the checked address was not the one connected to. A `tutorq all` with every
/// proxy variable pointing at a dead port still delivers, straight to the receiver.
#[tokio::test]
async fn webhooks_never_go_through_a_proxy() {
    let settings = test_settings().await;
    let (hook, calls) = receiver().await;
    let port = crate::servers::free_port().to_string();
    let dead = "http://127.0.0.1:9";
    let mut child = crate::helpers::tutorq_command(&settings, &["all"])
        .env("TUTORQ__SERVER__PORT", &port)
        .env("TUTORQ__PROMPTS__DIR", crate::helpers::repo_path("prompts"))
        .env("HTTP_PROXY", dead)
        .env("HTTPS_PROXY", dead)
        .env("ALL_PROXY", dead)
        .env("http_proxy", dead)
        .env("https_proxy", dead)
        .env("all_proxy", dead)
        .env_remove("NO_PROXY")
        .env_remove("no_proxy")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    let started = Instant::now();
    while client.get(format!("{base}/healthz")).send().await.is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "tutorq all did not come up"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let auth = tutorq::auth::Authenticator::new(&settings.auth);
    let token = auth.mint("u1", tutorq::auth::Role::Student, Duration::from_secs(60));
    let submitted = client
        .post(format!("{base}/v1/ai/hint"))
        .bearer_auth(token)
        .json(&json!({ "input": sample_input("hint"), "mode": "async", "callback_url": hook }))
        .send()
        .await
        .unwrap();
    assert_eq!(submitted.status(), 202);
    let started = Instant::now();
    while calls.lock().unwrap().is_empty() && started.elapsed() < Duration::from_secs(20) {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let _ = child.kill();
    let _ = child.wait();
    let calls = calls.lock().unwrap();
    assert_eq!(
        calls.len(),
        1,
        "the webhook was delivered without the proxy"
    );
    assert_eq!(calls[0]["type"], "task.succeeded", "{:?}", calls[0]);
}
