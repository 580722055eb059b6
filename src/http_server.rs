//! The HTTP/1.1 accept loop under the API: a cap on open connections, a deadline for each
//! request head (which also closes idle keep-alive connections), and graceful shutdown.
//!
//! `axum::serve` installs no timer, so a connection that sends half a request head, or none,
//! stays open for ever (slowloris). hyper's header-read timeout needs a timer; with one, the
//! same deadline is re-armed after every response, so an idle keep-alive connection is closed
//! after it too. It never runs while a request is being answered: long-polls, event streams and
//! WebSockets are not under it. Request bodies have their own deadline (`api/json.rs`).

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::io::AsyncWriteExt as _;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, watch};
use tower::ServiceExt as _;

/// What the loop enforces.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// A whole request head must arrive within this long of connecting or of the previous
    /// response.
    pub header_read_timeout: Duration,
    /// Connections open at once; one more is answered 503 and closed.
    pub max_connections: usize,
}

impl From<&crate::config::ServerSettings> for Limits {
    fn from(settings: &crate::config::ServerSettings) -> Self {
        Self {
            header_read_timeout: Duration::from_secs(settings.header_read_timeout_secs.max(1)),
            max_connections: settings.max_connections.max(1),
        }
    }
}

/// The answer to a connection over the cap: written raw, without reading its request.
const BUSY: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\n\
content-type: application/problem+json\r\n\
retry-after: 1\r\n\
connection: close\r\n\
content-length: 162\r\n\
\r\n\
{\"type\":\"/problems/too-many-connections\",\"title\":\"Too Many Connections\",\"status\":503,\"detail\":\"this server holds as many connections as it allows; retry shortly\"}";

/// Open connections, and a wake-up when the last one closes.
#[derive(Default)]
struct Open {
    count: AtomicUsize,
    idle: Notify,
}

/// Counts one connection while it lives.
struct Held(Arc<Open>);

impl Drop for Held {
    fn drop(&mut self) {
        if self.0.count.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.idle.notify_waiters();
        }
    }
}

/// Serves `router` on `listener` until `shutdown` resolves, then stops accepting, asks every
/// connection to finish its current request, and returns once all have closed.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: Limits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    let open = Arc::new(Open::default());
    let (stopping_tx, stopping) = watch::channel(false);
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .keep_alive(true);
    tokio::pin!(shutdown);
    loop {
        let (tcp, peer) = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(err) => {
                    // Out of file descriptors and the like: pause instead of spinning.
                    tracing::warn!(%err, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        if let Err(err) = tcp.set_nodelay(true) {
            tracing::debug!(%err, "could not set TCP_NODELAY");
        }
        if open.count.fetch_add(1, Ordering::AcqRel) >= limits.max_connections {
            let held = Held(open.clone());
            tokio::spawn(refuse(tcp, held));
            continue;
        }
        let held = Held(open.clone());
        let service =
            router
                .clone()
                .map_request(move |mut request: axum::http::Request<Incoming>| {
                    request.extensions_mut().insert(ConnectInfo(peer));
                    request
                });
        let connection = builder
            .serve_connection(TokioIo::new(tcp), TowerToHyperService::new(service))
            .with_upgrades();
        let mut stopping = stopping.clone();
        tokio::spawn(async move {
            let _held = held;
            tokio::pin!(connection);
            tokio::select! {
                result = connection.as_mut() => log_end(result, peer),
                () = async { let _ = stopping.wait_for(|stopping| *stopping).await; } => {
                    connection.as_mut().graceful_shutdown();
                    log_end(connection.await, peer);
                }
            }
        });
    }
    drop(listener);
    let _ = stopping_tx.send(true);
    loop {
        let idle = open.idle.notified();
        if open.count.load(Ordering::Acquire) == 0 {
            return;
        }
        idle.await;
    }
}

/// 503 for a connection over the cap, without waiting on the peer for more than a second.
async fn refuse(mut tcp: TcpStream, _held: Held) {
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        let _ = tcp.write_all(BUSY).await;
        let _ = tcp.shutdown().await;
    })
    .await;
}

fn log_end(result: Result<(), hyper::Error>, peer: SocketAddr) {
    if let Err(err) = result {
        // A client that goes away or is too slow is routine, not an error of ours.
        tracing::debug!(%err, %peer, "connection ended");
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_busy_answer_declares_its_length() {
        let text = std::str::from_utf8(super::BUSY).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        assert!(
            head.contains(&format!("content-length: {}", body.len())),
            "{head}"
        );
        let problem: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(problem["status"], 503);
    }
}
