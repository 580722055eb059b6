//! tutorq attacked as a hostile client (and run as an operator would): each test is one hole
//! found that way (issue 18), shown closed. Raw sockets where an HTTP client would hide the
//! problem (half-sent heads, trickled bodies, idle keep-alives, close handshakes).

mod auth;
mod callbacks;
mod connections;
mod input;
mod operating;
mod streams;
mod tenancy;
mod trail;

use std::time::Duration;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

/// Reads what the server sends until it closes the connection (or `limit` passes: then `None`,
/// the connection is still open).
async fn read_to_close(stream: &mut TcpStream, limit: Duration) -> Option<String> {
    let mut received = Vec::new();
    let mut buffer = [0u8; 4096];
    let read = async {
        loop {
            match stream.read(&mut buffer).await {
                Ok(0) | Err(_) => return,
                Ok(n) => received.extend_from_slice(&buffer[..n]),
            }
        }
    };
    tokio::time::timeout(limit, read).await.ok()?;
    Some(String::from_utf8_lossy(&received).into_owned())
}

/// A raw connection that has sent `bytes`.
async fn raw(host: &str, bytes: &[u8]) -> TcpStream {
    let mut stream = TcpStream::connect(host).await.unwrap();
    stream.write_all(bytes).await.unwrap();
    stream
}
