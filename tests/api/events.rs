//! Server-Sent Events: every event of a task in order, resumable with `Last-Event-ID`, live
//! until a final state, opened by a bearer token or a short-lived stream token.

use std::time::Duration;

use serde_json::{Value, json};
use tutorq::auth::Role;
use tutorq::config::LatencySetting;

use crate::helpers::{
    TestApp, assert_problem, sample_input, spawn_app_with, spawn_app_with_workers,
};

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Frame {
    pub id: Option<String>,
    pub event: Option<String>,
    pub data: String,
    pub retry: Option<u64>,
}

/// Reads an SSE response to its end (or `limit`) and parses its frames; comments are skipped.
pub async fn frames(mut response: reqwest::Response, limit: Duration) -> Vec<Frame> {
    let mut text = String::new();
    let deadline = tokio::time::Instant::now() + limit;
    while let Ok(Ok(Some(chunk))) = tokio::time::timeout_at(deadline, response.chunk()).await {
        text.push_str(&String::from_utf8_lossy(&chunk));
    }
    text.split("\n\n")
        .filter(|block| !block.trim().is_empty())
        .filter_map(|block| {
            let mut frame = Frame::default();
            for line in block.lines() {
                let (field, value) = line.split_once(':').unwrap_or((line, ""));
                let value = value.strip_prefix(' ').unwrap_or(value);
                match field {
                    "id" => frame.id = Some(value.to_owned()),
                    "event" => frame.event = Some(value.to_owned()),
                    "data" => frame.data.push_str(value),
                    "retry" => frame.retry = value.parse().ok(),
                    _ => {}
                }
            }
            (frame != Frame::default()).then_some(frame)
        })
        .collect()
}

fn token(app: &TestApp, user: &str) -> String {
    app.auth.mint(user, Role::Student, Duration::from_secs(600))
}

async fn open(
    app: &TestApp,
    id: &str,
    bearer: Option<&str>,
    query: &str,
    last_event_id: Option<&str>,
) -> reqwest::Response {
    let mut request = app
        .client
        .get(app.url(&format!("/v1/tasks/{id}/events{query}")));
    if let Some(bearer) = bearer {
        request = request.bearer_auth(bearer);
    }
    if let Some(last) = last_event_id {
        request = request.header("last-event-id", last);
    }
    request.send().await.unwrap()
}

fn names(frames: &[Frame]) -> Vec<&str> {
    frames.iter().filter_map(|f| f.event.as_deref()).collect()
}

#[tokio::test]
async fn every_event_then_the_stream_closes_and_resumes_without_gaps_or_repeats() {
    let app = spawn_app_with_workers(|_| {}).await;
    let id = app.queue_hint("u1").await;
    let response = open(&app, &id, Some(&token(&app, "u1")), "", None).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    assert_eq!(response.headers()["x-accel-buffering"], "no");
    assert_eq!(response.headers()["cache-control"], "no-cache");
    let all = frames(response, Duration::from_secs(10)).await;
    assert_eq!(all[0].retry, Some(2000), "a reconnect hint first");
    assert_eq!(
        names(&all),
        ["queued", "started", "succeeded"],
        "the stream ends after the final event"
    );
    let succeeded: Value = serde_json::from_str(&all.last().unwrap().data).unwrap();
    assert!(
        succeeded["result"].is_string(),
        "the full result comes with succeeded: {succeeded}"
    );
    assert_eq!(succeeded["task_id"], id.as_str());

    // Reconnecting with the id of the first event gives exactly the rest.
    let first = all[1].id.clone().unwrap();
    let rest = frames(
        open(&app, &id, Some(&token(&app, "u1")), "", Some(&first)).await,
        Duration::from_secs(10),
    )
    .await;
    assert_eq!(names(&rest), ["started", "succeeded"]);
    assert_eq!(
        rest.iter().filter_map(|f| f.id.clone()).collect::<Vec<_>>(),
        all[2..]
            .iter()
            .filter_map(|f| f.id.clone())
            .collect::<Vec<_>>()
    );
}

#[tokio::test]
async fn live_events_arrive_while_the_task_runs() {
    let app =
        spawn_app_with_workers(|s| s.providers.mock.latency_ms = LatencySetting::Fixed(400)).await;
    let id = app.queue_hint("u1").await;
    let all = frames(
        open(&app, &id, Some(&token(&app, "u1")), "", None).await,
        Duration::from_secs(10),
    )
    .await;
    assert_eq!(names(&all), ["queued", "started", "succeeded"]);
}

#[tokio::test]
async fn stream_tokens_open_one_stream_and_nothing_else() {
    let app = spawn_app_with_workers(|_| {}).await;
    let id = app.queue_hint("u1").await;
    let other = app.queue_hint("u1").await;
    let issued: Value = app
        .client
        .post(app.url(&format!("/v1/tasks/{id}/stream-token")))
        .bearer_auth(token(&app, "u1"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let stream_token = issued["token"].as_str().unwrap();
    assert_eq!(issued["expires_in"], 300);

    let all = frames(
        open(&app, &id, None, &format!("?token={stream_token}"), None).await,
        Duration::from_secs(10),
    )
    .await;
    assert_eq!(names(&all), ["queued", "started", "succeeded"]);

    assert_problem(
        open(&app, &other, None, &format!("?token={stream_token}"), None).await,
        401,
        "unauthorized",
    )
    .await;
    let main_token = token(&app, "u1");
    assert_problem(
        open(&app, &id, None, &format!("?token={main_token}"), None).await,
        401,
        "unauthorized",
    )
    .await;
    let as_bearer = app
        .client
        .get(app.url(&format!("/v1/tasks/{id}")))
        .bearer_auth(stream_token)
        .send()
        .await
        .unwrap();
    assert_problem(as_bearer, 401, "unauthorized").await;
    assert_problem(open(&app, &id, None, "", None).await, 401, "unauthorized").await;
}

#[tokio::test]
async fn another_users_task_stream_is_not_found() {
    let app = spawn_app_with(|_| {}).await;
    let id = app.queue_hint("alice").await;
    assert_problem(
        open(&app, &id, Some(&token(&app, "mallory")), "", None).await,
        404,
        "not-found",
    )
    .await;
    let response = app
        .client
        .post(app.url(&format!("/v1/tasks/{id}/stream-token")))
        .bearer_auth(token(&app, "mallory"))
        .send()
        .await
        .unwrap();
    assert_problem(response, 404, "not-found").await;
}

fn assert_streamed(all: &[Frame]) {
    let names = names(all);
    assert_eq!(&names[..2], ["queued", "started"], "{names:?}");
    assert_eq!(names.last(), Some(&"succeeded"), "{names:?}");
    let deltas: Vec<Value> = all
        .iter()
        .filter(|f| f.event.as_deref() == Some("delta"))
        .map(|f| serde_json::from_str(&f.data).unwrap())
        .collect();
    assert!(deltas.len() >= 2, "the answer arrives in pieces: {names:?}");
    let indexes: Vec<u64> = deltas
        .iter()
        .map(|d| d["index"].as_u64().unwrap())
        .collect();
    assert_eq!(indexes, (0..deltas.len() as u64).collect::<Vec<_>>());
    let streamed: String = deltas.iter().map(|d| d["text"].as_str().unwrap()).collect();
    let succeeded: Value = serde_json::from_str(&all.last().unwrap().data).unwrap();
    assert_eq!(
        succeeded["result"].as_str().unwrap(),
        streamed,
        "the pieces add up to the result"
    );
}

#[tokio::test]
async fn an_inline_streamed_request_answers_with_sse_deltas() {
    let app = spawn_app_with_workers(|s| {
        s.providers.mock.latency_ms = LatencySetting::Fixed(300);
        s.providers.mock.stream_chunk_chars = 6;
    })
    .await;
    let response = app
        .post_ai_as(
            "u1",
            "hint",
            &json!({ "input": sample_input("hint"), "stream": true }),
            &[],
        )
        .await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    assert_streamed(&frames(response, Duration::from_secs(10)).await);
}

#[tokio::test]
async fn a_queued_streamed_request_adds_deltas_to_its_task_stream() {
    let app = spawn_app_with_workers(|s| {
        s.providers.mock.latency_ms = LatencySetting::Fixed(300);
        s.providers.mock.stream_chunk_chars = 6;
    })
    .await;
    let body = json!({ "input": sample_input("hint"), "mode": "async", "stream": true });
    let response = app.post_ai_as("u1", "hint", &body, &[]).await;
    assert_eq!(response.status(), 202);
    let task: Value = response.json().await.unwrap();
    let id = task["task_id"].as_str().unwrap();
    assert_streamed(
        &frames(
            open(&app, id, Some(&token(&app, "u1")), "", None).await,
            Duration::from_secs(10),
        )
        .await,
    );
}

#[tokio::test]
async fn a_subscriber_that_falls_behind_is_dropped_instead_of_growing_memory() {
    let app = spawn_app_with(|_| {}).await;
    let id = app.queue_hint("u1").await;
    let state = tutorq::app::AppState::build(app.settings.clone())
        .await
        .unwrap();
    let principal = tutorq::auth::Principal::new("u1", Role::Student);
    let mut slow = state
        .service
        .subscribe(&principal, &id, "0-0")
        .await
        .unwrap();
    let store = &state.service.engine().store;
    for index in 0..600 {
        store
            .append_event(&id, "delta", json!({ "text": "x", "index": index }))
            .await
            .unwrap();
    }
    // Nobody reads: the subscriber's queue (256) fills, it is dropped, and its channel closes.
    let mut received = 0;
    loop {
        match tokio::time::timeout(Duration::from_secs(10), slow.events.recv()).await {
            Ok(Some(_)) => received += 1,
            Ok(None) => break,
            Err(_) => panic!("the slow subscriber was never dropped (got {received} events)"),
        }
    }
    assert!(received > 0 && received <= 256, "{received}");
}
