//! What an admission decided, as numbers and as HTTP: the `RateLimit-*` headers (IETF
//! draft-ietf-httpapi-ratelimit-headers: the `RateLimit-Limit`/`-Remaining`/`-Reset` trio for
//! the deciding limit, and the `RateLimit-Policy`/`RateLimit` lists of every limit).

use std::time::Duration;

use axum::http::{HeaderMap, HeaderName, HeaderValue};

use crate::config::RoleLimits;

/// The caller's limits and usage after an admission (one user, one moment).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Figures {
    /// The per-user window's length.
    pub window_secs: u64,
    pub per_minute: u64,
    pub window_used: u64,
    pub window_reset_ms: i64,
    pub daily_requests: u64,
    pub daily_requests_used: u64,
    pub daily_tokens: u64,
    pub daily_tokens_used: u64,
    pub daily_reset_at: i64,
    pub monthly_requests: u64,
    pub monthly_requests_used: u64,
    pub monthly_tokens: u64,
    pub monthly_tokens_used: u64,
    pub monthly_reset_at: i64,
    pub blocked_until: i64,
}

impl Figures {
    /// The admission script's numbers, in its order.
    pub(super) fn from_script(n: &[i64], window_secs: u64) -> Self {
        let at = |i: usize| n.get(i).copied().unwrap_or(0);
        let count = |i: usize| at(i).max(0) as u64;
        Self {
            window_secs,
            per_minute: count(0),
            window_used: count(1),
            window_reset_ms: at(2),
            daily_requests: count(3),
            daily_requests_used: count(4),
            daily_tokens: count(5),
            daily_tokens_used: count(6),
            daily_reset_at: at(7),
            monthly_requests: count(8),
            monthly_requests_used: count(9),
            monthly_tokens: count(10),
            monthly_tokens_used: count(11),
            monthly_reset_at: at(12),
            blocked_until: at(13),
        }
    }

    /// `(name, limit, remaining, seconds to reset, window seconds)` of every limit.
    fn policies(&self) -> Vec<(&'static str, u64, u64, u64, u64)> {
        let now = jiff::Timestamp::now().as_millisecond();
        let secs = |ms: i64| (ms.max(0) as u64).div_ceil(1000);
        let day = secs(self.daily_reset_at - now);
        let month = secs(self.monthly_reset_at - now);
        vec![
            (
                "minute",
                self.per_minute,
                self.per_minute.saturating_sub(self.window_used),
                secs(self.window_reset_ms),
                self.window_secs,
            ),
            (
                "daily-requests",
                self.daily_requests,
                self.daily_requests.saturating_sub(self.daily_requests_used),
                day,
                86_400,
            ),
            (
                "daily-tokens",
                self.daily_tokens,
                self.daily_tokens.saturating_sub(self.daily_tokens_used),
                day,
                86_400,
            ),
            (
                "monthly-requests",
                self.monthly_requests,
                self.monthly_requests
                    .saturating_sub(self.monthly_requests_used),
                month,
                2_592_000,
            ),
            (
                "monthly-tokens",
                self.monthly_tokens,
                self.monthly_tokens.saturating_sub(self.monthly_tokens_used),
                month,
                2_592_000,
            ),
        ]
    }

    /// Adds the headers; the trio describes `focus` (a policy name), else the minute window.
    pub fn write_headers(&self, headers: &mut HeaderMap, focus: Option<&str>) {
        let policies = self.policies();
        let chosen = policies
            .iter()
            .find(|p| Some(p.0) == focus)
            .unwrap_or(&policies[0]);
        put(headers, "ratelimit-limit", chosen.1.to_string());
        put(headers, "ratelimit-remaining", chosen.2.to_string());
        put(headers, "ratelimit-reset", chosen.3.to_string());
        let policy: Vec<String> = policies
            .iter()
            .map(|(name, limit, _, _, window)| format!("\"{name}\";q={limit};w={window}"))
            .collect();
        let state: Vec<String> = policies
            .iter()
            .map(|(name, _, remaining, reset, _)| format!("\"{name}\";r={remaining};t={reset}"))
            .collect();
        put(headers, "ratelimit-policy", policy.join(", "));
        put(headers, "ratelimit", state.join(", "));
    }
}

fn put(headers: &mut HeaderMap, name: &'static str, value: String) {
    if let Ok(value) = HeaderValue::from_str(&value) {
        headers.insert(HeaderName::from_static(name), value);
    }
}

/// A refused request: which limit, for how long.
#[derive(Debug, Clone)]
pub struct Refusal {
    /// `blocked`, `user-rate`, `ip-rate`, `daily-requests`, `daily-tokens`, `monthly-requests`,
    /// `monthly-tokens` or `feature-tokens`.
    pub limit: String,
    pub retry_after: Duration,
    pub figures: Option<Figures>,
}

impl Refusal {
    pub(super) fn new(limit: &str, retry_after: Duration, figures: Figures) -> Self {
        Self {
            limit: limit.to_owned(),
            retry_after,
            figures: Some(figures),
        }
    }

    /// The policy the `RateLimit-*` trio should describe.
    pub fn policy(&self) -> Option<&str> {
        match self.limit.as_str() {
            "user-rate" => Some("minute"),
            other => Some(other),
        }
    }

    pub fn blocked_until(&self) -> Option<String> {
        let until = self.figures?.blocked_until;
        (until > 0).then(|| iso(until))
    }

    /// Seconds for `Retry-After` (at least 1).
    pub fn retry_after_secs(&self) -> u64 {
        (self.retry_after.as_millis() as u64).div_ceil(1000).max(1)
    }
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let figures = self.figures.unwrap_or_default();
        let wait = self.retry_after_secs();
        match self.limit.as_str() {
            "blocked" => write!(
                f,
                "you are blocked until {} after repeated violations (rate-limit breaches, forbidden topics, invalid requests)",
                self.blocked_until().unwrap_or_else(|| "later".into())
            ),
            "user-rate" => write!(
                f,
                "more than {} requests within {} seconds; try again in {wait} s",
                figures.per_minute, figures.window_secs
            ),
            "daily-requests" => write!(
                f,
                "the daily quota of {} requests is used up; it resets at {}",
                figures.daily_requests,
                iso(figures.daily_reset_at)
            ),
            "monthly-requests" => write!(
                f,
                "the monthly quota of {} requests is used up; it resets at {}",
                figures.monthly_requests,
                iso(figures.monthly_reset_at)
            ),
            "daily-tokens" => write!(
                f,
                "this request would pass the daily quota of {} tokens ({} used); it resets at {}",
                figures.daily_tokens,
                figures.daily_tokens_used,
                iso(figures.daily_reset_at)
            ),
            "monthly-tokens" => write!(
                f,
                "this request would pass the monthly quota of {} tokens ({} used); it resets at {}",
                figures.monthly_tokens,
                figures.monthly_tokens_used,
                iso(figures.monthly_reset_at)
            ),
            "feature-tokens" => write!(
                f,
                "this feature's token bucket is empty for now; try again in {wait} s"
            ),
            other => write!(f, "refused by the `{other}` limit; try again in {wait} s"),
        }
    }
}

/// Unix ms → RFC 3339.
pub fn iso(ms: i64) -> String {
    jiff::Timestamp::from_millisecond(ms)
        .map(|t| t.to_string())
        .unwrap_or_default()
}

/// An override's value as JSON: whole numbers as integers.
pub fn number(value: f64) -> serde_json::Value {
    if value.fract() == 0.0 && value.abs() < 9e15 {
        serde_json::Value::from(value as i64)
    } else {
        serde_json::Value::from(value)
    }
}

/// Overrides (by figure name) applied to a role's limits.
pub fn apply_overrides(
    limits: &mut RoleLimits,
    overrides: &serde_json::Map<String, serde_json::Value>,
) {
    for (name, value) in overrides {
        let Some(v) = value.as_f64() else { continue };
        let whole = v.max(0.0) as u64;
        match name.as_str() {
            "per_minute" => limits.per_minute = whole,
            "cooldown_secs" => limits.cooldown_secs = whole,
            "daily_requests" => limits.daily_requests = whole,
            "daily_tokens" => limits.daily_tokens = whole,
            "monthly_requests" => limits.monthly_requests = whole,
            "monthly_tokens" => limits.monthly_tokens = whole,
            "bucket_tokens" => limits.bucket_tokens = whole,
            "bucket_refill_per_sec" => limits.bucket_refill_per_sec = v,
            _ => {}
        }
    }
}

/// Checks overrides as a client sent them: known figures, numbers of 0 or more. The error maps
/// each bad field to what is wrong with it.
pub fn parse_overrides(
    body: &serde_json::Map<String, serde_json::Value>,
) -> Result<Vec<(&'static str, f64)>, std::collections::BTreeMap<String, String>> {
    let mut errors = std::collections::BTreeMap::new();
    let mut values = Vec::new();
    for (name, value) in body {
        let Some(known) = OVERRIDABLE.iter().find(|k| **k == name.as_str()) else {
            errors.insert(
                name.clone(),
                format!("is not a limit; use one of: {}", OVERRIDABLE.join(", ")),
            );
            continue;
        };
        // The limits count requests, tokens and seconds: whole numbers, as in the config. Only
        // the refill rate may be a fraction. The caps keep every figure exact in Lua's doubles
        // and in the `RateLimit-*` headers.
        let fractional = *known == "bucket_refill_per_sec";
        match value.as_f64() {
            Some(v) if fractional && (0.0..=MAX_REFILL).contains(&v) => values.push((*known, v)),
            Some(v) if !fractional && (0.0..=MAX_COUNT).contains(&v) && v.fract() == 0.0 => {
                values.push((*known, v));
            }
            _ if fractional => {
                errors.insert(
                    name.clone(),
                    format!("must be a number from 0 to {MAX_REFILL}"),
                );
            }
            _ => {
                errors.insert(
                    name.clone(),
                    format!("must be a whole number from 0 to {MAX_COUNT}"),
                );
            }
        }
    }
    if errors.is_empty() {
        Ok(values)
    } else {
        Err(errors)
    }
}

/// The largest count (requests, tokens, seconds) an override may set: 10^12.
const MAX_COUNT: f64 = 1e12;
/// The largest token-bucket refill rate an override may set, per second.
const MAX_REFILL: f64 = 1e9;

/// The figures a per-user override may set.
pub const OVERRIDABLE: [&str; 8] = [
    "per_minute",
    "cooldown_secs",
    "daily_requests",
    "daily_tokens",
    "monthly_requests",
    "monthly_tokens",
    "bucket_tokens",
    "bucket_refill_per_sec",
];
