//! Liveness and readiness.

use serde_json::Value;
use tutorq::config::Secret;

use crate::helpers::{assert_problem, spawn_app, spawn_app_with};

#[tokio::test]
async fn healthz_and_readyz_when_everything_is_up() {
    let app = spawn_app().await;
    let response = app.client.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let response = app.client.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["status"], "ready");
    for check in ["redis", "postgres", "prompts"] {
        assert_eq!(body["checks"][check]["status"], "ok", "{body}");
        let ms = body["checks"][check]["latency_ms"].as_f64();
        assert!(ms.is_some_and(|ms| (0.0..1000.0).contains(&ms)), "{body}");
    }
    assert_eq!(body["checks"]["prompts"]["features"], 5);
}

#[tokio::test]
async fn readyz_names_the_store_that_is_down() {
    let dead_port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let app = spawn_app_with(|s| {
        s.redis.cluster.clear();
        s.redis.url = Secret::new(format!("redis://127.0.0.1:{dead_port}/0"));
    })
    .await;
    let response = app.client.get(app.url("/readyz")).send().await.unwrap();
    let body = assert_problem(response, 503, "not-ready").await;
    assert!(body["errors"]["redis"].is_string(), "{body}");
    assert!(body["errors"].get("postgres").is_none(), "{body}");
    // Liveness does not depend on the stores.
    assert_eq!(
        app.client
            .get(app.url("/healthz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
}
