//! The figures of a role's limits that a per-user override may set, each named once: the name
//! is the config key, the override key (`PUT /v1/admin/users/{id}/limits`, an API key's
//! `quota`), the field of the overrides hash and the name the admission script reads it by.

use redis::{RedisWrite, ToRedisArgs};

use super::figures::Period;
use crate::config::RoleLimits;

/// One figure of [`RoleLimits`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Overridable {
    PerMinute,
    CooldownSecs,
    DailyRequests,
    DailyTokens,
    MonthlyRequests,
    MonthlyTokens,
    BucketTokens,
    BucketRefillPerSec,
}

/// The largest count (requests, tokens, seconds) an override may set: 10^12.
const MAX_COUNT: f64 = 1e12;
/// The largest token-bucket refill rate an override may set, per second.
const MAX_REFILL: f64 = 1e9;

impl Overridable {
    pub const ALL: [Self; 8] = [
        Self::PerMinute,
        Self::CooldownSecs,
        Self::DailyRequests,
        Self::DailyTokens,
        Self::MonthlyRequests,
        Self::MonthlyTokens,
        Self::BucketTokens,
        Self::BucketRefillPerSec,
    ];

    pub fn key(self) -> &'static str {
        match self {
            Self::PerMinute => "per_minute",
            Self::CooldownSecs => "cooldown_secs",
            Self::DailyRequests => "daily_requests",
            Self::DailyTokens => "daily_tokens",
            Self::MonthlyRequests => "monthly_requests",
            Self::MonthlyTokens => "monthly_tokens",
            Self::BucketTokens => "bucket_tokens",
            Self::BucketRefillPerSec => "bucket_refill_per_sec",
        }
    }

    pub fn parse(key: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|f| f.key() == key)
    }

    /// The period a cap counts in (the window for the rate, a day or a month for the quotas).
    pub fn period(self) -> Option<Period> {
        match self {
            Self::PerMinute => Some(Period::Window),
            Self::DailyRequests | Self::DailyTokens => Some(Period::Day),
            Self::MonthlyRequests | Self::MonthlyTokens => Some(Period::Month),
            Self::CooldownSecs | Self::BucketTokens | Self::BucketRefillPerSec => None,
        }
    }

    /// The limits count requests, tokens and seconds: whole numbers, as in the config. Only
    /// the refill rate may be a fraction.
    fn fractional(self) -> bool {
        self == Self::BucketRefillPerSec
    }

    /// This figure of a role's limits, as the admission script receives it.
    pub(super) fn of(self, limits: &RoleLimits) -> Value {
        Value::Whole(match self {
            Self::PerMinute => limits.per_minute,
            Self::CooldownSecs => limits.cooldown_secs,
            Self::DailyRequests => limits.daily_requests,
            Self::DailyTokens => limits.daily_tokens,
            Self::MonthlyRequests => limits.monthly_requests,
            Self::MonthlyTokens => limits.monthly_tokens,
            Self::BucketTokens => limits.bucket_tokens,
            Self::BucketRefillPerSec => return Value::Fraction(limits.bucket_refill_per_sec),
        })
    }

    fn set(self, limits: &mut RoleLimits, value: f64) {
        let whole = value.max(0.0) as u64;
        match self {
            Self::PerMinute => limits.per_minute = whole,
            Self::CooldownSecs => limits.cooldown_secs = whole,
            Self::DailyRequests => limits.daily_requests = whole,
            Self::DailyTokens => limits.daily_tokens = whole,
            Self::MonthlyRequests => limits.monthly_requests = whole,
            Self::MonthlyTokens => limits.monthly_tokens = whole,
            Self::BucketTokens => limits.bucket_tokens = whole,
            Self::BucketRefillPerSec => limits.bucket_refill_per_sec = value,
        }
    }
}

/// A figure's value as the config holds it, so the script gets the same text it always did.
pub(super) enum Value {
    Whole(u64),
    Fraction(f64),
}

impl ToRedisArgs for Value {
    fn write_redis_args<W: ?Sized + RedisWrite>(&self, out: &mut W) {
        match self {
            Self::Whole(v) => v.write_redis_args(out),
            Self::Fraction(v) => v.write_redis_args(out),
        }
    }
}

/// An override's value as JSON: whole numbers as integers.
pub fn number(value: f64) -> serde_json::Value {
    if value.fract() == 0.0 && value.abs() < 9e15 {
        serde_json::Value::from(value as i64)
    } else {
        serde_json::Value::from(value)
    }
}

/// Overrides (by figure name) applied to a role's limits; unknown names are ignored.
pub fn apply_overrides(
    limits: &mut RoleLimits,
    overrides: &serde_json::Map<String, serde_json::Value>,
) {
    for (name, value) in overrides {
        if let (Some(figure), Some(v)) = (Overridable::parse(name), value.as_f64()) {
            figure.set(limits, v);
        }
    }
}

/// Checks overrides as a client sent them: known figures, numbers of 0 or more. The error maps
/// each bad field to what is wrong with it.
pub fn parse_overrides(
    body: &serde_json::Map<String, serde_json::Value>,
) -> Result<Vec<(Overridable, f64)>, std::collections::BTreeMap<String, String>> {
    let mut errors = std::collections::BTreeMap::new();
    let mut values = Vec::new();
    for (name, value) in body {
        let Some(figure) = Overridable::parse(name) else {
            let known: Vec<&str> = Overridable::ALL.iter().map(|f| f.key()).collect();
            errors.insert(
                name.clone(),
                format!("is not a limit; use one of: {}", known.join(", ")),
            );
            continue;
        };
        // The caps keep every figure exact in Lua's doubles and in the `RateLimit-*` headers.
        let fractional = figure.fractional();
        match value.as_f64() {
            Some(v) if fractional && (0.0..=MAX_REFILL).contains(&v) => values.push((figure, v)),
            Some(v) if !fractional && (0.0..=MAX_COUNT).contains(&v) && v.fract() == 0.0 => {
                values.push((figure, v));
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_figure_round_trips_through_its_key_and_lands_on_its_field() {
        let mut limits = RoleLimits {
            per_minute: 0,
            cooldown_secs: 0,
            daily_requests: 0,
            daily_tokens: 0,
            monthly_requests: 0,
            monthly_tokens: 0,
            bucket_tokens: 0,
            bucket_refill_per_sec: 0.0,
        };
        let mut overrides = serde_json::Map::new();
        for (i, figure) in Overridable::ALL.into_iter().enumerate() {
            assert_eq!(Overridable::parse(figure.key()), Some(figure));
            overrides.insert(figure.key().to_owned(), (i as u64 + 1).into());
        }
        apply_overrides(&mut limits, &overrides);
        for (i, figure) in Overridable::ALL.into_iter().enumerate() {
            let got = match figure.of(&limits) {
                Value::Whole(v) => v as f64,
                Value::Fraction(v) => v,
            };
            assert_eq!(got, i as f64 + 1.0, "{}", figure.key());
        }
    }

    #[test]
    fn only_the_refill_rate_may_be_a_fraction() {
        let body =
            serde_json::json!({"bucket_refill_per_sec": 0.5, "daily_tokens": 1.5, "nope": 1});
        let errors = parse_overrides(body.as_object().unwrap()).unwrap_err();
        assert_eq!(errors.len(), 2);
        assert!(errors["daily_tokens"].starts_with("must be a whole number"));
        assert!(errors["nope"].contains("per_minute, cooldown_secs"));
    }
}
