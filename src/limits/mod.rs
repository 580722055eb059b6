//! Admission limits (DESIGN.md §8): per-IP rate, per-user sliding window with a cooldown, daily
//! and monthly caps on requests and tokens, a token bucket per user and feature, and abuse
//! blocks. Every check-and-update is one Lua script (loaded once, called by SHA), so admitting a
//! request costs one Redis round trip and any number of web processes share the limits exactly.
//!
//! Tokens are reserved at admission (the estimate: prompt tokens plus `max_tokens`) and settled
//! to the real usage when the task ends: the script that records the end leaves a follow-up in
//! its partition's outbox (`tasks/outbox.rs`), applied in the user's slot by [`settle`]; a
//! failure or cancellation refunds them.
//!
//! `limit` describes every limit once (what its script answers, its problem type, layer,
//! override and `RateLimit` policy); `admit` is the admission script's named contract and call;
//! `ip` the per-IP check. Which address a request comes from, and the `RateLimit-*` headers,
//! are the API's (`api/client_ip.rs`, `api/rate_limit_headers.rs`).

mod admit;
mod figures;
mod ip;
pub mod keys;
mod limit;
mod overrides;
mod periods;
mod refusal;
mod settle;

use std::sync::Arc;

use crate::storage::RedisConnection;
use redis::Script;
use serde::Serialize;

use crate::auth::{Principal, Role};
use crate::config::{LimitSettings, RoleLimits};
use crate::feature::Feature;

pub use figures::{Figures, Period, Policy};
pub use ip::IpVerdict;
pub use limit::{Layer, Limit, ProblemType};
pub use overrides::{Overridable, parse_overrides};
pub use refusal::{Refusal, iso};
pub use settle::{SETTLEMENT_LUA, settle, settlement_keys};

/// The tokens a request reserved and the periods it reserved them in: stored on the task as
/// `tokens:daily_reset_at:monthly_reset_at`, read back by the settling Lua.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reservation {
    pub tokens: u64,
    pub daily_reset_at: i64,
    pub monthly_reset_at: i64,
}

impl Reservation {
    pub fn encode(&self) -> String {
        format!(
            "{}:{}:{}",
            self.tokens, self.daily_reset_at, self.monthly_reset_at
        )
    }
}

/// An admitted request: what it reserved, and the figures for the `RateLimit-*` headers.
#[derive(Debug, Clone, Default)]
pub struct Admission {
    pub reservation: Option<Reservation>,
    pub figures: Option<Figures>,
}

#[derive(Debug, thiserror::Error)]
pub enum LimitError {
    #[error("{0}")]
    Refused(Box<Refusal>),
    #[error("the limit store (Redis) is unavailable: {0}")]
    Unavailable(#[from] redis::RedisError),
}

/// Why a request counts as a violation (besides breaching the rate limit, which the admission
/// script records itself).
#[derive(Debug, Clone, Copy)]
pub enum Violation {
    ForbiddenTopic,
    Oversized,
    Invalid,
}

impl Violation {
    fn as_str(self) -> &'static str {
        match self {
            Self::ForbiddenTopic => "forbidden_topic",
            Self::Oversized => "oversized",
            Self::Invalid => "invalid_request",
        }
    }
}

struct Scripts {
    admit: Script,
    violation: Script,
    ip: Script,
    refund: Script,
}

/// A limit script with the shared helpers (`lua/violations.lua`) in front.
macro_rules! limit_script {
    ($name:literal) => {
        crate::storage::script::lua(concat!(
            include_str!("lua/violations.lua"),
            include_str!(concat!("lua/", $name, ".lua"))
        ))
    };
}

#[derive(Clone)]
pub struct Limits {
    conn: RedisConnection,
    settings: Arc<LimitSettings>,
    scripts: Arc<Scripts>,
    timezone: jiff::tz::TimeZone,
    /// The current periods' reset times (Unix ms), recomputed once the day is over.
    resets: Arc<std::sync::Mutex<(i64, i64)>>,
}

/// A role's row of the configured table.
pub(crate) fn role_limits(table: &crate::config::RoleTable, role: Role) -> &RoleLimits {
    match role {
        Role::Student => &table.student,
        Role::Teacher => &table.teacher,
        Role::Service => &table.service,
        Role::Admin => &table.admin,
    }
}

/// One user's limits (their role's, then their overrides), use and reset times:
/// `GET /v1/quota`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct QuotaStatus {
    pub user_id: String,
    #[schema(value_type = String)]
    pub role: Role,
    pub enabled: bool,
    #[schema(value_type = Object)]
    pub limits: RoleLimits,
    #[schema(value_type = Object)]
    pub overrides: serde_json::Map<String, serde_json::Value>,
    /// This minute: `limit`, `used`, `remaining`, `seconds`.
    #[schema(value_type = Object)]
    pub window: serde_json::Value,
    /// Today and this month: `requests` and `tokens` (`limit`, `used`, `remaining`), `resets_at`.
    #[schema(value_type = Object)]
    pub daily: serde_json::Value,
    #[schema(value_type = Object)]
    pub monthly: serde_json::Value,
    pub blocked_until: Option<String>,
}

impl Limits {
    pub fn new(conn: RedisConnection, settings: &LimitSettings) -> Self {
        Self {
            conn,
            timezone: jiff::tz::TimeZone::get(&settings.timezone)
                .expect("the time zone was checked when the settings loaded"),
            settings: Arc::new(settings.clone()),
            resets: Arc::default(),
            scripts: Arc::new(Scripts {
                admit: admit::script(),
                violation: limit_script!("violation"),
                ip: limit_script!("ip"),
                refund: settle::refund_script(),
            }),
        }
    }

    /// Gives back what an admitted request reserved, when it is refused before any task exists
    /// (a task's end settles its reservation itself).
    pub async fn refund(
        &self,
        principal: &Principal,
        feature: Feature,
        reservation: &Reservation,
    ) -> Result<(), redis::RedisError> {
        let user = principal.user_id.as_str();
        self.scripts
            .refund
            .key(keys::daily(user))
            .key(keys::monthly(user))
            .key(keys::bucket(user, feature))
            .key(keys::settled(user))
            .arg(reservation.tokens)
            .arg(reservation.daily_reset_at)
            .arg(reservation.monthly_reset_at)
            .arg("")
            .invoke_async::<i64>(&mut self.conn.clone())
            .await
            .map(drop)
    }

    /// `(next daily reset, next monthly reset)`; the time zone arithmetic runs once a day.
    fn next_resets(&self) -> (i64, i64) {
        let now = jiff::Timestamp::now();
        let mut resets = self.resets.lock().unwrap_or_else(|e| e.into_inner());
        if now.as_millisecond() >= resets.0 {
            *resets = periods::next_resets(now, &self.timezone);
        }
        *resets
    }

    /// Records a violation; `Some(end)` when it blocked the user.
    pub async fn violation(
        &self,
        user: &str,
        violation: Violation,
    ) -> Result<Option<jiff::Timestamp>, redis::RedisError> {
        if !self.settings.enabled {
            return Ok(None);
        }
        let abuse = &self.settings.abuse;
        let until: i64 = self
            .scripts
            .violation
            .key(keys::violations(user))
            .key(keys::blocked(user))
            .arg(violation.as_str())
            .arg(abuse.violations)
            .arg(abuse.window_secs * 1000)
            .arg(abuse.block_secs * 1000)
            .invoke_async(&mut self.conn.clone())
            .await?;
        if until > 0 {
            self.index_block(user, until).await;
        }
        Ok((until > 0)
            .then(|| jiff::Timestamp::from_millisecond(until).ok())
            .flatten())
    }

    /// The follow-up of a block: the user in the global index of blocked users (`blocks`),
    /// which lives outside the user's hash slot, so it cannot be written by the script that
    /// blocks. Idempotent (the same end, the same score) and repeated on each refused request
    /// of a blocked user: a process that dies between the two steps leaves the index one user
    /// short until that user's next request; the block itself holds either way.
    pub(super) async fn index_block(&self, user: &str, until_ms: i64) {
        let now = jiff::Timestamp::now().as_millisecond();
        let listed: redis::RedisResult<()> = redis::pipe()
            .zadd(keys::BLOCKED_INDEX, user, until_ms)
            .ignore()
            .zrembyscore(keys::BLOCKED_INDEX, "-inf", now)
            .ignore()
            .query_async(&mut self.conn.clone())
            .await;
        if let Err(err) = listed {
            tracing::warn!(%err, "could not list a block in the index of blocked users; the block holds");
        }
    }

    /// Lifts a user's block and forgets their violations.
    pub async fn unblock(&self, user: &str) -> Result<bool, redis::RedisError> {
        // The user's keys together (one slot), then the index (another).
        let (removed, _): (i64, i64) = redis::pipe()
            .atomic()
            .del(keys::blocked(user))
            .del(keys::violations(user))
            .query_async(&mut self.conn.clone())
            .await?;
        let _: i64 =
            redis::AsyncCommands::zrem(&mut self.conn.clone(), keys::BLOCKED_INDEX, user).await?;
        Ok(removed > 0)
    }

    /// Users blocked now, with the end of their block.
    pub async fn blocks(&self) -> Result<Vec<(String, jiff::Timestamp)>, redis::RedisError> {
        let now = jiff::Timestamp::now().as_millisecond();
        let (_, blocked): (i64, Vec<(String, i64)>) = redis::pipe()
            .atomic()
            .cmd("ZREMRANGEBYSCORE")
            .arg(keys::BLOCKED_INDEX)
            .arg("-inf")
            .arg(now)
            .cmd("ZRANGE")
            .arg(keys::BLOCKED_INDEX)
            .arg(0)
            .arg(-1)
            .arg("WITHSCORES")
            .query_async(&mut self.conn.clone())
            .await?;
        Ok(blocked
            .into_iter()
            .filter_map(|(user, until)| {
                Some((user, jiff::Timestamp::from_millisecond(until).ok()?))
            })
            .collect())
    }

    /// Per-user overrides of the role's limits (only the figures given change).
    pub async fn set_overrides(
        &self,
        user: &str,
        overrides: &[(Overridable, f64)],
    ) -> Result<(), redis::RedisError> {
        let key = keys::overrides(user);
        let mut pipe = redis::pipe();
        pipe.atomic().del(&key).ignore();
        for (figure, value) in overrides {
            pipe.hset(&key, figure.key(), *value).ignore();
        }
        pipe.query_async::<()>(&mut self.conn.clone()).await
    }

    pub async fn overrides(
        &self,
        user: &str,
    ) -> Result<serde_json::Map<String, serde_json::Value>, redis::RedisError> {
        let fields: Vec<(String, f64)> = redis::cmd("HGETALL")
            .arg(keys::overrides(user))
            .query_async(&mut self.conn.clone())
            .await?;
        Ok(fields
            .into_iter()
            .map(|(name, value)| (name, overrides::number(value)))
            .collect())
    }

    /// The caller's limits (role, then overrides), usage in the current periods and resets.
    pub async fn status(&self, principal: &Principal) -> Result<QuotaStatus, redis::RedisError> {
        let user = principal.user_id.as_str();
        let overrides = self.overrides(user).await?;
        let mut limits = *role_limits(&self.settings.roles, principal.role);
        overrides::apply_overrides(&mut limits, &overrides);
        let now = jiff::Timestamp::now();
        let (daily_next, monthly_next) = self.next_resets();
        type Period = (Option<u64>, Option<u64>, Option<i64>);
        let (window, daily, monthly, blocked): (u64, Period, Period, i64) = redis::pipe()
            .cmd("ZCOUNT")
            .arg(keys::window(user))
            .arg(now.as_millisecond() - self.settings.window_secs as i64 * 1000)
            .arg("+inf")
            .cmd("HMGET")
            .arg(keys::daily(user))
            .arg(&["requests", "tokens", "reset_at"])
            .cmd("HMGET")
            .arg(keys::monthly(user))
            .arg(&["requests", "tokens", "reset_at"])
            .cmd("PTTL")
            .arg(keys::blocked(user))
            .query_async(&mut self.conn.clone())
            .await?;
        let period = |(requests, tokens, reset_at): Period,
                      next: i64,
                      max_requests: u64,
                      max_tokens: u64| {
            let current = reset_at.filter(|r| *r > now.as_millisecond());
            let (requests, tokens) = match current {
                Some(_) => (requests.unwrap_or(0), tokens.unwrap_or(0)),
                None => (0, 0),
            };
            serde_json::json!({
                "requests": { "limit": max_requests, "used": requests, "remaining": max_requests.saturating_sub(requests) },
                "tokens": { "limit": max_tokens, "used": tokens, "remaining": max_tokens.saturating_sub(tokens) },
                "resets_at": iso(current.unwrap_or(next)),
            })
        };
        Ok(QuotaStatus {
            user_id: user.to_owned(),
            role: principal.role,
            enabled: self.settings.enabled,
            window: serde_json::json!({
                "seconds": self.settings.window_secs,
                "limit": limits.per_minute,
                "used": window,
                "remaining": limits.per_minute.saturating_sub(window),
            }),
            daily: period(
                daily,
                daily_next,
                limits.daily_requests,
                limits.daily_tokens,
            ),
            monthly: period(
                monthly,
                monthly_next,
                limits.monthly_requests,
                limits.monthly_tokens,
            ),
            limits,
            overrides,
            blocked_until: (blocked > 0).then(|| iso(now.as_millisecond() + blocked)),
        })
    }
}

#[cfg(test)]
mod tests {
    /// The limits sit below the HTTP layer (DESIGN.md §2): nothing here may name `api` or `app`.
    #[test]
    fn the_limits_import_nothing_from_the_api_or_the_app() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/limits");
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "rs") {
                let text = std::fs::read_to_string(&path).unwrap();
                for layer in ["api", "app"] {
                    let path_of = format!("crate::{layer}");
                    assert!(
                        !text.contains(&path_of),
                        "{} names {path_of}",
                        path.display()
                    );
                }
            }
        }
    }
}
