//! What the HTTP adapters share: a client with the provider's timeouts, every vendor failure
//! mapped to one [`ProviderError`] kind, `Retry-After`, and a Server-Sent Events decoder for
//! streamed answers.

use std::time::Duration;

use futures_util::{Stream, StreamExt as _};
use reqwest::header::HeaderMap;

use super::ProviderError;

/// A client with connect and total time limits (the total bounds a whole streamed answer too).
pub fn client(connect_timeout_ms: u64, timeout_ms: u64) -> reqwest::Client {
    reqwest::Client::builder()
        .connect_timeout(Duration::from_millis(connect_timeout_ms))
        .timeout(Duration::from_millis(timeout_ms))
        .build()
        .expect("a TLS client builds")
}

/// How long the vendor asks us to wait: `retry-after-ms` (OpenAI, Azure), else `retry-after`
/// in seconds or as an HTTP date.
pub fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let text = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
    };
    if let Some(ms) = text("retry-after-ms").and_then(|v| v.parse::<f64>().ok()) {
        return Some(Duration::from_secs_f64(ms.max(0.0) / 1000.0));
    }
    let value = text("retry-after")?;
    if let Ok(secs) = value.parse::<f64>() {
        return Some(Duration::from_secs_f64(secs.max(0.0)));
    }
    let date = jiff::fmt::rfc2822::parse(value).ok()?;
    let wait = date.timestamp().duration_since(jiff::Timestamp::now());
    Some(Duration::try_from(wait).unwrap_or(Duration::ZERO))
}

/// "… Please retry after 2 seconds …": some Azure deployments say it only in words.
fn retry_after_in(message: &str) -> Option<Duration> {
    let lower = message.to_ascii_lowercase();
    let rest = &lower[lower.find("retry after ")? + "retry after ".len()..];
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    let secs: u64 = digits.parse().ok()?;
    rest[digits.len()..]
        .trim_start()
        .starts_with("second")
        .then(|| Duration::from_secs(secs))
}

/// The vendor's own message from an error body (`{"error": {"message": …}}` for OpenAI, Azure
/// and Anthropic alike), else the start of the body.
fn message(body: &str) -> String {
    let parsed: Option<serde_json::Value> = serde_json::from_str(body).ok();
    let from_json = parsed.as_ref().and_then(|v| {
        v["error"]["message"]
            .as_str()
            .or_else(|| v["message"].as_str())
            .map(str::to_owned)
    });
    from_json.unwrap_or_else(|| body.chars().take(300).collect())
}

/// The vendor's error code or type (`invalid_api_key`, `content_filter`, `overloaded_error`…).
fn code(body: &str) -> String {
    let parsed: serde_json::Value = serde_json::from_str(body).unwrap_or_default();
    let error = &parsed["error"];
    error["code"]
        .as_str()
        .or_else(|| error["type"].as_str())
        .unwrap_or_default()
        .to_owned()
}

/// An HTTP error answer as one error kind.
pub fn error_from_status(status: u16, headers: &HeaderMap, body: &str) -> ProviderError {
    let code = code(body);
    let message = message(body);
    match status {
        401 | 403 => ProviderError::Auth(message),
        // OpenAI answers 429 `insufficient_quota` when billing runs out: waiting will not help.
        429 if code == "insufficient_quota" => ProviderError::Auth(message),
        429 => ProviderError::RateLimited {
            retry_after: retry_after(headers).or_else(|| retry_after_in(&message)),
        },
        408 => ProviderError::Timeout,
        400 | 404 | 409 | 413 | 422
            if code == "content_filter" || code.contains("content_policy") =>
        {
            ProviderError::ContentFilter
        }
        400..=499 => ProviderError::BadRequest(message),
        503 | 529 => ProviderError::Overloaded(message),
        _ if code.contains("overloaded") => ProviderError::Overloaded(message),
        _ => ProviderError::Server(format!("HTTP {status}: {message}")),
    }
}

/// A transport failure (no HTTP answer) as one error kind.
pub fn send_error(err: &reqwest::Error) -> ProviderError {
    if err.is_timeout() {
        ProviderError::Timeout
    } else if err.is_connect() {
        ProviderError::Server(format!("could not connect: {err}"))
    } else {
        ProviderError::Server(format!("the request failed: {err}"))
    }
}

/// Sends a request; a non-2xx answer becomes its error kind.
pub async fn send(request: reqwest::RequestBuilder) -> Result<reqwest::Response, ProviderError> {
    let response = request.send().await.map_err(|e| send_error(&e))?;
    let status = response.status().as_u16();
    if (200..300).contains(&status) {
        return Ok(response);
    }
    let headers = response.headers().clone();
    let body = response.text().await.unwrap_or_default();
    Err(error_from_status(status, &headers, &body))
}

/// A health check: healthy when the request (a models listing) answers 2xx.
pub async fn health(request: reqwest::RequestBuilder) -> super::Health {
    match send(request).await {
        Ok(_) => super::Health {
            healthy: true,
            detail: "the models endpoint answered".into(),
        },
        Err(err) => super::Health {
            healthy: false,
            detail: err.to_string(),
        },
    }
}

/// A JSON answer; a body that does not parse is a server error (the vendor broke its format).
pub async fn json(response: reqwest::Response) -> Result<serde_json::Value, ProviderError> {
    let bytes = response.bytes().await.map_err(|e| send_error(&e))?;
    serde_json::from_slice(&bytes)
        .map_err(|err| ProviderError::Server(format!("the answer is not valid JSON: {err}")))
}

/// One Server-Sent Event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SseEvent {
    /// The `event:` field; `None` for the default `message`.
    pub event: Option<String>,
    pub data: String,
}

/// Incremental SSE parsing (WHATWG rules for `event` and `data`; comments and `id`/`retry`
/// ignored). Bytes in, whole events out, whatever the chunking.
#[derive(Default)]
pub struct SseDecoder {
    buffer: Vec<u8>,
    event: Option<String>,
    data: Vec<String>,
}

impl SseDecoder {
    pub fn push(&mut self, bytes: &[u8]) -> Vec<SseEvent> {
        self.buffer.extend_from_slice(bytes);
        let mut events = Vec::new();
        while let Some(end) = self.buffer.iter().position(|b| *b == b'\n') {
            let mut line: Vec<u8> = self.buffer.drain(..=end).collect();
            line.pop();
            if line.last() == Some(&b'\r') {
                line.pop();
            }
            let line = String::from_utf8_lossy(&line).into_owned();
            if line.is_empty() {
                if !self.data.is_empty() {
                    events.push(SseEvent {
                        event: self.event.take(),
                        data: self.data.join("\n"),
                    });
                    self.data.clear();
                }
                self.event = None;
                continue;
            }
            if line.starts_with(':') {
                continue;
            }
            let (field, value) = line.split_once(':').unwrap_or((line.as_str(), ""));
            let value = value.strip_prefix(' ').unwrap_or(value);
            match field {
                "event" => self.event = Some(value.to_owned()),
                "data" => self.data.push(value.to_owned()),
                _ => {}
            }
        }
        events
    }
}

/// The events of a streamed answer, in order; a broken connection is an error item.
pub fn sse_events(
    response: reqwest::Response,
) -> impl Stream<Item = Result<SseEvent, ProviderError>> + Send {
    let mut decoder = SseDecoder::default();
    response.bytes_stream().flat_map(move |chunk| {
        let items: Vec<Result<SseEvent, ProviderError>> = match chunk {
            Ok(bytes) => decoder.push(&bytes).into_iter().map(Ok).collect(),
            Err(err) => vec![Err(send_error(&err))],
        };
        futures_util::stream::iter(items)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sse_events_survive_any_chunking() {
        let wire = "event: message_start\ndata: {\"a\":1}\n\n: ping\r\ndata: one\r\ndata: two\r\n\r\ndata: [DONE]\n\n";
        let whole = SseDecoder::default().push(wire.as_bytes());
        assert_eq!(
            whole,
            vec![
                SseEvent {
                    event: Some("message_start".into()),
                    data: "{\"a\":1}".into()
                },
                SseEvent {
                    event: None,
                    data: "one\ntwo".into()
                },
                SseEvent {
                    event: None,
                    data: "[DONE]".into()
                },
            ]
        );
        let mut decoder = SseDecoder::default();
        let bytewise: Vec<SseEvent> = wire
            .as_bytes()
            .iter()
            .flat_map(|b| decoder.push(&[*b]))
            .collect();
        assert_eq!(bytewise, whole);
    }

    #[test]
    fn statuses_map_to_one_kind_each() {
        let headers = HeaderMap::new();
        let openai_key = r#"{"error":{"message":"Incorrect API key provided","type":"invalid_request_error","param":null,"code":"invalid_api_key"}}"#;
        assert!(
            matches!(error_from_status(401, &headers, openai_key), ProviderError::Auth(m) if m.contains("Incorrect API key"))
        );
        let anthropic =
            r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#;
        assert!(matches!(
            error_from_status(529, &headers, anthropic),
            ProviderError::Overloaded(_)
        ));
        let filtered =
            r#"{"error":{"code":"content_filter","message":"The response was filtered"}}"#;
        assert_eq!(
            error_from_status(400, &headers, filtered),
            ProviderError::ContentFilter
        );
        assert!(matches!(
            error_from_status(400, &headers, "{}"),
            ProviderError::BadRequest(_)
        ));
        assert!(matches!(
            error_from_status(502, &headers, "bad gateway"),
            ProviderError::Server(_)
        ));
        let quota = r#"{"error":{"message":"You exceeded your current quota","type":"insufficient_quota","code":"insufficient_quota"}}"#;
        assert!(matches!(
            error_from_status(429, &headers, quota),
            ProviderError::Auth(_)
        ));
        let mut with_retry = HeaderMap::new();
        with_retry.insert("retry-after", "2".parse().unwrap());
        assert_eq!(
            error_from_status(429, &with_retry, "{}"),
            ProviderError::RateLimited {
                retry_after: Some(Duration::from_secs(2))
            }
        );
        let azure = r#"{"error":{"code":"429","message":"Requests to the ChatCompletions_Create Operation have exceeded call rate limit. Please retry after 7 seconds."}}"#;
        assert_eq!(
            error_from_status(429, &headers, azure),
            ProviderError::RateLimited {
                retry_after: Some(Duration::from_secs(7))
            }
        );
        with_retry.insert("retry-after-ms", "1500".parse().unwrap());
        assert_eq!(retry_after(&with_retry), Some(Duration::from_millis(1500)));
    }
}
