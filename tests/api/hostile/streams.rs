//! Long-polls, event streams and WebSockets: what one caller may hold open, streams that end
//! (after the last event, when the token expires), and API keys wherever a token works.

use std::time::Duration;

use futures_util::{SinkExt as _, StreamExt as _};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tutorq::auth::Role;

use crate::events::frames;
use crate::helpers::{TestApp, assert_problem, spawn_app_with, spawn_app_with_workers};

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

fn now() -> u64 {
    jsonwebtoken::get_current_timestamp()
}

async fn redis_clients(app: &TestApp) -> usize {
    let list: String = redis::cmd("CLIENT")
        .arg("LIST")
        .query_async(&mut app.redis().await)
        .await
        .unwrap();
    list.lines().count()
}

/// Item 7: each long-poll held a Redis connection of its own for up to 30 s; 25 waiters took
/// Redis from 11 to 36 clients. Now 500 waiters share the process's one event reader.
#[tokio::test]
async fn five_hundred_long_polls_add_only_a_handful_of_redis_connections() {
    let app = spawn_app_with(|s| s.server.open.long_polls.per_user = 10).await;
    let mut tasks = Vec::new();
    for user in 0..50 {
        tasks.push((
            format!("poller-{user}"),
            app.queue_hint(&format!("poller-{user}")).await,
        ));
    }
    // One long-poll opens the event reader; what is counted below is beyond it.
    let first = &tasks[0];
    assert_eq!(app.task_as(&first.0, &first.1, 1).await.status(), 200);
    let before = redis_clients(&app).await;
    let waiters = futures_util::future::join_all((0..500).map(|i| {
        let (user, task) = &tasks[i % 50];
        app.task_as(user, task, 4)
    }));
    let sample = async {
        tokio::time::sleep(Duration::from_secs(2)).await;
        redis_clients(&app).await
    };
    let (answers, during) = tokio::join!(waiters, sample);
    assert!(
        answers.iter().all(|r| r.status() == 200),
        "every waiter is answered"
    );
    assert!(
        during <= before + 5,
        "500 waiters took Redis from {before} to {during} clients"
    );
}

/// Item 7: beyond the per-user cap a long-poll is refused with 429 at once.
#[tokio::test]
async fn long_polls_past_the_per_user_cap_get_429() {
    let app = spawn_app_with(|s| s.server.open.long_polls.per_user = 2).await;
    let id = app.queue_hint("greedy").await;
    let waits = futures_util::future::join_all((0..2).map(|_| app.task_as("greedy", &id, 3)));
    let third = async {
        tokio::time::sleep(Duration::from_millis(800)).await;
        app.task_as("greedy", &id, 3).await
    };
    let (waits, third) = tokio::join!(waits, third);
    let body = assert_problem(third, 429, "too-many-open").await;
    assert!(
        body["detail"].as_str().unwrap().contains("long-polls"),
        "{body}"
    );
    assert!(waits.iter().all(|r| r.status() == 200));
    // An immediate read holds no slot.
    assert_eq!(app.task_as("greedy", &id, 0).await.status(), 200);
}

async fn sse(app: &TestApp, id: &str, bearer: &str, last: Option<&str>) -> reqwest::Response {
    let mut request = app
        .client
        .get(app.url(&format!("/v1/tasks/{id}/events")))
        .bearer_auth(bearer);
    if let Some(last) = last {
        request = request.header("last-event-id", last);
    }
    request.send().await.unwrap()
}

/// A finished task's events, and the id of its last one.
async fn finished_task(app: &TestApp, user: &str) -> (String, String) {
    let id = app.queue_hint(user).await;
    let token = app.auth_token(user, Role::Student);
    let all = frames(sse(app, &id, &token, None).await, Duration::from_secs(10)).await;
    let last = all
        .last()
        .and_then(|f| f.id.clone())
        .expect("a final event");
    (id, last)
}

/// Item 8: EventSource reconnects after the final event with `Last-Event-ID` set to it; the
/// server held that stream open with keep-alives for ever. 204 makes EventSource stop.
#[tokio::test]
async fn resuming_a_finished_task_after_its_last_event_answers_204() {
    let app = spawn_app_with_workers(|_| {}).await;
    let (id, last) = finished_task(&app, "u1").await;
    let token = app.auth_token("u1", Role::Student);
    let resumed = tokio::time::timeout(Duration::from_secs(5), sse(&app, &id, &token, Some(&last)))
        .await
        .expect("an answer at once");
    assert_eq!(resumed.status(), 204);
    // From an earlier point the rest still comes, then the stream ends.
    let rest = frames(
        sse(&app, &id, &token, Some("0-1")).await,
        Duration::from_secs(10),
    )
    .await;
    assert!(rest.iter().any(|f| f.event.as_deref() == Some("succeeded")));
}

async fn socket(app: &TestApp, bearer: &str) -> Result<Socket, u16> {
    let mut request = format!("ws://{}/v1/ws", app.host())
        .into_client_request()
        .unwrap();
    request
        .headers_mut()
        .insert("authorization", format!("Bearer {bearer}").parse().unwrap());
    match tokio_tungstenite::connect_async(request).await {
        Ok((socket, _)) => Ok(socket),
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            Err(response.status().as_u16())
        }
        Err(other) => panic!("{other}"),
    }
}

/// The next message that is not a ping or pong, within 10 s.
async fn next(socket: &mut Socket) -> Option<Message> {
    loop {
        let message = tokio::time::timeout(Duration::from_secs(10), socket.next())
            .await
            .expect("a message within 10 s")?
            .ok()?;
        if !matches!(message, Message::Ping(_) | Message::Pong(_)) {
            return Some(message);
        }
    }
}

async fn next_json(socket: &mut Socket) -> Value {
    match next(socket).await {
        Some(Message::Text(text)) => serde_json::from_str(&text).unwrap(),
        other => panic!("expected a JSON frame, got {other:?}"),
    }
}

/// Item 8, WebSocket: a subscription to a task the client has seen to its end holds nothing.
#[tokio::test]
async fn subscribing_to_a_finished_task_from_its_last_event_holds_nothing() {
    let app = spawn_app_with_workers(|_| {}).await;
    let (id, last) = finished_task(&app, "u1").await;
    let mut ws = socket(&app, &app.auth_token("u1", Role::Student))
        .await
        .unwrap();
    let subscribe =
        json!({ "op": "subscribe", "task_ids": [id], "last_event_ids": { id.clone(): last } });
    ws.send(Message::Text(subscribe.to_string().into()))
        .await
        .unwrap();
    let done = next_json(&mut ws).await;
    assert_eq!(done["type"], "done", "{done}");
    assert_eq!(done["task_id"], id.as_str());
    let subscribed = next_json(&mut ws).await;
    assert_eq!(subscribed["type"], "subscribed", "{subscribed}");
}

/// Item 9: a 2 MB "task id" was accepted and echoed (messages up to 64 MiB); there was no cap
/// on sockets or subscriptions; a client's Close got no Close back (clients saw 1006).
#[tokio::test]
async fn websocket_messages_sockets_and_subscriptions_are_capped_and_close_is_answered() {
    let app = spawn_app_with(|s| {
        s.server.open.websockets.per_user = 2;
        s.server.websocket_max_subscriptions = 2;
        s.server.websocket_max_message_bytes = 4096;
    })
    .await;
    let token = app.auth_token("u1", Role::Student);

    // Too big a message: the socket is closed with 1009, nothing is echoed.
    let mut ws = socket(&app, &token).await.unwrap();
    let huge = json!({ "op": "subscribe", "task_ids": ["x".repeat(2 * 1024 * 1024)] });
    let _ = ws.send(Message::Text(huge.to_string().into())).await;
    match next(&mut ws).await {
        Some(Message::Close(Some(frame))) => assert_eq!(frame.code, CloseCode::Size),
        other => panic!("expected a 1009 close, got {other:?}"),
    }
    drop(ws);

    // The close handshake: the client's Close is answered with a Close.
    let mut ws = socket(&app, &token).await.unwrap();
    ws.send(Message::Close(Some(CloseFrame {
        code: CloseCode::Normal,
        reason: "bye".into(),
    })))
    .await
    .unwrap();
    match next(&mut ws).await {
        Some(Message::Close(Some(frame))) => assert_eq!(frame.code, CloseCode::Normal),
        other => panic!("expected the server's Close, got {other:?}"),
    }
    drop(ws);
    tokio::time::sleep(Duration::from_millis(200)).await;

    // Two sockets per user; a third is refused before the upgrade.
    let mut one = socket(&app, &token).await.unwrap();
    let _two = socket(&app, &token).await.unwrap();
    assert_eq!(socket(&app, &token).await.err(), Some(429));
    assert!(
        socket(&app, &app.auth_token("u2", Role::Student))
            .await
            .is_ok(),
        "others may"
    );

    // Two subscriptions per socket.
    let ids = [
        app.queue_hint("u1").await,
        app.queue_hint("u1").await,
        app.queue_hint("u1").await,
    ];
    let subscribe = json!({ "op": "subscribe", "task_ids": ids });
    one.send(Message::Text(subscribe.to_string().into()))
        .await
        .unwrap();
    let mut refused = None;
    let mut subscribed = None;
    while subscribed.is_none() {
        let frame = next_json(&mut one).await;
        match frame["type"].as_str() {
            Some("error") => refused = Some(frame),
            Some("subscribed") => subscribed = Some(frame),
            _ => {}
        }
    }
    let refused = refused.expect("the third subscription is refused");
    assert!(
        refused["message"]
            .as_str()
            .unwrap()
            .contains("subscriptions"),
        "{refused}"
    );
    assert_eq!(subscribed.unwrap()["task_ids"].as_array().unwrap().len(), 2);
}

/// Item 10: open streams and sockets went on delivering after their token's `exp`. Now an SSE
/// stream sends `expired` and ends, a WebSocket sends `expired` and closes with 4401.
#[tokio::test]
async fn streams_and_sockets_end_when_their_token_expires() {
    let app = spawn_app_with(|s| s.auth.leeway_secs = 0).await;
    let id = app.queue_hint("u1").await;
    let short = app.token_with(&tutorq::auth::Claims {
        sub: "u1".into(),
        role: Role::Student,
        exp: now() + 2,
        iat: None,
        tenant: None,
    });
    let all = frames(sse(&app, &id, &short, None).await, Duration::from_secs(15)).await;
    assert_eq!(
        all.last().and_then(|f| f.event.as_deref()),
        Some("expired"),
        "{all:?}"
    );

    let short = app.token_with(&tutorq::auth::Claims {
        sub: "u1".into(),
        role: Role::Student,
        exp: now() + 2,
        iat: None,
        tenant: None,
    });
    let mut ws = socket(&app, &short).await.unwrap();
    let notice = next_json(&mut ws).await;
    assert_eq!(notice["type"], "expired", "{notice}");
    match next(&mut ws).await {
        Some(Message::Close(Some(frame))) => assert_eq!(u16::from(frame.code), 4401),
        other => panic!("expected a 4401 close, got {other:?}"),
    }
}

/// Item 15: the README says a key authenticates as its owner; the event stream and the
/// WebSocket refused keys.
#[tokio::test]
async fn api_keys_open_event_streams_and_websockets() {
    let app = spawn_app_with_workers(|_| {}).await;
    let key = app.api_key("svc-backend", "service").await;
    let body = json!({ "input": crate::helpers::sample_input("hint"), "mode": "async" });
    let task: Value = app
        .post_json("/v1/ai/hint", &key, &body)
        .await
        .json()
        .await
        .unwrap();
    let id = task["task_id"].as_str().unwrap().to_owned();
    let response = sse(&app, &id, &key, None).await;
    assert_eq!(response.status(), 200);
    let all = frames(response, Duration::from_secs(10)).await;
    assert!(
        all.iter().any(|f| f.event.as_deref() == Some("succeeded")),
        "{all:?}"
    );

    let mut ws = socket(&app, &key).await.expect("a key opens a socket");
    let subscribe = json!({ "op": "subscribe", "task_ids": [id] });
    ws.send(Message::Text(subscribe.to_string().into()))
        .await
        .unwrap();
    let mut types = Vec::new();
    while !types.contains(&"subscribed".to_owned()) {
        types.push(
            next_json(&mut ws).await["type"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
}
