//! WebSocket subscriptions: per task (with resume), all of a user's tasks, error frames.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tutorq::auth::Role;

use crate::helpers::{TestApp, spawn_app_with_workers};

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn connect(app: &TestApp, user: &str) -> Socket {
    let token = app.auth.mint(user, Role::Student, Duration::from_secs(600));
    let mut request = format!("ws://{}/v1/ws", app.address.trim_start_matches("http://"))
        .into_client_request()
        .unwrap();
    // The browser way: the token rides as a subprotocol.
    request.headers_mut().insert(
        "sec-websocket-protocol",
        format!("tutorq, bearer.{token}").parse().unwrap(),
    );
    let (socket, response) = tokio_tungstenite::connect_async(request).await.unwrap();
    assert_eq!(response.headers()["sec-websocket-protocol"], "tutorq");
    socket
}

async fn send(socket: &mut Socket, message: Value) {
    socket
        .send(Message::Text(message.to_string().into()))
        .await
        .unwrap();
}

/// The next JSON frame (skipping pings), within 10 s.
async fn next(socket: &mut Socket) -> Value {
    loop {
        let message = tokio::time::timeout(Duration::from_secs(10), socket.next())
            .await
            .expect("a frame within 10 s")
            .unwrap()
            .unwrap();
        if let Message::Text(text) = message {
            return serde_json::from_str(&text).unwrap();
        }
    }
}

/// Event names per task until each has a final event.
async fn collect_until_final(
    socket: &mut Socket,
    tasks: usize,
) -> std::collections::HashMap<String, Vec<String>> {
    let mut seen: std::collections::HashMap<String, Vec<String>> = Default::default();
    let mut finished = 0;
    while finished < tasks {
        let frame = next(socket).await;
        if frame["type"] != "event" {
            continue;
        }
        let name = frame["event"].as_str().unwrap().to_owned();
        if ["succeeded", "failed", "cancelled", "dead"].contains(&name.as_str()) {
            finished += 1;
        }
        seen.entry(frame["task_id"].as_str().unwrap().to_owned())
            .or_default()
            .push(name);
    }
    seen
}

#[tokio::test]
async fn a_subscribed_task_streams_its_events_and_resumes_from_an_event_id() {
    let app = spawn_app_with_workers(|_| {}).await;
    let id = app.queue_hint("u1").await;
    let mut socket = connect(&app, "u1").await;
    send(&mut socket, json!({ "op": "subscribe", "task_ids": [id] })).await;
    assert_eq!(next(&mut socket).await["type"], "subscribed");
    let mut frames = Vec::new();
    while frames
        .last()
        .is_none_or(|f: &Value| f["event"] != "succeeded")
    {
        frames.push(next(&mut socket).await);
    }
    let names: Vec<&str> = frames
        .iter()
        .map(|f| f["event"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["queued", "started", "succeeded"]);
    assert!(frames[2]["data"]["result"].is_string());

    let mut again = connect(&app, "u1").await;
    let first = frames[0]["event_id"].as_str().unwrap();
    send(
        &mut again,
        json!({ "op": "subscribe", "task_ids": [id], "last_event_ids": { (id.as_str()): first } }),
    )
    .await;
    assert_eq!(next(&mut again).await["type"], "subscribed");
    assert_eq!(next(&mut again).await["event"], "started");
    assert_eq!(next(&mut again).await["event"], "succeeded");
}

#[tokio::test]
async fn subscribing_to_all_includes_tasks_created_later() {
    let app = spawn_app_with_workers(|_| {}).await;
    let mut socket = connect(&app, "u7").await;
    send(&mut socket, json!({ "op": "subscribe", "all": true })).await;
    let ack = next(&mut socket).await;
    assert_eq!(ack["all"], true);
    let first = app.queue_hint("u7").await;
    let second = app.queue_hint("u7").await;
    let _not_mine = app.queue_hint("someone-else").await;
    let seen = collect_until_final(&mut socket, 2).await;
    assert_eq!(seen.len(), 2, "{seen:?}");
    for id in [&first, &second] {
        assert_eq!(seen[id], ["queued", "started", "succeeded"], "{id}");
    }
}

#[tokio::test]
async fn bad_messages_and_foreign_tasks_get_error_frames_not_a_closed_socket() {
    let app = spawn_app_with_workers(|_| {}).await;
    let theirs = app.queue_hint("alice").await;
    let mut socket = connect(&app, "mallory").await;
    send(&mut socket, json!({ "op": "dance" })).await;
    let error = next(&mut socket).await;
    assert_eq!(error["type"], "error");
    assert!(
        error["message"]
            .as_str()
            .unwrap()
            .contains("not a valid message"),
        "{error}"
    );
    socket
        .send(Message::Text("{not json".into()))
        .await
        .unwrap();
    assert_eq!(next(&mut socket).await["type"], "error");
    send(
        &mut socket,
        json!({ "op": "subscribe", "task_ids": [theirs] }),
    )
    .await;
    let error = next(&mut socket).await;
    assert_eq!(error["type"], "error");
    assert_eq!(error["task_id"], theirs.as_str());
    assert_eq!(next(&mut socket).await["task_ids"], json!([]));
    send(&mut socket, json!({ "op": "ping" })).await;
    assert_eq!(next(&mut socket).await["type"], "pong", "still open");
}

#[tokio::test]
async fn a_socket_without_credentials_is_refused() {
    let app = spawn_app_with_workers(|_| {}).await;
    let url = format!("ws://{}/v1/ws", app.address.trim_start_matches("http://"));
    let err = tokio_tungstenite::connect_async(url).await.unwrap_err();
    assert!(err.to_string().contains("401"), "{err}");
}
