//! A refused admission: which limit, for how long, and what the caller had used.

use std::time::Duration;

use super::figures::Figures;
use super::limit::Limit;

/// A refused request: which limit, for how long.
#[derive(Debug, Clone)]
pub struct Refusal {
    pub limit: Limit,
    pub retry_after: Duration,
    pub figures: Option<Figures>,
}

impl Refusal {
    pub(super) fn new(limit: Limit, retry_after: Duration, figures: Figures) -> Self {
        Self {
            limit,
            retry_after,
            figures: Some(figures),
        }
    }

    pub fn blocked_until(&self) -> Option<String> {
        let until = self.figures?.blocked_until;
        (until > 0).then(|| iso(until))
    }

    /// When the refusing quota starts again (RFC 3339), for a daily or monthly limit.
    pub fn resets_at(&self) -> Option<String> {
        let at = self.figures?.reset_at(self.limit.period()?)?;
        Some(iso(at))
    }

    /// Seconds for `Retry-After` (at least 1).
    pub fn retry_after_secs(&self) -> u64 {
        (self.retry_after.as_millis() as u64).div_ceil(1000).max(1)
    }
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.limit.detail(self))
    }
}

/// Unix ms → RFC 3339.
pub fn iso(ms: i64) -> String {
    jiff::Timestamp::from_millisecond(ms)
        .map(|t| t.to_string())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refusal(limit: Limit) -> Refusal {
        Refusal::new(
            limit,
            Duration::from_millis(1_200),
            Figures {
                window_secs: 60,
                per_minute: 20,
                daily_tokens: 1000,
                daily_tokens_used: 990,
                daily_reset_at: 1_764_277_200_000,
                monthly_reset_at: 1_764_536_400_000,
                ..Figures::default()
            },
        )
    }

    #[test]
    fn a_quota_refusal_says_when_it_resets_and_a_rate_refusal_does_not() {
        let daily = refusal(Limit::DailyTokens);
        assert_eq!(daily.resets_at().as_deref(), Some("2025-11-27T21:00:00Z"));
        assert_eq!(
            daily.to_string(),
            "this request would pass the daily quota of 1000 tokens (990 used); it resets at 2025-11-27T21:00:00Z"
        );
        let monthly = refusal(Limit::MonthlyRequests);
        assert_eq!(monthly.resets_at().as_deref(), Some("2025-11-30T21:00:00Z"));
        let rate = refusal(Limit::UserRate);
        assert_eq!(rate.resets_at(), None);
        assert_eq!(rate.retry_after_secs(), 2);
        assert_eq!(
            rate.to_string(),
            "more than 20 requests within 60 seconds; try again in 2 s"
        );
        assert_eq!(refusal(Limit::Blocked).blocked_until(), None);
    }
}
