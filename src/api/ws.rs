//! `GET /v1/ws`: task events over a WebSocket. The client subscribes to task ids (each from an
//! event id, to resume) or to all of its tasks, including ones created later; the server sends
//! the same events as SSE, as JSON. A bad message gets an error frame, never a closed socket.
//!
//! Auth: `Authorization: Bearer <token>`, or, from a browser, the subprotocols
//! `["tutorq", "bearer.<token>"]` (the server answers with `tutorq`).

use std::collections::HashMap;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade, close_code};
use axum::http::{HeaderMap, header};
use axum::response::Response;
use axum::routing::get;
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio::task::AbortHandle;

use super::problem::ApiError;
use super::slots::Slot;
use crate::api::AppState;
use crate::auth::{AuthError, Principal};
use crate::service::AiService;
use crate::service::TaskEvent;

const PROTOCOL: &str = "tutorq";
const BEARER_PROTOCOL: &str = "bearer.";
/// Frames queued for one socket before it counts as too slow.
const OUTBOX: usize = 1024;
const PING_EVERY: Duration = Duration::from_secs(20);
/// Longer "task ids" are refused without being echoed back.
const MAX_TASK_ID: usize = 64;

pub fn router() -> Router<AppState> {
    Router::new().route("/v1/ws", get(upgrade))
}

#[utoipa::path(
    get, path = "/v1/ws", operation_id = "openWebSocket", tag = "tasks",
    responses((status = 101, description = "WebSocket (subprotocol `tutorq`): `{\"op\":\"subscribe\",\"task_id\":...}` or `{\"all\":true}`, then events as JSON frames"), (status = 400), (status = 401), (status = 429))
)]
pub(super) async fn upgrade(
    State(state): State<AppState>,
    headers: HeaderMap,
    ws: WebSocketUpgrade,
) -> Result<Response, ApiError> {
    let protocols: Vec<String> = headers
        .get_all(header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(',').map(|p| p.trim().to_owned()))
        .collect();
    let principal = match (
        headers.get(header::AUTHORIZATION),
        protocols
            .iter()
            .find_map(|p| p.strip_prefix(BEARER_PROTOCOL)),
    ) {
        (Some(value), _) => {
            let value = value.to_str().map_err(|_| AuthError::Malformed)?;
            super::auth::authenticate(&state, Some(value)).await?
        }
        (None, Some(token)) => {
            super::auth::authenticate(&state, Some(&format!("Bearer {token}"))).await?
        }
        (None, None) => return Err(AuthError::Missing.into()),
    };
    let slot = state.open.websockets.take(&principal.user_id)?;
    let service = state.service.clone();
    let max_bytes = state.settings.server.websocket_max_message_bytes;
    let max_subscriptions = state.settings.server.websocket_max_subscriptions;
    Ok(ws
        .protocols([PROTOCOL])
        .max_message_size(max_bytes)
        .max_frame_size(max_bytes)
        .on_upgrade(move |socket| serve(socket, service, principal, max_subscriptions, slot)))
}

#[derive(Debug, Deserialize)]
#[serde(tag = "op", rename_all = "lowercase", deny_unknown_fields)]
enum Request {
    Subscribe {
        #[serde(default)]
        task_ids: Vec<String>,
        #[serde(default)]
        all: bool,
        /// Per task: resume after this event id.
        #[serde(default)]
        last_event_ids: HashMap<String, String>,
    },
    Unsubscribe {
        #[serde(default)]
        task_ids: Vec<String>,
        #[serde(default)]
        all: bool,
    },
    Ping,
}

struct Connection {
    service: AiService,
    principal: Principal,
    outbox: mpsc::Sender<Value>,
    tasks: HashMap<String, AbortHandle>,
    feed: Option<AbortHandle>,
    max_subscriptions: usize,
}

/// Close code for a socket whose token expired (4000–4999 are the application's; 4401 echoes
/// HTTP 401).
const CLOSE_EXPIRED: u16 = 4401;

async fn serve(
    socket: WebSocket,
    service: AiService,
    principal: Principal,
    max_subscriptions: usize,
    _slot: Slot,
) {
    let _open = crate::metrics::OpenConnection::ws();
    let (outbox, mut frames) = mpsc::channel::<Value>(OUTBOX);
    let expiry = tokio::time::sleep_until(super::events::expiry_instant(principal.expires_at));
    tokio::pin!(expiry);
    let mut connection = Connection {
        service,
        principal,
        outbox,
        tasks: HashMap::new(),
        feed: None,
        max_subscriptions,
    };
    let (mut sink, mut stream) = futures_util::StreamExt::split(socket);
    let mut ping = tokio::time::interval(PING_EVERY);
    ping.tick().await;
    let close = loop {
        tokio::select! {
            incoming = futures_util::StreamExt::next(&mut stream) => match incoming {
                Some(Ok(Message::Text(text))) => connection.handle(text.as_str()).await,
                Some(Ok(Message::Binary(_))) => connection.error("send JSON text frames, not binary", None),
                // The peer's Close is answered with the same code (RFC 6455 §5.5.1).
                Some(Ok(Message::Close(frame))) => {
                    break Some(frame.unwrap_or(CloseFrame { code: close_code::NORMAL, reason: Utf8Bytes::default() }));
                }
                Some(Err(err)) => break Some(error_close(&err)),
                None => break None,
                Some(Ok(_)) => {}
            },
            Some(frame) = frames.recv() => {
                if futures_util::SinkExt::send(&mut sink, Message::Text(Utf8Bytes::from(frame.to_string()))).await.is_err() {
                    break None;
                }
            }
            _ = ping.tick() => {
                if futures_util::SinkExt::send(&mut sink, Message::Ping(Default::default())).await.is_err() {
                    break None;
                }
            }
            () = &mut expiry => {
                let notice = json!({ "type": "expired", "message": "the token expired; connect again with a fresh token" });
                let _ = futures_util::SinkExt::send(&mut sink, Message::Text(Utf8Bytes::from(notice.to_string()))).await;
                break Some(CloseFrame { code: CLOSE_EXPIRED, reason: Utf8Bytes::from_static("token expired") });
            }
        }
    };
    connection.close();
    if let Some(frame) = close {
        let _ = futures_util::SinkExt::send(&mut sink, Message::Close(Some(frame))).await;
        let _ = futures_util::SinkExt::close(&mut sink).await;
    }
}

/// The Close frame for a socket that broke the protocol: 1009 for a message over the limit,
/// 1002 otherwise.
fn error_close(err: &axum::Error) -> CloseFrame {
    let text = err.to_string();
    if text.contains("too long") || text.contains("too big") || text.contains("Space limit") {
        CloseFrame {
            code: close_code::SIZE,
            reason: Utf8Bytes::from_static("message too big"),
        }
    } else {
        CloseFrame {
            code: close_code::PROTOCOL,
            reason: Utf8Bytes::from_static("protocol error"),
        }
    }
}

impl Connection {
    async fn handle(&mut self, text: &str) {
        let request: Request = match serde_json::from_str(text) {
            Ok(request) => request,
            Err(err) => {
                self.error(&format!("not a valid message: {err}"), None);
                return;
            }
        };
        match request {
            Request::Ping => self.send(json!({ "type": "pong" })),
            Request::Subscribe {
                task_ids,
                all,
                last_event_ids,
            } => {
                if task_ids.is_empty() && !all {
                    self.error("subscribe needs `task_ids` or `\"all\": true`", None);
                }
                let mut subscribed = Vec::new();
                for task_id in task_ids {
                    let cursor = last_event_ids
                        .get(&task_id)
                        .cloned()
                        .unwrap_or_else(|| "0-0".into());
                    if self.watch(&task_id, &cursor).await {
                        subscribed.push(task_id);
                    }
                }
                if all && self.feed.is_none() {
                    self.watch_all().await;
                }
                self.send(json!({ "type": "subscribed", "task_ids": subscribed, "all": self.feed.is_some() }));
            }
            Request::Unsubscribe { task_ids, all } => {
                for task_id in &task_ids {
                    if let Some(handle) = self.tasks.remove(task_id) {
                        handle.abort();
                    }
                }
                if all {
                    if let Some(feed) = self.feed.take() {
                        feed.abort();
                    }
                }
                self.send(json!({ "type": "unsubscribed", "task_ids": task_ids, "all": all }));
            }
        }
    }

    /// Forwards one task's events; false (with an error frame) when it is not the caller's or
    /// the socket holds all the subscriptions it may. A task the client has seen to its end
    /// gets a `done` frame and no subscription.
    async fn watch(&mut self, task_id: &str, cursor: &str) -> bool {
        if self.tasks.contains_key(task_id) {
            return true;
        }
        if task_id.len() > MAX_TASK_ID {
            self.error("there is no task with this id (task ids are UUIDs)", None);
            return false;
        }
        self.tasks.retain(|_, handle| !handle.is_finished());
        if self.tasks.len() >= self.max_subscriptions {
            self.error(
                &format!(
                    "this socket holds {} subscriptions, the most it may; unsubscribe from some first",
                    self.tasks.len()
                ),
                Some(task_id),
            );
            return false;
        }
        if let Ok(true) = self
            .service
            .seen_to_the_end(&self.principal, task_id, cursor)
            .await
        {
            self.send(json!({ "type": "done", "task_id": task_id, "last_event_id": cursor }));
            return true;
        }
        match self
            .service
            .subscribe(&self.principal, task_id, cursor)
            .await
        {
            Ok(subscription) => {
                let handle = tokio::spawn(forward(
                    subscription,
                    self.outbox.clone(),
                    task_id.to_owned(),
                    cursor.to_owned(),
                ));
                self.tasks.insert(task_id.to_owned(), handle.abort_handle());
                true
            }
            Err(err) => {
                let message = match err {
                    crate::service::ServiceError::TaskNotFound => {
                        "there is no task with this id".to_owned()
                    }
                    other => other.to_string(),
                };
                self.error(&message, Some(task_id));
                false
            }
        }
    }

    /// Follows the caller's feed of new tasks and watches each; also the ones still running.
    async fn watch_all(&mut self) {
        let (feed, recent) = self.service.subscribe_all(&self.principal).await;
        for task_id in recent {
            self.watch(&task_id, "0-0").await;
        }
        let service = self.service.clone();
        let outbox = self.outbox.clone();
        let handle = tokio::spawn(async move {
            let mut feed = feed;
            let mut forwards = Vec::new();
            while let Some(entry) = feed.events.recv().await {
                let subscription = service.subscribe_from_feed(&entry.task_id).await;
                forwards.retain(|forward: &AbortHandle| !forward.is_finished());
                forwards.push(
                    tokio::spawn(forward(
                        subscription,
                        outbox.clone(),
                        entry.task_id.clone(),
                        "0-0".into(),
                    ))
                    .abort_handle(),
                );
            }
            for forward in forwards {
                forward.abort();
            }
        });
        self.feed = Some(handle.abort_handle());
    }

    fn send(&self, frame: Value) {
        let _ = self.outbox.try_send(frame);
    }

    fn error(&self, message: &str, task_id: Option<&str>) {
        self.send(json!({ "type": "error", "message": message, "task_id": task_id }));
    }

    fn close(self) {
        for handle in self.tasks.values() {
            handle.abort();
        }
        if let Some(feed) = self.feed {
            feed.abort();
        }
    }
}

/// Sends a task's events as frames until its final event; a dropped subscription asks the
/// client to resync from the last event it got.
async fn forward(
    mut subscription: crate::service::Subscription,
    outbox: mpsc::Sender<Value>,
    task_id: String,
    mut last: String,
) {
    while let Some(event) = subscription.events.recv().await {
        last = event.id.clone();
        let is_final = event.is_final();
        if outbox.send(frame(&event)).await.is_err() || is_final {
            return;
        }
    }
    let _ = outbox
        .send(json!({ "type": "resync", "task_id": task_id, "last_event_id": last }))
        .await;
}

fn frame(event: &TaskEvent) -> Value {
    let data: Value = serde_json::from_str(&event.data).unwrap_or(Value::Null);
    json!({ "type": "event", "task_id": event.task_id, "event_id": event.id, "event": event.name, "data": data })
}
