//! What an admission measured: the caller's caps, usage and resets after the admission script
//! ran, and each counted limit as a policy (limit, remaining, reset, window) for the
//! `RateLimit-*` headers the API writes.

use super::admit::Reply;
use super::limit::Limit;
use super::overrides::Overridable;

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

/// The period a limit counts in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Period {
    /// The per-user sliding window (`limits.window_secs`).
    Window,
    /// Until local midnight.
    Day,
    /// Until the 1st.
    Month,
}

/// One counted limit, as the `RateLimit` headers describe it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// The limit's policy name (`minute`, `daily-tokens`, …).
    pub name: &'static str,
    pub limit: u64,
    pub remaining: u64,
    /// Seconds until it resets.
    pub reset_secs: u64,
    /// The period's length in seconds (a month counts as 30 days).
    pub window_secs: u64,
}

impl Figures {
    /// The admission script's reply.
    pub(super) fn from_reply(reply: &Reply, window_secs: u64) -> Self {
        let count = |n: i64| n.max(0) as u64;
        Self {
            window_secs,
            per_minute: count(reply.per_minute),
            window_used: count(reply.window_used),
            window_reset_ms: reply.window_reset_ms,
            daily_requests: count(reply.daily_requests),
            daily_requests_used: count(reply.daily_requests_used),
            daily_tokens: count(reply.daily_tokens),
            daily_tokens_used: count(reply.daily_tokens_used),
            daily_reset_at: reply.daily_reset_at,
            monthly_requests: count(reply.monthly_requests),
            monthly_requests_used: count(reply.monthly_requests_used),
            monthly_tokens: count(reply.monthly_tokens),
            monthly_tokens_used: count(reply.monthly_tokens_used),
            monthly_reset_at: reply.monthly_reset_at,
            blocked_until: reply.blocked_until,
        }
    }

    /// `(cap, used)` of a figure that counts something in a period.
    fn cap(&self, figure: Overridable) -> Option<(u64, u64)> {
        Some(match figure {
            Overridable::PerMinute => (self.per_minute, self.window_used),
            Overridable::DailyRequests => (self.daily_requests, self.daily_requests_used),
            Overridable::DailyTokens => (self.daily_tokens, self.daily_tokens_used),
            Overridable::MonthlyRequests => (self.monthly_requests, self.monthly_requests_used),
            Overridable::MonthlyTokens => (self.monthly_tokens, self.monthly_tokens_used),
            Overridable::CooldownSecs
            | Overridable::BucketTokens
            | Overridable::BucketRefillPerSec => return None,
        })
    }

    /// When a day's or a month's counters start again (Unix ms); the window slides instead.
    pub fn reset_at(&self, period: Period) -> Option<i64> {
        match period {
            Period::Window => None,
            Period::Day => Some(self.daily_reset_at),
            Period::Month => Some(self.monthly_reset_at),
        }
    }

    /// `(seconds to reset, period length in seconds)` at `now` (Unix ms).
    fn timing(&self, period: Period, now: i64) -> (u64, u64) {
        let secs = |ms: i64| (ms.max(0) as u64).div_ceil(1000);
        match period {
            Period::Window => (secs(self.window_reset_ms), self.window_secs),
            Period::Day => (secs(self.daily_reset_at - now), 86_400),
            Period::Month => (secs(self.monthly_reset_at - now), 2_592_000),
        }
    }

    /// Every limit with a policy name, in [`Limit::ALL`]'s order (the per-user window first).
    pub fn policies(&self) -> Vec<Policy> {
        let now = jiff::Timestamp::now().as_millisecond();
        Limit::ALL
            .iter()
            .filter_map(|limit| {
                let name = limit.policy()?;
                let figure = limit.figure()?;
                let (cap, used) = self.cap(figure)?;
                let (reset_secs, window_secs) = self.timing(figure.period()?, now);
                Some(Policy {
                    name,
                    limit: cap,
                    remaining: cap.saturating_sub(used),
                    reset_secs,
                    window_secs,
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_policies_list_the_window_then_the_day_then_the_month() {
        let now = jiff::Timestamp::now().as_millisecond();
        let figures = Figures {
            window_secs: 60,
            per_minute: 20,
            window_used: 5,
            window_reset_ms: 1_500,
            daily_requests: 100,
            daily_requests_used: 120,
            daily_tokens: 1000,
            daily_reset_at: now + 3_600_000,
            monthly_reset_at: now + 7_200_000,
            ..Figures::default()
        };
        let policies = figures.policies();
        let names: Vec<_> = policies.iter().map(|p| p.name).collect();
        assert_eq!(
            names,
            [
                "minute",
                "daily-requests",
                "daily-tokens",
                "monthly-requests",
                "monthly-tokens"
            ]
        );
        assert_eq!(
            policies[0],
            Policy {
                name: "minute",
                limit: 20,
                remaining: 15,
                reset_secs: 2,
                window_secs: 60
            }
        );
        assert_eq!(policies[1].remaining, 0);
        assert!((3_599..=3_600).contains(&policies[2].reset_secs));
        assert_eq!(policies[3].window_secs, 2_592_000);
    }
}
