//! A scripted vendor for `tutorq bench capacity` and the capacity tests: an OpenAI- or
//! Anthropic-compatible server that enforces requests and tokens per minute the way those
//! vendors do, each a bucket that refills continuously and holds `window` of the rate (vendors
//! enforce a minute's limit over shorter periods, so a fleet that sends a minute's worth at once
//! is refused). Every answer carries the vendor's own rate-limit headers; a call over a limit
//! gets the vendor's 429 body and `Retry-After`. Answers and error bodies are the adapters' wire
//! fixtures (`tests/fixtures/providers/`).

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::Value;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Vendor {
    OpenAi,
    Anthropic,
}

impl Vendor {
    /// The provider name a chain uses for it.
    pub fn provider(self) -> &'static str {
        match self {
            Self::OpenAi => "openai",
            Self::Anthropic => "anthropic",
        }
    }

    fn answer(self) -> &'static str {
        match self {
            Self::OpenAi => {
                include_str!("../../tests/fixtures/providers/openai/chat_completion.json")
            }
            Self::Anthropic => {
                include_str!("../../tests/fixtures/providers/anthropic/message.json")
            }
        }
    }

    fn refusal(self) -> &'static str {
        match self {
            Self::OpenAi => include_str!("../../tests/fixtures/providers/openai/error_429.json"),
            Self::Anthropic => {
                include_str!("../../tests/fixtures/providers/anthropic/error_429.json")
            }
        }
    }
}

/// What the vendor enforces.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub rpm: u64,
    /// Tokens a minute: OpenAI's TPM (the prompt and the most the call may answer), Anthropic's
    /// input tokens.
    pub tpm: u64,
    /// How much of the rate each bucket holds.
    pub window: Duration,
    /// How long each answer takes.
    pub latency: Duration,
}

/// What the vendor saw.
#[derive(Debug, Default, Clone)]
pub struct Seen {
    /// When each call it answered arrived.
    pub answered: Vec<Instant>,
    pub refused: u64,
}

struct Buckets {
    requests: f64,
    tokens: f64,
    at: Instant,
    seen: Seen,
}

struct Scripted {
    vendor: Vendor,
    limits: Limits,
    state: Mutex<Buckets>,
}

/// A running scripted vendor; it stops when dropped.
pub struct ScriptedVendor {
    pub vendor: Vendor,
    pub address: SocketAddr,
    scripted: Arc<Scripted>,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for ScriptedVendor {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl ScriptedVendor {
    pub async fn start(vendor: Vendor, limits: Limits) -> std::io::Result<Self> {
        let scripted = Arc::new(Scripted {
            vendor,
            limits,
            state: Mutex::new(Buckets {
                requests: limits.rpm as f64 * limits.window.as_secs_f64() / 60.0,
                tokens: limits.tpm as f64 * limits.window.as_secs_f64() / 60.0,
                at: Instant::now(),
                seen: Seen::default(),
            }),
        });
        let route = match vendor {
            Vendor::OpenAi => "/v1/chat/completions",
            Vendor::Anthropic => "/v1/messages",
        };
        let app = axum::Router::new()
            .route(route, axum::routing::post(call))
            .with_state(scripted.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let address = listener.local_addr()?;
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(Self {
            vendor,
            address,
            scripted,
            server,
        })
    }

    /// Up to and including `/v1`.
    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.address)
    }

    pub fn seen(&self) -> Seen {
        self.scripted
            .state
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .seen
            .clone()
    }
}

async fn call(State(scripted): State<Arc<Scripted>>, body: Bytes) -> Response {
    let (status, headers, body, delay) = scripted.decide(&body);
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    let mut response = (status, body).into_response();
    response.headers_mut().insert(
        axum::http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    for (name, value) in headers {
        if let Ok(value) = HeaderValue::from_str(&value) {
            response
                .headers_mut()
                .insert(HeaderName::from_static(name), value);
        }
    }
    response
}

type Decided = (
    StatusCode,
    Vec<(&'static str, String)>,
    &'static str,
    Duration,
);

impl Scripted {
    fn capacity(&self, per_minute: u64) -> f64 {
        per_minute as f64 * self.limits.window.as_secs_f64() / 60.0
    }

    fn decide(&self, body: &[u8]) -> Decided {
        let limits = self.limits;
        let request: Value = serde_json::from_slice(body).unwrap_or_default();
        let prompt = body.len() as f64 / 4.0;
        let cost = match self.vendor {
            Vendor::OpenAi => {
                let max_tokens = request["max_tokens"]
                    .as_f64()
                    .or_else(|| request["max_completion_tokens"].as_f64())
                    .unwrap_or(0.0);
                prompt + max_tokens
            }
            Vendor::Anthropic => prompt,
        };
        let mut b = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        let elapsed = now.duration_since(b.at).as_secs_f64();
        b.at = now;
        b.requests =
            (b.requests + elapsed * limits.rpm as f64 / 60.0).min(self.capacity(limits.rpm));
        b.tokens = (b.tokens + elapsed * limits.tpm as f64 / 60.0).min(self.capacity(limits.tpm));
        if b.requests < 1.0 || b.tokens < cost {
            b.seen.refused += 1;
            let short = if b.requests < 1.0 {
                (1.0 - b.requests) / (limits.rpm as f64 / 60.0)
            } else {
                (cost - b.tokens) / (limits.tpm as f64 / 60.0)
            };
            let wait = Duration::from_secs_f64(short.max(0.001));
            let mut headers = self.limit_headers(&b);
            headers.push(match self.vendor {
                Vendor::OpenAi => ("retry-after-ms", wait.as_millis().max(1).to_string()),
                Vendor::Anthropic => (
                    "retry-after",
                    (wait.as_secs_f64().ceil() as u64).max(1).to_string(),
                ),
            });
            return (
                StatusCode::TOO_MANY_REQUESTS,
                headers,
                self.vendor.refusal(),
                Duration::ZERO,
            );
        }
        b.requests -= 1.0;
        b.tokens -= cost;
        b.seen.answered.push(now);
        (
            StatusCode::OK,
            self.limit_headers(&b),
            self.vendor.answer(),
            limits.latency,
        )
    }

    /// The headers every answer carries: what the limits are and what is left.
    fn limit_headers(&self, b: &Buckets) -> Vec<(&'static str, String)> {
        let limits = self.limits;
        let full_in = |level: f64, per_minute: u64| {
            let missing = (self.capacity(per_minute) - level).max(0.0);
            Duration::from_secs_f64(missing / (per_minute as f64 / 60.0))
        };
        let requests_reset = full_in(b.requests, limits.rpm);
        let tokens_reset = full_in(b.tokens, limits.tpm);
        let (requests, tokens) = (b.requests.max(0.0) as u64, b.tokens.max(0.0) as u64);
        match self.vendor {
            Vendor::OpenAi => {
                let reset = |d: Duration| format!("{}ms", d.as_millis());
                vec![
                    ("x-ratelimit-limit-requests", limits.rpm.to_string()),
                    ("x-ratelimit-remaining-requests", requests.to_string()),
                    ("x-ratelimit-reset-requests", reset(requests_reset)),
                    ("x-ratelimit-limit-tokens", limits.tpm.to_string()),
                    ("x-ratelimit-remaining-tokens", tokens.to_string()),
                    ("x-ratelimit-reset-tokens", reset(tokens_reset)),
                ]
            }
            Vendor::Anthropic => {
                let at = |d: Duration| {
                    let at = jiff::Timestamp::now()
                        + jiff::SignedDuration::try_from(d).unwrap_or_default();
                    at.round(jiff::Unit::Second).unwrap_or(at).to_string()
                };
                vec![
                    ("anthropic-ratelimit-requests-limit", limits.rpm.to_string()),
                    (
                        "anthropic-ratelimit-requests-remaining",
                        requests.to_string(),
                    ),
                    ("anthropic-ratelimit-requests-reset", at(requests_reset)),
                    (
                        "anthropic-ratelimit-input-tokens-limit",
                        limits.tpm.to_string(),
                    ),
                    (
                        "anthropic-ratelimit-input-tokens-remaining",
                        tokens.to_string(),
                    ),
                    ("anthropic-ratelimit-input-tokens-reset", at(tokens_reset)),
                ]
            }
        }
    }
}
