//! A scripted vendor that enforces its limits the way OpenAI and Anthropic do: requests and
//! tokens per minute, each a bucket that refills continuously and holds `window` of the rate
//! (vendors enforce a minute's limit over shorter periods, so a fleet that bursts a minute's
//! worth at once is refused). Every answer carries the vendor's own rate-limit headers; a call
//! over a limit gets the vendor's 429 body and `Retry-After`. Answers and error bodies are the
//! adapters' wire fixtures (`tests/fixtures/providers/`).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

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

    fn fixture(self, file: &str) -> String {
        let dir = match self {
            Self::OpenAi => "openai",
            Self::Anthropic => "anthropic",
        };
        std::fs::read_to_string(crate::helpers::repo_path(&format!(
            "tests/fixtures/providers/{dir}/{file}"
        )))
        .unwrap()
    }
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
    rpm: f64,
    tpm: f64,
    window: Duration,
    latency: Duration,
    state: Arc<Mutex<Buckets>>,
    answer: String,
    refusal: String,
}

impl Scripted {
    fn capacity(&self, per_minute: f64) -> f64 {
        per_minute * self.window.as_secs_f64() / 60.0
    }

    /// The headers every answer carries: what the limits are and what is left.
    fn limit_headers(&self, mut response: ResponseTemplate, b: &Buckets) -> ResponseTemplate {
        let full_in = |level: f64, per_minute: f64| {
            let missing = (self.capacity(per_minute) - level).max(0.0);
            Duration::from_secs_f64(missing / (per_minute / 60.0))
        };
        let requests_reset = full_in(b.requests, self.rpm);
        let tokens_reset = full_in(b.tokens, self.tpm);
        let (rpm, tpm) = (self.rpm as u64, self.tpm as u64);
        let (requests, tokens) = (b.requests.max(0.0) as u64, b.tokens.max(0.0) as u64);
        match self.vendor {
            Vendor::OpenAi => {
                let reset = |d: Duration| format!("{}ms", d.as_millis());
                for (name, value) in [
                    ("x-ratelimit-limit-requests", rpm.to_string()),
                    ("x-ratelimit-remaining-requests", requests.to_string()),
                    ("x-ratelimit-reset-requests", reset(requests_reset)),
                    ("x-ratelimit-limit-tokens", tpm.to_string()),
                    ("x-ratelimit-remaining-tokens", tokens.to_string()),
                    ("x-ratelimit-reset-tokens", reset(tokens_reset)),
                ] {
                    response = response.insert_header(name, value.as_str());
                }
            }
            Vendor::Anthropic => {
                let at = |d: Duration| {
                    (jiff::Timestamp::now() + jiff::SignedDuration::try_from(d).unwrap())
                        .round(jiff::Unit::Second)
                        .unwrap()
                        .to_string()
                };
                for (name, value) in [
                    ("anthropic-ratelimit-requests-limit", rpm.to_string()),
                    (
                        "anthropic-ratelimit-requests-remaining",
                        requests.to_string(),
                    ),
                    ("anthropic-ratelimit-requests-reset", at(requests_reset)),
                    ("anthropic-ratelimit-input-tokens-limit", tpm.to_string()),
                    (
                        "anthropic-ratelimit-input-tokens-remaining",
                        tokens.to_string(),
                    ),
                    ("anthropic-ratelimit-input-tokens-reset", at(tokens_reset)),
                ] {
                    response = response.insert_header(name, value.as_str());
                }
            }
        }
        response
    }
}

impl Respond for Scripted {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let body: Value = serde_json::from_slice(&request.body).unwrap_or_default();
        // What the vendor counts against the token limit when the call arrives: the prompt
        // (about four characters a token) and the most it may answer.
        let prompt_chars = body.to_string().chars().count() as f64;
        let max_tokens = body["max_tokens"]
            .as_f64()
            .or_else(|| body["max_completion_tokens"].as_f64())
            .unwrap_or(0.0);
        // Anthropic's input-token limit counts the prompt alone.
        let cost = match self.vendor {
            Vendor::OpenAi => prompt_chars / 4.0 + max_tokens,
            Vendor::Anthropic => prompt_chars / 4.0,
        };
        let mut b = self.state.lock().unwrap();
        let now = Instant::now();
        let elapsed = now.duration_since(b.at).as_secs_f64();
        b.at = now;
        b.requests = (b.requests + elapsed * self.rpm / 60.0).min(self.capacity(self.rpm));
        b.tokens = (b.tokens + elapsed * self.tpm / 60.0).min(self.capacity(self.tpm));
        if b.requests < 1.0 || b.tokens < cost {
            b.seen.refused += 1;
            let short = if b.requests < 1.0 {
                (1.0 - b.requests) / (self.rpm / 60.0)
            } else {
                (cost - b.tokens) / (self.tpm / 60.0)
            };
            let wait = Duration::from_secs_f64(short.max(0.001));
            let response =
                ResponseTemplate::new(429).set_body_raw(self.refusal.clone(), "application/json");
            let response = match self.vendor {
                Vendor::OpenAi => response.insert_header(
                    "retry-after-ms",
                    wait.as_millis().max(1).to_string().as_str(),
                ),
                Vendor::Anthropic => response.insert_header(
                    "retry-after",
                    wait.as_secs_f64().ceil().max(1.0).to_string().as_str(),
                ),
            };
            return self.limit_headers(response, &b);
        }
        b.requests -= 1.0;
        b.tokens -= cost;
        b.seen.answered.push(now);
        let response = ResponseTemplate::new(200)
            .set_body_raw(self.answer.clone(), "application/json")
            .set_delay(self.latency);
        self.limit_headers(response, &b)
    }
}

/// A running scripted vendor.
pub struct ScriptedVendor {
    pub server: MockServer,
    pub vendor: Vendor,
    state: Arc<Mutex<Buckets>>,
}

impl ScriptedVendor {
    /// A vendor allowing `rpm` requests and `tpm` tokens a minute, enforced over `window`,
    /// answering each call after `latency`.
    pub async fn start(
        vendor: Vendor,
        rpm: u64,
        tpm: u64,
        window: Duration,
        latency: Duration,
    ) -> Self {
        let server = MockServer::start().await;
        let state = Arc::new(Mutex::new(Buckets {
            requests: rpm as f64 * window.as_secs_f64() / 60.0,
            tokens: tpm as f64 * window.as_secs_f64() / 60.0,
            at: Instant::now(),
            seen: Seen::default(),
        }));
        let (route, answer) = match vendor {
            Vendor::OpenAi => ("/v1/chat/completions", "chat_completion.json"),
            Vendor::Anthropic => ("/v1/messages", "message.json"),
        };
        Mock::given(method("POST"))
            .and(path(route))
            .respond_with(Scripted {
                vendor,
                rpm: rpm as f64,
                tpm: tpm as f64,
                window,
                latency,
                state: state.clone(),
                answer: vendor.fixture(answer),
                refusal: vendor.fixture("error_429.json"),
            })
            .mount(&server)
            .await;
        Self {
            server,
            vendor,
            state,
        }
    }

    pub fn base_url(&self) -> String {
        format!("{}/v1", self.server.uri())
    }

    pub fn seen(&self) -> Seen {
        self.state.lock().unwrap().seen.clone()
    }
}
