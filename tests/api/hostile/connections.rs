//! Item 6: what one connection may cost. A half-sent head, a trickled body and an idle
//! keep-alive connection are closed after their deadlines (they stayed open 70 s and more);
//! connections past the cap are answered 503 and closed. Raw sockets: an HTTP client would
//! finish the request and hide all of this.

use std::time::Duration;

use tokio::io::AsyncWriteExt as _;
use tutorq::auth::Role;

use super::{raw, read_to_close};
use crate::helpers::spawn_app_with;

/// Far longer than any deadline under test: a connection still open after it never closes.
const PATIENCE: Duration = Duration::from_secs(15);

#[tokio::test]
async fn a_half_sent_head_is_closed_after_the_header_deadline() {
    let app = spawn_app_with(|s| s.server.header_read_timeout_secs = 1).await;
    let mut stream = raw(app.host(), b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ").await;
    let answer = read_to_close(&mut stream, PATIENCE).await;
    assert!(
        answer.is_some(),
        "the connection is still open after {PATIENCE:?}"
    );
}

#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed() {
    let app = spawn_app_with(|s| s.server.header_read_timeout_secs = 1).await;
    let mut stream = raw(
        app.host(),
        b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: keep-alive\r\n\r\n",
    )
    .await;
    let answer = read_to_close(&mut stream, PATIENCE)
        .await
        .expect("an idle keep-alive connection is closed");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
}

#[tokio::test]
async fn a_trickled_body_gets_408_and_the_connection_closes() {
    let app = spawn_app_with(|s| s.server.body_read_timeout_secs = 1).await;
    let token = app.auth_token("u1", Role::Student);
    let head = format!(
        "POST /v1/ai/hint HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\"in"
    );
    let mut stream = raw(app.host(), head.as_bytes()).await;
    let answer = read_to_close(&mut stream, PATIENCE)
        .await
        .expect("the connection closes");
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("application/problem+json"), "{answer}");
    assert!(answer.contains("/problems/body-timeout"), "{answer}");
}

#[tokio::test]
async fn connections_past_the_cap_get_503_and_are_closed() {
    let app = spawn_app_with(|s| {
        s.server.max_connections = 3;
        s.server.header_read_timeout_secs = 60;
    })
    .await;
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(raw(app.host(), b"GET /healthz HTTP/1.1\r\nHost: x\r\n").await);
    }
    // The server counts a connection once it has accepted it: give it the three.
    let mut answer = None;
    for _ in 0..50 {
        let mut extra = raw(app.host(), b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").await;
        let text = read_to_close(&mut extra, PATIENCE)
            .await
            .unwrap_or_default();
        if text.starts_with("HTTP/1.1 503") {
            answer = Some(text);
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let answer = answer.expect("a fourth connection is refused");
    assert!(
        answer.contains("/problems/too-many-connections"),
        "{answer}"
    );
    // Once one of the three goes, a new connection is served again.
    let mut first = held.remove(0);
    first.shutdown().await.unwrap();
    drop(first);
    let mut served = false;
    for _ in 0..100 {
        let mut next = raw(
            app.host(),
            b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        )
        .await;
        let text = read_to_close(&mut next, PATIENCE).await.unwrap_or_default();
        if text.starts_with("HTTP/1.1 200") {
            served = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(served, "a freed slot is used again");
}
