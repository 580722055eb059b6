//! `limits` and `cache`: admission limits (DESIGN.md §8) and the response cache.

use std::collections::BTreeMap;

use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitSettings {
    /// Off: every layer admits everything (benchmarks, trusted deployments).
    pub enabled: bool,
    /// Daily quotas reset at local midnight here, monthly ones on the 1st (IANA name).
    pub timezone: String,
    /// When Redis cannot be asked, admit (true) or answer 503 (false), per layer.
    pub fail_open: FailOpen,
    /// Length of the per-user sliding window (`per_minute` counts within it); 60 in production.
    pub window_secs: u64,
    pub ip: IpLimits,
    pub roles: RoleTable,
    pub abuse: AbuseSettings,
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FailOpen {
    pub ip: bool,
    pub user: bool,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IpLimits {
    /// Requests per client IP in any 60-second window.
    pub per_minute: u64,
    /// Peers (IP addresses) whose `X-Forwarded-For` is believed.
    pub trusted_proxies: Vec<std::net::IpAddr>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoleTable {
    pub student: RoleLimits,
    pub teacher: RoleLimits,
    pub service: RoleLimits,
    pub admin: RoleLimits,
}

/// One role's limits; every figure can be overridden per user (`PUT /v1/admin/users/{id}/limits`).
#[derive(Debug, Clone, Copy, Deserialize, serde::Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RoleLimits {
    /// Requests in any window of `limits.window_secs` (sliding; 60 s by default).
    pub per_minute: u64,
    /// After a breach of `per_minute`, every request is refused for this long.
    pub cooldown_secs: u64,
    pub daily_requests: u64,
    pub daily_tokens: u64,
    pub monthly_requests: u64,
    pub monthly_tokens: u64,
    /// Token bucket per user and feature: capacity, and tokens added back per second.
    pub bucket_tokens: u64,
    pub bucket_refill_per_sec: f64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AbuseSettings {
    /// This many violations within `window_secs` block the user for `block_secs`.
    pub violations: u64,
    pub window_secs: u64,
    pub block_secs: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CacheSettings {
    /// Seconds a response is reused, per feature; 0 or absent: never cached.
    pub ttl_secs: BTreeMap<String, u64>,
    /// How long a request waits for an identical one already running before running itself.
    pub coalesce_wait_ms: u64,
}

impl CacheSettings {
    pub fn ttl(&self, feature: &str) -> u64 {
        self.ttl_secs.get(feature).copied().unwrap_or(0)
    }
}
